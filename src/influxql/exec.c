/* The InfluxQL executor: runs one parsed statement against the time-series engine.
 *
 * This file holds the statement's context (errors, limits, regexes), the dispatch by statement
 * kind (influxql_exec) and the statements answered from the catalogue alone: SHOW
 * MEASUREMENTS/TAG KEYS/TAG VALUES/FIELD KEYS/SERIES, DROP SERIES, DELETE and DROP MEASUREMENT.
 * SELECT is exec_select.c's; influxql_int.h lists the executor's other files and what they share.
 *
 * Catalogue. The groups of a namespace (tsdb_groups) are copied once per statement: measurement,
 * sorted tags, fields and their types, time span. A measurement's fields and tag keys are the
 * union over its groups. A name in a query is a field when some group of the measurement has
 * a field of that name, else a tag (`::tag` / `::field` decide explicitly), as in InfluxDB.
 *
 * WHERE. Time comparisons joined by AND become an inclusive [tmin, tmax]; the rest is evaluated
 * per group with tags known and fields unknown (three-valued: a group is in, out, or "depends on
 * its points"), and per point only for the groups that depend on them. Regexes are POSIX
 * extended ones (see influxql__regex_compile for the RE2 constructs translated).
 *
 * SELECT. Output series are the (measurement, GROUP BY tag values) sets, ordered by measurement
 * and tag values. Raw queries read the fields of every group of a set and join them by time.
 * Aggregates are computed per time bucket: when nothing needs the individual points (no field
 * condition, combinable functions), each group's buckets come from tsdb_aggregate, which answers
 * whole chunks from their statistics, and the groups of a set are combined bucket by bucket
 * (counts and sums add, means are weighted by counts, extremes and first/last compare);
 * otherwise the points are read and accumulated here. Fill applies to each aggregate, then the
 * transformations (derivative, difference, moving_average, cumulative_sum) run over the filled
 * buckets, then arithmetic. A row is emitted where some column has a point, as InfluxDB joins
 * its iterators by time. Subqueries run first; their series become virtual groups for the outer
 * statement.
 *
 * Limits: points read per statement (opts.points_max), output series (opts.series_max),
 * buckets (1,000,000). Each becomes a statement error, never a crash or an unbounded allocation.
 */
#include "influxql/influxql_int.h"

#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POINTS_MAX_DEFAULT ((size_t)50 * 1000 * 1000)
#define SERIES_MAX_DEFAULT ((size_t)100000)

/* ---- the statement's context ---- */

typedef struct influxql_regex_entry {
  const void *node;
  regex_t re;
} influxql_regex_entry;

int influxql__stmt_err(influxql_exec_ctx *x, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (!x->res->error && influxql_result_error(x->res, "%s", msg) < 0)
    return PL_ENOMEM;
  return INFLUXQL_STMT_ERR;
}

int influxql__count_points(influxql_exec_ctx *x, size_t n) {
  x->points += n;
  if (x->points > x->points_max)
    return influxql__stmt_err(
        x,
        "the statement reads more than %zu points (the limit); narrow its time range or conditions",
        x->points_max);
  return 0;
}

/* A double as an int64, saturating (a plain cast of an out-of-range value is undefined). */
int64_t influxql__double_to_int64(double f) {
  if (isnan(f))
    return 0;
  if (f >= 9223372036854775807.0)
    return INT64_MAX;
  if (f <= -9223372036854775808.0)
    return INT64_MIN;
  return (int64_t)f;
}

/* qsort, which must not be given a NULL base even for zero elements. */
void influxql__sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
  if (n > 1)
    qsort(base, n, size, cmp);
}

/* ---- regexes ---- */

const regex_t *influxql__regex_get(influxql_exec_ctx *x, const void *node, const char *pattern) {
  for (size_t i = 0; i < x->nrx; i++)
    if (x->rx[i].node == node)
      return &x->rx[i].re;
  influxql_regex_entry *p = realloc(x->rx, (x->nrx + 1) * sizeof *p);
  if (!p)
    return NULL;
  x->rx = p;
  char ebuf[200];
  if (influxql__regex_compile(pattern, &p[x->nrx].re, ebuf, sizeof ebuf) < 0)
    return NULL;
  p[x->nrx].node = node;
  return &p[x->nrx++].re;
}

int influxql__regex_match(const regex_t *re, const char *s) {
  return re && regexec(re, s, 0, NULL, 0) == 0;
}

/* ---- SHOW ---- */

