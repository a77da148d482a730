/**
 * One-time hub login tokens (login mode `handoff`, JupyterHub's documented forced-login pattern):
 * a sealed ticket bound to one user, living at most loginTokenTtlSeconds (≤ 30 s), spent in the
 * session store when exchanged, so that it works once whichever replica the hub's exchange reaches.
 */
import type { SessionStore } from '../store/types.js';
import { useOnce, type Tickets } from './tickets.js';

export interface LoginTokens {
  issue(user: string): string;
  /** The user the token was issued for, when it is authentic, live and not used before. */
  exchange(token: string): Promise<string | undefined>;
}

export function createLoginTokens(tickets: Tickets, store: Pick<SessionStore, 'spend'>, ttlMs: number): LoginTokens {
  return {
    issue: (user) => tickets.issue('login', user, ttlMs, {}).ticket,
    async exchange(token) {
      const t = tickets.open('login', token);
      return t && (await useOnce(store, 'login', t)) ? t.user : undefined;
    },
  };
}
