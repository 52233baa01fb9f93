import { performance } from 'node:perf_hooks';
import { ClipError, isClipError } from '../errors.js';
import type { CacheTier, ClipMetrics, OriginKind } from '../metrics/clip-metrics.js';
import type { ClipLogger } from '../metrics/logger.js';
import { ByteLru } from '../read/byte-lru.js';
import type { ContentCache } from './content-cache.js';
import type { DiskCache } from './disk-cache.js';

/**
 * One span of a blob (a layer's uncompressed tar stream, a data blob), as the tiers see it.
 * Content readers make these; the cache never needs to know the storage mode.
 */
export interface SpanRef {
  /** Hex sha256 naming the span's (decompressed) bytes: the memory and disk cache key. */
  readonly key: string;
  /** Bytes in the span, decompressed. */
  readonly length: number;
  /** Hex sha256 of the origin bytes as the index records it: the shared-cache key. */
  readonly originKey: string;
  /** Bytes fetched from the origin for this span (compressed, for oci). */
  readonly originLength: number;
  readonly origin: OriginKind;
  /** For logs: the image (or archive), the layer digest (or `data`), the span number. */
  readonly image: string;
  readonly layer: string;
  readonly span: number;
  /** Fetches the origin bytes (transport retries are the fetcher's business). */
  fetchOrigin(): Promise<Buffer>;
  /** Checks origin bytes against the index and decodes them; DIGEST_MISMATCH when they fail. */
  decode(originBytes: Buffer): Promise<Buffer>;
}

export interface SpanCacheOptions {
  /** Bound of the memory tier, in bytes of decompressed spans. Default 256 MiB. */
  readonly memoryBytes?: number;
  /** The node-local disk tier. */
  readonly disk?: DiskCache;
  /** A shared tier (cluster-wide cache) between disk and origin: holds origin bytes, verified on use. */
  readonly shared?: ContentCache;
  readonly metrics?: ClipMetrics;
  readonly logger?: ClipLogger;
}

interface Loaded {
  readonly data: Buffer;
  readonly tier: CacheTier;
}

interface Inflight {
  readonly promise: Promise<Loaded>;
  keepInMemory: boolean;
}

export const DEFAULT_MEMORY_CACHE_BYTES = 256 * 1024 * 1024;
/** Disk writes run in the background, two at a time; beyond this many queued bytes, new ones are dropped. */
const MAX_QUEUED_WRITE_BYTES = 128 * 1024 * 1024;
const WRITE_CONCURRENCY = 2;

/**
 * The tiers of a span read: memory (bounded in bytes) → node-local disk → shared ContentCache →
 * origin. Concurrent loads of one span share one fetch. Origin bytes are verified against the
 * index before use; a span that fails is fetched once more, and if it fails again the read fails
 * (EIO through FUSE) with a log line naming image, layer and span. Nothing unverified is cached.
 */
export class SpanCache {
  private readonly memory: ByteLru<string>;
  private readonly inflight = new Map<string, Inflight>();
  private readonly disk: DiskCache | undefined;
  private readonly shared: ContentCache | undefined;
  private readonly metrics: ClipMetrics | undefined;
  private readonly logger: ClipLogger | undefined;
  private onDemandLoads = 0;
  private idleWaiters: Array<() => void> = [];
  private readonly writeQueue: Array<{ ref: SpanRef; data: Buffer }> = [];
  private queuedWriteBytes = 0;
  private activeWrites = 0;
  private writesDrained: Array<() => void> = [];
  private closed = false;

  constructor(options: SpanCacheOptions = {}) {
    this.memory = new ByteLru(options.memoryBytes ?? DEFAULT_MEMORY_CACHE_BYTES);
    this.disk = options.disk;
    this.shared = options.shared;
    this.metrics = options.metrics;
    this.logger = options.logger;
  }

  get hasDisk(): boolean {
    return this.disk !== undefined;
  }

