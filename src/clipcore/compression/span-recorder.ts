/**
 * Collects checkpoints and hashes the compressed bytes of each span while the blob streams past,
 * so no second pass over the blob is needed.
 */
import { createHash, type Hash } from 'node:crypto';
import { ClipError } from '../errors.js';
import { byteStart, SMALL_LAYER_BYTES, type Checkpoint, type CompressedSpan } from './types.js';

export class SpanRecorder {
  private readonly checkpoints: Checkpoint[] = [];
  private readonly spans: CompressedSpan[] = [];
  private spanHash: Hash | null = null;
  /** Hash of everything from the first checkpoint on, kept only while the blob may still be small. */
  private wholeHash: Hash | null = null;
  private fed = 0;
  private lastByte = 0;

  constructor(private readonly spanBytes: number) {}

  /** Blob offset up to which bytes have been fed. */
  get fedTo(): number {
    return this.fed;
  }

  /** Feeds the next blob bytes, in order, contiguous with what came before. */
  feed(data: Uint8Array): void {
    if (data.length === 0) return;
    this.spanHash?.update(data);
    if (this.wholeHash) {
      if (this.fed + data.length >= SMALL_LAYER_BYTES) this.wholeHash = null;
      else this.wholeHash.update(data);
    }
    this.lastByte = data[data.length - 1]!;
    this.fed += data.length;
  }

  /** Whether a checkpoint at this uncompressed offset would be recorded. */
  wants(uncompressedOffset: number): boolean {
    const last = this.checkpoints[this.checkpoints.length - 1];
    return last === undefined || uncompressedOffset - last.uncompressedOffset >= this.spanBytes;
  }

  /** Records a checkpoint; everything up to cp.compressedOffset must have been fed. */
  add(cp: Checkpoint): void {
    if (this.fed !== cp.compressedOffset) {
      throw new Error(`span recorder fed to ${this.fed}, checkpoint at ${cp.compressedOffset}`);
    }
    this.closeSpan(cp.compressedOffset, cp.uncompressedOffset);
    this.checkpoints.push(cp);
    this.spanHash = createHash('sha256');
    // The shared byte: its high bits open this span although it was fed for the previous one.
    const carry = cp.bits > 0 ? Buffer.of(this.lastByte) : null;
    if (carry) this.spanHash.update(carry);
    if (this.checkpoints.length === 1) {
      this.wholeHash = createHash('sha256');
      if (carry) this.wholeHash.update(carry);
    }
  }

  /** Closes the last span at the blob end; small layers collapse to one checkpoint and span. */
  finish(blobEnd: number, uncompressedEnd: number): { checkpoints: Checkpoint[]; spans: CompressedSpan[] } {
    if (this.fed !== blobEnd) throw new Error(`span recorder fed to ${this.fed}, blob ends at ${blobEnd}`);
    const first = this.checkpoints[0];
    if (first === undefined) throw new ClipError('CORRUPT', 'layer has no decodable data');
    if (blobEnd < SMALL_LAYER_BYTES && this.wholeHash) {
      const span: CompressedSpan = {
        compressedStart: byteStart(first),
        compressedEnd: blobEnd,
        uncompressedStart: first.uncompressedOffset,
        uncompressedEnd: uncompressedEnd,
        sha256: this.wholeHash.digest(),
      };
      return { checkpoints: [first], spans: [span] };
    }
    this.closeSpan(blobEnd, uncompressedEnd);
    return { checkpoints: this.checkpoints, spans: this.spans };
  }

  private closeSpan(compressedEnd: number, uncompressedEnd: number): void {
    const open = this.checkpoints[this.checkpoints.length - 1];
    if (open === undefined || this.spanHash === null) return;
    this.spans.push({
      compressedStart: byteStart(open),
      compressedEnd,
      uncompressedStart: open.uncompressedOffset,
      uncompressedEnd,
      sha256: this.spanHash.digest(),
    });
    this.spanHash = null;
  }
}
