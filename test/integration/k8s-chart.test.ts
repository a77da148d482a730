/**
 * The chart, its RBAC and the admission webhook against a real kube-apiserver + etcd on loopback
 * (test/support/kube-apiserver.ts): real Helm 3 and 4 install the chart; the store runs as the
 * chart's ServiceAccount with a TokenRequest token; the API server calls the webhook through the
 * chart's own MutatingWebhookConfiguration (Service reference, generated CA) when pods are created.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, request as httpsRequest, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiException, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { resolveConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { HandoffError } from '../../src/errors.js';
import { parseTicketKeys } from '../../src/hub/ticket-keys.js';
import { POD_REFRESH_ANNOTATION, secretName } from '../../src/k8s/layout.js';
import { createKubernetesStore, type KubernetesStore } from '../../src/store/kubernetes.js';
import { injectionSpec, JUPYTER_VOLUME, podPatch, SESSION_VOLUME } from '../../src/webhook/patch.js';
import { startWebhookServer, type WebhookServer } from '../../src/webhook/server.js';
import { makeHandoff } from '../support/core.js';
import { CHART, clusterTools, ensureHelm, KUBECTL, runTool } from '../support/helm.js';
import { startKubeApiserver, type KubeApiserver } from '../support/kube-apiserver.js';
import { startHub, waitFor } from '../support/jupyterhub.js';
import { kubespawnerPod } from '../support/kubespawner-pod.js';

const NS = 'jhub';
const LITE_NS = 'jhub-lite';
const RELEASE = 'omnisci-handoff';
const PRIORITY_CLASS = 'jhub-default-priority';

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [k: string]: any }; [k: string]: any };

let k: KubeApiserver;
let home: string;
const stores: KubernetesStore[] = [];

beforeAll(async () => {
  ensureHelm();
  home = mkdtempSync(join(tmpdir(), 'k8s-chart-'));
  k = await startKubeApiserver();
  console.log(`kube-apiserver ready in ${k.startupSeconds.toFixed(1)}s`);
  // What kube-controller-manager and z2jh would have made: the namespaces' default
  // ServiceAccount (pods name it) and z2jh's user PriorityClass.
  for (const ns of [NS, LITE_NS]) {
    await kubectl(['create', 'namespace', ns]);
    await kubectl(['-n', ns, 'create', 'serviceaccount', 'default']);
  }
  await kubectl(['create', 'priorityclass', PRIORITY_CLASS, '--value=0']);
}, 300_000);

afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await k?.stop();
  if (home) rmSync(home, { recursive: true, force: true });
}, 60_000);

const { kubectl, getJson, helm } = clusterTools(() => home, () => k.kubeconfigPath);

let fileNo = 0;
function valuesFile(values: object): string {
  const f = join(home, `values-${fileNo++}.json`);
  writeFileSync(f, JSON.stringify(values));
  return f;
}

async function manifest(ns: string): Promise<Obj[]> {
  return parseAllDocuments(await helm('v4', ['get', 'manifest', RELEASE, '-n', ns]))
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

/** The service config the chart rendered into its ConfigMap, as stored by the API server. */
async function chartConfig(ns: string): Promise<Record<string, any>> {
  return parseYaml((await getJson(['-n', ns, 'configmap', RELEASE])).data['config.yaml']);
}

/** A kubeconfig authenticating as the release's ServiceAccount, with a TokenRequest token. */
async function serviceAccountKubeconfig(ns: string): Promise<string> {
  const req = { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } };
  const out = JSON.parse(await kubectl(['create', '--raw', `/api/v1/namespaces/${ns}/serviceaccounts/${RELEASE}/token`, '-f', '-'], JSON.stringify(req)));
  expect(out.status.token).toMatch(/^ey/);
  return k.writeKubeconfig(`sa-${ns}`, out.status.token, ns);
}

/** The config the service would run with under the chart, pointed at a kubeconfig (no in-cluster files here). */
async function serviceConfig(ns: string, kubeconfig: string, over: Record<string, any> = {}): Promise<Config> {
  const raw = await chartConfig(ns);
  raw.store.kubernetes = { ...raw.store.kubernetes, kubeconfig, gcIntervalMinutes: 0, ...over.kubernetes };
  raw.webhook = { ...raw.webhook, ...over.webhook };
  return resolveConfig(raw, {});
}

/** The chart's generated serving certificate of the webhook, as stored, in files as the Deployment mounts it. */
async function chartTls(): Promise<{ certFile: string; keyFile: string }> {
  const tls = (await getJson(['-n', NS, 'secret', `${RELEASE}-webhook-tls`])).data;
  const dir = mkdtempSync(join(home, 'tls-'));
  writeFileSync(join(dir, 'tls.crt'), Buffer.from(tls['tls.crt'], 'base64'));
  writeFileSync(join(dir, 'tls.key'), Buffer.from(tls['tls.key'], 'base64'));
  return { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') };
}

/** The Service's ClusterIP:443, as the API server resolves the webhook's Service reference. */
async function webhookTarget(): Promise<string> {
  return `${(await getJson(['-n', NS, 'service', RELEASE])).spec.clusterIP}:443`;
}

function store(config: Config): KubernetesStore {
  const s = createKubernetesStore(config);
  stores.push(s);
  return s;
}

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (e) {
    if (e instanceof ApiException) return e.code;
    throw e;
  }
}

