import type { LayerEntryType } from './layer-entry.js';
import { TYPE } from './tar-header.js';
import { TarSyntaxError } from './tar-syntax-error.js';

/** What an entry header stands for; dumpdirs are directories whose data is skipped, 'skip' is dropped. */
export type EntryKind = LayerEntryType | 'dumpdir' | 'skip';

export function entryKind(typeflag: number, rawPath: string): EntryKind {
  switch (typeflag) {
    case TYPE.OLD_FILE:
      // Pre-POSIX tars mark directories only by the trailing slash.
      return rawPath.endsWith('/') ? 'directory' : 'file';
    case TYPE.FILE:
    case TYPE.CONTIGUOUS:
      return 'file';
    case TYPE.HARDLINK:
      return 'hardlink';
    case TYPE.SYMLINK:
      return 'symlink';
    case TYPE.CHAR:
      return 'char';
    case TYPE.BLOCK:
      return 'block';
    case TYPE.DIRECTORY:
      return 'directory';
    case TYPE.FIFO:
      return 'fifo';
    case TYPE.GNU_DUMPDIR:
      return 'dumpdir';
    case TYPE.GNU_VOLUME:
      return 'skip';
    default:
      // Sparse ('S'), multi-volume ('M') and vendor types can't be served as one byte range;
      // containerd refuses unknown types as well, so an image that unpacks there parses here.
      throw new TarSyntaxError(`unsupported entry type ${JSON.stringify(String.fromCharCode(typeflag))} for ${JSON.stringify(rawPath)}`);
  }
}
