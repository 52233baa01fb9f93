import { createHash } from 'node:crypto';
import { ArchiveFormatError } from '../errors.js';

/**
 * The .clip container: a fixed preamble, a section table and a header checksum, then the sections.
 * docs/format.md is the specification; this file is its code.
 *
 *   0   magic "\x89CLIP\r\n\x1a"       8 bytes
 *   8   format version                u16 LE
 *   10  reserved (0)                  u16
 *   12  section count                 u32 LE
 *   16  archive length in bytes       u64 LE
 *   24  section table: count x 64 bytes
 *   ..  sha256 of every byte above    32 bytes
 */

export const MAGIC = Buffer.from([0x89, 0x43, 0x4c, 0x49, 0x50, 0x0d, 0x0a, 0x1a]);
export const FORMAT_VERSION = 1;
export const PREAMBLE_BYTES = 24;
export const SECTION_ENTRY_BYTES = 64;
export const MAX_SECTIONS = 32;
/** Enough to hold the header, the metadata and a typical TOC in the first read of an archive. */
export const FIRST_READ_BYTES = 256 * 1024;

export enum SectionKind {
  /** JSON: storage mode and its parameters, image metadata. */
  Meta = 1,
  /** Binary table of contents (toc-codec.ts). */
  Toc = 2,
  /** Local mode: file contents, each distinct content once. */
  Data = 3,
  /** sha256 of each fixed-size span of the data blob (local and s3 modes). */
  DataSpans = 4,
  /** OCI mode: per-layer checkpoints and compressed span digests. */
  LayerIndex = 5,
  /** OCI mode: compressed 32 KiB inflate windows, fetched lazily. */
  Windows = 6,
}

export enum SectionCompression {
  None = 0,
  Brotli = 1,
}

export interface SectionEntry {
  readonly kind: SectionKind;
  readonly compression: SectionCompression;
  /** Byte offset of the stored section in the archive. */
  readonly offset: number;
  /** Stored (possibly compressed) length. */
  readonly length: number;
  /** Length after decompression; the reader never inflates past it. */
  readonly rawLength: number;
  /** sha256 of the stored bytes. */
  readonly sha256: Buffer;
}

export interface Header {
  readonly version: number;
  readonly archiveLength: number;
  readonly sections: readonly SectionEntry[];
}

export function headerLength(sectionCount: number): number {
  return PREAMBLE_BYTES + sectionCount * SECTION_ENTRY_BYTES + 32;
}

export function encodeHeader(header: Header): Buffer {
  const out = Buffer.alloc(headerLength(header.sections.length));
  MAGIC.copy(out, 0);
  out.writeUInt16LE(header.version, 8);
  out.writeUInt32LE(header.sections.length, 12);
  out.writeBigUInt64LE(BigInt(header.archiveLength), 16);
  header.sections.forEach((section, i) => {
    const at = PREAMBLE_BYTES + i * SECTION_ENTRY_BYTES;
    out.writeUInt16LE(section.kind, at);
    out.writeUInt8(section.compression, at + 2);
    out.writeBigUInt64LE(BigInt(section.offset), at + 8);
    out.writeBigUInt64LE(BigInt(section.length), at + 16);
    out.writeBigUInt64LE(BigInt(section.rawLength), at + 24);
    section.sha256.copy(out, at + 32);
  });
  sha256(out.subarray(0, out.length - 32)).copy(out, out.length - 32);
  return out;
}

/**
 * Parses the header from the first bytes of an archive. Returns the number of bytes needed when
 * `prefix` is too short to hold the whole header, so that callers can read more and retry.
 */
export function decodeHeader(prefix: Buffer, sourceSize: number, where: string): Header | { needBytes: number } {
  if (prefix.length < MAGIC.length) {
    if (sourceSize < MAGIC.length) throw new ArchiveFormatError('TRUNCATED', `${where}: file is ${sourceSize} bytes, too short to be a .clip archive`);
    return { needBytes: PREAMBLE_BYTES };
  }
  if (!prefix.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new ArchiveFormatError('BAD_MAGIC', `${where}: not a .clip archive (bad magic number)`);
  }
  if (prefix.length < PREAMBLE_BYTES) {
    if (sourceSize < PREAMBLE_BYTES) throw truncated(where, sourceSize, PREAMBLE_BYTES);
    return { needBytes: PREAMBLE_BYTES };
  }
  const version = prefix.readUInt16LE(8);
  if (version > FORMAT_VERSION || version === 0) {
    throw new ArchiveFormatError('UNSUPPORTED_VERSION', `${where}: archive format version ${version} is not supported; this build reads version ≤ ${FORMAT_VERSION}`);
  }
  const count = prefix.readUInt32LE(12);
  if (count > MAX_SECTIONS) {
    throw new ArchiveFormatError('CORRUPT', `${where}: header declares ${count} sections (at most ${MAX_SECTIONS} allowed)`);
  }
  const length = headerLength(count);
  if (prefix.length < length) {
    if (sourceSize < length) throw truncated(where, sourceSize, length);
    return { needBytes: length };
  }
  const header = prefix.subarray(0, length);
  if (!sha256(header.subarray(0, length - 32)).equals(header.subarray(length - 32))) {
    throw new ArchiveFormatError('CHECKSUM_MISMATCH', `${where}: header checksum mismatch (the header is damaged)`);
  }
  const archiveLength = readLength(header, 16, where);
  if (sourceSize < archiveLength) throw truncated(where, sourceSize, archiveLength);
  const sections: SectionEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = PREAMBLE_BYTES + i * SECTION_ENTRY_BYTES;
    const section: SectionEntry = {
      kind: header.readUInt16LE(at),
      compression: header.readUInt8(at + 2),
      offset: readLength(header, at + 8, where),
      length: readLength(header, at + 16, where),
      rawLength: readLength(header, at + 24, where),
      sha256: Buffer.from(header.subarray(at + 32, at + 64)),
    };
    if (section.offset < length || section.offset + section.length > archiveLength) {
      throw new ArchiveFormatError('OUT_OF_RANGE', `${where}: section ${SectionKind[section.kind] ?? section.kind} [${section.offset}, +${section.length}) lies outside the archive body (${length}..${archiveLength})`);
    }
    if (!(section.compression in SectionCompression)) {
      throw new ArchiveFormatError('CORRUPT', `${where}: section ${section.kind} uses unknown compression ${section.compression}`);
    }
    sections.push(section);
  }
  return { version, archiveLength, sections };
}

function readLength(buffer: Buffer, at: number, where: string): number {
  const value = buffer.readBigUInt64LE(at);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ArchiveFormatError('OUT_OF_RANGE', `${where}: length field at byte ${at} is out of range`);
  }
  return Number(value);
}

function truncated(where: string, actual: number, needed: number): ArchiveFormatError {
  return new ArchiveFormatError('TRUNCATED', `${where}: archive is truncated (${actual} bytes, expected ${needed})`);
}

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}
