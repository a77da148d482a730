/**
 * Property-based tests (fast-check) of everything an issuer, a browser, KubeSpawner or an admin
 * controls (issue 12, "fuzzed inputs"): tokens at the verifier and over HTTP, pods at the webhook's
 * patch, config documents at the loader, user names at the mapping and the slug. Each property
 * states what must hold for every input; the number of cases each ran is printed at the end.
 *
 * Defects these properties found are fixed; their tests keep them fixed (a 4xx status from body parsing
 * or routing, lone surrogates in names, prototype-named env vars, duplicate mounts or env names).
 */
import { constants, createHmac, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { request } from 'node:http';
import { posix } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import fc from 'fast-check';
import fastJsonPatch from 'fast-json-patch';
import { ConfigError, resolveConfig } from '../../src/config/load.js';
import { ALGORITHMS, configSchema } from '../../src/config/schema.js';
import type { Config } from '../../src/config/types.js';
import { ERRORS, HandoffError } from '../../src/errors.js';
import { keySourcesFromConfig } from '../../src/handoff/keys.js';
import { mapUsername, usernameProblem } from '../../src/handoff/username.js';
import { createVerifier, type Verifier } from '../../src/handoff/verify.js';
import { secretName } from '../../src/k8s/layout.js';
import { safeSlug } from '../../src/k8s/slug.js';
import { injectionSpec, JUPYTER_VOLUME, podPatch, POD_SECRET_ANNOTATION, SESSION_VOLUME } from '../../src/webhook/patch.js';
import { AUDIENCE, HMAC_SECRET, ISSUER, postToken, startTestService, tempDir, testConfig, TYP, writeFile, type TestService } from '../support/core.js';
import { freePort } from '../support/jupyterhub.js';
import { kubespawnerPod } from '../support/kubespawner-pod.js';

jest.setTimeout(60_000);

/** Cases run per property, printed in afterAll (the numbers reported for issue 12). */
const cases = new Map<string, number>();
const count = (name: string) => cases.set(name, (cases.get(name) ?? 0) + 1);
afterAll(() => {
  const lines = [...cases].map(([k, v]) => `  ${String(v).padStart(6)}  ${k}`);
  console.log(`property cases run:\n${lines.join('\n')}\n  ${String([...cases.values()].reduce((a, b) => a + b, 0)).padStart(6)}  total`);
});

const now = () => Math.floor(Date.now() / 1000);
const ERROR_CODES = new Set(Object.keys(ERRORS));
const DNS_LABEL = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** Well-formed UTF-16 (no lone surrogates): with the `u` flag a surrogate class only matches unpaired ones. */
const wellFormed = (s: string) => !/[\uD800-\uDFFF]/u.test(s);

/** Sets an own, enumerable property even for `__proto__` (plain assignment would change the prototype). */
function setOwn(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

// ----- value generators shared by the properties -----

const edgeStrings = [
  '', ' ', '.', '..', '/', 'a/b', '\u0000', '\r\n', '\t', 'x'.repeat(300), '__proto__', 'constructor', 'toString',
  '%00', '%zz', '\uD800', '\uDFFF', 'ǅ', 'İstanbul', 'ß', '\u2028', '\u202e', '\uFEFF', '<script>', "'\"", '{username}', '${x}',
];
const weirdString = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 8 }),
  fc.constantFrom(...edgeStrings),
);
const weirdNumber = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -0, -1, 0.5, 1e308, -1e308, 1e-300, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2, 2 ** 31, 65536),
);
const anyJson = fc.jsonValue({ maxDepth: 3 });
const deepObject = fc.integer({ min: 50, max: 400 }).map((n) => {
  let o: unknown = 'leaf';
  for (let i = 0; i < n; i++) o = { a: o };
  return o;
});
const anyValue = fc.oneof({ weight: 3, arbitrary: anyJson }, { weight: 2, arbitrary: weirdString }, { weight: 2, arbitrary: weirdNumber }, { weight: 1, arbitrary: deepObject });

const DELETE = Symbol('delete');
/**
 * A mostly valid object with 0..max random edits: a known key deleted, or set to one of its interesting
 * values or to any value, or a random key added.
 */
function mutated(base: fc.Arbitrary<Record<string, unknown>>, interesting: Record<string, fc.Arbitrary<unknown>>, max = 2): fc.Arbitrary<Record<string, unknown>> {
  const keys = Object.keys(interesting);
  const known = fc.constantFrom(...keys).chain((k) =>
    fc.tuple(fc.constant(k), fc.oneof({ weight: 1, arbitrary: fc.constant<unknown>(DELETE) }, { weight: 3, arbitrary: interesting[k]! }, { weight: 2, arbitrary: anyValue })),
  );
  const other = fc.tuple(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('__proto__', 'constructor')), anyValue);
  const edit = fc.oneof({ weight: 5, arbitrary: known }, { weight: 1, arbitrary: other });
  return fc.tuple(base, fc.array(edit, { maxLength: max })).map(([b, edits]) => {
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(b)) setOwn(o, k, v);
    for (const [k, v] of edits) {
      if (v === DELETE) delete o[k];
      else setOwn(o, k, v);
    }
    return o;
  });
}

// ----- 1a. the verifier -----

const pairs = {
  rsa: generateKeyPairSync('rsa', { modulusLength: 2048 }),
  p256: generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  p384: generateKeyPairSync('ec', { namedCurve: 'P-384' }),
  ed: generateKeyPairSync('ed25519'),
};
const jwk = (k: KeyObject, extra: Record<string, string>) => ({ ...(k.export({ format: 'jwk' }) as Record<string, string>), ...extra });

