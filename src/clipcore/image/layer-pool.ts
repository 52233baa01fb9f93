import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ClipError } from '../errors.js';
import type { IndexedLayer, LayerJob } from './index-layer.js';
import type { WorkerMessage } from './layer-worker.js';

/**
 * Indexes layers in worker threads, at most `concurrency` at a time (default: one per core).
 * The first failure stops the remaining work and is reported with its code.
 */
export async function indexLayersInParallel(
  jobs: readonly LayerJob[],
  options: {
    concurrency?: number;
    onBytes?: (layer: number, bytes: number) => void;
    /** Called as each layer finishes (progress displays count finished layers). */
    onLayerDone?: (layer: number) => void;
  } = {},
): Promise<IndexedLayer[]> {
  const concurrency = Math.min(jobs.length, checkConcurrency(options.concurrency ?? availableParallelism()));
  const results: IndexedLayer[] = new Array<IndexedLayer>(jobs.length);
  const running = new Set<Worker>();
  let next = 0;
  let failed = false;

  const runOne = (layer: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const worker = new Worker(new URL('./layer-worker.js', import.meta.url), { workerData: jobs[layer] });
      running.add(worker);
      let settled = false;
      worker.on('message', (message: WorkerMessage) => {
        if (message.type === 'progress') options.onBytes?.(layer, message.bytes);
        else if (message.type === 'result') {
          settled = true;
          results[layer] = message.result;
          options.onLayerDone?.(layer);
          resolve();
        } else {
          settled = true;
          reject(new ClipError(message.code ?? 'IO', message.message));
        }
      });
      worker.on('error', (err) => {
        settled = true;
        reject(new ClipError('IO', `indexing layer ${layer} crashed: ${err.message}`, { cause: err }));
      });
      worker.on('exit', () => {
        running.delete(worker);
        if (!settled) reject(new ClipError('IO', `indexing layer ${layer} stopped unexpectedly`));
      });
    });

  const lane = async (): Promise<void> => {
    while (!failed && next < jobs.length) {
      const layer = next++;
      try {
        await runOne(layer);
      } catch (err) {
        // Set before the rejection reaches Promise.all, so no other lane starts another worker.
        failed = true;
        throw err;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, lane));
  } catch (err) {
    failed = true;
    await Promise.all([...running].map((worker) => worker.terminate()));
    throw err;
  }
  return results;
}

/** Layers indexed at once: a whole number, at least 1 (NaN would start no worker at all). */
export function checkConcurrency(concurrency: number): number {
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new ClipError('INVALID_ARGUMENT', `concurrency must be a whole number of at least 1, got ${concurrency}`);
  }
  return concurrency;
}
