/**
 * Shared test fixtures for the core: keys of every algorithm written as the files an admin would
 * configure, a config builder, token minting, and a real service on a loopback port whose log lines
 * are captured (for the redaction scan).
 */
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { importPKCS8, type JWK } from 'jose';
import { resolveConfig } from '../../src/config/load.js';
import type { Algorithm, Config } from '../../src/config/types.js';
import { mintToken, randomSessionId, type MintOptions, type SigningKey } from '../../src/handoff/mint.js';
import { createLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { startService, type RunningService, type ServiceOptions } from '../../src/service.js';
import type { Handoff } from '../../src/handoff/types.js';

export const ISSUER = 'https://immerse.test';
export const AUDIENCE = 'omnisci-handoff';
export const TYP = 'omnisci-handoff+jwt';
export const HMAC_SECRET = 'a-test-secret-of-at-least-thirty-two-bytes-0123456789';

export function tempDir(prefix = 'oh-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export const ASYMMETRIC: Exclude<Algorithm, 'HS256' | 'HS384' | 'HS512'>[] = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];

function nodeKeyPair(alg: Algorithm): { privateKey: KeyObject; publicKey: KeyObject } {
  switch (alg) {
    case 'RS256':
    case 'PS256':
      return generateKeyPairSync('rsa', { modulusLength: 2048 });
    case 'ES256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' });
    case 'ES384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' });
    case 'EdDSA':
      return generateKeyPairSync('ed25519');
    default:
      throw new Error(`not asymmetric: ${alg}`);
  }
}

export interface TestKey {
  alg: Algorithm;
  kid: string;
  signing: SigningKey;
  publicPem: string;
  publicJwk: JWK;
}

export async function makeKey(alg: Exclude<Algorithm, 'HS256' | 'HS384' | 'HS512'>, kid = `${alg}-${Math.random().toString(36).slice(2, 8)}`): Promise<TestKey> {
  const { privateKey, publicKey } = nodeKeyPair(alg);
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const key = await importPKCS8(pem, alg);
  return {
    alg,
    kid,
    signing: { alg, key, kid },
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    publicJwk: { ...(publicKey.export({ format: 'jwk' }) as JWK), kid, alg },
  };
}

export function hmacKey(alg: 'HS256' | 'HS384' | 'HS512', secret = HMAC_SECRET): SigningKey {
  return { alg, key: new TextEncoder().encode(secret) };
}

export function writeFile(dir: string, name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

type Sections = Record<string, Record<string, unknown>>;

/** The tests' config before validation (HS256 with the secret in TEST_HMAC); `overrides` are merged one level deep per section. */
export function rawTestConfig(overrides: Sections = {}): Sections {
  const raw: Sections = {
    listen: { host: '127.0.0.1', port: 0, internal: { port: 0 } },
    token: { issuer: ISSUER, audience: AUDIENCE, type: TYP, algorithms: ['HS256'], keys: { hmacSecretEnv: 'TEST_HMAC' } },
    omnisci: { protocol: 'https', host: 'omnisci.test', port: 443, allowedHosts: ['omnisci.test', '*.db.test'], allowedPorts: [6274, 6278] },
    redirect: { hubPublicUrl: 'https://hub.test' },
    log: { level: 'info' },
  };
  for (const [k, v] of Object.entries(overrides)) raw[k] = { ...raw[k], ...v };
  return raw;
}

/** A resolved config; `overrides` are merged one level deep per section. */
export function testConfig(overrides: Sections = {}, env: NodeJS.ProcessEnv = {}): Config {
  return resolveConfig(rawTestConfig(overrides), { TEST_HMAC: HMAC_SECRET, ...env });
}

/** A verified handoff as the store receives it: a fresh jti and session, issued now, valid 5 minutes. */
export function makeHandoff(user: string, over: Partial<Handoff> = {}): Handoff {
  const iat = over.iat ?? Math.floor(Date.now() / 1000);
  return {
    user,
    jti: randomUUID(),
    iat,
    exp: iat + 300,
    session: randomSessionId(),
    query: 'SELECT 1',
    connection: { protocol: 'https', host: 'omnisci.test', port: 443, database: '' },
    ...over,
  };
}

let jtiCounter = 0;
export function mint(
  signing: SigningKey,
  o: Omit<Partial<MintOptions>, 'omnisci'> & { omnisci?: MintOptions['omnisci'] | null } = {},
): Promise<string> {
  const { omnisci, ...rest } = o;
  return mintToken(signing, {
    issuer: ISSUER,
    audience: AUDIENCE,
    subject: 'alice',
    typ: TYP,
    jti: `jti-${process.pid}-${Date.now()}-${++jtiCounter}`,
    ...rest,
    ...(omnisci === null ? {} : { omnisci: omnisci ?? { session: randomSessionId() } }),
  });
}

/** Collects every log line a service writes. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    cb();
  }
  records(): Record<string, unknown>[] {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

export interface TestService extends RunningService {
  logs: LogCapture;
  config: Config;
}

export async function startTestService(config: Config, o: ServiceOptions = {}): Promise<TestService> {
  const logs = new LogCapture();
  const service = await startService(config, {
    env: { TEST_HMAC: HMAC_SECRET },
    logger: createLogger('info', logs),
    metrics: createMetrics(undefined, false),
    ...o,
  });
  return Object.assign(service, { logs, config });
}

/** POSTs a token as the form an issuer auto-submits; never follows the redirect. */
export function postToken(url: string, token: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${url}handoff`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams({ token }).toString(),
  });
}

export { randomSessionId };
