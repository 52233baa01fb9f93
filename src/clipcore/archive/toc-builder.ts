import { ClipError } from '../errors.js';
import type { DirEntry, Inode, InodeSpec, Toc } from './model.js';

/**
 * Collects paths and their attributes in any order and produces a Toc whose layout is a pure
 * function of the content: directories are laid out breadth-first, each directory's entries
 * sorted by name (byte order), inodes numbered in that order. Same input, same Toc, same bytes.
 */
export class TocBuilder {
  private readonly root: BuilderNode;

  constructor(rootSpec: InodeSpec = defaultRootSpec()) {
    if (rootSpec.type !== 'directory') throw new ClipError('INVALID_ARGUMENT', 'the archive root must be a directory');
    this.root = { spec: rootSpec, children: new Map() };
  }

  /** Sets the root directory's attributes (mode, owner, mtime, xattrs). */
  setRoot(spec: InodeSpec): void {
    if (spec.type !== 'directory') throw new ClipError('INVALID_ARGUMENT', 'the archive root must be a directory');
    this.root.spec = spec;
  }

  /**
   * Adds `path` (relative, '/'-separated, no '.' or '..' parts). Its parent directories must have
   * been added first. Adding a path again replaces it (a directory keeps its children).
   */
  add(path: string, spec: InodeSpec): void {
    const { siblings, name } = this.parentOf(path);
    const existing = siblings.get(name);
    if (existing && existing.spec.type === 'directory' && spec.type === 'directory') {
      existing.spec = spec;
      return;
    }
    siblings.set(name, { spec, children: spec.type === 'directory' ? new Map() : undefined });
  }

  /** Adds `path` as another name for the inode already at `existingPath` (a hard link). */
  addHardLink(path: string, existingPath: string): void {
    const target = this.lookup(existingPath);
    if (!target) throw new ClipError('NOT_FOUND', `hard link ${path}: target ${existingPath} is not in the archive`);
    if (target.spec.type === 'directory') {
      throw new ClipError('INVALID_ARGUMENT', `hard link ${path}: target ${existingPath} is a directory`);
    }
    const { siblings, name } = this.parentOf(path);
    siblings.set(name, target);
  }

  has(path: string): boolean {
    return this.lookup(path) !== undefined;
  }

  build(): Toc {
    const inodes: Inode[] = [];
    const entries: DirEntry[] = [];
    const indexOf = new Map<BuilderNode, number>();
    const linkCount = new Map<BuilderNode, number>();

    // First pass: count names per node so hard-linked inodes get the right nlink.
    const countQueue: BuilderNode[] = [this.root];
    for (let head = 0; head < countQueue.length; head++) {
      const dir = countQueue[head] as BuilderNode;
      for (const child of dir.children?.values() ?? []) {
        linkCount.set(child, (linkCount.get(child) ?? 0) + 1);
        if (child.children) countQueue.push(child);
      }
    }

    // Second pass: breadth-first, so every directory's entries are one contiguous, sorted run.
    const queue: BuilderNode[] = [this.root];
    indexOf.set(this.root, 0);
    inodes.push(placeholder());
    for (let head = 0; head < queue.length; head++) {
      const dir = queue[head] as BuilderNode;
      const names = [...(dir.children?.keys() ?? [])].sort(compareNames);
      const firstEntry = entries.length;
      let subdirs = 0;
      for (const name of names) {
        const child = dir.children?.get(name) as BuilderNode;
        let index = indexOf.get(child);
        if (index === undefined) {
          index = inodes.length;
          indexOf.set(child, index);
          inodes.push(placeholder());
          if (child.children) queue.push(child);
        }
        if (child.children) subdirs++;
        entries.push({ name, inode: index });
      }
      inodes[indexOf.get(dir) as number] = { ...dir.spec, nlink: 2 + subdirs, firstEntry, entryCount: names.length };
    }
    for (const [node, index] of indexOf) {
      if (node.children) continue;
      inodes[index] = { ...node.spec, nlink: linkCount.get(node) ?? 1 };
    }
    return { inodes, entries };
  }

  private lookup(path: string): BuilderNode | undefined {
    let node: BuilderNode | undefined = this.root;
    for (const part of splitPath(path)) {
      node = node?.children?.get(part);
      if (!node) return undefined;
    }
    return node;
  }

  private parentOf(path: string): { siblings: Map<string, BuilderNode>; name: string } {
    const parts = splitPath(path);
    const name = parts.pop();
    if (name === undefined) throw new ClipError('INVALID_ARGUMENT', 'cannot add the root path as an entry');
    let parent: BuilderNode | undefined = this.root;
    for (const part of parts) {
      parent = parent.children?.get(part);
      if (!parent || !parent.children) {
        throw new ClipError('INVALID_ARGUMENT', `cannot add ${path}: parent directory ${parts.join('/')} is missing`);
      }
    }
    if (!parent.children) throw new ClipError('INVALID_ARGUMENT', `cannot add ${path}: parent is not a directory`);
    return { siblings: parent.children, name };
  }
}

interface BuilderNode {
  spec: InodeSpec;
  /** Present exactly for directories. */
  children: Map<string, BuilderNode> | undefined;
}

export function splitPath(path: string): string[] {
  const parts = path.split('/').filter((part) => part !== '' && part !== '.');
  for (const part of parts) {
    if (part === '..') throw new ClipError('INVALID_ARGUMENT', `path ${JSON.stringify(path)} contains '..'`);
  }
  return parts;
}

/**
 * Byte order of the UTF-8 encoding, the order readers binary-search in. Comparing code points
 * gives the same order as comparing UTF-8 bytes, without encoding either string.
 */
export function compareNames(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Only surrogates (code points above U+FFFF) sort differently as UTF-16 units.
    if (x >= 0xd800 && x <= 0xdfff) return y >= 0xd800 && y <= 0xdfff ? x - y : 1;
    if (y >= 0xd800 && y <= 0xdfff) return -1;
    return x - y;
  }
  return a.length - b.length;
}

export function defaultRootSpec(): InodeSpec {
  return { type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, mtimeNs: 0n, xattrs: [] };
}

function placeholder(): Inode {
  return { type: 'directory', mode: 0, uid: 0, gid: 0, size: 0, mtimeNs: 0n, nlink: 0, xattrs: [] };
}
