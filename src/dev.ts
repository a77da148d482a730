/**
 * Local mode (`npm start` with no config): a generated dev key under <dir>/dev, a config for it,
 * and a demo page that mints a fresh token on every visit. For trying the service, not production.
 * Without HUB_PUBLIC_URL there is no hub to land on: the handoff ends on the service's own page of
 * what the notebook would receive (src/web/landing/local.ts; `isLocalOnly` tells the service).
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { resolveConfig } from './config/load.js';
import type { Config } from './config/types.js';
import { generateSigningKey } from './handoff/keygen.js';
import { mintToken, randomSessionId, readSigningKey, type SigningKey } from './handoff/mint.js';

export const DEV_ISSUER = 'omnisci-handoff-dev';
export const DEV_AUDIENCE = 'omnisci-handoff';
export const DEV_TYP = 'omnisci-handoff+jwt';

/** The demo handoff's query: columns of a table HeavyDB/OmniSci ship as sample data (and `npm run demo`'s HeavyDB stand-in has). */
export const DEMO_QUERY = 'SELECT carrier_name, origin_city, dest_city, depdelay, arrdelay FROM flights_2008_10k LIMIT 10';

/** Configs local mode made without a hub to land on (no HUB_PUBLIC_URL). */
const withoutHub = new WeakSet<Config>();

/** Whether `config` is local mode's without a hub: the service then lands on its own page instead of a lab. */
export function isLocalOnly(config: Config): boolean {
  return withoutHub.has(config);
}

export interface DevSetup {
  config: Config;
  signing: SigningKey;
  /** A token for `user` (default demo) with `omnisci` (default: a random session and DEMO_QUERY). */
  mintDemo(user?: string, omnisci?: { session: string; query: string }): Promise<string>;
}

async function ensureDevKey(dir: string): Promise<{ privateFile: string; jwksFile: string }> {
  const privateFile = join(dir, 'signing-key.jwk');
  const jwksFile = join(dir, 'jwks.json');
  try {
    await readFile(jwksFile);
    await readFile(privateFile);
  } catch {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const key = await generateSigningKey('ES256');
    await writeFile(privateFile, JSON.stringify(key.privateJwk), { mode: 0o600 });
    await chmod(privateFile, 0o600);
    await writeFile(jwksFile, JSON.stringify({ keys: [key.publicJwk] }, null, 2));
  }
  return { privateFile, jwksFile };
}

export async function devSetup(env: NodeJS.ProcessEnv = process.env): Promise<DevSetup> {
  const dataDir = resolve(env.OMNISCI_HANDOFF_DATA ?? './.data');
  const { privateFile, jwksFile } = await ensureDevKey(join(dataDir, 'dev'));
  const port = Number(env.PORT ?? 8470);
  const config = resolveConfig(
    {
      // PORT=0 (a free port) gets a free internal port too.
      listen: { port, internal: { port: port === 0 ? 0 : port + 1 } },
      token: { issuer: DEV_ISSUER, audience: DEV_AUDIENCE, type: DEV_TYP, keys: { publicKeyFiles: [jwksFile] } },
      omnisci: { protocol: 'http', host: 'localhost', port: 6278 },
      store: { local: { dir: dataDir } },
      ...(env.HUB_PUBLIC_URL ? { redirect: { hubPublicUrl: env.HUB_PUBLIC_URL } } : {}),
    },
    env,
  );
  if (!env.HUB_PUBLIC_URL) withoutHub.add(config);
  const signing = await readSigningKey(privateFile);
  return {
    config,
    signing,
    mintDemo: (user = 'demo', omnisci = { session: randomSessionId(), query: DEMO_QUERY }) =>
      mintToken(signing, {
        issuer: DEV_ISSUER,
        audience: DEV_AUDIENCE,
        subject: user,
        typ: DEV_TYP,
        lifetimeSeconds: 300,
        omnisci,
      }),
  };
}
