import { ArchiveFormatError } from '../errors.js';
import type { SpanCache, SpanRef } from './span-cache.js';

/** The spans of one blob: contiguous, sorted, covering [0, size). */
export interface SpanLayout {
  readonly count: number;
  /** Uncompressed bounds of span `i`. */
  start(i: number): number;
  end(i: number): number;
  ref(i: number): SpanRef;
}

/** Reads that start within this distance of where an earlier read ended count as sequential. */
const SEQUENTIAL_SLACK = 512 * 1024;
/** Sequential streams remembered per blob (concurrent readers of different files). */
const STREAMS = 32;
export const DEFAULT_READ_AHEAD_SPANS = 2;

/**
 * A blob read through the span tiers: a byte range becomes reads of the spans covering it (in
 * parallel). A read that continues an earlier one (a sequential reader) loads the next spans
 * ahead, up to the end of the file being read.
 */
export class SpannedBlob {
  private readonly streams: number[] = [];

  constructor(
    private readonly cache: SpanCache,
    readonly layout: SpanLayout,
    private readonly readAheadSpans = DEFAULT_READ_AHEAD_SPANS,
  ) {}

  get size(): number {
    return this.layout.count === 0 ? 0 : this.layout.end(this.layout.count - 1);
  }

  /** Bytes [from, to) of the blob. `limit` bounds read-ahead (the end of the file being read). */
  async read(from: number, to: number, limit = this.size): Promise<Buffer> {
    if (!(from >= 0 && from <= to && to <= this.size)) {
      throw new ArchiveFormatError('OUT_OF_RANGE', `read [${from}, ${to}) is outside the ${this.size}-byte blob`);
    }
    if (from === to) return Buffer.alloc(0);
    const { layout } = this;
    const first = this.spanContaining(from);
    let last = first;
    while (last + 1 < layout.count && layout.start(last + 1) < to) last++;
    // Most reads (4 KiB pages, 128 KiB kernel read-ahead) fall in one span: no array, no Promise.all.
    // The read's own fetches start before read-ahead's.
    const single = first === last ? this.readSpan(first, from, to) : undefined;
    const parts: Array<Promise<Buffer>> = [];
    if (single === undefined) for (let i = first; i <= last; i++) parts.push(this.readSpan(i, from, to));
    if (this.isSequential(from, to)) {
      for (let i = last + 1; i <= last + this.readAheadSpans && i < layout.count && layout.start(i) < limit; i++) {
        this.cache.readAhead(layout.ref(i));
      }
    }
    return single ?? Buffer.concat(await Promise.all(parts));
  }

  /** The part of [from, to) in span `i`. */
  private readSpan(i: number, from: number, to: number): Promise<Buffer> {
    const start = this.layout.start(i);
    return this.cache.read(this.layout.ref(i), Math.max(0, from - start), Math.min(this.layout.end(i), to) - start);
  }

  /** The spans holding bytes [from, to). */
  refs(from = 0, to = this.size): SpanRef[] {
    const out: SpanRef[] = [];
    if (from >= to) return out;
    for (let i = this.spanContaining(from); i < this.layout.count && this.layout.start(i) < to; i++) out.push(this.layout.ref(i));
    return out;
  }

  spanContaining(offset: number): number {
    let low = 0;
    let high = this.layout.count - 1;
    while (low < high) {
      const middle = (low + high + 1) >>> 1;
      if (this.layout.start(middle) <= offset) low = middle;
      else high = middle - 1;
    }
    return low;
  }

  /** Remembers where reads end; a read starting near one of those continues a stream. */
  private isSequential(from: number, to: number): boolean {
    if (this.readAheadSpans <= 0) return false;
    const index = this.streams.findIndex((end) => from >= end - SEQUENTIAL_SLACK && from <= end + SEQUENTIAL_SLACK);
    if (index >= 0) {
      this.streams[index] = Math.max(this.streams[index] as number, to);
      return true;
    }
    this.streams.push(to);
    if (this.streams.length > STREAMS) this.streams.shift();
    return false;
  }
}
