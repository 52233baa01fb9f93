import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { constants, gzipSync } from 'node:zlib';
import { ClipError } from '../src/clipcore/errors.js';
import {
  GzipIndexer,
  inflateRange,
  MiB,
  readUncompressedRange,
  SMALL_LAYER_BYTES,
  type LayerIndex,
} from '../src/clipcore/compression/index.js';
import { checkIndexShape, checkRanges, indexBlob, reportInflateBackend } from './helpers/compression-check.js';
import { gzipMember, mixedData, randomBytes, runTool } from './helpers/compression-data.js';

const SPAN = 1 * MiB;

function isClipError(code: string): (err: unknown) => boolean {
  return (err) => err instanceof ClipError && err.code === code;
}

test('the inflate backend in use', (t) => reportInflateBackend(t));

describe('gzip index: a ~48 MiB stream from the gzip binary', () => {
  let ref: Buffer;
  let blob: Buffer;
  let index: LayerIndex;

  before(async () => {
    ref = mixedData(48 * MiB + 12345, 1);
    blob = await runTool('gzip', ['-6', '-c', '-n'], ref);
    const indexed = indexBlob('gzip', blob, SPAN, 1 << 20);
    index = indexed.index;
    assert.ok(indexed.output.equals(ref), 'indexer output differs from the input');
  });

  test('index shape: checkpoints every >= spanBytes at block boundaries, spans hashed', () => {
    checkIndexShape(index, blob, SPAN);
    assert.equal(index.uncompressedSize, ref.length);
    assert.equal(index.checkpoints[0]!.compressedOffset, 10, 'first checkpoint right after the 10-byte header');
    assert.equal(index.checkpoints[0]!.window.length, 0);
    assert.ok(index.checkpoints.length >= 30, `only ${index.checkpoints.length} checkpoints`);
    assert.ok(index.checkpoints.some((cp) => cp.bits > 0), 'some checkpoint should sit mid-byte');
    assert.ok(index.checkpoints.slice(1).every((cp) => cp.window.length === 32 * 1024));
    for (let i = 1; i < index.checkpoints.length; i++) {
      const cp = index.checkpoints[i]!;
      assert.ok(cp.window.equals(ref.subarray(cp.uncompressedOffset - 32 * 1024, cp.uncompressedOffset)));
    }
  });

  test('hundreds of ranges match, fetching at most two spans for small reads', async () => {
    const stats = await checkRanges('gzip', index, blob, ref, 320, 7, SPAN);
    assert.ok(stats.reads >= 300);
    assert.equal(stats.maxSpansPerSmallRead, 2);
  });

  test('inflateRange from a checkpoint, directly', () => {
    const i = Math.floor(index.checkpoints.length / 2);
    const cp = index.checkpoints[i]!;
    const span = index.spans[i]!;
    const data = blob.subarray(span.compressedStart, span.compressedEnd);
    const start = cp.uncompressedOffset + 100;
    assert.ok(inflateRange(cp, data, start, span.uncompressedEnd).equals(ref.subarray(start, span.uncompressedEnd)));
    assert.equal(inflateRange(cp, data, start, start).length, 0);
    assert.throws(() => inflateRange(cp, data, cp.uncompressedOffset - 1, start), isClipError('INVALID_ARGUMENT'));
    // Asking past the fetched span is truncation, not garbage.
    assert.throws(() => inflateRange(cp, data, start, span.uncompressedEnd + 10), isClipError('CORRUPT'));
  });

  test('a span with a flipped byte gives DIGEST_MISMATCH naming the span', async () => {
    const span = index.spans[3]!;
    const fetch = async (s: number, e: number): Promise<Buffer> => {
      const b = Buffer.from(blob.subarray(s, e));
      b[span.compressedStart - s + 5]! ^= 0x40;
      return b;
    };
    await assert.rejects(readUncompressedRange('gzip', index, fetch, span.uncompressedStart, span.uncompressedStart + 10), (err) => {
      assert.ok(err instanceof ClipError && err.code === 'DIGEST_MISMATCH');
      assert.match(err.message, /span 3\b/);
      return true;
    });
  });
});

