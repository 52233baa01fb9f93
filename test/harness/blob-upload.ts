/**
 * Blob and manifest uploads through the Distribution API. Layers stream: tar → (hash of the tar =
 * diff_id) → compressor → (hash = digest) → chunked PATCH, then `PUT ?digest=` closes the upload,
 * so a layer of hundreds of MiB is never held in memory.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { compressor } from './compress.js';
import { layerMediaType, type ManifestFormat } from './harness-media-types.js';
import { RegistryHttp, type RegistryEndpoint } from './registry-http.js';
import type { TarLayer } from './tar-layer.js';

/** A layer given as finished bytes (for deliberately odd blobs), with the media type to declare. */
export interface RawLayer {
  kind: 'raw';
  data: Buffer;
  mediaType: string;
  /** diff_id for the config; defaults to the digest of `data` (right when it is uncompressed). */
  diffId?: string;
}

export type LayerInput = TarLayer | RawLayer;

export interface PushedLayer {
  digest: string;
  size: number;
  diffId: string;
  mediaType: string;
}

export const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

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

export const scopeFor = (repo: string): string => `repository:${repo}:pull,push`;

export async function startUpload(http: RegistryHttp, repo: string): Promise<string> {
  const res = await http.send('POST', `/v2/${repo}/blobs/uploads/`, { scope: scopeFor(repo) });
  const location = res.headers['location'];
  if (res.status !== 202 || location === undefined) throw new Error(`upload start for ${repo} answered ${res.status}: ${res.body.toString()}`);
  return location;
}

export async function finishUpload(http: RegistryHttp, repo: string, location: string, digest: string, body?: Buffer): Promise<void> {
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

export async function pushLayer(http: RegistryHttp, repo: string, layer: LayerInput, format: ManifestFormat): Promise<PushedLayer> {
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

export async function putManifest(http: RegistryHttp, repo: string, reference: string, mediaType: string, body: Buffer): Promise<string> {
  const res = await http.send('PUT', `/v2/${repo}/manifests/${reference}`, { scope: scopeFor(repo), headers: { 'content-type': mediaType }, body });
  if (res.status !== 201) throw new Error(`manifest PUT ${repo}:${reference} answered ${res.status}: ${res.body.toString()}`);
  return sha256(body);
}
