import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ClipError } from '../errors.js';
import { releaseFreeMemory } from '../free-memory.js';
import type { LayerEntry } from '../oci/layer-entry.js';
import { indexLayer, type LayerJob } from './index-layer.js';
import type { PackedLayerIndex } from './layer-index-codec.js';
import type { WorkerMessage, WorkerRequest } from './layer-worker.js';

/**
 * How long finished workers stay warm for the next image. Starting a worker and compiling the
 * indexing code costs more than indexing a small layer (about 150 ms against 50 ms for a 400 KiB
 * layer), and a long-lived process (the node plugin, a controller) indexes images in bursts.
 */
export const IDLE_WORKER_MS = 10_000;

/**
 * Workers between jobs, shared by every createFromOCIImage of the process. Idle workers are
 * unref'd so that they never keep the process alive, and are terminated after IDLE_WORKER_MS,
 * which also returns their memory: their heaps, and what malloc kept (releaseFreeMemory).
 */
const idle: Worker[] = [];
let idleTimer: NodeJS.Timeout | undefined;

function takeWorker(): Worker {
  const worker = idle.pop() ?? startWorker();
  worker.ref();
  return worker;
}

function startWorker(): Worker {
  const worker = new Worker(new URL('./layer-worker.js', import.meta.url));
  // A worker that fails between jobs leaves the pool; errors during a job also reach its lane.
  const forget = (): void => {
    const at = idle.indexOf(worker);
    if (at >= 0) idle.splice(at, 1);
  };
  worker.on('error', forget);
  worker.on('exit', forget);
  return worker;
}

/**
 * Starts workers until `count` are idle, so that they boot while the caller is still resolving
 * the image (a worker takes about 100 ms to load the indexing code).
 */
export function warmWorkers(count: number): void {
  while (idle.length < count) returnWorker(startWorker());
}

function returnWorker(worker: Worker): void {
  worker.unref();
  idle.push(worker);
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => {
    const ending = idle.splice(0).map((w) => w.terminate());
    // What the workers freed stays in malloc's arenas, resident, until it is handed back.
    void Promise.allSettled(ending).then(() => releaseFreeMemory());
  }, IDLE_WORKER_MS).unref();
}

/**
 * Indexes layers in worker threads, at most `concurrency` at a time (default: one per core), and
 * returns each layer's index. Entries reach `onEntries` in tar order within each layer, all of a
 * layer's before its `onLayerDone`. The first failure, a callback's included, stops the
 * remaining work and is reported with its code.
 *
 * With `useCallingThread`, one of the lanes is the calling thread itself: it takes a layer at
 * once, and workers start only for the layers left to the other lanes, so a one-layer image needs
 * no worker at all (booting one costs about 0.1 s of CPU, and its memory).
 *
 * With `sizes` (each layer's compressed size), a lane that is free takes the largest layer left,
 * so that the big layers run side by side first and the small ones fill in at the end.
 */
