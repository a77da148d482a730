/**
 * A shared server keeps its session from guests, with a real JupyterHub 5 (test/support/jupyterhub.ts)
 * whose single-user servers are jupyterhub-singleuser on jupyter_server 2 + JupyterLab 4 with
 * omnisci-handoff-jupyter (.cache/venv-jlab4) and the Jupyter config the service generates.
 *
 * alice (the owner) logs in in one Chromium context, starts her server and shares it with bob
 * through the hub's shares API (POST /hub/api/shares/alice/, from her browser session, as JupyterHub
 * 5's sharing docs do); bob logs in in a second context and opens alice's lab (the hub asks him to
 * authorize access to a shared server). alice gets the session from GET /user/alice/omnisci/session;
 * bob gets 403 `not_owner` there and on the status endpoint, his lab's status item says the session
 * is the owner's, and `?omnisci` opens no notebook for him.
 */
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { connectionEnv, jupyterConfigFiles, sessionFileContent } from '../../src/notebook/outputs.js';
import { launchChromium } from '../support/browser.js';
import { startHeavyDb, type HeavyDbStandIn } from '../../scripts/demo/heavydb/standin.js';
import { startHub, waitFor as until, type RunningHub } from '../support/jupyterhub.js';
import { JLAB4_VENV, pageWaiter, replaceFile, SERVICE_NOTEBOOK_DEFAULTS } from '../support/jupyterlab4.js';
import { writeTree } from '../support/notebook.js';

jest.setTimeout(300_000);

type Connection = Parameters<typeof connectionEnv>[0];

const SESSION = 'ShRdQ9LmT2pR7sWc4NhB8yFd1GjZ6aUe';
const nbConfig = SERVICE_NOTEBOOK_DEFAULTS;

let dir: string;
let heavy: HeavyDbStandIn;
let hub: RunningHub;
let browser: Browser;
let owner: BrowserContext;
let guest: BrowserContext;

const py = (v: unknown) => JSON.stringify(v);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'oh-jl4hub-'));
  const sessionFile = join(dir, 'session');
  heavy = await startHeavyDb({ sessions: { [SESSION]: { user: 'alice', database: 'heavyai' } } });
  replaceFile(sessionFile, sessionFileContent({ session: SESSION, query: 'SELECT 1' }, 'json'));
  const configDir = writeTree(jupyterConfigFiles(nbConfig, sessionFile), join(dir, 'jupyter-config'));
  const env = {
    ...connectionEnv({ protocol: heavy.protocol, host: heavy.host, port: heavy.port, database: '' } as Connection, nbConfig.env),
    JUPYTER_CONFIG_PATH: configDir,
    PATH: `${join(JLAB4_VENV, 'bin')}:/usr/bin:/bin`,
    PYTHONWARNINGS: 'ignore',
  };
  hub = await startHub({
    users: ['alice', 'bob'],
    extraConfig: `
c.Spawner.cmd = [${py(join(JLAB4_VENV, 'bin/jupyterhub-singleuser'))}]
c.Spawner.args = ['--ServerApp.allow_root=True', '--LabApp.news_url=None', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate']
c.Spawner.default_url = '/lab'
c.Spawner.environment = ${py(env)}
c.Spawner.start_timeout = 240
c.Spawner.http_timeout = 240
# JupyterHub 5's sharing docs: users may share their own servers, naming the user by name.
c.JupyterHub.load_roles.append({'name': 'user', 'scopes': ['self', 'shares!user', 'read:users:name']})
`,
  });
  // users: the hub creates both (allowed_users) at its start.
  expect([201, 202]).toContain((await hub.admin('POST', '/users/alice/server')).status);
  await until(async () => ((await hub.admin('GET', '/users/alice')).json as { servers?: Record<string, { ready?: boolean }> }).servers?.['']?.ready || undefined, 2400);
  browser = await launchChromium();
  owner = await browser.newContext({ viewport: { width: 1280, height: 820 } });
  guest = await browser.newContext({ viewport: { width: 1280, height: 820 } });
});

