/* Unit tests for the time-series chunk codec (src/tsdb/codec.c): round trips of every column
 * codec on random and edge-case data, the encodings chosen for the data they are meant for,
 * statistics, presence bitmaps, and corrupted or truncated input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/buf.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "tsdb/codec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers -------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static double urand(void) {
  return (double)(rnd() >> 11) * 0x1p-53;
}

static uint64_t bits_of(double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return u;
}

static double from_bits(uint64_t u) {
  double d;
  memcpy(&d, &u, 8);
  return d;
}

static double round_to(double v, int decimals) {
  double p = pow(10, decimals);
  return round(v * p) / p;
}

/* Compares element by element so that a failure prints the index and both values. */
static void expect_i64_eq(const int64_t *want, const int64_t *got, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (want[i] != got[i]) {
      print_error("index %zu\n", i);
      assert_int_equal(want[i], got[i]);
    }
  }
}

static void expect_f64_bits_eq(const double *want, const double *got, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (bits_of(want[i]) != bits_of(got[i])) {
      print_error("index %zu: want %.17g got %.17g\n", i, want[i], got[i]);
      assert_int_equal(bits_of(want[i]), bits_of(got[i]));
    }
  }
}

/* Encodes with the integer codec, decodes, compares; returns the encoded size in bytes. */
static size_t int_roundtrip(const int64_t *v, size_t n) {
  pl_buf b;
  pl_buf_init(&b, 0);
  assert_int_equal(tsdb_codec_int_encode(v, n, &b), 0);
  int64_t *out = malloc((n ? n : 1) * sizeof *out);
  assert_non_null(out);
  assert_int_equal(tsdb_codec_int_decode(b.data, b.len, n, out), 0);
  expect_i64_eq(v, out, n);
  /* Every strict prefix must be rejected: the decoder consumes exactly what it is given. */
  for (size_t cut = 0; cut < b.len; cut += 1 + cut / 16)
    assert_int_equal(tsdb_codec_int_decode(b.data, cut, n, out), PL_ECORRUPT);
  size_t len = b.len;
  free(out);
  pl_buf_free(&b);
  return len;
}

static size_t float_roundtrip_mode(const double *v, size_t n, int *mode) {
  pl_buf b;
  pl_buf_init(&b, 0);
  assert_int_equal(tsdb_codec_float_encode(v, n, &b), 0);
  double *out = malloc((n ? n : 1) * sizeof *out);
  assert_non_null(out);
  assert_int_equal(tsdb_codec_float_decode(b.data, b.len, n, out), 0);
  expect_f64_bits_eq(v, out, n);
  for (size_t cut = 0; cut < b.len; cut += 1 + cut / 16)
    assert_int_equal(tsdb_codec_float_decode(b.data, cut, n, out), PL_ECORRUPT);
  if (mode)
    *mode = b.len ? b.data[0] : -1;
  size_t len = b.len;
  free(out);
  pl_buf_free(&b);
  return len;
}

static size_t float_roundtrip(const double *v, size_t n) {
  return float_roundtrip_mode(v, n, NULL);
}

/* ---- integers and timestamps ---------------------------------------------------------------- */

static void test_int_edges(void **state) {
  (void)state;
  static int64_t v[1000];
  const int64_t extremes[] = {INT64_MIN, INT64_MAX, 0, -1, 1, INT64_MIN + 1, INT64_MAX - 1};
  for (size_t i = 0; i < 1000; i++)
    v[i] = extremes[rnd() % 7];
  int_roundtrip(v, 1000);
  /* Alternating extremes: every delta wraps around. */
  for (size_t i = 0; i < 1000; i++)
    v[i] = i % 2 ? INT64_MAX : INT64_MIN;
  int_roundtrip(v, 1000);
  for (size_t i = 0; i < 1000; i++)
    v[i] = (int64_t)rnd();
  int_roundtrip(v, 1000);
  /* Only 0 and INT64_MIN: a common divisor of 2^63, which the codec must not store. */
  for (size_t i = 0; i < 1000; i++)
    v[i] = rnd() % 2 ? INT64_MIN : 0;
  int_roundtrip(v, 1000);
  /* Every small length around the block size and the delta-of-delta prefix. */
  for (size_t n = 0; n <= 260; n++) {
    for (size_t i = 0; i < n; i++)
      v[i] = (int64_t)(rnd() % 1000) - 500;
    int_roundtrip(v, n);
    for (size_t i = 0; i < n; i++)
      v[i] = 7;
    int_roundtrip(v, n);
  }
}

/* Widths of 57 to 63 bits straddle nine bytes: the unpacker's slow path. */
static void test_int_wide_widths(void **state) {
  (void)state;
  static int64_t v[300];
  for (unsigned k = 40; k <= 64; k++) {
    for (size_t i = 0; i < 300; i++)
      v[i] = (int64_t)(rnd() >> (64 - k));
    int_roundtrip(v, 300);
    /* With outliers, so that exceptions of every width appear too. */
    for (size_t i = 0; i < 300; i += 37)
      v[i] = (int64_t)rnd();
    int_roundtrip(v, 300);
  }
}

static void test_int_sizes(void **state) {
  (void)state;
  static int64_t v[4096];
  /* Constant: a few bytes per block of 128. */
  for (size_t i = 0; i < 4096; i++)
    v[i] = -123456789;
  assert_true(int_roundtrip(v, 4096) < 4096 / 128 * 4 + 16);
  /* A counter with small random increments costs about the bits of the increments. */
  int64_t c = 1000000;
  for (size_t i = 0; i < 4096; i++)
    v[i] = c += (int64_t)(rnd() % 100);
  assert_true(int_roundtrip(v, 4096) * 8 < 4096 * 8);
  /* A counter that resets once per block: the resets become exceptions, not wide blocks. */
  c = 0;
  for (size_t i = 0; i < 4096; i++)
    v[i] = i % 100 == 99 ? (c = 0) : (c += 1 + (int64_t)(rnd() % 3));
  assert_true(int_roundtrip(v, 4096) * 8 < 4096 * 4);
  /* Multiples of 1000 shrink by the divisor. */
  for (size_t i = 0; i < 4096; i++)
    v[i] = (int64_t)(rnd() % 256) * 1000;
  assert_true(int_roundtrip(v, 4096) * 8 < 4096 * 9);
}

