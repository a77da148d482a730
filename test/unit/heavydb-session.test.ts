/**
 * Header mode's trust decision (src/heavydb/session.ts) with a scripted HeavyDB and a clock: how long
 * a confirmation is reused, what ends it early, and which HeavyDB user names may become hub users.
 */
import { describe, expect, test } from '@jest/globals';
import type { HeavyDbClient, SessionInfo } from '../../src/heavydb/client.js';
import { HandoffError } from '../../src/errors.js';
import { createSessionCheck } from '../../src/heavydb/session.js';
import { randomSessionId, testConfig } from '../support/core.js';

/** HeavyDB as the check sees it: sessions of users, and who holds the role. */
function heavydb() {
  const sessions = new Map<string, string>();
  const roles = new Set<string>();
  const calls: string[] = [];
  const client: Pick<HeavyDbClient, 'sessionInfo' | 'hasRole'> = {
    async sessionInfo(session) {
      calls.push('get_session_info');
      const user = sessions.get(session);
      if (user === undefined) throw new HandoffError('heavydb_session_invalid', 'Session not valid or expired');
      return { user, database: 'heavyai', isSuper: false } as SessionInfo;
    },
    async hasRole(_session, grantee) {
      calls.push('has_role');
      return roles.has(grantee);
    },
  };
  const login = (user: string) => {
    const id = randomSessionId();
    sessions.set(id, user);
    return id;
  };
  return { client, sessions, roles, calls, login };
}

const code = (p: Promise<unknown>) =>
  p.then(
    () => 'accepted',
    (e: unknown) => (e instanceof HandoffError ? e.code : String(e)),
  );

describe('the cache of HeavyDB confirmations', () => {
  test('is short by default (5 s) and bounded (at most 60 s): the window in which an ended session is still accepted', () => {
    expect(testConfig().heavydb.cacheSeconds).toBe(5);
    expect(() => testConfig({ heavydb: { cacheSeconds: 61 } })).toThrow(/cacheSeconds/);
  });

  test('a confirmation is reused within cacheSeconds only: an ended session is refused once it expires', async () => {
    const db = heavydb();
    let now = 1_000_000;
    const check = createSessionCheck(testConfig(), db.client, () => now);
    const s = db.login('alice');
    expect((await check.check(s)).user).toBe('alice');
    db.sessions.delete(s); // logged out of Immerse
    now += 4_999;
    expect(await code(check.check(s))).toBe('accepted');
    now += 1;
    expect(await code(check.check(s))).toBe('heavydb_session_invalid');
    expect(db.calls).toEqual(['get_session_info', 'get_session_info']);
  });

  test("a refusal of a user's role drops every cached confirmation of that user at once", async () => {
    const db = heavydb();
    const now = 1_000_000;
    const check = createSessionCheck(testConfig({ heavydb: { requireRole: 'omnisci_jupyter', cacheSeconds: 60 } }), db.client, () => now);
    db.roles.add('bob');
    const first = db.login('bob');
    const other = db.login('carl');
    db.roles.add('carl');
    expect(await code(check.check(first))).toBe('accepted');
    expect(await code(check.check(other))).toBe('accepted');
    db.roles.delete('bob'); // the admin revokes bob's role
    // bob's next login (another session) is refused by HeavyDB ...
    expect(await code(check.check(db.login('bob')))).toBe('heavydb_role_missing');
    // ... and from then on his first session is too, within the cache window; carl's stays confirmed.
    expect(await code(check.check(first))).toBe('heavydb_role_missing');
    const calls = db.calls.length;
    expect(await code(check.check(other))).toBe('accepted');
    expect(db.calls.length).toBe(calls);
  });
});

describe('HeavyDB user names: case-sensitive, so never folded onto another hub user', () => {
  test.each([
    ['carol', 'carol'],
    ['carol@example.com', 'carol@example.com'],
    ['Carol', 'bad_username'],
    ['\u212Aim', 'bad_username'], // KELVIN SIGN + "im": lower-cases to "kim"
    ['ｋｉｍ', 'bad_username'], // full-width: NFKC makes it "kim"
  ])('%j → %s', async (name, expected) => {
    const db = heavydb();
    const check = createSessionCheck(testConfig(), db.client);
    const out = await check.check(db.login(name)).then(
      (c) => c.user,
      (e: unknown) => (e as HandoffError).code,
    );
    expect(out).toBe(expected);
  });

  test('with user.lowercase off a mixed-case name stays itself (nothing is folded, nothing merges)', async () => {
    const db = heavydb();
    const check = createSessionCheck(testConfig({ user: { lowercase: false } }), db.client);
    expect((await check.check(db.login('Carol'))).user).toBe('Carol');
  });
});
