import { SectionKind } from '../archive/format.js';
import type { ArchiveIndex } from '../archive/archive-index.js';
import type { S3Storage } from '../archive/meta.js';
import type { Inode } from '../archive/model.js';
import { ArchiveFormatError } from '../errors.js';
import { VerifiedBlob } from '../read/blob-spans.js';
import type { SpanRef } from '../cache/span-cache.js';
import { clampRead, type ContentContext, type ContentReader } from '../read/content-reader.js';
import { S3ByteSource } from './byte-source.js';
import type { S3Options } from './config.js';

/**
 * s3 mode: file bytes live in a separate S3 object (the data blob), read with ranged GETs and
 * verified span by span against the archive's DataSpans section, like local mode.
 *
 * Where the object lives comes from the archive (bucket, key, region, endpoint); `options` adds
 * credentials and may override region, endpoint and path style (a cluster may reach the store
 * through another endpoint than the machine that wrote the archive). Spans go through the
 * reader's cache tiers (`context`), named by their digests like local mode's.
 */
export async function openS3Content(
  index: ArchiveIndex,
  storage: S3Storage,
  options: S3Options = {},
  context?: ContentContext,
): Promise<ContentReader> {
  const digests = storage.dataLength === 0 ? Buffer.alloc(0) : await index.readSection(SectionKind.DataSpans);
  if (storage.dataLength === 0) {
    // Nothing to fetch: every file is empty.
    return { read: async () => Buffer.alloc(0), spans: () => [], close: async () => undefined };
  }
  const source = await S3ByteSource.open(
    { bucket: storage.bucket, key: storage.key },
    {
      ...options,
      region: options.region ?? storage.region,
      endpoint: options.endpoint ?? storage.endpoint,
    },
  );
  try {
    const size = await source.size();
    if (size !== storage.dataLength) {
      throw new ArchiveFormatError(
        'CORRUPT',
        `${index.source.description}: its data object ${source.description} is ${size} bytes, the archive expects ${storage.dataLength} (was the object replaced?)`,
      );
    }
    const blob = new VerifiedBlob(
      (offset, length) => source.read(offset, length),
      storage.dataLength,
      storage.spanBytes,
      digests,
      `${source.description} data`,
      context ? { cache: context.cache, readAheadSpans: context.readAheadSpans, origin: 's3', image: index.source.description } : { origin: 's3' },
    );
    return {
      async read(inode: Inode, offset: number, length: number): Promise<Buffer> {
        const { start, end } = clampRead(inode, offset, length);
        if (end === start) return Buffer.alloc(0);
        const base = inode.location?.offset;
        if (base === undefined) throw new ArchiveFormatError('CORRUPT', 'a regular file has no data location');
        return blob.read(base + start, end - start, base + inode.size);
      },
      noteRead(inode: Inode, offset: number, length: number): void {
        const { start, end } = clampRead(inode, offset, length);
        const base = inode.location?.offset;
        if (base !== undefined) blob.noteRead(base + start, end - start, base + inode.size);
      },
      spans(inode?: Inode): SpanRef[] {
        if (inode === undefined) return blob.refs();
        const base = inode.location?.offset;
        return base === undefined || inode.size === 0 ? [] : blob.refs(base, inode.size);
      },
      layouts: () => [blob.layout],
      close: () => source.close(),
    };
  } catch (err) {
    await source.close();
    throw err;
  }
}
