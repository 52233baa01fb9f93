/*
 * Raw inflate over zlib, exposing what Node's zlib module hides and random access
 * into gzip layers needs: inflate(Z_BLOCK) with strm->data_type (to find block boundaries and
 * their bit offsets), inflatePrime (to resume mid-byte) and inflateSetDictionary (to restore the
 * 32 KiB window). One RawInflate object wraps one z_stream; every call passes its buffers, so no
 * pointer into JavaScript memory is kept between calls.
 *
 * zlib is the copy inside the Node.js binary (its headers ship with Node's and its symbols are
 * exported, as Node's addon documentation describes), so there is nothing to link or install.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "clip_crc32.h"

/* What zlib allocates per stream (state and 32 KiB window), reported to V8's GC. */
#define EXTERNAL_BYTES (48 * 1024)

typedef struct {
  z_stream strm;
  int live; /* inflateInit2 succeeded and inflateEnd has not run */
} RawInflate;

#define CHECK(env, call)                                                       \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      napi_throw_error((env), NULL, "clip_zlib: " #call " failed");           \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

static void finalize(napi_env env, void* data, void* hint) {
  (void)hint;
  RawInflate* self = (RawInflate*)data;
  if (self->live) inflateEnd(&self->strm);
  free(self);
  int64_t ignored;
  napi_adjust_external_memory(env, -EXTERNAL_BYTES, &ignored);
}

static napi_value make_int(napi_env env, int value) {
  napi_value out;
  if (napi_create_int32(env, value, &out) != napi_ok) return NULL;
  return out;
}

/* Unwraps `this` and reads up to `want` arguments into argv. */
static RawInflate* self_and_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  napi_value this_arg;
  void* data = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, &this_arg, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "clip_zlib: missing arguments");
    return NULL;
  }
  if (napi_unwrap(env, this_arg, &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, NULL, "clip_zlib: not a RawInflate");
    return NULL;
  }
  RawInflate* self = (RawInflate*)data;
  if (!self->live) {
    napi_throw_error(env, NULL, "clip_zlib: RawInflate used after close");
    return NULL;
  }
  return self;
}

/* A Uint8Array argument's bytes. */
static int bytes_of(napi_env env, napi_value value, unsigned char** data, size_t* length) {
  napi_typedarray_type type;
  void* base = NULL;
  if (napi_get_typedarray_info(env, value, &type, length, &base, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "clip_zlib: expected a Uint8Array");
    return 0;
  }
  *data = (unsigned char*)base;
  return 1;
}

static int uint_of(napi_env env, napi_value value, uint32_t* out) {
  if (napi_get_value_uint32(env, value, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "clip_zlib: expected a non-negative integer");
    return 0;
  }
  return 1;
}

static napi_value construct(napi_env env, napi_callback_info info) {
  napi_value this_arg;
  CHECK(env, napi_get_cb_info(env, info, NULL, NULL, &this_arg, NULL));
  RawInflate* self = (RawInflate*)calloc(1, sizeof(RawInflate));
  if (self == NULL) {
    napi_throw_error(env, NULL, "clip_zlib: out of memory");
    return NULL;
  }
  if (inflateInit2(&self->strm, -15) != Z_OK) {
    free(self);
    napi_throw_error(env, NULL, "clip_zlib: inflateInit2 failed");
    return NULL;
  }
  self->live = 1;
  if (napi_wrap(env, this_arg, self, finalize, NULL, NULL) != napi_ok) {
    inflateEnd(&self->strm);
    free(self);
    napi_throw_error(env, NULL, "clip_zlib: napi_wrap failed");
    return NULL;
  }
  int64_t ignored;
  napi_adjust_external_memory(env, EXTERNAL_BYTES, &ignored);
  return this_arg;
}

/* reset(): starts a new raw deflate stream (the next gzip member). */
static napi_value reset(napi_env env, napi_callback_info info) {
  RawInflate* self = self_and_args(env, info, 0, NULL);
  if (self == NULL) return NULL;
  return make_int(env, inflateReset(&self->strm));
}

/* setDictionary(window: Uint8Array): the history a checkpoint restores. Returns zlib's code. */
static napi_value set_dictionary(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  RawInflate* self = self_and_args(env, info, 1, argv);
  unsigned char* window;
  size_t length;
  if (self == NULL || !bytes_of(env, argv[0], &window, &length)) return NULL;
  return make_int(env, inflateSetDictionary(&self->strm, window, (uInt)length));
}

/* prime(bits, value): inserts the low `bits` bits of value into the bit buffer. */
static napi_value prime(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  RawInflate* self = self_and_args(env, info, 2, argv);
  uint32_t bits, value;
  if (self == NULL || !uint_of(env, argv[0], &bits) || !uint_of(env, argv[1], &value)) return NULL;
  return make_int(env, inflatePrime(&self->strm, (int)bits, (int)value));
}