export async function indexLayersInParallel(
  jobs: readonly LayerJob[],
  options: {
    concurrency?: number;
    useCallingThread?: boolean;
    /** Compressed bytes of each layer (the manifest's sizes): the order lanes take layers in. */
    sizes?: readonly number[];
    onBytes?: (layer: number, bytes: number) => void;
    onEntries?: (layer: number, entries: LayerEntry[]) => void;
    /** Called as each layer finishes (progress displays count finished layers). */
    onLayerDone?: (layer: number) => void;
  } = {},
): Promise<PackedLayerIndex[]> {
  const concurrency = Math.min(jobs.length, defaultConcurrency(options.concurrency));
  const results: PackedLayerIndex[] = new Array<PackedLayerIndex>(jobs.length);
  const workers: Worker[] = [];
  const taken = new Array<boolean>(jobs.length).fill(false);
  let left = jobs.length;
  let failed = false;

  const take = (fromBack: boolean): number => {
    const layer = nextLayer(taken, options.sizes, fromBack);
    taken[layer] = true;
    left--;
    return layer;
  };

  /** Runs `runOne` on layer after layer until none is left or a lane has failed. */
  const drain = async (runOne: (layer: number) => Promise<void>, fromBack = false): Promise<void> => {
    while (!failed && left > 0) {
      const layer = take(fromBack);
      try {
        await runOne(layer);
      } catch (err) {
        // Set before the rejection reaches Promise.all, so no other lane takes another layer.
        failed = true;
        throw err;
      }
    }
  };

  const finish = (layer: number, index: PackedLayerIndex): void => {
    results[layer] = index;
    options.onLayerDone?.(layer);
  };

  /**
   * The calling thread also merges every layer's entries and starts before any worker has booted:
   * among layers of equal size it takes them from the back (the top layers, usually small) while
   * the workers take the base layers. Without sizes, taking the first layer left it alone on a big
   * base layer at the end, with the worker idle (a third of a 13-layer image's time, in a fresh
   * `clip index`).
   */
  const callingThreadLane = (): Promise<void> =>
    drain(async (layer) => {
      const index = await indexLayer(jobs[layer] as LayerJob, {
        onBytes: (bytes) => {
          // Workers are terminated when another lane fails; this lane stops at its next chunk.
          if (failed) throw new ClipError('IO', 'stopped: another layer failed');
          options.onBytes?.(layer, bytes);
        },
        onEntries: (entries) => options.onEntries?.(layer, entries),
      });
      finish(layer, index);
    }, concurrency > 1);

  /** One worker per lane, started with the lane's first layer. */
  const workerLane = (): Promise<void> => {
    let worker: Worker | undefined;
    return drain(async (layer) => {
      if (worker === undefined) {
        worker = takeWorker();
        workers.push(worker);
      }
      finish(layer, await runInWorker(worker, layer, jobs[layer] as LayerJob, options));
    });
  };

  // The calling thread's lane starts first, so that it has a layer before any worker boots.
  const lanes = Array.from({ length: concurrency }, (_, i) => (i === 0 && options.useCallingThread ? callingThreadLane() : workerLane()));
  try {
    await Promise.all(lanes);
  } catch (err) {
    // Other lanes may still be mid-layer: stop them rather than wait for work nobody will use.
    await Promise.all(workers.map((worker) => worker.terminate()));
    throw err;
  }
  workers.forEach(returnWorker);
  return results;
}

/**
 * The layer a free lane takes (one must be left): the largest by `sizes` (longest first keeps a
 * lane from ending alone on a big layer while the others idle). Among equal sizes, or without
 * sizes, the lowest layer number, or the highest with `fromBack` (the calling thread's lane).
 */
export function nextLayer(taken: readonly boolean[], sizes: readonly number[] | undefined, fromBack: boolean): number {
  let best = -1;
  for (let i = 0; i < taken.length; i++) {
    const layer = fromBack ? taken.length - 1 - i : i;
    if (taken[layer]) continue;
    if (best < 0 || (sizes?.[layer] ?? 0) > (sizes?.[best] ?? 0)) best = layer;
  }
  return best;
}

/** Indexes one layer in `worker`, relaying its progress and entries as they come. */
function runInWorker(
  worker: Worker,
  layer: number,
  job: LayerJob,
  callbacks: { onBytes?: (layer: number, bytes: number) => void; onEntries?: (layer: number, entries: LayerEntry[]) => void },
): Promise<PackedLayerIndex> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: WorkerMessage): void => {
      try {
        if (message.type === 'progress') callbacks.onBytes?.(layer, message.bytes);
        else if (message.type === 'entries') callbacks.onEntries?.(layer, message.entries);
        else if (message.type === 'result') {
          cleanup();
          resolve(message.index);
        } else {
          cleanup();
          reject(new ClipError(message.code ?? 'IO', message.message));
        }
      } catch (err) {
        cleanup();
        reject(err instanceof Error ? err : new Error(String(err)));
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
    worker.postMessage({ layer, job } satisfies WorkerRequest);
  });
}

/** The number of layers indexed at once: the caller's, checked, or one per core. */
export function defaultConcurrency(concurrency: number | undefined): number {
  return concurrency === undefined ? availableParallelism() : checkConcurrency(concurrency);
}

/** Layers indexed at once: a whole number, at least 1 (NaN would start no worker at all). */
export function checkConcurrency(concurrency: number): number {
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new ClipError('INVALID_ARGUMENT', `concurrency must be a whole number of at least 1, got ${concurrency}`);
  }
  return concurrency;
}
