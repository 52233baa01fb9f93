import { ArchiveFormatError, ClipError } from '../errors.js';
import { sha256 } from '../archive/format.js';
import { SpanCache, type SpanRef } from '../cache/span-cache.js';
import { DEFAULT_READ_AHEAD_SPANS, SpannedBlob, type SpanLayout } from '../cache/spanned-blob.js';
import type { OriginKind } from '../metrics/clip-metrics.js';

export interface VerifiedBlobOptions {
  /** The span tiers (memory, disk, shared). Default: a memory-only cache of `memoryBytes`. */
  readonly cache?: SpanCache;
  readonly memoryBytes?: number;
  /** Metrics label of the origin: `local` (the archive's data section, default) or `s3`. */
  readonly origin?: OriginKind;
  /** Names the archive or image in logs. Default: the description. */
  readonly image?: string;
  /** Spans loaded ahead of sequential readers. Default 2. */
  readonly readAheadSpans?: number;
}

/**
 * A blob (the local data section, an S3 data object) split into fixed-size spans, each with a
 * sha256 recorded at creation. Reads fetch whole spans, verify them, and cache them through the
 * span tiers. A span is named by its sha256 in every cache: the key is a digest of the content.
 */
export class VerifiedBlob {
  private readonly blob: SpannedBlob;
  private readonly spanCount: number;
  private readonly origin: OriginKind;
  private readonly image: string;

  constructor(
    private readonly fetchRange: (offset: number, length: number) => Promise<Buffer>,
    private readonly blobLength: number,
    private readonly spanBytes: number,
    private readonly digests: Buffer,
    private readonly description: string,
    options: number | VerifiedBlobOptions = {},
  ) {
    const settings: VerifiedBlobOptions = typeof options === 'number' ? { memoryBytes: options } : options;
    this.spanCount = Math.ceil(blobLength / spanBytes);
    if (digests.length !== this.spanCount * 32) {
      throw new ArchiveFormatError('CORRUPT', `${description}: ${digests.length / 32} span digests for ${this.spanCount} spans`);
    }
    this.origin = settings.origin ?? 'local';
    this.image = settings.image ?? description;
    const cache = settings.cache ?? new SpanCache({ memoryBytes: settings.memoryBytes ?? 64 * 1024 * 1024 });
    const layout: SpanLayout = {
      count: this.spanCount,
      start: (i) => i * spanBytes,
      end: (i) => Math.min(blobLength, (i + 1) * spanBytes),
      ref: (i) => this.spanRef(i),
    };
    this.blob = new SpannedBlob(cache, layout, settings.readAheadSpans ?? DEFAULT_READ_AHEAD_SPANS);
  }

  /** Reads blob bytes [offset, offset + length); read-ahead stays below `limit` (a file's end). */
  async read(offset: number, length: number, limit?: number): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.blobLength) {
      throw new ArchiveFormatError('OUT_OF_RANGE', `${this.description}: read [${offset}, +${length}) is outside the ${this.blobLength}-byte data`);
    }
    if (length === 0) return Buffer.alloc(0);
    return this.blob.read(offset, offset + length, limit);
  }

  /** Bytes [offset, offset + length) were read natively: read-ahead follows (see SpannedBlob.noteRead). */
  noteRead(offset: number, length: number, limit?: number): void {
    this.blob.noteRead(offset, offset + length, limit);
  }

  get layout(): SpanLayout {
    return this.blob.layout;
  }

  /** The spans holding bytes [offset, offset + length) (default: all of them). */
  refs(offset = 0, length = this.blobLength - offset): SpanRef[] {
    return this.blob.refs(offset, Math.min(this.blobLength, offset + length));
  }

  private spanRef(span: number): SpanRef {
    const start = span * this.spanBytes;
    const length = Math.min(this.spanBytes, this.blobLength - start);
    const digest = this.digests.subarray(span * 32, span * 32 + 32);
    const key = digest.toString('hex');
    return {
      key,
      length,
      originKey: key,
      originLength: length,
      origin: this.origin,
      image: this.image,
      layer: 'data',
      span,
      fetchOrigin: () => this.fetchRange(start, length),
      // Read-ahead fetches neighbouring spans in one ranged GET (s3) or read (local).
      originRange: { blob: this.description, start, end: start + length, fetch: (from, to) => this.fetchRange(from, to - from) },
      decode: async (data) => {
        if (data.length !== length) {
          throw new ArchiveFormatError('TRUNCATED', `${this.description}: span ${span} is ${data.length} bytes, expected ${length}`);
        }
        if (!sha256(data).equals(digest)) {
          throw new ClipError('DIGEST_MISMATCH', `${this.description}: span ${span} (bytes ${start}..${start + length}) fails its sha256 check`);
        }
        return { data };
      },
    };
  }
}
