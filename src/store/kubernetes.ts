/**
 * Kubernetes backend: one Secret per hub user in the hub namespace (layout in src/store/k8s-layout.ts
 * and docs/kubernetes.md). The admission webhook mounts the Secret's session file into the user's
 * pod and points the connection env vars at its keys.
 *
 * Every update is an optimistic-concurrency read-modify-write: read the Secret, decide with the
 * shared applyHandoff/applyRevoke, write it back carrying the resourceVersion that was read. A
 * concurrent writer (another replica) makes the API server answer 409 Conflict, and the loop starts
 * over from a fresh read; two first handoffs racing on create resolve through 409 AlreadyExists the
 * same way. Replicas therefore need no other coordination.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApiException,
  CoreV1Api,
  createConfiguration,
  KubeConfig,
  ServerConfiguration,
  type Middleware,
  type V1Secret,
} from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import type { Config } from '../config/types.js';
import { HandoffError, isHandoffError } from '../errors.js';
import { connectionEnv, sessionFileContent } from '../notebook/outputs.js';
import {
  configuredNamespace,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  POD_COMPONENT,
  POD_COMPONENT_LABEL,
  POD_REFRESH_ANNOTATION,
  POD_USER_ANNOTATION,
  SECRET_KEYS,
  secretName,
  USER_ANNOTATION,
  USER_LABEL,
} from './k8s-layout.js';
import { applyHandoff, applyOptions, applyRevoke } from './record.js';
import { safeSlug } from './slug.js';
import type { AcceptResult, Handoff, Revocation, SessionRecord, SessionStore } from './types.js';

export interface KubernetesStore extends SessionStore {
  readonly namespace: string;
  /**
   * Deletes this service's Secrets whose last write is older than store.kubernetes.gcMaxAgeDays
   * (a no-op when that is 0). Resolves the number deleted. Runs every gcIntervalMinutes as well.
   */
  sweep(now?: number): Promise<number>;
}

/** Re-reads after a 409 before giving up; each round is one read and one write. */
const MAX_CONFLICT_ROUNDS = 16;
const MAX_RETRY_AFTER_MS = 5000;
const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;

type Verb = 'get' | 'list' | 'create' | 'update' | 'delete' | 'patch';

interface ApiStatus {
  code: number;
  reason: string;
}

