/**
 * 4c. A Python interpreter from the image importing numpy and 17 standard library modules (issue
 * 16's target: ≤ 1.2× local on a warm cache). The python image (bench/python-image.ts) through
 * `clip mount` against the same layers unpacked on local disk, the command run in a chroot of each,
 * timed by bash (bench/shell-timer.ts):
 * - warm: one untimed run on each side first (clip's memory and disk caches, the page cache, the
 *   dentries), then paired runs alternating which side goes first;
 * - fresh process on a warm disk cache: before each clip run a new `clip mount` on the --cache-dir
 *   the first one filled (clip's memory, the mount's page cache and its dentries empty), against
 *   the local tree still warm.
 * Python writes no byte code (-B, PYTHONDONTWRITEBYTECODE=1) on either side: the mount is read-only.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BenchContext, PushedBenchImage } from './context.js';
import { startMount, type ClipMount } from './mount.js';
import { check } from './proc.js';
import { PYTHON } from './python-image.js';
import { startFuseFloor } from './fuse-floor.js';
import { interleaved, paired, pairedRatio, samples } from './results.js';
import { startShellTimer, type ShellTimer } from './shell-timer.js';
import { formatBytes, summarize } from './stats.js';

const SECTION = '4. Reads through FUSE';
const STDLIB = ['json', 'os', 're', 'collections', 'datetime', 'decimal', 'email', 'http.client', 'logging', 'pathlib', 'sqlite3', 'subprocess', 'typing', 'unittest', 'xml.etree.ElementTree', 'hashlib', 'ssl'];
const SCRIPT = `import numpy, ${STDLIB.join(', ')}; numpy.ones(10).sum()`;
const NAME = `Python importing numpy and ${STDLIB.length} stdlib modules`;

const quote = (path: string): string => `'${path.replaceAll("'", `'\\''`)}'`;
const seconds = (ms: readonly number[]) => samples(summarize(ms.map((t) => t / 1000), 's'));

/** The command, as bash runs it: python3.11 of the tree at `root`, in a chroot, writing no byte code. */
const command = (root: string): string => `PYTHONDONTWRITEBYTECODE=1 chroot ${quote(root)} ${PYTHON} -B -c ${quote(SCRIPT)}`;

/** What python -v says about where its modules came from. */
interface ImportSources {
  readonly byteCode: number;
  readonly compiled: number;
  readonly extensions: number;
}

