/**
 * Objects of one resource type, the bounded history of their changes, and the watchers to tell. Stored objects are
 * never mutated (every change stores a new object), so list pages and watch snapshots can hold references.
 */
import { isObject, type JsonObject } from './json.js';
import type { ResourceType } from './resources.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoredEvent {
  type: EventType;
  object: JsonObject;
  /** The object before a MODIFIED or DELETED, for watchers whose selector it stops (or starts) matching. */
  previous?: JsonObject;
  rv: number;
}

export interface Watcher {
  deliver(event: StoredEvent): void;
}

/** The one resourceVersion counter of the server, as etcd's revision is. */
export class RvClock {
  private rv = 1;
  next(): number {
    return ++this.rv;
  }
  current(): number {
    return this.rv;
  }
}

export function metaOf(obj: JsonObject): JsonObject {
  return isObject(obj.metadata) ? obj.metadata : {};
}

export function keyOf(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export function objectKey(obj: JsonObject): string {
  const meta = metaOf(obj);
  return keyOf(typeof meta.namespace === 'string' ? meta.namespace : '', typeof meta.name === 'string' ? meta.name : '');
}

export class Store {
  private readonly objects = new Map<string, JsonObject>();
  private sorted: string[] | undefined;
  private history: StoredEvent[] = [];
  /** Events at or below this resourceVersion are gone: a watch from an older one gets 410 Expired. */
  compactedRv: number;
  readonly watchers = new Set<Watcher>();

  constructor(
    readonly type: ResourceType,
    private readonly historySize: number,
    startRv: number,
  ) {
    this.compactedRv = startRv;
  }

  get(namespace: string, name: string): JsonObject | undefined {
    return this.objects.get(keyOf(namespace, name));
  }

  get size(): number {
    return this.objects.size;
  }

  /** Keys in etcd's order (namespace, then name), cached until an object is added or removed. */
  keys(): string[] {
    this.sorted ??= [...this.objects.keys()].sort();
    return this.sorted;
  }

  byKey(key: string): JsonObject | undefined {
    return this.objects.get(key);
  }

  /** Stores an object whose metadata.resourceVersion is `rv`, records the event and tells the watchers. */
  put(obj: JsonObject, rv: number): void {
    const key = objectKey(obj);
    const previous = this.objects.get(key);
    if (previous === undefined) this.sorted = undefined;
    this.objects.set(key, obj);
    this.record({ type: previous === undefined ? 'ADDED' : 'MODIFIED', object: obj, previous, rv });
  }

  /** Removes an object; `last` is what the DELETED event carries (with a new resourceVersion, as kube does). */
  remove(last: JsonObject, rv: number): void {
    const key = objectKey(last);
    const previous = this.objects.get(key);
    if (previous === undefined) return;
    this.objects.delete(key);
    this.sorted = undefined;
    this.record({ type: 'DELETED', object: last, previous, rv });
  }

  private record(event: StoredEvent): void {
    this.history.push(event);
    // Trim in batches so that a long run of writes costs O(1) each.
    if (this.history.length > this.historySize * 1.25) {
      const drop = this.history.length - this.historySize;
      this.compactedRv = this.history[drop - 1]?.rv ?? this.compactedRv;
      this.history = this.history.slice(drop);
    }
    for (const w of this.watchers) w.deliver(event);
  }

  /** Events after `rv`, or undefined when history no longer reaches back that far. */
  eventsSince(rv: number): StoredEvent[] | undefined {
    if (rv < this.compactedRv) return undefined;
    let lo = 0;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.history[mid]?.rv ?? 0) <= rv) lo = mid + 1;
      else hi = mid;
    }
    return this.history.slice(lo);
  }

  compact(rv: number): void {
    this.history = this.history.filter((e) => e.rv > rv);
    this.compactedRv = Math.max(this.compactedRv, rv);
  }
}
