/**
 * The progress page, in the spirit of the hub's own spawn-pending page: a progress bar and the hub's
 * messages, live over SSE with an inline script (allowed by its CSP hash), and a `<noscript>` refresh
 * for browsers without JavaScript; and its routes. Its URLs carry only the opaque progress ticket
 * (../hub/tickets.ts), so any replica serves any page: the spawn's state is the hub's, followed by a
 * task of this replica (../hub/progress.ts). Only the browser the page was issued to may use it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Request, RequestHandler, Response } from 'express';
import type { ProgressState, SpawnTask } from '../hub/progress.js';
import { useOnce, type Ticket, type Tickets } from '../hub/tickets.js';
import type { SessionStore } from '../store/types.js';
import { escapeHtml, page } from './pages.js';

interface ProgressLinks {
  events: string;
  go: string;
  retry: string;
}

/** What the page says, once ready, when the server kept running with the connection it started with. */
export const CONNECTION_KEPT_NOTICE =
  'Your OmniSci connection changed while your server was running. The new session is in place; the new connection applies after your server restarts.';

function progressPage(state: ProgressState, notice: string | undefined, links: ProgressLinks): string {
  const log = `<details><summary>Details</summary><ul id="log">${state.log
    .map((m) => `<li>${escapeHtml(m)}</li>`)
    .join('')}</ul></details>`;
  if (state.phase === 'failed') {
    return page(
      'Your notebook server failed to start',
      `<h1>Your notebook server failed to start</h1><p id="msg">${escapeHtml(state.error?.message ?? state.message)}</p>
<form method="post" action="${escapeHtml(links.retry)}"><button type="submit" id="retry">Try again</button></form>
${log}<p class="muted">Error code <code>${escapeHtml(state.error?.code ?? 'hub_spawn_failed')}</code></p>`,
    );
  }
  if (state.phase === 'ready') {
    return page(
      'Your notebook server is running',
      `<h1>Your notebook server is running</h1>${notice ? `<p id="notice">${escapeHtml(notice)}</p>` : ''}
<p><a id="go" href="${escapeHtml(links.go)}">Continue to your notebook</a></p>`,
    );
  }
  return page(
    'Starting your notebook server',
    `<h1>Starting your notebook server</h1>
<progress id="bar" max="100" value="${state.progress}">${state.progress}%</progress>
<p id="msg" role="status">${escapeHtml(state.message)}</p>${log}
<noscript><meta http-equiv="refresh" content="2"><p class="muted">This page reloads by itself until your server is ready.</p></noscript>
<div id="progress" hidden data-events="${escapeHtml(links.events)}" data-go="${escapeHtml(links.go)}"></div>`,
    PROGRESS_SCRIPT,
  );
}

/** Follows the SSE stream; reloads on failure (the page then shows the retry button) and leaves when ready. */
export const PROGRESS_SCRIPT = `(function () {
  var d = document.getElementById('progress');
  if (!d || !window.EventSource) return;
  var bar = document.getElementById('bar'), msg = document.getElementById('msg'), log = document.getElementById('log');
  var es = new EventSource(d.getAttribute('data-events'));
  es.onmessage = function (e) {
    var s = JSON.parse(e.data);
    bar.value = s.progress;
    bar.textContent = s.progress + '%';
    msg.textContent = s.message;
    log.textContent = '';
    s.log.forEach(function (m) { var li = document.createElement('li'); li.textContent = m; log.appendChild(li); });
    if (s.phase === 'ready' && !s.notice) { es.close(); location.replace(d.getAttribute('data-go')); }
    else if (s.phase !== 'pending') { es.close(); location.reload(); }
  };
})();
`;

const progressGone = () =>
  page('This page has expired', '<h1>This page has expired</h1><p>Open the notebook again from Immerse.</p>');

