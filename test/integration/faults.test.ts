/**
 * Faults in the middle of handoffs (issue 12, "survived faults"): the Kubernetes API server answering
 * 5xx, 409 and timeouts or refusing connections, the JupyterHub API down before and after the session
 * is stored and during a spawn, and a full disk under the local store. Each fault must give a clear
 * error code (never a 500), leave nothing half-written, and the next handoff must succeed once the
 * fault clears.
 *
 * Faults come from the loopback API server stand-in's hooks (test/support/fake-apiserver.ts), from a
 * loopback HTTP proxy in front of the peer that can pass, hang, reset, answer 503 or close its port
 * (FaultProxy below), and from a 64 KiB tmpfs (root only).
 */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { randomSessionId } from '../../src/handoff/mint.js';
import { secretName } from '../../src/k8s/layout.js';
import { safeSlug } from '../../src/k8s/slug.js';
import { hmacKey, mint, postToken, startTestService, tempDir, testConfig, TYP, type TestService } from '../support/core.js';
import { NoJsBrowser, runningLab, startHubService, type HubService } from '../support/hub-service.js';
import { hubInstalled, startHub, waitFor, type RunningHub } from '../support/jupyterhub.js';
import { k8sConfig, k8sTarget, type K8sTarget } from '../support/k8s-target.js';
import { notRoot, requirePrerequisite } from '../support/prerequisites.js';

jest.setTimeout(120_000);

// ----- a loopback HTTP proxy that injects faults -----

/** What the proxy does with one request: forward it, reset the connection, never answer, or answer this status. */
type Decision = 'pass' | 'reset' | 'hang' | number;

class FaultProxy {
  /** Decides per request; `n` counts every request the proxy has seen. */
  decide: (req: IncomingMessage, n: number) => Decision = () => 'pass';
  requests = 0;
  port = 0;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly hung = new Set<ServerResponse>();

  constructor(private readonly target: URL) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const d = this.decide(req, ++this.requests);
    if (d === 'reset') return void req.socket.destroy();
    if (d === 'hang') return void this.hung.add(res);
    if (typeof d === 'number') {
      res.writeHead(d, { 'content-type': 'application/json' }).end(JSON.stringify({ status: d, message: 'injected by the test proxy' }));
      return;
    }
    const up = httpRequest(
      { host: this.target.hostname, port: this.target.port, method: req.method, path: req.url, headers: req.headers },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      },
    );
    up.on('error', () => req.socket.destroy());
    // A client that goes away (a cut stream) takes the upstream request with it.
    res.on('close', () => up.destroy());
    req.pipe(up);
  }

  /** Every connection in flight breaks (streams included). */
  cutAll(): void {
    for (const s of this.sockets) s.destroy();
    this.hung.clear();
  }

  /** Back to forwarding; requests left hanging are cut. */
  heal(): void {
    this.decide = () => 'pass';
    for (const r of this.hung) r.socket?.destroy();
    this.hung.clear();
  }

  /** Closes the port: connections are refused (ECONNREFUSED) until `reopen`. */
  async refuse(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>((r) => server.close(() => r()));
    this.cutAll();
    await closed;
  }

  async reopen(): Promise<void> {
    this.heal();
    await this.start();
  }

  async close(): Promise<void> {
    this.heal();
    await this.refuse();
  }
}

/** Statuses and error codes of every handoff answer in this file: none may be a 500. */
const answered: { where: string; status: number; error?: string }[] = [];

async function json(res: Response): Promise<{ error?: string; message?: string }> {
  const text = await res.text();
  try {
    return JSON.parse(text) as { error?: string; message?: string };
  } catch {
    return {};
  }
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, unknown> };
}

afterAll(() => {
  console.log(`fault outcomes:\n${answered.map((a) => `  ${a.where}: ${a.status}${a.error ? ` ${a.error}` : ''}`).join('\n')}`);
  expect(answered.filter((a) => a.status === 500 || a.error === 'internal')).toEqual([]);
});

// ----- 1. the Kubernetes API server -----

