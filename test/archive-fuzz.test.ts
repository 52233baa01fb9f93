import assert from 'node:assert/strict';
import { lstat, mkdtemp, mkdir, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeToc, encodeToc } from '../src/clipcore/archive/toc-codec.js';
import { rng } from './helpers/compression-data.js';
import { ArchiveReader, BufferByteSource, ClipError, createArchive, SectionKind } from '../src/clipcore/index.js';

const FORMAT_CODES = new Set(['BAD_MAGIC', 'UNSUPPORTED_VERSION', 'TRUNCATED', 'CHECKSUM_MISMATCH', 'OUT_OF_RANGE', 'CORRUPT', 'DIGEST_MISMATCH']);

/** One line per entry: path, type, permission bits, size, mtime, link target, content (hex). */
const describeEntry = (path: string, type: string, mode: number, size: number, mtimeNs: bigint, linkTarget: string | null, content: string): string =>
  JSON.stringify([path, type, mode, size, String(mtimeNs), linkTarget, content]);

/**
 * The reference: what the archive must hold, read from the source tree with the file system's own
 * calls (never through the code under test). Sorted lines, as `readEverything` gives them.
 */
async function describeTree(root: string): Promise<string> {
  const lines: string[] = [];
  const visit = async (relative: string): Promise<void> => {
    const full = relative === '' ? root : join(root, relative);
    const stats = await lstat(full, { bigint: true });
    const mode = Number(stats.mode & 0o7777n);
    if (stats.isDirectory()) {
      lines.push(describeEntry(relative, 'directory', mode, 0, stats.mtimeNs, null, ''));
      for (const name of await readdir(full)) await visit(relative === '' ? name : `${relative}/${name}`);
    } else if (stats.isSymbolicLink()) {
      const target = await readlink(full);
      lines.push(describeEntry(relative, 'symlink', mode, Buffer.byteLength(target), stats.mtimeNs, target, ''));
    } else {
      lines.push(describeEntry(relative, 'file', mode, Number(stats.size), stats.mtimeNs, null, (await readFile(full)).toString('hex')));
    }
  };
  await visit('');
  return lines.sort().join('\n');
}

/** Opens an archive and reads everything in it; returns a canonical description (sorted lines). */
async function readEverything(bytes: Buffer): Promise<string> {
  const reader = await ArchiveReader.open(new BufferByteSource(bytes));
  try {
    const parts: string[] = [];
    for (const { path, inode } of reader.index.walk()) {
      const attributes = reader.index.inode(inode);
      const content = attributes.type === 'file' ? (await reader.readInode(inode, 0, attributes.size)).toString('hex') : '';
      parts.push(describeEntry(path, attributes.type, attributes.mode, attributes.size, attributes.mtimeNs, attributes.linkTarget ?? null, content));
    }
    return parts.sort().join('\n');
  } finally {
    await reader.close();
  }
}

async function expectTypedErrorOrSame(bytes: Buffer, expected: string, what: string): Promise<string | undefined> {
  try {
    const result = await readEverything(bytes);
    assert.equal(result, expected, `${what}: read succeeded with different content`);
    return undefined;
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    assert.ok(err instanceof ClipError, `${what}: threw a non-ClipError: ${String(err)}`);
    assert.ok(FORMAT_CODES.has(err.code), `${what}: unexpected code ${err.code}`);
    return err.code;
  }
}

