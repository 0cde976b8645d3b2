/* Time-series chunk codec: turns the points of one or more aligned series (one shared timestamp
 * column, one or more value columns) into an immutable compressed chunk with summary statistics,
 * and back. The byte layout is specified at the top of codec.c.
 *
 * Everything here is a pure function over memory: no I/O, no globals, no locks. Calls on
 * distinct data may run concurrently from any thread. Decoders never read past the length they
 * are given, never write more than the number of outputs the caller asked for, and allocate
 * only amounts bounded by TSDB_CHUNK_POINTS_MAX and TSDB_CHUNK_BYTES_MAX, whatever the input.
 *
 * Errors: PL_EINVAL for bad arguments, PL_ECORRUPT for bytes that are not a valid encoding,
 * PL_ELIMIT when a limit below is exceeded, PL_ENOMEM when allocation fails. On failure an
 * output pl_buf is left with the length it had on entry; other output arrays may have been
 * partly written and must be ignored.
 */
#ifndef PLATEAU_TSDB_CODEC_H
#define PLATEAU_TSDB_CODEC_H

#include "base/buf.h"

#include <stddef.h>
#include <stdint.h>

#define TSDB_CHUNK_POINTS_MAX 65536      /* rows in one chunk */
#define TSDB_CHUNK_COLUMNS_MAX 64        /* value columns in one chunk */
#define TSDB_CHUNK_BYTES_MAX (16u << 20) /* encoded chunk, and decoded strings of a column */

typedef enum { TSDB_FLOAT = 1, TSDB_INT = 2, TSDB_BOOL = 3, TSDB_STRING = 4 } tsdb_type;

/* One value column to encode; all arrays are borrowed for the duration of the call and hold n
 * entries (n = the chunk's row count). `present` is NULL when every row has a value, else
 * present[i] != 0 marks row i as having one; values of absent rows are never read. */
typedef struct tsdb_column_in {
  tsdb_type type;
  const uint8_t *present;
  union {
    const double *f;  /* TSDB_FLOAT: any bits, NaN payloads, infinities and -0.0 kept exactly */
    const int64_t *i; /* TSDB_INT */
    const uint8_t *b; /* TSDB_BOOL: nonzero is true */
    struct {
      const char *const *s; /* TSDB_STRING: s[i] points at lens[i] bytes, not NUL-terminated; */
      const uint32_t *lens; /* s[i] may be NULL when lens[i] == 0 */
    } str;
  } v;
} tsdb_column_in;

/* Summary of the present values of one column, computed at encode time and stored in the
 * chunk, so count/min/max/sum/first/last over a whole chunk need no decoding.
 *
 * FLOAT: count includes NaNs and nan_count says how many there are. min, max and sum skip NaNs
 *   (min = max = sum = NaN only when every present value is NaN; sum is 0 when count is 0);
 *   sum follows IEEE rules otherwise, so +Inf and -Inf together give NaN. first and last are the
 *   first and last present values, NaN included. The *_i fields are 0.
 * INT: min_i, max_i, first_i, last_i are exact and the double fields are their conversions.
 *   sum_i is the exact sum when sum_i_exact is 1; when the int64 sum overflowed, sum_i_exact is
 *   0, sum_i is saturated to INT64_MAX or INT64_MIN by the sign of sum, and sum is the sum
 *   accumulated in double precision.
 * BOOL: true is 1 and false 0 in every field, so sum (and sum_i) is the count of true values.
 * STRING: only count is set.
 * With count == 0 every other field is 0, except sum_i_exact, which is 1 for INT and BOOL. */
typedef struct tsdb_stats {
  uint32_t count;
  uint32_t nan_count;
  double min, max, sum, first, last;
  int64_t min_i, max_i, sum_i, first_i, last_i;
  int sum_i_exact;
} tsdb_stats;

/* Encodes n rows (1 <= n <= TSDB_CHUNK_POINTS_MAX) with timestamps ts (nanoseconds, any order,
 * though ascending compresses best) and ncols (<= TSDB_CHUNK_COLUMNS_MAX, may be 0) value
 * columns, appending the chunk to out. Nothing is retained after the call. Fails with
 * PL_EINVAL for bad arguments and PL_ELIMIT when the chunk would exceed TSDB_CHUNK_BYTES_MAX
 * or out's own limit. */
int tsdb_chunk_encode(const int64_t *ts, size_t n, const tsdb_column_in *cols, size_t ncols,
                      pl_buf *out);

/* A parsed column header: type, statistics, where its bytes are. Pointers are borrowed from
 * the chunk bytes given to tsdb_chunk_info_parse. */
typedef struct tsdb_column_info {
  tsdb_type type;
  tsdb_stats stats;
  const uint8_t *present_bits; /* NULL when every row is present, else n_points bits, row i is
                                  bit (i % 8) of byte i / 8 */
  const uint8_t *data;         /* encoded values of the present rows */
  size_t data_len;
} tsdb_column_info;

