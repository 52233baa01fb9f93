import assert from 'node:assert/strict';
import { lstat, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ArchiveReader, createArchive } from '../src/clipcore/index.js';
import { BIG_FILE_BYTES, buildHardTree, LONG_NAME, UNICODE_NAME, WIDE_DIR_ENTRIES } from './helpers/hard-tree.js';
import { fuseMountsUnder, unmountAllUnder } from './helpers/mounts.js';
import { startClipMount } from './helpers/processes.js';
import { assertSameTree, snapshotOf } from './helpers/tree-compare.js';

let work: string;
let source: string;
let archive: string;

describe('local archive round trip', () => {
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'clip-roundtrip-'));
    source = join(work, 'source');
    archive = join(work, 'tree.clip');
    await buildHardTree(source);
    await createArchive({ inputPath: source, outputPath: archive });
  });

  after(async () => {
    await unmountAllUnder(work);
    await rm(work, { recursive: true, force: true });
  });

  test('the reader API returns every attribute exactly, with nanosecond mtimes', async () => {
    const reader = await ArchiveReader.open(archive);
    try {
      const hello = reader.stat('hello.txt');
      assert.equal(hello.mtimeNs, (await lstat(join(source, 'hello.txt'), { bigint: true })).mtimeNs);
      assert.equal(hello.mtimeNs % 1_000_000_000n, 123_456_789n);
      assert.equal((await reader.readFile('hello.txt')).toString(), 'hello, world\n');
      assert.equal(reader.stat('setuid-tool').mode, 0o4755);
      assert.equal(reader.stat('sticky-tmp').mode, 0o1777);
      assert.equal(reader.stat('original').nlink, 3);
      assert.equal(reader.stat('original').ino, reader.stat('dir/hardlink-2').ino);
      assert.equal(reader.readlink('dangling-link'), 'does/not/exist');
      assert.equal(reader.readlink('absolute-link'), '/etc/hostname');
      assert.deepEqual([reader.stat('char-device').rdevMajor, reader.stat('char-device').rdevMinor], [1, 3]);
      assert.deepEqual([reader.stat('block-device').rdevMajor, reader.stat('block-device').rdevMinor], [7, 200]);
      assert.equal(reader.stat('fifo').type, 'fifo');
      assert.equal(reader.stat('socket').type, 'socket');
      assert.equal(reader.list('wide').length, WIDE_DIR_ENTRIES);
      assert.equal((await reader.readFile(LONG_NAME)).toString(), 'a long name\n');
      assert.equal((await reader.readFile(UNICODE_NAME)).toString(), 'unicode\n');
      const big = await readFile(join(source, 'big.bin'));
      const slice = await reader.read('big.bin', 12_345_678, 3_000_000);
      assert.deepEqual(slice, big.subarray(12_345_678, 15_345_678));
      assert.equal((await reader.read('big.bin', BIG_FILE_BYTES - 10, 100)).length, 10);
      const xattrs = reader.stat('with-xattrs').xattrs;
      assert.deepEqual(xattrs.map((x) => [x.name, x.value.toString('hex')]), [
        ['user.binary', '00ff10fe'],
        ['user.comment', Buffer.from('a comment').toString('hex')],
      ]);
    } finally {
      await reader.close();
    }
  });

  test('identical contents are stored once', async () => {
    const reader = await ArchiveReader.open(archive);
    try {
      const a = reader.stat('wide/entry-00000');
      const b = reader.stat('wide/entry-00010');
      assert.notEqual(a.ino, b.ino);
      assert.deepEqual(a.location, b.location);
    } finally {
      await reader.close();
    }
  });

  test('the same tree gives a byte-identical archive', async () => {
    const again = join(work, 'again.clip');
    await createArchive({ inputPath: source, outputPath: again });
    assert.ok((await readFile(again)).equals(await readFile(archive)));
  });

  test('a FUSE mount shows every path exactly as the source (read from another process)', async () => {
    const mountPoint = join(work, 'mnt');
    const mount = await startClipMount(archive, mountPoint);
    try {
      const actual = await assertSameTree(source, mountPoint);
      assert.equal(actual['/original']?.nlink, 3);
      // Inode numbers are stable: the same on a second look.
      const second = await snapshotOf(mountPoint);
      assert.equal(second['/original']?.ino, actual['/original']?.ino);
    } finally {
      const result = await mount.stop();
      assert.equal(result.code, 0, result.stderr);
    }
    assert.deepEqual(await fuseMountsUnder(work), []);
  });
});
