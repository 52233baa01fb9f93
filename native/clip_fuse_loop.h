/*
 * The request loop of a clip FUSE session (clip_fuse_loop.c): our own threads instead of
 * libfuse's fuse_session_loop_mt, because a connection must be able to change hands between
 * processes (docs/node.md, "Restarts"): the loop stops reading without losing a request it read,
 * serves a descriptor another process opened and initialised, and asks the kernel to resend what
 * a dead process had read but not answered.
 */
#ifndef CLIP_FUSE_LOOP_H
#define CLIP_FUSE_LOOP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct fuse_session;

/* The longest INIT request kept for a successor (header 40 B + fuse_init_in 64 B today). */
#define CLIP_INIT_MAX 256

typedef struct {
  struct fuse_session* se;
  int fd;      /* the session's /dev/fuse descriptor (libfuse owns it) */
  int stop_fd; /* an eventfd, readable once the loop is asked to stop */
  int epoll_fd; /* what every thread waits in: the connection (one-shot) and stop_fd */
  pthread_mutex_t lock;
  pthread_cond_t ended;
  unsigned threads, idle;
  int stopping;
  unsigned char init[CLIP_INIT_MAX]; /* the connection's INIT request, as the kernel sent it */
  size_t init_len;
  unsigned spin_hit_rate;         /* of this loop's recent spins, the share (of 1024) that found a request */
  unsigned answers_unspun;        /* answers since the last spin while spinning does not pay */
  uint64_t spins, spins_found;    /* spins made, and those that found a request (counters) */
  void (*on_end)(void* context); /* called once, by the last thread to end */
  void* context;
} ClipLoop;

/* Prepares the loop of `se` (the descriptor set non-blocking). 0, or an errno. */
int clip_loop_init(ClipLoop* loop, struct fuse_session* se, void (*on_end)(void*), void* context);

/*
 * Feeds libfuse the INIT request the connection was initialised with (by another process), so
 * that the session negotiates as the kernel did; its answer goes nowhere (the kernel refuses an
 * answer to a request it never sent, which libfuse ignores). 0, or an errno (EINVAL: not an INIT).
 */
int clip_loop_adopt_init(ClipLoop* loop, const unsigned char* request, size_t length);

/* Starts the first thread (more start while every thread is busy, up to 16). 0, or an errno. */
int clip_loop_start(ClipLoop* loop);

/*
 * Stops reading requests: each thread finishes the request it read, then ends; what is left in
 * the kernel's queue stays there for the next reader. Waits up to `wait_ms` for the threads to
 * end; returns how many are still running.
 */
unsigned clip_loop_stop(ClipLoop* loop, int wait_ms);

/*
 * Called by a request handler on a loop thread when it handed the request elsewhere (a read
 * parked for JavaScript) instead of answering it: the thread then does not poll for the next one.
 */
void clip_loop_handed_off(void);

/* Frees what clip_loop_init made (after the last thread ended). */
void clip_loop_destroy(ClipLoop* loop);

/*
 * FUSE_NOTIFY_RESEND (Linux 6.9, protocol 7.40): the kernel queues again every request some
 * reader of the connection took but did not answer. 0, or an errno (EINVAL: the kernel is older).
 */
int clip_notify_resend(int fd);

#endif
