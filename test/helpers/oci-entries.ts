import assert from 'node:assert/strict';
import type { Inode, Toc } from '../../src/clipcore/archive/model.js';
import type { LayerEntry } from '../../src/clipcore/oci/layer-entry.js';
import { pick, sha256, tocPaths, type InodeSummary } from './oci-tar.js';

/** LayerEntry factories for overlay tests: defaults everywhere, attributes overridable. */
type Attrs = Partial<Omit<LayerEntry, 'path' | 'type'>>;

let nextOffset = 512;
const digests = new Map<string, Buffer>();

/** Memoized: scale tests make 100k entries with the same few contents. */
function digestOf(content: string): Buffer {
  let digest = digests.get(content);
  if (digest === undefined) {
    digest = sha256(content);
    digests.set(content, digest);
  }
  return digest;
}

export function file(path: string, content = '', attrs: Attrs = {}): LayerEntry {
  const dataOffset = nextOffset;
  nextOffset += 1024;
  return {
    path, type: 'file', mode: 0o644, uid: 0, gid: 0, size: Buffer.byteLength(content), mtimeNs: 1_000_000_000n,
    xattrs: [], dataOffset, sha256: digestOf(content), headerOffset: dataOffset - 512, ...attrs,
  };
}

export function dir(path: string, attrs: Attrs = {}): LayerEntry {
  return { path, type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, mtimeNs: 1_000_000_000n, xattrs: [], headerOffset: 0, ...attrs };
}

export function symlink(path: string, target: string): LayerEntry {
  return { path, type: 'symlink', mode: 0o777, uid: 0, gid: 0, size: 0, mtimeNs: 0n, xattrs: [], linkTarget: target, headerOffset: 0 };
}

export function hardlink(path: string, target: string): LayerEntry {
  return { path, type: 'hardlink', mode: 0o644, uid: 0, gid: 0, size: 0, mtimeNs: 0n, xattrs: [], linkTarget: target, headerOffset: 0 };
}

export function special(path: string, type: 'char' | 'block' | 'fifo', major = 0, minor = 0): LayerEntry {
  const base = { path, type, mode: 0o600, uid: 0, gid: 0, size: 0, mtimeNs: 0n, xattrs: [], headerOffset: 0 };
  return type === 'fifo' ? base : { ...base, rdevMajor: major, rdevMinor: minor };
}

/** `.wh.<name>` next to `path`: deletes `path` from lower layers. */
export function whiteout(path: string): LayerEntry {
  const slash = path.lastIndexOf('/');
  return file(`${path.slice(0, slash + 1)}.wh.${path.slice(slash + 1)}`);
}

/** The opaque marker inside directory `path` ('' for the root). */
export function opaque(path: string): LayerEntry {
  return file(path === '' ? '.wh..wh..opq' : `${path}/.wh..wh..opq`);
}

/** The inode attributes a file entry should produce, located in `layer`. */
export function fileAt(entry: LayerEntry, layer: number, nlink = 1): InodeSummary {
  return {
    type: 'file', size: entry.size, nlink, sha256: entry.sha256 as Buffer, location: { layer, offset: entry.dataOffset as number },
  };
}

export const IMPLICIT_DIR: InodeSummary = { type: 'directory', mode: 0o755, uid: 0, gid: 0, mtimeNs: 0n };

/** The Toc holds exactly these paths, each with (at least) these attributes. */
export function assertTree(toc: Toc, expected: Record<string, InodeSummary>): Map<string, Inode> {
  const paths = tocPaths(toc);
  assert.deepEqual([...paths.keys()].sort(), Object.keys(expected).sort());
  for (const [path, want] of Object.entries(expected)) {
    assert.deepEqual(pick(paths.get(path) as Inode, want), want, `attributes of ${JSON.stringify(path)}`);
  }
  return paths;
}