static void test_ts_regular_and_jittered(void **state) {
  (void)state;
  static int64_t t[4096];
  const int64_t t0 = 1700000000000000000;
  for (size_t i = 0; i < 4096; i++)
    t[i] = t0 + (int64_t)i * 10000000000;
  assert_true(int_roundtrip(t, 4096) * 8 < 4096); /* under one bit per timestamp */
  /* 10 s with +-50 ms of jitter at ns precision: the jitter's entropy, about 27 bits. */
  for (size_t i = 0; i < 4096; i++)
    t[i] = t0 + (int64_t)i * 10000000000 + (int64_t)((urand() - 0.5) * 1e8);
  size_t bytes = int_roundtrip(t, 4096);
  assert_true(bytes * 8 < 4096 * 30);
  /* The same at ms precision stored as ns: the divisor 10^6 takes the zeros out. */
  for (size_t i = 0; i < 4096; i++)
    t[i] = t0 + (int64_t)i * 10000000000 + (int64_t)(rnd() % 100 - 50) * 1000000;
  assert_true(int_roundtrip(t, 4096) * 8 < 4096 * 10);
  /* Regular with gaps: each gap is an exception, not a wide block. */
  int64_t x = t0;
  for (size_t i = 0; i < 4096; i++)
    t[i] = x += rnd() % 50 ? 10000000000 : 3600000000000;
  assert_true(int_roundtrip(t, 4096) * 8 < 4096 * 2);
}

static void test_ts_odd_shapes(void **state) {
  (void)state;
  static int64_t t[2000];
  /* Negative timestamps (before 1970), huge gaps, out of order, duplicates, one point. */
  for (size_t i = 0; i < 2000; i++)
    t[i] = -5000000000000000000 + (int64_t)i * 1000;
  int_roundtrip(t, 2000);
  for (size_t i = 0; i < 2000; i++)
    t[i] = (int64_t)i * 4000000000000000;
  int_roundtrip(t, 2000);
  for (size_t i = 0; i < 2000; i++)
    t[i] = (int64_t)(rnd() % 1000000);
  int_roundtrip(t, 2000);
  for (size_t i = 0; i < 2000; i++)
    t[i] = 1000 + (int64_t)(i / 3);
  int_roundtrip(t, 2000);
  t[0] = INT64_MIN;
  int_roundtrip(t, 1);
  t[0] = INT64_MIN;
  t[1] = INT64_MAX;
  t[2] = INT64_MIN;
  int_roundtrip(t, 3);
}

/* ---- floats --------------------------------------------------------------------------------- */

static void test_float_special_values(void **state) {
  (void)state;
  const double specials[] = {0.0,
                             -0.0,
                             INFINITY,
                             -INFINITY,
                             NAN,
                             -NAN,
                             from_bits(0x7ff0000000000001u), /* signalling NaN */
                             from_bits(0x7ff8dead0000beefu), /* quiet NaN with a payload */
                             from_bits(0xfff0000000000123u),
                             4.9406564584124654e-324, /* smallest denormal */
                             -2.2250738585072009e-308,
                             1.7976931348623157e308,
                             0x1p52 + 1,
                             -0x1p53,
                             0x1p63,
                             1e300,
                             0.1};
  const size_t ns = sizeof specials / sizeof specials[0];
  static double v[3000];
  for (size_t i = 0; i < ns; i++)
    v[i] = specials[i];
  float_roundtrip(v, ns);
  for (size_t i = 0; i < 3000; i++)
    v[i] = specials[rnd() % ns];
  float_roundtrip(v, 3000);
  /* Decimal data with special values sprinkled in: they become exceptions. */
  int mode;
  for (size_t i = 0; i < 3000; i++)
    v[i] = i % 97 == 5 ? specials[rnd() % ns] : round_to(20 + urand(), 2);
  size_t bytes = float_roundtrip_mode(v, 3000, &mode);
  assert_int_equal(mode, 1);
  assert_true(bytes * 8 < 3000 * 12);
  for (size_t i = 0; i < 3000; i++)
    v[i] = from_bits(rnd());
  float_roundtrip(v, 3000);
  for (size_t n = 1; n <= 140; n++) {
    for (size_t i = 0; i < n; i++)
      v[i] = round_to(urand() * 100, 1);
    float_roundtrip(v, n);
  }
}

static void test_float_decimal_series(void **state) {
  (void)state;
  static double v[4096];
  int mode;
  /* A temperature random walk with 2 decimals: a handful of bits per value. */
  double x = 21.37;
  for (size_t i = 0; i < 4096; i++)
    v[i] = x = round_to(x + (urand() - 0.5) * 0.1, 2);
  size_t bytes = float_roundtrip_mode(v, 4096, &mode);
  assert_int_equal(mode, 1);
  assert_true(bytes * 8 < 4096 * 8);
  /* Pressure with 3 decimals. */
  x = 3.125;
  for (size_t i = 0; i < 4096; i++)
    v[i] = x = round_to(x + (urand() - 0.5) * 0.02, 3);
  bytes = float_roundtrip_mode(v, 4096, &mode);
  assert_int_equal(mode, 1);
  assert_true(bytes * 8 < 4096 * 8);
  /* Constant series: far below a bit per value. */
  for (size_t i = 0; i < 4096; i++)
    v[i] = 230.5;
  bytes = float_roundtrip_mode(v, 4096, &mode);
  assert_true(bytes * 8 < 4096);
  /* A counter stored as a float. */
  x = 1e6;
  for (size_t i = 0; i < 4096; i++)
    v[i] = x += (double)(rnd() % 50);
  bytes = float_roundtrip_mode(v, 4096, &mode);
  assert_int_equal(mode, 1);
  assert_true(bytes * 8 < 4096 * 8);
  /* Negative decimals, and values whose decimal digits vary per value. */
  for (size_t i = 0; i < 4096; i++)
    v[i] = round_to(-50 + urand() * 10, (int)(rnd() % 4));
  float_roundtrip(v, 4096);
  /* Full-precision noise goes to Gorilla. */
  for (size_t i = 0; i < 4096; i++)
    v[i] = urand();
  float_roundtrip_mode(v, 4096, &mode);
  assert_int_equal(mode, 0);
}

