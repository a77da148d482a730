/**
 * The HTTP layer's defences: the response headers of every page (a CSP that allows inline scripts
 * and styles by hash only), and which sites may post a handoff (login CSRF).
 */
import type { NextFunction, Request, Response } from 'express';
import type { Config } from '../config/types.js';
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
  return site === undefined && URL.canParse(origin) && new URL(origin).host === req.get('host');
}
