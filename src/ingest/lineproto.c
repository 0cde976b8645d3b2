/* The InfluxDB 1.x line-protocol parser (lineproto.h). It is the ingest hot path, so it makes
 * one pass over the bytes with a byte-class table, copies nothing that needs no unescaping, and
 * converts the common decimal floats without strtod.
 *
 * Grammar (one point per line; what InfluxDB 1.6 accepts, checked against the real server):
 *
 *   body      = { line ( "\n" | end ) }
 *   line      = blank* ( "" | "#" any* | point ) blank*       blank = " " | "\t" | "\r"
 *   point     = measurement { "," tag } " "+ field { "," field } [ " "+ timestamp ]
 *   tag       = key "=" tagvalue
 *   field     = key "=" value
 *   value     = float | integer "i" | unsigned "u" | string | boolean
 *   float     = [ "-" ] ( digits [ "." digits* ] | "." digits ) [ exponent ]
 *   exponent  = ( "e" | "E" ) [ "+" | "-" ] digits
 *   integer   = [ "-" ] digits           -2^63 .. 2^63-1
 *   unsigned  = digits                   0 .. 2^63-1 (stored as an integer; larger is an error)
 *   boolean   = t | T | true | True | TRUE | f | F | false | False | FALSE
 *   string    = '"' { any byte but an unescaped '"', newlines included } '"'
 *   timestamp = [ "-" ] digits          in the request's precision
 *
 * Escapes in names (measurement, tag key, tag value, field key): a byte that follows a
 * backslash never ends the name (so "\," "\ " "\=" are literal, and so is the byte after a run
 * of backslashes); when the name is stored, a backslash directly before "," " " or "=" is
 * dropped and every other backslash is kept ("a\\b" stays two backslashes, as in InfluxDB).
 * In string values "\"" and "\\" stand for '"' and '\'; any other backslash is kept as is.
 *
 * Values that InfluxDB refuses are refused: NaN and infinities, floats that overflow, integers
 * out of range; a field or tag key named "time"; a tag key given twice. A field given twice
 * keeps the last value (InfluxDB does the same) unless the two differ in type. Names are limited
 * to TSDB_NAME_BYTES_MAX bytes, points to TSDB_TAGS_MAX tags and TSDB_FIELDS_PER_GROUP_MAX
 * fields, strings to TSDB_STRING_BYTES_MAX bytes (the engine's limits), so the engine never
 * refuses a batch for its shape after the parser has accepted it.
 *
 * Lenient where InfluxDB 1.6 is strict, because other writers produce it: "\r\n" line ends and
 * trailing tabs (InfluxDB answers "bad timestamp").
 */
#include "ingest/lineproto.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- byte classes ---- */

enum {
  C_NL = 1,     /* '\n' */
  C_SP = 2,     /* ' ' */
  C_COMMA = 4,  /* ',' */
  C_EQ = 8,     /* '=' */
  C_BS = 16,    /* '\\' */
  C_WS = 32,    /* '\t' '\r': blank at the end of a line, but not a separator */
  C_QUOTE = 64, /* '"' */
};

static const uint8_t cls[256] = {
    ['\n'] = C_NL, [' '] = C_SP,  [','] = C_COMMA, ['='] = C_EQ,
    ['\\'] = C_BS, ['\t'] = C_WS, ['\r'] = C_WS,   ['"'] = C_QUOTE,
};

static const int64_t precision_ns[] = {1,          1000,          1000000,
                                       1000000000, 60000000000LL, 3600000000000LL};

/* InfluxDB's range of representable times: [MinInt64 + 2, MaxInt64 - 1]. */
#define TIME_MIN (INT64_MIN + 2)
#define TIME_MAX (INT64_MAX - 1)

int lp_precision_parse(const char *name, lp_precision *out) {
  static const struct {
    const char *name;
    lp_precision p;
  } names[] = {{"", LP_PRECISION_NS},   {"n", LP_PRECISION_NS},  {"ns", LP_PRECISION_NS},
               {"u", LP_PRECISION_US},  {"us", LP_PRECISION_US}, {"\xc2\xb5", LP_PRECISION_US},
               {"ms", LP_PRECISION_MS}, {"s", LP_PRECISION_S},   {"m", LP_PRECISION_M},
               {"h", LP_PRECISION_H}};
  if (!name)
    name = "";
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(name, names[i].name) == 0) {
      *out = names[i].p;
      return 0;
    }
  return PL_EINVAL;
}