/** The untimed first run, with -v: fills the caches, and counts modules by source (a stale .pyc would be compiled each run). */
async function firstRun(root: string): Promise<ImportSources> {
  const run = await check('chroot', [root, PYTHON, '-B', '-v', '-c', SCRIPT], { env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' }, timeoutMs: 120_000 });
  const lines = run.stderr.split('\n');
  const count = (pattern: RegExp): number => lines.filter((line) => pattern.test(line)).length;
  return { byteCode: count(/^# code object from '.*\.pyc'$/), compiled: count(/^# code object from '.*\.py'$/), extensions: count(/^# extension module '.*' loaded from /) };
}

const describeSources = (s: ImportSources): string => `${s.byteCode} modules from byte code, ${s.compiled} compiled from source, ${s.extensions} extension modules`;

export async function measurePython(ctx: BenchContext): Promise<void> {
  const python = ctx.python;
  if (python === undefined) throw new Error('the python image was not set up');
  if ('unavailable' in python) {
    ctx.results.skip(SECTION, NAME, python.unavailable);
    return;
  }
  if ('failed' in python) throw new Error(python.failed);
  if (process.getuid?.() !== 0) {
    ctx.results.skip(SECTION, NAME, 'chroot needs root');
    return;
  }
  const local = join(ctx.workDir, 'python-local');
  await check('mkdir', ['-p', local]);
  for (const layer of python.image.layers) await check('tar', ['-xzf', layer.blobPath, '-C', local], { timeoutMs: 600_000 });
  const shell = startShellTimer();
  try {
    await measure(ctx, python, local, shell);
  } finally {
    await shell.close();
    await rm(local, { recursive: true, force: true });
  }
}

async function measure(ctx: BenchContext, python: PushedBenchImage, local: string, shell: ShellTimer): Promise<void> {
  const { options, results, proxies } = ctx;
  const mountPoint = join(ctx.workDir, 'mnt-python');
  const cacheDir = join(ctx.workDir, 'python-cache');
  const n = Math.max(9, options.runs * 3);
  const clipRun = (): Promise<number> => shell.time(command(mountPoint));
  const localRun = (): Promise<number> => shell.time(command(local));
  const floorPoint = join(ctx.workDir, 'mnt-python-floor');
  const floorRun = (): Promise<number> => shell.time(command(floorPoint));
  let mount: ClipMount | undefined = await startMount(python.clipPath, mountPoint, ['--cache-dir', cacheDir]);
  let floor: { stop(): Promise<void> } | undefined;
  try {
    floor = await startFuseFloor(local, floorPoint);
    await proxies.reset();
    const clipSources = await firstRun(mountPoint);
    const filled = await proxies.stats();
    const localSources = await firstRun(local);
    await firstRun(floorPoint);
    const sources =
      describeSources(clipSources) === describeSources(localSources)
        ? `both sides: ${describeSources(clipSources)}`
        : `clip: ${describeSources(clipSources)}; local: ${describeSources(localSources)} — the sides differ, the figures are suspect`;
    await proxies.reset();
    const [warmClip, warmLocal, warmFloor] = (await interleaved(n, [clipRun, localRun, floorRun])) as [number[], number[], number[]];
    const warm = { clip: warmClip, baseline: warmLocal };
    const warmServed = await proxies.stats();
    const rss = await mount.rss();
    results.add({
      id: 'fuse.python-import',
      section: SECTION,
      name: `${NAME}, warm`,
      clip: seconds(warm.clip),
      comparison: { label: 'the same layers unpacked on local disk, warm', figure: seconds(warm.baseline) },
      ratio: pairedRatio(warm.clip, warm.baseline),
      note:
        `issue 16's target ≤ 1.2× local; \`chroot <root> ${PYTHON} -B -c '${SCRIPT}'\` (PYTHONDONTWRITEBYTECODE=1); one \`clip mount\` with a fresh --cache-dir, one untimed run on each side first ` +
        `(it fetched ${formatBytes(filled.bytes)} in ${filled.requests} registry requests), then rounds of clip, local and the FUSE floor (the row below), the order rotated each round; registry during the timed runs: ${warmServed.requests} requests; ` +
        `${sources}; clip mount resident memory after: ${formatBytes(rss)}`,
    });
    results.add({
      id: 'fuse.python-import-floor',
      section: SECTION,
      name: `${NAME}, warm, beside the FUSE floor`,
      clip: seconds(warm.clip),
      comparison: { label: 'the local tree served by a minimal libfuse3 server in C (bench/fuse-floor.c): the FUSE floor', figure: seconds(warmFloor) },
      ratio: pairedRatio(warm.clip, warmFloor),
      note: `the clip runs of the row above, each beside the floor run of its round: the floor answers the same OPEN, IOCTL and RELEASE requests from memory with libfuse's own loop, so its time over local (${pairedRatio(warmFloor, warm.baseline).text}) is what any FUSE server pays here`,
    });

    // A fresh `clip mount` process before each clip run, on the --cache-dir the first one filled.
    const fresh = async (): Promise<number> => {
      await mount?.stop();
      mount = undefined;
      mount = await startMount(python.clipPath, mountPoint, ['--cache-dir', cacheDir]);
      return clipRun();
    };
    await proxies.reset();
    const restarted = await paired(n, fresh, localRun);
    const freshServed = await proxies.stats();
    results.add({
      id: 'fuse.python-import-fresh',
      section: SECTION,
      name: `${NAME}, fresh \`clip mount\` process on a warm --cache-dir`,
      clip: seconds(restarted.clip),
      comparison: { label: 'the same layers unpacked on local disk, warm', figure: seconds(restarted.baseline) },
      ratio: pairedRatio(restarted.clip, restarted.baseline),
      note:
        `the same command, each clip run the first on a new \`clip mount\` (started untimed) of the --cache-dir the row above filled: clip's memory cache, the mount's page cache and its dentries are empty, ` +
        `the data comes from the disk cache (whose files the host's page cache likely holds); the local tree stays warm (page cache, dentries), so the ratio is what a restarted node plugin pays over a warm local disk; ` +
        `registry during these runs: ${freshServed.requests} requests, ${formatBytes(freshServed.bytes)}` +
        (freshServed.bytes > 0 ? ' — not all from the disk cache' : '') +
        `; ${n} pairs`,
    });
  } finally {
    await mount?.stop();
    await floor?.stop();
  }
}
