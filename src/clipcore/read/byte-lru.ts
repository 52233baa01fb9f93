/**
 * A least-recently-used map bounded by the total byte size of its values. Map iteration order
 * is insertion order, so re-inserting on access keeps the oldest entry first. `onChange` hears of
 * every value stored (with it) and every key evicted (with undefined).
 */
export class ByteLru<K> {
  private readonly items = new Map<K, Buffer>();
  private bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly onChange?: (key: K, value: Buffer | undefined) => void,
  ) {}

  get(key: K): Buffer | undefined {
    const value = this.items.get(key);
    if (value !== undefined) {
      this.items.delete(key);
      this.items.set(key, value);
    }
    return value;
  }

  /** Whether `key` is cached, without making it recently used. */
  has(key: K): boolean {
    return this.items.has(key);
  }

  set(key: K, value: Buffer): void {
    if (value.length > this.maxBytes) return;
    const previous = this.items.get(key);
    if (previous !== undefined) {
      this.items.delete(key);
      this.bytes -= previous.length;
    }
    this.items.set(key, value);
    this.bytes += value.length;
    this.onChange?.(key, value);
    for (const [oldest, oldValue] of this.items) {
      if (this.bytes <= this.maxBytes) break;
      this.items.delete(oldest);
      this.bytes -= oldValue.length;
      this.onChange?.(oldest, undefined);
    }
  }

  /** The entries, oldest first. */
  entries(): IterableIterator<[K, Buffer]> {
    return this.items.entries();
  }

  get size(): number {
    return this.bytes;
  }
}
