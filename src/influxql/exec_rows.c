/* Fill and row assembly: filling the empty buckets of an aggregate's column, evaluating the
 * columns of an aggregate series bucket by bucket and deciding which buckets become rows, the
 * row buffers raw queries and transformations collect into, and emitting a finished series into
 * the result under the statement's OFFSET, LIMIT and row and series limits. */
#include "influxql/influxql_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- the output series being built ---- */

int influxql__emit_series(influxql_exec_ctx *x, const char *name, const char **keys,
                          const char **values, size_t nkeys, const char *const *columns,
                          size_t ncolumns, influxql_value *rows, size_t nrows,
                          const influxql_select *s) {
  if (!nrows)
    return 0;
  x->rows += nrows;
  if (x->rows > INFLUXQL_ROWS_MAX)
    return influxql__stmt_err(
        x,
        "the statement returns more than %zu rows (the limit); narrow its time range, "
        "add conditions "
        "or LIMIT",
        INFLUXQL_ROWS_MAX);
  if (x->res->nseries >= x->series_max)
    return influxql__stmt_err(
        x, "the statement returns more than %zu series (the limit); add conditions or SLIMIT",
        x->series_max);
  /* ORDER BY time DESC, then OFFSET and LIMIT on rows */
  size_t from = 0, to = nrows;
  size_t off = s ? (size_t)s->offset : 0, lim = s ? (size_t)s->limit : 0;
  if (off >= nrows)
    return 0;
  from = off;
  if (lim && from + lim < to)
    to = from + lim;
  influxql_series *ser = influxql_result_series(x->res, name, columns, ncolumns);
  if (!ser)
    return PL_ENOMEM;
  for (size_t k = 0; k < nkeys; k++) {
    int rc = influxql_series_tag(ser, keys[k], strlen(keys[k]), values[k], strlen(values[k]));
    if (rc < 0)
      return rc;
  }
  for (size_t r = from; r < to; r++) {
    int rc = influxql_series_row(ser, rows + r * ncolumns);
    if (rc < 0)
      return rc;
  }
  return 0;
}

void influxql__reverse_rows(influxql_value *rows, size_t nrows, size_t ncols) {
  influxql_value tmp[256];
  if (ncols > 256)
    return;
  for (size_t i = 0, j = nrows ? nrows - 1 : 0; i < j; i++, j--) {
    memcpy(tmp, rows + i * ncols, ncols * sizeof *tmp);
    memcpy(rows + i * ncols, rows + j * ncols, ncols * sizeof *tmp);
    memcpy(rows + j * ncols, tmp, ncols * sizeof *tmp);
  }
}

/* ---- row buffers ---- */

int influxql__rowbuf_add(influxql_rowbuf *b, int64_t ts, size_t order, const influxql_value *vals) {
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    influxql_value *v = realloc(b->v, cap * b->stride * sizeof *v);
    if (!v)
      return PL_ENOMEM;
    b->v = v;
    int64_t *t = realloc(b->ts, cap * sizeof *t);
    if (!t)
      return PL_ENOMEM;
    b->ts = t;
    size_t *o = realloc(b->order, cap * sizeof *o);
    if (!o)
      return PL_ENOMEM;
    b->order = o;
    b->cap = cap;
  }
  memcpy(b->v + b->n * b->stride, vals, b->stride * sizeof *vals);
  b->ts[b->n] = ts;
  b->order[b->n] = order;
  b->n++;
  return 0;
}

void influxql__rowbuf_free(influxql_rowbuf *b) {
  free(b->v);
  free(b->ts);
  free(b->order);
  memset(b, 0, sizeof *b);
}

/* Sorts rows by (time, order) with a merge sort on an index (stable and O(n log n)). */
int influxql__rowbuf_sort(influxql_rowbuf *b) {
  size_t n = b->n;
  if (n < 2)
    return 0;
  size_t *idx = malloc(n * sizeof *idx), *tmp = malloc(n * sizeof *tmp);
  if (!idx || !tmp) {
    free(idx);
    free(tmp);
    return PL_ENOMEM;
  }
  for (size_t i = 0; i < n; i++)
    idx[i] = i;
  for (size_t w = 1; w < n; w *= 2) {
    for (size_t lo = 0; lo < n; lo += 2 * w) {
      size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
      size_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) {
        size_t a = idx[i], c = idx[j];
        int le = b->ts[a] < b->ts[c] || (b->ts[a] == b->ts[c] && b->order[a] <= b->order[c]);
        tmp[k++] = le ? idx[i++] : idx[j++];
      }
      while (i < mid)
        tmp[k++] = idx[i++];
      while (j < hi)
        tmp[k++] = idx[j++];
    }
    memcpy(idx, tmp, n * sizeof *idx);
  }
  influxql_value *v = malloc(n * b->stride * sizeof *v);
  int64_t *ts = malloc(n * sizeof *ts);
  if (!v || !ts) {
    free(v);
    free(ts);
    free(idx);
    free(tmp);
    return PL_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    memcpy(v + i * b->stride, b->v + idx[i] * b->stride, b->stride * sizeof *v);
    ts[i] = b->ts[idx[i]];
  }
  free(b->v);
  free(b->ts);
  b->v = v;
  b->ts = ts;
  b->cap = n;
  size_t *o = realloc(b->order, n * sizeof *o);
  if (o)
    b->order = o;
  free(idx);
  free(tmp);
  return 0;
}

