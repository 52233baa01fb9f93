import Fuse, { type FuseOperations, type FuseStat } from 'fuse-native';
import type { EntryType, Inode, InodeIndex } from '../archive/model.js';
import { isClipError } from '../errors.js';
import type { ArchiveReader } from '../read/archive-reader.js';

const TYPE_BITS: Record<EntryType, number> = {
  file: 0o100000,
  directory: 0o040000,
  symlink: 0o120000,
  char: 0o020000,
  block: 0o060000,
  fifo: 0o010000,
  socket: 0o140000,
};

const O_ACCMODE = 3;
const O_RDONLY = 0;
const W_OK = 2;

/** Remembers resolved paths: the kernel asks for the same few paths over and over. */
const PATH_CACHE_LIMIT = 100_000;

/**
 * The read-only FUSE operations over an archive. Every write operation answers EROFS. Errors
 * other than "no such path" are reported through `onError` and answered with EIO.
 */
export function archiveOperations(reader: ArchiveReader, onError: (err: Error, operation: string, path: string) => void): FuseOperations {
  const index = reader.index;
  const paths = new Map<string, InodeIndex>();
  const totalBlocks = Math.ceil(index.toc.inodes.reduce((sum, inode) => sum + (inode.type === 'file' ? inode.size : 0), 0) / 4096);

  const resolve = (path: string): InodeIndex => {
    let inode = paths.get(path);
    if (inode === undefined) {
      inode = index.resolve(path);
      if (paths.size >= PATH_CACHE_LIMIT) paths.clear();
      paths.set(path, inode);
    }
    return inode;
  };

  const fail = (operation: string, path: string, err: unknown): number => {
    if (isClipError(err)) {
      if (err.code === 'NOT_FOUND') return Fuse.ENOENT;
      if (err.code === 'NOT_A_DIRECTORY') return Fuse.ENOTDIR;
      if (err.code === 'IS_A_DIRECTORY') return Fuse.EISDIR;
    }
    onError(err instanceof Error ? err : new Error(String(err)), operation, path);
    return Fuse.EIO;
  };

  const readOnly = (_path: string, ...rest: unknown[]): void => {
    const cb = rest[rest.length - 1] as (code: number) => void;
    cb(Fuse.EROFS);
  };

  return {
    getattr(path, cb) {
      try {
        const inode = resolve(path);
        cb(0, toStat(index.inode(inode), inode + 1));
      } catch (err) {
        cb(fail('getattr', path, err));
      }
    },
    readdir(path, cb) {
      try {
        cb(0, ['.', '..', ...index.entries(resolve(path)).map((entry) => entry.name)]);
      } catch (err) {
        cb(fail('readdir', path, err));
      }
    },
    open(path, flags, cb) {
      try {
        const inode = resolve(path);
        if ((flags & O_ACCMODE) !== O_RDONLY) return cb(Fuse.EROFS);
        // The file handle is the inode index, so reads skip the path lookup.
        cb(0, inode);
      } catch (err) {
        cb(fail('open', path, err));
      }
    },
    release(_path, _fd, cb) {
      cb(0);
    },
    read(path, fd, buffer, length, position, cb) {
      reader.readInode(fd, position, length).then(
        (data) => {
          data.copy(buffer);
          cb(data.length);
        },
        (err: unknown) => cb(fail('read', path, err)),
      );
    },
    readlink(path, cb) {
      try {
        const inode = index.inode(resolve(path));
        if (inode.type !== 'symlink') return cb(Fuse.EINVAL);
        cb(0, inode.linkTarget ?? '');
      } catch (err) {
        cb(fail('readlink', path, err));
      }
    },
    statfs(_path, cb) {
      cb(0, {
        bsize: 4096,
        frsize: 4096,
        blocks: totalBlocks,
        bfree: 0,
        bavail: 0,
        files: index.toc.inodes.length,
        ffree: 0,
        favail: 0,
        fsid: 0,
        flag: 1, // ST_RDONLY
        namemax: 255,
      });
    },
    getxattr(path, name, _position, cb) {
      try {
        const xattr = index.inode(resolve(path)).xattrs.find((candidate) => candidate.name === name);
        cb(0, xattr ? xattr.value : null);
      } catch (err) {
        cb(fail('getxattr', path, err));
      }
    },
    listxattr(path, cb) {
      try {
        cb(0, index.inode(resolve(path)).xattrs.map((xattr) => xattr.name));
      } catch (err) {
        cb(fail('listxattr', path, err));
      }
    },
    access(path, mode, cb) {
      try {
        resolve(path);
        cb(mode & W_OK ? Fuse.EROFS : 0);
      } catch (err) {
        cb(fail('access', path, err));
      }
    },
    write: (path, _fd, _buffer, _length, _position, cb) => readOnly(path, cb),
    create: (path, _mode, cb) => readOnly(path, cb),
    truncate: readOnly,
    ftruncate: readOnly,
    chown: readOnly,
    chmod: readOnly,
    mknod: readOnly,
    setxattr: readOnly,
    removexattr: readOnly,
    utimens: readOnly,
    unlink: readOnly,
    rename: readOnly,
    link: readOnly,
    symlink: readOnly,
    mkdir: readOnly,
    rmdir: readOnly,
  };
}

function toStat(inode: Inode, ino: number): FuseStat {
  // fuse-native carries times as milliseconds, so FUSE shows mtime to the millisecond.
  const mtime = Number(inode.mtimeNs / 1_000_000n);
  return {
    mode: TYPE_BITS[inode.type] | inode.mode,
    uid: inode.uid,
    gid: inode.gid,
    size: inode.size,
    nlink: inode.nlink,
    ino,
    rdev: encodeDevice(inode.rdevMajor ?? 0, inode.rdevMinor ?? 0),
    blksize: 4096,
    blocks: Math.ceil(inode.size / 512),
    atime: mtime,
    mtime,
    ctime: mtime,
  };
}

/** The 32-bit Linux dev_t encoding that fuse-native passes through. */
function encodeDevice(major: number, minor: number): number {
  return (((major & 0xfff) << 8) | (minor & 0xff) | ((minor & 0xfff00) << 12)) >>> 0;
}
