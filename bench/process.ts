/** Shared by the benchmarks: each server under load runs in its own process, so the load generator does not share its event loop. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface BenchResult {
  name: string;
  rps: number;
  /** Milliseconds. */
  p50: number;
  p99: number;
  /** Failed or unexpected responses. */
  errors: number;
}

/** Starts `bench/<script>` (compiled) with args (and node flags); resolves once it prints {"port":N}. */
export async function startTarget(script: string, args: string[], nodeArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [...nodeArgs, fileURLToPath(new URL(`./${script}`, import.meta.url)), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /\{"port":(\d+)\}/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`bench target ${script} exited ${code}`)));
  });
  return { child, port };
}
