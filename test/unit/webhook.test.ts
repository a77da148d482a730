import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fastJsonPatch from 'fast-json-patch';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { ConfigError, resolveConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { secretName } from '../../src/k8s/layout.js';
import { jupyterConfigFiles } from '../../src/notebook/outputs.js';
import { jupyterConfigMapData, jupyterConfigMapItems } from '../../src/notebook/configmap.js';
import { createMetrics } from '../../src/metrics.js';
import { startWebhookServer, type WebhookServer } from '../../src/webhook/server.js';
import { admissionReview, kubespawnerPod } from '../support/kubespawner-pod.js';
import { makeCert, type TestCert } from '../support/tls.js';

let dir: string;
let cert: TestCert;
const servers: WebhookServer[] = [];

function config(webhook: Record<string, unknown> = {}, raw: Record<string, unknown> = {}): Config {
  return resolveConfig(
    {
      token: { issuer: 'immerse', audience: 'jupyterhub', algorithms: ['HS256'], keys: { hmacSecretEnv: 'TEST_HMAC' } },
      store: { backend: 'kubernetes', kubernetes: { namespace: 'hub' } },
      ...raw,
      webhook: { enabled: true, host: '127.0.0.1', port: 0, certFile: cert.certFile, keyFile: cert.keyFile, ...webhook },
    },
    { TEST_HMAC: 'x'.repeat(32) },
  );
}

async function start(c = config(), deps: Parameters<typeof startWebhookServer>[1] = {}): Promise<WebhookServer> {
  const s = await startWebhookServer(c, deps);
  servers.push(s);
  return s;
}

interface Reply {
  status: number;
  text: string;
  json: any;
  fingerprint: string;
}

function post(port: number, body: string, opts: { ca?: string; path?: string; method?: string; contentType?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: opts.path ?? '/mutate',
        method: opts.method ?? 'POST',
        ca: opts.ca ?? cert.cert,
        agent: false, // a fresh TLS handshake each time (certificate rotation)
        headers: { 'Content-Type': opts.contentType ?? 'application/json' },
      },
      (res) => {
        const fingerprint = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, text, json, fingerprint });
        });
      },
    );
    req.on('error', reject);
    req.end(opts.method === 'GET' ? undefined : body);
  });
}

/** Sends the pod for admission; returns the response and the pod with the patch applied (RFC 6902, validated). */
async function admit(port: number, pod: Record<string, any>, over: Record<string, unknown> = {}) {
  const review = admissionReview(pod, over);
  const reply = await post(port, JSON.stringify(review));
  expect(reply.status).toBe(200);
  const response = reply.json.response;
  expect(reply.json).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' });
  expect(response.uid).toBe(review.request.uid);
  expect(response.allowed).toBe(true);
  let patched = structuredClone(pod);
  let ops: fastJsonPatch.Operation[] = [];
  if (response.patch !== undefined) {
    expect(response.patchType).toBe('JSONPatch');
    ops = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8'));
    patched = fastJsonPatch.applyPatch(patched, ops, true, false).newDocument;
  } else {
    expect(response.patchType).toBeUndefined();
  }
  return { response, ops, pod: patched };
}

/** Admits, then admits the result again (reinvocationPolicy: IfNeeded): the second time changes nothing. */
async function admitTwice(port: number, pod: Record<string, any>) {
  const first = await admit(port, pod);
  const second = await admit(port, first.pod);
  expect(second.response.patch).toBeUndefined();
  expect(second.pod).toEqual(first.pod);
  return first;
}

const nb = (p: Record<string, any>, name = 'notebook') => p.spec.containers.find((c: any) => c.name === name);
const envOf = (p: Record<string, any>, name: string) => nb(p).env.filter((e: any) => e.name === name);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'omnisci-webhook-'));
  cert = makeCert(dir, 'webhook-a');
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

