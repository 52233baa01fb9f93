import { SectionKind } from '../archive/format.js';
import type { ArchiveIndex } from '../archive/archive-index.js';
import type { Inode } from '../archive/model.js';
import { readUncompressedRange, type Checkpoint } from '../compression/index.js';
import { ArchiveFormatError } from '../errors.js';
import { clampRead, type ContentReader } from '../read/content-reader.js';
import { SpanLoader } from '../read/span-loader.js';
import { asImageMeta, type ImageMeta } from './image-meta.js';
import { decodeLayerIndexes, inflateWindow, type StoredLayerIndex } from './layer-index-codec.js';

/** Fetches bytes [start, end) of a layer blob from wherever it lives (the registry). */
export type LayerBlobFetcher = (layerDigest: string, start: number, end: number) => Promise<Buffer>;

/** Decompressed spans kept in memory; the disk cache comes with the production read path. */
const DEFAULT_MEMORY_BYTES = 256 * 1024 * 1024;

/**
 * OCI mode: a file's bytes are a range of one layer's uncompressed tar stream. A read loads the
 * layer spans covering it: the compressed span is fetched and verified, its checkpoint window
 * fetched from the archive, and the span inflated from that checkpoint, never from the layer
 * start. Whole decompressed spans are cached, so sequential reads inflate each span once.
 */
export class OciContent implements ContentReader {
  private readonly spans: SpanLoader<string>;

  private constructor(
    private readonly index: ArchiveIndex,
    readonly image: ImageMeta,
    private readonly layers: readonly StoredLayerIndex[],
    private readonly fetchBlob: LayerBlobFetcher,
    memoryBytes: number,
  ) {
    this.spans = new SpanLoader((key) => this.loadSpan(key), memoryBytes);
  }

  static async open(index: ArchiveIndex, fetchBlob: LayerBlobFetcher, memoryBytes = DEFAULT_MEMORY_BYTES): Promise<OciContent> {
    const image = asImageMeta(index.meta.image);
    const windowsLength = index.section(SectionKind.Windows)?.length ?? 0;
    const layers = decodeLayerIndexes(await index.readSection(SectionKind.LayerIndex), image.layers.length, windowsLength);
    return new OciContent(index, image, layers, fetchBlob, memoryBytes);
  }

  async read(inode: Inode, offset: number, length: number): Promise<Buffer> {
    const { start, end } = clampRead(inode, offset, length);
    if (end === start) return Buffer.alloc(0);
    const location = inode.location;
    const layer = location ? this.layers[location.layer] : undefined;
    if (!location || !layer) throw new ArchiveFormatError('CORRUPT', 'a regular file has no valid layer location');
    const from = location.offset + start;
    const to = location.offset + end;
    if (to > layer.uncompressedSize) throw new ArchiveFormatError('OUT_OF_RANGE', `a file extends past the end of layer ${location.layer}`);
    const parts: Buffer[] = [];
    for (let span = spanContaining(layer, from); span < layer.spans.length; span++) {
      const bounds = layer.spans[span] as StoredLayerIndex['spans'][number];
      if (bounds.uncompressedStart >= to) break;
      const data = await this.spans.load(`${location.layer}:${span}`);
      parts.push(data.subarray(Math.max(0, from - bounds.uncompressedStart), Math.min(data.length, to - bounds.uncompressedStart)));
    }
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  }

  private async loadSpan(key: string): Promise<Buffer> {
    const [layerNumber, spanNumber] = key.split(':').map(Number) as [number, number];
    const layer = this.layers[layerNumber] as StoredLayerIndex;
    const stored = layer.checkpoints[spanNumber];
    const span = layer.spans[spanNumber];
    if (!stored || !span) throw new ArchiveFormatError('CORRUPT', `layer ${layerNumber} has no span ${spanNumber}`);
    const window = stored.windowLength === 0
      ? Buffer.alloc(0)
      : inflateWindow(await this.readWindow(stored.windowOffset, stored.windowLength));
    const checkpoint: Checkpoint = { ...stored, window };
    const digest = (this.image.layers[layerNumber] as ImageMeta['layers'][number]).digest;
    // A one-span view of the layer index: the range plan then selects exactly this span.
    const checkpoints: Checkpoint[] = [];
    checkpoints[spanNumber] = checkpoint;
    return readUncompressedRange(
      layer.kind,
      { checkpoints, spans: layer.spans },
      (start, end) => this.fetchBlob(digest, start, end),
      span.uncompressedStart,
      span.uncompressedEnd,
    );
  }

  private async readWindow(offset: number, length: number): Promise<Buffer> {
    const section = this.index.section(SectionKind.Windows);
    if (!section) throw new ArchiveFormatError('CORRUPT', 'the archive has checkpoint windows but no Windows section');
    const bytes = await this.index.source.read(section.offset + offset, length);
    if (bytes.length !== length) throw new ArchiveFormatError('TRUNCATED', 'a checkpoint window is cut short');
    return bytes;
  }

  async close(): Promise<void> {}
}

function spanContaining(layer: StoredLayerIndex, offset: number): number {
  let low = 0;
  let high = layer.spans.length - 1;
  while (low < high) {
    const middle = (low + high + 1) >>> 1;
    if ((layer.spans[middle] as StoredLayerIndex['spans'][number]).uncompressedStart <= offset) low = middle;
    else high = middle - 1;
  }
  return low;
}
