/**
 * A user's server getting ready, as this replica follows it: one spawn task per user however many
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

/** One attempt to get a user's server running. */
export class SpawnTask {
  state: ProgressState = { phase: 'pending', progress: 0, message: 'Starting…', log: [] };
  private readonly listeners = new Set<Listener>();
  readonly done: Promise<void>;
  /** Settles once the hub was asked to start (or stop) the server, or nothing needed asking, or the task ended. */
  readonly requested: Promise<void>;

  constructor(run: (onUpdate: (u: SpawnUpdate) => void, onRequested: () => void) => Promise<void>, onError: (e: HandoffError) => void) {
    let onRequested!: () => void;
    this.requested = new Promise((resolve) => (onRequested = resolve));
    this.done = run((u) => this.set({ phase: 'pending', progress: u.progress, message: u.message }), () => onRequested()).then(
      () => this.set({ phase: 'ready', progress: 100, message: 'Your server is ready.' }),
      (e: unknown) => {
        const err = toHandoffError(e);
        onError(err);
        this.set({ phase: 'failed', progress: 100, message: err.message, error: { code: err.code, message: err.message } });
      },
    );
    void this.done.then(onRequested);
  }

  get finished(): boolean {
    return this.state.phase !== 'pending';
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

/** The spawn tasks running on this replica, one per user. */
export class SpawnTasks {
  private readonly running = new Map<string, SpawnTask>();

  /** The running task for the user, or a new one from `start`. */
  taskFor(user: string, start: () => SpawnTask): SpawnTask {
    const current = this.running.get(user);
    if (current && !current.finished) return current;
    const task = start();
    this.running.set(user, task);
    void task.done.then(() => {
      if (this.running.get(user) === task) this.running.delete(user);
    });
    return task;
  }
}
