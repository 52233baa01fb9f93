/**
 * A blob (or a byte range of one) as a Readable with bounded memory: bytes are pushed as they arrive
 * and the socket is paused whenever the consumer lags. A connection that drops mid-body is resumed
 * with a `Range` request from the first missing byte, so long layer downloads survive blips. When
 * the whole blob is read its digest is checked and a mismatch fails the stream with DIGEST_MISMATCH.
 */
import type { Hash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { ClipError } from '../errors.js';
import { hasherFor } from './digest.js';
import { netErrorToClipError } from './net-errors.js';
import { backoffDelay, sleep, type RetryPolicy } from './retry.js';

/** One HTTP response carrying blob bytes from `skip` bytes into its body onwards. */
export interface BlobSegment {
  body: IncomingMessage;
  /** Bytes of this body to drop first (a server that ignored `Range` sends from offset 0). */
  skip: number;
}

export interface BlobStreamOptions {
  start: number;
  /** Exclusive end offset. */
  end: number;
  /** Set when [start, end) is the whole blob: the content is verified against it. */
  verifyDigest?: string;
  /** Opens a new segment starting at absolute offset `from`. */
  reopen: (from: number) => Promise<BlobSegment>;
  retry: RetryPolicy;
  /** e.g. `blob sha256:... in repository x on registry y`, for messages. */
  what: string;
  peer: string;
}

const HIGH_WATER_MARK = 256 * 1024;

export class BlobStream extends Readable {
  private body: IncomingMessage | undefined;
  private position: number;
  private skip = 0;
  private resumes = 0;
  private readonly hash: Hash | undefined;

  constructor(first: BlobSegment, private readonly options: BlobStreamOptions) {
    super({ highWaterMark: HIGH_WATER_MARK });
    this.position = options.start;
    this.hash = options.verifyDigest !== undefined ? hasherFor(options.verifyDigest).hash : undefined;
    if (options.start >= options.end) {
      first.body.destroy();
      this.complete();
    } else {
      this.attach(first);
    }
  }

  override _read(): void {
    this.body?.resume();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.body?.destroy();
    this.body = undefined;
    callback(err);
  }

  private attach(segment: BlobSegment): void {
    const body = segment.body;
    this.body = body;
    this.skip = segment.skip;
    let settled = false;
    let received = 0;
    const settle = (err?: Error): void => {
      if (settled) return;
      settled = true;
      body.off('data', onData);
      this.segmentEnded(body, err, received);
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (this.onChunk(chunk, body)) settle();
    };
    body.on('data', onData);
    body.once('end', () => settle());
    body.once('error', (err: Error) => settle(err));
    body.once('close', () => settle(body.readableEnded ? undefined : new Error('aborted')));
  }

  /** Delivers the useful part of `chunk`; returns true once the range is complete. */
  private onChunk(chunk: Buffer, body: IncomingMessage): boolean {
    let data = chunk;
    if (this.skip > 0) {
      const dropped = Math.min(this.skip, data.length);
      this.skip -= dropped;
      data = data.subarray(dropped);
    }
    const wanted = this.options.end - this.position;
    if (data.length > wanted) data = data.subarray(0, wanted);
    if (data.length > 0) {
      this.hash?.update(data);
      this.position += data.length;
      if (!this.push(data)) body.pause();
    }
    return this.position >= this.options.end;
  }

  /** `received`: the bytes `body` delivered, to tell a body that is all in from one still sending. */
  private segmentEnded(body: IncomingMessage, err: Error | undefined, received: number): void {
    if (this.destroyed) return;
    if (this.position >= this.options.end) {
      // A body that has delivered all it announced ends by itself, and its connection goes back
      // to the pool for the next request (destroying it would cost a new TCP and TLS handshake).
      // One still sending past our range (the server ignored Range) is stopped.
      if (body.readableEnded || received === Number(body.headers['content-length'])) body.resume();
      else body.destroy();
      this.body = undefined;
      this.complete();
      return;
    }
    if (this.resumes >= this.options.retry.retries) {
      const cause = err ?? new Error('aborted');
      this.destroy(netErrorToClipError(cause, this.options.peer, this.resumes + 1));
      return;
    }
    this.body = undefined;
    const delay = backoffDelay(this.options.retry, this.resumes);
    this.resumes++;
    sleep(delay)
      .then(() => (this.destroyed ? undefined : this.options.reopen(this.position)))
      .then(
        (segment) => {
          if (segment === undefined) return;
          if (this.destroyed) segment.body.destroy();
          else this.attach(segment);
        },
        (reopenErr: unknown) => this.destroy(reopenErr instanceof Error ? reopenErr : new Error(String(reopenErr))),
      );
  }

  private complete(): void {
    if (this.hash !== undefined && this.options.verifyDigest !== undefined) {
      const algorithm = this.options.verifyDigest.slice(0, this.options.verifyDigest.indexOf(':'));
      const actual = `${algorithm}:${this.hash.digest('hex')}`;
      if (actual !== this.options.verifyDigest) {
        this.destroy(
          new ClipError('DIGEST_MISMATCH', `${this.options.what}: content hashes to ${actual}, expected ${this.options.verifyDigest}`),
        );
        return;
      }
    }
    this.push(null);
  }
}
