/**
 * Resolving a reference to what the controller indexes: the digest it names (the index digest for
 * a multi-arch image) and, for each platform asked for, the image manifest to index. The
 * request's credentials are tried in order, then the controller's own Docker config; only a
 * refusal (401/403) moves on to the next.
 */
import { ClipError, isClipError, makeReference, RegistryClient, type ImageReference, type Platform, type RegistryClientOptions, type RegistryCredentials } from '../../clipcore/index.js';

/** Registry settings of the controller process (--insecure-registry, --ca-cert, --docker-config). */
export interface RegistrySettings {
  insecureRegistries: string[];
  caCertificates: Buffer[];
  dockerConfigPath?: string;
}

export interface ResolvedImage {
  reference: ImageReference;
  /** The digest the reference names: the index digest for a multi-arch image. */
  digest: string;
  /** One entry per platform asked for: the image manifest a node of that platform mounts. */
  manifests: Array<{ platform: string; digest: string }>;
  /** The credentials that were accepted; undefined for the controller's Docker config (or none). */
  auth?: RegistryCredentials;
}

export function registryOptions(settings: RegistrySettings, auth: RegistryCredentials | undefined): RegistryClientOptions {
  return {
    insecureRegistries: settings.insecureRegistries,
    caCertificates: settings.caCertificates,
    ...(settings.dockerConfigPath !== undefined && { dockerConfigPath: settings.dockerConfigPath }),
    ...(auth && { auth }),
  };
}

export async function resolveImage(
  reference: ImageReference,
  platforms: readonly string[],
  credentials: readonly RegistryCredentials[],
  settings: RegistrySettings,
): Promise<ResolvedImage> {
  let refused: unknown;
  for (const auth of [...credentials, undefined]) {
    try {
      return await resolveWith(reference, platforms, auth, settings);
    } catch (err) {
      if (!isClipError(err) || (err.code !== 'UNAUTHORIZED' && err.code !== 'FORBIDDEN')) throw err;
      refused ??= err;
    }
  }
  throw refused;
}

async function resolveWith(
  reference: ImageReference,
  platforms: readonly string[],
  auth: RegistryCredentials | undefined,
  settings: RegistrySettings,
): Promise<ResolvedImage> {
  const client = new RegistryClient(registryOptions(settings, auth));
  try {
    const location = { registry: reference.registry, repository: reference.repository };
    const top = await client.getManifest(location, reference.digest ?? reference.tag ?? 'latest');
    let manifests: ResolvedImage['manifests'];
    if (top.document.kind === 'manifest') {
      // A single-platform image: nodes of every platform look its index up under their own platform.
      manifests = platforms.map((platform) => ({ platform, digest: top.digest }));
    } else {
      // Pinned to the index digest, so that every platform comes from the same index even if the tag moves.
      const pinned = makeReference({ ...location, displayRegistry: reference.displayRegistry, digest: top.digest });
      manifests = [];
      for (const platform of platforms) {
        const resolved = await client.resolveManifest(pinned, parsePlatform(platform));
        manifests.push({ platform, digest: resolved.digest });
      }
    }
    return { reference, digest: top.digest, manifests, ...(auth && { auth }) };
  } finally {
    client.close();
  }
}

/** `os/arch[/variant]`, as the StorageClass parameter, --platforms and Node labels write it. */
export function parsePlatform(text: string): Platform {
  const parts = text.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((part) => !/^[a-z0-9_.-]{1,32}$/i.test(part))) {
    throw new ClipError('INVALID_ARGUMENT', `platform ${JSON.stringify(text.slice(0, 100))} must look like os/arch or os/arch/variant`);
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return variant ? { os, architecture, variant } : { os, architecture };
}
