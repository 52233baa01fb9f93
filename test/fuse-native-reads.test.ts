import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { createArchive, mountArchive, type MountHandle } from '../src/clipcore/index.js';
import { ClipMetrics } from '../src/clipcore/metrics/clip-metrics.js';
import type { FuseCounters } from '../src/clipcore/fuse/native-fuse.js';
import { fuseMountsUnder, unmountAllUnder } from './helpers/mounts.js';
import { pollUntil } from './helpers/poll.js';
import { run } from './helpers/processes.js';

/**
 * Reads the native FUSE server answers from the read path's caches without JavaScript: spans of
 * the memory tier (published as they enter it, withdrawn as they leave), disk cache entries; and
 * what JavaScript learns of them afterwards (span metrics, LRU recency). The mount is read from
 * child processes only.
 */
describe('native reads from the caches', () => {
  let work: string;
  let archive: string;
  let data: Buffer;
  let expected: string;
  const SPANS = 12; // of 256 KiB, the local archive's default span

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'clip-fuse-reads-'));
    const source = join(work, 'source');
    await mkdir(source, { recursive: true });
    data = Buffer.alloc(SPANS * 256 * 1024);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    await writeFile(join(source, 'data.bin'), data);
    expected = createHash('sha256').update(data).digest('hex');
    archive = join(work, 'data.clip');
    await createArchive({ inputPath: source, outputPath: archive });
  });

  after(async () => {
    await unmountAllUnder(work);
    await rm(work, { recursive: true, force: true });
  });

  /** sha256 of the mounted file, its pages dropped first so that the kernel asks the server again. */
  async function readAll(mountPoint: string): Promise<string> {
    const mounted = join(mountPoint, 'data.bin');
    assert.equal((await run('dd', [`if=${mounted}`, 'of=/dev/null', 'iflag=nocache', 'count=0', 'status=none'])).code, 0);
    return (await run('sha256sum', [mounted])).stdout.split(' ')[0] ?? '';
  }

  /** `bytes` bytes at `offset` of the mounted file, its pages dropped first. */
  async function readPart(mountPoint: string, offset: number, bytes: number): Promise<Buffer> {
    const mounted = join(mountPoint, 'data.bin');
    assert.equal((await run('dd', [`if=${mounted}`, 'of=/dev/null', 'iflag=nocache', 'count=0', 'status=none'])).code, 0);
    const result = await run('sh', ['-c', `dd if='${mounted}' bs=4096 skip=${offset / 4096} count=${bytes / 4096} status=none | base64 -w0`]);
    assert.equal(result.code, 0, result.stderr);
    return Buffer.from(result.stdout, 'base64');
  }

  async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
    const found = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
    const values = (found?.values ?? []) as Array<{ value: number; labels: Record<string, string | number> }>;
    return values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((sum, v) => sum + v.value, 0);
  }

  const counters = (handle: MountHandle): FuseCounters => {
    const value = handle.counters();
    assert.ok(value);
    return value;
  };

  test('spans in the memory tier are served natively and counted in the span metrics', async () => {
    const mountPoint = join(work, 'mnt-memory');
    const registry = new Registry();
    const handle = await mountArchive({ archive, mountPoint, readAheadSpans: 0, metrics: new ClipMetrics(registry) });
    await handle.start();
    try {
      assert.equal(await readAll(mountPoint), expected); // through JavaScript: every span enters the memory tier
      const before = counters(handle);
      const memoryReads = await metric(registry, 'clip_span_reads_total', { tier: 'memory' });
      assert.equal(await readAll(mountPoint), expected);
      const afterRead = counters(handle);
      assert.equal(afterRead.readToJs, before.readToJs, 'no read went to JavaScript');
      const served = afterRead.readFromMemory - before.readFromMemory;
      assert.ok(served > 0);
      assert.equal(afterRead.readsUnlogged, 0);
      // Each native read is at least one span read of the memory tier, once JavaScript has taken the log.
      await pollUntil(
        'native memory reads in clip_span_reads_total',
        () => metric(registry, 'clip_span_reads_total', { tier: 'memory' }),
        (value) => value - memoryReads >= served,
      );
      assert.ok((await metric(registry, 'clip_cache_lookups_total', { tier: 'memory', result: 'hit' })) >= served);
      // Once JavaScript found the log empty (it looks every 2 ms while reads come; the pause lets it), the
      // server announces reads again: a later pass is counted too.
      await delay(50);
      const again = await metric(registry, 'clip_span_reads_total', { tier: 'memory' });
      const beforeAgain = counters(handle).readFromMemory;
      assert.equal(await readAll(mountPoint), expected);
      const servedAgain = counters(handle).readFromMemory - beforeAgain;
      assert.ok(servedAgain > 0);
      await pollUntil('a later pass of native reads in clip_span_reads_total', () => metric(registry, 'clip_span_reads_total', { tier: 'memory' }), (value) => value - again >= servedAgain);
    } finally {
      await handle.unmount();
    }
    assert.deepEqual(await fuseMountsUnder(mountPoint), []);
  });

  test('a span evicted from the memory tier is withdrawn: its reads go back to JavaScript', async () => {
    const mountPoint = join(work, 'mnt-evicted');
    const span = 256 * 1024;
    // Room for 4 of the 12 spans: reading the file leaves only the last 4 in memory.
    const handle = await mountArchive({ archive, mountPoint, readAheadSpans: 0, memoryCacheBytes: 4 * span });
    await handle.start();
    try {
      assert.equal(await readAll(mountPoint), expected);
      const before = counters(handle);
      assert.deepEqual(await readPart(mountPoint, 11 * span, span), data.subarray(11 * span, 12 * span));
      const kept = counters(handle);
      assert.equal(kept.readToJs, before.readToJs, 'the last span is still in memory');
      assert.ok(kept.readFromMemory > before.readFromMemory);
      assert.deepEqual(await readPart(mountPoint, 0, span), data.subarray(0, span));
      assert.ok(counters(handle).readToJs > kept.readToJs, 'the first span, evicted, is read through JavaScript');
    } finally {
      await handle.unmount();
    }
  });

  test('disk cache entries this mount writes are read natively at once', async () => {
    const mountPoint = join(work, 'mnt-written');
    const cacheDir = join(work, 'cache-written');
    const handle = await mountArchive({ archive, mountPoint, cacheDir, memoryCacheBytes: 1, readAheadSpans: 0 });
    await handle.start();
    try {
      assert.equal(await readAll(mountPoint), expected); // from the archive, through JavaScript; each span written to the disk cache
      await pollUntil('every span in the disk cache', async () => (await run('find', [cacheDir, '-path', '*/entries/*', '-type', 'f'])).stdout.split('\n').filter((line) => line !== '').length, (n) => n === SPANS);
      const before = counters(handle);
      assert.equal(await readAll(mountPoint), expected);
      const after = counters(handle);
      assert.equal(after.readToJs, before.readToJs, 'the entries were published as they were written: no header to check in JavaScript');
      assert.ok(after.readFromDisk > before.readFromDisk);
    } finally {
      await handle.unmount();
    }
  });

  test('read-ahead of spans on disk publishes their entries rather than copying them into memory', async () => {
    const cacheDir = join(work, 'cache-ahead');
    const fill = await mountArchive({ archive, mountPoint: join(work, 'mnt-fill'), cacheDir, memoryCacheBytes: 1, readAheadSpans: 0 });
    await fill.start();
    try {
      assert.equal(await readAll(fill.mountPoint), expected);
      await pollUntil('every span in the disk cache', async () => (await run('find', [cacheDir, '-path', '*/entries/*', '-type', 'f'])).stdout.split('\n').filter((line) => line !== '').length, (n) => n === SPANS);
    } finally {
      await fill.unmount();
    }
    // A new mount knows no entry yet; a sequential reader's read-ahead finds them all on disk. A
    // memory tier of 4 spans: copying spans ahead into it would evict those the reader is about to reach.
    const handle = await mountArchive({ archive, mountPoint: join(work, 'mnt-ahead'), cacheDir, memoryCacheBytes: 4 * 256 * 1024 });
    await handle.start();
    try {
      assert.equal(await readAll(handle.mountPoint), expected);
      const after = counters(handle);
      assert.equal(after.readFromMemory, 0, 'no span was copied into memory to be read from there');
      assert.ok(after.readFromDisk > 0);
      assert.ok(after.readToJs < SPANS, `${after.readToJs} of the file's reads went to JavaScript`);
    } finally {
      await handle.unmount();
    }
  });

  test('disk cache entries read only natively are counted and stay recent in the LRU', async () => {
    const mountPoint = join(work, 'mnt-disk');
    const cacheDir = join(work, 'cache');
    const registry = new Registry();
    // No memory tier to speak of: every read the kernel sends goes to the disk cache or further.
    const handle = await mountArchive({ archive, mountPoint, cacheDir, memoryCacheBytes: 1, readAheadSpans: 0, metrics: new ClipMetrics(registry) });
    await handle.start();
    const entries = async (): Promise<string[]> => (await run('find', [cacheDir, '-path', '*/entries/*', '-type', 'f'])).stdout.split('\n').filter((line) => line !== '');
    const realNow = Date.now;
    try {
      assert.equal(await readAll(mountPoint), expected); // from the archive; written to the disk cache
      await pollUntil('every span in the disk cache', entries, (list) => list.length === SPANS);
      const files = await entries();
      const mtimes = (): Promise<number[]> => Promise.all(files.map(async (file) => (await stat(file)).mtimeMs));
      const secondPass = Date.now();
      assert.equal(await readAll(mountPoint), expected); // JavaScript checks each entry's header and publishes it
      // Those reads noted every entry recent; once that is written (in the background), age them all.
      await pollUntil('the reads through JavaScript noted in the mtimes', mtimes, (times) => times.every((m) => m >= secondPass));
      const old = new Date('2001-01-01T00:00:00Z');
      for (const file of files) await utimes(file, old, old);
      // A process notes an entry at most every 30 s: the native reads below come "later".
      Date.now = () => realNow() + 60_000;
      const before = counters(handle);
      const diskHits = await metric(registry, 'clip_span_reads_total', { tier: 'disk' });
      assert.equal(await readAll(mountPoint), expected);
      const afterRead = counters(handle);
      assert.equal(afterRead.readToJs, before.readToJs, 'no read went to JavaScript');
      const served = afterRead.readFromDisk - before.readFromDisk;
      assert.ok(served > 0);
      await pollUntil('native disk reads in clip_span_reads_total', () => metric(registry, 'clip_span_reads_total', { tier: 'disk' }), (v) => v - diskHits >= served);
      await pollUntil('the entries read natively made recent again', mtimes, (times) => times.every((m) => m > old.getTime()));
    } finally {
      Date.now = realNow;
      await handle.unmount();
    }
  });
});
