import { afterEach, beforeEach, describe, expect, jest, test } from '@jest/globals';
import { SpawnTask, SpawnTasks, type SpawnRun } from '../../src/hub/progress.js';
import { FollowerPace } from '../../src/hub/throttle.js';

/** A run that hands its callbacks out and ends when told to. */
function controlled() {
  const c = {} as { wanted: () => boolean; update: Parameters<SpawnRun>[0]; requested: () => void; end: (ready: boolean) => void; fail: (e: unknown) => void };
  const run: SpawnRun = (update, requested, wanted) =>
    new Promise<boolean>((resolve, reject) => Object.assign(c, { update, requested, wanted, end: resolve, fail: reject }));
  return { c, run };
}

describe('SpawnTask: who still waits', () => {
  beforeEach(() => {
    jest.useFakeTimers();
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  test('wanted for 30 s after the last look, and for as long as a page listens', () => {
    const { c, run } = controlled();
    const task = new SpawnTask(run, () => undefined);
    expect(c.wanted()).toBe(true);
    jest.advanceTimersByTime(29_000);
    expect(c.wanted()).toBe(true);
    jest.advanceTimersByTime(2_000);
    expect(c.wanted()).toBe(false);
    task.want();
    expect(c.wanted()).toBe(true);
    const unsubscribe = task.subscribe(() => undefined);
    jest.advanceTimersByTime(60_000);
    expect(c.wanted()).toBe(true);
    unsubscribe();
    expect(c.wanted()).toBe(false);
  });

  test('a look through SpawnTasks keeps the running task wanted', () => {
    const tasks = new SpawnTasks();
    const { c, run } = controlled();
    const task = tasks.taskFor('ann', () => new SpawnTask(run, () => undefined));
    jest.advanceTimersByTime(31_000);
    expect(c.wanted()).toBe(false);
    expect(tasks.taskFor('ann', () => new SpawnTask(controlled().run, () => undefined))).toBe(task);
    expect(c.wanted()).toBe(true);
  });
});

describe('SpawnTask: how it ends', () => {
  const settle = () => new Promise((r) => setImmediate(r));

  test('ready: phase ready, requested settled, the next look starts a new task', async () => {
    const tasks = new SpawnTasks();
    const { c, run } = controlled();
    const task = tasks.taskFor('bob', () => new SpawnTask(run, () => undefined));
    c.update({ progress: 40, message: 'Pulling the image' });
    expect(task.state).toMatchObject({ phase: 'pending', progress: 40, log: ['Pulling the image'] });
    c.end(true);
    await task.done;
    await task.requested;
    expect(task.state).toMatchObject({ phase: 'ready', progress: 100 });
    await settle();
    expect(tasks.taskFor('bob', () => new SpawnTask(controlled().run, () => undefined))).not.toBe(task);
  });

  test('the count of running tasks is reported on every change (the omnisci_handoff_spawn_tasks gauge)', async () => {
    const counts: number[] = [];
    const tasks = new SpawnTasks((n) => counts.push(n));
    const a = controlled();
    const b = controlled();
    const ta = tasks.taskFor('a', () => new SpawnTask(a.run, () => undefined));
    const tb = tasks.taskFor('b', () => new SpawnTask(b.run, () => undefined));
    tasks.taskFor('a', () => new SpawnTask(controlled().run, () => undefined));
    expect(counts).toEqual([1, 2]);
    a.c.end(true);
    await ta.done;
    await settle();
    b.c.end(false);
    await tb.done;
    await settle();
    expect(counts).toEqual([1, 2, 1, 0]);
  });

  test('abandoned (nobody waited): still pending for whoever holds it, finished for the next look', async () => {
    const tasks = new SpawnTasks();
    const { c, run } = controlled();
    const task = tasks.taskFor('cy', () => new SpawnTask(run, () => undefined));
    c.end(false);
    await task.done;
    expect(task.state.phase).toBe('pending');
    expect(task.finished).toBe(true);
    const next = tasks.taskFor('cy', () => new SpawnTask(controlled().run, () => undefined));
    expect(next).not.toBe(task);
    expect(next.finished).toBe(false);
  });

  test('failed: phase failed with the error code, reported once', async () => {
    const errors: string[] = [];
    const { c, run } = controlled();
    const task = new SpawnTask(run, (e) => errors.push(e.code));
    c.fail(new Error('boom'));
    await task.done;
    expect(task.state).toMatchObject({ phase: 'failed', error: { code: 'internal' } });
    expect(errors).toEqual(['internal']);
  });
});

describe("FollowerPace: a replica's throttled followers share one budget of hub calls", () => {
  test('1 s apart when few wait, longer as more wait (5 looks a second in all), at most 10 s', async () => {
    const pace = new FollowerPace();
    const asked: number[] = [];
    const releases: (() => void)[] = [];
    const wait = (ms: number) => {
      asked.push(ms);
      return new Promise<void>((r) => releases.push(r));
    };
    const pauses = Array.from({ length: 60 }, () => pace.pause(wait));
    expect(asked.slice(0, 6)).toEqual([1000, 1000, 1000, 1000, 1000, 1000]);
    expect(asked[20]).toBe(4000);
    expect(asked[59]).toBe(10_000);
    for (const r of releases) r();
    await Promise.all(pauses);
    // All done: the next one waits the least again.
    void pace.pause(wait);
    expect(asked.at(-1)).toBe(1000);
  });
});
