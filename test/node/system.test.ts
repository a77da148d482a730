/**
 * Issue 16 on the real one-node cluster (test/support/k8s-node.ts): the Helm chart with the image the
 * Dockerfile builds, then JupyterHub 5 + KubeSpawner 7 spawning a real single-user pod from
 * images/singleuser/Containerfile (jupyterlab-omnisci 3.0.0 on notebook 6), the session handed over
 * through the service for real.
 *
 * - The images are built with podman (test/system/podman.ts, layer-cached), `podman save`d and loaded
 *   into the node's containerd (pullPolicy Never: nothing is ever pulled).
 * - The hub and its configurable-http-proxy run as processes inside the node's network namespace
 *   (no cluster DNS: the service reaches the hub API at the node address 10.240.0.1:8081, the
 *   single-user pod reaches it at the same address through KubeSpawner's hub_connect_url, the proxy
 *   reaches pods at their IPs). KubeSpawner uses the admin kubeconfig for commands in the node.
 * - Everything the test sends goes through loopback forwards into the node (the Service's ClusterIP,
 *   the proxy, the hub API); stop() of the node removes every process, container and file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AUDIENCE, HMAC_SECRET, ISSUER, TYP, hmacKey, mint, postToken, randomSessionId } from '../support/core.js';
import { CHART, HELMS, ensureHelm, runTool } from '../support/helm.js';
import { HUB_VENV, hubInstalled } from '../support/jupyterhub.js';
import { missingPrerequisites, NODE_IP, startK8sNode, type K8sNode } from '../support/k8s-node.js';
import { ROOT } from '../support/root.js';
import { BASE_IMAGES, build, ensureBaseImages, podman, podmanOk } from '../system/podman.js';

const SERVICE_IMAGE = 'localhost/omnisci-handoff-test/service:node';
const SINGLEUSER_IMAGE = 'localhost/omnisci-handoff-test/singleuser:node';
const RELEASE = 'oh';
const FULLNAME = 'oh-omnisci-handoff';
const SERVICE_NAME = 'omnisci-handoff';
const BASE_PATH = `/services/${SERVICE_NAME}/`;
const HUB_PORT = 8081;
const PROXY_PORT = 8000;
const USER = 'alice';
const connection = { protocol: 'https', host: 'heavy.db.test', port: 6278 } as const;

async function whyNot(): Promise<string | undefined> {
  const node = missingPrerequisites();
  if (node) return node;
  if (!hubInstalled()) return 'JupyterHub is not installed (scripts/deps/jupyterhub.sh)';
  if (!existsSync(join(HUB_VENV, 'lib/python3.11/site-packages/kubespawner'))) return 'KubeSpawner is not installed in .cache/venv-hub';
  try {
    if ((await podman('--version')).code !== 0) return 'podman does not run';
  } catch {
    return 'podman not found (scripts/deps/podman.sh)';
  }
  return undefined;
}
const why = await whyNot();
const suite = why ? describe.skip : describe;
if (why) console.warn(`test/node/system.test.ts skipped: ${why}`);

let node: K8sNode;
let tmp: string;
let hub: ChildProcess | undefined;
const hubTokens = { service: randomBytes(24).toString('hex'), admin: randomBytes(24).toString('hex') };
let hubApi: string; // http://127.0.0.1:<forward>/hub/api
let proxyUrl: string; // http://127.0.0.1:<forward>
const times: Record<string, number> = {};
const seconds = (t0: number) => Math.round((Date.now() - t0) / 100) / 10;

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await node.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}
const apply = (...objects: object[]) => kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number, everyMs = 250, detail?: () => Promise<string>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${detail ? `:\n${await detail().catch((e) => String(e))}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

interface Pod {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string>; deletionTimestamp?: string };
  spec: {
    containers: { name: string; env?: { name: string; value?: string; valueFrom?: unknown }[]; volumeMounts?: { name: string; mountPath: string }[]; readinessProbe?: { httpGet?: { port: number | string; path: string } }; ports?: { name?: string; containerPort: number }[] }[];
    volumes?: { name: string; secret?: { secretName: string }; configMap?: { name: string } }[];
  };
  status: { podIP?: string; conditions?: { type: string; status: string }[] };
}
const ready = (p: Pod) => !p.metadata.deletionTimestamp && !!p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
const pods = async (selector: string): Promise<Pod[]> => JSON.parse(await kubectl(['get', 'pods', '-l', selector, '-o', 'json'])).items;

const hubLog = () => (existsSync(join(tmp, 'hub', 'hub.log')) ? readFileSync(join(tmp, 'hub', 'hub.log'), 'utf8').split('\n').slice(-40).join('\n') : '(no hub log)');
const serviceLogs = async () => (await node.kubectl(['logs', '-l', 'app.kubernetes.io/name=omnisci-handoff', '--tail=30', '--prefix'])).stdout;

async function hubAdmin(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(`${hubApi}${path}`, {
    method,
    headers: { Authorization: `token ${hubTokens.admin}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? null : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : undefined };
}

/** A GET on a new loopback connection (no keep-alive), never following redirects. */
function getFresh(port: string, path: string, cookie: string): Promise<{ status: number; location?: string }> {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port: Number(port), path, agent: false, headers: { Cookie: cookie, Connection: 'close' }, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ...(res.headers.location ? { location: res.headers.location } : {}) }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timeout`)));
    req.on('error', reject);
  });
}

/** podman save of a built image into `tmp`, for loadImage. */
async function saveImage(image: string, file: string): Promise<string> {
  const out = join(tmp, file);
  await podmanOk('save', '--format', 'docker-archive', '-o', out, image);
  return out;
}

/** The hub (KubeSpawner, dummy authenticator) and its proxy as processes in the node's network namespace. */
async function startHubInNode(): Promise<void> {
  const dir = join(tmp, 'hub');
  rmSync(dir, { recursive: true, force: true });
  const py = (v: unknown) => JSON.stringify(v);
  const config = `
