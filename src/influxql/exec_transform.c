/* Transformations: derivative, non_negative_derivative, difference, non_negative_difference,
 * moving_average and cumulative_sum, over the filled buckets of an aggregate (exec_agg.c runs
 * them per tag set) or over the raw points of a field (run here, per tag set, for statements
 * without GROUP BY time), and how many buckets before the range they need to see. */
#include "influxql/influxql_int.h"

#include <stdlib.h>
#include <string.h>

static double num_of(const influxql_value *v) {
  return v->kind == INFLUXQL_V_INT ? (double)v->v.i : v->v.f;
}

/* Runs a transformation over a column of values at times ts[], writing out[] (null where it
 * has no point). */
void influxql__run_transform(const influxql_col *c, const influxql_value *in, const int64_t *ts,
                             size_t n, int64_t default_unit, influxql_value *out) {
  int64_t unit = c->has_unit ? c->unit_ns : default_unit;
  size_t prev = SIZE_MAX;
  double cum = 0;
  int64_t icum = 0;
  int have_cum = 0;
  double *win = NULL;
  size_t wn = 0, wpos = 0;
  if (c->transform == INFLUXQL_TR_MOVING_AVERAGE)
    win = calloc((size_t)c->window, sizeof *win);
  for (size_t k = 0; k < n; k++) {
    out[k].kind = INFLUXQL_V_NULL;
    if (in[k].kind != INFLUXQL_V_FLOAT && in[k].kind != INFLUXQL_V_INT)
      continue;
    switch (c->transform) {
    case INFLUXQL_TR_DERIVATIVE:
    case INFLUXQL_TR_NN_DERIVATIVE:
      if (prev != SIZE_MAX && ts[k] != ts[prev]) {
        double d =
            (num_of(&in[k]) - num_of(&in[prev])) / ((double)(ts[k] - ts[prev]) / (double)unit);
        if (c->transform == INFLUXQL_TR_DERIVATIVE || d >= 0)
          out[k].kind = INFLUXQL_V_FLOAT, out[k].v.f = d;
      }
      break;
    case INFLUXQL_TR_DIFFERENCE:
    case INFLUXQL_TR_NN_DIFFERENCE:
      if (prev != SIZE_MAX) {
        if (in[k].kind == INFLUXQL_V_INT && in[prev].kind == INFLUXQL_V_INT) {
          int64_t d = (int64_t)((uint64_t)in[k].v.i - (uint64_t)in[prev].v.i);
          if (c->transform == INFLUXQL_TR_DIFFERENCE || d >= 0)
            out[k].kind = INFLUXQL_V_INT, out[k].v.i = d;
        } else {
          double d = num_of(&in[k]) - num_of(&in[prev]);
          if (c->transform == INFLUXQL_TR_DIFFERENCE || d >= 0)
            out[k].kind = INFLUXQL_V_FLOAT, out[k].v.f = d;
        }
      }
      break;
    case INFLUXQL_TR_CUMSUM:
      if (in[k].kind == INFLUXQL_V_INT && (!have_cum || icum == influxql__double_to_int64(cum))) {
        icum = (int64_t)((uint64_t)icum + (uint64_t)in[k].v.i);
        cum = (double)icum;
        out[k].kind = INFLUXQL_V_INT, out[k].v.i = icum;
      } else {
        cum += num_of(&in[k]);
        out[k].kind = INFLUXQL_V_FLOAT, out[k].v.f = cum;
      }
      have_cum = 1;
      break;
    case INFLUXQL_TR_MOVING_AVERAGE:
      if (!win)
        break;
      if (wn < (size_t)c->window)
        wn++;
      win[wpos] = num_of(&in[k]);
      wpos = (wpos + 1) % (size_t)c->window;
      if (wn == (size_t)c->window) {
        /* sum afresh each time to avoid drift: windows are small */
        double s = 0;
        for (size_t i = 0; i < wn; i++)
          s += win[i];
        out[k].kind = INFLUXQL_V_FLOAT, out[k].v.f = s / (double)wn;
      }
      break;
    default: break;
    }
    prev = k;
  }
  free(win);
}

int64_t influxql__transform_extension(const influxql_col *c) {
  if (!c)
    return 0;
  if (c->kind == INFLUXQL_COL_TRANSFORM) {
    switch (c->transform) {
    case INFLUXQL_TR_DERIVATIVE:
    case INFLUXQL_TR_NN_DERIVATIVE:
    case INFLUXQL_TR_DIFFERENCE:
    case INFLUXQL_TR_NN_DIFFERENCE: return 1;
    case INFLUXQL_TR_MOVING_AVERAGE: return c->window - 1;
    default: return 0;
    }
  }
  if (c->kind == INFLUXQL_COL_BIN) {
    int64_t a = influxql__transform_extension(c->l), b = influxql__transform_extension(c->r);
    return a > b ? a : b;
  }
  return 0;
}

int influxql__collect_transforms(influxql_col *c, influxql_colvals **tv, size_t *n, size_t *cap) {
  int rc = 0;
  if (!c)
    return 0;
  if (c->kind == INFLUXQL_COL_TRANSFORM) {
    influxql_colvals v = {c, NULL};
    INFLUXQL_VEC_PUSH(*tv, *n, *cap, v, rc);
    return rc;
  }
  if (c->kind == INFLUXQL_COL_BIN) {
    if ((rc = influxql__collect_transforms(c->l, tv, n, cap)))
      return rc;
    return influxql__collect_transforms(c->r, tv, n, cap);
  }
  return 0;
}

