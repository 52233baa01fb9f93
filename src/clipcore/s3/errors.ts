import { ClipError, type ClipErrorCode } from '../errors.js';

/**
 * Turns whatever the AWS SDK threw into a ClipError with a stable code and a message that names
 * the operation and the object. Messages are built here, never copied from credential-related
 * SDK errors, so no key, token or signature material can leak into logs.
 */
export function s3Error(err: unknown, operation: string, target: string): ClipError {
  if (err instanceof ClipError) return err;
  const info = errorInfo(err);
  const detail = [info.name && info.name !== 'Error' ? info.name : undefined, info.errno, info.status ? `HTTP ${info.status}` : undefined]
    .filter((part): part is string => part !== undefined)
    .join(', ');
  const suffix = detail === '' ? '' : ` (${detail})`;
  const { code, reason } = classify(info);
  return new ClipError(code, `${operation} ${target}: ${reason}${suffix}`, { cause: err });
}

interface ErrorInfo {
  name?: string;
  status?: number;
  errno?: string;
  message: string;
}

function errorInfo(err: unknown): ErrorInfo {
  if (typeof err !== 'object' || err === null) return { message: String(err) };
  const record = err as { name?: unknown; code?: unknown; message?: unknown; $metadata?: { httpStatusCode?: unknown }; cause?: unknown };
  const name = typeof record.name === 'string' ? record.name : undefined;
  const status = typeof record.$metadata?.httpStatusCode === 'number' ? record.$metadata.httpStatusCode : undefined;
  let errno = typeof record.code === 'string' && /^E[A-Z_]+$/.test(record.code) ? record.code : undefined;
  if (errno === undefined && typeof record.cause === 'object' && record.cause !== null) {
    const causeCode = (record.cause as { code?: unknown }).code;
    if (typeof causeCode === 'string' && /^E[A-Z_]+$/.test(causeCode)) errno = causeCode;
  }
  return { name, status, errno, message: typeof record.message === 'string' ? record.message : '' };
}

const NETWORK_ERRNOS = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH',
  'ENETUNREACH', 'EHOSTDOWN', 'EPIPE', 'EPROTO', 'ENETDOWN',
]);
const UNAUTHORIZED_NAMES = new Set([
  'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'TokenRefreshRequired',
  'InvalidSecurity', 'MissingSecurityHeader', 'AuthorizationHeaderMalformed', 'CredentialsProviderError',
  'InvalidClientTokenId', 'UnrecognizedClientException', 'RequestExpired', 'RequestTimeTooSkewed',
]);
const FORBIDDEN_NAMES = new Set(['AccessDenied', 'AllAccessDisabled', 'AccountProblem', 'Forbidden']);
const UNAVAILABLE_NAMES = new Set([
  'TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'SlowDown', 'ServiceUnavailable', 'InternalError',
  'ThrottlingException', 'Throttling', 'NetworkingError', 'AbortError',
]);

function classify(info: ErrorInfo): { code: ClipErrorCode; reason: string } {
  const { name = '', status, errno } = info;
  if (name === 'CredentialsProviderError' || /could not load credentials/i.test(info.message)) {
    return { code: 'UNAUTHORIZED', reason: 'no AWS credentials found (looked in the environment, the shared config and credentials files, web identity, and container or instance metadata)' };
  }
  if (UNAUTHORIZED_NAMES.has(name) || status === 401) {
    return { code: 'UNAUTHORIZED', reason: 'the credentials were rejected' };
  }
  if (name === 'NoSuchBucket') return { code: 'NOT_FOUND', reason: 'the bucket does not exist' };
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) return { code: 'NOT_FOUND', reason: 'no such object' };
  if (FORBIDDEN_NAMES.has(name) || status === 403) {
    return { code: 'FORBIDDEN', reason: 'access denied (the credentials lack permission, or are not valid for this store)' };
  }
  if (name === 'PreconditionFailed' || status === 412) {
    return { code: 'CORRUPT', reason: 'the object was replaced while it was being read' };
  }
  if (name === 'InvalidRange' || status === 416) return { code: 'OUT_OF_RANGE', reason: 'the requested range is outside the object' };
  if (name === 'InvalidBucketName') return { code: 'INVALID_ARGUMENT', reason: 'the bucket name is not valid' };
  if ((errno !== undefined && NETWORK_ERRNOS.has(errno)) || UNAVAILABLE_NAMES.has(name) || (status !== undefined && status >= 500)) {
    return { code: 'UNAVAILABLE', reason: 'the S3 endpoint is unreachable or failing' };
  }
  if (status === undefined && errno === undefined && /socket|connect|network|timed? ?out/i.test(info.message)) {
    return { code: 'UNAVAILABLE', reason: 'the S3 endpoint is unreachable or failing' };
  }
  // Anything else: the SDK's own words (service error messages name no secrets).
  return { code: status !== undefined && status >= 400 && status < 500 ? 'INVALID_ARGUMENT' : 'IO', reason: info.message || 'request failed' };
}
