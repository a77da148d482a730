/**
 * Header mode (docs/heavyai.md) end to end, with real peers on loopback: the HeavyDB stand-in (HeavyDB's
 * Thrift JSON over HTTP, vendor-generated code), a stand-in of the HEAVY.AI web server that proxies
 * /jupyter to a real JupyterHub 5 with base_url /jupyter/ and sets X-OmniSci-SessionID on /hub/login,
 * the shipped authenticator with header_login, this service with the local store, the spawner hook,
 * and single-user servers running the released jupyterlab-omnisci (classic notebook 6).
 * Chromium goes from Immerse's Jupyter button to the lab; /user/<name>/omnisci/session then answers
 * the session and the button's SQL. Every refusal ends on the hub's error page with its code, and
 * every refusal of session-login (also those only the authenticator's channel can reach: no hub
 * token, a bad user name, an unknown hub user, the hub down) leaves the store byte for byte as it was.
 * The service runs without a token section (header mode only), as docs/heavyai.md shows it.
 */
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { cpSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { heavydbChecks } from '../../src/doctor/heavydb.js';
import { HandoffError } from '../../src/errors.js';
import { randomSessionId } from '../../src/handoff/mint.js';
import { HeavyDbClient } from '../../src/heavydb/client.js';
import { userDir } from '../../src/store/local.js';
import { launchChromium } from '../support/browser.js';
import { tempDir } from '../support/core.js';
import { startHeavyAiWebServer, SESSION_COOKIE, type HeavyAiWebServer } from '../support/heavyai-webserver.js';
import { startHeavyDb, type HeavyDbStandIn } from '../../scripts/demo/heavydb/standin.js';
import { NoJsBrowser, runningLab, startHubService, type HubService } from '../support/hub-service.js';
import { snapshotTree } from '../support/snapshot.js';
import { freePort, SERVICE_SCOPES_CREATE, SHIPPED_AUTHENTICATOR, spawnerHookConfig, startHub, waitFor, type RunningHub } from '../support/jupyterhub.js';
import { OMNISCI_VENV, omnisciInstalled } from '../support/notebook.js';

jest.setTimeout(180_000);
const BASE = '/jupyter/services/omnisci-handoff/';
const ROLE = 'omnisci_jupyter';
const storeDir = tempDir('oh-heavyai-');
const sessions: string[] = [];
let heavydb: HeavyDbStandIn;
let hub: RunningHub;
let web: HeavyAiWebServer;
let svc: HubService;

/** A session HeavyDB knows (the test keeps every id, to check no log line carries one). */
async function session(user: string, o: { roles?: string[]; superuser?: boolean } = {}): Promise<string> {
  const id = randomSessionId();
  sessions.push(id);
  await heavydb.addSession(id, { user, ...o });
  return id;
}

const stored = (user: string) => existsSync(join(userDir(storeDir, user), 'state.json'));

beforeAll(async () => {
  if (!omnisciInstalled()) throw new Error('jupyterlab-omnisci is not installed: run scripts/deps/omnisci-extension.sh');
  heavydb = await startHeavyDb();
  const port = await freePort();
  const notebook = { envFamilies: ['HEAVYAI'], allowHidden: true };
  hub = await startHub({
    baseUrl: '/jupyter/',
    serviceScopes: SERVICE_SCOPES_CREATE,
    serviceUrl: `http://127.0.0.1:${port}`,
    env: { PYTHONDONTWRITEBYTECODE: '1' },
    extraConfig: `
${SHIPPED_AUTHENTICATOR}c.OmnisciHandoffAuthenticator.header_login = True
${spawnerHookConfig(storeDir, `env_families=${JSON.stringify(notebook.envFamilies)}, allow_hidden=True`)}c.Spawner.cmd = [${JSON.stringify(join(OMNISCI_VENV, 'bin/jupyterhub-singleuser'))}]
c.Spawner.args = ['--allow-root']
c.Spawner.environment = {'JUPYTERHUB_SINGLEUSER_APP': 'notebook.notebookapp.NotebookApp', 'PYTHONWARNINGS': 'ignore'}
`,
  });
  web = await startHeavyAiWebServer(new URL(hub.publicUrl).origin);
  svc = await startHubService({
    hub,
    port,
    basePath: BASE,
    storeDir,
    hubPublicUrl: web.jupyterUrl,
    hubConfig: { createUsers: true },
    sections: {
      token: {},
      omnisci: { protocol: heavydb.protocol, host: heavydb.host, port: heavydb.port, database: 'heavyai' },
      // The longest cache (the default is 5 s): "the same session again" asks HeavyDB no more after the browser test.
      heavydb: { enabled: true, url: heavydb.url, requireRole: ROLE, requestTimeoutMs: 2000, retries: 0, cacheSeconds: 60 },
      notebook,
    },
  });
});

afterAll(async () => {
  await svc?.close();
  await web?.close();
  const hubLog = hub?.log() ?? '';
  await hub?.stop();
  await heavydb?.stop();
  // No session id in any log line: the service's, the hub's (which carries the single-user servers').
  const serviceLog = svc?.logs.lines.join('\n') ?? '';
  for (const s of sessions) {
    expect(serviceLog).not.toContain(s);
    expect(hubLog).not.toContain(s);
  }
  for (const dir of [storeDir, `${storeDir}-jupyter`]) rmSync(dir, { recursive: true, force: true });
});

describe('the HeavyDB client on the wire', () => {
  test('get_session_info and has_role as HeavyDB answers them; a refusal is HeavyDB\'s TDBException', async () => {
    const client = new HeavyDbClient({ url: heavydb.url, requestTimeoutMs: 2000, retries: 0 });
    const id = await session('zoe', { roles: [ROLE] });
    await expect(client.sessionInfo(id)).resolves.toMatchObject({ user: 'zoe', database: 'heavyai', isSuper: false });
    await expect(client.hasRole(id, 'zoe', ROLE)).resolves.toBe(true);
    await expect(client.hasRole(id, 'zoe', 'other')).resolves.toBe(false);
    await expect(client.sessionInfo(randomSessionId())).rejects.toMatchObject({ code: 'heavydb_session_invalid', detail: 'HeavyDB get_session_info: TDBException' });
    const calls = (await heavydb.calls()).filter((c) => (c.args as { session?: string }).session === id);
    expect(calls.map((c) => c.method)).toEqual(['get_session_info', 'has_role', 'has_role']);
  });

  test('a closed port and a server that never answers are heavydb_unavailable, within the timeout', async () => {
    const closed = await freePort();
    const err = await new HeavyDbClient({ url: `http://127.0.0.1:${closed}/`, requestTimeoutMs: 500, retries: 1 }).sessionInfo(randomSessionId()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HandoffError);
    expect((err as HandoffError).code).toBe('heavydb_unavailable');
    expect((err as HandoffError).detail).toMatch(/ECONNREFUSED/);
    const silent: NetServer = createNetServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const hang = await new HeavyDbClient({ url: `http://127.0.0.1:${(silent.address() as { port: number }).port}/`, requestTimeoutMs: 300, retries: 0 })
      .sessionInfo(randomSessionId())
      .catch((e: unknown) => e);
    silent.close();
    expect((hang as HandoffError).code).toBe('heavydb_unavailable');
    expect((hang as HandoffError).detail).toMatch(/timed out/);
  });

  test('doctor: "heavydb: sessions" passes when HeavyDB refuses a made-up session, fails with a fix when it cannot be reached', async () => {
    const checks = async (url: string) => heavydbChecks({ ...svc.config, heavydb: { ...svc.config.heavydb, enabled: true, url, requestTimeoutMs: 1000 } });
    const [ok] = await checks(heavydb.url);
    expect(ok).toMatchObject({ check: 'heavydb: sessions', ok: true });
    const [down] = await checks(`http://127.0.0.1:${await freePort()}/`);
    expect(down).toMatchObject({ check: 'heavydb: sessions', ok: false });
    expect(down!.detail).toMatch(/ECONNREFUSED/);
    expect(down!.fix).toMatch(/heavydb\.url/);
  });
});

/** Opens Immerse's Jupyter button through the web server as a browser without JavaScript would: the first answer. */
async function clickJupyter(sessionId: string | undefined, sql?: string) {
  const b = new NoJsBrowser();
  if (sessionId) b.cookies.set(SESSION_COOKIE, sessionId);
  return { b, res: await b.request(web.buttonUrl(sql), { headers: { accept: 'text/html' } }) };
}

/** …and follows it to the end (the lab). */
async function openNotebook(sessionId: string, sql?: string) {
  const { b, res } = await clickJupyter(sessionId, sql);
  return { b, end: await b.follow(res, web.buttonUrl(sql)) };
}

describe('refusals: the hub shows the code, nothing is stored, the browser is not logged in', () => {
  const cases: [string, () => Promise<string | undefined>, number, string][] = [
    ['no session header', async () => undefined, 401, 'heavydb_session_missing'],
    ['a forged (well-formed, unknown) session', async () => randomSessionId(), 401, 'heavydb_session_invalid'],
    ['a malformed session', async () => 'not-a-session', 401, 'heavydb_session_invalid'],
    [
      'an expired session',
      async () => {
        const id = await session('carol', { roles: [ROLE] });
        await heavydb.expireSession(id);
        return id;
      },
      401,
      'heavydb_session_invalid',
    ],
    ['a session whose user lacks the role', () => session('dave', { roles: ['analyst'] }), 403, 'heavydb_role_missing'],
  ];
  test.each(cases)('%s', async (what, make, status, code) => {
    const before = (await heavydb.calls()).length;
    const sessionId = await make();
    const store = snapshotTree(storeDir);
    const { b, res } = await clickJupyter(sessionId);
    expect(res.status).toBe(status);
    const text = await res.text();
    expect(text).toContain(`(code ${code})`);
    expect([...b.cookies.keys()].some((k) => k.startsWith('jupyterhub-session'))).toBe(false);
    expect(snapshotTree(storeDir)).toEqual(store);
    // A malformed id never reaches HeavyDB; no refusal is followed by anything but the check.
    const calls = (await heavydb.calls()).slice(before).map((c) => c.method);
    expect(calls.every((m) => m === 'get_session_info' || m === 'has_role')).toBe(true);
    if (code === 'heavydb_session_missing' || what === 'a malformed session') expect(calls).toEqual([]);
  });

  test('the header on any other hub path logs nobody in (only /hub/login takes it)', async () => {
    const id = await session('frank', { roles: [ROLE] });
    const res = await fetch(`${web.jupyterUrl}/hub/home`, { redirect: 'manual', headers: { 'x-omnisci-sessionid': id } });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toMatch(/\/jupyter\/hub\/login\?next=/);
    expect(stored('frank')).toBe(false);
  });
});

describe('from the Immerse button to the lab', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  test('Chromium: button → hub login (header) → progress → lab with ?omnisci&reset; the server has the session and the SQL', async () => {
    const id = await session('alice', { roles: [ROLE] });
    const sql = 'SELECT carrier, AVG(delay_minutes) FROM flights GROUP BY carrier';
    const context = await browser.newContext();
    await context.addCookies([{ name: SESSION_COOKIE, value: id, url: web.url }]);
    const page = await context.newPage();
    const seen: string[] = [];
    page.on('framenavigated', (f) => {
      if (f === page.mainFrame()) seen.push(f.url());
    });
    await page.goto(`${web.url}/?sql=${encodeURIComponent(sql)}`);
    await page.click('#jupyter');
    await page.waitForURL(/\/jupyter\/user\/alice\/lab/, { timeout: 90_000 });
    expect(page.url()).toBe(`${web.jupyterUrl}/user/alice/lab?omnisci&reset`);
    // The hub redirected to the service's next URL: its progress page (the server was not running).
    expect(seen.some((u) => u.startsWith(`${web.url}${BASE}progress/`))).toBe(true);
    expect(seen.every((u) => !u.includes(id))).toBe(true);
    // The web server set the header on /hub/login only.
    expect(web.proxied.filter((p) => p.session === id).map((p) => p.path)).toEqual(['/jupyter/hub/login']);

    const answer = await page.request.get(`${web.jupyterUrl}/user/alice/omnisci/session`);
    expect(answer.status()).toBe(200);
    const body = (await answer.json()) as { session: string; query: string; connection: Record<string, unknown> };
    expect(body.session).toBe(id);
    expect(body.query).toBe(sql);
    // Env var values, as the extension reads them.
    expect(body.connection).toMatchObject({ host: heavydb.host, port: String(heavydb.port), protocol: heavydb.protocol });
    await context.close();
  });

  test('the same session again: straight to the running lab, stored once more unchanged, HeavyDB asked no more (cache)', async () => {
    const id = sessions[sessions.length - 1]!;
    const state = () => JSON.parse(readFileSync(join(userDir(storeDir, 'alice'), 'state.json'), 'utf8')) as { session: string; query: string };
    const before = await heavydb.calls();
    const { end } = await openNotebook(id, 'SELECT 1');
    // The server runs: the lab URL carries the stored session's fingerprint (header mode too).
    expect(end.url).toBe(runningLab(svc, `${web.jupyterUrl}/user/alice/lab?omnisci&reset`, 'alice'));
    expect(state()).toMatchObject({ session: id, query: 'SELECT 1' });
    expect((await heavydb.calls()).length).toBe(before.length);
  });

  test('a superuser needs no role; the server gets allow_hidden and the scratch-directory config', async () => {
    const id = await session('bob', { superuser: true });
    const { b, end } = await openNotebook(id);
    expect(end.url).toBe(`${web.jupyterUrl}/user/bob/lab?omnisci&reset`);
    const res = await b.request(`${web.jupyterUrl}/user/bob/omnisci/session`);
    expect(((await res.json()) as { session: string }).session).toBe(id);
    const env = readFileSync(join(`${storeDir}-jupyter`, 'bob', 'jupyter_notebook_config.json'), 'utf8');
    expect(JSON.parse(env)).toMatchObject({ ContentsManager: { allow_hidden: true } });
    // The hook wrote the scratch-directory config too (heavyai-notebook.test.ts proves the stock readers with it).
    const hook = readFileSync(join(`${storeDir}-jupyter`, 'bob', 'jupyter_server_config.py'), 'utf8');
    expect(hook).toContain('.jupyterscratch');
  });

  test("a browser logged in to the hub as someone else becomes the session's user (the header always logs in)", async () => {
    const { b } = await openNotebook(await session('erin', { superuser: true }));
    expect([...b.cookies.keys()].some((k) => k.startsWith('jupyterhub-session'))).toBe(true);
    b.cookies.set(SESSION_COOKIE, await session('frank', { roles: [ROLE] }));
    const end = await b.follow(await b.request(web.buttonUrl(), { headers: { accept: 'text/html' } }), web.buttonUrl());
    expect(end.url).toBe(`${web.jupyterUrl}/user/frank/lab?omnisci&reset`);
    // The hub serves frank's lab to frank only: the browser is frank now, not erin.
    expect(end.status).toBe(200);
    expect(end.text).toContain('<title>JupyterLab</title>');
    expect(stored('frank')).toBe(true);
  });
});

