/** The span tiers in one process: memory → disk → shared → origin, verification, read-ahead, prefetch. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import type { ContentCache } from '../src/clipcore/cache/content-cache.js';
import { DiskCache } from '../src/clipcore/cache/disk-cache.js';
import { prefetchSpans } from '../src/clipcore/cache/prefetch.js';
import { SpanCache } from '../src/clipcore/cache/span-cache.js';
import { ClipMetrics } from '../src/clipcore/metrics/clip-metrics.js';
import type { ClipLogger } from '../src/clipcore/metrics/logger.js';
import { VerifiedBlob } from '../src/clipcore/read/blob-spans.js';

const SPAN = 64 * 1024;
/** Distinct content in every span (identical spans would share one cache entry: they are content-addressed). */
const BLOB = Buffer.concat(Array.from({ length: Math.ceil((10 * SPAN + 1234) / 32) }, (_, i) => createHash('sha256').update(`block ${i}`).digest())).subarray(0, 10 * SPAN + 1234);
const DIGESTS = Buffer.concat(
  Array.from({ length: Math.ceil(BLOB.length / SPAN) }, (_, i) => createHash('sha256').update(BLOB.subarray(i * SPAN, (i + 1) * SPAN)).digest()),
);

/**
 * An origin over BLOB that counts fetches and can corrupt the next `corrupt` of them. Each fetch
 * is logged (offset, and whether it began while the origin was held) and wakes `whenFetches`;
 * `hold()` keeps every fetch waiting until `release()`.
 */
class FakeOrigin {
  fetches = 0;
  bytes = 0;
  corrupt = 0;
  readonly log: Array<{ offset: number; startedMs: number; whileHeld: boolean }> = [];
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  private waiters: Array<{ count: number; resolve: () => void }> = [];
  fetch = async (offset: number, length: number): Promise<Buffer> => {
    this.fetches++;
    this.bytes += length;
    this.log.push({ offset, startedMs: performance.now(), whileHeld: this.gate !== undefined });
    this.waiters = this.waiters.filter((w) => (w.count <= this.fetches ? (w.resolve(), false) : true));
    if (this.gate !== undefined) await this.gate;
    const out = Buffer.from(BLOB.subarray(offset, offset + length));
    if (this.corrupt > 0) {
      this.corrupt--;
      out[7] = (out[7] as number) ^ 0x40;
    }
    return out;
  };
  /** Resolves once `count` fetches have started (fails the test after 10 s). */
  whenFetches(count: number): Promise<void> {
    if (this.fetches >= count) return Promise.resolve();
    return withDeadline(new Promise<void>((resolve) => this.waiters.push({ count, resolve })), `${count} origin fetches (saw ${this.fetches})`);
  }
  hold(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }
  release(): void {
    this.gate = undefined;
    this.open?.();
  }
}

async function withDeadline<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function capture(): { logger: ClipLogger; lines: Array<{ level: string; message: string; fields: Record<string, unknown> }> } {
  const lines: Array<{ level: string; message: string; fields: Record<string, unknown> }> = [];
  return { lines, logger: (level, message, fields = {}) => lines.push({ level, message, fields }) };
}

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const found = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const values = (found?.values ?? []) as Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>;
  return values
    .filter((v) => (v.metricName === undefined || v.metricName === name || v.metricName === `${name}_count`) && Object.entries(labels).every(([k, l]) => v.labels[k] === l))
    .reduce((sum, v) => sum + v.value, 0);
}

function blobOver(origin: FakeOrigin, cache: SpanCache, readAheadSpans = 0): VerifiedBlob {
  return new VerifiedBlob(origin.fetch, BLOB.length, SPAN, DIGESTS, 'test blob', { cache, origin: 's3', image: 'test-image', readAheadSpans });
}

class MapCache implements ContentCache {
  readonly items = new Map<string, Buffer>();
  tamper = false;
  private waiters: Array<{ count: number; resolve: () => void }> = [];
  /** Resolves once `count` items are stored (stores run in the background). */
  whenItems(count: number): Promise<void> {
    if (this.items.size >= count) return Promise.resolve();
    return withDeadline(new Promise<void>((resolve) => this.waiters.push({ count, resolve })), `${count} shared-cache items (saw ${this.items.size})`);
  }
  async getContent(hash: string, offset: number, length: number): Promise<Buffer | undefined> {
    const item = this.items.get(hash);
    if (item === undefined || offset + length > item.length) return undefined;
    const out = Buffer.from(item.subarray(offset, offset + length));
    if (this.tamper) out[0] = (out[0] as number) ^ 1;
    return out;
  }
  async storeContent(chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, hash: string): Promise<boolean> {
    const parts: Buffer[] = [];
    for await (const chunk of chunks) parts.push(Buffer.from(chunk));
    this.items.set(hash, Buffer.concat(parts));
    this.waiters = this.waiters.filter((w) => (w.count <= this.items.size ? (w.resolve(), false) : true));
    return true;
  }
}

