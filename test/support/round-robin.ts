/**
 * A loopback HTTP proxy standing in for a Kubernetes Service in front of several replicas (and, with
 * one upstream, a request counter in front of any HTTP API).
 *
 * Semantics, chosen to be harsher than a real Service and documented here because tests rely on them:
 * - **Per request, round robin.** Every request (not every connection) goes to the next upstream in
 *   turn, so two consecutive requests of one browser, or of the hub's authenticator, never reach the same
 *   replica when there are several. kube-proxy balances per *connection* (iptables mode: a random
 *   endpoint; IPVS: round robin), so a keep-alive client would often stay on one pod; this proxy never
 *   lets it.
 * - **A refused upstream is skipped.** When connecting to an upstream fails (ECONNREFUSED: the replica
 *   is gone), the request, which never reached it, goes to the next upstream instead (each upstream is
 *   tried at most once per request, however many other requests pass meanwhile); the refusal is
 *   counted. That is a Service once the dead pod left its Endpoints; before that, kube-proxy's iptables
 *   rules would keep picking the dead endpoint for new connections (clients see connect errors until
 *   the Endpoints controller removes it). `refusedAnswer: 502` models that window instead: a refused
 *   upstream answers 502 without trying another.
 * - **A request in flight on an upstream that dies** is answered 502 (or, when its response had begun,
 *   its connection is cut), as a client of a killed pod sees a reset.
 * - **Steering.** A test that needs a request on a given replica (a ticket used on another replica
 *   than the one that issued it) sets `steer`: it sees each request (its body read) and names the
 *   upstream that gets it, or leaves it to the rotation. A steered request does not advance the
 *   rotation; one steered to a refused or withdrawn upstream goes on in turn from there.
 * Nothing is buffered but request bodies (kept to forward a skipped request unchanged); responses,
 * server-sent events included, stream through.
 */
