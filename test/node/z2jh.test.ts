/**
 * Issue 27 on the one-node cluster (test/support/k8s-node.ts): the admin guide (docs/admin-guide.md),
 * executed with the real zero-to-jupyterhub chart. Everything runs as it would on a cluster: z2jh's
 * hub image (its own recipe) as z2jh's hub pod with z2jh's RBAC and service account, KubeSpawner
 * creating the users' pods, configurable-http-proxy's image as z2jh's proxy pod, our chart with its
 * webhook; pods find Services by name through the node's cluster DNS.
 *
 * The admin's steps are shell commands run with kubectl, helm and the `omnisci-handoff` CLI on PATH,
 * in an admin directory, as the guide writes them. Local equivalents (no registry, no load balancer,
 * no storage provisioner) are listed in docs/admin-guide.md ("Tested on") and set in `your.yaml`,
 * the site's own z2jh values: the images (loaded into containerd, pullPolicy Never), the chart from
 * the pinned copy (../shared/z2jh or OMNISCI_Z2JH_DIR) instead of `jupyterhub/jupyterhub`, a
 * PersistentVolume for the hub database, user storage `none`, proxy Service `ClusterIP`, the image
 * pullers, user scheduler and cloud-metadata blocker off (their images are not built here).
 *
 * Chromium reaches the hub as `http://proxy-public.jhub.svc.cluster.local` (a public name pods
 * resolve too) through a front proxy of the test that relays to the proxy-public Service (like a
 * load balancer or ingress in front of it); Immerse
 * is a page served by Playwright at http://immerse.test that posts a signed token (ES256, the
 * guide's `omnisci-handoff-keys` Secret holds its public key).
 *
 * In order, on one cluster:
 *   1. z2jh installed as the site runs it; the guide's install (keys Secret, handoff-values.yaml,
 *      helm install, z2jh-values merged and helm upgrade of z2jh); both replicas Ready.
 *   2. login mode sso (the hub's login form standing in for the identity provider), the notebook 6
 *      image: a handoff lands on the lab, the pod (created by the hub's service account, API audit
 *      log) has the session; a second handoff reaches the running server.
 *   3. login mode handoff + identityCheck, the JupyterLab 4 image: the same.
 *   4. doctor in our pod (guide step 6): every check passes; the service left out of hub.services,
 *      its role without admin:users, the webhook CA replaced without the caBundle: each fails its
 *      check with exit 1, and passes again once restored as the fix says.
 *   5. Day 2: helm upgrade of ours to a new image tag under back-to-back handoffs (none lost, retries
 *      counted); helm upgrade of z2jh under erin's running server, then her next handoff lands on it.
 *   6. the webhook off: the webhook-free values (z2jh expands `{username}`) mount the user's Secret.
 *   7. header mode: the hub at base_url /jupyter/ behind the HEAVY.AI web-server stand-in
 *      (http://heavyai.test through the front proxy), HeavyDB's stand-in in a pod behind Service heavydb.
 *   8. helm uninstall of ours: every object of the release gone, user pods running; the guide's
 *      leftovers listed and removed.
 * Figures are printed as `FIGURE <name>: <value>` lines.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { calculateJwkThumbprint } from 'jose';
import type { Browser, Page } from 'playwright-core';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { secretName } from '../../src/k8s/layout.js';
import { launchChromium } from '../support/browser.js';
import { SESSION_COOKIE, startHeavyAiWebServer } from '../support/heavyai-webserver.js';
import { AUDIENCE, ISSUER, makeKey, mint, randomSessionId, type TestKey } from '../support/core.js';
import { ensureHelm, HELMS, helmEnv } from '../support/helm.js';
import { standInControl, STANDIN_SCRIPT, type StandInControl } from '../../scripts/demo/heavydb/standin.js';
import { missingPrerequisites, podQuiet, startK8sNode, waitFor, type K8sNode } from '../support/k8s-node.js';
import { requirePrerequisite } from '../support/prerequisites.js';
import { ROOT } from '../support/root.js';
import { buildZ2jhImages, imageValue, Z2JH_CHART, Z2JH_IMAGES, z2jhAppVersion, z2jhMissing, type Z2jhImage } from '../support/z2jh.js';
import { podman, podmanOk } from '../system/podman.js';

const NS = 'jhub';
const SERVICE = 'omnisci-handoff';
/** z2jh's hub.baseUrl (and our jupyterhub.baseUrl): `/` until header mode moves the hub behind the HEAVY.AI web server. */
let hubBase = '/';
const basePath = () => `${hubBase}services/${SERVICE}/`;
// The hub's public name. Pods resolve it too, as a real public name resolves everywhere: the doctor's
// `hub: public url` check asks it from our pod. The test cluster's DNS knows Service names only, so
// the public name is proxy-public's; Chromium reaches it through the front proxy like any other name.
const HUB_HOST = `proxy-public.${NS}.svc.cluster.local`;
const HUB_PUBLIC = `http://${HUB_HOST}`;
const IMMERSE = 'http://immerse.test';
const ATTEMPTS = 3;
const OMNISCI = { protocol: 'https', host: 'heavydb.example.com', port: 6274 } as const;
/** The HeavyDB stand-in (scripts/demo/heavydb/standin.py) as a pod behind the Service `heavydb`: what the kernels of the fast-refresh-off test connect to. */
const STANDIN = { protocol: 'http', host: 'heavydb', port: 6278 } as const;
/** The kubelet's periodic sync (syncFrequency 60 s, plus up to 50 % jitter) and a margin: the bound for a Secret update to reach a running pod without fast refresh. */
const SYNC_BOUND_MS = (60 * 1.5 + 30) * 1000;

async function whyNot(): Promise<string | undefined> {
  const why = missingPrerequisites() ?? z2jhMissing();
  if (why) return why;
  try {
    if ((await podman('--version')).code !== 0) return 'podman does not run';
  } catch {
    return 'podman not found (scripts/deps/podman.sh)';
  }
  return undefined;
}
// Under CI a missing prerequisite (the z2jh copy included) fails the run: never a silent skip.
const suite = requirePrerequisite(await whyNot(), 'as root: bash scripts/deps/k8s-node.sh, scripts/deps/podman.sh; the z2jh copy at ../shared/z2jh');

let node: K8sNode;
let tmp: string;
let adminDir: string;
let issuerKey: TestKey;
let proxyIP: string;
const times: Record<string, number> = {};
const seconds = (t0: number) => Math.round((Date.now() - t0) / 100) / 10;
const figure = (name: string, value: string) => console.log(`FIGURE ${name}: ${value}`);

/** The admin's handoff-values.yaml (guide step 3) as an object; each mode edits it. */
let handoffValues: Record<string, any>;
/** The site's own z2jh values (your.yaml): what this cluster needs, nothing of ours. */
let siteValues: Record<string, any>;

/** Runs a shell script as the admin: in the admin directory, kubectl/helm/omnisci-handoff on PATH, KUBECONFIG set. */
function admin(script: string, timeoutMs = 300_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const env = {
      ...helmEnv(join(tmp, 'helm')),
      KUBECONFIG: node.kubeconfigPath,
      PATH: `${join(adminDir, 'bin')}:${dirname(HELMS.v4)}:/usr/local/bin:/usr/bin:/bin`,
    };
    const child = spawn('bash', ['-eo', 'pipefail', '-c', script], { cwd: adminDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`admin step failed (${code}):\n$ ${script}\n${err}${out}`));
    });
  });
}

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await node.kubectl(['-n', NS, ...args], input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

interface Pod {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string>; deletionTimestamp?: string };
  spec: {
    serviceAccountName?: string;
    containers: { name: string; image: string; volumeMounts?: { name: string; mountPath: string }[] }[];
    volumes?: { name: string; secret?: { secretName: string }; configMap?: { name: string } }[];
  };
  status: { podIP?: string; conditions?: { type: string; status: string }[] };
}
const ready = (p: Pod) => !p.metadata.deletionTimestamp && !!p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
const pods = async (selector: string): Promise<Pod[]> => JSON.parse(await kubectl(['get', 'pods', '-l', selector, '-o', 'json'])).items;
const logsOf = async (selector: string, n = 40) => (await node.kubectl(['-n', NS, 'logs', '-l', selector, '--tail', String(n), '--prefix', '--all-containers'])).stdout;
const state = async () => `${await kubectl(['get', 'pods,pvc,events', '-o', 'wide']).catch((e) => String(e))}\n--- hub\n${await logsOf('component=hub')}\n--- omnisci-handoff\n${await logsOf('app.kubernetes.io/name=omnisci-handoff')}`;

