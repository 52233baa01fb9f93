/**
 * Which credentials go to which registry: explicit options win, else Docker's config.json. What
 * config.json and its helpers say is asked again after CREDENTIALS_MAX_AGE_MS, so that a long-lived
 * client (kept from one image to the next, or a mount's) sees a `docker login` or rotated credentials.
 */
import type { Env } from './credential-helper.js';
import type { Credentials, CredentialsProvider } from './credentials.js';
import { credentialsFromDockerConfig, dockerConfigFile, loadDockerConfig } from './docker-config.js';
import type { JsonObject } from './json.js';

export const CREDENTIALS_MAX_AGE_MS = 60_000;

export interface CredentialResolverOptions {
  explicit?: Credentials | CredentialsProvider;
  dockerConfigPath?: string;
  env: Env;
  helperTimeoutMs: number;
  /** Clock, for tests. */
  now?: () => number;
}

interface Answer<T> {
  readonly at: number;
  readonly value: Promise<T>;
}

export class CredentialResolver {
  private config: Answer<JsonObject | undefined> | undefined;
  private readonly perRegistry = new Map<string, Answer<Credentials | undefined>>();

  constructor(private readonly options: CredentialResolverOptions) {}

  forRegistry(registry: string): Promise<Credentials | undefined> {
    const explicit = this.options.explicit;
    if (typeof explicit === 'function') return explicit(registry).then((found) => found ?? this.fromConfig(registry));
    if (explicit !== undefined) return Promise.resolve(explicit);
    return this.fromConfig(registry);
  }

  private fromConfig(registry: string): Promise<Credentials | undefined> {
    const now = (this.options.now ?? Date.now)();
    let found = this.perRegistry.get(registry);
    if (found === undefined || now - found.at >= CREDENTIALS_MAX_AGE_MS) {
      const fresh = { at: now, value: this.lookUp(registry, now) };
      // A failed lookup (bad config, broken helper) is retried next time rather than cached.
      fresh.value.catch(() => this.perRegistry.get(registry) === fresh && this.perRegistry.delete(registry));
      this.perRegistry.set(registry, fresh);
      found = fresh;
    }
    return found.value;
  }

  private async lookUp(registry: string, now: number): Promise<Credentials | undefined> {
    if (this.config === undefined || now - this.config.at >= CREDENTIALS_MAX_AGE_MS) {
      const fresh = { at: now, value: dockerConfigFile(this.options.dockerConfigPath, this.options.env).then(loadDockerConfig) };
      fresh.value.catch(() => this.config === fresh && (this.config = undefined));
      this.config = fresh;
    }
    const config = await this.config.value;
    if (config === undefined) return undefined;
    return credentialsFromDockerConfig(config, registry, this.options.env, this.options.helperTimeoutMs);
  }
}
