import { ConfigError, resolveConfig } from '../../src/config/load.js';
import { takesTokens } from '../../src/config/rules.js';
import { configSchema } from '../../src/config/schema.js';
import { jupyterConfigFiles } from '../../src/notebook/outputs.js';
import { HMAC_SECRET } from '../support/core.js';

const minimal = { token: { issuer: 'i', audience: 'a', algorithms: ['HS256'], keys: { hmacSecretEnv: 'S' } } };
const env = { S: HMAC_SECRET };

function problems(raw: unknown, e: NodeJS.ProcessEnv = env): { path: string; message: string }[] {
  try {
    resolveConfig(raw, e);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

test('defaults are filled in', () => {
  const c = resolveConfig(minimal, env);
  expect(c.listen).toMatchObject({ host: '127.0.0.1', port: 8470, basePath: '/' });
  expect(c.token).toMatchObject({ maxTokenBytes: 16384, maxLifetimeSeconds: 300, clockToleranceSeconds: 30, sessionPattern: '^[A-Za-z0-9]{32}$' });
  expect(c.notebook).toMatchObject({ sessionFormat: 'json', env: { protocol: 'OMNISCI_PROTOCOL', host: 'OMNISCI_HOST', port: 'OMNISCI_PORT' } });
  expect(c.redirect.labUrlTemplate).toBe('{hubPublicUrl}/user/{username}/lab?omnisci&reset');
  expect(c.store).toMatchObject({ backend: 'local', local: { dir: './.data' } });
});

test('every problem is listed with its path, not just the first', () => {
  const p = problems({
    listen: { port: 'eighty', colour: 'blue' },
    token: { audience: 7, algorithms: ['none'], keys: {} },
    notebook: { sessionFormat: 'yaml' },
  });
  const paths = p.map((x) => x.path);
  expect(paths).toEqual(
    expect.arrayContaining(['listen.port', 'listen.colour', 'token.audience', 'token.algorithms.0', 'notebook.sessionFormat']),
  );
  expect(p.find((x) => x.path === 'listen.colour')?.message).toBe('is not a known setting');
  expect(p.find((x) => x.path === 'notebook.sessionFormat')?.message).toBe('must be one of "json", "text"');
  expect(p.find((x) => x.path === 'token.audience')?.message).toBe('must be string');
});

describe('the token section: required for token handoffs, not for header mode only', () => {
  const hubEnv = { JUPYTERHUB_API_URL: 'http://127.0.0.1:8081/hub/api', JUPYTERHUB_API_TOKEN: 't' };
  const header = { hub: { enabled: true }, heavydb: { enabled: true, url: 'http://heavydb:6278/' }, omnisci: { host: 'heavydb' } };

  test('header mode without any token setting is valid, and takes no tokens', () => {
    const c = resolveConfig(header, hubEnv);
    expect(takesTokens(c)).toBe(false);
    expect(c.token.issuer).toBeUndefined();
    expect(takesTokens(resolveConfig(minimal, env))).toBe(true);
  });

  test('a key source makes it a token config, checked whole: issuer and audience required', () => {
    expect(problems({ ...header, token: { keys: { jwksUrl: 'https://immerse.test/jwks.json' } } }, hubEnv)).toEqual([
      { path: 'token.issuer', message: 'is required when token.keys names a key source (token handoffs)' },
      { path: 'token.audience', message: 'is required when token.keys names a key source (token handoffs)' },
    ]);
    expect(problems({ token: { keys: { hmacSecretEnv: 'S' }, algorithms: ['HS256'], audience: 'a' } }).map((x) => x.path)).toEqual(['token.issuer']);
  });

  test('without a key source and without header mode nobody could get in: refused', () => {
    expect(problems({ token: { issuer: 'i', audience: 'a' } })).toEqual([
      { path: 'token.keys', message: 'no key source: set jwksUrl, publicKeyFiles, hmacSecretFile or hmacSecretEnv (or heavydb.enabled, header mode, without token handoffs)' },
    ]);
    expect(problems({}).map((x) => x.path)).toEqual(['token.keys']);
  });

  test("a config for a service running elsewhere (z2jh-values) is not checked for that process's environment", () => {
    expect(problems(header, {}).map((x) => x.path)).toEqual(['hub.apiUrl', 'hub.apiTokenFile']);
    expect(resolveConfig(header, {}, { elsewhere: true }).heavydb.enabled).toBe(true);
    expect(() => resolveConfig({ ...header, hub: { enabled: false } }, {}, { elsewhere: true })).toThrow(ConfigError);
  });
});

test('cross-field rules: HS* only with a secret, secrets never inline, one secret source, patterns compile', () => {
  expect(problems({ token: { issuer: 'i', audience: 'a', algorithms: ['HS256'], keys: { publicKeyFiles: ['/k.pem'] } } })).toEqual(
    expect.arrayContaining([{ path: 'token.algorithms', message: 'HS256/384/512 are allowed only when an HMAC secret is configured' }]),
  );
  expect(problems({ token: { issuer: 'i', audience: 'a', keys: { hmacSecret: 'inline!' } } }).map((x) => x.path)).toContain('token.keys.hmacSecret');
  expect(problems({ token: { ...minimal.token, keys: { hmacSecretEnv: 'S', hmacSecretFile: '/s' } } }).map((x) => x.message)).toContain(
    'set hmacSecretFile or hmacSecretEnv, not both',
  );
  expect(problems(minimal, {})).toEqual([{ path: 'token.keys.hmacSecretEnv', message: 'env var S is not set' }]);
  expect(problems({ ...minimal, token: { ...minimal.token, sessionPattern: '([' } }).map((x) => x.path)).toEqual(['token.sessionPattern']);
  expect(problems({ ...minimal, redirect: { labUrlTemplate: 'https://x/lab' } }).map((x) => x.path)).toEqual(['redirect.labUrlTemplate']);
  // The allowlist is for hosts other than the default: a token naming the default host is always fine.
  expect(problems({ ...minimal, omnisci: { host: 'db.test', allowedHosts: ['*.db.test'] } })).toEqual([]);
  expect(problems({ token: { ...minimal.token, keys: {} } }).map((x) => x.message)).toContain(
    'no key source: set jwksUrl, publicKeyFiles, hmacSecretFile or hmacSecretEnv (or heavydb.enabled, header mode, without token handoffs)',
  );
});

test('hub.identityCheck: needs the hub; client id and redirect URI default like the hub registers a service', () => {
  const hub = { enabled: true, apiUrl: 'http://hub:8081/hub/api', identityCheck: true };
  const hubEnv = { ...env, JUPYTERHUB_API_TOKEN: 't' };
  const c = resolveConfig({ ...minimal, listen: { basePath: '/services/ohs/' }, hub }, hubEnv);
  expect(c.hub).toMatchObject({ oauthClientId: 'service-ohs', oauthRedirectUri: '/services/ohs/oauth_callback', identityMaxAgeSeconds: 300 });
  const managed = { ...hubEnv, JUPYTERHUB_SERVICE_PREFIX: '/services/x/', JUPYTERHUB_CLIENT_ID: 'service-y', JUPYTERHUB_OAUTH_CALLBACK_URL: 'https://hub.test/services/x/oauth_callback' };
  expect(resolveConfig({ ...minimal, hub }, managed).hub).toMatchObject({ oauthClientId: 'service-y', oauthRedirectUri: 'https://hub.test/services/x/oauth_callback' });
  expect(problems({ ...minimal, hub: { identityCheck: true } }).map((x) => x.path)).toEqual(['hub.identityCheck', 'hub.oauthClientId']);
  expect(problems({ ...minimal, listen: { basePath: '/services/ohs/' }, hub: { ...hub, oauthRedirectUri: '/elsewhere' } }, hubEnv)).toEqual([
    { path: 'hub.oauthRedirectUri', message: 'must lead to /services/ohs/oauth_callback' },
  ]);
});

test('every schema property is described (the chart documents values from it)', () => {
  const undocumented: string[] = [];
  const walk = (node: Record<string, unknown>, path: string) => {
    const props = node.properties as Record<string, Record<string, unknown>> | undefined;
    for (const [k, v] of Object.entries(props ?? {})) {
      if (typeof v.description !== 'string' || v.description.length < 5) undocumented.push(`${path}${k}`);
      walk(v, `${path}${k}.`);
    }
  };
  walk(configSchema as unknown as Record<string, unknown>, '');
  expect(undocumented).toEqual([]);
});

test('notebook.relinkUrl: an absolute http(s) URL in printable ASCII, else a clear problem; written as OmniSciHandoff.relink_url', () => {
  const message = 'must be an absolute http(s) URL in printable ASCII (percent-encode anything else), e.g. https://immerse.example.com/';
  for (const bad of ['immerse.example.com', '/heavyai/', 'ftp://immerse.example.com/', 'https://', 'https:///immerse.example.com/', 'https://immerse.example.com/a b', 'https://immërse.example.com/', 'javascript:alert(1)'])
    expect({ bad, problems: problems({ ...minimal, notebook: { relinkUrl: bad } }) }).toEqual({ bad, problems: [{ path: 'notebook.relinkUrl', message }] });
  const url = 'https://immerse.example.com/heavyai/?open=notebook&from=jupyter';
  const config = resolveConfig({ ...minimal, notebook: { relinkUrl: url } }, env);
  const files = jupyterConfigFiles(config.notebook);
  for (const top of ['jupyter_server_config.json', 'jupyter_notebook_config.json'])
    expect(JSON.parse(files[top]!).OmniSciHandoff).toEqual({ relink_url: url });
  // Only the top-level files: the servers read nothing but extension switches from *.d/.
  expect(Object.entries(files).filter(([, text]) => text.includes('OmniSciHandoff')).map(([path]) => path).sort()).toEqual(['jupyter_notebook_config.json', 'jupyter_server_config.json']);
  expect(jupyterConfigFiles(resolveConfig(minimal, env).notebook)['jupyter_server_config.json']).not.toContain('OmniSciHandoff');
});
