/* See clip_fuse_loop.h. */
#define FUSE_USE_VERSION 312
#include "clip_fuse_loop.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* Threads per connection at most: requests are answered without blocking (reads that need a
 * fetch are handed to JavaScript), so a few threads keep up; more serve parallel disk reads. */
#define MAX_THREADS 16
/* libfuse's own buffer size: the kernel refuses reads into a buffer smaller than max_write + header. */
#define BUFFER_BYTES ((256u << 12) + 4096u)
/* Not in Debian bookworm's linux/fuse.h (7.38); the kernel's uapi header of 6.9 (7.40). */
#ifndef FUSE_NOTIFY_RESEND
#define FUSE_NOTIFY_RESEND 7
#endif
/* The unique id of a replayed INIT: even (not an interrupt), far above any id the kernel hands out. */
#define REPLAYED_INIT_UNIQUE ((uint64_t)1 << 62)

int clip_loop_init(ClipLoop* loop, struct fuse_session* se, void (*on_end)(void*), void* context) {
  memset(loop, 0, sizeof *loop);
  loop->se = se;
  loop->fd = fuse_session_fd(se);
  loop->on_end = on_end;
  loop->context = context;
  loop->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (loop->stop_fd < 0) return errno;
  /* Non-blocking: another process reading the same connection may take the request poll() saw. */
  int flags = fcntl(loop->fd, F_GETFL);
  if (flags < 0 || fcntl(loop->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    int error = errno;
    close(loop->stop_fd);
    loop->stop_fd = -1;
    return error;
  }
  pthread_mutex_init(&loop->lock, NULL);
  pthread_cond_init(&loop->ended, NULL);
  return 0;
}

static void keep_init(ClipLoop* loop, const unsigned char* request, size_t length) {
  if (length > CLIP_INIT_MAX) return;
  pthread_mutex_lock(&loop->lock);
  memcpy(loop->init, request, length);
  loop->init_len = length;
  pthread_mutex_unlock(&loop->lock);
}

int clip_loop_adopt_init(ClipLoop* loop, const unsigned char* request, size_t length) {
  struct fuse_in_header header;
  if (length < sizeof header + 8 || length > CLIP_INIT_MAX) return EINVAL;
  memcpy(&header, request, sizeof header);
  if (header.opcode != FUSE_INIT || header.len != length) return EINVAL;
  keep_init(loop, request, length);
  /* libfuse may read any part of a request as an aligned struct: give it an aligned copy. */
  uint64_t copy[CLIP_INIT_MAX / 8];
  memcpy(copy, request, length);
  header.unique = REPLAYED_INIT_UNIQUE;
  memcpy(copy, &header, sizeof header);
  struct fuse_buf buf = {.size = length, .mem = copy};
  fuse_session_process_buf(loop->se, &buf);
  return 0;
}

/*
 * Each thread waits in an epoll set of its own holding the connection with EPOLLEXCLUSIVE: a new
 * request wakes one idle thread, not all of them (with poll(), every request woke every idle
 * thread, up to 16 per mount, and on 2 cores that stole the CPU the inflate threads need), and the
 * stop eventfd, which wakes them all. -1 on failure.
 */
static int thread_epoll(ClipLoop* loop) {
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return -1;
  struct epoll_event request = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u32 = 0};
  struct epoll_event stop = {.events = EPOLLIN, .data.u32 = 1};
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, loop->fd, &request) != 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, loop->stop_fd, &stop) != 0) {
    close(epoll_fd);
    return -1;
  }
  return epoll_fd;
}

