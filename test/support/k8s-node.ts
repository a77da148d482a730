/**
 * A real one-node Kubernetes cluster on this machine, for test/node (docs/testing-kubernetes.md,
 * "A one-node cluster"): etcd and kube-apiserver (test/k8s/controlplane), kube-controller-manager,
 * kube-scheduler, kubelet and kube-proxy (test/k8s/node), Debian's containerd + runc, the bridge CNI
 * plugin, and images written here without a registry (writeImageTar: the pause image, the tests' own).
 *
 * Every process of the node runs in namespaces of its own, made by
 *   setpriv --pdeathsig KILL unshare --pid --fork --kill-child --mount --net --propagation private --mount-proc nodeinit SOCK
 * - network: the API server (0.0.0.0:6443), pods (10.244.0.0/24 on the bridge cni0), Services
 *   (10.96.0.0/24, kube-proxy's iptables rules) and the node address 10.240.0.1 (on lo) exist only
 *   there; it has no interface to the outside. The test reaches in through nodeinit's HTTP CONNECT
 *   unix socket (`connect`, `forward`, `httpGet`; the admin kubeconfig points at such a forward on
 *   127.0.0.1) or runs commands inside (`exec`).
 * - mount: tmpfs over /run, /var/lib and /var/log, so containerd's netns mounts and runc state,
 *   CNI caches and /var/log/containers never touch the host; regular files over the host-wide
 *   sysctls the kubelet would change (kernel.panic, vm.overcommit_memory, ...).
 * - PID: nodeinit is PID 1. When it dies, the kernel kills every process of the node, containers
 *   included; it dies with the test process (pdeathsig, --kill-child), so a crashed test leaves no
 *   process behind, and the next start removes what is left on disk (temp dir, cgroups).
 * Cgroups (v1, cgroupfs driver) go under /omnisci-k8s-node-<id> in each hierarchy; all data in a temp dir.
 *
 * Node builtins only, so it also runs by hand:
 *   npm exec -- node test/support/k8s-node.ts
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CONTROLPLANE = join(ROOT, '.cache/k8s/controlplane');
export const NODE_BIN = join(ROOT, '.cache/k8s/node');
export const NODE_TOOLS = join(ROOT, '.cache/k8s/node-tools');
export const KUBECTL = join(ROOT, '.cache/helm/v4/kubectl');

export const NODE_NAME = 'k8s-node';
export const NODE_IP = '10.240.0.1';
export const POD_CIDR = '10.244.0.0/24';
export const SERVICE_CIDR = '10.96.0.0/24';
/** Pods resolve `<service>.<namespace>.svc.cluster.local` (and short names, by their search list) at the node address. */
export const CLUSTER_DOMAIN = 'cluster.local';
export const PAUSE_IMAGE = 'omnisci.local/pause:1';
/** test/k8s/node/images/echo (GET / → host name, /healthz, /file?path=); call `echoImage()` to write it. */
export const ECHO_IMAGE = 'omnisci.local/echo:1';
const API_PORT = 6443;
const STALE_PREFIX = 'k8s-node-';
const CGROUP_PREFIX = 'omnisci-k8s-node-';
const READY_TIMEOUT_MS = 180_000;

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface K8sNode {
  /** Temp dir (PKI, configs, data, logs: `<component>.log`), removed by stop(). */
  dir: string;
  /** Admin kubeconfig for this process and its children: https://127.0.0.1:<forwarded port>. */
  kubeconfigPath: string;
  /** Admin kubeconfig for commands run inside the node (`exec`): https://127.0.0.1:6443. */
  nodeKubeconfigPath: string;
  /** The API server, forwarded to this host's loopback. */
  url: string;
  caPem: string;
  adminToken: string;
  /** PID of nodeinit (PID 1 of the node); its namespaces are /proc/<pid>/ns/{net,mnt,pid}. */
  initPid: number;
  /** The node's network namespace: `nsenter --net=<netns> …`. */
  netns: string;
  /** The kubelet's cgroupRoot, a directory of that name in every cgroup hierarchy (removed by stop()). */
  cgroupRoot: string;
  /** The cgroup hierarchies (mount points) this machine has. */
  cgroupMounts: string[];
  /** Seconds from the first process to a Ready node with its default ServiceAccount. */
  startupSeconds: number;
  /** Runs a command in the node's network, mount and PID namespaces (curl, iptables, ctr, kubectl with nodeKubeconfigPath). */
  exec(cmd: string[], o?: { input?: string; timeoutMs?: number }): Promise<ExecResult>;
  /** kubectl (Helm's, scripts/deps/helm.sh) with the admin kubeconfig, asynchronously. */
  kubectl(args: string[], input?: string): Promise<ExecResult>;
  /** A TCP connection to `host:port` made inside the node's network. */
  connect(target: string): Promise<Socket>;
  /** Listens on 127.0.0.1 (`port`, default a free one) and forwards every connection to `target` inside the node. */
  forward(target: string, port?: number): Promise<{ port: number; close(): Promise<void> }>;
  /** A plain-HTTP GET inside the node's network: `http://<ClusterIP or pod IP>:<port>/path`. */
  httpGet(url: string, timeoutMs?: number): Promise<{ status: number; body: string }>;
  /** Imports an image tarball (docker-archive or OCI) into containerd's k8s.io namespace. */
  loadImage(tarPath: string): Promise<void>;
  /** A component's log so far: etcd, apiserver, controller-manager, scheduler, containerd, kubelet, kube-proxy, cluster-dns. */
  log(component: string): string;
  stop(): Promise<void>;
  /** After stop(): seconds of its phases (components, the rest of the namespace via nodeinit, cgroups, temp dir). */
  stopPhases: Record<string, number>;
  /** After stop(): the processes of the node still alive 2 s after nodeinit's SIGTERM (`pid command`), if any. */
  stopLeftovers: string[];
}