describe('helm install', () => {
  test.each<[string, object]>([
    ['defaults', {}],
    ['webhook and fast refresh off', { config: { webhook: { enabled: false }, store: { kubernetes: { fastRefresh: false } } } }],
    ['existing TLS Secret, hub token Secret, HMAC key', {
      admission: { tls: { mode: 'existingSecret', existingSecret: { name: 'my-tls', caBundle: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' } }, failurePolicy: 'Fail' },
      jupyterhub: { apiToken: { secretName: 'handoff-hub-token', key: 'token' }, release: 'jhub' },
      tokenKeys: { publicKeys: { secretName: '' }, hmacSecret: { secretName: 'immerse-keys' } },
      config: { token: { algorithms: ['HS256'] } },
    }],
  ])('%s: strict server-side validation accepts every rendered object', async (_name, values) => {
    const rendered = await helm('v4', ['template', RELEASE, CHART, '-n', NS, '-f', valuesFile(values)]);
    // Unknown or duplicate fields are errors with --validate=strict; nothing is stored (dry run).
    const out = await kubectl(['create', '--dry-run=server', '--validate=strict', '-n', NS, '-f', '-'], rendered);
    expect(out.trim().split('\n').length).toBe(parseAllDocuments(rendered).filter((d) => d.toJS()).length);
  }, 60_000);

  test('helm 4, defaults (webhook on, generated TLS): every object is stored; upgrade keeps the TLS', async () => {
    await helm('v4', ['install', RELEASE, CHART, '-n', NS, '-f', valuesFile({})]);
    const objs = await manifest(NS);
    expect(objs.map((o) => o.kind).sort()).toEqual([
      'ConfigMap', 'ConfigMap', 'Deployment', 'MutatingWebhookConfiguration', 'NetworkPolicy',
      'PodDisruptionBudget', 'Role', 'RoleBinding', 'Secret', 'Secret', 'Service', 'ServiceAccount',
      'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding', 'ValidatingAdmissionPolicyBinding',
    ]);
    for (const o of objs) {
      const group = o.apiVersion.includes('/') ? `.${o.apiVersion.split('/')[0]}` : '';
      const stored = await getJson([`${o.kind}${group}`, o.metadata.name, ...(o.metadata.namespace ? ['-n', o.metadata.namespace] : [])]);
      expect(stored.metadata.uid).toBeDefined();
      expect(stored.metadata.labels['app.kubernetes.io/managed-by']).toBe('Helm');
    }
    const tls = await getJson(['-n', NS, 'secret', `${RELEASE}-webhook-tls`]);
    const mwcName = `${RELEASE}-${NS}`;
    expect((await getJson(['mutatingwebhookconfiguration', mwcName])).webhooks[0].clientConfig.caBundle).toBe(tls.data['ca.crt']);

    const keys = await getJson(['-n', NS, 'secret', `${RELEASE}-ticket-keys`]);

    // Generated TLS and ticket keys survive an upgrade: the chart's `lookup` reads the Secrets from the live server.
    await helm('v4', ['upgrade', RELEASE, CHART, '-n', NS, '-f', valuesFile({ replicaCount: 3 })]);
    expect((await getJson(['-n', NS, 'deployment', RELEASE])).spec.replicas).toBe(3);
    expect((await getJson(['-n', NS, 'secret', `${RELEASE}-webhook-tls`])).data).toEqual(tls.data);
    expect((await getJson(['mutatingwebhookconfiguration', mwcName])).webhooks[0].clientConfig.caBundle).toBe(tls.data['ca.crt']);
    expect((await getJson(['-n', NS, 'secret', `${RELEASE}-ticket-keys`])).data).toEqual(keys.data);
  }, 60_000);

  test('ticket keys: a new ticketKeys.rotation rotates them once (new key sealing later, old one opening for a window) and restarts the pods', async () => {
    const read = async () => {
      const secret = await getJson(['-n', NS, 'secret', `${RELEASE}-ticket-keys`]);
      return { text: Buffer.from(secret.data['ticket-keys'], 'base64').toString(), rotation: secret.metadata.annotations['omnisci-handoff/rotation'] };
    };
    const podChecksum = async () => (await getJson(['-n', NS, 'deployment', RELEASE])).spec.template.metadata.annotations['checksum/ticket-keys'];
    const before = await read();
    const [current] = parseTicketKeys(before.text, 'before');
    const checksum = await podChecksum();
    const values = { replicaCount: 3, ticketKeys: { rotation: '2030-01-01', activateSeconds: 300, acceptOldSeconds: 7200 } };
    const at = Date.now();
    await helm('v4', ['upgrade', RELEASE, CHART, '-n', NS, '-f', valuesFile(values)]);
    const rotated = await read();
    expect(rotated.rotation).toBe('2030-01-01');
    const keys = parseTicketKeys(rotated.text, 'rotated');
    expect(keys).toEqual([
      { secret: expect.any(String), from: expect.any(Number) },
      { secret: current!.secret, until: expect.any(Number) },
    ]);
    expect(keys[0]!.secret).not.toBe(current!.secret);
    // Helm renders the times in whole seconds, a moment after `at`.
    expect(keys[0]!.from! - at).toBeGreaterThanOrEqual(299_000);
    expect(keys[0]!.from! - at).toBeLessThan(360_000);
    expect(keys[1]!.until! - keys[0]!.from!).toBe(7200_000);
    expect(await podChecksum()).not.toBe(checksum);
    // The same rotation value again changes nothing.
    await helm('v4', ['upgrade', RELEASE, CHART, '-n', NS, '-f', valuesFile(values)]);
    expect((await read()).text).toBe(rotated.text);
  }, 60_000);

  test('helm 3, webhook off and fast refresh off: accepted, no webhook objects, no pod permissions', async () => {
    await helm('v3', ['install', RELEASE, CHART, '-n', LITE_NS, '-f', valuesFile({ replicaCount: 1, config: { webhook: { enabled: false }, store: { kubernetes: { fastRefresh: false } } } })]);
    const kinds = (await manifest(LITE_NS)).map((o) => o.kind).sort();
    expect(kinds).toEqual([
      'ConfigMap', 'ConfigMap', 'Deployment', 'NetworkPolicy', 'Role', 'RoleBinding', 'Secret', 'Service', 'ServiceAccount',
      'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding', 'ValidatingAdmissionPolicyBinding',
    ]);
    expect((await getJson(['-n', LITE_NS, 'role', RELEASE])).rules).toEqual([
      { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'create', 'update', 'delete'] },
    ]);
    expect((await getJson(['mutatingwebhookconfigurations'])).items.map((m: Obj) => m.metadata.name)).toEqual([`${RELEASE}-${NS}`]);
  }, 60_000);
});

describe("the store as the chart's ServiceAccount", () => {
  let kubeconfig: string;
  let api: CoreV1Api;
  beforeAll(async () => {
    kubeconfig = await serviceAccountKubeconfig(NS);
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    api = kc.makeApiClient(CoreV1Api);
  });

  /**
   * A request as the service account, answered with its status; a 403 must be the policy's (`denied`:
   * its message), never RBAC's. PATCH alone, as the store does it (kubectl would GET first, which the Role does not grant).
   */
  const asServiceAccount = (method: string, path: string, body: object, type = 'json', denied = /denied request: omnisci-handoff may only/) =>
    new Promise<number>((resolve, reject) => {
      const token = (parseYaml(readFileSync(kubeconfig, 'utf8')) as any).users[0].user.token as string;
      const req = httpsRequest(`${k.url}/api/v1/namespaces/${NS}/${path}`, {
        method,
        ca: k.caPem,
        headers: { authorization: `Bearer ${token}`, 'content-type': `application/${type}` },
      }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => (res.statusCode === 403 && !denied.test(text) ? reject(new Error(text)) : resolve(res.statusCode ?? 0)));
      });
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
  const patch = (path: string, body: object, type = 'merge-patch') => asServiceAccount('PATCH', path, body, `${type}+json`);

  test('can do everything the store does: check, accept, get, revoke, sweep', async () => {
    const s = store(await serviceConfig(NS, kubeconfig));
    await s.check();
    const user = `Dana.Scully@Example.com-${randomBytes(2).toString('hex')}`;
    const h = makeHandoff(user);
    expect((await s.accept(h)).outcome).toBe('stored');
    expect((await s.accept(makeHandoff(user, { iat: h.iat + 1 }))).outcome).toBe('stored');
    expect((await s.get(user))?.iat).toBe(h.iat + 1);
    const stored = await getJson(['-n', NS, 'secret', secretName('omnisci-session', user)]);
    expect(stored.metadata.annotations['omnisci-handoff/username']).toBe(user);
    expect(await s.revoke({ user, jti: randomUUID(), iat: h.iat + 2, exp: h.iat + 300 })).toBe(true);
    expect((await s.get(user))?.session).toBe('');
    // gcMaxAgeDays is 30 in the chart: a sweep "31 days later" deletes it (list + delete).
    expect(await s.sweep(Date.now() + 31 * 86_400_000)).toBeGreaterThanOrEqual(1);
    expect(await s.get(user)).toBeUndefined();
  }, 60_000);

  test('fast refresh: lists and annotates the running pod of the user', async () => {
    const user = `fox-${randomBytes(2).toString('hex')}`;
    const pod = kubespawnerPod({ user });
    pod.metadata.namespace = NS;
    await kubectl(['create', '-f', '-'], JSON.stringify(pod));
    // No kubelet here: report the pod Running as a kubelet would.
    await kubectl(['-n', NS, 'patch', 'pod', pod.metadata.name, '--subresource=status', '--type=merge', '-p', '{"status":{"phase":"Running"}}']);
    const s = store(await serviceConfig(NS, kubeconfig));
    expect((await s.accept(makeHandoff(user))).outcome).toBe('stored');
    expect((await getJson(['-n', NS, 'pod', pod.metadata.name])).metadata.annotations[POD_REFRESH_ANNOTATION]).toMatch(/^\d{4}-/);
  }, 60_000);

  test('is refused (403) outside what it needs', async () => {
    expect(await status(api.listNamespacedSecret({ namespace: 'default' }))).toBe(403);
    expect(await status(api.listSecretForAllNamespaces())).toBe(403);
    expect(await status(api.readNamespacedSecret({ name: `${RELEASE}-webhook-tls`, namespace: LITE_NS }))).toBe(403);
    expect(await status(api.listNamespacedConfigMap({ namespace: NS }))).toBe(403);
    expect(await status(api.deleteNamespacedPod({ name: 'x', namespace: NS }))).toBe(403);
    // The store maps a real 403 to store_forbidden naming what is missing.
    const elsewhere = store(await serviceConfig(NS, kubeconfig, { kubernetes: { namespace: 'default' } }));
    const e = await elsewhere.accept(makeHandoff('gus')).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(HandoffError);
    expect((e as HandoffError).code).toBe('store_forbidden');
    expect((e as HandoffError).detail).toMatch(/secrets in namespace default \(HTTP 403/);
  }, 60_000);

  test("the admission policy fences writes RBAC cannot: not the hub's Secret, no unlabelled Secret, no pod change but the refresh annotation", async () => {
    // What z2jh and others keep in the namespace: the hub's Secret, a Secret with our prefix but not ours, a user's pod.
    await kubectl(['-n', NS, 'create', 'secret', 'generic', 'hub', '--from-literal=hub.config.CryptKeeper.keys=k', '--from-literal=proxy.token=t']);
    await kubectl(['-n', NS, 'create', 'secret', 'generic', 'omnisci-session-stranger', '--from-literal=x=y']);
    const pod = kubespawnerPod({ user: `gina-${randomBytes(2).toString('hex')}` });
    pod.metadata.namespace = NS;
    await kubectl(['create', '-f', '-'], JSON.stringify(pod));
    const name = pod.metadata.name as string;
    const hub = await api.readNamespacedSecret({ name: 'hub', namespace: NS });
    // The policy is loaded asynchronously after install: wait until it answers (bounded).
    const replaceHub = () => status(api.replaceNamespacedSecret({ name: 'hub', namespace: NS, body: { ...hub, data: { ...hub.data, 'proxy.token': 'b3duZWQ=' } } }));
    expect(await waitFor(async () => ((await replaceHub()) === 403 ? 403 : undefined), 100)).toBe(403);
    expect(await status(api.deleteNamespacedSecret({ name: 'hub', namespace: NS }))).toBe(403);
    expect(await status(api.deleteNamespacedSecret({ name: 'omnisci-session-stranger', namespace: NS }))).toBe(403);
    const labels = { 'app.kubernetes.io/managed-by': 'omnisci-handoff' };
    // Taking over a Secret by labelling it is an update of an unlabelled one: refused.
    const stranger = await api.readNamespacedSecret({ name: 'omnisci-session-stranger', namespace: NS });
    expect(await status(api.replaceNamespacedSecret({ name: 'omnisci-session-stranger', namespace: NS, body: { ...stranger, metadata: { ...stranger.metadata, labels } } }))).toBe(403);
    expect(await status(api.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'not-ours', labels } } }))).toBe(403);
    expect(await status(api.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'omnisci-session-unlabelled' } } }))).toBe(403);
    expect(await status(api.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'omnisci-session-fine', labels } } }))).toBe(200);
    expect(await status(api.deleteNamespacedSecret({ name: 'omnisci-session-fine', namespace: NS }))).toBe(200);
    const patchPod = (body: object) => patch(`pods/${name}`, body);
    // An image swap (strategic merge: the container by name) is a valid pod update that only the policy stops.
    expect(await patch(`pods/${name}`, { spec: { containers: [{ name: 'notebook', image: 'evil/miner' }] } }, 'strategic-merge-patch')).toBe(403);
    expect(await patchPod({ metadata: { labels: { component: 'hub' } } })).toBe(403);
    expect(await patchPod({ metadata: { annotations: { 'hub.jupyter.org/username': 'someone-else' } } })).toBe(403);
    expect(await patchPod({ metadata: { annotations: { [POD_REFRESH_ANNOTATION]: new Date().toISOString() } } })).toBe(200);
    // Reads stay possible (RBAC cannot narrow get/list by name prefix); docs/kubernetes.md says so.
    expect(await status(api.readNamespacedSecret({ name: 'hub', namespace: NS }))).toBe(200);
    expect((await getJson(['-n', NS, 'secret', 'hub'])).data['proxy.token']).toBe(hub.data!['proxy.token']);
  }, 60_000);

  test("the admission policy allows only Secrets shaped like the store's: no token Secret of the hub's account (a takeover), no other key, no foreign annotation", async () => {
    const labels = { 'app.kubernetes.io/managed-by': 'omnisci-handoff' };
    const createSecret = (body: object) =>
      asServiceAccount('POST', 'secrets', { apiVersion: 'v1', kind: 'Secret', ...body }, 'json', /denied request: omnisci-handoff may only write Opaque Secrets with the keys session, protocol, host, port, state and no annotations but omnisci-handoff\//);
    // The token controller fills a service-account-token Secret with that account's token, which this account could then read.
    expect(await createSecret({
      metadata: { name: 'omnisci-session-takeover', labels, annotations: { 'kubernetes.io/service-account.name': 'hub' } },
      type: 'kubernetes.io/service-account-token',
    })).toBe(403);
    // Other types carry meaning too (an image pull secret, a TLS certificate an ingress serves).
    for (const type of ['kubernetes.io/dockerconfigjson', 'kubernetes.io/tls']) {
      const data = type === 'kubernetes.io/tls' ? { 'tls.crt': '', 'tls.key': '' } : { '.dockerconfigjson': Buffer.from('{}').toString('base64') };
      expect(await createSecret({ metadata: { name: 'omnisci-session-typed', labels }, type, data })).toBe(403);
    }
    expect(await createSecret({ metadata: { name: 'omnisci-session-annotated', labels, annotations: { 'kubernetes.io/service-account.name': 'hub' } } })).toBe(403);
    expect(await createSecret({ metadata: { name: 'omnisci-session-keys', labels }, data: { token: 'eA==' } })).toBe(403);
    // The service's own writes pass (the first test stored, revoked and swept through this policy); the keys one by one too.
    const own = { metadata: { name: 'omnisci-session-own', labels: { ...labels, 'omnisci-handoff/user': 'own' }, annotations: { 'omnisci-handoff/username': 'own' } }, type: 'Opaque' };
    expect(await createSecret({ ...own, data: Object.fromEntries(['session', 'protocol', 'host', 'port', 'state'].map((k) => [k, 'eA=='])) })).toBe(201);
    // An update cannot add what a create may not (a foreign key or annotation on the store's own Secret).
    const stored = await api.readNamespacedSecret({ name: 'omnisci-session-own', namespace: NS });
    const replace = (body: object) =>
      asServiceAccount('PUT', 'secrets/omnisci-session-own', body, 'json', /denied request: omnisci-handoff may only write Opaque Secrets/);
    expect(await replace({ ...stored, data: { ...stored.data, token: 'eA==' } })).toBe(403);
    expect(await replace({ ...stored, metadata: { ...stored.metadata, annotations: { ...stored.metadata!.annotations, 'kubernetes.io/service-account.name': 'hub' } } })).toBe(403);
    expect(await replace({ ...stored, data: { ...stored.data, state: 'eQ==' } })).toBe(200);
    expect(await status(api.deleteNamespacedSecret({ name: 'omnisci-session-own', namespace: NS }))).toBe(200);
  }, 60_000);

  test("the admission policy: a pod's owner references and finalizers stay (no garbage-collecting or wedging a user's pod)", async () => {
    const pod = kubespawnerPod({ user: `hugo-${randomBytes(2).toString('hex')}` });
    pod.metadata.namespace = NS;
    await kubectl(['create', '-f', '-'], JSON.stringify(pod));
    const name = pod.metadata.name as string;
    // The namespace as owner: had the patch passed, the garbage collector would see a foreign owner (and finalizers wedge deletion).
    const ns = await getJson(['namespace', NS]);
    const owner = { apiVersion: 'v1', kind: 'Namespace', name: NS, uid: ns.metadata.uid };
    expect(await patch(`pods/${name}`, { metadata: { ownerReferences: [owner] } })).toBe(403);
    expect(await patch(`pods/${name}`, { metadata: { finalizers: ['example.com/wedge'] } })).toBe(403);
    const stored = await getJson(['-n', NS, 'pod', name]);
    expect(stored.metadata.ownerReferences).toBeUndefined();
    expect(stored.metadata.finalizers).toBeUndefined();
    expect(await patch(`pods/${name}`, { metadata: { annotations: { [POD_REFRESH_ANNOTATION]: new Date().toISOString() } } })).toBe(200);
  }, 60_000);

  test('with fast refresh off the Role grants no pods, and the store works without them', async () => {
    const liteConfig = await serviceAccountKubeconfig(LITE_NS);
    const kc = new KubeConfig();
    kc.loadFromFile(liteConfig);
    const lite = kc.makeApiClient(CoreV1Api);
    expect(await status(lite.listNamespacedPod({ namespace: LITE_NS }))).toBe(403);
    expect(await status(lite.listNamespacedSecret({ namespace: LITE_NS }))).toBe(200);
    const s = store(await serviceConfig(LITE_NS, liteConfig));
    const user = 'hank';
    expect((await s.accept(makeHandoff(user))).outcome).toBe('stored');
    expect((await s.get(user))?.user).toBe(user);
  }, 60_000);
});

