/*
 * The FUSE server of a clip mount, over libfuse3's low-level API.
 *
 * The request loop (clip_fuse_loop.c) runs on native threads and answers everything the table of
 * contents knows (lookup, getattr, readdir(plus), readlink, xattrs, statfs, open, access) from
 * the immutable FUSE table (clip_fuse_table.h) without calling into JavaScript. Only READ is
 * handed to JavaScript, through a thread-safe function: the loop thread parks the request in a
 * slot and goes back to the kernel; JavaScript fetches, verifies and inflates, then answers with
 * reply()/replyError() by slot id (fuse_reply_* may be called from any thread). A slot id that is
 * stale or unknown is refused, so JavaScript can never answer one request twice.
 *
 * Lifetime: a session is freed when its last reference goes: the loop thread (until the kernel
 * connection ends), the JavaScript handle (until close() or garbage collection) and every read
 * JavaScript has not answered yet. The /dev/fuse descriptor therefore stays open while anyone
 * may still reply on it.
 */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np */
#define FUSE_USE_VERSION 312
#define NAPI_VERSION 8
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <node_api.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "clip_fuse_loop.h"
#include "clip_fuse_table.h"

/* The archive never changes under a mount: the kernel may keep entries and attributes a day. */
#define CACHE_SECONDS 86400.0
/* Reads JavaScript has not answered yet, at most (a slot id carries the index in 20 bits). */
#define SLOT_BITS 20
#define MAX_SLOTS (1u << SLOT_BITS)

typedef struct {
  fuse_req_t req;
  uint32_t seq;
  uint32_t used;
  uint32_t ino;
  uint32_t size;
  uint64_t offset;
} Slot;

enum {
  C_LOOKUP, C_GETATTR, C_READDIR, C_READDIRPLUS, C_GETXATTR, C_LISTXATTR, C_OPEN, C_OPENDIR, C_READ, C_READ_JS, C_READ_DISK,
  C_READ_MEMORY, C_READ_UNLOGGED, C_COUNT
};
static const char* const COUNTER_NAMES[C_COUNT] = {"lookup", "getattr",  "readdir",      "readdirplus",    "getxattr",
                                                   "listxattr", "open",  "opendir",      "read",           "readToJs",
                                                   "readFromDisk", "readFromMemory", "readsUnlogged"};

/* Disk cache entries the server reads itself, at most (each holds a descriptor). */
#define MAX_PUBLISHED 256

/*
 * A disk cache entry JavaScript has checked the header of (docs/cache.md): the server reads the
 * blocks a READ needs from it and checks each against its sha256, as JavaScript would. `refs`
 * (under the session lock): one while published, one per read using it.
 */
typedef struct {
  int fd;
  uint32_t block_bytes;
  uint64_t length;
  uint64_t data_offset;
  unsigned char* digests; /* 32 bytes per block */
  int refs;
} DiskEntry;

/* A span's verified bytes in the memory tier: a JavaScript Buffer the reference keeps alive. */
typedef struct {
  napi_ref ref;
  const unsigned char* data; /* NULL: not published */
} MemSpan;

/* The spans of one blob (a layer, the data section): span i is [ends[i-1], ends[i]). */
typedef struct {
  uint32_t count;
  uint64_t* ends;
  DiskEntry** entries; /* the published entry of each span, or NULL */
  MemSpan* memory;     /* under Session.mem_lock; allocated on the blob's first memory publication */
} BlobLayout;

/* A read served natively, for JavaScript's span metrics, cache recency and read-ahead. */
typedef struct {
  uint32_t inode;
  uint32_t micros;
  uint64_t offset;
  uint32_t length;
  uint32_t disk_parts; /* bit i: the read's i-th span came from the disk cache (else memory) */
} LoggedRead;

typedef struct {
  ClipTable table;
  struct fuse_session* se;
  ClipLoop loop;
  int loop_ready;
  napi_threadsafe_function tsfn;
  pthread_mutex_t lock;
  int closed;
  int refs;
  int has_xattrs;
  int zero_opendir; /* the kernel takes ENOSYS from OPENDIR as "none needed" */
  Slot* slots;
  uint32_t slot_count, slot_cap, next_seq;
  uint32_t* free_slots;
  uint32_t free_count;
  uint64_t counters[C_COUNT];
  BlobLayout* blobs;
  uint32_t blob_count;
  uint64_t published[MAX_PUBLISHED]; /* (blob << 32 | span) in publishing order, a ring */
  uint32_t published_head, published_count;
  uint8_t* read_once; /* a bit per inode: read natively at least once (JavaScript times first reads) */
  /* Native reads of the memory tier (below): loop threads read under the read lock, JavaScript
   * publishes and withdraws under the write lock, so a Buffer is never released mid-read. */
  napi_env env;
  pthread_rwlock_t mem_lock;
  /* Native reads not yet taken by JavaScript (a ring of READ_LOG_SIZE, allocated on first use). */
  pthread_mutex_t log_lock;
  LoggedRead* log;
  uint32_t log_head, log_count;
  int log_posted; /* JavaScript was told and has not taken the log yet */
} Session;

static void count(Session* s, int which) { __atomic_fetch_add(&s->counters[which], 1, __ATOMIC_RELAXED); }

/* Native reads logged for JavaScript between two takeReads(), at most (later ones are only counted). */
#define READ_LOG_SIZE 1024

/* On the JavaScript thread, when the session is made. */
static void native_reads_init(Session* s, napi_env env) {
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  /* A withdrawal (JavaScript's thread) must not wait behind an endless stream of reads. */
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&s->mem_lock, &attr);
  pthread_rwlockattr_destroy(&attr);
  pthread_mutex_init(&s->log_lock, NULL);
  s->env = env;
}

/* The memory tier's references are gone by now: close_session withdrew them on the JavaScript thread. */
static void native_reads_free(Session* s) {
  for (uint32_t b = 0; s->blobs && b < s->blob_count; b++) free(s->blobs[b].memory);
  free(s->log);
  pthread_rwlock_destroy(&s->mem_lock);
  pthread_mutex_destroy(&s->log_lock);
}

/* Under s->lock (or with no other user left). */
static void entry_unref(DiskEntry* e) {
  if (--e->refs > 0) return;
  close(e->fd);
  free(e->digests);
  free(e);
}

