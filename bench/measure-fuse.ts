/**
 * 4. Reads through FUSE: `clip mount` of the synthetic image in a child process, read by other
 *    child processes (fuse-reader.js, cat).
 *    - 4 KiB random reads: from clip's memory cache (the span warmed by a first read) and from the
 *      kernel's page cache (the same read repeated), against the same reads from a local file; and
 *      from the node-local disk cache only (a second, fresh `clip mount` on the --cache-dir the first
 *      one filled: memory cache empty, at offsets no earlier read touched, registry bytes counted),
 *      then again by that mount at other fresh offsets, the entries' headers now known;
 *    - sequential read of the 256 MiB file: cold (fresh mount), warm (page cache), and with the page
 *      cache dropped (clip's own memory cache), against `cat` of the same bytes from local disk.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ArchiveReader, SectionKind } from '../src/clipcore/index.js';
import { asImageMeta } from '../src/clipcore/image/image-meta.js';
import { decodeLayerIndexes } from '../src/clipcore/image/layer-index-codec.js';
import type { BenchContext } from './context.js';
import type { ReaderJob, ReaderOutput } from './fuse-reader.js';
import { localSyntheticFiles, SYNTHETIC_FILES } from './images.js';
import { mountHasDiskCache, startMount, type ClipMount } from './mount.js';
import { check, exec, sh } from './proc.js';
import { p50Ratio, pairedRatio, samples } from './results.js';
import { formatBytes, num, seededRandom, summarize, type Summary } from './stats.js';
import { pick, regularFiles } from './tree.js';

const SECTION = '4. Reads through FUSE';
const READER = fileURLToPath(new URL('./fuse-reader.js', import.meta.url));
const MiB = 1024 * 1024;
const PAGE = 4096;
/** Pause between the cold read of a span and the cache-hit read (background read-ahead settles). */
const SETTLE_MS = 100;
/** Where in the span the disk-cache read lands: half-way between the two earlier reads, 512 KiB from each. */
const FRESH = MiB / 2;
/** The second disk-cache read of each span, by the same mount: 256 KiB from every earlier read. */
const FRESH_AGAIN = MiB / 4;

