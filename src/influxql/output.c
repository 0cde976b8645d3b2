/* Results and their renderings as InfluxDB 1.x writes them, byte for byte where it matters to
 * clients:
 *
 * JSON: {"results":[{"statement_id":N,"series":[{"name","tags","columns","values","partial"}],
 * "messages","partial","error"}]} with members left out when empty, as Go's encoding/json does
 * with `omitempty`. Strings are escaped as Go escapes them (<, > and & as \u003c \u003e \u0026,
 * U+2028/2029, other control characters as \u00XX, invalid UTF-8 as \ufffd). Floats use the
 * shortest digits that read back exactly, in plain notation for 1e-6 <= |v| < 1e21 and exponent
 * notation otherwise ("1e+21", "1e-7"); integers print as integers. Times are RFC 3339 with the
 * fraction's trailing zeros trimmed, or integers when epoch= is given. pretty=true indents four
 * spaces per level like Go's MarshalIndent.
 *
 * Chunked JSON: one {"results":[...]} document per line; each series is its own chunk, cut
 * further every chunk_size rows; "partial":true marks a series continued in the next chunk and
 * a statement with more chunks to come.
 *
 * CSV: a header "name,tags,<columns>" per statement (from its first series), rows with the
 * series name and its tags as "k=v,k2=v2" (line-protocol escaped), floats in plain decimal, times
 * as integers (nanoseconds unless epoch= says otherwise), RFC 4180 quoting as Go's csv writer
 * does, a blank line between statements; statements without series and statement errors are
 * skipped.
 */
#include "influxql/influxql_int.h"

#include "base/utf8.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- results ---- */

void influxql_result_init(influxql_result *r, int statement_id) {
  memset(r, 0, sizeof *r);
  r->statement_id = statement_id;
}

#define RESULT_ARENA_BYTES_MAX ((size_t)4 << 30)

static void series_free(influxql_series *s) {
  if (!s)
    return;
  free(s->tags);
  free(s->columns);
  free(s->values);
  free(s);
}

void influxql_result_free(influxql_result *r) {
  if (!r)
    return;
  for (size_t i = 0; i < r->nseries; i++)
    series_free(r->series[i]);
  free(r->series);
  free(r->error);
  free(r->message);
  influxql__tz_free(r->tz);
  influxql__arena_free(r->arena);
  memset(r, 0, sizeof *r);
}

int influxql_result_error(influxql_result *r, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  free(r->error);
  r->error = strdup(msg);
  return r->error ? 0 : PL_ENOMEM;
}

/* Strings of a result (names, tags, string values) live in its arena: stable pointers, freed
 * with the result. */
static const char *arena_put(influxql_series *s, const char *p, size_t n, int *rc) {
  char *c = influxql__strndup(s->arena, p, n);
  if (!c)
    *rc = PL_ENOMEM;
  return c;
}

static influxql_arena *result_arena(influxql_result *r) {
  if (!r->arena)
    r->arena = influxql__arena_new(RESULT_ARENA_BYTES_MAX);
  return r->arena;
}

influxql_series *influxql_result_series(influxql_result *r, const char *name,
                                        const char *const *columns, size_t ncolumns) {
  if (!result_arena(r))
    return NULL;
  if (r->nseries == r->cap_series) {
    size_t cap = r->cap_series ? r->cap_series * 2 : 8;
    influxql_series **p = realloc(r->series, cap * sizeof *p);
    if (!p)
      return NULL;
    r->series = p;
    r->cap_series = cap;
  }
  influxql_series *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->arena = r->arena;
  s->columns = calloc(ncolumns ? ncolumns : 1, sizeof *s->columns);
  int rc = s->columns ? 0 : PL_ENOMEM;
  if (name && rc == 0)
    s->name = arena_put(s, name, strlen(name), &rc);
  for (size_t i = 0; i < ncolumns && rc == 0; i++)
    s->columns[i] = arena_put(s, columns[i], strlen(columns[i]), &rc);
  s->ncolumns = ncolumns;
  if (rc < 0) {
    series_free(s);
    return NULL;
  }
  r->series[r->nseries++] = s;
  return s;
}

