/**
 * `npm run bench` (not a test: figures depend on the machine, the ratios are what to compare):
 * - handoff: handoffs/s and latency at c=32, ES256 and RS256 tokens on the local store, next to a
 *   trivial express endpoint in the same run;
 * - webhook: admissions/s over HTTPS next to a trivial HTTPS endpoint (bench/webhook.ts);
 * - hub: a burst of handoffs against a real JupyterHub next to its own API spawns (bench/hub-burst.ts): BENCH_HUB_USERS
 *   (200), BENCH_HUB_LIMIT (concurrent_spawn_limit, 64), BENCH_HUB_REPLICAS (2 `serve` processes on the Kubernetes
 *   store behind a round-robin proxy), BENCH_HUB_LOGIN (sso | handoff), BENCH_HUB_SPAWN_SECONDS (1), BENCH_HUB_RELOAD_MS
 *   (2000: the progress page's own refresh), BENCH_HUB_LOG_DIR (keeps the hub's and the replicas' logs);
 * - memory: RSS every 10k of 100k handoffs over 10k users (bench/memory.ts); only when asked for.
 * - node: click → connected notebook with the user's server running, fast refresh on and off, on the
 *   one-node cluster (bench/node.ts: a cluster per run, BENCH_NODE_RUNS, 1); only when asked for, with no
 *   other cluster running on the machine.
 * BENCH_ONLY=handoff,webhook,hub,memory,node picks sections (default: all but memory and node, which take minutes).
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { generateSigningKey } from '../src/handoff/keygen.js';
import { mintToken, randomSessionId, type SigningKey } from '../src/handoff/mint.js';
import { importJWK, type CryptoKey } from 'jose';
import { hubBurst } from './hub-burst.js';
import { benchMemory, IMAGE_NODE_FLAGS } from './memory.js';
import { benchNode, type NotebookTimes } from './node.js';
import { startTarget, type BenchResult } from './process.js';
import { benchWebhook } from './webhook.js';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 6000);
const USERS = 256;

async function startService(args: string[]): Promise<{ child: ChildProcess; url: string }> {
  const { child, port } = await startTarget('target.js', args);
  return { child, url: `http://127.0.0.1:${port}/handoff` };
}

/** POSTs each body once (tokens are single-use), `connections` at a time. */
async function load(name: string, url: string, bodies: string[]): Promise<BenchResult> {
  let i = 0;
  let last = 0;
  const started = performance.now();
  // Throughput from the last response, not from the run's end (autocannon finishes on a 1 s tick).
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url,
        connections: CONNECTIONS,
        amount: bodies.length,
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        requests: [{ setupRequest: (req) => ({ ...req, body: bodies[i++ % bodies.length] }) }],
      },
      (err, r) => (err ? reject(err) : resolve(r)),
    );
    instance.on('response', () => (last = performance.now()));
  });
  const seconds = (last - started) / 1000;
  const ok = result['3xx'];
  return {
    name,
    rps: ok / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx - ok,
  };
}

async function tokens(signing: SigningKey, n: number): Promise<string[]> {
  const now = Math.floor(Date.now() / 1000);
  const out: string[] = [];
  for (let k = 0; k < n; k++) {
    const t = await mintToken(signing, {
      issuer: 'https://immerse.bench',
      audience: 'omnisci-handoff',
      subject: `user${k % USERS}`,
      typ: 'omnisci-handoff+jwt',
      iat: now,
      lifetimeSeconds: 300,
      omnisci: { session: randomSessionId() },
    });
    out.push(new URLSearchParams({ token: t }).toString());
  }
  return out;
}

async function signingKey(alg: 'ES256' | 'RS256') {
  const k = await generateSigningKey(alg);
  return { publicJwk: k.publicJwk, signing: { alg, kid: k.publicJwk.kid as string, key: (await importJWK(k.privateJwk, alg)) as CryptoKey } };
}

