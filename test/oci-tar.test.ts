import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, link, lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ClipError } from '../src/clipcore/errors.js';
import type { LayerEntry } from '../src/clipcore/oci/layer-entry.js';
import { collectLayerEntries, readLayerEntries, TarEntryParser } from '../src/clipcore/oci/tar-entries.js';
import { normalizeLayerPath } from '../src/clipcore/oci/tar-path.js';
import {
  END_OF_ARCHIVE,
  packTar,
  parseInChunks,
  paxData,
  rawEntry,
  rawHeader,
  runCommand,
  runTar,
  sha256,
  splitChunks,
} from './helpers/oci-tar.js';
import { skipUnlessCi } from './helpers/ci-skip.js';

const CHUNK_SIZES = [0, 1, 7, 511, 512, 513, 4096];

/** Every file's bytes, found through dataOffset, must be the content, and sha256 must match it. */
function assertContent(tar: Buffer, entry: LayerEntry, expected: Buffer | string): void {
  const want = typeof expected === 'string' ? Buffer.from(expected) : expected;
  assert.equal(entry.type, 'file', entry.path);
  assert.equal(entry.size, want.length, entry.path);
  const offset = entry.dataOffset ?? -1;
  assert.ok(offset >= 512 && offset % 512 === 0, `${entry.path}: dataOffset ${offset}`);
  assert.deepEqual(tar.subarray(offset, offset + entry.size), want, entry.path);
  assert.deepEqual(entry.sha256, sha256(want), entry.path);
}

function byPath(entries: readonly LayerEntry[]): Map<string, LayerEntry> {
  return new Map(entries.map((entry) => [entry.path, entry]));
}

function get(entries: Map<string, LayerEntry>, path: string): LayerEntry {
  const entry = entries.get(path);
  assert.ok(entry, `missing entry ${path}; have ${[...entries.keys()].join(', ')}`);
  return entry;
}

async function parseError(tar: Buffer, chunkSize = 0): Promise<ClipError> {
  try {
    await parseInChunks(tar, chunkSize, 'sha256:abc');
  } catch (err) {
    assert.ok(err instanceof ClipError, `expected ClipError, got ${String(err)}`);
    return err;
  }
  assert.fail('parsing should have failed');
}

