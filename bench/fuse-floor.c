/*
 * The FUSE floor of this machine: the least a FUSE server can do. libfuse3's low-level API and its
 * own multi-threaded loop, everything it answers held in memory, and the kernel caching clip asks
 * for (long timeouts, negative entries, READDIRPLUS always, zero-message opendir, cached
 * listings, FOPEN_KEEP_CACHE, no extended attributes): what is left of a request's latency is
 * the kernel's round trip to a server thread and back. bench/measure-fuse.ts and
 * bench/measure-python.ts run the same workloads against it and against clip, in the same run.
 *
 * usage: fuse-floor <file> <mountpoint>   serves <file> read into memory, as `file`
 *        fuse-floor <dir> <mountpoint>    serves the tree under <dir>: its metadata read into
 *                                         memory at start, file data with pread (warm workloads)
 * Foreground; prints "ready" on standard error once mounted; SIGTERM unmounts and exits.
 */
#define FUSE_USE_VERSION 34
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const double FOREVER = 86400;

typedef struct {
  struct stat st;
  uint32_t first, count; /* a directory's entries */
  uint32_t parent;
  char* path;            /* on the local disk (tree mode) */
  char* target;          /* a symlink's */
  char* data;            /* file mode: the whole file */
} Node;

typedef struct {
  char* name;
  uint32_t node;
} Entry;

static Node* nodes;
static uint32_t node_count, node_capacity;
static Entry* entries;
static uint32_t entry_count, entry_capacity;
static int zero_opendir;

static void* grow(void* array, uint32_t* capacity, uint32_t needed, size_t item) {
  if (needed <= *capacity) return array;
  *capacity = needed * 2;
  void* grown = realloc(array, *capacity * item);
  if (!grown) {
    perror("fuse-floor");
    exit(1);
  }
  return grown;
}

static uint32_t add_node(const char* path, const struct stat* st, uint32_t parent) {
  nodes = grow(nodes, &node_capacity, node_count + 1, sizeof *nodes);
  Node* node = &nodes[node_count];
  memset(node, 0, sizeof *node);
  node->st = *st;
  node->st.st_ino = node_count + 1;
  node->parent = parent;
  node->path = strdup(path);
  return node_count++;
}

/* Hard links: one node per (device, inode), as clip keeps one inode number per link set. */
typedef struct {
  dev_t dev;
  ino_t ino;
  uint32_t node;
} Link;
static Link* links;
static uint32_t link_count, link_capacity;

static int64_t linked(const struct stat* st) {
  for (uint32_t i = 0; i < link_count; i++)
    if (links[i].dev == st->st_dev && links[i].ino == st->st_ino) return links[i].node;
  return -1;
}

static int by_name(const void* a, const void* b) { return strcmp(((const Entry*)a)->name, ((const Entry*)b)->name); }

/* Reads the directory `dir` (a node) and, depth first, everything under it. */
static void load_tree(uint32_t dir) {
  DIR* d = opendir(nodes[dir].path);
  if (!d) {
    perror(nodes[dir].path);
    exit(1);
  }
  uint32_t first = entry_count;
  for (struct dirent* e; (e = readdir(d));) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char* path;
    struct stat st;
    if (asprintf(&path, "%s/%s", nodes[dir].path, e->d_name) < 0 || lstat(path, &st) != 0) {
      perror(e->d_name);
      exit(1);
    }
    int64_t node = S_ISREG(st.st_mode) && st.st_nlink > 1 ? linked(&st) : -1;
    if (node < 0) {
      node = add_node(path, &st, dir);
      if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
        links = grow(links, &link_capacity, link_count + 1, sizeof *links);
        links[link_count++] = (Link){st.st_dev, st.st_ino, (uint32_t)node};
      }
      if (S_ISLNK(st.st_mode)) {
        char target[4097];
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n > 0 ? n : 0] = '\0';
        nodes[node].target = strdup(target);
      }
    }
    free(path);
    entries = grow(entries, &entry_capacity, entry_count + 1, sizeof *entries);
    entries[entry_count++] = (Entry){strdup(e->d_name), (uint32_t)node};
  }
  closedir(d);
  nodes[dir].first = first;
  nodes[dir].count = entry_count - first;
  qsort(entries + first, nodes[dir].count, sizeof *entries, by_name);
  for (uint32_t i = first; i < first + nodes[dir].count; i++) {
    uint32_t child = entries[i].node;
    if (S_ISDIR(nodes[child].st.st_mode)) load_tree(child);
  }
}

static Node* node_of(fuse_ino_t ino) { return ino >= 1 && ino <= node_count ? &nodes[ino - 1] : NULL; }

static void fill_entry(uint32_t node, struct fuse_entry_param* e) {
  memset(e, 0, sizeof *e);
  e->ino = node + 1;
  e->attr = nodes[node].st;
  e->attr_timeout = FOREVER;
  e->entry_timeout = FOREVER;
}

