import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';

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

  private constructor(
    private readonly file: FileHandle,
    readonly path: string,
    private readonly spanBytes: number,
  ) {}

  static async create(path: string, spanBytes: number): Promise<DataWriter> {
    return new DataWriter(await open(path, 'wx'), path, spanBytes);
  }

  /** The blob offset of content with this digest, if already stored. */
  offsetOf(digest: Buffer): number | undefined {
    return this.byDigest.get(digest.toString('hex'));
  }

  /** Appends content known to be new; `chunks` must hash to `digest`. Returns its offset. */
  async append(digest: Buffer, chunks: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<number> {
    const offset = this.length;
    for await (const chunk of chunks) {
      await this.file.write(chunk, 0, chunk.length, this.length);
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

  async finish(): Promise<{ length: number; sha256: Buffer; spanDigests: Buffer }> {
    if (this.spanFill > 0) this.closeSpan();
    await this.file.close();
    return { length: this.length, sha256: this.whole.digest(), spanDigests: Buffer.concat(this.spanDigests) };
  }

  async abandon(): Promise<void> {
    await this.file.close().catch(() => undefined);
  }
}
