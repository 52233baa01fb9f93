/**
 * Bearer tokens per (registry, realm, service, scope). A token is dropped a little before
 * `expires_in` runs out (10 % of its lifetime, at most 10 s) so requests do not race its expiry.
 * Times are local receive times, not the server's `issued_at`, so clock skew between hosts does not matter.
 */

/** Distribution's token spec: a missing `expires_in` means 60 seconds. */
export const DEFAULT_TOKEN_LIFETIME_S = 60;

export interface TokenKey {
  readonly registry: string;
  readonly realm: string;
  readonly service?: string;
  readonly scope: string;
}

/** A cached token and how much longer it may be used (the safety margin already taken off). */
export interface LiveToken extends TokenKey {
  readonly token: string;
  readonly validForMs: number;
}

interface Entry {
  key: TokenKey;
  token: string;
  refreshAt: number;
}

export class TokenCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly now: () => number = Date.now) {}

  get(key: TokenKey): string | undefined {
    const id = tokenKeyId(key);
    const entry = this.entries.get(id);
    if (entry === undefined) return undefined;
    if (this.now() >= entry.refreshAt) {
      this.entries.delete(id);
      return undefined;
    }
    return entry.token;
  }

  set(key: TokenKey, token: string, expiresInS: number, receivedAt = this.now()): void {
    // A kept client lives as long as its process: expired tokens of other scopes go as new ones come.
    const now = this.now();
    for (const [id, entry] of this.entries) if (now >= entry.refreshAt) this.entries.delete(id);
    const lifetimeMs = Math.max(0, expiresInS) * 1000;
    const margin = Math.min(10_000, lifetimeMs * 0.1);
    this.entries.set(tokenKeyId(key), { key, token, refreshAt: receivedAt + lifetimeMs - margin });
  }

  /** Forgets `key`, but only if it still holds `token` (a concurrent refresh may have replaced it). */
  invalidate(key: TokenKey, token?: string): void {
    const id = tokenKeyId(key);
    const entry = this.entries.get(id);
    if (entry !== undefined && (token === undefined || entry.token === token)) this.entries.delete(id);
  }

  /** The tokens still usable at `now`. */
  live(now = this.now()): LiveToken[] {
    return [...this.entries.values()]
      .filter((entry) => entry.refreshAt > now)
      .map(({ key, token, refreshAt }) => ({ ...key, token, validForMs: refreshAt - now }));
  }

  /**
   * Takes a token another cache listed at `listedAt`. Its lifetime counts from then, not from now,
   * so a hand-off never outlives the original; a clock behind `listedAt` counts from now instead.
   */
  adopt(token: LiveToken, listedAt: number): void {
    if (!(Number.isFinite(token.validForMs) && token.validForMs > 0)) return;
    const { token: value, validForMs, ...key } = token;
    const now = this.now();
    const refreshAt = Math.min(listedAt, now) + validForMs;
    if (refreshAt > now) this.entries.set(tokenKeyId(key), { key, token: value, refreshAt });
  }
}

/** The key as one string, for maps. */
export function tokenKeyId(key: TokenKey): string {
  return JSON.stringify([key.registry, key.realm, key.service ?? '', key.scope]);
}
