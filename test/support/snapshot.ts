/**
 * A directory tree byte for byte (every file's content and mode, every directory's mode), so that a
 * test can show that a refusal left a store exactly as it was.
 */
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

export type TreeSnapshot = Record<string, { mode: number; content?: string }>;

export function snapshotTree(dir: string): TreeSnapshot {
  const out: TreeSnapshot = {};
  if (!existsSync(dir)) return out;
  const walk = (path: string) => {
    const st = lstatSync(path);
    const key = relative(dir, path) || '.';
    if (st.isDirectory()) {
      out[key] = { mode: st.mode };
      for (const name of readdirSync(path).sort()) walk(join(path, name));
    } else out[key] = { mode: st.mode, content: readFileSync(path).toString('base64') };
  };
  walk(dir);
  return out;
}
