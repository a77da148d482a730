/**
 * The local store's atomic file replaces, done by a worker thread with synchronous calls.
 *
 * A batch replaces its files in order: every temporary file (next to its target, created with O_EXCL
 * and the file's mode, chmod'ed as the umask may cut group bits) is written first — a full disk fails
 * here, and all temporaries are removed — then each is renamed over its target, one by one; a rename
 * does not fail for want of space, so the last file changes only once all the others have. A reader
 * never sees a partial file. No fsync: a session is worth minutes, and the rename keeps files whole.
 *
 * Why a thread: through fs/promises every file costs four thread-pool round trips (open, write,
 * close, rename), each waking a pool thread and the event loop; for a handoff's two files that was
 * the largest cost of a handoff in `npm run bench` (~100 µs of CPU, most of it on the event loop). A
 * worker takes a batch in one message and answers in one. One worker per process, started on first
 * use; more (up to libuv's pool size, which did these writes before) only while every worker has had
 * a batch in flight for SLOW_MS, so a slow disk (NFS) gets parallel writers again. A worker is unref'd
 * while idle (it never keeps a process alive) and ref'd while a batch is in flight (a process does not
 * exit before its writes are answered). A worker that dies fails its batches and is replaced.
 */
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';

export interface Replacement {
  path: string;
  content: string;
  mode: number;
}

const MAX_WORKERS = 4;
const SLOW_MS = 50;

/** Plain JS, run with `eval`: no file to locate from dist/ or from the test runner. */
const WORKER_SOURCE = `
const { chmodSync, renameSync, unlinkSync, writeFileSync } = require('node:fs');
const { randomBytes } = require('node:crypto');
const { parentPort } = require('node:worker_threads');
parentPort.on('message', ({ id, files }) => {
  const tmps = files.map((f) => f.path + '.' + randomBytes(6).toString('hex') + '.tmp');
  let renamed = 0;
  try {
    files.forEach((f, i) => {
      writeFileSync(tmps[i], f.content, { mode: f.mode, flag: 'wx' });
      if (f.mode !== 0o600) chmodSync(tmps[i], f.mode);
    });
    for (; renamed < files.length; renamed++) renameSync(tmps[renamed], files[renamed].path);
    parentPort.postMessage({ id });
  } catch (e) {
    for (const t of tmps.slice(renamed)) try { unlinkSync(t); } catch {}
    // The errno code and the error's name only: a message may quote a path or content.
    parentPort.postMessage({ id, error: { code: e && e.code, name: (e && e.name) || 'Error' } });
  }
});
`;

interface Pending {
  resolve(): void;
  reject(e: Error): void;
  /** performance.now() when sent. */
  sent: number;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
}

const slots: Slot[] = [];
let nextId = 0;

function start(): Slot {
  // It only moves strings to files: a small heap keeps its memory to a few MB.
  const worker = new Worker(WORKER_SOURCE, { eval: true, resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 } });
  const slot: Slot = { worker, pending: new Map() };
  worker.unref();
  worker.on('message', (m: { id: number; error?: { code?: string; name: string } }) => {
    const p = slot.pending.get(m.id);
    if (!p) return;
    slot.pending.delete(m.id);
    if (slot.pending.size === 0) worker.unref();
    if (!m.error) return p.resolve();
    const e = Object.assign(new Error(`file replace failed: ${m.error.code ?? m.error.name}`), m.error.code ? { code: m.error.code } : {});
    e.name = m.error.name;
    p.reject(e);
  });
  const died = (why: unknown) => {
    const i = slots.indexOf(slot);
    if (i >= 0) slots.splice(i, 1);
    for (const p of slot.pending.values()) p.reject(Object.assign(new Error('file replace thread stopped'), { cause: why }));
    slot.pending.clear();
  };
  worker.on('error', died);
  worker.on('exit', died);
  slots.push(slot);
  return slot;
}

/** The least busy worker; a new one when there is none, or when all are stuck on a slow disk. */
function pick(now: number): Slot {
  let best: Slot | undefined;
  let allSlow = true;
  for (const s of slots) {
    if (!best || s.pending.size < best.pending.size) best = s;
    // Insertion order: the first entry is the oldest batch in flight.
    const oldest = s.pending.values().next().value;
    if (!oldest || now - oldest.sent < SLOW_MS) allSlow = false;
  }
  if (!best || (allSlow && slots.length < MAX_WORKERS)) return start();
  return best;
}

/** Replaces the files in order (see above); rejects with the errno `code` of the first failure. */
export function replaceAll(files: Replacement[]): Promise<void> {
  const sent = performance.now();
  const slot = pick(sent);
  return new Promise<void>((resolve, reject) => {
    const id = nextId++;
    if (slot.pending.size === 0) slot.worker.ref();
    slot.pending.set(id, { resolve, reject, sent });
    slot.worker.postMessage({ id, files });
  });
}
