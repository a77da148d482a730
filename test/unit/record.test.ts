/** The store's pure update rules (src/store/record.ts), as tables: every backend applies exactly these. */
import { describe, expect, test } from '@jest/globals';
import type { Handoff, Revocation } from '../../src/handoff/types.js';
import { applyHandoff, applySpend, applyRevoke, type ApplyOptions } from '../../src/store/record.js';
import type { SessionRecord } from '../../src/store/types.js';

const NOW = 1_800_000_000;
const o: ApplyOptions = { maxJtis: 3, now: NOW, clockTolerance: 30 };
const conn = { protocol: 'https', host: 'h', port: 443, database: '' } as const;

const h = (jti: string, iat: number, over: Partial<Handoff> = {}): Handoff => ({
  user: 'u',
  jti,
  iat,
  exp: iat + 300,
  session: `s-${jti}`,
  query: `q-${jti}`,
  connection: conn,
  ...over,
});
const rec = (iat: number, jtis: [string, number][], session = 'old'): SessionRecord => ({
  user: 'u',
  session,
  query: 'q',
  connection: conn,
  iat,
  jtis: jtis.map(([jti, until]) => ({ jti, until })),
  updatedAt: 0,
});
const rev = (jti: string, iat: number): Revocation => ({ user: 'u', jti, iat, exp: iat + 300 });

describe('applyHandoff', () => {
  test.each([
    // [case, current record, handoff, outcome, stored session, remembered jtis (in the order they came)]
    ['first handoff', undefined, h('a', NOW), 'stored', 's-a', ['a']],
    ['newer iat replaces', rec(NOW - 10, [['x', NOW + 100]]), h('a', NOW), 'stored', 's-a', ['x', 'a']],
    ['same iat replaces (later wins a tie)', rec(NOW, [['x', NOW + 100]]), h('a', NOW), 'stored', 's-a', ['x', 'a']],
    ['older iat is superseded, its jti still spent', rec(NOW, [['x', NOW + 100]]), h('a', NOW - 5), 'superseded', 'old', ['x', 'a']],
    ['expired jtis are pruned', rec(NOW - 10, [['x', NOW - 1]]), h('a', NOW), 'stored', 's-a', ['a']],
    ['a jti stays until exp + tolerance', rec(NOW - 10, [['x', NOW]]), h('a', NOW), 'stored', 's-a', ['x', 'a']],
    [
      'a full record with an expired id: the expired one makes room',
      rec(NOW - 10, [['x', NOW + 50], ['y', NOW - 1], ['z', NOW + 10]]),
      h('a', NOW),
      'stored',
      's-a',
      ['x', 'z', 'a'],
    ],
  ] as const)('%s', (_case, current, handoff, outcome, session, jtis) => {
    const r = applyHandoff(current, handoff, o);
    expect(r.outcome).toBe(outcome);
    expect(r.previous).toBe(current);
    expect(r.record.session).toBe(session);
    expect(r.record.jtis.map((j) => j.jti)).toEqual(jtis);
    expect(r.record.updatedAt).toBe(NOW * 1000);
    if (outcome === 'stored') expect(r.record).toMatchObject({ iat: handoff.iat, query: handoff.query, connection: handoff.connection });
    else expect(r.record.iat).toBe(current!.iat);
    // The jti is remembered until the token's exp plus the clock tolerance.
    expect(r.record.jtis.find((j) => j.jti === handoff.jti)?.until ?? handoff.exp + o.clockTolerance).toBe(handoff.exp + o.clockTolerance);
  });

  test.each([
    ['a live jti is a replay', [['a', NOW + 1]], true],
    ['a jti at its last second is a replay', [['a', NOW]], true],
    ['an expired jti is not (the token itself no longer verifies)', [['a', NOW - 1]], false],
  ] as const)('%s', (_case, jtis, replay) => {
    const run = () => applyHandoff(rec(NOW - 10, jtis.map(([j, u]) => [j, u])), h('a', NOW), o);
    if (replay) expect(run).toThrow(expect.objectContaining({ code: 'token_replayed' }));
    else expect(run().outcome).toBe('stored');
  });
});

describe('applyRevoke', () => {
  test.each([
    // [case, current, revocation, revoked, session after, iat after]
    ['revokes a stored session', rec(NOW - 10, []), rev('r', NOW), true, '', NOW],
    ['an older revocation leaves a newer session', rec(NOW, []), rev('r', NOW - 5), false, 'old', NOW],
    ['an already empty session is not revoked again', rec(NOW - 10, [], ''), rev('r', NOW), false, '', NOW],
    ['nothing stored: a watermark with an empty session', undefined, rev('r', NOW), false, '', NOW],
  ] as const)('%s', (_case, current, r, revoked, session, iat) => {
    const out = applyRevoke(current, r, o);
    expect(out.revoked).toBe(revoked);
    expect(out.record).toMatchObject({ session, iat });
    expect(out.record.jtis.map((j) => j.jti)).toContain('r');
    if (current) expect(out.record.connection).toEqual(current.connection);
  });

  test('a revocation after it the handoffs older than it are superseded', () => {
    const { record } = applyRevoke(rec(NOW - 10, []), rev('r', NOW), o);
    expect(applyHandoff(record, h('a', NOW - 1), o)).toMatchObject({ outcome: 'superseded', record: { session: '' } });
    expect(applyHandoff(record, h('b', NOW + 1), o)).toMatchObject({ outcome: 'stored', record: { session: 's-b' } });
  });

  test('a replayed revocation is refused', () => {
    expect(() => applyRevoke(rec(NOW, [['r', NOW + 100]]), rev('r', NOW), o)).toThrow(expect.objectContaining({ code: 'token_replayed' }));
  });
});

