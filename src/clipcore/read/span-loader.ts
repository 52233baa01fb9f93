import { ByteLru } from './byte-lru.js';

/**
 * Loads numbered spans of a blob through a memory cache, so that concurrent readers of one span
 * share a single fetch and repeated reads of hot spans cost nothing. The fetch function is
 * responsible for verifying what it returns; only verified spans reach the cache.
 */
export class SpanLoader<K> {
  private readonly cache: ByteLru<K>;
  private readonly inflight = new Map<K, Promise<Buffer>>();

  constructor(
    private readonly fetchVerified: (key: K) => Promise<Buffer>,
    memoryBytes: number,
  ) {
    this.cache = new ByteLru<K>(memoryBytes);
  }

  load(key: K): Promise<Buffer> {
    const cached = this.cache.get(key);
    if (cached) return Promise.resolve(cached);
    const pending = this.inflight.get(key);
    if (pending) return pending;
    const promise = this.fetchVerified(key).then(
      (data) => {
        this.inflight.delete(key);
        this.cache.set(key, data);
        return data;
      },
      (err: unknown) => {
        this.inflight.delete(key);
        throw err;
      },
    );
    this.inflight.set(key, promise);
    return promise;
  }
}
