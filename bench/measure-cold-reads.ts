/**
 * 4. Reads through FUSE, cold, at the inflate limit (issue 19). Each case on a fresh `clip mount`
 *    (fresh --cache-dir where this build has one), timed by bash (bench/shell-timer.ts):
 *    - a sequential read (`cat`) of the synthetic 256 MiB file and of the mostly-text file, in MB/s,
 *      against `skopeo copy` of the same one-layer image + `gzip -dc` of its layer over the same
 *      link (the layer's uncompressed MB/s), paired runs;
 *    - `tar -cf - <dirs> | wc -c` of a cold source tree (Go's runtime and go/ packages, about 1,800
 *      files), against `skopeo copy` + `tar -xzf` of the layer that holds them;
 *    - 16 readers against 1 on the same distinct cold small files (one per span, so no two share a
 *      fetch), each on a fresh mount.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ArchiveReader } from '../src/clipcore/index.js';
import type { BenchContext } from './context.js';
import { SYNTHETIC_FILES, type CachedLayer } from './images.js';
import { freshCacheDirs, mountHasDiskCache, startMount } from './mount.js';
import { check } from './proc.js';
import { pairedRatio, samples } from './results.js';
import { startShellTimer, type ShellTimer } from './shell-timer.js';
import { num, seededRandom, summarize } from './stats.js';
import { pick, regularFiles } from './tree.js';

const SECTION = '4. Reads through FUSE';
const TREE_DIRS = ['usr/share/go-1.19/src/runtime', 'usr/share/go-1.19/src/go'];
const SMALL_FILE_BYTES = 64 * 1024;
const READERS = 16;

const quote = (path: string): string => `'${path.replaceAll("'", `'\\''`)}'`;
const seconds = (ms: readonly number[]) => samples(summarize(ms.map((t) => t / 1000), 's'));

export async function measureColdReads(ctx: BenchContext): Promise<void> {
  const shell = startShellTimer();
  const diskCache = await mountHasDiskCache();
  let mounts = 0;
  const mountPoint = join(ctx.workDir, 'mnt');
  /**
   * Runs `use` on a fresh mount of `clipPath` (and a fresh disk cache), always unmounting. The
   * cache goes with the mount, as the pull's copy goes right after it is timed: neither side leaves
   * hundreds of megabytes of dirty pages whose writeback would take the CPU from later rows.
   */
  const cacheDirs = freshCacheDirs(ctx.workDir, 'cold-cache');
  const onFreshMount = async <T>(clipPath: string, use: () => Promise<T>): Promise<T> => {
    const mount = await startMount(clipPath, mountPoint, diskCache ? ['--cache-dir', cacheDirs.next()] : []);
    try {
      return await use();
    } finally {
      await mount.stop();
      await cacheDirs.removeAll();
    }
  };
  /** `skopeo copy` of a one-layer image through the proxies, then `then` on the copied layer blob; the copy is removed after. */
  const pullThen = async (ref: string, layer: CachedLayer, then: (blob: string) => string): Promise<number> => {
    const layout = join(ctx.workDir, `cold-pull-${mounts++}`);
    const blob = join(layout, 'blobs', ...layer.digest.split(':'));
    try {
      return await shell.time(`skopeo copy --quiet --src-tls-verify=false ${quote(`docker://${ref}`)} ${quote(`oci:${layout}:bench`)} && ${then(blob)}`);
    } finally {
      await rm(layout, { recursive: true, force: true });
    }
  };
  try {
    const sequential = async (id: string, name: string, clipPath: string, ref: string, layer: CachedLayer, file: { path: string; size: number }): Promise<void> => {
      const clipRates: number[] = [];
      const pullRates: number[] = [];
      for (let run = 0; run < ctx.options.runs; run++) {
        const clip = (): Promise<void> =>
          onFreshMount(clipPath, async () => {
            clipRates.push(file.size / 1e6 / ((await shell.time(`cat ${quote(join(mountPoint, file.path))}`)) / 1000));
          });
        const pull = async (): Promise<void> => {
          pullRates.push(layer.uncompressedSize / 1e6 / ((await pullThen(ref, layer, (blob) => `gzip -dc ${quote(blob)}`)) / 1000));
        };
        // Alternate which goes first: neither always runs on a machine the other just warmed.
        if (run % 2 === 0) await clip().then(pull);
        else await pull().then(clip);
      }
      ctx.results.add({
        id,
        section: SECTION,
        name,
        clip: samples(summarize(clipRates, 'MB/s')),
        comparison: { label: 'skopeo copy + gzip -dc of the same layer, same link (MB/s of the layer)', figure: samples(summarize(pullRates, 'MB/s')) },
        ratio: pairedRatio(clipRates, pullRates),
        note: `a ratio of rates: above 1, clip reads the file faster than the pull unpacks the layer (issue 19's target: ≥ 0.7); ${num(file.size / 1e6)} MB file, layer ${num(layer.size / 1e6)} MB compressed, ${num(layer.uncompressedSize / 1e6)} MB uncompressed`,
      });
    };
    const synthetic = ctx.synthetic.image.layers[0] as CachedLayer;
    await sequential('fuse.sequential.rate', 'sequential read of the 256 MiB file, cold, in MB/s', ctx.synthetic.clipPath, ctx.synthetic.ref, synthetic, SYNTHETIC_FILES[0]);
    await sequential('fuse.sequential.text', 'sequential read of a mostly-text file, cold, in MB/s', ctx.text.clipPath, ctx.text.ref, ctx.text.image.layers[0] as CachedLayer, ctx.text.file);
    await sourceTree(ctx, shell, onFreshMount, pullThen, mountPoint);
    await readers(ctx, shell, onFreshMount, mountPoint);
  } finally {
    await shell.close();
  }
}