int influxql_series_tag(influxql_series *s, const char *key, size_t klen, const char *value,
                        size_t vlen) {
  influxql_tag *t = realloc(s->tags, (s->ntags + 1) * sizeof *t);
  if (!t)
    return PL_ENOMEM;
  s->tags = t;
  int rc = 0;
  t[s->ntags].key = arena_put(s, key, klen, &rc);
  t[s->ntags].value = arena_put(s, value, vlen, &rc);
  if (rc < 0)
    return rc;
  s->ntags++;
  return 0;
}

int influxql_series_row(influxql_series *s, const influxql_value *row) {
  if (s->nrows == s->cap_rows) {
    size_t cap = s->cap_rows ? s->cap_rows * 2 : 16;
    influxql_value *v = realloc(s->values, cap * (s->ncolumns ? s->ncolumns : 1) * sizeof *v);
    if (!v)
      return PL_ENOMEM;
    s->values = v;
    s->cap_rows = cap;
  }
  influxql_value *dst = s->values + s->nrows * s->ncolumns;
  int rc = 0;
  for (size_t c = 0; c < s->ncolumns; c++) {
    dst[c] = row[c];
    if (row[c].kind == INFLUXQL_V_STRING) {
      dst[c].v.s.p = arena_put(s, row[c].v.s.p ? row[c].v.s.p : "", row[c].v.s.len, &rc);
      if (rc < 0)
        return rc;
    }
  }
  s->nrows++;
  return 0;
}

/* ---- time ---- */

/* Days since 1970-01-01 to civil date (proleptic Gregorian). */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t yy = yoe + era * 400;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yy + (*m <= 2);
}

char *influxql__time_format(int64_t ts_ns, int utc, int32_t offset_s, char *out, size_t outsz) {
  int64_t local = ts_ns;
  if (!utc)
    local = (int64_t)((uint64_t)ts_ns + (uint64_t)((int64_t)offset_s * 1000000000));
  int64_t secs = local / 1000000000, frac = local % 1000000000;
  if (frac < 0)
    frac += 1000000000, secs--;
  int64_t days = secs / 86400, rem = secs % 86400;
  if (rem < 0)
    rem += 86400, days--;
  int64_t y;
  int mo, d;
  civil_from_days(days, &y, &mo, &d);
  char fr[16] = "";
  if (frac) {
    snprintf(fr, sizeof fr, ".%09lld", (long long)frac);
    size_t n = strlen(fr);
    while (n > 1 && fr[n - 1] == '0')
      fr[--n] = 0;
  }
  char zone[16] = "Z";
  if (!utc) {
    int32_t o = offset_s < 0 ? -offset_s : offset_s;
    o %= 100 * 3600; /* zone offsets are below 24 h; keeps the format's width known */
    if (offset_s == 0)
      snprintf(zone, sizeof zone, "Z");
    else
      snprintf(zone, sizeof zone, "%c%02d:%02d", offset_s < 0 ? '-' : '+', (int)(o / 3600),
               (int)(o % 3600 / 60));
  }
  snprintf(out, outsz, "%04lld-%02d-%02dT%02d:%02d:%02d%s%s", (long long)y, mo, d,
           (int)(rem / 3600), (int)(rem % 3600 / 60), (int)(rem % 60), fr, zone);
  return out;
}

/* ---- numbers ---- */

/* The shortest decimal digits that read back as v (|v| finite, non-zero): digits without a
 * point and the exponent of the first one (v = d.ddd x 10^exp). */
static void shortest_digits(double v, char digits[24], int *exp10) {
  /* If a decimal of k <= 15 significant digits reads back as v, the correctly rounded
   * 15-digit form is that decimal padded with zeros; so try 15, 16 and 17 digits and strip the
   * zeros, instead of trying every length. */
  char buf[40];
  /* subnormals have fewer significant bits: there, try every length */
  for (int prec = fabs(v) < DBL_MIN ? 0 : 14; prec <= 16; prec++) {
    snprintf(buf, sizeof buf, "%.*e", prec, v);
    if (prec == 16 || strtod(buf, NULL) == v)
      break;
  }
  const char *p = buf;
  if (*p == '-')
    p++;
  size_t n = 0;
  for (; *p && *p != 'e'; p++)
    if (*p != '.')
      digits[n++] = *p;
  while (n > 1 && digits[n - 1] == '0')
    n--;
  digits[n] = 0;
  *exp10 = atoi(p + 1);
}

