/**
 * What a test file needs from the machine (root, a venv, containerd, …), checked in one place.
 *
 * Under CI (`CI` set and not `false`/`0`) a missing prerequisite fails the run: `.ci/run` installs
 * everything the suite needs (scripts/test-deps.sh), so a missing one is a defect of the setup, never
 * a reason to report green. Elsewhere (a developer's machine without root, say) the tests that need it
 * are skipped with a message saying what is missing and how to get it.
 */
import { describe } from '@jest/globals';

/** Whether `env` says CI (`CI` set, and not `false` or `0`). */
export const inCI = (env: NodeJS.ProcessEnv = process.env): boolean => !['', '0', 'false'].includes((env.CI ?? '').toLowerCase());

/**
 * `missing`: why the prerequisite is absent, undefined when it is there; `install`: how to get it.
 * Returns `describe` when it is there; under CI throws (the file fails to load, naming both);
 * otherwise warns and returns `describe.skip`.
 */
export function requirePrerequisite(missing: string | undefined, install: string, env: NodeJS.ProcessEnv = process.env): typeof describe | typeof describe.skip {
  if (missing === undefined) return describe;
  const what = `${missing} (${install})`;
  if (inCI(env)) throw new Error(`missing prerequisite under CI, which must run every test: ${what}`);
  console.warn(`skipped, missing prerequisite: ${what}`);
  return describe.skip;
}

export const notRoot = (why: string): string | undefined => (process.getuid?.() === 0 ? undefined : `not root (${why})`);
