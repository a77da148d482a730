#!/usr/bin/env node
/**
 * `npm run demo`: the whole stack on this machine, with real parts, on loopback only —
 *
 *   a stand-in for Immerse (scripts/demo/immerse.ts: logs in to HeavyDB, signs a handoff token) ──POST──▶
 *   JupyterHub 5's proxy ──▶ omnisci-handoff (a hub service: store.backend local, hub.enabled, login mode
 *   handoff) ──▶ the hub spawns the user's server with contrib/jupyterhub/omnisci_handoff_hook.py as
 *   pre_spawn_hook ──▶ JupyterLab 4 with omnisci-handoff-jupyter opens a notebook that connects to HeavyDB
 *   with the handed-over session and runs the handed-over query.
 *
 * HeavyDB is a stand-in that speaks HeavyDB's protocol with a few demo tables (scripts/demo/heavydb/),
 * or a real one (--heavydb). The hub logs the browser in with the shipped forced-login authenticator:
 * following the printed link is all it takes. Users are created on their first handoff; their servers
 * are local processes of this account.
 *
 * The first run installs what it needs (scripts/deps/jupyterhub.sh and jupyterlab4.sh, or
 * omnisci-extension.sh with --classic: Python venvs under .cache/, minutes) and builds the service;
 * later runs start in seconds. Ctrl-C stops everything it started — the service, the hub, its proxy,
 * the single-user servers and the HeavyDB stand-in — also when a step fails half-way; on Linux,
 * anything left over (even from a run that was killed) is found by a mark in its environment and stopped.
 *
 * Run by Node's type stripping (Node ≥ 22.18): `node scripts/demo.ts [options]`.
 *   --port N        the hub's public port (default: a free one)
 *   --user NAME     the hub user the demo hands a session to (default: demo)
 *   --query SQL     the query Immerse hands over (default: a few columns of flights_2008_10k)
 *   --heavydb URL   a real HeavyDB's HTTP port (e.g. http://127.0.0.1:6278/) instead of the stand-in; the
 *                   stand-in Immerse logs in there as HEAVYDB_USER (default admin) with HEAVYDB_PASSWORD
 *                   (default HyperInteractive) on HEAVYDB_DATABASE (default heavyai)
 *   --classic       single-user servers with the released jupyterlab-omnisci 3.0.0 (classic notebook 6,
 *                   JupyterLab 2; its frontend is not installable there, so the lab opens no notebook)
 *   --dir DIR       state: keys, the session store, logs (default: ./.data/demo; env OMNISCI_HANDOFF_DEMO_DIR)
 *   --no-install    install and build nothing; fail if something is missing (the test suite uses this)
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { hubConfig } from './demo/hub-config.ts';
import { heavyDbVersion } from './demo/heavydb-login.ts';
import { startImmerse } from './demo/immerse.ts';
import { built, installed, type Dependency } from './demo/install.ts';
import { alive, MARK, Processes } from './demo/processes.ts';
import { out, plan, step, StepFailed } from './demo/steps.ts';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const HUB_VENV = join(ROOT, '.cache/venv-hub');
const JLAB4_VENV = join(ROOT, '.cache/venv-jlab4');
const CLASSIC_VENV = join(ROOT, '.cache/venv-omnisci');
const CHP = join(ROOT, 'node_modules/configurable-http-proxy/bin/configurable-http-proxy');
const CLI = join(ROOT, 'dist/src/cli.js');
const SERVICE = 'omnisci-handoff';
const PREFIX = `/services/${SERVICE}/`;

function usage(): string {
  const doc = readFileSync(fileURLToPath(import.meta.url), 'utf8');
  return /\/\*\*([\s\S]*?)\*\//.exec(doc)?.[1]?.replace(/^ \* ?/gm, '').trim() ?? '';
}

function options() {
  try {
    return parseArgs({
      options: {
        port: { type: 'string', default: process.env.DEMO_PORT ?? '0' },
        user: { type: 'string', default: 'demo' },
        query: { type: 'string' },
        heavydb: { type: 'string' },
        classic: { type: 'boolean', default: false },
        dir: { type: 'string', default: process.env.OMNISCI_HANDOFF_DEMO_DIR ?? join(ROOT, '.data/demo') },
        'no-install': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n\n${usage()}\n`);
    process.exit(2);
  }
}
const opts = options();
if (opts.help) {
  process.stdout.write(`${usage()}\n`);
  process.exit(0);
}
const DIR = resolve(opts.dir);
const USER = opts.user;
const classic = opts.classic;
const noInstall = opts['no-install'];
const processes = new Processes(DIR, ROOT);

// ---------------------------------------------------------------- signals

let interrupted = false;
function onSignal(signal: NodeJS.Signals): void {
  if (interrupted) {
    // A second Ctrl-C: no more waiting.
    processes.killNow();
    process.exit(130);
  }
  interrupted = true;
  out(`\n${signal === 'SIGINT' ? 'Ctrl-C' : signal}: stopping the service, the hub, its proxy, the single-user servers and HeavyDB's stand-in …\n`);
  void processes.stopAll().then(() => {
    out('stopped.\n');
    process.exit(0);
  });
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
process.on('SIGHUP', onSignal);

// ---------------------------------------------------------------- helpers

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => res(port));
    });
  });
}

/** Whether something listens on 127.0.0.1:port already. */
function takenPort(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(true));
    s.listen(port, '127.0.0.1', () => s.close(() => res(false)));
  });
}

