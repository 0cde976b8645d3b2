/* The SELECT statement and its clauses, for the parser (parser.c drives it): the field list and
 * aliases, FROM sources (measurements, regexes and subqueries), WHERE, GROUP BY, fill(), ORDER
 * BY, LIMIT/OFFSET/SLIMIT/SOFFSET, tz() and INTO. The clauses that SHOW and DELETE share (FROM,
 * WHERE, ORDER BY and the limits) are used by parser.c too. Expressions are parse_expr.c's.
 */
#include "influxql/influxql_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- SELECT ---- */

/* The last comparison or logical operator in a field expression (pre-order, not below one
 * already found), as InfluxDB names it in its message. */
static void find_bad_op(const influxql_expr *e, int *bad) {
  if (!e)
    return;
  if (e->kind == INFLUXQL_EXPR_BINARY) {
    switch (e->op) {
    case INFLUXQL_OP_EQ:
    case INFLUXQL_OP_NEQ:
    case INFLUXQL_OP_EQREGEX:
    case INFLUXQL_OP_NEQREGEX:
    case INFLUXQL_OP_LT:
    case INFLUXQL_OP_LTE:
    case INFLUXQL_OP_GT:
    case INFLUXQL_OP_GTE:
    case INFLUXQL_OP_AND:
    case INFLUXQL_OP_OR: *bad = influxql__op_tok(e->op); return;
    default: break;
    }
    find_bad_op(e->lhs, bad);
    find_bad_op(e->rhs, bad);
  } else if (e->kind == INFLUXQL_EXPR_PAREN) {
    find_bad_op(e->lhs, bad);
  } else if (e->kind == INFLUXQL_EXPR_CALL) {
    for (size_t i = 0; i < e->nargs; i++)
      find_bad_op(e->args[i], bad);
  }
}

static int parse_alias(influxql_parser *p, const char **alias) {
  *alias = NULL;
  if (influxql__parser_scan_nows(p).tok != TK_AS) {
    influxql__parser_unscan(p);
    return 0;
  }
  return influxql__parse_ident(p, alias);
}

static int parse_fields(influxql_parser *p, influxql_select *s) {
  influxql_ptrvec v = {0};
  int rc;
  for (;;) {
    influxql_field *f = influxql__alloc(p->arena, sizeof *f);
    if (!f)
      return influxql__oom(p);
    if ((rc = influxql__parse_regex(p, &f->expr)) < 0)
      return rc;
    if (!f->expr) {
      influxql_token t = influxql__parser_scan_nows(p);
      influxql__parser_unscan(p);
      if ((rc = influxql__parse_expr(p, &f->expr)) < 0)
        return rc;
      int bad = 0;
      find_bad_op(f->expr, &bad);
      if (bad)
        return influxql__fail(
            p, PL_EINVAL,
            "invalid operator %s in SELECT clause at line %d, char %d; operator is "
            "intended for WHERE clause",
            influxql__tok_name(bad), t.pos.line + 1, t.pos.col + 1);
    }
    if ((rc = parse_alias(p, &f->alias)) < 0)
      return rc;
    influxql__consume_ws(p);
    if ((rc = influxql__vec_push(p, &v, f)) < 0)
      return rc;
    if (influxql__parser_scan(p).tok != TK_COMMA) {
      influxql__parser_unscan(p);
      break;
    }
  }
  s->fields = influxql__alloc(p->arena, v.n * sizeof *s->fields);
  if (!s->fields)
    return influxql__oom(p);
  for (size_t i = 0; i < v.n; i++)
    s->fields[i] = *(influxql_field *)v.v[i];
  s->nfields = v.n;
  return 0;
}