void lp_batch_init(lp_batch *b) {
  memset(b, 0, sizeof *b);
}

void lp_batch_free(lp_batch *b) {
  if (!b)
    return;
  free(b->rows);
  free(b->lines);
  free(b->tags);
  free(b->fields);
  free(b->arena);
  lp_batch_init(b);
}

/* ---- the parser's state ---- */

typedef struct parser {
  const char *data, *end;
  lp_batch *b;
  lp_error *err;
  size_t line_bytes_max, points_max, values_max;
  int64_t scale;      /* ns per timestamp unit */
  int64_t default_ts; /* now, truncated to the precision */
  uint32_t line;      /* the current physical line */
  const char *point;  /* where the current point starts */
  uint32_t point_line;
} parser;

/* Records an error for the current point; returns the code. */
static int fail(parser *ps, int code, const char *at, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Where the current point's line ends: the first newline at or after `at` (everything before
 * `at` has been scanned, including any quoted newlines), without trailing blanks; an unclosed
 * quote takes the rest of the body. */
static size_t line_end(const parser *ps, const char *at) {
  if (at < ps->point)
    at = ps->point;
  if (at > ps->end)
    at = ps->end;
  const char *nl = memchr(at, '\n', (size_t)(ps->end - at));
  const char *e = nl ? nl : ps->end;
  while (e > ps->point && (e[-1] == '\r' || e[-1] == '\t' || e[-1] == ' ' || e[-1] == '\n'))
    e--;
  return (size_t)(e - ps->data);
}

static int fail(parser *ps, int code, const char *at, const char *fmt, ...) {
  lp_error *e = ps->err;
  e->code = code;
  e->line = ps->point_line;
  e->line_off = (size_t)(ps->point - ps->data);
  size_t end = line_end(ps, at);
  e->line_len = end > e->line_off ? end - e->line_off : 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->reason, sizeof e->reason, fmt, ap);
  va_end(ap);
  return code;
}

/* ---- storage in the batch ---- */

static int grow(void **arr, size_t *cap, size_t elem, size_t need, size_t max) {
  if (need <= *cap)
    return 0;
  size_t c = *cap ? *cap * 2 : 64;
  while (c < need)
    c *= 2;
  if (c > max)
    c = max;
  if (c < need)
    return PL_ELIMIT;
  void *p = realloc(*arr, c * elem);
  if (!p)
    return PL_ENOMEM;
  *arr = p;
  *cap = c;
  return 0;
}

/* rows and lines grow together. */
static int grow_rows(lp_batch *b, size_t need, size_t max) {
  if (need <= b->cap_rows)
    return 0;
  size_t c = b->cap_rows ? b->cap_rows * 2 : 64;
  if (c > max)
    c = max;
  if (c < need)
    return PL_ELIMIT;
  tsdb_row *rows = realloc(b->rows, c * sizeof *rows);
  if (!rows)
    return PL_ENOMEM;
  b->rows = rows;
  uint32_t *lines = realloc(b->lines, c * sizeof *lines);
  if (!lines)
    return PL_ENOMEM;
  b->lines = lines;
  b->cap_rows = c;
  return 0;
}

/* Room for one more value (tag or field): PL_ELIMIT past values_max. */
static int values_room(parser *ps, const char *at) {
  lp_batch *b = ps->b;
  if (b->ntags + b->nfields >= ps->values_max)
    return fail(ps, PL_ELIMIT, at,
                "the body holds more than %zu tags and fields; send smaller batches",
                ps->values_max);
  return 0;
}

/* Copies name bytes [s, e) into the arena, dropping a backslash before ',' ' ' or '='. */
static tsdb_str unescape_name(parser *ps, const char *s, const char *e) {
  lp_batch *b = ps->b;
  char *out = b->arena + b->arena_len, *o = out;
  for (const char *p = s; p < e; p++) {
    if (*p == '\\' && p + 1 < e && (p[1] == ',' || p[1] == ' ' || p[1] == '='))
      continue;
    *o++ = *p;
  }
  b->arena_len += (size_t)(o - out);
  return (tsdb_str){out, (size_t)(o - out)};
}

/* Copies string-value bytes [s, e) into the arena, turning \" into " and \\ into \. */
static tsdb_str unescape_string(parser *ps, const char *s, const char *e) {
  lp_batch *b = ps->b;
  char *out = b->arena + b->arena_len, *o = out;
  for (const char *p = s; p < e; p++) {
    if (*p == '\\' && p + 1 < e && (p[1] == '"' || p[1] == '\\'))
      p++;
    *o++ = *p;
  }
  b->arena_len += (size_t)(o - out);
  return (tsdb_str){out, (size_t)(o - out)};
}

