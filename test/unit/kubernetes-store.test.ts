/** The Kubernetes backend's own behaviour: Secret layout, conflicts, API errors, fast refresh, GC. The shared rules run in test/support/store-contract.ts. */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createKubernetesStore, type KubernetesStore } from '../../src/store/kubernetes.js';
import { secretFor } from '../../src/store/secret.js';
import { POD_REFRESH_ANNOTATION, secretName } from '../../src/k8s/layout.js';
import { labelSlug, safeSlug } from '../../src/k8s/slug.js';
import { makeHandoff } from '../support/core.js';
import { rejection } from '../support/store-contract.js';
import { k8sConfig, k8sTarget, type K8sTarget } from '../support/k8s-target.js';

const now = () => Math.floor(Date.now() / 1000);
const prefix = `omnisci-t${randomBytes(3).toString('hex')}`;
const unb64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString('utf8');

const handoff = makeHandoff;

let t: K8sTarget;
/** The loopback stand-in: `t` itself unless OMNISCI_TEST_KUBECONFIG points elsewhere. */
let fakeTarget: K8sTarget;
/** A test that steers the API server (injected errors, interleavings, pods): it runs on the stand-in, never skipped. */
const fakeOnly = (name: string, fn: () => Promise<void>) =>
  test(name, async () => {
    const configured = t;
    t = fakeTarget;
    try {
      await fn();
    } finally {
      t = configured;
    }
  });
const stores: KubernetesStore[] = [];
function store(kubernetes: Record<string, unknown> = {}, raw: Record<string, unknown> = {}, target = t): KubernetesStore {
  const s = createKubernetesStore(k8sConfig(target, { secretPrefix: prefix, ...kubernetes }, raw));
  stores.push(s);
  return s;
}
let userSeq = 0;
const newUser = (base = 'user') => `${base}${++userSeq}-${randomBytes(2).toString('hex')}`;

beforeAll(async () => {
  t = await k8sTarget();
  fakeTarget = t.fake ? t : await k8sTarget({ fake: true });
});
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await t.close();
  if (fakeTarget !== t) await fakeTarget.close();
});

describe('Secret layout', () => {
  test('one Secret per user, named <prefix>-<safe slug of at most 48> (KubeSpawner\'s {username}), with session file, connection keys, state, labels and annotation', async () => {
    const s = store();
    const user = `Alice.Smith@Example.com-${randomBytes(2).toString('hex')}`; // not a DNS label: hashed slug
    const h = handoff(user);
    const r = await s.accept(h);
    expect(r.outcome).toBe('stored');

    const name = secretName(prefix, user);
    expect(name).toBe(`${prefix}-${safeSlug(user, 48)}`);
    expect(name).toMatch(/-alice-smith-example-com-[0-9a-f]{4}---[0-9a-f]{8}$/);
    const sec = await t.secret(name);
    expect(sec?.type).toBe('Opaque');
    expect(sec?.metadata?.labels).toMatchObject({
      'app.kubernetes.io/managed-by': 'omnisci-handoff',
      'omnisci-handoff/user': safeSlug(user, 48),
    });
    expect(sec?.metadata?.annotations?.['omnisci-handoff/username']).toBe(user);
    const data = sec?.data ?? {};
    expect(Object.keys(data).sort()).toEqual(['host', 'port', 'protocol', 'session', 'state']);
    expect(JSON.parse(unb64(data.session))).toEqual({ session: h.session, query: 'SELECT 1' });
    expect([unb64(data.protocol), unb64(data.host), unb64(data.port)]).toEqual([h.connection.protocol, h.connection.host, String(h.connection.port)]);
    expect(JSON.parse(unb64(data.state))).toMatchObject({ user, session: h.session, iat: h.iat, jtis: [{ jti: h.jti }] });

    expect(await s.get(user)).toMatchObject({ user, session: h.session, connection: h.connection });
    expect(await s.get(newUser())).toBeUndefined();
  });

  test("the largest record fits a Secret (1 MiB of data): store.maxJtis at its maximum, the longest jtis, SQL and user name", () => {
    const config = k8sConfig(t, { secretPrefix: prefix }, { store: { maxJtis: 1000 } });
    // The worst case of each field as JSON: jtis of 256 characters that all need escaping, SQL of
    // control characters (6 bytes each as JSON), a user name of 255 four-byte characters.
    const jti = (i: number) => `${i}`.padEnd(256, '"');
    const record = {
      user: '\u{1F600}'.repeat(255),
      session: 'S'.repeat(1024),
      query: '\u0001'.repeat(8192),
      connection: { protocol: 'https' as const, host: 'h'.repeat(253), port: 65535, database: 'd'.repeat(256) },
      iat: 1_800_000_000,
      jtis: Array.from({ length: config.store.maxJtis }, (_, i) => ({ jti: jti(i), until: 1_800_000_000, reserved: true as const })),
      updatedAt: 1_800_000_000_000,
    };
    const secret = secretFor('x', 'hub', record, randomBytes(16).toString('hex'), undefined, config.notebook);
    const bytes = Object.values(secret.data ?? {}).reduce((n, v) => n + Buffer.from(v, 'base64').length, 0);
    expect(bytes).toBeLessThan(1024 * 1024);
    expect(bytes).toBeGreaterThan(600 * 1024); // the arithmetic is about this record (about 640 KiB), not a small one
  });

  test('text session format and a custom file name', async () => {
    const s = store({}, { notebook: { sessionFormat: 'text', sessionFileName: 'omnisci-session.txt' } });
    const user = newUser();
    const h = handoff(user);
    await s.accept(h);
    const data = (await t.secret(secretName(prefix, user)))?.data ?? {};
    expect(unb64(data['omnisci-session.txt'])).toBe(`${h.session}\n`);
    expect(data.session).toBeUndefined();
  });

  test('a plain user name is used as is', async () => {
    const s = store();
    const user = newUser('bob');
    await s.accept(handoff(user));
    expect(await t.secret(`${prefix}-${user}`)).toBeDefined();
  });
});