/* ---- booleans ------------------------------------------------------------------------------- */

static void test_bool_modes(void **state) {
  (void)state;
  static uint8_t v[5000], out[5000];
  pl_buf b;
  pl_buf_init(&b, 0);
  struct {
    int kind;
    int mode;
  } cases[] = {{0, 1}, {1, 2}, {2, 0}, {3, 1}};
  for (size_t c = 0; c < 4; c++) {
    for (size_t i = 0; i < 5000; i++) {
      switch (cases[c].kind) {
      case 0: v[i] = 1; break;
      case 1: v[i] = (i / 700) % 2; break;
      case 2: v[i] = rnd() % 2; break;
      default: v[i] = 0; break;
      }
    }
    pl_buf_reset(&b);
    assert_int_equal(tsdb_codec_bool_encode(v, 5000, &b), 0);
    assert_int_equal(b.data[0], cases[c].mode);
    assert_int_equal(tsdb_codec_bool_decode(b.data, b.len, 5000, out), 0);
    assert_memory_equal(v, out, 5000);
    for (size_t cut = 0; cut < b.len; cut++)
      assert_int_equal(tsdb_codec_bool_decode(b.data, cut, 5000, out), PL_ECORRUPT);
  }
  /* Nonzero input values other than 1 decode as 1. */
  v[0] = 0;
  v[1] = 200;
  pl_buf_reset(&b);
  assert_int_equal(tsdb_codec_bool_encode(v, 2, &b), 0);
  assert_int_equal(tsdb_codec_bool_decode(b.data, b.len, 2, out), 0);
  assert_int_equal(out[1], 1);
  pl_buf_free(&b);
}

/* ---- strings -------------------------------------------------------------------------------- */

/* Round trip of n strings; returns the mode byte used. */
static int string_roundtrip(const char *const *s, const uint32_t *lens, size_t n) {
  pl_buf b, arena;
  pl_buf_init(&b, 0);
  pl_buf_init(&arena, 0);
  assert_int_equal(tsdb_codec_string_encode(s, lens, n, &b), 0);
  const char **os = calloc(n, sizeof *os);
  uint32_t *ol = calloc(n, sizeof *ol);
  assert_int_equal(tsdb_codec_string_decode(b.data, b.len, n, os, ol, &arena), 0);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(lens[i], ol[i]);
    if (lens[i])
      assert_memory_equal(s[i], os[i], lens[i]);
    assert_non_null(os[i]);
  }
  for (size_t cut = 0; cut < b.len; cut += 1 + cut / 8) {
    size_t before = arena.len;
    assert_int_equal(tsdb_codec_string_decode(b.data, cut, n, os, ol, &arena), PL_ECORRUPT);
    assert_int_equal(arena.len, before); /* a failed decode leaves the arena as it was */
  }
  int mode = b.data[0];
  free(os);
  free(ol);
  pl_buf_free(&b);
  pl_buf_free(&arena);
  return mode;
}

static void test_string_paths(void **state) {
  (void)state;
  enum { N = 2000 };
  static char store[N][40];
  static const char *s[N];
  static uint32_t lens[N];
  /* Few distinct values: dictionary. Includes the empty string and a NULL with length 0. */
  const char *states[] = {"running", "idle", "", "fault: overtemp", "maintenance"};
  for (size_t i = 0; i < N; i++) {
    s[i] = states[rnd() % 5];
    lens[i] = (uint32_t)strlen(s[i]);
  }
  s[7] = NULL;
  lens[7] = 0;
  assert_int_equal(string_roundtrip(s, lens, N), 0);
  /* Many distinct but similar values: zstd. */
  for (size_t i = 0; i < N; i++) {
    lens[i] = (uint32_t)snprintf(store[i], sizeof store[i], "batch-2024-%06zu-line-%zu", i, i % 7);
    s[i] = store[i];
  }
  assert_int_equal(string_roundtrip(s, lens, N), 1);
  /* Random binary with NUL bytes: nothing compresses, plain. */
  for (size_t i = 0; i < N; i++) {
    lens[i] = (uint32_t)(rnd() % 40);
    for (size_t k = 0; k < lens[i]; k++)
      store[i][k] = (char)rnd();
    s[i] = store[i];
  }
  assert_int_equal(string_roundtrip(s, lens, N), 2);
  /* One string; all empty. */
  assert_int_equal(string_roundtrip(s, lens, 1), lens[0] ? 2 : 0);
  for (size_t i = 0; i < N; i++)
    lens[i] = 0;
  assert_int_equal(string_roundtrip(s, lens, N), 0);
}

