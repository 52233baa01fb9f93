import { brotliDecompressSync } from 'node:zlib';
import { ArchiveFormatError, ClipError } from '../errors.js';
import type { ByteSource } from '../source/byte-source.js';
import {
  decodeHeader,
  FIRST_READ_BYTES,
  SectionCompression,
  SectionKind,
  sha256,
  type Header,
  type SectionEntry,
} from './format.js';
import { decodeMeta, type ArchiveMeta } from './meta.js';
import type { DirEntry, Inode, InodeIndex, Toc } from './model.js';
import { decodeToc } from './toc-codec.js';
import { compareNames, splitPath } from './toc-builder.js';

/** No section inflates beyond this: a damaged length field must not allocate gigabytes. */
const MAX_SECTION_RAW_BYTES = 1024 * 1024 * 1024;
/** Metadata sections are fetched together when they span at most this much. */
const MAX_PREFETCH_BYTES = 256 * 1024 * 1024;

/**
 * An opened archive's header, metadata and table of contents, with path lookups. Opening costs
 * one read of the archive's head (two when the TOC is larger than the first read).
 */
export class ArchiveIndex {
  private constructor(
    readonly source: ByteSource,
    readonly header: Header,
    readonly meta: ArchiveMeta,
    readonly toc: Toc,
    private readonly prefetched: readonly Prefetched[],
  ) {}

  static async open(source: ByteSource): Promise<ArchiveIndex> {
    const size = await source.size();
    let head = await source.read(0, Math.min(size, FIRST_READ_BYTES));
    let header = decodeHeader(head, size, source.description);
    if ('needBytes' in header) {
      head = await source.read(0, header.needBytes);
      header = decodeHeader(head, size, source.description);
      if ('needBytes' in header) throw new ArchiveFormatError('TRUNCATED', `${source.description}: header is incomplete`);
    }
    const prefetched: Prefetched[] = [{ offset: 0, bytes: head }];
    // The metadata sections are contiguous (see writer.ts): fetch them all in one more read.
    const small = header.sections.filter((section) => section.kind !== SectionKind.Data && section.kind !== SectionKind.Windows);
    const start = Math.min(...small.map((section) => section.offset));
    const end = Math.max(...small.map((section) => section.offset + section.length));
    if (small.length > 0 && end > head.length && end - start <= MAX_PREFETCH_BYTES) {
      prefetched.push({ offset: start, bytes: await source.read(start, end - start) });
    }
    const meta = decodeMeta(await readSection(source, header, prefetched, SectionKind.Meta));
    const toc = decodeToc(await readSection(source, header, prefetched, SectionKind.Toc));
    return new ArchiveIndex(source, header, meta, toc, prefetched);
  }

  section(kind: SectionKind): SectionEntry | undefined {
    return this.header.sections.find((section) => section.kind === kind);
  }

  /** Reads, verifies and decompresses a whole section. */
  readSection(kind: SectionKind): Promise<Buffer> {
    return readSection(this.source, this.header, this.prefetched, kind);
  }

  inode(index: InodeIndex): Inode {
    const inode = this.toc.inodes[index];
    if (!inode) throw new ClipError('NOT_FOUND', `inode ${index} does not exist`);
    return inode;
  }

  /** The entries of a directory, sorted by name. */
  entries(index: InodeIndex): readonly DirEntry[] {
    const inode = this.inode(index);
    if (inode.type !== 'directory') throw new ClipError('NOT_A_DIRECTORY', `inode ${index} is not a directory`);
    const first = inode.firstEntry ?? 0;
    return this.toc.entries.slice(first, first + (inode.entryCount ?? 0));
  }

  /** Binary search of one directory's sorted entries. */
  child(dir: InodeIndex, name: string): InodeIndex | undefined {
    const inode = this.inode(dir);
    if (inode.type !== 'directory') return undefined;
    let low = inode.firstEntry ?? 0;
    let high = low + (inode.entryCount ?? 0) - 1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      const entry = this.toc.entries[middle] as DirEntry;
      const order = compareNames(entry.name, name);
      if (order === 0) return entry.inode;
      if (order < 0) low = middle + 1;
      else high = middle - 1;
    }
    return undefined;
  }

  /** Resolves a path (without following symlinks) to its inode. */
  resolve(path: string): InodeIndex {
    let current: InodeIndex = 0;
    const parts = splitPath(path);
    for (let i = 0; i < parts.length; i++) {
      if (this.inode(current).type !== 'directory') {
        throw new ClipError('NOT_A_DIRECTORY', `${parts.slice(0, i).join('/')} is not a directory`);
      }
      const next = this.child(current, parts[i] as string);
      if (next === undefined) throw new ClipError('NOT_FOUND', `${path}: no such file or directory in the archive`);
      current = next;
    }
    return current;
  }

  /** Every path in the archive, parents before children, each directory's entries in name order. */
  *walk(): Generator<{ path: string; inode: InodeIndex }> {
    yield { path: '', inode: 0 };
    const stack: { dir: InodeIndex; path: string }[] = [{ dir: 0, path: '' }];
    while (stack.length > 0) {
      const { dir, path } = stack.pop() as { dir: InodeIndex; path: string };
      const subdirs: { dir: InodeIndex; path: string }[] = [];
      for (const entry of this.entries(dir)) {
        const childPath = path === '' ? entry.name : `${path}/${entry.name}`;
        yield { path: childPath, inode: entry.inode };
        if (this.inode(entry.inode).type === 'directory') subdirs.push({ dir: entry.inode, path: childPath });
      }
      stack.push(...subdirs.reverse());
    }
  }
}

interface Prefetched {
  readonly offset: number;
  readonly bytes: Buffer;
}

/** Reads, verifies and decompresses a whole section, from prefetched bytes when they hold it. */
async function readSection(source: ByteSource, header: Header, prefetched: readonly Prefetched[], kind: SectionKind): Promise<Buffer> {
  const section = header.sections.find((entry) => entry.kind === kind);
  if (!section) throw new ArchiveFormatError('CORRUPT', `${source.description}: the ${SectionKind[kind]} section is missing`);
  const end = section.offset + section.length;
  const holder = prefetched.find((block) => section.offset >= block.offset && end <= block.offset + block.bytes.length);
  const stored = holder
    ? holder.bytes.subarray(section.offset - holder.offset, end - holder.offset)
    : await source.read(section.offset, section.length);
  if (stored.length !== section.length) {
    throw new ArchiveFormatError('TRUNCATED', `${source.description}: the ${SectionKind[kind]} section is cut short`);
  }
  if (!sha256(stored).equals(section.sha256)) {
    throw new ArchiveFormatError('CHECKSUM_MISMATCH', `${source.description}: the ${SectionKind[kind]} section fails its checksum`);
  }
  if (section.compression === SectionCompression.None) return stored;
  if (section.rawLength > MAX_SECTION_RAW_BYTES) {
    throw new ArchiveFormatError('CORRUPT', `${source.description}: the ${SectionKind[kind]} section claims ${section.rawLength} bytes`);
  }
  let raw: Buffer;
  try {
    raw = brotliDecompressSync(stored, { maxOutputLength: Math.max(1, section.rawLength) });
  } catch (err) {
    throw new ArchiveFormatError('CORRUPT', `${source.description}: the ${SectionKind[kind]} section does not decompress`, { cause: err });
  }
  if (raw.length !== section.rawLength) {
    throw new ArchiveFormatError('CORRUPT', `${source.description}: the ${SectionKind[kind]} section decompresses to ${raw.length} bytes, expected ${section.rawLength}`);
  }
  return raw;
}
