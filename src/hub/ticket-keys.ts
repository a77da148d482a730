/**
 * The keys that seal tickets (./tickets.ts), dedicated to them: a file every replica reads at start,
 * one key per line, `KEY [from=<ISO time>] [until=<ISO time>]`. Every key opens tickets until its
 * `until`; the first key whose `from` has come seals them. A rotation puts a new key first that seals
 * only from a few minutes on, when every replica has restarted with it, and gives the previous ones an
 * `until`: no ticket in flight is lost, on any replica. Every key must score at least 128 bits
 * (./entropy.ts). Where the file comes from: the chart's generated Secret, `omnisci-handoff keygen
 * --ticket-keys FILE` (which also rotates it), or, with the local store and no hub.ticketKeyFile, the
 * store's directory, where the first start creates it.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Config } from '../config/types.js';
import { describeCause, HandoffError } from '../errors.js';
import { estimateBits, MIN_SECRET_BITS } from './entropy.js';

export interface TicketKey {
  secret: string;
  /** When it starts sealing tickets (ms since the epoch); it opens them from the start. */
  from?: number;
  /** When it stops opening tickets. */
  until?: number;
}

/** The file's name in the local store's directory, when hub.ticketKeyFile is not set. */
export const TICKET_KEYS_FILE = 'ticket-keys';
/** How long a rotated-out key still opens tickets once the new one seals: longer than any ticket but the identity cookie lives (a progress page: at most 70 min). */
export const KEEP_OLD_SECONDS = 7200;
/** How long after a rotation the new key starts sealing: every replica must have restarted with it by then. */
export const ACTIVATE_SECONDS = 300;

const LINE = /^(\S+)(?:\s+from=(\S+))?(?:\s+until=(\S+))?$/;
const HEADER =
  '# omnisci-handoff ticket keys: every key opens tickets until its until=; the first whose from= has come seals them (omnisci-handoff keygen --ticket-keys FILE rotates them)';

const invalid = (message: string) => new HandoffError('config_invalid', message, { message });

export const newTicketKey = () => randomBytes(32).toString('base64url');

/** hub.ticketKeyFile, else (local store) the file in the store's directory. */
export function ticketKeyPath(config: Config): string | undefined {
  return config.hub.ticketKeyFile ?? (config.store.backend === 'local' ? join(config.store.local.dir, TICKET_KEYS_FILE) : undefined);
}

/** The keys of a file's text; a problem is thrown naming the line, never the key. */
export function parseTicketKeys(text: string, file: string): TicketKey[] {
  const keys: TicketKey[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const where = `${file} line ${i + 1}`;
    const m = LINE.exec(line);
    if (!m) throw invalid(`${where} is not "KEY [from=<ISO time>] [until=<ISO time>]"`);
    const [from, until] = [m[2], m[3]].map((t) => (t === undefined ? undefined : Date.parse(t)));
    if (Number.isNaN(from) || Number.isNaN(until)) throw invalid(`${where}: from= and until= take an ISO time, e.g. 2030-01-01T00:00:00Z`);
    const bits = estimateBits(m[1]!);
    if (bits < MIN_SECRET_BITS) {
      throw new HandoffError('weak_secret', `ticket key on ${where}`, {
        message: `The ticket key on ${where} has about ${bits} bits of entropy; at least ${MIN_SECRET_BITS} are needed: generate one with omnisci-handoff keygen --ticket-keys FILE.`,
      });
    }
    keys.push({ secret: m[1]!, ...(from === undefined ? {} : { from }), ...(until === undefined ? {} : { until }) });
  });
  if (!keys.length) throw invalid(`${file} holds no ticket key: write one with omnisci-handoff keygen --ticket-keys ${file}`);
  if (keys.every((k) => k.from !== undefined)) throw invalid(`${file}: some key must seal without a from= (the current one)`);
  return keys;
}

/** The key that seals at `now`: the first whose `from` has come, else the one without a `from`. */
export function sealingKey(keys: readonly TicketKey[], now: number): TicketKey {
  return keys.find((k) => (k.from ?? 0) <= now && (k.until ?? Infinity) > now) ?? keys.find((k) => k.from === undefined)!;
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

export function ticketKeysText(keys: readonly TicketKey[]): string {
  const line = (k: TicketKey) => [k.secret, ...(k.from === undefined ? [] : [`from=${iso(k.from)}`]), ...(k.until === undefined ? [] : [`until=${iso(k.until)}`])].join(' ');
  return `${HEADER}\n${keys.map(line).join('\n')}\n`;
}

/**
 * A rotation: a new key first, sealing from `activateMs` on (when every replica has read it); the
 * previous keys open until `keepOldMs` after that (or until they ended, when sooner); ended ones go.
 */
export function rotateTicketKeys(keys: readonly TicketKey[], now: number, keepOldMs: number, activateMs = ACTIVATE_SECONDS * 1000): TicketKey[] {
  const from = now + activateMs;
  const end = from + keepOldMs;
  const kept = keys.filter((k) => (k.until ?? end) > now).map((k) => ({ ...k, until: Math.min(k.until ?? end, end) }));
  return [{ secret: newTicketKey(), ...(activateMs > 0 ? { from } : {}) }, ...kept];
}

/** Creates `path` with one new key unless it exists (atomically: several processes starting at once end with one key). */
function createOnce(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
  writeFileSync(tmp, ticketKeysText([{ secret: newTicketKey() }]), { mode: 0o600 });
  try {
    linkSync(tmp, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** The service's ticket keys, read once at start (the local store's default file created first). */
export function readTicketKeys(config: Config): TicketKey[] {
  const path = ticketKeyPath(config);
  if (!path) throw invalid('hub.ticketKeyFile is required with store.backend kubernetes: omnisci-handoff keygen --ticket-keys FILE writes one');
  try {
    if (!config.hub.ticketKeyFile) createOnce(path);
    return parseTicketKeys(readFileSync(path, 'utf8'), path);
  } catch (e) {
    if (e instanceof HandoffError) throw e;
    throw invalid(`cannot read the ticket keys ${path} (${describeCause(e)}): write them with omnisci-handoff keygen --ticket-keys ${path}`);
  }
}
