import { setTimeout as delay } from 'node:timers/promises';
import type { ClipMetrics } from '../metrics/clip-metrics.js';
import type { ClipLogger } from '../metrics/logger.js';
import type { SpanCache, SpanRef } from './span-cache.js';

export interface PrefetchOptions {
  /** Files (or directories, recursively) to fetch first, in this order: an image's hot paths. */
  readonly paths?: readonly string[];
  /** Then every span of every layer (oci) or of the data blob (local, s3). Default false. */
  readonly layers?: boolean;
  /** Spans fetched at once. Default 2. */
  readonly concurrency?: number;
  /** Cap on origin bytes per second. Default: no cap. */
  readonly bytesPerSecond?: number;
}

export interface PrefetchResult {
  readonly spans: number;
  /** Fetched from a shared cache or the origin. */
  readonly fetched: number;
  /** Already cached. */
  readonly cached: number;
  readonly failed: number;
  readonly originBytes: number;
}

/**
 * Background prefetch: caches spans (on disk, or in memory without a disk cache) with a bounded
 * number of fetches at once and an optional bandwidth cap. It never delays on-demand reads: before
 * each fetch it waits until no read is waiting on a fetch, and its fetches join (never duplicate)
 * the ones reads start. Failures are logged and skipped; a later read fetches the span itself.
 */
export async function prefetchSpans(
  cache: SpanCache,
  refs: readonly SpanRef[],
  options: PrefetchOptions,
  signal: AbortSignal,
  observe: { logger?: ClipLogger | undefined; metrics?: ClipMetrics | undefined } = {},
): Promise<PrefetchResult> {
  const seen = new Set<string>();
  const queue = refs.filter((ref) => (seen.has(ref.key) ? false : (seen.add(ref.key), true)));
  const result = { spans: queue.length, fetched: 0, cached: 0, failed: 0, originBytes: 0 };
  const bytesPerSecond = options.bytesPerSecond ?? 0;
  let nextStart = 0;
  let position = 0;
  const worker = async (): Promise<void> => {
    while (!signal.aborted) {
      const ref = queue[position++];
      if (ref === undefined) return;
      await cache.idle();
      if (bytesPerSecond > 0) {
        // Reserve this span's slot before waiting: workers that read `nextStart` while another
        // waited would all start together, a burst of `concurrency` spans over the cap.
        const start = Math.max(nextStart, Date.now());
        nextStart = start + (1000 * ref.originLength) / bytesPerSecond;
        const wait = start - Date.now();
        if (wait > 0) await delay(wait, undefined, { signal }).catch(() => undefined);
      }
      if (signal.aborted) return;
      try {
        const bytes = await cache.prefetch(ref);
        result.originBytes += bytes;
        if (bytes > 0) result.fetched++;
        else result.cached++;
        observe.metrics?.prefetched(bytes > 0 ? 'fetched' : 'cached');
      } catch (err) {
        result.failed++;
        observe.metrics?.prefetched('failed');
        observe.logger?.('warn', 'prefetch of a span failed', {
          image: ref.image, layer: ref.layer, span: ref.span, error: err instanceof Error ? err.message : String(err),
        });
      }
    }
  };
  const workers = Math.max(1, Math.floor(options.concurrency ?? 2));
  await Promise.all(Array.from({ length: workers }, () => worker()));
  return result;
}
