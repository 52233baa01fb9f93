/**
 * Worker thread entry of the inflate pool (inflate-pool.ts): checks a span's compressed bytes
 * against its sha256 and decompresses it from its checkpoint (and hashes its blocks for the disk
 * cache when asked), off the thread that answers reads.
 */
import { parentPort } from 'node:worker_threads';
import { ClipError } from '../errors.js';
import { decodeSpan, type SpanJob, type SpanJobReply } from './span-job.js';

/** Only a buffer of its own can be transferred (a view of a pooled one would take the pool). */
const own = (bytes: Uint8Array): Uint8Array =>
  bytes.byteOffset !== 0 || bytes.byteLength !== bytes.buffer.byteLength ? Uint8Array.prototype.slice.call(bytes) : bytes;

const port = parentPort;
if (port) {
  port.on('message', (job: SpanJob & { readonly id: number }) => {
    decodeSpan(job).then(
      (decoded) => {
        const data = own(decoded.data);
        const digests = decoded.blockDigests && own(decoded.blockDigests.digests);
        const transfer = [data.buffer as ArrayBuffer, ...(digests ? [digests.buffer as ArrayBuffer] : [])];
        port.postMessage({ id: job.id, data, ...(digests && { digests }) } satisfies SpanJobReply, transfer);
      },
      (err: unknown) => {
        const code = err instanceof ClipError ? err.code : 'CORRUPT';
        port.postMessage({ id: job.id, code, message: err instanceof Error ? err.message : String(err) } satisfies SpanJobReply);
      },
    );
  });
  port.postMessage({ ready: true });
}
