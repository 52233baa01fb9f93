/**
 * One FUSE mount per image (manifest digest + platform) on this node, shared by every volume of
 * that image. Getting an image ready means getting its index (the node-local cache, else S3, else
 * waiting for the controller while its "being indexed" marker is fresh, else indexing it here) and
 * mounting it. Both happen once per image however many
 * volumes ask at the same time, and run to the end in the background even when the publish that
 * started them gives up waiting: the next publish picks up the same job, never a new one.
 */
import { fstatSync, statSync } from 'node:fs';
import { rmdir, stat, unlink } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import {
  ArchiveFormatError,
  ClipError,
  closeAll,
  createFromOCIImage,
  describeError,
  isMarkerFresh,
  mountArchive,
  type IndexingMarker,
  type IndexProgress,
  type MountArchiveOptions,
  type MountHandle,
  type RegistryClientOptions,
  type RegistryCredentials,
  type S3IndexStore,
} from '../clipcore/index.js';
import { truncate } from '../csi/limits.js';
import type { Logger } from '../csi/log.js';
import { ImageCredentials } from './image-credentials.js';
import type { ConnectionInfo, ReceivedConnection } from './handover/protocol.js';
import type { HolderClient } from './handover/holder-client.js';
import type { IndexSource, NodeMetrics } from './metrics.js';
import { detachFuse } from './mount-utils.js';
import type { StateDir } from './state.js';

export interface ImageRequest {
  /** `imageKeyOf(digest, platform)`. */
  key: string;
  /** The image as the volume named it, for logs. */
  image: string;
  registry: string;
  repository: string;
  /** Image manifest digest. */
  digest: string;
  platform: string;
  /** CA certificates, insecure registries, the node's Docker config: used to index and to read bytes. */
  registryOptions: Omit<RegistryClientOptions, 'auth' | 'credentialsProvider'>;
}

/** A volume using an image mount: its publish record id and volume id (for logs). */
export interface ImageUser {
  id: string;
  volumeId: string;
}

export interface ImageMount {
  readonly key: string;
  readonly mountPoint: string;
  /** Bytes of regular files in the image. */
  readonly bytes: number;
  /** Inodes in the image. */
  readonly inodes: number;
  /** Publish record id → volume id of the volumes using this mount. */
  readonly users: Map<string, string>;
  readonly handle: MountHandle;
  /** Served from a connection an earlier process opened (taken back or handed over), not mounted here. */
  readonly adopted: boolean;
  releaseTimer?: NodeJS.Timeout;
}

/** Options that mountArchive gets for every image mount: the disk cache, clipcore's metrics, the logger. */
export type MountExtras = Pick<MountArchiveOptions, 'cacheDir' | 'cacheMaxBytes' | 'metrics' | 'logger'>;

export interface ImageManagerOptions {
  state: StateDir;
  /** How long an image mount stays up after its last volume goes. */
  graceMs: number;
  log: Logger;
  metrics: NodeMetrics;
  mountExtras?: MountExtras;
  /** Indexes shared through S3 (--s3-bucket). */
  s3?: S3IndexStore;
  /** A controller's marker not refreshed for this long is stale (--index-marker-stale-seconds). */
  markerStaleMs: number;
  /** How long a registry request waits for credentials a restarted plugin does not have yet. */
  credentialsWaitMs: number;
  /** Keeps a copy of each mount's FUSE connection across crashes of this process (`clip holder`). */
  holder?: HolderClient;
}

/** Thrown by `acquire` when the image is not ready within the wait: the work goes on. */
export class ImageNotReady extends Error {
  constructor(
    readonly key: string,
    readonly reason: 'timeout' | 'cancelled',
    readonly progress: string,
  ) {
    super(`image ${key} is not ready yet (${reason})`);
    this.name = 'ImageNotReady';
  }
}

/** How long an image mounted for a publish that stopped waiting stays up for the retry. */
const UNCLAIMED_HOLD_MS = 180_000;
/** How often a node waiting for the controller's index looks for it (HEAD) and re-reads the marker. */
const CONTROLLER_POLL_MS = 1_000;
/** At most one "credentials missing" line per image this often: every failed read would write one. */
const MISSING_CREDENTIALS_LOG_MS = 10_000;
/** How long a stopping process waits for the reads it took to be answered. */
const DRAIN_MS = 10_000;

