import type { Config } from '../config/types.js';
import { HandoffError } from '../errors.js';
import type { Handoff, Revocation } from '../handoff/types.js';
import type { AcceptResult, SeenJti, SessionRecord, Spend } from './types.js';

export interface ApplyOptions {
  /** Upper bound of remembered token ids per user. */
  maxJtis: number;
  /** Now, in seconds since the epoch. */
  now: number;
  /** Added to a token's exp: how long its jti must be remembered. */
  clockTolerance: number;
}

/** The options for `now` (milliseconds since the epoch), from the configuration. */
export function applyOptions(config: Config, nowMs: number): ApplyOptions {
  return { maxJtis: config.store.maxJtis, now: Math.floor(nowMs / 1000), clockTolerance: config.token.clockToleranceSeconds };
}

function remember(jtis: SeenJti[], jti: string, until: number, o: ApplyOptions, reserved = false): SeenJti[] {
  // A reservation of this jti is taken by its handoff: it becomes an ordinary spent jti.
  const live = jtis.filter((j) => j.until >= o.now && j.jti !== jti);
  live.push(reserved ? { jti, until, reserved } : { jti, until });
  // Keep the ones that stay replayable longest when over the bound.
  live.sort((a, b) => b.until - a.until);
  return live.slice(0, o.maxJtis);
}

/** A jti seen and still live is a replay, unless `takeReservation` and it was reserved for this very use. */
function checkReplay(current: SessionRecord | undefined, jti: string, now: number, takeReservation = false): void {
  const seen = current?.jtis.find((j) => j.jti === jti && j.until >= now);
  if (seen && !(takeReservation && seen.reserved)) throw new HandoffError('token_replayed');
}

/** The record of a user with nothing stored yet: no session, the lowest watermark. */
function emptyRecord(user: string): SessionRecord {
  return { user, session: '', query: '', connection: { protocol: 'https', host: '', port: 443, database: '' }, iat: 0, jtis: [], updatedAt: 0 };
}

/**
 * The store's decision, shared by every backend: reject a replayed jti, never let an older `iat`
 * overwrite a newer session, remember the jti until its token expires, prune expired ones.
 * Pure: the backend supplies the current record and writes the result atomically.
 */
export function applyHandoff(current: SessionRecord | undefined, h: Handoff, o: ApplyOptions): AcceptResult {
  checkReplay(current, h.jti, o.now, true);
  const jtis = remember(current?.jtis ?? [], h.jti, h.exp + o.clockTolerance, o);
  if (current && h.iat < current.iat) {
    return { outcome: 'superseded', record: { ...current, jtis, updatedAt: o.now * 1000 }, previous: current };
  }
  const record: SessionRecord = {
    user: h.user,
    session: h.session,
    query: h.query,
    connection: h.connection,
    iat: h.iat,
    jtis,
    updatedAt: o.now * 1000,
  };
  return { outcome: 'stored', record, previous: current };
}

/** Revocation as a record update: empties the session unless a newer handoff already replaced it. */
export function applyRevoke(
  current: SessionRecord | undefined,
  r: Revocation,
  o: ApplyOptions,
): { record: SessionRecord; revoked: boolean } {
  checkReplay(current, r.jti, o.now);
  const jtis = remember(current?.jtis ?? [], r.jti, r.exp + o.clockTolerance, o);
  const base = current ?? emptyRecord(r.user);
  if (r.iat < base.iat) return { record: { ...base, jtis, updatedAt: o.now * 1000 }, revoked: false };
  return { record: { ...base, session: '', query: '', iat: r.iat, jtis, updatedAt: o.now * 1000 }, revoked: Boolean(current?.session) };
}

/** A single-use id spent (see SessionStore.spend), nothing else changed; a reservation is later taken by its own handoff. */
export function applySpend(current: SessionRecord | undefined, s: Spend, o: ApplyOptions): SessionRecord {
  checkReplay(current, s.id, o.now);
  const base = current ?? emptyRecord(s.user);
  return { ...base, jtis: remember(base.jtis, s.id, s.exp + o.clockTolerance, o, s.reservation === true), updatedAt: o.now * 1000 };
}
