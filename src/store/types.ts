/** The store's side of a handoff: the per-user record and the `SessionStore` interface its backends implement. */
import type { Connection, Handoff, Revocation } from '../handoff/types.js';

export interface SeenJti {
  /** A token's jti, or `<kind>:<nonce>` of a ticket. */
  jti: string;
  /** Seconds since the epoch after which the token can no longer be replayed (its exp + clock tolerance). */
  until: number;
  /** Spent by `spend` as a reservation ahead of its parked handoff, which only that handoff's resume takes (`accept` with `reserved`), once. */
  reserved?: true;
}

/** What is stored per hub user. */
export interface SessionRecord {
  user: string;
  /** Empty after a revocation. */
  session: string;
  query: string;
  connection: Connection;
  /** `iat` of the newest accepted handoff (or revocation): older ones never overwrite. */
  iat: number;
  jtis: SeenJti[];
  /** Milliseconds since the epoch of the last write. */
  updatedAt: number;
  /** The stored session's fingerprint (src/hub/fingerprint.ts), when its handoff came with one: also written into the session file. */
  fingerprint?: string;
}

/** A single-use id of a user, remembered until `exp` (seconds since the epoch) plus the clock tolerance. */
export interface Spend {
  user: string;
  id: string;
  exp: number;
  reservation?: boolean;
}

/** `stored`: the handoff's session is now the user's; `superseded`: a newer session was already stored and stays. */
export type AcceptOutcome = 'stored' | 'superseded';

export interface AcceptResult {
  outcome: AcceptOutcome;
  record: SessionRecord;
  previous: SessionRecord | undefined;
}

/**
 * A per-user session store. `accept` and `revoke` are each one atomic read-modify-write per user
 * (replay check + ordering + write), so they stay correct under concurrency: the local backend
 * serialises in-process, the Kubernetes backend uses optimistic concurrency on its Secret.
 */
export interface AcceptOptions {
  /** Only the resume of a parked handoff: it reserved its jti before it was parked, and takes that reservation now. */
  reserved?: boolean;
  /** The fingerprint of the handoff's session (src/hub/fingerprint.ts), stored with it: in the record and the session file. */
  fingerprint?: string;
}

export interface SessionStore {
  readonly backend: string;
  /**
   * Throws HandoffError `token_replayed` when the jti was already accepted or spent (a reserved jti
   * too, unless `reserved`), `record_full` when the user's record holds store.maxJtis live ids.
   */
  accept(handoff: Handoff, o?: AcceptOptions): Promise<AcceptResult>;
  get(user: string): Promise<SessionRecord | undefined>;
  /**
   * Spends a single-use id in the user's record, so that every replica sees it spent: a handoff's
   * jti before it is parked (a `reservation`, which the parked handoff's resume later takes, once),
   * a hub login token, a progress page's one hub login. Throws `token_replayed` when already spent,
   * `record_full` when the record holds store.maxJtis live ids. Stores no session.
   */
  spend(spend: Spend): Promise<void>;
  /**
   * Empties the user's session, keeping the ordering watermark so older handoffs cannot restore it.
   * Resolves true when a session was there to revoke. Throws `token_replayed` like accept; a full
   * record still revokes.
   */
  revoke(revocation: Revocation): Promise<boolean>;
  /** Resolves when the backend can serve (readiness probe); throws otherwise. */
  check(): Promise<void>;
  close(): Promise<void>;
}
