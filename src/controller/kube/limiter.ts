/** At most N calls at once; the others wait their turn, first come first served (a relist of 50,000 pods is no burst). */
export class Limiter {
  private running = 0;
  /** A queue with a moving head: shift() on an array of 50,000 is a copy each time. */
  private waiting: Array<() => void> = [];
  private head = 0;

  constructor(private readonly max: number) {}

  async run<T>(call: () => Promise<T>): Promise<T> {
    // A finished call hands its slot straight to the next waiter.
    if (this.running >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running += 1;
    try {
      return await call();
    } finally {
      this.release();
    }
  }

  private release(): void {
    if (this.head >= this.waiting.length) {
      this.running -= 1;
      this.waiting = [];
      this.head = 0;
      return;
    }
    const wake = this.waiting[this.head];
    this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting = this.waiting.slice(this.head);
      this.head = 0;
    }
    wake?.();
  }
}
