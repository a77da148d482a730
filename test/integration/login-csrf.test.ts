/**
 * Issue 11, findings 4 and 6, against the JupyterHub API stand-in (test/support/hub-standin.ts):
 * the login CSRF defences — a cross-site POST of a handoff is refused unless it comes from an allowed
 * origin; in login mode `handoff` a browser the service does not know as the handed-over user sees
 * a confirmation page naming that user first; the query and fragment transports can be turned off —
 * and one read of the hub's user model per handoff.
 */
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { createLocalStore } from '../../src/store/local.js';
import { hmacKey, mint, postToken } from '../support/core.js';
import { createCipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { NoJsBrowser, startHubService, type HubService } from '../support/hub-service.js';
import { startHubStandin, type HubStandin } from '../support/hub-standin.js';

jest.setTimeout(60_000);
const key = hmacKey('HS256');
let hub: HubStandin;
let svc: HubService;
let lax: HubService;
let strict: HubService;

beforeAll(async () => {
  hub = await startHubStandin({ serviceScopes: ['admin:users', 'admin:servers', 'read:shares'] });
  svc = await startHubService({ hub, hubConfig: { createUsers: true, loginMode: 'handoff' } });
  // An admin who turned the confirmation off; allowed origins configured explicitly.
  lax = await startHubService({
    hub,
    hubConfig: { createUsers: true, loginMode: 'handoff', confirmLogin: false },
    tokenConfig: { allowedOrigins: ['https://immerse.example:8443'] },
  });
  strict = await startHubService({ hub, hubConfig: { createUsers: true }, tokenConfig: { queryTransport: false, fragmentTransport: false } });
});

afterAll(async () => {
  await Promise.all([svc, lax, strict].map((s) => s?.close()));
  await hub?.stop();
});

const errorOf = async (res: Response) => ((await res.json()) as { error: string }).error;

/** What a browser sends when its user clicks a button of a same-origin page (Fetch Metadata). */
const CLICK = { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', 'sec-fetch-user': '?1' } as const;

/** A request with exactly these headers, as a browser sends them (Node's fetch replaces Sec-Fetch-Mode with cors); answered as a Response. */
function raw(url: string, o: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: o.method ?? 'GET', headers: o.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) for (const one of [v ?? []].flat()) headers.append(k, one);
        resolve(new Response(res.statusCode === 204 || res.statusCode === 304 ? null : Buffer.concat(chunks), { status: res.statusCode, headers }));
      });
    });
    req.on('error', reject);
    req.end(o.body);
  });
}
const form = (fields: Record<string, string>) => ({ 'content-type': 'application/x-www-form-urlencoded', body: new URLSearchParams(fields).toString() });
/** POST {base}handoff with exactly `headers`. */
const rawPost = (s: HubService, token: string, headers: Record<string, string>) => {
  const { body, ...type } = form({ token });
  return raw(`${s.url}handoff`, { method: 'POST', headers: { ...type, ...headers }, body });
};
/** A form's POST as a browser makes it: with Fetch Metadata (Sec-Fetch-Site given), a top-level navigation. */
const formPost = (s: HubService, token: string, headers: Record<string, string>) =>
  rawPost(s, token, { ...(headers['sec-fetch-site'] ? { 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' } : {}), ...headers });
/** POST {base}confirm of `ticket` from `browser` (its cookies in and out) with exactly `headers`: CLICK is its user's click. */
async function confirmIn(s: HubService, browser: NoJsBrowser, ticket: string, headers: Record<string, string>): Promise<Response> {
  const { body, ...type } = form({ ticket });
  const cookie = [...browser.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  const res = await raw(`${s.url}confirm`, { method: 'POST', headers: { ...type, accept: 'application/json', ...(cookie ? { cookie } : {}), ...headers }, body });
  for (const c of res.headers.getSetCookie()) browser.cookies.set(c.slice(0, c.indexOf('=')), c.slice(c.indexOf('=') + 1, c.indexOf(';')));
  return res;
}
/** The stored session ('' while only a spent jti is recorded). */
const stored = async (s: HubService, user: string) => (await createLocalStore(s.config).get(user))?.session || undefined;

describe('cross-site POST of a handoff', () => {
  test.each([
    ['another site (Origin and Sec-Fetch-Site)', { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }],
    ['another site, no Fetch Metadata (older browsers)', { origin: 'https://evil.example' }],
    ['an opaque origin (sandboxed frame, data: URL)', { origin: 'null', 'sec-fetch-site': 'cross-site' }],
    ['a browser that sends Sec-Fetch-Site alone', { 'sec-fetch-site': 'cross-site' }],
  ])('from %s: 403 cross_site_refused, nothing stored, the hub never asked, the token still good', async (_case, headers) => {
    hub.resetRequests();
    const token = await mint(key, { subject: 'csrf-victim' });
    const res = await formPost(svc, token, { accept: 'application/json', ...headers });
    expect(res.status).toBe(403);
    expect(await errorOf(res)).toBe('cross_site_refused');
    expect(hub.requests).toHaveLength(0);
    expect(await stored(svc, 'csrf-victim')).toBeUndefined();
    expect(svc.logs.lines.join('\n')).toContain('"outcome":"cross_site_refused"');
  });

  test.each([
    ["the issuer's origin (token.issuer is a URL)", 'svc', { origin: 'https://immerse.test', 'sec-fetch-site': 'cross-site' }],
    ['a configured allowed origin', 'lax', { origin: 'https://immerse.example:8443', 'sec-fetch-site': 'cross-site' }],
    ["the service's own page (the fragment page posts same-origin)", 'svc', { 'sec-fetch-site': 'same-origin', origin: 'http://127.0.0.1:1' }],
    ['a non-browser client (neither header)', 'svc', {}],
  ] as const)('from %s: accepted', async (_case, which, headers) => {
    const s = which === 'svc' ? svc : lax;
    const res = await formPost(s, await mint(key, { subject: 'csrf-ok' }), { accept: 'application/json', ...headers });
    // Accepted: on to the hub (303), or, in login mode handoff, the confirmation page of a browser it does not know yet.
    const answer = res.status === 200 && (await res.text()).includes('id="confirm"') ? 'confirmation page' : res.status;
    expect(answer).toBe(which === 'svc' ? 'confirmation page' : 303);
  });
});

describe('a handoff from a script or a frame (a page on the hub\'s own origin reading the answer)', () => {
  test.each([
    ['a same-origin fetch', { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' }],
    ['a same-origin form into a frame', { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'iframe' }],
    ["Immerse's origin, but a fetch", { origin: 'https://immerse.test', 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' }],
  ])('%s: 403 navigation_required before anything is spent; the token still lands from a navigation', async (_case, headers) => {
    const token = await mint(key, { subject: 'nav-user' });
    hub.resetRequests();
    const res = await rawPost(lax, token, { accept: 'application/json', ...headers });
    expect([res.status, await errorOf(res)]).toEqual([403, 'navigation_required']);
    expect(hub.requests).toHaveLength(0);
    const query = await raw(`${lax.url}handoff?token=${await mint(key, { subject: 'nav-user' })}`, { headers: { accept: 'application/json', ...headers } });
    expect([query.status, await errorOf(query)]).toEqual([403, 'navigation_required']);
    const nav = await rawPost(lax, token, { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' });
    expect(nav.status).toBe(303);
  });
});

describe('the refusal names the refused origin and what to change (issue 25, item 11)', () => {
  test.each([
    ['Origin: null (an issuer page with Referrer-Policy no-referrer or same-origin)', 'null', [/Origin: null/, /referrer policy strict-origin-when-cross-origin/, /not no-referrer or same-origin/, /token\.allowedOrigins/]],
    ['an origin not allowed', 'https://immerse.other.example', [/came from https:\/\/immerse\.other\.example, which may not open notebooks here/, /adds https:\/\/immerse\.other\.example to token\.allowedOrigins/]],
    ['no origin, but cross-site', undefined, [/did not say which/, /token\.allowedOrigins/]],
    ['an origin that is no origin', 'javascript:alert(1)<b>', [/came from \(unreadable\)/]],
  ] as const)('%s', async (_case, origin, messages) => {
    const headers: Record<string, string> = { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', ...(origin ? { origin } : {}) };
    const json = await rawPost(svc, await mint(key, { subject: 'csrf-msg' }), { accept: 'application/json', ...headers });
    const { error, message } = (await json.json()) as { error: string; message: string };
    expect(error).toBe('cross_site_refused');
    for (const m of messages) expect(message).toMatch(m);
    const html = await (await rawPost(svc, await mint(key, { subject: 'csrf-msg' }), { accept: 'text/html', ...headers })).text();
    expect(html).toContain('cross_site_refused');
    expect(html).not.toContain('<b>');
    expect(svc.logs.lines.join('\n')).toContain(`"outcome":"cross_site_refused"`);
  });
});

test('knowing the hub API token forges no hub login: tickets are sealed under keys of their own (issue 25, item 3)', async () => {
  // A login token sealed as tickets were before: AES-256-GCM under HKDF(the hub API token), kind "login".
  const key = Buffer.from(hkdfSync('sha256', hub.serviceToken, 'omnisci-handoff', 'tickets v1', 32));
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from('login'));
  const sealed = Buffer.concat([cipher.update(JSON.stringify({ user: 'victim', exp: Date.now() + 30_000, nonce: 'forged' })), cipher.final()]);
  const forged = Buffer.concat([iv, sealed, cipher.getAuthTag()]).toString('base64url');
  // The authenticator's exchange (it holds the API token anyway): no login, no way back.
  const res = await fetch(`${svc.url}login-token/exchange`, {
    method: 'POST',
    headers: { authorization: `token ${hub.serviceToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ token: forged, binding: randomBytes(32).toString('base64url') }),
  });
  expect([res.status, await errorOf(res)]).toEqual([404, 'login_token_invalid']);
});

test("the fragment page keeps its own origin on its POST (Referrer-Policy same-origin: no-referrer would make it Origin null), which is accepted without Fetch Metadata", async () => {
  const fragmentPage = await fetch(`${svc.url}handoff`);
  expect(fragmentPage.headers.get('referrer-policy')).toBe('same-origin');
  const own = new URL(svc.url).origin;
  const res = await postToken(svc.url, await mint(key, { subject: 'csrf-frag' }), { accept: 'application/json', origin: own });
  expect(res.status).toBe(200);
  expect(await res.text()).toContain('id="confirm"');
  const opaque = await postToken(svc.url, await mint(key, { subject: 'csrf-frag' }), { accept: 'application/json', origin: 'null' });
  expect(await errorOf(opaque)).toBe('cross_site_refused');
});

describe('login mode handoff: the confirmation page', () => {
  test('a browser the service does not know sees a page naming the user; nothing is issued until it confirms, the token is spent', async () => {
    const b = new NoJsBrowser();
    b.autoConfirm = false;
    const token = await mint(key, { subject: 'carla' });
    const page = await b.postToken(svc.url, token);
    expect(page.status).toBe(200);
    // Its form posts with this origin (a browser without Fetch Metadata names it): same-origin, in the header and the page.
    expect(page.headers.get('referrer-policy')).toBe('same-origin');
    const html = await page.text();
    expect(html).toContain('<meta name="referrer" content="same-origin">');
    expect(html).toContain('Open the notebook as carla?');
    expect(html).not.toContain('login_token');
    expect(await stored(svc, 'carla')).toBeUndefined();
    // Spent before the page: the same token cannot start a second sign-in anywhere.
    expect((await postToken(svc.url, token, { accept: 'application/json' })).status).toBe(409);

    const ticket = /name="ticket" value="([^"]+)"/.exec(html)![1]!;
    const confirm = (browser: NoJsBrowser, headers: Record<string, string>) => confirmIn(svc, browser, ticket, headers);
    // Another browser (it lacks this one's binding cookie), or a cross-site form in this one: refused.
    expect(await errorOf(await confirm(new NoJsBrowser(), CLICK))).toBe('identity_state_invalid');
    expect(await errorOf(await confirm(b, { ...CLICK, 'sec-fetch-site': 'cross-site' }))).toBe('identity_state_invalid');
    // A page on the same origin (a user's server in z2jh's layout) holding the ticket: its script's fetch,
    // and a form it submits without the user's click (no Sec-Fetch-User), are no click on this page: refused.
    expect(await errorOf(await confirm(b, { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' }))).toBe('identity_state_invalid');
    const { 'sec-fetch-user': _activation, ...scripted } = CLICK;
    expect(await errorOf(await confirm(b, scripted))).toBe('identity_state_invalid');
    expect(await errorOf(await confirm(b, { ...CLICK, 'sec-fetch-dest': 'iframe' }))).toBe('identity_state_invalid');
    // A browser without Fetch Metadata must name this origin.
    expect(await errorOf(await confirm(b, { origin: 'https://evil.example' }))).toBe('identity_state_invalid');
    expect(await stored(svc, 'carla')).toBeUndefined();
    // Its own button: stored, and on to the hub login.
    const go = await confirm(b, CLICK);
    expect(go.status).toBe(303);
    expect(new URL(go.headers.get('location')!, svc.url).pathname).toMatch(/\/hub\/login$|\/progress\//);
    expect(await stored(svc, 'carla')).toBeDefined();
    // Once.
    expect(await errorOf(await confirm(b, CLICK))).toBe('identity_state_invalid');

    // Known now: the next handoff of carla in this browser goes straight on.
    const next = await b.postToken(svc.url, await mint(key, { subject: 'carla' }));
    expect(next.status).toBe(303);
  });

  test('a browser known as another user is asked even when the admin turned confirmation off; one known as nobody is not', async () => {
    const b = new NoJsBrowser();
    b.autoConfirm = false;
    const first = await b.postToken(lax.url, await mint(key, { subject: 'dora' }));
    expect(first.status).toBe(303);
    const other = await b.postToken(lax.url, await mint(key, { subject: 'mallory' }));
    expect(other.status).toBe(200);
    const html = await other.text();
    expect(html).toContain('Open the notebook as mallory?');
    expect(html).toContain('This browser last opened notebooks as <b>dora</b>');
    expect(await stored(lax, 'mallory')).toBeUndefined();
  });

  test('a parked handoff is taken only by its own browser: the same token replayed from another client is 409 token_replayed, the confirmation then lands', async () => {
    const b = new NoJsBrowser();
    b.autoConfirm = false;
    expect((await b.postToken(lax.url, await mint(key, { subject: 'gwen' }))).status).toBe(303);
    const token = await mint(key, { subject: 'hank' });
    const page = await b.postToken(lax.url, token);
    const ticket = /name="ticket" value="([^"]+)"/.exec(await page.text())![1]!;
    // A client the confirmation gate lets through (confirmLogin off, known as nobody) with the parked token.
    const replay = await postToken(lax.url, token, { accept: 'application/json' });
    expect(replay.status).toBe(409);
    expect(await errorOf(replay)).toBe('token_replayed');
    expect(await stored(lax, 'hank')).toBeUndefined();
    const go = await confirmIn(lax, b, ticket, CLICK);
    expect(go.status).toBe(303);
    expect(await stored(lax, 'hank')).toBeDefined();
  });
});

test("behind https, the cookies saying who the browser is cross sites (Immerse's POST carries them): SameSite=None; Secure; the others stay Lax", async () => {
  const tls = await startHubService({
    hub,
    hubConfig: { createUsers: true, loginMode: 'handoff', confirmLogin: false },
    sections: { listen: { host: '127.0.0.1', port: 0, basePath: '/', internal: { port: 0 }, trustProxy: true } },
  });
  try {
    const res = await postToken(tls.url, await mint(key, { subject: 'tina' }), { 'x-forwarded-proto': 'https' });
    expect(res.status).toBe(303);
    const cookies = Object.fromEntries(res.headers.getSetCookie().map((c) => [c.slice(0, c.indexOf('=')), c]));
    for (const name of ['ohu', 'ohb']) expect(cookies[name]).toMatch(/; Secure; SameSite=None/);
    // Over http a browser would drop SameSite=None: Lax there.
    const plain = await postToken(tls.url, await mint(key, { subject: 'tina' }));
    expect(plain.headers.getSetCookie().every((c) => /SameSite=Lax/.test(c) && !/Secure/.test(c))).toBe(true);
  } finally {
    await tls.close();
  }
});

describe('transports', () => {
  test('with the query and fragment transports off, only a POST is taken: 400 transport_disabled otherwise', async () => {
    const token = await mint(key, { subject: 'tess' });
    const query = await fetch(`${strict.url}handoff?token=${token}`, { headers: { accept: 'application/json' }, redirect: 'manual' });
    expect([query.status, await errorOf(query)]).toEqual([400, 'transport_disabled']);
    const fragment = await fetch(`${strict.url}handoff`, { headers: { accept: 'application/json' }, redirect: 'manual' });
    expect([fragment.status, await errorOf(fragment)]).toEqual([400, 'transport_disabled']);
    expect(await stored(strict, 'tess')).toBeUndefined();
    const post = await postToken(strict.url, token);
    expect(post.status).toBe(303);
    expect(await stored(strict, 'tess')).toBeDefined();
  });
});

test('one read of the hub user model per handoff (finding 6): prepare reads it, land and the spawn use that read', async () => {
  const b = new NoJsBrowser();
  expect((await b.postHandoff(strict.url, await mint(key, { subject: 'una' }))).url).toContain('/user/una/lab');
  hub.resetRequests();
  // The server runs now: the whole handoff asks the hub for the user once.
  const res = await postToken(strict.url, await mint(key, { subject: 'una' }));
  expect(res.status).toBe(303);
  expect(hub.count('GET', '/users/una')).toBe(1);
  // Besides it, only the shared-server check's two lists (hub.allowSharedServers is off).
  expect(hub.requests.map((r) => `${r.method} ${r.path}`).sort()).toEqual(['GET /share-codes/una', 'GET /shares/una', 'GET /users/una']);
});