export class ImageManager {
  private readonly mounted = new Map<string, ImageMount>();
  private readonly mounting = new Map<string, Promise<ImageMount>>();
  private readonly indexing = new Map<string, Promise<{ path: string; source: IndexSource }>>();
  private readonly progress = new Map<string, IndexProgress>();
  private readonly releasing = new Map<string, Promise<void>>();
  private readonly credentials = new Map<string, ImageCredentials>();
  /** Images whose index the controller is making: its latest marker, for progress messages. */
  private readonly awaited = new Map<string, IndexingMarker>();
  private closed = false;
  /** The mounts' connections went to a successor process: nothing here may touch them any more. */
  private handedOver = false;

  constructor(private readonly options: ImageManagerOptions) {}

  get mountCount(): number {
    return this.mounted.size;
  }

  /** Mounts served from a connection an earlier process opened. */
  get adoptedCount(): number {
    return [...this.mounted.values()].filter((mount) => mount.adopted).length;
  }

  get(key: string): ImageMount | undefined {
    return this.mounted.get(key);
  }

  /**
   * Gets the image mounted and registers `user` on it. Waits at most `waitMs` (and not past
   * `signal`); then throws ImageNotReady while the indexing and mounting go on.
   */
  async acquire(request: ImageRequest, user: ImageUser, waitMs: number, signal?: AbortSignal): Promise<ImageMount> {
    for (;;) {
      await waitFor(this.ensure(request), waitMs, signal, (reason) => new ImageNotReady(request.key, reason, this.describeProgress(request.key)));
      const mount = this.attach(request.key, user);
      if (mount) return mount;
      // Released between being mounted and attached (a zero grace period): mount it again.
    }
  }

  /** Registers a user on an image that is mounted; undefined when it is not. */
  attach(key: string, user: ImageUser): ImageMount | undefined {
    const mount = this.mounted.get(key);
    if (!mount) return undefined;
    if (mount.releaseTimer) clearTimeout(mount.releaseTimer);
    mount.releaseTimer = undefined;
    mount.users.set(user.id, user.volumeId);
    return mount;
  }

  /** A publish brought credentials (a secret): the image's registry requests use them from now on. */
  setCredentials(key: string, credentials: RegistryCredentials): void {
    this.credentialsOf(key).set(credentials);
  }

  /** A restored volume had credentials from a secret: the image's registry requests wait for them. */
  expectCredentials(key: string): void {
    this.credentialsOf(key).expect();
  }

  private credentialsOf(key: string): ImageCredentials {
    let found = this.credentials.get(key);
    if (!found) {
      let loggedAt = -Infinity;
      const slot = new ImageCredentials(this.options.credentialsWaitMs, () => {
        if (Date.now() - loggedAt < MISSING_CREDENTIALS_LOG_MS) return;
        loggedAt = Date.now();
        this.options.log('error', 'registry credentials missing: reads of data not cached fail with EIO until kubelet publishes the volume again', {
          image_key: key,
          volume_ids: [...(this.mounted.get(key)?.users.values() ?? [])],
          waited_ms: this.options.credentialsWaitMs,
        });
      });
      this.credentials.set(key, slot);
      found = slot;
    }
    return found;
  }

  /** Drops a user; the last one going starts the grace period after which the image is unmounted. */
  detach(key: string, user: string): void {
    const mount = this.mounted.get(key);
    if (!mount) return;
    mount.users.delete(user);
    if (mount.users.size === 0) this.scheduleRelease(mount);
  }

  /** Starts (or joins) getting the image indexed and mounted. */
  ensure(request: ImageRequest): Promise<ImageMount> {
    const live = this.mounted.get(request.key);
    if (live) return Promise.resolve(live);
    let job = this.mounting.get(request.key);
    if (!job) {
      job = this.mountImage(request).finally(() => this.mounting.delete(request.key));
      job.catch(() => undefined);
      this.mounting.set(request.key, job);
    }
    return job;
  }

  /**
   * On shutdown: image mounts no volume uses are unmounted; the others are left in place for
   * the volumes that use them (the next plugin process mounts them again and re-binds them).
   */
  async close(): Promise<void> {
    this.closed = true;
    if (!this.handedOver) {
      const idle: ImageMount[] = [];
      for (const mount of this.mounted.values()) {
        if (mount.releaseTimer) clearTimeout(mount.releaseTimer);
        if (mount.users.size === 0) idle.push(mount);
      }
      await Promise.allSettled([...idle.map((mount) => this.release(mount)), ...this.releasing.values()]);
      // The holder keeps the connections for the next process: stop reading them, so that
      // nothing is taken from the kernel that this process would not answer.
      if (this.options.holder?.up) for (const mount of this.mounted.values()) mount.handle.detach();
    }
    // Reads already taken are answered before the process exits (a kernel without
    // FUSE_NOTIFY_RESEND would never answer them otherwise).
    const deadline = Date.now() + DRAIN_MS;
    while (Date.now() < deadline && [...this.mounted.values()].some((mount) => (mount.handle.counters()?.pendingReads ?? 0) > 0)) await delay(10);
  }

