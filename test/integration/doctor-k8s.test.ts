/**
 * `omnisci-handoff doctor` on Kubernetes: the chart installed by real Helm 4 on a real kube-apiserver
 * (test/support/kube-apiserver.ts), the doctor run as the built CLI with the chart's config, as the
 * chart's ServiceAccount (TokenRequest kubeconfig, as in the service's pod) and optionally an admin's
 * kubeconfig; plus a real JupyterHub for the hub checks. A good install passes everything (exit 0);
 * without the admin's kubeconfig the reads the Role does not grant are "cannot check" (exit 3); a
 * Role without delete, a caBundle of another CA, an objectSelector for other pods and a missing
 * Jupyter ConfigMap each fail with their line (exit 1).
 */
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { makeKey } from '../support/core.js';
import { CHART, clusterTools, ensureHelm, HELMS, KUBECTL, runTool } from '../support/helm.js';
import { startHub, waitFor, type RunningHub } from '../support/jupyterhub.js';
import { startKubeApiserver, type KubeApiserver } from '../support/kube-apiserver.js';
import { runCli } from '../support/process.js';

jest.setTimeout(120_000);
const NS = 'jhub';
const RELEASE = 'omnisci-handoff';
const SA = `system:serviceaccount:${NS}:${RELEASE}`;
const MWC = `${RELEASE}-${NS}`;

let k: KubeApiserver;
let hub: RunningHub;
let home: string;
let configPath: string;
let certFile: string;
let validUntil: string;
let jwksFile: string;

const { run, kubectl, getJson } = clusterTools(() => home, () => k.kubeconfigPath);

