/**
 * Shared servers and named servers against a real JupyterHub 5 (test/support/jupyterhub.ts) with
 * `allow_named_servers`, the spawner hook over the service's local store, and single-user servers on
 * jupyter_server 2 + JupyterLab 4 with omnisci-handoff-jupyter (.cache/venv-jlab4). Two Chromium
 * contexts: alice (the owner) and bob (her guest), both logged in to the hub (login mode sso).
 *
 * - A handoff naming an allowed server (hub.namedServers) starts it and lands on
 *   /user/alice/analysis/lab?omnisci&reset, where the owner gets the session; a name not allowed, or
 *   not a server name, is refused with its code and changes nothing (store, hub).
 * - alice shares that server with bob through the hub's shares API (from her browser session, as the
 *   hub's own pages call it): every later handoff for alice, for any of her servers, is refused with
 *   `server_shared` — the store untouched, nothing started.
 * - With hub.allowSharedServers the same handoff lands; bob, in his own context, opens alice's shared
 *   lab and gets 403 `not_owner` from /omnisci/session while alice gets the new session.
 * - A role without `read:shares` fails closed (`hub_forbidden`, the log names the scope).
 */
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { randomSessionId } from '../../src/handoff/mint.js';
import { userDir } from '../../src/store/local.js';
import { launchChromium } from '../support/browser.js';
import { hmacKey, mint, tempDir } from '../support/core.js';
import { startHubService, type HubService } from '../support/hub-service.js';
import { SERVICE_SCOPES, spawnerHookConfig, startHub, waitFor, type RunningHub } from '../support/jupyterhub.js';
import { JLAB4_VENV, jupyterLab4Installed, pageWaiter } from '../support/jupyterlab4.js';

jest.setTimeout(300_000);

const key = hmacKey('HS256');
const storeDir = tempDir('oh-shares-');
const NAMED = { enabled: true, allowed: ['analysis'] };
const py = (v: unknown) => JSON.stringify(v);
const sessions: string[] = [];

let hub: RunningHub;
let svc: HubService;
let browser: Browser;
let owner: BrowserContext;
let guest: BrowserContext;

beforeAll(async () => {
  if (!jupyterLab4Installed()) throw new Error('JupyterLab 4 is not installed: run scripts/deps/jupyterlab4.sh');
  hub = await startHub({
    users: ['alice', 'bob'],
    serviceScopes: SERVICE_SCOPES,
    // A role without read:shares, as an admin who missed it would have.
    extraServices: { 'no-shares': ['servers'] },
    env: { PYTHONDONTWRITEBYTECODE: '1' },
    extraConfig: `
${spawnerHookConfig(storeDir)}c.Spawner.cmd = [${py(join(JLAB4_VENV, 'bin/jupyterhub-singleuser'))}]
c.Spawner.args = ['--ServerApp.allow_root=True', '--LabApp.news_url=None', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate']
c.Spawner.default_url = '/lab'
c.Spawner.environment = {'PATH': ${py(`${join(JLAB4_VENV, 'bin')}:/usr/bin:/bin`)}, 'PYTHONWARNINGS': 'ignore'}
c.Spawner.start_timeout = 240
c.Spawner.http_timeout = 240
c.JupyterHub.allow_named_servers = True
# JupyterHub 5's sharing docs: users may share their own servers, naming the user by name.
c.JupyterHub.load_roles.append({'name': 'user', 'scopes': ['self', 'shares!user', 'read:users:name']})
`,
  });
  svc = await startHubService({ hub, storeDir, hubConfig: { namedServers: NAMED } });
  browser = await launchChromium();
  owner = await browser.newContext();
  guest = await browser.newContext();
  await logIn(owner, 'alice');
  await logIn(guest, 'bob');
});

afterAll(async () => {
  await browser?.close();
  await svc?.close();
  const log = hub?.log() ?? '';
  await hub?.stop();
  for (const s of sessions) expect(log).not.toContain(s);
  for (const dir of [storeDir, `${storeDir}-jupyter`]) rmSync(dir, { recursive: true, force: true });
});

async function logIn(context: BrowserContext, name: string): Promise<void> {
  const page = await context.newPage();
  // To the hub's home page: the hub's default next (/hub/spawn) would start the default server.
  await page.goto(`${hub.publicUrl}/hub/login?next=${encodeURIComponent('/hub/home')}`);
  await page.fill('#username_input', name);
  await page.fill('#password_input', 'any');
  await Promise.all([page.waitForURL((u) => u.pathname.endsWith('/hub/home')), page.click('#login_submit')]);
  await page.close();
}

