/**
 * The released jupyterlab-omnisci 3.0.0 on a classic notebook 6 server (scripts/deps/omnisci-extension.sh
 * installs the venv), started on a loopback port with a given Jupyter config dir and environment.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { freePort } from './jupyterhub.js';
import { ROOT } from './root.js';

export const OMNISCI_VENV = join(ROOT, '.cache/venv-omnisci');

export function omnisciInstalled(): boolean {
  return existsSync(join(OMNISCI_VENV, '.installed'));
}

/** Writes files keyed by relative path (as jupyterConfigFiles returns them) under a fresh directory. */
export function writeTree(files: Record<string, string>, dir = mkdtempSync(join(tmpdir(), 'ojcfg-'))): string {
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
  return dir;
}

export interface RunningNotebook {
  url: string;
  token: string;
  /** GET a path with the server's token; status and body text. */
  get(path: string, authenticated?: boolean): Promise<{ status: number; text: string }>;
  log(): string;
  stop(): Promise<void>;
}

export async function startNotebook(configDir: string, env: Record<string, string>): Promise<RunningNotebook> {
  if (!omnisciInstalled()) throw new Error('jupyterlab-omnisci is not installed: run scripts/deps/omnisci-extension.sh');
  const home = mkdtempSync(join(tmpdir(), 'onb-'));
  const port = await freePort();
  const token = randomBytes(24).toString('hex');
  const args = ['--no-browser', '--ip=127.0.0.1', `--port=${port}`, '--port-retries=0', `--notebook-dir=${home}`, '--allow-root'];
  const child = spawn(join(OMNISCI_VENV, 'bin/jupyter-notebook'), args, {
    cwd: home,
    env: {
      PATH: `${join(OMNISCI_VENV, 'bin')}:/usr/bin:/bin`,
      HOME: home,
      JUPYTER_CONFIG_DIR: configDir,
      JUPYTER_DATA_DIR: join(home, 'data'),
      JUPYTER_RUNTIME_DIR: join(home, 'runtime'),
      JUPYTER_TOKEN: token,
      PYTHONWARNINGS: 'ignore',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const get: RunningNotebook['get'] = async (path, authenticated = true) => {
    const r = await fetch(`${url}${path}`, { headers: authenticated ? { Authorization: `token ${token}` } : {}, redirect: 'manual' });
    return { status: r.status, text: await r.text() };
  };
  const proc = jupyterProcess('jupyter-notebook', child, home, () => output);
  if ((await proc.until(async () => (await get('/api/status')).status)) === 'exited')
    throw new Error(`jupyter-notebook exited during startup:\n${output}`);
  return { url, token, get, log: () => output, stop: proc.stop };
}

/**
 * A Jupyter server started detached (its own process group) with a private `home`: `stop` ends the
 * group and removes `home`; `until` polls `probe` every 100 ms and resolves 'up' once it answers 200,
 * 'exited' when the process ended first, and throws (having stopped it) after two minutes.
 */
export function jupyterProcess(name: string, child: ChildProcess, home: string, output: () => string) {
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(-child.pid!, 'SIGTERM');
      await exited;
    }
    rmSync(home, { recursive: true, force: true });
  };
  const until = async (probe: () => Promise<number>): Promise<'up' | 'exited'> => {
    for (let i = 0; i <= 1200; i++) {
      if (child.exitCode !== null) return 'exited';
      if ((await probe().catch(() => 0)) === 200) return 'up';
      await new Promise((r) => setTimeout(r, 100));
    }
    await stop();
    throw new Error(`${name} did not come up:\n${output()}`);
  };
  return { stop, until };
}