type OnFreshMount = <T>(clipPath: string, use: () => Promise<T>) => Promise<T>;

async function sourceTree(
  ctx: BenchContext,
  shell: ShellTimer,
  onFreshMount: OnFreshMount,
  pullThen: (ref: string, layer: CachedLayer, then: (blob: string) => string) => Promise<number>,
  mountPoint: string,
): Promise<void> {
  const name = '`tar -cf - <dirs> | wc -c` of a cold source tree';
  const reader = await ArchiveReader.open(ctx.debian.clipPath);
  const files = regularFiles(reader).filter((f) => TREE_DIRS.some((dir) => f.path.startsWith(`${dir}/`)));
  await reader.close();
  const holder = ctx.layerImages.find((l) => l.layer.name === 'golang-1.19-src');
  if (files.length === 0 || holder === undefined) {
    ctx.results.skip(SECTION, name, `the debian image has no ${TREE_DIRS.join(', ')} (apt-get download fell back to local directories)`);
    return;
  }
  const clip: number[] = [];
  const pull: number[] = [];
  const unpacked = join(ctx.workDir, 'cold-tree');
  for (let run = 0; run < ctx.options.runs; run++) {
    clip.push(await onFreshMount(ctx.debian.clipPath, () => shell.time(`tar -C ${quote(mountPoint)} -cf - ${TREE_DIRS.join(' ')} | wc -c`)));
    await mkdir(unpacked, { recursive: true });
    pull.push(await pullThen(holder.ref, holder.layer, (blob) => `tar -xzf ${quote(blob)} -C ${quote(unpacked)}`));
    await rm(unpacked, { recursive: true, force: true });
  }
  const bytes = files.reduce((sum, f) => sum + f.size, 0);
  ctx.results.add({
    id: 'fuse.tree',
    section: SECTION,
    name: `${name} (${TREE_DIRS.map((d) => d.split('/').slice(-2).join('/')).join(', ')}: ${files.length} files, ${num(bytes / 1e6)} MB)`,
    clip: seconds(clip),
    comparison: { label: 'skopeo copy + tar -xzf of the layer holding them, same link', figure: seconds(pull) },
    ratio: pairedRatio(clip, pull),
    note: `fresh mount each run; clip ${num(files.length / (summarize(clip, 'ms').p50 / 1000))} files/s (median)`,
  });
}

async function readers(ctx: BenchContext, shell: ShellTimer, onFreshMount: OnFreshMount, mountPoint: string): Promise<void> {
  const reader = await ArchiveReader.open(ctx.debian.clipPath);
  // One small file per span: no two reads share a fetch, so every read is a cold one.
  const bySpan = new Map<string, string>();
  for (const file of regularFiles(reader)) {
    if (file.size === 0 || file.size > SMALL_FILE_BYTES) continue;
    const spans = reader.spansOf(file.path);
    if (spans.length === 1 && !bySpan.has((spans[0] as { key: string }).key)) bySpan.set((spans[0] as { key: string }).key, file.path);
  }
  await reader.close();
  const chosen = pick([...bySpan.values()], ctx.options.quick ? 48 : 96, seededRandom(ctx.options.seed + 19));
  const listDir = join(ctx.workDir, 'cold-readers');
  await mkdir(listDir, { recursive: true });
  const lists = Array.from({ length: READERS }, (_, i) => join(listDir, `part-${i}`));
  const paths = chosen.map((path) => join(mountPoint, path));
  await writeFile(join(listDir, 'all'), `${paths.join('\n')}\n`);
  await Promise.all(lists.map((list, i) => writeFile(list, `${paths.filter((_, j) => j % READERS === i).join('\n')}\n`)));
  const one: number[] = [];
  const many: number[] = [];
  const single = `xargs -d '\\n' -a ${quote(join(listDir, 'all'))} cat`;
  const parallel = `${lists.map((list) => `xargs -d '\\n' -a ${quote(list)} cat &`).join(' ')} wait`;
  for (let run = 0; run < ctx.options.runs; run++) {
    const timeOne = async (): Promise<void> => void one.push(await onFreshMount(ctx.debian.clipPath, () => shell.time(single)));
    const timeMany = async (): Promise<void> => void many.push(await onFreshMount(ctx.debian.clipPath, () => shell.time(parallel)));
    if (run % 2 === 0) await timeOne().then(timeMany);
    else await timeMany().then(timeOne);
  }
  await check('rm', ['-rf', listDir]);
  ctx.results.add({
    id: 'fuse.readers',
    section: SECTION,
    name: `${chosen.length} distinct cold small files (≤ 64 KiB, one per span): ${READERS} readers at once`,
    clip: seconds(many),
    comparison: { label: 'the same files, one reader', figure: seconds(one) },
    ratio: pairedRatio(many, one),
    note: `fresh mount each; speed-up of ${READERS} readers over one: ${num(1 / pairedRatio(many, one).value)}× (issue 19's target: ≥ 1.8×, a ratio ≤ 0.56)`,
  });
}
