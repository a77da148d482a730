/**
 * The service's hub API token: read once, and the check that a request from the hub's authenticator
 * presents it (`Authorization: token …`): the channel of the login-token exchange and of header mode's
 * session login. Compared as SHA-256 digests in constant time. A guessable token is refused at
 * start: whoever guesses it speaks for the service to the hub and to the authenticator's channel.
 * `doctor` reads it the same way (loadApiToken) and reports its strength instead of refusing it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Config } from '../config/types.js';
import { describeCause, HandoffError } from '../errors.js';
import { estimateBits, MIN_SECRET_BITS } from './entropy.js';

/**
 * The token as configured: hub.apiTokenFile, else JUPYTERHUB_API_TOKEN (never both). Throws
 * hub_unauthorized with a detail saying what is wrong, never quoting the token.
 */
export function loadApiToken(hub: Config['hub'], env: NodeJS.ProcessEnv): string {
  const missing = (detail: string) => new HandoffError('hub_unauthorized', detail);
  let token: string | undefined;
  if (hub.apiTokenFile) {
    try {
      token = readFileSync(hub.apiTokenFile, 'utf8').trim();
    } catch (e) {
      throw missing(`cannot read hub.apiTokenFile ${hub.apiTokenFile} (${describeCause(e)})`);
    }
    if (!token) throw missing(`hub.apiTokenFile ${hub.apiTokenFile} is empty`);
  } else {
    token = env.JUPYTERHUB_API_TOKEN;
    if (!token) throw missing('no API token: JUPYTERHUB_API_TOKEN is not set and hub.apiTokenFile is not configured');
  }
  // Checked here, as an HTTP client would otherwise quote an invalid header value in its error.
  if (!/^[\x21-\x7e]+$/.test(token)) throw missing('the API token has characters a token cannot have');
  return token;
}

/** The token the service runs with: loadApiToken's, refused (weak_secret) under MIN_SECRET_BITS. */
export function readApiToken(hub: Config['hub'], env: NodeJS.ProcessEnv): string {
  const token = loadApiToken(hub, env);
  const bits = estimateBits(token);
  if (bits < MIN_SECRET_BITS) {
    throw new HandoffError('weak_secret', 'hub API token', {
      message: `The hub API token has about ${bits} bits of entropy; at least ${MIN_SECRET_BITS} are needed: give the service a random one (openssl rand -hex 32; z2jh generates 256 bits when hub.services.<name>.apiToken is unset).`,
    });
  }
  return token;
}

/** Whether an `Authorization` header carries `token` (`token …` or `Bearer …`). */
export function presentsToken(token: string): (authorization: string | undefined) => boolean {
  const digest = createHash('sha256').update(token).digest();
  return (authorization) => {
    const presented = /^(?:token|bearer)\s+(.+)$/i.exec(authorization ?? '')?.[1] ?? '';
    return timingSafeEqual(createHash('sha256').update(presented).digest(), digest);
  };
}
