/**
 * Replicas of the service as a hub service: `serve` processes (the built CLI, as the chart's
 * Deployment runs them) on the Kubernetes store of a real kube-apiserver (./kube-apiserver.ts),
 * behind a round-robin proxy (./round-robin.ts) that the hub knows as the service's url. Shared by
 * test/integration/hub-replicas.test.ts and bench/hub-burst.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { resolveConfig } from '../../src/config/load.js';
import { newTicketKey, ticketKeysText } from '../../src/hub/ticket-keys.js';
import { createKubernetesStore, type KubernetesStore } from '../../src/store/kubernetes.js';
import { HMAC_SECRET, rawTestConfig } from './core.js';
import { CHART, clusterTools, ensureHelm, HELMS } from './helm.js';
import { startKubeApiserver, type KubeApiserver } from './kube-apiserver.js';
import { serveCli, type Served } from './process.js';
import type { RunningHub } from './jupyterhub.js';

export const NS = 'hub';
const RELEASE = 'omnisci-handoff';

export interface KubeStore {
  k: KubeApiserver;
  /** Kubeconfig the replicas run with (the chart's ServiceAccount when `chartRbac`, else the admin). */
  kubeconfig: string;
  /** The store as an admin reads it (to check what the replicas stored). */
  store: KubernetesStore;
  dir: string;
  stop(): Promise<void>;
}

/**
 * A kube-apiserver with the hub namespace. `chartRbac`: the chart installed (webhook off) so that the
 * replicas run as its ServiceAccount with its Role, exactly as deployed; else the admin token.
 */
export async function startKubeStore(o: { chartRbac: boolean }): Promise<KubeStore> {
  const dir = mkdtempSync(join(tmpdir(), 'hub-replicas-'));
  const k = await startKubeApiserver();
  try {
    const { run, kubectl } = clusterTools(() => dir, () => k.kubeconfigPath);
    ensureHelm();
    await kubectl(['create', 'namespace', NS]);
    let kubeconfig: string;
    if (o.chartRbac) {
      const values = join(dir, 'values.json');
      writeFileSync(values, JSON.stringify({ config: { webhook: { enabled: false } } }));
      await run(HELMS.v4, ['install', RELEASE, CHART, '-n', NS, '-f', values, '--kubeconfig', k.kubeconfigPath]);
      const req = { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } };
      const raw = await kubectl(['create', '--raw', `/api/v1/namespaces/${NS}/serviceaccounts/${RELEASE}/token`, '-f', '-'], JSON.stringify(req));
      kubeconfig = k.writeKubeconfig('sa', (JSON.parse(raw) as { status: { token: string } }).status.token, NS);
    } else {
      kubeconfig = k.writeKubeconfig('replicas', k.adminToken, NS);
    }
    const admin = k.writeKubeconfig('reader', k.adminToken, NS);
    const store = createKubernetesStore(
      resolveConfig(rawTestConfig({ store: { backend: 'kubernetes', kubernetes: { kubeconfig: admin, gcIntervalMinutes: 0 } } }), { TEST_HMAC: HMAC_SECRET }),
    );
    return {
      k,
      kubeconfig,
      store,
      dir,
      stop: async () => {
        await store.close();
        await k.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await k.stop();
    throw e;
  }
}

export interface ReplicaOptions {
  hub: Pick<RunningHub, 'publicUrl' | 'apiUrl' | 'serviceToken'>;
  kube: Pick<KubeStore, 'kubeconfig' | 'dir'>;
  replicas: number;
  /** The service's hub prefix, e.g. /services/omnisci-handoff/. */
  basePath: string;
  /** hub.* over { enabled, apiUrl, createUsers }. */
  hubConfig?: Record<string, unknown>;
  /** token.* over the test defaults. */
  tokenConfig?: Record<string, unknown>;
  /** The hub API URL the replicas use (default the hub's; e.g. a counting proxy in front of it). */
  apiUrl?: string;
}

/** The replicas' one ticket key file (as the chart's Secret gives every pod the same). */
function ticketKeys(dir: string): string {
  const file = join(dir, 'ticket-keys');
  writeFileSync(file, ticketKeysText([{ secret: newTicketKey() }]), { flag: 'w', mode: 0o600 });
  return file;
}

/** Starts `replicas` `serve` processes with one config (one Secret store, one hub API token, one ticket key). */
export async function startReplicas(o: ReplicaOptions): Promise<Served[]> {
  const file = join(o.kube.dir, `replicas-${Date.now()}-${Math.random().toString(36).slice(2, 6)}.yaml`);
  const raw = rawTestConfig({
    listen: { host: '127.0.0.1', port: 0, basePath: o.basePath, internal: { port: 0 } },
    token: { ...o.tokenConfig },
    redirect: { hubPublicUrl: o.hub.publicUrl },
    store: { backend: 'kubernetes', kubernetes: { kubeconfig: o.kube.kubeconfig, gcIntervalMinutes: 0 } },
    hub: { enabled: true, apiUrl: o.apiUrl ?? o.hub.apiUrl, createUsers: true, spawnTimeoutSeconds: 120, requestTimeoutMs: 10_000, ticketKeyFile: ticketKeys(o.kube.dir), ...o.hubConfig },
    // info: serveCli learns the port from the "listening" line.
    log: { level: 'info' },
  });
  writeFileSync(file, stringify(raw));
  const env = { TEST_HMAC: HMAC_SECRET, JUPYTERHUB_API_TOKEN: o.hub.serviceToken };
  return Promise.all(Array.from({ length: o.replicas }, () => serveCli(['--config', file], env)));
}

/** The origin each replica listens on (the round-robin proxy's upstreams). */
export const originsOf = (served: Served[]) => served.map((s) => new URL(s.url).origin);
