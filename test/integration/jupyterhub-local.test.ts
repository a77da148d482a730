/**
 * The whole chain without a cluster: a real JupyterHub 5 with a local-process spawner and
 * contrib/jupyterhub/omnisci_handoff_hook.py, the service as a hub service with the local store,
 * and single-user servers running the released jupyterlab-omnisci 3.0.0 (notebook 6, jupyterlab 2).
 * Handoff → spawn → the browser lands on the lab → GET /user/{name}/omnisci/session answers the
 * handed-over session; a later handoff reaches the running server without a restart.
 */
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomSessionId } from '../../src/handoff/mint.js';
import { hmacKey, mint, tempDir } from '../support/core.js';
import { NoJsBrowser, runningLab, startHubService, type HubService } from '../support/hub-service.js';
import { freePort, SERVICE_SCOPES_CREATE, SHIPPED_AUTHENTICATOR, spawnerHookConfig, startHub, type RunningHub } from '../support/jupyterhub.js';
import { OMNISCI_VENV, omnisciInstalled } from '../support/notebook.js';

jest.setTimeout(180_000);
const PREFIX = '/services/omnisci-handoff/';
const key = hmacKey('HS256');
const storeDir = tempDir('oh-hubhook-');
const sessions: string[] = [];
let hub: RunningHub;
let svc: HubService;

beforeAll(async () => {
  if (!omnisciInstalled()) throw new Error('jupyterlab-omnisci is not installed: run scripts/deps/omnisci-extension.sh');
  const port = await freePort();
  hub = await startHub({
    serviceScopes: SERVICE_SCOPES_CREATE,
    serviceUrl: `http://127.0.0.1:${port}`,
    env: { PYTHONDONTWRITEBYTECODE: '1' },
    extraConfig: `
${SHIPPED_AUTHENTICATOR}${spawnerHookConfig(storeDir)}# The released extension needs the classic notebook server: jupyterhub-singleuser from its venv.
c.Spawner.cmd = [${JSON.stringify(join(OMNISCI_VENV, 'bin/jupyterhub-singleuser'))}]
c.Spawner.args = ['--allow-root']
c.Spawner.environment = {'JUPYTERHUB_SINGLEUSER_APP': 'notebook.notebookapp.NotebookApp', 'PYTHONWARNINGS': 'ignore'}
`,
  });
  svc = await startHubService({ hub, port, basePath: PREFIX, storeDir, hubConfig: { createUsers: true, loginMode: 'handoff' } });
});

afterAll(async () => {
  await svc?.close();
  const log = hub?.log() ?? '';
  await hub?.stop();
  // Neither the hub nor the single-user server (whose output the hub carries) logs a session id.
  for (const s of sessions) expect(log).not.toContain(s);
  for (const dir of [storeDir, `${storeDir}-jupyter`]) rmSync(dir, { recursive: true, force: true });
});

/** A handoff of a new session; to a `running` server the lab URL carries the stored session's fingerprint. */
async function handoff(b: NoJsBrowser, user: string, query: string, running = false): Promise<string> {
  const session = randomSessionId();
  sessions.push(session);
  const end = await b.postHandoff(svc.url, await mint(key, { subject: user, omnisci: { session, query, protocol: 'binary', port: 6278 } }));
  expect(end.status).toBe(200);
  const lab = `${hub.publicUrl}/user/${user}/lab?omnisci&reset`;
  expect(end.url).toBe(running ? runningLab(svc, lab, user) : lab);
  return session;
}

async function omnisciSession(b: NoJsBrowser, user: string) {
  const res = await b.request(`${hub.publicUrl}/user/${user}/omnisci/session`);
  expect(res.status).toBe(200);
  return (await res.json()) as { session: string; query: string; connection: Record<string, string> };
}

const started = async (user: string) =>
  ((await hub.admin('GET', `/users/${user}`)).json as { servers: Record<string, { started: string; ready: boolean }> }).servers[''];

test('handoff → spawn → lab → /omnisci/session; a second handoff reaches the running server', async () => {
  const b = new NoJsBrowser();
  const first = await handoff(b, 'nina', 'SELECT 1');
  const server = await started('nina');
  expect(server?.ready).toBe(true);
  expect(await omnisciSession(b, 'nina')).toEqual({
    session: first,
    query: 'SELECT 1',
    connection: { protocol: 'binary', host: 'omnisci.test', port: '6278' },
    environment: { protocol: 'OMNISCI_PROTOCOL', host: 'OMNISCI_HOST', port: 'OMNISCI_PORT' },
  });

  const second = await handoff(b, 'nina', 'SELECT 2', true);
  expect(second).not.toBe(first);
  const answer = await omnisciSession(b, 'nina');
  expect([answer.session, answer.query]).toEqual([second, 'SELECT 2']);
  // Same server process: the extension re-read the file, nothing was restarted.
  expect((await started('nina'))?.started).toBe(server?.started);
});

test("another browser without the user's login gets no session", async () => {
  const res = await new NoJsBrowser().request(`${hub.publicUrl}/user/nina/omnisci/session`);
  expect(res.status).not.toBe(200);
  expect(await res.text()).not.toContain(sessions[0]!);
});
