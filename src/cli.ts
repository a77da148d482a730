#!/usr/bin/env node
/**
 * omnisci-handoff CLI: serve, check-config, doctor, mint, keygen, z2jh-values.
 * Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage (doctor: docs/doctor.md).
 */
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfigFile } from './config/load.js';
import { takesTokens } from './config/rules.js';
import { configSchema } from './config/schema.js';
import type { Algorithm, Config, OmnisciProtocol } from './config/types.js';
import { devSetup, isLocalOnly } from './dev.js';
import { generateHmacSecret, generateSigningKey } from './handoff/keygen.js';
import { isHmacAlg } from './handoff/keys.js';
import { mintToken, readSigningKey } from './handoff/mint.js';
import { exitOnSignals, startService } from './service.js';
import { ACTIVATE_SECONDS, KEEP_OLD_SECONDS, newTicketKey, parseTicketKeys, rotateTicketKeys, ticketKeysText } from './hub/ticket-keys.js';
import { z2jhValuesYaml } from './deploy/z2jh.js';
import { HandoffError } from './errors.js';

const USAGE = `usage: omnisci-handoff <command> [options]

commands:
  serve [--config FILE]        run the service (no config: local mode with a generated dev key)
  check-config --config FILE   validate a config file; lists every problem, exit code 2 when invalid
  doctor --config FILE [--json] [--kubeconfig ADMIN_KUBECONFIG]
                               check a live deployment from where the service runs (keys, hub, Kubernetes
                               RBAC, webhook, ConfigMap): one line per check with the fix; exit code 0 when
                               all pass, 1 when one fails, 3 when some could not be checked (docs/doctor.md)
  mint --key FILE [--alg ALG] (--config FILE | --issuer ISS --audience AUD) --sub USER --session ID
       [--protocol P] [--host H] [--port N] [--database DB] [--query SQL] [--server NAME] [--typ TYP]
       [--lifetime SECONDS] [--revoke] [--link BASE_URL]
                               issue a handoff (or revocation) token
  z2jh-values --config FILE [--service-name NAME] [--service-url URL] [--webhook-free]
                               print the values to merge into the zero-to-jupyterhub release
  keygen --alg ALG --out DIR [--kid KID]
                               generate a signing key (DIR/signing-key.jwk) and its JWKS (DIR/jwks.json),
                               or for HS* a shared secret (DIR/hmac-secret)
  keygen --ticket-keys FILE [--keep-old SECONDS]
                               write the keys that seal the hub flows' tickets (hub.ticketKeyFile); on an
                               existing FILE rotate them: a new key seals after ${ACTIVATE_SECONDS} s (restart every
                               replica before), the previous ones open tickets SECONDS more (default ${KEEP_OLD_SECONDS})

The config file may also be given as OMNISCI_HANDOFF_CONFIG.`;

/** A command line that cannot run: said with the usage. */
const usage = (message: string) => new HandoffError('usage_invalid', undefined, { message });

function configPath(values: { config?: string | undefined }): string | undefined {
  return values.config ?? process.env.OMNISCI_HANDOFF_CONFIG;
}

async function serve(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' } } });
  const path = configPath(values);
  if (path) {
    exitOnSignals(await startService(loadConfigFile(path)));
    return;
  }
  const dev = await devSetup();
  const service = await startService(dev.config, { demoToken: () => dev.mintDemo() });
  exitOnSignals(service);
  const link = `${service.url}handoff#token=${await dev.mintDemo()}`;
  process.stdout.write(
    `\nomnisci-handoff is running in local mode (dev key in ${dev.config.store.local.dir}/dev, sessions in ${dev.config.store.local.dir}/users).\n` +
      `Open the demo handoff (a fresh token each visit):\n  ${service.url}dev/demo\n` +
      `or this one-time handoff link for user "demo" (valid 5 minutes; the token stays in the fragment):\n  ${link}\n` +
      (isLocalOnly(dev.config)
        ? 'Both store a session and show what the notebook would receive (no hub configured: set HUB_PUBLIC_URL, or try npm run demo).\n\n'
        : `Both store a session and redirect to ${dev.config.redirect.hubPublicUrl}/user/demo/lab?omnisci&reset.\n\n`),
  );
}

