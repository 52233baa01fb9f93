/**
 * Manifest and index documents: parsed from untrusted bytes into typed objects. The media type comes
 * from the registry's `Content-Type` first, because some tools omit `mediaType` in the body.
 */
import { ClipError } from '../errors.js';
import { validateDigest } from './digest.js';
import { isObject, optionalString, optionalStringArray, optionalStringMap, parseJsonObject, type JsonObject } from './json.js';
import { bareMediaType, manifestKind, MediaTypes } from './media-types.js';
import type { Platform } from './platform.js';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
}

export interface ImageManifest {
  schemaVersion: number;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: number;
  mediaType: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export type ManifestDocument = { kind: 'manifest'; manifest: ImageManifest } | { kind: 'index'; index: ImageIndex };

/** Decides the media type: a known Content-Type wins, then the body's `mediaType`, then the shape. */
export function detectMediaType(contentType: string | undefined, body: JsonObject, what: string): string {
  const header = bareMediaType(contentType);
  if (header !== undefined && manifestKind(header) !== undefined) return header;
  if (header === MediaTypes.dockerSchema1 || header === MediaTypes.dockerSchema1Signed || body['schemaVersion'] === 1) {
    throw new ClipError('UNSUPPORTED_MEDIA_TYPE', `${what} is a Docker schema 1 manifest, which is not supported`);
  }
  const declared = optionalString(body, 'mediaType');
  if (declared !== undefined && manifestKind(declared) !== undefined) return declared;
  if (Array.isArray(body['manifests'])) return MediaTypes.ociIndex;
  if (isObject(body['config']) && Array.isArray(body['layers'])) return MediaTypes.ociManifest;
  throw new ClipError(
    'UNSUPPORTED_MEDIA_TYPE',
    `${what} has unsupported media type ${declared ?? header ?? '(none)'}; ` +
      'expected an OCI or Docker schema 2 manifest or index',
  );
}

export function parseManifestDocument(data: Buffer, contentType: string | undefined, what: string): ManifestDocument {
  const body = parseJsonObject(data, what);
  const mediaType = detectMediaType(contentType, body, what);
  const annotations = optionalStringMap(body, 'annotations');
  const schemaVersion = typeof body['schemaVersion'] === 'number' ? body['schemaVersion'] : 2;
  if (manifestKind(mediaType) === 'index') {
    const entries = body['manifests'];
    if (!Array.isArray(entries)) throw new ClipError('CORRUPT', `${what}: index has no "manifests" list`);
    const manifests = entries.map((e, i) => parseDescriptor(e, `${what}: manifests[${i}]`));
    return { kind: 'index', index: { schemaVersion, mediaType, manifests, ...(annotations && { annotations }) } };
  }
  const layers = body['layers'];
  if (!Array.isArray(layers)) throw new ClipError('CORRUPT', `${what}: manifest has no "layers" list`);
  return {
    kind: 'manifest',
    manifest: {
      schemaVersion,
      mediaType,
      config: parseDescriptor(body['config'], `${what}: config`),
      layers: layers.map((l, i) => parseDescriptor(l, `${what}: layers[${i}]`)),
      ...(annotations && { annotations }),
    },
  };
}

function parseDescriptor(value: unknown, what: string): Descriptor {
  if (!isObject(value)) throw new ClipError('CORRUPT', `${what} is not a descriptor object`);
  const digest = optionalString(value, 'digest');
  if (digest === undefined) throw new ClipError('CORRUPT', `${what} has no digest`);
  const problem = validateDigest(digest);
  if (problem !== undefined) throw new ClipError('CORRUPT', `${what}: ${problem}`);
  const size = value['size'];
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new ClipError('CORRUPT', `${what} has no valid size`);
  }
  const descriptor: Descriptor = { mediaType: optionalString(value, 'mediaType') ?? '', digest, size };
  const urls = optionalStringArray(value, 'urls');
  if (urls) descriptor.urls = urls;
  const annotations = optionalStringMap(value, 'annotations');
  if (annotations) descriptor.annotations = annotations;
  const platform = parsePlatform(value['platform']);
  if (platform) descriptor.platform = platform;
  return descriptor;
}

function parsePlatform(value: unknown): Platform | undefined {
  if (!isObject(value)) return undefined;
  const os = optionalString(value, 'os');
  const architecture = optionalString(value, 'architecture');
  if (os === undefined || architecture === undefined) return undefined;
  const platform: Platform = { os, architecture };
  const variant = optionalString(value, 'variant');
  if (variant) platform.variant = variant;
  const osVersion = optionalString(value, 'os.version');
  if (osVersion) platform['os.version'] = osVersion;
  const features = optionalStringArray(value, 'os.features');
  if (features) platform['os.features'] = features;
  return platform;
}
