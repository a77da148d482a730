/**
 * Login CSRF in a real browser (Chromium) against a real JupyterHub 5 with the shipped authenticator,
 * the service under the hub's proxy at /services/omnisci-handoff/ (z2jh's default layout, so on the
 * hub's origin), issue 25:
 *
 * 1. A hub login URL works only in the browser it was made for: the first and the final
 *    /hub/login?login_token=… of a handoff, and the ones a scripted handoff stops at, opened in another
 *    browser context log nobody in and say why; in the right context they land. Also in the
 *    identity-check flow, which issues such a URL before the OAuth round.
 * 2. A page on the hub's own origin (served at /services/userpage/, as a user's server at /user/<name>/
 *    is) cannot post a handoff and read the confirmation page, nor submit a confirmation without the
 *    user's click, nor reach the confirmation page it opened in a popup.
 * 11. An issuer page whose referrer policy hides its origin (no-referrer, same-origin) is refused with
 *    a page naming Origin: null and what to change; with the default policy it lands.
 */
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../support/browser.js';
import { hmacKey, mint, tempDir } from '../support/core.js';
import { NoJsBrowser, startHubService, type HubService } from '../support/hub-service.js';
import { freePort, SERVICE_SCOPES_CREATE, SHIPPED_AUTHENTICATOR, startHub, waitFor, type RunningHub } from '../support/jupyterhub.js';

jest.setTimeout(120_000);
const key = hmacKey('HS256');
const PREFIX = '/services/omnisci-handoff/';
const USERPAGE = '/services/userpage/';

let hub: RunningHub;
let svc: HubService;
let servicePort: number;
let chromium: Browser;
let immerse: Server;
let immerseOrigin: string;
let userpage: Server;
const storeDir = tempDir('oh-login-browser-');
/** Pages of the hub's origin, written by each test (a user's server serves what its owner wrote). */
const userPages = new Map<string, string>();

const labOf = (user: string) => `${hub.publicUrl}/user/${user}/lab?omnisci&reset`;
const isHubLogin = (u: URL) => u.pathname === '/hub/login' && u.searchParams.has('login_token');

/** The service with `hubConfig`, on the port the hub proxies /services/omnisci-handoff/ to; the store and ticket keys stay across restarts. */
async function serve(hubConfig: Record<string, unknown>): Promise<void> {
  await svc?.close();
  svc = await startHubService({
    hub,
    port: servicePort,
    basePath: PREFIX,
    storeDir,
    hubConfig: { createUsers: true, loginMode: 'handoff', ...hubConfig },
    tokenConfig: { allowedOrigins: [immerseOrigin] },
  });
}