describe('concurrency: several replicas, no coordination but the API server', () => {
  fakeOnly('a write that lost the race (409 Conflict) is redone from a fresh read', async () => {
    const fake = t.fake!;
    const a = store();
    const b = store();
    const user = newUser();
    await a.accept(handoff(user, { iat: now() - 50 }));
    const before = fake.requests.length;
    fake.gate('get', 'secrets', 2); // both replicas read the same resourceVersion
    const [ha, hb] = [handoff(user, { iat: now() - 40 }), handoff(user, { iat: now() - 30 })];
    const [ra, rb] = await Promise.all([a.accept(ha), b.accept(hb)]);
    const mine = fake.requests.slice(before);
    expect(mine.filter((r) => r.verb === 'update' && r.code === 409)).toHaveLength(1);
    // Whoever lost re-read: the newer token is stored either way, the older one stored or superseded.
    expect(rb.outcome).toBe('stored');
    expect(['stored', 'superseded']).toContain(ra.outcome);
    const rec = await a.get(user);
    expect(rec?.iat).toBe(hb.iat);
    expect(rec?.jtis.map((j) => j.jti)).toEqual(expect.arrayContaining([ha.jti, hb.jti]));
  });

  fakeOnly('two first handoffs racing on create resolve through 409 AlreadyExists', async () => {
    const fake = t.fake!;
    const a = store();
    const b = store();
    const user = newUser();
    const before = fake.requests.length;
    fake.gate('get', 'secrets', 2); // both see 404
    const [ha, hb] = [handoff(user, { iat: now() - 10 }), handoff(user, { iat: now() - 20 })];
    const outcomes = await Promise.all([a.accept(ha), b.accept(hb)]);
    const mine = fake.requests.slice(before);
    expect(mine.filter((r) => r.verb === 'create' && r.code === 409)).toHaveLength(1);
    expect(mine.filter((r) => r.verb === 'create' && r.code === 201)).toHaveLength(1);
    expect(outcomes.every((o) => o.outcome === 'stored' || o.outcome === 'superseded')).toBe(true);
    const rec = await a.get(user);
    expect(rec?.session).toBe(ha.session);
    expect(rec?.jtis.map((j) => j.jti).sort()).toEqual([ha.jti, hb.jti].sort());
  });
});

