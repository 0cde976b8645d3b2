/* Integer column codec of the chunk codec (codec.c): frame-of-reference bit packing with
 * patched exceptions over raw values, deltas or deltas of deltas, divided by their common
 * divisor. It codes int columns and the timestamps of every chunk, and, through the sequence
 * functions in codec_int.h, the integers of decimal floats (codec_float.c). The conventions
 * (byte order, varints, bit streams) are in codec.c.
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
 * Every decoder consumes exactly the bytes it was given; anything else is PL_ECORRUPT.
 *
 * WHY (measured with bench/codec.c and throwaway experiments on 1024-row chunks)
 *   Timestamps: per-block bit packing of deltas beats Gorilla-style delta-of-delta buckets on
 *   both kinds of target data. Jittered data (10 s +-50 ms at ns) is noise of about 27 bits
 *   whatever the transform; packing pays its bit width and nothing else (28.4 bits a
 *   timestamp, against 32-36 for buckets tuned to ns and 68 for Prometheus' buckets), and
 *   deltas beat deltas of deltas there, as differencing noise widens it. Regular data packs
 *   to width 0, about 0.2 bits a timestamp against 1 bit. The common divisor takes
 *   millisecond data stored in ns from 28 to 8 bits. Varints of deltas or of deltas of deltas
 *   cost 32-40 bits on jittered data and 8 on regular data.
 *   Exceptions (PFOR) keep a gap, a counter reset or a NaN from widening a whole block.
 *   Integers: raw, delta and delta-of-delta each win somewhere (noise, counters, smooth
 *   signals), so the encoder estimates all three on a sample of blocks and keeps the smallest.
 */
#include "tsdb/codec_int.h"

#include <stdlib.h>

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
int codec__seq_encode(const int64_t *v, size_t n, unsigned modes_mask, pl_buf *out) {
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

int codec__seq_open(seq_rd *s, const uint8_t *p, size_t len, size_t n) {
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
int codec__seq_next(seq_rd *s, int64_t *out) {
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
  int rc = codec__seq_encode(v, n, (1u << SEQ_RAW) | (1u << SEQ_DELTA) | (1u << SEQ_DOD), out);
  if (rc < 0)
    out->len = start;
  return rc;
}

int tsdb_codec_int_decode(const uint8_t *p, size_t len, size_t n, int64_t *out) {
  seq_rd s;
  int rc;
  if ((!p && len) || (n && !out) || n > TSDB_CHUNK_POINTS_MAX)
    return PL_EINVAL;
  if ((rc = codec__seq_open(&s, p, len, n)) < 0)
    return rc;
  /* seq_next writes up to BLOCK + 2 values; keep that inside out[0..n). */
  while (n - s.done >= BLOCK + 2) {
    if ((rc = codec__seq_next(&s, out + s.done)) <= 0)
      return rc < 0 ? rc : PL_ECORRUPT;
  }
  int64_t tail[BLOCK + 2];
  size_t base = s.done;
  while ((rc = codec__seq_next(&s, tail + (s.done - base))) > 0) {
  }
  if (rc < 0)
    return rc;
  if (n > base)
    memcpy(out + base, tail, (n - base) * sizeof *out);
  return 0;
}
