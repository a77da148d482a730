/**
 * The JupyterHub landing: before the session is stored, the hub user is read (or created); after,
 * a running server means a straight redirect to the lab, anything else a progress page that follows
 * the spawn and ends in that redirect. In login mode `handoff` the final hop goes through
 * /hub/login with a one-time login token that the shipped authenticator exchanges here. With
 * hub.identityCheck, prepare first checks who the browser is at the hub (src/hub/identity.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import express, { type Request, type Response, type Router } from 'express';
import type { Config } from '../config/types.js';
import { errorFields, HandoffError } from '../errors.js';
import type { Connection } from '../handoff/types.js';
import { HubClient } from '../hub/client.js';
import { createIdentityCheck } from '../hub/identity.js';
import { LoginTokens } from '../hub/login.js';
import { PROGRESS_SCRIPT, progressPage } from '../hub/page.js';
import { ProgressRegistry, SpawnTask, type ProgressEntry } from '../hub/progress.js';
import { ensureServer } from '../hub/spawn.js';
import { cookie, setCookie } from '../http/cookie.js';
import { page } from '../http/pages.js';
import type { Logger } from '../log.js';
import { labUrl, type Landing } from './index.js';

export interface HubLandingDeps {
  env?: NodeJS.ProcessEnv;
  logger?: Pick<Logger, 'info' | 'warn'>;
  fetch?: typeof fetch;
}

export interface HubLanding {
  landing: Landing;
  /** Progress page and its SSE stream, the login-token exchange; mount under the base path. */
  router: Router;
  /** Inline scripts of its pages, for the CSP to allow by hash. */
  scripts: string[];
  /** Readiness: the hub answers this service's token. */
  readiness(): Promise<void>;
}

const CONNECTION_KEPT_NOTICE =
  'Your OmniSci connection changed while your server was running. The new session is in place; the new connection applies after your server restarts.';

const sameConnection = (a: Connection, b: Connection) => a.protocol === b.protocol && a.host === b.host && a.port === b.port;

function readToken(hub: Config['hub'], env: NodeJS.ProcessEnv): string {
  const token = hub.apiTokenFile ? readFileSync(hub.apiTokenFile, 'utf8').trim() : env.JUPYTERHUB_API_TOKEN;
  if (!token) throw new HandoffError('hub_unauthorized', 'no hub API token: set hub.apiTokenFile or JUPYTERHUB_API_TOKEN');
  // Checked here, as an HTTP client would otherwise quote an invalid header value in its error.
  if (!/^[\x21-\x7e]+$/.test(token)) throw new HandoffError('hub_unauthorized', 'the hub API token has characters a token cannot have');
  return token;
}

