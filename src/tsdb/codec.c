/* Time-series chunk codec: column codecs (integers, floats, booleans, strings) and the chunk
 * container that holds one timestamp column and the value columns that share it. The API is in
 * codec.h; this comment specifies the bytes, then says why they are what they are.
 *
 * CONVENTIONS
 *   Fixed-width integers are little-endian. uvarint is LEB128 (at most 10 bytes); svarint is a
 *   zigzag-mapped uvarint; f64 is the IEEE-754 bit pattern stored as a u64. Bit streams are
 *   LSB-first: value k of width w occupies bits k*w .. k*w+w-1, where bit b is bit b%8 of byte
 *   b/8; the last byte is padded with zero bits. All integer arithmetic below is modulo 2^64.
 *
 * CHUNK (version 1)
 *   'P' 'C'              magic
 *   u8 version           1
 *   u8 flags             0 (reserved: readers reject anything else)
 *   uvarint n_points     1 .. TSDB_CHUNK_POINTS_MAX
 *   uvarint n_columns    0 .. TSDB_CHUNK_COLUMNS_MAX
 *   svarint ts_min       smallest timestamp
 *   uvarint ts_span      largest timestamp - ts_min
 *   uvarint ts_len, then ts_len bytes: the n_points timestamps, INTEGER codec
 *   n_columns times:
 *     u8 type            1 float, 2 int, 3 bool, 4 string
 *     u8 col_flags       bit 0: a presence bitmap follows; other bits 0
 *     [bitmap]           ceil(n_points / 8) bytes, bit i set when row i has a value; the unused
 *                        bits of the last byte are 0. Without it every row has a value.
 *                        count = the number of rows with a value.
 *     stats              only when count > 0, by type:
 *                          float:  uvarint nan_count (<= count), f64 min, max, sum, first, last
 *                          int:    svarint min, max, first, last; u8 sum_kind, then
 *                                  svarint sum (kind 0) or f64 sum (kind 1: int64 overflowed)
 *                          bool:   uvarint n_true (<= count), u8 ends (bit 0 first, bit 1 last)
 *                          string: nothing
 *     uvarint data_len, then data_len bytes: the count values of the rows that have one, in row
 *                        order, with the column codec of the type (empty when count == 0)
 *   u32 crc32c           of every byte before it; the chunk ends here.
 *
 * INTEGER CODEC (int columns, timestamps, and the integers of decimal floats), n values v[]
 *   u8 mode              0 raw, 1 delta, 2 delta of delta
 *   uvarint divisor      >= 1
 *   svarint v[0]         modes 1 and 2
 *   svarint v[1] - v[0]  mode 2, when n >= 2
 *   then the m = n - mode (at least 0) transformed values x[j], divided by divisor (every x[j] is
 *   a multiple of it as a signed 64-bit number), in blocks of 128 (the last may be shorter):
 *     raw x[j] = v[j]; delta x[j] = v[j+1] - v[j]; dod x[j] = v[j+2] - 2 v[j+1] + v[j]
 *   A block of c values y[k]:
 *     u8 head            bits 0-6: width w (0..64); bit 7: exceptions follow
 *     svarint base
 *     if exceptions:     u8 n_exc (1..c), u8 ew (1..64-w), n_exc u8 positions (strictly
 *                        increasing, < c), then a bit stream of n_exc high parts of ew bits
 *     bit stream of c low parts of w bits
 *     y[k] = base + (low[k] | high[k] << w), high[k] = 0 where k is not an exception.
 *   This is frame-of-reference bit packing with patched exceptions (PFOR): a gap in a regular
 *   series or a counter reset costs one exception instead of widening the whole block.
 *
 * FLOAT CODEC, n values
 *   u8 mode 0, Gorilla XOR: a bit stream starting with the 64 bits of v[0]; then per value,
 *     with x = bits(v[i]) ^ bits(v[i-1]) and lead/trail its leading/trailing zero counts:
 *       0                                      x == 0
 *       1 0, then 64-L-T bits of x >> T        x fits the window (L, T) of the last '1 1' record
 *       1 1, 6 bits lead, 6 bits len-1, len bits of x >> trail  (len = 64 - lead - trail)
 *     (the bit written first is the lowest).
 *   u8 mode 1, decimal: u8 e (0..18), uvarint n_exc, n_exc times (uvarint gap, f64 value) where
 *     the exception's position is the previous one + 1 + gap (the first: gap); then the
 *     INTEGER codec over n integers d[i]. v[i] = (double)d[i] / 10^e (an exact, correctly
 *     rounded IEEE division) except at exception positions, whose d[i] is ignored. The
 *     encoder verifies the round trip bit for bit; what fails (NaN, infinities, -0.0, values
 *     with more decimals or beyond 2^51 once scaled) becomes an exception.
 *
 * BOOL CODEC, n values
 *   u8 mode 0: bit stream of n bits; mode 1: u8 value (0 or 1), all equal; mode 2: u8 first
 *   value (0 or 1), then uvarint run lengths (>= 1, summing to n) of alternating values.
 *
 * STRING CODEC, n values
 *   u8 mode 0, dictionary: uvarint count (1..256), count times (uvarint len, len bytes), then a
 *     bit stream of n indices (< count) of bit_len(count - 1) bits each.
 *   u8 mode 1, zstd: uvarint raw_len (<= TSDB_CHUNK_BYTES_MAX), then zstd frames that
 *     decompress to exactly raw_len bytes: the mode 2 payload.
 *   u8 mode 2, plain: n uvarint lengths, then the n strings' bytes back to back.
 *
 * Every decoder consumes exactly the bytes it was given; anything else is PL_ECORRUPT.
 *
 * WHY THESE ENCODINGS (measured with bench/codec.c and throwaway experiments on 1024-row
 * chunks)
 *   Timestamps: per-block bit packing of deltas beats Gorilla-style delta-of-delta buckets on
 *   both kinds of target data. Jittered data (10 s +-50 ms at ns) is noise of about 27 bits
 *   whatever the transform; packing pays its bit width and nothing else (28.4 bits a
 *   timestamp, against 32-36 for buckets tuned to ns and 68 for Prometheus' buckets), and
 *   deltas beat deltas of deltas there, as differencing noise widens it. Regular data packs
 *   to width 0, about 0.2 bits a timestamp against 1 bit. The common divisor takes
 *   millisecond data stored in ns from 28 to 8 bits. Varints of deltas or of deltas of deltas
 *   cost 32-40 bits on jittered data and 8 on regular data.
 *   Exceptions (PFOR) keep a gap, a counter reset or a NaN from widening a whole block.
 *   Floats: decimal mode takes a random walk with 2 decimals to about 4 bits a value, where
 *   Gorilla needs about 46. Keeping values that are not short decimals as exceptions beats
 *   falling back to Gorilla for the whole chunk even when a third of them are (29 against 65
 *   bits a value), so Gorilla is left for data that is not decimal at all.
 *   Integers: raw, delta and delta-of-delta each win somewhere (noise, counters, smooth
 *   signals), so the encoder estimates all three on a sample of blocks and keeps the smallest.
 */
#include "tsdb/codec.h"

#include "base/crc32c.h"
#include "base/err.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

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

/* Inserts uvarint(out->len - data_start) before the bytes at data_start. */
static int prefix_length(pl_buf *out, size_t data_start) {
  size_t data_len = out->len - data_start;
  unsigned k = uvarint_len(data_len);
  int rc = pl_buf_reserve(out, k);
  if (rc < 0)
    return rc;
  memmove(out->data + data_start + k, out->data + data_start, data_len);
  size_t pos = data_start;
  put_uvarint_at(out->data, &pos, data_len);
  out->len += k;
  return 0;
}

/* ---- exact division by a common divisor --------------------------------------------------- */

/* d = odd * 2^shift. Division of a multiple of d is a multiplication by the inverse of odd
 * modulo 2^64 and a shift (Granlund and Montgomery), and so is the divisibility test. */
typedef struct divisor {
  uint64_t d, odd_inv, lim;
  unsigned shift;
} divisor;

static void divisor_init(divisor *dv, uint64_t d) {
  dv->d = d;
  dv->shift = (unsigned)__builtin_ctzll(d);
  uint64_t odd = d >> dv->shift;
  uint64_t inv = odd; /* correct to 3 bits; each Newton step doubles that */
  for (int i = 0; i < 5; i++)
    inv *= 2 - odd * inv;
  dv->odd_inv = inv;
  dv->lim = UINT64_MAX / odd;
}

/* Whether d divides a (an absolute value). */
static inline int divisor_divides(const divisor *dv, uint64_t a) {
  if (a & low_mask(dv->shift))
    return 0;
  return (a >> dv->shift) * dv->odd_inv <= dv->lim;
}

/* x / d for x a multiple of d, both as signed 64-bit numbers. */
static inline uint64_t divisor_div(const divisor *dv, uint64_t x) {
  /* Right shift of a negative int64 is arithmetic with gcc and clang. */
  return (uint64_t)((int64_t)(x * dv->odd_inv) >> dv->shift);
}

