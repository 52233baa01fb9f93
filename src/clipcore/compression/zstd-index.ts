/**
 * Random access into zstd layers. Decoding can only restart at a frame start, so checkpoints
 * are frame boundaries (about every spanBytes of output); a single-frame layer is one span,
 * read whole on first access. Checkpoints carry no window or bits.
 */
import { ClipError } from '../errors.js';
import { StreamingIndexer } from './streaming-indexer.js';
import { DEFAULT_SPAN_BYTES, type Checkpoint } from './types.js';
import { ZstdDecoder } from './zstd-decoder.js';

export class ZstdIndexer extends StreamingIndexer {
  readonly kind = 'zstd';
  protected readonly decoder = new ZstdDecoder();

  constructor(spanBytes = DEFAULT_SPAN_BYTES) {
    super(spanBytes);
  }

  next(): Buffer | null {
    for (;;) {
      const out = this.decoder.takeOutput();
      if (out) return Buffer.from(out.buffer, out.byteOffset, out.length);
      if (this.decoder.needsInput) {
        this.feedRecorder(this.input.length);
        return null;
      }
      this.decoder.step();
      if (this.decoder.atFrameStart && this.recorder.wants(this.decoder.totalOut)) {
        const compressedOffset = this.decoder.position;
        this.feedRecorder(compressedOffset - this.inputOffset);
        this.recorder.add({ compressedOffset, bits: 0, uncompressedOffset: this.decoder.totalOut, window: Buffer.alloc(0) });
      }
    }
  }

  protected uncompressedTotal(): number {
    return this.decoder.totalOut;
  }
}

/**
 * Returns uncompressed bytes [start, end) by decoding from the frame at `cp`. `compressed`
 * holds the blob from cp.compressedOffset on, at least through the frame containing end - 1.
 */
export function inflateZstdRange(cp: Checkpoint, compressed: Uint8Array, start: number, end: number): Buffer {
  if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && cp.uncompressedOffset <= start && start <= end)) {
    throw new ClipError('INVALID_ARGUMENT', `bad range [${start}, ${end}) from checkpoint at ${cp.uncompressedOffset}`);
  }
  const result = Buffer.allocUnsafe(end - start);
  if (end === start) return result;
  const decoder = new ZstdDecoder();
  decoder.setInput(compressed, cp.compressedOffset);
  let at = cp.uncompressedOffset;
  let have = 0;
  while (have < result.length) {
    const out = decoder.takeOutput();
    if (out) {
      // Copy the part of this piece that overlaps [start + have, end).
      const from = Math.max(0, start + have - at);
      const to = Math.min(out.length, end - at);
      if (to > from) {
        result.set(out.subarray(from, to), have);
        have += to - from;
      }
      at += out.length;
      continue;
    }
    if (decoder.needsInput) {
      throw new ClipError('CORRUPT', `compressed data ended before uncompressed offset ${start + have} (${decoder.describeState()})`);
    }
    decoder.step();
  }
  return result;
}
