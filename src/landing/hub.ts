/**
 * The JupyterHub landing: before the session is stored, the gates (./../hub/identity.ts) and the hub
 * user read (or created); after, a running server means a straight redirect to the lab, anything
 * else a progress page that follows the spawn and ends in that redirect. In login mode `handoff` the
 * final hop goes through /hub/login with a one-time login token that the shipped authenticator
 * exchanges here. Every page and exchange works on any replica: its state is in a ticket
 * (../hub/tickets.ts) and at the hub, single use is recorded in the session store.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import express, { type Request, type Response } from 'express';
import type { Config } from '../config/types.js';
import { errorFields, HandoffError } from '../errors.js';
import type { Connection } from '../handoff/types.js';
import { HubClient, type HubUser } from '../hub/client.js';
import { createSignIn } from '../hub/identity.js';
import { createLoginTokens } from '../hub/login.js';
import { PROGRESS_SCRIPT, progressPage } from '../hub/page.js';
import { SpawnTask, SpawnTasks } from '../hub/progress.js';
import { presentsToken, readApiToken } from '../hub/service-token.js';
import { ensureServer, FollowerPace } from '../hub/spawn.js';
import { createTickets, useOnce, type Ticket } from '../hub/tickets.js';
import { page } from '../http/pages.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { AcceptResult, SessionStore } from '../store/types.js';
import { labUrl, type Landing } from './index.js';

export interface HubLandingDeps {
  store: Pick<SessionStore, 'spend'>;
  env?: NodeJS.ProcessEnv;
  logger?: Pick<Logger, 'info' | 'warn'>;
  fetch?: typeof fetch;
  metrics?: Pick<Metrics, 'spawnTasks'>;
}

export interface HubLanding {
  landing: Landing;
  /**
   * Where a browser goes once `result` was stored for `user`, when the hub login is not this
   * service's to make: the lab URL when the server runs, else the path of a progress page (any
   * replica, no cookie) under the base path.
   */
  next(user: string, result: AcceptResult): Promise<string>;
}

const CONNECTION_KEPT_NOTICE =
  'Your OmniSci connection changed while your server was running. The new session is in place; the new connection applies after your server restarts.';

