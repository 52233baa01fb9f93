import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { LATENCY_BUCKETS, METRICS, type DiskWriteFailureReason } from './names.js';

/** Where a span read was served from. `origin` means every cache tier missed. */
export type CacheTier = 'memory' | 'disk' | 'shared' | 'origin';
/** Where origin bytes come from. */
export type OriginKind = 'registry' | 's3' | 'local';

/**
 * The read path's Prometheus metrics, registered in the Registry the caller passes (never
 * prom-client's global default, unless that is what the caller passes). One instance per
 * registry: several mounts in one process share it.
 */
export class ClipMetrics {
  readonly registry: Registry;
  private readonly spanReads: Counter<'tier'>;
  private readonly cacheLookups: Counter<'tier' | 'result'>;
  private readonly readDuration: Histogram<'tier'>;
  private readonly firstRead: Histogram;
  private readonly originBytes: Counter<'origin'>;
  private readonly originFetches: Counter<'origin'>;
  private readonly verificationFailures: Counter<'tier'>;
  private readonly readFailures: Counter;
  private readonly diskSize: Gauge;
  private readonly diskMax: Gauge;
  private readonly diskEvictions: Counter;
  private readonly diskEvictedBytes: Counter;
  private readonly diskWrittenBytes: Counter;
  private readonly diskWriteFailures: Counter<'reason'>;
  private readonly prefetchSpans: Counter<'result'>;
  private readonly readAheadSpans: Counter;

  constructor(registry: Registry) {
    this.registry = registry;
    const registers = [registry];
    const counter = <L extends string>(m: { name: string; help: string; labels: readonly string[] }): Counter<L> =>
      new Counter<L>({ name: m.name, help: m.help, labelNames: m.labels as readonly L[], registers });
    this.spanReads = counter(METRICS.spanReads);
    this.cacheLookups = counter(METRICS.cacheLookups);
    this.readDuration = new Histogram({ ...base(METRICS.readDuration), labelNames: ['tier'], buckets: LATENCY_BUCKETS, registers });
    this.firstRead = new Histogram({ ...base(METRICS.firstRead), buckets: LATENCY_BUCKETS, registers });
    this.originBytes = counter(METRICS.originBytes);
    this.originFetches = counter(METRICS.originFetches);
    this.verificationFailures = counter(METRICS.verificationFailures);
    this.readFailures = counter(METRICS.readFailures);
    this.diskSize = new Gauge({ ...base(METRICS.diskSize), registers });
    this.diskMax = new Gauge({ ...base(METRICS.diskMax), registers });
    this.diskEvictions = counter(METRICS.diskEvictions);
    this.diskEvictedBytes = counter(METRICS.diskEvictedBytes);
    this.diskWrittenBytes = counter(METRICS.diskWrittenBytes);
    this.diskWriteFailures = counter(METRICS.diskWriteFailures);
    this.prefetchSpans = counter(METRICS.prefetchSpans);
    this.readAheadSpans = counter(METRICS.readAheadSpans);
    // Series that exist from the start, so rate() and hit-rate expressions see zeros, not gaps.
    for (const tier of ['memory', 'disk', 'shared', 'origin'] as const) this.spanReads.inc({ tier }, 0);
  }

  spanServed(tier: CacheTier, seconds: number): void {
    this.spanReads.inc({ tier });
    this.readDuration.observe({ tier }, seconds);
  }

  lookup(tier: Exclude<CacheTier, 'origin'>, hit: boolean): void {
    this.cacheLookups.inc({ tier, result: hit ? 'hit' : 'miss' });
  }

  firstReadOfFile(seconds: number): void {
    this.firstRead.observe(seconds);
  }

  originFetched(origin: OriginKind, bytes: number): void {
    this.originFetches.inc({ origin });
    this.originBytes.inc({ origin }, bytes);
  }

  verificationFailed(tier: Exclude<CacheTier, 'memory'>): void {
    this.verificationFailures.inc({ tier });
  }

  readFailed(): void {
    this.readFailures.inc();
  }

  diskCacheSize(bytes: number, maxBytes: number): void {
    this.diskSize.set(bytes);
    this.diskMax.set(maxBytes);
  }

  diskEvicted(entries: number, bytes: number): void {
    this.diskEvictions.inc(entries);
    this.diskEvictedBytes.inc(bytes);
  }

  diskWritten(bytes: number): void {
    this.diskWrittenBytes.inc(bytes);
  }

  diskWriteFailed(reason: DiskWriteFailureReason): void {
    this.diskWriteFailures.inc({ reason });
  }

  prefetched(result: 'fetched' | 'cached' | 'failed'): void {
    this.prefetchSpans.inc({ result });
  }

  readAhead(): void {
    this.readAheadSpans.inc();
  }
}

function base(m: { name: string; help: string }): { name: string; help: string } {
  return { name: m.name, help: m.help };
}
