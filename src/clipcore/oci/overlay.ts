import type { InodeSpec, Toc } from '../archive/model.js';
import { layoutToc } from '../archive/toc-builder.js';
import { ClipError } from '../errors.js';
import type { LayerEntry } from './layer-entry.js';
import { ensureDir, lookup, newDir, resolveDir, type DirNode, type LeafNode } from './merged-tree.js';
import { classifyWhiteout } from './whiteout.js';

/**
 * Merges an image's layers, bottom (index 0) first, into one filesystem the way an OCI unpacker
 * applies changesets, then lays it out as a Toc. Files point into their layer's uncompressed tar
 * stream: location = { layer: index, offset: dataOffset }.
 *
 * Each layer is applied in two passes. First its whiteouts and opaque markers delete from the
 * lower layers; then its other entries are applied in tar order, later ones replacing earlier
 * ones. Whiteouts never touch entries of their own layer, so doing them first is exactly the
 * spec's rule, wherever the markers sit in the tar.
 */
export class OverlayMerger {
  private readonly root: DirNode = newDir(rootSpec());
  private layers = 0;

  /** Number of layers applied so far; the next addLayer() is this index. */
  get layerCount(): number {
    return this.layers;
  }

  /** Applies the next layer (its entries in tar order) on top of those already added. */
  addLayer(entries: readonly LayerEntry[]): void {
    const layer = this.layers++;
    const kept: LayerEntry[] = [];
    for (const entry of entries) {
      const whiteout = classifyWhiteout(entry.path);
      switch (whiteout.kind) {
        case 'none':
          kept.push(entry);
          break;
        case 'remove': {
          // Pure removal: a whiteout under a path that isn't a lower directory has nothing to hide,
          // and must not turn a lower file into a directory.
          resolveDir(this.root, parentParts(entry.path), false)?.children.delete(whiteout.name);
          break;
        }
        case 'opaque':
          // The marker says this layer has the directory; create it if no layer listed it yet.
          ensureDir(this.root, parentParts(entry.path)).children.clear();
          break;
        case 'ignore':
          break;
      }
    }
    for (const entry of kept) this.apply(entry, layer);
  }

  /**
   * Applies entries of the bottom layer while more are still to come, so that merging overlaps
   * indexing. Exact for the bottom layer only: its whiteouts have nothing below them to remove.
   * An opaque marker, though, makes its directory before any of the layer's entries, which can no
   * longer be done once some are applied: then nothing of `entries` is applied, this returns
   * false, and the caller starts over with addLayer. End the layer with endBottomLayer().
   */
  streamBottomLayer(entries: readonly LayerEntry[]): boolean {
    if (this.layers !== 0) throw new Error('internal: streamBottomLayer above the bottom layer');
    for (const entry of entries) if (classifyWhiteout(entry.path).kind === 'opaque') return false;
    for (const entry of entries) if (classifyWhiteout(entry.path).kind === 'none') this.apply(entry, 0);
    return true;
  }

  endBottomLayer(): void {
    if (this.layers !== 0) throw new Error('internal: endBottomLayer above the bottom layer');
    this.layers = 1;
  }

  /** The merged filesystem as a Toc. The merger can keep accepting layers afterwards. */
  build(): Toc {
    // A hard link is the same LeafNode under several names, which is what layoutToc expects.
    return layoutToc(this.root);
  }

  private apply(entry: LayerEntry, layer: number): void {
    if (entry.path === '') {
      if (entry.type !== 'directory') {
        throw new ClipError('CORRUPT', `layer ${layer}: the root entry is a ${entry.type}, not a directory`);
      }
      this.root.spec = specOf(entry, layer);
      return;
    }
    // Resolve a hard link before touching the tree: its target is whatever the merged view holds
    // at this point (an earlier entry of this layer, or a lower layer).
    const target = entry.type === 'hardlink' ? this.linkTarget(entry, layer) : undefined;
    const parts = entry.path.split('/');
    const name = parts.pop() as string;
    const siblings = ensureDir(this.root, parts).children;
    if (target !== undefined) {
      siblings.set(name, target);
      return;
    }
    const existing = siblings.get(name);
    if (entry.type === 'directory' && existing !== undefined && existing.kind === 'dir') {
      // A directory over a directory merges: lower contents stay, attributes are the upper's.
      existing.spec = specOf(entry, layer);
      return;
    }
    // Anything else replaces what was there, a whole directory subtree included.
    const spec = specOf(entry, layer);
    siblings.set(name, entry.type === 'directory' ? newDir(spec) : { kind: 'leaf', spec });
  }

  private linkTarget(entry: LayerEntry, layer: number): LeafNode {
    const targetPath = entry.linkTarget ?? '';
    const target = targetPath === '' ? this.root : lookup(this.root, targetPath.split('/'));
    if (target === undefined) {
      throw new ClipError('CORRUPT', `layer ${layer}: hard link ${entry.path} points to ${targetPath}, which does not exist`);
    }
    if (target.kind === 'dir') {
      throw new ClipError('CORRUPT', `layer ${layer}: hard link ${entry.path} points to directory ${targetPath}`);
    }
    return target;
  }
}

function parentParts(path: string): string[] {
  const parts = path.split('/');
  parts.pop();
  return parts;
}

function rootSpec(): InodeSpec {
  return { type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, mtimeNs: 0n, xattrs: [] };
}

/** The inode attributes a (non-hardlink) entry stands for. */
export function specOf(entry: LayerEntry, layer: number): InodeSpec {
  // Object literals rather than spreads: this runs once per entry and shows up in profiles.
  const { mode, uid, gid, mtimeNs, xattrs } = entry;
  switch (entry.type) {
    case 'file':
      if (entry.dataOffset === undefined || entry.sha256 === undefined) {
        throw new ClipError('INVALID_ARGUMENT', `layer ${layer}: file ${entry.path} has no data offset or digest`);
      }
      return {
        type: 'file', mode, uid, gid, size: entry.size, mtimeNs, xattrs, sha256: entry.sha256,
        location: { layer, offset: entry.dataOffset },
      };
    case 'symlink': {
      const linkTarget = entry.linkTarget ?? '';
      return { type: 'symlink', mode, uid, gid, size: Buffer.byteLength(linkTarget), mtimeNs, xattrs, linkTarget };
    }
    case 'char':
    case 'block':
      return {
        type: entry.type, mode, uid, gid, size: 0, mtimeNs, xattrs, rdevMajor: entry.rdevMajor ?? 0, rdevMinor: entry.rdevMinor ?? 0,
      };
    case 'directory':
    case 'fifo':
      return { type: entry.type, mode, uid, gid, size: 0, mtimeNs, xattrs };
    case 'hardlink':
      throw new ClipError('INVALID_ARGUMENT', `layer ${layer}: hard link ${entry.path} has no attributes of its own`);
  }
}
