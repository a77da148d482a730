/**
 * Local mode without a hub (`npm start`, no HUB_PUBLIC_URL): instead of redirecting to a hub that is
 * not there, the handoff ends on a page of the service's own that shows what the user's notebook
 * server would receive — the session file as the store wrote it (session id masked), the connection
 * env vars, the Jupyter config files and the lab URL a hub would open — and what to configure next.
 *
 * The page lives at `{base}local/{id}`: the id is 128 random bits, bound to the browser that made the
 * handoff by an HttpOnly cookie on that path (as the hub landing's progress page is), and lives
 * LOCAL_PAGE_TTL_MS. Neither its URL nor anything else the service builds carries the session id;
 * the page shows only the id's last 4 characters. It reads the store when rendered, so a reload shows
 * what the notebook would receive now.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import type { RequestHandler } from 'express';
import { JUPYTER_CONFIG_PATH } from '../../config/reserved.js';
import type { Config } from '../../config/types.js';
import { labUrl } from '../../hub/lab-url.js';
import { jupyterConfigFiles, notebookEnv, sessionFileContent } from '../../notebook/outputs.js';
import { userDir } from '../../store/local.js';
import type { AcceptOutcome, SessionRecord, SessionStore } from '../../store/types.js';
import { cookie, setCookie } from '../cookie.js';
import { escapeHtml, page } from '../pages.js';
import type { Landing } from '../pipeline.js';

export const LOCAL_PAGE_TTL_MS = 30 * 60_000;
const MAX_ENTRIES = 1000;

export interface LocalLandingOptions {
  /** The service serves `{base}dev/demo` (local mode's demo link): offer it on the page. */
  demoLink?: boolean;
}

export interface LocalLanding {
  landing: Landing;
  /** GET {base}local/:id — the page of one handoff, for the browser that made it. */
  page: RequestHandler;
}

