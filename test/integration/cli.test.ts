/** The CLI as an admin and an issuer use it: keygen → config → check-config → serve → mint → handoff; and local mode. */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { parse, stringify } from 'yaml';
import { parseTicketKeys } from '../../src/hub/ticket-keys.js';
import { runCli, serveCli } from '../support/process.js';
import { postToken, randomSessionId, tempDir } from '../support/core.js';


test('keygen, check-config, serve, mint, handoff, SIGTERM', async () => {
  const dir = tempDir('oh-cli-');
  const keys = join(dir, 'keys');
  const kg = await runCli(['keygen', '--alg', 'ES256', '--out', keys, '--kid', 'immerse-1']);
  expect(kg.code).toBe(0);
  expect(statSync(join(keys, 'signing-key.jwk')).mode & 0o777).toBe(0o600);
  expect(JSON.parse(readFileSync(join(keys, 'jwks.json'), 'utf8')).keys[0]).toMatchObject({ kid: 'immerse-1', alg: 'ES256', kty: 'EC' });
  expect(readFileSync(join(keys, 'jwks.json'), 'utf8')).not.toContain('"d"');

  const configFile = join(dir, 'config.yaml');
  writeFileSync(
    configFile,
    stringify({
      listen: { port: 0, internal: { port: 0 } },
      token: { issuer: 'https://immerse.test', audience: 'omnisci-handoff', type: 'omnisci-handoff+jwt', algorithms: ['ES256'], keys: { publicKeyFiles: [join(keys, 'jwks.json')] } },
      omnisci: { host: 'omnisci.test', port: 6278, protocol: 'http' },
      redirect: { hubPublicUrl: 'https://hub.test' },
      store: { local: { dir: join(dir, 'data') } },
    }),
  );
  const check = await runCli(['check-config', '--config', configFile]);
  expect(check.code).toBe(0);
  expect(check.stdout).toContain(': ok');

  const served = await serveCli(['--config', configFile]);
  try {
    const session = randomSessionId();
    const minted = await runCli(['mint', '--key', join(keys, 'signing-key.jwk'), '--config', configFile, '--sub', 'nina', '--session', session, '--link', served.url]);
    expect(minted.code).toBe(0);
    const link = minted.stdout.trim();
    expect(link.startsWith(`${served.url}handoff#token=`)).toBe(true);
    const res = await postToken(served.url, link.split('#token=')[1] as string);
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('https://hub.test/user/nina/lab?omnisci&reset');
    expect(JSON.parse(readFileSync(join(dir, 'data', 'users', 'nina', 'session'), 'utf8')).session).toBe(session);
    expect(served.output()).not.toContain(session);
  } finally {
    expect(await served.stop('SIGTERM')).toBe(0);
  }
  expect(served.output()).toContain('"msg":"stopped"');
});

test('mint without a config sets the typ a service with defaults requires', async () => {
  const keys = join(tempDir('oh-cli-mint-'), 'keys');
  expect((await runCli(['keygen', '--alg', 'ES256', '--out', keys])).code).toBe(0);
  const args = ['mint', '--key', join(keys, 'signing-key.jwk'), '--issuer', 'i', '--audience', 'a', '--sub', 'nina'];
  const typOf = async (extra: string[]) => decodeProtectedHeader((await runCli([...args, ...extra])).stdout.trim()).typ;
  expect(await typOf(['--session', randomSessionId()])).toBe('omnisci-handoff+jwt');
  expect(await typOf(['--revoke'])).toBe('omnisci-revoke+jwt');
  expect(await typOf(['--session', randomSessionId(), '--typ', 'JWT'])).toBe('JWT');
  // --server: the named server to open (hub.namedServers), as the claim `server`.
  expect(decodeJwt((await runCli([...args, '--session', randomSessionId(), '--server', 'analysis'])).stdout.trim()).server).toBe('analysis');
});

test('check-config lists every problem and exits 2', async () => {
  const dir = tempDir('oh-cli-');
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, stringify({ listen: { port: -1 }, token: { algorithms: ['none'] }, typo: true }));
  const r = await runCli(['check-config', '--config', file]);
  expect(r.code).toBe(2);
  for (const path of ['listen.port', 'token.algorithms.0', 'typo']) expect(r.stderr).toContain(`  ${path}: `);
  const missing = await runCli(['check-config', '--config', join(dir, 'nope.yaml')]);
  expect(missing.code).toBe(2);
  expect(missing.stderr).toContain('cannot read');
  expect((await runCli(['frobnicate'])).code).toBe(2);
});

