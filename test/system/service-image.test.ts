/**
 * The service's container image (Dockerfile), built for real with podman/buildah from the repository
 * root (so through .dockerignore) on the local node:24-slim stand-in, then run as an admin would:
 * read-only root filesystem, the image's non-root user, the config and the HMAC secret mounted, the
 * store on a mounted volume. Containers use the host's network namespace on a free loopback port.
 */
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { HMAC_SECRET, hmacKey, mint, postToken, randomSessionId, rawTestConfig } from '../support/core.js';
import {
  BASE_IMAGES,
  build,
  cachedStep,
  containerName,
  ensureBaseImages,
  freePort,
  imageLayers,
  imageSize,
  mb,
  podman,
  podmanOk,
  ROOT,
  tempDir,
  waitForHttp,
  type Built,
} from './podman.js';

jest.setTimeout(20 * 60_000);

const TAG = 'localhost/omnisci-handoff-test/service:latest';
const REBUILD_TAG = 'localhost/omnisci-handoff-test/service:rebuild';
const UID = 65532; // the Dockerfile's USER and the chart's runAsUser
const cleanup: (() => Promise<unknown> | void)[] = [];
let built: Built;
let context: string;

/** The build context as a fresh clone has it: the paths .dockerignore lets in, plus the Dockerfile. */
function copyContext(): string {
  const dir = tempDir('oh-image-ctx-');
  const allowed = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('!'))
    .map((l) => l.slice(1));
  for (const p of ['Dockerfile', '.dockerignore', ...allowed]) {
    if (existsSync(join(ROOT, p))) cpSync(join(ROOT, p), join(dir, p), { recursive: true });
  }
  return dir;
}

beforeAll(async () => {
  await ensureBaseImages();
  // Snapshot the context first: the source-change rebuild compares against the same dependencies.
  context = copyContext();
  cleanup.push(() => rmSync(context, { recursive: true, force: true }));
  built = await build({ tag: TAG, context: ROOT, args: { BASE: BASE_IMAGES.node } });
  const [size, base] = [await imageSize(TAG), await imageSize(BASE_IMAGES.node)];
  process.stdout.write(
    `service image: ${mb(size)} (${mb(size - base)} on top of the ${mb(base)} node:24-slim stand-in), built in ${built.seconds.toFixed(1)}s` +
      ` (npm ci layers ${cachedStep(built.output, 'RUN npm ci --ignore-scripts') ? 'cached' : 'built'})\n`,
  );
});

afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

/** A config dir (config.yaml + the HMAC secret, readable by the container user) and a store dir it may write. */
function serviceFiles(port: number, internalPort: number): { config: string; data: string } {
  const config = tempDir('oh-image-cfg-');
  const data = tempDir('oh-image-data-');
  cleanup.push(() => rmSync(config, { recursive: true, force: true }), () => rmSync(data, { recursive: true, force: true }));
  const raw = rawTestConfig({
    listen: { host: '127.0.0.1', port, internal: { host: '127.0.0.1', port: internalPort } },
    token: { keys: { hmacSecretFile: '/etc/omnisci-handoff/hmac-secret' } },
    store: { backend: 'local', local: { dir: '/var/lib/omnisci-handoff' } },
  });
  writeFileSync(join(config, 'config.yaml'), stringify(raw));
  writeFileSync(join(config, 'hmac-secret'), HMAC_SECRET, { mode: 0o400 });
  chownSync(join(config, 'hmac-secret'), UID, UID);
  chmodSync(config, 0o755);
  chownSync(data, UID, UID);
  return { config, data };
}

test('the image runs as uid 65532 with the service as entrypoint and the chart mounted config as default', async () => {
  const cfg = JSON.parse(await podmanOk('image', 'inspect', '--format', '{{json .Config}}', TAG)) as {
    User: string;
    Entrypoint: string[];
    Cmd: string[];
    Env: string[];
  };
  expect(cfg.User).toBe(`${UID}:${UID}`);
  expect(cfg.Entrypoint).toEqual(['node', 'dist/src/cli.js']);
  expect(cfg.Cmd).toEqual(['serve', '--config', '/etc/omnisci-handoff/config.yaml']);
  expect(cfg.Env).toContain('NODE_ENV=production');
});