const quote = (path: string): string => `'${path.replaceAll("'", `'\\''`)}'`;

/** Files whose pages were still resident after dropPages (the figures that follow are then too good). */
const undropped = new Set<string>();

/**
 * Drops a file's pages from the page cache: posix_fadvise(DONTNEED) through dd (which only does it
 * with an explicit `of=`), checked with fincore.
 */
async function dropPages(path: string, track = true): Promise<boolean> {
  await check('dd', [`if=${path}`, 'of=/dev/null', 'iflag=nocache', 'count=0', 'status=none']);
  const resident = await exec('fincore', ['--bytes', '--noheadings', '--output', 'RES', path]).catch(() => undefined);
  const dropped = !(resident?.code === 0 && Number(resident.stdout.trim()) > 0);
  if (!dropped && track) undropped.add(path);
  return dropped;
}

async function timeCat(path: string): Promise<number> {
  return (await sh(`cat ${quote(path)} > /dev/null`)).ms;
}

/** Pairs of offsets (a, b) 1 MiB apart inside one layer span, for every span the files cover. */
async function spanPairs(clipPath: string): Promise<Array<{ path: string; a: number; b: number }>> {
  const reader = await ArchiveReader.open(clipPath);
  try {
    const index = reader.index;
    const image = asImageMeta(index.meta.image);
    const layers = decodeLayerIndexes(await index.readSection(SectionKind.LayerIndex), image.layers.length, index.section(SectionKind.Windows)?.length ?? 0);
    const pairs: Array<{ path: string; a: number; b: number }> = [];
    for (const file of regularFiles(reader)) {
      const layer = layers[file.layer];
      if (!layer) continue;
      for (const span of layer.spans) {
        const start = Math.max(0, span.uncompressedStart - file.offset);
        const end = Math.min(file.size, span.uncompressedEnd - file.offset);
        const a = Math.ceil(start / PAGE) * PAGE;
        const b = a + MiB;
        if (b + PAGE <= end) pairs.push({ path: file.path, a, b });
      }
    }
    return pairs;
  } finally {
    await reader.close();
  }
}

export async function measureFuse(ctx: BenchContext): Promise<void> {
  const { options, results, proxies } = ctx;
  const locals = await localSyntheticFiles();
  const big = SYNTHETIC_FILES[0];
  const bigLocal = locals.get(big.path) as string;
  const mountPoint = join(ctx.workDir, 'mnt');
  let mount: ClipMount | undefined;
  // Mount as the node plugin does: with a disk cache when this build has one (a fresh one per mount).
  const diskCache = await mountHasDiskCache();
  let mounts = 0;
  const mountArgs = (): string[] => (diskCache ? ['--cache-dir', join(ctx.workDir, `cache-${mounts++}`)] : []);
  results.note('local-disk comparisons read bench/.cache on this machine\'s virtual disk; "page cache dropped" uses posix_fadvise(DONTNEED) (dd iflag=nocache, checked with fincore), and the host below may still cache the file, so local cold reads are a best case for a real disk');
  results.note(`FUSE mounts: \`clip mount\` with ${diskCache ? 'a fresh --cache-dir (disk cache) per mount and default memory cache' : 'its defaults (this build has no disk cache)'}`);
  try {
    // Random 4 KiB reads.
    const pairs = pick(await spanPairs(ctx.synthetic.clipPath), options.randomReads, seededRandom(options.seed + 1));
    for (const local of locals.values()) await dropPages(local);
    const firstArgs = mountArgs();
    const cacheDir = diskCache ? firstArgs[1] : undefined;
    mount = await startMount(ctx.synthetic.clipPath, mountPoint, firstArgs);
    const job: ReaderJob = {
      bytes: PAGE,
      settleMs: SETTLE_MS,
      reads: pairs.map((p) => ({ mounted: join(mountPoint, p.path), local: locals.get(p.path) as string, a: p.a, b: p.b })),
    };
    const output = JSON.parse((await check(process.execPath, [READER, JSON.stringify(job)], { timeoutMs: 900_000 })).stdout) as ReaderOutput;
    const rss = await mount.rss();
    await mount.stop();
    mount = undefined;
    // The same spans again, from the disk cache alone: a fresh `clip mount` on the same --cache-dir.
    let fromDisk: { once: number[]; again: number[]; requests: number; bytes: number; files: number; undropped: number } | undefined;
    if (cacheDir !== undefined) {
      const files = (await check('find', [cacheDir, '-type', 'f'])).stdout.split('\n').filter((line) => line !== '');
      let stillResident = 0;
      /** One read per span at `offset` into it, with the cache files' pages dropped first. */
      const readFromDisk = async (offset: number): Promise<ReaderOutput> => {
        await check('sync', ['-f', cacheDir]); // written entries are dirty pages, which DONTNEED leaves alone
        for (const file of files) if (!(await dropPages(file, false))) stillResident++;
        const diskJob: ReaderJob = {
          bytes: PAGE,
          settleMs: 0,
          reads: [],
          once: pairs.map((p) => ({ mounted: join(mountPoint, p.path), local: locals.get(p.path) as string, at: p.a + offset })),
        };
        return JSON.parse((await check(process.execPath, [READER, JSON.stringify(diskJob)], { timeoutMs: 900_000 })).stdout) as ReaderOutput;
      };
      mount = await startMount(ctx.synthetic.clipPath, mountPoint, ['--cache-dir', cacheDir]);
      await proxies.reset();
      const diskOutput = await readFromDisk(FRESH);
      // Again in the same mount, at offsets nothing read yet: the mount now knows each entry's
      // header, as a long-lived node plugin's mount does for the spans it has served before.
      const againOutput = await readFromDisk(FRESH_AGAIN);
      const served = await proxies.stats();
      await mount.stop();
      mount = undefined;
      output.mismatches += diskOutput.mismatches + againOutput.mismatches;
      fromDisk = { once: diskOutput.once, again: againOutput.once, requests: served.requests, bytes: served.bytes, files: files.length, undropped: stillResident };
    }
    if (output.mismatches > 0) results.note(`FUSE random reads: ${output.mismatches} reads differed from the local copy: the figures below are suspect`);
    const clipCache = summarize(output.clipCache, 'ms');
    const pageCache = summarize(output.pageCache, 'ms');
    const localCold = summarize(output.localCold, 'ms');
    const localWarm = summarize(output.localWarm, 'ms');
    const coldSpan = summarize(output.coldSpan, 'ms');
    /** A row of 4 KiB reads compared with the same reads of the local file, its pages dropped. */
    const againstLocalCold = (id: string, name: string, clip: Summary, note: string): void =>
      results.add({ id, section: SECTION, name, clip: samples(clip), comparison: { label: 'local file, page cache dropped', figure: samples(localCold) }, ratio: p50Ratio(clip, localCold), note });
    againstLocalCold(
      'fuse.memory',
      '4 KiB random read, span already in clip memory (page not in page cache)',
      clipCache,
      `${pairs.length} spans of the synthetic image, one read each, ${SETTLE_MS} ms after the cold read of the span; served by the clip mount process (JavaScript) from its decompressed-span cache`,
    );
    results.add({
      id: 'fuse.page-cache',
      section: SECTION,
      name: '4 KiB random read repeated (page cache)',
      clip: samples(pageCache),
      comparison: { label: 'local file, repeated', figure: samples(localWarm) },
      ratio: p50Ratio(pageCache, localWarm),
      note: 'the mount sets kernel_cache: repeated reads never reach clip',
    });
    againstLocalCold('fuse.cold', '4 KiB random read, cold span (fetch compressed span + window, inflate ≤2 MiB)', coldSpan, `clip mount resident memory after the random reads: ${formatBytes(rss)}`);
    if (fromDisk) {
      againstLocalCold(
        'fuse.disk',
        '4 KiB random read, span in the node-local disk cache only (fresh `clip mount` process on a warm --cache-dir, memory cache empty, page cache not holding the page)',
        summarize(fromDisk.once, 'ms'),
        `the same ${pairs.length} spans, one read each at ${FRESH / 1024} KiB into the span (no earlier read touched it), after the first mount (which filled the --cache-dir) stopped and a new one started on the same --cache-dir; ` +
          `the pages of the ${fromDisk.files} cache files dropped first as for the local file (${fromDisk.undropped} still resident); ` +
          `registry during these reads: ${fromDisk.requests} requests, ${formatBytes(fromDisk.bytes)}` +
          (fromDisk.bytes > 0 ? ' — not all from the disk cache: the figure mixes in registry fetches' : ''),
      );
      againstLocalCold(
        'fuse.disk-again',
        '4 KiB random read, span in the node-local disk cache only, entry already read once by this mount (its header known; memory cache without these bytes, page cache not holding the page)',
        summarize(fromDisk.again, 'ms'),
        `the same mount right after the row above, one read per span at ${FRESH_AGAIN / 1024} KiB into it (no earlier read touched it), the cache files' pages dropped again; registry figures as above (both passes)`,
      );
    } else results.note('FUSE random reads: no disk-cache row (this build of `clip mount` has no --cache-dir)');

    // Sequential reads of the 256 MiB file.
    const cold: number[] = [];
    const warm: number[] = [];
    const clipOnly: number[] = [];
    const localCold2: number[] = [];
    const localWarm2: number[] = [];
    const coldBytes: number[] = [];
    const clipOnlyBytes: number[] = [];
    const rssAfter: number[] = [];
    const mounted = join(mountPoint, big.path);
    for (let run = 0; run < options.runs; run++) {
      mount = await startMount(ctx.synthetic.clipPath, mountPoint, mountArgs());
      await proxies.reset();
      cold.push(await timeCat(mounted));
      coldBytes.push((await proxies.stats()).bytes);
      warm.push(await timeCat(mounted));
      await dropPages(mounted);
      await proxies.reset();
      clipOnly.push(await timeCat(mounted));
      clipOnlyBytes.push((await proxies.stats()).bytes);
      rssAfter.push(await mount.rss());
      await mount.stop();
      mount = undefined;
      await dropPages(bigLocal);
      localCold2.push(await timeCat(bigLocal));
      localWarm2.push(await timeCat(bigLocal));
    }
    const rate = (ms: readonly number[]): string => {
      const s = summarize(ms.map((t) => big.size / MiB / (t / 1000)), 'MiB/s');
      return `${num(s.p50)} MiB/s (range ${num(s.min)}–${num(s.max)})`;
    };
    const secs = (ms: readonly number[]) => samples(summarize(ms.map((t) => t / 1000), 's'));
    results.add({
      id: 'fuse.sequential.cold',
      section: SECTION,
      name: 'sequential read of a 256 MiB file, cold (fresh mount, nothing cached)',
      clip: secs(cold),
      comparison: { label: 'cat from local disk, page cache dropped', figure: secs(localCold2) },
      ratio: pairedRatio(cold, localCold2),
      note: `clip ${rate(cold)}, local ${rate(localCold2)}; registry bytes per cold read ${formatBytes(summarize(coldBytes, 'B').p50)} (median)`,
    });
    results.add({
      section: SECTION,
      name: 'sequential read of the 256 MiB file again (page cache)',
      clip: secs(warm),
      comparison: { label: 'cat from local disk, warm', figure: secs(localWarm2) },
      ratio: pairedRatio(warm, localWarm2),
      note: `clip ${rate(warm)}, local ${rate(localWarm2)}`,
    });
    const refetched = summarize(clipOnlyBytes, 'B').p50;
    results.add({
      section: SECTION,
      name: `sequential read with the page cache dropped (clip's own caches: memory${diskCache ? ' and disk' : ''})`,
      clip: secs(clipOnly),
      comparison: { label: 'cat from local disk, warm', figure: secs(localWarm2) },
      ratio: pairedRatio(clipOnly, localWarm2),
      note:
        `clip ${rate(clipOnly)}; registry bytes fetched again: ${formatBytes(refetched)} (median)` +
        (refetched > 0 ? ' — the file (129 spans of 2 MiB) does not fit the 256 MiB memory cache and nothing else kept it, so a second pass refetches' : '') +
        `; clip mount resident memory after: ${formatBytes(summarize(rssAfter, 'B').p50)}`,
    });
  } finally {
    await mount?.stop();
  }
  if (undropped.size > 0) results.note(`the page cache could not be dropped for ${[...undropped].join(', ')}: their "page cache dropped" figures are too good`);
}
