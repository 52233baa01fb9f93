/**
 * The inflate pool (real worker threads): spans of a real gzip layer decoded concurrently, more
 * at once than the workers hold, urgent and read-ahead mixed, some read-ahead turned urgent while
 * queued; each decoded span is the right bytes, with the disk tier's block digests of exactly those
 * bytes when they come (spare worker time); a damaged span is refused, never decoded.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { blockDigestsOf, DEFAULT_BLOCK_BYTES } from '../src/clipcore/cache/disk-entry.js';
import type { LayerIndex } from '../src/clipcore/compression/index.js';
import { decodeSpanOffThread, warmInflatePool } from '../src/clipcore/compression/inflate-pool.js';
import type { SpanJob, Urgency } from '../src/clipcore/compression/span-job.js';
import { ClipError } from '../src/clipcore/errors.js';
import { indexBlob } from './helpers/compression-check.js';
import { mixedData } from './helpers/compression-data.js';

const MiB = 1024 * 1024;

function jobFor(index: LayerIndex, blob: Buffer, i: number, digestBlockBytes?: number): SpanJob {
  const span = index.spans[i] as LayerIndex['spans'][number];
  const { compressedOffset, bits, uncompressedOffset, window } = index.checkpoints[i] as LayerIndex['checkpoints'][number];
  return {
    kind: 'gzip',
    checkpoint: { compressedOffset, bits, uncompressedOffset, window },
    span,
    bytes: blob.subarray(span.compressedStart, span.compressedEnd),
    ...(digestBlockBytes !== undefined && { digestBlockBytes }),
  };
}

test('spans decoded on the inflate threads: right bytes and block digests, urgent and read-ahead mixed; a damaged span is refused', async () => {
  const data = mixedData(12 * MiB, 19);
  const blob = gzipSync(data, { level: 6 });
  const { index } = indexBlob('gzip', blob, MiB);
  assert.ok(index.spans.length >= 8, `want many spans, got ${index.spans.length}`);
  warmInflatePool();

  // Three rounds over every span: more jobs than the workers hold, so most wait in the queues.
  const urgencies: Urgency[] = [];
  const decodes = [];
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < index.spans.length; i++) {
      const urgency: Urgency = { urgent: (i + round) % 3 === 0 };
      urgencies.push(urgency);
      decodes.push(decodeSpanOffThread(jobFor(index, blob, i, round === 2 ? undefined : DEFAULT_BLOCK_BYTES), urgency).then((decoded) => ({ i, round, decoded })));
    }
  }
  // A reader comes to wait on some read-ahead spans while they are queued.
  for (const urgency of urgencies.filter((_, n) => n % 4 === 1)) urgency.urgent = true;

  for (const { i, round, decoded } of await Promise.all(decodes)) {
    const span = index.spans[i] as LayerIndex['spans'][number];
    const expected = data.subarray(span.uncompressedStart, span.uncompressedEnd);
    assert.ok(decoded.data.equals(expected), `span ${i} (round ${round}) decodes to its bytes`);
    // Digests come only when asked for, and (spare worker time) only for jobs that did not queue.
    if (round === 2) assert.equal(decoded.blockDigests, undefined, 'no digests unless asked for');
    else if (decoded.blockDigests !== undefined) {
      assert.equal(decoded.blockDigests.blockBytes, DEFAULT_BLOCK_BYTES);
      assert.ok(decoded.blockDigests.digests.equals(blockDigestsOf(expected, DEFAULT_BLOCK_BYTES)), `span ${i}: digests of its bytes`);
    }
  }
  // One span alone, nothing queued: its digests come with it.
  const alone = await decodeSpanOffThread(jobFor(index, blob, 1, DEFAULT_BLOCK_BYTES), { urgent: false });
  const span1 = index.spans[1] as LayerIndex['spans'][number];
  assert.ok(alone.blockDigests?.digests.equals(blockDigestsOf(data.subarray(span1.uncompressedStart, span1.uncompressedEnd), DEFAULT_BLOCK_BYTES)));

  const damaged = jobFor(index, blob, 3, DEFAULT_BLOCK_BYTES);
  const bytes = Buffer.from(damaged.bytes);
  bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] as number) ^ 0x10;
  for (const urgent of [true, false]) {
    await assert.rejects(decodeSpanOffThread({ ...damaged, bytes }, { urgent }), (err: unknown) => err instanceof ClipError && err.code === 'DIGEST_MISMATCH');
  }
});
