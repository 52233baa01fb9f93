import { lstat, opendir, readlink } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { compareNames } from '../archive/toc-builder.js';
import type { EntryType } from '../archive/model.js';

export interface WalkedEntry {
  /** Path relative to the root, '/'-separated; '' is the root. */
  readonly path: string;
  readonly absolutePath: string;
  readonly type: EntryType;
  readonly stats: BigIntStats;
  readonly linkTarget?: string;
}

/**
 * Walks a directory tree without following symlinks, in a deterministic order (depth-first,
 * names in byte order), so that archives of the same tree are byte-identical.
 */
export async function* walkTree(root: string): AsyncGenerator<WalkedEntry> {
  const stack: { path: string; absolutePath: string }[] = [{ path: '', absolutePath: root }];
  while (stack.length > 0) {
    const { path, absolutePath } = stack.pop() as { path: string; absolutePath: string };
    const stats = await lstat(absolutePath, { bigint: true });
    const type = entryType(stats);
    const linkTarget = type === 'symlink' ? await readlink(absolutePath) : undefined;
    yield { path, absolutePath, type, stats, linkTarget };
    if (type !== 'directory') continue;
    const names: string[] = [];
    for await (const entry of await opendir(absolutePath)) names.push(entry.name);
    names.sort(compareNames).reverse();
    for (const name of names) {
      stack.push({ path: path === '' ? name : `${path}/${name}`, absolutePath: join(absolutePath, name) });
    }
  }
}

function entryType(stats: BigIntStats): EntryType {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'directory';
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isCharacterDevice()) return 'char';
  if (stats.isBlockDevice()) return 'block';
  if (stats.isFIFO()) return 'fifo';
  return 'socket';
}

/** Linux's encoding of dev_t (glibc gnu_dev_major / gnu_dev_minor). */
export function splitDeviceNumber(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}
