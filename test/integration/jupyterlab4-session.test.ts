/**
 * Past the lab's door (jupyter/, omnisci-handoff-jupyter), with real components: jupyter_server 2 +
 * JupyterLab 4 + ipykernel + pyheavydb (scripts/deps/jupyterlab4.sh) started with the Jupyter config
 * the service generates (plus the OmniSciHandoff section it writes from notebook.relinkUrl), the
 * HeavyDB stand-in (pyheavydb's own Thrift code; scripts/demo/heavydb/) and Debian's Chromium.
 *
 * 1. A kernel follows the session: session A works; A expires at HeavyDB and a new handoff writes
 *    B; the same kernel's next query runs on B without re-running any cell; without a newer session
 *    the kernel's error says to re-link with Immerse; HeavyDB never sees `disconnect`; no saved file
 *    holds A or B.
 * 2. The status bar shows connected / expired (with a "Re-link with Immerse" notification opening
 *    the configured URL) / no session / HeavyDB unreachable.
 * 3. Opened for a handoff (`omnisci-handoff=<fingerprint>`) while the server still has the previous
 *    session, the lab waits and shows that it waits; the test rewrites the session file only after
 *    the page has seen the old one, and the notebook opens on the new one; past the timeout (a fake
 *    clock installed once the lab waits, then fast-forwarded), it says what went wrong and opens nothing.
 *
 * Screenshots (after asserting what they show): docs/images/jupyterlab4-session-*.png.
 */
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync, mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { connectionEnv, jupyterConfigFiles, sessionFileContent } from '../../src/notebook/outputs.js';
import { launchChromium } from '../support/browser.js';
import { startHeavyDb, type HeavyDbStandIn } from '../../scripts/demo/heavydb/standin.js';
import { logInToLab, pageWaiter, type PageWaiter, replaceFile, runAllCells, type RunningJupyterServer, SERVICE_NOTEBOOK_DEFAULTS, startJupyterServer } from '../support/jupyterlab4.js';
import { OMNISCI_VENV, writeTree } from '../support/notebook.js';
import { ROOT } from '../support/root.js';

jest.setTimeout(300_000);

type Connection = Parameters<typeof connectionEnv>[0];

const nbConfig = SERVICE_NOTEBOOK_DEFAULTS;

/** HeavyDB-like ids (32 alphanumerics) and the service's base64url fingerprints. */
const A = 'AaaaQ9LmT2pR7sWc4NhB8yFd1GjZ6aUe';
const B = 'BbbbQ9LmT2pR7sWc4NhB8yFd1GjZ6aUe';
const C = 'CcccQ9LmT2pR7sWc4NhB8yFd1GjZ6aUe';
const D = 'DdddQ9LmT2pR7sWc4NhB8yFd1GjZ6aUe';
const E = 'EeeeQ9LmT2pR7sWc4NhB8yFd1GjZ6aUe';
const ALL = [A, B, C, D, E];
const fp = (id: string) => `fp-${id.slice(0, 4)}_Zm9v`;
const QUERY = 'SELECT carrier, AVG(arr_delay) FROM flights GROUP BY carrier';

let dir: string;
let sessionFile: string;
let heavy: HeavyDbStandIn;
let server: RunningJupyterServer;
let browser: Browser;
let immerse: Server;
let relinkUrl: string;

function handoff(session: string, format: 'json' | 'text' = 'json'): void {
  const content = sessionFileContent({ session, query: QUERY }, format);
  // The service's contract: the fingerprint next to "session" and "query" in the JSON file.
  replaceFile(sessionFile, format === 'json' ? `${JSON.stringify({ ...JSON.parse(content), fingerprint: fp(session) })}\n` : content);
}

const notebooks = async () =>
  ((await server.api('GET', 'contents')).json as { content: { name: string; type: string }[] }).content
    .filter((f) => f.type === 'notebook')
    .map((f) => f.name)
    .sort();

