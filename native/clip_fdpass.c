/*
 * File descriptors across processes over unix SOCK_SEQPACKET sockets (SCM_RIGHTS), which Node.js
 * cannot do: how a node plugin hands its FUSE connections to its successor and keeps copies in
 * the holder process (docs/node.md, "Restarts"). Calls that wait (accept, recv) run on a thread
 * of their own and settle a promise, so they never block the JavaScript thread or libuv's pool.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <errno.h>
#include <node_api.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* One message carries at most this many bytes and descriptors; more is refused, not truncated. */
#define MAX_PAYLOAD 65536
#define MAX_FDS 16
/* A send never waits longer than this for a peer that does not read. */
#define SEND_TIMEOUT_S 10

#define CHECK(env, call)                                                      \
  do {                                                                        \
    if ((call) != napi_ok) {                                                  \
      napi_throw_error((env), NULL, "clip_fdpass: " #call " failed");        \
      return NULL;                                                            \
    }                                                                         \
  } while (0)

static napi_value throw_errno(napi_env env, const char* what, int error) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(error));
  const char* code = error == ENOENT ? "ENOENT" : error == ECONNREFUSED ? "ECONNREFUSED" : error == EACCES ? "EACCES" : "EIO";
  napi_throw_error(env, code, message);
  return NULL;
}

static int address_of(napi_env env, napi_value value, struct sockaddr_un* address) {
  size_t length = 0;
  memset(address, 0, sizeof *address);
  address->sun_family = AF_UNIX;
  if (napi_get_value_string_utf8(env, value, address->sun_path, sizeof address->sun_path, &length) != napi_ok ||
      length + 1 >= sizeof address->sun_path) {
    napi_throw_type_error(env, NULL, "clip_fdpass: a socket path shorter than 108 bytes is expected");
    return 0;
  }
  return 1;
}

static void set_send_timeout(int fd) {
  struct timeval timeout = {.tv_sec = SEND_TIMEOUT_S};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
}

/* A SEQPACKET socket bound to (listen) or connected to (connect) the path in argv[0]: its descriptor, or -1 with an exception. */
static int open_socket(napi_env env, napi_callback_info info, int listening) {
  size_t argc = 1;
  napi_value argv[1];
  struct sockaddr_un address;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || !address_of(env, argv[0], &address)) return -1;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, "socket", errno);
    return -1;
  }
  /* chmod after bind, not umask around it: umask is the whole process's, and other threads create files. */
  int ok = listening ? bind(fd, (struct sockaddr*)&address, sizeof address) == 0 && chmod(address.sun_path, 0600) == 0 && listen(fd, 16) == 0
                     : connect(fd, (struct sockaddr*)&address, sizeof address) == 0;
  if (!ok) {
    int error = errno;
    close(fd);
    throw_errno(env, address.sun_path, error);
    return -1;
  }
  set_send_timeout(fd);
  return fd;
}

/* listen(path): a listening socket at `path` (which must not exist), mode 0600. */
static napi_value js_listen(napi_env env, napi_callback_info info) {
  napi_value result;
  int fd = open_socket(env, info, 1);
  if (fd < 0) return NULL;
  CHECK(env, napi_create_int32(env, fd, &result));
  return result;
}

/* connect(path): a socket connected to the listener at `path`. */
static napi_value js_connect(napi_env env, napi_callback_info info) {
  napi_value result;
  int fd = open_socket(env, info, 0);
  if (fd < 0) return NULL;
  CHECK(env, napi_create_int32(env, fd, &result));
  return result;
}