c = get_config()
c.JupyterHub.ip = ${py(NODE_IP)}
c.JupyterHub.port = ${PROXY_PORT}
c.JupyterHub.hub_ip = '0.0.0.0'
c.JupyterHub.hub_port = ${HUB_PORT}
c.JupyterHub.hub_connect_ip = ${py(NODE_IP)}
c.JupyterHub.db_url = ${py(`sqlite:///${join(dir, 'jupyterhub.sqlite')}`)}
c.JupyterHub.cookie_secret_file = ${py(join(dir, 'cookie_secret'))}
c.JupyterHub.pid_file = ${py(join(dir, 'jupyterhub.pid'))}
c.JupyterHub.cleanup_servers = False
c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:8001'
c.ConfigurableHTTPProxy.command = [${py(join(ROOT, 'node_modules/node/bin/node'))}, ${py(join(ROOT, 'node_modules/configurable-http-proxy/bin/configurable-http-proxy'))}]
c.ConfigurableHTTPProxy.auth_token = ${py(randomBytes(16).toString('hex'))}
c.JupyterHub.authenticator_class = 'dummy'
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = 'kubespawner.KubeSpawner'
c.KubeSpawner.namespace = 'default'
c.KubeSpawner.image = ${py(SINGLEUSER_IMAGE)}
c.KubeSpawner.image_pull_policy = 'Never'
c.KubeSpawner.hub_connect_url = ${py(`http://${NODE_IP}:${HUB_PORT}`)}
c.KubeSpawner.storage_pvc_ensure = False
c.KubeSpawner.fs_gid = 100
c.KubeSpawner.start_timeout = 180
c.KubeSpawner.http_timeout = 120
c.JupyterHub.services = [
    {'name': ${py(SERVICE_NAME)}, 'api_token': ${py(hubTokens.service)}},
    {'name': 'test-admin', 'api_token': ${py(hubTokens.admin)}},
]
c.JupyterHub.load_roles = [
    {'name': 'omnisci-handoff-role', 'scopes': ['servers'], 'services': [${py(SERVICE_NAME)}]},
    {'name': 'test-admin-role', 'scopes': ['admin:users', 'admin:servers', 'list:users', 'tokens'], 'services': ['test-admin']},
]
`;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'jupyterhub_config.py'), config);
  const log = openSync(join(dir, 'hub.log'), 'a');
  hub = spawn('nsenter', ['-t', String(node.initPid), '-p', '-m', '-n', '--', 'env',
    `KUBECONFIG=${node.nodeKubeconfigPath}`, `PATH=${join(HUB_VENV, 'bin')}:/usr/local/bin:/usr/bin:/bin`, `HOME=${dir}`,
    join(HUB_VENV, 'bin/jupyterhub'), '-f', join(dir, 'jupyterhub_config.py')], { cwd: dir, stdio: ['ignore', log, log] });
  closeSync(log);
  await waitFor('the hub API in the node', async () => {
    if (hub?.exitCode !== null) throw new Error('hub exited');
    return (await node.httpGet(`http://${NODE_IP}:${HUB_PORT}/hub/api/`)).status === 200 ? true : undefined;
  }, 60_000, 200, async () => hubLog());
  hubApi = `http://127.0.0.1:${(await node.forward(`${NODE_IP}:${HUB_PORT}`)).port}/hub/api`;
  proxyUrl = `http://127.0.0.1:${(await node.forward(`${NODE_IP}:${PROXY_PORT}`)).port}`;
}

