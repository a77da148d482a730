/**
 * `npm run demo` (scripts/demo.ts) as a user runs it, as a child process with the deps the suite
 * installed (--no-install): it prints one link; following it like a browser without JavaScript
 * (cookies, redirects, the progress page's refresh, the stand-in Immerse form) lands on the user's
 * JupyterLab on a real hub, whose jupyterlab-omnisci serves the demo session from /omnisci/session.
 * Ctrl-C (SIGINT) then stops every process the demo started, and no port they listened on is left.
 */
import { afterAll, expect, jest, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { DEMO_QUERY } from '../../src/dev.js';
import { tempDir } from '../support/core.js';
import { NoJsBrowser } from '../support/hub-service.js';
import { waitFor } from '../support/jupyterhub.js';
import { ROOT } from '../support/root.js';

jest.setTimeout(240_000);
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

function startDemo(prepare?: (dir: string) => void): Demo {
  const dir = tempDir('oh-demo-');
  dirs.push(dir);
  prepare?.(dir);
  const child = spawn(process.execPath, [join(ROOT, 'scripts/demo.ts'), '--no-install', '--dir', dir], {
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

test('npm run demo: one link ends in the user\'s lab with the demo session; Ctrl-C stops everything it started', async () => {
  const { child, dir, output: out, exited, waitFor } = startDemo();
  const link = (await waitFor(/\n {2}(http:\/\/127\.0\.0\.1:\d+\/)\n/))[1] as string;
  const output = out();
  // Every step reported, each ending ready.
  expect(output.match(/^\[\d\/6\] .* — ready \(\d+\.\d s\)$/gm)).toHaveLength(6);
  const hubUrl = /lands on (http:\/\/127\.0\.0\.1:\d+)\/user\/demo\/lab/.exec(output)?.[1] as string;
  expect(hubUrl).toBeDefined();

  // The link: the stand-in Immerse page, whose form a browser without JavaScript submits.
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
  // Through the service's progress page and the hub's login with a one-time login token.
  const hops = browser.hops.map((h) => h.url);
  expect(hops.some((u) => u.startsWith(`${hubUrl}/services/omnisci-handoff/progress/`))).toBe(true);
  expect(hops.some((u) => u.startsWith(`${hubUrl}/hub/login?login_token=`))).toBe(true);

  // jupyterlab-omnisci in the user's server serves the session the demo handed over.
  const stored = JSON.parse(readFileSync(join(dir, 'store/users/demo/session'), 'utf8')) as { session: string; query: string };
  expect(stored.session).toMatch(/^[A-Za-z0-9]{32}$/);
  const res = await browser.request(`${hubUrl}/user/demo/omnisci/session`);
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({
    session: stored.session,
    query: DEMO_QUERY,
    connection: { protocol: 'http', host: 'localhost', port: '6278' },
    environment: { protocol: 'OMNISCI_PROTOCOL', host: 'OMNISCI_HOST', port: 'OMNISCI_PORT' },
  });

  // What runs now: the hub, its proxy, the service and the user's server, all marked; and the demo itself.
  const pids = [child.pid!, ...demoProcesses(dir)];
  const commands = pids.map(cmdline);
  for (const part of ['bin/jupyterhub -f', 'configurable-http-proxy', 'dist/src/cli.js serve', 'bin/jupyterhub-singleuser'])
    expect(commands.filter((c) => c.includes(part))).toHaveLength(1);
  const ports = listeningPorts(pids);
  // The Immerse stand-in, the proxy (public + API), the hub, the service (public + internal), the user's server.
  expect(ports.length).toBeGreaterThanOrEqual(7);
  expect(ports).toContain(Number(new URL(hubUrl).port));
  expect(ports).toContain(Number(new URL(link).port));

  child.kill('SIGINT');
  expect(await exited).toBe(0);
  expect(out()).toContain('stopped.');
  expect(pids.filter(live)).toEqual([]);
  expect(demoProcesses(dir).filter(live)).toEqual([]);
  // Nothing of the demo listens any more: each port refuses, or (freed and reused meanwhile) belongs to someone else.
  const ours = new Set([...pids, ...demoProcesses(dir)]);
  for (const port of ports) {
    const owners = ownersOf(port);
    if (owners.length) expect(owners.filter((p) => ours.has(p))).toEqual([]);
    else expect(await refused(port)).toBe(true);
  }
});

test('a step that fails half-way stops what was already started; exit 1', async () => {
  // The service's config cannot be written (a directory is in its place): step 5 fails after the hub started.
  const d = startDemo((dir) => mkdirSync(join(dir, 'config.yaml')));
  await d.waitFor(/\[4\/6\] JupyterHub on .* — ready/);
  expect(await d.exited).toBe(1);
  expect(d.output()).toMatch(/\[5\/6\] omnisci-handoff at .* — failed\n\ndemo failed: EISDIR/);
  expect(demoProcesses(d.dir).filter(live)).toEqual([]);
});

test('Ctrl-C while the hub is starting stops it and its proxy', async () => {
  const d = startDemo();
  await d.waitFor(/\[4\/6\] JupyterHub on /);
  // The hub has started its proxy (bounded wait; the demo is still in step 4 or just past it).
  await waitFor(async () => (demoProcesses(d.dir).some((p) => cmdline(p).includes('configurable-http-proxy')) ? true : undefined), 300);
  d.child.kill('SIGINT');
  expect(await d.exited).toBe(0);
  expect(d.output()).toContain('stopped.');
  expect(demoProcesses(d.dir).filter(live)).toEqual([]);
});