test("the heap is sized from the container's memory limit: half of it", async () => {
  const heapMiB = async (...limit: string[]) => {
    const r = await podman('run', '--rm', '--network', 'none', ...limit, '--entrypoint', 'node', TAG, '-p', "Math.round(require('v8').getHeapStatistics().heap_size_limit / 1048576)");
    expect(r.stderr).toBe('');
    return Number(r.stdout.trim());
  };
  const small = await heapMiB('--memory', '256m');
  const large = await heapMiB('--memory', '1g');
  // V8 adds its young generation and a little more to the old space it is given.
  expect(small).toBeGreaterThanOrEqual(128);
  expect(small).toBeLessThan(160);
  expect(large).toBeGreaterThanOrEqual(512);
  expect(large).toBeLessThan(560);
});

test('the image holds production dependencies, the compiled service and the authenticator only', async () => {
  const fs = await podmanOk('image', 'mount', TAG);
  cleanup.push(() => podman('image', 'unmount', TAG));
  const app = join(fs, 'app');
  expect(readdirSync(app).sort()).toEqual(['dist', 'helm', 'node_modules', 'package-lock.json', 'package.json']);
  expect(readdirSync(join(app, 'dist')).filter((d) => !['src', 'schemas'].includes(d))).toEqual([]);
  expect(readdirSync(join(app, 'helm/omnisci-handoff'))).toEqual(['files']);
  expect(existsSync(join(app, 'dist/src/cli.js'))).toBe(true);
  // No build stage, repository metadata, local data, tests or npm cache anywhere in the image.
  for (const p of ['src', 'app/src', 'app/test', 'app/dist/test', 'app/dist/bench', 'app/.git', 'app/.data', 'app/.cache', 'root/.npm/_cacache']) {
    expect([p, existsSync(join(fs, p))]).toEqual([p, false]);
  }
  const unwanted: string[] = [];
  const stack = [app];
  while (stack.length) {
    const dir = stack.pop()!;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name).slice(fs.length);
      if (/^\.(git|data)$/.test(e.name) || (path.startsWith('/app/dist/') && /\.test\.js$/.test(e.name))) unwanted.push(path);
      if (e.isDirectory()) stack.push(join(dir, e.name));
    }
  }
  expect(unwanted).toEqual([]);

  // Exactly the lockfile's production packages: every non-dev entry present, no dev entry.
  const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  expect(lock).toEqual(JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')));
  const installed = new Set<string>();
  const walk = (nm: string, prefix: string) => {
    if (!existsSync(nm)) return;
    for (const name of readdirSync(nm)) {
      if (name.startsWith('.')) continue;
      const pkgs = name.startsWith('@') ? readdirSync(join(nm, name)).map((n) => `${name}/${n}`) : [name];
      for (const p of pkgs) {
        installed.add(`${prefix}node_modules/${p}`);
        walk(join(nm, p, 'node_modules'), `${prefix}node_modules/${p}/`);
      }
    }
  };
  walk(join(app, 'node_modules'), '');
  const production = Object.entries(lock.packages).filter(([k, v]) => k && !v.dev).map(([k]) => k);
  expect([...installed].sort()).toEqual(production.sort());
  for (const dev of ['typescript', 'jest', 'ts-jest', '@types/jest', 'playwright-core']) expect(installed).not.toContain(`node_modules/${dev}`);
  expect(installed).toContain('node_modules/express');
});

