import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { ArchiveFormatError } from '../errors.js';
import { ByteReader, ByteWriter } from '../archive/bytes.js';
import type { Checkpoint, CompressedSpan, LayerCompression, LayerIndex } from '../compression/index.js';

/**
 * The LayerIndex and Windows sections of an oci archive.
 *
 * LayerIndex (Brotli-compressed as a section) holds, per layer, every checkpoint without its
 * window, and every compressed span with its sha256. Windows holds each checkpoint's 32 KiB
 * window, deflated on its own, so that a read fetches just the one window it needs.
 */

const KINDS: readonly LayerCompression[] = ['gzip', 'zstd', 'none'];
export const MAX_WINDOW_BYTES = 32 * 1024;

export interface StoredCheckpoint {
  readonly compressedOffset: number;
  readonly bits: number;
  readonly uncompressedOffset: number;
  /** Where the deflated window is in the Windows section; length 0 means no window. */
  readonly windowOffset: number;
  readonly windowLength: number;
}

export interface StoredLayerIndex {
  readonly kind: LayerCompression;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  readonly checkpoints: readonly StoredCheckpoint[];
  readonly spans: readonly CompressedSpan[];
}

/** A checkpoint whose window is already deflated, as the Windows section stores it. */
export type PackedCheckpoint = Omit<Checkpoint, 'window'> & { readonly deflatedWindow: Buffer };

export type PackedLayerIndex = Omit<LayerIndex, 'checkpoints'> & { readonly checkpoints: readonly PackedCheckpoint[] };

/**
 * Deflates a layer's windows; the layer's indexing worker does this, in parallel with the other
 * layers, once the layer is read: its time adds to the layer's. Level 1: on the bench's layers,
 * level 6 took 1.9 times as long for windows 2 % smaller (8 % on the Debian ones, whose windows
 * grew from 1.33 to 1.45 MiB; level 9: 2.5 times level 6's time for 0.7 % less), and a read
 * fetches one window of about 32 KiB.
 */
export function packLayerIndex(index: LayerIndex): PackedLayerIndex {
  const checkpoints = index.checkpoints.map(({ window, ...checkpoint }) => ({
    ...checkpoint,
    deflatedWindow: window.length > 0 ? deflateRawSync(window, { level: 1 }) : Buffer.alloc(0),
  }));
  return { ...index, checkpoints };
}

export function encodeLayerIndexes(layers: readonly PackedLayerIndex[]): { layerIndex: Buffer; windows: Buffer } {
  const out = new ByteWriter();
  const windows: Buffer[] = [];
  let windowBytes = 0;
  out.varint(layers.length);
  for (const layer of layers) {
    out.u8(KINDS.indexOf(layer.kind));
    out.varint(layer.compressedSize);
    out.varint(layer.uncompressedSize);
    out.varint(layer.checkpoints.length);
    for (const checkpoint of layer.checkpoints) {
      const window = checkpoint.deflatedWindow;
      out.varint(checkpoint.compressedOffset);
      out.u8(checkpoint.bits);
      out.varint(checkpoint.uncompressedOffset);
      out.varint(windowBytes);
      out.varint(window.length);
      windows.push(window);
      windowBytes += window.length;
    }
    out.varint(layer.spans.length);
    for (const span of layer.spans) {
      out.varint(span.compressedStart);
      out.varint(span.compressedEnd);
      out.varint(span.uncompressedStart);
      out.varint(span.uncompressedEnd);
      out.raw(span.sha256);
    }
  }
  return { layerIndex: out.finish(), windows: Buffer.concat(windows) };
}

/** Decodes and checks the LayerIndex section against the layer count and the Windows size. */
export function decodeLayerIndexes(data: Buffer, layerCount: number, windowsLength: number): StoredLayerIndex[] {
  const input = new ByteReader(data, 'layer index');
  const count = input.varint();
  if (count !== layerCount) throw corrupt(`${count} layers indexed, the image has ${layerCount}`);
  const layers: StoredLayerIndex[] = [];
  for (let l = 0; l < count; l++) {
    const kind = KINDS[input.u8()];
    if (kind === undefined) throw corrupt(`layer ${l} has an unknown compression`);
    const compressedSize = input.varint();
    const uncompressedSize = input.varint();
    const checkpoints: StoredCheckpoint[] = [];
    const checkpointCount = input.count(5);
    for (let c = 0; c < checkpointCount; c++) {
      const checkpoint = {
        compressedOffset: input.varint(),
        bits: input.u8(),
        uncompressedOffset: input.varint(),
        windowOffset: input.varint(),
        windowLength: input.varint(),
      };
      if (checkpoint.bits > 7 || checkpoint.windowOffset + checkpoint.windowLength > windowsLength) {
        throw corrupt(`layer ${l} checkpoint ${c} is out of range`);
      }
      checkpoints.push(checkpoint);
    }
    const spans: CompressedSpan[] = [];
    const spanCount = input.count(36);
    if (spanCount !== checkpointCount) throw corrupt(`layer ${l} has ${spanCount} spans for ${checkpointCount} checkpoints`);
    let expectedStart = 0;
    for (let s = 0; s < spanCount; s++) {
      const span = {
        compressedStart: input.varint(),
        compressedEnd: input.varint(),
        uncompressedStart: input.varint(),
        uncompressedEnd: input.varint(),
        sha256: input.raw(32),
      };
      if (span.uncompressedStart !== expectedStart || span.uncompressedEnd < span.uncompressedStart ||
          span.compressedEnd < span.compressedStart || span.compressedEnd > compressedSize) {
        throw corrupt(`layer ${l} span ${s} is inconsistent`);
      }
      expectedStart = span.uncompressedEnd;
      spans.push(span);
    }
    if (expectedStart !== uncompressedSize) throw corrupt(`layer ${l} spans cover ${expectedStart} of ${uncompressedSize} bytes`);
    layers.push({ kind, compressedSize, uncompressedSize, checkpoints, spans });
  }
  input.expectEnd();
  return layers;
}

export function inflateWindow(deflated: Buffer): Buffer {
  try {
    return inflateRawSync(deflated, { maxOutputLength: MAX_WINDOW_BYTES });
  } catch (err) {
    throw new ArchiveFormatError('CORRUPT', 'a checkpoint window does not decompress', { cause: err });
  }
}

function corrupt(message: string): ArchiveFormatError {
  return new ArchiveFormatError('CORRUPT', `layer index: ${message}`);
}
