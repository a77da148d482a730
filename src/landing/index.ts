/**
 * Where the browser goes once a handoff is verified: the `Landing` interface, and the lab URL every
 * landing ends on. Two landings implement it: ./direct.ts (straight to the lab) and ./hub.ts (make
 * sure the user's server runs first, with a progress page).
 */
import type { Request, Response, Router } from 'express';
import type { Config } from '../config/types.js';
import type { Handoff } from '../handoff/types.js';
import type { HubUser } from '../hub/client.js';
import type { AcceptResult } from '../store/types.js';

/**
 * One handoff on its way through the pipeline (src/pipeline.ts): what each step learnt, handed to
 * the next one. A handoff continued in a later request (see Resume) gets a new context, seeded with
 * what its ticket carried.
 */
export interface HandoffContext {
  readonly handoff: Handoff;
  readonly req: Request;
  readonly res: Response;
  /** The user confirmed this sign-in on the confirmation page (login mode `handoff`). */
  confirmed: boolean;
  /** The hub user this browser proved to be in this request (the identity check's OAuth round). */
  hubIdentity?: string;
  /** The hub's model of the user, once read: later steps use it rather than asking the hub again. */
  hubUser?: HubUser;
  /** Spends the handoff's jti now (once per handoff): call it before deferring, so nothing is issued for a used token. */
  reserve(): Promise<void>;
}

export interface LandedContext extends HandoffContext {
  result: AcceptResult;
}

/** A handoff parked in the browser (a ticket) and continued in a later request. */
export interface Parked {
  handoff: Handoff;
  confirmed?: boolean;
}

/**
 * Continues a parked handoff: runs `gate` (which may refuse by throwing HandoffError, and may learn
 * things into the context), then the rest of the pipeline, audited like any handoff.
 */
export type Resume = (parked: Parked, req: Request, res: Response, gate?: (ctx: HandoffContext) => Promise<void>) => Promise<void>;

export interface Landing {
  /**
   * Runs before the session is stored (e.g. read or create the hub user, check the browser's hub identity).
   * Throws HandoffError to refuse; resolves 'deferred' when it answered the request itself and parked the handoff.
   */
  prepare?(ctx: HandoffContext): Promise<void | 'deferred'>;
  /** Sends the response after the session is stored. */
  land(ctx: LandedContext): Promise<void>;
  /** Routes of its later steps (progress pages, sign-in callbacks), mounted under the base path. */
  routes?(resume: Resume): Router;
  /** Inline scripts of its pages, for the CSP to allow by hash. */
  scripts?: string[];
  /** Readiness beyond the store (e.g. the hub answers); throws when not ready. */
  readiness?(): Promise<void>;
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
