/* The executor's view of the data: the catalogue of groups a statement reads, grouped into
 * measurements; the points of a group's fields joined into rows by time (from the engine, or
 * from a subquery's result standing in as a virtual group); and GROUP BY, which partitions a
 * measurement's groups into the tag sets that become output series. exec.c's SHOW statements
 * and exec_select.c's SELECT build on these (influxql_int.h). */
#include "influxql/influxql_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- catalogue ---- */

void influxql__catalog_free(influxql_catalog *c) {
  free(c->g);
  memset(c, 0, sizeof *c);
}

typedef struct load_ctx {
  influxql_exec_ctx *x;
  influxql_catalog *c;
  int rc;
} load_ctx;

static int load_cb(void *ctx, const tsdb_group_info *gi) {
  load_ctx *l = ctx;
  influxql_exec_ctx *x = l->x;
  influxql_group *g = influxql__alloc(x->arena, sizeof *g);
  if (!g)
    return l->rc = PL_ENOMEM;
  g->id = gi->id;
  g->measurement = influxql__strndup(x->arena, gi->measurement.p, gi->measurement.len);
  g->ntags = gi->ntags;
  g->tags = influxql__alloc(x->arena, (gi->ntags ? gi->ntags : 1) * sizeof *g->tags);
  g->nfields = gi->nfields;
  g->fields = influxql__alloc(x->arena, (gi->nfields ? gi->nfields : 1) * sizeof *g->fields);
  g->types = influxql__alloc(x->arena, (gi->nfields ? gi->nfields : 1) * sizeof *g->types);
  g->first_ts = gi->first_ts;
  g->last_ts = gi->last_ts;
  if (!g->measurement || !g->tags || !g->fields || !g->types)
    return l->rc = PL_ENOMEM;
  int rc = 0;
  for (size_t i = 0; i < gi->ntags && rc == 0; i++) {
    g->tags[i].key = influxql__strndup(x->arena, gi->tags[i].key.p, gi->tags[i].key.len);
    g->tags[i].value = influxql__strndup(x->arena, gi->tags[i].value.p, gi->tags[i].value.len);
    if (!g->tags[i].key || !g->tags[i].value)
      rc = PL_ENOMEM;
  }
  for (size_t i = 0; i < gi->nfields && rc == 0; i++) {
    g->fields[i] = influxql__strndup(x->arena, gi->field_names[i].p, gi->field_names[i].len);
    g->types[i] = gi->field_types[i];
    if (!g->fields[i])
      rc = PL_ENOMEM;
  }
  if (rc < 0)
    return l->rc = rc;
  INFLUXQL_VEC_PUSH(l->c->g, l->c->n, l->c->cap, g, rc);
  return rc < 0 ? (l->rc = rc) : 0;
}

/* Groups in series order: measurement, then tags (key, value) in turn; no key string needed. */
int influxql__cmp_group(const void *a, const void *b) {
  const influxql_group *x = *(influxql_group *const *)a, *y = *(influxql_group *const *)b;
  int c = strcmp(x->measurement, y->measurement);
  for (size_t i = 0; c == 0 && i < x->ntags && i < y->ntags; i++) {
    c = strcmp(x->tags[i].key, y->tags[i].key);
    if (c == 0)
      c = strcmp(x->tags[i].value, y->tags[i].value);
  }
  if (c == 0 && x->ntags != y->ntags)
    c = x->ntags < y->ntags ? -1 : 1;
  if (c == 0 && x->id != y->id)
    c = x->id < y->id ? -1 : 1;
  return c;
}

/* Groups of measurement m (all when NULL) in namespace ns, ordered by series key. Groups that
 * hold no data (everything deleted) are left out. */
int influxql__catalog_load(influxql_exec_ctx *x, int64_t ns, const char *m, influxql_catalog *c) {
  memset(c, 0, sizeof *c);
  load_ctx l = {x, c, 0};
  tsdb_str ms = {m, m ? strlen(m) : 0};
  int rc = tsdb_groups(x->o->db, ns, ms, load_cb, &l);
  if (l.rc < 0)
    rc = l.rc;
  if (rc < 0) {
    influxql__catalog_free(c);
    return rc;
  }
  size_t k = 0;
  for (size_t i = 0; i < c->n; i++)
    if (c->g[i]->nfields && !(c->g[i]->first_ts == 0 && c->g[i]->last_ts == 0))
      c->g[k++] = c->g[i];
  c->n = k;
  return 0;
}

