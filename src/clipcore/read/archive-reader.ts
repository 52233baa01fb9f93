import { performance } from 'node:perf_hooks';
import { ArchiveIndex } from '../archive/archive-index.js';
import type { DirEntry, Inode, InodeIndex } from '../archive/model.js';
import type { ContentCache } from '../cache/content-cache.js';
import { DEFAULT_DISK_CACHE_BYTES, DiskCache, type EntryListener } from '../cache/disk-cache.js';
import { prefetchSpans, type PrefetchOptions, type PrefetchResult } from '../cache/prefetch.js';
import { DEFAULT_MEMORY_CACHE_BYTES, SpanCache, type SpanRef } from '../cache/span-cache.js';
import { DEFAULT_READ_AHEAD_SPANS, type SpanLayout } from '../cache/spanned-blob.js';
import { ClipError } from '../errors.js';
import type { ClipMetrics } from '../metrics/clip-metrics.js';
import type { ClipLogger } from '../metrics/logger.js';
import type { ByteSource } from '../source/byte-source.js';
import { openArchiveSource } from '../s3/open-source.js';
import { openS3Content } from '../s3/s3-content.js';
import type { S3Options } from '../s3/config.js';
import type { ContentContext, ContentReader } from './content-reader.js';
import { LocalContent } from './local-content.js';
import { asImageMeta } from '../image/image-meta.js';
import { OciContent } from '../image/oci-content.js';
import { RegistryClient, type RegistryClientOptions } from '../registry/index.js';

export interface OpenArchiveOptions {
  /** oci mode: how to reach the image's registry (credentials, CA certificates, insecure hosts). */
  readonly registry?: RegistryClientOptions;
  /** s3 mode, and archives opened as `s3://bucket/key`: credentials, region, endpoint. */
  readonly s3?: S3Options;
  /**
   * Replaces the built-in content reader of non-local modes (tests, custom origins). The context
   * carries the span tiers to read through (see VerifiedBlob and SpannedBlob).
   */
  readonly contentReaderFactory?: (index: ArchiveIndex, context: ContentContext) => Promise<ContentReader>;
  /** Node-local disk cache directory: shared by every mount on the node, kept across restarts. None when unset. */
  readonly cacheDir?: string;
  /** Bound of the disk cache in bytes. Default 10 GiB. */
  readonly cacheMaxBytes?: number;
  /** Bound of the in-memory span cache in bytes. Default 256 MiB (64 MiB for local archives). */
  readonly memoryCacheBytes?: number;
  /** A shared cache (e.g. cluster-wide) consulted after the disk cache, before the origin. */
  readonly contentCache?: ContentCache;
  /** Where to record metrics; none when unset. */
  readonly metrics?: ClipMetrics;
  /** Where warnings and errors go (structured); clipcore prints nothing itself. */
  readonly logger?: ClipLogger;
  /**
   * Spans loaded ahead of a sequential reader at first; the window doubles while it stays
   * sequential, up to 16 spans (or this, if larger). Default 2; 0 turns read-ahead off.
   */
  readonly readAheadSpans?: number;
  /** Origin fetches (range requests) in flight at once for this archive; the node's bound (32) applies too. Default 8. */
  readonly maxOriginFetches?: number;
  /** Background prefetch started when the archive is opened (see `ArchiveReader.prefetch`). */
  readonly prefetch?: PrefetchOptions;
}

/**
 * Reads an archive without FUSE: stat, list, readlink, xattrs and byte ranges of files. The FUSE
 * filesystem is a thin layer over this class.
 */
export class ArchiveReader {
  /** Inodes read at least once (a bit each): the first read of a file is timed. */
  private readonly readOnce: Uint8Array;
  private readonly prefetchAbort = new AbortController();
  private readonly prefetches = new Set<Promise<PrefetchResult>>();
  /** The background prefetch asked for in the open options, if any. */
  prefetchDone: Promise<PrefetchResult> | undefined;

