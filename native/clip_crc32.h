#ifndef CLIP_CRC32_H
#define CLIP_CRC32_H
#include <stddef.h>
#include <stdint.h>

/* zlib's crc32(crc, buf, len), the gzip CRC-32, folded with PCLMULQDQ where the CPU has it. */
uint32_t clip_crc32(uint32_t crc, const unsigned char* buf, size_t len);

#endif
