/* The InfluxQL executor: runs one parsed statement against the time-series engine.
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
#include <strings.h>

#define MIN_TIME (INT64_MIN + 2)
#define MAX_TIME (INT64_MAX - 1)
#define BUCKETS_MAX 1000000
#define POINTS_MAX_DEFAULT ((size_t)50 * 1000 * 1000)
#define SERIES_MAX_DEFAULT ((size_t)100000)
#define ROWS_MAX ((size_t)2000000) /* rows one statement returns (its JSON stays < ~200 MB) */
#define BUCKET_CELLS_MAX ((size_t)4000000) /* buckets x aggregates held at once for one series */
#define STMT_ERR 1                         /* a statement error has been recorded in the result */

/* ---- the statement's context ---- */

typedef struct xtag {
  const char *key, *value;
} xtag;

struct vseries;

typedef struct xgroup {
  uint64_t id; /* tsdb group id, 0 for a subquery series */
  const char *measurement;
  xtag *tags; /* sorted by key */
  size_t ntags;
  const char **fields;
  tsdb_type *types;
  size_t nfields;
  int64_t first_ts, last_ts;
  const char *key;             /* series key, line-protocol escaped */
  const influxql_series *virt; /* subquery series (time in column 0) */
  int picked;                  /* already among a statement's sources */
} xgroup;

typedef struct rx_entry {
  const void *node;
  regex_t re;
} rx_entry;

typedef struct exec {
  const influxql_exec_opts *o;
  influxql_result *res;
  influxql_arena *arena;
  size_t points, points_max, series_max, rows;
  rx_entry *rx;
  size_t nrx;
  pl_err ierr;
} exec;

static int stmt_err(exec *x, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static int stmt_err(exec *x, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (!x->res->error && influxql_result_error(x->res, "%s", msg) < 0)
    return PL_ENOMEM;
  return STMT_ERR;
}

static void *xalloc(exec *x, size_t n) {
  return influxql__alloc(x->arena, n);
}

static char *xstrndup(exec *x, const char *s, size_t n) {
  return influxql__strndup(x->arena, s, n);
}

static int count_points(exec *x, size_t n) {
  x->points += n;
  if (x->points > x->points_max)
    return stmt_err(
        x,
        "the statement reads more than %zu points (the limit); narrow its time range or conditions",
        x->points_max);
  return 0;
}

/* A double as an int64, saturating (a plain cast of an out-of-range value is undefined). */
static int64_t d2i(double f) {
  if (isnan(f))
    return 0;
  if (f >= 9223372036854775807.0)
    return INT64_MAX;
  if (f <= -9223372036854775808.0)
    return INT64_MIN;
  return (int64_t)f;
}

/* qsort, which must not be given a NULL base even for zero elements. */
static void xsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
  if (n > 1)
    qsort(base, n, size, cmp);
}

/* A growable array (malloc'd; the caller frees). */
#define VEC_PUSH(arr, n, cap, item, rcvar)                                                         \
  do {                                                                                             \
    if ((n) == (cap)) {                                                                            \
      size_t ncap_ = (cap) ? (cap)*2 : 16;                                                         \
      void *np_ = realloc((arr), ncap_ * sizeof *(arr));                                           \
      if (!np_) {                                                                                  \
        (rcvar) = PL_ENOMEM;                                                                       \
        break;                                                                                     \
      }                                                                                            \
      (arr) = np_;                                                                                 \
      (cap) = ncap_;                                                                               \
    }                                                                                              \
    (arr)[(n)++] = (item);                                                                         \
  } while (0)

/* ---- regexes ---- */

int influxql__regex_compile(const char *pattern, regex_t *re, char *errbuf, size_t errsz);

static const regex_t *rx_get(exec *x, const void *node, const char *pattern) {
  for (size_t i = 0; i < x->nrx; i++)
    if (x->rx[i].node == node)
      return &x->rx[i].re;
  rx_entry *p = realloc(x->rx, (x->nrx + 1) * sizeof *p);
  if (!p)
    return NULL;
  x->rx = p;
  char ebuf[200];
  if (influxql__regex_compile(pattern, &p[x->nrx].re, ebuf, sizeof ebuf) < 0)
    return NULL;
  p[x->nrx].node = node;
  return &p[x->nrx++].re;
}

static int rx_match(const regex_t *re, const char *s) {
  return re && regexec(re, s, 0, NULL, 0) == 0;
}

/* ---- catalogue ---- */

typedef struct catalog {
  xgroup **g;
  size_t n, cap;
} catalog;

static void catalog_free(catalog *c) {
  free(c->g);
  memset(c, 0, sizeof *c);
}

typedef struct load_ctx {
  exec *x;
  catalog *c;
  int rc;
} load_ctx;

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

static int load_cb(void *ctx, const tsdb_group_info *gi) {
  load_ctx *l = ctx;
  exec *x = l->x;
  xgroup *g = xalloc(x, sizeof *g);
  if (!g)
    return l->rc = PL_ENOMEM;
  g->id = gi->id;
  g->measurement = xstrndup(x, gi->measurement.p, gi->measurement.len);
  g->ntags = gi->ntags;
  g->tags = xalloc(x, (gi->ntags ? gi->ntags : 1) * sizeof *g->tags);
  g->nfields = gi->nfields;
  g->fields = xalloc(x, (gi->nfields ? gi->nfields : 1) * sizeof *g->fields);
  g->types = xalloc(x, (gi->nfields ? gi->nfields : 1) * sizeof *g->types);
  g->first_ts = gi->first_ts;
  g->last_ts = gi->last_ts;
  if (!g->measurement || !g->tags || !g->fields || !g->types)
    return l->rc = PL_ENOMEM;
  int rc = 0;
  for (size_t i = 0; i < gi->ntags && rc == 0; i++) {
    g->tags[i].key = xstrndup(x, gi->tags[i].key.p, gi->tags[i].key.len);
    g->tags[i].value = xstrndup(x, gi->tags[i].value.p, gi->tags[i].value.len);
    if (!g->tags[i].key || !g->tags[i].value)
      rc = PL_ENOMEM;
  }
  for (size_t i = 0; i < gi->nfields && rc == 0; i++) {
    g->fields[i] = xstrndup(x, gi->field_names[i].p, gi->field_names[i].len);
    g->types[i] = gi->field_types[i];
    if (!g->fields[i])
      rc = PL_ENOMEM;
  }
  if (rc < 0)
    return l->rc = rc;
  VEC_PUSH(l->c->g, l->c->n, l->c->cap, g, rc);
  return rc < 0 ? (l->rc = rc) : 0;
}

/* The series key "m,k=v,..." (line-protocol escaped), made when first needed (SHOW SERIES). */
static const char *group_key(exec *x, xgroup *g) {
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
    g->key = xstrndup(x, key.len ? (const char *)key.data : "", key.len);
  pl_buf_free(&key);
  return g->key;
}

