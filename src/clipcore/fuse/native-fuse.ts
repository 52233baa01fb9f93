import { loadAddon } from '../native-addon.js';

/** A native FUSE session (native/clip_fuse.c); opaque to JavaScript. */
export interface FuseSession {
  readonly __brand: 'FuseSession';
}

/** Requests the native server answered, by kind (`readToJs`: reads handed to JavaScript). */
export interface FuseCounters {
  readonly lookup: number;
  readonly getattr: number;
  readonly readdir: number;
  readonly readdirplus: number;
  readonly getxattr: number;
  readonly listxattr: number;
  readonly open: number;
  readonly opendir: number;
  readonly read: number;
  readonly readToJs: number;
  /** Reads answered natively with at least one span from a disk cache entry (see publishDiskEntry). */
  readonly readFromDisk: number;
  /** Reads answered natively from the memory tier alone (see publishMemorySpan). */
  readonly readFromMemory: number;
  /** Native reads left out of the read log (it was full): not in the span metrics. */
  readonly readsUnlogged: number;
  /** Reads handed to JavaScript and not answered yet (a gauge, not a count). */
  readonly pendingReads: number;
  /** Times a loop thread polled for the next request after answering one, and how many of those found one. */
  readonly spins: number;
  readonly spinsFound: number;
}

/**
 * Called on the JavaScript thread for each read the server hands over; answer with
 * reply/replyError. With id 0 it is no request but news: the first read of `inode` in this mount
 * was served natively, in `offset` microseconds. With id -1: reads were served natively, and
 * takeReads returns them.
 */
export type ReadRequest = (id: number, inode: number, offset: number, length: number) => void;

/** What another process needs to serve a live FUSE connection. */
export interface FuseConnection {
  readonly fd: number;
  /** The INIT request the kernel sent, as received (null until it came). */
  readonly init: Uint8Array | null;
}

export interface ClipFuseAddon {
  /** Why the native side refuses a FUSE table, or null when it accepts it. */
  validate(table: Uint8Array): string | null;
  /**
   * Serves `mountPoint` (a directory it mounts, or `/dev/fd/N`: an open /dev/fuse descriptor,
   * duplicated). `layouts`: the span ends of each blob (indexed like `Inode.location.layer`).
   * `init`: the INIT request of a connection another process initialised (FuseConnection.init).
   */
  mount(table: Uint8Array, mountPoint: string, options: string, debug: boolean, onRead: ReadRequest, layouts: Float64Array[], init?: Uint8Array): FuseSession;
  /**
   * Span `span` of blob `blob` is in this disk cache entry, whose header was checked: the server
   * reads it itself from now on, checking each block it reads against `digests`. False when refused.
   */
  publishDiskEntry(session: FuseSession, blob: number, span: number, path: string, blockBytes: number, length: number, dataOffset: number, digests: Uint8Array): boolean;
  /**
   * Span `span` of blob `blob` is these verified bytes (a Buffer of the memory tier): the server
   * answers reads of it from them, holding a reference, until withdrawMemorySpan. False when refused.
   */
  publishMemorySpan(session: FuseSession, blob: number, span: number, data: Uint8Array): boolean;
  /** The span left the memory tier: the server stops reading it and releases the Buffer. */
  withdrawMemorySpan(session: FuseSession, blob: number, span: number): void;
  /**
   * The reads served natively since the last call: (inode index, offset, length, microseconds,
   * disk parts) each, where bit i of disk parts says the read's i-th span came from the disk cache
   * rather than memory (bit 31: that one or any later one). After a call that returned reads the
   * server does not announce new ones (id -1): the caller must call again until one returns none.
   */
  takeReads(session: FuseSession): Float64Array;
  /** False when the read was already answered (or never existed). */
  reply(session: FuseSession, id: number, data: Uint8Array): boolean;
  replyError(session: FuseSession, id: number, errno: number): boolean;
  /** No more reads go to JavaScript (they answer EIO); the loop ends with the kernel connection. */
  close(session: FuseSession): void;
  counters(session: FuseSession): FuseCounters;
  /** Stops reading requests without unmounting (a handover); true when every loop thread ended. */
  detach(session: FuseSession): boolean;
  /** The session's own /dev/fuse descriptor (never close it) and its connection's INIT request. */
  connection(session: FuseSession): FuseConnection;
  /** FUSE_NOTIFY_RESEND: 0, or the errno the kernel answered (EINVAL before Linux 6.9). */
  notifyResend(session: FuseSession): number;
  /** Opens /dev/fuse and mounts it read-only at `mountPoint` (needs root); returns the descriptor. */
  openMount(mountPoint: string, options: string): number;
}

let addon: ClipFuseAddon | undefined;

export function clipFuse(): ClipFuseAddon {
  addon ??= loadAddon('clip_fuse') as ClipFuseAddon;
  return addon;
}
