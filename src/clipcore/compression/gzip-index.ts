/**
 * Random access into gzip layers (like zlib's examples/zran.c). Indexing inflates the layer once,
 * streaming, and records a checkpoint about every spanBytes of output at a deflate block
 * boundary or member start; a range is later produced by inflating from the checkpoint before it.
 */
import { ClipError } from '../errors.js';
import { GzipDecoder, GzipEvent } from './gzip-decoder.js';
import { StreamingIndexer } from './streaming-indexer.js';
import {
  byteStart,
  DEFAULT_SPAN_BYTES,
  OUTPUT_CHUNK_BYTES,
  type Checkpoint,
} from './types.js';

export type { Checkpoint, CompressedSpan, LayerIndex } from './types.js';

/** Deflate distances reach back at most 32 KiB, so that much history restores a decoder. */
export const WINDOW_BYTES = 32 * 1024;

export class GzipIndexer extends StreamingIndexer {
  readonly kind = 'gzip';
  protected readonly decoder = GzipDecoder.fromStart();
  /**
   * Output goes into `cur` at curPos and is handed out as views; `prev` is the previous (full)
   * buffer, kept for windows. When `cur` is full the two swap: views of `prev` were consumed
   * long since (see LayerIndexer.next). Plain Uint8Arrays, not Buffers: see GzipDecoder.setInput.
   */
  private cur = new Uint8Array(OUTPUT_CHUNK_BYTES);
  private prev: Uint8Array<ArrayBuffer> | null = null;
  private curPos = 0;
  private emitted = 0;
  private total = 0;
  private memberOut = 0;

  constructor(spanBytes = DEFAULT_SPAN_BYTES) {
    super(spanBytes);
  }

  next(): Buffer | null {
    for (;;) {
      if (this.curPos === this.cur.length) {
        const reused = this.prev;
        this.prev = this.cur;
        this.cur = reused ?? new Uint8Array(OUTPUT_CHUNK_BYTES);
        this.curPos = this.emitted = 0;
      }
      if (this.decoder.needsInput) {
        this.feedRecorder(this.input.length);
        return this.emit();
      }
      const n = this.decoder.step(this.cur, this.curPos, this.cur.length - this.curPos);
      this.curPos += n;
      this.total += n;
      this.memberOut += n;
      if (this.decoder.event !== GzipEvent.None) this.maybeCheckpoint();
      if (this.curPos === this.cur.length) return this.emit();
    }
  }

  protected uncompressedTotal(): number {
    return this.total;
  }

  private emit(): Buffer | null {
    if (this.emitted === this.curPos) return null;
    const out = Buffer.from(this.cur.buffer, this.cur.byteOffset + this.emitted, this.curPos - this.emitted);
    this.emitted = this.curPos;
    return out;
  }

  private maybeCheckpoint(): void {
    const memberStart = this.decoder.event === GzipEvent.MemberStart;
    if (memberStart) this.memberOut = 0;
    if (!this.recorder.wants(this.total)) return;
    const compressedOffset = this.decoder.position;
    this.feedRecorder(compressedOffset - this.inputOffset);
    this.recorder.add({
      compressedOffset,
      bits: memberStart ? 0 : this.decoder.pendingBits,
      uncompressedOffset: this.total,
      window: this.window(Math.min(WINDOW_BYTES, this.memberOut)),
    });
  }

  /** A copy of the last `len` output bytes, which lie in prev's tail and cur's head. */
  private window(len: number): Buffer {
    const win = Buffer.allocUnsafe(len);
    const fromCur = Math.min(len, this.curPos);
    win.set(this.cur.subarray(this.curPos - fromCur, this.curPos), len - fromCur);
    if (fromCur < len) {
      const prev = this.prev!;
      win.set(prev.subarray(prev.length - (len - fromCur)), 0);
    }
    return win;
  }
}

/**
 * Returns uncompressed bytes [start, end) by inflating from `cp`. `compressed` holds the blob
 * from byteStart(cp) on, at least up to the end of the span containing end - 1.
 */
export function inflateRange(cp: Checkpoint, compressed: Uint8Array, start: number, end: number): Buffer {
  if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && cp.uncompressedOffset <= start && start <= end)) {
    throw new ClipError('INVALID_ARGUMENT', `bad range [${start}, ${end}) from checkpoint at ${cp.uncompressedOffset}`);
  }
  const result = new Uint8Array(end - start); // not a Buffer: see GzipDecoder.setInput
  if (end === start) return Buffer.alloc(0);
  if (compressed.length === 0) throw new ClipError('CORRUPT', 'no compressed data for range');
  const decoder = GzipDecoder.atCheckpoint(cp, compressed[0]!);
  try {
    decoder.setInput(compressed, byteStart(cp), cp.bits > 0 ? 1 : 0);
    // Output before `start` is inflated into a scratch buffer and dropped.
    const scratch = new Uint8Array(Math.min(OUTPUT_CHUNK_BYTES, Math.max(start - cp.uncompressedOffset, 1)));
    let skip = start - cp.uncompressedOffset;
    let have = 0;
    while (have < result.length) {
      if (decoder.needsInput) {
        throw new ClipError('CORRUPT', `compressed data ended before uncompressed offset ${start + have} (${decoder.describeState()})`);
      }
      if (skip > 0) skip -= decoder.step(scratch, 0, Math.min(skip, scratch.length));
      else have += decoder.step(result, have, result.length - have);
    }
  } finally {
    decoder.close();
  }
  return Buffer.from(result.buffer, result.byteOffset, result.length);
}
