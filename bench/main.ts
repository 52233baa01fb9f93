/**
 * `npm run bench -- [--quick] [--slow] ...`: starts the tests' registry, builds and pushes the bench
 * images, runs every measurement, writes its results file (bench/results-file.ts) and prints a markdown table.
 * Never part of `npm test`. Only loopback addresses are contacted (apt-get download aside, on first use).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createFromOCIImage, type CreateFromOCIImageResult } from '../src/clipcore/index.js';
import { forceUnmount } from '../src/clipcore/fuse/mount-table.js';
import { startRegistry, type RegistryHandle } from '../test/harness/registry.js';
import type { BenchContext, PushedBenchImage, PushedLayerImage } from './context.js';
import { cleanCache, debianLayers, extraLayers, packageVersions, pushCachedImage, syntheticLayer, TEXT_FILE, textLayer, type BenchImage } from './images.js';
import { startContainerd, type Containerd } from './containerd.js';
import { machineInfo } from './machine.js';
import { measureColdReads } from './measure-cold-reads.js';
import { measureFuse, measureFuseTree } from './measure-fuse.js';
import { measureIndexSize, measureIndexTime } from './measure-index.js';
import { measureController } from './measure-controller.js';
import { measureControllerWatch } from './measure-controller-watch.js';
import { measureNodePlugin } from './measure-node.js';
import { measurePython } from './measure-python.js';
import { measureRestarts } from './measure-restart.js';
import { measureTtfb } from './measure-ttfb.js';
import { MEASUREMENTS, parseOptions, type Measurement } from './options.js';
import { startProxies, type Proxies } from './proxies.js';
import { REPO_ROOT, RESULTS_DIR } from './paths.js';
import { pythonLayers } from './python-image.js';
import { exec } from './proc.js';
import { markdown, type RunDescription } from './report.js';
import { Results } from './results.js';
import { writeResultsFile, type ResultsFile } from './results-file.js';
import { formatBytes, msSince, summarize } from './stats.js';

const log = (message: string): void => {
  process.stderr.write(`${message}\n`);
};

const options = parseOptions(process.argv.slice(2));
const started = process.hrtime.bigint();
const results = new Results();
const machine = await machineInfo();
const workDir = await mkdtemp(join(tmpdir(), 'clip-bench-'));
// The machine is shared: the load average over the run says how much the figures may be inflated.
const loadSamples: number[] = [loadavg()[0] ?? 0];
const loadTimer = setInterval(() => loadSamples.push(loadavg()[0] ?? 0), 5000);
loadTimer.unref();
const source = await sourceState();
let registry: RegistryHandle | undefined;
let proxies: Proxies | undefined;
let containerd: Containerd | undefined;
let failed = false;

/** The commit measured, and whether the work tree had changes on top of it. */
async function sourceState(): Promise<{ text: string; commit: string }> {
  const head = await exec('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT }).catch(() => undefined);
  const status = await exec('git', ['status', '--porcelain', '--', 'src', 'bench', ':!bench/results'], { cwd: REPO_ROOT }).catch(() => undefined);
  if (!head || head.code !== 0) return { text: 'unknown (not a git checkout)', commit: 'unknown' };
  const changed = status?.stdout.split('\n').filter((l) => l.trim()).length ?? 0;
  const commit = head.stdout.trim();
  return { text: `commit ${commit}${changed > 0 ? ` plus ${changed} uncommitted change(s) under src/ or bench/` : ''}`, commit: `${commit}${changed > 0 ? '-dirty' : ''}` };
}

async function cleanup(): Promise<void> {
  await forceUnmount(join(workDir, 'mnt')).catch(() => undefined);
  await containerd?.close().catch(() => undefined);
  await proxies?.close().catch(() => undefined);
  await registry?.stop().catch(() => undefined);
  await rm(workDir, { recursive: true, force: true }).catch(() => undefined);
}

process.once('SIGINT', () => {
  log('interrupted: cleaning up');
  void cleanup().finally(() => process.exit(130));
});

const tagFor = (name: string): string => name.replace(/[^A-Za-z0-9_.-]/g, '-');

try {
  log(`clip-csi bench: ${options.quick ? 'quick' : 'full'}${options.slow ? ', slow registry' : ''}; work dir ${workDir}`);
  await cleanCache();
  const debian = await debianLayers();
  if (debian.fallback) results.note(`realistic image: ${debian.fallback}`);
  const synthetic = await syntheticLayer();
  // The many-layer image exists only with the real packages (not with the fallback's directories).
  const extra = debian.fallback ? undefined : await extraLayers();
  const text = await textLayer(debian.layers[0] as BenchImage['layers'][number]);
  registry = await startRegistry();
  const endpoint = { url: registry.url };
  const debianImage: BenchImage = {
    repo: 'bench/debian',
    tag: 'full',
    layers: debian.layers,
    description: debian.fallback ? 'local directories' : `Debian packages ${packageVersions(debian.layers)}`,
  };
  const syntheticImage: BenchImage = { repo: 'bench/synthetic', tag: 'v1', layers: [synthetic], description: 'one 512 MiB layer: a 256 MiB file and four of 64 MiB, text-like random bytes' };
  log('pushing images');
  const pushStarted = process.hrtime.bigint();
  const debianDigest = await pushCachedImage(endpoint, debianImage);
  const syntheticDigest = await pushCachedImage(endpoint, syntheticImage);
  const textImage: BenchImage = { repo: 'bench/text', tag: 'v1', layers: [text.layer], description: `one layer: ${TEXT_FILE}, every file of ${text.layer.source} one after another` };
  const textDigest = await pushCachedImage(endpoint, textImage);
  const manyImage: BenchImage | undefined = extra && {
    repo: 'bench/debian-many',
    tag: 'v1',
    layers: [...debian.layers, ...extra],
    description: `the debian image's packages and ${packageVersions(extra)}`,
  };
  if (manyImage) await pushCachedImage(endpoint, manyImage);
  const layerImages: PushedLayerImage[] = [];
  const layerRefs: Array<{ layer: BenchImage['layers'][number]; tag: string }> = [];
  for (const layer of [...debian.layers, synthetic]) {
    const tag = tagFor(layer.name);
    if (layer !== synthetic) await pushCachedImage(endpoint, { repo: 'bench/layers', tag, layers: [layer], description: layer.name });
    layerRefs.push({ layer, tag });
  }
  log(`pushed in ${(msSince(pushStarted) / 1000).toFixed(1)} s`);

  proxies = await startProxies({
    registryHost: registry.host,
    ...(options.slow && { throttle: { latencyMs: options.latencyMs, bitsPerSecond: options.mbitPerSecond * 1e6 } }),
  });
  for (const { layer, tag } of layerRefs) {
    layerImages.push({ layer, ref: layer === synthetic ? `${proxies.host}/bench/synthetic:v1` : `${proxies.host}/bench/layers:${tag}` });
  }

  log('indexing the images once (default settings)');
  const indexes = new Map<PushedBenchImage, CreateFromOCIImageResult>();
  const indexed = async (image: BenchImage, digest: string, name: string): Promise<PushedBenchImage> => {
    const ref = `${(proxies as Proxies).host}/${image.repo}:${image.tag}`;
    const clipPath = join(workDir, `${name}.clip`);
    const result = await createFromOCIImage({ imageRef: ref, outputPath: clipPath });
    const pushed: PushedBenchImage = { image, ref, digest, clipPath };
    indexes.set(pushed, result);
    return pushed;
  };
  const debianPushed = await indexed(debianImage, debianDigest, 'debian');
  const syntheticPushed = await indexed(syntheticImage, syntheticDigest, 'synthetic');
  // The same object as the index map's key, with the text file's details added.
  const textPushed = Object.assign(await indexed(textImage, textDigest, 'text'), { file: { path: TEXT_FILE, localPath: text.localPath, size: text.size } });
  // The python image only when measured: its last layer is built by running its interpreter in a chroot.
  let python: BenchContext['python'];
  if (options.only.has('python')) {
    try {
      const built = await pythonLayers(workDir);
      if ('unavailable' in built) python = built;
      else {
        const pythonImage: BenchImage = { repo: 'bench/python', tag: 'v1', layers: built.layers, description: `Debian packages ${packageVersions(built.layers.slice(0, -1))}, and the alternatives and byte code their maintainer scripts write` };
        python = await indexed(pythonImage, await pushCachedImage(endpoint, pythonImage), 'python');
      }
    } catch (err) {
      python = { failed: `building, pushing or indexing the python image: ${(err as Error).stack ?? String(err)}` };
    }
  }

  if (options.only.has('ttfb') || options.only.has('node')) {
    const started = await startContainerd(join(workDir, 'containerd'));
    if ('unavailable' in started) results.note(`no containerd pull to compare with: ${started.unavailable}`);
    else containerd = started;
  }
  const ctx: BenchContext = { options, results, workDir, registry, proxies, debian: debianPushed, layerImages, synthetic: syntheticPushed, text: textPushed, ...(manyImage && { many: { image: manyImage, ref: `${proxies.host}/${manyImage.repo}:${manyImage.tag}` } }), ...(python && { python }), containerd, shared: { fullPulls: [] } };
  const sectionOf: Record<Measurement, string> = { index: '1. Index time', size: '2. Index size', ttfb: '3. Time to first byte', fuse: '4. Reads through FUSE', fusetree: '4. Reads through FUSE', python: '4. Reads through FUSE', node: '5. Node plugin', controller: '6. Controller' };
  const steps: Array<[Measurement, string, () => Promise<void>]> = [
    ['index', '1. index time', () => measureIndexTime(ctx)],
    // Section 2 reports the images every run has (the python image is indexed only when measured).
    ['size', '2. index size', () => measureIndexSize(ctx, new Map([...indexes].filter(([pushed]) => pushed !== python)))],
    ['ttfb', '3. time to first byte', () => measureTtfb(ctx)],
    ['fuse', '4. reads through FUSE', async () => {
      await measureFuse(ctx);
      await measureColdReads(ctx);
    }],
    ['fusetree', '4b. whole-tree metadata and concurrent cold reads through FUSE', () => measureFuseTree(ctx)],
    ['python', '4c. a Python interpreter from the image importing numpy, warm', () => measurePython(ctx)],
    ['node', '5. node plugin', () => measureNodePlugin(ctx)],
    ['node', '5b. node plugin restarts under a running reader', () => measureRestarts(ctx)],
    ['controller', '6. controller', () => measureController(ctx)],
    ['controller', '6. controller watching 50,000 pods', () => measureControllerWatch(ctx)],
  ];
  for (const [id, title, step] of steps) {
    if (!options.only.has(id)) continue;
    log(`${title}`);
    const stepStarted = process.hrtime.bigint();
    try {
      await step();
    } catch (err) {
      failed = true;
      results.fail(sectionOf[id], title, (err as Error).stack ?? String(err));
    }
    log(`  (${(msSince(stepStarted) / 1000).toFixed(1)} s)`);
  }

  machine.loadEnd = loadavg()[0] ?? 0;
  const load = summarize(loadSamples, '');
  const describe = (p: PushedBenchImage): string => {
    const r = indexes.get(p) as CreateFromOCIImageResult;
    return `${p.image.repo.split('/').pop()}: ${p.image.layers.length} gzip layer(s) (gzip -n -6), ${formatBytes(r.compressedImageBytes)} compressed, ${formatBytes(r.uncompressedImageBytes)} uncompressed, ${r.files} files, ${r.entries} entries; ${p.image.description}`;
  };
  const args = process.argv.slice(2);
  const run: RunDescription = {
    title: `${options.quick ? 'Quick run' : 'Full run'}${options.slow ? `, slow registry (${options.latencyMs} ms per request, ${options.mbitPerSecond} Mbit/s)` : ''}`,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    command: `npm run bench${args.length > 0 ? ` -- ${args.join(' ')}` : ''}`,
    machine,
    source: source.text,
    load: `1-minute load average sampled every 5 s: median ${load.p50.toFixed(1)}, range ${load.min.toFixed(1)}–${load.max.toFixed(1)} (on ${machine.nproc} CPUs; the bench's own work counts too)`,
    network: options.slow
      ? `loopback; clients → counting proxy → throttling proxy (+${options.latencyMs} ms per request, ${options.mbitPerSecond} Mbit/s shared by all responses) → docker-registry`
      : 'loopback; clients → counting proxy → docker-registry (no added latency or bandwidth limit)',
    images: [describe(debianPushed), describe(syntheticPushed), describe(textPushed), ...(python && 'clipPath' in python ? [describe(python)] : [])],
    seconds: msSince(started) / 1000,
  };
  const table = markdown(run, results);
  await mkdir(RESULTS_DIR, { recursive: true });
  const partial = MEASUREMENTS.filter((m) => options.only.has(m));
  const mode = `${options.quick ? 'quick' : 'full'}${options.slow ? '-slow' : ''}${partial.length < MEASUREMENTS.length ? `-only-${partial.join('-')}` : ''}`;
  const file: ResultsFile = { format: 1, commit: source.commit, mode, run, options: { ...options, only: [...options.only] }, rows: results.rows, skipped: results.skipped, notes: results.notes };
  const path = await writeResultsFile(RESULTS_DIR, file);
  // The latest run again under a fixed name (gitignored), for scripts that want "the last one".
  await writeFile(join(RESULTS_DIR, 'latest.json'), JSON.stringify(file, null, 1));
  process.stdout.write(`${table}\n`);
  log(`wrote ${path} (commit it if docs/performance.md is to cite it)`);
  log(`to put it into docs/performance.md: npm run bench:docs -- ${relative(REPO_ROOT, path)} [the --slow run's file]`);
} catch (err) {
  failed = true;
  log(`bench failed: ${(err as Error).stack ?? String(err)}`);
} finally {
  await cleanup();
}
process.exitCode = failed ? 1 : 0;
