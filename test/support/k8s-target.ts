/**
 * Where the Kubernetes store tests run: the loopback fake API server by default, or any real
 * API server when OMNISCI_TEST_KUBECONFIG (and OMNISCI_TEST_NAMESPACE, default "default") are set.
 * Tests that need to steer the server (RBAC denials, injected 429/5xx, interleavings, running pods)
 * always run against the fake (`k8sTarget({ fake: true })`), never skipped.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { resolveConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { startFakeApiServer, type FakeApiServer } from './fake-apiserver.js';

export interface K8sTarget {
  kubeconfig: string;
  namespace: string;
  /** Undefined against a real API server. */
  fake: FakeApiServer | undefined;
  dir: string;
  /** Reads a Secret as stored, through the API (undefined when absent). */
  secret(name: string): Promise<V1Secret | undefined>;
  close(): Promise<void>;
}

export const externalKubeconfig = process.env.OMNISCI_TEST_KUBECONFIG;

/** The configured target; `fake: true`: the loopback stand-in whatever is configured (tests that steer the server). */
export async function k8sTarget(o: { fake?: boolean } = {}): Promise<K8sTarget> {
  const external = o.fake ? undefined : externalKubeconfig;
  const dir = mkdtempSync(join(tmpdir(), 'omnisci-k8s-'));
  const namespace = external ? (process.env.OMNISCI_TEST_NAMESPACE ?? 'default') : 'hub';
  const fake = external ? undefined : await startFakeApiServer({ namespaces: [namespace] });
  const kubeconfig = external ?? fake!.writeKubeconfig(dir, namespace);
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const api = kc.makeApiClient(CoreV1Api);
  return {
    kubeconfig,
    namespace,
    fake,
    dir,
    async secret(name) {
      try {
        return await api.readNamespacedSecret({ name, namespace });
      } catch (e) {
        if ((e as { code?: number }).code === 404) return undefined;
        throw e;
      }
    },
    async close() {
      await fake?.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A resolved config for the kubernetes backend; `raw` is merged over the minimal valid config. */
export function k8sConfig(
  t: Pick<K8sTarget, 'kubeconfig' | 'namespace'>,
  kubernetes: Record<string, unknown> = {},
  raw: Record<string, unknown> = {},
): Config {
  return resolveConfig(
    {
      token: { issuer: 'immerse', audience: 'jupyterhub', algorithms: ['HS256'], keys: { hmacSecretEnv: 'TEST_HMAC' } },
      ...raw,
      store: {
        ...(raw.store as object | undefined),
        backend: 'kubernetes',
        kubernetes: { kubeconfig: t.kubeconfig, namespace: t.namespace, gcIntervalMinutes: 0, ...kubernetes },
      },
    },
    { TEST_HMAC: 'x'.repeat(32) },
  );
}
