/**
 * What the admission webhook adds to a KubeSpawner single-user pod, as an RFC 6902 JSON Patch.
 * Pure and synchronous: the admission path makes no API calls (KubeSpawner's pod create times out
 * after 3 s, and the Secret may not exist yet: every reference is `optional`).
 *
 * Rules (docs/kubernetes.md):
 * - Only pods labelled component=singleuser-server with a hub.jupyter.org/username annotation, and
 *   only their container named webhook.containerName; named servers use the same per-user Secret.
 * - Idempotent, so `reinvocationPolicy: IfNeeded` is safe: nothing already there is added twice.
 * - The admin's explicit setting wins: an env var of the same name in the container's `env`, or a
 *   volume mount at the same path, is left as is and ours is not added. JUPYTER_CONFIG_PATH is
 *   the exception that composes: a literal value gets our directory appended.
 */
import { posix } from 'node:path';
import type { V1Container, V1EnvVar, V1Pod, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { Config } from '../config/types.js';
import { POD_COMPONENT, POD_COMPONENT_LABEL, POD_USER_ANNOTATION, secretName } from '../k8s/layout.js';
import { JUPYTER_CONFIG_PATH } from '../config/reserved.js';
import { connectionEnvFrom, jupyterConfigVolume, sessionVolume } from '../notebook/pod.js';

export type PatchOp = { op: 'add' | 'replace'; path: string; value: unknown };

export type PodOutcome = 'patched' | 'unchanged' | 'not_matching' | 'no_container';

export const SESSION_VOLUME = 'omnisci-handoff-session';
export const JUPYTER_VOLUME = 'omnisci-handoff-jupyter';
/** Names the user's Secret on the pod, for operators (and marks the pod as handled). */
export const POD_SECRET_ANNOTATION = 'omnisci-handoff/secret';

/** Secret files: readable by the owner (root) and the pod's fsGroup; world-readable without one. */
const MODE_WITH_FSGROUP = 0o440;
const MODE_WITHOUT_FSGROUP = 0o444;

/** RFC 6901 reference token escaping. */
const pointerToken = (s: string) => s.replaceAll('~', '~0').replaceAll('/', '~1');
const SECRET_ANNOTATION_PATH = `/metadata/annotations/${pointerToken(POD_SECRET_ANNOTATION)}`;

/** Everything the rules need, derived once from the config. */
export interface InjectionSpec {
  containerName: string;
  secretPrefix: string;
  nb: Config['notebook'];
  jupyterConfigDir: string;
  /** The same for every pod. */
  jupyterVolume: V1Volume;
}

export function injectionSpec(config: Config): InjectionSpec {
  return {
    containerName: config.webhook.containerName,
    secretPrefix: config.store.kubernetes.secretPrefix,
    nb: config.notebook,
    jupyterConfigDir: config.webhook.jupyterConfigDir,
    jupyterVolume: jupyterConfigVolume(JUPYTER_VOLUME, config.webhook.jupyterConfigMap, config.notebook, 0o444),
  };
}

const samePath = (a: string, b: string) => posix.normalize(`${a}/`) === posix.normalize(`${b}/`);

/** Appends to an array that may be absent: one `add` of the whole array, or `add .../-` per item. */
function append(ops: PatchOp[], path: string, existing: unknown[] | null | undefined, items: unknown[]): void {
  if (!items.length) return;
  if (!Array.isArray(existing)) ops.push({ op: 'add', path, value: items });
  else for (const value of items) ops.push({ op: 'add', path: `${path}/-`, value });
}

export function podPatch(pod: V1Pod, spec: InjectionSpec): { outcome: PodOutcome; user?: string; ops: PatchOp[] } {
  const user = pod.metadata?.annotations?.[POD_USER_ANNOTATION];
  if (pod.metadata?.labels?.[POD_COMPONENT_LABEL] !== POD_COMPONENT || typeof user !== 'string' || !user)
    return { outcome: 'not_matching', ops: [] };
  const containers: V1Container[] = Array.isArray(pod.spec?.containers) ? pod.spec.containers : [];
  const ci = containers.findIndex((c) => c?.name === spec.containerName);
  const container = containers[ci];
  if (!container) return { outcome: 'no_container', user, ops: [] };

  const secret = secretName(spec.secretPrefix, user);
  const cpath = `/spec/containers/${ci}`;
  const ops: PatchOp[] = [];

  // Env vars.
  const env: V1EnvVar[] = Array.isArray(container.env) ? container.env : [];
  const has = (name: string) => env.some((e) => e?.name === name);
  const newEnv: V1EnvVar[] = [];
  for (const e of connectionEnvFrom(secret, spec.nb)) if (!has(e.name) && !newEnv.some((n) => n.name === e.name)) newEnv.push(e);
  const jcpIndex = env.findIndex((e) => e?.name === JUPYTER_CONFIG_PATH);
  const jcp = env[jcpIndex];
  if (!jcp) newEnv.push({ name: JUPYTER_CONFIG_PATH, value: spec.jupyterConfigDir });
  else if (typeof jcp.value === 'string' && !jcp.value.split(':').some((p) => p && samePath(p, spec.jupyterConfigDir)))
    ops.push({
      op: 'replace',
      path: `${cpath}/env/${jcpIndex}/value`,
      value: jcp.value ? `${jcp.value}:${spec.jupyterConfigDir}` : spec.jupyterConfigDir,
    });
  append(ops, `${cpath}/env`, container.env, newEnv);

  // Volumes and their mounts.
  const mounts: V1VolumeMount[] = Array.isArray(container.volumeMounts) ? container.volumeMounts : [];
  const volumes: V1Volume[] = Array.isArray(pod.spec?.volumes) ? pod.spec.volumes : [];
  const newMounts: V1VolumeMount[] = [];
  const newVolumes: V1Volume[] = [];
  const fsGroup = pod.spec?.securityContext?.fsGroup;
  const wanted: [string, string, V1Volume][] = [
    [SESSION_VOLUME, spec.nb.sessionDir, sessionVolume(SESSION_VOLUME, secret, spec.nb, typeof fsGroup === 'number' ? MODE_WITH_FSGROUP : MODE_WITHOUT_FSGROUP)],
    [JUPYTER_VOLUME, spec.jupyterConfigDir, spec.jupyterVolume],
  ];
  for (const [name, mountPath, volume] of wanted) {
    // Something is already mounted there (the admin's, or ours from an earlier invocation).
    if (mounts.some((m) => m?.mountPath && samePath(m.mountPath, mountPath)) || mounts.some((m) => m?.name === name))
      continue;
    // Whole-directory mount, never subPath: kubelet refreshes it when the Secret changes.
    newMounts.push({ name, mountPath, readOnly: true });
    if (!volumes.some((v) => v?.name === name)) newVolumes.push(volume);
  }
  append(ops, `${cpath}/volumeMounts`, container.volumeMounts, newMounts);
  append(ops, '/spec/volumes', pod.spec?.volumes, newVolumes);

  if (pod.metadata?.annotations?.[POD_SECRET_ANNOTATION] !== secret) ops.push({ op: 'add', path: SECRET_ANNOTATION_PATH, value: secret });

  return { outcome: ops.length ? 'patched' : 'unchanged', user, ops };
}
