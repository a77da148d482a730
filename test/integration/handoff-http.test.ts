/**
 * The HTTP service over real sockets on loopback: transports, responses, headers, revocation,
 * health, metrics, concurrency, and a scan of every log line for secrets.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveConfig } from '../../src/config/load.js';
import { FRAGMENT_SCRIPT, cspHash } from '../../src/web/pages.js';
import { safeSlug } from '../../src/k8s/slug.js';
import {
  AUDIENCE,
  HMAC_SECRET,
  hmacKey,
  ISSUER,
  mint,
  postToken,
  randomSessionId,
  startTestService,
  tempDir,
  testConfig,
  TYP,
  type TestService,
} from '../support/core.js';

const key = hmacKey('HS256');
const secrets: string[] = [HMAC_SECRET];
const services: TestService[] = [];

/** Mints a token and remembers it and its session for the log scan. */
async function token(o: Parameters<typeof mint>[1] = {}): Promise<string> {
  const session = o.omnisci?.session ?? randomSessionId();
  const t = await mint(key, { ...o, omnisci: o.omnisci === null ? null : { ...o.omnisci, session } });
  secrets.push(t, session);
  return t;
}

async function start(overrides: Parameters<typeof testConfig>[0] = {}, env: NodeJS.ProcessEnv = {}): Promise<TestService> {
  const dir = tempDir('oh-http-');
  const s = await startTestService(testConfig({ store: { local: { dir } }, ...overrides }, env));
  services.push(s);
  return s;
}

let svc: TestService;
beforeAll(async () => {
  svc = await start();
});

afterAll(async () => {
  for (const s of services) await s.close();
  // Every log line of every handoff in this file: no token, session id, secret, cookie or authorization value.
  const lines = services.flatMap((s) => s.logs.lines);
  expect(lines.length).toBeGreaterThan(50);
  for (const line of lines) {
    for (const secret of [...secrets, 'cookie-value-0451', 'Bearer-value-0451']) expect(line).not.toContain(secret);
  }
});

const sessionFile = (s: TestService, user: string) =>
  JSON.parse(readFileSync(join(s.config.store.local.dir, 'users', safeSlug(user), 'session'), 'utf8')) as { session: string; query: string };

describe('transports', () => {
  test('POST form: 303 to the lab URL with bare omnisci and reset, session stored', async () => {
    const session = randomSessionId();
    const res = await postToken(svc.url, await token({ omnisci: { session, query: 'SELECT 42' } }), {
      cookie: 'jupyterhub-session-id=cookie-value-0451',
    });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('https://hub.test/user/alice/lab?omnisci&reset');
    expect(sessionFile(svc, 'alice')).toEqual({ session, query: 'SELECT 42' });
  });

  test('GET ?token= (compatibility) works and the token never reaches the access log', async () => {
    const t = await token({ subject: 'gary' });
    const res = await fetch(`${svc.url}handoff?token=${t}`, { redirect: 'manual' });
    expect(res.status).toBe(303);
    const logged = svc.logs.records().filter((r) => (r.req as { url?: string } | undefined)?.url?.startsWith('/handoff?'));
    expect(logged.length).toBeGreaterThan(0);
    for (const r of logged) expect((r.req as { url: string }).url).toBe('/handoff?token=[REDACTED]');
  });

  test('GET without a token serves the fragment page: no token, script allowed by its CSP hash', async () => {
    const res = await fetch(`${svc.url}handoff`);
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain(FRAGMENT_SCRIPT);
    expect(html).toContain('action="/handoff"');
    expect(res.headers.get('content-security-policy')).toContain(cspHash(FRAGMENT_SCRIPT));
    expect(res.headers.get('content-security-policy')).toContain("form-action 'self' https://hub.test");
  });

  test('user names are percent-encoded in the lab URL', async () => {
    const res = await postToken(svc.url, await token({ subject: 'Ünï Cødé@x.test' }));
    expect(res.headers.get('location')).toBe(`https://hub.test/user/${encodeURIComponent('ünï cødé@x.test')}/lab?omnisci&reset`);
  });
});

