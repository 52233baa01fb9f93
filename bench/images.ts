/**
 * The bench's images, built once into bench/.cache and pushed to the run's registry:
 * - debian: one gzip layer per Debian package (`apt-get download`, `dpkg-deb --fsys-tarfile`), about
 *   300 MB uncompressed and 20,000 entries; falls back to tars of local directories when apt fails;
 * - synthetic: one 512 MiB layer of large files (a 256 MiB file and four of 64 MiB);
 * - text and debian-many (below), and python (bench/python-image.ts, built from packageLayers here).
 * Layers are compressed with `gzip -n -6` (gzip's default level, as image builders use), so the
 * cached blob is byte for byte the blob the registry serves: the baselines run on that file.
 */
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pushImageDetailed, type RawLayer } from '../test/harness/image-builder.js';
import type { RegistryEndpoint } from '../test/harness/registry-http.js';
import { buildTarLayer, type GeneratedContent } from '../test/harness/tar-layer.js';
import { check, exec } from './proc.js';
import { CACHE_DIR } from './paths.js';

export interface CachedLayer {
  /** Short name: the package, the directory, or the synthetic layer. */
  readonly name: string;
  /** Where the tar came from: the .deb file name, the directory. */
  readonly source: string;
  readonly blobPath: string;
  readonly digest: string;
  readonly diffId: string;
  /** Compressed bytes. */
  readonly size: number;
  readonly uncompressedSize: number;
}

export interface BenchImage {
  readonly repo: string;
  readonly tag: string;
  readonly layers: readonly CachedLayer[];
  readonly description: string;
}

/** Packages of the realistic image: Python, Perl, the Go sources, LLVM, C++ headers, time zones. */
export const DEBIAN_PACKAGES = [
  'golang-1.19-src',
  'libllvm14',
  'libperl5.36',
  'libstdc++-12-dev',
  'perl-modules-5.36',
  'libpython3.11-stdlib',
  'linux-libc-dev',
  'python3.11-minimal',
  'libpython3.11-minimal',
  'tzdata',
] as const;

/**
 * Three more packages (C, OpenSSL and SQLite development files) on top of DEBIAN_PACKAGES make
 * the many-layer image (13 layers): a fresh `clip index` pays per-layer set-up 13 times.
 */
export const EXTRA_PACKAGES = ['libc6-dev', 'libssl-dev', 'libsqlite3-dev'] as const;

/** Used when apt-get download fails: local directories that exist, until about 300 MB. */
const FALLBACK_DIRS = ['/usr/share/perl', '/usr/lib/python3.11', '/usr/share/doc', '/usr/share/locale', '/usr/share/zoneinfo', '/usr/include', '/usr/share/i18n'];
const FALLBACK_TARGET_BYTES = 300e6;

const LAYER_MEDIA_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';
const MiB = 1024 * 1024;

/** The synthetic layer's files; the first is the one the sequential read measurement uses. */
export const SYNTHETIC_FILES = [
  { path: 'data/big-256m.bin', size: 256 * MiB, seed: 1 },
  { path: 'data/part-1.bin', size: 64 * MiB, seed: 2 },
  { path: 'data/part-2.bin', size: 64 * MiB, seed: 3 },
  { path: 'data/part-3.bin', size: 64 * MiB, seed: 4 },
  { path: 'data/part-4.bin', size: 64 * MiB, seed: 5 },
] as const;

/** Hashes and counts what passes through. */
class Tap extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
}

/**
 * Text-like pseudo-random bytes: each byte one of 16 letters, so gzip stores about 4.3 bits per byte
 * (compressed ≈ 55 % of the original), which makes inflate do real work, unlike random or zero bytes.
 */
