import { randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { brotliCompressSync, constants as zlibConstants } from 'node:zlib';
import { ClipError } from '../errors.js';
import {
  encodeHeader,
  FORMAT_VERSION,
  headerLength,
  SectionCompression,
  SectionKind,
  sha256,
  type SectionEntry,
} from './format.js';
import { encodeMeta, type ArchiveMeta } from './meta.js';
import type { Toc } from './model.js';
import { encodeToc } from './toc-codec.js';

export interface SectionInput {
  readonly kind: SectionKind;
  /** Compress small structured sections; leave digests and file data as they are. */
  readonly compress: boolean;
  readonly bytes: Buffer;
}

export interface ArchiveContents {
  readonly meta: ArchiveMeta;
  readonly toc: Toc;
  /** Further sections (digests, layer indexes), stored after the TOC in the given order. */
  readonly sections?: readonly SectionInput[];
}

/**
 * Writes an archive to a temporary file beside `outputPath`, renamed into place only when
 * complete, so a failure never leaves a partial archive at the output path.
 *
 * Layout: header, then the data section (local mode) streamed straight into place, then the
 * metadata sections, contiguous, so a reader gets the header in one read and everything a
 * mount needs in a second. Without data the metadata directly follows the header: one read.
 */
export class ArchiveFileWriter {
  private dataLength = 0;
  private closed = false;

  private constructor(
    private readonly file: FileHandle,
    private readonly temporaryPath: string,
    readonly outputPath: string,
    private readonly sectionCount: number,
  ) {}

  /** `sectionCount` counts every section the archive will have, the data section included. */
  static async create(outputPath: string, sectionCount: number): Promise<ArchiveFileWriter> {
    const temporaryPath = `${outputPath}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      return new ArchiveFileWriter(await open(temporaryPath, 'wx'), temporaryPath, outputPath, sectionCount);
    } catch (err) {
      throw new ClipError('IO', `cannot write ${outputPath}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Where the data section starts in the file. */
  get dataOffset(): number {
    return headerLength(this.sectionCount);
  }

  /** Appends bytes to the data section. */
  async writeData(chunk: Buffer): Promise<void> {
    await this.file.write(chunk, 0, chunk.length, this.dataOffset + this.dataLength);
    this.dataLength += chunk.length;
  }

  async finish(contents: ArchiveContents, dataSha256?: Buffer): Promise<{ bytes: number }> {
    try {
      const inputs: SectionInput[] = [
        { kind: SectionKind.Meta, compress: true, bytes: encodeMeta(contents.meta) },
        { kind: SectionKind.Toc, compress: true, bytes: encodeToc(contents.toc) },
        ...(contents.sections ?? []),
      ];
      const entries: SectionEntry[] = [];
      let offset = this.dataOffset;
      if (dataSha256) {
        entries.push({ kind: SectionKind.Data, compression: SectionCompression.None, offset, length: this.dataLength, rawLength: this.dataLength, sha256: dataSha256 });
        offset += this.dataLength;
      }
      for (const input of inputs) {
        const bytes = input.compress ? compress(input.bytes) : input.bytes;
        await this.file.write(bytes, 0, bytes.length, offset);
        entries.push({
          kind: input.kind,
          compression: input.compress ? SectionCompression.Brotli : SectionCompression.None,
          offset,
          length: bytes.length,
          rawLength: input.bytes.length,
          sha256: sha256(bytes),
        });
        offset += bytes.length;
      }
      if (entries.length !== this.sectionCount) {
        throw new Error(`internal: ${entries.length} sections written, ${this.sectionCount} announced`);
      }
      // The header lists sections in file order; readers look them up by kind.
      entries.sort((a, b) => a.offset - b.offset);
      await this.file.write(encodeHeader({ version: FORMAT_VERSION, archiveLength: offset, sections: entries }), 0, undefined, 0);
      await this.file.sync();
      await this.file.close();
      this.closed = true;
      await rename(this.temporaryPath, this.outputPath);
      return { bytes: offset };
    } catch (err) {
      await this.abort();
      throw new ClipError('IO', `cannot write ${this.outputPath}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Discards the temporary file. Safe to call more than once. */
  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.file.close().catch(() => undefined);
    }
    await unlink(this.temporaryPath).catch(() => undefined);
  }
}

/** Writes an archive without a data section (oci and s3 modes, where the bytes live elsewhere). */
export async function writeArchive(outputPath: string, contents: ArchiveContents): Promise<{ bytes: number }> {
  const writer = await ArchiveFileWriter.create(outputPath, 2 + (contents.sections?.length ?? 0));
  return writer.finish(contents);
}

function compress(bytes: Buffer): Buffer {
  return brotliCompressSync(bytes, {
    params: {
      [zlibConstants.BROTLI_PARAM_QUALITY]: 3,
      [zlibConstants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
    },
  });
}
