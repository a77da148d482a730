/** Builds the configured store backend. */
import type { Config } from '../config/types.js';
import type { KubeApi } from '../k8s/client.js';
import type { Logger } from '../log.js';
import { createLocalStore } from './local.js';
import type { SessionStore } from './types.js';

/** `kube`: the Kubernetes API the kubernetes backend uses (connected by the caller, who also needs its namespace). */
export async function createStore(config: Config, logger: Logger, kube?: KubeApi): Promise<SessionStore> {
  switch (config.store.backend) {
    case 'local':
      return createLocalStore(config);
    case 'kubernetes': {
      // Loaded on demand: local mode never pays for @kubernetes/client-node.
      const { createKubernetesStore } = await import('./kubernetes.js');
      return createKubernetesStore(config, { logger, ...(kube ? { kube } : {}) });
    }
  }
}