// On the loopback stand-in always (also with OMNISCI_TEST_KUBECONFIG set): the faults are its to inject.
describe('Kubernetes API faults in the middle of handoffs (kubernetes store)', () => {
  const SECRET = 'x'.repeat(32);
  const key = hmacKey('HS256', SECRET);
  let target: K8sTarget;
  let proxy: FaultProxy;
  let svc: TestService;
  let user = 'ann@example.com';
  let seq = 0;

  beforeAll(async () => {
    target = await k8sTarget({ fake: true });
    const fake = target.fake!;
    // The service reaches the API server through the fault proxy.
    proxy = new FaultProxy(new URL(fake.url));
    await proxy.start();
    const kubeconfig = join(target.dir, 'kubeconfig-via-proxy.yaml');
    writeFileSync(kubeconfig, readFileSync(fake.writeKubeconfig(target.dir, target.namespace), 'utf8').replace(fake.url, proxy.url), { mode: 0o600 });
    const config = k8sConfig({ kubeconfig, namespace: target.namespace }, { retries: 2, requestTimeoutMs: 400, fastRefresh: true }, {
      listen: { port: 0, internal: { port: 0 } },
      token: { issuer: 'immerse', audience: 'jupyterhub', type: TYP, algorithms: ['HS256'], keys: { hmacSecretEnv: 'TEST_HMAC' } },
      redirect: { hubPublicUrl: 'https://hub.test' },
      omnisci: { host: 'omnisci.test', port: 6278, protocol: 'http' },
    });
    svc = await startTestService(config, { env: { TEST_HMAC: SECRET } });
  });

  afterAll(async () => {
    await svc?.close();
    await proxy?.close();
    await target?.close();
  });

  const name = (u = user) => secretName(svc.config.store.kubernetes.secretPrefix, u);

  /** One handoff of `u` with a fresh session, answered as JSON. */
  async function handoff(where: string, u = user): Promise<{ status: number; error?: string; session: string; token: string }> {
    const session = randomSessionId();
    const token = await mint(key, { issuer: 'immerse', audience: 'jupyterhub', subject: u, jti: `k8s-${++seq}-${Date.now()}`, omnisci: { session } });
    return { ...(await post(where, token)), session, token };
  }

  async function post(where: string, token: string): Promise<{ status: number; error?: string }> {
    const res = await postToken(svc.url, token, { accept: 'application/json' });
    const body = res.status === 303 ? {} : await json(res);
    answered.push({ where: `kubernetes: ${where}`, status: res.status, ...(body.error ? { error: body.error } : {}) });
    return { status: res.status, ...(body.error ? { error: body.error } : {}) };
  }

  /** The session the user's Secret holds; fails when its keys disagree (a half-written Secret). */
  async function stored(u = user): Promise<string | undefined> {
    const secret = await target.secret(name(u));
    if (!secret) return undefined;
    const data = secret.data ?? {};
    const dec = (k: string) => Buffer.from(data[k] ?? '', 'base64').toString('utf8');
    const state = JSON.parse(dec('state')) as { user: string; session: string; query: string; connection: { protocol: string; host: string; port: number } };
    const file = JSON.parse(dec(svc.config.notebook.sessionFileName)) as { session: string; query: string };
    expect(state.user).toBe(u);
    expect(file).toEqual({ session: state.session, query: state.query });
    expect([dec('protocol'), dec('host'), dec('port')]).toEqual([state.connection.protocol, state.connection.host, String(state.connection.port)]);
    return state.session;
  }

  /** Log details of the service's store failures since `from` (what operators see; the page never says it). */
  const details = (from: number) =>
    svc.logs
      .records()
      .slice(from)
      .filter((r) => r.code === 'store_unavailable')
      .map((r) => String(r.detail));

  test('baseline: a handoff writes a consistent Secret', async () => {
    const h = await handoff('baseline');
    expect(h.status).toBe(303);
    expect(await stored()).toBe(h.session);
  });

  test('5xx on every read: 503 store_unavailable after the retries, the Secret untouched; then a handoff succeeds', async () => {
    const fake = target.fake!;
    const before = await stored();
    const logFrom = svc.logs.lines.length;
    fake.failNext('get', 'secrets', [503, 500, 503]);
    const h = await handoff('get 503/500/503');
    expect([h.status, h.error]).toEqual([503, 'store_unavailable']);
    expect(details(logFrom).some((d) => /HTTP 50[03]/.test(d))).toBe(true);
    expect(await stored()).toBe(before);
    const next = await handoff('after get 5xx');
    expect(next.status).toBe(303);
    expect(await stored()).toBe(next.session);
  });

  test('5xx on the write after a good read: 503, the Secret keeps the old state whole; then a handoff succeeds', async () => {
    const fake = target.fake!;
    const before = await stored();
    fake.failNext('update', 'secrets', [500, 502, 500]);
    const h = await handoff('update 500/502/500');
    expect([h.status, h.error]).toEqual([503, 'store_unavailable']);
    expect(await stored()).toBe(before);
    // The same token again once the server is well: it was never recorded, so it is accepted now.
    const retried = await post('same token after update 5xx', h.token);
    expect(retried.status).toBe(303);
    expect(await stored()).toBe(h.session);
  });

  test('transient 429 and 5xx in the middle are retried: the handoff succeeds', async () => {
    const fake = target.fake!;
    const from = fake.requests.length;
    fake.failNext('get', 'secrets', [429]);
    fake.failNext('update', 'secrets', [503]);
    const h = await handoff('get 429 + update 503 (transient)');
    expect(h.status).toBe(303);
    const codes = fake.requests.slice(from).filter((r) => r.resource === 'secrets').map((r) => `${r.verb} ${r.code}`);
    expect(codes).toEqual(['get 429', 'get 200', 'update 503', 'update 200']);
    expect(await stored()).toBe(h.session);
  });

  test('409 conflicts: a few are re-read and redone; a storm that outlasts the rounds is 503; then a handoff succeeds', async () => {
    const fake = target.fake!;
    fake.failNext('update', 'secrets', [409, 409, 409]);
    const few = await handoff('update 409 ×3');
    expect(few.status).toBe(303);
    expect(await stored()).toBe(few.session);

    const logFrom = svc.logs.lines.length;
    fake.failNext('update', 'secrets', Array<number>(16).fill(409));
    const storm = await handoff('update 409 ×16');
    expect([storm.status, storm.error]).toEqual([503, 'store_unavailable']);
    expect(details(logFrom).some((d) => d.includes('still conflicting'))).toBe(true);
    expect(await stored()).toBe(few.session);
    const next = await handoff('after 409 storm');
    expect(next.status).toBe(303);
    expect(await stored()).toBe(next.session);
  });

  test('a write whose reply times out (504 after commit) is recognised by its write id: 303, stored once', async () => {
    const fake = target.fake!;
    fake.timeoutAfterCommit('update', 'secrets', 1);
    const h = await handoff('update 504 after commit');
    expect(h.status).toBe(303);
    expect(await stored()).toBe(h.session);
  });

  test('the API server hangs: each request times out, 503 "timed out" in the log; then a handoff succeeds', async () => {
    const before = await stored();
    const logFrom = svc.logs.lines.length;
    proxy.decide = () => 'hang';
    const sent = proxy.requests;
    const h = await handoff('API server hangs');
    const attempts = proxy.requests - sent;
    proxy.heal();
    expect([h.status, h.error]).toEqual([503, 'store_unavailable']);
    expect(details(logFrom).some((d) => d.includes('timed out'))).toBe(true);
    // Bounded: 1 + retries (2) attempts, each abandoned after requestTimeoutMs, not the browser's patience.
    expect(attempts).toBe(3);
    expect(await stored()).toBe(before);
    const next = await handoff('after hang');
    expect(next.status).toBe(303);
    expect(await stored()).toBe(next.session);
  });

  test('the API server refuses connections: 503 (ECONNREFUSED in the log), not ready; back: ready, a handoff succeeds', async () => {
    const before = await stored();
    const logFrom = svc.logs.lines.length;
    await proxy.refuse();
    try {
      const h = await handoff('API server refuses');
      expect([h.status, h.error]).toEqual([503, 'store_unavailable']);
      expect(details(logFrom).some((d) => d.includes('ECONNREFUSED'))).toBe(true);
      const ready = await getJson(`${svc.internalUrl}readyz`);
      expect([ready.status, ready.body.error]).toEqual([503, 'store_unavailable']);
    } finally {
      await proxy.reopen();
    }
    expect(await stored()).toBe(before);
    expect((await getJson(`${svc.internalUrl}readyz`)).status).toBe(200);
    const next = await handoff('after refuse');
    expect(next.status).toBe(303);
    expect(await stored()).toBe(next.session);
  });

  test("a new user's first handoff while creates fail: 503 and no Secret; then it is created whole", async () => {
    const fake = target.fake!;
    user = `bea-${Date.now()}`;
    fake.failNext('create', 'secrets', [500, 500, 500]);
    const h = await handoff('create 500 ×3 (new user)');
    expect([h.status, h.error]).toEqual([503, 'store_unavailable']);
    expect(await target.secret(name())).toBeUndefined();
    const next = await handoff('after create 5xx');
    expect(next.status).toBe(303);
    expect(await stored()).toBe(next.session);
  });

  test('the pod refresh failing (list pods 500) does not fail the handoff: it is best effort, logged', async () => {
    const fake = target.fake!;
    fake.put('pods', target.namespace, {
      metadata: { name: `jupyter-${safeSlug(user)}`, labels: { component: 'singleuser-server', 'hub.jupyter.org/username': safeSlug(user) }, annotations: { 'hub.jupyter.org/username': user } },
      spec: { containers: [{ name: 'notebook', image: 'x' }] },
      status: { phase: 'Running' },
    });
    const logFrom = svc.logs.lines.length;
    fake.failNext('list', 'pods', [500, 500, 500]);
    const h = await handoff('list pods 500 ×3 (refresh)');
    expect(h.status).toBe(303);
    expect(await stored()).toBe(h.session);
    expect(svc.logs.lines.slice(logFrom).some((l) => l.includes('could not ask kubelet to refresh'))).toBe(true);
  });
});