/* send(fd, payload, fds): one message; the descriptors are duplicated into the receiver. */
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd;
  void* payload;
  size_t length;
  uint32_t count;
  napi_typedarray_type type;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_typedarray_info(env, argv[1], &type, &length, &payload, NULL, NULL) != napi_ok || type != napi_uint8_array ||
      napi_get_array_length(env, argv[2], &count) != napi_ok) {
    napi_throw_type_error(env, NULL, "clip_fdpass: send(fd, Uint8Array, number[]) expected");
    return NULL;
  }
  if (length == 0 || length > MAX_PAYLOAD || count > MAX_FDS) {
    napi_throw_range_error(env, NULL, "clip_fdpass: a message has 1 to 65536 bytes and at most 16 descriptors");
    return NULL;
  }
  int fds[MAX_FDS];
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    CHECK(env, napi_get_element(env, argv[2], i, &element));
    if (napi_get_value_int32(env, element, &fds[i]) != napi_ok || fds[i] < 0) {
      napi_throw_type_error(env, NULL, "clip_fdpass: descriptors must be non-negative integers");
      return NULL;
    }
  }
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    struct cmsghdr align;
  } control;
  struct iovec iov = {.iov_base = payload, .iov_len = length};
  struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1};
  if (count > 0) {
    memset(&control, 0, sizeof control);
    message.msg_control = control.buf;
    message.msg_controllen = CMSG_SPACE(sizeof(int) * count);
    struct cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * count);
    memcpy(CMSG_DATA(header), fds, sizeof(int) * count);
  }
  ssize_t sent;
  do {
    sent = sendmsg(fd, &message, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent != (ssize_t)length) return throw_errno(env, "sendmsg", sent < 0 ? errno : EMSGSIZE);
  return NULL;
}

/* shutdown(fd): a pending accept or recv on it returns (recv with null, accept with an error). */
static napi_value js_shutdown(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return NULL;
  shutdown(fd, SHUT_RDWR);
  return NULL;
}

/* ---- waiting calls, each on its own thread ---- */

typedef enum { OP_ACCEPT, OP_RECV } Op;

typedef struct {
  Op op;
  int fd;
  napi_deferred deferred;
  napi_threadsafe_function tsfn;
  int error;        /* errno, or 0 */
  int result_fd;    /* accept */
  ssize_t length;   /* recv: 0 at the end of the stream, -1 when the message was too big */
  unsigned char* payload;
  int fds[MAX_FDS];
  int fd_count;
} Job;

static void run_recv(Job* job) {
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    struct cmsghdr align;
  } control;
  struct iovec iov = {.iov_base = job->payload, .iov_len = MAX_PAYLOAD};
  struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  ssize_t n;
  do {
    n = recvmsg(job->fd, &message, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    job->error = errno;
    return;
  }
  for (struct cmsghdr* header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    int count = (int)((header->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < count; i++) {
      int received;
      memcpy(&received, CMSG_DATA(header) + i * sizeof(int), sizeof received);
      if (job->fd_count < MAX_FDS) job->fds[job->fd_count++] = received;
      else close(received);
    }
  }
  if (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    for (int i = 0; i < job->fd_count; i++) close(job->fds[i]);
    job->fd_count = 0;
    job->length = -1;
    return;
  }
  job->length = n;
}

static void* job_thread(void* arg) {
  Job* job = arg;
  if (job->op == OP_ACCEPT) {
    do {
      job->result_fd = accept4(job->fd, NULL, NULL, SOCK_CLOEXEC);
    } while (job->result_fd < 0 && (errno == EINTR || errno == ECONNABORTED));
    if (job->result_fd < 0) job->error = errno;
    else set_send_timeout(job->result_fd);
  } else {
    run_recv(job);
  }
  /* settle() frees the job, perhaps before the call below returns: keep the function apart. */
  napi_threadsafe_function tsfn = job->tsfn;
  napi_call_threadsafe_function(tsfn, job, napi_tsfn_blocking);
  napi_release_threadsafe_function(tsfn, napi_tsfn_release);
  return NULL;
}

static void settle(napi_env env, napi_value js_cb, void* context, void* data) {
  (void)js_cb, (void)context;
  Job* job = data;
  napi_value value = NULL;
  int ok = env != NULL;
  if (ok && job->error) {
    napi_value code, message;
    char text[160];
    snprintf(text, sizeof text, "%s: %s", job->op == OP_ACCEPT ? "accept" : "recvmsg", strerror(job->error));
    ok = napi_create_string_utf8(env, "EIO", NAPI_AUTO_LENGTH, &code) == napi_ok &&
         napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message) == napi_ok && napi_create_error(env, code, message, &value) == napi_ok &&
         napi_reject_deferred(env, job->deferred, value) == napi_ok;
  } else if (ok && job->op == OP_ACCEPT) {
    ok = napi_create_int32(env, job->result_fd, &value) == napi_ok && napi_resolve_deferred(env, job->deferred, value) == napi_ok;
  } else if (ok && job->length == -1) {
    napi_value code, message;
    ok = napi_create_string_utf8(env, "EMSGSIZE", NAPI_AUTO_LENGTH, &code) == napi_ok &&
         napi_create_string_utf8(env, "recvmsg: a message longer than 65536 bytes or with more than 16 descriptors", NAPI_AUTO_LENGTH, &message) == napi_ok &&
         napi_create_error(env, code, message, &value) == napi_ok && napi_reject_deferred(env, job->deferred, value) == napi_ok;
  } else if (ok && job->length == 0) {
    ok = napi_get_null(env, &value) == napi_ok && napi_resolve_deferred(env, job->deferred, value) == napi_ok;
  } else if (ok) {
    napi_value payload, fds, element;
    void* data_out;
    ok = napi_create_object(env, &value) == napi_ok && napi_create_buffer_copy(env, (size_t)job->length, job->payload, &data_out, &payload) == napi_ok &&
         napi_set_named_property(env, value, "payload", payload) == napi_ok && napi_create_array_with_length(env, job->fd_count, &fds) == napi_ok;
    for (int i = 0; ok && i < job->fd_count; i++) {
      ok = napi_create_int32(env, job->fds[i], &element) == napi_ok && napi_set_element(env, fds, i, element) == napi_ok;
    }
    ok = ok && napi_set_named_property(env, value, "fds", fds) == napi_ok && napi_resolve_deferred(env, job->deferred, value) == napi_ok;
  }
  if (!ok) {
    /* The environment is going away: nothing may receive the descriptors. */
    for (int i = 0; i < job->fd_count; i++) close(job->fds[i]);
    if (job->op == OP_ACCEPT && job->result_fd >= 0) close(job->result_fd);
  }
  free(job->payload);
  free(job);
}

