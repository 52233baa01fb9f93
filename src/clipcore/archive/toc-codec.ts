import { ArchiveFormatError } from '../errors.js';
import { ByteReader, ByteWriter } from './bytes.js';
import type { DirEntry, EntryType, Inode, Toc, Xattr } from './model.js';

/**
 * Binary encoding of the table of contents (before section compression). Layout:
 *   varint inodeCount, inode records, varint entryCount, entry records.
 * An inode record is: type u8, flags u8, mode, uid, gid, size, mtime seconds (signed), mtime
 * nanoseconds, nlink, then the optional fields its flags announce, in flag order. An entry record
 * is: name (length-prefixed UTF-8), inode index. Integers are LEB128 varints.
 */

const TYPE_CODES: readonly EntryType[] = ['file', 'directory', 'symlink', 'char', 'block', 'fifo', 'socket'];

const HAS_LINK_TARGET = 1;
const HAS_RDEV = 2;
const HAS_SHA256 = 4;
const HAS_LOCATION = 8;
const HAS_XATTRS = 16;
const HAS_CHILDREN = 32;
const KNOWN_FLAGS = 63;

const NS_PER_SECOND = 1_000_000_000n;

/** Bytes per inode and per entry to start with: a file's record is about 50 bytes, a name about 20. */
const INODE_BYTES_HINT = 64;
const ENTRY_BYTES_HINT = 24;

export function encodeToc(toc: Toc): Buffer {
  const out = new ByteWriter(16 + toc.inodes.length * INODE_BYTES_HINT + toc.entries.length * ENTRY_BYTES_HINT);
  out.varint(toc.inodes.length);
  for (const inode of toc.inodes) encodeInode(out, inode);
  out.varint(toc.entries.length);
  for (const entry of toc.entries) {
    out.string(entry.name);
    out.varint(entry.inode);
  }
  return out.finish();
}

function encodeInode(out: ByteWriter, inode: Inode): void {
  let flags = 0;
  if (inode.linkTarget !== undefined) flags |= HAS_LINK_TARGET;
  if (inode.rdevMajor !== undefined || inode.rdevMinor !== undefined) flags |= HAS_RDEV;
  if (inode.sha256 !== undefined) flags |= HAS_SHA256;
  if (inode.location !== undefined) flags |= HAS_LOCATION;
  if (inode.xattrs.length > 0) flags |= HAS_XATTRS;
  if (inode.type === 'directory') flags |= HAS_CHILDREN;
  out.u8(TYPE_CODES.indexOf(inode.type));
  out.u8(flags);
  out.varint(inode.mode);
  out.varint(inode.uid);
  out.varint(inode.gid);
  out.varint(inode.size);
  const seconds = floorDiv(inode.mtimeNs, NS_PER_SECOND);
  out.svarint(Number(seconds));
  out.varint(Number(inode.mtimeNs - seconds * NS_PER_SECOND));
  out.varint(inode.nlink);
  if (flags & HAS_LINK_TARGET) out.string(inode.linkTarget ?? '');
  if (flags & HAS_RDEV) {
    out.varint(inode.rdevMajor ?? 0);
    out.varint(inode.rdevMinor ?? 0);
  }
  if (flags & HAS_SHA256) out.raw(inode.sha256 as Buffer);
  if (flags & HAS_LOCATION) {
    out.varint(inode.location?.layer ?? 0);
    out.varint(inode.location?.offset ?? 0);
  }
  if (flags & HAS_XATTRS) {
    out.varint(inode.xattrs.length);
    for (const xattr of inode.xattrs) {
      out.string(xattr.name);
      out.bytes(xattr.value);
    }
  }
  if (flags & HAS_CHILDREN) {
    out.varint(inode.firstEntry ?? 0);
    out.varint(inode.entryCount ?? 0);
  }
}

/**
 * Decodes and validates a TOC: every index in range, the root a directory, each directory's
 * entries inside the entry table, and every subdirectory numbered after its parent, which
 * rules out cycles so that tree walks always end.
 */
