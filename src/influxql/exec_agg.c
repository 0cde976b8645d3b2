/* Aggregates for the executor: the time buckets of a statement (in its time zone), and per tag
 * set the accumulators of every aggregate in every bucket, fed either from the engine's bucket
 * statistics (tsdb_aggregate, which answers whole chunks without reading their points) or from
 * the points themselves when a condition, a selector's auxiliary fields or the function need
 * them. The results are filled, transformed (exec_transform.c) and assembled into rows
 * (exec_rows.c). exec_select.c calls influxql__run_agg_tagsets for each measurement. */
#include "influxql/influxql_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS_MAX 1000000
#define BUCKET_CELLS_MAX ((size_t)4000000) /* buckets x aggregates held at once for one series */

/* ---- accumulators ---- */

typedef struct acc {
  uint64_t count;
  int has;
  tsdb_type type;
  double sum;
  int64_t isum;
  double min, max, first, last;
  int64_t imin, imax, ifirst, ilast;
  int64_t min_ts, max_ts, first_ts, last_ts;
  const char *sfirst, *slast; /* strings (copied) */
  size_t sfirst_len, slast_len;
  int bfirst, blast;
  double *vals; /* median, percentile, mode, stddev */
  int64_t *vts;
  size_t nvals, cap;
} acc;

static int acc_keep_vals(int func) {
  return func == INFLUXQL_FN_MEDIAN || func == INFLUXQL_FN_PERCENTILE || func == INFLUXQL_FN_MODE ||
         func == INFLUXQL_FN_STDDEV;
}

static void acc_free(acc *a) {
  free(a->vals);
  free(a->vts);
}

/* Adds one point. Ties follow InfluxDB's reducers: first/last prefer the larger value at equal
 * times, min/max the earlier point at equal values. */
/* At equal times first() and last() keep the greater value (true over false, later strings). */
static int greater(const influxql_value *v, double f, double cur, const char *scur,
                   size_t scur_len) {
  if (v->kind != INFLUXQL_V_STRING)
    return f > cur;
  size_t n = v->v.s.len < scur_len ? v->v.s.len : scur_len;
  int c = n ? memcmp(v->v.s.p, scur, n) : 0;
  return c > 0 || (c == 0 && v->v.s.len > scur_len);
}

static int acc_add(influxql_exec_ctx *x, acc *a, int func, int64_t ts, const influxql_value *v,
                   int *selected) {
  double f = v->kind == INFLUXQL_V_INT     ? (double)v->v.i
             : v->kind == INFLUXQL_V_BOOL  ? (double)v->v.b
             : v->kind == INFLUXQL_V_FLOAT ? v->v.f
                                           : 0;
  int64_t i = v->kind == INFLUXQL_V_INT ? v->v.i : influxql__double_to_int64(f);
  if (!a->has) {
    *selected = 1;
    a->has = 1;
    a->min = a->max = a->first = a->last = f;
    a->imin = a->imax = a->ifirst = a->ilast = i;
    a->min_ts = a->max_ts = a->first_ts = a->last_ts = ts;
    a->bfirst = a->blast = v->kind == INFLUXQL_V_BOOL ? v->v.b : 0;
    if (v->kind == INFLUXQL_V_STRING) {
      a->sfirst = a->slast = influxql__strndup(x->arena, v->v.s.p ? v->v.s.p : "", v->v.s.len);
      a->sfirst_len = a->slast_len = v->v.s.len;
      if (!a->sfirst)
        return PL_ENOMEM;
    }
  } else {
    if (f < a->min || (f == a->min && ts < a->min_ts)) {
      a->min = f, a->imin = i, a->min_ts = ts;
      *selected |= func == INFLUXQL_FN_MIN;
    }
    if (f > a->max || (f == a->max && ts < a->max_ts)) {
      a->max = f, a->imax = i, a->max_ts = ts;
      *selected |= func == INFLUXQL_FN_MAX;
    }
    if (ts < a->first_ts ||
        (ts == a->first_ts && greater(v, f, a->first, a->sfirst, a->sfirst_len))) {
      a->first = f, a->ifirst = i, a->first_ts = ts;
      *selected |= func == INFLUXQL_FN_FIRST;
      if (v->kind == INFLUXQL_V_BOOL)
        a->bfirst = v->v.b;
      if (v->kind == INFLUXQL_V_STRING) {
        if (!(a->sfirst = influxql__strndup(x->arena, v->v.s.p ? v->v.s.p : "", v->v.s.len)))
          return PL_ENOMEM;
        a->sfirst_len = v->v.s.len;
      }
    }
    if (ts > a->last_ts || (ts == a->last_ts && greater(v, f, a->last, a->slast, a->slast_len))) {
      a->last = f, a->ilast = i, a->last_ts = ts;
      *selected |= func == INFLUXQL_FN_LAST;
      if (v->kind == INFLUXQL_V_BOOL)
        a->blast = v->v.b;
      if (v->kind == INFLUXQL_V_STRING) {
        if (!(a->slast = influxql__strndup(x->arena, v->v.s.p ? v->v.s.p : "", v->v.s.len)))
          return PL_ENOMEM;
        a->slast_len = v->v.s.len;
      }
    }
  }
  a->count++;
  a->sum += f;
  a->isum = (int64_t)((uint64_t)a->isum + (uint64_t)i);
  if (acc_keep_vals(func)) {
    if (a->nvals == a->cap) {
      size_t cap = a->cap ? a->cap * 2 : 64;
      double *p = realloc(a->vals, cap * sizeof *p);
      if (!p)
        return PL_ENOMEM;
      a->vals = p;
      int64_t *q = realloc(a->vts, cap * sizeof *q);
      if (!q)
        return PL_ENOMEM;
      a->vts = q;
      a->cap = cap;
    }
    a->vals[a->nvals] = f;
    a->vts[a->nvals++] = ts;
  }
  return 0;
}

