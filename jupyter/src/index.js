/**
 * JupyterLab 4 side of omnisci-handoff.
 *
 * When the lab is opened with a bare `?omnisci` in its URL (the service sends the browser to
 * `{hub}/user/{name}/lab?omnisci&reset`), this plugin asks the server extension for the handed-over
 * session (`GET {base_url}omnisci/session`, the contract of jupyterlab-omnisci's server extension)
 * and opens a new notebook whose first cell connects to HeavyDB with that session (pyheavydb's
 * `heavydb.connect(sessionid=...)`, host/port/protocol from the server's environment) and whose
 * second cell holds the handed-over SQL.
 *
 * `?reset` stays JupyterLab's: its own router command clears the workspace and then navigates to the
 * same URL without `reset`; this plugin waits for that URL, so it never races the reset.
 *
 * Plain JavaScript on purpose: the three JupyterLab packages below are shared singletons the lab
 * provides at run time (package.json `jupyterlab.sharedPackages`, never bundled), so building needs
 * nothing but @jupyterlab/builder.
 */
import { IRouter } from '@jupyterlab/application';
import { showErrorMessage } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';

import { sessionNotebook } from './notebook.mjs';

const PLUGIN_ID = 'omnisci-handoff-jupyter:session';
const COMMAND = 'omnisci-handoff:open-session';
const TITLE = 'OmniSci session';

/** `omnisci` as a query parameter (bare, or with a value), e.g. `?omnisci`, `?omnisci&reset`, `?x=1&omnisci=`. */
const PATTERN = /[?&]omnisci(?:[=&#]|$)/;

/** The URL without `omnisci` (other parameters and the hash kept), so a reload does not open another notebook. */
function withoutOmnisci(href) {
  const url = new URL(href);
  const kept = url.search
    .replace(/^\?/, '')
    .split('&')
    .filter((part) => part && part.split('=')[0] !== 'omnisci');
  url.search = kept.length ? `?${kept.join('&')}` : '';
  return url.toString();
}

/** GET {base_url}omnisci/session with the lab's credentials; the answer, or an Error carrying the server's message. */
async function fetchSession(settings) {
  const response = await ServerConnection.makeRequest(`${settings.baseUrl}omnisci/session`, { method: 'GET' }, settings);
  let body = null;
  try {
    body = await response.json();
  } catch {
    /* not JSON */
  }
  if (!response.ok) {
    const detail = body && typeof body.message === 'string' ? body.message : `HTTP ${response.status}`;
    const code = body && typeof body.error === 'string' ? ` (${body.error})` : '';
    throw new Error(`The server has no usable OmniSci session: ${detail}${code}`);
  }
  if (!body || typeof body.session !== 'string' || !body.session) {
    throw new Error('The server has no OmniSci session for this lab (nothing was handed over).');
  }
  return body;
}

function pythonKernel(specs) {
  const all = (specs && specs.kernelspecs) || {};
  const spec = all.python3 || Object.values(all).find((s) => s && s.language === 'python');
  return spec ? { name: spec.name, displayName: spec.display_name } : { name: 'python3', displayName: 'Python 3 (ipykernel)' };
}

async function openSessionNotebook(app) {
  const { serviceManager } = app;
  const answer = await fetchSession(serviceManager.serverSettings);
  await serviceManager.kernelspecs.ready;
  const kernel = pythonKernel(serviceManager.kernelspecs.specs);
  const created = await serviceManager.contents.newUntitled({ type: 'notebook', path: '' });
  await serviceManager.contents.save(created.path, { type: 'notebook', format: 'json', content: sessionNotebook(answer, kernel) });
  return app.commands.execute('docmanager:open', { path: created.path, factory: 'Notebook' });
}

const plugin = {
  id: PLUGIN_ID,
  description: 'Opens a notebook connected to HeavyDB with the session handed over from Immerse (?omnisci).',
  autoStart: true,
  requires: [IRouter],
  activate: (app, router) => {
    let handled = false;
    app.commands.addCommand(COMMAND, {
      label: 'Open the handed-over OmniSci session in a notebook',
      execute: async (args) => {
        const search = (args && args.search) || window.location.search;
        // JupyterLab's reset runs first (router rank 20), then navigates here again without `reset`.
        if (handled || /[?&]reset(?:[=&#]|$)/.test(search)) return;
        handled = true;
        window.history.replaceState(window.history.state, '', withoutOmnisci(window.location.href));
        await app.restored;
        try {
          await openSessionNotebook(app);
        } catch (error) {
          console.error(`${PLUGIN_ID}: ${error && error.message}`);
          void showErrorMessage(TITLE, error instanceof Error ? error : new Error(String(error)));
        }
      },
    });
    router.register({ command: COMMAND, pattern: PATTERN, rank: 110 });
  },
};

export default plugin;
