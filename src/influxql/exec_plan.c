/* The field list of a SELECT: which names are aggregate functions, selectors and
 * transformations, each field as an evaluation tree (influxql_col) over aggregates, fields,
 * tags and literals, wildcards expanded over the statement's measurements, and the columns'
 * names as InfluxDB gives them. exec_select.c builds the plan with these; exec_agg.c,
 * exec_transform.c and exec_rows.c evaluate it. */
#include "influxql/influxql_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- SELECT: field analysis ---- */

static const struct {
  const char *name;
  int func;
  int selector;
} agg_funcs[] = {
    {"count", INFLUXQL_FN_COUNT, 0},   {"sum", INFLUXQL_FN_SUM, 0},
    {"mean", INFLUXQL_FN_MEAN, 0},     {"median", INFLUXQL_FN_MEDIAN, 0},
    {"mode", INFLUXQL_FN_MODE, 0},     {"spread", INFLUXQL_FN_SPREAD, 0},
    {"stddev", INFLUXQL_FN_STDDEV, 0}, {"min", INFLUXQL_FN_MIN, 1},
    {"max", INFLUXQL_FN_MAX, 1},       {"first", INFLUXQL_FN_FIRST, 1},
    {"last", INFLUXQL_FN_LAST, 1},     {"percentile", INFLUXQL_FN_PERCENTILE, 1},
};

static const struct {
  const char *name;
  int t;
} transforms[] = {
    {"derivative", INFLUXQL_TR_DERIVATIVE},
    {"non_negative_derivative", INFLUXQL_TR_NN_DERIVATIVE},
    {"difference", INFLUXQL_TR_DIFFERENCE},
    {"non_negative_difference", INFLUXQL_TR_NN_DIFFERENCE},
    {"moving_average", INFLUXQL_TR_MOVING_AVERAGE},
    {"cumulative_sum", INFLUXQL_TR_CUMSUM},
};

int influxql__agg_func(const char *name) {
  for (size_t i = 0; i < sizeof agg_funcs / sizeof agg_funcs[0]; i++)
    if (strcmp(agg_funcs[i].name, name) == 0)
      return agg_funcs[i].func;
  return INFLUXQL_FN_NONE;
}

const char *influxql__func_name(int f) {
  for (size_t i = 0; i < sizeof agg_funcs / sizeof agg_funcs[0]; i++)
    if (agg_funcs[i].func == f)
      return agg_funcs[i].name;
  return "";
}

static int is_selector(int f) {
  return f == INFLUXQL_FN_MIN || f == INFLUXQL_FN_MAX || f == INFLUXQL_FN_FIRST ||
         f == INFLUXQL_FN_LAST || f == INFLUXQL_FN_PERCENTILE;
}

