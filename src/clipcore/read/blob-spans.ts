import { ArchiveFormatError, ClipError } from '../errors.js';
import { sha256 } from '../archive/format.js';
import { SpanLoader } from './span-loader.js';

/**
 * A blob (the local data section, an S3 data object) split into fixed-size spans, each with a
 * sha256 recorded at creation. Reads fetch whole spans, verify them, and cache them in memory.
 */
export class VerifiedBlob {
  private readonly loader: SpanLoader<number>;
  private readonly spanCount: number;

  constructor(
    private readonly fetchRange: (offset: number, length: number) => Promise<Buffer>,
    private readonly blobLength: number,
    private readonly spanBytes: number,
    private readonly digests: Buffer,
    private readonly description: string,
    memoryBytes = 64 * 1024 * 1024,
  ) {
    this.spanCount = Math.ceil(blobLength / spanBytes);
    if (digests.length !== this.spanCount * 32) {
      throw new ArchiveFormatError('CORRUPT', `${description}: ${digests.length / 32} span digests for ${this.spanCount} spans`);
    }
    this.loader = new SpanLoader((span) => this.fetchSpan(span), memoryBytes);
  }

  /** Reads blob bytes [offset, offset + length). */
  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.blobLength) {
      throw new ArchiveFormatError('OUT_OF_RANGE', `${this.description}: read [${offset}, +${length}) is outside the ${this.blobLength}-byte data`);
    }
    if (length === 0) return Buffer.alloc(0);
    const first = Math.floor(offset / this.spanBytes);
    const last = Math.floor((offset + length - 1) / this.spanBytes);
    const spans = await Promise.all(range(first, last).map((span) => this.loader.load(span)));
    const joined = spans.length === 1 ? (spans[0] as Buffer) : Buffer.concat(spans);
    const skip = offset - first * this.spanBytes;
    return joined.subarray(skip, skip + length);
  }

  private async fetchSpan(span: number): Promise<Buffer> {
    const start = span * this.spanBytes;
    const length = Math.min(this.spanBytes, this.blobLength - start);
    const data = await this.fetchRange(start, length);
    if (data.length !== length) {
      throw new ArchiveFormatError('TRUNCATED', `${this.description}: span ${span} is ${data.length} bytes, expected ${length}`);
    }
    if (!sha256(data).equals(this.digests.subarray(span * 32, span * 32 + 32))) {
      throw new ClipError('DIGEST_MISMATCH', `${this.description}: span ${span} (bytes ${start}..${start + length}) fails its sha256 check`);
    }
    return data;
  }
}

function range(first: number, last: number): number[] {
  const out: number[] = [];
  for (let i = first; i <= last; i++) out.push(i);
  return out;
}
