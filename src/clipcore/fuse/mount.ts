import { EventEmitter } from 'node:events';
import { mkdir, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { ClipError } from '../errors.js';
import { ArchiveReader, type OpenArchiveOptions } from '../read/archive-reader.js';
import type { ByteSource } from '../source/byte-source.js';
import { encodeFuseTable } from './fuse-table.js';
import { forceUnmount, mountAt, probeFuseMount } from './mount-table.js';
import { clipFuse, type FuseCounters, type FuseSession, type ReadRequest } from './native-fuse.js';
import { serveCachesNatively, type NativeCaches } from './native-reads.js';
import { readHandler } from './read-handler.js';

export interface MountArchiveOptions extends OpenArchiveOptions {
  /** The archive: a path to a local .clip, or any ByteSource (S3, HTTP). */
  readonly archive: string | ByteSource;
  readonly mountPoint: string;
  /** Let users other than the mounting one read (pods run as many uids). Default: true when root. */
  readonly allowOther?: boolean;
  /** How long a FUSE operation may take before the kernel gets EIO. Default 120 s (cold remote reads). */
  readonly operationTimeoutMs?: number;
  /** libfuse debug output on stderr. */
  readonly debug?: boolean;
  /**
   * Serve this already open and mounted /dev/fuse descriptor (e.g. from `openFuseMount`, or
   * handed over by another process) instead of mounting at `mountPoint`. The descriptor is
   * duplicated: the caller keeps, and eventually closes, its own.
   */
  readonly fuseFd?: number;
  /**
   * With `fuseFd`: the INIT request the connection was initialised with by the process that
   * served it before (`MountHandle.connection()`): the connection is taken over as it is, live,
   * instead of being initialised.
   */
  readonly fuseInit?: Uint8Array;
}

/** A live FUSE connection as another process takes it over (`mountArchive({ fuseFd, fuseInit })`). */
export interface HeldConnection {
  /** The /dev/fuse descriptor: the mount's own, never to be closed by the caller. */
  readonly fd: number;
  readonly init: Uint8Array;
}

export interface MountServerError {
  readonly error: Error;
  readonly operation: string;
  readonly path: string;
}

/** A mounted (or ready to mount) archive. */
export interface MountHandle {
  readonly mountPoint: string;
  readonly reader: ArchiveReader;
  /**
   * Mounts, and resolves once the kernel has initialised the connection; a stale mount left at the
   * mount point by a dead server is cleaned first.
   */
  start(): Promise<void>;
  /** Unmounts (lazily, so open files do not block it) and closes the archive. Idempotent. */
  unmount(): Promise<void>;
  /** Observes errors the server answered with EIO (a failed fetch, a digest mismatch). */
  onError(listener: (event: MountServerError) => void): void;
  /** Requests the native server answered, by kind (undefined before start). */
  counters(): FuseCounters | undefined;
  /** The live connection, for handing it to another process (undefined before start or INIT). */
  connection(): HeldConnection | undefined;
  /**
   * Stops reading requests, leaving the mount and the connection as they are, for the process
   * that takes the connection over; reads already handed to this process are still answered.
   */
  detach(): void;
  /**
   * Asks the kernel to queue again every request a reader of the connection took and did not
   * answer (a process that died, or stopped, holding them): true when done, false when the
   * kernel cannot (FUSE_NOTIFY_RESEND needs Linux 6.9).
   */
  resendUnanswered(): boolean;
}

/** How long a new mount may wait for the kernel's INIT request. */
const INIT_WAIT_MS = 10_000;

/** The source (fsname) and subtype of every clip FUSE mount, as /proc/self/mountinfo shows them (`clip`, `fuse.clip`). */
export const CLIP_FUSE_NAME = 'clip';

/**
 * Opens an archive and prepares a read-only FUSE mount of it. The archive is opened and checked
 * here, so a bad archive fails before anything is mounted.
 */
export async function mountArchive(options: MountArchiveOptions): Promise<MountHandle> {
  const mountPoint = resolve(options.mountPoint);
  const reader = await ArchiveReader.open(options.archive, options);
  const events = new EventEmitter();
  const addon = clipFuse();
  // ro: the kernel refuses writes itself; default_permissions: it checks modes itself.
  const fuseOptions = ['ro', 'default_permissions', `fsname=${CLIP_FUSE_NAME}`, `subtype=${CLIP_FUSE_NAME}`];
  if (options.allowOther ?? process.getuid?.() === 0) fuseOptions.push('allow_other');
  let session: FuseSession | undefined;
  let caches: NativeCaches | undefined;
  const handleRead = readHandler(addon, () => session as FuseSession, reader, options.operationTimeoutMs ?? 120_000, (error, operation, path) => {
    events.emit('server-error', { error, operation, path } satisfies MountServerError);
  });
  const onRead: ReadRequest = (id, inode, offset, length) => {
    if (id === -1) caches?.takeLog();
    else handleRead(id, inode, offset, length);
  };
  let state: 'ready' | 'mounted' | 'closed' = 'ready';

  const handle: MountHandle = {
    mountPoint,
    reader,
    async start() {
      if (state !== 'ready') throw new ClipError('MOUNT_FAILED', `mount of ${mountPoint} was already started`);
      if (options.fuseFd === undefined) await prepareMountPoint(mountPoint);
      const target = options.fuseFd === undefined ? mountPoint : `/dev/fd/${options.fuseFd}`;
      const layouts = reader.spanLayouts();
      const ends = layouts.map((layout) => Float64Array.from({ length: layout.count }, (_, i) => layout.end(i)));
      try {
        session = addon.mount(encodeFuseTable(reader.index.toc), target, fuseOptions.join(','), options.debug ?? false, onRead, ends, options.fuseInit);
      } catch (err) {
        throw new ClipError('MOUNT_FAILED', `cannot mount at ${mountPoint}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      state = 'mounted';
      caches = serveCachesNatively(addon, session, reader, layouts, ends);
      // Ready means initialised: the kernel's INIT answered (or replayed), the connection passable on.
      const deadline = Date.now() + INIT_WAIT_MS;
      while (!addon.connection(session).init) {
        if (Date.now() > deadline) {
          await handle.unmount();
          throw new ClipError('MOUNT_FAILED', `the kernel did not initialise the FUSE connection of ${mountPoint} within ${INIT_WAIT_MS / 1000} s`);
        }
        await delay(2);
      }
    },
    async unmount() {
      if (state === 'closed') return;
      const wasMounted = state === 'mounted';
      state = 'closed';
      if (wasMounted) {
        // Reads still open on a lazily detached mount answer EIO natively from here on.
        caches?.takeLog(); // what was served natively until now still counts
        caches?.stop();
        addon.close(session as FuseSession);
        await forceUnmount(mountPoint);
      }
      await reader.close();
    },
    onError(listener) {
      events.on('server-error', listener);
    },
    counters() {
      return session && addon.counters(session);
    },
    connection() {
      const live = state === 'mounted' && session ? addon.connection(session) : undefined;
      return live?.init ? { fd: live.fd, init: live.init } : undefined;
    },
    detach() {
      if (state === 'mounted' && session) addon.detach(session);
    },
    resendUnanswered() {
      if (state !== 'mounted' || !session) return false;
      return addon.notifyResend(session) === 0;
    },
  };
  return handle;
}

/**
 * Opens /dev/fuse and mounts it read-only at `mountPoint` (root only), returning the descriptor,
 * for `mountArchive({ fuseFd })`: a process that keeps FUSE connections across restarts holds
 * such descriptors. `allowOther` as in mountArchive.
 */
export async function openFuseMount(mountPoint: string, allowOther = process.getuid?.() === 0): Promise<number> {
  const target = resolve(mountPoint);
  await prepareMountPoint(target);
  try {
    return clipFuse().openMount(target, ['default_permissions', ...(allowOther ? ['allow_other'] : [])].join(','));
  } catch (err) {
    throw new ClipError('MOUNT_FAILED', `cannot mount /dev/fuse at ${target}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/**
 * Makes `mountPoint` a directory to mount on. A FUSE mount there whose server is gone (a killed
 * process left it: everything in it fails with ENOTCONN) is cleared; any other mount is refused,
 * and left as it is: a live mount belongs to a process that serves it.
 */
async function prepareMountPoint(mountPoint: string): Promise<void> {
  const existing = await mountAt(mountPoint);
  if (existing !== undefined) {
    const fuse = existing.fsType === 'fuse' || existing.fsType.startsWith('fuse.');
    const state = fuse ? await probeFuseMount(mountPoint) : undefined;
    if (state !== 'disconnected') {
      const why =
        state === 'answers' ? 'a FUSE server answers there' : state === 'silent' ? 'its FUSE server does not answer (a process holds the connection)' : 'clip mounts only over a FUSE mount whose server is gone';
      throw new ClipError('MOUNT_FAILED', `mount point ${mountPoint} is already a mount (${existing.fsType}): ${why}; unmount it first`);
    }
    await forceUnmount(mountPoint);
  }
  const stats = await stat(mountPoint).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new ClipError('MOUNT_FAILED', `mount point ${mountPoint} is unusable: ${err.message}`);
  });
  if (!stats) await mkdir(mountPoint, { recursive: true });
  else if (!stats.isDirectory()) throw new ClipError('MOUNT_FAILED', `mount point ${mountPoint} is not a directory`);
}
