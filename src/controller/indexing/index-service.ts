/**
 * The index side of the controller: turns requests (an image, platforms, credentials, the object
 * that asked) into index jobs and reports outcomes to whoever asked.
 *
 * - A *want* is one distinct request (image + platforms + credentials), shared by every requester
 *   making it. It resolves the reference once, with backoff while the registry is unavailable.
 * - A *job* is one index (manifest digest + platform, its S3 key), shared by every want needing it.
 *   At most `concurrency` run at once; a job first looks in S3 (an index there is done), then at the
 *   marker (another replica indexing: check again later), then indexes.
 * - Permanent failures (not found, unauthorized, not a filesystem) stay until a request comes with
 *   another requester revision; the others are retried with exponential backoff up to 5 minutes.
 */
import { createHash } from 'node:crypto';
import { describeError, imageKeyOf, isMarkerFresh, MARKER_REFRESH_MS, parseReference, type ImageReference, type RegistryCredentials } from '../../clipcore/index.js';
import type { Logger } from '../../csi/log.js';
import type { IndexOutcome, IndexRequest, IndexService, Requester } from '../contracts.js';
import type { ControllerMetrics } from '../metrics.js';
import { backoffMs, classifyFailure, resultOf, type Failure } from './failure.js';
import { describeProgress, type Indexer, type IndexSpec, type IndexSummary } from './indexer.js';
import { resolveImage, type RegistrySettings, type ResolvedImage } from './resolve.js';

interface Want {
  readonly key: string;
  readonly image: string;
  readonly reference: ImageReference;
  readonly platforms: readonly string[];
  readonly credentials: readonly RegistryCredentials[];
  readonly requesters: Map<string, Requester>;
  resolved?: ResolvedImage;
  failure?: Failure;
  attempt: number;
  timer?: NodeJS.Timeout;
}

/** One image a requester asked for. */
interface Entry {
  want: Want;
  revision: string;
  told?: string;
}

interface Job {
  readonly spec: IndexSpec;
  readonly wants: Set<Want>;
  state: 'queued' | 'running' | 'indexed' | 'failed';
  progress: string;
  /** Not started before this time (backoff, another replica's marker). */
  notBefore: number;
  attempt: number;
  failure?: Failure;
  summary?: IndexSummary;
  indexedAt?: string;
  durationSeconds?: number;
}

/** What CreateVolume needs of an indexed image. */
export interface IndexedImage {
  reference: ImageReference;
  digest: string;
  /** The largest of the platforms' regular-file bytes. */
  fileBytes: number;
}

export interface IndexQueueOptions {
  indexer: Indexer;
  registry: RegistrySettings;
  concurrency: number;
  metrics: ControllerMetrics;
  log: Logger;
  /** `s3://bucket/key` of an index, for the outcomes. */
  location: (key: string) => string;
}

