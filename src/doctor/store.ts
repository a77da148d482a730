/** The local store (store.backend local): its directory usable by this account, as the readiness probe checks it. */
import type { Config } from '../config/types.js';
import { HandoffError } from '../errors.js';
import { createLocalStore } from '../store/local.js';
import { fail, pass, type Check } from './check.js';

export async function localStoreCheck(config: Config): Promise<Check> {
  const dir = config.store.local.dir;
  try {
    await createLocalStore(config).check();
    return pass('store: local directory', `${dir} is writable`);
  } catch (e) {
    const detail = e instanceof HandoffError && e.detail ? e.detail : `${dir} is not usable`;
    return fail('store: local directory', detail, `make ${dir} a directory the service's account owns and can write (0700); the spawner hook reads it`);
  }
}
