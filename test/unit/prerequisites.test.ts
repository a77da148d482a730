/** The suite's prerequisite check (test/support/prerequisites.ts): a missing prerequisite fails the file. */
import { describe, expect, test } from '@jest/globals';
import { requirePrerequisite } from '../support/prerequisites.js';

describe('requirePrerequisite', () => {
  test('present: the tests run', () => {
    expect(requirePrerequisite(undefined, 'how')).toBe(describe);
  });

  test('missing: fails, naming what and how to install it, with or without CI', () => {
    expect(() => requirePrerequisite('not root', 'run as root')).toThrow('missing prerequisite (the suite runs every test): not root (run as root)');
  });
});
