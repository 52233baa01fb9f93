import { ClipError } from '../errors.js';

/** An S3 object: `s3://bucket/key`. */
export interface S3Location {
  readonly bucket: string;
  readonly key: string;
}

const SCHEME = 's3://';

/** True for strings that name an S3 object (`s3://...`); anything else is a local path. */
export function isS3Url(location: string): boolean {
  return location.startsWith(SCHEME);
}

/**
 * Parses `s3://bucket/key`. The key is taken literally (as the AWS CLI does): no percent-decoding,
 * and `?` or `#` are part of it.
 */
export function parseS3Url(url: string): S3Location {
  if (!isS3Url(url)) throw new ClipError('INVALID_ARGUMENT', `${JSON.stringify(url)} is not an s3://bucket/key URL`);
  const rest = url.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const bucket = slash === -1 ? rest : rest.slice(0, slash);
  const key = slash === -1 ? '' : rest.slice(slash + 1);
  if (bucket === '' || key === '') {
    throw new ClipError('INVALID_ARGUMENT', `${JSON.stringify(url)} must name a bucket and a key: s3://bucket/key`);
  }
  return { bucket, key };
}

export function formatS3Url(location: S3Location): string {
  return `${SCHEME}${location.bucket}/${location.key}`;
}

/** Accepts either form; checks that bucket and key are not empty. */
export function toS3Location(location: string | S3Location): S3Location {
  if (typeof location === 'string') return parseS3Url(location);
  if (!location.bucket || !location.key || location.bucket.includes('/')) {
    throw new ClipError('INVALID_ARGUMENT', `S3 location needs a bucket (without "/") and a non-empty key, got bucket ${JSON.stringify(location.bucket)}`);
  }
  return { bucket: location.bucket, key: location.key };
}