  /**
   * Serves a live connection an earlier process of this plugin served (docs/node.md, "Restarts"):
   * the kernel mount, and every bind and overlay made of it, stay as they are. Needs the image's
   * index in the node-local cache. The received descriptor is closed either way (the mount keeps
   * its own duplicate).
   */
  async adopt(request: ImageRequest, connection: ReceivedConnection): Promise<ImageMount> {
    try {
      if (this.mounted.has(request.key) || this.mounting.has(request.key)) throw new ClipError('MOUNT_FAILED', `image ${request.key} is served already`);
      const device = fstatSync(connection.fd);
      if (!device.isCharacterDevice() || device.rdev !== statSync('/dev/fuse').rdev) throw new ClipError('INVALID_ARGUMENT', 'the descriptor received is not a /dev/fuse connection');
      const indexPath = this.options.state.indexPath(request.key);
      if (!(await isFile(indexPath))) throw new ClipError('NOT_FOUND', `the image's index is not in the node-local cache (${indexPath})`);
      return this.register(request.key, await this.openMount(indexPath, connection.info.mountPoint, request, connection), true);
    } finally {
      closeAll([connection.fd]);
    }
  }

  /** Tells the holder to forget an image's connection (one that was not taken back). */
  async dropHeld(key: string): Promise<void> {
    await this.options.holder?.drop(key);
  }

  /** Every served connection, as the holder and a successor get them. */
  connections(): Array<{ info: ConnectionInfo; fd: number }> {
    const list: Array<{ info: ConnectionInfo; fd: number }> = [];
    for (const mount of this.mounted.values()) {
      const connection = mount.handle.connection();
      if (connection) list.push({ info: { key: mount.key, mountPoint: mount.mountPoint, init: Buffer.from(connection.init).toString('base64') }, fd: connection.fd });
    }
    return list;
  }

  /**
   * A successor asks for the connections: from now on nothing is released or unmounted here
   * (idle mounts included: they are the successor's). Returns what to hand over.
   */
  prepareHandover(): Array<{ info: ConnectionInfo; fd: number }> {
    this.handedOver = true;
    this.closed = true;
    for (const mount of this.mounted.values()) {
      if (mount.releaseTimer) clearTimeout(mount.releaseTimer);
      mount.releaseTimer = undefined;
    }
    return this.connections();
  }

  /** The successor serves the connections: stop reading them (reads already taken are still answered). */
  releaseToSuccessor(): void {
    for (const mount of this.mounted.values()) mount.handle.detach();
  }

  /**
   * After taking connections over: asks the kernel to queue again what the previous process took
   * and never answered. False when the kernel cannot (before Linux 6.9).
   */
  resendUnanswered(): boolean {
    let all = true;
    for (const mount of this.mounted.values()) if (mount.adopted && !mount.handle.resendUnanswered()) all = false;
    return all;
  }

  /** Puts the mount's connection in the holder. */
  private async hold(mount: ImageMount): Promise<void> {
    const connection = mount.handle.connection();
    if (!connection || !this.options.holder) return;
    await this.options.holder.put({ key: mount.key, mountPoint: mount.mountPoint, init: Buffer.from(connection.init).toString('base64') }, connection.fd);
  }

  private describeProgress(key: string): string {
    if (this.mounted.has(key)) return 'mounted';
    const progress = this.progress.get(key);
    if (progress) {
      const percent = progress.bytes > 0 ? Math.floor((100 * progress.bytesDone) / progress.bytes) : 0;
      return `indexing: ${percent}% of ${progress.bytes} compressed bytes, ${progress.layersDone}/${progress.layers} layers`;
    }
    const marker = this.awaited.get(key);
    // The marker is another process's text: bounded before it reaches a message.
    if (marker) return `being indexed by ${truncate(marker.holder)}: ${truncate(marker.progress ?? `started ${marker.startedAt}`, 256)}`;
    return this.indexing.has(key) ? 'fetching its index' : 'mounting';
  }

