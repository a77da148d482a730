/**
 * JupyterLab 4 side of omnisci-handoff: two plugins.
 *
 * `omnisci-handoff-jupyter:session` — when the lab is opened with a bare `?omnisci` in its URL (the
 * service sends the browser to `{hub}/user/{name}/lab?omnisci&reset`), it asks the server extension
 * for the handed-over session (`GET {base_url}omnisci/session`, jupyterlab-omnisci's contract) and
 * opens a new notebook that connects with `omnisci_handoff_jupyter.connect()` (no session id in any
 * cell) and runs the handed-over SQL. With `omnisci-handoff=<fingerprint>` too (a handoff to a
 * server that was already running), it first waits until the server reports that fingerprint — the
 * kubelet delivers a new session to a running pod 60–90 s late — showing that it waits and, past
 * `OmniSciHandoff.session_wait_timeout`, what went wrong; it never opens the notebook on an older
 * session. `?reset` stays JupyterLab's: its router command clears the workspace, then navigates to
 * the same URL without `reset`; this plugin waits for that URL, so it never races the reset.
 *
 * `omnisci-handoff-jupyter:status` — a status-bar item showing the session's state
 * (`GET {base_url}omnisci/session/status`), and on expiry a notification with "Re-link with
 * Immerse" (`OmniSciHandoff.relink_url`).
 *
 * Plain JavaScript on purpose: the JupyterLab/Lumino packages below are shared singletons the lab
 * provides at run time (package.json `jupyterlab.sharedPackages`, never bundled), so building needs
 * nothing but @jupyterlab/builder.
 */
import { IRouter } from '@jupyterlab/application';
import { Notification, showErrorMessage } from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

import { sessionNotebook } from './notebook.mjs';

const OPEN_COMMAND = 'omnisci-handoff:open-session';
const CHECK_COMMAND = 'omnisci-handoff:check-session';
const TITLE = 'OmniSci session';
/** The lab URL's parameter carrying the fingerprint of the handoff it was opened for. */
const FINGERPRINT_PARAM = 'omnisci-handoff';
const OURS = new Set(['omnisci', FINGERPRINT_PARAM]);

/** `omnisci` as a query parameter (bare, or with a value), e.g. `?omnisci`, `?omnisci&reset`, `?x=1&omnisci=`. */
const PATTERN = /[?&]omnisci(?:[=&#]|$)/;

/** The server extension's settings (OmniSciHandoff, in the page config). */
function handoffSettings() {
  let value = PageConfig.getOption('omnisciHandoff');
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      value = {};
    }
  }
  const number = (v, fallback) => (typeof v === 'number' && v > 0 ? v : fallback);
  return {
    relinkUrl: value && typeof value.relinkUrl === 'string' ? value.relinkUrl : '',
    sessionWaitTimeout: number(value && value.sessionWaitTimeout, 120),
    statusInterval: number(value && value.statusInterval, 60),
    runOnOpen: Boolean(value && value.runOnOpen === true),
  };
}

function queryParam(search, name) {
  for (const part of search.replace(/^\?/, '').split('&')) {
    const [key, ...rest] = part.split('=');
    if (key === name) return decodeURIComponent(rest.join('='));
  }
  return null;
}

/** The URL without our parameters (others and the hash kept), so a reload does not open another notebook. */
function withoutOurs(href) {
  const url = new URL(href);
  const kept = url.search
    .replace(/^\?/, '')
    .split('&')
    .filter((part) => part && !OURS.has(part.split('=')[0]));
  url.search = kept.length ? `?${kept.join('&')}` : '';
  return url.toString();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** GET {base_url}{path} with the lab's credentials: `{status, body}` (body null when not JSON). */
async function getJson(settings, path) {
  const response = await ServerConnection.makeRequest(`${settings.baseUrl}${path}`, { method: 'GET' }, settings);
  let body = null;
  try {
    body = await response.json();
  } catch {
    /* not JSON */
  }
  return { status: response.status, body };
}

/** The handed-over session, or an Error with the server's message and `status`/`code`. */
async function fetchSession(settings) {
  const { status, body } = await getJson(settings, 'omnisci/session');
  if (status !== 200) {
    const detail = body && typeof body.message === 'string' ? body.message : `HTTP ${status}`;
    const code = body && typeof body.error === 'string' ? body.error : '';
    const error = new Error(`The server has no usable OmniSci session: ${detail}${code ? ` (${code})` : ''}`);
    Object.assign(error, { status, code, detail });
    throw error;
  }
  if (!body || typeof body.session !== 'string' || !body.session) {
    throw Object.assign(new Error('The server has no OmniSci session for this lab (nothing was handed over).'), { status, detail: 'nothing was handed over' });
  }
  return body;
}

/**
 * The session once the server reports `fingerprint`. A session without one comes from a file that
 * cannot carry it (`sessionFormat: text`): it is used as it is. Past `timeout` seconds, an Error
 * saying what the server has instead.
 */
async function waitForHandoff(settings, fingerprint, timeout) {
  const deadline = Date.now() + timeout * 1000;
  let instead = 'no answer yet';
  for (;;) {
    try {
      const answer = await fetchSession(settings);
      if (typeof answer.fingerprint !== 'string') {
        console.warn(`${TITLE}: the server's session carries no fingerprint (sessionFormat text?): opening it as it is`);
        return answer;
      }
      if (answer.fingerprint === fingerprint) return answer;
      instead = 'it still has the session of an earlier handoff';
    } catch (error) {
      if (error.status === 403) throw error;
      instead = `it answers: ${error.detail || error.message}`;
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `The session of this handoff did not reach this server within ${timeout} s: ${instead}. ` +
          'A running server receives a new session when Kubernetes syncs its Secret volume (60–90 s without fast refresh). ' +
          'Open the notebook again from Immerse; if this keeps happening, ask your administrator to check how the session reaches notebook servers. ' +
          'No notebook was opened.',
      );
    }
    await sleep(1000);
  }
}