describe('tar layer parser: tar-stream archives (ustar, PAX)', () => {
  const big = randomBytes(30_000);
  const longName = `d/${'x'.repeat(120)}`;
  const prefixed = `${'p'.repeat(60)}/${'q'.repeat(60)}/f`;
  const mtime = new Date(1_700_000_000_000);
  let tar: Buffer;

  before(async () => {
    tar = await packTar([
      { header: { name: 'd', type: 'directory', mode: 0o750, uid: 10, gid: 20, mtime } },
      { header: { name: 'd/a.txt', mode: 0o644, mtime, uid: 1000, gid: 1001 }, content: 'hello' },
      { header: { name: 'd/empty', mtime }, content: '' },
      { header: { name: 'd/big.bin', mtime, mode: 0o4755 }, content: big },
      { header: { name: longName, mtime }, content: 'long' },
      { header: { name: prefixed, mtime }, content: 'prefixed' },
      { header: { name: 'd/link', type: 'symlink', linkname: 'a.txt', mode: 0o777, mtime } },
      { header: { name: 'd/hard', type: 'link', linkname: 'd/a.txt', mtime } },
      { header: { name: 'd/tty', type: 'character-device', devmajor: 5, devminor: 1, mode: 0o620, mtime } },
      { header: { name: 'd/sda', type: 'block-device', devmajor: 8, devminor: 0, mtime } },
      { header: { name: 'd/fifo', type: 'fifo', mtime } },
      {
        header: { name: 'd/xattr', mtime, pax: { 'SCHILY.xattr.user.x': 'val', 'SCHILY.xattr.user.a': 'first', mtime: '1700000000.25' } },
        content: 'x',
      },
    ]);
  });

  it('reports every entry with its attributes, whatever the chunking', async () => {
    const reference = await parseInChunks(tar);
    for (const size of CHUNK_SIZES) assert.deepEqual(await parseInChunks(tar, size), reference, `chunk size ${size}`);

    assert.deepEqual(reference.map((entry) => entry.path), [
      'd', 'd/a.txt', 'd/empty', 'd/big.bin', longName, prefixed, 'd/link', 'd/hard', 'd/tty', 'd/sda', 'd/fifo', 'd/xattr',
    ]);
    const entries = byPath(reference);
    assert.deepEqual(get(entries, 'd'), {
      path: 'd', type: 'directory', mode: 0o750, uid: 10, gid: 20, size: 0, mtimeNs: 1_700_000_000_000_000_000n,
      xattrs: [], headerOffset: 0,
    });
    const a = get(entries, 'd/a.txt');
    assert.equal(a.uid, 1000);
    assert.equal(a.gid, 1001);
    assert.equal(a.headerOffset, 512);
    assert.equal(a.dataOffset, 1024);
    assert.equal(get(entries, 'd/big.bin').mode, 0o4755);
    assert.deepEqual(get(entries, 'd/link'), {
      path: 'd/link', type: 'symlink', mode: 0o777, uid: 0, gid: 0, size: 0, mtimeNs: 1_700_000_000_000_000_000n,
      linkTarget: 'a.txt', xattrs: [], headerOffset: get(entries, 'd/link').headerOffset,
    });
    const hard = get(entries, 'd/hard');
    assert.equal(hard.type, 'hardlink');
    assert.equal(hard.linkTarget, 'd/a.txt');
    assert.equal(hard.dataOffset, undefined);
    const tty = get(entries, 'd/tty');
    assert.deepEqual([tty.type, tty.rdevMajor, tty.rdevMinor, tty.mode], ['char', 5, 1, 0o620]);
    const sda = get(entries, 'd/sda');
    assert.deepEqual([sda.type, sda.rdevMajor, sda.rdevMinor], ['block', 8, 0]);
    assert.equal(get(entries, 'd/fifo').type, 'fifo');
    const x = get(entries, 'd/xattr');
    assert.deepEqual(x.xattrs, [
      { name: 'user.a', value: Buffer.from('first') },
      { name: 'user.x', value: Buffer.from('val') },
    ]);
    assert.equal(x.mtimeNs, 1_700_000_000_250_000_000n);
  });

  it('locates each file\'s content at dataOffset and hashes it', async () => {
    const entries = byPath(await parseInChunks(tar, 4096));
    assertContent(tar, get(entries, 'd/a.txt'), 'hello');
    assertContent(tar, get(entries, 'd/empty'), '');
    assertContent(tar, get(entries, 'd/big.bin'), big);
    assertContent(tar, get(entries, longName), 'long');
    assertContent(tar, get(entries, prefixed), 'prefixed');
    assertContent(tar, get(entries, 'd/xattr'), 'x');
  });

  it('streams from a Readable, entry by entry', async () => {
    const seen: string[] = [];
    for await (const entry of readLayerEntries(Readable.from(splitChunks(tar, 1000)), { layer: '0' })) seen.push(entry.path);
    assert.equal(seen.length, 12);
    // Stopping early is fine and stops reading.
    for await (const entry of readLayerEntries(Readable.from(splitChunks(tar, 1000)), { layer: '0' })) {
      assert.equal(entry.path, 'd');
      break;
    }
  });
});

