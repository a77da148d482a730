/**
 * A real control plane on loopback for the Kubernetes integration tests: etcd and kube-apiserver
 * from the binary scripts/deps/kube-apiserver.sh builds (test/k8s/controlplane), with openssl-made
 * certificates, a service-account signing key, a static admin token (group system:masters),
 * RBAC authorization and the default admission plugins. There is no controller manager, scheduler
 * or kubelet: tests create what those would (a namespace's "default" ServiceAccount, pod status).
 *
 * The API server reaches in-cluster Services (a webhook's `clientConfig.service`) through an
 * egress HTTP CONNECT proxy on a unix socket run here: `route()` maps a Service's clusterIP:port
 * to a loopback port, so a chart's webhook configuration and its certificate for
 * <svc>.<ns>.svc work unchanged. Unrouted targets are refused: nothing leaves loopback.
 *
 * Node builtins only, so it also runs by hand (docs/testing-kubernetes.md):
 *   npm exec -- node test/support/kube-apiserver.ts
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (the nearest package.json up): this file also runs compiled into dist/ (the benchmarks). */
const ROOT = ((dir: string) => {
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
})(fileURLToPath(new URL('.', import.meta.url)));
export const CONTROLPLANE = join(ROOT, '.cache/k8s/controlplane');
const READY_TIMEOUT_MS = 180_000;

export interface KubeApiserver {
  url: string;
  caPem: string;
  adminToken: string;
  /** Admin kubeconfig (current namespace "default"). */
  kubeconfigPath: string;
  /** Temp dir of this control plane (certs, data, logs), removed by stop(). */
  dir: string;
  /** Seconds from spawning etcd to a ready /readyz. */
  startupSeconds: number;
  /** Writes a kubeconfig that authenticates with `token`; returns its path. */
  writeKubeconfig(name: string, token: string, namespace?: string): string;
  /** Routes the API server's connections to `target` (clusterIP:port) to 127.0.0.1:port; undefined removes it. */
  route(target: string, port: number | undefined): void;
  /** The API server's log so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Extra kube-apiserver flags (`--name=value`). */
  apiserverFlags?: string[];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'pipe' });
}

/** CA, API server serving certificate and service-account key pair, all EC P-256. */
function makePki(dir: string): void {
  const p = (f: string) => join(dir, f);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '2', '-subj', '/CN=omnisci-handoff-test-ca']);
  openssl(['req', ...ec, '-keyout', p('apiserver.key'), '-out', p('apiserver.csr'), '-subj', '/CN=kube-apiserver']);
  writeFileSync(
    p('apiserver.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n' +
      'extendedKeyUsage=serverAuth\n',
  );
  openssl(['x509', '-req', '-in', p('apiserver.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial',
    '-out', p('apiserver.crt'), '-days', '2', '-extfile', p('apiserver.ext')]);
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', p('sa.key')]);
  openssl(['pkey', '-in', p('sa.key'), '-pubout', '-out', p('sa.pub')]);
}

function kubeconfig(server: string, caPem: string, token: string, namespace: string): string {
  // JSON is YAML: no YAML library needed.
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'test', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    users: [{ name: 'user', user: { token } }],
    contexts: [{ name: 'test', context: { cluster: 'test', user: 'user', namespace } }],
    'current-context': 'test',
  });
}

/** HTTP CONNECT proxy on a unix socket: the API server's "cluster" egress. Closing it ends its tunnels. */
function egressProxy(socketPath: string, routes: Map<string, number>): Promise<{ close(): Promise<void> }> {
  const tunnels = new Set<Socket>();
  const server = createServer((client: Socket) => {
    tunnels.add(client);
    client.once('close', () => tunnels.delete(client));
    let head = '';
    const onData = (d: Buffer) => {
      head += d.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 8192) client.destroy();
        return;
      }
      client.off('data', onData);
      const target = /^CONNECT (\S+) HTTP\/1\.[01]\r\n/.exec(head)?.[1];
      const port = target ? routes.get(target) : undefined;
      if (port === undefined) {
        client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
        return;
      }
      const upstream = connect(port, '127.0.0.1');
      upstream.once('connect', () => {
        client.write('HTTP/1.1 200 Connection established\r\n\r\n');
        const rest = Buffer.from(head.slice(end + 4), 'latin1');
        if (rest.length) upstream.write(rest);
        client.pipe(upstream).pipe(client);
      });
      upstream.once('error', () => {
        if (!client.destroyed) client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
      });
      client.once('error', () => upstream.destroy());
      client.once('close', () => upstream.destroy());
    };
    client.on('data', onData);
    client.on('error', () => undefined);
  });
  const close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      tunnels.forEach((t) => t.destroy());
    });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve({ close }));
  });
}

function get(url: string, ca: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, headers: { Authorization: `Bearer ${token}` }, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

interface Proc {
  child: ChildProcess;
  logFile: string;
  exited: Promise<number | null>;
}

function run(args: string[], logFile: string): Proc {
  const child = spawn(CONTROLPLANE, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = createWriteStream(logFile);
  child.stdout!.pipe(out, { end: false });
  child.stderr!.pipe(out, { end: false });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, logFile, exited };
}

const tail = (file: string, n = 40) =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(-n).join('\n') : '(no log)';

async function stopProc(p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const killer = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
  await p.exited;
  clearTimeout(killer);
}

/** Builds the control plane binary if it is missing (cached; the first build takes long). */
export function ensureControlPlane(): void {
  if (!existsSync(CONTROLPLANE)) execFileSync('bash', [join(ROOT, 'scripts/deps/kube-apiserver.sh')], { stdio: 'inherit' });
}

/**
 * Starts etcd and kube-apiserver on free ports. A port is free when picked (freePort binds and
 * releases it), but a peer another test starts at the same time may bind it first: then etcd or
 * the API server exits with "address already in use" and the pair starts again on other ports, at
 * most twice more.
 */
export async function startKubeApiserver(o: StartOptions = {}): Promise<KubeApiserver> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startKubeApiserverOnce(o);
    } catch (e) {
      if (attempt < 3 && /address already in use/i.test(String(e))) continue;
      throw e;
    }
  }
}

