/**
 * 3. Time to first byte of a file, against what a user has today: pull the whole image and unpack it
 *    (`skopeo copy` to an OCI layout, `umoci unpack`), on the same registry through the same proxies.
 *    - index present: open the .clip + first read, a fresh ArchiveReader per file, over random files;
 *    - from nothing: index the image + open + first read;
 *    - registry bytes per cold read, counted by the counting proxy.
 */
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ArchiveReader, createFromOCIImage } from '../src/clipcore/index.js';
import type { BenchContext } from './context.js';
import { check } from './proc.js';
import { pairedRatio, samples } from './results.js';
import { formatBytes, msSince, num, seededRandom, summarize } from './stats.js';
import { pick, regularFiles, type FileInfo } from './tree.js';

const SECTION = '3. Time to first byte';
/** The first read of a file: what `cat` asks for, and the largest read FUSE passes by default. */
export const FIRST_READ_BYTES = 128 * 1024;

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

interface FullPull {
  copyMs: number;
  unpackMs: number;
  totalMs: number;
  /** skopeo copy + plain `tar -xzf` of every layer (no whiteouts, no ownership mapping): the floor of any unpacker. */
  tarTotalMs: number;
  bytes: number;
}

/** The layer blobs of the one image in an OCI layout, in order. */
async function layoutLayers(layout: string): Promise<string[]> {
  const blob = (digest: string): string => join(layout, 'blobs', ...digest.split(':'));
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const manifest = JSON.parse(await readFile(blob(index.manifests[0]?.digest ?? ''), 'utf8')) as { layers: Array<{ digest: string }> };
  return manifest.layers.map((layer) => blob(layer.digest));
}

/** skopeo copy + umoci unpack + the first read of `file` from the unpacked rootfs. */
async function fullPull(ctx: BenchContext, run: number, file: FileInfo): Promise<FullPull> {
  const layout = join(ctx.workDir, `pull-${run}-oci`);
  const bundle = join(ctx.workDir, `pull-${run}-bundle`);
  await ctx.proxies.reset();
  const started = process.hrtime.bigint();
  await check('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ctx.debian.ref}`, `oci:${layout}:bench`]);
  const copyMs = msSince(started);
  const bytes = (await ctx.proxies.stats()).bytes;
  const plain = join(ctx.workDir, `pull-${run}-tar`);
  await mkdir(plain);
  const tarStarted = process.hrtime.bigint();
  for (const layer of await layoutLayers(layout)) await check('tar', ['-xzf', layer, '-C', plain]);
  const tarMs = msSince(tarStarted);
  await rm(plain, { recursive: true, force: true });
  const unpackStarted = process.hrtime.bigint();
  await check('umoci', ['unpack', '--image', `${layout}:bench`, bundle]);
  const handle = await open(join(bundle, 'rootfs', file.path), 'r');
  const buffer = Buffer.alloc(Math.min(file.size, FIRST_READ_BYTES));
  await handle.read(buffer, 0, buffer.length, 0);
  await handle.close();
  const unpackMs = msSince(unpackStarted);
  await rm(layout, { recursive: true, force: true });
  await rm(bundle, { recursive: true, force: true });
  return { copyMs, unpackMs, totalMs: copyMs + unpackMs, tarTotalMs: copyMs + tarMs, bytes };
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
      pulls.push(await fullPull(ctx, run, file));
    } else {
      pulls.push(await fullPull(ctx, run, file));
      await doColdStart();
    }
  }

  ctx.shared.fullPullMs.push(...pulls.map((p) => p.totalMs));
  const pullLabel = 'full pull: skopeo copy + umoci unpack + read';
  const pullMs = summarize(pulls.map((p) => p.totalMs), 'ms');
  const warmMs = summarize(warm.map((r) => r.ms), 'ms');
  const copy = summarize(pulls.map((p) => p.copyMs / 1000), 's');
  const unpack = summarize(pulls.map((p) => p.unpackMs / 1000), 's');
  const pullNote = `full pull = skopeo copy ${num(copy.p50)} s (range ${num(copy.min)}–${num(copy.max)}) + umoci unpack and read ${num(unpack.p50)} s (range ${num(unpack.min)}–${num(unpack.max)}), medians of n=${pulls.length}`;
  const ratio = warmMs.p50 / pullMs.p50;
  results.add({
    section: SECTION,
    name: `index on the node: open + first read (≤128 KiB), ${warm.length} random files, fresh reader each`,
    clip: samples(warmMs),
    comparison: { label: pullLabel, figure: samples(summarize(pulls.map((p) => p.totalMs / 1000), 's')) },
    ratio: { value: ratio, text: `${num(ratio)}× (p50 ÷ median): the full pull takes ${num(1 / ratio)}× as long` },
    note: `of which opening the .clip ${formatSplit(warm.map((r) => r.openMs))}, the read ${formatSplit(warm.map((r) => r.ms - r.openMs))} (a mounted image pays the open once); ${pullNote}`,
  });
  results.add({
    section: SECTION,
    name: `from nothing: index the image + open + first read (default concurrency)`,
    clip: samples(summarize(fromNothing.map((r) => r.ms / 1000), 's')),
    comparison: { label: pullLabel, figure: samples(summarize(pulls.map((p) => p.totalMs / 1000), 's')) },
    ratio: pairedRatio(
      fromNothing.map((r) => r.ms),
      pulls.map((p) => p.totalMs),
    ),
    note: `p99 needs more runs than an index of the whole image allows; registry bytes: clip ${formatBytes(summarize(fromNothing.map((r) => r.bytes), 'B').p50)}, full pull ${formatBytes(summarize(pulls.map((p) => p.bytes), 'B').p50)} (medians)`,
  });
  results.add({
    section: SECTION,
    name: `from nothing, against the fastest possible unpack`,
    clip: samples(summarize(fromNothing.map((r) => r.ms / 1000), 's')),
    comparison: { label: 'skopeo copy + tar -xzf of each layer (no whiteouts or ownership handling)', figure: samples(summarize(pulls.map((p) => p.tarTotalMs / 1000), 's')) },
    ratio: pairedRatio(
      fromNothing.map((r) => r.ms),
      pulls.map((p) => p.tarTotalMs),
    ),
    note: 'same runs as the row above; tar is a floor for unpacking, not something a runtime can use as is',
  });
  const bytes = summarize(warm.map((r) => r.bytes / 1024), 'KiB');
  const pullBytes = summarize(pulls.map((p) => p.bytes / 1024 / 1024), 'MiB');
  results.add({
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
