/**
 * One-time hub login tokens (login mode `handoff`, JupyterHub's documented forced-login pattern):
 * 256 random bits, bound to one user, usable once, living at most loginTokenTtlSeconds (≤ 30 s).
 * Only their hashes are kept, so a memory dump holds no usable token.
 */
import { createHash, randomBytes } from 'node:crypto';

const hash = (t: string) => createHash('sha256').update(t).digest('base64url');

export class LoginTokens {
  private readonly tokens = new Map<string, { user: string; expiresAt: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  issue(user: string): string {
    const now = this.now();
    for (const [h, t] of this.tokens) if (t.expiresAt <= now) this.tokens.delete(h);
    const token = randomBytes(32).toString('base64url');
    this.tokens.set(hash(token), { user, expiresAt: now + this.ttlMs });
    return token;
  }

  /** The user the token was issued for; the token is gone afterwards, whatever the outcome. */
  exchange(token: string): string | undefined {
    const h = hash(token);
    const t = this.tokens.get(h);
    this.tokens.delete(h);
    return t && t.expiresAt > this.now() ? t.user : undefined;
  }
}
