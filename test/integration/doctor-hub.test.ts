/**
 * `omnisci-handoff doctor` (the built CLI, as an admin runs it) against a real JupyterHub 5 and a real
 * JWKS endpoint on loopback: a good setup passes every check (exit 0); a bad token, a missing scope,
 * a JWKS that is down, bad key files, a wrong public URL and an invalid config each fail with the
 * exact line that says what is wrong and how to fix it.
 */
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { newTicketKey } from '../../src/hub/ticket-keys.js';
import { HMAC_SECRET, makeKey, tempDir } from '../support/core.js';
import { freePort, SERVICE_SCOPES_CREATE, startHub, type RunningHub } from '../support/jupyterhub.js';
import { runCli } from '../support/process.js';

jest.setTimeout(120_000);

let hub: RunningHub;
let jwks: Server;
let jwksUrl: string;
let version: string;
const dir = tempDir('oh-doctor-hub-');
const storeDir = join(dir, 'store');

beforeAll(async () => {
  hub = await startHub({ serviceScopes: SERVICE_SCOPES_CREATE, extraServices: { 'servers-only': ['servers'] } });
  version = ((await (await fetch(`${hub.publicUrl}/hub/api`)).json()) as { version: string }).version;
  const key = await makeKey('ES256', 'immerse-1');
  jwks = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(req.url === '/jwks.json' ? JSON.stringify({ keys: [key.publicJwk] }) : '{}');
  });
  await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', () => r()));
  jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`;
});

afterAll(async () => {
  jwks?.close();
  await hub?.stop();
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
/** A config file like an admin's for a hub without Kubernetes; sections are merged one level deep. */
function configFile(over: Record<string, Record<string, unknown>> = {}): string {
  const raw: Record<string, Record<string, unknown>> = {
    token: { issuer: 'https://immerse.test', audience: 'omnisci-handoff', algorithms: ['ES256'], keys: { jwksUrl } },
    redirect: { hubPublicUrl: hub.publicUrl },
    store: { backend: 'local', local: { dir: storeDir } },
    hub: { enabled: true, apiUrl: hub.apiUrl, createUsers: true, requestTimeoutMs: 5000 },
  };
  for (const [k, v] of Object.entries(over)) raw[k] = { ...raw[k], ...v };
  const file = join(dir, `config-${n++}.yaml`);
  writeFileSync(file, stringify(raw));
  return file;
}

const doctor = (file: string, env: Record<string, string> = {}, ...args: string[]) =>
  runCli(['doctor', '--config', file, ...args], { JUPYTERHUB_API_TOKEN: hub.serviceToken, ...env });
const lines = (out: string) => out.trimEnd().split('\n');

describe('doctor against a real hub', () => {
  test('a good setup: every check passes, exit 0; --json has the same checks', async () => {
    const file = configFile();
    const r = await doctor(file);
    expect(r.stderr).toBe('');
    expect(lines(r.stdout)).toEqual([
      `✓ config: ${file}: valid (store local, hub on, webhook off)`,
      `✓ keys: jwks: ${jwksUrl}: 1 key (kid immerse-1)`,
      '✓ keys: algorithms: ES256 (kid immerse-1)',
      `✓ store: local directory: ${storeDir} is writable`,
      `✓ hub: api: ${hub.apiUrl}: JupyterHub ${version}, the token is service omnisci-handoff's`,
      '✓ hub: scopes: servers, admin:users, read:shares',
      '✓ hub: token strength: about 192 bits of entropy (at least 128 needed)',
      `✓ hub: ticket keys: ${storeDir}/ticket-keys: not created yet; the service writes a random key there at its first start`,
      `✓ hub: public url: ${hub.publicUrl}: JupyterHub ${version}`,
    ]);
    expect(r.code).toBe(0);

    const j = await doctor(file, {}, '--json');
    expect(j.code).toBe(0);
    const checks = JSON.parse(j.stdout) as { check: string; ok: boolean | null; detail: string; fix: string }[];
    expect(checks.map((c) => Object.keys(c))).toEqual(checks.map(() => ['check', 'ok', 'detail', 'fix']));
    expect(checks.map((c) => `${c.ok ? '✓' : '✗'} ${c.check}: ${c.detail}`)).toEqual(lines(r.stdout));
    expect(checks.every((c) => c.ok === true && c.fix === '')).toBe(true);
  });

  test('a token the hub does not know (and a guessable one): the API check fails, the scopes cannot be checked; exit 1; the token is never printed', async () => {
    const r = await doctor(configFile(), { JUPYTERHUB_API_TOKEN: 'not-the-service-token' });
    expect(lines(r.stdout).slice(4)).toEqual([
      `✗ hub: api: ${hub.apiUrl}: the hub rejected the API token (HTTP 403) — fix: use the api_token the hub registers for this service (z2jh hub.services.<name>.apiToken, c.JupyterHub.services), in JUPYTERHUB_API_TOKEN or hub.apiTokenFile`,
      '? hub: scopes: cannot check (the hub rejected the API token) — fix: fix the API token first',
      '✗ hub: token strength: the API token has about 126 bits of entropy; the service refuses to start under 128 — fix: give the service a random API token (openssl rand -hex 32; z2jh generates one when hub.services.<name>.apiToken is unset) and register the same at the hub',
      `✓ hub: ticket keys: ${storeDir}/ticket-keys: not created yet; the service writes a random key there at its first start`,
      `✓ hub: public url: ${hub.publicUrl}: JupyterHub ${version}`,
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).not.toContain('not-the-service-token');
  });

  test('a role without admin:users while hub.createUsers is on: the scopes check names it; without it and with shared servers allowed, servers is enough', async () => {
    const token = hub.extraTokens['servers-only'] as string;
    const r = await doctor(configFile(), { JUPYTERHUB_API_TOKEN: token });
    expect(lines(r.stdout).slice(4, 6)).toEqual([
      `✓ hub: api: ${hub.apiUrl}: JupyterHub ${version}, the token is service servers-only's`,
      `✗ hub: scopes: the token lacks admin:users (hub.createUsers is on), read:shares (hub.allowSharedServers is off: the service checks that no server of the user is shared) — fix: add admin:users, read:shares to the service's role (z2jh hub.loadRoles, or c.JupyterHub.load_roles; docs/jupyterhub.md, "Role: the minimal scopes")`,
    ]);
    expect(r.code).toBe(1);
    const without = await doctor(configFile({ hub: { createUsers: false, allowSharedServers: true } }), { JUPYTERHUB_API_TOKEN: token });
    expect(lines(without.stdout)[5]).toBe('✓ hub: scopes: servers');
    expect(without.code).toBe(0);
  });

  test('the hub API unreachable, and a wrong public URL', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const r = await doctor(configFile({ hub: { apiUrl: `${closed}/hub/api`, retries: 0 }, redirect: { hubPublicUrl: closed } }));
    expect(lines(r.stdout).slice(4)).toEqual([
      `✗ hub: api: ${closed}/hub/api: no answer (ECONNREFUSED) — fix: set hub.apiUrl (or JUPYTERHUB_API_URL) to the hub API as the service reaches it, e.g. http://hub:8081/hub/api, and let the service reach it`,
      '? hub: scopes: cannot check (the hub API did not answer) — fix: fix the hub API first',
      '✓ hub: token strength: about 192 bits of entropy (at least 128 needed)',
      `✓ hub: ticket keys: ${storeDir}/ticket-keys: not created yet; the service writes a random key there at its first start`,
      `✗ hub: public url: ${closed}: no answer from here (ECONNREFUSED) — fix: set redirect.hubPublicUrl to the hub as browsers reach it (every handoff ends there)`,
    ]);
    expect(r.code).toBe(1);
    // The service's own port is not the hub: the public URL must be JupyterHub's.
    const notHub = await doctor(configFile({ redirect: { hubPublicUrl: jwksUrl.replace('/jwks.json', '') } }));
    expect(lines(notHub.stdout)[8]).toBe(
      `✗ hub: public url: ${jwksUrl.replace('/jwks.json', '')}/hub/api: HTTP 200, not JupyterHub's API — fix: set redirect.hubPublicUrl to the hub as browsers reach it (every handoff ends there)`,
    );
  });
});

