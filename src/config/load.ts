import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { RESERVED_SECRET_KEYS } from '../store/k8s-layout.js';
import { configSchema, HMAC_ALGORITHMS } from './schema.js';
import type { Config } from './types.js';

export interface ConfigProblem {
  /** Dotted path into the config, e.g. `token.keys.jwksUrl` ("" for the whole file). */
  path: string;
  message: string;
}

/** Thrown when the configuration is unusable; `problems` lists every issue found, not just the first. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: ConfigProblem[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p.path || '(root)'}: ${p.message}`).join('\n')}`);
  }
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, strictTuples: false });
const validate = ajv.compile(configSchema);

function ajvPath(e: ErrorObject): string {
  const base = e.instancePath.replace(/^\//, '').split('/').filter(Boolean).join('.');
  const extra =
    e.keyword === 'required'
      ? (e.params as { missingProperty: string }).missingProperty
      : e.keyword === 'additionalProperties'
        ? (e.params as { additionalProperty: string }).additionalProperty
        : '';
  return [base, extra].filter(Boolean).join('.');
}

function ajvMessage(e: ErrorObject): string {
  switch (e.keyword) {
    case 'required':
      return 'is required';
    case 'additionalProperties':
      return 'is not a known setting';
    case 'enum':
      return `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    default:
      return e.message ?? 'is invalid';
  }
}

function compiles(pattern: string): string | undefined {
  try {
    new RegExp(pattern, 'u');
    return undefined;
  } catch (e) {
    return `is not a valid regular expression (${(e as Error).message})`;
  }
}

/** Rules a JSON Schema cannot say (cross-field and semantic checks). */
function semanticProblems(c: Config, env: NodeJS.ProcessEnv): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const k = c.token.keys;
  const wantsHmac = c.token.algorithms.some((a) => (HMAC_ALGORITHMS as readonly string[]).includes(a));
  const wantsPublic = c.token.algorithms.some((a) => !(HMAC_ALGORITHMS as readonly string[]).includes(a));
  const hasHmac = Boolean(k.hmacSecretFile || k.hmacSecretEnv);
  const hasPublic = Boolean(k.jwksUrl || k.publicKeyFiles.length);
  if (k.hmacSecretFile && k.hmacSecretEnv)
    out.push({ path: 'token.keys', message: 'set hmacSecretFile or hmacSecretEnv, not both' });
  if (!hasHmac && !hasPublic)
    out.push({ path: 'token.keys', message: 'no key source: set jwksUrl, publicKeyFiles, hmacSecretFile or hmacSecretEnv' });
  if (wantsHmac && !hasHmac)
    out.push({ path: 'token.algorithms', message: 'HS256/384/512 are allowed only when an HMAC secret is configured' });
  if (hasHmac && !wantsHmac)
    out.push({ path: 'token.keys', message: 'an HMAC secret is configured but no HS* algorithm is allowed' });
  if (hasPublic && !wantsPublic)
    out.push({ path: 'token.algorithms', message: 'public keys are configured but only HS* algorithms are allowed' });
  if (k.hmacSecretEnv && !env[k.hmacSecretEnv])
    out.push({ path: 'token.keys.hmacSecretEnv', message: `env var ${k.hmacSecretEnv} is not set` });
  if (c.token.type && c.token.type === c.token.revokeType)
    out.push({ path: 'token.revokeType', message: 'must differ from token.type' });
  for (const [path, pattern] of [
    ['token.sessionPattern', c.token.sessionPattern],
    ['user.pattern', c.user.pattern],
  ] as const) {
    const problem = pattern === undefined ? undefined : compiles(pattern);
    if (problem) out.push({ path, message: problem });
  }
  if (!c.redirect.labUrlTemplate.includes('{username}'))
    out.push({ path: 'redirect.labUrlTemplate', message: 'must contain {username}' });
  try {
    const u = new URL(c.redirect.hubPublicUrl);
    if (u.search || u.hash) out.push({ path: 'redirect.hubPublicUrl', message: 'must not have a query or fragment' });
  } catch {
    out.push({ path: 'redirect.hubPublicUrl', message: 'is not a URL' });
  }
  if (c.hub.enabled && !c.hub.apiUrl)
    out.push({ path: 'hub.apiUrl', message: 'is required when hub.enabled (or set JUPYTERHUB_API_URL)' });
  if (c.hub.enabled && !c.hub.apiTokenFile && !env.JUPYTERHUB_API_TOKEN)
    out.push({ path: 'hub.apiTokenFile', message: 'set it or JUPYTERHUB_API_TOKEN when hub.enabled' });
  if (c.hub.identityCheck) {
    if (!c.hub.enabled) out.push({ path: 'hub.identityCheck', message: 'needs hub.enabled' });
    if (!c.hub.oauthClientId?.startsWith('service-'))
      out.push({
        path: 'hub.oauthClientId',
        message: 'must be the hub\'s service-<name> client id (set it, JUPYTERHUB_CLIENT_ID, or a /services/<name>/ base path)',
      });
    const callback = `${c.listen.basePath}oauth_callback`;
    let path: string | undefined;
    try {
      path = new URL(c.hub.oauthRedirectUri ?? '', c.redirect.hubPublicUrl).pathname;
    } catch {
      /* reported below */
    }
    if (path !== callback) out.push({ path: 'hub.oauthRedirectUri', message: `must lead to ${callback}` });
  }
  if (c.store.backend === 'kubernetes' && (RESERVED_SECRET_KEYS as readonly string[]).includes(c.notebook.sessionFileName))
    out.push({ path: 'notebook.sessionFileName', message: `must not be one of ${RESERVED_SECRET_KEYS.join(', ')}` });
  if (c.webhook.enabled) {
    if (c.store.backend !== 'kubernetes') out.push({ path: 'webhook.enabled', message: 'needs store.backend kubernetes' });
    if (!c.webhook.certFile || !c.webhook.keyFile)
      out.push({ path: 'webhook', message: 'certFile and keyFile are required when the webhook is enabled' });
  }
  return out;
}

