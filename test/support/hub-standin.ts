/**
 * A loopback stand-in for the JupyterHub 5 REST API: the calls this service makes (src/hub/client.ts,
 * spawn.ts, identity.ts), answered with the real hub's status codes, bodies and headers, so that hub
 * flows can be tested fast, with many replicas of the service, and with faults a real hub only
 * produces under load. test/integration/hub-standin.test.ts runs one scenario table against this and
 * a real JupyterHub 5.5 and asserts both answer alike.
 *
 * Implemented as the real hub does it (jupyterhub/apihandlers/{base,users,auth}.py, handlers/base.py,
 * scopes.py, user.py, spawner.py, oauth/provider.py in .cache/venv-hub):
 * - Errors are `{"status": N, "message": "..."}` in Python's json.dumps formatting (", ", ": ",
 *   ASCII-escaped), Content-Type application/json; no message → the HTTP reason phrase.
 * - Token auth: `Authorization: token|bearer <t>` (case-insensitive). A missing or unknown token on a
 *   scoped endpoint is 403 "Missing or invalid credentials."; on GET /user it is 403 "Forbidden".
 * - Scopes: role scopes are expanded through the hub's subscope table (servers → read:servers,
 *   delete:servers, read:users:name; admin:users → users, …) with `!user=<name>` filters. A call
 *   lacking every accepted scope is 403 "Action is not authorized with current scopes; requires any
 *   of [a, b]"; one holding them only for other users is 404 "No access to resources or resources
 *   not found". Models are filtered by scope like the hub's access maps (with `servers` alone a user
 *   model is {kind, name, admin, servers}; admin:server_state adds the server's `state`).
 * - GET /users/{name}: 200 / 404. POST /users/{name}: 201 + model / 409 "User {name} already exists"
 *   (needs admin:users). DELETE /users/{name}: 204.
 * - POST /users/{name}/server (/servers/{s}): 404 unknown user; 400 "Named servers are not enabled."
 *   (allowNamedServers false, the hub default); 202 while a spawn is pending (not 400); 400
 *   "{name} is pending stop" / "{name} is already running"; 400 "Invalid JSON in body of request";
 *   429 + Retry-After (an integer drawn from retryRange) and "Too many users trying to log in right
 *   now. Try again in N0 seconds." (rounded like the hub) when concurrentSpawnLimit spawns are
 *   pending, 429 "Active user limit exceeded. Try again in a few minutes." over activeServerLimit;
 *   then 201 when the spawn finished within slowSpawnTimeoutMs, 500 {"message": "error"} when it
 *   failed within it, else 202. Empty 201/202 bodies are text/plain. The body is the user_options
 *   (`{}` when empty), shown in the server model and recorded in `requests`.
 * - DELETE …/server: 204 when stopped within slowStopTimeoutMs (or nothing ran), 202 (text/plain)
 *   while the stop is pending; a pending spawn is cancelled first (after the hub's 1 s grace).
 * - GET …/server/progress (text/event-stream, Cache-Control: no-cache, blank-line keepalives every
 *   8 s): while spawning, `{"progress": 0, "message": "Server requested"}`, the spawner's events,
 *   then `{"progress": 100, "ready": true, "message": "Server ready at /user/x/", "html_message",
 *   "url"}` or `{"progress": 100, "failed": true, "message": "Spawn failed: <spawner's words>"}`
 *   ("Spawn cancelled" after a DELETE); a ready server gets the ready event alone; a failed spawn's
 *   failed event is repeated to every reader until the next start request replaces the spawner. As
 *   in the hub, which of 404 and 400 a server that is not starting gets depends on whether the hub
 *   holds its spawner in memory: 404 "Not Found" when it was never touched since the hub started or
 *   stopped cleanly, 400 "{name} is not starting..." after a start/stop request that left it
 *   stopped (a 429, a DELETE of a stopped server) or while it stops.
 * - GET /user: the token's owner: `{kind: "service", name, admin, token_id, session_id: null, scopes}`
 *   or, for an OAuth access token, `{kind: "user", name, admin, groups, token_id, session_id, scopes}`.
 * - OAuth (services registered with a URL are clients: id `service-<name>`, secret = the service's API
 *   token, redirect URI `{base}services/<name>/oauth_callback`): GET {base}hub/api/oauth2/authorize
 *   without a hub login cookie → 302 `{base}hub/login?next=<the request URI, quote_plus-encoded>`;
 *   unknown client or another redirect_uri → 400 (HTML); response_type other than code → 302 back
 *   with error=unsupported_response_type; a user without access:services for it → 403 "You do not have
 *   permission to access JupyterHub service <name>"; else 302 `<redirect_uri>?code=…&state=…`
 *   (30-character code, single use, 5 minutes, bound to the client). POST {base}hub/api/oauth2/token
 *   (form fields, Cache-Control: no-store, Pragma: no-cache): unsupported_grant_type 400, missing
 *   code → invalid_request "Missing code parameter." 400, bad client/secret → invalid_client 401 with
 *   WWW-Authenticate: Bearer error="invalid_client", unknown/used/expired code or another client's
 *   → invalid_grant 400, another redirect_uri → invalid_request "Mismatching redirect URI." 400 (the
 *   code survives failed attempts); else 200 {access_token, expires_in: 1209600, token_type: "Bearer",
 *   scope} — the token identifies the user (read:users:name/groups!user=<name>) only.
 * - GET {base}hub/api/ → {"version": "5.5.4"} without auth.
 * - GET /shares/{name} and /share-codes/{name} (read:shares, filtered by user): `{items,
 *   _pagination: {offset, limit, total, next: null}}` (one page), items `{server, scopes, user,
 *   group, kind, created_at}` for the shares `share()` made; 404 for an unknown user. Share codes
 *   are always none.
 *
 * Simplified (documented, not hidden):
 * - One process, in memory, no proxy: the lab URLs it names (/user/x/) are not served; no database,
 *   so a "restart" is a new stand-in.
 * - Spawners are scripted per user (SpawnBehaviour: time to ready, failure message, progress events
 *   relative to the spawn's start, stop time); by default `testSpawner()` mirrors
 *   test/support/hub/test_spawner.py (slow-* take 3 s, fail-* fail at once). Progress events are
 *   replayed from the spawn's start to every reader (KubeSpawner's behaviour; the real TestSpawner
 *   starts its own timeline per reader). No poll: a running server never dies by itself.
 * - Scope filters: `!user=` only (no `!group=` / `!server=`); roles are not modelled (a token has a
 *   scope list). Named-server limits, `remove` bookkeeping, users' own tokens and the token,
 *   group, service and sharing APIs are absent (404). The body of a start must be a JSON object or
 *   empty (the hub answers other JSON with 500 after half-starting; here 500 without starting).
 * - Hub login: `loginBrowser(name)` returns a `jupyterhub-hub-login` cookie for a user (created if
 *   needed, like the dummy authenticator); POST {base}hub/login with a `username` form field does the
 *   same without XSRF. OAuth clients never show the confirmation page (oauth_no_confirm).
 * - No XSRF, CORS, ETag or Content-Security-Policy headers.
 *
 * Test controls: `requests` (method, API path, status, caller, JSON body) and `resetRequests()`;
 * `down()` / `up()` (connection refused while down, same port after); `inject(method, path, faults)`
 * answers the next matching requests with given statuses (hub-style body), delays or connection
 * resets; `configure()` changes hub settings at runtime; `setUser(name, behaviour)`.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export const HUB_VERSION = '5.5.4';

/** How one user's spawner behaves. */
export interface SpawnBehaviour {
  /** Milliseconds from the start request until the server is ready (or the spawn fails). Default 0. */
  spawnMs?: number;
  /** The spawn fails (at spawnMs) with this message — the text of the spawner's exception. */
  fail?: string;
  /** Progress events the spawner reports, `atMs` after the spawn started (later than spawnMs: never sent). */
  progress?: { atMs: number; progress?: number; message: string }[];
  /** Milliseconds a stop takes. Default 0. */
  stopMs?: number;
}