describe('doctor on the ticket keys (issue 25, item 3)', () => {
  const keysFile = (name: string, text: string) => {
    const f = join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  const ticketLine = async (file: string) => lines((await doctor(configFile({ hub: { ticketKeyFile: file } }))).stdout).find((l) => l.includes('hub: ticket keys'));

  test('a rotated file: the sealing key, the previous ones still opening, the ended ones to drop; no key is printed', async () => {
    const [k1, k2, k3] = [newTicketKey(), newTicketKey(), newTicketKey()];
    const file = keysFile('rotated', `${k1}\n${k2} until=2999-01-01T00:00:00Z\n${k3} until=2001-01-01T00:00:00Z\n`);
    const r = await doctor(configFile({ hub: { ticketKeyFile: file } }));
    expect(lines(r.stdout)).toContain(`✓ hub: ticket keys: ${file}: a sealing key, 1 previous still opening tickets; 1 ended (drop them at the next rotation), each at least 128 bits`);
    for (const k of [k1, k2, k3]) expect(r.stdout).not.toContain(k);
    expect(r.code).toBe(0);
  });

  test('a guessable key, a missing file: each named with the fix, exit 1', async () => {
    const weak = keysFile('weak', 'changeme-changeme\n');
    expect(await ticketLine(weak)).toBe(
      `✗ hub: ticket keys: The ticket key on ${weak} line 1 has about 102 bits of entropy; at least 128 are needed: generate one with omnisci-handoff keygen --ticket-keys FILE. — fix: write them with omnisci-handoff keygen --ticket-keys ${weak} (on an existing file it rotates them, keeping open tickets valid)`,
    );
    const missing = join(dir, 'no-such-keys');
    expect(await ticketLine(missing)).toBe(
      `✗ hub: ticket keys: cannot read ${missing} (ENOENT) — fix: write them with omnisci-handoff keygen --ticket-keys ${missing} (on an existing file it rotates them, keeping open tickets valid)`,
    );
    expect((await doctor(configFile({ hub: { ticketKeyFile: weak } }))).stdout).not.toContain('changeme');
  });
});

describe('doctor on keys', () => {
  test('the JWKS down: the fetch and the algorithms fail, exit 1', async () => {
    const down = `http://127.0.0.1:${await freePort()}/jwks.json`;
    const r = await doctor(configFile({ token: { keys: { jwksUrl: down } } }));
    expect(lines(r.stdout).slice(1, 3)).toEqual([
      `✗ keys: jwks: ${down}: no answer (ECONNREFUSED) — fix: the issuer's JWKS must answer at token.keys.jwksUrl from where the service runs (check the URL, DNS, proxies and egress NetworkPolicy)`,
      '✗ keys: algorithms: no configured key verifies any of token.algorithms (ES256) — fix: configure the key the issuer signs with, and list its algorithm in token.algorithms',
    ]);
    expect(r.code).toBe(1);
  });

  test('key files and an HMAC secret: each source on its line, never a secret', async () => {
    const rsa = await makeKey('RS256', 'rsa-1');
    const good = join(dir, 'rsa.pem');
    writeFileSync(good, rsa.publicPem);
    const priv = join(dir, 'private.jwk');
    writeFileSync(priv, JSON.stringify({ ...rsa.publicJwk, d: 'c2VjcmV0' }));
    const missing = join(dir, 'missing.pem');
    const short = 'too-short-a-secret';
    const file = configFile({
      token: { algorithms: ['HS256', 'RS256', 'ES256'], keys: { jwksUrl, publicKeyFiles: [good, priv, missing], hmacSecretEnv: 'DOCTOR_HMAC' } },
    });
    const r = await doctor(file, { DOCTOR_HMAC: short });
    const thumbprint = /kid ([A-Za-z0-9_-]{43})/.exec(r.stdout)?.[1];
    expect(lines(r.stdout).slice(1, 6)).toEqual([
      `✗ keys: hmac secret: env DOCTOR_HMAC: ${short.length} bytes, at least 32 are needed — fix: use a longer secret (omnisci-handoff keygen --alg HS256 makes one) and share it with the issuer`,
      `✓ keys: public key file: ${good}: 1 key (kid ${thumbprint})`,
      `✗ keys: public key file: ${priv}: holds private or symmetric key material — fix: configure a readable file with the issuer's public key (PEM SPKI, JWK or JWKS) in token.keys.publicKeyFiles`,
      `✗ keys: public key file: ${missing}: cannot read it (ENOENT) — fix: configure a readable file with the issuer's public key (PEM SPKI, JWK or JWKS) in token.keys.publicKeyFiles`,
      `✓ keys: jwks: ${jwksUrl}: 1 key (kid immerse-1)`,
    ]);
    expect(lines(r.stdout)[6]).toBe(`✓ keys: algorithms: RS256 (kid ${thumbprint}), ES256 (kid immerse-1); no key for HS256`);
    expect(r.stdout).not.toContain(short);
    expect(r.code).toBe(1);
    const ok = await doctor(file, { DOCTOR_HMAC: HMAC_SECRET });
    expect(lines(ok.stdout)[1]).toBe(`✓ keys: hmac secret: env DOCTOR_HMAC: ${HMAC_SECRET.length} bytes`);
    expect(ok.stdout).not.toContain(HMAC_SECRET);
  });

  test('an invalid config: only the config line, exit 2', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, stringify({ token: { audience: 'a', keys: {} }, listen: { port: -1, colour: 'blue' } }));
    const r = await doctor(file);
    expect(lines(r.stdout)).toEqual([
      `✗ config: ${file}: listen.colour: is not a known setting; listen.port: must be >= 0 — fix: correct the listed settings (omnisci-handoff check-config --config FILE lists them too)`,
    ]);
    expect(r.code).toBe(2);
    expect((await runCli(['doctor'])).code).toBe(2);
  });
});
