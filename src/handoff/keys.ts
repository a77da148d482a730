/**
 * Verification key sources. Several can be configured at once (an HMAC secret next to public keys
 * during a migration, files next to a JWKS URL); each answers only for the algorithms it holds, and
 * `kid` picks among their keys. Keys are only ever found here: the token's own `jku`, `x5u`, `jwk` and
 * `x5c` headers are ignored.
 */
import { createPublicKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  type CryptoKey,
  type JSONWebKeySet,
  type JWK,
  type JWSHeaderParameters,
} from 'jose';
import { envValue } from '../config/rules.js';
import type { Config } from '../config/types.js';
import { describeCause, HandoffError } from '../errors.js';

export type VerificationKey = CryptoKey | Uint8Array;

export interface KeySource {
  readonly kind: 'hmac' | 'static' | 'jwks';
  /** Whether this source can hold a key for `alg` (HMAC secrets for HS*, public keys for the rest). */
  holds(alg: string): boolean;
  /** Keys that may have signed a token with this header ([] when none). Throws `keys_unavailable` when the source cannot be read. */
  candidates(header: JWSHeaderParameters): Promise<VerificationKey[]>;
}

export function isHmacAlg(alg: string | undefined): boolean {
  return alg === 'HS256' || alg === 'HS384' || alg === 'HS512';
}

export function hmacSecretSource(secret: Uint8Array): KeySource {
  if (secret.byteLength < 32) throw new Error('the HMAC secret must be at least 32 bytes');
  return {
    kind: 'hmac',
    holds: isHmacAlg,
    async candidates() {
      return [secret];
    },
  };
}

/** Looks a header up in a jose JWKS function, collecting every key when several match (no `kid`). */
async function lookup(
  jwks: (h: JWSHeaderParameters) => Promise<CryptoKey>,
  header: JWSHeaderParameters,
): Promise<VerificationKey[]> {
  try {
    return [await jwks(header)];
  } catch (e) {
    if (e instanceof errors.JWKSNoMatchingKey) return [];
    if (e instanceof errors.JWKSMultipleMatchingKeys) {
      const keys: VerificationKey[] = [];
      for await (const k of e) keys.push(k);
      return keys;
    }
    throw e;
  }
}

/** Parses one key file: a PEM SPKI public key, a JWK or a JWKS (JSON). PEM keys get their RFC 7638 thumbprint as kid. */
export async function readPublicKeyFile(path: string): Promise<JWK[]> {
  const text = await readFile(path, 'utf8');
  if (text.includes('-----BEGIN')) {
    if (text.includes('PRIVATE KEY')) throw new Error(`${path} holds a private key; configure the public key only`);
    const jwk = createPublicKey(text).export({ format: 'jwk' }) as JWK;
    return [{ ...jwk, kid: await calculateJwkThumbprint(jwk) }];
  }
  const parsed = JSON.parse(text) as JWK | JSONWebKeySet;
  const keys = 'keys' in parsed ? parsed.keys : [parsed];
  for (const k of keys) {
    if (k.d !== undefined || k.kty === 'oct') throw new Error(`${path} holds private or symmetric key material`);
  }
  return keys;
}

export async function staticKeySource(files: string[]): Promise<KeySource> {
  const keys: JWK[] = [];
  for (const f of files) keys.push(...(await readPublicKeyFile(f)));
  const jwks = createLocalJWKSet({ keys });
  return { kind: 'static', holds: (alg) => !isHmacAlg(alg), candidates: (header) => lookup(jwks, header) };
}

export function jwksUrlSource(keys: Config['token']['keys'] & { jwksUrl: string }): KeySource {
  const jwks = createRemoteJWKSet(new URL(keys.jwksUrl), {
    timeoutDuration: keys.jwksTimeoutMs,
    cooldownDuration: keys.jwksCooldownSeconds * 1000,
    cacheMaxAge: keys.jwksCacheMaxAgeSeconds * 1000,
  });
  return {
    kind: 'jwks',
    holds: (alg) => !isHmacAlg(alg),
    async candidates(header) {
      try {
        return await lookup(jwks, header);
      } catch (e) {
        if (e instanceof errors.JWKSTimeout) throw new HandoffError('keys_unavailable', `JWKS fetch timed out: ${keys.jwksUrl}`);
        if (e instanceof HandoffError) throw e;
        throw new HandoffError('keys_unavailable', `JWKS fetch failed: ${keys.jwksUrl}: ${describeCause(e)}`);
      }
    },
  };
}

/** Reads the HMAC secret from its file or env var (never from the YAML itself). */
export async function readHmacSecret(keys: Config['token']['keys'], env: NodeJS.ProcessEnv): Promise<Uint8Array | undefined> {
  let text: string | undefined;
  if (keys.hmacSecretFile) text = await readFile(keys.hmacSecretFile, 'utf8');
  else if (keys.hmacSecretEnv) text = envValue(env, keys.hmacSecretEnv);
  if (text === undefined) return undefined;
  return new TextEncoder().encode(text.trim());
}

/** Every configured key source. */
export async function keySourcesFromConfig(keys: Config['token']['keys'], env: NodeJS.ProcessEnv = process.env): Promise<KeySource[]> {
  const sources: KeySource[] = [];
  const secret = await readHmacSecret(keys, env);
  if (secret) sources.push(hmacSecretSource(secret));
  if (keys.publicKeyFiles.length) sources.push(await staticKeySource(keys.publicKeyFiles));
  if (keys.jwksUrl) sources.push(jwksUrlSource({ ...keys, jwksUrl: keys.jwksUrl }));
  return sources;
}