beforeAll(async () => {
  const [userpagePort, immersePort] = [await freePort(), await freePort()];
  servicePort = await freePort();
  immerseOrigin = `http://localhost:${immersePort}`;
  const py = JSON.stringify;
  hub = await startHub({
    serviceScopes: SERVICE_SCOPES_CREATE,
    serviceUrl: `http://127.0.0.1:${servicePort}`,
    extraConfig: `
${SHIPPED_AUTHENTICATOR}# Users may use the service (the identity check's OAuth authorize asks for access:services).
c.JupyterHub.load_roles.append({'name': 'user', 'scopes': ['self', 'access:services!service=omnisci-handoff']})
# A page of the hub's own origin that a user controls, as their server at /user/<name>/ would be.
c.JupyterHub.services.append({'name': 'userpage', 'url': ${py(`http://127.0.0.1:${userpagePort}`)}})
`,
  });
  userpage = createServer((req, res) => {
    const page = userPages.get(new URL(req.url ?? '/', 'http://x').pathname.slice(USERPAGE.length));
    res.writeHead(page ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' }).end(page ?? '');
  });
  // Immerse stand-in on another site (localhost vs the hub's 127.0.0.1): /<policy>?user=U posts a fresh token for U
  // from a page with that Referrer-Policy ("default": none, so the browsers' strict-origin-when-cross-origin).
  immerse = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const policy = url.pathname.slice(1);
    void mint(key, { subject: url.searchParams.get('user') ?? 'nobody' }).then((token) => {
      res.writeHead(200, { 'content-type': 'text/html', ...(policy === 'default' ? {} : { 'referrer-policy': policy }) });
      res.end(`<!doctype html><title>Immerse</title><form method="post" action="${hub.publicUrl}${PREFIX}handoff">
<input type="hidden" name="token" value="${token}"><button id="open">Open in notebook</button></form>`);
    });
  });
  await new Promise<void>((r) => userpage.listen(userpagePort, '127.0.0.1', () => r()));
  await new Promise<void>((r) => immerse.listen(immersePort, 'localhost', () => r()));
  await serve({});
  chromium = await launchChromium();
});

afterAll(async () => {
  await chromium?.close();
  immerse?.close();
  userpage?.close();
  await svc?.close();
  await hub?.stop();
});

/** A fresh browser context (its own cookies) with one page. */
async function browserContext(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await chromium.newContext();
  return { context, page: await context.newPage() };
}

type UserModel = { servers?: Record<string, { ready?: boolean }> };

/** Whether the context is logged in to the hub (its login cookie), and as whom (its home page names the user). */
async function hubIdentity(context: BrowserContext): Promise<string | undefined> {
  // The cookie lives on the hub's path (/hub/): ask for the cookies of a URL there.
  if (!(await context.cookies(`${hub.publicUrl}/hub/home`)).some((c) => c.name === 'jupyterhub-hub-login')) return undefined;
  const page = await context.newPage();
  await page.goto(`${hub.publicUrl}/hub/home`);
  const text = (await page.textContent('body')) ?? '';
  await page.close();
  return text;
}

/**
 * Runs `navigate` in `context` and stops the first request that `at` matches and that redirects where
 * `want` says: that Location, unused (the page shows a stub). Other answers of `at` pass as they are.
 * The request is made with the context's cookies, and the cookies its answer sets land there
 * (route.fetch). Routes only see the first request of a redirect chain, so each stop is a request
 * the page itself starts (a click, a script, a goto).
 */
async function stopAt(context: BrowserContext, at: (u: URL) => boolean, want: (u: URL) => boolean, navigate: () => Promise<unknown>): Promise<string> {
  let resolve!: (url: string) => void;
  const held = new Promise<string>((r) => (resolve = r));
  await context.route(at, async (route) => {
    const r = await route.fetch({ maxRedirects: 0 });
    const location = r.headers()['location'];
    const to = location === undefined ? undefined : new URL(location, route.request().url());
    if (!to || !want(to)) return route.fulfill({ response: r });
    resolve(to.toString());
    await route.fulfill({ status: 200, contentType: 'text/html', body: '<title>held</title>' });
  });
  await navigate();
  const url = await held;
  await context.unrouteAll();
  return url;
}

/** Immerse → confirmation (clicked) → …, stopped where the service first sends the browser to /hub/login?login_token=…: that URL. */
async function firstLogin(context: BrowserContext, page: Page, user: string, identityCheck = false): Promise<string> {
  await page.goto(`${immerseOrigin}/default?user=${user}`);
  await page.click('#open');
  await page.waitForSelector('#confirm');
  expect(await page.textContent('#confirm')).toBe(`Continue as ${user}`);
  // The confirmation's answer: the hub login (the identity check's, or the lab's when the server runs), or a
  // progress page, whose way on leads there once the hub says the server runs.
  const isProgress = (u: URL) => u.pathname.startsWith(`${PREFIX}progress/`);
  let url = await stopAt(context, (u) => u.pathname === `${PREFIX}confirm`, (u) => isHubLogin(u) || isProgress(u), () => page.click('#confirm'));
  if (isProgress(new URL(url))) {
    await waitFor(async () => ((await hub.admin('GET', `/users/${user}`)).json as UserModel).servers?.['']?.ready || undefined);
    const go = `${url}/go`;
    url = await stopAt(context, (u) => u.toString() === go, isHubLogin, () => page.goto(go));
  }
  expect(new URL(url).searchParams.get('next')).toEqual(identityCheck ? expect.stringMatching(/^\/hub\/api\/oauth2\/authorize\?/) : `/user/${user}/lab?omnisci&reset`);
  return url;
}

/** The first login URL taken the way back in `context` (its cookies): the final /hub/login?login_token=…, unused. */
async function finalLogin(context: BrowserContext, page: Page, first: string): Promise<string> {
  const isReturn = (u: URL) => u.pathname === `${PREFIX}login/continue`;
  const back = await stopAt(context, isHubLogin, isReturn, () => page.goto(first));
  return stopAt(context, isReturn, isHubLogin, () => page.goto(back));
}

/** Opens a login URL in `page`: where it ends and what it says. */
async function open(page: Page, url: string): Promise<{ url: string; text: string }> {
  await page.goto(url);
  return { url: page.url(), text: (await page.textContent('body')) ?? '' };
}

/** A login URL opened in a browser it was not made for: a clear page, no hub login. */
async function expectRefusedIn(context: BrowserContext, page: Page, url: string, page_: 'service' | 'hub'): Promise<void> {
  const end = await open(page, url);
  expect(end.text).toContain('This login link belongs to another browser');
  expect(end.text).toContain(page_ === 'service' ? 'login_browser_mismatch' : '(code login_browser_mismatch)');
  expect(new URL(end.url).pathname).toBe(page_ === 'service' ? `${PREFIX}login/continue` : '/hub/login');
  expect(await hubIdentity(context)).toBeUndefined();
}

/** The right browser opens it and lands in the lab, logged in as `user`. */
async function expectLandsIn(context: BrowserContext, page: Page, url: string, user: string): Promise<void> {
  await page.goto(url);
  await page.waitForURL((u) => u.pathname === `/user/${user}/lab`, { timeout: 60_000 });
  expect(page.url()).toBe(labOf(user));
  expect(await hubIdentity(context)).toContain(user);
}

describe('1. a hub login URL logs in only the browser it was made for', () => {
  test('the first /hub/login?login_token=… in another browser: no login, a clear page; in the right one it lands', async () => {
    const [right, other] = [await browserContext(), await browserContext()];
    const url = await firstLogin(right.context, right.page, 'lena');
    await expectRefusedIn(other.context, other.page, url, 'service');
    // Refused elsewhere, it is not used up: the browser it was issued to lands with it.
    await expectLandsIn(right.context, right.page, url, 'lena');
    await Promise.all([right.context.close(), other.context.close()]);
  });

  test('the final /hub/login?login_token=… (after the way back) in another browser: no login, the hub says why; in the right one it lands', async () => {
    const [right, other] = [await browserContext(), await browserContext()];
    const url = await finalLogin(right.context, right.page, await firstLogin(right.context, right.page, 'lina'));
    await expectRefusedIn(other.context, other.page, url, 'hub');
    await expectLandsIn(right.context, right.page, url, 'lina');
    await Promise.all([right.context.close(), other.context.close()]);
  });

  test("a scripted handoff of the attacker's own account, stopped at the 303 and sent to a victim: the victim is not logged in", async () => {
    // The attacker: no browser (no Origin, no Fetch Metadata), confirms, follows to the hub login and stops there.
    const attacker = new NoJsBrowser();
    let res = await attacker.postToken(svc.url, await mint(key, { subject: 'mallory' }));
    const ticket = /name="ticket" value="([^"]+)"/.exec(await res.text())![1]!;
    res = await attacker.request(`${svc.url}confirm`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ticket }).toString(),
    });
    let url = new URL(res.headers.get('location')!, svc.url);
    if (!isHubLogin(url)) {
      // A progress page: once the hub says the server runs, its way on redirects to the hub login.
      await waitFor(async () => ((await hub.admin('GET', '/users/mallory')).json as UserModel).servers?.['']?.ready || undefined);
      res = await attacker.request(`${url.toString()}/go`);
      url = new URL(res.headers.get('location')!, url);
    }
    expect(isHubLogin(url)).toBe(true);
    const victim = await browserContext();
    await expectRefusedIn(victim.context, victim.page, url.toString(), 'service');
    // Nor does the attacker's own way back help: the final URL it gets is bound to the attacker's hub cookie.
    const back = await attacker.request(url.toString());
    const final = await attacker.request(new URL(back.headers.get('location')!).toString());
    const finalUrl = new URL(final.headers.get('location')!);
    expect(isHubLogin(finalUrl)).toBe(true);
    await expectRefusedIn(victim.context, victim.page, finalUrl.toString(), 'hub');
    await victim.context.close();
  });
});

describe('1. the identity-check flow, whose hub login comes before the OAuth round', () => {
  beforeAll(() => serve({ identityCheck: true }));
  afterAll(() => serve({}));

  test('its /hub/login?login_token=…&next=<authorize> in another browser: no login, a clear page; in the right one it lands', async () => {
    const [right, other] = [await browserContext(), await browserContext()];
    const url = await firstLogin(right.context, right.page, 'iris', true);
    await expectRefusedIn(other.context, other.page, url, 'service');
    await expectLandsIn(right.context, right.page, url, 'iris');
    await Promise.all([right.context.close(), other.context.close()]);
  });

  test('its final login URL in another browser: no login, the hub says why; in the right one it lands', async () => {
    const [right, other] = [await browserContext(), await browserContext()];
    const url = await finalLogin(right.context, right.page, await firstLogin(right.context, right.page, 'ivy', true));
    await expectRefusedIn(other.context, other.page, url, 'hub');
    await expectLandsIn(right.context, right.page, url, 'ivy');
    await Promise.all([right.context.close(), other.context.close()]);
  });
});

describe("2. a page on the hub's own origin", () => {
  beforeAll(async () => {
    // Mallory's server runs, so that a handoff would end in a hub login at once (the attack's best case).
    await hub.admin('POST', '/users/mallory'); // 201, or 409 when an earlier test created mallory
    await hub.admin('POST', '/users/mallory/server', {});
    await waitFor(async () => ((await hub.admin('GET', '/users/mallory')).json as UserModel).servers?.['']?.ready || undefined);
  });

  test("cannot post a handoff with fetch and read the confirmation page: refused before anything is spent; the victim is not logged in", async () => {
    const token = await mint(key, { subject: 'mallory' });
    userPages.set(
      'fetch.html',
      `<!doctype html><title>mallory's notebook</title><pre id="out">pending</pre><script>
(async () => {
  const out = document.getElementById('out');
  try {
    const r = await fetch('${PREFIX}handoff', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }, body: 'token=${token}' });
    const text = await r.text();
    const ticket = /name="ticket" value="([^"]+)"/.exec(text);
    if (!ticket) { out.textContent = r.status + ' ' + text; return; }
    const c = await fetch('${PREFIX}confirm', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'ticket=' + encodeURIComponent(ticket[1]) });
    out.textContent = 'confirmed ' + c.status + ' ' + c.url;
  } catch (e) { out.textContent = 'error ' + e; }
})();
</script>`,
    );
    const victim = await browserContext();
    await victim.page.goto(`${hub.publicUrl}${USERPAGE}fetch.html`);
    await victim.page.waitForFunction("document.getElementById('out').textContent !== 'pending'");
    const out = (await victim.page.textContent('#out')) ?? '';
    expect(out).toMatch(/^403 .*navigation_required/);
    expect(await hubIdentity(victim.context)).toBeUndefined();
    // The token was not spent: Immerse's own navigation still takes it.
    const nav = await victim.context.request.post(`${hub.publicUrl}${PREFIX}handoff`, { form: { token }, maxRedirects: 0, headers: { accept: 'application/json' } });
    expect(nav.status()).toBe(200);
    await victim.context.close();
  });

  test('cannot submit a confirmation without the user\'s click, even holding a ticket and planting its binding cookie', async () => {
    // The attacker's own confirmation ticket, bound to the attacker's cookie…
    const attacker = new NoJsBrowser();
    const page = await (await attacker.postToken(svc.url, await mint(key, { subject: 'mallory' }))).text();
    const ticket = /name="ticket" value="([^"]+)"/.exec(page)![1]!;
    const ohb = attacker.cookies.get('ohb')!;
    // …which a page of the hub's origin can set for the service's path in a browser that has none (the same-origin caveat),
    // then submit the ticket with a form, by script, without a click.
    userPages.set(
      'confirm.html',
      `<!doctype html><title>mallory's notebook</title><form id="f" method="post" action="${PREFIX}confirm"><input type="hidden" name="ticket" value="${ticket}"></form>
