/**
 * Two service processes (`serve`, as two replicas of the chart's Deployment would run) handle
 * handoffs for one user at the same time, storing through a real kube-apiserver as the chart's
 * ServiceAccount. The only coordination is the API server's optimistic concurrency.
 *
 * That the replicas race is not left to scheduling: each reaches the API server through its own
 * loopback relay, which holds its first Secret write until the other replica's first write is held
 * too, then lets both go. Both were computed from the same read, so the API server must refuse one
 * (409 Conflict or AlreadyExists), and the store must resolve it.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { secretName } from '../../src/k8s/layout.js';
import { HMAC_SECRET, hmacKey, mint, postToken, randomSessionId, rawTestConfig } from '../support/core.js';
import { CHART, clusterTools, ensureHelm, HELMS } from '../support/helm.js';
import { startKubeApiserver, type KubeApiserver } from '../support/kube-apiserver.js';
import { serveCli, type Served } from '../support/process.js';

const NS = 'hub';
const RELEASE = 'omnisci-handoff';

let k: KubeApiserver;
let home: string;
const served: Served[] = [];
const relays: Server[] = [];
/** Each replica's first Secret write, held until both replicas have sent one. */
const firstWrites: (() => void)[] = [];
let barrierOpen = false;

/** A plain-http relay on loopback to the API server (TLS, its CA); see the file's comment for the barrier. */
async function relay(): Promise<string> {
  let held = false;
  const forward = (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const up = httpsRequest(new URL(req.url ?? '/', k.url), { method: req.method, headers: { ...req.headers, host: new URL(k.url).host }, ca: k.caPem }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    up.end(body);
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const write = ['POST', 'PUT', 'PATCH'].includes(req.method ?? '') && /\/secrets(\/|$|\?)/.test(req.url ?? '');
      if (!write || held || barrierOpen) return forward(req, res, body);
      held = true;
      firstWrites.push(() => forward(req, res, body));
      if (firstWrites.length === 2) {
        barrierOpen = true;
        for (const go of firstWrites) go();
      }
    });
  });
  relays.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const { run, kubectl } = clusterTools(() => home, () => k.kubeconfigPath);

beforeAll(async () => {
  ensureHelm();
  home = mkdtempSync(join(tmpdir(), 'k8s-replicas-'));
  k = await startKubeApiserver();
  console.log(`kube-apiserver ready in ${k.startupSeconds.toFixed(1)}s`);
  await kubectl(['create', 'namespace', NS]);
  // The chart's ServiceAccount, Role and RoleBinding are what the replicas run with.
  const values = join(home, 'values.json');
  writeFileSync(values, JSON.stringify({ config: { webhook: { enabled: false } } }));
  await run(HELMS.v4, ['install', RELEASE, CHART, '-n', NS, '-f', values, '--kubeconfig', k.kubeconfigPath]);
  const req = { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } };
  const token = JSON.parse(await kubectl(['create', '--raw', `/api/v1/namespaces/${NS}/serviceaccounts/${RELEASE}/token`, '-f', '-'], JSON.stringify(req))).status.token as string;

  const kubeconfig = JSON.parse(readFileSync(k.writeKubeconfig('sa', token, NS), 'utf8')) as { clusters: { cluster: Record<string, string | boolean> }[] };
  for (let i = 0; i < 2; i++) {
    // Plain http on loopback (the relay speaks TLS to the API server); client-node wants this flag for http.
    kubeconfig.clusters[0]!.cluster = { server: await relay(), 'insecure-skip-tls-verify': true };
    const kubeconfigFile = join(home, `kubeconfig-${i}.json`);
    writeFileSync(kubeconfigFile, JSON.stringify(kubeconfig), { mode: 0o600 });
    const configFile = join(home, `config-${i}.yaml`);
    writeFileSync(configFile, stringify(rawTestConfig({ store: { backend: 'kubernetes', kubernetes: { kubeconfig: kubeconfigFile, gcIntervalMinutes: 0 } } })));
    served.push(await serveCli(['--config', configFile], { TEST_HMAC: HMAC_SECRET }));
  }
}, 300_000);

afterAll(async () => {
  for (const s of served) await s.stop();
  for (const r of relays) {
    r.closeAllConnections();
    r.close();
  }
  await k?.stop();
  if (home) rmSync(home, { recursive: true, force: true });
}, 60_000);

const post = (url: string, token: string) => postToken(url, token, { accept: 'application/json' });

test('each jti is accepted once, the Secret ends with the newest iat, no handoff is lost', async () => {
  const user = 'carol';
  const base = Math.floor(Date.now() / 1000) - 60;
  // Issued out of order, all for one user; every token goes to both replicas at once.
  const issued = Array.from({ length: 8 }, (_, i) => ({ iat: base + ((i * 5) % 8), session: randomSessionId() }));
  const tokens = await Promise.all(issued.map((t) => mint(hmacKey('HS256'), { subject: user, iat: t.iat, omnisci: { session: t.session } })));
  const responses = await Promise.all(tokens.flatMap((t) => served.map((s) => post(s.url, t))));

  for (let i = 0; i < tokens.length; i++) {
    const pair = responses.slice(2 * i, 2 * i + 2);
    expect(pair.map((r) => r.status).sort()).toEqual([303, 409]);
    const refused = pair.find((r) => r.status === 409)!;
    expect(((await refused.json()) as { error: string }).error).toBe('token_replayed');
  }

  const secret = JSON.parse(await kubectl(['-n', NS, 'get', 'secret', secretName('omnisci-session', user), '-o', 'json']));
  const state = JSON.parse(Buffer.from(secret.data.state, 'base64').toString());
  const newest = issued.reduce((m, t) => (t.iat > m.iat ? t : m));
  expect(state.iat).toBe(newest.iat);
  expect(JSON.parse(Buffer.from(secret.data.session, 'base64').toString()).session).toBe(newest.session);
  expect(state.jtis).toHaveLength(tokens.length);
  // The replicas did race (the relays made sure): the API server answered writes of the Secret with 409 Conflict/AlreadyExists.
  expect(barrierOpen).toBe(true);
  const conflicts = (await kubectl(['get', '--raw', '/metrics']))
    .split('\n')
    .filter((l) => l.startsWith('apiserver_request_total{code="409"') && l.includes('resource="secrets"'))
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
  expect(conflicts).toBeGreaterThan(0);
  for (const s of served) for (const t of issued) expect(s.output()).not.toContain(t.session);
}, 60_000);