describe('tar layer parser: archives from GNU tar', () => {
  let root: string;
  const big = randomBytes(300_000);
  const longComponent = 'n'.repeat(150);
  const deepPath = `long/${`${'d'.repeat(50)}/`.repeat(6)}file`;
  const longTarget = 't'.repeat(150);
  const splittable = `short/${'p'.repeat(90)}/${'q'.repeat(90)}`;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'oci-tar-'));
    await mkdir(join(root, 'short/sticky'), { recursive: true });
    await chmod(join(root, 'short/sticky'), 0o1777);
    await writeFile(join(root, 'short/a.txt'), 'hello\n');
    await writeFile(join(root, 'short/empty'), '');
    await writeFile(join(root, 'short/big.bin'), big);
    await writeFile(join(root, 'short/setuid'), 'x');
    await chmod(join(root, 'short/setuid'), 0o4755);
    await symlink('a.txt', join(root, 'short/link'));
    await link(join(root, 'short/a.txt'), join(root, 'short/hard'));
    await runCommand('mkfifo', ['short/fifo'], root);
    await mkdir(join(root, 'short', 'p'.repeat(90)), { recursive: true });
    await writeFile(join(root, splittable), 'split');
    await mkdir(join(root, deepPath, '..'), { recursive: true });
    await writeFile(join(root, deepPath), 'deep');
    await writeFile(join(root, 'long', longComponent), 'long name');
    await symlink(longTarget, join(root, 'long/longlink'));
    await link(join(root, 'long', longComponent), join(root, 'long/hardlong'));
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** Checks every parsed entry against the file it came from. */
  async function verifyAgainstDisk(tar: Buffer, entries: readonly LayerEntry[], exactMtime: boolean): Promise<void> {
    for (const entry of entries) {
      const full = join(root, entry.path);
      const stat = await lstat(full, { bigint: true });
      const mtimeNs = exactMtime ? stat.mtimeNs : (stat.mtimeNs / 1_000_000_000n) * 1_000_000_000n;
      assert.equal(entry.mtimeNs, mtimeNs, `${entry.path} mtime`);
      assert.equal(entry.uid, Number(stat.uid), entry.path);
      assert.equal(entry.gid, Number(stat.gid), entry.path);
      if (entry.type === 'hardlink') {
        const target = await lstat(join(root, entry.linkTarget ?? ''), { bigint: true });
        assert.equal(target.ino, stat.ino, `${entry.path} links to ${entry.linkTarget}`);
        continue;
      }
      assert.equal(entry.mode, Number(stat.mode) & 0o7777, `${entry.path} mode`);
      if (stat.isDirectory()) assert.equal(entry.type, 'directory', entry.path);
      else if (stat.isSymbolicLink()) assert.deepEqual([entry.type, entry.linkTarget], ['symlink', await readlink(full)]);
      else if (stat.isFIFO()) assert.equal(entry.type, 'fifo', entry.path);
      else assertContent(tar, entry, await readFile(full));
    }
  }

  for (const format of ['gnu', 'posix'] as const) {
    it(`parses --format=${format} (long names and link targets, hard links, fifos, setuid, sticky)`, async () => {
      const tar = await runTar([`--format=${format}`, '-cf', '-', '.'], root);
      const entries = await parseInChunks(tar, 65536);
      const paths = new Set(entries.map((entry) => entry.path));
      for (const path of ['', 'short/a.txt', 'short/sticky', splittable, deepPath, `long/${longComponent}`, 'long/longlink', 'long/hardlong']) {
        assert.ok(paths.has(path), `missing ${path}`);
      }
      assert.equal(entries.length, paths.size);
      const map = byPath(entries);
      assert.equal(get(map, 'long/longlink').linkTarget, longTarget);
      assert.equal(get(map, 'short/sticky').mode, 0o1777);
      // GNU tar stores the second name of a hard link as the link.
      const hardlinks = entries.filter((entry) => entry.type === 'hardlink').map((entry) => [entry.path, entry.linkTarget].sort());
      assert.deepEqual(hardlinks.sort(), [[`long/${longComponent}`, 'long/hardlong'].sort(), ['short/a.txt', 'short/hard']].sort());
      // Only PAX carries sub-second times.
      await verifyAgainstDisk(tar, entries.filter((entry) => entry.path !== ''), format === 'posix');
    });
  }

  it('parses --format=ustar, with names split into prefix and name', async () => {
    const tar = await runTar(['--format=ustar', '-cf', '-', 'short'], root);
    const entries = await parseInChunks(tar, 1000);
    assert.ok(entries.some((entry) => entry.path === splittable));
    await verifyAgainstDisk(tar, entries, false);
  });

  it('reads base-256 uid/gid (values beyond 7 octal digits)', async () => {
    const tar = await runTar(['--format=gnu', '--owner=big:3000000', '--group=big:3000001', '-cf', '-', 'short/a.txt'], root);
    const [entry] = await parseInChunks(tar);
    assert.deepEqual([entry?.uid, entry?.gid], [3_000_000, 3_000_001]);
    // The raw header really is base-256: the marker bit is set on the uid field.
    assert.equal((tar[108] as number) & 0x80, 0x80);
  });

  it('reads PAX xattrs as raw bytes (GNU tar --xattrs)', async (t) => {
    const file = join(root, 'short/a.txt');
    try {
      await runCommand('setfattr', ['-n', 'user.x', '-v', 'hello', file], root);
      await runCommand('setfattr', ['-n', 'user.bin', '-v', '0x00ff80', file], root);
    } catch {
      skipUnlessCi(t, 'setting user xattrs is not supported here');
      return;
    }
    try {
      const tar = await runTar(['--format=posix', '--xattrs', '-cf', '-', 'short/a.txt'], root);
      const [entry] = await parseInChunks(tar, 100);
      assert.deepEqual(entry?.xattrs, [
        { name: 'user.bin', value: Buffer.from([0x00, 0xff, 0x80]) },
        { name: 'user.x', value: Buffer.from('hello') },
      ]);
      assertContent(tar, entry as LayerEntry, 'hello\n');
    } finally {
      await runCommand('setfattr', ['-x', 'user.x', file], root);
      await runCommand('setfattr', ['-x', 'user.bin', file], root);
    }
  });
});

