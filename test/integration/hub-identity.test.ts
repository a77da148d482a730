/**
 * hub.identityCheck against a real JupyterHub 5: the service as the hub's OAuth client (registered
 * like z2jh does it: url + api_token + oauth_no_confirm, default client id and redirect URI) learns
 * who the browser is logged in to the hub as, and refuses a handoff for anyone else before storing.
 * Login mode `handoff` (the shipped authenticator) for `omnisci-handoff`, `sso` for `omnisci-sso`.
 */
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { randomSessionId } from '../../src/handoff/mint.js';
import { createLocalStore } from '../../src/store/local.js';
import { hmacKey, mint } from '../support/core.js';
import { NoJsBrowser, runningLab, startHubService, type HubService } from '../support/hub-service.js';
import { freePort, SERVICE_SCOPES_CREATE, SHIPPED_AUTHENTICATOR, startHub, type RunningHub } from '../support/jupyterhub.js';

jest.setTimeout(120_000);
const key = hmacKey('HS256');
const PREFIX = '/services/omnisci-handoff/';
const SSO_PREFIX = '/services/omnisci-sso/';
const labOf = (user: string) => `${hub.publicUrl}/user/${user}/lab?omnisci&reset`;

let hub: RunningHub;
let svc: HubService;
let sso: HubService;