static void session_free(Session* s) {
  if (s->se) fuse_session_destroy(s->se);
  if (s->loop_ready) clip_loop_destroy(&s->loop);
  for (uint32_t b = 0; b < s->blob_count; b++) {
    for (uint32_t i = 0; s->blobs[b].entries && i < s->blobs[b].count; i++) {
      if (s->blobs[b].entries[i]) entry_unref(s->blobs[b].entries[i]);
    }
    free(s->blobs[b].ends);
    free(s->blobs[b].entries);
  }
  native_reads_free(s);
  free(s->blobs);
  free(s->read_once);
  clip_table_free(&s->table);
  free(s->slots);
  free(s->free_slots);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

static void drop_ref(Session* s) {
  pthread_mutex_lock(&s->lock);
  int last = --s->refs == 0;
  pthread_mutex_unlock(&s->lock);
  if (last) session_free(s);
}

/* Under s->lock. Returns the new slot's id, or 0 when none is free. */
static double slot_take_new(Session* s, fuse_req_t req, uint32_t ino, uint64_t offset, uint32_t size) {
  uint32_t index;
  if (s->free_count > 0) {
    index = s->free_slots[--s->free_count];
  } else {
    if (s->slot_count == MAX_SLOTS) return 0;
    if (s->slot_count == s->slot_cap) {
      uint32_t cap = s->slot_cap ? s->slot_cap * 2 : 64;
      Slot* slots = realloc(s->slots, cap * sizeof *slots);
      if (!slots) return 0;
      s->slots = slots;
      uint32_t* free_slots = realloc(s->free_slots, cap * sizeof *free_slots);
      if (!free_slots) return 0;
      s->free_slots = free_slots;
      s->slot_cap = cap;
    }
    index = s->slot_count++;
  }
  uint32_t seq = ++s->next_seq;
  if (seq == 0) seq = ++s->next_seq;
  s->slots[index] = (Slot){req, seq, 1, ino, size, offset};
  return (double)seq * MAX_SLOTS + index;
}

/* Under s->lock. The slot with this id, or NULL when the id is unknown or already answered. */
static Slot* slot_find(Session* s, double id) {
  if (!(id >= 0 && id < 4294967296.0 * MAX_SLOTS)) return NULL;
  uint64_t value = (uint64_t)id;
  uint32_t index = (uint32_t)(value & (MAX_SLOTS - 1));
  uint32_t seq = (uint32_t)(value >> SLOT_BITS);
  if (index >= s->slot_count || !s->slots[index].used || s->slots[index].seq != seq) return NULL;
  return &s->slots[index];
}

/* Under s->lock. Frees the slot and returns its request. */
static fuse_req_t slot_release(Session* s, Slot* slot) {
  fuse_req_t req = slot->req;
  slot->used = 0;
  s->free_slots[s->free_count++] = (uint32_t)(slot - s->slots);
  return req;
}

/* Answers a parked read with an error (JavaScript gone or failing); drops the read's reference. */
static void fail_slot(Session* s, double id, int error) {
  pthread_mutex_lock(&s->lock);
  Slot* slot = slot_find(s, id);
  fuse_req_t req = slot ? slot_release(s, slot) : NULL;
  pthread_mutex_unlock(&s->lock);
  if (!req) return;
  fuse_reply_err(req, error);
  drop_ref(s);
}

/* ---- the table's answers ---- */

static Session* session_of(fuse_req_t req) { return (Session*)fuse_req_userdata(req); }

/* The table index of a FUSE inode number (index + 1), or -1. */
static int64_t index_of(Session* s, fuse_ino_t ino) {
  return ino >= 1 && ino <= s->table.header->inode_count ? (int64_t)(ino - 1) : -1;
}

static void fill_stat(const Session* s, uint32_t index, struct stat* st) {
  const ClipInode* inode = &s->table.inodes[index];
  memset(st, 0, sizeof *st);
  st->st_ino = (ino_t)index + 1;
  st->st_mode = inode->mode;
  st->st_nlink = inode->nlink;
  st->st_uid = inode->uid;
  st->st_gid = inode->gid;
  st->st_rdev = makedev(inode->rdev_major, inode->rdev_minor);
  st->st_size = (off_t)inode->size;
  st->st_blksize = 4096;
  st->st_blocks = (blkcnt_t)((inode->size + 511) / 512);
  st->st_mtim.tv_sec = inode->mtime_sec;
  st->st_mtim.tv_nsec = inode->mtime_nsec;
  st->st_atim = st->st_mtim;
  st->st_ctim = st->st_mtim;
}

static void fill_entry(const Session* s, uint32_t index, struct fuse_entry_param* e) {
  memset(e, 0, sizeof *e);
  e->ino = (fuse_ino_t)index + 1;
  e->attr_timeout = CACHE_SECONDS;
  e->entry_timeout = CACHE_SECONDS;
  fill_stat(s, index, &e->attr);
}

static int is_dir(const Session* s, uint32_t index) { return (s->table.inodes[index].mode & S_IFMT) == S_IFDIR; }

static void op_init(void* userdata, struct fuse_conn_info* conn) {
  Session* s = userdata;
  s->zero_opendir = (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0;
  unsigned wanted = FUSE_CAP_READDIRPLUS | FUSE_CAP_CACHE_SYMLINKS | FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_ASYNC_READ;
  conn->want |= conn->capable & wanted;
  /* Always readdirplus: every listing is followed by stats (ls -l, find, os.walk). */
  conn->want &= ~(unsigned)(FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_AUTO_INVAL_DATA);
  conn->time_gran = 1;
  /* Asynchronous reads (readahead) in flight at once: the kernel's default 12 would cap many
   * concurrent cold readers, each waiting on its own fetch in JavaScript. */
  conn->max_background = 64;
  conn->congestion_threshold = 48;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Session* s = session_of(req);
  count(s, C_LOOKUP);
  int64_t dir = index_of(s, parent);
  if (dir < 0) return (void)fuse_reply_err(req, ENOENT);
  if (!is_dir(s, (uint32_t)dir)) return (void)fuse_reply_err(req, ENOTDIR);
  int64_t child = clip_table_lookup(&s->table, (uint32_t)dir, name, strlen(name));
  struct fuse_entry_param e;
  if (child < 0) {
    /* A negative entry the kernel keeps as long as positive ones: the tree never changes. */
    memset(&e, 0, sizeof e);
    e.entry_timeout = CACHE_SECONDS;
  } else {
    fill_entry(s, (uint32_t)child, &e);
  }
  fuse_reply_entry(req, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  (void)ino, (void)nlookup;
  fuse_reply_none(req); /* inodes live as long as the table */
}

static void op_forget_multi(fuse_req_t req, size_t count_, struct fuse_forget_data* forgets) {
  (void)count_, (void)forgets;
  fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  (void)fi;
  Session* s = session_of(req);
  count(s, C_GETATTR);
  int64_t index = index_of(s, ino);
  if (index < 0) return (void)fuse_reply_err(req, ENOENT);
  struct stat st;
  fill_stat(s, (uint32_t)index, &st);
  fuse_reply_attr(req, &st, CACHE_SECONDS);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  Session* s = session_of(req);
  int64_t index = index_of(s, ino);
  if (index < 0) return (void)fuse_reply_err(req, ENOENT);
  const ClipInode* inode = &s->table.inodes[index];
  if ((inode->mode & S_IFMT) != S_IFLNK) return (void)fuse_reply_err(req, EINVAL);
  char target[4097]; /* the table checks count <= 4096 */
  memcpy(target, s->table.blob + inode->first, inode->count);
  target[inode->count] = '\0';
  fuse_reply_readlink(req, target);
}

/*
 * OPENDIR: where the kernel supports it, ENOSYS once, and it never sends OPENDIR or RELEASEDIR
 * again, opening every directory with FOPEN_CACHE_DIR by itself (what the answer below says too).
 * Files are still opened with a request (answered natively): opening a file of a mount whose
 * server died must fail (ENOTCONN) rather than serve pages of the dead mount, which the restart
 * handling relies on.
 */
static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  Session* s = session_of(req);
  count(s, C_OPENDIR);
  if (s->zero_opendir) return (void)fuse_reply_err(req, ENOSYS);
  int64_t index = index_of(s, ino);
  if (index < 0) return (void)fuse_reply_err(req, ENOENT);
  if (!is_dir(s, (uint32_t)index)) return (void)fuse_reply_err(req, ENOTDIR);
  fi->cache_readdir = 1; /* FOPEN_CACHE_DIR: the kernel keeps the listing */
  fi->keep_cache = 1;
  fuse_reply_open(req, fi);
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus) {
  Session* s = session_of(req);
  count(s, plus ? C_READDIRPLUS : C_READDIR);
  int64_t index = index_of(s, ino);
  if (index < 0) return (void)fuse_reply_err(req, ENOENT);
  if (!is_dir(s, (uint32_t)index)) return (void)fuse_reply_err(req, ENOTDIR);
  if (off < 0) return (void)fuse_reply_err(req, EINVAL);
  const ClipInode* dir = &s->table.inodes[index];
  char* buf = malloc(size ? size : 1);
  if (!buf) return (void)fuse_reply_err(req, ENOMEM);
  size_t used = 0;
  uint64_t total = (uint64_t)dir->count + 2;
  for (uint64_t i = (uint64_t)off; i < total; i++) {
    char name[CLIP_NAME_MAX + 1];
    uint32_t target;
    if (i < 2) {
      strcpy(name, i == 0 ? "." : "..");
      target = i == 0 ? (uint32_t)index : dir->parent;
    } else {
      const ClipEntry* e = &s->table.entries[dir->first + (i - 2)];
      memcpy(name, s->table.blob + e->name_off, e->name_len);
      name[e->name_len] = '\0';
      target = e->inode;
    }
    size_t added;
    if (plus) {
      struct fuse_entry_param e;
      fill_entry(s, target, &e);
      added = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t)(i + 1));
    } else {
      struct stat st;
      memset(&st, 0, sizeof st);
      st.st_ino = (ino_t)target + 1;
      st.st_mode = s->table.inodes[target].mode;
      added = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)(i + 1));
    }
    if (added > size - used) break;
    used += added;
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
  (void)fi;
  readdir_common(req, ino, size, off, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
  (void)fi;
  readdir_common(req, ino, size, off, 1);
}

