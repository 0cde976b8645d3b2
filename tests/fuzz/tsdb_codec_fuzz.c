/* libFuzzer target for the time-series chunk codec (src/tsdb/codec.c).
 *
 * Each input is used four ways:
 *   1. as a chunk: parse the header, decode the timestamps and every column;
 *   2. the same with its last four bytes replaced by the right CRC, so that mutations reach
 *      the parsers behind the checksum;
 *   3. as the bytes of one column codec (the first byte picks the codec, the next two the
 *      value count); whatever decodes must encode and decode again to the same values;
 *   4. as values: int64s, doubles (any bit pattern), bools, strings and presence flags cut from
 *      the input are encoded into a chunk, which must decode to exactly those values.
 * A failed check aborts, which libFuzzer reports as a crash.
 */
#include "base/buf.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "tsdb/codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VALUES 4096 /* keeps each run fast; the codecs' own limit is 65536 */

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                     \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

static uint64_t bits_of(double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return u;
}

/* Decodes everything in a chunk; errors are fine, crashes and overruns are not. */
static void decode_chunk(const uint8_t *p, size_t len) {
  tsdb_chunk_info info;
  if (tsdb_chunk_info_parse(p, len, &info) < 0)
    return;
  CHECK(info.n_points >= 1 && info.n_points <= TSDB_CHUNK_POINTS_MAX);
  CHECK(info.ts_min <= info.ts_max);
  size_t n = info.n_points;
  int64_t *iv = malloc(n * sizeof *iv);
  double *fv = malloc(n * sizeof *fv);
  uint8_t *bv = malloc(n), *present = malloc(n);
  const char **sv = malloc(n * sizeof *sv);
  uint32_t *lv = malloc(n * sizeof *lv);
  pl_buf arena;
  pl_buf_init(&arena, TSDB_CHUNK_BYTES_MAX);
  CHECK(iv && fv && bv && present && sv && lv);
  (void)tsdb_chunk_decode_ts(&info, iv);
  for (size_t c = 0; c < info.n_columns; c++) {
    tsdb_column_out out = {.type = info.cols[c].type, .present = present};
    switch (out.type) {
    case TSDB_FLOAT: out.v.f = fv; break;
    case TSDB_INT: out.v.i = iv; break;
    case TSDB_BOOL: out.v.b = bv; break;
    default:
      out.v.str.s = sv;
      out.v.str.lens = lv;
      out.v.str.arena = &arena;
      break;
    }
    if (tsdb_chunk_decode_column(&info, c, &out) < 0)
      continue;
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
      count += present[i];
    CHECK(count == info.cols[c].stats.count);
    if (out.type == TSDB_STRING)
      for (size_t i = 0; i < n; i++)
        if (present[i] && lv[i])
          CHECK(sv[i] != NULL);
  }
  free(iv);
  free(fv);
  free(bv);
  free(present);
  free(sv);
  free(lv);
  pl_buf_free(&arena);
}