test('local mode: npm start prints a demo link that stores a session and lands on the service\'s own page', async () => {
  const dir = tempDir('oh-local-');
  const served = await serveCli([], { PORT: '0', OMNISCI_HANDOFF_DATA: join(dir, '.data') });
  try {
    const link = (await served.waitFor(/(http:\/\/\S+\/handoff#token=\S+)/))[1];
    const demo = (await served.waitFor(/(http:\/\/\S+\/dev\/demo)/))[1];
    // The one-time link: what a browser posts from the fragment page.
    const res = await postToken(served.url, (link as string).split('#token=')[1] as string);
    expect(res.status).toBe(303);
    // No hub configured: the handoff ends on the service's own page (test/integration/local-landing.test.ts).
    expect(res.headers.get('location')).toMatch(/^\/local\/[A-Za-z0-9_-]{22}$/);
    // The demo page mints a fresh token on every visit and auto-posts it.
    const page = await (await fetch(demo as string)).text();
    const token = /name="token" value="([^"]+)"/.exec(page)?.[1] as string;
    expect((await postToken(served.url, token)).status).toBe(303);
    const stored = JSON.parse(readFileSync(join(dir, '.data', 'users', 'demo', 'session'), 'utf8')) as { session: string };
    expect(stored.session).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(statSync(join(dir, '.data', 'dev', 'signing-key.jwk')).mode & 0o777).toBe(0o600);
  } finally {
    await served.stop();
  }
});

test('z2jh-values prints the hub service, the least role and, in handoff login mode, the authenticator', async () => {
  const dir = tempDir('oh-cli-');
  const file = join(dir, 'config.yaml');
  writeFileSync(
    file,
    stringify({
      token: { issuer: 'i', audience: 'a', algorithms: ['ES256'], keys: { jwksUrl: 'https://immerse.test/jwks.json' } },
      hub: { enabled: true, apiUrl: 'http://hub:8081/hub/api', loginMode: 'handoff' },
    }),
  );
  const r = await runCli(['z2jh-values', '--config', file, '--service-url', 'http://omnisci-handoff:8470'], { JUPYTERHUB_API_TOKEN: 't' });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const values = parse(r.stdout) as { hub: { services: Record<string, unknown>; loadRoles: Record<string, { scopes: string[] }>; extraFiles?: unknown } };
  expect(values.hub.services['omnisci-handoff']).toEqual({ url: 'http://omnisci-handoff:8470', display: false, oauth_no_confirm: true });
  expect(values.hub.loadRoles['omnisci-handoff']?.scopes).toEqual(['servers', 'read:shares']);
  expect(r.stdout).toContain('OmnisciHandoffAuthenticator');
});

test("header mode only (no token section): check-config says so, and z2jh-values prints without the hub's environment", async () => {
  const dir = tempDir('oh-cli-');
  const file = join(dir, 'config.yaml');
  writeFileSync(
    file,
    stringify({ hub: { enabled: true, createUsers: true }, heavydb: { enabled: true, url: 'http://heavydb:6278/' }, omnisci: { protocol: 'binary', host: 'heavydb', port: 6274 } }),
  );
  const hubEnv = { JUPYTERHUB_API_URL: 'http://hub:8081/hub/api', JUPYTERHUB_API_TOKEN: 't' };
  const checked = await runCli(['check-config', '--config', file], hubEnv);
  expect([checked.code, checked.stderr]).toEqual([0, '']);
  expect(checked.stdout).toContain('no token handoffs (no key source), header mode');
  // Where the hub's variables are missing, check-config names them; z2jh-values does not need them.
  expect((await runCli(['check-config', '--config', file])).stderr).toMatch(/hub\.apiUrl: .*JUPYTERHUB_API_URL/);
  const r = await runCli(['z2jh-values', '--config', file]);
  expect([r.code, r.stderr]).toEqual([0, '']);
  const values = parse(r.stdout) as { hub: { loadRoles: Record<string, { scopes: string[] }>; extraConfig: Record<string, string> } };
  expect(values.hub.loadRoles['omnisci-handoff']?.scopes).toEqual(['servers', 'admin:users', 'read:shares']);
  expect(values.hub.extraConfig['omnisci-handoff']).toContain('c.OmnisciHandoffAuthenticator.header_login = True');
});

test('keygen --ticket-keys writes one random key (0600), and on an existing file rotates it; no key is printed', async () => {
  const file = join(tempDir('oh-cli-tickets-'), 'ticket-keys');
  const first = await runCli(['keygen', '--ticket-keys', file]);
  expect(first.code).toBe(0);
  const [current] = parseTicketKeys(readFileSync(file, 'utf8'), file);
  expect(Object.keys(current!)).toEqual(['secret']);
  expect(statSync(file).mode & 0o777).toBe(0o600);
  const before = Date.now();
  const rotated = await runCli(['keygen', '--ticket-keys', file, '--keep-old', '600']);
  expect(rotated.code).toBe(0);
  expect(rotated.stdout).toMatch(/^rotated .*: restart the service \(every replica\) within 300 s; the new key seals from then on, the previous ones open tickets 600 s longer\.\n$/);
  const keys = parseTicketKeys(readFileSync(file, 'utf8'), file);
  expect(keys.map((k) => Object.keys(k))).toEqual([['secret', 'from'], ['secret', 'until']]);
  expect(keys[1]!.secret).toBe(current!.secret);
  expect(keys[0]!.from! - before).toBeGreaterThanOrEqual(299_000);
  expect(keys[1]!.until! - keys[0]!.from!).toBe(600_000);
  for (const k of keys) expect(`${first.stdout}${rotated.stdout}`).not.toContain(k.secret);
  expect((await runCli(['keygen', '--ticket-keys', file, '--keep-old', 'soon'])).code).toBe(2);
});
