/**
 * The token entries: `POST {base}handoff` (form field `token`, Immerse's auto-posting form),
 * `GET {base}handoff?token=…`, `GET {base}handoff#token=…` (a page that posts the fragment),
 * `POST {base}revoke`, and local mode's demo page. A handoff runs through the pipeline (./pipeline.ts).
 * Without a token key source (header mode only) each token entry answers tokens_disabled.
 */
import type { RequestHandler } from 'express';
import type { Config } from '../config/types.js';
import { HandoffError } from '../errors.js';
import type { Verifier } from '../handoff/verify.js';
import type { Metrics } from '../metrics.js';
import type { SessionStore } from '../store/types.js';
import { AUTOSUBMIT_SCRIPT, FRAGMENT_SCRIPT, postForm, sendSelfPosting } from './pages.js';
import { fail, type Pipeline } from './pipeline.js';
import { allowedOrigins, crossSiteRefusal, isNavigation, sameSiteOrAllowed } from './security.js';

export interface TokenEntries {
  post: RequestHandler;
  get: RequestHandler;
  revoke: RequestHandler;
}

/** GET {base}dev/demo (local mode): a page that posts a freshly minted demo token, as Immerse's form does. */
export function demoPage(base: string, mint: () => Promise<string>): RequestHandler {
  return async (_req, res) => {
    const token = await mint();
    sendSelfPosting(res, 'Demo handoff', postForm(`${base}handoff`, token, 'Handing a demo session over…'), AUTOSUBMIT_SCRIPT);
  };
}

/** The verifier of a service without token keys (header mode only): every token entry answers tokens_disabled. */
const NO_TOKENS: Verifier = {
  verifyHandoff: () => Promise.reject(new HandoffError('tokens_disabled', 'no token key source is configured')),
  verifyRevocation: () => Promise.reject(new HandoffError('tokens_disabled', 'no token key source is configured')),
};

export function tokenEntries(config: Config, given: Verifier | undefined, pipeline: Pipeline, store: SessionStore, metrics: Metrics): TokenEntries {
  const base = config.listen.basePath;
  const origins = allowedOrigins(config.token);
  const verifier = given ?? NO_TOKENS;
  const off = (setting: string) => () => Promise.reject(new HandoffError('transport_disabled', `token.${setting} is off`));
  const script = () => new HandoffError('navigation_required', 'a handoff not sent by a navigation');

  return {
    post: (req, res) =>
      pipeline.run(req, res, async () => {
        if (!isNavigation(req)) throw script();
        if (!sameSiteOrAllowed(req, origins)) throw crossSiteRefusal(req);
        return verifier.verifyHandoff((req.body as Record<string, unknown> | undefined)?.token);
      }),

    get(req, res) {
      const token = req.query.token;
      if (token !== undefined) {
        if (!isNavigation(req)) return pipeline.run(req, res, () => Promise.reject(script()));
        return pipeline.run(req, res, config.token.queryTransport ? () => verifier.verifyHandoff(token) : off('queryTransport'));
      }
      // No page that would post a token nobody verifies.
      if (!given) return pipeline.run(req, res, () => verifier.verifyHandoff(undefined));
      if (!config.token.fragmentTransport) return pipeline.run(req, res, off('fragmentTransport'));
      // No query token: the token is in the fragment; this page posts it.
      sendSelfPosting(res, 'Opening your notebook', postForm(`${base}handoff`, undefined, 'Opening your notebook…'), FRAGMENT_SCRIPT);
    },

    async revoke(req, res) {
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
    },
  };
}
