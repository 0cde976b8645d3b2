/* InfluxQL expressions and the literals in them, for the parser (parser.c drives it): durations,
 * /regex/ literals, identifiers and dotted names, variable references with their ::type, calls,
 * and binary expressions, built by precedence climbing over the right spine of the tree: OR <
 * AND < comparisons < + - | ^ < * / % &, left associative; parentheses are opaque. It also
 * holds the regex dialect the executor compiles patterns with (RE2 translated to POSIX).
 */
#include "influxql/influxql_int.h"

#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- durations ---- */

/* InfluxQL durations: one or more <digits><unit>, units ns u µ ms s m h d w. */
static int parse_duration(influxql_parser *p, const char *s, int64_t *out) {
  size_t n = strlen(s), i = 0;
  if (n < 2)
    return influxql__fail(p, PL_EINVAL, "invalid duration");
  int neg = 0;
  if (s[0] == '-')
    neg = 1, i = 1;
  int64_t d = 0, measure = 0;
  char unit[4] = "";
  while (i < n) {
    size_t start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
      i++;
    if (i >= n || i == start)
      return influxql__fail(p, PL_EINVAL, "invalid duration");
    errno = 0;
    char digits[32];
    if (i - start >= sizeof digits)
      return influxql__fail(p, PL_EINVAL, "invalid duration");
    memcpy(digits, s + start, i - start);
    digits[i - start] = 0;
    long long v = strtoll(digits, NULL, 10);
    if (errno)
      return influxql__fail(p, PL_EINVAL, "invalid duration");
    measure = v;
    int64_t mult;
    size_t ulen = 1;
    if (s[i] == 'n') {
      if (i + 1 < n && s[i + 1] == 's')
        mult = 1, ulen = 2;
      else
        return influxql__fail(p, PL_EINVAL, "invalid duration");
    } else if (s[i] == 'u') {
      mult = 1000;
    } else if ((unsigned char)s[i] == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] == 0xb5) {
      mult = 1000, ulen = 2; /* µ */
    } else if (s[i] == 'm') {
      if (i + 1 < n && s[i + 1] == 's')
        mult = 1000000, ulen = 2;
      else
        mult = 60LL * 1000000000;
    } else if (s[i] == 's') {
      mult = 1000000000;
    } else if (s[i] == 'h') {
      mult = 3600LL * 1000000000;
    } else if (s[i] == 'd') {
      mult = 86400LL * 1000000000;
    } else if (s[i] == 'w') {
      mult = 7 * 86400LL * 1000000000;
    } else {
      return influxql__fail(p, PL_EINVAL, "invalid duration");
    }
    memcpy(unit, s + i, ulen);
    unit[ulen] = 0;
    /* Go's time.Duration wraps; a wrapped (negative) total is reported as an overflow. */
    d = (int64_t)((uint64_t)d + (uint64_t)v * (uint64_t)mult);
    i += ulen;
  }
  if (d < 0 && !neg)
    return influxql__fail(p, PL_EINVAL,
                          "overflowed duration %lld%s: choose a smaller duration or INF",
                          (long long)measure, unit);
  *out = neg ? -d : d;
  return 0;
}

/* ---- regexes ---- */

int influxql__parse_regex(influxql_parser *p, influxql_expr **out) {
  *out = NULL;
  int32_t ch = influxql__peek_rune(&p->lx);
  if (ch == ' ' || ch == '\t' || ch == '\n')
    influxql__consume_ws(p);
  ch = influxql__peek_rune(&p->lx);
  if (ch == '$') {
    influxql_token t = influxql__parser_scan(p);
    influxql__parser_unscan(p);
    if (t.tok != TK_REGEX)
      return 0;
  } else if (ch != '/') {
    return 0;
  }
  influxql_token t = influxql__parser_scan_regex(p);
  if (t.tok == TK_BADESCAPE) {
    char msg[300];
    snprintf(msg, sizeof msg, "bad escape: %s", t.lit);
    return influxql__fail_at(p, t.pos, msg);
  }
  if (t.tok == TK_BADREGEX) {
    char msg[300];
    snprintf(msg, sizeof msg, "bad regex: %s", t.lit);
    return influxql__fail_at(p, t.pos, msg);
  }
  if (t.tok != TK_REGEX)
    return influxql__fail_found(p, &t, "regex");
  regex_t re;
  char ebuf[200];
  if (influxql__regex_compile(t.lit, &re, ebuf, sizeof ebuf) < 0)
    return influxql__fail_at(p, t.pos, ebuf);
  regfree(&re);
  influxql_expr *e = influxql__new_expr(p, INFLUXQL_EXPR_REGEX);
  if (!e || !(e->str = influxql__dup(p, t.lit, t.len)))
    return influxql__oom(p);
  e->len = t.len;
  *out = e;
  return 0;
}

