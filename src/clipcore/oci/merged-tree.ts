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

/** As Linux allows (MAXSYMLINKS): more hops than this means a loop. */
const MAX_SYMLINK_HOPS = 40;

/**
 * The directory at `parts`, resolved the way an unpacker writing into a root directory does
 * (containerd and umoci resolve paths inside the root): symlinks among the components are
 * followed, never above the root, so `lib/b` lands in `usr/lib/b` when `lib -> usr/lib`.
 * With `create`, missing directories are made implicitly and a non-directory in the way is
 * replaced (a layer that puts entries under a path declares that path a directory). Without it,
 * a missing component gives undefined.
 */
export function resolveDir(root: DirNode, parts: readonly string[], create: boolean): DirNode | undefined {
  const ancestors: DirNode[] = [root];
  const pending = [...parts].reverse();
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.pop() as string;
    const dir = ancestors[ancestors.length - 1] as DirNode;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (ancestors.length > 1) ancestors.pop();
      continue;
    }
    const child = dir.children.get(part);
    if (child?.kind === 'dir') {
      ancestors.push(child);
    } else if (child?.kind === 'leaf' && child.spec.type === 'symlink' && hops < MAX_SYMLINK_HOPS) {
      hops++;
      const target = child.spec.linkTarget ?? '';
      if (target.startsWith('/')) ancestors.length = 1;
      pending.push(...target.split('/').reverse());
    } else if (create) {
      const created = newDir(IMPLICIT_DIR_SPEC);
      dir.children.set(part, created);
      ancestors.push(created);
    } else {
      return undefined;
    }
  }
  return ancestors[ancestors.length - 1];
}

/** The node named by `parts`: parents resolved through symlinks, the last component not followed. */
export function lookup(root: DirNode, parts: readonly string[]): TreeNode | undefined {
  if (parts.length === 0) return root;
  const parent = resolveDir(root, parts.slice(0, -1), false);
  return parent?.children.get(parts[parts.length - 1] as string);
}

/** The directory at `parts`, created as needed (see resolveDir). */
export function ensureDir(root: DirNode, parts: readonly string[]): DirNode {
  return resolveDir(root, parts, true) as DirNode;
}
