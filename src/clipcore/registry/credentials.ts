/** Credential shapes. They are only ever put in headers; never in messages, logs or error causes. */

export interface BasicCredentials {
  username: string;
  password: string;
}

/** A registry bearer token used as is (e.g. a short-lived token handed over by a CSI secret). */
export interface TokenCredentials {
  token: string;
}

/** An OAuth2 refresh token (Docker's `identitytoken`), exchanged at the token realm. */
export interface IdentityTokenCredentials {
  identityToken: string;
}

export type Credentials = BasicCredentials | TokenCredentials | IdentityTokenCredentials;

/**
 * Credentials asked for at each request instead of fixed for a client's life: a long-lived client
 * (a mount's) whose credentials are replaced, or arrive late, while it serves. It may wait for
 * them and may throw (the request then fails with that error); undefined falls back to Docker's
 * config. Functions cannot cross to worker threads: indexing takes fixed credentials.
 */
export type CredentialsProvider = (registry: string) => Promise<BasicCredentials | TokenCredentials | undefined>;

export function isBasic(c: Credentials | undefined): c is BasicCredentials {
  return c !== undefined && 'username' in c;
}

export function basicHeader(c: BasicCredentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64')}`;
}