/* ---- identifiers ---- */

int influxql__parse_ident(influxql_parser *p, const char **out) {
  influxql_token t = influxql__parser_scan_nows(p);
  if (t.tok != TK_IDENT)
    return influxql__fail_found(p, &t, "identifier");
  if (!(*out = influxql__dup(p, t.lit, t.len)))
    return influxql__oom(p);
  return 0;
}

int influxql__parse_ident_list(influxql_parser *p, influxql_ptrvec *v) {
  const char *id;
  int rc;
  if ((rc = influxql__parse_ident(p, &id)) < 0 || (rc = influxql__vec_push(p, v, (void *)id)) < 0)
    return rc;
  for (;;) {
    if (influxql__parser_scan_nows(p).tok != TK_COMMA) {
      influxql__parser_unscan(p);
      return 0;
    }
    if ((rc = influxql__parse_ident(p, &id)) < 0 || (rc = influxql__vec_push(p, v, (void *)id)) < 0)
      return rc;
  }
}

/* An identifier segment as InfluxDB quotes it in "too many segments": quoted when it needs it,
 * when it is not the last and not empty, or when it is empty at either end. */
static void segment_format(pl_buf *b, const char *seg, size_t i, size_t n) {
  int quote = (i < n - 1 && *seg) || ((i == 0 || i == n - 1) && !*seg);
  if (!quote) {
    influxql_ident_format(seg, b);
    return;
  }
  pl_buf_append_byte(b, '"');
  for (const char *c = seg; *c; c++) {
    if (*c == '\n')
      pl_buf_append_str(b, "\\n");
    else if (*c == '"' || *c == '\\')
      pl_buf_printf(b, "\\%c", *c);
    else
      pl_buf_append_byte(b, (uint8_t)*c);
  }
  pl_buf_append_byte(b, '"');
}

/* db.rp.m, db..m, rp.m, m: at most three segments; an empty one between two dots. */
int influxql__parse_segmented(influxql_parser *p, const char *seg[3], size_t *nseg) {
  influxql_ptrvec all = {0};
  int rc;
  const char *id;
  if ((rc = influxql__parse_ident(p, &id)) < 0 ||
      (rc = influxql__vec_push(p, &all, (void *)id)) < 0)
    return rc;
  for (;;) {
    if (influxql__parser_scan(p).tok != TK_DOT) {
      influxql__parser_unscan(p);
      break;
    }
    int32_t ch = influxql__peek_rune(&p->lx);
    if (ch == '/' || ch == ':')
      break;
    if (ch == '.') {
      id = "";
    } else if ((rc = influxql__parse_ident(p, &id)) < 0) {
      return rc;
    }
    if ((rc = influxql__vec_push(p, &all, (void *)id)) < 0)
      return rc;
  }
  if (all.n > 3) {
    pl_buf b;
    pl_buf_init(&b, 4096);
    for (size_t i = 0; i < all.n; i++) {
      if (i)
        pl_buf_append_byte(&b, '.');
      segment_format(&b, all.v[i], i, all.n);
    }
    influxql__fail(p, PL_EINVAL, "too many segments in %s at line 1, char 1",
                   b.len ? pl_buf_cstr(&b) : "");
    pl_buf_free(&b);
    return PL_EINVAL;
  }
  for (size_t i = 0; i < all.n; i++)
    seg[i] = all.v[i];
  *nseg = all.n;
  return 0;
}

