/**
 * BENCH_ONLY=node: "click → connected notebook, server running" on the one-node cluster, fast refresh
 * on and off, side by side in one run. The measurement is test/node/z2jh.test.ts's running-server
 * test (the real zero-to-jupyterhub chart, our chart, JupyterLab 4 + omnisci-handoff-jupyter, the
 * HeavyDB stand-in as a pod, Chromium): Immerse's click → the lab → the notebook opened on the new
 * session → its query answered by the kernel. This section runs that file's install and that test
 * alone (jest -t), BENCH_NODE_RUNS times (1), and reads their FIGURE lines. Each run builds a cluster
 * (about 6 minutes warm) and needs the machine's one node to itself: `BENCH_ONLY=node npm run bench`.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The install test and the running-server test of test/node/z2jh.test.ts. */
const TESTS = 'z2jh as the site runs it|a new session for a running server';
const FIGURE = /^\s*FIGURE z2jh click → connected notebook, server running, fast refresh (on|off): click → lab ([\d.]+) s, → notebook on the new session ([\d.]+) s, → connected \(query answered\) ([\d.]+) s/;

export interface NotebookTimes {
  lab: number;
  notebook: number;
  connected: number;
}
export interface NodeBench {
  on: NotebookTimes;
  off: NotebookTimes;
}

/** One run of the test file's two tests; rejects when they fail or print no figures. */
async function once(): Promise<NodeBench> {
  const jest = [process.execPath, '--experimental-vm-modules', 'node_modules/jest/bin/jest.js', 'test/node/z2jh.test.ts', '--selectProjects', 'node', '-t', TESTS];
  const child = spawn(jest[0]!, jest.slice(1), { cwd: ROOT, env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((r) => child.on('close', r));
  const figures: Partial<NodeBench> = {};
  for (const line of output.split('\n')) {
    const m = FIGURE.exec(line);
    if (m) figures[m[1] as 'on' | 'off'] = { lab: Number(m[2]), notebook: Number(m[3]), connected: Number(m[4]) };
  }
  if (code !== 0 || !figures.on || !figures.off) throw new Error(`the node run failed (exit ${code}):\n${output.slice(-4000)}`);
  return figures as NodeBench;
}

export async function benchNode(runs: number): Promise<NodeBench[]> {
  const out: NodeBench[] = [];
  for (let i = 0; i < runs; i++) out.push(await once());
  return out;
}
