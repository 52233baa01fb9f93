/**
 * The `Authorization` header for each registry request. The first request to a registry goes out
 * anonymously; its 401 challenge tells which scheme the registry wants, and that is remembered per
 * registry so later requests authenticate up front (a cached or freshly fetched bearer token).
 * A 401 on a request that carried a token drops that token and fetches a new one.
 */
import { basicHeader, isBasic, type Credentials } from './credentials.js';
import type { CredentialResolver } from './credential-resolver.js';
import { TokenCache, tokenKeyId, type LiveToken, type TokenKey } from './token-cache.js';
import type { IssuedToken, TokenRequest } from './token-fetcher.js';
import { parseWwwAuthenticate } from './www-authenticate.js';

/** How a registry wants to be authenticated, as its 401 challenge said. */
export type AuthScheme = { kind: 'basic' } | BearerScheme;
type BearerScheme = { kind: 'bearer'; realm: string; service?: string };

export type TokenSource = (req: TokenRequest) => Promise<IssuedToken>;

export class Authenticator {
  private readonly schemes = new Map<string, AuthScheme>();
  private readonly tokens = new TokenCache();
  private readonly inFlight = new Map<string, Promise<string>>();

  constructor(
    private readonly credentials: CredentialResolver,
    private readonly fetchToken: TokenSource,
  ) {}

  hasCredentials(registry: string): Promise<boolean> {
    return this.credentials.forRegistry(registry).then((c) => c !== undefined);
  }

  /** Header for a request to `registry` needing `scope`; undefined = go anonymously. */
  async authorization(registry: string, scope: string): Promise<string | undefined> {
    const creds = await this.credentials.forRegistry(registry);
    if (creds !== undefined && 'token' in creds) return `Bearer ${creds.token}`;
    const scheme = this.schemes.get(registry);
    if (scheme === undefined) return undefined;
    if (scheme.kind === 'basic') return isBasic(creds) ? basicHeader(creds) : undefined;
    return `Bearer ${await this.bearerToken(registry, scheme, [scope], scope, creds)}`;
  }

  /**
   * Reacts to a 401 from `registry`. Returns true when a retry can carry different credentials,
   * false when there is nothing else to try (the caller then reports UNAUTHORIZED).
   */
  async onUnauthorized(registry: string, scope: string, challengeHeader: string | string[] | undefined, sent: string | undefined): Promise<boolean> {
    const creds = await this.credentials.forRegistry(registry);
    if (creds !== undefined && 'token' in creds) return false;
    const challenges = parseWwwAuthenticate(challengeHeader);
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params['realm']);
    if (bearer !== undefined) {
      const scheme = bearerScheme(bearer.params['realm'] as string, bearer.params['service']);
      this.schemes.set(registry, scheme);
      const key = cacheKey(registry, scheme, scope);
      if (sent?.startsWith('Bearer ')) this.tokens.invalidate(key, sent.slice('Bearer '.length));
      // Ask for what the registry said it needs as well as our own scope.
      const asked = (bearer.params['scope'] ?? '').split(' ').filter((s) => s !== '');
      const scopes = [...new Set([scope, ...asked])];
      await this.bearerToken(registry, scheme, scopes, scope, creds);
      return true;
    }
    if (challenges.some((c) => c.scheme === 'basic') && isBasic(creds)) {
      const header = basicHeader(creds);
      if (sent === header) return false;
      this.schemes.set(registry, { kind: 'basic' });
      return true;
    }
    return false;
  }

  /** The auth scheme learned per registry (for a RegistrySession). */
  learnedSchemes(): ({ registry: string } & AuthScheme)[] {
    return [...this.schemes].map(([registry, scheme]) => ({ registry, ...scheme }));
  }

  /** Bearer tokens still usable at `now` (for a RegistrySession). */
  liveTokens(now: number): LiveToken[] {
    return this.tokens.live(now);
  }

  /** Starts from a scheme another client learned; a later 401 challenge still replaces it. */
  adoptScheme(registry: string, scheme: AuthScheme): void {
    this.schemes.set(registry, scheme.kind === 'basic' ? { kind: 'basic' } : bearerScheme(scheme.realm, scheme.service));
  }

  /** Starts from a token another client holds; when expired or refused it is refreshed as usual. */
  adoptToken(token: LiveToken, listedAt: number): void {
    this.tokens.adopt(token, listedAt);
  }

  /** A valid token from the cache, or one fetched now; concurrent callers share one fetch. */
  private bearerToken(
    registry: string,
    scheme: { realm: string; service?: string },
    scopes: string[],
    scope: string,
    creds: Credentials | undefined,
  ): Promise<string> {
    const key = cacheKey(registry, scheme, scope);
    const cached = this.tokens.get(key);
    if (cached !== undefined) return Promise.resolve(cached);
    const id = tokenKeyId(key);
    let pending = this.inFlight.get(id);
    if (pending === undefined) {
      const request: TokenRequest = { realm: scheme.realm, scopes, registry };
      if (scheme.service !== undefined) request.service = scheme.service;
      if (creds !== undefined) request.credentials = creds;
      pending = this.fetchToken(request)
        .then((issued) => {
          this.tokens.set(key, issued.token, issued.expiresInS);
          return issued.token;
        })
        .finally(() => this.inFlight.delete(id));
      this.inFlight.set(id, pending);
    }
    return pending;
  }
}

function bearerScheme(realm: string, service: string | undefined): BearerScheme {
  return service === undefined ? { kind: 'bearer', realm } : { kind: 'bearer', realm, service };
}

function cacheKey(registry: string, scheme: { realm: string; service?: string }, scope: string): TokenKey {
  return scheme.service === undefined ? { registry, realm: scheme.realm, scope } : { registry, realm: scheme.realm, service: scheme.service, scope };
}
