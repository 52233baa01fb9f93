import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { SectionKind } from '../archive/format.js';
import { writeArchive } from '../archive/writer.js';
import { checkSpanBytes, layerCompressionForMediaType, MAX_SPAN_BYTES, MiB, MIN_SPAN_BYTES, type LayerCompression } from '../compression/index.js';
import { ClipError } from '../errors.js';
import { IncrementalMerge } from '../oci/incremental-merge.js';
import {
  formatPlatform,
  hostPlatform,
  type ImageConfig,
  type Platform,
  type RegistryClientOptions,
  type RegistrySession,
  type ResolvedManifest,
} from '../registry/index.js';
import { WRITER_NAME } from '../version.js';
import type { ImageMeta, LayerMeta } from './image-meta.js';
import type { LayerJob } from './index-layer.js';
import { leaseKeptClient } from './kept-client.js';
import { encodeLayerIndexes } from './layer-index-codec.js';
import { defaultConcurrency, indexLayersInParallel, warmWorkers } from './layer-pool.js';

export interface CreateFromOCIImageOptions {
  /** `alpine`, `host:port/repo:tag`, `repo@sha256:...`. */
  readonly imageRef: string;
  readonly outputPath: string;
  /** Uncompressed distance between gzip checkpoints, 1–16. Default 2. */
  readonly checkpointMiB?: number;
  /** Platform to pick from a multi-platform index: `os/arch[/variant]` or an object. Default: this host's. */
  readonly platform?: string | Platform;
  /** Registry credentials; otherwise Docker's config.json, otherwise anonymous. */
  readonly auth?: RegistryClientOptions['auth'];
  /** Further registry settings: CA certificates, insecure registries, timeouts, docker config path. */
  readonly registry?: Omit<RegistryClientOptions, 'auth' | 'credentialsProvider'>;
  /** Layers indexed at once, each in a worker thread. Default: one per core. */
  readonly concurrency?: number;
  /**
   * Make this thread one of the `concurrency` lanes, so that a one-layer image needs no worker.
   * For a process with nothing else to do (the `clip` command); a server leaves it off, as
   * indexing would hold its event loop for milliseconds at a time.
   */
  readonly useCallingThread?: boolean;
  readonly verbose?: boolean;
  readonly onProgress?: (progress: IndexProgress) => void;
}

export interface IndexProgress {
  readonly layersDone: number;
  readonly layers: number;
  readonly bytesDone: number;
  /** Compressed size of all layers. */
  readonly bytes: number;
}

export interface CreateFromOCIImageResult {
  readonly outputPath: string;
  readonly manifestDigest: string;
  readonly platform: string;
  readonly layers: number;
  readonly files: number;
  readonly entries: number;
  /** Size of the whole .clip. */
  readonly archiveBytes: number;
  /** Bytes a mount needs before serving its first read (header, metadata, TOC, layer index). */
  readonly mountBytes: number;
  readonly compressedImageBytes: number;
  readonly uncompressedImageBytes: number;
  readonly seconds: number;
}

/**
 * Indexes an OCI image into a metadata-only (oci mode) .clip: every layer is streamed once,
 * in parallel, and its files recorded with their offsets in the uncompressed layer, along with
 * the checkpoints that let a read start decompressing near any offset.
 */