static void op_release_any(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  (void)ino, (void)fi;
  fuse_reply_err(req, 0);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  Session* s = session_of(req);
  count(s, C_OPEN);
  int64_t index = index_of(s, ino);
  if (index < 0) return (void)fuse_reply_err(req, ENOENT);
  if (is_dir(s, (uint32_t)index)) return (void)fuse_reply_err(req, EISDIR);
  if ((fi->flags & O_ACCMODE) != O_RDONLY) return (void)fuse_reply_err(req, EROFS);
  fi->keep_cache = 1; /* FOPEN_KEEP_CACHE: the page cache stays valid across opens */
  fi->noflush = 1;
  fuse_reply_open(req, fi);
}

static int pread_full(int fd, unsigned char* buf, size_t length, uint64_t offset) {
  size_t done = 0;
  while (done < length) {
    ssize_t n = pread(fd, buf + done, length - done, (off_t)(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;
    done += (size_t)n;
  }
  return 1;
}

/*
 * Copies bytes [rel, rel + length) of span `span` into `out` from its published disk cache entry,
 * reading the blocks they touch and checking each against its digest. 0 when the span has no
 * entry or a check fails: the entry is then withdrawn, and JavaScript, which finds and removes
 * the damage, answers.
 */
static int read_span_part(Session* s, BlobLayout* blob, uint32_t span, uint64_t rel, uint64_t length, unsigned char* out) {
  pthread_mutex_lock(&s->lock);
  DiskEntry* e = blob->entries[span];
  if (e) e->refs++;
  pthread_mutex_unlock(&s->lock);
  if (!e) return 0;
  uint64_t first = rel / e->block_bytes, last = (rel + length - 1) / e->block_bytes;
  uint64_t start = first * e->block_bytes, end = (last + 1) * e->block_bytes;
  if (end > e->length) end = e->length;
  /* An entry deleted from the cache (evicted, replaced) gives way: its space must be freed. */
  struct stat st;
  unsigned char* buf = fstat(e->fd, &st) == 0 && st.st_nlink > 0 ? malloc(end - start) : NULL;
  int ok = buf && pread_full(e->fd, buf, end - start, e->data_offset + start);
  for (uint64_t k = first; ok && k <= last; k++) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    uint64_t block_start = k * e->block_bytes;
    uint64_t block_end = block_start + e->block_bytes < e->length ? block_start + e->block_bytes : e->length;
    SHA256(buf + (block_start - start), block_end - block_start, digest);
    ok = memcmp(digest, e->digests + 32 * k, 32) == 0;
  }
  if (ok) memcpy(out, buf + (rel - start), length);
  free(buf);
  pthread_mutex_lock(&s->lock);
  int withdraw = !ok && blob->entries[span] == e;
  if (withdraw) blob->entries[span] = NULL;
  e->refs -= withdraw; /* the publication's reference; ours is still held, so this frees nothing */
  entry_unref(e);
  pthread_mutex_unlock(&s->lock);
  return ok;
}

/* Events posted to JavaScript carry this bit; read slot ids never do. */
#define EVENT_FIRST_READ (1ull << 63)

/*
 * The first native read of a file in this mount: JavaScript records it as its own first reads
 * (clip_first_read_duration_seconds) unless it read the file already. Holds a reference until
 * JavaScript has seen it.
 */
static void note_first_read(Session* s, uint32_t index, uint64_t micros) {
  uint8_t bit = (uint8_t)(1u << (index & 7));
  if (!s->read_once || (__atomic_fetch_or(&s->read_once[index >> 3], bit, __ATOMIC_RELAXED) & bit)) return;
  if (micros > 0x7fffffff) micros = 0x7fffffff;
  pthread_mutex_lock(&s->lock);
  if (!s->closed) {
    s->refs++;
    void* event = (void*)(uintptr_t)(EVENT_FIRST_READ | micros << 32 | index);
    if (napi_call_threadsafe_function(s->tsfn, event, napi_tsfn_nonblocking) != napi_ok) s->refs--;
  }
  pthread_mutex_unlock(&s->lock);
}

static uint64_t now_micros(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Events posted to JavaScript: native reads were logged (never a slot id, which is >= MAX_SLOTS). */
#define EVENT_READS_LOGGED ((uintptr_t)1)

static void post_reads_logged(Session* s) {
  pthread_mutex_lock(&s->lock);
  int posted = 0;
  if (!s->closed) {
    s->refs++;
    posted = napi_call_threadsafe_function(s->tsfn, (void*)EVENT_READS_LOGGED, napi_tsfn_nonblocking) == napi_ok;
    if (!posted) s->refs--;
  }
  pthread_mutex_unlock(&s->lock);
  if (posted) return;
  pthread_mutex_lock(&s->log_lock);
  s->log_posted = 0;
  pthread_mutex_unlock(&s->log_lock);
}

/*
 * Logs a native read for JavaScript (span metrics, the caches' LRU recency, read-ahead of a
 * sequential reader), which is told once and takes the whole log with takeReads(). A full log
 * drops the entry and counts it (readsUnlogged).
 */
static void log_read(Session* s, uint32_t inode, uint64_t offset, uint32_t length, uint32_t disk_parts, uint64_t micros) {
  pthread_mutex_lock(&s->log_lock);
  if (!s->log) s->log = malloc(READ_LOG_SIZE * sizeof *s->log);
  int post = 0;
  if (s->log && s->log_count < READ_LOG_SIZE) {
    s->log[s->log_count++] = (LoggedRead){inode, micros > UINT32_MAX ? UINT32_MAX : (uint32_t)micros, offset, length, disk_parts};
    post = !s->log_posted;
    s->log_posted = 1;
  } else {
    count(s, C_READ_UNLOGGED);
  }
  pthread_mutex_unlock(&s->log_lock);
  if (post) post_reads_logged(s);
}

/* Copies bytes [rel, rel + length) of span `span` from the memory tier; 0 when it is not published. */
static int read_span_memory(Session* s, BlobLayout* blob, uint32_t span, uint64_t rel, uint64_t length, unsigned char* out) {
  pthread_rwlock_rdlock(&s->mem_lock);
  const unsigned char* data = blob->memory ? blob->memory[span].data : NULL;
  if (data) memcpy(out, data + rel, length);
  pthread_rwlock_unlock(&s->mem_lock);
  return data != NULL;
}

/* A read inside one span of the memory tier: answered straight from its Buffer, no copy. */
static int reply_from_memory(Session* s, fuse_req_t req, BlobLayout* blob, uint32_t span, uint64_t rel, uint32_t length) {
  pthread_rwlock_rdlock(&s->mem_lock);
  const unsigned char* data = blob->memory ? blob->memory[span].data : NULL;
  if (data) fuse_reply_buf(req, (const char*)data + rel, length);
  pthread_rwlock_unlock(&s->mem_lock);
  return data != NULL;
}

/* The span of `blob` holding byte `at` (blob->count when past the end). */
static uint32_t span_at(const BlobLayout* blob, uint64_t at) {
  uint32_t span = 0, high = blob->count;
  while (span < high) {
    uint32_t middle = span + (high - span) / 2;
    if (blob->ends[middle] > at) high = middle;
    else span = middle + 1;
  }
  return span;
}

/*
 * Answers a READ natively when every span it touches is published: from the memory tier (the
 * span's verified Buffer) or from its disk cache entry (blocks checked); 0 otherwise.
 */
static int read_natively(Session* s, fuse_req_t req, const ClipInode* inode, uint64_t off, uint32_t length) {
  uint64_t started = now_micros();
  if (inode->blob >= s->blob_count) return 0;
  BlobLayout* blob = &s->blobs[inode->blob];
  uint64_t from = inode->base + off, to = from + length;
  if (from < inode->base) return 0;
  uint32_t span = span_at(blob, from);
  if (span >= blob->count) return 0;
  uint32_t disk_parts = 0; /* bit i: part i from disk (bit 31 stands for every later part too) */
  int ok = to <= blob->ends[span] && reply_from_memory(s, req, blob, span, from - (span ? blob->ends[span - 1] : 0), length);
  if (!ok) {
    unsigned char* out = malloc(length);
    ok = out != NULL;
    for (uint64_t at = from, part = 0; ok && at < to; span++, part++) {
      if (span >= blob->count) {
        ok = 0;
        break;
      }
      uint64_t span_start = span ? blob->ends[span - 1] : 0;
      uint64_t part_end = blob->ends[span] < to ? blob->ends[span] : to;
      unsigned char* dest = out + (at - from);
      if (!read_span_memory(s, blob, span, at - span_start, part_end - at, dest)) {
        ok = read_span_part(s, blob, span, at - span_start, part_end - at, dest);
        disk_parts |= 1u << (part < 31 ? part : 31);
      }
      at = part_end;
    }
    if (ok) fuse_reply_buf(req, (const char*)out, length);
    free(out);
  }
  if (!ok) return 0;
  count(s, disk_parts ? C_READ_DISK : C_READ_MEMORY);
  uint32_t index = (uint32_t)(inode - s->table.inodes);
  uint64_t micros = now_micros() - started;
  log_read(s, index, off, length, disk_parts, micros);
  note_first_read(s, index, micros);
  return 1;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
  (void)fi;
  Session* s = session_of(req);
  count(s, C_READ);
  int64_t index = index_of(s, ino);
  if (index < 0) return (void)fuse_reply_err(req, ENOENT);
  const ClipInode* inode = &s->table.inodes[index];
  if ((inode->mode & S_IFMT) != S_IFREG) return (void)fuse_reply_err(req, is_dir(s, (uint32_t)index) ? EISDIR : EINVAL);
  if (off < 0) return (void)fuse_reply_err(req, EINVAL);
  if ((uint64_t)off >= inode->size || size == 0) return (void)fuse_reply_buf(req, NULL, 0);
  uint64_t left = inode->size - (uint64_t)off;
  uint32_t length = (uint32_t)(size < left ? size : left);
  if (read_natively(s, req, inode, (uint64_t)off, length)) return;
  pthread_mutex_lock(&s->lock);
  if (s->closed) {
    pthread_mutex_unlock(&s->lock);
    return (void)fuse_reply_err(req, EIO);
  }
  double id = slot_take_new(s, req, (uint32_t)index, (uint64_t)off, length);
  if (id == 0) {
    pthread_mutex_unlock(&s->lock);
    return (void)fuse_reply_err(req, EIO);
  }
  s->refs++;
  count(s, C_READ_JS);
  clip_loop_handed_off();
  napi_status status = napi_call_threadsafe_function(s->tsfn, (void*)(uintptr_t)id, napi_tsfn_nonblocking);
  if (status != napi_ok) {
    slot_release(s, slot_find(s, id));
    s->refs--;
    pthread_mutex_unlock(&s->lock);
    return (void)fuse_reply_err(req, EIO);
  }
  pthread_mutex_unlock(&s->lock);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  (void)ino;
  Session* s = session_of(req);
  struct statvfs sv;
  memset(&sv, 0, sizeof sv);
  sv.f_bsize = 4096;
  sv.f_frsize = 4096;
  sv.f_blocks = s->table.header->total_blocks;
  sv.f_files = s->table.header->inode_count;
  sv.f_namemax = CLIP_NAME_MAX;
  fuse_reply_statfs(req, &sv);
}

/*
 * Extended attributes. When the archive has none at all, ENOSYS: the kernel then remembers that
 * the filesystem has no xattrs and answers every later getxattr/listxattr itself (EOPNOTSUPP),
 * so `ls -l` and security.* checks cost no round trip. Otherwise the answer comes from the table.
 */
static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Session* s = session_of(req);
  count(s, C_GETXATTR);
  if (!s->has_xattrs) return (void)fuse_reply_err(req, ENOSYS);
  int64_t index = index_of(s, ino);
  if (index < 0) return (void)fuse_reply_err(req, ENOENT);
  const ClipXattr* x = clip_table_xattr(&s->table, (uint32_t)index, name);
  if (!x) return (void)fuse_reply_err(req, ENODATA);
  if (size == 0) return (void)fuse_reply_xattr(req, x->value_len);
  if (size < x->value_len) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, s->table.blob + x->value_off, x->value_len);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Session* s = session_of(req);
  count(s, C_LISTXATTR);
  if (!s->has_xattrs) return (void)fuse_reply_err(req, ENOSYS);
  int64_t index = index_of(s, ino);
  if (index < 0) return (void)fuse_reply_err(req, ENOENT);
  const ClipInode* inode = &s->table.inodes[index];
  size_t total = 0;
  for (uint32_t i = 0; i < inode->xattr_count; i++) total += s->table.xattrs[inode->xattr_first + i].name_len + 1;
  if (size == 0) return (void)fuse_reply_xattr(req, total);
  if (size < total) return (void)fuse_reply_err(req, ERANGE);
  char* buf = malloc(total ? total : 1);
  if (!buf) return (void)fuse_reply_err(req, ENOMEM);
  size_t used = 0;
  for (uint32_t i = 0; i < inode->xattr_count; i++) {
    const ClipXattr* x = &s->table.xattrs[inode->xattr_first + i];
    memcpy(buf + used, s->table.blob + x->name_off, x->name_len);
    used += x->name_len;
    buf[used++] = '\0';
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask) {
  Session* s = session_of(req);
  if (index_of(s, ino) < 0) return (void)fuse_reply_err(req, ENOENT);
  fuse_reply_err(req, (mask & W_OK) ? EROFS : 0);
}

static const struct fuse_lowlevel_ops OPS = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .readlink = op_readlink,
    .open = op_open,
    .read = op_read,
    .release = op_release_any,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_release_any,
    .statfs = op_statfs,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .access = op_access,
};

