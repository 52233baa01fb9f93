/**
 * What a CreateVolume (or ValidateVolumeCapabilities) request asks for, validated: every problem is
 * INVALID_ARGUMENT naming the field, and every input is bounded before it is used.
 */
import { createHash } from 'node:crypto';
import { isClipError, parseReference, type ImageReference } from '../../clipcore/index.js';
import { invalidArgument } from '../../csi/errors.js';
import type { AccessModeName, StringMap, VolumeCapability } from '../../csi/types.js';
import { parsePlatform } from '../indexing/resolve.js';

/** StorageClass parameters this driver reads. */
export const PARAM_IMAGE = 'image';
export const PARAM_PLATFORMS = 'platforms';
const KNOWN_PARAMETERS = new Set([PARAM_IMAGE, PARAM_PLATFORMS]);
/** Added by the external-provisioner with --extra-create-metadata. */
export const PARAM_PVC_NAME = 'csi.storage.k8s.io/pvc/name';
export const PARAM_PVC_NAMESPACE = 'csi.storage.k8s.io/pvc/namespace';
/** The PVC annotation naming the image when the StorageClass does not. */
export const PVC_IMAGE_ANNOTATION = 'clip.csi.dev/image';

/** volume_context keys the node plugin reads. */
export const CONTEXT_IMAGE = 'image';
export const CONTEXT_PLATFORM = 'platform';
export const CONTEXT_REQUESTED_IMAGE = 'clip.csi.dev/requested-image';

const MAX_NAME = 253;
const MAX_PARAMETERS = 64;
const MAX_KEY = 316;
const MAX_VALUE = 4096;
const MAX_IMAGE = 1024;
const MAX_PLATFORMS = 16;
const MAX_CAPABILITIES = 16;
const MAX_VOLUME_ID = 128;

const WRITERS_ON_MANY_NODES: ReadonlySet<AccessModeName> = new Set(['MULTI_NODE_SINGLE_WRITER', 'MULTI_NODE_MULTI_WRITER']);

export function requireName(name: string): string {
  if (!name) throw invalidArgument('name is required');
  if (name.length > MAX_NAME) throw invalidArgument(`name is longer than ${MAX_NAME} characters`);
  return name;
}

export function requireVolumeId(volumeId: string): string {
  if (!volumeId) throw invalidArgument('volume_id is required');
  if (volumeId.length > MAX_VOLUME_ID) throw invalidArgument(`volume_id is longer than ${MAX_VOLUME_ID} characters`);
  return volumeId;
}

/** Bounded, and only keys this driver knows or that carry a domain prefix (the CO's). */
export function checkParameters(parameters: StringMap): StringMap {
  const entries = Object.entries(parameters);
  if (entries.length > MAX_PARAMETERS) throw invalidArgument(`parameters: more than ${MAX_PARAMETERS} entries`);
  for (const [key, value] of entries) {
    if (key.length > MAX_KEY) throw invalidArgument(`parameters: a key is longer than ${MAX_KEY} characters`);
    if (value.length > MAX_VALUE) throw invalidArgument(`parameters.${key} is longer than ${MAX_VALUE} characters`);
    if (!key.includes('/') && !KNOWN_PARAMETERS.has(key)) {
      throw invalidArgument(`parameters.${key} is not a known parameter (known: ${[...KNOWN_PARAMETERS].join(', ')})`);
    }
  }
  return parameters;
}

export function parseImage(image: string, field: string): ImageReference {
  const trimmed = image.trim();
  if (trimmed.length > MAX_IMAGE) throw invalidArgument(`${field} is longer than ${MAX_IMAGE} characters`);
  try {
    return parseReference(trimmed);
  } catch (err) {
    throw invalidArgument(`${field}: ${isClipError(err) ? err.message : String(err)}`);
  }
}

/** `linux/amd64,linux/arm64` → checked, deduplicated, sorted. */
export function parsePlatformList(text: string, field: string): string[] {
  const platforms = text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
  if (platforms.length === 0) throw invalidArgument(`${field} names no platform`);
  if (platforms.length > MAX_PLATFORMS) throw invalidArgument(`${field}: more than ${MAX_PLATFORMS} platforms`);
  for (const platform of platforms) {
    try {
      parsePlatform(platform);
    } catch (err) {
      throw invalidArgument(`${field}: ${isClipError(err) ? err.message : String(err)}`);
    }
  }
  return [...new Set(platforms)].sort();
}

/**
 * Why a capability cannot be served, or undefined when it can: mount access only (clip volumes are
 * filesystems), and writes only on one node (a private writable layer per publication).
 */
export function unsupportedCapability(capability: VolumeCapability): string | undefined {
  if (capability.block || capability.access_type === 'block') return 'block access is not supported; clip volumes are filesystems (use mount access)';
  if (!capability.mount) return 'mount access is required';
  const mode = capability.access_mode?.mode ?? 'UNKNOWN';
  if (mode === 'UNKNOWN') return 'access_mode is required';
  if (WRITERS_ON_MANY_NODES.has(mode)) {
    return `access mode ${mode} is not supported: writes to a clip volume stay on the node that makes them; use a *_READER_ONLY mode or SINGLE_NODE_WRITER`;
  }
  return undefined;
}

export function checkCapabilities(capabilities: readonly VolumeCapability[]): void {
  if (capabilities.length === 0) throw invalidArgument('volume_capabilities is required');
  if (capabilities.length > MAX_CAPABILITIES) throw invalidArgument(`volume_capabilities: more than ${MAX_CAPABILITIES}`);
  capabilities.forEach((capability, i) => {
    const problem = unsupportedCapability(capability);
    if (problem) throw invalidArgument(`volume_capabilities[${i}]: ${problem}`);
  });
}

/** The same image digest and platforms always make the same volume. */
export function volumeIdOf(digest: string, platforms: readonly string[]): string {
  return `clip-${createHash('sha256').update(`${digest}\n${[...platforms].sort().join(',')}`).digest('hex')}`;
}

export function isVolumeId(volumeId: string): boolean {
  return /^clip-[0-9a-f]{64}$/.test(volumeId);
}
