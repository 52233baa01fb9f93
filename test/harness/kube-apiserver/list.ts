/** GET of a collection: kube's List with resourceVersion, limit/continue pagination and selectors. */
import { badRequest, expired } from './errors.js';
import type { JsonObject } from './json.js';
import { apiVersionOf } from './resources.js';
import type { Predicate } from './selectors.js';
import type { Store } from './store.js';

interface ContinueToken {
  rv: number;
  start: string;
}

function encodeContinue(token: ContinueToken): string {
  return Buffer.from(JSON.stringify(token)).toString('base64url');
}

function decodeContinue(text: string): ContinueToken {
  try {
    const token = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Partial<ContinueToken>;
    if (typeof token.rv === 'number' && typeof token.start === 'string') return { rv: token.rv, start: token.start };
  } catch {
    // falls through to the error below
  }
  throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
}

/** First index in sorted `keys` from which `past` holds (binary search; `past` must be monotonic). */
function firstIndex(keys: string[], past: (key: string) => boolean): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (past(keys[mid] ?? '')) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export interface ListQuery {
  namespace: string;
  filter?: Predicate;
  limit: number; // 0: everything
  continueToken: string | null;
}

/**
 * Pages are served from the live store in key order after the token's last key, with the first page's
 * resourceVersion (kube reads them from an etcd snapshot; the differences a watch from that version repairs).
 */
export function listObjects(store: Store, currentRv: number, q: ListQuery): JsonObject {
  const { type } = store;
  const token = q.continueToken === null || q.continueToken === '' ? undefined : decodeContinue(q.continueToken);
  if (token !== undefined && token.rv < store.compactedRv) {
    throw expired('The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue value from the response to get a list with less data.');
  }
  const keys = store.keys();
  const prefix = q.namespace === '' ? '' : `${q.namespace}/`;
  // One namespace's keys are contiguous: start at its first key (or after the page before), stop at its last.
  let i = token !== undefined ? firstIndex(keys, (k) => k > token.start) : firstIndex(keys, (k) => k >= prefix);
  const end = prefix === '' ? keys.length : firstIndex(keys, (k) => k > `${prefix}\uffff`);
  const items: JsonObject[] = [];
  let last = '';
  for (; i < end; i++) {
    const key = keys[i] ?? '';
    if (q.limit > 0 && items.length >= q.limit) break;
    const obj = store.byKey(key);
    if (obj === undefined || (q.filter !== undefined && !q.filter(obj))) continue;
    items.push(type.custom ? obj : withoutTypeMeta(obj));
    last = key;
  }
  const rv = token?.rv ?? currentRv;
  const metadata: JsonObject = { resourceVersion: String(rv) };
  if (i < end) {
    metadata.continue = encodeContinue({ rv, start: last });
    if (q.filter === undefined) metadata.remainingItemCount = end - i;
  }
  return { kind: `${type.kind}List`, apiVersion: apiVersionOf(type), metadata, items };
}

/** Items of built-in lists carry no kind/apiVersion in kube's JSON (custom resources' items do). */
function withoutTypeMeta(obj: JsonObject): JsonObject {
  const { kind: _k, apiVersion: _a, ...rest } = obj;
  return rest;
}
