/**
 * Header mode's trust decision: a session id is worth nothing until HeavyDB says whose it is
 * (get_session_info), and, when configured, that its user is a superuser or has a role (has_role).
 * HeavyDB's confirmations are reused for `heavydb.cacheSeconds`, keyed by the session's hash; refusals
 * and failures never are, so an ended session is refused at once.
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

export function createSessionCheck(config: Config, client?: Pick<HeavyDbClient, 'sessionInfo' | 'hasRole'>): SessionCheck {
  const hd = config.heavydb;
  const heavydb = client ?? HeavyDbClient.of(hd);
  const pattern = new RegExp(config.token.sessionPattern, 'u');
  const cache = new Map<string, { value: CheckedSession; until: number }>();

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
      const now = Date.now();
      const hit = cache.get(key);
      if (hit && hit.until > now) return hit.value;
      cache.delete(key);
      const info = await heavydb.sessionInfo(session);
      const value = { session, user: mapName(info.user, config.user), database: info.database };
      await authorize(session, info);
      if (hd.cacheSeconds > 0) {
        if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
        cache.set(key, { value, until: now + hd.cacheSeconds * 1000 });
      }
      return value;
    },
  };
}