static void test_string_arena_limit(void **state) {
  (void)state;
  const char *s[] = {"aaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"};
  uint32_t lens[] = {20, 32};
  const char *os[2];
  uint32_t ol[2];
  pl_buf b, arena;
  pl_buf_init(&b, 0);
  pl_buf_init(&arena, 16);
  assert_int_equal(tsdb_codec_string_encode(s, lens, 2, &b), 0);
  assert_int_equal(tsdb_codec_string_decode(b.data, b.len, 2, os, ol, &arena), PL_ELIMIT);
  assert_int_equal(arena.len, 0);
  pl_buf_free(&arena);
  pl_buf_init(&arena, 64);
  assert_int_equal(tsdb_codec_string_decode(b.data, b.len, 2, os, ol, &arena), 0);
  assert_memory_equal(os[1], s[1], 32);
  pl_buf_free(&arena);
  pl_buf_free(&b);
}

/* ---- chunks --------------------------------------------------------------------------------- */

typedef struct sample_chunk {
  size_t n;
  int64_t *ts;
  double *f;
  int64_t *i;
  uint8_t *b, *present_f, *present_s;
  const char **s;
  uint32_t *lens;
  tsdb_column_in cols[4];
} sample_chunk;

static void sample_make(sample_chunk *c, size_t n) {
  static const char *words[] = {"ok", "warn", "alarm", ""};
  c->n = n;
  c->ts = malloc(n * sizeof *c->ts);
  c->f = malloc(n * sizeof *c->f);
  c->i = malloc(n * sizeof *c->i);
  c->b = malloc(n);
  c->present_f = malloc(n);
  c->present_s = malloc(n);
  c->s = malloc(n * sizeof *c->s);
  c->lens = malloc(n * sizeof *c->lens);
  double x = 50;
  int64_t cnt = 0;
  for (size_t k = 0; k < n; k++) {
    c->ts[k] = 1700000000000000000 + (int64_t)k * 10000000000 + (int64_t)((urand() - 0.5) * 1e8);
    c->f[k] = x = round_to(x + urand() - 0.5, 1);
    c->i[k] = cnt += (int64_t)(rnd() % 10);
    c->b[k] = (k / 50) % 2;
    c->present_f[k] = rnd() % 10 != 0;
    c->present_s[k] = rnd() % 3 == 0;
    c->s[k] = words[rnd() % 4];
    c->lens[k] = (uint32_t)strlen(c->s[k]);
  }
  c->cols[0] = (tsdb_column_in){.type = TSDB_FLOAT, .present = c->present_f, .v.f = c->f};
  c->cols[1] = (tsdb_column_in){.type = TSDB_INT, .v.i = c->i};
  c->cols[2] = (tsdb_column_in){.type = TSDB_BOOL, .v.b = c->b};
  c->cols[3] = (tsdb_column_in){
      .type = TSDB_STRING, .present = c->present_s, .v.str = {.s = c->s, .lens = c->lens}};
}

static void sample_free(sample_chunk *c) {
  free(c->ts);
  free(c->f);
  free(c->i);
  free(c->b);
  free(c->present_f);
  free(c->present_s);
  free(c->s);
  free(c->lens);
}

/* Decodes every column of a chunk and checks it against the sample. */
static void sample_check(const sample_chunk *c, const uint8_t *p, size_t len) {
  tsdb_chunk_info info;
  const size_t n = c->n;
  assert_int_equal(tsdb_chunk_info_parse(p, len, &info), 0);
  assert_int_equal(info.n_points, n);
  assert_int_equal(info.n_columns, 4);
  int64_t *ts = malloc(n * sizeof *ts), *iv = malloc(n * sizeof *iv);
  double *fv = malloc(n * sizeof *fv);
  uint8_t *bv = malloc(n), *pr = malloc(n);
  const char **sv = malloc(n * sizeof *sv);
  uint32_t *lv = malloc(n * sizeof *lv);
  pl_buf arena;
  pl_buf_init(&arena, 0);

  assert_int_equal(tsdb_chunk_decode_ts(&info, ts), 0);
  expect_i64_eq(c->ts, ts, n);
  int64_t mn = ts[0], mx = ts[0];
  for (size_t k = 0; k < n; k++) {
    if (ts[k] < mn)
      mn = ts[k];
    if (ts[k] > mx)
      mx = ts[k];
  }
  assert_int_equal(info.ts_min, mn);
  assert_int_equal(info.ts_max, mx);

  tsdb_column_out out = {.type = TSDB_FLOAT, .present = pr, .v.f = fv};
  assert_int_equal(tsdb_chunk_decode_column(&info, 0, &out), 0);
  for (size_t k = 0; k < n; k++) {
    assert_int_equal(pr[k], c->present_f[k] != 0);
    assert_int_equal(bits_of(fv[k]), bits_of(c->present_f[k] ? c->f[k] : 0.0));
  }
  out = (tsdb_column_out){.type = TSDB_INT, .present = pr, .v.i = iv};
  assert_int_equal(tsdb_chunk_decode_column(&info, 1, &out), 0);
  expect_i64_eq(c->i, iv, n);
  for (size_t k = 0; k < n; k++)
    assert_int_equal(pr[k], 1);
  out = (tsdb_column_out){.type = TSDB_BOOL, .v.b = bv};
  assert_int_equal(tsdb_chunk_decode_column(&info, 2, &out), 0);
  assert_memory_equal(bv, c->b, n);
  out = (tsdb_column_out){.type = TSDB_STRING, .present = pr, .v.str = {sv, lv, &arena}};
  assert_int_equal(tsdb_chunk_decode_column(&info, 3, &out), 0);
  for (size_t k = 0; k < n; k++) {
    assert_int_equal(pr[k], c->present_s[k] != 0);
    if (c->present_s[k]) {
      assert_int_equal(lv[k], c->lens[k]);
      assert_non_null(sv[k]);
      assert_memory_equal(sv[k], c->s[k], lv[k]);
    } else {
      assert_null(sv[k]);
      assert_int_equal(lv[k], 0);
    }
  }
  /* The wrong output type and a column out of range are argument errors. */
  out = (tsdb_column_out){.type = TSDB_INT, .v.i = iv};
  assert_int_equal(tsdb_chunk_decode_column(&info, 0, &out), PL_EINVAL);
  assert_int_equal(tsdb_chunk_decode_column(&info, 4, &out), PL_EINVAL);

  free(ts);
  free(iv);
  free(fv);
  free(bv);
  free(pr);
  free(sv);
  free(lv);
  pl_buf_free(&arena);
}

