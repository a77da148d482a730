import { describeCause } from '../errors.js';

/**
 * One doctor check's outcome and how it prints. `ok` is true (passed), false (failed: `fix` says what
 * to change) or null (could not be checked from here, e.g. no permission to read it: `fix` says how
 * to make it checkable). Details never hold secrets: no token, key or session is ever printed.
 */
export interface Check {
  check: string;
  ok: boolean | null;
  detail: string;
  fix: string;
}

export const pass = (check: string, detail: string): Check => ({ check, ok: true, detail, fix: '' });
export const fail = (check: string, detail: string, fix: string): Check => ({ check, ok: false, detail, fix });
export const unknown = (check: string, detail: string, fix: string): Check => ({ check, ok: null, detail: `cannot check (${detail})`, fix });

const SYMBOL = { true: '✓', false: '✗', null: '?' } as const;

/** `✓ check: detail`, or `✗ check: detail — fix: …` (`?` for a check that could not be made). */
export function formatCheck(c: Check): string {
  return `${SYMBOL[String(c.ok) as keyof typeof SYMBOL]} ${c.check}: ${c.detail}${c.ok === true || !c.fix ? '' : ` — fix: ${c.fix}`}`;
}

/** 0 every check passed; 1 one failed; 2 the config is unusable (nothing else was checked); 3 none failed but some could not be checked. */
export function exitCode(checks: Check[]): number {
  if (checks.some((c) => c.check === 'config' && c.ok === false)) return 2;
  if (checks.some((c) => c.ok === false)) return 1;
  if (checks.some((c) => c.ok === null)) return 3;
  return 0;
}

/** A bounded GET/POST with the outcome as data: the reply, or why there was none (never an error's message). */
export async function request(
  fetchImpl: typeof fetch,
  url: string,
  init: RequestInit & { timeoutMs: number },
): Promise<{ status: number; headers: Headers; text: string } | { error: string }> {
  const { timeoutMs, ...rest } = init;
  try {
    const res = await fetchImpl(url, { ...rest, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, headers: res.headers, text: await res.text() };
  } catch (e) {
    return { error: describeCause(e) };
  }
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
