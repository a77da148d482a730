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
import type { Config } from './config/types.js';
import type { Handoff } from './handoff/types.js';
import type { SessionCheck } from './heavydb/session.js';
import type { Metrics } from './metrics.js';
import { auditor } from './pipeline.js';
import type { AcceptResult, SessionStore } from './store/types.js';

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
  const { config, store, check } = deps;
  const audited = auditor(deps.metrics);
  const router = express.Router();

  router.post('/session-login', express.json({ limit: BODY_LIMIT }), async (req: Request, res: Response) => {
    if (!deps.authorized(req)) {
      res.status(403).json({ error: 'forbidden' });
      return;
    }
    await audited(req, res, async (a) => {
      a.via = 'heavydb-session';
      const body = (req.body ?? {}) as { session?: unknown; sql?: unknown };
      const checked = await check.check(typeof body.session === 'string' ? body.session : undefined);
      const now = Math.floor(Date.now() / 1000);
      const handoff: Handoff = {
        user: checked.user,
        // A fresh id per login: HeavyDB, not single use, vouches for the session; a repeat of the same
        // session stores the same record again (newer wins), which changes nothing for the notebook.
        jti: `heavydb-${randomUUID()}`,
        iat: now,
        exp: now,
        session: checked.session,
        query: typeof body.sql === 'string' ? body.sql : '',
        connection: {
          protocol: config.omnisci.protocol,
          host: config.omnisci.host,
          port: config.omnisci.port,
          database: checked.database || config.omnisci.database,
        },
      };
      a.user = handoff.user;
      const result = await store.accept(handoff);
      a.outcome = result.outcome;
      res.json({ name: handoff.user, next: await deps.next(handoff.user, result) });
    });
  });
  return router;
}