static void test_chunk_roundtrip_sizes(void **state) {
  (void)state;
  const size_t sizes[] = {1, 2, 127, 128, 129, 1000, TSDB_CHUNK_POINTS_MAX};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    sample_chunk c;
    pl_buf b;
    sample_make(&c, sizes[k]);
    pl_buf_init(&b, 0);
    assert_int_equal(tsdb_chunk_encode(c.ts, c.n, c.cols, 4, &b), 0);
    sample_check(&c, b.data, b.len);
    pl_buf_free(&b);
    sample_free(&c);
  }
}

static void test_chunk_stats(void **state) {
  (void)state;
  int64_t ts[6] = {1, 2, 3, 4, 5, 6};
  double f[6] = {NAN, 2.5, -1.0, NAN, 7.25, NAN};
  uint8_t pf[6] = {1, 1, 1, 1, 1, 0};
  int64_t iv[6] = {INT64_MAX, INT64_MAX, -5, 3, 9, 0};
  uint8_t bv[6] = {0, 1, 1, 0, 1, 1};
  const char *sv[6] = {"a", "b", "c", "d", "e", "f"};
  uint32_t lv[6] = {1, 1, 1, 1, 1, 1};
  uint8_t ps[6] = {0, 0, 0, 0, 0, 0};
  double all_nan[6] = {NAN, NAN, NAN, NAN, NAN, NAN};
  int64_t small[6] = {-3, 10, 4, -20, 0, 1};
  tsdb_column_in cols[] = {
      {.type = TSDB_FLOAT, .present = pf, .v.f = f},
      {.type = TSDB_INT, .v.i = iv},
      {.type = TSDB_BOOL, .v.b = bv},
      {.type = TSDB_STRING, .present = ps, .v.str = {sv, lv}},
      {.type = TSDB_FLOAT, .v.f = all_nan},
      {.type = TSDB_INT, .v.i = small},
  };
  pl_buf b;
  tsdb_chunk_info info;
  pl_buf_init(&b, 0);
  assert_int_equal(tsdb_chunk_encode(ts, 6, cols, 6, &b), 0);
  assert_int_equal(tsdb_chunk_info_parse(b.data, b.len, &info), 0);
  assert_int_equal(info.ts_min, 1);
  assert_int_equal(info.ts_max, 6);

  const tsdb_stats *st = &info.cols[0].stats;
  assert_int_equal(st->count, 5);
  assert_int_equal(st->nan_count, 2);
  assert_true(st->min == -1.0 && st->max == 7.25 && st->sum == 8.75);
  assert_true(isnan(st->first));
  assert_true(st->last == 7.25);

  st = &info.cols[1].stats;
  assert_int_equal(st->count, 6);
  assert_int_equal(st->min_i, -5);
  assert_int_equal(st->max_i, INT64_MAX);
  assert_int_equal(st->first_i, INT64_MAX);
  assert_int_equal(st->last_i, 0);
  assert_int_equal(st->sum_i_exact, 0); /* 2 * INT64_MAX overflows */
  assert_int_equal(st->sum_i, INT64_MAX);
  assert_true(st->sum > 1.8e19 && st->sum < 1.9e19);

  st = &info.cols[2].stats;
  assert_int_equal(st->count, 6);
  assert_int_equal(st->sum_i, 4);
  assert_true(st->sum == 4.0 && st->min == 0.0 && st->max == 1.0);
  assert_true(st->first == 0.0 && st->last == 1.0);

  st = &info.cols[3].stats;
  assert_int_equal(st->count, 0);
  assert_true(st->min == 0.0 && st->sum == 0.0);

  st = &info.cols[4].stats;
  assert_int_equal(st->count, 6);
  assert_int_equal(st->nan_count, 6);
  assert_true(isnan(st->min) && isnan(st->max) && isnan(st->sum));

  st = &info.cols[5].stats;
  assert_int_equal(st->sum_i_exact, 1);
  assert_int_equal(st->sum_i, -8);
  assert_true(st->sum == -8.0 && st->min == -20.0 && st->max == 10.0);

  /* A column with no value at all decodes to zeros and absent rows. */
  const char *os[6];
  uint32_t ol[6];
  uint8_t pr[6];
  pl_buf arena;
  pl_buf_init(&arena, 0);
  tsdb_column_out out = {.type = TSDB_STRING, .present = pr, .v.str = {os, ol, &arena}};
  assert_int_equal(tsdb_chunk_decode_column(&info, 3, &out), 0);
  for (size_t k = 0; k < 6; k++) {
    assert_int_equal(pr[k], 0);
    assert_null(os[k]);
  }
  /* An int sum that overflows on the way but ends in range is exact. */
  int64_t back[3] = {INT64_MAX, INT64_MAX, INT64_MIN};
  tsdb_column_in one = {.type = TSDB_INT, .v.i = back};
  pl_buf_reset(&b);
  assert_int_equal(tsdb_chunk_encode(ts, 3, &one, 1, &b), 0);
  assert_int_equal(tsdb_chunk_info_parse(b.data, b.len, &info), 0);
  assert_int_equal(info.cols[0].stats.sum_i_exact, 1);
  assert_int_equal(info.cols[0].stats.sum_i, INT64_MAX - 1);
  pl_buf_free(&arena);
  pl_buf_free(&b);
}

