/**
 * The controller's Kubernetes side: watches Pods, ClipImages and Nodes, reads pull secrets, elects a
 * leader, writes Events and ClipImage status, and turns objects into IndexRequests (contracts.ts).
 * Every replica watches Nodes (CreateVolume needs their platforms) and answers the ClusterView;
 * only the leader watches Pods and ClipImages and submits for them.
 */
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../csi/log.js';
import { ClipError } from '../../clipcore/errors.js';
import type { ClusterView, IndexOutcome, IndexService, Requester } from '../contracts.js';
import { describeApiError, isNotFound } from './api-error.js';
import { CLIP_IMAGE_PATH, CLIP_IMAGE_RESOURCE, type ClipImage, type ClipImageList } from './clip-image-api.js';
import { ClipImageRequests } from './clip-images.js';
import { ClipImageStatusWriter } from './clip-image-status.js';
import { connect, type KubeClients } from './client.js';
import { CredentialReader } from './credentials.js';
import { EventRecorder } from './events.js';
import { Health } from './health.js';
import { LeaderElector } from './leader.js';
import { ListWatch } from './list-watch.js';
import { NodePlatforms } from './node-platforms.js';
import { reportOutcome } from './outcomes.js';
import { PodRequests } from './pod-requests.js';

export interface KubeSideOptions {
  /** A kubeconfig file; else $KUBECONFIG; else the in-cluster service account. */
  kubeconfig?: string;
  driverName: string;
  readPullSecrets: boolean;
  /** `--platforms`: used when neither the volume nor the pod says which platform. */
  platforms?: string[];
  leaderElection: boolean;
  /** Where the Lease lives; default the service account's (or kubeconfig context's) namespace, else `default`. */
  leaderElectionNamespace?: string;
  /** This replica's name in the Lease and in Events (the pod name in a cluster). */
  identity: string;
  log: Logger;
  index: IndexService;
  onLeaderChange(leader: boolean): void;
}

/** What runs only while this replica leads. */
interface LeaderWork {
  pods: PodRequests;
  clipImages: ClipImageRequests;
  watches: ListWatch<V1Pod | ClipImage>[];
}

export class KubeSide implements ClusterView {
  private readonly health: Health;
  private readonly nodes = new NodePlatforms();
  private clients: KubeClients | undefined;
  private nodeWatch: ListWatch<V1Node> | undefined;
  private elector: LeaderElector | undefined;
  private events: EventRecorder | undefined;
  private status: ClipImageStatusWriter | undefined;
  private credentials: CredentialReader | undefined;
  private work: LeaderWork | undefined;
  /** Serializes leadership changes (a watch must stop before the next starts). */
  private transition: Promise<void> = Promise.resolve();
  private stopped = false;
  private leading = false;

  constructor(private readonly options: KubeSideOptions) {
    this.health = new Health(options.log);
    this.health.set('start', 'the Kubernetes side has not started');
  }

  async start(): Promise<void> {
    const { options } = this;
    const clients = connect(options.kubeconfig);
    this.clients = clients;
    this.events = new EventRecorder(clients.core, options.identity, this.health);
    this.status = new ClipImageStatusWriter(clients.custom, this.health);
    if (options.readPullSecrets) this.credentials = new CredentialReader(clients.core, options.log, this.health);
    options.index.onOutcome((requester, outcome) => void this.report(requester, outcome));
    this.nodeWatch = new ListWatch<V1Node>({
      resource: 'nodes',
      watchPath: '/api/v1/nodes',
      list: async (limit, token) => {
        const list = await clients.core.listNode({ limit, _continue: token });
        return { items: list.items, resourceVersion: list.metadata?.resourceVersion ?? '', continueToken: list.metadata?._continue };
      },
      watch: clients.watch,
      sink: this.nodes,
      health: this.health,
      log: options.log,
    });
    this.nodeWatch.start();
    this.health.clear('start');
    if (options.leaderElection) {
      const namespace = options.leaderElectionNamespace ?? clients.namespace ?? 'default';
      this.elector = new LeaderElector({
        coordination: clients.coordination,
        namespace,
        identity: options.identity,
        log: options.log,
        health: this.health,
        onChange: (leader) => this.lead(leader),
      });
      this.elector.start();
    } else {
      this.lead(true);
    }
    options.log('info', 'kubernetes side started', { leaderElection: options.leaderElection, readPullSecrets: options.readPullSecrets, identity: options.identity });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.elector?.stop();
    this.lead(false);
    await this.transition;
    await this.nodeWatch?.stop();
    this.clients?.close();
  }

