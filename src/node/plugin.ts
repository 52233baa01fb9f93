/**
 * The node plugin process: the CSI gRPC server (Identity + Node) on a unix socket, the image
 * mounts it serves through FUSE in this very process, and the metrics/health HTTP endpoint.
 */
import { join, resolve } from 'node:path';
import { ClipMetrics, describeError, inflateBackend, releaseFreeMemory, S3IndexStore, type S3IndexSettings } from '../clipcore/index.js';
import { identityService, type Readiness } from '../csi/identity.js';
import type { Logger } from '../csi/log.js';
import { startCsiServer, type CsiServer } from '../csi/server.js';
import { startHealthServer, type HealthServer } from '../csi/http-server.js';
import { serveHandover, takeOver, type Predecessor } from './handover/handover.js';
import { HolderClient } from './handover/holder-client.js';
import { ImageManager } from './images.js';
import { NodeMetrics } from './metrics.js';
import { NodeVolumes, type RegistrySettings } from './node-volumes.js';
import { checkReadiness } from './readiness.js';

import { StateDir } from './state.js';
import { resolveRules } from './target-path.js';

export interface NodePluginOptions {
  endpoint: string;
  nodeId: string;
  driverName: string;
  version: string;
  stateDir: string;
  cacheDir: string;
  cacheMaxBytes: number;
  /** Share image indexes through this bucket (fetch before indexing, upload after). */
  s3?: S3IndexSettings;
  /** `:9100`, `127.0.0.1:0`...; no HTTP endpoint when undefined. */
  metricsAddr?: string;
  imageGraceSeconds: number;
  indexWaitSeconds: number;
  /** A controller's "being indexed" marker not refreshed for this long is stale: the node indexes the image itself. */
  indexMarkerStaleSeconds: number;
  /** kubelet's root directory: every target path must be under it. */
  kubeletDir: string;
  /** How long a registry request of a restored private image waits for kubelet to republish its credentials. */
  credentialsWaitSeconds: number;
  registry: RegistrySettings;
  /** The FUSE connection holder's socket (`clip holder`); none when undefined. */
  holderSocket?: string;
  /**
   * This process handed its FUSE connections to a successor ('released': it serves nothing more
   * and should exit when told to), or a handover failed half way ('failed': it must exit now; the
   * connections are with the holder or the successor).
   */
  onHandedOver?: (outcome: 'released' | 'failed') => void;
  log: Logger;
}

export interface NodePlugin {
  readonly socketPath: string;
  readonly metricsAddress?: string;
  readonly volumes: NodeVolumes;
  readiness(): Promise<Readiness>;
  /**
   * Stops serving: no new calls, calls in flight finish. Image mounts that volumes use and the
   * volumes' target mounts stay in place (the next process re-binds them).
   */
  stop(): Promise<void>;
}

/**
 * How often the plugin hands back to the system the memory malloc kept after it was freed.
 * Indexing, reading and releasing images leave it in malloc's arenas, resident, until then (a
 * plugin that indexed ten images and released them stayed at about 460 MiB). A call costs well
 * under a millisecond.
 */
const RELEASE_FREE_MEMORY_MS = 15_000;

