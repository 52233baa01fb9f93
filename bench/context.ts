/** What every measurement gets: options, where to record, the registry path and the pushed images. */
import type { RegistryHandle } from '../test/harness/registry.js';
import type { Containerd } from './containerd.js';
import type { FullPull } from './full-pull.js';
import type { BenchOptions } from './options.js';
import type { Proxies } from './proxies.js';
import type { BenchImage, CachedLayer } from './images.js';
import type { Results } from './results.js';

export interface PushedBenchImage {
  readonly image: BenchImage;
  /** Reference through the proxies (`127.0.0.1:PORT/repo:tag`): what clip and skopeo use. */
  readonly ref: string;
  readonly digest: string;
  /** Where an index of it (default settings) was written during setup. */
  readonly clipPath: string;
}

export interface PushedLayerImage {
  readonly layer: CachedLayer;
  readonly ref: string;
}

export interface BenchContext {
  readonly options: BenchOptions;
  readonly results: Results;
  /** Scratch directory of this run (indexes, skopeo layouts, bundles, mount points). */
  readonly workDir: string;
  readonly registry: RegistryHandle;
  readonly proxies: Proxies;
  readonly debian: PushedBenchImage;
  /** Each layer of the debian image and the synthetic layer as a one-layer image. */
  readonly layerImages: readonly PushedLayerImage[];
  readonly synthetic: PushedBenchImage;
  /** One layer holding one mostly-text file (the Go sources one after another), and its local copy. */
  readonly text: PushedBenchImage & { readonly file: { readonly path: string; readonly localPath: string; readonly size: number } };
  /** The debian image with three more package layers (13): a fresh `clip index` of many layers. Absent without apt. */
  readonly many?: { readonly image: BenchImage; readonly ref: string };
  /**
   * The python image (bench/python-image.ts), pushed and indexed when `python` is measured; or why
   * it could not be built (unavailable: no apt, no root) or what broke while building it (failed).
   */
  readonly python?: PushedBenchImage | { readonly unavailable: string } | { readonly failed: string };
  /** A containerd of this run, for a real runtime's pull (absent when not installed). */
  readonly containerd: Containerd | undefined;
  /** Figures one measurement leaves for another's comparison. */
  readonly shared: { fullPulls: FullPull[] };
}