/**
 * The store directory: on tmpfs when there is one, so the figures measure the service rather than
 * this machine's disk (an ext4 file replace costs ~250 µs here); BENCH_DISK=1 measures the disk too.
 */
function storeParent(): string {
  return process.env.BENCH_DISK !== '1' && existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
}

export async function benchHandoff(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'oh-bench-'));
  const dataDir = mkdtempSync(join(storeParent(), 'oh-bench-store-'));
  const es = await signingKey('ES256');
  const rs = await signingKey('RS256');
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [es.publicJwk, rs.publicJwk] }));
  const [esBodies, rsBodies] = [await tokens(es.signing, REQUESTS), await tokens(rs.signing, REQUESTS)];
  const trivial = await startService(['trivial']);
  const service = await startService(['service', jwksFile, dataDir]);
  try {
    // Warm both up (JIT, key import caches), then measure.
    await load('warmup', trivial.url, esBodies.slice(0, 200));
    await load('warmup', service.url, (await tokens(es.signing, 200)).concat(await tokens(rs.signing, 200)));
    return [
      await load('trivial express endpoint', trivial.url, esBodies),
      await load('handoff ES256 (local store)', service.url, esBodies),
      await load('handoff RS256 (local store)', service.url, rsBodies),
    ];
  } finally {
    trivial.child.kill();
    service.child.kill();
    rmSync(dir, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function table(results: BenchResult[]): string {
  const baseline = results[0] as BenchResult;
  return results
    .map(
      (r) =>
        `  ${r.name.padEnd(42)} ${r.rps.toFixed(0).padStart(7)}/s  p50 ${String(r.p50).padStart(4)} ms  p99 ${String(r.p99).padStart(4)} ms  ` +
        `${(r.rps / baseline.rps).toFixed(2)}× baseline${r.errors ? `  errors ${r.errors}` : ''}`,
    )
    .join('\n');
}

const out = (s: string) => process.stdout.write(`${s}\n`);
const only = process.env.BENCH_ONLY?.split(',');
const wanted = (name: string) => (only ? only.includes(name) : name !== 'memory' && name !== 'node');

if (wanted('handoff')) {
  const results = await benchHandoff();
  const [baseline, , rs] = results as [BenchResult, BenchResult, BenchResult];
  out(`\nhandoff: c=${CONNECTIONS}, ${REQUESTS} single-use tokens per run, ${USERS} users, store under ${storeParent()}`);
  out(table(results));
  out(`  targets: RS256 ≥ 0.35× trivial (${(rs.rps / baseline.rps).toFixed(2)}×), RS256 p99 ≤ 2× trivial's (${(rs.p99 / baseline.p99).toFixed(1)}×)`);
}

if (wanted('webhook')) {
  const results = await benchWebhook({ connections: CONNECTIONS, durationSec: Number(process.env.BENCH_SECONDS ?? 10) });
  const [baseline, webhook] = results as [BenchResult, BenchResult];
  out(`\nwebhook: c=${CONNECTIONS} over HTTPS`);
  out(table(results));
  out(`  targets: ≥ 0.50× trivial (${(webhook.rps / baseline.rps).toFixed(2)}×), p99 ≤ 2× trivial's (${(webhook.p99 / baseline.p99).toFixed(1)}×)`);
}

if (wanted('hub')) {
  const env = process.env;
  const r = await hubBurst({
    users: Number(env.BENCH_HUB_USERS ?? 200),
    spawnLimit: Number(env.BENCH_HUB_LIMIT ?? env.BENCH_HUB_SPAWN_LIMIT ?? 64),
    slowSeconds: Number(env.BENCH_HUB_SPAWN_SECONDS ?? 1),
    replicas: Number(env.BENCH_HUB_REPLICAS ?? 2),
    login: env.BENCH_HUB_LOGIN === 'handoff' ? 'handoff' : 'sso',
  });
  out(
    `\nhub burst: ${r.users} users at once, concurrent_spawn_limit ${r.spawnLimit}, ${r.slowSeconds} s spawner, real JupyterHub; ` +
      `${r.replicas} serve replica(s) on the Kubernetes store (real kube-apiserver) behind a round-robin proxy; login mode ${r.login}`,
  );
  out(`  clients without JavaScript, reloading a progress page after ${r.reloadMs} ms (BENCH_HUB_RELOAD_MS; the page's refresh says 2 s)`);
  out(`  handoffs (every browser on its lab): ${r.handoffSeconds.toFixed(2)} s, landed ${r.landed}/${r.users}, 5xx ${r.responses5xx}, 429s absorbed ${r.service429} (hub log: ${r.throttled} throttled)`);
  out(`  hub's own API spawns of ${r.users} users:  ${r.apiSeconds.toFixed(2)} s  → ratio ${(r.handoffSeconds / r.apiSeconds).toFixed(2)}× (target ≤ 1.10×)`);
  out(`  requests per replica: ${r.perReplica.join(' / ')}`);
  out(`  hub API calls by the service: ${r.hubCallsTotal} = ${(r.hubCallsTotal / r.users).toFixed(2)} per handoff`);
  for (const [kind, n] of Object.entries(r.hubCalls).sort((a, b) => b[1] - a[1])) out(`    ${String(n).padStart(6)}  ${(n / r.users).toFixed(2).padStart(5)}/handoff  ${kind}`);
  out(`  (the API baseline client: ${r.apiCalls} calls, ${(r.apiCalls / r.users).toFixed(2)} per user with its 100 ms polling, ${r.api429} × 429, ${r.apiFailedSpawns} failed spawns requested again)`);
  out(`  connections: ${r.socketRetries} GETs sent again on a closed keep-alive connection, ${r.clientErrors} browsers with a failed request`);
  out(`  spawns the hub failed: ${r.tryAgain} "Try again" clicks on the progress page, ${r.spawnFailuresShown} browsers still on a failure after 3`);
}

if (wanted('memory')) {
  const r = await benchMemory(Number(process.env.BENCH_MEMORY_HANDOFFS ?? 100_000), Number(process.env.BENCH_MEMORY_USERS ?? 10_000));
  const mb = (m: { total: number; anon: number }) => `${(m.total * 1.048576).toFixed(0).padStart(4)} MB RSS (${(m.anon * 1.048576).toFixed(0).padStart(3)} MB anonymous)`;
  out(`\nmemory: RS256 handoffs over 10 000 users, local store on tmpfs, the image's memory settings (${IMAGE_NODE_FLAGS.join(' ')}, MALLOC_ARENA_MAX=2)`);
  out(`  idle after start:          ${mb(r.idle)}`);
  for (const [n, m] of r.samples) out(`  after ${String(n).padStart(6)} handoffs:  ${mb(m)}  ${(m.total / r.idle.total).toFixed(2)}× idle`);
  const last = r.samples.at(-1)?.[1];
  const first = r.samples[0]?.[1];
  if (last && first) out(`  failures ${r.failures}; targets: ≤ 120 MB after 100k (${(last.total * 1.048576).toFixed(0)} MB), flat after the first 10k (+${((last.total - first.total) * 1.048576).toFixed(0)} MB)`);
}

if (wanted('node')) {
  const runs = await benchNode(Number(process.env.BENCH_NODE_RUNS ?? 1));
  const s = (t: NotebookTimes) => `lab ${t.lab.toFixed(1).padStart(5)} s  notebook ${t.notebook.toFixed(1).padStart(5)} s  connected ${t.connected.toFixed(1).padStart(5)} s`;
  out('\nnode: click → connected notebook, server running (z2jh chart, JupyterLab 4, one-node cluster; a new session for a running server)');
  runs.forEach((r, i) => {
    out(`  run ${i + 1}  fast refresh on:  ${s(r.on)}  1.00×`);
    out(`         fast refresh off: ${s(r.off)}  ${(r.off.connected / r.on.connected).toFixed(1)}× on`);
  });
}
