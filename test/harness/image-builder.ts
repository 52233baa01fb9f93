/**
 * Pushing test images through the Distribution API, no Docker engine needed. Layers stream:
 * tar → (hash of the tar = diff_id) → compressor → (hash = digest) → chunked PATCH upload, then
 * `PUT ?digest=` closes the upload, so a layer of hundreds of MiB is never held in memory.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { compressor } from './compress.js';
import { RegistryHttp, type RegistryEndpoint } from './registry-http.js';
import type { Compression, TarLayer } from './tar-layer.js';

export type ManifestFormat = 'oci' | 'docker';

export interface HarnessPlatform {
  os: string;
  architecture: string;
  variant?: string;
}

/** A layer given as finished bytes (for deliberately odd blobs), with the media type to declare. */
export interface RawLayer {
  kind: 'raw';
  data: Buffer;
  mediaType: string;
  /** diff_id for the config; defaults to the digest of `data` (right when it is uncompressed). */
  diffId?: string;
}

export type LayerInput = TarLayer | RawLayer;

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

export interface PushedLayer {
  digest: string;
  size: number;
  diffId: string;
  mediaType: string;
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

const MT = {
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

const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Hashes and counts bytes passing through. */
class Tap extends Transform {
  readonly hash: Hash = createHash('sha256');
  size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    done(null, chunk);
  }
}

const scopeFor = (repo: string): string => `repository:${repo}:pull,push`;

async function startUpload(http: RegistryHttp, repo: string): Promise<string> {
  const res = await http.send('POST', `/v2/${repo}/blobs/uploads/`, { scope: scopeFor(repo) });
  const location = res.headers['location'];
  if (res.status !== 202 || location === undefined) throw new Error(`upload start for ${repo} answered ${res.status}: ${res.body.toString()}`);
  return location;
}

async function finishUpload(http: RegistryHttp, repo: string, location: string, digest: string, body?: Buffer): Promise<void> {
  const url = new URL(location, 'http://placeholder');
  url.searchParams.set('digest', digest);
  const target = location.includes('://') ? url.href : `${url.pathname}${url.search}`;
  const res = await http.send('PUT', target, {
    scope: scopeFor(repo),
    headers: { 'content-type': 'application/octet-stream' },
    ...(body !== undefined && { body }),
  });
  if (res.status !== 201) throw new Error(`upload of ${digest} to ${repo} answered ${res.status}: ${res.body.toString()}`);
}

/** Monolithic upload of a small blob (POST, then PUT with the body and `?digest=`). */
export async function pushBlob(registry: RegistryEndpoint, repo: string, data: Buffer): Promise<string> {
  const http = new RegistryHttp(registry);
  const digest = sha256(data);
  await finishUpload(http, repo, await startUpload(http, repo), digest, data);
  return digest;
}

async function pushLayer(http: RegistryHttp, repo: string, layer: LayerInput, format: ManifestFormat): Promise<PushedLayer> {
  if (layer.kind === 'raw') {
    const digest = sha256(layer.data);
    await finishUpload(http, repo, await startUpload(http, repo), digest, layer.data);
    return { digest, size: layer.data.length, diffId: layer.diffId ?? digest, mediaType: layer.mediaType };
  }
  const location = await startUpload(http, repo);
  const tarTap = new Tap();
  const blobTap = new Tap();
  const body = new Transform({ transform: (chunk: Buffer, _e, done) => done(null, chunk) });
  const patch = http.send('PATCH', location, {
    scope: scopeFor(repo),
    headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
    body,
  });
  await pipeline(layer.open(), tarTap, compressor(layer.compression), blobTap, body);
  const res = await patch;
  const next = res.headers['location'];
  if (res.status !== 202 || next === undefined) throw new Error(`layer upload to ${repo} answered ${res.status}: ${res.body.toString()}`);
  const digest = `sha256:${blobTap.hash.digest('hex')}`;
  await finishUpload(http, repo, next, digest);
  return { digest, size: blobTap.size, diffId: `sha256:${tarTap.hash.digest('hex')}`, mediaType: layerMediaType(layer.compression, format) };
}

function layerMediaType(compression: Compression, format: ManifestFormat): string {
  return MT[format].layer[compression];
}

async function putManifest(http: RegistryHttp, repo: string, reference: string, mediaType: string, body: Buffer): Promise<string> {
  const res = await http.send('PUT', `/v2/${repo}/manifests/${reference}`, { scope: scopeFor(repo), headers: { 'content-type': mediaType }, body });
  if (res.status !== 201) throw new Error(`manifest PUT ${repo}:${reference} answered ${res.status}: ${res.body.toString()}`);
  return sha256(body);
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