/**
 * Validates a raw config object, fills in defaults and applies the environment
 * (JUPYTERHUB_SERVICE_PREFIX). Throws ConfigError listing every problem.
 */
export function resolveConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env): Config {
  const data = structuredClone(raw ?? {}) as Record<string, unknown>;
  if (typeof data !== 'object' || Array.isArray(data))
    throw new ConfigError([{ path: '', message: 'must be a mapping of settings' }]);
  if (!validate(data)) {
    const seen = new Set<string>();
    const problems: ConfigProblem[] = [];
    for (const e of validate.errors ?? []) {
      const p = { path: ajvPath(e), message: ajvMessage(e) };
      const key = `${p.path}\0${p.message}`;
      if (!seen.has(key)) problems.push(p), seen.add(key);
    }
    throw new ConfigError(problems);
  }
  const config = data as unknown as Config;
  // Without a trailing slash, so every URL built on it joins with "/…".
  config.redirect.hubPublicUrl = config.redirect.hubPublicUrl.replace(/\/+$/, '');
  config.listen.basePath = normalizeBasePath(config.listen.basePath ?? env.JUPYTERHUB_SERVICE_PREFIX ?? '/');
  config.hub.apiUrl ??= env.JUPYTERHUB_API_URL;
  if (config.hub.identityCheck) {
    // What the hub gives its own services (JUPYTERHUB_CLIENT_ID…), else its defaults for a service named by the prefix.
    const name = /\/services\/([^/]+)\/$/.exec(config.listen.basePath)?.[1];
    config.hub.oauthClientId ??= env.JUPYTERHUB_CLIENT_ID ?? (name ? `service-${name}` : undefined);
    config.hub.oauthRedirectUri ??= env.JUPYTERHUB_OAUTH_CALLBACK_URL ?? `${config.listen.basePath}oauth_callback`;
  }
  const problems = semanticProblems(config, env);
  if (problems.length) throw new ConfigError(problems);
  return config;
}

function normalizeBasePath(p: string): string {
  return p.endsWith('/') ? p : `${p}/`;
}

/** Reads and resolves a YAML config file. */
export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError([{ path: '', message: `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? e}` }]);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new ConfigError([{ path: '', message: `${path} is not valid YAML: ${(e as Error).message.split('\n')[0]}` }]);
  }
  return resolveConfig(raw, env);
}
