/**
 * Worker threads that check and decompress spans (span-job.ts), so that a cold read's inflate
 * runs off the thread that answers every other read (FUSE requests, gRPC), and cold readers use
 * every core. One worker per core, started on first use (or by warmInflatePool), unref'd while
 * idle so they never keep a process alive, ended after IDLE_MS without work.
 *
 * A read someone is blocked on never waits for a worker to boot: while no worker is ready, it is
 * decoded on the calling thread, as before the pool existed. Reads go before read-ahead.
 *
 * Block digests for the disk tier (a job's digestBlockBytes) are computed only for jobs sent while
 * nothing else waits: spare worker time, never at the cost of inflating the next span.
 *
 * A worker holds up to DEPTH jobs: the next one is already there when it finishes one, so that it
 * never sits idle while the thread that hands out work is busy answering reads. Jobs go to idle
 * workers first, so a read's span waits behind at most one other.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ClipError } from '../errors.js';
import { decodeSpan, type DecodedSpanBytes, type SpanJob, type SpanJobReply, type Urgency } from './span-job.js';

const IDLE_MS = 30_000;
/** Jobs a worker holds at once: the one it decodes and the next. */
const DEPTH = 2;

interface Queued {
  readonly job: SpanJob;
  readonly urgency: Urgency;
  readonly resolve: (decoded: DecodedSpanBytes) => void;
  readonly reject: (err: unknown) => void;
}

interface PoolWorker {
  readonly worker: Worker;
  ready: boolean;
  /** Jobs sent to it and not answered yet, in the order sent. */
  readonly jobs: Array<Queued & { readonly id: number }>;
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
 * Checks and decompresses one span (and hashes its blocks, if the job asks), in a worker when one
 * is free. `urgency`: whether a reader waits on it (it may turn true later). The job's buffers
 * are copied to the worker (the caller keeps its own).
 */
export function decodeSpanOffThread(job: SpanJob, urgency: Urgency): Promise<DecodedSpanBytes> {
  const { urgent } = urgency;
  const readyIdle = workers.find((w) => w.ready && w.jobs.length === 0);
  if (unavailable || (urgent && readyIdle === undefined && !workers.some((w) => w.ready))) return decodeSpan(job);
  return new Promise((resolve, reject) => {
    (urgent ? urgentQueue : backgroundQueue).push({ job, urgency, resolve, reject });
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
  const entry: PoolWorker = { worker, ready: false, jobs: [] };
  workers.push(entry);
  worker.on('message', (message: SpanJobReply | { ready: true }) => {
    if ('ready' in message) entry.ready = true;
    else finish(entry, message);
    dispatch();
  });
  const gone = (err?: Error): void => {
    const at = workers.indexOf(entry);
    if (at >= 0) workers.splice(at, 1);
    // The spans are still worth decoding: a crashed worker is no verdict on their bytes.
    for (const job of entry.jobs.splice(0)) decodeSpan(job.job).then(job.resolve, job.reject);
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
  const at = entry.jobs.findIndex((j) => j.id === reply.id);
  if (at < 0) return;
  const [job] = entry.jobs.splice(at, 1) as [Queued & { readonly id: number }];
  if (entry.jobs.length === 0) entry.worker.unref();
  if ('data' in reply) {
    const data = Buffer.from(reply.data.buffer, reply.data.byteOffset, reply.data.byteLength);
    const blockBytes = job.job.digestBlockBytes;
    const digests = reply.digests && Buffer.from(reply.digests.buffer, reply.digests.byteOffset, reply.digests.byteLength);
    job.resolve(digests && blockBytes !== undefined ? { data, blockDigests: { blockBytes, digests } } : { data });
  } else job.reject(new ClipError(reply.code, reply.message));
}

function dispatch(): void {
  // Idle workers first, then a second job each: a job waits behind at most one other.
  for (let held = 0; held < DEPTH; held++) {
    for (const entry of workers) {
      if (!entry.ready || entry.jobs.length !== held) continue;
      const next = urgentQueue.shift() ?? takeHurried() ?? backgroundQueue.shift();
      if (next === undefined) break;
      send(entry, next);
    }
  }
  clearTimeout(idleTimer);
  if (workers.length > 0 && workers.every((w) => w.jobs.length === 0)) {
    idleTimer = setTimeout(() => {
      for (const entry of workers.splice(0)) void entry.worker.terminate();
    }, IDLE_MS).unref();
  }
}

/** The first read-ahead job a reader has come to wait on since it was queued. */
function takeHurried(): Queued | undefined {
  const at = backgroundQueue.findIndex((queued) => queued.urgency.urgent);
  return at < 0 ? undefined : backgroundQueue.splice(at, 1)[0];
}

function send(entry: PoolWorker, next: Queued): void {
  const id = nextId++;
  entry.jobs.push({ ...next, id });
  // Ref'd while it works: the caller awaits it, and the process must not exit meanwhile.
  entry.worker.ref();
  const bytes = Uint8Array.prototype.slice.call(next.job.bytes);
  const window = Uint8Array.prototype.slice.call(next.job.checkpoint.window);
  // Views are copied: cloning a view would copy its whole underlying buffer (a span's sha256 sits in the layer index's).
  const span = { ...next.job.span, sha256: Uint8Array.prototype.slice.call(next.job.span.sha256) };
  // Block digests only while the workers keep up: when spans queue, inflate is what holds readers
  // back (a 256 MiB cold cat ran 10-15 % slower with them), and the disk write hashes instead.
  const keepingUp = urgentQueue.length === 0 && backgroundQueue.length === 0;
  const message = { kind: next.job.kind, span, id, bytes, checkpoint: { ...next.job.checkpoint, window }, digestBlockBytes: keepingUp ? next.job.digestBlockBytes : undefined };
  entry.worker.postMessage(message, [bytes.buffer as ArrayBuffer, window.buffer as ArrayBuffer]);
}

function runQueuedInline(): void {
  for (const queued of urgentQueue.splice(0).concat(backgroundQueue.splice(0))) decodeSpan(queued.job).then(queued.resolve, queued.reject);
}
