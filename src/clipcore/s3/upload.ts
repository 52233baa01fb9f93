import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import type { Upload } from '@aws-sdk/lib-storage';
import { ClipError } from '../errors.js';
import { headBucket } from './byte-source.js';
import { S3Connection, type S3Options } from './config.js';
import { s3Error } from './errors.js';
import { formatS3Url, toS3Location, type S3Location } from './location.js';

export const MiB = 1024 * 1024;
/** Multipart part size: 16 MiB allows objects up to 160 GB (10,000 parts). */
export const DEFAULT_PART_BYTES = 16 * MiB;
export const DEFAULT_UPLOAD_CONCURRENCY = 4;

export interface UploadTuning {
  /** Multipart part size, at least 5 MiB. Default 16 MiB. Memory use is about (concurrency + 1) parts. */
  readonly partBytes?: number;
  /** Parts uploaded at once. Default 4. */
  readonly uploadConcurrency?: number;
}

export interface StreamingUploadOptions extends UploadTuning {
  readonly onProgress?: (bytesUploaded: number) => void;
  readonly contentType?: string;
}

/**
 * An object upload fed chunk by chunk while its content is produced (no temporary copy):
 * @aws-sdk/lib-storage cuts the stream into parts and uploads them in parallel, with the SDK's
 * default checksums. write() waits while the parts in flight are full, so memory stays bounded.
 * On abort() the multipart upload is aborted (no orphaned parts), or the object deleted if it
 * was already complete.
 */
export class StreamingUpload {
  private readonly body: PassThrough;
  private readonly upload: Upload;
  private readonly settled: Promise<void>;
  private failure: ClipError | undefined;
  private completed = false;
  private ended = false;
  private uploaded = 0;
  readonly description: string;

  /** Starts an upload to `location`; feed it with write(), then finish() or abort(). */
  static async start(connection: S3Connection, location: S3Location, options: StreamingUploadOptions = {}): Promise<StreamingUpload> {
    const { Upload: UploadClass } = await import('@aws-sdk/lib-storage');
    return new StreamingUpload(UploadClass, connection, location, options);
  }

  private constructor(
    UploadClass: typeof Upload,
    private readonly connection: S3Connection,
    readonly location: S3Location,
    options: StreamingUploadOptions,
  ) {
    const partBytes = options.partBytes ?? DEFAULT_PART_BYTES;
    if (!Number.isSafeInteger(partBytes) || partBytes < 5 * MiB) {
      throw new ClipError('INVALID_ARGUMENT', `partBytes must be an integer of at least 5 MiB, got ${partBytes}`);
    }
    this.description = connection.describe(location);
    this.body = new PassThrough({ highWaterMark: MiB });
    // abort() destroys the body with an error; lib-storage may have stopped listening by then.
    this.body.on('error', () => undefined);
    this.upload = new UploadClass({
      client: connection.client,
      params: {
        Bucket: location.bucket,
        Key: location.key,
        Body: this.body,
        ContentType: options.contentType ?? 'application/octet-stream',
      },
      partSize: partBytes,
      queueSize: options.uploadConcurrency ?? DEFAULT_UPLOAD_CONCURRENCY,
      leavePartsOnError: false,
    });
    this.upload.on('httpUploadProgress', (progress) => {
      if (progress.loaded !== undefined && progress.loaded > this.uploaded) {
        this.uploaded = progress.loaded;
        options.onProgress?.(this.uploaded);
      }
    });
    this.settled = this.upload.done().then(
      () => {
        this.completed = true;
      },
      (err: unknown) => {
        this.failure = s3Error(err, 'cannot upload', this.description);
      },
    );
  }

  get bytesUploaded(): number {
    return this.uploaded;
  }

  /** Appends a chunk; rejects with the upload's error once it has failed. */
  async write(chunk: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.ended) throw new ClipError('INVALID_ARGUMENT', `upload to ${this.description} already finished`);
    if (!this.body.write(chunk)) {
      const abort = new AbortController();
      await Promise.race([once(this.body, 'drain', { signal: abort.signal }).catch(() => undefined), this.settled]);
      abort.abort();
    }
    if (this.failure) throw this.failure;
  }

  /** Ends the stream and waits for the object to be complete in S3. */
  async finish(): Promise<void> {
    this.ended = true;
    this.body.end();
    await this.settled;
    if (this.failure) throw this.failure;
  }

  /** Cancels: aborts the multipart upload, or deletes the object if it was completed. Never throws. */
  async abort(): Promise<void> {
    if (!this.completed && !this.failure) {
      this.ended = true;
      // An error in the body makes lib-storage stop, send AbortMultipartUpload, then settle.
      this.body.destroy(new Error('upload cancelled'));
    }
    await this.settled;
    if (this.completed) await deleteObject(this.connection, this.location);
  }
}

/** Best-effort DeleteObject (cleanup after a failure). */
export async function deleteObject(connection: S3Connection, location: S3Location): Promise<void> {
  await connection.client.send(new connection.sdk.DeleteObjectCommand({ Bucket: location.bucket, Key: location.key })).catch(() => undefined);
}

/**
 * Fails early when the bucket is missing or the endpoint unreachable, before any long work. A 403
 * is let through: a principal may write objects without the right to list the bucket.
 */
export async function checkBucketForUpload(connection: S3Connection, location: S3Location): Promise<void> {
  const problem = await headBucket(connection, location.bucket);
  if (problem === undefined) return;
  const target = connection.describe(location);
  const mapped = s3Error(problem, 'cannot upload', target);
  if (mapped.code === 'FORBIDDEN') return;
  if (mapped.code === 'NOT_FOUND') throw new ClipError('NOT_FOUND', `cannot upload ${target}: bucket ${location.bucket} does not exist`, { cause: problem });
  throw mapped;
}

export interface UploadFileResult {
  readonly location: string;
  readonly bytes: number;
}

/** Uploads a local file (a .clip) to `s3://bucket/key` (multipart when large). */
export async function uploadFileToS3(
  path: string,
  location: string | S3Location,
  options: (S3Options & UploadTuning & { onProgress?: (bytesUploaded: number) => void }) | S3Connection = {},
): Promise<UploadFileResult> {
  const target = toS3Location(location);
  const owns = !(options instanceof S3Connection);
  const connection = options instanceof S3Connection ? options : await S3Connection.open(options);
  const tuning = options instanceof S3Connection ? {} : options;
  try {
    const size = await stat(path).then(
      (stats) => stats.size,
      (err: NodeJS.ErrnoException) => {
        throw new ClipError(err.code === 'ENOENT' ? 'NOT_FOUND' : 'IO', `cannot read ${path}: ${err.message}`);
      },
    );
    const upload = await StreamingUpload.start(connection, target, { ...tuning, contentType: 'application/octet-stream' });
    try {
      for await (const chunk of createReadStream(path, { highWaterMark: MiB }) as AsyncIterable<Buffer>) await upload.write(chunk);
      await upload.finish();
    } catch (err) {
      await upload.abort();
      if (err instanceof ClipError) throw err;
      throw new ClipError('IO', `cannot upload ${path} to ${upload.description}: ${(err as Error).message}`, { cause: err });
    }
    return { location: formatS3Url(target), bytes: size };
  } finally {
    if (owns) connection.close();
  }
}
