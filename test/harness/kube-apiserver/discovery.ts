/** Discovery documents (/version, /api, /apis, /api/v1, /apis/<group>/<version>) for clients that look first. */
import type { Cluster } from './cluster.js';
import type { JsonObject } from './json.js';
import { apiVersionOf } from './resources.js';

const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];

export function discovery(path: string, cluster: Cluster): JsonObject | undefined {
  const types = cluster.all().map((s) => s.type);
  if (path === '/version') return { major: '1', minor: '33', gitVersion: 'v1.33.0-clip-test', platform: 'linux/amd64' };
  if (path === '/api') return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] };
  if (path === '/apis') {
    const groups = new Map<string, string[]>();
    for (const t of types) if (t.group !== '') groups.set(t.group, [...(groups.get(t.group) ?? []), t.version]);
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: [...groups].map(([name, versions]) => {
        const list = [...new Set(versions)].map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
        return { name, versions: list, preferredVersion: list[0] ?? null };
      }),
    };
  }
  const gv = path === '/api/v1' ? 'v1' : path.startsWith('/apis/') ? path.slice('/apis/'.length) : '';
  const served = types.filter((t) => apiVersionOf(t) === gv);
  if (served.length === 0) return undefined;
  const resources: JsonObject[] = [];
  for (const t of served) {
    resources.push({ name: t.resource, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: VERBS });
    if (t.hasStatus) resources.push({ name: `${t.resource}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update'] });
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv, resources };
}
