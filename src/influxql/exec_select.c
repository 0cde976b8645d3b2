/* SELECT: resolves FROM into measurements and groups (running subqueries first, whose series
 * become virtual groups), classifies the field list (raw, aggregate, transformations over raw
 * points, a lone selector with auxiliary fields), names the columns, and runs each tag set of
 * each measurement: raw queries here, aggregates in exec_agg.c, transformations over raw points
 * in exec_transform.c. */
#include "influxql/influxql_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- sources and subqueries ---- */

static void source_set_free(influxql_source_set *ss) {
  free(ss->ms);
  influxql__catalog_free(&ss->cat);
  free(ss->virt_groups);
  for (size_t i = 0; i < ss->nsub; i++)
    influxql_result_free(&ss->sub[i]);
  free(ss->sub);
  memset(ss, 0, sizeof *ss);
}

static tsdb_type value_type(const influxql_series *s, size_t column) {
  for (size_t k = 0; k < s->nrows; k++) {
    const influxql_value *v = &s->values[k * s->ncolumns + column];
    switch (v->kind) {
    case INFLUXQL_V_INT: return TSDB_INT;
    case INFLUXQL_V_STRING: return TSDB_STRING;
    case INFLUXQL_V_BOOL: return TSDB_BOOL;
    case INFLUXQL_V_FLOAT: return TSDB_FLOAT;
    default: break;
    }
  }
  return TSDB_FLOAT;
}

/* Resolves FROM into measurements with their groups (subqueries run here). */
static int resolve_sources(influxql_exec_ctx *x, const influxql_select *s, int64_t ns,
                           const influxql_time_range *range, influxql_source_set *ss) {
  memset(ss, 0, sizeof *ss);
  int rc = 0;
  influxql_catalog all = {0};
  int loaded = 0;
  int64_t src_ns = ns;
  for (size_t i = 0; i < s->nsources && rc == 0; i++) {
    const influxql_source *src = &s->sources[i];
    if (src->subquery) {
      influxql_result *p = realloc(ss->sub, (ss->nsub + 1) * sizeof *p);
      if (!p) {
        rc = PL_ENOMEM;
        break;
      }
      ss->sub = p;
      influxql_result *r = &ss->sub[ss->nsub++];
      influxql_result_init(r, 0);
      rc = influxql__select_run(x, src->subquery, ns, range, r);
      if (rc < 0)
        break;
      if (r->error) {
        rc = influxql__stmt_err(x, "%s", r->error);
        break;
      }
      for (size_t k = 0; k < r->nseries && rc == 0; k++) {
        const influxql_series *se = r->series[k];
        influxql_group *g = influxql__alloc(x->arena, sizeof *g);
        if (!g) {
          rc = PL_ENOMEM;
          break;
        }
        g->measurement = se->name ? se->name : "";
        g->ntags = se->ntags;
        g->tags = influxql__alloc(x->arena, (se->ntags ? se->ntags : 1) * sizeof *g->tags);
        g->nfields = se->ncolumns ? se->ncolumns - 1 : 0;
        g->fields = influxql__alloc(x->arena, (g->nfields ? g->nfields : 1) * sizeof *g->fields);
        g->types = influxql__alloc(x->arena, (g->nfields ? g->nfields : 1) * sizeof *g->types);
        if (!g->tags || !g->fields || !g->types) {
          rc = PL_ENOMEM;
          break;
        }
        for (size_t t = 0; t < se->ntags; t++)
          g->tags[t].key = se->tags[t].key, g->tags[t].value = se->tags[t].value;
        for (size_t a = 1; a < g->ntags; a++)
          for (size_t b = a; b > 0 && strcmp(g->tags[b - 1].key, g->tags[b].key) > 0; b--) {
            influxql_group_tag tmp = g->tags[b];
            g->tags[b] = g->tags[b - 1];
            g->tags[b - 1] = tmp;
          }
        for (size_t c = 1; c < se->ncolumns; c++) {
          g->fields[c - 1] = se->columns[c];
          g->types[c - 1] = value_type(se, c);
        }
        g->virt = se;
        g->first_ts = se->nrows ? se->values[0].v.i : 0;
        g->last_ts = se->nrows ? se->values[(se->nrows - 1) * se->ncolumns].v.i : 0;
        if (g->first_ts > g->last_ts) {
          int64_t t = g->first_ts;
          g->first_ts = g->last_ts;
          g->last_ts = t;
        }
        INFLUXQL_VEC_PUSH(ss->cat.g, ss->cat.n, ss->cat.cap, g, rc);
      }
      continue;
    }
    if (src->db && x->o->db_name && strcmp(src->db, x->o->db_name) != 0) {
      if (!x->o->resolve_db) {
        rc = influxql__stmt_err(x, "database not found: %s", src->db);
        break;
      }
      int64_t other;
      int r = x->o->resolve_db(x->o->resolve_ctx, src->db, &other);
      if (r == PL_ENOTFOUND) {
        rc = influxql__stmt_err(x, "database not found: %s", src->db);
        break;
      }
      if (r < 0) {
        rc = r;
        break;
      }
      if (loaded && other != src_ns) {
        rc = influxql__stmt_err(x, "a statement can read one database only");
        break;
      }
      src_ns = other;
    }
    if (!loaded) {
      if ((rc = influxql__catalog_load(x, src_ns, NULL, &all)) < 0)
        break;
      loaded = 1;
    }
    for (size_t k = 0; k < all.n && rc == 0; k++) {
      influxql_group *g = all.g[k];
      if (src->regex) {
        const regex_t *re = influxql__regex_get(x, src, src->regex);
        if (!influxql__regex_match(re, g->measurement))
          continue;
      } else if (!src->name || strcmp(src->name, g->measurement) != 0) {
        continue;
      }
      if (g->picked)
        continue;
      g->picked = 1;
      INFLUXQL_VEC_PUSH(ss->cat.g, ss->cat.n, ss->cat.cap, g, rc);
    }
  }
  influxql__catalog_free(&all);
  if (rc)
    return rc;
  ss->ns = src_ns;
  influxql__sort(ss->cat.g, ss->cat.n, sizeof *ss->cat.g, influxql__cmp_group);
  return influxql__measures_from(x, &ss->cat, &ss->ms, &ss->n);
}

