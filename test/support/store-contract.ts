/**
 * The SessionStore contract: what every backend must do, whatever keeps the data. One suite, run
 * over the local store and the Kubernetes store on the loopback API server stand-in
 * (test/unit/store-contract.test.ts) and on a real kube-apiserver
 * (test/integration/store-contract-kube.test.ts). Backend specifics (file modes, Secret layout, API
 * errors) stay in each backend's own tests; the pure rules are table-tested in test/unit/record.test.ts.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { HandoffError } from '../../src/errors.js';
import type { Revocation } from '../../src/handoff/types.js';
import type { SessionStore } from '../../src/store/types.js';
import { makeHandoff } from './core.js';

/** The HandoffError a promise rejects with (the test fails when it resolves or rejects otherwise). */
export async function rejection(p: Promise<unknown>): Promise<HandoffError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(HandoffError);
  return e as HandoffError;
}

export interface ContractTarget {
  /** A store over the target's backing data; each call is another instance (another replica) over the same data. */
  store(o?: { maxJtis?: number }): SessionStore;
  /** The session file as the user's server would read it (undefined when there is none). */
  sessionFile(user: string): Promise<string | undefined>;
  /** Whether several instances may write at once (the local store has one writer per directory). */
  replicas: boolean;
  close(): Promise<void>;
}

const now = () => Math.floor(Date.now() / 1000);
const handoff = makeHandoff;
const revocation = (user: string, over: Partial<Revocation> = {}): Revocation => {
  const iat = over.iat ?? now();
  return { user, jti: randomUUID(), iat, exp: iat + 300, ...over };
};

