/**
 * The production read path of an oci archive through real FUSE mounts, a real registry and the
 * counting, fault-injecting proxy: tiers, eviction, integrity under faults, shared fetches,
 * restarts, a full disk and metrics. Mounts are read from child processes only.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { mountArchive, type MountArchiveOptions, type MountHandle } from '../src/clipcore/fuse/mount.js';
import { ClipMetrics } from '../src/clipcore/metrics/clip-metrics.js';
import type { ClipLogger } from '../src/clipcore/metrics/logger.js';
import type { Fault } from './harness/counting-proxy.js';
import { run, startClipMount } from './helpers/processes.js';
import { hashOf, type ReadPathImage, withReadPathImage } from './helpers/read-path-fixtures.js';
import { skipUnlessCi } from './helpers/ci-skip.js';

interface LogLine {
  level: string;
  message: string;
  fields: Record<string, unknown>;
}

/** Quick retries and timeouts, so that faults resolve within a test. */
const REGISTRY = { retries: 2, retryBaseDelayMs: 5, retryMaxDelayMs: 20, timeoutMs: 1500 };

async function cacheBytes(dir: string): Promise<{ entries: string[]; bytes: number }> {
  const entries: string[] = [];
  let bytes = 0;
  const root = join(dir, 'v1', 'entries');
  for (const fan of await readdir(root).catch(() => [] as string[])) {
    for (const name of await readdir(join(root, fan))) {
      entries.push(join(root, fan, name));
      bytes += Math.ceil((await stat(join(root, fan, name))).size / 4096) * 4096;
    }
  }
  return { entries, bytes };
}

async function metricValues(registry: Registry, name: string): Promise<Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>> {
  const found = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  return (found?.values ?? []) as Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>;
}

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  return (await metricValues(registry, name))
    .filter((v) => (v.metricName === undefined || v.metricName === name) && Object.entries(labels).every(([k, l]) => v.labels[k] === l))
    .reduce((sum, v) => sum + v.value, 0);
}