const sqlSessions = async () => (await heavy.calls()).filter((c) => c.method === 'sql_execute').map((c) => c.args['session']);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'oh-jl4s-'));
  sessionFile = join(dir, 'session');
  heavy = await startHeavyDb();
  // "Immerse": where Re-link sends the user.
  immerse = createServer((_req, res) => res.end('<!doctype html><title>Immerse</title>Immerse'));
  await new Promise<void>((r) => immerse.listen(0, '127.0.0.1', () => r()));
  relinkUrl = `http://127.0.0.1:${(immerse.address() as AddressInfo).port}/immerse/`;
  const files = jupyterConfigFiles(nbConfig, sessionFile);
  // What the service writes from notebook.relinkUrl; the cache off, so each click asks HeavyDB.
  const serverConfig = JSON.parse(files['jupyter_server_config.json']!) as Record<string, unknown>;
  serverConfig['OmniSciHandoff'] = { relink_url: relinkUrl, status_cache_seconds: 0, status_interval: 3600 };
  files['jupyter_server_config.json'] = JSON.stringify(serverConfig);
  const configDir = writeTree(files, join(dir, 'jupyter-config'));
  const connection = { protocol: heavy.protocol, host: heavy.host, port: heavy.port, database: '' } as Connection;
  server = await startJupyterServer({ configDir, env: connectionEnv(connection, nbConfig.env) });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  await heavy?.stop();
  immerse?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function openLab(search: string, setUp?: (page: Page) => Promise<unknown>) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 820 } });
  const waitFor = pageWaiter(page);
  await logInToLab(page, server);
  await setUp?.(page);
  await page.goto(`${server.origin}${server.baseUrl}lab${search}`);
  return { page, waitFor };
}

const cellsOf = (page: Page) => page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell');
const statusItem = (page: Page) => page.locator('.omnisci-handoff-status');

/** Runs the query cell alone (Ctrl+Enter in it) and waits for its prompt to read `[count]`. */
async function rerunQueryCell(page: Page, waitFor: PageWaiter, count: number): Promise<string> {
  const cell = cellsOf(page).nth(1);
  await cell.locator('.cm-content').click();
  await page.keyboard.press('Control+Enter');
  await waitFor(`execution [${count}]`, () => cell.locator('.jp-InputPrompt', { hasText: `[${count}]` }).waitFor({ timeout: 120_000 }));
  return cell.locator('.jp-OutputArea').innerText();
}

/** Clicks the status item and waits for it to show `state`. */
async function statusAfterClick(page: Page, state: string): Promise<{ text: string; title: string }> {
  await statusItem(page).click();
  await page.locator(`.omnisci-handoff-status[data-state="${state}"]`).waitFor({ timeout: 30_000 });
  return { text: await statusItem(page).innerText(), title: (await statusItem(page).getAttribute('title')) ?? '' };
}

/** Every file under `root` (the user's home: notebooks, checkpoints, the kernel's files). */
function filesUnder(root: string): string[] {
  return readdirSync(root, { recursive: true, encoding: 'utf8' })
    .map((rel) => join(root, rel))
    .filter((path) => statSync(path).isFile());
}

let mainPage: Page;
let mainWait: PageWaiter;

test('1. the kernel follows the session: A works; A expires and B is handed over; the next query runs on B, no cell re-run', async () => {
  await heavy.addSession(A, { user: 'alice', database: 'heavyai' });
  handoff(A);
  // The request that starts the notebook's kernel reaches the server only once the notebook shows, as
  // on a loaded machine or a slow server: Run All must wait for that kernel (runAllCells).
  let kernelRequested!: () => void;
  let startKernel!: () => void;
  const requested = new Promise<void>((r) => (kernelRequested = r));
  const held = new Promise<void>((r) => (startKernel = r));
  ({ page: mainPage, waitFor: mainWait } = await openLab('?omnisci&reset', (p) =>
    p.route((url) => url.pathname.endsWith('/api/sessions'), async (route) => {
      if (route.request().method() === 'POST') {
        kernelRequested();
        await held;
      }
      await route.continue();
    }),
  ));
  const cells = cellsOf(mainPage);
  await mainWait('the notebook', () => cells.nth(1).waitFor({ timeout: 120_000 }));
  await mainWait('the request starting its kernel', () =>
    Promise.race([requested, new Promise((_, reject) => setTimeout(() => reject(new Error('none within 60 s')), 60_000).unref())]),
  );
  startKernel();
  await runAllCells(mainPage, mainWait);
  await mainWait('the query output', () => cells.nth(1).locator('.jp-OutputArea-output', { hasText: "'AA'" }).waitFor({ timeout: 120_000 }));
  expect(await sqlSessions()).toEqual([A]);

  await heavy.expireSession(A);
  await heavy.addSession(B, { user: 'alice', database: 'heavyai' });
  handoff(B);
  const output = await rerunQueryCell(mainPage, mainWait, 3);
  expect(output).toContain("(1, 'AA', 12.5)");
  expect(await cells.nth(0).locator('.jp-InputPrompt').innerText()).toContain('[1]'); // the connect cell ran once
  expect(await sqlSessions()).toEqual([A, B]);
  const calls = await heavy.calls();
  expect(calls.filter((c) => c.method === 'get_session_info' && c.args['session'] === B).length).toBeGreaterThan(0);
  expect(calls.filter((c) => c.method === 'disconnect')).toEqual([]);
});

