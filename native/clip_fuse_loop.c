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
/* How long a thread that answered a request polls for the next one (spin_for_request). */
#define SPIN_MICROS 50
/* Spin only while this share (of 1024) of recent spins found a request; else one answer in SPIN_PROBE_EVERY. */
#define SPIN_PAYS_PER_1024 768u
#define SPIN_PROBE_EVERY 8u
/* libfuse's own buffer size: the kernel refuses reads into a buffer smaller than max_write + header. */
#define BUFFER_BYTES ((256u << 12) + 4096u)
/* Not in Debian bookworm's linux/fuse.h (7.38); the kernel's uapi header of 6.9 (7.40). */
#ifndef FUSE_NOTIFY_RESEND
#define FUSE_NOTIFY_RESEND 7
#endif
/* The unique id of a replayed INIT: even (not an interrupt), far above any id the kernel hands out. */
#define REPLAYED_INIT_UNIQUE ((uint64_t)1 << 62)

static int loop_epoll(ClipLoop* loop);

int clip_loop_init(ClipLoop* loop, struct fuse_session* se, void (*on_end)(void*), void* context) {
  memset(loop, 0, sizeof *loop);
  loop->epoll_fd = -1;
  loop->se = se;
  loop->fd = fuse_session_fd(se);
  loop->on_end = on_end;
  loop->context = context;
  loop->spin_hit_rate = 1024; /* spin from the start: most clients begin with a run of requests */
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
  loop->epoll_fd = loop_epoll(loop);
  if (loop->epoll_fd < 0) {
    int error = errno;
    fcntl(loop->fd, F_SETFL, flags);
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
 * Every thread waits in the loop's one epoll set, which wakes one waiter per event (epoll_wait
 * waits exclusively). The connection is in it with EPOLLONESHOT, re-armed by the thread that got
 * it once it has read the request: so a request wakes exactly one idle thread. (The kernel's FUSE
 * device wakes its pollers without event flags, which makes EPOLLEXCLUSIVE wake them all, and a
 * level-triggered entry would wake a second waiter for the same request; on 2 cores those idle
 * wake-ups doubled the latency of a read served from memory.) The stop eventfd is level-triggered:
 * it wakes one thread after another until all have ended.
 */
static int loop_epoll(ClipLoop* loop) {
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return -1;
  struct epoll_event request = {.events = EPOLLIN | EPOLLONESHOT, .data.u32 = 0};
  struct epoll_event stop = {.events = EPOLLIN, .data.u32 = 1};
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, loop->fd, &request) != 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, loop->stop_fd, &stop) != 0) {
    close(epoll_fd);
    return -1;
  }
  return epoll_fd;
}

/* Lets the next request wake a thread again. */
static void rearm(ClipLoop* loop) {
  struct epoll_event request = {.events = EPOLLIN | EPOLLONESHOT, .data.u32 = 0};
  epoll_ctl(loop->epoll_fd, EPOLL_CTL_MOD, loop->fd, &request);
}

/* Whether the request this thread is processing was handed elsewhere rather than answered. */
static __thread int handed_off;

void clip_loop_handed_off(void) { handed_off = 1; }

/* The one thread of the process polling for requests, if any (see spin_for_request). */
static int spinning;

static int64_t elapsed_micros(const struct timespec* since) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)(now.tv_sec - since->tv_sec) * 1000000 + (now.tv_nsec - since->tv_nsec) / 1000;
}

/*
 * After answering a request, a thread polls the descriptor for SPIN_MICROS before it sleeps, one
 * thread in the process at a time: a client that asks one thing after another (find, a 4 KiB
 * random reader) then finds a thread running, and the kernel need not wake one on another CPU,
 * which on a virtual machine costs more than answering (docs/fuse.md).
 * Only while it pays: a spin that finds nothing burns a CPU the client may need for its own work
 * between requests (an interpreter importing modules found nothing in half of its spins and ran
 * slower than with none; docs/fuse.md), so a loop spins only while at least SPIN_PAYS_PER_1024 of
 * its recent spins found a request; otherwise one answer in SPIN_PROBE_EVERY still spins, to notice
 * when a quick client comes back.
 * Not after a read handed to JavaScript: that client waits for a fetch, not for us. The epoll set
 * stays armed, so a thread asleep still takes any request the poller does not get to first.
 * Returns the request's length, or 0 when none came (or the loop is stopping).
 */
