/**
 * Podman for the container image tests: the repository's images built with real podman/buildah (runc,
 * scripts/images/containers.conf) on the local base stand-ins (scripts/images/build-base.sh), and run
 * on the host's network namespace only (`--network host`: their ports are loopback ports of this
 * machine; no podman bridge network is ever used).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
export const BASE_IMAGES = {
  node: 'localhost/omnisci-handoff-test/node:24-slim',
  debian: 'localhost/omnisci-handoff-test/debian:bookworm-slim',
};
const ENV = { ...process.env, CONTAINERS_CONF: join(ROOT, 'scripts/images/containers.conf') };

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (never throws on a non-zero exit). */
export function run(cmd: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export const podman = (...args: string[]): Promise<Run> => run('podman', args);

/** podman, failing with its output when it exits non-zero; stdout trimmed. */
export async function podmanOk(...args: string[]): Promise<string> {
  const r = await podman(...args);
  if (r.code !== 0) throw new Error(`podman ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout.trim();
}

/** Builds (or finds current) the base stand-ins; a no-op taking well under a second when cached. */
export async function ensureBaseImages(): Promise<void> {
  const r = await run('bash', [join(ROOT, 'scripts/images/build-base.sh')]);
  if (r.code !== 0) throw new Error(`scripts/images/build-base.sh exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  if (r.stdout.trim()) process.stdout.write(`${r.stdout.trim()}\n`);
}

export interface Built {
  id: string;
  /** podman build's output (its steps and "Using cache" lines). */
  output: string;
  seconds: number;
}

/** `podman build` (nice'd: 2-core machines), network host for npm/pip/apt, never pulling. */
export async function build(o: {
  tag: string; context: string; file?: string; args?: Record<string, string>;
  /** The stage to build (`--target`). */
  target?: string;
  /** Images standing in for the recipe's `FROM` names (`--build-context NAME=container-image://IMAGE`). */
  from?: Record<string, string>;
}): Promise<Built> {
  const started = Date.now();
  const args = ['-n', '10', 'podman', 'build', '--pull=never', '--network', 'host', '--layers', '-t', o.tag];
  if (o.file) args.push('-f', o.file);
  if (o.target) args.push('--target', o.target);
  for (const [k, v] of Object.entries(o.args ?? {})) args.push('--build-arg', `${k}=${v}`);
  for (const [k, v] of Object.entries(o.from ?? {})) args.push('--build-context', `${k}=container-image://${v}`);
  const r = await run('nice', [...args, o.context]);
  const output = `${r.stdout}\n${r.stderr}`;
  if (r.code !== 0) throw new Error(`podman build ${o.tag} exited ${r.code}:\n${output}`);
  return { id: await podmanOk('image', 'inspect', '--format', '{{.Id}}', o.tag), output, seconds: (Date.now() - started) / 1000 };
}

/** Whether the build output shows the (first) step starting with `instruction` served from the layer cache. */
export function cachedStep(output: string, instruction: string): boolean {
  const lines = output.split('\n');
  const i = lines.findIndex((l) => /^(\[\d+\/\d+\] )?STEP \d+\/\d+: /.test(l) && l.replace(/^.*?STEP \d+\/\d+: /, '').startsWith(instruction));
  if (i < 0) throw new Error(`no step "${instruction}" in the build output:\n${output}`);
  return /^--> Using cache /.test(lines[i + 1] ?? '');
}

export async function imageSize(image: string): Promise<number> {
  return Number(await podmanOk('image', 'inspect', '--format', '{{.Size}}', image));
}

export async function imageLayers(image: string): Promise<string[]> {
  return JSON.parse(await podmanOk('image', 'inspect', '--format', '{{json .RootFS.Layers}}', image)) as string[];
}

export const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(0)} MB`;

/** A free loopback TCP port (the containers share the host's network namespace). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A unique container name, so parallel runs and leftovers never collide. */
export const containerName = (what: string): string => `omnisci-handoff-test-${what}-${process.pid}-${Date.now().toString(36)}`;

/** Polls `url` until it answers 200, failing early with the container's log if the container stops. */
export async function waitForHttp(url: string, container: string, headers: Record<string, string> = {}, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await fetch(url, { redirect: 'manual', headers })).status === 200) return;
    } catch {
      /* not listening yet */
    }
    const state = await podman('inspect', '--format', '{{.State.Running}}', container);
    if (state.stdout.trim() !== 'true' || Date.now() > deadline) {
      const logs = await podman('logs', container);
      throw new Error(`${container} did not serve ${url} (running: ${state.stdout.trim() || state.stderr.trim()}):\n${logs.stdout}${logs.stderr}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
