/** The resource types the server serves: built-in ones the controller uses, and custom ones from CRD files. */
import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { isObject, type Json, type JsonObject } from './json.js';

export interface ResourceType {
  group: string; // '' for the core group
  version: string;
  resource: string; // plural, as in the URL
  kind: string;
  namespaced: boolean;
  /** A status subresource: PUT of the main resource keeps the stored status, .../status changes only status. */
  hasStatus: boolean;
  /** Custom resources bump metadata.generation on spec changes (and refuse unconditional updates). */
  custom: boolean;
}

export function apiVersionOf(type: ResourceType): string {
  return type.group === '' ? type.version : `${type.group}/${type.version}`;
}

/** `pods`, `leases.coordination.k8s.io`: how test controls and messages name a resource type. */
export function qualifiedName(type: { resource: string; group: string }): string {
  return type.group === '' ? type.resource : `${type.resource}.${type.group}`;
}

function builtin(group: string, version: string, resource: string, kind: string, namespaced: boolean, hasStatus: boolean): ResourceType {
  return { group, version, resource, kind, namespaced, hasStatus, custom: false };
}

export const BUILTIN_TYPES: readonly ResourceType[] = [
  builtin('', 'v1', 'pods', 'Pod', true, true),
  builtin('', 'v1', 'persistentvolumeclaims', 'PersistentVolumeClaim', true, true),
  builtin('', 'v1', 'persistentvolumes', 'PersistentVolume', false, true),
  builtin('', 'v1', 'nodes', 'Node', false, true),
  builtin('', 'v1', 'namespaces', 'Namespace', false, true),
  builtin('', 'v1', 'secrets', 'Secret', true, false),
  builtin('', 'v1', 'serviceaccounts', 'ServiceAccount', true, false),
  builtin('', 'v1', 'events', 'Event', true, false),
  builtin('events.k8s.io', 'v1', 'events', 'Event', true, false),
  builtin('coordination.k8s.io', 'v1', 'leases', 'Lease', true, false),
  builtin('storage.k8s.io', 'v1', 'storageclasses', 'StorageClass', false, false),
];

function str(obj: JsonObject, key: string, file: string): string {
  const value = obj[key];
  if (typeof value !== 'string' || value === '') throw new Error(`${file}: CRD field ${key} must be a non-empty string`);
  return value;
}

function obj(value: Json | undefined, what: string, file: string): JsonObject {
  if (!isObject(value)) throw new Error(`${file}: CRD ${what} must be an object`);
  return value;
}

/** Every served version of every CustomResourceDefinition in a YAML file (apiextensions.k8s.io/v1). */
export async function typesFromCrdFile(file: string): Promise<ResourceType[]> {
  const types: ResourceType[] = [];
  for (const doc of parseAllDocuments(await readFile(file, 'utf8'))) {
    const crd = doc.toJS() as Json;
    if (!isObject(crd) || crd.kind !== 'CustomResourceDefinition') continue;
    const spec = obj(crd.spec, 'spec', file);
    const names = obj(spec.names, 'spec.names', file);
    const versions = spec.versions;
    if (!Array.isArray(versions)) throw new Error(`${file}: CRD spec.versions must be a list`);
    for (const v of versions) {
      const version = obj(v, 'version', file);
      if (version.served === false) continue;
      types.push({
        group: str(spec, 'group', file),
        version: str(version, 'name', file),
        resource: str(names, 'plural', file),
        kind: str(names, 'kind', file),
        namespaced: str(spec, 'scope', file) === 'Namespaced',
        hasStatus: isObject(version.subresources) && version.subresources.status !== undefined,
        custom: true,
      });
    }
  }
  if (types.length === 0) throw new Error(`${file}: no served CustomResourceDefinition version`);
  return types;
}
