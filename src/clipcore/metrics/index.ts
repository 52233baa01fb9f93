export { ClipMetrics, type CacheTier, type OriginKind } from './clip-metrics.js';
export { METRICS, LATENCY_BUCKETS } from './names.js';
export { jsonLogger, silentLogger, type ClipLogger, type LogLevel } from './logger.js';
