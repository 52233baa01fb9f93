/**
 * The CSI Node service: publishing image volumes at kubelet's target paths, unpublishing them,
 * their stats, and reconciling with what an earlier plugin process left behind.
 *
 * A read-only volume is a read-only bind mount of the image's shared FUSE mount; a writable one is
 * a kernel overlayfs with the image mount as its lower layer and a private upper layer under the
 * state directory, deleted at unpublish. Calls for one volume (and one target path) are serialized.
 */
import { createHash } from 'node:crypto';
import { chmod, chown, mkdir, readdir, rm, rmdir, stat, statfs } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import grpc from '@grpc/grpc-js';
import {
  CLIP_FUSE_NAME,
  closeAll,
  credentialsFromSecrets,
  describeError,
  imageKeyOf,
  RegistryClient,
  type Platform,
  type RegistryCredentials,
} from '../clipcore/index.js';
import { alreadyExists, CsiError, invalidArgument, notFound } from '../csi/errors.js';
import { quote } from '../csi/limits.js';
import type { Logger } from '../csi/log.js';
import type { CallContext, NodeService } from '../csi/server.js';
import type { NodeGetVolumeStatsResponse, NodePublishVolumeRequest, VolumeUsage } from '../csi/types.js';
import type { ReceivedConnection } from './handover/protocol.js';
import { ImageNotReady, type ImageManager, type ImageMount, type ImageRequest, type ImageUser } from './images.js';
import { KeyedLock } from './keyed-lock.js';
import { bindMount, detachFuse, isMountPoint, mountsAt, overlayMount, readMountTable, topMountAt, unmountTop, type MountEntry } from './mount-utils.js';
import { RECORD_VERSION, StateDir, type PublishRecord } from './state.js';
import { checkTarget, resolvePath, type TargetRules } from './target-path.js';
import { parsePublishRequest, requirePath, requirePathField, requireVolumeId, type PublishSpec } from './volume-spec.js';

export interface RegistrySettings {
  insecureRegistries: string[];
  caCertificates: Buffer[];
  /** The node's Docker config (credentials for volumes without a secret); default $DOCKER_CONFIG or ~/.docker. */
  dockerConfigPath?: string;
}

export interface NodeVolumesOptions {
  nodeId: string;
  state: StateDir;
  images: ImageManager;
  registry: RegistrySettings;
  /** The longest a publish waits for an image to be indexed and mounted before answering ABORTED. */
  indexWaitMs: number;
  /** Where target paths may be (--kubelet-dir) and may not be (the state and cache directories). */
  targets: TargetRules;
  log: Logger;
}

/** Time kept between our answer and the caller's deadline, so the answer arrives before it gives up. */
const DEADLINE_MARGIN_MS = 2_000;

/**
 * The most (dead) mounts of earlier processes a target keeps under the live one: one per plugin
 * restart while the volume is published. A mount below the top cannot be unmounted alone (the
 * mounts on it go with it, in containers too): a deeper stack is unmounted whole and mounted afresh.
 */
export const MAX_DEAD_MOUNTS = 3;

export class NodeVolumes {
  private readonly records = new Map<string, PublishRecord>();
  /** Records whose target mount was made (or re-made) by this process. */
  private readonly live = new Set<string>();
  private readonly locks = new KeyedLock();
  /** IfNotPresent: `reference|platform|credentials` → manifest digest, as first resolved. */
  private readonly resolved = new Map<string, { digest: string; registry: string; repository: string }>();
  private startup: Promise<void> | undefined;
  private restoring: Promise<void> = Promise.resolve();
  private started = false;

  constructor(private readonly options: NodeVolumesOptions) {}

  get volumeCount(): number {
    return this.records.size;
  }

  /** Undefined once the state is reconciled; else why not yet. */
  startupProblem(): string | undefined {
    return this.started ? undefined : 'reconciling the state of an earlier plugin process';
  }

  /**
   * Reconciles with what an earlier process left: stale mounts are detached at once (before any
   * call is served); volumes still recorded are mounted again in the background, each under its
   * volume's lock, so calls for them wait for that and calls for other volumes do not.
   */
  start(taken: readonly ReceivedConnection[] = []): Promise<void> {
    this.startup ??= this.reconcile(taken);
    return this.startup;
  }

