import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ClipError } from '../src/clipcore/errors.js';
import {
  createLayerIndexStream,
  layerCompressionForMediaType,
  MiB,
  OUTPUT_CHUNK_BYTES,
  spansForRange,
  type CompressedSpan,
  type LayerCompression,
} from '../src/clipcore/compression/index.js';
import { checkIndexShape, checkRanges, indexBlob, reportInflateBackend } from './helpers/compression-check.js';
import { mixedData, runTool } from './helpers/compression-data.js';

const SPAN = 1 * MiB;

test('the inflate backend in use', (t) => reportInflateBackend(t));

describe('uncompressed layers', () => {
  test('spans of exactly spanBytes, ranges by slicing', async () => {
    const ref = mixedData(5 * MiB + 3, 80);
    const { index, output } = indexBlob('none', ref, SPAN, 300_000);
    assert.ok(output.equals(ref));
    checkIndexShape(index, ref, SPAN);
    assert.deepEqual(index.checkpoints.map((cp) => cp.uncompressedOffset), [0, 1, 2, 3, 4, 5].map((i) => i * SPAN));
    assert.ok(index.checkpoints.every((cp) => cp.compressedOffset === cp.uncompressedOffset));
    await checkRanges('none', index, ref, ref, 80, 81, SPAN);
  });

  test('small and empty layers are one span', () => {
    const small = mixedData(1000, 82);
    assert.equal(indexBlob('none', small, SPAN).index.spans.length, 1);
    const empty = indexBlob('none', Buffer.alloc(0), SPAN).index;
    assert.equal(empty.spans.length, 1);
    assert.equal(empty.uncompressedSize, 0);
  });
});

describe('LayerIndexStream', () => {
  async function streamThrough(kind: LayerCompression, blob: Buffer, slowReader: boolean): Promise<{ output: Buffer; maxBuffered: number; stream: ReturnType<typeof createLayerIndexStream> }> {
    const stream = createLayerIndexStream(kind, SPAN);
    const chunks: Buffer[] = [];
    let maxBuffered = 0;
    const sink = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _enc, cb): void {
        chunks.push(chunk);
        maxBuffered = Math.max(maxBuffered, stream.readableLength);
        if (slowReader) setImmediate(cb);
        else cb();
      },
    });
    const source = Readable.from((function* () {
      for (let i = 0; i < blob.length; i += 256 * 1024) yield blob.subarray(i, i + 256 * 1024);
    })());
    await pipeline(source, stream, sink);
    return { output: Buffer.concat(chunks), maxBuffered, stream };
  }

  test('gzip bomb-like input through a slow reader stays bounded', async () => {
    const ref = Buffer.alloc(96 * MiB); // deflates ~1000:1, so one input chunk is ~256 MiB of output
    const blob = gzipSync(ref, { level: 1 });
    const { output, maxBuffered, stream } = await streamThrough('gzip', blob, true);
    assert.equal(output.length, ref.length);
    assert.ok(output.every((b) => b === 0));
    assert.ok(maxBuffered <= 1 * MiB + OUTPUT_CHUNK_BYTES, `readable side buffered ${maxBuffered} bytes`);
    assert.equal(stream.index.uncompressedSize, ref.length);
  });

  test('zstd and none through the stream', async () => {
    const ref = mixedData(3 * MiB, 90);
    const zst = await runTool('zstd', ['-q', '-c'], ref);
    for (const [kind, blob] of [['zstd', zst], ['none', ref]] as const) {
      const { output, stream } = await streamThrough(kind, blob, false);
      assert.ok(output.equals(ref), kind);
      checkIndexShape(stream.index, blob, SPAN);
    }
  });

  test('corrupt input fails the pipeline with CORRUPT', async () => {
    const blob = gzipSync(mixedData(MiB, 91)).subarray(0, 5000);
    await assert.rejects(streamThrough('gzip', blob, false), (err) => err instanceof ClipError && err.code === 'CORRUPT');
    await sleep(0);
  });
});

describe('spansForRange', () => {
  const spans: CompressedSpan[] = [0, 1, 2, 3].map((i) => ({
    compressedStart: i * 100,
    compressedEnd: i * 100 + 101,
    uncompressedStart: i * 1000,
    uncompressedEnd: (i + 1) * 1000,
    sha256: Buffer.alloc(32),
  }));

  test('minimal contiguous runs', () => {
    assert.equal(spansForRange(spans, 500, 500), null);
    assert.deepEqual(spansForRange(spans, 0, 1), { firstSpan: 0, lastSpan: 0, compressedStart: 0, compressedEnd: 101 });
    assert.deepEqual(spansForRange(spans, 999, 1000), { firstSpan: 0, lastSpan: 0, compressedStart: 0, compressedEnd: 101 });
    assert.deepEqual(spansForRange(spans, 999, 1001), { firstSpan: 0, lastSpan: 1, compressedStart: 0, compressedEnd: 201 });
    assert.deepEqual(spansForRange(spans, 1000, 3000), { firstSpan: 1, lastSpan: 2, compressedStart: 100, compressedEnd: 301 });
    assert.deepEqual(spansForRange(spans, 3999, 4000), { firstSpan: 3, lastSpan: 3, compressedStart: 300, compressedEnd: 401 });
  });

  test('out-of-layer ranges are INVALID_ARGUMENT', () => {
    for (const [s, e] of [[-1, 5], [5, 4], [0, 4001], [0.5, 2]]) {
      assert.throws(() => spansForRange(spans, s!, e!), (err) => err instanceof ClipError && err.code === 'INVALID_ARGUMENT');
    }
  });
});

test('media types map to compressions', () => {
  assert.equal(layerCompressionForMediaType('application/vnd.oci.image.layer.v1.tar+gzip'), 'gzip');
  assert.equal(layerCompressionForMediaType('application/vnd.oci.image.layer.v1.tar+zstd'), 'zstd');
  assert.equal(layerCompressionForMediaType('application/vnd.oci.image.layer.v1.tar'), 'none');
  assert.equal(layerCompressionForMediaType('application/vnd.docker.image.rootfs.diff.tar.gzip'), 'gzip');
  assert.throws(() => layerCompressionForMediaType('application/x-bzip2'), (err) => err instanceof ClipError && err.code === 'UNSUPPORTED_MEDIA_TYPE');
});