interface Entry {
  user: string;
  outcome: AcceptOutcome;
  bindingHash: Buffer;
  expiresAt: number;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** All but the last 4 characters replaced; an id too short to spare 4 is masked whole. */
export function maskSession(session: string): string {
  if (session.length < 16) return '•'.repeat(session.length);
  return `${'•'.repeat(session.length - 4)}${session.slice(-4)}`;
}

/** Where the user's session file is, and where the notebook server reads it from. */
function sessionFileOf(config: Config, store: SessionStore, user: string): { path: string; how: string } {
  const nb = config.notebook;
  if (store.backend === 'local') {
    // The spawner hook (contrib/jupyterhub) points the server at the store's file itself.
    return { path: join(userDir(config.store.local.dir, user), nb.sessionFileName), how: 'in the local store; on a hub, the spawner hook points the server at this file' };
  }
  return { path: `${nb.sessionDir.replace(/\/+$/, '')}/${nb.sessionFileName}`, how: 'mounted into the server from the user\'s Secret' };
}

const pre = (text: string) => `<pre><code>${escapeHtml(text)}</code></pre>`;

export function localPage(config: Config, store: SessionStore, record: SessionRecord, outcome: AcceptOutcome, demoLink: boolean): string {
  const nb = config.notebook;
  const base = config.listen.basePath;
  const user = record.user;
  const file = sessionFileOf(config, store, user);
  const content = sessionFileContent(record, nb.sessionFormat);
  const shown = record.session ? content.split(record.session).join(maskSession(record.session)) : content;
  const env = Object.entries(notebookEnv(record.connection, nb)).map(([k, v]) => `${k}=${v}`).join('\n');
  const files = Object.entries(jupyterConfigFiles(nb, file.path))
    .map(([path, text]) => `<details><summary><code>${escapeHtml(path)}</code></summary>${pre(text)}</details>`)
    .join('\n');
  const lab = labUrl(config.redirect, user);
  const superseded =
    outcome === 'superseded'
      ? '<p id="superseded">This handoff was older than the session already stored for this user, which stays: below is the stored one.</p>'
      : '';
  const revoked = record.session ? '' : '<p id="revoked">The session was revoked (Immerse logged out): the file holds an empty session.</p>';
  return page(
    'Session handed over',
    `<h1>Session handed over to <code>${escapeHtml(user)}</code></h1>
<p>The token was verified and the session stored. No JupyterHub is configured, so instead of opening the
user's lab this page shows what their notebook server receives.</p>${superseded}${revoked}
<h2>The session file</h2>
<p class="muted">Format <code>${escapeHtml(nb.sessionFormat)}</code>, stored at <code id="session-path">${escapeHtml(file.path)}</code> (${escapeHtml(file.how)}). The session id is masked here but for its last 4 characters.</p>
<pre id="session-file"><code>${escapeHtml(shown)}</code></pre>
<h2>Environment</h2>
<p class="muted">Set when the server starts (a running server keeps the values it started with).</p>
<pre id="env"><code>${escapeHtml(env)}</code></pre>
<h2>Jupyter config</h2>
<p class="muted">A directory of these files is added to <code>${JUPYTER_CONFIG_PATH}</code>: they enable jupyterlab-omnisci's server extension and point it at the session file.</p>
<div id="jupyter-config">${files}</div>
<h2>The lab</h2>
<p>With a hub, the browser would now open <code id="lab-url">${escapeHtml(lab)}</code>, where jupyterlab-omnisci reads the session.</p>
<h2>Next</h2>
<ul id="next">
<li>See it end in a real notebook: <code>npm run demo</code> runs a JupyterHub, this service, JupyterLab 4 servers with the notebook side and a HeavyDB stand-in on this machine; its link ends on a notebook that ran the handed-over query, showing its rows.</li>
<li>Use your hub: restart with <code>HUB_PUBLIC_URL=https://hub.example.org npm start</code>, and the handoff redirects to the lab there.</li>
<li>Deploy: <code>omnisci-handoff serve --config FILE</code> with <code>redirect.hubPublicUrl</code> and <code>hub.enabled</code> — see <code>docs/jupyterhub.md</code>, <code>docs/non-kubernetes.md</code>, <code>docs/kubernetes.md</code> and <code>docs/admin-guide.md</code>; then <code>omnisci-handoff doctor --config FILE</code> checks the deployment (<code>docs/doctor.md</code>).</li>
</ul>
${demoLink ? `<p><a id="again" href="${escapeHtml(`${base}dev/demo`)}">Hand over another demo session</a></p>` : ''}`,
  );
}

const gone = () =>
  page(
    'This page has expired',
    '<h1>This page has expired</h1><p>It belongs to another browser, or it is older than 30 minutes. Open the handoff link again.</p>',
  );

export function createLocalLanding(config: Config, store: SessionStore, o: LocalLandingOptions = {}, now: () => number = Date.now): LocalLanding {
  const base = config.listen.basePath;
  const entries = new Map<string, Entry>();

  const sweep = () => {
    const t = now();
    for (const [id, e] of entries) if (e.expiresAt <= t) entries.delete(id);
    // Oldest first (insertion order): a flood of handoffs cannot grow the map without bound.
    while (entries.size >= MAX_ENTRIES) entries.delete(entries.keys().next().value as string);
  };

  const landing: Landing = {
    async land({ handoff, result, req, res }) {
      sweep();
      const id = randomBytes(16).toString('base64url');
      const binding = randomBytes(32).toString('base64url');
      entries.set(id, { user: handoff.user, outcome: result.outcome, bindingHash: sha256(binding), expiresAt: now() + LOCAL_PAGE_TTL_MS });
      const path = `${base}local/${id}`;
      setCookie(req, res, `ohl-${id}`, binding, path, LOCAL_PAGE_TTL_MS);
      res.redirect(303, path);
    },
  };

  const localPageHandler: RequestHandler = async (req, res) => {
    const id = String(req.params.id ?? '');
    const entry = entries.get(id);
    const binding = cookie(req, `ohl-${id}`);
    if (!entry || binding === undefined || entry.expiresAt <= now() || !timingSafeEqual(sha256(binding), entry.bindingHash)) {
      res.status(404).type('html').send(gone());
      return;
    }
    const record = await store.get(entry.user);
    if (!record) {
      res.status(404).type('html').send(gone());
      return;
    }
    res.type('html').send(localPage(config, store, record, entry.outcome, o.demoLink === true));
  };

  return { landing, page: localPageHandler };
}