afterAll(async () => {
  await browser?.close();
  await hub?.stop();
  await heavy?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function logIn(context: BrowserContext, name: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${hub.publicUrl}/hub/login`);
  await page.fill('#username_input', name);
  await page.fill('#password_input', 'any');
  await Promise.all([page.waitForURL((u) => !u.pathname.endsWith('/hub/login')), page.click('#login_submit')]);
  return page;
}

/** Opens alice's lab (after the hub's authorization page, for a guest); `search` e.g. `?omnisci&reset`. */
async function openAlicesLab(page: Page, search = ''): Promise<void> {
  const waitFor = pageWaiter(page);
  await page.goto(`${hub.publicUrl}/user/alice/lab${search}`);
  await waitFor('the lab or the hub asking to authorize', () => page.waitForURL(/\/user\/alice\/lab|\/hub\/api\/oauth2\/authorize/, { timeout: 120_000 }));
  if (page.url().includes('/oauth2/authorize')) {
    await page.getByRole('button', { name: /Authorize/ }).click();
  }
  await waitFor('the lab', () => page.locator('#jp-main-statusbar').waitFor({ timeout: 120_000 }));
}

const get = async (context: BrowserContext, path: string) => {
  const r = await context.request.get(`${hub.publicUrl}/user/alice/${path}`, { maxRedirects: 0 });
  return { status: r.status(), text: await r.text() };
};

test('alice shares her server with bob through the hub shares API', async () => {
  const page = await logIn(owner, 'alice');
  await page.goto(`${hub.publicUrl}/hub/home`);
  // As the hub's own pages call its API: the page's XSRF token (jhdata) in X-XSRFToken.
  const xsrf = await page.evaluate<string>('window.jhdata.xsrf_token');
  const shared = await page.evaluate(
    async ([apiUrl, token]) => {
      const r = await fetch(`${apiUrl}/shares/alice/`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-XSRFToken': token },
        body: JSON.stringify({ user: 'bob' }),
      });
      return { status: r.status, body: (await r.json()) as { user?: { name: string }; scopes?: string[] } };
    },
    [hub.apiUrl, xsrf] as const,
  );
  expect(shared).toMatchObject({ status: 200, body: { user: { name: 'bob' } } });
  expect(shared.body.scopes).toEqual(['access:servers!server=alice/']);
  await openAlicesLab(page);
  await page.close();
});

test("the owner gets her server's session; the guest gets 403 not_owner on both endpoints", async () => {
  const ownerSession = await get(owner, 'omnisci/session');
  expect(ownerSession.status).toBe(200);
  expect((JSON.parse(ownerSession.text) as { session: string }).session).toBe(SESSION);
  const ownerStatus = await get(owner, 'omnisci/session/status');
  expect(JSON.parse(ownerStatus.text)).toMatchObject({ state: 'connected', user: 'alice', database: 'heavyai' });

  const page = await logIn(guest, 'bob');
  await openAlicesLab(page);
  for (const path of ['omnisci/session', 'omnisci/session/status']) {
    const r = await get(guest, path);
    expect({ path, status: r.status, error: (JSON.parse(r.text) as { error?: string }).error }).toEqual({ path, status: 403, error: 'not_owner' });
    expect(r.text).not.toContain(SESSION);
  }
  // bob's lab: the status item says whose session it is.
  await page.locator('.omnisci-handoff-status[data-state="not_owner"]').waitFor({ timeout: 60_000 });
  expect(await page.locator('.omnisci-handoff-status').innerText()).toContain("OmniSci: the owner's session");
  expect(hub.log()).toContain('refused GET /user/alice/omnisci/session to bob');
  expect(hub.log()).not.toContain(SESSION);
  await page.close();
});

test('?omnisci in the guest\'s browser opens no notebook: it says the session is the owner\'s', async () => {
  const page = await guest.newPage();
  await openAlicesLab(page, '?omnisci&reset');
  const dialog = page.locator('.jp-Dialog');
  await dialog.waitFor({ timeout: 120_000 });
  expect(await dialog.innerText()).toContain('Only the owner of this server can use its OmniSci session');
  const contents = await get(owner, 'api/contents');
  expect((JSON.parse(contents.text) as { content: { type: string }[] }).content.filter((f) => f.type === 'notebook')).toEqual([]);
  await page.close();
});
