/**
 * Kubernetes backend: one Secret per hub user in the hub namespace (encoding in ./secret.ts,
 * layout in docs/kubernetes.md). The admission webhook mounts the Secret's session file into the
 * user's pod and points the connection env vars at its keys.
 *
 * Every update is an optimistic-concurrency read-modify-write: read the Secret, decide with the
 * shared applyHandoff/applyRevoke, write it back carrying the resourceVersion that was read. A
 * concurrent writer (another replica) makes the API server answer 409 Conflict, and the loop starts
 * over from a fresh read; two first handoffs racing on create resolve through 409 AlreadyExists the
 * same way. Replicas therefore need no other coordination.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { V1Secret } from '@kubernetes/client-node';
import { pino } from 'pino';
import type { Config } from '../config/types.js';
import { HandoffError } from '../errors.js';
import type { Handoff, Revocation } from '../handoff/types.js';
import { connectKubernetes, isStatus, type KubeApi } from '../k8s/client.js';
import { MANAGED_SELECTOR, secretName } from '../k8s/layout.js';
import { refreshUserPods } from '../k8s/refresh.js';
import type { Logger } from '../log.js';
import { applyHandoff, applyOptions, applySpend, applyRevoke } from './record.js';
import { recordOf, secretFor, stateOf } from './secret.js';
import { scheduleSweeps, sweepSecrets } from './sweep.js';
import type { AcceptOptions, AcceptResult, SessionRecord, SessionStore, Spend } from './types.js';

export interface KubernetesStore extends SessionStore {
  /** Deletes this service's Secrets older than store.kubernetes.gcMaxAgeDays; resolves how many. */
  sweep(now?: number): Promise<number>;
}

/** Re-reads after a 409 before giving up; each round is one read and one write. */
const MAX_CONFLICT_ROUNDS = 16;

export function createKubernetesStore(config: Config, o: { kube?: KubeApi; logger?: Logger } = {}): KubernetesStore {
  const k8s = config.store.kubernetes;
  const log = (o.logger ?? pino({ level: 'silent' })).child({ component: 'store', backend: 'kubernetes' });
  const kube = o.kube ?? connectKubernetes(k8s, log);
  const { namespace, core } = kube;

  async function read(name: string): Promise<V1Secret | undefined> {
    try {
      return await kube.call('get', 'secrets', () => core.readNamespacedSecret({ name, namespace }), [404]);
    } catch (e) {
      if (isStatus(e, 404)) return undefined;
      throw e;
    }
  }

  /**
   * The atomic per-user update. `decide` may throw (token_replayed) and is re-run on every round
   * with the freshly read record.
   */
  async function update<T>(user: string, decide: (current: SessionRecord | undefined) => { record: SessionRecord; result: T }): Promise<T> {
    const name = secretName(k8s.secretPrefix, user);
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
      const body = secretFor(name, namespace, record, writeId, existing, config.notebook);
      try {
        if (existing) await kube.call('update', 'secrets', () => core.replaceNamespacedSecret({ name, namespace, body }), [404, 409]);
        else await kube.call('create', 'secrets', () => core.createNamespacedSecret({ namespace, body }), [409]);
        return result;
      } catch (e) {
        // Conflict: someone wrote since our read. AlreadyExists: someone created it first.
        // NotFound: it was deleted (GC) since our read. All three: read again and redo the decision.
        if (!isStatus(e, 409) && !isStatus(e, 404)) throw e;
        log.debug({ secret: name, round }, 'concurrent update of the session Secret; re-reading');
        // A growing random pause spreads out writers that keep colliding.
        await sleep(Math.random() * 5 * round);
      }
    }
    throw new HandoffError('store_unavailable', `secret ${name}: still conflicting after ${MAX_CONFLICT_ROUNDS} attempts`);
  }

  const refresh = (user: string) => (k8s.fastRefresh ? refreshUserPods(kube, user, log) : Promise.resolve());
  const stopSweeps = scheduleSweeps(kube, k8s, log);

  return {
    backend: 'kubernetes',

    async accept(handoff: Handoff, o?: AcceptOptions): Promise<AcceptResult> {
      const result = await update(handoff.user, (current) => {
        const r = applyHandoff(current, handoff, applyOptions(config, Date.now()), o?.reserved, o?.fingerprint);
        return { record: r.record, result: r };
      });
      if (result.outcome === 'stored') await refresh(handoff.user);
      return result;
    },

    async get(user: string): Promise<SessionRecord | undefined> {
      return recordOf(stateOf(await read(secretName(k8s.secretPrefix, user))));
    },

    async spend(s: Spend): Promise<void> {
      await update(s.user, (current) => ({ record: applySpend(current, s, applyOptions(config, Date.now())), result: undefined }));
    },

    async revoke(revocation: Revocation): Promise<boolean> {
      const revoked = await update(revocation.user, (current) => {
        const r = applyRevoke(current, revocation, applyOptions(config, Date.now()));
        return { record: r.record, result: r.revoked };
      });
      if (revoked) await refresh(revocation.user);
      return revoked;
    },

    async check(): Promise<void> {
      await kube.call('list', 'secrets', () => core.listNamespacedSecret({ namespace, labelSelector: MANAGED_SELECTOR, limit: 1 }));
    },

    sweep: (now?: number) => sweepSecrets(kube, k8s, log, now),

    async close(): Promise<void> {
      stopSweeps();
    },
  };
}
