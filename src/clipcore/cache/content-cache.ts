/**
 * A pluggable content store, as in the original Go library (`GetContent(hash, offset, length)` /
 * `StoreContent(chunks, hash)`): bytes addressed by a hash. The node-local DiskCache is one
 * implementation; a cluster-wide cache (a cache service, a shared volume) is another.
 *
 * The read path uses a ContentCache passed as `contentCache` as its "shared" tier, between the
 * node-local disk cache and the origin. It stores there exactly the bytes the archive's index has
 * digests for (a compressed layer span in oci mode, a data span in local and s3 modes), under the
 * hex sha256 of those bytes, and checks what it gets back against the index as it checks origin
 * bytes: a shared cache can be slow or empty, never a source of wrong bytes.
 */
export interface ContentCache {
  /**
   * Bytes [offset, offset + length) of the content stored under `hash`, or undefined when the
   * cache does not have them. Never a partial answer. May reject on a transport failure; the read
   * path then goes on to the origin.
   */
  getContent(hash: string, offset: number, length: number): Promise<Buffer | undefined>;
  /**
   * Stores content (the concatenation of `chunks`) under `hash`. Resolves true once stored (or if
   * already present), false when the cache declined (full, too big, busy). The read path never
   * waits for it before answering a read.
   */
  storeContent(chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, hash: string): Promise<boolean>;
}

/** Joins chunks into one Buffer (no copy for a single Buffer chunk). */
export async function collectChunks(chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of chunks) parts.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}
