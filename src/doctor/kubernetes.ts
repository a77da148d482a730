/**
 * Kubernetes (store.backend kubernetes): what the store and the webhook need, asked of the live
 * API server.
 *
 * - As the service's own identity (store.kubernetes.kubeconfig, else the pod's service account):
 *   who it is (SelfSubjectReview), and each permission of docs/kubernetes.md "RBAC" by a
 *   SelfSubjectAccessReview — secrets get/create/update/list, delete unless gcMaxAgeDays is 0, pods
 *   list/patch with fastRefresh.
 * - With whatever may read them — an admin's kubeconfig (`--kubeconfig`), else the service's
 *   identity — the MutatingWebhookConfiguration that sends pods to this namespace's `/mutate`, its
 *   caBundle against the issuer of webhook.certFile, the Service it names, its selectors and rules,
 *   and the Jupyter ConfigMap (webhook.jupyterConfigMap) against the service's notebook settings.
 *   The service account may not read these (the chart's Role grants none of them): that is reported
 *   as "cannot check (no permission …)", not as a failure.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  AdmissionregistrationV1Api,
  ApiException,
  AuthenticationV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  createConfiguration,
  DiscoveryV1Api,
  KubeConfig,
  ServerConfiguration,
  type Configuration,
  type Middleware,
  type V1MutatingWebhook,
  type V1Service,
} from '@kubernetes/client-node';
import type { Config } from '../config/types.js';
import { describeCause } from '../errors.js';
import { configuredNamespace, POD_COMPONENT, POD_COMPONENT_LABEL } from '../k8s/layout.js';
import { jupyterConfigMapData } from '../notebook/configmap.js';
import { fail, pass, unknown, type Check } from './check.js';

const RBAC_DOC = 'docs/kubernetes.md "RBAC"';
const WEBHOOK_PATH = '/mutate';
const NAMESPACE_LABEL = 'kubernetes.io/metadata.name';

interface Cluster {
  server: string;
  api<T>(ctor: new (c: Configuration) => T): T;
}

/** API clients whose every request has a timeout (as src/k8s/client.ts builds its CoreV1Api). */
function cluster(kc: KubeConfig, timeoutMs: number): Cluster {
  const current = kc.getCurrentCluster();
  if (!current) throw new Error('the kubeconfig has no current cluster');
  const timeout: Middleware = {
    pre: async (ctx) => {
      ctx.setSignal(AbortSignal.timeout(timeoutMs));
      return ctx;
    },
    post: async (res) => res,
  };
  const configuration = createConfiguration({
    baseServer: new ServerConfiguration(current.server, {}),
    authMethods: { default: kc },
    promiseMiddleware: [timeout],
  });
  return { server: current.server, api: (ctor) => new ctor(configuration) };
}

/** The HTTP status of a failed call, undefined for a network error or timeout. */
const statusOf = (e: unknown): number | undefined => (e instanceof ApiException ? e.code : undefined);
const why = (e: unknown) => {
  const code = statusOf(e);
  return code ? `HTTP ${code}` : describeCause(e);
};

type Outcome<T> = { value: T } | { status: number | undefined; reason: string };
async function attempt<T>(p: Promise<T>): Promise<Outcome<T>> {
  try {
    return { value: await p };
  } catch (e) {
    return { status: statusOf(e), reason: why(e) };
  }
}

export interface KubernetesCheckOptions {
  env: NodeJS.ProcessEnv;
  /** An admin's kubeconfig, for the reads the service account is not allowed. */
  kubeconfig?: string;
}

interface Need {
  verb: string;
  resource: string;
  fix: string;
}

function needs(k8s: Config['store']['kubernetes'], ns: string): Need[] {
  const role = `add it to the service account's Role in ${ns} (${RBAC_DOC})`;
  return [
    { verb: 'get', resource: 'secrets', fix: role },
    { verb: 'create', resource: 'secrets', fix: role },
    { verb: 'update', resource: 'secrets', fix: role },
    { verb: 'list', resource: 'secrets', fix: role },
    ...(k8s.gcMaxAgeDays > 0 ? [{ verb: 'delete', resource: 'secrets', fix: `${role}, or turn the sweep off (store.kubernetes.gcMaxAgeDays: 0)` }] : []),
    ...(k8s.fastRefresh
      ? [
          { verb: 'list', resource: 'pods', fix: `${role}, or turn fast refresh off (store.kubernetes.fastRefresh: false)` },
          { verb: 'patch', resource: 'pods', fix: `${role}, or turn fast refresh off (store.kubernetes.fastRefresh: false)` },
        ]
      : []),
  ];
}

