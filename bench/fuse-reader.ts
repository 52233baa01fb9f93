/**
 * Child process of the FUSE measurement: 4 KiB preads through a clip mount and from a local copy of
 * the same bytes. It is a separate process so that its blocking reads never stall the FUSE server
 * (which runs in yet another process, `clip mount`). Prints one JSON object.
 *
 * For each pair (a, b) of offsets in one layer span: a cold read at `a` (the span is fetched and
 * inflated), a pause, then at `b` (same span, 1 MiB away, beyond the kernel's readahead: served
 * from clip's memory cache), then `b` again (the kernel's page cache); then the local file at `b` (cold: the
 * parent dropped its pages first) and again (warm). Every mounted read is compared with the local one.
 *
 * `burst`: then, at once, reads at these offsets from `a` (further pages of the same span, each
 * beyond the kernel's readahead of the earlier reads: served from clip's memory, one right after
 * another, as a random reader makes them), and the same offsets of the local file (cold).
 *
 * `once` reads: a single timed 4 KiB read per entry, one after another (the disk-cache row: a fresh
 * mount whose memory cache is empty, at offsets no earlier read touched), each compared with the local file.
 *
 * `run`: last, these offsets from every `a`, all of them in one shuffled sequence read one right
 * after another with nothing between (a steady random reader of spans in clip's memory), then the
 * same sequence from the local files (their pages dropped), then each pair compared.
 */
import { closeSync, openSync, readSync } from 'node:fs';

export interface ReaderJob {
  readonly reads: ReadonlyArray<{ readonly mounted: string; readonly local: string; readonly a: number; readonly b: number }>;
  readonly bytes: number;
  /** Pause after the cold read, so that work it started in the background (read-ahead, cache writes) is over. */
  readonly settleMs: number;
  readonly once?: ReadonlyArray<{ readonly mounted: string; readonly local: string; readonly at: number }>;
  readonly burst?: readonly number[];
  readonly run?: readonly number[];
}

export interface ReaderOutput {
  coldSpan: number[];
  clipCache: number[];
  pageCache: number[];
  localCold: number[];
  localWarm: number[];
  once: number[];
  clipBurst: number[];
  localBurst: number[];
  clipRun: number[];
  localRun: number[];
  mismatches: number;
}

const job = JSON.parse(process.argv[2] ?? '{}') as ReaderJob;
const fds = new Map<string, number>();
const fd = (path: string): number => {
  let value = fds.get(path);
  if (value === undefined) {
    value = openSync(path, 'r');
    fds.set(path, value);
  }
  return value;
};
const buffer = Buffer.alloc(job.bytes);
const other = Buffer.alloc(job.bytes);
const timed = (file: number, target: Buffer, position: number): number => {
  const started = process.hrtime.bigint();
  const n = readSync(file, target, 0, target.length, position);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (n !== target.length) throw new Error(`short read: ${n} of ${target.length} at ${position}`);
  return ms;
};
const pause = new Int32Array(new SharedArrayBuffer(4));
const out: ReaderOutput = { coldSpan: [], clipCache: [], pageCache: [], localCold: [], localWarm: [], once: [], clipBurst: [], localBurst: [], clipRun: [], localRun: [], mismatches: 0 };
for (const read of job.reads) {
  const mounted = fd(read.mounted);
  const local = fd(read.local);
  out.coldSpan.push(timed(mounted, buffer, read.a));
  Atomics.wait(pause, 0, 0, job.settleMs);
  out.clipCache.push(timed(mounted, buffer, read.b));
  out.pageCache.push(timed(mounted, buffer, read.b));
  out.localCold.push(timed(local, other, read.b));
  out.localWarm.push(timed(local, other, read.b));
  if (!buffer.equals(other)) out.mismatches++;
  for (const offset of job.burst ?? []) out.clipBurst.push(timed(mounted, buffer, read.a + offset));
  for (const offset of job.burst ?? []) {
    out.localBurst.push(timed(local, other, read.a + offset));
    readSync(mounted, buffer, 0, buffer.length, read.a + offset);
    if (!buffer.equals(other)) out.mismatches++;
  }
}
for (const read of job.once ?? []) {
  out.once.push(timed(fd(read.mounted), buffer, read.at));
  readSync(fd(read.local), other, 0, other.length, read.at);
  if (!buffer.equals(other)) out.mismatches++;
}
if (job.run && job.run.length > 0) {
  const reads = job.reads.flatMap((read) => (job.run ?? []).map((offset) => ({ mounted: fd(read.mounted), local: fd(read.local), at: read.a + offset })));
  // A fixed shuffle (Fisher-Yates with a small LCG): the same sequence in every run.
  let seed = 12345;
  for (let i = reads.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const j = seed % (i + 1);
    [reads[i], reads[j]] = [reads[j]!, reads[i]!];
  }
  for (const read of reads) out.clipRun.push(timed(read.mounted, buffer, read.at));
  for (const read of reads) out.localRun.push(timed(read.local, other, read.at));
  for (const read of reads) {
    readSync(read.mounted, buffer, 0, buffer.length, read.at);
    readSync(read.local, other, 0, other.length, read.at);
    if (!buffer.equals(other)) out.mismatches++;
  }
}
for (const value of fds.values()) closeSync(value);
process.stdout.write(JSON.stringify(out));
