/** Named servers (hub.namedServers): which names a handoff may open, the lab URL they land on, and the config rules. */
import { ConfigError } from '../../src/config/load.js';
import { HandoffError } from '../../src/errors.js';
import { keySourcesFromConfig } from '../../src/handoff/keys.js';
import { requestedServer } from '../../src/handoff/server-name.js';
import { createVerifier } from '../../src/handoff/verify.js';
import { labUrl } from '../../src/hub/lab-url.js';
import { neededScopes } from '../../src/hub/scopes.js';
import { HMAC_SECRET, hmacKey, mint, testConfig } from '../support/core.js';

const codeOf = (f: () => unknown): string => {
  try {
    f();
    return 'accepted';
  } catch (e) {
    if (e instanceof HandoffError) return e.code;
    throw e;
  }
};

const rules = (o: { enabled?: boolean; allowed?: string[]; pattern?: string }) => ({ enabled: true, allowed: [], ...o });

test.each([
  [undefined, rules({ allowed: ['a'] }), 'accepted'],
  ['analysis', rules({ allowed: ['analysis'] }), 'accepted'],
  ['gpu-large', rules({ pattern: 'gpu-[a-z]+' }), 'accepted'],
  // The pattern matches the whole name, not a part of it.
  ['my-gpu-large', rules({ pattern: 'gpu-[a-z]+' }), 'server_not_allowed'],
  ['gpu', rules({ allowed: ['analysis'] }), 'server_not_allowed'],
  ['analysis', rules({ enabled: false, allowed: ['analysis'] }), 'server_not_allowed'],
  ['', rules({ allowed: ['analysis'] }), 'server_name_invalid'],
  ['.', rules({ pattern: '.*' }), 'server_name_invalid'],
  ['..', rules({ pattern: '.*' }), 'server_name_invalid'],
  ['a/b', rules({ pattern: '.*' }), 'server_name_invalid'],
  ['a b', rules({ pattern: '.*' }), 'server_name_invalid'],
  ['x'.repeat(256), rules({ pattern: '.*' }), 'server_name_invalid'],
  [42, rules({ pattern: '.*' }), 'server_name_invalid'],
])('server %j with %j: %s', (name, r, expected) => {
  expect(codeOf(() => requestedServer(name, r))).toBe(expected);
});

test('the token claim: an allowed name becomes the handoff server; others are refused with their code', async () => {
  const config = testConfig({ hub: { namedServers: { enabled: true, allowed: ['analysis'] } } });
  const v = createVerifier(config, await keySourcesFromConfig(config.token.keys, { TEST_HMAC: HMAC_SECRET }));
  const key = hmacKey('HS256');
  expect((await v.verifyHandoff(await mint(key, { extraClaims: { server: 'analysis' } }))).server).toBe('analysis');
  expect((await v.verifyHandoff(await mint(key))).server).toBeUndefined();
  for (const [server, code] of [
    ['gpu', 'server_not_allowed'],
    ['../x', 'server_name_invalid'],
  ]) {
    await expect(v.verifyHandoff(await mint(key, { extraClaims: { server } }))).rejects.toMatchObject({ code });
  }
  // Off (the default): a token naming a server is refused, never silently sent to another server.
  const off = testConfig();
  const vOff = createVerifier(off, await keySourcesFromConfig(off.token.keys, { TEST_HMAC: HMAC_SECRET }));
  await expect(vOff.verifyHandoff(await mint(key, { extraClaims: { server: 'analysis' } }))).rejects.toMatchObject({ code: 'server_not_allowed' });
});

test('the lab URL of a named server is under /user/{name}/{server}/, with both bare params', () => {
  const redirect = testConfig().redirect;
  expect(labUrl(redirect, 'alice')).toBe('https://hub.test/user/alice/lab?omnisci&reset');
  expect(labUrl(redirect, 'alice', 'analysis')).toBe('https://hub.test/user/alice/analysis/lab?omnisci&reset');
  expect(labUrl(redirect, 'a b', 'x~y')).toBe('https://hub.test/user/a%20b/x~y/lab?omnisci&reset');
  // A template that places {servername} itself is used as written.
  const own = { ...redirect, labUrlTemplate: '{hubPublicUrl}/user/{username}/{servername}/tree?omnisci&reset' };
  expect(labUrl(own, 'alice', 'analysis')).toBe('https://hub.test/user/alice/analysis/tree?omnisci&reset');
});

test('config rules: an enabled list names servers; the pattern compiles; the lab URL can take a server', () => {
  const problems = (hub: Record<string, unknown>, redirect: Record<string, unknown> = {}) => {
    try {
      testConfig({ hub, redirect });
      return [];
    } catch (e) {
      return (e as ConfigError).problems.map((p) => p.path);
    }
  };
  expect(problems({ namedServers: { enabled: true } })).toEqual(['hub.namedServers']);
  expect(problems({ namedServers: { enabled: true, pattern: '(' } })).toEqual(['hub.namedServers.pattern']);
  expect(problems({ namedServers: { enabled: true, allowed: ['a'] } }, { labUrlTemplate: '{hubPublicUrl}/hub/user-redirect/lab?u={username}' })).toEqual([
    'redirect.labUrlTemplate',
  ]);
  expect(problems({ namedServers: { enabled: true, allowed: ['a'] } })).toEqual([]);
});

test('the hub scopes: read:shares unless shared servers are allowed', () => {
  const scopes = (hub: Record<string, unknown>) => neededScopes(testConfig({ hub: { enabled: true, apiUrl: 'http://hub.test/hub/api', ...hub } }, { JUPYTERHUB_API_TOKEN: 't' }).hub).map((s) => s.scope);
  expect(scopes({})).toEqual(['servers', 'read:shares']);
  expect(scopes({ createUsers: true })).toEqual(['servers', 'admin:users', 'read:shares']);
  expect(scopes({ allowSharedServers: true })).toEqual(['servers']);
});
