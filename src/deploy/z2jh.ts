/**
 * `omnisci-handoff z2jh-values`: the values to merge into the zero-to-jupyterhub release so the hub
 * knows this service (hub.services + a role with the least scopes), its network policies let the
 * traffic through, and — when the admission webhook is off — KubeSpawner mounts the session itself.
 */
import { stringify } from 'yaml';
import type { Config } from '../config/types.js';
import { JUPYTER_CONFIG_PATH } from '../config/reserved.js';
import { neededScopes } from '../hub/scopes.js';
import { connectionEnvFrom, jupyterConfigVolume, sessionVolume } from '../notebook/pod.js';

export interface Z2jhOptions {
  /** Name under hub.services (the chart's jupyterhub.serviceName). */
  serviceName?: string;
  /** URL the hub proxy forwards /services/<name>/ to (the chart's Service). */
  serviceUrl?: string;
  /** Labels of the service's pods (proxy egress on Cilium-style clusters). */
  podLabels?: Record<string, string>;
  /** The chart's Jupyter-config ConfigMap (webhook-free mode mounts it). */
  jupyterConfigMap?: string;
  /** Webhook-free mode: KubeSpawner mounts the Secret itself. Default: when config.webhook is off. */
  webhookFree?: boolean;
  /** Source of helm/omnisci-handoff/files/authenticator.py; needed when hub.loginMode is handoff or heavydb.enabled. */
  authenticatorSource?: string;
  /** Class the authenticator file defines. */
  authenticatorClass?: string;
}

/** Where hub.extraFiles puts the authenticator (a directory z2jh's hub image does not use otherwise). */
const AUTHENTICATOR_DIR = '/usr/local/etc/jupyterhub/omnisci-handoff';
const AUTHENTICATOR_MODULE = 'omnisci_handoff_authenticator';

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** Egress from single-user pods to OmniSci: the default port and every port a token may name. */
function omnisciEgress(c: Config['omnisci']): Record<string, unknown>[] {
  const ports = [...new Set([c.port, ...c.allowedPorts])].map((port) => ({ port, protocol: 'TCP' }));
  // NetworkPolicy knows addresses, not names: a literal IPv4 host is pinned, any other host is any address on those ports.
  const to = IPV4.test(c.host) && c.allowedHosts.length === 0 ? [{ ipBlock: { cidr: `${c.host}/32` } }] : undefined;
  return [{ ...(to ? { to } : {}), ports }];
}

function webhookFreeSingleuser(config: Config, configMap: string): Record<string, unknown> {
  // KubeSpawner 7 expands {username} to safe_slug(name, 48): the store's Secret is <prefix>-<userSlug(name)>.
  const secret = `${config.store.kubernetes.secretPrefix}-{username}`;
  // z2jh's extraEnv is a map of name to EnvVar (without the name).
  const extraEnv = Object.fromEntries(connectionEnvFrom(secret, config.notebook).map(({ name, ...rest }) => [name, rest]));
  return {
    extraEnv: { ...extraEnv, [JUPYTER_CONFIG_PATH]: config.webhook.jupyterConfigDir },
    storage: {
      extraVolumes: [sessionVolume('omnisci-session', secret, config.notebook), jupyterConfigVolume('omnisci-jupyter-config', configMap, config.notebook)],
      extraVolumeMounts: [
        { name: 'omnisci-session', mountPath: config.notebook.sessionDir, readOnly: true },
        { name: 'omnisci-jupyter-config', mountPath: config.webhook.jupyterConfigDir, readOnly: true },
      ],
    },
  };
}

function authenticatorHub(source: string, className: string, serviceName: string, headerLogin: boolean): Record<string, unknown> {
  return {
    extraFiles: {
      'omnisci-handoff-authenticator': {
        mountPath: `${AUTHENTICATOR_DIR}/${AUTHENTICATOR_MODULE}.py`,
        stringData: source,
      },
    },
    extraConfig: {
      'omnisci-handoff': [
        'import sys',
        `sys.path.insert(0, ${JSON.stringify(AUTHENTICATOR_DIR)})`,
        `from ${AUTHENTICATOR_MODULE} import ${className}`,
        `c.JupyterHub.authenticator_class = ${className}`,
        // Its exchange URL comes from this service's registration (url + the hub's base_url).
        `c.${className}.service_name = ${JSON.stringify(serviceName)}`,
        // Header mode: /hub/login takes the HEAVY.AI web server's session header (docs/heavyai.md).
        ...(headerLogin ? [`c.${className}.header_login = True`] : []),
        '',
      ].join('\n'),
    },
  };
}

/** The z2jh values as an object (merge it into the JupyterHub release's values). */
export function z2jhValues(config: Config, opts: Z2jhOptions = {}): Record<string, unknown> {
  const name = opts.serviceName ?? 'omnisci-handoff';
  const url = opts.serviceUrl ?? `http://omnisci-handoff:${config.listen.port}`;
  const podLabels = opts.podLabels ?? { 'app.kubernetes.io/name': 'omnisci-handoff' };
  const scopes = neededScopes(config.hub).map((s) => s.scope);
  const headerLogin = config.heavydb.enabled;
  const handoffLogin = config.hub.loginMode === 'handoff' || headerLogin;
  if (handoffLogin && !opts.authenticatorSource)
    throw new Error('hub.loginMode is handoff or heavydb.enabled: the authenticator source (helm/omnisci-handoff/files/authenticator.py) is needed');

  const hub: Record<string, unknown> = {
    services: { [name]: { url, display: false, oauth_no_confirm: true } },
    loadRoles: {
      [name]: {
        description: 'omnisci-handoff: start single-user servers for handed-over sessions',
        scopes,
        services: [name],
      },
      // The identity check makes the service a hub OAuth client: users need access to it (this replaces the default user role).
      ...(config.hub.identityCheck
        ? { user: { description: 'Standard user privileges, and the omnisci-handoff identity check', scopes: ['self', `access:services!service=${name}`] } }
        : {}),
    },
    ...(handoffLogin ? authenticatorHub(opts.authenticatorSource!, opts.authenticatorClass ?? 'OmnisciHandoffAuthenticator', name, headerLogin) : {}),
  };
  const toService = { podSelector: { matchLabels: podLabels } };
  const values: Record<string, unknown> = {
    hub,
    // Cilium and similar treat cluster pods as identities, not as private IPs: allow the service by label.
    proxy: {
      chp: {
        // The pod port (the Service forwards to it).
        networkPolicy: { egress: [{ to: [toService], ports: [{ port: config.listen.port, protocol: 'TCP' }] }] },
      },
    },
    singleuser: {
      networkPolicy: { egress: omnisciEgress(config.omnisci) },
      ...((opts.webhookFree ?? !config.webhook.enabled)
        ? webhookFreeSingleuser(config, opts.jupyterConfigMap ?? config.webhook.jupyterConfigMap)
        : {}),
    },
  };
  return values;
}

/** The same values as a YAML document with a header saying how to use it. */
export function z2jhValuesYaml(config: Config, opts: Z2jhOptions = {}): string {
  return `# omnisci-handoff: merge into your zero-to-jupyterhub values (helm upgrade ... -f this-file).\n${stringify(z2jhValues(config, opts), { lineWidth: 0 })}`;
}