describe('patch for KubeSpawner 7 / z2jh single-user pods', () => {
  let port: number;
  beforeAll(async () => {
    port = (await start(config(), { namespace: 'hub' })).port;
  });

  test('injects secretKeyRef env vars, the Secret volume, the Jupyter config, and is idempotent', async () => {
    const user = 'alice';
    const original = kubespawnerPod({ user });
    const { pod, ops } = await admitTwice(port, original);
    const secret = secretName('omnisci-session', user);

    // Env: references only, never literal values; KubeSpawner's env untouched and first.
    const env = nb(pod).env;
    expect(env.slice(0, nb(original).env.length)).toEqual(nb(original).env);
    for (const [name, key] of [['OMNISCI_PROTOCOL', 'protocol'], ['OMNISCI_HOST', 'host'], ['OMNISCI_PORT', 'port']]) {
      expect(envOf(pod, name!)).toEqual([{ name, valueFrom: { secretKeyRef: { name: secret, key, optional: true } } }]);
    }
    expect(envOf(pod, 'JUPYTER_CONFIG_PATH')).toEqual([{ name: 'JUPYTER_CONFIG_PATH', value: '/etc/omnisci-handoff/jupyter' }]);

    // Session: whole-directory, read-only Secret mount with only the session file; fsGroup 100 can read 0440.
    const c = config();
    expect(nb(pod).volumeMounts).toEqual([
      ...nb(original).volumeMounts,
      { name: 'omnisci-handoff-session', mountPath: '/var/run/omnisci-handoff', readOnly: true },
      { name: 'omnisci-handoff-jupyter', mountPath: '/etc/omnisci-handoff/jupyter', readOnly: true },
    ]);
    expect(JSON.stringify(pod)).not.toContain('subPath');
    expect(pod.spec.volumes).toEqual([
      ...original.spec.volumes,
      {
        name: 'omnisci-handoff-session',
        secret: { secretName: secret, optional: true, defaultMode: 0o440, items: [{ key: 'session', path: 'session' }] },
      },
      {
        name: 'omnisci-handoff-jupyter',
        configMap: { name: 'omnisci-handoff-jupyter', optional: true, defaultMode: 0o444, items: jupyterConfigMapItems(c.notebook) },
      },
    ]);
    expect(pod.metadata.annotations['omnisci-handoff/secret']).toBe(secret);
    // The annotation key's '/' is escaped as ~1 (RFC 6901).
    expect(ops.map((o) => o.path)).toContain('/metadata/annotations/omnisci-handoff~1secret');
    // Nothing else changed.
    const { containers: _c, volumes: _v, ...restSpec } = pod.spec;
    const { containers: _oc, volumes: _ov, ...origRestSpec } = original.spec;
    expect(restSpec).toEqual(origRestSpec);
    expect(pod.spec.initContainers).toEqual(original.spec.initContainers);
  });

  test('the ConfigMap items put both config files under the mount dir, pointing at the session file', () => {
    const c = config();
    const data = jupyterConfigMapData(c.notebook);
    const items = jupyterConfigMapItems(c.notebook);
    const files = jupyterConfigFiles(c.notebook);
    expect(items.map((i) => i.path).sort()).toEqual(Object.keys(files).sort());
    expect(items.map((i) => i.path)).toContain('jupyter_server_config.d/omnisci-handoff.json');
    for (const { key, path } of items) {
      expect(key).toMatch(/^[-._a-zA-Z0-9]+$/); // a valid ConfigMap key
      expect(data[key]).toBe(files[path]);
    }
    expect(JSON.parse(data['jupyter_server_config.json']!).OmniSciSessionManager.session_file).toBe(
      '/var/run/omnisci-handoff/session',
    );
  });

  test('creates absent arrays (no env, mounts or volumes) and uses 0444 without an fsGroup', async () => {
    const original = kubespawnerPod({ user: 'bob', bare: true, fsGroup: null });
    expect(nb(original).env).toBeUndefined();
    const { pod, ops } = await admitTwice(port, original);
    expect(ops.filter((o) => o.path.endsWith('/-'))).toEqual([]);
    expect(nb(pod).env.map((e: any) => e.name)).toEqual(['OMNISCI_PROTOCOL', 'OMNISCI_HOST', 'OMNISCI_PORT', 'JUPYTER_CONFIG_PATH']);
    expect(nb(pod).volumeMounts).toHaveLength(2);
    expect(pod.spec.volumes[0].secret.defaultMode).toBe(0o444);
  });

  test("the admin's explicit settings win; JUPYTER_CONFIG_PATH is appended to", async () => {
    const original = kubespawnerPod({
      user: 'carol',
      env: [
        { name: 'OMNISCI_HOST', value: 'heavy.internal' },
        { name: 'OMNISCI_PORT', valueFrom: { configMapKeyRef: { name: 'omnisci', key: 'port' } } },
        { name: 'JUPYTER_CONFIG_PATH', value: '/opt/conf' },
      ],
      mounts: [{ name: 'admin-session', mountPath: '/var/run/omnisci-handoff/' }],
      volumes: [{ name: 'admin-session', emptyDir: {} }],
    });
    const { pod } = await admitTwice(port, original);
    expect(envOf(pod, 'OMNISCI_HOST')).toEqual([{ name: 'OMNISCI_HOST', value: 'heavy.internal' }]);
    expect(envOf(pod, 'OMNISCI_PORT')).toEqual([{ name: 'OMNISCI_PORT', valueFrom: { configMapKeyRef: { name: 'omnisci', key: 'port' } } }]);
    expect(envOf(pod, 'OMNISCI_PROTOCOL')[0].valueFrom.secretKeyRef.key).toBe('protocol');
    expect(envOf(pod, 'JUPYTER_CONFIG_PATH')).toEqual([{ name: 'JUPYTER_CONFIG_PATH', value: '/opt/conf:/etc/omnisci-handoff/jupyter' }]);
    // Their mount at the session dir stays; ours is not added.
    expect(nb(pod).volumeMounts.filter((m: any) => m.mountPath.startsWith('/var/run/omnisci-handoff'))).toEqual([
      { name: 'admin-session', mountPath: '/var/run/omnisci-handoff/' },
    ]);
    expect(pod.spec.volumes.map((v: any) => v.name)).not.toContain('omnisci-handoff-session');
    expect(pod.spec.volumes.map((v: any) => v.name)).toContain('omnisci-handoff-jupyter');
  });

  test('named servers use the same per-user Secret', async () => {
    const user = 'dave';
    const { pod } = await admitTwice(port, kubespawnerPod({ user, server: 'gpu-large' }));
    expect(pod.metadata.annotations['hub.jupyter.org/servername']).toBe('gpu-large');
    expect(pod.spec.volumes.find((v: any) => v.secret)?.secret.secretName).toBe('omnisci-session-dave');
    expect(envOf(pod, 'OMNISCI_HOST')[0].valueFrom.secretKeyRef.name).toBe('omnisci-session-dave');
  });

  test.each(['Alice.Smith@Example.com', 'ünïcødé', 'a~b/c', '123', 'x'.repeat(70)])(
    'odd user name %s maps to the slugged Secret',
    async (user) => {
    const { pod } = await admitTwice(port, kubespawnerPod({ user }));
    const name = pod.spec.volumes.find((v: any) => v.secret)?.secret.secretName;
    expect(name).toBe(secretName('omnisci-session', user));
    expect(name).toMatch(/^omnisci-session-[a-z][-a-z0-9]*---[0-9a-f]{8}$/);
    expect(pod.metadata.annotations['omnisci-handoff/secret']).toBe(name);
    expect(pod.metadata.annotations['hub.jupyter.org/username']).toBe(user);
    },
  );

  test('finds the notebook container behind a sidecar', async () => {
    const { pod, ops } = await admitTwice(port, kubespawnerPod({ user: 'erin', sidecarFirst: true }));
    expect(ops.every((o) => !o.path.startsWith('/spec/containers/0'))).toBe(true);
    expect(pod.spec.containers[0]).toEqual({ name: 'proxy-sidecar', image: 'example/sidecar:1', env: [] });
    expect(envOf(pod, 'OMNISCI_HOST')).toHaveLength(1);
  });

  test('a pod without the notebook container is allowed unchanged', async () => {
    const { response } = await admit(port, kubespawnerPod({ user: 'frank', containerName: 'lab' }));
    expect(response.patch).toBeUndefined();
  });

  test('non-matching reviews are allowed without a patch', async () => {
    const hubPod = kubespawnerPod({ user: 'gina' });
    hubPod.metadata.labels.component = 'hub';
    expect((await admit(port, hubPod)).response.patch).toBeUndefined();

    const noAnnotation = kubespawnerPod({ user: 'gina' });
    delete noAnnotation.metadata.annotations['hub.jupyter.org/username'];
    expect((await admit(port, noAnnotation)).response.patch).toBeUndefined();

    const pod = kubespawnerPod({ user: 'gina' });
    expect((await admit(port, pod, { operation: 'UPDATE', oldObject: pod })).response.patch).toBeUndefined();
    expect((await admit(port, pod, { namespace: 'elsewhere' })).response.patch).toBeUndefined();
    expect(
      (await admit(port, { metadata: { name: 'x' } }, { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } })).response.patch,
    ).toBeUndefined();
  });

  test('a configured container name and custom env names are honoured', async () => {
    const s = await start(
      config({ containerName: 'lab' }, { notebook: { env: { protocol: 'HEAVY_PROTO', host: 'HEAVY_HOST', port: 'HEAVY_PORT' } } }),
    );
    const { pod } = await admitTwice(s.port, kubespawnerPod({ user: 'hank', containerName: 'lab' }));
    expect(nb(pod, 'lab').env.filter((e: any) => e.name.startsWith('HEAVY_')).map((e: any) => e.valueFrom.secretKeyRef.key)).toEqual([
      'protocol',
      'host',
      'port',
    ]);
    expect(nb(pod, 'lab').env.some((e: any) => e.name.startsWith('OMNISCI_'))).toBe(false);
  });

  test('notebook.envFamilies add <FAMILY>_PROTOCOL/HOST/PORT from the same Secret keys, each name once', async () => {
    const s = await start(config({}, { notebook: { envFamilies: ['OMNISCI', 'HEAVYAI'] } }));
    const { pod } = await admitTwice(s.port, kubespawnerPod({ user: 'ivy' }));
    const refs = nb(pod).env.filter((e: any) => /^(OMNISCI|HEAVYAI)_/.test(e.name)).map((e: any) => [e.name, e.valueFrom.secretKeyRef.key]);
    expect(refs).toEqual([
      ['OMNISCI_PROTOCOL', 'protocol'],
      ['OMNISCI_HOST', 'host'],
      ['OMNISCI_PORT', 'port'],
      ['HEAVYAI_PROTOCOL', 'protocol'],
      ['HEAVYAI_HOST', 'host'],
      ['HEAVYAI_PORT', 'port'],
    ]);
  });

  test('malformed reviews get 400 with a clear message', async () => {
    const cases: [string, RegExp][] = [
      ['{not json', /not JSON/],
      ['[]', /not a JSON object/],
      [JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'u' } }), /admission\.k8s\.io\/v1/],
      [JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), /request is missing/],
      [JSON.stringify(admissionReview(kubespawnerPod({ user: 'x' }), { uid: '' })), /request\.uid/],
      [JSON.stringify(admissionReview('a string')), /request\.object/],
    ];
    for (const [body, message] of cases) {
      const r = await post(port, body);
      expect(r.status).toBe(400);
      expect(r.text).toMatch(message);
    }
    expect((await post(port, '{}', { contentType: 'text/plain' })).status).toBe(415);
    expect((await post(port, '', { method: 'GET' })).status).toBe(405);
    expect((await post(port, '', { method: 'GET', path: '/healthz' })).text).toBe('ok\n');
    expect((await post(port, '{}', { path: '/other' })).status).toBe(404);
  });
});