static uint64_t gcd_u64(uint64_t a, uint64_t b) {
  if (!a)
    return b;
  if (!b)
    return a;
  unsigned k = (unsigned)__builtin_ctzll(a | b);
  a >>= __builtin_ctzll(a);
  do {
    b >>= __builtin_ctzll(b);
    if (a > b) {
      uint64_t t = a;
      a = b;
      b = t;
    }
    b -= a;
  } while (b);
  return a << k;
}

/* Running gcd of absolute values; stops changing once it reaches 1. */
typedef struct gcd_acc {
  uint64_t g;
  divisor dv;
} gcd_acc;

static void gcd_add(gcd_acc *acc, const uint64_t *x, size_t cnt) {
  for (size_t k = 0; k < cnt && acc->g != 1; k++) {
    uint64_t a = x[k] >> 63 ? 0 - x[k] : x[k];
    if (a == 0)
      continue;
    if (acc->g == 0 || !divisor_divides(&acc->dv, a)) {
      acc->g = gcd_u64(acc->g, a);
      divisor_init(&acc->dv, acc->g);
    }
  }
}

/* The divisor to store: 1 when there is none worth having. 2^63 (values all 0 or INT64_MIN)
 * is not representable as a positive int64 and is not worth a special case. */
static uint64_t gcd_result(const gcd_acc *acc) {
  return acc->g == 0 || acc->g > (uint64_t)INT64_MAX ? 1 : acc->g;
}

/* ---- integer codec: blocks ---------------------------------------------------------------- */

enum { SEQ_RAW = 0, SEQ_DELTA = 1, SEQ_DOD = 2, SEQ_MODES = 3 };

/* How one block will be written. */
typedef struct block_plan {
  uint64_t base;
  unsigned w, ew, n_exc;
  size_t bits; /* estimated size including the head and base */
} block_plan;

/* Lowers bp's width where turning at most exc_max outliers into exceptions pays; see
 * plan_block for the cost. */
static void plan_exceptions(const uint64_t *y, size_t c, uint64_t mn, uint64_t mx, size_t exc_max,
                            int use_up, int use_down, block_plan *bp, size_t *best) {
  const unsigned kmax = bp->w;
  /* Histograms of bit lengths, counted in four interleaved parts: most values fall into one
   * or two buckets, and increments of one counter in a row wait on each other. */
  uint8_t up[4][65] = {{0}}, down[4][65] = {{0}}; /* c <= 128 fits a byte */
  size_t k4 = c & ~(size_t)3;
  if (use_up) {
    for (size_t k = 0; k < k4; k += 4) {
      up[0][bit_len(y[k + 0] - mn)]++;
      up[1][bit_len(y[k + 1] - mn)]++;
      up[2][bit_len(y[k + 2] - mn)]++;
      up[3][bit_len(y[k + 3] - mn)]++;
    }
    for (size_t k = k4; k < c; k++)
      up[0][bit_len(y[k] - mn)]++;
    for (unsigned b = 0; b <= 64; b++)
      up[0][b] += up[1][b] + up[2][b] + up[3][b];
  }
  if (use_down) {
    for (size_t k = 0; k < k4; k += 4) {
      down[0][bit_len(mx - y[k + 0])]++;
      down[1][bit_len(mx - y[k + 1])]++;
      down[2][bit_len(mx - y[k + 2])]++;
      down[3][bit_len(mx - y[k + 3])]++;
    }
    for (size_t k = k4; k < c; k++)
      down[0][bit_len(mx - y[k])]++;
    for (unsigned b = 0; b <= 64; b++)
      down[0][b] += down[1][b] + down[2][b] + down[3][b];
  }
  size_t exc_up = use_up ? 0 : c, exc_down = use_down ? 0 : c;
  for (unsigned w = kmax; w-- > 0 && (exc_up <= exc_max || exc_down <= exc_max);) {
    exc_up += up[0][w + 1];
    exc_down += down[0][w + 1];
    size_t cost_up = c * w + 16 + exc_up * (8 + kmax - w);
    size_t cost_down = c * w + 16 + exc_down * (8 + 64 - w);
    if (exc_up <= exc_max && cost_up < *best) {
      *best = cost_up;
      bp->base = mn;
      bp->w = w;
      bp->n_exc = (unsigned)exc_up;
      bp->ew = kmax - w;
    }
    if (exc_down <= exc_max && cost_down < *best) {
      *best = cost_down;
      bp->base = mx - low_mask(w);
      bp->w = w;
      bp->n_exc = (unsigned)exc_down;
      bp->ew = 64 - w;
    }
  }
}

/* Plans a block of c values. They are coded either in a window above the minimum, with the
 * largest values as exceptions (gaps in a regular series), or in a window below the maximum,
 * with the smallest as exceptions (counter resets, a clock stepping back), whichever is
 * cheaper. Width w costs c*w bits of low parts, plus 16 bits of exception header and 8 + ew
 * bits per exception when there are exceptions; an exception below the window wraps around
 * and needs ew = 64 - w. */
static void plan_block(const uint64_t *y, size_t c, block_plan *bp) {
  /* Two running minima and maxima halve the compare-and-move chains (64-bit compares do not
   * vectorise on baseline x86-64). */
  int64_t smn = (int64_t)y[0], smx = (int64_t)y[0], smn2 = smn, smx2 = smx;
  size_t k = 1;
  for (; k + 1 < c; k += 2) {
    int64_t v = (int64_t)y[k], v2 = (int64_t)y[k + 1];
    smn = v < smn ? v : smn;
    smx = v > smx ? v : smx;
    smn2 = v2 < smn2 ? v2 : smn2;
    smx2 = v2 > smx2 ? v2 : smx2;
  }
  if (k < c) {
    smn = (int64_t)y[k] < smn ? (int64_t)y[k] : smn;
    smx = (int64_t)y[k] > smx ? (int64_t)y[k] : smx;
  }
  smn = smn2 < smn ? smn2 : smn;
  smx = smx2 > smx ? smx2 : smx;
  const uint64_t mn = (uint64_t)smn, mx = (uint64_t)smx;
  const unsigned kmax = bit_len(mx - mn);
  size_t best = c * kmax;
  bp->base = mn;
  bp->w = kmax;
  bp->n_exc = bp->ew = 0;
  /* Exceptions are for outliers: allowing more than a quarter of the block rarely pays. When
   * more than that many values sit in the top half of the range seen from either end, no
   * narrower width can win and the histograms are skipped -- the usual case for noise. */
  const size_t exc_max = c / 4;
  if (kmax > 0 && exc_max > 0) {
    const uint64_t half = (uint64_t)1 << (kmax - 1);
    size_t top_up = 0, top_down = 0;
    for (k = 0; k < c; k++) {
      top_up += y[k] - mn >= half;
      top_down += mx - y[k] >= half;
    }
    if (top_up <= exc_max || top_down <= exc_max)
      plan_exceptions(y, c, mn, mx, exc_max, top_up <= exc_max, top_down <= exc_max, bp, &best);
  }
  bp->bits = best + 8 + 8 * uvarint_len(pl_zigzag_enc((int64_t)bp->base));
}

/* Largest encoded block: head, base, exception header and positions, and 64 bits per value
 * split between low and high parts, plus the bit writer's 8 bytes of slack, twice. */
#define BLOCK_BYTES_MAX (1 + 10 + 2 + BLOCK + BLOCK * 8 + 16)

/* Writes a planned block at dst; returns the number of bytes written. */
static size_t write_block(uint8_t *dst, const uint64_t *y, size_t c, const block_plan *bp) {
  size_t pos = 0;
  dst[pos++] = (uint8_t)(bp->w | (bp->n_exc ? 0x80 : 0));
  put_uvarint_at(dst, &pos, pl_zigzag_enc((int64_t)bp->base));
  const uint64_t mask = low_mask(bp->w);
  if (bp->n_exc) {
    dst[pos++] = (uint8_t)bp->n_exc;
    dst[pos++] = (uint8_t)bp->ew;
    for (size_t k = 0; k < c; k++)
      if ((y[k] - bp->base) & ~mask)
        dst[pos++] = (uint8_t)k;
    bitw hw = {dst + pos, 0, 0};
    for (size_t k = 0; k < c; k++) {
      uint64_t u = y[k] - bp->base;
      if (u & ~mask)
        bitw_put(&hw, u >> bp->w, bp->ew);
    }
    pos = (size_t)(bitw_finish(&hw) - dst);
  }
  if (bp->w) {
    bitw lw = {dst + pos, 0, 0};
    for (size_t k = 0; k < c; k++)
      bitw_put(&lw, (y[k] - bp->base) & mask, bp->w);
    pos = (size_t)(bitw_finish(&lw) - dst);
  }
  return pos;
}

/* Unpacks c values of w bits from src, which has at least bits_to_bytes(c*w) + 8 readable
 * bytes, adding base. */
static void unpack(const uint8_t *src, size_t c, unsigned w, uint64_t base, uint64_t *out) {
  if (w == 0) {
    for (size_t k = 0; k < c; k++)
      out[k] = base;
  } else if (w <= 56) {
    const uint64_t mask = low_mask(w);
    size_t bit = 0;
    for (size_t k = 0; k < c; k++, bit += w)
      out[k] = base + ((load64le(src + (bit >> 3)) >> (bit & 7)) & mask);
  } else {
    const uint64_t mask = low_mask(w);
    size_t bit = 0;
    for (size_t k = 0; k < c; k++, bit += w) {
      unsigned sh = bit & 7;
      uint64_t v = load64le(src + (bit >> 3)) >> sh;
      if (sh)
        v |= (uint64_t)src[(bit >> 3) + 8] << (64 - sh);
      out[k] = base + (v & mask);
    }
  }
}

