/**
 * Image indexes shared through S3: `s3://<bucket>/<prefix><digest>-<platform>.clip`, the same name
 * as in the node-local cache. A node that finds an index there copies it into its local cache
 * instead of indexing the image; a node that indexed an image uploads the index for the others.
 * Indexes are deterministic (the same image gives the same bytes), so nodes racing to upload the
 * same one write the same object.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { ClipError, S3ByteSource, uploadFileToS3, type S3Options } from '../clipcore/index.js';

export interface S3IndexSettings {
  bucket: string;
  /** Key prefix, e.g. `indexes/`. */
  prefix: string;
  options: S3Options;
}

const CHUNK_BYTES = 8 * 1024 * 1024;

export class S3IndexStore {
  constructor(private readonly settings: S3IndexSettings) {}

  url(imageKey: string): string {
    return `s3://${this.settings.bucket}/${this.settings.prefix}${imageKey}.clip`;
  }

  /**
   * Copies the index into `destination` (temporary file, then rename). False when the bucket has
   * no such index; other failures (unreachable endpoint, credentials) are thrown.
   */
  async fetch(imageKey: string, destination: string): Promise<boolean> {
    let source: S3ByteSource;
    try {
      source = await S3ByteSource.open(this.url(imageKey), this.settings.options);
    } catch (err) {
      if (err instanceof ClipError && err.code === 'NOT_FOUND' && !/bucket/.test(err.message)) return false;
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
}
