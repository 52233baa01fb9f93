/**
 * The controller process (`clip controller`), wired together: the index side (IndexQueue +
 * Indexer writing to S3), the CSI Identity and Controller services on a unix socket, the
 * metrics/health HTTP endpoint, and the Kubernetes side, which turns Pods, PVCs and ClipImages into
 * index requests. The two sides meet only through contracts.ts.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describeError, formatPlatform, hostPlatform, releaseFreeMemory, S3IndexStore, type S3IndexSettings } from '../clipcore/index.js';
import { startHealthServer, type HealthServer } from '../csi/http-server.js';
import { identityService, type Readiness } from '../csi/identity.js';
import type { Logger } from '../csi/log.js';
import { startCsiServer, type CsiServer } from '../csi/server.js';
import type { ClusterView, Requester } from './contracts.js';
import { controllerService } from './csi/controller-service.js';
import { IndexQueue } from './indexing/index-service.js';
import { Indexer } from './indexing/indexer.js';
import type { RegistrySettings } from './indexing/resolve.js';
import { ControllerMetrics } from './metrics.js';

export interface KubernetesSettings {
  kubeconfig?: string;
  readPullSecrets: boolean;
  leaderElection: boolean;
  leaderElectionNamespace?: string;
}

export interface ControllerOptions {
  endpoint: string;
  driverName: string;
  version: string;
  /** Who this replica is, in markers and the lease (default: the host name, i.e. the pod name). */
  identity?: string;
  s3: S3IndexSettings;
  /** --platforms: overrides the os/arch pairs of the cluster's Nodes. */
  platforms?: string[];
  concurrency: number;
  metricsAddr?: string;
  /** How long CreateVolume waits for the indexes before answering ABORTED. */
  createWaitSeconds: number;
  registry: RegistrySettings;
  /** Where indexes are written before their upload. */
  tempDir: string;
  /** false: the CSI service alone, without watches (PVC annotations and Node platforms unavailable). */
  kubernetes: KubernetesSettings | false;
  log: Logger;
}

/** What the composition root needs of the Kubernetes side, beyond the ClusterView. */
export interface ClusterSide extends ClusterView {
  start(): Promise<void>;
  stop(): Promise<void>;
  readiness(): { ready: boolean; reasons: string[] };
}

/**
 * How often malloc's free pages are handed back. After each job the indexer does it once, but the
 * layer workers end only some seconds later (idle timeout), and their arenas stay resident until
 * the next call.
 */
const RELEASE_FREE_MEMORY_MS = 15_000;

export interface Controller {
  readonly socketPath: string;
  readonly metricsAddress?: string;
  readiness(): Promise<Readiness>;
  stop(): Promise<void>;
}

export async function startController(options: ControllerOptions): Promise<Controller> {
  const { log } = options;
  const identity = options.identity ?? hostname();
  const store = new S3IndexStore(options.s3);
  let queue: IndexQueue | undefined;
  const metrics = new ControllerMetrics({ queueDepth: () => queue?.queueDepth ?? 0, inFlight: () => queue?.inFlight ?? 0 });
  const indexer = new Indexer({
    store,
    registry: options.registry,
    holder: `controller/${identity}`,
    tempDir: join(options.tempDir, 'clip-controller'),
    log,
    onRegistryBytes: (bytes) => metrics.registryRead(bytes),
  });
  queue = new IndexQueue({ indexer, registry: options.registry, concurrency: options.concurrency, metrics, log, location: (key) => store.url(key) });
  const indexQueue = queue;

  let cluster: ClusterSide;
  if (options.kubernetes === false) {
    cluster = standaloneCluster(log);
  } else {
    // Loaded only when used: --no-kubernetes does not pay for @kubernetes/client-node.
    const { KubeSide } = await import('./kube/index.js');
    cluster = new KubeSide({
      ...options.kubernetes,
      driverName: options.driverName,
      ...(options.platforms && { platforms: options.platforms }),
      identity,
      log,
      index: indexQueue,
      onLeaderChange: (leader) => {
        metrics.setLeader(leader);
        log('info', leader ? 'became the leader' : 'no longer the leader', { identity });
      },
    });
  }

  const readiness = async (): Promise<Readiness> => {
    const problems = [...cluster.readiness().reasons];
    try {
      await store.check();
    } catch (err) {
      problems.push(`S3 bucket s3://${options.s3.bucket} does not answer: ${describeError(err)}`);
    }
    return { ready: problems.length === 0, problems };
  };

  let server: CsiServer | undefined;
  let health: HealthServer | undefined;
  try {
    server = await startCsiServer({
      endpoint: options.endpoint,
      identity: identityService({ driverName: options.driverName, version: options.version, readiness, controllerService: true }),
      controller: controllerService({
        queue: indexQueue,
        cluster,
        ...(options.platforms && { platforms: options.platforms }),
        createWaitMs: options.createWaitSeconds * 1000,
        log,
      }),
      log,
      onCall: ({ method, codeName }) => metrics.call(method, codeName),
    });
    if (options.metricsAddr !== undefined) health = await startHealthServer(options.metricsAddr, metrics, readiness, log);
    await cluster.start();
  } catch (err) {
    log('error', 'controller failed to start', { error: describeError(err) });
    await server?.stop(1000);
    await health?.close();
    await cluster.stop().catch(() => undefined);
    indexQueue.close();
    store.close();
    throw err;
  }
  const csi = server;
  const memoryTimer = setInterval(() => releaseFreeMemory(), RELEASE_FREE_MEMORY_MS).unref();
  log('info', 'controller started', {
    driver: options.driverName,
    version: options.version,
    identity,
    socket: csi.socketPath,
    s3_indexes: `s3://${options.s3.bucket}/${options.s3.prefix}`,
    concurrency: options.concurrency,
    kubernetes: options.kubernetes !== false,
    ...(health && { metrics: health.address }),
  });
  let stopped: Promise<void> | undefined;
  return {
    socketPath: csi.socketPath,
    ...(health && { metricsAddress: health.address }),
    readiness,
    stop() {
      stopped ??= (async () => {
        clearInterval(memoryTimer);
        await csi.stop();
        await cluster.stop().catch((err: unknown) => log('warn', 'stopping the Kubernetes side failed', { error: describeError(err) }));
        indexQueue.close();
        // Nodes need not wait for indexes this process will not finish.
        await indexer.abandon();
        await health?.close();
        store.close();
      })();
      return stopped;
    },
  };
}

/** Without Kubernetes: the StorageClass must name the image; platforms come from --platforms, else this host's. */
function standaloneCluster(log: Logger): ClusterSide {
  return {
    async pvcAnnotation() {
      throw new Error('the controller runs without Kubernetes (--no-kubernetes): it cannot read PVC annotations');
    },
    nodePlatforms: () => [formatPlatform(hostPlatform())],
    async recordEvent(requester: Requester, type: 'Normal' | 'Warning', reason: string, message: string) {
      log('info', 'event', { object: `${requester.kind}/${requester.namespace ?? ''}/${requester.name}`, type, reason, message });
    },
    start: async () => undefined,
    stop: async () => undefined,
    readiness: () => ({ ready: true, reasons: [] }),
  };
}