/* ---- the loop (clip_fuse_loop.c) ---- */

/* The loop's reference: dropped by its last thread (the kernel connection ended, or stop). */
static void loop_ended(void* context) { drop_ref(context); }

/* ---- JavaScript side ---- */

#define CHECK(env, call)                                                      \
  do {                                                                        \
    if ((call) != napi_ok) {                                                  \
      napi_throw_error((env), NULL, "clip_fuse: " #call " failed");          \
      return NULL;                                                            \
    }                                                                         \
  } while (0)

/* onRead(-1, 0, 0, 0): reads were served natively; takeReads() returns them. */
static void reads_logged_to_js(napi_env env, napi_value js_cb, Session* s) {
  napi_value args[4], undefined, ignored;
  if (env && js_cb && napi_create_int32(env, -1, &args[0]) == napi_ok && napi_create_uint32(env, 0, &args[1]) == napi_ok &&
      napi_create_uint32(env, 0, &args[2]) == napi_ok && napi_create_uint32(env, 0, &args[3]) == napi_ok &&
      napi_get_undefined(env, &undefined) == napi_ok && napi_call_function(env, undefined, js_cb, 4, args, &ignored) != napi_ok) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
  }
  drop_ref(s);
}

/* Runs on the JavaScript thread for each parked read: onRead(id, inodeIndex, offset, length). */
static void call_js(napi_env env, napi_value js_cb, void* context, void* data) {
  Session* s = context;
  uint64_t value = (uint64_t)(uintptr_t)data;
  if (value == EVENT_READS_LOGGED) return reads_logged_to_js(env, js_cb, s);
  if (value & EVENT_FIRST_READ) {
    /* onRead(0, inodeIndex, microseconds, 0): a file's first read was served natively. */
    napi_value args[4], undefined, ignored;
    if (env && js_cb && napi_create_uint32(env, 0, &args[0]) == napi_ok && napi_create_uint32(env, (uint32_t)value, &args[1]) == napi_ok &&
        napi_create_uint32(env, (uint32_t)(value >> 32) & 0x7fffffffu, &args[2]) == napi_ok && napi_create_uint32(env, 0, &args[3]) == napi_ok &&
        napi_get_undefined(env, &undefined) == napi_ok && napi_call_function(env, undefined, js_cb, 4, args, &ignored) != napi_ok) {
      napi_value exception;
      napi_get_and_clear_last_exception(env, &exception);
    }
    drop_ref(s);
    return;
  }
  double id = (double)(uintptr_t)data;
  pthread_mutex_lock(&s->lock);
  Slot* slot = slot_find(s, id);
  Slot copy = slot ? *slot : (Slot){0};
  int closed = s->closed;
  pthread_mutex_unlock(&s->lock);
  if (!slot) return;
  if (env == NULL || js_cb == NULL || closed) return fail_slot(s, id, EIO);
  napi_value args[4], undefined, ignored;
  if (napi_create_double(env, id, &args[0]) != napi_ok || napi_create_uint32(env, copy.ino, &args[1]) != napi_ok ||
      napi_create_double(env, (double)copy.offset, &args[2]) != napi_ok || napi_create_uint32(env, copy.size, &args[3]) != napi_ok ||
      napi_get_undefined(env, &undefined) != napi_ok || napi_call_function(env, undefined, js_cb, 4, args, &ignored) != napi_ok) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    fail_slot(s, id, EIO);
  }
}