describe("session-login's other refusals (the authenticator's channel): the store byte for byte as it was", () => {
  /** POSTs to session-login as the authenticator does; the status and the error code. */
  const sessionLogin = async (url: string, body: unknown, token: string | null = hub.serviceToken) => {
    const res = await fetch(`${url}session-login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', ...(token ? { authorization: `token ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    return [res.status, ((await res.json()) as { error: string }).error] as const;
  };
  /** A second service on this hub (its own store, a copy of the first's) with other hub settings. */
  const otherService = async (hubConfig: Record<string, unknown>) => {
    const dir = tempDir('oh-heavyai-other-');
    cpSync(storeDir, dir, { recursive: true });
    const other = await startHubService({ hub, storeDir: dir, hubPublicUrl: web.jupyterUrl, hubConfig, sections: { token: {}, omnisci: svc.config.omnisci, heavydb: svc.config.heavydb } });
    return { other, dir, close: async () => (await other.close(), rmSync(dir, { recursive: true, force: true })) };
  };

  test('the store has records to keep', () => {
    expect(Object.keys(snapshotTree(storeDir)).filter((p) => p.endsWith('state.json')).length).toBeGreaterThan(1);
  });

  test.each([
    ['no Authorization header', null, 403, 'forbidden'],
    ["another token than this service's", 'not-the-service-token', 403, 'forbidden'],
  ])('%s: 403, HeavyDB not asked', async (_what, token, status, code) => {
    const id = await session('hal', { roles: [ROLE] });
    const [store, calls] = [snapshotTree(storeDir), (await heavydb.calls()).length];
    expect(await sessionLogin(svc.url, { session: id }, token)).toEqual([status, code]);
    expect(snapshotTree(storeDir)).toEqual(store);
    expect((await heavydb.calls()).length).toBe(calls);
  });

  test('a HeavyDB user name no hub user can have: bad_username', async () => {
    const id = await session('bad/name', { superuser: true });
    const store = snapshotTree(storeDir);
    expect(await sessionLogin(svc.url, { session: id })).toEqual([400, 'bad_username']);
    expect(snapshotTree(storeDir)).toEqual(store);
  });

  test('a user the hub does not know, without hub.createUsers: hub_user_unknown', async () => {
    const { other, dir, close } = await otherService({ createUsers: false });
    try {
      const id = await session('ivy', { roles: [ROLE] });
      const store = snapshotTree(dir);
      expect(await sessionLogin(other.url, { session: id })).toEqual([404, 'hub_user_unknown']);
      expect(snapshotTree(dir)).toEqual(store);
      expect((await hub.admin('GET', '/users/ivy')).status).toBe(404);
    } finally {
      await close();
    }
  });

  test('the hub down: hub_unavailable', async () => {
    const { other, dir, close } = await otherService({ apiUrl: `http://127.0.0.1:${await freePort()}/hub/api`, retries: 0 });
    try {
      const id = await session('alice', { roles: [ROLE] });
      const store = snapshotTree(dir);
      expect(await sessionLogin(other.url, { session: id })).toEqual([502, 'hub_unavailable']);
      expect(snapshotTree(dir)).toEqual(store);
    } finally {
      await close();
    }
  });

  test('no token is taken (no token section): tokens_disabled, nothing stored', async () => {
    const store = snapshotTree(storeDir);
    const res = await fetch(`${svc.url}handoff`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }, body: 'token=a.b.c' });
    expect([res.status, ((await res.json()) as { error: string }).error]).toEqual([404, 'tokens_disabled']);
    expect(snapshotTree(storeDir)).toEqual(store);
  });
});

test('HeavyDB down: 503 heavydb_unavailable with Retry-After and a way to try again; nothing stored', async () => {
  const id = await session('gina', { roles: [ROLE] });
  const store = snapshotTree(storeDir);
  await heavydb.stop();
  const { res } = await clickJupyter(id);
  expect(res.status).toBe(503);
  expect(res.headers.get('retry-after')).toBe('5');
  const text = await res.text();
  expect(text).toContain('(code heavydb_unavailable)');
  expect(text).toContain('Try again');
  expect(snapshotTree(storeDir)).toEqual(store);
  await waitFor(async () => (svc.logs.lines.some((l) => l.includes('heavydb_unavailable')) ? true : undefined), 50);
});
