import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClipError } from '../src/clipcore/errors.js';
import type { LayerEntry } from '../src/clipcore/oci/layer-entry.js';
import type { Toc } from '../src/clipcore/archive/model.js';
import { IncrementalMerge } from '../src/clipcore/oci/incremental-merge.js';
import { OverlayMerger } from '../src/clipcore/oci/overlay.js';
import {
  assertTree, dir, file, fileAt, hardlink, IMPLICIT_DIR, opaque, special, symlink, whiteout,
} from './helpers/oci-entries.js';
import { packTar, parseInChunks, tocPaths, type PackEntry } from './helpers/oci-tar.js';

type Arrival = 'bottom first' | 'top first' | 'round robin';

/** Feeds IncrementalMerge the layers in pieces of `batch` entries, the layers arriving in `arrival` order. */
function mergeIncrementally(layers: readonly (readonly LayerEntry[])[], batch: number, arrival: Arrival): Toc {
  const merge = new IncrementalMerge(layers.length);
  const pieces = layers.map((entries) => {
    const out: LayerEntry[][] = [];
    for (let i = 0; i < entries.length; i += batch) out.push(entries.slice(i, i + batch));
    return out;
  });
  const order = layers.map((_, i) => i);
  if (arrival === 'top first') order.reverse();
  if (arrival === 'round robin') {
    const ended = new Set<number>();
    while (ended.size < layers.length) {
      for (const layer of order) {
        if (ended.has(layer)) continue;
        const piece = pieces[layer]?.shift();
        if (piece) merge.add(layer, piece);
        else {
          merge.end(layer);
          ended.add(layer);
        }
      }
    }
    return merge.build();
  }
  for (const layer of order) {
    for (const piece of pieces[layer] ?? []) merge.add(layer, piece);
    merge.end(layer);
  }
  return merge.build();
}

/** The reference: each whole layer applied in turn, bottom first. */
function mergeWhole(layers: readonly (readonly LayerEntry[])[]): Toc {
  const merger = new OverlayMerger();
  for (const entries of layers) merger.addLayer(entries);
  return merger.build();
}

/**
 * mergeWhole, checked against IncrementalMerge fed the same layers in pieces and in other
 * orders: both must give the same Toc, or fail with the same error.
 */
function mergeLayers(layers: readonly (readonly LayerEntry[])[]): Toc {
  const variants: Array<[number, Arrival]> = [];
  for (const batch of [1, 2, 1_000_000]) for (const arrival of ['bottom first', 'top first', 'round robin'] as const) variants.push([batch, arrival]);
  let expected: Toc;
  try {
    expected = mergeWhole(layers);
  } catch (err) {
    for (const [batch, arrival] of variants) {
      assert.throws(() => mergeIncrementally(layers, batch, arrival), { message: (err as Error).message }, `batches of ${batch}, ${arrival}`);
    }
    throw err;
  }
  for (const [batch, arrival] of variants) assert.deepEqual(mergeIncrementally(layers, batch, arrival), expected, `batches of ${batch}, ${arrival}`);
  return expected;
}

