/**
 * Admission webhook benchmark: admissions/s and latency of `POST /mutate` with a KubeSpawner 7 pod
 * over HTTPS, side by side with a trivial HTTPS endpoint in the same run that answers the webhook's
 * own response, canned (same bytes both ways, so the ratio is the webhook's work alone). Each server
 * runs in its own process. bench/run.ts prints the ratios (targets: ≥ 0.60×, p99 ≤ 5 ms at c=32).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { admissionReview, kubespawnerPod } from '../test/support/kubespawner-pod.js';
import { makeCert } from '../test/support/tls.js';
import { startTarget, type BenchResult } from './process.js';

async function load(name: string, port: number, body: string, connections: number, duration: number): Promise<BenchResult> {
  const r = await autocannon({
    url: `https://127.0.0.1:${port}/mutate`, // autocannon does not verify certificates
    connections,
    duration,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  const failed = r.errors + r.timeouts + r.non2xx;
  if (failed) throw new Error(`${name}: ${failed} failed requests`);
  return { name, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: failed };
}

/** One admission, to learn the webhook's exact response for the canned trivial endpoint. */
function admitOnce(port: number, ca: string, body: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/mutate', method: 'POST', ca, headers: { 'content-type': 'application/json' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`webhook answered ${res.statusCode}`)),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export async function benchWebhook(opts: { connections: number; durationSec: number }): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'oh-bench-webhook-'));
  const cert = makeCert(dir, 'bench');
  const body = JSON.stringify(admissionReview(kubespawnerPod({ user: 'Bench.User@example.com', server: 'gpu' })));
  const targets: ChildProcess[] = [];
  try {
    const webhook = await startTarget('webhook-target.js', ['webhook', cert.certFile, cert.keyFile]);
    targets.push(webhook.child);
    const responseFile = join(dir, 'response.json');
    writeFileSync(responseFile, await admitOnce(webhook.port, cert.cert, body));
    const trivial = await startTarget('webhook-target.js', ['trivial', cert.certFile, cert.keyFile, responseFile]);
    targets.push(trivial.child);
    const warm = Math.max(1, Math.round(opts.durationSec / 5));
    await load('warmup', trivial.port, body, opts.connections, warm);
    await load('warmup', webhook.port, body, opts.connections, warm);
    return [
      await load('trivial HTTPS endpoint (canned response)', trivial.port, body, opts.connections, opts.durationSec),
      await load('webhook admission (z2jh pod)', webhook.port, body, opts.connections, opts.durationSec),
    ];
  } finally {
    for (const t of targets) t.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}