// ----- 2. JupyterHub -----

const withHub = requirePrerequisite(hubInstalled() ? undefined : 'JupyterHub is not installed', 'bash scripts/deps/jupyterhub.sh');

withHub('JupyterHub faults (hub.enabled, a real JupyterHub behind a fault proxy)', () => {
  const key = hmacKey('HS256');
  let hub: RunningHub;
  let proxy: FaultProxy;
  let svc: HubService;

  beforeAll(async () => {
    hub = await startHub({ users: ['hana', 'hugo', 'hal', 'ida', 'held-sami'], slowSeconds: 4 });
    proxy = new FaultProxy(new URL(hub.apiUrl));
    await proxy.start();
    svc = await startHubService({
      hub,
      // The faults below count the hub calls of one user read: no shared-server check (hub-shares-named.test.ts has it).
      hubConfig: { apiUrl: `${proxy.url}/hub/api`, requestTimeoutMs: 1000, retries: 1, spawnTimeoutSeconds: 60, allowSharedServers: true },
    });
  });

  afterAll(async () => {
    await svc?.close();
    await proxy?.close();
    await hub?.stop();
  });

  afterEach(() => proxy.heal());

  const labOf = (u: string) => `${hub.publicUrl}/user/${u}/lab?omnisci&reset`;
  const sessionFile = (u: string) => join(svc.config.store.local.dir, 'users', safeSlug(u), 'session');
  const storedSession = (u: string) => (existsSync(sessionFile(u)) ? (JSON.parse(readFileSync(sessionFile(u), 'utf8')) as { session: string }).session : undefined);
  const token = (subject: string, session = randomSessionId()) => mint(key, { subject, omnisci: { session } }).then((t) => ({ t, session }));

  async function post(where: string, t: string, accept = 'application/json'): Promise<{ status: number; error?: string; text: string }> {
    const res = await postToken(svc.url, t, { accept });
    const text = res.status === 303 ? '' : await res.text();
    let error: string | undefined;
    try {
      error = (JSON.parse(text) as { error?: string }).error;
    } catch {
      error = /Error code <code>([a-z_]+)<\/code>/.exec(text)?.[1];
    }
    answered.push({ where: `hub: ${where}`, status: res.status, ...(error ? { error } : {}) });
    return { status: res.status, ...(error ? { error } : {}), text };
  }

  test('the hub API port is closed: 502 hub_unavailable (a page saying try again), nothing stored, not ready; back: the same token lands', async () => {
    const { t, session } = await token('hana');
    await proxy.refuse();
    try {
      const a = await post('hub port closed (JSON)', t);
      expect([a.status, a.error]).toEqual([502, 'hub_unavailable']);
      const page = await post('hub port closed (HTML)', t, 'text/html');
      expect([page.status, page.error]).toEqual([502, 'hub_unavailable']);
      expect(page.text).toMatch(/try again/i);
      expect(storedSession('hana')).toBeUndefined();
      const ready = await getJson(`${svc.internalUrl}readyz`);
      expect([ready.status, ready.body.error]).toEqual([503, 'hub_unavailable']);
    } finally {
      await proxy.reopen();
    }
    expect((await getJson(`${svc.internalUrl}readyz`)).status).toBe(200);
    // The refused handoff stored nothing and recorded no jti: the browser's retry of the same token works.
    const b = new NoJsBrowser();
    const end = await b.postHandoff(svc.url, t);
    expect(end.url).toBe(labOf('hana'));
    expect(storedSession('hana')).toBe(session);
  });

  test('the hub answers 503: 502 hub_unavailable, nothing stored; healed: the same token lands', async () => {
    const { t, session } = await token('hugo');
    proxy.decide = () => 503;
    const a = await post('hub answers 503', t);
    expect([a.status, a.error]).toEqual([502, 'hub_unavailable']);
    expect(storedSession('hugo')).toBeUndefined();
    proxy.heal();
    const end = await new NoJsBrowser().postHandoff(svc.url, t);
    expect(end.url).toBe(labOf('hugo'));
    expect(storedSession('hugo')).toBe(session);
  });

  test('the hub hangs: the request timeout gives 502 hub_unavailable ("timed out" in the log), nothing stored', async () => {
    const { t } = await token('hal');
    const logFrom = svc.logs.lines.length;
    proxy.decide = () => 'hang';
    const sent = proxy.requests;
    const a = await post('hub hangs', t);
    expect([a.status, a.error]).toEqual([502, 'hub_unavailable']);
    // Bounded: 1 + retries (1) attempts, each abandoned after requestTimeoutMs.
    expect(proxy.requests - sent).toBe(2);
    expect(storedSession('hal')).toBeUndefined();
    expect(
      svc.logs
        .records()
        .slice(logFrom)
        .some((r) => r.code === 'hub_unavailable' && String(r.detail).includes('timed out')),
    ).toBe(true);
    proxy.heal();
    // Followed to the lab, so that no spawn of this test is still talking to the hub in the next one.
    expect((await new NoJsBrowser().postHandoff(svc.url, t)).url).toBe(labOf('hal'));
    answered.push({ where: 'hub: same token after hub hang', status: 303 });
  });

  test('the hub goes away between storing and landing: the landing needs no call of its own (one user read per handoff), the session stored whole', async () => {
    const first = await token('ida');
    expect((await new NoJsBrowser().postHandoff(svc.url, first.t)).url).toBe(labOf('ida'));
    const second = await token('ida');
    const start = proxy.requests;
    // prepare's user lookup passes; any later call finds the hub gone. The server runs, and the landing
    // uses prepare's read of it: on to the lab (the browser's own request there is the hub's business).
    proxy.decide = (_req, n) => (n <= start + 1 ? 'pass' : 'reset');
    const a = await post('hub lost after the store', second.t);
    expect(a.status).toBe(303);
    expect(proxy.requests).toBe(start + 1);
    // What the service does: the store ran before the landing, so the new session is in place, whole.
    expect(storedSession('ida')).toBe(second.session);
    const state = JSON.parse(readFileSync(join(svc.config.store.local.dir, 'users', safeSlug('ida'), 'state.json'), 'utf8')) as { session: string };
    expect(state.session).toBe(second.session);
    proxy.heal();
    // The same token again: its jti is recorded, so it is refused as a replay (not a 5xx).
    const again = await post('same token after hub lost post-store', second.t);
    expect([again.status, again.error]).toEqual([409, 'token_replayed']);
    const fresh = await token('ida');
    const end = await new NoJsBrowser().postHandoff(svc.url, fresh.t);
    // ida's server runs: the lab URL carries the stored session's fingerprint.
    expect(end.url).toBe(runningLab(svc, labOf('ida'), 'ida'));
    expect(storedSession('ida')).toBe(fresh.session);
  });

  test('the hub goes away during the spawn: the progress page fails with hub_unavailable and a retry button; healed: retry lands', async () => {
    const { t, session } = await token('held-sami');
    const b = new NoJsBrowser();
    const res = await b.postToken(svc.url, t);
    expect(res.status).toBe(303);
    await res.body?.cancel();
    const progress = new URL(res.headers.get('location')!, svc.url).toString();
    expect(progress).toContain('/progress/');
    expect(storedSession('held-sami')).toBe(session);
    // Once the hub says the spawn is pending (held by the test spawner until released below), cut the hub off.
    await waitFor(async () => {
      const r = await hub.admin('GET', '/users/held-sami');
      return (r.json as { servers?: Record<string, { pending: string | null }> }).servers?.['']?.pending === 'spawn' ? true : undefined;
    });
    proxy.decide = () => 'reset';
    proxy.cutAll();
    const failed = await waitFor(async () => {
      const page = await (await b.request(progress)).text();
      return page.includes('id="retry"') ? page : undefined;
    });
    expect(failed).toContain('<code>hub_unavailable</code>');
    answered.push({ where: 'hub: lost during the spawn (progress page)', status: 200, error: 'hub_unavailable' });
    proxy.heal();
    hub.releaseSpawn('held-sami');
    const retry = await b.request(`${progress}/retry`, { method: 'POST' });
    expect(retry.status).toBe(303);
    const end = await b.follow(retry, `${progress}/retry`);
    expect(end.url).toBe(labOf('held-sami'));
    expect(storedSession('held-sami')).toBe(session);
  });
});