static int source_matches(influxql_exec_ctx *x, const influxql_source *src, size_t n,
                          const char *measurement) {
  if (!n)
    return 1;
  for (size_t i = 0; i < n; i++) {
    if (src[i].regex) {
      if (influxql__regex_match(influxql__regex_get(x, &src[i], src[i].regex), measurement))
        return 1;
    } else if (src[i].name && strcmp(src[i].name, measurement) == 0) {
      return 1;
    }
  }
  return 0;
}

/* The namespace a SHOW statement reads (ON db, else the request's). */
static int stmt_ns(influxql_exec_ctx *x, const char *db, int64_t *ns) {
  *ns = x->o->ns;
  if (!db || (x->o->db_name && strcmp(db, x->o->db_name) == 0))
    return 0;
  if (!x->o->resolve_db)
    return influxql__stmt_err(x, "database not found: %s", db);
  int rc = x->o->resolve_db(x->o->resolve_ctx, db, ns);
  if (rc == PL_ENOTFOUND)
    return influxql__stmt_err(x, "database not found: %s", db);
  return rc;
}

/* The measurements of a SHOW statement's namespace, with the groups that pass its WHERE (a
 * condition on fields cannot be decided from the index: such groups are kept). */
static int show_prepare(influxql_exec_ctx *x, const influxql_stmt *st, influxql_catalog *cat,
                        influxql_meas **ms, size_t *n) {
  int64_t ns;
  int rc = stmt_ns(x, st->db, &ns);
  if (rc)
    return rc;
  influxql_time_range r;
  influxql__range_init(&r);
  influxql_expr *cond = NULL;
  if ((rc = influxql__split_time(x, st->cond, &r, &cond)))
    return rc;
  if ((rc = influxql__catalog_load(x, ns, NULL, cat)) < 0)
    return rc;
  size_t k = 0;
  for (size_t i = 0; i < cat->n; i++) {
    influxql_group *g = cat->g[i];
    if (!source_matches(x, st->sources, st->nsources, g->measurement))
      continue;
    if (st->with_measurement) {
      const influxql_source *w = st->with_measurement;
      if (w->regex ? !influxql__regex_match(influxql__regex_get(x, w, w->regex), g->measurement)
                   : (!w->name || strcmp(w->name, g->measurement) != 0))
        continue;
    }
    influxql_cond_ctx c = {x, g, NULL, NULL, NULL, 0, 0};
    if (cond && influxql__cond_truth(&c, cond) == 0)
      continue;
    cat->g[k++] = g;
  }
  cat->n = k;
  influxql__sort(cat->g, cat->n, sizeof *cat->g, influxql__cmp_group);
  return influxql__measures_from(x, cat, ms, n);
}

static int show_measurements(influxql_exec_ctx *x, const influxql_stmt *st) {
  influxql_catalog cat;
  influxql_meas *ms = NULL;
  size_t n = 0;
  int rc = show_prepare(x, st, &cat, &ms, &n);
  if (rc == 0 && n) {
    influxql_value *rows = malloc(n * sizeof *rows);
    if (!rows)
      rc = PL_ENOMEM;
    for (size_t i = 0; i < n && rows; i++) {
      rows[i].kind = INFLUXQL_V_STRING;
      rows[i].v.s.p = ms[i].name;
      rows[i].v.s.len = strlen(ms[i].name);
    }
    static const char *const cols[] = {"name"};
    influxql_select lim = {0};
    lim.limit = st->limit, lim.offset = st->offset;
    if (rows)
      rc = influxql__emit_series(x, "measurements", NULL, NULL, 0, cols, 1, rows, n, &lim);
    free(rows);
  }
  free(ms);
  influxql__catalog_free(&cat);
  return rc;
}

static int show_tag_keys(influxql_exec_ctx *x, const influxql_stmt *st) {
  influxql_catalog cat;
  influxql_meas *ms = NULL;
  size_t n = 0;
  int rc = show_prepare(x, st, &cat, &ms, &n);
  size_t from = 0, to = n; /* SLIMIT and SOFFSET parse but do nothing here, as in InfluxDB 1.6 */
  static const char *const cols[] = {"tagKey"};
  influxql_select lim = {0};
  lim.limit = st->limit, lim.offset = st->offset;
  for (size_t i = from; i < to && rc == 0; i++) {
    const influxql_meas *m = &ms[i];
    if (!m->ntagkeys)
      continue;
    influxql_value *rows = malloc(m->ntagkeys * sizeof *rows);
    if (!rows) {
      rc = PL_ENOMEM;
      break;
    }
    for (size_t k = 0; k < m->ntagkeys; k++) {
      rows[k].kind = INFLUXQL_V_STRING;
      rows[k].v.s.p = m->tagkeys[k];
      rows[k].v.s.len = strlen(m->tagkeys[k]);
    }
    rc = influxql__emit_series(x, m->name, NULL, NULL, 0, cols, 1, rows, m->ntagkeys, &lim);
    free(rows);
  }
  free(ms);
  influxql__catalog_free(&cat);
  return rc;
}