test('read-only root, non-root: probes answer, a handoff is stored on the mounted volume and answered 303, SIGTERM exits 0', async () => {
  const port = await freePort();
  let internalPort = await freePort();
  while (internalPort === port) internalPort = await freePort();
  const { config, data } = serviceFiles(port, internalPort);
  const name = containerName('service');
  cleanup.push(() => podman('rm', '-f', '-t', '0', name));
  // As the chart runs it: read-only root with only /tmp writable (an emptyDir there).
  await podmanOk(
    'run', '-d', '--name', name, '--network', 'host', '--read-only', '--read-only-tmpfs=false', '--tmpfs', '/tmp',
    '-v', `${config}:/etc/omnisci-handoff:ro`, '-v', `${data}:/var/lib/omnisci-handoff`, TAG,
  );
  const url = `http://127.0.0.1:${port}/`;
  const internal = `http://127.0.0.1:${internalPort}/`; // probes and metrics
  await waitForHttp(`${internal}healthz`, name);

  const pid = await podmanOk('inspect', '--format', '{{.State.Pid}}', name);
  expect(readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(new RegExp(`^Uid:\\t${UID}\\t${UID}\\t`, 'm'));
  expect(await podmanOk('inspect', '--format', '{{.HostConfig.ReadonlyRootfs}}', name)).toBe('true');
  const write = await podman('exec', name, 'node', '-e', "require('fs').writeFileSync('/app/probe', '')");
  expect(write.code).not.toBe(0);
  expect(write.stderr).toContain('EROFS');

  expect((await fetch(`${internal}healthz`)).status).toBe(200);
  const ready = await fetch(`${internal}readyz`);
  expect([ready.status, await ready.json()]).toEqual([200, { status: 'ready' }]);

  const session = randomSessionId();
  const token = await mint(hmacKey('HS256'), { subject: 'alice', omnisci: { session, query: 'SELECT 1' } });
  const res = await postToken(url, token);
  expect(res.status).toBe(303);
  expect(res.headers.get('location')).toBe('https://hub.test/user/alice/lab?omnisci&reset');
  const file = join(data, 'users', 'alice', 'session');
  expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ session, query: 'SELECT 1' });
  expect(statSync(file).uid).toBe(UID);
  expect(statSync(file).mode & 0o777).toBe(0o600);
  // The same token again is a replay.
  expect((await postToken(url, token)).status).toBe(409);

  // /readyz probes the volume: not ready while the container user cannot write it.
  chownSync(data, 0, 0);
  chmodSync(data, 0o700);
  expect((await fetch(`${internal}readyz`)).status).toBe(503);
  chownSync(data, UID, UID);
  expect((await fetch(`${internal}readyz`)).status).toBe(200);

  await podmanOk('stop', '-t', '20', name);
  expect(await podmanOk('inspect', '--format', '{{.State.ExitCode}}', name)).toBe('0');
  const logs = await podman('logs', name);
  expect(logs.stdout).toContain('"msg":"stopped"');
  expect(logs.stdout).toContain('"outcome":"stored"');
  for (const secret of [session, token, HMAC_SECRET]) expect(`${logs.stdout}${logs.stderr}`).not.toContain(secret);
});

test('z2jh-values in handoff login mode prints the authenticator shipped in the image', async () => {
  const config = tempDir('oh-image-z2jh-');
  cleanup.push(() => rmSync(config, { recursive: true, force: true }));
  mkdirSync(config, { recursive: true });
  writeFileSync(
    join(config, 'config.yaml'),
    stringify({
      token: { issuer: 'i', audience: 'a', algorithms: ['ES256'], keys: { jwksUrl: 'https://immerse.test/jwks.json' } },
      hub: { enabled: true, apiUrl: 'http://hub:8081/hub/api', loginMode: 'handoff' },
    }),
  );
  chmodSync(config, 0o755);
  const r = await podman(
    'run', '--rm', '--network', 'none', '--read-only', '-e', 'JUPYTERHUB_API_TOKEN=t', '-v', `${config}:/etc/omnisci-handoff:ro`,
    TAG, 'z2jh-values', '--config', '/etc/omnisci-handoff/config.yaml', '--service-url', 'http://omnisci-handoff:8470',
  );
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout).toContain('class OmnisciHandoffAuthenticator');
});

test('a source change rebuilds on top of the cached dependency layers', async () => {
  // A fixed change (a comment tsc keeps), so repeated runs reuse their own cache too.
  const cli = join(context, 'src/cli.ts');
  writeFileSync(cli, `${readFileSync(cli, 'utf8')}\n// rebuilt by test/system/service-image.test.ts\n`);
  const rebuilt = await build({ tag: REBUILD_TAG, context, args: { BASE: BASE_IMAGES.node } });
  cleanup.push(() => podman('untag', REBUILD_TAG));
  process.stdout.write(`service image rebuild after a source change: ${rebuilt.seconds.toFixed(1)}s\n`);
  expect(rebuilt.id).not.toBe(built.id);
  expect(cachedStep(rebuilt.output, 'RUN npm ci --ignore-scripts')).toBe(true);
  expect(cachedStep(rebuilt.output, 'RUN npm ci --omit=dev')).toBe(true);
  // Layer by layer: the same base and production node_modules (the very same layers), a new dist/.
  const history = JSON.parse(await podmanOk('image', 'inspect', '--format', '{{json .History}}', REBUILD_TAG)) as { created_by?: string; empty_layer?: boolean }[];
  const steps = history.filter((h) => !h.empty_layer).map((h) => h.created_by ?? '');
  const deps = steps.findIndex((s) => s.includes('npm ci --omit=dev'));
  expect(steps[deps + 1]).toMatch(/COPY .* \.\/dist *$/);
  const [before, after] = [await imageLayers(TAG), await imageLayers(REBUILD_TAG)];
  expect([before.length, after.length]).toEqual([steps.length, steps.length]);
  expect(after.slice(0, deps + 1)).toEqual(before.slice(0, deps + 1));
  expect(after[deps + 1]).not.toBe(before[deps + 1]);
});