export interface StartOptions {
  /** kubelet syncFrequency (default "1m", the kubelet's default): the bound for Secret volume updates. */
  syncFrequency?: string;
  /** Merged into the KubeletConfiguration. */
  kubeletConfig?: Record<string, unknown>;
  apiserverFlags?: string[];
  /** Image tarballs to load before the node starts. */
  images?: string[];
}

// ---------------------------------------------------------------------------------------------
// Images without a registry.

export interface ImageSpec {
  /** Full reference, e.g. "omnisci.local/echo:1" (a dot in the first part: not docker.io). */
  name: string;
  /** Files of the single layer: path in the image (no leading "/"), content or a file to copy, mode (default 0755). */
  files: { path: string; content?: Buffer | string; from?: string; mode?: number }[];
  entrypoint: string[];
  cmd?: string[];
  env?: string[];
  workdir?: string;
  /** "uid[:gid]"; default root. */
  user?: string;
  ports?: number[];
}

function tarHeader(name: string, size: number, mode: number, dir: boolean): Buffer {
  const h = Buffer.alloc(512);
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', name.length - (dir ? 2 : 1));
    [prefix, name] = [name.slice(0, cut), name.slice(cut + 1)];
    if (Buffer.byteLength(name) > 100 || Buffer.byteLength(prefix) > 155) throw new Error(`tar: path too long: ${prefix}/${name}`);
  }
  const put = (s: string, off: number, len: number) => h.write(s, off, len, 'utf8');
  const oct = (n: number, len: number) => n.toString(8).padStart(len - 1, '0') + '\0';
  put(name, 0, 100);
  put(oct(mode, 8), 100, 8);
  put(oct(0, 8), 108, 8);
  put(oct(0, 8), 116, 8);
  put(oct(size, 12), 124, 12);
  put(oct(0, 12), 136, 12); // mtime 0: the same files make the same image
  put('        ', 148, 8);
  put(dir ? '5' : '0', 156, 1);
  put('ustar\0' + '00', 257, 8);
  put('root', 265, 32);
  put('root', 297, 32);
  put(prefix, 345, 155);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return h;
}

/** A ustar archive; names ending in "/" are directories. */
export function tar(entries: { name: string; data?: Buffer; mode?: number }[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const dir = e.name.endsWith('/');
    const data = dir ? Buffer.alloc(0) : (e.data ?? Buffer.alloc(0));
    parts.push(tarHeader(e.name, data.length, e.mode ?? (dir ? 0o755 : 0o644), dir), data);
    if (data.length % 512) parts.push(Buffer.alloc(512 - (data.length % 512)));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/**
 * Writes an image tarball as `docker save` does since Docker 25: an OCI image layout (oci-layout,
 * index.json, blobs/sha256/) plus the classic manifest.json, so `ctr images import`, `podman load`
 * and `docker load` all read it. One uncompressed layer on nothing ("FROM scratch").
 */
export function writeImageTar(out: string, spec: ImageSpec): void {
  const dirs = new Set<string>();
  const entries: { name: string; data?: Buffer; mode?: number }[] = [];
  for (const f of spec.files) {
    const path = f.path.replace(/^\/+/, '');
    const segs = path.split('/');
    for (let i = 1; i < segs.length; i++) {
      const d = segs.slice(0, i).join('/') + '/';
      if (!dirs.has(d)) entries.push({ name: d });
      dirs.add(d);
    }
    entries.push({ name: path, data: f.from !== undefined ? readFileSync(f.from) : Buffer.from(f.content ?? ''), mode: f.mode ?? 0o755 });
  }
  const layer = tar(entries);
  const layerDigest = sha256(layer);
  const created = new Date(0).toISOString();
  const config = JSON.stringify({
    architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
    os: 'linux',
    created,
    config: {
      Entrypoint: spec.entrypoint,
      ...(spec.cmd ? { Cmd: spec.cmd } : {}),
      Env: spec.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      ...(spec.workdir ? { WorkingDir: spec.workdir } : {}),
      ...(spec.user ? { User: spec.user } : {}),
      ...(spec.ports?.length ? { ExposedPorts: Object.fromEntries(spec.ports.map((p) => [`${p}/tcp`, {}])) } : {}),
    },
    rootfs: { type: 'layers', diff_ids: [`sha256:${layerDigest}`] },
    history: [{ created, created_by: 'test/support/k8s-node.ts writeImageTar' }],
  });
  const configDigest = sha256(config);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${configDigest}`, size: Buffer.byteLength(config) },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${layerDigest}`, size: layer.length }],
  });
  const manifestDigest = sha256(manifest);
  const index = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: `sha256:${manifestDigest}`,
      size: Buffer.byteLength(manifest),
      annotations: { 'io.containerd.image.name': spec.name, 'org.opencontainers.image.ref.name': spec.name.slice(spec.name.lastIndexOf(':') + 1) },
    }],
  });
  const blob = (d: string) => `blobs/sha256/${d}`;
  writeFileSync(out, tar([
    { name: 'blobs/' },
    { name: 'blobs/sha256/' },
    { name: blob(layerDigest), data: layer },
    { name: blob(configDigest), data: Buffer.from(config) },
    { name: blob(manifestDigest), data: Buffer.from(manifest) },
    { name: 'oci-layout', data: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
    { name: 'index.json', data: Buffer.from(index) },
    { name: 'manifest.json', data: Buffer.from(JSON.stringify([{ Config: blob(configDigest), RepoTags: [spec.name], Layers: [blob(layerDigest)] }])) },
  ]));
}