export function syntheticContent(size: number, seed: number): GeneratedContent {
  return {
    size,
    *chunks() {
      let state = (seed * 2654435761) >>> 0 || 1;
      for (let offset = 0; offset < size; offset += MiB) {
        const chunk = Buffer.allocUnsafe(Math.min(MiB, size - offset));
        for (let i = 0; i < chunk.length; i += 8) {
          state ^= state << 13;
          state ^= state >>> 17;
          state ^= state << 5;
          let bits = state >>> 0;
          const end = Math.min(chunk.length, i + 8);
          for (let j = i; j < end; j++) {
            chunk[j] = 97 + (bits & 15);
            bits >>>= 4;
          }
        }
        yield chunk;
      }
    },
  };
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Compresses a tar stream with `gzip -n -6` into `blobPath`, recording digests next to it. */
export async function writeLayerBlob(name: string, source: string, tar: Readable, blobPath: string): Promise<CachedLayer> {
  const temporary = `${blobPath}.tmp`;
  const gzip = spawn('gzip', ['-n', '-6', '-c'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const gzipExit = new Promise<number | null>((resolve) => gzip.on('close', resolve));
  const tarTap = new Tap();
  const blobTap = new Tap();
  await Promise.all([
    pipeline(tar, tarTap, gzip.stdin as Writable),
    pipeline(gzip.stdout as Readable, blobTap, createWriteStream(temporary)),
  ]);
  const code = await gzipExit;
  if (code !== 0) throw new Error(`gzip exited with ${code} for ${name}`);
  const layer: CachedLayer = {
    name,
    source,
    blobPath,
    digest: `sha256:${blobTap.hash.digest('hex')}`,
    diffId: `sha256:${tarTap.hash.digest('hex')}`,
    size: blobTap.bytes,
    uncompressedSize: tarTap.bytes,
  };
  await rename(temporary, blobPath);
  await writeFile(`${blobPath}.json`, JSON.stringify(layer, null, 2));
  return layer;
}

export async function cachedLayer(blobPath: string): Promise<CachedLayer | undefined> {
  if (!(await exists(blobPath)) || !(await exists(`${blobPath}.json`))) return undefined;
  return JSON.parse(await readFile(`${blobPath}.json`, 'utf8')) as CachedLayer;
}

/** A command's stdout as a tar stream; a non-zero exit destroys the stream. */
export function commandStream(command: string, args: string[]): Readable {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const out = child.stdout;
  child.on('close', (code) => {
    if (code !== 0) out.destroy(new Error(`${command} ${args.join(' ')} exited with ${code}: ${stderr.slice(-1000)}`));
  });
  return out;
}

export interface DebianLayers {
  readonly layers: CachedLayer[];
  /** Set when apt-get download failed and local directories were used instead. */
  readonly fallback?: string;
}

/** The realistic image's layers, downloaded and built on first use. */
export async function debianLayers(): Promise<DebianLayers> {
  const layers = await packageLayers(DEBIAN_PACKAGES);
  if (!('fallback' in layers)) return { layers };
  return fallbackLayers(layers.fallback);
}

/** The many-layer image's extra layers (undefined when apt-get cannot download them). */
export async function extraLayers(): Promise<CachedLayer[] | undefined> {
  const layers = await packageLayers(EXTRA_PACKAGES);
  return 'fallback' in layers ? undefined : layers;
}

/** One layer per package (`apt-get download`, `dpkg-deb --fsys-tarfile`), or why that failed. */
export async function packageLayers(packages: readonly string[]): Promise<CachedLayer[] | { fallback: string }> {
  const debDir = join(CACHE_DIR, 'debs');
  const blobDir = join(CACHE_DIR, 'blobs');
  await mkdir(debDir, { recursive: true });
  await mkdir(blobDir, { recursive: true });
  const debFor = async (pkg: string): Promise<string | undefined> =>
    (await readdir(debDir)).find((file) => file.startsWith(`${pkg}_`) && file.endsWith('.deb'));
  const missing: string[] = [];
  for (const pkg of packages) if ((await debFor(pkg)) === undefined) missing.push(pkg);
  let fallback: string | undefined;
  if (missing.length > 0) {
    log(`downloading ${missing.join(', ')} with apt-get download into ${debDir}`);
    const result = await exec('apt-get', ['download', ...missing], { cwd: debDir, timeoutMs: 300_000 });
    if (result.code !== 0) fallback = `apt-get download failed (${result.stderr.trim().split('\n').pop() ?? `exit ${result.code}`})`;
  }
  if (fallback === undefined) {
    const layers: CachedLayer[] = [];
    for (const pkg of packages) {
      const deb = await debFor(pkg);
      if (deb === undefined) {
        fallback = `apt-get download did not produce ${pkg}`;
        break;
      }
      const blobPath = join(blobDir, `${deb.replace(/\.deb$/, '')}.tar.gz`);
      const cached = await cachedLayer(blobPath);
      if (cached) layers.push(cached);
      else {
        log(`building layer ${pkg} from ${deb}`);
        layers.push(await writeLayerBlob(pkg, deb, commandStream('dpkg-deb', ['--fsys-tarfile', join(debDir, deb)]), blobPath));
      }
    }
    if (fallback === undefined) return layers;
  }
  return { fallback: fallback ?? 'no layer' };
}

async function fallbackLayers(fallback: string): Promise<DebianLayers> {
  const blobDir = join(CACHE_DIR, 'blobs');
  log(`FALLBACK: ${fallback}; using tars of local directories instead of Debian packages`);
  const layers: CachedLayer[] = [];
  let total = 0;
  for (const dir of FALLBACK_DIRS) {
    if (total >= FALLBACK_TARGET_BYTES || !(await exists(dir))) continue;
    const blobPath = join(blobDir, `local${dir.replaceAll('/', '_')}.tar.gz`);
    const layer =
      (await cachedLayer(blobPath)) ??
      (await writeLayerBlob(dir, dir, commandStream('tar', ['-C', '/', '--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-cf', '-', dir.slice(1)]), blobPath));
    layers.push(layer);
    total += layer.uncompressedSize;
  }
  return { layers, fallback: `${fallback}: layers are tars of ${layers.map((l) => l.source).join(', ')}` };
}

/** The synthetic 512 MiB layer (built on first use: about half a minute of gzip). */
export async function syntheticLayer(): Promise<CachedLayer> {
  const blobDir = join(CACHE_DIR, 'blobs');
  await mkdir(blobDir, { recursive: true });
  const blobPath = join(blobDir, 'synthetic-512m.tar.gz');
  const cached = await cachedLayer(blobPath);
  if (cached) return cached;
  log('building the synthetic 512 MiB layer');
  const entries = [
    { type: 'dir' as const, path: 'data' },
    ...SYNTHETIC_FILES.map((file) => ({ type: 'file' as const, path: file.path, content: syntheticContent(file.size, file.seed) })),
  ];
  return writeLayerBlob('synthetic-512m', 'generated', buildTarLayer(entries).open(), blobPath);
}

/** The mostly-text file of the text image: every file of the Go sources layer, one after another. */
export const TEXT_FILE = 'data/go-src.txt';

/**
 * The text image's one layer (built on first use from the golang-1.19-src layer): real source
 * text, which gzip shrinks about 4.7×, so inflate produces far more bytes per fetched byte than
 * for the synthetic layer. The file's local copy (for baselines) stays in bench/.cache/text.
 */
export async function textLayer(goSources: CachedLayer): Promise<{ layer: CachedLayer; localPath: string; size: number }> {
  const blobDir = join(CACHE_DIR, 'blobs');
  const textDir = join(CACHE_DIR, 'text');
  await mkdir(blobDir, { recursive: true });
  await mkdir(textDir, { recursive: true });
  const localPath = join(textDir, 'go-src.txt');
  const blobPath = join(blobDir, 'text-go-src.tar.gz');
  if (!(await exists(localPath))) {
    log('building the text layer from the Go sources');
    await check('bash', ['-c', `set -o pipefail; gzip -dc '${goSources.blobPath}' | tar -xOf - > '${localPath}.tmp'`]);
    await rename(`${localPath}.tmp`, localPath);
  }
  const size = (await stat(localPath)).size;
  const cached = await cachedLayer(blobPath);
  if (cached) return { layer: cached, localPath, size };
  const entries = [
    { type: 'dir' as const, path: 'data' },
    { type: 'file' as const, path: TEXT_FILE, content: await readFile(localPath) },
  ];
  return { layer: await writeLayerBlob('text-go-src', goSources.source, buildTarLayer(entries).open(), blobPath), localPath, size };
}

/** Local copies of the synthetic image's files (same generator, same bytes), for the local-disk baselines. */
export async function localSyntheticFiles(): Promise<Map<string, string>> {
  const dir = join(CACHE_DIR, 'synthetic');
  await mkdir(dir, { recursive: true });
  const paths = new Map<string, string>();
  for (const file of SYNTHETIC_FILES) {
    const path = join(dir, file.path.split('/').pop() as string);
    if (!(await exists(path))) {
      await pipeline(Readable.from(syntheticContent(file.size, file.seed).chunks()), createWriteStream(`${path}.tmp`));
      await rename(`${path}.tmp`, path);
    }
    paths.set(file.path, path);
  }
  return paths;
}

/** Cached blobs as the harness pushes them. */
export async function rawLayers(layers: readonly CachedLayer[]): Promise<RawLayer[]> {
  const raw: RawLayer[] = [];
  for (const layer of layers) raw.push({ kind: 'raw', data: await readFile(layer.blobPath), mediaType: LAYER_MEDIA_TYPE, diffId: layer.diffId });
  return raw;
}

/** Pushes an image made of cached blobs; checks that the registry holds exactly the cached bytes. */
export async function pushCachedImage(registry: RegistryEndpoint, image: BenchImage): Promise<string> {
  const pushed = await pushImageDetailed(registry, image.repo, image.tag, await rawLayers(image.layers));
  pushed.layers.forEach((layer, i) => {
    const expected = image.layers[i] as CachedLayer;
    if (layer.digest !== expected.digest) throw new Error(`pushed ${layer.digest} but the cache says ${expected.digest} (${expected.blobPath}): delete bench/.cache/blobs`);
  });
  return pushed.digest;
}

/** Removes partly written files a killed run may have left. */
export async function cleanCache(): Promise<void> {
  const blobDir = join(CACHE_DIR, 'blobs');
  if (!(await exists(blobDir))) return;
  for (const file of await readdir(blobDir)) if (file.endsWith('.tmp')) await rm(join(blobDir, file), { force: true });
}

/** Debian package versions actually used (from the .deb names). */
export function packageVersions(layers: readonly CachedLayer[]): string {
  return layers.map((l) => l.source.replace(/_(all|amd64|arm64)\.deb$/, '').replace('%3a', ':')).join(', ');
}

