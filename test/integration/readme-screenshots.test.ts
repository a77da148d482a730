/**
 * The README's pictures, taken by a real browser (Debian Chromium via playwright-core) so they stay
 * current: the progress page of a handoff while a real JupyterHub starts a (slow) server
 * (docs/images/progress-page.png), and local mode's landing page (docs/images/local-landing.png).
 * Each is asserted before it is taken: the page shows what the picture claims.
 */
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { devSetup } from '../../src/dev.js';
import { launchChromium } from '../support/browser.js';
import { hmacKey, mint, startTestService, tempDir, type TestService } from '../support/core.js';
import { startHubService, type HubService } from '../support/hub-service.js';
import { freePort, SERVICE_SCOPES_CREATE, startHub, type RunningHub } from '../support/jupyterhub.js';
import { ROOT } from '../support/root.js';

jest.setTimeout(120_000);
const IMAGES = join(ROOT, 'docs/images');
const VIEWPORT = { width: 960, height: 640 };

let browser: Browser;
const cleanup: (() => Promise<unknown> | void)[] = [];

beforeAll(async () => {
  mkdirSync(IMAGES, { recursive: true });
  browser = await launchChromium();
});

afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
  await browser?.close();
});

test('local mode: the demo link ends on the page of what the notebook receives (docs/images/local-landing.png)', async () => {
  const data = tempDir('oh-shot-local-');
  cleanup.push(() => rmSync(data, { recursive: true, force: true }));
  const dev = await devSetup({ PORT: '0', OMNISCI_HANDOFF_DATA: data });
  const svc: TestService = await startTestService(dev.config, { demoToken: () => dev.mintDemo() });
  cleanup.push(() => svc.close());

  const page = await browser.newPage({ viewport: VIEWPORT });
  const errors: string[] = [];
  page.on('console', (m) => void (m.type() === 'error' && /Content Security Policy/.test(m.text()) && errors.push(m.text())));
  await page.goto(`${svc.url}dev/demo`);
  await page.waitForURL(/\/local\/[A-Za-z0-9_-]{22}$/);
  const session = (JSON.parse(readFileSync(join(data, 'users/demo/session'), 'utf8')) as { session: string }).session;
  expect(await page.textContent('h1')).toBe('Session handed over to demo');
  const file = (await page.textContent('#session-file')) ?? '';
  expect(file).toContain(session.slice(-4));
  expect(file).not.toContain(session);
  expect(await page.textContent('#lab-url')).toBe('http://127.0.0.1:8000/user/demo/lab?omnisci&reset');
  // No CSP violation: the page needs nothing the service's policy does not allow.
  expect(errors).toEqual([]);
  // The Jupyter config open, as a reader would look at it.
  await page.click('#jupyter-config details:nth-of-type(3) summary');
  await page.screenshot({ path: join(IMAGES, 'local-landing.png'), fullPage: true });
  await page.close();
});

test('a handoff against a real hub shows the progress page while the server starts (docs/images/progress-page.png)', async () => {
  const [port, immersePort] = [await freePort(), await freePort()];
  const hub: RunningHub = await startHub({ serviceScopes: SERVICE_SCOPES_CREATE, serviceUrl: `http://127.0.0.1:${port}`, slowSeconds: 2 });
  cleanup.push(() => hub.stop());
  const svc: HubService = await startHubService({
    hub,
    port,
    basePath: '/services/omnisci-handoff/',
    hubConfig: { createUsers: true },
    // Immerse's origin posts the handoff cross-site.
    tokenConfig: { allowedOrigins: [`http://localhost:${immersePort}`] },
  });
  cleanup.push(() => svc.close());
  // Immerse stand-in on another origin: a form with a freshly minted token.
  const key = hmacKey('HS256');
  const immerse: Server = createServer((_req, res) => {
    void mint(key, { subject: 'held-ada' }).then((token) => {
      res.setHeader('content-type', 'text/html');
      res.end(`<!doctype html><title>Immerse</title><form method="post" action="${svc.url}handoff">
<input type="hidden" name="token" value="${token}"><button id="open">Open in notebook</button></form>`);
    });
  });
  await new Promise<void>((r) => immerse.listen(immersePort, 'localhost', () => r()));
  cleanup.push(() => void immerse.close());

  const page = await browser.newPage({ viewport: VIEWPORT });
  await page.goto(`http://localhost:${(immerse.address() as AddressInfo).port}/`);
  await page.click('#open');
  await page.waitForURL(/\/services\/omnisci-handoff\/progress\//);
  expect(await page.textContent('h1')).toBe('Starting your notebook server');
  // The hub's own progress message, pushed over SSE into the page.
  await page.locator('#msg', { hasText: /Still pulling the image/ }).waitFor();
  expect(await page.$eval('#bar', (el) => (el as unknown as { value: number }).value)).toBe(50);
  await page.click('details summary');
  await page.screenshot({ path: join(IMAGES, 'progress-page.png'), fullPage: true });
  // …and once the test lets the spawn finish, it ends on the lab.
  hub.releaseSpawn('held-ada');
  await page.waitForURL(/\/user\/held-ada\/lab/, { timeout: 60_000 });
  expect(page.url()).toBe(`${hub.publicUrl}/user/held-ada/lab?omnisci&reset`);
  await page.close();
});