/* Decodes one block of c values from p[*pos..len) into y. */
static int read_block(const uint8_t *p, size_t len, size_t *pos, size_t c, uint64_t *y) {
  size_t i = *pos;
  uint64_t base_z;
  if (i >= len)
    return PL_ECORRUPT;
  uint8_t head = p[i++];
  unsigned w = head & 0x7f;
  if (w > 64)
    return PL_ECORRUPT;
  RD(get_uvarint(p, len, &i, &base_z));
  uint64_t base = (uint64_t)pl_zigzag_dec(base_z);
  unsigned n_exc = 0, ew = 0;
  const uint8_t *exc_pos = NULL, *exc_bits = NULL;
  size_t exc_bytes = 0;
  if (head & 0x80) {
    if (len - i < 2)
      return PL_ECORRUPT;
    n_exc = p[i++];
    ew = p[i++];
    if (n_exc == 0 || n_exc > c || ew == 0 || ew + w > 64)
      return PL_ECORRUPT;
    if (len - i < n_exc)
      return PL_ECORRUPT;
    exc_pos = p + i;
    i += n_exc;
    exc_bytes = bits_to_bytes((size_t)n_exc * ew);
    if (len - i < exc_bytes)
      return PL_ECORRUPT;
    exc_bits = p + i;
    i += exc_bytes;
  }
  size_t low_bytes = bits_to_bytes(c * w);
  if (len - i < low_bytes)
    return PL_ECORRUPT;
  if (len - i >= low_bytes + 8) {
    unpack(p + i, c, w, base, y);
  } else {
    /* Too close to the end to read whole words: work from a padded copy. */
    uint8_t tmp[BLOCK * 8 + 8];
    memcpy(tmp, p + i, low_bytes);
    memset(tmp + low_bytes, 0, 8);
    unpack(tmp, c, w, base, y);
  }
  i += low_bytes;
  if (n_exc) {
    bitr r;
    bitr_init(&r, exc_bits, exc_bytes);
    int last = -1;
    for (unsigned e = 0; e < n_exc; e++) {
      uint64_t high;
      if (exc_pos[e] >= c || (int)exc_pos[e] <= last)
        return PL_ECORRUPT;
      last = exc_pos[e];
      RD(bitr_get64(&r, ew, &high));
      y[last] += high << w; /* the low bits are already in place */
    }
  }
  *pos = i;
  return 0;
}

/* ---- integer codec: sequences ------------------------------------------------------------- */

/* x[0..cnt) = transformed values j0.. of v under mode (v has enough values). Reading int64
 * through uint64_t is allowed: they are the signed and unsigned variants of one type. */
static void seq_fill(const int64_t *v, int mode, size_t j0, size_t cnt, uint64_t *x) {
  const uint64_t *u = (const uint64_t *)v + j0;
  switch (mode) {
  case SEQ_RAW:
    for (size_t k = 0; k < cnt; k++)
      x[k] = u[k];
    break;
  case SEQ_DELTA:
    for (size_t k = 0; k < cnt; k++)
      x[k] = u[k + 1] - u[k];
    break;
  default:
    for (size_t k = 0; k < cnt; k++)
      x[k] = u[k + 2] - 2 * u[k + 1] + u[k];
    break;
  }
}

static void seq_divide(const divisor *dv, uint64_t *x, size_t cnt) {
  if (dv->d == 1)
    return;
  for (size_t k = 0; k < cnt; k++)
    x[k] = divisor_div(dv, x[k]);
}

/* Estimated size in bits of v under mode, from at most SAMPLE_BLOCKS evenly spread blocks:
 * the shape of the data rarely changes within a chunk, and the estimate is the bulk of the
 * encoder's work. */
#define SAMPLE_BLOCKS 2
static size_t seq_estimate(const int64_t *v, size_t n, int mode) {
  size_t m = n > (size_t)mode ? n - (size_t)mode : 0;
  size_t bits = 8;
  if (mode >= 1)
    bits += 8 * uvarint_len(pl_zigzag_enc(v[0]));
  if (mode >= 2 && n >= 2)
    bits += 8 * uvarint_len(pl_zigzag_enc((int64_t)((uint64_t)v[1] - (uint64_t)v[0])));
  if (m == 0)
    return bits + 8;
  size_t nb = (m + BLOCK - 1) / BLOCK, ns = nb < SAMPLE_BLOCKS ? nb : SAMPLE_BLOCKS;
  uint64_t x[SAMPLE_BLOCKS * BLOCK];
  size_t cnt[SAMPLE_BLOCKS];
  gcd_acc g = {0};
  for (size_t s = 0; s < ns; s++) {
    size_t b = s * nb / ns, j0 = b * BLOCK;
    cnt[s] = m - j0 < BLOCK ? m - j0 : BLOCK;
    seq_fill(v, mode, j0, cnt[s], x + s * BLOCK);
    gcd_add(&g, x + s * BLOCK, cnt[s]);
  }
  divisor dv;
  divisor_init(&dv, gcd_result(&g));
  bits += 8 * uvarint_len(dv.d);
  size_t sample_bits = 0, sample_vals = 0;
  for (size_t s = 0; s < ns; s++) {
    block_plan bp;
    seq_divide(&dv, x + s * BLOCK, cnt[s]);
    plan_block(x + s * BLOCK, cnt[s], &bp);
    sample_bits += bp.bits;
    sample_vals += cnt[s];
  }
  return bits + (ns == nb ? sample_bits : sample_bits * m / sample_vals);
}

/* Encodes v with the cheapest of the modes allowed by modes_mask (bit i allows mode i). */
static int seq_encode(const int64_t *v, size_t n, unsigned modes_mask, pl_buf *out) {
  int rc, mode = SEQ_RAW;
  if (n == 0)
    return 0;
  size_t best = SIZE_MAX;
  for (int md = 0; md < SEQ_MODES; md++) {
    if (!(modes_mask & (1u << md)))
      continue;
    size_t est = seq_estimate(v, n, md);
    if (est < best) {
      best = est;
      mode = md;
    }
  }
  size_t m = n > (size_t)mode ? n - (size_t)mode : 0;
  uint64_t x[BLOCK];

  /* The common divisor of every transformed value. */
  gcd_acc g = {0};
  for (size_t j0 = 0; j0 < m && g.g != 1; j0 += BLOCK) {
    size_t c = m - j0 < BLOCK ? m - j0 : BLOCK;
    seq_fill(v, mode, j0, c, x);
    gcd_add(&g, x, c);
  }
  divisor dv;
  divisor_init(&dv, gcd_result(&g));

  if ((rc = pl_buf_reserve(out, 1 + 3 * 10)) < 0)
    return rc;
  size_t pos = out->len;
  out->data[pos++] = (uint8_t)mode;
  put_uvarint_at(out->data, &pos, dv.d);
  if (mode >= 1)
    put_uvarint_at(out->data, &pos, pl_zigzag_enc(v[0]));
  if (mode >= 2 && n >= 2)
    put_uvarint_at(out->data, &pos, pl_zigzag_enc((int64_t)((uint64_t)v[1] - (uint64_t)v[0])));
  out->len = pos;

  for (size_t j0 = 0; j0 < m; j0 += BLOCK) {
    size_t c = m - j0 < BLOCK ? m - j0 : BLOCK;
    block_plan bp;
    seq_fill(v, mode, j0, c, x);
    seq_divide(&dv, x, c);
    plan_block(x, c, &bp);
    if ((rc = pl_buf_reserve(out, BLOCK_BYTES_MAX)) < 0)
      return rc;
    out->len += write_block(out->data + out->len, x, c, &bp);
  }
  return 0;
}

/* Streaming decoder: hands out the values a block at a time so that callers can convert them
 * (decimal floats) without a buffer of n integers. */
typedef struct seq_rd {
  const uint8_t *p;
  size_t len, pos;
  size_t n, done, m, m_done;
  unsigned mode;
  uint64_t d, prev, delta;
} seq_rd;

static int seq_open(seq_rd *s, const uint8_t *p, size_t len, size_t n) {
  uint64_t u;
  memset(s, 0, sizeof *s);
  s->p = p;
  s->len = len;
  s->n = n;
  if (n == 0)
    return len == 0 ? 0 : PL_ECORRUPT;
  if (len < 1 || p[0] >= SEQ_MODES)
    return PL_ECORRUPT;
  s->mode = p[0];
  s->pos = 1;
  RD(get_uvarint(p, len, &s->pos, &s->d));
  if (s->d == 0 || s->d > (uint64_t)INT64_MAX)
    return PL_ECORRUPT;
  s->m = n > s->mode ? n - s->mode : 0;
  if (s->mode >= 1) {
    RD(get_uvarint(p, len, &s->pos, &u));
    s->prev = (uint64_t)pl_zigzag_dec(u);
  }
  if (s->mode >= 2 && n >= 2) {
    RD(get_uvarint(p, len, &s->pos, &u));
    s->delta = (uint64_t)pl_zigzag_dec(u);
  }
  return 0;
}