/* ---- raw SELECT ---- */

typedef struct rawcol {
  influxql_col *c;
  const char *name;
} rawcol;

static influxql_value raw_eval(const influxql_col *c, const influxql_group *g,
                               const influxql_meas *m, const char **fnames,
                               const influxql_value *fvals, size_t nf) {
  influxql_value v = {0};
  switch (c->kind) {
  case INFLUXQL_COL_LIT: return c->lit;
  case INFLUXQL_COL_FIELD:
  case INFLUXQL_COL_TAG: {
    if (c->kind == INFLUXQL_COL_FIELD && influxql__meas_field(m, c->name) >= 0) {
      for (size_t i = 0; i < nf; i++)
        if (strcmp(fnames[i], c->name) == 0)
          return fvals[i];
      return v;
    }
    /* a tag (or a name that is no field of the measurement) */
    const char *t = influxql__tag_value(g, c->name);
    if (!t)
      return v;
    v.kind = INFLUXQL_V_STRING;
    v.v.s.p = t;
    v.v.s.len = strlen(t);
    return v;
  }
  case INFLUXQL_COL_BIN:
    return influxql__binop(c->op, raw_eval(c->l, g, m, fnames, fvals, nf),
                           raw_eval(c->r, g, m, fnames, fvals, nf));
  default: return v;
  }
}

/* Whether the column reads a field (a row needs one such non-null value to exist). */
static int col_reads_field(const influxql_col *c, const influxql_meas *m) {
  switch (c->kind) {
  case INFLUXQL_COL_FIELD: return influxql__meas_field(m, c->name) >= 0;
  case INFLUXQL_COL_BIN: return col_reads_field(c->l, m) || col_reads_field(c->r, m);
  default: return 0;
  }
}