  readiness(): { ready: boolean; reasons: string[] } {
    return this.health.readiness();
  }

  async pvcAnnotation(namespace: string, name: string, key: string): Promise<string | undefined> {
    const core = this.clients?.core;
    if (!core) throw new ClipError('UNAVAILABLE', 'the Kubernetes side has not started');
    try {
      const claim = await core.readNamespacedPersistentVolumeClaim({ namespace, name });
      return claim.metadata?.annotations?.[key];
    } catch (err) {
      if (isNotFound(err)) return undefined;
      this.health.refused('read persistentvolumeclaims', { verb: 'get', resource: 'persistentvolumeclaims', namespace }, err);
      throw new ClipError('UNAVAILABLE', `cannot read PersistentVolumeClaim ${namespace}/${name}: ${describeApiError(err)}`, { cause: err });
    }
  }

  nodePlatforms(): string[] {
    return this.nodes.platforms();
  }

  async recordEvent(requester: Requester, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    await this.events?.record(requester, type, reason, message);
  }

  private defaultPlatforms = (): string[] => (this.options.platforms?.length ? [...this.options.platforms] : this.nodes.platforms());

  private lead(leader: boolean): void {
    if ((this.stopped && leader) || leader === this.leading) return;
    this.leading = leader;
    this.transition = this.transition.then(() => (leader ? this.startLeading() : this.stopLeading()));
    this.options.onLeaderChange(leader);
  }

  private async startLeading(): Promise<void> {
    const clients = this.clients;
    if (this.work || !clients || this.stopped) return;
    const { options } = this;
    const pods = new PodRequests({ driverName: options.driverName, index: options.index, credentials: this.credentials, defaultPlatforms: this.defaultPlatforms });
    const clipImages = new ClipImageRequests({ index: options.index, credentials: this.credentials, defaultPlatforms: this.defaultPlatforms });
    const podWatch = new ListWatch<V1Pod>({
      resource: 'pods',
      watchPath: '/api/v1/pods',
      list: async (limit, token) => {
        const list = await clients.core.listPodForAllNamespaces({ limit, _continue: token });
        return { items: list.items, resourceVersion: list.metadata?.resourceVersion ?? '', continueToken: list.metadata?._continue };
      },
      watch: clients.watch,
      sink: pods,
      health: this.health,
      log: options.log,
    });
    const clipImageWatch = new ListWatch<ClipImage>({
      resource: 'clipimages',
      watchPath: CLIP_IMAGE_PATH,
      list: async (limit, token) => {
        const list = (await clients.custom.listClusterCustomObject({ ...CLIP_IMAGE_RESOURCE, limit, _continue: token })) as ClipImageList;
        return { items: list.items ?? [], resourceVersion: list.metadata?.resourceVersion ?? '', continueToken: list.metadata?.continue };
      },
      watch: clients.watch,
      sink: clipImages,
      health: this.health,
      log: options.log,
    });
    this.work = { pods, clipImages, watches: [podWatch, clipImageWatch] as ListWatch<V1Pod | ClipImage>[] };
    // Without --platforms a pod's platforms come from the nodes: know them before the first pod.
    if (!options.platforms?.length) await this.nodeWatch?.whenSynced();
    if (this.work?.pods !== pods) return;
    podWatch.start();
    clipImageWatch.start();
  }

  private async stopLeading(): Promise<void> {
    const work = this.work;
    if (!work) return;
    this.work = undefined;
    await Promise.all(work.watches.map((watch) => watch.stop()));
    work.pods.clear();
    work.clipImages.clear();
  }

  private async report(requester: Requester, outcome: IndexOutcome): Promise<void> {
    const events = this.events;
    const status = this.status;
    if (!events || !status) return;
    await reportOutcome(
      {
        event: (who, type, reason, message) => events.record(who, type, reason, message),
        status: (who, what) => status.write(who, what),
      },
      requester,
      outcome,
    );
  }
}