  /** Bytes [from, to) of a span, for a read that someone is waiting on. */
  async read(ref: SpanRef, from: number, to: number): Promise<Buffer> {
    const started = this.metrics === undefined ? 0 : performance.now();
    try {
      const cached = this.memory.get(ref.key);
      if (cached !== undefined) {
        this.metrics?.lookup('memory', true);
        this.served('memory', started);
        return cached.subarray(from, to);
      }
      this.metrics?.lookup('memory', false);
      const pending = this.inflight.get(ref.key);
      if (pending !== undefined) {
        pending.keepInMemory = true;
        const loaded = await pending.promise;
        this.served(loaded.tier, started);
        return loaded.data.subarray(from, to);
      }
      if (this.disk !== undefined) {
        // Only the blocks the read needs: a warm small read never checks the whole span.
        const part = await this.readDisk(ref, from, to - from);
        if (part !== undefined) {
          this.served('disk', started);
          return part;
        }
      }
      const loaded = await this.load(ref, { onDemand: true, skipDisk: true, keepInMemory: true });
      this.served(loaded.tier, started);
      return loaded.data.subarray(from, to);
    } catch (err) {
      this.metrics?.readFailed();
      throw err;
    }
  }

  /** Loads a whole span into memory ahead of a sequential reader (errors are only logged). */
  readAhead(ref: SpanRef): void {
    if (this.memory.has(ref.key) || this.inflight.has(ref.key)) return;
    this.metrics?.readAhead();
    this.load(ref, { onDemand: false, skipDisk: false, keepInMemory: true }).catch((err: unknown) => {
      this.logger?.('debug', 'read-ahead failed', { image: ref.image, layer: ref.layer, span: ref.span, error: describe(err) });
    });
  }

  /**
   * Makes sure a span is cached (on disk, or in memory without a disk tier), for background
   * prefetch. Resolves to the origin bytes fetched (0 when it was cached already).
   */
  async prefetch(ref: SpanRef): Promise<number> {
    if (this.memory.has(ref.key)) return 0;
    const pending = this.inflight.get(ref.key);
    if (pending !== undefined) {
      await pending.promise;
      return 0;
    }
    if (this.disk !== undefined && (await this.disk.has(ref.key))) return 0;
    const loaded = await this.load(ref, { onDemand: false, skipDisk: true, keepInMemory: this.disk === undefined });
    return loaded.tier === 'origin' ? ref.originLength : 0;
  }

  /** Resolves when no on-demand read is waiting on a fetch: background work waits for this. */
  idle(): Promise<void> {
    if (this.onDemandLoads === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Refuses new disk writes and waits for the queued ones (so a restart finds them on disk). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.activeWrites > 0) await new Promise<void>((resolve) => this.writesDrained.push(resolve));
  }

  private served(tier: CacheTier, started: number): void {
    if (this.metrics !== undefined) this.metrics.spanServed(tier, (performance.now() - started) / 1000);
  }

  private load(ref: SpanRef, options: { onDemand: boolean; skipDisk: boolean; keepInMemory: boolean }): Promise<Loaded> {
    const cached = this.memory.get(ref.key);
    if (cached !== undefined) return Promise.resolve({ data: cached, tier: 'memory' });
    const pending = this.inflight.get(ref.key);
    if (pending !== undefined) {
      if (options.keepInMemory) pending.keepInMemory = true;
      return pending.promise;
    }
    if (options.onDemand) this.onDemandLoads++;
    const promise = this.fetch(ref, options.skipDisk).then(
      (loaded) => {
        this.inflight.delete(ref.key);
        if (record.keepInMemory) this.memory.set(ref.key, loaded.data);
        this.loadDone(options.onDemand);
        return loaded;
      },
      (err: unknown) => {
        this.inflight.delete(ref.key);
        this.loadDone(options.onDemand);
        throw err;
      },
    );
    const record: Inflight = { promise, keepInMemory: options.keepInMemory };
    this.inflight.set(ref.key, record);
    return promise;
  }

