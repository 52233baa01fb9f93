/** The node-local disk cache on its own: format, integrity, LRU bound, processes sharing it, a full disk. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, readFile, readlink, rename, rm, stat, statfs, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { DiskCache } from '../src/clipcore/cache/disk-cache.js';
import { blockDigestsOf, blockDigestsOffThread, DEFAULT_BLOCK_BYTES as BLOCK, sha256 } from '../src/clipcore/cache/disk-entry.js';
import { ClipMetrics } from '../src/clipcore/metrics/clip-metrics.js';
import type { ClipLogger } from '../src/clipcore/metrics/logger.js';
import { entryContent, keyOf } from './helpers/cache-writer.js';
import { run } from './helpers/processes.js';
import { skipUnlessCi } from './helpers/ci-skip.js';

const WRITER = fileURLToPath(new URL('./helpers/cache-writer.js', import.meta.url));

interface LogLine {
  level: string;
  message: string;
  fields: Record<string, unknown>;
}

function capture(): { logger: ClipLogger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  return { lines, logger: (level, message, fields = {}) => lines.push({ level, message, fields }) };
}

/** Apparent bytes of every file under the cache root (entries, temporaries, ledger), 4 KiB-rounded. */
async function cacheFiles(dir: string): Promise<{ files: string[]; bytes: number }> {
  const files: string[] = [];
  let bytes = 0;
  const walk = async (path: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(path);
    } catch {
      return;
    }
    for (const name of names) {
      const child = join(path, name);
      try {
        const stats = await stat(child);
        if (stats.isDirectory()) await walk(child);
        else if (!child.endsWith('/size') && !child.endsWith('/lock')) {
          files.push(child);
          bytes += Math.ceil(stats.size / 4096) * 4096;
        }
      } catch {
        // removed meanwhile
      }
    }
  };
  await walk(join(dir, 'v1'));
  return { files, bytes };
}

function entryPath(dir: string, key: string): string {
  return join(dir, 'v1', 'entries', key.slice(0, 2), key);
}

async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const values = (metric?.values ?? []) as Array<{ value: number; labels: Record<string, string | number> }>;
  return values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((sum, v) => sum + v.value, 0);
}

