/**
 * What the Immerse stand-in asks HeavyDB, as Immerse does: heavy.thrift's `connect(user, passwd,
 * dbname)` (a login: a new session) and `get_version`, in Thrift's JSON protocol over HTTP — the wire
 * format of HeavyDB's HTTP port (6278), which the demo's stand-in (./heavydb/demo.py) speaks too.
 * (The service's own client, src/heavydb/client.ts, has no login on purpose.)
 */

export interface HeavyDbLogin {
  /** HeavyDB's HTTP Thrift endpoint, e.g. http://127.0.0.1:6278/. */
  url: string;
  user: string;
  password: string;
  database: string;
}

/** HeavyDB refused the call (its TDBException, with HeavyDB's message), or did not answer as HeavyDB does. */
export class HeavyDbError extends Error {}

async function call(url: string, method: string, args: Record<string, unknown>): Promise<unknown> {
  let text: string;
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/vnd.apache.thrift.json', accept: 'application/vnd.apache.thrift.json' },
      body: JSON.stringify([1, method, 1, 0, args]),
      signal: AbortSignal.timeout(10_000),
    });
    text = await res.text();
    if (!res.ok) throw new HeavyDbError(`HeavyDB at ${url} answered ${method} with HTTP ${res.status}`);
  } catch (e) {
    if (e instanceof HeavyDbError) throw e;
    throw new HeavyDbError(`HeavyDB at ${url} does not answer: ${(e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message}`);
  }
  let reply: unknown;
  try {
    reply = JSON.parse(text);
  } catch {
    reply = undefined;
  }
  const fields = Array.isArray(reply) && reply[1] === method && reply[2] === 2 ? (reply[4] as Record<string, Record<string, unknown>>) : undefined;
  if (!fields) throw new HeavyDbError(`${url} does not answer ${method} in HeavyDB's Thrift JSON: is it HeavyDB's HTTP port (6278)?`);
  const failure = (fields['1']?.rec as Record<string, { str?: string }> | undefined)?.['1']?.str;
  if (failure !== undefined) throw new HeavyDbError(`HeavyDB refused ${method}: ${failure}`);
  return fields['0'];
}

const str = (v: unknown, what: string): string => {
  const s = (v as { str?: unknown } | undefined)?.str;
  if (typeof s !== 'string') throw new HeavyDbError(`HeavyDB answered ${what} without a string`);
  return s;
};

/** A new session of `user` (Immerse's login). */
export async function heavyDbConnect(l: HeavyDbLogin): Promise<string> {
  return str(await call(l.url, 'connect', { 1: { str: l.user }, 2: { str: l.password }, 3: { str: l.database } }), 'connect');
}

export async function heavyDbVersion(url: string): Promise<string> {
  return str(await call(url, 'get_version', {}), 'get_version');
}
