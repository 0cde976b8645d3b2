/* Fuzz target: the line-protocol parser (src/ingest/lineproto.c).
 *
 * Whatever the input, the parser must not read outside it, and:
 * - on success every row satisfies what the engine requires (names 1..256 bytes, at most 64
 *   tags and 1..64 fields, no tag key twice, no field twice, finite floats, times in range),
 *   and its strings lie in the input or the batch's arena;
 * - written back out as line protocol (with the escapes the grammar defines) the rows parse
 *   again to exactly the same rows;
 * - on failure the error names a line of the input and formats;
 * - with tighter limits, a body that still parses gives the same rows.
 */
#include "ingest/lineproto.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int within(const void *p, size_t len, const void *base, size_t size) {
  const char *c = p, *b = base;
  return len == 0 || (c >= b && c + len <= b + size);
}

static void check_str(tsdb_str s, const uint8_t *data, size_t size, const lp_batch *b, size_t max,
                      int name) {
  if (name && (s.len == 0 || s.len > max))
    abort();
  if (!within(s.p, s.len, data, size) && !within(s.p, s.len, b->arena, b->arena_len))
    abort();
}

/* Appends s with a backslash before each byte of `special`. */
static void put_escaped(pl_buf *o, tsdb_str s, const char *special) {
  for (size_t i = 0; i < s.len; i++) {
    if (strchr(special, s.p[i]) && s.p[i])
      pl_buf_append_byte(o, '\\');
    pl_buf_append_byte(o, (uint8_t)s.p[i]);
  }
}

static void write_rows(const lp_batch *b, pl_buf *o) {
  for (size_t i = 0; i < b->nrows; i++) {
    const tsdb_row *r = &b->rows[i];
    put_escaped(o, r->measurement, ", =");
    for (size_t t = 0; t < r->ntags; t++) {
      pl_buf_append_byte(o, ',');
      put_escaped(o, r->tags[t].key, ", =");
      pl_buf_append_byte(o, '=');
      put_escaped(o, r->tags[t].value, ", =");
    }
    for (size_t f = 0; f < r->nfields; f++) {
      pl_buf_append_byte(o, f ? ',' : ' ');
      put_escaped(o, r->fields[f].name, ", =");
      pl_buf_append_byte(o, '=');
      const tsdb_value *v = &r->fields[f].value;
      switch (v->type) {
      case TSDB_FLOAT: pl_buf_printf(o, "%.17g", v->v.f); break;
      case TSDB_INT: pl_buf_printf(o, "%lldi", (long long)v->v.i); break;
      case TSDB_BOOL: pl_buf_append_str(o, v->v.b ? "true" : "false"); break;
      default:
        pl_buf_append_byte(o, '"');
        put_escaped(o, v->v.s, "\"\\");
        pl_buf_append_byte(o, '"');
      }
    }
    pl_buf_printf(o, " %lld\n", (long long)r->ts_ns);
  }
}

