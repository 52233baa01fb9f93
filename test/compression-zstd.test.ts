import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { ClipError } from '../src/clipcore/errors.js';
import { inflateZstdRange, MiB, readUncompressedRange, type LayerIndex } from '../src/clipcore/compression/index.js';
import { checkIndexShape, checkRanges, indexBlob } from './helpers/compression-check.js';
import { mixedData, randomBytes, runTool, zstdHandFrame, zstdSkippableFrame } from './helpers/compression-data.js';

// The zstd CLI (Debian package `zstd`) makes real compressed frames; Node 20 has no zstd.
const SPAN = 1 * MiB;

function throwsCode(fn: () => unknown, code: string, pattern?: RegExp): void {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof ClipError, String(err));
    assert.equal(err.code, code, err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

describe('zstd index: multi-frame layer', () => {
  let ref: Buffer;
  let blob: Buffer;
  let index: LayerIndex;
  let frameStarts: number[];

  before(async () => {
    // Independently compressed pieces of various sizes, concatenated, with a skippable frame.
    const pieces: Buffer[] = [];
    const sizes = [700 * 1024, 1.5 * MiB, 10, 3 * MiB, 200 * 1024, 900 * 1024, 2 * MiB, 0, 2.5 * MiB];
    sizes.forEach((n, i) => pieces.push(i === 4 ? randomBytes(n, i) : mixedData(n, 50 + i)));
    const frames = await Promise.all(pieces.map((p, i) => runTool('zstd', ['-q', '-c', i % 2 ? '-19' : '-3'], p)));
    frames.splice(3, 0, zstdSkippableFrame(Buffer.from('skip me')));
    blob = Buffer.concat(frames);
    ref = Buffer.concat(pieces);
    frameStarts = [];
    let at = 0;
    for (const f of frames) {
      frameStarts.push(at);
      at += f.length;
    }
    const indexed = indexBlob('zstd', blob, SPAN, (i) => 4096 + ((i * 104729) % 200000));
    index = indexed.index;
    assert.ok(indexed.output.equals(ref));
  });

  test('checkpoints are frame starts at least spanBytes apart', () => {
    checkIndexShape(index, blob, SPAN);
    assert.ok(index.checkpoints.length >= 4, `${index.checkpoints.length} checkpoints`);
    for (const cp of index.checkpoints) {
      assert.ok(frameStarts.includes(cp.compressedOffset), `checkpoint at ${cp.compressedOffset} is not a frame start`);
      assert.equal(cp.bits, 0);
      assert.equal(cp.window.length, 0);
    }
  });

  test('random ranges match, small reads fetch at most two spans', async () => {
    const stats = await checkRanges('zstd', index, blob, ref, 150, 51, SPAN);
    assert.ok(stats.maxSpansPerSmallRead <= 2);
  });

  test('a flipped byte in a span gives DIGEST_MISMATCH', async () => {
    const span = index.spans[1]!;
    const fetch = async (s: number, e: number): Promise<Buffer> => {
      const b = Buffer.from(blob.subarray(s, e));
      b[b.length - 1]! ^= 1;
      return b;
    };
    await assert.rejects(readUncompressedRange('zstd', index, fetch, span.uncompressedStart, span.uncompressedStart + 1), (err) => {
      assert.ok(err instanceof ClipError && err.code === 'DIGEST_MISMATCH');
      assert.match(err.message, /span 1\b/);
      return true;
    });
  });
});

describe('zstd index: single frame', () => {
  test('one span, read whole; ranges still right', async () => {
    const ref = mixedData(6 * MiB, 60);
    const blob = await runTool('zstd', ['-q', '-c', '-3'], ref);
    const { index, output } = indexBlob('zstd', blob, SPAN, 65536);
    assert.ok(output.equals(ref));
    checkIndexShape(index, blob, SPAN);
    assert.equal(index.checkpoints.length, 1);
    assert.deepEqual([index.spans[0]!.compressedStart, index.spans[0]!.compressedEnd], [0, blob.length]);
    await checkRanges('zstd', index, blob, ref, 12, 61, SPAN);
    const cp = index.checkpoints[0]!;
    assert.ok(inflateZstdRange(cp, blob, 5, 10).equals(ref.subarray(5, 10)));
    throwsCode(() => inflateZstdRange(cp, blob.subarray(0, blob.length >> 1), ref.length - 10, ref.length), 'CORRUPT');
  });

  test('with content checksum and content size, fed a byte at a time at the edges', async () => {
    const ref = mixedData(300 * 1024, 62);
    const blob = await runTool('zstd', ['-q', '-c', '--check', '--content-size'], ref);
    const { output } = indexBlob('zstd', blob, SPAN, (i) => (i < 40 ? 1 : 4096));
    assert.ok(output.equals(ref));
  });
});

describe('zstd index: hand-made frames', () => {
  test('raw and RLE blocks, empty blocks, skippable frames', () => {
    const a = randomBytes(100_000, 70);
    const frames = [
      zstdSkippableFrame(Buffer.alloc(5)),
      zstdHandFrame([{ raw: a }, { rle: 0x41, size: 128 * 1024 }, { raw: Buffer.alloc(0) }]),
      zstdHandFrame([{ raw: Buffer.alloc(0) }]),
      zstdHandFrame([{ rle: 0, size: 5 }]),
    ];
    const blob = Buffer.concat(frames);
    const ref = Buffer.concat([a, Buffer.alloc(128 * 1024, 0x41), Buffer.alloc(5)]);
    for (const chunk of [1, 3, 7, 65536]) {
      const { index, output } = indexBlob('zstd', blob, SPAN, chunk);
      assert.ok(output.equals(ref), `chunk size ${chunk}`);
      assert.equal(index.uncompressedSize, ref.length);
    }
  });

  test('truncation, garbage, bad blocks and dictionaries are rejected', () => {
    const frame = zstdHandFrame([{ raw: randomBytes(5000, 71) }]);
    throwsCode(() => indexBlob('zstd', frame.subarray(0, 3), SPAN), 'CORRUPT', /truncated/);
    throwsCode(() => indexBlob('zstd', frame.subarray(0, 100), SPAN), 'CORRUPT', /truncated/);
    throwsCode(() => indexBlob('zstd', Buffer.alloc(0), SPAN), 'CORRUPT', /no zstd frame/);
    throwsCode(() => indexBlob('zstd', Buffer.from('definitely not zstd'), SPAN), 'CORRUPT', /bad magic/);
    throwsCode(() => indexBlob('zstd', Buffer.concat([frame, Buffer.from([1, 2, 3, 4, 5])]), SPAN), 'CORRUPT', /bad magic/);
    const badBlock = Buffer.from(frame);
    badBlock[6] = badBlock[6]! | 0x06; // block type 3 (reserved)
    throwsCode(() => indexBlob('zstd', badBlock, SPAN), 'CORRUPT', /block header/);
    throwsCode(() => indexBlob('zstd', zstdHandFrame([{ raw: Buffer.alloc(10) }], 9), SPAN), 'UNSUPPORTED_MEDIA_TYPE', /dictionary 9/);
  });

  // fzstd skips the content checksum, so only damage that derails decoding is caught here;
  // the layer digest (sha256 of the blob) is what catches the rest.
  test('damaged compressed data that derails decoding is CORRUPT, not a crash', async () => {
    const ref = mixedData(2 * MiB, 72, 0);
    const blob = Buffer.from(await runTool('zstd', ['-q', '-c', '-3'], ref));
    for (let i = 0; i < 8; i++) blob[200 + i * 997]! ^= 0x5a;
    throwsCode(() => indexBlob('zstd', blob, SPAN), 'CORRUPT');
  });
});