static int append_plain(double v, pl_buf *out) {
  char digits[24];
  int e;
  if (v == 0)
    return pl_buf_append_str(out, signbit(v) ? "-0" : "0");
  shortest_digits(v, digits, &e);
  int rc = v < 0 ? pl_buf_append_byte(out, '-') : 0;
  int nd = (int)strlen(digits);
  if (e >= 0) {
    for (int i = 0; i <= e && rc == 0; i++)
      rc = pl_buf_append_byte(out, (uint8_t)(i < nd ? digits[i] : '0'));
    if (rc == 0 && nd > e + 1) {
      rc = pl_buf_append_byte(out, '.');
      if (rc == 0)
        rc = pl_buf_append(out, digits + e + 1, (size_t)(nd - e - 1));
    }
  } else {
    rc = pl_buf_append_str(out, "0.");
    for (int i = 0; i < -e - 1 && rc == 0; i++)
      rc = pl_buf_append_byte(out, '0');
    if (rc == 0)
      rc = pl_buf_append(out, digits, (size_t)nd);
  }
  return rc;
}

int influxql__float_plain(double v, pl_buf *out) {
  if (isnan(v))
    return pl_buf_append_str(out, "NaN");
  if (isinf(v))
    return pl_buf_append_str(out, v > 0 ? "+Inf" : "-Inf");
  return append_plain(v, out);
}

const char *influxql_format_float_json(double v, char *buf, size_t bufsz) {
  if (!isfinite(v)) {
    snprintf(buf, bufsz, "null");
    return buf;
  }
  double a = fabs(v);
  if (a == 0 || (a >= 1e-6 && a < 1e21)) {
    pl_buf b;
    pl_buf_init(&b, 0);
    if (append_plain(v, &b) == 0)
      snprintf(buf, bufsz, "%s", pl_buf_cstr(&b));
    else
      snprintf(buf, bufsz, "%.17g", v);
    pl_buf_free(&b);
    return buf;
  }
  char digits[24];
  int e;
  shortest_digits(v, digits, &e);
  char mant[32];
  if (digits[1])
    snprintf(mant, sizeof mant, "%c.%s", digits[0], digits + 1);
  else
    snprintf(mant, sizeof mant, "%c", digits[0]);
  /* Go's 'e' format has two exponent digits at least; encoding/json then trims "e-07" to "e-7". */
  if (e < 0 && e > -10)
    snprintf(buf, bufsz, "%s%se-%d", v < 0 ? "-" : "", mant, -e);
  else
    snprintf(buf, bufsz, "%s%se%c%02d", v < 0 ? "-" : "", mant, e < 0 ? '-' : '+', e < 0 ? -e : e);
  return buf;
}

/* ---- JSON ---- */

#define WHOLE_PARTIAL_ROWS 10000

typedef struct jw {
  pl_buf *out;
  int pretty, depth, rc;
} jw;

static void j_raw(jw *w, const char *s, size_t n) {
  if (w->rc == 0 && n)
    w->rc = pl_buf_append(w->out, s, n);
}
static void j_str0(jw *w, const char *s) {
  j_raw(w, s, strlen(s));
}

static void j_nl(jw *w) {
  if (!w->pretty)
    return;
  j_raw(w, "\n", 1);
  for (int i = 0; i < w->depth; i++)
    j_raw(w, "    ", 4);
}