/* Groups in series order: measurement, then tags (key, value) in turn; no key string needed. */
static int cmp_group_meas_key(const void *a, const void *b) {
  const xgroup *x = *(xgroup *const *)a, *y = *(xgroup *const *)b;
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
static int catalog_load(exec *x, int64_t ns, const char *m, catalog *c) {
  memset(c, 0, sizeof *c);
  load_ctx l = {x, c, 0};
  tsdb_str ms = {m, m ? strlen(m) : 0};
  int rc = tsdb_groups(x->o->db, ns, ms, load_cb, &l);
  if (l.rc < 0)
    rc = l.rc;
  if (rc < 0) {
    catalog_free(c);
    return rc;
  }
  size_t k = 0;
  for (size_t i = 0; i < c->n; i++)
    if (c->g[i]->nfields && !(c->g[i]->first_ts == 0 && c->g[i]->last_ts == 0))
      c->g[k++] = c->g[i];
  c->n = k;
  return 0;
}

static const char *tag_value(const xgroup *g, const char *key) {
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

static int group_field(const xgroup *g, const char *name) {
  for (size_t i = 0; i < g->nfields; i++)
    if (strcmp(g->fields[i], name) == 0)
      return (int)i;
  return -1;
}

/* A measurement's groups with the union of their fields (first type seen) and tag keys. */
typedef struct meas {
  const char *name;
  xgroup **g;
  size_t n;
  const char **fields;
  tsdb_type *types;
  size_t nfields;
  const char **tagkeys;
  size_t ntagkeys;
} meas;

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int meas_index(exec *x, meas *m) {
  size_t cf = 0, ct = 0;
  for (size_t i = 0; i < m->n; i++)
    cf += m->g[i]->nfields, ct += m->g[i]->ntags;
  m->fields = xalloc(x, (cf ? cf : 1) * sizeof *m->fields);
  m->types = xalloc(x, (cf ? cf : 1) * sizeof *m->types);
  m->tagkeys = xalloc(x, (ct ? ct : 1) * sizeof *m->tagkeys);
  if (!m->fields || !m->types || !m->tagkeys)
    return PL_ENOMEM;
  m->nfields = m->ntagkeys = 0;
  for (size_t i = 0; i < m->n; i++) {
    const xgroup *g = m->g[i];
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
  xsort(m->tagkeys, m->ntagkeys, sizeof *m->tagkeys, cmp_str);
  return 0;
}

static int meas_field(const meas *m, const char *name) {
  for (size_t i = 0; i < m->nfields; i++)
    if (strcmp(m->fields[i], name) == 0)
      return (int)i;
  return -1;
}

/* Splits a sorted catalogue into measurements. */
static int measures_from(exec *x, catalog *c, meas **out, size_t *n) {
  size_t cap = 0;
  meas *ms = NULL;
  *n = 0;
  int rc = 0;
  for (size_t i = 0; i < c->n && rc == 0;) {
    size_t j = i;
    while (j < c->n && strcmp(c->g[j]->measurement, c->g[i]->measurement) == 0)
      j++;
    meas m = {c->g[i]->measurement, c->g + i, j - i, NULL, NULL, 0, NULL, 0};
    VEC_PUSH(ms, *n, cap, m, rc);
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

/* ---- values used while evaluating conditions and expressions ---- */

enum { EV_NULL = 0, EV_FLOAT, EV_INT, EV_STR, EV_BOOL, EV_UNKNOWN, EV_REGEX };

typedef struct ev {
  int kind;
  int is_time; /* an instant (time, now(), their sums): strings compare as time literals */
  double f;
  int64_t i;
  const char *s;
  size_t len;
  int b;
  const influxql_expr *node; /* EV_REGEX */
} ev;

/* What conditions see of a point: the group's tags and, when known, its fields' values. */
typedef struct evctx {
  exec *x;
  const xgroup *g;
  const meas *m;
  const char *const *row_fields; /* names of the values in row */
  const influxql_value *row;     /* NULL: fields unknown */
  size_t nrow;
  int64_t ts; /* the point's time, with row */
} evctx;

static int is_field_name(const evctx *c, const influxql_expr *v) {
  if (v->vtype == INFLUXQL_VT_TAG)
    return 0;
  if (v->vtype != INFLUXQL_VT_ANY)
    return 1;
  return c->m ? meas_field(c->m, v->str) >= 0 : group_field(c->g, v->str) >= 0;
}

static ev ev_from_value(const influxql_value *v) {
  ev r = {0};
  switch (v->kind) {
  case INFLUXQL_V_FLOAT: r.kind = EV_FLOAT, r.f = v->v.f; break;
  case INFLUXQL_V_INT: r.kind = EV_INT, r.i = v->v.i, r.f = (double)v->v.i; break;
  case INFLUXQL_V_BOOL: r.kind = EV_BOOL, r.b = v->v.b; break;
  case INFLUXQL_V_STRING: r.kind = EV_STR, r.s = v->v.s.p, r.len = v->v.s.len; break;
  case INFLUXQL_V_TIME: r.kind = EV_INT, r.i = v->v.i, r.f = (double)v->v.i; break;
  default: r.kind = EV_NULL;
  }
  return r;
}

static ev eval(const evctx *c, const influxql_expr *e);
static int parse_time_literal(const char *s, int64_t *out);

/* A string beside an instant reads as a time literal ('2026-01-01T00:00:00Z'). */
static void as_time(ev *v) {
  if (v->kind != EV_STR)
    return;
  char buf[64];
  int64_t t;
  if (v->len >= sizeof buf)
    return;
  memcpy(buf, v->s, v->len);
  buf[v->len] = 0;
  if (parse_time_literal(buf, &t) < 0)
    return;
  v->kind = EV_INT, v->i = t, v->f = (double)t, v->is_time = 1;
}

static int ev_num(const ev *v) {
  return v->kind == EV_FLOAT || v->kind == EV_INT;
}

static ev ev_bool(int b) {
  ev r = {0};
  r.kind = EV_BOOL;
  r.b = b;
  return r;
}

static ev ev_unknown(void) {
  ev r = {0};
  r.kind = EV_UNKNOWN;
  return r;
}

static ev arith(influxql_op op, ev a, ev b) {
  ev r = {0};
  if (!ev_num(&a) || !ev_num(&b))
    return r;
  if (a.kind == EV_INT && b.kind == EV_INT && op != INFLUXQL_OP_DIV) {
    r.kind = EV_INT;
    uint64_t x = (uint64_t)a.i, y = (uint64_t)b.i;
    switch (op) {
    case INFLUXQL_OP_ADD: r.i = (int64_t)(x + y); break;
    case INFLUXQL_OP_SUB: r.i = (int64_t)(x - y); break;
    case INFLUXQL_OP_MUL: r.i = (int64_t)(x * y); break;
    case INFLUXQL_OP_MOD:
      if (b.i == 0 || (a.i == INT64_MIN && b.i == -1))
        r.i = 0;
      else
        r.i = a.i % b.i;
      break;
    case INFLUXQL_OP_BITAND: r.i = (int64_t)(x & y); break;
    case INFLUXQL_OP_BITOR: r.i = (int64_t)(x | y); break;
    case INFLUXQL_OP_BITXOR: r.i = (int64_t)(x ^ y); break;
    default: r.kind = EV_NULL;
    }
    r.f = (double)r.i;
    return r;
  }
  double x = a.kind == EV_INT ? (double)a.i : a.f, y = b.kind == EV_INT ? (double)b.i : b.f;
  r.kind = EV_FLOAT;
  switch (op) {
  case INFLUXQL_OP_ADD: r.f = x + y; break;
  case INFLUXQL_OP_SUB: r.f = x - y; break;
  case INFLUXQL_OP_MUL: r.f = x * y; break;
  case INFLUXQL_OP_DIV:
    /* InfluxDB divides by zero to zero */
    r.f = y == 0 ? 0 : x / y;
    break;
  case INFLUXQL_OP_MOD: r.f = y == 0 ? 0 : fmod(x, y); break;
  default: r.kind = EV_NULL;
  }
  return r;
}

static int str_cmp(const ev *a, const ev *b) {
  size_t n = a->len < b->len ? a->len : b->len;
  int c = n ? memcmp(a->s, b->s, n) : 0;
  return c ? c : (a->len < b->len ? -1 : a->len > b->len);
}

static ev compare(const evctx *c, influxql_op op, ev a, ev b) {
  if (a.kind == EV_UNKNOWN || b.kind == EV_UNKNOWN)
    return ev_unknown();
  if (a.is_time)
    as_time(&b);
  if (b.is_time)
    as_time(&a);
  if (op == INFLUXQL_OP_EQREGEX || op == INFLUXQL_OP_NEQREGEX) {
    if (b.kind != EV_REGEX || a.kind != EV_STR)
      return ev_bool(0);
    const regex_t *re = rx_get(c->x, b.node, b.node->str);
    char small[256];
    char *s = a.len < sizeof small ? small : malloc(a.len + 1);
    if (!s)
      return ev_bool(0);
    memcpy(s, a.s, a.len);
    s[a.len] = 0;
    int m = rx_match(re, s);
    if (s != small)
      free(s);
    return ev_bool(op == INFLUXQL_OP_EQREGEX ? m : !m);
  }
  int cmp;
  if (a.kind == EV_STR && b.kind == EV_STR) {
    cmp = str_cmp(&a, &b);
  } else if (ev_num(&a) && ev_num(&b)) {
    if (a.kind == EV_INT && b.kind == EV_INT)
      cmp = a.i < b.i ? -1 : a.i > b.i;
    else {
      double x = a.kind == EV_INT ? (double)a.i : a.f, y = b.kind == EV_INT ? (double)b.i : b.f;
      if (isnan(x) || isnan(y))
        return ev_bool(0);
      cmp = x < y ? -1 : x > y;
    }
  } else if (a.kind == EV_BOOL && b.kind == EV_BOOL) {
    if (op != INFLUXQL_OP_EQ && op != INFLUXQL_OP_NEQ)
      return ev_bool(0);
    cmp = a.b != b.b;
  } else {
    return ev_bool(0);
  }
  switch (op) {
  case INFLUXQL_OP_EQ: return ev_bool(cmp == 0);
  case INFLUXQL_OP_NEQ: return ev_bool(cmp != 0);
  case INFLUXQL_OP_LT: return ev_bool(cmp < 0);
  case INFLUXQL_OP_LTE: return ev_bool(cmp <= 0);
  case INFLUXQL_OP_GT: return ev_bool(cmp > 0);
  case INFLUXQL_OP_GTE: return ev_bool(cmp >= 0);
  default: return ev_bool(0);
  }
}

static ev eval(const evctx *c, const influxql_expr *e) {
  ev r = {0};
  if (!e)
    return ev_bool(1);
  switch (e->kind) {
  case INFLUXQL_EXPR_VARREF:
    if (strcasecmp(e->str, "time") == 0 && e->vtype == INFLUXQL_VT_ANY) {
      if (!c->row)
        return ev_unknown();
      r.kind = EV_INT, r.i = c->ts, r.f = (double)c->ts, r.is_time = 1;
      return r;
    }
    if (is_field_name(c, e)) {
      if (!c->row)
        return ev_unknown();
      for (size_t i = 0; i < c->nrow; i++)
        if (strcmp(c->row_fields[i], e->str) == 0)
          return ev_from_value(&c->row[i]);
      return r; /* null */
    } else {
      const char *v = tag_value(c->g, e->str);
      r.kind = EV_STR;
      r.s = v ? v : "";
      r.len = strlen(r.s);
      return r;
    }
  case INFLUXQL_EXPR_INTEGER: r.kind = EV_INT, r.i = e->i, r.f = (double)e->i; return r;
  case INFLUXQL_EXPR_UNSIGNED: r.kind = EV_FLOAT, r.f = (double)e->u; return r;
  case INFLUXQL_EXPR_NUMBER: r.kind = EV_FLOAT, r.f = e->f; return r;
  case INFLUXQL_EXPR_DURATION: r.kind = EV_INT, r.i = e->i, r.f = (double)e->i; return r;
  case INFLUXQL_EXPR_STRING: r.kind = EV_STR, r.s = e->str, r.len = e->len; return r;
  case INFLUXQL_EXPR_BOOL: return ev_bool(e->b);
  case INFLUXQL_EXPR_REGEX: r.kind = EV_REGEX, r.node = e; return r;
  case INFLUXQL_EXPR_PAREN: return eval(c, e->lhs);
  case INFLUXQL_EXPR_CALL:
    if (strcmp(e->str, "now") == 0 && e->nargs == 0) {
      r.kind = EV_INT, r.i = c->x->o->now_ns, r.f = (double)r.i, r.is_time = 1;
      return r;
    }
    return r;
  case INFLUXQL_EXPR_BINARY: {
    if (e->op == INFLUXQL_OP_AND || e->op == INFLUXQL_OP_OR) {
      ev a = eval(c, e->lhs);
      int at = a.kind == EV_BOOL ? a.b : a.kind == EV_UNKNOWN ? -1 : 0;
      if (e->op == INFLUXQL_OP_AND && at == 0)
        return ev_bool(0);
      if (e->op == INFLUXQL_OP_OR && at == 1)
        return ev_bool(1);
      ev b = eval(c, e->rhs);
      int bt = b.kind == EV_BOOL ? b.b : b.kind == EV_UNKNOWN ? -1 : 0;
      if (e->op == INFLUXQL_OP_AND) {
        if (bt == 0)
          return ev_bool(0);
        return at == 1 && bt == 1 ? ev_bool(1) : ev_unknown();
      }
      if (bt == 1)
        return ev_bool(1);
      return at == 0 && bt == 0 ? ev_bool(0) : ev_unknown();
    }
    ev a = eval(c, e->lhs), b = eval(c, e->rhs);
    switch (e->op) {
    case INFLUXQL_OP_ADD:
    case INFLUXQL_OP_SUB:
    case INFLUXQL_OP_MUL:
    case INFLUXQL_OP_DIV:
    case INFLUXQL_OP_MOD:
    case INFLUXQL_OP_BITAND:
    case INFLUXQL_OP_BITOR:
    case INFLUXQL_OP_BITXOR:
      if (a.kind == EV_UNKNOWN || b.kind == EV_UNKNOWN)
        return ev_unknown();
      if (e->op == INFLUXQL_OP_ADD || e->op == INFLUXQL_OP_SUB) {
        /* '2026-01-01T00:00:00Z' + 10m is an instant */
        if (a.kind == EV_STR && ev_num(&b))
          as_time(&a);
        if (a.is_time) {
          ev t = arith(e->op, a, b);
          t.is_time = 1;
          return t;
        }
      }
      return arith(e->op, a, b);
    default: return compare(c, e->op, a, b);
    }
  }
  default: return r;
  }
}

/* 1 true, 0 false, -1 depends on fields */
static int cond_truth(const evctx *c, const influxql_expr *cond) {
  if (!cond)
    return 1;
  ev v = eval(c, cond);
  if (v.kind == EV_UNKNOWN)
    return -1;
  return v.kind == EV_BOOL && v.b;
}

/* Field names a condition reads (those known as fields of m). */
static int cond_fields(exec *x, const influxql_expr *e, const meas *m, const char ***names,
                       size_t *n, size_t *cap) {
  if (!e)
    return 0;
  int rc = 0;
  switch (e->kind) {
  case INFLUXQL_EXPR_VARREF:
    if (e->vtype != INFLUXQL_VT_TAG &&
        (e->vtype != INFLUXQL_VT_ANY || meas_field(m, e->str) >= 0)) {
      for (size_t i = 0; i < *n; i++)
        if (strcmp((*names)[i], e->str) == 0)
          return 0;
      VEC_PUSH(*names, *n, *cap, e->str, rc);
    }
    return rc;
  case INFLUXQL_EXPR_PAREN: return cond_fields(x, e->lhs, m, names, n, cap);
  case INFLUXQL_EXPR_BINARY:
    rc = cond_fields(x, e->lhs, m, names, n, cap);
    return rc ? rc : cond_fields(x, e->rhs, m, names, n, cap);
  case INFLUXQL_EXPR_CALL:
    for (size_t i = 0; i < e->nargs && rc == 0; i++)
      rc = cond_fields(x, e->args[i], m, names, n, cap);
    return rc;
  default: return 0;
  }
}

/* ---- time conditions ---- */

static int is_time_ref(const influxql_expr *e) {
  return e && e->kind == INFLUXQL_EXPR_VARREF && strcasecmp(e->str, "time") == 0;
}

static int has_time_ref(const influxql_expr *e) {
  if (!e)
    return 0;
  if (is_time_ref(e))
    return 1;
  if (e->kind == INFLUXQL_EXPR_PAREN)
    return has_time_ref(e->lhs);
  if (e->kind == INFLUXQL_EXPR_BINARY)
    return has_time_ref(e->lhs) || has_time_ref(e->rhs);
  return 0;
}

static int days_from_civil(int64_t y, int m, int d, int64_t *out) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  *out = era * 146097 + doe - 719468;
  return 0;
}

static int digits(const char *s, int n, int *v) {
  *v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    *v = *v * 10 + (s[i] - '0');
  }
  return 0;
}

/* Time literals InfluxQL accepts in strings: RFC 3339 with optional fraction and zone,
 * "2006-01-02 15:04:05[.fraction]" (UTC) and "2006-01-02". */
static int parse_time_literal(const char *s, int64_t *out) {
  size_t n = strlen(s);
  int y, mo, d, h = 0, mi = 0, sec = 0;
  if (n < 10 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
      digits(s + 8, 2, &d))
    return -1;
  if (mo < 1 || mo > 12 || d < 1 || d > 31)
    return -1;
  size_t i = 10;
  int64_t frac = 0;
  int64_t offset_s = 0;
  if (i < n) {
    if (s[i] != 'T' && s[i] != ' ')
      return -1;
    int spaced = s[i] == ' ';
    i++;
    if (n < i + 8 || digits(s + i, 2, &h) || s[i + 2] != ':' || digits(s + i + 3, 2, &mi) ||
        s[i + 5] != ':' || digits(s + i + 6, 2, &sec))
      return -1;
    if (h > 23 || mi > 59 || sec > 59)
      return -1;
    i += 8;
    if (i < n && s[i] == '.') {
      i++;
      int nd = 0;
      while (i < n && s[i] >= '0' && s[i] <= '9') {
        if (nd < 9)
          frac = frac * 10 + (s[i] - '0');
        nd++, i++;
      }
      if (!nd)
        return -1;
      for (; nd < 9; nd++)
        frac *= 10;
    }
    if (spaced) {
      if (i != n)
        return -1;
    } else if (i < n && (s[i] == 'Z' || s[i] == 'z') && i + 1 == n) {
      i++;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
      int oh, om;
      if (digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om))
        return -1;
      offset_s = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
    } else {
      return -1;
    }
  }
  int64_t days;
  days_from_civil(y, mo, d, &days);
  __int128 t = ((__int128)days * 86400 + h * 3600 + mi * 60 + sec - offset_s) * 1000000000 + frac;
  if (t < INT64_MIN || t > INT64_MAX)
    return -1;
  *out = (int64_t)t;
  return 0;
}

/* A time operand: now(), a literal, or sums and differences of them with durations. */
static int eval_time(exec *x, const influxql_expr *e, int64_t *out) {
  switch (e->kind) {
  case INFLUXQL_EXPR_INTEGER:
  case INFLUXQL_EXPR_DURATION: *out = e->i; return 0;
  case INFLUXQL_EXPR_NUMBER:
    if (!(e->f > (double)INT64_MIN && e->f < (double)INT64_MAX))
      return stmt_err(x, "time out of range");
    *out = (int64_t)e->f;
    return 0;
  case INFLUXQL_EXPR_STRING:
    if (parse_time_literal(e->str, out) < 0)
      return stmt_err(x, "invalid operation: time and *influxql.StringLiteral are not compatible");
    return 0;
  case INFLUXQL_EXPR_CALL:
    if (strcmp(e->str, "now") == 0 && e->nargs == 0) {
      *out = x->o->now_ns;
      return 0;
    }
    return stmt_err(x, "invalid function call in time condition: %s()", e->str);
  case INFLUXQL_EXPR_PAREN: return eval_time(x, e->lhs, out);
  case INFLUXQL_EXPR_BINARY:
    if (e->op == INFLUXQL_OP_ADD || e->op == INFLUXQL_OP_SUB) {
      int64_t a, b;
      int rc = eval_time(x, e->lhs, &a);
      if (rc)
        return rc;
      if ((rc = eval_time(x, e->rhs, &b)))
        return rc;
      __int128 t = e->op == INFLUXQL_OP_ADD ? (__int128)a + b : (__int128)a - b;
      *out = t < MIN_TIME ? MIN_TIME : t > MAX_TIME ? MAX_TIME : (int64_t)t;
      return 0;
    }
    break;
  default: break;
  }
  pl_buf b;
  pl_buf_init(&b, 1024);
  influxql_expr_format(e, &b);
  int rc = stmt_err(x, "invalid time condition: %s", b.len ? pl_buf_cstr(&b) : "");
  pl_buf_free(&b);
  return rc;
}

typedef struct trange {
  int64_t min, max; /* inclusive */
  int has_min, has_max;
} trange;

static void range_init(trange *r) {
  r->min = MIN_TIME;
  r->max = MAX_TIME;
  r->has_min = r->has_max = 0;
}

static void range_min(trange *r, int64_t v) {
  if (v > r->min || !r->has_min)
    r->min = r->has_min && r->min > v ? r->min : v;
  r->has_min = 1;
}

static void range_max(trange *r, int64_t v) {
  if (v < r->max || !r->has_max)
    r->max = r->has_max && r->max < v ? r->max : v;
  r->has_max = 1;
}

/* Removes time comparisons from a condition (joined by AND) into r; *rest is what is left. */
static int split_time(exec *x, influxql_expr *e, trange *r, influxql_expr **rest) {
  *rest = NULL;
  if (!e)
    return 0;
  int rc;
  if (e->kind == INFLUXQL_EXPR_PAREN) {
    if (!has_time_ref(e->lhs)) {
      *rest = e;
      return 0;
    }
    return split_time(x, e->lhs, r, rest);
  }
  if (e->kind != INFLUXQL_EXPR_BINARY) {
    *rest = e;
    return 0;
  }
  if (e->op == INFLUXQL_OP_AND) {
    influxql_expr *l, *rr;
    if ((rc = split_time(x, e->lhs, r, &l)))
      return rc;
    if ((rc = split_time(x, e->rhs, r, &rr)))
      return rc;
    if (!l)
      *rest = rr;
    else if (!rr)
      *rest = l;
    else {
      influxql_expr *a = xalloc(x, sizeof *a);
      if (!a)
        return PL_ENOMEM;
      *a = *e;
      a->lhs = l;
      a->rhs = rr;
      *rest = a;
    }
    return 0;
  }
  if (e->op == INFLUXQL_OP_OR) {
    /* Time conditions under OR: the range read is the union of the branches' ranges, and the
     * whole expression (time comparisons included) is evaluated per point. */
    if (has_time_ref(e)) {
      trange a, b;
      influxql_expr *ra, *rb;
      range_init(&a);
      range_init(&b);
      if ((rc = split_time(x, e->lhs, &a, &ra)))
        return rc;
      if ((rc = split_time(x, e->rhs, &b, &rb)))
        return rc;
      if (a.has_min && b.has_min)
        range_min(r, a.min < b.min ? a.min : b.min);
      if (a.has_max && b.has_max)
        range_max(r, a.max > b.max ? a.max : b.max);
    }
    *rest = e;
    return 0;
  }
  int lt = is_time_ref(e->lhs), rt = is_time_ref(e->rhs);
  if (!lt && !rt) {
    if (has_time_ref(e))
      return stmt_err(x, "invalid condition: time can only be compared with a time");
    *rest = e;
    return 0;
  }
  influxql_op op = e->op;
  const influxql_expr *other = lt ? e->rhs : e->lhs;
  if (rt && !lt) {
    switch (op) {
    case INFLUXQL_OP_LT: op = INFLUXQL_OP_GT; break;
    case INFLUXQL_OP_LTE: op = INFLUXQL_OP_GTE; break;
    case INFLUXQL_OP_GT: op = INFLUXQL_OP_LT; break;
    case INFLUXQL_OP_GTE: op = INFLUXQL_OP_LTE; break;
    default: break;
    }
  }
  int64_t t;
  if ((rc = eval_time(x, other, &t)))
    return rc;
  switch (op) {
  case INFLUXQL_OP_GT: range_min(r, t == MAX_TIME ? MAX_TIME : t + 1); break;
  case INFLUXQL_OP_GTE: range_min(r, t); break;
  case INFLUXQL_OP_LT: range_max(r, t == MIN_TIME ? MIN_TIME : t - 1); break;
  case INFLUXQL_OP_LTE: range_max(r, t); break;
  case INFLUXQL_OP_EQ:
    range_min(r, t);
    range_max(r, t);
    break;
  default:
    return stmt_err(x, "invalid time comparison operator: only <, <=, >, >= and = compare time");
  }
  return 0;
}

/* ---- reading points ---- */

/* The points of one field of a group in [start, end] (inclusive), from the engine or from a
 * subquery's result. */
static int read_field(exec *x, int64_t ns, const xgroup *g, const char *field, int64_t start,
                      int64_t end, tsdb_points *out) {
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
    return count_points(x, out->n);
  }
  /* a subquery series: column `field` */
  const influxql_series *s = g->virt;
  size_t col = 0;
  for (size_t c = 1; c < s->ncolumns; c++)
    if (strcmp(s->columns[c], field) == 0)
      col = c;
  out->n = 0;
  pl_buf_reset(&out->arena);
  if (!col)
    return 0;
  int fi = group_field(g, field);
  tsdb_type type = fi >= 0 ? g->types[fi] : TSDB_FLOAT;
  out->type = type;
  for (size_t k = 0; k < s->nrows; k++) {
    const influxql_value *row = s->values + k * s->ncolumns;
    const influxql_value *v = &row[col];
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
    case TSDB_INT: out->i[n] = v->kind == INFLUXQL_V_FLOAT ? d2i(v->v.f) : v->v.i; break;
    case TSDB_BOOL: out->b[n] = (uint8_t)v->v.b; break;
    case TSDB_STRING:
      out->s[n] = v->v.s.p;
      out->slen[n] = (uint32_t)v->v.s.len;
      break;
    }
    out->n++;
  }
  return count_points(x, out->n);
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

/* The rows of a group: the union of the timestamps of the fields read, with each field's value
 * or null. Strings point into the points' arenas (valid until the next read). */
typedef struct grows {
  size_t nf;
  const char **names;
  tsdb_points *pts; /* nf */
  size_t *at;       /* cursors */
} grows;

static int grows_init(grows *r, size_t nf, const char **names) {
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

static void grows_free(grows *r) {
  for (size_t i = 0; r->pts && i < r->nf; i++)
    tsdb_points_free(&r->pts[i]);
  free(r->pts);
  free(r->at);
}

static int grows_read(exec *x, int64_t ns, const xgroup *g, grows *r, int64_t start, int64_t end) {
  for (size_t i = 0; i < r->nf; i++) {
    r->at[i] = 0;
    r->pts[i].n = 0;
    if (group_field(g, r->names[i]) < 0)
      continue;
    int rc = read_field(x, ns, g, r->names[i], start, end, &r->pts[i]);
    if (rc)
      return rc;
  }
  return 0;
}

/* Next row: returns 1 with its time and values (vals[nf]), 0 at the end. */
static int grows_next(grows *r, int64_t *ts, influxql_value *vals) {
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

static size_t grows_count(grows *r) {
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
  while (grows_next(r, &t, tmp))
    n++;
  for (size_t i = 0; i < nf; i++)
    r->at[i] = save[i];
  return n;
}

/* ---- statement parts shared by SELECT ---- */

typedef struct dims {
  int has_time;
  int64_t every, offset;
  const influxql_expr **tags; /* VARREF, WILDCARD or REGEX */
  size_t ntags;
} dims;

static int parse_dims(exec *x, const influxql_select *s, dims *d) {
  memset(d, 0, sizeof *d);
  d->tags = xalloc(x, (s->ndims ? s->ndims : 1) * sizeof *d->tags);
  if (!d->tags)
    return PL_ENOMEM;
  for (size_t i = 0; i < s->ndims; i++) {
    const influxql_expr *e = s->dims[i];
    if (e->kind == INFLUXQL_EXPR_CALL && strcmp(e->str, "time") == 0) {
      if (d->has_time)
        return stmt_err(x, "multiple time dimensions not allowed");
      if (e->nargs < 1 || e->nargs > 2)
        return stmt_err(x, "time dimension expected 1 or 2 arguments");
      if (e->args[0]->kind != INFLUXQL_EXPR_DURATION)
        return stmt_err(x, "time dimension must have duration argument");
      if (e->args[0]->i <= 0)
        return stmt_err(x, "time dimension must have positive duration");
      d->has_time = 1;
      d->every = e->args[0]->i;
      if (e->nargs == 2) {
        const influxql_expr *o = e->args[1];
        if (o->kind == INFLUXQL_EXPR_DURATION) {
          d->offset = o->i % d->every;
        } else if (o->kind == INFLUXQL_EXPR_CALL && strcmp(o->str, "now") == 0 && o->nargs == 0) {
          d->offset = x->o->now_ns % d->every;
        } else {
          return stmt_err(x, "time dimension offset must be duration or now()");
        }
        if (d->offset < 0)
          d->offset += d->every;
      }
    } else if (e->kind == INFLUXQL_EXPR_VARREF || e->kind == INFLUXQL_EXPR_WILDCARD ||
               e->kind == INFLUXQL_EXPR_REGEX) {
      if (e->kind == INFLUXQL_EXPR_VARREF && strcasecmp(e->str, "time") == 0)
        return stmt_err(x, "time() is a function and expects at least one argument");
      d->tags[d->ntags++] = e;
    } else if (e->kind == INFLUXQL_EXPR_CALL) {
      return stmt_err(x, "only time() calls allowed in dimensions");
    } else {
      return stmt_err(x, "only time and tag dimensions allowed");
    }
  }
  return 0;
}

/* The GROUP BY tag keys for measurement m, sorted and unique. */
static int dim_keys(exec *x, const dims *d, const meas *m, const char ***keys, size_t *n) {
  size_t cap = d->ntags + m->ntagkeys + 1;
  const char **k = xalloc(x, cap * sizeof *k);
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
          const regex_t *re = rx_get(x, e, e->str);
          if (!rx_match(re, m->tagkeys[t]))
            continue;
        }
        k[nk++] = m->tagkeys[t];
      }
    }
    if (nk + m->ntagkeys >= cap)
      break;
  }
  xsort(k, nk, sizeof *k, cmp_str);
  size_t u = 0;
  for (size_t i = 0; i < nk; i++)
    if (!u || strcmp(k[u - 1], k[i]) != 0)
      k[u++] = k[i];
  *keys = k;
  *n = u;
  return 0;
}

