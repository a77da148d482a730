/** The service's few cookies: read one without a cookie parser; set and clear them all alike (HttpOnly, SameSite=Lax unless they must cross sites, Secure over https). */
import type { Request, Response } from 'express';

export function cookie(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * `crossSite`: also sent on Immerse's cross-site POST of a handoff (SameSite=None, which browsers
 * accept over https only; Lax over http), for the cookies that say who the browser is.
 */
export function setCookie(req: Request, res: Response, name: string, value: string, path: string, maxAgeMs: number, crossSite = false): void {
  res.cookie(name, value, { path, httpOnly: true, sameSite: crossSite && req.secure ? 'none' : 'lax', secure: req.secure, maxAge: maxAgeMs });
}

export function clearCookie(req: Request, res: Response, name: string, path: string): void {
  res.clearCookie(name, { path, httpOnly: true, sameSite: 'lax', secure: req.secure });
}
