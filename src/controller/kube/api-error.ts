/**
 * What went wrong in a call to the API server, in one short line: client-node throws an
 * ApiException (typed calls, whose message also carries every response header) or an Error with a
 * `statusCode` (watches), and a watch stream reports failures as a Status object.
 */
import { ApiException } from '@kubernetes/client-node';

/** The HTTP status of a failed call, or undefined for a network error. */
export function statusCode(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  if (typeof err === 'object' && err !== null) {
    const code = (err as { statusCode?: unknown; code?: unknown }).statusCode ?? (err as { code?: unknown }).code;
    if (typeof code === 'number') return code;
  }
  return undefined;
}

/** `403 pods is forbidden: …` / `ECONNREFUSED …`: the status and the server's message, never headers. */
export function describeApiError(err: unknown): string {
  if (err instanceof ApiException) {
    const message = statusMessage(err.body);
    return message ? `${err.code} ${message}` : `HTTP ${err.code}`;
  }
  const code = statusCode(err);
  const message = err instanceof Error ? err.message : String(err);
  return code === undefined ? message : `${code} ${message}`;
}

/** The `message` of a Status body (an object, or JSON text). */
function statusMessage(body: unknown): string | undefined {
  let status = body;
  if (typeof body === 'string') {
    try {
      status = JSON.parse(body);
    } catch {
      return body.slice(0, 200) || undefined;
    }
  }
  const message = typeof status === 'object' && status !== null ? (status as { message?: unknown }).message : undefined;
  return typeof message === 'string' ? message : undefined;
}

export const isNotFound = (err: unknown): boolean => statusCode(err) === 404;
export const isConflict = (err: unknown): boolean => statusCode(err) === 409;
export const isGone = (err: unknown): boolean => statusCode(err) === 410;
export const isForbidden = (err: unknown): boolean => statusCode(err) === 403;
