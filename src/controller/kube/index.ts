/**
 * The controller's Kubernetes side: watches Pods, ClipImages and Nodes, reads pull secrets, elects a
 * leader, writes Events and ClipImage status, and turns objects into IndexRequests (contracts.ts).
 */
import type { ClusterView, IndexService, Requester } from '../contracts.js';
import type { Logger } from '../../csi/log.js';

export interface KubeSideOptions {
  /** A kubeconfig file; else $KUBECONFIG; else the in-cluster service account. */
  kubeconfig?: string;
  driverName: string;
  readPullSecrets: boolean;
  /** `--platforms`: used when neither the volume nor the pod says which platform. */
  platforms?: string[];
  leaderElection: boolean;
  /** Where the Lease lives; default the service account's namespace, else `default`. */
  leaderElectionNamespace?: string;
  /** This replica's name in the Lease and in the S3 marker (the pod name in a cluster). */
  identity: string;
  log: Logger;
  index: IndexService;
  onLeaderChange(leader: boolean): void;
}

export class KubeSide implements ClusterView {
  constructor(private readonly options: KubeSideOptions) {}

  async start(): Promise<void> {
    this.options.log('info', 'kubernetes side: not implemented yet');
  }

  async stop(): Promise<void> {}

  readiness(): { ready: boolean; reasons: string[] } {
    return { ready: false, reasons: ['not implemented yet'] };
  }

  async pvcAnnotation(_namespace: string, _name: string, _key: string): Promise<string | undefined> {
    return undefined;
  }

  nodePlatforms(): string[] {
    return [];
  }

  async recordEvent(_requester: Requester, _type: 'Normal' | 'Warning', _reason: string, _message: string): Promise<void> {}
}