/** A signature over `input` made with the configured key of `alg` (an HMAC-SHA256 for algorithms nothing is configured for). */
function signature(alg: string, input: string): Buffer {
  const data = Buffer.from(input);
  switch (alg) {
    case 'HS384':
      return createHmac('sha384', HMAC_SECRET).update(data).digest();
    case 'HS512':
      return createHmac('sha512', HMAC_SECRET).update(data).digest();
    case 'RS256':
      return cryptoSign('sha256', data, pairs.rsa.privateKey);
    case 'PS256':
      return cryptoSign('sha256', data, { key: pairs.rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
    case 'ES256':
      return cryptoSign('sha256', data, { key: pairs.p256.privateKey, dsaEncoding: 'ieee-p1363' });
    case 'ES384':
      return cryptoSign('sha384', data, { key: pairs.p384.privateKey, dsaEncoding: 'ieee-p1363' });
    case 'EdDSA':
      return cryptoSign(null, data, pairs.ed.privateKey);
    default:
      return createHmac('sha256', HMAC_SECRET).update(data).digest();
  }
}

const b64u = (s: string | Buffer) => Buffer.from(s).toString('base64url');

/** A compact JWS of any header and payload, validly signed with the configured key for the header's alg. */
function signedToken(header: unknown, payload: unknown, sigAlg?: string): string {
  const h = b64u(JSON.stringify(header));
  const p = b64u(JSON.stringify(payload));
  const alg = sigAlg ?? (typeof (header as { alg?: unknown } | null)?.alg === 'string' ? (header as { alg: string }).alg : 'HS256');
  return `${h}.${p}.${b64u(signature(alg, `${h}.${p}`))}`;
}

/** The kid each configured key is found by (the RSA PEM has its thumbprint as kid: tokens leave it out). */
const KID: Record<string, string | undefined> = { ES256: 'p256', ES384: 'p384', EdDSA: 'ed' };

const headerArb = fc.oneof(
  {
    weight: 12,
    arbitrary: mutated(
      fc.constantFrom(...ALGORITHMS).map((alg) => ({ alg, typ: TYP, ...(KID[alg] ? { kid: KID[alg] } : {}) })),
      {
        alg: fc.constantFrom(...ALGORITHMS, 'none', 'None', 'HS1', 'RS512', 'ES512', ''),
        typ: fc.constantFrom(`application/${TYP}`, TYP.toUpperCase(), 'JWT', '', 'omnisci-revoke+jwt', 'application/jwt'),
        kid: fc.constantFrom('p256', 'p384', 'ed', 'nope', ''),
        crit: fc.constantFrom(['b64'], ['exp'], [], ['x-unknown'], 'b64'),
        b64: fc.boolean(),
        jku: fc.constant('http://127.0.0.1:9/jwks.json'),
        x5u: fc.constant('http://127.0.0.1:9/cert.pem'),
        jwk: fc.constant(jwk(pairs.p256.publicKey, { kid: 'attacker' })),
        x5c: fc.constant(['MIIB']),
        zip: fc.constant('DEF'),
        cty: fc.constantFrom('JWT', 'json'),
      },
    ),
  },
  { weight: 1, arbitrary: anyJson },
);

const sessionId = fc.stringMatching(/^[A-Za-z0-9]{32}$/);
const omnisciArb = fc.oneof(
  {
    weight: 10,
    arbitrary: mutated(
      fc.record(
        {
          session: sessionId,
          protocol: fc.constantFrom('binary', 'http', 'https'),
          host: fc.constantFrom('omnisci.test', 'eu.db.test', 'A.B.DB.TEST'),
          port: fc.constantFrom(443, 6274, 6278),
          database: fc.string({ maxLength: 10 }).filter((d) => !/[\u0000-\u001f]/.test(d)),
          query: fc.string({ maxLength: 40 }),
        },
        { requiredKeys: ['session'] },
      ),
      {
        session: fc.oneof(weirdString, fc.stringMatching(/^[A-Za-z0-9]{31,33}$/)),
        protocol: fc.constantFrom('HTTPS', 'ftp', ''),
        host: fc.constantFrom('evil.test', 'db.test', '[::1]', 'evildb.test', 'a/b', 'x'.repeat(254), ''),
        port: fc.constantFrom(22, 0, 65536, 443.5, -1, '443'),
        database: fc.constantFrom('a\u0001b', 'x'.repeat(257), ''),
        query: fc.constantFrom('x'.repeat(8193), '', 'SELECT \u0000'),
      },
    ),
  },
  { weight: 1, arbitrary: anyValue },
);

const subArb = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('alice', 'Ünïcødé@Example.com', 'user@email.com', 'a--b', 'x'.repeat(255)) },
  { weight: 4, arbitrary: fc.stringMatching(/^[a-z][a-z0-9._@-]{0,15}$/) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 16 }) },
);

const claimsArb = fc.oneof(
  {
    weight: 12,
    arbitrary: fc
      .record({
        age: fc.integer({ min: -60, max: 20 }),
        life: fc.integer({ min: 1, max: 300 }),
        sub: subArb,
        jti: fc.uuid(),
        omnisci: omnisciArb,
        aud: fc.constantFrom<unknown>(AUDIENCE, [AUDIENCE, 'other']),
      })
      .chain(({ age, life, sub, jti, omnisci, aud }) => {
        const iat = now() + age;
        const t = now();
        return mutated(fc.constant({ iss: ISSUER, aud, sub, iat, exp: iat + life, jti, omnisci }), {
          iss: fc.constantFrom('https://evil.test', `${ISSUER}/`, ''),
          aud: fc.constantFrom<unknown>('other', ['other'], [], [AUDIENCE.toUpperCase()], { aud: AUDIENCE }),
          sub: fc.oneof(weirdString, fc.constantFrom('x'.repeat(256), 'a/b', ' alice', '..')),
          iat: fc.constantFrom(t + 120, t - 400, t + 0.5, -1, 1e308, `${t}`, null),
          exp: fc.constantFrom(t - 100, t + 301, t + 1e9, 1e308, `${t + 60}`, null, t),
          nbf: fc.constantFrom(t + 120, t - 10, `${t}`, null),
          jti: fc.constantFrom('short', 'x'.repeat(257), 'has space in it', 'é-not-ascii-jti', 12345678),
          omnisci: fc.constantFrom<unknown>(null, {}, [], 'session', { session: 'A'.repeat(32), extra: 1 }),
          email: fc.constantFrom('jane@corp.test', 'x'),
        });
      }),
  },
  { weight: 1, arbitrary: anyJson },
);