function checkConfig(args: string[]): void {
  const { values } = parseArgs({ args, options: { config: { type: 'string' } } });
  const path = configPath(values);
  if (!path) throw usage('check-config needs --config FILE');
  const config = loadConfigFile(path);
  const tokens = takesTokens(config) ? `algorithms ${config.token.algorithms.join(', ')}` : 'no token handoffs (no key source)';
  const header = config.heavydb.enabled ? ', header mode' : '';
  process.stdout.write(`${path}: ok (store ${config.store.backend}, ${tokens}${header}, base ${config.listen.basePath})\n`);
}

async function doctorCommand(args: string[]): Promise<number> {
  const { values: v } = parseArgs({ args, options: { config: { type: 'string' }, json: { type: 'boolean' }, kubeconfig: { type: 'string' } } });
  const path = configPath(v);
  if (!path) throw usage('doctor needs --config FILE');
  const { doctor, exitCode, formatCheck } = await import('./doctor/index.js');
  const checks = await doctor({ configPath: path, ...(v.kubeconfig ? { kubeconfig: v.kubeconfig } : {}) });
  process.stdout.write(v.json ? `${JSON.stringify(checks, null, 2)}\n` : checks.map((c) => `${formatCheck(c)}\n`).join(''));
  return exitCode(checks);
}

async function mint(args: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args,
    options: {
      key: { type: 'string' },
      alg: { type: 'string' },
      config: { type: 'string' },
      issuer: { type: 'string' },
      audience: { type: 'string' },
      sub: { type: 'string' },
      session: { type: 'string' },
      protocol: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      database: { type: 'string' },
      query: { type: 'string' },
      server: { type: 'string' },
      typ: { type: 'string' },
      lifetime: { type: 'string' },
      revoke: { type: 'boolean' },
      link: { type: 'string' },
    },
  });
  if (!v.key || !v.sub) throw usage('mint needs --key and --sub');
  const path = configPath(v);
  const config: Config | undefined = path ? loadConfigFile(path) : undefined;
  const issuer = v.issuer ?? config?.token.issuer;
  const audience = v.audience ?? config?.token.audience;
  if (!issuer || !audience) throw usage('mint needs --issuer and --audience (or --config)');
  if (!v.revoke && !v.session) throw usage('mint needs --session (or --revoke)');
  // Without a config, the service's default types (a service with defaults refuses a token without typ).
  const types = configSchema.properties.token.properties;
  const typ = v.typ ?? (v.revoke ? (config?.token.revokeType ?? types.revokeType.default) : (config?.token.type ?? types.type.default));
  const signing = await readSigningKey(v.key, v.alg as Algorithm | undefined);
  const token = await mintToken(signing, {
    issuer,
    audience,
    subject: v.sub,
    ...(typ ? { typ } : {}),
    ...(v.lifetime ? { lifetimeSeconds: Number(v.lifetime) } : {}),
    // The named server to open (hub.namedServers must allow it).
    ...(v.server !== undefined && !v.revoke ? { extraClaims: { server: v.server } } : {}),
    ...(v.revoke
      ? {}
      : {
          omnisci: {
            session: v.session as string,
            ...(v.protocol ? { protocol: v.protocol as OmnisciProtocol } : {}),
            ...(v.host ? { host: v.host } : {}),
            ...(v.port ? { port: Number(v.port) } : {}),
            ...(v.database ? { database: v.database } : {}),
            ...(v.query ? { query: v.query } : {}),
          },
        }),
  });
  process.stdout.write(v.link ? `${v.link.replace(/\/?$/, '/')}handoff#token=${token}\n` : `${token}\n`);
}

