import { parentPort } from 'node:worker_threads';
import { ClipError } from '../errors.js';
import { indexLayer, type IndexedLayer, type LayerJob } from './index-layer.js';

/**
 * Worker thread entry: indexes the layers it is sent, one after another (decompression and tar
 * parsing are CPU-bound, so layers indexed in workers use every core). A worker lives for a
 * whole image: loading this code costs more than indexing a small layer.
 */
export type WorkerRequest = { readonly layer: number; readonly job: LayerJob };

export type WorkerMessage =
  | { readonly type: 'progress'; readonly layer: number; readonly bytes: number }
  | { readonly type: 'result'; readonly layer: number; readonly result: IndexedLayer }
  | { readonly type: 'error'; readonly layer: number; readonly code?: ClipError['code']; readonly message: string };

const port = parentPort;
if (port) {
  port.on('message', ({ layer, job }: WorkerRequest) => {
    let pending = 0;
    const flush = (): void => {
      if (pending > 0) port.postMessage({ type: 'progress', layer, bytes: pending } satisfies WorkerMessage);
      pending = 0;
    };
    const timer = setInterval(flush, 100);
    indexLayer(job, (bytes) => {
      pending += bytes;
    }).then(
      (result) => {
        flush();
        port.postMessage({ type: 'result', layer, result } satisfies WorkerMessage);
      },
      (err: unknown) => {
        const message = err instanceof Error ? err.message : String(err);
        port.postMessage({ type: 'error', layer, code: err instanceof ClipError ? err.code : undefined, message } satisfies WorkerMessage);
      },
    ).finally(() => clearInterval(timer));
  });
}