/* Records the auxiliary values of the point a selector just chose: tags of its group, fields of
 * its row (strings copied: the row's buffers are reused). */
static int aux_capture(influxql_exec_ctx *x, const influxql_plan *p, const influxql_meas *m,
                       const influxql_group *g, const char **names, const influxql_value *fv,
                       size_t nn, influxql_value *out) {
  for (size_t c = 0; c < p->naux; c++) {
    const influxql_col *ac = p->aux[c];
    influxql_value v = {0};
    if (ac->kind == INFLUXQL_COL_FIELD && influxql__meas_field(m, ac->name) >= 0) {
      for (size_t q = 0; q < nn; q++)
        if (strcmp(names[q], ac->name) == 0)
          v = fv[q];
    } else {
      const char *t = influxql__tag_value(g, ac->name);
      if (t)
        v.kind = INFLUXQL_V_STRING, v.v.s.p = t, v.v.s.len = strlen(t);
    }
    if (v.kind == INFLUXQL_V_STRING &&
        !(v.v.s.p = influxql__strndup(x->arena, v.v.s.p ? v.v.s.p : "", v.v.s.len)))
      return PL_ENOMEM;
    out[c] = v;
  }
  return 0;
}

/* Merges an engine bucket (statistics of one group) into an accumulator. */
static void acc_add_bucket(acc *a, const tsdb_bucket *b, tsdb_type type) {
  if (!b->present || !b->count)
    return;
  int is_int = type == TSDB_INT || type == TSDB_BOOL;
  if (!a->has) {
    a->has = 1;
    a->min = b->min, a->max = b->max, a->first = b->first, a->last = b->last;
    a->imin = influxql__double_to_int64(b->min), a->imax = influxql__double_to_int64(b->max),
    a->ifirst = influxql__double_to_int64(b->first), a->ilast = influxql__double_to_int64(b->last);
    a->first_ts = b->first_ts, a->last_ts = b->last_ts;
    a->bfirst = b->first != 0, a->blast = b->last != 0;
    a->min_ts = a->max_ts = b->start_ns;
  } else {
    if (b->min < a->min)
      a->min = b->min, a->imin = influxql__double_to_int64(b->min);
    if (b->max > a->max)
      a->max = b->max, a->imax = influxql__double_to_int64(b->max);
    if (b->first_ts < a->first_ts || (b->first_ts == a->first_ts && b->first > a->first))
      a->first = b->first, a->ifirst = influxql__double_to_int64(b->first),
      a->first_ts = b->first_ts, a->bfirst = b->first != 0;
    if (b->last_ts > a->last_ts || (b->last_ts == a->last_ts && b->last > a->last))
      a->last = b->last, a->ilast = influxql__double_to_int64(b->last), a->last_ts = b->last_ts,
      a->blast = b->last != 0;
  }
  a->count += b->count;
  a->sum += b->sum;
  if (is_int)
    a->isum = (int64_t)((uint64_t)a->isum + (uint64_t)influxql__double_to_int64(round(b->sum)));
}

typedef struct vt {
  double v;
  int64_t t;
} vt;

static int cmp_vt(const void *x, const void *y) {
  const vt *a = x, *b = y;
  if (a->v != b->v)
    return a->v < b->v ? -1 : 1;
  return a->t < b->t ? -1 : a->t > b->t;
}

