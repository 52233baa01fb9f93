/**
 * A pod's workload in a separate process: reads files of mounted volumes in a loop and checks every
 * byte, while the test restarts the plugin under it. Argument: a JSON list of { path, sha256 }.
 * After each pass over a file it prints one JSON line on stdout: reads done, every error and
 * mismatch seen, and the longest single read (the stall a restart caused).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

interface FileSpec {
  path: string;
  sha256: string;
}

const files = JSON.parse(process.argv[2] ?? '[]') as FileSpec[];
let reads = 0;
let longestMs = 0;
const errors: string[] = [];
const mismatches: string[] = [];
const pause = new Int32Array(new SharedArrayBuffer(4));

for (let pass = 0; ; pass++) {
  for (const file of files) {
    const started = performance.now();
    try {
      const digest = createHash('sha256').update(readFileSync(file.path)).digest('hex');
      if (digest !== file.sha256) mismatches.push(file.path);
    } catch (err) {
      errors.push(`${file.path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    longestMs = Math.max(longestMs, performance.now() - started);
    reads++;
    // A steady workload, not a busy loop: a read every few milliseconds.
    Atomics.wait(pause, 0, 0, 3);
    process.stdout.write(`${JSON.stringify({ reads, pass, longestMs, errors: errors.slice(0, 20), errorCount: errors.length, mismatches: mismatches.slice(0, 20) })}\n`);
  }
}
