/**
 * The one-node cluster itself (test/support/k8s-node.ts): real pods on a real kubelet, so that later
 * tests can install the chart and spawn single-user servers. It proves the mechanics the project
 * relies on: scheduling, readiness, Services (kube-proxy), in-cluster API access with a
 * ServiceAccount token, Secret volumes and how fast their updates reach a running pod (plain, and
 * with the pod annotation that the store's fast refresh writes), and a Deployment replacing a pod.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ECHO_IMAGE, echoImage, missingPrerequisites, podQuiet, startK8sNode, type K8sNode } from '../support/k8s-node.js';
import { requirePrerequisite } from '../support/prerequisites.js';

const suite = requirePrerequisite(missingPrerequisites(), 'as root: bash scripts/deps/k8s-node.sh');

/** The kubelet's syncFrequency (its default): the bound for a Secret update reaching a volume. */
const SYNC_SECONDS = 60;

let node: K8sNode;
let tmp: string;

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await node.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}
const apply = (...objects: object[]) => kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

interface Pod {
  metadata: { name: string; deletionTimestamp?: string };
  status: { podIP?: string; conditions?: { type: string; status: string }[] };
}
const ready = (p: Pod) => !p.metadata.deletionTimestamp && !!p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
const pods = async (selector: string): Promise<Pod[]> => JSON.parse(await kubectl(['get', 'pods', '-l', selector, '-o', 'json'])).items;

const echoContainer = {
  name: 'echo',
  image: ECHO_IMAGE,
  imagePullPolicy: 'Never',
  ports: [{ containerPort: 8080 }],
  readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 1 },
  securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, runAsNonRoot: true, runAsUser: 65534 },
};

