/**
 * Worker threads that check and decompress spans (span-job.ts), so that a cold read's inflate
 * runs off the thread that answers every other read (FUSE requests, gRPC), and cold readers use
 * every core. One worker per core, started on first use (or by warmInflatePool), unref'd while
 * idle so they never keep a process alive, ended after IDLE_MS without work.
 *
 * A read someone is blocked on never waits for a worker to boot: while no worker is ready, it is
 * decoded on the calling thread, as before the pool existed. Reads go before read-ahead.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ClipError } from '../errors.js';
import { decodeSpan, type SpanJob, type SpanJobReply } from './span-job.js';

const IDLE_MS = 30_000;

interface Queued {
  readonly job: SpanJob;
  readonly resolve: (data: Buffer) => void;
  readonly reject: (err: unknown) => void;
}

interface PoolWorker {
  readonly worker: Worker;
  ready: boolean;
  busy: (Queued & { readonly id: number }) | undefined;
}

const workers: PoolWorker[] = [];
const urgentQueue: Queued[] = [];
const backgroundQueue: Queued[] = [];
let nextId = 1;
let idleTimer: NodeJS.Timeout | undefined;
/** Set when a worker cannot start (no worker entry file, no threads): everything runs inline. */
let unavailable = false;

/** Starts the pool's workers now, so that they are ready for the first cold read. */
export function warmInflatePool(): void {
  while (!unavailable && workers.length < poolSize()) startWorker();
}

/**
 * Checks and decompresses one span, in a worker when one is free. `urgent`: a reader waits on it.
 * The job's buffers are copied to the worker (the caller keeps its own).
 */
export function decodeSpanOffThread(job: SpanJob, urgent: boolean): Promise<Buffer> {
  const readyIdle = workers.find((w) => w.ready && w.busy === undefined);
  if (unavailable || (urgent && readyIdle === undefined && !workers.some((w) => w.ready))) return decodeSpan(job);
  return new Promise((resolve, reject) => {
    (urgent ? urgentQueue : backgroundQueue).push({ job, resolve, reject });
    warmInflatePool();
    dispatch();
  });
}

function poolSize(): number {
  return Math.max(1, availableParallelism());
}

function startWorker(): void {
  let worker: Worker;
  try {
    worker = new Worker(new URL('./inflate-worker.js', import.meta.url));
  } catch {
    unavailable = true;
    runQueuedInline();
    return;
  }
  worker.unref();
  const entry: PoolWorker = { worker, ready: false, busy: undefined };
  workers.push(entry);
  worker.on('message', (message: SpanJobReply | { ready: true }) => {
    if ('ready' in message) entry.ready = true;
    else finish(entry, message);
    dispatch();
  });
  const gone = (err?: Error): void => {
    const at = workers.indexOf(entry);
    if (at >= 0) workers.splice(at, 1);
    const job = entry.busy;
    entry.busy = undefined;
    // The span is still worth decoding: a crashed worker is no verdict on its bytes.
    if (job) decodeSpan(job.job).then(job.resolve, job.reject);
    if (err !== undefined && workers.length === 0) {
      unavailable = true;
      runQueuedInline();
    }
    dispatch();
  };
  worker.on('error', gone);
  worker.on('exit', () => gone());
}

function finish(entry: PoolWorker, reply: SpanJobReply): void {
  const job = entry.busy;
  if (job === undefined || job.id !== reply.id) return;
  entry.busy = undefined;
  entry.worker.unref();
  if ('data' in reply) job.resolve(Buffer.from(reply.data.buffer, reply.data.byteOffset, reply.data.byteLength));
  else job.reject(new ClipError(reply.code, reply.message));
}

function dispatch(): void {
  for (const entry of workers) {
    if (!entry.ready || entry.busy !== undefined) continue;
    const next = urgentQueue.shift() ?? backgroundQueue.shift();
    if (next === undefined) break;
    const id = nextId++;
    entry.busy = { ...next, id };
    // Ref'd while it works: the caller awaits it, and the process must not exit meanwhile.
    entry.worker.ref();
    const bytes = Uint8Array.prototype.slice.call(next.job.bytes);
    const window = Uint8Array.prototype.slice.call(next.job.checkpoint.window);
    // Views are copied: cloning a view would copy its whole underlying buffer (a span's sha256 sits in the layer index's).
    const span = { ...next.job.span, sha256: Uint8Array.prototype.slice.call(next.job.span.sha256) };
    const message = { kind: next.job.kind, span, id, bytes, checkpoint: { ...next.job.checkpoint, window } };
    entry.worker.postMessage(message, [bytes.buffer as ArrayBuffer, window.buffer as ArrayBuffer]);
  }
  clearTimeout(idleTimer);
  if (workers.length > 0 && workers.every((w) => w.busy === undefined)) {
    idleTimer = setTimeout(() => {
      for (const entry of workers.splice(0)) void entry.worker.terminate();
    }, IDLE_MS).unref();
  }
}

function runQueuedInline(): void {
  for (const queued of urgentQueue.splice(0).concat(backgroundQueue.splice(0))) decodeSpan(queued.job).then(queued.resolve, queued.reject);
}