/* Path 3: the input as one column's encoding. */
static void decode_column_bytes(const uint8_t *data, size_t size) {
  if (size < 3)
    return;
  int codec = data[0] % 4;
  size_t n = ((size_t)data[1] | (size_t)data[2] << 8) % (MAX_VALUES + 1);
  const uint8_t *p = data + 3;
  size_t len = size - 3;
  pl_buf enc, arena;
  pl_buf_init(&enc, 0);
  pl_buf_init(&arena, TSDB_CHUNK_BYTES_MAX);
  void *out = malloc(n ? n * 8 : 1), *again = malloc(n ? n * 8 : 1);
  uint32_t *lens = malloc(n ? n * 4 : 1), *lens2 = malloc(n ? n * 4 : 1);
  CHECK(out && again && lens && lens2);
  switch (codec) {
  case 0:
    if (tsdb_codec_int_decode(p, len, n, out) == 0) {
      CHECK(tsdb_codec_int_encode(out, n, &enc) == 0);
      CHECK(tsdb_codec_int_decode(enc.data, enc.len, n, again) == 0);
      CHECK(n == 0 || memcmp(out, again, n * 8) == 0);
    }
    break;
  case 1:
    if (tsdb_codec_float_decode(p, len, n, out) == 0) {
      CHECK(tsdb_codec_float_encode(out, n, &enc) == 0);
      CHECK(tsdb_codec_float_decode(enc.data, enc.len, n, again) == 0);
      CHECK(n == 0 || memcmp(out, again, n * 8) == 0);
    }
    break;
  case 2:
    if (tsdb_codec_bool_decode(p, len, n, out) == 0) {
      for (size_t i = 0; i < n; i++)
        CHECK(((uint8_t *)out)[i] <= 1);
      CHECK(tsdb_codec_bool_encode(out, n, &enc) == 0);
      CHECK(tsdb_codec_bool_decode(enc.data, enc.len, n, again) == 0);
      CHECK(n == 0 || memcmp(out, again, n) == 0);
    }
    break;
  default: {
    const char **s = out, **s2 = again;
    if (tsdb_codec_string_decode(p, len, n, s, lens, &arena) == 0) {
      CHECK(tsdb_codec_string_encode(s, lens, n, &enc) == 0);
      pl_buf arena2;
      pl_buf_init(&arena2, TSDB_CHUNK_BYTES_MAX);
      CHECK(tsdb_codec_string_decode(enc.data, enc.len, n, s2, lens2, &arena2) == 0);
      for (size_t i = 0; i < n; i++) {
        CHECK(lens[i] == lens2[i]);
        CHECK(lens[i] == 0 || memcmp(s[i], s2[i], lens[i]) == 0);
      }
      pl_buf_free(&arena2);
    }
    break;
  }
  }
  free(out);
  free(again);
  free(lens);
  free(lens2);
  pl_buf_free(&enc);
  pl_buf_free(&arena);
}