/* ---- expressions ---- */

static int parse_varref(influxql_parser *p, influxql_expr **out) {
  const char *seg[3];
  size_t n;
  int rc;
  if ((rc = influxql__parse_segmented(p, seg, &n)) < 0)
    return rc;
  influxql_expr *e = influxql__new_expr(p, INFLUXQL_EXPR_VARREF);
  if (!e)
    return influxql__oom(p);
  size_t len = 0;
  for (size_t i = 0; i < n; i++)
    len += strlen(seg[i]) + (i ? 1 : 0);
  char *s = influxql__alloc(p->arena, len + 1);
  if (!s)
    return influxql__oom(p);
  for (size_t i = 0, at = 0; i < n; i++) {
    if (i)
      s[at++] = '.';
    size_t l = strlen(seg[i]);
    memcpy(s + at, seg[i], l);
    at += l;
  }
  e->str = s;
  e->len = len;
  influxql_token t = influxql__parser_scan(p);
  if (t.tok == TK_DOUBLECOLON) {
    influxql_token t2 = influxql__parser_scan(p);
    if (t2.tok == TK_IDENT) {
      static const struct {
        const char *name;
        influxql_vtype vt;
      } types[] = {{"float", INFLUXQL_VT_FLOAT},
                   {"integer", INFLUXQL_VT_INTEGER},
                   {"unsigned", INFLUXQL_VT_UNSIGNED},
                   {"string", INFLUXQL_VT_STRING},
                   {"boolean", INFLUXQL_VT_BOOLEAN}};
      size_t k;
      for (k = 0; k < sizeof types / sizeof types[0]; k++)
        if (strcasecmp(t2.lit, types[k].name) == 0)
          break;
      if (k == sizeof types / sizeof types[0])
        return influxql__fail_found(p, &t2,
                                    "float, integer, unsigned, string, boolean, field, tag");
      e->vtype = types[k].vt;
    } else if (t2.tok == TK_FIELD) {
      e->vtype = INFLUXQL_VT_FIELD;
    } else if (t2.tok == TK_TAG) {
      e->vtype = INFLUXQL_VT_TAG;
    } else {
      return influxql__fail_found(p, &t2, "float, integer, string, boolean, field, tag");
    }
  } else {
    influxql__parser_unscan(p);
  }
  *out = e;
  return 0;
}

static int parse_call(influxql_parser *p, const char *name, size_t nlen, influxql_pos pos,
                      influxql_expr **out) {
  int rc;
  if ((rc = influxql__nest(p, pos)) < 0)
    return rc;
  influxql_expr *e = influxql__new_expr(p, INFLUXQL_EXPR_CALL);
  char *lname = e ? influxql__dup(p, name, nlen) : NULL;
  if (!lname)
    return influxql__oom(p);
  for (char *c = lname; *c; c++)
    if (*c >= 'A' && *c <= 'Z')
      *c = (char)(*c - 'A' + 'a');
  e->str = lname;
  e->len = nlen;
  influxql_ptrvec args = {0};
  influxql_expr *arg;
  if ((rc = influxql__parse_regex(p, &arg)) < 0)
    return rc;
  if (arg) {
    if ((rc = influxql__vec_push(p, &args, arg)) < 0)
      return rc;
  } else {
    if (influxql__parser_scan(p).tok == TK_RPAREN) {
      p->depth--;
      *out = e;
      return 0;
    }
    influxql__parser_unscan(p);
    if ((rc = influxql__parse_expr(p, &arg)) < 0 || (rc = influxql__vec_push(p, &args, arg)) < 0)
      return rc;
  }
  for (;;) {
    if (influxql__parser_scan_nows(p).tok != TK_COMMA) {
      influxql__parser_unscan(p);
      break;
    }
    if ((rc = influxql__parse_regex(p, &arg)) < 0)
      return rc;
    if (!arg && (rc = influxql__parse_expr(p, &arg)) < 0)
      return rc;
    if ((rc = influxql__vec_push(p, &args, arg)) < 0)
      return rc;
  }
  influxql_token t = influxql__parser_scan(p);
  if (t.tok != TK_RPAREN)
    return influxql__fail_found(p, &t, ")");
  e->args = (influxql_expr **)args.v;
  e->nargs = args.n;
  p->depth--;
  *out = e;
  return 0;
}

