import { createLayerIndexer, type LayerCompression } from '../compression/index.js';
import { ClipError } from '../errors.js';
import type { LayerEntry } from '../oci/layer-entry.js';
import { TarEntryParser } from '../oci/tar-entries.js';
import { RegistryClient, type RegistryClientOptions, type RegistrySession, type RepositoryLocation } from '../registry/index.js';
import { packLayerIndex, type PackedLayerIndex } from './layer-index-codec.js';

/** One layer to index in a worker. Holds credentials and tokens: never log it. */
export interface LayerJob {
  readonly registry: RegistryClientOptions;
  /** What the client that resolved the manifest learned, so that each layer does not learn it again. */
  readonly session?: RegistrySession;
  readonly repository: RepositoryLocation;
  readonly digest: string;
  readonly compression: LayerCompression;
  readonly spanBytes: number;
}

export interface IndexedLayer {
  readonly entries: LayerEntry[];
  readonly index: PackedLayerIndex;
}

/**
 * Streams one layer blob once: the compressed bytes feed the checkpointing decompressor, its
 * output feeds the tar parser. Memory stays bounded (the decompressor hands out 1 MiB pieces and
 * the blob stream is paused while they are parsed); nothing is written to disk.
 */
export async function indexLayer(job: LayerJob, onBytes: (compressedBytes: number) => void): Promise<IndexedLayer> {
  const client = new RegistryClient(job.session === undefined ? job.registry : { ...job.registry, session: job.session });
  try {
    const entries: LayerEntry[] = [];
    const parser = new TarEntryParser((entry) => entries.push(entry), { layer: job.digest });
    const indexer = createLayerIndexer(job.compression, job.spanBytes);
    const blob = await client.openBlobStream(job.repository, job.digest);
    for await (const chunk of blob.stream as AsyncIterable<Buffer>) {
      indexer.push(chunk);
      for (let piece = indexer.next(); piece !== null; piece = indexer.next()) parser.write(piece);
      onBytes(chunk.length);
    }
    const index = indexer.end();
    parser.end();
    return { entries, index: packLayerIndex(index) };
  } catch (err) {
    // Name the layer once: the tar parser and the blob stream may have named it already.
    if (err instanceof ClipError && !err.message.includes(job.digest)) {
      throw new ClipError(err.code, `layer ${job.digest}: ${err.message}`, { cause: err });
    }
    throw err;
  } finally {
    client.close();
  }
}