const sameConnection = (a: Connection, b: Connection) => a.protocol === b.protocol && a.host === b.host && a.port === b.port;

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
  const base = config.listen.basePath;
  const server = hubConfig.serverName;
  const timeoutMs = hubConfig.spawnTimeoutSeconds * 1000;
  // Progress pages outlive the spawn a little so the browser can still read the outcome.
  const progressTtlMs = timeoutMs + 10 * 60_000;
  const handoffLogin = hubConfig.loginMode === 'handoff';
  const tickets = createTickets(token);
  const loginTokens = createLoginTokens(tickets, store, hubConfig.loginTokenTtlSeconds * 1000);
  const tasks = new SpawnTasks((n) => deps.metrics?.spawnTasks.set(n));
  const followerPace = new FollowerPace();
  const fromHub = presentsToken(token);
  const log = deps.logger;

  /** This replica's task making the user's server run: a new one starts it (`follow`: unless the hub reports the last spawn failed). */
  const taskFor = (user: string, o: { restart?: boolean; follow?: boolean; model?: HubUser }) =>
    tasks.taskFor(
      user,
      () =>
        new SpawnTask(
          (onUpdate, onRequested, wanted) =>
            ensureServer(client, {
              user,
              server,
              userOptions: hubConfig.userOptions,
              restart: o.restart ?? false,
              follow: o.follow ?? false,
              followerPace,
              ...(o.model ? { model: o.model } : {}),
              timeoutMs,
              onUpdate,
              onRequested,
              wanted,
            }),
          (err) => log?.warn({ user, ...errorFields(err) }, 'server did not start'),
        ),
    );

  /** /hub/login with a fresh login token for `user`, continuing to the hub path `next` (login mode `handoff`). */
  const hubLogin = (user: string, next: string): string => {
    const login = new URL(`${config.redirect.hubPublicUrl}/hub/login`);
    login.search = `login_token=${loginTokens.issue(user)}&next=${encodeURIComponent(next)}`;
    return login.toString();
  };

  /** Where the browser finally goes: the lab, through /hub/login when `login`. */
  const finalUrl = (user: string, login: boolean): string => {
    const lab = labUrl(config.redirect, user, server);
    if (!login) return lab;
    const u = new URL(lab);
    return hubLogin(user, u.pathname + u.search);
  };

  const signIn = createSignIn({ config, client, tickets, store, ...(handoffLogin ? { hubLogin } : {}) });

  /** The lab, or a progress page (bound to the browser when `bind` is given) once the server was asked for. */
  async function destination(user: string, result: AcceptResult, model: HubUser | undefined, login: boolean, bind?: string): Promise<string> {
    const prev = result.previous;
    const changed = result.outcome === 'stored' && prev !== undefined && prev.session !== '' && !sameConnection(prev.connection, result.record.connection);
    const s = model?.servers[server];
    const running = Boolean(s?.ready && !s.pending);
    if (running && !changed) return finalUrl(user, login);
    const restart = running && changed && hubConfig.connectionChangePolicy === 'restart';
    const keep = running && changed && !restart;
    // Asked before the browser is sent on, so that a replica showing its page finds the spawn under way.
    if (!keep) await taskFor(user, { restart, ...(model ? { model } : {}) }).requested;
    const body = { ...(bind ? { bind } : {}), ...(login ? { login } : {}), ...(keep ? { notice: true } : {}) };
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

  const landing: Landing = {
    scripts: [PROGRESS_SCRIPT],
    readiness: () => client.userOf(undefined, { once: true }).then(() => undefined),

    async prepare(ctx) {
      if (handoffLogin && (await signIn.confirm(ctx)) === 'deferred') return 'deferred';
      ctx.hubUser = await hubUserOf(ctx.handoff.user);
      return hubConfig.identityCheck ? signIn.checkIdentity(ctx) : undefined;
    },

    async land(ctx) {
      const { handoff, result, hubUser, req, res } = ctx;
      if (handoffLogin) signIn.loggedIn(ctx);
      res.redirect(303, await destination(handoff.user, result, hubUser, handoffLogin, signIn.bindBrowser(req, res)));
    },

    routes(resume) {
      const router = express.Router();
      router.use(signIn.routes(resume));
      const links = (id: string) => ({
        events: `${base}progress/${id}/events`,
        go: `${base}progress/${id}/go`,
        retry: `${base}progress/${id}/retry`,
      });

      /** The page's ticket, when it is authentic, live and this browser's; else the answer is "expired". */
      const ticketOf = (req: Request, res: Response): Ticket<'progress'> | undefined => {
        const t = tickets.open('progress', String(req.params.id ?? ''));
        if (t && signIn.boundTo(req, t.bind)) return t;
        res.status(404).type('html').send(progressGone());
        return undefined;
      };

      /** Where a ready page leads: its handoff's one hub login on the first visit (on any replica), the lab after that. */
      const readyUrl = async (t: Ticket<'progress'>): Promise<string> =>
        finalUrl(t.user, t.login === true && (await useOnce(store, 'progress', t)));

      /** This replica's view of the page's spawn, given a moment to settle: a running server answers at once. */
      const followed = async (t: Ticket<'progress'>) => {
        const task = taskFor(t.user, { follow: true });
        await Promise.race([task.done, sleep(1000, undefined, { ref: false })]);
        return task.state;
      };

      router.get('/progress/:id', async (req, res) => {
        const t = ticketOf(req, res);
        if (!t) return;
        const state = await followed(t);
        if (state.phase === 'ready' && !t.notice) return void res.redirect(303, await readyUrl(t));
        res.type('html').send(progressPage(state, t.notice ? CONNECTION_KEPT_NOTICE : undefined, links(String(req.params.id))));
      });

      router.get('/progress/:id/events', (req, res) => {
        const t = ticketOf(req, res);
        if (!t) return;
        const task = taskFor(t.user, { follow: true });
        res.writeHead(200, { 'Content-Type': 'text/event-stream', 'X-Accel-Buffering': 'no' });
        const send = () => {
          const s = task.state;
          res.write(`data: ${JSON.stringify({ phase: s.phase, progress: s.progress, message: s.message, log: s.log, notice: s.phase === 'ready' && t.notice ? CONNECTION_KEPT_NOTICE : undefined })}\n\n`);
          if (s.phase !== 'pending') res.end();
        };
        const unsubscribe = task.subscribe(send);
        const keepalive = setInterval(() => res.write(': keepalive\n\n'), 15_000);
        res.on('close', () => {
          unsubscribe();
          clearInterval(keepalive);
        });
        send();
      });

      router.get('/progress/:id/go', async (req, res) => {
        const t = ticketOf(req, res);
        if (!t) return;
        const ready = (await followed(t)).phase === 'ready';
        // Only a browser holding the page's cookie gets here, and it gets the handoff's login once.
        res.redirect(303, ready ? await readyUrl(t) : `${base}progress/${String(req.params.id)}`);
      });

      router.post('/progress/:id/retry', (req, res) => {
        const t = ticketOf(req, res);
        if (!t) return;
        taskFor(t.user, {});
        res.redirect(303, `${base}progress/${String(req.params.id)}`);
      });

      /** The shipped authenticator trades a login token for the user name, authenticated by this service's API token. */
      router.post('/login-token/exchange', express.json({ limit: 4096 }), async (req, res) => {
        if (!fromHub(req)) {
          res.status(403).json({ error: 'forbidden' });
          return;
        }
        const loginToken = (req.body as { token?: unknown } | undefined)?.token;
        try {
          const user = typeof loginToken === 'string' ? await loginTokens.exchange(loginToken) : undefined;
          log?.info({ event: 'login-token-exchange', user, outcome: user ? 'ok' : 'login_token_invalid' }, 'login token exchange');
          if (!user) throw new HandoffError('login_token_invalid');
          res.json({ name: user });
        } catch (e) {
          const err = e instanceof HandoffError ? e : new HandoffError('store_unavailable');
          res.status(err.status).json({ error: err.code, message: err.message });
        }
      });
      return router;
    },
  };

  return { landing, next: async (user, result) => destination(user, result, await hubUserOf(user), false) };
}

const progressGone = () =>
  page('This page has expired', '<h1>This page has expired</h1><p>Open the notebook again from Immerse.</p>');