/*
 * inflate(input, inPos, output, outPos, outLen, state: Int32Array(3)): runs zlib's inflate with
 * Z_BLOCK on input[inPos..] into output[outPos..outPos+outLen]. Writes the new input position, the new
 * output position and strm->data_type into state; returns zlib's code.
 */
static napi_value run_inflate(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  RawInflate* self = self_and_args(env, info, 6, argv);
  unsigned char *input, *output;
  size_t in_length, out_length, state_length;
  uint32_t in_pos, out_pos, out_len;
  napi_typedarray_type state_type;
  void* state_data = NULL;
  if (self == NULL || !bytes_of(env, argv[0], &input, &in_length) || !uint_of(env, argv[1], &in_pos) ||
      !bytes_of(env, argv[2], &output, &out_length) || !uint_of(env, argv[3], &out_pos) ||
      !uint_of(env, argv[4], &out_len)) {
    return NULL;
  }
  if (napi_get_typedarray_info(env, argv[5], &state_type, &state_length, &state_data, NULL, NULL) != napi_ok ||
      state_type != napi_int32_array || state_length < 3) {
    napi_throw_type_error(env, NULL, "clip_zlib: state must be an Int32Array of length 3");
    return NULL;
  }
  if (in_pos > in_length || out_pos > out_length || out_len > out_length - out_pos) {
    napi_throw_range_error(env, NULL, "clip_zlib: position out of range");
    return NULL;
  }
  z_stream* s = &self->strm;
  s->next_in = input + in_pos;
  s->avail_in = (uInt)(in_length - in_pos);
  s->next_out = output + out_pos;
  s->avail_out = out_len;
  int ret = inflate(s, Z_BLOCK);
  int32_t* state = (int32_t*)state_data;
  state[0] = (int32_t)(s->next_in - input);
  state[1] = (int32_t)(s->next_out - output);
  state[2] = s->data_type;
  s->next_in = NULL;
  s->next_out = NULL;
  return make_int(env, ret);
}

/* message(): zlib's text for the last error, or "". */
static napi_value message(napi_env env, napi_callback_info info) {
  RawInflate* self = self_and_args(env, info, 0, NULL);
  if (self == NULL) return NULL;
  napi_value out;
  const char* msg = self->strm.msg ? self->strm.msg : "";
  CHECK(env, napi_create_string_utf8(env, msg, strlen(msg), &out));
  return out;
}

/* close(): frees zlib's state now instead of at garbage collection. */
static napi_value close_stream(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  napi_value this_arg;
  void* data = NULL;
  CHECK(env, napi_get_cb_info(env, info, &argc, NULL, &this_arg, NULL));
  if (napi_unwrap(env, this_arg, &data) == napi_ok && data != NULL) {
    RawInflate* self = (RawInflate*)data;
    if (self->live) inflateEnd(&self->strm);
    self->live = 0;
  }
  return NULL;
}

/* crc32(data: Uint8Array, value: number): the gzip CRC-32 of data, continuing from value. */
static napi_value crc32_of(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  unsigned char* data;
  size_t length;
  uint32_t value;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "clip_zlib: crc32 expects (data, value)");
    return NULL;
  }
  if (!bytes_of(env, argv[0], &data, &length) || !uint_of(env, argv[1], &value)) return NULL;
  napi_value out;
  CHECK(env, napi_create_uint32(env, clip_crc32(value, data, length), &out));
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"reset", NULL, reset, NULL, NULL, NULL, napi_default_method, NULL},
      {"setDictionary", NULL, set_dictionary, NULL, NULL, NULL, napi_default_method, NULL},
      {"prime", NULL, prime, NULL, NULL, NULL, napi_default_method, NULL},
      {"inflate", NULL, run_inflate, NULL, NULL, NULL, napi_default_method, NULL},
      {"message", NULL, message, NULL, NULL, NULL, napi_default_method, NULL},
      {"close", NULL, close_stream, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_value cls, version;
  CHECK(env, napi_define_class(env, "RawInflate", NAPI_AUTO_LENGTH, construct, NULL,
                               sizeof(methods) / sizeof(methods[0]), methods, &cls));
  CHECK(env, napi_set_named_property(env, exports, "RawInflate", cls));
  CHECK(env, napi_create_string_utf8(env, zlibVersion(), NAPI_AUTO_LENGTH, &version));
  CHECK(env, napi_set_named_property(env, exports, "zlibVersion", version));
  napi_value crc;
  CHECK(env, napi_create_function(env, "crc32", NAPI_AUTO_LENGTH, crc32_of, NULL, &crc));
  CHECK(env, napi_set_named_property(env, exports, "crc32", crc));
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
