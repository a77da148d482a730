/**
 * Header mode's entry (docs/heavyai.md): `POST {base}session-login`, called by the shipped
 * authenticator from the hub's /hub/login with the X-OmniSci-SessionID the HEAVY.AI web server set
 * there, over the login-token exchange's channel (`Authorization: token <this service's hub API token>`).
 * The session counts only once HeavyDB confirms it (src/heavydb/session.ts); then it runs what a token
 * handoff runs after verification: store (newer wins), and answer where the browser goes next. The
 * hub logs the browser in as `name` and redirects to `next`. Nothing is stored on any failure.
 */
import { randomUUID } from 'node:crypto';
import express, { type Request, type Response, type Router } from 'express';
import type { Config } from '../config/types.js';
import { errorFields, toHandoffError } from '../errors.js';
import type { Handoff } from '../handoff/types.js';
import type { SessionCheck } from '../heavydb/session.js';
import { sendError } from '../http/pages.js';
import type { Metrics } from '../metrics.js';
import type { AcceptResult, SessionStore } from '../store/types.js';

export interface SessionLoginDeps {
  config: Config;
  store: SessionStore;
  metrics: Metrics;
  check: SessionCheck;
  /** Whether the request presents this service's hub API token (src/hub/service-token.ts). */
  authorized(req: Request): boolean;
  /** Where the browser goes once `result` is stored (HubLanding.next). */
  next(user: string, result: AcceptResult): Promise<string>;
}

/** Room for Immerse's SQL (it also travels in the /hub/login URL, so proxies bound it long before this). */
const BODY_LIMIT = 64 * 1024;

export function sessionLoginRouter(deps: SessionLoginDeps): Router {
  const { config, store, metrics, check } = deps;
  const router = express.Router();

  router.post('/session-login', express.json({ limit: BODY_LIMIT }), async (req: Request, res: Response) => {
    if (!deps.authorized(req)) {
      res.status(403).json({ error: 'forbidden' });
      return;
    }
    const started = process.hrtime.bigint();
    let outcome = 'internal';
    let user: string | undefined;
    try {
      const body = (req.body ?? {}) as { session?: unknown; sql?: unknown };
      const session = typeof body.session === 'string' ? body.session : undefined;
      const checked = await check.check(session);
      user = checked.user;
      const now = Math.floor(Date.now() / 1000);
      const handoff: Handoff = {
        user,
        // A fresh id per login: HeavyDB, not single use, vouches for the session; a repeat of the same
        // session stores the same record again (newer wins), which changes nothing for the notebook.
        jti: `heavydb-${randomUUID()}`,
        iat: now,
        exp: now,
        session: session!,
        query: typeof body.sql === 'string' ? body.sql : '',
        connection: {
          protocol: config.omnisci.protocol,
          host: config.omnisci.host,
          port: config.omnisci.port,
          database: checked.database || config.omnisci.database,
        },
      };
      const result = await store.accept(handoff);
      outcome = result.outcome;
      res.json({ name: user, next: await deps.next(user, result) });
    } catch (e) {
      const err = toHandoffError(e);
      outcome = err.code;
      if (err.status >= 500) req.log.error(errorFields(err), 'session login failed');
      if (!res.headersSent) sendError(req, res, err);
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.handoffs.inc({ outcome });
      metrics.handoffSeconds.observe({ outcome }, seconds);
      req.log.info({ event: 'handoff', via: 'heavydb-session', user, outcome, durationMs: Math.round(seconds * 1e4) / 10 }, 'handoff');
    }
  });
  return router;
}
