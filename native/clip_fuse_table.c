/* Validation and lookups of the FUSE table (see clip_fuse_table.h). No FUSE or N-API here, so a
 * fuzz harness can link it alone. */
#include "clip_fuse_table.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the FUSE table is little-endian"
#endif

/* [off, off + len) lies inside [0, limit). */
static int in_range(uint64_t off, uint64_t len, uint64_t limit) {
  return off <= limit && len <= limit - off;
}

static int name_order(const char* a, size_t alen, const char* b, size_t blen) {
  int order = memcmp(a, b, alen < blen ? alen : blen);
  if (order != 0) return order;
  return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int valid_type(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR: case S_IFBLK: case S_IFIFO: case S_IFSOCK:
      return 1;
    default:
      return 0;
  }
}

static const char* check_entries(const ClipTable* t, const ClipInode* dir) {
  const ClipTableHeader* h = t->header;
  if (!in_range(dir->first, dir->count, h->entry_count)) return "a directory's entries lie outside the entry table";
  const ClipEntry* previous = NULL;
  for (uint32_t i = 0; i < dir->count; i++) {
    const ClipEntry* e = &t->entries[dir->first + i];
    if (e->name_len == 0 || e->name_len > CLIP_NAME_MAX) return "an entry name is empty or too long";
    if (!in_range(e->name_off, e->name_len, h->blob_bytes)) return "an entry name lies outside the blob";
    if (e->inode >= h->inode_count) return "an entry names an inode that does not exist";
    const char* name = t->blob + e->name_off;
    if (memchr(name, '/', e->name_len) || memchr(name, '\0', e->name_len)) return "an entry name holds '/' or NUL";
    if (name[0] == '.' && (e->name_len == 1 || (e->name_len == 2 && name[1] == '.'))) return "an entry is named . or ..";
    if (previous && name_order(t->blob + previous->name_off, previous->name_len, name, e->name_len) > 0) {
      return "a directory's entries are not sorted";
    }
    previous = e;
  }
  return NULL;
}

static const char* check_inode(const ClipTable* t, const ClipInode* inode) {
  const ClipTableHeader* h = t->header;
  if (!valid_type(inode->mode)) return "an inode has an unknown file type";
  if (inode->mtime_nsec >= 1000000000u) return "an inode's nanoseconds exceed a second";
  if (!in_range(inode->xattr_first, inode->xattr_count, h->xattr_count)) return "an inode's xattrs lie outside the xattr table";
  for (uint32_t i = 0; i < inode->xattr_count; i++) {
    const ClipXattr* x = &t->xattrs[inode->xattr_first + i];
    if (x->name_len == 0 || x->name_len > CLIP_NAME_MAX || x->value_len > CLIP_XATTR_VALUE_MAX) return "an xattr is too long";
    if (!in_range(x->name_off, x->name_len, h->blob_bytes) || !in_range(x->value_off, x->value_len, h->blob_bytes)) {
      return "an xattr lies outside the blob";
    }
    if (memchr(t->blob + x->name_off, '\0', x->name_len)) return "an xattr name holds NUL";
  }
  if ((inode->mode & S_IFMT) == S_IFLNK) {
    if (inode->count == 0 || inode->count > 4096 || !in_range(inode->first, inode->count, h->blob_bytes)) {
      return "a symlink target is empty, too long or outside the blob";
    }
  }
  if ((inode->mode & S_IFMT) == S_IFDIR) {
    if (inode->parent >= h->inode_count || (t->inodes[inode->parent].mode & S_IFMT) != S_IFDIR) return "a directory's parent is not a directory";
    return check_entries(t, inode);
  }
  return NULL;
}

const char* clip_table_load(ClipTable* table, const void* bytes, size_t length) {
  memset(table, 0, sizeof *table);
  ClipTableHeader h;
  if (length < sizeof h) return "the table is shorter than its header";
  memcpy(&h, bytes, sizeof h);
  if (h.magic != CLIP_TABLE_MAGIC) return "the table has the wrong magic";
  if (h.version != CLIP_TABLE_VERSION) return "the table has an unknown version";
  if (h.inode_count == 0) return "the table has no root inode";
  uint64_t expected = sizeof h + (uint64_t)h.inode_count * sizeof(ClipInode) + (uint64_t)h.entry_count * sizeof(ClipEntry) +
                      (uint64_t)h.xattr_count * sizeof(ClipXattr) + h.blob_bytes;
  if (expected != length) return "the table's length disagrees with its counts";
  void* memory = malloc(length);
  if (!memory) return "out of memory for the table";
  memcpy(memory, bytes, length);
  ClipTable t;
  t.memory = memory;
  t.header = (const ClipTableHeader*)memory;
  t.inodes = (const ClipInode*)((const char*)memory + sizeof h);
  t.entries = (const ClipEntry*)(t.inodes + h.inode_count);
  t.xattrs = (const ClipXattr*)((const char*)t.entries + (size_t)h.entry_count * sizeof(ClipEntry));
  t.blob = (const char*)(t.xattrs + h.xattr_count);
  if ((t.inodes[0].mode & S_IFMT) != S_IFDIR) {
    free(memory);
    return "the root inode is not a directory";
  }
  for (uint32_t i = 0; i < h.inode_count; i++) {
    const char* error = check_inode(&t, &t.inodes[i]);
    if (error) {
      free(memory);
      return error;
    }
  }
  *table = t;
  return NULL;
}

void clip_table_free(ClipTable* table) {
  free(table->memory);
  memset(table, 0, sizeof *table);
}

int64_t clip_table_lookup(const ClipTable* t, uint32_t dir, const char* name, size_t len) {
  const ClipInode* inode = &t->inodes[dir];
  if ((inode->mode & S_IFMT) != S_IFDIR) return -1;
  uint32_t low = 0, high = inode->count;
  while (low < high) {
    uint32_t middle = low + (high - low) / 2;
    const ClipEntry* e = &t->entries[inode->first + middle];
    int order = name_order(t->blob + e->name_off, e->name_len, name, len);
    if (order == 0) return e->inode;
    if (order < 0) low = middle + 1;
    else high = middle;
  }
  return -1;
}

const ClipXattr* clip_table_xattr(const ClipTable* t, uint32_t ino, const char* name) {
  const ClipInode* inode = &t->inodes[ino];
  size_t len = strlen(name);
  for (uint32_t i = 0; i < inode->xattr_count; i++) {
    const ClipXattr* x = &t->xattrs[inode->xattr_first + i];
    if (x->name_len == len && memcmp(t->blob + x->name_off, name, len) == 0) return x;
  }
  return NULL;
}
