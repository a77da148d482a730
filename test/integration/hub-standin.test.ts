/**
 * The JupyterHub stand-in (test/support/hub-standin.ts) answers like a real JupyterHub 5: one
 * scenario table runs against both — a real hub from startHub() and a stand-in configured alike
 * (concurrent_spawn_limit 1, slow_spawn_timeout 1.5 s, slow_stop_timeout 1 s, Retry-After 1–2 s; the
 * test spawner's slow-* and fail-* users, plus latefail-* failing after slow_spawn_timeout and
 * slowstop-* taking 2 s to stop) — and every scenario asserts the real hub's answer (status codes,
 * messages, headers, model shapes) and that the stand-in's is the same. Then the service's own
 * HubClient and ensureServer run against the stand-in: start, progress, a 429 absorbed, failures,
 * retries of injected 502s, a hub that is down, scope and token errors, and the OAuth code trade.
 */
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { HandoffError } from '../../src/errors.js';
import { HubClient } from '../../src/hub/client.js';
import { ensureServer, type SpawnUpdate } from '../../src/hub/spawn.js';
import { startHubStandin, testSpawner, type HubStandin, type Spawner } from '../support/hub-standin.js';
import { freePort, startHub, type RunningHub } from '../support/jupyterhub.js';

jest.setTimeout(60_000);

const SLOW_S = 3;
const SLOW_SPAWN_TIMEOUT_S = 1.5;
const LATE_FAIL_S = 2.5;
const SLOW_STOP_S = 2;
const SLOW_STOP_TIMEOUT_S = 1;

/** Users the real hub's spawner (extraConfig below) and the stand-in's (paritySpawner) both know. */
const PARITY_SPAWNER_PY = `
import asyncio
from test_spawner import TestSpawner as _TestSpawner
class ParitySpawner(_TestSpawner):
    async def start(self):
        if self.user.name.startswith('latefail-'):
            await asyncio.sleep(${LATE_FAIL_S})
            raise RuntimeError(f"the parity spawner gave up on {self.user.name}")
        return await super().start()
    async def stop(self, now=False):
        if self.user.name.startswith('slowstop-'):
            await asyncio.sleep(${SLOW_STOP_S})
        return await super().stop(now=now)
c.JupyterHub.spawner_class = ParitySpawner
c.JupyterHub.tornado_settings['slow_stop_timeout'] = ${SLOW_STOP_TIMEOUT_S}
# Users may use the service as an OAuth client (the hub's default user role lacks this).
c.JupyterHub.load_roles.append({'name': 'user', 'scopes': ['self', 'access:services!service=omnisci-handoff']})
`;

const paritySpawner: Spawner = (user, server) => {
  const b = testSpawner(SLOW_S * 1000)(user, server);
  if (user.startsWith('latefail-')) return { ...b, spawnMs: LATE_FAIL_S * 1000, fail: `the parity spawner gave up on ${user}` };
  if (user.startsWith('slowstop-')) return { ...b, stopMs: SLOW_STOP_S * 1000 };
  return b;
};

interface Target {
  kind: 'real hub' | 'stand-in';
  apiUrl: string;
  publicUrl: string;
  serviceToken: string;
  adminToken: string;
  /** A service with read:servers only, and one with no scopes at all. */
  readerToken: string;
  scopelessToken: string;
  /** A Cookie header of a browser logged in to the hub as `user`. */
  login(user: string): Promise<string>;
}

let real: RunningHub;
let standin: HubStandin;
let targets: [Target, Target];

beforeAll(async () => {
  const extraServices = { reader: ['read:servers'], scopeless: [] };
  [real, standin] = await Promise.all([
    startHub({
      serviceScopes: ['servers'],
      // Registered with a URL, so it is an OAuth client (nothing needs to listen there).
      serviceUrl: `http://127.0.0.1:${await freePort()}`,
      extraServices,
      concurrentSpawnLimit: 1,
      slowSeconds: SLOW_S,
      slowSpawnTimeout: SLOW_SPAWN_TIMEOUT_S,
      retryRange: [1, 2],
      extraConfig: PARITY_SPAWNER_PY,
    }),
    startHubStandin({
      serviceScopes: ['servers'],
      extraServices,
      concurrentSpawnLimit: 1,
      slowSpawnTimeoutMs: SLOW_SPAWN_TIMEOUT_S * 1000,
      slowStopTimeoutMs: SLOW_STOP_TIMEOUT_S * 1000,
      retryRange: [1, 2],
      spawner: paritySpawner,
    }),
  ]);
  targets = [
    {
      kind: 'real hub',
      apiUrl: real.apiUrl,
      publicUrl: real.publicUrl,
      serviceToken: real.serviceToken,
      adminToken: real.adminToken,
      readerToken: real.extraTokens.reader!,
      scopelessToken: real.extraTokens.scopeless!,
      login: (user) => realLogin(real.publicUrl, user),
    },
    {
      kind: 'stand-in',
      apiUrl: standin.apiUrl,
      publicUrl: standin.publicUrl,
      serviceToken: standin.serviceToken,
      adminToken: standin.adminToken,
      readerToken: standin.extraTokens.reader!,
      scopelessToken: standin.extraTokens.scopeless!,
      login: async (user) => standin.loginBrowser(user),
    },
  ];
});

afterAll(async () => {
  await Promise.all([real?.stop(), standin?.stop()]);
});

