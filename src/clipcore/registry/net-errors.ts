/**
 * Socket-level failures, sorted into what the client does about them: retry (dropped connection,
 * timeout), fall back to plain HTTP (peer does not speak TLS), or fail with a clear message.
 */
import { ClipError } from '../errors.js';

export type NetErrorKind = 'refused' | 'dns' | 'unreachable' | 'timeout' | 'reset' | 'tls-cert' | 'not-tls' | 'tls' | 'other';

/** Raised by the transport when a request sees no bytes for `timeoutMs`. */
export class RequestTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(readonly timeoutMs: number) {
    super(`no response within ${timeoutMs} ms`);
    this.name = 'RequestTimeoutError';
  }
}

function errorCode(err: unknown): string {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return '';
}

export function classifyNetError(err: unknown): NetErrorKind {
  if (err instanceof RequestTimeoutError) return 'timeout';
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : '';
  switch (code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return 'dns';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return 'unreachable';
    case 'ETIMEDOUT':
      return 'timeout';
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ECONNABORTED':
    case 'ERR_STREAM_PREMATURE_CLOSE':
      return 'reset';
  }
  // OpenSSL says "wrong version number" when the peer answered a ClientHello with plain HTTP.
  if (/wrong version number|packet length too long|http request/i.test(message)) return 'not-tls';
  if (/CERT|SELF_SIGNED|UNABLE_TO_|ERR_TLS_CERT/.test(code)) return 'tls-cert';
  if (code === 'EPROTO' || code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS')) return 'tls';
  if (message === 'aborted' || message === 'socket hang up') return 'reset';
  return 'other';
}

export function isRetryableNetError(kind: NetErrorKind): boolean {
  return kind === 'reset' || kind === 'timeout';
}

/** A ClipError naming `peer` (e.g. "registry 127.0.0.1:5000"), never URLs with queries or credentials. */
export function netErrorToClipError(err: unknown, peer: string, attempts: number): ClipError {
  const kind = classifyNetError(err);
  const code = errorCode(err);
  const after = attempts > 1 ? ` (after ${attempts} attempts)` : '';
  const msg = ((): string => {
    switch (kind) {
      case 'refused':
        return `${peer} is unavailable: connection refused${after}`;
      case 'dns':
        return `${peer} is unavailable: host name could not be resolved (${code})`;
      case 'unreachable':
        return `${peer} is unavailable: network unreachable (${code})`;
      case 'timeout':
        return `${peer} did not answer in time${err instanceof RequestTimeoutError ? ` (${err.timeoutMs} ms)` : ''}${after}`;
      case 'reset':
        return `connection to ${peer} was dropped (${code || 'closed early'})${after}`;
      case 'tls-cert':
        return `TLS certificate of ${peer} is not trusted (${code}); pass its CA certificate in caCertificates`;
      case 'not-tls':
        return `${peer} does not speak TLS; list it in insecureRegistries to use plain HTTP`;
      case 'tls':
        return `TLS handshake with ${peer} failed (${code})`;
      default:
        return `request to ${peer} failed: ${err instanceof Error ? err.message : String(err)}`;
    }
  })();
  return new ClipError('UNAVAILABLE', msg, { cause: err });
}
