import type { Toc } from '../archive/model.js';
import type { LayerEntry } from './layer-entry.js';
import { OverlayMerger } from './overlay.js';

/**
 * Merges layers whose entries arrive in pieces while the layers are indexed in parallel, to the
 * same Toc as OverlayMerger given each whole layer in turn. The bottom layer is applied as its entries arrive, so that most of
 * the merge of a one-layer image overlaps its indexing. A layer above is applied once it and
 * every layer below it are complete: its whiteouts must act before its entries, and they may
 * come last in its tar.
 */
export class IncrementalMerge {
  private merger = new OverlayMerger();
  private readonly received: LayerEntry[][];
  private readonly complete: boolean[];
  /** Layers applied in full, bottom first. */
  private applied = 0;
  /** Whether the bottom layer is being applied as it arrives (until an opaque marker in it). */
  private streaming = true;

  constructor(private readonly layerCount: number) {
    this.received = Array.from({ length: layerCount }, () => []);
    this.complete = new Array<boolean>(layerCount).fill(false);
  }

  /** More entries of `layer`, in its tar order. */
  add(layer: number, entries: readonly LayerEntry[]): void {
    const received = this.received[layer];
    if (received === undefined || this.complete[layer]) throw new Error(`internal: entries for layer ${layer} after it ended`);
    for (const entry of entries) received.push(entry);
    if (layer === 0 && this.streaming && !this.merger.streamBottomLayer(entries)) {
      // Start over: the bottom layer is applied whole when it ends, from what was received.
      this.streaming = false;
      this.merger = new OverlayMerger();
    }
  }

  /** `layer` has no more entries. */
  end(layer: number): void {
    this.complete[layer] = true;
    while (this.applied < this.layerCount && this.complete[this.applied]) {
      if (this.applied === 0 && this.streaming) this.merger.endBottomLayer();
      else this.merger.addLayer(this.received[this.applied] as LayerEntry[]);
      // The merged tree holds what it needs; the entry list can go.
      this.received[this.applied] = [];
      this.applied++;
    }
  }

  build(): Toc {
    if (this.applied !== this.layerCount) throw new Error(`internal: ${this.layerCount - this.applied} layers have not ended`);
    return this.merger.build();
  }
}
