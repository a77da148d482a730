import type { Config } from '../config/types.js';
import { HandoffError } from '../errors.js';
import type { Handoff, Revocation } from '../handoff/types.js';
import type { AcceptResult, SeenJti, SessionRecord } from './types.js';

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

function remember(jtis: SeenJti[], jti: string, until: number, o: ApplyOptions): SeenJti[] {
  const live = jtis.filter((j) => j.until >= o.now);
  live.push({ jti, until });
  // Keep the ones that stay replayable longest when over the bound.
  live.sort((a, b) => b.until - a.until);
  return live.slice(0, o.maxJtis);
}

function checkReplay(current: SessionRecord | undefined, jti: string, now: number): void {
  if (current?.jtis.some((j) => j.jti === jti && j.until >= now)) throw new HandoffError('token_replayed');
}

/**
 * The store's decision, shared by every backend: reject a replayed jti, never let an older `iat`
 * overwrite a newer session, remember the jti until its token expires, prune expired ones.
 * Pure: the backend supplies the current record and writes the result atomically.
 */
export function applyHandoff(current: SessionRecord | undefined, h: Handoff, o: ApplyOptions): AcceptResult {
  checkReplay(current, h.jti, o.now);
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
  const base: SessionRecord = current ?? {
    user: r.user,
    session: '',
    query: '',
    connection: { protocol: 'https', host: '', port: 443, database: '' },
    iat: 0,
    jtis: [],
    updatedAt: 0,
  };
  if (r.iat < base.iat) return { record: { ...base, jtis, updatedAt: o.now * 1000 }, revoked: false };
  return { record: { ...base, session: '', query: '', iat: r.iat, jtis, updatedAt: o.now * 1000 }, revoked: Boolean(current?.session) };
}
