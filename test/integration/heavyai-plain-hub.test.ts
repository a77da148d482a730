/**
 * Header mode on a plain JupyterHub, set up exactly as docs/non-kubernetes.md says ("Header mode
 * (stock HEAVY.AI) on a plain JupyterHub"): its jupyterhub_config.py and its service config are taken
 * from the page, and only addresses and paths are replaced (each port with a free one, the web
 * server's URL with the stand-in's, HeavyDB's with the stand-in's; the package, store, home and
 * config paths with this checkout and temporary directories). The commands the files name are put on
 * the hub's PATH as an installation provides them: `omnisci-handoff` (this checkout's CLI, as
 * `npm install -g` would), `configurable-http-proxy`, and `jupyterhub-singleuser` — the released
 * jupyterlab-omnisci's (scripts/deps/omnisci-extension.sh), which starts a user's server only once
 * the test releases it: a cold pod, as slow as the test needs.
 *
 * Peers: a real JupyterHub 5 (its own SimpleLocalProcessSpawner, the shipped authenticator and the
 * spawner hook, the service as a hub-managed service), the HeavyDB stand-in and the HEAVY.AI web
 * server stand-in, and Chromium. The hub runs with its default slow_spawn_timeout (10 s) and the
 * authenticator with its default request_timeout (10 s); a first login whose server outlasts both
 * must land on the lab.
 */
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { randomSessionId } from '../../src/handoff/mint.js';
import { userDir } from '../../src/store/local.js';
import { launchChromium } from '../support/browser.js';
import { tempDir } from '../support/core.js';
import { blockUnder, substitute } from '../support/docs.js';
import { startHeavyAiWebServer, SESSION_COOKIE, type HeavyAiWebServer } from '../support/heavyai-webserver.js';
import { startHeavyDb, type HeavyDbStandIn } from '../../scripts/demo/heavydb/standin.js';
import { NoJsBrowser } from '../support/hub-service.js';
import { freePort, launchHub, waitFor, type LaunchedHub } from '../support/jupyterhub.js';
import { OMNISCI_VENV, omnisciInstalled } from '../support/notebook.js';
import { CLI } from '../support/process.js';
import { ROOT } from '../support/root.js';
import { snapshotTree } from '../support/snapshot.js';

jest.setTimeout(240_000);
const SECTION = 'Header mode (stock HEAVY.AI) on a plain JupyterHub';
const ROLE = 'omnisci_jupyter';
const work = tempDir('oh-plainhub-');
const store = join(work, 'lib/omnisci-handoff');
const gates = join(work, 'gates');
const sessions: string[] = [];
let heavydb: HeavyDbStandIn;
let web: HeavyAiWebServer;
let hub: LaunchedHub;
let service: string;

/** A command on the hub's PATH. */
function command(bin: string, name: string, script: string): void {
  writeFileSync(join(bin, name), `#!/bin/sh\n${script}\n`);
  chmodSync(join(bin, name), 0o755);
}

async function session(user: string): Promise<string> {
  const id = randomSessionId();
  sessions.push(id);
  await heavydb.addSession(id, { user, roles: [ROLE] });
  return id;
}

