import { describe, expect, test } from '@jest/globals';
import { createHash, createCipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { estimateBits } from '../../src/hub/entropy.js';
import { newTicketKey, parseTicketKeys, readTicketKeys, rotateTicketKeys, ticketKeysText, type TicketKey } from '../../src/hub/ticket-keys.js';
import { createTickets, useOnce } from '../../src/hub/tickets.js';
import { HandoffError } from '../../src/errors.js';
import type { Spend } from '../../src/store/types.js';
import { testConfig } from '../support/core.js';

const NOW = 1_800_000_000_000;
const KEY = newTicketKey();
const tickets = createTickets([{ secret: KEY }], () => NOW);
const handoff = { user: 'ann', session: 'S'.repeat(32), query: 'SELECT 1', connection: { protocol: 'https', host: 'h', port: 443, database: '' }, iat: 1, exp: 2, jti: 'j' } as const;

describe('tickets', () => {
  test('another replica (same ticket key) opens a ticket; its content is sealed, not readable', () => {
    const { ticket, nonce } = tickets.issue('parked', 'ann', 60_000, { handoff, bind: 'b' });
    const elsewhere = createTickets([{ secret: KEY }], () => NOW + 1000);
    expect(elsewhere.open('parked', ticket)).toEqual({ handoff, bind: 'b', user: 'ann', exp: NOW + 60_000, nonce });
    expect(Buffer.from(ticket, 'base64url').toString('latin1')).not.toMatch(/ann|SSSS|SELECT/);
  });

  test.each([
    ['another key', (t: string) => createTickets([{ secret: newTicketKey() }], () => NOW).open('progress', t)],
    ['another kind', (t: string) => tickets.open('login', t)],
    ['expired', (t: string) => createTickets([{ secret: KEY }], () => NOW + 60_000).open('progress', t)],
    ['one bit flipped', (t: string) => tickets.open('progress', `${t.slice(0, 20)}${t[20] === 'A' ? 'B' : 'A'}${t.slice(21)}`)],
    ['truncated', (t: string) => tickets.open('progress', t.slice(0, 30))],
    ['not base64url', (t: string) => tickets.open('progress', `${t}!`)],
    ['oversized', () => tickets.open('progress', 'A'.repeat(70_000))],
  ])('%s: does not open', (_case, open) => {
    const { ticket } = tickets.issue('progress', 'ann', 60_000, { login: true });
    expect(open(ticket)).toBeUndefined();
  });

  test('useOnce: true the first time, false after (token_replayed from the store), other store errors pass through', async () => {
    const spent = new Set<string>();
    const store = {
      async spend(s: Spend) {
        if (spent.has(s.id)) throw new HandoffError('token_replayed');
        spent.add(s.id);
      },
    };
    const t = tickets.open('hubLogin', tickets.issue('hubLogin', 'ann', 30_000, { hub: 'h' }).ticket)!;
    expect(await useOnce(store, 'hubLogin', t)).toBe(true);
    expect(await useOnce(store, 'hubLogin', t)).toBe(false);
    expect([...spent]).toEqual([`hubLogin:${t.nonce}`]);
    const down = { spend: () => Promise.reject(new HandoffError('store_unavailable')) };
    await expect(useOnce(down, 'hubLogin', t)).rejects.toMatchObject({ code: 'store_unavailable' });
  });

  test('the hub API token is no ticket key: a login ticket sealed as the old scheme did (HKDF of the API token) opens nowhere', () => {
    // What anyone who holds or guesses the API token could forge before (issue 25, item 3).
    const apiToken = randomBytes(24).toString('hex');
    const key = Buffer.from(hkdfSync('sha256', apiToken, 'omnisci-handoff', 'tickets v1', 32));
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key, iv);
    c.setAAD(Buffer.from('hubLogin'));
    const body = Buffer.concat([c.update(JSON.stringify({ hub: 'h', user: 'victim', exp: NOW + 30_000, nonce: 'n' })), c.final()]);
    const forged = Buffer.concat([iv, body, c.getAuthTag()]).toString('base64url');
    for (const secret of [KEY, apiToken]) expect(createTickets([{ secret }], () => NOW).open('hubLogin', forged)).toBeUndefined();
  });
});

