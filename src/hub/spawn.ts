/**
 * Makes a user's server run, following the hub's own state machine:
 * ready → done (or stop + start when a restart is asked for); stopped → start with the admin's
 * user_options and follow the progress stream; pending spawn → follow; pending stop → wait, then
 * start; 429 (concurrent_spawn_limit) → wait as ./throttle.ts says, with a message, then go on.
 * Bounded by the spawn timeout. Every step is reported as a progress update for the browser.
 *
 * No hub call is made twice (./throttle.ts says why that matters). A task nobody waits for any more
 * (`wanted`) stops asking: a server its user stopped after landing through another replica is not
 * started again by a task still waiting out a 429 (a read would not tell: stopped looks like never started).
 *
 * The hub holds a start request up to its slow_spawn_timeout (a stop up to slow_stop_timeout), 10 s
 * by default, before answering. Whoever waits for the request to be made (`onRequested`: a landing
 * about to send the browser to a progress page) is told as soon as the hub's model shows it under
 * way, not when the hub answers: a cold pod must not keep a browser (or the authenticator, whose
 * own timeout is 10 s too) waiting for a page.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { HandoffError } from '../errors.js';
import type { HubClient, HubServer, HubUser } from './client.js';
import { FollowerPace, followerThrottle, ownerThrottle, type Step } from './throttle.js';

export interface SpawnUpdate {
  /** 0–100 */
  progress: number;
  message: string;
}

export interface SpawnRequest {
  user: string;
  server: string;
  userOptions: Record<string, unknown>;
  /** Stop a running server first (connectionChangePolicy `restart`). */
  restart: boolean;
  timeoutMs: number;
  onUpdate(u: SpawnUpdate): void;
  /**
   * Follow what another replica started: a failure the hub still reports is this spawn's failure,
   * not a reason to start again (only the progress page's retry starts after a failure).
   */
  follow?: boolean;
  /** The user model just read by the caller: spares the first read. */
  model?: HubUser;
  /** Called once the hub has been asked (its model shows the start or stop under way, or it answered) or nothing needs asking. */
  onRequested?(): void;
  /** Whether a browser still waits for this server; checked before every start request. */
  wanted?(): boolean;
  /** The replica's shared pace of throttled followers (default: this task's own). */
  followerPace?: FollowerPace;
}

const POLL_MS = 500;
/** How often the hub's model is read while it holds a request that someone waits to see made. */
const HELD_POLL_MS = 250;

