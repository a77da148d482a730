/**
 * Burst of handoffs against a real JupyterHub (scripts/deps/jupyterhub.sh): N distinct users handed
 * off at once while the hub's concurrent_spawn_limit is below N. Every browser (a cookie-keeping
 * client without JavaScript, reloading the progress page) must end on its own lab URL with no 5xx on
 * the way. For scale, the same run times the hub's own REST API spawning N other users at once
 * (a client honouring Retry-After, as the hub asks). Figures depend on the machine; compare the two.
 *
 * The service runs as `replicas` `serve` processes (the built CLI) behind a per-request round-robin
 * proxy (test/support/round-robin.ts) standing in for the chart's Service, which the hub knows as the
 * service's url. They share the Kubernetes store of a real kube-apiserver (test/support/kube-apiserver.ts,
 * admin credentials: RBAC costs nothing measurable here): the local store serialises a user's updates
 * within one process only, so replicas on one local directory would not be the deployment being
 * measured. The replicas reach the hub API through a counting proxy, which gives the hub API calls
 * per handoff. Between the two phases the handoff phase's servers are stopped, so both start from an
 * idle hub.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { hmacKey, mint } from '../test/support/core.js';
import { NoJsBrowser, resentOnClose } from '../test/support/hub-service.js';
import { originsOf, startKubeStore, startReplicas } from '../test/support/hub-replicas.js';
import { SERVICE_SCOPES_CREATE, SHIPPED_AUTHENTICATOR, startHub, type RunningHub } from '../test/support/jupyterhub.js';
import type { Served } from '../test/support/process.js';
import { startRoundRobin, type Forwarded } from '../test/support/round-robin.js';

export interface HubBurstOptions {
  users: number;
  spawnLimit: number;
  /** Seconds the test spawner takes per server. */
  slowSeconds: number;
  /** `serve` processes behind the round-robin proxy. */
  replicas: number;
  /** hub.loginMode: `sso` (no hub login) or `handoff` (confirmation page + one-time login token exchanged by the hub). */
  login: 'sso' | 'handoff';
}

export interface HubBurstResult extends HubBurstOptions {
  /** Seconds until every handed-off browser was on its lab. */
  handoffSeconds: number;
  /** Seconds until the hub's API had N servers ready. */
  apiSeconds: number;
  landed: number;
  responses5xx: number;
  /** The hub's "pending spawns, throttling" log lines during the handoff phase. */
  throttled: number;
  /** 429 answers the replicas got from the hub (a spawn request refused for the limit). */
  service429: number;
  /** Hub API calls the replicas made during the handoff phase, by kind. */
  hubCalls: Record<string, number>;
  hubCallsTotal: number;
  /** Requests each replica answered (browsers through the hub's proxy and the hub's login-token exchanges). */
  perReplica: number[];
  /** The API baseline client: its calls (Retry-After honoured, 100 ms polling of the user model) and 429s. */
  apiCalls: number;
  api429: number;
  /** Spawns the baseline client found failed and requested again. */
  apiFailedSpawns: number;
  /** Browsers that ended on the progress page's spawn failure (hub_spawn_failed / hub_spawn_timeout) after 3 tries. */
  spawnFailuresShown: number;
  /** "Try again" clicks on a failed spawn's progress page. */
  tryAgain: number;
  /** How long the clients wait before reloading a progress page (BENCH_HUB_RELOAD_MS). */
  reloadMs: number;
  /** GETs sent again after the server closed the reused connection; browsers whose request failed outright. */
  socketRetries: number;
  clientErrors: number;
}

/** A hub API call's kind: method and path with the user name replaced. */
function kindOf(e: Forwarded): string {
  const path = new URL(e.url, 'http://x').pathname.replace(/^.*\/hub\/api/, '');
  const shape = path.replace(/^\/users\/[^/]+/, '/users/{name}').replace(/\/servers\/[^/]+/, '/servers/{server}');
  return `${e.method} ${shape}${e.status === 429 ? ' → 429' : ''}`;
}

/**
 * The baseline: the hub's REST API starting every user's server, as a client that honours Retry-After
 * and polls the user model every 100 ms. A spawn that failed (the server neither ready nor pending) is
 * requested again, and counted.
 */
