/** Starts index-process.ts and asks it to index: clip's in-process index times, away from the bench's own child processes. */
import type { CreateFromOCIImageResult } from '../src/clipcore/index.js';
import { forkHelper } from './helper-process.js';
import type { IndexReply, IndexRequest } from './index-process.js';

export interface Indexer {
  /** createFromOCIImage's wall time in the index process; the .clip is removed after. */
  index(imageRef: string, outputPath: string, concurrency?: number): Promise<{ ms: number; result: CreateFromOCIImageResult }>;
  /** The registry's own time for a one-layer image: the manifest, then the blob's first byte. */
  registryRoundTrips(imageRef: string): Promise<number>;
  close(): Promise<void>;
}

export async function startIndexer(): Promise<Indexer> {
  const { helper } = await forkHelper<{ type: 'ready' }, IndexRequest, IndexReply>(new URL('./index-process.js', import.meta.url), []);
  return {
    index: async (imageRef, outputPath, concurrency) => {
      const reply = await helper.ask({ type: 'index', imageRef, outputPath, ...(concurrency !== undefined && { concurrency }) });
      if (reply.type === 'failed') throw new Error(`indexing ${imageRef} failed: ${reply.message}`);
      if (reply.type !== 'indexed') throw new Error(`index process answered ${reply.type}`);
      return reply;
    },
    registryRoundTrips: async (imageRef) => {
      const reply = await helper.ask({ type: 'registry', imageRef });
      if (reply.type === 'failed') throw new Error(`registry round trips for ${imageRef} failed: ${reply.message}`);
      if (reply.type !== 'registry') throw new Error(`index process answered ${reply.type}`);
      return reply.ms;
    },
    close: () => helper.close({ type: 'close' }),
  };
}