const reservation = (jti: string) => ({ user: 'u', id: jti, exp: NOW + 300, reservation: true });

describe('applySpend', () => {
  test('spends the jti ahead of its handoff and changes nothing else; nothing stored yet gives an empty record', () => {
    const current = rec(NOW - 10, [['x', NOW + 100]]);
    const r = applySpend(current, reservation('a'), o);
    expect(r).toMatchObject({ session: 'old', iat: NOW - 10, connection: conn });
    expect(r.jtis).toEqual(expect.arrayContaining([{ jti: 'a', until: NOW + 300 + o.clockTolerance, reserved: true }, { jti: 'x', until: NOW + 100 }]));
    expect(applySpend(undefined, reservation('a'), o)).toMatchObject({ user: 'u', session: '', iat: 0 });
  });

  test.each([
    ['a reserved jti cannot be reserved again', (r: SessionRecord) => applySpend(r, reservation('a'), o)],
    ['a reserved jti is no revocation either', (r: SessionRecord) => applyRevoke(r, rev('a', NOW), o)],
  ] as const)('%s', (_case, again) => {
    const reserved = applySpend(rec(NOW - 10, []), reservation('a'), o);
    expect(() => again(reserved)).toThrow(expect.objectContaining({ code: 'token_replayed' }));
  });

  test('only the resume of the parked handoff takes its reservation: the same token accepted otherwise is a replay', () => {
    const reserved = applySpend(rec(NOW - 10, []), reservation('a'), o);
    expect(() => applyHandoff(reserved, h('a', NOW), o)).toThrow(expect.objectContaining({ code: 'token_replayed' }));
    expect(applyHandoff(reserved, h('a', NOW), o, true)).toMatchObject({ outcome: 'stored', record: { session: 's-a' } });
    // `reserved` takes only a reservation: a jti spent otherwise stays a replay.
    const spent = applySpend(rec(NOW - 10, []), { user: 'u', id: 'a', exp: NOW + 300 }, o);
    expect(() => applyHandoff(spent, h('a', NOW), o, true)).toThrow(expect.objectContaining({ code: 'token_replayed' }));
  });

  test('its own handoff takes the reservation once; the same jti after that is a replay', () => {
    const reserved = applySpend(rec(NOW - 10, []), reservation('a'), o);
    const taken = applyHandoff(reserved, h('a', NOW), o, true);
    expect(taken).toMatchObject({ outcome: 'stored', record: { session: 's-a' } });
    expect(taken.record.jtis.filter((j) => j.jti === 'a')).toEqual([{ jti: 'a', until: NOW + 300 + o.clockTolerance }]);
    expect(() => applyHandoff(taken.record, h('a', NOW), o, true)).toThrow(expect.objectContaining({ code: 'token_replayed' }));
    // A spent (not reserved) jti cannot be reserved, nor spent again as a plain id.
    expect(() => applySpend(taken.record, reservation('a'), o)).toThrow(expect.objectContaining({ code: 'token_replayed' }));
    expect(() => applySpend(taken.record, { user: 'u', id: 'a', exp: NOW + 30 }, o)).toThrow(expect.objectContaining({ code: 'token_replayed' }));
  });
});

describe('a full record (store.maxJtis live ids)', () => {
  // Three live ids of very different lifetimes: a progress page's login (long), a token (5 min), a hub login token (short).
  const full = () => rec(NOW - 10, [['progress:p', NOW + 1200], ['t', NOW + 330], ['login:l', NOW + 40]]);
  const replay = expect.objectContaining({ code: 'token_replayed' });

  test.each([
    ['a handoff', (r: SessionRecord) => applyHandoff(r, h('a', NOW), o)],
    ['a spend', (r: SessionRecord) => applySpend(r, { user: 'u', id: 'login:new', exp: NOW + 30 }, o)],
    ['a reservation', (r: SessionRecord) => applySpend(r, reservation('a'), o)],
  ] as const)('refuses %s with record_full and forgets no live id, the shortest-lived neither', (_case, add) => {
    const r = full();
    expect(() => add(r)).toThrow(expect.objectContaining({ code: 'record_full', status: 429 }));
    for (const { jti } of r.jtis) expect(() => applySpend(r, { user: 'u', id: jti, exp: NOW + 30 }, o)).toThrow(replay);
  });

  test('the reservation a parked handoff holds is taken even when the record is full: it takes no new room', () => {
    const r = applySpend(rec(NOW - 10, [['x', NOW + 100], ['y', NOW + 100]]), reservation('a'), o);
    expect(applyHandoff(r, h('a', NOW), o, true).record.jtis.map((j) => j.jti)).toEqual(['x', 'y', 'a']);
  });

  test('a revocation still revokes (its jti remembered only when there is room)', () => {
    const out = applyRevoke(full(), rev('r', NOW), o);
    expect(out).toMatchObject({ revoked: true, record: { session: '', iat: NOW } });
    expect(out.record.jtis.map((j) => j.jti)).toEqual(['progress:p', 't', 'login:l']);
  });

  test('ids are refused only while they live: once one expires there is room again', () => {
    const later = { ...o, now: NOW + 41 };
    expect(applySpend(full(), { user: 'u', id: 'login:new', exp: NOW + 71 }, later).jtis.map((j) => j.jti)).toEqual(['progress:p', 't', 'login:new']);
  });
});
