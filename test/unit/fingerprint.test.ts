/**
 * The session fingerprint (src/hub/fingerprint.ts) and where it goes: the lab URL of a handoff to a
 * running server (src/hub/lab-url.ts) and the session file (src/notebook/outputs.ts), in the format
 * omnisci-handoff-jupyter accepts (base64url, at most 128 characters).
 */
import { labUrl } from '../../src/hub/lab-url.js';
import { sessionFingerprint } from '../../src/hub/fingerprint.js';
import { newTicketKey, type TicketKey } from '../../src/hub/ticket-keys.js';
import { sessionFileContent } from '../../src/notebook/outputs.js';
import { randomSessionId } from '../support/core.js';

const FORMAT = /^[A-Za-z0-9_-]{1,128}$/; // omnisci_handoff_jupyter.session._FINGERPRINT
const keys: TicketKey[] = [{ secret: newTicketKey() }];

test('a keyed hash of the session and its query: base64url within the notebook side\'s bound, the same on every replica, never the id', () => {
  const session = randomSessionId();
  const fp = sessionFingerprint(keys)(session, 'SELECT 1');
  expect(fp).toMatch(FORMAT);
  expect(fp).toHaveLength(43);
  expect(fp).not.toContain(session);
  // Another replica (another instance over the same keys) computes the same.
  expect(sessionFingerprint([...keys])(session, 'SELECT 1')).toBe(fp);
  // Another session, another query, another key: another fingerprint.
  expect(sessionFingerprint(keys)(randomSessionId(), 'SELECT 1')).not.toBe(fp);
  expect(sessionFingerprint(keys)(session, 'SELECT 2')).not.toBe(fp);
  expect(sessionFingerprint([{ secret: newTicketKey() }])(session, 'SELECT 1')).not.toBe(fp);
  // No ambiguity between where the session ends and the query begins.
  expect(sessionFingerprint(keys)('ab', 'c')).not.toBe(sessionFingerprint(keys)('a', 'bc'));
});

test('the key is the ticket key that seals now: a rotated-in key takes over from its from=', () => {
  const now = Date.now();
  const rotated: TicketKey[] = [{ secret: newTicketKey(), from: now + 60_000 }, { ...keys[0]!, until: now + 120_000 }];
  const session = randomSessionId();
  expect(sessionFingerprint(rotated, () => now)(session, '')).toBe(sessionFingerprint(keys)(session, ''));
  expect(sessionFingerprint(rotated, () => now + 61_000)(session, '')).toBe(sessionFingerprint([{ secret: rotated[0]!.secret }])(session, ''));
});

test('the lab URL carries it as omnisci-handoff=, the bare omnisci and reset params kept, before any fragment', () => {
  const redirect = { hubPublicUrl: 'https://hub.example.com', labUrlTemplate: '{hubPublicUrl}/user/{username}/lab?omnisci&reset' };
  expect(labUrl(redirect, 'ann')).toBe('https://hub.example.com/user/ann/lab?omnisci&reset');
  expect(labUrl(redirect, 'ann', '', 'Fp_-9')).toBe('https://hub.example.com/user/ann/lab?omnisci&reset&omnisci-handoff=Fp_-9');
  const fp = sessionFingerprint(keys)(randomSessionId(), '');
  expect(new URL(labUrl(redirect, 'a b', '', fp)).searchParams.get('omnisci-handoff')).toBe(fp);
  expect(labUrl({ ...redirect, labUrlTemplate: '{hubPublicUrl}/user/{username}/lab/tree/x.ipynb?omnisci&reset#top' }, 'ann', '', 'F')).toBe(
    'https://hub.example.com/user/ann/lab/tree/x.ipynb?omnisci&reset&omnisci-handoff=F#top',
  );
  expect(labUrl({ ...redirect, labUrlTemplate: '{hubPublicUrl}/user/{username}/lab' }, 'ann', '', 'F')).toBe('https://hub.example.com/user/ann/lab?omnisci-handoff=F');
  expect(labUrl({ ...redirect, labUrlTemplate: '{hubPublicUrl}/user/{username}/lab?' }, 'ann', '', 'F')).toBe('https://hub.example.com/user/ann/lab?omnisci-handoff=F');
});

test('the session file carries it in the json format only', () => {
  const session = randomSessionId();
  expect(JSON.parse(sessionFileContent({ session, query: 'SELECT 1', fingerprint: 'F' }, 'json'))).toEqual({ session, query: 'SELECT 1', fingerprint: 'F' });
  expect(JSON.parse(sessionFileContent({ session, query: '' }, 'json'))).toEqual({ session, query: '' });
  expect(sessionFileContent({ session, query: '', fingerprint: 'F' }, 'text')).toBe(`${session}\n`);
});