/** What the verifier said: 'accepted' or the HandoffError code; anything else (a plain Error, a 5xx) fails the property. */
async function verdict(p: Promise<unknown>, label: string): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    if (!(e instanceof HandoffError)) throw new Error(`${label}: threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    if (e.status >= 500) throw new Error(`${label}: HandoffError ${e.code} with status ${e.status}`);
    if (!ERROR_CODES.has(e.code)) throw new Error(`${label}: unknown code ${e.code}`);
    return e.code;
  }
}

describe('1a. verifier: random headers, claims and encodings never give a 5xx', () => {
  let v: Verifier;
  let config: Config;
  const seen = new Map<string, number>();
  const tally = (code: string) => seen.set(code, (seen.get(code) ?? 0) + 1);

  beforeAll(async () => {
    const dir = tempDir('oh-prop-keys-');
    // Every algorithm, every kind of key source: an HMAC secret, a PEM (no alg, thumbprint kid), a JWK and a JWKS.
    const files = [
      writeFile(dir, 'rsa.pem', pairs.rsa.publicKey.export({ format: 'pem', type: 'spki' }).toString()),
      writeFile(dir, 'p256.jwk', JSON.stringify(jwk(pairs.p256.publicKey, { kid: 'p256', alg: 'ES256' }))),
      writeFile(dir, 'keys.json', JSON.stringify({ keys: [jwk(pairs.p384.publicKey, { kid: 'p384' }), jwk(pairs.ed.publicKey, { kid: 'ed', alg: 'EdDSA' })] })),
    ];
    config = testConfig({ token: { algorithms: [...ALGORITHMS], keys: { hmacSecretEnv: 'TEST_HMAC', publicKeyFiles: files } } });
    v = createVerifier(config, await keySourcesFromConfig(config.token.keys, { TEST_HMAC: HMAC_SECRET }));
  });

  afterAll(() => {
    console.log(`verifier outcomes: ${JSON.stringify(Object.fromEntries([...seen].sort((a, b) => b[1] - a[1])))}`);
  });

  test('validly signed tokens with random headers and claims: accepted, or a HandoffError < 500 (handoff and revocation)', async () => {
    await fc.assert(
      fc.asyncProperty(headerArb, claimsArb, fc.constantFrom<string | undefined>(undefined, undefined, undefined, 'HS256', 'ES256'), async (header, claims, sigAlg) => {
        count('verifier: signed random header × claims (handoff + revocation)');
        const token = signedToken(header, claims, sigAlg);
        const code = await verdict(v.verifyHandoff(token), 'verifyHandoff');
        tally(code);
        if (code === 'accepted') {
          const h = await v.verifyHandoff(token);
          expect(typeof h.user).toBe('string');
          expect(usernameProblem(h.user)).toBeUndefined();
          expect(h.session).toMatch(new RegExp(config.token.sessionPattern, 'u'));
          expect(h.exp - h.iat).toBeLessThanOrEqual(config.token.maxLifetimeSeconds);
        }
        // The same token as a revocation, and as a revocation typ (both must be refused or accepted cleanly).
        await verdict(v.verifyRevocation(token), 'verifyRevocation');
        const revHeader = header && typeof header === 'object' && !Array.isArray(header) ? { ...header, typ: config.token.revokeType } : header;
        await verdict(v.verifyRevocation(signedToken(revHeader, claims, sigAlg)), 'verifyRevocation (revoke typ)');
      }),
      { numRuns: 1000 },
    );
    // The generators reach every stage (would fail if they only ever produced token_malformed).
    expect(seen.get('accepted') ?? 0).toBeGreaterThan(20);
    // (Only stages reached dozens of times per run are asserted, so that no seed makes this flaky.)
    for (const stage of ['token_malformed', 'alg_not_allowed', 'typ_not_allowed', 'unknown_key', 'bad_signature', 'bad_issuer', 'bad_audience', 'claims_invalid'])
      expect([stage, seen.get(stage) ?? 0]).not.toEqual([stage, 0]);
  });

  test('random strings, base64url segments, unsigned and non-string tokens: a HandoffError < 500', async () => {
    const seg = fc.oneof(
      fc.uint8Array({ maxLength: 64 }).map((b) => b64u(Buffer.from(b))),
      anyJson.map((j) => b64u(JSON.stringify(j))),
      fc.stringMatching(/^[A-Za-z0-9_-]{0,40}$/),
    );
    const raw = fc.oneof(
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.tuple(seg, seg, seg).map((s) => s.join('.')),
      fc.array(seg, { minLength: 1, maxLength: 6 }).map((s) => s.join('.')),
      fc.tuple(headerArb, claimsArb, seg).map(([h, c, s]) => `${b64u(JSON.stringify(h))}.${b64u(JSON.stringify(c))}.${s}`),
      fc.integer({ min: 16_000, max: 40_000 }).map((n) => `${'a'.repeat(n)}.b.c`),
      fc.anything(),
    );
    await fc.assert(
      fc.asyncProperty(raw, async (token) => {
        count('verifier: random strings / segments / non-strings');
        await verdict(v.verifyHandoff(token), 'verifyHandoff');
        await verdict(v.verifyRevocation(token), 'verifyRevocation');
      }),
      { numRuns: 1000 },
    );
  });
});

// ----- 1b. HTTP -----

interface Reply {
  status: number;
  type: string;
  body: string;
}

function send(port: number, method: string, path: string, headers: Record<string, string>, body?: string | Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    // The server may answer before reading a large body it does not want, then close: the client's write is reset.
    req.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' || e.code === 'EPIPE' ? resolve({ status: 0, type: '', body: '' }) : reject(e)));
    req.setTimeout(15_000, () => req.destroy(new Error(`no answer to ${method} ${path}`)));
    req.end(body);
  });
}

/** Percent-encodes anything (lone surrogates included, which encodeURIComponent refuses). */
const enc = (s: string) => encodeURIComponent(s.replace(/[\uD800-\uDFFF]/gu, '\uFFFD'));
const malformedPct = fc.constantFrom('%', '%z', '%zz', '%E0%A4%A', '%C0%AF', '%00', '%ff', '%ED%A0%80', '%2e%2e', '%2F');
const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 40 });
/** Tokens small enough for a header or a URL (Node itself answers 431 past 16 KiB of headers, before the app). */
const smallToken = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(headerArb, claimsArb).map(([h, c]) => signedToken(h, c)) },
  { weight: 1, arbitrary: weirdString },
  { weight: 1, arbitrary: fc.constantFrom('', 'a.b.c') },
);
const tokenValue = fc.oneof({ weight: 8, arbitrary: smallToken }, { weight: 1, arbitrary: fc.constant('x'.repeat(40_000)) });
const segment = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('handoff', 'revoke', 'healthz', 'readyz', 'metrics', 'dev', 'demo', 'progress', 'events', 'go', 'retry', 'login-token', 'exchange', 'oauth_callback', 'HANDOFF') },
  { weight: 1, arbitrary: fc.constantFrom('', '.', '..', '%2e%2e', ';', 'handoff;x') },
  { weight: 2, arbitrary: malformedPct },
  { weight: 2, arbitrary: weirdString.map(enc) },
);
const pathArb = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => `/${s.join('/')}`);
const queryArb = fc.array(
  fc.tuple(
    fc.oneof(fc.constantFrom('token', 'token', 'state', 'code', 'error', 'token[]', 'token[a]'), weirdString.map(enc)),
    fc.oneof(smallToken.map(enc), malformedPct, weirdString.map(enc)),
  ),
  { maxLength: 3 },
).map((kv) => kv.map(([k, v]) => `${k}=${v}`).join('&'));
const formBody = fc
  .array(fc.tuple(fc.oneof(fc.constantFrom('token', 'token', 'token', 'other'), weirdString), tokenValue), { maxLength: 12 })
  .map((kv) => {
    const p = new URLSearchParams();
    for (const [k, v] of kv) p.append(k.replace(/[\uD800-\uDFFF]/gu, '?'), v.replace(/[\uD800-\uDFFF]/gu, '?'));
    return p.toString();
  });
const bodyArb = fc.oneof(
  { weight: 4, arbitrary: formBody },
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
  { weight: 1, arbitrary: fc.constantFrom('token=%', 'token=%zz&token=%E0%A4%A', '%%%', '=&=&', 'token', '{"token": "a.b.c"}', `token=${'a'.repeat(70_000)}`) },
  { weight: 1, arbitrary: anyJson.map((j) => JSON.stringify(j)) },
);
const contentType = fc.oneof(
  { weight: 4, arbitrary: fc.constant('application/x-www-form-urlencoded') },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'application/x-www-form-urlencoded; charset=utf-8',
      'application/x-www-form-urlencoded; charset=latin1',
      'application/x-www-form-urlencoded; charset=bogus-7',
      'APPLICATION/X-WWW-FORM-URLENCODED',
      'application/json',
      'text/plain',
      'multipart/form-data; boundary=x',
      'multipart/form-data',
      '',
      ';',
      'application/x-www-form-urlencoded;;;',
    ),
  },
  { weight: 1, arbitrary: printable },
);
const randomRequest = fc.record({
  method: fc.constantFrom('GET', 'GET', 'POST', 'POST', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'),
  path: fc.oneof({ weight: 3, arbitrary: fc.constantFrom('/handoff', '/revoke') }, { weight: 2, arbitrary: pathArb }),
  query: fc.option(queryArb, { nil: undefined }),
  contentType: fc.option(contentType, { nil: undefined }),
  // Valid gzip, identity, or codings the body parser does not support (undecodable bodies: a test of their own below).
  encoding: fc.option(fc.constantFrom('gzip', 'identity', 'compress', 'bogus'), { nil: undefined, freq: 6 }),
  accept: fc.oneof({ weight: 6, arbitrary: fc.constant('application/json') }, { weight: 1, arbitrary: fc.constantFrom('text/html', '*/*', 'application/json;q=0', '') }, { weight: 1, arbitrary: printable }),
  authorization: fc.option(fc.oneof(smallToken.map((t) => `Bearer ${t.replace(/[^\x20-\x7e]/g, '')}`), printable), { nil: undefined, freq: 4 }),
  requestId: fc.option(printable, { nil: undefined, freq: 4 }),
  body: fc.option(bodyArb, { nil: undefined, freq: 8 }),
});
type Req = typeof randomRequest extends fc.Arbitrary<infer T> ? T : never;
/** Handoffs as issuers send them (form POST, or GET ?token=), with a token from the signed generators, and random extras. */
const goodToken = fc
  .tuple(fc.constantFrom(...ALGORITHMS), subArb, sessionId, fc.uuid(), fc.string({ maxLength: 30 }))
  .map(([alg, sub, session, jti, query]) =>
    signedToken({ alg, typ: TYP, ...(KID[alg] ? { kid: KID[alg] } : {}) }, { iss: ISSUER, aud: AUDIENCE, sub, iat: now(), exp: now() + 60, jti, omnisci: { session, query } }),
  );
const handoffRequest: fc.Arbitrary<Req> = fc
  .tuple(randomRequest, fc.oneof(goodToken, smallToken), fc.boolean(), fc.array(fc.tuple(fc.constantFrom('other', 'x', 'token'), weirdString), { maxLength: 2 }))
  .map(([r, token, post, extra]) => {
    const form = new URLSearchParams({ token });
    for (const [k, v] of extra) form.append(k, v.replace(/[\uD800-\uDFFF]/gu, '?'));
    return post
      ? { ...r, method: 'POST', path: '/handoff', query: undefined, contentType: 'application/x-www-form-urlencoded', body: form.toString() }
      : { ...r, method: 'GET', path: '/handoff', query: `token=${enc(token)}` };
  });
const requestArb = fc.oneof({ weight: 2, arbitrary: handoffRequest }, { weight: 3, arbitrary: randomRequest });

/** A connection reset instead of a response is only fine for a body the server need not read (Node answers first). */
function checkReset(r: Req, reply: Reply): void {
  if (reply.status === 0) expect([r.method, r.path, Buffer.byteLength(r.body ?? '') >= 16_384]).toEqual([r.method, r.path, true]);
}

async function fire(port: number, r: Req): Promise<Reply> {
  const headers: Record<string, string> = { accept: r.accept };
  if (r.contentType !== undefined) headers['content-type'] = r.contentType;
  if (r.encoding !== undefined) headers['content-encoding'] = r.encoding;
  if (r.authorization !== undefined) headers.authorization = r.authorization;
  if (r.requestId !== undefined) headers['x-request-id'] = r.requestId;
  let body: string | Buffer | undefined = r.body;
  if (r.encoding === 'gzip' && r.method !== 'GET' && r.method !== 'HEAD') body = gzipSync(body ?? '');
  return send(port, r.method, r.query === undefined ? r.path : `${r.path}?${r.query}`, headers, r.method === 'GET' || r.method === 'HEAD' ? undefined : body);
}

/**
 * Node's own HTTP parser answers some malformed exchanges itself (431 for oversized headers, 400 when it
 * gives up on a connection), before any of the service's code runs: an empty body without a content type.
 */
const nodeLevel = (reply: Reply) => reply.status >= 400 && reply.status < 500 && reply.body === '' && reply.type === '';

/** The error code a response carries: JSON `error`, or the HTML error page's `Error code <code>…</code>`. */
function errorCode(reply: Reply): string | undefined {
  if (reply.type.startsWith('application/json')) {
    try {
      const e = (JSON.parse(reply.body) as { error?: unknown }).error;
      return typeof e === 'string' ? e : undefined;
    } catch {
      return undefined;
    }
  }
  return /Error code <code>([a-z_]+)<\/code>/.exec(reply.body)?.[1];
}

describe('1b. HTTP: random requests never get a 5xx, and every error carries a stable code', () => {
  let svc: TestService;
  let hubSvc: TestService;
  const odd = new Map<string, number>();

  beforeAll(async () => {
    svc = await startTestService(testConfig({ store: { local: { dir: tempDir('oh-prop-http-') } }, log: { level: 'silent' } }));
    // The hub integration's routes too (progress pages, login-token exchange, OAuth callback); its hub is a closed port.
    const closed = await freePort();
    const env = { TEST_HMAC: HMAC_SECRET, JUPYTERHUB_API_TOKEN: 'service-token-for-fuzz' };
    hubSvc = await startTestService(
      testConfig(
        {
          store: { local: { dir: tempDir('oh-prop-hub-') } },
          log: { level: 'silent' },
          hub: { enabled: true, apiUrl: `http://127.0.0.1:${closed}/hub/api`, requestTimeoutMs: 300, retries: 0, identityCheck: true, oauthClientId: 'service-omnisci-handoff', loginMode: 'handoff' },
        },
        env,
      ),
      { env },
    );
  });
  afterAll(async () => {
    await svc?.close();
    await hubSvc?.close();
    if (odd.size) console.log(`responses >= 400 without an ERRORS code (documented exceptions): ${JSON.stringify(Object.fromEntries(odd))}`);
  });

  test('local-store service: status < 500; every 4xx names an error code of src/errors.ts', async () => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(requestArb, async (r) => {
        count('http: random requests, local store');
        const reply = await fire(svc.port, r);
        statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
        checkReset(r, reply);
        expect([r.method, r.path, reply.status < 500 ? 'ok' : `${reply.status} ${reply.body.slice(0, 200)}`]).toEqual([r.method, r.path, 'ok']);
        if (reply.status >= 400 && r.method !== 'HEAD' && !nodeLevel(reply))
          expect([r.method, r.path, reply.status, ERROR_CODES.has(errorCode(reply) ?? '')]).toEqual([r.method, r.path, reply.status, true]);
        // The same request on the internal listener (probes, metrics), when this build has one.
        const internal = (svc as { internalUrl?: string }).internalUrl;
        if (internal) {
          const ir = await fire(Number(new URL(internal).port), r);
          checkReset(r, ir);
          expect([r.method, r.path, 'internal', ir.status < 500 ? 'ok' : `${ir.status} ${ir.body.slice(0, 200)}`]).toEqual([r.method, r.path, 'internal', 'ok']);
          // Its own codes (not_found, method_not_allowed), unless Node's parser answered before it (431 for a long request line).
          if (ir.status >= 400 && r.method !== 'HEAD' && !nodeLevel(ir)) expect([...ERROR_CODES]).toContain(errorCode(ir));
        }
      }),
      { numRuns: 400 },
    );
    console.log(`http statuses (local store): ${JSON.stringify(Object.fromEntries(statuses))}`);
    // The generator reaches stored handoffs (303) and refusals alike.
    expect(statuses.get(303) ?? 0).toBeGreaterThan(0);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(0);
  });

  test('hub-integration routes: status < 500 except handoffs and readiness, which say hub_unavailable (the hub is down here)', async () => {
    await fc.assert(
      fc.asyncProperty(requestArb, fc.constantFrom('/progress/', '/progress/x/', '/login-token/exchange', '/oauth_callback', ''), async (r, prefix) => {
        count('http: random requests, hub integration routes');
        const path = prefix === '' ? r.path : prefix.endsWith('/') ? `${prefix.slice(0, -1)}${r.path}` : prefix;
        const req = { ...r, path };
        const reply = await fire(hubSvc.port, req);
        checkReset(req, reply);
        const code = errorCode(reply);
        if (reply.status >= 500) expect([req.method, req.path, reply.status, code]).toEqual([req.method, req.path, expect.any(Number), 'hub_unavailable']);
        if (reply.status >= 400 && req.method !== 'HEAD' && !nodeLevel(reply) && !ERROR_CODES.has(code ?? '')) {
          // Known: the progress routes' 404 page ("This page has expired") and the exchange's {error: 'forbidden'}.
          const where = /\/progress\//i.test(req.path) ? 'progress 404 page' : /login-token\/exchange/i.test(req.path) ? `exchange ${code}` : `${req.method} ${req.path} ${reply.status}`;
          odd.set(where, (odd.get(where) ?? 0) + 1);
          expect(['progress 404 page', 'exchange forbidden']).toContain(where);
        }
      }),
      { numRuns: 250 },
    );
  });

  test('a request body that does not decompress (Content-Encoding gzip/deflate/br) is a 400 bad_request', async () => {
    const bodies: [string, string | Buffer][] = [
      ['gzip', ''],
      ['gzip', 'token=not-gzip'],
      ['gzip', gzipSync('token=abc').subarray(0, 12)],
      ['deflate', 'garbage'],
      ['br', 'garbage'],
    ];
    for (const path of ['/handoff', '/revoke'])
      for (const [encoding, body] of bodies) {
        count('http: undecodable compressed bodies');
        const reply = await send(svc.port, 'POST', path, { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': encoding }, body);
        expect([path, encoding, reply.status, errorCode(reply)]).toEqual([path, encoding, 400, 'bad_request']);
      }
  });

  test('a malformed percent-encoding in a progress id is a 400 bad_request', async () => {
    for (const id of ['%', '%zz', '%E0%A4%A']) {
      const reply = await send(hubSvc.port, 'GET', `/progress/${id}`, { accept: 'application/json' });
      expect([id, reply.status, errorCode(reply)]).toEqual([id, 400, 'bad_request']);
    }
  });

  test('a signed token whose sub has a lone surrogate is a 400 bad_username, never stored', async () => {
    const key = { alg: 'HS256', typ: TYP };
    const claims = (sub: string) => ({ iss: ISSUER, aud: AUDIENCE, sub, iat: now(), exp: now() + 60, jti: `j-${Math.random()}`, omnisci: { session: 'A'.repeat(32) } });
    // Two different users: each handoff is stored (303) or its name refused (bad_username), never a 5xx.
    for (const sub of ['lone\uD800', 'lone\uDBFF']) {
      const res = await postToken(svc.url, signedToken(key, claims(sub)), { accept: 'application/json' });
      const error = res.status === 303 ? undefined : ((await res.json()) as { error?: string }).error;
      expect([sub, res.status, error]).toEqual([sub, 400, 'bad_username']);
    }
  });
});