async function apiSpawnAll(hub: RunningHub, apiUrl: string, users: string[]): Promise<{ throttled: number; failed: number }> {
  let throttled = 0;
  let failed = 0;
  const call = (method: string, path: string) => resentOnClose(() => fetch(`${apiUrl}${path}`, { method, headers: { Authorization: `token ${hub.adminToken}` } }));
  const start = async (u: string) => {
    for (;;) {
      const r = await call('POST', `/users/${u}/server`);
      await r.body?.cancel();
      if (r.status !== 429) return;
      throttled++;
      await new Promise((res) => setTimeout(res, Number(r.headers.get('retry-after') ?? 1) * 1000));
    }
  };
  await Promise.all(
    users.map(async (u) => {
      await (await call('POST', `/users/${u}`)).body?.cancel();
      await start(u);
      for (;;) {
        const s = (await (await call('GET', `/users/${u}`)).json()) as { servers?: Record<string, { ready: boolean; pending: string | null }> };
        const server = s.servers?.[''];
        if (server?.ready) return;
        if (!server) {
          failed++;
          await start(u);
          continue;
        }
        await new Promise((res) => setTimeout(res, 100));
      }
    }),
  );
  return { throttled, failed };
}

/**
 * Waits until no replica is getting a server ready (its omnisci_handoff_spawn_tasks gauge): a task
 * still waiting out a 429 when its user's server was stopped would start it again.
 */
async function replicasIdle(served: Served[]): Promise<void> {
  const metrics = served.map((s) => `http://127.0.0.1:${/"internalPort":(\d+)/.exec(s.output())?.[1]}/metrics`);
  for (;;) {
    const counts = await Promise.all(metrics.map(async (url) => Number(/^omnisci_handoff_spawn_tasks (\d+)/m.exec(await (await fetch(url)).text())?.[1])));
    if (counts.every((n) => n === 0)) return;
    await new Promise((res) => setTimeout(res, 500));
  }
}

/** Stops the users' servers and waits until the hub has none of them running. */
async function stopAll(hub: RunningHub, users: string[]): Promise<void> {
  await Promise.all(users.map((u) => resentOnClose(() => hub.admin('DELETE', `/users/${u}/server`))));
  for (;;) {
    const list = (await resentOnClose(() => hub.admin('GET', '/users?state=active'))).json as { name: string }[] | undefined;
    if (!Array.isArray(list) || !list.some((u) => users.includes(u.name))) return;
    await new Promise((res) => setTimeout(res, 250));
  }
}

