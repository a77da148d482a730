/**
 * What a test file needs from the machine (root, a venv, containerd, …), checked in one place.
 *
 * A missing prerequisite fails the file, naming what is missing and how to get it: `npm test` and
 * `.ci/run` install everything the suite needs (scripts/test-deps.sh), so a missing one is a defect of
 * the setup, never a reason to report green. No test is ever skipped for it.
 */
import { describe } from '@jest/globals';

/** `missing`: why the prerequisite is absent, undefined when it is there; `install`: how to get it. Returns `describe`, or throws. */
export function requirePrerequisite(missing: string | undefined, install: string): typeof describe {
  if (missing === undefined) return describe;
  throw new Error(`missing prerequisite (the suite runs every test): ${missing} (${install})`);
}

export const notRoot = (why: string): string | undefined => (process.getuid?.() === 0 ? undefined : `not root (${why})`);