describe('the admission webhook, called by the API server', () => {
  let webhook: WebhookServer | undefined;
  let config: Config;
  let target: string;
  const mwc = `${RELEASE}-${NS}`;

  beforeAll(async () => {
    const tls = await chartTls();
    config = await serviceConfig(NS, k.kubeconfigPath, { webhook: { host: '127.0.0.1', port: 0, ...tls } });
    webhook = await startWebhookServer(config);
    target = await webhookTarget();
    k.route(target, webhook.port);
  });
  afterAll(async () => {
    await webhook?.close();
  });

  async function createPod(pod: Record<string, any>): Promise<Obj> {
    await kubectl(['create', '-f', '-'], JSON.stringify(pod));
    return await getJson(['-n', pod.metadata.namespace, 'pod', pod.metadata.name]);
  }
  const notebook = (pod: Obj) => pod.spec.containers.find((c: { name: string }) => c.name === 'notebook');

  test('a KubeSpawner 7 pod gets the env refs, the volumes and the mounts', async () => {
    const user = `Eve.Polastri@Example.com-${randomBytes(2).toString('hex')}`;
    const pod = kubespawnerPod({ user });
    pod.metadata.namespace = NS;
    const stored = await createPod(pod);
    const secret = secretName(config.store.kubernetes.secretPrefix, user);
    const c = notebook(stored);
    for (const [name, key] of [['OMNISCI_PROTOCOL', 'protocol'], ['OMNISCI_HOST', 'host'], ['OMNISCI_PORT', 'port']])
      expect(c.env).toContainEqual({ name, valueFrom: { secretKeyRef: { name: secret, key, optional: true } } });
    expect(c.env).toContainEqual({ name: 'JUPYTER_CONFIG_PATH', value: config.webhook.jupyterConfigDir });
    expect(c.volumeMounts).toEqual(
      expect.arrayContaining([
        { name: SESSION_VOLUME, mountPath: config.notebook.sessionDir, readOnly: true },
        { name: JUPYTER_VOLUME, mountPath: config.webhook.jupyterConfigDir, readOnly: true },
      ]),
    );
    const vols = Object.fromEntries(stored.spec.volumes.map((v: { name: string }) => [v.name, v]));
    expect(vols[SESSION_VOLUME].secret).toEqual({
      secretName: secret,
      optional: true,
      defaultMode: 0o440, // z2jh's fsGroup 100
      items: [{ key: config.notebook.sessionFileName, path: config.notebook.sessionFileName }],
    });
    expect(vols[JUPYTER_VOLUME].configMap.name).toBe(config.webhook.jupyterConfigMap);
    // The ConfigMap the volume names is the one the chart installed.
    expect((await getJson(['-n', NS, 'configmap', config.webhook.jupyterConfigMap])).data).toBeDefined();
    expect(stored.metadata.annotations['omnisci-handoff/secret']).toBe(secret);
    // KubeSpawner's own parts are untouched.
    expect(c.env.find((e: { name: string }) => e.name === 'JUPYTERHUB_USER').value).toBe(user);
    expect(vols[`volume-${pod.metadata.labels['hub.jupyter.org/username']}`]).toBeDefined();
  }, 60_000);

  test('a pod that is not a single-user server is left alone', async () => {
    const pod = kubespawnerPod({ user: 'ivan' });
    pod.metadata.namespace = NS;
    pod.metadata.name = 'not-a-notebook';
    pod.metadata.labels.component = 'hub';
    const stored = await createPod(pod);
    expect(notebook(stored).env.map((e: { name: string }) => e.name)).toEqual(pod.spec.containers[0].env.map((e: { name: string }) => e.name));
    expect(stored.spec.volumes.map((v: { name: string }) => v.name)).toEqual(['volume-ivan']);
    expect(stored.metadata.annotations['omnisci-handoff/secret']).toBeUndefined();
  }, 60_000);

  test('JupyterHub 5 with KubeSpawner 7 spawns a user: the pod it creates is mutated', async () => {
    const user = 'nora';
    const hub = await startHub({
      users: [user],
      env: { KUBECONFIG: k.kubeconfigPath },
      extraConfig: `
c.JupyterHub.spawner_class = 'kubespawner.KubeSpawner'
c.KubeSpawner.namespace = ${JSON.stringify(NS)}
c.KubeSpawner.image = 'quay.io/jupyterhub/k8s-singleuser-sample:4.2.0'
c.KubeSpawner.cmd = ['jupyterhub-singleuser']
c.KubeSpawner.fs_gid = 100
# No kubelet: the pod stays Pending; the spawn is stopped with the hub.
c.KubeSpawner.start_timeout = 600
`,
    });
    try {
      expect((await hub.admin('POST', `/users/${user}/server`)).status).toBe(202);
      const name = `jupyter-${user}`;
      const stored = await waitFor(async () => {
        const r = await runTool(KUBECTL, ['--kubeconfig', k.kubeconfigPath, '-n', NS, 'get', 'pod', name, '-o', 'json'], home);
        return r.status === 0 ? (JSON.parse(r.stdout) as Obj) : undefined;
      });
      expect(stored.metadata.labels.component).toBe('singleuser-server');
      expect(stored.metadata.annotations['hub.jupyter.org/username']).toBe(user);
      const c = notebook(stored);
      expect(c.env).toContainEqual({ name: 'OMNISCI_HOST', valueFrom: { secretKeyRef: { name: `omnisci-session-${user}`, key: 'host', optional: true } } });
      expect(c.env.find((e: { name: string }) => e.name === 'JUPYTERHUB_USER').value).toBe(user);
      expect(c.volumeMounts).toContainEqual({ name: SESSION_VOLUME, mountPath: config.notebook.sessionDir, readOnly: true });
      expect(stored.spec.volumes.find((v: { name: string }) => v.name === SESSION_VOLUME).secret.secretName).toBe(`omnisci-session-${user}`);
    } finally {
      await hub.stop();
    }
  }, 120_000);

  test('webhook down: failurePolicy Ignore admits the pod unchanged, Fail refuses it', async () => {
    await webhook!.close();
    webhook = undefined;
    const pod = kubespawnerPod({ user: 'judy' });
    pod.metadata.namespace = NS;
    const stored = await createPod(pod);
    expect(stored.spec.volumes.map((v: { name: string }) => v.name)).not.toContain(SESSION_VOLUME);

    const conf = await getJson(['mutatingwebhookconfiguration', mwc]);
    conf.webhooks[0].failurePolicy = 'Fail';
    await kubectl(['replace', '-f', '-'], JSON.stringify(conf));
    try {
      const refused = kubespawnerPod({ user: 'kate' });
      refused.metadata.namespace = NS;
      const r = await runTool(KUBECTL, ['--kubeconfig', k.kubeconfigPath, 'create', '-f', '-'], home, JSON.stringify(refused));
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/failed calling webhook "singleuser\.omnisci-handoff\.jhub\.svc"/);
      expect((await runTool(KUBECTL, ['--kubeconfig', k.kubeconfigPath, '-n', NS, 'get', 'pod', refused.metadata.name], home)).status).not.toBe(0);
    } finally {
      const back = await getJson(['mutatingwebhookconfiguration', mwc]);
      back.webhooks[0].failurePolicy = 'Ignore';
      await kubectl(['replace', '-f', '-'], JSON.stringify(back));
    }
  }, 60_000);
});