/* A set of groups that forms one output series. */
typedef struct tagset {
  const char **values; /* per dim key; "" when the group lacks the tag */
  xgroup **g;
  size_t n, cap;
  int *match; /* per group: 1 in, -1 depends on points */
} tagset;

typedef struct tagsets {
  tagset *t;
  size_t n, cap;
} tagsets;

static void tagsets_free(tagsets *ts) {
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
static int make_tagsets(exec *x, const meas *m, const influxql_expr *cond, const char **keys,
                        size_t nkeys, tagsets *out) {
  memset(out, 0, sizeof *out);
  int rc = 0;
  const char **vals = malloc((nkeys ? nkeys : 1) * sizeof *vals);
  if (!vals)
    return PL_ENOMEM;
  for (size_t i = 0; i < m->n && rc == 0; i++) {
    xgroup *g = m->g[i];
    evctx c = {x, g, m, NULL, NULL, 0, 0};
    int t = cond_truth(&c, cond);
    if (t == 0)
      continue;
    for (size_t k = 0; k < nkeys; k++) {
      const char *v = tag_value(g, keys[k]);
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
        tagset *p = realloc(out->t, cap * sizeof *p);
        if (!p) {
          rc = PL_ENOMEM;
          break;
        }
        out->t = p;
        out->cap = cap;
      }
      memmove(out->t + lo + 1, out->t + lo, (out->n - lo) * sizeof *out->t);
      out->n++;
      tagset *ts = &out->t[lo];
      memset(ts, 0, sizeof *ts);
      ts->values = xalloc(x, (nkeys ? nkeys : 1) * sizeof *ts->values);
      if (!ts->values) {
        rc = PL_ENOMEM;
        break;
      }
      memcpy(ts->values, vals, nkeys * sizeof *vals);
    }
    tagset *ts = &out->t[lo];
    if (ts->n == ts->cap) {
      size_t cap = ts->cap ? ts->cap * 2 : 4;
      xgroup **p = realloc(ts->g, cap * sizeof *p);
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
    tagsets_free(out);
  return rc;
}

/* ---- SELECT: field analysis ---- */

enum {
  F_NONE = 0,
  F_COUNT,
  F_SUM,
  F_MEAN,
  F_MEDIAN,
  F_MODE,
  F_SPREAD,
  F_STDDEV,
  F_MIN,
  F_MAX,
  F_FIRST,
  F_LAST,
  F_PERCENTILE,
  F_INTEGRAL_UNSUPPORTED,
};

enum {
  T_NONE = 0,
  T_DERIVATIVE,
  T_NN_DERIVATIVE,
  T_DIFFERENCE,
  T_NN_DIFFERENCE,
  T_MOVING_AVERAGE,
  T_CUMSUM
};

static const struct {
  const char *name;
  int func;
  int selector;
} agg_funcs[] = {
    {"count", F_COUNT, 0},   {"sum", F_SUM, 0},   {"mean", F_MEAN, 0},
    {"median", F_MEDIAN, 0}, {"mode", F_MODE, 0}, {"spread", F_SPREAD, 0},
    {"stddev", F_STDDEV, 0}, {"min", F_MIN, 1},   {"max", F_MAX, 1},
    {"first", F_FIRST, 1},   {"last", F_LAST, 1}, {"percentile", F_PERCENTILE, 1},
};

static const struct {
  const char *name;
  int t;
} transforms[] = {
    {"derivative", T_DERIVATIVE},         {"non_negative_derivative", T_NN_DERIVATIVE},
    {"difference", T_DIFFERENCE},         {"non_negative_difference", T_NN_DIFFERENCE},
    {"moving_average", T_MOVING_AVERAGE}, {"cumulative_sum", T_CUMSUM},
};

static int agg_func(const char *name) {
  for (size_t i = 0; i < sizeof agg_funcs / sizeof agg_funcs[0]; i++)
    if (strcmp(agg_funcs[i].name, name) == 0)
      return agg_funcs[i].func;
  return F_NONE;
}

static const char *func_name(int f) {
  for (size_t i = 0; i < sizeof agg_funcs / sizeof agg_funcs[0]; i++)
    if (agg_funcs[i].func == f)
      return agg_funcs[i].name;
  return "";
}

static int is_selector(int f) {
  return f == F_MIN || f == F_MAX || f == F_FIRST || f == F_LAST || f == F_PERCENTILE;
}

static int transform_of(const char *name) {
  for (size_t i = 0; i < sizeof transforms / sizeof transforms[0]; i++)
    if (strcmp(transforms[i].name, name) == 0)
      return transforms[i].t;
  return T_NONE;
}

static const char *known_unsupported[] = {"top",
                                          "bottom",
                                          "distinct",
                                          "integral",
                                          "sample",
                                          "elapsed",
                                          "holt_winters",
                                          "holt_winters_with_fit",
                                          "chande_momentum_oscillator",
                                          "exponential_moving_average",
                                          "double_exponential_moving_average",
                                          "kaufmans_efficiency_ratio",
                                          "kaufmans_adaptive_moving_average",
                                          "triple_exponential_moving_average",
                                          "triple_exponential_derivative",
                                          "relative_strength_index",
                                          "abs",
                                          "sin",
                                          "cos",
                                          "tan",
                                          "asin",
                                          "acos",
                                          "atan",
                                          "atan2",
                                          "exp",
                                          "ln",
                                          "log",
                                          "log2",
                                          "log10",
                                          "sqrt",
                                          "pow",
                                          "floor",
                                          "ceil",
                                          "round"};

/* One aggregate over a field used by the columns. */
typedef struct aggref {
  int func;
  const char *field;
  double pct;
  /* results for the current tagset, per bucket */
  influxql_value *val;
  int64_t *vts; /* selected point's time (selectors) */
} aggref;

/* A column as an evaluation tree over aggregates, raw fields, tags and literals. */
enum { C_LIT, C_AGG, C_FIELD, C_TAG, C_BIN, C_TRANSFORM };

typedef struct col {
  int kind;
  influxql_op op;
  struct col *l, *r;
  size_t agg;         /* C_AGG */
  const char *name;   /* C_FIELD / C_TAG */
  influxql_value lit; /* C_LIT */
  int transform;      /* C_TRANSFORM: over l */
  int64_t unit_ns;    /* derivative unit; 0 = default */
  int64_t window;     /* moving_average N */
  int has_unit;
} col;

typedef struct plan {
  const influxql_select *s;
  int aggregate;     /* any aggregate function */
  int raw_transform; /* transforms over raw fields, no aggregates */
  col **cols;
  const char **names; /* column names (index 0: time) */
  size_t ncols;       /* without time */
  aggref *aggs;
  size_t naggs, cap_aggs;
  /* auxiliary fields and tags of a lone selector (SELECT max(v), host ...): their values at
   * the selected point, per bucket */
  col **aux;
  size_t naux;
  influxql_value *auxv; /* nbuckets * naux, for the tag set being run */
} plan;

static int add_agg(exec *x, plan *p, int func, const char *field, double pct, size_t *idx) {
  for (size_t i = 0; i < p->naggs; i++)
    if (p->aggs[i].func == func && strcmp(p->aggs[i].field, field) == 0 && p->aggs[i].pct == pct) {
      *idx = i;
      return 0;
    }
  int rc = 0;
  aggref a = {func, field, pct, NULL, NULL};
  VEC_PUSH(p->aggs, p->naggs, p->cap_aggs, a, rc);
  *idx = p->naggs - 1;
  (void)x;
  return rc;
}

static col *new_col(exec *x, int kind) {
  col *c = xalloc(x, sizeof *c);
  if (c)
    c->kind = kind;
  return c;
}

static int numeric_arg(const influxql_expr *e, double *v) {
  if (e->kind == INFLUXQL_EXPR_INTEGER)
    return *v = (double)e->i, 0;
  if (e->kind == INFLUXQL_EXPR_NUMBER)
    return *v = e->f, 0;
  return -1;
}

/* Builds the evaluation tree of a field expression; *kind_out collects what it contains. */
enum {
  HAS_AGG = 1,
  HAS_RAW = 2,
  HAS_TRANSFORM = 4,
  HAS_RAW_TRANSFORM = 8,
  HAS_FIELD = 16,
  HAS_WILDCARD_AGG = 32
};

static int build_col(exec *x, plan *p, const influxql_expr *e, col **out, int *has) {
  int rc;
  switch (e->kind) {
  case INFLUXQL_EXPR_PAREN: return build_col(x, p, e->lhs, out, has);
  case INFLUXQL_EXPR_INTEGER:
  case INFLUXQL_EXPR_NUMBER:
  case INFLUXQL_EXPR_STRING:
  case INFLUXQL_EXPR_BOOL:
  case INFLUXQL_EXPR_UNSIGNED:
  case INFLUXQL_EXPR_DURATION: {
    col *c = new_col(x, C_LIT);
    if (!c)
      return PL_ENOMEM;
    if (e->kind == INFLUXQL_EXPR_INTEGER || e->kind == INFLUXQL_EXPR_DURATION)
      c->lit.kind = INFLUXQL_V_INT, c->lit.v.i = e->i;
    else if (e->kind == INFLUXQL_EXPR_NUMBER)
      c->lit.kind = INFLUXQL_V_FLOAT, c->lit.v.f = e->f;
    else if (e->kind == INFLUXQL_EXPR_UNSIGNED)
      c->lit.kind = INFLUXQL_V_FLOAT, c->lit.v.f = (double)e->u;
    else if (e->kind == INFLUXQL_EXPR_BOOL)
      c->lit.kind = INFLUXQL_V_BOOL, c->lit.v.b = e->b;
    else
      c->lit.kind = INFLUXQL_V_STRING, c->lit.v.s.p = e->str, c->lit.v.s.len = e->len;
    *out = c;
    return 0;
  }
  case INFLUXQL_EXPR_VARREF: {
    col *c = new_col(x, C_FIELD);
    if (!c)
      return PL_ENOMEM;
    c->name = e->str;
    if (e->vtype == INFLUXQL_VT_TAG)
      c->kind = C_TAG;
    *has |= HAS_RAW;
    *out = c;
    return 0;
  }
  case INFLUXQL_EXPR_BINARY: {
    col *c = new_col(x, C_BIN);
    if (!c)
      return PL_ENOMEM;
    c->op = e->op;
    if ((rc = build_col(x, p, e->lhs, &c->l, has)))
      return rc;
    if ((rc = build_col(x, p, e->rhs, &c->r, has)))
      return rc;
    *out = c;
    return 0;
  }
  case INFLUXQL_EXPR_CALL: {
    int f = agg_func(e->str);
    if (f) {
      size_t want = f == F_PERCENTILE ? 2 : 1;
      if (e->nargs != want)
        return stmt_err(x, "invalid number of arguments for %s, expected %zu, got %zu", e->str,
                        want, e->nargs);
      const influxql_expr *a = e->args[0];
      if (a->kind == INFLUXQL_EXPR_CALL && strcmp(a->str, "distinct") == 0 && f == F_COUNT)
        return stmt_err(x, "count(distinct()) is not supported by Plateau");
      if (a->kind == INFLUXQL_EXPR_WILDCARD || a->kind == INFLUXQL_EXPR_REGEX) {
        /* mean(*) or max over a regex: one column per field, made by raw_columns */
        *has |= HAS_AGG | HAS_WILDCARD_AGG;
        *out = NULL;
        return 0;
      }
      if (a->kind != INFLUXQL_EXPR_VARREF)
        return stmt_err(x, "expected field argument in %s()", e->str);
      double pct = 0;
      if (f == F_PERCENTILE) {
        if (numeric_arg(e->args[1], &pct) < 0)
          return stmt_err(x, "expected float argument in percentile()");
      }
      col *c = new_col(x, C_AGG);
      if (!c)
        return PL_ENOMEM;
      if ((rc = add_agg(x, p, f, a->str, pct, &c->agg)))
        return rc;
      *has |= HAS_AGG;
      *out = c;
      return 0;
    }
    int t = transform_of(e->str);
    if (t) {
      size_t min = 1, max = 2;
      if (t == T_DIFFERENCE || t == T_NN_DIFFERENCE || t == T_CUMSUM)
        max = 1;
      if (t == T_MOVING_AVERAGE)
        min = max = 2;
      if (e->nargs < min || e->nargs > max) {
        if (min == max)
          return stmt_err(x, "invalid number of arguments for %s, expected %zu, got %zu", e->str,
                          min, e->nargs);
        return stmt_err(x,
                        "invalid number of arguments for %s, expected at least %zu but no more "
                        "than %zu, got %zu",
                        e->str, min, max, e->nargs);
      }
      col *c = new_col(x, C_TRANSFORM);
      if (!c)
        return PL_ENOMEM;
      c->transform = t;
      const influxql_expr *a = e->args[0];
      if (a->kind == INFLUXQL_EXPR_CALL) {
        int inner = agg_func(a->str);
        if (!inner)
          return stmt_err(x, "expected field or aggregate argument in %s()", e->str);
        int sub = 0;
        if ((rc = build_col(x, p, a, &c->l, &sub)))
          return rc;
        *has |= HAS_AGG | HAS_TRANSFORM;
      } else if (a->kind == INFLUXQL_EXPR_VARREF) {
        col *f2 = new_col(x, C_FIELD);
        if (!f2)
          return PL_ENOMEM;
        f2->name = a->str;
        c->l = f2;
        *has |= HAS_RAW_TRANSFORM;
      } else {
        return stmt_err(x, "expected field argument in %s()", e->str);
      }
      if (e->nargs == 2) {
        const influxql_expr *b = e->args[1];
        if (t == T_MOVING_AVERAGE) {
          if (b->kind != INFLUXQL_EXPR_INTEGER)
            return stmt_err(x, "second argument for moving_average must be an integer, got %s",
                            "a non-integer");
          if (b->i <= 1)
            return stmt_err(x, "moving_average window must be greater than 1, got %lld",
                            (long long)b->i);
          c->window = b->i;
        } else {
          if (b->kind != INFLUXQL_EXPR_DURATION)
            return stmt_err(x, "second argument to %s must be a duration, got %s", e->str,
                            "another type");
          if (b->i <= 0)
            return stmt_err(x, "duration argument must be positive, got %lld", (long long)b->i);
          c->unit_ns = b->i;
          c->has_unit = 1;
        }
      }
      *out = c;
      return 0;
    }
    for (size_t i = 0; i < sizeof known_unsupported / sizeof known_unsupported[0]; i++)
      if (strcmp(known_unsupported[i], e->str) == 0)
        return stmt_err(x, "function %s() is not supported by Plateau", e->str);
    return stmt_err(x, "undefined function %s()", e->str);
  }
  case INFLUXQL_EXPR_WILDCARD:
  case INFLUXQL_EXPR_REGEX:
    *has |= HAS_RAW;
    *out = NULL; /* expanded by the caller */
    return 0;
  case INFLUXQL_EXPR_DISTINCT: return stmt_err(x, "DISTINCT is not supported by Plateau");
  }
  return stmt_err(x, "unsupported expression in SELECT");
}

/* The column name InfluxDB gives an unaliased field. */
static int expr_name(const influxql_expr *e, pl_buf *b) {
  switch (e->kind) {
  case INFLUXQL_EXPR_CALL: return pl_buf_append_str(b, e->str);
  case INFLUXQL_EXPR_VARREF: return pl_buf_append_str(b, e->str);
  case INFLUXQL_EXPR_PAREN: return expr_name(e->lhs, b);
  case INFLUXQL_EXPR_BINARY: {
    /* names of the variables and calls in it, joined by '_' (calls are not entered) */
    const influxql_expr *stack[INFLUXQL_DEPTH_MAX * 4];
    size_t sp = 0;
    int first = 1, rc = 0;
    const influxql_expr *order[2048];
    size_t no = 0;
    stack[sp++] = e;
    while (sp && rc == 0) {
      const influxql_expr *n = stack[--sp];
      if (n->kind == INFLUXQL_EXPR_VARREF || n->kind == INFLUXQL_EXPR_CALL) {
        if (no < 2048)
          order[no++] = n;
      } else if (n->kind == INFLUXQL_EXPR_BINARY) {
        if (sp + 2 <= sizeof stack / sizeof stack[0]) {
          stack[sp++] = n->rhs;
          stack[sp++] = n->lhs;
        }
      } else if (n->kind == INFLUXQL_EXPR_PAREN) {
        if (sp < sizeof stack / sizeof stack[0])
          stack[sp++] = n->lhs;
      }
    }
    for (size_t i = 0; i < no && rc == 0; i++) {
      if (!first)
        rc = pl_buf_append_byte(b, '_');
      first = 0;
      if (rc == 0)
        rc = pl_buf_append_str(b, order[i]->str);
    }
    return rc;
  }
  default: return 0;
  }
}

/* Column names with InfluxDB's conflict resolution: aliases first, then generated names, with
 * "_1", "_2"... added to repeats. */
static int name_columns(exec *x, const char **given, const int *aliased, size_t n,
                        const char **out) {
  for (size_t i = 0; i < n; i++)
    out[i] = aliased[i] ? given[i] : NULL;
  for (size_t i = 0; i < n; i++) {
    if (out[i])
      continue;
    const char *name = given[i];
    int count = 0;
    for (size_t j = 0; j < n; j++)
      if (out[j] && strcmp(out[j], name) == 0)
        count++;
    if (count) {
      char buf[600];
      for (int k = count;; k++) {
        snprintf(buf, sizeof buf, "%s_%d", name, k);
        int clash = 0;
        for (size_t j = 0; j < n && !clash; j++)
          clash = out[j] && strcmp(out[j], buf) == 0;
        if (!clash)
          break;
      }
      if (!(name = xstrndup(x, buf, strlen(buf))))
        return PL_ENOMEM;
    }
    out[i] = name;
  }
  return 0;
}

/* ---- the output series being built ---- */

typedef struct outrow {
  int64_t ts;
  size_t order; /* tie-break among groups */
  influxql_value *v;
} outrow;

static int emit_series(exec *x, const char *name, const char **keys, const char **values,
                       size_t nkeys, const char *const *columns, size_t ncolumns,
                       influxql_value *rows, size_t nrows, const influxql_select *s) {
  if (!nrows)
    return 0;
  x->rows += nrows;
  if (x->rows > ROWS_MAX)
    return stmt_err(x,
                    "the statement returns more than %zu rows (the limit); narrow its time range, "
                    "add conditions "
                    "or LIMIT",
                    ROWS_MAX);
  if (x->res->nseries >= x->series_max)
    return stmt_err(
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

static void reverse_rows(influxql_value *rows, size_t nrows, size_t ncols) {
  influxql_value tmp[256];
  if (ncols > 256)
    return;
  for (size_t i = 0, j = nrows ? nrows - 1 : 0; i < j; i++, j--) {
    memcpy(tmp, rows + i * ncols, ncols * sizeof *tmp);
    memcpy(rows + i * ncols, rows + j * ncols, ncols * sizeof *tmp);
    memcpy(rows + j * ncols, tmp, ncols * sizeof *tmp);
  }
}

/* ---- expression values over a row ---- */

static influxql_value val_from_ev(ev e) {
  influxql_value v = {0};
  switch (e.kind) {
  case EV_FLOAT: v.kind = INFLUXQL_V_FLOAT, v.v.f = e.f; break;
  case EV_INT: v.kind = INFLUXQL_V_INT, v.v.i = e.i; break;
  case EV_BOOL: v.kind = INFLUXQL_V_BOOL, v.v.b = e.b; break;
  case EV_STR: v.kind = INFLUXQL_V_STRING, v.v.s.p = e.s, v.v.s.len = e.len; break;
  default: v.kind = INFLUXQL_V_NULL;
  }
  return v;
}

static influxql_value binop(influxql_op op, influxql_value a, influxql_value b) {
  if (a.kind == INFLUXQL_V_NULL || b.kind == INFLUXQL_V_NULL)
    return (influxql_value){0};
  ev x = ev_from_value(&a), y = ev_from_value(&b);
  switch (op) {
  case INFLUXQL_OP_ADD:
  case INFLUXQL_OP_SUB:
  case INFLUXQL_OP_MUL:
  case INFLUXQL_OP_DIV:
  case INFLUXQL_OP_MOD:
  case INFLUXQL_OP_BITAND:
  case INFLUXQL_OP_BITOR:
  case INFLUXQL_OP_BITXOR: return val_from_ev(arith(op, x, y));
  default: return (influxql_value){0};
  }
}

/* ---- raw SELECT ---- */

typedef struct rawcol {
  col *c;
  const char *name;
} rawcol;

static influxql_value raw_eval(const col *c, const xgroup *g, const meas *m, const char **fnames,
                               const influxql_value *fvals, size_t nf) {
  influxql_value v = {0};
  switch (c->kind) {
  case C_LIT: return c->lit;
  case C_FIELD:
  case C_TAG: {
    if (c->kind == C_FIELD && meas_field(m, c->name) >= 0) {
      for (size_t i = 0; i < nf; i++)
        if (strcmp(fnames[i], c->name) == 0)
          return fvals[i];
      return v;
    }
    /* a tag (or a name that is no field of the measurement) */
    const char *t = tag_value(g, c->name);
    if (!t)
      return v;
    v.kind = INFLUXQL_V_STRING;
    v.v.s.p = t;
    v.v.s.len = strlen(t);
    return v;
  }
  case C_BIN:
    return binop(c->op, raw_eval(c->l, g, m, fnames, fvals, nf),
                 raw_eval(c->r, g, m, fnames, fvals, nf));
  default: return v;
  }
}

/* Whether the column reads a field (a row needs one such non-null value to exist). */
static int col_reads_field(const col *c, const meas *m) {
  switch (c->kind) {
  case C_FIELD: return meas_field(m, c->name) >= 0;
  case C_BIN: return col_reads_field(c->l, m) || col_reads_field(c->r, m);
  default: return 0;
  }
}

static int col_fields(exec *x, const col *c, const meas *m, const char ***names, size_t *n,
                      size_t *cap) {
  int rc = 0;
  if (!c)
    return 0;
  if (c->kind == C_FIELD && meas_field(m, c->name) >= 0) {
    for (size_t i = 0; i < *n; i++)
      if (strcmp((*names)[i], c->name) == 0)
        return 0;
    VEC_PUSH(*names, *n, *cap, c->name, rc);
    return rc;
  }
  if (c->kind == C_BIN || c->kind == C_TRANSFORM) {
    if ((rc = col_fields(x, c->l, m, names, n, cap)))
      return rc;
    return col_fields(x, c->r, m, names, n, cap);
  }
  return 0;
}

typedef struct rowbuf {
  influxql_value *v; /* rows * stride */
  int64_t *ts;
  size_t *order;
  size_t n, cap, stride;
} rowbuf;

static int rowbuf_add(rowbuf *b, int64_t ts, size_t order, const influxql_value *vals) {
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

static void rowbuf_free(rowbuf *b) {
  free(b->v);
  free(b->ts);
  free(b->order);
  memset(b, 0, sizeof *b);
}

/* Sorts rows by (time, order) with a merge sort on an index (stable and O(n log n)). */
static int rowbuf_sort(rowbuf *b) {
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

/* String values point into the engine's buffers, which the next read reuses: copy them. */
static int stabilize_strings(exec *x, influxql_value *vals, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (vals[i].kind == INFLUXQL_V_STRING) {
      const char *p = xstrndup(x, vals[i].v.s.p ? vals[i].v.s.p : "", vals[i].v.s.len);
      if (!p)
        return PL_ENOMEM;
      vals[i].v.s.p = p;
    }
  return 0;
}

typedef struct stmt_ctx {
  exec *x;
  const influxql_select *s;
  plan *p;
  dims d;
  trange range;
  influxql_expr *cond; /* without time */
  int64_t ns;
  influxql_tz *tz;
} stmt_ctx;

/* Reads the rows of one group for a raw query: all of [range], or for a LIMIT without a field
 * condition just enough of the newest (DESC) or oldest rows, widening a window from the group's
 * last (or first) point so that "the last point of every device" does not read everything. */
static int raw_group_rows(stmt_ctx *sc, const xgroup *g, grows *gr, size_t need, int desc,
                          int *window_used) {
  exec *x = sc->x;
  int64_t lo = sc->range.min, hi = sc->range.max;
  if (g->first_ts > lo)
    lo = g->first_ts;
  if (g->last_ts < hi && !g->virt)
    hi = g->last_ts;
  *window_used = 0;
  if (!need || g->virt || lo > hi)
    return grows_read(x, sc->ns, g, gr, sc->range.min, sc->range.max);
  int64_t w = 3600LL * 1000000000;
  for (;;) {
    int64_t a = lo, b = hi;
    if (desc && (uint64_t)(hi - lo) > (uint64_t)w)
      a = hi - w;
    if (!desc && (uint64_t)(hi - lo) > (uint64_t)w)
      b = lo + w;
    int rc = grows_read(x, sc->ns, g, gr, a, b);
    if (rc)
      return rc;
    *window_used = 1;
    if ((a == lo && b == hi) || grows_count(gr) >= need)
      return 0;
    if (w > INT64_MAX / 4)
      w = INT64_MAX;
    else
      w *= 4;
  }
}

static int run_raw_tagset(stmt_ctx *sc, const meas *m, tagset *ts, const char **keys, size_t nkeys,
                          rawcol *rc_cols, size_t ncols, const char *const *colnames) {
  exec *x = sc->x;
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
    rc = cond_fields(x, sc->cond, m, &names, &nn, &cap);
  if (rc < 0) {
    free(names);
    return rc;
  }
  size_t stride = ncols + 1;
  rowbuf rb = {0};
  rb.stride = stride;
  grows gr;
  if ((rc = grows_init(&gr, nn, names)) < 0) {
    free(names);
    return rc;
  }
  influxql_value *fv = calloc(nn ? nn : 1, sizeof *fv), *row = calloc(stride, sizeof *row);
  if (!fv || !row)
    rc = PL_ENOMEM;
  size_t need = s->limit && !any_dep ? (size_t)(s->limit + s->offset) : 0;
  for (size_t gi = 0; gi < ts->n && rc == 0; gi++) {
    const xgroup *g = ts->g[gi];
    int windowed;
    if ((rc = raw_group_rows(sc, g, &gr, need, s->order_desc, &windowed)))
      break;
    int64_t t;
    size_t kept = 0;
    /* with a window read for DESC, only the newest `need` rows of this group matter */
    size_t total = windowed && s->order_desc ? grows_count(&gr) : 0, seen = 0;
    while (rc == 0 && grows_next(&gr, &t, fv)) {
      seen++;
      if (total && total - seen + 1 > need)
        continue;
      if (t < sc->range.min || t > sc->range.max)
        continue;
      if (ts->match[gi] < 0) {
        evctx c = {x, g, m, names, fv, nn, t};
        if (cond_truth(&c, sc->cond) != 1)
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
      if (x->rows + rb.n >= ROWS_MAX) {
        rc = stmt_err(
            x,
            "the statement returns more than %zu rows (the limit); narrow its time range, add "
            "conditions or LIMIT",
            ROWS_MAX);
        break;
      }
      if ((rc = rowbuf_add(&rb, t, gi, row)) < 0)
        break;
      if (windowed && !s->order_desc && ++kept >= need)
        break;
    }
  }
  if (rc == 0)
    rc = rowbuf_sort(&rb);
  if (rc == 0 && s->order_desc)
    reverse_rows(rb.v, rb.n, stride);
  if (rc == 0)
    rc = emit_series(x, m->name, keys, ts->values, nkeys, colnames, stride, rb.v, rb.n, s);
  free(fv);
  free(row);
  grows_free(&gr);
  free(names);
  rowbuf_free(&rb);
  return rc;
}

/* ---- aggregation ---- */

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
  return func == F_MEDIAN || func == F_PERCENTILE || func == F_MODE || func == F_STDDEV;
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

static int acc_add(exec *x, acc *a, int func, int64_t ts, const influxql_value *v, int *selected) {
  double f = v->kind == INFLUXQL_V_INT     ? (double)v->v.i
             : v->kind == INFLUXQL_V_BOOL  ? (double)v->v.b
             : v->kind == INFLUXQL_V_FLOAT ? v->v.f
                                           : 0;
  int64_t i = v->kind == INFLUXQL_V_INT ? v->v.i : d2i(f);
  if (!a->has) {
    *selected = 1;
    a->has = 1;
    a->min = a->max = a->first = a->last = f;
    a->imin = a->imax = a->ifirst = a->ilast = i;
    a->min_ts = a->max_ts = a->first_ts = a->last_ts = ts;
    a->bfirst = a->blast = v->kind == INFLUXQL_V_BOOL ? v->v.b : 0;
    if (v->kind == INFLUXQL_V_STRING) {
      a->sfirst = a->slast = xstrndup(x, v->v.s.p ? v->v.s.p : "", v->v.s.len);
      a->sfirst_len = a->slast_len = v->v.s.len;
      if (!a->sfirst)
        return PL_ENOMEM;
    }
  } else {
    if (f < a->min || (f == a->min && ts < a->min_ts)) {
      a->min = f, a->imin = i, a->min_ts = ts;
      *selected |= func == F_MIN;
    }
    if (f > a->max || (f == a->max && ts < a->max_ts)) {
      a->max = f, a->imax = i, a->max_ts = ts;
      *selected |= func == F_MAX;
    }
    if (ts < a->first_ts ||
        (ts == a->first_ts && greater(v, f, a->first, a->sfirst, a->sfirst_len))) {
      a->first = f, a->ifirst = i, a->first_ts = ts;
      *selected |= func == F_FIRST;
      if (v->kind == INFLUXQL_V_BOOL)
        a->bfirst = v->v.b;
      if (v->kind == INFLUXQL_V_STRING) {
        if (!(a->sfirst = xstrndup(x, v->v.s.p ? v->v.s.p : "", v->v.s.len)))
          return PL_ENOMEM;
        a->sfirst_len = v->v.s.len;
      }
    }
    if (ts > a->last_ts || (ts == a->last_ts && greater(v, f, a->last, a->slast, a->slast_len))) {
      a->last = f, a->ilast = i, a->last_ts = ts;
      *selected |= func == F_LAST;
      if (v->kind == INFLUXQL_V_BOOL)
        a->blast = v->v.b;
      if (v->kind == INFLUXQL_V_STRING) {
        if (!(a->slast = xstrndup(x, v->v.s.p ? v->v.s.p : "", v->v.s.len)))
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
static int aux_capture(exec *x, const plan *p, const meas *m, const xgroup *g, const char **names,
                       const influxql_value *fv, size_t nn, influxql_value *out) {
  for (size_t c = 0; c < p->naux; c++) {
    const col *ac = p->aux[c];
    influxql_value v = {0};
    if (ac->kind == C_FIELD && meas_field(m, ac->name) >= 0) {
      for (size_t q = 0; q < nn; q++)
        if (strcmp(names[q], ac->name) == 0)
          v = fv[q];
    } else {
      const char *t = tag_value(g, ac->name);
      if (t)
        v.kind = INFLUXQL_V_STRING, v.v.s.p = t, v.v.s.len = strlen(t);
    }
    if (v.kind == INFLUXQL_V_STRING && !(v.v.s.p = xstrndup(x, v.v.s.p ? v.v.s.p : "", v.v.s.len)))
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
    a->imin = d2i(b->min), a->imax = d2i(b->max), a->ifirst = d2i(b->first),
    a->ilast = d2i(b->last);
    a->first_ts = b->first_ts, a->last_ts = b->last_ts;
    a->bfirst = b->first != 0, a->blast = b->last != 0;
    a->min_ts = a->max_ts = b->start_ns;
  } else {
    if (b->min < a->min)
      a->min = b->min, a->imin = d2i(b->min);
    if (b->max > a->max)
      a->max = b->max, a->imax = d2i(b->max);
    if (b->first_ts < a->first_ts || (b->first_ts == a->first_ts && b->first > a->first))
      a->first = b->first, a->ifirst = d2i(b->first), a->first_ts = b->first_ts,
      a->bfirst = b->first != 0;
    if (b->last_ts > a->last_ts || (b->last_ts == a->last_ts && b->last > a->last))
      a->last = b->last, a->ilast = d2i(b->last), a->last_ts = b->last_ts, a->blast = b->last != 0;
  }
  a->count += b->count;
  a->sum += b->sum;
  if (is_int)
    a->isum = (int64_t)((uint64_t)a->isum + (uint64_t)d2i(round(b->sum)));
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
static influxql_value acc_result(acc *a, const aggref *r, int64_t *sel_ts, int *emit) {
  influxql_value v = {0};
  if (!a->has) {
    if (r->func == F_COUNT)
      v.kind = INFLUXQL_V_INT, v.v.i = 0;
    return v;
  }
  int is_int = a->type == TSDB_INT;
  switch (r->func) {
  case F_COUNT: v.kind = INFLUXQL_V_INT, v.v.i = (int64_t)a->count; break;
  case F_SUM:
    if (is_int)
      v.kind = INFLUXQL_V_INT, v.v.i = a->isum;
    else
      v.kind = INFLUXQL_V_FLOAT, v.v.f = a->sum;
    break;
  case F_MEAN: v.kind = INFLUXQL_V_FLOAT, v.v.f = a->sum / (double)a->count; break;
  case F_SPREAD:
    if (is_int)
      v.kind = INFLUXQL_V_INT, v.v.i = (int64_t)((uint64_t)a->imax - (uint64_t)a->imin);
    else
      v.kind = INFLUXQL_V_FLOAT, v.v.f = a->max - a->min;
    break;
  case F_MIN:
    if (is_int)
      v.kind = INFLUXQL_V_INT, v.v.i = a->imin;
    else
      v.kind = INFLUXQL_V_FLOAT, v.v.f = a->min;
    *sel_ts = a->min_ts;
    break;
  case F_MAX:
    if (is_int)
      v.kind = INFLUXQL_V_INT, v.v.i = a->imax;
    else
      v.kind = INFLUXQL_V_FLOAT, v.v.f = a->max;
    *sel_ts = a->max_ts;
    break;
  case F_FIRST:
  case F_LAST: {
    int first = r->func == F_FIRST;
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
  case F_STDDEV: {
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
  case F_MEDIAN:
  case F_PERCENTILE:
  case F_MODE: {
    size_t n = a->nvals;
    if (!n)
      break;
    /* the points ordered by (value, time) */
    vt *sv = malloc(n * sizeof *sv);
    if (!sv)
      break;
    for (size_t i = 0; i < n; i++)
      sv[i].v = a->vals[i], sv[i].t = a->vts[i];
    xsort(sv, n, sizeof *sv, cmp_vt);
    if (r->func == F_MEDIAN) {
      double m = n % 2 ? sv[n / 2].v : sv[n / 2 - 1].v + (sv[n / 2].v - sv[n / 2 - 1].v) / 2;
      v.kind = INFLUXQL_V_FLOAT, v.v.f = m;
    } else if (r->func == F_PERCENTILE) {
      /* nearest rank; outside the points there is no answer (no point, as in InfluxDB) */
      double rank = floor((double)n * r->pct / 100.0 + 0.5) - 1;
      if (rank >= 0 && rank < (double)n) {
        const vt *pv = &sv[(size_t)rank];
        if (is_int)
          v.kind = INFLUXQL_V_INT, v.v.i = d2i(pv->v);
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
        v.kind = INFLUXQL_V_INT, v.v.i = d2i(best);
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

/* Fill empty buckets of one aggregate's column. */
static void fill_column(const influxql_select *s, const aggref *r, influxql_value *vals,
                        const uint8_t *present, size_t n, tsdb_type type) {
  (void)type;
  switch (s->fill) {
  case INFLUXQL_FILL_NULL:
  case INFLUXQL_FILL_NONE: return;
  case INFLUXQL_FILL_NUMBER:
    for (size_t k = 0; k < n; k++)
      if (!present[k]) {
        int as_int =
            r->func == F_COUNT || vals[k].kind == INFLUXQL_V_INT ||
            (type == TSDB_INT && (r->func == F_SUM || r->func == F_MIN || r->func == F_MAX ||
                                  r->func == F_FIRST || r->func == F_LAST || r->func == F_SPREAD ||
                                  r->func == F_PERCENTILE || r->func == F_MODE));
        if (as_int)
          vals[k].kind = INFLUXQL_V_INT,
          vals[k].v.i = s->fill_is_int ? s->fill_int : d2i(s->fill_number);
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

static double num_of(const influxql_value *v) {
  return v->kind == INFLUXQL_V_INT ? (double)v->v.i : v->v.f;
}

/* Runs a transformation over a column of values at times ts[], writing out[] (null where it
 * has no point). */
static void run_transform(const col *c, const influxql_value *in, const int64_t *ts, size_t n,
                          int64_t default_unit, influxql_value *out) {
  int64_t unit = c->has_unit ? c->unit_ns : default_unit;
  size_t prev = SIZE_MAX;
  double cum = 0;
  int64_t icum = 0;
  int have_cum = 0;
  double *win = NULL;
  size_t wn = 0, wpos = 0;
  if (c->transform == T_MOVING_AVERAGE)
    win = calloc((size_t)c->window, sizeof *win);
  for (size_t k = 0; k < n; k++) {
    out[k].kind = INFLUXQL_V_NULL;
    if (in[k].kind != INFLUXQL_V_FLOAT && in[k].kind != INFLUXQL_V_INT)
      continue;
    switch (c->transform) {
    case T_DERIVATIVE:
    case T_NN_DERIVATIVE:
      if (prev != SIZE_MAX && ts[k] != ts[prev]) {
        double d =
            (num_of(&in[k]) - num_of(&in[prev])) / ((double)(ts[k] - ts[prev]) / (double)unit);
        if (c->transform == T_DERIVATIVE || d >= 0)
          out[k].kind = INFLUXQL_V_FLOAT, out[k].v.f = d;
      }
      break;
    case T_DIFFERENCE:
    case T_NN_DIFFERENCE:
      if (prev != SIZE_MAX) {
        if (in[k].kind == INFLUXQL_V_INT && in[prev].kind == INFLUXQL_V_INT) {
          int64_t d = (int64_t)((uint64_t)in[k].v.i - (uint64_t)in[prev].v.i);
          if (c->transform == T_DIFFERENCE || d >= 0)
            out[k].kind = INFLUXQL_V_INT, out[k].v.i = d;
        } else {
          double d = num_of(&in[k]) - num_of(&in[prev]);
          if (c->transform == T_DIFFERENCE || d >= 0)
            out[k].kind = INFLUXQL_V_FLOAT, out[k].v.f = d;
        }
      }
      break;
    case T_CUMSUM:
      if (in[k].kind == INFLUXQL_V_INT && (!have_cum || icum == d2i(cum))) {
        icum = (int64_t)((uint64_t)icum + (uint64_t)in[k].v.i);
        cum = (double)icum;
        out[k].kind = INFLUXQL_V_INT, out[k].v.i = icum;
      } else {
        cum += num_of(&in[k]);
        out[k].kind = INFLUXQL_V_FLOAT, out[k].v.f = cum;
      }
      have_cum = 1;
      break;
    case T_MOVING_AVERAGE:
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

/* Evaluates a column at bucket k given aggregate values; transforms were precomputed into
 * tvals (per column node, see eval_tree). */
typedef struct colvals {
  const col *c;
  influxql_value *v; /* per bucket */
} colvals;

static influxql_value agg_eval(const col *c, const plan *p, size_t k, const colvals *tv,
                               size_t ntv) {
  influxql_value v = {0};
  switch (c->kind) {
  case C_LIT: return c->lit;
  case C_AGG: return p->aggs[c->agg].val[k];
  case C_TRANSFORM:
    for (size_t i = 0; i < ntv; i++)
      if (tv[i].c == c)
        return tv[i].v[k];
    return v;
  case C_BIN: return binop(c->op, agg_eval(c->l, p, k, tv, ntv), agg_eval(c->r, p, k, tv, ntv));
  case C_FIELD:
  case C_TAG: return p->auxv ? p->auxv[k * p->naux + c->agg] : v;
  default: return v;
  }
}

/* Whether column c "has a point" at bucket k (InfluxDB emits a row where any column does). */
static int col_point(const col *c, const plan *p, size_t k, const uint8_t *const *present,
                     const colvals *tv, size_t ntv, int fill_none) {
  switch (c->kind) {
  case C_AGG: return fill_none ? present[c->agg][k] : 1;
  case C_TRANSFORM:
    for (size_t i = 0; i < ntv; i++)
      if (tv[i].c == c)
        return tv[i].v[k].kind != INFLUXQL_V_NULL;
    return 0;
  case C_BIN:
    return col_point(c->l, p, k, present, tv, ntv, fill_none) ||
           col_point(c->r, p, k, present, tv, ntv, fill_none);
  default: return 0;
  }
}

static int64_t transform_extension(const col *c) {
  if (!c)
    return 0;
  if (c->kind == C_TRANSFORM) {
    switch (c->transform) {
    case T_DERIVATIVE:
    case T_NN_DERIVATIVE:
    case T_DIFFERENCE:
    case T_NN_DIFFERENCE: return 1;
    case T_MOVING_AVERAGE: return c->window - 1;
    default: return 0;
    }
  }
  if (c->kind == C_BIN) {
    int64_t a = transform_extension(c->l), b = transform_extension(c->r);
    return a > b ? a : b;
  }
  return 0;
}

static int collect_transforms(col *c, colvals **tv, size_t *n, size_t *cap) {
  int rc = 0;
  if (!c)
    return 0;
  if (c->kind == C_TRANSFORM) {
    colvals v = {c, NULL};
    VEC_PUSH(*tv, *n, *cap, v, rc);
    return rc;
  }
  if (c->kind == C_BIN) {
    if ((rc = collect_transforms(c->l, tv, n, cap)))
      return rc;
    return collect_transforms(c->r, tv, n, cap);
  }
  return 0;
}

/* Which aggregates tsdb_aggregate can answer for a field (bits) and whether all of p's are. */
static unsigned engine_aggs(int func) {
  switch (func) {
  case F_COUNT: return TSDB_AGG_COUNT;
  case F_SUM: return TSDB_AGG_SUM;
  case F_MEAN: return TSDB_AGG_MEAN;
  case F_MIN: return TSDB_AGG_MIN;
  case F_MAX: return TSDB_AGG_MAX;
  case F_FIRST: return TSDB_AGG_FIRST;
  case F_LAST: return TSDB_AGG_LAST;
  case F_SPREAD: return TSDB_AGG_SPREAD;
  default: return 0;
  }
}

static int run_agg_tagset(stmt_ctx *sc, const meas *m, tagset *ts, const char **keys, size_t nkeys,
                          const buckets *bk, const bucket_index *bi, const char *const *colnames,
                          int single_selector) {
  exec *x = sc->x;
  plan *p = sc->p;
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
    int fi = meas_field(m, p->aggs[a].field);
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
    int fi = meas_field(m, p->aggs[a].field);
    if (fi < 0)
      continue;
    tsdb_type t = m->types[fi];
    int f = p->aggs[a].func;
    if (f == F_MODE && (t == TSDB_STRING || t == TSDB_BOOL))
      rc = stmt_err(x, "mode() of %s fields is not supported by Plateau",
                    t == TSDB_STRING ? "string" : "boolean");
    else if ((t == TSDB_STRING || t == TSDB_BOOL) && f != F_COUNT && f != F_FIRST && f != F_LAST)
      rc = stmt_err(x, "unsupported %s iterator type: %s", func_name(f),
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
      VEC_PUSH(fields, nf, capf, p->aggs[a].field, rc);
  }
  const char **cnames = NULL;
  size_t ncn = 0, capcn = 0;
  if (rc == 0 && any_dep)
    rc = cond_fields(x, sc->cond, m, &cnames, &ncn, &capcn);
  tsdb_buckets tb = {0};
  for (size_t fi = 0; fi < nf && rc == 0; fi++) {
    const char *field = fields[fi];
    int mf = meas_field(m, field);
    if (mf < 0)
      continue;
    tsdb_type ftype = m->types[mf];
    unsigned want = 0;
    /* the engine's buckets carry the times of their first and last points, not of their
     * extremes: a lone min() or max() reports its point's time, so it reads points */
    int lone_extreme = single_selector && (p->aggs[0].func == F_MIN || p->aggs[0].func == F_MAX ||
                                           p->aggs[0].func == F_PERCENTILE);
    int engine_ok = !any_dep && bi->starts == NULL && !lone_extreme && !p->naux;
    for (size_t a = 0; a < p->naggs; a++) {
      if (strcmp(p->aggs[a].field, field) != 0)
        continue;
      unsigned e = engine_aggs(p->aggs[a].func);
      if (!e || (ftype == TSDB_STRING && p->aggs[a].func != F_COUNT))
        engine_ok = 0;
      want |= e;
    }
    for (size_t gi = 0; gi < ts->n && rc == 0; gi++) {
      const xgroup *g = ts->g[gi];
      if (group_field(g, field) < 0)
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
        if (lone == F_LAST || lone == F_FIRST) {
          /* "the last value of every device": only the newest (oldest) data is needed, so the
           * window read grows from the group's end until it holds a point of the field */
          int64_t lo = spec.start_ns > g->first_ts ? spec.start_ns : g->first_ts;
          int64_t hi = sc->range.max < g->last_ts ? sc->range.max : g->last_ts;
          int64_t w = 3600LL * 1000000000;
          for (;;) {
            int whole = hi < lo || (uint64_t)(hi - lo) <= (uint64_t)w;
            spec.start_ns = whole ? lo : lone == F_LAST ? hi - w : lo;
            spec.end_ns = whole ? hi + 1 : lone == F_LAST ? hi + 1 : lo + w + 1;
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
          rc = stmt_err(x, "too many buckets: the statement would make more than %d time buckets",
                        BUCKETS_MAX);
          break;
        }
        if (rc < 0)
          break;
        for (size_t k = 0; k < tb.n; k++) {
          const tsdb_bucket *b = &tb.b[k];
          if (!b->present)
            continue;
          if ((rc = count_points(x, 1)))
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
        if (!dup && p->aux[c]->kind == C_FIELD && meas_field(m, p->aux[c]->name) >= 0)
          names[k++] = p->aux[c]->name;
      }
      nn = k;
      grows gr;
      influxql_value *fv = calloc(nn, sizeof *fv);
      if (!fv || (rc = grows_init(&gr, nn, names)) < 0) {
        free(fv);
        free(names);
        rc = rc ? rc : PL_ENOMEM;
        break;
      }
      rc = grows_read(x, sc->ns, g, &gr, sc->range.min, sc->range.max);
      int64_t t;
      while (rc == 0 && grows_next(&gr, &t, fv)) {
        if (fv[0].kind == INFLUXQL_V_NULL)
          continue;
        if (ts->match[gi] < 0) {
          evctx c = {x, g, m, names, fv, nn, t};
          if (cond_truth(&c, sc->cond) != 1)
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
      grows_free(&gr);
      free(fv);
      free(names);
    }
  }
  tsdb_buckets_free(&tb);
  free(fields);
  free(cnames);
  /* results, fill, transforms, rows */
  colvals *tv = NULL;
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
      int mf = meas_field(m, p->aggs[a].field);
      tsdb_type ty = mf >= 0 ? m->types[mf] : TSDB_FLOAT;
      for (size_t k = 0; k < nb; k++) {
        int64_t sel = bts[k];
        int emit = 1;
        p->aggs[a].val[k] = acc_result(&accs[a][k], &p->aggs[a], &sel, &emit);
        if (!emit)
          present[a][k] = 0;
        p->aggs[a].vts[k] = sel;
        /* count is 0, not null, in an empty bucket only while filling with null */
        if (!present[a][k] && p->aggs[a].func == F_COUNT && s->fill != INFLUXQL_FILL_NULL)
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
      int mf = meas_field(m, p->aggs[a].field);
      fill_column(s, &p->aggs[a], p->aggs[a].val, present[a], nb,
                  mf >= 0 ? m->types[mf] : TSDB_FLOAT);
    }
  }
  if (rc == 0 && any_data) {
    for (size_t c = 0; c < p->ncols && rc == 0; c++)
      rc = collect_transforms(p->cols[c], &tv, &ntv, &captv);
    for (size_t i = 0; i < ntv && rc == 0; i++) {
      tv[i].v = calloc(nb, sizeof *tv[i].v);
      influxql_value *in = calloc(nb, sizeof *in);
      if (!tv[i].v || !in) {
        free(in);
        rc = PL_ENOMEM;
        break;
      }
      for (size_t k = 0; k < nb; k++)
        in[k] = agg_eval(tv[i].c->l, p, k, tv, 0);
      run_transform(tv[i].c, in, bts, nb, bk->every ? bk->every : 1000000000, tv[i].v);
      free(in);
    }
    rows = rc == 0 ? malloc(nb * ncols * sizeof *rows) : NULL;
    if (rc == 0 && !rows)
      rc = PL_ENOMEM;
    /* buckets before the statement's range only fed the transformations */
    for (size_t k = bk->skip; k < nb && rc == 0; k++) {
      int point = 0;
      for (size_t c = 0; c < p->ncols && !point; c++)
        point = col_point(p->cols[c], p, k, (const uint8_t *const *)present, tv, ntv,
                          s->fill == INFLUXQL_FILL_NONE);
      if (!point)
        continue;
      influxql_value *row = rows + nrows * ncols;
      row[0].kind = INFLUXQL_V_TIME;
      row[0].v.i = bts[k];
      if (single_selector)
        row[0].v.i = p->aggs[0].vts[k];
      for (size_t c = 0; c < p->ncols; c++)
        row[c + 1] = agg_eval(p->cols[c], p, k, tv, ntv);
      nrows++;
    }
    if (rc == 0 && s->order_desc)
      reverse_rows(rows, nrows, ncols);
    if (rc == 0)
      rc = emit_series(x, m->name, keys, ts->values, nkeys, colnames, ncols, rows, nrows, s);
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

/* Transformations over raw points (no GROUP BY time): each column's series is its field's
 * points across the tag set, in time order; rows join the columns by time. */
static int run_raw_transform_tagset(stmt_ctx *sc, const meas *m, tagset *ts, const char **keys,
                                    size_t nkeys, const char *const *colnames) {
  exec *x = sc->x;
  plan *p = sc->p;
  const influxql_select *s = sc->s;
  int rc = 0;
  size_t nc = p->ncols;
  int64_t **cts = calloc(nc, sizeof *cts);
  influxql_value **cv = calloc(nc, sizeof *cv);
  size_t *cn = calloc(nc, sizeof *cn);
  if (!cts || !cv || !cn)
    rc = PL_ENOMEM;
  for (size_t c = 0; c < nc && rc == 0; c++) {
    const col *cc = p->cols[c];
    if (cc->kind != C_TRANSFORM || !cc->l || cc->l->kind != C_FIELD) {
      rc = stmt_err(x, "mixing aggregate and non-aggregate queries is not supported");
      break;
    }
    const char *field = cc->l->name;
    rowbuf rb = {0};
    rb.stride = 1;
    for (size_t gi = 0; gi < ts->n && rc == 0; gi++) {
      const xgroup *g = ts->g[gi];
      const char *names[65];
      size_t nn = 0;
      names[nn++] = field;
      const char **cnames = NULL;
      size_t ncn = 0, capcn = 0;
      if (ts->match[gi] < 0 && (rc = cond_fields(x, sc->cond, m, &cnames, &ncn, &capcn)) < 0)
        break;
      for (size_t i = 0; i < ncn && nn < 65; i++)
        if (strcmp(cnames[i], field) != 0)
          names[nn++] = cnames[i];
      free(cnames);
      grows gr;
      influxql_value fv[65];
      if ((rc = grows_init(&gr, nn, names)) < 0)
        break;
      rc = grows_read(x, sc->ns, g, &gr, sc->range.min, sc->range.max);
      int64_t t;
      while (rc == 0 && grows_next(&gr, &t, fv)) {
        if (fv[0].kind != INFLUXQL_V_FLOAT && fv[0].kind != INFLUXQL_V_INT)
          continue;
        if (ts->match[gi] < 0) {
          evctx ec = {x, g, m, names, fv, nn, t};
          if (cond_truth(&ec, sc->cond) != 1)
            continue;
        }
        rc = rowbuf_add(&rb, t, gi, fv);
      }
      grows_free(&gr);
    }
    if (rc == 0)
      rc = rowbuf_sort(&rb);
    if (rc == 0) {
      cv[c] = calloc(rb.n ? rb.n : 1, sizeof *cv[c]);
      cts[c] = malloc((rb.n ? rb.n : 1) * sizeof *cts[c]);
      if (!cv[c] || !cts[c])
        rc = PL_ENOMEM;
      else {
        memcpy(cts[c], rb.ts, rb.n * sizeof *rb.ts);
        run_transform(cc, rb.v, rb.ts, rb.n, 1000000000, cv[c]);
        cn[c] = rb.n;
      }
    }
    rowbuf_free(&rb);
  }
  /* join the columns by time */
  size_t ncols = nc + 1;
  rowbuf out = {0};
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
    rc = rowbuf_add(&out, t, 0, row);
  }
  if (rc == 0 && s->order_desc)
    reverse_rows(out.v, out.n, ncols);
  if (rc == 0)
    rc = emit_series(x, m->name, keys, ts->values, nkeys, colnames, ncols, out.v, out.n, s);
  rowbuf_free(&out);
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

/* ---- SELECT ---- */

static int select_run(exec *x, const influxql_select *s, int64_t ns, const trange *outer,
                      influxql_result *into);

typedef struct source_set {
  meas *ms;
  size_t n;
  int64_t ns;  /* the namespace read (statements read one database) */
  catalog cat; /* owns group pointers */
  xgroup **virt_groups;
  size_t nvirt;
  influxql_result *sub; /* subquery results to free */
  size_t nsub;
} source_set;

static void source_set_free(source_set *ss) {
  free(ss->ms);
  catalog_free(&ss->cat);
  free(ss->virt_groups);
  for (size_t i = 0; i < ss->nsub; i++)
    influxql_result_free(&ss->sub[i]);
  free(ss->sub);
  memset(ss, 0, sizeof *ss);
}

static tsdb_type value_type(const influxql_series *s, size_t col) {
  for (size_t k = 0; k < s->nrows; k++) {
    const influxql_value *v = &s->values[k * s->ncolumns + col];
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
static int resolve_sources(exec *x, const influxql_select *s, int64_t ns, const trange *range,
                           source_set *ss) {
  memset(ss, 0, sizeof *ss);
  int rc = 0;
  catalog all = {0};
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
      rc = select_run(x, src->subquery, ns, range, r);
      if (rc < 0)
        break;
      if (r->error) {
        rc = stmt_err(x, "%s", r->error);
        break;
      }
      for (size_t k = 0; k < r->nseries && rc == 0; k++) {
        const influxql_series *se = r->series[k];
        xgroup *g = xalloc(x, sizeof *g);
        if (!g) {
          rc = PL_ENOMEM;
          break;
        }
        g->measurement = se->name ? se->name : "";
        g->ntags = se->ntags;
        g->tags = xalloc(x, (se->ntags ? se->ntags : 1) * sizeof *g->tags);
        g->nfields = se->ncolumns ? se->ncolumns - 1 : 0;
        g->fields = xalloc(x, (g->nfields ? g->nfields : 1) * sizeof *g->fields);
        g->types = xalloc(x, (g->nfields ? g->nfields : 1) * sizeof *g->types);
        if (!g->tags || !g->fields || !g->types) {
          rc = PL_ENOMEM;
          break;
        }
        for (size_t t = 0; t < se->ntags; t++)
          g->tags[t].key = se->tags[t].key, g->tags[t].value = se->tags[t].value;
        for (size_t a = 1; a < g->ntags; a++)
          for (size_t b = a; b > 0 && strcmp(g->tags[b - 1].key, g->tags[b].key) > 0; b--) {
            xtag tmp = g->tags[b];
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
        VEC_PUSH(ss->cat.g, ss->cat.n, ss->cat.cap, g, rc);
      }
      continue;
    }
    if (src->db && x->o->db_name && strcmp(src->db, x->o->db_name) != 0) {
      if (!x->o->resolve_db) {
        rc = stmt_err(x, "database not found: %s", src->db);
        break;
      }
      int64_t other;
      int r = x->o->resolve_db(x->o->resolve_ctx, src->db, &other);
      if (r == PL_ENOTFOUND) {
        rc = stmt_err(x, "database not found: %s", src->db);
        break;
      }
      if (r < 0) {
        rc = r;
        break;
      }
      if (loaded && other != src_ns) {
        rc = stmt_err(x, "a statement can read one database only");
        break;
      }
      src_ns = other;
    }
    if (!loaded) {
      if ((rc = catalog_load(x, src_ns, NULL, &all)) < 0)
        break;
      loaded = 1;
    }
    for (size_t k = 0; k < all.n && rc == 0; k++) {
      xgroup *g = all.g[k];
      if (src->regex) {
        const regex_t *re = rx_get(x, src, src->regex);
        if (!rx_match(re, g->measurement))
          continue;
      } else if (!src->name || strcmp(src->name, g->measurement) != 0) {
        continue;
      }
      if (g->picked)
        continue;
      g->picked = 1;
      VEC_PUSH(ss->cat.g, ss->cat.n, ss->cat.cap, g, rc);
    }
  }
  catalog_free(&all);
  if (rc)
    return rc;
  ss->ns = src_ns;
  xsort(ss->cat.g, ss->cat.n, sizeof *ss->cat.g, cmp_group_meas_key);
  return measures_from(x, &ss->cat, &ss->ms, &ss->n);
}

/* A field list entry after expanding wildcards for measurement set: the expression and name. */
typedef struct field_out {
  col *c;
  const char *name;
  int aliased;
} field_out;

/* f(*) and f over a regex: the fields of the statement's measurements: one column per field the
 * function accepts (numeric fields for the numeric ones), named "<f>_<field>" (or
 * "<alias>_<field>"), in field-name order. */
static int expand_wildcard_agg(exec *x, plan *p, const influxql_expr *e, const char *alias,
                               const source_set *ss, field_out **f, size_t *nf, size_t *cap) {
  int func = agg_func(e->str);
  int any_type = func == F_COUNT || func == F_FIRST || func == F_LAST;
  const char **names = NULL;
  size_t nn = 0, cn = 0;
  int rc = 0;
  for (size_t mi = 0; mi < ss->n && rc == 0; mi++) {
    const meas *m = &ss->ms[mi];
    for (size_t k = 0; k < m->nfields && rc == 0; k++) {
      if (!any_type && (m->types[k] == TSDB_STRING || m->types[k] == TSDB_BOOL))
        continue;
      if (e->args[0]->kind == INFLUXQL_EXPR_REGEX &&
          !rx_match(rx_get(x, e->args[0], e->args[0]->str), m->fields[k]))
        continue;
      size_t q;
      for (q = 0; q < nn; q++)
        if (strcmp(names[q], m->fields[k]) == 0)
          break;
      if (q == nn)
        VEC_PUSH(names, nn, cn, m->fields[k], rc);
    }
  }
  xsort(names, nn, sizeof *names, cmp_str);
  for (size_t k = 0; k < nn && rc == 0; k++) {
    influxql_expr *call = xalloc(x, sizeof *call), *arg = xalloc(x, sizeof *arg);
    influxql_expr **args = xalloc(x, e->nargs * sizeof *args);
    if (!call || !arg || !args) {
      rc = PL_ENOMEM;
      break;
    }
    *call = *e;
    arg->kind = INFLUXQL_EXPR_VARREF;
    arg->str = names[k];
    arg->len = strlen(names[k]);
    args[0] = arg;
    for (size_t a = 1; a < e->nargs; a++)
      args[a] = e->args[a];
    call->args = args;
    int has = 0;
    col *c;
    if ((rc = build_col(x, p, call, &c, &has)))
      break;
    char buf[600];
    snprintf(buf, sizeof buf, "%s_%s", alias ? alias : e->str, names[k]);
    const char *nm = xstrndup(x, buf, strlen(buf));
    if (!nm) {
      rc = PL_ENOMEM;
      break;
    }
    field_out fo = {c, nm, 1};
    VEC_PUSH(*f, *nf, *cap, fo, rc);
  }
  free(names);
  return rc;
}

static int raw_columns(exec *x, plan *p, const influxql_select *s, const source_set *ss,
                       const dims *d, field_out **out, size_t *n) {
  size_t cap = 16, nf = 0;
  field_out *f = malloc(cap * sizeof *f);
  if (!f)
    return PL_ENOMEM;
  int rc = 0;
  for (size_t i = 0; i < s->nfields && rc == 0; i++) {
    const influxql_expr *e = s->fields[i].expr;
    if (e->kind == INFLUXQL_EXPR_WILDCARD || e->kind == INFLUXQL_EXPR_REGEX) {
      /* all fields and tags of every measurement (tags not used in GROUP BY), sorted by name */
      const char **names = NULL;
      int *is_tag = NULL;
      size_t nn = 0, cn = 0;
      for (size_t mi = 0; mi < ss->n && rc == 0; mi++) {
        const meas *m = &ss->ms[mi];
        const char **keys;
        size_t nkeys;
        if ((rc = dim_keys(x, d, m, &keys, &nkeys)) < 0)
          break;
        for (int pass = 0; pass < 2 && rc == 0; pass++) {
          size_t cnt = pass == 0 ? m->nfields : m->ntagkeys;
          if (pass == 1 && (e->vtype == INFLUXQL_VT_FIELD || e->kind == INFLUXQL_EXPR_REGEX))
            break;
          if (pass == 0 && e->vtype == INFLUXQL_VT_TAG)
            continue;
          for (size_t k = 0; k < cnt && rc == 0; k++) {
            const char *nm = pass == 0 ? m->fields[k] : m->tagkeys[k];
            if (pass == 1) {
              int grouped = 0;
              for (size_t q = 0; q < nkeys; q++)
                grouped |= strcmp(keys[q], nm) == 0;
              if (grouped)
                continue;
            }
            if (e->kind == INFLUXQL_EXPR_REGEX && !rx_match(rx_get(x, e, e->str), nm))
              continue;
            size_t q;
            for (q = 0; q < nn; q++)
              if (strcmp(names[q], nm) == 0)
                break;
            if (q < nn)
              continue;
            if (nn == cn) {
              cn = cn ? cn * 2 : 16;
              const char **np = realloc(names, cn * sizeof *np);
              int *nt = np ? realloc(is_tag, cn * sizeof *nt) : NULL;
              if (np)
                names = np;
              if (!np || !nt) {
                rc = PL_ENOMEM;
                break;
              }
              is_tag = nt;
            }
            names[nn] = nm;
            is_tag[nn++] = pass == 1;
          }
        }
      }
      for (size_t a = 1; a < nn; a++)
        for (size_t b = a; b > 0 && strcmp(names[b - 1], names[b]) > 0; b--) {
          const char *t = names[b];
          names[b] = names[b - 1];
          names[b - 1] = t;
          int it = is_tag[b];
          is_tag[b] = is_tag[b - 1];
          is_tag[b - 1] = it;
        }
      for (size_t k = 0; k < nn && rc == 0; k++) {
        col *c = new_col(x, is_tag[k] ? C_TAG : C_FIELD);
        if (!c) {
          rc = PL_ENOMEM;
          break;
        }
        c->name = names[k];
        field_out fo = {c, names[k], 0};
        VEC_PUSH(f, nf, cap, fo, rc);
      }
      free(names);
      free(is_tag);
      continue;
    }
    if (e->kind == INFLUXQL_EXPR_VARREF && strcasecmp(e->str, "time") == 0)
      continue;
    if (e->kind == INFLUXQL_EXPR_CALL && agg_func(e->str) && e->nargs >= 1 &&
        (e->args[0]->kind == INFLUXQL_EXPR_WILDCARD || e->args[0]->kind == INFLUXQL_EXPR_REGEX)) {
      if ((rc = expand_wildcard_agg(x, p, e, s->fields[i].alias, ss, &f, &nf, &cap)) < 0)
        break;
      if (rc)
        break;
      continue;
    }
    int has = 0;
    col *c;
    if ((rc = build_col(x, p, e, &c, &has)))
      break;
    pl_buf b;
    pl_buf_init(&b, 4096);
    if (s->fields[i].alias)
      pl_buf_append_str(&b, s->fields[i].alias);
    else
      expr_name(e, &b);
    const char *nm = xstrndup(x, b.len ? (const char *)b.data : "", b.len);
    pl_buf_free(&b);
    if (!nm) {
      rc = PL_ENOMEM;
      break;
    }
    field_out fo = {c, nm, s->fields[i].alias != NULL};
    VEC_PUSH(f, nf, cap, fo, rc);
  }
  if (rc) {
    free(f);
    return rc;
  }
  *out = f;
  *n = nf;
  return 0;
}

static int count_calls(const influxql_expr *e, int *selectors) {
  if (!e)
    return 0;
  if (e->kind == INFLUXQL_EXPR_CALL) {
    int f = agg_func(e->str);
    if (f && is_selector(f))
      (*selectors)++;
    if (transform_of(e->str))
      return 2; /* a transformation is never a lone selector */
    return 1;
  }
  if (e->kind == INFLUXQL_EXPR_PAREN)
    return count_calls(e->lhs, selectors);
  if (e->kind == INFLUXQL_EXPR_BINARY)
    return count_calls(e->lhs, selectors) + count_calls(e->rhs, selectors);
  return 0;
}

static int select_run(exec *x, const influxql_select *s, int64_t ns, const trange *outer,
                      influxql_result *into) {
  influxql_result *saved = x->res;
  x->res = into;
  int rc = 0;
  stmt_ctx sc = {0};
  sc.x = x;
  sc.s = s;
  sc.ns = ns;
  plan p = {0};
  p.s = s;
  source_set ss = {0};
  field_out *fo = NULL;
  size_t nfo = 0;
  const char **colnames = NULL;
  influxql_tz *tz = NULL;

  if (s->into) {
    rc = stmt_err(x, "SELECT INTO is not supported by Plateau");
    goto done;
  }
  range_init(&sc.range);
  if ((rc = split_time(x, s->cond, &sc.range, &sc.cond)))
    goto done;
  if (outer) {
    if (outer->has_min)
      range_min(&sc.range, outer->min);
    if (outer->has_max)
      range_max(&sc.range, outer->max);
  }
  if ((rc = parse_dims(x, s, &sc.d)))
    goto done;
  if (s->tz) {
    int r = influxql__tz_load(s->tz, &tz);
    if (r == PL_ENOTFOUND) {
      rc = stmt_err(x, "unable to find time zone %s", s->tz);
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
    col *tmp;
    plan probe = {0};
    if ((rc = build_col(x, &probe, e, &tmp, &h))) {
      free(probe.aggs);
      goto done;
    }
    free(probe.aggs);
    has_all |= h;
    n_calls += count_calls(e, &n_selectors);
  }
  int aux_ok = 0;
  if ((has_all & HAS_AGG) && (has_all & HAS_RAW) &&
      !(has_all & (HAS_TRANSFORM | HAS_WILDCARD_AGG)) && n_calls == 1 && n_selectors == 1) {
    /* a lone selector may carry fields and tags of the point it selects */
    aux_ok = 1;
    for (size_t i = 0; i < s->nfields && aux_ok; i++) {
      const influxql_expr *e = s->fields[i].expr;
      while (e->kind == INFLUXQL_EXPR_PAREN)
        e = e->lhs;
      if (e->kind == INFLUXQL_EXPR_CALL)
        aux_ok = agg_func(e->str) != F_PERCENTILE;
      else
        aux_ok = e->kind == INFLUXQL_EXPR_VARREF || e->kind == INFLUXQL_EXPR_WILDCARD;
    }
  }
  if ((has_all & (HAS_AGG | HAS_RAW_TRANSFORM)) && (has_all & HAS_RAW) && !aux_ok) {
    rc = stmt_err(x, "mixing aggregate and non-aggregate queries is not supported");
    goto done;
  }
  if ((has_all & HAS_AGG) && (has_all & HAS_RAW_TRANSFORM)) {
    rc = stmt_err(x, "mixing aggregate and non-aggregate queries is not supported");
    goto done;
  }
  p.aggregate = (has_all & HAS_AGG) != 0;
  p.raw_transform = (has_all & HAS_RAW_TRANSFORM) != 0;
  if (sc.d.has_time && !p.aggregate) {
    rc = stmt_err(x, p.raw_transform ? "aggregate function required inside the call to derivative"
                                     : "GROUP BY requires at least one aggregate function");
    goto done;
  }
  if (p.aggregate && (has_all & HAS_TRANSFORM) && !sc.d.has_time) {
    for (size_t i = 0; i < s->nfields; i++)
      if (s->fields[i].expr->kind == INFLUXQL_EXPR_CALL && transform_of(s->fields[i].expr->str)) {
        rc = stmt_err(x, "%s aggregate requires a GROUP BY interval", s->fields[i].expr->str);
        goto done;
      }
    rc = stmt_err(x, "aggregate transformations require a GROUP BY interval");
    goto done;
  }
  if ((rc = resolve_sources(x, s, ns, &sc.range, &ss)))
    goto done;
  sc.ns = ss.ns;
  if ((rc = raw_columns(x, &p, s, &ss, &sc.d, &fo, &nfo)))
    goto done;
  if (!p.aggregate && !p.raw_transform) {
    int any_field = 0;
    for (size_t i = 0; i < nfo; i++)
      for (size_t mi = 0; mi < ss.n && !any_field; mi++)
        any_field |= col_reads_field(fo[i].c, &ss.ms[mi]);
    if (!nfo) {
      rc = stmt_err(x, "statement must have at least one field in select clause");
      goto done;
    }
    (void)any_field;
  }
  p.ncols = nfo;
  p.cols = xalloc(x, (nfo ? nfo : 1) * sizeof *p.cols);
  colnames = xalloc(x, (nfo + 1) * sizeof *colnames);
  const char **given = xalloc(x, (nfo ? nfo : 1) * sizeof *given);
  int *aliased = xalloc(x, (nfo ? nfo : 1) * sizeof *aliased);
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
  if ((rc = name_columns(x, given, aliased, nfo, colnames + 1)))
    goto done;
  if (aux_ok) {
    p.aux = xalloc(x, (nfo ? nfo : 1) * sizeof *p.aux);
    if (!p.aux) {
      rc = PL_ENOMEM;
      goto done;
    }
    for (size_t i = 0; i < nfo; i++)
      if (p.cols[i]->kind == C_FIELD || p.cols[i]->kind == C_TAG) {
        p.cols[i]->agg = p.naux;
        p.aux[p.naux++] = p.cols[i];
      }
  }
  /* each plan column reuses the aggregate table built by build_col through raw_columns */
  sc.p = &p;

  /* time range defaults */
  if (p.aggregate && sc.d.has_time && !sc.range.has_max)
    sc.range.max = x->o->now_ns;
  if (p.aggregate && sc.d.has_time && !sc.range.has_min) {
    int64_t lo = MAX_TIME;
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
    int64_t e = transform_extension(p.cols[i]);
    if (e > ext)
      ext = e;
  }
  for (size_t mi = 0; mi < ss.n && rc == 0; mi++) {
    meas *m = &ss.ms[mi];
    const char **keys;
    size_t nkeys;
    if ((rc = dim_keys(x, &sc.d, m, &keys, &nkeys)))
      break;
    tagsets tsets;
    if ((rc = make_tagsets(x, m, sc.cond, keys, nkeys, &tsets)))
      break;
    size_t from = (size_t)s->soffset, to = tsets.n;
    if (s->slimit && from + (size_t)s->slimit < to)
      to = from + (size_t)s->slimit;
    if (p.aggregate) {
      buckets bk = {0};
      bucket_index bi = {0};
      bk.every = sc.d.has_time ? sc.d.every : 0;
      bk.offset = sc.d.offset;
      bk.tz = sc.tz;
      if (sc.range.min > sc.range.max) {
        tagsets_free(&tsets);
        continue;
      }
      trange saved = sc.range;
      if (bk.every) {
        bk.first = bucket_start(&bk, sc.range.min);
        if (ext) {
          /* transformations see the buckets before the range too (not shown) */
          bk.first = (int64_t)((uint64_t)bk.first - (uint64_t)ext * (uint64_t)bk.every);
          bk.skip = (size_t)ext;
          sc.range.min = bk.first;
        }
        bk.last = bucket_start(&bk, sc.range.max);
        uint64_t nb = ((uint64_t)bk.last - (uint64_t)bk.first) / (uint64_t)bk.every + 1;
        if (nb > BUCKETS_MAX) {
          tagsets_free(&tsets);
          rc = stmt_err(x,
                        "too many buckets: the statement would make %llu time buckets (at most %d)",
                        (unsigned long long)nb, BUCKETS_MAX);
          break;
        }
        bk.n = (size_t)nb;
        if (bk.n > BUCKET_CELLS_MAX / (p.naggs ? p.naggs : 1)) {
          tagsets_free(&tsets);
          rc = stmt_err(x,
                        "too many buckets: %zu time buckets of %zu functions (at most %zu cells); "
                        "use a longer "
                        "GROUP BY time interval or a shorter range",
                        bk.n, p.naggs, BUCKET_CELLS_MAX);
          break;
        }
        if (sc.tz &&
            influxql__tz_offset(sc.tz, sc.range.min) != influxql__tz_offset(sc.tz, sc.range.max)) {
          /* the offset changes inside the range: list the starts */
          bi.starts = malloc((bk.n + 2) * sizeof *bi.starts);
          if (!bi.starts)
            rc = PL_ENOMEM;
          size_t k = 0;
          int64_t t = bk.first;
          while (rc == 0 && k < bk.n + 1 && t <= sc.range.max) {
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
        bk.first = sc.range.has_min ? sc.range.min : 0;
        bk.n = 1;
      }
      for (size_t t = from; t < to && rc == 0; t++)
        rc = run_agg_tagset(&sc, m, &tsets.t[s->order_desc ? to - 1 - (t - from) : t], keys, nkeys,
                            &bk, &bi, colnames, single_selector);
      free(bi.starts);
      sc.range = saved;
    } else if (p.raw_transform) {
      for (size_t t = from; t < to && rc == 0; t++)
        rc = run_raw_transform_tagset(&sc, m, &tsets.t[s->order_desc ? to - 1 - (t - from) : t],
                                      keys, nkeys, colnames);
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
    tagsets_free(&tsets);
  }
done:
  influxql__tz_free(tz);
  free(fo);
  free(p.aggs);
  source_set_free(&ss);
  x->res = saved;
  return rc;
}

/* ---- SHOW ---- */

static int source_matches(exec *x, const influxql_source *src, size_t n, const char *measurement) {
  if (!n)
    return 1;
  for (size_t i = 0; i < n; i++) {
    if (src[i].regex) {
      if (rx_match(rx_get(x, &src[i], src[i].regex), measurement))
        return 1;
    } else if (src[i].name && strcmp(src[i].name, measurement) == 0) {
      return 1;
    }
  }
  return 0;
}

/* The namespace a SHOW statement reads (ON db, else the request's). */
static int stmt_ns(exec *x, const char *db, int64_t *ns) {
  *ns = x->o->ns;
  if (!db || (x->o->db_name && strcmp(db, x->o->db_name) == 0))
    return 0;
  if (!x->o->resolve_db)
    return stmt_err(x, "database not found: %s", db);
  int rc = x->o->resolve_db(x->o->resolve_ctx, db, ns);
  if (rc == PL_ENOTFOUND)
    return stmt_err(x, "database not found: %s", db);
  return rc;
}

/* The measurements of a SHOW statement's namespace, with the groups that pass its WHERE (a
 * condition on fields cannot be decided from the index: such groups are kept). */
static int show_prepare(exec *x, const influxql_stmt *st, catalog *cat, meas **ms, size_t *n) {
  int64_t ns;
  int rc = stmt_ns(x, st->db, &ns);
  if (rc)
    return rc;
  trange r;
  range_init(&r);
  influxql_expr *cond = NULL;
  if ((rc = split_time(x, st->cond, &r, &cond)))
    return rc;
  if ((rc = catalog_load(x, ns, NULL, cat)) < 0)
    return rc;
  size_t k = 0;
  for (size_t i = 0; i < cat->n; i++) {
    xgroup *g = cat->g[i];
    if (!source_matches(x, st->sources, st->nsources, g->measurement))
      continue;
    if (st->with_measurement) {
      const influxql_source *w = st->with_measurement;
      if (w->regex ? !rx_match(rx_get(x, w, w->regex), g->measurement)
                   : (!w->name || strcmp(w->name, g->measurement) != 0))
        continue;
    }
    evctx c = {x, g, NULL, NULL, NULL, 0, 0};
    if (cond && cond_truth(&c, cond) == 0)
      continue;
    cat->g[k++] = g;
  }
  cat->n = k;
  xsort(cat->g, cat->n, sizeof *cat->g, cmp_group_meas_key);
  return measures_from(x, cat, ms, n);
}

static int show_measurements(exec *x, const influxql_stmt *st) {
  catalog cat;
  meas *ms = NULL;
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
      rc = emit_series(x, "measurements", NULL, NULL, 0, cols, 1, rows, n, &lim);
    free(rows);
  }
  free(ms);
  catalog_free(&cat);
  return rc;
}

static int show_tag_keys(exec *x, const influxql_stmt *st) {
  catalog cat;
  meas *ms = NULL;
  size_t n = 0;
  int rc = show_prepare(x, st, &cat, &ms, &n);
  size_t from = 0, to = n; /* SLIMIT and SOFFSET parse but do nothing here, as in InfluxDB 1.6 */
  static const char *const cols[] = {"tagKey"};
  influxql_select lim = {0};
  lim.limit = st->limit, lim.offset = st->offset;
  for (size_t i = from; i < to && rc == 0; i++) {
    const meas *m = &ms[i];
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
    rc = emit_series(x, m->name, NULL, NULL, 0, cols, 1, rows, m->ntagkeys, &lim);
    free(rows);
  }
  free(ms);
  catalog_free(&cat);
  return rc;
}

static int key_selected(exec *x, const influxql_stmt *st, const char *key) {
  if (st->key_regex) {
    int m = rx_match(rx_get(x, st, st->key_regex), key);
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

static int show_tag_values(exec *x, const influxql_stmt *st) {
  catalog cat;
  meas *ms = NULL;
  size_t n = 0;
  int rc = show_prepare(x, st, &cat, &ms, &n);
  static const char *const cols[] = {"key", "value"};
  influxql_select lim = {0};
  lim.limit = st->limit, lim.offset = st->offset;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const meas *m = &ms[i];
    kv *pairs = NULL;
    size_t np = 0, cap = 0;
    for (size_t g = 0; g < m->n && rc == 0; g++)
      for (size_t t = 0; t < m->g[g]->ntags && rc == 0; t++) {
        const xtag *tg = &m->g[g]->tags[t];
        if (!key_selected(x, st, tg->key))
          continue;
        kv p = {tg->key, tg->value};
        VEC_PUSH(pairs, np, cap, p, rc);
      }
    if (rc == 0 && np) {
      xsort(pairs, np, sizeof *pairs, cmp_kv);
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
        rc = emit_series(x, m->name, NULL, NULL, 0, cols, 2, rows, u, &lim);
      free(rows);
    }
    free(pairs);
  }
  free(ms);
  catalog_free(&cat);
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

static int show_field_keys(exec *x, const influxql_stmt *st) {
  catalog cat;
  meas *ms = NULL;
  size_t n = 0;
  int rc = show_prepare(x, st, &cat, &ms, &n);
  static const char *const cols[] = {"fieldKey", "fieldType"};
  influxql_select lim = {0};
  lim.limit = st->limit, lim.offset = st->offset;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const meas *m = &ms[i];
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
    rc = emit_series(x, m->name, NULL, NULL, 0, cols, 2, rows, m->nfields, &lim);
    free(rows);
  }
  free(ms);
  catalog_free(&cat);
  return rc;
}

static int show_series(exec *x, const influxql_stmt *st) {
  catalog cat;
  meas *ms = NULL;
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
      xsort(keys, cat.n, sizeof *keys, cmp_str);
      for (size_t i = 0; i < cat.n; i++) {
        rows[i].kind = INFLUXQL_V_STRING;
        rows[i].v.s.p = keys[i];
        rows[i].v.s.len = strlen(keys[i]);
      }
      static const char *const cols[] = {"key"};
      influxql_select lim = {0};
      lim.limit = st->limit, lim.offset = st->offset;
      rc = emit_series(x, NULL, NULL, NULL, 0, cols, 1, rows, cat.n, &lim);
    }
    free(keys);
    free(rows);
  }
  free(ms);
  catalog_free(&cat);
  return rc;
}

/* ---- DROP SERIES, DELETE, DROP MEASUREMENT ---- */

static int refs_field(exec *x, const influxql_expr *e, const xgroup *g) {
  if (!e)
    return 0;
  if (e->kind == INFLUXQL_EXPR_VARREF)
    return e->vtype == INFLUXQL_VT_FIELD ||
           (e->vtype == INFLUXQL_VT_ANY && group_field(g, e->str) >= 0);
  if (e->kind == INFLUXQL_EXPR_PAREN)
    return refs_field(x, e->lhs, g);
  if (e->kind == INFLUXQL_EXPR_BINARY)
    return refs_field(x, e->lhs, g) || refs_field(x, e->rhs, g);
  return 0;
}

static int delete_data(exec *x, const influxql_stmt *st) {
  trange r;
  range_init(&r);
  influxql_expr *cond = NULL;
  int rc = split_time(x, st->cond, &r, &cond);
  if (rc)
    return rc;
  if (st->kind == INFLUXQL_STMT_DROP_SERIES && (r.has_min || r.has_max))
    return stmt_err(x, "DROP SERIES doesn't support time in WHERE clause");
  catalog cat;
  if ((rc = catalog_load(x, x->o->ns, NULL, &cat)) < 0)
    return rc;
  int64_t start = r.has_min ? r.min : INT64_MIN,
          end = r.has_max ? (r.max == INT64_MAX ? INT64_MAX : r.max + 1) : INT64_MAX;
  for (size_t i = 0; i < cat.n && rc == 0; i++) {
    const xgroup *g = cat.g[i];
    if (!source_matches(x, st->sources, st->nsources, g->measurement))
      continue;
    if (refs_field(x, cond, g)) {
      rc = stmt_err(x, "fields not supported in WHERE clause during deletion");
      break;
    }
    evctx c = {x, g, NULL, NULL, NULL, 0, 0};
    if (cond_truth(&c, cond) != 1)
      continue;
    pl_err err = {{0}};
    tsdb_str m = {g->measurement, strlen(g->measurement)};
    int64_t n = tsdb_delete(x->o->db, x->o->ns, m, g->id, start, end, &err);
    if (n < 0)
      rc = stmt_err(x, "delete failed: %s", err.msg[0] ? err.msg : pl_strerror((int)n));
  }
  catalog_free(&cat);
  return rc;
}

static int drop_measurement(exec *x, const influxql_stmt *st) {
  pl_err err = {{0}};
  tsdb_str m = {st->name, strlen(st->name)};
  int64_t n = tsdb_delete(x->o->db, x->o->ns, m, 0, INT64_MIN, INT64_MAX, &err);
  if (n < 0)
    return stmt_err(x, "drop failed: %s", err.msg[0] ? err.msg : pl_strerror((int)n));
  return 0;
}

/* ---- entry ---- */

int influxql_exec(const influxql_exec_opts *opts, const influxql_stmt *stmt, influxql_result *res) {
  exec x = {0};
  x.o = opts;
  x.res = res;
  x.points_max = opts->points_max ? opts->points_max : POINTS_MAX_DEFAULT;
  x.series_max = opts->series_max ? opts->series_max : SERIES_MAX_DEFAULT;
  x.arena = influxql__arena_new((size_t)1 << 32);
  if (!x.arena)
    return PL_ENOMEM;
  int rc;
  switch (stmt->kind) {
  case INFLUXQL_STMT_SELECT: rc = select_run(&x, stmt->select, opts->ns, NULL, res); break;
  case INFLUXQL_STMT_SHOW_MEASUREMENTS: rc = show_measurements(&x, stmt); break;
  case INFLUXQL_STMT_SHOW_TAG_KEYS: rc = show_tag_keys(&x, stmt); break;
  case INFLUXQL_STMT_SHOW_TAG_VALUES: rc = show_tag_values(&x, stmt); break;
  case INFLUXQL_STMT_SHOW_FIELD_KEYS: rc = show_field_keys(&x, stmt); break;
  case INFLUXQL_STMT_SHOW_SERIES: rc = show_series(&x, stmt); break;
  case INFLUXQL_STMT_DROP_SERIES:
  case INFLUXQL_STMT_DELETE: rc = delete_data(&x, stmt); break;
  case INFLUXQL_STMT_DROP_MEASUREMENT: rc = drop_measurement(&x, stmt); break;
  case INFLUXQL_STMT_UNSUPPORTED:
    rc = stmt_err(&x, "%s is not supported by Plateau", stmt->text ? stmt->text : "this statement");
    break;
  default: rc = stmt_err(&x, "this statement is answered by the server, not the executor"); break;
  }
  for (size_t i = 0; i < x.nrx; i++)
    regfree(&x.rx[i].re);
  free(x.rx);
  influxql__arena_free(x.arena);
  if (rc == STMT_ERR) {
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
