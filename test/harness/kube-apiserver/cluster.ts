/**
 * Every resource type's store, and the write semantics kube-apiserver gives them: server-set metadata, conflicts
 * on a stale resourceVersion, the status subresource, generation bumps, finalizers. HTTP handlers and the test
 * controls both write through here, so direct writes emit the same watch events.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { alreadyExists, badRequest, conflict, invalid, notFound } from './errors.js';
import { clone, deepEqual, isObject, type Json, type JsonObject } from './json.js';
import { applyPatch } from './patch.js';
import { apiVersionOf, qualifiedName, type ResourceType } from './resources.js';
import { metaOf, RvClock, Store } from './store.js';

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** `status` for the status subresource, '' for the main resource. */
export type Subresource = '' | 'status';

function now(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

function str(value: Json | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

export class Cluster {
  readonly clock = new RvClock();
  private readonly stores = new Map<string, Store>();

  constructor(private readonly historySize: number) {}

  register(type: ResourceType): void {
    this.stores.set(`${type.group}/${type.version}/${type.resource}`, new Store(type, this.historySize, this.clock.current()));
  }

  find(group: string, version: string, resource: string): Store | undefined {
    return this.stores.get(`${group}/${version}/${resource}`);
  }

  /** A store by `pods` or `leases.coordination.k8s.io` (the first served version of that group). */
  byName(name: string): Store {
    for (const store of this.stores.values()) if (qualifiedName(store.type) === name) return store;
    throw new Error(`unknown resource ${name}`);
  }

  all(): Store[] {
    return [...this.stores.values()];
  }

  get(store: Store, namespace: string, name: string): JsonObject {
    const obj = store.get(namespace, name);
    if (obj === undefined) throw notFound(store.type, name);
    return obj;
  }

  /** Checks what every written object needs, and fills kind/apiVersion/namespace as the request implies. */
  private checked(store: Store, namespace: string, body: Json | undefined): JsonObject {
    const { type } = store;
    if (!isObject(body)) throw badRequest(`the body of the request is not a ${type.kind} object`);
    const apiVersion = apiVersionOf(type);
    if (body.apiVersion !== undefined && body.apiVersion !== apiVersion) {
      throw badRequest(`the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${apiVersion})`);
    }
    if (body.kind !== undefined && body.kind !== type.kind) {
      throw badRequest(`the kind in the data (${String(body.kind)}) does not match the expected kind (${type.kind})`);
    }
    const meta = body.metadata ?? {};
    const name = isObject(meta) ? (str(meta.name) ?? '') : '';
    if (!isObject(meta)) throw invalid(type.kind, name, 'metadata', 'Invalid value: must be an object', type.group);
    if (type.namespaced && meta.namespace !== undefined && meta.namespace !== namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    for (const field of ['labels', 'annotations'] as const) {
      const map = meta[field];
      if (map !== undefined && !(isObject(map) && Object.values(map).every((v) => typeof v === 'string'))) {
        throw invalid(type.kind, name, `metadata.${field}`, 'Invalid value: must be a map of strings', type.group);
      }
    }
    const out: JsonObject = { ...body, apiVersion, kind: type.kind, metadata: { ...meta } };
    const outMeta = metaOf(out);
    if (type.namespaced) outMeta.namespace = namespace;
    else delete outMeta.namespace;
    return out;
  }

  create(store: Store, namespace: string, body: Json | undefined): JsonObject {
    const { type } = store;
    const obj = this.checked(store, namespace, body);
    const meta = metaOf(obj);
    const generateName = str(meta.generateName);
    if (str(meta.name) === undefined && generateName !== undefined) {
      meta.name = generateName + randomBytes(3).toString('hex').slice(0, 5);
    }
    const name = str(meta.name) ?? '';
    if (name === '') throw invalid(type.kind, '', 'metadata.name', 'Required value: name or generateName is required', type.group);
    if (name.length > 253 || !NAME.test(name)) {
      throw invalid(type.kind, name, 'metadata.name', `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`, type.group);
    }
    if (store.get(namespace, name) !== undefined) throw alreadyExists(type, name);
    if (type.custom && type.hasStatus) delete obj.status;
    const rv = this.clock.next();
    Object.assign(meta, { uid: randomUUID(), creationTimestamp: now(), resourceVersion: String(rv) });
    if (type.custom) meta.generation = 1;
    delete meta.deletionTimestamp;
    store.put(obj, rv);
    return obj;
  }

  /** PUT of the object or of its status. `body.metadata.resourceVersion`, when set, must be the stored one. */
  update(store: Store, namespace: string, name: string, body: Json | undefined, subresource: Subresource = ''): JsonObject {
    const { type } = store;
    const old = this.get(store, namespace, name);
    const obj = this.checked(store, namespace, body);
    const meta = metaOf(obj);
    if (meta.name !== name) {
      throw badRequest(`the name of the object (${String(meta.name)}) does not match the name on the URL (${name})`);
    }
    const oldMeta = metaOf(old);
    const rv = str(meta.resourceVersion);
    if (rv === undefined && type.custom) {
      throw invalid(type.kind, name, 'metadata.resourceVersion', 'Invalid value: 0x0: must be specified for an update', type.group);
    }
    if (rv !== undefined && rv !== oldMeta.resourceVersion) throw conflict(type, name);
    const next = subresource === 'status' ? { ...old, status: obj.status } : obj;
    if (subresource === 'status') {
      if (next.status === undefined) delete next.status;
    } else {
      if (type.hasStatus) {
        if (old.status === undefined) delete next.status;
        else next.status = old.status;
      }
      const nextMeta: JsonObject = { ...meta };
      for (const k of ['uid', 'creationTimestamp', 'generation', 'deletionTimestamp'] as const) {
        if (oldMeta[k] === undefined) delete nextMeta[k];
        else nextMeta[k] = oldMeta[k];
      }
      next.metadata = nextMeta;
      if (type.custom && !this.sameSpec(old, next)) nextMeta.generation = Number(oldMeta.generation ?? 0) + 1;
    }
    return this.write(store, old, next);
  }

  /** Spec here is everything but metadata and status, as for custom resources' generation. */
  private sameSpec(a: JsonObject, b: JsonObject): boolean {
    const strip = (o: JsonObject): JsonObject => {
      const { metadata: _m, status: _s, ...rest } = o;
      return rest;
    };
    return deepEqual(strip(a), strip(b));
  }

  /** Stores `next` unless it changes nothing (kube then keeps the resourceVersion and sends no event). */
  private write(store: Store, old: JsonObject, next: JsonObject): JsonObject {
    const nextMeta: JsonObject = { ...metaOf(next), resourceVersion: metaOf(old).resourceVersion };
    next.metadata = nextMeta;
    if (deepEqual(old, next)) return old;
    const rv = this.clock.next();
    nextMeta.resourceVersion = String(rv);
    const finalizers = nextMeta.finalizers;
    if (nextMeta.deletionTimestamp !== undefined && !(Array.isArray(finalizers) && finalizers.length > 0)) {
      store.remove(next, rv);
    } else {
      store.put(next, rv);
    }
    return next;
  }

  patch(store: Store, namespace: string, name: string, contentType: string, body: Json, subresource: Subresource = ''): JsonObject {
    const old = this.get(store, namespace, name);
    const patched = applyPatch(contentType, old, body);
    if (!isObject(patched)) throw badRequest('the patched object is not an object');
    // A resourceVersion in the patch is a precondition; without one the patch applies to the latest object.
    const meta = { ...metaOf(patched) };
    meta.resourceVersion ??= metaOf(old).resourceVersion;
    patched.metadata = meta;
    return this.update(store, namespace, name, patched, subresource);
  }

  /** Deletes now, or marks for deletion while finalizers remain. `preconditionRv` as DeleteOptions.preconditions. */
  delete(store: Store, namespace: string, name: string, preconditionRv?: string): JsonObject {
    const old = this.get(store, namespace, name);
    const oldMeta = metaOf(old);
    if (preconditionRv !== undefined && preconditionRv !== oldMeta.resourceVersion) throw conflict(store.type, name);
    const finalizers = oldMeta.finalizers;
    if (Array.isArray(finalizers) && finalizers.length > 0) {
      if (oldMeta.deletionTimestamp !== undefined) return old;
      return this.write(store, old, { ...old, metadata: { ...oldMeta, deletionTimestamp: now() } });
    }
    const rv = this.clock.next();
    const last = { ...old, metadata: { ...oldMeta, resourceVersion: String(rv) } };
    store.remove(last, rv);
    return last;
  }

  /**
   * Test seeding: `count` pods `<prefix>-<i>` (label `seed=<prefix>`) in one namespace, from a template pod
   * whose spec all of them share (stored objects are never mutated), so 50,000 pods stay cheap.
   */
  seedPods(count: number, namespace: string, prefix: string, template: JsonObject): void {
    const store = this.byName('pods');
    const base = clone(template);
    const meta = isObject(base.metadata) ? base.metadata : {};
    const labels = isObject(meta.labels) ? meta.labels : {};
    base.spec ??= { containers: [{ name: 'c', image: 'busybox' }] };
    for (let i = 0; i < count; i++) {
      this.create(store, namespace, { ...base, metadata: { ...meta, name: `${prefix}-${i}`, labels: { ...labels, seed: prefix } } });
    }
  }
}