/* Transformations over raw points (no GROUP BY time): each column's series is its field's
 * points across the tag set, in time order; rows join the columns by time. */
int influxql__run_raw_transform_tagset(influxql_select_ctx *sc, const influxql_meas *m,
                                       influxql_tagset *ts, const char **keys, size_t nkeys,
                                       const char *const *colnames) {
  influxql_exec_ctx *x = sc->x;
  influxql_plan *p = sc->p;
  const influxql_select *s = sc->s;
  int rc = 0;
  size_t nc = p->ncols;
  int64_t **cts = calloc(nc, sizeof *cts);
  influxql_value **cv = calloc(nc, sizeof *cv);
  size_t *cn = calloc(nc, sizeof *cn);
  if (!cts || !cv || !cn)
    rc = PL_ENOMEM;
  for (size_t c = 0; c < nc && rc == 0; c++) {
    const influxql_col *cc = p->cols[c];
    if (cc->kind != INFLUXQL_COL_TRANSFORM || !cc->l || cc->l->kind != INFLUXQL_COL_FIELD) {
      rc = influxql__stmt_err(x, "mixing aggregate and non-aggregate queries is not supported");
      break;
    }
    const char *field = cc->l->name;
    influxql_rowbuf rb = {0};
    rb.stride = 1;
    for (size_t gi = 0; gi < ts->n && rc == 0; gi++) {
      const influxql_group *g = ts->g[gi];
      const char *names[65];
      size_t nn = 0;
      names[nn++] = field;
      const char **cnames = NULL;
      size_t ncn = 0, capcn = 0;
      if (ts->match[gi] < 0 &&
          (rc = influxql__cond_fields(x, sc->cond, m, &cnames, &ncn, &capcn)) < 0)
        break;
      for (size_t i = 0; i < ncn && nn < 65; i++)
        if (strcmp(cnames[i], field) != 0)
          names[nn++] = cnames[i];
      free(cnames);
      influxql_group_rows gr;
      influxql_value fv[65];
      if ((rc = influxql__group_rows_init(&gr, nn, names)) < 0)
        break;
      rc = influxql__group_rows_read(x, sc->ns, g, &gr, sc->range.min, sc->range.max);
      int64_t t;
      while (rc == 0 && influxql__group_rows_next(&gr, &t, fv)) {
        if (fv[0].kind != INFLUXQL_V_FLOAT && fv[0].kind != INFLUXQL_V_INT)
          continue;
        if (ts->match[gi] < 0) {
          influxql_cond_ctx ec = {x, g, m, names, fv, nn, t};
          if (influxql__cond_truth(&ec, sc->cond) != 1)
            continue;
        }
        rc = influxql__rowbuf_add(&rb, t, gi, fv);
      }
      influxql__group_rows_free(&gr);
    }
    if (rc == 0)
      rc = influxql__rowbuf_sort(&rb);
    if (rc == 0) {
      cv[c] = calloc(rb.n ? rb.n : 1, sizeof *cv[c]);
      cts[c] = malloc((rb.n ? rb.n : 1) * sizeof *cts[c]);
      if (!cv[c] || !cts[c])
        rc = PL_ENOMEM;
      else {
        memcpy(cts[c], rb.ts, rb.n * sizeof *rb.ts);
        influxql__run_transform(cc, rb.v, rb.ts, rb.n, 1000000000, cv[c]);
        cn[c] = rb.n;
      }
    }
    influxql__rowbuf_free(&rb);
  }
  /* join the columns by time */
  size_t ncols = nc + 1;
  influxql_rowbuf out = {0};
  out.stride = ncols;
  size_t *at = calloc(nc ? nc : 1, sizeof *at);
  influxql_value *row = calloc(ncols, sizeof *row);
  if (rc == 0 && (!at || !row))
    rc = PL_ENOMEM;
  while (rc == 0) {
    int64_t t = INT64_MAX;
    int any = 0;
    for (size_t c = 0; c < nc; c++) {
      while (at[c] < cn[c] && cv[c][at[c]].kind == INFLUXQL_V_NULL)
        at[c]++;
      if (at[c] < cn[c] && (!any || cts[c][at[c]] < t))
        t = cts[c][at[c]], any = 1;
    }
    if (!any)
      break;
    row[0].kind = INFLUXQL_V_TIME;
    row[0].v.i = t;
    for (size_t c = 0; c < nc; c++) {
      row[c + 1].kind = INFLUXQL_V_NULL;
      if (at[c] < cn[c] && cts[c][at[c]] == t)
        row[c + 1] = cv[c][at[c]++];
    }
    rc = influxql__rowbuf_add(&out, t, 0, row);
  }
  if (rc == 0 && s->order_desc)
    influxql__reverse_rows(out.v, out.n, ncols);
  if (rc == 0)
    rc = influxql__emit_series(x, m->name, keys, ts->values, nkeys, colnames, ncols, out.v, out.n,
                               s);
  influxql__rowbuf_free(&out);
  free(at);
  free(row);
  for (size_t c = 0; c < nc; c++) {
    if (cts)
      free(cts[c]);
    if (cv)
      free(cv[c]);
  }
  free(cts);
  free(cv);
  free(cn);
  return rc;
}
