/**
 * Tickets: the one implementation of the service's short-lived ids (progress pages, hub login tokens,
 * handoffs waiting for a confirmation or the hub's sign-in). A ticket carries its own state, sealed
 * with AES-256-GCM under the ticket keys every replica shares (./ticket-keys.ts: random, dedicated,
 * rotatable), so any replica opens any ticket and none keeps anything in memory; a ticket that must be
 * used once is spent in the session store (SessionStore.spend), which every replica sees. Sealing also
 * keeps the state secret: a parked handoff's session travels in a ticket without being readable.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { HandoffError } from '../errors.js';
import type { Handoff } from '../handoff/types.js';
import type { SessionStore } from '../store/types.js';
import { sealingKey, type TicketKey } from './ticket-keys.js';

/** What each kind of ticket holds besides its user and expiry. */
export interface TicketKinds {
  /**
   * A progress page of `server` (absent: the default one): `bind` is the hash of its browser cookie;
   * `login`: its one hub login is issued on the first ready visit; `fingerprint`: the session stored
   * for a server that kept running (the lab waits for it).
   */
  progress: { server?: string; bind?: string; login?: boolean; notice?: boolean; fingerprint?: string };
  /** Hub login (login mode `handoff`, ./login.ts), step 1: for the browser whose binding is `bind`, continuing to the hub path `next`. */
  login: { bind: string; next: string };
  /** Step 2's way back to the service: adds `hub`, the hash of the browser's cookie at the hub's login, and the step-1 ticket's nonce and expiry (spent when taken). */
  loginReturn: { bind: string; next: string; hub: string; first: string; firstExp: number };
  /** Step 3's one-time login token, for the browser whose hub cookie hashes to `hub`. */
  hubLogin: { hub: string };
  /** A verified handoff waiting in the browser for the next request (the confirmation, the hub's sign-in). */
  parked: { handoff: Handoff; confirmed?: boolean; bind: string };
  /** Whom this browser is known as at the hub (a cookie); `checkedUntil`: the hub confirmed it, valid until then (ms). */
  known: { checkedUntil?: number };
}
export type TicketKind = keyof TicketKinds;

export type Ticket<K extends TicketKind> = TicketKinds[K] & {
  user: string;
  /** Milliseconds since the epoch. */
  exp: number;
  /** Random; what `spend` records for a single-use ticket. */
  nonce: string;
};

export interface Tickets {
  issue<K extends TicketKind>(kind: K, user: string, ttlMs: number, body: TicketKinds[K]): { ticket: string; nonce: string };
  /** The ticket's content when it is of that kind, authentic and not expired; else undefined. */
  open<K extends TicketKind>(kind: K, ticket: string): Ticket<K> | undefined;
}

/** A random cookie value (256 bits). */
export const randomValue = () => randomBytes(32).toString('base64url');
/** What a ticket holds of a browser's random cookie: its hash, so that the ticket alone proves nothing. */
export const bindingOf = (value: string) => createHash('sha256').update(value).digest('base64url');

const IV = 12;
const TAG = 16;
/** Larger tickets are not ours (the largest, a parked handoff, holds at most a token's claims): refused before any work. */
const MAX_TICKET = 65536;

export function createTickets(keys: readonly TicketKey[], now: () => number = Date.now): Tickets {
  const derived = keys.map((k) => ({ ...k, key: Buffer.from(hkdfSync('sha256', k.secret, 'omnisci-handoff', 'tickets v2', 32)) }));
  /** The first key whose `from` has come (a rotated-in key seals once every replica knows it). */
  const sealing = () => derived[keys.indexOf(sealingKey(keys, now()))]!.key;
  /** The authentic plaintext under any key still open, else undefined. */
  const decrypt = (kind: TicketKind, raw: Buffer): Buffer | undefined => {
    for (const d of derived) {
      if (d.until !== undefined && d.until <= now()) continue;
      try {
        const decipher = createDecipheriv('aes-256-gcm', d.key, raw.subarray(0, IV));
        decipher.setAAD(Buffer.from(kind));
        decipher.setAuthTag(raw.subarray(raw.length - TAG));
        return Buffer.concat([decipher.update(raw.subarray(IV, raw.length - TAG)), decipher.final()]);
      } catch {
        /* not this key */
      }
    }
    return undefined;
  };
  return {
    issue(kind, user, ttlMs, body) {
      const nonce = randomBytes(16).toString('base64url');
      const iv = randomBytes(IV);
      const cipher = createCipheriv('aes-256-gcm', sealing(), iv);
      // The kind is authenticated data: a ticket of one kind never opens as another.
      cipher.setAAD(Buffer.from(kind));
      const sealed = Buffer.concat([cipher.update(JSON.stringify({ ...body, user, exp: now() + ttlMs, nonce })), cipher.final()]);
      return { ticket: Buffer.concat([iv, sealed, cipher.getAuthTag()]).toString('base64url'), nonce };
    },
    open(kind, ticket) {
      if (ticket.length > MAX_TICKET || !/^[A-Za-z0-9_-]+$/.test(ticket)) return undefined;
      const raw = Buffer.from(ticket, 'base64url');
      if (raw.length <= IV + TAG) return undefined;
      const plain = decrypt(kind, raw);
      if (!plain) return undefined;
      try {
        const t = JSON.parse(plain.toString('utf8')) as Ticket<typeof kind>;
        return typeof t.user === 'string' && typeof t.exp === 'number' && t.exp > now() ? t : undefined;
      } catch {
        return undefined;
      }
    },
  };
}

/** Uses a single-use ticket: true the first time (on any replica), false after. */
export async function useOnce(store: Pick<SessionStore, 'spend'>, kind: TicketKind, t: Pick<Ticket<TicketKind>, 'user' | 'nonce' | 'exp'>): Promise<boolean> {
  try {
    await store.spend({ user: t.user, id: `${kind}:${t.nonce}`, exp: Math.ceil(t.exp / 1000) });
    return true;
  } catch (e) {
    if (e instanceof HandoffError && e.code === 'token_replayed') return false;
    throw e;
  }
}
