/**
 * Verifies handoff and revocation tokens. Order matters: size and shape first (cheap, before any
 * parsing), then the header (alg allowlist, typ), then the signature against configured keys only,
 * then the registered claims, then the omnisci claim against the admin's allowlists.
 */
import { Ajv } from 'ajv';
import { decodeProtectedHeader, errors, jwtVerify, type JWSHeaderParameters, type JWTPayload } from 'jose';
import type { Config } from '../config/types.js';
import { errorFields, HandoffError, toHandoffError } from '../errors.js';
import type { Logger } from '../log.js';
import { claimsSchema, type OmnisciClaim } from './claims.js';
import type { KeySource, VerificationKey } from './keys.js';
import { requestedServer } from './server-name.js';
import type { Connection, Handoff, Revocation } from './types.js';
import { mapUsername } from './username.js';
const validateClaims = new Ajv({ allErrors: false, strict: true }).compile(claimsSchema);

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** `*.example.com` matches one or more labels below example.com; everything else matches exactly (case-insensitive). */
export function hostAllowedBy(host: string, allowed: readonly string[]): boolean {
  const h = host.toLowerCase();
  return allowed.some((a) => {
    const p = a.toLowerCase();
    return p.startsWith('*.') ? h.endsWith(p.slice(1)) && h.length > p.length - 1 : h === p;
  });
}

export interface Verifier {
  verifyHandoff(token: unknown): Promise<Handoff>;
  verifyRevocation(token: unknown): Promise<Revocation>;
}

function normalizeTyp(typ: string): string {
  const t = typ.toLowerCase();
  return t.startsWith('application/') ? t.slice('application/'.length) : t;
}

function joseToHandoffError(e: unknown): HandoffError | undefined {
  if (e instanceof errors.JWTExpired) return new HandoffError('token_expired', e.message);
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.reason === 'missing') return new HandoffError('claims_invalid', e.message);
    switch (e.claim) {
      case 'iss':
        return new HandoffError('bad_issuer');
      case 'aud':
        return new HandoffError('bad_audience');
      case 'nbf':
      case 'iat':
        return new HandoffError(e.reason === 'check_failed' ? 'token_not_yet_valid' : 'claims_invalid', e.message);
      default:
        return new HandoffError('claims_invalid', e.message);
    }
  }
  if (e instanceof errors.JWTInvalid) return new HandoffError('claims_invalid', e.message);
  if (e instanceof errors.JWSInvalid) return new HandoffError('token_malformed', e.message);
  if (e instanceof errors.JOSEAlgNotAllowed || e instanceof errors.JOSENotSupported)
    return new HandoffError('alg_not_allowed', e.message);
  return undefined;
}