/** Writes the ticket keys, or rotates an existing file's (atomically: a reader never sees half a file). */
async function ticketKeys(file: string, keepOld: string | undefined): Promise<void> {
  const seconds = keepOld === undefined ? KEEP_OLD_SECONDS : Number(keepOld);
  if (!Number.isInteger(seconds) || seconds < 0) throw usage('--keep-old takes whole seconds');
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const now = Date.now();
  const keys = text === undefined ? [{ secret: newTicketKey() }] : rotateTicketKeys(parseTicketKeys(text, file), now, seconds * 1000);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, ticketKeysText(keys), { mode: 0o600 });
  await rename(tmp, file);
  process.stdout.write(
    text === undefined
      ? `wrote ${file} (one new ticket key; configure hub.ticketKeyFile, the same file for every replica)\n`
      : `rotated ${file}: restart the service (every replica) within ${ACTIVATE_SECONDS} s; the new key seals from then on, the previous ones open tickets ${seconds} s longer.\n`,
  );
}

async function keygen(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { alg: { type: 'string' }, out: { type: 'string' }, kid: { type: 'string' }, 'ticket-keys': { type: 'string' }, 'keep-old': { type: 'string' } },
  });
  if (values['ticket-keys']) return ticketKeys(values['ticket-keys'], values['keep-old']);
  if (!values.alg || !values.out) throw usage('keygen needs --alg and --out, or --ticket-keys FILE');
  await mkdir(values.out, { recursive: true, mode: 0o700 });
  if (isHmacAlg(values.alg)) {
    const file = join(values.out, 'hmac-secret');
    await writeFile(file, `${generateHmacSecret()}\n`, { mode: 0o600 });
    await chmod(file, 0o600);
    process.stdout.write(`wrote ${file} (share it with the issuer; configure token.keys.hmacSecretFile)\n`);
    return;
  }
  const key = await generateSigningKey(values.alg as Exclude<Algorithm, 'HS256' | 'HS384' | 'HS512'>, values.kid);
  const privateFile = join(values.out, 'signing-key.jwk');
  await writeFile(privateFile, `${JSON.stringify(key.privateJwk)}\n`, { mode: 0o600 });
  await chmod(privateFile, 0o600);
  await writeFile(join(values.out, 'jwks.json'), `${JSON.stringify({ keys: [key.publicJwk] }, null, 2)}\n`);
  process.stdout.write(`wrote ${privateFile} (issuer only) and ${join(values.out, 'jwks.json')} (kid ${key.publicJwk.kid})\n`);
}

async function z2jh(args: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args,
    options: { config: { type: 'string' }, 'service-name': { type: 'string' }, 'service-url': { type: 'string' }, 'webhook-free': { type: 'boolean' } },
  });
  const path = configPath(v);
  if (!path) throw usage('z2jh-values needs --config FILE');
  // The values are for the service's deployment, whose environment (the hub's API URL and token) is not this shell's.
  const config = loadConfigFile(path, process.env, { elsewhere: true });
  const authenticator =
    config.hub.loginMode === 'handoff' || config.heavydb.enabled ? await readFile(new URL('../../helm/omnisci-handoff/files/authenticator.py', import.meta.url), 'utf8') : undefined;
  process.stdout.write(
    z2jhValuesYaml(config, {
      ...(v['service-name'] ? { serviceName: v['service-name'] } : {}),
      ...(v['service-url'] ? { serviceUrl: v['service-url'] } : {}),
      ...(v['webhook-free'] ? { webhookFree: true } : {}),
      ...(authenticator ? { authenticatorSource: authenticator } : {}),
    }),
  );
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  try {
    switch (command) {
      case 'serve':
        await serve(args);
        return 0;
      case 'check-config':
        checkConfig(args);
        return 0;
      case 'doctor':
        return await doctorCommand(args);
      case 'mint':
        await mint(args);
        return 0;
      case 'keygen':
        await keygen(args);
        return 0;
      case 'z2jh-values':
        await z2jh(args);
        return 0;
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(`${USAGE}\n`);
        return command === undefined ? 2 : 0;
      default:
        throw usage(`unknown command ${command}`);
    }
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      return 2;
    }
    if ((e instanceof HandoffError && e.code === 'usage_invalid') || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`${(e as Error).message}\n\n${USAGE}\n`);
      return 2;
    }
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return 1;
  }
}

// Only `serve` keeps running (its server holds the event loop); other commands exit with their code.
main(process.argv.slice(2)).then((code) => {
  if (code !== 0 || process.argv[2] !== 'serve') process.exitCode = code;
});
