/**
 * The Helm chart's values, derived from the one config schema (src/config/schema.ts): `config:` holds
 * the service config verbatim, next to chart-level keys. From this module come the chart's
 * values.schema.json and its documented values.yaml (scripts/generate.mjs writes them,
 * test/unit/chart-values.test.ts fails when the committed files drift).
 */
import { stringify } from 'yaml';
import { bool, configSchema, DNS_SUBDOMAIN, int, obj, str, strings } from '../config/schema.js';
import { ACTIVATE_SECONDS, KEEP_OLD_SECONDS } from '../hub/ticket-keys.js';

type Schema = Record<string, unknown>;

/** Config keys the chart sets itself (file paths of mounted Secrets, namespace, listen address, base path…). */
export const CHART_MANAGED_CONFIG = [
  'listen.host',
  'listen.internal.host',
  'listen.basePath',
  'store.backend',
  'store.local',
  'store.kubernetes.namespace',
  'store.kubernetes.kubeconfig',
  'token.keys.publicKeyFiles',
  'token.keys.hmacSecretFile',
  'token.keys.hmacSecretEnv',
  'webhook.host',
  'webhook.certFile',
  'webhook.keyFile',
  'webhook.jupyterConfigMap',
  'hub.apiTokenFile',
  'hub.ticketKeyFile',
] as const;

/** Config defaults that differ in the chart from the service's own. */
const CHART_CONFIG_DEFAULTS: Record<string, unknown> = {
  'listen.trustProxy': true,
  'token.issuer': 'omnisci-immerse',
  'token.audience': 'omnisci-handoff',
  'webhook.enabled': true,
  'hub.enabled': true,
};

const freeMap = (description: string) => ({
  type: 'object',
  description,
  additionalProperties: { type: 'string' },
  default: {},
});
const freeObject = (description: string, dflt: unknown = {}) => ({ type: 'object', description, default: dflt });
const list = (description: string) => ({ type: 'array', description, items: { type: 'object' }, default: [] });
const name = (description: string, dflt = '') => str(description, { default: dflt, pattern: `^$|${DNS_SUBDOMAIN}` });
const secretRef = (description: string, keyDefault: string) =>
  obj(description, {
    secretName: name('Name of an existing Secret in the release namespace. Empty: not used.'),
    key: str('Key of that Secret.', { default: keyDefault, pattern: '^[-._a-zA-Z0-9]+$' }),
  });