static int col_fields(influxql_exec_ctx *x, const influxql_col *c, const influxql_meas *m,
                      const char ***names, size_t *n, size_t *cap) {
  int rc = 0;
  if (!c)
    return 0;
  if (c->kind == INFLUXQL_COL_FIELD && influxql__meas_field(m, c->name) >= 0) {
    for (size_t i = 0; i < *n; i++)
      if (strcmp((*names)[i], c->name) == 0)
        return 0;
    INFLUXQL_VEC_PUSH(*names, *n, *cap, c->name, rc);
    return rc;
  }
  if (c->kind == INFLUXQL_COL_BIN || c->kind == INFLUXQL_COL_TRANSFORM) {
    if ((rc = col_fields(x, c->l, m, names, n, cap)))
      return rc;
    return col_fields(x, c->r, m, names, n, cap);
  }
  return 0;
}

/* String values point into the engine's buffers, which the next read reuses: copy them. */
static int stabilize_strings(influxql_exec_ctx *x, influxql_value *vals, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (vals[i].kind == INFLUXQL_V_STRING) {
      const char *p =
          influxql__strndup(x->arena, vals[i].v.s.p ? vals[i].v.s.p : "", vals[i].v.s.len);
      if (!p)
        return PL_ENOMEM;
      vals[i].v.s.p = p;
    }
  return 0;
}

/* Reads the rows of one group for a raw query: all of [range], or for a LIMIT without a field
 * condition just enough of the newest (DESC) or oldest rows, widening a window from the group's
 * last (or first) point so that "the last point of every device" does not read everything. */
static int raw_group_rows(influxql_select_ctx *sc, const influxql_group *g, influxql_group_rows *gr,
                          size_t need, int desc, int *window_used) {
  influxql_exec_ctx *x = sc->x;
  int64_t lo = sc->range.min, hi = sc->range.max;
  if (g->first_ts > lo)
    lo = g->first_ts;
  if (g->last_ts < hi && !g->virt)
    hi = g->last_ts;
  *window_used = 0;
  if (!need || g->virt || lo > hi)
    return influxql__group_rows_read(x, sc->ns, g, gr, sc->range.min, sc->range.max);
  int64_t w = 3600LL * 1000000000;
  for (;;) {
    int64_t a = lo, b = hi;
    if (desc && (uint64_t)(hi - lo) > (uint64_t)w)
      a = hi - w;
    if (!desc && (uint64_t)(hi - lo) > (uint64_t)w)
      b = lo + w;
    int rc = influxql__group_rows_read(x, sc->ns, g, gr, a, b);
    if (rc)
      return rc;
    *window_used = 1;
    if ((a == lo && b == hi) || influxql__group_rows_count(gr) >= need)
      return 0;
    if (w > INT64_MAX / 4)
      w = INT64_MAX;
    else
      w *= 4;
  }
}

