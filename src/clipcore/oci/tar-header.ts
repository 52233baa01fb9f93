import { TarSyntaxError } from './tar-syntax-error.js';

export const BLOCK_SIZE = 512;

/** Typeflags as char codes. `\0` is the pre-POSIX regular file. */
export const TYPE = {
  OLD_FILE: 0,
  FILE: 0x30, // '0'
  HARDLINK: 0x31, // '1'
  SYMLINK: 0x32, // '2'
  CHAR: 0x33, // '3'
  BLOCK: 0x34, // '4'
  DIRECTORY: 0x35, // '5'
  FIFO: 0x36, // '6'
  CONTIGUOUS: 0x37, // '7'
  PAX_LOCAL: 0x78, // 'x'
  PAX_GLOBAL: 0x67, // 'g'
  GNU_LONG_NAME: 0x4c, // 'L'
  GNU_LONG_LINK: 0x4b, // 'K'
  GNU_DUMPDIR: 0x44, // 'D'
  GNU_VOLUME: 0x56, // 'V'
} as const;

/** The fields of one 512-byte header block, before extended headers are applied. */
export interface TarHeader {
  /** With the ustar prefix joined on; not normalized. */
  readonly name: string;
  readonly linkName: string;
  readonly typeflag: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtimeSec: number;
  readonly devMajor: number;
  readonly devMinor: number;
}

/**
 * Decodes one header block. Returns null for an all-zero block (the end-of-archive marker).
 * Throws TarSyntaxError when the checksum or a numeric field is wrong.
 */
export function decodeHeader(block: Buffer): TarHeader | null {
  // One pass over the block gives both the zero test and the unsigned checksum.
  let total = 0;
  for (let i = 0; i < BLOCK_SIZE; i++) total += block[i];
  if (total === 0) return null;
  let checksumField = 0;
  for (let i = 148; i < 156; i++) checksumField += block[i];
  const unsigned = total - checksumField + 8 * 0x20;
  const stored = parseOctal(block, 148, 8, 'checksum');
  // Some historic tars summed signed chars; accept either, as GNU tar and Go do.
  if (stored !== unsigned && stored !== signedChecksum(block)) {
    throw new TarSyntaxError(`header checksum mismatch (stored ${stored}, computed ${unsigned})`);
  }

  const format = detectFormat(block);
  let name = cString(block, 0, 100);
  if (format !== 'gnu' && format !== 'v7') {
    // In GNU headers this area holds atime/ctime, so only ustar/star have a name prefix.
    const prefix = cString(block, 345, format === 'star' ? 131 : 155);
    if (prefix !== '') name = `${prefix}/${name}`;
  }
  return {
    name,
    linkName: cString(block, 157, 100),
    typeflag: block[156],
    mode: parseNumber(block, 100, 8, 'mode'),
    uid: parseNumber(block, 108, 8, 'uid'),
    gid: parseNumber(block, 116, 8, 'gid'),
    size: parseNumber(block, 124, 12, 'size'),
    mtimeSec: parseNumber(block, 136, 12, 'mtime'),
    devMajor: format === 'v7' ? 0 : parseNumber(block, 329, 8, 'devmajor'),
    devMinor: format === 'v7' ? 0 : parseNumber(block, 337, 8, 'devminor'),
  };
}

type Format = 'ustar' | 'star' | 'gnu' | 'v7';

function detectFormat(block: Buffer): Format {
  // "ustar" at 257 for every modern format; what follows tells POSIX ("\0" "00") from GNU (" " " \0").
  if (block[257] !== 0x75 || block[258] !== 0x73 || block[259] !== 0x74 || block[260] !== 0x61 || block[261] !== 0x72) {
    return 'v7';
  }
  if (block[262] === 0x20 && block[263] === 0x20) return 'gnu';
  // star puts "tar\0" at 508 and uses the tail of the prefix field for times.
  if (block[508] === 0x74 && block[509] === 0x61 && block[510] === 0x72 && block[511] === 0) return 'star';
  return 'ustar';
}

function signedChecksum(block: Buffer): number {
  let sum = 8 * 0x20;
  for (let i = 0; i < BLOCK_SIZE; i++) {
    if (i >= 148 && i < 156) continue;
    sum += block.readInt8(i);
  }
  return sum;
}

/** A NUL-terminated (or field-filling) UTF-8 string. */
function cString(block: Buffer, start: number, length: number): string {
  const end = start + length;
  let stop = start;
  while (stop < end && block[stop] !== 0) stop++;
  return stop === start ? '' : block.toString('utf8', start, stop);
}

/** A numeric field: octal text, or GNU/star base-256 when the high bit of the first byte is set. */
export function parseNumber(block: Buffer, start: number, length: number, field: string): number {
  const first = block[start];
  if ((first & 0x80) === 0) return parseOctal(block, start, length, field);
  // Base-256, two's complement; bit 6 of the first byte is the sign. -a-1 == ~a, as Go does it.
  const invert = (first & 0x40) !== 0 ? 0xff : 0;
  let value = 0;
  for (let i = start; i < start + length; i++) {
    let byte = block[i] ^ invert;
    if (i === start) byte &= 0x7f;
    value = value * 256 + byte;
    if (value > Number.MAX_SAFE_INTEGER) throw new TarSyntaxError(`${field} field is out of range`);
  }
  return invert ? -value - 1 : value;
}

function parseOctal(block: Buffer, start: number, length: number, field: string): number {
  // Fields are padded with spaces or NULs on either side depending on the writer.
  let i = start;
  let end = start + length;
  while (i < end && (block[i] === 0x20 || block[i] === 0)) i++;
  while (end > i && (block[end - 1] === 0x20 || block[end - 1] === 0)) end--;
  let value = 0;
  for (; i < end; i++) {
    const digit = block[i] - 0x30;
    if (digit < 0 || digit > 7) {
      throw new TarSyntaxError(`${field} field is not octal: ${JSON.stringify(block.toString('latin1', start, start + length))}`);
    }
    value = value * 8 + digit;
  }
  return value;
}
