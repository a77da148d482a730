/**
 * Header mode (heavydb.enabled): can the service ask HeavyDB about sessions? It asks about a random,
 * unknown session id: HeavyDB's refusal (a TDBException) proves that the URL, TLS and the Thrift
 * protocol all work, and no real session is ever used or disturbed.
 */
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/types.js';
import { HeavyDbClient } from '../heavydb/client.js';
import { describeCause, HandoffError } from '../errors.js';
import { fail, pass, type Check } from './check.js';

export async function heavydbChecks(config: Config): Promise<Check[]> {
  const hd = config.heavydb;
  if (!hd.enabled || !hd.url) return [];
  const fix = 'check heavydb.url (HeavyDB\'s HTTP port, 6278 by default), the network path to it, and heavydb.caFile for a private CA';
  try {
    await HeavyDbClient.of(hd, 0).sessionInfo(randomBytes(16).toString('hex'));
    return [fail('heavydb: sessions', `${hd.url} accepted a made-up session id`, 'this is not a HeavyDB that checks sessions: point heavydb.url at HeavyDB')];
  } catch (e) {
    if (e instanceof HandoffError && e.code === 'heavydb_session_invalid') return [pass('heavydb: sessions', `${hd.url} answers get_session_info (a made-up session is refused, as it should be)`)];
    // The client's detail names the transport failure (ECONNREFUSED, timed out, HTTP 404, a TLS error).
    return [fail('heavydb: sessions', `${hd.url}: ${e instanceof HandoffError ? (e.detail ?? e.code) : describeCause(e)}`, fix)];
  }
}
