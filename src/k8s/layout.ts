/**
 * The per-user Secret and the KubeSpawner pod conventions, shared by the Kubernetes store (writes
 * the Secret), the pod refresh, the admission webhook (points pods at it) and the z2jh values. No
 * client library here: the webhook and the config checks import this without loading
 * @kubernetes/client-node.
 */
import { readFileSync } from 'node:fs';
import type { Config } from '../config/types.js';
import { safeSlug } from './slug.js';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'omnisci-handoff';
export const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
/** Label with the user's slug (userSlug: label values cannot hold every user name). */
export const USER_LABEL = 'omnisci-handoff/user';
/** Annotation with the raw hub user name. */
export const USER_ANNOTATION = 'omnisci-handoff/username';

/** What KubeSpawner puts on every single-user pod. */
export const POD_COMPONENT_LABEL = 'component';
export const POD_COMPONENT = 'singleuser-server';
export const POD_USER_ANNOTATION = 'hub.jupyter.org/username';
/** KubeSpawner's user label: labelSlug(name), so it selects a user's pods on the API server (a slug may be shared; the annotation is exact). */
export const POD_USER_LABEL = 'hub.jupyter.org/username';
/** Bumped on a running pod after its Secret changed, so kubelet resyncs the volume at once. */
export const POD_REFRESH_ANNOTATION = 'omnisci-handoff/refreshed-at';

/**
 * What `{username}` expands to in KubeSpawner 7 templates (its _expand_user_properties: safe_slug with
 * max_length 48), so that the pod name `jupyter-{user_server}` begins with it: the chart's pod policy
 * binds a user's Secret to that user's pod by these names.
 */
export function userSlug(user: string): string {
  return safeSlug(user, 48);
}

/** `<prefix>-<userSlug>`: also what `<prefix>-{username}` expands to in KubeSpawner (webhook-free z2jh values). */
export function secretName(prefix: string, user: string): string {
  return `${prefix}-${userSlug(user)}`;
}

const SERVICE_ACCOUNT_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** The hub namespace as configured: the setting, else POD_NAMESPACE, else the pod's service account namespace. */
export function configuredNamespace(
  k8s: Config['store']['kubernetes'],
  env: NodeJS.ProcessEnv = process.env,
  namespaceFile = SERVICE_ACCOUNT_NAMESPACE_FILE,
): string | undefined {
  if (k8s.namespace) return k8s.namespace;
  if (env.POD_NAMESPACE) return env.POD_NAMESPACE;
  try {
    return readFileSync(namespaceFile, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
