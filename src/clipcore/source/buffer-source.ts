import type { ByteSource } from './byte-source.js';

/** A ByteSource over bytes already in memory (an archive downloaded whole, test data). */
export class BufferByteSource implements ByteSource {
  constructor(
    private readonly bytes: Buffer,
    readonly description = 'in-memory archive',
  ) {}

  async size(): Promise<number> {
    return this.bytes.length;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    return this.bytes.subarray(offset, Math.min(this.bytes.length, offset + length));
  }

  async close(): Promise<void> {}
}