/* Path 4: the input as values, through a chunk and back. */
static void roundtrip_values(const uint8_t *data, size_t size) {
  size_t n = size / 8;
  if (n == 0)
    return;
  if (n > MAX_VALUES)
    n = MAX_VALUES;
  int64_t *iv = malloc(n * 8), *ts = malloc(n * 8), *iout = malloc(n * 8);
  double *fv = malloc(n * 8), *fout = malloc(n * 8);
  uint8_t *bv = malloc(n), *bout = malloc(n), *pres = malloc(n), *pout = malloc(n);
  const char **sv = malloc(n * sizeof *sv), **sout = malloc(n * sizeof *sout);
  uint32_t *lv = malloc(n * 4), *lout = malloc(n * 4);
  CHECK(iv && ts && iout && fv && fout && bv && bout && pres && pout && sv && sout && lv && lout);
  /* Doubles take the input's bits as they are; the other columns are derived from them so
   * that they keep some structure for the codecs to find. The first byte steers the shapes. */
  uint8_t shape = data[0];
  memcpy(fv, data, n * 8);
  for (size_t i = 0; i < n; i++) {
    int64_t raw = (int64_t)bits_of(fv[i]);
    iv[i] = shape & 1 ? raw : raw >> (shape >> 2 & 63);
    ts[i] = shape & 2 && i ? (int64_t)((uint64_t)ts[i - 1] + (uint64_t)(raw & 0xffff)) : raw;
    if (shape & 4)
      fv[i] = (double)(raw % 100000) / 100.0; /* decimal-mode values */
    bv[i] = data[i * 8 % size] & 1;
    pres[i] = i == 0 || (data[(i * 8 + 1) % size] & 7) != 0;
    sv[i] = (const char *)data + i * 8;
    lv[i] = (uint32_t)(data[i * 8 + 7] % 9); /* 0..8 bytes from the value's own bytes */
    if (shape & 8)
      lv[i] = lv[i] % 3; /* few distinct: dictionary */
  }
  tsdb_column_in cols[5] = {
      {.type = TSDB_FLOAT, .v.f = fv},
      {.type = TSDB_INT, .present = pres, .v.i = iv},
      {.type = TSDB_BOOL, .v.b = bv},
      {.type = TSDB_STRING, .present = pres, .v.str = {sv, lv}},
      {.type = TSDB_FLOAT, .present = pres, .v.f = fv},
  };
  pl_buf chunk, arena;
  pl_buf_init(&chunk, TSDB_CHUNK_BYTES_MAX);
  pl_buf_init(&arena, 0);
  CHECK(tsdb_chunk_encode(ts, n, cols, 5, &chunk) == 0);
  tsdb_chunk_info info;
  CHECK(tsdb_chunk_info_parse(chunk.data, chunk.len, &info) == 0);
  CHECK(info.n_points == n && info.n_columns == 5);
  CHECK(tsdb_chunk_decode_ts(&info, iout) == 0);
  CHECK(memcmp(iout, ts, n * 8) == 0);

  tsdb_column_out out = {.type = TSDB_FLOAT, .present = pout, .v.f = fout};
  CHECK(tsdb_chunk_decode_column(&info, 0, &out) == 0);
  for (size_t i = 0; i < n; i++)
    CHECK(pout[i] == 1 && bits_of(fout[i]) == bits_of(fv[i]));
  CHECK(tsdb_chunk_decode_column(&info, 4, &out) == 0);
  for (size_t i = 0; i < n; i++) {
    CHECK(pout[i] == (pres[i] != 0));
    CHECK(bits_of(fout[i]) == (pres[i] ? bits_of(fv[i]) : 0));
  }
  out = (tsdb_column_out){.type = TSDB_INT, .present = pout, .v.i = iout};
  CHECK(tsdb_chunk_decode_column(&info, 1, &out) == 0);
  for (size_t i = 0; i < n; i++)
    CHECK(iout[i] == (pres[i] ? iv[i] : 0));
  out = (tsdb_column_out){.type = TSDB_BOOL, .v.b = bout};
  CHECK(tsdb_chunk_decode_column(&info, 2, &out) == 0);
  CHECK(memcmp(bout, bv, n) == 0);
  out = (tsdb_column_out){.type = TSDB_STRING, .present = pout, .v.str = {sout, lout, &arena}};
  CHECK(tsdb_chunk_decode_column(&info, 3, &out) == 0);
  for (size_t i = 0; i < n; i++) {
    CHECK(lout[i] == (pres[i] ? lv[i] : 0));
    CHECK(lout[i] == 0 || memcmp(sout[i], sv[i], lv[i]) == 0);
  }

  /* Statistics agree with the values. */
  const tsdb_stats *st = &info.cols[1].stats;
  size_t count = 0;
  int64_t first = 0, last = 0, mn = INT64_MAX, mx = INT64_MIN;
  for (size_t i = 0; i < n; i++) {
    if (!pres[i])
      continue;
    if (!count)
      first = iv[i];
    last = iv[i];
    if (iv[i] < mn)
      mn = iv[i];
    if (iv[i] > mx)
      mx = iv[i];
    count++;
  }
  CHECK(st->count == count && st->first_i == first && st->last_i == last);
  CHECK(st->min_i == mn && st->max_i == mx);
  st = &info.cols[0].stats;
  CHECK(st->count == n && bits_of(st->first) == bits_of(fv[0]));
  CHECK(bits_of(st->last) == bits_of(fv[n - 1]));

  free(iv);
  free(ts);
  free(iout);
  free(fv);
  free(fout);
  free(bv);
  free(bout);
  free(pres);
  free(pout);
  free(sv);
  free(sout);
  free(lv);
  free(lout);
  pl_buf_free(&chunk);
  pl_buf_free(&arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  decode_chunk(data, size);
  if (size >= 12 && size <= (1u << 20)) {
    uint8_t *copy = malloc(size);
    CHECK(copy);
    memcpy(copy, data, size);
    uint32_t crc = pl_crc32c(0, copy, size - 4);
    for (int i = 0; i < 4; i++)
      copy[size - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
    decode_chunk(copy, size);
    free(copy);
  }
  decode_column_bytes(data, size);
  roundtrip_values(data, size);
  return 0;
}
