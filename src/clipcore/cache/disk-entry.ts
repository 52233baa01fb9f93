import { createHash, hash } from 'node:crypto';
import { ClipError } from '../errors.js';
import { loadAddon } from '../native-addon.js';

/**
 * The file format of one disk cache entry (docs/cache.md):
 *
 *   0   8   magic 89 43 4C 49 50 43 0D 0A ("\x89CLIPC\r\n")
 *   8   4   entry format version (1), little-endian
 *   12  4   block size B (4 KiB by default; readers take it from the header)
 *   16  8   content length L
 *   24  32  sha256 of the entry's key (the entry answers only to its own name)
 *   56  32n sha256 of each B-byte block of the content (n = ceil(L / B))
 *   ..  32  sha256 of every header byte before it
 *   zero padding to a multiple of 4096, then the L content bytes
 *
 * A read checks only the blocks it touches: a 4 KiB read (a page, what random readers and the
 * kernel ask for) reads and hashes 4 KiB, not the span. The price is a longer header (32 bytes a
 * block, read once per entry and process): 20 KiB for a 2 MiB span, 1 % of it. Earlier versions
 * wrote 16 KiB blocks, which made every small read from disk read and hash four times the page.
 */
export const ENTRY_MAGIC = Buffer.from([0x89, 0x43, 0x4c, 0x49, 0x50, 0x43, 0x0d, 0x0a]);
export const ENTRY_VERSION = 1;
export const DEFAULT_BLOCK_BYTES = 4 * 1024;
const FIXED = 56;
const ALIGN = 4096;
/** Entries larger than this are refused (a span is at most 16 MiB uncompressed, plus slack). */
export const MAX_ENTRY_CONTENT = 1 << 30;

export interface EntryHeader {
  readonly blockBytes: number;
  readonly length: number;
  readonly blockDigests: Buffer;
  /** Where the content starts in the file. */
  readonly dataOffset: number;
}

/**
 * One-shot `crypto.hash` where Node has it (20.12 and later): on a read that follows a pause it
 * costs about 20 µs here against 55–70 µs for `createHash`, and a first read of an entry hashes
 * three times (key, header, block).
 */
export const sha256: (data: Uint8Array | string) => Buffer =
  typeof hash === 'function' ? (data) => hash('sha256', data, 'buffer') : (data) => createHash('sha256').update(data).digest();

export function dataOffsetFor(length: number, blockBytes: number): number {
  const headerBytes = FIXED + 32 * Math.ceil(length / blockBytes) + 32;
  return Math.ceil(headerBytes / ALIGN) * ALIGN;
}

interface DigestAddon {
  blockDigests(data: Uint8Array, blockBytes: number): Buffer;
  blockDigestsAsync(data: Uint8Array, blockBytes: number): Promise<Buffer>;
}

let digestAddon: DigestAddon | undefined;

/**
 * native/clip_digest.c, loaded on first use. A disk cache loads it when it opens
 * (DiskCache.open), so that a build without it fails there, not at each read that stores a span.
 */
export function digestAddonLoaded(): DigestAddon {
  if (digestAddon === undefined) {
    try {
      digestAddon = loadAddon('clip_digest') as DigestAddon;
    } catch (err) {
      throw new ClipError('IO', `the block digest addon is missing (npm run build builds it): ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }
  return digestAddon;
}

/**
 * The sha256 of each `blockBytes` block of `content`, one after another (the entry header's block
 * digests), in one native call: a call per 4 KiB block from JavaScript costs a fifth more.
 */
export function blockDigestsOf(content: Uint8Array, blockBytes = DEFAULT_BLOCK_BYTES): Buffer {
  return digestAddonLoaded().blockDigests(content, blockBytes);
}

/**
 * `blockDigestsOf` on a libuv thread, for the thread that answers reads. `content` must not be
 * transferred to another thread before the promise settles.
 */
export async function blockDigestsOffThread(content: Uint8Array, blockBytes = DEFAULT_BLOCK_BYTES): Promise<Buffer> {
  return digestAddonLoaded().blockDigestsAsync(content, blockBytes);
}

/**
 * The header (padded to the data offset) for `content` stored under a key with digest `keyDigest`;
 * `blockDigests` are `blockDigestsOf(content, blockBytes)`.
 */
export function encodeEntryHeader(keyDigest: Buffer, content: Buffer, blockBytes: number, blockDigests: Uint8Array): Buffer {
  const blocks = Math.ceil(content.length / blockBytes);
  if (blockDigests.length !== 32 * blocks) throw new Error(`encodeEntryHeader: ${blockDigests.length} bytes of block digests for ${blocks} blocks`);
  const header = Buffer.alloc(dataOffsetFor(content.length, blockBytes));
  ENTRY_MAGIC.copy(header, 0);
  header.writeUInt32LE(ENTRY_VERSION, 8);
  header.writeUInt32LE(blockBytes, 12);
  header.writeBigUInt64LE(BigInt(content.length), 16);
  keyDigest.copy(header, 24);
  header.set(blockDigests, FIXED);
  const end = FIXED + 32 * blocks;
  sha256(header.subarray(0, end)).copy(header, end);
  return header;
}

/**
 * Bytes to read first from the start of an entry whose length is unknown: the whole header of
 * entries up to 2 MiB at the default block size (longer headers take a second read).
 */
export function headerProbeBytes(): number {
  return 5 * ALIGN;
}

/**
 * Parses the header at the start of `head`. Returns a reason string when it is not a valid header
 * for `keyDigest`, and `{ need }` when `head` is too short to hold the whole header.
 */
export function parseEntryHeader(head: Buffer, keyDigest: Buffer): EntryHeader | string | { need: number } {
  if (head.length < FIXED) return 'short header';
  if (!head.subarray(0, 8).equals(ENTRY_MAGIC)) return 'bad magic';
  if (head.readUInt32LE(8) !== ENTRY_VERSION) return 'unknown entry version';
  const blockBytes = head.readUInt32LE(12);
  const length = Number(head.readBigUInt64LE(16));
  if (blockBytes < 4096 || blockBytes > 16 << 20 || !Number.isSafeInteger(length) || length > MAX_ENTRY_CONTENT) return 'bad sizes';
  if (!head.subarray(24, 56).equals(keyDigest)) return 'entry belongs to another key';
  const blocks = Math.ceil(length / blockBytes);
  const end = FIXED + 32 * blocks;
  if (head.length < end + 32) return { need: end + 32 };
  if (!sha256(head.subarray(0, end)).equals(head.subarray(end, end + 32))) return 'header checksum mismatch';
  return { blockBytes, length, blockDigests: Buffer.from(head.subarray(FIXED, end)), dataOffset: dataOffsetFor(length, blockBytes) };
}