describe('tar layer parser: hand-built headers', () => {
  it('applies GNU long names (L) and long link names (K)', async () => {
    const name = `dir/${'L'.repeat(200)}`;
    const target = `dir/${'K'.repeat(200)}`;
    const tar = Buffer.concat([
      rawEntry({ name: '././@LongLink', type: 'L', format: 'gnu' }, `${name}\0`),
      rawEntry({ name: name.slice(0, 100), type: '0', format: 'gnu' }, 'content'),
      rawEntry({ name: '././@LongLink', type: 'K', format: 'gnu' }, `${target}\0`),
      rawEntry({ name: '././@LongLink', type: 'L', format: 'gnu' }, `dir/link\0`),
      rawEntry({ name: 'ignored', type: '1', linkName: 'ignored', format: 'gnu' }),
      END_OF_ARCHIVE,
    ]);
    for (const size of CHUNK_SIZES) {
      const entries = await parseInChunks(tar, size);
      assert.deepEqual(entries.map((entry) => [entry.path, entry.type, entry.linkTarget]), [
        [name, 'file', undefined],
        ['dir/link', 'hardlink', target],
      ]);
      assertContent(tar, entries[0] as LayerEntry, 'content');
    }
  });

  it('applies global PAX headers to later entries, local ones override, empty values unset', async () => {
    const tar = Buffer.concat([
      rawEntry({ name: 'pax_global_header', type: 'g' }, paxData([['uid', '77'], ['SCHILY.xattr.user.g', 'global']])),
      rawEntry({ name: 'a', type: '0', uid: 5 }, 'a'),
      rawEntry({ name: 'PaxHeader', type: 'x' }, paxData([['uid', '88'], ['SCHILY.xattr.user.g', 'local']])),
      rawEntry({ name: 'b', type: '0', uid: 5 }, 'b'),
      rawEntry({ name: 'PaxHeader', type: 'x' }, paxData([['uid', '']])),
      rawEntry({ name: 'c', type: '0', uid: 5 }, 'c'),
      rawEntry({ name: 'pax_global_header', type: 'g' }, paxData([['uid', ''], ['SCHILY.xattr.user.g', '']])),
      rawEntry({ name: 'd', type: '0', uid: 5 }, 'd'),
      END_OF_ARCHIVE,
    ]);
    const entries = await parseInChunks(tar, 100);
    assert.deepEqual(entries.map((entry) => [entry.path, entry.uid, entry.xattrs.map((x) => x.value.toString())]), [
      ['a', 77, ['global']],
      ['b', 88, ['local']],
      ['c', 5, ['global']],
      ['d', 5, []],
    ]);
    for (const entry of entries) assertContent(tar, entry, entry.path);
  });

  it('reads PAX path, linkpath, size, fractional and negative mtimes, binary xattrs', async () => {
    const content = randomBytes(1500);
    const value = Buffer.from([0, 10, 0xff, 0x3d, 0x0a]);
    const tar = Buffer.concat([
      rawEntry({ name: 'PaxHeader', type: 'x' }, paxData([
        ['path', 'päx/ñame'], ['mtime', '1234.5'], ['SCHILY.xattr.security.capability', value], ['size', '1500'],
        ['atime', '1.0'], ['ctime', '2.0'],
      ])),
      Buffer.concat([rawHeader({ name: 'short', type: '0', size: 0 }), content, Buffer.alloc(36)]),
      rawEntry({ name: 'PaxHeader', type: 'x' }, paxData([['mtime', '-1.25'], ['linkpath', '/abs/target/of/a/symlink']])),
      rawEntry({ name: 's', type: '2', linkName: 'x' }),
      rawEntry({ name: 'PaxHeader', type: 'x' }, paxData([['mtime', '7.1234567891234']])),
      rawEntry({ name: 't', type: '5' }),
      rawEntry({ name: 'neg', type: '5', mtime: -3, base256: ['mtime'] }),
      rawEntry({ name: 'bigsize', type: '0', size: 3, base256: ['size'] }, 'abc'),
      END_OF_ARCHIVE,
    ]);
    const entries = byPath(await parseInChunks(tar, 333));
    const file = get(entries, 'päx/ñame');
    assert.equal(file.mtimeNs, 1_234_500_000_000n);
    assert.deepEqual(file.xattrs, [{ name: 'security.capability', value }]);
    assertContent(tar, file, content);
    const link = get(entries, 's');
    assert.deepEqual([link.linkTarget, link.mtimeNs], ['/abs/target/of/a/symlink', -1_250_000_000n]);
    assert.equal(get(entries, 't').mtimeNs, 7_123_456_789n);
    assert.equal(get(entries, 'neg').mtimeNs, -3_000_000_000n);
    assertContent(tar, get(entries, 'bigsize'), 'abc');
  });

  it('normalizes paths and keeps the root entry as ""', async () => {
    const tar = Buffer.concat([
      rawEntry({ name: './', type: '5', mode: 0o700 }),
      rawEntry({ name: './a//b/', type: '5' }),
      rawEntry({ name: '/abs/file', type: '0' }, 'x'),
      rawEntry({ name: 'x/../y/./z', type: '0' }, 'y'),
      rawEntry({ name: 'hl', type: '1', linkName: './abs//file' }),
      END_OF_ARCHIVE,
    ]);
    const entries = await parseInChunks(tar);
    assert.deepEqual(entries.map((entry) => [entry.path, entry.linkTarget]), [
      ['', undefined], ['a/b', undefined], ['abs/file', undefined], ['y/z', undefined], ['hl', 'abs/file'],
    ]);
    assert.equal(entries[0]?.mode, 0o700);
    assert.equal(normalizeLayerPath('a/../../b'), null);
    assert.equal(normalizeLayerPath('.'), '');
    assert.equal(normalizeLayerPath('plain/path'), 'plain/path');
  });

  it('accepts v7 headers, signed checksums, GNU dumpdirs and volume labels', async () => {
    const tar = Buffer.concat([
      rawEntry({ name: 'label', type: 'V', format: 'gnu' }, 'volume data'),
      rawEntry({ name: 'olddir/', type: '\0', format: 'v7' }),
      rawEntry({ name: 'olddir/file', type: '\0', format: 'v7', signedChecksum: true }, Buffer.from([0xff, 0xfe])),
      rawEntry({ name: 'dump', type: 'D', format: 'gnu', mode: 0o700 }, 'Yfile\0\0'),
      rawEntry({ name: 'after', type: '0', signedChecksum: true, uid: 0o7777777 }, '\u00e9'),
      END_OF_ARCHIVE,
      Buffer.alloc(9216), // GNU tar pads to 10 KiB records
    ]);
    const entries = await parseInChunks(tar, 7);
    assert.deepEqual(entries.map((entry) => [entry.path, entry.type]), [
      ['olddir', 'directory'], ['olddir/file', 'file'], ['dump', 'directory'], ['after', 'file'],
    ]);
    assertContent(tar, entries[1] as LayerEntry, Buffer.from([0xff, 0xfe]));
    assertContent(tar, entries[3] as LayerEntry, '\u00e9');
  });

  it('tolerates a missing end-of-archive marker and an empty stream', async () => {
    const tar = rawEntry({ name: 'f', type: '0' }, 'x');
    assert.equal((await parseInChunks(tar)).length, 1);
    assert.equal((await parseInChunks(Buffer.alloc(0))).length, 0);
    assert.equal((await parseInChunks(Buffer.alloc(512))).length, 0);
  });
});

