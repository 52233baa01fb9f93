/** One registry API call for a repository, with non-success statuses turned into ClipErrors. */
import { ClipError } from '../errors.js';
import type { Authenticator } from './authenticator.js';
import { statusError } from './http-errors.js';
import { classifyNetError, isRetryableNetError, netErrorToClipError } from './net-errors.js';
import type { Answer, Requester } from './requester.js';
import { backoffDelay, sleep, type RetryPolicy } from './retry.js';
import { readBody, type IncomingResponse } from './transport.js';

/** A repository on a registry (the part of an ImageReference that addresses blobs and manifests). */
export interface RepositoryLocation {
  registry: string;
  repository: string;
}

export interface CallContext {
  requester: Requester;
  auth: Authenticator;
  retry: RetryPolicy;
}

export interface CallRequest {
  path: string;
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  /** What is being fetched, for messages: `manifest "3.20"`, `blob sha256:...`. */
  object: string;
  okStatuses: readonly number[];
}

export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

export async function call(ctx: CallContext, loc: RepositoryLocation, req: CallRequest): Promise<Answer> {
  const answer = await ctx.requester.request({
    registry: loc.registry,
    path: req.path,
    method: req.method ?? 'GET',
    headers: req.headers ?? {},
    scope: pullScope(loc.repository),
  });
  if (req.okStatuses.includes(answer.res.status)) return answer;
  throw await statusError(answer.res, {
    registry: loc.registry,
    repository: loc.repository,
    object: req.object,
    hadCredentials: await ctx.auth.hasCredentials(loc.registry),
    attempts: answer.attempts,
  });
}

/** A small document (manifest, config) read whole; a connection dropped mid-body is retried. */
export async function fetchDocument(
  ctx: CallContext,
  loc: RepositoryLocation,
  req: CallRequest,
  limit: number,
): Promise<{ res: IncomingResponse; body: Buffer }> {
  for (let attempt = 0; ; attempt++) {
    const { res } = await call(ctx, loc, req);
    try {
      return { res, body: await readBody(res, limit, `${req.object} in repository ${loc.repository}`) };
    } catch (err) {
      if (err instanceof ClipError) throw err;
      if (attempt >= ctx.retry.retries || !isRetryableNetError(classifyNetError(err))) {
        throw netErrorToClipError(err, `registry ${loc.registry}`, attempt + 1);
      }
      await sleep(backoffDelay(ctx.retry, attempt));
    }
  }
}
