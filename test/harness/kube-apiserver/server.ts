/**
 * A Kubernetes API server for tests: kube-apiserver's wire protocol (JSON over HTTPS with bearer tokens, lists,
 * watches, Status errors, RBAC) for the resources clip's controller uses, in memory. Tests drive it through
 * @kubernetes/client-node like a real cluster, and through the methods below to change the cluster behind the
 * controller's back (direct writes, dropped watches, compaction, bookmarks, RBAC changes).
 */
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createSelfSignedCert } from '../tls-cert.js';
import { Cluster, type Subresource } from './cluster.js';
import { ApiError, unknownPath } from './errors.js';
import { handle, sendJson, startWatch, verbOf } from './handlers.js';
import { clone, isObject, parseJson, type JsonObject } from './json.js';
import { discovery } from './discovery.js';
import { ALLOW_ALL, Users, type PolicyRule } from './rbac.js';
import { BUILTIN_TYPES, typesFromCrdFile } from './resources.js';
import { parseTarget } from './routes.js';
import { metaOf, type Store } from './store.js';
import type { WatchStream } from './watch.js';

export type { PolicyRule } from './rbac.js';

export interface KubeApiServerOptions {
  /** Where the server's certificate goes (and, by default, kubeconfig files). */
  dir: string;
  /** 0 (default): any free port. */
  port?: number;
  /** CustomResourceDefinition YAML files whose served versions become resources. */
  crdFiles?: string[];
  /** Watch events kept per resource type; a watch from before them gets 410 Expired (default 10,000). */
  historySize?: number;
  /** Bookmarks to watches that allow them, every so often (default 60 s; 0: only on sendBookmarks()). */
  bookmarkIntervalMs?: number;
}

export interface RequestLogEntry {
  method: string;
  path: string;
  query: Record<string, string>;
  user: string; // '' when unauthenticated
  verb: string; // RBAC verb, '' for non-resource paths
  code: number;
}

export const ADMIN_USER = 'admin';

/** A private JSON copy of any object (Dates become strings, as on the wire). */
function toJson(obj: object): JsonObject {
  const json = parseJson(JSON.stringify(obj));
  if (!isObject(json)) throw new Error('not a JSON object');
  return json;
}