describe('responses', () => {
  test('security headers on success and failure', async () => {
    for (const res of [await postToken(svc.url, await token()), await postToken(svc.url, 'garbage')]) {
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
      expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  test('errors: JSON for Accept: application/json, HTML otherwise, stable codes, nothing secret', async () => {
    const expired = await token({ iat: Math.floor(Date.now() / 1000) - 1000, lifetimeSeconds: 100 });
    const json = await postToken(svc.url, expired, { accept: 'application/json' });
    expect(json.status).toBe(401);
    const body = (await json.json()) as Record<string, string>;
    expect(body).toMatchObject({ error: 'token_expired' });
    expect(body.message).toMatch(/expired/);
    const html = await postToken(svc.url, expired, { accept: 'text/html' });
    expect(html.headers.get('content-type')).toMatch(/^text\/html/);
    const page = await html.text();
    expect(page).toContain('<code>token_expired</code>');
    expect(page).not.toContain(expired);
    expect(page).not.toContain(expired.split('.')[1]);
  });

  test.each([
    ['token_missing', 400, {}],
    ['bad_signature', 401, { key: hmacKey('HS256', `${HMAC_SECRET}-other`) }],
    ['host_not_allowed', 403, { omnisci: { session: 'A'.repeat(32), host: 'evil.test' } }],
    ['bad_username', 400, { subject: '../x' }],
    ['session_invalid', 400, { omnisci: { session: 'not-a-session' } }],
  ] as const)('%s → HTTP %i', async (code, status, o) => {
    const o2 = o as { key?: ReturnType<typeof hmacKey>; subject?: string; omnisci?: { session: string; host?: string } };
    const t = code === 'token_missing' ? '' : o2.key ? await mint(o2.key, {}) : await token(o2);
    const res = await postToken(svc.url, t, { accept: 'application/json' });
    expect(res.status).toBe(status);
    expect(((await res.json()) as { error: string }).error).toBe(code);
  });

  test('bad_username says why', async () => {
    const res = await postToken(svc.url, await token({ subject: 'a/b' }), { accept: 'application/json' });
    expect(((await res.json()) as { message: string }).message).toContain('Reason: the name contains "/"');
  });

  test('replay → 409 token_replayed; the stored session is untouched', async () => {
    const session = randomSessionId();
    const t = await token({ subject: 'ivy', omnisci: { session } });
    expect((await postToken(svc.url, t)).status).toBe(303);
    const again = await postToken(svc.url, t, { accept: 'application/json' });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: string }).error).toBe('token_replayed');
    expect(sessionFile(svc, 'ivy').session).toBe(session);
  });

  test('an oversize body is refused with 413 token_too_large before parsing', async () => {
    const res = await postToken(svc.url, 'x'.repeat(svc.config.token.maxTokenBytes * 3), { accept: 'application/json' });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toBe('token_too_large');
  });

  test('unknown paths are 404 not_found', async () => {
    const res = await fetch(`${svc.url}nope`, { headers: { accept: 'application/json' } });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: string }).error).toBe('not_found');
  });
});

test('50 concurrent handoffs for one user over HTTP: each jti once, the newest iat wins', async () => {
  const now = Math.floor(Date.now() / 1000);
  const sessions = Array.from({ length: 50 }, () => randomSessionId());
  const tokens = await Promise.all(
    sessions.map((session, i) => token({ subject: 'jane', iat: now - 60 + ((i * 7) % 50), omnisci: { session } })),
  );
  const newest = sessions[tokens.findIndex((_, i) => (i * 7) % 50 === 49)] as string;
  const all = [...tokens, ...tokens.slice(0, 10)];
  const statuses = await Promise.all(all.map((t) => postToken(svc.url, t).then((r) => r.status)));
  expect(statuses.filter((s) => s === 303)).toHaveLength(50);
  expect(statuses.filter((s) => s === 409)).toHaveLength(10);
  expect(sessionFile(svc, 'jane').session).toBe(newest);
});

