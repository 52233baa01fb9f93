/**
 * Layer tarballs for tests, written with tar-stream: files (bytes or generated, for big files),
 * directories, symlinks, hard links, fifos, devices, whiteouts and opaque markers, with ownership,
 * modes, times, PAX records and xattrs (`SCHILY.xattr.*`). Long names get PAX headers automatically.
 * A layer is a recipe: open() produces a fresh uncompressed tar stream each time it is called.
 */
import { once } from 'node:events';
import { Readable } from 'node:stream';
import tar from 'tar-stream';

export type Compression = 'gzip' | 'zstd' | 'none';

/** Content produced on demand, so a 300 MiB file never sits in memory. */
export interface GeneratedContent {
  size: number;
  chunks: () => Iterable<Buffer> | AsyncIterable<Buffer>;
}

export type FileContent = Buffer | string | GeneratedContent;

export interface EntryMeta {
  path: string;
  mode?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  mtime?: Date;
  /** Extended attributes, stored as PAX `SCHILY.xattr.<name>` records. */
  xattrs?: Record<string, string>;
  /** Extra raw PAX records. */
  pax?: Record<string, string>;
}

export type LayerEntry =
  | (EntryMeta & { type: 'file'; content: FileContent })
  | (EntryMeta & { type: 'dir' })
  | (EntryMeta & { type: 'symlink'; target: string })
  | (EntryMeta & { type: 'hardlink'; target: string })
  | (EntryMeta & { type: 'fifo' })
  | (EntryMeta & { type: 'char-device' | 'block-device'; major: number; minor: number })
  /** Deletes `path` from lower layers: writes `<dir>/.wh.<name>`. */
  | { type: 'whiteout'; path: string }
  /** Hides everything lower layers had in directory `path`: writes `<path>/.wh..wh..opq`. */
  | { type: 'opaque'; path: string };

export interface TarLayer {
  kind: 'tar';
  compression: Compression;
  entries: readonly LayerEntry[];
  /** A fresh uncompressed tar stream. */
  open(): Readable;
}

/** Fixed default mtime so layers (and digests) are reproducible. */
export const DEFAULT_MTIME = new Date('2024-01-01T00:00:00Z');

export function buildTarLayer(entries: readonly LayerEntry[], options: { compression?: Compression } = {}): TarLayer {
  return { kind: 'tar', compression: options.compression ?? 'gzip', entries, open: () => packEntries(entries) };
}

/** Deterministic pseudo-random bytes (xorshift), generated in 1 MiB chunks. */
export function patternContent(size: number, seed = 1): GeneratedContent {
  return {
    size,
    *chunks() {
      let state = (seed * 2654435761) >>> 0 || 1;
      for (let offset = 0; offset < size; offset += 1 << 20) {
        const chunk = Buffer.allocUnsafe(Math.min(1 << 20, size - offset));
        for (let i = 0; i + 4 <= chunk.length; i += 4) {
          state ^= state << 13;
          state ^= state >>> 17;
          state ^= state << 5;
          chunk.writeUInt32LE(state >>> 0, i);
        }
        for (let i = chunk.length - (chunk.length % 4); i < chunk.length; i++) chunk[i] = i & 0xff;
        yield chunk;
      }
    },
  };
}

/** The bytes of GeneratedContent or FileContent, for assertions on small files. */
export async function contentBytes(content: FileContent): Promise<Buffer> {
  if (typeof content === 'string') return Buffer.from(content);
  if (Buffer.isBuffer(content)) return content;
  const parts: Buffer[] = [];
  for await (const chunk of content.chunks()) parts.push(chunk);
  return Buffer.concat(parts);
}

type PaxHeaders = Partial<tar.Header> & { name: string; pax?: Record<string, string> };

function splitPath(path: string): { dir: string; base: string } {
  const trimmed = path.replace(/\/+$/, '');
  const slash = trimmed.lastIndexOf('/');
  return slash === -1 ? { dir: '', base: trimmed } : { dir: trimmed.slice(0, slash + 1), base: trimmed.slice(slash + 1) };
}

function headerFor(entry: LayerEntry): PaxHeaders {
  if (entry.type === 'whiteout') {
    const { dir, base } = splitPath(entry.path);
    return { name: `${dir}.wh.${base}`, type: 'file', size: 0, mode: 0o644, mtime: DEFAULT_MTIME };
  }
  if (entry.type === 'opaque') {
    return { name: `${entry.path.replace(/\/+$/, '')}/.wh..wh..opq`, type: 'file', size: 0, mode: 0o644, mtime: DEFAULT_MTIME };
  }
  const header: PaxHeaders = {
    name: entry.path,
    mode: entry.mode ?? (entry.type === 'dir' ? 0o755 : entry.type === 'symlink' ? 0o777 : 0o644),
    uid: entry.uid ?? 0,
    gid: entry.gid ?? 0,
    mtime: entry.mtime ?? DEFAULT_MTIME,
  };
  if (entry.uname !== undefined) header.uname = entry.uname;
  if (entry.gname !== undefined) header.gname = entry.gname;
  const pax: Record<string, string> = { ...entry.pax };
  for (const [name, value] of Object.entries(entry.xattrs ?? {})) pax[`SCHILY.xattr.${name}`] = value;
  if (Object.keys(pax).length > 0) header.pax = pax;
  switch (entry.type) {
    case 'file':
      return { ...header, type: 'file', size: contentSize(entry.content) };
    case 'dir':
      return { ...header, type: 'directory' };
    case 'symlink':
      return { ...header, type: 'symlink', linkname: entry.target };
    case 'hardlink':
      return { ...header, type: 'link', linkname: entry.target };
    case 'fifo':
      return { ...header, type: 'fifo' };
    default:
      return { ...header, type: entry.type === 'char-device' ? 'character-device' : 'block-device', devmajor: entry.major, devminor: entry.minor };
  }
}

function contentSize(content: FileContent): number {
  if (typeof content === 'string') return Buffer.byteLength(content);
  return Buffer.isBuffer(content) ? content.length : content.size;
}

function packEntries(entries: readonly LayerEntry[]): Readable {
  const pack = tar.pack();
  const write = async (): Promise<void> => {
    for (const entry of entries) {
      const header = headerFor(entry);
      let sink!: ReturnType<typeof pack.entry>;
      // The executor runs synchronously, so `sink` is set before it is used below.
      const finished = new Promise<void>((resolve, reject) => {
        sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
      });
      if (entry.type === 'file' && !Buffer.isBuffer(entry.content) && typeof entry.content !== 'string') {
        for await (const chunk of entry.content.chunks()) {
          if (!sink.write(chunk)) await once(sink, 'drain');
        }
      } else if (entry.type === 'file') {
        sink.write(typeof entry.content === 'string' ? Buffer.from(entry.content) : entry.content);
      }
      sink.end(undefined);
      await finished;
    }
    pack.finalize();
  };
  write().catch((err: unknown) => pack.destroy(err instanceof Error ? err : new Error(String(err))));
  return Readable.from(pack);
}