describe('tar layer parser: bad input', () => {
  it('rejects something that is not a tar as NOT_A_TAR', async () => {
    const junk = await parseError(randomBytes(4096));
    assert.equal(junk.code, 'NOT_A_TAR');
    assert.match(junk.message, /sha256:abc/);
    const gzip = await parseError(Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), randomBytes(2000)]), 1);
    assert.equal(gzip.code, 'NOT_A_TAR');
    assert.match(gzip.message, /gzip/);
    const short = await parseError(Buffer.from('hello'));
    assert.equal(short.code, 'NOT_A_TAR');
  });

  it('rejects a bad checksum after valid entries as CORRUPT, naming the offset', async () => {
    const second = rawEntry({ name: 'b', type: '0' }, 'b');
    second[0] = 0x63; // 'c': the stored checksum no longer matches
    const tar = Buffer.concat([rawEntry({ name: 'a', type: '0' }, 'a'), second, END_OF_ARCHIVE]);
    for (const size of [0, 3]) {
      const err = await parseError(tar, size);
      assert.equal(err.code, 'CORRUPT');
      assert.match(err.message, /checksum/);
      assert.match(err.message, /offset 1024/);
    }
  });

  it('rejects truncation inside content, headers, padding and extended headers', async () => {
    const whole = Buffer.concat([rawEntry({ name: 'a', type: '0' }, 'abcdef'), rawEntry({ name: 'b', type: '0' }, 'x'.repeat(1000)), END_OF_ARCHIVE]);
    for (const cut of [1024 + 600, 1024 + 300, 1024 + 512 + 1000, 512 + 3]) {
      const err = await parseError(whole.subarray(0, cut), 100);
      assert.equal(err.code, 'CORRUPT', `cut at ${cut}`);
      assert.match(err.message, /truncated/);
    }
    const pax = rawEntry({ name: 'PaxHeader', type: 'x' }, paxData([['path', 'p']]));
    assert.equal((await parseError(pax.subarray(0, 600))).code, 'CORRUPT');
    assert.match((await parseError(pax)).message, /extended header/);
  });

  it('rejects paths escaping the root, unsupported types and malformed fields', async () => {
    const cases: Array<[Buffer, RegExp]> = [
      [rawEntry({ name: '../etc/passwd', type: '0' }, 'x'), /escapes the layer root/],
      [rawEntry({ name: 'hl', type: '1', linkName: 'a/../../x' }), /escapes the layer root/],
      [rawEntry({ name: 'sparse', type: 'S', format: 'gnu' }), /unsupported entry type "S"/],
      [Buffer.concat([rawEntry({ name: 'P', type: 'x' }, paxData([['GNU.sparse.major', '1']])), rawEntry({ name: 'f', type: '0' })]), /sparse/],
      [Buffer.concat([rawEntry({ name: 'P', type: 'x' }, paxData([['size', 'lots']])), rawEntry({ name: 'f', type: '0' })]), /not a number/],
      [Buffer.concat([rawEntry({ name: 'P', type: 'x' }, Buffer.from('9 path=x')), rawEntry({ name: 'f', type: '0' })]), /malformed PAX/],
      [Buffer.concat([rawEntry({ name: 'a', type: '0' }), Buffer.alloc(512), rawEntry({ name: 'b', type: '0' })]), /single zero block/],
    ];
    for (const [tar, pattern] of cases) {
      const err = await parseError(Buffer.concat([tar, END_OF_ARCHIVE]));
      assert.equal(err.code, 'CORRUPT', pattern.source);
      assert.match(err.message, pattern);
    }
    const badOctal = rawHeader({ name: 'f', type: '0' });
    badOctal.write('9', 124, 'latin1'); // size field
    badOctal.write('000000\0 ', 148, 'latin1');
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : (badOctal[i] as number);
    badOctal.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    assert.match((await parseError(Buffer.concat([rawEntry({ name: 'a', type: '0' }), badOctal]))).message, /size field is not octal/);
  });

  it('keeps failing after the first error', () => {
    const parser = new TarEntryParser(() => undefined, { layer: '3' });
    assert.throws(() => parser.write(randomBytes(512)), (err: unknown) => err instanceof ClipError && err.code === 'NOT_A_TAR');
    assert.throws(() => parser.write(Buffer.alloc(512)), (err: unknown) => err instanceof ClipError && err.code === 'NOT_A_TAR');
    assert.throws(() => parser.end(), ClipError);
  });

  it('rejects non-byte chunks', async () => {
    await assert.rejects(collectLayerEntries(Readable.from(['text']), { layer: '0' }), (err: unknown) => err instanceof ClipError && err.code === 'INVALID_ARGUMENT');
  });
});