// ----- 2. the webhook's patch -----

const SESSION_DIR = '/var/run/omnisci-handoff';
const JUPYTER_DIR = '/etc/omnisci-handoff/jupyter';
const ABSENT = Symbol('absent');
type Maybe<T> = T | null | typeof ABSENT;

const userName = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('alice', 'Alice.Smith@Example.com', 'ünïcødé', 'a~b/c', '123', 'x'.repeat(70), 'a--b', 'a---b') },
  { weight: 3, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }) },
  { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 20 }) },
);
const envName = fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,12}$/);
const jcpValue = fc.constantFrom('', ':', '/opt/conf', JUPYTER_DIR, `${JUPYTER_DIR}/`, `/opt/a:${JUPYTER_DIR.replace('/jupyter', '//jupyter')}`, '/etc/jupyter:/usr/local/etc/jupyter', `${JUPYTER_DIR}/..`);
const envEntry = fc.oneof(
  fc.record({ name: fc.constant('JUPYTER_CONFIG_PATH'), value: jcpValue }),
  fc.record({ name: fc.constant('JUPYTER_CONFIG_PATH'), valueFrom: fc.constant({ configMapKeyRef: { name: 'cm', key: 'path' } }) }),
  fc.record({ name: fc.constantFrom('OMNISCI_HOST', 'OMNISCI_PORT', 'OMNISCI_PROTOCOL'), value: fc.string({ maxLength: 10 }) }),
  fc.record({ name: fc.constantFrom('OMNISCI_HOST', 'OMNISCI_PORT'), valueFrom: fc.constant({ configMapKeyRef: { name: 'omnisci', key: 'x' } }) }),
  fc.record({ name: envName, value: fc.string({ maxLength: 10 }) }),
);
const mountPath = fc.oneof(
  fc.constantFrom('/home/jovyan', SESSION_DIR, `${SESSION_DIR}/`, '/var/run//omnisci-handoff', `${SESSION_DIR}/.`, JUPYTER_DIR, `${JUPYTER_DIR}/`, '/var/run', '/etc', '/data'),
  fc.stringMatching(/^\/[a-z]{1,6}(\/[a-z]{1,6}){0,2}$/),
);
const volumeName = fc.oneof(fc.constantFrom(SESSION_VOLUME, JUPYTER_VOLUME, 'home', 'admin-session'), fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/));
const norm = (p: string) => posix.normalize(`${p}/`);
const mountsArb = fc.uniqueArray(fc.record({ name: volumeName, mountPath, readOnly: fc.boolean() }), { selector: (m) => norm(m.mountPath), maxLength: 5 });
const volumesArb = fc.uniqueArray(
  fc.oneof(
    volumeName.map((name) => ({ name, emptyDir: {} })),
    volumeName.map((name) => ({ name, secret: { secretName: 'admin-owned' } })),
  ),
  { selector: (v) => v.name, maxLength: 4 },
);
const maybe = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<Maybe<T>> =>
  fc.oneof({ weight: 1, arbitrary: fc.constant<typeof ABSENT>(ABSENT) }, { weight: 1, arbitrary: fc.constant(null) }, { weight: 4, arbitrary: a });