static int key_selected(influxql_exec_ctx *x, const influxql_stmt *st, const char *key) {
  if (st->key_regex) {
    int m = influxql__regex_match(influxql__regex_get(x, st, st->key_regex), key);
    return st->key_op == INFLUXQL_OP_NEQREGEX ? !m : m;
  }
  if (st->key_op == INFLUXQL_OP_NEQ)
    return st->nkeys && strcmp(st->keys[0], key) != 0;
  for (size_t i = 0; i < st->nkeys; i++)
    if (strcmp(st->keys[i], key) == 0)
      return 1;
  return 0;
}

typedef struct kv {
  const char *k, *v;
} kv;

static int cmp_kv(const void *a, const void *b) {
  const kv *x = a, *y = b;
  int c = strcmp(x->k, y->k);
  return c ? c : strcmp(x->v, y->v);
}

static int show_tag_values(influxql_exec_ctx *x, const influxql_stmt *st) {
  influxql_catalog cat;
  influxql_meas *ms = NULL;
  size_t n = 0;
  int rc = show_prepare(x, st, &cat, &ms, &n);
  static const char *const cols[] = {"key", "value"};
  influxql_select lim = {0};
  lim.limit = st->limit, lim.offset = st->offset;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const influxql_meas *m = &ms[i];
    kv *pairs = NULL;
    size_t np = 0, cap = 0;
    for (size_t g = 0; g < m->n && rc == 0; g++)
      for (size_t t = 0; t < m->g[g]->ntags && rc == 0; t++) {
        const influxql_group_tag *tg = &m->g[g]->tags[t];
        if (!key_selected(x, st, tg->key))
          continue;
        kv p = {tg->key, tg->value};
        INFLUXQL_VEC_PUSH(pairs, np, cap, p, rc);
      }
    if (rc == 0 && np) {
      influxql__sort(pairs, np, sizeof *pairs, cmp_kv);
      size_t u = 0;
      for (size_t k = 0; k < np; k++)
        if (!u || cmp_kv(&pairs[u - 1], &pairs[k]) != 0)
          pairs[u++] = pairs[k];
      influxql_value *rows = malloc(u * 2 * sizeof *rows);
      if (!rows)
        rc = PL_ENOMEM;
      for (size_t k = 0; k < u && rows; k++) {
        rows[2 * k].kind = rows[2 * k + 1].kind = INFLUXQL_V_STRING;
        rows[2 * k].v.s.p = pairs[k].k;
        rows[2 * k].v.s.len = strlen(pairs[k].k);
        rows[2 * k + 1].v.s.p = pairs[k].v;
        rows[2 * k + 1].v.s.len = strlen(pairs[k].v);
      }
      if (rows)
        rc = influxql__emit_series(x, m->name, NULL, NULL, 0, cols, 2, rows, u, &lim);
      free(rows);
    }
    free(pairs);
  }
  free(ms);
  influxql__catalog_free(&cat);
  return rc;
}

static const char *type_name(tsdb_type t) {
  switch (t) {
  case TSDB_FLOAT: return "float";
  case TSDB_INT: return "integer";
  case TSDB_BOOL: return "boolean";
  case TSDB_STRING: return "string";
  }
  return "float";
}

static int show_field_keys(influxql_exec_ctx *x, const influxql_stmt *st) {
  influxql_catalog cat;
  influxql_meas *ms = NULL;
  size_t n = 0;
  int rc = show_prepare(x, st, &cat, &ms, &n);
  static const char *const cols[] = {"fieldKey", "fieldType"};
  influxql_select lim = {0};
  lim.limit = st->limit, lim.offset = st->offset;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const influxql_meas *m = &ms[i];
    if (!m->nfields)
      continue;
    influxql_value *rows = malloc(m->nfields * 2 * sizeof *rows);
    if (!rows) {
      rc = PL_ENOMEM;
      break;
    }
    for (size_t k = 0; k < m->nfields; k++) {
      const char *tn = type_name(m->types[k]);
      rows[2 * k].kind = rows[2 * k + 1].kind = INFLUXQL_V_STRING;
      rows[2 * k].v.s.p = m->fields[k];
      rows[2 * k].v.s.len = strlen(m->fields[k]);
      rows[2 * k + 1].v.s.p = tn;
      rows[2 * k + 1].v.s.len = strlen(tn);
    }
    rc = influxql__emit_series(x, m->name, NULL, NULL, 0, cols, 2, rows, m->nfields, &lim);
    free(rows);
  }
  free(ms);
  influxql__catalog_free(&cat);
  return rc;
}