/* Writes the next values (at most BLOCK + 2) to out and returns how many; 0 at the end, after
 * checking that every byte was used. */
static int seq_next(seq_rd *s, int64_t *out) {
  int rc;
  if (s->done == s->n)
    return s->pos == s->len ? 0 : PL_ECORRUPT;
  size_t k = 0;
  /* The values carried in the header come out with the first block. */
  if (s->done == 0 && s->mode >= 1) {
    out[k++] = (int64_t)s->prev;
    if (s->mode >= 2 && s->n >= 2) {
      s->prev += s->delta;
      out[k++] = (int64_t)s->prev;
    }
  }
  if (s->m_done < s->m) {
    size_t c = s->m - s->m_done < BLOCK ? s->m - s->m_done : BLOCK;
    uint64_t *y = (uint64_t *)(out + k);
    if ((rc = read_block(s->p, s->len, &s->pos, c, y)) < 0)
      return rc;
    const uint64_t d = s->d;
    switch (s->mode) {
    case SEQ_RAW:
      if (d != 1)
        for (size_t i = 0; i < c; i++)
          y[i] *= d;
      break;
    case SEQ_DELTA: {
      uint64_t prev = s->prev;
      for (size_t i = 0; i < c; i++)
        y[i] = prev += y[i] * d;
      s->prev = prev;
      break;
    }
    default: {
      uint64_t prev = s->prev, delta = s->delta;
      for (size_t i = 0; i < c; i++) {
        delta += y[i] * d;
        y[i] = prev += delta;
      }
      s->prev = prev;
      s->delta = delta;
      break;
    }
    }
    s->m_done += c;
    k += c;
  }
  s->done += k;
  return (int)k;
}

int tsdb_codec_int_encode(const int64_t *v, size_t n, pl_buf *out) {
  if (!out || (n && !v) || n > TSDB_CHUNK_POINTS_MAX)
    return PL_EINVAL;
  size_t start = out->len;
  int rc = seq_encode(v, n, (1u << SEQ_RAW) | (1u << SEQ_DELTA) | (1u << SEQ_DOD), out);
  if (rc < 0)
    out->len = start;
  return rc;
}

int tsdb_codec_int_decode(const uint8_t *p, size_t len, size_t n, int64_t *out) {
  seq_rd s;
  int rc;
  if ((!p && len) || (n && !out) || n > TSDB_CHUNK_POINTS_MAX)
    return PL_EINVAL;
  if ((rc = seq_open(&s, p, len, n)) < 0)
    return rc;
  /* seq_next writes up to BLOCK + 2 values; keep that inside out[0..n). */
  while (n - s.done >= BLOCK + 2) {
    if ((rc = seq_next(&s, out + s.done)) <= 0)
      return rc < 0 ? rc : PL_ECORRUPT;
  }
  int64_t tail[BLOCK + 2];
  size_t base = s.done;
  while ((rc = seq_next(&s, tail + (s.done - base))) > 0) {
  }
  if (rc < 0)
    return rc;
  if (n > base)
    memcpy(out + base, tail, (n - base) * sizeof *out);
  return 0;
}

/* ---- float codec: Gorilla XOR --------------------------------------------------------------- */

static int gorilla_encode(const double *v, size_t n, pl_buf *out) {
  /* At most 2 + 12 + 64 bits per value. */
  int rc = pl_buf_reserve(out, 1 + n * 10 + 16);
  if (rc < 0)
    return rc;
  uint8_t *dst = out->data + out->len;
  dst[0] = 0;
  bitw w = {dst + 1, 0, 0};
  uint64_t prev = f64_bits(v[0]);
  bitw_put(&w, prev, 64);
  unsigned lead_w = 0, trail_w = 0, have_window = 0;
  for (size_t i = 1; i < n; i++) {
    uint64_t cur = f64_bits(v[i]), x = cur ^ prev;
    prev = cur;
    if (x == 0) {
      bitw_put(&w, 0, 1);
      continue;
    }
    unsigned lead = (unsigned)__builtin_clzll(x), trail = (unsigned)__builtin_ctzll(x);
    unsigned len = 64 - lead - trail;
    /* Reuse the window when the value fits it, unless a fresh, tighter window is cheaper
     * even after paying 12 bits to describe it. */
    if (have_window && lead >= lead_w && trail >= trail_w && 64 - lead_w - trail_w <= len + 12) {
      bitw_put(&w, 1, 2); /* '1' then '0' */
      bitw_put(&w, x >> trail_w, 64 - lead_w - trail_w);
    } else {
      bitw_put(&w, 3, 2); /* '1' then '1' */
      bitw_put(&w, lead | (uint64_t)(len - 1) << 6, 12);
      bitw_put(&w, x >> trail, len);
      lead_w = lead;
      trail_w = trail;
      have_window = 1;
    }
  }
  out->len = (size_t)(bitw_finish(&w) - out->data);
  return 0;
}

static int gorilla_decode(const uint8_t *p, size_t len, size_t n, double *out) {
  bitr r;
  uint64_t prev, bit, x, hdr;
  unsigned lead_w = 0, trail_w = 0, have_window = 0;
  bitr_init(&r, p, len);
  RD(bitr_get64(&r, 64, &prev));
  out[0] = f64_from(prev);
  for (size_t i = 1; i < n; i++) {
    RD(bitr_get(&r, 1, &bit));
    if (bit) {
      RD(bitr_get(&r, 1, &bit));
      if (bit) {
        RD(bitr_get(&r, 12, &hdr));
        unsigned lead = hdr & 63, sig = (unsigned)(hdr >> 6) + 1;
        if (lead + sig > 64)
          return PL_ECORRUPT;
        lead_w = lead;
        trail_w = 64 - lead - sig;
        have_window = 1;
      } else if (!have_window) {
        return PL_ECORRUPT;
      }
      RD(bitr_get64(&r, 64 - lead_w - trail_w, &x));
      prev ^= x << trail_w;
    }
    out[i] = f64_from(prev);
  }
  return bitr_consumed(&r, p) == len ? 0 : PL_ECORRUPT;
}

/* ---- float codec: decimal ----------------------------------------------------------------- */

#define DEC_E_MAX 18
static const double pow10_tab[DEC_E_MAX + 1] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,
                                                1e7,  1e8,  1e9,  1e10, 1e11, 1e12, 1e13,
                                                1e14, 1e15, 1e16, 1e17, 1e18};

/* The integer d with d / 10^e == v bit for bit, if there is one we can find cheaply. Scaled
 * values at or beyond 2^51 (and NaN, infinities) are refused: they would lose the digits the
 * round trip needs anyway, and the limit keeps the rounding trick below exact. */
static inline int decimal_of(double v, int e, int64_t *d) {
  double x = v * pow10_tab[e];
  if (!(x > -0x1p51 && x < 0x1p51))
    return 0;
  /* Adding and subtracting 1.5 * 2^52 rounds to an integer without a libm call. */
  double r = (x + 0x1.8p52) - 0x1.8p52;
  int64_t i = (int64_t)r;
  if (f64_bits((double)i / pow10_tab[e]) != f64_bits(v))
    return 0;
  *d = i;
  return 1;
}

/* Smallest exponent that represents v exactly, or -1. */
static int decimal_min_e(double v) {
  int64_t d;
  for (int e = 0; e <= DEC_E_MAX; e++) {
    if (decimal_of(v, e, &d))
      return e;
    if (!(v * pow10_tab[e] > -0x1p51 && v * pow10_tab[e] < 0x1p51))
      return -1;
  }
  return -1;
}

/* Picks the exponent for decimal mode from a sample of four runs of 16 consecutive values,
 * minimising exceptions (72 bits each) plus the bit lengths of the sample's deltas; -1 when
 * decimal mode does not fit the data (more than half the sample would be exceptions). */
#define DEC_RUNS 4
#define DEC_RUN_LEN 16
static int decimal_choose(const double *v, size_t n) {
  size_t idx[DEC_RUNS * DEC_RUN_LEN];
  size_t ns = 0;
  if (n <= DEC_RUNS * DEC_RUN_LEN) {
    for (size_t i = 0; i < n; i++)
      idx[ns++] = i;
  } else {
    for (size_t r = 0; r < DEC_RUNS; r++) {
      size_t start = r * (n - DEC_RUN_LEN) / (DEC_RUNS - 1);
      for (size_t k = 0; k < DEC_RUN_LEN; k++)
        idx[ns++] = start + k;
    }
  }
  unsigned seen = 0; /* bit e: some sample value needs exactly e */
  for (size_t k = 0; k < ns; k++) {
    int e = decimal_min_e(v[idx[k]]);
    if (e >= 0)
      seen |= 1u << e;
  }
  int best_e = -1;
  size_t best_cost = SIZE_MAX;
  for (int e = 0; e <= DEC_E_MAX; e++) {
    if (!(seen & (1u << e)))
      continue;
    size_t cost = 0, exc = 0;
    int64_t prev = 0, d;
    int have_prev = 0;
    for (size_t k = 0; k < ns; k++) {
      if (k > 0 && idx[k] != idx[k - 1] + 1)
        have_prev = 0;
      if (!decimal_of(v[idx[k]], e, &d)) {
        exc++;
        cost += 72;
        continue;
      }
      if (have_prev)
        cost += bit_len(pl_zigzag_enc((int64_t)((uint64_t)d - (uint64_t)prev)));
      prev = d;
      have_prev = 1;
    }
    if (exc * 2 <= ns && cost < best_cost) {
      best_cost = cost;
      best_e = e;
    }
  }
  return best_e;
}

