/**
 * One resource kept in sync the way client-go's reflector does it, with what client-node's informer
 * lacks: a paginated list (limit/continue), then a watch from the list's resourceVersion with
 * bookmarks; a stream that ends or drops is resumed from the last resourceVersion seen; `410 Gone`
 * (the version was compacted away) relists; any other failure retries with backoff, forever. Objects
 * go to a sink that keeps its own small projection, never the whole object.
 */
import type { Watch } from '@kubernetes/client-node';
import type { Logger } from '../../csi/log.js';
import { isGone } from './api-error.js';
import type { Health } from './health.js';

export interface ListPage<T> {
  items: T[];
  resourceVersion: string;
  continueToken?: string;
}

export interface WatchedObject {
  metadata?: { resourceVersion?: string };
}

export interface WatchSink<T> {
  /** An object was listed, added or modified. */
  upsert(object: T): void;
  /** An object was deleted. */
  remove(object: T): void;
  /** A full list begins: the objects not upserted before `relistEnd` are gone. */
  relistBegin(): void;
  relistEnd(): void;
}

export interface ListWatchOptions<T> {
  /** The plural resource, for logs and readiness (`pods`, `clipimages`). */
  resource: string;
  list(limit: number, continueToken: string | undefined): Promise<ListPage<T>>;
  /** `/api/v1/pods`, `/apis/clip.csi.dev/v1alpha1/clipimages`. */
  watchPath: string;
  watch: Watch;
  sink: WatchSink<T>;
  health: Health;
  log: Logger;
  pageSize?: number;
}

const PAGE_SIZE = 500;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** A watch that ends sooner than this without an event is treated as a failure (no tight loop). */
const WATCH_MIN_HEALTHY_MS = 1_000;

class WatchEnded extends Error {
  constructor(readonly statusCode: number | undefined, message: string) {
    super(message);
  }
}

export class ListWatch<T extends WatchedObject> {
  private resourceVersion: string | undefined;
  private stopped = false;
  private abort: AbortController | undefined;
  private wake: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private syncedOnce = false;
  private readonly syncWaiters: Array<() => void> = [];
  private readonly healthKey: string;

  constructor(private readonly options: ListWatchOptions<T>) {
    this.healthKey = `watch ${options.resource}`;
    options.health.set(this.healthKey, `${options.resource} not listed yet`);
  }

  /** Resolves after the first full list (or at stop). */
  whenSynced(): Promise<void> {
    if (this.syncedOnce || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    this.wake?.();
    for (const resolve of this.syncWaiters.splice(0)) resolve();
    await this.running;
    this.options.health.clear(this.healthKey);
  }

  private async loop(): Promise<void> {
    let backoff = BACKOFF_FIRST_MS;
    while (!this.stopped) {
      let verb = 'list';
      try {
        if (this.resourceVersion === undefined) await this.relist();
        if (this.stopped) break;
        verb = 'watch';
        const healthy = await this.watchOnce();
        if (healthy) {
          backoff = BACKOFF_FIRST_MS;
          continue;
        }
      } catch (err) {
        if (this.stopped) break;
        if (isGone(err)) {
          this.options.log('info', `${this.options.resource}: resourceVersion expired (410 Gone), listing again`, { resourceVersion: this.resourceVersion });
          this.resourceVersion = undefined;
          continue;
        }
        this.options.health.failed(this.healthKey, { verb, resource: this.options.resource }, err);
      }
      await this.sleep(backoff);
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    }
  }

  private async relist(): Promise<void> {
    const { sink, list } = this.options;
    sink.relistBegin();
    let continueToken: string | undefined;
    let resourceVersion = '';
    let count = 0;
    do {
      const page = await list(this.options.pageSize ?? PAGE_SIZE, continueToken);
      if (this.stopped) return;
      for (const item of page.items) sink.upsert(item);
      count += page.items.length;
      continueToken = page.continueToken || undefined;
      resourceVersion = page.resourceVersion;
    } while (continueToken !== undefined);
    sink.relistEnd();
    this.resourceVersion = resourceVersion;
    this.syncedOnce = true;
    for (const resolve of this.syncWaiters.splice(0)) resolve();
    this.options.health.clear(this.healthKey);
    this.options.log('info', `${this.options.resource}: listed`, { count, resourceVersion });
  }

  /** Watches until the stream ends; true when it delivered events or lasted (resume at once). */
  private watchOnce(): Promise<boolean> {
    const started = Date.now();
    let events = 0;
    let failure: WatchEnded | undefined;
    return new Promise<boolean>((resolve, reject) => {
      let ended = false;
      const done = (err: unknown): void => {
        ended = true;
        this.abort = undefined;
        if (failure) reject(failure);
        else if (err && !this.stopped) reject(err);
        else resolve(events > 0 || Date.now() - started >= WATCH_MIN_HEALTHY_MS);
      };
      const onEvent = (type: string, object: unknown): void => {
        if (this.stopped || failure) return;
        if (type === 'ERROR') {
          const status = (object ?? {}) as { code?: number; message?: string };
          failure = new WatchEnded(status.code, status.message ?? 'watch error');
          this.abort?.abort();
          return;
        }
        const watched = object as T;
        const resourceVersion = watched?.metadata?.resourceVersion;
        if (resourceVersion === undefined) return;
        events += 1;
        if (type === 'ADDED' || type === 'MODIFIED') this.options.sink.upsert(watched);
        else if (type === 'DELETED') this.options.sink.remove(watched);
        // BOOKMARK: only the resourceVersion moves on.
        this.resourceVersion = resourceVersion;
      };
      const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
      this.options.watch
        .watch(this.options.watchPath, { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds }, onEvent, done)
        .then((controller) => {
          this.abort = controller;
          if (this.stopped || failure) controller.abort();
          // Connected (a refused watch has ended by now): an earlier failure is over.
          else if (!ended) this.options.health.clear(this.healthKey);
        }, reject);
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
