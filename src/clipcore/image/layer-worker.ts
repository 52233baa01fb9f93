import { parentPort } from 'node:worker_threads';
import { ClipError } from '../errors.js';
import type { LayerEntry } from '../oci/layer-entry.js';
import { indexLayer, type LayerJob } from './index-layer.js';
import type { PackedLayerIndex } from './layer-index-codec.js';

/**
 * Worker thread entry: indexes the layers it is sent, one after another (decompression and tar
 * parsing are CPU-bound, so layers indexed in workers use every core). Entries go to the main
 * thread in batches as the tar is parsed, so that it merges them while the layer is still read.
 */
export type WorkerRequest = { readonly layer: number; readonly job: LayerJob };

export type WorkerMessage =
  | { readonly type: 'progress'; readonly layer: number; readonly bytes: number }
  | { readonly type: 'entries'; readonly layer: number; readonly entries: LayerEntry[] }
  /** Sent after every batch of the layer's entries. */
  | { readonly type: 'result'; readonly layer: number; readonly index: PackedLayerIndex }
  | { readonly type: 'error'; readonly layer: number; readonly code?: ClipError['code']; readonly message: string };

const port = parentPort;
if (port) {
  port.on('message', ({ layer, job }: WorkerRequest) => {
    const post = (message: WorkerMessage): void => port.postMessage(message);
    let pending = 0;
    const flush = (): void => {
      if (pending > 0) post({ type: 'progress', layer, bytes: pending });
      pending = 0;
    };
    const timer = setInterval(flush, 100);
    indexLayer(job, {
      onBytes: (bytes) => {
        pending += bytes;
      },
      onEntries: (entries) => post({ type: 'entries', layer, entries }),
    }).then(
      (index) => {
        flush();
        post({ type: 'result', layer, index });
      },
      (err: unknown) => {
        const message = err instanceof Error ? err.message : String(err);
        post({ type: 'error', layer, code: err instanceof ClipError ? err.code : undefined, message });
      },
    ).finally(() => clearInterval(timer));
  });
}
