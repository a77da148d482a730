/**
 * Two service processes (`serve`, as two replicas of the chart's Deployment would run) handle
 * handoffs for one user at the same time, storing through a real kube-apiserver as the chart's
 * ServiceAccount. The only coordination is the API server's optimistic concurrency.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

  const configFile = join(home, 'config.yaml');
  writeFileSync(
    configFile,
    stringify(
      rawTestConfig({ store: { backend: 'kubernetes', kubernetes: { kubeconfig: k.writeKubeconfig('sa', token, NS), gcIntervalMinutes: 0 } } }),
    ),
  );
  for (let i = 0; i < 2; i++) served.push(await serveCli(['--config', configFile], { TEST_HMAC: HMAC_SECRET }));
}, 300_000);

afterAll(async () => {
  for (const s of served) await s.stop();
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
  // The replicas did race: the API server answered writes of the Secret with 409 Conflict/AlreadyExists.
  const conflicts = (await kubectl(['get', '--raw', '/metrics']))
    .split('\n')
    .filter((l) => l.startsWith('apiserver_request_total{code="409"') && l.includes('resource="secrets"'))
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
  expect(conflicts).toBeGreaterThan(0);
  for (const s of served) for (const t of issued) expect(s.output()).not.toContain(t.session);
}, 60_000);