static int key_escape(pl_buf *b, const char *s, size_t n, int measurement) {
  int rc = 0;
  size_t run = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (s[i] == ',' || s[i] == ' ' || (!measurement && s[i] == '=')) {
      rc = pl_buf_append(b, s + run, i - run);
      if (rc == 0)
        rc = pl_buf_append_byte(b, '\\');
      run = i;
    }
  }
  return rc ? rc : pl_buf_append(b, s + run, n - run);
}

/* The series key "m,k=v,..." (line-protocol escaped), made when first needed (SHOW SERIES). */
static const char *group_key(influxql_exec_ctx *x, influxql_group *g) {
  if (g->key)
    return g->key;
  pl_buf key;
  pl_buf_init(&key, 0);
  int rc = key_escape(&key, g->measurement, strlen(g->measurement), 1);
  for (size_t i = 0; i < g->ntags && rc == 0; i++) {
    rc = pl_buf_append_byte(&key, ',');
    if (rc == 0)
      rc = key_escape(&key, g->tags[i].key, strlen(g->tags[i].key), 0);
    if (rc == 0)
      rc = pl_buf_append_byte(&key, '=');
    if (rc == 0)
      rc = key_escape(&key, g->tags[i].value, strlen(g->tags[i].value), 0);
  }
  if (rc == 0)
    g->key = influxql__strndup(x->arena, key.len ? (const char *)key.data : "", key.len);
  pl_buf_free(&key);
  return g->key;
}

static int show_series(influxql_exec_ctx *x, const influxql_stmt *st) {
  influxql_catalog cat;
  influxql_meas *ms = NULL;
  size_t n = 0;
  int rc = show_prepare(x, st, &cat, &ms, &n);
  if (rc == 0 && cat.n) {
    const char **keys = malloc(cat.n * sizeof *keys);
    influxql_value *rows = malloc(cat.n * sizeof *rows);
    if (!keys || !rows)
      rc = PL_ENOMEM;
    for (size_t i = 0; i < cat.n && rc == 0; i++)
      if (!(keys[i] = group_key(x, cat.g[i])))
        rc = PL_ENOMEM;
    if (rc == 0) {
      influxql__sort(keys, cat.n, sizeof *keys, influxql__cmp_str);
      for (size_t i = 0; i < cat.n; i++) {
        rows[i].kind = INFLUXQL_V_STRING;
        rows[i].v.s.p = keys[i];
        rows[i].v.s.len = strlen(keys[i]);
      }
      static const char *const cols[] = {"key"};
      influxql_select lim = {0};
      lim.limit = st->limit, lim.offset = st->offset;
      rc = influxql__emit_series(x, NULL, NULL, NULL, 0, cols, 1, rows, cat.n, &lim);
    }
    free(keys);
    free(rows);
  }
  free(ms);
  influxql__catalog_free(&cat);
  return rc;
}

/* ---- DROP SERIES, DELETE, DROP MEASUREMENT ---- */

static int refs_field(influxql_exec_ctx *x, const influxql_expr *e, const influxql_group *g) {
  if (!e)
    return 0;
  if (e->kind == INFLUXQL_EXPR_VARREF)
    return e->vtype == INFLUXQL_VT_FIELD ||
           (e->vtype == INFLUXQL_VT_ANY && influxql__group_field(g, e->str) >= 0);
  if (e->kind == INFLUXQL_EXPR_PAREN)
    return refs_field(x, e->lhs, g);
  if (e->kind == INFLUXQL_EXPR_BINARY)
    return refs_field(x, e->lhs, g) || refs_field(x, e->rhs, g);
  return 0;
}

