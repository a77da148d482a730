/**
 * Today's single-user server: jupyter_server 2 + JupyterLab 4 + ipykernel with omnisci-handoff-jupyter
 * (jupyter/) installed from its wheel (scripts/deps/jupyterlab4.sh builds .cache/venv-jlab4), started
 * on a loopback port under a hub-like base URL (/user/<name>/), with a token, the Jupyter config dir
 * the service generates on JUPYTER_CONFIG_PATH (as the webhook and the spawner hook add it) and the
 * connection env vars.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Locator, Page } from 'playwright-core';
import type { jupyterConfigFiles } from '../../src/notebook/outputs.js';
import { freePort } from './jupyterhub.js';
import { jupyterProcess } from './notebook.js';
import { ROOT } from './root.js';

/** The service's notebook.* defaults, for jupyterConfigFiles (which reads env and the session file path only). */
export const SERVICE_NOTEBOOK_DEFAULTS = {
  sessionFormat: 'json',
  sessionDir: '/var/run/omnisci-handoff',
  sessionFileName: 'session',
  env: { protocol: 'OMNISCI_PROTOCOL', host: 'OMNISCI_HOST', port: 'OMNISCI_PORT' },
} as Parameters<typeof jupyterConfigFiles>[0];

/** The venv (JLAB4_VENV overrides it, e.g. to try another JupyterLab 4 release). */
export const JLAB4_VENV = process.env.JLAB4_VENV ?? join(ROOT, '.cache/venv-jlab4');

export function jupyterLab4Installed(): boolean {
  return existsSync(join(JLAB4_VENV, '.installed'));
}

export interface JupyterServerOptions {
  /** Directory holding the generated Jupyter config (added to JUPYTER_CONFIG_PATH). */
  configDir: string;
  /** Extra environment (the connection env vars). */
  env?: Record<string, string>;
  /** base_url, default /user/alice/. */
  baseUrl?: string;
  /** Extra command-line arguments for jupyter-server. */
  args?: string[];
  /** A failing start is expected: resolve when the process exits (or serves after all) instead of throwing. */
  expectExit?: boolean;
}

export interface RunningJupyterServer {
  /** Origin, e.g. http://127.0.0.1:40123 (no trailing slash). */
  origin: string;
  /** base_url, e.g. /user/alice/. */
  baseUrl: string;
  token: string;
  /** The user's home and root_dir (where notebooks are saved). */
  home: string;
  /** GET {origin}{baseUrl}{path} (path without a leading slash), with the token unless told otherwise. */
  get(path: string, authenticated?: boolean): Promise<{ status: number; contentType: string; text: string }>;
  /** An authenticated request to the REST API. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }>;
  log(): string;
  exitCode(): number | null;
  stop(): Promise<void>;
}

export async function startJupyterServer(opts: JupyterServerOptions): Promise<RunningJupyterServer> {
  if (!jupyterLab4Installed()) throw new Error('JupyterLab 4 is not installed: run scripts/deps/jupyterlab4.sh');
  const home = mkdtempSync(join(tmpdir(), 'ojl4-'));
  for (const d of ['.jupyter', 'data', 'runtime', '.ipython']) mkdirSync(join(home, d));
  // The user answered JupyterLab's "get notified about official Jupyter news?" already: no.
  const settings = join(home, '.jupyter/lab/user-settings/@jupyterlab/apputils-extension');
  mkdirSync(settings, { recursive: true });
  writeFileSync(join(settings, 'notification.jupyterlab-settings'), JSON.stringify({ fetchNews: 'false' }));
  const port = await freePort();
  const token = randomBytes(24).toString('hex');
  const baseUrl = opts.baseUrl ?? '/user/alice/';
  const args = [
    '--no-browser',
    '--ip=127.0.0.1',
    `--port=${port}`,
    '--port-retries=0',
    `--ServerApp.base_url=${baseUrl}`,
    `--ServerApp.root_dir=${home}`,
    '--allow-root',
    // No network: no news feed, no update check.
    '--LabApp.news_url=None',
    '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
    ...(opts.args ?? []),
  ];
  const child = spawn(join(JLAB4_VENV, 'bin/jupyter-server'), args, {
    cwd: home,
    env: {
      PATH: `${join(JLAB4_VENV, 'bin')}:/usr/bin:/bin`,
      HOME: home,
      JUPYTER_CONFIG_DIR: join(home, '.jupyter'),
      JUPYTER_CONFIG_PATH: opts.configDir,
      JUPYTER_DATA_DIR: join(home, 'data'),
      JUPYTER_RUNTIME_DIR: join(home, 'runtime'),
      IPYTHONDIR: join(home, '.ipython'),
      JUPYTER_TOKEN: token,
      PYTHONWARNINGS: 'ignore',
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const proc = jupyterProcess('jupyter-server', child, home, () => output);
  const origin = `http://127.0.0.1:${port}`;
  const get: RunningJupyterServer['get'] = async (path, authenticated = true) => {
    const r = await fetch(`${origin}${baseUrl}${path}`, { headers: authenticated ? { Authorization: `token ${token}` } : {}, redirect: 'manual' });
    return { status: r.status, contentType: r.headers.get('content-type') ?? '', text: await r.text() };
  };
  const api: RunningJupyterServer['api'] = async (method, path, body) => {
    const r = await fetch(`${origin}${baseUrl}api/${path}`, {
      method,
      headers: { Authorization: `token ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, json: text ? (JSON.parse(text) as unknown) : undefined };
  };
  const server: RunningJupyterServer = { origin, baseUrl, token, home, get, api, log: () => output, exitCode: () => child.exitCode, stop: proc.stop };
  if ((await proc.until(async () => (await get('api/status')).status)) === 'exited' && !opts.expectExit)
    throw new Error(`jupyter-server exited during startup:\n${output}`);
  return server;
}

/** Logs `page` in to the server with its token (the login form, as a user would). */
export async function logInToLab(page: Page, server: RunningJupyterServer): Promise<void> {
  await page.goto(`${server.origin}${server.baseUrl}login`);
  await page.fill('#password_input', server.token);
  await Promise.all([page.waitForURL((u) => !u.pathname.endsWith('/login')), page.click('#login_submit')]);
}

/** Replaces `path` atomically (as the service's store and the kubelet do), mode 0600. */
export function replaceFile(path: string, content: string | Buffer): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  renameSync(tmp, path);
}