static void op_init(void* userdata, struct fuse_conn_info* conn) {
  (void)userdata;
  zero_opendir = (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0;
  conn->want |= conn->capable & (FUSE_CAP_READDIRPLUS | FUSE_CAP_CACHE_SYMLINKS | FUSE_CAP_PARALLEL_DIROPS);
  conn->want &= ~(unsigned)(FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_AUTO_INVAL_DATA);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Node* dir = node_of(parent);
  if (!dir || !S_ISDIR(dir->st.st_mode)) return (void)fuse_reply_err(req, ENOENT);
  Entry key = {(char*)name, 0};
  Entry* found = bsearch(&key, entries + dir->first, dir->count, sizeof *entries, by_name);
  struct fuse_entry_param e;
  if (found) {
    fill_entry(found->node, &e);
  } else {
    memset(&e, 0, sizeof e);
    e.entry_timeout = FOREVER;
  }
  fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  (void)fi;
  Node* node = node_of(ino);
  if (!node) return (void)fuse_reply_err(req, ENOENT);
  fuse_reply_attr(req, &node->st, FOREVER);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  Node* node = node_of(ino);
  if (!node || !node->target) return (void)fuse_reply_err(req, EINVAL);
  fuse_reply_readlink(req, node->target);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  (void)ino;
  if (zero_opendir) return (void)fuse_reply_err(req, ENOSYS);
  fi->cache_readdir = 1;
  fi->keep_cache = 1;
  fuse_reply_open(req, fi);
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus) {
  Node* dir = node_of(ino);
  if (!dir || !S_ISDIR(dir->st.st_mode)) return (void)fuse_reply_err(req, ENOTDIR);
  char* buf = malloc(size ? size : 1);
  if (!buf) return (void)fuse_reply_err(req, ENOMEM);
  size_t used = 0;
  for (uint64_t i = (uint64_t)off; i < dir->count; i++) {
    const Entry* entry = &entries[dir->first + i];
    size_t added;
    if (plus) {
      struct fuse_entry_param e;
      fill_entry(entry->node, &e);
      added = fuse_add_direntry_plus(req, buf + used, size - used, entry->name, &e, (off_t)(i + 1));
    } else {
      added = fuse_add_direntry(req, buf + used, size - used, entry->name, &nodes[entry->node].st, (off_t)(i + 1));
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

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  Node* node = node_of(ino);
  if (!node || !S_ISREG(node->st.st_mode)) return (void)fuse_reply_err(req, EISDIR);
  fi->fh = (uint64_t)-1;
  if (!node->data) {
    int fd = open(node->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return (void)fuse_reply_err(req, errno);
    fi->fh = (uint64_t)fd;
  }
  fi->keep_cache = 1;
  fi->noflush = 1;
  fuse_reply_open(req, fi);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  (void)ino;
  if (fi->fh != (uint64_t)-1) close((int)fi->fh);
  fuse_reply_err(req, 0);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t length, off_t off, struct fuse_file_info* fi) {
  Node* node = node_of(ino);
  off_t size = node ? node->st.st_size : 0;
  if (off >= size) return (void)fuse_reply_buf(req, NULL, 0);
  if ((off_t)length > size - off) length = (size_t)(size - off);
  if (node->data) return (void)fuse_reply_buf(req, node->data + off, length);
  char* buf = malloc(length);
  ssize_t n = buf ? pread((int)fi->fh, buf, length, off) : -1;
  if (n < 0) fuse_reply_err(req, buf ? errno : ENOMEM);
  else fuse_reply_buf(req, buf, (size_t)n);
  free(buf);
}

/* No extended attributes: ENOSYS, which the kernel remembers for the connection. */
static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  (void)ino, (void)name, (void)size;
  fuse_reply_err(req, ENOSYS);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  (void)ino, (void)size;
  fuse_reply_err(req, ENOSYS);
}

static const struct fuse_lowlevel_ops OPERATIONS = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .readlink = op_readlink,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .open = op_open,
    .release = op_release,
    .read = op_read,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
};

/* File mode: a root holding `file`, its bytes in memory. */
static int load_file(const char* path, const struct stat* root) {
  add_node(path, root, 0);
  nodes[0].st.st_mode = S_IFDIR | 0555;
  nodes[0].st.st_nlink = 2;
  uint32_t file = add_node(path, root, 0);
  nodes[file].st.st_mode = S_IFREG | 0444;
  char* data = malloc(root->st_size > 0 ? (size_t)root->st_size : 1);
  int fd = open(path, O_RDONLY);
  if (!data || fd < 0) return 0;
  for (off_t done = 0; done < root->st_size;) {
    ssize_t n = pread(fd, data + done, (size_t)(root->st_size - done), done);
    if (n <= 0) return 0;
    done += n;
  }
  close(fd);
  nodes[file].data = data;
  entries = grow(entries, &entry_capacity, 1, sizeof *entries);
  entries[entry_count++] = (Entry){strdup("file"), file};
  nodes[0].first = 0;
  nodes[0].count = 1;
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: fuse-floor <file or directory> <mountpoint>\n");
    return 2;
  }
  struct stat root;
  if (stat(argv[1], &root) != 0) {
    perror(argv[1]);
    return 1;
  }
  if (S_ISDIR(root.st_mode)) {
    add_node(argv[1], &root, 0);
    load_tree(0);
  } else if (!load_file(argv[1], &root)) {
    perror(argv[1]);
    return 1;
  }
  char* args[] = {argv[0], "-oro,default_permissions,fsname=fuse-floor"};
  struct fuse_args fuse_args = FUSE_ARGS_INIT(2, args);
  struct fuse_session* se = fuse_session_new(&fuse_args, &OPERATIONS, sizeof OPERATIONS, NULL);
  if (!se || fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, argv[2]) != 0) return 1;
  fprintf(stderr, "ready\n");
  struct fuse_loop_config config = {.clone_fd = 0, .max_idle_threads = 10};
  int result = fuse_session_loop_mt(se, &config);
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  return result == 0 ? 0 : 1;
}
