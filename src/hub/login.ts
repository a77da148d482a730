/**
 * One-time hub login tokens (login mode `handoff`, JupyterHub's documented forced-login pattern),
 * bound to the browser they were made for, so that a login URL is no bearer credential: sent to
 * anyone else it logs nobody in. The service and the hub may have different origins (a cookie of one
 * is not the other's), so the browser proves itself to both in one round trip:
 *
 * 1. The service sends the browser to /hub/login?login_token=L&next=…; L (`login`) holds the hash of
 *    the browser's binding cookie here (`ohb`) and `next`.
 * 2. The shipped authenticator gives the browser a random cookie on the hub's login path (when it has
 *    none) and exchanges L together with that cookie. L logs nobody in: the answer is the way back,
 *    {servicePublicUrl}login/continue?ticket=R, where R (`loginReturn`) adds the hub cookie's hash.
 * 3. The service lets only the browser with L's binding cookie past R, and only once per L, on to
 *    /hub/login?login_token=H&next=…; H (`hubLogin`) holds the hub cookie's hash alone.
 * 4. The authenticator exchanges H with the cookie: only the browser that holds it is logged in, once.
 *
 * Every token is a sealed ticket (./tickets.ts) living at most loginTokenTtlSeconds; L (when R is
 * taken) and H are spent in the session store, so each works once whichever replica sees it, and a
 * refusal (another browser) spends nothing. No cookie value is in a URL.
 */
import { HandoffError } from '../errors.js';
import type { SessionStore } from '../store/types.js';
import { bindingOf, useOnce, type Tickets } from './tickets.js';

/** What the authenticator's exchange yields: the user (step 4), or the ticket of the way back to the service (step 2). */
export type Exchanged = { user: string } | { returnTicket: string };

export interface LoginTokens {
  /** Step 1: a login token for `user`, for the browser whose binding is `bind`, continuing to the hub path `next`. */
  issue(user: string, bind: string, next: string): string;
  /** Steps 2 and 4, with the value of the browser's hub cookie. Throws login_token_invalid or login_browser_mismatch. */
  exchange(token: string, hubCookie: string | undefined): Promise<Exchanged>;
  /** Step 3: the final login token and its `next`, for the browser `boundTo` accepts. Throws like exchange. */
  prove(ticket: string, boundTo: (bind: string) => boolean): Promise<{ token: string; next: string }>;
}

/** The authenticator's cookie value: 256 random bits, base64url (Python's secrets.token_urlsafe(32)). */
const HUB_COOKIE = /^[A-Za-z0-9_-]{43}$/;

export function createLoginTokens(tickets: Tickets, store: Pick<SessionStore, 'spend'>, ttlMs: number): LoginTokens {
  const invalid = () => new HandoffError('login_token_invalid');
  const otherBrowser = (detail: string) => new HandoffError('login_browser_mismatch', detail);
  return {
    issue: (user, bind, next) => tickets.issue('login', user, ttlMs, { bind, next }).ticket,

    async exchange(token, hubCookie) {
      const hub = hubCookie !== undefined && HUB_COOKIE.test(hubCookie) ? bindingOf(hubCookie) : undefined;
      const first = tickets.open('login', token);
      if (first) {
        if (!hub) throw otherBrowser('no hub cookie came with the login token');
        const back = { bind: first.bind, next: first.next, hub, first: first.nonce, firstExp: first.exp };
        return { returnTicket: tickets.issue('loginReturn', first.user, ttlMs, back).ticket };
      }
      const final = tickets.open('hubLogin', token);
      if (!final) throw invalid();
      // Checked before it is spent: presenting it from another browser does not use it up.
      if (hub !== final.hub) throw otherBrowser('the hub cookie is not the one the login token was made for');
      if (!(await useOnce(store, 'hubLogin', final))) throw invalid();
      return { user: final.user };
    },

    async prove(ticket, boundTo) {
      const t = tickets.open('loginReturn', ticket);
      if (!t) throw invalid();
      if (!boundTo(t.bind)) throw otherBrowser('the browser is not the one the login token was issued to');
      // L's single use: whichever way back of it comes first (each exchange of L makes one).
      if (!(await useOnce(store, 'login', { user: t.user, nonce: t.first, exp: t.firstExp }))) throw invalid();
      return { token: tickets.issue('hubLogin', t.user, ttlMs, { hub: t.hub }).ticket, next: t.next };
    },
  };
}