export class KubeApiServer {
  /** Every request, in order of its answer (a watch: when its stream starts). */
  readonly requests: RequestLogEntry[] = [];
  private readonly watches = new Set<WatchStream>();
  private bookmarkTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly server: Server,
    readonly cluster: Cluster,
    readonly users: Users,
    readonly url: string,
    readonly caPem: string,
    private readonly dir: string,
  ) {}

  static async start(options: KubeApiServerOptions): Promise<KubeApiServer> {
    const cluster = new Cluster(options.historySize ?? 10_000);
    for (const type of BUILTIN_TYPES) cluster.register(type);
    for (const file of options.crdFiles ?? []) for (const type of await typesFromCrdFile(file)) cluster.register(type);
    for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      cluster.create(cluster.byName('namespaces'), '', { metadata: { name: ns } });
    }
    const users = new Users();
    users.add(ADMIN_USER, ALLOW_ALL);
    const cert = await createSelfSignedCert(options.dir, 'kube-apiserver');
    let self: KubeApiServer | undefined;
    const server = createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
      void self?.serve(req, res);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    self = new KubeApiServer(server, cluster, users, `https://127.0.0.1:${port}`, cert.certPem, options.dir);
    const interval = options.bookmarkIntervalMs ?? 60_000;
    if (interval > 0) self.bookmarkTimer = setInterval(() => self?.sendBookmarks(), interval);
    return self;
  }

  async stop(): Promise<void> {
    clearInterval(this.bookmarkTimer);
    for (const w of [...this.watches]) w.reset();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- users and kubeconfig ----

  /** Adds a user (e.g. `system:serviceaccount:kube-system:clip-controller`) and returns its token. */
  addUser(user: string, rules: PolicyRule[]): string {
    return this.users.add(user, rules);
  }

  /** Replaces a user's rules; requests from then on are authorized against them. */
  setRules(user: string, rules: PolicyRule[]): void {
    this.users.setRules(user, rules);
  }

  /** Writes a kubeconfig (CA data, server URL, the user's token) that KubeConfig.loadFromFile accepts. */
  async writeKubeconfig(user = ADMIN_USER, path = join(this.dir, `kubeconfig-${user.replace(/[^\w.-]/g, '_')}.yaml`)): Promise<string> {
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server: this.url, 'certificate-authority-data': Buffer.from(this.caPem).toString('base64') } }],
      users: [{ name: user, user: { token: this.users.tokenOf(user) } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user, namespace: 'default' } }],
      'current-context': 'test',
    };
    await writeFile(path, JSON.stringify(config, null, 2), { mode: 0o600 }); // JSON is YAML
    return path;
  }

  // ---- direct writes (emit watch events as API writes do) ----

  get(resource: string, name: string, namespace = ''): JsonObject | undefined {
    const obj = this.cluster.byName(resource).get(namespace, name);
    return obj === undefined ? undefined : clone(obj);
  }

  list(resource: string, namespace = ''): JsonObject[] {
    const store = this.cluster.byName(resource);
    return store.keys().filter((k) => namespace === '' || k.startsWith(`${namespace}/`)).map((k) => clone(store.byKey(k) ?? {}));
  }

  /** Accepts client-node's typed objects (V1Pod…) as well as plain JSON; namespace defaults to `default`. */
  create(resource: string, obj: object): JsonObject {
    const store = this.cluster.byName(resource);
    const body = toJson(obj);
    return clone(this.cluster.create(store, this.namespaceOf(store, body), body));
  }

  /** PUT without a resourceVersion precondition unless `obj` carries one; `status` writes only the status. */
  update(resource: string, obj: object, subresource: Subresource = ''): JsonObject {
    const store = this.cluster.byName(resource);
    const body = toJson(obj);
    const namespace = this.namespaceOf(store, body);
    const name = String(metaOf(body).name);
    const meta = { ...metaOf(body) };
    meta.resourceVersion ??= metaOf(this.cluster.get(store, namespace, name)).resourceVersion;
    body.metadata = meta;
    return clone(this.cluster.update(store, namespace, name, body, subresource));
  }

  delete(resource: string, name: string, namespace = ''): void {
    this.cluster.delete(this.cluster.byName(resource), namespace, name);
  }

  /**
   * `count` pods `<prefix>-<i>` (label `seed=<prefix>`) in `namespace`, without HTTP. `template` is a pod
   * (e.g. a V1Pod with a clip volume) whose metadata and spec every seeded pod gets; its name is ignored.
   */
  seedPods(count: number, namespace = 'default', prefix = 'seed', template: object = {}): void {
    this.cluster.seedPods(count, namespace, prefix, toJson(template));
  }

  private namespaceOf(store: Store, obj: JsonObject): string {
    const ns = metaOf(obj).namespace;
    return store.type.namespaced ? (typeof ns === 'string' ? ns : 'default') : '';
  }

  // ---- faults and watch control ----

  /** Open watch streams, optionally of one resource (`pods`, `clipimages.clip.csi.dev`). */
  watchCount(resource?: string): number {
    if (resource === undefined) return this.watches.size;
    return this.cluster.byName(resource).watchers.size;
  }

  /** Ends every open watch: `reset` (default) drops the connection, otherwise the stream ends cleanly. */
  dropWatches(mode: 'reset' | 'end' = 'reset'): number {
    const streams = [...this.watches];
    for (const w of streams) {
      if (mode === 'reset') w.reset();
      else w.end();
    }
    return streams.length;
  }

  /** Forgets all history: a watch or continue token from any resourceVersion before now gets 410 Expired. */
  compact(): void {
    const rv = this.cluster.clock.next();
    for (const store of this.cluster.all()) store.compact(rv);
  }

  /** A BOOKMARK with the current resourceVersion to every watch that allowed bookmarks. */
  sendBookmarks(): void {
    const rv = this.cluster.clock.current();
    for (const w of this.watches) w.bookmark(rv);
  }

  clearRequests(): void {
    this.requests.length = 0;
  }

  // ---- HTTP ----

  private log(req: IncomingMessage, url: URL, user: string, verb: string, code: number): void {
    this.requests.push({ method: req.method ?? '', path: url.pathname, query: Object.fromEntries(url.searchParams), user, verb, code });
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://localhost');
    let user = '';
    let verb = '';
    try {
      if (['/healthz', '/livez', '/readyz'].includes(url.pathname)) {
        res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
        return this.log(req, url, user, verb, 200);
      }
      user = this.users.authenticate(req.headers.authorization);
      const doc = discovery(url.pathname, this.cluster);
      if (doc !== undefined) {
        sendJson(res, 200, doc);
        return this.log(req, url, user, verb, 200);
      }
      const target = parseTarget(url.pathname);
      const store = target && this.cluster.find(target.group, target.version, target.resource);
      if (target === undefined || store === undefined) throw unknownPath();
      verb = verbOf(req.method ?? '', target, url.searchParams);
      // A namespaced object is only addressed inside its namespace; a cluster-scoped one never is.
      const misplaced = store.type.namespaced ? target.namespace === '' && (target.name !== '' || verb === 'create') : target.namespace !== '';
      if (misplaced || (target.subresource === 'status' && !store.type.hasStatus)) throw unknownPath();
      const { namespace } = target;
      this.users.authorize(user, { verb, group: target.group, resource: target.resource, subresource: target.subresource, namespace, name: target.name });
      if (verb === 'watch') {
        startWatch(store, target, url.searchParams, res, this.watches);
        return this.log(req, url, user, verb, 200);
      }
      const { code, body } = await handle(this.cluster, store, target, verb, req, url.searchParams);
      sendJson(res, code, body);
      this.log(req, url, user, verb, code);
    } catch (err) {
      const error = err instanceof ApiError ? err : new ApiError(500, 'InternalError', `Internal error occurred: ${String(err)}`);
      if (!res.headersSent) sendJson(res, error.code, error.status());
      else res.destroy();
      this.log(req, url, user, verb, error.code);
    }
  }
}
