/**
 * `npm run demo` (scripts/demo.ts) as a user runs it, as a child process with the deps the suite
 * installed (--no-install). It prints one link:
 *
 * - Chromium follows it as a newcomer would: the stand-in Immerse page (its link's key unguessable)
 *   posts the token from its own origin, which the demo's config lists in token.allowedOrigins; the
 *   service's sign-in confirmation and progress page; the hub's login; JupyterLab 4, where a notebook
 *   opens, connects to the demo's HeavyDB stand-in with the handed-over session and runs the query —
 *   its rows, as the stand-in's demo tables have them, are on the page (docs/images/demo-notebook.png)
 *   and the stand-in saw that session run that SQL. Ctrl-C then stops every process the demo started
 *   and no port they listened on is left.
 * - `--classic --heavydb URL` against a HeavyDB the test runs: a browser without JavaScript lands in
 *   JupyterLab 2, whose jupyterlab-omnisci serves the session that HeavyDB issued at the demo's login;
 *   the demo starts no stand-in of its own.
 * - A failing step, and Ctrl-C while the hub starts, leave nothing running.
 */
import { afterAll, expect, jest, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Request } from 'playwright-core';
import { parse } from 'yaml';
import { startHeavyDb, type HeavyCall } from '../../scripts/demo/heavydb/standin.js';
import { DEMO_QUERY } from '../../src/dev.js';
import { launchChromium } from '../support/browser.js';
import { tempDir } from '../support/core.js';
import { NoJsBrowser } from '../support/hub-service.js';
import { waitFor } from '../support/jupyterhub.js';
import { JLAB4_VENV } from '../support/jupyterlab4.js';
import { ROOT } from '../support/root.js';

jest.setTimeout(300_000);
const MARK = 'OMNISCI_HANDOFF_DEMO_MARK';
const dirs: string[] = [];
const demos: ChildProcess[] = [];

