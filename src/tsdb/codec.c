/* Time-series chunk codec: the chunk container that holds one timestamp column and the value
 * columns that share it, with their statistics. The API is in codec.h. The column codecs are in
 * codec_integer.c (integers and timestamps), codec_float.c and codec_bool_string.c, each with
 * the specification of its bytes; codec_int.h holds the helpers they share. This comment
 * specifies the conventions of all of them and the bytes of the chunk.
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
 * Every decoder consumes exactly the bytes it was given; anything else is PL_ECORRUPT.
 */
#include "tsdb/codec_int.h"

#include "base/crc32c.h"

#include <stdlib.h>

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
