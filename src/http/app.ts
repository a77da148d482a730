/**
 * The public HTTP service: handoff (POST form / GET query / GET fragment page), revoke, liveness.
 * Readiness and metrics are on the internal listener (./internal.ts).
 * Flow of a handoff: verify → landing.prepare (which may defer the rest to a later request) →
 * store.accept → landing.land; every outcome (`deferred` included) is one audit log line, one metric
 * sample and, on failure, one error response with a stable code.
 */
import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { pinoHttp } from 'pino-http';
import type { Config } from '../config/types.js';
import { errorFields, HandoffError, toHandoffError } from '../errors.js';
import type { Handoff } from '../handoff/types.js';
import type { Verifier } from '../handoff/verify.js';
import type { Landing, Resume } from '../landing/index.js';
import { sanitizeUrl, type Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { SessionStore } from '../store/types.js';
import { AUTOSUBMIT_SCRIPT, cspHash, FRAGMENT_SCRIPT, page, postForm, sendError, STYLE } from './pages.js';

export interface AppDeps {
  config: Config;
  verifier: Verifier;
  store: SessionStore;
  landing: Landing;
  logger: Logger;
  metrics: Metrics;
  /** Extra routes mounted under the base path (e.g. the JupyterHub integration's progress pages). */
  routers?: Router[];
  /** Inline scripts of those routes' pages, allowed by hash in the CSP. */
  scripts?: string[];
  /** Local mode only: mints a fresh demo token for GET {base}dev/demo. */
  demoToken?: () => Promise<string>;
  /** Readiness beyond the store (e.g. the hub); throws when not ready. */
  readiness?: () => Promise<void>;
}

export interface App {
  handler: express.Express;
  /** Marks the service as draining: ready() fails from now on. */
  drain(): void;
  /** Readiness (the internal listener's /readyz): not draining, the store usable, the hub answering. */
  ready(): Promise<void>;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** Inline scripts and styles are allowed by their hashes only: no script or style file is served. */
function securityHeaders(hubOrigin: string, scripts: string[]) {
  const csp = [
    "default-src 'none'",
    `script-src ${[FRAGMENT_SCRIPT, AUTOSUBMIT_SCRIPT, ...scripts].map(cspHash).join(' ')}`,
    `style-src ${cspHash(STYLE)}`,
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

/**
 * The one way a request fails: as a HandoffError, logged when it is the service's fault (code and
 * detail only: details are written to be safe, causes are not), answered unless already answered.
 */
function fail(req: Request, res: Response, e: unknown, what: string): HandoffError {
  const err = toHandoffError(e);
  if (err.status >= 500) req.log.error(errorFields(err), what);
  if (!res.headersSent) sendError(req, res, err);
  return err;
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
      autoLogging: { ignore: (req) => (req.url ?? '').endsWith('/healthz') },
    }),
  );
  app.use(securityHeaders(new URL(config.redirect.hubPublicUrl).origin, deps.scripts ?? []));

  const r = express.Router();
  // A token is at most maxTokenBytes; leave room for the field name and encoding.
  const form = express.urlencoded({ extended: false, limit: config.token.maxTokenBytes * 2 + 1024, parameterLimit: 10 });

  interface Audit {
    outcome: string;
    user?: string;
    jti?: string;
  }

  /** Every handoff request, also one resuming a deferred handoff, ends in one audit line and one metric sample. */
  async function audited(req: Request, res: Response, work: (a: Audit) => Promise<void>): Promise<void> {
    const started = process.hrtime.bigint();
    const a: Audit = { outcome: 'internal' };
    try {
      await work(a);
    } catch (e) {
      a.outcome = fail(req, res, e, 'handoff failed').code;
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.handoffs.inc({ outcome: a.outcome });
      metrics.handoffSeconds.observe({ outcome: a.outcome }, seconds);
      req.log.info({ event: 'handoff', user: a.user, jti: a.jti, outcome: a.outcome, durationMs: Math.round(seconds * 1e4) / 10 }, 'handoff');
    }
  }

  async function storeAndLand(h: Handoff, a: Audit, req: Request, res: Response): Promise<void> {
    const result = await store.accept(h);
    a.outcome = result.outcome;
    await landing.land({ handoff: h, result, req, res });
  }

  /** How a deferred handoff goes on in a later request. Built here, so that it holds the handoff only, never the first request. */
  const resumeFor =
    (h: Handoff): Resume =>
    (req, res, gate) =>
      audited(req, res, async (a) => {
        Object.assign(a, { user: h.user, jti: h.jti });
        await gate();
        await storeAndLand(h, a, req, res);
      });

  const handoff = (req: Request, res: Response, token: unknown) =>
    audited(req, res, async (a) => {
      const h = await verifier.verifyHandoff(token);
      a.user = h.user;
      a.jti = h.jti;
      if ((await landing.prepare?.({ handoff: h, req, res, resume: resumeFor(h), reserve: () => store.reserve(h) })) === 'deferred') {
        a.outcome = 'deferred';
        return;
      }
      await storeAndLand(h, a, req, res);
    });

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
      outcome = fail(req, res, e, 'revoke failed').code;
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
  for (const extra of deps.routers ?? []) r.use(extra);

  app.use(base, r);
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
      await deps.readiness?.();
    },
  };
}