static int decimal_encode(const double *v, size_t n, int e, pl_buf *out) {
  int rc;
  int64_t *ints = malloc(n * sizeof *ints);
  if (!ints)
    return PL_ENOMEM;
  pl_buf exc;
  pl_buf_init(&exc, 0);
  size_t n_exc = 0, last_exc = 0;
  int64_t last = 0, d;
  for (size_t i = 0; i < n; i++) {
    if (decimal_of(v[i], e, &d)) {
      ints[i] = last = d;
      continue;
    }
    /* Exceptions repeat the previous integer, which costs nothing in delta mode. */
    ints[i] = last;
    if ((rc = pl_buf_put_uvarint(&exc, n_exc ? i - last_exc - 1 : i)) < 0 ||
        (rc = pl_buf_put_u64le(&exc, f64_bits(v[i]))) < 0)
      goto done;
    last_exc = i;
    n_exc++;
  }
  if ((rc = pl_buf_append_byte(out, 1)) < 0 || (rc = pl_buf_append_byte(out, (uint8_t)e)) < 0 ||
      (rc = pl_buf_put_uvarint(out, n_exc)) < 0 || (rc = pl_buf_append(out, exc.data, exc.len)) < 0)
    goto done;
  rc = seq_encode(ints, n, (1u << SEQ_RAW) | (1u << SEQ_DELTA) | (1u << SEQ_DOD), out);
done:
  free(ints);
  pl_buf_free(&exc);
  return rc;
}

static int decimal_decode(const uint8_t *p, size_t len, size_t n, double *out) {
  size_t pos = 0, exc_start, next = 0; /* next: the smallest position the next exception may have */
  uint64_t n_exc, gap = 0;
  int rc;
  if (len < 1 || p[0] > DEC_E_MAX)
    return PL_ECORRUPT;
  const double scale = pow10_tab[p[pos++]];
  RD(get_uvarint(p, len, &pos, &n_exc));
  if (n_exc > n)
    return PL_ECORRUPT;
  exc_start = pos;
  for (uint64_t k = 0; k < n_exc; k++) {
    RD(get_uvarint(p, len, &pos, &gap));
    if (gap >= n - next)
      return PL_ECORRUPT;
    next += (size_t)gap + 1;
    if (len - pos < 8)
      return PL_ECORRUPT;
    pos += 8;
  }
  seq_rd s;
  if ((rc = seq_open(&s, p + pos, len - pos, n)) < 0)
    return rc;
  int64_t tmp[BLOCK + 2];
  size_t done = 0;
  while ((rc = seq_next(&s, tmp)) > 0) {
    for (int k = 0; k < rc; k++)
      out[done + (size_t)k] = (double)tmp[k] / scale;
    done += (size_t)rc;
  }
  if (rc < 0)
    return rc;
  pos = exc_start;
  next = 0;
  for (uint64_t k = 0; k < n_exc; k++) {
    get_uvarint(p, len, &pos, &gap); /* validated above */
    next += (size_t)gap;
    out[next++] = f64_from(load64le(p + pos));
    pos += 8;
  }
  return 0;
}

int tsdb_codec_float_encode(const double *v, size_t n, pl_buf *out) {
  int rc;
  if (!out || (n && !v) || n > TSDB_CHUNK_POINTS_MAX)
    return PL_EINVAL;
  if (n == 0)
    return 0;
  size_t start = out->len;
  int e = decimal_choose(v, n);
  if (e < 0) {
    if ((rc = gorilla_encode(v, n, out)) < 0)
      out->len = start;
    return rc;
  }
  if ((rc = decimal_encode(v, n, e, out)) < 0) {
    out->len = start;
    return rc;
  }
  /* Decimal data of a few digits per step lands far below 16 bits a value, where XOR coding
   * cannot follow; above that, let Gorilla compete. */
  size_t dec_bytes = out->len - start;
  if (dec_bytes * 8 <= n * 16)
    return 0;
  pl_buf g;
  pl_buf_init(&g, 0);
  if ((rc = gorilla_encode(v, n, &g)) == 0 && g.len < dec_bytes) {
    out->len = start;
    rc = pl_buf_append(out, g.data, g.len); /* cannot fail: it fits where the longer one was */
  }
  pl_buf_free(&g);
  if (rc == PL_ENOMEM)
    rc = 0; /* the decimal encoding is already in place */
  return rc;
}

int tsdb_codec_float_decode(const uint8_t *p, size_t len, size_t n, double *out) {
  if ((!p && len) || (n && !out) || n > TSDB_CHUNK_POINTS_MAX)
    return PL_EINVAL;
  if (n == 0)
    return len == 0 ? 0 : PL_ECORRUPT;
  if (len < 1)
    return PL_ECORRUPT;
  switch (p[0]) {
  case 0: return gorilla_decode(p + 1, len - 1, n, out);
  case 1: return decimal_decode(p + 1, len - 1, n, out);
  default: return PL_ECORRUPT;
  }
}

/* ---- bool codec ----------------------------------------------------------------------------- */

int tsdb_codec_bool_encode(const uint8_t *v, size_t n, pl_buf *out) {
  int rc;
  if (!out || (n && !v) || n > TSDB_CHUNK_POINTS_MAX)
    return PL_EINVAL;
  if (n == 0)
    return 0;
  size_t runs_bytes = 2, run = 1, n_runs = 1;
  for (size_t i = 1; i < n; i++) {
    if (!v[i] == !v[i - 1]) {
      run++;
    } else {
      runs_bytes += uvarint_len(run);
      run = 1;
      n_runs++;
    }
  }
  runs_bytes += uvarint_len(run);
  size_t bitmap_bytes = 1 + bits_to_bytes(n), start = out->len;
  if ((rc = pl_buf_reserve(out, (runs_bytes < bitmap_bytes ? runs_bytes : bitmap_bytes) + 8)) < 0)
    return rc;
  uint8_t *dst = out->data + start;
  if (n_runs == 1) {
    dst[0] = 1;
    dst[1] = v[0] ? 1 : 0;
    out->len += 2;
  } else if (runs_bytes < bitmap_bytes) {
    size_t pos = 0;
    dst[pos++] = 2;
    dst[pos++] = v[0] ? 1 : 0;
    run = 1;
    for (size_t i = 1; i < n; i++) {
      if (!v[i] == !v[i - 1]) {
        run++;
      } else {
        put_uvarint_at(dst, &pos, run);
        run = 1;
      }
    }
    put_uvarint_at(dst, &pos, run);
    out->len += pos;
  } else {
    dst[0] = 0;
    memset(dst + 1, 0, bitmap_bytes - 1);
    for (size_t i = 0; i < n; i++)
      dst[1 + i / 8] |= (uint8_t)((v[i] ? 1u : 0u) << (i % 8));
    out->len += bitmap_bytes;
  }
  return 0;
}

int tsdb_codec_bool_decode(const uint8_t *p, size_t len, size_t n, uint8_t *out) {
  if ((!p && len) || (n && !out) || n > TSDB_CHUNK_POINTS_MAX)
    return PL_EINVAL;
  if (n == 0)
    return len == 0 ? 0 : PL_ECORRUPT;
  if (len < 2)
    return PL_ECORRUPT;
  switch (p[0]) {
  case 0:
    if (len != 1 + bits_to_bytes(n))
      return PL_ECORRUPT;
    if (n % 8 && p[len - 1] >> (n % 8))
      return PL_ECORRUPT;
    for (size_t i = 0; i < n; i++)
      out[i] = (p[1 + i / 8] >> (i % 8)) & 1;
    return 0;
  case 1:
    if (len != 2 || p[1] > 1)
      return PL_ECORRUPT;
    memset(out, p[1], n);
    return 0;
  case 2: {
    size_t pos = 2, done = 0;
    uint8_t val = p[1];
    uint64_t run;
    if (val > 1)
      return PL_ECORRUPT;
    while (done < n) {
      RD(get_uvarint(p, len, &pos, &run));
      if (run == 0 || run > n - done)
        return PL_ECORRUPT;
      memset(out + done, val, run);
      done += run;
      val ^= 1;
    }
    return pos == len ? 0 : PL_ECORRUPT;
  }
  default: return PL_ECORRUPT;
  }
}

/* ---- string codec --------------------------------------------------------------------------- */

#define DICT_MAX 256
#define DICT_SLOTS 512 /* open addressing, at most half full */

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3u;
  return h;
}

/* Fills idx[i] with the dictionary index of string i and first[] with the row of each
 * entry's first occurrence; returns the number of entries, or 0 when there are more than
 * DICT_MAX distinct strings. */
