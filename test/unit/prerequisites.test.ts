/** The suite's prerequisite check (test/support/prerequisites.ts): under CI a missing prerequisite fails, elsewhere it skips. */
import { describe, expect, jest, test } from '@jest/globals';
import { requirePrerequisite } from '../support/prerequisites.js';

describe('requirePrerequisite', () => {
  test('present: the tests run', () => {
    expect(requirePrerequisite(undefined, 'how', { CI: 'true' })).toBe(describe);
    expect(requirePrerequisite(undefined, 'how', {})).toBe(describe);
  });

  test('missing under CI: fails, naming what and how to install it', () => {
    for (const CI of ['true', '1', 'yes'])
      expect(() => requirePrerequisite('not root', 'run as root', { CI })).toThrow('missing prerequisite under CI, which must run every test: not root (run as root)');
  });

  test('missing elsewhere: skipped with a warning saying how to install it', () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      for (const CI of [undefined, '', 'false', '0']) expect(requirePrerequisite('no venv', 'bash scripts/deps/x.sh', CI === undefined ? {} : { CI })).toBe(describe.skip);
      expect(warn).toHaveBeenCalledWith('skipped, missing prerequisite: no venv (bash scripts/deps/x.sh)');
    } finally {
      warn.mockRestore();
    }
  });
});