async function stopHub(): Promise<void> {
  if (!hub || hub.exitCode !== null || hub.signalCode !== null) return;
  const exited = new Promise((r) => hub!.once('exit', r));
  // nsenter forks: the hub is its child (inside the node's PID namespace).
  const children = `/proc/${hub.pid}/task/${hub.pid}/children`;
  const pid = Number((existsSync(children) ? readFileSync(children, 'utf8') : '').trim().split(' ')[0]);
  if (pid) process.kill(pid, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 15_000)))]);
  clearTimeout(timer);
  // Anything left (the proxy, a hub that hangs) dies with the node's PID namespace in node.stop().
}

suite('the chart, JupyterHub and KubeSpawner on the one-node cluster (issue 16)', () => {
  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'node-system-'));
    ensureHelm();
    let t0 = Date.now();
    await ensureBaseImages();
    const [svc, su] = [
      await build({ tag: SERVICE_IMAGE, context: ROOT, args: { BASE: BASE_IMAGES.node } }),
      await build({ tag: SINGLEUSER_IMAGE, context: ROOT, file: join(ROOT, 'images/singleuser/Containerfile'), args: { BASE: BASE_IMAGES.debian } }),
    ];
    times.buildSeconds = seconds(t0);
    t0 = Date.now();
    const tars = [await saveImage(SERVICE_IMAGE, 'service.tar'), await saveImage(SINGLEUSER_IMAGE, 'singleuser.tar')];
    times.saveSeconds = seconds(t0);
    t0 = Date.now();
    node = await startK8sNode({ images: tars });
    times.nodeStartSeconds = node.startupSeconds;
    times.nodeWithImagesSeconds = seconds(t0);
    rmSync(tars[0]!);
    rmSync(tars[1]!);
    t0 = Date.now();
    await startHubInNode();
    times.hubStartSeconds = seconds(t0);
    console.log(`images built in ${svc.seconds.toFixed(1)}s + ${su.seconds.toFixed(1)}s, saved in ${times.saveSeconds}s; ` +
      `node with both images loaded in ${times.nodeWithImagesSeconds}s (start ${node.startupSeconds.toFixed(1)}s); hub in the node in ${times.hubStartSeconds}s`);
  }, 30 * 60_000);

  afterAll(async () => {
    let t0 = Date.now();
    await stopHub().catch(() => undefined);
    times.hubStopSeconds = seconds(t0);
    t0 = Date.now();
    await node?.stop();
    times.nodeStopSeconds = seconds(t0);
    rmSync(tmp, { recursive: true, force: true });
    if (node) console.log(`times (s): ${JSON.stringify(times)}`);
    if (node) expect(existsSync(node.dir)).toBe(false);
  }, 120_000);

  let serviceIP: string;

  test('helm install: 2 replicas of the service image become Ready (probes on 8471) and the API server calls the webhook through its Service', async () => {
    // What z2jh and the admin provide: the hub Secret with the service's API token, the HMAC key.
    await apply(
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'hub', namespace: 'default' }, stringData: { [`hub.services.${SERVICE_NAME}.apiToken`]: hubTokens.service } },
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'oh-hmac', namespace: 'default' }, stringData: { 'hmac-secret': HMAC_SECRET } },
    );
    const [repository, tag] = SERVICE_IMAGE.split(/:(?=[^:]+$)/) as [string, string];
    const values = {
      replicaCount: 2,
      image: { repository, tag, pullPolicy: 'Never' },
      tokenKeys: { publicKeys: { secretName: '' }, hmacSecret: { secretName: 'oh-hmac', key: 'hmac-secret' } },
      config: {
        token: { issuer: ISSUER, audience: AUDIENCE, type: TYP, algorithms: ['HS256'] },
        omnisci: { protocol: 'https', host: 'omnisci.test', port: 443, allowedHosts: ['omnisci.test', '*.db.test'], allowedPorts: [6274, 6278] },
        redirect: { hubPublicUrl: `http://${NODE_IP}:${PROXY_PORT}` },
        // No cluster DNS: the hub API at the node address, where the hub runs.
        hub: { apiUrl: `http://${NODE_IP}:${HUB_PORT}/hub/api` },
      },
    };
    writeFileSync(join(tmp, 'values.json'), JSON.stringify(values));
    const t0 = Date.now();
    const r = await runTool(HELMS.v4, ['install', RELEASE, CHART, '--kubeconfig', node.kubeconfigPath, '--namespace', 'default', '-f', join(tmp, 'values.json')], join(tmp, 'helm'));
    expect(r).toMatchObject({ status: 0 });
    const running = await waitFor('2 Ready replicas', async () => {
      const ps = (await pods('app.kubernetes.io/name=omnisci-handoff')).filter(ready);
      return ps.length === 2 ? ps : undefined;
    }, 180_000, 250, async () => `${await kubectl(['get', 'pods,events'])}\n${await serviceLogs()}`);
    times.chartReadySeconds = seconds(t0);
    // Readiness (/readyz: store and hub checks) and liveness on the internal listener.
    const c = running[0]!.spec.containers[0]!;
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'internal', scheme: 'HTTP' });
    expect(c.ports).toContainEqual({ name: 'internal', containerPort: 8471, protocol: 'TCP' });
    for (const p of running) expect((await node.httpGet(`http://${p.status.podIP}:8471/readyz`)).status).toBe(200);

    serviceIP = (await kubectl(['get', 'service', FULLNAME, '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    expect(serviceIP).toMatch(/^10\.96\.0\.\d+$/);

    // The API server calls the webhook through its Service: a server-side dry run of a pod as
    // KubeSpawner makes it comes back mutated (the webhook's sideEffects are None, so it runs on dry runs).
    const t1 = Date.now();
    const probe = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'jupyter-webhook-probe', namespace: 'default', labels: { component: 'singleuser-server' }, annotations: { 'hub.jupyter.org/username': 'webhook-probe' } },
      spec: { securityContext: { fsGroup: 100 }, containers: [{ name: 'notebook', image: SINGLEUSER_IMAGE, imagePullPolicy: 'Never' }] },
    };
    const mutated = await waitFor('a pod mutated by the webhook', async () => {
      const p = JSON.parse(await kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], JSON.stringify(probe))) as Pod;
      return p.spec.volumes?.some((v) => v.name === 'omnisci-handoff-session') ? p : undefined;
    }, 30_000, 500, async () => serviceLogs());
    times.webhookSeconds = seconds(t1);
    expect(mutated.metadata.annotations?.['omnisci-handoff/secret']).toBe('omnisci-session-webhook-probe');
    expect(mutated.spec.volumes).toContainEqual(expect.objectContaining({ name: 'omnisci-handoff-session', secret: expect.objectContaining({ secretName: 'omnisci-session-webhook-probe' }) }));
    expect(mutated.spec.containers[0]!.env?.map((e) => e.name)).toEqual(expect.arrayContaining(['OMNISCI_PROTOCOL', 'OMNISCI_HOST', 'OMNISCI_PORT', 'JUPYTER_CONFIG_PATH']));
    expect(await serviceLogs()).toMatch(/"component":"webhook".*"outcome":"patched"/);
    console.log(`chart installed, 2 replicas Ready in ${times.chartReadySeconds}s; webhook answered the API server in ${times.webhookSeconds}s`);
  }, 300_000);

  test('a handoff through the service: KubeSpawner spawns the single-user pod, the webhook injects, and jupyterlab-omnisci serves the session through the hub proxy', async () => {
    expect(serviceIP).toBeDefined();
    expect((await hubAdmin('POST', `/users/${USER}`)).status).toBe(201);
    const service = `http://127.0.0.1:${(await node.forward(`${serviceIP}:8470`)).port}${BASE_PATH}`;
    const session = randomSessionId();
    const signing = hmacKey('HS256');
    const t0 = Date.now();
    const res = await postToken(service, await mint(signing, { subject: USER, omnisci: { session, query: 'SELECT 42', ...connection } }));
    expect(res.status).toBe(303);
    const progress = res.headers.get('location')!;
    expect(progress).toMatch(new RegExp(`^${BASE_PATH}progress/[^/]+$`));
    const binding = res.headers.getSetCookie().map((c) => c.split(';')[0]!).join('; ');

    // The service stored the Secret and asked the hub to start the server; KubeSpawner creates the pod.
    await waitFor('the server to be ready', async () => {
      const u = await hubAdmin('GET', `/users/${USER}`);
      return u.json?.servers?.['']?.ready ? true : undefined;
    }, 240_000, 500, async () => `${await kubectl(['get', 'pods,events'])}\n${hubLog()}\n${await serviceLogs()}`);
    times.spawnSeconds = seconds(t0);

    // Where the browser goes next: the progress page's "go" link, to the lab once the server is ready.
    // Progress state lives in the memory of the replica that took the handoff (docs/jupyterhub.md asks
    // for session affinity); this Service has none, so kube-proxy sends about half the requests to
    // the other replica, which answers 404: counted, and retried until the right one answers.
    // Each request on a new connection, so that kube-proxy picks a replica for each (fetch keeps one alive).
    const answers: Record<number, number> = {};
    const lab = await waitFor('the progress page to send the browser to the lab', async () => {
      const r = await getFresh(new URL(service).port, `${progress}/go`, binding);
      answers[r.status] = (answers[r.status] ?? 0) + 1;
      return r.status === 303 && !r.location?.includes('/progress/') ? r.location : undefined;
    }, 30_000, 100);
    expect(lab).toBe(`http://${NODE_IP}:${PROXY_PORT}/user/${USER}/lab?omnisci&reset`);
    for (let i = 0; i < 20; i++) {
      const r = await getFresh(new URL(service).port, `${progress}/go`, binding);
      answers[r.status] = (answers[r.status] ?? 0) + 1;
    }
    console.log(`progress/<id>/go through the Service on new connections (2 replicas, no session affinity): ${JSON.stringify(answers)} (status: count)`);

    const [pod] = await pods('component=singleuser-server');
    expect(pod).toBeDefined();
    expect(ready(pod!)).toBe(true);
    expect(pod!.metadata.annotations).toMatchObject({ 'hub.jupyter.org/username': USER, 'omnisci-handoff/secret': `omnisci-session-${USER}` });
    const nb = pod!.spec.containers.find((c) => c.name === 'notebook')!;
    expect(nb.volumeMounts).toEqual(expect.arrayContaining([
      expect.objectContaining({ name: 'omnisci-handoff-session', mountPath: '/var/run/omnisci-handoff' }),
      expect.objectContaining({ name: 'omnisci-handoff-jupyter', mountPath: '/etc/omnisci-handoff/jupyter' }),
    ]));

    // The env vars in the running container hold the Secret's values.
    const secret = JSON.parse(await kubectl(['get', 'secret', `omnisci-session-${USER}`, '-o', 'json'])).data as Record<string, string>;
    const decoded = (k: string) => Buffer.from(secret[k]!, 'base64').toString('utf8');
    expect([decoded('protocol'), decoded('host'), decoded('port')]).toEqual([connection.protocol, connection.host, String(connection.port)]);
    const env = Object.fromEntries((await kubectl(['exec', pod!.metadata.name, '-c', 'notebook', '--', 'env'])).trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    expect(env).toMatchObject({ OMNISCI_PROTOCOL: decoded('protocol'), OMNISCI_HOST: decoded('host'), OMNISCI_PORT: decoded('port') });
    expect(env.JUPYTER_CONFIG_PATH?.split(':')).toContain('/etc/omnisci-handoff/jupyter');

    // The real jupyterlab-omnisci, through the hub's proxy, with a token of the user.
    const tok = await hubAdmin('POST', `/users/${USER}/tokens`, { scopes: [`access:servers!user=${USER}`] });
    expect(tok.status).toBe(201);
    const getSession = async () => {
      const r = await fetch(`${proxyUrl}/user/${USER}/omnisci/session`, { headers: { Authorization: `token ${tok.json.token}` }, redirect: 'manual' });
      return { status: r.status, body: await r.text() };
    };
    const first = await getSession();
    expect(first.status).toBe(200);
    const labPage = await fetch(`${proxyUrl}${new URL(lab).pathname}${new URL(lab).search}`, { headers: { Authorization: `token ${tok.json.token}` }, redirect: 'manual' });
    expect(labPage.status).toBe(200);
    expect(await labPage.text()).toMatch(/JupyterLab/);
    expect(JSON.parse(first.body)).toEqual({
      session,
      query: 'SELECT 42',
      connection: { protocol: connection.protocol, host: connection.host, port: String(connection.port) },
      environment: { protocol: 'OMNISCI_PROTOCOL', host: 'OMNISCI_HOST', port: 'OMNISCI_PORT' },
    });

    // A second handoff to the running server: the Secret volume updates without a restart (the
    // store annotates the pod, so the kubelet remounts now rather than on its next sync).
    const session2 = randomSessionId();
    const t1 = Date.now();
    const res2 = await postToken(service, await mint(signing, { subject: USER, omnisci: { session: session2, query: 'SELECT 43', ...connection } }));
    // The server runs and the connection is the same: straight to the lab.
    expect(res2.status).toBe(303);
    expect(res2.headers.get('location')).toBe(lab);
    await waitFor('the second session in the pod', async () => {
      const r = await getSession();
      return r.status === 200 && JSON.parse(r.body).session === session2 ? true : undefined;
    }, 120_000, 250, async () => serviceLogs());
    times.secondHandoffSeconds = seconds(t1);
    expect(JSON.parse((await getSession()).body).query).toBe('SELECT 43');
    console.log(`handoff → server ready ${times.spawnSeconds}s; second handoff seen by the running extension in ${times.secondHandoffSeconds}s`);
  }, 420_000);
});
