// Random access into compressed OCI layers: index while streaming, read ranges by span.
export {
  byteStart,
  checkSpanBytes,
  DEFAULT_SPAN_BYTES,
  MiB,
  MAX_SPAN_BYTES,
  MIN_SPAN_BYTES,
  OUTPUT_CHUNK_BYTES,
  SMALL_LAYER_BYTES,
  type Checkpoint,
  type CompressedSpan,
  type LayerCompression,
  type LayerIndex,
  type LayerIndexer,
} from './types.js';
export { GzipIndexer, inflateRange, WINDOW_BYTES } from './gzip-index.js';
export { ZstdIndexer, inflateZstdRange } from './zstd-index.js';
export { ZSTD_MAX_WINDOW } from './zstd-decoder.js';
export { IdentityIndexer, identityRange } from './identity-index.js';
export { spansForRange, type RangePlan } from './range-plan.js';
export {
  createLayerIndexer,
  layerCompressionForMediaType,
  readUncompressedRange,
  type FetchCompressed,
} from './layer-index.js';
export { createLayerIndexStream, LayerIndexStream } from './layer-index-stream.js';
export { inflateBackend, type InflateBackend } from './raw-inflate.js';
