/** The verbs on a resource path: what each HTTP request does to the cluster, and what it answers. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Cluster } from './cluster.js';
import { ApiError, badRequest, methodNotAllowed, statusObject } from './errors.js';
import { isObject, parseJson, type Json, type JsonObject } from './json.js';
import { listObjects } from './list.js';
import { apiVersionOf } from './resources.js';
import type { Target } from './routes.js';
import { both, fieldSelector, labelSelector, type Predicate } from './selectors.js';
import { metaOf, type Store } from './store.js';
import { WatchStream } from './watch.js';

const MAX_BODY = 3 * 1024 * 1024;

/** kube's RBAC verb for a request. */
export function verbOf(method: string, target: Target, query: URLSearchParams): string {
  const watch = query.get('watch') === 'true' || query.get('watch') === '1';
  if (method === 'GET') return target.name !== '' ? 'get' : watch ? 'watch' : 'list';
  if (method === 'POST') return 'create';
  if (method === 'PUT') return 'update';
  if (method === 'PATCH') return 'patch';
  if (method === 'DELETE') return target.name !== '' ? 'delete' : 'deletecollection';
  throw methodNotAllowed(`the server does not allow this method on the requested resource`);
}

export async function readBody(req: IncomingMessage): Promise<Json | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > MAX_BODY) throw new ApiError(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728');
    chunks.push(buf);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return undefined;
  const body = parseJson(text);
  if (body === undefined) throw badRequest('the body of the request could not be decoded as JSON');
  return body;
}

export function sendJson(res: ServerResponse, code: number, body: JsonObject): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function selectors(store: Store, namespace: string, query: URLSearchParams): Predicate | undefined {
  const byNamespace: Predicate | undefined =
    store.type.namespaced && namespace !== '' ? (o) => metaOf(o).namespace === namespace : undefined;
  return both(byNamespace, both(labelSelector(query.get('labelSelector')), fieldSelector(query.get('fieldSelector'))));
}

export function startWatch(store: Store, target: Target, query: URLSearchParams, res: ServerResponse, streams: Set<WatchStream>): void {
  const rvParam = query.get('resourceVersion') ?? '';
  const fromRv = rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
  if (fromRv !== undefined && !Number.isSafeInteger(fromRv)) throw badRequest(`invalid resource version: ${rvParam}`);
  const filter = selectors(store, target.namespace, query);
  const stream = new WatchStream(
    res,
    {
      kind: store.type.kind,
      apiVersion: apiVersionOf(store.type),
      matches: filter ?? (() => true),
      bookmarks: query.get('allowWatchBookmarks') === 'true',
    },
    (s) => {
      store.watchers.delete(s);
      streams.delete(s);
    },
  );
  if (fromRv === undefined) {
    // No resourceVersion (or 0): the current objects as ADDED, then changes (kube's "Get State and Start").
    const objects = store.keys().map((k) => store.byKey(k)).filter((o): o is JsonObject => o !== undefined);
    stream.sendInitial(objects);
  } else {
    const events = store.eventsSince(fromRv);
    if (events === undefined) {
      const message = `too old resource version: ${fromRv} (${store.compactedRv + 1})`;
      stream.fail(statusObject(410, 'Expired', message));
      return;
    }
    for (const e of events) stream.deliver(e);
  }
  store.watchers.add(stream);
  streams.add(stream);
  const timeout = Number(query.get('timeoutSeconds') ?? 0);
  if (timeout > 0) {
    const timer = setTimeout(() => stream.end(), timeout * 1000);
    res.on('close', () => clearTimeout(timer));
  }
}

/** Everything but watch: answers with the object, the list, or throws an ApiError. */
export async function handle(cluster: Cluster, store: Store, target: Target, verb: string, req: IncomingMessage, query: URLSearchParams): Promise<{ code: number; body: JsonObject }> {
  const { namespace, name, subresource } = target;
  switch (verb) {
    case 'get':
      return { code: 200, body: cluster.get(store, namespace, name) };
    case 'list': {
      const limit = Number(query.get('limit') ?? 0);
      if (!Number.isSafeInteger(limit) || limit < 0) throw badRequest(`invalid limit: ${query.get('limit')}`);
      const filter = both(labelSelector(query.get('labelSelector')), fieldSelector(query.get('fieldSelector')));
      const list = listObjects(store, cluster.clock.current(), { namespace, filter, limit, continueToken: query.get('continue') });
      return { code: 200, body: list };
    }
    case 'create':
      if (name !== '') throw methodNotAllowed('POST is not allowed on a named resource');
      return { code: 201, body: cluster.create(store, namespace, await readBody(req)) };
    case 'update':
      return { code: 200, body: cluster.update(store, namespace, name, await readBody(req), subresource) };
    case 'patch': {
      const body = await readBody(req);
      if (body === undefined) throw badRequest('a PATCH needs a body');
      return { code: 200, body: cluster.patch(store, namespace, name, req.headers['content-type'] ?? '', body, subresource) };
    }
    case 'delete': {
      const options = await readBody(req);
      const pre = isObject(options) && isObject(options.preconditions) ? options.preconditions.resourceVersion : undefined;
      return { code: 200, body: cluster.delete(store, namespace, name, typeof pre === 'string' ? pre : undefined) };
    }
    default:
      throw methodNotAllowed(`${verb} is not supported by this test API server`);
  }
}
