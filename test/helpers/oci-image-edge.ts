/**
 * The layers of the "every edge case" test image: whiteouts of files and of directory subtrees,
 * an opaque directory with entries of its own layer before and after the marker, a file over a
 * directory and a directory over a file, hard links (three names; one link whose original name is
 * whited out above; one to a lower layer's file), symlinks (relative, absolute, dangling), a fifo,
 * devices, names over 100 bytes (PAX), GNU long names and long link targets (a layer written by GNU
 * tar), non-ASCII names, user xattrs (PAX SCHILY.xattr), setuid/setgid/sticky bits, empty files,
 * owners, a nanosecond mtime, implied parent directories and a big file.
 */
import { chmod, link, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LayerInput } from '../harness/image-builder.js';
import { buildTarLayer, patternContent, type Compression, type LayerEntry } from '../harness/tar-layer.js';
import { runTar } from './oci-tar.js';

export const LONG_NAME = `${'long-name-'.repeat(12)}end.txt`; // 127 bytes: needs PAX
export const LONG_PATH_DIR = `paths/${'p'.repeat(80)}/${'q'.repeat(80)}`;
export const UNICODE_NAME = 'unicode/naïve café 文件 🚀.txt';
export const GNU_LONG_NAME = `gnu/${'gnu-long-name-'.repeat(9)}end.txt`; // a 138-byte name: GNU ././@LongLink
export const GNU_LONG_DIR = `gnu/${'d'.repeat(60)}/${'e'.repeat(60)}`;
export const GNU_LONG_TARGET = `${'x/'.repeat(60)}target`; // a 126-byte symlink target: GNU 'K' record
/** Directories no layer lists (their parents are implied). */
export const IMPLIED_DIRS = ['/implicit', '/implicit/deeper'];
export const BIG_FILE_BYTES = 12 * 1024 * 1024 + 12_345;
export const BIG_FILE_SEED = 42;

const T1 = new Date('2023-05-06T07:08:09Z');
const T2 = new Date('2023-06-07T08:09:10Z');
const GNU_MTIME = 1_700_000_000;