import { Agent, createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Forwarded {
  /** Sequence number of the request at the proxy (0-based). */
  seq: number;
  /** Index of the upstream that answered, -1 when none did. */
  upstream: number;
  /** Index of the upstream the request was last sent to (it may not have answered). */
  sentTo?: number;
  method: string;
  /** Path and query as requested. */
  url: string;
  /** The response status (502 when the proxy answered for a failed upstream; 0 while in flight). */
  status: number;
  /** Why the upstream failed, when the proxy answered 502 for it (an error code such as ECONNRESET). */
  error?: string;
  /** The response's Location header, if any. */
  location?: string;
  /** The request body, when `keepBodies` (e.g. to see which login token an exchange carried). */
  body?: string;
  /** The body of an HTML or JSON response (up to 256 KiB), when `keepBodies` (e.g. the ticket a page's form or an API answer carries). */
  responseBody?: string;
  /** The upstream `steer` named for it, if any. */
  steered?: number;
  /** When the request arrived and its response ended, performance.now() milliseconds. */
  start: number;
  end?: number;
}

export interface RoundRobinOptions {
  /** What a refused upstream gets: `skip` (default) tries the next one; 502 answers at once. */
  refusedAnswer?: 'skip' | 502;
  /** Keep request bodies in the log. */
  keepBodies?: boolean;
  /** Only these paths are logged (all are forwarded and counted); default every path. */
  logFilter?: (method: string, url: string) => boolean;
}

/** Names the upstream index for a request (its `body` is set when `keepBodies`), or undefined for the rotation. */
export type Steer = (request: Forwarded) => number | undefined;

export interface RoundRobin {
  /** http://127.0.0.1:port (no trailing slash). */
  url: string;
  port: number;
  /** Upstream base URLs (origins), replaceable at any time; counts are per index. */
  upstreams: string[];
  /** Requests answered per upstream index (by a response from that upstream, whatever its status). */
  counts: number[];
  /** Connections refused per upstream index. */
  refused: number[];
  /** Requests answered by the proxy itself with 502 (upstream died in flight, or nothing left to try). */
  failed: number;
  /** Every request, in arrival order (filtered by `logFilter`). */
  log: Forwarded[];
  /** Requests received so far (forwarded or not). */
  received(): number;
  /** Resolves once `n` requests have been received. */
  waitForRequests(n: number): Promise<void>;
  /** Takes an upstream out of the rotation without renumbering (a dead pod leaving the Service's Endpoints). */
  withdraw(index: number): void;
  /** Sets new upstreams and zeroes the counts (the steering stays). */
  reset(upstreams: string[]): void;
  /** Where requests go instead of the rotation (see above); undefined: the rotation only. */
  steer: Steer | undefined;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

function forwardHeaders(h: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (!HOP_BY_HOP.has(k) && v !== undefined) out[k] = v;
  return out;
}

export async function startRoundRobin(upstreams: string[] = [], o: RoundRobinOptions = {}): Promise<RoundRobin> {
  let next = 0;
  let seq = 0;
  // A fresh connection per request: a refused connect is then always "not delivered", never a reused socket's reset.
  const agent = new Agent({ keepAlive: false });
  const waiters: { n: number; resolve: () => void }[] = [];
  const withdrawn = new Set<number>();
  const rr: Omit<RoundRobin, 'url' | 'port' | 'close'> = {
    upstreams: [...upstreams],
    counts: upstreams.map(() => 0),
    refused: upstreams.map(() => 0),
    failed: 0,
    log: [],
    steer: undefined,
    received: () => seq,
    waitForRequests: (n) => (seq >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
    withdraw: (index) => void withdrawn.add(index),
    reset(list) {
      withdrawn.clear();
      rr.upstreams = [...list];
      rr.counts = list.map(() => 0);
      rr.refused = list.map(() => 0);
      rr.failed = 0;
      rr.log.length = 0;
      next = 0;
    },
  };

  const server: Server = createServer((req, res) => {
    const entry: Forwarded = { seq: seq++, upstream: -1, method: req.method ?? 'GET', url: req.url ?? '/', status: 0, start: performance.now() };
    for (const w of waiters.filter((x) => seq >= x.n)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
    if (!o.logFilter || o.logFilter(entry.method, entry.url)) rr.log.push(entry);
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (o.keepBodies && body.length) entry.body = body.toString('utf8');
      const list = rr.upstreams;
      const fail = () => {
        rr.failed++;
        entry.status = 502;
        entry.end = performance.now();
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end('round-robin: upstream failed\n');
        else res.destroy();
      };
      const steered = rr.steer?.(entry);
      if (steered !== undefined) entry.steered = steered;
      // One pass over the upstreams at most, each tried once: starting at the steered one or else the
      // next in turn, then on in order from there (not from the rotation, which other requests advance
      // meanwhile: a skipped request could meet the refused upstream again).
      let at = steered;
      const attempt = (tries: number) => {
        if (tries >= list.length) return fail();
        const i = at === undefined ? next++ % list.length : at % list.length;
        at = i + 1;
        if (withdrawn.has(i)) return attempt(tries + 1);
        entry.sentTo = i;
        const target = new URL(req.url ?? '/', list[i]);
        const up = request(target, { agent, method: req.method, headers: { ...forwardHeaders(req.headers), 'content-length': String(body.length) } });
        let connected = false;
        up.on('socket', (s) => s.once('connect', () => (connected = true)));
        up.on('response', (r) => {
          rr.counts[i] = (rr.counts[i] ?? 0) + 1;
          entry.upstream = i;
          entry.status = r.statusCode ?? 0;
          const location = r.headers.location;
          if (location) entry.location = location;
          res.writeHead(r.statusCode ?? 502, forwardHeaders(r.headers));
          // Recorded chunk by chunk before the client gets it: a request made from the page finds it.
          if (o.keepBodies && /^(text\/html|application\/json)/.test(r.headers['content-type'] ?? '')) {
            entry.responseBody = '';
            r.on('data', (d: Buffer) => {
              if (entry.responseBody!.length < 256 * 1024) entry.responseBody += d.toString('latin1');
            });
          }
          r.pipe(res);
          r.on('end', () => (entry.end = performance.now()));
          r.on('error', () => res.destroy());
          res.on('close', () => r.destroy());
        });
        up.on('error', (e: NodeJS.ErrnoException) => {
          if (!connected && e.code === 'ECONNREFUSED') {
            rr.refused[i] = (rr.refused[i] ?? 0) + 1;
            if (o.refusedAnswer === 502) return fail();
            return attempt(tries + 1);
          }
          entry.upstream = i;
          entry.error = e.code ?? e.message;
          fail();
        });
        // A client that gives up (a closed SSE stream) ends the upstream request too.
        res.on('close', () => {
          if (!res.writableFinished) up.destroy();
        });
        up.end(body);
      };
      attempt(0);
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(rr, {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  }) as RoundRobin;
}