const char *influxql__tag_value(const influxql_group *g, const char *key) {
  size_t lo = 0, hi = g->ntags;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(g->tags[mid].key, key);
    if (c == 0)
      return g->tags[mid].value;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

int influxql__group_field(const influxql_group *g, const char *name) {
  for (size_t i = 0; i < g->nfields; i++)
    if (strcmp(g->fields[i], name) == 0)
      return (int)i;
  return -1;
}

int influxql__cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int meas_index(influxql_exec_ctx *x, influxql_meas *m) {
  size_t cf = 0, ct = 0;
  for (size_t i = 0; i < m->n; i++)
    cf += m->g[i]->nfields, ct += m->g[i]->ntags;
  m->fields = influxql__alloc(x->arena, (cf ? cf : 1) * sizeof *m->fields);
  m->types = influxql__alloc(x->arena, (cf ? cf : 1) * sizeof *m->types);
  m->tagkeys = influxql__alloc(x->arena, (ct ? ct : 1) * sizeof *m->tagkeys);
  if (!m->fields || !m->types || !m->tagkeys)
    return PL_ENOMEM;
  m->nfields = m->ntagkeys = 0;
  for (size_t i = 0; i < m->n; i++) {
    const influxql_group *g = m->g[i];
    for (size_t f = 0; f < g->nfields; f++) {
      size_t k;
      for (k = 0; k < m->nfields; k++)
        if (strcmp(m->fields[k], g->fields[f]) == 0)
          break;
      if (k == m->nfields) {
        m->fields[m->nfields] = g->fields[f];
        m->types[m->nfields++] = g->types[f];
      }
    }
    for (size_t t = 0; t < g->ntags; t++) {
      size_t k;
      for (k = 0; k < m->ntagkeys; k++)
        if (strcmp(m->tagkeys[k], g->tags[t].key) == 0)
          break;
      if (k == m->ntagkeys)
        m->tagkeys[m->ntagkeys++] = g->tags[t].key;
    }
  }
  /* fields sorted with their types */
  for (size_t i = 1; i < m->nfields; i++)
    for (size_t j = i; j > 0 && strcmp(m->fields[j - 1], m->fields[j]) > 0; j--) {
      const char *t = m->fields[j];
      m->fields[j] = m->fields[j - 1];
      m->fields[j - 1] = t;
      tsdb_type ty = m->types[j];
      m->types[j] = m->types[j - 1];
      m->types[j - 1] = ty;
    }
  influxql__sort(m->tagkeys, m->ntagkeys, sizeof *m->tagkeys, influxql__cmp_str);
  return 0;
}

int influxql__meas_field(const influxql_meas *m, const char *name) {
  for (size_t i = 0; i < m->nfields; i++)
    if (strcmp(m->fields[i], name) == 0)
      return (int)i;
  return -1;
}

/* Splits a sorted catalogue into measurements. */
int influxql__measures_from(influxql_exec_ctx *x, influxql_catalog *c, influxql_meas **out,
                            size_t *n) {
  size_t cap = 0;
  influxql_meas *ms = NULL;
  *n = 0;
  int rc = 0;
  for (size_t i = 0; i < c->n && rc == 0;) {
    size_t j = i;
    while (j < c->n && strcmp(c->g[j]->measurement, c->g[i]->measurement) == 0)
      j++;
    influxql_meas m = {c->g[i]->measurement, c->g + i, j - i, NULL, NULL, 0, NULL, 0};
    INFLUXQL_VEC_PUSH(ms, *n, cap, m, rc);
    i = j;
  }
  /* Series keys sort by measurement first, but "cpu,..." vs "cpu2" can interleave: a
   * measurement name that is a prefix of another sorts its groups apart when the next character
   * is below ','. Merge runs of the same name. */
  for (size_t i = 0; i < *n && rc == 0; i++)
    rc = meas_index(x, &ms[i]);
  if (rc < 0) {
    free(ms);
    return rc;
  }
  *out = ms;
  return 0;
}

/* ---- reading points ---- */

/* The points of one field of a group in [start, end] (inclusive), from the engine or from a
 * subquery's result. */
static int read_field(influxql_exec_ctx *x, int64_t ns, const influxql_group *g, const char *field,
                      int64_t start, int64_t end, tsdb_points *out) {
  if (start > end) {
    out->n = 0;
    return 0;
  }
  if (!g->virt) {
    int64_t end_excl = end == INT64_MAX ? INT64_MAX : end + 1;
    int rc = tsdb_read(x->o->db, ns, g->id, field, start, end_excl, 0, 0, out);
    if (rc == PL_ENOTFOUND) {
      out->n = 0;
      return 0;
    }
    if (rc < 0)
      return rc;
    return influxql__count_points(x, out->n);
  }
  /* a subquery series: column `field` */
  const influxql_series *s = g->virt;
  size_t column = 0;
  for (size_t c = 1; c < s->ncolumns; c++)
    if (strcmp(s->columns[c], field) == 0)
      column = c;
  out->n = 0;
  pl_buf_reset(&out->arena);
  if (!column)
    return 0;
  int fi = influxql__group_field(g, field);
  tsdb_type type = fi >= 0 ? g->types[fi] : TSDB_FLOAT;
  out->type = type;
  for (size_t k = 0; k < s->nrows; k++) {
    const influxql_value *row = s->values + k * s->ncolumns;
    const influxql_value *v = &row[column];
    int64_t t = row[0].v.i;
    if (t < start || t > end || v->kind == INFLUXQL_V_NULL)
      continue;
    if (out->n == out->cap) {
      size_t cap = out->cap ? out->cap * 2 : 64;
      int64_t *ts = realloc(out->ts, cap * sizeof *ts);
      if (!ts)
        return PL_ENOMEM;
      out->ts = ts;
      double *f = realloc(out->f, cap * sizeof *f);
      if (!f)
        return PL_ENOMEM;
      out->f = f;
      int64_t *iv = realloc(out->i, cap * sizeof *iv);
      if (!iv)
        return PL_ENOMEM;
      out->i = iv;
      uint8_t *b = realloc(out->b, cap);
      if (!b)
        return PL_ENOMEM;
      out->b = b;
      const char **sv = realloc(out->s, cap * sizeof *sv);
      if (!sv)
        return PL_ENOMEM;
      out->s = sv;
      uint32_t *sl = realloc(out->slen, cap * sizeof *sl);
      if (!sl)
        return PL_ENOMEM;
      out->slen = sl;
      out->cap = cap;
    }
    size_t n = out->n;
    out->ts[n] = t;
    switch (type) {
    case TSDB_FLOAT: out->f[n] = v->kind == INFLUXQL_V_INT ? (double)v->v.i : v->v.f; break;
    case TSDB_INT:
      out->i[n] = v->kind == INFLUXQL_V_FLOAT ? influxql__double_to_int64(v->v.f) : v->v.i;
      break;
    case TSDB_BOOL: out->b[n] = (uint8_t)v->v.b; break;
    case TSDB_STRING:
      out->s[n] = v->v.s.p;
      out->slen[n] = (uint32_t)v->v.s.len;
      break;
    }
    out->n++;
  }
  return influxql__count_points(x, out->n);
}

static influxql_value point_value(const tsdb_points *p, size_t k) {
  influxql_value v = {0};
  switch (p->type) {
  case TSDB_FLOAT: v.kind = INFLUXQL_V_FLOAT, v.v.f = p->f[k]; break;
  case TSDB_INT: v.kind = INFLUXQL_V_INT, v.v.i = p->i[k]; break;
  case TSDB_BOOL: v.kind = INFLUXQL_V_BOOL, v.v.b = p->b[k]; break;
  case TSDB_STRING:
    v.kind = INFLUXQL_V_STRING;
    v.v.s.p = p->s[k];
    v.v.s.len = p->slen[k];
    break;
  }
  return v;
}

int influxql__group_rows_init(influxql_group_rows *r, size_t nf, const char **names) {
  memset(r, 0, sizeof *r);
  r->nf = nf;
  r->names = names;
  r->pts = calloc(nf ? nf : 1, sizeof *r->pts);
  r->at = calloc(nf ? nf : 1, sizeof *r->at);
  if (!r->pts || !r->at)
    return PL_ENOMEM;
  for (size_t i = 0; i < nf; i++)
    tsdb_points_init(&r->pts[i]);
  return 0;
}

void influxql__group_rows_free(influxql_group_rows *r) {
  for (size_t i = 0; r->pts && i < r->nf; i++)
    tsdb_points_free(&r->pts[i]);
  free(r->pts);
  free(r->at);
}

int influxql__group_rows_read(influxql_exec_ctx *x, int64_t ns, const influxql_group *g,
                              influxql_group_rows *r, int64_t start, int64_t end) {
  for (size_t i = 0; i < r->nf; i++) {
    r->at[i] = 0;
    r->pts[i].n = 0;
    if (influxql__group_field(g, r->names[i]) < 0)
      continue;
    int rc = read_field(x, ns, g, r->names[i], start, end, &r->pts[i]);
    if (rc)
      return rc;
  }
  return 0;
}

/* Next row: returns 1 with its time and values (vals[nf]), 0 at the end. */
int influxql__group_rows_next(influxql_group_rows *r, int64_t *ts, influxql_value *vals) {
  int64_t t = INT64_MAX;
  int any = 0;
  for (size_t i = 0; i < r->nf; i++)
    if (r->at[i] < r->pts[i].n && (!any || r->pts[i].ts[r->at[i]] < t))
      t = r->pts[i].ts[r->at[i]], any = 1;
  if (!any)
    return 0;
  for (size_t i = 0; i < r->nf; i++) {
    if (r->at[i] < r->pts[i].n && r->pts[i].ts[r->at[i]] == t) {
      vals[i] = point_value(&r->pts[i], r->at[i]);
      r->at[i]++;
    } else {
      vals[i].kind = INFLUXQL_V_NULL;
    }
  }
  *ts = t;
  return 1;
}

size_t influxql__group_rows_count(influxql_group_rows *r) {
  /* rows = union of timestamps: walk a copy of the cursors */
  size_t save[64], n = 0;
  size_t nf = r->nf < 64 ? r->nf : 64;
  for (size_t i = 0; i < nf; i++)
    save[i] = r->at[i];
  int64_t t;
  influxql_value tmp[64];
  if (r->nf > 64) {
    size_t m = 0;
    for (size_t i = 0; i < r->nf; i++)
      m = r->pts[i].n > m ? r->pts[i].n : m;
    return m;
  }
  while (influxql__group_rows_next(r, &t, tmp))
    n++;
  for (size_t i = 0; i < nf; i++)
    r->at[i] = save[i];
  return n;
}

/* ---- statement parts shared by SELECT ---- */

int influxql__parse_dims(influxql_exec_ctx *x, const influxql_select *s, influxql_dims *d) {
  memset(d, 0, sizeof *d);
  d->tags = influxql__alloc(x->arena, (s->ndims ? s->ndims : 1) * sizeof *d->tags);
  if (!d->tags)
    return PL_ENOMEM;
  for (size_t i = 0; i < s->ndims; i++) {
    const influxql_expr *e = s->dims[i];
    if (e->kind == INFLUXQL_EXPR_CALL && strcmp(e->str, "time") == 0) {
      if (d->has_time)
        return influxql__stmt_err(x, "multiple time dimensions not allowed");
      if (e->nargs < 1 || e->nargs > 2)
        return influxql__stmt_err(x, "time dimension expected 1 or 2 arguments");
      if (e->args[0]->kind != INFLUXQL_EXPR_DURATION)
        return influxql__stmt_err(x, "time dimension must have duration argument");
      if (e->args[0]->i <= 0)
        return influxql__stmt_err(x, "time dimension must have positive duration");
      d->has_time = 1;
      d->every = e->args[0]->i;
      if (e->nargs == 2) {
        const influxql_expr *o = e->args[1];
        if (o->kind == INFLUXQL_EXPR_DURATION) {
          d->offset = o->i % d->every;
        } else if (o->kind == INFLUXQL_EXPR_CALL && strcmp(o->str, "now") == 0 && o->nargs == 0) {
          d->offset = x->o->now_ns % d->every;
        } else {
          return influxql__stmt_err(x, "time dimension offset must be duration or now()");
        }
        if (d->offset < 0)
          d->offset += d->every;
      }
    } else if (e->kind == INFLUXQL_EXPR_VARREF || e->kind == INFLUXQL_EXPR_WILDCARD ||
               e->kind == INFLUXQL_EXPR_REGEX) {
      if (e->kind == INFLUXQL_EXPR_VARREF && strcasecmp(e->str, "time") == 0)
        return influxql__stmt_err(x, "time() is a function and expects at least one argument");
      d->tags[d->ntags++] = e;
    } else if (e->kind == INFLUXQL_EXPR_CALL) {
      return influxql__stmt_err(x, "only time() calls allowed in dimensions");
    } else {
      return influxql__stmt_err(x, "only time and tag dimensions allowed");
    }
  }
  return 0;
}

/* The GROUP BY tag keys for measurement m, sorted and unique. */
int influxql__dim_keys(influxql_exec_ctx *x, const influxql_dims *d, const influxql_meas *m,
                       const char ***keys, size_t *n) {
  size_t cap = d->ntags + m->ntagkeys + 1;
  const char **k = influxql__alloc(x->arena, cap * sizeof *k);
  if (!k)
    return PL_ENOMEM;
  size_t nk = 0;
  for (size_t i = 0; i < d->ntags; i++) {
    const influxql_expr *e = d->tags[i];
    if (e->kind == INFLUXQL_EXPR_VARREF) {
      k[nk++] = e->str;
    } else {
      for (size_t t = 0; t < m->ntagkeys && nk < cap; t++) {
        if (e->kind == INFLUXQL_EXPR_REGEX) {
          const regex_t *re = influxql__regex_get(x, e, e->str);
          if (!influxql__regex_match(re, m->tagkeys[t]))
            continue;
        }
        k[nk++] = m->tagkeys[t];
      }
    }
    if (nk + m->ntagkeys >= cap)
      break;
  }
  influxql__sort(k, nk, sizeof *k, influxql__cmp_str);
  size_t u = 0;
  for (size_t i = 0; i < nk; i++)
    if (!u || strcmp(k[u - 1], k[i]) != 0)
      k[u++] = k[i];
  *keys = k;
  *n = u;
  return 0;
}

void influxql__tagsets_free(influxql_tagsets *ts) {
  for (size_t i = 0; i < ts->n; i++) {
    free(ts->t[i].g);
    free(ts->t[i].match);
  }
  free(ts->t);
  memset(ts, 0, sizeof *ts);
}

static int cmp_values(const char **a, const char **b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int c = strcmp(a[i], b[i]);
    if (c)
      return c;
  }
  return 0;
}