export function storeContract(name: string, make: () => Promise<ContractTarget>): void {
  describe(`SessionStore contract: ${name}`, () => {
    let t: ContractTarget;
    const opened: SessionStore[] = [];
    const store = (o?: { maxJtis?: number }) => {
      const s = t.store(o);
      opened.push(s);
      return s;
    };
    let seq = 0;
    const newUser = () => `contract${++seq}-${randomBytes(3).toString('hex')}`;

    beforeAll(async () => {
      t = await make();
    });
    afterAll(async () => {
      await Promise.all(opened.map((s) => s.close()));
      await t?.close();
    });

    test('a handoff is stored: the record, and the session file the notebook reads', async () => {
      const s = store();
      const user = newUser();
      const h = handoff(user, { query: 'SELECT 42' });
      const r = await s.accept(h);
      expect(r).toMatchObject({ outcome: 'stored', previous: undefined });
      expect(await s.get(user)).toMatchObject({ user, session: h.session, query: 'SELECT 42', connection: h.connection, iat: h.iat });
      expect(JSON.parse((await t.sessionFile(user)) ?? 'null')).toEqual({ session: h.session, query: 'SELECT 42' });
      expect(await s.get(newUser())).toBeUndefined();
      await expect(s.check()).resolves.toBeUndefined();
    });

    test('a jti is accepted once; an older iat never overwrites a newer session, and its jti is spent too', async () => {
      const s = store();
      const user = newUser();
      const first = handoff(user, { iat: now() - 10 });
      await s.accept(first);
      expect((await rejection(s.accept({ ...first, session: 'X'.repeat(32) }))).code).toBe('token_replayed');
      expect((await s.get(user))?.session).toBe(first.session);

      const older = handoff(user, { iat: now() - 20 });
      const r = await s.accept(older);
      expect(r.outcome).toBe('superseded');
      expect(r.previous?.session).toBe(first.session);
      expect((await s.get(user))?.session).toBe(first.session);
      expect((await rejection(s.accept(older))).code).toBe('token_replayed');

      const newer = handoff(user);
      expect((await s.accept(newer)).outcome).toBe('stored');
      expect((await s.get(user))?.session).toBe(newer.session);
    });

    test('expired ids are pruned; a full record refuses the next id (record_full) and forgets none, the shortest-lived neither', async () => {
      const s = store({ maxJtis: 16 });
      const user = newUser();
      await s.accept(handoff(user, { iat: now() - 4000, exp: now() - 3000 }));
      const fresh = Array.from({ length: 15 }, () => handoff(user));
      for (const h of fresh) await s.accept(h);
      expect((await s.get(user))!.jtis.map((j) => j.jti).sort()).toEqual(fresh.map((h) => h.jti).sort());
      // A hub login token: the shortest-lived id, the first a bounded list that keeps the longest-lived would drop.
      const login = { user, id: 'login:short', exp: now() + 30 };
      await s.spend(login);
      const before = await s.get(user);
      const next = handoff(user);
      expect(await rejection(s.accept(next))).toMatchObject({ code: 'record_full', status: 429 });
      expect((await rejection(s.spend({ user, id: 'login:other', exp: now() + 30 }))).code).toBe('record_full');
      expect(await s.get(user)).toEqual(before);
      expect((await rejection(s.spend(login))).code).toBe('token_replayed');
      for (const h of fresh) expect((await rejection(s.accept(h))).code).toBe('token_replayed');
      // A logout still empties the session.
      expect(await s.revoke(revocation(user))).toBe(true);
      expect((await s.get(user))?.session).toBe('');
    });

    test('revoke empties the session, keeps the connection and the watermark; older handoffs cannot restore it', async () => {
      const s = store();
      const user = newUser();
      const h = handoff(user, { iat: now() - 30 });
      await s.accept(h);
      expect(await s.revoke(revocation(user, { iat: now() - 20 }))).toBe(true);
      expect(await s.get(user)).toMatchObject({ session: '', query: '', connection: h.connection });
      expect(JSON.parse((await t.sessionFile(user)) ?? 'null')).toEqual({ session: '', query: '' });

      expect((await s.accept(handoff(user, { iat: now() - 25 }))).outcome).toBe('superseded');
      expect((await s.get(user))?.session).toBe('');
      expect(await s.revoke(revocation(user))).toBe(false);

      const rev = revocation(user);
      await s.revoke(rev);
      expect((await rejection(s.revoke(rev))).code).toBe('token_replayed');
    });

    test("a session's fingerprint is stored with it, in the record and the session file (never the id); a revocation or a handoff without one drops it, an older handoff keeps the newer's", async () => {
      const s = store();
      const user = newUser();
      const h = handoff(user, { iat: now() - 30, query: 'SELECT 1' });
      const fingerprint = 'Fp_-' + 'x'.repeat(39);
      await s.accept(h, { fingerprint });
      expect((await s.get(user))?.fingerprint).toBe(fingerprint);
      expect(JSON.parse((await t.sessionFile(user)) ?? 'null')).toEqual({ session: h.session, query: 'SELECT 1', fingerprint });
      expect((await s.accept(handoff(user, { iat: now() - 40 }), { fingerprint: 'older' })).outcome).toBe('superseded');
      expect(JSON.parse((await t.sessionFile(user)) ?? 'null')).toEqual({ session: h.session, query: 'SELECT 1', fingerprint });
      expect(await s.revoke(revocation(user, { iat: now() - 20 }))).toBe(true);
      expect((await s.get(user))?.fingerprint).toBeUndefined();
      expect(JSON.parse((await t.sessionFile(user)) ?? 'null')).toEqual({ session: '', query: '' });
      const plain = handoff(user);
      await s.accept(plain);
      expect(JSON.parse((await t.sessionFile(user)) ?? 'null')).toEqual({ session: plain.session, query: plain.query });
    });

    test('revoking a user with nothing stored leaves a watermark', async () => {
      const s = store();
      const user = newUser();
      expect(await s.revoke(revocation(user, { iat: now() - 5 }))).toBe(false);
      expect((await s.accept(handoff(user, { iat: now() - 10 }))).outcome).toBe('superseded');
      expect((await s.get(user))?.session).toBe('');
    });

    test('spend: a reservation spends a jti ahead of its parked handoff (used tokens are refused, only its resume takes it, once), a plain id is spent once; no session is stored by it', async () => {
      const s = store();
      const user = newUser();
      const h = handoff(user);
      const reserve = (x: typeof h) => s.spend({ user, id: x.jti, exp: x.exp, reservation: true });
      await reserve(h);
      expect((await s.get(user))?.session).toBe('');
      expect((await rejection(reserve(h))).code).toBe('token_replayed');
      const ticket = { user, id: 'login:n1', exp: now() + 30 };
      await s.spend(ticket);
      expect((await rejection(s.spend(ticket))).code).toBe('token_replayed');
      // Only the resume of the parked handoff takes the reservation: the same token sent again is a replay.
      expect((await rejection(s.accept(h))).code).toBe('token_replayed');
      expect((await s.accept(h, { reserved: true })).outcome).toBe('stored');
      expect(JSON.parse((await t.sessionFile(user)) ?? 'null')).toEqual({ session: h.session, query: h.query });
      expect((await rejection(s.accept(h, { reserved: true }))).code).toBe('token_replayed');
      const used = handoff(user);
      await s.accept(used);
      expect((await rejection(reserve(used))).code).toBe('token_replayed');
    });

    test('concurrent handoffs of one user (over replicas where the backend has them): each jti once, the newest iat wins', async () => {
      const writers = t.replicas ? [store(), store()] : [store()];
      const user = newUser();
      const base = now() - 100;
      const hs = Array.from({ length: 12 }, (_, i) => handoff(user, { iat: base + ((i * 5) % 12) }));
      // Every token twice at once (to each replica in turn): exactly one of each pair may succeed.
      const results = await Promise.allSettled(hs.flatMap((h, i) => [writers[i % writers.length]!.accept(h), writers[(i + 1) % writers.length]!.accept({ ...h })]));
      for (let i = 0; i < hs.length; i++) {
        const pair = [results[2 * i]!, results[2 * i + 1]!];
        expect(pair.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        const failed = pair.find((r) => r.status === 'rejected') as PromiseRejectedResult;
        expect((failed.reason as HandoffError).code).toBe('token_replayed');
      }
      const newest = hs.reduce((m, h) => (h.iat > m.iat ? h : m));
      const rec = await writers[0]!.get(user);
      expect(rec).toMatchObject({ iat: newest.iat, session: newest.session });
      expect(rec?.jtis.map((j) => j.jti).sort()).toEqual(hs.map((h) => h.jti).sort());
    });
  });
}