/** The pause image (test/k8s/node/images/pause) as a tarball in `dir`. */
export function pauseImage(dir: string): string {
  const out = join(dir, 'pause.tar');
  writeImageTar(out, { name: PAUSE_IMAGE, files: [{ path: 'pause', from: join(NODE_TOOLS, 'pause') }], entrypoint: ['/pause'] });
  return out;
}

/** The echo server image (test/k8s/node/images/echo) as a tarball in `dir`; it runs as 65534 on :8080. */
export function echoImage(dir: string): string {
  ensureBinaries();
  const out = join(dir, 'echo.tar');
  writeImageTar(out, {
    name: ECHO_IMAGE, files: [{ path: 'echo', from: join(NODE_TOOLS, 'echo') }], entrypoint: ['/echo'], user: '65534:65534', ports: [8080],
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/** Builds what is missing (cached; the first build takes long). */
export function ensureBinaries(): void {
  if (!existsSync(CONTROLPLANE)) execFileSync('bash', [join(ROOT, 'scripts/deps/kube-apiserver.sh')], { stdio: 'inherit' });
  if (!existsSync(NODE_BIN) || !existsSync(join(NODE_TOOLS, 'echo'))) execFileSync('bash', [join(ROOT, 'scripts/deps/k8s-node.sh')], { stdio: 'inherit' });
}

/** Why this machine cannot run the node, or undefined. */
/** Polls `fn` every `everyMs` until it returns a value; past `timeoutMs` throws naming `what` (and `detail()`, e.g. the cluster's state). */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number, everyMs = 250, detail?: () => Promise<string>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${detail ? `:\n${await detail().catch((e) => String(e))}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Waits until the pod object has not changed for `quietMs` (its resourceVersion read every second).
 * The kubelet syncs a pod, Secret volumes included, on every update of the pod object, and a young
 * pod's status is still being written: a test that needs the kubelet's periodic sync alone (a Secret
 * update reaching the pod only then) starts from a quiet pod.
 */
export async function podQuiet(node: Pick<K8sNode, 'kubectl'>, pod: string, quietMs: number, timeoutMs = 120_000): Promise<void> {
  const version = async () => (await node.kubectl(['get', 'pod', pod, '-o', 'jsonpath={.metadata.resourceVersion}'])).stdout;
  const deadline = Date.now() + timeoutMs;
  let last = await version();
  let since = Date.now();
  while (Date.now() - since < quietMs) {
    if (Date.now() > deadline) throw new Error(`pod ${pod} did not stay unchanged for ${quietMs / 1000} s within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 1000));
    const now = await version();
    if (now !== last) [last, since] = [now, Date.now()];
  }
}

export function missingPrerequisites(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root (namespaces, mounts, cgroups, iptables)';
  for (const bin of ['containerd', 'containerd-shim-runc-v2', 'runc', 'ctr', 'iptables', 'nsenter', 'unshare', 'setpriv', 'openssl', 'ip']) {
    try {
      execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'pipe' });
    } catch {
      return `${bin} not found (scripts/deps/k8s-node.sh installs the Debian packages)`;
    }
  }
  if (!existsSync('/usr/lib/cni/bridge')) return '/usr/lib/cni/bridge missing (containernetworking-plugins)';
  if (!existsSync('/sys/fs/cgroup/memory') && !existsSync('/sys/fs/cgroup/cgroup.controllers')) return 'no cgroup hierarchy';
  return undefined;
}

/** `pid command` of every live descendant of `root` (by parent links in /proc). */
function descendants(root: number): string[] {
  const parent = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone */
    }
  }
  const under = (pid: number): boolean => {
    for (let p = parent.get(pid), n = 0; p !== undefined && p > 1 && n < 64; p = parent.get(p), n++) if (p === root) return true;
    return false;
  };
  return [...parent.keys()].filter(under).map((pid) => {
    try {
      return `${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim().slice(0, 120)}`;
    } catch {
      return `${pid} (gone)`;
    }
  });
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'pipe' });
}