describe('API errors', () => {
  fakeOnly('403 becomes store_forbidden naming verb and resource', async () => {
    const fake = t.fake!;
    const s = store();
    const user = newUser();
    await s.accept(handoff(user));
    fake.forbid('update', 'secrets');
    try {
      const e = await rejection(s.accept(handoff(user)));
      expect(e.code).toBe('store_forbidden');
      expect(e.detail).toContain('missing permission to update secrets in namespace hub');
      expect(e.detail).toContain('Forbidden');
    } finally {
      fake.forbid('update', 'secrets', true);
    }
    fake.forbid('get', 'secrets');
    try {
      expect((await rejection(s.get(user))).detail).toContain('get secrets');
    } finally {
      fake.forbid('get', 'secrets', true);
    }
    fake.forbid('list', 'secrets');
    try {
      expect((await rejection(s.check())).detail).toContain('list secrets');
    } finally {
      fake.forbid('list', 'secrets', true);
    }
    await expect(s.check()).resolves.toBeUndefined();
  });

  fakeOnly('401 (bad credentials) becomes store_forbidden', async () => {
    const fake = t.fake!;
    const s = store({ kubeconfig: fake.writeKubeconfig(t.dir, t.namespace, 'wrong-token') });
    const e = await rejection(s.accept(handoff(newUser())));
    expect(e.code).toBe('store_forbidden');
    expect(e.detail).toContain('not authenticated to get secrets');
  });

  fakeOnly('429 and 5xx are retried (bounded)', async () => {
    const fake = t.fake!;
    const s = store({ retries: 2 });
    const user = newUser();
    const before = fake.requests.length;
    fake.failNext('get', 'secrets', [429, 503]);
    fake.failNext('create', 'secrets', [500]);
    expect((await s.accept(handoff(user))).outcome).toBe('stored');
    const secretCalls = fake.requests.slice(before).filter((r) => r.resource === 'secrets');
    expect(secretCalls.map((r) => `${r.verb} ${r.code}`)).toEqual([
      'get 429',
      'get 503',
      'get 404',
      'create 500',
      'create 201',
    ]);

    const strict = store({ retries: 0 });
    fake.failNext('get', 'secrets', [503]);
    const e = await rejection(strict.accept(handoff(user)));
    expect(e.code).toBe('store_unavailable');
    expect(e.detail).toContain('HTTP 503');
  });

  fakeOnly('a write that landed although its reply was lost is not mistaken for a replay', async () => {
    const fake = t.fake!;
    const s = store();
    const user = newUser();
    const before = fake.requests.length;
    fake.timeoutAfterCommit('create', 'secrets', 1);
    const first = handoff(user, { iat: now() - 10 });
    expect((await s.accept(first)).outcome).toBe('stored');
    fake.timeoutAfterCommit('update', 'secrets', 1);
    const second = handoff(user);
    expect((await s.accept(second)).outcome).toBe('stored');
    expect((await s.get(user))?.session).toBe(second.session);
    const writes = fake.requests.slice(before).filter((r) => r.resource === 'secrets' && r.verb !== 'get');
    expect(writes.map((r) => `${r.verb} ${r.code}`)).toEqual(['create 504', 'create 409', 'update 504', 'update 409']);
  });

  fakeOnly('a request that outlives requestTimeoutMs is abandoned and retried', async () => {
    const fake = t.fake!;
    const user = newUser();
    // The gate holds the first read until a second one arrives, which only the retry after the timeout sends.
    fake.gate('get', 'secrets', 2);
    const s = store({ requestTimeoutMs: 200, retries: 1 });
    expect((await s.accept(handoff(user))).outcome).toBe('stored');

    fake.gate('get', 'secrets', 2);
    const strict = store({ requestTimeoutMs: 200, retries: 0 });
    const e = await rejection(strict.accept(handoff(user)));
    expect(e.code).toBe('store_unavailable');
    expect(e.detail).toContain('timed out');
    // Release the gate so the held request does not outlive the test.
    await store().get(user);
  });
});

