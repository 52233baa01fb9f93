/**
 * A child process for the disk cache tests: opens a DiskCache on a shared directory and stores
 * (and reads back) many entries, so several processes race on one directory.
 *
 * Usage: node cache-writer.js <dir> <maxBytes> <seed> <count>
 * Prints one JSON line: { stored, declined, readBack, wrong }.
 */
import { createHash } from 'node:crypto';
import { DiskCache } from '../../src/clipcore/cache/disk-cache.js';

export function entryContent(seed: number, i: number): Buffer {
  const size = 20_000 + ((seed * 7919 + i * 104_729) % 300_000);
  const out = Buffer.alloc(size);
  let state = (seed * 2654435761 + i * 40503) >>> 0 || 1;
  for (let p = 0; p + 4 <= size; p += 4) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out.writeUInt32LE(state >>> 0, p);
  }
  return out;
}

export function keyOf(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

const [dir, maxText, seedText, countText] = process.argv.slice(2);
if (dir && maxText && seedText && countText) {
  const cache = await DiskCache.open({ dir, maxBytes: Number(maxText) });
  const counts = { stored: 0, declined: 0, readBack: 0, wrong: 0 };
  for (let i = 0; i < Number(countText); i++) {
    // Half the keys are shared between writers (same seed space), so processes race on entries too.
    const data = entryContent(i % 2 === 0 ? 1000 : Number(seedText), i);
    const key = keyOf(data);
    if (await cache.storeContent([data], key)) counts.stored++;
    else counts.declined++;
    const back = await cache.getContent(key, 0, data.length);
    if (back !== undefined) {
      counts.readBack++;
      if (!back.equals(data)) counts.wrong++;
    }
  }
  process.stdout.write(`${JSON.stringify(counts)}\n`);
}
