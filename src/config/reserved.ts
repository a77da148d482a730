/**
 * Names fixed outside the configuration that settings must not take (src/config/rules.ts checks
 * them): the keys of a user's Secret besides the session file, and the env var that adds the
 * service's Jupyter config directory to a server's search path.
 */

/** Data keys of a user's Secret besides the session file (whose key is notebook.sessionFileName). */
export const SECRET_KEYS = { protocol: 'protocol', host: 'host', port: 'port', state: 'state' } as const;
export const RESERVED_SECRET_KEYS = Object.values(SECRET_KEYS);

/** The env var that adds our Jupyter config directory to the server's search path. */
export const JUPYTER_CONFIG_PATH = 'JUPYTER_CONFIG_PATH';
