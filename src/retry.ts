/**
 * The one retry helper: the Kubernetes API calls and the JupyterHub API calls both retry through it
 * (bounded attempts, exponential backoff with jitter, or the delay the server asked for).
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface RetryOptions<T = unknown> {
  /** Attempts after the first. */
  retries: number;
  /** Delay before retry number `attempt` (0-based) when the failure names none. */
  backoffMs: (attempt: number) => number;
  /** Whether a failure is worth another attempt; others are thrown at once. */
  retryable: (e: unknown) => boolean;
  /** Whether a result is worth another attempt (e.g. a gateway's 502); the last one is returned when the retries run out. */
  again?: (value: T) => boolean;
  /** The delay a failure asks for (HTTP Retry-After), if any. */
  retryAfterMs?: (e: unknown) => number | undefined;
  onRetry?: (e: unknown, attempt: number) => void;
}

export async function withRetries<T>(fn: () => Promise<T>, o: RetryOptions<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    let delayMs: number;
    try {
      const value = await fn();
      if (attempt >= o.retries || !o.again?.(value)) return value;
      o.onRetry?.(value, attempt);
      delayMs = o.backoffMs(attempt);
    } catch (e) {
      if (attempt >= o.retries || !o.retryable(e)) throw e;
      o.onRetry?.(e, attempt);
      delayMs = o.retryAfterMs?.(e) ?? o.backoffMs(attempt);
    }
    await sleep(delayMs);
  }
}

/** base·2^attempt, at most `maxMs`, spread by ±50 % so that clients that failed together do not retry together. */
export const exponentialBackoff =
  (baseMs: number, maxMs: number) =>
  (attempt: number): number =>
    Math.min(baseMs * 2 ** attempt, maxMs) * (0.5 + Math.random());
