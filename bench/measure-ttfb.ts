/**
 * 3. Time to first byte of a file, against what a user has today: pull the whole image and unpack it
 *    (bench/full-pull.ts: `skopeo copy`, then `tar -xzf`, the best case, and `umoci unpack`).
 *    - index present: open the .clip + first read, a fresh ArchiveReader per file, over random files;
 *    - from nothing: index the image + open + first read;
 *    - registry bytes per cold read, counted by the counting proxy.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ArchiveReader, createFromOCIImage } from '../src/clipcore/index.js';
import type { BenchContext } from './context.js';
import { CONTAINERD_PULL_LABEL } from './containerd.js';
import { FIRST_READ_BYTES, fullPull, TAR_PULL_LABEL, UMOCI_PULL_LABEL, type FullPull } from './full-pull.js';
import { pairedRatio, samples } from './results.js';
import { formatBytes, msSince, num, seededRandom, summarize } from './stats.js';
import { pick, regularFiles, type FileInfo } from './tree.js';

const SECTION = '3. Time to first byte';

interface ColdRead {
  ms: number;
  /** Of which opening the .clip (header, metadata, TOC decode). */
  openMs: number;
  bytes: number;
  requests: number;
}

async function firstRead(ctx: BenchContext, clipPath: string, file: FileInfo): Promise<ColdRead> {
  await ctx.proxies.reset();
  const started = process.hrtime.bigint();
  const reader = await ArchiveReader.open(clipPath);
  const openMs = msSince(started);
  try {
    const data = await reader.read(file.path, 0, Math.min(file.size, FIRST_READ_BYTES));
    const ms = msSince(started);
    if (data.length !== Math.min(file.size, FIRST_READ_BYTES)) throw new Error(`short read of ${file.path}: ${data.length} bytes`);
    const stats = await ctx.proxies.stats();
    return { ms, openMs, bytes: stats.bytes, requests: stats.requests };
  } finally {
    await reader.close();
  }
}