export type Spawner = (user: string, server: string) => SpawnBehaviour;

/** test/support/hub/test_spawner.py: `slow-*` take slowMs, `fail-*` refuse to start; progress like it reports. */
export function testSpawner(slowMs = 3000): Spawner {
  return (user) => {
    const slow = user.startsWith('slow-');
    return {
      spawnMs: slow ? slowMs : 0,
      ...(user.startsWith('fail-') ? { fail: `the test spawner refuses to start ${user}` } : {}),
      progress: [
        { atMs: 0, progress: 20, message: `Preparing a server for ${user}` },
        ...(slow ? [{ atMs: slowMs / 2, progress: 50, message: 'Still pulling the image (test spawner)' }] : []),
      ],
    };
  };
}

export interface HubSettings {
  /** c.JupyterHub.concurrent_spawn_limit (0: none). Hub default 100. */
  concurrentSpawnLimit: number;
  /** c.JupyterHub.active_server_limit (0: none). */
  activeServerLimit: number;
  /** How long POST …/server waits before answering 202 (tornado setting slow_spawn_timeout, default 10 s). */
  slowSpawnTimeoutMs: number;
  /** How long DELETE …/server waits before answering 202 (slow_stop_timeout, default 10 s). */
  slowStopTimeoutMs: number;
  /** Seconds range of the Retry-After of a throttled spawn (spawn_throttle_retry_range, default [30, 60]). */
  retryRange: [number, number];
  /** c.JupyterHub.allow_named_servers (default false). */
  allowNamedServers: boolean;
}

export interface HubStandinOptions extends Partial<HubSettings> {
  /** c.JupyterHub.base_url (default '/'); the API is at {baseUrl}hub/api. */
  baseUrl?: string;
  /** The service under test and its scopes (default omnisci-handoff, ['servers', 'read:shares']). */
  serviceName?: string;
  serviceScopes?: readonly string[];
  /** Whether the service is an OAuth client (a hub service registered with a url). Default true. */
  oauthClient?: boolean;
  /** Further services: name → scopes; their tokens are in `extraTokens`. */
  extraServices?: Record<string, readonly string[]>;
  /** Users that exist from the start. */
  users?: string[];
  /** Spawner for users without their own behaviour (default testSpawner()). */
  spawner?: Spawner;
  /** Listen on this port (default: a free one). */
  port?: number;
}

/** One API request as the stand-in answered it. */
export interface HubRequest {
  /** Date.now() when it arrived. */
  at: number;
  method: string;
  /** Path under the API (e.g. /users/alice/server), or the full path for the login page. */
  path: string;
  /** The query string without '?' ('' if none). */
  query: string;
  status: number;
  /** 'service:<name>', 'user:<name>' (an OAuth access token), 'invalid' (unknown token) or 'anonymous'. */
  caller: string;
  /** The parsed JSON body (user_options of a start); never recorded for the OAuth token endpoint. */
  body?: unknown;
  /** Answered by an injected fault. */
  injected?: boolean;
}

/** An injected answer: a status (hub-style error body), a delay before the real answer, or a dropped connection. */
export type Fault = number | { status?: number; headers?: Record<string, string>; delayMs?: number; reset?: boolean };

export interface ServerView {
  phase: 'stopped' | 'spawning' | 'running' | 'stopping';
  ready: boolean;
  pending: 'spawn' | 'stop' | null;
  userOptions: unknown;
  /** Start requests that began a spawn. */
  spawns: number;
  /** The last spawn's failure message while the hub keeps it. */
  failure?: string;
}

export interface HubStandin {
  /** e.g. http://127.0.0.1:40123 (no trailing slash); also the "public" URL (no proxy). */
  publicUrl: string;
  /** {publicUrl}{baseUrl}hub/api (no trailing slash). */
  apiUrl: string;
  port: number;
  serviceName: string;
  serviceToken: string;
  /** A service with admin:users, admin:servers, list:users (like startHub's test-admin). */
  adminToken: string;
  extraTokens: Record<string, string>;
  /** OAuth client id and redirect URI of the service (when it is a client). */
  oauthClientId: string;
  oauthRedirectUri: string;
  /** Current hub settings (change them with configure). */
  readonly settings: Readonly<HubSettings>;
  configure(settings: Partial<HubSettings>): void;
  /** Every request so far (oldest first). */
  readonly requests: HubRequest[];
  resetRequests(): void;
  /** How many recorded requests match (method '*' = any; path exact or RegExp). */
  count(method: string, path: string | RegExp): number;
  /** The user_options bodies of every start request for that server, in order. */
  userOptionsSent(user: string, server?: string): unknown[];
  /** Names of the existing users. */
  users(): string[];
  /** Creates a user (no API call recorded). serviceAccess: whether the user's role grants access:services for the OAuth client (default true). */
  addUser(name: string, o?: { admin?: boolean; serviceAccess?: boolean }): void;
  /** Creates the user if needed and sets its spawner behaviour (undefined: back to the default spawner). */
  setUser(name: string, behaviour?: SpawnBehaviour): void;
  removeUser(name: string): void;
  server(user: string, server?: string): ServerView | undefined;
  /** A Cookie header value that makes a browser logged in to the hub as `name` (created if needed). */
  loginBrowser(name: string): string;
  /** Shares `owner`'s server with the user `guest`, as POST /shares/{owner}/{server} {"user": guest} does. */
  share(owner: string, server: string, guest: string): void;
  /** A token for `owner` with exactly these (raw) scopes. */
  addToken(owner: { service: string } | { user: string }, scopes: readonly string[]): string;
  /** The next requests matching method + API path get these faults, one each. */
  inject(method: string, path: string | RegExp, faults: Fault[]): void;
  /** Closes the listener and every connection: connection refused until up(). */
  down(): Promise<void>;
  up(): Promise<void>;
  stop(): Promise<void>;
}

