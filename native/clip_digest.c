/*
 * The sha256 of each block of a buffer, in one call: the block digests of a disk cache entry's
 * header (src/clipcore/cache/disk-entry.ts). JavaScript pays a call and a Buffer per 4 KiB block
 * (97 ms for a 113 MB file here, against 63 ms of hashing), and the thread that stores an entry
 * also answers reads, so the asynchronous form hashes on a libuv thread.
 *
 * SHA256 is the OpenSSL inside the Node.js binary (its headers ship with Node's, its symbols are
 * exported), as clip_fuse.c uses it: nothing to link or install.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
  const unsigned char* data;
  size_t length;
  size_t block_bytes;
  unsigned char* out;
} DigestJob;

static void digest_blocks(const DigestJob* job) {
  for (size_t at = 0, k = 0; at < job->length; at += job->block_bytes, k++) {
    size_t n = job->length - at < job->block_bytes ? job->length - at : job->block_bytes;
    SHA256(job->data + at, n, job->out + SHA256_DIGEST_LENGTH * k);
  }
}

static int throw_type(napi_env env, const char* message) {
  napi_throw_type_error(env, NULL, message);
  return 0;
}

/*
 * Reads (data, blockBytes) into `job` and creates the Buffer that will hold one digest per block
 * (into *out_buffer); throws and returns 0 on bad arguments.
 */
static int job_of(napi_env env, napi_callback_info info, DigestJob* job, napi_value* data_value, napi_value* out_buffer) {
  size_t argc = 2;
  napi_value argv[2];
  napi_typedarray_type type;
  void* data = NULL;
  void* out = NULL;
  uint32_t block_bytes = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) return throw_type(env, "clip_digest: expected (data, blockBytes)");
  if (napi_get_typedarray_info(env, argv[0], &type, &job->length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array)
    return throw_type(env, "clip_digest: data must be a Uint8Array");
  napi_valuetype kind;
  double requested = 0;
  if (napi_typeof(env, argv[1], &kind) != napi_ok || kind != napi_number || napi_get_value_double(env, argv[1], &requested) != napi_ok ||
      !(requested >= 1 && requested <= (double)UINT32_MAX) || requested != (double)(uint32_t)requested)
    return throw_type(env, "clip_digest: blockBytes must be a positive integer");
  block_bytes = (uint32_t)requested;
  size_t blocks = job->length / block_bytes + (job->length % block_bytes != 0);
  if (napi_create_buffer(env, SHA256_DIGEST_LENGTH * blocks, &out, out_buffer) != napi_ok) {
    napi_throw_error(env, NULL, "clip_digest: out of memory");
    return 0;
  }
  job->data = (const unsigned char*)data;
  job->block_bytes = block_bytes;
  job->out = (unsigned char*)out;
  *data_value = argv[0];
  return 1;
}

/* blockDigests(data, blockBytes): a Buffer of the digests, hashed on this thread. */
static napi_value block_digests(napi_env env, napi_callback_info info) {
  DigestJob job;
  napi_value data, out;
  if (!job_of(env, info, &job, &data, &out)) return NULL;
  digest_blocks(&job);
  return out;
}

typedef struct {
  DigestJob job;
  napi_ref data_ref; /* keeps both arrays alive until the work is done */
  napi_ref out_ref;
  napi_deferred deferred;
  napi_async_work work;
} AsyncDigest;

static void execute(napi_env env, void* data) {
  (void)env;
  digest_blocks(&((AsyncDigest*)data)->job);
}

static void complete(napi_env env, napi_status status, void* data) {
  AsyncDigest* a = (AsyncDigest*)data;
  napi_value out;
  if (status == napi_ok && napi_get_reference_value(env, a->out_ref, &out) == napi_ok) napi_resolve_deferred(env, a->deferred, out);
  else {
    napi_value message, error;
    napi_create_string_utf8(env, "clip_digest: hashing was cancelled", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &error);
    napi_reject_deferred(env, a->deferred, error);
  }
  napi_delete_reference(env, a->data_ref);
  napi_delete_reference(env, a->out_ref);
  napi_delete_async_work(env, a->work);
  free(a);
}

/*
 * blockDigestsAsync(data, blockBytes): a promise of the digests, hashed on a libuv thread. `data`
 * must not be transferred or detached before it settles.
 */
static napi_value block_digests_async(napi_env env, napi_callback_info info) {
  DigestJob job;
  napi_value data, out, promise, name;
  if (!job_of(env, info, &job, &data, &out)) return NULL;
  AsyncDigest* a = (AsyncDigest*)calloc(1, sizeof(AsyncDigest));
  if (a == NULL) {
    napi_throw_error(env, NULL, "clip_digest: out of memory");
    return NULL;
  }
  a->job = job;
  if (napi_create_reference(env, data, 1, &a->data_ref) != napi_ok) goto fail;
  if (napi_create_reference(env, out, 1, &a->out_ref) != napi_ok) goto fail;
  if (napi_create_promise(env, &a->deferred, &promise) != napi_ok) goto fail;
  if (napi_create_string_utf8(env, "clip_digest", NAPI_AUTO_LENGTH, &name) != napi_ok) goto fail;
  if (napi_create_async_work(env, NULL, name, execute, complete, a, &a->work) != napi_ok) goto fail;
  if (napi_queue_async_work(env, a->work) != napi_ok) {
    napi_delete_async_work(env, a->work);
    goto fail;
  }
  return promise;
fail:
  /* A created promise that is never settled is only garbage; the references must not leak. */
  if (a->data_ref) napi_delete_reference(env, a->data_ref);
  if (a->out_ref) napi_delete_reference(env, a->out_ref);
  free(a);
  napi_throw_error(env, NULL, "clip_digest: could not queue the work");
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "blockDigests", NAPI_AUTO_LENGTH, block_digests, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "blockDigests", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "blockDigestsAsync", NAPI_AUTO_LENGTH, block_digests_async, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "blockDigestsAsync", fn) != napi_ok) return NULL;
  return exports;
}