beforeAll(async () => {
  if (!omnisciInstalled()) throw new Error('jupyterlab-omnisci is not installed: run scripts/deps/omnisci-extension.sh');
  heavydb = await startHeavyDb();
  const [proxy, hubPort, proxyApi, servicePort, internal] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  web = await startHeavyAiWebServer(`http://127.0.0.1:${proxy}`);
  service = `${web.jupyterUrl}/services/omnisci-handoff/`;

  const bin = join(work, 'bin');
  for (const d of [bin, gates, join(work, 'etc'), join(work, 'hub')]) mkdirSync(d, { recursive: true });
  command(bin, 'omnisci-handoff', `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"`);
  command(bin, 'configurable-http-proxy', `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(join(ROOT, 'node_modules/configurable-http-proxy/bin/configurable-http-proxy'))} "$@"`);
  // The user's server starts once the test releases it; as root (this machine) the notebook needs --allow-root.
  command(
    bin,
    'jupyterhub-singleuser',
    `while [ ! -e ${JSON.stringify(gates)}/"$JUPYTERHUB_USER" ]; do sleep 0.2; done\nexec ${JSON.stringify(join(OMNISCI_VENV, 'bin/jupyterhub-singleuser'))} --allow-root "$@"`,
  );

  // The token file, made as the page says (openssl rand -hex 32, mode 600).
  const apiToken = join(work, 'etc/api-token');
  writeFileSync(apiToken, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  const configYaml = join(work, 'etc/config.yaml');
  writeFileSync(
    configYaml,
    substitute(blockUnder('docs/non-kubernetes.md', SECTION, 'yaml'), {
      'port: 8470': `port: ${servicePort}`,
      'port: 8471': `port: ${internal}`,
      'dir: /var/lib/omnisci-handoff': `dir: ${store}`,
      'https://heavyai.example.com': web.url,
      '"http://127.0.0.1:6278/"': JSON.stringify(heavydb.url),
    }),
  );
  writeFileSync(
    join(work, 'hub/jupyterhub_config.py'),
    substitute(blockUnder('docs/non-kubernetes.md', SECTION, 'python'), {
      '"/usr/local/lib/node_modules/omnisci-handoff"': JSON.stringify(ROOT),
      'c.JupyterHub.port = 8000': `c.JupyterHub.port = ${proxy}`,
      'c.JupyterHub.hub_port = 8081': `c.JupyterHub.hub_port = ${hubPort}`,
      '"http://127.0.0.1:8001"': JSON.stringify(`http://127.0.0.1:${proxyApi}`),
      '"/var/lib/omnisci-handoff"': JSON.stringify(store),
      '"/srv/jupyterhub/home/{username}"': JSON.stringify(join(work, 'home/{username}')),
      '"http://127.0.0.1:8470"': JSON.stringify(`http://127.0.0.1:${servicePort}`),
      '"/etc/omnisci-handoff/config.yaml"': JSON.stringify(configYaml),
      '"/etc/omnisci-handoff/api-token"': JSON.stringify(apiToken),
    }),
  );
  hub = await launchHub({ dir: join(work, 'hub'), apiUrl: `http://127.0.0.1:${proxy}/jupyter/hub/api`, bin, env: { PYTHONDONTWRITEBYTECODE: '1' } });
  // The hub started the service; up once the hub's proxy reaches it.
  await waitFor(async () => ((await fetch(`${service}healthz`).catch(() => undefined))?.ok ? true : undefined));
});

afterAll(async () => {
  const log = hub?.log() ?? '';
  await hub?.stop();
  await web?.close();
  await heavydb?.stop();
  // The hub's output carries the service's and the servers' logs: no session id in any of them.
  for (const s of sessions) expect(log).not.toContain(s);
  rmSync(work, { recursive: true, force: true });
});

describe('as the docs say', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  test("a first login whose server outlasts the hub's slow_spawn_timeout and the authenticator's request_timeout lands on the lab", async () => {
    const id = await session('ada');
    const sql = 'SELECT carrier, COUNT(*) FROM flights GROUP BY carrier';
    const context = await browser.newContext();
    await context.addCookies([{ name: SESSION_COOKIE, value: id, url: web.url }]);
    const page = await context.newPage();
    await page.goto(`${web.url}/?sql=${encodeURIComponent(sql)}`);
    await page.click('#jupyter');
    // The authenticator got its answer and the browser its progress page: the server cannot be up yet.
    await page.waitForURL(`${service}progress/**`);
    expect(await page.textContent('h1')).toBe('Starting your notebook server');
    expect(existsSync(join(userDir(store, 'ada'), 'state.json'))).toBe(true);
    // Held until the hub gave up waiting for the spawn (slow_spawn_timeout, 10 s after the start
    // request, which came after the authenticator's request began: its 10 s have passed too). The
    // process runs (the gate is in it), so the hub says the server is slow to become responsive.
    await waitFor(async () => {
      const log = hub.log();
      if (/Uncaught exception|Spawn failed|never showed up/.test(log)) throw new Error(`the spawn failed:\n${log.slice(-4000)}`);
      return /User ada is slow to (start|become responsive)/.test(log) ? true : undefined;
    }, 1200);
    writeFileSync(join(gates, 'ada'), '');
    await page.waitForURL(/\/jupyter\/user\/ada\/lab/, { timeout: 120_000 });
    expect(page.url()).toBe(`${web.jupyterUrl}/user/ada/lab?omnisci&reset`);
    const answer = await page.request.get(`${web.jupyterUrl}/user/ada/omnisci/session`);
    expect(answer.status()).toBe(200);
    expect(await answer.json()).toMatchObject({ session: id, query: sql });
    expect(hub.log()).not.toMatch(/session login failed|refused the request/);
    await context.close();
  });

  test('the next login of that user goes straight to the running lab', async () => {
    const b = new NoJsBrowser();
    b.cookies.set(SESSION_COOKIE, await session('ada'));
    const end = await b.follow(await b.request(web.buttonUrl(), { headers: { accept: 'text/html' } }), web.buttonUrl());
    // The server kept running: the lab waits for this session, whose fingerprint the session file holds.
    const { fingerprint } = JSON.parse(readFileSync(join(userDir(store, 'ada'), 'session'), 'utf8')) as { fingerprint: string };
    expect(end.url).toBe(`${web.jupyterUrl}/user/ada/lab?omnisci&reset&omnisci-handoff=${fingerprint}`);
  });

  test('a forged session: the hub shows the code, the store is as it was', async () => {
    const before = snapshotTree(store);
    const b = new NoJsBrowser();
    b.cookies.set(SESSION_COOKIE, randomSessionId());
    const res = await b.request(web.buttonUrl(), { headers: { accept: 'text/html' } });
    expect(res.status).toBe(401);
    expect(await res.text()).toContain('(code heavydb_session_invalid)');
    expect(snapshotTree(store)).toEqual(before);
  });

  test('no token issuer configured: the token entries answer tokens_disabled and store nothing', async () => {
    const before = snapshotTree(store);
    const post = await fetch(`${service}handoff`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }, body: 'token=x.y.z' });
    expect(post.status).toBe(404);
    expect(((await post.json()) as { error: string }).error).toBe('tokens_disabled');
    expect((await fetch(`${service}handoff`, { headers: { accept: 'application/json' } })).status).toBe(404);
    expect(snapshotTree(store)).toEqual(before);
    expect(readFileSync(join(work, 'etc/config.yaml'), 'utf8')).not.toMatch(/^token:/m);
  });
});
