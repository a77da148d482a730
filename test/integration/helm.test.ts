/**
 * The Helm chart with real Helm 3 and Helm 4 (scripts/deps/helm.sh): lint, render with several value
 * sets, validate every rendered object against the Kubernetes OpenAPI schemas, check that the
 * rendered service config is accepted by the service's own loader, and that bad values fail.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { resolveConfig } from '../../src/config/load.js';
import { RULES } from '../../src/config/rules.js';
import { renderManifests } from '../../src/deploy/manifests.js';
import { parseTicketKeys } from '../../src/hub/ticket-keys.js';
import { jupyterConfigMapData } from '../../src/notebook/configmap.js';
import { MUTATE_PATH } from '../../src/webhook/server.js';
import { CHART, ensureHelm, helmEnv, HELMS } from '../support/helm.js';
import { validateK8sObject } from '../support/k8s-validate.js';
import { ROOT } from '../support/root.js';

const NS = 'jhub';
/** The chart's objects that live in no namespace. */
const CLUSTER_SCOPED = ['MutatingWebhookConfiguration', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding'];

type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [k: string]: any }; [k: string]: any };

let tmp: string;
beforeAll(() => {
  ensureHelm();
  tmp = mkdtempSync(join(tmpdir(), 'helm-test-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let fileNo = 0;
function valuesFile(values: object): string {
  const f = join(tmp, `values-${fileNo++}.json`);
  writeFileSync(f, JSON.stringify(values));
  return f;
}

function helm(bin: string, args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(bin, args, { encoding: 'utf8', env: helmEnv(tmp) });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function template(bin: string, values: object = {}, release = 'omnisci-handoff'): K8sObject[] {
  const r = helm(bin, ['template', release, CHART, '--namespace', NS, '-f', valuesFile(values)]);
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

/** A copy of the chart without its checks (validate.tpl's includes removed), to render what it would otherwise refuse. */
let unchecked: string | undefined;
function uncheckedChart(): string {
  if (unchecked) return unchecked;
  unchecked = join(tmp, 'unchecked-chart');
  cpSync(CHART, unchecked, { recursive: true });
  const sa = join(unchecked, 'templates/serviceaccount.yaml');
  const text = readFileSync(sa, 'utf8');
  const stripped = text.replace(/^\{\{- include "omnisci-handoff\.validate(Ports)?" \. \}\}\n/gm, '');
  expect(stripped).not.toBe(text);
  writeFileSync(sa, stripped);
  return unchecked;
}

function templateError(bin: string, values: object): string {
  const r = helm(bin, ['template', 'omnisci-handoff', CHART, '--namespace', NS, '-f', valuesFile(values)]);
  expect(r.status).not.toBe(0);
  return r.stderr;
}

const find = (objs: K8sObject[], kind: string, suffix = '') =>
  objs.find((o) => o.kind === kind && o.metadata.name.endsWith(suffix));
const kinds = (objs: K8sObject[]) => objs.map((o) => o.kind).sort();

function renderedConfig(objs: K8sObject[]) {
  const cm = objs.find((o) => o.kind === 'ConfigMap' && o.data?.['config.yaml']);
  return parseYaml(cm!.data['config.yaml']);
}

const HMAC_ONLY = {
  tokenKeys: { publicKeys: { secretName: '' }, hmacSecret: { secretName: 'immerse-keys' } },
  config: { token: { algorithms: ['HS256'] } },
};

const VALUE_SETS: Record<string, object> = {
  defaults: {},
  certManager: { admission: { tls: { mode: 'certManager' } }, serviceMonitor: { enabled: true } },
  certManagerIssuer: { admission: { tls: { mode: 'certManager', certManager: { issuerRef: { name: 'ca', kind: 'ClusterIssuer' } } } } },
  existingSecrets: {
    admission: { tls: { mode: 'existingSecret', existingSecret: { name: 'my-tls', caBundle: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' } } },
    jupyterhub: { apiToken: { secretName: 'handoff-hub-token', key: 'token' }, release: 'jhub' },
    ...HMAC_ONLY,
  },
  webhookOff: { config: { webhook: { enabled: false } }, networkPolicy: { apiServer: { cidrs: ['10.0.0.1/32'] } } },
  fastRefreshOff: { config: { store: { kubernetes: { fastRefresh: false } } }, replicaCount: 1 },
  loginHandoff: {
    config: {
      hub: { loginMode: 'handoff', createUsers: true },
      token: { keys: { jwksUrl: 'https://immerse.example.com:8443/.well-known/jwks.json' } },
      redirect: { hubPublicUrl: 'https://hub.example.com' },
    },
    tokenKeys: { publicKeys: { secretName: '' } },
    jupyterhub: { baseUrl: '/jhub' },
  },
  // Header mode for stock HEAVY.AI (docs/heavyai.md), with its notebook settings.
  heavydbHeader: {
    config: {
      heavydb: { enabled: true, url: 'http://heavydb:6278/', requireRole: 'omnisci_jupyter' },
      omnisci: { protocol: 'http', host: 'heavydb', port: 6278 },
      // An & in the URL: the chart's JSON (toRawJson) must still equal the service's byte for byte.
      notebook: { envFamilies: ['HEAVYAI'], allowHidden: true, relinkUrl: 'https://immerse.example.com/heavyai/?open=notebook&from=jupyter' },
    },
    jupyterhub: { baseUrl: '/jupyter/' },
  },
};

test('the validator rejects unknown fields, wrong types and missing required fields', async () => {
  const dep = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'x' },
    spec: {
      selector: { matchLabels: { a: 'b' } },
      template: { spec: { containers: [{ name: 'c', image: 'i', readinesProbe: {}, ports: [{ containerPort: 'http' }] }] } },
    },
  };
  expect(await validateK8sObject(dep)).toEqual([
    '/spec/template/spec/containers/0/ports/0/containerPort must be integer',
    '/spec/template/spec/containers/0/readinesProbe is not a field of V1Container',
  ]);
  expect(await validateK8sObject({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { ports: [{}] } })).toContain(
    '/spec/ports/0 must have required property port',
  );
});

describe.each(Object.entries(HELMS))('helm %s', (_v, bin) => {
  test('lint --strict passes with defaults and with the value sets', () => {
    for (const values of Object.values(VALUE_SETS)) {
      const r = helm(bin, ['lint', '--strict', CHART, '--namespace', NS, '-f', valuesFile(values)]);
      expect(`${r.stdout}${r.stderr}`).toContain('0 chart(s) failed');
      expect(r.status).toBe(0);
    }
  });

  test.each(Object.entries(VALUE_SETS))('%s: every object is valid Kubernetes and the config loads', async (_name, values) => {
    const objs = template(bin, values);
    for (const o of objs) expect({ object: `${o.kind}/${o.metadata.name}`, problems: await validateK8sObject(o) }).toEqual({ object: `${o.kind}/${o.metadata.name}`, problems: [] });
    for (const o of objs) if (!CLUSTER_SCOPED.includes(o.kind)) expect(o.metadata.namespace).toBe(NS);
    const config = resolveConfig(renderedConfig(objs), {});
    expect(config.store.backend).toBe('kubernetes');
    expect(config.store.kubernetes.namespace).toBe(NS);
    expect(config.listen.host).toBe('0.0.0.0');
    // The ConfigMap the webhook mounts holds exactly what the service would write.
    const jupyter = find(objs, 'ConfigMap', '-jupyter')!;
    expect(jupyter.data).toEqual(jupyterConfigMapData(config.notebook));
    expect(jupyter.metadata.name).toBe(config.webhook.jupyterConfigMap);
  });

  test('defaults: deployment hardening, probes, RBAC and webhook', () => {
    const objs = template(bin);
    expect(kinds(objs)).toEqual([
      'ConfigMap', 'ConfigMap', 'Deployment', 'MutatingWebhookConfiguration', 'NetworkPolicy',
      'PodDisruptionBudget', 'Role', 'RoleBinding', 'Secret', 'Secret', 'Service', 'ServiceAccount',
      'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding', 'ValidatingAdmissionPolicyBinding',
    ]);
    const dep = find(objs, 'Deployment')!;
    expect(dep.spec.replicas).toBe(2);
    const pod = dep.spec.template;
    expect(pod.metadata.labels['hub.jupyter.org/network-access-hub']).toBe('true');
    expect(pod.spec.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.spec.securityContext.runAsUser).toBeGreaterThan(0);
    expect(pod.spec.affinity.podAntiAffinity).toBeDefined();
    expect(pod.spec.topologySpreadConstraints[0].topologyKey).toBe('topology.kubernetes.io/zone');
    const c = pod.spec.containers[0];
    expect(c.args).toEqual(['serve', '--config', '/etc/omnisci-handoff/config.yaml']);
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    // Probes go to the internal listener: the public port (behind the hub proxy) serves no readiness.
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'internal' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'internal' });
    expect(c.ports).toContainEqual({ name: 'internal', containerPort: 8471 });
    expect(resolveConfig(renderedConfig(objs), {}).listen.internal).toEqual({ host: '0.0.0.0', port: 8471 });
    expect(c.resources.limits.memory).toBeDefined();
    // Hub token from z2jh's hub Secret, mounted as a file.
    const hubToken = pod.spec.volumes.find((v: any) => v.name === 'hub-token');
    expect(hubToken.secret).toMatchObject({ secretName: 'hub', items: [{ key: 'hub.services.omnisci-handoff.apiToken', path: 'token' }] });
    // Ticket keys: generated (one random 256-bit key, refused by nothing: the service's own parser takes it), mounted, configured.
    const keys = find(objs, 'Secret', '-ticket-keys')!;
    const keyFile = Buffer.from(keys.data['ticket-keys'], 'base64').toString();
    expect(parseTicketKeys(keyFile, 'ticket-keys')).toEqual([{ secret: expect.stringMatching(/^[A-Za-z0-9+/]{43}=$/) }]);
    expect(keys.metadata.annotations['omnisci-handoff/rotation']).toBe('');
    expect(pod.spec.volumes.find((v: any) => v.name === 'ticket-keys').secret).toMatchObject({ secretName: 'omnisci-handoff-ticket-keys', items: [{ key: 'ticket-keys', path: 'ticket-keys' }] });
    expect(c.volumeMounts).toContainEqual({ name: 'ticket-keys', mountPath: '/etc/omnisci-handoff/tickets', readOnly: true });
    expect(resolveConfig(renderedConfig(objs), {}).hub.ticketKeyFile).toBe('/etc/omnisci-handoff/tickets/ticket-keys');
    // Rendering twice (no cluster to look the Secret up in) draws a new key; an install keeps its own (k8s-chart.test.ts).
    expect(find(template(bin), 'Secret', '-ticket-keys')!.data).not.toEqual(keys.data);
    expect(find(objs, 'PodDisruptionBudget')!.spec.maxUnavailable).toBe(1);

    const svc = find(objs, 'Service')!;
    expect(svc.spec.ports.map((p: any) => p.name)).toEqual(['http', 'webhook']);

    const role = find(objs, 'Role')!;
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'create', 'update', 'delete'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['list', 'patch'] },
    ]);
    expect(objs.some((o) => o.kind.startsWith('Cluster'))).toBe(false);

    const mwc = find(objs, 'MutatingWebhookConfiguration')!;
    const wh = mwc.webhooks[0];
    expect(wh).toMatchObject({
      sideEffects: 'None',
      admissionReviewVersions: ['v1'],
      failurePolicy: 'Ignore',
      reinvocationPolicy: 'IfNeeded',
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS } },
      objectSelector: { matchLabels: { component: 'singleuser-server' } },
      clientConfig: { service: { name: 'omnisci-handoff', namespace: NS, port: 443, path: MUTATE_PATH } },
    });
    expect(wh.timeoutSeconds).toBeLessThanOrEqual(5);
    // Generated TLS: the caBundle is the CA that signed the served certificate.
    const tls = find(objs, 'Secret', '-webhook-tls')!;
    expect(wh.clientConfig.caBundle).toBe(tls.data['ca.crt']);
    const ca = new X509Certificate(Buffer.from(tls.data['ca.crt'], 'base64'));
    const cert = new X509Certificate(Buffer.from(tls.data['tls.crt'], 'base64'));
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.subjectAltName).toContain(`DNS:omnisci-handoff.${NS}.svc`);
  });

  test('value sets change what they should', () => {
    const cm = template(bin, VALUE_SETS.certManager!);
    const mwc = find(cm, 'MutatingWebhookConfiguration')!;
    expect(mwc.metadata.annotations['cert-manager.io/inject-ca-from']).toBe(`${NS}/omnisci-handoff-webhook`);
    expect(mwc.webhooks[0].clientConfig.caBundle).toBeUndefined();
    expect(find(cm, 'Certificate')!.spec.secretName).toBe('omnisci-handoff-webhook-tls');
    expect(find(cm, 'Issuer')!.spec.selfSigned).toEqual({});
    expect(find(cm, 'ServiceMonitor')!.spec.endpoints[0]).toMatchObject({ port: 'metrics', path: '/metrics' });
    expect(find(cm, 'Service')!.spec.ports).toContainEqual({ name: 'metrics', port: 8471, targetPort: 'internal', protocol: 'TCP' });
    expect(find(cm, 'NetworkPolicy')!.spec.ingress).toContainEqual({ ports: [{ port: 'internal', protocol: 'TCP' }] });
    expect(find(cm, 'Secret', '-webhook-tls')).toBeUndefined();

    const issuer = template(bin, VALUE_SETS.certManagerIssuer!);
    expect(find(issuer, 'Issuer')).toBeUndefined();
    expect(find(issuer, 'Certificate')!.spec.issuerRef).toEqual({ name: 'ca', kind: 'ClusterIssuer', group: 'cert-manager.io' });

    const ex = template(bin, VALUE_SETS.existingSecrets!);
    const exWh = find(ex, 'MutatingWebhookConfiguration')!.webhooks[0];
    expect(Buffer.from(exWh.clientConfig.caBundle, 'base64').toString()).toContain('BEGIN CERTIFICATE');
    expect(exWh.objectSelector.matchLabels).toEqual({ component: 'singleuser-server', release: 'jhub' });
    const exPod = find(ex, 'Deployment')!.spec.template.spec;
    expect(exPod.volumes.find((v: any) => v.name === 'webhook-tls').secret.secretName).toBe('my-tls');
    expect(exPod.volumes.find((v: any) => v.name === 'hub-token').secret).toMatchObject({ secretName: 'handoff-hub-token', items: [{ key: 'token' }] });
    expect(exPod.volumes.find((v: any) => v.name === 'hmac-secret').secret).toMatchObject({ secretName: 'immerse-keys' });
    expect(exPod.volumes.find((v: any) => v.name === 'public-keys')).toBeUndefined();
    expect(renderedConfig(ex).token.keys).toMatchObject({ hmacSecretFile: '/etc/omnisci-handoff/keys/hmac/hmac-secret', publicKeyFiles: [] });
    expect(find(ex, 'Secret', '-webhook-tls')).toBeUndefined();
    // The admin's own ticket keys: no generated Secret, theirs mounted.
    const own = template(bin, { ...VALUE_SETS.existingSecrets!, ticketKeys: { secretName: 'my-ticket-keys', key: 'keys' } });
    expect(find(own, 'Secret')).toBeUndefined();
    expect(find(own, 'Deployment')!.spec.template.spec.volumes.find((v: any) => v.name === 'ticket-keys').secret).toMatchObject({ secretName: 'my-ticket-keys', items: [{ key: 'keys', path: 'keys' }] });
    expect(renderedConfig(own).hub.ticketKeyFile).toBe('/etc/omnisci-handoff/tickets/keys');

    const off = template(bin, VALUE_SETS.webhookOff!);
    expect(find(off, 'MutatingWebhookConfiguration')).toBeUndefined();
    expect(find(off, 'Service')!.spec.ports.map((p: any) => p.name)).toEqual(['http']);
    expect(find(off, 'ConfigMap', '-jupyter')).toBeDefined();
    const offNp = find(off, 'NetworkPolicy')!;
    expect(JSON.stringify(offNp.spec.ingress)).not.toContain('webhook');
    expect(offNp.spec.egress.find((e: any) => e.to?.[0]?.ipBlock).to).toEqual([{ ipBlock: { cidr: '10.0.0.1/32' } }]);

    const fr = template(bin, VALUE_SETS.fastRefreshOff!);
    expect(find(fr, 'Role')!.rules).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'create', 'update', 'delete'] }]);
    expect(find(fr, 'PodDisruptionBudget')).toBeUndefined();

    const lh = template(bin, VALUE_SETS.loginHandoff!);
    const lhCfg = resolveConfig(renderedConfig(lh), {});
    expect(lhCfg.listen.basePath).toBe('/jhub/services/omnisci-handoff/');
    expect(lhCfg.hub.apiUrl).toBe('http://hub:8081/jhub/hub/api');
    const lhNp = find(lh, 'NetworkPolicy')!;
    expect(lhNp.spec.egress).toContainEqual({ ports: [{ port: 8443, protocol: 'TCP' }] });
    expect(find(lh, 'Deployment')!.spec.template.spec.containers[0].readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'internal' });
  });

  test.each<[string, object, RegExp]>([
    ['wrong type', { replicaCount: 'two' }, /replicaCount/],
    ['wrong config type', { config: { listen: { port: 'http' } } }, /config\/listen\/port|config\.listen\.port|listen.*port/],
    ['unknown chart key', { replicas: 3 }, /replicas/],
    ['unknown config key', { config: { token: { isuser: 'x' } } }, /isuser/],
    ['chart-managed config key', { config: { store: { backend: 'local' } } }, /backend/],
    ['bad enum', { admission: { failurePolicy: 'Sometimes' } }, /failurePolicy/],
    ['timeout above 5', { admission: { timeoutSeconds: 10 } }, /timeoutSeconds/],
    ['existingSecret without caBundle', { admission: { tls: { mode: 'existingSecret', existingSecret: { name: 't' } } } }, /needs admission\.tls\.existingSecret\.name and .*caBundle/],
    ['existingSecret values in generate mode', { admission: { tls: { existingSecret: { name: 't' } } } }, /admission\.tls\.mode is generate/],
    ['serviceMonitor without metrics', { serviceMonitor: { enabled: true }, config: { metrics: { enabled: false } } }, /serviceMonitor\.enabled needs config\.metrics\.enabled/],
    ['port 0', { config: { listen: { port: 0 } } }, /config\.listen\.port must be a fixed port/],
    ['internal port 0', { config: { listen: { internal: { port: 0 } } } }, /config\.listen\.internal\.port must be a fixed port/],
    ['internal port on the public port', { config: { listen: { internal: { port: 8470 } } } }, /internal\.port must differ/],
  ])('bad values fail: %s', (_name, values, message) => {
    expect(templateError(bin, values)).toMatch(message);
  });

  // The config's cross-field rules, both ways: values that break a rule fail `helm template`, and the
  // config the chart renders from them (its ConfigMap, rendered alone, without the chart's checks)
  // fails the service's loader on the same rule. Every rule is listed: a new one must be decided here.
  const RULE_CASES: Record<string, { values: object; chart: RegExp } | { na: string }> = {
    'hmac-one-source': { na: 'the chart sets token.keys.hmacSecretFile only' },
    'key-source': { values: { tokenKeys: { publicKeys: { secretName: '' } } }, chart: /no verification key/ },
    'token-issuer': { values: { config: { token: { issuer: null } } }, chart: /token\.issuer is required/ },
    'token-audience': { values: { config: { token: { audience: null } } }, chart: /token\.audience is required/ },
    'hmac-alg-needs-secret': { values: { config: { token: { algorithms: ['HS256', 'ES256'] } } }, chart: /tokenKeys\.hmacSecret\.secretName is empty/ },
    'hmac-secret-needs-alg': { values: { tokenKeys: { hmacSecret: { secretName: 's' } } }, chart: /allows no HS\* algorithm/ },
    'public-keys-need-alg': {
      values: { tokenKeys: { hmacSecret: { secretName: 's' } }, config: { token: { algorithms: ['HS256'] } } },
      chart: /allows only HS\* algorithms/,
    },
    'hmac-env-set': { na: 'the chart never reads the HMAC secret from an env var' },
    'jwks-https': { values: { config: { token: { keys: { jwksUrl: 'http://immerse.example.com/jwks.json' } } } }, chart: /jwksUrl must be https/ },
    'email-domains': { values: { config: { user: { stripEmailDomain: true } } }, chart: /stripEmailDomain needs config\.user\.emailDomains/ },
    'revoke-type-differs': { values: { config: { token: { type: 'jwt', revokeType: 'jwt' } } }, chart: /revokeType must differ/ },
    'session-pattern': { na: 'Helm cannot compile an ECMAScript regular expression; the pod refuses to start and names it' },
    'user-pattern': { na: 'Helm cannot compile an ECMAScript regular expression; the pod refuses to start and names it' },
    'lab-url-user': { values: { config: { redirect: { labUrlTemplate: '{hubPublicUrl}/lab' } } }, chart: /labUrlTemplate must contain \{username\}/ },
    'lab-url-server': {
      values: { config: { hub: { serverName: 'gpu' }, redirect: { labUrlTemplate: '{hubPublicUrl}/hub/user-redirect/lab?omnisci&reset&u={username}' } } },
      chart: /labUrlTemplate must contain \{servername\} or \/user\/\{username\}\//,
    },
    'named-servers-allowed': { values: { config: { hub: { namedServers: { enabled: true } } } }, chart: /namedServers\.enabled needs config\.hub\.namedServers\.allowed or pattern/ },
    'named-servers-pattern': { na: 'Helm cannot compile an ECMAScript regular expression; the pod refuses to start and names it' },
    'hub-url': { na: 'values.schema.json requires an http(s) URL; a query or fragment is refused when the pod starts' },
    'hub-api-url': { na: 'the chart sets hub.apiUrl (default http://hub:8081{baseUrl}hub/api)' },
    'hub-api-token': { na: 'the chart mounts the token file and sets hub.apiTokenFile' },
    'hub-ticket-keys': { na: 'the chart generates the ticket keys (or mounts ticketKeys.secretName) and sets hub.ticketKeyFile' },
    'service-url': { values: { config: { redirect: { servicePublicUrl: 'https://hub.example.com/elsewhere/' } } }, chart: /servicePublicUrl must end in the service's prefix \/services\/omnisci-handoff\// },
    'login-handoff-needs-hub': { values: { config: { hub: { enabled: false, loginMode: 'handoff' } } }, chart: /loginMode handoff needs config\.hub\.enabled/ },
    'create-users-needs-hub': { values: { config: { hub: { enabled: false, createUsers: true } } }, chart: /createUsers needs config\.hub\.enabled/ },
    'identity-needs-hub': { values: { config: { hub: { enabled: false, identityCheck: true } } }, chart: /identityCheck needs config\.hub\.enabled/ },
    'identity-client-id': { na: "the chart's base path /services/<name>/ gives the hub's client id service-<name>" },
    'identity-callback': { na: "the chart's base path gives the default redirect URI {base}oauth_callback" },
    'heavydb-needs-hub': {
      values: { config: { hub: { enabled: false }, heavydb: { enabled: true, url: 'http://heavydb:6278/' }, omnisci: { host: 'heavydb' } } },
      chart: /heavydb\.enabled needs config\.hub\.enabled/,
    },
    'heavydb-url': { values: { config: { heavydb: { enabled: true }, omnisci: { host: 'heavydb' } } }, chart: /heavydb\.url is required/ },
    'heavydb-connection': { values: { config: { heavydb: { enabled: true, url: 'http://heavydb:6278/' }, omnisci: { host: '' } } }, chart: /omnisci\.host is required/ },
    'session-file-name': { values: { config: { notebook: { sessionFileName: 'state' } } }, chart: /sessionFileName must not be one of/ },
    'relink-url': { values: { config: { notebook: { relinkUrl: 'https:///immerse.example.com/' } } }, chart: /relinkUrl must be an absolute http\(s\) URL/ },
    'env-names-distinct': { values: { config: { notebook: { env: { host: 'OMNISCI_PORT' } } } }, chart: /env var names must differ/ },
    'mount-paths-distinct': { values: { config: { notebook: { sessionDir: '/etc/omnisci-handoff/jupyter/' } } }, chart: /jupyterConfigDir must differ/ },
    'webhook-needs-kubernetes': { na: 'the chart sets store.backend kubernetes' },
    'webhook-tls': { na: 'the chart mounts the webhook certificate and sets certFile and keyFile' },
  };

  test('every config rule has a chart counterpart or a reason', () => {
    expect(Object.keys(RULE_CASES).sort()).toEqual(RULES.map((r) => r.id).sort());
  });

  test.each(Object.entries(RULE_CASES).filter((e): e is [string, { values: object; chart: RegExp }] => 'values' in e[1]))(
    'rule %s: the chart refuses, and the service refuses the config the chart would render',
    (id, { values, chart }) => {
      expect(templateError(bin, values)).toMatch(chart);
      const r = helm(bin, ['template', 'omnisci-handoff', uncheckedChart(), '--namespace', NS, '-f', valuesFile(values), '--show-only', 'templates/configmap.yaml']);
      expect(r.stderr).toBe('');
      const rendered = parseYaml((parseYaml(r.stdout) as K8sObject).data['config.yaml']);
      const rule = RULES.find((x) => x.id === id)!;
      let problems: { path: string }[] = [];
      try {
        resolveConfig(rendered, {});
      } catch (e) {
        problems = (e as { problems?: { path: string }[] }).problems ?? [];
      }
      expect(problems.map((p) => p.path)).toContain(rule.path);
    },
  );
});

test('manifests/ is the chart rendered for kubectl apply -k, and kustomize builds it', () => {
  const committed = readFileSync(join(ROOT, 'manifests/omnisci-handoff.yaml'), 'utf8');
  expect(committed).toBe(renderManifests(HELMS.v4, ROOT));
  const built = execFileSync(join(ROOT, '.cache/helm/v4/kubectl'), ['kustomize', join(ROOT, 'manifests')], { encoding: 'utf8' });
  const objs = parseAllDocuments(built).map((d) => d.toJS() as K8sObject);
  expect(kinds(objs)).toContain('Certificate');
  expect(objs.filter((o) => !CLUSTER_SCOPED.includes(o.kind)).every((o) => o.metadata.namespace === NS)).toBe(true);
});
