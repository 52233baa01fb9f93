/**
 * A LayerIndexer as a Node Duplex: compressed bytes written in, uncompressed bytes read out,
 * honouring backpressure inside a chunk (a small compressed chunk can inflate to a lot), so
 * memory stays bounded by about one output chunk plus the readable high-water mark.
 */
import { Duplex } from 'node:stream';
import { ClipError } from '../errors.js';
import { createLayerIndexer } from './layer-index.js';
import { DEFAULT_SPAN_BYTES, type LayerCompression, type LayerIndex, type LayerIndexer } from './types.js';

type Callback = (err?: Error | null) => void;

export class LayerIndexStream extends Duplex {
  private readonly indexer: LayerIndexer;
  private result: LayerIndex | null = null;
  private writeDone: Callback | null = null;
  private waitingForRead = false;
  private pumping = false;

  constructor(indexer: LayerIndexer, options: { readableHighWaterMark?: number } = {}) {
    super({ readableHighWaterMark: options.readableHighWaterMark ?? 1024 * 1024 });
    this.indexer = indexer;
  }

  /** The index, once the writable side has finished (available before 'end' is emitted). */
  get index(): LayerIndex {
    if (this.result === null) throw new ClipError('INVALID_ARGUMENT', 'layer index is not complete yet');
    return this.result;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: Callback): void {
    try {
      this.indexer.push(chunk);
    } catch (err) {
      callback(err as Error);
      return;
    }
    this.writeDone = callback;
    this.pump();
  }

  override _read(): void {
    if (!this.waitingForRead) return;
    this.waitingForRead = false;
    this.pump();
  }

  override _final(callback: Callback): void {
    try {
      this.result = this.indexer.end();
    } catch (err) {
      callback(err as Error);
      return;
    }
    this.push(null);
    callback();
  }

  /** Moves output to the readable side until the chunk is used up or the reader is full. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (;;) {
        const out = this.indexer.next();
        if (out === null) {
          this.finishWrite(null);
          return;
        }
        // A copy: readers may hold chunks, and the indexer reuses its output buffers.
        if (!this.push(Buffer.from(out))) {
          this.waitingForRead = true;
          return;
        }
      }
    } catch (err) {
      this.finishWrite(err as Error);
    } finally {
      this.pumping = false;
    }
  }

  private finishWrite(err: Error | null): void {
    const done = this.writeDone;
    this.writeDone = null;
    done?.(err);
  }
}

export function createLayerIndexStream(kind: LayerCompression, spanBytes = DEFAULT_SPAN_BYTES): LayerIndexStream {
  return new LayerIndexStream(createLayerIndexer(kind, spanBytes));
}
