/**
 * Bearer tokens per (realm, service, scope). A token is dropped a little before `expires_in` runs out
 * (10 % of its lifetime, at most 10 s) so requests do not race its expiry. Times are local receive
 * times, not the server's `issued_at`, so clock skew between hosts does not matter.
 */

/** Distribution's token spec: a missing `expires_in` means 60 seconds. */
export const DEFAULT_TOKEN_LIFETIME_S = 60;

interface Entry {
  token: string;
  refreshAt: number;
}

export class TokenCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly now: () => number = Date.now) {}

  get(key: string): string | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (this.now() >= entry.refreshAt) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.token;
  }

  set(key: string, token: string, expiresInS: number, receivedAt = this.now()): void {
    const lifetimeMs = Math.max(0, expiresInS) * 1000;
    const margin = Math.min(10_000, lifetimeMs * 0.1);
    this.entries.set(key, { token, refreshAt: receivedAt + lifetimeMs - margin });
  }

  /** Forgets `key`, but only if it still holds `token` (a concurrent refresh may have replaced it). */
  invalidate(key: string, token?: string): void {
    const entry = this.entries.get(key);
    if (entry !== undefined && (token === undefined || entry.token === token)) this.entries.delete(key);
  }
}
