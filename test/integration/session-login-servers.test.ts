/**
 * Header mode (POST {base}session-login, as the shipped authenticator calls it from /hub/login) with
 * a named server and a shared one, against the hub API stand-in (test/support/hub-standin.ts, the
 * real hub's shares API semantics) and the HeavyDB stand-in. The browser flow and the real hub's
 * shares API are in hub-shares-named.test.ts; the authenticator's pass-through of `?server=` in
 * test/authenticator/.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startHeavyDb, type HeavyDbStandIn } from '../../scripts/demo/heavydb/standin.js';
import { randomSessionId } from '../../src/handoff/mint.js';
import { userDir } from '../../src/store/local.js';
import { tempDir } from '../support/core.js';
import { runningLab, startHubService, type HubService } from '../support/hub-service.js';
import { startHubStandin, type HubStandin } from '../support/hub-standin.js';
import { waitFor } from '../support/jupyterhub.js';

const storeDir = tempDir('oh-sl-servers-');
let heavy: HeavyDbStandIn;
let hub: HubStandin;
let svc: HubService;

beforeAll(async () => {
  heavy = await startHeavyDb();
  hub = await startHubStandin({ allowNamedServers: true, users: ['alice', 'sam'], slowSpawnTimeoutMs: 100 });
  svc = await startHubService({
    hub,
    storeDir,
    hubConfig: { namedServers: { enabled: true, allowed: ['analysis'] } },
    sections: {
      omnisci: { protocol: heavy.protocol, host: heavy.host, port: heavy.port },
      heavydb: { enabled: true, url: heavy.url, cacheSeconds: 0 },
    },
  });
});

afterAll(async () => {
  await svc?.close();
  await hub?.stop();
  await heavy?.stop();
});

async function sessionLogin(user: string, server?: string): Promise<{ status: number; body: { name?: string; next?: string; error?: string } }> {
  const session = randomSessionId();
  await heavy.addSession(session, { user });
  const r = await fetch(`${svc.url}session-login`, {
    method: 'POST',
    headers: { Authorization: `token ${hub.serviceToken}`, 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ session, sql: 'SELECT 1', ...(server === undefined ? {} : { server }) }),
  });
  return { status: r.status, body: (await r.json()) as { name?: string; next?: string; error?: string } };
}

const stored = (user: string) => existsSync(join(userDir(storeDir, user), 'state.json'));

test('?server= names an allowed server: it is started, and its lab is where the browser goes', async () => {
  const r = await sessionLogin('alice', 'analysis');
  expect(r.status).toBe(200);
  expect(r.body.name).toBe('alice');
  expect(hub.count('POST', '/users/alice/servers/analysis')).toBe(1);
  expect(hub.count('POST', '/users/alice/server')).toBe(0);
  expect(stored('alice')).toBe(true);
  // Once it runs, the next login goes straight to its lab, which waits for that login's session.
  await waitFor(async () => (hub.server('alice', 'analysis')?.phase === 'running' ? true : undefined));
  const again = await sessionLogin('alice', 'analysis');
  expect(again.body.next).toBe(runningLab(svc, `${hub.publicUrl}/user/alice/analysis/lab?omnisci&reset`, 'alice'));
});

test('a server not allowed, or not a server name, is refused before HeavyDB is asked; nothing stored', async () => {
  await heavy.clearCalls();
  hub.resetRequests();
  for (const [server, status, error] of [
    ['gpu', 403, 'server_not_allowed'],
    ['a/b', 400, 'server_name_invalid'],
    [7, 400, 'server_name_invalid'],
  ] as const) {
    const r = await sessionLogin('sam', server as string);
    expect({ server, status: r.status, error: r.body.error }).toEqual({ server, status, error });
  }
  expect((await heavy.calls()).map((c) => c.method)).toEqual([]);
  expect(stored('sam')).toBe(false);
  expect(hub.requests.filter((r) => r.method === 'POST')).toEqual([]);
});

test('a user who shares a server is refused with server_shared: nothing stored, nothing started', async () => {
  hub.share('sam', '', 'alice');
  hub.resetRequests();
  const r = await sessionLogin('sam');
  expect([r.status, r.body.error]).toEqual([403, 'server_shared']);
  expect(stored('sam')).toBe(false);
  expect(hub.requests.map((q) => `${q.method} ${q.path}`).sort()).toEqual(['GET /share-codes/sam', 'GET /shares/sam']);
});