describe('gzip index: other producers and levels', () => {
  const cases: Array<[string, () => Promise<{ ref: Buffer; blob: Buffer }>]> = [
    ['gzip -1', async () => mk(6 * MiB, 2, (r) => runTool('gzip', ['-1', '-c'], r))],
    ['gzip -9', async () => mk(6 * MiB, 3, (r) => runTool('gzip', ['-9', '-c'], r))],
    ['node zlib level 6', async () => mk(5 * MiB, 4, async (r) => gzipSync(r, { level: 6 }))],
    ['node zlib level 0 (stored blocks)', async () => mk(5 * MiB, 5, async (r) => gzipSync(r, { level: 0 }))],
    ['node zlib Z_FIXED', async () => mk(4 * MiB, 6, async (r) => gzipSync(r, { strategy: constants.Z_FIXED }))],
    ['random (incompressible) only', async () => mk(5 * MiB, 7, async (r) => gzipSync(r), true)],
  ];
  for (const [name, make] of cases) {
    test(name, async () => {
      const { ref, blob } = await make();
      const { index, output } = indexBlob('gzip', blob, SPAN, (i) => 1000 + ((i * 7919) % 300000));
      assert.ok(output.equals(ref));
      checkIndexShape(index, blob, SPAN);
      assert.ok(index.checkpoints.length >= 3);
      await checkRanges('gzip', index, blob, ref, 60, 11, SPAN);
    });
  }
});

async function mk(size: number, seed: number, compress: (r: Buffer) => Promise<Buffer>, random = false): Promise<{ ref: Buffer; blob: Buffer }> {
  const ref = random ? randomBytes(size, seed) : mixedData(size, seed);
  return { ref, blob: await compress(ref) };
}

describe('gzip index: headers and members', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'clip-gz-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('FNAME written by the gzip binary', async () => {
    const ref = mixedData(3 * MiB, 8);
    const file = join(dir, 'layer-with-a-name.tar');
    await writeFile(file, ref);
    const blob = await runTool('gzip', ['-c', file]);
    assert.equal(blob[3]! & 0x08, 0x08, 'gzip should have stored FNAME');
    const { index, output } = indexBlob('gzip', blob, SPAN);
    assert.ok(output.equals(ref));
    assert.equal(index.checkpoints[0]!.compressedOffset, 10 + 'layer-with-a-name.tar'.length + 1);
    checkIndexShape(index, blob, SPAN);
    await checkRanges('gzip', index, blob, ref, 40, 12, SPAN);
  });

  test('FEXTRA, FNAME, FCOMMENT and FHCRC, fed a few bytes at a time', () => {
    const ref = mixedData(200 * 1024, 9);
    const blob = gzipMember(ref, { extra: Buffer.alloc(300, 7), name: 'n'.repeat(100), comment: 'c'.repeat(50), headerCrc: true });
    const { index, output } = indexBlob('gzip', blob, SPAN, (i) => 1 + (i % 5));
    assert.ok(output.equals(ref));
    assert.equal(index.checkpoints[0]!.compressedOffset, 10 + 2 + 300 + 101 + 51 + 2);
  });

  test('multi-member: ranges cross member boundaries; member starts become checkpoints', async () => {
    const pieces = [mixedData(3 * MiB, 20), Buffer.alloc(0), mixedData(1234, 21), mixedData(2 * MiB + 7, 22), randomBytes(MiB, 23), mixedData(4 * MiB, 24)];
    const members = await Promise.all(pieces.map((p, i) => (i % 2 ? runTool('gzip', ['-c', '-n'], p) : Promise.resolve(gzipMember(p, { name: `m${i}` })))));
    const blob = Buffer.concat(members);
    const ref = Buffer.concat(pieces);
    const { index, output } = indexBlob('gzip', blob, SPAN, 100_003);
    assert.ok(output.equals(ref));
    checkIndexShape(index, blob, SPAN);
    // The fourth member starts 3 MiB + 1234 in, more than a span after any earlier checkpoint.
    const memberStarts = index.checkpoints.filter((cp) => cp.window.length === 0 && cp.uncompressedOffset > 0);
    assert.ok(memberStarts.length >= 1, 'expected a checkpoint at a member start');
    await checkRanges('gzip', index, blob, ref, 120, 13, SPAN);
    // Every byte across all member boundaries.
    const sizes = pieces.map((p) => p.length);
    for (let i = 0, at = 0; i < sizes.length; at += sizes[i]!, i++) {
      const start = Math.max(0, at - 5000);
      const end = Math.min(ref.length, at + 5000);
      const fetch = async (s: number, e: number): Promise<Buffer> => blob.subarray(s, e);
      assert.ok((await readUncompressedRange('gzip', index, fetch, start, end)).equals(ref.subarray(start, end)));
    }
  });

  test('empty gzip', () => {
    const blob = gzipSync(Buffer.alloc(0));
    const { index, output } = indexBlob('gzip', blob, SPAN);
    assert.equal(output.length, 0);
    assert.equal(index.uncompressedSize, 0);
    assert.equal(index.spans.length, 1);
  });
});

