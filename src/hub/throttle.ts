/**
 * How a spawn task waits out the hub's concurrent_spawn_limit (a 429 with Retry-After) — the pacing
 * that keeps a burst from costing the hub more API calls than the spawns themselves (every call is
 * authenticated and competes with the spawns for the hub's one CPU).
 *
 * - The replica that took the handoff (`ownerThrottle`) asks to start again after the hub's
 *   Retry-After, without reading the user first: the answer to a start says the server's state.
 * - A follower (a replica showing a page of another replica's handoff, `followerThrottle`) looks
 *   now and then, so that its page sees the other replica's start: with a start request when its
 *   own is due (the hub's Retry-After, at least FOLLOWER_MS: it only covers for the other replica
 *   having gone), else with a read (the hub's Retry-After is 30–60 s by default). A replica's
 *   followers share a budget of FOLLOWER_LOOKS_PER_SECOND (FollowerPace): a few look every second,
 *   a burst's many every FOLLOWER_MS.
 */

const FOLLOWER_MS = 10_000;
const FOLLOWER_LOOKS_PER_SECOND = 5;
/** Retry-After values above this are not waited out in one go. */
const MAX_RETRY_AFTER_MS = 60_000;

/** A wait that throws when the task's deadline passes. */
export type Wait = (ms: number) => Promise<void>;

/** The next step of a throttled task: a start request, or a read of the user. */
export type Step = 'ask' | 'look';

export interface Throttle {
  /** The hub throttled a start: returns in how many ms the next start request is due (for the page's message). */
  throttled(retryAfterSeconds: number): number;
  /** Waits this task's turn; resolves which step is next. */
  pause(): Promise<Step>;
  /** Whether a start request is due now. */
  due(): boolean;
}

/** The throttled followers of one replica, sharing one budget of hub calls. */
export class FollowerPace {
  private waiting = 0;

  /** Waits one follower's turn: between 1 s and FOLLOWER_MS, longer the more followers wait. */
  async pause(wait: Wait): Promise<void> {
    const ms = Math.min(FOLLOWER_MS, Math.max(1000, (this.waiting * 1000) / FOLLOWER_LOOKS_PER_SECOND));
    this.waiting++;
    try {
      await wait(ms);
    } finally {
      this.waiting--;
    }
  }
}

export function ownerThrottle(wait: Wait): Throttle {
  let againMs = 0;
  return {
    throttled: (retryAfterSeconds) => (againMs = Math.min(retryAfterSeconds * 1000, MAX_RETRY_AFTER_MS)),
    async pause() {
      await wait(againMs);
      return 'ask';
    },
    due: () => true,
  };
}

export function followerThrottle(pace: FollowerPace, wait: Wait): Throttle {
  // The follower's next start request not before this (performance.now()).
  let startAt = 0;
  return {
    throttled(retryAfterSeconds) {
      const againMs = Math.max(Math.min(retryAfterSeconds * 1000, MAX_RETRY_AFTER_MS), FOLLOWER_MS);
      startAt = performance.now() + againMs;
      return againMs;
    },
    async pause() {
      await pace.pause(wait);
      // Its own start due (within half a second): the start request says the state; else read it.
      return startAt - performance.now() < 500 ? 'ask' : 'look';
    },
    due: () => performance.now() >= startAt,
  };
}
