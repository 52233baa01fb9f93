/*
 * The FUSE floor of this machine: the least a FUSE server can do to answer a read from memory.
 * libfuse3's low-level API and its own multi-threaded loop, one file (`file`, read into memory at
 * start) in a read-only root, long timeouts, FOPEN_KEEP_CACHE: what is left of a read's latency is
 * the kernel's round trip to a server thread and back. bench/measure-fuse.ts reads it as it reads
 * clip's memory tier, in the same run.
 *
 * usage: fuse-floor <file> <mountpoint>   (foreground; SIGTERM unmounts and exits)
 */
#define FUSE_USE_VERSION 34
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char NAME[] = "file";
static char* data;
static off_t size;

static void attributes(fuse_ino_t ino, struct stat* st) {
  memset(st, 0, sizeof *st);
  st->st_ino = ino;
  if (ino == FUSE_ROOT_ID) {
    st->st_mode = S_IFDIR | 0555;
    st->st_nlink = 2;
  } else {
    st->st_mode = S_IFREG | 0444;
    st->st_nlink = 1;
    st->st_size = size;
  }
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (parent != FUSE_ROOT_ID || strcmp(name, NAME) != 0) return (void)fuse_reply_err(req, ENOENT);
  struct fuse_entry_param entry = {.ino = 2, .attr_timeout = 86400, .entry_timeout = 86400};
  attributes(2, &entry.attr);
  fuse_reply_entry(req, &entry);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  (void)fi;
  if (ino != FUSE_ROOT_ID && ino != 2) return (void)fuse_reply_err(req, ENOENT);
  struct stat st;
  attributes(ino, &st);
  fuse_reply_attr(req, &st, 86400);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  if (ino != 2) return (void)fuse_reply_err(req, EISDIR);
  fi->keep_cache = 1;
  fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t length, off_t off, struct fuse_file_info* fi) {
  (void)ino;
  (void)fi;
  if (off >= size) return (void)fuse_reply_buf(req, NULL, 0);
  if ((off_t)length > size - off) length = (size_t)(size - off);
  fuse_reply_buf(req, data + off, length);
}

static const struct fuse_lowlevel_ops OPERATIONS = {.lookup = op_lookup, .getattr = op_getattr, .open = op_open, .read = op_read};

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: fuse-floor <file> <mountpoint>\n");
    return 2;
  }
  int fd = open(argv[1], O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !(data = malloc(st.st_size > 0 ? (size_t)st.st_size : 1))) {
    perror(argv[1]);
    return 1;
  }
  for (size = 0; size < st.st_size;) {
    ssize_t n = pread(fd, data + size, (size_t)(st.st_size - size), size);
    if (n <= 0) {
      perror(argv[1]);
      return 1;
    }
    size += n;
  }
  close(fd);
  char* args[] = {argv[0], "-oro,fsname=fuse-floor"};
  struct fuse_args fuse_args = FUSE_ARGS_INIT(2, args);
  struct fuse_session* se = fuse_session_new(&fuse_args, &OPERATIONS, sizeof OPERATIONS, NULL);
  if (!se || fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, argv[2]) != 0) return 1;
  fprintf(stderr, "ready\n");
  struct fuse_loop_config config = {.clone_fd = 0, .max_idle_threads = 10};
  int result = fuse_session_loop_mt(se, &config);
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  free(data);
  return result == 0 ? 0 : 1;
}