/** podman save of a built image, for loadImage. */
async function saveImage(name: Z2jhImage): Promise<string> {
  const out = join(tmp, `${name}.tar`);
  await podmanOk('save', '--format', 'docker-archive', '-o', out, Z2JH_IMAGES[name]);
  return out;
}

/** The service's healthz through the hub's proxy (the route the hub adds for hub.services.url), n times in a row. */
async function serviceRouted(n = 5): Promise<void> {
  await waitFor(`${n} answers in a row from ${basePath()}healthz through the proxy`, async () => {
    for (let i = 0; i < n; i++) if ((await node.httpGet(`http://${proxyIP}:80${basePath()}healthz`, 5000)).status !== 200) return undefined;
    return true;
  }, 180_000, 500, state);
}

async function ourRollout(): Promise<void> {
  await admin(`kubectl -n ${NS} rollout status deploy/${SERVICE} --timeout=240s`);
  await waitFor('2 Ready replicas of omnisci-handoff, none terminating', async () => {
    const ps = await pods('app.kubernetes.io/name=omnisci-handoff');
    return ps.length === 2 && ps.every(ready) ? true : undefined;
  }, 240_000, 500, state);
}

/**
 * The guide's Upgrade section: `helm upgrade` of ours with the edited handoff-values.yaml. `rollout:
 * false` when the new pods can only turn Ready after step 5 (a new hub base_url): step 5 waits.
 */
async function upgradeOurs(label: string, o: { rollout?: boolean } = {}): Promise<number> {
  writeFileSync(join(adminDir, 'handoff-values.yaml'), toYaml(handoffValues));
  const t0 = Date.now();
  await admin(`helm upgrade ${SERVICE} ./helm/omnisci-handoff -n ${NS} -f handoff-values.yaml`);
  if (o.rollout !== false) await ourRollout();
  const s = seconds(t0);
  console.log(`helm upgrade ${SERVICE} (${label}): rolled out in ${s}s`);
  return s;
}

/** Guide step 5's first two commands: the config the chart rendered, `omnisci-handoff z2jh-values`. */
const Z2JH_VALUES = [
  `kubectl -n ${NS} get configmap ${SERVICE} -o jsonpath='{.data.config\\.yaml}' > config.yaml`,
  'omnisci-handoff z2jh-values --config config.yaml > z2jh-handoff.yaml',
];
const Z2JH_UPGRADE = `helm upgrade jhub ${Z2JH_CHART} -n ${NS} -f your.yaml -f z2jh-handoff.yaml`;

/**
 * A `helm upgrade` of the z2jh release by the admin's `commands` (your.yaml written from siteValues
 * first): waits for the new hub pod (the values changed its config: Recreate) and, unless
 * `oursReady` is false, for both of our replicas Ready (their readiness follows the hub's) and routed.
 */
async function upgradeZ2jh(label: string, commands: string[], o: { oursReady?: boolean } = {}): Promise<number> {
  writeFileSync(join(adminDir, 'your.yaml'), toYaml(siteValues));
  const t0 = Date.now();
  const hubBefore = (await pods('component=hub')).map((p) => p.metadata.name);
  await admin(commands.join('\n'));
  await admin(`kubectl -n ${NS} rollout status deploy/hub --timeout=240s && kubectl -n ${NS} rollout status deploy/proxy --timeout=120s`);
  await waitFor('the new hub pod to be Ready', async () => {
    const hub = await pods('component=hub');
    return hub.length === 1 && ready(hub[0]!) && !hubBefore.includes(hub[0]!.metadata.name) ? true : undefined;
  }, 240_000, 500, state);
  if (o.oursReady !== false) {
    await ourRollout();
    await serviceRouted();
  }
  const s = seconds(t0);
  times[`z2jh upgrade ${label}`] = s;
  console.log(`helm upgrade jhub (${label}): hub back${o.oursReady === false ? '' : ' and the service routed'} in ${s}s`);
  return s;
}

/** Guide step 5: `z2jh-values` merged into the z2jh release; `after` runs right after the upgrade. */
async function mergeIntoZ2jh(label: string, after: string[] = []): Promise<Record<string, any>> {
  await upgradeZ2jh(label, [...Z2JH_VALUES, Z2JH_UPGRADE, ...after]);
  return parseYaml(readFileSync(join(adminDir, 'z2jh-handoff.yaml'), 'utf8')) as Record<string, any>;
}

/**
 * The way in for Chromium, like a load balancer in front of z2jh's proxy-public Service: an HTTP
 * proxy on loopback that relays requests for the hub's public name to the Service's ClusterIP in
 * the node, each on a new connection, and those for the names `hosts` adds to their servers on
 * loopback (Chromium sends loopback through the proxy too); it tunnels a CONNECT to the hub's public
 * name, port 80, there (how Chromium sends WebSockets, a kernel's channels, through a proxy).
 * Anything else is refused.
 */
async function frontProxy(): Promise<{ server: string; log: string[]; hosts: Map<string, number>; close(): Promise<void> }> {
  const log: string[] = [];
  const hosts = new Map<string, number>();
  const server = createServer((req, res) => {
    const u = URL.canParse(req.url ?? '') ? new URL(req.url!) : undefined;
    const local = u && hosts.get(u.host);
    if (u?.protocol !== 'http:' || (u.host !== HUB_HOST && !local)) {
      log.push(`${req.method} ${req.url} refused`);
      res.writeHead(403).end();
      return;
    }
    const entry = log.push(`${req.method} ${u.pathname}${u.search.slice(0, 60)}`) - 1;
    const headers: Record<string, string | string[] | undefined> = { ...req.headers, connection: 'close' };
    delete headers['proxy-connection'];
    delete headers['keep-alive'];
    (local ? Promise.resolve(netConnect(local, '127.0.0.1')) : node.connect(`${proxyIP}:80`)).then(
      (sock) => {
        const up = httpRequest({ createConnection: () => sock, method: req.method, path: u.pathname + u.search, headers }, (r) => {
          const h = { ...r.headers };
          for (const k of ['connection', 'keep-alive', 'transfer-encoding']) delete h[k];
          res.writeHead(r.statusCode ?? 502, h);
          log[entry] += ` → ${r.statusCode}${r.headers.location ? ` ${r.headers.location.slice(0, 80)}` : ''}`;
          r.pipe(res);
        });
        up.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
        res.on('close', () => up.destroy());
        req.pipe(up);
      },
      () => res.writeHead(502).end(),
    );
  });
  server.on('connect', (req, sock: Socket, head: Buffer) => {
    if (req.url !== `${HUB_HOST}:80`) {
      log.push(`CONNECT ${req.url} refused`);
      sock.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      return;
    }
    log.push(`CONNECT ${req.url}`);
    node.connect(`${proxyIP}:80`).then(
      (up) => {
        sock.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length) up.write(head);
        up.pipe(sock).on('error', () => up.destroy());
        sock.pipe(up).on('error', () => sock.destroy());
        up.on('close', () => sock.destroy());
        sock.on('close', () => up.destroy());
      },
      () => sock.destroy(),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    log,
    hosts,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/**
 * The HeavyDB stand-in (scripts/demo/heavydb/standin.py) as a pod of the JupyterLab 4 image (which has
 * pyheavydb and Thrift) behind the Service `heavydb` (STANDIN), so users' kernels reach it by name; the
 * test controls it through a forward to the Service. This node enforces no NetworkPolicy; a site whose
 * CNI does must allow its users' pods to reach HeavyDB (z2jh's singleuser.networkPolicy.egress).
 */
let heavyDbStarted: Promise<StandInControl> | undefined;
/** The one HeavyDB stand-in of the cluster, started by the first test that needs it. */
const heavyDb = () => (heavyDbStarted ??= heavyDbInCluster());

async function heavyDbInCluster(): Promise<StandInControl> {
  await kubectl(['create', 'configmap', 'heavydb-standin', `--from-file=standin.py=${STANDIN_SCRIPT}`]);
  const labels = { app: 'heavydb-standin' };
  await kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [
    { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'heavydb-standin', labels }, spec: {
      containers: [{ name: 'heavydb', image: Z2JH_IMAGES.jupyterlab4, imagePullPolicy: 'Never',
        command: ['python', '/standin/standin.py', '--host', '0.0.0.0', '--port', String(STANDIN.port)],
        env: [{ name: 'PYTHONUNBUFFERED', value: '1' }], ports: [{ containerPort: STANDIN.port }], volumeMounts: [{ name: 'standin', mountPath: '/standin' }] }],
      volumes: [{ name: 'standin', configMap: { name: 'heavydb-standin' } }] } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: STANDIN.host }, spec: { selector: labels, ports: [{ port: STANDIN.port, targetPort: STANDIN.port }] } },
  ] }));
  const ip = (await kubectl(['get', 'service', STANDIN.host, '-o', 'jsonpath={.spec.clusterIP}'])).trim();
  const heavy = standInControl(`http://127.0.0.1:${(await node.forward(`${ip}:${STANDIN.port}`)).port}/`);
  await waitFor('the HeavyDB stand-in', async () => (await heavy.calls(), true), 120_000, 500, state);
  return heavy;
}

