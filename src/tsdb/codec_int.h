/* Internals of the chunk codec shared by its files: the byte, varint and bit-stream helpers
 * that every column codec calls per value (static inline, so that the hot loops stay as fast as
 * when the codec was one file), and the integer sequence coder (codec_integer.c) that decimal
 * floats (codec_float.c) reuse. The byte formats are specified in the file implementing each
 * part: the chunk and the conventions in codec.c, the column codecs in codec_integer.c,
 * codec_float.c and codec_bool_string.c.
 */
#ifndef PLATEAU_TSDB_CODEC_INT_H
#define PLATEAU_TSDB_CODEC_INT_H

#include "tsdb/codec.h"

#include "base/err.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define BLOCK 128 /* values per bit-packed block */

/* ---- small helpers ---------------------------------------------------------------------- */

static inline uint64_t load64le(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

static inline void store64le(uint8_t *p, uint64_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  memcpy(p, &v, 8);
}

static inline uint64_t f64_bits(double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return u;
}

static inline double f64_from(uint64_t u) {
  double d;
  memcpy(&d, &u, 8);
  return d;
}

/* Number of significant bits of u: 0 for 0, 64 for values with the top bit set. */
static inline unsigned bit_len(uint64_t u) {
  /* Branch-free: it sits in the encoder's inner loops. */
  return 64u - (unsigned)__builtin_clzll(u | 1) - (u == 0);
}

static inline uint64_t low_mask(unsigned w) {
  return w >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << w) - 1;
}

static inline unsigned uvarint_len(uint64_t u) {
  unsigned b = bit_len(u);
  return b ? (b + 6) / 7 : 1;
}

static inline size_t bits_to_bytes(size_t bits) {
  return (bits + 7) / 8;
}

/* Appends a uvarint at out->data + *pos without growing (room was reserved). */
static inline void put_uvarint_at(uint8_t *p, size_t *pos, uint64_t v) {
  while (v >= 0x80) {
    p[(*pos)++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[(*pos)++] = (uint8_t)v;
}

/* Reads a uvarint from p[*pos..len); same rules as pl_read_uvarint. */
static inline int get_uvarint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v) {
  uint64_t out = 0;
  size_t i = *pos;
  for (unsigned shift = 0; shift < 70; shift += 7) {
    if (i >= len)
      return PL_ECORRUPT;
    uint8_t byte = p[i++];
    if (shift == 63 && byte > 1)
      return PL_ECORRUPT;
    out |= (uint64_t)(byte & 0x7f) << shift;
    if (!(byte & 0x80)) {
      *pos = i;
      *v = out;
      return 0;
    }
  }
  return PL_ECORRUPT;
}

/* Maps any reader failure (always "ran out of bytes" or "bad varint" here) to PL_ECORRUPT. */
#define RD(call)                                                                                   \
  do {                                                                                             \
    if ((call) < 0)                                                                                \
      return PL_ECORRUPT;                                                                          \
  } while (0)

/* Bit writer over memory reserved by the caller: at least bits_to_bytes(total) + 8 bytes. */
typedef struct bitw {
  uint8_t *p;
  uint64_t acc; /* pending bits, the lowest first */
  unsigned n;   /* number of pending bits, < 64 */
} bitw;

static inline void bitw_put(bitw *w, uint64_t v, unsigned nb) {
  /* v < 2^nb, nb <= 64 */
  if (nb == 0)
    return;
  w->acc |= v << w->n;
  unsigned total = w->n + nb;
  if (total >= 64) {
    store64le(w->p, w->acc);
    w->p += 8;
    w->acc = w->n ? v >> (64 - w->n) : 0;
    w->n = total - 64;
  } else {
    w->n = total;
  }
}

/* Writes the pending bits; returns the end of the written bytes. */
static inline uint8_t *bitw_finish(bitw *w) {
  store64le(w->p, w->acc);
  return w->p + bits_to_bytes(w->n);
}

/* Bit reader over [p, end) that never reads outside it. */
typedef struct bitr {
  const uint8_t *p, *end;
  uint64_t acc; /* bits not yet consumed start at bit 0; only the low n are meaningful */
  unsigned n;
} bitr;

static inline void bitr_init(bitr *r, const uint8_t *p, size_t len) {
  r->p = p;
  r->end = p + len;
  r->acc = 0;
  r->n = 0;
}

static inline void bitr_refill(bitr *r) {
  if (r->end - r->p >= 8) {
    /* Bits of w beyond the bytes counted as consumed land where those same bytes will be
     * OR-ed in again later, so they do no harm. */
    uint64_t w = load64le(r->p);
    unsigned take = (63 - r->n) >> 3;
    r->acc |= w << r->n;
    r->p += take;
    r->n += take * 8;
  } else {
    while (r->n <= 56 && r->p < r->end) {
      r->acc |= (uint64_t)*r->p++ << r->n;
      r->n += 8;
    }
  }
}

/* Reads nb <= 56 bits; PL_ECORRUPT past the end. */
static inline int bitr_get(bitr *r, unsigned nb, uint64_t *v) {
  if (r->n < nb) {
    bitr_refill(r);
    if (r->n < nb)
      return PL_ECORRUPT;
  }
  *v = r->acc & low_mask(nb);
  r->acc = nb < 64 ? r->acc >> nb : 0;
  r->n -= nb;
  return 0;
}

static inline int bitr_get64(bitr *r, unsigned nb, uint64_t *v) {
  uint64_t lo, hi;
  if (nb <= 56)
    return bitr_get(r, nb, v);
  if (bitr_get(r, 32, &lo) < 0 || bitr_get(r, nb - 32, &hi) < 0)
    return PL_ECORRUPT;
  *v = lo | hi << 32;
  return 0;
}

/* Bytes the reader has consumed (whole bytes; the padding of the last byte counts). */
static inline size_t bitr_consumed(const bitr *r, const uint8_t *start) {
  return (size_t)(r->p - start) - r->n / 8;
}

/* ---- integer sequences (codec_integer.c) -------------------------------------------------- */

enum { SEQ_RAW = 0, SEQ_DELTA = 1, SEQ_DOD = 2, SEQ_MODES = 3 };

/* Encodes v with the cheapest of the modes allowed by modes_mask (bit i allows mode i). */
int codec__seq_encode(const int64_t *v, size_t n, unsigned modes_mask, pl_buf *out);

/* Streaming decoder: hands out the values a block at a time so that callers can convert them
 * (decimal floats) without a buffer of n integers. */
typedef struct seq_rd {
  const uint8_t *p;
  size_t len, pos;
  size_t n, done, m, m_done;
  unsigned mode;
  uint64_t d, prev, delta;
} seq_rd;

/* Opens the INTEGER codec bytes p[0..len) holding n values for reading with codec__seq_next. */
int codec__seq_open(seq_rd *s, const uint8_t *p, size_t len, size_t n);

/* Writes the next values (at most BLOCK + 2) to out and returns how many; 0 at the end, after
 * checking that every byte was used. */
int codec__seq_next(seq_rd *s, int64_t *out);

#endif
