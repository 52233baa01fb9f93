/** Blob access: size, whole small blobs (verified), streams and byte ranges over HTTP `Range`. */
import { Readable } from 'node:stream';
import { ClipError } from '../errors.js';
import { BlobStream, type BlobSegment } from './blob-stream.js';
import { assertDigest, verifyDigest } from './digest.js';
import { call, fetchDocument, type CallContext, type RepositoryLocation } from './registry-call.js';

export interface BlobRange {
  start?: number;
  /** Exclusive end offset; defaults to the end of the blob. */
  end?: number;
}

export interface OpenedBlob {
  stream: Readable;
  /** Total size of the blob (not of the range). */
  size: number;
  start: number;
  /** Exclusive end actually served (clamped to the blob's size). */
  end: number;
}

const blobPath = (loc: RepositoryLocation, digest: string): string => `/v2/${loc.repository}/blobs/${digest}`;
const where = (loc: RepositoryLocation, digest: string): string =>
  `blob ${digest} in repository ${loc.repository} on registry ${loc.registry}`;

export async function blobSize(ctx: CallContext, loc: RepositoryLocation, digest: string): Promise<number> {
  assertDigest(digest);
  const { res } = await call(ctx, loc, { path: blobPath(loc, digest), method: 'HEAD', object: `blob ${digest}`, okStatuses: [200] });
  res.body.resume();
  const size = Number(res.headers['content-length']);
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new ClipError('UNAVAILABLE', `registry ${loc.registry} sent no size for ${where(loc, digest)}`);
  }
  return size;
}

/** A whole blob in memory (configs and other small blobs), checked against its digest. */
export async function fetchBlob(ctx: CallContext, loc: RepositoryLocation, digest: string, limit: number): Promise<Buffer> {
  assertDigest(digest);
  const { body } = await fetchDocument(ctx, loc, { path: blobPath(loc, digest), object: `blob ${digest}`, okStatuses: [200] }, limit);
  verifyDigest(body, digest, where(loc, digest));
  return body;
}

/** `bytes a-b/total` → numbers; undefined when absent or malformed. */
function parseContentRange(value: string | undefined): { start: number; end: number; total: number } | undefined {
  const m = value === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+)$/.exec(value.trim());
  if (m === null) return undefined;
  return { start: Number(m[1]), end: Number(m[2]) + 1, total: Number(m[3]) };
}

async function openSegment(
  ctx: CallContext,
  loc: RepositoryLocation,
  digest: string,
  from: number,
  end: number | undefined,
): Promise<{ segment: BlobSegment; total: number }> {
  const headers: Record<string, string> = {};
  if (from > 0 || end !== undefined) headers['range'] = `bytes=${from}-${end !== undefined ? end - 1 : ''}`;
  const { res } = await call(ctx, loc, { path: blobPath(loc, digest), headers, object: `blob ${digest}`, okStatuses: [200, 206] });
  if (res.status === 206) {
    const range = parseContentRange(res.headers['content-range']);
    if (range === undefined || range.start !== from) {
      res.body.destroy();
      throw new ClipError(
        'UNAVAILABLE',
        `registry ${loc.registry} answered a range request for ${where(loc, digest)} with Content-Range "${res.headers['content-range'] ?? ''}" (asked from ${from})`,
      );
    }
    return { segment: { body: res.body, skip: 0 }, total: range.total };
  }
  // 200: the server ignored Range and sends everything; the stream skips up to `from`.
  const total = Number(res.headers['content-length']);
  if (!Number.isSafeInteger(total)) {
    res.body.destroy();
    throw new ClipError('UNAVAILABLE', `registry ${loc.registry} sent no size for ${where(loc, digest)}`);
  }
  return { segment: { body: res.body, skip: from }, total };
}

export async function openBlob(ctx: CallContext, loc: RepositoryLocation, digest: string, range: BlobRange = {}): Promise<OpenedBlob> {
  assertDigest(digest);
  const start = range.start ?? 0;
  if (!Number.isSafeInteger(start) || start < 0 || (range.end !== undefined && (!Number.isSafeInteger(range.end) || range.end < start))) {
    throw new ClipError('INVALID_ARGUMENT', `invalid byte range [${start}, ${range.end ?? 'end'}) for ${where(loc, digest)}`);
  }
  if (range.end === start) {
    // An empty range needs no body, only the size (and the blob's existence).
    const size = await blobSize(ctx, loc, digest);
    if (start > size) throw new ClipError('OUT_OF_RANGE', `offset ${start} is beyond the end (${size}) of ${where(loc, digest)}`);
    return { stream: Readable.from([]), size, start, end: start };
  }
  const first = await openSegment(ctx, loc, digest, start, range.end);
  const end = Math.min(range.end ?? first.total, first.total);
  const stream = new BlobStream(first.segment, {
    start,
    end,
    ...(start === 0 && end === first.total && { verifyDigest: digest }),
    reopen: async (from) => (await openSegment(ctx, loc, digest, from, end)).segment,
    retry: ctx.retry,
    what: where(loc, digest),
    peer: `registry ${loc.registry}`,
  });
  return { stream, size: first.total, start, end };
}

/** Bytes [start, endExclusive) of a blob; shorter only when the blob ends first. */
export async function fetchBlobRange(
  ctx: CallContext,
  loc: RepositoryLocation,
  digest: string,
  start: number,
  endExclusive: number,
): Promise<Buffer> {
  const opened = await openBlob(ctx, loc, digest, { start, end: endExclusive });
  const out = Buffer.allocUnsafe(opened.end - opened.start);
  let filled = 0;
  for await (const chunk of opened.stream) {
    const buf = chunk as Buffer;
    buf.copy(out, filled);
    filled += buf.length;
  }
  return out.subarray(0, filled);
}
