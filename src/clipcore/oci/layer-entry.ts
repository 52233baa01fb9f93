import type { Xattr } from '../archive/model.js';

/** The entry kinds a layer tar can hold (sockets cannot be archived by tar). */
export type LayerEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

/**
 * One entry of a layer tar, after extended headers (PAX, GNU long names) have been applied.
 * Whiteouts are not interpreted here: they are ordinary entries named `.wh.*`, and the overlay
 * merge gives them meaning.
 */
export interface LayerEntry {
  /** Normalized: no leading `/` or `./`, no empty, `.` or `..` parts. `''` is the layer root. */
  readonly path: string;
  readonly type: LayerEntryType;
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Content bytes for files, 0 for every other type. */
  readonly size: number;
  /** Modification time in nanoseconds since the epoch (sub-second only when PAX carries it). */
  readonly mtimeNs: bigint;
  /** Symlinks: the target verbatim. Hard links: the normalized path of the linked entry. */
  readonly linkTarget?: string;
  /** Char and block devices. */
  readonly rdevMajor?: number;
  readonly rdevMinor?: number;
  /** From PAX `SCHILY.xattr.<name>` records, values as raw bytes, sorted by name (byte order). */
  readonly xattrs: readonly Xattr[];
  /** Files: offset of the first content byte within the uncompressed layer stream. */
  readonly dataOffset?: number;
  /** Files: sha256 of the content. */
  readonly sha256?: Buffer;
  /** Offset of the entry's own header block (after any PAX/GNU headers), for diagnostics. */
  readonly headerOffset: number;
}