// --- scopes -------------------------------------------------------------------------------------

/** The hub's subscope graph (jupyterhub/scopes.py scope_definitions, subscopes only). */
const SUBSCOPES: Record<string, string[]> = {
  'admin:users': ['admin:auth_state', 'users', 'read:roles:users', 'delete:users'],
  users: ['read:users', 'list:users', 'users:activity'],
  'list:users': ['read:users:name'],
  'read:users': ['read:users:name', 'read:users:groups', 'read:users:activity'],
  'read:roles': ['read:roles:users', 'read:roles:services', 'read:roles:groups'],
  'users:activity': ['read:users:activity'],
  'admin:servers': ['admin:server_state', 'servers'],
  servers: ['read:servers', 'delete:servers'],
  'read:servers': ['read:users:name'],
  tokens: ['read:tokens'],
  'admin:groups': ['groups', 'read:roles:groups', 'delete:groups'],
  groups: ['read:groups', 'list:groups'],
  'list:groups': ['read:groups:name'],
  'read:groups': ['read:groups:name'],
  'admin:services': ['list:services', 'read:services', 'read:roles:services'],
  'list:services': ['read:services:name'],
  'read:services': ['read:services:name'],
  'users:shares': ['read:users:shares'],
  'groups:shares': ['read:groups:shares'],
  shares: ['access:servers', 'read:shares', 'users:shares', 'groups:shares'],
};

/** Expands raw scopes (with an optional `!kind=value` filter each) into the set of scopes they grant. */
export function expandScopes(raw: readonly string[]): string[] {
  const out = new Set<string>();
  const add = (base: string, filter: string) => {
    const s = filter ? `${base}!${filter}` : base;
    if (out.has(s)) return;
    out.add(s);
    for (const sub of SUBSCOPES[base] ?? []) add(sub, filter);
  };
  for (const s of raw) {
    const [base = '', filter = ''] = s.split('!');
    add(base, filter);
  }
  // An unfiltered scope makes the filtered variants of it redundant (the hub reduces them too).
  for (const s of [...out]) if (s.includes('!') && out.has(s.split('!')[0]!)) out.delete(s);
  return [...out].sort();
}

type Parsed = Map<string, 'all' | { user: Set<string>; service: Set<string> }>;

function parseScopes(expanded: readonly string[]): Parsed {
  const parsed: Parsed = new Map();
  for (const s of expanded) {
    const [base = '', filter] = s.split('!');
    if (!filter) {
      parsed.set(base, 'all');
      continue;
    }
    const cur = parsed.get(base);
    if (cur === 'all') continue;
    const f = cur ?? { user: new Set<string>(), service: new Set<string>() };
    const [kind, value = ''] = filter.split('=');
    if (kind === 'user' || kind === 'service') f[kind].add(value);
    parsed.set(base, f);
  }
  return parsed;
}

function hasScope(parsed: Parsed, scope: string, user?: string): boolean {
  const f = parsed.get(scope);
  if (f === undefined) return false;
  return f === 'all' || (user !== undefined && f.user.has(user));
}

/** Which user model keys a scope lets one read (apihandlers/base.py user_model access_map). */
const USER_ACCESS: Record<string, string[]> = {
  'read:users': ['kind', 'name', 'admin', 'roles', 'groups', 'server', 'pending', 'created', 'last_activity'],
  'read:users:name': ['kind', 'name', 'admin'],
  'read:users:groups': ['kind', 'name', 'groups'],
  'read:users:activity': ['kind', 'name', 'last_activity'],
  'read:servers': ['kind', 'name', 'servers'],
  'read:roles:users': ['kind', 'name', 'roles', 'admin'],
  'admin:auth_state': ['kind', 'name', 'auth_state'],
};

const USER_READ_SCOPES = ['read:users', 'read:users:name', 'read:servers', 'read:users:groups', 'read:users:activity', 'read:roles:users'];

// --- helpers ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(
    readonly status: number,
    message = '',
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Python's json.dumps with its defaults: ", " and ": " separators, non-ASCII escaped. */
export function pyJson(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return JSON.stringify(v).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (typeof v === 'number' || typeof v === 'boolean') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(pyJson).join(', ')}]`;
  return `{${Object.entries(v as Record<string, unknown>)
    .filter(([, x]) => x !== undefined)
    .map(([k, x]) => `${pyJson(k)}: ${pyJson(x)}`)
    .join(', ')}}`;
}

/** urllib.parse.quote_plus (safe=''), as tornado builds the login redirect's next=. */
function quotePlus(s: string): string {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');
}

/** url_escape_path: quote(s, safe='@~'). */
function escapePath(s: string): string {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%40/g, '@');
}

/** The hub's isoformat: UTC with microseconds and Z. */
const iso = (t = Date.now()) => new Date(t).toISOString().replace('Z', '000Z');

const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
/** oauthlib's generate_token: 30 characters of [A-Za-z0-9]. */
const oauthToken = () => Array.from({ length: 30 }, () => ALNUM[randomInt(ALNUM.length)]).join('');

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

const htmlPage = (message: string) =>
  `<!DOCTYPE HTML>\n<html lang="en">\n<head><meta charset="utf-8"><title>JupyterHub</title></head>\n<body><div class="error"><p>${message
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')}</p></div></body>\n</html>\n`;

// --- state --------------------------------------------------------------------------------------

interface ProgressEvent {
  progress?: number;
  message: string;
  ready?: boolean;
  failed?: boolean;
  html_message?: string;
  url?: string;
}

type Outcome = 'ready' | 'failed' | 'cancelled';

interface ServerState {
  name: string;
  /** The hub holds a Spawner object for it (user.spawners): decides 404 vs 400 on progress. */
  inMemory: boolean;
  /** The database has it (named servers: created by their first start). */
  inDb: boolean;
  phase: ServerView['phase'];
  started: string | null;
  lastActivity: string | null;
  userOptions: unknown;
  spawns: number;
  /** The outcome of the last spawn while the hub keeps its spawner (failed spawns are kept). */
  failure?: string;
  cancelled?: boolean;
  /** The running spawn: its events so far, readers, timers and settlement. */
  spawn?: {
    events: ProgressEvent[];
    readers: Set<(e: ProgressEvent, last: boolean) => void>;
    timers: NodeJS.Timeout[];
    settled: Promise<Outcome>;
    settle(o: Outcome): void;
  };
  stopDone?: Promise<void>;
}

interface UserState {
  name: string;
  admin: boolean;
  serviceAccess: boolean;
  created: string;
  lastActivity: string | null;
  servers: Map<string, ServerState>;
  behaviour?: SpawnBehaviour;
}

interface TokenInfo {
  id: string;
  kind: 'service' | 'user';
  owner: string;
  /** Expanded scopes. */
  scopes: string[];
  sessionId: string | null;
}

interface OAuthClient {
  id: string;
  secret: string;
  redirectUri: string;
  service: string;
}

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  path: string;
  query: URLSearchParams;
  rawBody: string;
  token?: TokenInfo;
  record: HubRequest;
}

