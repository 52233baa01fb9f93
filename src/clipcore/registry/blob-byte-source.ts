/** A registry blob as a ByteSource, so archive readers can read .clip files stored as blobs. */
import type { ByteSource } from '../source/byte-source.js';
import type { RegistryClient, RepositoryLocator } from './client.js';

export class RegistryBlobSource implements ByteSource {
  readonly description: string;
  private sizePromise: Promise<number> | undefined;

  constructor(
    private readonly client: RegistryClient,
    private readonly repository: RepositoryLocator,
    private readonly digest: string,
  ) {
    const repo = typeof repository === 'string' ? repository : `${repository.registry}/${repository.repository}`;
    this.description = `registry blob ${repo}@${digest}`;
  }

  size(): Promise<number> {
    this.sizePromise ??= this.client.blobSize(this.repository, this.digest);
    this.sizePromise.catch(() => (this.sizePromise = undefined));
    return this.sizePromise;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const size = await this.size();
    const end = Math.min(offset + length, size);
    if (offset >= end) return Buffer.alloc(0);
    return this.client.fetchBlobRange(this.repository, this.digest, offset, end);
  }

  async close(): Promise<void> {
    // Connections belong to the client, which may serve other sources.
  }
}
