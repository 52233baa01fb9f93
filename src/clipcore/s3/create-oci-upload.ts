import { randomBytes } from 'node:crypto';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ClipError } from '../errors.js';
import { createFromOCIImage, type CreateFromOCIImageOptions, type CreateFromOCIImageResult } from '../image/create-from-oci.js';
import { S3Connection, type S3Options } from './config.js';
import { formatS3Url, toS3Location } from './location.js';
import { checkBucketForUpload, deleteObject, uploadFileToS3, type UploadTuning } from './upload.js';

export interface CreateAndUploadOCIArchiveOptions extends Omit<CreateFromOCIImageOptions, 'outputPath'>, S3Options, UploadTuning {
  /** Bucket for the .clip. */
  readonly bucket: string;
  /** Key of the .clip: mount it as `s3://bucket/key`. */
  readonly key: string;
  /** Also keep the .clip here (written only once the upload succeeded). Default: no local copy. */
  readonly outputPath?: string;
}

export interface CreateAndUploadOCIArchiveResult extends Omit<CreateFromOCIImageResult, 'outputPath'> {
  /** `s3://bucket/key` of the uploaded .clip. */
  readonly location: string;
  readonly outputPath?: string;
}

/**
 * Indexes an OCI image into a metadata-only (oci mode) .clip, as createFromOCIImage does, and
 * uploads that .clip to `s3://bucket/key` (file bytes stay in the registry). The bucket is
 * checked before the image is indexed. On failure nothing is left at `outputPath`, and the
 * object is not created (an upload is atomic in S3; an unfinished multipart upload is aborted).
 */
export async function createAndUploadOCIArchive(options: CreateAndUploadOCIArchiveOptions): Promise<CreateAndUploadOCIArchiveResult> {
  const location = toS3Location({ bucket: options.bucket, key: options.key });
  const outputPath = options.outputPath === undefined ? undefined : resolve(options.outputPath);
  const connection = await S3Connection.open(options);
  // The .clip is built beside the output (so the final rename stays on one filesystem), or in a
  // temporary directory when no local copy is wanted.
  let scratchDir: string | undefined;
  let temporaryPath: string;
  if (outputPath === undefined) {
    scratchDir = await mkdtemp(join(tmpdir(), 'clip-index-'));
    temporaryPath = join(scratchDir, 'image.clip');
  } else {
    temporaryPath = join(dirname(outputPath), `.${randomBytes(6).toString('hex')}.clip-upload`);
  }
  try {
    await checkBucketForUpload(connection, location);
    const result = await createFromOCIImage({ ...options, outputPath: temporaryPath });
    await uploadFileToS3(temporaryPath, location, connection);
    if (outputPath !== undefined) {
      await rename(temporaryPath, outputPath).catch(async (err: Error) => {
        await deleteObject(connection, location);
        throw new ClipError('IO', `cannot write ${outputPath}: ${err.message}`, { cause: err });
      });
    }
    const { outputPath: _temporary, ...rest } = result;
    return { ...rest, location: formatS3Url(location), ...(outputPath !== undefined && { outputPath }) };
  } finally {
    connection.close();
    await rm(scratchDir ?? temporaryPath, { recursive: true, force: true });
  }
}
