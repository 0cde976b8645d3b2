/* InfluxDB 1.x line protocol: a pure parser from a byte buffer to tsdb rows (no I/O), used by
 * the InfluxDB-compatible /write endpoint and by anything else that ingests line protocol.
 *
 * One call parses a whole request body. The rows it produces borrow their strings from the
 * input where a name or value needs no unescaping, and from one arena owned by the batch where
 * it does; the arrays of rows, tags and fields belong to the batch and grow by doubling, so a
 * batch reused for the next body allocates nothing once it has seen one as large. The grammar,
 * escaping rules and error phrases follow what InfluxDB 1.6 does (lineproto.c has the grammar).
 */
#ifndef PLATEAU_INGEST_LINEPROTO_H
#define PLATEAU_INGEST_LINEPROTO_H

#include "base/buf.h"
#include "base/err.h"
#include "tsdb/tsdb.h"

#include <stddef.h>
#include <stdint.h>

/* Default limits of one parse (lp_limits fields left 0 take these). */
#define LP_LINE_BYTES_MAX (1u << 20) /* one point, from its first byte to its newline */
#define LP_POINTS_MAX 100000         /* points in one body */
#define LP_VALUES_MAX 1000000        /* tags plus fields over all points of one body */

/* The unit of timestamps in the body (the /write `precision` parameter). */
typedef enum {
  LP_PRECISION_NS = 0,
  LP_PRECISION_US,
  LP_PRECISION_MS,
  LP_PRECISION_S,
  LP_PRECISION_M,
  LP_PRECISION_H
} lp_precision;

/* NULL, "", "n" and "ns" are nanoseconds; "u", "us" and "µ" microseconds; "ms", "s", "m", "h".
 * Returns 0 and *out, or PL_EINVAL for any other name. */
int lp_precision_parse(const char *name, lp_precision *out);

typedef struct lp_limits {
  size_t line_bytes_max; /* 0: LP_LINE_BYTES_MAX */
  size_t points_max;     /* 0: LP_POINTS_MAX */
  size_t values_max;     /* 0: LP_VALUES_MAX */
} lp_limits;

/* The parsed points. rows[i] came from physical line lines[i] (1-based; a point whose string
 * value holds newlines is numbered by the line it starts on); a row's tags pointer is valid even
 * when it has no tags. Everything is owned by the batch
 * except the bytes the rows borrow from the parsed input, which must outlive their use. */
typedef struct lp_batch {
  tsdb_row *rows;
  uint32_t *lines;
  size_t nrows, cap_rows;
  tsdb_tag *tags;
  size_t ntags, cap_tags;
  tsdb_field *fields;
  size_t nfields, cap_fields;
  char *arena; /* unescaped copies; sized to the input on first need, never moved during a parse */
  size_t arena_len, arena_cap;
} lp_batch;

void lp_batch_init(lp_batch *b);
/* Frees what the batch owns and re-initialises it. NULL is a no-op. */
void lp_batch_free(lp_batch *b);

/* Why a parse failed. code is PL_EINVAL for a bad point (syntax, a value, a per-point limit),
 * PL_ELIMIT when the body holds more points or values than the limits allow, PL_ENOMEM.
 * reason is InfluxDB's phrase where it has one ("missing fields", "invalid boolean", ...). The
 * offending point is data[line_off, line_off + line_len). */
typedef struct lp_error {
  int code;
  uint32_t line;
  size_t line_off, line_len;
  char reason[224];
} lp_error;

/* Parses len bytes of line protocol into b (replacing what it held). Timestamps are scaled
 * from `precision` to nanoseconds; a point without one gets now_ns truncated to the precision
 * (as InfluxDB does). limits may be NULL (the defaults). Blank lines, lines of only whitespace
 * and comment lines (first non-blank byte '#') are skipped; "\r\n" line ends and trailing
 * spaces, tabs and CRs are accepted. Either every point parses, and the number of rows is
 * returned, or none is kept: a negative code, with *err saying where and why. */
int lp_parse(const char *data, size_t len, lp_precision precision, int64_t now_ns,
             const lp_limits *limits, lp_batch *b, lp_error *err);

/* Appends InfluxDB's message for err to out: "unable to parse 'LINE': REASON (line N)", where
 * LINE is cut to quote_max bytes (with "..." after) when longer. For PL_ELIMIT and PL_ENOMEM
 * errors the message is REASON alone. Returns 0 or the pl_buf error. */
int lp_error_format(const lp_error *err, const char *data, size_t quote_max, pl_buf *out);

#endif