export function createVerifier(config: Config, sources: KeySource[], log?: Pick<Logger, 'warn'>): Verifier {
  const t = config.token;
  const { issuer, audience } = t;
  // The config rules require both with a key source; never verify a token without checking them.
  if (!issuer || !audience) throw new HandoffError('config_invalid', 'token.issuer and token.audience are required to verify tokens');
  const sessionPattern = new RegExp(t.sessionPattern, 'u');

  function readHeader(token: unknown, expectedTyp: string, forbiddenTyp: string): { token: string; header: JWSHeaderParameters } {
    if (typeof token !== 'string' || token.trim() === '') throw new HandoffError('token_missing');
    const s = token.trim();
    if (Buffer.byteLength(s) > t.maxTokenBytes) throw new HandoffError('token_too_large', `${Buffer.byteLength(s)} bytes`);
    if (!COMPACT_JWS.test(s)) throw new HandoffError('token_malformed', 'not three base64url parts');
    let header: JWSHeaderParameters;
    try {
      header = decodeProtectedHeader(s) as JWSHeaderParameters;
    } catch (e) {
      throw new HandoffError('token_malformed', 'unreadable header', { cause: e });
    }
    if (typeof header.alg !== 'string' || !(t.algorithms as string[]).includes(header.alg))
      throw new HandoffError('alg_not_allowed', `alg ${JSON.stringify(String(header.alg)).slice(0, 40)}`);
    // RFC 7515 §4.1.11: extensions listed in crit must be understood; this service understands none.
    if (header.crit !== undefined) throw new HandoffError('crit_unsupported', `crit ${JSON.stringify(header.crit).slice(0, 60)}`);
    const typ = typeof header.typ === 'string' ? normalizeTyp(header.typ) : undefined;
    if (expectedTyp ? typ !== normalizeTyp(expectedTyp) : typ !== undefined && typ === normalizeTyp(forbiddenTyp))
      throw new HandoffError('typ_not_allowed', `typ ${JSON.stringify(String(header.typ)).slice(0, 60)}`);
    return { token: s, header };
  }

  /**
   * The keys of every source that holds the token's alg. Sources answer independently: one that
   * fails (a JWKS outage) is logged and the others still answer; its failure only stands when no
   * other key verifies the token.
   */
  async function candidates(header: JWSHeaderParameters): Promise<{ keys: VerificationKey[]; failure?: HandoffError }> {
    const results = await Promise.allSettled(sources.filter((s) => s.holds(header.alg as string)).map((s) => s.candidates(header)));
    const keys: VerificationKey[] = [];
    let failure: HandoffError | undefined;
    for (const r of results) {
      if (r.status === 'fulfilled') keys.push(...r.value);
      else {
        failure = toHandoffError(r.reason);
        log?.warn({ err: errorFields(failure) }, 'a verification key source failed; the others still answer');
      }
    }
    return { keys, ...(failure ? { failure } : {}) };
  }

  /** Signature + registered claims. Returns the payload of the first key that verifies. */
  async function verifySigned(token: unknown, expectedTyp: string, forbiddenTyp: string): Promise<JWTPayload> {
    const { token: s, header } = readHeader(token, expectedTyp, forbiddenTyp);
    const { keys, failure } = await candidates(header);
    if (keys.length === 0) throw failure ?? new HandoffError('unknown_key', header.kid ? 'no key with that kid' : 'no key for that alg');
    for (const key of keys) {
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(s, key, {
          algorithms: [header.alg as string],
          issuer,
          audience,
          clockTolerance: t.clockToleranceSeconds,
          maxTokenAge: t.maxLifetimeSeconds,
          requiredClaims: ['exp', 'iat', 'jti', 'sub'],
        }));
      } catch (e) {
        const mapped = joseToHandoffError(e);
        if (mapped) throw mapped;
        // Wrong key for this signature (or a key of another type): try the next candidate.
        if (e instanceof errors.JWSSignatureVerificationFailed || e instanceof TypeError) continue;
        throw e;
      }
      const lifetime = (payload.exp as number) - (payload.iat as number);
      if (lifetime > t.maxLifetimeSeconds)
        throw new HandoffError('token_lifetime_too_long', `exp - iat = ${lifetime}s > ${t.maxLifetimeSeconds}s`);
      return payload;
    }
    // The key that signed it may be in the source that failed.
    throw failure ?? new HandoffError('bad_signature');
  }

  function connection(o: OmnisciClaim): Connection {
    const d = config.omnisci;
    if (o.host !== undefined && o.host.toLowerCase() !== d.host.toLowerCase() && !hostAllowedBy(o.host, d.allowedHosts))
      throw new HandoffError('host_not_allowed', 'host outside omnisci.allowedHosts');
    if (o.port !== undefined && o.port !== d.port && !d.allowedPorts.includes(o.port))
      throw new HandoffError('port_not_allowed', `port ${o.port} outside omnisci.allowedPorts`);
    return {
      protocol: o.protocol ?? d.protocol,
      host: o.host ?? d.host,
      port: o.port ?? d.port,
      database: o.database ?? d.database,
    };
  }

  return {
    async verifyHandoff(token) {
      const payload = await verifySigned(token, t.type, t.revokeType);
      if (!validateClaims(payload)) {
        const e = validateClaims.errors?.[0];
        const where = `${e?.instancePath || '/'}`;
        const code = where.startsWith('/omnisci/session') ? 'session_invalid' : where === '/server' ? 'server_name_invalid' : 'claims_invalid';
        throw new HandoffError(code, `${where} ${e?.message ?? 'is invalid'}`);
      }
      const o = payload.omnisci as OmnisciClaim;
      if (!sessionPattern.test(o.session)) throw new HandoffError('session_invalid', 'session does not match token.sessionPattern');
      const server = requestedServer(payload.server, config.hub.namedServers);
      return {
        user: mapUsername(payload, config.user),
        jti: payload.jti as string,
        iat: payload.iat as number,
        exp: payload.exp as number,
        session: o.session,
        query: o.query ?? '',
        connection: connection(o),
        ...(server === undefined ? {} : { server }),
      };
    },

    async verifyRevocation(token) {
      const payload = await verifySigned(token, t.revokeType, t.type || '');
      if (typeof payload.jti !== 'string' || payload.jti.length < 8)
        throw new HandoffError('claims_invalid', 'jti must be a string of at least 8 characters');
      return {
        user: mapUsername(payload, config.user),
        jti: payload.jti,
        iat: payload.iat as number,
        exp: payload.exp as number,
      };
    },
  };
}