static napi_value start_job(napi_env env, napi_callback_info info, Op op) {
  size_t argc = 1;
  napi_value argv[1], promise, name;
  int32_t fd;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "clip_fdpass: a descriptor is expected");
    return NULL;
  }
  Job* job = calloc(1, sizeof *job);
  if (!job || (op == OP_RECV && !(job->payload = malloc(MAX_PAYLOAD)))) {
    if (job) free(job);
    napi_throw_error(env, NULL, "clip_fdpass: out of memory");
    return NULL;
  }
  job->op = op;
  job->fd = fd;
  job->result_fd = -1;
  CHECK(env, napi_create_promise(env, &job->deferred, &promise));
  CHECK(env, napi_create_string_utf8(env, "clip_fdpass", NAPI_AUTO_LENGTH, &name));
  CHECK(env, napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, NULL, settle, &job->tsfn));
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  pthread_t thread;
  int error = pthread_create(&thread, NULL, job_thread, job);
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  if (error != 0) {
    napi_release_threadsafe_function(job->tsfn, napi_tsfn_abort);
    free(job->payload);
    free(job);
    return throw_errno(env, "pthread_create", error);
  }
  pthread_detach(thread);
  return promise;
}

/* accept(fd): a promise of the next connection's descriptor. */
static napi_value js_accept(napi_env env, napi_callback_info info) { return start_job(env, info, OP_ACCEPT); }

/* recv(fd): a promise of the next message, { payload: Buffer, fds: number[] }, or null at the end. */
static napi_value js_recv(napi_env env, napi_callback_info info) { return start_job(env, info, OP_RECV); }

NAPI_MODULE_INIT() {
  static const struct {
    const char* name;
    napi_callback fn;
  } functions[] = {{"listen", js_listen}, {"connect", js_connect}, {"send", js_send},
                   {"shutdown", js_shutdown}, {"accept", js_accept}, {"recv", js_recv}};
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].fn, NULL, &fn) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, functions[i].name, fn) != napi_ok) return NULL;
  }
  return exports;
}
