/**
 * The JupyterHub landing. Before the session is stored: the gates (../sign-in.ts) and the hub user,
 * read or created. After: the destination (../../hub/destination.ts) — the lab when the server runs,
 * else a progress page (../progress.ts) that follows the spawn and ends in that redirect. In login
 * mode `handoff` the final hop goes through /hub/login with a one-time login token bound to the
 * browser (../../hub/login.ts), which the shipped authenticator exchanges here. Header mode
 * (../session-login.ts) lands through `sessionLanding`: the same checks before the store, answered to
 * the authenticator instead of the browser.
 * Every page and exchange works on any replica: its state is in a ticket (../../hub/tickets.ts) and
 * at the hub, single use is recorded in the session store.
 */
import type { RequestHandler } from 'express';
import type { Config } from '../../config/types.js';
import { errorFields, HandoffError } from '../../errors.js';
import type { Handoff } from '../../handoff/types.js';
import { HubClient, type HubUser } from '../../hub/client.js';
import { destinationOf } from '../../hub/destination.js';
import { sessionFingerprint } from '../../hub/fingerprint.js';
import { labUrl } from '../../hub/lab-url.js';
import { createLoginTokens } from '../../hub/login.js';
import { serverTasks } from '../../hub/servers.js';
import { presentsToken, readApiToken } from '../../hub/service-token.js';
import { readTicketKeys } from '../../hub/ticket-keys.js';
import { createTickets } from '../../hub/tickets.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import type { AcceptResult, SessionStore } from '../../store/types.js';
import { fail, type Landing } from '../pipeline.js';
import { PROGRESS_SCRIPT, progressHandlers, type ProgressHandlers } from '../progress.js';
import { isNavigation } from '../security.js';
import { createSignIn, type SignIn } from '../sign-in.js';

export interface HubLandingDeps {
  store: Pick<SessionStore, 'spend'>;
  env?: NodeJS.ProcessEnv;
  logger?: Pick<Logger, 'info' | 'warn'>;
  fetch?: typeof fetch;
  metrics?: Pick<Metrics, 'spawnTasks'>;
}

export interface HubLanding {
  /** Handoff tokens: the browser is redirected. */
  landing: Landing;
  /** Header mode: the authenticator is told the hub user and where its browser goes next (JSON). */
  sessionLanding: Landing;
  progress: ProgressHandlers;
  signIn: SignIn;
  /** POST login-token/exchange: the shipped authenticator trades a login token (and the browser's hub cookie) for the user name, or for the way back here. */
  exchange: RequestHandler;
  /** GET login/continue: the browser back from the hub's login proves it is the one the login token was issued to. */
  loginReturn: RequestHandler;
  /** Whether an Authorization header presents this service's hub API token (the authenticator's channel). */
  fromHub(authorization: string | undefined): boolean;
  /** Inline scripts of its pages, for the CSP to allow by hash. */
  scripts: string[];
  /** Throws when the hub does not answer or refuses the service's token. */
  readiness(): Promise<void>;
}

