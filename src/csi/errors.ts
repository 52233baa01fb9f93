import grpc from '@grpc/grpc-js';
import { describeError, isClipError, type ClipErrorCode } from '../clipcore/index.js';

const Status = grpc.status;
export type GrpcCode = grpc.status;

/**
 * An error that already knows its gRPC status: validation failures, conflicts, pending
 * operations. Everything else thrown inside a handler is mapped by `toGrpcError` at the edge.
 */
export class CsiError extends Error {
  constructor(
    readonly code: GrpcCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CsiError';
  }
}

export const invalidArgument = (message: string): CsiError => new CsiError(Status.INVALID_ARGUMENT, message);
export const notFound = (message: string): CsiError => new CsiError(Status.NOT_FOUND, message);
export const alreadyExists = (message: string): CsiError => new CsiError(Status.ALREADY_EXISTS, message);
export const aborted = (message: string): CsiError => new CsiError(Status.ABORTED, message);
export const unavailable = (message: string): CsiError => new CsiError(Status.UNAVAILABLE, message);
export const internal = (message: string): CsiError => new CsiError(Status.INTERNAL, message);

/** How each clipcore error code reaches the CO. */
const CLIP_CODE_TO_GRPC: Record<ClipErrorCode, GrpcCode> = {
  // The request named something unusable.
  INVALID_ARGUMENT: Status.INVALID_ARGUMENT,
  INVALID_REFERENCE: Status.INVALID_ARGUMENT,
  // The image, tag or repository does not exist.
  IMAGE_NOT_FOUND: Status.NOT_FOUND,
  NOT_FOUND: Status.NOT_FOUND,
  // Credentials.
  UNAUTHORIZED: Status.UNAUTHENTICATED,
  FORBIDDEN: Status.PERMISSION_DENIED,
  // The registry (or S3) could not be reached or is overloaded: worth retrying.
  UNAVAILABLE: Status.UNAVAILABLE,
  // The image exists but cannot be served as a filesystem.
  UNSUPPORTED_MEDIA_TYPE: Status.FAILED_PRECONDITION,
  NOT_A_TAR: Status.FAILED_PRECONDITION,
  NOT_A_DIRECTORY: Status.FAILED_PRECONDITION,
  IS_A_DIRECTORY: Status.FAILED_PRECONDITION,
  // Content that does not match its digest: the registry served corrupt data.
  DIGEST_MISMATCH: Status.DATA_LOSS,
  // A damaged local index or a failure of this node.
  BAD_MAGIC: Status.INTERNAL,
  UNSUPPORTED_VERSION: Status.INTERNAL,
  TRUNCATED: Status.INTERNAL,
  CHECKSUM_MISMATCH: Status.INTERNAL,
  OUT_OF_RANGE: Status.INTERNAL,
  CORRUPT: Status.INTERNAL,
  IO: Status.INTERNAL,
  MOUNT_FAILED: Status.INTERNAL,
};

export interface MappedError {
  code: GrpcCode;
  /** The status name, e.g. `NOT_FOUND`, for logs and metrics. */
  codeName: string;
  message: string;
  clipCode?: ClipErrorCode;
}

/** Maps anything thrown by a handler to one gRPC status, once, at the edge. */
export function toGrpcError(err: unknown): MappedError {
  if (err instanceof CsiError) return { code: err.code, codeName: statusName(err.code), message: err.message };
  if (isClipError(err)) {
    const code = CLIP_CODE_TO_GRPC[err.code] ?? Status.INTERNAL;
    return { code, codeName: statusName(code), message: err.message, clipCode: err.code };
  }
  return { code: Status.INTERNAL, codeName: 'INTERNAL', message: `internal error: ${describeError(err)}` };
}

export function statusName(code: GrpcCode): string {
  return Status[code] ?? String(code);
}