const podArb = fc
  .record({
    user: userName,
    server: fc.constantFrom('', '', 'gpu'),
    env: maybe(fc.uniqueArray(envEntry, { selector: (e) => e.name, maxLength: 6 })),
    mounts: maybe(mountsArb),
    volumes: maybe(volumesArb),
    fsGroup: fc.oneof(fc.constant<typeof ABSENT>(ABSENT), fc.constant(null), fc.integer({ min: 0, max: 65535 })),
    securityContext: fc.constantFrom('set', 'absent', 'null'),
    notebook: fc.constantFrom('notebook', 'notebook', 'notebook', 'notebook', 'lab', 'none'),
    sidecarsBefore: fc.integer({ min: 0, max: 2 }),
    sidecarsAfter: fc.integer({ min: 0, max: 1 }),
    matching: fc.constantFrom('yes', 'yes', 'yes', 'yes', 'hub-pod', 'no-annotation', 'empty-annotation'),
    secretAnnotation: fc.constantFrom('absent', 'absent', 'right', 'wrong'),
  })
  .map((o) => {
    const pod = kubespawnerPod({ user: o.user, server: o.server, bare: true });
    const sidecar = (i: number) => ({ name: `sidecar-${i}`, image: 'example/sidecar:1', env: [{ name: 'JUPYTER_CONFIG_PATH', value: '/x' }] });
    const nb = pod.spec.containers[0] as Record<string, unknown>;
    const set = (target: Record<string, unknown>, key: string, v: Maybe<unknown>) => {
      if (v !== ABSENT) target[key] = v;
    };
    set(nb, 'env', o.env);
    set(nb, 'volumeMounts', o.mounts);
    set(pod.spec, 'volumes', o.volumes);
    if (o.notebook === 'lab') nb.name = 'lab';
    const containers: unknown[] = o.notebook === 'none' ? [] : [nb];
    for (let i = 0; i < o.sidecarsBefore; i++) containers.unshift(sidecar(i));
    for (let i = 0; i < o.sidecarsAfter; i++) containers.push(sidecar(10 + i));
    pod.spec.containers = containers;
    if (o.securityContext === 'absent') delete pod.spec.securityContext;
    else if (o.securityContext === 'null') pod.spec.securityContext = null;
    else pod.spec.securityContext = o.fsGroup === ABSENT ? {} : { fsGroup: o.fsGroup };
    if (o.matching === 'hub-pod') pod.metadata.labels.component = 'hub';
    if (o.matching === 'no-annotation') delete pod.metadata.annotations['hub.jupyter.org/username'];
    if (o.matching === 'empty-annotation') pod.metadata.annotations['hub.jupyter.org/username'] = '';
    if (o.secretAnnotation === 'right') pod.metadata.annotations[POD_SECRET_ANNOTATION] = secretName('omnisci-session', o.user);
    if (o.secretAnnotation === 'wrong') pod.metadata.annotations[POD_SECRET_ANNOTATION] = 'omnisci-session-someone-else';
    return pod;
  });

