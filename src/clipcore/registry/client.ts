/**
 * RegistryClient: the OCI Distribution v2 client clipcore pulls images with. It wires the pieces
 * (transport, scheme policy, credentials, auth, retries) and exposes manifest, config and blob reads.
 */
import { ClipError } from '../errors.js';
import { Authenticator } from './authenticator.js';
import { fetchBlob, fetchBlobRange, blobSize, openBlob, type BlobRange, type OpenedBlob } from './blobs.js';
import { DEFAULTS, type RegistryClientOptions } from './client-options.js';
import { CredentialResolver } from './credential-resolver.js';
import { parseImageConfig, type ImageConfig } from './image-config.js';
import type { Descriptor } from './manifest.js';
import { fetchManifest, resolveManifest, type FetchedManifest, type ResolvedManifest } from './manifests.js';
import type { Platform } from './platform.js';
import { parseReference, type ImageReference } from './reference.js';
import type { CallContext, RepositoryLocation } from './registry-call.js';
import { Requester } from './requester.js';
import { SchemePolicy } from './scheme.js';
import { captureSession, seedSession, type RegistrySession } from './session.js';
import { fetchToken } from './token-fetcher.js';
import { Transport } from './transport.js';

/** A repository as `registry/repository` text (tags ignored) or as parts. */
export type RepositoryLocator = string | RepositoryLocation;

const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

export class RegistryClient {
  private readonly transport: Transport;
  private readonly schemes: SchemePolicy;
  private readonly ctx: CallContext;

  constructor(options: RegistryClientOptions = {}) {
    this.transport = new Transport({
      userAgent: options.userAgent ?? DEFAULTS.userAgent,
      ...(options.caCertificates && { caCertificates: options.caCertificates }),
    });
    const retry = {
      retries: options.retries ?? DEFAULTS.retries,
      baseDelayMs: options.retryBaseDelayMs ?? DEFAULTS.retryBaseDelayMs,
      maxDelayMs: options.retryMaxDelayMs ?? DEFAULTS.retryMaxDelayMs,
      maxRetryAfterMs: options.maxRetryAfterMs ?? DEFAULTS.maxRetryAfterMs,
    };
    const credentials = new CredentialResolver({
      ...((options.credentialsProvider ?? options.auth) && { explicit: options.credentialsProvider ?? options.auth }),
      ...(options.dockerConfigPath !== undefined && { dockerConfigPath: options.dockerConfigPath }),
      env: options.env ?? process.env,
      helperTimeoutMs: options.credentialHelperTimeoutMs ?? DEFAULTS.credentialHelperTimeoutMs,
    });
    // The authenticator fetches tokens through the requester, which needs the authenticator: break
    // the cycle with a late-bound function.
    let requester: Requester | undefined;
    const auth = new Authenticator(credentials, (req) => fetchToken((plain) => (requester as Requester).plain(plain), req));
    this.schemes = new SchemePolicy(options.insecureRegistries);
    if (options.session !== undefined) seedSession(options.session, this.schemes, auth);
    requester = new Requester(this.transport, this.schemes, auth, {
      retry,
      timeoutMs: options.timeoutMs ?? DEFAULTS.timeoutMs,
      maxRedirects: options.maxRedirects ?? DEFAULTS.maxRedirects,
    });
    this.ctx = { requester, auth, retry };
  }

  /**
   * The image manifest for `ref`: an index or manifest list is resolved to the entry for `platform`
   * (default: this host's platform).
   */
  resolveManifest(ref: string | ImageReference, platform?: Platform): Promise<ResolvedManifest> {
    return resolveManifest(this.ctx, typeof ref === 'string' ? parseReference(ref) : ref, platform);
  }

  /** The document a tag or digest names as is (manifest or index), verified when fetched by digest. */
  getManifest(repository: RepositoryLocator, tagOrDigest: string): Promise<FetchedManifest> {
    return fetchManifest(this.ctx, locate(repository), tagOrDigest);
  }

  /** The image config of a resolved manifest (or of `descriptor` in `repository`), digest-checked. */
  async getConfig(target: ResolvedManifest | RepositoryLocator, descriptor?: Descriptor): Promise<ImageConfig> {
    const resolved = typeof target !== 'string' && 'manifest' in target ? target : undefined;
    const config = descriptor ?? resolved?.manifest.config;
    if (config === undefined) throw new ClipError('INVALID_ARGUMENT', 'getConfig needs a resolved manifest or a config descriptor');
    const loc = locate(target);
    const bytes = await fetchBlob(this.ctx, loc, config.digest, MAX_CONFIG_BYTES);
    const parsed = parseImageConfig(bytes, `image config ${config.digest} in repository ${loc.repository}`);
    if (resolved !== undefined && parsed.rootfs.diff_ids.length !== resolved.manifest.layers.length) {
      throw new ClipError(
        'CORRUPT',
        `image config ${config.digest} lists ${parsed.rootfs.diff_ids.length} diff_ids but the manifest has ${resolved.manifest.layers.length} layers`,
      );
    }
    return parsed;
  }

  /** A whole blob in memory, digest-checked; refuses blobs over `maxBytes`. */
  fetchBlob(repository: RepositoryLocator, digest: string, maxBytes = MAX_CONFIG_BYTES): Promise<Buffer> {
    return fetchBlob(this.ctx, locate(repository), digest, maxBytes);
  }

  blobSize(repository: RepositoryLocator, digest: string): Promise<number> {
    return blobSize(this.ctx, locate(repository), digest);
  }

  /**
   * Streams a blob or the range [start, end) of it. Dropped connections resume where they broke;
   * a whole-blob stream fails with DIGEST_MISMATCH at its end if the content is not `digest`.
   */
  openBlobStream(repository: RepositoryLocator, digest: string, range?: BlobRange): Promise<OpenedBlob> {
    return openBlob(this.ctx, locate(repository), digest, range);
  }

  /** Bytes [start, endExclusive) of a blob via HTTP Range; shorter only if the blob ends first. */
  fetchBlobRange(repository: RepositoryLocator, digest: string, start: number, endExclusive: number): Promise<Buffer> {
    if (endExclusive === start) return Promise.resolve(Buffer.alloc(0));
    return fetchBlobRange(this.ctx, locate(repository), digest, start, endExclusive);
  }

  /**
   * What this client has learned (schemes, auth schemes, live bearer tokens), to seed another client
   * through `options.session`, in this thread or another. Holds tokens: never log it.
   */
  session(): RegistrySession {
    return captureSession(this.schemes, this.ctx.auth);
  }

  /** Takes in what another client learned since (see `options.session`); what this one knows stays. */
  adoptSession(session: RegistrySession): void {
    seedSession(session, this.schemes, this.ctx.auth);
  }

  /** Closes pooled connections. */
  close(): void {
    this.transport.close();
  }
}

function locate(target: RepositoryLocator | ResolvedManifest): RepositoryLocation {
  if (typeof target !== 'string') return { registry: target.registry, repository: target.repository };
  const ref = parseReference(target);
  return { registry: ref.registry, repository: ref.repository };
}