/* The arena holds every unescaped copy of one parse: unescaping only removes bytes, so the
 * input's length always suffices and the arena never moves while rows point into it. */
static int arena_ready(parser *ps) {
  lp_batch *b = ps->b;
  if (b->arena)
    return 0;
  size_t need = (size_t)(ps->end - ps->data);
  char *a = malloc(need ? need : 1);
  if (!a)
    return PL_ENOMEM;
  b->arena = a;
  b->arena_cap = need;
  return 0;
}

/* ---- scanning ---- */

/* Scans a name from p to the first unescaped byte of class `stop` (a newline always stops it,
 * escaped or not). A byte after a run of backslashes is escaped. *escaped is set when a
 * backslash was seen. */
static inline const char *scan_name(const char *p, const char *end, unsigned stop, int *escaped) {
  stop |= C_NL | C_BS;
  for (;;) {
    while (p < end && !(cls[(uint8_t)*p] & stop))
      p++;
    if (p == end || *p != '\\')
      return p;
    *escaped = 1;
    while (p < end && *p == '\\')
      p++;
    if (p < end && *p != '\n')
      p++;
  }
}

/* After the last token of a line: skips blanks; returns the newline or end, or NULL when
 * something else follows. */
static inline const char *blank_rest(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
    p++;
  return p == end || *p == '\n' ? p : NULL;
}

static int check_name_len(parser *ps, const char *at, const char *what, size_t len) {
  if (len > TSDB_NAME_BYTES_MAX)
    return fail(ps, PL_EINVAL, at, "%s longer than %d bytes", what, TSDB_NAME_BYTES_MAX);
  return 0;
}

/* ---- numbers ---- */

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* Eight ASCII digits at once, the first in the lowest byte (SWAR): whether all eight bytes are
 * '0'..'9' (a byte of 0xfa or more fails its own test, whatever its carry does to the next),
 * and their value, by combining neighbours into 2-, 4- and 8-digit numbers. */
static inline int eight_digits(uint64_t c) {
  return ((c & 0xf0f0f0f0f0f0f0f0u) | (((c + 0x0606060606060606u) & 0xf0f0f0f0f0f0f0f0u) >> 4)) ==
         0x3333333333333333u;
}

static inline uint64_t eight_value(uint64_t c) {
  c = ((c & 0x0f0f0f0f0f0f0f0fu) * 2561) >> 8;
  c = ((c & 0x00ff00ff00ff00ffu) * 6553601) >> 16;
  return ((c & 0x0000ffff0000ffffu) * 42949672960001u) >> 32;
}
#define HAVE_SWAR_DIGITS 1
#endif

/* Reads [-]digits from s into *out; *next is the byte after them. 0, or -1 (no digits), -2
 * (outside int64). Timestamps have 19 digits: the first 16 are read eight at a time. */
static int read_int(const char *s, const char *end, int64_t *out, const char **next) {
  const char *p = s;
  int neg = 0;
  if (p < end && *p == '-') {
    neg = 1;
    p++;
  }
  const char *d0 = p;
  uint64_t v = 0;
#ifdef HAVE_SWAR_DIGITS
  while (end - p >= 8 && p - d0 < 16) { /* v < 10^16: no overflow */
    uint64_t c;
    memcpy(&c, p, 8);
    if (!eight_digits(c))
      break;
    v = v * 100000000u + eight_value(c);
    p += 8;
  }
#endif
  int range = 0;
  for (; p < end && (unsigned)(uint8_t)*p - '0' <= 9; p++) {
    unsigned d = (unsigned)(uint8_t)*p - '0';
    if (range || v > (UINT64_MAX - d) / 10)
      range = 1;
    else
      v = v * 10 + d;
  }
  *next = p;
  if (p == d0)
    return -1;
  if (range)
    return -2;
  if (neg) {
    if (v > (uint64_t)INT64_MAX + 1)
      return -2;
    *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
  } else {
    if (v > (uint64_t)INT64_MAX)
      return -2;
    *out = (int64_t)v;
  }
  return 0;
}