/* The next request into buf: its length, 0 when the loop should end, or -errno. */
static ssize_t next_request(ClipLoop* loop, int epoll_fd, unsigned char* buf) {
  for (;;) {
    struct epoll_event events[2];
    int ready = epoll_wait(epoll_fd, events, 2, -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    /* Stop first: a request still queued is left to the next reader. */
    for (int i = 0; i < ready; i++) {
      if (events[i].data.u32 == 1) return 0;
    }
    ssize_t n = read(loop->fd, buf, BUFFER_BYTES);
    if (n > 0) return n;
    if (n == 0) return 0;
    /* EAGAIN: another reader took it; ENOENT: interrupted before it was read. */
    if (errno == EAGAIN || errno == EINTR || errno == ENOENT) continue;
    /* ENODEV: the mount is gone (unmounted, or the connection aborted). */
    return errno == ENODEV ? 0 : -errno;
  }
}

static void* loop_thread(void* arg);

/* Under loop->lock. */
static int spawn(ClipLoop* loop) {
  pthread_t thread;
  loop->threads++;
  loop->idle++;
  int error = pthread_create(&thread, NULL, loop_thread, loop);
  if (error != 0) {
    loop->threads--;
    loop->idle--;
    return error;
  }
  pthread_detach(thread);
  return 0;
}

static void* loop_thread(void* arg) {
  ClipLoop* loop = arg;
  unsigned char* buf = malloc(BUFFER_BYTES);
  int epoll_fd = buf ? thread_epoll(loop) : -1;
  for (;;) {
    ssize_t n = epoll_fd >= 0 ? next_request(loop, epoll_fd, buf) : 0;
    if (n <= 0) break;
    pthread_mutex_lock(&loop->lock);
    /* Every thread busy: one more waits for the next request (new threads inherit the blocked signals). */
    if (--loop->idle == 0 && loop->threads < MAX_THREADS && !loop->stopping) spawn(loop);
    pthread_mutex_unlock(&loop->lock);
    struct fuse_in_header header;
    if ((size_t)n >= sizeof header) {
      memcpy(&header, buf, sizeof header);
      if (header.opcode == FUSE_INIT) keep_init(loop, buf, (size_t)n);
    }
    struct fuse_buf request = {.size = (size_t)n, .mem = buf};
    fuse_session_process_buf(loop->se, &request);
    pthread_mutex_lock(&loop->lock);
    loop->idle++;
    pthread_mutex_unlock(&loop->lock);
  }
  free(buf);
  if (epoll_fd >= 0) close(epoll_fd);
  pthread_mutex_lock(&loop->lock);
  loop->threads--;
  loop->idle--;
  int last = loop->threads == 0;
  if (last) pthread_cond_broadcast(&loop->ended);
  void (*on_end)(void*) = last ? loop->on_end : NULL;
  void* context = loop->context;
  pthread_mutex_unlock(&loop->lock);
  /* May free the session, and the loop with it: nothing of `loop` is touched after this. */
  if (on_end) on_end(context);
  return NULL;
}

int clip_loop_start(ClipLoop* loop) {
  pthread_mutex_lock(&loop->lock);
  int error = spawn(loop);
  pthread_mutex_unlock(&loop->lock);
  return error;
}

unsigned clip_loop_stop(ClipLoop* loop, int wait_ms) {
  pthread_mutex_lock(&loop->lock);
  if (!loop->stopping) {
    loop->stopping = 1;
    uint64_t one = 1;
    if (write(loop->stop_fd, &one, sizeof one) < 0) { /* the eventfd cannot overflow at 1 */
    }
  }
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += wait_ms / 1000;
  deadline.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  while (loop->threads > 0 && pthread_cond_timedwait(&loop->ended, &loop->lock, &deadline) == 0) {
  }
  unsigned running = loop->threads;
  pthread_mutex_unlock(&loop->lock);
  return running;
}

void clip_loop_destroy(ClipLoop* loop) {
  if (loop->stop_fd >= 0) close(loop->stop_fd);
  loop->stop_fd = -1;
  pthread_cond_destroy(&loop->ended);
  pthread_mutex_destroy(&loop->lock);
}

int clip_notify_resend(int fd) {
  struct fuse_out_header header = {.len = sizeof header, .error = FUSE_NOTIFY_RESEND, .unique = 0};
  return write(fd, &header, sizeof header) == (ssize_t)sizeof header ? 0 : errno;
}
