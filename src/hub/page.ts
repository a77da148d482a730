/**
 * The progress page, in the spirit of the hub's own spawn-pending page: a progress bar and the hub's
 * messages, live over SSE with an inline script (allowed by its CSP hash, see HubLanding.scripts),
 * and a `<noscript>` refresh for browsers without JavaScript. Its URLs carry only the opaque progress id.
 */
import { escapeHtml, page } from '../http/pages.js';
import type { ProgressState } from './progress.js';

export interface ProgressLinks {
  events: string;
  go: string;
  retry: string;
}

export function progressPage(state: ProgressState, notice: string | undefined, links: ProgressLinks): string {
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

/**
 * The confirmation page of login mode `handoff` (login CSRF): names the user the browser is about to
 * be logged in to the hub as, and, when it is known as someone else, that user too. Its button posts
 * the parked handoff's ticket (sealed: it shows nothing) to {base}confirm.
 */
export function confirmPage(user: string, knownAs: string | undefined, action: string, ticket: string): string {
  const other = knownAs
    ? `<p id="other">This browser last opened notebooks as <b>${escapeHtml(knownAs)}</b>. Continuing logs it in to JupyterHub as <b>${escapeHtml(user)}</b> instead.</p>`
    : '';
  return page(
    'Open your notebook?',
    `<h1>Open the notebook as ${escapeHtml(user)}?</h1>
<p>Immerse handed over an OmniSci session of <b id="user">${escapeHtml(user)}</b>. Continue only if you just opened the notebook from your own Immerse.</p>${other}
<form method="post" action="${escapeHtml(action)}"><input type="hidden" name="ticket" value="${escapeHtml(ticket)}"><button type="submit" id="confirm">Continue as ${escapeHtml(user)}</button></form>
<p class="muted">Did not open it yourself? Close this page: nothing has been stored.</p>`,
  );
}