/* Parses [-]digits into *out. 0, or -1 (not that syntax), -2 (out of the int64 range). */
static int parse_int(const char *s, const char *e, int64_t *out) {
  int neg = 0;
  if (s < e && *s == '-') {
    neg = 1;
    s++;
  }
  size_t n = (size_t)(e - s);
  if (n == 0)
    return -1;
  uint64_t v = 0;
  /* 19 digits never overflow a uint64; only a 20th needs checking. */
  size_t fast = n < 19 ? n : 19;
  for (size_t i = 0; i < fast; i++) {
    unsigned d = (unsigned)(uint8_t)s[i] - '0';
    if (d > 9)
      return -1;
    v = v * 10 + d;
  }
  int range = 0;
  for (size_t i = fast; i < n; i++) {
    unsigned d = (unsigned)(uint8_t)s[i] - '0';
    if (d > 9)
      return -1;
    if (range || v > (UINT64_MAX - d) / 10)
      range = 1;
    else
      v = v * 10 + d;
  }
  if (range)
    return -2;
  if (neg) {
    if (v > (uint64_t)INT64_MAX + 1)
      return -2;
    *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
  } else {
    if (v > (uint64_t)INT64_MAX)
      return -2;
    *out = (int64_t)v;
  }
  return 0;
}

/* Parses a float token [s, e). 0 and *out, or 1 ("invalid number": not float syntax), 2
 * ("invalid float": a bad exponent, or out of range). Decimal literals of at most 19
 * significant digits whose value and power of ten are exact doubles are converted with one
 * rounding (exact, as strtod would give); the rest go to strtod. */
static int parse_float(const char *s, const char *e, double *out) {
  const char *p = s;
  int neg = 0;
  if (p < e && *p == '-') {
    neg = 1;
    p++;
  }
  uint64_t mant = 0;
  int digits = 0, sig = 0, exp10 = 0, slow = 0;
  for (; p < e && (unsigned)(uint8_t)*p - '0' <= 9; p++, digits++) {
    unsigned d = (unsigned)(uint8_t)*p - '0';
    if (sig < 19) {
      mant = mant * 10 + d;
      if (mant)
        sig++;
    } else {
      slow = 1;
    }
  }
  if (p < e && *p == '.') {
    for (p++; p < e && (unsigned)(uint8_t)*p - '0' <= 9; p++, digits++) {
      unsigned d = (unsigned)(uint8_t)*p - '0';
      if (sig < 19) {
        mant = mant * 10 + d;
        if (mant)
          sig++;
        exp10--;
      } else {
        slow = 1;
      }
    }
  }
  if (!digits)
    return 1;
  if (p < e && (*p == 'e' || *p == 'E')) {
    p++;
    int eneg = 0;
    if (p < e && (*p == '+' || *p == '-'))
      eneg = *p++ == '-';
    if (p == e || (unsigned)(uint8_t)*p - '0' > 9)
      return 2;
    int x = 0;
    for (; p < e && (unsigned)(uint8_t)*p - '0' <= 9; p++)
      if (x < 100000)
        x = x * 10 + (*p - '0');
    exp10 += eneg ? -x : x;
  }
  if (p != e)
    return 1;
  double v;
  if (mant == 0 && !slow) {
    v = 0.0;
  } else if (!slow && mant <= (1ULL << 53) && exp10 >= -22 && exp10 <= 22) {
    v = exp10 < 0 ? (double)mant / pow10_exact[-exp10] : (double)mant * pow10_exact[exp10];
  } else {
    /* strtod wants a terminated string; tokens this long are rare. */
    char small[64];
    size_t n = (size_t)(e - s);
    char *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf)
      return 2;
    memcpy(buf, s, n);
    buf[n] = 0;
    errno = 0;
    v = strtod(buf, NULL);
    if (buf != small)
      free(buf);
    if (isinf(v) || isnan(v))
      return 2;
    *out = v;
    return 0;
  }
  *out = neg ? -v : v;
  return 0;
}

/* Parses the field value starting at p (just after '='), for a field of the current point.
 * Returns the byte after the value, or NULL with the error recorded. */
