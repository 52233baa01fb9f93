import { createHash, type Hash } from 'node:crypto';

/**
 * Appends file contents to a data blob, storing each distinct content once, and computes the
 * sha256 of every fixed-size span of the blob as it grows (the digests readers verify against).
 */
export class DataWriter {
  private length = 0;
  private readonly byDigest = new Map<string, number>();
  private readonly spanDigests: Buffer[] = [];
  private spanHash: Hash = createHash('sha256');
  private spanFill = 0;
  private readonly whole = createHash('sha256');

  constructor(
    private readonly sink: (chunk: Buffer) => Promise<void>,
    private readonly spanBytes: number,
  ) {}

  /** The blob offset of content with this digest, if already stored. */
  offsetOf(digest: Buffer): number | undefined {
    return this.byDigest.get(digest.toString('hex'));
  }

  /** Appends content known to be new; `chunks` must hash to `digest`. Returns its offset. */
  async append(digest: Buffer, chunks: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<number> {
    const offset = this.length;
    for await (const chunk of chunks) {
      await this.sink(chunk);
      this.length += chunk.length;
      this.whole.update(chunk);
      this.hashSpans(chunk);
    }
    this.byDigest.set(digest.toString('hex'), offset);
    return offset;
  }

  private hashSpans(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      const take = Math.min(chunk.length - at, this.spanBytes - this.spanFill);
      this.spanHash.update(chunk.subarray(at, at + take));
      this.spanFill += take;
      at += take;
      if (this.spanFill === this.spanBytes) this.closeSpan();
    }
  }

  private closeSpan(): void {
    this.spanDigests.push(this.spanHash.digest());
    this.spanHash = createHash('sha256');
    this.spanFill = 0;
  }

  finish(): { length: number; sha256: Buffer; spanDigests: Buffer } {
    if (this.spanFill > 0) this.closeSpan();
    return { length: this.length, sha256: this.whole.digest(), spanDigests: Buffer.concat(this.spanDigests) };
  }
}