int influxql__parse_source(influxql_parser *p, influxql_source *src, int subqueries) {
  int rc;
  influxql_expr *re;
  memset(src, 0, sizeof *src);
  if ((rc = influxql__parse_regex(p, &re)) < 0)
    return rc;
  if (re) {
    src->regex = re->str;
    return 0;
  }
  if (subqueries) {
    influxql_token t = influxql__parser_scan_nows(p);
    if (t.tok == TK_LPAREN) {
      if ((rc = influxql__nest(p, t.pos)) < 0)
        return rc;
      if ((rc = influxql__expect(p, TK_SELECT)) < 0)
        return rc;
      if ((rc = influxql__parse_select(p, &src->subquery, 1)) < 0)
        return rc;
      if ((rc = influxql__expect(p, TK_RPAREN)) < 0)
        return rc;
      p->depth--;
      return 0;
    }
    influxql__parser_unscan(p);
  }
  const char *seg[3];
  size_t n;
  if ((rc = influxql__parse_segmented(p, seg, &n)) < 0)
    return rc;
  if (n == 3) {
    src->db = *seg[0] ? seg[0] : NULL;
    src->rp = *seg[1] ? seg[1] : NULL;
    src->name = seg[2];
    return 0;
  }
  if ((rc = influxql__parse_regex(p, &re)) < 0)
    return rc;
  if (re)
    src->regex = re->str;
  if (n == 1) {
    if (re)
      src->rp = seg[0];
    else
      src->name = seg[0];
  } else {
    if (re)
      src->db = seg[0], src->rp = seg[1];
    else
      src->rp = seg[0], src->name = seg[1];
  }
  /* Empty segments ("db..m") mean "not given". */
  if (src->db && !*src->db)
    src->db = NULL;
  if (src->rp && !*src->rp)
    src->rp = NULL;
  return 0;
}

int influxql__parse_sources(influxql_parser *p, influxql_source **out, size_t *n, int subqueries) {
  influxql_ptrvec v = {0};
  int rc;
  for (;;) {
    influxql_source *s = influxql__alloc(p->arena, sizeof *s);
    if (!s)
      return influxql__oom(p);
    if ((rc = influxql__parse_source(p, s, subqueries)) < 0 ||
        (rc = influxql__vec_push(p, &v, s)) < 0)
      return rc;
    if (influxql__parser_scan_nows(p).tok != TK_COMMA) {
      influxql__parser_unscan(p);
      break;
    }
  }
  *out = influxql__alloc(p->arena, v.n * sizeof **out);
  if (!*out)
    return influxql__oom(p);
  for (size_t i = 0; i < v.n; i++)
    (*out)[i] = *(influxql_source *)v.v[i];
  *n = v.n;
  return 0;
}

int influxql__parse_condition(influxql_parser *p, influxql_expr **cond) {
  *cond = NULL;
  if (influxql__parser_scan_nows(p).tok != TK_WHERE) {
    influxql__parser_unscan(p);
    return 0;
  }
  return influxql__parse_expr(p, cond);
}

static int parse_dimensions(influxql_parser *p, influxql_select *s) {
  if (influxql__parser_scan_nows(p).tok != TK_GROUP) {
    influxql__parser_unscan(p);
    return 0;
  }
  int rc = influxql__expect(p, TK_BY);
  if (rc < 0)
    return rc;
  influxql_ptrvec v = {0};
  for (;;) {
    influxql_expr *d;
    if ((rc = influxql__parse_regex(p, &d)) < 0)
      return rc;
    if (!d) {
      if ((rc = influxql__parse_expr(p, &d)) < 0)
        return rc;
      influxql__consume_ws(p);
    }
    if ((rc = influxql__vec_push(p, &v, d)) < 0)
      return rc;
    if (influxql__parser_scan(p).tok != TK_COMMA) {
      influxql__parser_unscan(p);
      break;
    }
  }
  s->dims = (influxql_expr **)v.v;
  s->ndims = v.n;
  return 0;
}