static int run_raw_tagset(influxql_select_ctx *sc, const influxql_meas *m, influxql_tagset *ts,
                          const char **keys, size_t nkeys, rawcol *rc_cols, size_t ncols,
                          const char *const *colnames) {
  influxql_exec_ctx *x = sc->x;
  const influxql_select *s = sc->s;
  /* fields to read: those of the columns and of the condition */
  const char **names = NULL;
  size_t nn = 0, cap = 0;
  int rc = 0;
  for (size_t c = 0; c < ncols && rc == 0; c++)
    rc = col_fields(x, rc_cols[c].c, m, &names, &nn, &cap);
  int any_dep = 0;
  for (size_t i = 0; i < ts->n; i++)
    any_dep |= ts->match[i] < 0;
  if (rc == 0 && any_dep)
    rc = influxql__cond_fields(x, sc->cond, m, &names, &nn, &cap);
  if (rc < 0) {
    free(names);
    return rc;
  }
  size_t stride = ncols + 1;
  influxql_rowbuf rb = {0};
  rb.stride = stride;
  influxql_group_rows gr;
  if ((rc = influxql__group_rows_init(&gr, nn, names)) < 0) {
    free(names);
    return rc;
  }
  influxql_value *fv = calloc(nn ? nn : 1, sizeof *fv), *row = calloc(stride, sizeof *row);
  if (!fv || !row)
    rc = PL_ENOMEM;
  size_t need = s->limit && !any_dep ? (size_t)(s->limit + s->offset) : 0;
  for (size_t gi = 0; gi < ts->n && rc == 0; gi++) {
    const influxql_group *g = ts->g[gi];
    int windowed;
    if ((rc = raw_group_rows(sc, g, &gr, need, s->order_desc, &windowed)))
      break;
    int64_t t;
    size_t kept = 0;
    /* with a window read for DESC, only the newest `need` rows of this group matter */
    size_t total = windowed && s->order_desc ? influxql__group_rows_count(&gr) : 0, seen = 0;
    while (rc == 0 && influxql__group_rows_next(&gr, &t, fv)) {
      seen++;
      if (total && total - seen + 1 > need)
        continue;
      if (t < sc->range.min || t > sc->range.max)
        continue;
      if (ts->match[gi] < 0) {
        influxql_cond_ctx c = {x, g, m, names, fv, nn, t};
        if (influxql__cond_truth(&c, sc->cond) != 1)
          continue;
      }
      int has = 0;
      row[0].kind = INFLUXQL_V_TIME;
      row[0].v.i = t;
      for (size_t c = 0; c < ncols; c++) {
        row[c + 1] = raw_eval(rc_cols[c].c, g, m, names, fv, nn);
        if (row[c + 1].kind != INFLUXQL_V_NULL && col_reads_field(rc_cols[c].c, m))
          has = 1;
      }
      if (!has)
        continue;
      if ((rc = stabilize_strings(x, row + 1, ncols)) < 0)
        break;
      if (x->rows + rb.n >= INFLUXQL_ROWS_MAX) {
        rc = influxql__stmt_err(
            x,
            "the statement returns more than %zu rows (the limit); narrow its time range, add "
            "conditions or LIMIT",
            INFLUXQL_ROWS_MAX);
        break;
      }
      if ((rc = influxql__rowbuf_add(&rb, t, gi, row)) < 0)
        break;
      if (windowed && !s->order_desc && ++kept >= need)
        break;
    }
  }
  if (rc == 0)
    rc = influxql__rowbuf_sort(&rb);
  if (rc == 0 && s->order_desc)
    influxql__reverse_rows(rb.v, rb.n, stride);
  if (rc == 0)
    rc =
        influxql__emit_series(x, m->name, keys, ts->values, nkeys, colnames, stride, rb.v, rb.n, s);
  free(fv);
  free(row);
  influxql__group_rows_free(&gr);
  free(names);
  influxql__rowbuf_free(&rb);
  return rc;
}

/* ---- the statement ---- */

