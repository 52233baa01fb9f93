/** At most N calls at once; the others wait their turn (so a relist of 50,000 pods is no burst). */
export class Limiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly max: number) {}

  async run<T>(call: () => Promise<T>): Promise<T> {
    if (this.running >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running += 1;
    try {
      return await call();
    } finally {
      this.running -= 1;
      this.waiting.shift()?.();
    }
  }
}
