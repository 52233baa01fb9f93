/**
 * PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902). Strategic merge patch is applied as a merge
 * patch: the same for maps and scalars; lists are replaced whole (kube merges some lists by key, e.g. conditions).
 */
import { badRequest, unsupportedMediaType, ApiError } from './errors.js';
import { clone, deepEqual, isObject, type Json, type JsonObject } from './json.js';

export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

interface Operation {
  op: string;
  path: string;
  from?: string;
  value?: Json;
}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw badRequest(`invalid JSON pointer: ${path}`);
  return path.slice(1).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function failed(message: string): ApiError {
  return new ApiError(422, 'Invalid', `the server rejected our request due to an error in our request: ${message}`);
}

/** The container holding the last token of `tokens`, walked in `root` (already a private copy). */
function parentOf(root: Json, tokens: string[], path: string): JsonObject | Json[] {
  let cur: Json | undefined = root;
  for (const t of tokens.slice(0, -1)) {
    cur = Array.isArray(cur) ? cur[Number(t)] : isObject(cur) ? cur[t] : undefined;
  }
  if (!Array.isArray(cur) && !isObject(cur)) throw failed(`path ${path} does not exist`);
  return cur;
}

function getAt(root: Json, path: string): Json {
  const tokens = pointer(path);
  if (tokens.length === 0) return root;
  const parent = parentOf(root, tokens, path);
  const last = tokens[tokens.length - 1] ?? '';
  const value = Array.isArray(parent) ? parent[Number(last)] : parent[last];
  if (value === undefined) throw failed(`path ${path} does not exist`);
  return value;
}

function removeAt(root: Json, path: string): Json {
  const tokens = pointer(path);
  const parent = parentOf(root, tokens, path);
  const last = tokens[tokens.length - 1] ?? '';
  const value = getAt(root, path);
  if (Array.isArray(parent)) parent.splice(Number(last), 1);
  else delete parent[last];
  return value;
}

function addAt(root: Json, path: string, value: Json, replace: boolean): Json {
  const tokens = pointer(path);
  if (tokens.length === 0) return value;
  if (replace) getAt(root, path); // replace needs an existing target
  const parent = parentOf(root, tokens, path);
  const last = tokens[tokens.length - 1] ?? '';
  if (Array.isArray(parent)) {
    const index = last === '-' ? parent.length : Number(last);
    if (!Number.isInteger(index) || index < 0 || index > parent.length) throw failed(`index ${last} out of range`);
    parent.splice(index, replace ? 1 : 0, value);
  } else {
    parent[last] = value;
  }
  return root;
}

function operations(body: Json): Operation[] {
  if (!Array.isArray(body)) throw badRequest('a JSON patch must be a list of operations');
  return body.map((op) => {
    if (!isObject(op) || typeof op.op !== 'string' || typeof op.path !== 'string') throw badRequest('invalid JSON patch operation');
    return { op: op.op, path: op.path, from: typeof op.from === 'string' ? op.from : undefined, value: op.value };
  });
}

export function jsonPatch(target: Json, body: Json): Json {
  let doc = clone(target);
  for (const { op, path, from, value } of operations(body)) {
    const need = (v: Json | undefined): Json => {
      if (v === undefined) throw badRequest(`JSON patch ${op} needs a value`);
      return v;
    };
    if (op === 'add') doc = addAt(doc, path, clone(need(value)), false);
    else if (op === 'replace') doc = addAt(doc, path, clone(need(value)), true);
    else if (op === 'remove') removeAt(doc, path);
    else if (op === 'test') {
      if (!deepEqual(getAt(doc, path), need(value))) throw failed(`testing value ${path} failed`);
    } else if (op === 'move' || op === 'copy') {
      if (from === undefined) throw badRequest(`JSON patch ${op} needs from`);
      const moved = op === 'move' ? removeAt(doc, from) : clone(getAt(doc, from));
      doc = addAt(doc, path, moved, false);
    } else throw badRequest(`unknown JSON patch operation ${op}`);
  }
  return doc;
}

/** Applies a PATCH body of the given Content-Type to a stored object. */
export function applyPatch(contentType: string, target: JsonObject, body: Json): Json {
  const type = contentType.split(';')[0]?.trim() ?? '';
  if (type === 'application/json-patch+json') return jsonPatch(target, body);
  if (type === 'application/merge-patch+json' || type === 'application/strategic-merge-patch+json') {
    return mergePatch(target, body);
  }
  throw unsupportedMediaType(type);
}
