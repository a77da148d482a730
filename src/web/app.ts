/**
 * The public HTTP service: every route, in one place (readiness and metrics are on the internal
 * listener, ./internal.ts). A handoff — a token, or header mode's HeavyDB session — runs through the
 * pipeline (./pipeline.ts) to a landing: the hub's (./landing/hub.ts), local mode's own page
 * (./landing/local.ts), or straight to the lab (./landing/direct.ts).
 */
import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { pinoHttp } from 'pino-http';
import type { Config } from '../config/types.js';
import { HandoffError } from '../errors.js';
import type { Verifier } from '../handoff/verify.js';
import type { SessionCheck } from '../heavydb/session.js';
import { sanitizeUrl, type Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { SessionStore } from '../store/types.js';
import { demoPage, tokenEntries } from './handoff.js';
import { directLanding } from './landing/direct.js';
import type { HubLanding } from './landing/hub.js';
import type { LocalLanding } from './landing/local.js';
import { sendError } from './pages.js';
import { createPipeline, fail } from './pipeline.js';
import { securityHeaders } from './security.js';
import { SESSION_LOGIN_BODY_LIMIT, sessionLoginHandler } from './session-login.js';

export interface AppDeps {
  config: Config;
  /** Absent when no token key source is configured (header mode only): the token entries refuse (tokens_disabled). */
  verifier?: Verifier;
  store: SessionStore;
  logger: Logger;
  metrics: Metrics;
  /** hub.enabled: the hub landing, its pages and the authenticator's endpoints. */
  hub?: HubLanding;
  /** Local mode without a hub: the service's own page of what the notebook receives. */
  local?: LocalLanding;
  /** Header mode (heavydb.enabled, with a hub): HeavyDB's check of a forwarded session. */
  sessionCheck?: SessionCheck;
  /** Local mode: mints a fresh demo token for GET {base}dev/demo. */
  demoToken?: () => Promise<string>;
}

export interface App {
  handler: express.Express;
  /** Marks the service as draining: ready() fails from now on. */
  drain(): void;
  /** Readiness (the internal listener's /readyz): not draining, the store usable, the hub answering. */
  ready(): Promise<void>;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

export function createApp(deps: AppDeps): App {
  const { config, verifier, store, logger, metrics, hub, local } = deps;
  let draining = false;
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.listen.trustProxy);
  app.set('query parser', 'simple');
  app.use(
    pinoHttp({
      logger,
      genReqId: (req, res) => {
        const given = req.headers['x-request-id'];
        const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
        res.setHeader('X-Request-Id', id);
        return id;
      },
      serializers: {
        req: (req: { id: string; method: string; url: string }) => ({ id: req.id, method: req.method, url: sanitizeUrl(req.url) }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
      },
      autoLogging: { ignore: (req) => (req.url ?? '').endsWith('/healthz') },
    }),
  );
  app.use(securityHeaders(new URL(config.redirect.hubPublicUrl).origin, hub?.scripts ?? []));

  // A token is at most maxTokenBytes; leave room for the field name and encoding.
  const form = express.urlencoded({ extended: false, limit: config.token.maxTokenBytes * 2 + 1024, parameterLimit: 10 });
  const pipeline = createPipeline({ store, metrics, landing: hub?.landing ?? local?.landing ?? directLanding(config.redirect, config.hub.serverName) });
  const tokens = tokenEntries(config, verifier, pipeline, store, metrics);

  const r = express.Router();
  r.get('/healthz', (_req, res) => void res.json({ status: 'ok' }));
  r.post('/handoff', form, tokens.post);
  r.get('/handoff', tokens.get);
  r.post('/revoke', form, tokens.revoke);
  if (deps.demoToken) r.get('/dev/demo', demoPage(config.listen.basePath, deps.demoToken));
  if (local) r.get('/local/:id', local.page);
  if (hub) {
    r.get('/progress/:id', hub.progress.page);
    r.get('/progress/:id/events', hub.progress.events);
    r.get('/progress/:id/go', hub.progress.go);
    r.post('/progress/:id/retry', hub.progress.retry);
    const signIn = hub.signIn.handlers(pipeline.resume);
    r.post('/confirm', express.urlencoded({ extended: false, limit: 65536, parameterLimit: 4 }), signIn.confirm);
    r.get('/oauth_callback', signIn.callback);
    r.post('/login-token/exchange', express.json({ limit: 4096 }), hub.exchange);
    r.get('/login/continue', hub.loginReturn);
    if (deps.sessionCheck) {
      const sessionLogin = sessionLoginHandler({
        config,
        check: deps.sessionCheck,
        fromHub: hub.fromHub,
        pipeline: createPipeline({ store, metrics, landing: hub.sessionLanding }),
      });
      r.post('/session-login', express.json({ limit: SESSION_LOGIN_BODY_LIMIT }), sessionLogin);
    }
  }
  app.use(config.listen.basePath, r);

  app.use((req, res) => sendError(req, res, new HandoffError('not_found')));
  // Errors of the request itself (body parser: oversize, bad encoding, a body that does not decompress;
  // router: a malformed %-escape in a path) carry a 4xx status; anything else is unexpected.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const { type, status } = err as { type?: unknown; status?: unknown };
    const clientError = typeof status === 'number' && status >= 400 && status < 500;
    const e =
      type === 'entity.too.large'
        ? new HandoffError('token_too_large')
        : clientError
          ? new HandoffError('bad_request', typeof type === 'string' ? type : `HTTP ${status}`)
          : err;
    fail(req, res, e, 'request failed');
  });
  return {
    handler: app,
    drain() {
      draining = true;
    },
    async ready() {
      if (draining) throw new HandoffError('store_unavailable', 'shutting down');
      await store.check();
      await hub?.readiness();
    },
  };
}
