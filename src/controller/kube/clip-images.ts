/**
 * ClipImages → IndexRequests: a request when one appears or its spec changes (a new generation;
 * status writes do not count), a withdrawal when it is deleted or missing from a relist.
 */
import { RelistSeen } from './relist.js';
import type { IndexService, Requester } from '../contracts.js';
import type { ClipImage } from './clip-image-api.js';
import type { CredentialReader } from './credentials.js';
import type { WatchSink } from './list-watch.js';

interface ClipImageView {
  requester: Requester;
  image: string;
  platforms: string[];
  pullSecret?: { name: string; namespace: string };
}

export interface ClipImageRequestsOptions {
  index: IndexService;
  credentials?: CredentialReader;
  defaultPlatforms(): string[];
}

export class ClipImageRequests implements WatchSink<ClipImage> {
  private readonly images = new Map<string, ClipImageView>();
  private readonly relist = new RelistSeen();

  constructor(private readonly options: ClipImageRequestsOptions) {}

  upsert(object: ClipImage): void {
    const metadata = object.metadata;
    if (!metadata?.uid || !metadata.name) return;
    this.relist.saw(metadata.uid);
    const known = this.images.get(metadata.uid);
    const revision = String(metadata.generation ?? 0);
    if (known?.requester.revision === revision) return;
    const image = object.spec?.image;
    if (!image) {
      if (known) this.drop(known);
      return;
    }
    const ref = object.spec?.pullSecretRef;
    const view: ClipImageView = {
      requester: { kind: 'ClipImage', name: metadata.name, uid: metadata.uid, revision },
      image,
      platforms: object.spec?.platforms ?? [],
      ...(ref?.name && ref.namespace && { pullSecret: { name: ref.name, namespace: ref.namespace } }),
    };
    // Another image: its status no longer follows the one asked before.
    if (known && known.image !== image) this.options.index.withdraw(known.requester);
    this.images.set(metadata.uid, view);
    this.submit(view);
  }

  remove(object: ClipImage): void {
    const known = this.images.get(object.metadata?.uid ?? '');
    if (known) this.drop(known);
  }

  relistBegin(): void {
    this.relist.begin();
  }

  relistEnd(): void {
    for (const uid of this.relist.end(this.images.keys())) {
      const view = this.images.get(uid);
      if (view) this.drop(view);
    }
  }

  clear(): void {
    for (const view of [...this.images.values()]) this.drop(view);
  }

  private drop(view: ClipImageView): void {
    this.images.delete(view.requester.uid);
    this.options.index.withdraw(view.requester);
  }

  private submit(view: ClipImageView): void {
    const platforms = view.platforms.length > 0 ? view.platforms : this.options.defaultPlatforms();
    const secret = view.pullSecret;
    const credentials =
      secret && this.options.credentials
        ? this.options.credentials.read({ namespace: secret.namespace, image: view.image, secrets: [secret.name] })
        : Promise.resolve([]);
    void credentials.then((found) => {
      if (this.images.get(view.requester.uid) !== view) return;
      this.options.index.submit({ image: view.image, platforms, credentials: found, requester: view.requester });
    });
  }
}
