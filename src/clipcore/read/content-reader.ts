import type { Inode } from '../archive/model.js';
import type { SpanCache, SpanRef } from '../cache/span-cache.js';
import type { SpanLayout } from '../cache/spanned-blob.js';
import type { ClipMetrics } from '../metrics/clip-metrics.js';
import type { ClipLogger } from '../metrics/logger.js';

/** Reads a regular file's bytes from wherever the archive's storage mode keeps them. */
export interface ContentReader {
  /** Returns up to `length` bytes at `offset` of the file (fewer only at end of file). */
  read(inode: Inode, offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
  /** The spans holding a file's bytes, or every span when `inode` is omitted: what prefetch fetches. */
  spans?(inode?: Inode): SpanRef[];
  /** Bytes of a file were read elsewhere (natively, from memory): a sequential reader's read-ahead goes on. */
  noteRead?(inode: Inode, offset: number, length: number): void;
  /** The span layout of each blob, indexed like `Inode.location.layer`: what the native READ maps reads with. */
  layouts?(): readonly SpanLayout[];
}

/** What ArchiveReader hands a content reader: the span tiers and how to report. */
export interface ContentContext {
  readonly cache: SpanCache;
  readonly readAheadSpans: number;
  readonly logger?: ClipLogger;
  readonly metrics?: ClipMetrics;
}

/** Clamps a read to the file's size: the byte range [start, end) within the file. */
export function clampRead(inode: Inode, offset: number, length: number): { start: number; end: number } {
  const start = Math.min(Math.max(0, offset), inode.size);
  return { start, end: Math.min(inode.size, start + Math.max(0, length)) };
}