function webhookConfig(raw: Record<string, unknown> = {}): Config {
  return resolveConfig(
    {
      token: { issuer: 'immerse', audience: 'jupyterhub', algorithms: ['HS256'], keys: { hmacSecretEnv: 'TEST_HMAC' } },
      store: { backend: 'kubernetes', kubernetes: { namespace: 'hub' } },
      ...raw,
    },
    { TEST_HMAC: 'x'.repeat(32) },
  );
}

const dups = (xs: string[]) => xs.filter((x, i) => xs.indexOf(x) !== i);

/** Admits a pod the way the API server does: the patch as JSON, applied with validation, then admitted again. */
function admitTwice(pod: Record<string, any>, config: Config) {
  const spec = injectionSpec(config);
  const first = podPatch(structuredClone(pod), spec);
  const ops = JSON.parse(JSON.stringify(first.ops)) as fastJsonPatch.Operation[];
  const once = fastJsonPatch.applyPatch(structuredClone(pod), ops, true, false).newDocument as Record<string, any>;
  const second = podPatch(structuredClone(once), spec);
  const twice = fastJsonPatch.applyPatch(structuredClone(once), JSON.parse(JSON.stringify(second.ops)) as fastJsonPatch.Operation[], true, false).newDocument;
  return { first, once, second, twice };
}

/** Duplicates in what matters to Kubernetes, restricted to the notebook container and the pod's volumes. */
function duplicates(pod: Record<string, any>, containerName: string) {
  const c = (pod.spec?.containers ?? []).find((x: any) => x?.name === containerName);
  return {
    env: dups((Array.isArray(c?.env) ? c.env : []).map((e: any) => e.name)),
    mountPaths: dups((Array.isArray(c?.volumeMounts) ? c.volumeMounts : []).map((m: any) => norm(m.mountPath))),
    volumes: dups((Array.isArray(pod.spec?.volumes) ? pod.spec.volumes : []).map((v: any) => v.name)),
  };
}