export class IndexQueue implements IndexService {
  private readonly wants = new Map<string, Want>();
  private readonly jobs = new Map<string, Job>();
  /** requester uid → per image it asked for: its want, the revision it came with, the last outcome it was told. */
  private readonly requesters = new Map<string, Entry[]>();
  private readonly listeners: Array<(requester: Requester, outcome: IndexOutcome) => void> = [];
  private readonly waiters = new Map<string, Set<() => void>>();
  private running = 0;
  private pumpTimer?: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly options: IndexQueueOptions) {}

  get queueDepth(): number {
    let depth = 0;
    for (const job of this.jobs.values()) if (job.state === 'queued') depth++;
    return depth;
  }

  get inFlight(): number {
    return this.running;
  }

  onOutcome(listener: (requester: Requester, outcome: IndexOutcome) => void): void {
    this.listeners.push(listener);
  }

  submit(request: IndexRequest): void {
    if (this.closed) return;
    const { requester } = request;
    let reference: ImageReference;
    try {
      if (request.platforms.length === 0) throw new Error('no platform to index the image for');
      reference = parseReference(request.image);
    } catch (err) {
      this.withdraw(requester, request.image);
      this.emit(requester, { image: request.image, state: 'Failed', reason: 'NotFound', message: describeError(err) });
      return;
    }
    const platforms = [...new Set(request.platforms)].sort();
    const key = wantKey(request.image, platforms, request.credentials);
    let known = this.entryOf(requester.uid, request.image);
    const changed = known?.revision !== requester.revision;
    if (known && known.want.key !== key) {
      this.withdraw(requester, request.image);
      known = undefined;
    }
    let want = this.wants.get(key);
    if (!want) {
      want = { key, image: request.image, reference, platforms, credentials: request.credentials, requesters: new Map(), attempt: 0 };
      this.wants.set(key, want);
      this.resolve(want);
    }
    want.requesters.set(requester.uid, requester);
    if (known) known.revision = requester.revision;
    else {
      // `[entry]` is allocated at its length; a spread into an empty array keeps room for 17.
      const entry: Entry = { want, revision: requester.revision };
      const others = this.requesters.get(requester.uid);
      this.requesters.set(requester.uid, others ? [...others, entry] : [entry]);
    }
    const retried = changed ? this.retryPermanentFailures(want) : [];
    // Usually only this requester's state changed (telling every requester of the want at each
    // submit made 50,000 pods of one image cost 50,000² steps); a retried failure changed the
    // state of everyone waiting on it, and each of them is told.
    if (retried.length > 0) for (const changedWant of retried) this.report(changedWant);
    else this.report(want, requester);
  }

  withdraw(requester: Requester, image?: string): void {
    const entries = this.requesters.get(requester.uid);
    if (!entries) return;
    const kept = image === undefined ? [] : entries.filter((entry) => entry.want.image !== image);
    if (kept.length > 0) this.requesters.set(requester.uid, kept);
    else this.requesters.delete(requester.uid);
    for (const entry of entries) if (!kept.includes(entry)) this.forget(requester.uid, entry.want);
  }

  /** The outcome a requester would be told now about `image`. */
  outcomeOf(uid: string, image: string): IndexOutcome | undefined {
    const entry = this.entryOf(uid, image);
    return entry && this.outcome(entry.want);
  }

  /** The image a requester asked for, once its indexes are all in S3. */
  indexedImage(uid: string, image: string): IndexedImage | undefined {
    const want = this.entryOf(uid, image)?.want;
    if (!want?.resolved) return undefined;
    const jobs = this.jobsOf(want);
    if (jobs.some((job) => job.state !== 'indexed')) return undefined;
    return { reference: want.reference, digest: want.resolved.digest, fileBytes: Math.max(0, ...jobs.map((job) => job.summary?.fileBytes ?? 0)) };
  }

  /** Resolves when the requester's outcome for `image` is no longer Indexing, or after `ms`, or when `signal` aborts. */
  async settled(uid: string, image: string, ms: number, signal?: AbortSignal): Promise<IndexOutcome | undefined> {
    const current = this.outcomeOf(uid, image);
    if (!current || current.state !== 'Indexing' || ms <= 0 || signal?.aborted) return current;
    await new Promise<void>((resolve) => {
      const waiters = this.waiters.get(uid) ?? new Set<() => void>();
      this.waiters.set(uid, waiters);
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        waiters.delete(done);
        if (waiters.size === 0) this.waiters.delete(uid);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
      waiters.add(done);
    });
    return this.outcomeOf(uid, image);
  }

  /** Stops starting work; jobs running are left to the caller's process exit (their markers: Indexer.abandon). */
  close(): void {
    this.closed = true;
    clearTimeout(this.pumpTimer);
    for (const want of this.wants.values()) clearTimeout(want.timer);
  }

  // ---------------------------------------------------------------------------------------------

  /** A requester no longer wants `want`: a want nobody wants is dropped. */
  private forget(uid: string, want: Want): void {
    want.requesters.delete(uid);
    if (want.requesters.size > 0) return;
    // Nobody wants it any more: stop retrying, forget jobs no one else needs (a running one finishes).
    clearTimeout(want.timer);
    this.wants.delete(want.key);
    for (const job of this.jobsOf(want)) {
      job.wants.delete(want);
      if (job.wants.size === 0 && job.state !== 'running') this.jobs.delete(job.spec.key);
    }
  }

  private resolve(want: Want): void {
    want.timer = undefined;
    const { log } = this.options;
    resolveImage(want.reference, want.platforms, want.credentials, this.options.registry).then(
      (resolved) => {
        if (this.wants.get(want.key) !== want) return;
        want.resolved = resolved;
        want.failure = undefined;
        want.attempt = 0;
        log('info', 'image resolved', { image: want.image, digest: resolved.digest, platforms: want.platforms });
        for (const { platform, digest } of resolved.manifests) {
          const key = imageKeyOf(digest, platform);
          let job = this.jobs.get(key);
          if (!job) {
            const spec: IndexSpec = { key, imageRef: `${want.reference.registry}/${want.reference.repository}@${digest}`, platform, ...(resolved.auth && { auth: resolved.auth }) };
            job = { spec, wants: new Set(), state: 'queued', progress: 'queued', notBefore: 0, attempt: 0 };
            this.jobs.set(key, job);
          }
          job.wants.add(want);
        }
        this.report(want);
        this.pump();
      },
      (err: unknown) => {
        if (this.wants.get(want.key) !== want) return;
        want.failure = classifyFailure(err);
        this.options.metrics.job(resultOf(want.failure.reason));
        if (!want.failure.permanent && !this.closed) {
          want.attempt++;
          const delayMs = backoffMs(want.attempt);
          want.timer = setTimeout(() => this.resolve(want), delayMs);
          log('warn', 'cannot resolve the image; retrying', { image: want.image, reason: want.failure.reason, error: want.failure.message, attempt: want.attempt, retry_in_s: delayMs / 1000 });
        } else {
          log('warn', 'cannot resolve the image', { image: want.image, reason: want.failure.reason, error: want.failure.message });
        }
        this.report(want);
      },
    );
  }

  /**
   * A new revision of a requester: what failed for good is tried again. Returns the wants whose
   * outcome that changed (the want, and every want sharing a job tried again).
   */
  private retryPermanentFailures(want: Want): Want[] {
    const changed = new Set<Want>();
    if (want.failure?.permanent) {
      want.failure = undefined;
      want.attempt = 0;
      this.resolve(want);
      changed.add(want);
    }
    for (const job of this.jobsOf(want)) {
      if (job.state !== 'failed') continue;
      job.state = 'queued';
      job.progress = 'queued';
      job.failure = undefined;
      job.notBefore = 0;
      for (const sharing of job.wants) changed.add(sharing);
    }
    this.pump();
    return [...changed];
  }

  private pump(): void {
    clearTimeout(this.pumpTimer);
    this.pumpTimer = undefined;
    if (this.closed) return;
    const now = Date.now();
    let next = Infinity;
    for (const job of this.jobs.values()) {
      if (this.running >= this.options.concurrency) break;
      if (job.state !== 'queued') continue;
      if (job.wants.size === 0) {
        this.jobs.delete(job.spec.key);
        continue;
      }
      if (job.notBefore > now) {
        next = Math.min(next, job.notBefore);
        continue;
      }
      void this.run(job);
    }
    if (next < Infinity) this.pumpTimer = setTimeout(() => this.pump(), next - now);
  }

  private async run(job: Job): Promise<void> {
    const { indexer, log, metrics } = this.options;
    const { spec } = job;
    this.running++;
    job.state = 'running';
    job.progress = 'looking for an index in S3';
    try {
      const existing = await indexer.existing(spec.key);
      if (existing) {
        this.done(job, existing, 0, 'exists');
        return;
      }
      const marker = await indexer.foreignMarker(spec.key);
      if (marker && isMarkerFresh(marker, new Date())) {
        // Another replica indexes it: look again soon, without holding a slot.
        job.state = 'queued';
        job.notBefore = Date.now() + MARKER_REFRESH_MS;
        job.progress = `being indexed by ${marker.holder}${marker.progress ? `: ${marker.progress}` : ''}`;
        return;
      }
      const started = Date.now();
      log('info', 'indexing image', { image: spec.imageRef, platform: spec.platform, key: spec.key });
      const summary = await indexer.index(spec, (progress) => {
        job.progress = describeProgress(progress);
      });
      const seconds = (Date.now() - started) / 1000;
      metrics.indexed(seconds);
      this.done(job, summary, seconds, 'indexed');
    } catch (err) {
      const failure = classifyFailure(err);
      job.failure = failure;
      metrics.job(resultOf(failure.reason));
      if (failure.permanent) {
        job.state = 'failed';
        log('warn', 'indexing failed', { image: spec.imageRef, platform: spec.platform, reason: failure.reason, error: failure.message });
      } else {
        job.attempt++;
        const delayMs = backoffMs(job.attempt);
        job.state = 'queued';
        job.notBefore = Date.now() + delayMs;
        log('warn', 'indexing failed; retrying', { image: spec.imageRef, platform: spec.platform, reason: failure.reason, error: failure.message, attempt: job.attempt, retry_in_s: delayMs / 1000 });
      }
    } finally {
      this.running--;
      if (job.wants.size === 0 && job.state !== 'queued') this.jobs.delete(spec.key);
      for (const want of job.wants) this.report(want);
      this.pump();
    }
  }

  private done(job: Job, summary: IndexSummary, seconds: number, result: 'indexed' | 'exists'): void {
    job.state = 'indexed';
    job.summary = summary;
    job.failure = undefined;
    job.attempt = 0;
    job.indexedAt = new Date().toISOString();
    job.durationSeconds = seconds;
    this.options.metrics.job(result);
    this.options.log('info', result === 'exists' ? 'index already in S3' : 'image indexed', {
      image: job.spec.imageRef,
      platform: job.spec.platform,
      location: this.options.location(job.spec.key),
      files: summary.files,
      index_bytes: summary.indexBytes,
      seconds,
    });
  }

  private entryOf(uid: string, image: string): Entry | undefined {
    return this.requesters.get(uid)?.find((entry) => entry.want.image === image);
  }

  private jobsOf(want: Want): Job[] {
    if (!want.resolved) return [];
    const jobs: Job[] = [];
    for (const { platform, digest } of want.resolved.manifests) {
      const job = this.jobs.get(imageKeyOf(digest, platform));
      if (job) jobs.push(job);
    }
    return jobs;
  }

  private outcome(want: Want): IndexOutcome {
    const { image } = want;
    if (want.failure) return { image, state: 'Failed', reason: want.failure.reason, message: want.failure.message };
    if (!want.resolved) return { image, state: 'Indexing', progress: `resolving ${want.image}` };
    const digest = want.resolved.digest;
    const jobs = this.jobsOf(want);
    const failed = jobs.find((job) => job.failure);
    if (failed?.failure) return { image, state: 'Failed', reason: failed.failure.reason, message: failed.failure.message, digest };
    const pending = jobs.filter((job) => job.state !== 'indexed');
    if (pending.length === 0 && jobs.length > 0) {
      return {
        image,
        state: 'Indexed',
        digest,
        indexes: jobs.map((job) => ({
          platform: job.spec.platform,
          location: this.options.location(job.spec.key),
          files: job.summary?.files ?? 0,
          indexBytes: job.summary?.indexBytes ?? 0,
          indexedAt: job.indexedAt ?? new Date().toISOString(),
          durationSeconds: job.durationSeconds ?? 0,
        })),
      };
    }
    const progress = pending.length === 1 ? (pending[0]?.progress ?? 'queued') : pending.map((job) => `${job.spec.platform}: ${job.progress}`).join('; ');
    return { image, state: 'Indexing', digest, progress: progress || 'queued' };
  }

  /** Tells each requester of `want` (or just `only`) its outcome if its state changed, and wakes CreateVolume waiters. */
  private report(want: Want, only?: Requester): void {
    const outcome = this.outcome(want);
    // Kept per requester: a constant string for the common states, not a new one per requester.
    const signature = outcome.state === 'Failed' ? `Failed|${outcome.reason}` : outcome.state;
    for (const requester of only ? [only] : want.requesters.values()) {
      const entry = this.entryOf(requester.uid, want.image);
      if (entry?.want !== want || entry.told === signature) continue;
      entry.told = signature;
      this.emit(requester, outcome);
    }
  }

  private emit(requester: Requester, outcome: IndexOutcome): void {
    for (const listener of this.listeners) {
      try {
        listener(requester, outcome);
      } catch (err) {
        this.options.log('error', 'outcome listener failed', { requester: `${requester.kind}/${requester.name}`, error: describeError(err) });
      }
    }
    for (const wake of [...(this.waiters.get(requester.uid) ?? [])]) wake();
  }
}

/** Requests equal in image, platforms and credentials share one want (the hash keeps credentials out of memory dumps of keys). */
function wantKey(image: string, platforms: readonly string[], credentials: readonly RegistryCredentials[]): string {
  return createHash('sha256').update(JSON.stringify([image, platforms, credentials])).digest('hex');
}
