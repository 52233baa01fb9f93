/** Media types the client understands; the registry's `Content-Type` decides which one a manifest is. */
export const MediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

export type ManifestKind = 'manifest' | 'index';

const KINDS: Readonly<Record<string, ManifestKind>> = {
  [MediaTypes.ociManifest]: 'manifest',
  [MediaTypes.dockerManifest]: 'manifest',
  [MediaTypes.ociIndex]: 'index',
  [MediaTypes.dockerManifestList]: 'index',
};

/** Sent as `Accept` so registries never down-convert to schema 1. */
export const MANIFEST_ACCEPT = [
  MediaTypes.ociIndex,
  MediaTypes.dockerManifestList,
  MediaTypes.ociManifest,
  MediaTypes.dockerManifest,
].join(', ');

export function manifestKind(mediaType: string): ManifestKind | undefined {
  return KINDS[mediaType];
}

/** `Content-Type` without parameters (`; charset=utf-8`) and in lowercase. */
export function bareMediaType(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return undefined;
  const bare = contentType.split(';')[0]?.trim().toLowerCase();
  return bare === '' ? undefined : bare;
}
