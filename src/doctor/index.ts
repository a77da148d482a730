/**
 * `omnisci-handoff doctor`: checks a live deployment from where it runs, one check per line with the
 * fix. Groups, in order: the config file; the token keys; the store (its directory, or on Kubernetes
 * the service's identity and RBAC, the webhook registration and the Jupyter ConfigMap); the hub (API,
 * token scopes, public URL); HeavyDB (header mode). A new group is a function returning Check[] added to the list below.
 */
import { ConfigError, loadConfigFile } from '../config/load.js';
import type { Config } from '../config/types.js';
import { fail, pass, type Check } from './check.js';
import { heavydbChecks } from './heavydb.js';
import { hubChecks, publicUrlCheck } from './hub.js';
import { keyChecks } from './keys.js';
import { localStoreCheck } from './store.js';

export { exitCode, formatCheck, type Check } from './check.js';

export interface DoctorOptions {
  configPath: string;
  env?: NodeJS.ProcessEnv;
  /** An admin's kubeconfig for the cluster reads the service account may not be allowed (webhook registration, Service, ConfigMap). */
  kubeconfig?: string;
  fetch?: typeof fetch;
}

function configCheck(path: string, env: NodeJS.ProcessEnv): { config?: Config; check: Check } {
  try {
    const config = loadConfigFile(path, env);
    const parts = [`store ${config.store.backend}`, `hub ${config.hub.enabled ? 'on' : 'off'}`, `webhook ${config.webhook.enabled ? 'on' : 'off'}`];
    return { config, check: pass('config', `${path}: valid (${parts.join(', ')})`) };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const problems = e.problems.map((p) => `${p.path || '(root)'}: ${p.message}`).join('; ');
    return { check: fail('config', `${path}: ${problems}`, 'correct the listed settings (omnisci-handoff check-config --config FILE lists them too)') };
  }
}

export async function doctor(o: DoctorOptions): Promise<Check[]> {
  const env = o.env ?? process.env;
  const fetchImpl = o.fetch ?? globalThis.fetch;
  const { config, check } = configCheck(o.configPath, env);
  if (!config) return [check];
  const groups: (() => Promise<Check[]>)[] = [
    () => keyChecks(config, env, fetchImpl),
    async () =>
      config.store.backend === 'local'
        ? [await localStoreCheck(config)]
        : // Loaded on demand, as the service does: a local setup never loads @kubernetes/client-node.
          (await import('./kubernetes.js')).kubernetesChecks(config, { env, ...(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {}) }),
    async () => [...(config.hub.enabled ? await hubChecks(config, env, fetchImpl) : []), await publicUrlCheck(config, fetchImpl)],
    () => heavydbChecks(config),
  ];
  const out: Check[] = [check];
  for (const group of groups) out.push(...(await group()));
  return out;
}
