/**
 * JupyterHub REST API client (4.1+ and 5.x), as the service sees it with its own role.
 * Every call has a timeout and bounded retries (connect failures, 502/503/504), and every failure
 * becomes a HandoffError whose detail names the call and what went wrong (bad token, missing scope…).
 * The API token is only ever sent in the Authorization header.
 */
import { describeCause, HandoffError } from '../errors.js';
import { exponentialBackoff, withRetries } from '../retry.js';

export interface HubServer {
  name: string;
  ready: boolean;
  /** 'spawn' | 'stop' | null (other values may come from newer hubs). */
  pending: string | null;
}

export interface HubUser {
  name: string;
  servers: Record<string, HubServer>;
}

/** One event of the hub's progress stream (GET …/server/progress). */
export interface HubProgressEvent {
  progress?: number;
  message?: string;
  ready?: boolean;
  failed?: boolean;
}

export type StartOutcome =
  | { kind: 'started' }
  | { kind: 'pending'; model?: HubUser }
  | { kind: 'running'; model: HubUser }
  | { kind: 'stopping'; model: HubUser }
  | { kind: 'failed' }
  | { kind: 'throttled'; retryAfterSeconds: number; message: string };

export interface HubClientOptions {
  apiUrl: string;
  token: string;
  requestTimeoutMs: number;
  retries: number;
  fetch?: typeof fetch;
}

const RETRY_STATUSES = new Set([502, 503, 504]);
/** JupyterHub's default slow_spawn_timeout: how long it may hold a start request before its 202. */
const HUB_START_HOLD_MS = 10_000;

interface Reply {
  status: number;
  headers: Headers;
  json: unknown;
}

export class HubClient {
  private readonly base: string;
  private readonly fetch: typeof fetch;

  constructor(private readonly opts: HubClientOptions) {
    this.base = opts.apiUrl.replace(/\/+$/, '');
    this.fetch = opts.fetch ?? globalThis.fetch;
  }

  private serverPath(user: string, server: string): string {
    const u = `/users/${encodeURIComponent(user)}`;
    return server ? `${u}/servers/${encodeURIComponent(server)}` : `${u}/server`;
  }

  /**
   * Trades an OAuth authorization code for an access token (POST /oauth2/token), authenticated as
   * the service's OAuth client like JupyterHub's HubOAuth: client id + the service API token as secret.
   * Not retried: a code is single-use.
   */
  async oauthToken(code: string, clientId: string, redirectUri: string): Promise<string> {
    const form = new URLSearchParams({ client_id: clientId, client_secret: this.opts.token, grant_type: 'authorization_code', code, redirect_uri: redirectUri });
    const r = await this.call('POST', '/oauth2/token', form, { retry5xx: false });
    this.expect(r, [200], 'POST oauth2/token');
    const access = (r.json as { access_token?: unknown } | undefined)?.access_token;
    if (typeof access !== 'string' || !access) throw new HandoffError('hub_rejected', 'POST oauth2/token: no access_token in the reply');
    return access;
  }

  /**
   * Who a token belongs to (GET /user): an OAuth access token's user, or by default this service —
   * which proves the hub answers and accepts the service's token (readiness).
   */
  async userOf(accessToken = this.opts.token, o: { once?: boolean } = {}): Promise<string> {
    const r = await this.call('GET', '/user', undefined, { token: accessToken, ...o });
    this.expect(r, [200], 'GET user');
    const name = (r.json as { name?: unknown } | undefined)?.name;
    if (typeof name !== 'string' || !name) throw new HandoffError('hub_rejected', 'GET user: no name in the reply');
    return name;
  }

  /** The user, or undefined when the hub has none of that name. */
  async getUser(user: string): Promise<HubUser | undefined> {
    const r = await this.call('GET', `/users/${encodeURIComponent(user)}`);
    if (r.status === 404) return undefined;
    this.expect(r, [200], 'GET user');
    const model = r.json as Partial<HubUser>;
    return { name: String(model.name ?? user), servers: model.servers ?? {} };
  }

  /**
   * Whether any server of the user is shared (JupyterHub 5, scope `read:shares`): a share with a user
   * or a group (GET /shares/{user}), or a live share code whoever holds its link can accept
   * (GET /share-codes/{user}). The hub lists only unexpired ones, a page at a time. A user the hub
   * does not know (yet) shares nothing: 404 "Not Found" (apihandlers/shares.py). Any other answer
   * but 200 (a missing scope, a filtered one's 404 "No access…", a hub without the shares API) is an
   * error: the caller fails closed.
   */
  async sharesAny(user: string): Promise<boolean> {
    // Both lists at once: the check adds one hub round trip to a handoff, not two.
    const listed = await Promise.all(['shares', 'share-codes'].map((kind) => this.listsAny(`/${kind}/${encodeURIComponent(user)}`, `GET ${kind}`)));
    return listed.includes(true);
  }

