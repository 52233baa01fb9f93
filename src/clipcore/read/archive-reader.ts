import { ArchiveIndex } from '../archive/archive-index.js';
import type { DirEntry, Inode, InodeIndex } from '../archive/model.js';
import { ClipError } from '../errors.js';
import type { ByteSource } from '../source/byte-source.js';
import { FileByteSource } from '../source/file-source.js';
import type { ContentReader } from './content-reader.js';
import { LocalContent } from './local-content.js';
import { asImageMeta } from '../image/image-meta.js';
import { OciContent } from '../image/oci-content.js';
import { RegistryClient, type RegistryClientOptions } from '../registry/index.js';

export interface OpenArchiveOptions {
  /** oci mode: how to reach the image's registry (credentials, CA certificates, insecure hosts). */
  readonly registry?: RegistryClientOptions;
  /** Replaces the built-in content reader of non-local modes (tests, custom origins). */
  readonly contentReaderFactory?: (index: ArchiveIndex) => Promise<ContentReader>;
}

/**
 * Reads an archive without FUSE: stat, list, readlink, xattrs and byte ranges of files. The FUSE
 * filesystem is a thin layer over this class.
 */
export class ArchiveReader {
  private constructor(
    readonly index: ArchiveIndex,
    private readonly content: ContentReader,
  ) {}

  static async open(source: ByteSource | string, options: OpenArchiveOptions = {}): Promise<ArchiveReader> {
    const byteSource = typeof source === 'string' ? await FileByteSource.open(source) : source;
    try {
      const index = await ArchiveIndex.open(byteSource);
      const storage = index.meta.storage;
      let content: ContentReader;
      if (storage.mode === 'local') content = await LocalContent.open(index, storage);
      else if (options.contentReaderFactory) content = await options.contentReaderFactory(index);
      else if (storage.mode === 'oci') content = await openRegistryContent(index, options.registry ?? {});
      else throw new ClipError('INVALID_ARGUMENT', `${byteSource.description}: reading ${storage.mode} archives needs a content reader for that mode`);
      return new ArchiveReader(index, content);
    } catch (err) {
      await byteSource.close();
      throw err;
    }
  }

  stat(path: string): Inode & { ino: number } {
    const index = this.index.resolve(path);
    return { ...this.index.inode(index), ino: index + 1 };
  }

  list(path: string): readonly DirEntry[] {
    return this.index.entries(this.index.resolve(path));
  }

  readlink(path: string): string {
    const inode = this.stat(path);
    if (inode.type !== 'symlink') throw new ClipError('INVALID_ARGUMENT', `${path} is not a symbolic link`);
    return inode.linkTarget ?? '';
  }

  /** Reads up to `length` bytes at `offset` of the file with inode index `inode`. */
  readInode(inode: InodeIndex, offset: number, length: number): Promise<Buffer> {
    const attributes = this.index.inode(inode);
    if (attributes.type === 'directory') throw new ClipError('IS_A_DIRECTORY', `inode ${inode} is a directory`);
    if (attributes.type !== 'file') throw new ClipError('INVALID_ARGUMENT', `inode ${inode} is a ${attributes.type}, not a regular file`);
    return this.content.read(attributes, offset, length);
  }

  read(path: string, offset: number, length: number): Promise<Buffer> {
    return this.readInode(this.index.resolve(path), offset, length);
  }

  readFile(path: string): Promise<Buffer> {
    const inode = this.index.resolve(path);
    return this.readInode(inode, 0, this.index.inode(inode).size);
  }

  async close(): Promise<void> {
    await this.content.close();
    await this.index.source.close();
  }
}

/** oci mode: file bytes are fetched from the image's layer blobs with HTTP range requests. */
async function openRegistryContent(index: ArchiveIndex, registry: RegistryClientOptions): Promise<ContentReader> {
  const image = asImageMeta(index.meta.image);
  const repository = { registry: image.registry, repository: image.repository };
  const client = new RegistryClient(registry);
  try {
    const content = await OciContent.open(index, (digest, start, end) => client.fetchBlobRange(repository, digest, start, end));
    return {
      read: (inode, offset, length) => content.read(inode, offset, length),
      close: async () => client.close(),
    };
  } catch (err) {
    client.close();
    throw err;
  }
}
