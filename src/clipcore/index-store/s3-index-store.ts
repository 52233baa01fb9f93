/**
 * Image indexes shared through S3: `s3://<bucket>/<prefix><imageKey>.clip`, the same name as in the
 * node-local cache, and beside it the indexer's marker `<prefix><imageKey>.clip.indexing`. This is
 * where the controller and the nodes meet: the controller indexes ahead and writes here; a node
 * that finds an index copies it into its local cache instead of indexing the image; a node that
 * indexed an image itself uploads the index for the others. Indexes are deterministic (the same
 * image gives the same bytes), so writers racing on the same key write the same object.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { ClipError } from '../errors.js';
import { S3ByteSource, headObject } from '../s3/byte-source.js';
import { S3Connection, type S3Options } from '../s3/config.js';
import { s3Error } from '../s3/errors.js';
import { uploadFileToS3 } from '../s3/upload.js';
import { parseMarker, type IndexingMarker } from './marker.js';

export interface S3IndexSettings {
  bucket: string;
  /** Key prefix, e.g. `indexes/`. */
  prefix: string;
  options: S3Options;
}

const CHUNK_BYTES = 8 * 1024 * 1024;
/** A marker is a few hundred bytes; anything larger is not ours. */
const MAX_MARKER_BYTES = 64 * 1024;

export class S3IndexStore {
  private connection?: Promise<S3Connection>;

  constructor(readonly settings: S3IndexSettings) {}

  key(imageKey: string): string {
    return `${this.settings.prefix}${imageKey}.clip`;
  }

  markerKey(imageKey: string): string {
    return `${this.key(imageKey)}.indexing`;
  }

  url(imageKey: string): string {
    return `s3://${this.settings.bucket}/${this.key(imageKey)}`;
  }

  /** Whether the index exists (HEAD). NOT_FOUND of the key is false; a missing bucket and other failures throw. */
  async exists(imageKey: string): Promise<boolean> {
    return (await this.size(imageKey)) !== undefined;
  }

  /** The index's size in bytes, or undefined when there is none. */
  async size(imageKey: string): Promise<number | undefined> {
    try {
      return (await headObject(await this.connect(), { bucket: this.settings.bucket, key: this.key(imageKey) })).size;
    } catch (err) {
      if (isMissingKey(err)) return undefined;
      throw err;
    }
  }

  /**
   * Copies the index into `destination` (temporary file, then rename). False when the bucket has
   * no such index; other failures (unreachable endpoint, credentials) are thrown.
   */
  async fetch(imageKey: string, destination: string): Promise<boolean> {
    let source: S3ByteSource;
    try {
      source = await S3ByteSource.open(this.url(imageKey), await this.connect());
    } catch (err) {
      if (isMissingKey(err)) return false;
      throw err;
    }
    const temporary = `${destination}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      const size = await source.size();
      const file = await open(temporary, 'wx', 0o600);
      try {
        for (let offset = 0; offset < size; offset += CHUNK_BYTES) {
          const bytes = await source.read(offset, Math.min(CHUNK_BYTES, size - offset));
          if (bytes.length === 0) throw new ClipError('TRUNCATED', `${this.url(imageKey)} ended at ${offset} of ${size} bytes`);
          await file.write(bytes, 0, bytes.length, offset);
        }
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(temporary, destination);
      return true;
    } catch (err) {
      await unlink(temporary).catch(() => undefined);
      throw err;
    } finally {
      await source.close();
    }
  }

  async upload(imageKey: string, path: string): Promise<void> {
    await uploadFileToS3(path, this.url(imageKey), this.settings.options);
  }

  /** The indexer's marker, or undefined when there is none (or it is not a marker). */
  async readMarker(imageKey: string): Promise<IndexingMarker | undefined> {
    const connection = await this.connect();
    const key = this.markerKey(imageKey);
    try {
      const response = await connection.client.send(new connection.sdk.GetObjectCommand({ Bucket: this.settings.bucket, Key: key }));
      if ((response.ContentLength ?? 0) > MAX_MARKER_BYTES) return undefined;
      const body = (await response.Body?.transformToString('utf8')) ?? '';
      return parseMarker(body);
    } catch (err) {
      const mapped = s3Error(err, 'reading', connection.describe({ bucket: this.settings.bucket, key }));
      if (isMissingKey(mapped)) return undefined;
      throw mapped;
    }
  }

  async writeMarker(imageKey: string, marker: IndexingMarker): Promise<void> {
    const connection = await this.connect();
    const key = this.markerKey(imageKey);
    try {
      await connection.client.send(
        new connection.sdk.PutObjectCommand({
          Bucket: this.settings.bucket,
          Key: key,
          Body: JSON.stringify(marker),
          ContentType: 'application/json',
        }),
      );
    } catch (err) {
      throw s3Error(err, 'writing', connection.describe({ bucket: this.settings.bucket, key }));
    }
  }

  /** Removes the marker; a missing one is fine. */
  async deleteMarker(imageKey: string): Promise<void> {
    const connection = await this.connect();
    const key = this.markerKey(imageKey);
    try {
      await connection.client.send(new connection.sdk.DeleteObjectCommand({ Bucket: this.settings.bucket, Key: key }));
    } catch (err) {
      const mapped = s3Error(err, 'deleting', connection.describe({ bucket: this.settings.bucket, key }));
      if (mapped.code !== 'NOT_FOUND') throw mapped;
    }
  }

  /** Whether the bucket answers (for readiness). Throws the mapped error when it does not. */
  async check(): Promise<void> {
    const connection = await this.connect();
    try {
      await connection.client.send(new connection.sdk.HeadBucketCommand({ Bucket: this.settings.bucket }));
    } catch (err) {
      throw s3Error(err, 'checking bucket', `s3://${this.settings.bucket}`);
    }
  }

  close(): void {
    const connection = this.connection;
    this.connection = undefined;
    void connection?.then((opened) => opened.close(), () => undefined);
  }

  private connect(): Promise<S3Connection> {
    if (!this.connection) {
      const opening = S3Connection.open(this.settings.options);
      opening.catch(() => {
        if (this.connection === opening) this.connection = undefined;
      });
      this.connection = opening;
    }
    return this.connection;
  }
}

/**
 * NOT_FOUND of the object itself (a missing bucket is a configuration error, thrown). Told apart by
 * the reason the S3 layer gives ("no such object"), not by the word "bucket", which may well be in
 * the bucket's name.
 */
function isMissingKey(err: unknown): boolean {
  return err instanceof ClipError && err.code === 'NOT_FOUND' && /: no such object\b/.test(err.message);
}