  /** Whether a paginated list of the hub (`{items, _pagination}`) has an item; a 404 "Not Found" (no such owner) has none. */
  private async listsAny(path: string, what: string): Promise<boolean> {
    for (let offset = 0; ; ) {
      const r = await this.call('GET', offset ? `${path}?offset=${offset}` : path);
      if (r.status === 404 && hubMessage(r) === 'Not Found') return false;
      this.expect(r, [200], what);
      const page = r.json as { items?: unknown; _pagination?: { next?: { offset?: unknown } | null } } | undefined;
      if (!Array.isArray(page?.items)) throw new HandoffError('hub_rejected', `${what}: no items in the reply`);
      if (page.items.length > 0) return true;
      // Expired entries count in a page's size but are not listed: an empty page may have a next one.
      const next = page._pagination?.next?.offset;
      if (typeof next !== 'number' || next <= offset) return false;
      offset = next;
    }
  }

  /** Creates the user (admin:users). A user created meanwhile by someone else is fine. */
  async createUser(user: string): Promise<void> {
    const r = await this.call('POST', `/users/${encodeURIComponent(user)}`, {});
    this.expect(r, [201, 409], 'POST user');
  }

  /** Requests a start. The body is the admin-configured user_options, which the hub persists. */
  async startServer(user: string, server: string, userOptions: Record<string, unknown>): Promise<StartOutcome> {
    const path = this.serverPath(user, server);
    // No retry on 5xx here: the hub answers 500 when the spawn itself failed early. The hub holds
    // the request up to its slow_spawn_timeout before answering 202: that long is not a timeout.
    const r = await this.call('POST', path, userOptions, { retry5xx: false, timeoutMs: this.opts.requestTimeoutMs + HUB_START_HOLD_MS });
    if (r.status === 201) return { kind: 'started' };
    if (r.status === 202) return { kind: 'pending' };
    if (r.status === 429) {
      const after = Number(r.headers.get('retry-after'));
      return {
        kind: 'throttled',
        retryAfterSeconds: Number.isFinite(after) && after > 0 ? after : 5,
        // The hub's own "Try again in N seconds." would contradict our retry schedule.
        message: hubMessage(r)?.replace(/ Try again in .*$/, '') ?? 'The hub is busy starting other servers.',
      };
    }
    if (r.status === 500) return { kind: 'failed' };
    if (r.status === 400) {
      // "already running" or "pending stop": the server model says which, without parsing prose.
      const model = await this.getUser(user);
      const s = model?.servers[server];
      if (model && s) {
        if (s.pending === 'stop') return { kind: 'stopping', model };
        if (s.pending === 'spawn') return { kind: 'pending', model };
        if (s.ready) return { kind: 'running', model };
      }
    }
    throw this.unexpected(r, `POST ${path}`);
  }

  /** Requests a stop; resolves true when it is done, false while it is still stopping. */
  async stopServer(user: string, server: string): Promise<boolean> {
    const path = this.serverPath(user, server);
    const r = await this.call('DELETE', path);
    this.expect(r, [202, 204], `DELETE ${path}`);
    return r.status === 204;
  }

