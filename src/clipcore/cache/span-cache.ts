import { performance } from 'node:perf_hooks';
import type { Urgency } from '../compression/span-job.js';
import { ClipError, isClipError } from '../errors.js';
import type { CacheTier, ClipMetrics, OriginKind } from '../metrics/clip-metrics.js';
import type { ClipLogger } from '../metrics/logger.js';
import { ByteLru } from '../read/byte-lru.js';
import type { ContentCache } from './content-cache.js';
import type { BlockDigests, DiskCache } from './disk-cache.js';
import { DEFAULT_MOUNT_FETCHES, FetchSlots, NODE_FETCH_SLOTS } from './fetch-slots.js';
import { mergeableRuns } from './merge-runs.js';

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
  decode(originBytes: Buffer, options?: DecodeOptions): Promise<DecodedSpan>;
  /** Where the origin bytes lie in a blob read by range: neighbouring spans can share one request. */
  readonly originRange?: OriginRange;
}

export interface DecodeOptions {
  /**
   * Whether a reader is waiting (it goes before read-ahead for the decoding threads); it may turn
   * true while the decode is queued. Default: urgent.
   */
  readonly urgency?: Urgency;
  /**
   * The disk tier's block size: also return the decoded span's block digests, if the decoder
   * computes them off this thread (a decoder may leave them out; the disk tier then hashes).
   */
  readonly blockDigests?: number;
}

export interface DecodedSpan {
  readonly data: Buffer;
  readonly blockDigests?: BlockDigests;
}

export interface OriginRange {
  /** Names the blob: only spans of one blob merge. */
  readonly blob: string;
  /** The span's origin bytes are [start, end) of the blob. */
  readonly start: number;
  readonly end: number;
  /** Fetches bytes [start, end) of the blob. */
  fetch(start: number, end: number): Promise<Buffer>;
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
  /** Origin fetches (range requests) in flight at once for this cache (a mount); the node's bound applies too. Default 8. */
  readonly maxOriginFetches?: number;
}

interface Loaded {
  readonly data: Buffer;
  readonly tier: CacheTier;
}

interface Inflight {
  readonly promise: Promise<Loaded>;
  keepInMemory: boolean;
  /** Read-ahead's loads turn urgent when a reader comes to wait on them. */
  readonly urgency: Urgency;
}

/** Hears of each span entering (its verified bytes) and leaving (undefined) the memory tier. */
export type MemoryListener = (key: string, data: Buffer | undefined) => void;

export const DEFAULT_MEMORY_CACHE_BYTES = 256 * 1024 * 1024;
/** Disk writes run in the background, two at a time; beyond this many queued bytes, new ones are dropped. */
const MAX_QUEUED_WRITE_BYTES = 128 * 1024 * 1024;
const WRITE_CONCURRENCY = 2;