describe('a compromised webhook, bounded by the session Secret policy (it runs after every mutation)', () => {
  /** What the compromised webhook does to each pod it admits (RFC 6902 ops). */
  let rewrite: (pod: Obj) => object[] = () => [];
  let calls = 0;
  let evil: HttpsServer;
  let target: string;
  let webhook: WebhookServer | undefined;
  let config: Config;

  beforeAll(async () => {
    const tls = await chartTls();
    evil = createHttpsServer({ cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) }, (req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const review = JSON.parse(body);
        calls++;
        const ops = rewrite(review.request.object);
        const patch = ops.length ? { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(ops)).toString('base64') } : {};
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: review.request.uid, allowed: true, ...patch } }));
      });
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    target = await webhookTarget();
    k.route(target, (evil.address() as AddressInfo).port);
    config = await serviceConfig(NS, k.kubeconfigPath, { webhook: { host: '127.0.0.1', port: 0, ...tls } });
  });
  afterAll(async () => {
    await webhook?.close();
    await new Promise((resolve) => evil?.close(resolve));
  });

  /** Creates the pod as its creator (KubeSpawner, here the admin) would: the output of kubectl, and whether the pod exists. */
  async function create(pod: Record<string, any>): Promise<{ ok: boolean; stderr: string; stored?: Obj }> {
    pod.metadata.namespace = NS;
    const before = calls;
    const r = await runTool(KUBECTL, ['--kubeconfig', k.kubeconfigPath, 'create', '-f', '-'], home, JSON.stringify(pod));
    // The webhook was asked: what follows is the policy's answer to what it returned.
    expect(calls).toBeGreaterThan(before);
    const got = await runTool(KUBECTL, ['--kubeconfig', k.kubeconfigPath, '-n', NS, 'get', 'pod', pod.metadata.name, '-o', 'json'], home);
    return { ok: r.status === 0, stderr: r.stderr, ...(got.status === 0 ? { stored: JSON.parse(got.stdout) as Obj } : {}) };
  }
  const refusal = /denied request: a pod may reference a session Secret \(omnisci-session-…\) only if it is that user's pod \(jupyter-\{user_server\}\)/;
  const bobs = secretName('omnisci-session', 'bob');
  const env = (name: string) => ({ name, valueFrom: { secretKeyRef: { name: bobs, key: 'host', optional: true } } });

  test.each<[string, (pod: Obj) => object[]]>([
    ["a volume of bob's Secret", () => [{ op: 'add', path: '/spec/volumes/-', value: { name: 'loot', secret: { secretName: bobs, optional: true } } }]],
    ["a projected volume with bob's Secret", () => [
      { op: 'add', path: '/spec/volumes/-', value: { name: 'loot', projected: { sources: [{ configMap: { name: 'x', optional: true } }, { secret: { name: bobs, optional: true } }] } } },
    ]],
    ["an env var from bob's Secret", () => [{ op: 'add', path: '/spec/containers/0/env/-', value: env('LOOT') }]],
    ["all of bob's keys as env vars (envFrom)", () => [{ op: 'add', path: '/spec/containers/0/envFrom', value: [{ secretRef: { name: bobs, optional: true } }] }]],
    ["an init container's env var from bob's Secret", () => [{ op: 'add', path: '/spec/initContainers/0/env', value: [env('LOOT')] }]],
    ["bob's Secret, with the pod relabelled and re-annotated as bob's (the name still says alice)", (pod) => [
      { op: 'replace', path: '/metadata/annotations/hub.jupyter.org~1username', value: 'bob' },
      { op: 'replace', path: '/metadata/labels/hub.jupyter.org~1username', value: 'bob' },
      { op: 'add', path: '/spec/volumes/-', value: { name: 'loot', secret: { secretName: bobs, optional: true } } },
      { op: 'replace', path: `/spec/containers/0/env/${pod.spec.containers[0].env.findIndex((e: { name: string }) => e.name === 'JUPYTERHUB_USER')}/value`, value: 'bob' },
    ]],
  ])("alice's pod rewritten to use %s: refused with the policy's message, no pod", async (_case, ops) => {
    rewrite = ops;
    const pod = kubespawnerPod({ user: `alice-${randomBytes(2).toString('hex')}` });
    const r = await create(pod);
    expect(r.stderr).toMatch(refusal);
    expect([r.ok, r.stored]).toEqual([false, undefined]);
  }, 60_000);

  test("renaming alice's pod to bob's pod name (to pass as bob's) is refused: the name is the one its creator asked for", async () => {
    rewrite = () => [
      { op: 'replace', path: '/metadata/name', value: 'jupyter-bob' },
      { op: 'add', path: '/spec/volumes/-', value: { name: 'loot', secret: { secretName: bobs, optional: true } } },
    ];
    const pod = kubespawnerPod({ user: `alice-${randomBytes(2).toString('hex')}` });
    const r = await create(pod);
    expect(r.stderr).toMatch(/denied request: a pod keeps the name its creator asked for/);
    expect([r.ok, r.stored]).toEqual([false, undefined]);
    expect((await runTool(KUBECTL, ['--kubeconfig', k.kubeconfigPath, '-n', NS, 'get', 'pod', 'jupyter-bob'], home)).status).not.toBe(0);
  }, 60_000);

  test("names that look alike are told apart: 'al' and 'Al' (whose slug is al---<hash>) cannot take each other's Secret", async () => {
    const [al, Al] = [secretName('omnisci-session', 'al'), secretName('omnisci-session', 'Al')];
    expect(Al).toMatch(/^omnisci-session-al---[0-9a-f]{8}$/);
    const mount = (secret: string) => () => [{ op: 'add', path: '/spec/volumes/-', value: { name: 'loot', secret: { secretName: secret, optional: true } } }];
    rewrite = mount(Al);
    expect((await create(kubespawnerPod({ user: 'al' }))).stderr).toMatch(refusal);
    rewrite = mount(al);
    expect((await create(kubespawnerPod({ user: 'Al' }))).stderr).toMatch(refusal);
    rewrite = mount(al);
    expect((await create(kubespawnerPod({ user: 'al', server: 'al' }))).ok).toBe(true);
  }, 60_000);

  test('the service\'s own webhook still passes: its pods of plain, hashed and 49–63-character names, default and named servers', async () => {
    webhook = await startWebhookServer(config);
    const own = injectionSpec(config);
    // Honest: exactly what our webhook's rules return.
    rewrite = (pod) => podPatch(pod as never, own).ops;
    for (const [user, server] of [['pia', ''], ['Pia.Long@Example.com', ''], ['p'.repeat(55), ''], ['Pia.Long@Example.com', 'gpu'], ['pia', 'A Long Server Name For Analytics']] as const) {
      const r = await create(kubespawnerPod({ user, ...(server ? { server } : {}) }));
      expect({ user, server, ok: r.ok, stderr: r.stderr }).toEqual({ user, server, ok: true, stderr: '' });
      expect(r.stored!.spec.volumes.find((v: { name: string }) => v.name === SESSION_VOLUME).secret.secretName).toBe(secretName('omnisci-session', user));
    }
    // The documented limit: a named server whose {user_server} KubeSpawner hashes as a whole (the two slugs
    // joined exceed 48 characters) has no user slug in its name, so the policy cannot bind it and refuses it.
    const hashedWhole = kubespawnerPod({ user: 'p'.repeat(55), server: 'gpu' });
    expect(hashedWhole.metadata.name).toMatch(/^jupyter-p{17}--gpu---[0-9a-f]{8}$/);
    expect((await create(hashedWhole)).stderr).toMatch(refusal);
  }, 60_000);
});
