/**
 * How guessable a secret string is (the hub API token, a ticket key), estimated from its length and
 * alphabet: a random token scores its true strength, a short or simple one scores low. The estimate
 * cannot tell a long passphrase from a random string: it is a floor, not a proof of randomness.
 */

/** Below this estimate a secret is refused at start and flagged by `doctor`. */
export const MIN_SECRET_BITS = 128;

/** The smallest common alphabet a secret is written in decides the bits each character can carry. */
const ALPHABETS: readonly [RegExp, number][] = [
  [/^[0-9]*$/, 10],
  [/^([0-9a-f]*|[0-9A-F]*)$/, 16],
  [/^([a-z]*|[A-Z]*)$/, 26],
  [/^([a-z0-9]*|[A-Z0-9]*)$/, 36],
  [/^[A-Za-z]*$/, 52],
  [/^[A-Za-z0-9]*$/, 62],
  [/^([A-Za-z0-9_-]*|[A-Za-z0-9+/]*)$/, 64],
];
/** A few characters repeated carry no more than those characters can spell. */
const FEW_DISTINCT = 8;

export function estimateBits(secret: string): number {
  // Base64 padding carries nothing.
  const s = secret.replace(/=+$/, '');
  const chars = [...s];
  const distinct = new Set(chars).size;
  const alphabet = ALPHABETS.find(([re]) => re.test(s))?.[1] ?? 95;
  const perChar = Math.log2(distinct < FEW_DISTINCT ? Math.max(distinct, 1) : alphabet);
  return Math.floor(chars.length * perChar);
}