  /**
   * The hub's progress stream for a server, until it ends or `signal` aborts. A server that is not
   * starting (400) yields nothing: the caller re-reads the server model.
   */
  async *progress(user: string, server: string, signal: AbortSignal): AsyncGenerator<HubProgressEvent> {
    const path = `${this.serverPath(user, server)}/progress`;
    let res: Response;
    // The request timeout covers the connect only: a fetch signal also governs the body, so the
    // timer is cleared once the headers are in (AbortSignal.timeout would cut a long spawn's stream).
    const connect = new AbortController();
    const timer = setTimeout(() => connect.abort(new DOMException('timed out', 'TimeoutError')), this.opts.requestTimeoutMs);
    try {
      res = await this.fetch(this.base + path, {
        headers: { Authorization: `token ${this.opts.token}`, Accept: 'text/event-stream' },
        signal: AbortSignal.any([signal, connect.signal]),
      });
    } catch (e) {
      if (signal.aborted) return;
      throw new HandoffError('hub_unavailable', `GET ${path}: ${describeCause(e)}`);
    } finally {
      clearTimeout(timer);
    }
    if (res.status === 400 || res.status === 404) {
      await res.body?.cancel();
      return;
    }
    if (res.status !== 200 || !res.body) {
      const text = await res.text().catch(() => '');
      throw this.unexpected({ status: res.status, headers: res.headers, json: parseJson(text) }, `GET ${path}`);
    }
    // The stream itself lasts as long as the caller's signal.
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    const onAbort = () => void reader.cancel().catch(() => undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read().catch((e: unknown) => {
          if (signal.aborted) return { value: undefined, done: true as const };
          throw new HandoffError('hub_unavailable', `GET ${path}: stream broke: ${describeCause(e)}`);
        });
        if (done) return;
        buffer += value.replace(/\r\n?/g, '\n');
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block
            .split('\n')
            .filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).replace(/^ /, ''))
            .join('\n');
          const event = data ? parseJson(data) : undefined;
          if (event && typeof event === 'object') yield event as HubProgressEvent;
        }
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      void reader.cancel().catch(() => undefined);
    }
  }

  /**
   * A form body (URLSearchParams) is sent form-encoded, anything else as JSON; `token` overrides the
   * service token; `timeoutMs` replaces hub.requestTimeoutMs; `once` makes a single attempt (readiness probes must answer within their timeout).
   * Connect failures, and 502/503/504 unless `retry5xx` is false, are retried; the last reply stands.
   */
  private async call(method: string, path: string, body?: unknown, o: { retry5xx?: boolean; token?: string; once?: boolean; timeoutMs?: number } = {}): Promise<Reply> {
    const retry5xx = o.retry5xx ?? true;
    const form = body instanceof URLSearchParams;
    const attempt = async (): Promise<Reply> => {
      let res: Response;
      try {
        res = await this.fetch(this.base + path, {
          method,
          headers: {
            Authorization: `token ${o.token ?? this.opts.token}`,
            Accept: 'application/json',
            ...(body === undefined ? {} : { 'Content-Type': form ? 'application/x-www-form-urlencoded' : 'application/json' }),
          },
          body: body === undefined ? null : form ? body.toString() : JSON.stringify(body),
          signal: AbortSignal.timeout(o.timeoutMs ?? this.opts.requestTimeoutMs),
        });
      } catch (e) {
        throw new HandoffError('hub_unavailable', `${method} ${path}: ${describeCause(e)}`);
      }
      const text = await res.text().catch(() => '');
      return { status: res.status, headers: res.headers, json: parseJson(text) };
    };
    const reply = await withRetries(attempt, {
      retries: o.once ? 0 : this.opts.retries,
      backoffMs: exponentialBackoff(200, 3000),
      retryable: (e) => e instanceof HandoffError && e.code === 'hub_unavailable',
      again: (r) => retry5xx && RETRY_STATUSES.has(r.status),
    });
    if (reply.status === 401 || reply.status === 403) throw this.unexpected(reply, `${method} ${path}`);
    return reply;
  }

  private expect(r: Reply, ok: number[], what: string): void {
    if (!ok.includes(r.status)) throw this.unexpected(r, what);
  }

  private unexpected(r: Reply, what: string): HandoffError {
    const msg = hubMessage(r) ?? '';
    if (r.status === 401 || (r.status === 403 && !/requires any of/.test(msg)))
      return new HandoffError('hub_unauthorized', `${what}: the hub rejected the API token (HTTP ${r.status}: ${msg})`);
    if (r.status === 403) {
      const scopes = /requires any of \[([^\]]*)\]/.exec(msg)?.[1] ?? 'unknown';
      return new HandoffError('hub_forbidden', `${what}: the service's role lacks a scope; the hub requires any of [${scopes}]`);
    }
    if (r.status >= 500) return new HandoffError('hub_unavailable', `${what}: HTTP ${r.status} ${msg}`.trim());
    return new HandoffError('hub_rejected', `${what}: HTTP ${r.status} ${msg}`.trim());
  }
}

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

/** The hub's `message`, or an OAuth error reply's `error` (invalid_grant, invalid_client…). */
function hubMessage(r: Reply): string | undefined {
  const j = r.json as { message?: unknown; error?: unknown } | undefined;
  const m = j?.message ?? j?.error;
  return typeof m === 'string' ? m : undefined;
}