static void j_string(jw *w, const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0, run = 0;
  j_raw(w, "\"", 1);
  while (i < len) {
    unsigned c = p[i];
    size_t n = c < 0x80 ? 1 : pl_utf8_decode(p + i, len - i, NULL);
    int special =
        !n || c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' ||
        (n == 3 && c == 0xe2 && p[i + 1] == 0x80 && (p[i + 2] == 0xa8 || p[i + 2] == 0xa9));
    if (!special) {
      i += n;
      continue;
    }
    j_raw(w, s + run, i - run);
    char esc[8];
    if (!n) {
      j_str0(w, "\\ufffd");
      n = 1;
    } else if (n == 3) {
      j_str0(w, p[i + 2] == 0xa8 ? "\\u2028" : "\\u2029");
    } else if (c == '"') {
      j_str0(w, "\\\"");
    } else if (c == '\\') {
      j_str0(w, "\\\\");
    } else if (c == '\n') {
      j_str0(w, "\\n");
    } else if (c == '\r') {
      j_str0(w, "\\r");
    } else if (c == '\t') {
      j_str0(w, "\\t");
    } else {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      j_str0(w, esc);
    }
    i += n;
    run = i;
  }
  j_raw(w, s + run, len - run);
  j_raw(w, "\"", 1);
}

static void j_key(jw *w, const char *k, int *first) {
  if (!*first)
    j_raw(w, ",", 1);
  *first = 0;
  j_nl(w);
  j_string(w, k, strlen(k));
  j_raw(w, w->pretty ? ": " : ":", w->pretty ? 2 : 1);
}

static void j_open(jw *w, char c) {
  j_raw(w, &c, 1);
  w->depth++;
}

static void j_close(jw *w, char c, int empty) {
  w->depth--;
  if (!empty)
    j_nl(w);
  j_raw(w, &c, 1);
}

static void j_int(jw *w, long long v) {
  char b[24];
  snprintf(b, sizeof b, "%lld", v);
  j_str0(w, b);
}

static int64_t epoch_value(int64_t ns, int64_t div) {
  return ns / div; /* Go's integer division truncates toward zero, as InfluxDB does */
}

static void j_value(jw *w, const influxql_out_opts *o, const influxql_result *r,
                    const influxql_series *s, const influxql_value *v) {
  char b[48];
  switch (v->kind) {
  case INFLUXQL_V_NULL: j_str0(w, "null"); break;
  case INFLUXQL_V_FLOAT: j_str0(w, influxql_format_float_json(v->v.f, b, sizeof b)); break;
  case INFLUXQL_V_INT: j_int(w, (long long)v->v.i); break;
  case INFLUXQL_V_BOOL: j_str0(w, v->v.b ? "true" : "false"); break;
  case INFLUXQL_V_STRING: {
    const char *p = v->v.s.p;
    j_string(w, p ? p : "", v->v.s.len);
    break;
  }
  case INFLUXQL_V_TIME:
    if (o->epoch_div) {
      j_int(w, (long long)epoch_value(v->v.i, o->epoch_div));
    } else {
      int32_t off = r->tz ? influxql__tz_offset(r->tz, v->v.i) : 0;
      influxql__time_format(v->v.i, !r->tz, off, b, sizeof b);
      j_string(w, b, strlen(b));
    }
    break;
  }
}

static int cmp_tag(const void *a, const void *b) {
  const influxql_tag *x = a, *y = b;
  return strcmp(x->key, y->key);
}

