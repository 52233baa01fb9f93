/** Fetching manifests by tag or digest, verifying them, and resolving an index to one platform. */
import { ClipError } from '../errors.js';
import { digestAlgorithm, digestOf } from './digest.js';
import { parseManifestDocument, type ImageManifest, type ManifestDocument } from './manifest.js';
import { MANIFEST_ACCEPT } from './media-types.js';
import { formatPlatform, hostPlatform, selectPlatform, type Platform } from './platform.js';
import type { ImageReference } from './reference.js';
import { fetchDocument, type CallContext, type RepositoryLocation } from './registry-call.js';

/** OCI's recommended ceiling for manifests; larger answers are refused rather than buffered. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface FetchedManifest {
  digest: string;
  mediaType: string;
  document: ManifestDocument;
  /** The exact bytes the digest covers. */
  bytes: Buffer;
}

export interface ResolvedManifest extends RepositoryLocation {
  reference: ImageReference;
  /** Digest of the image manifest (not of the index). */
  digest: string;
  mediaType: string;
  manifest: ImageManifest;
  /** The platform chosen from the index; undefined when the reference named a single manifest. */
  platform?: Platform;
  /** Set when the reference named an index (or Docker manifest list). */
  indexDigest?: string;
  indexMediaType?: string;
}

/** `reference` is a tag or a digest; a manifest fetched by digest must hash to it. */
export async function fetchManifest(ctx: CallContext, loc: RepositoryLocation, reference: string): Promise<FetchedManifest> {
  const object = `manifest "${reference}"`;
  const { res, body } = await fetchDocument(
    ctx,
    loc,
    { path: `/v2/${loc.repository}/manifests/${reference}`, headers: { accept: MANIFEST_ACCEPT }, object, okStatuses: [200] },
    MAX_MANIFEST_BYTES,
  );
  const byDigest = reference.includes(':');
  const digest = digestOf(body, byDigest ? digestAlgorithm(reference) : 'sha256');
  const what = `${object} in repository ${loc.repository} on registry ${loc.registry}`;
  const advertised = res.headers['docker-content-digest'];
  const expected = byDigest ? reference : typeof advertised === 'string' && advertised.startsWith('sha256:') ? advertised : undefined;
  if (expected !== undefined && expected !== digest) {
    throw new ClipError('DIGEST_MISMATCH', `${what}: content hashes to ${digest}, expected ${expected}`);
  }
  const contentType = res.headers['content-type'];
  const document = parseManifestDocument(body, contentType, what);
  const mediaType = document.kind === 'index' ? document.index.mediaType : document.manifest.mediaType;
  return { digest, mediaType, document, bytes: body };
}

export async function resolveManifest(ctx: CallContext, ref: ImageReference, platform?: Platform): Promise<ResolvedManifest> {
  const loc = { registry: ref.registry, repository: ref.repository };
  const top = await fetchManifest(ctx, loc, ref.digest ?? ref.tag ?? 'latest');
  const base = { registry: ref.registry, repository: ref.repository, reference: ref };
  if (top.document.kind === 'manifest') {
    return { ...base, digest: top.digest, mediaType: top.mediaType, manifest: top.document.manifest };
  }
  const wanted = platform ?? hostPlatform();
  const entries = top.document.index.manifests;
  const entry = selectPlatform(wanted, entries);
  if (entry === undefined || entry.platform === undefined) {
    // Attestation entries (buildkit's unknown/unknown) are not runnable platforms; leave them out.
    const available = entries
      .flatMap((e) => (e.platform && e.platform.os !== 'unknown' ? [formatPlatform(e.platform)] : []))
      .join(', ');
    throw new ClipError(
      'IMAGE_NOT_FOUND',
      `image ${ref.toString()} has no manifest for platform ${formatPlatform(wanted)}; available platforms: ${available || 'none'}`,
    );
  }
  const child = await fetchManifest(ctx, loc, entry.digest);
  if (child.document.kind !== 'manifest') {
    throw new ClipError('UNSUPPORTED_MEDIA_TYPE', `image ${ref.toString()}: index entry ${entry.digest} is itself an index`);
  }
  return {
    ...base,
    digest: child.digest,
    mediaType: child.mediaType,
    manifest: child.document.manifest,
    platform: entry.platform,
    indexDigest: top.digest,
    indexMediaType: top.mediaType,
  };
}