test('1. …without a newer session the kernel says to re-link with Immerse; a new handoff and the same cell runs again', async () => {
  await heavy.expireSession(B);
  const failed = await rerunQueryCell(mainPage, mainWait, 4);
  expect(failed).toContain('SessionExpiredError');
  expect(failed).toContain('HeavyDB: Session not valid or expired.');
  expect(failed).toContain(`Open the notebook again from Immerse (${relinkUrl})`);
  await heavy.addSession(C, { user: 'alice', database: 'heavyai' });
  handoff(C);
  expect(await rerunQueryCell(mainPage, mainWait, 5)).toContain("(3, 'UA', 41.25)");
  expect((await sqlSessions()).at(-1)).toBe(C);
});

test('1. no session id in the saved notebook, its checkpoint, or any file of the user; HeavyDB saw no disconnect', async () => {
  await mainPage.keyboard.press('Control+s');
  const saved = join(server.home, 'Untitled.ipynb');
  for (let i = 0; !readFileSync(saved, 'utf8').includes('"execution_count": 5'); i++) {
    if (i > 300) throw new Error('the notebook was not saved');
    await new Promise((r) => setTimeout(r, 100));
  }
  const files = filesUnder(server.home);
  expect(files).toContain(saved);
  for (const file of files) {
    const text = readFileSync(file, 'latin1');
    for (const id of ALL) expect({ file, holds: text.includes(id) }).toEqual({ file, holds: false });
  }
  for (const id of ALL) expect(server.log()).not.toContain(id);
  expect((await heavy.calls()).filter((c) => c.method === 'disconnect')).toEqual([]);
});

test('2. the status bar: connected as user@database, handed over at …; expired, with Re-link with Immerse; no session', async () => {
  const connected = await statusAfterClick(mainPage, 'connected');
  expect(connected.text).toContain('OmniSci: alice@heavyai');
  expect(connected.title).toContain('Connected to HeavyDB as alice@heavyai.');
  expect(connected.title).toMatch(/Session handed over at \S/);
  expect(connected.title).not.toContain(C);
  await mainPage.screenshot({ path: join(ROOT, 'docs/images/jupyterlab4-session-connected.png') });

  await heavy.expireSession(C);
  const expired = await statusAfterClick(mainPage, 'expired');
  expect(expired.text).toContain('OmniSci: session expired');
  const toast = mainPage.locator('.Toastify__toast', { hasText: 'Your OmniSci session has expired' });
  await toast.waitFor({ timeout: 30_000 });
  const relink = toast.getByRole('button', { name: 'Re-link with Immerse' });
  expect(await relink.count()).toBe(1);
  await relink.click({ trial: true }); // waits until the toast stopped sliding in
  await mainPage.screenshot({ path: join(ROOT, 'docs/images/jupyterlab4-session-expired.png') });
  const [immersePage] = await Promise.all([mainPage.context().waitForEvent('page'), relink.click()]);
  await immersePage.waitForLoadState();
  expect(immersePage.url()).toBe(relinkUrl);
  await immersePage.close();

  await heavy.addSession(D, { user: 'alice', database: 'heavyai' });
  handoff(D);
  expect((await statusAfterClick(mainPage, 'connected')).text).toContain('OmniSci: alice@heavyai');
  await toast.waitFor({ state: 'detached', timeout: 30_000 }); // the expiry notice goes once a session works

  rmSync(sessionFile);
  expect((await statusAfterClick(mainPage, 'no_session')).text).toContain('OmniSci: no session');
  handoff(D);
});

