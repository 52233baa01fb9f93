/** Options of RegistryClient and their defaults. */
import type { Env } from './credential-helper.js';
import type { BasicCredentials, CredentialsProvider, TokenCredentials } from './credentials.js';
import type { RegistrySession } from './session.js';

export interface RegistryClientOptions {
  /** Used for every registry this client talks to; wins over Docker's config.json. */
  auth?: BasicCredentials | TokenCredentials;
  /** Asked at each request instead of `auth` (a long-lived client whose credentials change or arrive late). */
  credentialsProvider?: CredentialsProvider;
  /** config.json file or the directory holding it; default `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. */
  dockerConfigPath?: string;
  /**
   * Registries (`host:port`, or `host` for any port) that may fall back to plain HTTP when they do not
   * speak TLS, as loopback registries always may. `http://host:port` forces plain HTTP outright.
   */
  insecureRegistries?: string[];
  /** Extra trusted CA certificates (PEM), on top of Node's bundled roots. */
  caCertificates?: (string | Buffer)[];
  /** Inactivity timeout per request: waiting for headers, and any pause within a body. Default 30 s. */
  timeoutMs?: number;
  /** Retries after the first attempt for 429, 5xx and dropped connections. Default 3. */
  retries?: number;
  /** First backoff delay; doubles each retry, with jitter. Default 200 ms. */
  retryBaseDelayMs?: number;
  /** Backoff ceiling. Default 5 s. */
  retryMaxDelayMs?: number;
  /** `Retry-After` values above this fail the request instead of stalling it. Default 60 s. */
  maxRetryAfterMs?: number;
  /** Default 5. */
  maxRedirects?: number;
  userAgent?: string;
  /** Environment for DOCKER_CONFIG, HOME and PATH (credential helpers). Default process.env. */
  env?: Env;
  /** How long a credential helper may run. Default 10 s. */
  credentialHelperTimeoutMs?: number;
  /**
   * What another client learned (`RegistryClient.session()`): schemes, auth schemes, bearer tokens.
   * Starts from it instead of learning it again; credentials still come from the options above.
   */
  session?: RegistrySession;
}

export const DEFAULTS = {
  timeoutMs: 30_000,
  retries: 3,
  retryBaseDelayMs: 200,
  retryMaxDelayMs: 5_000,
  maxRetryAfterMs: 60_000,
  maxRedirects: 5,
  userAgent: 'clip-csi/0.1 (+https://github.com/opencontainers/distribution-spec)',
  credentialHelperTimeoutMs: 10_000,
} as const;