const rbacName = (n: Need) => `rbac: ${n.verb} ${n.resource}`;

/** The service's identity and namespace as the store would resolve them; a reason when there is none here. */
function serviceIdentity(config: Config, env: NodeJS.ProcessEnv): { kc: KubeConfig; namespace: string | undefined } | { problem: string; fix: string } {
  const k8s = config.store.kubernetes;
  const kc = new KubeConfig();
  try {
    if (k8s.kubeconfig) kc.loadFromFile(k8s.kubeconfig);
    else if (env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
    else
      return {
        problem: 'not in a pod and no store.kubernetes.kubeconfig: the service account is not available here',
        fix: 'run doctor in the service\'s pod (kubectl exec deploy/<release> -- node dist/src/cli.js doctor --config …)',
      };
  } catch (e) {
    return { problem: `cannot load ${k8s.kubeconfig ?? 'the in-cluster credentials'} (${describeCause(e)})`, fix: 'check store.kubernetes.kubeconfig' };
  }
  const namespace = configuredNamespace(k8s, env) ?? (k8s.kubeconfig ? kc.getContextObject(kc.getCurrentContext())?.namespace : undefined);
  return { kc, namespace };
}

export async function kubernetesChecks(config: Config, o: KubernetesCheckOptions): Promise<Check[]> {
  const k8s = config.store.kubernetes;
  const out: Check[] = [];
  const identity = serviceIdentity(config, o.env);
  const namespace = 'kc' in identity ? identity.namespace : configuredNamespace(k8s, o.env);

  // The service's own identity: who it is, and what it may do.
  let service: Cluster | undefined;
  let blocked = { detail: '', fix: '' };
  if (!('kc' in identity)) {
    out.push(unknown('kubernetes: api', identity.problem, identity.fix));
    blocked = { detail: 'no service identity here', fix: identity.fix };
  } else if (!namespace) {
    out.push(fail('kubernetes: api', 'no namespace: store.kubernetes.namespace is not set and none could be detected', 'set store.kubernetes.namespace to the hub namespace'));
    blocked = { detail: 'no namespace', fix: 'set store.kubernetes.namespace' };
  } else {
    const c = cluster(identity.kc, k8s.requestTimeoutMs);
    const review = await attempt(
      c.api(AuthenticationV1Api).createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } }),
    );
    if ('value' in review || (review.status !== undefined && review.status !== 401)) {
      // SelfSubjectReview is GA since Kubernetes 1.28; an older server just does not say who we are.
      const user = 'value' in review ? review.value.status?.userInfo?.username : undefined;
      out.push(pass('kubernetes: api', `${c.server}${user ? ` as ${user}` : ''}, namespace ${namespace}`));
      service = c;
    } else if (review.status === 401) {
      const fix = 'renew the service account token, or fix store.kubernetes.kubeconfig';
      out.push(fail('kubernetes: api', `${c.server}: the API server rejected the credentials (HTTP 401)`, fix));
      blocked = { detail: 'the API server rejected the credentials', fix };
    } else {
      const fix = 'the service must reach the API server (kubeconfig server address, egress NetworkPolicy)';
      out.push(fail('kubernetes: api', `${c.server}: no answer (${review.reason})`, fix));
      blocked = { detail: 'the API server did not answer', fix };
    }
  }

  const list = namespace ? needs(k8s, namespace) : needs(k8s, 'the hub namespace');
  if (!service || !namespace) {
    for (const n of list) out.push(unknown(rbacName(n), blocked.detail, blocked.fix));
  } else {
    const authz = service.api(AuthorizationV1Api);
    const reviews = await Promise.all(
      list.map((n) =>
        attempt(
          authz.createSelfSubjectAccessReview({
            body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: { namespace, verb: n.verb, resource: n.resource, group: '' } } },
          }),
        ),
      ),
    );
    list.forEach((n, i) => {
      const r = reviews[i]!;
      if (!('value' in r)) out.push(unknown(rbacName(n), `the access review failed: ${r.reason}`, 'check that the API server serves authorization.k8s.io/v1'));
      else if (r.value.status?.allowed) out.push(pass(rbacName(n), `allowed in ${namespace}`));
      else out.push(fail(rbacName(n), `not allowed in ${namespace}${r.value.status?.reason ? ` (${r.value.status.reason})` : ''}`, n.fix));
    });
  }

  // Reads the service account is usually not allowed: an admin's kubeconfig when given.
  let reader: Cluster | undefined;
  let readerProblem = { detail: 'no credentials for the cluster here', fix: 'run with --kubeconfig FILE of a cluster admin' };
  if (o.kubeconfig) {
    try {
      const kc = new KubeConfig();
      kc.loadFromFile(o.kubeconfig);
      reader = cluster(kc, k8s.requestTimeoutMs);
    } catch (e) {
      readerProblem = { detail: `cannot load --kubeconfig ${o.kubeconfig} (${describeCause(e)})`, fix: 'pass a readable kubeconfig' };
    }
  } else if (service) {
    reader = service;
  }
  const noPermission = (what: string) =>
    o.kubeconfig
      ? { detail: `no permission to ${what} with --kubeconfig ${o.kubeconfig}`, fix: 'use the kubeconfig of a cluster admin' }
      : { detail: `no permission to ${what}`, fix: 'run with --kubeconfig FILE of a cluster admin' };
  const cannot = (check: string, r: { status: number | undefined; reason: string }, what: string): Check =>
    r.status === 401 || r.status === 403
      ? unknown(check, noPermission(what).detail, noPermission(what).fix)
      : unknown(check, `${what}: ${r.reason}`, 'the API server must answer');

  if (config.webhook.enabled) out.push(...(await webhookChecks(config, namespace, reader, readerProblem, cannot)));
  out.push(await configMapCheck(config, namespace, reader, readerProblem, cannot));
  return out;
}

