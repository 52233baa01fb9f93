/** Which credentials go to which registry: explicit options win, else Docker's config.json (read once). */
import type { Env } from './credential-helper.js';
import type { Credentials } from './credentials.js';
import { credentialsFromDockerConfig, dockerConfigFile, loadDockerConfig } from './docker-config.js';
import type { JsonObject } from './json.js';

export interface CredentialResolverOptions {
  explicit?: Credentials;
  dockerConfigPath?: string;
  env: Env;
  helperTimeoutMs: number;
}

export class CredentialResolver {
  private config: Promise<JsonObject | undefined> | undefined;
  private readonly perRegistry = new Map<string, Promise<Credentials | undefined>>();

  constructor(private readonly options: CredentialResolverOptions) {}

  forRegistry(registry: string): Promise<Credentials | undefined> {
    if (this.options.explicit !== undefined) return Promise.resolve(this.options.explicit);
    let found = this.perRegistry.get(registry);
    if (found === undefined) {
      found = this.lookUp(registry);
      // A failed lookup (bad config, broken helper) is retried next time rather than cached.
      found.catch(() => this.perRegistry.delete(registry));
      this.perRegistry.set(registry, found);
    }
    return found;
  }

  private async lookUp(registry: string): Promise<Credentials | undefined> {
    this.config ??= dockerConfigFile(this.options.dockerConfigPath, this.options.env).then(loadDockerConfig);
    const config = await this.config;
    if (config === undefined) return undefined;
    return credentialsFromDockerConfig(config, registry, this.options.env, this.options.helperTimeoutMs);
  }
}