describe('span tiers', () => {
  let work: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'clip-cache-tiers-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true, maxRetries: 5 }); // a failed test may leave disk writes in flight
  });

  test('concurrent reads of a span share one fetch; later reads hit memory', async () => {
    const registry = new Registry();
    const origin = new FakeOrigin();
    const cache = new SpanCache({ metrics: new ClipMetrics(registry) });
    const blob = blobOver(origin, cache);
    origin.hold(); // the fetch stays in flight until every read has asked
    const pending = Array.from({ length: 32 }, (_, i) => blob.read(SPAN + i * 100, 5000));
    await origin.whenFetches(1);
    origin.release();
    const reads = await Promise.all(pending);
    reads.forEach((data, i) => assert.deepEqual(data, BLOB.subarray(SPAN + i * 100, SPAN + i * 100 + 5000)));
    assert.equal(origin.fetches, 1);
    assert.deepEqual(await blob.read(SPAN, 10), BLOB.subarray(SPAN, SPAN + 10));
    assert.equal(origin.fetches, 1);
    assert.equal(await metric(registry, 'clip_span_reads_total', { tier: 'memory' }), 1);
    assert.equal(await metric(registry, 'clip_origin_fetches_total', { origin: 's3' }), 1);
    assert.equal(await metric(registry, 'clip_origin_fetched_bytes_total', { origin: 's3' }), SPAN);
    // A read across spans joins them.
    assert.deepEqual(await blob.read(SPAN - 10, 3 * SPAN), BLOB.subarray(SPAN - 10, 4 * SPAN - 10));
  });

  test('a span that fails verification is fetched again; twice is an error naming image, layer and span', async () => {
    const registry = new Registry();
    const { logger, lines } = capture();
    const origin = new FakeOrigin();
    const disk = await DiskCache.open({ dir: join(work, 'verify'), maxBytes: 64 << 20 });
    const cache = new SpanCache({ metrics: new ClipMetrics(registry), logger, disk });
    const blob = blobOver(origin, cache);
    origin.corrupt = 1;
    assert.deepEqual(await blob.read(0, 100), BLOB.subarray(0, 100));
    assert.equal(origin.fetches, 2);
    assert.ok(lines.some((l) => l.level === 'warn' && l.fields.span === 0 && l.fields.layer === 'data' && l.fields.image === 'test-image'));

    origin.corrupt = 2;
    await assert.rejects(blob.read(3 * SPAN, 100), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'DIGEST_MISMATCH');
      assert.match(err.message, /test-image: layer data span 3 failed verification twice/);
      return true;
    });
    const error = lines.find((l) => l.level === 'error');
    assert.deepEqual([error?.fields.image, error?.fields.layer, error?.fields.span], ['test-image', 'data', 3]);
    assert.equal(await metric(registry, 'clip_span_verification_failures_total', { tier: 'origin' }), 3);
    await cache.close(); // flushes background disk writes
    assert.equal(await disk.has(DIGESTS.subarray(3 * 32, 4 * 32).toString('hex')), false, 'nothing unverified is cached');
    // Once the origin behaves, the read succeeds.
    assert.deepEqual(await blobOver(origin, new SpanCache({ disk })).read(3 * SPAN, 100), BLOB.subarray(3 * SPAN, 3 * SPAN + 100));
  });

  test('a second cache on the same disk directory reads without the origin', async () => {
    const dir = join(work, 'restart');
    const origin = new FakeOrigin();
    const first = new SpanCache({ disk: await DiskCache.open({ dir, maxBytes: 64 << 20 }) });
    assert.deepEqual(await blobOver(origin, first).read(0, BLOB.length), BLOB);
    await first.close();
    const fetched = origin.fetches;
    const registry = new Registry();
    const second = new SpanCache({ disk: await DiskCache.open({ dir, maxBytes: 64 << 20 }), metrics: new ClipMetrics(registry) });
    const blob = blobOver(origin, second);
    assert.deepEqual(await blob.read(5, 4096), BLOB.subarray(5, 4101));
    assert.deepEqual(await blob.read(0, BLOB.length), BLOB);
    assert.equal(origin.fetches, fetched);
    assert.ok((await metric(registry, 'clip_span_reads_total', { tier: 'disk' })) >= 11);
    assert.equal(await metric(registry, 'clip_span_reads_total', { tier: 'origin' }), 0);
  });

  test('the shared tier serves verified origin bytes and is never trusted blindly', async () => {
    const shared = new MapCache();
    const origin = new FakeOrigin();
    await blobOver(origin, new SpanCache({ shared })).read(0, BLOB.length);
    await shared.whenItems(DIGESTS.length / 32); // stores are in the background
    assert.equal(shared.items.size, DIGESTS.length / 32);
    const before = origin.fetches;
    const registry = new Registry();
    assert.deepEqual(await blobOver(origin, new SpanCache({ shared, metrics: new ClipMetrics(registry) })).read(0, BLOB.length), BLOB);
    assert.equal(origin.fetches, before, 'all from the shared cache');
    assert.equal(await metric(registry, 'clip_span_reads_total', { tier: 'shared' }), DIGESTS.length / 32);
    shared.tamper = true;
    const tampered = new Registry();
    assert.deepEqual(await blobOver(origin, new SpanCache({ shared, metrics: new ClipMetrics(tampered) })).read(0, 10), BLOB.subarray(0, 10));
    assert.equal(origin.fetches, before + 1);
    assert.equal(await metric(tampered, 'clip_span_verification_failures_total', { tier: 'shared' }), 1);
  });

  test('sequential reads load the next spans ahead, within the file', async () => {
    const origin = new FakeOrigin();
    const registry = new Registry();
    const blob = blobOver(origin, new SpanCache({ metrics: new ClipMetrics(registry) }), 2);
    const limit = 5 * SPAN; // the "file" ends with span 4
    await blob.read(0, 16384, limit);
    assert.equal(origin.fetches, 1);
    await blob.read(16384, 16384, limit); // sequential: spans 1 and 2 are loaded ahead
    // Read-ahead is decided inside the read (the metric counts each span loaded ahead); the
    // fetches themselves run in the background.
    assert.equal(await metric(registry, 'clip_readahead_spans_total'), 2);
    // Spans 1 and 2 are neighbours: one fetch.
    await origin.whenFetches(2);
    assert.deepEqual(origin.log.map((f) => f.offset), [0, SPAN]);
    for (let offset = 32768; offset < limit; offset += 16384) await blob.read(offset, 16384, limit);
    assert.equal(await metric(registry, 'clip_readahead_spans_total'), 4, 'never past the end of the file');
    await origin.whenFetches(3);
    assert.deepEqual(origin.log.map((f) => f.offset), [0, SPAN, 3 * SPAN]);
    assert.equal(origin.bytes, 5 * SPAN, 'each span fetched once, none past the file');
  });

  test('a reader going on from one file into the next gets read-ahead past the end of the file it reads', async () => {
    const origin = new FakeOrigin();
    const registry = new Registry();
    const blob = blobOver(origin, new SpanCache({ metrics: new ClipMetrics(registry) }), 2);
    const fileA = SPAN / 2; // file A is [0, SPAN/2), file B [SPAN/2, SPAN/2 + 1000): both in span 0
    await blob.read(0, 16384, fileA);
    await blob.read(16384, 16384, fileA);
    assert.equal(await metric(registry, 'clip_readahead_spans_total'), 0, 'within one file: nothing past its end');
    await blob.read(fileA, 1000, fileA + 1000); // on into file B, as tar reads a layer's files
    assert.equal(await metric(registry, 'clip_readahead_spans_total'), 2);
    await origin.whenFetches(2);
    assert.deepEqual(origin.log.map((f) => f.offset), [0, SPAN]);
    assert.equal(origin.bytes, 3 * SPAN);
  });

  test('read-ahead grows while the reader catches up with it, and not while its spans are ready first', async () => {
    const SMALL = 16384;
    /** Waits (bounded) until every span of [offset, offset + length) is in memory. */
    const loaded = async (cache: SpanCache, blob: VerifiedBlob, offset: number, length: number): Promise<void> => {
      const refs = blob.refs(offset, length);
      for (let i = 0; i < 1000 && !refs.every((ref) => cache.has(ref)); i++) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.ok(refs.every((ref) => cache.has(ref)), 'read-ahead spans loaded');
    };

    // A slow reader (tar of small files): each refill finds the spans read ahead already loaded.
    const slowMetrics = new Registry();
    const slowCache = new SpanCache({ metrics: new ClipMetrics(slowMetrics) });
    const slow = blobOver(new FakeOrigin(), slowCache, 2);
    await slow.read(0, SMALL);
    await slow.read(SMALL, SMALL); // sequential: spans 1 and 2 ahead
    await loaded(slowCache, slow, SPAN, 2 * SPAN);
    await slow.read(SPAN, SMALL);
    await slow.read(2 * SPAN, SMALL); // refill: 3 and 4, the window still 2
    assert.equal(await metric(slowMetrics, 'clip_readahead_spans_total'), 4);
    await loaded(slowCache, slow, 3 * SPAN, 2 * SPAN);
    await slow.read(3 * SPAN, SMALL);
    await slow.read(4 * SPAN, SMALL); // refill: 5 and 6
    assert.equal(await metric(slowMetrics, 'clip_readahead_spans_total'), 6, 'the window stays at 2 spans');

    // A fast reader gets to spans read ahead while they are still being fetched: the window doubles.
    const origin = new FakeOrigin();
    const fastMetrics = new Registry();
    const fast = blobOver(origin, new SpanCache({ metrics: new ClipMetrics(fastMetrics) }), 2);
    await fast.read(0, SMALL);
    origin.hold();
    await fast.read(SMALL, SMALL); // sequential: spans 1 and 2 ahead, held at the origin
    const waiting = [fast.read(SPAN, SMALL), fast.read(2 * SPAN, SMALL)]; // refill at span 2: 3 to 6
    assert.equal(await metric(fastMetrics, 'clip_readahead_spans_total'), 6, 'the window doubled to 4 spans');
    origin.release();
    const parts = await Promise.all(waiting);
    assert.deepEqual(parts, [BLOB.subarray(SPAN, SPAN + SMALL), BLOB.subarray(2 * SPAN, 2 * SPAN + SMALL)]);
  });

  test('prefetch caches every span within its bandwidth cap and waits for on-demand reads', async () => {
    const origin = new FakeOrigin();
    const dir = join(work, 'prefetch');
    const registry = new Registry();
    const metrics = new ClipMetrics(registry);
    const cache = new SpanCache({ disk: await DiskCache.open({ dir, maxBytes: 64 << 20 }), metrics });
    const blob = blobOver(origin, cache);
    // An on-demand read is waiting on the origin when prefetch starts: prefetch must not fetch
    // anything until it is served.
    origin.hold();
    const onDemand = blob.read(9 * SPAN, 10);
    await origin.whenFetches(1);
    let waiting = 0;
    const allWaiting = new Promise<void>((resolve) => {
      const idle = cache.idle.bind(cache);
      cache.idle = () => {
        if (++waiting === 3) resolve();
        return idle();
      };
    });
    const bytesPerSecond = 16 * SPAN;
    const started = performance.now();
    const controller = new AbortController();
    const run = prefetchSpans(cache, [...blob.refs(), ...blob.refs()], { concurrency: 3, bytesPerSecond }, controller.signal, { metrics });
    await withDeadline(allWaiting, 'the three prefetch workers to wait for on-demand reads');
    for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(origin.fetches, 1, 'no prefetch fetch while an on-demand read waits');
    origin.release();
    assert.deepEqual(await onDemand, BLOB.subarray(9 * SPAN, 9 * SPAN + 10));
    const result = await run;
    const elapsedMs = performance.now() - started;
    assert.equal(result.spans, 11);
    assert.equal(result.failed, 0);
    assert.deepEqual([result.fetched, result.cached], [10, 1], 'span 9 was cached by the on-demand read');
    assert.equal(result.originBytes, BLOB.length - SPAN, 'every span but the on-demand one (span 9, a full span)');
    assert.equal(origin.fetches, 11, 'each span fetched once');
    assert.equal(origin.log[0]?.offset, 9 * SPAN, 'the on-demand read went first');
    assert.ok(origin.log.slice(1).every((f) => !f.whileHeld), 'no prefetch fetch began before the on-demand read was served');
    // The cap: each of the 11 spans (cached or not) reserves its share of the budget before it
    // starts, so the last cannot start before every other span's share has passed. A lower bound
    // only: a busy machine makes it slower, never faster.
    const minimumMs = (1000 * (BLOB.length - SPAN)) / bytesPerSecond;
    assert.ok(elapsedMs >= minimumMs - 2, `prefetch at ${bytesPerSecond} B/s took ${elapsedMs.toFixed(0)} ms, under the cap's ${minimumMs.toFixed(0)} ms`);
    assert.equal(await metric(registry, 'clip_prefetch_spans_total', { result: 'fetched' }), 10);
    assert.equal(await metric(registry, 'clip_prefetch_spans_total', { result: 'cached' }), 1);
    await cache.close();
    const again = new SpanCache({ disk: await DiskCache.open({ dir, maxBytes: 64 << 20 }) });
    assert.deepEqual(await blobOver(origin, again).read(0, BLOB.length), BLOB);
    assert.equal(origin.fetches, 11);
    await again.close();
  });
});
