/** The regular files of an archive, walked from the root through its directory entries. */
import type { ArchiveReader } from '../src/clipcore/index.js';

export interface FileInfo {
  readonly path: string;
  readonly size: number;
  readonly layer: number;
  /** Offset of the file's first byte in its layer's uncompressed tar stream. */
  readonly offset: number;
}

export function regularFiles(reader: ArchiveReader): FileInfo[] {
  const index = reader.index;
  const files: FileInfo[] = [];
  const queue: Array<{ inode: number; path: string }> = [{ inode: 0, path: '' }];
  while (queue.length > 0) {
    const { inode, path } = queue.shift() as { inode: number; path: string };
    for (const entry of index.entries(inode)) {
      const child = index.inode(entry.inode);
      const childPath = path === '' ? entry.name : `${path}/${entry.name}`;
      if (child.type === 'directory') queue.push({ inode: entry.inode, path: childPath });
      else if (child.type === 'file') files.push({ path: childPath, size: child.size, layer: child.location?.layer ?? 0, offset: child.location?.offset ?? 0 });
    }
  }
  return files;
}

/** `count` distinct items, chosen with `random`. */
export function pick<T>(items: readonly T[], count: number, random: () => number): T[] {
  const pool = [...items];
  const chosen: T[] = [];
  while (chosen.length < count && pool.length > 0) {
    const i = Math.floor(random() * pool.length);
    chosen.push(pool[i] as T);
    pool[i] = pool[pool.length - 1] as T;
    pool.pop();
  }
  return chosen;
}
