/** The domain of a handoff: what a verified token says, whatever stores it or lands the browser. */
import type { OmnisciProtocol } from '../config/types.js';

/** Where the notebook's extension connects (exposed to it as env vars). */
export interface Connection {
  protocol: OmnisciProtocol;
  host: string;
  port: number;
  database: string;
}

/** A verified handoff: everything the store needs, nothing else (no raw token). */
export interface Handoff {
  /** JupyterHub user name (already mapped and validated). */
  user: string;
  jti: string;
  /** Seconds since the epoch. */
  iat: number;
  exp: number;
  session: string;
  query: string;
  connection: Connection;
  /** The named server the handoff opens (./server-name.ts); absent: hub.serverName. The session itself is the user's, whichever server opens. */
  server?: string;
}

/** A verified revocation (Immerse logout). */
export interface Revocation {
  user: string;
  jti: string;
  iat: number;
  exp: number;
}