/* The value of an aggregate over an accumulator; for selectors also the selected point's time.
 * *emit is cleared when the function produces no point at all (a percentile outside the
 * points), which InfluxDB distinguishes from a null value. */
static influxql_value acc_result(acc *a, const influxql_aggref *r, int64_t *sel_ts, int *emit) {
  influxql_value v = {0};
  if (!a->has) {
    if (r->func == INFLUXQL_FN_COUNT)
      v.kind = INFLUXQL_V_INT, v.v.i = 0;
    return v;
  }
  int is_int = a->type == TSDB_INT;
  switch (r->func) {
  case INFLUXQL_FN_COUNT: v.kind = INFLUXQL_V_INT, v.v.i = (int64_t)a->count; break;
  case INFLUXQL_FN_SUM:
    if (is_int)
      v.kind = INFLUXQL_V_INT, v.v.i = a->isum;
    else
      v.kind = INFLUXQL_V_FLOAT, v.v.f = a->sum;
    break;
  case INFLUXQL_FN_MEAN: v.kind = INFLUXQL_V_FLOAT, v.v.f = a->sum / (double)a->count; break;
  case INFLUXQL_FN_SPREAD:
    if (is_int)
      v.kind = INFLUXQL_V_INT, v.v.i = (int64_t)((uint64_t)a->imax - (uint64_t)a->imin);
    else
      v.kind = INFLUXQL_V_FLOAT, v.v.f = a->max - a->min;
    break;
  case INFLUXQL_FN_MIN:
    if (is_int)
      v.kind = INFLUXQL_V_INT, v.v.i = a->imin;
    else
      v.kind = INFLUXQL_V_FLOAT, v.v.f = a->min;
    *sel_ts = a->min_ts;
    break;
  case INFLUXQL_FN_MAX:
    if (is_int)
      v.kind = INFLUXQL_V_INT, v.v.i = a->imax;
    else
      v.kind = INFLUXQL_V_FLOAT, v.v.f = a->max;
    *sel_ts = a->max_ts;
    break;
  case INFLUXQL_FN_FIRST:
  case INFLUXQL_FN_LAST: {
    int first = r->func == INFLUXQL_FN_FIRST;
    *sel_ts = first ? a->first_ts : a->last_ts;
    if (a->type == TSDB_STRING) {
      v.kind = INFLUXQL_V_STRING;
      v.v.s.p = first ? a->sfirst : a->slast;
      v.v.s.len = first ? a->sfirst_len : a->slast_len;
      if (!v.v.s.p)
        v.kind = INFLUXQL_V_NULL;
    } else if (a->type == TSDB_BOOL) {
      v.kind = INFLUXQL_V_BOOL, v.v.b = first ? a->bfirst : a->blast;
    } else if (is_int) {
      v.kind = INFLUXQL_V_INT, v.v.i = first ? a->ifirst : a->ilast;
    } else {
      v.kind = INFLUXQL_V_FLOAT, v.v.f = first ? a->first : a->last;
    }
    break;
  }
  case INFLUXQL_FN_STDDEV: {
    if (a->nvals < 2)
      break;
    double mean = 0;
    for (size_t i = 0; i < a->nvals; i++)
      mean += a->vals[i];
    mean /= (double)a->nvals;
    double ss = 0;
    for (size_t i = 0; i < a->nvals; i++)
      ss += (a->vals[i] - mean) * (a->vals[i] - mean);
    v.kind = INFLUXQL_V_FLOAT, v.v.f = sqrt(ss / (double)(a->nvals - 1));
    break;
  }
  case INFLUXQL_FN_MEDIAN:
  case INFLUXQL_FN_PERCENTILE:
  case INFLUXQL_FN_MODE: {
    size_t n = a->nvals;
    if (!n)
      break;
    /* the points ordered by (value, time) */
    vt *sv = malloc(n * sizeof *sv);
    if (!sv)
      break;
    for (size_t i = 0; i < n; i++)
      sv[i].v = a->vals[i], sv[i].t = a->vts[i];
    influxql__sort(sv, n, sizeof *sv, cmp_vt);
    if (r->func == INFLUXQL_FN_MEDIAN) {
      double m = n % 2 ? sv[n / 2].v : sv[n / 2 - 1].v + (sv[n / 2].v - sv[n / 2 - 1].v) / 2;
      v.kind = INFLUXQL_V_FLOAT, v.v.f = m;
    } else if (r->func == INFLUXQL_FN_PERCENTILE) {
      /* nearest rank; outside the points there is no answer (no point, as in InfluxDB) */
      double rank = floor((double)n * r->pct / 100.0 + 0.5) - 1;
      if (rank >= 0 && rank < (double)n) {
        const vt *pv = &sv[(size_t)rank];
        if (is_int)
          v.kind = INFLUXQL_V_INT, v.v.i = influxql__double_to_int64(pv->v);
        else
          v.kind = INFLUXQL_V_FLOAT, v.v.f = pv->v;
        *sel_ts = pv->t;
      } else {
        *emit = 0;
      }
    } else {
      /* mode: the most frequent value; among equally frequent ones, the one seen first */
      size_t best_n = 0;
      double best = sv[0].v;
      int64_t best_t = sv[0].t;
      for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && sv[j].v == sv[i].v)
          j++;
        if (j - i > best_n || (j - i == best_n && sv[i].t < best_t))
          best_n = j - i, best = sv[i].v, best_t = sv[i].t;
        i = j;
      }
      if (is_int)
        v.kind = INFLUXQL_V_INT, v.v.i = influxql__double_to_int64(best);
      else
        v.kind = INFLUXQL_V_FLOAT, v.v.f = best;
    }
    free(sv);
    break;
  }
  default: break;
  }
  return v;
}