static ssize_t spin_for_request(ClipLoop* loop, unsigned char* buf) {
  int expected = 0;
  if (!__atomic_compare_exchange_n(&spinning, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return 0;
  /* The loop's spin state is only touched by the one spinning thread. */
  if (loop->spin_hit_rate < SPIN_PAYS_PER_1024 && ++loop->answers_unspun < SPIN_PROBE_EVERY) {
    __atomic_store_n(&spinning, 0, __ATOMIC_RELEASE);
    return 0;
  }
  loop->answers_unspun = 0;
  struct timespec started;
  clock_gettime(CLOCK_MONOTONIC, &started);
  ssize_t n = 0;
  while (!__atomic_load_n(&loop->stopping, __ATOMIC_ACQUIRE)) {
    n = read(loop->fd, buf, BUFFER_BYTES);
    if (n > 0) break;
    n = 0;
    if ((errno != EAGAIN && errno != ENOENT && errno != EINTR) || elapsed_micros(&started) > SPIN_MICROS) break;
  }
  /* A moving average over about the last eight spins. */
  unsigned found = n > 0 ? 1024u : 0u;
  loop->spin_hit_rate = loop->spin_hit_rate - loop->spin_hit_rate / 8 + found / 8;
  __atomic_add_fetch(&loop->spins, 1, __ATOMIC_RELAXED);
  if (n > 0) __atomic_add_fetch(&loop->spins_found, 1, __ATOMIC_RELAXED);
  __atomic_store_n(&spinning, 0, __ATOMIC_RELEASE);
  return n;
}

/* The next request into `buf`: its length, 0 when the loop is to end, or -errno. */
static ssize_t next_request(ClipLoop* loop, unsigned char* buf, int answered) {
  if (answered) {
    ssize_t n = spin_for_request(loop, buf);
    if (n > 0) return n;
  }
  for (;;) {
    struct epoll_event events[2];
    int ready = epoll_wait(loop->epoll_fd, events, 2, -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    int request = 0, stop = 0;
    for (int i = 0; i < ready; i++) {
      if (events[i].data.u32 == 1) stop = 1;
      else request = 1;
    }
    /* Stop first: a request still queued is left to the next reader. */
    if (stop) {
      if (request) rearm(loop);
      return 0;
    }
    ssize_t n = read(loop->fd, buf, BUFFER_BYTES);
    int error = errno;
    rearm(loop);
    if (n > 0) return n;
    if (n == 0) return 0;
    /* EAGAIN: another reader took it; ENOENT: interrupted before it was read. */
    if (error == EAGAIN || error == EINTR || error == ENOENT) continue;
    /* ENODEV: the mount is gone (unmounted, or the connection aborted). */
    return error == ENODEV ? 0 : -error;
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
  for (int answered = 0;;) {
    ssize_t n = buf ? next_request(loop, buf, answered) : 0;
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
    handed_off = 0;
    fuse_session_process_buf(loop->se, &request);
    answered = !handed_off;
    pthread_mutex_lock(&loop->lock);
    loop->idle++;
    pthread_mutex_unlock(&loop->lock);
  }
  free(buf);
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
    __atomic_store_n(&loop->stopping, 1, __ATOMIC_RELEASE);
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
  if (loop->epoll_fd >= 0) close(loop->epoll_fd);
  loop->epoll_fd = -1;
  if (loop->stop_fd >= 0) close(loop->stop_fd);
  loop->stop_fd = -1;
  pthread_cond_destroy(&loop->ended);
  pthread_mutex_destroy(&loop->lock);
}

int clip_notify_resend(int fd) {
  struct fuse_out_header header = {.len = sizeof header, .error = FUSE_NOTIFY_RESEND, .unique = 0};
  return write(fd, &header, sizeof header) == (ssize_t)sizeof header ? 0 : errno;
}
