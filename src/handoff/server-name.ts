/**
 * The JupyterHub server a handoff opens, when it names one (the token's `server` claim, header
 * mode's `server` query parameter): only with hub.namedServers enabled, and only a name the admin
 * allowed (a list, a pattern or both). Absent: the configured hub.serverName.
 */
import { SERVER_NAME } from '../config/schema.js';
import type { Config } from '../config/types.js';
import { HandoffError } from '../errors.js';

const VALID = new RegExp(SERVER_NAME);

/** The named server a handoff asks for (validated and allowed), or undefined when it names none. Throws HandoffError otherwise. */
export function requestedServer(name: unknown, rules: Config['hub']['namedServers']): string | undefined {
  if (name === undefined) return undefined;
  if (typeof name !== 'string' || !VALID.test(name)) throw new HandoffError('server_name_invalid', 'server: not a JupyterHub server name');
  if (!rules.enabled) throw new HandoffError('server_not_allowed', 'the handoff names a server but hub.namedServers.enabled is off');
  const allowed = rules.allowed.includes(name) || (rules.pattern !== undefined && new RegExp(`^(?:${rules.pattern})$`, 'u').test(name));
  if (!allowed) throw new HandoffError('server_not_allowed', `server ${name} is not in hub.namedServers.allowed or pattern`);
  return name;
}
