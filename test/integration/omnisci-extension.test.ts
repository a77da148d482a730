/**
 * The notebook side with the released extension: after real HTTP handoffs into the local store, the
 * classic notebook server started with exactly the Jupyter config files and env vars the service
 * generates serves our session at GET /omnisci/session (jupyterlab-omnisci 3.0.0's handler), picks up
 * a newer handoff without a restart, and fails on a plain-id (`text`) session file.
 */
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { connectionEnv, jupyterConfigFiles } from '../../src/notebook/outputs.js';
import { userDir } from '../../src/store/local.js';
import { hmacKey, mint, postToken, randomSessionId, startTestService, tempDir, testConfig, type TestService } from '../support/core.js';
import { startNotebook, writeTree, type RunningNotebook } from '../support/notebook.js';

jest.setTimeout(180_000);

const key = hmacKey('HS256');
const omnisci = { protocol: 'binary', host: 'heavy.db.test', port: 6278 } as const;
const storeDir = tempDir('oh-nb-store-');
const configFor = (sessionFormat: 'json' | 'text') => testConfig({ store: { local: { dir: storeDir } }, notebook: { sessionFormat } });
const services: TestService[] = [];
let json: TestService;
let nb: RunningNotebook;
let configDir: string;
const sessions: string[] = [];

async function handoff(svc: TestService, query = ''): Promise<string> {
  const session = randomSessionId();
  sessions.push(session);
  const res = await postToken(svc.url, await mint(key, { subject: 'alice', omnisci: { session, query, ...omnisci } }));
  expect(res.status).toBe(303);
  return session;
}

interface SessionAnswer {
  session: string;
  query: string;
  connection: { protocol: string; host: string; port: string };
  environment: Record<string, string>;
}

beforeAll(async () => {
  json = await startTestService(configFor('json'));
  services.push(json);
  const session = await handoff(json, 'SELECT 1');
  expect(session).toBeTruthy();
  const record = await json.store.get('alice');
  if (!record) throw new Error('no record stored');
  const nbConfig = json.config.notebook;
  const sessionFile = join(userDir(storeDir, 'alice'), nbConfig.sessionFileName);
  configDir = writeTree(jupyterConfigFiles(nbConfig, sessionFile));
  nb = await startNotebook(configDir, connectionEnv(record.connection, nbConfig.env));
});

afterAll(async () => {
  await nb?.stop();
  for (const s of services) await s.close();
  // The server's log never carries a session id (the extension reads the file per request and says nothing).
  for (const s of sessions) expect(nb.log()).not.toContain(s);
  rmSync(storeDir, { recursive: true, force: true });
  rmSync(configDir, { recursive: true, force: true });
});

test('GET /omnisci/session returns the handed-over session, query and connection', async () => {
  const res = await nb.get('/omnisci/session');
  expect(res.status).toBe(200);
  expect(JSON.parse(res.text) as SessionAnswer).toEqual({
    session: sessions[0]!,
    query: 'SELECT 1',
    connection: { protocol: 'binary', host: 'heavy.db.test', port: '6278' },
    environment: { protocol: 'OMNISCI_PROTOCOL', host: 'OMNISCI_HOST', port: 'OMNISCI_PORT' },
  });
});

test('the endpoint needs the server token', async () => {
  const res = await nb.get('/omnisci/session', false);
  expect(res.status).toBe(403);
  expect(res.text).not.toContain(sessions[0]!);
});

test('a newer handoff reaches the running server without a restart', async () => {
  const session = await handoff(json, 'SELECT 2');
  const answer = JSON.parse((await nb.get('/omnisci/session')).text) as SessionAnswer;
  expect(answer.session).toBe(session);
  expect(answer.query).toBe('SELECT 2');
});

test('text format: the released extension cannot read a plain-id session file (why json is the default)', async () => {
  const text = await startTestService(configFor('text'));
  services.push(text);
  const session = await handoff(text);
  expect(readFileSync(join(userDir(storeDir, 'alice'), 'session'), 'utf8')).toBe(`${session}\n`);
  const res = await nb.get('/omnisci/session');
  // json.loads on the bare id raises; the handler's own error path fails too (finish(exception)),
  // so the notebook answers a 500 with the traceback and the lab gets no session.
  expect(res.status).toBe(500);
  expect((JSON.parse(res.text) as { traceback: string }).traceback).toContain('json.decoder.JSONDecodeError');
  expect(res.text).not.toContain(session);
});
