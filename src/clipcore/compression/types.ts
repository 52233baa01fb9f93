/**
 * The shared vocabulary of layer random access: checkpoints (where decompression can restart),
 * spans (the compressed bytes between two checkpoints, with their digest) and the index of a layer.
 */
import { ClipError } from '../errors.js';

export type LayerCompression = 'gzip' | 'zstd' | 'none';

export interface Checkpoint {
  /** Byte offset in the compressed blob of the first byte holding the next block's bits. */
  compressedOffset: number;
  /** 0..7: how many high bits of byte (compressedOffset - 1) belong to the next block (zran convention). */
  bits: number;
  /** Offset in the uncompressed stream. */
  uncompressedOffset: number;
  /** Up to 32 KiB of uncompressed output preceding uncompressedOffset (empty where no history is needed). */
  window: Buffer;
}

export interface CompressedSpan {
  compressedStart: number;
  compressedEnd: number;
  uncompressedStart: number;
  uncompressedEnd: number;
  /** sha256 of compressed bytes [compressedStart, compressedEnd). */
  sha256: Buffer;
}

/** spans[i] starts at checkpoints[i]; spans cover [0, uncompressedSize) without gaps. */
export interface LayerIndex {
  readonly kind: LayerCompression;
  readonly checkpoints: readonly Checkpoint[];
  readonly spans: readonly CompressedSpan[];
  readonly compressedSize: number;
  readonly uncompressedSize: number;
}

/**
 * The first compressed byte needed to resume at `cp`. When the checkpoint sits mid-byte
 * (bits > 0) the byte before compressedOffset still holds `bits` bits of the next block, so
 * byteStart = compressedOffset - 1; otherwise byteStart = compressedOffset. A span that starts
 * at cp begins here, and the span before it ends at cp.compressedOffset (exclusive), so two
 * neighbouring spans share that one byte when bits > 0.
 */
export function byteStart(cp: Checkpoint): number {
  return cp.bits > 0 ? cp.compressedOffset - 1 : cp.compressedOffset;
}

export const MiB = 1024 * 1024;
export const DEFAULT_SPAN_BYTES = 2 * MiB;
export const MIN_SPAN_BYTES = 1 * MiB;
export const MAX_SPAN_BYTES = 16 * MiB;

/**
 * Layers whose compressed size is below this get a single checkpoint (the start) and one span,
 * and are read whole. Fetching 1 MiB costs about the same as a smaller range request (latency
 * dominates), and skipping checkpoints keeps their 32 KiB windows out of the index.
 */
export const SMALL_LAYER_BYTES = 1 * MiB;

/** Size of the buffers uncompressed output is produced into (and handed out as views of). */
export const OUTPUT_CHUNK_BYTES = 1 * MiB;

export function checkSpanBytes(spanBytes: number): number {
  if (!Number.isSafeInteger(spanBytes) || spanBytes < MIN_SPAN_BYTES || spanBytes > MAX_SPAN_BYTES) {
    throw new ClipError('INVALID_ARGUMENT', `spanBytes must be an integer in [${MIN_SPAN_BYTES}, ${MAX_SPAN_BYTES}], got ${spanBytes}`);
  }
  return spanBytes;
}

/**
 * A streaming indexer: compressed bytes in (push), uncompressed bytes out (next), index at the
 * end. Pull-based so that callers apply backpressure: drain next() until it returns null before
 * pushing again. Each piece is at most OUTPUT_CHUNK_BYTES and stays valid only until the following
 * call to next(): output buffers are reused, because fresh ones cost a page fault per 4 KiB written
 * (a third of a cold index's time went to the kernel). Copy what you keep.
 */
export interface LayerIndexer {
  readonly kind: LayerCompression;
  /** The indexer may keep views of `chunk` (and hand them out): do not reuse its memory. */
  push(chunk: Uint8Array): void;
  next(): Buffer | null;
  /** Declares the end of input (after next() returned null); throws CORRUPT if the stream is incomplete. */
  end(): LayerIndex;
}
