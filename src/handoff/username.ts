/**
 * Maps a verified identity (a token's claim, a HeavyDB session's user) to a JupyterHub user name. JupyterHub refuses empty names and names with
 * '/' (Authenticator.validate_username); we also refuse what would break URLs, headers or paths:
 * control characters, surrounding whitespace, '.' and '..', and names over 255 characters (the hub DB column).
 *
 * The hub folds names to lower case (Authenticator.normalize_username), and Unicode lower-casing also
 * folds lookalikes ('\u212A', the Kelvin sign, becomes 'k'): two identities must never become one hub
 * user. So names that NFKC normalization changes (compatibility characters: the Kelvin sign, full-width
 * letters, ligatures; decomposed accents) are refused from every source, and where the source's names are case-sensitive
 * (HeavyDB: "Carol" and "carol" are two users) a name the fold would change is refused, not folded.
 */
import type { Config } from '../config/types.js';
import { ERRORS, HandoffError } from '../errors.js';

const MAX_LENGTH = 255;

export function mapUsername(claims: Record<string, unknown>, user: Config['user']): string {
  const raw = claims[user.claim];
  if (typeof raw !== 'string' || raw === '') throw new HandoffError('bad_username', `claim ${user.claim} is missing or not a string`);
  return mapName(raw, user);
}

const refuse = (problem: string) =>
  // The reason is safe to show (it names no part of the token) and tells the admin what to map.
  new HandoffError('bad_username', problem, { message: `${ERRORS.bad_username[1]} Reason: ${problem}.` });

/**
 * The hub name for an identity's name (a token's claim, HeavyDB's TSessionInfo.user): the same rules
 * for every source. `caseSensitive`: the source tells "Carol" from "carol" (HeavyDB), so with
 * `user.lowercase` a name with upper-case letters is refused rather than given another user's hub name.
 */
export function mapName(raw: string, user: Config['user'], caseSensitive = false): string {
  let name = raw;
  if (user.stripEmailDomain) {
    const at = name.lastIndexOf('@');
    const domain = at > 0 ? name.slice(at + 1).toLowerCase() : '';
    // Stripping merges identities across domains: only the admin's domains map to bare names.
    if (!user.emailDomains.some((d) => d.toLowerCase() === domain))
      throw new HandoffError('bad_username', 'e-mail domain not in user.emailDomains', {
        message: `${ERRORS.bad_username[1]} Reason: the e-mail domain is not one this service maps to hub users.`,
      });
    name = name.slice(0, at);
  }
  if (name.normalize('NFKC') !== name)
    throw refuse('the name is not in Unicode normal form NFKC (it has characters such as the Kelvin sign, full-width letters or decomposed accents), so it could pass for another name');
  if (user.lowercase) {
    const folded = name.toLowerCase();
    if (caseSensitive && folded !== name)
      throw refuse('the name has upper-case letters, and the hub user of its lower-case form may be another person (rename the user in lower case)');
    name = folded;
  }
  const problem = usernameProblem(name, user.pattern);
  if (problem) throw refuse(problem);
  return name;
}

/** Why JupyterHub (or a URL built from it) cannot use this name; undefined when it can. */
export function usernameProblem(name: string, pattern?: string): string | undefined {
  if (name === '') return 'the name is empty';
  // A lone UTF-16 surrogate has no UTF-8 form: URLs, slugs and the hub could not tell such names apart.
  if (!name.isWellFormed()) return 'the name is not well-formed Unicode';
  if ([...name].length > MAX_LENGTH) return `the name is longer than ${MAX_LENGTH} characters`;
  if (name.includes('/')) return 'the name contains "/"';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u.test(name)) return 'the name contains control characters';
  if (name.trim() !== name) return 'the name starts or ends with whitespace';
  if (name === '.' || name === '..') return 'the name is "." or ".."';
  if (pattern && !new RegExp(pattern, 'u').test(name)) return 'the name does not match user.pattern';
  return undefined;
}