const chartSchema: Schema = {
  nameOverride: name('Replaces the chart name in object names.'),
  fullnameOverride: name('Replaces the full object name prefix (default: release name, plus "-omnisci-handoff" unless it contains it).'),
  image: obj('Container image built from the Dockerfile of this repository.', {
    repository: str('Image repository.', { default: 'omnisci-handoff', minLength: 1 }),
    tag: str('Image tag. Empty: the chart appVersion.', { default: '' }),
    digest: str('Image digest (sha256:...); when set it wins over the tag.', { default: '', pattern: '^$|^sha256:[a-f0-9]{64}$' }),
    pullPolicy: { enum: ['Always', 'IfNotPresent', 'Never'], default: 'IfNotPresent', description: 'Image pull policy.' },
    pullSecrets: strings('Names of image pull Secrets.', []),
  }),
  replicaCount: int('Number of replicas. Every hub flow works on any replica (docs/jupyterhub.md) and the store uses optimistic concurrency.', 1, 20, 2),
  resources: freeObject('Container resources.', {
    requests: { cpu: '50m', memory: '96Mi' },
    limits: { memory: '256Mi' },
  }),
  podAnnotations: freeMap('Extra pod annotations.'),
  podLabels: freeMap('Extra pod labels.'),
  nodeSelector: freeMap('Pod node selector.'),
  tolerations: list('Pod tolerations.'),
  affinity: freeObject('Pod affinity. Empty: a preferred anti-affinity spreads replicas over nodes.'),
  topologySpreadConstraints: list('Pod topology spread constraints. Empty: replicas spread over zones when possible.'),
  priorityClassName: name('Pod priority class.'),
  podDisruptionBudget: obj('PodDisruptionBudget (created when replicaCount > 1).', {
    enabled: bool('Create the PodDisruptionBudget.', true),
    maxUnavailable: int('Replicas that may be down at once during voluntary disruptions.', 1, 20, 1),
  }),
  serviceAccount: obj('ServiceAccount of the pods.', {
    create: bool('Create the ServiceAccount. Otherwise serviceAccount.name must name an existing one.', true),
    name: name('Its name. Empty: the chart\'s full name (only when create is true).'),
    annotations: freeMap('Its annotations.'),
  }),
  rbac: obj('Role and RoleBinding in the release namespace (never cluster-wide): Secrets get, list, create, update, delete; pods list, patch only with config.store.kubernetes.fastRefresh.', {
    create: bool('Create them; otherwise bind an equivalent Role yourself.', true),
    admissionPolicy: bool(
      "A ValidatingAdmissionPolicy (Kubernetes >= 1.30) fencing the service account's writes: only Opaque Secrets with the store's prefix, label and keys and no annotations but its own; on pods, nothing but the refresh annotation (docs/kubernetes.md).",
      true,
    ),
    sessionSecretPolicy: bool(
      "A ValidatingAdmissionPolicy (Kubernetes >= 1.30) on the hub namespace's pods, after every mutating webhook: a pod may reference a user's session Secret (volume, secretKeyRef, envFrom) only when it is that user's KubeSpawner pod by the name its creator asked for (jupyterhub.podNamePrefix), which no webhook can change (docs/kubernetes.md).",
      true,
    ),
  }),
  service: obj('Service in front of the pods.', {
    port: int('Port of the HTTP service (the hub proxy routes /services/<name>/ here).', 1, 65535, 8470),
    webhookPort: int('Port the API server calls the webhook on.', 1, 65535, 443),
    annotations: freeMap('Service annotations.'),
  }),
  jupyterhub: obj('The zero-to-jupyterhub release this service joins (same namespace).', {
    release: name('Helm release name of z2jh. When set, selectors also match its `release` label.'),
    serviceName: str('Name of this service in hub.services (the URL prefix is {baseUrl}services/<name>/). config.hub.apiUrl defaults to http://hub:8081{baseUrl}hub/api.', {
      default: 'omnisci-handoff',
      pattern: '^[a-zA-Z0-9][-a-zA-Z0-9_.]*$',
    }),
    baseUrl: str('z2jh hub.baseUrl.', { default: '/', pattern: '^/' }),
    podNamePrefix: str(
      "What z2jh's singleuser.podNameTemplate (KubeSpawner's pod_name_template, default jupyter-{user_server}) puts before {user_server}: rbac.sessionSecretPolicy reads the user from the pod name after it.",
      { default: 'jupyter-', pattern: '^[a-z0-9][-a-z0-9]*$', maxLength: 40 },
    ),
    apiToken: obj('Where the hub API token of the service comes from.', {
      secretName: name(
        "Existing Secret holding the token. Empty: z2jh's hub Secret, key hub.services.<serviceName>.apiToken (z2jh generates it).",
      ),
      key: str('Key in that Secret (only with secretName).', { default: 'token', pattern: '^[-._a-zA-Z0-9]+$' }),
      hubSecretName: name("Name of z2jh's hub Secret.", 'hub'),
    }),
  }),
  tokenKeys: obj('Verification keys of the handoff tokens, read from existing Secrets (the chart never creates key material). config.token.keys.jwksUrl may be used as well.', {
    publicKeys: obj('Secret with the issuer public keys (PEM SPKI, JWK or JWKS files).', {
      secretName: name('Its name. Empty: no static public keys.', 'omnisci-handoff-keys'),
      items: strings('Keys of that Secret holding one key file each.', ['issuer.pem']),
    }),
    hmacSecret: secretRef('Secret with the HMAC shared secret (>= 32 bytes) for HS* algorithms.', 'hmac-secret'),
  }),
  ticketKeys: obj('Keys sealing the tickets of the hub flows (config.hub.enabled), the same for every replica (docs/jupyterhub.md#replicas-nothing-lives-in-one-replica).', {
    secretName: name(
      'Existing Secret holding the key file (`omnisci-handoff keygen --ticket-keys FILE` writes and rotates one; restart the Deployment after a rotation). Empty: the chart generates <fullname>-ticket-keys at install (256 random bits) and keeps it across upgrades.',
    ),
    key: str('Key of that Secret (only with secretName).', { default: 'ticket-keys', pattern: '^[-._a-zA-Z0-9]+$' }),
    rotation: str(
      "Generated keys: change this value (e.g. to today's date) to rotate them. The pods restart; the new key seals activateSeconds later, when every replica has it, and the previous one still opens tickets for acceptOldSeconds after that.",
      { default: '' },
    ),
    activateSeconds: int('Generated keys: how long after a rotation the new key starts sealing; every pod must have restarted with it by then.', 0, 3600, ACTIVATE_SECONDS),
    acceptOldSeconds: int('Generated keys: how long the previous key still opens tickets once the new one seals.', 0, 1209600, KEEP_OLD_SECONDS),
  }),
  admission: obj('MutatingWebhookConfiguration (when config.webhook.enabled).', {
    failurePolicy: {
      enum: ['Ignore', 'Fail'],
      default: 'Ignore',
      description: 'Ignore: pods still start (without the session) when the webhook is down; Fail: they wait for it.',
    },
    timeoutSeconds: int('How long the API server waits for the webhook.', 1, 5, 3),
    tls: obj('Serving certificate of the webhook and the caBundle the API server trusts.', {
      mode: {
        enum: ['generate', 'certManager', 'existingSecret'],
        default: 'generate',
        description:
          'generate: the chart makes a CA and certificate, kept across upgrades; certManager: a cert-manager Certificate (CA injected by cainjector); existingSecret: your kubernetes.io/tls Secret plus caBundle.',
      },
      validityDays: int('Validity of generated certificates.', 30, 36500, 3650),
      existingSecret: obj('Mode existingSecret.', {
        name: name('Secret of type kubernetes.io/tls (tls.crt, tls.key).'),
        caBundle: str('PEM of the CA that signed tls.crt.', { default: '' }),
      }),
      certManager: obj('Mode certManager.', {
        issuerRef: obj('Issuer of the Certificate. Empty name: the chart creates a self-signed Issuer.', {
          name: name('Issuer name.'),
          kind: { enum: ['Issuer', 'ClusterIssuer'], default: 'Issuer', description: 'Issuer kind.' },
          group: str('Issuer API group.', { default: 'cert-manager.io' }),
        }),
      }),
    }),
  }),
  networkPolicy: obj('NetworkPolicy of the pods: ingress from the z2jh proxy and hub, from the API server to the webhook port and, with serviceMonitor.enabled, to the internal listener; egress to DNS, the hub, the API server and the JWKS URL\'s port.', {
    enabled: bool('Create the NetworkPolicy.', true),
    apiServer: obj('The Kubernetes API server (calls the webhook; the store calls it).', {
      cidrs: strings('Its addresses (CIDRs). Empty: any address, on the ports below only.', []),
      ports: {
        type: 'array',
        items: { type: 'integer', minimum: 1, maximum: 65535 },
        default: [443, 6443],
        description: 'Its ports (egress).',
      },
    }),
    jwksCidrs: strings('Egress to config.token.keys.jwksUrl (its port only). Empty: any address.', []),
    metricsFrom: list('With serviceMonitor.enabled: NetworkPolicy peers allowed to scrape the internal listener (e.g. the Prometheus namespace). Empty: any.'),
    extraIngress: list('Extra ingress rules.'),
    extraEgress: list('Extra egress rules.'),
  }),
  serviceMonitor: obj('Prometheus operator ServiceMonitor for /metrics of the internal listener (the Service\'s `metrics` port).', {
    enabled: bool('Create the ServiceMonitor (needs the Prometheus operator\'s CRDs).', false),
    interval: str('Scrape interval.', { default: '30s', pattern: '^[0-9]+(ms|s|m|h)$' }),
    labels: freeMap('Extra labels (to match your Prometheus selector).'),
  }),
};