  private loadDone(onDemand: boolean): void {
    if (!onDemand) return;
    this.onDemandLoads--;
    if (this.onDemandLoads === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  private async fetch(ref: SpanRef, skipDisk: boolean): Promise<Loaded> {
    if (this.disk !== undefined && !skipDisk) {
      const whole = await this.readDisk(ref, 0, ref.length);
      if (whole !== undefined) return { data: whole, tier: 'disk' };
    }
    if (this.shared !== undefined) {
      const data = await this.fromShared(ref);
      if (data !== undefined) {
        this.queueDiskWrite(ref, data);
        return { data, tier: 'shared' };
      }
    }
    const { data, originBytes } = await this.fromOrigin(ref);
    this.queueDiskWrite(ref, data);
    if (this.shared !== undefined) {
      this.shared.storeContent([originBytes], ref.originKey).catch((err: unknown) => {
        this.logger?.('warn', 'shared cache store failed', { image: ref.image, layer: ref.layer, span: ref.span, error: describe(err) });
      });
    }
    return { data, tier: 'origin' };
  }

  private async readDisk(ref: SpanRef, offset: number, length: number): Promise<Buffer | undefined> {
    const disk = this.disk as DiskCache;
    const part = await disk.getContent(ref.key, offset, length, ref.length);
    this.metrics?.lookup('disk', part !== undefined);
    return part;
  }

  private async fromShared(ref: SpanRef): Promise<Buffer | undefined> {
    const shared = this.shared as ContentCache;
    let bytes: Buffer | undefined;
    try {
      bytes = await shared.getContent(ref.originKey, 0, ref.originLength);
    } catch (err) {
      this.logger?.('warn', 'shared cache read failed; going to the origin', { image: ref.image, layer: ref.layer, span: ref.span, error: describe(err) });
    }
    this.metrics?.lookup('shared', bytes !== undefined);
    if (bytes === undefined) return undefined;
    try {
      if (bytes.length !== ref.originLength) throw new ClipError('DIGEST_MISMATCH', `got ${bytes.length} bytes, expected ${ref.originLength}`);
      return await ref.decode(bytes);
    } catch (err) {
      if (!isIntegrityError(err)) throw err;
      this.metrics?.verificationFailed('shared');
      this.logger?.('warn', 'span from the shared cache failed verification; going to the origin', {
        image: ref.image, layer: ref.layer, span: ref.span, error: describe(err),
      });
      return undefined;
    }
  }

  /** Fetches and verifies; one more fetch after a span that fails its check, then EIO. */
  private async fromOrigin(ref: SpanRef): Promise<{ data: Buffer; originBytes: Buffer }> {
    for (let attempt = 1; ; attempt++) {
      const bytes = await ref.fetchOrigin();
      this.metrics?.originFetched(ref.origin, bytes.length);
      let failure: unknown;
      try {
        if (bytes.length !== ref.originLength) {
          throw new ClipError('DIGEST_MISMATCH', `the origin sent ${bytes.length} bytes, expected ${ref.originLength}`);
        }
        return { data: await ref.decode(bytes), originBytes: bytes };
      } catch (err) {
        if (!isIntegrityError(err)) throw err;
        failure = err;
      }
      this.metrics?.verificationFailed('origin');
      const fields = { image: ref.image, layer: ref.layer, span: ref.span, origin: ref.origin, attempt, error: describe(failure) };
      if (attempt >= 2) {
        this.logger?.('error', 'span failed verification again; the read fails', fields);
        throw new ClipError(
          'DIGEST_MISMATCH',
          `${ref.image}: layer ${ref.layer} span ${ref.span} failed verification twice: ${describe(failure)}`,
          { cause: failure },
        );
      }
      this.logger?.('warn', 'span failed verification; fetching it again from the origin', fields);
    }
  }

  private queueDiskWrite(ref: SpanRef, data: Buffer): void {
    if (this.disk === undefined || this.closed) return;
    if (this.queuedWriteBytes + data.length > MAX_QUEUED_WRITE_BYTES) {
      this.metrics?.diskWriteFailed('busy');
      return;
    }
    this.writeQueue.push({ ref, data });
    this.queuedWriteBytes += data.length;
    this.pumpWrites();
  }

  private pumpWrites(): void {
    const disk = this.disk as DiskCache;
    while (this.activeWrites < WRITE_CONCURRENCY && this.writeQueue.length > 0) {
      const { ref, data } = this.writeQueue.shift() as { ref: SpanRef; data: Buffer };
      this.queuedWriteBytes -= data.length;
      this.activeWrites++;
      disk
        .storeContent([data], ref.key)
        .catch((err: unknown) => {
          this.logger?.('warn', 'disk cache store failed', { image: ref.image, layer: ref.layer, span: ref.span, error: describe(err) });
        })
        .finally(() => {
          this.activeWrites--;
          this.pumpWrites();
          if (this.activeWrites === 0) {
            const drained = this.writesDrained;
            this.writesDrained = [];
            for (const resolve of drained) resolve();
          }
        });
    }
  }
}

/** Wrong bytes (a digest or length that does not match the index), not a transport failure. */
function isIntegrityError(err: unknown): boolean {
  return isClipError(err) && err.code === 'DIGEST_MISMATCH';
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