/** The dummy authenticator's login form, as a browser submits it (with the form's XSRF token). */
async function realLogin(publicUrl: string, user: string): Promise<string> {
  const jar = new Map<string, string>();
  const keep = (r: Response) => {
    for (const c of r.headers.getSetCookie()) {
      const [pair = ''] = c.split(';');
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
  };
  const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const page = await fetch(`${publicUrl}/hub/login`, { redirect: 'manual' });
  keep(page);
  const xsrf = /name="_xsrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
  const r = await fetch(`${publicUrl}/hub/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookie() },
    body: new URLSearchParams({ username: user, password: 'any', _xsrf: xsrf }).toString(),
  });
  keep(r);
  await r.body?.cancel();
  if (r.status !== 302 || !jar.has('jupyterhub-hub-login')) throw new Error(`hub login failed: HTTP ${r.status}`);
  return cookie();
}

// --- observing answers ----------------------------------------------------------------------------

interface Answer {
  status: number;
  type: string | null;
  headers: Headers;
  text: string;
  json: unknown;
}

async function call(t: Target, token: string | undefined, method: string, path: string, o: { body?: unknown; scheme?: string; headers?: Record<string, string>; form?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...(token === undefined ? {} : { Authorization: `${o.scheme ?? 'token'} ${token}` }), ...o.headers };
  let body: string | null = null;
  if (o.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(o.body);
  } else if (o.form) {
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(o.form).toString();
  }
  const r = await fetch(t.apiUrl + path, { method, headers, body, redirect: 'manual' });
  const text = await r.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: r.status, type: r.headers.get('content-type')?.split(';')[0] ?? null, headers: r.headers, text, json };
}

/** Status and body (JSON if any, else text) — what the scenarios compare for error answers. */
const sb = (a: Answer) => ({ status: a.status, body: a.json ?? a.text });

/** The events of an SSE body (keepalive blank lines skipped). */
const events = (a: Answer) =>
  a.text
    .split('\n\n')
    .map((b) => b.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n'))
    .filter(Boolean)
    .map((d) => JSON.parse(d) as Record<string, unknown>);

/** Keys (sorted) and value types, recursively: what "the same shape" means. */
function shape(v: unknown): unknown {
  if (v === null) return 'null';
  if (Array.isArray(v)) return v.map(shape);
  if (typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, x]) => [k, shape(x)]),
    );
  }
  return typeof v;
}

type Model = { servers?: Record<string, Record<string, unknown>> };
const server = (a: Answer) => (a.json as Model).servers?.[''];

async function until<T>(check: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const v = await check();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('condition not reached');
}

/**
 * Runs a scenario on both targets at once; asserts the real hub's observation is `expected` and the
 * stand-in's is the same.
 */
async function parity(scenario: (t: Target) => Promise<unknown>, expected: unknown): Promise<void> {
  const [onReal, onStandin] = await Promise.all(targets.map(scenario));
  expect({ target: 'real hub', observed: onReal }).toEqual({ target: 'real hub', observed: expected });
  expect({ target: 'stand-in', observed: onStandin }).toEqual({ target: 'stand-in', observed: onReal });
}

const notFound = { status: 404, body: { status: 404, message: 'Not Found' } };
const forbidden = (scopes: string) => ({ status: 403, body: { status: 403, message: `Action is not authorized with current scopes; requires any of [${scopes}]` } });
const badRequest = (message: string) => ({ status: 400, body: { status: 400, message } });
const ADMIN_USER_SHAPE = {
  admin: 'boolean',
  auth_state: 'null',
  created: 'string',
  groups: [],
  kind: 'string',
  last_activity: 'null',
  name: 'string',
  pending: 'null',
  roles: ['string'],
  server: 'null',
  servers: {},
};
const readyEvent = (user: string) => ({
  progress: 100,
  ready: true,
  message: `Server ready at /user/${user}/`,
  html_message: `Server ready at <a href="/user/${user}/">/user/${user}/</a>`,
  url: `/user/${user}/`,
});

describe('the stand-in answers like a real JupyterHub 5', () => {
  test('an unknown user: 404 for its model, its server and its progress', async () => {
    await parity(
      async (t) => ({
        get: sb(await call(t, t.serviceToken, 'GET', '/users/nobody')),
        type: (await call(t, t.serviceToken, 'GET', '/users/nobody')).type,
        start: sb(await call(t, t.serviceToken, 'POST', '/users/nobody/server', { body: {} })),
        stop: sb(await call(t, t.serviceToken, 'DELETE', '/users/nobody/server')),
        progress: sb(await call(t, t.serviceToken, 'GET', '/users/nobody/server/progress')),
      }),
      { get: notFound, type: 'application/json', start: notFound, stop: notFound, progress: notFound },
    );
  });

  test('creating a user: 403 with servers alone, 201 with admin:users, then 409; models filtered by scope', async () => {
    await parity(
      async (t) => {
        const svcCreate = sb(await call(t, t.serviceToken, 'POST', '/users/ann', { body: {} }));
        const created = await call(t, t.adminToken, 'POST', '/users/ann', { body: {} });
        return {
          svcCreate,
          created: { status: created.status, type: created.type, shape: shape(created.json) },
          again: sb(await call(t, t.adminToken, 'POST', '/users/ann')),
          serviceView: sb(await call(t, t.serviceToken, 'GET', '/users/ann')),
          adminView: shape((await call(t, t.adminToken, 'GET', '/users/ann')).json),
        };
      },
      {
        svcCreate: forbidden('admin:users'),
        created: { status: 201, type: 'application/json', shape: ADMIN_USER_SHAPE },
        again: { status: 409, body: { status: 409, message: 'User ann already exists' } },
        serviceView: { status: 200, body: { kind: 'user', name: 'ann', admin: false, servers: {} } },
        adminView: ADMIN_USER_SHAPE,
      },
    );
  });

  test('a start ready within slow_spawn_timeout: 201; the server model; 400 while running; progress is one ready event', async () => {
    await parity(
      async (t) => {
        await call(t, t.adminToken, 'POST', '/users/fay');
        const start = await call(t, t.serviceToken, 'POST', '/users/fay/server', { body: { profile: 'small' } });
        const model = await call(t, t.serviceToken, 'GET', '/users/fay');
        const s = server(model)!;
        const adminServer = server(await call(t, t.adminToken, 'GET', '/users/fay'))!;
        const progress = await call(t, t.serviceToken, 'GET', '/users/fay/server/progress');
        return {
          start: { status: start.status, type: start.type, text: start.text },
          shape: shape(model.json),
          server: { ...s, last_activity: typeof s.last_activity, started: typeof s.started },
          adminServerKeys: Object.keys(adminServer).sort(),
          again: sb(await call(t, t.serviceToken, 'POST', '/users/fay/server', { body: {} })),
          named: sb(await call(t, t.serviceToken, 'POST', '/users/fay/servers/lab2', { body: {} })),
          progress: { status: progress.status, type: progress.type, cache: progress.headers.get('cache-control'), events: events(progress) },
        };
      },
      {
        start: { status: 201, type: 'text/plain', text: '' },
        shape: {
          admin: 'boolean',
          kind: 'string',
          name: 'string',
          servers: {
            '': {
              full_name: 'string',
              full_progress_url: 'null',
              full_url: 'null',
              last_activity: 'string',
              name: 'string',
              pending: 'null',
              progress_url: 'string',
              ready: 'boolean',
              started: 'string',
              stopped: 'boolean',
              url: 'string',
              user_options: { profile: 'string' },
            },
          },
        },
        server: {
          name: '',
          full_name: 'fay/',
          last_activity: 'string',
          started: 'string',
          pending: null,
          ready: true,
          stopped: false,
          url: '/user/fay/',
          user_options: { profile: 'small' },
          progress_url: '/hub/api/users/fay/server/progress',
          full_url: null,
          full_progress_url: null,
        },
        adminServerKeys: ['full_name', 'full_progress_url', 'full_url', 'last_activity', 'name', 'pending', 'progress_url', 'ready', 'started', 'state', 'stopped', 'url', 'user_options'],
        again: badRequest('fay is already running'),
        named: badRequest('Named servers are not enabled.'),
        progress: { status: 200, type: 'text/event-stream', cache: 'no-cache', events: [readyEvent('fay')] },
      },
    );
  });

  test('a slow start: pending spawn, 429 + Retry-After for another user, 202 again, progress events then ready', async () => {
    await parity(
      async (t) => {
        await call(t, t.adminToken, 'POST', '/users/slow-sam');
        await call(t, t.adminToken, 'POST', '/users/ola');
        const first = call(t, t.serviceToken, 'POST', '/users/slow-sam/server', { body: {} });
        const pending = await until(async () => {
          const s = server(await call(t, t.serviceToken, 'GET', '/users/slow-sam'));
          return s?.pending === 'spawn' ? s : undefined;
        });
        const progress = call(t, t.serviceToken, 'GET', '/users/slow-sam/server/progress');
        const throttled = await call(t, t.serviceToken, 'POST', '/users/ola/server', { body: {} });
        const throttledProgress = sb(await call(t, t.serviceToken, 'GET', '/users/ola/server/progress'));
        const again = await call(t, t.serviceToken, 'POST', '/users/slow-sam/server', { body: {} });
        const firstAnswer = await first;
        const stream = await progress;
        const after = server(await call(t, t.serviceToken, 'GET', '/users/slow-sam'))!;
        return {
          pending: { pending: pending.pending, ready: pending.ready, stopped: pending.stopped },
          throttled: { ...sb(throttled), retryAfter: throttled.headers.get('retry-after') },
          throttledProgress,
          again: { status: again.status, type: again.type },
          first: { status: firstAnswer.status, type: firstAnswer.type },
          progress: { status: stream.status, events: events(stream) },
          after: { pending: after.pending, ready: after.ready },
        };
      },
      {
        pending: { pending: 'spawn', ready: false, stopped: false },
        throttled: { status: 429, body: { status: 429, message: 'Too many users trying to log in right now. Try again in 10 seconds.' }, retryAfter: '1' },
        throttledProgress: badRequest('ola is not starting...'),
        again: { status: 202, type: 'text/plain' },
        first: { status: 202, type: 'text/plain' },
        progress: {
          status: 200,
          events: [
            { progress: 0, message: 'Server requested' },
            { progress: 20, message: 'Preparing a server for slow-sam' },
            { progress: 50, message: 'Still pulling the image (test spawner)' },
            readyEvent('slow-sam'),
          ],
        },
        after: { pending: null, ready: true },
      },
    );
  });

  test('a spawn failing at once: 500 "error"; progress repeats the failure; the next start tries again', async () => {
    const failed = { status: 200, events: [{ progress: 100, failed: true, message: 'Spawn failed: the test spawner refuses to start fail-fred' }] };
    await parity(
      async (t) => {
        await call(t, t.adminToken, 'POST', '/users/fail-fred');
        const start = sb(await call(t, t.serviceToken, 'POST', '/users/fail-fred/server', { body: {} }));
        const model = sb(await call(t, t.serviceToken, 'GET', '/users/fail-fred'));
        const p1 = await call(t, t.serviceToken, 'GET', '/users/fail-fred/server/progress');
        const p2 = await call(t, t.serviceToken, 'GET', '/users/fail-fred/server/progress');
        return {
          start,
          model,
          progress: [{ status: p1.status, events: events(p1) }, { status: p2.status, events: events(p2) }],
          again: sb(await call(t, t.serviceToken, 'POST', '/users/fail-fred/server', { body: {} })),
        };
      },
      {
        start: { status: 500, body: { status: 500, message: 'error' } },
        model: { status: 200, body: { kind: 'user', name: 'fail-fred', admin: false, servers: {} } },
        progress: [failed, failed],
        again: { status: 500, body: { status: 500, message: 'error' } },
      },
    );
  });

  test('a spawn failing after slow_spawn_timeout: 202, then the progress stream ends in failed', async () => {
    await parity(
      async (t) => {
        await call(t, t.adminToken, 'POST', '/users/latefail-lu');
        const start = await call(t, t.serviceToken, 'POST', '/users/latefail-lu/server', { body: {} });
        const stream = await call(t, t.serviceToken, 'GET', '/users/latefail-lu/server/progress');
        return {
          start: start.status,
          progress: { status: stream.status, type: stream.type, events: events(stream) },
          after: sb(await call(t, t.serviceToken, 'GET', '/users/latefail-lu')),
        };
      },
      {
        start: 202,
        progress: {
          status: 200,
          type: 'text/event-stream',
          events: [
            { progress: 0, message: 'Server requested' },
            { progress: 20, message: 'Preparing a server for latefail-lu' },
            { progress: 100, failed: true, message: 'Spawn failed: the parity spawner gave up on latefail-lu' },
          ],
        },
        after: { status: 200, body: { kind: 'user', name: 'latefail-lu', admin: false, servers: {} } },
      },
    );
  });

  test('stops: 204 when quick, 202 and pending stop when slow; a start while stopping is 400; progress 404 or 400', async () => {
    await parity(
      async (t) => {
        await call(t, t.adminToken, 'POST', '/users/gus');
        await call(t, t.adminToken, 'POST', '/users/slowstop-sue');
        const quick = {
          start: (await call(t, t.serviceToken, 'POST', '/users/gus/server', { body: {} })).status,
          stop: await call(t, t.serviceToken, 'DELETE', '/users/gus/server').then((a) => ({ status: a.status, type: a.type })),
          model: sb(await call(t, t.serviceToken, 'GET', '/users/gus')),
          // Cleanly stopped: the hub dropped the spawner.
          progress: sb(await call(t, t.serviceToken, 'GET', '/users/gus/server/progress')),
          stopAgain: (await call(t, t.serviceToken, 'DELETE', '/users/gus/server')).status,
          // That DELETE made the hub hold a (stopped) spawner again.
          progressAfter: sb(await call(t, t.serviceToken, 'GET', '/users/gus/server/progress')),
        };
        const slowStart = (await call(t, t.serviceToken, 'POST', '/users/slowstop-sue/server', { body: {} })).status;
        const stop = await call(t, t.serviceToken, 'DELETE', '/users/slowstop-sue/server');
        const stopping = server(await call(t, t.serviceToken, 'GET', '/users/slowstop-sue'))!;
        const slow = {
          start: slowStart,
          stop: { status: stop.status, type: stop.type },
          model: { pending: stopping.pending, ready: stopping.ready },
          startWhileStopping: sb(await call(t, t.serviceToken, 'POST', '/users/slowstop-sue/server', { body: {} })),
          progress: sb(await call(t, t.serviceToken, 'GET', '/users/slowstop-sue/server/progress')),
          stopAgain: (await call(t, t.serviceToken, 'DELETE', '/users/slowstop-sue/server')).status,
          stopped: await until(async () => {
            const m = (await call(t, t.serviceToken, 'GET', '/users/slowstop-sue')).json as Model;
            return m.servers && !Object.keys(m.servers).length ? m : undefined;
          }),
        };
        return { quick, slow };
      },
      {
        quick: {
          start: 201,
          stop: { status: 204, type: null },
          model: { status: 200, body: { kind: 'user', name: 'gus', admin: false, servers: {} } },
          progress: notFound,
          stopAgain: 204,
          progressAfter: badRequest('gus is not starting...'),
        },
        slow: {
          start: 201,
          stop: { status: 202, type: 'text/plain' },
          model: { pending: 'stop', ready: false },
          startWhileStopping: badRequest('slowstop-sue is pending stop'),
          progress: badRequest('slowstop-sue is not starting...'),
          stopAgain: 202,
          stopped: { kind: 'user', name: 'slowstop-sue', admin: false, servers: {} },
        },
      },
    );
  });

  test('missing scopes: 403 naming the scopes that would do', async () => {
    await parity(
      async (t) => {
        await call(t, t.adminToken, 'POST', '/users/ida');
        const self = await call(t, t.scopelessToken, 'GET', '/user');
        return {
          readerGet: sb(await call(t, t.readerToken, 'GET', '/users/ida')),
          readerStart: sb(await call(t, t.readerToken, 'POST', '/users/ida/server', { body: {} })),
          readerStop: sb(await call(t, t.readerToken, 'DELETE', '/users/ida/server')),
          readerProgress: sb(await call(t, t.readerToken, 'GET', '/users/ida/server/progress')),
          serviceDeletesUser: sb(await call(t, t.serviceToken, 'DELETE', '/users/ida')),
          scopelessGet: sb(await call(t, t.scopelessToken, 'GET', '/users/ida')),
          scopelessSelf: { status: self.status, body: { ...(self.json as object), token_id: typeof (self.json as { token_id: unknown }).token_id } },
        };
      },
      {
        readerGet: { status: 200, body: { kind: 'user', name: 'ida', admin: false, servers: {} } },
        readerStart: forbidden('servers'),
        readerStop: forbidden('delete:servers'),
        readerProgress: notFound,
        serviceDeletesUser: forbidden('delete:users'),
        scopelessGet: forbidden('read:users, read:users:name, read:servers, read:users:groups, read:users:activity, read:roles:users'),
        scopelessSelf: { status: 200, body: { kind: 'service', name: 'scopeless', admin: false, token_id: 'string', session_id: null, scopes: [] } },
      },
    );
  });

  test('bad or missing token: 403 "Missing or invalid credentials." (GET /user: "Forbidden"); token and bearer schemes', async () => {
    const invalid = { status: 403, body: { status: 403, message: 'Missing or invalid credentials.' } };
    await parity(
      async (t) => ({
        bad: sb(await call(t, 'not-a-token', 'GET', '/users/nobody')),
        none: sb(await call(t, undefined, 'GET', '/users/nobody')),
        badStart: sb(await call(t, 'not-a-token', 'POST', '/users/nobody/server', { body: {} })),
        badScheme: sb(await call(t, t.serviceToken, 'GET', '/users/nobody', { scheme: 'Basic' })),
        badSelf: sb(await call(t, 'not-a-token', 'GET', '/user')),
        noneSelf: sb(await call(t, undefined, 'GET', '/user')),
        bearer: (await call(t, t.serviceToken, 'GET', '/users/nobody', { scheme: 'Bearer' })).status,
        version: sb(await call(t, undefined, 'GET', '/')),
      }),
      {
        bad: invalid,
        none: invalid,
        badStart: invalid,
        badScheme: invalid,
        badSelf: { status: 403, body: { status: 403, message: 'Forbidden' } },
        noneSelf: { status: 403, body: { status: 403, message: 'Forbidden' } },
        bearer: 404,
        version: { status: 200, body: { version: '5.5.4' } },
      },
    );
  });

  test('GET /user with a service token: the service, with its expanded scopes', async () => {
    const whoami = async (t: Target, token: string) => {
      const a = await call(t, token, 'GET', '/user');
      const j = a.json as Record<string, unknown>;
      return { status: a.status, body: { ...j, token_id: typeof j.token_id } };
    };
    await parity(
      async (t) => ({ service: await whoami(t, t.serviceToken), admin: await whoami(t, t.adminToken) }),
      {
        service: {
          status: 200,
          body: { kind: 'service', name: 'omnisci-handoff', admin: false, token_id: 'string', session_id: null, scopes: ['delete:servers', 'read:servers', 'read:users:name', 'servers'] },
        },
        admin: {
          status: 200,
          body: {
            kind: 'service',
            name: 'test-admin',
            admin: false,
            token_id: 'string',
            session_id: null,
            scopes: [
              'admin:auth_state', 'admin:server_state', 'admin:servers', 'admin:users', 'delete:servers', 'delete:users', 'list:users', 'read:roles:users',
              'read:servers', 'read:users', 'read:users:activity', 'read:users:groups', 'read:users:name', 'servers', 'users', 'users:activity',
            ],
          },
        },
      },
    );
  });

  test('OAuth: authorize (anonymous → /hub/login, logged in → code), the token endpoint errors, and the access token', async () => {
    const redirectUri = '/services/omnisci-handoff/oauth_callback';
    const authorizeQuery = (o: Record<string, string> = {}) =>
      `/oauth2/authorize?${new URLSearchParams({ client_id: 'service-omnisci-handoff', redirect_uri: redirectUri, response_type: 'code', state: 'xyz', ...o })}`;
    await parity(
      async (t) => {
        const anonymous = await call(t, undefined, 'GET', authorizeQuery());
        const cookie = await t.login('kai');
        const authorize = (o?: Record<string, string>) => call(t, undefined, 'GET', authorizeQuery(o), { headers: { cookie } });
        const ok = await authorize();
        const back = new URL(ok.headers.get('location')!, 'http://x');
        const code = back.searchParams.get('code')!;
        const trade = async (form: Record<string, string>) => {
          const a = await call(t, undefined, 'POST', '/oauth2/token', {
            form: { client_id: 'service-omnisci-handoff', client_secret: t.serviceToken, grant_type: 'authorization_code', code, redirect_uri: redirectUri, ...form },
          });
          return { ...sb(a), cache: a.headers.get('cache-control'), pragma: a.headers.get('pragma'), wwwAuthenticate: a.headers.get('www-authenticate') };
        };
        const failures = {
          wrongSecret: await trade({ client_secret: 'wrong' }),
          wrongClient: await trade({ client_id: 'service-other' }),
          otherRedirect: await trade({ redirect_uri: '/services/omnisci-handoff/other' }),
          noGrantType: await trade({ grant_type: '' }),
          password: await trade({ grant_type: 'password' }),
          unknownCode: await trade({ code: 'not-a-code' }),
        };
        // The code survived those failed attempts.
        const good = await trade({});
        const { access_token, ...tokenRest } = good.body as Record<string, unknown>;
        const reused = await trade({});
        const me = await call(t, access_token as string, 'GET', '/user');
        const meBody = me.json as Record<string, unknown>;
        const other = sb(await call(t, access_token as string, 'GET', '/users/ida'));
        const own = sb(await call(t, access_token as string, 'GET', '/users/kai'));
        const otherRedirect = await authorize({ redirect_uri: '/services/omnisci-handoff/other' });
        const unknownClient = await authorize({ client_id: 'service-nope' });
        const tokenType = await authorize({ response_type: 'token' });
        return {
          anonymous: { status: anonymous.status, location: anonymous.headers.get('location') },
          authorized: { status: ok.status, path: back.pathname, params: [...back.searchParams.keys()].sort(), state: back.searchParams.get('state'), codeLength: code.length },
          failures,
          // The hub joins the scopes of a Python set: their order varies from one hub process to the next.
          token: { ...good, body: { ...tokenRest, scope: String(tokenRest.scope).split(' ').sort(), access_token: typeof access_token, length: String(access_token).length } },
          reused: reused.body,
          me: { status: me.status, body: { ...meBody, token_id: typeof meBody.token_id, session_id: typeof meBody.session_id } },
          own,
          other,
          authorizeErrors: {
            otherRedirect: { status: otherRedirect.status, type: otherRedirect.type },
            unknownClient: { status: unknownClient.status, type: unknownClient.type },
            tokenType: { status: tokenType.status, location: tokenType.headers.get('location') },
          },
        };
      },
      {
        anonymous: {
          status: 302,
          location:
            '/hub/login?next=%2Fhub%2Fapi%2Foauth2%2Fauthorize%3Fclient_id%3Dservice-omnisci-handoff%26redirect_uri%3D%252Fservices%252Fomnisci-handoff%252Foauth_callback%26response_type%3Dcode%26state%3Dxyz',
        },
        authorized: { status: 302, path: redirectUri, params: ['code', 'state'], state: 'xyz', codeLength: 30 },
        failures: {
          wrongSecret: { status: 401, body: { error: 'invalid_client' }, cache: 'no-store', pragma: 'no-cache', wwwAuthenticate: 'Bearer error="invalid_client"' },
          wrongClient: { status: 401, body: { error: 'invalid_client' }, cache: 'no-store', pragma: 'no-cache', wwwAuthenticate: 'Bearer error="invalid_client"' },
          otherRedirect: { status: 400, body: { error: 'invalid_request', error_description: 'Mismatching redirect URI.' }, cache: 'no-store', pragma: 'no-cache', wwwAuthenticate: null },
          noGrantType: { status: 400, body: { error: 'unsupported_grant_type' }, cache: 'no-store', pragma: 'no-cache', wwwAuthenticate: null },
          password: { status: 400, body: { error: 'unsupported_grant_type' }, cache: 'no-store', pragma: 'no-cache', wwwAuthenticate: null },
          unknownCode: { status: 400, body: { error: 'invalid_grant' }, cache: 'no-store', pragma: 'no-cache', wwwAuthenticate: null },
        },
        token: {
          status: 200,
          body: {
            access_token: 'string',
            length: 30,
            expires_in: 1209600,
            token_type: 'Bearer',
            scope: ['access:services!service=omnisci-handoff', 'read:users:groups!user', 'read:users:name!user'],
          },
          cache: 'no-store',
          pragma: 'no-cache',
          wwwAuthenticate: null,
        },
        reused: { error: 'invalid_grant' },
        me: {
          status: 200,
          body: {
            kind: 'user',
            name: 'kai',
            admin: false,
            groups: [],
            token_id: 'string',
            session_id: 'string',
            scopes: ['access:services!service=omnisci-handoff', 'read:users:groups!user=kai', 'read:users:name!user=kai'],
          },
        },
        own: { status: 200, body: { kind: 'user', name: 'kai', admin: false, groups: [] } },
        other: { status: 404, body: { status: 404, message: 'No access to resources or resources not found' } },
        authorizeErrors: {
          otherRedirect: { status: 400, type: 'text/html' },
          unknownClient: { status: 400, type: 'text/html' },
          tokenType: { status: 302, location: `${redirectUri}?error=unsupported_response_type&state=xyz` },
        },
      },
    );
  });
});

describe("the service's HubClient and ensureServer against the stand-in", () => {
  let hub: HubStandin;
  const client = (token = hub.serviceToken, retries = 2) => new HubClient({ apiUrl: hub.apiUrl, token, requestTimeoutMs: 2000, retries });
  const ensure = (user: string, o: { userOptions?: Record<string, unknown>; timeoutMs?: number; follow?: boolean; wanted?: () => boolean } = {}) => {
    const updates: SpawnUpdate[] = [];
    const done = ensureServer(client(), {
      user,
      server: '',
      userOptions: o.userOptions ?? {},
      restart: false,
      timeoutMs: o.timeoutMs ?? 20_000,
      onUpdate: (u) => updates.push(u),
      follow: o.follow ?? false,
      ...(o.wanted ? { wanted: o.wanted } : {}),
    });
    return { done, updates };
  };
  const calls = (user: string) => hub.requests.filter((r) => r.path.startsWith(`/users/${user}`)).map((r) => `${r.method} ${r.path} ${r.status}`);
  /** An admin start of the user's server, repeated every 200 ms while throttled: the final status and how many POSTs it took. */
  const startOnceFree = async (user: string): Promise<{ status: number; posts: number }> => {
    for (let posts = 1; ; posts++) {
      const { status } = await call(hubTarget(hub), hub.adminToken, 'POST', `/users/${user}/server`, { body: {} });
      if (status !== 429) return { status, posts };
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  /** Runs `fn` with the hub's concurrent_spawn_limit at 1 (then back to 100, and Retry-After to 1 s). */
  const withSpawnLimitOne = async (fn: () => Promise<void>) => {
    hub.configure({ concurrentSpawnLimit: 1 });
    try {
      await fn();
    } finally {
      hub.configure({ concurrentSpawnLimit: 100, retryRange: [1, 1] });
    }
  };

  beforeAll(async () => {
    hub = await startHubStandin({ serviceScopes: ['servers'], retryRange: [1, 1], slowSpawnTimeoutMs: 100 });
  });
  afterAll(async () => {
    await hub?.stop();
  });

  test('a slow start: 202, the spawner messages reach onUpdate, the admin user_options are sent once', async () => {
    hub.setUser('pat', { spawnMs: 400, progress: [{ atMs: 50, progress: 40, message: 'Pulling the image' }] });
    const { done, updates } = ensure('pat', { userOptions: { profile: 'small' } });
    await done;
    expect(hub.server('pat')).toMatchObject({ phase: 'running', spawns: 1, userOptions: { profile: 'small' } });
    expect(hub.userOptionsSent('pat')).toEqual([{ profile: 'small' }]);
    expect(updates.map((u) => u.message)).toEqual(expect.arrayContaining(['Server requested', 'Pulling the image']));
    expect(calls('pat')).toEqual(['GET /users/pat 200', 'POST /users/pat/server 202', 'GET /users/pat 200', 'GET /users/pat/server/progress 200', 'GET /users/pat 200']);
    // Running already: one read, nothing else.
    hub.resetRequests();
    await ensure('pat').done;
    expect(calls('pat')).toEqual(['GET /users/pat 200']);
  });

  test('429 from concurrent_spawn_limit is absorbed: the task waits Retry-After and asks again, without reading the user in between', () =>
    withSpawnLimitOne(async () => {
      hub.setUser('hog', { spawnMs: 1500 });
      hub.setUser('queued', { spawnMs: 0 });
      expect((await call(hubTarget(hub), hub.adminToken, 'POST', '/users/hog/server', { body: {} })).status).toBe(202);
      const { done, updates } = ensure('queued');
      await done;
      expect(hub.server('queued')?.ready).toBe(true);
      const seen = calls('queued');
      expect(hub.count('POST', '/users/queued/server')).toBeGreaterThan(1);
      // Every 429 is followed by the next start request, never by a read of the user.
      seen.forEach((c, i) => {
        if (c.endsWith(' 429')) expect(seen[i + 1]).toMatch(/^POST \/users\/queued\/server (429|20[12])$/);
      });
      expect(updates.map((u) => u.message)).toContain('Too many users trying to log in right now. Waiting 1 s, then trying again…');
    }));

  test("a throttled follower asks at most every 10 s (the handoff's own replica asks at the hub's pace)", () =>
    withSpawnLimitOne(async () => {
      hub.setUser('hog2', { spawnMs: 5000 });
      hub.setUser('queued-f', { spawnMs: 0 });
      hub.setUser('queued-o', { spawnMs: 0 });
      expect((await call(hubTarget(hub), hub.adminToken, 'POST', '/users/hog2/server', { body: {} })).status).toBe(202);
      const follower = ensure('queued-f', { follow: true, timeoutMs: 3500 });
      const origin = ensure('queued-o', { timeoutMs: 3500 });
      await expect(follower.done).rejects.toMatchObject({ code: 'hub_spawn_timeout' });
      await expect(origin.done).rejects.toMatchObject({ code: 'hub_spawn_timeout' });
      expect(hub.count('POST', '/users/queued-f/server')).toBe(1);
      // At the hub's pace (Retry-After 1 s): asked again within the 3.5 s, where the follower was not.
      expect(hub.count('POST', '/users/queued-o/server')).toBeGreaterThanOrEqual(2);
      expect(follower.updates.map((u) => u.message)).toContain('Too many users trying to log in right now. Waiting 10 s, then trying again…');
    }));

  test("a throttled follower (the hub's Retry-After 30 s) reads the user, sees the other replica's start and follows it to ready, without asking again", () =>
    withSpawnLimitOne(async () => {
      hub.configure({ retryRange: [30, 30] });
      hub.setUser('hog4', { spawnMs: 1500 });
      hub.setUser('queued-g', { spawnMs: 300 });
      await startOnceFree('hog4');
      const follower = ensure('queued-g', { follow: true, timeoutMs: 20_000 });
      while (!follower.updates.some((u) => u.message.includes('Waiting'))) await new Promise((r) => setTimeout(r, 20));
      expect(hub.count('POST', '/users/queued-g/server')).toBe(1);
      // The replica that took the handoff gets the slot once the hog is up.
      const origin = await startOnceFree('queued-g');
      expect(origin.status).toBe(202);
      // Ready well before its own next start, due 30 s after its 429.
      await expect(follower.done).resolves.toBe(true);
      expect(hub.count('POST', '/users/queued-g/server')).toBe(1 + origin.posts);
      expect(calls('queued-g').filter((c) => c === 'GET /users/queued-g 200').length).toBeGreaterThanOrEqual(2);
      expect(hub.server('queued-g')).toMatchObject({ ready: true, spawns: 1 });
    }));

  test('a throttled task nobody waits for any more stops asking: the server is not started behind the back of whoever stopped it', () =>
    withSpawnLimitOne(async () => {
      hub.setUser('hog3', { spawnMs: 3000 });
      hub.setUser('left', { spawnMs: 0 });
      // The slot may still be the previous test's hog's.
      expect((await startOnceFree('hog3')).status).toBe(202);
      let waiting = true;
      const { done, updates } = ensure('left', { wanted: () => waiting });
      while (!updates.some((u) => u.message.includes('Waiting'))) await new Promise((r) => setTimeout(r, 20));
      waiting = false;
      await expect(done).resolves.toBe(false);
      expect(calls('left').filter((c) => c.startsWith('POST /users/left/server'))).toEqual(['POST /users/left/server 429']);
      expect(hub.server('left')).toMatchObject({ phase: 'stopped', spawns: 0 });
      // While a browser waits, the same task goes on to a ready server.
      await expect(ensure('left', { wanted: () => true }).done).resolves.toBe(true);
    }));

  test('a spawn failing at once (500) and one failing later (progress) both end in hub_spawn_failed with the hub words', async () => {
    hub.setUser('fail-early', { fail: 'no quota left' });
    await expect(ensure('fail-early').done).rejects.toMatchObject({ code: 'hub_spawn_failed', message: 'Spawn failed: no quota left' });
    hub.setUser('fail-late', { spawnMs: 300, fail: 'image pull failed' });
    await expect(ensure('fail-late').done).rejects.toMatchObject({ code: 'hub_spawn_failed', message: 'Spawn failed: image pull failed' });
    expect(calls('fail-late')).toContain('POST /users/fail-late/server 202');
  });

  test("following another replica's spawn (follow): a pending spawn is followed, a failure the hub still reports is shown and not restarted, a clean stop is started", async () => {
    hub.setUser('fol-pend', { spawnMs: 400 });
    expect((await call(hubTarget(hub), hub.adminToken, 'POST', '/users/fol-pend/server', { body: {} })).status).toBe(202);
    await ensure('fol-pend', { follow: true }).done;
    expect(hub.count('POST', '/users/fol-pend/server')).toBe(1);

    hub.setUser('fol-fail', { fail: 'no quota left' });
    expect((await call(hubTarget(hub), hub.adminToken, 'POST', '/users/fol-fail/server', { body: {} })).status).toBe(500);
    await expect(ensure('fol-fail', { follow: true }).done).rejects.toMatchObject({ code: 'hub_spawn_failed', message: 'Spawn failed: no quota left' });
    expect(hub.count('POST', '/users/fol-fail/server')).toBe(1);
    // Without follow (the page's "Try again"), the same state means: start again.
    await expect(ensure('fol-fail').done).rejects.toMatchObject({ code: 'hub_spawn_failed' });
    expect(hub.count('POST', '/users/fol-fail/server')).toBe(2);

    hub.setUser('fol-idle', { spawnMs: 0 });
    await ensure('fol-idle', { follow: true }).done;
    expect(hub.server('fol-idle')).toMatchObject({ ready: true, spawns: 1 });
  });

  test('a spawn slower than the spawn timeout: hub_spawn_timeout', async () => {
    hub.setUser('glacial', { spawnMs: 5000 });
    await expect(ensure('glacial', { timeoutMs: 500 }).done).rejects.toMatchObject({ code: 'hub_spawn_timeout' });
  });

  test('a restart while running: stop (202 while slow), wait, start again', async () => {
    hub.setUser('rita', { stopMs: 300 });
    await ensure('rita').done;
    hub.configure({ slowStopTimeoutMs: 100 });
    try {
      hub.resetRequests();
      await ensureServer(client(), { user: 'rita', server: '', userOptions: {}, restart: true, timeoutMs: 10_000, onUpdate: () => undefined });
      expect(calls('rita')).toEqual(expect.arrayContaining(['DELETE /users/rita/server 202', 'POST /users/rita/server 201']));
      expect(hub.server('rita')).toMatchObject({ ready: true, spawns: 2 });
    } finally {
      hub.configure({ slowStopTimeoutMs: 10_000 });
    }
  });

  test('injected 502s are retried; a hub that is down is hub_unavailable until it is up again', async () => {
    hub.addUser('neo');
    hub.resetRequests();
    hub.inject('GET', '/users/neo', [502, 502]);
    expect(await client().getUser('neo')).toEqual({ name: 'neo', servers: {} });
    expect(calls('neo')).toEqual(['GET /users/neo 502', 'GET /users/neo 502', 'GET /users/neo 200']);
    await hub.down();
    await expect(client(hub.serviceToken, 0).getUser('neo')).rejects.toMatchObject({ code: 'hub_unavailable' });
    await hub.up();
    expect((await client().getUser('neo'))?.name).toBe('neo');
  });

  test('scope and token errors are named: hub_forbidden with the scope, hub_unauthorized', async () => {
    const forbiddenErr = await client().createUser('newbie').catch((e: unknown) => e);
    expect(forbiddenErr).toBeInstanceOf(HandoffError);
    expect(forbiddenErr).toMatchObject({ code: 'hub_forbidden', detail: expect.stringContaining('requires any of [admin:users]') });
    await expect(client('not-a-token').getUser('neo')).rejects.toMatchObject({ code: 'hub_unauthorized' });
    await expect(client().userOf()).resolves.toBe('omnisci-handoff');
    await expect(client(hub.adminToken).createUser('newbie')).resolves.toBeUndefined();
    await expect(client(hub.adminToken).createUser('newbie')).resolves.toBeUndefined();
  });

  test('the OAuth code trade of the identity check: authorize, oauthToken, userOf', async () => {
    const cookie = hub.loginBrowser('kim');
    const q = new URLSearchParams({ client_id: hub.oauthClientId, redirect_uri: hub.oauthRedirectUri, response_type: 'code', state: 's1' });
    const r = await fetch(`${hub.apiUrl}/oauth2/authorize?${q}`, { headers: { cookie }, redirect: 'manual' });
    expect(r.status).toBe(302);
    const code = new URL(r.headers.get('location')!, hub.publicUrl).searchParams.get('code')!;
    const access = await client().oauthToken(code, hub.oauthClientId, hub.oauthRedirectUri);
    await expect(client().userOf(access)).resolves.toBe('kim');
    await expect(client().oauthToken(code, hub.oauthClientId, hub.oauthRedirectUri)).rejects.toMatchObject({ code: 'hub_rejected', detail: expect.stringContaining('invalid_grant') });
    // A user whose role lacks access:services for the client is refused at authorize.
    hub.addUser('lou', { serviceAccess: false });
    const denied = await fetch(`${hub.apiUrl}/oauth2/authorize?${q}`, { headers: { cookie: hub.loginBrowser('lou') }, redirect: 'manual' });
    expect(denied.status).toBe(403);
    expect(await denied.text()).toContain('You do not have permission to access JupyterHub service omnisci-handoff');
  });
});

function hubTarget(h: HubStandin): Target {
  return {
    kind: 'stand-in',
    apiUrl: h.apiUrl,
    publicUrl: h.publicUrl,
    serviceToken: h.serviceToken,
    adminToken: h.adminToken,
    readerToken: '',
    scopelessToken: '',
    login: async (user) => h.loginBrowser(user),
  };
}