static const char *parse_value(parser *ps, const char *p, tsdb_value *val) {
  const char *end = ps->end;
  if (p == end || (cls[(uint8_t)*p] & (C_NL | C_SP | C_COMMA))) {
    fail(ps, PL_EINVAL, p, "missing field value");
    return NULL;
  }
  char c = *p;
  if (c == '"') {
    const char *s = ++p;
    int escaped = 0;
    for (;;) {
      while (p < end && !(cls[(uint8_t)*p] & (C_QUOTE | C_BS | C_NL)))
        p++;
      if (p == end) {
        fail(ps, PL_EINVAL, end, "unbalanced quotes");
        return NULL;
      }
      if (*p == '"')
        break;
      if (*p == '\n') {
        ps->line++;
        p++;
      } else if (p + 1 < end && (p[1] == '"' || p[1] == '\\')) {
        escaped = 1;
        p += 2;
      } else {
        p++;
      }
    }
    const char *e = p++;
    if ((size_t)(e - s) > TSDB_STRING_BYTES_MAX && !escaped) {
      fail(ps, PL_EINVAL, p, "string value longer than %d bytes", TSDB_STRING_BYTES_MAX);
      return NULL;
    }
    val->type = TSDB_STRING;
    if (escaped) {
      if (arena_ready(ps) < 0) {
        fail(ps, PL_ENOMEM, p, "out of memory");
        return NULL;
      }
      val->v.s = unescape_string(ps, s, e);
      if (val->v.s.len > TSDB_STRING_BYTES_MAX) {
        fail(ps, PL_EINVAL, p, "string value longer than %d bytes", TSDB_STRING_BYTES_MAX);
        return NULL;
      }
    } else {
      val->v.s = (tsdb_str){s, (size_t)(e - s)};
    }
    return p;
  }
  const char *s = p;
  while (p < end && !(cls[(uint8_t)*p] & (C_NL | C_SP | C_COMMA | C_WS)))
    p++;
  const char *e = p;
  if (e == s) {
    fail(ps, PL_EINVAL, p, "missing field value");
    return NULL;
  }
  if (c == '-' || c == '.' || (unsigned)(uint8_t)c - '0' <= 9) {
    char last = e[-1];
    if (last == 'i' || last == 'u') {
      int64_t v;
      int rc = parse_int(s, e - 1, &v);
      if (rc == -1 || (last == 'u' && *s == '-')) {
        fail(ps, PL_EINVAL, p, "invalid number");
        return NULL;
      }
      if (rc == -2) {
        if (last == 'i')
          fail(ps, PL_EINVAL, p,
               "unable to parse integer %.*s: strconv.ParseInt: parsing \"%.*s\": value out of "
               "range",
               (int)(e - 1 - s > 40 ? 40 : e - 1 - s), s, (int)(e - 1 - s > 40 ? 40 : e - 1 - s),
               s);
        else
          fail(ps, PL_EINVAL, p, "unable to parse unsigned %.*s: value out of range (at most %lld)",
               (int)(e - 1 - s > 40 ? 40 : e - 1 - s), s, (long long)INT64_MAX);
        return NULL;
      }
      val->type = TSDB_INT;
      val->v.i = v;
      return p;
    }
    int rc = parse_float(s, e, &val->v.f);
    if (rc) {
      fail(ps, PL_EINVAL, p, rc == 1 ? "invalid number" : "invalid float");
      return NULL;
    }
    val->type = TSDB_FLOAT;
    return p;
  }
  if (c == 'N' || c == 'n') {
    fail(ps, PL_EINVAL, p, "invalid number");
    return NULL;
  }
  size_t n = (size_t)(e - s);
  int b = -1;
  if (n == 1) {
    b = (c == 't' || c == 'T') ? 1 : (c == 'f' || c == 'F') ? 0 : -1;
  } else if (n == 4) {
    b = (!memcmp(s, "true", 4) || !memcmp(s, "True", 4) || !memcmp(s, "TRUE", 4)) ? 1 : -1;
  } else if (n == 5) {
    b = (!memcmp(s, "false", 5) || !memcmp(s, "False", 5) || !memcmp(s, "FALSE", 5)) ? 0 : -1;
  }
  if (b < 0) {
    fail(ps, PL_EINVAL, p, "invalid boolean");
    return NULL;
  }
  val->type = TSDB_BOOL;
  val->v.b = b;
  return p;
}

static const char *type_name(tsdb_type t) {
  switch (t) {
  case TSDB_FLOAT: return "float";
  case TSDB_INT: return "integer";
  case TSDB_BOOL: return "boolean";
  default: return "string";
  }
}

static int str_is(tsdb_str s, const char *lit, size_t n) {
  return s.len == n && memcmp(s.p, lit, n) == 0;
}

/* ---- one point ---- */

/* The error for a value followed by something other than ',' ' ' or the end of the line. */
static const char *bad_after_value(tsdb_type t) {
  switch (t) {
  case TSDB_FLOAT:
  case TSDB_INT: return "invalid number";
  case TSDB_BOOL: return "invalid boolean";
  default: return "invalid field format";
  }
}

