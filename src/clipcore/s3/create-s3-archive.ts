import { resolve } from 'node:path';
import { SectionKind } from '../archive/format.js';
import type { S3Storage } from '../archive/meta.js';
import { ArchiveFileWriter } from '../archive/writer.js';
import {
  archiveTree,
  checkCreateInput,
  readXattrsFor,
  type CreateArchiveOptions,
  type CreateArchiveResult,
  type CreateProgress,
} from '../create/create-archive.js';
import { DataWriter } from '../create/data-writer.js';
import { ClipError } from '../errors.js';
import { WRITER_NAME } from '../version.js';
import { headObject } from './byte-source.js';
import { S3Connection, type S3Options } from './config.js';
import { formatS3Url, toS3Location } from './location.js';
import { checkBucketForUpload, StreamingUpload, type UploadTuning } from './upload.js';

export interface CreateAndUploadArchiveOptions extends Omit<CreateArchiveOptions, 'onProgress'>, S3Options, UploadTuning {
  /** Bucket of the data object. */
  readonly bucket: string;
  /** Key of the data object (the file contents, deduplicated, as one blob). */
  readonly key: string;
  readonly onProgress?: (progress: CreateAndUploadProgress) => void;
}

export interface CreateAndUploadProgress extends CreateProgress {
  /** Bytes of the data object already stored in S3. */
  readonly bytesUploaded: number;
}

export interface CreateAndUploadArchiveResult extends CreateArchiveResult {
  /** `s3://bucket/key` of the data object. */
  readonly dataLocation: string;
  /** What the archive records: bucket, key, region, endpoint, spanBytes, dataLength. */
  readonly storage: S3Storage;
}

/**
 * Archives a directory tree as an s3-mode .clip: the file contents (each distinct content once)
 * are streamed to one S3 object while the tree is walked, as a multipart upload with no
 * temporary copy on disk, and `outputPath` gets a metadata-only archive (TOC, span digests, and
 * where the data object lives; never credentials). Readers fetch the data with ranged GETs and
 * verify every span.
 *
 * On failure nothing is left: no file at `outputPath`, no multipart upload in progress, and no
 * data object (it is deleted if it was already complete).
 */
export async function createAndUploadArchive(options: CreateAndUploadArchiveOptions): Promise<CreateAndUploadArchiveResult> {
  const { inputPath, spanBytes } = await checkCreateInput(options);
  const outputPath = resolve(options.outputPath);
  const location = toS3Location({ bucket: options.bucket, key: options.key });
  const connection = await S3Connection.open(options);
  try {
    await checkBucketForUpload(connection, location);
    const xattrs = await readXattrsFor(inputPath, options);
    // Sections: meta, toc, data span digests (the data is in S3).
    const archive = await ArchiveFileWriter.create(outputPath, 3);
    let entries = 0;
    let bytesRead = 0;
    const report = (bytesUploaded: number): void => options.onProgress?.({ entries, bytesRead, bytesUploaded });
    const upload = await StreamingUpload.start(connection, location, { ...options, onProgress: report }).catch(async (err: unknown) => {
      await archive.abort();
      throw err;
    });
    const data = new DataWriter((chunk) => upload.write(chunk), spanBytes);
    try {
      const tree = await archiveTree(inputPath, xattrs, data, (progress) => {
        entries = progress.entries;
        bytesRead = progress.bytesRead;
        report(upload.bytesUploaded);
      });
      const stored = data.finish();
      await upload.finish();
      report(stored.length);
      // The store must now hold exactly what was hashed.
      const head = await headObject(connection, location);
      if (head.size !== stored.length) {
        throw new ClipError('IO', `uploaded ${connection.describe(location)} is ${head.size} bytes, expected ${stored.length}`);
      }
      const { region, endpoint } = connection.settings;
      const storage: S3Storage = {
        mode: 's3',
        bucket: location.bucket,
        key: location.key,
        region,
        ...(endpoint !== undefined && { endpoint }),
        spanBytes,
        dataLength: stored.length,
      };
      const { bytes } = await archive.finish({
        meta: { writer: WRITER_NAME, storage },
        toc: tree.toc,
        sections: [{ kind: SectionKind.DataSpans, compress: false, bytes: stored.spanDigests }],
      });
      return { outputPath, entries: tree.entries, archiveBytes: bytes, dataBytes: stored.length, dataLocation: formatS3Url(location), storage };
    } catch (err) {
      await Promise.all([archive.abort(), upload.abort()]);
      if (err instanceof ClipError) throw err;
      throw new ClipError('IO', `cannot archive ${inputPath}: ${(err as Error).message}`, { cause: err });
    }
  } finally {
    connection.close();
  }
}
