/**
 * Burst of handoffs against a real JupyterHub (scripts/deps/jupyterhub.sh): N distinct users handed
 * off at once while the hub's concurrent_spawn_limit is below N. Every browser (a cookie-keeping
 * client without JavaScript, reloading the progress page) must end on its own lab URL with no 5xx on
 * the way. For scale, the same run times the hub's own REST API spawning N other users at once
 * (a client honouring Retry-After, as the hub asks). Figures depend on the machine; compare the two.
 */
import { performance } from 'node:perf_hooks';
import { hmacKey, mint } from '../test/support/core.js';
import { NoJsBrowser, startHubService } from '../test/support/hub-service.js';
import { freePort, SERVICE_SCOPES_CREATE, startHub, type RunningHub } from '../test/support/jupyterhub.js';

export interface HubBurstResult {
  users: number;
  spawnLimit: number;
  /** Seconds until every handed-off browser was on its lab. */
  handoffSeconds: number;
  /** Seconds until the hub's API had N servers ready. */
  apiSeconds: number;
  landed: number;
  responses5xx: number;
  throttled: number;
}

async function apiSpawnAll(hub: RunningHub, users: string[]): Promise<number> {
  let throttled = 0;
  await Promise.all(
    users.map(async (u) => {
      await hub.admin('POST', `/users/${u}`);
      for (;;) {
        const r = await fetch(`${hub.apiUrl}/users/${u}/server`, { method: 'POST', headers: { Authorization: `token ${hub.adminToken}` } });
        await r.body?.cancel();
        if (r.status !== 429) break;
        throttled++;
        await new Promise((res) => setTimeout(res, Number(r.headers.get('retry-after') ?? 1) * 1000));
      }
      for (;;) {
        const s = (await hub.admin('GET', `/users/${u}`)).json as { servers?: Record<string, { ready: boolean }> };
        if (s.servers?.['']?.ready) return;
        await new Promise((res) => setTimeout(res, 100));
      }
    }),
  );
  return throttled;
}

export async function hubBurst(users = 8, spawnLimit = 2, slowSeconds = 1): Promise<HubBurstResult> {
  const port = await freePort();
  const hub = await startHub({
    serviceScopes: SERVICE_SCOPES_CREATE,
    serviceUrl: `http://127.0.0.1:${port}`,
    concurrentSpawnLimit: spawnLimit,
    slowSeconds,
  });
  const svc = await startHubService({ hub, port, basePath: '/services/omnisci-handoff/', hubConfig: { createUsers: true } });
  try {
    const key = hmacKey('HS256');
    const names = Array.from({ length: users }, (_, i) => `slow-h${i}`);
    const tokens = await Promise.all(names.map((subject) => mint(key, { subject })));
    const t0 = performance.now();
    const ends = await Promise.all(
      names.map(async (u, i) => {
        const b = new NoJsBrowser();
        const end = await b.postHandoff(svc.url, tokens[i]!);
        return { ok: end.url === `${hub.publicUrl}/user/${u}/lab?omnisci&reset`, errors: b.hops.filter((h) => h.status >= 500).length };
      }),
    );
    const handoffSeconds = (performance.now() - t0) / 1000;
    const before = (hub.log().match(/pending spawns, throttling/g) ?? []).length;
    const t1 = performance.now();
    await apiSpawnAll(hub, Array.from({ length: users }, (_, i) => `slow-a${i}`));
    const apiSeconds = (performance.now() - t1) / 1000;
    return {
      users,
      spawnLimit,
      handoffSeconds: Math.round(handoffSeconds * 100) / 100,
      apiSeconds: Math.round(apiSeconds * 100) / 100,
      landed: ends.filter((e) => e.ok).length,
      responses5xx: ends.reduce((n, e) => n + e.errors, 0),
      throttled: before,
    };
  } finally {
    await svc.close();
    await hub.stop();
  }
}