/* ---- time buckets ---- */

/* Bucket geometry: starts at offset + k * every, in the statement's time zone. */
typedef struct buckets {
  size_t skip; /* leading buckets read only for the transformations (not shown) */
  int64_t every, offset;
  int64_t first, last; /* bucket starts */
  size_t n;
  const influxql_tz *tz;
} buckets;

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0)))
    q--;
  return q;
}

static int64_t bucket_start(const buckets *b, int64_t t) {
  if (!b->every)
    return b->first;
  int64_t off = b->tz ? (int64_t)influxql__tz_offset(b->tz, t) * 1000000000 : 0;
  __int128 local = (__int128)t + off - b->offset;
  int64_t l = local < INT64_MIN ? INT64_MIN : local > INT64_MAX ? INT64_MAX : (int64_t)local;
  int64_t start = (int64_t)((__int128)floor_div(l, b->every) * b->every + b->offset - off);
  if (b->tz) {
    /* across a change of offset, align on the offset in force at the bucket's start */
    int64_t off2 = (int64_t)influxql__tz_offset(b->tz, start) * 1000000000;
    if (off2 != off) {
      __int128 l2 = (__int128)t + off2 - b->offset;
      int64_t ll = l2 < INT64_MIN ? INT64_MIN : l2 > INT64_MAX ? INT64_MAX : (int64_t)l2;
      start = (int64_t)((__int128)floor_div(ll, b->every) * b->every + b->offset - off2);
      if (start > t)
        start = (int64_t)((__int128)floor_div(l, b->every) * b->every + b->offset - off);
    }
  }
  return start;
}

/* Index of the bucket holding t, by binary search over the starts when the zone shifts. */
typedef struct bucket_index {
  int64_t *starts;
  size_t n;
} bucket_index;