export async function startNodePlugin(options: NodePluginOptions): Promise<NodePlugin> {
  const { log } = options;
  const state = new StateDir(options.stateDir);
  const cacheDir = resolve(options.cacheDir);
  const handoverSocket = join(state.root, 'handover.sock');
  // A live predecessor (a restart where the new process starts first, a rolling update with
  // maxSurge) hands its connections over, and stops serving CSI calls, before this one binds.
  const predecessor = await takeOver(handoverSocket).catch((err: unknown) => {
    log('warn', 'the previous plugin process did not hand over its FUSE connections; they are taken back from the holder or mounted again', {
      error: describeError(err),
    });
    return undefined;
  });
  let images: ImageManager | undefined;
  let volumes: NodeVolumes | undefined;
  const holder = options.holderSocket !== undefined ? new HolderClient(options.holderSocket, log, () => images?.connections() ?? []) : undefined;
  const metrics = new NodeMetrics({
    volumes: () => volumes?.volumeCount ?? 0,
    imageMounts: () => images?.mountCount ?? 0,
    holderUp: () => (holder ? (holder.up === false ? 0 : 1) : undefined),
  });
  images = new ImageManager({
    state,
    graceMs: options.imageGraceSeconds * 1000,
    log,
    metrics,
    // Every image mount shares the node's disk cache and reports into the same registry.
    mountExtras: { cacheDir, cacheMaxBytes: options.cacheMaxBytes, metrics: new ClipMetrics(metrics.registry), logger: log },
    ...(options.s3 && { s3: new S3IndexStore(options.s3) }),
    markerStaleMs: options.indexMarkerStaleSeconds * 1000,
    credentialsWaitMs: options.credentialsWaitSeconds * 1000,
    ...(holder && { holder }),
  });
  volumes = new NodeVolumes({
    nodeId: options.nodeId,
    state,
    images,
    registry: options.registry,
    indexWaitMs: options.indexWaitSeconds * 1000,
    targets: await resolveRules(options.kubeletDir, [
      { dir: state.root, name: 'state directory (--state-dir)' },
      { dir: cacheDir, name: 'cache directory (--cache-dir)' },
    ]),
    log,
  });
  const nodeVolumes = volumes;
  const readiness = (): Promise<Readiness> =>
    checkReadiness({ stateDir: state.root, cacheDir, started: () => nodeVolumes.startupProblem() });

  let server: CsiServer | undefined;
  let health: HealthServer | undefined;
  try {
    // The socket first: binding it proves no other plugin process serves this node (it refuses a
    // socket something answers on), and only then may this one take over the state directory.
    server = await startCsiServer({
      endpoint: options.endpoint,
      identity: identityService({ driverName: options.driverName, version: options.version, readiness }),
      node: nodeVolumes.service(),
      log,
      onCall: ({ method, codeName, seconds }) => metrics.call(method, codeName, seconds),
    });
    const taken = predecessor?.connections ?? (await holder?.list()) ?? [];
    const starting = nodeVolumes.start(taken);
    starting.catch(() => undefined);
    if (options.metricsAddr !== undefined) health = await startHealthServer(options.metricsAddr, metrics, readiness, log);
    await starting;
    if (taken.length > 0) {
      metrics.takenOver(predecessor ? 'handover' : 'holder', images.adoptedCount);
      await resendAfterTakeover(images, predecessor, metrics, log);
    }
  } catch (err) {
    predecessor?.close();
    log('error', 'node plugin failed to start', { error: describeError(err) });
    await server?.stop(1000);
    await health?.close();
    await images.close();
    throw err;
  }
  const csi = server;
  const imageManager = images;
  let stopped: Promise<void> | undefined;
  const memoryTimer = setInterval(() => releaseFreeMemory(), RELEASE_FREE_MEMORY_MS).unref();
  // A successor may take the connections over from here; without the socket it cannot (it mounts again).
  const successorSource = {
    async prepare() {
      clearInterval(memoryTimer);
      await csi.stop();
      await health?.close();
      return imageManager.prepareHandover();
    },
    release() {
      imageManager.releaseToSuccessor();
      options.onHandedOver?.('released');
    },
    abort() {
      options.onHandedOver?.('failed');
    },
  };
  // Without this socket a successor cannot take the connections over: it takes them from the holder, or mounts again.
  const stopHandover = await serveHandover(handoverSocket, successorSource, log).catch((err: unknown) => {
    log('warn', 'cannot listen for a successor: a restart of this plugin takes the connections from the holder or mounts the images again', {
      socket: handoverSocket,
      error: describeError(err),
    });
    return () => undefined;
  });
  log('info', 'node plugin started', {
    driver: options.driverName,
    version: options.version,
    node_id: options.nodeId,
    socket: csi.socketPath,
    state_dir: state.root,
    cache_dir: cacheDir,
    // pako (the fallback) means the zlib addon was not built: indexing and cold reads are slower.
    inflate: inflateBackend(),
    ...(options.s3 && { s3_indexes: `s3://${options.s3.bucket}/${options.s3.prefix}` }),
    ...(health && { metrics: health.address }),
    ...(options.holderSocket !== undefined && { holder_socket: options.holderSocket }),
    fuse_connections_taken_over: imageManager.adoptedCount,
  });
  return {
    socketPath: csi.socketPath,
    ...(health && { metricsAddress: health.address }),
    volumes: nodeVolumes,
    readiness,
    stop() {
      stopped ??= (async () => {
        clearInterval(memoryTimer);
        stopHandover();
        predecessor?.close();
        holder?.close();
        await csi.stop();
        await imageManager.close();
        await health?.close();
      })();
      return stopped;
    },
  };
}

/**
 * Requests the previous process took from the kernel and never answered are queued again
 * (FUSE_NOTIFY_RESEND): at once when it is dead; after it stopped reading when it handed over,
 * and once more when it exits (reads it was still answering then are not lost either).
 */
async function resendAfterTakeover(images: ImageManager, predecessor: Predecessor | undefined, metrics: NodeMetrics, log: Logger): Promise<void> {
  const resend = (when: string): void => {
    const done = images.resendUnanswered();
    if (done) log('info', 'asked the kernel to resend the requests the previous process left unanswered', { when });
    else {
      log('warn', 'this kernel cannot resend requests (FUSE_NOTIFY_RESEND needs Linux 6.9): a request the previous process took and never answered waits until its caller gives up', { when });
    }
    metrics.resent(done);
  };
  if (!predecessor) return resend('taken back from the holder');
  await predecessor.confirm();
  resend('the previous process stopped reading');
  void predecessor.exited.then(() => resend('the previous process exited'));
}