describe('2. webhook: random KubeSpawner pods give a patch that applies cleanly and is idempotent', () => {
  const config = webhookConfig();
  const outcomes = new Map<string, number>();
  afterAll(() => console.log(`webhook outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`));

  test('apply once = apply twice; nothing duplicated; the notebook container gets the session', () => {
    fc.assert(
      fc.property(podArb, (pod) => {
        count('webhook: random pods');
        const { first, once, second, twice } = admitTwice(pod, config);
        outcomes.set(first.outcome, (outcomes.get(first.outcome) ?? 0) + 1);
        expect(second.ops).toEqual([]);
        expect(second.outcome).toBe(first.outcome === 'patched' ? 'unchanged' : first.outcome);
        expect(twice).toEqual(once);
        expect(duplicates(once, 'notebook')).toEqual({ env: [], mountPaths: [], volumes: [] });
        if (first.outcome !== 'patched' && first.outcome !== 'unchanged') {
          expect(once).toEqual(pod);
          return;
        }
        // What the feature is for: references to the user's Secret and the Jupyter config, never a literal.
        const user = pod.metadata.annotations['hub.jupyter.org/username'] as string;
        const secret = secretName('omnisci-session', user);
        expect(once.metadata.annotations[POD_SECRET_ANNOTATION]).toBe(secret);
        const nb = once.spec.containers.find((c: any) => c.name === 'notebook');
        const env = new Map<string, any>(nb.env.map((e: any) => [e.name, e]));
        for (const name of ['OMNISCI_PROTOCOL', 'OMNISCI_HOST', 'OMNISCI_PORT']) expect(env.has(name)).toBe(true);
        const jcp = env.get('JUPYTER_CONFIG_PATH');
        if (typeof jcp.value === 'string') expect(jcp.value.split(':').some((p: string) => p && norm(p) === norm(JUPYTER_DIR))).toBe(true);
        // A mount at each directory (the admin's or ours), unless the admin already uses our volume's name elsewhere.
        for (const [dir, volume] of [[SESSION_DIR, SESSION_VOLUME], [JUPYTER_DIR, JUPYTER_VOLUME]] as const)
          expect(nb.volumeMounts.some((m: any) => norm(m.mountPath) === norm(dir) || m.name === volume)).toBe(true);
        // Other containers are untouched.
        expect(once.spec.containers.filter((c: any) => c.name !== 'notebook')).toEqual(pod.spec.containers.filter((c: any) => c.name !== 'notebook'));
      }),
      { numRuns: 800 },
    );
    expect(outcomes.get('patched') ?? 0).toBeGreaterThan(100);
  });

  test('configs the loader accepts never make the webhook add duplicate mount paths or env names', () => {
    const dirs = [SESSION_DIR, JUPYTER_DIR, '/etc/x', '/etc/x/'];
    const names = ['OMNISCI_HOST', 'OMNISCI_PORT', 'OMNISCI_PROTOCOL', 'JUPYTER_CONFIG_PATH', 'OMNISCI_DB'];
    fc.assert(
      fc.property(
        fc.record({ protocol: fc.constantFrom(...names), host: fc.constantFrom(...names), port: fc.constantFrom(...names) }),
        fc.constantFrom(...dirs),
        fc.constantFrom(...dirs),
        podArb,
        (env, sessionDir, jupyterConfigDir, pod) => {
          let config: Config;
          try {
            config = webhookConfig({ notebook: { env, sessionDir }, webhook: { jupyterConfigDir } });
          } catch (e) {
            if (e instanceof ConfigError) return; // refused at start: fine
            throw e;
          }
          count('webhook: random notebook/webhook configs × pods');
          const { second, once } = admitTwice(pod, config);
          expect(second.ops).toEqual([]);
          expect([env, sessionDir, jupyterConfigDir, duplicates(once, 'notebook')]).toEqual([env, sessionDir, jupyterConfigDir, { env: [], mountPaths: [], volumes: [] }]);
        },
      ),
      { numRuns: 300 },
    );
  });
});

// ----- 3. config documents -----

interface Leaf {
  path: string[];
  node: Record<string, any>;
}
/** Every setting of the schema, with its schema node. */
function leaves(node: Record<string, any>, path: string[] = []): Leaf[] {
  if (node.type === 'object' && node.properties) {
    return [{ path, node }, ...Object.entries(node.properties as Record<string, Record<string, any>>).flatMap(([k, n]) => leaves(n, [...path, k]))];
  }
  return [{ path, node }];
}
const LEAVES = leaves(configSchema as unknown as Record<string, any>).filter((l) => l.path.length > 0);

/** A value near what the schema node expects: its type with edge values, an enum member, the wrong type, or anything. */
function nearValue(node: Record<string, any>): fc.Arbitrary<unknown> {
  const near: fc.Arbitrary<unknown>[] = [];
  if (Array.isArray(node.enum)) near.push(fc.constantFrom(...(node.enum as unknown[])), fc.constantFrom('NONE', 'https ', ''));
  if (node.type === 'integer') near.push(fc.integer({ min: (node.minimum as number) - 2, max: (node.maximum as number) + 2 }), fc.constantFrom(0.5, -1, 2 ** 53, '80', NaN));
  if (node.type === 'boolean') near.push(fc.boolean(), fc.constantFrom('true', 0, 1));
  if (node.type === 'string')
    near.push(
      fc.constantFrom('', '/', 'http://x', 'https://hub.test/', 'https://hub.test/?q#f', '([', '^a$', '{username}', '/etc/x', 'constructor', '__proto__', 'S', 'A_B', '*.x.test', 'not a url'),
      weirdString,
    );
  if (node.type === 'array') near.push(fc.array(fc.oneof(fc.constantFrom(...ALGORITHMS), fc.constantFrom('none', '', '*.db.test'), fc.integer({ min: -1, max: 70000 })), { maxLength: 3 }), fc.constant([]));
  if (node.type === 'object') near.push(fc.dictionary(fc.string({ maxLength: 6 }), anyValue, { maxKeys: 3 }), fc.constant({}));
  near.push(anyValue);
  return fc.oneof(...near);
}

function setPath(root: Record<string, unknown>, path: string[], value: unknown): void {
  let o: Record<string, unknown> = root;
  for (const k of path.slice(0, -1)) {
    const next = Object.prototype.hasOwnProperty.call(o, k) ? o[k] : undefined;
    if (!next || typeof next !== 'object' || Array.isArray(next)) setOwn(o, k, {});
    o = o[k] as Record<string, unknown>;
  }
  setOwn(o, path.at(-1)!, value);
}

const validBase = () => ({ token: { issuer: 'i', audience: 'a', algorithms: ['HS256'], keys: { hmacSecretEnv: 'S' } } });
const edit = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...LEAVES).chain((l) => nearValue(l.node).map((v) => ({ path: l.path, v }))) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom(...LEAVES.filter((l) => l.node.type === 'object')), fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('__proto__', 'constructor', 'hmacSecret')), anyValue)
      .map(([l, k, v]) => ({ path: [...l.path, k], v })),
  },
);
const configEnv = fc.oneof(
  fc.constant({ S: HMAC_SECRET }),
  fc.constant({}),
  fc.record(
    { S: fc.oneof(fc.constant(HMAC_SECRET), fc.string()), JUPYTERHUB_SERVICE_PREFIX: fc.oneof(fc.constantFrom('/services/x/', '/x', ''), weirdString), JUPYTERHUB_API_URL: fc.constantFrom('http://hub:8081/hub/api', 'nope'), JUPYTERHUB_API_TOKEN: fc.string(), JUPYTERHUB_CLIENT_ID: fc.constantFrom('service-x', 'x'), JUPYTERHUB_OAUTH_CALLBACK_URL: fc.constantFrom('/services/x/oauth_callback', 'http://[') },
    { requiredKeys: [] },
  ),
);

