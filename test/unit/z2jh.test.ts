import { resolveConfig } from '../../src/config/load.js';
import { secretName } from '../../src/k8s/layout.js';
import { safeSlug } from '../../src/k8s/slug.js';
import { jupyterConfigMapItems } from '../../src/notebook/configmap.js';
import { z2jhValues, z2jhValuesYaml } from '../../src/deploy/z2jh.js';
import { parse as parseYaml } from 'yaml';

const base = {
  token: { issuer: 'immerse', audience: 'omnisci-handoff', keys: { jwksUrl: 'https://immerse.example.com/jwks.json' } },
  store: { backend: 'kubernetes', kubernetes: { namespace: 'jhub' } },
  webhook: { enabled: true, certFile: '/tls/tls.crt', keyFile: '/tls/tls.key' },
  hub: { enabled: true, apiUrl: 'http://hub:8081/hub/api', apiTokenFile: '/etc/omnisci-handoff/hub/token', ticketKeyFile: '/etc/omnisci-handoff/tickets/ticket-keys' },
  omnisci: { host: 'heavydb.example.com', port: 6274, allowedHosts: ['heavydb.example.com'], allowedPorts: [6273, 6274] },
};
const config = (extra: Record<string, any> = {}) =>
  resolveConfig({ ...base, ...extra, hub: { ...base.hub, ...extra.hub }, webhook: { ...base.webhook, ...extra.webhook } }, {});

test('registers the service with the least scopes and no singleuser mounts when the webhook is on', () => {
  const v = z2jhValues(config()) as any;
  expect(v.hub.services['omnisci-handoff']).toEqual({ url: 'http://omnisci-handoff:8470', display: false, oauth_no_confirm: true });
  expect(v.hub.loadRoles['omnisci-handoff'].scopes).toEqual(['servers', 'read:shares']);
  // With shared servers allowed there is nothing to check, and no scope to read shares.
  expect((z2jhValues(config({ hub: { allowSharedServers: true } })) as any).hub.loadRoles['omnisci-handoff'].scopes).toEqual(['servers']);
  expect(v.hub.loadRoles['omnisci-handoff'].services).toEqual(['omnisci-handoff']);
  expect(v.hub.extraFiles).toBeUndefined();
  expect(v.proxy.chp.networkPolicy.egress).toEqual([
    { to: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'omnisci-handoff' } } }], ports: [{ port: 8470, protocol: 'TCP' }] },
  ]);
  expect(v.singleuser.networkPolicy.egress).toEqual([{ ports: [{ port: 6274, protocol: 'TCP' }, { port: 6273, protocol: 'TCP' }] }]);
  expect(v.singleuser.extraEnv).toBeUndefined();
  expect(z2jhValues(config({ hub: { createUsers: true } })).hub).toMatchObject({
    loadRoles: { 'omnisci-handoff': { scopes: ['servers', 'admin:users', 'read:shares'] } },
  });
  expect(v.hub.loadRoles.user).toBeUndefined();
  const identity = z2jhValues(config({ listen: { basePath: '/services/omnisci-handoff/' }, hub: { identityCheck: true } })) as any;
  expect(identity.hub.loadRoles.user.scopes).toEqual(['self', 'access:services!service=omnisci-handoff']);
});

test('a literal OmniSci IP is pinned in the single-user egress', () => {
  const v = z2jhValues(config({ omnisci: { host: '10.1.2.3', port: 6274 } })) as any;
  expect(v.singleuser.networkPolicy.egress).toEqual([{ to: [{ ipBlock: { cidr: '10.1.2.3/32' } }], ports: [{ port: 6274, protocol: 'TCP' }] }]);
});

