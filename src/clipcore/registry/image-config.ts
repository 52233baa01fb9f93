/** The image configuration blob (OCI image-spec config.md), reduced to what running an image needs. */
import { ClipError } from '../errors.js';
import { isObject, optionalString, optionalStringArray, optionalStringMap, parseJsonObject, type JsonObject } from './json.js';

export interface ImageRuntimeConfig {
  User?: string;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  ExposedPorts?: Record<string, unknown>;
  Volumes?: Record<string, unknown>;
}

export interface ImageConfig {
  architecture: string;
  os: string;
  variant?: string;
  created?: string;
  config: ImageRuntimeConfig;
  rootfs: { type: string; diff_ids: string[] };
  /** The whole document as sent, for fields not modelled here (history, author, ...). */
  raw: JsonObject;
}

export function parseImageConfig(data: Buffer, what: string): ImageConfig {
  const raw = parseJsonObject(data, what);
  const rootfs = raw['rootfs'];
  if (!isObject(rootfs) || !Array.isArray(rootfs['diff_ids'])) {
    throw new ClipError('CORRUPT', `${what} has no rootfs.diff_ids`);
  }
  const diffIds = optionalStringArray(rootfs, 'diff_ids') ?? [];
  const runtime = isObject(raw['config']) ? raw['config'] : {};
  const config: ImageConfig = {
    architecture: optionalString(raw, 'architecture') ?? '',
    os: optionalString(raw, 'os') ?? '',
    config: parseRuntime(runtime),
    rootfs: { type: optionalString(rootfs, 'type') ?? 'layers', diff_ids: diffIds },
    raw,
  };
  const variant = optionalString(raw, 'variant');
  if (variant) config.variant = variant;
  const created = optionalString(raw, 'created');
  if (created) config.created = created;
  return config;
}

function parseRuntime(obj: JsonObject): ImageRuntimeConfig {
  const out: ImageRuntimeConfig = {};
  const user = optionalString(obj, 'User');
  if (user !== undefined) out.User = user;
  const env = optionalStringArray(obj, 'Env');
  if (env) out.Env = env;
  const entrypoint = optionalStringArray(obj, 'Entrypoint');
  if (entrypoint) out.Entrypoint = entrypoint;
  const cmd = optionalStringArray(obj, 'Cmd');
  if (cmd) out.Cmd = cmd;
  const workingDir = optionalString(obj, 'WorkingDir');
  if (workingDir !== undefined) out.WorkingDir = workingDir;
  const labels = optionalStringMap(obj, 'Labels');
  if (labels) out.Labels = labels;
  const stopSignal = optionalString(obj, 'StopSignal');
  if (stopSignal !== undefined) out.StopSignal = stopSignal;
  if (isObject(obj['ExposedPorts'])) out.ExposedPorts = { ...obj['ExposedPorts'] };
  if (isObject(obj['Volumes'])) out.Volumes = { ...obj['Volumes'] };
  return out;
}
