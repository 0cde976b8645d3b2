/* Float column codec of the chunk codec (codec.c): decimal mode, which stores values that are
 * short decimals as integers (through the INTEGER codec of codec_integer.c) and keeps the rest
 * as exceptions, and Gorilla XOR for data that is not decimal at all. The conventions (byte
 * order, varints, bit streams) are in codec.c.
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
 * Every decoder consumes exactly the bytes it was given; anything else is PL_ECORRUPT.
 *
 * WHY (measured with bench/codec.c and throwaway experiments on 1024-row chunks)
 *   Floats: decimal mode takes a random walk with 2 decimals to about 4 bits a value, where
 *   Gorilla needs about 46. Keeping values that are not short decimals as exceptions beats
 *   falling back to Gorilla for the whole chunk even when a third of them are (29 against 65
 *   bits a value), so Gorilla is left for data that is not decimal at all.
 */
#include "tsdb/codec_int.h"

#include <stdlib.h>

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
  rc = codec__seq_encode(ints, n, (1u << SEQ_RAW) | (1u << SEQ_DELTA) | (1u << SEQ_DOD), out);
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
  if ((rc = codec__seq_open(&s, p + pos, len - pos, n)) < 0)
    return rc;
  int64_t tmp[BLOCK + 2];
  size_t done = 0;
  while ((rc = codec__seq_next(&s, tmp)) > 0) {
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