const WEBHOOK_CHECKS = ['webhook: registration', 'webhook: tls', 'webhook: service', 'webhook: selectors'] as const;

type Cannot = (check: string, r: { status: number | undefined; reason: string }, what: string) => Check;

async function webhookChecks(
  config: Config,
  ns: string | undefined,
  reader: Cluster | undefined,
  problem: { detail: string; fix: string },
  cannot: Cannot,
): Promise<Check[]> {
  if (!reader || !ns) return WEBHOOK_CHECKS.map((c) => unknown(c, ns ? problem.detail : 'no namespace', problem.fix));
  const listed = await attempt(reader.api(AdmissionregistrationV1Api).listMutatingWebhookConfiguration());
  if (!('value' in listed)) {
    const first = cannot('webhook: registration', listed, 'list mutatingwebhookconfigurations');
    return [first, ...WEBHOOK_CHECKS.slice(1).map((c) => unknown(c, 'the webhook registration could not be read', first.fix))];
  }
  // Ours: a webhook calling a Service in the hub namespace at the service's admission path.
  const found = listed.value.items.flatMap((m) =>
    (m.webhooks ?? [])
      .filter((w) => w.clientConfig.service?.namespace === ns && (w.clientConfig.service.path ?? '/') === WEBHOOK_PATH)
      .map((w) => ({ configuration: m.metadata?.name ?? '', webhook: w })),
  );
  const first = found[0];
  if (!first) {
    return [
      fail(
        'webhook: registration',
        `no MutatingWebhookConfiguration calls a Service in ${ns} at ${WEBHOOK_PATH}`,
        'register it: the Helm chart does with config.webhook.enabled, or apply manifests/ (docs/kubernetes.md "The admission webhook")',
      ),
      ...WEBHOOK_CHECKS.slice(1).map((c) => unknown(c, 'no webhook registration', 'register the webhook first')),
    ];
  }
  const w = first.webhook;
  const svcRef = w.clientConfig.service!;
  const port = svcRef.port ?? 443;
  const out: Check[] = [
    pass(
      'webhook: registration',
      `${first.configuration}: ${w.name} → service ${ns}/${svcRef.name}:${port}${WEBHOOK_PATH}, failurePolicy ${w.failurePolicy ?? 'Fail'}${found.length > 1 ? ` (and ${found.length - 1} more)` : ''}`,
    ),
  ];
  out.push(await tlsCheck(config, w, `${svcRef.name}.${ns}.svc`));
  out.push(await serviceCheck(config, reader, ns, svcRef.name, port, cannot));
  out.push(selectorsCheck(w, ns));
  return out;
}

