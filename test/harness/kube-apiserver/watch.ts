/**
 * One open watch: a chunked HTTP response of JSON lines `{"type":...,"object":...}`. Lines are queued and written
 * in batches with backpressure, so a watch that starts with 50,000 ADDED events does not buffer them all at once.
 */
import type { ServerResponse } from 'node:http';
import type { JsonObject } from './json.js';
import type { Predicate } from './selectors.js';
import type { StoredEvent, Watcher } from './store.js';

const BATCH_BYTES = 64 * 1024;

/** Objects are immutable once stored, so one serialization serves every watcher. */
const serialized = new WeakMap<JsonObject, string>();
function json(obj: JsonObject): string {
  let text = serialized.get(obj);
  if (text === undefined) {
    text = JSON.stringify(obj);
    serialized.set(obj, text);
  }
  return text;
}

function line(type: string, object: JsonObject): string {
  return `{"type":"${type}","object":${json(object)}}\n`;
}

export interface WatchScope {
  kind: string;
  apiVersion: string;
  /** Objects the watch sees: its namespace and selectors. */
  matches: Predicate;
  bookmarks: boolean;
}

export class WatchStream implements Watcher {
  private readonly queue: string[] = [];
  private initial: Iterator<JsonObject> | undefined;
  private scheduled = false;
  private waiting = false;
  private closed = false;
  private endWhenFlushed = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly scope: WatchScope,
    private readonly onClose: (stream: WatchStream) => void,
  ) {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    res.on('close', () => this.close());
    res.on('error', () => this.close()); // a write to a vanished client must not crash the server
  }

  /** The current objects as ADDED events, ahead of anything queued later (a watch without a resourceVersion). */
  sendInitial(objects: Iterable<JsonObject>): void {
    this.initial = objects[Symbol.iterator]();
    this.schedule();
  }

  deliver(event: StoredEvent): void {
    const now = this.scope.matches(event.object);
    const before = event.previous !== undefined && this.scope.matches(event.previous);
    if (event.type === 'ADDED' && now) this.push(line('ADDED', event.object));
    else if (event.type === 'DELETED' && (before || now)) this.push(line('DELETED', event.object));
    else if (event.type === 'MODIFIED') {
      // As kube's watch cache: an object that starts or stops matching the selector is ADDED or DELETED.
      if (now && before) this.push(line('MODIFIED', event.object));
      else if (now) this.push(line('ADDED', event.object));
      else if (before) this.push(line('DELETED', event.object));
    }
  }

  bookmark(rv: number): void {
    if (!this.scope.bookmarks) return;
    const object = { kind: this.scope.kind, apiVersion: this.scope.apiVersion, metadata: { resourceVersion: String(rv) } };
    this.push(`{"type":"BOOKMARK","object":${JSON.stringify(object)}}\n`);
  }

  /** An ERROR event (e.g. 410 Expired), after which kube-apiserver ends the stream. */
  fail(status: JsonObject): void {
    this.push(`{"type":"ERROR","object":${JSON.stringify(status)}}\n`);
    this.end();
  }

  /** Ends the stream cleanly once everything queued is written (as a watch timeout does). */
  end(): void {
    this.endWhenFlushed = true;
    this.schedule();
  }

  /** Drops the connection without a proper end, as a broken network or a restarted API server would. */
  reset(): void {
    this.res.socket?.destroy();
    this.close();
  }

  private push(text: string): void {
    if (this.closed) return;
    if (text !== '') this.queue.push(text);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.waiting || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private nextBatch(): string {
    let batch = '';
    while (batch.length < BATCH_BYTES && this.initial !== undefined) {
      const next = this.initial.next();
      if (next.done === true) this.initial = undefined;
      else if (this.scope.matches(next.value)) batch += line('ADDED', next.value);
    }
    if (this.initial !== undefined) return batch;
    let taken = 0;
    while (batch.length < BATCH_BYTES && taken < this.queue.length) batch += this.queue[taken++];
    this.queue.splice(0, taken);
    return batch;
  }

  private pump(): void {
    while (!this.closed && !this.waiting) {
      const batch = this.nextBatch();
      if (batch === '') {
        if (this.endWhenFlushed) {
          this.res.end();
          this.close();
        }
        return;
      }
      if (!this.res.write(batch)) {
        this.waiting = true;
        this.res.once('drain', () => {
          this.waiting = false;
          this.pump();
        });
      }
    }
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.initial = undefined;
    this.onClose(this);
  }
}
