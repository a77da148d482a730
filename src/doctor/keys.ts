/**
 * Token keys as the verifier will read them (src/handoff/keys.ts): the HMAC secret, the public key
 * files, the JWKS (fetched now, its kids listed), and whether the allowed algorithms have a key.
 */
import type { JWK } from 'jose';
import { takesTokens } from '../config/rules.js';
import type { Algorithm, Config } from '../config/types.js';
import { describeCause } from '../errors.js';
import { isHmacAlg, readHmacSecret, readPublicKeyFile } from '../handoff/keys.js';
import { fail, parseJson, pass, request, type Check } from './check.js';

const MAX_JWKS_BYTES = 1 << 20;

/** Whether a public key can verify `alg` (its own `alg`/`use` honoured, as jose does). */
export function keyFits(alg: Algorithm, k: JWK): boolean {
  if ((k.alg && k.alg !== alg) || (k.use && k.use !== 'sig')) return false;
  switch (alg) {
    case 'RS256':
    case 'PS256':
      return k.kty === 'RSA';
    case 'ES256':
      return k.kty === 'EC' && k.crv === 'P-256';
    case 'ES384':
      return k.kty === 'EC' && k.crv === 'P-384';
    case 'EdDSA':
      return k.kty === 'OKP' && (k.crv === 'Ed25519' || k.crv === 'Ed448');
    default:
      return false;
  }
}

const kids = (keys: JWK[]) => keys.map((k) => (k.kid ? `kid ${k.kid}` : 'no kid')).join(', ');
const counted = (keys: JWK[]) => `${keys.length} key${keys.length === 1 ? '' : 's'}${keys.length ? ` (${kids(keys)})` : ''}`;

export async function keyChecks(config: Config, env: NodeJS.ProcessEnv, fetchImpl: typeof fetch): Promise<Check[]> {
  // The config rules allow no key source only with header mode on.
  if (!takesTokens(config)) return [pass('keys', 'none configured: no token handoffs, header mode only (token entries answer tokens_disabled)')];
  const keys = config.token.keys;
  const out: Check[] = [];
  const publicKeys: JWK[] = [];
  let hmac = false;

  if (keys.hmacSecretFile || keys.hmacSecretEnv) {
    const where = keys.hmacSecretFile ? `file ${keys.hmacSecretFile}` : `env ${keys.hmacSecretEnv}`;
    const check = 'keys: hmac secret';
    try {
      const secret = await readHmacSecret(keys, env);
      if (!secret?.byteLength) out.push(fail(check, `${where} is empty or not set`, 'give the service the secret shared with the issuer (omnisci-handoff keygen --alg HS256 makes one)'));
      else if (secret.byteLength < 32)
        out.push(fail(check, `${where}: ${secret.byteLength} bytes, at least 32 are needed`, 'use a longer secret (omnisci-handoff keygen --alg HS256 makes one) and share it with the issuer'));
      else {
        hmac = true;
        out.push(pass(check, `${where}: ${secret.byteLength} bytes`));
      }
    } catch (e) {
      out.push(fail(check, `cannot read ${where} (${describeCause(e)})`, "make it readable by the service's account"));
    }
  }

  for (const file of keys.publicKeyFiles) {
    const check = 'keys: public key file';
    try {
      const found = await readPublicKeyFile(file);
      publicKeys.push(...found);
      out.push(found.length ? pass(check, `${file}: ${counted(found)}`) : fail(check, `${file}: no keys`, 'put the issuer\'s public key (PEM, JWK or JWKS) in it'));
    } catch (e) {
      // Our own refusals (private key material) name the file; other errors are described, never quoted.
      const why = e instanceof Error && e.message.startsWith(file) ? e.message.slice(file.length + 1) : `cannot read it (${describeCause(e)})`;
      out.push(fail(check, `${file}: ${why}`, 'configure a readable file with the issuer\'s public key (PEM SPKI, JWK or JWKS) in token.keys.publicKeyFiles'));
    }
  }

  if (keys.jwksUrl) {
    const check = 'keys: jwks';
    const url = keys.jwksUrl;
    const fix = "the issuer's JWKS must answer at token.keys.jwksUrl from where the service runs (check the URL, DNS, proxies and egress NetworkPolicy)";
    const r = await request(fetchImpl, url, { headers: { accept: 'application/json' }, timeoutMs: keys.jwksTimeoutMs });
    if ('error' in r) out.push(fail(check, `${url}: no answer (${r.error})`, fix));
    else if (r.status !== 200) out.push(fail(check, `${url}: HTTP ${r.status}`, fix));
    else if (r.text.length > MAX_JWKS_BYTES) out.push(fail(check, `${url}: larger than ${MAX_JWKS_BYTES} bytes`, fix));
    else {
      const jwks = parseJson(r.text) as { keys?: unknown } | undefined;
      const found = Array.isArray(jwks?.keys) ? (jwks.keys as JWK[]).filter((k) => k && typeof k === 'object') : undefined;
      if (!found) out.push(fail(check, `${url}: not a JWKS (no "keys" array)`, fix));
      else if (found.some((k) => k.d !== undefined || k.kty === 'oct'))
        out.push(fail(check, `${url}: publishes private or symmetric key material`, 'publish public keys only, and replace the exposed keys'));
      else if (!found.length) out.push(fail(check, `${url}: no keys`, 'publish the public key the issuer signs with'));
      else {
        publicKeys.push(...found);
        out.push(pass(check, `${url}: ${counted(found)}`));
      }
    }
  }

  // Which allowed algorithms a configured key can verify: tokens signed with the others are refused.
  const covered = config.token.algorithms.map((alg) => {
    if (isHmacAlg(alg)) return { alg, by: hmac ? ['the HMAC secret'] : [] };
    return { alg, by: publicKeys.filter((k) => keyFits(alg, k)).map((k) => (k.kid ? `kid ${k.kid}` : 'a key without kid')) };
  });
  const usable = covered.filter((c) => c.by.length);
  const missing = covered.filter((c) => !c.by.length).map((c) => c.alg);
  const detail = `${usable.map((c) => `${c.alg} (${c.by.join(', ')})`).join(', ')}${missing.length ? `${usable.length ? '; ' : ''}no key for ${missing.join(', ')}` : ''}`;
  out.push(
    usable.length
      ? pass('keys: algorithms', detail)
      : fail('keys: algorithms', `no configured key verifies any of token.algorithms (${config.token.algorithms.join(', ')})`, 'configure the key the issuer signs with, and list its algorithm in token.algorithms'),
  );
  return out;
}