/* Groups of m that pass the tag part of the condition, partitioned by the values of keys. */
int influxql__make_tagsets(influxql_exec_ctx *x, const influxql_meas *m, const influxql_expr *cond,
                           const char **keys, size_t nkeys, influxql_tagsets *out) {
  memset(out, 0, sizeof *out);
  int rc = 0;
  const char **vals = malloc((nkeys ? nkeys : 1) * sizeof *vals);
  if (!vals)
    return PL_ENOMEM;
  for (size_t i = 0; i < m->n && rc == 0; i++) {
    influxql_group *g = m->g[i];
    influxql_cond_ctx c = {x, g, m, NULL, NULL, 0, 0};
    int t = influxql__cond_truth(&c, cond);
    if (t == 0)
      continue;
    for (size_t k = 0; k < nkeys; k++) {
      const char *v = influxql__tag_value(g, keys[k]);
      vals[k] = v ? v : "";
    }
    /* binary search among sorted tagsets */
    size_t lo = 0, hi = out->n;
    int found = 0;
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      int cmp = cmp_values(out->t[mid].values, vals, nkeys);
      if (cmp == 0) {
        lo = mid, found = 1;
        break;
      }
      if (cmp < 0)
        lo = mid + 1;
      else
        hi = mid;
    }
    if (!found) {
      if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 16;
        influxql_tagset *p = realloc(out->t, cap * sizeof *p);
        if (!p) {
          rc = PL_ENOMEM;
          break;
        }
        out->t = p;
        out->cap = cap;
      }
      memmove(out->t + lo + 1, out->t + lo, (out->n - lo) * sizeof *out->t);
      out->n++;
      influxql_tagset *ts = &out->t[lo];
      memset(ts, 0, sizeof *ts);
      ts->values = influxql__alloc(x->arena, (nkeys ? nkeys : 1) * sizeof *ts->values);
      if (!ts->values) {
        rc = PL_ENOMEM;
        break;
      }
      memcpy(ts->values, vals, nkeys * sizeof *vals);
    }
    influxql_tagset *ts = &out->t[lo];
    if (ts->n == ts->cap) {
      size_t cap = ts->cap ? ts->cap * 2 : 4;
      influxql_group **p = realloc(ts->g, cap * sizeof *p);
      int *mt = p ? realloc(ts->match, cap * sizeof *mt) : NULL;
      if (p)
        ts->g = p;
      if (!p || !mt) {
        rc = PL_ENOMEM;
        break;
      }
      ts->match = mt;
      ts->cap = cap;
    }
    ts->g[ts->n] = g;
    ts->match[ts->n++] = t;
  }
  free(vals);
  if (rc < 0)
    influxql__tagsets_free(out);
  return rc;
}
