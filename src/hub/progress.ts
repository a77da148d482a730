/**
 * Progress of handoffs waiting for a server. A browser follows its handoff by an opaque random id
 * (128 bits) that is bound to the hub user and to that browser (a path-scoped cookie holding a
 * second random value, stored here only as a hash): the id alone shows nothing and logs no one in.
 * One spawn task runs per user however many handoffs wait for it (a burst of handoffs of the same
 * user starts one server).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
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

  constructor(run: (onUpdate: (u: SpawnUpdate) => void) => Promise<void>, onError: (e: HandoffError) => void) {
    this.done = run((u) => this.set({ phase: 'pending', progress: u.progress, message: u.message })).then(
      () => this.set({ phase: 'ready', progress: 100, message: 'Your server is ready.' }),
      (e: unknown) => {
        const err = toHandoffError(e);
        onError(err);
        this.set({ phase: 'failed', progress: 100, message: err.message, error: { code: err.code, message: err.message } });
      },
    );
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

export interface ProgressEntry {
  id: string;
  user: string;
  task: SpawnTask;
  /** Shown with the ready state (e.g. "the connection change applies after a restart"). */
  notice: string | undefined;
  expiresAt: number;
  bindingHash: Buffer;
  /** Login mode `handoff`: the handoff's one hub login was issued (later visits get the lab URL). */
  loginIssued?: boolean;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();
const randomId = () => randomBytes(16).toString('base64url');

export class ProgressRegistry {
  private readonly entries = new Map<string, ProgressEntry>();
  private readonly running = new Map<string, SpawnTask>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

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

  /** A new entry and the browser binding secret for its cookie. */
  create(user: string, task: SpawnTask, notice?: string): { entry: ProgressEntry; binding: string } {
    this.sweep();
    const binding = randomBytes(32).toString('base64url');
    const entry: ProgressEntry = {
      id: randomId(),
      user,
      task,
      notice,
      expiresAt: this.now() + this.ttlMs,
      bindingHash: sha256(binding),
    };
    this.entries.set(entry.id, entry);
    return { entry, binding };
  }

  /** The entry when the id exists, is live and the browser presents its binding. */
  get(id: string, binding: string | undefined): ProgressEntry | undefined {
    const entry = this.entries.get(id);
    if (!entry || binding === undefined) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(id);
      return undefined;
    }
    return timingSafeEqual(sha256(binding), entry.bindingHash) ? entry : undefined;
  }

  private sweep(): void {
    const now = this.now();
    for (const [id, e] of this.entries) if (e.expiresAt <= now) this.entries.delete(id);
  }
}