export function decodeToc(data: Buffer): Toc {
  const input = new ByteReader(data, 'table of contents');
  const inodeCount = input.count(9);
  if (inodeCount === 0) throw new ArchiveFormatError('CORRUPT', 'table of contents: no root directory');
  const inodes: Inode[] = new Array<Inode>(inodeCount);
  for (let i = 0; i < inodeCount; i++) inodes[i] = decodeInode(input, i);
  const entryCount = input.count(2);
  const entries: DirEntry[] = new Array<DirEntry>(entryCount);
  for (let i = 0; i < entryCount; i++) {
    const name = input.string();
    const inode = input.varint();
    if (inode >= inodeCount || inode === 0) throw corrupt(`entry ${i} names inode ${inode}, out of range`);
    if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
      throw corrupt(`entry ${i} has an invalid name ${JSON.stringify(name)}`);
    }
    entries[i] = { name, inode };
  }
  input.expectEnd();
  validateTree(inodes, entries);
  return { inodes, entries };
}

function decodeInode(input: ByteReader, index: number): Inode {
  const type = TYPE_CODES[input.u8()];
  if (type === undefined) throw corrupt(`inode ${index} has an unknown type`);
  const flags = input.u8();
  if ((flags & ~KNOWN_FLAGS) !== 0) throw corrupt(`inode ${index} has unknown flags ${flags}`);
  const mode = input.varint();
  if (mode > 0o7777) throw corrupt(`inode ${index} has invalid mode ${mode.toString(8)}`);
  const uid = input.varint();
  const gid = input.varint();
  const size = input.varint();
  const seconds = input.svarint();
  const nanoseconds = input.varint();
  if (nanoseconds >= 1e9) throw corrupt(`inode ${index} has invalid mtime nanoseconds ${nanoseconds}`);
  const nlink = input.varint();
  const inode: { -readonly [K in keyof Inode]: Inode[K] } = {
    type,
    mode,
    uid,
    gid,
    size,
    mtimeNs: BigInt(seconds) * NS_PER_SECOND + BigInt(nanoseconds),
    nlink,
    xattrs: [],
  };
  if (flags & HAS_LINK_TARGET) inode.linkTarget = input.string();
  if (flags & HAS_RDEV) {
    inode.rdevMajor = input.varint();
    inode.rdevMinor = input.varint();
  }
  if (flags & HAS_SHA256) inode.sha256 = input.raw(32);
  if (flags & HAS_LOCATION) inode.location = { layer: input.varint(), offset: input.varint() };
  if (flags & HAS_XATTRS) {
    const count = input.count(2);
    const xattrs: Xattr[] = [];
    for (let i = 0; i < count; i++) xattrs.push({ name: input.string(), value: input.bytes() });
    inode.xattrs = xattrs;
  }
  if (flags & HAS_CHILDREN) {
    if (type !== 'directory') throw corrupt(`inode ${index} is a ${type} with directory entries`);
    inode.firstEntry = input.varint();
    inode.entryCount = input.varint();
  } else if (type === 'directory') {
    throw corrupt(`directory inode ${index} has no entry range`);
  }
  return inode;
}

function validateTree(inodes: readonly Inode[], entries: readonly DirEntry[]): void {
  if (inodes[0]?.type !== 'directory') throw corrupt('the root inode is not a directory');
  inodes.forEach((inode, index) => {
    if (inode.type !== 'directory') return;
    const first = inode.firstEntry ?? 0;
    const end = first + (inode.entryCount ?? 0);
    if (end > entries.length) throw corrupt(`directory inode ${index} lists entries past the end of the table`);
    for (let i = first; i < end; i++) {
      const child = (entries[i] as DirEntry).inode;
      if ((inodes[child] as Inode).type === 'directory' && child <= index) {
        throw corrupt(`directory inode ${index} contains directory inode ${child}, which would form a cycle`);
      }
    }
  });
}

function corrupt(message: string): ArchiveFormatError {
  return new ArchiveFormatError('CORRUPT', `table of contents: ${message}`);
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b < 0n ? q - 1n : q;
}
