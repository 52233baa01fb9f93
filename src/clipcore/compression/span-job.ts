/** One span to check and decompress: what the inflate pool sends a worker (all plain data). */
import { blockDigestsOf } from '../cache/disk-entry.js';
import type { ClipErrorCode } from '../errors.js';
import { readUncompressedRange } from './layer-index.js';
import type { LayerCompression } from './types.js';

export interface SpanJob {
  readonly kind: LayerCompression;
  readonly checkpoint: { readonly compressedOffset: number; readonly bits: number; readonly uncompressedOffset: number; readonly window: Uint8Array };
  readonly span: { readonly compressedStart: number; readonly compressedEnd: number; readonly uncompressedStart: number; readonly uncompressedEnd: number; readonly sha256: Uint8Array };
  /** The span's compressed bytes, [span.compressedStart, span.compressedEnd) of the layer. */
  readonly bytes: Uint8Array;
  /**
   * Also hash the decoded span in blocks of this many bytes (the disk cache entry's block
   * digests), on the thread that decoded it.
   */
  readonly digestBlockBytes?: number;
}

/**
 * Whether a reader waits on a decode. It may turn true while the job is queued (a reader comes to
 * need a span being read ahead): the job then goes before the other read-ahead.
 */
export interface Urgency {
  urgent: boolean;
}

/** A decoded span, with its block digests when the job asked for them. */
export interface DecodedSpanBytes {
  readonly data: Buffer;
  readonly blockDigests?: { readonly blockBytes: number; readonly digests: Buffer };
}

export type SpanJobReply =
  | { readonly id: number; readonly data: Uint8Array; readonly digests?: Uint8Array }
  | { readonly id: number; readonly code: ClipErrorCode; readonly message: string };

const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/**
 * Checks the span's bytes against its sha256 (DIGEST_MISMATCH when they differ: nothing is
 * decompressed from unverified bytes), then decompresses the whole span from its checkpoint.
 */
export async function decodeSpan(job: SpanJob): Promise<DecodedSpanBytes> {
  const { span } = job;
  const checkpoint = { ...job.checkpoint, window: asBuffer(job.checkpoint.window) };
  const spans = [{ ...span, sha256: asBuffer(span.sha256) }];
  const data = await readUncompressedRange(job.kind, { checkpoints: [checkpoint], spans }, async () => asBuffer(job.bytes), span.uncompressedStart, span.uncompressedEnd);
  const blockBytes = job.digestBlockBytes;
  if (blockBytes === undefined || !(blockBytes > 0)) return { data };
  return { data, blockDigests: { blockBytes, digests: blockDigestsOf(data, blockBytes) } };
}