static int count_op(influxql_parser *p) {
  if (++p->ops > INFLUXQL_OPERATORS_MAX)
    return influxql__fail(p, PL_ELIMIT, "the statement has more than %d operators",
                          INFLUXQL_OPERATORS_MAX);
  return 0;
}

static int parse_unary(influxql_parser *p, influxql_expr **out) {
  int rc;
  influxql_token t = influxql__parser_scan_nows(p);
  if (t.tok == TK_LPAREN) {
    if ((rc = influxql__nest(p, t.pos)) < 0)
      return rc;
    influxql_expr *inner;
    if ((rc = influxql__parse_expr(p, &inner)) < 0)
      return rc;
    influxql_token r = influxql__parser_scan_nows(p);
    if (r.tok != TK_RPAREN)
      return influxql__fail_found(p, &r, ")");
    p->depth--;
    influxql_expr *e = influxql__new_expr(p, INFLUXQL_EXPR_PAREN);
    if (!e)
      return influxql__oom(p);
    e->lhs = inner;
    *out = e;
    return 0;
  }
  influxql__parser_unscan(p);
  t = influxql__parser_scan_nows(p);
  influxql_expr *e = NULL;
  switch (t.tok) {
  case TK_IDENT: {
    if (influxql__parser_scan(p).tok == TK_LPAREN)
      return parse_call(p, t.lit, t.len, t.pos, out);
    influxql__parser_unscan(p);
    influxql__parser_unscan(p);
    return parse_varref(p, out);
  }
  case TK_DISTINCT: {
    influxql_token t0 = influxql__parser_scan(p);
    if (t0.tok == TK_LPAREN)
      return parse_call(p, "distinct", 8, t.pos, out);
    if (t0.tok == TK_WS) {
      influxql_token t1 = influxql__parser_scan_nows(p);
      if (t1.tok != TK_IDENT)
        return influxql__fail_found(p, &t1, "identifier");
      if (!(e = influxql__new_expr(p, INFLUXQL_EXPR_DISTINCT)) ||
          !(e->str = influxql__dup(p, t1.lit, t1.len)))
        return influxql__oom(p);
      e->len = t1.len;
      *out = e;
      return 0;
    }
    return influxql__fail_found(p, &t0, "(, identifier");
  }
  case TK_STRING:
    if (!(e = influxql__new_expr(p, INFLUXQL_EXPR_STRING)) ||
        !(e->str = influxql__dup(p, t.lit, t.len)))
      return influxql__oom(p);
    e->len = t.len;
    break;
  case TK_NUMBER: {
    char *end;
    errno = 0;
    double v = strtod(t.lit, &end);
    if (*end || (errno == ERANGE && isinf(v)))
      return influxql__fail_at(p, t.pos, "unable to parse number");
    if (!(e = influxql__new_expr(p, INFLUXQL_EXPR_NUMBER)))
      return influxql__oom(p);
    e->f = v;
    break;
  }
  case TK_INTEGER: {
    char *end;
    errno = 0;
    long long v = strtoll(t.lit, &end, 10);
    if (*end || errno) {
      errno = 0;
      unsigned long long u = strtoull(t.lit, &end, 10);
      if (*end || errno || t.lit[0] == '-')
        return influxql__fail_at(p, t.pos, "unable to parse integer");
      if (!(e = influxql__new_expr(p, INFLUXQL_EXPR_UNSIGNED)))
        return influxql__oom(p);
      e->u = u;
      break;
    }
    if (!(e = influxql__new_expr(p, INFLUXQL_EXPR_INTEGER)))
      return influxql__oom(p);
    e->i = v;
    break;
  }
  case TK_TRUE:
  case TK_FALSE:
    if (!(e = influxql__new_expr(p, INFLUXQL_EXPR_BOOL)))
      return influxql__oom(p);
    e->b = t.tok == TK_TRUE;
    break;
  case TK_DURATIONVAL: {
    int64_t d = 0;
    if ((rc = parse_duration(p, t.lit, &d)) < 0)
      return rc;
    if (!(e = influxql__new_expr(p, INFLUXQL_EXPR_DURATION)))
      return influxql__oom(p);
    e->i = d;
    break;
  }
  case TK_MUL: {
    if (!(e = influxql__new_expr(p, INFLUXQL_EXPR_WILDCARD)))
      return influxql__oom(p);
    if (influxql__parser_scan(p).tok == TK_DOUBLECOLON) {
      influxql_token t2 = influxql__parser_scan(p);
      if (t2.tok == TK_FIELD)
        e->vtype = INFLUXQL_VT_FIELD;
      else if (t2.tok == TK_TAG)
        e->vtype = INFLUXQL_VT_TAG;
      else
        return influxql__fail_found(p, &t2, "field, tag");
    } else {
      influxql__parser_unscan(p);
    }
    break;
  }
  case TK_REGEX: {
    regex_t re;
    char ebuf[200];
    if (influxql__regex_compile(t.lit, &re, ebuf, sizeof ebuf) < 0)
      return influxql__fail_at(p, t.pos, ebuf);
    regfree(&re);
    if (!(e = influxql__new_expr(p, INFLUXQL_EXPR_REGEX)) ||
        !(e->str = influxql__dup(p, t.lit, t.len)))
      return influxql__oom(p);
    e->len = t.len;
    break;
  }
  case TK_BOUNDPARAM:
    if (t.len < 2)
      return influxql__fail(p, PL_EINVAL, "empty bound parameter");
    return influxql__fail(p, PL_EINVAL, "missing parameter: %s", t.lit + 1);
  case TK_ADD:
  case TK_SUB: {
    int neg = t.tok == TK_SUB;
    influxql_token t0 = influxql__parser_scan_nows(p);
    switch (t0.tok) {
    case TK_NUMBER:
    case TK_INTEGER:
    case TK_DURATIONVAL:
    case TK_LPAREN:
    case TK_IDENT: break;
    default: return influxql__fail_found(p, &t0, "identifier, number, duration, (");
    }
    influxql__parser_unscan(p);
    influxql_expr *x;
    if ((rc = parse_unary(p, &x)) < 0)
      return rc;
    switch (x->kind) {
    case INFLUXQL_EXPR_NUMBER:
      if (neg)
        x->f = -x->f;
      break;
    case INFLUXQL_EXPR_INTEGER:
      if (neg)
        x->i = (int64_t)(0 - (uint64_t)x->i);
      break;
    case INFLUXQL_EXPR_UNSIGNED:
      if (neg) {
        if (x->u == (uint64_t)INT64_MAX + 1) {
          x->kind = INFLUXQL_EXPR_INTEGER;
          x->i = INT64_MIN;
        } else {
          return influxql__fail(p, PL_EINVAL, "constant -%llu underflows int64",
                                (unsigned long long)x->u);
        }
      }
      break;
    case INFLUXQL_EXPR_DURATION:
      if (neg)
        x->i = (int64_t)(0 - (uint64_t)x->i);
      break;
    default: {
      /* -x, -f(x), -(...): multiply by -1 (or +1) */
      influxql_expr *m = influxql__new_expr(p, INFLUXQL_EXPR_BINARY),
                    *k = influxql__new_expr(p, INFLUXQL_EXPR_INTEGER);
      if (!m || !k)
        return influxql__oom(p);
      if ((rc = count_op(p)) < 0)
        return rc;
      k->i = neg ? -1 : 1;
      m->op = INFLUXQL_OP_MUL;
      m->lhs = k;
      m->rhs = x;
      x = m;
      break;
    }
    }
    *out = x;
    return 0;
  }
  default: return influxql__fail_found(p, &t, "identifier, string, number, bool");
  }
  *out = e;
  return 0;
}

