/**
 * What a user has without clip-csi: pull the whole image and unpack it, from the same registry
 * through the same proxies. `skopeo copy` to an OCI layout, then two unpackers of that copy:
 * plain `tar -xzf` of each layer (no whiteouts, no ownership mapping: the floor of any unpacker,
 * and the best alternative the bench compares with) and `umoci unpack` + the first read of a file.
 * Where containerd is installed, a real runtime's pull of the same image too (bench/containerd.ts).
 */
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BenchContext } from './context.js';
import { check } from './proc.js';
import { msSince } from './stats.js';
import type { FileInfo } from './tree.js';

/** The first read of a file: what `cat` asks for, and the largest read FUSE passes by default. */
export const FIRST_READ_BYTES = 128 * 1024;

export const TAR_PULL_LABEL = 'full pull: skopeo copy + tar -xzf of each layer';
export const UMOCI_PULL_LABEL = 'full pull: skopeo copy + umoci unpack + read';

export interface FullPull {
  copyMs: number;
  /** umoci unpack + the first read of the file. */
  unpackMs: number;
  /** skopeo copy + umoci unpack + read. */
  totalMs: number;
  /** skopeo copy + plain `tar -xzf` of every layer. */
  tarTotalMs: number;
  /** containerd's pull + mount + the first read of the file, when containerd is there. */
  containerdMs?: number;
  bytes: number;
}

/** The layer blobs of the one image in an OCI layout, in order. */
async function layoutLayers(layout: string): Promise<string[]> {
  const blob = (digest: string): string => join(layout, 'blobs', ...digest.split(':'));
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const manifest = JSON.parse(await readFile(blob(index.manifests[0]?.digest ?? ''), 'utf8')) as { layers: Array<{ digest: string }> };
  return manifest.layers.map((layer) => blob(layer.digest));
}

/** skopeo copy of the debian image, then tar -xzf of its layers, then umoci unpack + the first read of `file`. */
export async function fullPull(ctx: BenchContext, name: string, file: FileInfo): Promise<FullPull> {
  const layout = join(ctx.workDir, `pull-${name}-oci`);
  const bundle = join(ctx.workDir, `pull-${name}-bundle`);
  const plain = join(ctx.workDir, `pull-${name}-tar`);
  try {
    await ctx.proxies.reset();
    const started = process.hrtime.bigint();
    await check('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ctx.debian.ref}`, `oci:${layout}:bench`]);
    const copyMs = msSince(started);
    const bytes = (await ctx.proxies.stats()).bytes;
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
    const pull: FullPull = { copyMs, unpackMs, totalMs: copyMs + unpackMs, tarTotalMs: copyMs + tarMs, bytes };
    if (ctx.containerd) pull.containerdMs = await ctx.containerd.pullAndRead(ctx.debian.ref, file.path, buffer.length);
    return pull;
  } finally {
    await Promise.all([layout, bundle, plain].map((dir) => rm(dir, { recursive: true, force: true })));
  }
}
