/* Growable byte buffers with a hard maximum (every buffer that grows from outside input has
 * one), and little-endian / varint helpers for binary formats.
 *
 * A pl_buf owns its bytes. Appends fail with PL_ELIMIT past `max_bytes` and PL_ENOMEM when
 * allocation fails; on failure the buffer is unchanged.
 */
#ifndef PLATEAU_BASE_BUF_H
#define PLATEAU_BASE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pl_buf {
  uint8_t *data;
  size_t len;
  size_t cap;
  size_t max_bytes; /* hard limit on len; 0 means SIZE_MAX */
} pl_buf;

void pl_buf_init(pl_buf *b, size_t max_bytes);
void pl_buf_free(pl_buf *b); /* frees the bytes and re-initialises with the same limit */
void pl_buf_reset(pl_buf *b); /* len = 0, keeps the allocation */
int pl_buf_reserve(pl_buf *b, size_t extra);
int pl_buf_append(pl_buf *b, const void *data, size_t n);
int pl_buf_append_byte(pl_buf *b, uint8_t byte);
int pl_buf_append_str(pl_buf *b, const char *s);
int pl_buf_printf(pl_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int pl_buf_vprintf(pl_buf *b, const char *fmt, va_list ap);
/* Ensures a NUL after the data (not counted in len) and returns data as a C string. */
const char *pl_buf_cstr(pl_buf *b);
/* Hands the bytes to the caller (who frees them with free()) and empties the buffer. */
uint8_t *pl_buf_steal(pl_buf *b, size_t *len);

int pl_buf_put_u16le(pl_buf *b, uint16_t v);
int pl_buf_put_u32le(pl_buf *b, uint32_t v);
int pl_buf_put_u64le(pl_buf *b, uint64_t v);
int pl_buf_put_u16be(pl_buf *b, uint16_t v);
int pl_buf_put_u32be(pl_buf *b, uint32_t v);
int pl_buf_put_uvarint(pl_buf *b, uint64_t v); /* LEB128, at most 10 bytes */
int pl_buf_put_svarint(pl_buf *b, int64_t v);  /* zigzag then LEB128 */

/* A read cursor over borrowed bytes. Reads past the end fail with PL_EINVAL and leave the
 * cursor where it was. */
typedef struct pl_reader {
  const uint8_t *p;
  size_t len;
  size_t pos;
} pl_reader;

void pl_reader_init(pl_reader *r, const void *data, size_t len);
size_t pl_reader_left(const pl_reader *r);
int pl_read_bytes(pl_reader *r, void *out, size_t n);
int pl_read_skip(pl_reader *r, size_t n);
int pl_read_u8(pl_reader *r, uint8_t *v);
int pl_read_u16le(pl_reader *r, uint16_t *v);
int pl_read_u32le(pl_reader *r, uint32_t *v);
int pl_read_u64le(pl_reader *r, uint64_t *v);
int pl_read_u16be(pl_reader *r, uint16_t *v);
int pl_read_u32be(pl_reader *r, uint32_t *v);
int pl_read_uvarint(pl_reader *r, uint64_t *v);
int pl_read_svarint(pl_reader *r, int64_t *v);

static inline uint64_t pl_zigzag_enc(int64_t v) {
  return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}
static inline int64_t pl_zigzag_dec(uint64_t v) {
  return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

#endif
