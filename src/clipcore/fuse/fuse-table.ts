import type { EntryType, Toc } from '../archive/model.js';
import { ClipError } from '../errors.js';

/**
 * The FUSE table: the table of contents in the fixed-width binary form the native FUSE server
 * indexes directly (layout and checks in native/clip_fuse_table.h). Built once per mount; the
 * native side copies it and validates every offset before serving.
 */

const MAGIC = 0x46504c43; // "CLPF"
const VERSION = 2;
const HEADER_BYTES = 32;
const INODE_BYTES = 80;
const ENTRY_BYTES = 12;
const XATTR_BYTES = 16;
const MAX_BLOB_BYTES = 0xffff_ffff;
const NS_PER_SECOND = 1_000_000_000n;

export const TYPE_BITS: Record<EntryType, number> = {
  file: 0o100000,
  directory: 0o040000,
  symlink: 0o120000,
  char: 0o020000,
  block: 0o060000,
  fifo: 0o010000,
  socket: 0o140000,
};

/** Appends byte strings to one blob, returning each one's offset. */
class Blob {
  private readonly parts: Buffer[] = [];
  length = 0;

  add(bytes: Buffer): number {
    const offset = this.length;
    this.parts.push(bytes);
    this.length += bytes.length;
    if (this.length > MAX_BLOB_BYTES) throw new ClipError('INVALID_ARGUMENT', 'the table of contents is too large for the FUSE table (4 GiB of names)');
    return offset;
  }

  finish(): Buffer {
    return Buffer.concat(this.parts, this.length);
  }
}

export function encodeFuseTable(toc: Toc): Buffer {
  const { inodes, entries } = toc;
  const parents = new Uint32Array(inodes.length);
  const blob = new Blob();
  const entryBytes = Buffer.alloc(entries.length * ENTRY_BYTES);
  // Names are sorted by their UTF-8 bytes, the order the server's binary search uses.
  inodes.forEach((inode, dir) => {
    if (inode.type !== 'directory') return;
    const first = inode.firstEntry ?? 0;
    const named = entries.slice(first, first + (inode.entryCount ?? 0)).map((entry) => ({ name: Buffer.from(entry.name, 'utf8'), inode: entry.inode }));
    named.sort((a, b) => Buffer.compare(a.name, b.name));
    named.forEach((entry, i) => {
      const at = (first + i) * ENTRY_BYTES;
      entryBytes.writeUInt32LE(blob.add(entry.name), at);
      entryBytes.writeUInt32LE(entry.name.length, at + 4);
      entryBytes.writeUInt32LE(entry.inode, at + 8);
      if (inodes[entry.inode]?.type === 'directory') parents[entry.inode] = dir;
    });
  });

  const xattrCount = inodes.reduce((sum, inode) => sum + inode.xattrs.length, 0);
  const xattrBytes = Buffer.alloc(xattrCount * XATTR_BYTES);
  const inodeBytes = Buffer.alloc(inodes.length * INODE_BYTES);
  let xattrAt = 0;
  let fileBytes = 0;
  inodes.forEach((inode, index) => {
    const at = index * INODE_BYTES;
    const seconds = inode.mtimeNs / NS_PER_SECOND - (inode.mtimeNs < 0n && inode.mtimeNs % NS_PER_SECOND !== 0n ? 1n : 0n);
    let first = inode.firstEntry ?? 0;
    let count = inode.entryCount ?? 0;
    if (inode.type === 'symlink') {
      const target = Buffer.from(inode.linkTarget ?? '', 'utf8');
      first = blob.add(target);
      count = target.length;
    } else if (inode.type !== 'directory') {
      first = 0;
      count = 0;
    }
    if (inode.type === 'file') fileBytes += inode.size;
    inodeBytes.writeUInt32LE(TYPE_BITS[inode.type] | (inode.mode & 0o7777), at);
    inodeBytes.writeUInt32LE(inode.uid >>> 0, at + 4);
    inodeBytes.writeUInt32LE(inode.gid >>> 0, at + 8);
    inodeBytes.writeUInt32LE(inode.nlink >>> 0, at + 12);
    inodeBytes.writeBigUInt64LE(BigInt(inode.size), at + 16);
    inodeBytes.writeBigInt64LE(seconds, at + 24);
    inodeBytes.writeUInt32LE(Number(inode.mtimeNs - seconds * NS_PER_SECOND), at + 32);
    inodeBytes.writeUInt32LE(inode.rdevMajor ?? 0, at + 36);
    inodeBytes.writeUInt32LE(inode.rdevMinor ?? 0, at + 40);
    inodeBytes.writeUInt32LE(first, at + 44);
    inodeBytes.writeUInt32LE(count, at + 48);
    inodeBytes.writeUInt32LE(xattrAt, at + 52);
    inodeBytes.writeUInt32LE(inode.xattrs.length, at + 56);
    inodeBytes.writeUInt32LE(parents[index] as number, at + 60);
    if (inode.type === 'file' && inode.location) {
      inodeBytes.writeUInt32LE(inode.location.layer, at + 64);
      inodeBytes.writeBigUInt64LE(BigInt(inode.location.offset), at + 72);
    }
    for (const xattr of inode.xattrs) {
      const name = Buffer.from(xattr.name, 'utf8');
      const x = xattrAt++ * XATTR_BYTES;
      xattrBytes.writeUInt32LE(blob.add(name), x);
      xattrBytes.writeUInt32LE(name.length, x + 4);
      xattrBytes.writeUInt32LE(blob.add(xattr.value), x + 8);
      xattrBytes.writeUInt32LE(xattr.value.length, x + 12);
    }
  });

  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32LE(MAGIC, 0);
  header.writeUInt32LE(VERSION, 4);
  header.writeUInt32LE(inodes.length, 8);
  header.writeUInt32LE(entries.length, 12);
  header.writeUInt32LE(xattrCount, 16);
  header.writeUInt32LE(blob.length, 20);
  header.writeBigUInt64LE(BigInt(Math.ceil(fileBytes / 4096)), 24);
  return Buffer.concat([header, inodeBytes, entryBytes, xattrBytes, blob.finish()]);
}