static int name_unescape(parser *ps, const char *s, const char *e, tsdb_str *out) {
  if (arena_ready(ps) < 0)
    return fail(ps, PL_ENOMEM, e, "out of memory");
  *out = unescape_name(ps, s, e);
  return 0;
}

/* The name [s, e): borrowed from the input, or an unescaped copy. Inline: nearly every name
 * takes the first branch. */
static inline int name_copy(parser *ps, const char *s, const char *e, int escaped, tsdb_str *out) {
  if (!escaped) {
    *out = (tsdb_str){s, (size_t)(e - s)};
    return 0;
  }
  return name_unescape(ps, s, e, out);
}

static int parse_tags(parser *ps, const char **pp, tsdb_row *row, size_t tag0) {
  lp_batch *b = ps->b;
  const char *p = *pp, *end = ps->end;
  int rc;
  while (p < end && *p == ',') {
    p++;
    if ((rc = values_room(ps, p)) < 0)
      return rc;
    if (b->ntags - tag0 >= TSDB_TAGS_MAX)
      return fail(ps, PL_EINVAL, p, "more than %d tags", TSDB_TAGS_MAX);
    if ((rc = grow((void **)&b->tags, &b->cap_tags, sizeof *b->tags, b->ntags + 1,
                   ps->values_max)) < 0)
      return fail(ps, rc, p, rc == PL_ENOMEM ? "out of memory" : "too many tags");
    tsdb_tag *tag = &b->tags[b->ntags];
    int kesc = 0, vesc = 0;
    const char *ks = p;
    p = scan_name(p, end, C_SP | C_COMMA | C_EQ, &kesc);
    const char *ke = p;
    if (p == ks)
      return fail(ps, PL_EINVAL, p, "missing tag key");
    if (p == end || *p != '=')
      return fail(ps, PL_EINVAL, p, "missing tag value");
    const char *vs = ++p;
    p = scan_name(p, end, C_SP | C_COMMA | C_EQ, &vesc);
    if (p == vs)
      return fail(ps, PL_EINVAL, p, "missing tag value");
    if (p == end || *p == '\n')
      return fail(ps, PL_EINVAL, p, "missing fields");
    if (*p == '=')
      return fail(ps, PL_EINVAL, p, "invalid tag format");
    if ((rc = name_copy(ps, ks, ke, kesc, &tag->key)) < 0 ||
        (rc = name_copy(ps, vs, p, vesc, &tag->value)) < 0 ||
        (rc = check_name_len(ps, p, "tag key", tag->key.len)) < 0 ||
        (rc = check_name_len(ps, p, "tag value", tag->value.len)) < 0)
      return rc;
    if (str_is(tag->key, "time", 4))
      return fail(ps, PL_EINVAL, p,
                  "invalid tag key: input tag \"time\" on measurement \"%.*s\" is invalid",
                  (int)(row->measurement.len > 64 ? 64 : row->measurement.len), row->measurement.p);
    for (size_t k = tag0; k < b->ntags; k++)
      if (b->tags[k].key.len == tag->key.len &&
          memcmp(b->tags[k].key.p, tag->key.p, tag->key.len) == 0)
        return fail(ps, PL_EINVAL, p, "duplicate tags");
    b->ntags++;
  }
  *pp = p;
  return 0;
}

