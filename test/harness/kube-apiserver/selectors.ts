/** labelSelector and fieldSelector query parameters, parsed once per request into a predicate. */
import { badRequest } from './errors.js';
import { fieldAt, isObject, type JsonObject } from './json.js';

export type Predicate = (obj: JsonObject) => boolean;

function labelsOf(obj: JsonObject): Record<string, string> {
  const meta = obj.metadata;
  const labels = isObject(meta) ? meta.labels : undefined;
  const out: Record<string, string> = {};
  if (isObject(labels)) for (const [k, v] of Object.entries(labels)) if (typeof v === 'string') out[k] = v;
  return out;
}

/** Splits on commas outside parentheses: `a in (x,y),b` is two requirements. */
function requirements(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < selector.length; i++) {
    if (selector[i] === '(') depth++;
    else if (selector[i] === ')') depth--;
    else if (selector[i] === ',' && depth === 0) {
      parts.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(selector.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

function labelRequirement(req: string): (labels: Record<string, string>) => boolean {
  const set = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(req);
  if (set !== null) {
    const [, key, op, list] = set;
    const values = new Set(list.split(',').map((v) => v.trim()));
    return op === 'in' ? (l) => key in l && values.has(l[key] ?? '') : (l) => !(key in l) || !values.has(l[key] ?? '');
  }
  const eq = /^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$/.exec(req);
  if (eq !== null) {
    const [, key, op, value] = eq;
    return op === '!=' ? (l) => l[key] !== value : (l) => l[key] === value;
  }
  const exists = /^(!?)([\w./-]+)$/.exec(req);
  if (exists !== null) {
    const [, not, key] = exists;
    return not === '!' ? (l) => !(key in l) : (l) => key in l;
  }
  throw badRequest(`unable to parse requirement: ${req}`);
}

export function labelSelector(selector: string | null): Predicate | undefined {
  if (selector === null || selector.trim() === '') return undefined;
  const reqs = requirements(selector).map(labelRequirement);
  return (obj) => {
    const labels = labelsOf(obj);
    return reqs.every((r) => r(labels));
  };
}

/** `metadata.name=x`, `spec.nodeName!=`: any dotted field path, compared as a string ('' when absent). */
export function fieldSelector(selector: string | null): Predicate | undefined {
  if (selector === null || selector.trim() === '') return undefined;
  const reqs = requirements(selector).map((req): Predicate => {
    const m = /^([\w.]+)\s*(==|=|!=)\s*(.*)$/.exec(req);
    if (m === null) throw badRequest(`invalid field selector: ${req}`);
    const [, path, op, value] = m;
    return op === '!=' ? (o) => fieldAt(o, path) !== value : (o) => fieldAt(o, path) === value;
  });
  return (obj) => reqs.every((r) => r(obj));
}

export function both(a: Predicate | undefined, b: Predicate | undefined): Predicate | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return (o) => a(o) && b(o);
}