async function startKubeApiserverOnce(o: StartOptions): Promise<KubeApiserver> {
  ensureControlPlane();
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'kube-apiserver-'));
  const procs: Proc[] = [];
  const routes = new Map<string, number>();
  let proxy: { close(): Promise<void> } | undefined;
  const stop = async () => {
    for (const p of procs.reverse()) await stopProc(p);
    await proxy?.close();
    process.off('exit', killAll);
    rmSync(dir, { recursive: true, force: true });
  };
  // A crashed test run must not leave the control plane behind.
  const killAll = () => procs.forEach((p) => p.child.kill('SIGKILL'));
  process.once('exit', killAll);

  try {
    makePki(dir);
    const adminToken = randomBytes(24).toString('hex');
    writeFileSync(join(dir, 'tokens.csv'), `${adminToken},test-admin,test-admin,"system:masters"\n`);
    const socket = join(dir, 'egress.sock');
    proxy = await egressProxy(socket, routes);
    writeFileSync(
      join(dir, 'egress.yaml'),
      JSON.stringify({
        apiVersion: 'apiserver.k8s.io/v1beta1',
        kind: 'EgressSelectorConfiguration',
        egressSelections: [{ name: 'cluster', connection: { proxyProtocol: 'HTTPConnect', transport: { uds: { udsName: socket } } } }],
      }),
    );

    const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    procs.push(
      run(
        [
          'etcd', '--name=test', `--data-dir=${join(dir, 'etcd')}`,
          `--listen-client-urls=${etcdUrl}`, `--advertise-client-urls=${etcdUrl}`,
          `--listen-peer-urls=${peerUrl}`, `--initial-advertise-peer-urls=${peerUrl}`, `--initial-cluster=test=${peerUrl}`,
          '--unsafe-no-fsync', '--log-level=warn',
        ],
        join(dir, 'etcd.log'),
      ),
    );
    const p = (f: string) => join(dir, f);
    const apiserver = run(
      [
        'kube-apiserver', `--etcd-servers=${etcdUrl}`,
        '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${apiPort}`, `--cert-dir=${p('certs')}`,
        `--tls-cert-file=${p('apiserver.crt')}`, `--tls-private-key-file=${p('apiserver.key')}`, `--client-ca-file=${p('ca.crt')}`,
        `--token-auth-file=${p('tokens.csv')}`, '--authorization-mode=RBAC',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${p('sa.pub')}`, `--service-account-signing-key-file=${p('sa.key')}`,
        // Only a label for ClusterIP allocation: cluster traffic goes through the egress proxy.
        '--service-cluster-ip-range=10.96.0.0/24',
        `--egress-selector-config-file=${p('egress.yaml')}`,
        // z2jh's user pods have a privileged init container (block-cloud-metadata).
        '--allow-privileged=true',
        '--profiling=false', '--v=1',
        ...(o.apiserverFlags ?? []),
      ],
      p('apiserver.log'),
    );
    procs.push(apiserver);
    const caPem = readFileSync(p('ca.crt'), 'utf8');
    const url = `https://127.0.0.1:${apiPort}`;

    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      for (const q of procs)
        if (q.child.exitCode !== null) throw new Error(`control plane process exited (${q.child.exitCode}):\n${tail(q.logFile)}`);
      const r = await get(`${url}/readyz`, caPem, adminToken).catch(() => undefined);
      if (r?.status === 200) break;
      if (Date.now() > deadline) throw new Error(`kube-apiserver not ready after ${READY_TIMEOUT_MS / 1000}s:\n${r?.body ?? ''}\n${tail(apiserver.logFile)}`);
      await new Promise((r) => setTimeout(r, 250));
    }

    mkdirSync(p('kubeconfigs'));
    const writeKubeconfig = (name: string, token: string, namespace = 'default') => {
      const f = join(dir, 'kubeconfigs', `${name}.yaml`);
      writeFileSync(f, kubeconfig(url, caPem, token, namespace), { mode: 0o600 });
      return f;
    };
    return {
      url,
      caPem,
      adminToken,
      kubeconfigPath: writeKubeconfig('admin', adminToken),
      dir,
      startupSeconds: (Date.now() - started) / 1000,
      writeKubeconfig,
      route: (target, port) => (port === undefined ? routes.delete(target) : routes.set(target, port)),
      log: () => readFileSync(apiserver.logFile, 'utf8'),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

// By hand: start, print how to reach it, stop on Ctrl-C.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const k = await startKubeApiserver();
  console.log(`kube-apiserver ready at ${k.url} in ${k.startupSeconds.toFixed(1)}s`);
  console.log(`export KUBECONFIG=${k.kubeconfigPath}`);
  console.log('Ctrl-C stops it and removes its data.');
  process.once('SIGINT', () => void k.stop().then(() => process.exit(0)));
  process.once('SIGTERM', () => void k.stop().then(() => process.exit(0)));
}
