import { EventEmitter } from 'node:events';
import { mkdir, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import Fuse, { type FuseOperations } from 'fuse-native';
import { ClipError } from '../errors.js';
import { ArchiveReader, type OpenArchiveOptions } from '../read/archive-reader.js';
import type { ByteSource } from '../source/byte-source.js';
import { archiveOperations } from './operations.js';
import { forceUnmount, isMountPoint } from './mount-table.js';

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
  /** Mounts; a stale mount left at the mount point by a dead server is cleaned first. */
  start(): Promise<void>;
  /** Unmounts (lazily, so open files do not block it) and closes the archive. Idempotent. */
  unmount(): Promise<void>;
  /** Observes errors the server answered with EIO (a failed fetch, a digest mismatch). */
  onError(listener: (event: MountServerError) => void): void;
}

/** Immutable content: the kernel may cache attributes, entries and pages for a long time. */
const CACHE_SECONDS = 86_400;

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
  const operations = archiveOperations(reader, (error, operation, path) => {
    events.emit('server-error', { error, operation, path } satisfies MountServerError);
  });
  const fuse = new Fuse(mountPoint, operations, {
    // use_ino makes hard links share st_ino; ro makes the kernel refuse writes itself.
    // fuse-native has no flags for them, but joins options with commas, so they ride on fsname.
    fsname: `${CLIP_FUSE_NAME},use_ino,ro,negative_timeout=${CACHE_SECONDS}`,
    subtype: CLIP_FUSE_NAME,
    allowOther: options.allowOther ?? process.getuid?.() === 0,
    defaultPermissions: true,
    kernelCache: true,
    attrTimeout: CACHE_SECONDS,
    entryTimeout: CACHE_SECONDS,
    timeout: options.operationTimeoutMs ?? 120_000,
    debug: options.debug ?? false,
  });
  let state: 'ready' | 'mounted' | 'closed' = 'ready';

  const handle: MountHandle = {
    mountPoint,
    reader,
    async start() {
      if (state !== 'ready') throw new ClipError('MOUNT_FAILED', `mount of ${mountPoint} was already started`);
      await prepareMountPoint(mountPoint);
      await new Promise<void>((resolvePromise, reject) => {
        fuse.mount((err) => {
          if (err) reject(new ClipError('MOUNT_FAILED', `cannot mount at ${mountPoint}: ${err.message}`, { cause: err }));
          else resolvePromise();
        });
      });
      state = 'mounted';
    },
    async unmount() {
      if (state === 'closed') return;
      const wasMounted = state === 'mounted';
      state = 'closed';
      if (wasMounted) {
        await new Promise<void>((resolvePromise) => fuse.unmount(() => resolvePromise()));
        // fuse-native reports success even when fusermount could not detach a busy mount.
        await forceUnmount(mountPoint);
        fuse.ops = failingOperations(operations);
      }
      await reader.close();
    },
    onError(listener) {
      events.on('server-error', listener);
    },
  };
  return handle;
}

/**
 * Operations that fail every call with EIO, for a Fuse instance once it is unmounted. fuse-native
 * keeps every Fuse instance it mounted for the life of the process (its addon holds references it
 * never deletes), and with it the operations, the archive and its caches: a node plugin mounting
 * image after image kept every archive it had unmounted. A call can still come in after a lazy
 * unmount, for files held open; it fails as it would on a closed archive.
 */
function failingOperations(operations: FuseOperations): FuseOperations {
  const fail = (...args: unknown[]): void => (args[args.length - 1] as (code: number) => void)(Fuse.EIO);
  return Object.fromEntries(Object.keys(operations).map((name) => [name, fail])) as FuseOperations;
}

async function prepareMountPoint(mountPoint: string): Promise<void> {
  if (await isMountPoint(mountPoint)) await forceUnmount(mountPoint);
  const stats = await stat(mountPoint).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new ClipError('MOUNT_FAILED', `mount point ${mountPoint} is unusable: ${err.message}`);
  });
  if (!stats) await mkdir(mountPoint, { recursive: true });
  else if (!stats.isDirectory()) throw new ClipError('MOUNT_FAILED', `mount point ${mountPoint} is not a directory`);
}
