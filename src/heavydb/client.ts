/**
 * A small client of HeavyDB's HTTP port (6278): Thrift's JSON protocol in an HTTP POST, the two calls
 * header mode needs (heavy.thrift's `get_session_info` and `has_role`) and nothing else. There is no
 * `disconnect` here on purpose: a handed-over session is the user's live Immerse session.
 *
 * Not @heavyai/connector 7.0.0: on Node 24 it needs an undocumented initClients() to use a session
 * without a password, has no `has_role`, no timeout and no per-client CA, and an unreachable server
 * crashes the process with an uncaught error (docs/design/0001-heavydb-json-thrift-client.md).
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Config } from '../config/types.js';
import { describeCause, HandoffError } from '../errors.js';
import { exponentialBackoff, withRetries } from '../retry.js';

/** heavy.thrift's TSessionInfo. */
export interface SessionInfo {
  user: string;
  database: string;
  /** Epoch seconds. */
  startTime: number;
  isSuper: boolean;
}

export interface HeavyDbClientOptions {
  url: string;
  caFile?: string | undefined;
  requestTimeoutMs: number;
  retries: number;
}

/** A Thrift JSON value as the protocol tags it: {"str": …}, {"i64": …}, {"tf": 0|1}, {"rec": {fieldId: value}}. */
type Tagged = Record<string, unknown>;
type Struct = Record<string, Tagged>;

const CALL = 1;
const REPLY = 2;
const EXCEPTION = 3;

export class HeavyDbClient {
  /** The client of the configured HeavyDB (`heavydb.*`); `retries` overrides heavydb.retries (the doctor asks once). */
  static of(hd: Config['heavydb'], retries = hd.retries): HeavyDbClient {
    if (!hd.url) throw new HandoffError('heavydb_unavailable', 'heavydb.url is not set');
    return new HeavyDbClient({ url: hd.url, caFile: hd.caFile, requestTimeoutMs: hd.requestTimeoutMs, retries });
  }

  private readonly url: URL;
  private readonly ca: string | undefined;
  private seq = 0;

  constructor(private readonly o: HeavyDbClientOptions) {
    this.url = new URL(o.url);
    this.ca = o.caFile ? readFileSync(o.caFile, 'utf8') : undefined;
  }

  async sessionInfo(session: string): Promise<SessionInfo> {
    const rec = record(await this.call('get_session_info', { 1: { str: session } }));
    return {
      user: str(rec['1']),
      database: str(rec['2']),
      startTime: Number(rec['3']?.i64 ?? 0),
      isSuper: rec['4']?.tf === 1 || rec['4']?.tf === true,
    };
  }

  async hasRole(session: string, grantee: string, role: string): Promise<boolean> {
    const v = await this.call('has_role', { 1: { str: session }, 2: { str: grantee }, 3: { str: role } });
    return v.tf === 1 || v.tf === true;
  }

  /**
   * One call: the success value; HandoffError heavydb_session_invalid when HeavyDB refuses the session
   * (a TDBException, e.g. "Session not valid or expired."); heavydb_unavailable for anything else.
   */
  private async call(method: string, args: Struct): Promise<Tagged> {
    const seq = ++this.seq;
    const body = JSON.stringify([1, method, CALL, seq, args]);
    let reply: { status: number; text: string };
    try {
      reply = await withRetries(() => this.post(body), {
        retries: this.o.retries,
        backoffMs: exponentialBackoff(200, 2000),
        // Transport failures are retried; ours (a reply too large) are final.
        retryable: (e) => !(e instanceof HandoffError),
        again: (r) => r.status >= 500,
      });
    } catch (e) {
      throw e instanceof HandoffError ? e : new HandoffError('heavydb_unavailable', `HeavyDB ${method}: ${describeCause(e)}`, { cause: e });
    }
    if (reply.status !== 200) throw new HandoffError('heavydb_unavailable', `HeavyDB ${method}: HTTP ${reply.status}`);
    const answer = parseReply(reply.text, method);
    if (answer.type === EXCEPTION) throw new HandoffError('heavydb_unavailable', `HeavyDB ${method}: TApplicationException`);
    const fields = answer.fields;
    if (fields['0']) return fields['0'];
    // HeavyDB's message is not quoted: nothing it may say about a session reaches a log.
    if (fields['1']?.rec) throw new HandoffError('heavydb_session_invalid', `HeavyDB ${method}: TDBException`);
    throw new HandoffError('heavydb_unavailable', `HeavyDB ${method}: a reply without a result`);
  }

  /** One POST: HeavyDB's status and body; rejects on transport failures. */
  private post(body: string): Promise<{ status: number; text: string }> {
    const request = this.url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(
        this.url,
        {
          method: 'POST',
          headers: { 'Content-Type': 'application/vnd.apache.thrift.json', Accept: 'application/vnd.apache.thrift.json', 'Content-Length': Buffer.byteLength(body) },
          timeout: this.o.requestTimeoutMs,
          ...(this.ca ? { ca: this.ca } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            // A session info is a few hundred bytes; anything huge is not HeavyDB answering.
            if (size > 1 << 20) req.destroy(new HandoffError('heavydb_unavailable', 'HeavyDB: reply too large'));
            else chunks.push(c);
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new DOMException('HeavyDB did not answer in time', 'TimeoutError')));
      req.on('error', reject);
      req.end(body);
    });
  }
}

function parseReply(text: string, method: string): { type: number; fields: Struct } {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    throw new HandoffError('heavydb_unavailable', `HeavyDB ${method}: the reply is not Thrift JSON`);
  }
  if (!Array.isArray(msg) || msg[0] !== 1 || msg[1] !== method || (msg[2] !== REPLY && msg[2] !== EXCEPTION) || typeof msg[4] !== 'object' || msg[4] === null)
    throw new HandoffError('heavydb_unavailable', `HeavyDB ${method}: the reply is not a Thrift JSON reply to this call`);
  return { type: msg[2] as number, fields: msg[4] as Struct };
}

function record(v: Tagged): Struct {
  if (typeof v.rec !== 'object' || v.rec === null) throw new HandoffError('heavydb_unavailable', 'HeavyDB: a result that is not a struct');
  return v.rec as Struct;
}

const str = (v: Tagged | undefined): string => (typeof v?.str === 'string' ? v.str : '');