/** A handoff for `subject` (alice), as Immerse's link would open it; `server`: the claim (omitted when undefined). */
async function handoffToken(server?: string, subject = 'alice'): Promise<{ token: string; session: string }> {
  const session = randomSessionId();
  sessions.push(session);
  const token = await mint(key, { subject, omnisci: { session }, ...(server === undefined ? {} : { extraClaims: { server } }) });
  return { token, session };
}

/** Opens a handoff link in alice's browser; the navigation requests it made (every redirect hop) and the page. */
async function openHandoff(token: string): Promise<{ page: Page; status: number; hops: string[] }> {
  const page = await owner.newPage();
  const hops: string[] = [];
  page.on('request', (r) => {
    if (r.isNavigationRequest() && r.frame() === page.mainFrame()) hops.push(r.url());
  });
  const r = await page.goto(`${svc.url}handoff?token=${token}`);
  return { page, status: r?.status() ?? 0, hops };
}

/** Every file of the store, with its content and mtime: "changes nothing" is this, equal before and after. */
function storeSnapshot(): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else out[p] = `${statSync(p).mtimeMs} ${readFileSync(p, 'utf8')}`;
    }
  };
  walk(storeDir);
  return out;
}

const servers = async () => ((await hub.admin('GET', '/users/alice')).json as { servers: Record<string, { ready: boolean }> }).servers;

const sessionOf = async (context: BrowserContext, server: string) => {
  const r = await context.request.get(`${hub.publicUrl}/user/alice/${server}/omnisci/session`, { maxRedirects: 0 });
  return { status: r.status(), text: await r.text() };
};

/** Whether the browser was sent to the named server's lab with both bare params (further params may follow them). */
const toLab = (hops: string[]) => hops.some((u) => /^[^?]*\/user\/alice\/analysis\/lab\?omnisci&reset(&|$)/.test(u) && u.startsWith(`${hub.publicUrl}/`));

test('a handoff naming an allowed server starts it and lands on /user/alice/analysis/lab?omnisci&reset', async () => {
  const { token, session } = await handoffToken('analysis');
  const { page, hops } = await openHandoff(token);
  const waitFor_ = pageWaiter(page);
  await waitFor_('the named server\'s lab', () => page.waitForURL(/\/user\/alice\/analysis\/lab/, { timeout: 240_000 }));
  // The service sent the browser there with both bare params (the hub's own redirects may follow).
  expect(hops.some((u) => u.includes('/progress/'))).toBe(true);
  expect(toLab(hops)).toBe(true);
  await waitFor_('the lab', () => page.locator('#jp-main-statusbar').waitFor({ timeout: 120_000 }));
  const s = await servers();
  expect(s.analysis?.ready).toBe(true);
  // Only the named server was started.
  expect(s['']).toBeUndefined();
  // The session is the user's: the named server reads it from the user's store directory.
  const answer = await sessionOf(owner, 'analysis');
  expect(answer.status).toBe(200);
  expect((JSON.parse(answer.text) as { session: string }).session).toBe(session);
  await page.close();
});

test('a server name not allowed, or not a server name, is refused with its code and changes nothing', async () => {
  const before = storeSnapshot();
  for (const [server, status, code] of [
    ['gpu', 403, 'server_not_allowed'],
    ['..', 400, 'server_name_invalid'],
    ['a/b', 400, 'server_name_invalid'],
  ] as const) {
    const { token } = await handoffToken(server);
    const { page, status: got } = await openHandoff(token);
    expect({ server, status: got, code: await page.locator('code').first().innerText() }).toEqual({ server, status, code });
    await page.close();
  }
  expect(storeSnapshot()).toEqual(before);
  expect(Object.keys(await servers()).sort()).toEqual(['analysis']);
  // A user the hub does not know shares nothing (its 404 is not a refusal): the next gate answers.
  const { token } = await handoffToken(undefined, 'carol');
  const { page, status } = await openHandoff(token);
  expect({ status, code: await page.locator('code').first().innerText() }).toEqual({ status: 404, code: 'hub_user_unknown' });
  await page.close();
});

