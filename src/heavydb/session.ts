/**
 * Header mode's trust decision: a session id is worth nothing until HeavyDB says whose it is
 * (get_session_info), and, when configured, that its user is a superuser or has a role (has_role).
 * HeavyDB's confirmations are reused for `heavydb.cacheSeconds` (a few seconds: within them a session
 * HeavyDB has ended, or a user whose role was revoked, is still accepted), keyed by the session's
 * hash. Refusals and failures are never cached, and a refusal of a user's role ends every cached
 * confirmation of that user at once.
 */
import { createHash } from 'node:crypto';
import type { Config } from '../config/types.js';
import { HandoffError } from '../errors.js';
import { mapName } from '../handoff/username.js';
import { HeavyDbClient, type SessionInfo } from './client.js';

export interface CheckedSession {
  /** The session id HeavyDB confirmed. */
  session: string;
  /** The hub user name (user.* rules applied to TSessionInfo.user). */
  user: string;
  database: string;
}

export interface SessionCheck {
  /** Throws HandoffError: heavydb_session_missing / _invalid (401), heavydb_role_missing (403), heavydb_unavailable (503), bad_username. */
  check(session: string | undefined): Promise<CheckedSession>;
}

/** Enough for every user's current session; the oldest confirmation goes first beyond it. */
const CACHE_LIMIT = 10_000;

export function createSessionCheck(
  config: Config,
  client?: Pick<HeavyDbClient, 'sessionInfo' | 'hasRole'>,
  clock: () => number = Date.now,
): SessionCheck {
  const hd = config.heavydb;
  const heavydb = client ?? HeavyDbClient.of(hd);
  const pattern = new RegExp(config.token.sessionPattern, 'u');
  const cache = new Map<string, { value: CheckedSession; until: number }>();
  const forget = (user: string) => {
    for (const [key, hit] of cache) if (hit.value.user === user) cache.delete(key);
  };

  const authorize = async (session: string, info: SessionInfo): Promise<void> => {
    if (info.isSuper) return;
    if (hd.requireSuperuser) throw new HandoffError('heavydb_role_missing', 'heavydb.requireSuperuser: not a superuser');
    if (hd.requireRole && !(await heavydb.hasRole(session, info.user, hd.requireRole!)))
      throw new HandoffError('heavydb_role_missing', `heavydb.requireRole: no role ${hd.requireRole}`);
  };

  return {
    async check(session) {
      if (!session) throw new HandoffError('heavydb_session_missing');
      // Not shaped like a HeavyDB session id: refused without asking (nothing forged reaches HeavyDB).
      if (!pattern.test(session)) throw new HandoffError('heavydb_session_invalid', 'not shaped like a session id (token.sessionPattern)');
      const key = createHash('sha256').update(session).digest('base64url');
      const now = clock();
      const hit = cache.get(key);
      if (hit && hit.until > now) return hit.value;
      cache.delete(key);
      const info = await heavydb.sessionInfo(session);
      // HeavyDB's user names are case-sensitive: a name the hub's folding would change is refused.
      const value = { session, user: mapName(info.user, config.user, true), database: info.database };
      try {
        await authorize(session, info);
      } catch (e) {
        // A role revoked (or never granted): no other session of this user rides on an older confirmation.
        forget(value.user);
        throw e;
      }
      if (hd.cacheSeconds > 0) {
        if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
        cache.set(key, { value, until: now + hd.cacheSeconds * 1000 });
      }
      return value;
    },
  };
}
