import { ClipError } from '../errors.js';
import { SpanRecorder } from './span-recorder.js';
import { checkSpanBytes, type LayerCompression, type LayerIndex, type LayerIndexer } from './types.js';

/** What the gzip and zstd decoders share: they are fed compressed chunks and report their state. */
export interface ChunkDecoder {
  readonly needsInput: boolean;
  readonly atCleanEnd: boolean;
  readonly position: number;
  setInput(input: Uint8Array, offset: number): void;
  describeState(): string;
}

/**
 * The input bookkeeping of an indexer over a compressed stream: chunks pushed in order, the
 * span recorder fed (and hashing) exactly the compressed bytes consumed so far, and the checks
 * that push/next/end are called in the order the LayerIndexer contract requires.
 */
export abstract class StreamingIndexer implements LayerIndexer {
  abstract readonly kind: LayerCompression;
  protected abstract readonly decoder: ChunkDecoder;
  protected readonly recorder: SpanRecorder;
  protected input: Uint8Array = new Uint8Array(0);
  protected inputOffset = 0;
  private ended = false;

  constructor(spanBytes: number) {
    this.recorder = new SpanRecorder(checkSpanBytes(spanBytes));
  }

  /** The indexer may keep views of `chunk` until later pushes: do not reuse its memory. */
  push(chunk: Uint8Array): void {
    if (this.ended) throw new ClipError('INVALID_ARGUMENT', 'push after end');
    if (!this.decoder.needsInput) throw new ClipError('INVALID_ARGUMENT', 'push before the previous chunk was drained');
    this.inputOffset += this.input.length;
    this.input = chunk;
    this.decoder.setInput(chunk, this.inputOffset);
  }

  abstract next(): Buffer | null;

  end(): LayerIndex {
    if (this.ended) throw new ClipError('INVALID_ARGUMENT', 'end called twice');
    if (!this.decoder.needsInput) throw new ClipError('INVALID_ARGUMENT', 'end before the last chunk was drained');
    this.ended = true;
    if (!this.decoder.atCleanEnd) {
      throw new ClipError('CORRUPT', `${this.kind} stream ended at compressed offset ${this.decoder.position}: ${this.decoder.describeState()}`);
    }
    const blobEnd = this.inputOffset + this.input.length;
    const total = this.uncompressedTotal();
    const { checkpoints, spans } = this.recorder.finish(blobEnd, total);
    return { kind: this.kind, checkpoints, spans, compressedSize: blobEnd, uncompressedSize: total };
  }

  protected abstract uncompressedTotal(): number;

  /** Feeds the recorder the current input up to `end` (an index into it). */
  protected feedRecorder(end: number): void {
    const from = this.recorder.fedTo - this.inputOffset;
    if (end > from) this.recorder.feed(this.input.subarray(from, end));
  }
}
