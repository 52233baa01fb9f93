/*
 * The gzip CRC-32 of inflated bytes, which the indexer checks against each member's trailer.
 * zlib's crc32 as Node ships it runs at about 4.7 GB/s here, a twentieth of indexing's CPU on a
 * many-layer image; folding with carry-less multiplication (PCLMULQDQ, Intel's "Fast CRC
 * Computation for Generic Polynomials Using PCLMULQDQ Instruction", as Chromium's and zlib-ng's
 * zlib do) is several times faster. Without PCLMULQDQ, and for short inputs and tails, zlib's
 * crc32 runs.
 */
#include <stdint.h>
#include <stddef.h>
#include <zlib.h>

#include "clip_crc32.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define FOLD_TARGET __attribute__((target("pclmul,sse4.1")))

/*
 * The bit-reflected constants for the gzip polynomial 0xEDB88320: x^(4*128+32) and x^(4*128-32)
 * mod P (fold by 4 blocks), x^(128+32) and x^(128-32) mod P (fold by 1), x^64 mod P, and P and
 * mu for Barrett's reduction.
 */
static const uint64_t K1K2[2] __attribute__((aligned(16))) = {0x0154442bd4, 0x01c6e41596};
static const uint64_t K3K4[2] __attribute__((aligned(16))) = {0x01751997d0, 0x00ccaa009e};
static const uint64_t K5K0[2] __attribute__((aligned(16))) = {0x0163cd6124, 0x0000000000};
static const uint64_t POLY[2] __attribute__((aligned(16))) = {0x01db710641, 0x01f7011641};

/* `len` is at least 64 and a multiple of 16; `crc` is the running value, pre-inverted. */
FOLD_TARGET static uint32_t crc32_fold(const unsigned char* buf, size_t len, uint32_t crc) {
  __m128i x0, x1, x2, x3, x4, x5, x6, x7, x8, y5, y6, y7, y8;
  x1 = _mm_loadu_si128((const __m128i*)(buf + 0x00));
  x2 = _mm_loadu_si128((const __m128i*)(buf + 0x10));
  x3 = _mm_loadu_si128((const __m128i*)(buf + 0x20));
  x4 = _mm_loadu_si128((const __m128i*)(buf + 0x30));
  x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)crc));
  x0 = _mm_load_si128((const __m128i*)K1K2);
  buf += 64;
  len -= 64;
  while (len >= 64) {
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x6 = _mm_clmulepi64_si128(x2, x0, 0x00);
    x7 = _mm_clmulepi64_si128(x3, x0, 0x00);
    x8 = _mm_clmulepi64_si128(x4, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x2 = _mm_clmulepi64_si128(x2, x0, 0x11);
    x3 = _mm_clmulepi64_si128(x3, x0, 0x11);
    x4 = _mm_clmulepi64_si128(x4, x0, 0x11);
    y5 = _mm_loadu_si128((const __m128i*)(buf + 0x00));
    y6 = _mm_loadu_si128((const __m128i*)(buf + 0x10));
    y7 = _mm_loadu_si128((const __m128i*)(buf + 0x20));
    y8 = _mm_loadu_si128((const __m128i*)(buf + 0x30));
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x5), y5);
    x2 = _mm_xor_si128(_mm_xor_si128(x2, x6), y6);
    x3 = _mm_xor_si128(_mm_xor_si128(x3, x7), y7);
    x4 = _mm_xor_si128(_mm_xor_si128(x4, x8), y8);
    buf += 64;
    len -= 64;
  }
  /* Four 128-bit lanes into one. */
  x0 = _mm_load_si128((const __m128i*)K3K4);
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
  x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
  x1 = _mm_xor_si128(_mm_xor_si128(x1, x3), x5);
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
  x1 = _mm_xor_si128(_mm_xor_si128(x1, x4), x5);
  while (len >= 16) {
    x2 = _mm_loadu_si128((const __m128i*)buf);
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
    buf += 16;
    len -= 16;
  }
  /* 128 bits to 64. */
  x2 = _mm_clmulepi64_si128(x1, x0, 0x10);
  x3 = _mm_setr_epi32(~0, 0, ~0, 0);
  x1 = _mm_srli_si128(x1, 8);
  x1 = _mm_xor_si128(x1, x2);
  x0 = _mm_loadl_epi64((const __m128i*)K5K0);
  x2 = _mm_srli_si128(x1, 4);
  x1 = _mm_and_si128(x1, x3);
  x1 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_xor_si128(x1, x2);
  /* Barrett's reduction to 32 bits. */
  x0 = _mm_load_si128((const __m128i*)POLY);
  x2 = _mm_and_si128(x1, x3);
  x2 = _mm_clmulepi64_si128(x2, x0, 0x10);
  x2 = _mm_and_si128(x2, x3);
  x2 = _mm_clmulepi64_si128(x2, x0, 0x00);
  x1 = _mm_xor_si128(x1, x2);
  return (uint32_t)_mm_extract_epi32(x1, 1);
}

static int has_fold(void) {
  __builtin_cpu_init(); /* idempotent; needed before the first check in a shared object */
  return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
}
#endif

uint32_t clip_crc32(uint32_t crc, const unsigned char* buf, size_t len) {
#if defined(__x86_64__) || defined(__i386__)
  if (len >= 64 && has_fold()) {
    size_t folded = len & ~(size_t)15;
    crc = ~crc32_fold(buf, folded, ~crc);
    buf += folded;
    len -= folded;
  }
#endif
  while (len > 0) {
    uInt part = len > 0x40000000 ? 0x40000000 : (uInt)len;
    crc = (uint32_t)crc32(crc, buf, part);
    buf += part;
    len -= part;
  }
  return crc;
}
