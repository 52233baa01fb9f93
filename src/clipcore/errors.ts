/**
 * Every failure clipcore reports is a ClipError with a stable `code`. Callers branch on the code
 * (the CSI layer maps codes to gRPC status once, the FUSE layer maps them to errno); the message
 * is for humans and names what was wrong.
 */
export type ClipErrorCode =
  // .clip reading
  | 'BAD_MAGIC'
  | 'UNSUPPORTED_VERSION'
  | 'TRUNCATED'
  | 'CHECKSUM_MISMATCH'
  | 'OUT_OF_RANGE'
  | 'CORRUPT'
  // filesystem-like lookups
  | 'NOT_FOUND'
  | 'NOT_A_DIRECTORY'
  | 'IS_A_DIRECTORY'
  // inputs and environment
  | 'INVALID_ARGUMENT'
  | 'IO'
  | 'MOUNT_FAILED'
  // registries and remote storage
  | 'INVALID_REFERENCE'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'IMAGE_NOT_FOUND'
  | 'UNAVAILABLE'
  | 'DIGEST_MISMATCH'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'NOT_A_TAR';

export class ClipError extends Error {
  readonly code: ClipErrorCode;

  constructor(code: ClipErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClipError';
    this.code = code;
  }
}

/** The archive is damaged or not an archive: bad magic, truncation, checksum or range errors. */
export class ArchiveFormatError extends ClipError {
  constructor(
    code: 'BAD_MAGIC' | 'UNSUPPORTED_VERSION' | 'TRUNCATED' | 'CHECKSUM_MISMATCH' | 'OUT_OF_RANGE' | 'CORRUPT',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.name = 'ArchiveFormatError';
  }
}

export function isClipError(err: unknown): err is ClipError {
  return err instanceof ClipError;
}

/** A short, one-line description of any thrown value, for logs and CLI output. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