/* The header of a chunk: everything a query needs to decide whether to decode it. About 8 KB
 * (room for every column), so reuse one rather than putting one on the stack per chunk. */
typedef struct tsdb_chunk_info {
  uint32_t n_points;
  uint32_t n_columns;
  int64_t ts_min, ts_max; /* smallest and largest timestamp */
  const uint8_t *ts_data; /* encoded timestamp column */
  size_t ts_len;
  tsdb_column_info cols[TSDB_CHUNK_COLUMNS_MAX];
} tsdb_chunk_info;

/* Verifies the CRC and the structure of the chunk at p (exactly len bytes: the chunk and
 * nothing after it) and fills *info without decoding any values. info keeps pointers into p,
 * which must outlive it. *info is written only on success. PL_ECORRUPT for anything that is
 * not a valid chunk of this version. */
int tsdb_chunk_info_parse(const uint8_t *p, size_t len, tsdb_chunk_info *info);

/* Decodes the timestamps into ts_out (info->n_points entries). */
int tsdb_chunk_decode_ts(const tsdb_chunk_info *info, int64_t *ts_out);

/* Where tsdb_chunk_decode_column puts one column's values. Every array has info->n_points
 * entries and is owned by the caller. Rows without a value get 0, 0.0, false, or a NULL string
 * of length 0.
 *
 * Strings are copied into `arena`, which the caller owns and frees: s[i] points into
 * arena->data (or at a static "" for empty strings) and stays valid until the arena is next
 * appended to, reset or freed. Decoding only appends to the arena, so several columns can
 * share one, but only the pointers of the last call are then valid -- decode strings into an
 * arena of their own, or reserve room first (pl_buf_reserve) to keep them all stable. The
 * arena's max_bytes bounds the memory a chunk can make the decoder use. */
typedef struct tsdb_column_out {
  tsdb_type type;   /* must equal the column's type */
  uint8_t *present; /* optional (may be NULL): set to 1 for rows with a value, else 0 */
  union {
    double *f;
    int64_t *i;
    uint8_t *b; /* 0 or 1 */
    struct {
      const char **s;
      uint32_t *lens;
      pl_buf *arena;
    } str;
  } v;
} tsdb_column_out;

/* Decodes value column col (< info->n_columns) of a parsed chunk. PL_EINVAL when out->type is
 * not the column's type or col is out of range. */
int tsdb_chunk_decode_column(const tsdb_chunk_info *info, size_t col, const tsdb_column_out *out);

/* Column codecs, the building blocks of the chunk format, usable on their own. Each encoder
 * appends the encoding of n values (no count, no length: the caller records both) to out;
 * each decoder reads exactly len bytes holding n values and fails with PL_ECORRUPT if they do
 * not hold exactly that. n is at most TSDB_CHUNK_POINTS_MAX; n == 0 encodes to nothing.
 *
 * Integers (and timestamps) are stored as raw values, deltas or deltas of deltas, whichever is
 * smallest, divided by their greatest common divisor and bit-packed per block of 128 with a
 * per-block base, bit width and patched exceptions. */
int tsdb_codec_int_encode(const int64_t *v, size_t n, pl_buf *out);
int tsdb_codec_int_decode(const uint8_t *p, size_t len, size_t n, int64_t *out);

/* Floats: decimal mode (values that are short decimals become integers value * 10^e, coded as
 * above, with the other values kept as exceptions) or Gorilla XOR mode, whichever is smaller.
 * Bit-exact for every double. */
int tsdb_codec_float_encode(const double *v, size_t n, pl_buf *out);
int tsdb_codec_float_decode(const uint8_t *p, size_t len, size_t n, double *out);

/* Booleans (nonzero is true on input, 0/1 on output): constant, run lengths or a bitmap. */
int tsdb_codec_bool_encode(const uint8_t *v, size_t n, pl_buf *out);
int tsdb_codec_bool_decode(const uint8_t *p, size_t len, size_t n, uint8_t *out);

/* Strings: a dictionary with bit-packed indices, zstd-compressed or plain length-prefixed bytes,
 * whichever is smallest. The encoder fails with PL_ELIMIT when the total length of the strings
 * exceeds TSDB_CHUNK_BYTES_MAX. The decoder appends the strings' bytes to arena (see
 * tsdb_column_out for the ownership rules) and sets s[i], lens[i]. */
int tsdb_codec_string_encode(const char *const *s, const uint32_t *lens, size_t n, pl_buf *out);
int tsdb_codec_string_decode(const uint8_t *p, size_t len, size_t n, const char **s, uint32_t *lens,
                             pl_buf *arena);

#endif
