export { collectChunks, type ContentCache } from './content-cache.js';
export { DiskCache, DEFAULT_DISK_CACHE_BYTES, fileKey, type DiskCacheOptions } from './disk-cache.js';
export { SpanCache, DEFAULT_MEMORY_CACHE_BYTES, type SpanCacheOptions, type SpanRef } from './span-cache.js';
export { SpannedBlob, DEFAULT_READ_AHEAD_SPANS, type SpanLayout } from './spanned-blob.js';
export { prefetchSpans, type PrefetchOptions, type PrefetchResult } from './prefetch.js';
