/**
 * Local directory backend: local mode, and the session source for hubs without Kubernetes
 * (contrib/jupyterhub/omnisci_handoff_hook.py reads the same layout):
 *
 *   <dir>/                       0700   (userAccess group: 0711)
 *     users/                     0700   (userAccess group: 0711)
 *       <slug>/                  0700   slug = KubeSpawner's safe_slug(user name)
 *         state.json             0600   the SessionRecord (user, session, connection, iat, jtis)
 *         <sessionFileName>      0600   (userAccess group: 0640) the session file the extension reads
 *
 * With `userAccess: group` (servers under their own unix accounts) the hub's spawner hook, as root,
 * gives each user directory the user's group with the setgid bit (2750) and the session file that
 * group; files written later inherit it, and being 0640 they are readable by that user only. The top
 * directories become traversable but stay unlistable. The service never needs root for that.
 *
 * Every write goes to a temporary file that is renamed over the old one (./replace.ts), so a reader never sees a
 * partial file (no fsync: a session is worth minutes, and the rename keeps files whole). Updates of
 * one user are serialised in this process, which must be the only writer of the directory; that is
 * also why recently used records are served from memory.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Config } from '../config/types.js';
import { describeCause, HandoffError } from '../errors.js';
import type { Handoff, Revocation } from '../handoff/types.js';
import { safeSlug } from '../k8s/slug.js';
import { sessionFileContent } from '../notebook/outputs.js';
import { applyHandoff, applyOptions, applySpend, applyRevoke } from './record.js';
import { replaceAll } from './replace.js';
import type { AcceptOptions, AcceptResult, SessionRecord, SessionStore, Spend } from './types.js';

export const STATE_FILE = 'state.json';

/** Runs tasks for the same key one after another. */
class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(task, task);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }

  async drain(): Promise<void> {
    await Promise.all(this.tails.values());
  }
}

function storeError(e: unknown, what: string): HandoffError {
  if (e instanceof HandoffError) return e;
  // Described, not quoted: a message may quote file content (a session id).
  const cause = describeCause(e);
  return new HandoffError(cause === 'EACCES' || cause === 'EPERM' ? 'store_forbidden' : 'store_unavailable', `${what}: ${cause}`);
}

export function userDir(storeDir: string, user: string): string {
  return join(resolve(storeDir), 'users', safeSlug(user));
}

/** A bounded most-recently-used map. */
class Recent<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }
  set(key: string, v: V): void {
    this.map.delete(key);
    this.map.set(key, v);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value as string);
  }
  delete(key: string): void {
    this.map.delete(key);
  }
}

export function createLocalStore(config: Config, clock: () => number = Date.now): SessionStore {
  const root = resolve(config.store.local.dir);
  const queue = new KeyedQueue();
  // Bounded: a few thousand active users are served from memory, the rest read their state.json.
  const records = new Recent<SessionRecord>(2_000);
  const nb = config.notebook;
  const shared = config.store.local.userAccess === 'group';

  /** <dir> and <dir>/users; with userAccess group traversable (a server must reach its file) but unlistable. */
  async function makeTop(): Promise<void> {
    const users = join(root, 'users');
    await mkdir(users, { recursive: true, mode: 0o700 });
    if (shared) await Promise.all([chmod(root, 0o711), chmod(users, 0o711)]);
  }
  let top: Promise<void> | undefined;
  const ensureTop = () => (top ??= makeTop().catch((e: unknown) => ((top = undefined), Promise.reject(e))));

  async function read(user: string): Promise<SessionRecord | undefined> {
    const cached = records.get(user);
    if (cached) return cached;
    let text: string;
    try {
      text = await readFile(join(userDir(root, user), STATE_FILE), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    let record: SessionRecord;
    try {
      record = JSON.parse(text) as SessionRecord;
    } catch {
      throw new HandoffError('store_unavailable', 'state.json is not valid JSON');
    }
    // Slugs are collision-free, but refuse to mix users should the directory have been tampered with.
    if (record.user !== user) throw new HandoffError('store_unavailable', 'state.json belongs to another user');
    records.set(user, record);
    return record;
  }

  /**
   * The session file first, the record last: should the record's rename never happen, the record
   * still says the jti is unspent, so the same token can be tried again and lands whole.
   * `recordOnly`: the session is unchanged (a spent id), its file is left alone.
   */
  async function write(record: SessionRecord, recordOnly = false, retried = false): Promise<void> {
    const dir = userDir(root, record.user);
    const sessionFile = { path: join(dir, nb.sessionFileName), content: sessionFileContent(record, nb.sessionFormat), mode: shared ? 0o640 : 0o600 };
    try {
      await replaceAll([...(recordOnly ? [] : [sessionFile]), { path: join(dir, STATE_FILE), content: `${JSON.stringify(record)}\n`, mode: 0o600 }]);
      records.set(record.user, record);
    } catch (e) {
      // Whatever is on disk now is the truth: forget the cached copy.
      records.delete(record.user);
      // A first handoff, or the directory was removed behind our back (an admin cleaning up): make it, once.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !retried) {
        top = undefined;
        await ensureTop();
        await mkdir(dir, { recursive: true, mode: 0o700 });
        return write(record, recordOnly, true);
      }
      throw e;
    }
  }

  return {
    backend: 'local',

    accept(h: Handoff, o?: AcceptOptions): Promise<AcceptResult> {
      return queue.run(h.user, async () => {
        try {
          const result = applyHandoff(await read(h.user), h, applyOptions(config, clock()), o?.reserved, o?.fingerprint);
          await write(result.record);
          return result;
        } catch (e) {
          throw storeError(e, 'local store write failed');
        }
      });
    },

    async get(user) {
      try {
        return await read(user);
      } catch (e) {
        throw storeError(e, 'local store read failed');
      }
    },

    spend(s: Spend): Promise<void> {
      return queue.run(s.user, async () => {
        try {
          const current = await read(s.user);
          // A user's first record writes its (empty) session file too, so that the file always exists beside it.
          await write(applySpend(current, s, applyOptions(config, clock())), current !== undefined);
        } catch (e) {
          throw storeError(e, 'local store spend failed');
        }
      });
    },

    revoke(r: Revocation): Promise<boolean> {
      return queue.run(r.user, async () => {
        try {
          const { record, revoked } = applyRevoke(await read(r.user), r, applyOptions(config, clock()));
          await write(record);
          return revoked;
        } catch (e) {
          throw storeError(e, 'local store revoke failed');
        }
      });
    },

    async check() {
      try {
        await makeTop();
        const probe = join(root, `.probe-${randomBytes(4).toString('hex')}`);
        await replaceAll([{ path: probe, content: '', mode: 0o600 }]);
        await rm(probe);
      } catch (e) {
        throw storeError(e, `local store ${root} is not writable`);
      }
    },

    async close() {
      await queue.drain();
    },
  };
}
