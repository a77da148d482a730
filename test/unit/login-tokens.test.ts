import { describe, expect, test } from '@jest/globals';
import { HandoffError } from '../../src/errors.js';
import { createLoginTokens } from '../../src/hub/login.js';
import { newTicketKey } from '../../src/hub/ticket-keys.js';
import { bindingOf, createTickets, randomValue } from '../../src/hub/tickets.js';
import type { Spend } from '../../src/store/types.js';

/** The store's single use, shared by every "replica" below. */
const spent = new Set<string>();
const store = {
  async spend(s: Spend) {
    if (spent.has(s.id)) throw new HandoffError('token_replayed');
    spent.add(s.id);
  },
};
const keys = [{ secret: newTicketKey() }];
/** Two replicas: same keys, same store, nothing else shared. */
const [a, b] = [0, 1].map(() => createLoginTokens(createTickets(keys), store, 30_000)) as [ReturnType<typeof createLoginTokens>, ReturnType<typeof createLoginTokens>];

/** A browser: its binding cookie at the service and its cookie at the hub's login. */
const browser = () => {
  const ohb = randomValue();
  return { bind: bindingOf(ohb), boundTo: (bind: string) => bind === bindingOf(ohb), hubCookie: randomValue() };
};
const codeOf = (p: Promise<unknown>) => p.then(() => 'ok', (e: unknown) => (e instanceof HandoffError ? e.code : String(e)));
const returnTicket = (r: Awaited<ReturnType<typeof a.exchange>>) => {
  if (!('returnTicket' in r)) throw new Error('expected the way back');
  return r.returnTicket;
};

describe('hub login tokens are bound to the browser they were issued to', () => {
  test('the issuing browser: the first token earns the way back, the proof the final token, which logs in once — across replicas', async () => {
    const me = browser();
    const first = a.issue('ann', me.bind, '/user/ann/lab?omnisci&reset');
    const back = returnTicket(await b.exchange(first, me.hubCookie));
    const { token, next } = await a.prove(back, me.boundTo);
    expect(next).toBe('/user/ann/lab?omnisci&reset');
    expect(await b.exchange(token, me.hubCookie)).toEqual({ user: 'ann' });
    expect(await codeOf(a.exchange(token, me.hubCookie))).toBe('login_token_invalid');
    expect(await codeOf(b.prove(back, me.boundTo))).toBe('login_token_invalid');
    // The first token is used up too: another way back made from it leads nowhere.
    expect(await codeOf(a.prove(returnTicket(await a.exchange(first, me.hubCookie)), me.boundTo))).toBe('login_token_invalid');
  });

  test('the first URL in another browser: it reaches the service without the binding cookie and gets no further; the owner still can', async () => {
    const owner = browser();
    const victim = browser();
    const first = a.issue('mallory', owner.bind, '/user/mallory/lab?omnisci&reset');
    const back = returnTicket(await a.exchange(first, victim.hubCookie));
    expect(await codeOf(b.prove(back, victim.boundTo))).toBe('login_browser_mismatch');
    const mine = returnTicket(await b.exchange(first, owner.hubCookie));
    const { token } = await a.prove(mine, owner.boundTo);
    expect(await a.exchange(token, owner.hubCookie)).toEqual({ user: 'mallory' });
  });

  test('the final URL in another browser: its hub cookie is not the one the token was made for; the token is not used up', async () => {
    const owner = browser();
    const first = b.issue('mallory', owner.bind, '/x');
    const { token } = await b.prove(returnTicket(await a.exchange(first, owner.hubCookie)), owner.boundTo);
    for (const cookie of [browser().hubCookie, undefined, 'short']) expect(await codeOf(a.exchange(token, cookie))).toBe('login_browser_mismatch');
    expect(await b.exchange(token, owner.hubCookie)).toEqual({ user: 'mallory' });
  });

  test('a first token without a hub cookie, a made-up token, and each kind where another is expected: refused', async () => {
    const me = browser();
    const first = a.issue('ann', me.bind, '/x');
    expect(await codeOf(a.exchange(first, undefined))).toBe('login_browser_mismatch');
    expect(await codeOf(a.exchange('A'.repeat(80), me.hubCookie))).toBe('login_token_invalid');
    const back = returnTicket(await a.exchange(first, me.hubCookie));
    // The way back is no login token, and the first token is no way back.
    expect(await codeOf(a.exchange(back, me.hubCookie))).toBe('login_token_invalid');
    expect(await codeOf(a.prove(first, me.boundTo))).toBe('login_token_invalid');
  });
});