  private async mountImage(request: ImageRequest): Promise<ImageMount> {
    await this.releasing.get(request.key);
    const mountPoint = this.options.state.imageMountPoint(request.key);
    let obtained = await this.index(request);
    let handle: MountHandle;
    try {
      handle = await this.openMount(obtained.path, mountPoint, request);
    } catch (err) {
      if (!(err instanceof ArchiveFormatError) || obtained.source === 'indexed') throw err;
      // A damaged index (a disk error, a bad copy in S3): index the image here instead.
      this.options.log('warn', 'cached index is damaged; indexing the image again', { image: request.image, index: obtained.path, error: err.message });
      await unlink(obtained.path).catch(() => undefined);
      obtained = await this.index(request, true);
      handle = await this.openMount(obtained.path, mountPoint, request);
    }
    this.options.metrics.indexObtained(obtained.source);
    const mount = this.register(request.key, handle, false);
    this.options.log('info', 'image mounted', { image: request.image, digest: request.digest, platform: request.platform, mount_point: mount.mountPoint, index_source: obtained.source });
    return mount;
  }

  /** A mount served now: recorded, its connection put in the holder, released if no volume claims it. */
  private register(key: string, handle: MountHandle, adopted: boolean): ImageMount {
    const toc = handle.reader.index.toc;
    const mount: ImageMount = {
      key,
      mountPoint: handle.mountPoint,
      bytes: toc.inodes.reduce((sum, inode) => sum + (inode.type === 'file' ? inode.size : 0), 0),
      inodes: toc.inodes.length,
      users: new Map(),
      handle,
      adopted,
    };
    this.mounted.set(key, mount);
    void this.hold(mount);
    // The publish that asked may have given up waiting (ABORTED), or a restored volume is about to
    // claim it: keep the mount for the retry, which kubelet makes with a backoff of up to about two
    // minutes; then let it go.
    this.scheduleRelease(mount, Math.max(this.options.graceMs, UNCLAIMED_HOLD_MS));
    return mount;
  }

  private async openMount(indexPath: string, mountPoint: string, request: ImageRequest, connection?: ReceivedConnection): Promise<MountHandle> {
    const handle = await mountArchive({
      ...this.options.mountExtras,
      archive: indexPath,
      mountPoint,
      ...(connection && { fuseFd: connection.fd, fuseInit: Buffer.from(connection.info.init, 'base64') }),
      // Asked at each registry request: a republish replaces the credentials of a live mount.
      registry: { ...request.registryOptions, credentialsProvider: this.credentialsOf(request.key).provider },
    });
    handle.onError(({ error, operation, path }) =>
      this.options.log('error', 'image read failed', { image: request.image, digest: request.digest, operation, path, error: error.message }),
    );
    try {
      await handle.start();
    } catch (err) {
      await handle.unmount().catch(() => undefined);
      throw err;
    }
    return handle;
  }

  private index(request: ImageRequest, localOnly = false): Promise<{ path: string; source: IndexSource }> {
    let job = this.indexing.get(request.key);
    if (!job) {
      job = this.obtainIndex(request, localOnly).finally(() => {
        this.indexing.delete(request.key);
        this.progress.delete(request.key);
      });
      job.catch(() => undefined);
      this.indexing.set(request.key, job);
    }
    return job;
  }

  /** The node-local cache, else S3 (with --s3-bucket), else the controller's index once it is made, else index here. */
  private async obtainIndex(request: ImageRequest, localOnly: boolean): Promise<{ path: string; source: IndexSource }> {
    const path = this.options.state.indexPath(request.key);
    const s3 = localOnly ? undefined : this.options.s3;
    if (!localOnly && (await isFile(path))) return { path, source: 'local-cache' };
    if (s3 && (await s3.fetch(request.key, path))) {
      this.options.log('info', 'index fetched from S3', { image: request.image, digest: request.digest, url: s3.url(request.key) });
      return { path, source: 's3' };
    }
    if (s3 && (await this.awaitController(s3, request, path))) return { path, source: 'controller' };
    const started = Date.now();
    this.options.log('info', 'indexing image', { image: request.image, digest: request.digest, platform: request.platform });
    try {
      const auth = await this.credentialsOf(request.key).wait();
      const result = await createFromOCIImage({
        imageRef: `${request.registry}/${request.repository}@${request.digest}`,
        outputPath: path,
        platform: request.platform,
        ...(auth && { auth }),
        registry: request.registryOptions,
        onProgress: (progress) => this.progress.set(request.key, progress),
      });
      const seconds = (Date.now() - started) / 1000;
      this.options.metrics.indexed(seconds);
      this.options.log('info', 'image indexed', {
        image: request.image,
        digest: request.digest,
        files: result.files,
        layers: result.layers,
        index_bytes: result.archiveBytes,
        seconds,
      });
      if (this.options.s3) void this.share(this.options.s3, request, path);
      return { path, source: 'indexed' };
    } catch (err) {
      this.options.log('warn', 'indexing failed', { image: request.image, digest: request.digest, error: describeError(err) });
      throw err;
    }
  }

