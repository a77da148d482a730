/**
 * The single-user image the docs recommend for the notebook side (images/singleuser/Containerfile:
 * Debian bookworm, python 3.11, jupyterlab-omnisci 3.0.0 on notebook 6 with the suite's pins), built
 * with podman on the local Debian stand-in and started with what the webhook mounts: the session
 * file (a Secret volume: root:fsGroup 100, 0440) at /var/run/omnisci-handoff/session, the Jupyter
 * config files (jupyterConfigFiles) in a directory named by JUPYTER_CONFIG_PATH, and the OMNISCI_*
 * env. Its /omnisci/session answers as in test/integration/omnisci-extension.test.ts, outside a
 * container. The container shares the host's network namespace, on a free loopback port.
 */
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { connectionEnv, jupyterConfigFiles, sessionFileContent } from '../../src/notebook/outputs.js';
import { randomSessionId, testConfig } from '../support/core.js';
import {
  BASE_IMAGES,
  build,
  containerName,
  ensureBaseImages,
  freePort,
  imageSize,
  mb,
  podman,
  podmanOk,
  ROOT,
  tempDir,
  waitForHttp,
} from './podman.js';

jest.setTimeout(30 * 60_000);

const TAG = 'localhost/omnisci-handoff-test/singleuser:latest';
const JUPYTER_CONFIG_DIR = '/etc/omnisci-handoff/jupyter'; // webhook.jupyterConfigDir's default
const FS_GROUP = 100; // z2jh's singleuser fsGroup, the image user's group
const nb = testConfig().notebook;
const connection = { protocol: 'binary', host: 'heavy.db.test', port: 6278, database: '' } as const;
const token = randomBytes(24).toString('hex');
const name = containerName('singleuser');
const dirs: string[] = [];
let sessionDir: string;
let url: string;

/** Replaces the session file as kubelet updates a Secret volume: a new file renamed over the old. */
function writeSession(session: string, query: string): void {
  const tmp = join(sessionDir, `.${nb.sessionFileName}.tmp`);
  writeFileSync(tmp, sessionFileContent({ session, query }, 'json'));
  chownSync(tmp, 0, FS_GROUP);
  chmodSync(tmp, 0o440);
  renameSync(tmp, join(sessionDir, nb.sessionFileName));
}

const get = async (path: string, authenticated = true) => {
  const r = await fetch(`${url}${path}`, { headers: authenticated ? { Authorization: `token ${token}` } : {}, redirect: 'manual' });
  return { status: r.status, text: await r.text() };
};

beforeAll(async () => {
  await ensureBaseImages();
  const built = await build({ tag: TAG, context: ROOT, file: join(ROOT, 'images/singleuser/Containerfile'), args: { BASE: BASE_IMAGES.debian } });
  const [size, base] = [await imageSize(TAG), await imageSize(BASE_IMAGES.debian)];
  process.stdout.write(`single-user image: ${mb(size)} (${mb(size - base)} on top of the ${mb(base)} Debian stand-in), built in ${built.seconds.toFixed(1)}s\n`);

  sessionDir = tempDir('oh-su-session-');
  const configDir = tempDir('oh-su-jupyter-');
  dirs.push(sessionDir, configDir);
  chmodSync(sessionDir, 0o755);
  chmodSync(configDir, 0o755);
  writeSession('placeholder', '');
  // What the webhook's ConfigMap volume holds: the files for the default session file path.
  expect(`${nb.sessionDir}/${nb.sessionFileName}`).toBe('/var/run/omnisci-handoff/session');
  for (const [rel, content] of Object.entries(jupyterConfigFiles(nb))) {
    mkdirSync(dirname(join(configDir, rel)), { recursive: true, mode: 0o755 });
    writeFileSync(join(configDir, rel), content, { mode: 0o444 });
  }
  const env = { ...connectionEnv(connection, nb.env), JUPYTER_CONFIG_PATH: JUPYTER_CONFIG_DIR, JUPYTER_TOKEN: token };
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  await podmanOk(
    'run', '-d', '--name', name, '--network', 'host',
    '-v', `${sessionDir}:${nb.sessionDir}:ro`, '-v', `${configDir}:${JUPYTER_CONFIG_DIR}:ro`,
    ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
    // The notebook server itself (the image's default is jupyterhub-singleuser, which needs a hub).
    TAG, 'jupyter-notebook', '--no-browser', '--ip=127.0.0.1', `--port=${port}`, '--port-retries=0',
  );
  await waitForHttp(`${url}/api/status`, name, { Authorization: `token ${token}` });
});

afterAll(async () => {
  await podman('rm', '-f', '-t', '0', name);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('the image: jovyan (1000:100), jupyterhub-singleuser with the classic NotebookApp, the pinned versions', async () => {
  const cfg = JSON.parse(await podmanOk('image', 'inspect', '--format', '{{json .Config}}', TAG)) as { User: string; Cmd: string[]; Env: string[] };
  expect(cfg.User).toBe(`1000:${FS_GROUP}`);
  expect(cfg.Cmd).toEqual(['jupyterhub-singleuser']);
  expect(cfg.Env).toContain('JUPYTERHUB_SINGLEUSER_APP=notebook.notebookapp.NotebookApp');
  const versions = await podmanOk(
    'run', '--rm', '--network', 'none', TAG, 'python', '-c',
    "import sys; from importlib.metadata import version as v; print(sys.version_info[:2], v('jupyterlab-omnisci'), v('notebook'), v('jupyterlab'), v('jupyterhub'))",
  );
  expect(versions).toBe('(3, 11) 3.0.0 6.4.13 2.3.2 3.1.1');
  // The server runs as the image's user, as a pod without runAsUser would.
  const top = await podmanOk('top', name, 'user', 'comm');
  expect(top).toMatch(/^jovyan\s+jupyter-noteboo/m);
});

test('GET /omnisci/session returns the mounted session, query and connection', async () => {
  const session = randomSessionId();
  writeSession(session, 'SELECT 1');
  const res = await get('/omnisci/session');
  expect(res.status).toBe(200);
  expect(JSON.parse(res.text)).toEqual({
    session,
    query: 'SELECT 1',
    connection: { protocol: 'binary', host: 'heavy.db.test', port: '6278' },
    environment: { protocol: 'OMNISCI_PROTOCOL', host: 'OMNISCI_HOST', port: 'OMNISCI_PORT' },
  });
  const denied = await get('/omnisci/session', false);
  expect(denied.status).toBe(403);
  expect(denied.text).not.toContain(session);
});

test('a replaced session file is served without a restart', async () => {
  const session = randomSessionId();
  writeSession(session, 'SELECT 2');
  const answer = JSON.parse((await get('/omnisci/session')).text) as { session: string; query: string };
  expect([answer.session, answer.query]).toEqual([session, 'SELECT 2']);
  const logs = await podman('logs', name);
  expect(`${logs.stdout}${logs.stderr}`).not.toContain(session);
});