describe('ticket keys', () => {
  const old = newTicketKey();
  const sealedUnder = (keys: TicketKey[], at: number) => createTickets(keys, () => at).issue('progress', 'ann', 3 * 3600_000, {}).ticket;
  const opens = (keys: TicketKey[], at: number, t: string) => createTickets(keys, () => at).open('progress', t) !== undefined;

  test('a rotation: the new key seals once every replica has it; the old one still opens until its until, then not', () => {
    const before = sealedUnder([{ secret: old }], NOW);
    const rotated = rotateTicketKeys([{ secret: old }], NOW, 7200_000, 300_000);
    expect(rotated).toEqual([{ secret: expect.any(String), from: NOW + 300_000 }, { secret: old, until: NOW + 300_000 + 7200_000 }]);
    // A replica that has not restarted yet (the old key alone) opens what the restarted ones seal before `from`…
    const early = sealedUnder(rotated, NOW + 1000);
    expect(opens([{ secret: old }], NOW + 1000, early)).toBe(true);
    // …and after `from` they seal with the new key, which the old file does not open.
    const late = sealedUnder(rotated, NOW + 301_000);
    expect(opens([{ secret: old }], NOW + 301_000, late)).toBe(false);
    expect(opens(rotated, NOW + 301_000, late)).toBe(true);
    // The old key's tickets open during the window, not after it.
    expect(opens(rotated, NOW + 7400_000, before)).toBe(true);
    expect(opens(rotated, NOW + 7500_001, before)).toBe(false);
    // The file round-trips; a second rotation drops keys that ended.
    expect(parseTicketKeys(ticketKeysText(rotated), 'f')).toEqual(rotated.map((k) => ({ ...k, ...(k.from ? { from: Math.floor(k.from / 1000) * 1000 } : {}), ...(k.until ? { until: Math.floor(k.until / 1000) * 1000 } : {}) })));
    expect(rotateTicketKeys(rotated, NOW + 8000_000, 7200_000).map((k) => k.secret)).toEqual([expect.any(String), rotated[0]!.secret]);
  });

  test.each([
    ['a short key', 'abc123', /about 15 bits of entropy; at least 128/],
    ['a long key of few characters', 'ab'.repeat(40), /about 80 bits/],
    ['a key that is the word "password" repeated', 'password'.repeat(3), /about \d+ bits/],
    ['a bad until', `${newTicketKey()}\n${newTicketKey()} until=soon`, /line 2: from= and until= take an ISO time/],
    ['only keys that seal later', `${newTicketKey()} from=2030-01-01T00:00:00Z`, /some key must seal without a from=/],
    ['no key', '# nothing\n\n', /holds no ticket key/],
  ])('%s is refused at start, naming the line, never the key', (_case, text, message) => {
    let err: unknown;
    try {
      parseTicketKeys(text, '/etc/keys');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HandoffError);
    expect((err as HandoffError).message).toMatch(message);
    for (const secret of text.split(/\s+/).filter((w) => w.length > 5 && !w.includes('='))) expect((err as HandoffError).message).not.toContain(secret);
  });

  test('strength: random tokens pass, short or simple ones do not', () => {
    expect(estimateBits(randomBytes(16).toString('hex'))).toBe(128);
    expect(estimateBits(randomBytes(32).toString('base64'))).toBeGreaterThanOrEqual(256);
    expect(estimateBits(newTicketKey())).toBeGreaterThanOrEqual(256);
    expect(estimateBits(createHash('sha256').update('x').digest('hex').slice(0, 24))).toBe(96);
    expect(estimateBits('t')).toBe(0);
    expect(estimateBits('a'.repeat(200))).toBe(0);
  });

  test('with the local store and no hub.ticketKeyFile the first start writes one random key (0600); later starts read it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'oh-keys-'));
    const config = testConfig({ store: { local: { dir } }, hub: { enabled: true, apiUrl: 'http://127.0.0.1:1/hub/api' } }, { JUPYTERHUB_API_TOKEN: 'x'.repeat(40) });
    const first = readTicketKeys(config);
    expect(first).toHaveLength(1);
    expect(statSync(join(dir, 'ticket-keys')).mode & 0o777).toBe(0o600);
    expect(readTicketKeys(config)).toEqual(first);
    // A configured file is never created: missing, it is an error that says how to make one.
    writeFileSync(join(dir, 'weak'), 'short\n');
    expect(() => readTicketKeys({ ...config, hub: { ...config.hub, ticketKeyFile: join(dir, 'missing') } })).toThrow(/cannot read the ticket keys .*missing \(ENOENT\): write them with omnisci-handoff keygen --ticket-keys/);
    expect(() => readTicketKeys({ ...config, hub: { ...config.hub, ticketKeyFile: join(dir, 'weak') } })).toThrow(/about \d+ bits of entropy/);
    expect(readFileSync(join(dir, 'ticket-keys'), 'utf8')).toMatch(/^# .*\n[A-Za-z0-9_-]{43}\n$/);
  });
});