static size_t dict_build(const char *const *s, const uint32_t *lens, size_t n, uint8_t *idx,
                         uint32_t *first) {
  int16_t slot[DICT_SLOTS];
  size_t count = 0;
  memset(slot, 0xff, sizeof slot);
  for (size_t i = 0; i < n; i++) {
    const uint8_t *str = (const uint8_t *)s[i];
    size_t h = (size_t)(hash_bytes(str, lens[i]) % DICT_SLOTS);
    for (;;) {
      if (slot[h] < 0) {
        if (count == DICT_MAX)
          return 0;
        slot[h] = (int16_t)count;
        first[count] = (uint32_t)i;
        idx[i] = (uint8_t)count++;
        break;
      }
      uint32_t f = first[slot[h]];
      if (lens[f] == lens[i] && (lens[i] == 0 || memcmp(s[f], str, lens[i]) == 0)) {
        idx[i] = (uint8_t)slot[h];
        break;
      }
      h = (h + 1) % DICT_SLOTS;
    }
  }
  return count;
}

static int string_plain_payload(const char *const *s, const uint32_t *lens, size_t n, pl_buf *out) {
  int rc;
  for (size_t i = 0; i < n; i++)
    if ((rc = pl_buf_put_uvarint(out, lens[i])) < 0)
      return rc;
  for (size_t i = 0; i < n; i++)
    if ((rc = pl_buf_append(out, s[i], lens[i])) < 0)
      return rc;
  return 0;
}

static int string_encode(const char *const *s, const uint32_t *lens, size_t n, pl_buf *out) {
  int rc = 0;
  size_t total = 0, plain = 0;
  for (size_t i = 0; i < n; i++) {
    if (lens[i] && !s[i])
      return PL_EINVAL;
    total += lens[i];
    plain += uvarint_len(lens[i]);
    if (total > TSDB_CHUNK_BYTES_MAX)
      return PL_ELIMIT;
  }
  plain += total;

  uint8_t *idx = malloc(n);
  uint32_t first[DICT_MAX];
  if (!idx)
    return PL_ENOMEM;
  size_t count = dict_build(s, lens, n, idx, first), dict = SIZE_MAX;
  unsigned w = count ? bit_len(count - 1) : 0;
  if (count) {
    dict = uvarint_len(count) + bits_to_bytes(n * w);
    for (size_t k = 0; k < count; k++)
      dict += uvarint_len(lens[first[k]]) + lens[first[k]];
  }

  /* zstd only pays when there is something to squeeze. */
  pl_buf raw, z;
  pl_buf_init(&raw, 0);
  pl_buf_init(&z, 0);
  size_t zsize = SIZE_MAX;
  if (plain >= 64 && (dict == SIZE_MAX || dict > 64)) {
    size_t bound = ZSTD_compressBound(plain);
    if ((rc = string_plain_payload(s, lens, n, &raw)) < 0 || (rc = pl_buf_reserve(&z, bound)) < 0)
      goto done;
    size_t c = ZSTD_compress(z.data, bound, raw.data, raw.len, 3);
    if (!ZSTD_isError(c)) {
      z.len = c;
      zsize = uvarint_len(plain) + c;
    }
  }

  if (dict <= plain && dict <= zsize) {
    if ((rc = pl_buf_append_byte(out, 0)) < 0 || (rc = pl_buf_put_uvarint(out, count)) < 0)
      goto done;
    for (size_t k = 0; k < count; k++) {
      uint32_t f = first[k];
      if ((rc = pl_buf_put_uvarint(out, lens[f])) < 0 ||
          (rc = pl_buf_append(out, s[f], lens[f])) < 0)
        goto done;
    }
    if ((rc = pl_buf_reserve(out, bits_to_bytes(n * w) + 8)) < 0)
      goto done;
    bitw bw = {out->data + out->len, 0, 0};
    for (size_t i = 0; i < n; i++)
      bitw_put(&bw, idx[i], w);
    out->len = (size_t)(bitw_finish(&bw) - out->data);
  } else if (zsize < plain) {
    if ((rc = pl_buf_append_byte(out, 1)) < 0 || (rc = pl_buf_put_uvarint(out, plain)) < 0 ||
        (rc = pl_buf_append(out, z.data, z.len)) < 0)
      goto done;
  } else {
    if ((rc = pl_buf_append_byte(out, 2)) < 0)
      goto done;
    rc = string_plain_payload(s, lens, n, out);
  }
done:
  free(idx);
  pl_buf_free(&raw);
  pl_buf_free(&z);
  return rc;
}

int tsdb_codec_string_encode(const char *const *s, const uint32_t *lens, size_t n, pl_buf *out) {
  if (!out || (n && (!s || !lens)) || n > TSDB_CHUNK_POINTS_MAX)
    return PL_EINVAL;
  if (n == 0)
    return 0;
  size_t start = out->len;
  int rc = string_encode(s, lens, n, out);
  if (rc < 0)
    out->len = start;
  return rc;
}

/* Parses a plain payload (mode 2) at p[0..len) whose bytes stay where they are: s[] points
 * into p. */
static int plain_parse(const uint8_t *p, size_t len, size_t n, const char **s, uint32_t *lens) {
  size_t pos = 0, total = 0;
  uint64_t l;
  for (size_t i = 0; i < n; i++) {
    RD(get_uvarint(p, len, &pos, &l));
    if (l > len || l > UINT32_MAX)
      return PL_ECORRUPT;
    lens[i] = (uint32_t)l;
    total += l;
    if (total > len)
      return PL_ECORRUPT;
  }
  if (len - pos != total)
    return PL_ECORRUPT;
  for (size_t i = 0; i < n; i++) {
    s[i] = lens[i] ? (const char *)p + pos : "";
    pos += lens[i];
  }
  return 0;
}

static int string_decode(const uint8_t *p, size_t len, size_t n, const char **s, uint32_t *lens,
                         pl_buf *arena) {
  int rc;
  size_t pos = 1;
  uint64_t v;
  switch (p[0]) {
  case 0: {
    size_t off[DICT_MAX];
    uint32_t dlen[DICT_MAX];
    size_t dict_bytes = 0;
    RD(get_uvarint(p, len, &pos, &v));
    if (v == 0 || v > DICT_MAX)
      return PL_ECORRUPT;
    size_t count = (size_t)v;
    for (size_t k = 0; k < count; k++) {
      RD(get_uvarint(p, len, &pos, &v));
      if (v > len - pos)
        return PL_ECORRUPT;
      off[k] = pos;
      dlen[k] = (uint32_t)v;
      pos += (size_t)v;
      dict_bytes += (size_t)v;
    }
    unsigned w = bit_len(count - 1);
    if (len - pos != bits_to_bytes(n * w))
      return PL_ECORRUPT;
    /* Reserving first keeps arena->data still while we append and take pointers. */
    if ((rc = pl_buf_reserve(arena, dict_bytes)) < 0)
      return rc;
    const char *entry[DICT_MAX];
    for (size_t k = 0; k < count; k++) {
      entry[k] = dlen[k] ? (const char *)arena->data + arena->len : "";
      pl_buf_append(arena, p + off[k], dlen[k]); /* reserved */
    }
    bitr r;
    bitr_init(&r, p + pos, len - pos);
    for (size_t i = 0; i < n; i++) {
      uint64_t k = 0;
      if (w)
        RD(bitr_get(&r, w, &k));
      if (k >= count)
        return PL_ECORRUPT;
      s[i] = entry[k];
      lens[i] = dlen[k];
    }
    return 0;
  }
  case 1: {
    RD(get_uvarint(p, len, &pos, &v));
    if (v > TSDB_CHUNK_BYTES_MAX)
      return PL_ECORRUPT;
    size_t raw_len = (size_t)v;
    if ((rc = pl_buf_reserve(arena, raw_len)) < 0)
      return rc;
    uint8_t *dst = arena->data + arena->len;
    size_t got = ZSTD_decompress(dst, raw_len, p + pos, len - pos);
    if (ZSTD_isError(got) || got != raw_len)
      return PL_ECORRUPT;
    if ((rc = plain_parse(dst, raw_len, n, s, lens)) < 0)
      return rc;
    arena->len += raw_len;
    return 0;
  }
  case 2: {
    if ((rc = plain_parse(p + 1, len - 1, n, s, lens)) < 0)
      return rc;
    /* Copy the bytes (they follow the lengths) and move the pointers into the arena. */
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
      total += lens[i];
    if ((rc = pl_buf_reserve(arena, total)) < 0)
      return rc;
    const uint8_t *src = p + len - total;
    uint8_t *dst = arena->data + arena->len;
    if (total)
      memcpy(dst, src, total);
    for (size_t i = 0; i < n; i++)
      if (lens[i])
        s[i] = (const char *)dst + ((const uint8_t *)s[i] - src);
    arena->len += total;
    return 0;
  }
  default: return PL_ECORRUPT;
  }
}

int tsdb_codec_string_decode(const uint8_t *p, size_t len, size_t n, const char **s, uint32_t *lens,
                             pl_buf *arena) {
  if ((!p && len) || (n && (!s || !lens || !arena)) || n > TSDB_CHUNK_POINTS_MAX)
    return PL_EINVAL;
  if (n == 0)
    return len == 0 ? 0 : PL_ECORRUPT;
  if (len < 1)
    return PL_ECORRUPT;
  size_t start = arena->len;
  int rc = string_decode(p, len, n, s, lens, arena);
  if (rc < 0)
    arena->len = start;
  return rc;
}

/* ---- chunk ---------------------------------------------------------------------------------- */