// --- the stand-in -------------------------------------------------------------------------------

export async function startHubStandin(opts: HubStandinOptions = {}): Promise<HubStandin> {
  const base = `/${(opts.baseUrl ?? '/').replace(/^\/+|\/+$/g, '')}/`.replace(/^\/\/$/, '/');
  const apiPrefix = `${base}hub/api`;
  const settings: HubSettings = {
    concurrentSpawnLimit: opts.concurrentSpawnLimit ?? 100,
    activeServerLimit: opts.activeServerLimit ?? 0,
    slowSpawnTimeoutMs: opts.slowSpawnTimeoutMs ?? 10_000,
    slowStopTimeoutMs: opts.slowStopTimeoutMs ?? 10_000,
    retryRange: opts.retryRange ?? [30, 60],
    allowNamedServers: opts.allowNamedServers ?? false,
  };
  const spawner = opts.spawner ?? testSpawner();
  const users = new Map<string, UserState>();
  const tokens = new Map<string, TokenInfo>();
  const cookies = new Map<string, string>();
  const codes = new Map<string, { client: string; user: string; sessionId: string; expires: number }>();
  const clients = new Map<string, OAuthClient>();
  const faults: { method: string; path: string | RegExp; fault: Fault }[] = [];
  const requests: HubRequest[] = [];
  /** `owner/server` → the guests it is shared with. */
  const shares = new Map<string, string[]>();
  let tokenSeq = 0;
  let closed = false;

  const addToken: HubStandin['addToken'] = (owner, scopes) => {
    const token = randomBytes(24).toString('hex');
    const kind = 'service' in owner ? 'service' : 'user';
    tokens.set(token, { id: `a${++tokenSeq}`, kind, owner: 'service' in owner ? owner.service : owner.user, scopes: expandScopes(scopes), sessionId: null });
    return token;
  };

  const serviceName = opts.serviceName ?? 'omnisci-handoff';
  const serviceToken = addToken({ service: serviceName }, opts.serviceScopes ?? ['servers', 'read:shares']);
  const adminToken = addToken({ service: 'test-admin' }, ['admin:users', 'admin:servers', 'list:users']);
  const extraTokens = Object.fromEntries(Object.entries(opts.extraServices ?? {}).map(([name, scopes]) => [name, addToken({ service: name }, scopes)]));
  const oauthClientId = `service-${serviceName}`;
  const oauthRedirectUri = `${base}services/${serviceName}/oauth_callback`;
  if (opts.oauthClient ?? true) clients.set(oauthClientId, { id: oauthClientId, secret: serviceToken, redirectUri: oauthRedirectUri, service: serviceName });

  const addUser: HubStandin['addUser'] = (name, o = {}) => {
    if (users.has(name)) return;
    users.set(name, { name, admin: o.admin ?? false, serviceAccess: o.serviceAccess ?? true, created: iso(), lastActivity: null, servers: new Map() });
  };
  for (const u of opts.users ?? []) addUser(u);

  const serverOf = (u: UserState, name: string): ServerState => {
    let s = u.servers.get(name);
    if (!s) {
      s = { name, inMemory: false, inDb: name === '', phase: 'stopped', started: null, lastActivity: null, userOptions: {}, spawns: 0 };
      u.servers.set(name, s);
    }
    return s;
  };
  const behaviourOf = (u: UserState, server: string): SpawnBehaviour => u.behaviour ?? spawner(u.name, server);
  const logName = (u: UserState, s: ServerState) => (s.name ? `${u.name}:${s.name}` : u.name);
  const pendingOf = (s: ServerState): 'spawn' | 'stop' | null => (s.phase === 'spawning' ? 'spawn' : s.phase === 'stopping' ? 'stop' : null);
  const userUrl = (u: UserState) => `${base}user/${escapePath(u.name)}/`;
  const serverUrl = (u: UserState, s: ServerState) => (s.name ? `${userUrl(u)}${escapePath(s.name)}/` : userUrl(u));
  const progressUrl = (u: UserState, s: ServerState) =>
    `${apiPrefix}/users/${escapePath(u.name)}/${s.name ? `servers/${escapePath(s.name)}` : 'server'}/progress`;
  const allServers = () => [...users.values()].flatMap((u) => [...u.servers.values()]);

  // --- models ---

  function serverModel(ctx: Ctx, u: UserState, s: ServerState): Record<string, unknown> {
    const pending = pendingOf(s);
    return {
      name: s.name,
      full_name: `${u.name}/${s.name}`,
      last_activity: s.lastActivity,
      started: s.started,
      pending,
      ready: s.phase === 'running',
      stopped: false,
      url: serverUrl(u, s),
      user_options: s.userOptions,
      progress_url: progressUrl(u, s),
      full_url: null,
      full_progress_url: null,
      ...(hasScope(parsedOf(ctx), 'admin:server_state', u.name) ? { state: {} } : {}),
    };
  }

  function userModel(ctx: Ctx, u: UserState, extraScopes: string[] = []): Record<string, unknown> {
    const parsed = parseScopes([...(ctx.token?.scopes ?? []), ...extraScopes]);
    const def = u.servers.get('');
    const full: Record<string, unknown> = {
      kind: 'user',
      name: u.name,
      admin: u.admin,
      roles: u.admin ? ['admin', 'user'] : ['user'],
      groups: [],
      server: def?.phase === 'running' ? userUrl(u) : null,
      pending: def?.inMemory ? pendingOf(def) : null,
      created: u.created,
      last_activity: u.lastActivity,
      auth_state: null,
    };
    const allowed = new Set<string>();
    for (const [scope, keys] of Object.entries(USER_ACCESS)) if (hasScope(parsed, scope, u.name)) keys.forEach((k) => allowed.add(k));
    const model: Record<string, unknown> = {};
    for (const k of Object.keys(full)) if (allowed.has(k)) model[k] = full[k];
    if (!Object.keys(model).length) return model;
    const servers: Record<string, unknown> = {};
    if (hasScope(parsed, 'read:servers', u.name)) {
      for (const s of u.servers.values()) if (s.inMemory && s.phase !== 'stopped') servers[s.name] = serverModel(ctx, u, s);
    }
    if (allowed.has('servers') || Object.keys(servers).length) model.servers = servers;
    return model;
  }

  const parsedCache = new WeakMap<Ctx, Parsed>();
  function parsedOf(ctx: Ctx): Parsed {
    let p = parsedCache.get(ctx);
    if (!p) parsedCache.set(ctx, (p = parseScopes(ctx.token?.scopes ?? [])));
    return p;
  }

  /** scopes.needs_scope: any of `scopes` for `user` (or unfiltered when user is undefined). */
  function needsScope(ctx: Ctx, scopes: string[], user?: string): void {
    if (!ctx.token) throw new ApiError(403, 'Missing or invalid credentials.');
    const parsed = parsedOf(ctx);
    if (scopes.some((s) => hasScope(parsed, s, user))) return;
    if (user !== undefined && scopes.some((s) => parsed.has(s))) throw new ApiError(404, 'No access to resources or resources not found');
    throw new ApiError(403, `Action is not authorized with current scopes; requires any of [${scopes.join(', ')}]`);
  }

  function jsonBody(ctx: Ctx): unknown {
    const text = ctx.rawBody.trim();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      throw new ApiError(400, 'Invalid JSON in body of request');
    }
  }

  const findUser = (name: string) => users.get(name);

  // --- spawning ---

  function beginSpawn(u: UserState, s: ServerState, options: unknown): void {
    const b = behaviourOf(u, s.name);
    const spawnMs = Math.max(0, b.spawnMs ?? 0);
    const now = Date.now();
    s.phase = 'spawning';
    s.inMemory = true;
    s.inDb = true;
    s.spawns++;
    s.failure = undefined;
    s.cancelled = undefined;
    s.userOptions = options ?? {};
    s.started = s.lastActivity = u.lastActivity = iso(now);
    let settle!: (o: Outcome) => void;
    const settled = new Promise<Outcome>((r) => (settle = r));
    const spawn: NonNullable<ServerState['spawn']> = { events: [], readers: new Set(), timers: [], settled, settle };
    s.spawn = spawn;
    const emit = (e: ProgressEvent, last = false) => {
      if (!last) spawn.events.push(e);
      for (const r of [...spawn.readers]) r(e, last);
    };
    emit({ progress: 0, message: 'Server requested' });
    for (const p of b.progress ?? []) {
      if (p.atMs > spawnMs) continue;
      const t = setTimeout(() => s.spawn === spawn && s.phase === 'spawning' && emit({ ...(p.progress === undefined ? {} : { progress: p.progress }), message: p.message }), p.atMs);
      t.unref();
      spawn.timers.push(t);
    }
    const done = setTimeout(() => {
      if (s.spawn !== spawn || s.phase !== 'spawning') return;
      spawn.timers.forEach(clearTimeout);
      s.spawn = undefined;
      if (b.fail !== undefined) {
        s.phase = 'stopped';
        s.started = null;
        s.failure = b.fail;
        emit(failedEvent(s), true);
        settle('failed');
      } else {
        s.phase = 'running';
        emit(readyEvent(u, s), true);
        settle('ready');
      }
    }, spawnMs);
    done.unref();
    spawn.timers.push(done);
  }

  function cancelSpawn(s: ServerState): void {
    const spawn = s.spawn;
    if (!spawn) return;
    spawn.timers.forEach(clearTimeout);
    s.spawn = undefined;
    s.phase = 'stopped';
    s.cancelled = true;
    for (const r of [...spawn.readers]) r(failedEvent(s), true);
    spawn.settle('cancelled');
  }

  const readyEvent = (u: UserState, s: ServerState): ProgressEvent => {
    const url = serverUrl(u, s);
    return { progress: 100, ready: true, message: `Server ready at ${url}`, html_message: `Server ready at <a href="${url}">${url}</a>`, url };
  };
  const failedEvent = (s: ServerState): ProgressEvent => ({
    progress: 100,
    failed: true,
    message: s.cancelled ? 'Spawn cancelled' : `Spawn failed: ${s.failure ?? ''}`,
  });

  /** Stops a server; resolves when it is stopped (the spawner leaves the hub's memory: a clean stop). */
  function beginStop(u: UserState, s: ServerState): Promise<void> {
    const b = behaviourOf(u, s.name);
    s.phase = 'stopping';
    s.stopDone = new Promise<void>((r) => {
      const t = setTimeout(() => {
        s.phase = 'stopped';
        s.started = null;
        s.stopDone = undefined;
        s.lastActivity = u.lastActivity = iso();
        if (!s.failure && !s.cancelled) s.inMemory = false;
        r();
      }, Math.max(0, b.stopMs ?? 0));
      t.unref();
    });
    return s.stopDone;
  }

  async function waitAtMost<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
    let timer: NodeJS.Timeout | undefined;
    // Unref'd: a request held when the stand-in stops must not keep the test process alive.
    const t = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms).unref()));
    try {
      return await Promise.race([p, t]);
    } finally {
      clearTimeout(timer);
    }
  }

  // --- handlers ---

  function send(ctx: Ctx, status: number, body?: unknown, headers: Record<string, string> = {}, contentType = 'application/json'): void {
    const text = body === undefined ? '' : typeof body === 'string' ? body : pyJson(body);
    const h: Record<string, string> = { 'X-JupyterHub-Version': HUB_VERSION, 'Access-Control-Allow-Headers': 'accept, content-type, authorization', ...headers };
    if (status !== 204) {
      h['Content-Type'] = contentType;
      h['Content-Length'] = String(Buffer.byteLength(text));
    }
    ctx.record.status = status;
    ctx.res.writeHead(status, h);
    ctx.res.end(status === 204 ? undefined : text);
  }

  function sendError(ctx: Ctx, e: ApiError): void {
    send(ctx, e.status, { status: e.status, message: e.message || STATUS_CODES[e.status] || 'Unknown Error' }, e.headers);
  }

  async function getUser(ctx: Ctx, name: string): Promise<void> {
    needsScope(ctx, USER_READ_SCOPES, name);
    const u = findUser(name);
    if (!u) throw new ApiError(404);
    send(ctx, 200, userModel(ctx, u));
  }

  async function postUser(ctx: Ctx, name: string): Promise<void> {
    needsScope(ctx, ['admin:users'], name);
    const data = jsonBody(ctx);
    if (findUser(name)) throw new ApiError(409, `User ${name} already exists`);
    if (data) {
      if (typeof data !== 'object' || Array.isArray(data)) throw new ApiError(400, `Invalid JSON data: ${ctx.rawBody.trim()}`);
      const keys = Object.keys(data);
      if (!keys.every((k) => ['name', 'admin', 'groups', 'roles', 'auth_state'].includes(k))) throw new ApiError(400, `Invalid JSON keys: ${ctx.rawBody.trim()}`);
      if ((data as { admin?: unknown }).admin) throw new ApiError(403, 'Only admins can grant admin permissions');
    }
    addUser(name);
    send(ctx, 201, userModel(ctx, findUser(name)!));
  }

  async function deleteUser(ctx: Ctx, name: string): Promise<void> {
    needsScope(ctx, ['delete:users'], name);
    const u = findUser(name);
    if (!u) throw new ApiError(404);
    for (const s of u.servers.values()) {
      if (s.phase === 'stopping') throw new ApiError(400, `${name}'s server is in the process of stopping, please wait.`);
      cancelSpawn(s);
      if (s.phase === 'running') await beginStop(u, s);
    }
    users.delete(name);
    send(ctx, 204);
  }

  async function startServer(ctx: Ctx, name: string, serverName: string): Promise<void> {
    needsScope(ctx, ['servers'], name);
    const u = findUser(name);
    if (!u) throw new ApiError(404);
    if (serverName && !settings.allowNamedServers) throw new ApiError(400, 'Named servers are not enabled.');
    const s = serverOf(u, serverName);
    // user.get_spawner(replace_failed=True): a failed spawner is replaced by a fresh one.
    s.inMemory = true;
    if (s.phase === 'stopped') s.failure = s.cancelled = undefined;
    const pending = pendingOf(s);
    if (pending === 'spawn') return send(ctx, 202, '', {}, 'text/plain');
    if (pending) throw new ApiError(400, `${logName(u, s)} is pending ${pending}`);
    if (s.phase === 'running') throw new ApiError(400, `${logName(u, s)} is already running`);
    const options = jsonBody(ctx);
    if (options !== null && (typeof options !== 'object' || Array.isArray(options))) throw new ApiError(500);
    const spawning = allServers().filter((x) => x.phase === 'spawning').length;
    if (settings.concurrentSpawnLimit && spawning >= settings.concurrentSpawnLimit) {
      const [lo, hi] = settings.retryRange;
      const retry = Math.trunc(lo + Math.random() * (hi - lo));
      const human = retry <= 90 ? `${Math.ceil(retry / 10)}0 seconds` : `${Math.round(retry / 60)} minutes`;
      throw new ApiError(429, `Too many users trying to log in right now. Try again in ${human}.`, { 'Retry-After': String(retry) });
    }
    const active = allServers().filter((x) => x.phase !== 'stopped').length;
    if (settings.activeServerLimit && active >= settings.activeServerLimit) throw new ApiError(429, 'Active user limit exceeded. Try again in a few minutes.');
    beginSpawn(u, s, options);
    const outcome = await waitAtMost(s.spawn!.settled, settings.slowSpawnTimeoutMs);
    if (outcome === 'timeout') return send(ctx, 202, '', {}, 'text/plain');
    // A spawn that failed early: the exception's reason ('error') becomes the message.
    if (outcome !== 'ready') throw new ApiError(500, 'error');
    send(ctx, 201, '', {}, 'text/plain');
  }

  async function stopServer(ctx: Ctx, name: string, serverName: string): Promise<void> {
    needsScope(ctx, ['delete:servers'], name);
    const u = findUser(name);
    if (!u) throw new ApiError(404);
    const options = jsonBody(ctx) as { remove?: unknown } | null;
    const remove = Boolean(options && typeof options === 'object' && options.remove);
    if (serverName) {
      if (!settings.allowNamedServers) throw new ApiError(400, 'Named servers are not enabled.');
      if (!u.servers.get(serverName)?.inDb) throw new ApiError(404, `${name} has no server named '${serverName}'`);
    } else if (remove) throw new ApiError(400, 'Cannot delete the default server');
    const s = serverOf(u, serverName);
    s.inMemory = true;
    if (s.phase === 'stopping') return send(ctx, 202, '', {}, 'text/plain');
    let stopping: Promise<void> | undefined;
    if (s.phase === 'spawning') {
      cancelSpawn(s);
      await sleep(1000);
      s.cancelled = undefined;
      stopping = beginStop(u, s);
    } else if (s.phase === 'running') {
      stopping = beginStop(u, s);
    }
    if (remove) void (stopping ?? Promise.resolve()).then(() => u.servers.delete(serverName));
    if (stopping && (await waitAtMost(stopping, settings.slowStopTimeoutMs)) === 'timeout') return send(ctx, 202, '', {}, 'text/plain');
    send(ctx, 204);
  }

  async function progress(ctx: Ctx, name: string, serverName: string): Promise<void> {
    needsScope(ctx, ['read:servers'], name);
    const u = findUser(name);
    if (!u) throw new ApiError(404);
    const s = u.servers.get(serverName);
    if (!s?.inMemory) throw new ApiError(404);
    const res = ctx.res;
    const open = () => {
      ctx.record.status = 200;
      res.writeHead(200, {
        'X-JupyterHub-Version': HUB_VERSION,
        'Content-Type': 'text/event-stream',
        'Cache-Control': 'no-cache',
        'Access-Control-Allow-Headers': 'accept, content-type, authorization',
      });
    };
    const write = (e: ProgressEvent) => res.write(`data: ${pyJson(e)}\n\n`);
    if (s.phase === 'running') {
      open();
      write(readyEvent(u, s));
      return void res.end();
    }
    const spawn = s.spawn;
    if (!spawn) {
      if (!s.failure && !s.cancelled) throw new ApiError(400, `${logName(u, s)} is not starting...`);
      open();
      write(failedEvent(s));
      return void res.end();
    }
    open();
    res.write('\n\n');
    const keepalive = setInterval(() => res.write('\n\n'), 8000);
    keepalive.unref();
    await new Promise<void>((resolve) => {
      const reader = (e: ProgressEvent, last: boolean) => {
        write(e);
        if (last) finish();
      };
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        spawn.readers.delete(reader);
        clearInterval(keepalive);
        res.end();
        resolve();
      };
      for (const e of spawn.events) write(e);
      spawn.readers.add(reader);
      res.on('close', finish);
    });
  }

  async function self(ctx: Ctx): Promise<void> {
    const t = ctx.token;
    if (!t) throw new ApiError(403);
    let model: Record<string, unknown>;
    if (t.kind === 'service') {
      model = { kind: 'service', name: t.owner, admin: false };
    } else {
      const u = findUser(t.owner);
      if (!u) throw new ApiError(403);
      // The identify scopes a token always has on its owner.
      model = userModel(ctx, u, [`read:users:name!user=${u.name}`, `read:users:groups!user=${u.name}`]);
    }
    send(ctx, 200, { ...model, token_id: t.id, session_id: t.sessionId, scopes: t.scopes });
  }

  function authorize(ctx: Ctx): void {
    const html = (status: number, message: string) => send(ctx, status, htmlPage(message), {}, 'text/html; charset=UTF-8');
    const user = findUser(cookies.get(cookieValue(ctx.req, 'jupyterhub-hub-login') ?? '') ?? '');
    if (!user) {
      // tornado's @authenticated: the login page, with this request's URI as next.
      return send(ctx, 302, '', { Location: `${base}hub/login?next=${quotePlus(ctx.req.url ?? '')}` }, 'text/html');
    }
    const q = ctx.query;
    const client = clients.get(q.get('client_id') ?? '');
    if (!q.get('client_id')) return html(400, 'Missing client_id parameter.');
    if (!client) return html(400, 'Invalid client_id parameter value.');
    const redirect = q.get('redirect_uri') ?? client.redirectUri;
    if (redirect !== client.redirectUri) return html(400, 'Mismatching redirect URI.');
    const back = (params: Record<string, string>) => {
      const state = q.get('state');
      const qs = new URLSearchParams({ ...params, ...(state === null ? {} : { state }) });
      send(ctx, 302, '', { Location: `${redirect}${redirect.includes('?') ? '&' : '?'}${qs}` }, 'text/html');
    };
    const rt = q.get('response_type');
    if (!rt) return back({ error: 'invalid_request', error_description: 'Missing response_type parameter.' });
    if (rt !== 'code') return back({ error: 'unsupported_response_type' });
    if (!user.serviceAccess) return html(403, `You do not have permission to access JupyterHub service ${client.service}`);
    let sessionId = cookieValue(ctx.req, 'jupyterhub-session-id');
    if (!sessionId) {
      sessionId = randomBytes(16).toString('hex');
      ctx.res.setHeader('Set-Cookie', `jupyterhub-session-id=${sessionId}; HttpOnly; Path=/`);
    }
    const code = oauthToken();
    codes.set(code, { client: client.id, user: user.name, sessionId, expires: Date.now() + 300_000 });
    back({ code });
  }

  function token(ctx: Ctx): void {
    const form = new URLSearchParams(ctx.rawBody);
    const headers = { 'Cache-Control': 'no-store', Pragma: 'no-cache' };
    const fail = (status: number, error: string, description?: string, extra: Record<string, string> = {}) =>
      send(ctx, status, { error, ...(description ? { error_description: description } : {}) }, { ...headers, ...extra });
    if (form.get('grant_type') !== 'authorization_code') return fail(400, 'unsupported_grant_type');
    const code = form.get('code');
    if (code === null) return fail(400, 'invalid_request', 'Missing code parameter.');
    const client = clients.get(form.get('client_id') ?? '');
    const secret = form.get('client_secret');
    if (!client || !secret || secret !== client.secret) return fail(401, 'invalid_client', undefined, { 'WWW-Authenticate': 'Bearer error="invalid_client"' });
    const c = codes.get(code);
    if (!c || c.client !== client.id || c.expires <= Date.now()) return fail(400, 'invalid_grant');
    const redirect = form.get('redirect_uri');
    if (redirect !== null && redirect !== client.redirectUri) return fail(400, 'invalid_request', 'Mismatching redirect URI.');
    codes.delete(code);
    const access = oauthToken();
    tokens.set(access, {
      id: `a${++tokenSeq}`,
      kind: 'user',
      owner: c.user,
      scopes: expandScopes([`access:services!service=${client.service}`, `read:users:name!user=${c.user}`, `read:users:groups!user=${c.user}`]),
      sessionId: c.sessionId,
    });
    send(ctx, 200, { access_token: access, expires_in: 1_209_600, token_type: 'Bearer', scope: `access:services!service=${client.service} read:users:name!user read:users:groups!user` }, headers);
  }

  async function route(ctx: Ctx): Promise<void> {
    const { method } = ctx;
    const p = ctx.path;
    if (p === '' || p === '/') {
      if (method !== 'GET') throw new ApiError(405);
      return send(ctx, 200, { version: HUB_VERSION }, { 'Access-Control-Allow-Origin': '*' });
    }
    if (p === '/user') {
      if (method !== 'GET') throw new ApiError(405);
      return self(ctx);
    }
    if (p === '/oauth2/token') {
      if (method !== 'POST') throw new ApiError(405);
      return token(ctx);
    }
    if (p === '/oauth2/authorize') {
      if (method !== 'GET') throw new ApiError(405);
      return authorize(ctx);
    }
    const seg = p.split('/').slice(1);
    if ((seg[0] === 'shares' || seg[0] === 'share-codes') && seg[1] && seg.length === 2) {
      if (method !== 'GET') throw new ApiError(405);
      return listShares(ctx, seg[0], decodeURIComponent(seg[1]));
    }
    if (seg[0] !== 'users' || !seg[1]) throw new ApiError(404);
    let name: string;
    let serverName = '';
    try {
      name = decodeURIComponent(seg[1]);
      if (seg[2] === 'servers' && seg[3] !== undefined) serverName = decodeURIComponent(seg[3]);
    } catch {
      throw new ApiError(404);
    }
    const rest = seg.slice(2);
    const is = (...parts: string[]) => rest.length === parts.length && parts.every((x, i) => x === '*' || rest[i] === x);
    if (is()) {
      if (method === 'GET') return getUser(ctx, name);
      if (method === 'POST') return postUser(ctx, name);
      if (method === 'DELETE') return deleteUser(ctx, name);
      throw new ApiError(405);
    }
    if (is('server') || is('servers', '*')) {
      if (method === 'POST') return startServer(ctx, name, serverName);
      if (method === 'DELETE') return stopServer(ctx, name, serverName);
      throw new ApiError(405);
    }
    if (is('server', 'progress') || is('servers', '*', 'progress')) {
      if (method === 'GET') return progress(ctx, name, serverName);
      throw new ApiError(405);
    }
    throw new ApiError(404);
  }

  /** apihandlers/shares.py ServerShareAPIHandler.get / ServerShareCodeAPIHandler.get for all of an owner's servers. */
  function listShares(ctx: Ctx, kind: 'shares' | 'share-codes', owner: string): void {
    needsScope(ctx, ['read:shares'], owner);
    const u = findUser(owner);
    if (!u) throw new ApiError(404);
    const items =
      kind === 'share-codes'
        ? []
        : [...shares].flatMap(([key, guests]) => {
            const server = key.slice(owner.length + 1);
            if (!key.startsWith(`${owner}/`) || !u.servers.has(server)) return [];
            const s = u.servers.get(server)!;
            return guests.map((guest) => ({
              server: { user: { name: owner }, name: server, url: serverUrl(u, s), ready: s.phase === 'running' },
              scopes: [`access:servers!server=${owner}/${server}`],
              user: { name: guest },
              group: null,
              kind: 'user',
              created_at: iso(),
            }));
          });
    send(ctx, 200, { items, _pagination: { offset: 0, limit: 200, total: items.length, next: null } });
  }

  /** The hub's login page: GET shows a form, POST logs the browser in (dummy authenticator, no XSRF). */
  function login(ctx: Ctx): void {
    if (ctx.method === 'POST') {
      const form = new URLSearchParams(ctx.rawBody);
      const name = form.get('username') ?? '';
      if (!name) return send(ctx, 403, htmlPage('Invalid username or password'), {}, 'text/html; charset=UTF-8');
      const cookie = loginBrowser(name);
      const next = ctx.query.get('next') || `${base}hub/spawn`;
      ctx.res.setHeader('Set-Cookie', `${cookie}; HttpOnly; Path=${base}hub/`);
      return send(ctx, 302, '', { Location: next.startsWith('/') && !next.startsWith('//') ? next : `${base}hub/spawn` }, 'text/html');
    }
    send(ctx, 200, htmlPage('Sign in (hub stand-in): POST username='), {}, 'text/html; charset=UTF-8');
  }

  const loginBrowser = (name: string): string => {
    addUser(name);
    const value = randomBytes(24).toString('hex');
    cookies.set(value, name);
    return `jupyterhub-hub-login=${value}`;
  };

  function takeFault(method: string, path: string): Fault | undefined {
    const i = faults.findIndex((f) => (f.method === '*' || f.method === method) && (typeof f.path === 'string' ? f.path === path : f.path.test(path)));
    if (i < 0) return undefined;
    return faults.splice(i, 1)[0]!.fault;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const method = (req.method ?? 'GET').toUpperCase();
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req as AsyncIterable<Buffer>) {
      size += c.length;
      if (size > 1 << 20) {
        res.writeHead(413).end();
        return;
      }
      chunks.push(c);
    }
    const rawBody = Buffer.concat(chunks).toString('utf8');
    const inApi = url.pathname === apiPrefix || url.pathname.startsWith(`${apiPrefix}/`);
    const path = inApi ? url.pathname.slice(apiPrefix.length) : url.pathname;
    const auth = /^(?:token|bearer)\s+([^\s]+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const tok = auth === undefined ? undefined : tokens.get(auth);
    const record: HubRequest = {
      at: Date.now(),
      method,
      path,
      query: url.search.replace(/^\?/, ''),
      status: 0,
      caller: auth === undefined ? 'anonymous' : tok ? `${tok.kind}:${tok.owner}` : 'invalid',
    };
    if (inApi && rawBody && path !== '/oauth2/token') {
      try {
        record.body = JSON.parse(rawBody);
      } catch {
        record.body = rawBody;
      }
    }
    requests.push(record);
    res.on('close', () => {
      if (!record.status && res.headersSent) record.status = res.statusCode;
    });
    const ctx: Ctx = { req, res, method, path, query: url.searchParams, rawBody, record, ...(tok ? { token: tok } : {}) };

    const fault = takeFault(method, path);
    if (fault !== undefined) {
      record.injected = true;
      const f = typeof fault === 'number' ? { status: fault } : fault;
      if (f.delayMs) await sleep(f.delayMs);
      if (f.reset) {
        req.socket.destroy();
        return;
      }
      if (f.status) return sendError(ctx, new ApiError(f.status, '', f.headers ?? {}));
    }
    try {
      if (inApi) await route(ctx);
      else if (url.pathname === `${base}hub/login`) login(ctx);
      else throw new ApiError(404);
    } catch (e) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (e instanceof ApiError) sendError(ctx, e);
      else sendError(ctx, new ApiError(500));
    }
  }

  // --- listener, faults, lifecycle ---

  const sockets = new Set<Socket>();
  const makeServer = (): Server => {
    const s = createServer((req, res) => void handle(req, res).catch(() => res.destroy()));
    s.keepAliveTimeout = 5000;
    s.on('connection', (sock) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
    });
    return s;
  };
  const listen = (s: Server, port: number) =>
    new Promise<number>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        s.off('error', reject);
        resolve((s.address() as AddressInfo).port);
      });
    });
  let server: Server | undefined = makeServer();
  const port = await listen(server, opts.port ?? 0);

  const down = async () => {
    const s = server;
    server = undefined;
    if (!s) return;
    const closedP = new Promise<void>((r) => s.close(() => r()));
    for (const sock of sockets) sock.destroy();
    await closedP;
  };

  const publicUrl = `http://127.0.0.1:${port}`;
  const standin: HubStandin = {
    publicUrl,
    apiUrl: `${publicUrl}${apiPrefix}`,
    port,
    serviceName,
    serviceToken,
    adminToken,
    extraTokens,
    oauthClientId,
    oauthRedirectUri,
    settings,
    configure: (p) => void Object.assign(settings, p),
    requests,
    resetRequests: () => void requests.splice(0),
    count: (method, path) =>
      requests.filter((r) => (method === '*' || r.method === method) && (typeof path === 'string' ? r.path === path : path.test(r.path))).length,
    userOptionsSent: (user, server = '') => {
      const p = `/users/${escapePath(user)}/${server ? `servers/${escapePath(server)}` : 'server'}`;
      return requests.filter((r) => r.method === 'POST' && r.path === p && !r.injected).map((r) => r.body ?? {});
    },
    users: () => [...users.keys()],
    addUser,
    share(owner, server, guest) {
      addUser(owner);
      addUser(guest);
      serverOf(users.get(owner)!, server).inDb = true;
      shares.set(`${owner}/${server}`, [...(shares.get(`${owner}/${server}`) ?? []), guest]);
    },
    setUser: (name, behaviour) => {
      addUser(name);
      const u = users.get(name)!;
      if (behaviour) u.behaviour = behaviour;
      else delete u.behaviour;
    },
    removeUser: (name) => {
      for (const s of users.get(name)?.servers.values() ?? []) cancelSpawn(s);
      users.delete(name);
    },
    server: (user, name = '') => {
      const s = users.get(user)?.servers.get(name);
      if (!s) return undefined;
      return {
        phase: s.phase,
        ready: s.phase === 'running',
        pending: pendingOf(s),
        userOptions: s.userOptions,
        spawns: s.spawns,
        ...(s.failure !== undefined ? { failure: s.failure } : {}),
      };
    },
    loginBrowser,
    addToken,
    inject: (method, path, list) => void faults.push(...list.map((fault) => ({ method: method.toUpperCase(), path, fault }))),
    down,
    up: async () => {
      if (server || closed) return;
      const s = makeServer();
      await listen(s, port);
      server = s;
    },
    stop: async () => {
      closed = true;
      for (const s of allServers()) cancelSpawn(s);
      await down();
    },
  };
  return standin;
}

function cookieValue(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
