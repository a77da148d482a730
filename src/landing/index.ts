/**
 * Where the browser goes once a handoff is verified: the `Landing` interface, and the lab URL every
 * landing ends on. Two landings implement it: ./direct.ts (straight to the lab) and ./hub.ts (make
 * sure the user's server runs first, with a progress page).
 */
import type { Request, Response } from 'express';
import type { Config } from '../config/types.js';
import type { Handoff } from '../handoff/types.js';
import type { AcceptResult } from '../store/types.js';

export interface LandingContext {
  handoff: Handoff;
  result: AcceptResult;
  req: Request;
  res: Response;
}

/** Continues a deferred handoff in a later request: runs `gate` (which may refuse by throwing HandoffError), then stores the session and lands, audited like any handoff. */
export type Resume = (req: Request, res: Response, gate: () => Promise<void>) => Promise<void>;

export interface PrepareContext {
  handoff: Handoff;
  req: Request;
  res: Response;
  resume: Resume;
  /** Spends the handoff's jti now (SessionStore.reserve): call it before deferring, so nothing is issued for a used token. */
  reserve(): Promise<void>;
}

export interface Landing {
  /**
   * Runs before the session is stored (e.g. read or create the hub user, check the browser's hub identity).
   * Throws HandoffError to refuse; resolves 'deferred' when it answered the request itself and will `resume` later.
   */
  prepare?(ctx: PrepareContext): Promise<void | 'deferred'>;
  /** Sends the response after the session is stored. */
  land(ctx: LandingContext): Promise<void>;
}

/**
 * The lab URL for a user. Only configuration and the (validated) user name shape it: nothing from the
 * request chooses the target. The name is percent-encoded; the bare `omnisci` and `reset` params stay bare.
 */
export function labUrl(redirect: Config['redirect'], user: string, serverName = ''): string {
  return redirect.labUrlTemplate
    .replaceAll('{hubPublicUrl}', redirect.hubPublicUrl)
    .replaceAll('{username}', encodeURIComponent(user))
    .replaceAll('{servername}', encodeURIComponent(serverName));
}
