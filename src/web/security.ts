/**
 * The HTTP layer's defences: the response headers of every page (a CSP that allows inline scripts
 * and styles by hash only), which sites may post a handoff (login CSRF), and which requests are a
 * page the browser opened or a user's click rather than a script (pages on the hub's own origin).
 */
import type { NextFunction, Request, Response } from 'express';
import type { Config } from '../config/types.js';
import { HandoffError } from '../errors.js';
import { AUTOSUBMIT_SCRIPT, cspHash, FRAGMENT_SCRIPT, STYLE } from './pages.js';

/** Inline scripts and styles are allowed by their hashes only: no script or style file is served. */
export function securityHeaders(hubOrigin: string, scripts: string[]) {
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
export function allowedOrigins(token: Config['token']): Set<string> {
  if (token.allowedOrigins.length) return new Set(token.allowedOrigins.map((o) => new URL(o).origin));
  if (!token.issuer) return new Set();
  try {
    const u = new URL(token.issuer);
    return new Set(u.protocol === 'https:' || u.protocol === 'http:' ? [u.origin] : []);
  } catch {
    return new Set();
  }
}

/**
 * Login CSRF: a browser POST of a handoff from a page of another site is refused unless that site
 * is an allowed origin. Browsers mark every request with Sec-Fetch-Site (older ones: Origin on every
 * POST); a request with neither comes from no browser, so no victim's browser can be made to send it.
 */
export function sameSiteOrAllowed(req: Request, allowed: Set<string>): boolean {
  const site = req.get('sec-fetch-site');
  if (site === 'same-origin') return true;
  const origin = req.get('origin');
  if (origin === undefined) return site === undefined;
  if (allowed.has(origin)) return true;
  // A browser without Fetch Metadata: this service's own page (the fragment page) has this request's host.
  return site === undefined && isOwnOrigin(req, origin);
}

/** Whether an Origin header names this service's own host (what a browser without Fetch Metadata says of its page). */
const isOwnOrigin = (req: Request, origin: string) => URL.canParse(origin) && new URL(origin).host === req.get('host');

/**
 * Why a browser's cross-site POST was refused, for whoever can fix it: the refused origin (public: a
 * browser sends it to every site) and what to change. `Origin: null` is what any page can make its
 * browser send — a referrer policy of no-referrer or same-origin, a sandboxed frame — so it can never
 * be allowed; the issuer's page must let its origin through instead.
 */
export function crossSiteRefusal(req: Request): HandoffError {
  const origin = req.get('origin');
  const shown = origin === undefined ? '(none)' : /^(null|https?:\/\/[A-Za-z0-9.:[\]-]{1,300})$/.test(origin) ? origin : '(unreadable)';
  const fix = 'The page that posts handoffs (Immerse) must be served with the referrer policy strict-origin-when-cross-origin (the browsers\' default) or origin — not no-referrer or same-origin, and without rel="noreferrer" on its form — and its origin must be listed in token.allowedOrigins.';
  const message =
    origin === 'null'
      ? `This handoff came from a page that hides its origin (the browser sent Origin: null, as it does for a page with the referrer policy no-referrer or same-origin, or a sandboxed frame). Any site can do that, so it is refused. ${fix} Show this to your administrator.`
      : origin === undefined
        ? `This handoff came from another site, and the browser did not say which, so it is refused. ${fix} Show this to your administrator.`
        : `This handoff came from ${shown}, which may not open notebooks here. If that is your Immerse, an administrator adds ${shown} to token.allowedOrigins; otherwise open the notebook from Immerse.`;
  return new HandoffError('cross_site_refused', `Origin ${shown}`, { message });
}

/**
 * A top-level navigation (a form post, a link, a redirect), not a script's fetch or a frame: browsers
 * say so in Sec-Fetch-Mode and Sec-Fetch-Dest, which no script can set. So a page on the hub's own
 * origin (a user's server) cannot post a handoff and read the answer. A browser sends them together
 * with Sec-Fetch-Site; without it the client is no browser with Fetch Metadata (Node's fetch sends a
 * lone Sec-Fetch-Mode) and has no answer to hide.
 */
export function isNavigation(req: Request): boolean {
  if (req.get('sec-fetch-site') === undefined) return true;
  return req.get('sec-fetch-mode') === 'navigate' && (req.get('sec-fetch-dest') ?? 'document') === 'document';
}

/**
 * A user's own click on one of this service's pages: same-origin, a top-level navigation and a user
 * activation (Sec-Fetch-User: ?1, which a form submitted by a script without a click never carries).
 * A browser without Fetch Metadata must at least name this service's origin; a client that is no
 * browser sends none of these headers and is nobody's victim.
 */
export function isOwnPageClick(req: Request): boolean {
  const site = req.get('sec-fetch-site');
  if (site !== undefined) return site === 'same-origin' && isNavigation(req) && req.get('sec-fetch-user') === '?1';
  const origin = req.get('origin');
  return origin === undefined || isOwnOrigin(req, origin);
}
