import { parentPort, workerData } from 'node:worker_threads';
import { ClipError } from '../errors.js';
import { indexLayer, type LayerJob } from './index-layer.js';

/**
 * Worker thread entry: indexes one layer (decompression and tar parsing are CPU-bound, so
 * layers indexed in workers use every core). Messages: progress, then result or error.
 */
export type WorkerMessage =
  | { readonly type: 'progress'; readonly bytes: number }
  | { readonly type: 'result'; readonly result: Awaited<ReturnType<typeof indexLayer>> }
  | { readonly type: 'error'; readonly code?: ClipError['code']; readonly message: string };

const port = parentPort;
if (port) {
  let pending = 0;
  const flush = (): void => {
    if (pending > 0) port.postMessage({ type: 'progress', bytes: pending } satisfies WorkerMessage);
    pending = 0;
  };
  const timer = setInterval(flush, 100);
  indexLayer(workerData as LayerJob, (bytes) => {
    pending += bytes;
  }).then(
    (result) => {
      flush();
      port.postMessage({ type: 'result', result } satisfies WorkerMessage);
    },
    (err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      port.postMessage({ type: 'error', code: err instanceof ClipError ? err.code : undefined, message } satisfies WorkerMessage);
    },
  ).finally(() => clearInterval(timer));
}