describe('metrics', () => {
  test('admissions by outcome and a latency histogram in the given registry', async () => {
    const registry = new Registry();
    const { port } = await start(config(), { metrics: createMetrics(registry, false), namespace: 'hub' });
    await admit(port, kubespawnerPod({ user: 'ivy' }));
    await admit(port, kubespawnerPod({ user: 'ivy', containerName: 'lab' }));
    const other = kubespawnerPod({ user: 'ivy' });
    other.metadata.labels.component = 'hub';
    await admit(port, other);
    await post(port, 'nope');
    const text = await registry.metrics();
    for (const outcome of ['patched', 'no_container', 'not_matching', 'invalid'])
      expect(text).toContain(`omnisci_handoff_webhook_admissions_total{outcome="${outcome}"} 1`);
    expect(text).toContain('omnisci_handoff_webhook_admission_duration_seconds_count 4');
  });
});

describe('TLS', () => {
  test('a rotated certificate is served without a restart; a broken one is skipped', async () => {
    const live = { certFile: join(dir, 'live.crt'), keyFile: join(dir, 'live.key') };
    const a = makeCert(dir, 'rot-a');
    const b = makeCert(dir, 'rot-b');
    copyFileSync(a.certFile, live.certFile);
    copyFileSync(a.keyFile, live.keyFile);
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const s = await start(config({ ...live, certReloadSeconds: 1 }), { logger: pino({ level: 'info' }, sink) });
    const fp = (c: TestCert) => new X509Certificate(c.cert).fingerprint256;
    const served = async (ca: string) => (await post(s.port, '', { method: 'GET', path: '/healthz', ca })).fingerprint;
    expect(await served(a.cert)).toBe(fp(a));

    // A certificate whose key does not match: refused, the old pair keeps serving.
    copyFileSync(b.certFile, live.certFile);
    while (!lines.some((l) => l.includes('do not load'))) await sleep(50);
    expect(await served(a.cert)).toBe(fp(a));

    copyFileSync(b.keyFile, live.keyFile);
    while (!lines.some((l) => l.includes('webhook certificate reloaded'))) await sleep(50);
    expect(await served(b.cert)).toBe(fp(b));
  }, 30_000);
});


describe('config checks', () => {
  const base = { token: { issuer: 'i', audience: 'a', algorithms: ['HS256'], keys: { hmacSecretEnv: 'TEST_HMAC' } } };
  const problems = (raw: Record<string, unknown>) => {
    try {
      resolveConfig({ ...base, ...raw }, { TEST_HMAC: 'x' });
      return [];
    } catch (e) {
      return (e as ConfigError).problems.map((p) => `${p.path}: ${p.message}`);
    }
  };

  test('the webhook needs certificate files and the kubernetes backend', () => {
    expect(problems({ webhook: { enabled: true } })).toEqual([
      'webhook.enabled: needs store.backend kubernetes',
      'webhook: certFile and keyFile are required when the webhook is enabled',
    ]);
    expect(problems({ webhook: { enabled: true, certFile: 'c', keyFile: 'k' }, store: { backend: 'kubernetes' } })).toEqual([]);
  });

  test('the session file name cannot shadow another Secret key', () => {
    expect(problems({ store: { backend: 'kubernetes' }, notebook: { sessionFileName: 'state' } })).toEqual([
      'notebook.sessionFileName: must not be one of protocol, host, port, state',
    ]);
  });
});
