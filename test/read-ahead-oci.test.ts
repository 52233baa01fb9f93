/**
 * Cold sequential reads of an oci archive through real FUSE mounts, a real registry and the
 * counting proxy: read-ahead across span boundaries and jumps, merged range requests that stay
 * within the file, bounds on range requests in flight, verification of merged spans, and no
 * read-ahead for a random reader. Mounts are read from child processes only.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { Registry } from 'prom-client';
import type { OriginRange } from '../src/clipcore/cache/span-cache.js';
import { FetchSlots } from '../src/clipcore/cache/fetch-slots.js';
import { mountArchive, type MountArchiveOptions, type MountHandle } from '../src/clipcore/fuse/mount.js';
import { ClipMetrics } from '../src/clipcore/metrics/clip-metrics.js';
import type { RequestInfo } from './harness/counting-proxy.js';
import { run } from './helpers/processes.js';
import { hashOf, type ReadPathImage, withReadPathImage } from './helpers/read-path-fixtures.js';

const RANGE_READER = fileURLToPath(new URL('./helpers/range-reader.js', import.meta.url));
const REGISTRY = { retries: 2, retryBaseDelayMs: 5, retryMaxDelayMs: 20, timeoutMs: 5000 };
const MiB = 1024 * 1024;

/** The byte range [start, end) a blob request asked for (its Range header). */
function requestedRange(request: RequestInfo): { start: number; end: number } | undefined {
  const match = /^bytes=(\d+)-(\d+)$/.exec(String(request.headers['range'] ?? ''));
  return match ? { start: Number(match[1]), end: Number(match[2]) + 1 } : undefined;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function readRanges(path: string, ranges: Array<[number, number]>): Promise<string[]> {
  const result = await run(process.execPath, [RANGE_READER, path, JSON.stringify(ranges)]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.trim().split('\n');
}

async function counter(registry: Registry, name: string): Promise<number> {
  const found = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  return (found?.values ?? []).reduce((sum, v) => sum + v.value, 0);
}

describe('oci read-ahead, merged range requests and fetch bounds through FUSE', () => {
  let work: string;
  let image: ReadPathImage;
  let mountCount = 0;

  withReadPathImage('clip-read-ahead-', (w, i) => {
    work = w;
    image = i;
  });

  async function withMount(options: Partial<MountArchiveOptions>, use: (root: string, handle: MountHandle) => Promise<void>): Promise<void> {
    const root = join(work, `mnt-${mountCount++}`);
    const handle = await mountArchive({ archive: image.archive, mountPoint: root, registry: REGISTRY, ...options });
    await handle.start();
    try {
      await use(root, handle);
    } finally {
      await handle.unmount();
    }
  }

  /** Waits (bounded) until no request is in flight at the proxy: read-ahead has settled. */
  async function settled(): Promise<void> {
    for (let i = 0; i < 500 && image.proxy.stats.inFlight > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(image.proxy.stats.inFlight, 0, 'requests still in flight after 5 s');
  }

  test('sequential reads with jumps: right bytes across span boundaries, read-ahead merges neighbours and stays inside the file', async () => {
    const expected = await image.content('big.bin');
    const registry = new Registry();
    image.proxy.resetStats();
    await withMount({ metrics: new ClipMetrics(registry) }, async (root, handle) => {
      const spans = handle.reader.spansOf('big.bin').map((span) => span.originRange as OriginRange);
      assert.ok(spans.length >= 8 && spans.every((range) => range !== undefined));
      // Forward over several span boundaries, a jump ahead, a jump back, then to the end.
      const ranges: Array<[number, number]> = [
        [0, 3 * MiB + 777],
        [6 * MiB + 5, MiB],
        [3 * MiB + 777, 2 * MiB],
        [7 * MiB + 5, expected.length - (7 * MiB + 5)],
      ];
      const hashes = await readRanges(join(root, 'big.bin'), ranges);
      assert.deepEqual(hashes, ranges.map(([offset, length]) => sha256(expected.subarray(offset, offset + length))));
      await settled();
      assert.ok((await counter(registry, 'clip_readahead_spans_total')) > 0, 'a sequential reader gets read-ahead');
      const requests = image.proxy.stats.log.map(requestedRange).filter((range) => range !== undefined);
      const fileStart = (spans[0] as OriginRange).start;
      const fileEnd = (spans[spans.length - 1] as OriginRange).end;
      for (const range of requests) {
        assert.ok(range.start >= fileStart && range.end <= fileEnd, `request [${range.start}, ${range.end}) leaves big.bin's spans [${fileStart}, ${fileEnd})`);
      }
      const spansIn = (range: { start: number; end: number }): number => spans.filter((span) => span.start >= range.start && span.end <= range.end).length;
      assert.ok(requests.some((range) => spansIn(range) >= 2), 'neighbouring spans read ahead share a request');
      const sum = spans.reduce((total, span) => total + span.end - span.start, 0);
      assert.ok(image.proxy.bytesFor('/blobs/') <= sum, 'no span of the file is fetched twice');
    });
  });

  test('a random reader gets no read-ahead: only the spans it reads are fetched', async () => {
    const expected = await image.content('big.bin');
    const registry = new Registry();
    image.proxy.resetStats();
    await withMount({ metrics: new ClipMetrics(registry) }, async (root, handle) => {
      const offsets = [7.3, 2.1, 5.6, 0.2, 4.4].map((at) => Math.round(at * MiB));
      const ranges = offsets.map((offset): [number, number] => [offset, 4096]);
      const hashes = await readRanges(join(root, 'big.bin'), ranges);
      assert.deepEqual(hashes, ranges.map(([offset, length]) => sha256(expected.subarray(offset, offset + length))));
      await settled();
      assert.equal(await counter(registry, 'clip_readahead_spans_total'), 0);
      // A read (with the kernel's own 128 KiB read-ahead) may touch two spans, never more.
      const largest = Math.max(...handle.reader.spansOf('big.bin').map((span) => span.originLength));
      assert.ok(image.proxy.requestsFor('/blobs/') <= 2 * offsets.length, `${image.proxy.requestsFor('/blobs/')} requests`);
      assert.ok(image.proxy.bytesFor('/blobs/') <= 2 * offsets.length * largest);
    });
  });

  test('range requests in flight stay within the mount bound, under slow responses', async () => {
    image.proxy.resetStats();
    // Slow answers make requests overlap: without the bound, six readers would have many in flight.
    const slow = image.proxy.addFault({ kind: 'delay', ms: 40 }, { match: /\/blobs\//, times: 10_000 });
    try {
      await withMount({ maxOriginFetches: 2 }, async (root) => {
        const paths = ['big.bin', 'data/one.bin', 'data/two.bin', 'data/three.txt', 'small/a.txt', 'small/e.txt'];
        const results = await Promise.all(paths.map((path) => hashOf(join(root, path))));
        results.forEach((result, i) => assert.equal(result.hash, image.files.get(paths[i] as string), result.stderr));
        await settled();
        assert.ok(slow.hits > 2);
        assert.ok(image.proxy.stats.maxInFlight <= 2, `${image.proxy.stats.maxInFlight} requests in flight at once`);
      });
    } finally {
      image.proxy.clearFaults();
    }
  });

  test('a merged request with a damaged span: that span is fetched again alone; a span that stays damaged gives EIO, never wrong bytes', async () => {
    image.proxy.resetStats();
    await withMount({}, async (root, handle) => {
      const spans = handle.reader.spansOf('big.bin').map((span) => span.originRange as OriginRange);
      const merged = (request: RequestInfo): boolean => {
        const range = requestedRange(request);
        return range !== undefined && spans.filter((span) => span.start >= range.start && span.end <= range.end).length >= 2;
      };
      // A byte in the second span of the first merged request.
      const flip = image.proxy.addFault({ kind: 'flip', offset: 1.5 * MiB }, { match: merged, times: 1 });
      const result = await hashOf(join(root, 'big.bin'));
      assert.equal(result.hash, image.files.get('big.bin'), result.stderr);
      assert.equal(flip.hits, 1);
    });
    image.proxy.clearFaults();
    image.proxy.addFault({ kind: 'flip', offset: 100 }, { match: /\/blobs\//, times: 10_000 });
    try {
      await withMount({}, async (root) => {
        const result = await hashOf(join(root, 'data/one.bin'));
        assert.equal(result.hash, undefined, 'damaged bytes are never served');
        assert.ok(result.eio, result.stderr);
      });
    } finally {
      image.proxy.clearFaults();
    }
  });
});

test('fetch slots: a mount bound under a node bound, readers before read-ahead', async () => {
  const node = new FetchSlots(3);
  const mounts = [new FetchSlots(2, node), new FetchSlots(2, node)];
  let running = 0;
  let most = 0;
  const perMount = [0, 0];
  const mostPerMount = [0, 0];
  const order: string[] = [];
  const task = (mount: number, name: string) => async (): Promise<void> => {
    running++;
    perMount[mount]!++;
    most = Math.max(most, running);
    mostPerMount[mount] = Math.max(mostPerMount[mount]!, perMount[mount]!);
    await new Promise((resolve) => setImmediate(resolve));
    order.push(name);
    running--;
    perMount[mount]!--;
  };
  const jobs: Array<Promise<void>> = [];
  for (let i = 0; i < 6; i++) jobs.push(mounts[i % 2]!.run(false, task(i % 2, `background-${i}`)));
  jobs.push(mounts[0]!.run(true, task(0, 'urgent')));
  await Promise.all(jobs);
  assert.equal(most, 3);
  assert.deepEqual(mostPerMount, [2, 2]);
  assert.ok(order.indexOf('urgent') < order.indexOf('background-4'), order.join(' '));
  assert.equal(node.inUse, 0);
});
