/**
 * Times createFromOCIImage in a process of its own that never starts a child process, as a
 * controller indexes. The bench's process cannot be that place: it spawns the `gzip | tar`
 * baselines, and fork() marks all of the parent's memory copy-on-write, so the next index in it
 * pays a page fault on each page it writes (tzdata: 115–135 ms right after spawning `true`
 * against 66–82 ms without, with 2,000–4,000 more minor faults per index).
 * Started by indexer.ts with fork(); one `index` request at a time.
 */
import { rm } from 'node:fs/promises';
import { createFromOCIImage, RegistryClient, type CreateFromOCIImageResult } from '../src/clipcore/index.js';
import { serveRequests } from './helper-process.js';
import { msSince } from './stats.js';

export type IndexRequest =
  | { readonly type: 'index'; readonly imageRef: string; readonly outputPath: string; readonly concurrency?: number }
  /** What the registry alone costs before a one-layer image's bytes flow (see registryRoundTrips). */
  | { readonly type: 'registry'; readonly imageRef: string }
  | { readonly type: 'close' };
export type IndexReply =
  | { readonly type: 'indexed'; readonly ms: number; readonly result: CreateFromOCIImageResult }
  | { readonly type: 'registry'; readonly ms: number }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'done' };

serveRequests<IndexRequest, IndexReply>(async (request) => {
  if (request.type === 'close') return { type: 'done' };
  try {
    if (request.type === 'registry') return { type: 'registry', ms: await registryRoundTrips(request.imageRef) };
    const { imageRef, outputPath, concurrency } = request;
    const started = process.hrtime.bigint();
    const result = await createFromOCIImage({ imageRef, outputPath, ...(concurrency !== undefined && { concurrency }) });
    const ms = msSince(started);
    await rm(outputPath, { force: true });
    return { type: 'indexed', ms, result };
  } catch (err) {
    return { type: 'failed', message: err instanceof Error ? err.message : String(err) };
  }
});
process.send?.({ type: 'ready' });

/**
 * The manifest, then the first byte of the layer blob, over a new connection as a fresh index
 * makes them. The baseline reads a local file and pays none of it, which bounds the ratio for
 * small layers.
 */
async function registryRoundTrips(imageRef: string): Promise<number> {
  const client = new RegistryClient({});
  try {
    const started = process.hrtime.bigint();
    const resolved = await client.resolveManifest(imageRef);
    const layer = resolved.manifest.layers[0];
    if (layer === undefined) throw new Error(`${imageRef} has no layer`);
    const blob = await client.openBlobStream(resolved, layer.digest);
    const ms = msSince(started);
    blob.stream.destroy();
    return ms;
  } finally {
    client.close();
  }
}
