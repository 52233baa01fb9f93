/**
 * What a NodePublishVolume request asks for, validated: every problem is INVALID_ARGUMENT naming
 * the field. Inline ephemeral volumes carry the image in `volume_context.image`; static
 * PersistentVolumes may carry it there too, or use the image reference as their volume handle.
 */
import { isAbsolute, resolve } from 'node:path';
import { formatPlatform, hostPlatform, isClipError, parseReference, type ImageReference } from '../clipcore/index.js';
import { invalidArgument } from '../csi/errors.js';
import { checkKeyCount, checkLength, quote } from '../csi/limits.js';
import type { AccessModeName, NodePublishVolumeRequest, StringMap } from '../csi/types.js';

export type PullPolicy = 'IfNotPresent' | 'Always';

/** The keys of volume_context this driver reads; kubelet adds its own `csi.storage.k8s.io/*` keys. */
export const CONTEXT_IMAGE = 'image';
export const CONTEXT_PLATFORM = 'platform';
export const CONTEXT_PULL_POLICY = 'pullPolicy';
const KNOWN_KEYS = new Set([CONTEXT_IMAGE, CONTEXT_PLATFORM, CONTEXT_PULL_POLICY]);

const K8S_EPHEMERAL = 'csi.storage.k8s.io/ephemeral';
const K8S_POD_NAME = 'csi.storage.k8s.io/pod.name';
const K8S_POD_NAMESPACE = 'csi.storage.k8s.io/pod.namespace';
const K8S_POD_UID = 'csi.storage.k8s.io/pod.uid';
const K8S_SERVICE_ACCOUNT = 'csi.storage.k8s.io/serviceAccount.name';

export interface PodInfo {
  name?: string;
  namespace?: string;
  uid?: string;
  serviceAccount?: string;
}

export interface PublishSpec {
  volumeId: string;
  targetPath: string;
  /** The image as the volume names it. */
  image: string;
  reference: ImageReference;
  /** `os/arch[/variant]`. */
  platform: string;
  pullPolicy: PullPolicy;
  readOnly: boolean;
  ephemeral: boolean;
  pod: PodInfo;
  /** From nodePublishSecretRef; kept in memory, never logged. */
  secrets: StringMap;
}

/**
 * Bounds of every request field (docs/node.md, "Limits"): far above what kubelet and the
 * controller send, far below what would make errors and logs unwieldy.
 */
export const LIMITS = {
  volumeIdBytes: 512,
  pathBytes: 4096,
  imageBytes: 512,
  platformBytes: 64,
  contextKeys: 64,
  contextKeyBytes: 256,
  contextValueBytes: 1024,
  secretKeys: 64,
  secretValueBytes: 256 * 1024,
  mountFlags: 64,
  mountFlagBytes: 256,
} as const;

const READER_MODES: ReadonlySet<AccessModeName> = new Set(['SINGLE_NODE_READER_ONLY', 'MULTI_NODE_READER_ONLY']);
const SINGLE_NODE_WRITERS: ReadonlySet<AccessModeName> = new Set(['SINGLE_NODE_WRITER', 'SINGLE_NODE_SINGLE_WRITER', 'SINGLE_NODE_MULTI_WRITER']);

export function requireVolumeId(volumeId: string): string {
  if (!volumeId) throw invalidArgument('volume_id is required');
  return checkLength('volume_id', volumeId, LIMITS.volumeIdBytes);
}

/** A path field, present and bounded; relative paths are the caller's business. */
export function requirePathField(path: string, field: string): string {
  if (!path) throw invalidArgument(`${field} is required`);
  checkLength(field, path, LIMITS.pathBytes);
  if (path.includes('\0')) throw invalidArgument(`${field} contains a NUL byte`);
  return path;
}

export function requirePath(path: string, field: string): string {
  requirePathField(path, field);
  if (!isAbsolute(path)) throw invalidArgument(`${field} ${quote(path)} must be an absolute path`);
  return resolve(path);
}

