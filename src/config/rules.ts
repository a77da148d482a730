/**
 * The rules a JSON Schema cannot say: cross-field and semantic checks of a validated config. Each has
 * a stable id; the Helm chart enforces the ones that apply to its values (templates/validate.tpl), and
 * test/integration/helm.test.ts runs every rule both ways (chart values that break it fail `helm
 * template`, and the config the chart would render from them fails here) or names why the chart cannot
 * break it.
 */
import { posix } from 'node:path';
import { JUPYTER_CONFIG_PATH, RESERVED_SECRET_KEYS } from './reserved.js';
import { HMAC_ALGORITHMS } from './schema.js';
import type { Config } from './types.js';

export interface ConfigProblem {
  /** Dotted path into the config, e.g. `token.keys.jwksUrl` ("" for the whole file). */
  path: string;
  message: string;
}

export interface Rule {
  id: string;
  path: string;
  /** The problem's message when the config breaks the rule, else undefined. */
  check(c: Config, env: NodeJS.ProcessEnv): string | undefined;
  /** It checks what the environment of the process that serves supplies (skipped for a config run elsewhere). */
  env?: true;
}

const isHmac = (a: string) => (HMAC_ALGORITHMS as readonly string[]).includes(a);
const hasHmac = (c: Config) => Boolean(c.token.keys.hmacSecretFile || c.token.keys.hmacSecretEnv);
const hasPublic = (c: Config) => Boolean(c.token.keys.jwksUrl || c.token.keys.publicKeyFiles.length);

/** Token handoffs are on when a key source is configured; without one only header mode lets anybody in. */
export const takesTokens = (c: Config): boolean => hasHmac(c) || hasPublic(c);

function compiles(pattern: string | undefined): string | undefined {
  if (pattern === undefined) return undefined;
  try {
    new RegExp(pattern, 'u');
    return undefined;
  } catch (e) {
    return `is not a valid regular expression (${(e as Error).message})`;
  }
}

function callbackProblem(c: Config): string | undefined {
  const callback = `${c.listen.basePath}oauth_callback`;
  try {
    if (new URL(c.hub.oauthRedirectUri ?? '', c.redirect.hubPublicUrl).pathname === callback) return undefined;
  } catch {
    /* not a URL: reported as not leading there */
  }
  return `must lead to ${callback}`;
}

