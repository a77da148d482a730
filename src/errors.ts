/**
 * The one error family of the service, its CLI and its webhook. Every failure a caller can see
 * carries a stable `code` (used in HTTP responses, audit logs, metric labels and CLI messages alike),
 * an HTTP status and a plain sentence that is safe to show: messages never contain tokens, session
 * ids, keys or cookies.
 */
export const ERRORS = {
  token_missing: [400, 'No handoff token was sent.'],
  token_too_large: [413, 'The handoff token is larger than this service accepts.'],
  token_malformed: [400, 'The handoff token is not a well-formed signed JWT.'],
  alg_not_allowed: [401, 'The handoff token is signed with an algorithm this service does not accept.'],
  typ_not_allowed: [401, 'The handoff token has the wrong type (typ header).'],
  crit_unsupported: [401, 'The handoff token requires a JWS extension (crit header) this service does not support.'],
  unknown_key: [401, 'The handoff token names a signing key this service does not know.'],
  bad_signature: [401, 'The handoff token signature is not valid.'],
  token_expired: [401, 'The handoff link has expired. Open the notebook again from Immerse.'],
  token_not_yet_valid: [401, 'The handoff token is not valid yet (check the clocks of Immerse and this service).'],
  token_lifetime_too_long: [401, 'The handoff token lives longer than this service allows.'],
  bad_issuer: [401, 'The handoff token comes from an issuer this service does not trust.'],
  bad_audience: [401, 'The handoff token is meant for another service.'],
  claims_invalid: [400, 'The handoff token lacks required claims or has malformed ones.'],
  session_invalid: [400, 'The OmniSci session in the handoff token is malformed.'],
  host_not_allowed: [403, 'The handoff token names an OmniSci host that is not allowed here.'],
  port_not_allowed: [403, 'The handoff token names an OmniSci port that is not allowed here.'],
  bad_username: [400, 'The user name in the handoff token cannot be a JupyterHub user name.'],
  cross_site_refused: [403, 'This handoff was sent from a page this service does not accept handoffs from. Open the notebook from Immerse.'],
  navigation_required: [403, 'This request came from a script or a frame, not from a page the browser opened. Open the notebook from Immerse.'],
  transport_disabled: [400, 'This service does not accept the handoff token this way; Immerse must post it.'],
  tokens_disabled: [404, 'This service takes no handoff tokens (none are configured). Open the notebook from Immerse.'],
  token_replayed: [409, 'This handoff link was already used. Open the notebook again from Immerse.'],
  record_full: [429, 'Too many notebook openings of this user are still pending; try again in a few minutes.'],
  keys_unavailable: [503, 'The signing keys could not be loaded; try again shortly.'],
  store_unavailable: [503, 'The session could not be stored; try again shortly.'],
  store_forbidden: [500, 'The service is not permitted to store sessions (check its permissions).'],
  hub_unavailable: [502, 'JupyterHub could not be reached; try again shortly.'],
  hub_unauthorized: [500, 'The service is not authorized to use the JupyterHub API (check its token and role).'],
  hub_forbidden: [500, 'The service\'s JupyterHub role lacks a scope it needs (see docs/jupyterhub.md).'],
  hub_rejected: [502, 'JupyterHub refused a request of this service.'],
  hub_spawn_failed: [502, 'Your notebook server failed to start.'],
  hub_spawn_timeout: [504, 'Your notebook server took too long to start.'],
  hub_user_unknown: [404, 'There is no JupyterHub user of that name, and users are not created automatically.'],
  server_shared: [
    403,
    'A notebook server of yours is shared with other JupyterHub users, who could read your OmniSci session there, so it is not handed over. Stop sharing (JupyterHub home page), then open the notebook again from Immerse; or ask an administrator.',
  ],
  server_name_invalid: [400, 'The handoff names a notebook server whose name JupyterHub cannot take.'],
  server_not_allowed: [403, 'The handoff names a notebook server this service may not open.'],
  identity_mismatch: [403, 'You are logged in to JupyterHub as a different user than the one Immerse handed over.'],
  identity_state_invalid: [400, 'This sign-in step expired or belongs to another browser. Open the notebook again from Immerse.'],
  heavydb_session_missing: [401, 'No HEAVY.AI session came with this login. Open the notebook from Immerse.'],
  heavydb_session_invalid: [401, 'Your HEAVY.AI session is unknown or has expired. Log in to Immerse again, then open the notebook from there.'],
  heavydb_role_missing: [403, 'Your HEAVY.AI account lacks the role needed to open notebooks (ask an administrator).'],
  heavydb_unavailable: [503, 'HEAVY.AI could not be reached to check your session; try again shortly.'],
  login_token_invalid: [404, 'The login token is unknown, expired or already used.'],
  login_browser_mismatch: [403, 'This login link belongs to another browser: it logs in only the browser that opened the notebook from Immerse. Open the notebook from Immerse in this browser.'],
  not_found: [404, 'There is nothing here.'],
  bad_request: [400, 'The request is malformed.'],
  method_not_allowed: [405, 'This endpoint does not take that HTTP method.'],
  unsupported_media_type: [415, 'This endpoint does not take that content type.'],
  review_malformed: [400, 'The admission review is malformed.'],
  review_too_large: [413, 'The admission review is larger than the webhook accepts.'],
  config_invalid: [500, 'The configuration is invalid.'],
  weak_secret: [500, 'A secret the service was given (the hub API token or a ticket key) is too guessable: it needs at least 128 bits of entropy.'],
  usage_invalid: [400, 'The command line is invalid.'],
  internal: [500, 'Something went wrong inside the service.'],
} as const satisfies Record<string, readonly [number, string]>;

export type ErrorCode = keyof typeof ERRORS;

export class HandoffError extends Error {
  override readonly name = 'HandoffError';
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra detail for operators (logs). Must never hold secrets either. */
  readonly detail: string | undefined;

  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown; message?: string }) {
    super(options?.message ?? ERRORS[code][1], options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = ERRORS[code][0];
    this.detail = detail;
  }
}

export function isHandoffError(e: unknown): e is HandoffError {
  return e instanceof HandoffError;
}

/** Any thrown value as a HandoffError; unknown errors become `internal` (their text stays in logs only). */
export function toHandoffError(e: unknown): HandoffError {
  if (e instanceof HandoffError) return e;
  return new HandoffError('internal', e instanceof Error ? e.message : String(e), { cause: e });
}

/** A failure as log fields: its stable code and the detail written for operators (never secrets). */
export function errorFields(e: unknown): { code: ErrorCode; detail: string | undefined } {
  const err = toHandoffError(e);
  return { code: err.code, detail: err.detail };
}

/**
 * What went wrong, in words that cannot quote data: a timeout, the errno or network code (ENOENT,
 * ENOSPC, ECONNREFUSED…), else the error's name. Never its message: file and HTTP clients quote file
 * content and header values (tokens) there. Duck-typed: errors may come from another realm.
 */
export function describeCause(e: unknown): string {
  const err = e as { name?: unknown; code?: unknown; cause?: { code?: unknown } } | null | undefined;
  if (err?.name === 'TimeoutError') return 'timed out';
  const code = err?.cause?.code ?? err?.code;
  if (typeof code === 'string' && code) return code;
  return typeof err?.name === 'string' && err.name ? err.name : 'failed';
}
