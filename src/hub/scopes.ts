/** The JupyterHub scopes the service's role needs under a configuration: one list for the z2jh values, `doctor` and the docs. */
import type { Config } from '../config/types.js';

export interface NeededScope {
  scope: string;
  /** Why, when a setting asks for it (doctor names it). */
  because?: string;
}

export function neededScopes(hub: Config['hub']): NeededScope[] {
  return [
    { scope: 'servers' },
    ...(hub.createUsers ? [{ scope: 'admin:users', because: 'hub.createUsers is on' }] : []),
    ...(hub.allowSharedServers ? [] : [{ scope: 'read:shares', because: 'hub.allowSharedServers is off: the service checks that no server of the user is shared' }]),
  ];
}
