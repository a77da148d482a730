/**
 * The parts of a single-user pod that carry the session on Kubernetes: env vars referencing the
 * user's Secret, the Secret volume with the session file only, and the Jupyter config volume. One
 * builder for the admission webhook's patch (src/webhook/patch.ts) and the webhook-free z2jh values
 * (src/deploy/z2jh.ts), which differ only in names and modes.
 */
import type { V1EnvVar, V1Volume } from '@kubernetes/client-node';
import type { Config } from '../config/types.js';
import { SECRET_KEYS } from '../config/reserved.js';
import { jupyterConfigMapItems } from './configmap.js';
import { envNameSets } from './outputs.js';

/**
 * OMNISCI_PROTOCOL/HOST/PORT (names from notebook.env, then those of notebook.envFamilies) as optional
 * references to the Secret's keys, each name once: a missing Secret does not block the pod.
 */
export function connectionEnvFrom(secretName: string, nb: Config['notebook']): V1EnvVar[] {
  const env = envNameSets(nb).flatMap((names) =>
    (['protocol', 'host', 'port'] as const).map((key) => ({
      name: names[key],
      valueFrom: { secretKeyRef: { name: secretName, key: SECRET_KEYS[key], optional: true } },
    })),
  );
  return env.filter((e, i) => env.findIndex((o) => o.name === e.name) === i);
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
