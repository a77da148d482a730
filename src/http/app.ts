/**
 * The HTTP service: handoff (POST form / GET query / GET fragment page), revoke, health, metrics.
 * Flow of a handoff: verify → landing.prepare → store.accept → landing.land; every outcome is one
 * audit log line, one metric sample and, on failure, one error response with a stable code.
 */
import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { pinoHttp } from 'pino-http';
import type { Config } from '../config/types.js';
import { HandoffError, toHandoffError } from '../errors.js';
import type { Verifier } from '../handoff/verify.js';
import type { Landing } from '../landing.js';
import { sanitizeUrl, type Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { SessionStore } from '../store/types.js';
import { AUTOSUBMIT_SCRIPT, cspHash, errorPage, FRAGMENT_SCRIPT, page, postForm, STYLE } from './pages.js';

export interface AppDeps {
  config: Config;
  verifier: Verifier;
  store: SessionStore;
  landing: Landing;
  logger: Logger;
  metrics: Metrics;
  /** Extra routes mounted under the base path (e.g. the JupyterHub integration's progress pages). */
  routers?: Router[];
  /** Local mode only: mints a fresh demo token for GET {base}dev/demo. */
  demoToken?: () => Promise<string>;
  /** Readiness beyond the store (e.g. the hub); throws when not ready. */
  readiness?: () => Promise<void>;
}

export interface App {
  handler: express.Express;
  /** Marks the service as draining: /readyz fails from now on. */
  drain(): void;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

function securityHeaders(hubOrigin: string) {
  const csp = [
    "default-src 'none'",
    `script-src ${cspHash(FRAGMENT_SCRIPT)} ${cspHash(AUTOSUBMIT_SCRIPT)} 'self'`,
    `style-src ${cspHash(STYLE)} 'self'`,
    "img-src 'self' data:",
    "connect-src 'self'",
    // Chromium applies form-action to the redirect after a POST: the hub must be allowed.
    `form-action 'self' ${hubOrigin}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
  return (_req: Request, res: Response, next: NextFunction) => {
    res.set({
      'Cache-Control': 'no-store',
      Pragma: 'no-cache',
      'Referrer-Policy': 'no-referrer',
      'Content-Security-Policy': csp,
      'X-Content-Type-Options': 'nosniff',
      'X-Frame-Options': 'DENY',
      'Cross-Origin-Opener-Policy': 'same-origin',
    });
    next();
  };
}

/** Sends an error as JSON (Accept: application/json) or as an HTML page; never with secrets. */
export function sendError(req: Request, res: Response, err: HandoffError): void {
  const requestId = String(req.id ?? '');
  res.status(err.status);
  if (req.accepts(['html', 'json']) === 'json') {
    res.json({ error: err.code, message: err.message, requestId });
  } else {
    res.type('html').send(errorPage(err.code, err.message, requestId));
  }
}

export function createApp(deps: AppDeps): App {
  const { config, verifier, store, landing, logger, metrics } = deps;
  const base = config.listen.basePath;
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
      autoLogging: { ignore: (req) => /\/(healthz|readyz|metrics)$/.test(req.url ?? '') },
    }),
  );
  app.use(securityHeaders(new URL(config.redirect.hubPublicUrl).origin));

  const r = express.Router();
  // A token is at most maxTokenBytes; leave room for the field name and encoding.
  const form = express.urlencoded({ extended: false, limit: config.token.maxTokenBytes * 2 + 1024, parameterLimit: 10 });

  async function handoff(req: Request, res: Response, token: unknown): Promise<void> {
    const started = process.hrtime.bigint();
    let outcome = 'internal';
    let user: string | undefined;
    let jti: string | undefined;
    try {
      const h = await verifier.verifyHandoff(token);
      user = h.user;
      jti = h.jti;
      await landing.prepare?.(h.user, req);
      const result = await store.accept(h);
      outcome = result.outcome;
      await landing.land({ handoff: h, result, req, res });
    } catch (e) {
      const err = toHandoffError(e);
      outcome = err.code;
      if (err.status >= 500) req.log.error({ code: err.code, detail: err.detail, err: err.cause }, 'handoff failed');
      if (!res.headersSent) sendError(req, res, err);
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.handoffs.inc({ outcome });
      metrics.handoffSeconds.observe({ outcome }, seconds);
      req.log.info({ event: 'handoff', user, jti, outcome, durationMs: Math.round(seconds * 1e4) / 10 }, 'handoff');
    }
  }

  r.post('/handoff', form, (req, res) => handoff(req, res, (req.body as Record<string, unknown> | undefined)?.token));
  r.get('/handoff', (req, res) => {
    const token = req.query.token;
    if (token !== undefined) return handoff(req, res, token);
    // No query token: the token is in the fragment; this page posts it.
    res.type('html').send(page('Opening your notebook', postForm(`${base}handoff`, undefined, 'Opening your notebook…'), FRAGMENT_SCRIPT));
  });

  r.post('/revoke', form, async (req, res) => {
    const auth = req.get('authorization');
    const token = auth?.startsWith('Bearer ') ? auth.slice(7) : (req.body as Record<string, unknown> | undefined)?.token;
    let outcome = 'internal';
    let user: string | undefined;
    try {
      const revocation = await verifier.verifyRevocation(token);
      user = revocation.user;
      const revoked = await store.revoke(revocation);
      outcome = revoked ? 'revoked' : 'absent';
      res.json({ revoked });
    } catch (e) {
      const err = toHandoffError(e);
      outcome = err.code;
      sendError(req, res, err);
    } finally {
      metrics.revocations.inc({ outcome });
      req.log.info({ event: 'revoke', user, outcome }, 'revoke');
    }
  });

  if (deps.demoToken) {
    const demoToken = deps.demoToken;
    r.get('/dev/demo', async (_req, res) => {
      const token = await demoToken();
      res.type('html').send(page('Demo handoff', postForm(`${base}handoff`, token, 'Handing a demo session over…'), AUTOSUBMIT_SCRIPT));
    });
  }

  r.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  r.get('/readyz', async (req, res) => {
    try {
      if (draining) throw new HandoffError('store_unavailable', 'shutting down');
      await store.check();
      await deps.readiness?.();
      res.json({ status: 'ready' });
    } catch (e) {
      const err = toHandoffError(e);
      req.log.warn({ code: err.code, detail: err.detail }, 'not ready');
      res.status(503).json({ status: 'not ready', error: err.code });
    }
  });
  if (config.metrics.enabled) {
    r.get('/metrics', async (_req, res) => {
      res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
    });
  }
  for (const extra of deps.routers ?? []) r.use(extra);

  app.use(base, r);
  app.use((req, res) => sendError(req, res, new HandoffError('not_found')));
  // Body parser errors (oversize, bad encoding) and anything unexpected.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const type = (err as { type?: string }).type;
    const e =
      type === 'entity.too.large'
        ? new HandoffError('token_too_large')
        : typeof type === 'string'
          ? new HandoffError('bad_request', type)
          : toHandoffError(err);
    if (e.status >= 500) req.log.error({ code: e.code, detail: e.detail }, 'request failed');
    if (!res.headersSent) sendError(req, res, e);
  });
  return {
    handler: app,
    drain() {
      draining = true;
    },
  };
}