static int str_eq(tsdb_str a, tsdb_str b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static void same_rows(const lp_batch *a, const lp_batch *b) {
  if (a->nrows != b->nrows)
    abort();
  for (size_t i = 0; i < a->nrows; i++) {
    const tsdb_row *x = &a->rows[i], *y = &b->rows[i];
    if (!str_eq(x->measurement, y->measurement) || x->ntags != y->ntags ||
        x->nfields != y->nfields || x->ts_ns != y->ts_ns)
      abort();
    for (size_t t = 0; t < x->ntags; t++)
      if (!str_eq(x->tags[t].key, y->tags[t].key) || !str_eq(x->tags[t].value, y->tags[t].value))
        abort();
    for (size_t f = 0; f < x->nfields; f++) {
      const tsdb_value *u = &x->fields[f].value, *v = &y->fields[f].value;
      if (!str_eq(x->fields[f].name, y->fields[f].name) || u->type != v->type)
        abort();
      if (u->type == TSDB_FLOAT && memcmp(&u->v.f, &v->v.f, sizeof u->v.f) != 0)
        abort();
      if (u->type == TSDB_INT && u->v.i != v->v.i)
        abort();
      if (u->type == TSDB_BOOL && u->v.b != v->v.b)
        abort();
      if (u->type == TSDB_STRING && !str_eq(u->v.s, v->v.s))
        abort();
    }
  }
}

static void check_rows(const lp_batch *b, const uint8_t *data, size_t size) {
  for (size_t i = 0; i < b->nrows; i++) {
    const tsdb_row *r = &b->rows[i];
    check_str(r->measurement, data, size, b, TSDB_NAME_BYTES_MAX, 1);
    if (r->ntags > TSDB_TAGS_MAX || r->nfields == 0 || r->nfields > TSDB_FIELDS_PER_GROUP_MAX)
      abort();
    if (r->ts_ns < INT64_MIN + 2 || r->ts_ns > INT64_MAX - 1)
      abort();
    if (i && b->lines[i] <= b->lines[i - 1])
      abort();
    for (size_t t = 0; t < r->ntags; t++) {
      check_str(r->tags[t].key, data, size, b, TSDB_NAME_BYTES_MAX, 1);
      check_str(r->tags[t].value, data, size, b, TSDB_NAME_BYTES_MAX, 1);
      for (size_t k = 0; k < t; k++)
        if (str_eq(r->tags[t].key, r->tags[k].key))
          abort();
    }
    for (size_t f = 0; f < r->nfields; f++) {
      const tsdb_field *fd = &r->fields[f];
      check_str(fd->name, data, size, b, TSDB_NAME_BYTES_MAX, 1);
      for (size_t k = 0; k < f; k++)
        if (str_eq(fd->name, r->fields[k].name))
          abort();
      if (fd->value.type == TSDB_FLOAT && !isfinite(fd->value.v.f))
        abort();
      if (fd->value.type == TSDB_STRING)
        check_str(fd->value.v.s, data, size, b, TSDB_STRING_BYTES_MAX, 0);
      if (fd->value.type < TSDB_FLOAT || fd->value.type > TSDB_STRING)
        abort();
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* A copy of exactly `size` bytes, so reading one past the end is caught. */
  char *text = malloc(size ? size : 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  lp_batch b, again, tight;
  lp_batch_init(&b);
  lp_batch_init(&again);
  lp_batch_init(&tight);
  lp_error err;
  lp_precision prec = (lp_precision)(size ? data[0] % 6 : 0);
  int rc = lp_parse(text, size, prec, 1700000000123456789LL, NULL, &b, &err);
  if (rc >= 0) {
    if ((size_t)rc != b.nrows)
      abort();
    check_rows(&b, (const uint8_t *)text, size);
    pl_buf out;
    pl_buf_init(&out, 0);
    write_rows(&b, &out);
    int rc2 = lp_parse((const char *)out.data, out.len, LP_PRECISION_NS, 0, NULL, &again, &err);
    if (rc2 != rc) {
      fprintf(stderr, "re-parse: %d rows vs %d: %s (line %u)\n%.*s\n", rc2, rc, err.reason,
              (unsigned)err.line, (int)out.len, (const char *)out.data);
      abort();
    }
    same_rows(&b, &again);
    pl_buf_free(&out);
  } else {
    if (err.code != rc || err.line < 1 || err.line_off + err.line_len > size || !err.reason[0])
      abort();
    if (b.nrows != 0)
      abort();
    pl_buf msg;
    pl_buf_init(&msg, 0);
    if (lp_error_format(&err, text, 300, &msg) < 0)
      abort();
    pl_buf_free(&msg);
  }
  lp_limits lim = {200, 5, 20};
  int rc3 = lp_parse(text, size, prec, 1700000000123456789LL, &lim, &tight, &err);
  if (rc3 >= 0) {
    if (rc3 != rc)
      abort();
    same_rows(&b, &tight);
  }
  lp_batch_free(&b);
  lp_batch_free(&again);
  lp_batch_free(&tight);
  free(text);
  return 0;
}