/* Under s->lock. Withdraws every published disk cache entry (their descriptors close once no read uses them). */
static void withdraw_all(Session* s) {
  for (uint32_t b = 0; b < s->blob_count; b++) {
    for (uint32_t i = 0; i < s->blobs[b].count; i++) {
      if (s->blobs[b].entries[i]) entry_unref(s->blobs[b].entries[i]);
      s->blobs[b].entries[i] = NULL;
    }
  }
  s->published_count = 0;
}

/* On the JavaScript thread. Stops serving a span from the memory tier and releases its Buffer. */
static void memory_withdraw(Session* s, BlobLayout* blob, uint32_t span) {
  pthread_rwlock_wrlock(&s->mem_lock);
  MemSpan old = blob->memory ? blob->memory[span] : (MemSpan){0};
  if (blob->memory) blob->memory[span] = (MemSpan){0};
  pthread_rwlock_unlock(&s->mem_lock);
  /* No read uses it now: readers hold the read lock for as long as they touch the bytes. */
  if (old.data) napi_delete_reference(s->env, old.ref);
}

static void memory_withdraw_all(Session* s) {
  for (uint32_t b = 0; b < s->blob_count; b++) {
    for (uint32_t i = 0; s->blobs[b].memory && i < s->blobs[b].count; i++) memory_withdraw(s, &s->blobs[b], i);
  }
}

static void close_session(Session* s) {
  pthread_mutex_lock(&s->lock);
  int was_closed = s->closed;
  s->closed = 1;
  if (!was_closed) {
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_release);
    withdraw_all(s); /* the archive is closed: nothing may be read from its cache any more */
  }
  pthread_mutex_unlock(&s->lock);
  if (!was_closed) memory_withdraw_all(s);
}

static void finalize_handle(napi_env env, void* data, void* hint) {
  (void)env, (void)hint;
  Session* s = data;
  close_session(s);
  drop_ref(s);
}

static int get_string(napi_env env, napi_value value, char* out, size_t size) {
  size_t length = 0;
  if (napi_get_value_string_utf8(env, value, out, size, &length) != napi_ok || length + 1 >= size) {
    napi_throw_type_error(env, NULL, "clip_fuse: expected a string shorter than 4096 bytes");
    return 0;
  }
  return 1;
}

static int get_bytes(napi_env env, napi_value value, void** data, size_t* length) {
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, value, &type, length, data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "clip_fuse: expected a Uint8Array");
    return 0;
  }
  return 1;
}

static Session* unwrap_session(napi_env env, napi_value value) {
  void* data = NULL;
  if (napi_unwrap(env, value, &data) != napi_ok || !data) {
    napi_throw_type_error(env, NULL, "clip_fuse: not a FUSE session");
    return NULL;
  }
  return data;
}

/* The session a call that takes only a session names, or NULL with an exception. */
static Session* session_argument(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) {
    napi_throw_type_error(env, NULL, "clip_fuse: a FUSE session is expected");
    return NULL;
  }
  return unwrap_session(env, argv[0]);
}

/* validate(table: Uint8Array): string | null — why the table is refused, or null. */
static napi_value js_validate(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void* bytes;
  size_t length;
  if (argc < 1 || !get_bytes(env, argv[0], &bytes, &length)) return NULL;
  ClipTable table;
  const char* error = clip_table_load(&table, bytes, length);
  if (error) {
    CHECK(env, napi_create_string_utf8(env, error, NAPI_AUTO_LENGTH, &result));
    return result;
  }
  /* Walk what was accepted, so a fuzzer (and AddressSanitizer) sees every access the server makes. */
  for (uint32_t i = 0; i < table.header->inode_count; i++) {
    const ClipInode* inode = &table.inodes[i];
    for (uint32_t j = 0; (inode->mode & S_IFMT) == S_IFDIR && j < inode->count; j++) {
      const ClipEntry* e = &table.entries[inode->first + j];
      if (clip_table_lookup(&table, i, table.blob + e->name_off, e->name_len) < 0) {
        clip_table_free(&table);
        CHECK(env, napi_create_string_utf8(env, "an entry cannot be looked up", NAPI_AUTO_LENGTH, &result));
        return result;
      }
    }
  }
  clip_table_free(&table);
  CHECK(env, napi_get_null(env, &result));
  return result;
}