afterAll(() => {
  // Only if a test failed before its own SIGINT: never leave the stack running.
  for (const d of demos) if (d.exitCode === null && d.signalCode === null) d.kill('SIGINT');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Demo {
  child: ChildProcess;
  dir: string;
  output(): string;
  exited: Promise<number | null>;
  /** Resolves with the first match of `pattern` in the output; rejects if the demo exits first. */
  waitFor(pattern: RegExp): Promise<RegExpExecArray>;
}

function startDemo(args: string[] = [], prepare?: (dir: string) => void): Demo {
  const dir = tempDir('oh-demo-');
  dirs.push(dir);
  prepare?.(dir);
  const child = spawn(process.execPath, [join(ROOT, 'scripts/demo.ts'), '--no-install', '--dir', dir, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  demos.push(child);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const waitFor = (pattern: RegExp) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const m = pattern.exec(output);
        if (m) {
          child.stdout!.off('data', check);
          resolve(m);
        }
      };
      child.stdout!.on('data', check);
      check();
      void exited.then((code) => reject(new Error(`the demo exited (${code}) before ${pattern}:\n${output}`)));
    });
  return { child, dir, output: () => output, exited, waitFor };
}

/** The printed link and what the output says around it, once the demo is up. */
async function demoUp(d: Demo, steps: number): Promise<{ link: string; hubUrl: string; heavydb: string }> {
  const link = (await d.waitFor(/\n {2}(http:\/\/127\.0\.0\.1:\d+\/[A-Za-z0-9_-]{22}\/)\n/))[1] as string;
  const output = d.output();
  // Every step reported, each ending ready.
  expect(output.match(new RegExp(`^\\[\\d/${steps}\\] .* — ready \\(\\d+\\.\\d s\\)$`, 'gm'))).toHaveLength(steps);
  const hubUrl = /lands on (http:\/\/127\.0\.0\.1:\d+)\/user\/demo\/lab/.exec(output)?.[1] as string;
  const heavydb = /^HeavyDB: (http:\/\/127\.0\.0\.1:\d+\/)/m.exec(output)?.[1] as string;
  expect(hubUrl).toBeDefined();
  expect(heavydb).toBeDefined();
  return { link, hubUrl, heavydb };
}

/** Live (not zombie) processes: the demo and every process carrying its mark. */
function live(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
function demoProcesses(dir: string): number[] {
  const needle = `${MARK}=${dir}\0`;
  return readdirSync('/proc')
    .map(Number)
    .filter((pid) => {
      if (!Number.isInteger(pid)) return false;
      try {
        return `${readFileSync(`/proc/${pid}/environ`, 'latin1')}\0`.includes(needle);
      } catch {
        return false;
      }
    });
}
const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
};

/** Socket inodes of processes. */
function socketInodes(pid: number): string[] {
  try {
    return readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
      try {
        return [/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`, 'utf8') as string)?.[1]].filter((x): x is string => Boolean(x));
      } catch {
        return [];
      }
    });
  } catch {
    return [];
  }
}

/** Listening TCP sockets (/proc/net/tcp{,6}, state 0A): inode → port. */
function listeners(): Map<string, number> {
  const map = new Map<string, number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const row of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = row.trim().split(/\s+/);
      if (f[3] === '0A') map.set(f[9] as string, parseInt((f[1] as string).split(':')[1] as string, 16));
    }
  }
  return map;
}

/** TCP ports these processes listen on. */
function listeningPorts(pids: number[]): number[] {
  const all = listeners();
  return [...new Set(pids.flatMap(socketInodes).flatMap((i) => (all.has(i) ? [all.get(i) as number] : [])))];
}

/** Processes listening on `port` now (another test's process may have taken a freed port). */
function ownersOf(port: number): number[] {
  const inodes = new Set([...listeners()].filter(([, p]) => p === port).map(([i]) => i));
  if (!inodes.size) return [];
  return readdirSync('/proc').map(Number).filter((pid) => Number.isInteger(pid) && socketInodes(pid).some((i) => inodes.has(i)));
}

const refused = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(false)));
    s.once('error', () => resolve(true));
  });

/** Ctrl-C: exit 0, "stopped.", no process of the demo left, no port of theirs listening. */
async function stopsCleanly(d: Demo, pids: number[], ports: number[]): Promise<void> {
  d.child.kill('SIGINT');
  expect(await d.exited).toBe(0);
  expect(d.output()).toContain('stopped.');
  expect(pids.filter(live)).toEqual([]);
  expect(demoProcesses(d.dir).filter(live)).toEqual([]);
  // Each port refuses, or (freed and reused meanwhile) belongs to someone else.
  const ours = new Set([...pids, ...demoProcesses(d.dir)]);
  for (const port of ports) {
    const owners = ownersOf(port);
    if (owners.length) expect(owners.filter((p) => ours.has(p))).toEqual([]);
    else expect(await refused(port)).toBe(true);
  }
}

/** The rows the demo's HeavyDB answers `query` with, each as Python prints a tuple (its own code: scripts/demo/heavydb/demo.py). */
async function standInRows(query: string): Promise<string[]> {
  const code = [
    'import json, sys',
    `sys.path.insert(0, ${JSON.stringify(join(ROOT, 'scripts/demo/heavydb'))})`,
    'from demo import DemoHandler',
    'columns = DemoHandler.result_set(None, sys.argv[1])',
    'print(json.dumps({"names": [c[0] for c in columns], "rows": [repr(r) for r in zip(*[c[2] for c in columns])]}))',
  ].join('\n');
  const child = spawn(join(JLAB4_VENV, 'bin/python'), ['-c', code, query], { env: { PATH: '/usr/bin:/bin', PYTHONDONTWRITEBYTECODE: '1' } });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  await new Promise((r) => child.once('close', r));
  const { names, rows } = JSON.parse(stdout) as { names: string[]; rows: string[] };
  return [`[${names.map((n) => `'${n}'`).join(', ')}]`, ...rows];
}

const STAND_IN = 'scripts/demo/heavydb/demo.py';
const noSpace = (s: string) => s.replace(/\s+/g, '');

test('npm run demo in Chromium: the link ends on a notebook that ran the handed-over SQL with the handed-over session; Ctrl-C stops everything', async () => {
  const d = startDemo();
  const { link, hubUrl, heavydb } = await demoUp(d, 7);
  const immerseOrigin = new URL(link).origin;

  // The link's key is what opens it: 128 random bits; the origin alone or another key get a 404.
  for (const wrong of [`${immerseOrigin}/`, `${immerseOrigin}/${'A'.repeat(22)}/`, link.slice(0, -1)]) expect((await fetch(wrong)).status).toBe(404);
  // The service accepts handoffs from the stand-in's origin as an admin configures Immerse's: token.allowedOrigins.
  const config = parse(readFileSync(join(d.dir, 'config.yaml'), 'utf8')) as { token: { allowedOrigins: string[] } };
  expect(config.token.allowedOrigins).toEqual([immerseOrigin]);

  const expected = await standInRows(DEMO_QUERY);
  expect(expected.length).toBe(11);
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 820 } });
    const consoleLines: string[] = [];
    page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    const navigations: string[] = [];
    const posts: Request[] = [];
    page.on('request', (r) => {
      if (r.isNavigationRequest()) navigations.push(r.url());
      if (r.method() === 'POST' && r.url() === `${hubUrl}/services/omnisci-handoff/handoff`) posts.push(r);
    });
    /** Waits for `what`; a failure says where the page was, what it showed and what its console said. */
    const until = async (what: string, wait: () => Promise<unknown>) => {
      try {
        await wait();
      } catch (e) {
        const body = await page.locator('body').innerText().catch(() => '');
        throw new Error(`waiting for ${what} at ${page.url()}: ${(e as Error).message}\npage:\n${body.slice(0, 2000)}\nconsole:\n${consoleLines.join('\n')}\ndemo:\n${d.output()}`);
      }
    };

    await page.goto(link);
    // A browser the service does not know yet: it names the user before logging it in (hub.confirmLogin, the default).
    await until('the sign-in confirmation', () => page.locator('#confirm').waitFor({ timeout: 60_000 }));
    expect(await page.locator('#user').innerText()).toBe('demo');
    // The stand-in's POST carried its origin (not `null`), which the service accepted.
    expect(posts).toHaveLength(1);
    expect((await posts[0]!.allHeaders())['origin']).toBe(immerseOrigin);
    await page.locator('#confirm').click();

    // The notebook opens on its own and runs: its second cell shows the query's rows.
    const cells = page.locator('.jp-NotebookPanel .jp-Notebook .jp-Cell');
    const rows = cells.nth(1).locator('.jp-OutputArea');
    await until('the query\'s rows', () => rows.filter({ hasText: expected[1]!.slice(2, 20) }).waitFor({ timeout: 180_000 }));
    const shown = noSpace(await rows.innerText());
    for (const line of expected) expect(shown).toContain(noSpace(line));
    expect(await cells.nth(0).locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').count()).toBe(0);
    expect(new URL(page.url()).pathname).toMatch(/^\/user\/demo\/lab/);
    // Through the stand-in Immerse, the service's progress page and the hub's login with a one-time login token.
    expect(navigations[0]).toBe(link);
    expect(navigations.some((u) => u.startsWith(`${hubUrl}/services/omnisci-handoff/progress/`))).toBe(true);
    expect(navigations.some((u) => u.startsWith(`${hubUrl}/hub/login?login_token=`))).toBe(true);
    expect(navigations).toContain(`${hubUrl}/user/demo/lab?omnisci&reset`);

    // The session endpoint, as the lab asks it: the stored session and query, the stand-in's address.
    const stored = JSON.parse(readFileSync(join(d.dir, 'store/users/demo/session'), 'utf8')) as { session: string; query: string };
    // (jupyter_server 2 asks a cookie-authenticated request for the _xsrf cookie's value in X-XSRFToken, as the lab sends it.)
    const answer = await page.evaluate(
      "fetch('/user/demo/omnisci/session', { headers: { 'X-XSRFToken': /(?:^|; )_xsrf=([^;]*)/.exec(document.cookie)?.[1] ?? '' } }).then((r) => r.json())",
    );
    const standIn = new URL(heavydb);
    expect(answer).toMatchObject({
      session: stored.session,
      query: DEMO_QUERY,
      connection: { protocol: 'http', host: '127.0.0.1', port: standIn.port },
      environment: { protocol: 'OMNISCI_PROTOCOL', host: 'OMNISCI_HOST', port: 'OMNISCI_PORT' },
    });
    // The stand-in: Immerse's login made that session, and the notebook ran exactly the handed-over SQL with it — never a disconnect.
    const calls = (await (await fetch(`${heavydb}_standin/calls`)).json()) as HeavyCall[];
    expect(calls.filter((c) => c.method === 'connect')).toEqual([{ method: 'connect', args: { user: 'admin', dbname: 'heavyai' } }]);
    expect(calls.filter((c) => c.method === 'sql_execute').map((c) => [c.args['session'], c.args['query']])).toEqual([[stored.session, DEMO_QUERY]]);
    expect(calls.filter((c) => c.method === 'disconnect')).toEqual([]);

    await page.screenshot({ path: join(ROOT, 'docs/images/demo-notebook.png') });
    expect(consoleLines.filter((l) => l.startsWith('error:') && /omnisci/i.test(l))).toEqual([]);
  } finally {
    await browser.close();
  }

  // What runs now: the hub, its proxy, the service, the user's server and the stand-in, all marked; and the demo itself.
  const pids = [d.child.pid!, ...demoProcesses(d.dir)];
  const commands = pids.map(cmdline);
  for (const part of ['bin/jupyterhub -f', 'configurable-http-proxy', 'dist/src/cli.js serve', 'venv-jlab4/bin/jupyterhub-singleuser', STAND_IN])
    expect({ part, n: commands.filter((c) => c.includes(part)).length }).toEqual({ part, n: 1 });
  const ports = listeningPorts(pids);
  for (const port of [hubUrl, link, heavydb].map((u) => Number(new URL(u).port))) expect(ports).toContain(port);
  await stopsCleanly(d, pids, ports);
});

test('--classic --heavydb URL: a browser without JavaScript lands in JupyterLab 2 with the session that HeavyDB issued; no stand-in starts', async () => {
  const heavy = await startHeavyDb({ demo: true });
  try {
    // The hub, jupyterlab-omnisci's venv (no JupyterLab 4 venv: the stand-in is not needed), the build, HeavyDB, the hub, Immerse, the service.
    const d = startDemo(['--classic', '--heavydb', heavy.url]);
    const { link, hubUrl, heavydb } = await demoUp(d, 7);
    expect(heavydb).toBe(heavy.url);
    expect(d.output()).toMatch(/\[4\/7\] HeavyDB at http:\/\/127\.0\.0\.1:\d+\/ … answers \(version 8\.0\.1-standin\) — ready/);

    // The link: the stand-in Immerse page, whose form a browser without JavaScript submits (it sends no Origin).
    const browser = new NoJsBrowser();
    const immerse = await (await browser.request(link)).text();
    const action = /<form id="handoff" method="post" action="([^"]+)">/.exec(immerse)?.[1] as string;
    const token = /name="token" value="([^"]+)"/.exec(immerse)?.[1] as string;
    expect(action).toBe(`${hubUrl}/services/omnisci-handoff/handoff`);
    const end = await browser.follow(
      await browser.request(action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' }, body: new URLSearchParams({ token }).toString() }),
      action,
    );
    expect(end.status).toBe(200);
    expect(end.url).toBe(`${hubUrl}/user/demo/lab?omnisci&reset`);
    expect(end.text).toContain('<title>JupyterLab</title>');
    expect(browser.confirmations).toBe(1);

    // jupyterlab-omnisci serves the session the demo's login got from that HeavyDB, and its address.
    const stored = JSON.parse(readFileSync(join(d.dir, 'store/users/demo/session'), 'utf8')) as { session: string; query: string };
    const res = await browser.request(`${hubUrl}/user/demo/omnisci/session`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      session: stored.session,
      query: DEMO_QUERY,
      connection: { protocol: 'http', host: '127.0.0.1', port: String(heavy.port) },
      environment: { protocol: 'OMNISCI_PROTOCOL', host: 'OMNISCI_HOST', port: 'OMNISCI_PORT' },
    });
    expect((await heavy.calls()).filter((c) => c.method === 'connect')).toHaveLength(1);
    const info = JSON.parse((await heavy.post(`[1,"get_session_info",1,0,{"1":{"str":"${stored.session}"}}]`)).text) as unknown[];
    expect(info[4]).toMatchObject({ '0': { rec: { '1': { str: 'admin' }, '2': { str: 'heavyai' } } } });

    const pids = [d.child.pid!, ...demoProcesses(d.dir)];
    const commands = pids.map(cmdline);
    expect({ commands, classic: commands.filter((c) => c.includes('venv-omnisci/bin/jupyterhub-singleuser')).length }).toMatchObject({ classic: 1 });
    expect(commands.filter((c) => c.includes(STAND_IN))).toEqual([]);
    await stopsCleanly(d, pids, listeningPorts(pids));
  } finally {
    await heavy.stop();
  }
});

test('a step that fails half-way stops what was already started; exit 1', async () => {
  // The service's config cannot be written (a directory is in its place): the last step fails after the stand-in, the hub and Immerse started.
  const d = startDemo([], (dir) => mkdirSync(join(dir, 'config.yaml')));
  await d.waitFor(/\[5\/7\] JupyterHub on .* — ready/);
  expect(await d.exited).toBe(1);
  expect(d.output()).toMatch(/\[7\/7\] omnisci-handoff at .* — failed\n\ndemo failed: EISDIR/);
  expect(demoProcesses(d.dir).filter(live)).toEqual([]);
});

test('Ctrl-C while the hub is starting stops it, its proxy and the HeavyDB stand-in', async () => {
  const d = startDemo();
  await d.waitFor(/\[5\/7\] JupyterHub on /);
  // The hub has started its proxy (bounded wait; the demo is still in step 5 or just past it).
  await waitFor(async () => (demoProcesses(d.dir).some((p) => cmdline(p).includes('configurable-http-proxy')) ? true : undefined), 300);
  expect(demoProcesses(d.dir).some((p) => cmdline(p).includes(STAND_IN))).toBe(true);
  d.child.kill('SIGINT');
  expect(await d.exited).toBe(0);
  expect(d.output()).toContain('stopped.');
  expect(demoProcesses(d.dir).filter(live)).toEqual([]);
});