influxql_op influxql__tok_op(int tok) {
  switch (tok) {
  case TK_ADD: return INFLUXQL_OP_ADD;
  case TK_SUB: return INFLUXQL_OP_SUB;
  case TK_MUL: return INFLUXQL_OP_MUL;
  case TK_DIV: return INFLUXQL_OP_DIV;
  case TK_MOD: return INFLUXQL_OP_MOD;
  case TK_BITAND: return INFLUXQL_OP_BITAND;
  case TK_BITOR: return INFLUXQL_OP_BITOR;
  case TK_BITXOR: return INFLUXQL_OP_BITXOR;
  case TK_AND: return INFLUXQL_OP_AND;
  case TK_OR: return INFLUXQL_OP_OR;
  case TK_EQ: return INFLUXQL_OP_EQ;
  case TK_NEQ: return INFLUXQL_OP_NEQ;
  case TK_EQREGEX: return INFLUXQL_OP_EQREGEX;
  case TK_NEQREGEX: return INFLUXQL_OP_NEQREGEX;
  case TK_LT: return INFLUXQL_OP_LT;
  case TK_LTE: return INFLUXQL_OP_LTE;
  case TK_GT: return INFLUXQL_OP_GT;
  case TK_GTE: return INFLUXQL_OP_GTE;
  default: return INFLUXQL_OP_NONE; /* IN: no operand form that parses */
  }
}