beforeAll(async () => {
  const [port, ssoPort] = [await freePort(), await freePort()];
  const ssoToken = randomBytes(24).toString('hex');
  const py = JSON.stringify;
  hub = await startHub({
    serviceScopes: SERVICE_SCOPES_CREATE,
    serviceUrl: `http://127.0.0.1:${port}`,
    extraConfig: `
${SHIPPED_AUTHENTICATOR}c.JupyterHub.services.append({'name': 'omnisci-sso', 'url': ${py(`http://127.0.0.1:${ssoPort}`)}, 'api_token': ${py(ssoToken)}, 'oauth_no_confirm': True})
c.JupyterHub.load_roles.append({'name': 'omnisci-sso-role', 'scopes': ${py([...SERVICE_SCOPES_CREATE])}, 'services': ['omnisci-sso']})
# Users may use the services (the hub's OAuth authorize asks for access:services).
c.JupyterHub.load_roles.append({'name': 'user', 'scopes': ['self', 'access:services!service=omnisci-handoff', 'access:services!service=omnisci-sso']})
`,
  });
  svc = await startHubService({ hub, port, basePath: PREFIX, hubConfig: { createUsers: true, loginMode: 'handoff', identityCheck: true } });
  sso = await startHubService({ hub, port: ssoPort, basePath: SSO_PREFIX, apiToken: ssoToken, hubConfig: { createUsers: true, identityCheck: true } });
});

afterAll(async () => {
  await svc?.close();
  await sso?.close();
  await hub?.stop();
});

/** One browser through all tests: it gets logged in to the hub as ida by the first handoff. */
const browser = new NoJsBrowser();

describe('hub identity check', () => {
  test('a browser without a hub session is logged in as the handed-over user on its way to authorize, and lands', async () => {
    const session = randomSessionId();
    const end = await browser.postHandoff(svc.url, await mint(key, { subject: 'ida', omnisci: { session } }));
    expect(end.url).toBe(labOf('ida'));
    const paths = browser.hops.map((h) => new URL(h.url).pathname);
    expect(paths).toEqual(expect.arrayContaining(['/hub/login', '/hub/api/oauth2/authorize', `${PREFIX}oauth_callback`]));
    expect((await createLocalStore(svc.config).get('ida'))?.session).toBe(session);
    expect(browser.cookies.has('ohu')).toBe(true);
    expect(browser.confirmations).toBe(1);

    // Nothing secret in the URLs the service built (the callback URL is the hub's, carrying the code).
    const callback = browser.hops.find((h) => h.url.includes(`${PREFIX}oauth_callback`))!.url;
    const code = new URL(callback).searchParams.get('code')!;
    expect(code.length).toBeGreaterThan(10);
    const authorize = new URL(browser.hops.find((h) => h.url.includes('/hub/api/oauth2/authorize'))!.url);
    expect([...authorize.searchParams.keys()].sort()).toEqual(['client_id', 'redirect_uri', 'response_type', 'state']);
    expect(authorize.searchParams.get('client_id')).toBe('service-omnisci-handoff');
    expect(browser.hops.every((h) => !h.url.includes(session) && (h.url === callback || !h.url.includes(code)))).toBe(true);
    const logs = svc.logs.lines.join('\n');
    expect(logs).not.toContain(code);
    expect(logs).not.toContain(session);
    expect(logs).toContain('"outcome":"deferred"');

    // The state is single-use and bound to this browser.
    expect((await new NoJsBrowser().request(callback)).status).toBe(400);
    const replay = await browser.request(callback, { headers: { accept: 'application/json' } });
    expect(((await replay.json()) as { error: string }).error).toBe('identity_state_invalid');
  });

  test('the next handoff of the same user is confirmed by the sealed identity cookie, without an OAuth round or a confirmation', async () => {
    const from = browser.hops.length;
    const end = await browser.postHandoff(svc.url, await mint(key, { subject: 'ida' }));
    // The server runs: the lab URL carries the stored session's fingerprint.
    expect(end.url).toBe(runningLab(svc, labOf('ida'), 'ida'));
    expect(browser.hops.slice(from).some((h) => h.url.includes('/oauth2/authorize'))).toBe(false);
    expect(browser.confirmations).toBe(1);

    // A tampered cookie is not trusted: the hub is asked, and says ida.
    const forged = new NoJsBrowser();
    for (const [k, v] of browser.cookies) forged.cookies.set(k, v);
    const known = forged.cookies.get('ohu')!;
    const i = known.length >> 1;
    forged.cookies.set('ohu', `${known.slice(0, i)}${known[i] === 'A' ? 'B' : 'A'}${known.slice(i + 1)}`);
    const refused = await forged.postHandoff(svc.url, await mint(key, { subject: 'jack' }));
    expect(refused.status).toBe(403);
    expect(refused.text).toContain('identity_mismatch');
  });

  test('a browser logged in to the hub as another user is refused with identity_mismatch; nothing is stored', async () => {
    const end = await browser.postHandoff(svc.url, await mint(key, { subject: 'jack' }));
    expect(end.status).toBe(403);
    expect(end.text).toContain('identity_mismatch');
    expect(end.text).toContain('You are logged in to JupyterHub as ida, but Immerse handed over jack.');
    // No session stored: only the spent token's id (its reservation) and the used tickets are recorded for jack.
    const jack = await createLocalStore(svc.config).get('jack');
    expect(jack?.session).toBe('');
    expect(jack?.jtis.length).toBeGreaterThan(0);
    expect(jack?.jtis.every((j) => j.reserved || /^(parked|login):/.test(j.jti))).toBe(true);
    // The browser is still ida at the hub: the unused login token for jack did not log it in.
    expect(await (await browser.request(`${hub.publicUrl}/hub/home`)).text()).toContain('ida');
    expect(svc.logs.lines.join('\n')).toMatch(/"user":"jack".*"outcome":"identity_mismatch"/);
  });

  test('sso mode: the hub session decides; same user lands, another is refused', async () => {
    const from = browser.hops.length;
    const end = await browser.postHandoff(sso.url, await mint(key, { subject: 'ida' }));
    expect(end.url).toBe(runningLab(sso, labOf('ida'), 'ida'));
    const hops = browser.hops.slice(from).map((h) => new URL(h.url).pathname);
    expect(hops).toContain('/hub/api/oauth2/authorize');
    expect(hops).not.toContain('/hub/login');
    expect(new URL(browser.hops.find((h) => h.url.includes('client_id=service-omnisci-sso'))!.url).searchParams.get('redirect_uri')).toBe(
      `${SSO_PREFIX}oauth_callback`,
    );

    const refused = await browser.postHandoff(sso.url, await mint(key, { subject: 'sam' }));
    expect(refused.status).toBe(403);
    expect(refused.text).toContain('You are logged in to JupyterHub as ida, but Immerse handed over sam.');
  });
  test("a callback with the state but without the browser's binding cookie neither lands nor cancels the handoff", async () => {
    // A user this browser is not remembered as: the handoff parks and goes through the hub's authorize.
    const first = await browser.postToken(sso.url, await mint(key, { subject: 'sam' }));
    const authorize = new URL(first.headers.get('location')!, sso.url);
    const state = authorize.searchParams.get('state')!;
    // The state is the parked handoff, sealed: it names nothing readable.
    expect(state).toMatch(/^[A-Za-z0-9_-]{200,}$/);
    expect(Buffer.from(state, 'base64url').toString('latin1')).not.toMatch(/sam|session/);
    // Someone who learnt the state (not the code: the hub gives that to the browser only).
    const stranger = await new NoJsBrowser().request(`${hub.publicUrl}${SSO_PREFIX}oauth_callback?state=${state}&code=guessed`, {
      headers: { accept: 'application/json' },
    });
    expect(stranger.status).toBe(400);
    expect(((await stranger.json()) as { error: string }).error).toBe('identity_state_invalid');
    // The browser that parked it still completes it (and the hub says it is ida, not sam).
    const end = await browser.follow(first, `${sso.url}handoff`);
    expect(end.status).toBe(403);
    expect(end.text).toContain('identity_mismatch');
  });
  test('handoffs waiting for the sign-in keep nothing in the service: each state resumes once, whichever arrives', async () => {
    const b = new NoJsBrowser();
    const parked: Response[] = [];
    for (let i = 0; i < 6; i++) parked.push(await b.postToken(sso.url, await mint(key, { subject: 'sam' })));
    expect(parked.every((r) => r.status === 303 && new URL(r.headers.get('location')!).pathname === '/hub/api/oauth2/authorize')).toBe(true);
    const callbackOf = (r: Response) => `${hub.publicUrl}${SSO_PREFIX}oauth_callback?state=${new URL(r.headers.get('location')!).searchParams.get('state')}&code=x`;
    // The oldest is still good (nothing was evicted to make room: nothing is kept); the hub then rejects the made-up code.
    const first = await b.request(callbackOf(parked[0]!), { headers: { accept: 'application/json' } });
    expect(((await first.json()) as { error: string }).error).toBe('hub_rejected');
    // Its state was used: again, it is refused before the hub is asked.
    const again = await b.request(callbackOf(parked[0]!), { headers: { accept: 'application/json' } });
    expect(((await again.json()) as { error: string }).error).toBe('identity_state_invalid');
    const last = await b.request(callbackOf(parked[5]!), { headers: { accept: 'application/json' } });
    expect(((await last.json()) as { error: string }).error).toBe('hub_rejected');
  });
  test('a used handoff token gets no hub login and parks nothing: it is spent before the sign-in starts', async () => {
    // Login mode handoff, a browser the hub does not know: the sign-in would log it in with a login token.
    const token = await mint(key, { subject: 'kim' });
    const b = new NoJsBrowser();
    const first = await b.postToken(svc.url, token);
    // A browser the service does not know: first the confirmation page, the token already spent.
    expect(first.status).toBe(200);
    expect(await first.clone().text()).toContain('id="confirm"');
    // The same token again, from any browser: refused at once, with no login token issued.
    for (const again of [b, new NoJsBrowser()]) {
      const res = await again.postToken(svc.url, token);
      expect(res.status).toBe(409);
      expect(res.headers.get('location')).toBeNull();
      expect(await res.text()).toContain('token_replayed');
    }
    // The first browser completes its sign-in and lands: the reservation is its handoff's to take.
    const end = await b.follow(first, `${svc.url}handoff`);
    expect(end.url).toBe(labOf('kim'));
  });
});
