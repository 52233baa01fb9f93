/*
 * The FUSE table: an archive's table of contents in the compact, immutable form the native FUSE
 * front end serves (built by src/clipcore/fuse/fuse-table.ts). Little-endian, every field a fixed
 * width, so the server indexes it without parsing:
 *
 *   header   magic "CLPF", version, inode count, entry count, xattr count, blob bytes, total blocks
 *   inodes   80 bytes each, index = archive inode index (FUSE inode number = index + 1)
 *   entries  12 bytes each; a directory's entries are one run, sorted by name bytes
 *   xattrs   16 bytes each; an inode's xattrs are one run
 *   blob     names, symlink targets, xattr names and values
 *
 * clip_table_check() validates every offset, length and index once; the server then trusts them.
 */
#ifndef CLIP_FUSE_TABLE_H
#define CLIP_FUSE_TABLE_H

#include <stddef.h>
#include <stdint.h>

#define CLIP_TABLE_MAGIC 0x46504c43u /* "CLPF" */
#define CLIP_TABLE_VERSION 2u
#define CLIP_NAME_MAX 255u
#define CLIP_XATTR_VALUE_MAX 65536u

typedef struct {
  uint32_t magic, version, inode_count, entry_count, xattr_count, blob_bytes;
  uint64_t total_blocks;
} ClipTableHeader;

typedef struct {
  uint32_t mode, uid, gid, nlink;
  uint64_t size;
  int64_t mtime_sec;
  uint32_t mtime_nsec, rdev_major, rdev_minor;
  uint32_t first;       /* directory: first entry; symlink: blob offset of the target */
  uint32_t count;       /* directory: entry count; symlink: target length */
  uint32_t xattr_first, xattr_count;
  uint32_t parent;      /* directory: parent's inode index (the root's is 0) */
  uint32_t blob;        /* regular file: the blob (layer) holding its bytes */
  uint32_t reserved;
  uint64_t base;        /* regular file: offset of its first byte in that blob */
} ClipInode;

typedef struct {
  uint32_t name_off, name_len, inode;
} ClipEntry;

typedef struct {
  uint32_t name_off, name_len, value_off, value_len;
} ClipXattr;

_Static_assert(sizeof(ClipTableHeader) == 32, "header layout");
_Static_assert(sizeof(ClipInode) == 80, "inode layout");
_Static_assert(sizeof(ClipEntry) == 12, "entry layout");
_Static_assert(sizeof(ClipXattr) == 16, "xattr layout");

/* A validated table over memory it owns (one allocation, suitably aligned). */
typedef struct {
  void* memory;
  const ClipTableHeader* header;
  const ClipInode* inodes;
  const ClipEntry* entries;
  const ClipXattr* xattrs;
  const char* blob;
} ClipTable;

/* Copies and validates `bytes`; on failure returns a static message and leaves `table` empty. */
const char* clip_table_load(ClipTable* table, const void* bytes, size_t length);
void clip_table_free(ClipTable* table);

/* The child of directory `dir` named name[0..len), or -1. `dir` must be a valid inode index. */
int64_t clip_table_lookup(const ClipTable* table, uint32_t dir, const char* name, size_t len);

/* The xattr of inode `ino` named name (NUL-terminated), or NULL. */
const ClipXattr* clip_table_xattr(const ClipTable* table, uint32_t ino, const char* name);

#endif