int influxql__op_tok(influxql_op op) {
  static const int map[] = {
      [INFLUXQL_OP_NONE] = TK_IN,
      [INFLUXQL_OP_ADD] = TK_ADD,
      [INFLUXQL_OP_SUB] = TK_SUB,
      [INFLUXQL_OP_MUL] = TK_MUL,
      [INFLUXQL_OP_DIV] = TK_DIV,
      [INFLUXQL_OP_MOD] = TK_MOD,
      [INFLUXQL_OP_BITAND] = TK_BITAND,
      [INFLUXQL_OP_BITOR] = TK_BITOR,
      [INFLUXQL_OP_BITXOR] = TK_BITXOR,
      [INFLUXQL_OP_AND] = TK_AND,
      [INFLUXQL_OP_OR] = TK_OR,
      [INFLUXQL_OP_EQ] = TK_EQ,
      [INFLUXQL_OP_NEQ] = TK_NEQ,
      [INFLUXQL_OP_EQREGEX] = TK_EQREGEX,
      [INFLUXQL_OP_NEQREGEX] = TK_NEQREGEX,
      [INFLUXQL_OP_LT] = TK_LT,
      [INFLUXQL_OP_LTE] = TK_LTE,
      [INFLUXQL_OP_GT] = TK_GT,
      [INFLUXQL_OP_GTE] = TK_GTE,
  };
  return map[op];
}

int influxql__parse_expr(influxql_parser *p, influxql_expr **out) {
  int rc;
  influxql_expr root = {.kind = INFLUXQL_EXPR_BINARY};
  if ((rc = parse_unary(p, &root.rhs)) < 0)
    return rc;
  for (;;) {
    influxql_token opt = influxql__parser_scan_nows(p);
    if (!TK_IS_OPERATOR(opt.tok)) {
      influxql__parser_unscan(p);
      *out = root.rhs;
      return 0;
    }
    influxql_expr *rhs;
    if (opt.tok == TK_EQREGEX || opt.tok == TK_NEQREGEX) {
      if ((rc = influxql__parse_regex(p, &rhs)) < 0)
        return rc;
      if (!rhs) {
        influxql_token t = influxql__parser_scan_nows(p);
        return influxql__fail_found(p, &t, "regex");
      }
    } else if ((rc = parse_unary(p, &rhs)) < 0) {
      return rc;
    }
    if ((rc = count_op(p)) < 0)
      return rc;
    /* `tag = $param` bound to a regex means a match, as InfluxDB's index takes it */
    if (rhs->kind == INFLUXQL_EXPR_REGEX && (opt.tok == TK_EQ || opt.tok == TK_NEQ))
      opt.tok = opt.tok == TK_EQ ? TK_EQREGEX : TK_NEQREGEX;
    int prec = influxql__tok_precedence(opt.tok);
    /* Walk down the right spine to the first node that binds at least as tightly. */
    influxql_expr *node = &root;
    for (;;) {
      influxql_expr *r = node->rhs;
      if (r->kind != INFLUXQL_EXPR_BINARY ||
          influxql__tok_precedence(influxql__op_tok(r->op)) >= prec) {
        influxql_expr *b = influxql__new_expr(p, INFLUXQL_EXPR_BINARY);
        if (!b)
          return influxql__oom(p);
        b->op = influxql__tok_op(opt.tok);
        b->lhs = node->rhs;
        b->rhs = rhs;
        node->rhs = b;
        break;
      }
      node = r;
    }
  }
}