/* A call written where InfluxDB expects fill(...) or tz(...): its name as the next identifier. */
static int next_is_call_named(influxql_parser *p, const char *name) {
  influxql_token t = influxql__parser_scan_nows(p);
  influxql__parser_unscan(p);
  return t.tok == TK_IDENT && strcasecmp(t.lit, name) == 0;
}

static int parse_fill(influxql_parser *p, influxql_select *s) {
  if (!next_is_call_named(p, "fill"))
    return 0;
  influxql_expr *e;
  int rc = influxql__parse_expr(p, &e);
  if (rc < 0)
    return rc;
  if (e->kind != INFLUXQL_EXPR_CALL)
    return influxql__fail(p, PL_EINVAL, "fill must be a function call");
  if (e->nargs != 1)
    return influxql__fail(p, PL_EINVAL,
                          "fill requires an argument, e.g.: 0, null, none, previous, linear");
  const influxql_expr *a = e->args[0];
  if (a->kind == INFLUXQL_EXPR_VARREF && a->vtype == INFLUXQL_VT_ANY) {
    if (strcmp(a->str, "null") == 0)
      return s->fill = INFLUXQL_FILL_NULL, 0;
    if (strcmp(a->str, "none") == 0)
      return s->fill = INFLUXQL_FILL_NONE, 0;
    if (strcmp(a->str, "previous") == 0)
      return s->fill = INFLUXQL_FILL_PREVIOUS, 0;
    if (strcmp(a->str, "linear") == 0)
      return s->fill = INFLUXQL_FILL_LINEAR, 0;
  }
  if (a->kind == INFLUXQL_EXPR_INTEGER) {
    s->fill = INFLUXQL_FILL_NUMBER;
    s->fill_is_int = 1;
    s->fill_int = a->i;
    s->fill_number = (double)a->i;
    return 0;
  }
  if (a->kind == INFLUXQL_EXPR_NUMBER) {
    s->fill = INFLUXQL_FILL_NUMBER;
    s->fill_number = a->f;
    return 0;
  }
  return influxql__fail(p, PL_EINVAL, "expected number argument in fill()");
}

int influxql__parse_order_by(influxql_parser *p, int *desc) {
  *desc = 0;
  if (influxql__parser_scan_nows(p).tok != TK_ORDER) {
    influxql__parser_unscan(p);
    return 0;
  }
  int rc = influxql__expect(p, TK_BY);
  if (rc < 0)
    return rc;
  size_t nfields = 0;
  influxql_token t = influxql__parser_scan_nows(p);
  if (t.tok == TK_ASC || t.tok == TK_DESC) {
    *desc = t.tok == TK_DESC;
    nfields = 1;
  } else if (t.tok == TK_IDENT) {
    influxql__parser_unscan(p);
    const char *name;
    if ((rc = influxql__parse_ident(p, &name)) < 0)
      return rc;
    influxql_token d = influxql__parser_scan_nows(p);
    if (d.tok == TK_DESC)
      *desc = 1;
    else if (d.tok != TK_ASC)
      influxql__parser_unscan(p);
    if (strcmp(t.lit, "time") != 0)
      return influxql__fail(p, PL_EINVAL, "only ORDER BY time supported at this time");
    nfields = 1;
  } else {
    return influxql__fail_found(p, &t, "identifier, ASC, DESC");
  }
  for (;;) {
    if (influxql__parser_scan_nows(p).tok != TK_COMMA) {
      influxql__parser_unscan(p);
      break;
    }
    const char *name;
    if ((rc = influxql__parse_ident(p, &name)) < 0)
      return rc;
    influxql_token d = influxql__parser_scan_nows(p);
    if (d.tok != TK_ASC && d.tok != TK_DESC)
      influxql__parser_unscan(p);
    nfields++;
  }
  if (nfields > 1)
    return influxql__fail(p, PL_EINVAL, "only ORDER BY time supported at this time");
  return 0;
}