beforeAll(async () => {
  ensureHelm();
  home = mkdtempSync(join(tmpdir(), 'oh-doctor-k8s-'));
  // Both started at once; whichever started is kept for afterAll to stop, also when the other failed.
  const [kube, jhub] = await Promise.allSettled([startKubeApiserver(), startHub()]);
  if (kube.status === 'fulfilled') k = kube.value;
  if (jhub.status === 'fulfilled') hub = jhub.value;
  for (const r of [kube, jhub]) if (r.status === 'rejected') throw r.reason;
  await kubectl(['create', 'namespace', NS]);
  await kubectl(['-n', NS, 'create', 'serviceaccount', 'default']);
  await run(HELMS.v4, ['install', RELEASE, CHART, '-n', NS, '--kubeconfig', k.kubeconfigPath]);

  // What the endpointslice controller would publish for the Service once a replica is ready.
  const svc = await getJson(['-n', NS, 'service', RELEASE]);
  await kubectl(['create', '-f', '-'], JSON.stringify({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${RELEASE}-ready`, namespace: NS, labels: { 'kubernetes.io/service-name': RELEASE } },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.0.0.10'], conditions: { ready: true } }],
    ports: svc.spec.ports.map((p: { name: string; port: number }) => ({ name: p.name, port: p.port, protocol: 'TCP' })),
  }));

  // The service account's credentials, as its pod has them (a TokenRequest token).
  const req = { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } };
  const token = JSON.parse(await kubectl(['create', '--raw', `/api/v1/namespaces/${NS}/serviceaccounts/${RELEASE}/token`, '-f', '-'], JSON.stringify(req))).status.token;
  const saKubeconfig = k.writeKubeconfig('sa', token, NS);

  // The webhook's certificate as the Deployment mounts it.
  const tls = (await getJson(['-n', NS, 'secret', `${RELEASE}-webhook-tls`])).data;
  certFile = join(home, 'tls.crt');
  writeFileSync(certFile, Buffer.from(tls['tls.crt'], 'base64'));
  writeFileSync(join(home, 'tls.key'), Buffer.from(tls['tls.key'], 'base64'));
  validUntil = new Date(new X509Certificate(readFileSync(certFile)).validTo).toISOString().slice(0, 10);

  const key = await makeKey('ES256', 'immerse-1');
  jwksFile = join(home, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [key.publicJwk] }));

  // The chart's own config, with what differs outside the pod: files, the kubeconfig, the hub's addresses.
  const config = parseYaml((await getJson(['-n', NS, 'configmap', RELEASE])).data['config.yaml']);
  config.token = { ...config.token, algorithms: ['ES256'], keys: { publicKeyFiles: [jwksFile] } };
  config.store.kubernetes = { ...config.store.kubernetes, kubeconfig: saKubeconfig };
  config.webhook = { ...config.webhook, certFile, keyFile: join(home, 'tls.key') };
  // The chart's ticket keys, as the pod mounts them.
  const ticketKeyFile = join(home, 'ticket-keys');
  writeFileSync(ticketKeyFile, Buffer.from((await getJson(['-n', NS, 'secret', `${RELEASE}-ticket-keys`])).data['ticket-keys'], 'base64'), { mode: 0o600 });
  config.hub = { ...config.hub, apiUrl: hub.apiUrl, apiTokenFile: undefined, ticketKeyFile };
  config.redirect = { ...config.redirect, hubPublicUrl: hub.publicUrl };
  configPath = join(home, 'config.yaml');
  writeFileSync(configPath, stringify(config));
}, 300_000);

afterAll(async () => {
  await Promise.all([k?.stop(), hub?.stop()]);
  if (home) rmSync(home, { recursive: true, force: true });
}, 60_000);

const doctor = (...args: string[]) => runCli(['doctor', '--config', configPath, ...args], { JUPYTERHUB_API_TOKEN: hub.serviceToken });
const asAdmin = () => doctor('--kubeconfig', k.kubeconfigPath);
const lines = (out: string) => out.trimEnd().split('\n');
const line = (out: string, check: string) => lines(out).find((l) => l.slice(2).startsWith(`${check}: `));

const RBAC = ['get secrets', 'create secrets', 'update secrets', 'list secrets', 'delete secrets', 'list pods', 'patch pods'];

test('a good install, checked with an admin kubeconfig: every check passes, exit 0', async () => {
  const r = await asAdmin();
  expect(r.stderr).toBe('');
  const version = ((await (await fetch(`${hub.publicUrl}/hub/api`)).json()) as { version: string }).version;
  expect(lines(r.stdout)).toEqual([
    `✓ config: ${configPath}: valid (store kubernetes, hub on, webhook on)`,
    `✓ keys: public key file: ${jwksFile}: 1 key (kid immerse-1)`,
    '✓ keys: algorithms: ES256 (kid immerse-1)',
    `✓ kubernetes: api: ${k.url} as ${SA}, namespace ${NS}`,
    ...RBAC.map((p) => `✓ rbac: ${p}: allowed in ${NS}`),
    `✓ webhook: registration: ${MWC}: singleuser.${RELEASE}.${NS}.svc → service ${NS}/${RELEASE}:443/mutate, failurePolicy Ignore`,
    `✓ webhook: tls: certificate for ${RELEASE}.${NS}.svc issued by the caBundle's ${RELEASE}-webhook-ca, valid until ${validUntil}`,
    `✓ webhook: service: ${NS}/${RELEASE}:443 → webhook, selector app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/name=omnisci-handoff, 1 ready endpoint`,
    `✓ webhook: selectors: objectSelector component=singleuser-server, namespaceSelector kubernetes.io/metadata.name=${NS}, rules: pod CREATE`,
    `✓ notebook: jupyter configmap: ${NS}/${RELEASE}-jupyter: 4 files, as the service's notebook settings make them`,
    `✓ hub: api: ${hub.apiUrl}: JupyterHub ${version}, the token is service omnisci-handoff's`,
    '✓ hub: scopes: servers, read:shares',
    '✓ hub: token strength: about 192 bits of entropy (at least 128 needed)',
    `✓ hub: ticket keys: ${join(home, 'ticket-keys')}: a sealing key, each at least 128 bits`,
    `✓ hub: public url: ${hub.publicUrl}: JupyterHub ${version}`,
  ]);
  expect(r.code).toBe(0);
});

test("as the service account alone: RBAC passes, what its Role cannot read is 'cannot check', exit 3", async () => {
  const r = await doctor();
  const fix = 'run with --kubeconfig FILE of a cluster admin';
  expect(lines(r.stdout).slice(3, 16)).toEqual([
    `✓ kubernetes: api: ${k.url} as ${SA}, namespace ${NS}`,
    ...RBAC.map((p) => `✓ rbac: ${p}: allowed in ${NS}`),
    `? webhook: registration: cannot check (no permission to list mutatingwebhookconfigurations) — fix: ${fix}`,
    `? webhook: tls: cannot check (the webhook registration could not be read) — fix: ${fix}`,
    `? webhook: service: cannot check (the webhook registration could not be read) — fix: ${fix}`,
    `? webhook: selectors: cannot check (the webhook registration could not be read) — fix: ${fix}`,
    `? notebook: jupyter configmap: cannot check (no permission to get configmaps in ${NS}) — fix: ${fix}`,
  ]);
  expect(r.code).toBe(3);
  const json = JSON.parse((await doctor('--json')).stdout) as { check: string; ok: boolean | null }[];
  expect(json.filter((c) => c.ok === null).map((c) => c.check)).toEqual([
    'webhook: registration', 'webhook: tls', 'webhook: service', 'webhook: selectors', 'notebook: jupyter configmap',
  ]);
});

test('a Role without delete on secrets: that permission fails with its fix, exit 1', async () => {
  const role = await getJson(['-n', NS, 'role', RELEASE]);
  const canDelete = async () => (await runTool(KUBECTL, ['--kubeconfig', k.kubeconfigPath, 'auth', 'can-i', 'delete', 'secrets', '-n', NS, `--as=${SA}`], home)).stdout.trim();
  await kubectl(['-n', NS, 'patch', 'role', RELEASE, '--type=json', '-p', JSON.stringify([{ op: 'replace', path: '/rules/0/verbs', value: ['get', 'list', 'create', 'update'] }])]);
  try {
    // The authorizer's cache follows the change (bounded wait, then the assertion).
    await waitFor(async () => ((await canDelete()) === 'no' ? true : undefined), 100);
    const r = await asAdmin();
    expect(line(r.stdout, 'rbac: delete secrets')).toBe(
      `✗ rbac: delete secrets: not allowed in ${NS} — fix: add it to the service account's Role in ${NS} (docs/kubernetes.md "RBAC"), or turn the sweep off (store.kubernetes.gcMaxAgeDays: 0)`,
    );
    expect(lines(r.stdout).filter((l) => l.startsWith('✗'))).toHaveLength(1);
    expect(r.code).toBe(1);
  } finally {
    await kubectl(['-n', NS, 'patch', 'role', RELEASE, '--type=json', '-p', JSON.stringify([{ op: 'replace', path: '/rules/0/verbs', value: role.rules[0].verbs }])]);
    await waitFor(async () => ((await canDelete()) === 'yes' ? true : undefined), 100);
  }
});

test('a caBundle of another CA, and an objectSelector for other pods: the webhook checks fail, exit 1', async () => {
  const original = await getJson(['mutatingwebhookconfiguration', MWC]);
  const ca = join(home, 'other-ca');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '1', '-subj', '/CN=some-other-ca'], { stdio: 'pipe' });
  const broken = structuredClone(original);
  broken.webhooks[0].clientConfig.caBundle = readFileSync(`${ca}.crt`).toString('base64');
  broken.webhooks[0].objectSelector = { matchLabels: { component: 'hub' } };
  await kubectl(['replace', '-f', '-'], JSON.stringify(broken));
  try {
    const r = await asAdmin();
    expect(line(r.stdout, 'webhook: tls')).toBe(
      `✗ webhook: tls: the caBundle (some-other-ca) did not issue the webhook certificate (issuer ${RELEASE}-webhook-ca) — fix: put the CA that issued ${certFile} into the caBundle (helm upgrade re-renders both; with cert-manager check the cert-manager.io/inject-ca-from annotation)`,
    );
    expect(line(r.stdout, 'webhook: selectors')).toBe(
      `✗ webhook: selectors: objectSelector selects component=hub, not singleuser-server — fix: select component=singleuser-server pods in ${NS} on CREATE (docs/kubernetes.md "The admission webhook")`,
    );
    expect(r.code).toBe(1);
  } finally {
    const now = await getJson(['mutatingwebhookconfiguration', MWC]);
    await kubectl(['replace', '-f', '-'], JSON.stringify({ ...original, metadata: { ...original.metadata, resourceVersion: now.metadata.resourceVersion } }));
  }
  expect((await asAdmin()).code).toBe(0);
});

