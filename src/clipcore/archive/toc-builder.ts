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
    return layoutToc(this.root);
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

/**
 * A tree to lay out as a Toc: `children` is present exactly for directories, and a node that
 * appears under several names is one inode with several names (a hard link). The overlay merge
 * lays out its own tree this way, without building a second one.
 */
export interface TocNode {
  readonly spec: InodeSpec;
  readonly children?: ReadonlyMap<string, TocNode> | undefined;
}

/**
 * Breadth-first, so that every directory's entries are one contiguous run sorted by name, and
 * inodes are numbered in that order: the same tree always gives the same Toc.
 */
export function layoutToc(root: TocNode): Toc {
  const inodes: MutableInode[] = [];
  const entries: DirEntry[] = [];
  // Only non-directories can have several names; this finds a hard link's inode again.
  const leafIndex = new Map<TocNode, number>();
  const queue: Array<{ dir: TocNode; index: number }> = [{ dir: root, index: 0 }];
  inodes.push(PLACEHOLDER);
  for (let head = 0; head < queue.length; head++) {
    const { dir, index: dirIndex } = queue[head] as { dir: TocNode; index: number };
    const children = dir.children as ReadonlyMap<string, TocNode>;
    const names = sortNames([...children.keys()]);
    const firstEntry = entries.length;
    let subdirs = 0;
    for (const name of names) {
      const child = children.get(name) as TocNode;
      let index: number;
      if (child.children) {
        subdirs++;
        index = inodes.length;
        inodes.push(PLACEHOLDER);
        queue.push({ dir: child, index });
      } else {
        const known = leafIndex.get(child);
        if (known === undefined) {
          index = inodes.length;
          leafIndex.set(child, index);
          inodes.push(inodeOf(child.spec, 1));
        } else {
          index = known;
          (inodes[index] as MutableInode).nlink++;
        }
      }
      entries.push({ name, inode: index });
    }
    inodes[dirIndex] = inodeOf(dir.spec, 2 + subdirs, firstEntry, names.length);
  }
  return { inodes, entries };
}

type MutableInode = { -readonly [K in keyof Inode]: Inode[K] };

/**
 * Every field named, in one order, so that all inodes share one object shape: the TOC encoder
 * reads them all, and with spread copies of the specs (several shapes, some slow) encoding and
 * layout took 5 to 10 times as long.
 */
function inodeOf(spec: InodeSpec, nlink: number, firstEntry?: number, entryCount?: number): MutableInode {
  return {
    type: spec.type,
    mode: spec.mode,
    uid: spec.uid,
    gid: spec.gid,
    size: spec.size,
    mtimeNs: spec.mtimeNs,
    nlink,
    linkTarget: spec.linkTarget,
    rdevMajor: spec.rdevMajor,
    rdevMinor: spec.rdevMinor,
    xattrs: spec.xattrs,
    sha256: spec.sha256,
    location: spec.location,
    firstEntry,
    entryCount,
  };
}

/** Sorts in place by compareNames; the engine's own sort when no name has a surrogate (the common case). */
function sortNames(names: string[]): string[] {
  for (const name of names) if (SURROGATE.test(name)) return names.sort(compareNames);
  return names.sort();
}

const SURROGATE = /[\uD800-\uDFFF]/;

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

/** Fills a directory's slot until its entries are laid out. */
const PLACEHOLDER = inodeOf({ type: 'directory', mode: 0, uid: 0, gid: 0, size: 0, mtimeNs: 0n, xattrs: [] }, 0);
