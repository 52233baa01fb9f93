/**
 * Pods → IndexRequests. Keeps the projection of each pod that still needs an index, submits when
 * a pod appears or changes what it needs, and withdraws when it is deleted, starts running, or is
 * not in a relist. Credentials are read only if --read-pull-secrets (it needs RBAC on Secrets).
 */
import { RelistSeen } from './relist.js';
import type { V1Pod } from '@kubernetes/client-node';
import type { IndexService, Requester } from '../contracts.js';
import type { CredentialReader } from './credentials.js';
import type { WatchSink } from './list-watch.js';
import { imageNeeds, projectPod, sameNeeds, type PodView } from './pod-view.js';

export interface PodRequestsOptions {
  driverName: string;
  index: IndexService;
  /** Undefined when pull secrets are not read. */
  credentials?: CredentialReader;
  /** `--platforms`, else the nodes' platforms. */
  defaultPlatforms(): string[];
}

export const podRequester = (view: PodView): Requester => ({
  kind: 'Pod',
  namespace: view.namespace,
  name: view.name,
  uid: view.uid,
  revision: view.resourceVersion,
});

export class PodRequests implements WatchSink<V1Pod> {
  private readonly pods = new Map<string, PodView>();
  private readonly relist = new RelistSeen();

  constructor(private readonly options: PodRequestsOptions) {}

  upsert(pod: V1Pod): void {
    const uid = pod.metadata?.uid;
    if (!uid) return;
    this.relist.saw(uid);
    const view = projectPod(pod, this.options.driverName);
    const known = this.pods.get(uid);
    if (!view) {
      if (known) this.drop(known);
      return;
    }
    if (known && sameNeeds(known, view)) return; // keeps the revision it was submitted with
    this.pods.set(uid, view);
    if (known) {
      // Images the pod no longer asks for: nothing more is reported to it about them.
      const images = new Set(view.volumes.map((volume) => volume.image));
      for (const volume of known.volumes) if (!images.has(volume.image)) this.options.index.withdraw(podRequester(known), volume.image);
    }
    this.submit(view);
  }

  remove(pod: V1Pod): void {
    const known = this.pods.get(pod.metadata?.uid ?? '');
    if (known) this.drop(known);
  }

  relistBegin(): void {
    this.relist.begin();
  }

  relistEnd(): void {
    for (const uid of this.relist.end(this.pods.keys())) {
      const view = this.pods.get(uid);
      if (view) this.drop(view);
    }
  }

  /** Leadership lost: another replica answers for the pods now. */
  clear(): void {
    for (const view of [...this.pods.values()]) this.drop(view);
  }

  private drop(view: PodView): void {
    this.pods.delete(view.uid);
    this.options.index.withdraw(podRequester(view));
  }

  private submit(view: PodView): void {
    const requester = podRequester(view);
    for (const need of imageNeeds(view, this.options.defaultPlatforms())) {
      const credentials = this.options.credentials?.read({
        namespace: view.namespace,
        image: need.image,
        secrets: need.secrets,
        serviceAccount: view.serviceAccount,
      });
      void (credentials ?? Promise.resolve([])).then((found) => {
        // The pod may have gone, or changed, while its secrets were read.
        if (this.pods.get(view.uid) !== view) return;
        this.options.index.submit({ image: need.image, platforms: need.platforms, credentials: found, requester });
      });
    }
  }
}