static int parse_fields(parser *ps, const char **pp, tsdb_row *row, size_t field0) {
  lp_batch *b = ps->b;
  const char *p = *pp, *end = ps->end;
  int rc;
  for (;;) {
    if ((rc = values_room(ps, p)) < 0)
      return rc;
    if ((rc = grow((void **)&b->fields, &b->cap_fields, sizeof *b->fields, b->nfields + 1,
                   ps->values_max)) < 0)
      return fail(ps, rc, p, rc == PL_ENOMEM ? "out of memory" : "too many fields");
    tsdb_field *f = &b->fields[b->nfields];
    int kesc = 0;
    const char *ks = p;
    p = scan_name(p, end, C_SP | C_COMMA | C_EQ, &kesc);
    if (p == end || *p != '=')
      return fail(ps, PL_EINVAL, p, "invalid field format");
    if (p == ks)
      return fail(ps, PL_EINVAL, p, "missing field key");
    if ((rc = name_copy(ps, ks, p, kesc, &f->name)) < 0 ||
        (rc = check_name_len(ps, p, "field key", f->name.len)) < 0)
      return rc;
    if (!(p = parse_value(ps, p + 1, &f->value)))
      return ps->err->code;
    if (str_is(f->name, "time", 4))
      return fail(ps, PL_EINVAL, p,
                  "invalid field name: input field \"time\" on measurement \"%.*s\" is invalid",
                  (int)(row->measurement.len > 64 ? 64 : row->measurement.len), row->measurement.p);
    /* A field given twice keeps its last value, as in InfluxDB. */
    size_t dup = b->nfields;
    for (size_t k = field0; k < b->nfields; k++) {
      const tsdb_field *o = &b->fields[k];
      if (o->name.len == f->name.len && o->name.p[0] == f->name.p[0] &&
          memcmp(o->name.p, f->name.p, f->name.len) == 0) {
        dup = k;
        break;
      }
    }
    if (dup == b->nfields) {
      if (b->nfields - field0 >= TSDB_FIELDS_PER_GROUP_MAX)
        return fail(ps, PL_EINVAL, p, "more than %d fields", TSDB_FIELDS_PER_GROUP_MAX);
      b->nfields++;
    } else if (b->fields[dup].value.type != f->value.type) {
      return fail(ps, PL_EINVAL, p,
                  "field type conflict: input field \"%.*s\" on measurement \"%.*s\" is type %s, "
                  "already exists as "
                  "type %s",
                  (int)(f->name.len > 64 ? 64 : f->name.len), f->name.p,
                  (int)(row->measurement.len > 64 ? 64 : row->measurement.len), row->measurement.p,
                  type_name(f->value.type), type_name(b->fields[dup].value.type));
    } else {
      b->fields[dup].value = f->value;
      f = &b->fields[dup];
    }
    if (p < end && *p == ',') {
      p++;
      continue;
    }
    if (p < end && *p != ' ' && *p != '\n' && !blank_rest(p, end))
      return fail(ps, PL_EINVAL, p, "%s", bad_after_value(f->value.type));
    break;
  }
  *pp = p;
  return 0;
}

/* Parses the optional timestamp after the fields and the end of the line. p is just after the
 * last field value. Writes the time and the byte after the line's end (or end). */
static int parse_time(parser *ps, const char *p, int64_t *ts, const char **line_end_out) {
  const char *end = ps->end;
  const char *rest;
  if (p == end || *p == '\n')
    rest = p; /* no timestamp */
  else if (*p == ' ' && p + 1 < end && (unsigned)(uint8_t)p[1] - '0' <= 9)
    rest = NULL; /* the common case: one space and the digits */
  else
    rest = blank_rest(p, end);
  if (rest) {
    *ts = ps->default_ts;
    *line_end_out = rest;
    return 0;
  }
  while (p < end && *p == ' ')
    p++;
  const char *s = p;
  int64_t raw = 0;
  int rc = read_int(s, end, &raw, &p);
  if (!(rest = blank_rest(p, end))) {
    const char *q = s;
    while (q < end && !(cls[(uint8_t)*q] & (C_SP | C_NL | C_WS)))
      q++;
    return fail(ps, PL_EINVAL, q, q == p && p != s ? "point is invalid" : "bad timestamp");
  }
  if (rc == -1)
    return fail(ps, PL_EINVAL, p, "bad timestamp");
  if (rc == -2)
    return fail(ps, PL_EINVAL, p, "strconv.ParseInt: parsing \"%.*s\": value out of range",
                (int)(p - s > 40 ? 40 : p - s), s);
  /* C division truncates toward zero, so these bounds are exact for both signs. */
  if (raw > TIME_MAX / ps->scale || raw < TIME_MIN / ps->scale)
    return fail(ps, PL_EINVAL, p, "time outside range %lld - %lld", (long long)TIME_MIN,
                (long long)TIME_MAX);
  *ts = raw * ps->scale;
  *line_end_out = rest;
  return 0;
}

/* Parses the point at p (its first non-blank byte). Returns the byte after its line (past the
 * newline), or NULL with the error recorded. */