describe('damaged archives', () => {
  let work: string;
  let original: Buffer;
  let expected: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'clip-fuzz-'));
    const source = join(work, 'source');
    await mkdir(join(source, 'sub'), { recursive: true });
    await writeFile(join(source, 'a.txt'), 'alpha\n');
    await writeFile(join(source, 'sub/b.bin'), Buffer.alloc(20_000, 7));
    await writeFile(join(source, 'sub/c'), '');
    await symlink('a.txt', join(source, 'link'));
    const path = join(work, 'small.clip');
    // Small spans so that the data section has several, each with its digest.
    await createArchive({ inputPath: source, outputPath: path, spanBytes: 4096, xattrs: false });
    original = await readFile(path);
    expected = await describeTree(source);
    assert.equal(await readEverything(original), expected, 'the undamaged archive reads as the source tree');
  });

  after(async () => rm(work, { recursive: true, force: true }));

  test('every truncation gives a typed error', async () => {
    const codes = new Set<string | undefined>();
    for (let length = 0; length < original.length; length++) {
      codes.add(await expectTypedErrorOrSame(original.subarray(0, length), expected, `truncated to ${length}`));
    }
    assert.ok(!codes.has(undefined), 'a truncated archive was read as if whole');
    assert.ok(codes.has('TRUNCATED'));
  });

  test('thousands of bit flips give a typed error or a correct read', async () => {
    const next = rng(42);
    const codes = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const damaged = Buffer.from(original);
      const flips = 1 + Math.floor(next() * 3);
      for (let f = 0; f < flips; f++) {
        const at = Math.floor(next() * damaged.length);
        damaged[at] = (damaged[at] as number) ^ (1 << Math.floor(next() * 8));
      }
      const code = (await expectTypedErrorOrSame(damaged, expected, `flip case ${i}`)) ?? 'read-ok';
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    // Damage in the header, in checksummed sections and in data spans is each detected.
    for (const code of ['BAD_MAGIC', 'CHECKSUM_MISMATCH', 'DIGEST_MISMATCH']) assert.ok(codes.has(code), `no ${code} among ${[...codes.keys()]}`);
  });

  test('specific damage gives its specific error', async () => {
    const badMagic = Buffer.from(original);
    badMagic[1] = 0;
    assert.equal(await expectTypedErrorOrSame(badMagic, expected, 'bad magic'), 'BAD_MAGIC');

    const future = Buffer.from(original);
    future.writeUInt16LE(99, 8);
    await assert.rejects(readEverything(future), (err: ClipError) => err.code === 'UNSUPPORTED_VERSION' && /this build reads version ≤ 1/.test(err.message));

    const reader = await ArchiveReader.open(new BufferByteSource(original));
    const dataOffset = reader.index.section(SectionKind.Data)?.offset ?? 0;
    await reader.close();
    const flippedData = Buffer.from(original);
    flippedData[dataOffset + 100] ^= 0xff;
    assert.equal(await expectTypedErrorOrSame(flippedData, expected, 'data flip'), 'DIGEST_MISMATCH');

    await assert.rejects(readEverything(Buffer.from('not an archive at all')), (err: ClipError) => err.code === 'BAD_MAGIC');
  });

  test('the TOC decoder survives random damage without checksums to protect it', async () => {
    const reader = await ArchiveReader.open(new BufferByteSource(original));
    const raw = encodeToc(reader.index.toc);
    await reader.close();
    const next = rng(7);
    const before = process.memoryUsage().rss;
    for (let i = 0; i < 5000; i++) {
      const damaged = Buffer.from(raw);
      const flips = 1 + Math.floor(next() * 4);
      for (let f = 0; f < flips; f++) damaged[Math.floor(next() * damaged.length)] = Math.floor(next() * 256);
      const cut = next() < 0.2 ? damaged.subarray(0, Math.floor(next() * damaged.length)) : damaged;
      try {
        const toc = decodeToc(cut);
        // A decoded TOC must be walkable to the end: count visits, bounded by the entry count.
        let visits = 0;
        const stack = [0];
        while (stack.length > 0) {
          const inode = toc.inodes[stack.pop() as number];
          assert.ok(inode);
          if (inode.type !== 'directory') continue;
          for (let e = inode.firstEntry ?? 0; e < (inode.firstEntry ?? 0) + (inode.entryCount ?? 0); e++) {
            visits++;
            assert.ok(visits <= toc.entries.length * toc.inodes.length + 1, 'walk does not end');
            stack.push(toc.entries[e]?.inode as number);
          }
        }
      } catch (err) {
        if (err instanceof assert.AssertionError) throw err;
        assert.ok(err instanceof ClipError && err.code === 'CORRUPT', `case ${i}: ${String(err)}`);
      }
    }
    assert.ok(process.memoryUsage().rss - before < 512 * 1024 * 1024, 'decoding damaged TOCs allocated too much');
  });
});
