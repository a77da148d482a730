/**
 * Issues handoff and revocation tokens: for issuers (a reference for Immerse integrators), the
 * local-mode demo, tests and benchmarks. Keys come from a private JWK/PEM file or an HMAC secret.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { importJWK, importPKCS8, SignJWT, type CryptoKey, type JWK } from 'jose';
import type { Algorithm, OmnisciProtocol } from '../config/types.js';
import { isHmacAlg } from './keys.js';

export interface SigningKey {
  alg: Algorithm;
  key: CryptoKey | Uint8Array;
  kid?: string;
}

export interface MintOptions {
  issuer: string;
  audience: string;
  subject: string;
  /** Omit for a revocation token. */
  omnisci?: {
    session: string;
    protocol?: OmnisciProtocol;
    host?: string;
    port?: number;
    database?: string;
    query?: string;
  };
  typ?: string;
  lifetimeSeconds?: number;
  /** Seconds since the epoch; default now. */
  iat?: number;
  jti?: string;
  extraClaims?: Record<string, unknown>;
}

export function randomSessionId(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(randomBytes(32), (b) => alphabet[b % alphabet.length]).join('');
}

export async function mintToken(signing: SigningKey, o: MintOptions): Promise<string> {
  const iat = o.iat ?? Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ ...o.extraClaims, ...(o.omnisci ? { omnisci: o.omnisci } : {}) })
    .setProtectedHeader({ alg: signing.alg, ...(signing.kid ? { kid: signing.kid } : {}), ...(o.typ ? { typ: o.typ } : {}) })
    .setIssuer(o.issuer)
    .setAudience(o.audience)
    .setSubject(o.subject)
    .setIssuedAt(iat)
    .setExpirationTime(iat + (o.lifetimeSeconds ?? 120))
    .setJti(o.jti ?? randomBytes(16).toString('base64url'));
  return jwt.sign(signing.key);
}

/** Reads a private signing key: a JWK (with `alg`, optional `kid`) or PKCS#8 PEM (alg given), or an HMAC secret. */
export async function readSigningKey(path: string, alg?: Algorithm): Promise<SigningKey> {
  const text = await readFile(path, 'utf8');
  if (alg && isHmacAlg(alg)) return { alg, key: new TextEncoder().encode(text.trim()) };
  if (text.includes('-----BEGIN')) {
    if (!alg) throw new Error('--alg is required with a PEM key');
    return { alg, key: await importPKCS8(text, alg) };
  }
  const jwk = JSON.parse(text) as JWK;
  const a = (alg ?? jwk.alg) as Algorithm | undefined;
  if (!a) throw new Error('the JWK has no alg; pass --alg');
  return { alg: a, key: (await importJWK(jwk, a)) as CryptoKey, ...(jwk.kid ? { kid: jwk.kid } : {}) };
}