/** CA, the API server's serving certificate, its kubelet client certificate, the service-account key pair. */
function makePki(dir: string): void {
  const p = (f: string) => join(dir, f);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '2', '-subj', '/CN=omnisci-handoff-node-ca']);
  const sign = (name: string, subj: string, ext: string) => {
    openssl(['req', ...ec, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', subj]);
    writeFileSync(p(`${name}.ext`), ext);
    openssl(['x509', '-req', '-in', p(`${name}.csr`), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial',
      '-out', p(`${name}.crt`), '-days', '2', '-extfile', p(`${name}.ext`)]);
  };
  sign('apiserver', '/CN=kube-apiserver',
    `subjectAltName=IP:127.0.0.1,IP:${NODE_IP},IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,` +
      'DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n');
  sign('apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client', 'extendedKeyUsage=clientAuth\n');
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', p('sa.key')]);
  openssl(['pkey', '-in', p('sa.key'), '-pubout', '-out', p('sa.pub')]);
}

function kubeconfig(server: string, caPem: string, token: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'node', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    users: [{ name: 'user', user: { token } }],
    contexts: [{ name: 'node', context: { cluster: 'node', user: 'user', namespace: 'default' } }],
    'current-context': 'node',
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const tail = (file: string, n = 40) =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(-n).join('\n') : '(no log)';

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The cgroup hierarchies (v1 ones and a v2 one, hybrid here), from /proc/self/mountinfo. */
function cgroupMounts(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' - '))
    .filter(([, fs]) => fs?.startsWith('cgroup ') || fs?.startsWith('cgroup2 '))
    .map(([pre]) => pre!.split(' ')[4]!);
}

/** rmdir a cgroup tree depth-first; true if it is gone. */
function removeCgroup(path: string): boolean {
  if (!existsSync(path)) return true;
  for (const e of readdirSync(path, { withFileTypes: true })) if (e.isDirectory()) removeCgroup(join(path, e.name));
  try {
    rmdirSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Removes temp dirs and cgroups of nodes whose test process is gone (a crash, a SIGKILL). */
function sweepStale(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(STALE_PREFIX)) continue;
    const dir = join(tmpdir(), name);
    const pid = (f: string) => (existsSync(join(dir, f)) ? Number(readFileSync(join(dir, f), 'utf8')) : 0);
    const owner = pid('owner.pid');
    // No owner.pid yet: a node being created right now, unless the dir is old.
    if (owner ? alive(owner) : statSync(dir).mtimeMs > Date.now() - 60_000) continue;
    if (pid('init.pid') && alive(pid('init.pid'))) continue;
    for (const m of cgroupMounts()) removeCgroup(join(m, CGROUP_PREFIX + name.slice(STALE_PREFIX.length)));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Opens a CONNECT tunnel through nodeinit's unix socket. */
function tunnel(socketPath: string, target: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect(socketPath);
    let head = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.off('data', onData);
      const status = /^HTTP\/1\.[01] (\d+)/.exec(head.toString('latin1'))?.[1];
      if (status !== '200') {
        s.destroy();
        reject(new Error(`connect ${target} in the node: ${head.toString('utf8').split('\r\n').slice(-1)[0] || head.toString('latin1').split('\r\n')[0]}`));
        return;
      }
      const rest = head.subarray(end + 4);
      if (rest.length) s.unshift(rest);
      resolve(s);
    };
    s.on('data', onData);
    s.once('error', reject);
    s.once('connect', () => s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
  });
}

function collect(child: ChildProcess, input?: string, timeoutMs = 120_000): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin!.end(input ?? '');
  });
}

// ---------------------------------------------------------------------------------------------
// The node.

interface Proc {
  name: string;
  child: ChildProcess;
  logFile: string;
}