<script>document.cookie = 'ohb=${ohb}; path=${PREFIX}'; document.getElementById('f').submit();</script>`,
    );
    const victim = await browserContext();
    await victim.page.goto(`${hub.publicUrl}${USERPAGE}confirm.html`);
    await victim.page.waitForURL((u) => !u.pathname.startsWith(USERPAGE));
    await victim.page.waitForLoadState('load');
    expect(await victim.page.textContent('body')).toContain('identity_state_invalid');
    expect(await hubIdentity(victim.context)).toBeUndefined();
    await victim.context.close();
  });

  test('cannot reach the confirmation page it opened in a popup (Cross-Origin-Opener-Policy), nor frame it', async () => {
    const token = await mint(key, { subject: 'mallory' });
    userPages.set(
      'popup.html',
      `<!doctype html><title>mallory's notebook</title><pre id="out">pending</pre>
<form id="f" method="post" action="${PREFIX}handoff" target="w"><input type="hidden" name="token" value="${token}"></form>
<iframe name="fr" id="fr"></iframe><form id="g" method="post" action="${PREFIX}handoff" target="fr"><input type="hidden" name="token" value="${token}"></form>
<button id="go">Open</button><script>
document.getElementById('go').onclick = () => {
  const w = window.open('about:blank', 'w');
  document.getElementById('f').submit();
  document.getElementById('g').submit();
  const look = () => setTimeout(() => {
    let seen;
    try { seen = w.closed ? 'closed' : w.document.getElementById('confirm') ? 'button' : 'loading'; } catch (e) { seen = 'blocked'; }
    if (seen === 'loading') return look();
    let framed;
    try { framed = document.getElementById('fr').contentDocument?.getElementById('confirm') ? 'button' : 'nothing'; } catch (e) { framed = 'blocked'; }
    document.getElementById('out').textContent = seen + ' ' + framed;
  }, 100);
  look();
};
</script>`,
    );
    const victim = await browserContext();
    await victim.page.goto(`${hub.publicUrl}${USERPAGE}popup.html`);
    const popup = victim.context.waitForEvent('page');
    await victim.page.click('#go');
    const shown = await popup;
    await shown.waitForSelector('#confirm');
    // The victim sees the page naming the account; the page that opened it cannot see or click it.
    expect(await shown.textContent('h1')).toBe('Open the notebook as mallory?');
    await victim.page.waitForFunction("document.getElementById('out').textContent !== 'pending'");
    expect(await victim.page.textContent('#out')).toMatch(/^(closed|blocked) (nothing|blocked)$/);
    expect(await hubIdentity(victim.context)).toBeUndefined();
    await victim.context.close();
  });
});

describe('11. issuer pages whose referrer policy hides their origin', () => {
  test.each(['no-referrer', 'same-origin'])('Referrer-Policy %s: refused with a page naming Origin: null and what to change', async (policy) => {
    const { context, page } = await browserContext();
    await page.goto(`${immerseOrigin}/${policy}?user=rita`);
    await page.click('#open');
    await page.waitForURL((u) => u.pathname === `${PREFIX}handoff`);
    const text = (await page.textContent('body')) ?? '';
    expect(text).toContain('cross_site_refused');
    expect(text).toContain('Origin: null');
    expect(text).toContain('referrer policy strict-origin-when-cross-origin');
    expect(text).toContain('not no-referrer or same-origin');
    expect(text).toContain('token.allowedOrigins');
    expect(await hubIdentity(context)).toBeUndefined();
    await context.close();
  });

  test("the browsers' default policy sends the issuer's origin: the handoff goes on to the confirmation and lands", async () => {
    const { context, page } = await browserContext();
    await page.goto(`${immerseOrigin}/default?user=rita`);
    await page.click('#open');
    await page.waitForSelector('#confirm');
    await page.click('#confirm');
    await page.waitForURL((u) => u.pathname === '/user/rita/lab', { timeout: 60_000 });
    expect(page.url()).toBe(labOf('rita'));
    await context.close();
  });
});