/** --heavydb: an http(s) URL; what the notebook's connection env vars say for it. */
function heavyDbTarget(url: string): { url: string; protocol: 'http' | 'https'; host: string; port: number } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new StepFailed(`--heavydb ${url} is not a URL: give HeavyDB's HTTP port, e.g. http://127.0.0.1:6278/`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new StepFailed(`--heavydb ${url}: HeavyDB's HTTP port speaks http or https`);
  const protocol = u.protocol === 'https:' ? 'https' : 'http';
  return { url: u.href, protocol, host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || (protocol === 'https' ? 443 : 80)) };
}

const writeJson = (file: string, value: unknown) => {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
};

/**
 * JupyterLab 4 servers: the lab runs the notebook it opens for a handoff (omnisci-handoff-jupyter's
 * OmniSciHandoff.run_on_open, in a Jupyter config on their config path, as an admin sets it); no
 * network beyond loopback (no news feed, whose question the settings answer, no update check).
 */
function jupyterLab4Servers(dir: string) {
  writeJson(join(dir, 'jupyter_server_config.json'), { OmniSciHandoff: { run_on_open: true } });
  writeJson(join(dir, 'lab-settings/overrides.json'), { '@jupyterlab/apputils-extension:notification': { fetchNews: 'false' } });
  return {
    venv: JLAB4_VENV,
    classic: false,
    env: { JUPYTER_CONFIG_PATH: dir },
    args: [`--LabApp.app_settings_dir=${join(dir, 'lab-settings')}`, '--LabApp.news_url=None', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate'],
  };
}

// ---------------------------------------------------------------- steps

async function main(): Promise<void> {
  const server = classic ? 'jupyterlab-omnisci 3.0.0 servers (--classic)' : 'JupyterLab 4 servers with omnisci-handoff-jupyter';
  out(`omnisci-handoff demo: a real JupyterHub 5, this service as a hub service, ${server},\n`);
  out(`${opts.heavydb ? `the HeavyDB at ${opts.heavydb}` : "a HeavyDB stand-in with demo tables"} and a stand-in for Immerse.\n`);
  const shown = DIR.startsWith(`${process.cwd()}/`) ? relative(process.cwd(), DIR) : DIR;
  out(`Everything listens on 127.0.0.1; state and logs are in ${shown}/. The hub logs browsers in with the\n`);
  out(`login tokens omnisci-handoff issues (the shipped authenticator): no password anywhere.\n\n`);
  mkdirSync(DIR, { recursive: true, mode: 0o700 });
  chmodSync(DIR, 0o700);
  const leftovers = await processes.killMarked();
  if (leftovers) out(`(stopped ${leftovers} process${leftovers === 1 ? '' : 'es'} left over by an earlier demo run)\n`);
  const askedPort = Number(opts.port);
  if (!Number.isInteger(askedPort) || askedPort < 0 || askedPort > 65535) throw new StepFailed(`--port ${opts.port} is not a port`);
  if (askedPort && (await takenPort(askedPort)))
    throw new StepFailed(`port ${askedPort} on 127.0.0.1 is in use: choose another with --port, or leave --port out for a free one`);
  const external = opts.heavydb === undefined ? undefined : heavyDbTarget(opts.heavydb);

  const hubDeps: Dependency = {
    name: 'jupyterhub',
    script: 'scripts/deps/jupyterhub.sh',
    stamp: '.cache/venv-hub/.installed',
    what: 'JupyterHub 5 and configurable-http-proxy (.cache/venv-hub)',
    ready: () => existsSync(join(HUB_VENV, 'bin/jupyterhub')) && existsSync(CHP),
  };
  // JupyterLab 4's venv also runs the HeavyDB stand-in (pyheavydb's Thrift code).
  const jlab4Deps: Dependency = {
    name: 'jupyterlab4',
    script: 'scripts/deps/jupyterlab4.sh',
    stamp: '.cache/venv-jlab4/.installed',
    // The wheel is built from jupyter/: the script rebuilds it when their hash changed.
    sources: ['jupyter'],
    what: `JupyterLab 4, omnisci-handoff-jupyter, pyheavydb (.cache/venv-jlab4${classic ? ': the HeavyDB stand-in' : ''})`,
    ready: () => existsSync(join(JLAB4_VENV, 'bin/jupyterhub-singleuser')),
  };
  const classicDeps: Dependency = {
    name: 'omnisci-extension',
    script: 'scripts/deps/omnisci-extension.sh',
    stamp: '.cache/venv-omnisci/.installed',
    sources: ['scripts/deps/omnisci-extension.requirements.txt'],
    what: 'jupyterlab-omnisci 3.0.0 on notebook 6 (.cache/venv-omnisci)',
    ready: () => existsSync(join(CLASSIC_VENV, 'bin/jupyterhub-singleuser')),
  };
  const deps = [hubDeps, ...(classic ? [classicDeps] : []), ...(!classic || !external ? [jlab4Deps] : [])];
  // The deps, the build, HeavyDB, the hub, Immerse, the service.
  plan(deps.length + 5);
  for (const d of deps) await installed(processes, ROOT, d, noInstall);
  await built(processes, ROOT, CLI, noInstall);

  // The built service's own modules: the dev key (src/dev.ts) signs the stand-in Immerse's tokens.
  const dist = (m: string) => import(pathToFileURL(join(ROOT, 'dist/src', m)).href);
  const { devSetup, DEMO_QUERY } = (await dist('dev.js')) as typeof import('../src/dev.ts');
  const { stringify } = (await import('yaml')) as typeof import('yaml');
  const query = opts.query ?? DEMO_QUERY;

  const [publicPort, hubPort, proxyApiPort, servicePort, internalPort] = [
    askedPort || (await freePort()),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const hubUrl = `http://127.0.0.1:${publicPort}`;
  const storeDir = join(DIR, 'store');
  const apiToken = randomBytes(32).toString('hex');
  const dev = await devSetup({ OMNISCI_HANDOFF_DATA: DIR, PORT: '0' });

  const heavydb = await step(external ? `HeavyDB at ${external.url}` : 'HeavyDB stand-in with demo tables', async (progress) => {
    if (external) {
      progress.note(`answers (version ${await heavyDbVersion(external.url).catch((e: Error) => Promise.reject(new StepFailed(e.message)))})`);
      return external;
    }
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/`;
    const c = processes.start('heavydb', join(JLAB4_VENV, 'bin/python'), [join(ROOT, 'scripts/demo/heavydb/demo.py'), '--port', String(port)], {
      PATH: process.env.PATH,
      PYTHONWARNINGS: 'ignore',
      PYTHONDONTWRITEBYTECODE: '1',
    });
    await processes.waitUntil('it answered', c, async () => Boolean(await heavyDbVersion(url)), 60_000);
    progress.note(`on ${url}`);
    return { url, protocol: 'http' as const, host: '127.0.0.1', port };
  });

  const hub = await step(`JupyterHub on ${hubUrl}`, async () => {
    // The hub's state is new on every run; the sessions (store/) and the key (dev/) stay.
    const hubDir = join(DIR, 'hub');
    rmSync(hubDir, { recursive: true, force: true });
    mkdirSync(join(DIR, 'home'), { recursive: true, mode: 0o700 });
    mkdirSync(hubDir, { mode: 0o700 });
    const servers = classic ? { venv: CLASSIC_VENV, classic, env: {}, args: [] } : jupyterLab4Servers(join(DIR, 'jupyter'));
    writeFileSync(
      join(hubDir, 'jupyterhub_config.py'),
      hubConfig({
        root: ROOT,
        hubDir,
        homes: join(DIR, 'home'),
        publicPort,
        hubPort,
        proxyApiPort,
        node: process.execPath,
        chp: CHP,
        proxyAuthToken: randomBytes(24).toString('hex'),
        storeDir,
        service: { name: SERVICE, port: servicePort, apiToken },
        // The hub passes its own environment on to no server: the mark goes in theirs.
        server: { ...servers, env: { ...servers.env, [MARK]: DIR } },
        asRoot: process.getuid?.() === 0,
      }),
    );
    const c = processes.start(
      'jupyterhub',
      join(HUB_VENV, 'bin/jupyterhub'),
      ['-f', join(hubDir, 'jupyterhub_config.py')],
      { ...process.env, PATH: `${join(HUB_VENV, 'bin')}:${process.env.PATH ?? ''}`, PYTHONDONTWRITEBYTECODE: '1' },
      hubDir,
    );
    await processes.waitUntil('the hub answered', c, async () => (await fetch(`${hubUrl}/hub/api/`, { signal: AbortSignal.timeout(5000) })).ok, 120_000);
    return c;
  });

  const serviceUrl = `${hubUrl}${PREFIX}`;
  const login = {
    url: heavydb.url,
    user: process.env.HEAVYDB_USER ?? 'admin',
    password: process.env.HEAVYDB_PASSWORD ?? 'HyperInteractive',
    database: process.env.HEAVYDB_DATABASE ?? 'heavyai',
  };
  const immerse = await step('a stand-in for Immerse', async (progress) => {
    const i = await startImmerse({
      heavydb: login,
      handoffUrl: `${serviceUrl}handoff`,
      user: USER,
      query,
      mint: (session, q) => dev.mintDemo(USER, { session, query: q }),
    });
    processes.onStop(() => {
      i.server.close();
      i.server.closeAllConnections();
    });
    progress.note(`on ${i.origin}`);
    return i;
  });

  await step(`omnisci-handoff at ${serviceUrl}`, async () => {
    const config = {
      listen: { host: '127.0.0.1', port: servicePort, internal: { host: '127.0.0.1', port: internalPort } },
      // Immerse's origin may post handoffs, as an admin configures it for their Immerse.
      token: { ...dev.config.token, allowedOrigins: [immerse.origin] },
      omnisci: { protocol: heavydb.protocol, host: heavydb.host, port: heavydb.port },
      redirect: { hubPublicUrl: hubUrl },
      store: { backend: 'local', local: { dir: storeDir } },
      hub: { enabled: true, createUsers: true, loginMode: 'handoff' },
    };
    const file = join(DIR, 'config.yaml');
    writeFileSync(file, `# Written by scripts/demo.ts on every run. The hub API URL, token and base path come from the environment.\n${stringify(config)}`);
    const c = processes.start('omnisci-handoff', process.execPath, [CLI, 'serve', '--config', file], {
      PATH: process.env.PATH,
      JUPYTERHUB_API_TOKEN: apiToken,
      JUPYTERHUB_API_URL: `http://127.0.0.1:${hubPort}/hub/api`,
      JUPYTERHUB_SERVICE_PREFIX: PREFIX,
      JUPYTERHUB_SERVICE_NAME: SERVICE,
    });
    await processes.waitUntil('it was ready', c, async () => (await fetch(`http://127.0.0.1:${internalPort}/readyz`, { signal: AbortSignal.timeout(5000) })).ok, 60_000);
    // …and the hub proxies to it.
    await processes.waitUntil('the hub proxied to it', hub, async () => (await fetch(`${serviceUrl}healthz`, { signal: AbortSignal.timeout(5000) })).ok, 30_000);
  });
  if (!alive(hub)) throw new StepFailed('the hub exited', processes.logFile('jupyterhub'));

  const ends = classic
    ? `lands on ${hubUrl}/user/${USER}/lab?omnisci&reset (JupyterLab 2, which opens no notebook: jupyterlab-omnisci's
frontend is not installable there). What its server extension serves from the handed-over session:
${hubUrl}/user/${USER}/omnisci/session`
    : `lands on ${hubUrl}/user/${USER}/lab?omnisci&reset, where a notebook opens, connects to HeavyDB with the
handed-over session and runs the query, showing its rows. The session as the server has it:
${hubUrl}/user/${USER}/omnisci/session`;
  out(`
Open this link in a browser (it plays Immerse: every visit logs in to HeavyDB and hands that session and
the query over to user "${USER}"; the link's key keeps other local accounts out — do not share it):

  ${immerse.link}

It shows the service's progress page while the hub starts ${USER}'s server, logs the browser in to the hub,
and ${ends}
HeavyDB: ${heavydb.url}${external ? '' : ' (the stand-in: tables flights_2008_10k, nyc_trees_2015_683k)'}
Query: ${query}
Logs: ${join(DIR, 'logs')}/

Ctrl-C stops everything.
`);
}

main().catch(async (e: unknown) => {
  if (interrupted) return;
  const err = e as Error;
  out(`\ndemo failed: ${err.message}\n`);
  if (e instanceof StepFailed && e.logFile && existsSync(e.logFile)) {
    const tail = readFileSync(e.logFile, 'utf8').trimEnd().split('\n').slice(-25).join('\n');
    out(`--- last lines of ${relative(process.cwd(), e.logFile)} ---\n${tail}\n---\n`);
  } else if (!(e instanceof StepFailed)) {
    out(`${err.stack ?? ''}\n`);
  }
  interrupted = true;
  await processes.stopAll();
  process.exit(1);
});