static void j_series(jw *w, const influxql_out_opts *o, const influxql_result *r,
                     const influxql_series *s, size_t row_from, size_t row_to, int partial) {
  int first = 1;
  j_open(w, '{');
  if (s->name) {
    const char *n = s->name;
    j_key(w, "name", &first);
    j_string(w, n, strlen(n));
  }
  if (s->ntags) {
    /* Go prints map keys sorted. */
    influxql_tag *sorted = malloc(s->ntags * sizeof *sorted);
    if (!sorted) {
      w->rc = PL_ENOMEM;
      return;
    }
    for (size_t i = 0; i < s->ntags; i++) {
      sorted[i].key = s->tags[i].key;
      sorted[i].value = s->tags[i].value;
    }
    if (s->ntags > 1)
      qsort(sorted, s->ntags, sizeof *sorted, cmp_tag);
    j_key(w, "tags", &first);
    j_open(w, '{');
    int tf = 1;
    for (size_t i = 0; i < s->ntags; i++) {
      if (i && strcmp(sorted[i].key, sorted[i - 1].key) == 0)
        continue;
      j_key(w, sorted[i].key, &tf);
      j_string(w, sorted[i].value, strlen(sorted[i].value));
    }
    j_close(w, '}', 0);
    free(sorted);
  }
  if (s->ncolumns) {
    j_key(w, "columns", &first);
    j_open(w, '[');
    for (size_t c = 0; c < s->ncolumns; c++) {
      if (c)
        j_raw(w, ",", 1);
      j_nl(w);
      const char *name = s->columns[c];
      j_string(w, name, strlen(name));
    }
    j_close(w, ']', 0);
  }
  if (row_to > row_from) {
    j_key(w, "values", &first);
    j_open(w, '[');
    for (size_t k = row_from; k < row_to && w->rc == 0; k++) {
      if (k > row_from)
        j_raw(w, ",", 1);
      j_nl(w);
      j_open(w, '[');
      const influxql_value *row = s->values + k * s->ncolumns;
      for (size_t c = 0; c < s->ncolumns; c++) {
        if (c)
          j_raw(w, ",", 1);
        j_nl(w);
        j_value(w, o, r, s, &row[c]);
      }
      j_close(w, ']', s->ncolumns == 0);
    }
    j_close(w, ']', 0);
  }
  if (partial) {
    j_key(w, "partial", &first);
    j_str0(w, "true");
  }
  j_close(w, '}', first);
}

/* One result object; series [sf, st) with rows [rf, rt) of the last one only when cut. */
static void j_result(jw *w, const influxql_out_opts *o, const influxql_result *r, size_t sf,
                     size_t st, size_t rf, size_t rt, int series_partial, int result_partial) {
  int first = 1;
  j_open(w, '{');
  j_key(w, "statement_id", &first);
  j_int(w, r->statement_id);
  if (!r->error && st > sf) {
    j_key(w, "series", &first);
    j_open(w, '[');
    for (size_t i = sf; i < st; i++) {
      if (i > sf)
        j_raw(w, ",", 1);
      j_nl(w);
      const influxql_series *s = r->series[i];
      int cut = i + 1 == st;
      /* series_partial < 0: a whole response, where InfluxDB 1.6 leaves "partial":true on every
       * series longer than its internal chunk of 10,000 rows */
      int partial = series_partial < 0 ? s->nrows > WHOLE_PARTIAL_ROWS : cut && series_partial;
      j_series(w, o, r, s, cut ? rf : 0, cut ? rt : s->nrows, partial);
    }
    j_close(w, ']', 0);
  }
  if (r->message) {
    j_key(w, "messages", &first);
    j_open(w, '[');
    j_nl(w);
    int mf = 1;
    j_open(w, '{');
    j_key(w, "level", &mf);
    j_str0(w, "\"warning\"");
    j_key(w, "text", &mf);
    j_string(w, r->message, strlen(r->message));
    j_close(w, '}', 0);
    j_close(w, ']', 0);
  }
  if (result_partial) {
    j_key(w, "partial", &first);
    j_str0(w, "true");
  }
  if (r->error) {
    j_key(w, "error", &first);
    j_string(w, r->error, strlen(r->error));
  }
  j_close(w, '}', 0);
}

static int j_document(const influxql_out_opts *o, influxql_result *const *results, size_t n,
                      size_t sf, size_t st, size_t rf, size_t rt, int series_partial,
                      int result_partial, int single, pl_buf *out) {
  jw w = {out, o->pretty, 0, 0};
  int first = 1;
  j_open(&w, '{');
  j_key(&w, "results", &first);
  j_open(&w, '[');
  for (size_t i = 0; i < n; i++) {
    if (i)
      j_raw(&w, ",", 1);
    j_nl(&w);
    const influxql_result *r = results[i];
    if (single)
      j_result(&w, o, r, sf, st, rf, rt, series_partial, result_partial);
    else
      j_result(&w, o, r, 0, r->nseries, 0, r->nseries ? r->series[r->nseries - 1]->nrows : 0, -1,
               0);
  }
  j_close(&w, ']', n == 0);
  j_close(&w, '}', 0);
  if (w.rc == 0)
    w.rc = pl_buf_append_byte(out, '\n');
  return w.rc;
}

