/**
 * The demo's processes: each in its own process group with its output in `<dir>/logs/<name>.log`,
 * and a mark in its environment (the hub passes it on to the proxy and the single-user servers), so
 * that stopping finds everything a run started — also what an earlier, killed run left (Linux: /proc).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { StepFailed } from './steps.ts';

/** The environment variable every process of a run carries, its value the run's state directory. */
export const MARK = 'OMNISCI_HANDOFF_DEMO_MARK';

export interface Child {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone */
  }
}

export class Processes {
  private readonly children: Child[] = [];
  private readonly closers: (() => void)[] = [];
  private stopping: Promise<void> | undefined;
  /** The run's state directory: logs go to its logs/, and it is the mark's value. */
  readonly dir: string;
  private readonly root: string;

  /** (Node's type stripping: no parameter properties.) */
  constructor(dir: string, root: string) {
    this.dir = dir;
    this.root = root;
  }

  logFile(name: string): string {
    mkdirSync(join(this.dir, 'logs'), { recursive: true });
    return join(this.dir, 'logs', `${name}.log`);
  }

  /** Starts a process in its own process group (a terminal's Ctrl-C reaches the demo only, which stops it in order). */
  start(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd = this.root): Child {
    const fd = openSync(this.logFile(name), 'w');
    const child = spawn(cmd, args, { cwd, env: { ...env, [MARK]: this.dir }, stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const c = { name, child, exited };
    this.children.push(c);
    return c;
  }

  /** Runs a command to its end; StepFailed (with its log) when it fails. */
  async run(name: string, cmd: string, args: string[]): Promise<void> {
    const c = this.start(name, cmd, args, { ...process.env });
    await c.exited;
    this.children.splice(this.children.indexOf(c), 1);
    const shown = [cmd, ...args].map((a) => (a.startsWith(`${this.root}/`) ? relative(this.root, a) : a)).join(' ');
    if (c.child.exitCode !== 0) throw new StepFailed(`${shown} failed (exit ${c.child.exitCode ?? c.child.signalCode})`, this.logFile(name));
  }

  /** Something in this process to close on stop (a server). */
  onStop(close: () => void): void {
    this.closers.push(close);
  }

  /** Waits until `check` holds; StepFailed when `c` exits first or the time is up. */
  async waitUntil(what: string, c: Child, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!alive(c)) throw new StepFailed(`${c.name} exited (${c.child.exitCode ?? c.child.signalCode}) before ${what}`, this.logFile(c.name));
      if (await check().catch(() => false)) return;
      if (Date.now() > deadline) throw new StepFailed(`${what}: not within ${timeoutMs / 1000} s`, this.logFile(c.name));
      await sleep(200);
    }
  }

  /** Processes whose environment carries this run's mark (Linux: /proc; elsewhere none). */
  marked(): number[] {
    if (!existsSync('/proc/self/environ')) return [];
    const needle = `${MARK}=${this.dir}\0`;
    const pids: number[] = [];
    for (const entry of readdirSync('/proc')) {
      const pid = Number(entry);
      if (!Number.isInteger(pid) || pid === process.pid) continue;
      try {
        if (`${readFileSync(`/proc/${entry}/environ`, 'latin1')}\0`.includes(needle)) pids.push(pid);
      } catch {
        /* gone, or not ours */
      }
    }
    return pids;
  }

  /** Stops every marked process (SIGTERM, SIGKILL after 5 s); how many there were. */
  async killMarked(): Promise<number> {
    const pids = this.marked();
    for (const p of pids) signal(p, 'SIGTERM');
    for (let i = 0; i < 50 && this.marked().length; i++) await sleep(100);
    for (const p of this.marked()) signal(p, 'SIGKILL');
    return pids.length;
  }

  /** In-process servers first, then the children newest first (the service calls the hub; the hub stops its servers and proxy); then anything marked. */
  stopAll(): Promise<void> {
    return (this.stopping ??= (async () => {
      for (const close of this.closers) close();
      for (const c of [...this.children].reverse()) await stopChild(c, c.name === 'jupyterhub' ? 30_000 : 10_000);
      await this.killMarked();
    })());
  }

  /** No more waiting (a second Ctrl-C). */
  killNow(): void {
    for (const c of this.children) if (alive(c)) signal(-c.child.pid!, 'SIGKILL');
    for (const p of this.marked()) signal(p, 'SIGKILL');
  }
}

export const alive = (c: Child) => c.child.exitCode === null && c.child.signalCode === null;

async function stopChild(c: Child, graceMs: number): Promise<void> {
  if (!alive(c)) return;
  signal(-c.child.pid!, 'SIGTERM');
  const timer = setTimeout(() => signal(-c.child.pid!, 'SIGKILL'), graceMs);
  await c.exited;
  clearTimeout(timer);
}