#define CHUNK_VERSION 1
#define COL_HAS_BITMAP 0x01

/* Exact sum of int64 values as a 128-bit two's complement number (hi:lo). */
typedef struct sum128 {
  uint64_t lo;
  int64_t hi;
} sum128;

static inline void sum128_add(sum128 *s, int64_t v) {
  uint64_t lo = s->lo + (uint64_t)v;
  s->hi += (lo < s->lo) - (v < 0);
  s->lo = lo;
}

static void write_stats_float(pl_buf *st, const double *v, size_t m) {
  size_t nan = 0;
  int have = 0;
  double mn = 0, mx = 0, sum = 0;
  for (size_t i = 0; i < m; i++) {
    double x = v[i];
    if (x != x) {
      nan++;
      continue;
    }
    if (!have) {
      mn = mx = x;
      have = 1;
    } else {
      if (x < mn)
        mn = x;
      if (x > mx)
        mx = x;
    }
    sum += x;
  }
  if (!have)
    mn = mx = sum = f64_from(0x7ff8000000000000u); /* every value is NaN */
  pl_buf_put_uvarint(st, nan);
  pl_buf_put_u64le(st, f64_bits(mn));
  pl_buf_put_u64le(st, f64_bits(mx));
  pl_buf_put_u64le(st, f64_bits(sum));
  pl_buf_put_u64le(st, f64_bits(v[0]));
  pl_buf_put_u64le(st, f64_bits(v[m - 1]));
}

static void write_stats_int(pl_buf *st, const int64_t *v, size_t m) {
  int64_t mn = v[0], mx = v[0];
  sum128 sum = {0, 0};
  for (size_t i = 0; i < m; i++) {
    if (v[i] < mn)
      mn = v[i];
    if (v[i] > mx)
      mx = v[i];
    sum128_add(&sum, v[i]);
  }
  pl_buf_put_svarint(st, mn);
  pl_buf_put_svarint(st, mx);
  pl_buf_put_svarint(st, v[0]);
  pl_buf_put_svarint(st, v[m - 1]);
  if (sum.hi == ((int64_t)sum.lo < 0 ? -1 : 0)) {
    pl_buf_append_byte(st, 0);
    pl_buf_put_svarint(st, (int64_t)sum.lo);
  } else {
    pl_buf_append_byte(st, 1);
    pl_buf_put_u64le(st, f64_bits((double)sum.hi * 0x1p64 + (double)sum.lo));
  }
}

static void write_stats_bool(pl_buf *st, const uint8_t *v, size_t m) {
  size_t n_true = 0;
  for (size_t i = 0; i < m; i++)
    n_true += v[i] != 0;
  pl_buf_put_uvarint(st, n_true);
  pl_buf_append_byte(st, (uint8_t)((v[0] ? 1 : 0) | (v[m - 1] ? 2 : 0)));
}

/* Scratch for the values of the present rows of a column: n_points doubles, or pointers and
 * lengths. */
typedef struct chunk_scratch {
  void *mem;
  size_t n;
} chunk_scratch;

static int scratch_get(chunk_scratch *sc, size_t n, void **mem) {
  if (!sc->mem) {
    sc->mem = malloc(n * (sizeof(const char *) + sizeof(uint32_t) + sizeof(double)));
    if (!sc->mem)
      return PL_ENOMEM;
    sc->n = n;
  }
  *mem = sc->mem;
  return 0;
}

static int write_column(const tsdb_column_in *col, size_t n, pl_buf *out, chunk_scratch *sc) {
  int rc;
  size_t m = n;
  if (col->present) {
    m = 0;
    for (size_t i = 0; i < n; i++)
      m += col->present[i] != 0;
  }
  int bitmap = m < n;
  if ((rc = pl_buf_reserve(out, 2 + bits_to_bytes(n))) < 0)
    return rc;
  out->data[out->len++] = (uint8_t)col->type;
  out->data[out->len++] = bitmap ? COL_HAS_BITMAP : 0;
  if (bitmap) {
    uint8_t *bits = out->data + out->len;
    memset(bits, 0, bits_to_bytes(n));
    for (size_t i = 0; i < n; i++)
      bits[i / 8] |= (uint8_t)((col->present[i] ? 1u : 0u) << (i % 8));
    out->len += bits_to_bytes(n);
  }

  /* The values of the present rows, packed together. */
  const void *vals;
  const uint32_t *lens = NULL;
  void *mem = NULL;
  switch (col->type) {
  case TSDB_FLOAT: vals = col->v.f; break;
  case TSDB_INT: vals = col->v.i; break;
  case TSDB_BOOL: vals = col->v.b; break;
  case TSDB_STRING:
    vals = col->v.str.s;
    lens = col->v.str.lens;
    if (m && (!vals || !lens))
      return PL_EINVAL;
    break;
  default: return PL_EINVAL;
  }
  if (m && !vals)
    return PL_EINVAL;
  if (m && bitmap) {
    if ((rc = scratch_get(sc, n, &mem)) < 0)
      return rc;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
      if (!col->present[i])
        continue;
      switch (col->type) {
      case TSDB_FLOAT: ((double *)mem)[k] = col->v.f[i]; break;
      case TSDB_INT: ((int64_t *)mem)[k] = col->v.i[i]; break;
      case TSDB_BOOL: ((uint8_t *)mem)[k] = col->v.b[i]; break;
      default:
        ((const char **)mem)[k] = col->v.str.s[i];
        ((uint32_t *)((const char **)mem + n))[k] = col->v.str.lens[i];
        break;
      }
      k++;
    }
    vals = mem;
    if (col->type == TSDB_STRING)
      lens = (const uint32_t *)((const char **)mem + n);
  }

  /* Statistics go to a fixed buffer first so one check covers all their appends. The largest
   * take 51 bytes, so the appends to it cannot fail (and never reallocate: cap is 64). */
  if (m) {
    uint8_t st_mem[64];
    pl_buf st = {st_mem, 0, sizeof st_mem, sizeof st_mem - 1};
    switch (col->type) {
    case TSDB_FLOAT: write_stats_float(&st, vals, m); break;
    case TSDB_INT: write_stats_int(&st, vals, m); break;
    case TSDB_BOOL: write_stats_bool(&st, vals, m); break;
    default: break;
    }
    if ((rc = pl_buf_append(out, st.data, st.len)) < 0)
      return rc;
  }

  size_t data_start = out->len;
  switch (col->type) {
  case TSDB_FLOAT: rc = tsdb_codec_float_encode(vals, m, out); break;
  case TSDB_INT: rc = tsdb_codec_int_encode(vals, m, out); break;
  case TSDB_BOOL: rc = tsdb_codec_bool_encode(vals, m, out); break;
  default: rc = tsdb_codec_string_encode(vals, lens, m, out); break;
  }
  if (rc < 0)
    return rc;
  return prefix_length(out, data_start);
}

static int chunk_write(const int64_t *ts, size_t n, const tsdb_column_in *cols, size_t ncols,
                       pl_buf *out, chunk_scratch *sc) {
  int rc;
  int64_t ts_min = ts[0], ts_max = ts[0];
  for (size_t i = 1; i < n; i++) {
    if (ts[i] < ts_min)
      ts_min = ts[i];
    if (ts[i] > ts_max)
      ts_max = ts[i];
  }
  size_t start = out->len;
  if ((rc = pl_buf_reserve(out, 4 + 4 * 10)) < 0)
    return rc;
  size_t pos = out->len;
  out->data[pos++] = 'P';
  out->data[pos++] = 'C';
  out->data[pos++] = CHUNK_VERSION;
  out->data[pos++] = 0;
  put_uvarint_at(out->data, &pos, n);
  put_uvarint_at(out->data, &pos, ncols);
  put_uvarint_at(out->data, &pos, pl_zigzag_enc(ts_min));
  put_uvarint_at(out->data, &pos, (uint64_t)ts_max - (uint64_t)ts_min);
  out->len = pos;

  size_t data_start = out->len;
  if ((rc = tsdb_codec_int_encode(ts, n, out)) < 0 || (rc = prefix_length(out, data_start)) < 0)
    return rc;
  for (size_t c = 0; c < ncols; c++)
    if ((rc = write_column(&cols[c], n, out, sc)) < 0)
      return rc;
  if (out->len - start + 4 > TSDB_CHUNK_BYTES_MAX)
    return PL_ELIMIT;
  return pl_buf_put_u32le(out, pl_crc32c(0, out->data + start, out->len - start));
}

int tsdb_chunk_encode(const int64_t *ts, size_t n, const tsdb_column_in *cols, size_t ncols,
                      pl_buf *out) {
  if (!ts || !out || n == 0 || n > TSDB_CHUNK_POINTS_MAX || ncols > TSDB_CHUNK_COLUMNS_MAX ||
      (ncols && !cols))
    return PL_EINVAL;
  for (size_t c = 0; c < ncols; c++)
    if (cols[c].type < TSDB_FLOAT || cols[c].type > TSDB_STRING)
      return PL_EINVAL;
  chunk_scratch sc = {NULL, 0};
  size_t start = out->len;
  int rc = chunk_write(ts, n, cols, ncols, out, &sc);
  free(sc.mem);
  if (rc < 0)
    out->len = start;
  return rc;
}

