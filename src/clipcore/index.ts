// The public API of clipcore, named after the original Go library's functions.
export { createArchive, type CreateArchiveOptions, type CreateArchiveResult, type CreateProgress } from './create/create-archive.js';
export { CLIP_FUSE_NAME, mountArchive, openFuseMount, type HeldConnection, type MountArchiveOptions, type MountHandle, type MountServerError } from './fuse/mount.js';
export { closeAll, FdConnection, FdListener, type FdMessage } from './fuse/fd-socket.js';
export { ArchiveReader, type OpenArchiveOptions } from './read/archive-reader.js';
export { ArchiveIndex } from './archive/archive-index.js';
export { SectionKind, FORMAT_VERSION } from './archive/format.js';
export type { ArchiveMeta, Storage, LocalStorage, S3Storage, OciStorage } from './archive/meta.js';
export type { DirEntry, EntryType, Inode, InodeIndex, StorageMode, Toc, Xattr } from './archive/model.js';
export type { ByteSource } from './source/byte-source.js';
export { FileByteSource } from './source/file-source.js';
export { BufferByteSource } from './source/buffer-source.js';
export { ArchiveFormatError, ClipError, type ClipErrorCode, describeError, isClipError } from './errors.js';
export { CLIP_VERSION } from './version.js';
export {
  createFromOCIImage,
  type CreateFromOCIImageOptions,
  type CreateFromOCIImageResult,
  type IndexProgress,
} from './image/create-from-oci.js';
export { inflateBackend, type InflateBackend } from './compression/index.js';
export { releaseFreeMemory } from './free-memory.js';
export { asImageMeta, type ImageMeta, type LayerMeta, type ImageConfigMeta } from './image/image-meta.js';
export * from './registry/index.js';
export * from './s3/index.js';
export {
  DiskCache,
  DEFAULT_DISK_CACHE_BYTES,
  SpanCache,
  type ContentCache,
  type DiskCacheOptions,
  type PrefetchOptions,
  type PrefetchResult,
  type SpanRef,
} from './cache/index.js';
export { ClipMetrics, METRICS, jsonLogger, silentLogger, type CacheTier, type ClipLogger, type LogLevel, type OriginKind } from './metrics/index.js';
export { readMountTable, forceUnmount, type MountEntry } from './fuse/mount-table.js';
export * from './index-store/index.js';
