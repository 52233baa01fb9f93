import { createLayerIndexer, type LayerCompression } from '../compression/index.js';
import { ClipError } from '../errors.js';
import type { LayerEntry } from '../oci/layer-entry.js';
import { TarEntryParser } from '../oci/tar-entries.js';
import type { RegistryClientOptions, RegistrySession, RepositoryLocation } from '../registry/index.js';
import { leaseKeptClient } from './kept-client.js';
import { packLayerIndex, type PackedLayerIndex } from './layer-index-codec.js';

/** One layer to index in a worker. Holds credentials and tokens: never log it. */
export interface LayerJob {
  readonly registry: RegistryClientOptions;
  /** What the client that resolved the manifest learned, so that each layer does not learn it again. */
  readonly session: RegistrySession;
  readonly repository: RepositoryLocation;
  readonly digest: string;
  readonly compression: LayerCompression;
  readonly spanBytes: number;
}

/** What indexing a layer reports as it goes. */
export interface LayerProgress {
  onBytes(compressedBytes: number): void;
  /** The layer's entries in tar order, a batch at a time, all of them before indexLayer returns. */
  onEntries(entries: LayerEntry[]): void;
}

/**
 * Entries per batch: big enough that posting a batch between threads costs little, small enough
 * that the main thread merges while the layer is still being read.
 */
const ENTRY_BATCH = 256;

/**
 * Streams one layer blob once: the compressed bytes feed the checkpointing decompressor, its
 * output feeds the tar parser. Memory stays bounded (the decompressor hands out 1 MiB pieces and
 * the blob stream is paused while they are parsed); nothing is written to disk.
 */
export async function indexLayer(job: LayerJob, progress: LayerProgress): Promise<PackedLayerIndex> {
  // Consecutive layers share the thread's client: one connection, one TCP and TLS handshake.
  const lease = leaseKeptClient(job.registry, job.session);
  const client = lease.client;
  let failed = true;
  try {
    let batch: LayerEntry[] = [];
    const parser = new TarEntryParser((entry) => batch.push(entry), { layer: job.digest });
    const flush = (): void => {
      if (batch.length > 0) progress.onEntries(batch);
      batch = [];
    };
    const indexer = createLayerIndexer(job.compression, job.spanBytes);
    const blob = await client.openBlobStream(job.repository, job.digest);
    for await (const chunk of blob.stream as AsyncIterable<Buffer>) {
      indexer.push(chunk);
      for (let piece = indexer.next(); piece !== null; piece = indexer.next()) parser.write(piece);
      progress.onBytes(chunk.length);
      if (batch.length >= ENTRY_BATCH) flush();
    }
    const index = indexer.end();
    parser.end();
    flush();
    failed = false;
    return packLayerIndex(index);
  } catch (err) {
    // Name the layer once: the tar parser and the blob stream may have named it already.
    if (err instanceof ClipError && !err.message.includes(job.digest)) {
      throw new ClipError(err.code, `layer ${job.digest}: ${err.message}`, { cause: err });
    }
    throw err;
  } finally {
    lease.release(failed);
  }
}