  private constructor(
    readonly index: ArchiveIndex,
    private readonly content: ContentReader,
    readonly cache: SpanCache,
    private readonly disk: DiskCache | undefined,
    private readonly metrics: ClipMetrics | undefined,
    private readonly logger: ClipLogger | undefined,
  ) {
    this.readOnce = new Uint8Array(Math.ceil(index.toc.inodes.length / 8));
  }

  static async open(source: ByteSource | string, options: OpenArchiveOptions = {}): Promise<ArchiveReader> {
    const byteSource = await openArchiveSource(source, options.s3 ?? {});
    let disk: DiskCache | undefined;
    try {
      const index = await ArchiveIndex.open(byteSource);
      const storage = index.meta.storage;
      disk = options.cacheDir === undefined ? undefined : await DiskCache.open({
        dir: options.cacheDir,
        maxBytes: options.cacheMaxBytes ?? DEFAULT_DISK_CACHE_BYTES,
        ...(options.logger && { logger: options.logger }),
        ...(options.metrics && { metrics: options.metrics }),
      });
      const cache = new SpanCache({
        memoryBytes: options.memoryCacheBytes ?? (storage.mode === 'local' ? 64 * 1024 * 1024 : DEFAULT_MEMORY_CACHE_BYTES),
        ...(disk && { disk }),
        ...(options.contentCache && { shared: options.contentCache }),
        ...(options.metrics && { metrics: options.metrics }),
        ...(options.logger && { logger: options.logger }),
        ...(options.maxOriginFetches !== undefined && { maxOriginFetches: options.maxOriginFetches }),
      });
      const context: ContentContext = {
        cache,
        readAheadSpans: options.readAheadSpans ?? DEFAULT_READ_AHEAD_SPANS,
        ...(options.logger && { logger: options.logger }),
        ...(options.metrics && { metrics: options.metrics }),
      };
      let content: ContentReader;
      if (storage.mode === 'local') content = await LocalContent.open(index, storage, context);
      else if (options.contentReaderFactory) content = await options.contentReaderFactory(index, context);
      else if (storage.mode === 's3') content = await openS3Content(index, storage, options.s3 ?? {}, context);
      else content = await openRegistryContent(index, options.registry ?? {}, context);
      const reader = new ArchiveReader(index, content, cache, disk, options.metrics, options.logger);
      if (options.prefetch) reader.prefetchDone = reader.prefetch(options.prefetch);
      return reader;
    } catch (err) {
      await disk?.close();
      await byteSource.close();
      throw err;
    }
  }

  stat(path: string): Inode & { ino: number } {
    const index = this.index.resolve(path);
    return { ...this.index.inode(index), ino: index + 1 };
  }

  list(path: string): readonly DirEntry[] {
    return this.index.entries(this.index.resolve(path));
  }

  readlink(path: string): string {
    const inode = this.stat(path);
    if (inode.type !== 'symlink') throw new ClipError('INVALID_ARGUMENT', `${path} is not a symbolic link`);
    return inode.linkTarget ?? '';
  }

  /** Reads up to `length` bytes at `offset` of the file with inode index `inode`. */
  readInode(inode: InodeIndex, offset: number, length: number): Promise<Buffer> {
    const attributes = this.index.inode(inode);
    if (attributes.type === 'directory') throw new ClipError('IS_A_DIRECTORY', `inode ${inode} is a directory`);
    if (attributes.type !== 'file') throw new ClipError('INVALID_ARGUMENT', `inode ${inode} is a ${attributes.type}, not a regular file`);
    const bit = 1 << (inode & 7);
    const byte = inode >>> 3;
    if (this.metrics === undefined || ((this.readOnce[byte] as number) & bit) !== 0) return this.content.read(attributes, offset, length);
    this.readOnce[byte] = (this.readOnce[byte] as number) | bit;
    const started = performance.now();
    const metrics = this.metrics;
    return this.content.read(attributes, offset, length).then((data) => {
      metrics.firstReadOfFile((performance.now() - started) / 1000);
      return data;
    });
  }

  /** A first read of a file served elsewhere (natively by the FUSE server), timed there. */
  noteFirstRead(inode: InodeIndex, seconds: number): void {
    const bit = 1 << (inode & 7);
    const byte = inode >>> 3;
    if (this.metrics === undefined || byte >= this.readOnce.length || ((this.readOnce[byte] as number) & bit) !== 0) return;
    this.readOnce[byte] = (this.readOnce[byte] as number) | bit;
    this.metrics.firstReadOfFile(seconds);
  }

