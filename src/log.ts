/**
 * pino logger. Request lines carry only method, a sanitized URL (query values of secret-bearing
 * params replaced) and ids: no headers, so cookies and authorization never reach a log line.
 * The redact paths are a second line of defence for objects logged by hand.
 */
import { pino, type DestinationStream, type LevelWithSilent, type Logger } from 'pino';

export type { Logger };

const SECRET_PARAMS = /^(token|login_token|ticket|session|code|state|access_token|id_token)$/i;

/** The URL with every secret-bearing query value replaced; the fragment never reaches a server. */
export function sanitizeUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const params = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = eq < 0 ? pair : pair.slice(0, eq);
      let decoded = name;
      try {
        decoded = decodeURIComponent(name);
      } catch {
        /* keep the raw name */
      }
      return eq >= 0 && SECRET_PARAMS.test(decoded) ? `${name}=[REDACTED]` : pair;
    });
  return `${url.slice(0, q)}?${params.join('&')}`;
}

const REDACT_PATHS = [
  'token',
  'session',
  'apiToken',
  'authorization',
  'cookie',
  '*.token',
  '*.session',
  '*.authorization',
  '*.cookie',
  'req.headers',
  'res.headers',
  'omnisci.session',
];

export function createLogger(level: LevelWithSilent, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'omnisci-handoff' },
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
