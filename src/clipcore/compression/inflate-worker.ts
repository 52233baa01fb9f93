/**
 * Worker thread entry of the inflate pool (inflate-pool.ts): checks a span's compressed bytes
 * against its sha256 and decompresses it from its checkpoint, off the thread that answers reads.
 */
import { parentPort } from 'node:worker_threads';
import { ClipError } from '../errors.js';
import { decodeSpan, type SpanJob, type SpanJobReply } from './span-job.js';

const port = parentPort;
if (port) {
  port.on('message', (job: SpanJob & { readonly id: number }) => {
    decodeSpan(job).then(
      (decoded) => {
        let data: Uint8Array = decoded;
        // Only a buffer of its own can be transferred (a view of a pooled one would take the pool).
        if (data.byteOffset !== 0 || data.byteLength !== data.buffer.byteLength) data = Uint8Array.prototype.slice.call(data);
        port.postMessage({ id: job.id, data } satisfies SpanJobReply, [data.buffer as ArrayBuffer]);
      },
      (err: unknown) => {
        const code = err instanceof ClipError ? err.code : 'CORRUPT';
        port.postMessage({ id: job.id, code, message: err instanceof Error ? err.message : String(err) } satisfies SpanJobReply);
      },
    );
  });
  port.postMessage({ ready: true });
}