function getPath(o: Schema, dotted: string[]): Schema | undefined {
  let cur: Schema | undefined = o;
  for (const p of dotted) cur = (cur?.properties as Record<string, Schema> | undefined)?.[p];
  return cur;
}

/** The config subtree of the values schema: configSchema without chart-managed keys, with chart defaults. */
function configValuesSchema(): Schema {
  const { $schema: _s, $id: _i, title: _t, ...schema } = structuredClone(configSchema) as unknown as Schema;
  for (const managed of CHART_MANAGED_CONFIG) {
    const path = managed.split('.');
    const key = path.pop() as string;
    const parent = getPath(schema, path);
    if (!parent?.properties) throw new Error(`chart-managed config key ${managed} is not in the config schema`);
    delete (parent.properties as Schema)[key];
    if (Array.isArray(parent.required)) parent.required = parent.required.filter((r) => r !== key);
  }
  for (const [dotted, value] of Object.entries(CHART_CONFIG_DEFAULTS)) {
    const prop = getPath(schema, dotted.split('.'));
    if (!prop) throw new Error(`chart config default ${dotted} is not in the config schema`);
    prop.default = value;
  }
  schema.description = `The service configuration (docs/admin-guide.md). Set by the chart, so not allowed here: ${CHART_MANAGED_CONFIG.join(', ')}.`;
  return schema;
}

/** The chart's values.schema.json. */
export function valuesSchema(): Schema {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'omnisci-handoff Helm chart values',
    type: 'object',
    additionalProperties: false,
    properties: {
      ...chartSchema,
      config: configValuesSchema(),
      global: { type: 'object', description: 'Helm global values (unused).' },
    },
    required: ['config'],
  };
}

function yamlValue(v: unknown, indent: string): string {
  if (v !== null && typeof v === 'object' && Object.keys(v).length > 0) {
    return `\n${stringify(v, { indent: 2 }).trimEnd().split('\n').map((l) => `${indent}  ${l}`).join('\n')}`;
  }
  return ` ${JSON.stringify(v)}`;
}

function emit(props: Record<string, Schema>, indent: string, out: string[]): void {
  for (const [key, node] of Object.entries(props)) {
    if (node.description) out.push(`${indent}# ${node.description}`);
    if (node.type === 'object' && node.properties) {
      out.push(`${indent}${key}:`);
      emit(node.properties as Record<string, Schema>, `${indent}  `, out);
    } else if (node.default === undefined) {
      out.push(`${indent}# ${key}: (unset)`);
    } else {
      out.push(`${indent}${key}:${yamlValue(node.default, indent)}`);
    }
  }
}

/** The chart's values.yaml: every value with its description and default. */
export function valuesYaml(): string {
  const schema = valuesSchema();
  const { global: _g, ...props } = schema.properties as Record<string, Schema>;
  const out = [
    '# Values of the omnisci-handoff chart. Generated from src/deploy/chart-values.ts and src/config/schema.ts',
    '# by `npm run generate`; edit those, not this file. values.schema.json checks every value.',
    '',
  ];
  emit(props, '', out);
  return `${out.join('\n')}\n`;
}
