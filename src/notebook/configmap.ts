/**
 * The ConfigMap that carries the Jupyter config files (src/notebook/outputs.ts) into single-user
 * pods. ConfigMap keys cannot contain '/', so each file's relative path is stored under a key with
 * '/' spelled '--', and the volume's `items` map the keys back to the paths.
 */
import type { Config } from '../config/types.js';
import { jupyterConfigFiles } from './outputs.js';

const keyOf = (path: string) => path.replaceAll('/', '--');

/** `data` of the ConfigMap (what the Helm chart renders). */
export function jupyterConfigMapData(nb: Config['notebook']): Record<string, string> {
  return Object.fromEntries(Object.entries(jupyterConfigFiles(nb)).map(([path, content]) => [keyOf(path), content]));
}

/** `items` of the ConfigMap volume: every key back to its path under the mount directory. */
export function jupyterConfigMapItems(nb: Config['notebook']): { key: string; path: string }[] {
  return Object.keys(jupyterConfigFiles(nb)).map((path) => ({ key: keyOf(path), path }));
}
