import type { Xattr } from '../archive/model.js';
import { compareNames } from '../archive/toc-builder.js';
import { TarSyntaxError } from './tar-syntax-error.js';

const XATTR_PREFIX = 'SCHILY.xattr.';

/** PAX records by keyword. Values stay raw bytes: xattr values are binary, not text. */
export type PaxRecords = Map<string, Buffer>;

/**
 * Parses the data of a PAX extended header: records of the form "<len> <key>=<value>\n", where
 * <len> counts the whole record in bytes. Values may contain any byte, including newlines.
 */
export function parsePaxRecords(data: Buffer): PaxRecords {
  const records: PaxRecords = new Map();
  let pos = 0;
  while (pos < data.length) {
    // Some writers NUL-pad the data; nothing follows the padding.
    if (data[pos] === 0) break;
    const space = data.indexOf(0x20, pos);
    if (space < 0 || space - pos > 20) throw new TarSyntaxError('PAX record has no length');
    const length = parseDecimal(data.toString('latin1', pos, space));
    const end = pos + (length ?? 0);
    if (length === null || end <= space + 1 || end > data.length || data[end - 1] !== 0x0a) {
      throw new TarSyntaxError(`malformed PAX record at byte ${pos} of the extended header`);
    }
    const equals = data.indexOf(0x3d, space + 1);
    if (equals < 0 || equals >= end) throw new TarSyntaxError(`PAX record at byte ${pos} has no '='`);
    records.set(data.toString('utf8', space + 1, equals), data.subarray(equals + 1, end - 1));
    pos = end;
  }
  return records;
}

/** A non-negative decimal integer, or null. */
export function parseDecimal(text: string): number | null {
  if (!/^[0-9]{1,16}$/.test(text)) return null;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : null;
}

/** A PAX time ("1700000000", "1700000000.123456789", "-1.5") in nanoseconds; extra digits truncate. */
export function parsePaxTime(text: string): bigint | null {
  const match = /^(-?)([0-9]{1,20})(?:\.([0-9]*))?$/.exec(text);
  if (!match) return null;
  const [, sign, whole, fraction = ''] = match;
  const ns = BigInt(whole) * 1_000_000_000n + BigInt(fraction.slice(0, 9).padEnd(9, '0'));
  return sign === '-' ? -ns : ns;
}

export function rejectSparse(pax: PaxRecords): void {
  for (const key of pax.keys()) {
    if (key.startsWith('GNU.sparse.')) throw new TarSyntaxError('PAX sparse files are not supported');
  }
}

export function paxString(pax: PaxRecords | null, key: string): string | undefined {
  const value = pax?.get(key);
  // An empty value unsets the keyword (it overrides a global record back to the header field).
  return value === undefined || value.length === 0 ? undefined : value.toString('utf8');
}

export function paxNumber(pax: PaxRecords | null, key: string): number | undefined {
  const text = paxString(pax, key);
  if (text === undefined) return undefined;
  const value = parseDecimal(text);
  if (value === null) throw new TarSyntaxError(`PAX ${key} is not a number: ${JSON.stringify(text)}`);
  return value;
}

export function paxTime(pax: PaxRecords | null): bigint | undefined {
  const text = paxString(pax, 'mtime');
  if (text === undefined) return undefined;
  const value = parsePaxTime(text);
  if (value === null) throw new TarSyntaxError(`PAX mtime is not a time: ${JSON.stringify(text)}`);
  return value;
}

export function collectXattrs(pax: PaxRecords): Xattr[] {
  const xattrs: Xattr[] = [];
  for (const [key, value] of pax) {
    if (!key.startsWith(XATTR_PREFIX) || key.length === XATTR_PREFIX.length) continue;
    // Copied so entries don't pin (or share) the extended header's buffer.
    xattrs.push({ name: key.slice(XATTR_PREFIX.length), value: Buffer.from(value) });
  }
  return xattrs.length > 1 ? xattrs.sort((a, b) => compareNames(a.name, b.name)) : xattrs;
}