describe('gzip index: small layers', () => {
  test('below SMALL_LAYER_BYTES: one checkpoint and one span over the whole deflate data', async () => {
    const ref = mixedData(3 * MiB, 30, 0); // no random segments: compresses to under 1 MiB
    const blob = gzipSync(ref, { level: 9 });
    assert.ok(blob.length < SMALL_LAYER_BYTES);
    const { index } = indexBlob('gzip', blob, SPAN);
    assert.equal(index.checkpoints.length, 1);
    assert.deepEqual([index.spans[0]!.compressedStart, index.spans[0]!.compressedEnd], [10, blob.length]);
    checkIndexShape(index, blob, SPAN);
    await checkRanges('gzip', index, blob, ref, 30, 31, SPAN);
  });
});

describe('gzip index: bad input', () => {
  const ref = mixedData(2 * MiB, 40);
  const good = gzipSync(ref);

  function indexThrows(blob: Buffer, code = 'CORRUPT', pattern?: RegExp): void {
    assert.throws(
      () => indexBlob('gzip', blob, SPAN, 65536),
      (err) => {
        assert.ok(err instanceof ClipError, String(err));
        assert.equal(err.code, code, err.message);
        if (pattern) assert.match(err.message, pattern);
        return true;
      },
    );
  }

  test('truncated anywhere: header, deflate data, trailer', () => {
    indexThrows(good.subarray(0, 5), 'CORRUPT', /header/);
    indexThrows(good.subarray(0, 1000), 'CORRUPT', /before the gzip trailer/);
    indexThrows(good.subarray(0, good.length - 3), 'CORRUPT', /trailer/);
    indexThrows(Buffer.alloc(0), 'CORRUPT', /no gzip member/);
  });

  test('not gzip, trailing garbage, bad method and flags', () => {
    indexThrows(Buffer.from('this is not gzip at all'), 'CORRUPT', /bad magic/);
    indexThrows(Buffer.concat([good, Buffer.from('garbage')]), 'CORRUPT', /bad magic/);
    const badMethod = Buffer.from(good);
    badMethod[2] = 7;
    indexThrows(badMethod, 'CORRUPT', /method/);
    const badFlags = Buffer.from(good);
    badFlags[3] = 0x80;
    indexThrows(badFlags, 'CORRUPT', /reserved/);
  });

  test('damaged deflate data or trailer', () => {
    const badData = Buffer.from(good);
    badData[good.length >> 1]! ^= 0xff;
    indexThrows(badData);
    const badCrc = Buffer.from(good);
    badCrc[good.length - 6]! ^= 1;
    indexThrows(badCrc, 'CORRUPT', /CRC/);
    const badSize = Buffer.from(good);
    badSize[good.length - 2]! ^= 1;
    indexThrows(badSize, 'CORRUPT', /length/);
  });

  test('bad spanBytes and misuse', () => {
    assert.throws(() => new GzipIndexer(1000), isClipError('INVALID_ARGUMENT'));
    assert.throws(() => new GzipIndexer(17 * MiB), isClipError('INVALID_ARGUMENT'));
    const ix = new GzipIndexer();
    ix.push(good.subarray(0, 100000));
    assert.throws(() => ix.push(good.subarray(100000)), isClipError('INVALID_ARGUMENT'));
  });
});