export async function startK8sNode(o: StartOptions = {}): Promise<K8sNode> {
  const why = missingPrerequisites();
  if (why) throw new Error(`cannot run a node here: ${why}`);
  ensureBinaries();
  sweepStale();
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), STALE_PREFIX));
  const id = basename(dir).slice(STALE_PREFIX.length);
  const cgroupRoot = `/${CGROUP_PREFIX}${id}`;
  const p = (...f: string[]) => join(dir, ...f);
  writeFileSync(p('owner.pid'), String(process.pid));

  const procs: Proc[] = [];
  /** Each forward's close: stops listening and ends its connections. */
  const forwards = new Set<() => Promise<void>>();
  let holder: ChildProcess | undefined;
  let initPid = 0;
  let stopped = false;
  const stopPhases: Record<string, number> = {};
  const stopLeftovers: string[] = [];

  // A test process that exits without stop() takes the node with it: SIGKILL to the holder kills
  // nodeinit (--kill-child) and so the whole PID namespace; a detached shell removes the rest.
  const onExit = () => {
    if (holder?.pid) signal(holder.pid, 'SIGKILL');
    const cg = cgroupMounts().map((m) => `'${join(m, cgroupRoot)}'`).join(' ');
    spawn('sh', ['-c', `sleep 2; for c in ${cg}; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null; done; rm -rf '${dir}'`],
      { detached: true, stdio: 'ignore' }).unref();
  };
  process.once('exit', onExit);

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.off('exit', onExit);
    for (const close of [...forwards]) void close();
    let t0 = Date.now();
    const phase = (name: string) => {
      stopPhases[name] = Math.round((Date.now() - t0) / 100) / 10;
      t0 = Date.now();
    };
    // Everything but etcd first: kube-apiserver waits ~10 s on SIGTERM when etcd is already gone.
    const running = (q: Proc) => q.child.exitCode === null && q.child.signalCode === null;
    const first = procs.filter((q) => q.name !== 'etcd' && running(q));
    for (const q of first) {
      // nsenter forks: the component is its child.
      const children = `/proc/${q.child.pid}/task/${q.child.pid}/children`;
      const pid = Number((existsSync(children) ? readFileSync(children, 'utf8') : '').trim().split(' ')[0]);
      if (pid) signal(pid, 'SIGTERM');
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(first.map((q) => (running(q) ? new Promise((r) => q.child.once('exit', r)) : undefined))),
      new Promise((r) => (timer = setTimeout(r, 5000))),
    ]);
    clearTimeout(timer);
    phase('components');
    if (holder && holder.exitCode === null && holder.signalCode === null) {
      const gone = new Promise((r) => holder!.once('exit', r));
      // nodeinit sends SIGTERM to the rest (etcd, shims, containers), SIGKILL after 10 s; unshare ignores SIGTERM.
      if (initPid) signal(initPid, 'SIGTERM');
      const killer = setTimeout(() => holder!.kill('SIGKILL'), 15_000);
      const look = setTimeout(() => stopLeftovers.push(...descendants(initPid)), 2000);
      await gone;
      clearTimeout(look);
      clearTimeout(killer);
    }
    for (const q of procs) if (q.child.exitCode === null && q.child.signalCode === null) q.child.kill('SIGKILL');
    phase('namespace');
    for (let i = 0; i < 50; i++) {
      if (cgroupMounts().every((m) => removeCgroup(join(m, cgroupRoot)))) break;
      await sleep(100);
    }
    phase('cgroups');
    rmSync(dir, { recursive: true, force: true });
    phase('tempDir');
  };

  const nsenter = (cmd: string[]) => ['-t', String(initPid), '-p', '-m', '-n', '--', ...cmd];
  const run = (name: string, cmd: string[]): Proc => {
    const logFile = p(`${name}.log`);
    const fd = openSync(logFile, 'a');
    const child = spawn('nsenter', nsenter(cmd), { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const proc = { name, child, logFile };
    procs.push(proc);
    return proc;
  };
  const exec = (cmd: string[], e: { input?: string; timeoutMs?: number } = {}) =>
    collect(spawn('nsenter', nsenter(cmd), { stdio: 'pipe' }), e.input, e.timeoutMs);
  const sh = async (script: string) => {
    const r = await exec(['sh', '-ec', script]);
    if (r.code !== 0) throw new Error(`node setup failed (${r.code}):\n${script}\n${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const failed = () => {
    for (const q of procs) if (q.child.exitCode !== null) return `${q.name} exited (${q.child.exitCode}):\n${tail(q.logFile)}`;
    return undefined;
  };

  try {
    // PKI, tokens, kubeconfigs.
    mkdirSync(p('pki'));
    makePki(p('pki'));
    const caPem = readFileSync(p('pki', 'ca.crt'), 'utf8');
    const tok = () => randomBytes(24).toString('hex');
    const tokens = {
      admin: [tok(), 'test-admin', 'system:masters'],
      kubelet: [tok(), `system:node:${NODE_NAME}`, 'system:nodes'],
      'controller-manager': [tok(), 'system:kube-controller-manager', ''],
      scheduler: [tok(), 'system:kube-scheduler', ''],
      'kube-proxy': [tok(), 'system:kube-proxy', ''],
    } as const;
    writeFileSync(p('pki', 'tokens.csv'), Object.values(tokens).map(([t, u, g]) => `${t},${u},${u}${g ? `,"${g}"` : ''}`).join('\n') + '\n');
    mkdirSync(p('kubeconfigs'));
    const inNode = `https://127.0.0.1:${API_PORT}`;
    for (const [name, [token]] of Object.entries(tokens)) writeFileSync(p('kubeconfigs', `${name}.yaml`), kubeconfig(inNode, caPem, token), { mode: 0o600 });
    const adminToken = tokens.admin[0];

    // The namespaces: nodeinit is PID 1 and serves the CONNECT socket.
    const socketPath = p('node.sock');
    const initLog = openSync(p('nodeinit.log'), 'a');
    holder = spawn('setpriv', ['--pdeathsig', 'KILL', 'unshare', '--pid', '--fork', '--kill-child', '--mount', '--net',
      '--propagation', 'private', '--mount-proc', join(NODE_TOOLS, 'nodeinit'), socketPath], { stdio: ['ignore', initLog, initLog] });
    closeSync(initLog);
    for (let i = 0; !initPid; i++) {
      if (holder.exitCode !== null || i > 100) throw new Error(`unshare failed (${holder.exitCode})`);
      const children = `/proc/${holder.pid}/task/${holder.pid}/children`;
      initPid = Number((existsSync(children) ? readFileSync(children, 'utf8') : '').trim().split(' ')[0]) || 0;
      if (!initPid || !existsSync(socketPath)) {
        initPid = 0;
        await sleep(50);
      }
    }
    writeFileSync(p('init.pid'), String(initPid));

    // Inside: loopback and the node address, forwarding, private /run, /var/lib, /var/log, masked sysctls, cgroups.
    mkdirSync(p('sysctl'));
    writeFileSync(p('resolv.conf'), '# no upstream DNS: the node never queries the host\'s resolvers (pods use the cluster DNS)\n');
    writeFileSync(p('hosts'), `127.0.0.1 localhost\n::1 localhost\n${NODE_IP} ${NODE_NAME}\n`);
    const masked = ['vm/overcommit_memory', 'vm/panic_on_oom', 'kernel/panic', 'kernel/panic_on_oops', 'kernel/keys/root_maxkeys', 'kernel/keys/root_maxbytes'];
    await sh([
      'ip link set lo up',
      // The node's interface: a bridge without ports (this kernel has no dummy driver). It holds the
      // node address and the route to the Service range, without which connect() to a ClusterIP from
      // the node fails (ENETUNREACH) before kube-proxy's OUTPUT DNAT rule is reached.
      'ip link add node0 type bridge',
      'ip link set node0 up',
      `ip addr add ${NODE_IP}/32 dev node0`,
      `ip route add ${SERVICE_CIDR} dev node0 src ${NODE_IP}`,
      'sysctl -qw net.ipv4.ip_forward=1',
      'sysctl -qw net.bridge.bridge-nf-call-iptables=1',
      'mount -t tmpfs -o mode=755 node-run /run',
      'mount -t tmpfs -o mode=755 node-var-lib /var/lib',
      'mount -t tmpfs -o mode=755 node-var-log /var/log',
      // No DNS: the node's processes resolve nothing through the host's resolvers ("k8s-node" is in hosts).
      `mount --bind ${p('resolv.conf')} /etc/resolv.conf`,
      `mount --bind ${p('hosts')} /etc/hosts`,
      ...masked.map((f) => {
        const file = p('sysctl', f.replace(/\//g, '.'));
        return `cat /proc/sys/${f} > ${file} && mount --bind ${file} /proc/sys/${f}`;
      }),
    ].join('\n'));
    for (const m of cgroupMounts()) {
      mkdirSync(join(m, cgroupRoot), { recursive: true });
      // A new v1 cpuset starts empty: give it its parent's CPUs and memory nodes.
      for (const f of ['cpuset.cpus', 'cpuset.mems'])
        if (existsSync(join(m, f))) writeFileSync(join(m, cgroupRoot, f), readFileSync(join(m, f)));
    }

    // etcd, kube-apiserver, containerd.
    const pki = (f: string) => p('pki', f);
    run('etcd', [CONTROLPLANE, 'etcd', '--name=node', `--data-dir=${p('etcd')}`,
      '--listen-client-urls=http://127.0.0.1:2379', '--advertise-client-urls=http://127.0.0.1:2379',
      '--listen-peer-urls=http://127.0.0.1:2380', '--initial-advertise-peer-urls=http://127.0.0.1:2380',
      '--initial-cluster=node=http://127.0.0.1:2380', '--unsafe-no-fsync', '--log-level=warn']);
    run('apiserver', [CONTROLPLANE, 'kube-apiserver', '--etcd-servers=http://127.0.0.1:2379',
      '--bind-address=0.0.0.0', `--advertise-address=${NODE_IP}`, `--secure-port=${API_PORT}`, `--cert-dir=${p('apiserver-certs')}`,
      `--tls-cert-file=${pki('apiserver.crt')}`, `--tls-private-key-file=${pki('apiserver.key')}`, `--client-ca-file=${pki('ca.crt')}`,
      // Reach the kubelet (logs, exec) at the node address, not by resolving the node's name.
      '--kubelet-preferred-address-types=InternalIP',
      `--kubelet-client-certificate=${pki('apiserver-kubelet-client.crt')}`, `--kubelet-client-key=${pki('apiserver-kubelet-client.key')}`,
      `--token-auth-file=${pki('tokens.csv')}`, '--authorization-mode=Node,RBAC', '--enable-admission-plugins=NodeRestriction',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki('sa.pub')}`, `--service-account-signing-key-file=${pki('sa.key')}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`, '--allow-privileged=true', '--profiling=false', '--v=1',
      ...(o.apiserverFlags ?? [])]);

    mkdirSync(p('cni', 'net.d'), { recursive: true });
    writeFileSync(p('cni', 'net.d', '10-bridge.conflist'), JSON.stringify({
      cniVersion: '1.0.0',
      name: 'node',
      plugins: [
        {
          type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: false, hairpinMode: true,
          ipam: { type: 'host-local', ranges: [[{ subnet: POD_CIDR }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: p('cni', 'ipam') },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    }));
    const containerdSock = p('containerd', 'containerd.sock');
    mkdirSync(p('containerd'));
    writeFileSync(p('containerd', 'config.toml'), [
      'version = 2',
      `root = "${p('containerd', 'root')}"`,
      `state = "${p('containerd', 'state')}"`,
      'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]',
      '[grpc]',
      `  address = "${containerdSock}"`,
      '[ttrpc]',
      `  address = "${p('containerd', 'ttrpc.sock')}"`,
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${p('containerd', 'opt')}"`,
      '[plugins."io.containerd.grpc.v1.cri"]',
      `  sandbox_image = "${PAUSE_IMAGE}"`,
      '  enable_selinux = false',
      // This machine's capability bounding set lacks CAP_SYS_RESOURCE: runc cannot lower a container's
      // oom_score_adj (the sandbox gets -998) and fails; clamp it to containerd's own instead.
      '  restrict_oom_score_adj = true',
      '  stream_server_address = "127.0.0.1"',
      '[plugins."io.containerd.grpc.v1.cri".containerd]',
      '  snapshotter = "overlayfs"',
      '  default_runtime_name = "runc"',
      '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
      '  runtime_type = "io.containerd.runc.v2"',
      '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
      '  SystemdCgroup = false',
      '[plugins."io.containerd.grpc.v1.cri".cni]',
      '  bin_dir = "/usr/lib/cni"',
      `  conf_dir = "${p('cni', 'net.d')}"`,
      '',
    ].join('\n'));
    run('containerd', ['containerd', '--config', p('containerd', 'config.toml'), '--log-level', 'warn']);

    // This process reaches the API server through a forward; kubectl, helm and clients use that.
    const forward = async (target: string, port = 0) => {
      const connections = new Set<Socket>();
      const server = createServer((c) => {
        connections.add(c);
        c.on('close', () => connections.delete(c));
        c.on('error', () => undefined);
        tunnel(socketPath, target).then(
          (up) => {
            up.on('error', () => c.destroy());
            // Once the node's end is gone, c is unpiped and paused: it would never read its client's
            // end and would stay open (and jest with it). It goes once what it still has is sent.
            up.on('close', () => c.destroySoon());
            c.on('close', () => up.destroy());
            c.pipe(up).pipe(c);
          },
          () => c.destroy(),
        );
      });
      const close = () => new Promise<void>((r) => {
        forwards.delete(close);
        server.close(() => r());
        for (const c of connections) c.destroy();
      });
      forwards.add(close);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => resolve());
      });
      return { port: (server.address() as AddressInfo).port, close };
    };
    const api = await forward(`127.0.0.1:${API_PORT}`);
    const url = `https://127.0.0.1:${api.port}`;
    const kubeconfigPath = p('kubeconfigs', 'admin-host.yaml');
    writeFileSync(kubeconfigPath, kubeconfig(url, caPem, adminToken), { mode: 0o600 });

    const get = (path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpsRequest(`${url}${path}`, { ca: caPem, headers: { Authorization: `Bearer ${adminToken}` }, timeout: 5000 }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
        req.end();
      });
    const until = async (what: string, test: () => Promise<boolean>, log: string) => {
      const deadline = Date.now() + READY_TIMEOUT_MS;
      while (!(await test().catch(() => false))) {
        const f = failed();
        if (f) throw new Error(f);
        if (Date.now() > deadline) throw new Error(`${what} after ${READY_TIMEOUT_MS / 1000}s:\n${tail(p(`${log}.log`))}`);
        await sleep(250);
      }
    };
    const ctr = ['ctr', '--address', containerdSock, '--namespace', 'k8s.io'];
    const loadImage = async (tarPath: string) => {
      const r = await exec([...ctr, 'images', 'import', tarPath]);
      if (r.code !== 0) throw new Error(`ctr images import ${tarPath} failed (${r.code}): ${r.stderr}${r.stdout}`);
    };

    await until('containerd not ready', async () => (await exec([...ctr, 'version'], { timeoutMs: 5000 })).code === 0, 'containerd');
    await loadImage(pauseImage(dir));
    for (const image of o.images ?? []) await loadImage(image);
    await until('kube-apiserver not ready', async () => (await get('/readyz')).status === 200, 'apiserver');

    // The rest of the control plane and the node.
    const kc = (n: string) => p('kubeconfigs', `${n}.yaml`);
    run('controller-manager', [NODE_BIN, 'kube-controller-manager', `--kubeconfig=${kc('controller-manager')}`,
      `--authentication-kubeconfig=${kc('controller-manager')}`, `--authorization-kubeconfig=${kc('controller-manager')}`,
      '--leader-elect=false', '--use-service-account-credentials=true', `--service-account-private-key-file=${pki('sa.key')}`,
      `--root-ca-file=${pki('ca.crt')}`, `--cluster-signing-cert-file=${pki('ca.crt')}`, `--cluster-signing-key-file=${pki('ca.key')}`,
      `--flex-volume-plugin-dir=${p('controller-manager-flex')}`, // default: /usr/libexec/kubernetes/… on the host
      '--bind-address=127.0.0.1', '--profiling=false', '--v=1']);
    run('scheduler', [NODE_BIN, 'kube-scheduler', `--kubeconfig=${kc('scheduler')}`,
      `--authentication-kubeconfig=${kc('scheduler')}`, `--authorization-kubeconfig=${kc('scheduler')}`,
      '--leader-elect=false', '--bind-address=127.0.0.1', '--profiling=false', '--v=1']);

    writeFileSync(p('kubelet.yaml'), JSON.stringify({
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      // Kubernetes >= 1.35 refuses cgroup v1 unless told; this machine has v1 (hybrid).
      failCgroupV1: false,
      cgroupDriver: 'cgroupfs',
      cgroupRoot,
      containerRuntimeEndpoint: `unix://${containerdSock}`,
      address: '0.0.0.0',
      port: 10250,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: pki('ca.crt') } },
      authorization: { mode: 'Webhook' },
      resolvConf: p('resolv.conf'),
      // The cluster DNS below (`node cluster-dns`) on the node address: pods find Services by name.
      clusterDNS: [NODE_IP],
      clusterDomain: CLUSTER_DOMAIN,
      hairpinMode: 'hairpin-veth',
      syncFrequency: o.syncFrequency ?? '1m',
      podLogsDir: p('pod-logs'),
      volumePluginDir: p('kubelet', 'volume-plugins'), // default: /usr/libexec/kubernetes/kubelet-plugins/volume/exec on the host
      // Plenty of disk, never evict or collect images in a test.
      evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'nodefs.inodesFree': '1%', 'imagefs.available': '1%' },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      failSwapOn: false,
      protectKernelDefaults: false, // the sysctls it sets are masked in the node's mount namespace
      serializeImagePulls: false,
      ...(o.kubeletConfig ?? {}),
    }));
    run('kubelet', [NODE_BIN, 'kubelet', `--config=${p('kubelet.yaml')}`, `--kubeconfig=${kc('kubelet')}`,
      `--root-dir=${p('kubelet')}`, `--cert-dir=${p('kubelet', 'pki')}`, `--hostname-override=${NODE_NAME}`, `--node-ip=${NODE_IP}`, '--v=1']);

    writeFileSync(p('kube-proxy.yaml'), JSON.stringify({
      apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
      kind: 'KubeProxyConfiguration',
      clientConnection: { kubeconfig: kc('kube-proxy') },
      mode: 'iptables',
      hostnameOverride: NODE_NAME,
      clusterCIDR: POD_CIDR,
      bindAddress: '0.0.0.0',
      healthzBindAddress: '127.0.0.1:10256',
      metricsBindAddress: '127.0.0.1:10249',
      // Leave the host's conntrack table size and timeouts alone.
      conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
      iptables: { localhostNodePorts: false },
    }));
    run('kube-proxy', [NODE_BIN, 'kube-proxy', `--config=${p('kube-proxy.yaml')}`, '--v=1']);
    // Cluster DNS for Services (test/k8s/node/dns.go), as kube-proxy may list and watch them.
    run('cluster-dns', [NODE_BIN, 'cluster-dns', `--kubeconfig=${kc('kube-proxy')}`, `--listen=${NODE_IP}:53`, `--domain=${CLUSTER_DOMAIN}`]);

    await until('node not Ready', async () => {
      const r = await get(`/api/v1/nodes/${NODE_NAME}`);
      const node = r.status === 200 ? JSON.parse(r.body) : undefined;
      return node?.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True') ?? false;
    }, 'kubelet');
    await until('no default ServiceAccount', async () => (await get('/api/v1/namespaces/default/serviceaccounts/default')).status === 200, 'controller-manager');
    await until('cluster DNS not serving', async () => readFileSync(p('cluster-dns.log'), 'utf8').includes('serving '), 'cluster-dns');
    await until('kube-proxy not healthy', async () => {
      const s = await tunnel(socketPath, '127.0.0.1:10256');
      s.destroy();
      return true;
    }, 'kube-proxy');

    writeFileSync(p('kubeconfigs', 'admin-node.yaml'), kubeconfig(inNode, caPem, adminToken), { mode: 0o600 });
    const connect = (target: string) => tunnel(socketPath, target);
    return {
      dir,
      kubeconfigPath,
      nodeKubeconfigPath: p('kubeconfigs', 'admin-node.yaml'),
      url,
      caPem,
      adminToken,
      initPid,
      netns: `/proc/${initPid}/ns/net`,
      cgroupRoot,
      cgroupMounts: cgroupMounts(),
      startupSeconds: (Date.now() - started) / 1000,
      exec,
      kubectl: (args, input) => {
        if (!existsSync(KUBECTL)) execFileSync('bash', [join(ROOT, 'scripts/deps/helm.sh')], { stdio: 'inherit' });
        return collect(spawn(KUBECTL, [`--kubeconfig=${kubeconfigPath}`, ...args], { stdio: 'pipe' }), input);
      },
      connect,
      forward,
      httpGet: async (target, timeoutMs = 10_000) => {
        const u = new URL(target);
        const sock = await connect(`${u.hostname}:${u.port || 80}`);
        return new Promise((resolve, reject) => {
          const req = httpRequest({ createConnection: () => sock, host: u.hostname, path: u.pathname + u.search, timeout: timeoutMs,
            headers: { Host: u.host, Connection: 'close' } }, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          });
          req.on('timeout', () => req.destroy(new Error(`GET ${target}: timeout`)));
          req.on('error', reject);
          req.end();
        });
      },
      loadImage,
      log: (component) => (existsSync(p(`${component}.log`)) ? readFileSync(p(`${component}.log`), 'utf8') : ''),
      stop,
      stopPhases,
      stopLeftovers,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

// By hand: start, print how to reach it, stop on Ctrl-C.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const n = await startK8sNode();
  await n.loadImage(echoImage(n.dir));
  console.log(`one-node cluster ready in ${n.startupSeconds.toFixed(1)}s (data and logs: ${n.dir})`);
  console.log(`export KUBECONFIG=${n.kubeconfigPath}`);
  console.log(`inside the node: nsenter -t ${n.initPid} -p -m -n -- sh   (KUBECONFIG=${n.nodeKubeconfigPath})`);
  console.log(`image ${ECHO_IMAGE} is loaded; Ctrl-C stops the node and removes everything.`);
  const bye = () => void n.stop().then(() => process.exit(0));
  process.once('SIGINT', bye);
  process.once('SIGTERM', bye);
}