/* ---- fill, and the rows of an aggregate series ---- */

/* Fill empty buckets of one aggregate's column. */
void influxql__fill_column(const influxql_select *s, const influxql_aggref *r, influxql_value *vals,
                           const uint8_t *present, size_t n, tsdb_type type) {
  (void)type;
  switch (s->fill) {
  case INFLUXQL_FILL_NULL:
  case INFLUXQL_FILL_NONE: return;
  case INFLUXQL_FILL_NUMBER:
    for (size_t k = 0; k < n; k++)
      if (!present[k]) {
        int as_int = r->func == INFLUXQL_FN_COUNT || vals[k].kind == INFLUXQL_V_INT ||
                     (type == TSDB_INT &&
                      (r->func == INFLUXQL_FN_SUM || r->func == INFLUXQL_FN_MIN ||
                       r->func == INFLUXQL_FN_MAX || r->func == INFLUXQL_FN_FIRST ||
                       r->func == INFLUXQL_FN_LAST || r->func == INFLUXQL_FN_SPREAD ||
                       r->func == INFLUXQL_FN_PERCENTILE || r->func == INFLUXQL_FN_MODE));
        if (as_int)
          vals[k].kind = INFLUXQL_V_INT,
          vals[k].v.i = s->fill_is_int ? s->fill_int : influxql__double_to_int64(s->fill_number);
        else
          vals[k].kind = INFLUXQL_V_FLOAT, vals[k].v.f = s->fill_number;
      }
    return;
  case INFLUXQL_FILL_PREVIOUS: {
    influxql_value prev = {0};
    int have = 0;
    for (size_t k = 0; k < n; k++) {
      if (present[k] && vals[k].kind != INFLUXQL_V_NULL)
        prev = vals[k], have = 1;
      else if (!present[k] && have)
        vals[k] = prev;
    }
    return;
  }
  case INFLUXQL_FILL_LINEAR: {
    size_t prev = SIZE_MAX;
    for (size_t k = 0; k < n; k++) {
      if (!present[k] || vals[k].kind == INFLUXQL_V_NULL)
        continue;
      if (prev != SIZE_MAX && k - prev > 1) {
        const influxql_value *a = &vals[prev], *b = &vals[k];
        for (size_t m = prev + 1; m < k; m++) {
          if (a->kind == INFLUXQL_V_INT && b->kind == INFLUXQL_V_INT) {
            int64_t d = (b->v.i - a->v.i) / (int64_t)(k - prev);
            vals[m].kind = INFLUXQL_V_INT, vals[m].v.i = a->v.i + d * (int64_t)(m - prev);
          } else if (a->kind != INFLUXQL_V_NULL && b->kind != INFLUXQL_V_NULL) {
            double x0 = a->kind == INFLUXQL_V_INT ? (double)a->v.i : a->v.f;
            double x1 = b->kind == INFLUXQL_V_INT ? (double)b->v.i : b->v.f;
            vals[m].kind = INFLUXQL_V_FLOAT;
            vals[m].v.f = x0 + (x1 - x0) * (double)(m - prev) / (double)(k - prev);
          }
        }
      }
      prev = k;
    }
    return;
  }
  }
}

influxql_value influxql__agg_eval(const influxql_col *c, const influxql_plan *p, size_t k,
                                  const influxql_colvals *tv, size_t ntv) {
  influxql_value v = {0};
  switch (c->kind) {
  case INFLUXQL_COL_LIT: return c->lit;
  case INFLUXQL_COL_AGG: return p->aggs[c->agg].val[k];
  case INFLUXQL_COL_TRANSFORM:
    for (size_t i = 0; i < ntv; i++)
      if (tv[i].c == c)
        return tv[i].v[k];
    return v;
  case INFLUXQL_COL_BIN:
    return influxql__binop(c->op, influxql__agg_eval(c->l, p, k, tv, ntv),
                           influxql__agg_eval(c->r, p, k, tv, ntv));
  case INFLUXQL_COL_FIELD:
  case INFLUXQL_COL_TAG: return p->auxv ? p->auxv[k * p->naux + c->agg] : v;
  default: return v;
  }
}

/* Whether column c "has a point" at bucket k (InfluxDB emits a row where any column does). */
int influxql__col_point(const influxql_col *c, const influxql_plan *p, size_t k,
                        const uint8_t *const *present, const influxql_colvals *tv, size_t ntv,
                        int fill_none) {
  switch (c->kind) {
  case INFLUXQL_COL_AGG: return fill_none ? present[c->agg][k] : 1;
  case INFLUXQL_COL_TRANSFORM:
    for (size_t i = 0; i < ntv; i++)
      if (tv[i].c == c)
        return tv[i].v[k].kind != INFLUXQL_V_NULL;
    return 0;
  case INFLUXQL_COL_BIN:
    return influxql__col_point(c->l, p, k, present, tv, ntv, fill_none) ||
           influxql__col_point(c->r, p, k, present, tv, ntv, fill_none);
  default: return 0;
  }
}
