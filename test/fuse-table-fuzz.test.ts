import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Inode, Toc } from '../src/clipcore/archive/model.js';
import { encodeFuseTable } from '../src/clipcore/fuse/fuse-table.js';
import { clipFuse } from '../src/clipcore/fuse/native-fuse.js';

/**
 * The native side trusts the FUSE table only after clip_table_load has checked every offset,
 * length and index. These tests feed it damaged tables: targeted ones that must be refused with
 * the right reason, and thousands of deterministic random mutations that must each be either
 * refused or accepted and then walked (every entry looked up) without a crash. Run them under
 * AddressSanitizer too (`npm run build:asan`, docs/development in README) to catch any read
 * outside the table.
 */

const HEADER = 32;
const INODE = 80;
const ENTRY = 12;
const XATTR = 16;

function inode(fields: Partial<Inode> & Pick<Inode, 'type'>): Inode {
  return { mode: 0o755, uid: 0, gid: 0, size: 0, mtimeNs: 1_600_000_000_123_456_789n, nlink: 1, xattrs: [], ...fields };
}

/** / { a/ { x, y -> x }, b (xattrs), c (device) } */
function sampleToc(): Toc {
  return {
    inodes: [
      inode({ type: 'directory', nlink: 3, firstEntry: 0, entryCount: 3 }),
      inode({ type: 'directory', nlink: 2, firstEntry: 3, entryCount: 2 }),
      inode({ type: 'file', size: 5, mode: 0o644, nlink: 1, xattrs: [{ name: 'user.a', value: Buffer.from('1') }, { name: 'user.b', value: Buffer.alloc(0) }] }),
      inode({ type: 'char', rdevMajor: 1, rdevMinor: 3 }),
      inode({ type: 'file', size: 10, mtimeNs: -1_500_000_000n }),
      inode({ type: 'symlink', size: 1, linkTarget: 'x' }),
    ],
    entries: [
      { name: 'a', inode: 1 },
      { name: 'b', inode: 2 },
      { name: 'c', inode: 3 },
      { name: 'x', inode: 4 },
      { name: 'y', inode: 5 },
    ],
  };
}

/** xorshift32: the same mutations on every run. */
function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
}

describe('FUSE table validation', () => {
  const addon = clipFuse();
  const valid = encodeFuseTable(sampleToc());
  const inodes = valid.readUInt32LE(8);
  const entries = valid.readUInt32LE(12);
  const xattrs = valid.readUInt32LE(16);
  const entryAt = (i: number): number => HEADER + inodes * INODE + i * ENTRY;
  const inodeAt = (i: number): number => HEADER + i * INODE;
  const xattrAt = (i: number): number => HEADER + inodes * INODE + entries * ENTRY + i * XATTR;

  const refused = (mutate: (bytes: Buffer) => Buffer | void, reason: RegExp): void => {
    const copy = Buffer.from(valid);
    const result = addon.validate(mutate(copy) ?? copy);
    assert.match(result ?? 'accepted', reason);
  };

  test('a table built from a table of contents is accepted', () => {
    assert.equal(addon.validate(valid), null);
    assert.equal(xattrs, 2);
  });

  test('each kind of damage is refused with its reason', () => {
    refused((b) => b.subarray(0, 20), /shorter than its header/);
    refused((b) => void b.writeUInt32LE(0, 0), /magic/);
    refused((b) => void b.writeUInt32LE(1, 4), /version/);
    refused((b) => b.subarray(0, b.length - 1), /length disagrees/);
    refused((b) => void b.writeUInt32LE(0xffffffff, 12), /length disagrees/);
    refused((b) => void b.writeUInt32LE(0o100644, inodeAt(0)), /root inode is not a directory/);
    refused((b) => void b.writeUInt32LE(0o170000, inodeAt(2)), /unknown file type/);
    refused((b) => void b.writeUInt32LE(1_000_000_000, inodeAt(2) + 32), /nanoseconds/);
    refused((b) => void b.writeUInt32LE(entries, inodeAt(1) + 44), /entries lie outside/);
    refused((b) => void b.writeUInt32LE(0xffffffff, inodeAt(0) + 48), /entries lie outside/);
    refused((b) => void b.writeUInt32LE(inodes, entryAt(0) + 8), /inode that does not exist/);
    refused((b) => void b.writeUInt32LE(0xfffffff0, entryAt(1)), /outside the blob/);
    refused((b) => void b.writeUInt32LE(0, entryAt(1) + 4), /empty or too long/);
    refused((b) => void b.writeUInt32LE(256, entryAt(1) + 4), /empty or too long/);
    refused((b) => void b.writeUInt32LE(valid.readUInt32LE(entryAt(0)), entryAt(2)), /not sorted/);
    refused((b) => void b.writeUInt32LE(3, inodeAt(0) + 60), /parent is not a directory/);
    refused((b) => void b.writeUInt32LE(inodes, inodeAt(1) + 60), /parent is not a directory/);
    refused((b) => void b.writeUInt32LE(xattrs, inodeAt(2) + 52), /xattrs lie outside/);
    refused((b) => void b.writeUInt32LE(0x7fffffff, xattrAt(0) + 8), /xattr lies outside the blob/);
    refused((b) => void b.writeUInt32LE(70_000, xattrAt(0) + 12), /xattr is too long/);
    refused((b) => void b.writeUInt32LE(0, inodeAt(5) + 48), /symlink target/);
    refused((b) => void b.writeUInt32LE(0xffffffff, inodeAt(5) + 44), /symlink target/);
    const slash = valid.indexOf('x', entryAt(entries)); // the first name byte "x" in the blob
    refused((b) => void (b[slash] = 0x2f), /'\/' or NUL|not sorted/);
  });

  test('thousands of random mutations are refused or accepted, never crash', () => {
    const next = random(0x5eed);
    const boundaries = [0, 1, 2, inodes - 1, inodes, entries, xattrs, 0x7fffffff, 0x80000000, 0xffffffff, valid.length];
    let accepted = 0;
    let rejected = 0;
    for (let round = 0; round < 20_000; round++) {
      let bytes = Buffer.from(valid);
      const mutations = 1 + (next() % 3);
      for (let m = 0; m < mutations; m++) {
        const kind = next() % 5;
        if (kind === 0) bytes[next() % bytes.length] ^= 1 << next() % 8;
        else if (kind === 1) bytes.writeUInt32LE(boundaries[next() % boundaries.length] as number, (next() % (bytes.length >>> 2)) * 4);
        else if (kind === 2) bytes.writeUInt32LE(next(), (next() % (bytes.length >>> 2)) * 4);
        else if (kind === 3) bytes = bytes.subarray(0, next() % bytes.length);
        else bytes = Buffer.concat([bytes, Buffer.alloc(4 * (1 + (next() % 4)))]);
        if (bytes.length < 4) break;
      }
      const result = addon.validate(bytes);
      if (result === null) accepted++;
      else {
        assert.equal(typeof result, 'string');
        rejected++;
      }
    }
    assert.ok(accepted > 0 && rejected > 0, `accepted ${accepted}, rejected ${rejected}`);
  });
});
