/** Media types the harness writes (kept apart from the product's constants on purpose). */
import type { Compression } from './tar-layer.js';

export type ManifestFormat = 'oci' | 'docker';

export const MT = {
  oci: {
    manifest: 'application/vnd.oci.image.manifest.v1+json',
    index: 'application/vnd.oci.image.index.v1+json',
    config: 'application/vnd.oci.image.config.v1+json',
    layer: { gzip: 'application/vnd.oci.image.layer.v1.tar+gzip', zstd: 'application/vnd.oci.image.layer.v1.tar+zstd', none: 'application/vnd.oci.image.layer.v1.tar' },
  },
  docker: {
    manifest: 'application/vnd.docker.distribution.manifest.v2+json',
    index: 'application/vnd.docker.distribution.manifest.list.v2+json',
    config: 'application/vnd.docker.container.image.v1+json',
    layer: { gzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip', zstd: 'application/vnd.oci.image.layer.v1.tar+zstd', none: 'application/vnd.docker.image.rootfs.diff.tar' },
  },
} as const;

export function layerMediaType(compression: Compression, format: ManifestFormat): string {
  return MT[format].layer[compression];
}