export async function createFromOCIImage(options: CreateFromOCIImageOptions): Promise<CreateFromOCIImageResult> {
  const started = Date.now();
  const spanBytes = checkSpanBytes(Math.round(checkCheckpointMiB(options.checkpointMiB ?? 2) * MiB));
  const concurrency = defaultConcurrency(options.concurrency);
  const outputPath = resolve(options.outputPath);
  await checkOutputDirectory(outputPath);
  // One worker boots while the manifest is fetched; starting more at once slowed small images down.
  if (!options.useCallingThread) warmWorkers(1);
  const registryOptions: RegistryClientOptions = { ...options.registry, auth: options.auth };
  const { resolved, config: configFetch, session } = await resolveImage(registryOptions, options.imageRef, parsePlatform(options.platform));
  const layers = resolved.manifest.layers;
  const jobs: LayerJob[] = layers.map((layer) => ({
    registry: registryOptions,
    session,
    repository: { registry: resolved.registry, repository: resolved.repository },
    digest: layer.digest,
    compression: compressionOf(layer, options.imageRef),
    spanBytes,
  }));
  const totalBytes = layers.reduce((sum, layer) => sum + layer.size, 0);
  let bytesDone = 0;
  let layersDone = 0;
  const report = (): void => options.onProgress?.({ layersDone, layers: layers.length, bytesDone, bytes: totalBytes });
  report();
  // The merge runs on this thread while the workers read the layers (see IncrementalMerge).
  const merge = new IncrementalMerge(layers.length);
  const indexed = await indexLayersInParallel(jobs, {
    concurrency,
    useCallingThread: options.useCallingThread,
    sizes: layers.map((layer) => layer.size),
    onBytes: (_layer, bytes) => {
      bytesDone += bytes;
      report();
    },
    onEntries: (layer, entries) => merge.add(layer, entries),
    onLayerDone: (layer) => {
      merge.end(layer);
      layersDone++;
      report();
    },
  });

  const config = await configFetch;
  const toc = merge.build();
  const platform: Platform = resolved.platform ?? { os: config.os, architecture: config.architecture, variant: config.variant };
  const layerMeta: LayerMeta[] = layers.map((layer, i) => ({
    digest: layer.digest,
    mediaType: layer.mediaType,
    compression: jobs[i]?.compression ?? 'none',
    size: layer.size,
    uncompressedSize: indexed[i]?.uncompressedSize ?? 0,
  }));
  const runtime = config.config;
  const image: ImageMeta = {
    registry: resolved.registry,
    repository: resolved.repository,
    reference: options.imageRef,
    manifestDigest: resolved.digest,
    manifestMediaType: resolved.mediaType,
    indexDigest: resolved.indexDigest,
    platform,
    layers: layerMeta,
    config: {
      digest: resolved.manifest.config.digest,
      env: runtime.Env ?? [],
      entrypoint: runtime.Entrypoint ?? [],
      cmd: runtime.Cmd ?? [],
      user: runtime.User ?? '',
      workingDir: runtime.WorkingDir ?? '',
      labels: runtime.Labels ?? {},
    },
  };
  const { layerIndex, windows } = encodeLayerIndexes(indexed);
  const { bytes } = await writeArchive(outputPath, {
    meta: { writer: WRITER_NAME, storage: { mode: 'oci' }, image },
    toc,
    sections: [
      { kind: SectionKind.LayerIndex, compress: true, bytes: layerIndex },
      { kind: SectionKind.Windows, compress: false, bytes: windows },
    ],
  });
  return {
    outputPath,
    manifestDigest: resolved.digest,
    platform: formatPlatform(platform),
    layers: layers.length,
    files: toc.inodes.filter((inode) => inode.type === 'file').length,
    entries: toc.entries.length + 1,
    archiveBytes: bytes,
    mountBytes: bytes - windows.length,
    compressedImageBytes: totalBytes,
    uncompressedImageBytes: layerMeta.reduce((sum, layer) => sum + layer.uncompressedSize, 0),
    seconds: (Date.now() - started) / 1000,
  };
}

/**
 * Resolves the manifest; the config, needed only for the archive's metadata, comes in the background.
 * The session hands what the client learned (scheme, auth, token) to the layer jobs' clients. The
 * client is this thread's kept one (see kept-client.ts): the next image from the registry reuses it.
 */
async function resolveImage(
  registryOptions: RegistryClientOptions,
  imageRef: string,
  platform: Platform,
): Promise<{ resolved: ResolvedManifest; config: Promise<ImageConfig>; session: RegistrySession }> {
  const lease = leaseKeptClient(registryOptions);
  try {
    const resolved = await lease.client.resolveManifest(imageRef, platform);
    const session = lease.client.session();
    const config = lease.client.getConfig(resolved);
    // Also keeps an early failure from going unhandled: the config is awaited after indexing.
    config.then(
      () => lease.release(),
      () => lease.release(true),
    );
    return { resolved, config, session };
  } catch (err) {
    lease.release(true);
    throw err;
  }
}

/** `linux/arm64/v8` → { os, architecture, variant }; undefined means this host's platform. */
export function parsePlatform(platform: string | Platform | undefined): Platform {
  if (platform === undefined) return hostPlatform();
  if (typeof platform !== 'string') return platform;
  const [os, architecture, variant, extra] = platform.split('/');
  if (!os || !architecture || extra !== undefined) {
    throw new ClipError('INVALID_ARGUMENT', `platform ${JSON.stringify(platform)} must look like os/arch or os/arch/variant`);
  }
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** Uncompressed MiB between checkpoints: 1 to 16 (the span sizes the compression layer accepts). */
function checkCheckpointMiB(checkpointMiB: number): number {
  if (!(Number.isFinite(checkpointMiB) && checkpointMiB >= MIN_SPAN_BYTES / MiB && checkpointMiB <= MAX_SPAN_BYTES / MiB)) {
    throw new ClipError('INVALID_ARGUMENT', `checkpointMiB must be between ${MIN_SPAN_BYTES / MiB} and ${MAX_SPAN_BYTES / MiB}, got ${checkpointMiB}`);
  }
  return checkpointMiB;
}

/** The layer's compression; an unknown media type names the layer and the image. */
function compressionOf(layer: { readonly digest: string; readonly mediaType: string }, imageRef: string): LayerCompression {
  try {
    return layerCompressionForMediaType(layer.mediaType);
  } catch (err) {
    if (err instanceof ClipError) throw new ClipError(err.code, `image ${imageRef}, layer ${layer.digest}: ${err.message}`, { cause: err });
    throw err;
  }
}

async function checkOutputDirectory(outputPath: string): Promise<void> {
  const directory = resolve(outputPath, '..');
  const stats = await stat(directory).catch(() => undefined);
  if (!stats?.isDirectory()) throw new ClipError('INVALID_ARGUMENT', `cannot write ${outputPath}: ${directory} is not a directory`);
}