/** The bottom layer: everything that upper layers will delete, replace or link to. */
function bottom(): LayerEntry[] {
  return [
    { type: 'dir', path: 'etc', mtime: T1 },
    { type: 'file', path: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\n' },
    { type: 'dir', path: 'etc/ssl', mode: 0o700 },
    { type: 'file', path: 'etc/ssl/cert.pem', content: 'lower cert\n', mode: 0o600 },
    { type: 'file', path: 'file-to-whiteout', content: 'to be whited out\n' },
    { type: 'dir', path: 'dir-to-whiteout' },
    { type: 'dir', path: 'dir-to-whiteout/sub' },
    { type: 'dir', path: 'dir-to-whiteout/sub/deep' },
    { type: 'file', path: 'dir-to-whiteout/sub/deep/file', content: 'deep\n' },
    { type: 'symlink', path: 'dir-to-whiteout/sub/link', target: '../gone' },
    { type: 'dir', path: 'opq' },
    { type: 'file', path: 'opq/lower-a', content: 'lower a\n' },
    { type: 'dir', path: 'opq/lower-sub' },
    { type: 'file', path: 'opq/lower-sub/x', content: 'x\n' },
    { type: 'file', path: 'becomes-dir', content: 'i was a file\n' },
    { type: 'dir', path: 'becomes-file' },
    { type: 'file', path: 'becomes-file/child', content: 'child\n' },
    { type: 'dir', path: 'hl' },
    { type: 'file', path: 'hl/orig', content: 'original of a link whose name goes away\n' },
    { type: 'hardlink', path: 'hl/link-to-orig', target: 'hl/orig' },
    { type: 'file', path: 'hl/three-a', content: 'three names\n', uid: 7, gid: 8, mode: 0o640 },
    { type: 'hardlink', path: 'hl/three-b', target: 'hl/three-a' },
    { type: 'hardlink', path: 'etc/three-c', target: 'hl/three-a' },
    { type: 'dir', path: 'links' },
    { type: 'symlink', path: 'links/relative', target: '../etc/passwd' },
    { type: 'symlink', path: 'links/absolute', target: '/etc/passwd' },
    { type: 'symlink', path: 'links/dangling', target: 'does/not/exist' },
    { type: 'hardlink', path: 'links/hard-to-symlink', target: 'links/relative' },
    { type: 'dir', path: 'dev' },
    { type: 'fifo', path: 'dev/fifo', mode: 0o620 },
    { type: 'hardlink', path: 'dev/fifo-link', target: 'dev/fifo' },
    { type: 'char-device', path: 'dev/null', major: 1, minor: 3, mode: 0o666 },
    { type: 'block-device', path: 'dev/loop7', major: 7, minor: 7, mode: 0o660 },
    { type: 'file', path: LONG_NAME, content: 'long name\n' },
    { type: 'dir', path: 'paths' },
    { type: 'dir', path: `paths/${'p'.repeat(80)}` },
    { type: 'dir', path: LONG_PATH_DIR },
    { type: 'file', path: `${LONG_PATH_DIR}/file-at-the-end-of-a-long-path.txt`, content: 'long path\n' },
    { type: 'dir', path: 'unicode' },
    { type: 'file', path: UNICODE_NAME, content: 'unicode\n' },
    { type: 'file', path: 'xattr-file', content: 'has xattrs\n', xattrs: { 'user.comment': 'a comment', 'user.mime_type': 'text/plain' } },
    { type: 'dir', path: 'xattr-dir', xattrs: { 'user.dir': 'on a dir' } },
    { type: 'dir', path: 'bin' },
    { type: 'file', path: 'bin/setuid-tool', content: '#!/bin/sh\necho hi\n', mode: 0o4755 },
    { type: 'dir', path: 'shared-group', mode: 0o2775, gid: 100 },
    { type: 'dir', path: 'sticky-tmp', mode: 0o1777 },
    { type: 'file', path: 'empty', content: '' },
    { type: 'file', path: 'etc/empty-too', content: '' },
    { type: 'file', path: 'owned', content: 'owned by 1000\n', uid: 1000, gid: 1000 },
    { type: 'file', path: 'odd-owner', content: 'odd owner\n', mode: 0o640, uid: 123, gid: 456, uname: 'someone', gname: 'somegroup' },
    { type: 'file', path: 'precise-mtime', content: 'ns mtime\n', pax: { mtime: '1700000000.123456789' } },
    // Parents that no entry lists: unpackers create them.
    { type: 'file', path: 'implicit/deeper/file', content: 'under implied directories\n' },
  ];
}

/** The middle layer, the one that deletes and replaces (gzip or zstd). */
function middle(): LayerEntry[] {
  return [
    { type: 'whiteout', path: 'file-to-whiteout' },
    { type: 'whiteout', path: 'dir-to-whiteout' },
    { type: 'file', path: 'opq/new-before', content: 'new before the marker\n' },
    { type: 'opaque', path: 'opq' },
    { type: 'file', path: 'opq/new-after', content: 'new after the marker\n' },
    { type: 'file', path: 'becomes-file', content: 'now a file\n' },
    { type: 'dir', path: 'becomes-dir', mode: 0o750 },
    { type: 'file', path: 'becomes-dir/inner', content: 'inner\n' },
    { type: 'whiteout', path: 'hl/orig' },
    { type: 'hardlink', path: 'etc/passwd-link', target: 'etc/passwd' },
    // A directory over a directory: its attributes change, its lower contents stay.
    { type: 'dir', path: 'etc', mode: 0o751, mtime: T2 },
    { type: 'file', path: 'etc/ssl/cert.pem', content: 'upper cert\n', mode: 0o644 },
    { type: 'dir', path: 'big' },
    { type: 'file', path: 'big/big.bin', content: patternContent(BIG_FILE_BYTES, BIG_FILE_SEED) },
  ];
}

/** The top layer: removes part of the GNU layer, recreates a whited-out name as a directory. */
function top(): LayerEntry[] {
  return [
    { type: 'whiteout', path: GNU_LONG_DIR.slice(0, GNU_LONG_DIR.lastIndexOf('/')) },
    { type: 'whiteout', path: 'never-existed' },
    { type: 'dir', path: 'file-to-whiteout' },
    { type: 'file', path: 'file-to-whiteout/now-a-dir', content: 'recreated as a directory\n' },
    { type: 'file', path: 'last.txt', content: 'top layer\n' },
  ];
}

/**
 * A layer written by GNU tar (`--format=gnu`): long names and long link targets become
 * `././@LongLink` entries, which tar-stream cannot write. Entries come from a real directory.
 */
export async function buildGnuLayer(scratch: string): Promise<Buffer> {
  const root = join(scratch, 'gnu-src');
  await mkdir(join(root, GNU_LONG_DIR), { recursive: true });
  await writeFile(join(root, GNU_LONG_NAME), 'gnu long name\n');
  await writeFile(join(root, GNU_LONG_DIR, 'file-under-a-long-gnu-path.txt'), 'gnu long path\n');
  await writeFile(join(root, 'gnu/ünïcödé-gnu.txt'), 'gnu unicode\n');
  await symlink(GNU_LONG_TARGET, join(root, 'gnu/long-symlink'));
  await link(join(root, GNU_LONG_NAME), join(root, 'gnu/hard-to-long-name'));
  await chmod(join(root, GNU_LONG_NAME), 0o640);
  for (const dir of ['gnu', `gnu/${'d'.repeat(60)}`, GNU_LONG_DIR]) await chmod(join(root, dir), 0o755);
  await chmod(join(root, GNU_LONG_DIR, 'file-under-a-long-gnu-path.txt'), 0o644);
  await chmod(join(root, 'gnu/ünïcödé-gnu.txt'), 0o644);
  const tar = await runTar(
    ['--format=gnu', '--numeric-owner', '--owner=4242', '--group=4343', `--mtime=@${GNU_MTIME}`, '--sort=name', '-cf', '-', 'gnu'],
    root,
  );
  if (!tar.includes(Buffer.from('././@LongLink'))) throw new Error('GNU tar wrote no ././@LongLink entry');
  return tar;
}

/**
 * The four layers: tar-stream gzip, GNU tar uncompressed, the middle one (zstd for the OCI
 * variant, gzip for the Docker one, as Docker schema 2 has no zstd), and gzip on top.
 */
export function edgeLayers(gnuTar: Buffer, middleCompression: Compression, format: 'oci' | 'docker'): LayerInput[] {
  const uncompressed = format === 'oci' ? 'application/vnd.oci.image.layer.v1.tar' : 'application/vnd.docker.image.rootfs.diff.tar';
  return [
    buildTarLayer(bottom(), { compression: 'gzip' }),
    { kind: 'raw', data: gnuTar, mediaType: uncompressed },
    buildTarLayer(middle(), { compression: middleCompression }),
    buildTarLayer(top(), { compression: 'gzip' }),
  ];
}