export async function hubBurst(o: HubBurstOptions): Promise<HubBurstResult> {
  const prefix = '/services/omnisci-handoff/';
  const kube = await startKubeStore({ chartRbac: false });
  const rr = await startRoundRobin([], { logFilter: () => false });
  const counter = await startRoundRobin([]);
  let hub: RunningHub | undefined;
  let served: Served[] = [];
  try {
    hub = await startHub({
      serviceScopes: SERVICE_SCOPES_CREATE,
      serviceUrl: rr.url,
      concurrentSpawnLimit: o.spawnLimit,
      slowSeconds: o.slowSeconds,
      // Hundreds of servers starting on a small machine: the spawner's timeouts (60 s / 30 s in the
      // test hub) would fail spawns of both phases alike; the bench measures throughput, not them.
      extraConfig:
        'c.Spawner.start_timeout = 600\nc.Spawner.http_timeout = 300\n' +
        (o.login === 'handoff'
          ? `
${SHIPPED_AUTHENTICATOR}`
          : ''),
    });
    counter.reset([new URL(hub.apiUrl).origin]);
    served = await startReplicas({
      hub,
      kube,
      replicas: o.replicas,
      basePath: prefix,
      apiUrl: `${counter.url}${new URL(hub.apiUrl).pathname}`,
      hubConfig: { loginMode: o.login, spawnTimeoutSeconds: 900 },
    });
    rr.reset(originsOf(served));
    const svcUrl = `${hub.publicUrl}${prefix}`;

    const key = hmacKey('HS256');
    const names = Array.from({ length: o.users }, (_, i) => `slow-h${i}`);
    const tokens = await Promise.all(names.map((subject) => mint(key, { subject, lifetimeSeconds: 300 })));
    let tryAgain = 0;
    const reloadMs = Number(process.env.BENCH_HUB_RELOAD_MS ?? 2000);
    const t0 = performance.now();
    const ends = await Promise.all(
      names.map(async (u, i) => {
        const b = new NoJsBrowser();
        // As a browser without JavaScript does: the page's refresh interval (a browser with JavaScript holds one SSE stream instead).
        b.reloadMs = reloadMs;
        let end = await b.postHandoff(svcUrl, tokens[i]!).catch((e: unknown) => ({ url: '', status: -1, text: String(e) }));
        // A spawn the hub failed (on a small machine: its proxy's route API timing out) is shown with
        // "Try again", which a user clicks: the baseline client requests a failed spawn again too.
        for (let tries = 0; tries < 3; tries++) {
          const retry = /<form method="post" action="([^"]+)"><button type="submit" id="retry">/.exec(end.text);
          if (!retry) break;
          tryAgain++;
          const url = new URL(retry[1]!.replaceAll('&#47;', '/'), end.url).toString();
          end = await b.follow(await b.request(url, { method: 'POST', headers: { 'sec-fetch-site': 'same-origin' } }), url).catch((e: unknown) => ({ url: '', status: -1, text: String(e) }));
        }
        const ok = end.url === `${hub!.publicUrl}/user/${u}/lab?omnisci&reset`;
        const text = ok ? '' : end.text.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 400);
        return { user: u, ok, socketRetries: b.socketRetries, clientError: end.status < 0, errors: b.hops.filter((h) => h.status >= 500).length, spawnFailed: !ok && /hub_spawn_(failed|timeout)/.test(end.text), end: { url: end.url, status: end.status, text }, hops: b.hops.length };
      }),
    );
    const handoffSeconds = (performance.now() - t0) / 1000;
    process.stderr.write(`hub burst: handoff phase ${handoffSeconds.toFixed(1)} s, ${ends.filter((e) => e.ok).length}/${o.users} on their lab\n`);
    const throttled = (hub.log().match(/pending spawns, throttling/g) ?? []).length;
    const hubCalls: Record<string, number> = {};
    for (const e of counter.log) hubCalls[kindOf(e)] = (hubCalls[kindOf(e)] ?? 0) + 1;
    const hubCallsTotal = counter.log.length;
    const perReplica = [...rr.counts];
    // BENCH_HUB_LOG_DIR: the hub's log, each replica's and the browsers that did not land, for a look afterwards.
    const logDir = process.env.BENCH_HUB_LOG_DIR;
    if (logDir) {
      mkdirSync(logDir, { recursive: true });
      writeFileSync(join(logDir, 'hub.log'), hub.log());
      served.forEach((s, i) => writeFileSync(join(logDir, `replica-${i}.log`), s.output()));
      writeFileSync(join(logDir, 'not-landed.json'), JSON.stringify(ends.filter((e) => !e.ok), null, 1));
      writeFileSync(join(logDir, 'hub-api-calls.json'), JSON.stringify(counter.log.map((e) => [Math.round(e.start - t0), e.method, e.url, e.status])));
    }

    const settle = performance.now();
    await replicasIdle(served);
    process.stderr.write(`hub burst: replicas idle ${((performance.now() - settle) / 1000).toFixed(1)} s after the last browser landed\n`);
    await stopAll(hub, names);
    counter.reset([new URL(hub.apiUrl).origin]);
    const t1 = performance.now();
    const api = await apiSpawnAll(hub, `${counter.url}${new URL(hub.apiUrl).pathname}`, Array.from({ length: o.users }, (_, i) => `slow-a${i}`));
    const apiSeconds = (performance.now() - t1) / 1000;
    process.stderr.write(`hub burst: API phase ${apiSeconds.toFixed(1)} s, ${api.failed} failed spawns requested again\n`);
    return {
      ...o,
      handoffSeconds: Math.round(handoffSeconds * 100) / 100,
      apiSeconds: Math.round(apiSeconds * 100) / 100,
      landed: ends.filter((e) => e.ok).length,
      responses5xx: ends.reduce((n, e) => n + e.errors, 0),
      throttled,
      service429: Object.entries(hubCalls).reduce((n, [k, v]) => n + (k.endsWith('→ 429') ? v : 0), 0),
      hubCalls,
      hubCallsTotal,
      perReplica,
      apiCalls: counter.log.length,
      api429: api.throttled,
      apiFailedSpawns: api.failed,
      spawnFailuresShown: ends.filter((e) => e.spawnFailed).length,
      tryAgain,
      reloadMs,
      socketRetries: ends.reduce((n, e) => n + e.socketRetries, 0),
      clientErrors: ends.filter((e) => e.clientError).length,
    };
  } finally {
    for (const s of served) await s.stop();
    await hub?.stop();
    await rr.close();
    await counter.close();
    await kube.stop();
  }
}