test("alice shares her server with bob through the hub's API: every handoff for alice is refused with server_shared, nothing stored or started", async () => {
  const page = await owner.newPage();
  await page.goto(`${hub.publicUrl}/hub/home`);
  // As the hub's own pages call its API: the page's XSRF token (jhdata) in X-XSRFToken.
  const xsrf = await page.evaluate<string>('window.jhdata.xsrf_token');
  const shared = await page.evaluate(
    async ([apiUrl, token]) => {
      const r = await fetch(`${apiUrl}/shares/alice/analysis`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-XSRFToken': token },
        body: JSON.stringify({ user: 'bob' }),
      });
      return { status: r.status, body: (await r.json()) as { scopes?: string[] } };
    },
    [hub.apiUrl, xsrf] as const,
  );
  expect(shared).toMatchObject({ status: 200, body: { scopes: ['access:servers!server=alice/analysis'] } });
  await page.close();

  const before = storeSnapshot();
  expect(Object.keys(before).length).toBeGreaterThan(0);
  // The shared server itself, and the default one: the session is the user's and would reach both.
  for (const server of ['analysis', undefined]) {
    const { token, session } = await handoffToken(server);
    const { page: p, status } = await openHandoff(token);
    const text = await p.locator('body').innerText();
    expect({ server, status, code: await p.locator('code').first().innerText() }).toEqual({ server, status: 403, code: 'server_shared' });
    expect(text).toContain('shared with other JupyterHub users');
    expect(text).not.toContain(session);
    await p.close();
  }
  expect(storeSnapshot()).toEqual(before);
  expect(Object.keys(await servers()).sort()).toEqual(['analysis']);
  expect(svc.logs.records().filter((r) => r.event === 'handoff' && r.outcome === 'server_shared')).toHaveLength(2);
});

test('with hub.allowSharedServers the handoff lands; bob, the guest, gets 403 not_owner from /omnisci/session', async () => {
  await svc.close();
  svc = await startHubService({ hub, storeDir, hubConfig: { namedServers: NAMED, allowSharedServers: true } });
  const { token, session } = await handoffToken('analysis');
  const { page, hops } = await openHandoff(token);
  // The server runs: straight to its lab.
  await page.waitForURL(/\/user\/alice\/analysis\/lab/, { timeout: 120_000 });
  expect(toLab(hops)).toBe(true);
  expect(hops.some((u) => u.includes('/progress/'))).toBe(false);
  await page.close();
  const mine = await waitFor(async () => {
    const r = await sessionOf(owner, 'analysis');
    return r.status === 200 && (JSON.parse(r.text) as { session: string }).session === session ? r : undefined;
  });
  expect(mine.status).toBe(200);

  // bob opens alice's shared lab (the hub asks him to authorize access to it first).
  const lab = await guest.newPage();
  await lab.goto(`${hub.publicUrl}/user/alice/analysis/lab`);
  await lab.waitForURL(/\/user\/alice\/analysis\/lab|\/hub\/api\/oauth2\/authorize/, { timeout: 120_000 });
  if (lab.url().includes('/oauth2/authorize')) await lab.getByRole('button', { name: /Authorize/ }).click();
  await lab.locator('#jp-main-statusbar').waitFor({ timeout: 120_000 });
  await lab.close();
  const theirs = await sessionOf(guest, 'analysis');
  expect({ status: theirs.status, error: (JSON.parse(theirs.text) as { error?: string }).error }).toEqual({ status: 403, error: 'not_owner' });
  expect(theirs.text).not.toContain(session);
  expect(existsSync(join(userDir(storeDir, 'bob'), 'state.json'))).toBe(false);
});

test('a role without read:shares fails closed: 500 hub_forbidden naming the scope, nothing stored or started', async () => {
  await svc.close();
  svc = await startHubService({ hub, storeDir, apiToken: hub.extraTokens['no-shares'], hubConfig: { namedServers: NAMED } });
  const before = storeSnapshot();
  const { token } = await handoffToken('analysis');
  const { page, status } = await openHandoff(token);
  expect({ status, code: await page.locator('code').first().innerText() }).toEqual({ status: 500, code: 'hub_forbidden' });
  await page.close();
  expect(storeSnapshot()).toEqual(before);
  expect(svc.logs.records().some((r) => r.code === 'hub_forbidden' && String(r.detail).includes('read:shares'))).toBe(true);
});
