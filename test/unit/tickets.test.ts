import { describe, expect, test } from '@jest/globals';
import { createTickets, useOnce } from '../../src/hub/tickets.js';
import { HandoffError } from '../../src/errors.js';
import type { Spend } from '../../src/store/types.js';

const NOW = 1_800_000_000_000;
const tickets = createTickets('hub-api-token-of-the-service', () => NOW);
const handoff = { user: 'ann', session: 'S'.repeat(32), query: 'SELECT 1', connection: { protocol: 'https', host: 'h', port: 443, database: '' }, iat: 1, exp: 2, jti: 'j' } as const;

describe('tickets', () => {
  test('another replica (same hub API token) opens a ticket; its content is sealed, not readable', () => {
    const { ticket, nonce } = tickets.issue('parked', 'ann', 60_000, { handoff, bind: 'b' });
    const elsewhere = createTickets('hub-api-token-of-the-service', () => NOW + 1000);
    expect(elsewhere.open('parked', ticket)).toEqual({ handoff, bind: 'b', user: 'ann', exp: NOW + 60_000, nonce });
    expect(Buffer.from(ticket, 'base64url').toString('latin1')).not.toMatch(/ann|SSSS|SELECT/);
  });

  test.each([
    ['another key (a different hub API token)', (t: string) => createTickets('another-token', () => NOW).open('progress', t)],
    ['another kind', (t: string) => tickets.open('login', t)],
    ['expired', (t: string) => createTickets('hub-api-token-of-the-service', () => NOW + 60_000).open('progress', t)],
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
    const t = tickets.open('login', tickets.issue('login', 'ann', 30_000, {}).ticket)!;
    expect(await useOnce(store, 'login', t)).toBe(true);
    expect(await useOnce(store, 'login', t)).toBe(false);
    expect([...spent]).toEqual([`login:${t.nonce}`]);
    const down = { spend: () => Promise.reject(new HandoffError('store_unavailable')) };
    await expect(useOnce(down, 'login', t)).rejects.toMatchObject({ code: 'store_unavailable' });
  });
});