test('the Jupyter ConfigMap missing, then not matching the notebook settings: its check fails, exit 1', async () => {
  const name = `${RELEASE}-jupyter`;
  const original = await getJson(['-n', NS, 'configmap', name]);
  await kubectl(['-n', NS, 'delete', 'configmap', name]);
  try {
    const r = await asAdmin();
    expect(line(r.stdout, 'notebook: jupyter configmap')).toBe(
      `✗ notebook: jupyter configmap: ConfigMap ${NS}/${name} does not exist: servers start without jupyterlab-omnisci's config — fix: install it (the Helm chart and manifests/ ship it; webhook.jupyterConfigMap names it)`,
    );
    expect(r.code).toBe(1);
    // Rendered for another session file name than the service's.
    const data = Object.fromEntries(Object.entries(original.data as Record<string, string>).map(([key, v]) => [key, v.replace('/var/run/omnisci-handoff/session', '/var/run/omnisci-handoff/other')]));
    await kubectl(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NS }, data }));
    const differs = await asAdmin();
    expect(line(differs.stdout, 'notebook: jupyter configmap')).toBe(
      `✗ notebook: jupyter configmap: ConfigMap ${NS}/${name} does not match the service's notebook settings (jupyter_notebook_config.json differs, jupyter_server_config.json differs) — fix: render it from the same notebook settings as the service (helm upgrade with the same config.notebook)`,
    );
    await kubectl(['-n', NS, 'delete', 'configmap', name]);
  } finally {
    const { uid: _u, resourceVersion: _r, creationTimestamp: _c, managedFields: _m, ...metadata } = original.metadata;
    await kubectl(['create', '-f', '-'], JSON.stringify({ ...original, metadata }));
  }
  expect((await asAdmin()).code).toBe(0);
});

test("off-cluster without the service's credentials: its identity and RBAC are 'cannot check', an admin's reads still pass; exit 3", async () => {
  const config = parseYaml(readFileSync(configPath, 'utf8'));
  config.store.kubernetes = { ...config.store.kubernetes, kubeconfig: undefined, namespace: NS };
  const file = join(home, 'config-no-identity.yaml');
  writeFileSync(file, stringify(config));
  const r = await runCli(['doctor', '--config', file, '--kubeconfig', k.kubeconfigPath], { JUPYTERHUB_API_TOKEN: hub.serviceToken });
  const fix = "run doctor in the service's pod (kubectl exec deploy/<release> -- node dist/src/cli.js doctor --config …)";
  expect(lines(r.stdout).slice(3, 11)).toEqual([
    `? kubernetes: api: cannot check (not in a pod and no store.kubernetes.kubeconfig: the service account is not available here) — fix: ${fix}`,
    ...RBAC.map((p) => `? rbac: ${p}: cannot check (no service identity here) — fix: ${fix}`),
  ]);
  expect(lines(r.stdout).slice(11, 16).every((l) => l.startsWith('✓ '))).toBe(true);
  expect(r.code).toBe(3);
});