describe('fast refresh of running pods', () => {
  /** Labelled and annotated as KubeSpawner 7 does. */
  function pod(name: string, user: string, phase: string, component = 'singleuser-server', label = labelSlug(user)) {
    return {
      metadata: {
        name,
        labels: { component, app: 'jupyterhub', 'hub.jupyter.org/username': label },
        annotations: { 'hub.jupyter.org/username': user },
      },
      spec: { containers: [{ name: 'notebook', image: 'quay.io/jupyter/base-notebook' }] },
      status: { phase },
    };
  }

  fakeOnly("annotates the user's running single-user pods only", async () => {
    const fake = t.fake!;
    const user = newUser('Refresh.Me');
    const other = newUser();
    fake.put('pods', t.namespace, pod('jupyter-a', user, 'Running'));
    fake.put('pods', t.namespace, pod('jupyter-a-named', user, 'Running'));
    fake.put('pods', t.namespace, pod('jupyter-a-pending', user, 'Pending'));
    fake.put('pods', t.namespace, pod('jupyter-b', other, 'Running'));
    fake.put('pods', t.namespace, pod('not-a-server', user, 'Running', 'hub'));
    // Selected on the API server by KubeSpawner's user label: a pod without it is not even listed.
    fake.put('pods', t.namespace, pod('jupyter-unlabelled', user, 'Running', 'singleuser-server', 'someone-else'));
    const refreshed = (name: string) => fake.object('pods', t.namespace, name)?.metadata.annotations?.[POD_REFRESH_ANNOTATION];

    await store({ fastRefresh: false }).accept(handoff(user, { iat: now() - 10 }));
    expect(refreshed('jupyter-a')).toBeUndefined();

    await store().accept(handoff(user));
    expect(refreshed('jupyter-a')).toEqual(expect.any(String));
    expect(refreshed('jupyter-a-named')).toEqual(expect.any(String));
    expect(refreshed('jupyter-a-pending')).toBeUndefined();
    expect(refreshed('jupyter-b')).toBeUndefined();
    expect(refreshed('not-a-server')).toBeUndefined();
    expect(refreshed('jupyter-unlabelled')).toBeUndefined();
    expect(fake.object('pods', t.namespace, 'jupyter-a')?.metadata.annotations?.['hub.jupyter.org/username']).toBe(user);
  });

  fakeOnly('never fails the handoff', async () => {
    const fake = t.fake!;
    const user = newUser();
    fake.put('pods', t.namespace, pod('jupyter-c', user, 'Running'));
    fake.forbid('patch', 'pods');
    try {
      expect((await store().accept(handoff(user))).outcome).toBe('stored');
      expect(fake.object('pods', t.namespace, 'jupyter-c')?.metadata.annotations?.[POD_REFRESH_ANNOTATION]).toBeUndefined();
    } finally {
      fake.forbid('patch', 'pods', true);
    }
  });
});

describe('garbage collection', () => {
  test('sweep deletes only this service’s Secrets older than gcMaxAgeDays', async () => {
    const s = store({ gcMaxAgeDays: 30 });
    const [u1, u2] = [newUser(), newUser()];
    await s.accept(handoff(u1));
    await s.accept(handoff(u2));
    const day = 86_400_000;
    expect(await s.sweep(Date.now() + 29 * day)).toBe(0);
    expect(await t.secret(secretName(prefix, u1))).toBeDefined();

    // Swept 31 days from now: both are old (other managed Secrets of the namespace are older still).
    expect(await s.sweep(Date.now() + 31 * day)).toBeGreaterThanOrEqual(2);
    expect(await t.secret(secretName(prefix, u1))).toBeUndefined();
    expect(await t.secret(secretName(prefix, u2))).toBeUndefined();
    expect(await store({ gcMaxAgeDays: 0 }).sweep(Date.now() + 3650 * day)).toBe(0);
  });

  fakeOnly('leaves Secrets without the managed-by label alone', async () => {
    const fake = t.fake!;
    fake.put('secrets', t.namespace, { metadata: { name: 'someone-elses' }, data: {} });
    const s = store({ gcMaxAgeDays: 1 });
    for (let i = 0; i < 3; i++) await s.accept(handoff(newUser()));
    expect(await s.sweep(Date.now() + 2 * 86_400_000)).toBeGreaterThanOrEqual(3);
    expect(fake.object('secrets', t.namespace, 'someone-elses')).toBeDefined();
  });
});
