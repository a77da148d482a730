/**
 * A real JupyterHub 5 on loopback for integration tests (scripts/deps/jupyterhub.sh installs it).
 * The hub runs configurable-http-proxy (npm devDependency) on random ports, a local-process spawner
 * (test/support/hub/test_spawner.py: `slow-*`, `fail-*` and `held-*` users misbehave on purpose) and registers
 * the service under test as an external hub service whose role has exactly the scopes asked for.
 * Configurable for other suites: extra config snippet, env, spawner command.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killLogHolders } from './process.js';
import { ROOT } from './root.js';

/** extraConfig lines installing the shipped authenticator (helm/omnisci-handoff/files/authenticator.py), as a z2jh hub.extraConfig does. */
export const SHIPPED_AUTHENTICATOR = `sys.path.insert(0, ${JSON.stringify(join(ROOT, 'helm/omnisci-handoff/files'))})
from authenticator import OmnisciHandoffAuthenticator
c.JupyterHub.authenticator_class = OmnisciHandoffAuthenticator
`;

/** extraConfig lines installing the spawner hook (contrib/jupyterhub) over the local store `storeDir`; `kwargs`: its further arguments as Python source. */
export function spawnerHookConfig(storeDir: string, kwargs = ''): string {
  return `sys.path.insert(0, ${JSON.stringify(join(ROOT, 'contrib/jupyterhub'))})
from omnisci_handoff_hook import OmnisciHandoffHook
c.Spawner.pre_spawn_hook = OmnisciHandoffHook(${JSON.stringify(storeDir)}${kwargs ? `, ${kwargs}` : ''})
`;
}

const SUPPORT = join(ROOT, 'test/support/hub');
export const HUB_VENV = join(ROOT, '.cache/venv-hub');
const PYTHON = join(HUB_VENV, 'bin/python');
const CHP = join(ROOT, 'node_modules/configurable-http-proxy/bin/configurable-http-proxy');

/** The scopes docs/jupyterhub.md documents for the service (admin:users only when users are created; read:shares unless hub.allowSharedServers). */
export const SERVICE_SCOPES = ['servers', 'read:shares'] as const;
export const SERVICE_SCOPES_CREATE = ['servers', 'admin:users', 'read:shares'] as const;

export interface HubOptions {
  /** Name of the service under test (its hub role has exactly `serviceScopes`). */
  serviceName?: string;
  serviceScopes?: readonly string[];
  /** Where the hub proxies /services/{name}/ to (omit for an API-only service). */
  serviceUrl?: string;
  /** `c.JupyterHub.concurrent_spawn_limit` (0: none). */
  concurrentSpawnLimit?: number;
  /** Seconds `slow-*` users take to start (`held-*` users start when the test calls `releaseSpawn`). */
  slowSeconds?: number;
  /** Hub-side Retry-After range for throttled spawns, seconds. */
  retryRange?: [number, number];
  /** Python appended to jupyterhub_config.py (e.g. an authenticator, another spawner command). */
  extraConfig?: string;
  /** Extra environment for the hub process (and so for what it spawns). */
  env?: Record<string, string>;
  /** Further services (name → scopes) whose tokens come back in `extraTokens`. */
  extraServices?: Record<string, readonly string[]>;
  /** Seconds the hub's POST …/server waits for a spawn before answering 202 (hub default 10). */
  slowSpawnTimeout?: number;
  /** Users created at startup. */
  users?: string[];
  /** `c.JupyterHub.base_url`, e.g. /jupyter/ (default /). */
  baseUrl?: string;
}

export interface RunningHub {
  /** Public URL of the proxy with the hub's base_url, e.g. http://127.0.0.1:40123 or http://127.0.0.1:40123/jupyter (no trailing slash). */
  publicUrl: string;
  /** REST API base, e.g. http://127.0.0.1:40125/hub/api (no trailing slash). */
  apiUrl: string;
  serviceName: string;
  /** API token of the service under test. */
  serviceToken: string;
  extraTokens: Record<string, string>;
  /** Token of a separate admin service the tests use to inspect and drive the hub. */
  adminToken: string;
  /** Calls the hub API as the admin service; returns status and parsed JSON (or undefined). */
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }>;
  /** Lets the held spawn of a `held-*` user start (the next spawn of that user is held again). */
  releaseSpawn(user: string): void;
  /** The hub's log so far (stdout + stderr). */
  log(): string;
  stop(): Promise<void>;
}

