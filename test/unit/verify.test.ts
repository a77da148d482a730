import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { base64url, SignJWT, type JWK } from 'jose';
import { HMAC_ALGORITHMS } from '../../src/config/schema.js';
import type { Config } from '../../src/config/types.js';
import { HandoffError } from '../../src/errors.js';
import { keySourcesFromConfig } from '../../src/handoff/keys.js';
import { createVerifier, hostAllowedBy, type Verifier } from '../../src/handoff/verify.js';
import { ASYMMETRIC, HMAC_SECRET, hmacKey, makeKey, mint, randomSessionId, tempDir, testConfig, writeFile, type TestKey } from '../support/core.js';

async function verifierFor(overrides: Parameters<typeof testConfig>[0], env: NodeJS.ProcessEnv = {}): Promise<{ v: Verifier; config: Config }> {
  const config = testConfig(overrides, env);
  return { v: createVerifier(config, await keySourcesFromConfig(config.token.keys, env)), config };
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof HandoffError) return e.code;
    throw e;
  }
  return 'accepted';
}

/** A JWKS server on loopback whose key set can be swapped (rotation); counts fetches. */
class JwksServer {
  keys: JWK[] = [];
  fetches = 0;
  delayMs = 0;
  private server!: Server;
  url = '';
  async start(): Promise<void> {
    this.server = createServer((_req, res) => {
      this.fetches++;
      setTimeout(() => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ keys: this.keys }));
      }, this.delayMs).unref();
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/jwks.json`;
  }
  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

const keys: Partial<Record<string, TestKey>> = {};
beforeAll(async () => {
  for (const alg of ASYMMETRIC) keys[alg] = await makeKey(alg);
});
const key = (alg: string) => keys[alg] as TestKey;

describe('every algorithm with every key source', () => {
  test.each(ASYMMETRIC)('%s with a PEM SPKI file (no kid in the token)', async (alg) => {
    const dir = tempDir();
    const file = writeFile(dir, 'key.pem', key(alg).publicPem);
    const { v } = await verifierFor({ token: { algorithms: [alg], keys: { publicKeyFiles: [file] } } });
    const { kid: _kid, ...signing } = key(alg).signing;
    const h = await v.verifyHandoff(await mint(signing));
    expect(h.user).toBe('alice');
    expect(h.session).toMatch(/^[A-Za-z0-9]{32}$/);
  });

  test.each(ASYMMETRIC)('%s with a JWK file and a JWKS file, kid selects', async (alg) => {
    const dir = tempDir();
    const other = await makeKey(alg);
    const jwkFile = writeFile(dir, 'key.jwk', JSON.stringify(key(alg).publicJwk));
    const jwksFile = writeFile(dir, 'keys.json', JSON.stringify({ keys: [other.publicJwk] }));
    const { v } = await verifierFor({ token: { algorithms: [alg], keys: { publicKeyFiles: [jwkFile, jwksFile] } } });
    expect((await v.verifyHandoff(await mint(key(alg).signing))).user).toBe('alice');
    expect((await v.verifyHandoff(await mint(other.signing))).user).toBe('alice');
  });

  test.each(ASYMMETRIC)('%s with a JWKS URL on loopback', async (alg) => {
    const jwks = new JwksServer();
    jwks.keys = [key(alg).publicJwk];
    await jwks.start();
    try {
      const { v } = await verifierFor({ token: { algorithms: [alg], keys: { jwksUrl: jwks.url } } });
      expect((await v.verifyHandoff(await mint(key(alg).signing))).user).toBe('alice');
    } finally {
      await jwks.stop();
    }
  });

  test.each(HMAC_ALGORITHMS)('%s with the secret from a file and from an env var', async (alg) => {
    const dir = tempDir();
    const file = writeFile(dir, 'secret', `${HMAC_SECRET}\n`);
    const fromFile = await verifierFor({ token: { algorithms: [alg], keys: { hmacSecretFile: file } } });
    expect((await fromFile.v.verifyHandoff(await mint(hmacKey(alg)))).user).toBe('alice');
    const env = { HANDOFF_SECRET: HMAC_SECRET };
    const fromEnv = await verifierFor({ token: { algorithms: [alg], keys: { hmacSecretEnv: 'HANDOFF_SECRET' } } }, env);
    expect((await fromEnv.v.verifyHandoff(await mint(hmacKey(alg)))).user).toBe('alice');
    expect(await code(fromEnv.v.verifyHandoff(await mint(hmacKey(alg, `${HMAC_SECRET}x`))))).toBe('bad_signature');
  });
});

describe('several key sources at once', () => {
  test('an HMAC secret, public key files and a JWKS each verify their own tokens; a JWKS outage hides only its own keys', async () => {
    const jwks = new JwksServer();
    const remote = await makeKey('RS256');
    jwks.keys = [remote.publicJwk];
    await jwks.start();
    try {
      const dir = tempDir();
      const file = writeFile(dir, 'k.json', JSON.stringify(key('ES256').publicJwk));
      const { v } = await verifierFor({
        token: { algorithms: ['HS256', 'ES256', 'RS256'], keys: { hmacSecretEnv: 'TEST_HMAC', publicKeyFiles: [file], jwksUrl: jwks.url, jwksTimeoutMs: 500 } },
      }, { TEST_HMAC: HMAC_SECRET });
      const tokens = { hs: await mint(hmacKey('HS256')), es: await mint(key('ES256').signing), rs: await mint(remote.signing) };
      expect(await code(v.verifyHandoff(tokens.hs))).toBe('accepted');
      expect(await code(v.verifyHandoff(tokens.es))).toBe('accepted');
      expect(await code(v.verifyHandoff(tokens.rs))).toBe('accepted');
      await jwks.stop();
      const { v: cold } = await verifierFor({
        token: { algorithms: ['HS256', 'ES256', 'RS256'], keys: { hmacSecretEnv: 'TEST_HMAC', publicKeyFiles: [file], jwksUrl: jwks.url, jwksTimeoutMs: 500 } },
      }, { TEST_HMAC: HMAC_SECRET });
      expect(await code(cold.verifyHandoff(await mint(hmacKey('HS256'))))).toBe('accepted');
      expect(await code(cold.verifyHandoff(await mint(key('ES256').signing)))).toBe('accepted');
      // The key that signed it lives in the source that is down: retry later, not "bad token".
      expect(await code(cold.verifyHandoff(await mint(remote.signing)))).toBe('keys_unavailable');
    } finally {
      await jwks.stop().catch(() => undefined);
    }
  });
});

describe('JWKS rotation', () => {
  test('an unknown kid refetches the JWKS (with a cooldown) and accepts the rotated key', async () => {
    const jwks = new JwksServer();
    const oldKey = key('ES256');
    const newKey = await makeKey('ES256', 'rotated-2');
    jwks.keys = [oldKey.publicJwk];
    await jwks.start();
    try {
      const { v } = await verifierFor({ token: { algorithms: ['ES256'], keys: { jwksUrl: jwks.url, jwksCooldownSeconds: 0 } } });
      expect((await v.verifyHandoff(await mint(oldKey.signing))).user).toBe('alice');
      expect(jwks.fetches).toBe(1);
      jwks.keys = [oldKey.publicJwk, newKey.publicJwk];
      expect((await v.verifyHandoff(await mint(newKey.signing))).user).toBe('alice');
      expect(jwks.fetches).toBe(2);
      // A kid that exists nowhere: refused, not an error of the service.
      expect(await code(v.verifyHandoff(await mint({ ...newKey.signing, kid: 'nope' })))).toBe('unknown_key');
    } finally {
      await jwks.stop();
    }
  });

  test('the cooldown bounds refetches for unknown kids', async () => {
    const jwks = new JwksServer();
    jwks.keys = [key('ES256').publicJwk];
    await jwks.start();
    try {
      const { v } = await verifierFor({ token: { algorithms: ['ES256'], keys: { jwksUrl: jwks.url, jwksCooldownSeconds: 3600 } } });
      await v.verifyHandoff(await mint(key('ES256').signing));
      for (let i = 0; i < 5; i++) expect(await code(v.verifyHandoff(await mint({ ...key('ES256').signing, kid: `x${i}` })))).toBe('unknown_key');
      expect(jwks.fetches).toBe(1);
    } finally {
      await jwks.stop();
    }
  });

  test('a JWKS that does not answer in time is keys_unavailable', async () => {
    const jwks = new JwksServer();
    jwks.keys = [key('ES256').publicJwk];
    jwks.delayMs = 2000;
    await jwks.start();
    try {
      const { v } = await verifierFor({ token: { algorithms: ['ES256'], keys: { jwksUrl: jwks.url, jwksTimeoutMs: 100 } } });
      expect(await code(v.verifyHandoff(await mint(key('ES256').signing)))).toBe('keys_unavailable');
    } finally {
      await jwks.stop();
    }
  });
});

describe('error codes', () => {
  let v: Verifier;
  let config: Config;
  const es = () => key('ES256').signing;
  beforeAll(async () => {
    const dir = tempDir();
    const file = writeFile(dir, 'keys.json', JSON.stringify({ keys: [key('ES256').publicJwk] }));
    ({ v, config } = await verifierFor({
      token: { algorithms: ['ES256'], maxLifetimeSeconds: 300, clockToleranceSeconds: 30, keys: { publicKeyFiles: [file] } },
    }));
  });
  const now = () => Math.floor(Date.now() / 1000);

  test('token_missing, token_too_large, token_malformed', async () => {
    expect(await code(v.verifyHandoff(undefined))).toBe('token_missing');
    expect(await code(v.verifyHandoff(''))).toBe('token_missing');
    expect(await code(v.verifyHandoff(['a', 'b']))).toBe('token_missing');
    expect(await code(v.verifyHandoff(`${'a'.repeat(config.token.maxTokenBytes)}.b.c`))).toBe('token_too_large');
    expect(await code(v.verifyHandoff('not a jwt'))).toBe('token_malformed');
    expect(await code(v.verifyHandoff('a.b.c.d.e'))).toBe('token_malformed');
    expect(await code(v.verifyHandoff('%%%.b.c'))).toBe('token_malformed');
  });

  test('alg none and algorithms outside the allowlist are alg_not_allowed', async () => {
    const none = `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'omnisci-handoff+jwt' }))}.${base64url.encode(JSON.stringify({ sub: 'alice' }))}.`;
    expect(await code(v.verifyHandoff(none))).toBe('token_malformed');
    expect(await code(v.verifyHandoff(`${none}x`))).toBe('alg_not_allowed');
    expect(await code(v.verifyHandoff(await mint(key('RS256').signing)))).toBe('alg_not_allowed');
    // An HS256 token "signed" with the public key (the classic confusion attack).
    const confused = await mint(hmacKey('HS256', key('ES256').publicPem));
    expect(await code(v.verifyHandoff(confused))).toBe('alg_not_allowed');
  });

  test('typ_not_allowed: wrong typ, missing typ, and a revocation token used as a handoff', async () => {
    expect(await code(v.verifyHandoff(await mint(es(), { typ: 'JWT' })))).toBe('typ_not_allowed');
    expect(await code(v.verifyHandoff(await mint(es(), { typ: '' })))).toBe('typ_not_allowed');
    expect(await code(v.verifyHandoff(await mint(es(), { typ: config.token.revokeType })))).toBe('typ_not_allowed');
    expect(await code(v.verifyHandoff(await mint(es(), { typ: `application/${config.token.type}` })))).toBe('accepted');
  });

  test('a crit header is crit_unsupported, before any key is looked up', async () => {
    // No signing library emits an unknown crit: the token is assembled by hand (its signature is never reached).
    const part = (o: object) => base64url.encode(JSON.stringify(o));
    const token = (crit: unknown) =>
      `${part({ alg: 'ES256', kid: key('ES256').kid, typ: config.token.type, crit, exp: 1 })}.${part({ sub: 'alice' })}.${part({ sig: 1 })}`;
    for (const crit of [['exp'], ['b64'], [], 'x']) expect(await code(v.verifyHandoff(token(crit)))).toBe('crit_unsupported');
  });

  test('typ is checked by default (omnisci-handoff+jwt); token.type "" turns the check off but still refuses the revocation typ', async () => {
    expect(testConfig().token.type).toBe('omnisci-handoff+jwt');
    const dir = tempDir();
    const file = writeFile(dir, 'keys.json', JSON.stringify({ keys: [key('ES256').publicJwk] }));
    const { v: lax, config: laxConfig } = await verifierFor({ token: { type: '', algorithms: ['ES256'], keys: { publicKeyFiles: [file] } } });
    expect(await code(lax.verifyHandoff(await mint(es(), { typ: 'JWT' })))).toBe('accepted');
    expect(await code(lax.verifyHandoff(await mint(es(), { typ: laxConfig.token.revokeType })))).toBe('typ_not_allowed');
  });

  test('unknown_key and bad_signature', async () => {
    const stranger = await makeKey('ES256', key('ES256').kid);
    expect(await code(v.verifyHandoff(await mint(stranger.signing)))).toBe('bad_signature');
    expect(await code(v.verifyHandoff(await mint({ ...es(), kid: 'other' })))).toBe('unknown_key');
    const good = await mint(es());
    const [h, p, s] = good.split('.') as [string, string, string];
    const tampered = `${h}.${base64url.encode(JSON.stringify({ ...JSON.parse(new TextDecoder().decode(base64url.decode(p))), sub: 'mallory' }))}.${s}`;
    expect(await code(v.verifyHandoff(tampered))).toBe('bad_signature');
  });

  test('jku, x5u, jwk and x5c headers are never used to find keys', async () => {
    const attacker = await makeKey('ES256');
    const trap = new JwksServer();
    trap.keys = [attacker.publicJwk];
    await trap.start();
    try {
      const payload = { omnisci: { session: randomSessionId() } };
      const sign = (header: Record<string, unknown>) =>
        new SignJWT(payload)
          .setProtectedHeader({ alg: 'ES256', typ: config.token.type, ...header })
          .setIssuer(config.token.issuer!)
          .setAudience(config.token.audience!)
          .setSubject('alice')
          .setIssuedAt()
          .setExpirationTime('2m')
          .setJti(`jti-trap-${Math.random()}`)
          .sign(attacker.signing.key);
      // Without a kid the configured keys are tried, and none verifies the attacker's signature.
      expect(await code(v.verifyHandoff(await sign({ jwk: attacker.publicJwk, jku: trap.url, x5u: trap.url })))).toBe('bad_signature');
      // With the attacker's kid there is no such configured key.
      expect(await code(v.verifyHandoff(await sign({ kid: attacker.kid, jwk: attacker.publicJwk, jku: trap.url })))).toBe('unknown_key');
      expect(trap.fetches).toBe(0);
    } finally {
      await trap.stop();
    }
  });

  test('time claims: expired, not yet valid, lifetime too long, iat in the future', async () => {
    const t = now();
    expect(await code(v.verifyHandoff(await mint(es(), { iat: t - 400, lifetimeSeconds: 300 })))).toBe('token_expired');
    expect(await code(v.verifyHandoff(await mint(es(), { iat: t - 100, lifetimeSeconds: 300 })))).toBe('accepted');
    expect(await code(v.verifyHandoff(await mint(es(), { lifetimeSeconds: 301 })))).toBe('token_lifetime_too_long');
    expect(await code(v.verifyHandoff(await mint(es(), { iat: t + 120 })))).toBe('token_not_yet_valid');
    // Within the clock tolerance.
    expect(await code(v.verifyHandoff(await mint(es(), { iat: t + 20 })))).toBe('accepted');
    expect(await code(v.verifyHandoff(await mint(es(), { extraClaims: { nbf: t + 120 } })))).toBe('token_not_yet_valid');
  });

  test('issuer, audience and required claims', async () => {
    expect(await code(v.verifyHandoff(await mint(es(), { issuer: 'https://evil.test' })))).toBe('bad_issuer');
    expect(await code(v.verifyHandoff(await mint(es(), { audience: 'other' })))).toBe('bad_audience');
    expect(await code(v.verifyHandoff(await mint(es(), { omnisci: null })))).toBe('claims_invalid');
    const withoutJti = await new SignJWT({ omnisci: { session: randomSessionId() } })
      .setProtectedHeader({ alg: 'ES256', kid: key('ES256').kid, typ: config.token.type })
      .setIssuer(config.token.issuer!)
      .setAudience(config.token.audience!)
      .setSubject('alice')
      .setIssuedAt()
      .setExpirationTime('2m')
      .sign(key('ES256').signing.key);
    expect(await code(v.verifyHandoff(withoutJti))).toBe('claims_invalid');
    expect(await code(v.verifyHandoff(await mint(es(), { omnisci: { session: randomSessionId(), extra: 1 } as never })))).toBe('claims_invalid');
  });

  test('session_invalid: the session must match the configured pattern', async () => {
    expect(await code(v.verifyHandoff(await mint(es(), { omnisci: { session: 'short' } })))).toBe('session_invalid');
    expect(await code(v.verifyHandoff(await mint(es(), { omnisci: { session: `${randomSessionId().slice(1)}!` } })))).toBe('session_invalid');
    expect(await code(v.verifyHandoff(await mint(es(), { omnisci: { session: 7 as never } })))).toBe('session_invalid');
  });

  test('host and port allowlists; defaults fill what the token leaves out', async () => {
    const h = await v.verifyHandoff(await mint(es(), { omnisci: { session: randomSessionId(), query: 'SELECT 1' } }));
    expect(h.connection).toEqual({ protocol: 'https', host: 'omnisci.test', port: 443, database: '' });
    expect(h.query).toBe('SELECT 1');
    const named = await v.verifyHandoff(
      await mint(es(), { omnisci: { session: randomSessionId(), host: 'eu.db.test', port: 6278, protocol: 'http', database: 'sales' } }),
    );
    expect(named.connection).toEqual({ protocol: 'http', host: 'eu.db.test', port: 6278, database: 'sales' });
    expect(await code(v.verifyHandoff(await mint(es(), { omnisci: { session: randomSessionId(), host: 'evil.test' } })))).toBe('host_not_allowed');
    expect(await code(v.verifyHandoff(await mint(es(), { omnisci: { session: randomSessionId(), host: 'db.test' } })))).toBe('host_not_allowed');
    expect(await code(v.verifyHandoff(await mint(es(), { omnisci: { session: randomSessionId(), port: 22 } })))).toBe('port_not_allowed');
    expect(await code(v.verifyHandoff(await mint(es(), { omnisci: { session: randomSessionId(), host: 'a/b' } })))).toBe('claims_invalid');
  });

  test('bad_username: names JupyterHub cannot have', async () => {
    for (const sub of ['a/b', '..', '.', 'x\r\ny', ' alice', 'x'.repeat(256)])
      expect([sub.slice(0, 10), await code(v.verifyHandoff(await mint(es(), { subject: sub })))]).toEqual([sub.slice(0, 10), 'bad_username']);
    // Unicode names are fine (and lower-cased like JupyterHub does by default).
    expect((await v.verifyHandoff(await mint(es(), { subject: 'Ünïcødé@Example.com' }))).user).toBe('ünïcødé@example.com');
  });

  test("bad_username: a name that is not NFKC could pass for another (the Kelvin sign lower-cases to kim's k); case is folded, as documented", async () => {
    for (const sub of ['\u212Aim', 'ｋｉｍ', 'jose\u0301', 'ﬁona'])
      expect({ sub, code: await code(v.verifyHandoff(await mint(es(), { subject: sub }))) }).toEqual({ sub, code: 'bad_username' });
    expect((await v.verifyHandoff(await mint(es(), { subject: 'Kim' }))).user).toBe('kim');
    expect((await v.verifyHandoff(await mint(es(), { subject: 'jos\u00e9' }))).user).toBe('jos\u00e9');
  });
});

describe('user mapping', () => {
  test('configurable claim, email domain stripped for the listed domains only, pattern enforced', async () => {
    const dir = tempDir();
    const file = writeFile(dir, 'k.json', JSON.stringify(key('ES256').publicJwk));
    const { v } = await verifierFor({
      token: { algorithms: ['ES256'], keys: { publicKeyFiles: [file] } },
      user: { claim: 'email', stripEmailDomain: true, emailDomains: ['corp.test', 'Sub.Corp.Test'], pattern: '^[a-z][a-z0-9._-]*$' },
    });
    const as = async (email: string) => v.verifyHandoff(await mint(key('ES256').signing, { extraClaims: { email } }));
    expect((await as('Jane.Doe@corp.test')).user).toBe('jane.doe');
    expect((await as('bob@sub.corp.test')).user).toBe('bob');
    expect(await code(v.verifyHandoff(await mint(key('ES256').signing)))).toBe('bad_username');
    expect(await code(as('9lives@corp.test'))).toBe('bad_username');
    // Another domain, a look-alike, or no domain at all would merge identities: refused.
    for (const email of ['jane.doe@other.test', 'jane.doe@corp.test.evil', 'jane.doe@evilcorp.test', 'jane.doe', 'a@b@other.test'])
      expect({ email, code: await code(as(email)) }).toEqual({ email, code: 'bad_username' });
  });

  test('stripEmailDomain without emailDomains is a config error', async () => {
    await expect(verifierFor({ token: { algorithms: ['HS256'] }, user: { stripEmailDomain: true } })).rejects.toThrow(/user\.emailDomains/);
  });
});

describe('revocation tokens', () => {
  test('need the revocation typ; handoff tokens are refused', async () => {
    const dir = tempDir();
    const file = writeFile(dir, 'k.json', JSON.stringify(key('ES256').publicJwk));
    const { v, config } = await verifierFor({ token: { algorithms: ['ES256'], keys: { publicKeyFiles: [file] } } });
    const r = await v.verifyRevocation(await mint(key('ES256').signing, { typ: config.token.revokeType, omnisci: null }));
    expect(r.user).toBe('alice');
    expect(await code(v.verifyRevocation(await mint(key('ES256').signing)))).toBe('typ_not_allowed');
  });
});

test('wildcard hosts match subdomains only', () => {
  expect(hostAllowedBy('a.db.test', ['*.db.test'])).toBe(true);
  expect(hostAllowedBy('A.B.DB.test', ['*.db.test'])).toBe(true);
  expect(hostAllowedBy('db.test', ['*.db.test'])).toBe(false);
  expect(hostAllowedBy('evildb.test', ['*.db.test'])).toBe(false);
  expect(hostAllowedBy('db.test', ['db.test'])).toBe(true);
});