describe('OCI overlay merge', () => {
  it('builds a single layer, with implicit parents and root attributes from "."', () => {
    const c = file('a/b/c.txt', 'hi', { uid: 7, gid: 8, mode: 0o640, mtimeNs: 42n });
    const empty = file('empty', '');
    const toc = mergeLayers([[
      dir('', { mode: 0o700, mtimeNs: 5n, uid: 1 }), c, symlink('a/l', 'b/c.txt'), special('p', 'fifo'),
      special('dev/null', 'char', 1, 3), special('dev/sda', 'block', 8, 0), empty,
    ]]);
    assertTree(toc, {
      '': { type: 'directory', mode: 0o700, mtimeNs: 5n, uid: 1, nlink: 4 },
      a: { ...IMPLICIT_DIR, nlink: 3 },
      'a/b': { ...IMPLICIT_DIR, nlink: 2 },
      'a/b/c.txt': { ...fileAt(c, 0), uid: 7, gid: 8, mode: 0o640, mtimeNs: 42n },
      'a/l': { type: 'symlink', size: 7, linkTarget: 'b/c.txt', nlink: 1 },
      p: { type: 'fifo', nlink: 1 },
      dev: IMPLICIT_DIR,
      'dev/null': { type: 'char', rdevMajor: 1, rdevMinor: 3 },
      'dev/sda': { type: 'block', rdevMajor: 8, rdevMinor: 0 },
      empty: fileAt(empty, 0),
    });
  });

  it('whiteouts remove files and whole directory subtrees of lower layers only', () => {
    const keep = file('keep', 'k');
    const sameLayerA = file('x', 'new x');
    const sameLayerB = file('y', 'new y');
    const later = file('d/new');
    const toc = mergeLayers([
      [keep, file('gone'), dir('d'), file('d/x'), dir('d/sub'), file('d/sub/y'), dir('other'), file('other/z'), file('x'), file('y')],
      // The whiteout of x/y sits in the same layer as a new x/y: only the lower ones go. Whiteouts
      // of things that don't exist (even under a file, keep/...) change nothing.
      [
        whiteout('gone'), whiteout('d'), whiteout('nonexistent'), whiteout('ghost/dir/x'), whiteout('keep/x'), whiteout('other/z'),
        sameLayerA, whiteout('x'), whiteout('y'), sameLayerB,
      ],
      [dir('d', { mode: 0o711 }), later],
    ]);
    assertTree(toc, {
      '': { type: 'directory', nlink: 4 },
      keep: fileAt(keep, 0),
      other: { type: 'directory', nlink: 2 },
      x: fileAt(sameLayerA, 1),
      y: fileAt(sameLayerB, 1),
      d: { type: 'directory', mode: 0o711 },
      'd/new': fileAt(later, 2),
    });
  });

  it('opaque markers hide lower contents, before or after the same layer\'s entries', () => {
    const before = file('o/before');
    const after = file('o/after');
    const pNew = file('p/new');
    const toc = mergeLayers([
      [dir('o', { mode: 0o700 }), file('o/lower1'), dir('o/lowerdir'), file('o/lowerdir/f'), dir('p', { mode: 0o701, uid: 3 }), file('p/lower'), file('top')],
      [before, opaque('o'), after, dir('o', { mode: 0o750 }), opaque('p'), pNew, opaque('q')],
    ]);
    assertTree(toc, {
      '': { type: 'directory' },
      top: { type: 'file' },
      o: { type: 'directory', mode: 0o750, nlink: 2 },
      'o/before': fileAt(before, 1),
      'o/after': fileAt(after, 1),
      // No directory entry for p in the upper layer: its attributes stay the lower ones.
      p: { type: 'directory', mode: 0o701, uid: 3 },
      'p/new': fileAt(pNew, 1),
      q: IMPLICIT_DIR,
    });
  });

  it('an opaque marker in the bottom layer acts before the layer\'s entries, wherever it sits', () => {
    // Merged whole, the markers make o/ (and then q/ under the symlink's name) before any entry of
    // the layer; merged as the entries arrive, the markers come after the symlink and the file
    // that replace those directories, so the incremental merge has to start over.
    const f = file('f');
    const toc = mergeLayers([[symlink('s', 'target'), f, dir('target'), opaque('s'), opaque('f'), opaque('o')]]);
    assertTree(toc, {
      '': { type: 'directory' },
      s: { type: 'symlink', linkTarget: 'target', size: 6 },
      f: fileAt(f, 0),
      target: { type: 'directory' },
      o: IMPLICIT_DIR,
    });
  });

  it('an opaque root hides every lower entry', () => {
    const only = file('only');
    const toc = mergeLayers([[file('a'), dir('b'), file('b/c')], [only, opaque('')]]);
    assertTree(toc, { '': { type: 'directory' }, only: fileAt(only, 1) });
  });

  it('replaces across types: file over dir, dir over file, symlink over dir; dir over dir merges', () => {
    const fd = file('fd', 'now a file');
    const keep = file('dd/keep');
    const added = file('dd/added');
    const toc = mergeLayers([
      [dir('fd'), file('fd/child'), file('df'), symlink('sd', 'x'), dir('sl'), file('sl/c'), dir('dd', { mode: 0o700, uid: 1 }), keep],
      [fd, dir('df', { mode: 0o711 }), dir('sd'), symlink('sl', 'target'), dir('dd', { mode: 0o755, uid: 2, mtimeNs: 9n }), added],
    ]);
    assertTree(toc, {
      '': { type: 'directory', nlink: 5 },
      fd: fileAt(fd, 1),
      df: { type: 'directory', mode: 0o711, nlink: 2 },
      sd: { type: 'directory' },
      sl: { type: 'symlink', linkTarget: 'target', size: 6 },
      dd: { type: 'directory', mode: 0o755, uid: 2, mtimeNs: 9n },
      'dd/keep': fileAt(keep, 0),
      'dd/added': fileAt(added, 1),
    });
  });

  it('the later of two entries with the same path in one layer wins', () => {
    const second = file('t', '2');
    const uAsFile = file('u', 'f');
    const y = file('v/y');
    const toc = mergeLayers([[
      file('t', '1'), second,
      dir('u'), file('u/x'), uAsFile,
      file('v'), dir('v'), y,
      dir('w', { mode: 0o700 }), dir('w', { mode: 0o751 }),
    ]]);
    assertTree(toc, {
      '': { type: 'directory' },
      t: fileAt(second, 0),
      u: fileAt(uAsFile, 0),
      v: { type: 'directory' },
      'v/y': fileAt(y, 0),
      w: { type: 'directory', mode: 0o751 },
    });
  });

  it('hard links share one inode and survive their original name being removed or replaced', () => {
    const orig = file('orig', 'data', { mode: 0o600, uid: 5 });
    const replacement = file('link1', 'replaced');
    const layers: LayerEntry[][] = [
      [orig, hardlink('link1', 'orig'), hardlink('sub/link2', 'link1'), symlink('sym', 'orig'), hardlink('symlink-hard', 'sym')],
      [hardlink('link3', 'orig')],
      [whiteout('orig')],
      [replacement],
    ];
    const merger = new OverlayMerger();
    const origSummary = { ...fileAt(orig, 0), mode: 0o600, uid: 5 };

    merger.addLayer(layers[0] as LayerEntry[]);
    const first = assertTree(merger.build(), {
      '': { type: 'directory' },
      orig: { ...origSummary, nlink: 3 },
      link1: { ...origSummary, nlink: 3 },
      sub: IMPLICIT_DIR,
      'sub/link2': { ...origSummary, nlink: 3 },
      sym: { type: 'symlink', nlink: 2 },
      'symlink-hard': { type: 'symlink', nlink: 2 },
    });
    assert.equal(first.get('orig'), first.get('sub/link2'));

    merger.addLayer(layers[1] as LayerEntry[]);
    assert.equal(tocPaths(merger.build()).get('link3')?.nlink, 4);

    merger.addLayer(layers[2] as LayerEntry[]);
    const whited = tocPaths(merger.build());
    assert.equal(whited.has('orig'), false);
    for (const path of ['link1', 'sub/link2', 'link3']) {
      assert.deepEqual(whited.get(path)?.location, { layer: 0, offset: orig.dataOffset });
      assert.equal(whited.get(path)?.nlink, 3);
    }

    merger.addLayer(layers[3] as LayerEntry[]);
    assert.equal(merger.layerCount, 4);
    assertTree(merger.build(), {
      '': { type: 'directory' },
      link1: fileAt(replacement, 3),
      sub: IMPLICIT_DIR,
      'sub/link2': { ...origSummary, nlink: 2 },
      link3: { ...origSummary, nlink: 2 },
      sym: { type: 'symlink', nlink: 2 },
      'symlink-hard': { type: 'symlink', nlink: 2 },
    });
  });

  it('ignores reserved whiteout names and anything inside them', () => {
    const kept = file('kept');
    const toc = mergeLayers([[dir('.wh..wh.plnk'), file('.wh..wh.plnk/1234.5'), file('.wh..wh.aufs'), kept, file('a/.wh..wh.orph/x')]]);
    assertTree(toc, { '': { type: 'directory' }, kept: fileAt(kept, 0) });
  });

  it('rejects dangling hard links, links to directories and a non-directory root', () => {
    const corrupt = (layers: LayerEntry[][], pattern: RegExp): void => {
      assert.throws(() => mergeLayers(layers), (err: unknown) => err instanceof ClipError && err.code === 'CORRUPT' && pattern.test(err.message));
    };
    corrupt([[hardlink('l', 'missing')]], /layer 0: hard link l points to missing/);
    corrupt([[file('a')], [whiteout('a'), hardlink('l', 'a')]], /layer 1: hard link l/);
    corrupt([[dir('d'), hardlink('l', 'd')]], /directory d/);
    corrupt([[file('')]], /root entry is a file/);
  });

  it('merges real layer tars: every file resolves to its bytes in its layer', async () => {
    const mtime = new Date(1_600_000_000_000);
    const layerSpecs: PackEntry[][] = [
      [
        { header: { name: './', type: 'directory', mode: 0o755, mtime } },
        { header: { name: './etc/', type: 'directory', mtime } },
        { header: { name: './etc/passwd', mtime }, content: 'root:x:0:0\n' },
        { header: { name: './etc/hosts', mtime }, content: '127.0.0.1 localhost\n' },
        { header: { name: './usr/lib/libfoo.so.1', mtime }, content: 'ELF v1' },
        { header: { name: './usr/lib/libfoo.so', type: 'symlink', linkname: 'libfoo.so.1', mtime } },
        { header: { name: './usr/bin/tool', mode: 0o755, mtime }, content: 'tool v1' },
        { header: { name: './usr/bin/tool-alias', type: 'link', linkname: './usr/bin/tool', mtime } },
        { header: { name: './var/cache/a', mtime }, content: 'cache a' },
        { header: { name: './var/cache/b', mtime }, content: 'cache b' },
      ],
      [
        { header: { name: 'etc/.wh.hosts', mtime } },
        { header: { name: 'var/cache/.wh..wh..opq', mtime } },
        { header: { name: 'var/cache/c', mtime }, content: 'cache c' },
        { header: { name: 'usr/bin/tool', mode: 0o755, mtime }, content: 'tool v2' },
        { header: { name: `opt/${'long-name-'.repeat(15)}`, mtime, pax: { 'SCHILY.xattr.user.k': 'v' } }, content: 'long' },
      ],
      [
        { header: { name: 'usr/lib', type: 'file', mtime }, content: 'lib is now a file' },
        { header: { name: 'etc/passwd', mtime }, content: 'root:x:0:0\nuser:x:1000:1000\n' },
      ],
    ];
    const tars = await Promise.all(layerSpecs.map((entries) => packTar(entries)));
    const toc = mergeLayers(await Promise.all(tars.map((tar, index) => parseInChunks(tar, 1000, String(index)))));
    const expected: Record<string, string> = {
      'etc/passwd': 'root:x:0:0\nuser:x:1000:1000\n',
      'usr/lib': 'lib is now a file',
      'usr/bin/tool': 'tool v2',
      'usr/bin/tool-alias': 'tool v1',
      'var/cache/c': 'cache c',
      [`opt/${'long-name-'.repeat(15)}`]: 'long',
    };
    const paths = tocPaths(toc);
    assert.deepEqual([...paths.keys()].sort(), ['', 'etc', 'opt', 'usr', 'usr/bin', 'var', 'var/cache', ...Object.keys(expected)].sort());
    for (const [path, content] of Object.entries(expected)) {
      const inode = paths.get(path);
      const location = inode?.location;
      assert.ok(inode && location, path);
      const tar = tars[location.layer] as Buffer;
      assert.equal(tar.subarray(location.offset, location.offset + inode.size).toString(), content, path);
    }
    assert.deepEqual(paths.get(`opt/${'long-name-'.repeat(15)}`)?.xattrs, [{ name: 'user.k', value: Buffer.from('v') }]);
  });

  it('merges 100k+ entries quickly', () => {
    const lower: LayerEntry[] = [];
    for (let d = 0; d < 1000; d++) {
      lower.push(dir(`dir${d}`));
      for (let f = 0; f < 100; f++) lower.push(file(`dir${d}/sub/file${f}`));
    }
    const upper: LayerEntry[] = [];
    for (let d = 0; d < 1000; d += 10) upper.push(whiteout(`dir${d}`), opaque(`dir${d + 1}/sub`), file(`dir${d + 2}/sub/file0`));
    for (let f = 0; f < 20_000; f++) upper.push(file(`new/${f % 100}/f${f}`), hardlink(`new/${f % 100}/h${f}`, `dir5/sub/file${f % 100}`));
    const start = performance.now();
    const toc = mergeWhole([lower, upper]);
    const elapsed = performance.now() - start;
    // 1000 dirs - 100 whiteouts, their 'sub', 100 files each except 100 opaque ones, new/: 100 dirs of 400.
    assert.equal(toc.inodes.length, 1 + 900 * 2 + 800 * 100 + 1 + 100 + 20_000);
    assert.equal(toc.entries.length, toc.inodes.length - 1 + 20_000);
    assert.ok(elapsed < 20_000, `merge took ${elapsed.toFixed(0)} ms`);
  });
});

describe('paths through symlinks', () => {
  it('entries, whiteouts and hard links under a symlinked directory resolve inside the root', () => {
    const toc = mergeLayers([
      [dir('usr'), dir('usr/lib'), file('usr/lib/a', 'a'), symlink('lib', 'usr/lib'), symlink('abs', '/usr/lib'), symlink('up', '../../usr')],
      [file('lib/b', 'b'), file('abs/c', 'c'), file('up/lib/d', 'd'), whiteout('lib/a'), hardlink('lib/e', 'abs/b')],
    ]);
    const paths = tocPaths(toc);
    assert.deepEqual([...paths.keys()].filter((p) => p.startsWith('usr/lib/')).sort(), ['usr/lib/b', 'usr/lib/c', 'usr/lib/d', 'usr/lib/e']);
    for (const link of ['lib', 'abs', 'up']) assert.equal(paths.get(link)?.type, 'symlink');
    assert.equal(paths.get('usr/lib/e')?.nlink, 2);
  });
});