describe('oci read path through FUSE', () => {
  let work: string;
  let image: ReadPathImage;
  let mountCount = 0;

  withReadPathImage('clip-read-path-', (w, i) => {
    work = w;
    image = i;
  });

  /** Mounts the image in this process; `use` reads it from child processes; always unmounts. */
  async function withMount(
    options: Partial<MountArchiveOptions>,
    use: (mount: { root: string; handle: MountHandle; logs: LogLine[]; errors: string[] }) => Promise<void>,
  ): Promise<void> {
    const logs: LogLine[] = [];
    const logger: ClipLogger = (level, message, fields = {}) => logs.push({ level, message, fields });
    const root = join(work, `mnt-${mountCount++}`);
    const handle = await mountArchive({ archive: image.archive, mountPoint: root, registry: REGISTRY, logger, ...options });
    const errors: string[] = [];
    handle.onError(({ error }) => errors.push(error.message));
    await handle.start();
    try {
      await use({ root, handle, logs, errors });
    } finally {
      await handle.unmount();
    }
  }

  async function expectAllFiles(root: string, paths = [...image.files.keys()]): Promise<void> {
    for (const path of paths) {
      const got = await hashOf(join(root, path));
      assert.equal(got.hash, image.files.get(path), `${path}: ${got.stderr}`);
    }
  }

  test('an image larger than the disk cache: evictions keep it under its bound, content stays right', async () => {
    const cacheDir = join(work, 'cache-small');
    const max = 6 * 1024 * 1024;
    const registry = new Registry();
    await withMount({ cacheDir, cacheMaxBytes: max, memoryCacheBytes: 2 * 1024 * 1024, metrics: new ClipMetrics(registry) }, async ({ root, errors }) => {
      await expectAllFiles(root);
      assert.deepEqual(errors, []);
    });
    const { bytes } = await cacheBytes(cacheDir);
    assert.ok(bytes > 0 && bytes <= max, `${bytes} bytes cached, bound ${max}`);
    assert.ok((await metric(registry, 'clip_disk_cache_evictions_total')) > 0);
    assert.ok((await metric(registry, 'clip_disk_cache_size_bytes')) <= max);
  });

  test('a damaged disk cache entry is detected, dropped and refetched', async () => {
    const cacheDir = join(work, 'cache-corrupt');
    await withMount({ cacheDir }, async ({ root }) => expectAllFiles(root, ['big.bin']));
    const { entries } = await cacheBytes(cacheDir);
    assert.ok(entries.length >= 8);
    const victim = entries[3] as string;
    const bytes = await readFile(victim);
    bytes[bytes.length - 1000] = (bytes[bytes.length - 1000] as number) ^ 0x10;
    await writeFile(victim, bytes);

    image.proxy.resetStats();
    const registry = new Registry();
    await withMount({ cacheDir, metrics: new ClipMetrics(registry) }, async ({ root, logs }) => {
      await expectAllFiles(root, ['big.bin']);
      assert.ok(logs.some((line) => line.level === 'warn' && /failed its check/.test(line.message)), JSON.stringify(logs));
    });
    assert.equal(await metric(registry, 'clip_span_verification_failures_total', { tier: 'disk' }), 1);
    assert.equal(image.proxy.requestsFor('/blobs/'), 1, 'only the damaged span came from the registry');
    // It was stored again: a third mount needs nothing from the registry.
    image.proxy.resetStats();
    await withMount({ cacheDir }, async ({ root }) => expectAllFiles(root, ['big.bin']));
    assert.equal(image.proxy.bytesFor('/blobs/'), 0);
  });

  test('under flipped, truncated, dropped and delayed responses: each fault is hit, reads are right or EIO as expected, and recover', async (t) => {
    // Each request gets REGISTRY.retries + 1 = 3 attempts and each span one refetch after a
    // failed verification, so a fault that hits at most twice is absorbed, and one that stays is
    // not. `oneSpan` aims every hit at the first span requested, so that its fetch and its
    // refetch both fail (with concurrent read-ahead, hits could otherwise spread over spans): that
    // read fails in clip, but the kernel retries a failed read-ahead page with a read of its own,
    // which fetches the span a third time, unharmed, so the file may still read right.
    const faults: Array<{ fault: Fault; times: number; oneSpan?: boolean; expect: 'ok' | 'EIO' | 'failed once' }> = [
      { fault: { kind: 'flip', offset: 100 }, times: 1, expect: 'ok' },
      { fault: { kind: 'flip', offset: 5000 }, times: 2, oneSpan: true, expect: 'failed once' },
      { fault: { kind: 'truncate', bytes: 1000 }, times: 2, expect: 'ok' },
      { fault: { kind: 'drop' }, times: 2, expect: 'ok' },
      { fault: { kind: 'drop-after', bytes: 70_000 }, times: 2, expect: 'ok' },
      { fault: { kind: 'delay', ms: 2500 }, times: 1, expect: 'ok' },
      { fault: { kind: 'status', status: 500 }, times: 100, expect: 'EIO' },
      { fault: { kind: 'flip', offset: 10 }, times: 100, expect: 'EIO' },
    ];
    const cacheDir = join(work, 'cache-faults');
    const outcomes: string[] = [];
    const pathOf = (i: number): string => (i % 2 === 0 ? 'data/three.txt' : 'data/one.bin');
    for (const [i, { fault, times, oneSpan, expect }] of faults.entries()) {
      const path = pathOf(i);
      const name = `${fault.kind}x${times}`;
      await withMount({ cacheDir: `${cacheDir}-${i}` }, async ({ root, logs }) => {
        let firstRange: string | undefined;
        const match = (r: { method: string; path: string; headers: { range?: string | undefined } }): boolean => {
          if (!r.path.includes('/blobs/')) return false;
          if (!oneSpan) return true;
          firstRange ??= r.headers.range;
          return r.headers.range === firstRange;
        };
        const added = image.proxy.addFault(fault, { match, times });
        const got = await hashOf(join(root, path));
        image.proxy.clearFaults();
        outcomes.push(`${name}:${got.hash ? 'ok' : 'EIO'}(${added.hits} hits)`);
        if (got.hash !== undefined) assert.equal(got.hash, image.files.get(path), `${name}: wrong bytes served`);
        else assert.ok(got.eio, `${name}: ${got.stderr}`);
        if (expect !== 'failed once') assert.equal(got.hash === undefined ? 'EIO' : 'ok', expect, `${name}: ${got.stderr}`);
        // The fault was really exercised: every limited one used up, a lasting one hit at least
        // once per attempt of one request.
        if (times < 100) assert.equal(added.hits, times, `${name} was hit ${added.hits} times`);
        else assert.ok(added.hits >= REGISTRY.retries + 1, `${name} was hit ${added.hits} times`);
        if (fault.kind === 'flip' && expect !== 'ok') {
          const line = logs.find((l) => l.level === 'error' && /failed verification/.test(l.message));
          assert.ok(line, JSON.stringify(logs));
          assert.ok(image.layerDigests.includes(String(line.fields.layer)));
          assert.equal(typeof line.fields.span, 'number');
          assert.match(String(line.fields.image), /readpath\/app@sha256:/);
        }
        // The proxy behaves again: the same mount recovers.
        const again = await hashOf(join(root, path));
        assert.equal(again.hash, image.files.get(path), `${name}: no recovery: ${again.stderr}`);
      });
    }
    t.diagnostic(outcomes.join(' '));
    // What each mount cached on disk is right, and complete for the file it read in full: read
    // everything again with the registry gone.
    for (const [i] of faults.entries()) {
      await withMount({ cacheDir: `${cacheDir}-${i}` }, async ({ root }) => {
        image.proxy.addFault({ kind: 'status', status: 503 }, { match: /blobs/, times: 1_000_000 });
        try {
          const read = await hashOf(join(root, pathOf(i)));
          assert.equal(read.hash, image.files.get(pathOf(i)), `mount ${i}: ${pathOf(i)} from the disk cache alone: ${read.stderr}`);
          const other = pathOf(i + 1);
          const got = await hashOf(join(root, other));
          if (got.hash !== undefined) assert.equal(got.hash, image.files.get(other));
          else assert.ok(got.eio, got.stderr);
        } finally {
          image.proxy.clearFaults();
        }
      });
    }
  });

  test('32 concurrent readers of one file: each span fetched once (neighbours may share a request)', async () => {
    image.proxy.resetStats();
    await withMount({}, async ({ root, handle }) => {
      const spans = handle.reader.spansOf('big.bin');
      assert.ok(spans.length >= 8);
      const results = await Promise.all(Array.from({ length: 32 }, () => hashOf(join(root, 'big.bin'))));
      for (const result of results) assert.equal(result.hash, image.files.get('big.bin'), result.stderr);
      assert.ok(image.proxy.requestsFor('/blobs/') <= spans.length, `${image.proxy.requestsFor('/blobs/')} requests for ${spans.length} spans`);
      // Merged neighbours share the byte where a gzip span starts mid-byte: between the union of
      // the spans' bytes and their sum, never a span twice.
      const sum = spans.reduce((total, span) => total + span.originLength, 0);
      const bytes = image.proxy.bytesFor('/blobs/');
      assert.ok(bytes <= sum && bytes >= sum - spans.length, `${bytes} bytes for spans of ${sum}`);
    });
  });

  test('a new process on the same cache directory reads everything with zero bytes from the registry', async () => {
    const cacheDir = join(work, 'cache-restart');
    const args = ['--cache-dir', cacheDir, '--cache-max-bytes', '1Gi'];
    const first = await startClipMount(image.archive, join(work, 'mnt-restart-1'), { args });
    try {
      await expectAllFiles(join(work, 'mnt-restart-1'));
    } finally {
      const stopped = await first.stop();
      assert.equal(stopped.code, 0, stopped.stderr);
    }
    image.proxy.resetStats();
    const second = await startClipMount(image.archive, join(work, 'mnt-restart-2'), { args });
    try {
      await expectAllFiles(join(work, 'mnt-restart-2'));
    } finally {
      const stopped = await second.stop();
      assert.equal(stopped.code, 0, stopped.stderr);
    }
    assert.equal(image.proxy.bytesFor('/blobs/'), 0);
    assert.equal(image.proxy.stats.bytesOut, 0);
  });

  test('sanity: random 4 KiB reads served by the disk tier (latency reported, not asserted)', async (t) => {
    const cacheDir = join(work, 'cache-restart'); // filled by the previous test
    const registry = new Registry();
    image.proxy.resetStats();
    await withMount({ cacheDir, metrics: new ClipMetrics(registry), readAheadSpans: 0 }, async ({ root }) => {
      const script = [
        'import os, sys, time, random',
        'fd = os.open(sys.argv[1], os.O_RDONLY); size = os.fstat(fd).st_size',
        'os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM); random.seed(1); times = []',
        'for i in range(300):',
        '    offset = random.randrange(0, size - 4096) // 4096 * 4096',
        '    start = time.perf_counter(); data = os.pread(fd, 4096, offset); times.append(time.perf_counter() - start)',
        '    assert len(data) == 4096',
        'times.sort(); print("%.3f %.3f" % (times[len(times) // 2] * 1000, times[int(len(times) * 0.99)] * 1000))',
      ].join('\n');
      const result = await run('python3', ['-c', script, join(root, 'big.bin')]);
      assert.equal(result.code, 0, result.stderr);
      const [p50, p99] = result.stdout.trim().split(' ');
      t.diagnostic(`warm 4 KiB pread through FUSE from the disk tier: p50 ${p50} ms, p99 ${p99} ms`);
    });
    assert.equal(image.proxy.bytesFor('/blobs/'), 0);
    assert.ok((await metric(registry, 'clip_span_reads_total', { tier: 'disk' })) > 0);
  });

  test('prefetch of hot paths fills the disk cache in the background', async () => {
    const cacheDir = join(work, 'cache-prefetch');
    const registry = new Registry();
    await withMount(
      { cacheDir, metrics: new ClipMetrics(registry), prefetch: { paths: ['data/three.txt', 'small'], concurrency: 2, bytesPerSecond: 100 * 1024 * 1024 } },
      async ({ handle }) => {
        const result = await handle.reader.prefetchDone;
        assert.ok(result && result.failed === 0 && result.fetched > 0, JSON.stringify(result));
        assert.equal(result.fetched + result.cached, result.spans);
      },
    );
    assert.ok((await metric(registry, 'clip_prefetch_spans_total', { result: 'fetched' })) > 0);
    image.proxy.resetStats();
    await withMount({ cacheDir }, async ({ root }) => expectAllFiles(root, ['data/three.txt', 'small/a.txt', 'small/e.txt']));
    assert.equal(image.proxy.bytesFor('/blobs/'), 0);
  });

  test('a full disk: reads still succeed, with a warning', async (t) => {
    const cacheDir = join(work, 'cache-tmpfs');
    await mkdir(cacheDir, { recursive: true });
    const mounted = await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', cacheDir]);
    if (mounted.code !== 0) {
      skipUnlessCi(t, `cannot mount a tmpfs: ${mounted.stderr}`);
      return;
    }
    try {
      await withMount({ cacheDir }, async ({ root, logs, errors }) => {
        await expectAllFiles(root);
        assert.deepEqual(errors, []);
        assert.ok(logs.some((line) => line.level === 'warn' && line.fields.code === 'ENOSPC'), JSON.stringify(logs.slice(0, 5)));
      });
    } finally {
      const unmounted = await run('umount', [cacheDir]);
      assert.equal(unmounted.code, 0, unmounted.stderr);
    }
  });

  test('metrics: hits and misses by tier, first-read latency per file, origin bytes', async () => {
    const cacheDir = join(work, 'cache-metrics');
    const registry = new Registry();
    const metrics = new ClipMetrics(registry);
    const small = ['small/a.txt', 'small/b.txt', 'small/c.txt'];
    await withMount({ cacheDir, metrics }, async ({ root }) => expectAllFiles(root, small));
    // The small files share a span: one came from the registry, the others from memory.
    assert.ok((await metric(registry, 'clip_span_reads_total', { tier: 'origin' })) >= 1);
    assert.ok((await metric(registry, 'clip_span_reads_total', { tier: 'memory' })) >= 1);
    assert.ok((await metric(registry, 'clip_origin_fetched_bytes_total', { origin: 'registry' })) > 0);
    await withMount({ cacheDir, metrics }, async ({ root }) => expectAllFiles(root, small));
    assert.ok((await metric(registry, 'clip_span_reads_total', { tier: 'disk' })) >= 1);
    assert.ok((await metric(registry, 'clip_cache_lookups_total', { tier: 'disk', result: 'hit' })) >= 1);
    const firstReads = (await metricValues(registry, 'clip_first_read_duration_seconds')).find((v) => v.metricName === 'clip_first_read_duration_seconds_count');
    assert.equal(firstReads?.value, 2 * small.length, 'one first read per file per mount');
    const text = await registry.metrics();
    assert.match(text, /clip_span_reads_total\{tier="memory"\} \d+/);
    assert.match(text, /clip_span_read_duration_seconds_bucket\{le="0.001",tier="disk"\}/);
    assert.match(text, /clip_disk_cache_size_bytes \d+/);
  });
});