static int delete_data(influxql_exec_ctx *x, const influxql_stmt *st) {
  influxql_time_range r;
  influxql__range_init(&r);
  influxql_expr *cond = NULL;
  int rc = influxql__split_time(x, st->cond, &r, &cond);
  if (rc)
    return rc;
  if (st->kind == INFLUXQL_STMT_DROP_SERIES && (r.has_min || r.has_max))
    return influxql__stmt_err(x, "DROP SERIES doesn't support time in WHERE clause");
  influxql_catalog cat;
  if ((rc = influxql__catalog_load(x, x->o->ns, NULL, &cat)) < 0)
    return rc;
  int64_t start = r.has_min ? r.min : INT64_MIN,
          end = r.has_max ? (r.max == INT64_MAX ? INT64_MAX : r.max + 1) : INT64_MAX;
  for (size_t i = 0; i < cat.n && rc == 0; i++) {
    const influxql_group *g = cat.g[i];
    if (!source_matches(x, st->sources, st->nsources, g->measurement))
      continue;
    if (refs_field(x, cond, g)) {
      rc = influxql__stmt_err(x, "fields not supported in WHERE clause during deletion");
      break;
    }
    influxql_cond_ctx c = {x, g, NULL, NULL, NULL, 0, 0};
    if (influxql__cond_truth(&c, cond) != 1)
      continue;
    pl_err err = {{0}};
    tsdb_str m = {g->measurement, strlen(g->measurement)};
    int64_t n = tsdb_delete(x->o->db, x->o->ns, m, g->id, start, end, &err);
    if (n < 0)
      rc = influxql__stmt_err(x, "delete failed: %s", err.msg[0] ? err.msg : pl_strerror((int)n));
  }
  influxql__catalog_free(&cat);
  return rc;
}

static int drop_measurement(influxql_exec_ctx *x, const influxql_stmt *st) {
  pl_err err = {{0}};
  tsdb_str m = {st->name, strlen(st->name)};
  int64_t n = tsdb_delete(x->o->db, x->o->ns, m, 0, INT64_MIN, INT64_MAX, &err);
  if (n < 0)
    return influxql__stmt_err(x, "drop failed: %s", err.msg[0] ? err.msg : pl_strerror((int)n));
  return 0;
}

/* ---- entry ---- */

int influxql_exec(const influxql_exec_opts *opts, const influxql_stmt *stmt, influxql_result *res) {
  influxql_exec_ctx x = {0};
  x.o = opts;
  x.res = res;
  x.points_max = opts->points_max ? opts->points_max : POINTS_MAX_DEFAULT;
  x.series_max = opts->series_max ? opts->series_max : SERIES_MAX_DEFAULT;
  x.arena = influxql__arena_new((size_t)1 << 32);
  if (!x.arena)
    return PL_ENOMEM;
  int rc;
  switch (stmt->kind) {
  case INFLUXQL_STMT_SELECT:
    rc = influxql__select_run(&x, stmt->select, opts->ns, NULL, res);
    break;
  case INFLUXQL_STMT_SHOW_MEASUREMENTS: rc = show_measurements(&x, stmt); break;
  case INFLUXQL_STMT_SHOW_TAG_KEYS: rc = show_tag_keys(&x, stmt); break;
  case INFLUXQL_STMT_SHOW_TAG_VALUES: rc = show_tag_values(&x, stmt); break;
  case INFLUXQL_STMT_SHOW_FIELD_KEYS: rc = show_field_keys(&x, stmt); break;
  case INFLUXQL_STMT_SHOW_SERIES: rc = show_series(&x, stmt); break;
  case INFLUXQL_STMT_DROP_SERIES:
  case INFLUXQL_STMT_DELETE: rc = delete_data(&x, stmt); break;
  case INFLUXQL_STMT_DROP_MEASUREMENT: rc = drop_measurement(&x, stmt); break;
  case INFLUXQL_STMT_UNSUPPORTED:
    rc = influxql__stmt_err(&x, "%s is not supported by Plateau",
                            stmt->text ? stmt->text : "this statement");
    break;
  default:
    rc = influxql__stmt_err(&x, "this statement is answered by the server, not the executor");
    break;
  }
  for (size_t i = 0; i < x.nrx; i++)
    regfree(&x.rx[i].re);
  free(x.rx);
  influxql__arena_free(x.arena);
  if (rc == INFLUXQL_STMT_ERR) {
    /* A statement error keeps no partial series. */
    for (size_t i = 0; i < res->nseries; i++) {
      free(res->series[i]->tags);
      free(res->series[i]->columns);
      free(res->series[i]->values);
      free(res->series[i]);
    }
    res->nseries = 0;
    return 0;
  }
  return rc;
}