/* Reads layouts (an array of Float64Array span ends, each strictly increasing) into s->blobs. */
static int get_layouts(napi_env env, napi_value array, Session* s) {
  uint32_t count;
  if (napi_get_array_length(env, array, &count) != napi_ok || count > 1u << 20) {
    napi_throw_type_error(env, NULL, "clip_fuse: layouts must be an array");
    return 0;
  }
  s->blobs = calloc(count ? count : 1, sizeof *s->blobs);
  if (!s->blobs) {
    napi_throw_error(env, NULL, "clip_fuse: out of memory");
    return 0;
  }
  s->blob_count = count;
  for (uint32_t b = 0; b < count; b++) {
    napi_value element;
    napi_typedarray_type type;
    size_t length;
    void* data;
    if (napi_get_element(env, array, b, &element) != napi_ok ||
        napi_get_typedarray_info(env, element, &type, &length, &data, NULL, NULL) != napi_ok || type != napi_float64_array ||
        length > UINT32_MAX) {
      napi_throw_type_error(env, NULL, "clip_fuse: each layout must be a Float64Array");
      return 0;
    }
    BlobLayout* blob = &s->blobs[b];
    blob->ends = malloc((length ? length : 1) * sizeof *blob->ends);
    blob->entries = calloc(length ? length : 1, sizeof *blob->entries);
    if (!blob->ends || !blob->entries) {
      napi_throw_error(env, NULL, "clip_fuse: out of memory");
      return 0;
    }
    const double* ends = data;
    for (size_t i = 0; i < length; i++) {
      double previous = i ? ends[i - 1] : 0;
      if (!(ends[i] > previous && ends[i] <= 9007199254740992.0)) {
        napi_throw_range_error(env, NULL, "clip_fuse: span ends must increase");
        return 0;
      }
      blob->ends[i] = (uint64_t)ends[i];
    }
    blob->count = (uint32_t)length;
  }
  return 1;
}

/*
 * mount(table, mountPoint, options, debug, onRead, layouts, init?): a session serving
 * `mountPoint` (a directory, or /dev/fd/N for an open /dev/fuse descriptor, which is duplicated:
 * the caller keeps its own). `layouts`: the span ends of each blob, for reads served from the
 * disk cache. `init`: the INIT request an adopted connection was initialised with by another
 * process (connection()), replayed instead of waiting for one.
 */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) {
    napi_throw_type_error(env, NULL, "clip_fuse: mount needs 6 arguments");
    return NULL;
  }
  void* bytes;
  size_t length;
  void* init = NULL;
  size_t init_length = 0;
  char mount_point[4096], options[4096];
  bool debug = false;
  napi_valuetype init_type = napi_undefined;
  if (argc > 6) CHECK(env, napi_typeof(env, argv[6], &init_type));
  if (!get_bytes(env, argv[0], &bytes, &length) || !get_string(env, argv[1], mount_point, sizeof mount_point) ||
      !get_string(env, argv[2], options, sizeof options) ||
      (init_type != napi_undefined && !get_bytes(env, argv[6], &init, &init_length))) {
    return NULL;
  }
  CHECK(env, napi_get_value_bool(env, argv[3], &debug));

  Session* s = calloc(1, sizeof *s);
  if (!s) {
    napi_throw_error(env, NULL, "clip_fuse: out of memory");
    return NULL;
  }
  pthread_mutex_init(&s->lock, NULL);
  native_reads_init(s, env);
  const char* error = clip_table_load(&s->table, bytes, length);
  if (error) {
    session_free(s);
    napi_throw_error(env, "EINVAL", error);
    return NULL;
  }
  s->has_xattrs = s->table.header->xattr_count > 0;
  s->read_once = calloc(s->table.header->inode_count / 8 + 1, 1);
  if (!get_layouts(env, argv[5], s)) {
    session_free(s);
    return NULL;
  }

  char* args_v[] = {"clip", "-o", options, debug ? "-d" : NULL, NULL};
  struct fuse_args args = FUSE_ARGS_INIT(debug ? 4 : 3, args_v);
  s->se = fuse_session_new(&args, &OPS, sizeof OPS, s);
  if (!s->se) {
    session_free(s);
    napi_throw_error(env, "EINVAL", "clip_fuse: libfuse refused the mount options");
    return NULL;
  }
  int adopted = -1;
  unsigned fd_number;
  int consumed = 0;
  if (sscanf(mount_point, "/dev/fd/%u%n", &fd_number, &consumed) == 1 && mount_point[consumed] == '\0') {
    adopted = fcntl((int)fd_number, F_DUPFD_CLOEXEC, 3);
    if (adopted < 0) {
      session_free(s);
      napi_throw_error(env, "EBADF", "clip_fuse: the /dev/fuse descriptor to adopt is not open");
      return NULL;
    }
    snprintf(mount_point, sizeof mount_point, "/dev/fd/%d", adopted);
  }
  if (fuse_session_mount(s->se, mount_point) != 0) {
    if (adopted >= 0) close(adopted);
    session_free(s);
    napi_throw_error(env, "EMOUNT", "clip_fuse: mount failed (see stderr)");
    return NULL;
  }
  int loop_error = clip_loop_init(&s->loop, s->se, loop_ended, s);
  if (loop_error == 0) s->loop_ready = 1;
  if (loop_error == 0 && init) loop_error = clip_loop_adopt_init(&s->loop, init, init_length);
  if (loop_error != 0) {
    if (adopted < 0) fuse_session_unmount(s->se);
    session_free(s);
    napi_throw_error(env, "EINVAL", init ? "clip_fuse: the INIT request to adopt is malformed" : "clip_fuse: cannot prepare the request loop");
    return NULL;
  }

  napi_value name, handle;
  CHECK(env, napi_create_string_utf8(env, "clip_fuse.read", NAPI_AUTO_LENGTH, &name));
  if (napi_create_threadsafe_function(env, argv[4], NULL, name, 0, 1, NULL, NULL, s, call_js, &s->tsfn) != napi_ok) {
    if (adopted < 0) fuse_session_unmount(s->se);
    session_free(s);
    napi_throw_error(env, NULL, "clip_fuse: cannot create the read callback");
    return NULL;
  }
  s->refs = 2; /* the loop and the JavaScript handle */
  CHECK(env, napi_create_object(env, &handle));
  if (napi_wrap(env, handle, s, finalize_handle, NULL, NULL) != napi_ok) {
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    if (adopted < 0) fuse_session_unmount(s->se);
    session_free(s);
    napi_throw_error(env, NULL, "clip_fuse: cannot wrap the session");
    return NULL;
  }
  /* The loop threads take no signals: Node.js handles them on its own thread. */
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  int started = clip_loop_start(&s->loop);
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  if (started != 0) {
    close_session(s);
    if (adopted < 0) fuse_session_unmount(s->se);
    s->refs--; /* no loop thread; the handle's finalizer drops the last reference */
    napi_throw_error(env, NULL, "clip_fuse: cannot start the loop thread");
    return NULL;
  }
  return handle;
}

