#!/usr/bin/env node
/**
 * `npm run demo`: the whole stack on this machine, with real parts, on loopback only —
 *
 *   a stand-in Immerse page (here) ──POST token──▶ JupyterHub 5's proxy ──▶ omnisci-handoff (a hub service,
 *   store.backend local, hub.enabled, login mode handoff) ──▶ the hub spawns the user's server with
 *   contrib/jupyterhub/omnisci_handoff_hook.py as pre_spawn_hook ──▶ jupyterlab-omnisci 3.0.0 on the
 *   classic notebook 6 serves /user/<name>/omnisci/session from the stored session.
 *
 * The hub logs the browser in with the shipped forced-login authenticator
 * (helm/omnisci-handoff/files/authenticator.py): following the printed link is all it takes. Users are
 * created on their first handoff; their servers are local processes of this account.
 *
 * The first run installs what it needs (scripts/deps/jupyterhub.sh, scripts/deps/omnisci-extension.sh:
 * Python venvs under .cache/, minutes) and builds the service; later runs start in seconds. Ctrl-C stops
 * everything it started — the service, the hub, its proxy and the single-user servers — also when a step
 * fails half-way; on Linux, anything left over (even from a run that was killed) is found by a mark in
 * its environment and stopped.
 *
 * Run by Node's type stripping (Node ≥ 22.18): `node scripts/demo.ts [options]`.
 *   --port N       the hub's public port (default: a free one)
 *   --user NAME    the hub user the demo hands a session to (default: demo)
 *   --dir DIR      state: keys, the session store, logs (default: ./.data/demo; env OMNISCI_HANDOFF_DEMO_DIR)
 *   --no-install   install and build nothing; fail if something is missing (the test suite uses this)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const HUB_VENV = join(ROOT, '.cache/venv-hub');
const OMNISCI_VENV = join(ROOT, '.cache/venv-omnisci');
const CHP = join(ROOT, 'node_modules/configurable-http-proxy/bin/configurable-http-proxy');
const CLI = join(ROOT, 'dist/src/cli.js');
const SERVICE = 'omnisci-handoff';
const PREFIX = `/services/${SERVICE}/`;
/** Every process the demo starts carries this in its environment (the hub passes it on to the proxy and the servers). */
const MARK = 'OMNISCI_HANDOFF_DEMO_MARK';

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
const noInstall = opts['no-install'];

// ---------------------------------------------------------------- output

const tty = process.stdout.isTTY === true;
const out = (s: string) => process.stdout.write(s);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** A step that failed in a way the message explains; `logFile` holds the failing process's output. */
class StepFailed extends Error {
  readonly logFile: string | undefined;
  constructor(message: string, logFile?: string) {
    super(message);
    this.logFile = logFile;
  }
}

const STEPS = 6;
let stepNo = 0;
/**
 * `[n/6] title … note — ready (1.2 s)`. On a terminal the line counts the seconds of a long step;
 * elsewhere (a log, a test) a line every 30 s says it is still working.
 */
