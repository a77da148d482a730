/**
 * ensureServer against the hub stand-in when the hub holds the request (slow_spawn_timeout,
 * slow_stop_timeout): whoever waits for the request to be made is told once the hub's model shows it
 * under way, while the request is still unanswered. The spawn and the stop take far longer than the
 * test, so the request cannot have been answered when the test looks (not a race the test wins).
 */
import { afterEach, expect, test } from '@jest/globals';
import { HubClient } from '../../src/hub/client.js';
import { ensureServer } from '../../src/hub/spawn.js';
import { startHubStandin, type HubStandin } from '../support/hub-standin.js';

const LONG_MS = 600_000;
let hub: HubStandin | undefined;
/** The ensureServer of the test: ended by the stand-in's stop (however), awaited so that nothing outlives the test. */
let running: Promise<unknown> | undefined;

afterEach(async () => {
  await hub?.stop();
  await running;
  [hub, running] = [undefined, undefined];
});

const statuses = (h: HubStandin, method: string, path: string) => h.requests.filter((r) => r.method === method && r.path === path).map((r) => r.status);

/** Starts ensureServer for `user`; `requested` resolves when it reports the request made. */
function ensure(h: HubStandin, user: string, restart: boolean) {
  const client = new HubClient({ apiUrl: h.apiUrl, token: h.serviceToken, requestTimeoutMs: LONG_MS, retries: 0 });
  let requested!: () => void;
  const told = new Promise<void>((r) => (requested = r));
  const done = ensureServer(client, { user, server: '', userOptions: {}, restart, timeoutMs: LONG_MS, onUpdate: () => undefined, onRequested: () => requested() });
  running = done.catch(() => undefined);
  return told;
}

test('a start the hub holds: reported made once the server is pending, before the hub answers', async () => {
  hub = await startHubStandin({ slowSpawnTimeoutMs: LONG_MS, users: ['cold'], spawner: () => ({ spawnMs: LONG_MS }) });
  await ensure(hub, 'cold', false);
  expect(hub.server('cold')).toMatchObject({ phase: 'spawning', pending: 'spawn' });
  // The stand-in records a request when it arrives, its status once it answers.
  expect(statuses(hub, 'POST', '/users/cold/server')).toEqual([0]);
});

test('a stop (restart) the hub holds: reported made once the server is stopping, before the hub answers', async () => {
  hub = await startHubStandin({ slowStopTimeoutMs: LONG_MS, users: ['warm'] });
  hub.setUser('warm', { stopMs: LONG_MS });
  const admin = await fetch(`${hub.apiUrl}/users/warm/server`, { method: 'POST', headers: { Authorization: `token ${hub.adminToken}` } });
  expect(admin.status).toBe(201);
  await ensure(hub, 'warm', true);
  expect(hub.server('warm')).toMatchObject({ phase: 'stopping', pending: 'stop' });
  expect(statuses(hub, 'DELETE', '/users/warm/server')).toEqual([0]);
});

test("a start request the hub holds past hub.requestTimeoutMs is not a timeout: the hub's 202 is awaited (no retry needed)", async () => {
  // The hub holds the start 1 s, five times the request timeout; the start request's own allowance
  // (the timeout plus JupyterHub's default slow_spawn_timeout, 10 s) covers it.
  hub = await startHubStandin({ slowSpawnTimeoutMs: 1_000, users: ['held-start'], spawner: () => ({ spawnMs: LONG_MS }) });
  const client = new HubClient({ apiUrl: hub.apiUrl, token: hub.serviceToken, requestTimeoutMs: 200, retries: 0 });
  await expect(client.startServer('held-start', '', {})).resolves.toEqual({ kind: 'pending' });
  expect(statuses(hub, 'POST', '/users/held-start/server')).toEqual([202]);
});
