import type { ByteSource } from '../source/byte-source.js';
import { FileByteSource } from '../source/file-source.js';
import { S3ByteSource } from './byte-source.js';
import type { S3Options } from './config.js';
import { isS3Url } from './location.js';

/**
 * Where a .clip lives: `s3://bucket/key` opens an S3ByteSource (ranged GETs), any other string a
 * local file; a ByteSource is returned as is.
 */
export async function openArchiveSource(location: string | ByteSource, s3: S3Options = {}): Promise<ByteSource> {
  if (typeof location !== 'string') return location;
  return isS3Url(location) ? S3ByteSource.open(location, s3) : FileByteSource.open(location);
}
