/**
 * The public HTTP service: handoff (POST form / GET query / GET fragment page), revoke, liveness,
 * and the landing's later steps. Readiness and metrics are on the internal listener (./internal.ts).
 * A handoff runs through the pipeline (../pipeline.ts).
 */
import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { pinoHttp } from 'pino-http';
import type { Config } from '../config/types.js';
import { HandoffError } from '../errors.js';
import type { Verifier } from '../handoff/verify.js';
import type { Landing } from '../landing/index.js';
import { sanitizeUrl, type Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { createPipeline, fail } from '../pipeline.js';
import type { SessionStore } from '../store/types.js';
import { AUTOSUBMIT_SCRIPT, cspHash, FRAGMENT_SCRIPT, page, postForm, sendError, STYLE } from './pages.js';

export interface AppDeps {
  config: Config;
  verifier: Verifier;
  store: SessionStore;
  landing: Landing;
  logger: Logger;
  metrics: Metrics;
  /** Extra routes mounted under the base path (e.g. the header mode's login). */
  routers?: Router[];
  /** Inline scripts of those routes' pages, allowed by hash in the CSP. */
  scripts?: string[];
  /** Local mode only: mints a fresh demo token for GET {base}dev/demo. */
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

/** The origins allowed to post a handoff from another site: configured, else the issuer's when it is a URL. */
function allowedOrigins(token: Config['token']): Set<string> {
  if (token.allowedOrigins.length) return new Set(token.allowedOrigins.map((o) => new URL(o).origin));
  try {
    const u = new URL(token.issuer);
    return new Set(u.protocol === 'https:' || u.protocol === 'http:' ? [u.origin] : []);
  } catch {
    return new Set();
  }
}

/**
 * The policy of the pages that post a handoff to this service: with `no-referrer` a browser sends
 * `Origin: null` on their POST, and over plain http to a host other than localhost Chromium sends no
 * Sec-Fetch-Site either, so the POST would look cross-site. `same-origin` gives their own origin to
 * this service only (a fragment is never part of a Referer).
 */
const SELF_POSTING = 'same-origin';

/**
 * Login CSRF: a browser POST of a handoff from a page of another site is refused unless that site
 * is an allowed origin. Browsers mark every request with Sec-Fetch-Site (older ones: Origin on every
 * POST); a request with neither comes from no browser, so no victim's browser can be made to send it.
 */
function sameSiteOrAllowed(req: Request, allowed: Set<string>): boolean {
  const site = req.get('sec-fetch-site');
  if (site === 'same-origin') return true;
  const origin = req.get('origin');
  if (origin === undefined) return site === undefined;
  if (allowed.has(origin)) return true;
  // A browser without Fetch Metadata: this service's own page (the fragment page) has this request's host.
  return site === undefined && URL.canParse(origin) && new URL(origin).host === req.get('host');
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
  app.use(securityHeaders(new URL(config.redirect.hubPublicUrl).origin, [...(landing.scripts ?? []), ...(deps.scripts ?? [])]));

  const r = express.Router();
  // A token is at most maxTokenBytes; leave room for the field name and encoding.
  const form = express.urlencoded({ extended: false, limit: config.token.maxTokenBytes * 2 + 1024, parameterLimit: 10 });

  const pipeline = createPipeline({ verifier, store, landing, metrics });
  const origins = allowedOrigins(config.token);

  r.post('/handoff', form, (req, res) =>
    pipeline.run(req, res, (req.body as Record<string, unknown> | undefined)?.token, () => {
      if (!sameSiteOrAllowed(req, origins)) throw new HandoffError('cross_site_refused', `Origin ${req.get('origin') ?? '(none)'}`);
    }),
  );
  r.get('/handoff', (req, res) => {
    const token = req.query.token;
    const off = (setting: string) => () => {
      throw new HandoffError('transport_disabled', `token.${setting} is off`);
    };
    if (token !== undefined) return pipeline.run(req, res, token, config.token.queryTransport ? undefined : off('queryTransport'));
    if (!config.token.fragmentTransport) return pipeline.run(req, res, undefined, off('fragmentTransport'));
    // No query token: the token is in the fragment; this page posts it.
    res.set('Referrer-Policy', SELF_POSTING).type('html').send(page('Opening your notebook', postForm(`${base}handoff`, undefined, 'Opening your notebook…'), FRAGMENT_SCRIPT));
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
      res.set('Referrer-Policy', SELF_POSTING).type('html').send(page('Demo handoff', postForm(`${base}handoff`, token, 'Handing a demo session over…'), AUTOSUBMIT_SCRIPT));
    });
  }

  r.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  if (landing.routes) r.use(landing.routes(pipeline.resume));
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
      await landing.readiness?.();
    },
  };
}
