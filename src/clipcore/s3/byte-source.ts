import { ClipError } from '../errors.js';
import type { ByteSource } from '../source/byte-source.js';
import { S3Connection, type S3Options } from './config.js';
import { s3Error } from './errors.js';
import { toS3Location, type S3Location } from './location.js';

/**
 * An S3 object as a ByteSource: its size from HeadObject when opened, then ranged GETs. Reads are
 * pinned to the ETag seen at open (If-Match), so an object replaced while mounted fails loudly
 * instead of mixing two versions.
 */
export class S3ByteSource implements ByteSource {
  readonly description: string;

  private constructor(
    private readonly connection: S3Connection,
    private readonly ownsConnection: boolean,
    readonly location: S3Location,
    private readonly length: number,
    readonly etag: string | undefined,
  ) {
    this.description = connection.describe(location);
  }

  /**
   * Opens `s3://bucket/key` (or a location object). Pass an S3Connection to share its client; the
   * source then leaves it open on close().
   */
  static async open(location: string | S3Location, options: S3Options | S3Connection = {}): Promise<S3ByteSource> {
    const target = toS3Location(location);
    const owns = !(options instanceof S3Connection);
    const connection = options instanceof S3Connection ? options : await S3Connection.open(options);
    try {
      const head = await headObject(connection, target);
      return new S3ByteSource(connection, owns, target, head.size, head.etag);
    } catch (err) {
      if (owns) connection.close();
      throw err;
    }
  }

  async size(): Promise<number> {
    return this.length;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const wanted = Math.max(0, Math.min(length, this.length - offset));
    if (wanted === 0 || offset < 0) return Buffer.alloc(0);
    const end = offset + wanted - 1;
    let body: Buffer;
    let ranged: boolean;
    try {
      const response = await this.connection.client.send(
        new this.connection.sdk.GetObjectCommand({
          Bucket: this.location.bucket,
          Key: this.location.key,
          Range: `bytes=${offset}-${end}`,
          ...(this.etag !== undefined && { IfMatch: this.etag }),
        }),
      );
      if (response.Body === undefined) throw new ClipError('IO', `reading ${this.description}: the response has no body`);
      const bytes = await response.Body.transformToByteArray();
      body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      ranged = response.ContentRange !== undefined;
    } catch (err) {
      throw s3Error(err, `reading bytes ${offset}..${end + 1} of`, this.description);
    }
    // A store that ignores Range sends the whole object: take the part asked for.
    if (!ranged && body.length === this.length && this.length !== wanted) return body.subarray(offset, offset + wanted);
    return body.length > wanted ? body.subarray(0, wanted) : body;
  }

  async close(): Promise<void> {
    if (this.ownsConnection) this.connection.close();
  }
}

/** HeadObject, with a clearer error when it fails: HEAD answers carry no error body. */
export async function headObject(connection: S3Connection, location: S3Location): Promise<{ size: number; etag?: string }> {
  const target = connection.describe(location);
  try {
    const head = await connection.client.send(new connection.sdk.HeadObjectCommand({ Bucket: location.bucket, Key: location.key }));
    if (head.ContentLength === undefined) throw new ClipError('IO', `cannot open ${target}: HeadObject gave no size`);
    return { size: head.ContentLength, ...(head.ETag !== undefined && { etag: head.ETag }) };
  } catch (err) {
    const mapped = s3Error(err, 'cannot open', target);
    if (mapped.code === 'NOT_FOUND') {
      // A 404 to HEAD does not say whether the bucket or the key is missing: ask.
      const bucketError = await headBucket(connection, location.bucket);
      if (bucketError !== undefined && s3Error(bucketError, '', '').code === 'NOT_FOUND') {
        throw new ClipError('NOT_FOUND', `cannot open ${target}: bucket ${location.bucket} does not exist`, { cause: err });
      }
      throw new ClipError('NOT_FOUND', `cannot open ${target}: no such object`, { cause: err });
    }
    if (mapped.code === 'FORBIDDEN') {
      // A 403 to HEAD has no body either: bad credentials or missing permission? A one-byte GET says.
      throw await refineForbidden(connection, location, mapped);
    }
    throw mapped;
  }
}

async function refineForbidden(connection: S3Connection, location: S3Location, fallback: ClipError): Promise<ClipError> {
  try {
    const probe = await connection.client.send(new connection.sdk.GetObjectCommand({ Bucket: location.bucket, Key: location.key, Range: 'bytes=0-0' }));
    await probe.Body?.transformToByteArray();
    return fallback;
  } catch (err) {
    const precise = s3Error(err, 'cannot open', connection.describe(location));
    return precise.code === 'UNAUTHORIZED' || precise.code === 'FORBIDDEN' ? precise : fallback;
  }
}

/** HeadBucket: undefined when the bucket answers, else what the SDK threw (callers map it). */
export async function headBucket(connection: S3Connection, bucket: string): Promise<unknown> {
  try {
    await connection.client.send(new connection.sdk.HeadBucketCommand({ Bucket: bucket }));
    return undefined;
  } catch (err) {
    return err ?? new Error('HeadBucket failed');
  }
}
