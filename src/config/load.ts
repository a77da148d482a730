/**
 * Loads the service configuration: YAML → JSON Schema validation with defaults (src/config/schema.ts)
 * → what the environment supplies (a hub service's JUPYTERHUB_* variables) → the cross-field rules
 * (src/config/rules.ts). Every problem is collected, with its path, before anything starts.
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { HandoffError } from '../errors.js';
import { ruleProblems, type ConfigProblem } from './rules.js';
import { configSchema } from './schema.js';
import type { Config } from './types.js';

export type { ConfigProblem };

/** `config_invalid`: the configuration is unusable; `problems` lists every issue found, not just the first. */
export class ConfigError extends HandoffError {
  constructor(readonly problems: ConfigProblem[]) {
    super('config_invalid', undefined, { message: `invalid configuration:\n${problems.map((p) => `  ${p.path || '(root)'}: ${p.message}`).join('\n')}` });
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

export interface ResolveOptions {
  /**
   * The config is for a service that runs elsewhere (`z2jh-values` prints values for the hub's
   * deployment): what only that process's environment supplies (JUPYTERHUB_API_URL and _TOKEN, an
   * HMAC secret's env var) is not checked here.
   */
  elsewhere?: boolean;
}

/**
 * Validates a raw config object, fills in defaults and applies the environment
 * (JUPYTERHUB_SERVICE_PREFIX). Throws ConfigError listing every problem.
 */
export function resolveConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env, o: ResolveOptions = {}): Config {
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
  const problems = ruleProblems(config, env, o.elsewhere);
  if (problems.length) throw new ConfigError(problems);
  return config;
}

function normalizeBasePath(p: string): string {
  return p.endsWith('/') ? p : `${p}/`;
}

/** Reads and resolves a YAML config file. */
export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env, o: ResolveOptions = {}): Config {
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
  return resolveConfig(raw, env, o);
}
