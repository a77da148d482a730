/**
 * The handoff pipeline: a verified handoff (a token, or a session HeavyDB confirmed) → the landing's
 * gates (`prepare`, which may park it for a later request) → store.accept → the landing's answer.
 * One context per handoff carries what each step learnt. Every request of a handoff, a resumed one
 * included, ends in one audit log line, one metric sample and, on failure, one error response with a
 * stable code. Nothing is stored unless every gate passed.
 */
import type { Request, Response } from 'express';
import { errorFields, toHandoffError, type HandoffError } from '../errors.js';
import type { Handoff } from '../handoff/types.js';
import type { HubUser } from '../hub/client.js';
import type { Fingerprint } from '../hub/fingerprint.js';
import type { Metrics } from '../metrics.js';
import type { AcceptResult, SessionStore } from '../store/types.js';
import { sendError } from './pages.js';

/**
 * One handoff on its way through the pipeline: what each step learnt, handed to the next one. A
 * handoff continued in a later request (see Resume) gets a new context, seeded with what its ticket carried.
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
  /**
   * The jti is reserved for this handoff: by `reserve` in this request, or before it was parked (a
   * resume). Only then may its accept take the reservation; any other request with that jti is a replay.
   */
  readonly reserved: boolean;
}

export interface LandedContext extends HandoffContext {
  result: AcceptResult;
}

/** Where a verified handoff goes: gates before the store, the answer after. Implementations: ./landing/. */
export interface Landing {
  /**
   * Runs before the session is stored (e.g. read or create the hub user, check the browser's hub identity).
   * Throws HandoffError to refuse; resolves 'deferred' when it answered the request itself and parked the handoff.
   */
  prepare?(ctx: HandoffContext): Promise<void | 'deferred'>;
  /** Sends the response after the session is stored. */
  land(ctx: LandedContext): Promise<void>;
  /** The fingerprint stored with a handoff's session (the hub landing: its lab URL for a running server carries it). */
  fingerprint?: Fingerprint;
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

export interface Pipeline {
  /** One handoff request: `source` yields the verified handoff (or throws HandoffError); `via` names a source other than a token. */
  run(req: Request, res: Response, source: () => Promise<Handoff>, via?: string): Promise<void>;
  resume: Resume;
}

export interface Audit {
  outcome: string;
  user?: string;
  jti?: string;
  /** How the session came, when not as a handoff token (e.g. `heavydb-session`). */
  via?: string;
}

/**
 * The one way a request fails: as a HandoffError, logged when it is the service's fault (code and
 * detail only: details are written to be safe, causes are not), answered unless already answered.
 */
export function fail(req: Request, res: Response, e: unknown, what: string): HandoffError {
  const err = toHandoffError(e);
  if (err.status >= 500) req.log.error(errorFields(err), what);
  if (!res.headersSent) sendError(req, res, err);
  return err;
}

/** Runs `work` as one handoff request: one audit log line, one metric sample, a failure answered with its code. */
async function audited(metrics: Metrics, req: Request, res: Response, work: (a: Audit) => Promise<void>): Promise<void> {
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
    req.log.info({ event: 'handoff', via: a.via, user: a.user, jti: a.jti, outcome: a.outcome, durationMs: Math.round(seconds * 1e4) / 10 }, 'handoff');
  }
}

export function createPipeline(deps: { store: SessionStore; landing: Landing; metrics: Metrics }): Pipeline {
  const { store, landing, metrics } = deps;

  function contextOf(handoff: Handoff, req: Request, res: Response, reserved: boolean, confirmed: boolean): HandoffContext {
    return {
      handoff,
      req,
      res,
      confirmed,
      async reserve() {
        if (reserved) return;
        await store.spend({ user: handoff.user, id: handoff.jti, exp: handoff.exp, reservation: true });
        reserved = true;
      },
      get reserved() {
        return reserved;
      },
    };
  }

  async function proceed(ctx: HandoffContext, a: Audit): Promise<void> {
    if ((await landing.prepare?.(ctx)) === 'deferred') {
      a.outcome = 'deferred';
      return;
    }
    const { session, query } = ctx.handoff;
    const result = await store.accept(ctx.handoff, { reserved: ctx.reserved, ...(landing.fingerprint ? { fingerprint: landing.fingerprint(session, query) } : {}) });
    a.outcome = result.outcome;
    await landing.land({ ...ctx, result });
  }

  return {
    run: (req, res, source, via) =>
      audited(metrics, req, res, async (a) => {
        if (via) a.via = via;
        const h = await source();
        Object.assign(a, { user: h.user, jti: h.jti });
        await proceed(contextOf(h, req, res, false, false), a);
      }),

    // A parked handoff's jti was reserved before it was parked; its accept takes the reservation once,
    // so a ticket resumed twice (on any replica) is a replay, and so is the same token sent again by
    // anyone (`run`: not reserved by that request).
    resume: (parked, req, res, gate) =>
      audited(metrics, req, res, async (a) => {
        const h = parked.handoff;
        Object.assign(a, { user: h.user, jti: h.jti });
        const ctx = contextOf(h, req, res, true, parked.confirmed === true);
        await gate?.(ctx);
        await proceed(ctx, a);
      }),
  };
}
