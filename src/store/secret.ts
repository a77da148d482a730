/**
 * How a SessionRecord is kept in the user's Secret (docs/kubernetes.md): the session file the pod
 * mounts, the connection keys its env vars reference, and the `state` key (the record plus the id of
 * the write that produced it), which is never mounted.
 */
import type { V1Secret } from '@kubernetes/client-node';
import type { Config } from '../config/types.js';
import { SECRET_KEYS } from '../config/reserved.js';
import { MANAGED_BY, MANAGED_BY_LABEL, USER_ANNOTATION, USER_LABEL, userSlug } from '../k8s/layout.js';
import { connectionEnv, sessionFileContent } from '../notebook/outputs.js';
import type { SessionRecord } from './types.js';

/** The record plus the id of the write that produced it. */
export type State = SessionRecord & { writeId?: string };

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

function isRecord(v: unknown): v is SessionRecord {
  if (!v || typeof v !== 'object') return false;
  const r = v as Partial<SessionRecord>;
  return (
    typeof r.user === 'string' &&
    typeof r.session === 'string' &&
    typeof r.iat === 'number' &&
    Array.isArray(r.jtis) &&
    typeof r.connection === 'object'
  );
}

/** The state in a Secret; undefined when absent or unreadable (then the next write replaces it). */
export function stateOf(secret: V1Secret | undefined): State | undefined {
  const raw = secret?.data?.[SECRET_KEYS.state];
  if (!raw) return undefined;
  try {
    const parsed: unknown = JSON.parse(unb64(raw));
    return isRecord(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

export function recordOf(state: State | undefined): SessionRecord | undefined {
  if (!state) return undefined;
  const { writeId: _, ...record } = state;
  return record;
}

/** The Secret holding `record`, keeping whatever else an existing one carries (its metadata, other keys). */
export function secretFor(
  name: string,
  namespace: string,
  record: SessionRecord,
  writeId: string,
  existing: V1Secret | undefined,
  nb: Config['notebook'],
): V1Secret {
  const meta = existing?.metadata ?? {};
  return {
    ...existing,
    apiVersion: 'v1',
    kind: 'Secret',
    type: existing?.type ?? 'Opaque',
    metadata: {
      ...meta,
      name,
      namespace,
      labels: { ...meta.labels, [MANAGED_BY_LABEL]: MANAGED_BY, [USER_LABEL]: userSlug(record.user) },
      annotations: { ...meta.annotations, [USER_ANNOTATION]: record.user },
    },
    data: {
      ...existing?.data,
      [nb.sessionFileName]: b64(sessionFileContent(record, nb.sessionFormat)),
      // The keys the pod's env vars reference (secretKeyRef), the same mapping as the env itself.
      ...Object.fromEntries(Object.entries(connectionEnv(record.connection, SECRET_KEYS)).map(([k, v]) => [k, b64(v)])),
      [SECRET_KEYS.state]: b64(JSON.stringify({ ...record, writeId })),
    },
  };
}
