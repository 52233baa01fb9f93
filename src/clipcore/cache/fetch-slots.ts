/**
 * Bounds how many origin fetches (range requests) run at once. Slots nest: a mount's slots sit
 * under the node's (one process serves every mount of a node), so a fetch takes one of each.
 * Waiters a reader is blocked on go before read-ahead and prefetch.
 */
export class FetchSlots {
  private active = 0;
  private readonly urgent: Array<() => void> = [];
  private readonly background: Array<() => void> = [];

  constructor(
    readonly limit: number,
    private readonly parent?: FetchSlots,
  ) {}

  /** Runs `task` once a slot is free here and in every parent. */
  async run<T>(urgent: boolean, task: () => Promise<T>): Promise<T> {
    await this.acquire(urgent);
    try {
      return this.parent ? await this.parent.run(urgent, task) : await task();
    } finally {
      this.release();
    }
  }

  /** Fetches running now (for tests and metrics). */
  get inUse(): number {
    return this.active;
  }

  private acquire(urgent: boolean): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => (urgent ? this.urgent : this.background).push(resolve));
  }

  private release(): void {
    const next = this.urgent.shift() ?? this.background.shift();
    // The slot passes straight to the next waiter: `active` stays the same.
    if (next) next();
    else this.active--;
  }
}

/** Range requests in flight per node (process), across all its mounts. */
export const NODE_FETCH_SLOTS = new FetchSlots(32);
/** Range requests in flight per mount (archive reader). */
export const DEFAULT_MOUNT_FETCHES = 8;
