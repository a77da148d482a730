/** Runs the built CLI (dist/, built by `npm test`) as a real process; ends what a stopped peer left running. */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readlinkSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ROOT } from './root.js';

// From the repository root: this file also runs compiled into dist/ (the benchmarks).
export const CLI = join(ROOT, 'dist/src/cli.js');

/**
 * SIGKILLs every process that still has `logFile` open: what a stopped peer started in sessions of
 * its own (the hub's proxy and single-user servers) outlives a process-group kill. A peer that writes
 * its output to a file, not to a pipe of this process, cannot keep jest alive; this ends the rest.
 */
export function killLogHolders(logFile: string): void {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d) && Number(d) !== process.pid)) {
    try {
      if (readdirSync(`/proc/${pid}/fd`).some((fd) => readlinkSync(`/proc/${pid}/fd/${fd}`) === logFile)) process.kill(Number(pid), 'SIGKILL');
    } catch {
      /* gone meanwhile */
    }
  }
}

function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` (npm test does it)`);
}

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  assertBuilt();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export interface Served {
  child: ChildProcess;
  url: string;
  output(): string;
  /** Resolves once the output matches. */
  waitFor(pattern: RegExp): Promise<RegExpExecArray>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * The command that runs node with `args` as the unix account `ids`, whatever directory the checkout
 * lives in (a private 0700 one included): a private mount namespace bind-mounts the repository at a
 * fresh traversable path (removed when the process ends), and the account runs node and the CLI from
 * there. No permission of the user's directories changes. Needs root, like switching accounts does.
 */
function asAccount(args: string[], ids: { uid: number; gid: number }): { command: string; args: string[]; cleanup(): void } {
  const view = mkdtempSync(join(tmpdir(), 'oh-view-'));
  chmodSync(view, 0o755);
  const inView = (p: string) => (p.startsWith(`${ROOT}/`) ? join(view, relative(ROOT, p)) : p);
  const script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"';
  return {
    command: 'unshare',
    args: ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', ROOT, view,
      'setpriv', `--reuid=${ids.uid}`, `--regid=${ids.gid}`, '--clear-groups', '--', inView(process.execPath), ...args.map(inView)],
    // Never recursive: the mount lives in the child's namespace only, so this directory is empty here.
    cleanup: () => rmdirSync(view),
  };
}

/** Starts `serve` (as the unix account `ids`, when given and we are root) and resolves once its "listening" log line says where. */
export function serveCli(args: string[], env: NodeJS.ProcessEnv = {}, cwd?: string, ids?: { uid: number; gid: number }): Promise<Served> {
  assertBuilt();
  return new Promise((resolve, reject) => {
    const run = ids ? asAccount([CLI, 'serve', ...args], ids) : { command: process.execPath, args: [CLI, 'serve', ...args], cleanup: () => undefined };
    const child = spawn(run.command, run.args, { env: { PATH: process.env.PATH, ...env }, cwd });
    child.on('exit', () => run.cleanup());
    let out = '';
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${out}`)), 20_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /"port":(\d+),"basePath":"([^"]*)"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({
          child,
          url: `http://127.0.0.1:${m[1]}${m[2]}`,
          output: () => out,
          waitFor: async (pattern) => {
            for (let i = 0; i < 200; i++) {
              const found = pattern.exec(out);
              if (found) return found;
              await new Promise((r) => setTimeout(r, 50));
            }
            throw new Error(`no ${pattern} in:\n${out}`);
          },
          stop: (signal = 'SIGTERM') => {
            child.kill(signal);
            return exited;
          },
        });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code}:\n${out}`));
    });
  });
}