/** The HTTP status and Kubernetes Status reason of a failed call; undefined for network errors and timeouts. */
function apiStatus(e: unknown): ApiStatus | undefined {
  if (!(e instanceof ApiException)) return undefined;
  let reason = '';
  try {
    const body: unknown = typeof e.body === 'string' ? JSON.parse(e.body) : e.body;
    if (body && typeof body === 'object' && typeof (body as { reason?: unknown }).reason === 'string')
      reason = (body as { reason: string }).reason;
  } catch {
    // Not a Status object (a proxy's error page); the code is all there is.
  }
  return { code: e.code, reason };
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

function isRecord(v: unknown): v is SessionRecord {
  if (!v || typeof v !== 'object') return false;
  const r = v as Partial<SessionRecord>;
  return (
    typeof r.user === 'string' &&
    typeof r.session === 'string' &&
    typeof r.iat === 'number' &&
    Array.isArray(r.jtis) &&
    typeof r.connection === 'object'
  );
}

/** The state key: the record plus the id of the write that produced it. */
type State = SessionRecord & { writeId?: string };

/** The state in a Secret; undefined when absent or unreadable (then the next write replaces it). */
function stateOf(secret: V1Secret | undefined): State | undefined {
  const raw = secret?.data?.[SECRET_KEYS.state];
  if (!raw) return undefined;
  try {
    const parsed: unknown = JSON.parse(unb64(raw));
    return isRecord(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function recordOf(state: State | undefined): SessionRecord | undefined {
  if (!state) return undefined;
  const { writeId: _, ...record } = state;
  return record;
}

function loadKubeConfig(k8s: Config['store']['kubernetes']): KubeConfig {
  const kc = new KubeConfig();
  if (k8s.kubeconfig) kc.loadFromFile(k8s.kubeconfig);
  else kc.loadFromCluster();
  return kc;
}

function headerMiddleware(key: string, value: string): Middleware {
  return {
    pre: async (ctx) => {
      ctx.setHeaderParam(key, value);
      return ctx;
    },
    post: async (res) => res,
  };
}

/**
 * A CoreV1Api whose every request carries a fresh timeout signal (plus `extra` middleware). Built
 * by hand rather than with makeApiClient, as per-call middleware options of the object-parameter
 * API are typed as observables but run as promises in client-node 2.0.
 */
function apiClient(kc: KubeConfig, timeoutMs: number, extra: Middleware[] = []): CoreV1Api {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new HandoffError('store_unavailable', 'the kubeconfig has no current cluster');
  const timeout: Middleware = {
    pre: async (ctx) => {
      ctx.setSignal(AbortSignal.timeout(timeoutMs));
      return ctx;
    },
    post: async (res) => res,
  };
  return new CoreV1Api(
    createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: kc },
      promiseMiddleware: [timeout, headerMiddleware('User-Agent', 'omnisci-handoff'), ...extra],
    }),
  );
}

export function createKubernetesStore(config: Config, logger?: Logger): KubernetesStore {
  const k8s = config.store.kubernetes;
  const log = (logger ?? pino({ level: 'silent' })).child({ component: 'store', backend: 'kubernetes' });
  const kc = loadKubeConfig(k8s);
  const detected =
    configuredNamespace(k8s) ?? (k8s.kubeconfig ? kc.getContextObject(kc.getCurrentContext())?.namespace : undefined);
  if (!detected)
    throw new HandoffError('store_unavailable', 'store.kubernetes.namespace is not set and no namespace could be detected');
  const namespace: string = detected;
  const api = apiClient(kc, k8s.requestTimeoutMs);
  const mergePatchApi = apiClient(kc, k8s.requestTimeoutMs, [
    headerMiddleware('Content-Type', 'application/merge-patch+json'),
  ]);
  const nb = config.notebook;

  /**
   * One API call with a timeout, retried on 429, 5xx and network errors (bounded, backing off,
   * honouring Retry-After). 401/403 become `store_forbidden` naming the permission; the `expected`
   * statuses (404, 409) are rethrown for the caller to act on, anything else is `store_unavailable`.
   */
  async function call<T>(
    verb: Verb,
    resource: string,
    fn: () => Promise<T>,
    expected: readonly number[] = [],
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        const st = apiStatus(e);
        if (st && (st.code === 401 || st.code === 403))
          throw new HandoffError(
            'store_forbidden',
            `${st.code === 401 ? 'not authenticated to' : 'missing permission to'} ${verb} ${resource} in namespace ${namespace} (HTTP ${st.code}${st.reason ? ` ${st.reason}` : ''})`,
          );
        if (st && expected.includes(st.code)) throw e;
        const retryable = !st || st.code === 429 || st.code >= 500;
        // Never a message: a client error may quote what it failed to parse (Secret data).
        const err = e as { name?: string; code?: string; cause?: { code?: string } };
        const what = st ? `HTTP ${st.code}${st.reason ? ` ${st.reason}` : ''}` : err.name === 'TimeoutError' ? 'timeout' : (err.cause?.code ?? err.code ?? err.name ?? 'failed');
        if (!retryable || attempt >= k8s.retries) throw new HandoffError('store_unavailable', `${verb} ${resource}: ${what}`);
        const retryAfter = e instanceof ApiException ? Number(e.headers?.['retry-after']) : NaN;
        const delay = Number.isFinite(retryAfter)
          ? Math.min(retryAfter * 1000, MAX_RETRY_AFTER_MS)
          : 100 * 2 ** attempt * (0.5 + Math.random());
        log.debug({ verb, resource, attempt, status: what }, 'kubernetes API call failed; retrying');
        await sleep(delay);
      }
    }
  }

  const is = (e: unknown, code: number) => e instanceof ApiException && e.code === code;

  async function read(name: string): Promise<V1Secret | undefined> {
    try {
      return await call('get', 'secrets', () => api.readNamespacedSecret({ name, namespace }), [404]);
    } catch (e) {
      if (is(e, 404)) return undefined;
      throw e;
    }
  }

  function secretFor(name: string, slug: string, record: SessionRecord, writeId: string, existing: V1Secret | undefined): V1Secret {
    const meta = existing?.metadata ?? {};
    return {
      ...existing,
      apiVersion: 'v1',
      kind: 'Secret',
      type: existing?.type ?? 'Opaque',
      metadata: {
        ...meta,
        name,
        namespace,
        labels: { ...meta.labels, [MANAGED_BY_LABEL]: MANAGED_BY, [USER_LABEL]: slug },
        annotations: { ...meta.annotations, [USER_ANNOTATION]: record.user },
      },
      data: {
        ...existing?.data,
        [nb.sessionFileName]: b64(sessionFileContent(record, nb.sessionFormat)),
        // The keys the pod's env vars reference (secretKeyRef), the same mapping as the env itself.
        ...Object.fromEntries(Object.entries(connectionEnv(record.connection, SECRET_KEYS)).map(([k, v]) => [k, b64(v)])),
        [SECRET_KEYS.state]: b64(JSON.stringify({ ...record, writeId })),
      },
    };
  }

  /**
   * The atomic per-user update. `decide` may throw (token_replayed) and is re-run on every round
   * with the freshly read record.
   */
  async function update<T>(user: string, decide: (current: SessionRecord | undefined) => { record: SessionRecord; result: T }): Promise<T> {
    const slug = safeSlug(user);
    const name = `${k8s.secretPrefix}-${slug}`;
    // Results of our earlier attempts by write id: a write whose reply was lost (timeout, 5xx) may
    // have landed, and its retry then meets 409. Finding our own write id on the re-read means it
    // did land, so its result stands (instead of our jti now looking replayed).
    const attempts = new Map<string, T>();
    for (let round = 0; round < MAX_CONFLICT_ROUNDS; round++) {
      const existing = await read(name);
      const state = stateOf(existing);
      if (state?.writeId && attempts.has(state.writeId)) return attempts.get(state.writeId) as T;
      const { record, result } = decide(recordOf(state));
      const writeId = randomUUID();
      attempts.set(writeId, result);
      const body = secretFor(name, slug, record, writeId, existing);
      try {
        if (existing) await call('update', 'secrets', () => api.replaceNamespacedSecret({ name, namespace, body }), [404, 409]);
        else await call('create', 'secrets', () => api.createNamespacedSecret({ namespace, body }), [409]);
        return result;
      } catch (e) {
        // Conflict: someone wrote since our read. AlreadyExists: someone created it first.
        // NotFound: it was deleted (GC) since our read. All three: read again and redo the decision.
        if (is(e, 409) || is(e, 404)) {
          log.debug({ secret: name, round }, 'concurrent update of the session Secret; re-reading');
          // A growing random pause spreads out writers that keep colliding.
          await sleep(Math.random() * 5 * round);
          continue;
        }
        throw e;
      }
    }
    throw new HandoffError('store_unavailable', `secret ${name}: still conflicting after ${MAX_CONFLICT_ROUNDS} attempts`);
  }

  /** Makes kubelet refresh the user's Secret volume now (best effort: failures are logged, never thrown). */
  async function refreshPods(user: string): Promise<void> {
    if (!k8s.fastRefresh) return;
    try {
      const pods = await call('list', 'pods', () =>
        api.listNamespacedPod({
          namespace,
          labelSelector: `${POD_COMPONENT_LABEL}=${POD_COMPONENT}`,
          fieldSelector: 'status.phase=Running',
        }),
      );
      const mine = pods.items.filter((p) => p.metadata?.annotations?.[POD_USER_ANNOTATION] === user && p.metadata.name);
      const body = { metadata: { annotations: { [POD_REFRESH_ANNOTATION]: new Date().toISOString() } } };
      await Promise.all(
        mine.map((p) =>
          call('patch', 'pods', () => mergePatchApi.patchNamespacedPod({ name: p.metadata!.name!, namespace, body })),
        ),
      );
    } catch (e) {
      log.warn(
        { err: isHandoffError(e) ? { code: e.code, detail: e.detail } : String(e), user },
        'could not ask kubelet to refresh the session volume now; it will within about a minute',
      );
    }
  }

  async function sweep(now = Date.now()): Promise<number> {
    if (k8s.gcMaxAgeDays === 0) return 0;
    const cutoff = now - k8s.gcMaxAgeDays * 86_400_000;
    let deleted = 0;
    let cont: string | undefined;
    do {
      const page = await call('list', 'secrets', () =>
        api.listNamespacedSecret({ namespace, labelSelector: MANAGED_SELECTOR, limit: 200, _continue: cont }),
      );
      for (const s of page.items) {
        const written = stateOf(s)?.updatedAt ?? s.metadata?.creationTimestamp?.getTime() ?? now;
        const name = s.metadata?.name;
        if (written >= cutoff || !name) continue;
        try {
          // The precondition makes a concurrent handoff win over the sweep.
          await call('delete', 'secrets', () =>
            api.deleteNamespacedSecret({
              name,
              namespace,
              body: { preconditions: { resourceVersion: s.metadata?.resourceVersion } },
            }),
            [404, 409],
          );
          deleted++;
        } catch (e) {
          if (!is(e, 404) && !is(e, 409)) throw e;
        }
      }
      cont = page.metadata?._continue || undefined;
    } while (cont);
    if (deleted) log.info({ deleted, maxAgeDays: k8s.gcMaxAgeDays }, 'deleted old session Secrets');
    return deleted;
  }

  const timer =
    k8s.gcMaxAgeDays > 0 && k8s.gcIntervalMinutes > 0
      ? setInterval(() => {
          sweep().catch((e: unknown) =>
            log.warn({ err: isHandoffError(e) ? { code: e.code, detail: e.detail } : String(e) }, 'session Secret sweep failed'),
          );
        }, k8s.gcIntervalMinutes * 60_000)
      : undefined;
  timer?.unref();

  return {
    backend: 'kubernetes',
    namespace,

    async accept(handoff: Handoff): Promise<AcceptResult> {
      const result = await update(handoff.user, (current) => {
        const r = applyHandoff(current, handoff, applyOptions(config, Date.now()));
        return { record: r.record, result: r };
      });
      if (result.outcome === 'stored') await refreshPods(handoff.user);
      return result;
    },

    async get(user: string): Promise<SessionRecord | undefined> {
      return recordOf(stateOf(await read(secretName(k8s.secretPrefix, user))));
    },

    async revoke(revocation: Revocation): Promise<boolean> {
      const revoked = await update(revocation.user, (current) => {
        const r = applyRevoke(current, revocation, applyOptions(config, Date.now()));
        return { record: r.record, result: r.revoked };
      });
      if (revoked) await refreshPods(revocation.user);
      return revoked;
    },

    async check(): Promise<void> {
      await call('list', 'secrets', () => api.listNamespacedSecret({ namespace, labelSelector: MANAGED_SELECTOR, limit: 1 }));
    },

    sweep,

    async close(): Promise<void> {
      if (timer) clearInterval(timer);
    },
  };
}

