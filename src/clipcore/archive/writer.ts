import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
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
  /** Further sections (digests, layer indexes), placed after the TOC in the given order. */
  readonly sections?: readonly SectionInput[];
  /** Local mode: a file whose bytes become the data section, stored last and uncompressed. */
  readonly dataFile?: { readonly path: string; readonly length: number; readonly sha256: Buffer };
}

/**
 * Writes an archive atomically: to a temporary file beside `outputPath`, renamed into place only
 * when complete, so a failure never leaves a partial archive at the output path.
 * The metadata and TOC come first, so that one read of the archive's head gets what a mount needs.
 */
export async function writeArchive(outputPath: string, contents: ArchiveContents): Promise<{ bytes: number }> {
  const stored: { kind: SectionKind; compression: SectionCompression; bytes: Buffer; rawLength: number }[] = [];
  const addSection = (input: SectionInput): void => {
    const bytes = input.compress ? compress(input.bytes) : input.bytes;
    stored.push({
      kind: input.kind,
      compression: input.compress ? SectionCompression.Brotli : SectionCompression.None,
      bytes,
      rawLength: input.bytes.length,
    });
  };
  addSection({ kind: SectionKind.Meta, compress: true, bytes: encodeMeta(contents.meta) });
  addSection({ kind: SectionKind.Toc, compress: true, bytes: encodeToc(contents.toc) });
  for (const section of contents.sections ?? []) addSection(section);

  const sectionCount = stored.length + (contents.dataFile ? 1 : 0);
  let offset = headerLength(sectionCount);
  const entries: SectionEntry[] = stored.map((section) => {
    const entry = {
      kind: section.kind,
      compression: section.compression,
      offset,
      length: section.bytes.length,
      rawLength: section.rawLength,
      sha256: sha256(section.bytes),
    };
    offset += section.bytes.length;
    return entry;
  });
  if (contents.dataFile) {
    const { length, sha256: digest } = contents.dataFile;
    entries.push({ kind: SectionKind.Data, compression: SectionCompression.None, offset, length, rawLength: length, sha256: digest });
    offset += length;
  }
  const header = encodeHeader({ version: FORMAT_VERSION, archiveLength: offset, sections: entries });

  const temporary = `${outputPath}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const file = await open(temporary, 'wx');
    try {
      await file.write(header);
      for (const section of stored) await file.write(section.bytes);
      if (contents.dataFile) {
        for await (const chunk of createReadStream(contents.dataFile.path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
          await file.write(chunk);
        }
      }
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, outputPath);
  } catch (err) {
    await unlink(temporary).catch(() => undefined);
    throw new ClipError('IO', `cannot write ${outputPath}: ${(err as Error).message}`, { cause: err });
  }
  return { bytes: offset };
}

function compress(bytes: Buffer): Buffer {
  return brotliCompressSync(bytes, {
    params: {
      [zlibConstants.BROTLI_PARAM_QUALITY]: 9,
      [zlibConstants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
    },
  });
}
