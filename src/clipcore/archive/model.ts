/**
 * The in-memory model of an archive's table of contents. Writers build it, the binary codec
 * (toc-codec.ts) stores it, readers look paths up in it.
 *
 * Inodes and directory entries are separate so that hard links are just two entries that name
 * the same inode. Inode numbers are stable: inode index + 1 (the root directory is inode 1, as
 * FUSE expects).
 */

export type EntryType = 'file' | 'directory' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

export type StorageMode = 'local' | 's3' | 'oci';

/** Index into Toc.inodes. */
export type InodeIndex = number;

/**
 * Where a regular file's bytes live. For `local` and `s3` archives `offset` is into the data blob
 * (the archive's data section, or the S3 object) and `layer` is 0. For `oci` archives `layer`
 * indexes the image's layer list and `offset` is into the layer's uncompressed tar stream.
 */
export interface ContentLocation {
  readonly layer: number;
  readonly offset: number;
}

export interface Xattr {
  readonly name: string;
  readonly value: Buffer;
}

export interface Inode {
  readonly type: EntryType;
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777); the type is in `type`. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Bytes of content for files, length of the target for symlinks, 0 otherwise. */
  readonly size: number;
  /** Modification time in nanoseconds since the epoch. */
  readonly mtimeNs: bigint;
  /** Number of directory entries naming this inode (directories: 2 + subdirectories). */
  readonly nlink: number;
  /** Symlink target, verbatim. */
  readonly linkTarget?: string;
  /** Device numbers for char and block devices. */
  readonly rdevMajor?: number;
  readonly rdevMinor?: number;
  /** Sorted by name. */
  readonly xattrs: readonly Xattr[];
  /** sha256 of a regular file's content. */
  readonly sha256?: Buffer;
  readonly location?: ContentLocation;
  /** Directories: their entries are toc.entries[firstEntry .. firstEntry + entryCount), sorted by name. */
  readonly firstEntry?: number;
  readonly entryCount?: number;
}

export interface DirEntry {
  readonly name: string;
  readonly inode: InodeIndex;
}

export interface Toc {
  /** inodes[0] is the root directory. */
  readonly inodes: readonly Inode[];
  readonly entries: readonly DirEntry[];
}

/** The attributes a writer supplies for one path; the builder derives nlink and the directory layout. */
export type InodeSpec = Omit<Inode, 'nlink' | 'firstEntry' | 'entryCount'>;
