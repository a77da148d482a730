import type { Config } from '../config/types.js';
import { HandoffError } from '../errors.js';
import type { Handoff, Revocation } from '../handoff/types.js';
import type { AcceptResult, SeenJti, SessionRecord, Spend } from './types.js';

export interface ApplyOptions {
  /** How many live single-use ids a user's record holds; one more is refused (`record_full`), never one forgotten. */
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

/**
 * The live ids with `jti` remembered until `until`. Expired ids are dropped; a live one never is, since
 * a forgotten id could be used again: a record full of live ids refuses the new one (`record_full`).
 * A reservation of this jti is taken by its handoff: it becomes an ordinary spent jti.
 */
function remember(jtis: SeenJti[], jti: string, until: number, o: ApplyOptions, reserved = false): SeenJti[] {
  const live = jtis.filter((j) => j.until >= o.now && j.jti !== jti);
  if (live.length >= o.maxJtis)
    throw new HandoffError('record_full', `${live.length} single-use ids of this user are live (store.maxJtis ${o.maxJtis})`);
  live.push(reserved ? { jti, until, reserved } : { jti, until });
  return live;
}

/** A jti seen and still live is a replay, unless `reserved` (the resume of the handoff that reserved it) and it was reserved. */
function checkReplay(current: SessionRecord | undefined, jti: string, now: number, reserved = false): void {
  const seen = current?.jtis.find((j) => j.jti === jti && j.until >= now);
  if (seen && !(reserved && seen.reserved)) throw new HandoffError('token_replayed');
}

/** The record of a user with nothing stored yet: no session, the lowest watermark. */
function emptyRecord(user: string): SessionRecord {
  return { user, session: '', query: '', connection: { protocol: 'https', host: '', port: 443, database: '' }, iat: 0, jtis: [], updatedAt: 0 };
}

/**
 * The store's decision, shared by every backend: reject a replayed jti, never let an older `iat`
 * overwrite a newer session, remember the jti until its token expires, prune expired ones.
 * `reserved`: the handoff reserved its jti (spend) before it was parked and is now resumed, so it
 * takes that reservation; any other handoff with a reserved jti is a replay. `fingerprint`: the
 * session's, kept with it (a session stored without one has none).
 * Pure: the backend supplies the current record and writes the result atomically.
 */
export function applyHandoff(current: SessionRecord | undefined, h: Handoff, o: ApplyOptions, reserved = false, fingerprint?: string): AcceptResult {
  checkReplay(current, h.jti, o.now, reserved);
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
    ...(fingerprint === undefined ? {} : { fingerprint }),
  };
  return { outcome: 'stored', record, previous: current };
}

/**
 * A revocation's jti when there is room. A full record still revokes (a logout must not wait for a
 * flood to expire): emptying a session grants nothing, so at worst a replay of it empties one again.
 */
function rememberRevocation(jtis: SeenJti[], r: Revocation, o: ApplyOptions): SeenJti[] {
  try {
    return remember(jtis, r.jti, r.exp + o.clockTolerance, o);
  } catch (e) {
    if (e instanceof HandoffError && e.code === 'record_full') return jtis.filter((j) => j.until >= o.now);
    throw e;
  }
}

/** Revocation as a record update: empties the session unless a newer handoff already replaced it. */
export function applyRevoke(
  current: SessionRecord | undefined,
  r: Revocation,
  o: ApplyOptions,
): { record: SessionRecord; revoked: boolean } {
  checkReplay(current, r.jti, o.now);
  const jtis = rememberRevocation(current?.jtis ?? [], r, o);
  const base = current ?? emptyRecord(r.user);
  if (r.iat < base.iat) return { record: { ...base, jtis, updatedAt: o.now * 1000 }, revoked: false };
  const { fingerprint: _, ...kept } = base;
  return { record: { ...kept, session: '', query: '', iat: r.iat, jtis, updatedAt: o.now * 1000 }, revoked: Boolean(current?.session) };
}

/** A single-use id spent (see SessionStore.spend), nothing else changed; a reservation is later taken by its own handoff. */
export function applySpend(current: SessionRecord | undefined, s: Spend, o: ApplyOptions): SessionRecord {
  checkReplay(current, s.id, o.now);
  const base = current ?? emptyRecord(s.user);
  return { ...base, jtis: remember(base.jtis, s.id, s.exp + o.clockTolerance, o, s.reservation === true), updatedAt: o.now * 1000 };
}
