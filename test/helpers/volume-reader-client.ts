/** Starts volume-reader.ts in its own process and keeps its latest status line. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const READER = fileURLToPath(new URL('./volume-reader.js', import.meta.url));

export interface ReaderStatus {
  reads: number;
  longestMs: number;
  errorCount: number;
  errors: string[];
  mismatches: string[];
}

export interface VolumeReader {
  readonly child: ChildProcess;
  status(): ReaderStatus;
}

export function startVolumeReader(files: ReadonlyArray<{ path: string; sha256: string }>): VolumeReader {
  const child = spawn(process.execPath, [READER, JSON.stringify(files)], { stdio: ['ignore', 'pipe', 'ignore'] });
  let last: ReaderStatus = { reads: 0, longestMs: 0, errorCount: 0, errors: [], mismatches: [] };
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    const latest = lines.at(-1);
    if (latest) last = JSON.parse(latest) as ReaderStatus;
  });
  return { child, status: () => last };
}
