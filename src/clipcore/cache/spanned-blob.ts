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
/** How far read-ahead grows while a reader keeps catching up with it. */
const MAX_READ_AHEAD_SPANS = 16;

/** A sequential reader: where its reads end, and how far ahead of it spans are loaded. */
interface Stream {
  end: number;
  /**
   * Spans kept loading ahead: starts at readAheadSpans, doubles at a refill if the reader caught
   * up with read-ahead since the last one (waited for a span it had asked for), up to
   * MAX_READ_AHEAD_SPANS.
   */
  window: number;
  /** Whether a read since the last refill found a span read ahead not yet loaded (it waited for it). */
  caughtUp: boolean;
  /** The last span read ahead (-1: none yet). */
  ahead: number;
  /** The end of the file its last read was in. */
  limit: number;
  /**
   * Whether it went on from one file into the next (tar, cp -r, an unpacker reading files in
   * layer order): then read-ahead runs past the end of the file being read.
   */
  acrossFiles: boolean;
}

/**
 * A blob read through the span tiers: a byte range becomes reads of the spans covering it (in
 * parallel). A read that continues an earlier one (a sequential reader) loads the next spans
 * ahead, up to the end of the file being read (or further, once the reader has gone on from one
 * file into the next): the window doubles while the reader catches up with it (it had to wait for
 * a span read ahead: loading is what holds it back) and stays as it is while the spans are ready
 * before the reader gets to them (a slow reader, such as `tar` of small files, then never has
 * many spans loaded for nothing past where it stops). A read elsewhere (a jump) starts a new
 * stream with no read-ahead. Refills wait until half the window has been read, so that the spans
 * asked for at once are neighbours the cache can fetch in one request.
 */
export class SpannedBlob {
  private readonly streams: Stream[] = [];

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
    // Whether the last span was loaded already: a sequential reader that finds it still loading
    // has caught up with read-ahead.
    const lastRef = layout.ref(last);
    const ready = this.cache.has(lastRef);
    const single = first === last ? this.readSpan(first, from, to, lastRef) : undefined;
    const parts: Array<Promise<Buffer>> = [];
    if (single === undefined) for (let i = first; i <= last; i++) parts.push(this.readSpan(i, from, to, i === last ? lastRef : layout.ref(i)));
    const stream = this.follow(from, to, limit);
    if (stream !== undefined) {
      if (!ready && last <= stream.ahead) stream.caughtUp = true;
      this.readAhead(stream, last, stream.acrossFiles ? this.size : limit);
    }
    return single ?? Buffer.concat(await Promise.all(parts));
  }

  /**
   * Bytes [from, to) were read without this blob (served natively from memory): read-ahead
   * follows the reader as read() would.
   */
  noteRead(from: number, to: number, limit = this.size): void {
    if (!(from >= 0 && from < to && to <= this.size)) return;
    // Only an existing stream is followed: the log of native reads arrives late, and a late note
    // of bytes behind a stream must not start a stream of its own.
    const stream = this.follow(from, to, limit, false);
    if (stream !== undefined) this.readAhead(stream, this.spanContaining(to - 1), stream.acrossFiles ? this.size : limit);
  }

  /** Loads spans ahead of a sequential reader whose read ended in span `last`. */
  private readAhead(stream: Stream, last: number, limit: number): void {
    const { layout } = this;
    if (stream.ahead - last >= Math.ceil(stream.window / 2)) return;
    // A reader that waited for a span read ahead is held back by loading: load further ahead.
    if (stream.caughtUp) stream.window = Math.min(Math.max(MAX_READ_AHEAD_SPANS, this.readAheadSpans), stream.window * 2);
    stream.caughtUp = false;
    const refs: SpanRef[] = [];
    let i = Math.max(last, stream.ahead) + 1;
    for (; i <= last + stream.window && i < layout.count && layout.start(i) < limit; i++) refs.push(layout.ref(i));
    if (refs.length === 0) return;
    stream.ahead = i - 1;
    this.cache.readAhead(refs);
  }

  /** The part of [from, to) in span `i`. */
  private readSpan(i: number, from: number, to: number, ref: SpanRef): Promise<Buffer> {
    const start = this.layout.start(i);
    return this.cache.read(ref, Math.max(0, from - start), Math.min(this.layout.end(i), to) - start);
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

  /**
   * Remembers where reads end; a read starting near one of those continues that stream (returned).
   * Any other read starts a new stream, without read-ahead (undefined).
   */
  private follow(from: number, to: number, limit: number, create = true): Stream | undefined {
    if (this.readAheadSpans <= 0) return undefined;
    // A read anywhere in what the stream loaded ahead continues it: the reads between may have been
    // served natively (from memory) and be noted only later.
    const reach = (s: Stream): number => (s.ahead >= 0 && s.ahead < this.layout.count ? Math.max(s.end, this.layout.end(s.ahead)) : s.end);
    const stream = this.streams.find((s) => from >= s.end - SEQUENTIAL_SLACK && from <= reach(s) + SEQUENTIAL_SLACK);
    if (stream !== undefined) {
      stream.end = Math.max(stream.end, to);
      if (limit > stream.limit) stream.acrossFiles = true;
      stream.limit = limit;
      return stream;
    }
    if (!create) return undefined;
    this.streams.push({ end: to, window: this.readAheadSpans, caughtUp: false, ahead: -1, limit, acrossFiles: false });
    if (this.streams.length > STREAMS) this.streams.shift();
    return undefined;
  }
}