async function step<T>(title: string, work: (note: (s: string) => void) => Promise<T>): Promise<T> {
  const n = ++stepNo;
  const started = Date.now();
  let noted = '';
  const head = () => `[${n}/${STEPS}] ${title} …${noted ? ` ${noted}` : ''}`;
  out(head());
  const ticker = setInterval(() => {
    const s = Math.round((Date.now() - started) / 1000);
    if (tty) out(`\r\x1b[K${head()} ${s} s`);
    else if (s % 30 === 0) out(`\n    … still working (${s} s)`);
  }, 1000);
  try {
    const result = await work((s) => {
      noted = s;
      out(tty ? `\r\x1b[K${head()}` : ` ${s}`);
    });
    clearInterval(ticker);
    out(`${tty ? `\r\x1b[K${head()}` : ''} — ready (${seconds(Date.now() - started)})\n`);
    return result;
  } catch (e) {
    clearInterval(ticker);
    out(' — failed\n');
    throw e;
  }
}

// ---------------------------------------------------------------- processes

interface Child {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
}
const children: Child[] = [];
let immerse: Server | undefined;

function logFile(name: string): string {
  mkdirSync(join(DIR, 'logs'), { recursive: true });
  return join(DIR, 'logs', `${name}.log`);
}

/** Starts a process in its own process group (a terminal's Ctrl-C reaches the demo only, which stops it in order). */
function start(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd = ROOT): Child {
  const log = logFile(name);
  const fd = openSync(log, 'w');
  const child = spawn(cmd, args, { cwd, env: { ...env, [MARK]: DIR }, stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const c = { name, child, exited };
  children.push(c);
  return c;
}

const alive = (c: Child) => c.child.exitCode === null && c.child.signalCode === null;

async function stopChild(c: Child, graceMs: number): Promise<void> {
  if (!alive(c)) return;
  try {
    process.kill(-c.child.pid!, 'SIGTERM');
  } catch {
    /* gone */
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-c.child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, graceMs);
  await c.exited;
  clearTimeout(timer);
}

/** Processes (Linux: /proc) whose environment carries this demo's mark: what is left of a run. */
function marked(): number[] {
  if (!existsSync('/proc/self/environ')) return [];
  const needle = `${MARK}=${DIR}\0`;
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (`${readFileSync(`/proc/${entry}/environ`, 'latin1')}\0`.includes(needle)) pids.push(pid);
    } catch {
      /* gone, or not ours */
    }
  }
  return pids;
}

async function killMarked(): Promise<number> {
  const pids = marked();
  for (const p of pids) {
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  for (let i = 0; i < 50 && marked().length; i++) await new Promise((r) => setTimeout(r, 100));
  for (const p of marked()) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  return pids.length;
}

let stopping: Promise<void> | undefined;
/** The service first (it calls the hub), then the hub, which stops the single-user servers and its proxy; then anything left. */
function stopAll(): Promise<void> {
  return (stopping ??= (async () => {
    immerse?.close();
    immerse?.closeAllConnections();
    for (const c of [...children].reverse()) await stopChild(c, c.name === 'jupyterhub' ? 30_000 : 10_000);
    await killMarked();
  })());
}

let interrupted = false;
function onSignal(signal: NodeJS.Signals): void {
  if (interrupted) {
    // A second Ctrl-C: no more waiting.
    const kill = (pid: number) => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    };
    for (const c of children) if (alive(c)) kill(-c.child.pid!);
    for (const p of marked()) kill(p);
    process.exit(130);
  }
  interrupted = true;
  out(`\n${signal === 'SIGINT' ? 'Ctrl-C' : signal}: stopping the service, the hub, its proxy and the single-user servers …\n`);
  void stopAll().then(() => {
    out('stopped.\n');
    process.exit(0);
  });
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
process.on('SIGHUP', onSignal);

// ---------------------------------------------------------------- steps

function run(name: string, cmd: string, args: string[]): Promise<void> {
  const c = start(name, cmd, args, { ...process.env });
  return c.exited.then(() => {
    children.splice(children.indexOf(c), 1);
    const shown = [cmd, ...args].map((a) => (a.startsWith(`${ROOT}/`) ? relative(ROOT, a) : a)).join(' ');
    if (c.child.exitCode !== 0) throw new StepFailed(`${shown} failed (exit ${c.child.exitCode ?? c.child.signalCode})`, logFile(name));
  });
}

/** A dependency script needs running when its stamp is missing or older than the script or its pins. */
function stale(stamp: string, sources: string[]): boolean {
  if (!existsSync(stamp)) return true;
  const at = statSync(stamp).mtimeMs;
  return sources.some((s) => existsSync(s) && statSync(s).mtimeMs > at);
}

async function dependency(name: string, script: string, stamp: string, sources: string[], what: string, ready: () => boolean): Promise<void> {
  await step(what, async (note) => {
    if (noInstall) {
      if (!ready()) throw new StepFailed(`${relative(ROOT, stamp)} is missing: run \`bash ${script}\` (or the demo without --no-install)`);
      note('installed');
      return;
    }
    if (!stale(stamp, [join(ROOT, script), ...sources]) && ready()) {
      note('installed');
      return;
    }
    note(existsSync(stamp) ? 'updating' : 'first run: installing, this takes a few minutes');
    await run(`install-${name}`, 'bash', [join(ROOT, script)]);
  });
}

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

async function build(): Promise<void> {
  await step('build the service (dist/)', async (note) => {
    const sources = Math.max(newest(join(ROOT, 'src')), statSync(join(ROOT, 'tsconfig.json')).mtimeMs);
    if (existsSync(CLI) && (noInstall || statSync(CLI).mtimeMs >= sources)) {
      note('up to date');
      return;
    }
    if (noInstall) throw new StepFailed('dist/ is missing: run `npm run build`');
    note('compiling');
    await run('build', process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.json')]);
  });
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createNetServer();
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
    const s = createNetServer();
    s.once('error', () => res(true));
    s.listen(port, '127.0.0.1', () => s.close(() => res(false)));
  });
}

async function waitUntil(what: string, c: Child, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!alive(c)) throw new StepFailed(`${c.name} exited (${c.child.exitCode ?? c.child.signalCode}) before ${what}`, logFile(c.name));
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new StepFailed(`${what}: not within ${timeoutMs / 1000} s`, logFile(c.name));
    await new Promise((r) => setTimeout(r, 200));
  }
}

const py = (v: unknown) => JSON.stringify(v);

