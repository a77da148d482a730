/**
 * JupyterHub: the API answers the service's token, the token has the scopes the service needs
 * (JupyterHub 5's GET /hub/api/user lists the token's scopes, expanded), the token and the ticket
 * keys are not guessable (at least 128 bits, as the service requires at start), and the hub answers
 * at redirect.hubPublicUrl, where every handoff ends.
 */
import { readFile } from 'node:fs/promises';
import type { Config } from '../config/types.js';
import { describeCause, HandoffError } from '../errors.js';
import { estimateBits, MIN_SECRET_BITS } from '../hub/entropy.js';
import { neededScopes, type NeededScope } from '../hub/scopes.js';
import { loadApiToken } from '../hub/service-token.js';
import { parseTicketKeys, ticketKeyPath } from '../hub/ticket-keys.js';
import { fail, parseJson, pass, request, unknown, type Check } from './check.js';

const ROLE_DOC = 'docs/jupyterhub.md, "Role: the minimal scopes"';

export async function hubChecks(config: Config, env: NodeJS.ProcessEnv, fetchImpl: typeof fetch): Promise<Check[]> {
  const hub = config.hub;
  const api = (hub.apiUrl ?? '').replace(/\/+$/, '');
  const timeoutMs = hub.requestTimeoutMs;
  const scopes = neededScopes(hub);
  const needed = scopes.map((s) => s.scope);
  let token: string;
  try {
    token = loadApiToken(hub, env);
  } catch (e) {
    const why = e instanceof HandoffError ? (e.detail ?? e.message) : describeCause(e);
    return [
      fail('hub: api', why, "give the service the api_token the hub registers for it (JUPYTERHUB_API_TOKEN, or hub.apiTokenFile; z2jh hub.services.<name>.apiToken)"),
      unknown('hub: scopes', 'no usable API token', 'fix the API token first'),
      await ticketKeysCheck(config),
    ];
  }
  const out: Check[] = [];
  const r = await request(fetchImpl, `${api}/user`, { headers: { Authorization: `token ${token}`, Accept: 'application/json' }, timeoutMs });
  if ('error' in r) {
    out.push(
      fail('hub: api', `${api}: no answer (${r.error})`, 'set hub.apiUrl (or JUPYTERHUB_API_URL) to the hub API as the service reaches it, e.g. http://hub:8081/hub/api, and let the service reach it'),
      unknown('hub: scopes', 'the hub API did not answer', 'fix the hub API first'),
    );
  } else if (r.status === 401 || r.status === 403) {
    out.push(
      fail('hub: api', `${api}: the hub rejected the API token (HTTP ${r.status})`, "use the api_token the hub registers for this service (z2jh hub.services.<name>.apiToken, c.JupyterHub.services), in JUPYTERHUB_API_TOKEN or hub.apiTokenFile"),
      unknown('hub: scopes', 'the hub rejected the API token', 'fix the API token first'),
    );
  } else if (r.status !== 200) {
    out.push(
      fail('hub: api', `${api}/user: HTTP ${r.status}`, 'hub.apiUrl must be the hub API base, ending in /hub/api'),
      unknown('hub: scopes', 'the hub API did not answer as JupyterHub', 'fix the hub API first'),
    );
  } else {
    const model = (parseJson(r.text) ?? {}) as { name?: unknown; kind?: unknown; scopes?: unknown };
    const version = r.headers.get('x-jupyterhub-version');
    const who = typeof model.name === 'string' ? `${typeof model.kind === 'string' ? model.kind : 'user'} ${model.name}` : 'an unnamed owner';
    out.push(pass('hub: api', `${api}: JupyterHub ${version ?? '(version unknown)'}, the token is ${who}'s`));
    if (!Array.isArray(model.scopes)) {
      out.push(unknown('hub: scopes', 'the hub does not list the token\'s scopes (JupyterHub before 2.0?)', `give the service's role ${needed.join(', ')} (${ROLE_DOC})`));
    } else {
      const held = model.scopes as unknown[];
      const missing = scopes.filter((s) => !held.includes(s.scope));
      const why = (s: NeededScope) => (s.because ? `${s.scope} (${s.because})` : s.scope);
      out.push(
        missing.length
          ? fail(
              'hub: scopes',
              `the token lacks ${missing.map(why).join(', ')}`,
              `add ${missing.map((s) => s.scope).join(', ')} to the service's role (z2jh hub.loadRoles, or c.JupyterHub.load_roles; ${ROLE_DOC})`,
            )
          : pass('hub: scopes', needed.join(', ')),
      );
    }
  }
  const bits = estimateBits(token);
  out.push(
    bits < MIN_SECRET_BITS
      ? fail('hub: token strength', `the API token has about ${bits} bits of entropy; the service refuses to start under ${MIN_SECRET_BITS}`, 'give the service a random API token (openssl rand -hex 32; z2jh generates one when hub.services.<name>.apiToken is unset) and register the same at the hub')
      : pass('hub: token strength', `about ${bits} bits of entropy (at least ${MIN_SECRET_BITS} needed)`),
    await ticketKeysCheck(config),
  );
  return out;
}

/** The keys sealing the hub flows' tickets, as the service reads them at start (src/hub/ticket-keys.ts). */
async function ticketKeysCheck(config: Config): Promise<Check> {
  const path = ticketKeyPath(config);
  const fix = `write them with omnisci-handoff keygen --ticket-keys ${path ?? 'FILE'} (on an existing file it rotates them, keeping open tickets valid)`;
  if (!path) return fail('hub: ticket keys', 'hub.ticketKeyFile is not set (required with the kubernetes store)', `${fix} and set hub.ticketKeyFile; the Helm chart does both`);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const cause = describeCause(e);
    if (cause === 'ENOENT' && !config.hub.ticketKeyFile) return pass('hub: ticket keys', `${path}: not created yet; the service writes a random key there at its first start`);
    return fail('hub: ticket keys', `cannot read ${path} (${cause})`, fix);
  }
  try {
    const keys = parseTicketKeys(text, path);
    const now = Date.now();
    const open = keys.slice(1).filter((k) => k.until === undefined || k.until > now);
    const ended = keys.length - 1 - open.length;
    const old = open.length ? `, ${open.length} previous still opening tickets` : '';
    const drop = ended ? `; ${ended} ended (drop them at the next rotation)` : '';
    return pass('hub: ticket keys', `${path}: a sealing key${old}${drop}, each at least ${MIN_SECRET_BITS} bits`);
  } catch (e) {
    return fail('hub: ticket keys', e instanceof HandoffError ? e.message : describeCause(e), fix);
  }
}

/** The hub at redirect.hubPublicUrl, where every handoff ends (local mode and direct landings too). */
export async function publicUrlCheck(config: Config, fetchImpl: typeof fetch): Promise<Check> {
  const url = config.redirect.hubPublicUrl;
  const fix = 'set redirect.hubPublicUrl to the hub as browsers reach it (every handoff ends there)';
  const r = await request(fetchImpl, `${url}/hub/api`, { headers: { Accept: 'application/json' }, timeoutMs: config.hub.requestTimeoutMs });
  if ('error' in r) return fail('hub: public url', `${url}: no answer from here (${r.error})`, fix);
  const version = (parseJson(r.text) as { version?: unknown } | undefined)?.version;
  if (r.status !== 200 || typeof version !== 'string') return fail('hub: public url', `${url}/hub/api: HTTP ${r.status}, not JupyterHub's API`, fix);
  return pass('hub: public url', `${url}: JupyterHub ${version}`);
}
