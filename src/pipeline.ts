/**
 * The handoff pipeline: verify → landing.prepare (gates; it may park the handoff for a later
 * request) → store.accept → landing.land. One context per handoff carries what each step learnt.
 * Every request of a handoff, a resumed one included, ends in one audit log line, one metric sample
 * and, on failure, one error response with a stable code.
 */
import type { Request, Response } from 'express';
import { errorFields, toHandoffError, type HandoffError } from './errors.js';
import type { Handoff } from './handoff/types.js';
import type { Verifier } from './handoff/verify.js';
import { sendError } from './http/pages.js';
import type { HandoffContext, Landing, Parked, Resume } from './landing/index.js';
import type { Metrics } from './metrics.js';
import type { SessionStore } from './store/types.js';

export interface Pipeline {
  /** A handoff token a request brought; `admit` may refuse the request (HandoffError) before the token is looked at. */
  run(req: Request, res: Response, token: unknown, admit?: () => void): Promise<void>;
  resume: Resume;
}

export interface Audit {
  outcome: string;
  user?: string;
  jti?: string;
  /** How the session came, when not as a handoff token (e.g. `heavydb-session`). */
  via?: string;
}

/** Runs `work` as one handoff request: one audit log line, one metric sample, a failure answered with its code. */
export type Audited = (req: Request, res: Response, work: (a: Audit) => Promise<void>) => Promise<void>;

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

export function auditor(metrics: Metrics): Audited {
  return async (req, res, work) => {
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
  };
}

export function createPipeline(deps: { verifier: Verifier; store: SessionStore; landing: Landing; metrics: Metrics }): Pipeline {
  const { verifier, store, landing } = deps;
  const audited = auditor(deps.metrics);

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
    };
  }

  async function proceed(ctx: HandoffContext, a: Audit): Promise<void> {
    if ((await landing.prepare?.(ctx)) === 'deferred') {
      a.outcome = 'deferred';
      return;
    }
    const result = await store.accept(ctx.handoff);
    a.outcome = result.outcome;
    await landing.land({ ...ctx, result });
  }

  return {
    run: (req, res, token, admit) =>
      audited(req, res, async (a) => {
        admit?.();
        const h = await verifier.verifyHandoff(token);
        Object.assign(a, { user: h.user, jti: h.jti });
        await proceed(contextOf(h, req, res, false, false), a);
      }),

    // A parked handoff's jti was reserved before it was parked; its accept takes the reservation once,
    // so a ticket resumed twice (on any replica) is a replay.
    resume: (parked: Parked, req, res, gate) =>
      audited(req, res, async (a) => {
        const h = parked.handoff;
        Object.assign(a, { user: h.user, jti: h.jti });
        const ctx = contextOf(h, req, res, true, parked.confirmed === true);
        await gate?.(ctx);
        await proceed(ctx, a);
      }),
  };
}