/** Resolves true once the server is ready, false when nobody wanted it any more before a start request. */
export async function ensureServer(hub: HubClient, req: SpawnRequest): Promise<boolean> {
  const deadline = AbortSignal.timeout(req.timeoutMs);
  let restart = req.restart;
  // Once a spawn was requested or followed, finding the server stopped again means it failed.
  let spawnSeen = false;
  let model = req.model;
  let checkFailure = req.follow === true;
  let requested = req.onRequested;
  const asked = () => {
    requested?.();
    requested = undefined;
  };
  const update = (progress: number, message: string) => req.onUpdate({ progress, message });

  /**
   * Sends a request the hub may hold; while nobody has been told yet that the hub was asked, reads
   * the user now and then and tells them once the model `shows` the request under way. The
   * request's own answer decides what happens next; a failed read only ends the watch.
   */
  const held = async <T>(request: Promise<T>, shows: (s: HubServer | undefined) => boolean): Promise<T> => {
    if (!requested) return request;
    const answered = new AbortController();
    void (async () => {
      while (requested) {
        await sleep(HELD_POLL_MS, undefined, { signal: answered.signal });
        const m = await hub.getUser(req.user);
        if (!answered.signal.aborted && m && shows(m.servers[req.server])) asked();
      }
    })().catch(() => undefined);
    try {
      return await request;
    } finally {
      answered.abort();
    }
  };

  const wait = async (ms: number) => {
    try {
      await sleep(ms, undefined, { signal: deadline });
    } catch {
      throw timeout(req);
    }
  };

  /** Follows the progress stream; resolves on ready, throws on failure, returns when the stream ends early. */
  const follow = async (): Promise<'ready' | 'ended'> => {
    spawnSeen = true;
    for await (const e of hub.progress(req.user, req.server, deadline)) {
      if (e.failed) throw new HandoffError('hub_spawn_failed', e.message, { message: e.message });
      if (e.ready) return 'ready';
      if (e.message) update(Math.max(0, Math.min(99, e.progress ?? 0)), e.message);
    }
    if (deadline.aborted) throw timeout(req);
    return 'ended';
  };

  const throttle = req.follow ? followerThrottle(req.followerPace ?? new FollowerPace(), wait) : ownerThrottle(wait);
  // `ask` right after a throttled start: the server is known to be stopped, the next step is asking again.
  let step: Step = 'look';
  for (;;) {
    if (deadline.aborted) throw timeout(req);
    if (step === 'look') {
      model ??= await hub.getUser(req.user);
      if (!model) throw new HandoffError('hub_user_unknown', `user ${req.user} disappeared from the hub`);
      const s = model.servers[req.server];
      model = undefined;
      if (s?.pending === 'stop') {
        asked();
        update(5, 'Waiting for your previous server to stop…');
        await wait(POLL_MS);
        continue;
      }
      if (s?.pending) {
        asked();
        update(10, 'Your server is starting…');
        if ((await follow()) === 'ended') await wait(POLL_MS);
        continue;
      }
      if (s?.ready) {
        if (!restart) {
          asked();
          return true;
        }
        restart = false;
        update(5, 'Restarting your server so that it uses the new OmniSci connection…');
        await held(hub.stopServer(req.user, req.server), (s) => !s?.ready || s.pending === 'stop');
        asked();
        continue;
      }
      if (spawnSeen) throw (await lastFailure(hub, req, deadline)) ?? new HandoffError('hub_spawn_failed', 'the server stopped while starting');
      // Asked once per task: a throttled follower's later rounds are its own start attempts.
      if (checkFailure) {
        checkFailure = false;
        const failed = await lastFailure(hub, req, deadline);
        if (failed) throw failed;
      }
      if (!throttle.due()) {
        if (req.wanted?.() === false) return false;
        step = await throttle.pause();
        continue;
      }
    }
    step = 'look';
    if (req.wanted?.() === false) return false;
    update(5, 'Requesting your server…');
    const out = await held(hub.startServer(req.user, req.server, req.userOptions), (s) => s?.pending === 'spawn' || s?.ready === true);
    asked();
    switch (out.kind) {
      case 'throttled': {
        const againMs = throttle.throttled(out.retryAfterSeconds);
        update(3, `${out.message} Waiting ${Math.round(againMs / 1000)} s, then trying again…`);
        step = await throttle.pause();
        break;
      }
      case 'failed':
        throw (await lastFailure(hub, req, deadline)) ?? new HandoffError('hub_spawn_failed', 'the server stopped while starting');
      case 'started':
        spawnSeen = true;
        break;
      case 'pending':
        spawnSeen = true;
        model = out.model;
        break;
      case 'running':
      case 'stopping':
        model = out.model;
        break;
    }
  }
}

/** The hub's own words for the last spawn's failure: its progress stream repeats it until the next start. */
async function lastFailure(hub: HubClient, req: SpawnRequest, deadline: AbortSignal): Promise<HandoffError | undefined> {
  for await (const e of hub.progress(req.user, req.server, deadline)) {
    if (e.failed) return new HandoffError('hub_spawn_failed', e.message, { message: e.message || 'Your notebook server failed to start.' });
  }
  return undefined;
}

function timeout(req: SpawnRequest): HandoffError {
  return new HandoffError('hub_spawn_timeout', `no ready server for ${req.user} after ${req.timeoutMs / 1000} s`);
}