int influxql__select_run(influxql_exec_ctx *x, const influxql_select *s, int64_t ns,
                         const influxql_time_range *outer, influxql_result *into) {
  influxql_result *saved = x->res;
  x->res = into;
  int rc = 0;
  influxql_select_ctx sc = {0};
  sc.x = x;
  sc.s = s;
  sc.ns = ns;
  influxql_plan p = {0};
  p.s = s;
  influxql_source_set ss = {0};
  influxql_field_out *fo = NULL;
  size_t nfo = 0;
  const char **colnames = NULL;
  influxql_tz *tz = NULL;

  if (s->into) {
    rc = influxql__stmt_err(x, "SELECT INTO is not supported by Plateau");
    goto done;
  }
  influxql__range_init(&sc.range);
  if ((rc = influxql__split_time(x, s->cond, &sc.range, &sc.cond)))
    goto done;
  if (outer) {
    if (outer->has_min)
      influxql__range_min(&sc.range, outer->min);
    if (outer->has_max)
      influxql__range_max(&sc.range, outer->max);
  }
  if ((rc = influxql__parse_dims(x, s, &sc.d)))
    goto done;
  if (s->tz) {
    int r = influxql__tz_load(s->tz, &tz);
    if (r == PL_ENOTFOUND) {
      rc = influxql__stmt_err(x, "unable to find time zone %s", s->tz);
      goto done;
    }
    if (r < 0) {
      rc = r;
      goto done;
    }
  }
  /* classify the fields */
  int has_all = 0, n_calls = 0, n_selectors = 0;
  for (size_t i = 0; i < s->nfields; i++) {
    int h = 0;
    const influxql_expr *e = s->fields[i].expr;
    if (e->kind == INFLUXQL_EXPR_VARREF && strcasecmp(e->str, "time") == 0)
      continue;
    influxql_col *tmp;
    influxql_plan probe = {0};
    if ((rc = influxql__build_col(x, &probe, e, &tmp, &h))) {
      free(probe.aggs);
      goto done;
    }
    free(probe.aggs);
    has_all |= h;
    n_calls += influxql__count_calls(e, &n_selectors);
  }
  int aux_ok = 0;
  if ((has_all & INFLUXQL_HAS_AGG) && (has_all & INFLUXQL_HAS_RAW) &&
      !(has_all & (INFLUXQL_HAS_TRANSFORM | INFLUXQL_HAS_WILDCARD_AGG)) && n_calls == 1 &&
      n_selectors == 1) {
    /* a lone selector may carry fields and tags of the point it selects */
    aux_ok = 1;
    for (size_t i = 0; i < s->nfields && aux_ok; i++) {
      const influxql_expr *e = s->fields[i].expr;
      while (e->kind == INFLUXQL_EXPR_PAREN)
        e = e->lhs;
      if (e->kind == INFLUXQL_EXPR_CALL)
        aux_ok = influxql__agg_func(e->str) != INFLUXQL_FN_PERCENTILE;
      else
        aux_ok = e->kind == INFLUXQL_EXPR_VARREF || e->kind == INFLUXQL_EXPR_WILDCARD;
    }
  }
  if ((has_all & (INFLUXQL_HAS_AGG | INFLUXQL_HAS_RAW_TRANSFORM)) && (has_all & INFLUXQL_HAS_RAW) &&
      !aux_ok) {
    rc = influxql__stmt_err(x, "mixing aggregate and non-aggregate queries is not supported");
    goto done;
  }
  if ((has_all & INFLUXQL_HAS_AGG) && (has_all & INFLUXQL_HAS_RAW_TRANSFORM)) {
    rc = influxql__stmt_err(x, "mixing aggregate and non-aggregate queries is not supported");
    goto done;
  }
  p.aggregate = (has_all & INFLUXQL_HAS_AGG) != 0;
  p.raw_transform = (has_all & INFLUXQL_HAS_RAW_TRANSFORM) != 0;
  if (sc.d.has_time && !p.aggregate) {
    rc = influxql__stmt_err(x, p.raw_transform
                                   ? "aggregate function required inside the call to derivative"
                                   : "GROUP BY requires at least one aggregate function");
    goto done;
  }
  if (p.aggregate && (has_all & INFLUXQL_HAS_TRANSFORM) && !sc.d.has_time) {
    for (size_t i = 0; i < s->nfields; i++)
      if (s->fields[i].expr->kind == INFLUXQL_EXPR_CALL &&
          influxql__transform_of(s->fields[i].expr->str)) {
        rc = influxql__stmt_err(x, "%s aggregate requires a GROUP BY interval",
                                s->fields[i].expr->str);
        goto done;
      }
    rc = influxql__stmt_err(x, "aggregate transformations require a GROUP BY interval");
    goto done;
  }
  if ((rc = resolve_sources(x, s, ns, &sc.range, &ss)))
    goto done;
  sc.ns = ss.ns;
  if ((rc = influxql__raw_columns(x, &p, s, &ss, &sc.d, &fo, &nfo)))
    goto done;
  if (!p.aggregate && !p.raw_transform) {
    int any_field = 0;
    for (size_t i = 0; i < nfo; i++)
      for (size_t mi = 0; mi < ss.n && !any_field; mi++)
        any_field |= col_reads_field(fo[i].c, &ss.ms[mi]);
    if (!nfo) {
      rc = influxql__stmt_err(x, "statement must have at least one field in select clause");
      goto done;
    }
    (void)any_field;
  }
  p.ncols = nfo;
  p.cols = influxql__alloc(x->arena, (nfo ? nfo : 1) * sizeof *p.cols);
  colnames = influxql__alloc(x->arena, (nfo + 1) * sizeof *colnames);
  const char **given = influxql__alloc(x->arena, (nfo ? nfo : 1) * sizeof *given);
  int *aliased = influxql__alloc(x->arena, (nfo ? nfo : 1) * sizeof *aliased);
  if (!p.cols || !colnames || !given || !aliased) {
    rc = PL_ENOMEM;
    goto done;
  }
  for (size_t i = 0; i < nfo; i++)
    p.cols[i] = fo[i].c, given[i] = fo[i].name, aliased[i] = fo[i].aliased;
  colnames[0] = "time";
  for (size_t i = 0; i < s->nfields; i++) {
    const influxql_expr *e = s->fields[i].expr;
    if (e->kind == INFLUXQL_EXPR_VARREF && strcasecmp(e->str, "time") == 0 && s->fields[i].alias)
      colnames[0] = s->fields[i].alias;
  }
  if ((rc = influxql__name_columns(x, given, aliased, nfo, colnames + 1)))
    goto done;
  if (aux_ok) {
    p.aux = influxql__alloc(x->arena, (nfo ? nfo : 1) * sizeof *p.aux);
    if (!p.aux) {
      rc = PL_ENOMEM;
      goto done;
    }
    for (size_t i = 0; i < nfo; i++)
      if (p.cols[i]->kind == INFLUXQL_COL_FIELD || p.cols[i]->kind == INFLUXQL_COL_TAG) {
        p.cols[i]->agg = p.naux;
        p.aux[p.naux++] = p.cols[i];
      }
  }
  /* each plan column reuses the aggregate table built by influxql__build_col through
   * influxql__raw_columns */
  sc.p = &p;

  /* time range defaults */
  if (p.aggregate && sc.d.has_time && !sc.range.has_max)
    sc.range.max = x->o->now_ns;
  if (p.aggregate && sc.d.has_time && !sc.range.has_min) {
    int64_t lo = INFLUXQL_MAX_TIME;
    for (size_t mi = 0; mi < ss.n; mi++)
      for (size_t gi = 0; gi < ss.ms[mi].n; gi++)
        if (ss.ms[mi].g[gi]->first_ts < lo)
          lo = ss.ms[mi].g[gi]->first_ts;
    sc.range.min = lo;
  }
  into->tz = tz;
  tz = NULL;
  sc.tz = into->tz;

  int single_selector = p.aggregate && !sc.d.has_time && n_calls == 1 && n_selectors == 1;
  /* InfluxDB starts a transformation's buckets early so that the first bucket shown has one:
   * one interval for derivative and difference, N-1 for moving_average. */
  int64_t ext = 0;
  for (size_t i = 0; i < p.ncols && sc.d.has_time; i++) {
    int64_t e = influxql__transform_extension(p.cols[i]);
    if (e > ext)
      ext = e;
  }
  for (size_t mi = 0; mi < ss.n && rc == 0; mi++) {
    influxql_meas *m = &ss.ms[mi];
    const char **keys;
    size_t nkeys;
    if ((rc = influxql__dim_keys(x, &sc.d, m, &keys, &nkeys)))
      break;
    influxql_tagsets tsets;
    if ((rc = influxql__make_tagsets(x, m, sc.cond, keys, nkeys, &tsets)))
      break;
    size_t from = (size_t)s->soffset, to = tsets.n;
    if (s->slimit && from + (size_t)s->slimit < to)
      to = from + (size_t)s->slimit;
    if (p.aggregate) {
      rc = influxql__run_agg_tagsets(&sc, m, &tsets, from, to, keys, nkeys, colnames,
                                     single_selector, ext);
    } else if (p.raw_transform) {
      for (size_t t = from; t < to && rc == 0; t++)
        rc = influxql__run_raw_transform_tagset(
            &sc, m, &tsets.t[s->order_desc ? to - 1 - (t - from) : t], keys, nkeys, colnames);
    } else {
      rawcol *rcs = malloc((nfo ? nfo : 1) * sizeof *rcs);
      if (!rcs)
        rc = PL_ENOMEM;
      for (size_t i = 0; i < nfo && rcs; i++)
        rcs[i].c = p.cols[i], rcs[i].name = colnames[i + 1];
      for (size_t t = from; t < to && rc == 0; t++)
        rc = run_raw_tagset(&sc, m, &tsets.t[s->order_desc ? to - 1 - (t - from) : t], keys, nkeys,
                            rcs, nfo, colnames);
      free(rcs);
    }
    influxql__tagsets_free(&tsets);
  }
done:
  influxql__tz_free(tz);
  free(fo);
  free(p.aggs);
  source_set_free(&ss);
  x->res = saved;
  return rc;
}
