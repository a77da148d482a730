/** Builds the configured store backend. */
import type { Config } from '../config/types.js';
import type { Logger } from '../log.js';
import { createLocalStore } from './local.js';
import type { SessionStore } from './types.js';

export async function createStore(config: Config, logger: Logger): Promise<SessionStore> {
  switch (config.store.backend) {
    case 'local':
      return createLocalStore(config);
    case 'kubernetes': {
      // Loaded on demand: local mode never pays for @kubernetes/client-node.
      const { createKubernetesStore } = await import('./kubernetes.js');
      return createKubernetesStore(config, logger);
    }
  }
}