/* ---- regex dialect ----
 * InfluxQL regexes are RE2 (Go's regexp); Plateau matches with POSIX extended regexes. The
 * constructs tools actually send are translated: \d \D \w \W \s \S (inside and outside
 * brackets), the case-insensitive flag (?i) at the start, lazy quantifiers (*? +? ??, which
 * match the same strings), and \A \z anchors. Everything else passes through. */
/* The C library compiles x+ as xx* and x{n,m} as n..m copies of x, so nested repetitions grow
 * its program exponentially: (((a+)+)+)... or a{1000}{1000}. RE2 refuses repeated operators and
 * counts over 1000; here the expanded size is estimated (a group's size times each repetition's
 * copies, summed over the pattern) and patterns past REGEX_EXPANDED_MAX are refused, as are the
 * constructs RE2 refuses. Returns why, or NULL. */
#define REGEX_EXPANDED_MAX 100000.0
#define REGEX_GROUPS_MAX 256

static const char *regex_too_complex(const char *p) {
  double sum[REGEX_GROUPS_MAX + 1], last[REGEX_GROUPS_MAX + 1];
  int depth = 0, after_quant = 0;
  sum[0] = 0, last[0] = 0;
  for (size_t i = 0; p[i]; i++) {
    char c = p[i];
    double size = 0;
    int quant = 0;
    if (c == '\\' && p[i + 1]) {
      i++, size = 1;
    } else if (c == '[') {
      size_t j = i + 1;
      if (p[j] == '^')
        j++;
      if (p[j] == ']')
        j++;
      while (p[j] && p[j] != ']') {
        if (p[j] == '[' && (p[j + 1] == ':' || p[j + 1] == '.' || p[j + 1] == '=')) {
          char close = p[j + 1];
          j += 2;
          while (p[j] && !(p[j] == close && p[j + 1] == ']'))
            j++;
          if (p[j])
            j += 2;
          continue;
        }
        j++;
      }
      if (!p[j])
        return "missing closing ]";
      i = j, size = 1;
    } else if (c == '(') {
      if (depth == REGEX_GROUPS_MAX)
        return "too many nested groups";
      depth++;
      sum[depth] = last[depth] = 0;
      after_quant = 0;
      continue;
    } else if (c == ')') {
      if (!depth)
        return "unexpected )";
      size = sum[depth] + 1;
      depth--;
    } else if (c == '|') {
      after_quant = 0;
      last[depth] = 0;
      continue;
    } else if (c == '*' || c == '?') {
      quant = 1;
    } else if (c == '+') {
      quant = 2;
    } else if (c == '{') {
      size_t j = i + 1;
      long lo = 0, hi = -1;
      while (p[j] >= '0' && p[j] <= '9' && lo <= 100000)
        lo = lo * 10 + (p[j++] - '0');
      if (p[j] == ',') {
        j++;
        if (p[j] >= '0' && p[j] <= '9') {
          hi = 0;
          while (p[j] >= '0' && p[j] <= '9' && hi <= 100000)
            hi = hi * 10 + (p[j++] - '0');
        } else {
          hi = lo + 1;
        }
      } else {
        hi = lo;
      }
      if (p[j] != '}') {
        size = 1; /* a literal brace */
      } else {
        if (lo > 1000 || hi > 1000)
          return "invalid repeat count";
        quant = (int)(hi > 1 ? hi : 1);
        i = j;
      }
    } else {
      size = 1;
    }
    if (quant) {
      if (after_quant)
        return "invalid nested repetition operator";
      after_quant = 1;
      sum[depth] += last[depth] * (quant - 1);
      last[depth] *= quant;
    } else {
      after_quant = 0;
      sum[depth] += size;
      last[depth] = size;
    }
    if (sum[depth] > REGEX_EXPANDED_MAX)
      return "expression too large";
  }
  return depth ? "missing closing )" : NULL;
}

