import type { InodeSpec } from '../archive/model.js';

/**
 * The filesystem as merged so far. A leaf object stands for an inode: hard links are the same
 * LeafNode under several names, so removing or replacing one name leaves the others intact.
 */
export interface DirNode {
  readonly kind: 'dir';
  spec: InodeSpec;
  readonly children: Map<string, TreeNode>;
}

export interface LeafNode {
  readonly kind: 'leaf';
  readonly spec: InodeSpec;
}

export type TreeNode = DirNode | LeafNode;

/**
 * Directories that tar entries imply but never list (a layer holding `a/b/c` without `a/`).
 * 0755 root:root with mtime 0 matches what unpackers create for missing parents (the mtime has no
 * source at all), and keeps the result deterministic.
 */
export const IMPLICIT_DIR_SPEC: InodeSpec = Object.freeze({
  type: 'directory',
  mode: 0o755,
  uid: 0,
  gid: 0,
  size: 0,
  mtimeNs: 0n,
  xattrs: Object.freeze([]),
});

export function newDir(spec: InodeSpec): DirNode {
  return { kind: 'dir', spec, children: new Map() };
}

export function lookup(root: DirNode, parts: readonly string[]): TreeNode | undefined {
  let node: TreeNode | undefined = root;
  for (const part of parts) {
    if (node.kind !== 'dir') return undefined;
    node = node.children.get(part);
    if (node === undefined) return undefined;
  }
  return node;
}

/**
 * The directory at `parts`, creating missing ones implicitly. A non-directory in the way is
 * replaced: a layer that puts entries under a path declares that path a directory, and the
 * upper layer wins.
 */
export function ensureDir(root: DirNode, parts: readonly string[]): DirNode {
  let dir = root;
  for (const part of parts) {
    const child = dir.children.get(part);
    if (child !== undefined && child.kind === 'dir') {
      dir = child;
      continue;
    }
    const created = newDir(IMPLICIT_DIR_SPEC);
    dir.children.set(part, created);
    dir = created;
  }
  return dir;
}
