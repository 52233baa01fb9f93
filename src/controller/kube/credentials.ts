/**
 * Registry credentials from the cluster, read when a request is made: the named secrets of the
 * pod's namespace (the volumes' nodePublishSecretRef, then the pod's imagePullSecrets), then the
 * imagePullSecrets of its ServiceAccount. Secret contents are held only until the request is made
 * (a read is shared by the requests of the next few seconds, so 1,000 pods with one secret read it
 * once); they are never logged: messages name the secret, not what it holds.
 */
import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import type { Logger } from '../../csi/log.js';
import { credentialsFromSecrets, parseReference, type RegistryCredentials } from '../../clipcore/registry/index.js';
import { isNotFound } from './api-error.js';
import type { Health } from './health.js';
import { Limiter } from './limiter.js';

export interface CredentialSources {
  namespace: string;
  image: string;
  /** Secret names, best first. */
  secrets: readonly string[];
  /** Its pull secrets come after `secrets`. */
  serviceAccount?: string;
}

/** How long one read of a secret or service account serves later requests. */
const SHARE_MS = 5_000;
const CONCURRENT_READS = 8;

export class CredentialReader {
  private readonly reads = new Map<string, { at: number; value: Promise<unknown> }>();
  private readonly limiter = new Limiter(CONCURRENT_READS);

  constructor(
    private readonly core: CoreV1Api,
    private readonly log: Logger,
    private readonly health: Health,
  ) {}

  async read(sources: CredentialSources): Promise<RegistryCredentials[]> {
    let registry: string;
    try {
      registry = parseReference(sources.image).registry;
    } catch {
      return []; // the index side reports the bad reference
    }
    const names = [...sources.secrets];
    if (sources.serviceAccount) {
      for (const name of await this.serviceAccountSecrets(sources.namespace, sources.serviceAccount)) {
        if (!names.includes(name)) names.push(name);
      }
    }
    const found: RegistryCredentials[] = [];
    for (const name of names) {
      const data = await this.secretData(sources.namespace, name);
      if (!data) continue;
      try {
        const credentials = credentialsFromSecrets(data, registry);
        if (credentials) found.push(credentials);
      } catch (err) {
        this.log('warn', 'pull secret ignored', { namespace: sources.namespace, secret: name, reason: (err as Error).message });
      }
    }
    return found;
  }

  private async serviceAccountSecrets(namespace: string, name: string): Promise<string[]> {
    const account = await this.shared(`sa/${namespace}/${name}`, { verb: 'get', resource: 'serviceaccounts', namespace }, () =>
      this.core.readNamespacedServiceAccount({ namespace, name }),
    );
    return (account?.imagePullSecrets ?? []).flatMap((ref) => (ref.name ? [ref.name] : []));
  }

  private async secretData(namespace: string, name: string): Promise<Record<string, string> | undefined> {
    const secret: V1Secret | undefined = await this.shared(`secret/${namespace}/${name}`, { verb: 'get', resource: 'secrets', namespace }, () =>
      this.core.readNamespacedSecret({ namespace, name }),
    );
    if (!secret?.data) return undefined;
    const data: Record<string, string> = {};
    for (const [key, value] of Object.entries(secret.data)) data[key] = Buffer.from(value, 'base64').toString('utf8');
    return data;
  }

  /** One read for all asking within SHARE_MS; undefined when missing or unreadable (logged once). */
  private shared<T>(key: string, call: { verb: string; resource: string; namespace: string }, read: () => Promise<T>): Promise<T | undefined> {
    const now = Date.now();
    for (const [old, entry] of this.reads) if (now - entry.at > SHARE_MS) this.reads.delete(old);
    let entry = this.reads.get(key);
    if (!entry) {
      const name = key.slice(key.lastIndexOf('/') + 1);
      const value = this.limiter.run(read).then(
        (result) => {
          this.health.clear(`read ${call.resource}`);
          return result;
        },
        (err: unknown) => {
          if (isNotFound(err)) this.log('warn', `${call.resource} ${call.namespace}/${name} not found`);
          else this.health.refused(`read ${call.resource}`, call, err);
          return undefined;
        },
      );
      entry = { at: now, value };
      this.reads.set(key, entry);
    }
    return entry.value as Promise<T | undefined>;
  }
}
