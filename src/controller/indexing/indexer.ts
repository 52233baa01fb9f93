/**
 * One index, made for the cluster: the image (one manifest, one platform) is indexed into a
 * temporary file, summarized, uploaded to `s3://<bucket>/<prefix><key>.clip`, and the temporary
 * file removed whatever happens. While it works, the "being indexed" marker next to the index is
 * refreshed with the progress so that nodes wait for the index instead of indexing the image too.
 *
 * Indexing runs in this process: createFromOCIImage streams the layers on worker threads (their
 * memory goes with them), and malloc's free pages are handed back after each job, so the
 * controller's resident memory falls back between jobs.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ArchiveIndex,
  createFromOCIImage,
  describeError,
  FileByteSource,
  MARKER_REFRESH_MS,
  newMarker,
  refreshedMarker,
  releaseFreeMemory,
  S3ByteSource,
  type ByteSource,
  type IndexingMarker,
  type IndexProgress,
  type RegistryCredentials,
  type S3IndexStore,
} from '../../clipcore/index.js';
import type { Logger } from '../../csi/log.js';
import { registryOptions, type RegistrySettings } from './resolve.js';

export interface IndexSpec {
  /** `imageKeyOf(manifest digest, platform)`. */
  key: string;
  /** `registry/repository@<manifest digest>`. */
  imageRef: string;
  platform: string;
  auth?: RegistryCredentials;
}

/** What an index says about its image. */
export interface IndexSummary {
  /** Regular files in the image. */
  files: number;
  /** Size of the index object. */
  indexBytes: number;
  /** Bytes of regular files: the volume's capacity, as NodeGetVolumeStats reports it. */
  fileBytes: number;
}

export interface IndexerOptions {
  store: S3IndexStore;
  registry: RegistrySettings;
  /** Who holds the marker, e.g. `controller/<pod name>`. */
  holder: string;
  /** Where indexes are written before the upload. */
  tempDir: string;
  log: Logger;
  /** Compressed bytes read from the registry since the last call. */
  onRegistryBytes?: (bytes: number) => void;
}

export class Indexer {
  /** Keys whose marker this process holds. */
  private readonly markers = new Set<string>();

  constructor(private readonly options: IndexerOptions) {}

  /**
   * On shutdown: the markers of jobs still running are deleted, so that nodes index those images
   * themselves at once instead of waiting a minute for the markers to go stale.
   */
  async abandon(): Promise<void> {
    await Promise.allSettled([...this.markers].map((key) => this.options.store.deleteMarker(key)));
  }

  /** The summary of the index already in S3, or undefined when there is none. */
  async existing(key: string): Promise<IndexSummary | undefined> {
    const size = await this.options.store.size(key);
    if (size === undefined) return undefined;
    return summarize(await S3ByteSource.open(this.options.store.url(key), this.options.store.settings.options));
  }

  /** A marker someone else holds and keeps fresh, or undefined. */
  async foreignMarker(key: string): Promise<IndexingMarker | undefined> {
    const marker = await this.options.store.readMarker(key);
    return marker && marker.holder !== this.options.holder ? marker : undefined;
  }

  async index(spec: IndexSpec, onProgress: (progress: IndexProgress) => void): Promise<IndexSummary> {
    const { store, log } = this.options;
    await mkdir(this.options.tempDir, { recursive: true });
    const temporary = join(this.options.tempDir, `${spec.key}.${process.pid}-${randomBytes(4).toString('hex')}.clip`);
    let marker = newMarker(this.options.holder, new Date(), 'starting');
    await store.writeMarker(spec.key, marker);
    this.markers.add(spec.key);
    let progressText = 'starting';
    // One write at a time, and none after the delete below.
    let writing: Promise<void> = Promise.resolve();
    const refresher = setInterval(() => {
      marker = refreshedMarker(marker, new Date(), progressText);
      writing = writing
        .then(() => store.writeMarker(spec.key, marker))
        .catch((err: unknown) => log('warn', 'cannot refresh the indexing marker', { key: spec.key, error: describeError(err) }));
    }, MARKER_REFRESH_MS);
    let bytesSeen = 0;
    try {
      const { auth, ...registry } = registryOptions(this.options.registry, spec.auth);
      await createFromOCIImage({
        imageRef: spec.imageRef,
        outputPath: temporary,
        platform: spec.platform,
        ...(auth && { auth }),
        registry,
        onProgress: (progress) => {
          this.options.onRegistryBytes?.(progress.bytesDone - bytesSeen);
          bytesSeen = progress.bytesDone;
          progressText = describeProgress(progress);
          onProgress(progress);
        },
      });
      const summary = await summarize(await FileByteSource.open(temporary));
      await store.upload(spec.key, temporary);
      return summary;
    } finally {
      clearInterval(refresher);
      await unlink(temporary).catch(() => undefined);
      await writing;
      this.markers.delete(spec.key);
      await store.deleteMarker(spec.key).catch((err: unknown) => log('warn', 'cannot delete the indexing marker; it goes stale in a minute', { key: spec.key, error: describeError(err) }));
      releaseFreeMemory();
    }
  }
}

/** "indexing: 45 % of 80,123,456 compressed bytes, 6/13 layers" */
export function describeProgress(progress: IndexProgress): string {
  const percent = progress.bytes > 0 ? Math.floor((100 * progress.bytesDone) / progress.bytes) : 0;
  return `indexing: ${percent} % of ${progress.bytes.toLocaleString('en-US')} compressed bytes, ${progress.layersDone}/${progress.layers} layers`;
}

async function summarize(source: ByteSource): Promise<IndexSummary> {
  try {
    const index = await ArchiveIndex.open(source);
    let files = 0;
    let fileBytes = 0;
    for (const inode of index.toc.inodes) {
      if (inode.type !== 'file') continue;
      files++;
      fileBytes += inode.size;
    }
    return { files, indexBytes: await source.size(), fileBytes };
  } finally {
    await source.close();
  }
}
