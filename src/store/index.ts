/** Builds the configured store backend. */
import type { Config } from '../config/types.js';
import type { Logger } from '../log.js';
import { createLocalStore } from './local.js';
import type { SessionStore } from './types.js';

export async function createStore(config: Config, _logger: Logger): Promise<SessionStore> {
  switch (config.store.backend) {
    case 'local':
      return createLocalStore(config);
    default:
      throw new Error(`store backend ${config.store.backend} is not available`);
  }
}