let browser: Browser | undefined;
let front: Awaited<ReturnType<typeof frontProxy>> | undefined;

/** The session file in a user's Secret: the session id and its fingerprint. */
async function storedFile(user: string): Promise<{ session: string; fingerprint?: string }> {
  const secret = JSON.parse(await kubectl(['get', 'secret', secretName('omnisci-session', user), '-o', 'json'])) as { data: Record<string, string> };
  return JSON.parse(Buffer.from(secret.data.session!, 'base64').toString('utf8')) as { session: string; fingerprint?: string };
}
const storedSession = async (user: string) => (await storedFile(user)).session;

/** The fingerprint a lab URL carries (src/hub/lab-url.ts), or null. */
const fingerprintOf = (lab: string) => new URL(lab).searchParams.get('omnisci-handoff');

interface Flow { secs: number; served: { session: string; query: string; connection: Record<string, string> }; seen: string[]; lab: string }
interface OpenOptions {
  /** The OmniSci connection the token names (default OMNISCI). */
  connection?: { protocol: 'binary' | 'http' | 'https'; host: string; port: number };
  /** Runs in the lab's page once it loaded, before the browser context closes. */
  inLab?: (page: Page) => Promise<void>;
}

/**
 * One handoff in a fresh browser: Immerse posts the token → (confirmation, login mode handoff) →
 * progress page → hub login (its form: sso; the login token: handoff) → the lab. Then the page asks
 * its own server for /user/<name>/omnisci/session (the extension in the pod answers).
 */
async function openNotebook(user: string, loginMode: 'sso' | 'handoff', session: string, query: string, o: OpenOptions = {}): Promise<Flow> {
  const context = await browser!.newContext();
  const page = await context.newPage();
  const seen: string[] = [];
  const consoleLines: string[] = [];
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  const from = front!.log.length;
  // A page the proxy or a server answered with 5xx ends the attempt at once (the stream retries it).
  let broken!: (e: Error) => void;
  const failed = new Promise<never>((_, reject) => (broken = reject));
  failed.catch(() => undefined);
  const step = <T>(p: Promise<T>) => Promise.race([p, failed]);
  try {
    page.on('framenavigated', (f) => {
      if (f === page.mainFrame()) seen.push(f.url());
    });
    page.on('response', (r) => {
      if (r.status() >= 500 && r.request().isNavigationRequest() && r.frame() === page.mainFrame()) broken(new Error(`HTTP ${r.status()} for ${r.url().split('?')[0]}`));
    });
    const token = await mint(issuerKey.signing, { subject: user, omnisci: { session, query, ...(o.connection ?? OMNISCI) } });
    await context.route(`${IMMERSE}/**`, (route) => route.fulfill({
      status: 200,
      contentType: 'text/html',
      body: `<!doctype html><title>Immerse</title><form method="post" action="${HUB_PUBLIC}${basePath()}handoff">` +
        `<input type="hidden" name="token" value="${token}"><button id="open">Open in notebook</button></form>`,
    }));
    const t0 = Date.now();
    await page.goto(`${IMMERSE}/dashboard`);
    await page.click('#open');
    if (loginMode === 'handoff') {
      await step(page.waitForSelector('#confirm', { timeout: 60_000 }));
      expect(await page.textContent('#confirm')).toBe(`Continue as ${user}`);
      await page.click('#confirm');
    } else {
      // The hub's login form stands in for the identity provider (z2jh's default dummy authenticator).
      await step(page.waitForSelector('input[name=username]', { timeout: 180_000 }));
      await page.fill('input[name=username]', user);
      await page.fill('input[name=password]', 'any');
      await page.press('input[name=password]', 'Enter');
    }
    await step(page.waitForURL((u) => u.pathname === `/user/${user}/lab`, { timeout: 240_000, waitUntil: 'domcontentloaded' }));
    const secs = seconds(t0);
    // The lab was opened at the handoff's URL (the extension may drop its parameters from the address
    // afterwards), with the session's fingerprint when the server was running.
    const lab = seen.find((u) => u === `${HUB_PUBLIC}/user/${user}/lab?omnisci&reset` || u.startsWith(`${HUB_PUBLIC}/user/${user}/lab?omnisci&reset&omnisci-handoff=`));
    expect(lab).toBeDefined();
    expect(await page.content()).toMatch(/JupyterLab/);
    const served = await page.evaluate(async (path) => {
      const r = await fetch(path);
      return { status: r.status, body: await r.text() };
    }, `/user/${user}/omnisci/session`);
    expect(served.status).toBe(200);
    // No URL the browser was shown carries the token or the session.
    expect(seen.filter((u) => !u.startsWith(IMMERSE) && (u.includes(session) || u.includes(token.slice(-20))))).toEqual([]);
    await o.inLab?.(page);
    return { secs, served: JSON.parse(served.body), seen, lab: lab! };
  } catch (e) {
    const text = await page.innerText('body', { timeout: 2000 }).catch((x: unknown) => String(x));
    await page.screenshot({ path: join(tmpdir(), `z2jh-${user}-failed.png`) }).catch(() => undefined);
    throw new Error(`${user} (${loginMode}): ${(e as Error).message}\nconsole: ${consoleLines.slice(-15).join(' | ')}\nat ${page.url()}: ${text.slice(0, 600)}\nnavigations: ${seen.join(' | ')}\n` +
      `requests through the front proxy:\n${front!.log.slice(from).join('\n')}\n${await state()}`);
  } finally {
    await context.close();
  }
}

/** Who created a pod, from the API server's audit log (pods create, Metadata level). */
function podCreator(name: string): string | undefined {
  const lines = readFileSync(join(tmp, 'audit.log'), 'utf8').split('\n').filter(Boolean);
  for (const l of lines) {
    const e = JSON.parse(l) as { verb: string; stage: string; objectRef?: { namespace?: string; name?: string }; user: { username: string }; responseStatus?: { code: number } };
    if (e.verb === 'create' && e.stage === 'ResponseComplete' && e.objectRef?.namespace === NS && e.objectRef.name === name && e.responseStatus?.code === 201) return e.user.username;
  }
  return undefined;
}

/** The user's single-user pod, Ready. */
async function userPod(user: string): Promise<Pod> {
  return waitFor(`${user}'s pod to be Ready`, async () => {
    // KubeSpawner 7 annotates the raw name (its label holds an escaped one).
    const [p] = (await pods('component=singleuser-server')).filter((q) => ready(q) && q.metadata.annotations?.['hub.jupyter.org/username'] === user);
    return p;
  }, 60_000, 500, state);
}

