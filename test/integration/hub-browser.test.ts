/**
 * A real browser (Debian Chromium via playwright-core; scripts/deps/chromium.sh) against a real hub:
 * an "Immerse" page on another origin posts a minted token, the browser sees the progress page
 * (SSE + same-origin script under the service's CSP) and ends on the lab URL with both bare params.
 * The hub holds a start request until the spawn ends (slow_spawn_timeout far beyond the test, the
 * service's own request timeout too) and every spawn is held (`held-*`) until the test has seen what it
 * asserts, so the progress page shows while the hub has not yet answered the start request.
 */
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { hmacKey, mint } from '../support/core.js';
import { startHubService, type HubService } from '../support/hub-service.js';
import { freePort, SERVICE_SCOPES_CREATE, startHub, type RunningHub } from '../support/jupyterhub.js';

jest.setTimeout(120_000);
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

let hub: RunningHub;
let svc: HubService;
let immerse: Server;
let browser: Browser;
/** The Immerse page handing over `user`. */
const immerseUrl = (user: string) => `http://localhost:${(immerse.address() as AddressInfo).port}/?user=${user}`;

beforeAll(async () => {
  const [port, immersePort] = [await freePort(), await freePort()];
  hub = await startHub({ serviceScopes: SERVICE_SCOPES_CREATE, serviceUrl: `http://127.0.0.1:${port}`, slowSpawnTimeout: 3600 });
  // Immerse's origin is the one allowed to post handoffs cross-site (token.allowedOrigins).
  svc = await startHubService({
    hub,
    port,
    basePath: '/services/omnisci-handoff/',
    hubConfig: { createUsers: true, requestTimeoutMs: 120_000 },
    tokenConfig: { allowedOrigins: [`http://localhost:${immersePort}`] },
  });
  const key = hmacKey('HS256');
  // Immerse stand-in: a page with an "open in notebook" form carrying a freshly minted token.
  immerse = createServer((req, res) => {
    void mint(key, { subject: new URL(req.url ?? '/', 'http://x').searchParams.get('user') ?? '' }).then((token) => {
      res.setHeader('content-type', 'text/html');
      res.end(`<!doctype html><title>Immerse</title><form method="post" action="${svc.url}handoff">
<input type="hidden" name="token" value="${token}"><button id="open">Open in notebook</button></form>`);
    });
  });
  await new Promise<void>((r) => immerse.listen(immersePort, 'localhost', () => r()));
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
});

afterAll(async () => {
  await browser?.close();
  immerse?.close();
  await svc?.close();
  await hub?.stop();
});

test('the browser goes from the Immerse form through the progress page to the lab with ?omnisci&reset', async () => {
  const page = await browser.newPage();
  const seen: string[] = [];
  const progressTexts: string[] = [];
  page.on('framenavigated', (f) => {
    if (f === page.mainFrame()) seen.push(f.url());
  });
  page.on('console', (m) => {
    if (m.type() === 'error') progressTexts.push(`console error: ${m.text()}`);
  });
  await page.goto(immerseUrl('held-browser'));
  await page.click('#open');
  // The spawn is held until the test has seen the progress page.
  await page.waitForURL(/\/progress\//);
  await page.waitForSelector('#bar');
  progressTexts.push((await page.textContent('h1')) ?? '');
  hub.releaseSpawn('held-browser');
  await page.waitForURL(/\/user\/held-browser\/lab/, { timeout: 60_000 });

  expect(page.url()).toBe(`${hub.publicUrl}/user/held-browser/lab?omnisci&reset`);
  expect(await page.textContent('#path')).toBe('/user/held-browser/lab?omnisci&reset');
  expect(progressTexts).toEqual(['Starting your notebook server']);
  const progress = seen.filter((u) => u.includes('/progress/'));
  expect(progress.length).toBeGreaterThan(0);
  // The JS path ended it (no CSP errors above); no URL the browser showed carried a token or session.
  expect(seen.every((u) => !/token|session/i.test(u))).toBe(true);
  await page.close();
});

test('a server that starts later than any timeout: the progress page while the hub still holds the start, then the lab', async () => {
  const page = await browser.newPage();
  await page.goto(immerseUrl('held-late'));
  await page.click('#open');
  // The spawn cannot end before the test releases it, so neither can the hub's answer to the start request.
  await page.waitForURL(/\/progress\//);
  expect(await page.textContent('h1')).toBe('Starting your notebook server');
  const { json } = await hub.admin('GET', '/users/held-late');
  expect((json as { servers: Record<string, { pending: string | null }> }).servers['']?.pending).toBe('spawn');
  // The hub logs a request when it answers it.
  expect(hub.log()).not.toMatch(/POST \/hub\/api\/users\/held-late\/server/);
  hub.releaseSpawn('held-late');
  await page.waitForURL(/\/user\/held-late\/lab/, { timeout: 60_000 });
  expect(page.url()).toBe(`${hub.publicUrl}/user/held-late/lab?omnisci&reset`);
  expect(hub.log()).toMatch(/20[12] POST \/hub\/api\/users\/held-late\/server/);
  await page.close();
});