export function parsePublishRequest(request: NodePublishVolumeRequest): PublishSpec {
  const volumeId = requireVolumeId(request.volume_id);
  const targetPath = requirePath(request.target_path, 'target_path');
  const capability = request.volume_capability;
  if (!capability) throw invalidArgument('volume_capability is required');
  if (capability.block || capability.access_type === 'block') {
    throw invalidArgument('volume_capability: block access is not supported; clip volumes are filesystems (use mount access)');
  }
  if (!capability.mount) throw invalidArgument('volume_capability.mount is required (mount access type)');
  const mode = capability.access_mode?.mode ?? 'UNKNOWN';
  if (mode === 'UNKNOWN') throw invalidArgument('volume_capability.access_mode is required');
  const flags = capability.mount.mount_flags ?? [];
  if (flags.length > LIMITS.mountFlags) throw invalidArgument(`volume_capability.mount.mount_flags has ${flags.length} flags, over the limit of ${LIMITS.mountFlags}`);
  for (const flag of flags) checkLength('volume_capability.mount.mount_flags entry', flag, LIMITS.mountFlagBytes);
  // kubelet sends inline ephemeral volumes as SINGLE_NODE_WRITER with readonly=false unless the pod
  // says readOnly: such a volume gets a private writable layer (overlayfs) over the image.
  const readOnly = request.readonly || READER_MODES.has(mode) || flags.includes('ro');
  if (!readOnly && !SINGLE_NODE_WRITERS.has(mode)) {
    throw invalidArgument(
      `volume_capability.access_mode ${mode}: writes to a clip volume stay on one node (a private layer per publication); ` +
        'use a single-node access mode or publish read-only',
    );
  }

  const context = request.volume_context ?? {};
  checkKeyCount('volume_context', context, LIMITS.contextKeys);
  for (const [key, value] of Object.entries(context)) {
    checkLength('a volume_context key', key, LIMITS.contextKeyBytes);
    checkLength(`volume_context[${quote(key)}]`, value, key === CONTEXT_IMAGE ? LIMITS.imageBytes : key === CONTEXT_PLATFORM ? LIMITS.platformBytes : LIMITS.contextValueBytes);
    // Keys with a domain prefix belong to others (kubelet's csi.storage.k8s.io/*); unprefixed keys are ours.
    if (!key.includes('/') && !KNOWN_KEYS.has(key)) {
      throw invalidArgument(`volume_context[${quote(key)}] is not a known key (known: ${[...KNOWN_KEYS].join(', ')})`);
    }
  }
  const secrets = request.secrets ?? {};
  checkKeyCount('secrets', secrets, LIMITS.secretKeys);
  for (const [key, value] of Object.entries(secrets)) {
    checkLength('a secrets key', key, LIMITS.contextKeyBytes);
    // Never quoted: a secret's value stays out of messages.
    if (Buffer.byteLength(value) > LIMITS.secretValueBytes) throw invalidArgument(`secrets[${quote(key)}] is over the limit of ${LIMITS.secretValueBytes} bytes`);
  }
  const ephemeral = context[K8S_EPHEMERAL] === 'true';
  const image = imageOf(context, volumeId, ephemeral);
  let reference: ImageReference;
  try {
    reference = parseReference(image.value);
  } catch (err) {
    throw invalidArgument(`${image.field}: ${isClipError(err) ? err.message : String(err)}`);
  }
  const platform = parsePlatformField(context[CONTEXT_PLATFORM]);
  const pullPolicy = parsePullPolicy(context[CONTEXT_PULL_POLICY], reference);
  const pod: PodInfo = {};
  if (context[K8S_POD_NAME]) pod.name = context[K8S_POD_NAME];
  if (context[K8S_POD_NAMESPACE]) pod.namespace = context[K8S_POD_NAMESPACE];
  if (context[K8S_POD_UID]) pod.uid = context[K8S_POD_UID];
  if (context[K8S_SERVICE_ACCOUNT]) pod.serviceAccount = context[K8S_SERVICE_ACCOUNT];
  return { volumeId, targetPath, image: image.value, reference, platform, pullPolicy, readOnly, ephemeral, pod, secrets };
}

function imageOf(context: StringMap, volumeId: string, ephemeral: boolean): { value: string; field: string } {
  const image = context[CONTEXT_IMAGE];
  if (image !== undefined && image !== '') return { value: image.trim(), field: 'volume_context.image' };
  if (ephemeral) throw invalidArgument('volume_context.image is required (the image to mount)');
  checkLength('volume_id used as the image reference', volumeId, LIMITS.imageBytes);
  // A static PersistentVolume may name the image in its volume handle.
  try {
    parseReference(volumeId);
  } catch {
    throw invalidArgument(`volume_context.image is required: it is missing and volume_id ${quote(volumeId)} is not an image reference`);
  }
  return { value: volumeId, field: 'volume_id' };
}

function parsePlatformField(value: string | undefined): string {
  if (value === undefined || value === '') return formatPlatform(hostPlatform());
  const parts = value.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((part) => !/^[a-z0-9_.-]+$/i.test(part))) {
    throw invalidArgument(`volume_context.platform ${quote(value)} must look like os/arch or os/arch/variant`);
  }
  return value;
}

/** Kubernetes' defaults for container images: Always for `:latest` (or no tag), else IfNotPresent. */
function parsePullPolicy(value: string | undefined, reference: ImageReference): PullPolicy {
  if (value === 'IfNotPresent' || value === 'Always') return value;
  if (value !== undefined && value !== '') {
    throw invalidArgument(`volume_context.pullPolicy ${quote(value)} must be IfNotPresent or Always`);
  }
  if (reference.digest) return 'IfNotPresent';
  return reference.tag === undefined || reference.tag === 'latest' ? 'Always' : 'IfNotPresent';
}
