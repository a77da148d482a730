/**
 * A user's server getting ready, as this replica follows it: one spawn task per server however many
 * progress pages (and handoffs) wait for it. Nothing here outlives the task: which page belongs to
 * whom travels in the page's ticket (./tickets.ts), and the spawn's state is the hub's, so any
 * replica can show any page.
 */
import { toHandoffError, type HandoffError } from '../errors.js';
import type { SpawnUpdate } from './spawn.js';

export type ProgressPhase = 'pending' | 'ready' | 'failed';

export interface ProgressState {
  phase: ProgressPhase;
  progress: number;
  message: string;
  /** Messages so far (the hub's and ours), oldest first. */
  log: string[];
  /** Failure, when phase is `failed`: safe to show. */
  error?: { code: string; message: string };
}

type Listener = (s: ProgressState) => void;

/** How long a task keeps asking the hub after the last browser looked for it (pages reload every 2 s). */
const WANTED_MS = 30_000;

/** What a task runs: resolves true once the server is ready, false when nobody waited for it any more. */
export type SpawnRun = (onUpdate: (u: SpawnUpdate) => void, onRequested: () => void, wanted: () => boolean) => Promise<boolean>;

/** One attempt to get a user's server running. */
export class SpawnTask {
  state: ProgressState = { phase: 'pending', progress: 0, message: 'Starting…', log: [] };
  private readonly listeners = new Set<Listener>();
  private lastWanted = performance.now();
  private ended = false;
  readonly done: Promise<void>;
  /**
   * Settles once the hub has the start (or stop) request — its model shows it under way, or it
   * answered — or nothing needed asking, or the task ended; not only once the hub answers (./spawn.ts).
   */
  readonly requested: Promise<void>;

  constructor(run: SpawnRun, onError: (e: HandoffError) => void) {
    let onRequested!: () => void;
    this.requested = new Promise((resolve) => (onRequested = resolve));
    const wanted = () => this.listeners.size > 0 || performance.now() - this.lastWanted < WANTED_MS;
    this.done = run((u) => this.set({ phase: 'pending', progress: u.progress, message: u.message }), () => onRequested(), wanted).then(
      // An abandoned task stays pending: a browser that comes back gets a new one.
      (ready) => void (ready && this.set({ phase: 'ready', progress: 100, message: 'Your server is ready.' })),
      (e: unknown) => {
        const err = toHandoffError(e);
        onError(err);
        this.set({ phase: 'failed', progress: 100, message: err.message, error: { code: err.code, message: err.message } });
      },
    );
    void this.done.then(() => {
      this.ended = true;
      onRequested();
    });
  }

  get finished(): boolean {
    return this.ended || this.state.phase !== 'pending';
  }

  /** A browser looked for this task (a page, its events, a handoff): it keeps asking the hub a while longer. */
  want(): void {
    this.lastWanted = performance.now();
  }

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  private set(s: Omit<ProgressState, 'log'>): void {
    const log = this.state.log.at(-1) === s.message ? this.state.log : [...this.state.log, s.message].slice(-20);
    this.state = { ...s, log };
    for (const l of this.listeners) l(this.state);
  }
}

/** The spawn tasks running on this replica, one per server (`key`: user/server). */
export class SpawnTasks {
  private readonly running = new Map<string, SpawnTask>();

  /** `onCount` hears how many tasks run after every change (a gauge). */
  constructor(private readonly onCount: (n: number) => void = () => undefined) {}

  /** The running task for the server, or a new one from `start`. */
  taskFor(key: string, start: () => SpawnTask): SpawnTask {
    const current = this.running.get(key);
    if (current && !current.finished) {
      current.want();
      return current;
    }
    const task = start();
    this.running.set(key, task);
    this.onCount(this.running.size);
    void task.done.then(() => {
      if (this.running.get(key) === task) this.running.delete(key);
      this.onCount(this.running.size);
    });
    return task;
  }
}