  /**
   * While the controller's marker beside the index is fresh, waits for the index (HEAD every
   * second, the marker re-read each time) and fetches it: true. False when there is no fresh
   * marker, or it goes stale or disappears without an index: the node then indexes the image itself.
   */
  private async awaitController(s3: S3IndexStore, request: ImageRequest, path: string): Promise<boolean> {
    const fields = { image: request.image, digest: request.digest, url: s3.url(request.key) };
    let marker = await s3.readMarker(request.key);
    if (!marker || !isMarkerFresh(marker, new Date(), this.options.markerStaleMs)) {
      if (marker) this.options.log('info', 'the indexing marker is stale; indexing the image here', { ...fields, holder: truncate(marker.holder), refreshed_at: marker.refreshedAt });
      return false;
    }
    this.options.log('info', 'waiting for the controller to index the image', { ...fields, holder: truncate(marker.holder) });
    try {
      for (;;) {
        this.awaited.set(request.key, marker);
        await delay(CONTROLLER_POLL_MS);
        if ((await s3.exists(request.key)) && (await s3.fetch(request.key, path))) break;
        marker = await s3.readMarker(request.key);
        if (!marker) {
          // The controller uploads the index, then deletes its marker: look once more.
          if (await s3.fetch(request.key, path)) break;
          this.options.log('warn', 'the indexing marker disappeared without an index; indexing the image here', fields);
          return false;
        }
        if (!isMarkerFresh(marker, new Date(), this.options.markerStaleMs)) {
          this.options.log('warn', 'the indexing marker went stale; indexing the image here', { ...fields, holder: truncate(marker.holder), refreshed_at: marker.refreshedAt });
          return false;
        }
      }
    } finally {
      this.awaited.delete(request.key);
    }
    this.options.log('info', 'index fetched from S3 (made by the controller)', fields);
    return true;
  }

  /** Uploads an index made here for the other nodes; a failure only costs them indexing it too. */
  private async share(s3: S3IndexStore, request: ImageRequest, path: string): Promise<void> {
    try {
      await s3.upload(request.key, path);
      this.options.log('info', 'index uploaded to S3', { image: request.image, digest: request.digest, url: s3.url(request.key) });
    } catch (err) {
      this.options.log('warn', 'cannot upload the index to S3; other nodes will index the image themselves', {
        image: request.image,
        url: s3.url(request.key),
        error: describeError(err),
      });
    }
  }

  private scheduleRelease(mount: ImageMount, delayMs = this.options.graceMs): void {
    if (mount.users.size > 0 || this.closed) return;
    if (mount.releaseTimer) clearTimeout(mount.releaseTimer);
    mount.releaseTimer = setTimeout(() => void this.release(mount), delayMs);
    mount.releaseTimer.unref();
  }

  private async release(mount: ImageMount): Promise<void> {
    if (this.handedOver || mount.users.size > 0 || this.mounted.get(mount.key) !== mount) return;
    this.mounted.delete(mount.key);
    // The credentials leave memory with the image's last mount (a later publish brings them again).
    if (!this.mounting.has(mount.key)) this.credentials.delete(mount.key);
    const job = (async () => {
      await mount.handle.unmount();
      await detachFuse(mount.mountPoint);
      await rmdir(mount.mountPoint).catch(() => undefined);
      await this.options.holder?.drop(mount.key);
    })();
    this.releasing.set(mount.key, job.catch(() => undefined));
    try {
      await job;
      this.options.log('info', 'image unmounted', { mount_point: mount.mountPoint });
    } catch (err) {
      this.options.log('error', 'image unmount failed', { mount_point: mount.mountPoint, error: describeError(err) });
    } finally {
      this.releasing.delete(mount.key);
    }
  }
}

async function isFile(path: string): Promise<boolean> {
  const stats = await stat(path).catch(() => undefined);
  return stats?.isFile() ?? false;
}

/** Resolves with `promise`, or rejects with `timeout()` after `ms` or when `signal` aborts. */
function waitFor<T>(promise: Promise<T>, ms: number, signal: AbortSignal | undefined, error: (reason: 'timeout' | 'cancelled') => Error): Promise<T> {
  if (signal?.aborted) return Promise.reject(error('cancelled'));
  return new Promise<T>((resolvePromise, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(error('cancelled'));
    };
    // setTimeout cannot wait longer than 2^31-1 ms: beyond that (Infinity included), wait without a timer.
    const timer =
      ms < 2 ** 31 - 1
        ? setTimeout(() => {
            signal?.removeEventListener('abort', onAbort);
            reject(error('timeout'));
          }, Math.max(0, ms))
        : undefined;
    signal?.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolvePromise(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