suite('one-node cluster', () => {
  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'node-test-'));
    node = await startK8sNode({ images: [echoImage(tmp)], syncFrequency: `${SYNC_SECONDS}s` });
    console.log(`one-node cluster ready in ${node.startupSeconds.toFixed(1)}s`);
  }, 600_000);

  afterAll(async () => {
    const started = Date.now();
    await node?.stop();
    rmSync(tmp, { recursive: true, force: true });
    if (!node) return;
    console.log(`one-node cluster stopped in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    // Nothing left behind: no process of the node (its PID 1 is gone), no temp dir, no cgroup.
    expect(existsSync(`/proc/${node.initPid}`)).toBe(false);
    expect(existsSync(node.dir)).toBe(false);
    for (const m of node.cgroupMounts) expect(existsSync(join(m, node.cgroupRoot))).toBe(false);
  }, 60_000);

  let clusterIP: string;

  test('a Deployment of 2 replicas becomes Ready and its ClusterIP Service spreads requests over both pods', async () => {
    await apply(
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'echo', namespace: 'default' },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: 'echo' } },
          template: { metadata: { labels: { app: 'echo' } }, spec: { containers: [echoContainer] } },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'echo', namespace: 'default' },
        spec: { selector: { app: 'echo' }, ports: [{ port: 80, targetPort: 8080 }] },
      },
    );
    await kubectl(['rollout', 'status', 'deployment/echo', '--timeout=120s']);
    const running = (await pods('app=echo')).filter(ready);
    expect(running).toHaveLength(2);
    clusterIP = (await kubectl(['get', 'service', 'echo', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    expect(clusterIP).toMatch(/^10\.96\.0\.\d+$/);

    // From the test process, through the node's network (kube-proxy's iptables rules in its netns).
    // kube-proxy syncs at most once a second: right after the rollout it may still reject the
    // Service (connection refused) or know one endpoint only.
    const answers = new Map<string, number>();
    await waitFor('answers from both pods', async () => {
      const r = await node.httpGet(`http://${clusterIP}/`);
      answers.set(r.body.trim(), (answers.get(r.body.trim()) ?? 0) + 1);
      return answers.size === 2 ? true : undefined;
    }, 30_000, 20);
    expect([...answers.keys()].sort()).toEqual(running.map((p) => p.metadata.name).sort());
    // Once both are routed, kube-proxy's rules spread new connections at random (how evenly is a
    // figure: asserting both among 40 would be luck); every one is answered by one of the pods.
    answers.clear();
    for (let i = 0; i < 40; i++) {
      const r = await node.httpGet(`http://${clusterIP}/`);
      expect(r.status).toBe(200);
      answers.set(r.body.trim(), (answers.get(r.body.trim()) ?? 0) + 1);
    }
    console.log(`40 requests to the Service: ${JSON.stringify(Object.fromEntries(answers))}`);
    expect([...answers.keys()].filter((k) => !running.some((p) => p.metadata.name === k))).toEqual([]);

    // A command inside the node's network namespace.
    const curl = await node.exec(['curl', '-sS', '--max-time', '5', `http://${clusterIP}/healthz`]);
    expect(curl).toMatchObject({ code: 0, stdout: 'ok' });

    // From a pod (kubectl exec: API server → kubelet → containerd): the Service, and the API server
    // through the "kubernetes" Service with the pod's ServiceAccount token, as an in-cluster client.
    const pod = running[0]!.metadata.name;
    expect(await kubectl(['exec', pod, '--', '/echo', 'get', `http://${clusterIP}/healthz`])).toBe('200 OK\nok');
    await kubectl(['create', 'rolebinding', 'default-view', '--clusterrole=view', '--serviceaccount=default:default']);
    const list = await kubectl(['exec', pod, '--', '/echo', 'get', 'https://10.96.0.1/api/v1/namespaces/default/pods']);
    expect(list).toMatch(/^200 OK\n/);
    expect(JSON.parse(list.slice(list.indexOf('\n') + 1)).items).toHaveLength(2);
  }, 180_000);

  test('a Secret volume is readable, and an update reaches the running pod at once after a pod annotation', async () => {
    const secret = (value: string) => ({
      apiVersion: 'v1', kind: 'Secret', metadata: { name: 'session', namespace: 'default' }, stringData: { value },
    });
    await apply(secret('one'), {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'reader', namespace: 'default', labels: { app: 'reader' } },
      spec: {
        // No readiness probe, as KubeSpawner's pods have none.
        containers: [{ ...echoContainer, readinessProbe: undefined, volumeMounts: [{ name: 'session', mountPath: '/var/run/session', readOnly: true }] }],
        volumes: [{ name: 'session', secret: { secretName: 'session' } }],
      },
    });
    await kubectl(['wait', '--for=condition=Ready', 'pod/reader', '--timeout=120s']);
    const [reader] = await pods('app=reader');
    const read = async () => (await node.httpGet(`http://${reader!.status.podIP}:8080/file?path=/var/run/session/value`)).body;
    expect(await read()).toBe('one');

    // Any update of the pod object makes the kubelet sync the pod (and remount its Secret volumes) at
    // once; otherwise it syncs it syncFrequency plus up to 50 % jitter after the last sync
    // (pod_workers.go: wait.Jitter(syncFrequency, 0.5)). So an update right after a sync of a quiet
    // pod (podQuiet: no update of the pod object for a while) that arrives within 10 s was brought
    // by the annotation, never by a lucky periodic sync, ≥ 50 s away. (The plain update waiting for
    // the periodic sync is timed with the real service in system.test.ts, scenario 3.)
    const arrival = async (value: string, annotate: boolean, timeoutMs: number) => {
      const t0 = Date.now();
      await apply(secret(value));
      // What the store's fast refresh writes.
      if (annotate) await kubectl(['annotate', '--overwrite', 'pod/reader', `omnisci-handoff.test/refresh=${Date.now()}`]);
      await waitFor(`${value} in the volume`, async () => ((await read()) === value ? true : undefined), timeoutMs, 100);
      return (Date.now() - t0) / 1000;
    };
    // The young pod's status settled first; then a sync, and a quiet pod after it.
    await podQuiet(node, 'reader', 10_000);
    await arrival('two', true, 30_000);
    await podQuiet(node, 'reader', 5_000);
    const annotated = await arrival('three', true, 30_000);
    console.log(`Secret update in the pod's volume with a pod annotation, 5 s after a sync: ${annotated.toFixed(1)}s (sync period ${SYNC_SECONDS}s)`);
    expect(annotated).toBeLessThan(10);
  }, 300_000);

  test('deleting a pod: the Deployment replaces it and the Service answers from the new one', async () => {
    const before = (await pods('app=echo')).filter(ready).map((p) => p.metadata.name);
    expect(before).toHaveLength(2);
    const t0 = Date.now();
    await kubectl(['delete', 'pod', before[0]!, '--wait=false']);
    const after = await waitFor('a replacement pod', async () => {
      const names = (await pods('app=echo')).filter(ready).map((p) => p.metadata.name);
      return names.length === 2 && !names.includes(before[0]!) ? names : undefined;
    }, 120_000, 500);
    console.log(`pod replaced and Ready in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    const fresh = after.find((n) => n !== before[1])!;
    await waitFor('the Service to answer from the new pod', async () => {
      const r = await node.httpGet(`http://${clusterIP}/`);
      return r.body.trim() === fresh ? true : undefined;
    }, 30_000, 100);
  }, 180_000);
});
