/**
 * Local mode (`npm start`, src/dev.ts) without a hub ends on the service's own page
 * (src/web/landing/local.ts) showing what the notebook would receive — not on a redirect to a hub at
 * 127.0.0.1:8000 that does not exist. With HUB_PUBLIC_URL the handoff still redirects to the lab.
 * Chromium follows every link `npm start` prints and the page offers, as a newcomer does (the
 * page's "Next: npm run demo" is followed in Chromium by test/integration/demo.test.ts).
 */
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DEMO_QUERY, DEV_AUDIENCE, DEV_ISSUER, DEV_TYP, devSetup, type DevSetup } from '../../src/dev.js';
import { mintToken, randomSessionId } from '../../src/handoff/mint.js';
import { escapeHtml } from '../../src/web/pages.js';
import { maskSession } from '../../src/web/landing/local.js';
import { jupyterConfigFiles } from '../../src/notebook/outputs.js';
import { launchChromium } from '../support/browser.js';
import { postToken, startTestService, tempDir, type TestService } from '../support/core.js';
import { serveCli } from '../support/process.js';

jest.setTimeout(120_000);

const dirs: string[] = [];
const started: TestService[] = [];

async function localMode(env: Record<string, string> = {}): Promise<{ dev: DevSetup; svc: TestService; data: string }> {
  const data = tempDir('oh-local-landing-');
  dirs.push(data);
  const dev = await devSetup({ PORT: '0', OMNISCI_HANDOFF_DATA: data, ...env });
  const svc = await startTestService(dev.config, { demoToken: () => dev.mintDemo() });
  started.push(svc);
  return { dev, svc, data };
}