async function main(): Promise<void> {
  out(`omnisci-handoff demo: a real JupyterHub 5, this service as a hub service, jupyterlab-omnisci 3.0.0 servers.\n`);
  const shown = DIR.startsWith(`${process.cwd()}/`) ? relative(process.cwd(), DIR) : DIR;
  out(`Everything listens on 127.0.0.1; state and logs are in ${shown}/. The hub logs browsers in with the\n`);
  out(`login tokens omnisci-handoff issues (the shipped authenticator): no password anywhere.\n\n`);
  mkdirSync(DIR, { recursive: true, mode: 0o700 });
  chmodSync(DIR, 0o700);
  const leftovers = await killMarked();
  if (leftovers) out(`(stopped ${leftovers} process${leftovers === 1 ? '' : 'es'} left over by an earlier demo run)\n`);
  const askedPort = Number(opts.port);
  if (!Number.isInteger(askedPort) || askedPort < 0 || askedPort > 65535) throw new StepFailed(`--port ${opts.port} is not a port`);
  if (askedPort && (await takenPort(askedPort)))
    throw new StepFailed(`port ${askedPort} on 127.0.0.1 is in use: choose another with --port, or leave --port out for a free one`);

  await dependency('jupyterhub', 'scripts/deps/jupyterhub.sh', join(HUB_VENV, '.installed'), [], 'JupyterHub 5 and configurable-http-proxy (.cache/venv-hub)', () =>
    existsSync(join(HUB_VENV, 'bin/jupyterhub')) && existsSync(CHP),
  );
  await dependency(
    'omnisci-extension',
    'scripts/deps/omnisci-extension.sh',
    join(OMNISCI_VENV, '.installed'),
    [join(ROOT, 'scripts/deps/omnisci-extension.requirements.txt')],
    'jupyterlab-omnisci 3.0.0 on notebook 6 (.cache/venv-omnisci)',
    () => existsSync(join(OMNISCI_VENV, 'bin/jupyterhub-singleuser')),
  );
  await build();

  // The built service's own modules: the dev key (src/dev.ts) signs the stand-in Immerse's tokens.
  const dist = (m: string) => import(pathToFileURL(join(ROOT, 'dist/src', m)).href);
  const { devSetup } = (await dist('dev.js')) as typeof import('../src/dev.ts');
  const { stringify } = (await import('yaml')) as typeof import('yaml');

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
  const hub = await step(`JupyterHub on ${hubUrl}`, async () => {
    // The hub's state is new on every run; the sessions (store/) and the key (dev/) stay.
    const hubDir = join(DIR, 'hub');
    rmSync(hubDir, { recursive: true, force: true });
    mkdirSync(join(DIR, 'home'), { recursive: true, mode: 0o700 });
    mkdirSync(hubDir, { mode: 0o700 });
    const root = process.getuid?.() === 0;
    writeFileSync(
      join(hubDir, 'jupyterhub_config.py'),
      `# Written by scripts/demo.ts on every run.
import sys
c = get_config()
c.JupyterHub.ip = '127.0.0.1'
c.JupyterHub.port = ${publicPort}
c.JupyterHub.hub_ip = '127.0.0.1'
c.JupyterHub.hub_port = ${hubPort}
c.JupyterHub.db_url = ${py(`sqlite:///${join(hubDir, 'jupyterhub.sqlite')}`)}
c.JupyterHub.cookie_secret_file = ${py(join(hubDir, 'cookie_secret'))}
c.JupyterHub.pid_file = ${py(join(hubDir, 'jupyterhub.pid'))}
c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:${proxyApiPort}'
c.ConfigurableHTTPProxy.command = [${py(process.execPath)}, ${py(CHP)}]
c.ConfigurableHTTPProxy.auth_token = ${py(randomBytes(24).toString('hex'))}

# Login: the one-time login token omnisci-handoff issues (hub.loginMode handoff), traded at the service.
sys.path.insert(0, ${py(join(ROOT, 'helm/omnisci-handoff/files'))})
from authenticator import OmnisciHandoffAuthenticator
c.JupyterHub.authenticator_class = OmnisciHandoffAuthenticator

# Servers: local processes of this account, with the session from the service's local store.
sys.path.insert(0, ${py(join(ROOT, 'contrib/jupyterhub'))})
from omnisci_handoff_hook import OmnisciHandoffHook
c.Spawner.pre_spawn_hook = OmnisciHandoffHook(${py(storeDir)})
c.JupyterHub.spawner_class = 'simple'
c.SimpleLocalProcessSpawner.home_dir_template = ${py(join(DIR, 'home', '{username}'))}
c.Spawner.ip = '127.0.0.1'
# jupyterlab-omnisci 3.0.0 runs on the classic notebook server: jupyterhub-singleuser from its venv.
c.Spawner.cmd = [${py(join(OMNISCI_VENV, 'bin/jupyterhub-singleuser'))}]
c.Spawner.args = ${root ? "['--allow-root']" : '[]'}
c.Spawner.environment = {'JUPYTERHUB_SINGLEUSER_APP': 'notebook.notebookapp.NotebookApp', 'PYTHONWARNINGS': 'ignore', ${py(MARK)}: ${py(DIR)}}
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120

c.JupyterHub.services = [{'name': ${py(SERVICE)}, 'url': 'http://127.0.0.1:${servicePort}', 'api_token': ${py(apiToken)}, 'oauth_no_confirm': True, 'display': False}]
c.JupyterHub.load_roles = [{'name': ${py(SERVICE)}, 'scopes': ['servers', 'admin:users'], 'services': [${py(SERVICE)}]}]
`,
    );
    const c = start('jupyterhub', join(HUB_VENV, 'bin/jupyterhub'), ['-f', join(hubDir, 'jupyterhub_config.py')], {
      ...process.env,
      PATH: `${join(HUB_VENV, 'bin')}:${process.env.PATH ?? ''}`,
      PYTHONDONTWRITEBYTECODE: '1',
    }, hubDir);
    await waitUntil('the hub answered', c, async () => (await fetch(`${hubUrl}/hub/api/`, { signal: AbortSignal.timeout(5000) })).ok, 120_000);
    return c;
  });

  const serviceUrl = `${hubUrl}${PREFIX}`;
  await step(`omnisci-handoff at ${serviceUrl}`, async () => {
    const config = {
      listen: { host: '127.0.0.1', port: servicePort, internal: { host: '127.0.0.1', port: internalPort } },
      token: dev.config.token,
      omnisci: { protocol: 'http', host: 'localhost', port: 6278 },
      redirect: { hubPublicUrl: hubUrl },
      store: { backend: 'local', local: { dir: storeDir } },
      hub: { enabled: true, createUsers: true, loginMode: 'handoff' },
    };
    const file = join(DIR, 'config.yaml');
    writeFileSync(file, `# Written by scripts/demo.ts on every run. The hub API URL, token and base path come from the environment.\n${stringify(config)}`);
    const c = start('omnisci-handoff', process.execPath, [CLI, 'serve', '--config', file], {
      PATH: process.env.PATH,
      JUPYTERHUB_API_TOKEN: apiToken,
      JUPYTERHUB_API_URL: `http://127.0.0.1:${hubPort}/hub/api`,
      JUPYTERHUB_SERVICE_PREFIX: PREFIX,
      JUPYTERHUB_SERVICE_NAME: SERVICE,
    });
    await waitUntil('it was ready', c, async () => (await fetch(`http://127.0.0.1:${internalPort}/readyz`, { signal: AbortSignal.timeout(5000) })).ok, 60_000);
    // …and the hub proxies to it.
    await waitUntil('the hub proxied to it', hub, async () => (await fetch(`${serviceUrl}healthz`, { signal: AbortSignal.timeout(5000) })).ok, 30_000);
  });

  const link = await step('a stand-in for Immerse', async () => {
    immerse = createHttpServer((req, res) => {
      if (req.method !== 'GET' || new URL(req.url ?? '/', 'http://x').pathname !== '/') {
        res.writeHead(404).end();
        return;
      }
      void dev.mintDemo(USER).then(
        (token: string) => {
          res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' });
          res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Immerse (demo stand-in)</title></head>
<body style="font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto">
<h1>Opening your notebook…</h1>
<p>This page plays Immerse: it signed a handoff token for <b>${USER.replace(/[&<>"']/g, '')}</b> with a fresh demo session and posts it to omnisci-handoff.</p>
<form id="handoff" method="post" action="${serviceUrl}handoff"><input type="hidden" name="token" value="${token}">
<noscript><button type="submit">Continue</button></noscript></form>
<script>document.getElementById('handoff').submit();</script></body></html>`);
        },
        () => res.writeHead(500).end(),
      );
    });
    await new Promise<void>((r, j) => {
      immerse!.once('error', j);
      immerse!.listen(0, '127.0.0.1', () => r());
    });
    return `http://127.0.0.1:${(immerse.address() as AddressInfo).port}/`;
  });

  out(`
Open this link (it plays Immerse: every visit hands a fresh session for user "${USER}" over):

  ${link}

It shows the service's progress page while the hub starts ${USER}'s server, logs the browser in to the
hub and lands on ${hubUrl}/user/${USER}/lab?omnisci&reset (JupyterLab 2). What jupyterlab-omnisci
serves from the handed-over session: ${hubUrl}/user/${USER}/omnisci/session
The session file: ${join(storeDir, 'users', USER, 'session')} (no HeavyDB runs here: the session is a demo value).
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
  await stopAll();
  process.exit(1);
});
