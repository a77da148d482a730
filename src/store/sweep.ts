/**
 * Garbage collection of the Kubernetes store: deletes this service's Secrets whose last write is
 * older than store.kubernetes.gcMaxAgeDays, every gcIntervalMinutes on each replica. A delete is
 * conditional on the resourceVersion that was read, so a concurrent handoff wins over the sweep.
 */
import type { Config } from '../config/types.js';
import { errorFields } from '../errors.js';
import { isStatus, type KubeApi } from '../k8s/client.js';
import { MANAGED_SELECTOR } from '../k8s/layout.js';
import type { Logger } from '../log.js';
import { stateOf } from './secret.js';

/** Deletes the old Secrets; resolves how many (0 when gcMaxAgeDays is 0). */
export async function sweepSecrets(kube: KubeApi, k8s: Config['store']['kubernetes'], log: Pick<Logger, 'info'>, now = Date.now()): Promise<number> {
  if (k8s.gcMaxAgeDays === 0) return 0;
  const { namespace } = kube;
  const cutoff = now - k8s.gcMaxAgeDays * 86_400_000;
  let deleted = 0;
  let cont: string | undefined;
  do {
    const page = await kube.call('list', 'secrets', () =>
      kube.core.listNamespacedSecret({ namespace, labelSelector: MANAGED_SELECTOR, limit: 200, _continue: cont }),
    );
    for (const s of page.items) {
      const written = stateOf(s)?.updatedAt ?? s.metadata?.creationTimestamp?.getTime() ?? now;
      const name = s.metadata?.name;
      if (written >= cutoff || !name) continue;
      const body = { preconditions: { resourceVersion: s.metadata?.resourceVersion } };
      try {
        await kube.call('delete', 'secrets', () => kube.core.deleteNamespacedSecret({ name, namespace, body }), [404, 409]);
        deleted++;
      } catch (e) {
        if (!isStatus(e, 404) && !isStatus(e, 409)) throw e;
      }
    }
    cont = page.metadata?._continue || undefined;
  } while (cont);
  if (deleted) log.info({ deleted, maxAgeDays: k8s.gcMaxAgeDays }, 'deleted old session Secrets');
  return deleted;
}

/** Sweeps every gcIntervalMinutes (when GC is on); returns the function that stops it. */
export function scheduleSweeps(kube: KubeApi, k8s: Config['store']['kubernetes'], log: Pick<Logger, 'info' | 'warn'>): () => void {
  if (k8s.gcMaxAgeDays === 0 || k8s.gcIntervalMinutes === 0) return () => undefined;
  const timer = setInterval(() => {
    sweepSecrets(kube, k8s, log).catch((e: unknown) => log.warn({ err: errorFields(e) }, 'session Secret sweep failed'));
  }, k8s.gcIntervalMinutes * 60_000);
  timer.unref();
  return () => clearInterval(timer);
}