afterAll(async () => {
  await Promise.all(started.map((s) => s.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The demo page's token, as the auto-submitting form carries it. */
async function demoToken(url: string): Promise<string> {
  const page = await (await fetch(`${url}dev/demo`)).text();
  return /name="token" value="([^"]+)"/.exec(page)?.[1] as string;
}

const cookieOf = (res: Response) => (res.headers.get('set-cookie') ?? '').split(';')[0] as string;

describe('local mode without a hub', () => {
  let dev: DevSetup;
  let svc: TestService;
  let data: string;
  beforeAll(async () => {
    ({ dev, svc, data } = await localMode());
  });

  test('the demo handoff ends on the page of what the notebook receives, nothing secret in a URL', async () => {
    const token = await demoToken(svc.url);
    const res = await postToken(svc.url, token, { accept: 'text/html' });
    expect(res.status).toBe(303);
    const location = res.headers.get('location') as string;
    expect(location).toMatch(/^\/local\/[A-Za-z0-9_-]{22}$/);
    const cookie = cookieOf(res);
    expect(cookie).toMatch(/^ohl-[A-Za-z0-9_-]{22}=/);
    expect(res.headers.get('set-cookie')).toMatch(new RegExp(`Path=${location}; .*HttpOnly`, 'i'));

    const file = readFileSync(join(data, 'users', 'demo', 'session'), 'utf8');
    const { session, query } = JSON.parse(file) as { session: string; query: string };
    expect(session).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(query).toBe(DEMO_QUERY);
    expect(location).not.toContain(session);

    const page = await fetch(new URL(location, svc.url), { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await page.text();
    expect(html).toContain('<h1>Session handed over to <code>demo</code></h1>');
    // The session file as the store wrote it, the id masked but for its last 4 characters.
    expect(html).toContain(`<pre id="session-file"><code>${escapeHtml(file.replace(session, maskSession(session)))}</code></pre>`);
    expect(maskSession(session)).toBe(`${'•'.repeat(28)}${session.slice(-4)}`);
    expect(html).not.toContain(session);
    expect(html).not.toContain(session.slice(0, 8));
    expect(html).not.toContain(token);
    const sessionPath = join(data, 'users', 'demo', 'session');
    expect(html).toContain(`<code id="session-path">${escapeHtml(sessionPath)}</code>`);
    expect(html).toContain('<pre id="env"><code>OMNISCI_PROTOCOL=http\nOMNISCI_HOST=localhost\nOMNISCI_PORT=6278</code></pre>');
    // The Jupyter config files the spawner hook gives the server, pointing at that session file.
    for (const [path, content] of Object.entries(jupyterConfigFiles(dev.config.notebook, sessionPath)))
      expect(html).toContain(`<summary><code>${escapeHtml(path)}</code></summary><pre><code>${escapeHtml(content)}</code></pre>`);
    expect(html).toContain('<code id="lab-url">http://127.0.0.1:8000/user/demo/lab?omnisci&#38;reset</code>');
    for (const next of ['npm run demo', 'HUB_PUBLIC_URL=https://hub.example.org npm start', 'redirect.hubPublicUrl', 'docs/jupyterhub.md', 'docs/doctor.md'])
      expect(html).toContain(next);
    expect(html).toContain('<a id="again" href="/dev/demo">');
    // Nothing that needs a CSP exception: no script, no external resource.
    expect(html).not.toMatch(/<script|src=|https?:\/\/(?!127\.0\.0\.1:8000|hub\.example\.org)/);
  });

  test('another browser (no cookie, or another one) gets a 404', async () => {
    const res = await postToken(svc.url, await demoToken(svc.url));
    const location = res.headers.get('location') as string;
    expect((await fetch(new URL(location, svc.url))).status).toBe(404);
    const other = await postToken(svc.url, await demoToken(svc.url));
    const wrong = await fetch(new URL(location, svc.url), { headers: { cookie: cookieOf(other).replace(/^ohl-[^=]+/, location.replace('/local/', 'ohl-')) } });
    expect(wrong.status).toBe(404);
    expect(await wrong.text()).toContain('This page has expired');
    expect((await fetch(new URL('/local/nope', svc.url))).status).toBe(404);
  });

  test('what a token carries is escaped; an older handoff shows the stored session it did not replace', async () => {
    const mint = (query: string, iat?: number) =>
      mintToken(dev.signing, {
        issuer: DEV_ISSUER,
        audience: DEV_AUDIENCE,
        typ: DEV_TYP,
        subject: 'mallory',
        lifetimeSeconds: 300,
        ...(iat ? { iat } : {}),
        omnisci: { session: randomSessionId(), query },
      });
    const now = Math.floor(Date.now() / 1000);
    const res = await postToken(svc.url, await mint('</code></pre><script>alert("x")</script>', now));
    const html = await (await fetch(new URL(res.headers.get('location') as string, svc.url), { headers: { cookie: cookieOf(res) } })).text();
    expect(html).not.toContain('<script>alert');
    expect(html).toContain('&#60;/code&#62;&#60;/pre&#62;&#60;script&#62;alert(\\&#34;x\\&#34;)&#60;/script&#62;');
    expect(html).not.toContain('id="superseded"');

    const stored = (JSON.parse(readFileSync(join(data, 'users', 'mallory', 'session'), 'utf8')) as { session: string }).session;
    const older = await postToken(svc.url, await mint('SELECT 2', now - 10));
    const page = await (await fetch(new URL(older.headers.get('location') as string, svc.url), { headers: { cookie: cookieOf(older) } })).text();
    expect(page).toContain('id="superseded"');
    expect(page).toContain(maskSession(stored));
    expect(page).not.toContain('SELECT 2');
  });
});

test('with HUB_PUBLIC_URL, local mode keeps redirecting to the lab, and serves no local page', async () => {
  const { svc } = await localMode({ HUB_PUBLIC_URL: 'https://hub.test/' });
  const res = await postToken(svc.url, await demoToken(svc.url));
  expect(res.status).toBe(303);
  expect(res.headers.get('location')).toBe('https://hub.test/user/demo/lab?omnisci&reset');
  expect(res.headers.get('set-cookie')).toBeNull();
  expect((await fetch(`${svc.url}local/anything`)).status).toBe(404);
});

describe('npm start, followed in Chromium as a newcomer follows it', () => {
  const sessionOf = (data: string) => (JSON.parse(readFileSync(join(data, 'users', 'demo', 'session'), 'utf8')) as { session: string }).session;

  test('both links it prints end on the page of what the notebook receives; the page\'s "Hand over another demo session" hands over a new one', async () => {
    const data = tempDir('oh-local-browser-');
    dirs.push(data);
    const served = await serveCli([], { PORT: '0', OMNISCI_HANDOFF_DATA: data });
    const browser = await launchChromium();
    try {
      const demo = (await served.waitFor(/\n {2}(http:\/\/\S+\/dev\/demo)\n/))[1] as string;
      const oneTime = (await served.waitFor(/\n {2}(http:\/\/\S+\/handoff#token=\S+)\n/))[1] as string;
      const page = await browser.newPage();
      /** On a local page other than `previous`. */
      const landed = async (previous?: string) => {
        await page.waitForURL((u) => /^\/local\/[A-Za-z0-9_-]{22}$/.test(u.pathname) && u.href !== previous);
        expect(await page.textContent('h1')).toBe('Session handed over to demo');
        const session = sessionOf(data);
        expect(await page.textContent('#session-file')).toContain(session.slice(-4));
        return { url: page.url(), session };
      };

      // The one-time link (the token in the fragment, posted by the page's script); it was minted first, so it goes first
      // (a handoff older than the stored session does not replace it).
      await page.goto(oneTime);
      const first = await landed();

      await page.goto(demo);
      const second = await landed(first.url);
      expect(second.session).not.toBe(first.session);
      // What the page tells a newcomer to try next.
      const next = (await page.textContent('#next')) ?? '';
      for (const item of ['npm run demo', 'HUB_PUBLIC_URL=https://hub.example.org npm start', 'docs/non-kubernetes.md']) expect(next).toContain(item);

      await page.click('#again');
      const again = await landed(second.url);
      expect(again.session).not.toBe(second.session);
    } finally {
      await browser.close();
      await served.stop();
    }
  });

  test('Next, "use your hub": with HUB_PUBLIC_URL the printed link ends on that hub\'s lab', async () => {
    const data = tempDir('oh-local-browser-');
    dirs.push(data);
    // The hub: what it is asked for, answered with a page.
    const asked: string[] = [];
    const hub = createServer((req, res) => {
      asked.push(req.url ?? '');
      res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>JupyterLab</title>');
    });
    await new Promise<void>((r) => hub.listen(0, '127.0.0.1', () => r()));
    const hubUrl = `http://127.0.0.1:${(hub.address() as AddressInfo).port}`;
    const served = await serveCli([], { PORT: '0', OMNISCI_HANDOFF_DATA: data, HUB_PUBLIC_URL: hubUrl });
    const browser = await launchChromium();
    try {
      const demo = (await served.waitFor(/\n {2}(http:\/\/\S+\/dev\/demo)\n/))[1] as string;
      expect(served.output()).toContain(`redirect to ${hubUrl}/user/demo/lab?omnisci&reset`);
      const page = await browser.newPage();
      await page.goto(demo);
      await page.waitForURL(`${hubUrl}/user/demo/lab?omnisci&reset`);
      expect(asked.filter((u) => u !== '/favicon.ico')).toEqual(['/user/demo/lab?omnisci&reset']);
      expect(sessionOf(data)).toMatch(/^[A-Za-z0-9]{32}$/);
    } finally {
      await browser.close();
      await served.stop();
      hub.close();
    }
  });
});