export function createHubLanding(config: Config, deps: HubLandingDeps = {}): HubLanding {
  const hubConfig = config.hub;
  if (!hubConfig.apiUrl) throw new HandoffError('hub_unavailable', 'hub.apiUrl is not set');
  const token = readToken(hubConfig, deps.env ?? process.env);
  const client = new HubClient({
    apiUrl: hubConfig.apiUrl,
    token,
    requestTimeoutMs: hubConfig.requestTimeoutMs,
    retries: hubConfig.retries,
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
  });
  const base = config.listen.basePath;
  const server = hubConfig.serverName;
  const timeoutMs = hubConfig.spawnTimeoutSeconds * 1000;
  // Entries (and their cookies) outlive the spawn a little so the browser can still read the outcome.
  const entryTtlMs = timeoutMs + 10 * 60_000;
  const registry = new ProgressRegistry(entryTtlMs);
  const loginTokens = new LoginTokens(hubConfig.loginTokenTtlSeconds * 1000);
  const tokenDigest = createHash('sha256').update(token).digest();
  const log = deps.logger;

  const startTask = (user: string, restart: boolean) =>
    registry.taskFor(
      user,
      () =>
        new SpawnTask(
          (onUpdate) => ensureServer(client, { user, server, userOptions: hubConfig.userOptions, restart, timeoutMs, onUpdate }),
          (err) => log?.warn({ user, ...errorFields(err) }, 'server did not start'),
        ),
    );

  /** /hub/login with a fresh login token for `user`, continuing to the hub path `next` (login mode `handoff`). */
  const hubLogin = (user: string, next: string): string => {
    const login = new URL(`${config.redirect.hubPublicUrl}/hub/login`);
    login.search = `login_token=${loginTokens.issue(user)}&next=${encodeURIComponent(next)}`;
    return login.toString();
  };

  /** Where the browser finally goes: the lab, through /hub/login in `handoff` mode. */
  const finalUrl = (user: string): string => {
    const lab = labUrl(config.redirect, user, server);
    if (hubConfig.loginMode === 'sso') return lab;
    const u = new URL(lab);
    return hubLogin(user, u.pathname + u.search);
  };

  const identity = hubConfig.identityCheck
    ? createIdentityCheck({ config, client, apiToken: token, ...(hubConfig.loginMode === 'handoff' ? { hubLogin } : {}) })
    : undefined;

  const links = (id: string) => ({
    events: `${base}progress/${id}/events`,
    go: `${base}progress/${id}/go`,
    retry: `${base}progress/${id}/retry`,
  });

  const landing: Landing = {
    async prepare(ctx) {
      const user = ctx.handoff.user;
      if (!(await client.getUser(user))) {
        if (!hubConfig.createUsers) throw new HandoffError('hub_user_unknown', `no hub user ${user}`);
        await client.createUser(user);
        log?.info({ user }, 'hub user created');
      }
      return identity?.check({ user, req: ctx.req, res: ctx.res, resume: ctx.resume, reserve: ctx.reserve });
    },

    async land({ handoff, result, req, res }) {
      const user = handoff.user;
      const prev = result.previous;
      const changed = result.outcome === 'stored' && prev !== undefined && prev.session !== '' && !sameConnection(prev.connection, result.record.connection);
      const s = (await client.getUser(user))?.servers[server];
      const running = Boolean(s?.ready && !s.pending);
      if (running && !changed) {
        res.redirect(303, finalUrl(user));
        return;
      }
      const restart = running && changed && hubConfig.connectionChangePolicy === 'restart';
      const keep = running && changed && !restart;
      const task = keep ? new SpawnTask(async () => undefined, () => undefined) : startTask(user, restart);
      const { entry, binding } = registry.create(user, task, keep ? CONNECTION_KEPT_NOTICE : undefined);
      const path = `${base}progress/${entry.id}`;
      setCookie(req, res, `ohp-${entry.id}`, binding, path, entryTtlMs);
      res.redirect(303, path);
    },
  };

  const router = express.Router();
  if (identity) router.use(identity.router);
  const entryOf = (req: Request, res: Response): ProgressEntry | undefined => {
    const id = String(req.params.id ?? '');
    const entry = registry.get(id, cookie(req, `ohp-${id}`));
    if (!entry) res.status(404).type('html').send(progressGone());
    return entry;
  };

  /** Where a ready entry leads: one hub login per handoff (the first visit), the lab after that. */
  const readyUrl = (entry: ProgressEntry): string => {
    if (entry.loginIssued) return labUrl(config.redirect, entry.user, server);
    entry.loginIssued = hubConfig.loginMode === 'handoff';
    return finalUrl(entry.user);
  };

  router.get('/progress/:id', (req, res) => {
    const entry = entryOf(req, res);
    if (!entry) return;
    const state = entry.task.state;
    if (state.phase === 'ready' && !entry.notice) return void res.redirect(303, readyUrl(entry));
    res.type('html').send(progressPage(state, entry.notice, links(entry.id)));
  });

  router.get('/progress/:id/events', (req, res) => {
    const entry = entryOf(req, res);
    if (!entry) return;
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'X-Accel-Buffering': 'no' });
    const send = () => {
      const s = entry.task.state;
      res.write(`data: ${JSON.stringify({ phase: s.phase, progress: s.progress, message: s.message, log: s.log, notice: s.phase === 'ready' ? entry.notice : undefined })}\n\n`);
      if (s.phase !== 'pending') res.end();
    };
    const unsubscribe = entry.task.subscribe(send);
    const keepalive = setInterval(() => res.write(': keepalive\n\n'), 15_000);
    res.on('close', () => {
      unsubscribe();
      clearInterval(keepalive);
    });
    send();
  });

  router.get('/progress/:id/go', (req, res) => {
    const entry = entryOf(req, res);
    if (!entry) return;
    // Only a browser holding the entry's cookie gets here, and it gets the handoff's login once.
    res.redirect(303, entry.task.state.phase === 'ready' ? readyUrl(entry) : `${base}progress/${entry.id}`);
  });

  router.post('/progress/:id/retry', (req, res) => {
    const entry = entryOf(req, res);
    if (!entry) return;
    if (entry.task.state.phase === 'failed') entry.task = startTask(entry.user, false);
    res.redirect(303, `${base}progress/${entry.id}`);
  });

  /** The shipped authenticator trades a login token for the user name, authenticated by this service's API token. */
  router.post('/login-token/exchange', express.json({ limit: 1024 }), (req, res) => {
    const auth = req.get('authorization') ?? '';
    const presented = /^(?:token|bearer)\s+(.+)$/i.exec(auth)?.[1] ?? '';
    if (!timingSafeEqual(createHash('sha256').update(presented).digest(), tokenDigest)) {
      res.status(403).json({ error: 'forbidden' });
      return;
    }
    const loginToken = (req.body as { token?: unknown } | undefined)?.token;
    const user = typeof loginToken === 'string' ? loginTokens.exchange(loginToken) : undefined;
    log?.info({ event: 'login-token-exchange', user, outcome: user ? 'ok' : 'login_token_invalid' }, 'login token exchange');
    if (!user) {
      const err = new HandoffError('login_token_invalid');
      res.status(err.status).json({ error: err.code, message: err.message });
      return;
    }
    res.json({ name: user });
  });

  return {
    landing,
    router,
    scripts: [PROGRESS_SCRIPT],
    readiness: () => client.userOf(undefined, { once: true }).then(() => undefined),
  };
}

const progressGone = () =>
  page('This page has expired', '<h1>This page has expired</h1><p>Open the notebook again from Immerse.</p>');