function pythonKernel(specs) {
  const all = (specs && specs.kernelspecs) || {};
  const spec = all.python3 || Object.values(all).find((s) => s && s.language === 'python');
  return spec ? { name: spec.name, displayName: spec.display_name } : { name: 'python3', displayName: 'Python 3 (ipykernel)' };
}

async function openSessionNotebook(app, answer) {
  const { serviceManager } = app;
  await serviceManager.kernelspecs.ready;
  const kernel = pythonKernel(serviceManager.kernelspecs.specs);
  const created = await serviceManager.contents.newUntitled({ type: 'notebook', path: '' });
  await serviceManager.contents.save(created.path, { type: 'notebook', format: 'json', content: sessionNotebook(answer, kernel) });
  const notebook = await app.commands.execute('docmanager:open', { path: created.path, factory: 'Notebook' });
  keepInFront(app, notebook);
  // OmniSciHandoff.run_on_open: the lab ends on the query's rows.
  if (handoffSettings().runOnOpen) {
    await notebook.sessionContext.ready;
    await app.commands.execute('notebook:run-all-cells', { widgetId: notebook.id });
  }
  return notebook;
}

/**
 * The file browser opens a Launcher when it finds the main area empty after routing, which races
 * with this notebook: until the user does something, a Launcher that becomes current hands the
 * focus back to the notebook.
 */
function keepInFront(app, notebook) {
  const onChanged = (_, { newValue }) => {
    if (newValue && newValue !== notebook && newValue.hasClass('jp-Launcher') && !notebook.isDisposed) app.shell.activateById(notebook.id);
  };
  const stop = () => {
    app.shell.currentChanged.disconnect(onChanged);
    for (const type of ['pointerdown', 'keydown']) document.removeEventListener(type, stop, true);
  };
  app.shell.currentChanged.connect(onChanged);
  for (const type of ['pointerdown', 'keydown']) document.addEventListener(type, stop, true);
}

/** The session, waiting for the handoff's fingerprint when there is one, with a notification while it waits. */
async function handedOverSession(settings, fingerprint, timeout) {
  if (!fingerprint) return fetchSession(settings);
  const waiting = Notification.emit('Waiting for the new OmniSci session to reach this server…', 'in-progress', { autoClose: false });
  try {
    return await waitForHandoff(settings, fingerprint, timeout);
  } finally {
    Notification.dismiss(waiting);
  }
}

