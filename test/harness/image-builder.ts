/**
 * Pushing test images (layers, config, manifest, index) to a registry, no Docker engine needed.
 * Uploads stream (see blob-upload.ts), so big layers never sit in memory.
 */
import type { Readable } from 'node:stream';
import { finishUpload, pushLayer, putManifest, scopeFor, sha256, startUpload, type LayerInput, type PushedLayer } from './blob-upload.js';
import { MT, type ManifestFormat } from './harness-media-types.js';
import { RegistryHttp, type RegistryEndpoint } from './registry-http.js';
import type { TarLayer } from './tar-layer.js';

export type { LayerInput, PushedLayer, RawLayer } from './blob-upload.js';
export { pushBlob } from './blob-upload.js';
export type { ManifestFormat } from './harness-media-types.js';

export interface HarnessPlatform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface PushImageOptions {
  mediaTypes?: ManifestFormat;
  /** The config's runtime section (Env, Cmd, Entrypoint, User, WorkingDir, Labels...). */
  config?: Record<string, unknown>;
  platform?: HarnessPlatform;
  /** Leave `mediaType` out of the manifest body (as some tools do); Content-Type still says it. */
  omitMediaType?: boolean;
  /** Replaces the whole config document (tests of odd configs). */
  rawConfig?: Record<string, unknown>;
}

export interface PushedImage {
  digest: string;
  mediaType: string;
  manifest: Buffer;
  configDigest: string;
  config: Buffer;
  layers: PushedLayer[];
}

export interface IndexEntry {
  platform: HarnessPlatform;
  manifestDigest: string;
}

/** Pushes layers, config and manifest; `tag` undefined pushes the manifest by digest only. */
export async function pushImageDetailed(
  registry: RegistryEndpoint,
  repo: string,
  tag: string | undefined,
  layers: readonly LayerInput[],
  options: PushImageOptions = {},
): Promise<PushedImage> {
  const format = options.mediaTypes ?? 'oci';
  const http = new RegistryHttp(registry);
  const pushed: PushedLayer[] = [];
  for (const layer of layers) pushed.push(await pushLayer(http, repo, layer, format));
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const config = Buffer.from(
    JSON.stringify(
      options.rawConfig ?? {
        ...platform,
        created: '2024-01-01T00:00:00Z',
        config: options.config ?? {},
        rootfs: { type: 'layers', diff_ids: pushed.map((l) => l.diffId) },
        history: pushed.map(() => ({ created: '2024-01-01T00:00:00Z', created_by: 'clip test harness' })),
      },
    ),
  );
  const configDigest = sha256(config);
  await finishUpload(http, repo, await startUpload(http, repo), configDigest, config);
  const mediaType = MT[format].manifest;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      ...(!options.omitMediaType && { mediaType }),
      config: { mediaType: MT[format].config, digest: configDigest, size: config.length },
      layers: pushed.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    }),
  );
  const digest = await putManifest(http, repo, tag ?? sha256(manifest), mediaType, manifest);
  return { digest, mediaType, manifest, configDigest, config, layers: pushed };
}

/** Pushes an image and returns its manifest digest. */
export async function pushImage(
  registry: RegistryEndpoint,
  repo: string,
  tag: string | undefined,
  layers: readonly LayerInput[],
  options: PushImageOptions = {},
): Promise<string> {
  return (await pushImageDetailed(registry, repo, tag, layers, options)).digest;
}

/** Pushes an OCI index or Docker manifest list over manifests already in `repo`; returns its digest. */
export async function pushIndex(
  registry: RegistryEndpoint,
  repo: string,
  tag: string,
  entries: readonly IndexEntry[],
  format: ManifestFormat = 'oci',
  options: { omitMediaType?: boolean } = {},
): Promise<string> {
  const http = new RegistryHttp(registry);
  const manifests = [];
  for (const entry of entries) {
    const head = await http.send('HEAD', `/v2/${repo}/manifests/${entry.manifestDigest}`, {
      scope: scopeFor(repo),
      headers: { accept: `${MT.oci.manifest}, ${MT.docker.manifest}` },
    });
    if (head.status !== 200) throw new Error(`manifest ${entry.manifestDigest} is not in ${repo} (${head.status})`);
    manifests.push({
      mediaType: String(head.headers['content-type']),
      digest: entry.manifestDigest,
      size: Number(head.headers['content-length']),
      platform: entry.platform,
    });
  }
  const mediaType = MT[format].index;
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, ...(!options.omitMediaType && { mediaType }), manifests }));
  return putManifest(http, repo, tag, mediaType, body);
}

/** The whole of a readable, for tests on small layers. */
export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** The uncompressed tar of a layer, in memory (small layers only). */
export function tarBytes(layer: TarLayer): Promise<Buffer> {
  return readAll(layer.open());
}