  /** Bytes of a file read natively (from the memory tier): a sequential reader's read-ahead goes on. */
  noteNativeRead(inode: InodeIndex, offset: number, length: number): void {
    const attributes = this.index.inode(inode);
    if (attributes.type === 'file') this.content.noteRead?.(attributes, offset, length);
  }

  read(path: string, offset: number, length: number): Promise<Buffer> {
    return this.readInode(this.index.resolve(path), offset, length);
  }

  readFile(path: string): Promise<Buffer> {
    const inode = this.index.resolve(path);
    return this.readInode(inode, 0, this.index.inode(inode).size);
  }

  /** The spans holding a file's bytes (or every span of a directory's files): what reading it fetches. */
  spansOf(path: string): SpanRef[] {
    if (!this.content.spans) return [];
    const refs: SpanRef[] = [];
    for (const inode of this.filesUnder(this.index.resolve(path))) refs.push(...this.content.spans(inode));
    return refs;
  }

  /**
   * Caches, in the background, the spans of `paths` (files, or directories recursively) and then,
   * with `layers`, every span of the archive; with bounded concurrency and bandwidth, never ahead
   * of on-demand reads. Stopped by close(). Paths that do not exist are logged and skipped.
   */
  prefetch(options: PrefetchOptions): Promise<PrefetchResult> {
    const refs: SpanRef[] = [];
    if (this.content.spans) {
      for (const path of options.paths ?? []) {
        try {
          refs.push(...this.spansOf(path));
        } catch (err) {
          this.logger?.('warn', 'prefetch path skipped', { path, error: err instanceof Error ? err.message : String(err) });
        }
      }
      if (options.layers) refs.push(...this.content.spans());
    }
    const run = prefetchSpans(this.cache, refs, options, this.prefetchAbort.signal, { logger: this.logger, metrics: this.metrics });
    this.prefetches.add(run);
    void run.finally(() => this.prefetches.delete(run)).catch(() => undefined);
    return run;
  }

  /** The span layout of each blob (indexed like `Inode.location.layer`); empty when unknown. */
  spanLayouts(): readonly SpanLayout[] {
    return this.content.layouts?.() ?? [];
  }

  /** Entries of the disk cache as they are checked (see DiskCache.watchEntries); nothing without one. */
  watchDiskEntries(listener: EntryListener): () => void {
    return this.disk?.watchEntries(listener) ?? (() => undefined);
  }

  async close(): Promise<void> {
    this.prefetchAbort.abort();
    await Promise.allSettled([...this.prefetches]);
    await this.content.close();
    await this.cache.close();
    await this.disk?.close();
    await this.index.source.close();
  }

  private *filesUnder(inodeIndex: InodeIndex): Generator<Inode> {
    const inode = this.index.inode(inodeIndex);
    if (inode.type === 'file') {
      yield inode;
      return;
    }
    if (inode.type !== 'directory') return;
    for (const entry of this.index.entries(inodeIndex)) yield* this.filesUnder(entry.inode);
  }
}

/** oci mode: file bytes are fetched from the image's layer blobs with HTTP range requests. */
async function openRegistryContent(index: ArchiveIndex, registry: RegistryClientOptions, context: ContentContext): Promise<ContentReader> {
  const image = asImageMeta(index.meta.image);
  const repository = { registry: image.registry, repository: image.repository };
  const client = new RegistryClient(registry);
  try {
    const content = await OciContent.open(index, (digest, start, end) => client.fetchBlobRange(repository, digest, start, end), {
      cache: context.cache,
      readAheadSpans: context.readAheadSpans,
      origin: 'registry',
    });
    return {
      read: (inode, offset, length) => content.read(inode, offset, length),
      spans: (inode) => content.spans(inode),
      layouts: () => content.layouts(),
      close: async () => client.close(),
    };
  } catch (err) {
    client.close();
    throw err;
  }
}