export interface ProgressDeps {
  base: string;
  tickets: Tickets;
  store: Pick<SessionStore, 'spend'>;
  /** True when the page's ticket was bound to this browser (or to none). */
  boundTo(req: Request, bind: string | undefined): boolean;
  /** This replica's task making the user's server run (`follow`: another replica may have started it). */
  taskFor(user: string, server: string, o: { follow?: boolean }): SpawnTask;
  /** The server's lab (waiting for the session `fingerprint`, when given), through the hub's login for the browser whose binding is `loginBind`, when given. */
  finalUrl(user: string, server: string, loginBind?: string, fingerprint?: string): string;
}

export interface ProgressHandlers {
  /** GET progress/:id — the page; a ready server redirects at once. */
  page: RequestHandler;
  /** GET progress/:id/events — the spawn's state over SSE. */
  events: RequestHandler;
  /** GET progress/:id/go — where the page's script leaves to once ready. */
  go: RequestHandler;
  /** POST progress/:id/retry — starts again after a failure. */
  retry: RequestHandler;
}

export function progressHandlers(d: ProgressDeps): ProgressHandlers {
  const links = (id: string): ProgressLinks => ({
    events: `${d.base}progress/${id}/events`,
    go: `${d.base}progress/${id}/go`,
    retry: `${d.base}progress/${id}/retry`,
  });

  /** The page's ticket, when it is authentic, live and this browser's; else the answer is "expired". */
  const ticketOf = (req: Request, res: Response): Ticket<'progress'> | undefined => {
    const t = d.tickets.open('progress', String(req.params.id ?? ''));
    if (t && d.boundTo(req, t.bind)) return t;
    res.status(404).type('html').send(progressGone());
    return undefined;
  };

  /** Where a ready page leads: its handoff's one hub login on the first visit (on any replica), the lab after that. */
  const readyUrl = async (t: Ticket<'progress'>): Promise<string> =>
    d.finalUrl(t.user, t.server ?? '', t.login === true && t.bind !== undefined && (await useOnce(d.store, 'progress', t)) ? t.bind : undefined, t.fingerprint);

  /** This replica's view of the page's spawn, given a moment to settle: a running server answers at once. */
  const followed = async (t: Ticket<'progress'>) => {
    const task = d.taskFor(t.user, t.server ?? '', { follow: true });
    await Promise.race([task.done, sleep(1000, undefined, { ref: false })]);
    return task.state;
  };

  return {
    async page(req, res) {
      const t = ticketOf(req, res);
      if (!t) return;
      const state = await followed(t);
      if (state.phase === 'ready' && !t.notice) return void res.redirect(303, await readyUrl(t));
      res.type('html').send(progressPage(state, t.notice ? CONNECTION_KEPT_NOTICE : undefined, links(String(req.params.id))));
    },

    events(req, res) {
      const t = ticketOf(req, res);
      if (!t) return;
      const task = d.taskFor(t.user, t.server ?? '', { follow: true });
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'X-Accel-Buffering': 'no' });
      const send = () => {
        const s = task.state;
        res.write(`data: ${JSON.stringify({ phase: s.phase, progress: s.progress, message: s.message, log: s.log, notice: s.phase === 'ready' && t.notice ? CONNECTION_KEPT_NOTICE : undefined })}\n\n`);
        if (s.phase !== 'pending') res.end();
      };
      const unsubscribe = task.subscribe(send);
      const keepalive = setInterval(() => res.write(': keepalive\n\n'), 15_000);
      res.on('close', () => {
        unsubscribe();
        clearInterval(keepalive);
      });
      send();
    },

    async go(req, res) {
      const t = ticketOf(req, res);
      if (!t) return;
      const ready = (await followed(t)).phase === 'ready';
      // Only a browser holding the page's cookie gets here, and it gets the handoff's login once.
      res.redirect(303, ready ? await readyUrl(t) : `${d.base}progress/${String(req.params.id)}`);
    },

    retry(req, res) {
      const t = ticketOf(req, res);
      if (!t) return;
      d.taskFor(t.user, t.server ?? '', {});
      res.redirect(303, `${d.base}progress/${String(req.params.id)}`);
    },
  };
}
