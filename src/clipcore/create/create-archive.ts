import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { InodeSpec, Toc, Xattr } from '../archive/model.js';
import { SectionKind } from '../archive/format.js';
import { TocBuilder } from '../archive/toc-builder.js';
import { ArchiveFileWriter } from '../archive/writer.js';
import { ClipError } from '../errors.js';
import { WRITER_NAME } from '../version.js';
import { DataWriter } from './data-writer.js';
import { splitDeviceNumber, walkTree, type WalkedEntry } from './tree-walker.js';
import { readTreeXattrs } from './xattr-reader.js';

export interface CreateArchiveOptions {
  /** Directory to archive; symlinks inside it are stored as links, never followed. */
  readonly inputPath: string;
  /** Where to write the .clip file (replaced atomically). */
  readonly outputPath: string;
  /** Store extended attributes (needs `getfattr`). Default true. */
  readonly xattrs?: boolean;
  /** Size of the verified data spans. Default 256 KiB. */
  readonly spanBytes?: number;
  readonly onProgress?: (progress: CreateProgress) => void;
}

export interface CreateProgress {
  readonly entries: number;
  readonly bytesRead: number;
}

export interface CreateArchiveResult {
  readonly outputPath: string;
  readonly entries: number;
  readonly archiveBytes: number;
  /** Bytes of file content stored once each. */
  readonly dataBytes: number;
}

export const DEFAULT_LOCAL_SPAN_BYTES = 256 * 1024;
/** Files up to this size are read once into memory; larger ones are streamed twice (hash, copy). */
const BUFFERED_FILE_BYTES = 8 * 1024 * 1024;

/** Archives a directory tree into a local-mode .clip file. */
export async function createArchive(options: CreateArchiveOptions): Promise<CreateArchiveResult> {
  const { inputPath, spanBytes } = await checkCreateInput(options);
  const outputPath = resolve(options.outputPath);
  const xattrs = await readXattrsFor(inputPath, options);
  // Sections: data, meta, toc, data span digests.
  const archive = await ArchiveFileWriter.create(outputPath, 4);
  const data = new DataWriter((chunk) => archive.writeData(chunk), spanBytes);
  try {
    const { toc, entries } = await archiveTree(inputPath, xattrs, data, options.onProgress);
    const stored = data.finish();
    const { bytes } = await archive.finish({
      meta: { writer: WRITER_NAME, storage: { mode: 'local', spanBytes, dataLength: stored.length } },
      toc,
      sections: [{ kind: SectionKind.DataSpans, compress: false, bytes: stored.spanDigests }],
    }, stored.sha256);
    return { outputPath, entries, archiveBytes: bytes, dataBytes: stored.length };
  } catch (err) {
    await archive.abort();
    if (err instanceof ClipError) throw err;
    throw new ClipError('IO', `cannot archive ${inputPath}: ${(err as Error).message}`, { cause: err });
  }
}

/** Checks the input directory and span size shared by every archive writer of directory trees. */
export async function checkCreateInput(options: { inputPath: string; spanBytes?: number }): Promise<{ inputPath: string; spanBytes: number }> {
  const inputPath = resolve(options.inputPath);
  const spanBytes = options.spanBytes ?? DEFAULT_LOCAL_SPAN_BYTES;
  if (!Number.isSafeInteger(spanBytes) || spanBytes < 4096) {
    throw new ClipError('INVALID_ARGUMENT', `spanBytes must be an integer of at least 4096, got ${spanBytes}`);
  }
  const inputStats = await stat(inputPath).catch((err: NodeJS.ErrnoException) => {
    throw new ClipError(err.code === 'ENOENT' ? 'NOT_FOUND' : 'IO', `cannot read ${inputPath}: ${err.message}`);
  });
  if (!inputStats.isDirectory()) throw new ClipError('INVALID_ARGUMENT', `${inputPath} is not a directory`);
  return { inputPath, spanBytes };
}

/** The tree's extended attributes by path (none when `xattrs` is false). */
export function readXattrsFor(inputPath: string, options: { xattrs?: boolean }): Promise<Map<string, Xattr[]>> {
  return options.xattrs === false ? Promise.resolve(new Map<string, Xattr[]>()) : readTreeXattrs(inputPath);
}

/**
 * Walks a tree in name order, appending each distinct file content to `data` (wherever it goes:
 * the archive file, an S3 upload) and recording every path: the table of contents.
 */
export async function archiveTree(
  inputPath: string,
  xattrs: ReadonlyMap<string, Xattr[]>,
  data: DataWriter,
  onProgress?: (progress: CreateProgress) => void,
): Promise<{ toc: Toc; entries: number; bytesRead: number }> {
  const builder = new TocBuilder();
  const firstPathOfInode = new Map<string, string>();
  let entries = 0;
  let bytesRead = 0;
  for await (const entry of walkTree(inputPath)) {
    entries++;
    const spec = await specFor(entry, xattrs.get(entry.path) ?? [], data);
    if (entry.type === 'file') bytesRead += spec.size;
    if (entry.path === '') {
      builder.setRoot(spec);
    } else if (entry.type !== 'directory' && entry.stats.nlink > 1n) {
      const key = `${entry.stats.dev}:${entry.stats.ino}`;
      const first = firstPathOfInode.get(key);
      if (first === undefined) {
        firstPathOfInode.set(key, entry.path);
        builder.add(entry.path, spec);
      } else {
        builder.addHardLink(entry.path, first);
      }
    } else {
      builder.add(entry.path, spec);
    }
    onProgress?.({ entries, bytesRead });
  }
  return { toc: builder.build(), entries, bytesRead };
}

async function specFor(entry: WalkedEntry, xattrs: Xattr[], data: DataWriter): Promise<InodeSpec> {
  const { stats } = entry;
  const base = {
    type: entry.type,
    mode: Number(stats.mode & 0o7777n),
    uid: Number(stats.uid),
    gid: Number(stats.gid),
    mtimeNs: stats.mtimeNs,
    xattrs,
  };
  switch (entry.type) {
    case 'file': {
      const { digest, offset, size } = await storeFile(entry.absolutePath, Number(stats.size), data);
      return { ...base, size, sha256: digest, location: { layer: 0, offset } };
    }
    case 'symlink':
      return { ...base, size: Buffer.byteLength(entry.linkTarget ?? ''), linkTarget: entry.linkTarget };
    case 'char':
    case 'block': {
      const { major, minor } = splitDeviceNumber(stats.rdev);
      return { ...base, size: 0, rdevMajor: major, rdevMinor: minor };
    }
    default:
      return { ...base, size: 0 };
  }
}

async function storeFile(path: string, expectedSize: number, data: DataWriter): Promise<{ digest: Buffer; offset: number; size: number }> {
  if (expectedSize <= BUFFERED_FILE_BYTES) {
    const content = await readFile(path);
    const digest = createHash('sha256').update(content).digest();
    const offset = data.offsetOf(digest) ?? (await data.append(digest, [content]));
    return { digest, offset, size: content.length };
  }
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  const digest = hash.digest();
  let offset = data.offsetOf(digest);
  if (offset === undefined) {
    offset = await data.append(digest, createReadStream(path, { highWaterMark: 1024 * 1024, end: size - 1 }) as AsyncIterable<Buffer>);
  }
  return { digest, offset, size };
}
