/**
 * RegistrySession: what a RegistryClient learned about the registries it talked to, as plain data
 * (structured-clone safe) that seeds another client, e.g. in a worker thread, so that it does not
 * pay again for a failed TLS attempt, a 401 challenge and a token fetch per registry.
 * It holds live bearer tokens (never credentials): do not log it or write it anywhere, and hand it
 * only to clients acting with the same credentials.
 */
import type { Authenticator, AuthScheme } from './authenticator.js';
import type { Scheme, SchemePolicy } from './scheme.js';
import type { LiveToken } from './token-cache.js';

export interface RegistrySession {
  /** `Date.now()` when taken: token lifetimes count from here, so a hand-off never extends one. */
  readonly takenAtMs: number;
  /** The scheme chosen per registry host (`host:port`). */
  readonly schemes: readonly { readonly registry: string; readonly scheme: Scheme }[];
  /** The auth scheme each registry asked for. */
  readonly auth: readonly ({ readonly registry: string } & AuthScheme)[];
  /** Bearer tokens still usable at `takenAtMs`, each for `validForMs` more. */
  readonly tokens: readonly LiveToken[];
}

export function captureSession(schemes: SchemePolicy, auth: Authenticator, now = Date.now()): RegistrySession {
  return { takenAtMs: now, schemes: schemes.remembered(), auth: auth.learnedSchemes(), tokens: auth.liveTokens(now) };
}

/** Seeds a new client's state; its own options still decide what is allowed (see SchemePolicy.adopt). */
export function seedSession(session: RegistrySession, schemes: SchemePolicy, auth: Authenticator): void {
  for (const { registry, scheme } of session.schemes) schemes.adopt(registry, scheme);
  for (const { registry, ...scheme } of session.auth) auth.adoptScheme(registry, scheme);
  for (const token of session.tokens) auth.adoptToken(token, session.takenAtMs);
}
