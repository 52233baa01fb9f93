/** Shared checks for the compression tests: index a blob, check the index, read ranges. */
import assert from 'node:assert/strict';
import {
  byteStart,
  createLayerIndexer,
  readUncompressedRange,
  type LayerCompression,
  type LayerIndex,
} from '../../src/clipcore/compression/index.js';
import { inflateBackend } from '../../src/clipcore/compression/raw-inflate.js';
import { randomInt, rng, sha256 } from './compression-data.js';

/** Indexes `blob` pushed in chunks of `chunkSize` (a number or a function of the chunk index). */
export function indexBlob(
  kind: LayerCompression,
  blob: Buffer,
  spanBytes: number,
  chunkSize: number | ((i: number) => number) = 256 * 1024,
): { index: LayerIndex; output: Buffer } {
  const indexer = createLayerIndexer(kind, spanBytes);
  const out: Buffer[] = [];
  for (let pos = 0, i = 0; pos < blob.length; i++) {
    const n = Math.max(1, typeof chunkSize === 'number' ? chunkSize : chunkSize(i));
    indexer.push(blob.subarray(pos, pos + n));
    pos += n;
    for (let b = indexer.next(); b !== null; b = indexer.next()) out.push(Buffer.from(b)); // pieces are reused
  }
  return { index: indexer.end(), output: Buffer.concat(out) };
}

/** Structural invariants every index must satisfy against its blob. */
export function checkIndexShape(index: LayerIndex, blob: Buffer, spanBytes: number): void {
  const { checkpoints, spans } = index;
  assert.equal(index.compressedSize, blob.length);
  assert.equal(checkpoints.length, spans.length);
  assert.ok(checkpoints.length >= 1);
  assert.equal(checkpoints[0]!.uncompressedOffset, 0);
  for (let i = 0; i < spans.length; i++) {
    const cp = checkpoints[i]!;
    const span = spans[i]!;
    assert.ok(cp.bits >= 0 && cp.bits <= 7);
    assert.ok(cp.window.length <= 32 * 1024);
    assert.equal(span.compressedStart, byteStart(cp));
    assert.equal(span.uncompressedStart, cp.uncompressedOffset);
    const nextCp = checkpoints[i + 1];
    assert.equal(span.compressedEnd, nextCp ? nextCp.compressedOffset : blob.length);
    assert.equal(span.uncompressedEnd, nextCp ? nextCp.uncompressedOffset : index.uncompressedSize);
    if (nextCp) assert.ok(nextCp.uncompressedOffset - cp.uncompressedOffset >= spanBytes, `span ${i} shorter than spanBytes`);
    assert.deepEqual(span.sha256, sha256(blob.subarray(span.compressedStart, span.compressedEnd)), `span ${i} sha256`);
  }
}

export interface RangeStats {
  reads: number;
  maxSpansPerSmallRead: number;
}

/**
 * Reads many ranges through readUncompressedRange and compares them with `ref`: random ones,
 * plus empty, whole, first/last byte, and ranges starting/ending on checkpoints.
 */
export async function checkRanges(
  kind: LayerCompression,
  index: LayerIndex,
  blob: Buffer,
  ref: Buffer,
  count: number,
  seed: number,
  spanBytes: number,
): Promise<RangeStats> {
  const next = rng(seed);
  const size = ref.length;
  const ranges: Array<[number, number]> = [[0, 0], [0, Math.min(1, size)], [size, size], [Math.max(0, size - 1), size]];
  for (const cp of index.checkpoints.slice(0, 20)) {
    const u = cp.uncompressedOffset;
    ranges.push([u, Math.min(size, u + 1)], [Math.max(0, u - 1), Math.min(size, u + 1)], [Math.max(0, u - 1000), u]);
  }
  while (ranges.length < count) {
    const start = randomInt(next, 0, size + 1);
    const len = next() < 0.8 ? randomInt(next, 0, 64 * 1024) : randomInt(next, 0, 3 * spanBytes);
    ranges.push([start, Math.min(size, start + len)]);
  }
  let maxSpansPerSmallRead = 0;
  for (const [start, end] of ranges) {
    let spansFetched = 0;
    const fetch = async (s: number, e: number): Promise<Buffer> => {
      spansFetched = index.spans.filter((sp) => sp.compressedStart >= s && sp.compressedEnd <= e).length;
      return Buffer.from(blob.subarray(s, e));
    };
    const got = await readUncompressedRange(kind, index, fetch, start, end);
    assert.ok(got.equals(ref.subarray(start, end)), `range [${start}, ${end}) differs`);
    // Minimal: exactly the spans overlapping [start, end).
    const overlapping = index.spans.filter((sp) => sp.uncompressedStart < end && sp.uncompressedEnd > start).length;
    assert.equal(spansFetched, start === end ? 0 : overlapping, `range [${start}, ${end}) fetched extra spans`);
    if (end - start <= spanBytes) {
      assert.ok(spansFetched <= 2, `range [${start}, ${end}) fetched ${spansFetched} spans`);
      maxSpansPerSmallRead = Math.max(maxSpansPerSmallRead, spansFetched);
    }
  }
  return { reads: ranges.length, maxSpansPerSmallRead };
}

/**
 * A test that names the inflate backend in use (a `# inflate backend: …` diagnostic) so that the
 * pako re-run of a suite (compression-backends.test.ts) can check that pako really ran it.
 */
export function reportInflateBackend(t: { diagnostic(message: string): void }): void {
  const { backend, detail } = inflateBackend();
  t.diagnostic(`inflate backend: ${backend}`);
  assert.equal(backend, process.env['CLIP_INFLATE'] === 'pako' ? 'pako' : 'zlib', detail);
}
