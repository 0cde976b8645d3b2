/* Conditions for the executor: evaluating WHERE over a group (tags known, fields unknown: the
 * answer may be "depends on its points") or over a point, and taking the time comparisons out
 * of a condition as an inclusive time range read from the engine. Also the arithmetic of values
 * that exec_select.c and exec_rows.c apply to columns (influxql__binop), which follows the same
 * rules as in conditions. */
#include "influxql/influxql_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

static int is_field_name(const influxql_cond_ctx *c, const influxql_expr *v) {
  if (v->vtype == INFLUXQL_VT_TAG)
    return 0;
  if (v->vtype != INFLUXQL_VT_ANY)
    return 1;
  return c->m ? influxql__meas_field(c->m, v->str) >= 0 : influxql__group_field(c->g, v->str) >= 0;
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

static ev eval(const influxql_cond_ctx *c, const influxql_expr *e);
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

/* The operators arith() computes; the others of a binary expression compare. */
static int is_arith_op(influxql_op op) {
  switch (op) {
  case INFLUXQL_OP_ADD:
  case INFLUXQL_OP_SUB:
  case INFLUXQL_OP_MUL:
  case INFLUXQL_OP_DIV:
  case INFLUXQL_OP_MOD:
  case INFLUXQL_OP_BITAND:
  case INFLUXQL_OP_BITOR:
  case INFLUXQL_OP_BITXOR: return 1;
  default: return 0;
  }
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

static ev compare(const influxql_cond_ctx *c, influxql_op op, ev a, ev b) {
  if (a.kind == EV_UNKNOWN || b.kind == EV_UNKNOWN)
    return ev_unknown();
  if (a.is_time)
    as_time(&b);
  if (b.is_time)
    as_time(&a);
  if (op == INFLUXQL_OP_EQREGEX || op == INFLUXQL_OP_NEQREGEX) {
    if (b.kind != EV_REGEX || a.kind != EV_STR)
      return ev_bool(0);
    const regex_t *re = influxql__regex_get(c->x, b.node, b.node->str);
    char small[256];
    char *s = a.len < sizeof small ? small : malloc(a.len + 1);
    if (!s)
      return ev_bool(0);
    memcpy(s, a.s, a.len);
    s[a.len] = 0;
    int m = influxql__regex_match(re, s);
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

static ev eval(const influxql_cond_ctx *c, const influxql_expr *e) {
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
      const char *v = influxql__tag_value(c->g, e->str);
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
    if (!is_arith_op(e->op))
      return compare(c, e->op, a, b);
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
  }
  default: return r;
  }
}

/* 1 true, 0 false, -1 depends on fields */
int influxql__cond_truth(const influxql_cond_ctx *c, const influxql_expr *cond) {
  if (!cond)
    return 1;
  ev v = eval(c, cond);
  if (v.kind == EV_UNKNOWN)
    return -1;
  return v.kind == EV_BOOL && v.b;
}

/* Field names a condition reads (those known as fields of m). */
int influxql__cond_fields(influxql_exec_ctx *x, const influxql_expr *e, const influxql_meas *m,
                          const char ***names, size_t *n, size_t *cap) {
  if (!e)
    return 0;
  int rc = 0;
  switch (e->kind) {
  case INFLUXQL_EXPR_VARREF:
    if (e->vtype != INFLUXQL_VT_TAG &&
        (e->vtype != INFLUXQL_VT_ANY || influxql__meas_field(m, e->str) >= 0)) {
      for (size_t i = 0; i < *n; i++)
        if (strcmp((*names)[i], e->str) == 0)
          return 0;
      INFLUXQL_VEC_PUSH(*names, *n, *cap, e->str, rc);
    }
    return rc;
  case INFLUXQL_EXPR_PAREN: return influxql__cond_fields(x, e->lhs, m, names, n, cap);
  case INFLUXQL_EXPR_BINARY:
    rc = influxql__cond_fields(x, e->lhs, m, names, n, cap);
    return rc ? rc : influxql__cond_fields(x, e->rhs, m, names, n, cap);
  case INFLUXQL_EXPR_CALL:
    for (size_t i = 0; i < e->nargs && rc == 0; i++)
      rc = influxql__cond_fields(x, e->args[i], m, names, n, cap);
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
static int eval_time(influxql_exec_ctx *x, const influxql_expr *e, int64_t *out) {
  switch (e->kind) {
  case INFLUXQL_EXPR_INTEGER:
  case INFLUXQL_EXPR_DURATION: *out = e->i; return 0;
  case INFLUXQL_EXPR_NUMBER:
    if (!(e->f > (double)INT64_MIN && e->f < (double)INT64_MAX))
      return influxql__stmt_err(x, "time out of range");
    *out = (int64_t)e->f;
    return 0;
  case INFLUXQL_EXPR_STRING:
    if (parse_time_literal(e->str, out) < 0)
      return influxql__stmt_err(
          x, "invalid operation: time and *influxql.StringLiteral are not compatible");
    return 0;
  case INFLUXQL_EXPR_CALL:
    if (strcmp(e->str, "now") == 0 && e->nargs == 0) {
      *out = x->o->now_ns;
      return 0;
    }
    return influxql__stmt_err(x, "invalid function call in time condition: %s()", e->str);
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
      *out = t < INFLUXQL_MIN_TIME   ? INFLUXQL_MIN_TIME
             : t > INFLUXQL_MAX_TIME ? INFLUXQL_MAX_TIME
                                     : (int64_t)t;
      return 0;
    }
    break;
  default: break;
  }
  pl_buf b;
  pl_buf_init(&b, 1024);
  influxql_expr_format(e, &b);
  int rc = influxql__stmt_err(x, "invalid time condition: %s", b.len ? pl_buf_cstr(&b) : "");
  pl_buf_free(&b);
  return rc;
}

void influxql__range_init(influxql_time_range *r) {
  r->min = INFLUXQL_MIN_TIME;
  r->max = INFLUXQL_MAX_TIME;
  r->has_min = r->has_max = 0;
}

void influxql__range_min(influxql_time_range *r, int64_t v) {
  if (v > r->min || !r->has_min)
    r->min = r->has_min && r->min > v ? r->min : v;
  r->has_min = 1;
}

void influxql__range_max(influxql_time_range *r, int64_t v) {
  if (v < r->max || !r->has_max)
    r->max = r->has_max && r->max < v ? r->max : v;
  r->has_max = 1;
}

/* Removes time comparisons from a condition (joined by AND) into r; *rest is what is left. */
int influxql__split_time(influxql_exec_ctx *x, influxql_expr *e, influxql_time_range *r,
                         influxql_expr **rest) {
  *rest = NULL;
  if (!e)
    return 0;
  int rc;
  if (e->kind == INFLUXQL_EXPR_PAREN) {
    if (!has_time_ref(e->lhs)) {
      *rest = e;
      return 0;
    }
    return influxql__split_time(x, e->lhs, r, rest);
  }
  if (e->kind != INFLUXQL_EXPR_BINARY) {
    *rest = e;
    return 0;
  }
  if (e->op == INFLUXQL_OP_AND) {
    influxql_expr *l, *rr;
    if ((rc = influxql__split_time(x, e->lhs, r, &l)))
      return rc;
    if ((rc = influxql__split_time(x, e->rhs, r, &rr)))
      return rc;
    if (!l)
      *rest = rr;
    else if (!rr)
      *rest = l;
    else {
      influxql_expr *a = influxql__alloc(x->arena, sizeof *a);
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
      influxql_time_range a, b;
      influxql_expr *ra, *rb;
      influxql__range_init(&a);
      influxql__range_init(&b);
      if ((rc = influxql__split_time(x, e->lhs, &a, &ra)))
        return rc;
      if ((rc = influxql__split_time(x, e->rhs, &b, &rb)))
        return rc;
      if (a.has_min && b.has_min)
        influxql__range_min(r, a.min < b.min ? a.min : b.min);
      if (a.has_max && b.has_max)
        influxql__range_max(r, a.max > b.max ? a.max : b.max);
    }
    *rest = e;
    return 0;
  }
  int lt = is_time_ref(e->lhs), rt = is_time_ref(e->rhs);
  if (!lt && !rt) {
    if (has_time_ref(e))
      return influxql__stmt_err(x, "invalid condition: time can only be compared with a time");
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
  case INFLUXQL_OP_GT:
    influxql__range_min(r, t == INFLUXQL_MAX_TIME ? INFLUXQL_MAX_TIME : t + 1);
    break;
  case INFLUXQL_OP_GTE: influxql__range_min(r, t); break;
  case INFLUXQL_OP_LT:
    influxql__range_max(r, t == INFLUXQL_MIN_TIME ? INFLUXQL_MIN_TIME : t - 1);
    break;
  case INFLUXQL_OP_LTE: influxql__range_max(r, t); break;
  case INFLUXQL_OP_EQ:
    influxql__range_min(r, t);
    influxql__range_max(r, t);
    break;
  default:
    return influxql__stmt_err(
        x, "invalid time comparison operator: only <, <=, >, >= and = compare time");
  }
  return 0;
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

influxql_value influxql__binop(influxql_op op, influxql_value a, influxql_value b) {
  if (a.kind == INFLUXQL_V_NULL || b.kind == INFLUXQL_V_NULL || !is_arith_op(op))
    return (influxql_value){0};
  ev x = ev_from_value(&a), y = ev_from_value(&b);
  return val_from_ev(arith(op, x, y));
}