export async function measureTtfb(ctx: BenchContext): Promise<void> {
  const { options, results } = ctx;
  const lister = await ArchiveReader.open(ctx.debian.clipPath);
  const all = regularFiles(lister).filter((f) => f.size > 0);
  await lister.close();
  const random = seededRandom(options.seed);
  const chosen = pick(all, options.files + options.runs + 1, random);
  const sample = chosen.slice(0, options.files);
  const coldStartFiles = chosen.slice(options.files, options.files + options.runs);
  // One untimed read first: a node plugin that serves mounts has its code loaded and compiled.
  await firstRead(ctx, ctx.debian.clipPath, chosen[chosen.length - 1] as FileInfo);

  const warm: ColdRead[] = [];
  for (const file of sample) warm.push(await firstRead(ctx, ctx.debian.clipPath, file));

  const fromNothing: ColdRead[] = [];
  const pulls: FullPull[] = [];
  for (let run = 0; run < options.runs; run++) {
    const file = coldStartFiles[run] as FileInfo;
    const doColdStart = async (): Promise<void> => {
      const clipPath = join(ctx.workDir, `cold-${run}.clip`);
      await ctx.proxies.reset();
      const started = process.hrtime.bigint();
      await createFromOCIImage({ imageRef: ctx.debian.ref, outputPath: clipPath });
      const opening = process.hrtime.bigint();
      const reader = await ArchiveReader.open(clipPath);
      const openMs = msSince(opening);
      await reader.read(file.path, 0, Math.min(file.size, FIRST_READ_BYTES));
      const ms = msSince(started);
      const stats = await ctx.proxies.stats();
      await reader.close();
      await rm(clipPath, { force: true });
      fromNothing.push({ ms, openMs, bytes: stats.bytes, requests: stats.requests });
    };
    if (run % 2 === 0) {
      await doColdStart();
      pulls.push(await fullPull(ctx, String(run), file));
    } else {
      pulls.push(await fullPull(ctx, String(run), file));
      await doColdStart();
    }
  }

  ctx.shared.fullPulls.push(...pulls);
  const warmMs = summarize(warm.map((r) => r.ms), 'ms');
  const copy = summarize(pulls.map((p) => p.copyMs / 1000), 's');
  const unpack = summarize(pulls.map((p) => p.unpackMs / 1000), 's');
  const tarOnly = summarize(pulls.map((p) => (p.tarTotalMs - p.copyMs) / 1000), 's');
  const pullNote = `skopeo copy ${num(copy.p50)} s (range ${num(copy.min)}–${num(copy.max)}), then tar -xzf ${num(tarOnly.p50)} s or umoci unpack and read ${num(unpack.p50)} s (range ${num(unpack.min)}–${num(unpack.max)}), medians of n=${pulls.length}`;
  const openSplit = `of which opening the .clip ${formatSplit(warm.map((r) => r.openMs))}, the read ${formatSplit(warm.map((r) => r.ms - r.openMs))} (a mounted image pays the open once)`;
  const pullSeconds = (pick: (p: FullPull) => number) => summarize(pulls.map((p) => pick(p) / 1000), 's');
  const versus = (clipMs: number, pullMs: number): { value: number; text: string } => {
    const r = clipMs / pullMs;
    return { value: r, text: `${num(r)}× (p50 ÷ median): the full pull takes ${num(1 / r)}× as long` };
  };
  // The best alternative first (tar, the floor of any unpacker), then umoci.
  results.add({
    id: 'ttfb.present.tar',
    section: SECTION,
    name: `index on the node: open + first read (≤128 KiB), ${warm.length} random files, fresh reader each`,
    clip: samples(warmMs),
    comparison: { label: TAR_PULL_LABEL, figure: samples(pullSeconds((p) => p.tarTotalMs)) },
    ratio: versus(warmMs.p50, summarize(pulls.map((p) => p.tarTotalMs), 'ms').p50),
    note: `${openSplit}; ${pullNote}; tar is a floor for unpacking (no whiteouts, no ownership mapping), not something a runtime can use as is, and the read after it is left out`,
  });
  results.add({
    id: 'ttfb.present.umoci',
    section: SECTION,
    name: 'index on the node: the same reads, against umoci',
    clip: samples(warmMs),
    comparison: { label: UMOCI_PULL_LABEL, figure: samples(pullSeconds((p) => p.totalMs)) },
    ratio: versus(warmMs.p50, summarize(pulls.map((p) => p.totalMs), 'ms').p50),
    note: 'same runs as the row above',
  });
  // A real runtime's pull, where containerd is installed: every pull then has a containerdMs.
  const containerdMs = pulls.flatMap((p) => (p.containerdMs === undefined ? [] : [p.containerdMs]));
  const withContainerd = containerdMs.length === pulls.length && pulls.length > 0;
  if (withContainerd) {
    results.add({
      id: 'ttfb.present.containerd',
      section: SECTION,
      name: 'index on the node: the same reads, against a real runtime\'s pull',
      clip: samples(warmMs),
      comparison: { label: CONTAINERD_PULL_LABEL, figure: samples(summarize(containerdMs.map((ms) => ms / 1000), 's')) },
      ratio: versus(warmMs.p50, summarize(containerdMs, 'ms').p50),
      note: `same runs as the rows above; ${ctx.containerd?.version ?? 'containerd'}, overlayfs snapshotter, CRI plugin off (ctr talks to it directly)`,
    });
  }
  const fromNothingSeconds = samples(summarize(fromNothing.map((r) => r.ms / 1000), 's'));
  results.add({
    id: 'ttfb.nothing.tar',
    section: SECTION,
    name: 'from nothing: index the image + open + first read (default concurrency)',
    clip: fromNothingSeconds,
    comparison: { label: TAR_PULL_LABEL, figure: samples(pullSeconds((p) => p.tarTotalMs)) },
    ratio: pairedRatio(
      fromNothing.map((r) => r.ms),
      pulls.map((p) => p.tarTotalMs),
    ),
    note: `each clip run paired with the full pull run right before or after it (alternating order); p99 needs more runs than an index of the whole image allows; registry bytes: clip ${formatBytes(summarize(fromNothing.map((r) => r.bytes), 'B').p50)}, full pull ${formatBytes(summarize(pulls.map((p) => p.bytes), 'B').p50)} (medians)`,
  });
  results.add({
    id: 'ttfb.nothing.umoci',
    section: SECTION,
    name: 'from nothing, against umoci',
    clip: fromNothingSeconds,
    comparison: { label: UMOCI_PULL_LABEL, figure: samples(pullSeconds((p) => p.totalMs)) },
    ratio: pairedRatio(
      fromNothing.map((r) => r.ms),
      pulls.map((p) => p.totalMs),
    ),
    note: 'same runs as the row above',
  });
  if (withContainerd) {
    results.add({
      id: 'ttfb.nothing.containerd',
      section: SECTION,
      name: 'from nothing, against a real runtime\'s pull',
      clip: fromNothingSeconds,
      comparison: { label: CONTAINERD_PULL_LABEL, figure: samples(summarize(containerdMs.map((ms) => ms / 1000), 's')) },
      ratio: pairedRatio(
        fromNothing.map((r) => r.ms),
        containerdMs,
      ),
      note: 'same runs as the rows above (containerd pulls right after skopeo\'s, in the same slot of each pair)',
    });
  }
  const bytes = summarize(warm.map((r) => r.bytes / 1024), 'KiB');
  const pullBytes = summarize(pulls.map((p) => p.bytes / 1024 / 1024), 'MiB');
  results.add({
    id: 'ttfb.bytes',
    section: SECTION,
    name: 'registry bytes fetched per cold read (index on the node)',
    clip: samples(bytes),
    comparison: { label: 'full pull', figure: samples(pullBytes) },
    ratio: { value: bytes.p50 / 1024 / pullBytes.p50, text: `${num((100 * bytes.p50) / 1024 / pullBytes.p50)} % of the full pull (p50 ÷ median)` },
    note: `requests per cold read: ${formatRequests(warm)}; a read fetches the compressed span (≤2 MiB uncompressed) around the file and one checkpoint window from the local .clip`,
  });
  const sizes = summarize(sample.map((f) => f.size / 1024), 'KiB');
  results.add({
    section: SECTION,
    name: 'sizes of the sampled files',
    clip: samples(sizes),
    note: `${all.length} non-empty regular files in the image; seed ${options.seed}`,
  });
}

function formatSplit(ms: readonly number[]): string {
  const s = summarize(ms, 'ms');
  return `p50 ${num(s.p50)} ms, p99 ${num(s.p99)} ms`;
}

function formatRequests(reads: readonly ColdRead[]): string {
  const s = summarize(reads.map((r) => r.requests), 'requests');
  return `p50 ${s.p50}, max ${s.max}`;
}
