/**
 * The little the controller keeps of a Pod: who it is, and its volumes of our driver with what
 * decides their index (image, platform) and their credentials (secret names, service account).
 * Only pods that still need an index are kept: Pending and not being deleted (a Running pod's
 * volumes are already mounted), and only if they have a volume of our driver.
 */
import type { V1Pod } from '@kubernetes/client-node';

export interface VolumeView {
  image: string;
  /** The volume's `platform` attribute. */
  platform?: string;
  /** Its `nodePublishSecretRef` (a secret in the pod's namespace). */
  secret?: string;
}

export interface PodView {
  uid: string;
  namespace: string;
  name: string;
  resourceVersion: string;
  volumes: VolumeView[];
  pullSecrets: readonly string[];
  serviceAccount: string;
  /** The pod's `kubernetes.io/os` / `kubernetes.io/arch` node selector. */
  os?: string;
  arch?: string;
}

/** One IndexRequest to make for a pod (without credentials, read when it is made). */
export interface ImageNeed {
  image: string;
  platforms: string[];
  /** Secret names to try, best first: the volumes' secrets, then the pod's pull secrets. */
  secrets: string[];
}

/** Shared by the pods without pull secrets (most): one array, not one per pod. */
const NO_SECRETS: readonly string[] = Object.freeze([]);

/** The projection, or undefined when the pod needs no index (now or ever). */
export function projectPod(pod: V1Pod, driverName: string): PodView | undefined {
  const metadata = pod.metadata;
  const phase = pod.status?.phase;
  if (!metadata?.uid || !metadata.name || !metadata.namespace) return undefined;
  if (metadata.deletionTimestamp || (phase !== undefined && phase !== 'Pending')) return undefined;
  const volumes: VolumeView[] = [];
  for (const volume of pod.spec?.volumes ?? []) {
    const csi = volume.csi;
    const image = csi?.volumeAttributes?.['image'];
    if (csi?.driver !== driverName || !image) continue;
    const platform = csi.volumeAttributes?.['platform'] || undefined;
    const secret = csi.nodePublishSecretRef?.name || undefined;
    volumes.push({ image, ...(platform && { platform }), ...(secret && { secret }) });
  }
  if (volumes.length === 0) return undefined;
  const selector = pod.spec?.nodeSelector ?? {};
  const os = selector['kubernetes.io/os'];
  const arch = selector['kubernetes.io/arch'];
  return {
    uid: metadata.uid,
    namespace: metadata.namespace,
    name: metadata.name,
    resourceVersion: metadata.resourceVersion ?? '',
    // A copy of exactly its length: the array push grew keeps room for 17 (136 B more per pod).
    volumes: volumes.slice(),
    pullSecrets: pod.spec?.imagePullSecrets?.length ? pod.spec.imagePullSecrets.flatMap((ref) => (ref.name ? [ref.name] : [])) : NO_SECRETS,
    serviceAccount: pod.spec?.serviceAccountName || 'default',
    ...(os && { os }),
    ...(arch && { arch }),
  };
}

/** Whether two projections of one pod ask for the same indexes with the same credentials. */
export function sameNeeds(a: PodView, b: PodView): boolean {
  const needs = (view: PodView): string =>
    JSON.stringify([view.volumes, view.pullSecrets, view.serviceAccount, view.os ?? '', view.arch ?? '']);
  return needs(a) === needs(b);
}

/**
 * Each distinct image with its platforms: a volume's `platform` attribute, else the pod's node
 * selector, else the defaults (`--platforms`, else the cluster's nodes), narrowed to the selector's
 * os or arch when only one is given.
 */
export function imageNeeds(view: PodView, defaults: readonly string[]): ImageNeed[] {
  const byImage = new Map<string, ImageNeed>();
  for (const volume of view.volumes) {
    let need = byImage.get(volume.image);
    if (!need) {
      need = { image: volume.image, platforms: [], secrets: [] };
      byImage.set(volume.image, need);
    }
    for (const platform of volume.platform ? [volume.platform] : podPlatforms(view, defaults)) {
      if (!need.platforms.includes(platform)) need.platforms.push(platform);
    }
    if (volume.secret && !need.secrets.includes(volume.secret)) need.secrets.push(volume.secret);
  }
  for (const need of byImage.values()) {
    for (const secret of view.pullSecrets) if (!need.secrets.includes(secret)) need.secrets.push(secret);
  }
  return [...byImage.values()].filter((need) => need.platforms.length > 0);
}

function podPlatforms(view: PodView, defaults: readonly string[]): string[] {
  if (view.os && view.arch) return [`${view.os}/${view.arch}`];
  if (!view.os && !view.arch) return [...defaults];
  const matching = defaults.filter((platform) => {
    const [os, arch] = platform.split('/');
    return (!view.os || os === view.os) && (!view.arch || arch === view.arch);
  });
  if (matching.length > 0) return matching;
  return [`${view.os ?? 'linux'}/${view.arch ?? 'amd64'}`];
}
