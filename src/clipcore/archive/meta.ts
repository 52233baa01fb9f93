import { ArchiveFormatError } from '../errors.js';
import type { StorageMode } from './model.js';

/**
 * The META section: JSON naming the storage mode and what a reader needs to reach the file bytes.
 * It never holds credentials.
 */

export interface LocalStorage {
  readonly mode: 'local';
  /** The data section is verified in spans of this many bytes (digests in the DataSpans section). */
  readonly spanBytes: number;
  readonly dataLength: number;
}

export interface S3Storage {
  readonly mode: 's3';
  readonly bucket: string;
  readonly key: string;
  readonly region?: string;
  readonly endpoint?: string;
  readonly spanBytes: number;
  readonly dataLength: number;
}

export interface OciStorage {
  readonly mode: 'oci';
  /** Everything else (registry, layers, config) lives in `image`. */
}

export type Storage = LocalStorage | S3Storage | OciStorage;

export interface ArchiveMeta {
  /** The program that wrote the archive, for diagnostics. */
  readonly writer: string;
  readonly storage: Storage;
  /** OCI mode: where the image came from (see oci/image-meta.ts). */
  readonly image?: unknown;
}

const MODES: readonly StorageMode[] = ['local', 's3', 'oci'];

export function encodeMeta(meta: ArchiveMeta): Buffer {
  return Buffer.from(JSON.stringify(meta), 'utf8');
}

export function decodeMeta(data: Buffer): ArchiveMeta {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new ArchiveFormatError('CORRUPT', 'metadata section is not valid JSON', { cause: err });
  }
  const record = asRecord(parsed, 'metadata');
  const storage = asRecord(record.storage, 'metadata.storage');
  if (!MODES.includes(storage.mode as StorageMode)) {
    throw new ArchiveFormatError('CORRUPT', `metadata: unknown storage mode ${JSON.stringify(storage.mode)}`);
  }
  if (storage.mode === 'local' || storage.mode === 's3') {
    for (const field of ['spanBytes', 'dataLength']) {
      const value = storage[field];
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || (field === 'spanBytes' && value === 0)) {
        throw new ArchiveFormatError('CORRUPT', `metadata: storage.${field} is invalid`);
      }
    }
  }
  if (storage.mode === 's3' && (typeof storage.bucket !== 'string' || typeof storage.key !== 'string')) {
    throw new ArchiveFormatError('CORRUPT', 'metadata: s3 storage needs a bucket and a key');
  }
  if (typeof record.writer !== 'string') throw new ArchiveFormatError('CORRUPT', 'metadata: writer is missing');
  return record as unknown as ArchiveMeta;
}

function asRecord(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ArchiveFormatError('CORRUPT', `${what} is not an object`);
  }
  return value as Record<string, unknown>;
}
