/**
 * 1. Index time, per layer and per image, against the limit: `gzip -dc blob | tar -t` of the same
 *    blob from local disk (bench/.cache, page cache warm). Whole image with 1, 2 and 4 layers at once
 *    (createFromOCIImage `concurrency`) against the same number of `gzip | tar` pipelines in parallel.
 *    These run in a long-lived process that starts no child process (index-process.ts), after one
 *    discarded warm-up run, as in a controller (indexing workers stay warm between images); the
 *    `clip index` rows run the command in a fresh process each time, cold.
 * 2. Index size: what a mount needs before its first read (mountBytes) and the whole .clip with its
 *    checkpoint windows (archiveBytes), as shares of the uncompressed and compressed image.
 */
import { rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { CreateFromOCIImageResult } from '../src/clipcore/index.js';
import type { BenchContext, PushedBenchImage } from './context.js';
import { startIndexer, type Indexer } from './indexer.js';
import type { BenchOptions } from './options.js';
import { startShellTimer, type ShellTimer } from './shell-timer.js';
import { CLIP_BIN } from './proc.js';
import { paired, pairedRatio, samples, value } from './results.js';
import { formatBytes, num, summarize } from './stats.js';

const INDEX = '1. Index time';
const SIZE = '2. Index size';

/** The Go library's published figure: an index is about 0.3 % of the image (alpine: 61 KB). */
const GO_CLAIM_SHARE = 0.003;

/**
 * Index time reads the registry directly, as a node reaches a registry over the network: the
 * counting proxy is a Node.js process relaying every byte, which would take CPU from the 2 cores
 * that clip and the baseline are measured on. --slow keeps the throttling proxy: it is the network.
 */
function registryRef(ctx: BenchContext, ref: string): string {
  return ctx.options.slow ? ref : ref.replace(ctx.proxies.host, ctx.registry.host);
}

async function timeIndex(ctx: BenchContext, indexer: Indexer, proxiedRef: string, concurrency: number | undefined): Promise<{ ms: number; result: CreateFromOCIImageResult }> {
  return indexer.index(registryRef(ctx, proxiedRef), join(ctx.workDir, `index-${process.hrtime.bigint()}.clip`), concurrency);
}

/** `clip index` in a new process, started by bash as a user would: Node's start, module loading and cold workers included. */
async function timeCliIndex(ctx: BenchContext, shell: ShellTimer, proxiedRef: string): Promise<number> {
  const outputPath = join(ctx.workDir, `cli-index-${process.hrtime.bigint()}.clip`);
  const ms = await shell.time(`${FRESH_NODE_ENV} ${[CLIP_BIN, 'index', registryRef(ctx, proxiedRef), '-o', outputPath].map(quote).join(' ')}`);
  await rm(outputPath, { force: true });
  return ms;
}

/** What starting Node.js alone costs here (`node -e 0`), as the cold rows start it, and with the machine's environment. */
async function nodeStartNote(shell: ShellTimer, runs: number): Promise<string> {
  const fresh: number[] = [];
  const asIs: number[] = [];
  for (let run = 0; run < runs; run++) {
    fresh.push(await shell.time(`${FRESH_NODE_ENV} node -e 0`));
    asIs.push(await shell.time('node -e 0'));
  }
  const median = (ms: number[]): string => `${num(summarize(ms.map(seconds), 's').p50)} s`;
  const machine = process.env.NODE_EXTRA_CA_CERTS ? `; with this machine's NODE_EXTRA_CA_CERTS, left out here, ${median(asIs)}` : '';
  return `Node.js's own start (node -e 0) ${median(fresh)}${machine}`;
}

const quote = (path: string): string => `'${path.replaceAll("'", `'\\''`)}'`;

/**
 * Fresh Node.js processes run without NODE_EXTRA_CA_CERTS. This machine's environment points it at
 * the system CA bundle, which makes every Node.js start parse it (about 45 ms here) whatever the
 * program: a cost of the machine's set-up, not of clip, reported beside the rows that start Node.
 */
const FRESH_NODE_ENV = 'NODE_EXTRA_CA_CERTS=';

/**
 * `gzip -dc | tar -t` of each blob, `parallel` pipelines at once, timed by bash itself. The
 * pipelines are bash's own (a loop, with `wait -n` to keep `parallel` running): no xargs, no
 * `sh -c` per blob, nothing a shell user would not run.
 */
function timeBaseline(shell: ShellTimer, blobs: readonly string[], parallel: number): Promise<number> {
  if (blobs.length === 1) return shell.time(`gzip -dc ${quote(blobs[0] as string)} | tar -t`);
  const list = blobs.map(quote).join(' ');
  // f: whether any pipeline failed (a loop's status is only its last command's).
  if (parallel === 1) return shell.time(`f=0; for b in ${list}; do gzip -dc "$b" | tar -t || f=1; done; [ "$f" = 0 ]`);
  const reap = 'wait -n || f=1; n=$((n - 1))';
  return shell.time(`f=0; n=0; for b in ${list}; do gzip -dc "$b" | tar -t & n=$((n + 1)); if [ "$n" -ge ${parallel} ]; then ${reap}; fi; done; while [ "$n" -gt 0 ]; do ${reap}; done; [ "$f" = 0 ]`);
}

/**
 * Paired runs for a layer whose warm-up took `warmUpMs`: at least `runs`, and for short layers
 * enough for about a second of clip's time (at most 15), since a few runs of 30 ms swing by half.
 */
function runsFor(runs: number, warmUpMs: number): number {
  return Math.max(runs, Math.min(15, Math.ceil(1000 / Math.max(1, warmUpMs))));
}

/**
 * Paired runs for a fresh `clip index`: at least 7 (not in --quick). A fresh process varies more
 * than a warm one (its start, page faults, JIT), and three runs left these rows' medians swinging
 * by 0.1 between runs at the same load.
 */
function freshRuns(options: BenchOptions): number {
  return options.quick ? options.runs : Math.max(options.runs, 7);
}

const seconds = (ms: number): number => ms / 1000;

/** --slow: the time the compressed bytes need on the throttled link alone (the baseline reads a local file). */
function floor(ctx: BenchContext, compressedBytes: number): string {
  if (!ctx.options.slow) return '';
  return `; --slow: the link alone needs ${num((compressedBytes * 8) / (ctx.options.mbitPerSecond * 1e6))} s for the compressed bytes, the baseline reads them from local disk`;
}
const mbps = (bytes: number, s: number): string => `${num(bytes / 1e6 / s)} MB/s`;

export async function measureIndexTime(ctx: BenchContext): Promise<void> {
  const indexer = await startIndexer();
  const shell = startShellTimer();
  try {
    await measureIndexTimeWith(ctx, indexer, shell);
  } finally {
    await Promise.all([indexer.close(), shell.close()]);
  }
}

async function measureIndexTimeWith(ctx: BenchContext, indexer: Indexer, shell: ShellTimer): Promise<void> {
  const { results, options } = ctx;
  const baselineLabel = 'gzip -dc | tar -t (local blob)';
  // --quick: the largest and the smallest debian layer (uncompressed), and the synthetic one.
  const debian = ctx.layerImages.filter((l) => ctx.debian.image.layers.includes(l.layer)).sort((a, b) => b.layer.uncompressedSize - a.layer.uncompressedSize);
  const keep = new Set([debian[0], debian[debian.length - 1], ...ctx.layerImages.filter((l) => !debian.includes(l))]);
  const layerImages = options.quick ? ctx.layerImages.filter((l) => keep.has(l)) : ctx.layerImages;
  for (const { layer, ref } of layerImages) {
    let files = 0;
    const warmUp = await timeIndex(ctx, indexer, ref, 1); // discarded
    const runs = runsFor(options.runs, warmUp.ms);
    const times = await paired(
      runs,
      async () => {
        const { ms, result } = await timeIndex(ctx, indexer, ref, 1);
        files = result.files;
        return ms;
      },
      () => timeBaseline(shell, [layer.blobPath], 1),
    );
    const clip = summarize(times.clip.map(seconds), 's');
    const base = summarize(times.baseline.map(seconds), 's');
    const registryMs: number[] = [];
    for (let run = 0; run < runs; run++) registryMs.push(await indexer.registryRoundTrips(registryRef(ctx, ref)));
    const registry = summarize(registryMs, 'ms');
    results.add({
      section: INDEX,
      name: `layer ${layer.name}: ${formatBytes(layer.size)} gz → ${formatBytes(layer.uncompressedSize)}, ${files} files`,
      clip: samples(clip),
      comparison: { label: baselineLabel, figure: samples(base) },
      ratio: pairedRatio(times.clip, times.baseline),
      note: `clip ${mbps(layer.uncompressedSize, clip.p50)}, baseline ${mbps(layer.uncompressedSize, base.p50)} (uncompressed bytes per second, medians); the registry alone (manifest, then the blob's first byte) ${num(registry.p50)} ms${floor(ctx, layer.size)}`,
    });
  }
  // A fresh process's fixed costs weigh on a mid-sized layer; the big synthetic one shows what is left per byte.
  const cliLayers = [debian[0], ...(options.quick ? [] : ctx.layerImages.filter((l) => !debian.includes(l)))].filter((l) => l !== undefined);
  // clip index's default concurrency is one layer per core: the image's baseline runs as many pipelines.
  const cores = availableParallelism();
  const cliCases = [...cliLayers.map(({ layer, ref }) => ({ name: `layer ${layer.name}`, ref, blobs: [layer.blobPath], parallel: 1 })),
    { name: 'image debian', ref: ctx.debian.ref, blobs: ctx.debian.image.layers.map((l) => l.blobPath), parallel: cores },
    ...(ctx.many ? [{ name: `image debian-many (${ctx.many.image.layers.length} layers)`, ref: ctx.many.ref, blobs: ctx.many.image.layers.map((l) => l.blobPath), parallel: cores }] : [])];
  const nodeStart = await nodeStartNote(shell, options.runs);
  for (const { name, ref, blobs, parallel } of cliCases) {
    const times = await paired(freshRuns(options), () => timeCliIndex(ctx, shell, ref), () => timeBaseline(shell, blobs, parallel));
    const clip = summarize(times.clip.map(seconds), 's');
    results.add({
      ...(name === 'image debian' && { id: 'index.fresh.image' }),
      ...(name.startsWith('image debian-many') && { id: 'index.fresh.many' }),
      section: INDEX,
      name: `${name}: \`clip index\` in a fresh process (default concurrency)`,
      clip: samples(clip),
      comparison: { label: `${baselineLabel}, ${parallel} at once`, figure: samples(summarize(times.baseline.map(seconds), 's')) },
      ratio: pairedRatio(times.clip, times.baseline),
      note: `includes ${nodeStart}, loading the indexing code, and cold JIT and memory`,
    });
  }
  const image = ctx.debian.image;
  const blobs = image.layers.map((l) => l.blobPath);
  const uncompressed = image.layers.reduce((sum, l) => sum + l.uncompressedSize, 0);
  for (const concurrency of options.quick ? [1, 4] : [1, 2, 4]) {
    await timeIndex(ctx, indexer, ctx.debian.ref, concurrency); // warm-up, discarded
    const times = await paired(options.runs, async () => (await timeIndex(ctx, indexer, ctx.debian.ref, concurrency)).ms, () => timeBaseline(shell, blobs, concurrency));
    const clip = summarize(times.clip.map(seconds), 's');
    const base = summarize(times.baseline.map(seconds), 's');
    results.add({
      id: `index.warm.image.${concurrency}`,
      section: INDEX,
      name: `image debian (${image.layers.length} layers, ${formatBytes(uncompressed)}), ${concurrency} layer${concurrency > 1 ? 's' : ''} at once`,
      clip: samples(clip),
      comparison: { label: `${baselineLabel}, ${concurrency} pipeline${concurrency > 1 ? 's' : ''} at once`, figure: samples(base) },
      ratio: pairedRatio(times.clip, times.baseline),
      note: `clip ${mbps(uncompressed, clip.p50)}, baseline ${mbps(uncompressed, base.p50)}${floor(ctx, image.layers.reduce((sum, l) => sum + l.size, 0))}`,
    });
  }
}