/* ---- CSV ---- */

static int csv_cell(pl_buf *out, const char *s, size_t n) {
  int quote = 0;
  if (n == 2 && s[0] == '\\' && s[1] == '.')
    quote = 1;
  if (n &&
      (s[0] == ' ' || s[0] == '\t' || s[0] == '\n' || s[0] == '\r' || s[0] == '\v' || s[0] == '\f'))
    quote = 1;
  for (size_t i = 0; i < n && !quote; i++)
    quote = s[i] == '"' || s[i] == ',' || s[i] == '\r' || s[i] == '\n';
  if (!quote)
    return pl_buf_append(out, s, n);
  int rc = pl_buf_append_byte(out, '"');
  size_t run = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (s[i] == '"') {
      rc = pl_buf_append(out, s + run, i + 1 - run);
      if (rc == 0)
        rc = pl_buf_append_byte(out, '"');
      run = i + 1;
    }
  }
  if (rc == 0)
    rc = pl_buf_append(out, s + run, n - run);
  return rc ? rc : pl_buf_append_byte(out, '"');
}

/* Tag keys and values escaped as in a line-protocol series key. */
static int tag_escape(pl_buf *b, const char *s) {
  int rc = 0;
  for (; *s && rc == 0; s++) {
    if (*s == ',' || *s == ' ' || *s == '=')
      rc = pl_buf_append_byte(b, '\\');
    if (rc == 0)
      rc = pl_buf_append_byte(b, (uint8_t)*s);
  }
  return rc;
}

static int csv_result(const influxql_out_opts *o, const influxql_result *r, int *last_stmt,
                      pl_buf *out) {
  if (r->error || !r->nseries)
    return 0;
  int rc = 0;
  if (*last_stmt >= 0)
    rc = pl_buf_append_byte(out, '\n');
  *last_stmt = r->statement_id;
  const influxql_series *s0 = r->series[0];
  if (rc == 0)
    rc = pl_buf_append_str(out, "name,tags");
  for (size_t c = 0; c < s0->ncolumns && rc == 0; c++) {
    rc = pl_buf_append_byte(out, ',');
    const char *name = s0->columns[c];
    if (rc == 0)
      rc = csv_cell(out, name, strlen(name));
  }
  if (rc == 0)
    rc = pl_buf_append_byte(out, '\n');
  pl_buf tags, num;
  pl_buf_init(&tags, 0);
  pl_buf_init(&num, 0);
  for (size_t i = 0; i < r->nseries && rc == 0; i++) {
    const influxql_series *s = r->series[i];
    pl_buf_reset(&tags);
    influxql_tag *sorted = s->ntags ? malloc(s->ntags * sizeof *sorted) : NULL;
    if (s->ntags && !sorted)
      rc = PL_ENOMEM;
    for (size_t t = 0; t < s->ntags && rc == 0; t++) {
      sorted[t].key = s->tags[t].key;
      sorted[t].value = s->tags[t].value;
    }
    if (sorted && s->ntags > 1)
      qsort(sorted, s->ntags, sizeof *sorted, cmp_tag);
    for (size_t t = 0; t < s->ntags && rc == 0; t++) {
      if (t)
        rc = pl_buf_append_byte(&tags, ',');
      if (rc == 0)
        rc = tag_escape(&tags, sorted[t].key);
      if (rc == 0)
        rc = pl_buf_append_byte(&tags, '=');
      if (rc == 0)
        rc = tag_escape(&tags, sorted[t].value);
    }
    free(sorted);
    const char *name = s->name ? s->name : "";
    for (size_t k = 0; k < s->nrows && rc == 0; k++) {
      rc = csv_cell(out, name, strlen(name));
      if (rc == 0)
        rc = pl_buf_append_byte(out, ',');
      if (rc == 0)
        rc = csv_cell(out, (const char *)tags.data, tags.len);
      const influxql_value *row = s->values + k * s->ncolumns;
      for (size_t c = 0; c < s->ncolumns && rc == 0; c++) {
        rc = pl_buf_append_byte(out, ',');
        const influxql_value *v = &row[c];
        pl_buf_reset(&num);
        switch (v->kind) {
        case INFLUXQL_V_NULL: break;
        case INFLUXQL_V_FLOAT:
          if (rc == 0)
            rc = influxql__float_plain(v->v.f, &num);
          if (rc == 0)
            rc = pl_buf_append(out, num.data, num.len);
          break;
        case INFLUXQL_V_INT:
          if (rc == 0)
            rc = pl_buf_printf(out, "%lld", (long long)v->v.i);
          break;
        case INFLUXQL_V_BOOL:
          if (rc == 0)
            rc = pl_buf_append_str(out, v->v.b ? "true" : "false");
          break;
        case INFLUXQL_V_STRING: {
          const char *p = v->v.s.p;
          if (rc == 0)
            rc = csv_cell(out, p ? p : "", v->v.s.len);
          break;
        }
        case INFLUXQL_V_TIME:
          if (rc == 0)
            rc = pl_buf_printf(
                out, "%lld",
                (long long)(o->epoch_div ? epoch_value(v->v.i, o->epoch_div) : v->v.i));
          break;
        }
      }
      if (rc == 0)
        rc = pl_buf_append_byte(out, '\n');
    }
  }
  pl_buf_free(&tags);
  pl_buf_free(&num);
  return rc;
}

