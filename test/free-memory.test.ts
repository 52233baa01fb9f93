/** releaseFreeMemory (native/clip_memory.c) against this process's real malloc and resident memory. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { releaseFreeMemory } from '../src/clipcore/free-memory.js';

const MiB = 1024 * 1024;

async function residentBytes(): Promise<number> {
  const pages = Number((await readFile('/proc/self/statm', 'utf8')).split(' ')[1]);
  return pages * 4096;
}

describe('releaseFreeMemory', () => {
  it('hands memory that malloc kept after free back to the system', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // 64 KiB Buffers come from malloc's heap (below its mmap threshold). Every 16th stays alive,
    // so the freed ones sit between live ones and free() alone cannot shrink the heap.
    let buffers: Buffer[] = [];
    for (let i = 0; i < 2048; i++) buffers.push(Buffer.allocUnsafeSlow(64 * 1024).fill(i));
    const kept = buffers.filter((_, i) => i % 16 === 0);
    buffers = [];
    gc();
    await delay(200); // backing stores are freed by a sweeper task after the collection
    gc();
    await delay(200);
    const before = await residentBytes();
    assert.equal(releaseFreeMemory(), true);
    const after = await residentBytes();
    assert.ok(before - after > 64 * MiB, `resident ${(before / MiB).toFixed(0)} MiB before, ${(after / MiB).toFixed(0)} MiB after`);
    assert.equal(kept.length, 128); // still alive up to here
  });
});
