/**
 * Prints a JSON description of every path under a root: type, mode, owner, size, mtime, link
 * target, xattrs, link count, inode and content digest. Tests run it as a separate process on
 * both the source tree and a FUSE mount, because the process serving a mount must never touch
 * it with blocking calls.
 *
 * Usage: node snapshot-tree.js <root>
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { readTreeXattrs } from '../../src/clipcore/create/xattr-reader.js';

export interface PathSnapshot {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  nlink: number;
  ino: number;
  linkTarget?: string;
  sha256?: string;
  xattrs: Record<string, string>;
}

export type TreeSnapshot = Record<string, PathSnapshot>;

async function snapshot(root: string): Promise<TreeSnapshot> {
  const xattrs = await readTreeXattrs(root);
  const result: TreeSnapshot = {};
  const visit = async (relativePath: string): Promise<void> => {
    const absolute = relativePath === '' ? root : join(root, relativePath);
    const stats = await lstat(absolute);
    const type = stats.isFile() ? 'file' : stats.isDirectory() ? 'directory' : stats.isSymbolicLink() ? 'symlink'
      : stats.isFIFO() ? 'fifo' : stats.isCharacterDevice() ? 'char' : stats.isBlockDevice() ? 'block' : 'socket';
    const entry: PathSnapshot = {
      type,
      mode: stats.mode & 0o7777,
      uid: stats.uid,
      gid: stats.gid,
      size: type === 'directory' ? 0 : stats.size,
      mtimeMs: Number((await lstat(absolute, { bigint: true })).mtimeNs / 1_000_000n),
      nlink: stats.nlink,
      ino: stats.ino,
      xattrs: Object.fromEntries((xattrs.get(relativePath) ?? []).map((x) => [x.name, x.value.toString('hex')])),
    };
    if (type === 'symlink') entry.linkTarget = await readlink(absolute);
    if (type === 'file') {
      const hash = createHash('sha256');
      for await (const chunk of createReadStream(absolute) as AsyncIterable<Buffer>) hash.update(chunk);
      entry.sha256 = hash.digest('hex');
    }
    result[`/${relativePath}`] = entry;
    if (type === 'directory') {
      const names = (await readdir(absolute)).sort();
      for (const name of names) await visit(relativePath === '' ? name : `${relativePath}/${name}`);
    }
  };
  await visit('');
  return result;
}

const root = process.argv[2];
if (root) {
  process.stdout.write(JSON.stringify(await snapshot(root)));
}
