/**
 * Child process for read tests: `node range-reader.js <file> '<[[offset, length], ...]>' [chunk]`
 * reads each range in turn with pread calls of `chunk` bytes (default 128 KiB), in order, and
 * prints one line per range: the sha256 hex of its bytes, or the error code (EIO) and stops.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';

const [file, rangesJson, chunkArg] = process.argv.slice(2);
if (file === undefined || rangesJson === undefined) {
  process.stderr.write('usage: range-reader.js <file> <ranges json> [chunk bytes]\n');
  process.exit(2);
}
const ranges = JSON.parse(rangesJson) as Array<[number, number]>;
const chunk = Number(chunkArg ?? 128 * 1024);
const fd = openSync(file, 'r');
const buffer = Buffer.alloc(chunk);
try {
  for (const [offset, length] of ranges) {
    const hash = createHash('sha256');
    try {
      for (let done = 0; done < length; ) {
        const got = readSync(fd, buffer, 0, Math.min(chunk, length - done), offset + done);
        if (got === 0) break;
        hash.update(buffer.subarray(0, got));
        done += got;
      }
    } catch (err) {
      process.stdout.write(`${(err as NodeJS.ErrnoException).code ?? 'ERROR'}\n`);
      break;
    }
    process.stdout.write(`${hash.digest('hex')}\n`);
  }
} finally {
  closeSync(fd);
}