int influxql__parse_optional_int(influxql_parser *p, int tok, int64_t *out) {
  *out = 0;
  if (influxql__parser_scan_nows(p).tok != tok) {
    influxql__parser_unscan(p);
    return 0;
  }
  influxql_token t = influxql__parser_scan_nows(p);
  if (t.tok != TK_INTEGER)
    return influxql__fail_found(p, &t, "integer");
  errno = 0;
  long long v = strtoll(t.lit, NULL, 10);
  *out = errno == ERANGE ? INT64_MAX : v;
  return 0;
}

static int parse_location(influxql_parser *p, const char **tz) {
  *tz = NULL;
  if (!next_is_call_named(p, "tz"))
    return 0;
  influxql_expr *e;
  int rc = influxql__parse_expr(p, &e);
  if (rc < 0)
    return rc;
  if (e->kind != INFLUXQL_EXPR_CALL)
    return influxql__fail(p, PL_EINVAL, "tz must be a function call");
  if (e->nargs != 1)
    return influxql__fail(p, PL_EINVAL, "tz requires exactly one argument");
  if (e->args[0]->kind != INFLUXQL_EXPR_STRING)
    return influxql__fail(p, PL_EINVAL, "expected string argument in tz()");
  *tz = e->args[0]->str;
  return 0;
}

static int parse_target(influxql_parser *p, const char **into) {
  *into = NULL;
  if (influxql__parser_scan_nows(p).tok != TK_INTO) {
    influxql__parser_unscan(p);
    return 0;
  }
  const char *seg[3];
  size_t n;
  int rc;
  if ((rc = influxql__parse_segmented(p, seg, &n)) < 0)
    return rc;
  int measurement_ref = 0;
  if (n < 3 && influxql__peek_rune(&p->lx) == ':') {
    if ((rc = influxql__expect(p, TK_COLON)) < 0 || (rc = influxql__expect(p, TK_MEASUREMENT)) < 0)
      return rc;
    measurement_ref = 1;
  }
  pl_buf b;
  pl_buf_init(&b, 4096);
  for (size_t i = 0; i < n; i++) {
    if (i)
      pl_buf_append_byte(&b, '.');
    influxql_ident_format(seg[i], &b);
  }
  if (measurement_ref)
    pl_buf_append_str(&b, ".:MEASUREMENT");
  *into = influxql__dup(p, b.len ? (const char *)b.data : "", b.len);
  pl_buf_free(&b);
  return *into ? 0 : influxql__oom(p);
}

int influxql__parse_select(influxql_parser *p, influxql_select **out, int subquery) {
  (void)subquery;
  influxql_select *s = influxql__alloc(p->arena, sizeof *s);
  if (!s)
    return influxql__oom(p);
  int rc;
  if ((rc = parse_fields(p, s)) < 0)
    return rc;
  if ((rc = parse_target(p, &s->into)) < 0)
    return rc;
  if ((rc = influxql__expect(p, TK_FROM)) < 0)
    return rc;
  if ((rc = influxql__parse_sources(p, &s->sources, &s->nsources, 1)) < 0)
    return rc;
  if ((rc = influxql__parse_condition(p, &s->cond)) < 0)
    return rc;
  if ((rc = parse_dimensions(p, s)) < 0)
    return rc;
  if ((rc = parse_fill(p, s)) < 0)
    return rc;
  if ((rc = influxql__parse_order_by(p, &s->order_desc)) < 0)
    return rc;
  if ((rc = influxql__parse_optional_int(p, TK_LIMIT, &s->limit)) < 0)
    return rc;
  if ((rc = influxql__parse_optional_int(p, TK_OFFSET, &s->offset)) < 0)
    return rc;
  if ((rc = influxql__parse_optional_int(p, TK_SLIMIT, &s->slimit)) < 0)
    return rc;
  if ((rc = influxql__parse_optional_int(p, TK_SOFFSET, &s->soffset)) < 0)
    return rc;
  if ((rc = parse_location(p, &s->tz)) < 0)
    return rc;
  *out = s;
  return 0;
}