const commonName = (dn: string) => /(?:^|\n)CN=([^\n]*)/.exec(dn)?.[1] ?? dn.replace(/\n/g, ', ');

function pemCerts(text: string): X509Certificate[] {
  return (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p));
}

/** The caBundle must hold the CA that issued the webhook's certificate (webhook.certFile), which must name the Service. */
async function tlsCheck(config: Config, w: V1MutatingWebhook, host: string): Promise<Check> {
  const check = 'webhook: tls';
  const bundle = w.clientConfig.caBundle;
  if (!bundle) return fail(check, `${w.name} has no caBundle`, 'set it to the CA of the webhook certificate (the chart does; with cert-manager, its CA injector)');
  let cas: X509Certificate[];
  try {
    cas = pemCerts(Buffer.from(bundle, 'base64').toString('utf8'));
  } catch {
    cas = [];
  }
  if (!cas.length) return fail(check, `the caBundle of ${w.name} holds no PEM certificate`, 'set it to the base64 of the CA certificate (PEM)');
  const certFile = config.webhook.certFile ?? '';
  let leaf: X509Certificate | undefined;
  try {
    leaf = pemCerts(await readFile(certFile, 'utf8'))[0];
  } catch (e) {
    return unknown(check, `cannot read webhook.certFile ${certFile} here: ${describeCause(e)}`, "run doctor in the service's pod, where the certificate is mounted");
  }
  if (!leaf) return fail(check, `webhook.certFile ${certFile} holds no PEM certificate`, 'point webhook.certFile at the webhook certificate');
  const issuer = cas.find((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey));
  const fix = `put the CA that issued ${certFile} into the caBundle (helm upgrade re-renders both; with cert-manager check the cert-manager.io/inject-ca-from annotation)`;
  if (!issuer)
    return fail(check, `the caBundle (${cas.map((c) => commonName(c.subject)).join(', ')}) did not issue the webhook certificate (issuer ${commonName(leaf.issuer)})`, fix);
  const now = Date.now();
  if (Date.parse(leaf.validTo) < now || Date.parse(leaf.validFrom) > now)
    return fail(check, `the webhook certificate is not valid now (valid ${leaf.validFrom} to ${leaf.validTo})`, 'renew it (helm upgrade, or cert-manager)');
  if (Date.parse(issuer.validTo) < now) return fail(check, `the CA ${commonName(issuer.subject)} expired ${issuer.validTo}`, 'renew the CA and the certificate');
  if (!leaf.checkHost(host)) return fail(check, `the webhook certificate does not name ${host}`, `issue it for ${host}`);
  return pass(check, `certificate for ${host} issued by the caBundle's ${commonName(issuer.subject)}, valid until ${new Date(leaf.validTo).toISOString().slice(0, 10)}`);
}

