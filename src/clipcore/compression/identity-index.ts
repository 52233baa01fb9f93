/**
 * Uncompressed tar layers, so callers treat all media types alike: output is the input, and
 * checkpoints fall every spanBytes with compressed offset = uncompressed offset.
 */
import { ClipError } from '../errors.js';
import { SpanRecorder } from './span-recorder.js';
import { checkSpanBytes, DEFAULT_SPAN_BYTES, type Checkpoint, type LayerIndex, type LayerIndexer } from './types.js';

export class IdentityIndexer implements LayerIndexer {
  readonly kind = 'none';
  private readonly recorder: SpanRecorder;
  private pending: Uint8Array | null = null;
  private total = 0;
  private ended = false;

  constructor(private readonly spanBytes = DEFAULT_SPAN_BYTES) {
    this.recorder = new SpanRecorder(checkSpanBytes(spanBytes));
  }

  /** The chunk itself is handed back by next(): do not reuse its memory. */
  push(chunk: Uint8Array): void {
    if (this.ended) throw new ClipError('INVALID_ARGUMENT', 'push after end');
    if (this.pending) throw new ClipError('INVALID_ARGUMENT', 'push before the previous chunk was drained');
    if (chunk.length > 0) this.pending = chunk;
  }

  next(): Buffer | null {
    const chunk = this.pending;
    if (!chunk) return null;
    this.pending = null;
    let pos = 0;
    while (pos < chunk.length) {
      if (this.recorder.wants(this.total)) {
        this.recorder.add({ compressedOffset: this.total, bits: 0, uncompressedOffset: this.total, window: Buffer.alloc(0) });
      }
      const n = Math.min(chunk.length - pos, this.spanBytes - (this.total % this.spanBytes));
      this.recorder.feed(chunk.subarray(pos, pos + n));
      pos += n;
      this.total += n;
    }
    return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
  }

  end(): LayerIndex {
    if (this.ended) throw new ClipError('INVALID_ARGUMENT', 'end called twice');
    if (this.pending) throw new ClipError('INVALID_ARGUMENT', 'end before the last chunk was drained');
    this.ended = true;
    // An empty layer still gets its start checkpoint, so every index has at least one span.
    if (this.total === 0) {
      this.recorder.add({ compressedOffset: 0, bits: 0, uncompressedOffset: 0, window: Buffer.alloc(0) });
    }
    const { checkpoints, spans } = this.recorder.finish(this.total, this.total);
    return { kind: 'none', checkpoints, spans, compressedSize: this.total, uncompressedSize: this.total };
  }
}

/** A copy of uncompressed bytes [start, end) from data that begins at cp.compressedOffset. */
export function identityRange(cp: Checkpoint, data: Uint8Array, start: number, end: number): Buffer {
  const from = start - cp.compressedOffset;
  if (!(Number.isSafeInteger(from) && from >= 0 && start <= end)) {
    throw new ClipError('INVALID_ARGUMENT', `bad range [${start}, ${end}) from checkpoint at ${cp.uncompressedOffset}`);
  }
  if (end - cp.compressedOffset > data.length) throw new ClipError('CORRUPT', `data ends before offset ${end}`);
  return Buffer.from(data.subarray(from, from + end - start));
}
