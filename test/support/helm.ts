/** Real Helm 3 and Helm 4 (scripts/deps/helm.sh), run with their caches and config in a private dir. */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './root.js';

export const CHART = join(ROOT, 'helm/omnisci-handoff');
export const HELMS = { v3: join(ROOT, '.cache/helm/v3/helm'), v4: join(ROOT, '.cache/helm/v4/helm') } as const;
export const KUBECTL = join(ROOT, '.cache/helm/v4/kubectl');

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

export function ensureHelm(): void {
  if (!existsSync(HELMS.v3) || !existsSync(HELMS.v4) || !existsSync(KUBECTL))
    execFileSync('bash', [join(ROOT, 'scripts/deps/helm.sh')], { stdio: 'inherit' });
}

/** The environment for helm/kubectl with their caches and config in a private dir. */
export function helmEnv(home: string): NodeJS.ProcessEnv {
  return { ...process.env, HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data') };
}

/**
 * Runs `bin` with HELM_*_HOME under `home`; `input` goes to stdin. Asynchronous on purpose: the
 * API server may call back into this process (webhook, egress proxy) while kubectl waits.
 */
export function runTool(bin: string, args: string[], home: string, input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env: helmEnv(home) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ status: code ?? -1, stdout, stderr }));
    // A tool that exits without reading its input (an error, or a command that takes none) closes the
    // pipe: EPIPE then says nothing the exit status does not.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

/**
 * The CLIs a Kubernetes test drives against one cluster, failing with their stderr: `run` any of them,
 * `kubectl`, `getJson` (kubectl get -o json) and `helm` with the cluster's kubeconfig. Getters, as the
 * tests make their home directory and cluster in beforeAll.
 */
export function clusterTools(home: () => string, kubeconfig: () => string) {
  const run = async (bin: string, args: string[], input?: string): Promise<string> => {
    const r = await runTool(bin, args, home(), input);
    if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
    return r.stdout;
  };
  const kubectl = (args: string[], input?: string) => run(KUBECTL, ['--kubeconfig', kubeconfig(), ...args], input);
  return {
    run,
    kubectl,
    getJson: async (args: string[]): Promise<any> => JSON.parse(await kubectl(['get', ...args, '-o', 'json'])),
    helm: (v: keyof typeof HELMS, args: string[]) => run(HELMS[v], [...args, '--kubeconfig', kubeconfig()]),
  };
}
