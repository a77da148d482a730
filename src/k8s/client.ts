/**
 * The Kubernetes API as this service uses it: a CoreV1Api from the configured kubeconfig or the
 * pod's service account, the namespace resolved once, a timeout on every request, and one call
 * wrapper — retries on 429, 5xx and network errors (src/retry.ts, honouring Retry-After), 401/403 as
 * `store_forbidden` naming the permission, and failures described without quoting what the server
 * sent (a client error may quote Secret data).
 */
import {
  ApiException,
  CoreV1Api,
  createConfiguration,
  KubeConfig,
  ServerConfiguration,
  type Middleware,
} from '@kubernetes/client-node';
import type { Config } from '../config/types.js';
import { describeCause, HandoffError } from '../errors.js';
import type { Logger } from '../log.js';
import { exponentialBackoff, withRetries } from '../retry.js';
import { configuredNamespace } from './layout.js';

export type Verb = 'get' | 'list' | 'create' | 'update' | 'delete' | 'patch';

export interface KubeApi {
  /** The hub namespace every call goes to. */
  readonly namespace: string;
  readonly core: CoreV1Api;
  /** The same API sending JSON merge patches (patchNamespacedPod). */
  readonly mergePatch: CoreV1Api;
  /**
   * Runs one API call with retries. Statuses in `expected` (404, 409…) are rethrown as they are for
   * the caller to act on (`isStatus`); anything else that fails becomes a HandoffError.
   */
  call<T>(verb: Verb, resource: string, fn: () => Promise<T>, expected?: readonly number[]): Promise<T>;
}

const MAX_RETRY_AFTER_MS = 5000;

export const isStatus = (e: unknown, code: number): boolean => e instanceof ApiException && e.code === code;

/** The HTTP status and the Status `reason` of a failed call; undefined for network errors and timeouts. */
function apiStatus(e: unknown): { code: number; reason: string } | undefined {
  if (!(e instanceof ApiException)) return undefined;
  let reason = '';
  try {
    const body: unknown = typeof e.body === 'string' ? JSON.parse(e.body) : e.body;
    const r = (body as { reason?: unknown } | null)?.reason;
    if (typeof r === 'string') reason = r;
  } catch {
    // Not a Status object (a proxy's error page); the code is all there is.
  }
  return { code: e.code, reason };
}

function loadKubeConfig(k8s: Config['store']['kubernetes']): KubeConfig {
  const kc = new KubeConfig();
  if (k8s.kubeconfig) kc.loadFromFile(k8s.kubeconfig);
  else kc.loadFromCluster();
  return kc;
}

const middleware = (pre: Middleware['pre']): Middleware => ({ pre, post: async (res) => res });
const header = (key: string, value: string) =>
  middleware(async (ctx) => {
    ctx.setHeaderParam(key, value);
    return ctx;
  });

/**
 * A CoreV1Api whose every request carries a fresh timeout signal (plus `extra` middleware). Built
 * by hand rather than with makeApiClient, as per-call middleware options of the object-parameter
 * API are typed as observables but run as promises in client-node 2.0.
 */
function apiClient(kc: KubeConfig, timeoutMs: number, extra: Middleware[] = []): CoreV1Api {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new HandoffError('store_unavailable', 'the kubeconfig has no current cluster');
  const timeout = middleware(async (ctx) => {
    ctx.setSignal(AbortSignal.timeout(timeoutMs));
    return ctx;
  });
  return new CoreV1Api(
    createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: kc },
      promiseMiddleware: [timeout, header('User-Agent', 'omnisci-handoff'), ...extra],
    }),
  );
}

export function connectKubernetes(k8s: Config['store']['kubernetes'], log?: Pick<Logger, 'debug'>): KubeApi {
  const kc = loadKubeConfig(k8s);
  const namespace =
    configuredNamespace(k8s) ?? (k8s.kubeconfig ? kc.getContextObject(kc.getCurrentContext())?.namespace : undefined);
  if (!namespace)
    throw new HandoffError('store_unavailable', 'store.kubernetes.namespace is not set and no namespace could be detected');

  const retryable = (e: unknown) => {
    const st = apiStatus(e);
    return !st || st.code === 429 || st.code >= 500;
  };
  return {
    namespace,
    core: apiClient(kc, k8s.requestTimeoutMs),
    mergePatch: apiClient(kc, k8s.requestTimeoutMs, [header('Content-Type', 'application/merge-patch+json')]),

    async call(verb, resource, fn, expected = []) {
      try {
        return await withRetries(fn, {
          retries: k8s.retries,
          retryable: (e) => !expected.includes(apiStatus(e)?.code ?? 0) && retryable(e),
          backoffMs: exponentialBackoff(100, MAX_RETRY_AFTER_MS),
          retryAfterMs: (e) => {
            const after = e instanceof ApiException ? Number(e.headers?.['retry-after']) : NaN;
            return Number.isFinite(after) ? Math.min(after * 1000, MAX_RETRY_AFTER_MS) : undefined;
          },
          onRetry: (e, attempt) => log?.debug({ verb, resource, attempt, status: describe(e) }, 'kubernetes API call failed; retrying'),
        });
      } catch (e) {
        const st = apiStatus(e);
        if (st && expected.includes(st.code)) throw e;
        if (st && (st.code === 401 || st.code === 403))
          throw new HandoffError(
            'store_forbidden',
            `${st.code === 401 ? 'not authenticated to' : 'missing permission to'} ${verb} ${resource} in namespace ${namespace} (${describe(e)})`,
          );
        throw new HandoffError('store_unavailable', `${verb} ${resource}: ${describe(e)}`);
      }
    },
  };
}

function describe(e: unknown): string {
  const st = apiStatus(e);
  return st ? `HTTP ${st.code}${st.reason ? ` ${st.reason}` : ''}` : describeCause(e);
}
