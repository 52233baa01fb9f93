/**
 * Bounds on what a CSI request may carry, and on what of it is ever echoed back. A client's
 * metadata limit (often 8 KiB) turns an over-long error message into RESOURCE_EXHAUSTED, hiding the
 * real code, and a log line quoting a megabyte grows the log by that much: every value quoted in an
 * error or a log line goes through `quote` or `truncate`.
 */
import { invalidArgument } from './errors.js';

/** Longest part of a value that is quoted in an error or a log line. */
export const QUOTE_CHARS = 128;
/** Longest error message sent back (the rest is cut, with a note). */
export const MESSAGE_CHARS = 2048;

/** The value itself if short, else its first QUOTE_CHARS characters and how much was cut. */
export function truncate(value: string, max = QUOTE_CHARS): string {
  if (value.length <= max) return value;
  return `${value.slice(0, max)}…(${value.length - max} more characters)`;
}

/** A value as quoted in messages: JSON-escaped, bounded. */
export function quote(value: string, max = QUOTE_CHARS): string {
  return JSON.stringify(truncate(value, max));
}

/** Refuses a string field longer than `maxBytes` (UTF-8), naming the field and the limit. */
export function checkLength(field: string, value: string, maxBytes: number): string {
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > maxBytes) throw invalidArgument(`${field} is ${bytes} bytes long, over the limit of ${maxBytes} bytes: ${quote(value)}`);
  return value;
}

/** Refuses a map with more than `maxKeys` entries. */
export function checkKeyCount(field: string, map: Readonly<Record<string, string>>, maxKeys: number): void {
  const count = Object.keys(map).length;
  if (count > maxKeys) throw invalidArgument(`${field} has ${count} keys, over the limit of ${maxKeys}`);
}
