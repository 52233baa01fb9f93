import { createHash } from 'node:crypto';
import { SectionKind } from '../archive/format.js';
import type { ArchiveIndex } from '../archive/archive-index.js';
import type { Inode } from '../archive/model.js';
import { SpanCache, type SpanRef } from '../cache/span-cache.js';
import { DEFAULT_READ_AHEAD_SPANS, SpannedBlob, type SpanLayout } from '../cache/spanned-blob.js';
import { decodeSpanOffThread, warmInflatePool } from '../compression/inflate-pool.js';
import { ArchiveFormatError } from '../errors.js';
import type { OriginKind } from '../metrics/clip-metrics.js';
import { clampRead, type ContentReader } from '../read/content-reader.js';
import { asImageMeta, type ImageMeta } from './image-meta.js';
import { decodeLayerIndexes, inflateWindow, type StoredLayerIndex } from './layer-index-codec.js';

/** Fetches bytes [start, end) of a layer blob from wherever it lives (the registry). */
export type LayerBlobFetcher = (layerDigest: string, start: number, end: number) => Promise<Buffer>;

/** Decompressed spans kept in memory when no span cache is given. */
const DEFAULT_MEMORY_BYTES = 256 * 1024 * 1024;

export interface OciContentOptions {
  /** The span tiers (memory, disk, shared). Default: a memory-only cache of `memoryBytes`. */
  readonly cache?: SpanCache;
  readonly memoryBytes?: number;
  /** Spans loaded ahead of sequential readers. Default 2. */
  readonly readAheadSpans?: number;
  /** Metrics label of where layer blobs come from. Default `registry`. */
  readonly origin?: OriginKind;
}

/**
 * OCI mode: a file's bytes are a range of one layer's uncompressed tar stream. A read loads the
 * layer spans covering it through the span tiers: on a miss, the compressed span is fetched and
 * verified, its checkpoint window fetched from the archive, and the span inflated from that
 * checkpoint, never from the layer start. Caches hold whole decompressed spans, so sequential
 * reads inflate each span once and warm reads never inflate.
 */
export class OciContent implements ContentReader {
  private readonly blobs: SpannedBlob[];
  private readonly keys: Array<Array<string | undefined>>;
  private readonly imageName: string;
  private readonly origin: OriginKind;

  private constructor(
    private readonly index: ArchiveIndex,
    readonly image: ImageMeta,
    private readonly layers: readonly StoredLayerIndex[],
    private readonly fetchBlob: LayerBlobFetcher,
    options: OciContentOptions,
  ) {
    const cache = options.cache ?? new SpanCache({ memoryBytes: options.memoryBytes ?? DEFAULT_MEMORY_BYTES });
    this.imageName = `${image.registry}/${image.repository}@${image.manifestDigest}`;
    this.origin = options.origin ?? 'registry';
    this.keys = layers.map((layer) => new Array<string | undefined>(layer.spans.length));
    this.blobs = layers.map(
      (layer, number) =>
        new SpannedBlob(
          cache,
          {
            count: layer.spans.length,
            start: (i) => (layer.spans[i] as StoredLayerIndex['spans'][number]).uncompressedStart,
            end: (i) => (layer.spans[i] as StoredLayerIndex['spans'][number]).uncompressedEnd,
            ref: (i) => this.spanRef(number, i),
          },
          options.readAheadSpans ?? DEFAULT_READ_AHEAD_SPANS,
        ),
    );
  }

  static async open(index: ArchiveIndex, fetchBlob: LayerBlobFetcher, options: number | OciContentOptions = {}): Promise<OciContent> {
    const image = asImageMeta(index.meta.image);
    const windowsLength = index.section(SectionKind.Windows)?.length ?? 0;
    const layers = decodeLayerIndexes(await index.readSection(SectionKind.LayerIndex), image.layers.length, windowsLength);
    // Inflate threads boot while the mount waits for its first read.
    if (layers.some((layer) => layer.kind !== 'none')) warmInflatePool();
    return new OciContent(index, image, layers, fetchBlob, typeof options === 'number' ? { memoryBytes: options } : options);
  }

  async read(inode: Inode, offset: number, length: number): Promise<Buffer> {
    const { start, end } = clampRead(inode, offset, length);
    if (end === start) return Buffer.alloc(0);
    const { blob, base } = this.locate(inode);
    if (base + inode.size > blob.size) throw new ArchiveFormatError('OUT_OF_RANGE', 'a file extends past the end of its layer');
    return blob.read(base + start, base + end, base + inode.size);
  }

