/**
 * How a failure to resolve or index an image is reported (the contract's FailureReason) and
 * whether it is worth retrying on its own: a missing image, refused credentials or an image that
 * is not a filesystem stay so until the object that asked changes; anything else (an unreachable
 * registry or S3, a dropped connection, a full disk) is retried with backoff.
 */
import { describeError, isClipError } from '../../clipcore/index.js';
import type { FailureReason } from '../contracts.js';
import type { JobResult } from '../metrics.js';

export interface Failure {
  reason: FailureReason;
  message: string;
  /** Not retried until a request with another requester revision arrives. */
  permanent: boolean;
}

export function classifyFailure(err: unknown): Failure {
  const message = describeError(err);
  if (isClipError(err)) {
    switch (err.code) {
      case 'IMAGE_NOT_FOUND':
      case 'INVALID_REFERENCE':
        return { reason: 'NotFound', message, permanent: true };
      case 'UNAUTHORIZED':
      case 'FORBIDDEN':
        return { reason: 'Unauthorized', message, permanent: true };
      case 'UNSUPPORTED_MEDIA_TYPE':
      case 'NOT_A_TAR':
        return { reason: 'NotAFilesystem', message, permanent: true };
      default:
        break;
    }
  }
  return { reason: 'Unavailable', message, permanent: false };
}

export function resultOf(reason: FailureReason): JobResult {
  const results: Record<FailureReason, JobResult> = {
    NotFound: 'not_found',
    Unauthorized: 'unauthorized',
    NotAFilesystem: 'not_a_filesystem',
    Unavailable: 'unavailable',
  };
  return results[reason];
}

/** Exponential backoff for transient failures: 1 s, 2 s, 4 s... up to 5 minutes. */
export const BACKOFF_BASE_MS = 1_000;
export const BACKOFF_MAX_MS = 5 * 60_000;

export function backoffMs(attempt: number): number {
  return Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, attempt - 1));
}