/* Presence bitmaps on every type, and timestamps out of order. */
static void test_chunk_presence_all_types(void **state) {
  (void)state;
  enum { N = 500 };
  static int64_t ts[N], iv[N], iout[N], tout[N];
  static double fv[N], fout[N];
  static uint8_t bv[N], bout[N], pres[N], pout[N];
  static const char *sv[N], *sout[N];
  static uint32_t lv[N], lout[N];
  for (size_t i = 0; i < N; i++) {
    ts[i] = (int64_t)(rnd() % 1000000) - 500000;
    iv[i] = (int64_t)rnd();
    fv[i] = urand();
    bv[i] = rnd() % 2;
    pres[i] = rnd() % 4 != 0;
    sv[i] = "xy";
    lv[i] = (uint32_t)(rnd() % 3);
  }
  pres[0] = 0;
  pres[N - 1] = 0;
  tsdb_column_in cols[] = {
      {.type = TSDB_FLOAT, .present = pres, .v.f = fv},
      {.type = TSDB_INT, .present = pres, .v.i = iv},
      {.type = TSDB_BOOL, .present = pres, .v.b = bv},
      {.type = TSDB_STRING, .present = pres, .v.str = {sv, lv}},
  };
  pl_buf b, arena;
  tsdb_chunk_info info;
  pl_buf_init(&b, 0);
  pl_buf_init(&arena, 0);
  assert_int_equal(tsdb_chunk_encode(ts, N, cols, 4, &b), 0);
  assert_int_equal(tsdb_chunk_info_parse(b.data, b.len, &info), 0);
  int64_t mn = ts[0], mx = ts[0];
  for (size_t i = 0; i < N; i++) {
    mn = ts[i] < mn ? ts[i] : mn;
    mx = ts[i] > mx ? ts[i] : mx;
  }
  assert_int_equal(info.ts_min, mn);
  assert_int_equal(info.ts_max, mx);
  assert_int_equal(tsdb_chunk_decode_ts(&info, tout), 0);
  expect_i64_eq(ts, tout, N);
  tsdb_column_out outs[] = {
      {.type = TSDB_FLOAT, .present = pout, .v.f = fout},
      {.type = TSDB_INT, .present = pout, .v.i = iout},
      {.type = TSDB_BOOL, .present = pout, .v.b = bout},
      {.type = TSDB_STRING, .present = pout, .v.str = {sout, lout, &arena}},
  };
  for (size_t c = 0; c < 4; c++) {
    memset(pout, 7, N);
    assert_int_equal(tsdb_chunk_decode_column(&info, c, &outs[c]), 0);
    for (size_t i = 0; i < N; i++) {
      assert_int_equal(pout[i], pres[i]);
      switch (c) {
      case 0: assert_int_equal(bits_of(fout[i]), bits_of(pres[i] ? fv[i] : 0.0)); break;
      case 1: assert_int_equal(iout[i], pres[i] ? iv[i] : 0); break;
      case 2: assert_int_equal(bout[i], pres[i] ? bv[i] : 0); break;
      default:
        assert_int_equal(lout[i], pres[i] ? lv[i] : 0);
        if (lout[i])
          assert_memory_equal(sout[i], "xy", lout[i]);
        break;
      }
    }
  }
  pl_buf_free(&b);
  pl_buf_free(&arena);
}

static void test_chunk_no_columns_and_errors(void **state) {
  (void)state;
  int64_t ts[3] = {10, 20, 30}, out[3];
  double f[3] = {1, 2, 3};
  pl_buf b;
  tsdb_chunk_info info;
  pl_buf_init(&b, 0);
  assert_int_equal(tsdb_chunk_encode(ts, 3, NULL, 0, &b), 0);
  assert_int_equal(tsdb_chunk_info_parse(b.data, b.len, &info), 0);
  assert_int_equal(info.n_columns, 0);
  assert_int_equal(tsdb_chunk_decode_ts(&info, out), 0);
  expect_i64_eq(ts, out, 3);

  size_t len = b.len;
  tsdb_column_in bad = {.type = (tsdb_type)9, .v.f = f};
  assert_int_equal(tsdb_chunk_encode(ts, 0, NULL, 0, &b), PL_EINVAL);
  assert_int_equal(tsdb_chunk_encode(ts, TSDB_CHUNK_POINTS_MAX + 1, NULL, 0, &b), PL_EINVAL);
  assert_int_equal(tsdb_chunk_encode(ts, 3, &bad, 1, &b), PL_EINVAL);
  assert_int_equal(tsdb_chunk_encode(NULL, 3, NULL, 0, &b), PL_EINVAL);
  bad = (tsdb_column_in){.type = TSDB_FLOAT, .v.f = NULL};
  assert_int_equal(tsdb_chunk_encode(ts, 3, &bad, 1, &b), PL_EINVAL);
  assert_int_equal(b.len, len); /* failures leave the output as it was */

  /* An output limit too small fails with PL_ELIMIT and leaves the buffer unchanged. */
  pl_buf small;
  pl_buf_init(&small, 8);
  assert_int_equal(tsdb_chunk_encode(ts, 3, NULL, 0, &small), PL_ELIMIT);
  assert_int_equal(small.len, 0);
  pl_buf_free(&small);

  /* Appending after existing bytes works; the chunk is what follows them. */
  pl_buf_reset(&b);
  pl_buf_append(&b, "xyz", 3);
  assert_int_equal(tsdb_chunk_encode(ts, 3, NULL, 0, &b), 0);
  assert_int_equal(tsdb_chunk_info_parse(b.data + 3, b.len - 3, &info), 0);
  pl_buf_free(&b);
}

