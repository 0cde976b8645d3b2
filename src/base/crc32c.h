/* CRC-32C (Castagnoli), as used by the WAL and chunk formats. Uses the SSE4.2 instruction when
 * the CPU has it, a slicing table otherwise; both give identical results. */
#ifndef PLATEAU_BASE_CRC32C_H
#define PLATEAU_BASE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) with n bytes. */
uint32_t pl_crc32c(uint32_t crc, const void *data, size_t n);

#endif