int influxql_write_results(const influxql_out_opts *o, influxql_result *const *results, size_t n,
                           pl_buf *out) {
  if (o->format == INFLUXQL_FMT_CSV) {
    int last = -1, rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
      rc = csv_result(o, results[i], &last, out);
    return rc;
  }
  return j_document(o, results, n, 0, 0, 0, 0, 0, 0, 0, out);
}

int influxql_write_chunk(const influxql_out_opts *o, const influxql_result *r, size_t series_from,
                         size_t series_to, size_t row_from, size_t row_to, int series_partial,
                         int result_partial, pl_buf *out) {
  influxql_result *one = (influxql_result *)r;
  return j_document(o, &one, 1, series_from, series_to, row_from, row_to, series_partial,
                    result_partial, 1, out);
}

int influxql_write_error(const influxql_out_opts *o, const char *msg, pl_buf *out) {
  if (o->format == INFLUXQL_FMT_CSV) {
    int rc = pl_buf_append_str(out, "error\n");
    if (rc == 0)
      rc = csv_cell(out, msg, strlen(msg));
    return rc ? rc : pl_buf_append_byte(out, '\n');
  }
  jw w = {out, o->pretty, 0, 0};
  int first = 1;
  j_open(&w, '{');
  j_key(&w, "error", &first);
  j_string(&w, msg, strlen(msg));
  j_close(&w, '}', 0);
  if (w.rc == 0)
    w.rc = pl_buf_append_byte(out, '\n');
  return w.rc;
}

/* ---- time zones: TZif files from the system's zoneinfo ----
 * Layout (RFC 8536): "TZif", version, 15 reserved bytes, six big-endian u32 counts (isutcnt,
 * isstdcnt, leapcnt, timecnt, typecnt, charcnt), then the version 1 data with 32-bit times; for
 * version 2 and later a second header and the same data with 64-bit times follows, which is the
 * one used here. An instant's offset is that of the last transition at or before it, or of the
 * first standard-time type before the first transition. Beyond the last transition the last
 * offset holds (Debian's files list transitions to 2037). */

struct influxql_tz {
  size_t n;
  int64_t *at;     /* transition times, seconds */
  int32_t *off_at; /* offset from each transition on */
  int32_t off_before;
};

