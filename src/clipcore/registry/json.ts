/** Small guards for walking untrusted JSON without `any`. */
import { ClipError } from '../errors.js';

export type JsonObject = { readonly [key: string]: unknown };

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses JSON, throwing CORRUPT with `what` in the message (never the content, which may be large). */
export function parseJsonObject(data: Buffer, what: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new ClipError('CORRUPT', `${what} is not valid JSON`, { cause: err });
  }
  if (!isObject(value)) throw new ClipError('CORRUPT', `${what} is not a JSON object`);
  return value;
}

export function optionalString(obj: JsonObject, key: string): string | undefined {
  const value = obj[key];
  return typeof value === 'string' ? value : undefined;
}

export function optionalStringArray(obj: JsonObject, key: string): string[] | undefined {
  const value = obj[key];
  if (!Array.isArray(value)) return undefined;
  return value.filter((v): v is string => typeof v === 'string');
}

export function optionalStringMap(obj: JsonObject, key: string): Record<string, string> | undefined {
  const value = obj[key];
  if (!isObject(value)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) if (typeof v === 'string') out[k] = v;
  return out;
}