async function serviceCheck(config: Config, reader: Cluster, ns: string, name: string, port: number, cannot: Cannot): Promise<Check> {
  const check = 'webhook: service';
  const got = await attempt(reader.api(CoreV1Api).readNamespacedService({ name, namespace: ns }));
  if (!('value' in got)) {
    if (got.status === 404) return fail(check, `Service ${ns}/${name} does not exist`, 'install it (the Helm chart and manifests/ do), or fix the webhook\'s clientConfig.service');
    return cannot(check, got, `get services in ${ns}`);
  }
  const svc: V1Service = got.value;
  const p = svc.spec?.ports?.find((x) => x.port === port);
  if (!p) return fail(check, `Service ${ns}/${name} has no port ${port}`, `add port ${port} (targetPort ${config.webhook.port}) to the Service`);
  const target = p.targetPort ?? port;
  if (typeof target === 'number' && target !== config.webhook.port)
    return fail(check, `Service ${ns}/${name} port ${port} → ${target}, but the webhook listens on ${config.webhook.port}`, `set targetPort to webhook.port (${config.webhook.port})`);
  const selector = Object.entries(svc.spec?.selector ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
  if (!selector) return fail(check, `Service ${ns}/${name} has no selector`, 'select the service\'s pods');
  // Ready endpoints, when this identity may list EndpointSlices.
  let endpoints = '';
  const slices = await attempt(reader.api(DiscoveryV1Api).listNamespacedEndpointSlice({ namespace: ns, labelSelector: `kubernetes.io/service-name=${name}` }));
  if ('value' in slices) {
    const ready = slices.value.items.flatMap((s) => s.endpoints ?? []).filter((e) => e.conditions?.ready !== false).length;
    if (!ready) return fail(check, `Service ${ns}/${name} (selector ${selector}) has no ready endpoint`, `start the service's pods (kubectl -n ${ns} get pods -l ${selector})`);
    endpoints = `, ${ready} ready endpoint${ready === 1 ? '' : 's'}`;
  }
  return pass(check, `${ns}/${name}:${port} → ${String(target)}, selector ${selector}${endpoints}`);
}

/** KubeSpawner's pods in the hub namespace, on create, must reach the webhook. */
function selectorsCheck(w: V1MutatingWebhook, ns: string): Check {
  const check = 'webhook: selectors';
  const object = w.objectSelector?.matchLabels ?? {};
  const namespaces = w.namespaceSelector?.matchLabels ?? {};
  const problems: string[] = [];
  const component = object[POD_COMPONENT_LABEL];
  if (component !== undefined && component !== POD_COMPONENT) problems.push(`objectSelector selects ${POD_COMPONENT_LABEL}=${component}, not ${POD_COMPONENT}`);
  const nsName = namespaces[NAMESPACE_LABEL];
  if (nsName !== undefined && nsName !== ns) problems.push(`namespaceSelector selects ${NAMESPACE_LABEL}=${nsName}, not ${ns}`);
  const any = (xs: string[] | undefined, v: string) => (xs ?? []).some((x) => x === v || x === '*');
  const creates = (w.rules ?? []).some((r) => any(r.operations, 'CREATE') && any(r.resources, 'pods') && any(r.apiGroups, '') && any(r.apiVersions, 'v1'));
  if (!creates) problems.push('its rules do not send pod CREATE (v1)');
  if (problems.length)
    return fail(check, problems.join('; '), `select ${POD_COMPONENT_LABEL}=${POD_COMPONENT} pods in ${ns} on CREATE (docs/kubernetes.md "The admission webhook")`);
  const labels = (m: Record<string, string>) => Object.entries(m).map(([k, v]) => `${k}=${v}`).join(',');
  return pass(
    check,
    `objectSelector ${labels(object) || '(every pod)'}, namespaceSelector ${labels(namespaces) || '(every namespace)'}, rules: pod CREATE`,
  );
}

/** The ConfigMap single-user pods mount (webhook.jupyterConfigMap) must exist and match the service's notebook settings. */
async function configMapCheck(config: Config, ns: string | undefined, reader: Cluster | undefined, problem: { detail: string; fix: string }, cannot: Cannot): Promise<Check> {
  const check = 'notebook: jupyter configmap';
  const name = config.webhook.jupyterConfigMap;
  if (!reader || !ns) return unknown(check, ns ? problem.detail : 'no namespace', problem.fix);
  const got = await attempt(reader.api(CoreV1Api).readNamespacedConfigMap({ name, namespace: ns }));
  if (!('value' in got)) {
    if (got.status === 404)
      return fail(check, `ConfigMap ${ns}/${name} does not exist: servers start without jupyterlab-omnisci's config`, 'install it (the Helm chart and manifests/ ship it; webhook.jupyterConfigMap names it)');
    return cannot(check, got, `get configmaps in ${ns}`);
  }
  const want = jupyterConfigMapData(config.notebook);
  const have = got.value.data ?? {};
  const missing = Object.keys(want).filter((k) => have[k] === undefined);
  const changed = Object.keys(want).filter((k) => have[k] !== undefined && have[k] !== want[k]);
  if (missing.length || changed.length)
    return fail(
      check,
      `ConfigMap ${ns}/${name} does not match the service's notebook settings (${[...missing.map((k) => `${k} missing`), ...changed.map((k) => `${k} differs`)].join(', ')})`,
      'render it from the same notebook settings as the service (helm upgrade with the same config.notebook)',
    );
  return pass(check, `${ns}/${name}: ${Object.keys(want).length} files, as the service's notebook settings make them`);
}