async function podEnv(pod: Pod): Promise<Record<string, string>> {
  const out = await kubectl(['exec', pod.metadata.name, '-c', 'notebook', '--', 'env']);
  return Object.fromEntries(out.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

/**
 * A mode: a first handoff spawns the user's server and lands on the lab, with the session in the
 * pod KubeSpawner created (as the hub's service account); a second handoff reaches the running server.
 */
async function handoffTwice(user: string, loginMode: 'sso' | 'handoff', image: Z2jhImage, webhook: boolean): Promise<Pod> {
  const s1 = randomSessionId();
  const first = await openNotebook(user, loginMode, s1, `SELECT '${user} 1'`);
  // A server started for the handoff mounts the session as it is: nothing to wait for.
  expect(fingerprintOf(first.lab)).toBeNull();
  expect(first.served).toMatchObject({ session: s1, query: `SELECT '${user} 1'`, connection: { protocol: OMNISCI.protocol, host: OMNISCI.host, port: String(OMNISCI.port) } });
  expect(await storedSession(user)).toBe(s1);
  const pod = await userPod(user);
  expect(pod.spec.containers.find((c) => c.name === 'notebook')?.image).toBe(Z2JH_IMAGES[image]);
  expect(pod.metadata.labels).toMatchObject({ component: 'singleuser-server', release: 'jhub' });
  // Created by KubeSpawner in the hub pod, with the hub's own service account (z2jh's Role).
  expect(podCreator(pod.metadata.name)).toBe(`system:serviceaccount:${NS}:hub`);
  const env = await podEnv(pod);
  expect(env).toMatchObject({ OMNISCI_PROTOCOL: OMNISCI.protocol, OMNISCI_HOST: OMNISCI.host, OMNISCI_PORT: String(OMNISCI.port) });
  expect(pod.metadata.annotations?.['omnisci-handoff/secret']).toBe(webhook ? secretName('omnisci-session', user) : undefined);

  const s2 = randomSessionId();
  const t0 = Date.now();
  const second = await openNotebook(user, loginMode, s2, `SELECT '${user} 2'`);
  // The same pod serves it: nothing restarted the server.
  expect((await userPod(user)).metadata.name).toBe(pod.metadata.name);
  expect(await storedSession(user)).toBe(s2);
  // The server kept running: its lab URL carries the new session's fingerprint, as the Secret's session file does.
  expect(fingerprintOf(second.lab)).toBe((await storedFile(user)).fingerprint);
  expect(fingerprintOf(second.lab)).toMatch(/^[A-Za-z0-9_-]{43}$/);
  // The page asked right on landing; the Secret volume follows within a second with fast refresh on.
  const served = second.served.session === s2 ? second.served : await waitFor('the second session in the running pod', async () => {
    const r = JSON.parse(await kubectl(['exec', pod.metadata.name, '-c', 'notebook', '--', 'cat', '/var/run/omnisci-handoff/session'])) as { session: string };
    return r.session === s2 ? r : undefined;
  }, 30_000, 250);
  expect(served.session).toBe(s2);
  figure(`z2jh ${user}`, `${loginMode}, ${image}${webhook ? '' : ', webhook-free'}: first handoff landed on the lab in ${first.secs} s (spawn included), ` +
    `second in ${second.secs} s (${seconds(t0)} s with the checks)`);
  return pod;
}

/** The in-cluster address of the API server with the admin's credentials: for the doctor's reads the service account may not do. */
function inClusterAdminKubeconfig(): string {
  return toYaml({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'admin',
    clusters: [{ name: 'cluster', cluster: { server: 'https://kubernetes.default.svc', 'certificate-authority-data': Buffer.from(node.caPem).toString('base64') } }],
    users: [{ name: 'admin', user: { token: node.adminToken } }],
    contexts: [{ name: 'admin', context: { cluster: 'cluster', user: 'admin', namespace: NS } }],
  });
}

interface DoctorRun { code: number; lines: string[]; /** check name → its line */ checks: Map<string, string> }

/** Guide step 6: `doctor` in our pod (its config, token, service account and webhook certificate), the admin's kubeconfig on stdin. */
async function doctor(): Promise<DoctorRun> {
  const out = await admin(
    `kubectl -n ${NS} exec -i deploy/${SERVICE} -- node dist/src/cli.js doctor --config /etc/omnisci-handoff/config.yaml --kubeconfig /dev/stdin ` +
      '< admin-in-cluster.kubeconfig && echo "exit 0" || echo "exit $?"',
  );
  const lines = out.trim().split('\n');
  const code = Number(/^exit (\d+)$/.exec(lines.pop()!)?.[1]);
  const checks = new Map(lines.map((l) => [/^[✓✗?] ((?:[a-z]+: )?[a-z][a-z ]*?): /.exec(l)?.[1] ?? l, l]));
  return { code, lines, checks };
}
const notPassing = (d: DoctorRun) => d.lines.filter((l) => !l.startsWith('✓'));

/** Each of a stream's handoffs lands within ATTEMPTS attempts (the user clicks again in Immerse: a new token); retries counted. */
interface Stream { handoffs: number; retries: string[]; lost: number; last: string }
async function handoffStream(user: string, until: Promise<unknown>): Promise<Stream> {
  let done = false;
  until.then(() => (done = true), () => (done = true));
  const s: Stream = { handoffs: 0, retries: [], lost: 0, last: '' };
  // Back to back until `until` has settled and one more has started after it: the stream covers all of it.
  for (let after = false; !after; ) {
    after = done;
    const n = ++s.handoffs;
    let landed = false;
    for (let attempt = 1; attempt <= ATTEMPTS && !landed; attempt++) {
      const session = randomSessionId();
      try {
        await openNotebook(user, 'handoff', session, `SELECT ${n}`);
      } catch (e) {
        s.retries.push(`handoff ${n} attempt ${attempt}: ${(e as Error).message.split('\n')[0]}`);
        continue;
      }
      // Landed: the store holds this handoff's session (a wrong one is a defect, never retried).
      expect(await storedSession(user)).toBe(session);
      s.last = session;
      landed = true;
    }
    if (!landed) s.lost++;
  }
  return s;
}

suite('the admin guide with the real zero-to-jupyterhub chart on the one-node cluster (issue 27)', () => {
  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'node-z2jh-'));
    adminDir = join(tmp, 'admin');
    mkdirSync(join(adminDir, 'bin'), { recursive: true });
    // The admin's checkout (./helm/omnisci-handoff) and the CLI of the npm package (`omnisci-handoff`).
    symlinkSync(join(ROOT, 'helm'), join(adminDir, 'helm'));
    writeFileSync(join(adminDir, 'bin', 'omnisci-handoff'), `#!/bin/sh\nexec ${join(ROOT, 'node_modules/node/bin/node')} ${join(ROOT, 'dist/src/cli.js')} "$@"\n`, { mode: 0o755 });
    ensureHelm();
    let t0 = Date.now();
    const built = await buildZ2jhImages();
    times.buildSeconds = seconds(t0);
    console.log(`images built (s): ${Object.entries(built).map(([k, b]) => `${k} ${b.seconds.toFixed(1)}`).join(', ')}`);
    t0 = Date.now();
    const tars = await Promise.all((Object.keys(Z2JH_IMAGES) as Z2jhImage[]).map(saveImage));
    times.saveSeconds = seconds(t0);
    // Who creates pods: the API server's audit log.
    writeFileSync(join(tmp, 'audit-policy.yaml'), toYaml({
      apiVersion: 'audit.k8s.io/v1', kind: 'Policy', omitStages: ['RequestReceived'],
      rules: [{ level: 'Metadata', verbs: ['create'], resources: [{ group: '', resources: ['pods'] }] }, { level: 'None' }],
    }));
    t0 = Date.now();
    node = await startK8sNode({ images: tars, apiserverFlags: [`--audit-policy-file=${join(tmp, 'audit-policy.yaml')}`, `--audit-log-path=${join(tmp, 'audit.log')}`] });
    times.nodeWithImagesSeconds = seconds(t0);
    for (const t of tars) rmSync(t);
    // A PEM key's kid is its RFC 7638 thumbprint (docs/issuer-guide.md): Immerse signs with that kid.
    issuerKey = await makeKey('ES256');
    issuerKey.signing.kid = await calculateJwkThumbprint(issuerKey.publicJwk);
    writeFileSync(join(adminDir, 'immerse-public.pem'), issuerKey.publicPem);
    console.log(`images saved in ${times.saveSeconds}s; node with them loaded in ${times.nodeWithImagesSeconds}s (start ${node.startupSeconds.toFixed(1)}s)`);
  }, 40 * 60_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await front?.close().catch(() => undefined);
    const t0 = Date.now();
    await node?.stop();
    times.nodeStopSeconds = seconds(t0);
    rmSync(tmp, { recursive: true, force: true });
    console.log(`times (s): ${JSON.stringify(times)}`);
  }, 120_000);

  test('z2jh as the site runs it, then the admin guide: keys Secret, helm install of ours, z2jh-values merged into the z2jh release; both replicas Ready', async () => {
    // The site's z2jh (the guide starts from a running z2jh): its images, and what this cluster lacks.
    const hubDb = '/var/lib/z2jh-hub-db';
    const r = await node.exec(['sh', '-c', `mkdir -p ${hubDb} && chown 1000:1000 ${hubDb}`]);
    expect(r.code).toBe(0);
    const pv = { apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: 'z2jh-hub-db' }, spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], storageClassName: '', hostPath: { path: hubDb, type: 'Directory' } } };
    expect((await node.kubectl(['apply', '-f', '-'], JSON.stringify(pv))).code).toBe(0);
    siteValues = {
      hub: { image: imageValue(Z2JH_IMAGES.hub), config: { Authenticator: { allow_all: true } } },
      proxy: { service: { type: 'ClusterIP' }, chp: { image: imageValue(Z2JH_IMAGES.chp) } },
      singleuser: { image: imageValue(Z2JH_IMAGES.notebook6), storage: { type: 'none' }, cloudMetadata: { blockWithIptables: false } },
      scheduling: { userScheduler: { enabled: false }, userPlaceholder: { enabled: false } },
      prePuller: { hook: { enabled: false }, continuous: { enabled: false } },
    };
    writeFileSync(join(adminDir, 'your.yaml'), toYaml(siteValues));
    let t0 = Date.now();
    await admin(`helm install jhub ${Z2JH_CHART} -n ${NS} --create-namespace -f your.yaml`);
    await admin(`kubectl -n ${NS} rollout status deploy/hub --timeout=300s && kubectl -n ${NS} rollout status deploy/proxy --timeout=120s`)
      .catch(async (e) => { throw new Error(`${(e as Error).message}\n${await state()}`); });
    proxyIP = (await kubectl(['get', 'service', 'proxy-public', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    await waitFor('the hub through proxy-public', async () => ((await node.httpGet(`http://${proxyIP}:80/hub/api/`, 5000)).status === 200 ? true : undefined), 120_000, 500, state);
    times.z2jhInstallSeconds = seconds(t0);
    console.log(`z2jh ${z2jhAppVersion()} installed, hub and proxy Ready, in ${times.z2jhInstallSeconds}s`);

    // Guide step 2: the issuer's verification key in a Secret of the hub namespace.
    await admin(`kubectl -n ${NS} create secret generic omnisci-handoff-keys --from-file=issuer.pem=immerse-public.pem`);
    // Guide step 3: handoff-values.yaml (the image: built here, not pushed; the browser's Immerse origin allowed).
    handoffValues = {
      image: { repository: imageValue(Z2JH_IMAGES.service).name, tag: imageValue(Z2JH_IMAGES.service).tag, pullPolicy: 'Never' },
      jupyterhub: { release: 'jhub' },
      config: {
        token: { issuer: ISSUER, audience: AUDIENCE, allowedOrigins: [IMMERSE] },
        redirect: { hubPublicUrl: HUB_PUBLIC },
        omnisci: { host: OMNISCI.host, port: OMNISCI.port, allowedHosts: [OMNISCI.host], allowedPorts: [OMNISCI.port] },
        // Immerse users who never logged in to the hub: the service creates them (admin:users).
        hub: { createUsers: true },
      },
    };
    writeFileSync(join(adminDir, 'handoff-values.yaml'), toYaml(handoffValues));
    // Guide step 4.
    t0 = Date.now();
    await admin(`helm install ${SERVICE} ./helm/omnisci-handoff -n ${NS} -f handoff-values.yaml`);
    times.oursInstallSeconds = seconds(t0);
    // As the guide says: the pods wait for the token z2jh has not generated yet.
    const waiting = await waitFor('the pods to wait for the hub API token', async () => {
      const events = JSON.parse(await kubectl(['get', 'events', '--field-selector', 'reason=FailedMount', '-o', 'json'])) as { items: { message: string }[] };
      return events.items.map((e) => e.message).find((m) => m.includes(`hub.services.${SERVICE}.apiToken`));
    }, 120_000, 500, state);
    expect(waiting).toContain(`references non-existent secret key: hub.services.${SERVICE}.apiToken`);
    expect((await pods('app.kubernetes.io/name=omnisci-handoff')).filter(ready)).toEqual([]);
    // Guide step 5: z2jh-values merged into the z2jh release (the hub then registers the service and
    // z2jh generates its API token, which our pods mount).
    t0 = Date.now();
    const z2jh = await mergeIntoZ2jh('install');
    times.installToReadySeconds = seconds(t0);
    expect(Object.keys(z2jh.hub.services)).toEqual([SERVICE]);
    expect(z2jh.hub.services[SERVICE]).toEqual({ url: `http://${SERVICE}:8470`, display: false, oauth_no_confirm: true });
    expect(z2jh.hub.loadRoles[SERVICE].scopes).toEqual(['servers', 'admin:users', 'read:shares']);
    // z2jh generated the service's token into its hub Secret; our pods read it and the hub accepts it (readyz).
    const hubSecret = JSON.parse(await kubectl(['get', 'secret', 'hub', '-o', 'json'])) as { data: Record<string, string> };
    expect(Buffer.from(hubSecret.data[`hub.services.${SERVICE}.apiToken`]!, 'base64').toString()).toMatch(/^[0-9a-f]{32,}$/);
    // z2jh's hub runs as its own service account, bound to z2jh's Role.
    const [hub] = await pods('component=hub');
    expect(hub!.spec.serviceAccountName).toBe('hub');
    expect(hub!.spec.containers[0]!.image).toBe(Z2JH_IMAGES.hub);
    const webhook = JSON.parse(await node.kubectl(['get', 'mutatingwebhookconfigurations', '-o', 'json']).then((x) => x.stdout)) as { items: { metadata: { name: string } }[] };
    expect(webhook.items.map((w) => w.metadata.name)).toContain(`${SERVICE}-${NS}`);
    figure('z2jh install', `z2jh ${times.z2jhInstallSeconds} s; ours: helm install ${times.oursInstallSeconds} s, then z2jh-values merged and both replicas Ready in ${times.installToReadySeconds} s`);

    front = await frontProxy();
    browser = await launchChromium({ proxy: { server: front.server } });
  }, 900_000);

  test('login mode sso, notebook 6 + jupyterlab-omnisci 3.0.0: a handoff lands on the lab with the session in the pod the hub created; a second reaches the running server', async () => {
    expect(browser).toBeDefined();
    await handoffTwice('carol', 'sso', 'notebook6', true);
  }, 600_000);

  test('login mode handoff + identityCheck, JupyterLab 4 + omnisci-handoff-jupyter: the same', async () => {
    expect(browser).toBeDefined();
    handoffValues.config.hub = { ...handoffValues.config.hub, loginMode: 'handoff', identityCheck: true };
    times.upgradeHandoffMode = await upgradeOurs('login mode handoff + identityCheck');
    siteValues.singleuser.image = imageValue(Z2JH_IMAGES.jupyterlab4);
    const z2jh = await mergeIntoZ2jh('handoff + identityCheck');
    // The shipped authenticator as a z2jh extraFile + extraConfig, and the user role for the OAuth check.
    expect(Object.keys(z2jh.hub.extraFiles)).toEqual(['omnisci-handoff-authenticator']);
    expect(z2jh.hub.loadRoles.user.scopes).toEqual(['self', `access:services!service=${SERVICE}`]);
    await handoffTwice('erin', 'handoff', 'jupyterlab4', true);
  }, 900_000);

  test('JupyterLab 4, a new session for a running server, fast refresh on then off: the lab URL carries its fingerprint, the lab waits until the kubelet delivered it, and the notebook connects with it, never with the old one (issue 26)', async () => {
    expect(browser).toBeDefined();
    const heavy = await heavyDb();
    const kept = structuredClone(handoffValues);
    handoffValues.config.omnisci = { ...handoffValues.config.omnisci, allowedHosts: [OMNISCI.host, STANDIN.host], allowedPorts: [OMNISCI.port, STANDIN.port] };
    handoffValues.config.notebook = { relinkUrl: `${IMMERSE}/dashboards` };
    try {
      times.upgradeStandIn = await upgradeOurs('the HeavyDB stand-in allowed, a re-link URL');
      const user = 'frank';
      const sessions = [randomSessionId(), randomSessionId(), randomSessionId()] as const;
      for (const id of sessions) await heavy.addSession(id, { user, database: 'heavyai' });
      const first = await openNotebook(user, 'handoff', sessions[0], "SELECT 'frank 0'", { connection: STANDIN });
      expect(first.served).toMatchObject({ session: sessions[0], connection: { protocol: STANDIN.protocol, host: STANDIN.host, port: String(STANDIN.port) } });
      const pod = await userPod(user);
      const inPod = async (path: string) => JSON.parse(await kubectl(['exec', pod.metadata.name, '-c', 'notebook', '--', 'cat', path])) as Record<string, any>;
      // notebook.relinkUrl reached the server's Jupyter config (the webhook's ConfigMap, top-level file).
      expect((await inPod('/etc/omnisci-handoff/jupyter/jupyter_server_config.json')).OmniSciHandoff).toEqual({ relink_url: `${IMMERSE}/dashboards` });

      /** A handoff of session `n` to the running server: Immerse's click → the lab → the notebook opened → its cells answered, on session n only. */
      const handoff = async (n: 1 | 2, slow: boolean) => {
        const [old, next] = [sessions[n - 1], sessions[n]];
        await heavy.clearCalls();
        const t0 = Date.now();
        const marks: Record<string, number> = {};
        let notebook = '';
        const flow = await openNotebook(user, 'handoff', next, `SELECT 'frank ${n}'`, {
          connection: STANDIN,
          inLab: async (page) => {
            marks.lab = seconds(t0);
            const cells = page.locator('.jp-NotebookPanel .jp-Notebook .jp-Cell');
            if (slow) {
              const waiting = page.locator('.Toastify__toast', { hasText: 'Waiting for the new OmniSci session to reach this server' });
              await waiting.waitFor({ timeout: 60_000 });
              // While the lab waits, the server still has the old session and no notebook is open.
              expect((await inPod('/var/run/omnisci-handoff/session')).session).toBe(old);
              expect(await cells.count()).toBe(0);
            }
            await cells.nth(1).waitFor({ timeout: SYNC_BOUND_MS });
            marks.notebook = seconds(t0);
            expect((await inPod('/var/run/omnisci-handoff/session')).session).toBe(next);
            expect(await cells.nth(0).locator('.cm-content').innerText()).not.toContain(next);
            const tab = page.locator('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current', { hasText: '.ipynb' });
            await tab.waitFor({ timeout: 60_000 });
            notebook = (await tab.locator('.lm-TabBar-tabLabel').innerText()).trim();
            expect(notebook).toMatch(/^Untitled\d*\.ipynb$/);
          },
        });
        // The notebook the lab opened, run as saved in a kernel of the running server (its environment and
        // Jupyter config, as the lab's kernels get them): its connect() cell reads the session there.
        const ran = JSON.parse(await kubectl(['exec', pod.metadata.name, '-c', 'notebook', '--', 'jupyter', 'nbconvert', '--to', 'notebook', '--execute',
          '--ExecutePreprocessor.timeout=120', '--stdout', notebook])) as { cells: { source: string | string[]; outputs?: { text?: string | string[]; data?: Record<string, string | string[]> }[] }[] };
        marks.connected = seconds(t0);
        const text = (x: string | string[] | undefined) => (Array.isArray(x) ? x.join('') : x ?? '');
        expect(JSON.stringify(ran)).not.toContain(next);
        expect(ran.cells[1]!.outputs!.map((o) => text(o.text) + text(o.data?.['text/plain'])).join('')).toContain("(1, 'AA', 12.5)");
        // The lab URL carried the new session's fingerprint, the one in the Secret's session file; never the id.
        expect(fingerprintOf(flow.lab)).toBe((await storedFile(user)).fingerprint);
        expect(flow.lab).not.toContain(next);
        // The same server: nothing restarted it.
        expect((await userPod(user)).metadata.name).toBe(pod.metadata.name);
        // The kernel's calls carried the new session only, the query this handoff's; the old one was at
        // most checked by the status bar while the lab waited (the server still had it); no disconnect.
        const calls = await heavy.calls();
        expect(calls.filter((c) => c.method === 'sql_execute').map((c) => [c.args['session'], c.args['query']])).toEqual([[next, `SELECT 'frank ${n}'`]]);
        expect(calls.filter((c) => c.method !== 'get_session_info').every((c) => c.args['session'] === undefined || c.args['session'] === next)).toBe(true);
        expect(calls.filter((c) => c.args['session'] === old).every((c) => c.method === 'get_session_info')).toBe(true);
        expect(calls.map((c) => c.method)).not.toContain('disconnect');
        return marks;
      };

      const on = await handoff(1, false);
      handoffValues.config.store = { kubernetes: { fastRefresh: false } };
      times.upgradeRefreshOff = await upgradeOurs('fast refresh off');
      // An update of the pod object makes the kubelet sync it now, and its next periodic sync is then
      // syncFrequency (60 s) plus jitter away; once whatever status that sync wrote is written (a quiet
      // pod), the new session cannot reach the pod before the lab has loaded, so the lab must wait (the
      // reasoning of system.test.ts's fast-refresh-off figure).
      await kubectl(['annotate', 'pod', pod.metadata.name, '--overwrite', `omnisci-handoff-test/synced=${Date.now()}`]);
      await podQuiet({ kubectl: (args) => node.kubectl(['-n', NS, ...args]) }, pod.metadata.name, 5000);
      const off = await handoff(2, true);
      const fmt = (m: Record<string, number>) => `click → lab ${m.lab} s, → notebook on the new session ${m.notebook} s, → connected (query answered) ${m.connected} s`;
      figure('z2jh click → connected notebook, server running, fast refresh on', fmt(on));
      figure('z2jh click → connected notebook, server running, fast refresh off', `${fmt(off)} (${(off.connected! / on.connected!).toFixed(1)}× on)`);
    } finally {
      handoffValues = kept;
    }
    // The release as before (fast refresh on): the doctor's checks that follow are those of the guide's values.
    times.upgradeRestored = await upgradeOurs('fast refresh on again');
  }, 900_000);

  test('doctor in our pod against the live release: every check passes; three breaks an admin makes each fail their check with the fix (exit 1), and pass again once restored', async () => {
    expect(browser).toBeDefined();
    const t0 = Date.now();
    writeFileSync(join(adminDir, 'admin-in-cluster.kubeconfig'), inClusterAdminKubeconfig(), { mode: 0o600 });
    const healthy = await doctor();
    expect(notPassing(healthy)).toEqual([]);
    expect(healthy.code).toBe(0);
    expect([...healthy.checks.keys()]).toEqual(expect.arrayContaining([
      'config', 'kubernetes: api', 'rbac: get secrets', 'rbac: patch pods', 'webhook: registration', 'webhook: tls', 'webhook: service',
      'webhook: selectors', 'notebook: jupyter configmap', 'hub: api', 'hub: scopes', 'hub: public url',
    ]));
    expect(healthy.checks.get('hub: scopes')).toBe('✓ hub: scopes: servers, admin:users, read:shares');
    expect(healthy.checks.get('hub: public url')).toMatch(new RegExp(`^✓ hub: public url: ${HUB_PUBLIC}: JupyterHub \\d`));
    expect(healthy.checks.get('webhook: service')).toMatch(/, 2 ready endpoints$/);
    const passesAgain = async (what: string) => {
      const d = await doctor();
      expect({ what, notPassing: notPassing(d), code: d.code }).toEqual({ what, notPassing: [], code: 0 });
      return d;
    };

    // 1. The service not registered: z2jh upgraded with the site's values only (z2jh-handoff.yaml left out).
    await upgradeZ2jh('without z2jh-handoff.yaml', [`helm upgrade jhub ${Z2JH_CHART} -n ${NS} -f your.yaml`], { oursReady: false });
    // The hub dropped the service and its token; our readiness (the hub accepts the token) fails.
    await waitFor('our pods to turn not Ready', async () => ((await pods('app.kubernetes.io/name=omnisci-handoff')).every((p) => !ready(p)) ? true : undefined), 120_000, 500, state);
    const unregistered = await doctor();
    expect(notPassing(unregistered)).toEqual([
      expect.stringMatching(new RegExp(`^✗ webhook: service: Service ${NS}/${SERVICE} \\(selector [^)]+\\) has no ready endpoint — fix: start the service's pods`)),
      expect.stringMatching(/^✗ hub: api: http:\/\/hub:8081\/hub\/api: the hub rejected the API token \(HTTP 403\) — fix: use the api_token the hub registers for this service/),
      '? hub: scopes: cannot check (the hub rejected the API token) — fix: fix the API token first',
    ]);
    expect(unregistered.code).toBe(1);
    // Restored: merged again. The token key had gone from the hub Secret, so z2jh generated a new one,
    // which our pods read at start: the guide's troubleshooting says to restart them.
    await mergeIntoZ2jh('z2jh-handoff.yaml again', [`kubectl -n ${NS} rollout restart deploy/${SERVICE}`]);
    await passesAgain('registered again');

    // 2. The role missing a scope: z2jh-handoff.yaml edited by hand (admin:users dropped).
    const edited = parseYaml(readFileSync(join(adminDir, 'z2jh-handoff.yaml'), 'utf8')) as Record<string, any>;
    edited.hub.loadRoles[SERVICE].scopes = ['servers', 'read:shares'];
    writeFileSync(join(adminDir, 'z2jh-handoff.yaml'), toYaml(edited));
    await upgradeZ2jh('role without admin:users', [Z2JH_UPGRADE]);
    const scopeless = await doctor();
    expect(notPassing(scopeless)).toEqual([
      '✗ hub: scopes: the token lacks admin:users (hub.createUsers is on) — fix: add admin:users to the service\'s role ' +
        '(z2jh hub.loadRoles, or c.JupyterHub.load_roles; docs/jupyterhub.md, "Role: the minimal scopes")',
    ]);
    expect(scopeless.code).toBe(1);
    await mergeIntoZ2jh('role restored');
    await passesAgain('role restored');

    // 3. The webhook's CA rotated without the caBundle: the admin replaces the TLS Secret with a new CA's certificate.
    const tlsSecret = `${SERVICE}-webhook-tls`;
    await admin([
      'openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -days 30 -subj /CN=rotated-webhook-ca 2>/dev/null',
      `openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout tls.key -out tls.csr -subj /CN=${SERVICE}.${NS}.svc 2>/dev/null`,
      `openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out tls.crt -days 30 -extfile <(printf 'subjectAltName=DNS:${SERVICE}.${NS}.svc') 2>/dev/null`,
      `kubectl -n ${NS} create secret generic ${tlsSecret} --type=kubernetes.io/tls --from-file=ca.crt --from-file=tls.crt --from-file=tls.key --dry-run=client -o yaml | kubectl -n ${NS} apply -f - 2>/dev/null`,
    ].join('\n'));
    // The kubelet refreshes a Secret volume when it syncs the pod: an annotation makes it sync now.
    const rotated = readFileSync(join(adminDir, 'tls.crt'), 'utf8');
    for (const p of await pods('app.kubernetes.io/name=omnisci-handoff')) {
      await kubectl(['annotate', 'pod', p.metadata.name, '--overwrite', `test.omnisci-handoff/sync=${Date.now()}`]);
      await waitFor(`the rotated certificate in ${p.metadata.name}`, async () =>
        ((await kubectl(['exec', p.metadata.name, '--', 'cat', '/etc/omnisci-handoff/tls/tls.crt'])) === rotated ? true : undefined), 120_000, 500);
    }
    const rotatedCa = await doctor();
    expect(notPassing(rotatedCa)).toEqual([
      `✗ webhook: tls: the caBundle (${SERVICE}-webhook-ca) did not issue the webhook certificate (issuer rotated-webhook-ca) — fix: put the CA that issued ` +
        '/etc/omnisci-handoff/tls/tls.crt into the caBundle (helm upgrade re-renders both; with cert-manager check the cert-manager.io/inject-ca-from annotation)',
    ]);
    expect(rotatedCa.code).toBe(1);
    // Restored as the fix says: helm upgrade reads the Secret back and renders its CA into the caBundle.
    await upgradeOurs('caBundle from the rotated Secret');
    const restored = await passesAgain('caBundle re-rendered');
    expect(restored.checks.get('webhook: tls')).toMatch(new RegExp(`^✓ webhook: tls: certificate for ${SERVICE}.${NS}.svc issued by the caBundle's rotated-webhook-ca`));
    times.doctorSeconds = seconds(t0);
    figure('z2jh doctor', `healthy, three breaks and their restores in ${times.doctorSeconds} s`);
  }, 900_000);

  test('Day 2: helm upgrade of ours (a new image tag) during a stream of handoffs loses none; helm upgrade of z2jh (the hub restarts) under a running server: the next handoff lands on it', async () => {
    expect(browser).toBeDefined();
    const user = 'erin'; // handed off in login mode handoff above: her server runs
    const server = (await userPod(user)).metadata.name;
    // A new tag of the service image, loaded into the node as a registry pull would bring it.
    const next = `${imageValue(Z2JH_IMAGES.service).name}:z2jh-next`;
    await podmanOk('tag', Z2JH_IMAGES.service, next);
    const tar = join(tmp, 'service-next.tar');
    await podmanOk('save', '--format', 'docker-archive', '-o', tar, next);
    await node.loadImage(tar);
    rmSync(tar);
    handoffValues.image.tag = 'z2jh-next';
    const t0 = Date.now();
    const upgrade = upgradeOurs('image tag z2jh-next');
    const stream = await handoffStream(user, upgrade);
    times.upgradeNewImage = await upgrade;
    const ours = await pods('app.kubernetes.io/name=omnisci-handoff');
    expect(ours.map((p) => p.spec.containers[0]!.image)).toEqual([next, next]);
    console.log(`stream over the upgrade: ${stream.handoffs} handoffs, ${stream.retries.length} retried:\n${stream.retries.join('\n')}`);
    expect(stream.lost).toBe(0);
    expect(stream.retries.length).toBeLessThanOrEqual(stream.handoffs * (ATTEMPTS - 1));
    expect(stream.handoffs).toBeGreaterThanOrEqual(2);
    expect(await storedSession(user)).toBe(stream.last);
    expect((await userPod(user)).metadata.name).toBe(server);
    figure('z2jh upgrade under handoffs', `${stream.handoffs} handoffs back to back over helm upgrade ${SERVICE} (new image, rolled out in ${times.upgradeNewImage} s): ` +
      `none lost, ${stream.retries.length} retried (at most ${ATTEMPTS} attempts each), ${seconds(t0)} s`);

    // A Day-2 change of the site's z2jh values: the hub restarts, the user's server keeps running.
    siteValues.cull = { timeout: 7200 };
    await mergeIntoZ2jh('cull.timeout changed');
    const s = randomSessionId();
    const flow = await openNotebook(user, 'handoff', s, 'SELECT 2');
    // Her server kept running: the lab waits for the new session's fingerprint.
    expect(fingerprintOf(flow.lab)).toBe((await storedFile(user)).fingerprint);
    expect(await storedSession(user)).toBe(s);
    expect((await userPod(user)).metadata.name).toBe(server);
  }, 900_000);

  test("webhook-free: the webhook off, z2jh-values' singleuser mounts name the user's Secret with {username}, which z2jh's KubeSpawner expands to the store's name", async () => {
    expect(browser).toBeDefined();
    handoffValues.config.webhook = { enabled: false };
    times.upgradeWebhookOff = await upgradeOurs('webhook off');
    const hooks = JSON.parse((await node.kubectl(['get', 'mutatingwebhookconfigurations', '-o', 'json'])).stdout) as { items: { metadata: { name: string } }[] };
    expect(hooks.items.map((w) => w.metadata.name)).not.toContain(`${SERVICE}-${NS}`);
    const z2jh = await mergeIntoZ2jh('webhook-free');
    const secretRef = z2jh.singleuser.storage.extraVolumes.find((v: { name: string }) => v.name === 'omnisci-session').secret.secretName as string;
    expect(secretRef).toBe('omnisci-session-{username}');
    // A name KubeSpawner must escape: the store and the pod must agree on its slug.
    const user = 'dana.quinn';
    const pod = await handoffTwice(user, 'handoff', 'jupyterlab4', false);
    const volumes = Object.fromEntries((pod.spec.volumes ?? []).map((v) => [v.name, v]));
    expect(volumes['omnisci-session']?.secret?.secretName).toBe(secretName('omnisci-session', user));
    expect(secretName('omnisci-session', user)).not.toBe(`omnisci-session-${user}`);
    expect(volumes['omnisci-handoff-session']).toBeUndefined();
  }, 900_000);

  test("header mode behind the HEAVY.AI web server's stand-in: the hub's base_url /jupyter/, Immerse's Jupyter button lands on the lab with the user's HeavyDB session", async () => {
    expect(browser).toBeDefined();
    const t0 = Date.now();
    const heavydb = await heavyDb();
    const toHub = await node.forward(`${proxyIP}:80`);
    // The web server reaches the hub's proxy (--jupyter-url); browsers reach it as http://heavyai.test, and the hub through it.
    const web = await startHeavyAiWebServer(`http://127.0.0.1:${toHub.port}`);
    const heavyai = 'http://heavyai.test';
    front!.hosts.set(new URL(heavyai).host, Number(new URL(web.url).port));
    try {
      hubBase = '/jupyter/';
      siteValues.hub.baseUrl = '/jupyter/';
      handoffValues.jupyterhub.baseUrl = '/jupyter/';
      handoffValues.config.webhook = { enabled: true };
      handoffValues.config.redirect.hubPublicUrl = `${heavyai}/jupyter`;
      handoffValues.config.heavydb = { enabled: true, url: 'http://heavydb:6278/' };
      handoffValues.config.omnisci = { protocol: 'http', host: 'heavydb', port: 6278, allowedHosts: [OMNISCI.host, 'heavydb'], allowedPorts: [OMNISCI.port, 6278] };
      // Our new pods ask the hub at its new base_url: they turn Ready after step 5 (which waits for them).
      times.upgradeHeaderMode = await upgradeOurs('header mode, base_url /jupyter/', { rollout: false });
      const z2jh = await mergeIntoZ2jh('base_url /jupyter/, header mode');
      expect(z2jh.hub.extraConfig['omnisci-handoff']).toContain('header_login = True');

      const user = 'gina'; // a new user: the hub creates her at her first login (hub.createUsers)
      const session = randomSessionId();
      await heavydb.addSession(session, { user, database: 'heavyai' });
      const context = await browser!.newContext();
      const page = await context.newPage();
      const seen: string[] = [];
      page.on('framenavigated', (f) => {
        if (f === page.mainFrame()) seen.push(f.url());
      });
      try {
        // The user is logged in to Immerse: the web server knows their session from its own cookie.
        await context.addCookies([{ name: SESSION_COOKIE, value: session, url: heavyai }]);
        const t1 = Date.now();
        await page.goto(`${heavyai}/?sql=${encodeURIComponent('SELECT 1')}`);
        await page.click('#jupyter');
        await page.waitForURL((u) => u.pathname === `/jupyter/user/${user}/lab`, { timeout: 240_000, waitUntil: 'domcontentloaded' });
        figure('z2jh header mode', `Immerse's Jupyter button to the lab through the web server, base_url /jupyter/: ${seconds(t1)} s (spawn included)`);
        expect(seen).toContain(`${heavyai}/jupyter/user/${user}/lab?omnisci&reset`);
        const served = await page.evaluate(async (path) => (await fetch(path)).json(), `/jupyter/user/${user}/omnisci/session`) as Flow['served'];
        expect(served).toMatchObject({ session, connection: { protocol: 'http', host: 'heavydb', port: '6278' } });
        expect(seen.filter((u) => u.includes(session))).toEqual([]);
      } catch (e) {
        throw new Error(`${(e as Error).message}\nat ${page.url()}: ${(await page.innerText('body').catch(String)).slice(0, 600)}\nnavigations: ${seen.join(' | ')}\n` +
          `web server: ${web.proxied.map((r) => r.path).join(' ')}\n${await state()}`);
      } finally {
        await context.close();
      }
      // The web server sent the session on /jupyter/hub/login only; HeavyDB confirmed it, never ended it.
      expect(web.proxied.filter((r) => r.session).map((r) => r.path)).toEqual(['/jupyter/hub/login']);
      const calls = await heavydb.calls();
      expect(calls.filter((c) => c.args['session'] === session).map((c) => c.method)).toContain('get_session_info');
      expect(calls.filter((c) => c.method === 'disconnect')).toEqual([]);
      expect(await storedSession(user)).toBe(session);
      const pod = await userPod(user);
      expect(podCreator(pod.metadata.name)).toBe(`system:serviceaccount:${NS}:hub`);
      expect(await podEnv(pod)).toMatchObject({ OMNISCI_PROTOCOL: 'http', OMNISCI_HOST: 'heavydb', OMNISCI_PORT: '6278' });
      expect(pod.metadata.annotations?.['omnisci-handoff/secret']).toBe(secretName('omnisci-session', user));
    } finally {
      front!.hosts.delete(new URL(heavyai).host);
      // The forward stays: the web server's keep-alive connections hold it open; the node's stop closes it.
      await web.close();
    }
    times.headerModeSeconds = seconds(t0);
  }, 900_000);

  test('helm uninstall of ours: everything the release made is gone (webhook configuration, admission policies, RBAC), user pods keep running; what stays is what the guide lists, removed as it says', async () => {
    expect(browser).toBeDefined();
    const t0 = Date.now();
    if (handoffValues.config.webhook?.enabled === false) {
      handoffValues.config.webhook = { enabled: true };
      await upgradeOurs('webhook on again');
    }
    const made = (await admin(`helm get manifest ${SERVICE} -n ${NS}`)).split(/^---$/m).map((d) => parseYaml(d) as { kind?: string; metadata?: { name: string } } | null)
      .filter((d): d is { kind: string; metadata: { name: string } } => !!d?.kind).map((d) => `${d.kind}/${d.metadata.name}`);
    console.log(`helm get manifest ${SERVICE}: ${made.join(', ')}`);
    expect(made).toEqual(expect.arrayContaining([
      `MutatingWebhookConfiguration/${SERVICE}-${NS}`, 'Role/omnisci-handoff', 'RoleBinding/omnisci-handoff', 'ServiceAccount/omnisci-handoff', 'NetworkPolicy/omnisci-handoff',
      expect.stringMatching(/^ValidatingAdmissionPolicy\//), expect.stringMatching(/^ValidatingAdmissionPolicyBinding\//),
    ]));
    const users = (await pods('component=singleuser-server')).filter(ready).map((p) => p.metadata.name).sort();
    expect(users.length).toBe(5);
    const erin = await userPod('erin');
    const erinSession = await storedSession('erin');
    const sessionIn = async (pod: Pod) => (JSON.parse(await kubectl(['exec', pod.metadata.name, '-c', 'notebook', '--', 'cat', '/var/run/omnisci-handoff/session'])) as { session: string }).session;
    await waitFor("erin's last session in her pod", async () => ((await sessionIn(erin)) === erinSession ? true : undefined), 60_000, 500);

    await admin(`helm uninstall ${SERVICE} -n ${NS}`);
    const left = [];
    for (const m of made) if ((await node.kubectl(['-n', NS, 'get', m, '--ignore-not-found', '-o', 'name'])).stdout.trim()) left.push(m);
    expect(left).toEqual([]);
    await waitFor('our pods to be gone', async () => ((await pods('app.kubernetes.io/name=omnisci-handoff')).length === 0 ? true : undefined), 120_000, 500, state);
    // The users' servers keep running, with their sessions.
    expect((await pods('component=singleuser-server')).filter(ready).map((p) => p.metadata.name).sort()).toEqual(users);
    expect(await sessionIn(erin)).toBe(erinSession);

    // What stays (docs/admin-guide.md "Uninstall"): the session Secrets, the keys Secret, the z2jh side.
    const sessions = (await kubectl(['get', 'secrets', '-l', 'app.kubernetes.io/managed-by=omnisci-handoff', '-o', 'name'])).trim().split('\n').sort();
    expect(sessions).toEqual(['carol', 'dana.quinn', 'erin', 'frank', 'gina'].map((u) => `secret/${secretName('omnisci-session', u)}`).sort());
    await admin([
      `kubectl -n ${NS} delete secret -l app.kubernetes.io/managed-by=omnisci-handoff`,
      `kubectl -n ${NS} delete secret omnisci-handoff-keys`,
    ].join('\n'));
    await upgradeZ2jh('without z2jh-handoff.yaml (uninstalled)', [`helm upgrade jhub ${Z2JH_CHART} -n ${NS} -f your.yaml`], { oursReady: false });
    const ofOurs = async () => Object.keys((JSON.parse(await kubectl(['get', 'secret', 'hub', '-o', 'json'])) as { data: Record<string, string> }).data).filter((k) => k.includes(SERVICE));
    // The token went with hub.services; the authenticator's file (a z2jh extraFile, written as
    // stringData) stays in the hub Secret, unmounted: the guide removes it by hand.
    expect(await ofOurs()).toEqual(['omnisci-handoff-authenticator']);
    await admin(`kubectl -n ${NS} patch secret hub --type=json -p '[{"op":"remove","path":"/data/omnisci-handoff-authenticator"}]'`);
    expect(await ofOurs()).toEqual([]);
    expect((await kubectl(['get', 'secrets', '-o', 'name'])).split('\n').filter((n) => n.includes('omnisci'))).toEqual([]);
    expect((await node.httpGet(`http://${proxyIP}:80${basePath()}healthz`, 5000)).status).not.toBe(200);
    expect((await pods('component=singleuser-server')).filter(ready).map((p) => p.metadata.name).sort()).toEqual(users);
    times.uninstallSeconds = seconds(t0);
    figure('z2jh uninstall', `webhook back on, helm uninstall, the guide's leftovers removed, in ${times.uninstallSeconds} s`);
  }, 600_000);
});
