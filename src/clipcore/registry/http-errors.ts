/** Final HTTP statuses from a registry, turned into ClipErrors that name the registry and object. */
import { ClipError } from '../errors.js';
import { isObject, optionalString } from './json.js';
import { discard, readBody, type IncomingResponse } from './transport.js';

export interface RequestContext {
  registry: string;
  repository: string;
  /** e.g. `manifest "3.20"`, `blob sha256:...`. */
  object: string;
  /** Whether credentials were configured for this registry (changes the 401 wording). */
  hadCredentials: boolean;
  attempts: number;
}

/** `CODE: message` from a Distribution error body, if there is one. */
async function registryErrorDetail(res: IncomingResponse): Promise<string> {
  try {
    const body = await readBody(res, 64 * 1024, 'error body');
    const parsed: unknown = JSON.parse(body.toString('utf8'));
    if (!isObject(parsed) || !Array.isArray(parsed['errors'])) return '';
    const first: unknown = parsed['errors'][0];
    if (!isObject(first)) return '';
    const code = optionalString(first, 'code');
    const message = optionalString(first, 'message');
    return [code, message].filter((s) => s).join(': ');
  } catch {
    return '';
  }
}

export async function statusError(res: IncomingResponse, ctx: RequestContext): Promise<ClipError> {
  const status = res.status;
  if (status === 401) discard(res);
  const detail = status === 401 ? '' : await registryErrorDetail(res);
  const where = `repository ${ctx.repository} on registry ${ctx.registry}`;
  const suffix = detail ? ` (${detail})` : '';
  const after = ctx.attempts > 1 ? ` after ${ctx.attempts} attempts` : '';
  switch (status) {
    case 401:
      return new ClipError(
        'UNAUTHORIZED',
        ctx.hadCredentials
          ? `credentials rejected for registry ${ctx.registry} repository ${ctx.repository}`
          : `authentication required for registry ${ctx.registry} repository ${ctx.repository} (no credentials configured)`,
      );
    case 403:
      return new ClipError('FORBIDDEN', `access to ${ctx.object} in ${where} is forbidden${suffix}`);
    case 404:
      if (detail.startsWith('NAME_UNKNOWN')) {
        return new ClipError('IMAGE_NOT_FOUND', `${where} does not exist (looking for ${ctx.object})`);
      }
      return new ClipError('IMAGE_NOT_FOUND', `${ctx.object} not found in ${where}${suffix}`);
    case 416:
      return new ClipError('OUT_OF_RANGE', `requested range of ${ctx.object} in ${where} is beyond its end`);
    case 429:
      return new ClipError('UNAVAILABLE', `registry ${ctx.registry} is rate-limiting requests for ${ctx.object}${after}`);
  }
  if (status >= 500) {
    return new ClipError('UNAVAILABLE', `registry ${ctx.registry} answered HTTP ${status} for ${ctx.object} in ${where}${after}${suffix}`);
  }
  if (status >= 400) {
    return new ClipError('INVALID_ARGUMENT', `registry ${ctx.registry} rejected the request for ${ctx.object} in ${where}: HTTP ${status}${suffix}`);
  }
  return new ClipError('UNAVAILABLE', `registry ${ctx.registry} answered unexpected HTTP ${status} for ${ctx.object} in ${where}`);
}