void influxql__tz_free(influxql_tz *tz) {
  if (!tz)
    return;
  free(tz->at);
  free(tz->off_at);
  free(tz);
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int tz_parse(const uint8_t *d, size_t len, influxql_tz *tz) {
  if (len < 44 || memcmp(d, "TZif", 4) != 0)
    return PL_EINVAL;
  int version = d[4] ? d[4] - '0' : 1;
  size_t pos = 0;
  int tsize = 4;
  for (int pass = 0; pass < 2; pass++) {
    if (pos + 44 > len || memcmp(d + pos, "TZif", 4) != 0)
      return PL_EINVAL;
    uint32_t isut = be32(d + pos + 20), isstd = be32(d + pos + 24), leap = be32(d + pos + 28);
    uint32_t timecnt = be32(d + pos + 32), typecnt = be32(d + pos + 36),
             charcnt = be32(d + pos + 40);
    size_t body = (size_t)timecnt * tsize + timecnt + (size_t)typecnt * 6 + charcnt +
                  (size_t)leap * (tsize + 4) + isstd + isut;
    if (typecnt == 0 || timecnt > 100000 || typecnt > 256 || pos + 44 + body > len)
      return PL_EINVAL;
    if (pass == 0 && version >= 2) {
      pos += 44 + body;
      tsize = 8;
      continue;
    }
    const uint8_t *t = d + pos + 44, *idx = t + (size_t)timecnt * tsize, *types = idx + timecnt;
    tz->at = malloc((timecnt ? timecnt : 1) * sizeof *tz->at);
    tz->off_at = malloc((timecnt ? timecnt : 1) * sizeof *tz->off_at);
    if (!tz->at || !tz->off_at)
      return PL_ENOMEM;
    for (uint32_t i = 0; i < timecnt; i++) {
      if (idx[i] >= typecnt)
        return PL_EINVAL;
      tz->at[i] = tsize == 8 ? (int64_t)((uint64_t)be32(t + i * 8) << 32 | be32(t + i * 8 + 4))
                             : (int64_t)(int32_t)be32(t + i * 4);
      tz->off_at[i] = (int32_t)be32(types + idx[i] * 6);
    }
    tz->n = timecnt;
    tz->off_before = (int32_t)be32(types);
    for (uint32_t k = 0; k < typecnt; k++)
      if (!types[k * 6 + 4]) {
        tz->off_before = (int32_t)be32(types + k * 6);
        break;
      }
    return 0;
  }
  return PL_EINVAL;
}

int influxql__tz_load(const char *name, influxql_tz **out) {
  influxql_tz *tz = calloc(1, sizeof *tz);
  if (!tz)
    return PL_ENOMEM;
  if (!*name || strcmp(name, "UTC") == 0) {
    *out = tz;
    return 0;
  }
  /* Only names shaped like IANA zones reach the file system. */
  size_t n = strlen(name);
  int ok = n < 128 && name[0] != '/' && !strstr(name, "..");
  for (size_t i = 0; i < n && ok; i++) {
    char c = name[i];
    ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '/' ||
         c == '_' || c == '-' || c == '+';
  }
  int rc = ok ? 0 : PL_ENOTFOUND;
  if (rc == 0) {
    char path[256];
    snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
      rc = PL_ENOTFOUND;
    } else {
      uint8_t *buf = malloc(1 << 20);
      size_t len = buf ? fread(buf, 1, 1 << 20, f) : 0;
      fclose(f);
      rc = buf ? tz_parse(buf, len, tz) : PL_ENOMEM;
      if (rc == PL_EINVAL)
        rc = PL_ENOTFOUND;
      free(buf);
    }
  }
  if (rc < 0) {
    influxql__tz_free(tz);
    return rc;
  }
  *out = tz;
  return 0;
}

int32_t influxql__tz_offset(const influxql_tz *tz, int64_t t_ns) {
  if (!tz || !tz->n)
    return tz ? tz->off_before : 0;
  int64_t s = t_ns / 1000000000;
  if (t_ns % 1000000000 < 0)
    s--;
  if (s < tz->at[0])
    return tz->off_before;
  size_t lo = 0, hi = tz->n;
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (tz->at[mid] <= s)
      lo = mid;
    else
      hi = mid;
  }
  return tz->off_at[lo];
}

int influxql_tz_check(const char *name) {
  influxql_tz *tz = NULL;
  int rc = influxql__tz_load(name, &tz);
  influxql__tz_free(tz);
  return rc;
}
