/**
 * What the single-user server receives, independent of how it gets there (Kubernetes Secret +
 * webhook, or the local store + a JupyterHub hook): the session file, the connection env vars and
 * the Jupyter config that enables jupyterlab-omnisci's server extension.
 */
import { posix } from 'node:path';
import type { Config, SessionFormat } from '../config/types.js';
import type { Connection, Handoff } from '../handoff/types.js';

/**
 * The session file. `json` ({"session","query"}) is what every released jupyterlab-omnisci
 * (<= 3.0.0) parses with json.loads; `text` (the id alone) is what its docs describe, and makes the
 * released extension fail to read the file. `json` also carries the session's `fingerprint`, when it
 * has one (src/hub/fingerprint.ts: never the id), which omnisci-handoff-jupyter's lab waits for and
 * jupyterlab-omnisci ignores; `text` cannot.
 */
export function sessionFileContent(record: Pick<Handoff, 'session' | 'query'> & { fingerprint?: string }, format: SessionFormat): string {
  if (format === 'text') return record.session ? `${record.session}\n` : '';
  const { session, query, fingerprint } = record;
  return `${JSON.stringify({ session, query, ...(fingerprint === undefined ? {} : { fingerprint }) })}\n`;
}

/** Env var name → value for the connection (names from notebook.env). */
export function connectionEnv(connection: Connection, names: Config['notebook']['env']): Record<string, string> {
  return {
    [names.protocol]: connection.protocol,
    [names.host]: connection.host,
    [names.port]: String(connection.port),
  };
}

/** Every set of connection env var names: notebook.env, then <FAMILY>_PROTOCOL/_HOST/_PORT of each notebook.envFamilies entry. */
export function envNameSets(nb: Config['notebook']): Config['notebook']['env'][] {
  return [nb.env, ...nb.envFamilies.map((f) => ({ protocol: `${f}_PROTOCOL`, host: `${f}_HOST`, port: `${f}_PORT` }))];
}

/** The connection env of a single-user server: every name of envNameSets (a name in two sets once). */
export function notebookEnv(connection: Connection, nb: Config['notebook']): Record<string, string> {
  return Object.assign({}, ...envNameSets(nb).map((names) => connectionEnv(connection, names))) as Record<string, string>;
}

function sessionFilePath(nb: Config['notebook']): string {
  return posix.join(nb.sessionDir, nb.sessionFileName);
}

/** The traitlets config, as a JSON object, for a session file at `sessionFile`. */
function jupyterConfig(nb: Config['notebook'], sessionFile = sessionFilePath(nb)): Record<string, unknown> {
  return {
    OmniSciSessionManager: {
      session_file: sessionFile,
      protocol: nb.env.protocol,
      host: nb.env.host,
      port: nb.env.port,
    },
    // jupyter_server >= 2 refuses contents-API writes to hidden paths; the HEAVY.AI web server writes
    // ~/.jupyterscratch/.omniscisession, which omnisci_connect() reads (docs/heavyai.md).
    ...(nb.allowHidden ? { ContentsManager: { allow_hidden: true } } : {}),
    // omnisci-handoff-jupyter's own settings: where "Re-link with Immerse" goes once the session expired.
    ...(nb.relinkUrl === undefined ? {} : { OmniSciHandoff: { relink_url: nb.relinkUrl } }),
  };
}

export const JUPYTER_CONFIG_FILE = 'omnisci-handoff.json';
/** jupyterlab-omnisci's server extension module (its `/omnisci/session` handler; classic notebook server < 7). */
export const SERVER_EXTENSION = 'jupyterlab_omnisci.serverextension';
/** This repository's jupyter_server 2 + JupyterLab 4 companion (jupyter/), the same contract on current Jupyter. */
export const COMPANION_EXTENSION = 'omnisci_handoff_jupyter';

/**
 * With notebook.allowHidden, run by both servers at start (a Jupyter `.py` config file): the HEAVY.AI
 * web server PUTs ~/.jupyterscratch/.omniscisession through the contents API, which creates no
 * directory, and heavyai_connect() reads .heavyaisession next to it (omnisci_connect(), .omniscisession).
 */
export const SCRATCH_CONFIG = `# omnisci-handoff (notebook.allowHidden): the HEAVY.AI web server writes ~/.jupyterscratch/.omniscisession
# through the contents API, which creates no directory; heavyai_connect() reads .heavyaisession there.
import os

_scratch = os.path.join(os.path.expanduser("~"), ".jupyterscratch")
try:
    os.makedirs(_scratch, mode=0o700, exist_ok=True)
    if not os.path.lexists(os.path.join(_scratch, ".heavyaisession")):
        os.symlink(".omniscisession", os.path.join(_scratch, ".heavyaisession"))
except OSError as e:  # a read-only home must not stop the server
    print(f"omnisci-handoff: cannot prepare {_scratch}: {e}")
`;

/**
 * Files keyed by path relative to a Jupyter config directory, for the classic notebook server (what
 * jupyterlab-omnisci 3.0.0 targets) and jupyter_server. Both servers read only the extension switch
 * from `*_config.d/` (merged with other extensions' switches there); every other trait, here the
 * session manager's, is read from the top-level `*_config.json` alone (proven in
 * test/integration/omnisci-extension.test.ts).
 */
export function jupyterConfigFiles(nb: Config['notebook'], sessionFile = sessionFilePath(nb)): Record<string, string> {
  const json = (o: unknown) => `${JSON.stringify(o, null, 2)}\n`;
  const manager = json(jupyterConfig(nb, sessionFile));
  return {
    [`jupyter_notebook_config.d/${JUPYTER_CONFIG_FILE}`]: json({ NotebookApp: { nbserver_extensions: { [SERVER_EXTENSION]: true } } }),
    // Both, so one config serves either image: jupyter_server only warns about the one it lacks.
    [`jupyter_server_config.d/${JUPYTER_CONFIG_FILE}`]: json({
      ServerApp: { jpserver_extensions: { [SERVER_EXTENSION]: true, [COMPANION_EXTENSION]: true } },
    }),
    'jupyter_notebook_config.json': manager,
    'jupyter_server_config.json': manager,
    ...(nb.allowHidden ? { 'jupyter_notebook_config.py': SCRATCH_CONFIG, 'jupyter_server_config.py': SCRATCH_CONFIG } : {}),
  };
}
