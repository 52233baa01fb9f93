import type { Inode } from '../archive/model.js';

/** Reads a regular file's bytes from wherever the archive's storage mode keeps them. */
export interface ContentReader {
  /** Returns up to `length` bytes at `offset` of the file (fewer only at end of file). */
  read(inode: Inode, offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

/** Clamps a read to the file's size: the byte range [start, end) within the file. */
export function clampRead(inode: Inode, offset: number, length: number): { start: number; end: number } {
  const start = Math.min(Math.max(0, offset), inode.size);
  return { start, end: Math.min(inode.size, start + Math.max(0, length)) };
}
