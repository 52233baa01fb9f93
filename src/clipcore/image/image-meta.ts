import { ArchiveFormatError } from '../errors.js';
import type { LayerCompression } from '../compression/index.js';
import type { Platform } from '../registry/index.js';

/** What an oci-mode archive records about its image (Meta.image). Never credentials. */
export interface ImageMeta {
  /** Registry host as contacted, e.g. `registry-1.docker.io` or `127.0.0.1:5000`. */
  readonly registry: string;
  readonly repository: string;
  /** The reference the archive was made from, as the user wrote it. */
  readonly reference: string;
  readonly manifestDigest: string;
  readonly manifestMediaType: string;
  /** Set when the reference named an image index / manifest list. */
  readonly indexDigest?: string;
  readonly platform: Platform;
  readonly layers: readonly LayerMeta[];
  readonly config: ImageConfigMeta;
}


export interface LayerMeta {
  readonly digest: string;
  readonly mediaType: string;
  readonly compression: LayerCompression;
  /** Blob size in bytes. */
  readonly size: number;
  readonly uncompressedSize: number;
}

export interface ImageConfigMeta {
  readonly digest: string;
  readonly env: readonly string[];
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  readonly user: string;
  readonly workingDir: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** Checks the shape of Meta.image as read from an archive. */
export function asImageMeta(value: unknown): ImageMeta {
  const image = value as Partial<ImageMeta> | undefined;
  const valid =
    typeof image === 'object' &&
    image !== null &&
    typeof image.registry === 'string' &&
    typeof image.repository === 'string' &&
    typeof image.manifestDigest === 'string' &&
    Array.isArray(image.layers) &&
    image.layers.every(
      (layer) =>
        typeof layer?.digest === 'string' &&
        ['gzip', 'zstd', 'none'].includes(layer.compression) &&
        Number.isSafeInteger(layer.size) &&
        Number.isSafeInteger(layer.uncompressedSize),
    );
  if (!valid) throw new ArchiveFormatError('CORRUPT', 'metadata: the image description of this oci archive is incomplete');
  return image as ImageMeta;
}