  noteRead(inode: Inode, offset: number, length: number): void {
    const { start, end } = clampRead(inode, offset, length);
    const { blob, base } = this.locate(inode);
    blob.noteRead(base + start, base + end, base + inode.size);
  }

  spans(inode?: Inode): SpanRef[] {
    if (inode === undefined) return this.blobs.flatMap((blob) => blob.refs());
    if (inode.size === 0) return [];
    const { blob, base } = this.locate(inode);
    return blob.refs(base, Math.min(blob.size, base + inode.size));
  }

  layouts(): SpanLayout[] {
    return this.blobs.map((blob) => blob.layout);
  }

  async close(): Promise<void> {}

  private locate(inode: Inode): { blob: SpannedBlob; base: number } {
    const location = inode.location;
    const blob = location ? this.blobs[location.layer] : undefined;
    if (!location || !blob) throw new ArchiveFormatError('CORRUPT', 'a regular file has no valid layer location');
    return { blob, base: location.offset };
  }

  /**
   * The cache key of a decompressed span: what determines its bytes is the layer blob and where
   * in it the span starts and ends (docs/cache.md). The span's compressed sha256 alone would not
   * do: the same compressed bytes inflate differently after a different window.
   */
  private keyFor(layerNumber: number, spanNumber: number): string {
    const keys = this.keys[layerNumber] as Array<string | undefined>;
    let key = keys[spanNumber];
    if (key === undefined) {
      const span = (this.layers[layerNumber] as StoredLayerIndex).spans[spanNumber] as StoredLayerIndex['spans'][number];
      const digest = (this.image.layers[layerNumber] as ImageMeta['layers'][number]).digest;
      key = createHash('sha256')
        .update(
          `clip-oci-span/1\n${digest}\n${span.compressedStart}-${span.compressedEnd}\n` +
            `${span.uncompressedStart}-${span.uncompressedEnd}\n${span.sha256.toString('hex')}\n`,
        )
        .digest('hex');
      keys[spanNumber] = key;
    }
    return key;
  }

  private spanRef(layerNumber: number, spanNumber: number): SpanRef {
    const layer = this.layers[layerNumber] as StoredLayerIndex;
    const span = layer.spans[spanNumber] as StoredLayerIndex['spans'][number];
    const stored = layer.checkpoints[spanNumber];
    const digest = (this.image.layers[layerNumber] as ImageMeta['layers'][number]).digest;
    let window: Promise<Buffer> | undefined;
    const loadWindow = (): Promise<Buffer> => {
      if (!stored) return Promise.reject(new ArchiveFormatError('CORRUPT', `layer ${layerNumber} has no checkpoint ${spanNumber}`));
      window ??= stored.windowLength === 0
        ? Promise.resolve(Buffer.alloc(0))
        : this.readWindow(stored.windowOffset, stored.windowLength).then(inflateWindow);
      return window;
    };
    const fetchRange = (start: number, end: number): Promise<Buffer> => {
      // The checkpoint window comes from the archive: fetch it alongside the span.
      loadWindow().catch(() => undefined);
      return this.fetchBlob(digest, start, end);
    };
    return {
      key: this.keyFor(layerNumber, spanNumber),
      length: span.uncompressedEnd - span.uncompressedStart,
      originKey: span.sha256.toString('hex'),
      originLength: span.compressedEnd - span.compressedStart,
      origin: this.origin,
      image: this.imageName,
      layer: digest,
      span: spanNumber,
      fetchOrigin: () => fetchRange(span.compressedStart, span.compressedEnd),
      originRange: { blob: digest, start: span.compressedStart, end: span.compressedEnd, fetch: fetchRange },
      // Checked against the span's sha256, then inflated from its checkpoint (and its blocks
      // hashed for the disk tier), on an inflate thread.
      decode: async (bytes, { urgency = { urgent: true }, blockDigests } = {}) => {
        const { compressedOffset, bits, uncompressedOffset } = stored as NonNullable<typeof stored>;
        const checkpoint = { compressedOffset, bits, uncompressedOffset, window: await loadWindow() };
        return decodeSpanOffThread({ kind: layer.kind, checkpoint, span, bytes, digestBlockBytes: blockDigests }, urgency);
      },
    };
  }

  private async readWindow(offset: number, length: number): Promise<Buffer> {
    const section = this.index.section(SectionKind.Windows);
    if (!section) throw new ArchiveFormatError('CORRUPT', 'the archive has checkpoint windows but no Windows section');
    const bytes = await this.index.source.read(section.offset + offset, length);
    if (bytes.length !== length) throw new ArchiveFormatError('TRUNCATED', 'a checkpoint window is cut short');
    return bytes;
  }
}
