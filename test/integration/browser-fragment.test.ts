/**
 * A real browser follows a `#token=` link: the fragment page's script runs under the CSP (allowed by
 * its hash), posts the token, and the redirect to the hub is allowed by form-action. The token never
 * reaches the server in a URL, a log line, or the hub's Referer.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../support/browser.js';
import { hmacKey, mint, randomSessionId, startTestService, tempDir, testConfig, type TestService } from '../support/core.js';

let browser: Browser;
let hub: Server;
let hubUrl: string;
const hubRequests: { url: string; headers: IncomingHttpHeaders }[] = [];
let svc: TestService;

beforeAll(async () => {
  // A stand-in for the hub's public URL: it only records what the browser asks for.
  hub = createServer((req, res) => {
    hubRequests.push({ url: req.url ?? '', headers: req.headers });
    res.setHeader('content-type', 'text/html');
    res.end('<!doctype html><title>lab</title><p>lab</p>');
  });
  await new Promise<void>((r) => hub.listen(0, '127.0.0.1', r));
  hubUrl = `http://127.0.0.1:${(hub.address() as AddressInfo).port}`;
  svc = await startTestService(testConfig({ store: { local: { dir: tempDir('oh-browser-') } }, redirect: { hubPublicUrl: hubUrl } }));
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await svc?.close();
  hub?.closeAllConnections();
  await new Promise((r) => hub?.close(r));
});

test('a #token= link lands on the lab with bare omnisci and reset; the token stays out of URLs, logs and Referer', async () => {
  const session = randomSessionId();
  const token = await mint(hmacKey('HS256'), { subject: 'Olga', omnisci: { session } });
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(`${svc.url}handoff#token=${token}`);
  await page.waitForURL(`${hubUrl}/user/olga/lab?omnisci&reset`, { timeout: 15_000 });
  expect(page.url()).toBe(`${hubUrl}/user/olga/lab?omnisci&reset`);
  expect(errors.filter((e) => /Content Security Policy/i.test(e))).toEqual([]);
  const landed = hubRequests.find((r) => r.url === '/user/olga/lab?omnisci&reset');
  expect(landed).toBeDefined();
  expect(landed?.headers.referer).toBeUndefined();
  const urls = svc.logs.records().map((r) => (r.req as { url?: string } | undefined)?.url).filter(Boolean);
  expect(urls).toEqual(expect.arrayContaining(['/handoff']));
  for (const line of svc.logs.lines) {
    expect(line).not.toContain(token);
    expect(line).not.toContain(session);
  }
  expect((await svc.store.get('olga'))?.session).toBe(session);
  await page.close();
});

test('a link without a token explains itself instead of posting', async () => {
  const page = await browser.newPage();
  await page.goto(`${svc.url}handoff`);
  await expect(page.locator('#msg').textContent()).resolves.toContain('no handoff token');
  expect(page.url()).toBe(`${svc.url}handoff`);
  await page.close();
});
