/**
 * Launches the HeavyDB stand-in (standin.py next to this file): HeavyDB's Thrift service over HTTP
 * in Thrift's JSON protocol — HeavyDB's own HTTP port (6278) wire format — decoded and encoded by
 * the vendor's generated code (pyheavydb's heavydb.thrift.Heavy), on a free loopback port.
 *
 * The test decides which sessions exist (user, database, roles, superuser), expires them, and reads
 * every call the server received. `disconnect` is never legitimate here (a handed-over session is the
 * user's live Immerse session): `stop()` fails when one came, so a test that forgets to look still fails. Python: the
 * .cache/venv-jlab4 venv (scripts/deps/jupyterlab4.sh installs pyheavydb and thrift there), or
 * HEAVYDB_STANDIN_PYTHON.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../../test/support/root.js';

export const HEAVYDB_STANDIN_PYTHON = process.env.HEAVYDB_STANDIN_PYTHON ?? join(ROOT, '.cache/venv-jlab4/bin/python');
/** The stand-in itself (a pod on the one-node cluster runs it from a ConfigMap). */
export const STANDIN_SCRIPT = join(ROOT, 'scripts/demo/heavydb/standin.py');
const DEMO_SCRIPT = join(ROOT, 'scripts/demo/heavydb/demo.py');

/** A session as HeavyDB's get_session_info / has_role see it. */
export interface StandInSession {
  user: string;
  /** Default `heavyai`. */
  database?: string;
  /** Roles granted to `user` (has_role). */
  roles?: string[];
  superuser?: boolean;
  /** Epoch seconds (get_session_info's start_time); default now. */
  start_time?: number;
}

/** One Thrift call as received: the method and its arguments by their heavy.thrift names. */
export interface HeavyCall {
  method: string;
  args: Record<string, unknown>;
}

export interface HeavyDbStandIn {
  /** e.g. http://127.0.0.1:40123/ — POST Thrift JSON here, as to HeavyDB's port 6278. */
  url: string;
  host: '127.0.0.1';
  port: number;
  /** What `OMNISCI_PROTOCOL` / heavydb.connect(protocol=…) should say for it. */
  protocol: 'http';
  addSession(id: string, session: StandInSession): Promise<void>;
  /**
   * The session stops being valid: as HeavyDB >= 6.2 ("Session not valid or expired."), or `idle` as
   * OmniSci / HeavyDB < 6.2 ("Idle Session Timeout. User should re-authenticate." once, then
   * "Session not valid.").
   */
  expireSession(id: string, as?: 'idle'): Promise<void>;
  /** Every Thrift call so far, in order. */
  calls(): Promise<HeavyCall[]>;
  clearCalls(): Promise<void>;
  /** One raw Thrift JSON exchange, e.g. `[1,"get_session_info",1,0,{"1":{"str":"<id>"}}]`. */
  post(body: string): Promise<{ status: number; text: string }>;
  /** The process's stderr/stdout so far. */
  log(): string;
  /** Stops the stand-in; rejects when anything called `disconnect`. */
  stop(): Promise<void>;
}

export function heavyDbStandInInstalled(): boolean {
  return existsSync(HEAVYDB_STANDIN_PYTHON);
}

export type StandInControl = Pick<HeavyDbStandIn, 'addSession' | 'expireSession' | 'calls' | 'clearCalls'>;

/** What the test controls of a stand-in listening at `url`: this process's, or one in a pod reached through a forward. */
export function standInControl(url: string): StandInControl {
  const control = async (method: string, path: string, body?: unknown): Promise<unknown> => {
    const res = await fetch(`${url}_standin/${path}`, { method, body: body === undefined ? undefined : JSON.stringify(body) });
    const json: unknown = await res.json();
    if (!res.ok) throw new Error(`HeavyDB stand-in ${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  return {
    addSession: async (id, session) => void (await control('PUT', `sessions/${encodeURIComponent(id)}`, session)),
    expireSession: async (id, as) => void (await control('DELETE', `sessions/${encodeURIComponent(id)}${as ? `?as=${as}` : ''}`)),
    calls: async () => (await control('GET', 'calls')) as HeavyCall[],
    clearCalls: async () => void (await control('DELETE', 'calls')),
  };
}

/** `demo`: the demo's HeavyDB (demo.py next to this file: a login and demo tables), as `npm run demo` runs it. */
export async function startHeavyDb(opts: { sessions?: Record<string, StandInSession>; demo?: boolean } = {}): Promise<HeavyDbStandIn> {
  if (!heavyDbStandInInstalled()) throw new Error(`${HEAVYDB_STANDIN_PYTHON} is missing: run scripts/deps/jupyterlab4.sh`);
  const child = spawn(HEAVYDB_STANDIN_PYTHON, [opts.demo ? DEMO_SCRIPT : STANDIN_SCRIPT, '--port', '0'], {
    env: { PATH: '/usr/bin:/bin', PYTHONWARNINGS: 'ignore', PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (d: Buffer) => {
      output += d.toString();
      const m = /\{"url": "([^"]+)"\}/.exec(output);
      if (m) resolve(m[1]!);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('exit', (code) => reject(new Error(`the HeavyDB stand-in exited with ${code}:\n${output}`)));
    child.once('error', reject);
  });
  const standIn: HeavyDbStandIn = {
    url,
    host: '127.0.0.1',
    port: Number(new URL(url).port),
    protocol: 'http',
    ...standInControl(url),
    post: async (body) => {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/vnd.apache.thrift.json' }, body });
      return { status: res.status, text: await res.text() };
    },
    log: () => output,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const disconnects = (await standIn.calls()).filter((c) => c.method === 'disconnect').length;
      child.kill('SIGTERM');
      await exited;
      if (disconnects) throw new Error(`the HeavyDB stand-in got ${disconnects} disconnect call(s): a handed-over session must never be ended`);
    },
  };
  for (const [id, session] of Object.entries(opts.sessions ?? {})) await standIn.addSession(id, session);
  return standIn;
}
