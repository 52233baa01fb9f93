/**
 * The seam between the controller's two halves, so each can be read (and tested) alone:
 * - the index side (`src/controller/indexing/`, the CSI Controller service in `src/controller/csi/`):
 *   resolves references, runs one index job per (digest, platform), keeps the S3 marker, reports outcomes;
 * - the Kubernetes side (`src/controller/kube/`): watches Pods, PVCs, ClipImages and Nodes, reads pull
 *   secrets, elects a leader, writes Events and ClipImage status, and turns objects into IndexRequests.
 * Neither imports the other's modules; both import this file. `controller.ts` wires them together.
 */
import type { RegistryCredentials } from '../clipcore/index.js';

/** The object that asked for an index: events and status go to it. */
export interface Requester {
  kind: 'Pod' | 'PersistentVolumeClaim' | 'ClipImage';
  /** Absent for ClipImage (cluster-scoped). */
  namespace?: string;
  name: string;
  uid: string;
  /**
   * Changes whenever the object changes (its resourceVersion for a Pod or PVC, metadata.generation
   * for a ClipImage): a permanent failure (not found, unauthorized, not a filesystem) is retried
   * only when a request comes with another revision.
   */
  revision: string;
}

export interface IndexRequest {
  /** The reference as the object wrote it (tag or digest). */
  image: string;
  /** `os/arch[/variant]`, at least one. */
  platforms: string[];
  /**
   * Credentials for the image's registry, best first (volume secret, pod pull secrets, service
   * account pull secrets), already read from Secrets; the controller's own Docker config is tried
   * after them. Held in memory only: never logged, stored or uploaded.
   */
  credentials: RegistryCredentials[];
  requester: Requester;
}

export interface IndexedPlatform {
  platform: string;
  /** `s3://bucket/key` of the index. */
  location: string;
  files: number;
  indexBytes: number;
  /** ISO 8601. */
  indexedAt: string;
  durationSeconds: number;
}

/** The ClipImage condition reasons, and the reasons of `Warning IndexFailed` events. */
export type FailureReason = 'Unauthorized' | 'NotFound' | 'NotAFilesystem' | 'Unavailable';

/** Each outcome names its image (`IndexRequest.image`): one requester may ask for several. */
export type IndexOutcome = { image: string } & (
  | { state: 'Indexing'; digest?: string; progress: string }
  | { state: 'Indexed'; digest: string; indexes: IndexedPlatform[] }
  | { state: 'Failed'; reason: FailureReason; message: string; digest?: string }
);

/** The index side, as the Kubernetes side sees it. */
export interface IndexService {
  /**
   * Makes sure an index exists for every platform of the request (a job per digest + platform;
   * equal requests join the running job; an index already in S3 is reported Indexed at once).
   * Outcomes reach the listeners registered with `onOutcome`, once per state change per requester
   * and image. A requester may ask for several images (a pod with volumes of different images),
   * each tracked on its own; a new request of an image replaces the requester's earlier one.
   */
  submit(request: IndexRequest): void;
  /**
   * The object is gone (or no longer needs `image`): report nothing more to it about all its
   * images (or that one); jobs others still want go on.
   */
  withdraw(requester: Requester, image?: string): void;
  onOutcome(listener: (requester: Requester, outcome: IndexOutcome) => void): void;
}

/** What the index side (the CSI Controller service) needs from the cluster. */
export interface ClusterView {
  /** An annotation of a PVC, read through the API (undefined when the PVC or annotation is missing). */
  pvcAnnotation(namespace: string, name: string, key: string): Promise<string | undefined>;
  /** The os/arch pairs among the cluster's Nodes (`--platforms` overrides them); may be empty before the first list. */
  nodePlatforms(): string[];
  /** `Normal` / `Warning` event on an object. Best effort: failures are logged, never thrown. */
  recordEvent(requester: Requester, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
}