int influxql__transform_of(const char *name) {
  for (size_t i = 0; i < sizeof transforms / sizeof transforms[0]; i++)
    if (strcmp(transforms[i].name, name) == 0)
      return transforms[i].t;
  return INFLUXQL_TR_NONE;
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

static int add_agg(influxql_exec_ctx *x, influxql_plan *p, int func, const char *field, double pct,
                   size_t *idx) {
  for (size_t i = 0; i < p->naggs; i++)
    if (p->aggs[i].func == func && strcmp(p->aggs[i].field, field) == 0 && p->aggs[i].pct == pct) {
      *idx = i;
      return 0;
    }
  int rc = 0;
  influxql_aggref a = {func, field, pct, NULL, NULL};
  INFLUXQL_VEC_PUSH(p->aggs, p->naggs, p->cap_aggs, a, rc);
  *idx = p->naggs - 1;
  (void)x;
  return rc;
}

static influxql_col *new_col(influxql_exec_ctx *x, int kind) {
  influxql_col *c = influxql__alloc(x->arena, sizeof *c);
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

int influxql__build_col(influxql_exec_ctx *x, influxql_plan *p, const influxql_expr *e,
                        influxql_col **out, int *has) {
  int rc;
  switch (e->kind) {
  case INFLUXQL_EXPR_PAREN: return influxql__build_col(x, p, e->lhs, out, has);
  case INFLUXQL_EXPR_INTEGER:
  case INFLUXQL_EXPR_NUMBER:
  case INFLUXQL_EXPR_STRING:
  case INFLUXQL_EXPR_BOOL:
  case INFLUXQL_EXPR_UNSIGNED:
  case INFLUXQL_EXPR_DURATION: {
    influxql_col *c = new_col(x, INFLUXQL_COL_LIT);
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
    influxql_col *c = new_col(x, INFLUXQL_COL_FIELD);
    if (!c)
      return PL_ENOMEM;
    c->name = e->str;
    if (e->vtype == INFLUXQL_VT_TAG)
      c->kind = INFLUXQL_COL_TAG;
    *has |= INFLUXQL_HAS_RAW;
    *out = c;
    return 0;
  }
  case INFLUXQL_EXPR_BINARY: {
    influxql_col *c = new_col(x, INFLUXQL_COL_BIN);
    if (!c)
      return PL_ENOMEM;
    c->op = e->op;
    if ((rc = influxql__build_col(x, p, e->lhs, &c->l, has)))
      return rc;
    if ((rc = influxql__build_col(x, p, e->rhs, &c->r, has)))
      return rc;
    *out = c;
    return 0;
  }
  case INFLUXQL_EXPR_CALL: {
    int f = influxql__agg_func(e->str);
    if (f) {
      size_t want = f == INFLUXQL_FN_PERCENTILE ? 2 : 1;
      if (e->nargs != want)
        return influxql__stmt_err(x, "invalid number of arguments for %s, expected %zu, got %zu",
                                  e->str, want, e->nargs);
      const influxql_expr *a = e->args[0];
      if (a->kind == INFLUXQL_EXPR_CALL && strcmp(a->str, "distinct") == 0 &&
          f == INFLUXQL_FN_COUNT)
        return influxql__stmt_err(x, "count(distinct()) is not supported by Plateau");
      if (a->kind == INFLUXQL_EXPR_WILDCARD || a->kind == INFLUXQL_EXPR_REGEX) {
        /* mean(*) or max over a regex: one column per field, made by influxql__raw_columns */
        *has |= INFLUXQL_HAS_AGG | INFLUXQL_HAS_WILDCARD_AGG;
        *out = NULL;
        return 0;
      }
      if (a->kind != INFLUXQL_EXPR_VARREF)
        return influxql__stmt_err(x, "expected field argument in %s()", e->str);
      double pct = 0;
      if (f == INFLUXQL_FN_PERCENTILE) {
        if (numeric_arg(e->args[1], &pct) < 0)
          return influxql__stmt_err(x, "expected float argument in percentile()");
      }
      influxql_col *c = new_col(x, INFLUXQL_COL_AGG);
      if (!c)
        return PL_ENOMEM;
      if ((rc = add_agg(x, p, f, a->str, pct, &c->agg)))
        return rc;
      *has |= INFLUXQL_HAS_AGG;
      *out = c;
      return 0;
    }
    int t = influxql__transform_of(e->str);
    if (t) {
      size_t min = 1, max = 2;
      if (t == INFLUXQL_TR_DIFFERENCE || t == INFLUXQL_TR_NN_DIFFERENCE || t == INFLUXQL_TR_CUMSUM)
        max = 1;
      if (t == INFLUXQL_TR_MOVING_AVERAGE)
        min = max = 2;
      if (e->nargs < min || e->nargs > max) {
        if (min == max)
          return influxql__stmt_err(x, "invalid number of arguments for %s, expected %zu, got %zu",
                                    e->str, min, e->nargs);
        return influxql__stmt_err(
            x,
            "invalid number of arguments for %s, expected at least %zu but no more "
            "than %zu, got %zu",
            e->str, min, max, e->nargs);
      }
      influxql_col *c = new_col(x, INFLUXQL_COL_TRANSFORM);
      if (!c)
        return PL_ENOMEM;
      c->transform = t;
      const influxql_expr *a = e->args[0];
      if (a->kind == INFLUXQL_EXPR_CALL) {
        int inner = influxql__agg_func(a->str);
        if (!inner)
          return influxql__stmt_err(x, "expected field or aggregate argument in %s()", e->str);
        int sub = 0;
        if ((rc = influxql__build_col(x, p, a, &c->l, &sub)))
          return rc;
        *has |= INFLUXQL_HAS_AGG | INFLUXQL_HAS_TRANSFORM;
      } else if (a->kind == INFLUXQL_EXPR_VARREF) {
        influxql_col *f2 = new_col(x, INFLUXQL_COL_FIELD);
        if (!f2)
          return PL_ENOMEM;
        f2->name = a->str;
        c->l = f2;
        *has |= INFLUXQL_HAS_RAW_TRANSFORM;
      } else {
        return influxql__stmt_err(x, "expected field argument in %s()", e->str);
      }
      if (e->nargs == 2) {
        const influxql_expr *b = e->args[1];
        if (t == INFLUXQL_TR_MOVING_AVERAGE) {
          if (b->kind != INFLUXQL_EXPR_INTEGER)
            return influxql__stmt_err(
                x, "second argument for moving_average must be an integer, got %s",
                "a non-integer");
          if (b->i <= 1)
            return influxql__stmt_err(x, "moving_average window must be greater than 1, got %lld",
                                      (long long)b->i);
          c->window = b->i;
        } else {
          if (b->kind != INFLUXQL_EXPR_DURATION)
            return influxql__stmt_err(x, "second argument to %s must be a duration, got %s", e->str,
                                      "another type");
          if (b->i <= 0)
            return influxql__stmt_err(x, "duration argument must be positive, got %lld",
                                      (long long)b->i);
          c->unit_ns = b->i;
          c->has_unit = 1;
        }
      }
      *out = c;
      return 0;
    }
    for (size_t i = 0; i < sizeof known_unsupported / sizeof known_unsupported[0]; i++)
      if (strcmp(known_unsupported[i], e->str) == 0)
        return influxql__stmt_err(x, "function %s() is not supported by Plateau", e->str);
    return influxql__stmt_err(x, "undefined function %s()", e->str);
  }
  case INFLUXQL_EXPR_WILDCARD:
  case INFLUXQL_EXPR_REGEX:
    *has |= INFLUXQL_HAS_RAW;
    *out = NULL; /* expanded by the caller */
    return 0;
  case INFLUXQL_EXPR_DISTINCT: return influxql__stmt_err(x, "DISTINCT is not supported by Plateau");
  }
  return influxql__stmt_err(x, "unsupported expression in SELECT");
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
int influxql__name_columns(influxql_exec_ctx *x, const char **given, const int *aliased, size_t n,
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
      if (!(name = influxql__strndup(x->arena, buf, strlen(buf))))
        return PL_ENOMEM;
    }
    out[i] = name;
  }
  return 0;
}

/* f(*) and f over a regex: the fields of the statement's measurements: one column per field the
 * function accepts (numeric fields for the numeric ones), named "<f>_<field>" (or
 * "<alias>_<field>"), in field-name order. */
static int expand_wildcard_agg(influxql_exec_ctx *x, influxql_plan *p, const influxql_expr *e,
                               const char *alias, const influxql_source_set *ss,
                               influxql_field_out **f, size_t *nf, size_t *cap) {
  int func = influxql__agg_func(e->str);
  int any_type = func == INFLUXQL_FN_COUNT || func == INFLUXQL_FN_FIRST || func == INFLUXQL_FN_LAST;
  const char **names = NULL;
  size_t nn = 0, cn = 0;
  int rc = 0;
  for (size_t mi = 0; mi < ss->n && rc == 0; mi++) {
    const influxql_meas *m = &ss->ms[mi];
    for (size_t k = 0; k < m->nfields && rc == 0; k++) {
      if (!any_type && (m->types[k] == TSDB_STRING || m->types[k] == TSDB_BOOL))
        continue;
      if (e->args[0]->kind == INFLUXQL_EXPR_REGEX &&
          !influxql__regex_match(influxql__regex_get(x, e->args[0], e->args[0]->str), m->fields[k]))
        continue;
      size_t q;
      for (q = 0; q < nn; q++)
        if (strcmp(names[q], m->fields[k]) == 0)
          break;
      if (q == nn)
        INFLUXQL_VEC_PUSH(names, nn, cn, m->fields[k], rc);
    }
  }
  influxql__sort(names, nn, sizeof *names, influxql__cmp_str);
  for (size_t k = 0; k < nn && rc == 0; k++) {
    influxql_expr *call = influxql__alloc(x->arena, sizeof *call),
                  *arg = influxql__alloc(x->arena, sizeof *arg);
    influxql_expr **args = influxql__alloc(x->arena, e->nargs * sizeof *args);
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
    influxql_col *c;
    if ((rc = influxql__build_col(x, p, call, &c, &has)))
      break;
    char buf[600];
    snprintf(buf, sizeof buf, "%s_%s", alias ? alias : e->str, names[k]);
    const char *nm = influxql__strndup(x->arena, buf, strlen(buf));
    if (!nm) {
      rc = PL_ENOMEM;
      break;
    }
    influxql_field_out fo = {c, nm, 1};
    INFLUXQL_VEC_PUSH(*f, *nf, *cap, fo, rc);
  }
  free(names);
  return rc;
}

int influxql__raw_columns(influxql_exec_ctx *x, influxql_plan *p, const influxql_select *s,
                          const influxql_source_set *ss, const influxql_dims *d,
                          influxql_field_out **out, size_t *n) {
  size_t cap = 16, nf = 0;
  influxql_field_out *f = malloc(cap * sizeof *f);
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
        const influxql_meas *m = &ss->ms[mi];
        const char **keys;
        size_t nkeys;
        if ((rc = influxql__dim_keys(x, d, m, &keys, &nkeys)) < 0)
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
            if (e->kind == INFLUXQL_EXPR_REGEX &&
                !influxql__regex_match(influxql__regex_get(x, e, e->str), nm))
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
        influxql_col *c = new_col(x, is_tag[k] ? INFLUXQL_COL_TAG : INFLUXQL_COL_FIELD);
        if (!c) {
          rc = PL_ENOMEM;
          break;
        }
        c->name = names[k];
        influxql_field_out fo = {c, names[k], 0};
        INFLUXQL_VEC_PUSH(f, nf, cap, fo, rc);
      }
      free(names);
      free(is_tag);
      continue;
    }
    if (e->kind == INFLUXQL_EXPR_VARREF && strcasecmp(e->str, "time") == 0)
      continue;
    if (e->kind == INFLUXQL_EXPR_CALL && influxql__agg_func(e->str) && e->nargs >= 1 &&
        (e->args[0]->kind == INFLUXQL_EXPR_WILDCARD || e->args[0]->kind == INFLUXQL_EXPR_REGEX)) {
      if ((rc = expand_wildcard_agg(x, p, e, s->fields[i].alias, ss, &f, &nf, &cap)) < 0)
        break;
      if (rc)
        break;
      continue;
    }
    int has = 0;
    influxql_col *c;
    if ((rc = influxql__build_col(x, p, e, &c, &has)))
      break;
    pl_buf b;
    pl_buf_init(&b, 4096);
    if (s->fields[i].alias)
      pl_buf_append_str(&b, s->fields[i].alias);
    else
      expr_name(e, &b);
    const char *nm = influxql__strndup(x->arena, b.len ? (const char *)b.data : "", b.len);
    pl_buf_free(&b);
    if (!nm) {
      rc = PL_ENOMEM;
      break;
    }
    influxql_field_out fo = {c, nm, s->fields[i].alias != NULL};
    INFLUXQL_VEC_PUSH(f, nf, cap, fo, rc);
  }
  if (rc) {
    free(f);
    return rc;
  }
  *out = f;
  *n = nf;
  return 0;
}

int influxql__count_calls(const influxql_expr *e, int *selectors) {
  if (!e)
    return 0;
  if (e->kind == INFLUXQL_EXPR_CALL) {
    int f = influxql__agg_func(e->str);
    if (f && is_selector(f))
      (*selectors)++;
    if (influxql__transform_of(e->str))
      return 2; /* a transformation is never a lone selector */
    return 1;
  }
  if (e->kind == INFLUXQL_EXPR_PAREN)
    return influxql__count_calls(e->lhs, selectors);
  if (e->kind == INFLUXQL_EXPR_BINARY)
    return influxql__count_calls(e->lhs, selectors) + influxql__count_calls(e->rhs, selectors);
  return 0;
}