test('webhook-free values point KubeSpawner at the store Secret of each user', () => {
  const c = config({ webhook: { enabled: false } });
  const v = z2jhValues(c) as any;
  const secret = `${c.store.kubernetes.secretPrefix}-{username}`;
  // KubeSpawner 7 expands {username} to safe_slug(name): the same name the store writes.
  for (const user of ['alice', 'Alice@Example.com', 'x--y']) expect(secret.replace('{username}', safeSlug(user))).toBe(secretName(c.store.kubernetes.secretPrefix, user));
  expect(v.singleuser.extraEnv).toEqual({
    OMNISCI_PROTOCOL: { valueFrom: { secretKeyRef: { name: secret, key: 'protocol', optional: true } } },
    OMNISCI_HOST: { valueFrom: { secretKeyRef: { name: secret, key: 'host', optional: true } } },
    OMNISCI_PORT: { valueFrom: { secretKeyRef: { name: secret, key: 'port', optional: true } } },
    JUPYTER_CONFIG_PATH: c.webhook.jupyterConfigDir,
  });
  expect(v.singleuser.storage.extraVolumes).toEqual([
    { name: 'omnisci-session', secret: { secretName: secret, optional: true, items: [{ key: 'session', path: 'session' }] } },
    { name: 'omnisci-jupyter-config', configMap: { name: c.webhook.jupyterConfigMap, optional: true, items: jupyterConfigMapItems(c.notebook) } },
  ]);
  expect(v.singleuser.storage.extraVolumeMounts).toEqual([
    { name: 'omnisci-session', mountPath: '/var/run/omnisci-handoff', readOnly: true },
    { name: 'omnisci-jupyter-config', mountPath: c.webhook.jupyterConfigDir, readOnly: true },
  ]);
});

test('handoff login mode installs the shipped authenticator', () => {
  const c = config({ hub: { loginMode: 'handoff' } });
  expect(() => z2jhValues(c)).toThrow(/authenticator/);
  const source = 'class OmnisciHandoffAuthenticator: pass\n';
  const v = parseYaml(z2jhValuesYaml(c, { authenticatorSource: source })) as any;
  expect(v.hub.extraFiles['omnisci-handoff-authenticator']).toEqual({
    mountPath: '/usr/local/etc/jupyterhub/omnisci-handoff/omnisci_handoff_authenticator.py',
    stringData: source,
  });
  expect(v.hub.extraConfig['omnisci-handoff']).toContain('c.JupyterHub.authenticator_class = OmnisciHandoffAuthenticator');
  // The authenticator finds the service by the name it is registered under (any name, any hub base URL).
  expect(v.hub.extraConfig['omnisci-handoff']).toContain('c.OmnisciHandoffAuthenticator.service_name = "omnisci-handoff"');
  const named = parseYaml(z2jhValuesYaml(c, { authenticatorSource: source, serviceName: 'notebooks' })) as any;
  expect(named.hub.extraConfig['omnisci-handoff']).toContain('c.OmnisciHandoffAuthenticator.service_name = "notebooks"');
  expect(Object.keys(named.hub.services)).toEqual(['notebooks']);
});

test('header mode (heavydb.enabled) installs the authenticator with header_login, also in login mode sso', () => {
  const c = config({ hub: { loginMode: 'sso' }, heavydb: { enabled: true, url: 'http://heavydb:6278/' }, omnisci: { host: 'heavydb' } });
  expect(() => z2jhValues(c)).toThrow(/authenticator/);
  const v = parseYaml(z2jhValuesYaml(c, { authenticatorSource: 'class OmnisciHandoffAuthenticator: pass\n' })) as any;
  expect(v.hub.extraConfig['omnisci-handoff']).toContain('c.JupyterHub.authenticator_class = OmnisciHandoffAuthenticator');
  expect(v.hub.extraConfig['omnisci-handoff']).toContain('c.OmnisciHandoffAuthenticator.header_login = True');
  const handoffOnly = parseYaml(z2jhValuesYaml(config({ hub: { loginMode: 'handoff' } }), { authenticatorSource: 'x' })) as any;
  expect(handoffOnly.hub.extraConfig['omnisci-handoff']).not.toContain('header_login');
});