/* Finds and frees the slot of a read JavaScript answers; NULL when the id is stale. */
static fuse_req_t claim(Session* s, double id, uint32_t* size) {
  pthread_mutex_lock(&s->lock);
  Slot* slot = slot_find(s, id);
  fuse_req_t req = NULL;
  if (slot) {
    *size = slot->size;
    req = slot_release(s, slot);
  }
  pthread_mutex_unlock(&s->lock);
  return req;
}

/* reply(session, id, data): answers a read; false when the id is unknown or already answered. */
static napi_value js_reply(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "clip_fuse: reply needs 3 arguments");
    return NULL;
  }
  Session* s = unwrap_session(env, argv[0]);
  double id;
  void* data;
  size_t length;
  if (!s || napi_get_value_double(env, argv[1], &id) != napi_ok || !get_bytes(env, argv[2], &data, &length)) return NULL;
  uint32_t size = 0;
  fuse_req_t req = claim(s, id, &size);
  if (req) {
    fuse_reply_buf(req, data, length < size ? length : size);
    drop_ref(s);
  }
  CHECK(env, napi_get_boolean(env, req != NULL, &result));
  return result;
}

/* replyError(session, id, errno): answers a read with an error. */
static napi_value js_reply_error(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Session* s = argc < 3 ? NULL : unwrap_session(env, argv[0]);
  double id;
  int32_t error;
  if (!s || napi_get_value_double(env, argv[1], &id) != napi_ok || napi_get_value_int32(env, argv[2], &error) != napi_ok) return NULL;
  if (error <= 0 || error > 4095) error = EIO;
  uint32_t size = 0;
  fuse_req_t req = claim(s, id, &size);
  if (req) {
    fuse_reply_err(req, error);
    drop_ref(s);
  }
  CHECK(env, napi_get_boolean(env, req != NULL, &result));
  return result;
}

/* close(session): no more calls into JavaScript (later reads answer EIO); the loop ends with the
 * kernel connection, once the mount is detached and the last open file is closed. */
static napi_value js_close(napi_env env, napi_callback_info info) {
  Session* s = session_argument(env, info);
  if (!s) return NULL;
  close_session(s);
  return NULL;
}

/*
 * publishDiskEntry(session, blob, span, path, blockBytes, length, dataOffset, digests): the span's
 * bytes are in this disk cache entry, whose header JavaScript checked; the server reads it itself
 * from now on (checking each block). False when refused (a mismatch with the layout, no file).
 */
static napi_value js_publish(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8], result;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Session* s = argc < 8 ? NULL : unwrap_session(env, argv[0]);
  uint32_t blob_index, span, block_bytes;
  double length, data_offset;
  char path[4096];
  void* digests;
  size_t digests_length;
  if (!s || napi_get_value_uint32(env, argv[1], &blob_index) != napi_ok || napi_get_value_uint32(env, argv[2], &span) != napi_ok ||
      !get_string(env, argv[3], path, sizeof path) || napi_get_value_uint32(env, argv[4], &block_bytes) != napi_ok ||
      napi_get_value_double(env, argv[5], &length) != napi_ok || napi_get_value_double(env, argv[6], &data_offset) != napi_ok ||
      !get_bytes(env, argv[7], &digests, &digests_length)) {
    return NULL;
  }
  int accepted = 0;
  BlobLayout* blob = blob_index < s->blob_count ? &s->blobs[blob_index] : NULL;
  uint64_t span_length = blob && span < blob->count ? blob->ends[span] - (span ? blob->ends[span - 1] : 0) : 0;
  if (span_length > 0 && length == (double)span_length && block_bytes >= 4096 && block_bytes <= (16u << 20) &&
      data_offset >= 0 && data_offset <= 9007199254740992.0 && digests_length == 32 * ((span_length + block_bytes - 1) / block_bytes)) {
    DiskEntry* e = calloc(1, sizeof *e);
    unsigned char* copy = malloc(digests_length);
    int fd = e && copy ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd >= 0) {
      memcpy(copy, digests, digests_length);
      *e = (DiskEntry){fd, block_bytes, span_length, (uint64_t)data_offset, copy, 1};
      pthread_mutex_lock(&s->lock);
      if (s->closed) {
        pthread_mutex_unlock(&s->lock);
        close(fd);
        free(copy);
        free(e);
        CHECK(env, napi_get_boolean(env, false, &result));
        return result;
      }
      DiskEntry* old = blob->entries[span];
      blob->entries[span] = e;
      if (old) {
        entry_unref(old);
      } else {
        if (s->published_count == MAX_PUBLISHED) {
          /* The oldest publication gives way (its descriptor is closed once no read uses it). */
          uint64_t oldest = s->published[s->published_head];
          s->published_head = (s->published_head + 1) % MAX_PUBLISHED;
          s->published_count--;
          BlobLayout* victim = &s->blobs[oldest >> 32];
          DiskEntry** slot = &victim->entries[(uint32_t)oldest];
          if (*slot) entry_unref(*slot);
          *slot = NULL;
        }
        s->published[(s->published_head + s->published_count) % MAX_PUBLISHED] = (uint64_t)blob_index << 32 | span;
        s->published_count++;
      }
      pthread_mutex_unlock(&s->lock);
      accepted = 1;
    } else {
      free(e);
      free(copy);
    }
  }
  CHECK(env, napi_get_boolean(env, accepted, &result));
  return result;
}

/*
 * detach(session): stops reading requests (docs/node.md, "Handover"): each loop thread finishes
 * the request it read and ends; requests still queued stay in the kernel for the process that
 * serves the connection next. Reads already handed to JavaScript are still answered. Nothing is
 * unmounted. True when every loop thread ended within 2 s.
 */
static napi_value js_detach(napi_env env, napi_callback_info info) {
  napi_value result;
  Session* s = session_argument(env, info);
  if (!s) return NULL;
  CHECK(env, napi_get_boolean(env, clip_loop_stop(&s->loop, 2000) == 0, &result));
  return result;
}

/*
 * connection(session): { fd, init }: the session's /dev/fuse descriptor (the session's own: pass
 * it on, never close it) and the INIT request the connection was initialised with (null before
 * the kernel sent it), which a process adopting the connection gives mount().
 */
static napi_value js_connection(napi_env env, napi_callback_info info) {
  napi_value result, fd, init;
  Session* s = session_argument(env, info);
  if (!s) return NULL;
  CHECK(env, napi_create_object(env, &result));
  CHECK(env, napi_create_int32(env, s->loop.fd, &fd));
  CHECK(env, napi_set_named_property(env, result, "fd", fd));
  pthread_mutex_lock(&s->loop.lock);
  unsigned char copy[CLIP_INIT_MAX];
  size_t length = s->loop.init_len;
  memcpy(copy, s->loop.init, length);
  pthread_mutex_unlock(&s->loop.lock);
  if (length == 0) {
    CHECK(env, napi_get_null(env, &init));
  } else {
    void* data;
    napi_value buffer;
    CHECK(env, napi_create_arraybuffer(env, length, &data, &buffer));
    memcpy(data, copy, length);
    CHECK(env, napi_create_typedarray(env, napi_uint8_array, length, buffer, 0, &init));
  }
  CHECK(env, napi_set_named_property(env, result, "init", init));
  return result;
}

/* notifyResend(session): 0 when the kernel queued again every request taken but not answered, else an errno. */
static napi_value js_notify_resend(napi_env env, napi_callback_info info) {
  napi_value result;
  Session* s = session_argument(env, info);
  if (!s) return NULL;
  CHECK(env, napi_create_int32(env, clip_notify_resend(s->loop.fd), &result));
  return result;
}