test('3. opened for a new handoff, the lab waits until the server has that session, then opens the notebook on it', async () => {
  expect(await notebooks()).toEqual(['Untitled.ipynb']);
  await heavy.addSession(E, { user: 'alice', database: 'heavyai' });
  let sawOld!: () => void;
  const oldSeen = new Promise<void>((r) => (sawOld = r));
  const { page, waitFor } = await openLab(`?omnisci&omnisci-handoff=${fp(E)}&reset`, async (p) => {
    p.on('response', (r) => {
      if (new URL(r.url()).pathname.endsWith('/omnisci/session') && r.status() === 200)
        r.json().then((body: { fingerprint?: string }) => body.fingerprint === fp(D) && sawOld(), () => undefined);
    });
  });
  const waiting = page.locator('.Toastify__toast', { hasText: 'Waiting for the new OmniSci session to reach this server' });
  await waitFor('the waiting notice', () => waiting.waitFor({ timeout: 120_000 }));
  await oldSeen; // the page has seen the previous handoff's session: only now does the new one arrive
  expect(await notebooks()).toEqual(['Untitled.ipynb']);
  await waiting.click({ trial: true }); // waits until the toast stopped sliding in
  await page.screenshot({ path: join(ROOT, 'docs/images/jupyterlab4-session-waiting.png') });
  const before = (await sqlSessions()).length;
  handoff(E);
  const cells = cellsOf(page);
  await waitFor('the notebook', () => cells.nth(1).waitFor({ timeout: 120_000 }));
  await waiting.waitFor({ state: 'detached', timeout: 30_000 });
  expect(await notebooks()).toEqual(['Untitled.ipynb', 'Untitled1.ipynb']);
  expect(new URL(page.url()).search).toBe('');
  await runAllCells(page, waitFor);
  await waitFor('the query output', () => cells.nth(1).locator('.jp-OutputArea-output', { hasText: "'AA'" }).waitFor({ timeout: 120_000 }));
  expect((await sqlSessions()).slice(before)).toEqual([E]);
  await page.close();
});

test('3. …past the timeout (a fake clock, fast-forwarded) it says what went wrong and opens no notebook', async () => {
  const { page, waitFor } = await openLab(`?omnisci&omnisci-handoff=${fp(B)}&reset`);
  const waiting = page.locator('.Toastify__toast', { hasText: 'Waiting for the new OmniSci session to reach this server' });
  await waitFor('the waiting notice', () => waiting.waitFor({ timeout: 120_000 }));
  // The page loaded and routed on real time, as a user's does, and the lab set its deadline before it
  // showed the notice. Only now does the clock become fake (from the real now); 121 s on passes that deadline.
  await page.clock.install();
  await page.clock.fastForward(121_000);
  const dialog = page.locator('.jp-Dialog');
  await waitFor('the timeout dialog', () => dialog.waitFor({ timeout: 60_000 }));
  const text = await dialog.innerText();
  expect(text).toContain('The session of this handoff did not reach this server within 120 s: it still has the session of an earlier handoff.');
  expect(text).toContain('No notebook was opened.');
  expect(await notebooks()).toEqual(['Untitled.ipynb', 'Untitled1.ipynb']);
  await page.close();
});

test('3. a text-format session file carries no fingerprint: the lab opens the notebook at once', async () => {
  handoff(A, 'text');
  const { page, waitFor } = await openLab(`?omnisci&omnisci-handoff=${fp(B)}&reset`);
  await waitFor('the notebook', () => cellsOf(page).nth(1).waitFor({ timeout: 120_000 }));
  expect(await notebooks()).toEqual(['Untitled.ipynb', 'Untitled1.ipynb', 'Untitled2.ipynb']);
  await page.close();
});

test('2. …and HeavyDB unreachable (the stand-in stopped, having seen no disconnect)', async () => {
  await heavy.stop(); // rejects if anything sent disconnect
  const unreachable = await statusAfterClick(mainPage, 'unreachable');
  expect(unreachable.text).toContain('OmniSci: HeavyDB unreachable');
  expect(unreachable.title).toContain(`HeavyDB could not be reached at http://127.0.0.1:${heavy.port}`);
});

test('the released jupyterlab-omnisci 3.0.0 reads a session file with a fingerprint as before', () => {
  handoff(D);
  const out = execFileSync(
    join(OMNISCI_VENV, 'bin/python'),
    [
      '-c',
      'import json, sys\nfrom traitlets.config import Config\nfrom jupyterlab_omnisci.serverextension.session import OmniSciSessionManager\n' +
        'm = OmniSciSessionManager(config=Config({"OmniSciSessionManager": {"session_file": sys.argv[1]}}))\n' +
        'print(json.dumps(m.get_session()))',
      sessionFile,
    ],
    { env: { PATH: '/usr/bin:/bin', PYTHONWARNINGS: 'ignore' }, encoding: 'utf8' },
  );
  const answer = JSON.parse(out.trim().split('\n').at(-1)!) as { session: string; query: string };
  expect([answer.session, answer.query]).toEqual([D, QUERY]);
});