export function hubInstalled(): boolean {
  return existsSync(PYTHON) && existsSync(CHP);
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

const py = (v: unknown) => JSON.stringify(v);

/**
 * Starts a hub on free ports. A port is free when picked (freePort binds and releases it) but another
 * process (another peer a test starts at the same time) may bind it before the hub does: then the hub
 * or its proxy fails with "address already in use", and the hub is started again on other ports, at
 * most twice more.
 */
export async function startHub(opts: HubOptions = {}): Promise<RunningHub> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startHubOnce(opts);
    } catch (e) {
      if (attempt < 3 && e instanceof PortTaken) continue;
      throw e;
    }
  }
}

class PortTaken extends Error {}

async function startHubOnce(opts: HubOptions): Promise<RunningHub> {
  if (!hubInstalled()) throw new Error('JupyterHub is not installed: run scripts/deps/jupyterhub.sh');
  const dir = mkdtempSync(join(tmpdir(), 'ohub-'));
  const [port, hubPort, proxyApiPort] = [await freePort(), await freePort(), await freePort()];
  const serviceName = opts.serviceName ?? 'omnisci-handoff';
  const serviceToken = randomBytes(24).toString('hex');
  const adminToken = randomBytes(24).toString('hex');
  const service: Record<string, unknown> = { name: serviceName, api_token: serviceToken };
  const extras = Object.entries(opts.extraServices ?? {}).map(([name, scopes]) => ({ name, scopes, token: randomBytes(24).toString('hex') }));
  const extraTokens = Object.fromEntries(extras.map((e) => [e.name, e.token]));
  if (opts.serviceUrl) Object.assign(service, { url: opts.serviceUrl, oauth_no_confirm: true });
  const config = `
import sys
true, false, null = True, False, None  # values below are written as JSON
sys.path.insert(0, ${py(SUPPORT)})
c = get_config()
c.JupyterHub.ip = '127.0.0.1'
c.JupyterHub.port = ${port}
c.JupyterHub.base_url = ${py(opts.baseUrl ?? '/')}
c.JupyterHub.hub_ip = '127.0.0.1'
c.JupyterHub.hub_port = ${hubPort}
c.JupyterHub.db_url = ${py(`sqlite:///${join(dir, 'jupyterhub.sqlite')}`)}
c.JupyterHub.cookie_secret_file = ${py(join(dir, 'cookie_secret'))}
c.JupyterHub.pid_file = ${py(join(dir, 'jupyterhub.pid'))}
c.JupyterHub.cleanup_servers = True
c.JupyterHub.concurrent_spawn_limit = ${opts.concurrentSpawnLimit ?? 0}
c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:${proxyApiPort}'
c.ConfigurableHTTPProxy.command = [${py(process.execPath)}, ${py(CHP)}]
c.ConfigurableHTTPProxy.auth_token = ${py(randomBytes(16).toString('hex'))}
c.JupyterHub.authenticator_class = 'dummy'
c.Authenticator.allow_all = True
from test_spawner import TestSpawner
c.JupyterHub.spawner_class = TestSpawner
c.TestSpawner.slow_seconds = ${opts.slowSeconds ?? 3}
c.TestSpawner.release_dir = ${py(join(dir, 'released'))}
c.Spawner.cmd = [${py(PYTHON)}, ${py(join(SUPPORT, 'fake_singleuser.py'))}]
c.Spawner.notebook_dir = ${py(dir)}
c.SimpleLocalProcessSpawner.home_dir_template = ${py(join(dir, 'home-{username}'))}
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 30
# spawn_throttle_retry_range is not a configurable trait in 5.x: it goes through tornado_settings.
c.JupyterHub.tornado_settings = {'slow_spawn_timeout': ${opts.slowSpawnTimeout ?? 0.1}, 'spawn_throttle_retry_range': (${(opts.retryRange ?? [1, 2]).join(', ')})}
c.JupyterHub.services = [${py(service)}, {'name': 'test-admin', 'api_token': ${py(adminToken)}}${extras.map((e) => `, {'name': ${py(e.name)}, 'api_token': ${py(e.token)}}`).join('')}]
c.JupyterHub.load_roles = [
    {'name': ${py(`${serviceName}-role`)}, 'scopes': ${py([...(opts.serviceScopes ?? SERVICE_SCOPES)])}, 'services': [${py(serviceName)}]},
    {'name': 'test-admin-role', 'scopes': ['admin:users', 'admin:servers', 'list:users'], 'services': ['test-admin']},${extras.map((e) => `
    {'name': ${py(`${e.name}-role`)}, 'scopes': ${py([...e.scopes])}, 'services': [${py(e.name)}]},`).join('')}
]
c.Authenticator.admin_users = set()
${(opts.users ?? []).length ? `c.Authenticator.allowed_users = set(${py(opts.users)})\nc.Authenticator.allow_existing_users = True` : ''}
${opts.extraConfig ?? ''}
`;
  writeFileSync(join(dir, 'jupyterhub_config.py'), config);
  mkdirSync(join(dir, 'released'));
  const releaseSpawn = (user: string) => writeFileSync(join(dir, 'released', user), '');
  const publicUrl = `http://127.0.0.1:${port}${(opts.baseUrl ?? '/').replace(/\/$/, '')}`;
  const apiUrl = `${publicUrl}/hub/api`;
  const hub = await launchHub({ dir, apiUrl, env: opts.env ?? {}, removeDir: true });

  const admin: RunningHub['admin'] = async (method, path, body) => {
    const r = await fetch(`${apiUrl}${path}`, {
      method,
      headers: { Authorization: `token ${adminToken}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      body: body === undefined ? null : JSON.stringify(body),
    });
    const text = await r.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = text;
    }
    return { status: r.status, json };
  };
  return { publicUrl, apiUrl, serviceName, serviceToken, extraTokens, adminToken, admin, releaseSpawn, log: hub.log, stop: hub.stop };
}

export interface LaunchedHub {
  /** The hub's output so far (stdout + stderr, with what its managed services print). */
  log(): string;
  /** Stops the hub (and with it its proxy, servers and managed services); removes `dir` when asked to. */
  stop(): Promise<void>;
}

/**
 * Runs `jupyterhub -f jupyterhub_config.py` in `dir` (its database and cookie secret land there) with
 * `bin` (commands the config names), then the hub venv first on the PATH, and waits until `apiUrl`
 * answers through the proxy.
 */
export async function launchHub(o: { dir: string; apiUrl: string; env: Record<string, string>; bin?: string; removeDir?: boolean }): Promise<LaunchedHub> {
  // A file, not a pipe: the proxy and servers the hub starts in sessions of their own write there too,
  // and one the hub failed to stop must not keep this process (jest) alive through our end of a pipe.
  const logFile = join(o.dir, 'jupyterhub.log');
  const fd = openSync(logFile, 'a');
  const child: ChildProcess = spawn(join(HUB_VENV, 'bin/jupyterhub'), ['-f', join(o.dir, 'jupyterhub_config.py')], {
    cwd: o.dir,
    env: { ...process.env, ...o.env, PATH: [...(o.bin ? [o.bin] : []), join(HUB_VENV, 'bin'), process.env.PATH ?? ''].join(':') },
    stdio: ['ignore', fd, fd],
    detached: true,
  });
  closeSync(fd);
  let final: string | undefined;
  const output = () => final ?? readFileSync(logFile, 'utf8');
  const exited = new Promise<void>((res) => child.once('exit', () => res()));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }, 15_000);
      await exited;
      clearTimeout(killer);
    }
    // What the hub did not stop (it was killed, or a server ignored it) still has the log open.
    killLogHolders(logFile);
    final ??= output();
    if (o.removeDir) rmSync(o.dir, { recursive: true, force: true });
  };

  // Up when the API answers through the proxy (hub and proxy both running).
  for (let i = 0; ; i++) {
    // A port taken: the hub exits, or (its proxy's port) the proxy dies while the hub runs on.
    const taken = /address already in use|EADDRINUSE/i.test(output());
    if (child.exitCode !== null || taken) {
      // The hub and its proxy share a process group.
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* none left */
      }
      await exited;
      await stop();
      const message = `jupyterhub ${taken ? 'could not bind a port' : 'exited'} during startup:\n${output()}`;
      throw taken ? new PortTaken(message) : new Error(message);
    }
    try {
      if ((await fetch(`${o.apiUrl}/`)).ok) break;
    } catch {
      /* not yet */
    }
    if (i > 600) {
      await stop();
      throw new Error(`jupyterhub did not come up:\n${output()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { log: output, stop };
}

/** Waits (bounded by `tries` × 100 ms of idle polling, not asserted on time) until `check` holds. */
export async function waitFor<T>(check: () => Promise<T | undefined>, tries = 600): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await check();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('condition not reached');
}