export type PageWaiter = (what: string, wait: () => Promise<unknown>) => Promise<void>;

/** What the lab showed (on a failure): its tabs, its status bar, each cell of the notebook in front with its prompt and output. */
async function labState(page: Page): Promise<string> {
  const oneLine = (texts: string[]) => texts.join(' | ').replace(/\s+/g, ' ').trim().slice(0, 300);
  const texts = (locator: Locator) => locator.allInnerTexts().then(oneLine, () => '');
  const tabs = page.locator('#jp-main-dock-panel .lm-TabBar-tab');
  const lines = [
    `tabs: ${await texts(tabs)}; current: ${await texts(tabs.and(page.locator('.lm-mod-current')))}`,
    `status bar: ${await texts(page.locator('#jp-main-statusbar'))}`,
  ];
  const cells = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell');
  for (let i = 0, n = await cells.count().catch(() => 0); i < n; i++)
    lines.push(`cell ${i}: ${await texts(cells.nth(i).locator('.jp-InputPrompt'))} output: ${await texts(cells.nth(i).locator('.jp-OutputArea'))}`);
  return `${lines.join('\n')}\n`;
}

/** A `waitFor(what, wait)` for `page` whose failure says where the page was, what the lab showed, where it navigated and what its console said. */
export function pageWaiter(page: Page): PageWaiter {
  const consoleLines: string[] = [];
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  // Where the page went (history changes too), with the query's names only: a query may carry a token.
  page.on('framenavigated', (frame) => {
    if (frame !== page.mainFrame()) return;
    const url = new URL(frame.url());
    const names = [...url.searchParams.keys()];
    consoleLines.push(`navigated: ${url.pathname}${names.length ? `?${names.join('&')}` : ''}`);
  });
  return async (what, wait) => {
    try {
      await wait();
    } catch (e) {
      throw new Error(`waiting for ${what} at ${page.url()}: ${(e as Error).message}\n${await labState(page)}console:\n${consoleLines.join('\n')}`);
    }
  };
}

/**
 * Runs every cell of the notebook in front with Run > Run All Cells, as a user would, once that can
 * work, and checks that it started them (their prompts leave `[ ]`).
 *
 * Ready means the status bar's kernel item for that notebook reads "Idle": JupyterLab derives it from
 * the session's kernel connection. The notebook's own execution indicator is no proof: it reads
 * `data-status="idle"` from the moment the notebook is attached, before the server has answered the
 * request that starts the kernel (slow on a loaded machine), and Run All before that answer clears
 * the cells' prompts and runs nothing, silently (CodeCell.execute without a session kernel).
 */
export async function runAllCells(page: Page, waitFor: PageWaiter): Promise<void> {
  // The opened notebook is the current tab (not a Launcher the file browser opened meanwhile).
  const tab = page.locator('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current', { hasText: '.ipynb' });
  await waitFor('the notebook in front', () => tab.waitFor({ timeout: 60_000 }));
  const name = (await tab.locator('.lm-TabBar-tabLabel').innerText()).trim();
  const kernel = page.locator(`#jp-main-statusbar [title="Change kernel for ${name}"]`);
  await waitFor(`the kernel of ${name} connected and idle`, () => kernel.filter({ hasText: /\| Idle$/ }).waitFor({ timeout: 120_000 }));
  await page.locator('.lm-MenuBar-itemLabel', { hasText: /^Run$/ }).click();
  await page.locator('.lm-Menu-itemLabel', { hasText: /^Run All Cells$/ }).click();
  // Each code cell's prompt leaves `[ ]` at once (`[*]`, then its execution count).
  const notRun = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-CodeCell .jp-InputPrompt', { hasText: /^\[ \]:$/ });
  await waitFor('Run All Cells to start every code cell', () => notRun.first().waitFor({ state: 'detached', timeout: 30_000 }));
}
