/**
 * The fingerprint of a handoff's session: the lab URL of a handoff to a running server carries it
 * (`omnisci-handoff=<fingerprint>`, ./lab-url.ts) and the session file holds it (`"fingerprint"`), so
 * that omnisci-handoff-jupyter's lab extension opens the notebook only once this session reached the
 * server, never on the older one a running pod keeps until the kubelet syncs its Secret volume.
 *
 * A keyed hash (HMAC-SHA256 under a key derived by HKDF from the ticket key that seals now,
 * ./ticket-keys.ts: the one secret of the hub flows), so that a URL, a browser history or a proxy log
 * holds neither the id nor anything to test a guessed id against. It covers the query too: the lab
 * waits for exactly what this handoff stored. Every replica computes the same value, so the same
 * session and query handed over again leave the session file unchanged and the lab waits for nothing.
 */
import { createHmac, hkdfSync } from 'node:crypto';
import { sealingKey, type TicketKey } from './ticket-keys.js';

/** The fingerprint of a session and its query: base64url, 43 characters. */
export type Fingerprint = (session: string, query: string) => string;

export function sessionFingerprint(keys: readonly TicketKey[], now: () => number = Date.now): Fingerprint {
  const derived = new Map<string, Buffer>();
  const keyOf = (secret: string): Buffer => {
    let key = derived.get(secret);
    if (!key) derived.set(secret, (key = Buffer.from(hkdfSync('sha256', secret, 'omnisci-handoff', 'session fingerprint v1', 32))));
    return key;
  };
  return (session, query) => createHmac('sha256', keyOf(sealingKey(keys, now()).secret)).update(JSON.stringify([session, query])).digest('base64url');
}
