/**
 * The optional hub identity check (hub.identityCheck). Before a verified handoff's session is stored,
 * the service learns who the browser is logged in to JupyterHub as, the way JupyterHub's HubOAuth
 * does it: the service is the hub's OAuth client (authorization code grant; JupyterHub 5 has no PKCE,
 * the code is bound to the client secret, which is the service's API token). A handoff for anyone
 * else is refused with identity_mismatch, and nothing is stored.
 *
 * Meanwhile the verified handoff waits here in memory under a random id (the OAuth `state`), bound to
 * the browser by a cookie, single-use, at most PARK_MS; no token, session or code is in a URL this
 * service builds. A confirmed identity is remembered for identityMaxAgeSeconds in a signed cookie
 * (key derived from the hub API token, so every replica accepts it), sparing the OAuth round while it
 * matches.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import express, { type Request, type Response, type Router } from 'express';
import type { Config } from '../config/types.js';
import { HandoffError } from '../errors.js';
import { clearCookie, cookie, setCookie } from '../http/cookie.js';
import { sendError } from '../http/pages.js';
import type { HubClient } from './client.js';

/** Like HubOAuth's oauth_state_max_age: long enough for a login at the identity provider. */
const PARK_MS = 10 * 60_000;
const MAX_PARKED_PER_USER = 4;
const MAX_PARKED = 2000;
const IDENTITY_COOKIE = 'ohid';
const STATE = /^[A-Za-z0-9_-]{22}$/;

export interface IdentityCheckOptions {
  config: Config;
  client: HubClient;
  apiToken: string;
  /**
   * Login mode `handoff`: the hub login URL (one-time login token for `user`) that continues to `next`.
   * A browser without a hub session is logged in as the handed-over user on its way to authorize;
   * one with a session keeps it (the hub skips the login), so its identity is what gets compared.
   */
  hubLogin?: (user: string, next: string) => string;
  now?: () => number;
}

/** A handoff waiting for the identity check: whom it is for, and how to continue it once the browser is back. */
export interface Pending {
  user: string;
  req: Request;
  res: Response;
  /** Runs `gate`, then stores and lands the handoff, in the request that came back (see Landing's Resume). */
  resume(req: Request, res: Response, gate: () => Promise<void>): Promise<void>;
  /** Spends the handoff's token before the sign-in is started (a used token gets no hub login). */
  reserve(): Promise<void>;
}

export interface IdentityCheck {
  check(pending: Pending): Promise<'deferred' | undefined>;
  /** GET oauth_callback; mount under the base path. */
  router: Router;
}

interface Parked {
  user: string;
  binding: Buffer;
  expiresAt: number;
  resume: Pending['resume'];
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export function createIdentityCheck(o: IdentityCheckOptions): IdentityCheck {
  const { config, client } = o;
  const now = o.now ?? Date.now;
  const hub = config.hub;
  const base = config.listen.basePath;
  const clientId = hub.oauthClientId!;
  const redirectUri = hub.oauthRedirectUri!;
  const callbackPath = `${base}oauth_callback`;
  const hubUrl = new URL(config.redirect.hubPublicUrl);
  const authorizePath = `${hubUrl.pathname.replace(/\/+$/, '')}/hub/api/oauth2/authorize`;
  const key = createHmac('sha256', o.apiToken).update('omnisci-handoff identity cookie').digest();
  const parked = new Map<string, Parked>();

  const sign = (payload: string) => createHmac('sha256', key).update(payload).digest('base64url');

  /** The hub user this browser was last confirmed as, if that is recent enough and the cookie is ours. */
  function remembered(req: Request): string | undefined {
    const [name, expires, mac] = (cookie(req, IDENTITY_COOKIE) ?? '').split('.');
    if (!name || !expires || !mac) return undefined;
    const expected = Buffer.from(sign(`${name}.${expires}`));
    const given = Buffer.from(mac);
    if (given.length !== expected.length || !timingSafeEqual(given, expected) || !(Number(expires) > now())) return undefined;
    return Buffer.from(name, 'base64url').toString('utf8');
  }

  function remember(req: Request, res: Response, user: string): void {
    const maxAge = hub.identityMaxAgeSeconds * 1000;
    if (!maxAge) return;
    const payload = `${Buffer.from(user).toString('base64url')}.${now() + maxAge}`;
    setCookie(req, res, IDENTITY_COOKIE, `${payload}.${sign(payload)}`, base, maxAge);
  }

  async function check({ user, req, res, resume, reserve }: Pending): Promise<'deferred' | undefined> {
    if (remembered(req) === user) return undefined;
    const t = now();
    for (const [id, p] of parked) if (p.expiresAt <= t) parked.delete(id);
    // Bounded: past MAX_PARKED in all, new ones are refused (before their token is spent) ...
    if (parked.size >= MAX_PARKED) throw new HandoffError('sign_in_busy', `${parked.size} handoffs wait for the hub's sign-in`);
    // Spent before anything is issued: a used handoff gets no hub login (login mode handoff) and no parking.
    await reserve();
    // ... and a user's oldest waiting handoff makes room for a newer one: they cannot pile up.
    const mine = [...parked].filter(([, p]) => p.user === user);
    if (mine.length >= MAX_PARKED_PER_USER) parked.delete(mine[0]![0]);
    const state = randomBytes(16).toString('base64url');
    const binding = randomBytes(32).toString('base64url');
    parked.set(state, { user, binding: digest(binding), expiresAt: t + PARK_MS, resume });
    setCookie(req, res, `ohs-${state}`, binding, callbackPath, PARK_MS);
    const authorize = `${authorizePath}?${new URLSearchParams({ client_id: clientId, redirect_uri: redirectUri, response_type: 'code', state })}`;
    res.redirect(303, o.hubLogin ? o.hubLogin(user, authorize) : new URL(authorize, hubUrl).toString());
    return 'deferred';
  }

  /**
   * The parked handoff of this state, if this browser parked it; then it is gone. Another browser
   * presenting the state (someone who learnt it) gets nothing and takes nothing away.
   */
  function take(req: Request, state: string): Parked | undefined {
    const p = parked.get(state);
    if (!p) return undefined;
    if (p.expiresAt <= now()) {
      parked.delete(state);
      return undefined;
    }
    const binding = cookie(req, `ohs-${state}`);
    if (!binding || !timingSafeEqual(digest(binding), p.binding)) return undefined;
    parked.delete(state);
    return p;
  }

  const router = express.Router();
  router.get('/oauth_callback', async (req, res) => {
    const state = typeof req.query.state === 'string' && STATE.test(req.query.state) ? req.query.state : '';
    const p = state ? take(req, state) : undefined;
    if (state) clearCookie(req, res, `ohs-${state}`, callbackPath);
    if (!p) return sendError(req, res, new HandoffError('identity_state_invalid'));
    await p.resume(req, res, async () => {
      const code = req.query.code;
      // e.g. error=access_denied when the user declined the hub's confirmation page.
      if (typeof code !== 'string' || !code)
        throw new HandoffError('hub_rejected', `OAuth authorize: ${typeof req.query.error === 'string' ? req.query.error : 'no code'}`);
      const hubUser = await client.userOf(await client.oauthToken(code, clientId, redirectUri));
      if (hubUser !== p.user) {
        throw new HandoffError('identity_mismatch', `the browser is logged in to the hub as ${hubUser}`, {
          message: `You are logged in to JupyterHub as ${hubUser}, but Immerse handed over ${p.user}. Log out of JupyterHub and open the notebook again from Immerse.`,
        });
      }
      remember(req, res, hubUser);
    });
  });

  return { check, router };
}
