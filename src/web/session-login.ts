/**
 * Header mode's entry (docs/heavyai.md): `POST {base}session-login`, called by the shipped
 * authenticator from the hub's /hub/login with the X-OmniSci-SessionID the HEAVY.AI web server set
 * there, over the login-token exchange's channel (`Authorization: token <this service's hub API token>`).
 * The session counts only once HeavyDB confirms it (../heavydb/session.ts); then it runs through the
 * same pipeline as a token handoff (./pipeline.ts): the landing's checks, the store (newer wins), and
 * the answer — the hub user and where the browser goes next; the hub logs the browser in as `name`
 * and redirects to `next`. Nothing is stored on any refusal.
 */
import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Config } from '../config/types.js';
import { requestedServer } from '../handoff/server-name.js';
import type { Handoff } from '../handoff/types.js';
import type { CheckedSession, SessionCheck } from '../heavydb/session.js';
import type { Pipeline } from './pipeline.js';

/** Room for Immerse's SQL (it also travels in the /hub/login URL, so proxies bound it long before this). */
export const SESSION_LOGIN_BODY_LIMIT = 64 * 1024;

/** A confirmed HeavyDB session as a handoff, connecting the notebook to the configured OmniSci server. */
function handoffOf(checked: CheckedSession, sql: string, omnisci: Config['omnisci'], server: string | undefined): Handoff {
  const now = Math.floor(Date.now() / 1000);
  return {
    user: checked.user,
    // A fresh id per login: HeavyDB, not single use, vouches for the session; a repeat of the same
    // session stores the same record again (newer wins), which changes nothing for the notebook.
    jti: `heavydb-${randomUUID()}`,
    iat: now,
    exp: now,
    session: checked.session,
    query: sql,
    connection: { protocol: omnisci.protocol, host: omnisci.host, port: omnisci.port, database: checked.database || omnisci.database },
    ...(server === undefined ? {} : { server }),
  };
}

export function sessionLoginHandler(deps: {
  config: Config;
  check: SessionCheck;
  /** Whether the Authorization header presents this service's hub API token. */
  fromHub(authorization: string | undefined): boolean;
  /** The pipeline of header mode's landing (HubLanding.sessionLanding). */
  pipeline: Pipeline;
}): RequestHandler {
  return async (req, res) => {
    if (!deps.fromHub(req.get('authorization'))) {
      res.status(403).json({ error: 'forbidden' });
      return;
    }
    const body = (req.body ?? {}) as { session?: unknown; sql?: unknown; server?: unknown };
    await deps.pipeline.run(
      req,
      res,
      async () => {
        // /hub/login's `server` query parameter, passed through by the authenticator: refused before HeavyDB is asked.
        const server = requestedServer(body.server, deps.config.hub.namedServers);
        return handoffOf(
          await deps.check.check(typeof body.session === 'string' ? body.session : undefined),
          typeof body.sql === 'string' ? body.sql : '',
          deps.config.omnisci,
          server,
        );
      },
      'heavydb-session',
    );
  };
}