export function createHubLanding(config: Config, deps: HubLandingDeps): HubLanding {
  const hubConfig = config.hub;
  if (!hubConfig.apiUrl) throw new HandoffError('hub_unavailable', 'hub.apiUrl is not set');
  const token = readApiToken(hubConfig, deps.env ?? process.env);
  const client = new HubClient({
    apiUrl: hubConfig.apiUrl,
    token,
    requestTimeoutMs: hubConfig.requestTimeoutMs,
    retries: hubConfig.retries,
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
  });
  const { store } = deps;
  const log = deps.logger;
  const base = config.listen.basePath;
  // Progress pages outlive the spawn a little so the browser can still read the outcome.
  const progressTtlMs = hubConfig.spawnTimeoutSeconds * 1000 + 10 * 60_000;
  const handoffLogin = hubConfig.loginMode === 'handoff';
  const ticketKeys = readTicketKeys(config);
  const tickets = createTickets(ticketKeys);
  const fingerprint = sessionFingerprint(ticketKeys);
  const loginTokens = createLoginTokens(tickets, store, hubConfig.loginTokenTtlSeconds * 1000);
  const fromHub = presentsToken(token);
  const taskFor = serverTasks(client, hubConfig, {
    onCount: (n) => deps.metrics?.spawnTasks.set(n),
    onError: (user, err) => log?.warn({ user, ...errorFields(err) }, 'server did not start'),
  });

  // Where the authenticator sends the browser back to prove itself (login mode `handoff`).
  const servicePublicUrl = config.redirect.servicePublicUrl ?? `${new URL(config.redirect.hubPublicUrl).origin}${base}`;

  /** /hub/login with a login token, continuing to the hub path `next` (the hub keeps its query as given). */
  const hubLoginUrl = (loginToken: string, next: string): string => {
    const login = new URL(`${config.redirect.hubPublicUrl}/hub/login`);
    login.search = `login_token=${loginToken}&next=${encodeURIComponent(next)}`;
    return login.toString();
  };
  /** Login mode `handoff`: the hub login of `user` for the browser whose binding is `bind`, continuing to `next`. */
  const hubLogin = (user: string, next: string, bind: string): string => hubLoginUrl(loginTokens.issue(user, bind, next), next);

  /** The server a handoff opens: the one it names, else the configured one. */
  const serverOf = (handoff: Handoff): string => handoff.server ?? hubConfig.serverName;

  /** Where the browser finally goes: the server's lab (waiting for the session `fingerprint` when given), through /hub/login for the browser `loginBind` when given. */
  const finalUrl = (user: string, server: string, loginBind?: string, fingerprint?: string): string => {
    const lab = labUrl(config.redirect, user, server, fingerprint);
    if (loginBind === undefined) return lab;
    const u = new URL(lab);
    return hubLogin(user, u.pathname + u.search, loginBind);
  };

  const signIn = createSignIn({ config, client, tickets, store, ...(handoffLogin ? { hubLogin } : {}) });

  /**
   * The lab, or a progress page (bound to the browser when `bind` is given) once the server was asked
   * for. A server that kept running gets a new session only when the kubelet syncs its Secret volume:
   * its lab URL carries the stored session's fingerprint, which the lab waits for.
   */
  async function next(handoff: Handoff, result: AcceptResult, model: HubUser | undefined, login: boolean, bind?: string): Promise<string> {
    const { user } = handoff;
    const server = serverOf(handoff);
    const d = destinationOf(result, model, server, hubConfig.connectionChangePolicy);
    const stored = result.outcome === 'stored' ? result.record.fingerprint : undefined;
    if (d === 'lab') return finalUrl(user, server, login ? bind : undefined, stored);
    // Asked before the browser is sent on, so that a replica showing its page finds the spawn under way;
    // as soon as the hub shows it so, not when the hub answers (which it holds up to slow_spawn_timeout).
    if (d !== 'keep') await taskFor(user, server, { restart: d === 'restart', ...(model ? { model } : {}) }).requested;
    const kept = d === 'keep' ? { notice: true, ...(stored === undefined ? {} : { fingerprint: stored }) } : {};
    const body = { ...(server ? { server } : {}), ...(bind ? { bind } : {}), ...(login ? { login } : {}), ...kept };
    return `${base}progress/${tickets.issue('progress', user, progressTtlMs, body).ticket}`;
  }

  /** The hub's model of the user; a missing user is created (hub.createUsers) or refused. */
  async function hubUserOf(user: string): Promise<HubUser | undefined> {
    const model = await client.getUser(user);
    if (model) return model;
    if (!hubConfig.createUsers) throw new HandoffError('hub_user_unknown', `no hub user ${user}`);
    await client.createUser(user);
    log?.info({ user }, 'hub user created');
    return undefined;
  }

  /**
   * Refuses a session for a user who shares a server (JupyterHub 5 sharing): the session is the
   * user's and reaches every server of theirs, where a guest could read it (a terminal, a kernel;
   * the extension's 403 guards its endpoint only). Nothing is stored or started on a refusal; a hub
   * that cannot tell (a missing scope) refuses too.
   */
  async function notShared(user: string): Promise<void> {
    if (hubConfig.allowSharedServers) return;
    if (await client.sharesAny(user)) throw new HandoffError('server_shared', `${user} shares a server (hub.allowSharedServers is off)`);
  }

  return {
    landing: {
      fingerprint,
      async prepare(ctx) {
        // First: a refusal here must leave nothing behind, not even the jti a confirmation page reserves.
        await notShared(ctx.handoff.user);
        if (handoffLogin && (await signIn.confirm(ctx)) === 'deferred') return 'deferred';
        ctx.hubUser = await hubUserOf(ctx.handoff.user);
        return hubConfig.identityCheck ? signIn.checkIdentity(ctx) : undefined;
      },
      async land(ctx) {
        const { handoff, result, hubUser, req, res } = ctx;
        if (handoffLogin) signIn.loggedIn(ctx);
        res.redirect(303, await next(handoff, result, hubUser, handoffLogin, signIn.bindBrowser(req, res)));
      },
    },

    sessionLanding: {
      fingerprint,
      async prepare(ctx) {
        await notShared(ctx.handoff.user);
        ctx.hubUser = await hubUserOf(ctx.handoff.user);
      },
      async land({ handoff, result, hubUser, res }) {
        res.json({ name: handoff.user, next: await next(handoff, result, hubUser, false) });
      },
    },

    progress: progressHandlers({ base, tickets, store, boundTo: signIn.boundTo, taskFor, finalUrl }),
    signIn,

    async exchange(req, res) {
      if (!fromHub(req.get('authorization'))) {
        res.status(403).json({ error: 'forbidden' });
        return;
      }
      const { token: loginToken, binding } = (req.body ?? {}) as { token?: unknown; binding?: unknown };
      try {
        if (typeof loginToken !== 'string') throw new HandoffError('login_token_invalid');
        const r = await loginTokens.exchange(loginToken, typeof binding === 'string' ? binding : undefined);
        if ('user' in r) {
          log?.info({ event: 'login-token-exchange', user: r.user, outcome: 'ok' }, 'login token exchange');
          res.json({ name: r.user });
        } else {
          // Not a login yet: the browser goes back to the service to prove it is the one the token was issued to.
          log?.info({ event: 'login-token-exchange', outcome: 'continue' }, 'login token exchange');
          res.status(202).json({ continue: `${servicePublicUrl}login/continue?ticket=${r.returnTicket}` });
        }
      } catch (e) {
        const err = e instanceof HandoffError ? e : new HandoffError('store_unavailable');
        log?.info({ event: 'login-token-exchange', outcome: err.code }, 'login token exchange');
        res.status(err.status).json({ error: err.code, message: err.message });
      }
    },

    async loginReturn(req, res) {
      try {
        if (!isNavigation(req)) throw new HandoffError('navigation_required', 'login/continue');
        const { token: loginToken, next: to } = await loginTokens.prove(String(req.query.ticket ?? ''), (bind) => signIn.boundTo(req, bind));
        res.redirect(303, hubLoginUrl(loginToken, to));
      } catch (e) {
        fail(req, res, e, 'hub login failed');
      }
    },

    fromHub,
    scripts: [PROGRESS_SCRIPT],
    readiness: () => client.userOf(undefined, { once: true }).then(() => undefined),
  };
}
