/**
 * KubeSpawner 7's `safe_slug` (kubespawner/slugs.py), ported so that a store key equals what
 * `{username}` expands to in KubeSpawner templates. Both store backends use it: the Kubernetes
 * Secret is `<prefix>-<slug>`, the local directory `users/<slug>`. Checked against kubespawner's own
 * vectors in test/unit/slug.test.ts.
 */
import { createHash } from 'node:crypto';

const HASH_LENGTH = 8;

/** Valid for all of KubeSpawner's uses: a DNS label (RFC 1035 and 1123), at most 63 characters. */
function isValidDefault(s: string): boolean {
  return s.length >= 1 && s.length <= 63 && /^[a-z]/.test(s) && /[a-z0-9]$/.test(s) && /^[a-z0-9-]+$/.test(s);
}

/** Lower-case letters, digits and single '-', starting with a letter, at most maxLength (KubeSpawner's _extract_safe_name). */
export function extractSafeName(name: string, maxLength: number): string {
  let safe = name.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  safe = safe.replace(/^-+/, '').slice(0, maxLength).replace(/-+$/, '');
  if (safe && !/^[a-z]/.test(safe)) safe = `x-${safe.slice(0, maxLength - 2)}`;
  return safe || 'x';
}

function stripAndHash(name: string, maxLength: number): string {
  const nameLength = maxLength - (HASH_LENGTH + 3);
  if (nameLength < 1) throw new RangeError(`cannot make safe names shorter than ${HASH_LENGTH + 4}`);
  const hash = createHash('sha256').update(name, 'utf8').digest('hex').slice(0, HASH_LENGTH);
  // '---' cannot occur in a name used as-is, so slugs never collide.
  return `${extractSafeName(name, nameLength)}---${hash}`;
}

/** Valid as a label value: empty, or at most 63 of [A-Za-z0-9._-] starting and ending alphanumeric. */
function isValidLabel(s: string): boolean {
  return s === '' || (s.length <= 63 && /^[a-z0-9]/i.test(s) && /[a-z0-9]$/i.test(s) && /^[a-z0-9._-]+$/i.test(s));
}

function slug(name: string, isValid: (s: string) => boolean, maxLength?: number): string {
  if (!name.includes('--') && isValid(name) && (maxLength === undefined || name.length <= maxLength)) return name;
  return stripAndHash(name, maxLength ?? 32);
}

/** A name that is already a safe DNS label (and has no '--') is used as is; anything else is stripped and hashed. */
export function safeSlug(name: string, maxLength?: number): string {
  return slug(name, isValidDefault, maxLength);
}

/** The value of the `hub.jupyter.org/username` label KubeSpawner puts on a user's pods (safe_slug with is_valid_label). */
export function labelSlug(name: string): string {
  return slug(name, isValidLabel);
}
