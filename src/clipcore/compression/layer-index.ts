/**
 * One small interface over gzip, zstd and uncompressed layers: index while streaming, then read
 * any uncompressed range by fetching only the spans it needs, each checked against its sha256.
 */
import { createHash } from 'node:crypto';
import { ClipError } from '../errors.js';
import { inflateRange, GzipIndexer } from './gzip-index.js';
import { identityRange, IdentityIndexer } from './identity-index.js';
import { spansForRange } from './range-plan.js';
import { DEFAULT_SPAN_BYTES, type LayerCompression, type LayerIndex, type LayerIndexer } from './types.js';
import { inflateZstdRange, ZstdIndexer } from './zstd-index.js';

export function createLayerIndexer(kind: LayerCompression, spanBytes = DEFAULT_SPAN_BYTES): LayerIndexer {
  switch (kind) {
    case 'gzip':
      return new GzipIndexer(spanBytes);
    case 'zstd':
      return new ZstdIndexer(spanBytes);
    case 'none':
      return new IdentityIndexer(spanBytes);
    default:
      throw new ClipError('UNSUPPORTED_MEDIA_TYPE', `unknown layer compression ${String(kind)}`);
  }
}

const MEDIA_TYPES: ReadonlyMap<string, LayerCompression> = new Map([
  ['application/vnd.oci.image.layer.v1.tar', 'none'],
  ['application/vnd.oci.image.layer.v1.tar+gzip', 'gzip'],
  ['application/vnd.oci.image.layer.v1.tar+zstd', 'zstd'],
  ['application/vnd.oci.image.layer.nondistributable.v1.tar', 'none'],
  ['application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', 'gzip'],
  ['application/vnd.oci.image.layer.nondistributable.v1.tar+zstd', 'zstd'],
  ['application/vnd.docker.image.rootfs.diff.tar', 'none'],
  ['application/vnd.docker.image.rootfs.diff.tar.gzip', 'gzip'],
  ['application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', 'gzip'],
]);

/** The compression of a layer media type; UNSUPPORTED_MEDIA_TYPE for anything else. */
export function layerCompressionForMediaType(mediaType: string): LayerCompression {
  const kind = MEDIA_TYPES.get(mediaType);
  if (kind === undefined) throw new ClipError('UNSUPPORTED_MEDIA_TYPE', `unsupported layer media type ${mediaType}`);
  return kind;
}

/** Supplies compressed bytes [start, end) of the layer blob (HTTP range, S3, cache...). */
export type FetchCompressed = (start: number, end: number) => Promise<Buffer>;

/**
 * Reads uncompressed bytes [start, end) of a layer: one fetch of the minimal run of spans,
 * each verified against its sha256 (DIGEST_MISMATCH names the span), then decompressed from
 * the run's first checkpoint.
 */
export async function readUncompressedRange(
  kind: LayerCompression,
  index: Pick<LayerIndex, 'checkpoints' | 'spans'>,
  fetchCompressed: FetchCompressed,
  start: number,
  end: number,
): Promise<Buffer> {
  const plan = spansForRange(index.spans, start, end);
  if (plan === null) return Buffer.alloc(0);
  const cp = index.checkpoints[plan.firstSpan];
  if (cp === undefined) throw new ClipError('CORRUPT', `layer index has no checkpoint for span ${plan.firstSpan}`);
  const data = await fetchCompressed(plan.compressedStart, plan.compressedEnd);
  const want = plan.compressedEnd - plan.compressedStart;
  if (data.length !== want) {
    throw new ClipError('CORRUPT', `fetched ${data.length} bytes of compressed range [${plan.compressedStart}, ${plan.compressedEnd}), expected ${want}`);
  }
  for (let i = plan.firstSpan; i <= plan.lastSpan; i++) {
    const span = index.spans[i]!;
    const bytes = data.subarray(span.compressedStart - plan.compressedStart, span.compressedEnd - plan.compressedStart);
    if (!createHash('sha256').update(bytes).digest().equals(span.sha256)) {
      throw new ClipError('DIGEST_MISMATCH', `span ${i} (compressed bytes [${span.compressedStart}, ${span.compressedEnd})) does not match its sha256`);
    }
  }
  switch (kind) {
    case 'gzip':
      return inflateRange(cp, data, start, end);
    case 'zstd':
      return inflateZstdRange(cp, data, start, end);
    case 'none':
      return identityRange(cp, data, start, end);
    default:
      throw new ClipError('UNSUPPORTED_MEDIA_TYPE', `unknown layer compression ${String(kind)}`);
  }
}