interface LoadOptions {
  readonly onDemand: boolean;
  readonly skipDisk: boolean;
  readonly keepInMemory: boolean;
  /** Origin bytes already being fetched (a merged request): the first attempt uses them. */
  readonly originBytes?: Promise<Buffer>;
}

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
  private readonly writeQueue: Array<{ ref: SpanRef; decoded: DecodedSpan }> = [];
  private queuedWriteBytes = 0;
  private activeWrites = 0;
  private writesDrained: Array<() => void> = [];
  private closed = false;
  private readonly slots: FetchSlots;
  private readonly memoryListeners = new Set<MemoryListener>();

  constructor(options: SpanCacheOptions = {}) {
    this.memory = new ByteLru(options.memoryBytes ?? DEFAULT_MEMORY_CACHE_BYTES, (key, data) => {
      for (const listener of this.memoryListeners) listener(key, data);
    });
    this.slots = new FetchSlots(options.maxOriginFetches ?? DEFAULT_MOUNT_FETCHES, NODE_FETCH_SLOTS);
    this.disk = options.disk;
    this.shared = options.shared;
    this.metrics = options.metrics;
    this.logger = options.logger;
  }

  get hasDisk(): boolean {
    return this.disk !== undefined;
  }

  /** Whether the span's bytes are in memory now (a read of it would not wait). */
  has(ref: SpanRef): boolean {
    return this.memory.has(ref.key);
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
        pending.urgency.urgent = true;
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

  /**
   * Loads whole spans into memory ahead of a sequential reader (errors are only logged). Spans
   * found in no tier are fetched with their neighbours of the same blob in merged range requests.
   */
  readAhead(refs: readonly SpanRef[]): void {
    const wanted = refs.filter((ref) => !this.isLoading(ref));
    if (wanted.length > 0) void this.readAheadOf(wanted);
  }

  private async readAheadOf(refs: readonly SpanRef[]): Promise<void> {
    let missing = refs;
    if (this.disk !== undefined) {
      const disk = this.disk;
      const onDisk = await Promise.all(refs.map((ref) => disk.has(ref.key).catch(() => false)));
      missing = refs.filter((_, i) => !onDisk[i]);
      for (const ref of refs.filter((_, i) => onDisk[i])) {
        // A FUSE server reading entries itself needs only the header checked: copying the span into
        // memory would evict spans the reader has yet to reach (the memory tier is an LRU).
        if (disk.hasEntryWatchers) void disk.announce(ref.key, ref.length);
        else this.startReadAhead(ref, { onDemand: false, skipDisk: false, keepInMemory: true });
      }
      // A reader may have started some of them meanwhile.
      missing = missing.filter((ref) => !this.isLoading(ref));
    }
    for (const run of mergeableRuns(missing)) {
      const first = (run[0] as SpanRef).originRange;
      const last = (run[run.length - 1] as SpanRef).originRange;
      if (run.length === 1 || first === undefined || last === undefined) {
        for (const ref of run) this.startReadAhead(ref, { onDemand: false, skipDisk: true, keepInMemory: true });
        continue;
      }
      const whole = this.slots.run(false, () => first.fetch(first.start, last.end));
      whole.catch(() => undefined);
      for (const ref of run) {
        const range = ref.originRange as OriginRange;
        const originBytes = whole.then((bytes) => bytes.subarray(range.start - first.start, range.end - first.start));
        this.startReadAhead(ref, { onDemand: false, skipDisk: true, keepInMemory: true, originBytes });
      }
    }
  }

  private isLoading(ref: SpanRef): boolean {
    return this.memory.has(ref.key) || this.inflight.has(ref.key);
  }

  private startReadAhead(ref: SpanRef, options: LoadOptions): void {
    this.metrics?.readAhead();
    this.load(ref, options).catch((err: unknown) => {
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

  /**
   * Tells `listener` of the spans in the memory tier now and of every span entering or leaving it
   * from then on: the native FUSE server serves reads from them (docs/fuse.md). Returns a
   * function that stops the calls.
   */
  watchMemory(listener: MemoryListener): () => void {
    for (const [key, data] of this.memory.entries()) listener(key, data);
    this.memoryListeners.add(listener);
    return () => this.memoryListeners.delete(listener);
  }

  /**
   * A span part served without read() (natively, by the FUSE server, from a tier it was handed):
   * counted as read() counts it, and kept recent in that tier's LRU so that hot spans stay.
   */
  noteServed(ref: SpanRef, tier: 'memory' | 'disk', seconds: number): void {
    if (tier === 'memory') {
      this.memory.get(ref.key);
      this.metrics?.lookup('memory', true);
    } else {
      this.disk?.noteUse(ref.key);
      this.metrics?.lookup('memory', false);
      this.metrics?.lookup('disk', true);
    }
    this.metrics?.spanServed(tier, seconds);
  }

  /** Refuses new disk writes and waits for the queued ones (so a restart finds them on disk). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.activeWrites > 0) await new Promise<void>((resolve) => this.writesDrained.push(resolve));
  }

  private served(tier: CacheTier, started: number): void {
    if (this.metrics !== undefined) this.metrics.spanServed(tier, (performance.now() - started) / 1000);
  }

  private load(ref: SpanRef, options: LoadOptions): Promise<Loaded> {
    const cached = this.memory.get(ref.key);
    if (cached !== undefined) return Promise.resolve({ data: cached, tier: 'memory' });
    const pending = this.inflight.get(ref.key);
    if (pending !== undefined) {
      if (options.keepInMemory) pending.keepInMemory = true;
      if (options.onDemand) pending.urgency.urgent = true;
      return pending.promise;
    }
    if (options.onDemand) this.onDemandLoads++;
    const urgency: Urgency = { urgent: options.onDemand };
    const promise = this.fetch(ref, options, urgency).then(
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
    const record: Inflight = { promise, keepInMemory: options.keepInMemory, urgency };
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

  private async fetch(ref: SpanRef, options: LoadOptions, urgency: Urgency): Promise<Loaded> {
    if (this.disk !== undefined && !options.skipDisk) {
      const whole = await this.readDisk(ref, 0, ref.length);
      if (whole !== undefined) return { data: whole, tier: 'disk' };
    }
    if (this.shared !== undefined) {
      const decoded = await this.fromShared(ref, urgency);
      if (decoded !== undefined) {
        this.queueDiskWrite(ref, decoded);
        return { data: decoded.data, tier: 'shared' };
      }
    }
    const { decoded, originBytes } = await this.fromOrigin(ref, options, urgency);
    this.queueDiskWrite(ref, decoded);
    if (this.shared !== undefined) {
      this.shared.storeContent([originBytes], ref.originKey).catch((err: unknown) => {
        this.logger?.('warn', 'shared cache store failed', { image: ref.image, layer: ref.layer, span: ref.span, error: describe(err) });
      });
    }
    return { data: decoded.data, tier: 'origin' };
  }

  private async readDisk(ref: SpanRef, offset: number, length: number): Promise<Buffer | undefined> {
    const disk = this.disk as DiskCache;
    const part = await disk.getContent(ref.key, offset, length, ref.length);
    this.metrics?.lookup('disk', part !== undefined);
    return part;
  }

  private async fromShared(ref: SpanRef, urgency: Urgency): Promise<DecodedSpan | undefined> {
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
      return await ref.decode(bytes, { urgency, blockDigests: this.disk?.blockBytes });
    } catch (err) {
      if (!isIntegrityError(err)) throw err;
      this.metrics?.verificationFailed('shared');
      this.logger?.('warn', 'span from the shared cache failed verification; going to the origin', {
        image: ref.image, layer: ref.layer, span: ref.span, error: describe(err),
      });
      return undefined;
    }
  }

  /**
   * Fetches and verifies; one more fetch (of this span alone) after a span that fails its check,
   * then EIO. Each fetch holds a slot of the mount's and the node's bounds.
   */
  private async fromOrigin(ref: SpanRef, options: LoadOptions, urgency: Urgency): Promise<{ decoded: DecodedSpan; originBytes: Buffer }> {
    for (let attempt = 1; ; attempt++) {
      const bytes = await (attempt === 1 && options.originBytes ? options.originBytes : this.slots.run(options.onDemand, () => ref.fetchOrigin()));
      this.metrics?.originFetched(ref.origin, bytes.length);
      let failure: unknown;
      try {
        if (bytes.length !== ref.originLength) {
          throw new ClipError('DIGEST_MISMATCH', `the origin sent ${bytes.length} bytes, expected ${ref.originLength}`);
        }
        return { decoded: await ref.decode(bytes, { urgency, blockDigests: this.disk?.blockBytes }), originBytes: bytes };
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

  private queueDiskWrite(ref: SpanRef, decoded: DecodedSpan): void {
    if (this.disk === undefined || this.closed) return;
    const { data } = decoded;
    if (this.queuedWriteBytes + data.length > MAX_QUEUED_WRITE_BYTES) {
      this.metrics?.diskWriteFailed('busy');
      return;
    }
    this.writeQueue.push({ ref, decoded });
    this.queuedWriteBytes += data.length;
    this.pumpWrites();
  }

  private pumpWrites(): void {
    const disk = this.disk as DiskCache;
    while (this.activeWrites < WRITE_CONCURRENCY && this.writeQueue.length > 0) {
      const { ref, decoded } = this.writeQueue.shift() as { ref: SpanRef; decoded: DecodedSpan };
      this.queuedWriteBytes -= decoded.data.length;
      this.activeWrites++;
      disk
        .storeContent([decoded.data], ref.key, decoded.blockDigests)
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