/* Every single-byte change of a chunk is caught by its CRC; every truncation fails. */
static void test_chunk_corruption(void **state) {
  (void)state;
  sample_chunk c;
  pl_buf b;
  tsdb_chunk_info info;
  sample_make(&c, 300);
  pl_buf_init(&b, 0);
  assert_int_equal(tsdb_chunk_encode(c.ts, c.n, c.cols, 4, &b), 0);
  for (size_t k = 0; k < b.len; k++) {
    uint8_t saved = b.data[k];
    b.data[k] ^= (uint8_t)(1 + rnd() % 255);
    assert_int_equal(tsdb_chunk_info_parse(b.data, b.len, &info), PL_ECORRUPT);
    b.data[k] = saved;
  }
  for (size_t len = 0; len < b.len; len++)
    assert_int_equal(tsdb_chunk_info_parse(b.data, len, &info), PL_ECORRUPT);
  sample_check(&c, b.data, b.len); /* and the original is intact */
  pl_buf_free(&b);
  sample_free(&c);
}

/* Damage with a recomputed CRC reaches the structure checks: the chunk must be rejected or
 * decode to something, without reading or writing out of bounds (ASan watches). */
static void test_chunk_damage_behind_crc(void **state) {
  (void)state;
  sample_chunk c;
  pl_buf b, arena;
  tsdb_chunk_info info;
  sample_make(&c, 200);
  pl_buf_init(&b, 0);
  pl_buf_init(&arena, 1 << 20);
  assert_int_equal(tsdb_chunk_encode(c.ts, c.n, c.cols, 4, &b), 0);
  int64_t iv[200];
  double fv[200];
  uint8_t bv[200];
  const char *sv[200];
  uint32_t lv[200];
  size_t rejected = 0;
  for (size_t k = 0; k + 4 < b.len; k++) {
    uint8_t saved = b.data[k];
    b.data[k] ^= (uint8_t)(1 + rnd() % 255);
    uint32_t crc = pl_crc32c(0, b.data, b.len - 4);
    for (int i = 0; i < 4; i++)
      b.data[b.len - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
    int rc = tsdb_chunk_info_parse(b.data, b.len, &info);
    assert_true(rc == 0 || rc == PL_ECORRUPT);
    if (rc < 0) {
      rejected++;
    } else {
      assert_true(info.n_points >= 1 && info.n_columns <= TSDB_CHUNK_COLUMNS_MAX);
      if (info.n_points <= 200) {
        rc = tsdb_chunk_decode_ts(&info, iv);
        assert_true(rc == 0 || rc == PL_ECORRUPT);
        for (size_t col = 0; col < info.n_columns; col++) {
          tsdb_column_out out = {.type = info.cols[col].type};
          out.v.f = fv;
          if (out.type == TSDB_INT)
            out.v.i = iv;
          if (out.type == TSDB_BOOL)
            out.v.b = bv;
          if (out.type == TSDB_STRING) {
            out.v.str.s = sv;
            out.v.str.lens = lv;
            out.v.str.arena = &arena;
          }
          pl_buf_reset(&arena);
          rc = tsdb_chunk_decode_column(&info, col, &out);
          assert_true(rc == 0 || rc == PL_ECORRUPT || rc == PL_ELIMIT);
        }
      }
    }
    b.data[k] = saved;
  }
  assert_true(rejected > 0);
  pl_buf_free(&b);
  pl_buf_free(&arena);
  sample_free(&c);
}

/* Below the CRC: damaged column bytes must decode to an error or to some values, never read
 * or write out of bounds (ASan watches). */
static void test_column_damage(void **state) {
  (void)state;
  enum { N = 700 };
  static int64_t iv[N], iout[N];
  static double fv[N], fout[N];
  static uint8_t bv[N], bout[N];
  double x = 10;
  for (size_t k = 0; k < N; k++) {
    iv[k] = (int64_t)k * 1000 + (int64_t)(rnd() % 100);
    fv[k] = k % 50 == 3 ? NAN : (x = round_to(x + urand() - 0.5, 2));
    bv[k] = rnd() % 7 == 0;
  }
  pl_buf bi, bf, bg, bb, arena;
  pl_buf_init(&bi, 0);
  pl_buf_init(&bf, 0);
  pl_buf_init(&bg, 0);
  pl_buf_init(&bb, 0);
  pl_buf_init(&arena, 1 << 20);
  assert_int_equal(tsdb_codec_int_encode(iv, N, &bi), 0);
  assert_int_equal(tsdb_codec_float_encode(fv, N, &bf), 0);
  for (size_t k = 0; k < N; k++)
    fv[k] = urand();
  assert_int_equal(tsdb_codec_float_encode(fv, N, &bg), 0);
  assert_int_equal(bg.data[0], 0);
  assert_int_equal(tsdb_codec_bool_encode(bv, N, &bb), 0);
  int failures = 0;
  for (int round = 0; round < 4000; round++) {
    pl_buf *which[] = {&bi, &bf, &bg, &bb};
    pl_buf *t = which[round % 4];
    size_t k = rnd() % t->len;
    uint8_t saved = t->data[k];
    t->data[k] ^= (uint8_t)(1 + rnd() % 255);
    int rc;
    switch (round % 4) {
    case 0: rc = tsdb_codec_int_decode(t->data, t->len, N, iout); break;
    case 1:
    case 2: rc = tsdb_codec_float_decode(t->data, t->len, N, fout); break;
    default: rc = tsdb_codec_bool_decode(t->data, t->len, N, bout); break;
    }
    assert_true(rc == 0 || rc == PL_ECORRUPT);
    failures += rc != 0;
    t->data[k] = saved;
  }
  assert_true(failures > 0);
  /* Strings: damage every byte of a dictionary, a zstd and a plain encoding in turn. */
  const char *states[] = {"running", "idle", "", "fault: overtemp", "maintenance"};
  static const char *s[N], *os[N];
  static uint32_t lens[N], ol[N];
  static char store[N][32];
  for (int want = 0; want <= 2; want++) {
    for (size_t k = 0; k < N; k++) {
      if (want == 0) {
        s[k] = states[rnd() % 5];
        lens[k] = (uint32_t)strlen(s[k]);
        continue;
      }
      if (want == 1) {
        lens[k] =
            (uint32_t)snprintf(store[k], sizeof store[k], "batch-2024-%06zu-line-%zu", k, k % 7);
      } else {
        lens[k] = (uint32_t)(rnd() % 32);
        for (size_t j = 0; j < lens[k]; j++)
          store[k][j] = (char)rnd();
      }
      s[k] = store[k];
    }
    pl_buf bs;
    pl_buf_init(&bs, 0);
    assert_int_equal(tsdb_codec_string_encode(s, lens, N, &bs), 0);
    assert_int_equal(bs.data[0], want);
    for (size_t k = 0; k < bs.len; k++) {
      uint8_t saved = bs.data[k];
      bs.data[k] ^= (uint8_t)(1 + rnd() % 255);
      pl_buf_reset(&arena);
      int rc = tsdb_codec_string_decode(bs.data, bs.len, N, os, ol, &arena);
      assert_true(rc == 0 || rc == PL_ECORRUPT || rc == PL_ELIMIT);
      bs.data[k] = saved;
    }
    pl_buf_free(&bs);
  }
  pl_buf_free(&bi);
  pl_buf_free(&bf);
  pl_buf_free(&bg);
  pl_buf_free(&bb);
  pl_buf_free(&arena);
}

static void test_codec_argument_errors(void **state) {
  (void)state;
  pl_buf b;
  int64_t iv[1] = {0};
  pl_buf_init(&b, 0);
  assert_int_equal(tsdb_codec_int_encode(NULL, 1, &b), PL_EINVAL);
  assert_int_equal(tsdb_codec_int_encode(iv, TSDB_CHUNK_POINTS_MAX + 1, &b), PL_EINVAL);
  assert_int_equal(tsdb_codec_int_encode(iv, 0, &b), 0);
  assert_int_equal(b.len, 0);
  assert_int_equal(tsdb_codec_int_decode(b.data, 0, 0, iv), 0);
  assert_int_equal(tsdb_codec_int_decode((const uint8_t *)"x", 1, 0, iv), PL_ECORRUPT);
  const char *s[1] = {NULL};
  uint32_t lens[1] = {3};
  assert_int_equal(tsdb_codec_string_encode(s, lens, 1, &b), PL_EINVAL);
  assert_int_equal(b.len, 0);
  /* n == 0 encodes to nothing and decodes from nothing, for every codec. */
  double fv[1];
  uint8_t bv[1];
  const char *os[1];
  uint32_t ol[1];
  pl_buf arena;
  pl_buf_init(&arena, 0);
  assert_int_equal(tsdb_codec_float_encode(fv, 0, &b), 0);
  assert_int_equal(tsdb_codec_bool_encode(bv, 0, &b), 0);
  assert_int_equal(tsdb_codec_string_encode(s, lens, 0, &b), 0);
  assert_int_equal(b.len, 0);
  assert_int_equal(tsdb_codec_float_decode(b.data, 0, 0, fv), 0);
  assert_int_equal(tsdb_codec_bool_decode(b.data, 0, 0, bv), 0);
  assert_int_equal(tsdb_codec_string_decode(b.data, 0, 0, os, ol, &arena), 0);
  assert_int_equal(tsdb_codec_float_decode((const uint8_t *)"\0", 1, 0, fv), PL_ECORRUPT);
  assert_int_equal(tsdb_codec_float_encode(NULL, 1, &b), PL_EINVAL);
  assert_int_equal(tsdb_codec_bool_encode(NULL, 1, &b), PL_EINVAL);
  assert_int_equal(tsdb_codec_string_decode((const uint8_t *)"\2\0", 2, 1, os, ol, NULL),
                   PL_EINVAL);
  /* More than TSDB_CHUNK_BYTES_MAX of strings in a column is refused up front. */
  enum { BIG = 1 << 20, COPIES = TSDB_CHUNK_BYTES_MAX / BIG + 1 };
  char *big = calloc(1, BIG);
  const char *bs[COPIES];
  uint32_t bl[COPIES];
  for (size_t i = 0; i < COPIES; i++) {
    bs[i] = big;
    bl[i] = BIG;
  }
  assert_int_equal(tsdb_codec_string_encode(bs, bl, COPIES, &b), PL_ELIMIT);
  assert_int_equal(tsdb_codec_string_encode(bs, bl, COPIES - 1, &b), 0);
  assert_true(b.len < BIG / 100); /* zeros compress */
  free(big);
  pl_buf_free(&arena);

  tsdb_chunk_info info;
  assert_int_equal(tsdb_chunk_info_parse(NULL, 0, &info), PL_ECORRUPT);
  assert_int_equal(tsdb_chunk_info_parse((const uint8_t *)"PC", 2, NULL), PL_EINVAL);
  pl_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_int_edges),
      cmocka_unit_test(test_int_wide_widths),
      cmocka_unit_test(test_int_sizes),
      cmocka_unit_test(test_ts_regular_and_jittered),
      cmocka_unit_test(test_ts_odd_shapes),
      cmocka_unit_test(test_float_special_values),
      cmocka_unit_test(test_float_decimal_series),
      cmocka_unit_test(test_bool_modes),
      cmocka_unit_test(test_string_paths),
      cmocka_unit_test(test_string_arena_limit),
      cmocka_unit_test(test_chunk_roundtrip_sizes),
      cmocka_unit_test(test_chunk_stats),
      cmocka_unit_test(test_chunk_presence_all_types),
      cmocka_unit_test(test_chunk_no_columns_and_errors),
      cmocka_unit_test(test_chunk_corruption),
      cmocka_unit_test(test_chunk_damage_behind_crc),
      cmocka_unit_test(test_column_damage),
      cmocka_unit_test(test_codec_argument_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
