/**
 * Every metric clipcore exports, in one place: name, help text and labels. docs/metrics.md
 * describes them; Prometheus conventions: `clip_` prefix, units in the name, `_total` on counters.
 */

/** Latency buckets from 50 µs (a warm memory read) to 60 s (a slow registry). */
export const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Why a disk cache write was given up: the errno of a failed write, or the cache's own reason. */
export const DISK_WRITE_FAILURE_REASONS = ['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EACCES', 'lock', 'busy', 'full', 'other'] as const;
export type DiskWriteFailureReason = (typeof DISK_WRITE_FAILURE_REASONS)[number];

export const METRICS = {
  spanReads: {
    name: 'clip_span_reads_total',
    help: 'Span reads by the tier that served them: memory, disk, shared (a ContentCache) or origin (every cache missed).',
    labels: ['tier'],
  },
  cacheLookups: {
    name: 'clip_cache_lookups_total',
    help: 'Lookups in each cache tier (memory, disk, shared) and their result (hit or miss).',
    labels: ['tier', 'result'],
  },
  readDuration: {
    name: 'clip_span_read_duration_seconds',
    help: 'Latency of span reads, by the tier that served them.',
    labels: ['tier'],
  },
  firstRead: {
    name: 'clip_first_read_duration_seconds',
    help: 'Latency of the first read of each file after mount.',
    labels: [],
  },
  originBytes: {
    name: 'clip_origin_fetched_bytes_total',
    help: 'Bytes fetched from each origin (registry, s3, local), verified or not.',
    labels: ['origin'],
  },
  originFetches: {
    name: 'clip_origin_fetches_total',
    help: 'Span fetches from each origin (registry, s3, local), retries included.',
    labels: ['origin'],
  },
  verificationFailures: {
    name: 'clip_span_verification_failures_total',
    help: 'Spans that failed their integrity check, by the tier that supplied them (origin, shared, disk).',
    labels: ['tier'],
  },
  readFailures: {
    name: 'clip_span_read_failures_total',
    help: 'Span reads that failed (answered EIO through FUSE).',
    labels: [],
  },
  diskSize: {
    name: 'clip_disk_cache_size_bytes',
    help: 'Bytes in the node-local disk cache directory, as last seen by this process (all processes sharing it included).',
    labels: [],
  },
  diskMax: {
    name: 'clip_disk_cache_max_bytes',
    help: 'Configured bound of the node-local disk cache.',
    labels: [],
  },
  diskEvictions: {
    name: 'clip_disk_cache_evictions_total',
    help: 'Entries this process evicted from the disk cache to stay under its bound.',
    labels: [],
  },
  diskEvictedBytes: {
    name: 'clip_disk_cache_evicted_bytes_total',
    help: 'Bytes this process evicted from the disk cache.',
    labels: [],
  },
  diskWrittenBytes: {
    name: 'clip_disk_cache_written_bytes_total',
    help: 'Bytes this process wrote into the disk cache (entries, headers included).',
    labels: [],
  },
  diskWriteFailures: {
    name: 'clip_disk_cache_write_failures_total',
    help: `Disk cache writes given up, by reason (${DISK_WRITE_FAILURE_REASONS.join(', ')}); reads go on uncached.`,
    labels: ['reason'],
  },
  prefetchSpans: {
    name: 'clip_prefetch_spans_total',
    help: 'Spans handled by background prefetch, by result (fetched, cached, failed).',
    labels: ['result'],
  },
  readAheadSpans: {
    name: 'clip_readahead_spans_total',
    help: 'Spans loaded ahead of sequential readers.',
    labels: [],
  },
} as const;