function pct(part: number, whole: number): string {
  const share = (100 * part) / whole;
  return `${share < 0.1 ? share.toFixed(3) : share.toFixed(2)} %`;
}

export async function measureIndexSize(ctx: BenchContext, indexes: ReadonlyMap<PushedBenchImage, CreateFromOCIImageResult>): Promise<void> {
  for (const [image, result] of indexes) {
    const name = image.image.repo.split('/').pop() ?? image.image.repo;
    const un = result.uncompressedImageBytes;
    const gz = result.compressedImageBytes;
    const claim = value(GO_CLAIM_SHARE * 100, '%', 'index ≈ 0.3 % of the image (alpine: 61 KB)');
    ctx.results.add({
      id: `size.mount.${name}`,
      section: SIZE,
      name: `${name}: needed before the first read (mountBytes)`,
      clip: value(result.mountBytes, 'B', `${formatBytes(result.mountBytes)} = ${pct(result.mountBytes, un)} of uncompressed, ${pct(result.mountBytes, gz)} of compressed (n=1, deterministic)`),
      comparison: { label: 'original Go library\'s claim', figure: claim },
      ratio: { value: result.mountBytes / un / GO_CLAIM_SHARE, text: `${num(result.mountBytes / un / GO_CLAIM_SHARE)}× the claimed share (of uncompressed)` },
      note: `${result.entries} entries, ${result.files} files: ${num(result.mountBytes / result.entries)} B per entry; image ${formatBytes(gz)} gz, ${formatBytes(un)} uncompressed`,
    });
    ctx.results.add({
      section: SIZE,
      name: `${name}: whole .clip with checkpoint windows (archiveBytes)`,
      clip: value(result.archiveBytes, 'B', `${formatBytes(result.archiveBytes)} = ${pct(result.archiveBytes, un)} of uncompressed, ${pct(result.archiveBytes, gz)} of compressed (n=1, deterministic)`),
      comparison: { label: 'original Go library\'s claim', figure: claim },
      ratio: { value: result.archiveBytes / un / GO_CLAIM_SHARE, text: `${num(result.archiveBytes / un / GO_CLAIM_SHARE)}× the claimed share (of uncompressed)` },
      note: `windows: ${formatBytes(result.archiveBytes - result.mountBytes)} (one 32 KiB window per 2 MiB checkpoint, deflated; fetched one at a time by reads)`,
    });
  }
}
