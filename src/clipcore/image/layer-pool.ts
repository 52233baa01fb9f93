import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ClipError } from '../errors.js';
import type { IndexedLayer, LayerJob } from './index-layer.js';
import type { WorkerMessage, WorkerRequest } from './layer-worker.js';

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
  const workers: Worker[] = [];
  let next = 0;
  let failed = false;

  /** One worker per lane, fed one layer at a time until no layer is left. */
  const lane = async (): Promise<void> => {
    const worker = new Worker(new URL('./layer-worker.js', import.meta.url));
    workers.push(worker);
    const runOne = (layer: number): Promise<void> =>
      new Promise((resolve, reject) => {
        const onMessage = (message: WorkerMessage): void => {
          if (message.type === 'progress') {
            options.onBytes?.(layer, message.bytes);
            return;
          }
          cleanup();
          if (message.type === 'result') {
            results[layer] = message.result;
            options.onLayerDone?.(layer);
            resolve();
          } else {
            reject(new ClipError(message.code ?? 'IO', message.message));
          }
        };
        const onError = (err: Error): void => {
          cleanup();
          reject(new ClipError('IO', `indexing layer ${layer} crashed: ${err.message}`, { cause: err }));
        };
        const onExit = (): void => {
          cleanup();
          reject(new ClipError('IO', `indexing layer ${layer} stopped unexpectedly`));
        };
        const cleanup = (): void => {
          worker.off('message', onMessage);
          worker.off('error', onError);
          worker.off('exit', onExit);
        };
        worker.on('message', onMessage);
        worker.on('error', onError);
        worker.on('exit', onExit);
        worker.postMessage({ layer, job: jobs[layer] } satisfies WorkerRequest);
      });
    while (!failed && next < jobs.length) {
      const layer = next++;
      try {
        await runOne(layer);
      } catch (err) {
        // Set before the rejection reaches Promise.all, so no other lane takes another layer.
        failed = true;
        throw err;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, lane));
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()));
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
