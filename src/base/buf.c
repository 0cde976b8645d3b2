/* Bounded growable buffers and a bounds-checked reader. */
#include "base/buf.h"

#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pl_buf_init(pl_buf *b, size_t max_bytes) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->max_bytes = max_bytes ? max_bytes : SIZE_MAX;
}

void pl_buf_free(pl_buf *b) {
  if (!b) return;
  free(b->data);
  pl_buf_init(b, b->max_bytes);
}

void pl_buf_reset(pl_buf *b) {
  b->len = 0;
}

int pl_buf_reserve(pl_buf *b, size_t extra) {
  /* +1 keeps room for the NUL of pl_buf_cstr without another allocation. */
  if (extra > b->max_bytes - b->len) return PL_ELIMIT;
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  uint8_t *p = realloc(b->data, cap);
  if (!p) return PL_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int pl_buf_append(pl_buf *b, const void *data, size_t n) {
  int rc;
  if (n == 0) return 0;
  if ((rc = pl_buf_reserve(b, n)) < 0) return rc;
  memcpy(b->data + b->len, data, n);
  b->len += n;
  return 0;
}

int pl_buf_append_byte(pl_buf *b, uint8_t byte) {
  return pl_buf_append(b, &byte, 1);
}

int pl_buf_append_str(pl_buf *b, const char *s) {
  return pl_buf_append(b, s, strlen(s));
}

int pl_buf_vprintf(pl_buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) return PL_EINVAL;
  int rc = pl_buf_reserve(b, (size_t)n);
  if (rc < 0) return rc;
  vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return 0;
}

int pl_buf_printf(pl_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = pl_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

const char *pl_buf_cstr(pl_buf *b) {
  if (b->len + 1 > b->cap) {
    if (pl_buf_reserve(b, 0) < 0) return NULL;
  }
  b->data[b->len] = 0;
  return (const char *)b->data;
}

uint8_t *pl_buf_steal(pl_buf *b, size_t *len) {
  uint8_t *p = b->data;
  if (len) *len = b->len;
  pl_buf_init(b, b->max_bytes);
  return p;
}

int pl_buf_put_u16le(pl_buf *b, uint16_t v) {
  uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
  return pl_buf_append(b, x, 2);
}

int pl_buf_put_u32le(pl_buf *b, uint32_t v) {
  uint8_t x[4];
  for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> (8 * i));
  return pl_buf_append(b, x, 4);
}

int pl_buf_put_u64le(pl_buf *b, uint64_t v) {
  uint8_t x[8];
  for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
  return pl_buf_append(b, x, 8);
}

int pl_buf_put_u16be(pl_buf *b, uint16_t v) {
  uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
  return pl_buf_append(b, x, 2);
}

int pl_buf_put_u32be(pl_buf *b, uint32_t v) {
  uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
  return pl_buf_append(b, x, 4);
}

int pl_buf_put_uvarint(pl_buf *b, uint64_t v) {
  uint8_t x[10];
  size_t n = 0;
  while (v >= 0x80) {
    x[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  x[n++] = (uint8_t)v;
  return pl_buf_append(b, x, n);
}

int pl_buf_put_svarint(pl_buf *b, int64_t v) {
  return pl_buf_put_uvarint(b, pl_zigzag_enc(v));
}

void pl_reader_init(pl_reader *r, const void *data, size_t len) {
  r->p = data;
  r->len = len;
  r->pos = 0;
}

size_t pl_reader_left(const pl_reader *r) {
  return r->len - r->pos;
}

int pl_read_bytes(pl_reader *r, void *out, size_t n) {
  if (n > r->len - r->pos) return PL_EINVAL;
  if (n) memcpy(out, r->p + r->pos, n);
  r->pos += n;
  return 0;
}

int pl_read_skip(pl_reader *r, size_t n) {
  if (n > r->len - r->pos) return PL_EINVAL;
  r->pos += n;
  return 0;
}

int pl_read_u8(pl_reader *r, uint8_t *v) {
  return pl_read_bytes(r, v, 1);
}

int pl_read_u16le(pl_reader *r, uint16_t *v) {
  uint8_t x[2];
  if (pl_read_bytes(r, x, 2) < 0) return PL_EINVAL;
  *v = (uint16_t)(x[0] | x[1] << 8);
  return 0;
}

int pl_read_u32le(pl_reader *r, uint32_t *v) {
  uint8_t x[4];
  if (pl_read_bytes(r, x, 4) < 0) return PL_EINVAL;
  *v = (uint32_t)x[0] | (uint32_t)x[1] << 8 | (uint32_t)x[2] << 16 | (uint32_t)x[3] << 24;
  return 0;
}

int pl_read_u64le(pl_reader *r, uint64_t *v) {
  uint8_t x[8];
  if (pl_read_bytes(r, x, 8) < 0) return PL_EINVAL;
  uint64_t out = 0;
  for (int i = 7; i >= 0; i--) out = out << 8 | x[i];
  *v = out;
  return 0;
}

int pl_read_u16be(pl_reader *r, uint16_t *v) {
  uint8_t x[2];
  if (pl_read_bytes(r, x, 2) < 0) return PL_EINVAL;
  *v = (uint16_t)(x[0] << 8 | x[1]);
  return 0;
}

int pl_read_u32be(pl_reader *r, uint32_t *v) {
  uint8_t x[4];
  if (pl_read_bytes(r, x, 4) < 0) return PL_EINVAL;
  *v = (uint32_t)x[0] << 24 | (uint32_t)x[1] << 16 | (uint32_t)x[2] << 8 | (uint32_t)x[3];
  return 0;
}

int pl_read_uvarint(pl_reader *r, uint64_t *v) {
  uint64_t out = 0;
  size_t pos = r->pos;
  for (int shift = 0; shift < 70; shift += 7) {
    if (pos >= r->len) return PL_EINVAL;
    uint8_t byte = r->p[pos++];
    if (shift == 63 && byte > 1) return PL_EINVAL; /* overflows 64 bits */
    out |= (uint64_t)(byte & 0x7f) << shift;
    if (!(byte & 0x80)) {
      r->pos = pos;
      *v = out;
      return 0;
    }
  }
  return PL_EINVAL;
}

int pl_read_svarint(pl_reader *r, int64_t *v) {
  uint64_t u;
  if (pl_read_uvarint(r, &u) < 0) return PL_EINVAL;
  *v = pl_zigzag_dec(u);
  return 0;
}
