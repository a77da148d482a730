/** Key pairs for issuers: a private JWK (for the issuer / `mint`) and the public JWKS (for this service). */
import { randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Algorithm } from '../config/types.js';

export interface GeneratedKey {
  privateJwk: JWK;
  publicJwk: JWK;
}

export async function generateSigningKey(alg: Exclude<Algorithm, 'HS256' | 'HS384' | 'HS512'>, kid?: string): Promise<GeneratedKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  const publicJwk = await exportJWK(publicKey);
  const id = kid ?? (await calculateJwkThumbprint(publicJwk));
  const meta = { alg, kid: id, use: 'sig' };
  return { privateJwk: { ...(await exportJWK(privateKey)), ...meta }, publicJwk: { ...publicJwk, ...meta } };
}

export function generateHmacSecret(): string {
  return randomBytes(48).toString('base64url');
}
