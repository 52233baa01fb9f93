/** URL paths of the resource API: /api/v1/... and /apis/<group>/<version>/..., namespaced or not. */
import type { Subresource } from './cluster.js';

export interface Target {
  group: string;
  version: string;
  resource: string;
  /** '' for cluster-scoped resources and for lists across all namespaces. */
  namespace: string;
  name: string;
  subresource: Subresource;
}

/** The target of a path, or undefined when it names no resource (kube answers 404). */
export function parseTarget(pathname: string): Target | undefined {
  const parts = pathname.split('/').filter((p) => p !== '').map(decodeURIComponent);
  let group: string;
  let rest: string[];
  if (parts[0] === 'api' && parts[1] !== undefined) {
    group = '';
    rest = parts.slice(1);
  } else if (parts[0] === 'apis' && parts[1] !== undefined && parts[2] !== undefined) {
    group = parts[1];
    rest = parts.slice(2);
  } else {
    return undefined;
  }
  const [version, ...segments] = rest;
  if (version === undefined || segments.length === 0) return undefined;
  let namespace = '';
  // namespaces/<ns>/<resource>/... is a namespaced resource; /api/v1/namespaces/<name>/status is a Namespace's.
  if (segments[0] === 'namespaces' && segments.length >= 3 && !(group === '' && segments[2] === 'status')) {
    namespace = segments[1] ?? '';
    segments.splice(0, 2);
  }
  const [resource, name = '', sub = ''] = segments;
  if (resource === undefined || segments.length > 3 || (sub !== '' && sub !== 'status')) return undefined;
  return { group, version, resource, namespace, name, subresource: sub === 'status' ? 'status' : '' };
}
