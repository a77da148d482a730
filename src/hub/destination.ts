/**
 * Where a browser goes once a session was stored for a user, from the hub's model of the user's
 * server: pure, so the whole policy is one table (test/unit/destination.test.ts).
 */
import type { Config } from '../config/types.js';
import type { Connection } from '../handoff/types.js';
import type { AcceptResult } from '../store/types.js';
import type { HubUser } from './client.js';

/**
 * - `lab`: the server runs and nothing it started with changed: straight to the lab.
 * - `start`: it does not run (stopped, starting or stopping): start it, or follow its start, on a progress page.
 * - `restart`: it runs with another OmniSci connection and hub.connectionChangePolicy is `restart`.
 * - `keep`: it runs with another OmniSci connection and keeps it (policy `keep`): the progress page
 *   says so (env vars cannot change in a running server; the session file does).
 */
export type Destination = 'lab' | 'start' | 'restart' | 'keep';

const sameConnection = (a: Connection, b: Connection) => a.protocol === b.protocol && a.host === b.host && a.port === b.port;

export function destinationOf(
  result: AcceptResult,
  model: HubUser | undefined,
  server: string,
  policy: Config['hub']['connectionChangePolicy'],
): Destination {
  const prev = result.previous;
  const changed = result.outcome === 'stored' && prev !== undefined && prev.session !== '' && !sameConnection(prev.connection, result.record.connection);
  const s = model?.servers[server];
  const running = Boolean(s?.ready && !s.pending);
  if (!running) return 'start';
  if (!changed) return 'lab';
  return policy === 'restart' ? 'restart' : 'keep';
}