/* The blob and span named by argv[1] and argv[2], or NULL (with an exception) when there is none. */
static BlobLayout* get_span(napi_env env, Session* s, napi_value* argv, uint32_t* span) {
  uint32_t blob_index;
  if (napi_get_value_uint32(env, argv[1], &blob_index) != napi_ok || napi_get_value_uint32(env, argv[2], span) != napi_ok ||
      blob_index >= s->blob_count || *span >= s->blobs[blob_index].count) {
    napi_throw_range_error(env, NULL, "clip_fuse: no such span");
    return NULL;
  }
  return &s->blobs[blob_index];
}

/*
 * publishMemorySpan(session, blob, span, data): the span's verified bytes are this Buffer of the
 * memory tier; the server answers reads of the span from it (holding a reference) until
 * withdrawMemorySpan. False when refused (the length is not the span's, the session is closed).
 */
static napi_value js_publish_memory(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], result;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Session* s = argc < 4 ? NULL : unwrap_session(env, argv[0]);
  uint32_t span;
  BlobLayout* blob = s ? get_span(env, s, argv, &span) : NULL;
  void* data;
  size_t length;
  if (!blob || !get_bytes(env, argv[3], &data, &length)) return NULL;
  uint64_t span_length = blob->ends[span] - (span ? blob->ends[span - 1] : 0);
  pthread_mutex_lock(&s->lock);
  int closed = s->closed;
  pthread_mutex_unlock(&s->lock);
  napi_ref ref = NULL;
  int accepted = !closed && length == span_length && napi_create_reference(env, argv[3], 1, &ref) == napi_ok;
  MemSpan old = {0};
  if (accepted) {
    pthread_rwlock_wrlock(&s->mem_lock);
    if (!blob->memory) blob->memory = calloc(blob->count, sizeof *blob->memory);
    if (blob->memory) {
      old = blob->memory[span];
      blob->memory[span] = (MemSpan){ref, data};
    }
    accepted = blob->memory != NULL;
    pthread_rwlock_unlock(&s->mem_lock);
    if (!accepted) napi_delete_reference(env, ref);
  }
  if (old.data) napi_delete_reference(env, old.ref);
  CHECK(env, napi_get_boolean(env, accepted, &result));
  return result;
}

/* withdrawMemorySpan(session, blob, span): the span left the memory tier; its Buffer is released. */
static napi_value js_withdraw_memory(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Session* s = argc < 3 ? NULL : unwrap_session(env, argv[0]);
  uint32_t span;
  BlobLayout* blob = s ? get_span(env, s, argv, &span) : NULL;
  if (blob) memory_withdraw(s, blob, span);
  return NULL;
}

/*
 * takeReads(session): the reads served natively since the last call, as a Float64Array of
 * (inode index, offset, length, microseconds, disk parts) per read; see LoggedRead. When it
 * returns any, JavaScript is not told of the next ones: it must call again (it does after
 * LOG_POLL_MS), until a call returns none.
 */
static napi_value js_take_reads(napi_env env, napi_callback_info info) {
  napi_value buffer, result;
  Session* s = session_argument(env, info);
  if (!s) return NULL;
  LoggedRead taken[READ_LOG_SIZE];
  pthread_mutex_lock(&s->log_lock);
  uint32_t n = s->log_count;
  if (n) memcpy(taken, s->log, n * sizeof *taken);
  s->log_count = 0;
  /* Reads were taken: JavaScript takes again shortly by itself, so later reads need not wake it. */
  s->log_posted = n > 0;
  pthread_mutex_unlock(&s->log_lock);
  double* out;
  CHECK(env, napi_create_arraybuffer(env, n * 5 * sizeof(double), (void**)&out, &buffer));
  for (uint32_t i = 0; i < n; i++) {
    out[5 * i] = taken[i].inode;
    out[5 * i + 1] = (double)taken[i].offset;
    out[5 * i + 2] = taken[i].length;
    out[5 * i + 3] = taken[i].micros;
    out[5 * i + 4] = taken[i].disk_parts;
  }
  CHECK(env, napi_create_typedarray(env, napi_float64_array, n * 5, buffer, 0, &result));
  return result;
}

/* counters(session): how many requests of each kind the server answered (tests, benchmarks). */
static napi_value js_counters(napi_env env, napi_callback_info info) {
  napi_value result, value;
  Session* s = session_argument(env, info);
  if (!s) return NULL;
  CHECK(env, napi_create_object(env, &result));
  for (int i = 0; i < C_COUNT; i++) {
    CHECK(env, napi_create_double(env, (double)__atomic_load_n(&s->counters[i], __ATOMIC_RELAXED), &value));
    CHECK(env, napi_set_named_property(env, result, COUNTER_NAMES[i], value));
  }
  /* Reads handed to JavaScript and not answered yet: a process handing its connections on waits for them. */
  pthread_mutex_lock(&s->lock);
  uint32_t pending = s->slot_count - s->free_count;
  pthread_mutex_unlock(&s->lock);
  CHECK(env, napi_create_uint32(env, pending, &value));
  CHECK(env, napi_set_named_property(env, result, "pendingReads", value));
  /* The loop's polling after answers (clip_fuse_loop.c, spin_for_request). */
  CHECK(env, napi_create_double(env, (double)__atomic_load_n(&s->loop.spins, __ATOMIC_RELAXED), &value));
  CHECK(env, napi_set_named_property(env, result, "spins", value));
  CHECK(env, napi_create_double(env, (double)__atomic_load_n(&s->loop.spins_found, __ATOMIC_RELAXED), &value));
  CHECK(env, napi_set_named_property(env, result, "spinsFound", value));
  return result;
}

/*
 * openMount(mountPoint, options): opens /dev/fuse and mounts it read-only at `mountPoint` itself
 * (mount(2), so root or CAP_SYS_ADMIN), returning the descriptor. What a process that keeps
 * connections across restarts does; mount() then serves it as /dev/fd/N.
 */
static napi_value js_open_mount(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char mount_point[4096], extra[1024], data[1200];
  if (argc < 2 || !get_string(env, argv[0], mount_point, sizeof mount_point) || !get_string(env, argv[1], extra, sizeof extra)) return NULL;
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    napi_throw_error(env, "EOPEN", strerror(errno));
    return NULL;
  }
  snprintf(data, sizeof data, "fd=%d,rootmode=40000,user_id=%u,group_id=%u%s%s", fd, (unsigned)getuid(), (unsigned)getgid(),
           extra[0] ? "," : "", extra);
  if (mount("clip", mount_point, "fuse.clip", MS_RDONLY | MS_NOSUID | MS_NODEV, data) != 0) {
    int error = errno;
    close(fd);
    napi_throw_error(env, "EMOUNT", strerror(error));
    return NULL;
  }
  CHECK(env, napi_create_int32(env, fd, &result));
  return result;
}

NAPI_MODULE_INIT() {
  static const struct {
    const char* name;
    napi_callback fn;
  } functions[] = {{"validate", js_validate}, {"mount", js_mount},     {"reply", js_reply},        {"replyError", js_reply_error},
                   {"close", js_close},       {"counters", js_counters}, {"openMount", js_open_mount},
                   {"publishDiskEntry", js_publish}, {"publishMemorySpan", js_publish_memory},
                   {"withdrawMemorySpan", js_withdraw_memory}, {"takeReads", js_take_reads},
                   {"detach", js_detach}, {"connection", js_connection}, {"notifyResend", js_notify_resend}};
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].fn, NULL, &fn) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, functions[i].name, fn) != napi_ok) return NULL;
  }
  return exports;
}
