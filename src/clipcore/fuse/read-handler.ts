import { constants } from 'node:os';
import type { InodeIndex } from '../archive/model.js';
import { isClipError } from '../errors.js';
import type { ArchiveReader } from '../read/archive-reader.js';
import type { ClipFuseAddon, FuseSession, ReadRequest } from './native-fuse.js';

const { EIO, ENOENT, ENOTDIR, EISDIR } = constants.errno;

export type ServerErrorListener = (error: Error, operation: string, path: string) => void;

/**
 * The JavaScript half of READ: the native server hands over each read it cannot answer, this
 * fetches, verifies and inflates it through the archive's read path (which shares one fetch
 * between concurrent reads of a span) and answers. A read that takes longer than `timeoutMs` is
 * answered EIO (the late result is dropped), as an unanswered FUSE request would hang its reader.
 */
export function readHandler(addon: ClipFuseAddon, session: () => FuseSession, reader: ArchiveReader, timeoutMs: number, onError: ServerErrorListener): ReadRequest {
  let pathOf: Map<InodeIndex, string> | undefined;
  const describe = (inode: InodeIndex): string => {
    // Only for error reports: one walk of the tree, on the first error.
    if (!pathOf) {
      pathOf = new Map();
      for (const { path, inode: each } of reader.index.walk()) if (!pathOf.has(each)) pathOf.set(each, `/${path}`);
    }
    return pathOf.get(inode) ?? `inode ${inode + 1}`;
  };
  const fail = (id: number, inode: InodeIndex, err: unknown): void => {
    let errno = EIO;
    if (isClipError(err) && err.code === 'NOT_FOUND') errno = ENOENT;
    else if (isClipError(err) && err.code === 'NOT_A_DIRECTORY') errno = ENOTDIR;
    else if (isClipError(err) && err.code === 'IS_A_DIRECTORY') errno = EISDIR;
    else onError(err instanceof Error ? err : new Error(String(err)), 'read', describe(inode));
    addon.replyError(session(), id, errno);
  };
  return (id, inode, offset, length) => {
    if (id === 0) {
      reader.noteFirstRead(inode, offset / 1e6);
      return;
    }
    const timer = setTimeout(() => fail(id, inode, new Error(`read not answered within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    let pending: Promise<Buffer>;
    try {
      pending = reader.readInode(inode, offset, length);
    } catch (err) {
      clearTimeout(timer);
      fail(id, inode, err);
      return;
    }
    pending.then(
      (data) => {
        clearTimeout(timer);
        addon.reply(session(), id, data);
      },
      (err: unknown) => {
        clearTimeout(timer);
        fail(id, inode, err);
      },
    );
  };
}