test('revoke: needs the revocation typ, empties the session', async () => {
  await postToken(svc.url, await token({ subject: 'kim' }));
  const handoffToken = await token({ subject: 'kim' });
  const wrong = await fetch(`${svc.url}revoke`, { method: 'POST', headers: { authorization: `Bearer ${handoffToken}`, accept: 'application/json' } });
  expect(wrong.status).toBe(401);
  expect(((await wrong.json()) as { error: string }).error).toBe('typ_not_allowed');
  const revokeToken = await token({ subject: 'kim', typ: svc.config.token.revokeType, omnisci: null });
  const ok = await fetch(`${svc.url}revoke`, { method: 'POST', headers: { authorization: `Bearer ${revokeToken}` } });
  expect(await ok.json()).toEqual({ revoked: true });
  expect(sessionFile(svc, 'kim')).toEqual({ session: '', query: '' });
});

test('liveness on the public port; readiness and metrics on the internal listener only', async () => {
  expect((await fetch(`${svc.url}healthz`)).status).toBe(200);
  // Nothing anonymous on the public port costs a store or hub call, or reveals the metrics.
  for (const path of ['readyz', 'metrics']) expect((await fetch(`${svc.url}${path}`, { headers: { accept: 'application/json' } })).status).toBe(404);
  expect(svc.internalUrl).not.toBe(svc.url);
  expect((await fetch(`${svc.internalUrl}healthz`)).status).toBe(200);
  expect(await (await fetch(`${svc.internalUrl}readyz`)).json()).toEqual({ status: 'ready' });
  const metrics = await (await fetch(`${svc.internalUrl}metrics`)).text();
  expect(metrics).toMatch(/omnisci_handoff_handoffs_total\{outcome="stored"\} [1-9]/);
  expect(metrics).toMatch(/omnisci_handoff_handoffs_total\{outcome="token_replayed"\} [1-9]/);
  expect(metrics).toContain('omnisci_handoff_handoff_duration_seconds_bucket');
});

test('one audit line per handoff with user, jti, outcome and duration', async () => {
  const s = await start();
  await postToken(s.url, await token({ subject: 'lee', jti: 'audit-jti-1' }));
  await postToken(s.url, await token({ subject: 'lee', issuer: 'https://evil.test' }));
  const audit = s.logs.records().filter((r) => r.event === 'handoff');
  expect(audit).toHaveLength(2);
  expect(audit[0]).toMatchObject({ user: 'lee', jti: 'audit-jti-1', outcome: 'stored' });
  expect(typeof audit[0]?.durationMs).toBe('number');
  expect(audit[1]).toMatchObject({ outcome: 'bad_issuer' });
});

test('routes follow JUPYTERHUB_SERVICE_PREFIX', async () => {
  const s = await start({}, { JUPYTERHUB_SERVICE_PREFIX: '/services/omnisci-handoff/' });
  expect(s.url).toMatch(/\/services\/omnisci-handoff\/$/);
  const res = await postToken(s.url, await token({ subject: 'max' }));
  expect(res.status).toBe(303);
  const root = new URL(s.url);
  expect((await fetch(`${root.origin}/handoff`, { method: 'POST' })).status).toBe(404);
  const page = await (await fetch(`${s.url}handoff`)).text();
  expect(page).toContain('action="/services/omnisci-handoff/handoff"');
});

test('a config without the env prefix keeps "/"', () => {
  const c = resolveConfig({ token: { issuer: ISSUER, audience: AUDIENCE, type: TYP, algorithms: ['HS256'], keys: { hmacSecretEnv: 'S' } } }, { S: HMAC_SECRET });
  expect(c.listen.basePath).toBe('/');
});