describe('DiskCache', () => {
  let work: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'clip-cache-disk-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('stores entries and serves any byte range of them, across instances (restarts)', async () => {
    const dir = join(work, 'basic');
    const data = entryContent(1, 1);
    const key = keyOf(data);
    const first = await DiskCache.open({ dir, maxBytes: 64 << 20 });
    assert.equal(await first.getContent(key, 0, 10), undefined);
    assert.equal(await first.storeContent([data.subarray(0, 1000), data.subarray(1000)], key), true);
    assert.equal(await first.storeContent([data], key), true, 'storing again is a no-op');
    const second = await DiskCache.open({ dir, maxBytes: 64 << 20 });
    for (const [offset, length] of [[0, data.length], [0, 1], [65_535, 2], [70_000, 4096], [data.length - 1, 1], [5, 0]] as const) {
      assert.deepEqual(await second.getContent(key, offset, length), data.subarray(offset, offset + length), `[${offset}, +${length})`);
    }
    assert.equal(await second.getContent(key, data.length - 1, 2), undefined, 'a range past the end is a miss');
    assert.deepEqual(await second.getContent(`sha256:${key}`, 0, 3), data.subarray(0, 3), 'sha256: prefixes name the same entry');
    assert.equal((await cacheFiles(dir)).files.length, 1);
    assert.equal(second.sizeBytes, (await cacheFiles(dir)).bytes);
  });

  test('block digests handed in (from an inflate thread) write the same entry; digests of another block size are not used', async () => {
    const data = entryContent(3, 1);
    const key = keyOf(data);
    const entryFile = async (dir: string): Promise<Buffer> => {
      const files = (await cacheFiles(dir)).files.filter((file) => file.includes('/entries/'));
      assert.equal(files.length, 1);
      return readFile(files[0] as string);
    };
    const plain = join(work, 'digests-plain');
    assert.equal(await (await DiskCache.open({ dir: plain, maxBytes: 64 << 20 })).storeContent([data], key), true);
    const given = join(work, 'digests-given');
    const cache = await DiskCache.open({ dir: given, maxBytes: 64 << 20 });
    assert.equal(await cache.storeContent([data], key, { blockBytes: BLOCK, digests: blockDigestsOf(data, BLOCK) }), true);
    assert.deepEqual(await entryFile(given), await entryFile(plain));
    const other = join(work, 'digests-other-size');
    const wrong = { blockBytes: 2 * BLOCK, digests: blockDigestsOf(data, 2 * BLOCK) };
    assert.equal(await (await DiskCache.open({ dir: other, maxBytes: 64 << 20 })).storeContent([data], key, wrong), true);
    assert.deepEqual(await entryFile(other), await entryFile(plain));
    assert.deepEqual(await (await DiskCache.open({ dir: other, maxBytes: 64 << 20 })).getContent(key, 0, data.length), data);
  });

  test('an entry with a damaged block or header is dropped, reported, and can be stored again', async () => {
    const dir = join(work, 'corrupt');
    const registry = new Registry();
    const metrics = new ClipMetrics(registry);
    const { logger, lines } = capture();
    const cache = await DiskCache.open({ dir, maxBytes: 64 << 20, metrics, logger });
    const data = entryContent(2, 2);
    const key = keyOf(data);
    await cache.storeContent([data], key);
    const path = entryPath(dir, key);
    const bytes = await readFile(path);
    const dataOffset = bytes.length - data.length;
    // Flip one byte in block 2: reads of block 0 still pass (only touched blocks are checked)...
    const damaged = Buffer.from(bytes);
    damaged[dataOffset + 2 * BLOCK + 10] = (damaged[dataOffset + 2 * BLOCK + 10] as number) ^ 0x01;
    await writeFile(path, damaged);
    const fresh = await DiskCache.open({ dir, maxBytes: 64 << 20, metrics, logger });
    assert.deepEqual(await fresh.getContent(key, 0, 100), data.subarray(0, 100));
    // ...and a read of block 2 fails its check: a miss, and the entry is gone.
    assert.equal(await fresh.getContent(key, 2 * BLOCK, 100), undefined);
    await assert.rejects(stat(path), { code: 'ENOENT' });
    assert.equal(await metricValue(registry, 'clip_span_verification_failures_total', { tier: 'disk' }), 1);
    const warning = lines.find((line) => line.level === 'warn' && /failed its check/.test(line.message));
    assert.ok(warning, JSON.stringify(lines));
    assert.equal(warning.fields.key, key);
    assert.match(String(warning.fields.reason), /block 2/);

    assert.equal(await fresh.storeContent([data], key), true);
    assert.deepEqual(await fresh.getContent(key, 0, data.length), data);
    // A damaged header, and a file cut short, are caught the same way.
    const header = await readFile(path);
    header[30] = (header[30] as number) ^ 0xff;
    await writeFile(path, header);
    const third = await DiskCache.open({ dir, maxBytes: 64 << 20, metrics, logger });
    assert.equal(await third.getContent(key, 0, 10), undefined);
    await third.storeContent([data], key);
    await writeFile(path, (await readFile(path)).subarray(0, 5000 + dataOffset));
    const fourth = await DiskCache.open({ dir, maxBytes: 64 << 20, metrics, logger });
    assert.equal(await fourth.getContent(key, 0, data.length), undefined);
    assert.equal(await metricValue(registry, 'clip_span_verification_failures_total', { tier: 'disk' }), 3);
  });

  test('stays under its bound, evicting the least recently used entries', async () => {
    const dir = join(work, 'lru');
    const registry = new Registry();
    const metrics = new ClipMetrics(registry);
    const max = 1024 * 1024;
    const cache = await DiskCache.open({ dir, maxBytes: max, metrics });
    const items = Array.from({ length: 4 }, (_, i) => Buffer.alloc(200_000, i + 1));
    const keys = items.map(keyOf);
    for (let i = 0; i < items.length; i++) {
      await cache.storeContent([items[i] as Buffer], keys[i] as string);
      // Distinct, increasing ages: entry 0 is the oldest.
      const when = Date.now() / 1000 - 1000 + i;
      await utimes(entryPath(dir, keys[i] as string), when, when);
    }
    // Reading entry 0 makes it the most recently used.
    assert.ok(await cache.getContent(keys[0] as string, 0, 10)); // an eviction writes this recency first
    for (let i = 0; i < 2; i++) {
      const extra = Buffer.alloc(200_000, 100 + i);
      assert.equal(await cache.storeContent([extra], keyOf(extra)), true);
      const { bytes } = await cacheFiles(dir);
      assert.ok(bytes <= max, `${bytes} bytes on disk, bound ${max}`);
      assert.ok(cache.sizeBytes <= max);
    }
    assert.ok(await cache.has(keys[0] as string), 'the entry read recently survives');
    assert.equal(await cache.has(keys[1] as string), false, 'the least recently used entries went first');
    assert.equal(await cache.has(keys[2] as string), false);
    for (let i = 2; i < 6; i++) {
      const extra = Buffer.alloc(200_000, 100 + i);
      assert.equal(await cache.storeContent([extra], keyOf(extra)), true);
      assert.ok((await cacheFiles(dir)).bytes <= max);
    }
    assert.ok((await metricValue(registry, 'clip_disk_cache_evictions_total')) >= 2);
    assert.ok((await metricValue(registry, 'clip_disk_cache_size_bytes')) <= max);
    assert.equal(await cache.storeContent([Buffer.alloc(max)], keyOf(Buffer.alloc(max))), false, 'an entry bigger than the bound is declined');
  });

  test('four processes sharing one directory never corrupt it nor pass its bound', async (t) => {
    // On a tmpfs of its own, the filesystem's used bytes are an exact, atomic measure of the cache.
    const dir = join(work, 'shared');
    await mkdir(dir, { recursive: true });
    const mounted = await run('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', dir]);
    if (mounted.code !== 0) {
      skipUnlessCi(t, `cannot mount a tmpfs: ${mounted.stderr}`);
      return;
    }
    try {
      const max = 3 * 1024 * 1024;
      const used = async (): Promise<number> => {
        const stats = await statfs(dir);
        return (stats.blocks - stats.bfree) * stats.bsize;
      };
      const baseline = await used();
      let largest = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          largest = Math.max(largest, (await used()) - baseline);
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      })();
      const results = await Promise.all([1, 2, 3, 4].map((seed) => run(process.execPath, [WRITER, dir, String(max), String(seed), '40'])));
      sampling = false;
      await sampler;
      for (const result of results) {
        assert.equal(result.code, 0, result.stderr);
        const counts = JSON.parse(result.stdout) as { stored: number; wrong: number; readBack: number };
        assert.equal(counts.wrong, 0);
        assert.ok(counts.stored > 0);
      }
      // The ledger and the lock file take a page each besides the entries.
      assert.ok(largest <= max + 2 * 4096, `${largest} bytes used on the cache's filesystem, bound ${max}`);
      // Every entry left is valid and whole; no temporary file is left.
      const cache = await DiskCache.open({ dir, maxBytes: max });
      const { files, bytes } = await cacheFiles(dir);
      assert.ok(files.length > 3);
      assert.ok(bytes <= max);
      for (const file of files) {
        assert.match(file, /\/entries\//, `leftover ${file}`);
        const key = file.slice(file.lastIndexOf('/') + 1);
        const size = (await stat(file)).size;
        assert.ok(await cache.getContent(key, 0, 1), `entry ${key} (${size} bytes) unreadable`);
      }
      await cache.close();
    } finally {
      const unmounted = await run('umount', [dir]);
      assert.equal(unmounted.code, 0, unmounted.stderr);
    }
  });

  test('a read that knows the entry length gets header and blocks at once; entries of any block size read right', async () => {
    const dir = join(work, 'block-sizes');
    const registry = new Registry();
    const metrics = new ClipMetrics(registry);
    const ownSize = entryContent(11, 1);
    const otherSize = entryContent(11, 2);
    await (await DiskCache.open({ dir, maxBytes: 64 << 20 })).storeContent([ownSize], keyOf(ownSize));
    // An entry written with 64 KiB blocks (an earlier version's default): its header says so.
    await (await DiskCache.open({ dir, maxBytes: 64 << 20, blockBytes: 65536 })).storeContent([otherSize], keyOf(otherSize));
    const ranges = (size: number): Array<[number, number]> => [[0, 1], [BLOCK - 2, 4], [3 * BLOCK + 5, 4096], [65_530, 70_000], [size - 4096, 4096], [0, size]];
    for (const data of [ownSize, otherSize]) {
      for (const hint of [data.length, data.length + 4096, undefined]) {
        for (const [offset, length] of ranges(data.length)) {
          // A fresh instance each time: the header is not known yet, as in a new process.
          const reader = await DiskCache.open({ dir, maxBytes: 64 << 20, metrics });
          assert.deepEqual(await reader.getContent(keyOf(data), offset, length, hint), data.subarray(offset, offset + length), `[${offset}, +${length}) hint ${hint}`);
          assert.deepEqual(await reader.getContent(keyOf(data), offset, length, hint), data.subarray(offset, offset + length), 'again, header known');
          await reader.close();
        }
      }
    }
    assert.equal(await metricValue(registry, 'clip_span_verification_failures_total', { tier: 'disk' }), 0);
  });

  test('a header remembered from an earlier file of an entry does not condemn the file now under its name', async () => {
    const dir = join(work, 'replaced-geometry');
    const registry = new Registry();
    const reader = await DiskCache.open({ dir, maxBytes: 64 << 20, metrics: new ClipMetrics(registry) });
    const data = entryContent(12, 1);
    const key = keyOf(data);
    await (await DiskCache.open({ dir, maxBytes: 64 << 20, blockBytes: 65536 })).storeContent([data], key);
    assert.deepEqual(await reader.getContent(key, 5 * BLOCK, 100, data.length), data.subarray(5 * BLOCK, 5 * BLOCK + 100));
    // Another process replaces the entry with a copy written with other blocks.
    await rm(entryPath(dir, key));
    await (await DiskCache.open({ dir, maxBytes: 64 << 20 })).storeContent([data], key);
    assert.deepEqual(await reader.getContent(key, 5 * BLOCK, 100, data.length), data.subarray(5 * BLOCK, 5 * BLOCK + 100));
    assert.ok(await reader.has(key), 'the good entry is kept');
    assert.equal(await metricValue(registry, 'clip_span_verification_failures_total', { tier: 'disk' }), 0);
  });

  test('every read checks the blocks it touches: damage after an earlier good read is caught, in place or by replacement', async () => {
    const dir = join(work, 'checked-every-read');
    const registry = new Registry();
    const reader = await DiskCache.open({ dir, maxBytes: 64 << 20, metrics: new ClipMetrics(registry) });
    const data = entryContent(13, 1);
    const key = keyOf(data);
    const path = entryPath(dir, key);
    const damage = async (replace: boolean): Promise<void> => {
      const bytes = await readFile(path);
      bytes[bytes.length - data.length + 100] = (bytes[bytes.length - data.length + 100] as number) ^ 0x20;
      if (!replace) return writeFile(path, bytes); // same file, rewritten
      await writeFile(`${path}.new`, bytes);
      await rename(`${path}.new`, path); // a new file under the name, as a writer renames one in
    };
    for (const replace of [false, true]) {
      assert.equal(await reader.storeContent([data], key), true);
      assert.deepEqual(await reader.getContent(key, 0, 200, data.length), data.subarray(0, 200), 'checked and good');
      await damage(replace);
      assert.equal(await reader.getContent(key, 0, 200, data.length), undefined, `damage ${replace ? 'by replacement' : 'in place'} is caught`);
      await assert.rejects(stat(path), { code: 'ENOENT' }, 'and the entry deleted');
    }
    assert.equal(await metricValue(registry, 'clip_span_verification_failures_total', { tier: 'disk' }), 2);
  });

  test('reads refresh LRU recency (mtime) in the background, and close() writes what is pending', async () => {
    const dir = join(work, 'touch');
    const writer = await DiskCache.open({ dir, maxBytes: 64 << 20 });
    const [first, second] = [entryContent(14, 1), entryContent(14, 2)];
    const old = Date.now() / 1000 - 3600;
    for (const data of [first, second]) {
      await writer.storeContent([data], keyOf(data));
      await utimes(entryPath(dir, keyOf(data)), old, old);
    }
    const mtime = async (data: Buffer): Promise<number> => (await stat(entryPath(dir, keyOf(data)))).mtimeMs;
    const reader = await DiskCache.open({ dir, maxBytes: 64 << 20 });
    assert.ok(await reader.getContent(keyOf(first), 0, 10));
    const deadline = Date.now() + 10_000;
    while ((await mtime(first)) < Date.now() - 60_000 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok((await mtime(first)) >= Date.now() - 60_000, 'written by the background timer');
    assert.ok(await reader.getContent(keyOf(second), 0, 10));
    await reader.close();
    assert.ok((await mtime(second)) >= Date.now() - 60_000, 'written by close()');
  });

  test('entry files are closed after reads, in the background; close() waits until none is open', async () => {
    const dir = join(work, 'descriptors');
    const cache = await DiskCache.open({ dir, maxBytes: 64 << 20 });
    const items = Array.from({ length: 20 }, (_, i) => entryContent(15, i));
    for (const data of items) await cache.storeContent([data], keyOf(data));
    const openInDir = async (): Promise<number> => {
      let count = 0;
      for (const fd of await readdir('/proc/self/fd')) {
        const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
        if (target.startsWith(join(dir, 'v1', 'entries'))) count++;
      }
      return count;
    };
    const parts = await Promise.all(items.map((data) => cache.getContent(keyOf(data), 100, 5000, data.length)));
    parts.forEach((part, i) => assert.deepEqual(part, (items[i] as Buffer).subarray(100, 5100)));
    await cache.close();
    assert.equal(await openInDir(), 0);
  });

  test('the entry hash (one-shot crypto.hash where Node has it) is sha256 of strings and of buffer views', () => {
    const bytes = entryContent(16, 1);
    const view = bytes.subarray(1000, 1000 + 3 * BLOCK + 7);
    assert.deepEqual(sha256(view), createHash('sha256').update(view).digest());
    assert.deepEqual(sha256('clé/1'), createHash('sha256').update('clé/1', 'utf8').digest());
  });

  test('block digests (native/clip_digest.c) are the sha256 of each block, on this thread or off it; bad arguments throw', async () => {
    const bytes = entryContent(16, 2);
    const byCrypto = (data: Uint8Array, block: number): Buffer => {
      const out: Buffer[] = [];
      for (let at = 0; at < data.length; at += block) out.push(createHash('sha256').update(data.subarray(at, at + block)).digest());
      return Buffer.concat(out);
    };
    for (const length of [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 5 * BLOCK + 17, bytes.length]) {
      const view = bytes.subarray(3, 3 + Math.min(length, bytes.length - 3));
      for (const block of [BLOCK, 4 * BLOCK]) {
        assert.deepEqual(blockDigestsOf(view, block), byCrypto(view, block), `${view.length} bytes, ${block}-byte blocks`);
        assert.deepEqual(await blockDigestsOffThread(view, block), byCrypto(view, block), `${view.length} bytes, ${block}-byte blocks, off thread`);
      }
    }
    assert.throws(() => blockDigestsOf(bytes, 0), /blockBytes must be a positive integer/);
    await assert.rejects(blockDigestsOffThread(bytes, -1), /blockBytes must be a positive integer/);
  });

  test('a lock left by a dead process is broken', async () => {
    const dir = join(work, 'stale-lock');
    const cache = await DiskCache.open({ dir, maxBytes: 8 << 20 });
    await writeFile(join(dir, 'v1', 'lock'), JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname() }));
    const data = entryContent(5, 5);
    const started = Date.now();
    assert.equal(await cache.storeContent([data], keyOf(data)), true);
    assert.ok(Date.now() - started < 5000);
  });

  test('a full disk declines writes with a warning, never an error', async (t) => {
    const dir = join(work, 'tmpfs');
    await mkdir(dir, { recursive: true });
    const mounted = await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
    if (mounted.code !== 0) {
      skipUnlessCi(t, `cannot mount a tmpfs: ${mounted.stderr}`);
      return;
    }
    try {
      const registry = new Registry();
      const { logger, lines } = capture();
      const cache = await DiskCache.open({ dir, maxBytes: 1 << 30, logger, metrics: new ClipMetrics(registry) });
      const big = entryContent(9, 9); // fills what is left after a first entry
      const entries = [Buffer.alloc(600_000, 7), big, Buffer.alloc(900_000, 3)];
      const stored = [];
      for (const data of entries) stored.push(await cache.storeContent([data], keyOf(data)));
      assert.ok(stored.includes(false), `stored ${stored.join(',')}`);
      const warning = lines.find((line) => line.level === 'warn' && line.fields.code === 'ENOSPC');
      assert.ok(warning, JSON.stringify(lines));
      assert.ok((await metricValue(registry, 'clip_disk_cache_write_failures_total', { reason: 'ENOSPC' })) >= 1);
      // Nothing half-written is left behind, and what was stored reads back.
      const { files } = await cacheFiles(dir);
      assert.ok(files.every((file) => file.includes('/entries/')), files.join(', '));
      const first = entries[0] as Buffer;
      if (stored[0]) assert.deepEqual(await cache.getContent(keyOf(first), 0, first.length), first);
      const handle = await open(join(dir, 'v1', 'size'), 'r').catch(() => undefined);
      await handle?.close();
      await cache.close();
    } finally {
      const unmounted = await run('umount', [dir]);
      assert.equal(unmounted.code, 0, unmounted.stderr);
    }
  });
});
