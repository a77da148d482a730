/** The doctor's report (src/doctor/check.ts), its key/algorithm matching, and the local page's session mask. */
import { describe, expect, test } from '@jest/globals';
import type { JWK } from 'jose';
import { exitCode, fail, formatCheck, pass, unknown, type Check } from '../../src/doctor/check.js';
import { keyFits } from '../../src/doctor/keys.js';
import { maskSession } from '../../src/web/landing/local.js';

describe('doctor report', () => {
  test('one line per check: ✓ without a fix, ✗ and ? with theirs', () => {
    expect(formatCheck(pass('hub: scopes', 'servers'))).toBe('✓ hub: scopes: servers');
    expect(formatCheck(fail('hub: scopes', 'the token lacks admin:users', 'add it'))).toBe('✗ hub: scopes: the token lacks admin:users — fix: add it');
    expect(formatCheck(unknown('webhook: tls', 'no permission to read it', 'use an admin kubeconfig'))).toBe(
      '? webhook: tls: cannot check (no permission to read it) — fix: use an admin kubeconfig',
    );
    expect(unknown('x', 'y', 'z')).toEqual({ check: 'x', ok: null, detail: 'cannot check (y)', fix: 'z' });
  });

  test.each<[string, Check[], number]>([
    ['all passed', [pass('a', ''), pass('b', '')], 0],
    ['one failed', [pass('a', ''), fail('b', '', ''), unknown('c', '', '')], 1],
    ['only unknowns besides passes', [pass('a', ''), unknown('c', '', '')], 3],
    ['the config failed', [fail('config', '', '')], 2],
  ])('exit code: %s', (_name, checks, code) => {
    expect(exitCode(checks)).toBe(code);
  });
});

describe('which key verifies which algorithm', () => {
  const ec256: JWK = { kty: 'EC', crv: 'P-256' };
  test.each<[string, JWK, boolean]>([
    ['ES256', ec256, true],
    ['ES384', ec256, false],
    ['ES384', { kty: 'EC', crv: 'P-384' }, true],
    ['RS256', { kty: 'RSA' }, true],
    ['PS256', { kty: 'RSA' }, true],
    ['PS256', { kty: 'RSA', alg: 'RS256' }, false],
    ['EdDSA', { kty: 'OKP', crv: 'Ed25519' }, true],
    ['EdDSA', { kty: 'OKP', crv: 'X25519' }, false],
    ['ES256', { ...ec256, use: 'enc' }, false],
    ['HS256', { kty: 'oct' }, false],
  ])('%s with %j: %s', (alg, jwk, fits) => {
    expect(keyFits(alg as Parameters<typeof keyFits>[0], jwk)).toBe(fits);
  });
});

test('the local page shows a session id masked but for its last 4 characters (short ids wholly)', () => {
  expect(maskSession('ABCDEFGHIJKLMNOPQRSTUVWXYZ012345')).toBe(`${'•'.repeat(28)}2345`);
  expect(maskSession('short-id')).toBe('••••••••');
  expect(maskSession('')).toBe('');
});
