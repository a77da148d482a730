/**
 * The parts of a single-user pod that carry the session on Kubernetes: env vars referencing the
 * user's Secret, the Secret volume with the session file only, and the Jupyter config volume. One
 * builder for the admission webhook's patch (src/webhook/patch.ts) and the webhook-free z2jh values
 * (src/deploy/z2jh.ts), which differ only in names and modes.
 */
import type { V1EnvVar, V1Volume } from '@kubernetes/client-node';
import type { Config } from '../config/types.js';
import { SECRET_KEYS } from '../k8s/layout.js';
import { jupyterConfigMapItems } from './configmap.js';

/** OMNISCI_PROTOCOL/HOST/PORT (names from notebook.env) as optional references to the Secret's keys: a missing Secret does not block the pod. */
export function connectionEnvFrom(secretName: string, names: Config['notebook']['env']): V1EnvVar[] {
  return (['protocol', 'host', 'port'] as const).map((key) => ({
    name: names[key],
    valueFrom: { secretKeyRef: { name: secretName, key: SECRET_KEYS[key], optional: true } },
  }));
}

/** The Secret as a whole-directory volume (kubelet refreshes those, never subPath mounts) holding only the session file: the state key stays out of the pod. */
export function sessionVolume(name: string, secretName: string, nb: Config['notebook'], defaultMode?: number): V1Volume {
  return {
    name,
    secret: {
      secretName,
      optional: true,
      ...(defaultMode === undefined ? {} : { defaultMode }),
      items: [{ key: nb.sessionFileName, path: nb.sessionFileName }],
    },
  };
}

/** The Jupyter config ConfigMap as a volume, each key mapped back to its path. */
export function jupyterConfigVolume(name: string, configMap: string, nb: Config['notebook'], defaultMode?: number): V1Volume {
  return {
    name,
    configMap: { name: configMap, optional: true, ...(defaultMode === undefined ? {} : { defaultMode }), items: jupyterConfigMapItems(nb) },
  };
}