const RELINK_URL = /^https?:\/\/[!"$-.0->@-~][!-~]*$/;
/**
 * An absolute http(s) URL with a host, in printable ASCII: written into JSON by the service, the chart
 * (Helm's toRawJson) and the spawner hook (Python's json.dumps), which then agree byte for byte.
 */
function isAbsoluteHttpUrl(url: string): boolean {
  // The authority right after "//" (WHATWG URLs would skip more slashes, Helm's urlParse would not).
  if (!RELINK_URL.test(url)) return false;
  try {
    return new URL(url).hostname !== '';
  } catch {
    return false;
  }
}

/** An env var's own value (never an Object.prototype member such as `constructor`). */
export const envValue = (env: NodeJS.ProcessEnv, name: string): string | undefined =>
  Object.hasOwn(env, name) && typeof env[name] === 'string' ? env[name] : undefined;

const rule = (id: string, path: string, check: Rule['check'], env?: true): Rule => ({ id, path, check, ...(env ? { env } : {}) });
const when = (cond: boolean, message: string) => (cond ? message : undefined);

export const RULES: readonly Rule[] = [
  rule('hmac-one-source', 'token.keys', (c) =>
    when(Boolean(c.token.keys.hmacSecretFile && c.token.keys.hmacSecretEnv), 'set hmacSecretFile or hmacSecretEnv, not both'),
  ),
  rule('key-source', 'token.keys', (c) =>
    when(
      !takesTokens(c) && !c.heavydb.enabled,
      'no key source: set jwksUrl, publicKeyFiles, hmacSecretFile or hmacSecretEnv (or heavydb.enabled, header mode, without token handoffs)',
    ),
  ),
  rule('token-issuer', 'token.issuer', (c) => when(takesTokens(c) && !c.token.issuer, 'is required when token.keys names a key source (token handoffs)')),
  rule('token-audience', 'token.audience', (c) => when(takesTokens(c) && !c.token.audience, 'is required when token.keys names a key source (token handoffs)')),
  rule('hmac-alg-needs-secret', 'token.algorithms', (c) =>
    when(c.token.algorithms.some(isHmac) && !hasHmac(c), 'HS256/384/512 are allowed only when an HMAC secret is configured'),
  ),
  rule('hmac-secret-needs-alg', 'token.keys', (c) =>
    when(hasHmac(c) && !c.token.algorithms.some(isHmac), 'an HMAC secret is configured but no HS* algorithm is allowed'),
  ),
  rule('public-keys-need-alg', 'token.algorithms', (c) =>
    when(hasPublic(c) && c.token.algorithms.every(isHmac), 'public keys are configured but only HS* algorithms are allowed'),
  ),
  rule(
    'hmac-env-set',
    'token.keys.hmacSecretEnv',
    (c, env) => {
      const name = c.token.keys.hmacSecretEnv;
      return when(Boolean(name && !envValue(env, name)), `env var ${name} is not set`);
    },
    true,
  ),
  rule('jwks-https', 'token.keys.jwksUrl', (c) => {
    const url = c.token.keys.jwksUrl;
    if (!url || url.startsWith('https://')) return undefined;
    // Whoever can intercept a plain-http JWKS can sign tokens; a loopback address cannot be intercepted.
    let host = '';
    try {
      host = new URL(url).hostname;
    } catch {
      /* reported below */
    }
    return when(!/^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\])$/.test(host), 'must be https:// (http:// only on a loopback address)');
  }),
  rule('email-domains', 'user.emailDomains', (c) =>
    when(c.user.stripEmailDomain && c.user.emailDomains.length === 0, 'list the domains whose addresses user.stripEmailDomain maps to hub users'),
  ),
  rule('revoke-type-differs', 'token.revokeType', (c) => when(Boolean(c.token.type) && c.token.type === c.token.revokeType, 'must differ from token.type')),
  rule('session-pattern', 'token.sessionPattern', (c) => compiles(c.token.sessionPattern)),
  rule('user-pattern', 'user.pattern', (c) => compiles(c.user.pattern)),
  rule('lab-url-user', 'redirect.labUrlTemplate', (c) => when(!c.redirect.labUrlTemplate.includes('{username}'), 'must contain {username}')),
  rule('lab-url-server', 'redirect.labUrlTemplate', (c) =>
    when(
      Boolean(c.hub.serverName || c.hub.namedServers.enabled) && !/\{servername\}|\/user\/\{username\}\//.test(c.redirect.labUrlTemplate),
      'must contain {servername} or /user/{username}/ when a named server opens (hub.serverName, hub.namedServers)',
    ),
  ),
  rule('named-servers-allowed', 'hub.namedServers', (c) =>
    when(c.hub.namedServers.enabled && c.hub.namedServers.allowed.length === 0 && c.hub.namedServers.pattern === undefined, 'enabled: list the servers a handoff may open (allowed, pattern or both)'),
  ),
  rule('named-servers-pattern', 'hub.namedServers.pattern', (c) => compiles(c.hub.namedServers.pattern)),
  rule('hub-url', 'redirect.hubPublicUrl', (c) => {
    try {
      const u = new URL(c.redirect.hubPublicUrl);
      return when(Boolean(u.search || u.hash), 'must not have a query or fragment');
    } catch {
      return 'is not a URL';
    }
  }),
  rule('service-url', 'redirect.servicePublicUrl', (c) => {
    const url = c.redirect.servicePublicUrl;
    if (url === undefined) return undefined;
    try {
      const u = new URL(url);
      return when(u.pathname !== c.listen.basePath || Boolean(u.search || u.hash), `must end in listen.basePath ${c.listen.basePath}, without a query or fragment`);
    } catch {
      return 'is not a URL';
    }
  }),
  rule('hub-api-url', 'hub.apiUrl', (c) => when(c.hub.enabled && !c.hub.apiUrl, 'is required when hub.enabled (or set JUPYTERHUB_API_URL)'), true),
  rule(
    'hub-api-token',
    'hub.apiTokenFile',
    (c, env) => when(c.hub.enabled && !c.hub.apiTokenFile && !env.JUPYTERHUB_API_TOKEN, 'set it or JUPYTERHUB_API_TOKEN when hub.enabled'),
    true,
  ),
  rule('hub-ticket-keys', 'hub.ticketKeyFile', (c) =>
    when(
      c.hub.enabled && c.store.backend === 'kubernetes' && !c.hub.ticketKeyFile,
      'is required with store.backend kubernetes, so that every replica seals with the same keys (the chart generates them; else omnisci-handoff keygen --ticket-keys FILE)',
    ),
  ),
  rule('login-handoff-needs-hub', 'hub.loginMode', (c) => when(c.hub.loginMode === 'handoff' && !c.hub.enabled, 'handoff needs hub.enabled')),
  rule('create-users-needs-hub', 'hub.createUsers', (c) => when(c.hub.createUsers && !c.hub.enabled, 'needs hub.enabled')),
  rule('identity-needs-hub', 'hub.identityCheck', (c) => when(c.hub.identityCheck && !c.hub.enabled, 'needs hub.enabled')),
  rule('identity-client-id', 'hub.oauthClientId', (c) =>
    when(
      c.hub.identityCheck && !c.hub.oauthClientId?.startsWith('service-'),
      "must be the hub's service-<name> client id (set it, JUPYTERHUB_CLIENT_ID, or a /services/<name>/ base path)",
    ),
  ),
  rule('identity-callback', 'hub.oauthRedirectUri', (c) => (c.hub.identityCheck ? callbackProblem(c) : undefined)),
  rule('heavydb-needs-hub', 'heavydb.enabled', (c) => when(c.heavydb.enabled && !c.hub.enabled, 'needs hub.enabled (the hub logs the browser in)')),
  rule('heavydb-url', 'heavydb.url', (c) => when(c.heavydb.enabled && !c.heavydb.url, "is required when heavydb.enabled (HeavyDB's HTTP port, e.g. http://heavydb:6278/)")),
  rule('heavydb-connection', 'omnisci.host', (c) =>
    when(c.heavydb.enabled && !c.omnisci.host, 'is required when heavydb.enabled: no token names a host, so the notebook connects here'),
  ),
  rule('session-file-name', 'notebook.sessionFileName', (c) =>
    when(
      c.store.backend === 'kubernetes' && (RESERVED_SECRET_KEYS as readonly string[]).includes(c.notebook.sessionFileName),
      `must not be one of ${RESERVED_SECRET_KEYS.join(', ')}`,
    ),
  ),
  rule('relink-url', 'notebook.relinkUrl', (c) =>
    when(
      c.notebook.relinkUrl !== undefined && !isAbsoluteHttpUrl(c.notebook.relinkUrl),
      'must be an absolute http(s) URL in printable ASCII (percent-encode anything else), e.g. https://immerse.example.com/',
    ),
  ),
  rule('env-names-distinct', 'notebook.env', (c) => {
    const names = Object.values(c.notebook.env);
    return when(
      new Set(names).size !== names.length || names.includes(JUPYTER_CONFIG_PATH),
      `the protocol, host and port env var names must differ from each other and from ${JUPYTER_CONFIG_PATH}`,
    );
  }),
  rule('mount-paths-distinct', 'webhook.jupyterConfigDir', (c) =>
    when(
      posix.normalize(`${c.webhook.jupyterConfigDir}/`) === posix.normalize(`${c.notebook.sessionDir}/`),
      'must differ from notebook.sessionDir (each is a volume of its own in the pod)',
    ),
  ),
  rule('webhook-needs-kubernetes', 'webhook.enabled', (c) =>
    when(c.webhook.enabled && c.store.backend !== 'kubernetes', 'needs store.backend kubernetes'),
  ),
  rule('webhook-tls', 'webhook', (c) =>
    when(c.webhook.enabled && !(c.webhook.certFile && c.webhook.keyFile), 'certFile and keyFile are required when the webhook is enabled'),
  ),
];

/** Every broken rule; `elsewhere`: the config is for a process that runs elsewhere (skip the `env` rules). */
export function ruleProblems(c: Config, env: NodeJS.ProcessEnv, elsewhere = false): ConfigProblem[] {
  return RULES.filter((r) => !(elsewhere && r.env)).flatMap((r) => {
    const message = r.check(c, env);
    return message === undefined ? [] : [{ path: r.path, message }];
  });
}