  /** Resolves once every recorded volume has been restored or given up on (tests, diagnostics). */
  async restored(): Promise<void> {
    await this.start();
    await this.restoring;
  }

  service(): NodeService {
    const unimplemented = (what: string) => async (): Promise<never> => {
      throw new CsiError(grpc.status.UNIMPLEMENTED, `${what} is not supported: this driver has no STAGE_UNSTAGE_VOLUME or EXPAND_VOLUME capability`);
    };
    return {
      NodeStageVolume: unimplemented('NodeStageVolume'),
      NodeUnstageVolume: unimplemented('NodeUnstageVolume'),
      NodeExpandVolume: unimplemented('NodeExpandVolume'),
      NodePublishVolume: (request, ctx) => this.publish(request, ctx),
      NodeUnpublishVolume: async (request, ctx) => {
        await this.unpublish(requireVolumeId(request.volume_id), requirePath(request.target_path, 'target_path'), ctx);
        return {};
      },
      NodeGetVolumeStats: (request) => this.stats(requireVolumeId(request.volume_id), requirePathField(request.volume_path, 'volume_path')),
      NodeGetCapabilities: async () => ({
        capabilities: [{ rpc: { type: 'GET_VOLUME_STATS' } }, { rpc: { type: 'VOLUME_CONDITION' } }],
      }),
      NodeGetInfo: async () => ({ node_id: this.options.nodeId, max_volumes_per_node: 0, accessible_topology: null }),
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Publish

  private async publish(request: NodePublishVolumeRequest, ctx: CallContext): Promise<Record<string, never>> {
    const parsed = parsePublishRequest(request);
    // Mounts go where the path really leads: symlinks and `..` resolved, checked against the rules.
    const spec: PublishSpec = { ...parsed, targetPath: await checkTarget('target_path', parsed.targetPath, this.options.targets) };
    ctx.annotate({ image: spec.image, read_only: spec.readOnly, ephemeral: spec.ephemeral });
    if (spec.pod.namespace || spec.pod.name) ctx.annotate({ pod: `${spec.pod.namespace ?? ''}/${spec.pod.name ?? ''}` });
    await this.start();
    return this.locks.run(lockKeys(spec.volumeId, spec.targetPath), async () => {
      const id = StateDir.recordId(spec.volumeId, spec.targetPath);
      const other = this.recordAtTarget(spec.targetPath);
      if (other && other.volumeId !== spec.volumeId) {
        throw alreadyExists(`target_path ${quote(spec.targetPath)} already holds volume ${quote(other.volumeId)} (image ${other.image})`);
      }
      const credentials = credentialsFromSecrets(spec.secrets, spec.reference.registry);
      const existing = this.records.get(id);
      if (existing) {
        const difference = incompatibility(existing, spec);
        if (difference) throw alreadyExists(`volume ${quote(spec.volumeId)} is already published at ${quote(spec.targetPath)} ${difference}`);
        ctx.annotate({ digest: existing.digest });
        // kubelet republishes periodically (requiresRepublish): fresh credentials, and after a
        // restart the only way they come back.
        if (credentials) this.options.images.setCredentials(existing.imageKey, credentials);
        if (await this.healthy(existing)) return {};
        // Recorded but not (or no longer) served: a restore that failed or is still waiting.
        await this.mountRecord(existing, this.waitBudget(ctx), ctx.signal, false);
        return {};
      }
      const resolved = await this.resolve(spec, credentials);
      ctx.annotate({ digest: resolved.digest });
      const record: PublishRecord = {
        version: RECORD_VERSION,
        id,
        volumeId: spec.volumeId,
        targetPath: spec.targetPath,
        image: spec.image,
        platform: spec.platform,
        pullPolicy: spec.pullPolicy,
        readOnly: spec.readOnly,
        ephemeral: spec.ephemeral,
        pod: spec.pod,
        registry: resolved.registry,
        repository: resolved.repository,
        digest: resolved.digest,
        imageKey: imageKeyOf(resolved.digest, spec.platform),
        credentialsFromSecret: credentials !== undefined,
        publishedAt: new Date().toISOString(),
      };
      if (credentials) this.options.images.setCredentials(record.imageKey, credentials);
      await this.mountRecord(record, this.waitBudget(ctx), ctx.signal, true);
      return {};
    });
  }

  /** The tag's digest: asked of the registry (with the volume's credentials) unless IfNotPresent already knows it. */
  private async resolve(spec: PublishSpec, credentials: RegistryCredentials | undefined): Promise<{ digest: string; registry: string; repository: string }> {
    // Keyed by the credentials too: a volume without them must not ride on another's resolution.
    const who = credentials ? createHash('sha256').update(JSON.stringify(credentials)).digest('hex') : 'node';
    const cacheKey = `${spec.reference.toString()}|${spec.platform}|${who}`;
    const known = this.resolved.get(cacheKey);
    if (known && (spec.pullPolicy === 'IfNotPresent' || spec.reference.digest)) return known;
    const client = new RegistryClient({ ...this.registryOptions(), ...(credentials && { auth: credentials }) });
    try {
      const manifest = await client.resolveManifest(spec.reference, platformOf(spec.platform));
      const resolved = { digest: manifest.digest, registry: manifest.registry, repository: manifest.repository };
      this.resolved.set(cacheKey, resolved);
      return resolved;
    } finally {
      client.close();
    }
  }

  private waitBudget(ctx: CallContext): number {
    return Math.max(0, Math.min(this.options.indexWaitMs, ctx.deadline - Date.now() - DEADLINE_MARGIN_MS));
  }

  /**
   * Gets the record's image mounted and its target mounted. A new record is saved before the target
   * is mounted (so that a crash in between is reconciled) and removed again if mounting fails.
   */
  private async mountRecord(record: PublishRecord, waitMs: number, signal: AbortSignal | undefined, isNew: boolean): Promise<void> {
    let image: ImageMount;
    try {
      image = await this.options.images.acquire(this.imageRequest(record), imageUser(record), waitMs, signal);
    } catch (err) {
      if (err instanceof ImageNotReady) {
        throw new CsiError(
          grpc.status.ABORTED,
          `image ${record.image} (${record.digest}) is not ready yet: ${err.progress}; the work goes on in the background, retry later`,
        );
      }
      throw err;
    }
    try {
      if (isNew) {
        this.records.set(record.id, record);
        await this.options.state.saveRecord(record);
      }
      await this.mountTarget(record, image, !isNew);
      this.live.add(record.id);
    } catch (err) {
      if (isNew) await this.forget(record).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Mounts the volume at its target. A volume mounted there before (a restore, a republish) gets
   * its new mount stacked on the (dead) mounts an earlier process left: a container whose copy of
   * the target is a slave of it (`mountPropagation: HostToContainer`) receives a mount made on top
   * of that copy's master, never one made at the target after unmounting it. Otherwise what this
   * plugin left at the target goes first; a mount anyone else made there stops the publish.
   */
  private async mountTarget(record: PublishRecord, image: ImageMount, restack: boolean): Promise<void> {
    const target = record.targetPath;
    const stacking = restack && (await this.canStackAt(target, record));
    if (!stacking) {
      await this.clearTarget(target, 'FAILED_PRECONDITION');
      const existing = await stat(target).catch(() => undefined);
      if (existing && !existing.isDirectory()) throw invalidArgument(`target_path ${quote(target)} exists and is not a directory`);
      await mkdir(target, { recursive: true });
    }
    try {
      if (record.readOnly) {
        await bindMount(image.mountPoint, target, true);
      } else {
        const dir = this.options.state.volumeDir(record.id);
        const upper = join(dir, 'upper');
        const work = join(dir, 'work');
        const created = await mkdir(upper, { recursive: true });
        await mkdir(work, { recursive: true });
        if (created !== undefined) {
          // overlayfs shows the upper directory's owner and mode at the root: start with the image's
          // (a restored volume keeps whatever the pod has made of them since).
          const root = image.handle.reader.stat('');
          await chown(upper, root.uid, root.gid);
          await chmod(upper, root.mode);
        }
        // Stacked on a dead overlay, the new one takes the same upper layer: what the pod wrote.
        await overlayMount(image.mountPoint, upper, work, target);
      }
    } catch (err) {
      // A failed stacking leaves the layers below as they were: a retry stacks again.
      if (!stacking) await this.clearTarget(target, 'FAILED_PRECONDITION').catch(() => undefined);
      throw err;
    }
  }

  /** Whether the target holds mounts, all this plugin's, few enough to stack one more on. */
  private async canStackAt(target: string, record: PublishRecord): Promise<boolean> {
    const stack = await mountsAt(target);
    if (stack.length === 0) return false;
    const table = await readMountTable();
    if (!stack.every((entry) => this.isOwnMount(entry, table))) return false;
    if (stack.length <= MAX_DEAD_MOUNTS) return true;
    this.options.log('warn', 'the target holds too many mounts of earlier processes; they are unmounted: a running container sees the volume again only once it restarts', {
      volume_id: record.volumeId,
      target_path: target,
      mounts: stack.length,
    });
    return false;
  }

  /**
   * Unmounts, from the top, the mounts at `target` that this plugin made: binds of its image
   * mounts and overlays over them. A mount anyone else made is left alone: logged, and answered
   * with `code` (the call then tells kubelet why).
   */
  private async clearTarget(target: string, code: 'FAILED_PRECONDITION' | 'NOT_FOUND', volumeId?: string): Promise<void> {
    for (;;) {
      const top = await topMountAt(target);
      if (!top) return;
      if (!this.isOwnMount(top, await readMountTable())) {
        this.options.log('warn', 'target path holds a mount this plugin did not make; left in place', {
          target_path: target,
          fs_type: top.fsType,
          source: top.source,
          ...(volumeId !== undefined && { volume_id: volumeId }),
        });
        const what = `target_path ${quote(target)} holds a ${quote(top.fsType)} mount (source ${quote(top.source)}) that clip did not make; it is left in place`;
        if (code === 'NOT_FOUND') throw notFound(`volume ${quote(volumeId ?? '')} is not published at this target by clip: ${what}`);
        throw new CsiError(grpc.status.FAILED_PRECONDITION, `${what}; unmount it first`);
      }
      await unmountTop(target);
    }
  }

  /**
   * A bind of one of this plugin's image mounts (same device), or of one whose server died (its
   * image mount detached since: known by clip's FUSE name), or an overlay whose lower layer is one.
   */
  private isOwnMount(entry: MountEntry, table: readonly MountEntry[]): boolean {
    const imagesPrefix = `${this.options.state.imagesDir}/`;
    if (entry.fsType === 'overlay') return entry.superOptions.split(',').some((option) => option.startsWith(`lowerdir=${imagesPrefix}`));
    if (!entry.fsType.startsWith('fuse')) return false;
    if (entry.fsType === `fuse.${CLIP_FUSE_NAME}` && entry.source === CLIP_FUSE_NAME) return true;
    return table.some((image) => image.mountPoint.startsWith(imagesPrefix) && image.fsType.startsWith('fuse') && image.devId === entry.devId);
  }

  // ---------------------------------------------------------------------------------------------
  // Unpublish

  private async unpublish(volumeId: string, requestedPath: string, ctx: CallContext): Promise<void> {
    await this.start();
    const targetPath = await resolvePath(requestedPath);
    const known = this.records.get(StateDir.recordId(volumeId, targetPath));
    // What the plugin did not publish is only touched where it may publish.
    if (!known) await checkTarget('target_path', requestedPath, this.options.targets);
    await this.locks.run(lockKeys(volumeId, targetPath), async () => {
      const record = this.records.get(StateDir.recordId(volumeId, targetPath));
      if (record) ctx.annotate({ image: record.image, digest: record.digest });
      else {
        const other = this.recordAtTarget(targetPath);
        if (other) throw notFound(`volume ${quote(volumeId)} is not published at ${quote(targetPath)} (volume ${quote(other.volumeId)} is)`);
      }
      await this.clearTarget(targetPath, record ? 'FAILED_PRECONDITION' : 'NOT_FOUND', volumeId);
      await removeTarget(targetPath, this.options.log);
      if (record) await this.forget(record);
    });
  }

  /** Drops a record: its writable layer, its file, its hold on the image. Its target must be unmounted. */
  private async forget(record: PublishRecord): Promise<void> {
    this.live.delete(record.id);
    await rm(this.options.state.volumeDir(record.id), { recursive: true, force: true });
    await this.options.state.removeRecord(record.id);
    this.records.delete(record.id);
    this.options.images.detach(record.imageKey, record.id);
  }

  // ---------------------------------------------------------------------------------------------
  // Stats

  private async stats(volumeId: string, requestedPath: string): Promise<NodeGetVolumeStatsResponse> {
    await this.start();
    // Any path holding no volume of ours, relative ones included, is NOT_FOUND (the CSI spec's answer).
    const volumePath = isAbsolute(requestedPath) ? await resolvePath(requestedPath) : undefined;
    const record = volumePath === undefined ? undefined : this.records.get(StateDir.recordId(volumeId, volumePath));
    if (!record || volumePath === undefined) throw notFound(`volume ${quote(volumeId)} is not published at ${quote(requestedPath)}`);
    const image = this.options.images.get(record.imageKey);
    const healthy = await this.healthy(record);
    const imageBytes = image?.bytes ?? 0;
    const imageInodes = image?.inodes ?? 0;
    const usage: VolumeUsage[] = [];
    if (record.readOnly) {
      usage.push({ unit: 'BYTES', total: imageBytes, used: imageBytes, available: 0 });
      usage.push({ unit: 'INODES', total: imageInodes, used: imageInodes, available: 0 });
    } else {
      // The image plus what the volume can still write to its layer's filesystem.
      const fs = await statfs(this.options.state.volumesDir).catch(() => undefined);
      const availableBytes = fs ? fs.bavail * fs.bsize : 0;
      const availableInodes = fs ? fs.ffree : 0;
      usage.push({ unit: 'BYTES', total: imageBytes + availableBytes, used: imageBytes, available: availableBytes });
      usage.push({ unit: 'INODES', total: imageInodes + availableInodes, used: imageInodes, available: availableInodes });
    }
    return {
      usage,
      volume_condition: healthy
        ? { abnormal: false, message: `image ${record.image} (${record.digest}) is mounted` }
        : { abnormal: true, message: `image ${record.image} (${record.digest}) is not served at ${volumePath}; it is being restored, or a publish retry will restore it` },
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Reconciliation after a restart

  private async reconcile(taken: readonly ReceivedConnection[]): Promise<void> {
    const { state, log } = this.options;
    await state.create();
    const records = await state.loadRecords(log);
    for (const record of records) this.records.set(record.id, record);
    const table = await readMountTable();
    const adopted = await this.adoptConnections(records, taken, table);
    await this.cleanStaleMounts(records, table, adopted);
    // Writable layers and index files that no record or job owns any more.
    const ids = new Set(records.map((record) => record.id));
    for (const name of await readdir(state.volumesDir)) {
      if (!ids.has(name)) await rm(join(state.volumesDir, name), { recursive: true, force: true });
    }
    for (const name of await readdir(state.indexesDir)) {
      if (name.includes('.tmp-')) await rm(join(state.indexesDir, name), { force: true });
    }
    this.started = true;
    log('info', 'state reconciled', { volumes: records.length });
    // Each restore takes its volume's locks now, before any call can: calls for it wait.
    this.restoring = Promise.allSettled(records.map((record) => this.restore(record))).then(() => undefined);
  }

  /**
   * The FUSE mounts of a dead process answer ENOTCONN, and so do the binds and overlays made of
   * them. Targets of recorded volumes keep theirs: `restore` stacks the new mounts on them (so
   * that they propagate to containers), and unpublish unmounts every layer. The other targets
   * (volumes removed while no plugin ran) are unmounted and removed; the image mounts detached.
   */
  private async cleanStaleMounts(records: readonly PublishRecord[], table: readonly MountEntry[], adopted: ReadonlySet<string>): Promise<void> {
    const { state, log } = this.options;
    const imagesPrefix = `${state.imagesDir}/`;
    const staleImages = table.filter((entry) => entry.mountPoint.startsWith(imagesPrefix) && !adopted.has(entry.mountPoint));
    const staleDevices = new Set(staleImages.filter((entry) => entry.fsType.startsWith('fuse')).map((entry) => entry.devId));
    const recordTargets = new Set(records.map((record) => record.targetPath));
    const targets = new Set<string>();
    for (const entry of table) {
      if (entry.mountPoint.startsWith(imagesPrefix)) continue;
      const bindOfImage = entry.fsType.startsWith('fuse') && staleDevices.has(entry.devId);
      const overlayOfImage = entry.fsType === 'overlay' && entry.superOptions.includes(`lowerdir=${imagesPrefix}`);
      if ((bindOfImage || overlayOfImage) && !recordTargets.has(entry.mountPoint)) targets.add(entry.mountPoint);
    }
    // Deepest first, so that nothing stacked inside a target is left behind.
    for (const target of [...targets].sort((a, b) => b.length - a.length)) {
      try {
        await this.clearTarget(target, 'FAILED_PRECONDITION');
        await removeTarget(target, log);
        log('info', 'removed the target of a volume that is no longer recorded', { target_path: target });
      } catch (err) {
        log('error', 'cannot clean a stale target mount', { target_path: target, error: describeError(err) });
      }
    }
    for (const entry of [...staleImages].sort((a, b) => b.mountPoint.length - a.mountPoint.length)) {
      await detachFuse(entry.mountPoint);
      log('info', 'detached a stale image mount', { mount_point: entry.mountPoint });
    }
    for (const name of await readdir(state.imagesDir)) {
      if (!adopted.has(join(state.imagesDir, name))) await rmdir(join(state.imagesDir, name)).catch(() => undefined);
    }
  }

  /**
   * Serves again the live FUSE connections of the previous process (handed over, or kept by the
   * holder): those of images that recorded volumes use and that are still mounted where they were.
   * The others are closed (their mounts are then detached as stale). Returns the mount points
   * served.
   */
  private async adoptConnections(records: readonly PublishRecord[], taken: readonly ReceivedConnection[], table: readonly MountEntry[]): Promise<Set<string>> {
    const { log, images, state } = this.options;
    const adopted = new Set<string>();
    for (const connection of taken) {
      const { key, mountPoint } = connection.info;
      const record = records.find((candidate) => candidate.imageKey === key);
      const fields = { image_key: key, mount_point: mountPoint };
      const mounted = table.some((entry) => entry.mountPoint === mountPoint && entry.fsType === `fuse.${CLIP_FUSE_NAME}`);
      const why = !record
        ? 'no recorded volume uses the image'
        : mountPoint !== state.imageMountPoint(key)
          ? 'it is not mounted where this plugin mounts the image'
          : !mounted
            ? 'its mount is gone'
            : undefined;
      if (why) {
        closeAll([connection.fd]);
        await images.dropHeld(key);
        log('info', 'closed a FUSE connection of the previous process', { ...fields, reason: why });
        continue;
      }
      try {
        await images.adopt(this.imageRequest(record as PublishRecord), connection);
        adopted.add(mountPoint);
        log('info', 'took over a FUSE connection of the previous process', fields);
      } catch (err) {
        await images.dropHeld(key);
        log('warn', 'cannot take over a FUSE connection of the previous process; its volumes are mounted again', { ...fields, error: describeError(err) });
      }
    }
    return adopted;
  }

  private async restore(record: PublishRecord): Promise<void> {
    const { log } = this.options;
    const fields = { volume_id: record.volumeId, target_path: record.targetPath, image: record.image };
    if (!(await exists(dirname(record.targetPath)))) {
      // kubelet removed the pod's directory: the volume is gone.
      await this.locks.run(lockKeys(record.volumeId, record.targetPath), async () => {
        if (this.records.get(record.id) === record) await this.forget(record);
      });
      log('info', 'dropped a volume whose target directory is gone', fields);
      return;
    }
    // Credentials from a secret were never stored: requests that need the registry wait for kubelet's republish.
    if (record.credentialsFromSecret) this.options.images.expectCredentials(record.imageKey);
    let image: ImageMount;
    try {
      // Not under the volume's lock: indexing may take long, and calls for the volume must not queue
      // behind it (a publish joins the same job; an unpublish goes ahead).
      image = await this.options.images.acquire(this.imageRequest(record), imageUser(record), Infinity);
    } catch (err) {
      log('error', 'cannot restore a volume: its image cannot be mounted; a publish retry tries again', { ...fields, error: describeError(err) });
      return;
    }
    await this.locks.run(lockKeys(record.volumeId, record.targetPath), async () => {
      if (this.records.get(record.id) !== record) {
        this.options.images.detach(record.imageKey, record.id);
        return;
      }
      if (this.live.has(record.id)) return;
      if (image.adopted && (await this.servesImage(record.targetPath, image))) {
        // The connection was taken over: the target's mount never stopped being this image's.
        this.live.add(record.id);
        log('info', 'volume kept across the restart', fields);
        return;
      }
      try {
        await this.mountTarget(record, image, true);
        this.live.add(record.id);
        log('info', 'volume restored', fields);
      } catch (err) {
        log('error', 'cannot restore a volume; a publish retry tries again', { ...fields, error: describeError(err) });
      }
    });
  }

  // ---------------------------------------------------------------------------------------------

  /** Whether the top mount at `target` is a bind of the image's mount, or an overlay over it. */
  private async servesImage(target: string, image: ImageMount): Promise<boolean> {
    const top = await topMountAt(target);
    if (!top) return false;
    if (top.fsType === 'overlay') return top.superOptions.split(',').includes(`lowerdir=${image.mountPoint}`);
    const table = await readMountTable();
    const imageDevice = table.find((entry) => entry.mountPoint === image.mountPoint && entry.fsType.startsWith('fuse'))?.devId;
    return imageDevice !== undefined && top.fsType.startsWith('fuse') && top.devId === imageDevice;
  }

  private async healthy(record: PublishRecord): Promise<boolean> {
    return this.live.has(record.id) && this.options.images.get(record.imageKey) !== undefined && (await isMountPoint(record.targetPath));
  }

  private recordAtTarget(targetPath: string): PublishRecord | undefined {
    for (const record of this.records.values()) if (record.targetPath === targetPath) return record;
    return undefined;
  }

  private registryOptions(): ImageRequest['registryOptions'] {
    const { registry } = this.options;
    return {
      insecureRegistries: registry.insecureRegistries,
      caCertificates: registry.caCertificates,
      ...(registry.dockerConfigPath !== undefined && { dockerConfigPath: registry.dockerConfigPath }),
    };
  }

  private imageRequest(record: PublishRecord): ImageRequest {
    return {
      key: record.imageKey,
      image: record.image,
      registry: record.registry,
      repository: record.repository,
      digest: record.digest,
      platform: record.platform,
      registryOptions: this.registryOptions(),
    };
  }
}

function imageUser(record: PublishRecord): ImageUser {
  return { id: record.id, volumeId: record.volumeId };
}

/** Why an existing publication differs from a new request for the same volume and target. */
function incompatibility(record: PublishRecord, spec: PublishSpec): string | undefined {
  if (record.image !== spec.image) return `with image ${record.image}, not ${spec.image}`;
  if (record.platform !== spec.platform) return `for platform ${record.platform}, not ${spec.platform}`;
  if (record.readOnly !== spec.readOnly) return record.readOnly ? 'read-only, not writable' : 'writable, not read-only';
  return undefined;
}

function lockKeys(volumeId: string, targetPath: string): string[] {
  return [`volume:${volumeId}`, `target:${targetPath}`];
}

function platformOf(platform: string): Platform {
  const [os, architecture, variant] = platform.split('/') as [string, string, string | undefined];
  return variant ? { os, architecture, variant } : { os, architecture };
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

/**
 * Removes the (unmounted) target directory. Never recursively: what is left inside an unmounted
 * target is not ours to delete.
 */
async function removeTarget(targetPath: string, log: Logger): Promise<void> {
  try {
    await rmdir(targetPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') {
      log('warn', 'target path is not empty after unmounting; left in place', { target_path: targetPath });
      return;
    }
    if (code === 'ENOTDIR') throw invalidArgument(`target_path ${quote(targetPath)} is not a directory`);
    throw err;
  }
}