// ----- 3. a full disk under the local store -----

const asRoot = requirePrerequisite(notRoot('mounting a tmpfs'), 'run as root, as CI does');

asRoot('a full disk (ENOSPC) under the local store (a 64 KiB tmpfs)', () => {
  let mnt: string;
  let mounted = false;
  let svc: TestService;
  const key = hmacKey('HS256');
  /** *.tmp files found after the full-disk handoff (asserted by a test below). */
  let leftovers: string[] | undefined;

  beforeAll(async () => {
    mnt = tempDir('oh-enospc-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', mnt]);
    mounted = true;
    svc = await startTestService(testConfig({ store: { local: { dir: mnt } } }));
  });

  afterAll(async () => {
    await svc?.close();
    if (mounted) {
      try {
        execFileSync('umount', [mnt]);
      } catch {
        execFileSync('umount', ['-l', mnt]);
      }
    }
    rmSync(mnt, { recursive: true, force: true });
  });

  afterEach(() => rmSync(join(mnt, 'filler'), { force: true }));

  /** Fills the tmpfs until ENOSPC, then frees `pages` pages of 4 KiB. */
  function fill(pages = 0): void {
    const fd = openSync(join(mnt, 'filler'), 'w');
    let n = 0;
    try {
      for (;;) {
        writeSync(fd, Buffer.alloc(4096, 1));
        n++;
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
    } finally {
      ftruncateSync(fd, Math.max(0, n - pages) * 4096);
      closeSync(fd);
    }
  }

  const dirOf = (u: string) => join(mnt, 'users', safeSlug(u));
  /** The stored session of both files; fails unless they are readable JSON. */
  const files = (u: string) => ({
    state: (JSON.parse(readFileSync(join(dirOf(u), 'state.json'), 'utf8')) as { session: string }).session,
    file: (JSON.parse(readFileSync(join(dirOf(u), 'session'), 'utf8')) as { session: string }).session,
  });
  const tmpFiles = (dir: string): string[] =>
    readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.tmp'));

  async function post(where: string, t: string, accept = 'application/json'): Promise<{ status: number; error?: string; text: string }> {
    const res = await postToken(svc.url, t, { accept });
    const text = res.status === 303 ? '' : await res.text();
    let error: string | undefined;
    try {
      error = (JSON.parse(text) as { error?: string }).error;
    } catch {
      error = /Error code <code>([a-z_]+)<\/code>/.exec(text)?.[1];
    }
    answered.push({ where: `disk: ${where}`, status: res.status, ...(error ? { error } : {}) });
    return { status: res.status, ...(error ? { error } : {}), text };
  }
  const token = (subject: string, session = randomSessionId(), iat?: number) =>
    mint(key, { subject, omnisci: { session }, ...(iat === undefined ? {} : { iat }) }).then((t) => ({ t, session }));

  test('full: 503 store_unavailable (ENOSPC in the log, not the page), the previous session intact; space freed: the same token succeeds', async () => {
    const now = Math.floor(Date.now() / 1000);
    const s1 = await token('alice', undefined, now - 20);
    expect((await post('before the disk fills', s1.t)).status).toBe(303);
    expect(files('alice')).toEqual({ state: s1.session, file: s1.session });

    fill();
    const logFrom = svc.logs.lines.length;
    const s2 = await token('alice', undefined, now - 10);
    const a = await post('disk full (JSON)', s2.t);
    expect([a.status, a.error]).toEqual([503, 'store_unavailable']);
    const page = await post('disk full (HTML)', s2.t, 'text/html');
    expect([page.status, page.error]).toEqual([503, 'store_unavailable']);
    for (const text of [a.text, page.text]) expect(text).not.toMatch(/ENOSPC|no space/i);
    const logged = svc.logs.records().slice(logFrom).filter((r) => r.code === 'store_unavailable');
    expect(logged.some((r) => String(r.detail).includes('ENOSPC'))).toBe(true);
    // A new user on the full disk: refused the same way, and no readable-but-wrong files.
    const bob = await token('bob');
    expect((await post('disk full, new user', bob.t)).status).toBe(503);
    for (const f of ['state.json', 'session']) expect(existsSync(join(dirOf('bob'), f))).toBe(false);
    // The previous session is intact and both files agree.
    expect(files('alice')).toEqual({ state: s1.session, file: s1.session });
    leftovers = tmpFiles(mnt);
    const ready = await getJson(`${svc.internalUrl}readyz`);
    console.log(`readyz on a full disk: ${ready.status} ${JSON.stringify(ready.body)}; leftover temporary files: ${JSON.stringify(leftovers)}`);

    rmSync(join(mnt, 'filler'));
    // Nothing was recorded for the refused token: the browser's retry of it succeeds now.
    expect((await post('same token, space freed', s2.t)).status).toBe(303);
    expect(files('alice')).toEqual({ state: s2.session, file: s2.session });
    const s3 = await token('alice');
    expect((await post('new token, space freed', s3.t)).status).toBe(303);
    expect(files('alice')).toEqual({ state: s3.session, file: s3.session });
    expect((await post('new user, space freed', (await token('bob', bob.session)).t)).status).toBe(303);
  });

  test('a failed write leaves no temporary file behind (*.tmp under the store)', () => {
    expect(leftovers).toBeDefined();
    expect(leftovers).toEqual([]);
  });

  // Each file of a handoff (the session file, then the record) is well under a page, and a tmpfs
  // charges a page per file: with one page free the session file's temporary fits and the record's
  // does not (the batch fails before any rename); with two pages free both fit.
  test('one page free: the session file would fit, the record does not: 503 store_unavailable, both files as before (never a mix), no temporary left; space freed: the same token stores (not a replay)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const before = await token('carol', undefined, now - 20);
    expect((await post('carol before', before.t)).status).toBe(303);
    fill(1);
    const attempt = await token('carol', undefined, now - 10);
    const a = await post('one page free', attempt.t);
    expect([a.status, a.error]).toEqual([503, 'store_unavailable']);
    expect(files('carol')).toEqual({ state: before.session, file: before.session });
    expect(tmpFiles(mnt)).toEqual([]);
    rmSync(join(mnt, 'filler'));
    expect((await post('same token after one-page-free', attempt.t)).status).toBe(303);
    expect(files('carol')).toEqual({ state: attempt.session, file: attempt.session });
  });

  test('two pages free: both files fit: 303, stored whole', async () => {
    const now = Math.floor(Date.now() / 1000);
    const before = await token('dora', undefined, now - 20);
    expect((await post('dora before', before.t)).status).toBe(303);
    fill(2);
    const attempt = await token('dora', undefined, now - 10);
    expect((await post('two pages free', attempt.t)).status).toBe(303);
    expect(files('dora')).toEqual({ state: attempt.session, file: attempt.session });
    expect(tmpFiles(mnt)).toEqual([]);
  });
});