static size_t bucket_of(const buckets *b, const bucket_index *bi, int64_t t) {
  if (!b->every)
    return 0;
  if (!bi->starts)
    return (size_t)(((uint64_t)bucket_start(b, t) - (uint64_t)b->first) / (uint64_t)b->every);
  size_t lo = 0, hi = bi->n;
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (bi->starts[mid] <= t)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

static int64_t bucket_time(const buckets *b, const bucket_index *bi, size_t k) {
  if (!b->every)
    return b->first;
  if (bi->starts)
    return bi->starts[k];
  return (int64_t)((uint64_t)b->first + (uint64_t)k * (uint64_t)b->every);
}

/* ---- a tag set, and the tag sets of a measurement ---- */

/* Which aggregates tsdb_aggregate can answer for a field (bits) and whether all of p's are. */
static unsigned engine_aggs(int func) {
  switch (func) {
  case INFLUXQL_FN_COUNT: return TSDB_AGG_COUNT;
  case INFLUXQL_FN_SUM: return TSDB_AGG_SUM;
  case INFLUXQL_FN_MEAN: return TSDB_AGG_MEAN;
  case INFLUXQL_FN_MIN: return TSDB_AGG_MIN;
  case INFLUXQL_FN_MAX: return TSDB_AGG_MAX;
  case INFLUXQL_FN_FIRST: return TSDB_AGG_FIRST;
  case INFLUXQL_FN_LAST: return TSDB_AGG_LAST;
  case INFLUXQL_FN_SPREAD: return TSDB_AGG_SPREAD;
  default: return 0;
  }
}

static int run_agg_tagset(influxql_select_ctx *sc, const influxql_meas *m, influxql_tagset *ts,
                          const char **keys, size_t nkeys, const buckets *bk,
                          const bucket_index *bi, const char *const *colnames,
                          int single_selector) {
  influxql_exec_ctx *x = sc->x;
  influxql_plan *p = sc->p;
  const influxql_select *s = sc->s;
  size_t nb = bk->n;
  int rc = 0;
  /* accumulators: per aggregate, per bucket */
  acc **accs = calloc(p->naggs ? p->naggs : 1, sizeof *accs);
  uint8_t **present = calloc(p->naggs ? p->naggs : 1, sizeof *present);
  if (!accs || !present)
    rc = PL_ENOMEM;
  for (size_t a = 0; a < p->naggs && rc == 0; a++) {
    accs[a] = calloc(nb, sizeof **accs);
    present[a] = calloc(nb, 1);
    p->aggs[a].val = calloc(nb, sizeof *p->aggs[a].val);
    p->aggs[a].vts = calloc(nb, sizeof *p->aggs[a].vts);
    if (!accs[a] || !present[a] || !p->aggs[a].val || !p->aggs[a].vts)
      rc = PL_ENOMEM;
    int fi = influxql__meas_field(m, p->aggs[a].field);
    for (size_t k = 0; k < nb && accs[a]; k++)
      accs[a][k].type = fi >= 0 ? m->types[fi] : TSDB_FLOAT;
  }
  int any_dep = 0;
  for (size_t i = 0; i < ts->n; i++)
    any_dep |= ts->match[i] < 0;
  if (rc == 0 && p->naux && !(p->auxv = calloc(nb * p->naux, sizeof *p->auxv)))
    rc = PL_ENOMEM;
  /* type checks */
  for (size_t a = 0; a < p->naggs && rc == 0; a++) {
    int fi = influxql__meas_field(m, p->aggs[a].field);
    if (fi < 0)
      continue;
    tsdb_type t = m->types[fi];
    int f = p->aggs[a].func;
    if (f == INFLUXQL_FN_MODE && (t == TSDB_STRING || t == TSDB_BOOL))
      rc = influxql__stmt_err(x, "mode() of %s fields is not supported by Plateau",
                              t == TSDB_STRING ? "string" : "boolean");
    else if ((t == TSDB_STRING || t == TSDB_BOOL) && f != INFLUXQL_FN_COUNT &&
             f != INFLUXQL_FN_FIRST && f != INFLUXQL_FN_LAST)
      rc = influxql__stmt_err(x, "unsupported %s iterator type: %s", influxql__func_name(f),
                              t == TSDB_STRING ? "string" : "boolean");
  }
  int any_data = 0;
  /* per field: engine path or points */
  const char **fields = NULL;
  size_t nf = 0, capf = 0;
  for (size_t a = 0; a < p->naggs && rc == 0; a++) {
    size_t i;
    for (i = 0; i < nf; i++)
      if (strcmp(fields[i], p->aggs[a].field) == 0)
        break;
    if (i == nf)
      INFLUXQL_VEC_PUSH(fields, nf, capf, p->aggs[a].field, rc);
  }
  const char **cnames = NULL;
  size_t ncn = 0, capcn = 0;
  if (rc == 0 && any_dep)
    rc = influxql__cond_fields(x, sc->cond, m, &cnames, &ncn, &capcn);
  tsdb_buckets tb = {0};
  for (size_t fi = 0; fi < nf && rc == 0; fi++) {
    const char *field = fields[fi];
    int mf = influxql__meas_field(m, field);
    if (mf < 0)
      continue;
    tsdb_type ftype = m->types[mf];
    unsigned want = 0;
    /* the engine's buckets carry the times of their first and last points, not of their
     * extremes: a lone min() or max() reports its point's time, so it reads points */
    int lone_extreme = single_selector &&
                       (p->aggs[0].func == INFLUXQL_FN_MIN || p->aggs[0].func == INFLUXQL_FN_MAX ||
                        p->aggs[0].func == INFLUXQL_FN_PERCENTILE);
    int engine_ok = !any_dep && bi->starts == NULL && !lone_extreme && !p->naux;
    for (size_t a = 0; a < p->naggs; a++) {
      if (strcmp(p->aggs[a].field, field) != 0)
        continue;
      unsigned e = engine_aggs(p->aggs[a].func);
      if (!e || (ftype == TSDB_STRING && p->aggs[a].func != INFLUXQL_FN_COUNT))
        engine_ok = 0;
      want |= e;
    }
    for (size_t gi = 0; gi < ts->n && rc == 0; gi++) {
      const influxql_group *g = ts->g[gi];
      if (influxql__group_field(g, field) < 0)
        continue;
      if (engine_ok && !g->virt) {
        tsdb_agg_spec spec = {0};
        spec.start_ns = sc->range.min;
        spec.end_ns = sc->range.max == INT64_MAX ? INT64_MAX : sc->range.max + 1;
        spec.bucket_ns = bk->every;
        spec.offset_ns =
            bk->offset -
            (bk->tz ? (int64_t)influxql__tz_offset(bk->tz, sc->range.min) * 1000000000 : 0);
        spec.aggs = want;
        spec.fill = TSDB_FILL_NONE;
        int lone = single_selector && !bk->every ? p->aggs[0].func : 0;
        if (lone == INFLUXQL_FN_LAST || lone == INFLUXQL_FN_FIRST) {
          /* "the last value of every device": only the newest (oldest) data is needed, so the
           * window read grows from the group's end until it holds a point of the field */
          int64_t lo = spec.start_ns > g->first_ts ? spec.start_ns : g->first_ts;
          int64_t hi = sc->range.max < g->last_ts ? sc->range.max : g->last_ts;
          int64_t w = 3600LL * 1000000000;
          for (;;) {
            int whole = hi < lo || (uint64_t)(hi - lo) <= (uint64_t)w;
            spec.start_ns = whole ? lo : lone == INFLUXQL_FN_LAST ? hi - w : lo;
            spec.end_ns = whole ? hi + 1 : lone == INFLUXQL_FN_LAST ? hi + 1 : lo + w + 1;
            if (hi < lo)
              spec.end_ns = spec.start_ns; /* nothing in range: an empty read */
            rc = tsdb_aggregate(x->o->db, sc->ns, g->id, field, &spec, &tb);
            if (rc < 0 || whole)
              break;
            int found = 0;
            for (size_t k = 0; k < tb.n && !found; k++)
              found = tb.b[k].present;
            if (found)
              break;
            w = w > INT64_MAX / 4 ? INT64_MAX : w * 4;
          }
        } else {
          rc = tsdb_aggregate(x->o->db, sc->ns, g->id, field, &spec, &tb);
        }
        if (rc == PL_ENOTFOUND) {
          rc = 0;
          continue;
        }
        if (rc == PL_ELIMIT) {
          rc = influxql__stmt_err(
              x, "too many buckets: the statement would make more than %d time buckets",
              BUCKETS_MAX);
          break;
        }
        if (rc < 0)
          break;
        for (size_t k = 0; k < tb.n; k++) {
          const tsdb_bucket *b = &tb.b[k];
          if (!b->present)
            continue;
          if ((rc = influxql__count_points(x, 1)))
            break;
          size_t idx = bk->every ? bucket_of(bk, bi, b->start_ns) : 0;
          if (idx >= nb)
            continue;
          any_data = 1;
          for (size_t a = 0; a < p->naggs; a++)
            if (strcmp(p->aggs[a].field, field) == 0) {
              acc_add_bucket(&accs[a][idx], b, ftype);
              present[a][idx] = 1;
            }
        }
        continue;
      }
      /* read the points: the field, the condition's fields when the group depends on them, and
       * a selector's auxiliary fields */
      size_t nn = 1 + (ts->match[gi] < 0 ? ncn : 0) + p->naux;
      const char **names = malloc(nn * sizeof *names);
      if (!names) {
        rc = PL_ENOMEM;
        break;
      }
      names[0] = field;
      size_t k = 1;
      for (size_t c = 0; ts->match[gi] < 0 && c < ncn; c++)
        if (strcmp(cnames[c], field) != 0)
          names[k++] = cnames[c];
      for (size_t c = 0; c < p->naux; c++) {
        int dup = 0;
        for (size_t q = 0; q < k && !dup; q++)
          dup = strcmp(names[q], p->aux[c]->name) == 0;
        if (!dup && p->aux[c]->kind == INFLUXQL_COL_FIELD &&
            influxql__meas_field(m, p->aux[c]->name) >= 0)
          names[k++] = p->aux[c]->name;
      }
      nn = k;
      influxql_group_rows gr;
      influxql_value *fv = calloc(nn, sizeof *fv);
      if (!fv || (rc = influxql__group_rows_init(&gr, nn, names)) < 0) {
        free(fv);
        free(names);
        rc = rc ? rc : PL_ENOMEM;
        break;
      }
      rc = influxql__group_rows_read(x, sc->ns, g, &gr, sc->range.min, sc->range.max);
      int64_t t;
      while (rc == 0 && influxql__group_rows_next(&gr, &t, fv)) {
        if (fv[0].kind == INFLUXQL_V_NULL)
          continue;
        if (ts->match[gi] < 0) {
          influxql_cond_ctx c = {x, g, m, names, fv, nn, t};
          if (influxql__cond_truth(&c, sc->cond) != 1)
            continue;
        }
        size_t idx = bucket_of(bk, bi, t);
        if (idx >= nb)
          continue;
        any_data = 1;
        for (size_t a = 0; a < p->naggs && rc == 0; a++)
          if (strcmp(p->aggs[a].field, field) == 0) {
            int selected = 0;
            rc = acc_add(x, &accs[a][idx], p->aggs[a].func, t, &fv[0], &selected);
            if (rc == 0 && selected && p->naux)
              rc = aux_capture(x, p, m, g, names, fv, nn, p->auxv + idx * p->naux);
            present[a][idx] = 1;
          }
      }
      influxql__group_rows_free(&gr);
      free(fv);
      free(names);
    }
  }
  tsdb_buckets_free(&tb);
  free(fields);
  free(cnames);
  /* results, fill, transforms, rows */
  influxql_colvals *tv = NULL;
  size_t ntv = 0, captv = 0;
  influxql_value *rows = NULL;
  size_t nrows = 0, ncols = p->ncols + 1;
  int64_t *bts = NULL;
  if (rc == 0 && any_data) {
    bts = malloc(nb * sizeof *bts);
    if (!bts)
      rc = PL_ENOMEM;
    for (size_t k = 0; k < nb && rc == 0; k++)
      bts[k] = bucket_time(bk, bi, k);
    for (size_t a = 0; a < p->naggs && rc == 0; a++) {
      int mf = influxql__meas_field(m, p->aggs[a].field);
      tsdb_type ty = mf >= 0 ? m->types[mf] : TSDB_FLOAT;
      for (size_t k = 0; k < nb; k++) {
        int64_t sel = bts[k];
        int emit = 1;
        p->aggs[a].val[k] = acc_result(&accs[a][k], &p->aggs[a], &sel, &emit);
        if (!emit)
          present[a][k] = 0;
        p->aggs[a].vts[k] = sel;
        /* count is 0, not null, in an empty bucket only while filling with null */
        if (!present[a][k] && p->aggs[a].func == INFLUXQL_FN_COUNT && s->fill != INFLUXQL_FILL_NULL)
          p->aggs[a].val[k].kind = INFLUXQL_V_NULL;
      }
      (void)ty;
    }
    /* A series whose functions produced no point at all is not shown (a percentile beyond the
     * points, say), whatever the fill. */
    int any_point = 0;
    for (size_t a = 0; a < p->naggs && !any_point; a++)
      for (size_t k = 0; k < nb && !any_point; k++)
        any_point = present[a][k];
    if (!any_point)
      any_data = 0;
    for (size_t a = 0; a < p->naggs && rc == 0 && any_data; a++) {
      int mf = influxql__meas_field(m, p->aggs[a].field);
      influxql__fill_column(s, &p->aggs[a], p->aggs[a].val, present[a], nb,
                            mf >= 0 ? m->types[mf] : TSDB_FLOAT);
    }
  }
  if (rc == 0 && any_data) {
    for (size_t c = 0; c < p->ncols && rc == 0; c++)
      rc = influxql__collect_transforms(p->cols[c], &tv, &ntv, &captv);
    for (size_t i = 0; i < ntv && rc == 0; i++) {
      tv[i].v = calloc(nb, sizeof *tv[i].v);
      influxql_value *in = calloc(nb, sizeof *in);
      if (!tv[i].v || !in) {
        free(in);
        rc = PL_ENOMEM;
        break;
      }
      for (size_t k = 0; k < nb; k++)
        in[k] = influxql__agg_eval(tv[i].c->l, p, k, tv, 0);
      influxql__run_transform(tv[i].c, in, bts, nb, bk->every ? bk->every : 1000000000, tv[i].v);
      free(in);
    }
    rows = rc == 0 ? malloc(nb * ncols * sizeof *rows) : NULL;
    if (rc == 0 && !rows)
      rc = PL_ENOMEM;
    /* buckets before the statement's range only fed the transformations */
    for (size_t k = bk->skip; k < nb && rc == 0; k++) {
      int point = 0;
      for (size_t c = 0; c < p->ncols && !point; c++)
        point = influxql__col_point(p->cols[c], p, k, (const uint8_t *const *)present, tv, ntv,
                                    s->fill == INFLUXQL_FILL_NONE);
      if (!point)
        continue;
      influxql_value *row = rows + nrows * ncols;
      row[0].kind = INFLUXQL_V_TIME;
      row[0].v.i = bts[k];
      if (single_selector)
        row[0].v.i = p->aggs[0].vts[k];
      for (size_t c = 0; c < p->ncols; c++)
        row[c + 1] = influxql__agg_eval(p->cols[c], p, k, tv, ntv);
      nrows++;
    }
    if (rc == 0 && s->order_desc)
      influxql__reverse_rows(rows, nrows, ncols);
    if (rc == 0)
      rc = influxql__emit_series(x, m->name, keys, ts->values, nkeys, colnames, ncols, rows, nrows,
                                 s);
  }
  for (size_t i = 0; i < ntv; i++)
    free(tv[i].v);
  free(tv);
  free(rows);
  free(bts);
  for (size_t a = 0; a < p->naggs; a++) {
    for (size_t k = 0; accs && accs[a] && k < nb; k++)
      acc_free(&accs[a][k]);
    if (accs)
      free(accs[a]);
    if (present)
      free(present[a]);
    free(p->aggs[a].val);
    free(p->aggs[a].vts);
    p->aggs[a].val = NULL;
    p->aggs[a].vts = NULL;
  }
  free(accs);
  free(present);
  free(p->auxv);
  p->auxv = NULL;
  return rc;
}

/* The buckets of the statement's range (widened by ext buckets before it for the
 * transformations, whose results there are not shown), then each tag set in turn. The range is
 * restored before returning. */
int influxql__run_agg_tagsets(influxql_select_ctx *sc, const influxql_meas *m,
                              influxql_tagsets *tsets, size_t from, size_t to, const char **keys,
                              size_t nkeys, const char *const *colnames, int single_selector,
                              int64_t ext) {
  influxql_exec_ctx *x = sc->x;
  const influxql_select *s = sc->s;
  int rc = 0;
  buckets bk = {0};
  bucket_index bi = {0};
  bk.every = sc->d.has_time ? sc->d.every : 0;
  bk.offset = sc->d.offset;
  bk.tz = sc->tz;
  if (sc->range.min > sc->range.max)
    return 0;
  influxql_time_range saved = sc->range;
  if (bk.every) {
    bk.first = bucket_start(&bk, sc->range.min);
    if (ext) {
      /* transformations see the buckets before the range too (not shown) */
      bk.first = (int64_t)((uint64_t)bk.first - (uint64_t)ext * (uint64_t)bk.every);
      bk.skip = (size_t)ext;
      sc->range.min = bk.first;
    }
    bk.last = bucket_start(&bk, sc->range.max);
    uint64_t nb = ((uint64_t)bk.last - (uint64_t)bk.first) / (uint64_t)bk.every + 1;
    if (nb > BUCKETS_MAX) {
      rc = influxql__stmt_err(
          x, "too many buckets: the statement would make %llu time buckets (at most %d)",
          (unsigned long long)nb, BUCKETS_MAX);
      goto done;
    }
    bk.n = (size_t)nb;
    if (bk.n > BUCKET_CELLS_MAX / (sc->p->naggs ? sc->p->naggs : 1)) {
      rc = influxql__stmt_err(
          x,
          "too many buckets: %zu time buckets of %zu functions (at most %zu cells); "
          "use a longer "
          "GROUP BY time interval or a shorter range",
          bk.n, sc->p->naggs, BUCKET_CELLS_MAX);
      goto done;
    }
    if (sc->tz &&
        influxql__tz_offset(sc->tz, sc->range.min) != influxql__tz_offset(sc->tz, sc->range.max)) {
      /* the offset changes inside the range: list the starts */
      bi.starts = malloc((bk.n + 2) * sizeof *bi.starts);
      if (!bi.starts)
        rc = PL_ENOMEM;
      size_t k = 0;
      int64_t t = bk.first;
      while (rc == 0 && k < bk.n + 1 && t <= sc->range.max) {
        bi.starts[k++] = t;
        int64_t next = bucket_start(&bk, t + bk.every);
        if (next <= t) /* a local day of 25 hours */
          next = bucket_start(&bk, t + bk.every + 3600LL * 1000000000);
        if (next <= t)
          next = t + bk.every;
        t = next;
      }
      bi.n = k;
      bk.n = k;
    }
  } else {
    bk.first = sc->range.has_min ? sc->range.min : 0;
    bk.n = 1;
  }
  for (size_t t = from; t < to && rc == 0; t++)
    rc = run_agg_tagset(sc, m, &tsets->t[s->order_desc ? to - 1 - (t - from) : t], keys, nkeys, &bk,
                        &bi, colnames, single_selector);
done:
  free(bi.starts);
  sc->range = saved;
  return rc;
}
