import { ArchiveFormatError } from '../errors.js';
import { SectionKind } from '../archive/format.js';
import type { ArchiveIndex } from '../archive/archive-index.js';
import type { LocalStorage } from '../archive/meta.js';
import type { Inode } from '../archive/model.js';
import type { SpanRef } from '../cache/span-cache.js';
import type { SpanLayout } from '../cache/spanned-blob.js';
import { VerifiedBlob } from './blob-spans.js';
import { clampRead, type ContentContext, type ContentReader } from './content-reader.js';

/** Local mode: file bytes live in the archive's own data section, verified span by span. */
export class LocalContent implements ContentReader {
  private constructor(private readonly blob: VerifiedBlob) {}

  static async open(index: ArchiveIndex, storage: LocalStorage, context?: ContentContext): Promise<LocalContent> {
    const data = index.section(SectionKind.Data);
    const dataOffset = data?.offset ?? 0;
    const dataLength = data?.length ?? 0;
    if (dataLength !== storage.dataLength) {
      throw new ArchiveFormatError('CORRUPT', `${index.source.description}: data section is ${dataLength} bytes, metadata says ${storage.dataLength}`);
    }
    const digests = dataLength === 0 ? Buffer.alloc(0) : await index.readSection(SectionKind.DataSpans);
    const blob = new VerifiedBlob(
      (offset, length) => index.source.read(dataOffset + offset, length),
      dataLength,
      storage.spanBytes,
      digests,
      `${index.source.description} data`,
      context ? { cache: context.cache, readAheadSpans: context.readAheadSpans, origin: 'local', image: index.source.description } : {},
    );
    return new LocalContent(blob);
  }

  async read(inode: Inode, offset: number, length: number): Promise<Buffer> {
    const { start, end } = clampRead(inode, offset, length);
    if (end === start) return Buffer.alloc(0);
    const base = inode.location?.offset;
    if (base === undefined) throw new ArchiveFormatError('CORRUPT', 'a regular file has no data location');
    return this.blob.read(base + start, end - start, base + inode.size);
  }

  noteRead(inode: Inode, offset: number, length: number): void {
    const { start, end } = clampRead(inode, offset, length);
    const base = inode.location?.offset;
    if (base !== undefined) this.blob.noteRead(base + start, end - start, base + inode.size);
  }

  spans(inode?: Inode): SpanRef[] {
    if (inode === undefined) return this.blob.refs();
    const base = inode.location?.offset;
    return base === undefined || inode.size === 0 ? [] : this.blob.refs(base, inode.size);
  }

  layouts(): SpanLayout[] {
    return [this.blob.layout];
  }

  async close(): Promise<void> {}
}