int influxql__regex_compile(const char *pattern, regex_t *re, char *errbuf, size_t errsz) {
  size_t n = strlen(pattern);
  if (n > 65536) {
    snprintf(errbuf, errsz, "error parsing regexp: the expression is longer than 65536 bytes");
    return -1;
  }
  char *out = malloc(n * 12 + 16);
  if (!out) {
    snprintf(errbuf, errsz, "out of memory");
    return -1;
  }
  int flags = REG_EXTENDED | REG_NOSUB;
  size_t i = 0, o = 0;
  if (strncmp(pattern, "(?i)", 4) == 0) {
    flags |= REG_ICASE;
    i = 4;
  } else if (strncmp(pattern, "(?s)", 4) == 0) {
    i = 4;
  }
  int in_bracket = 0;
  for (; i < n; i++) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < n) {
      char d = pattern[i + 1];
      const char *rep = NULL;
      switch (d) {
      case 'd': rep = in_bracket ? "0-9" : "[0-9]"; break;
      case 'D': rep = in_bracket ? NULL : "[^0-9]"; break;
      case 'w': rep = in_bracket ? "A-Za-z0-9_" : "[A-Za-z0-9_]"; break;
      case 'W': rep = in_bracket ? NULL : "[^A-Za-z0-9_]"; break;
      case 's': rep = in_bracket ? " \t\n\r\f\v" : "[ \t\n\r\f\v]"; break;
      case 'S': rep = in_bracket ? NULL : "[^ \t\n\r\f\v]"; break;
      case 'A': rep = in_bracket ? NULL : "^"; break;
      case 'z': rep = in_bracket ? NULL : "$"; break;
      default: break;
      }
      if (rep) {
        size_t l = strlen(rep);
        memcpy(out + o, rep, l);
        o += l;
      } else if (in_bracket && d != ']' && d != '\\' && d != '-' && d != '^') {
        out[o++] = d; /* inside brackets POSIX has no escapes: \. is just . */
      } else {
        out[o++] = c;
        out[o++] = d;
      }
      i++;
      continue;
    }
    if (in_bracket) {
      if (c == ']')
        in_bracket = 0;
      out[o++] = c;
      continue;
    }
    if (c == '[') {
      in_bracket = 1;
      out[o++] = c;
      if (i + 1 < n && pattern[i + 1] == '^')
        out[o++] = pattern[++i];
      if (i + 1 < n && pattern[i + 1] == ']')
        out[o++] = pattern[++i];
      continue;
    }
    if (c == '?' && i > 0 &&
        (pattern[i - 1] == '*' || pattern[i - 1] == '+' || pattern[i - 1] == '}' ||
         (pattern[i - 1] == '?' && i > 1 && pattern[i - 2] != '(' && pattern[i - 2] != '\\'))) {
      continue; /* lazy quantifier: same set of matches */
    }
    if (c == '(' && i + 2 < n && pattern[i + 1] == '?' && pattern[i + 2] == ':') {
      out[o++] = '(';
      i += 2; /* non-capturing group: capture is irrelevant to matching */
      continue;
    }
    out[o++] = c;
  }
  out[o] = 0;
  const char *why = regex_too_complex(out);
  if (why) {
    snprintf(errbuf, errsz, "error parsing regexp: %s: `%.60s`", why, pattern);
    free(out);
    return -1;
  }
  int rc = regcomp(re, out, flags);
  free(out);
  if (rc != 0) {
    char msg[160];
    regerror(rc, re, msg, sizeof msg);
    snprintf(errbuf, errsz, "error parsing regexp: %s: `%.60s`", msg, pattern);
    return -1;
  }
  return 0;
}