/** resolveConfig either returns a config or throws a ConfigError listing its problems; anything else fails. */
function loads(raw: unknown, env: NodeJS.ProcessEnv): Config | ConfigError {
  try {
    const c = resolveConfig(raw, env);
    expect(c.listen.basePath.endsWith('/')).toBe(true);
    expect(c.redirect.hubPublicUrl.endsWith('/')).toBe(false);
    return c;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw new Error(`resolveConfig threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    expect(e.problems.length).toBeGreaterThan(0);
    for (const p of e.problems) {
      expect(typeof p.path).toBe('string');
      expect(typeof p.message).toBe('string');
      expect(p.message.length).toBeGreaterThan(0);
    }
    return e;
  }
}

describe('3. config: random documents give a listed error or a valid config', () => {
  test('schema keys with random values, random keys, random documents', () => {
    let accepted = 0;
    fc.assert(
      fc.property(
        fc.oneof(
          { weight: 8, arbitrary: fc.array(edit, { minLength: 1, maxLength: 5 }).map((edits) => {
            const raw: Record<string, unknown> = validBase();
            for (const { path, v } of edits) setPath(raw, path, v);
            return raw as unknown;
          }) },
          { weight: 1, arbitrary: fc.anything() },
          { weight: 1, arbitrary: anyValue },
        ),
        configEnv,
        (raw, env) => {
          count('config: random documents');
          if (loads(raw, env as NodeJS.ProcessEnv) instanceof ConfigError) return;
          accepted++;
        },
      ),
      { numRuns: 1500 },
    );
    expect(accepted).toBeGreaterThan(30);
  });

  test('hmacSecretEnv naming an Object.prototype member is a listed problem, never a crash of key loading', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.constantFrom('constructor', '__proto__', 'toString', 'valueOf', 'hasOwnProperty', 'S'), fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/)),
        fc.boolean(),
        async (name, set) => {
          count('config: hmacSecretEnv names × env');
          const env: NodeJS.ProcessEnv = set ? { [name]: HMAC_SECRET } : {};
          const raw = { token: { issuer: 'i', audience: 'a', algorithms: ['HS256'], keys: { hmacSecretEnv: name } } };
          const c = loads(raw, env);
          if (c instanceof ConfigError) {
            expect(c.problems.map((p) => p.path)).toContain('token.keys.hmacSecretEnv');
            return;
          }
          // Accepted: the key source must then be built without a crash.
          await expect(keySourcesFromConfig(c.token.keys, env)).resolves.toHaveLength(1);
        },
      ),
      { numRuns: 200, examples: [['constructor', false]] },
    );
  });
});

// ----- 4. user names and slugs -----

/** `user` sections as the loader resolves them (defaults filled in). */
const userConfigs = fc
  .record(
    {
      lowercase: fc.boolean(),
      stripEmailDomain: fc.boolean(),
      emailDomains: fc.constantFrom(['example.com'], ['Example.COM', 'corp.test']),
      pattern: fc.constantFrom('^[a-z][a-z0-9._-]*$', '^.+$', '^[^@]+$'),
    },
    { requiredKeys: ['lowercase', 'stripEmailDomain', 'emailDomains'] },
  )
  .map((user) => resolveConfig({ ...validBase(), user }, { S: HMAC_SECRET }).user);
const plainUser = (lowercase: boolean) => resolveConfig({ ...validBase(), user: { lowercase } }, { S: HMAC_SECRET }).user;
const rawName = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.string({ maxLength: 70 }),
  fc.constantFrom(...edgeStrings, 'a'.repeat(255), 'a'.repeat(256), 'User@Example.COM', 'jane@example.com', 'Jane@CORP.test', '@example.com', 'a@', 'a@other.test', 'ＡＢＣ'),
);

/** The mapped name, or undefined when mapUsername refused it with bad_username; anything else fails. */
function mapped(raw: unknown, user: Config['user']): string | undefined {
  try {
    const name = mapUsername({ sub: raw }, user);
    expect(typeof name).toBe('string');
    expect(name.length).toBeGreaterThan(0);
    expect(usernameProblem(name, user.pattern)).toBeUndefined();
    return name;
  } catch (e) {
    if (!(e instanceof HandoffError) || e.code !== 'bad_username') throw new Error(`mapUsername threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    return undefined;
  }
}

const near = fc.oneof(
  // Case variants (meaningful with lowercase: false).
  fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9]{0,10}$/).map((s) => [s, s.toUpperCase(), s.toLowerCase()]),
  // Runs of dashes: '--' is never used as is, '---' separates the hash.
  fc.stringMatching(/^[a-z][a-z0-9]{0,8}$/).map((s) => [`${s}-x`, `${s}--x`, `${s}---x`, `${s}----x`, `${s}-`, `${s}--`]),
  // Long names that differ only at the end (the slug keeps a prefix).
  fc.tuple(fc.stringMatching(/^[a-z][a-z0-9.-]{0,5}$/), fc.integer({ min: 20, max: 240 })).map(([s, n]) => {
    const stem = (s + 'a'.repeat(n)).slice(0, n);
    return [`${stem}1`, `${stem}2`, `${stem}-`, `${stem}.`, `${stem}@`];
  }),
  // Names at the 63-character boundary, digits first, and punctuation that strips to the same letters.
  fc.constant(['a'.repeat(63), 'a'.repeat(64), `${'a'.repeat(62)}-`, '1abc', 'x-1abc', 'x-1abc---0', 'a.b', 'a_b', 'a b', 'a@b', 'a-b', 'ab', 'AB', 'Ab']),
);

describe('4. user names and slugs', () => {
  test('mapUsername: bad_username or a name; safeSlug of any accepted name is a DNS label', () => {
    fc.assert(
      fc.property(fc.oneof({ weight: 9, arbitrary: rawName }, { weight: 1, arbitrary: anyValue }), userConfigs, (raw, user) => {
        count('names: mapUsername + safeSlug');
        const name = mapped(raw, user);
        if (name !== undefined) expect([name, DNS_LABEL.test(safeSlug(name))]).toEqual([name, true]);
      }),
      { numRuns: 3000 },
    );
  });

  test('distinct accepted names give distinct slugs: random pairs and near-collisions', () => {
    const user = plainUser(false);
    const check = (names: readonly string[]) => {
      const accepted = [...new Set(names.map((n) => mapped(n, user)).filter((n): n is string => n !== undefined))];
      const slugs = accepted.map((n) => safeSlug(n));
      for (const s of slugs) expect(s).toMatch(DNS_LABEL);
      expect(new Set(slugs).size).toBe(accepted.length);
    };
    fc.assert(
      fc.property(fc.tuple(rawName, rawName).filter(([a, b]) => wellFormed(a) && wellFormed(b)), ([a, b]) => {
        count('names: distinct random pairs → distinct slugs');
        check([a, b]);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(near, (names) => {
        count('names: near-collision groups → distinct slugs');
        check(names);
      }),
      { numRuns: 1000 },
    );
  });

  test('names that differ only in lone surrogates are refused, so they never share a slug', () => {
    const user = plainUser(true);
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z]{1,8}$/), fc.integer({ min: 0xd800, max: 0xdfff }), fc.integer({ min: 0xd800, max: 0xdfff }), (stem, x, y) => {
        fc.pre(x !== y);
        count('names: lone-surrogate variants');
        const names = [stem + String.fromCharCode(x), stem + String.fromCharCode(y)].map((n) => mapped(n, user));
        // Either refused (not well-formed UTF-16: JupyterHub's Python could not even encode it) or kept apart.
        if (names[0] !== undefined && names[1] !== undefined) expect(safeSlug(names[0])).not.toBe(safeSlug(names[1]));
      }),
      { numRuns: 100 },
    );
  });
});