static const char *parse_point(parser *ps, const char *p) {
  const char *end = ps->end;
  lp_batch *b = ps->b;
  int rc;
  if (b->nrows >= ps->points_max) {
    fail(ps, PL_ELIMIT, p, "the body holds more than %zu points; send smaller batches",
         ps->points_max);
    return NULL;
  }
  if ((rc = grow_rows(b, b->nrows + 1, ps->points_max)) < 0) {
    fail(ps, rc, p, "out of memory");
    return NULL;
  }
  tsdb_row *row = &b->rows[b->nrows];
  memset(row, 0, sizeof *row);
  size_t tag0 = b->ntags, field0 = b->nfields;

  if (*p == ',') {
    fail(ps, PL_EINVAL, p, "missing measurement");
    return NULL;
  }
  int escaped = 0;
  const char *s = p;
  p = scan_name(p, end, C_SP | C_COMMA, &escaped);
  if (p == end || *p == '\n') {
    fail(ps, PL_EINVAL, p, "missing fields");
    return NULL;
  }
  if (name_copy(ps, s, p, escaped, &row->measurement) < 0 ||
      check_name_len(ps, p, "measurement", row->measurement.len) < 0 ||
      parse_tags(ps, &p, row, tag0) < 0)
    return NULL;
  while (p < end && *p == ' ')
    p++;
  if (p == end || blank_rest(p, end)) {
    fail(ps, PL_EINVAL, p, "missing fields");
    return NULL;
  }
  int64_t ts = 0;
  if (parse_fields(ps, &p, row, field0) < 0 || parse_time(ps, p, &ts, &p) < 0)
    return NULL;
  if ((size_t)(p - ps->point) > ps->line_bytes_max) {
    fail(ps, PL_EINVAL, p, "line longer than %zu bytes", ps->line_bytes_max);
    return NULL;
  }
  row->ts_ns = ts;
  row->ntags = b->ntags - tag0;
  row->nfields = b->nfields - field0;
  b->lines[b->nrows++] = ps->point_line;
  if (p < end) {
    p++; /* the newline */
    ps->line++;
  }
  return p;
}

/* ---- the body ---- */

int lp_parse(const char *data, size_t len, lp_precision precision, int64_t now_ns,
             const lp_limits *limits, lp_batch *b, lp_error *err) {
  memset(err, 0, sizeof *err);
  b->nrows = b->ntags = b->nfields = b->arena_len = 0;
  if (b->arena && b->arena_cap < len) {
    free(b->arena);
    b->arena = NULL;
    b->arena_cap = 0;
  }
  if (len == 0)
    return 0; /* data may then be NULL */
  if ((unsigned)precision > LP_PRECISION_H)
    precision = LP_PRECISION_NS;
  parser ps = {.data = data,
               .end = data + len,
               .b = b,
               .err = err,
               .line_bytes_max =
                   limits && limits->line_bytes_max ? limits->line_bytes_max : LP_LINE_BYTES_MAX,
               .points_max = limits && limits->points_max ? limits->points_max : LP_POINTS_MAX,
               .values_max = limits && limits->values_max ? limits->values_max : LP_VALUES_MAX,
               .scale = precision_ns[precision],
               .line = 1};
  ps.default_ts = now_ns - now_ns % ps.scale;
  if (ps.points_max > INT32_MAX)
    ps.points_max = INT32_MAX;
  const char *p = data, *end = data + len;
  while (p < end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
      p++;
    if (p == end)
      break;
    if (*p == '\n' || *p == '#') {
      const char *nl = *p == '\n' ? p : memchr(p, '\n', (size_t)(end - p));
      if (!nl)
        break;
      p = nl + 1;
      ps.line++;
      continue;
    }
    ps.point = p;
    ps.point_line = ps.line;
    if (!(p = parse_point(&ps, p))) {
      b->nrows = b->ntags = b->nfields = b->arena_len = 0;
      return err->code;
    }
  }
  /* The arrays may have moved while they grew: point the rows at their tags and fields now.
   * A row without tags still gets a valid pointer (callers may memcpy zero tags from it). */
  static const tsdb_tag no_tags[1];
  size_t t = 0, f = 0;
  for (size_t i = 0; i < b->nrows; i++) {
    b->rows[i].tags = b->tags ? b->tags + t : no_tags;
    b->rows[i].fields = b->fields + f;
    t += b->rows[i].ntags;
    f += b->rows[i].nfields;
  }
  return (int)b->nrows;
}

int lp_error_format(const lp_error *err, const char *data, size_t quote_max, pl_buf *out) {
  if (err->code != PL_EINVAL)
    return pl_buf_append_str(out, err->reason);
  size_t n = err->line_len;
  int cut = n > quote_max;
  if (cut)
    n = quote_max;
  int rc = pl_buf_append_str(out, "unable to parse '");
  if (!rc)
    rc = pl_buf_append(out, data + err->line_off, n);
  if (!rc)
    rc =
        pl_buf_printf(out, "%s': %s (line %u)", cut ? "..." : "", err->reason, (unsigned)err->line);
  return rc;
}
