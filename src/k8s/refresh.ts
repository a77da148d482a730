/**
 * Makes kubelet refresh a user's Secret volume now rather than at its next sync (about a minute):
 * annotating a running pod makes kubelet resync that pod's volumes. Best effort: a failure is logged,
 * never thrown — the volume still updates at the next sync.
 */
import { errorFields } from '../errors.js';
import type { Logger } from '../log.js';
import type { KubeApi } from './client.js';
import { POD_COMPONENT, POD_COMPONENT_LABEL, POD_REFRESH_ANNOTATION, POD_USER_ANNOTATION, POD_USER_LABEL } from './layout.js';
import { labelSlug } from './slug.js';

export async function refreshUserPods(kube: KubeApi, user: string, log: Pick<Logger, 'warn'>): Promise<void> {
  const { namespace } = kube;
  try {
    const pods = await kube.call('list', 'pods', () =>
      kube.core.listNamespacedPod({
        namespace,
        labelSelector: `${POD_COMPONENT_LABEL}=${POD_COMPONENT},${POD_USER_LABEL}=${labelSlug(user)}`,
        fieldSelector: 'status.phase=Running',
      }),
    );
    const body = { metadata: { annotations: { [POD_REFRESH_ANNOTATION]: new Date().toISOString() } } };
    // The label narrows the list on the API server; the raw-name annotation decides.
    const names = pods.items
      .filter((p) => p.metadata?.annotations?.[POD_USER_ANNOTATION] === user)
      .map((p) => p.metadata?.name)
      .filter((name): name is string => Boolean(name));
    await Promise.all(
      names.map((name) => kube.call('patch', 'pods', () => kube.mergePatch.patchNamespacedPod({ name, namespace, body }))),
    );
  } catch (e) {
    log.warn({ err: errorFields(e), user }, 'could not ask kubelet to refresh the session volume now; it will within about a minute');
  }
}