static int read_f64(pl_reader *r, double *d) {
  uint64_t u;
  if (pl_read_u64le(r, &u) < 0)
    return PL_ECORRUPT;
  *d = f64_from(u);
  return 0;
}

static int read_stats(pl_reader *r, tsdb_type type, tsdb_stats *st) {
  uint64_t u;
  uint8_t b;
  uint32_t count = st->count; /* set by the caller from the bitmap */
  memset(st, 0, sizeof *st);
  st->count = count;
  if (type == TSDB_INT || type == TSDB_BOOL)
    st->sum_i_exact = 1;
  if (count == 0)
    return 0;
  switch (type) {
  case TSDB_FLOAT:
    RD(pl_read_uvarint(r, &u));
    if (u > count)
      return PL_ECORRUPT;
    st->nan_count = (uint32_t)u;
    RD(read_f64(r, &st->min));
    RD(read_f64(r, &st->max));
    RD(read_f64(r, &st->sum));
    RD(read_f64(r, &st->first));
    RD(read_f64(r, &st->last));
    return 0;
  case TSDB_INT:
    RD(pl_read_svarint(r, &st->min_i));
    RD(pl_read_svarint(r, &st->max_i));
    RD(pl_read_svarint(r, &st->first_i));
    RD(pl_read_svarint(r, &st->last_i));
    RD(pl_read_u8(r, &b));
    if (b == 0) {
      RD(pl_read_svarint(r, &st->sum_i));
      st->sum = (double)st->sum_i;
    } else if (b == 1) {
      RD(read_f64(r, &st->sum));
      st->sum_i_exact = 0;
      st->sum_i = st->sum > 0 ? INT64_MAX : INT64_MIN;
    } else {
      return PL_ECORRUPT;
    }
    st->min = (double)st->min_i;
    st->max = (double)st->max_i;
    st->first = (double)st->first_i;
    st->last = (double)st->last_i;
    return 0;
  case TSDB_BOOL:
    RD(pl_read_uvarint(r, &u));
    RD(pl_read_u8(r, &b));
    if (u > count || b > 3)
      return PL_ECORRUPT;
    st->sum_i = (int64_t)u;
    st->min_i = u == count;
    st->max_i = u > 0;
    st->first_i = b & 1;
    st->last_i = b >> 1;
    st->sum = (double)st->sum_i;
    st->min = (double)st->min_i;
    st->max = (double)st->max_i;
    st->first = (double)st->first_i;
    st->last = (double)st->last_i;
    return 0;
  default: return 0;
  }
}

static size_t popcount_bytes(const uint8_t *p, size_t n) {
  size_t c = 0, i = 0;
  for (; i + 8 <= n; i += 8)
    c += (size_t)__builtin_popcountll(load64le(p + i));
  for (; i < n; i++)
    c += (size_t)__builtin_popcount(p[i]);
  return c;
}

int tsdb_chunk_info_parse(const uint8_t *p, size_t len, tsdb_chunk_info *info) {
  pl_reader r;
  uint64_t u;
  uint8_t b;
  if ((!p && len) || !info)
    return PL_EINVAL;
  if (len < 4 + 4 + 4 || len > TSDB_CHUNK_BYTES_MAX)
    return PL_ECORRUPT;
  uint32_t crc = (uint32_t)p[len - 4] | (uint32_t)p[len - 3] << 8 | (uint32_t)p[len - 2] << 16 |
                 (uint32_t)p[len - 1] << 24;
  if (pl_crc32c(0, p, len - 4) != crc)
    return PL_ECORRUPT;
  if (p[0] != 'P' || p[1] != 'C' || p[2] != CHUNK_VERSION || p[3] != 0)
    return PL_ECORRUPT;

  /* Parsed into a local so that *info is written only on success. */
  tsdb_chunk_info ci;
  pl_reader_init(&r, p + 4, len - 8);
  RD(pl_read_uvarint(&r, &u));
  if (u == 0 || u > TSDB_CHUNK_POINTS_MAX)
    return PL_ECORRUPT;
  ci.n_points = (uint32_t)u;
  RD(pl_read_uvarint(&r, &u));
  if (u > TSDB_CHUNK_COLUMNS_MAX)
    return PL_ECORRUPT;
  ci.n_columns = (uint32_t)u;
  RD(pl_read_svarint(&r, &ci.ts_min));
  RD(pl_read_uvarint(&r, &u));
  ci.ts_max = (int64_t)((uint64_t)ci.ts_min + u);
  if (ci.ts_max < ci.ts_min)
    return PL_ECORRUPT;
  RD(pl_read_uvarint(&r, &u));
  if (u > pl_reader_left(&r))
    return PL_ECORRUPT;
  ci.ts_data = r.p + r.pos;
  ci.ts_len = (size_t)u;
  r.pos += ci.ts_len;

  const size_t n = ci.n_points, bitmap_bytes = bits_to_bytes(n);
  for (uint32_t c = 0; c < ci.n_columns; c++) {
    tsdb_column_info *col = &ci.cols[c];
    RD(pl_read_u8(&r, &b));
    if (b < TSDB_FLOAT || b > TSDB_STRING)
      return PL_ECORRUPT;
    col->type = (tsdb_type)b;
    RD(pl_read_u8(&r, &b));
    if (b & ~COL_HAS_BITMAP)
      return PL_ECORRUPT;
    col->present_bits = NULL;
    col->stats.count = ci.n_points;
    if (b & COL_HAS_BITMAP) {
      if (pl_reader_left(&r) < bitmap_bytes)
        return PL_ECORRUPT;
      col->present_bits = r.p + r.pos;
      r.pos += bitmap_bytes;
      if (n % 8 && col->present_bits[bitmap_bytes - 1] >> (n % 8))
        return PL_ECORRUPT;
      col->stats.count = (uint32_t)popcount_bytes(col->present_bits, bitmap_bytes);
    }
    if (read_stats(&r, col->type, &col->stats) < 0)
      return PL_ECORRUPT;
    RD(pl_read_uvarint(&r, &u));
    if (u > pl_reader_left(&r))
      return PL_ECORRUPT;
    col->data = r.p + r.pos;
    col->data_len = (size_t)u;
    r.pos += col->data_len;
  }
  if (pl_reader_left(&r) != 0)
    return PL_ECORRUPT;
  memcpy(info, &ci, offsetof(tsdb_chunk_info, cols) + ci.n_columns * sizeof ci.cols[0]);
  return 0;
}

int tsdb_chunk_decode_ts(const tsdb_chunk_info *info, int64_t *ts_out) {
  if (!info || !ts_out)
    return PL_EINVAL;
  return tsdb_codec_int_decode(info->ts_data, info->ts_len, info->n_points, ts_out);
}

/* Moves the m packed values in a[0..m) to the rows whose bit is set, zeroing the others.
 * Walking backwards never overwrites a value not yet moved: the k-th present row is >= k. */
#define EXPAND(a, bits, n, zero)                                                                   \
  do {                                                                                             \
    size_t k_ = m;                                                                                 \
    for (size_t i_ = (n); i_-- > 0;)                                                               \
      (a)[i_] = ((bits)[i_ / 8] >> (i_ % 8)) & 1 ? (a)[--k_] : (zero);                             \
  } while (0)

int tsdb_chunk_decode_column(const tsdb_chunk_info *info, size_t col, const tsdb_column_out *out) {
  int rc;
  if (!info || !out || col >= info->n_columns)
    return PL_EINVAL;
  const tsdb_column_info *ci = &info->cols[col];
  const size_t n = info->n_points, m = ci->stats.count;
  const uint8_t *bits = ci->present_bits;
  if (out->type != ci->type)
    return PL_EINVAL;
  switch (ci->type) {
  case TSDB_FLOAT:
    if (!out->v.f)
      return PL_EINVAL;
    if ((rc = tsdb_codec_float_decode(ci->data, ci->data_len, m, out->v.f)) < 0)
      return rc;
    if (bits)
      EXPAND(out->v.f, bits, n, 0.0);
    break;
  case TSDB_INT:
    if (!out->v.i)
      return PL_EINVAL;
    if ((rc = tsdb_codec_int_decode(ci->data, ci->data_len, m, out->v.i)) < 0)
      return rc;
    if (bits)
      EXPAND(out->v.i, bits, n, 0);
    break;
  case TSDB_BOOL:
    if (!out->v.b)
      return PL_EINVAL;
    if ((rc = tsdb_codec_bool_decode(ci->data, ci->data_len, m, out->v.b)) < 0)
      return rc;
    if (bits)
      EXPAND(out->v.b, bits, n, 0);
    break;
  default:
    if (!out->v.str.s || !out->v.str.lens || !out->v.str.arena)
      return PL_EINVAL;
    if ((rc = tsdb_codec_string_decode(ci->data, ci->data_len, m, out->v.str.s, out->v.str.lens,
                                       out->v.str.arena)) < 0)
      return rc;
    if (bits) {
      EXPAND(out->v.str.s, bits, n, NULL);
      EXPAND(out->v.str.lens, bits, n, 0);
    }
    break;
  }
  if (out->present) {
    if (bits)
      for (size_t i = 0; i < n; i++)
        out->present[i] = (bits[i / 8] >> (i % 8)) & 1;
    else
      memset(out->present, 1, n);
  }
  return 0;
}
