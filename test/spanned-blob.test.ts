/**
 * Read-ahead of SpannedBlob when most reads are served natively (from memory, by the FUSE server)
 * and reach it only as late notes: the reads it does see must still count as one sequential
 * stream. The span cache is a recording stand-in: what is under test is which spans read-ahead
 * asks for.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SpanCache, SpanRef } from '../src/clipcore/cache/span-cache.js';
import { SpannedBlob, type SpanLayout } from '../src/clipcore/cache/spanned-blob.js';

const MiB = 1024 * 1024;
const SPANS = 12;

function layout(): SpanLayout {
  const refs = Array.from({ length: SPANS }, (_, i) => ({ key: `span-${i}` }) as unknown as SpanRef);
  return { count: SPANS, start: (i) => i * MiB, end: (i) => (i + 1) * MiB, ref: (i) => refs[i] as SpanRef };
}

/** Nothing is ever loaded; read-ahead requests are recorded as span indexes. */
function recordingCache(asked: number[][]): SpanCache {
  const index = (ref: SpanRef): number => Number((ref as unknown as { key: string }).key.slice('span-'.length));
  return {
    has: () => false,
    read: async (_ref: SpanRef, _offset: number, length: number) => Buffer.alloc(length),
    readAhead: (refs: SpanRef[]) => {
      asked.push(refs.map(index));
    },
  } as unknown as SpanCache;
}

describe('SpannedBlob read-ahead with natively served reads', () => {
  test('a read in the region a stream loaded ahead continues it (its window doubles); a late note behind it starts no stream', async () => {
    const asked: number[][] = [];
    const blob = new SpannedBlob(recordingCache(asked), layout(), 2);
    await blob.read(0, 16384);
    await blob.read(16384, 32768); // sequential: spans 1 and 2 ahead
    assert.deepEqual(asked, [[1, 2]]);
    // Span 1 was read natively (not noted yet); the reader now asks for span 2, still loading,
    // 2 MiB past the last read this blob saw: the same stream, caught up, so the window doubles.
    await blob.read(2 * MiB, 2 * MiB + 16384);
    assert.deepEqual(asked, [[1, 2], [3, 4, 5, 6]]);
    // The late notes of span 1's native reads lie behind the stream: they start nothing.
    blob.noteRead(MiB, MiB + 16384);
    blob.noteRead(MiB + 16384, MiB + 32768);
    assert.deepEqual(asked, [[1, 2], [3, 4, 5, 6]]);
    // A note ahead of the stream's last read moves it on like a read: a refill, same window.
    blob.noteRead(2 * MiB + 16384, 5 * MiB + 16384);
    assert.deepEqual(asked, [[1, 2], [3, 4, 5, 6], [7, 8, 9]]);
  });

  test('a read far from every stream starts a new one, without read-ahead', async () => {
    const asked: number[][] = [];
    const blob = new SpannedBlob(recordingCache(asked), layout(), 2);
    await blob.read(0, 16384);
    await blob.read(16384, 32768);
    await blob.read(8 * MiB, 8 * MiB + 16384); // beyond the spans read ahead: a jump
    assert.deepEqual(asked, [[1, 2]]);
  });
});