const sessionPlugin = {
  id: 'omnisci-handoff-jupyter:session',
  description: 'Opens a notebook connected to HeavyDB with the session handed over from Immerse (?omnisci).',
  autoStart: true,
  requires: [IRouter],
  activate: (app, router) => {
    let handled = false;
    app.commands.addCommand(OPEN_COMMAND, {
      label: 'Open the handed-over OmniSci session in a notebook',
      execute: async (args) => {
        const search = (args && args.search) || window.location.search;
        // JupyterLab's reset runs first (router rank 20), then navigates here again without `reset`.
        if (handled || /[?&]reset(?:[=&#]|$)/.test(search)) return;
        handled = true;
        const fingerprint = queryParam(search, FINGERPRINT_PARAM);
        window.history.replaceState(window.history.state, '', withoutOurs(window.location.href));
        await app.restored;
        try {
          const answer = await handedOverSession(app.serviceManager.serverSettings, fingerprint, handoffSettings().sessionWaitTimeout);
          await openSessionNotebook(app, answer);
          if (app.commands.hasCommand(CHECK_COMMAND)) void app.commands.execute(CHECK_COMMAND);
        } catch (error) {
          console.error(`${TITLE}: ${error && error.message}`);
          void showErrorMessage(TITLE, error instanceof Error ? error : new Error(String(error)));
        }
      },
    });
    router.register({ command: OPEN_COMMAND, pattern: PATTERN, rank: 110 });
  },
};

/** What the status item shows per state: label, colour. */
const LOOK = {
  connected: ['', 'var(--jp-success-color1)'],
  no_session: ['no session', 'var(--jp-ui-font-color2)'],
  expired: ['session expired', 'var(--jp-error-color1)'],
  unreachable: ['HeavyDB unreachable', 'var(--jp-warn-color1)'],
  error: ['session error', 'var(--jp-error-color1)'],
  not_owner: ["the owner's session", 'var(--jp-ui-font-color2)'],
};

const localTime = (iso) => (iso ? new Date(iso).toLocaleString() : 'unknown');

/**
 * The status-bar item. It checks at start, on a click, after a handoff opened a notebook, and every
 * `statusInterval` seconds while the tab is visible and someone used it since the last check (each
 * check is a use of the session at HeavyDB: an unattended tab must not keep it from idling out).
 */
class SessionStatusItem extends Widget {
  constructor(app, config) {
    super();
    this._app = app;
    this._config = config;
    this._lastCheck = 0;
    this._lastActivity = 0;
    this._expiredNotice = null;
    this._state = null;
    this.addClass('jp-StatusBar-TextItem');
    this.addClass('omnisci-handoff-status');
    this.node.style.cursor = 'pointer';
    this._dot = document.createElement('span');
    this._dot.textContent = '● ';
    this._label = document.createElement('span');
    this.node.append(this._dot, this._label);
    this.node.addEventListener('click', () => void this.check());
    const active = () => (this._lastActivity = Date.now());
    for (const type of ['pointerdown', 'keydown']) document.addEventListener(type, active, { capture: true, passive: true });
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && Date.now() - this._lastCheck >= config.statusInterval * 1000) void this.check();
    });
    setInterval(() => {
      if (document.visibilityState === 'visible' && this._lastActivity > this._lastCheck) void this.check();
    }, config.statusInterval * 1000);
  }

  async check() {
    this._lastCheck = Date.now();
    let status;
    try {
      const { status: http, body } = await getJson(this._app.serviceManager.serverSettings, 'omnisci/session/status');
      if (http === 403) status = { state: 'not_owner', message: body && body.message };
      else if (http === 200 && body && typeof body.state === 'string') status = body;
      else status = { state: 'error', message: `The notebook server answered HTTP ${http}.` };
    } catch (error) {
      status = { state: 'error', message: `The notebook server could not be reached (${error && error.message}).` };
    }
    this._render(status);
  }

  _render(status) {
    const configured = !(status.state === 'no_session' && status.reason === 'session_not_configured');
    this.setHidden(!configured);
    const [label, colour] = LOOK[status.state] || LOOK.error;
    this.node.dataset.state = status.state;
    this._dot.style.color = colour;
    this._label.textContent = `OmniSci: ${status.state === 'connected' ? `${status.user}@${status.database}` : label}`;
    const lines = [status.message || ''];
    if (status.handed_over_at) lines.push(`Session handed over at ${localTime(status.handed_over_at)}.`);
    if (status.checked_at) lines.push(`Checked at ${localTime(status.checked_at)}. Click to check again.`);
    this.node.title = lines.filter(Boolean).join('\n');
    const was = this._state;
    this._state = status.state;
    if (status.state === 'expired' && was !== 'expired') this._notifyExpired(status);
    if (status.state !== 'expired' && this._expiredNotice) {
      Notification.dismiss(this._expiredNotice);
      this._expiredNotice = null;
    }
  }

  _notifyExpired(status) {
    const { relinkUrl } = this._config;
    const actions = relinkUrl
      ? [{ label: 'Re-link with Immerse', displayType: 'accent', callback: () => window.open(relinkUrl, '_blank', 'noopener') }]
      : [];
    this._expiredNotice = Notification.emit(
      `Your OmniSci session has expired. ${relinkUrl ? 'Re-link with Immerse' : 'Open the notebook again from Immerse'} to hand a new one over: ` +
        'running notebooks use it at their next query.',
      'warning',
      { autoClose: false, actions },
    );
  }
}

const statusPlugin = {
  id: 'omnisci-handoff-jupyter:status',
  description: "Shows the handed-over OmniSci session's state in the status bar; offers to re-link with Immerse when it expired.",
  autoStart: true,
  optional: [IStatusBar],
  activate: (app, statusBar) => {
    if (!statusBar) return;
    const item = new SessionStatusItem(app, handoffSettings());
    statusBar.registerStatusItem('omnisci-handoff-jupyter:status', { item, align: 'left', rank: 900 });
    app.commands.addCommand(CHECK_COMMAND, { label: 'Check the OmniSci session', execute: () => item.check() });
    void app.restored.then(() => item.check());
  },
};

export default [sessionPlugin, statusPlugin];
