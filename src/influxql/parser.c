/* The InfluxQL parser: recursive descent over the lexer's tokens into the tree of influxql.h.
 *
 * The grammar and the error messages are InfluxDB 1.x's (its documented InfluxQL
 * specification), including where it looks ahead at single runes (a '/' starting a regex, a '.'
 * between identifier segments) and where it does or does not skip whitespace, because those
 * decide which token an error message names. Binary expressions are built by precedence
 * climbing over the right spine of the tree: OR < AND < comparisons < + - | ^ < * / % &, left
 * associative; parentheses are opaque.
 *
 * Statements Plateau recognises but does not run (user management, continuous queries,
 * retention policy changes, EXPLAIN...) parse as INFLUXQL_STMT_UNSUPPORTED up to the next ';',
 * so a batch containing one fails at that statement with a clear message instead of a syntax
 * error.
 *
 * Limits: the text length, the statement count, the nesting of parentheses, calls and
 * subqueries (INFLUXQL_DEPTH_MAX, which also bounds the recursion here), and binary operators
 * per statement (which bounds the depth of every tree the executor walks recursively).
 */
#include "influxql/influxql_int.h"

#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct parser {
  influxql_lexer lx;
  influxql_arena *arena;
  const influxql_param *params;
  size_t nparams;
  pl_err *err;
  int depth;
  int ops;
} parser;

/* ---- errors ---- */

static int fail(parser *p, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static int fail(parser *p, int code, const char *fmt, ...) {
  if (p->err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

static const char *tokstr(const influxql_token *t) {
  return t->len ? t->lit : influxql__tok_name(t->tok);
}

/* "found X, expected A, B at line L, char C" */
static int fail_found(parser *p, const influxql_token *t, const char *expected) {
  return fail(p, PL_EINVAL, "found %s, expected %s at line %d, char %d", tokstr(t), expected,
              t->pos.line + 1, t->pos.col + 1);
}

static int fail_at(parser *p, influxql_pos pos, const char *msg) {
  return fail(p, PL_EINVAL, "%s at line %d, char %d", msg, pos.line + 1, pos.col + 1);
}

static int oom(parser *p) {
  return fail(p, PL_ENOMEM, "out of memory while parsing the query (or the query is too complex)");
}

/* ---- tokens ---- */

static const influxql_param *param_find(const parser *p, const char *name) {
  for (size_t i = 0; i < p->nparams; i++)
    if (strcmp(p->params[i].name, name) == 0)
      return &p->params[i];
  return NULL;
}

static influxql_token subst(parser *p, influxql_token t) {
  if (t.tok != TK_BOUNDPARAM || t.len < 2)
    return t;
  const influxql_param *v = param_find(p, t.lit + 1);
  if (!v)
    return t;
  switch (v->kind) {
  case INFLUXQL_PARAM_STRING: t.tok = TK_STRING; break;
  case INFLUXQL_PARAM_INTEGER: t.tok = TK_INTEGER; break;
  case INFLUXQL_PARAM_NUMBER: t.tok = TK_NUMBER; break;
  case INFLUXQL_PARAM_BOOL: t.tok = strcasecmp(v->text, "true") == 0 ? TK_TRUE : TK_FALSE; break;
  case INFLUXQL_PARAM_IDENT: t.tok = TK_IDENT; break;
  case INFLUXQL_PARAM_REGEX: t.tok = TK_REGEX; break;
  case INFLUXQL_PARAM_DURATION: t.tok = TK_DURATIONVAL; break;
  }
  t.lit = v->text;
  t.len = strlen(v->text);
  return t;
}

static influxql_token scan(parser *p) {
  return subst(p, influxql__scan(&p->lx));
}

static influxql_token scan_regex_tok(parser *p) {
  return subst(p, influxql__scan_regex(&p->lx));
}

static influxql_token scan_nows(parser *p) {
  for (;;) {
    influxql_token t = scan(p);
    if (t.tok != TK_WS && t.tok != TK_COMMENT)
      return t;
  }
}

static void unscan(parser *p) {
  influxql__unscan(&p->lx);
}

static void consume_ws(parser *p) {
  if (scan(p).tok != TK_WS)
    unscan(p);
}

static int expect(parser *p, int tok) {
  influxql_token t = scan_nows(p);
  return t.tok == tok ? 0 : fail_found(p, &t, influxql__tok_name(tok));
}

/* ---- small constructors ---- */

static influxql_expr *new_expr(parser *p, influxql_expr_kind kind) {
  influxql_expr *e = influxql__alloc(p->arena, sizeof *e);
  if (e)
    e->kind = kind;
  return e;
}

static char *dup(parser *p, const char *s, size_t n) {
  return influxql__strndup(p->arena, s, n);
}

/* A growable array of pointers in the arena (old blocks are abandoned: fine for parse sizes). */
typedef struct ptrvec {
  void **v;
  size_t n, cap;
} ptrvec;

static int vec_push(parser *p, ptrvec *v, void *x) {
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 4;
    void **nv = influxql__alloc(p->arena, cap * sizeof *nv);
    if (!nv)
      return oom(p);
    if (v->n)
      memcpy(nv, v->v, v->n * sizeof *nv);
    v->v = nv;
    v->cap = cap;
  }
  v->v[v->n++] = x;
  return 0;
}

static int nest(parser *p, influxql_pos pos) {
  if (++p->depth > INFLUXQL_DEPTH_MAX)
    return fail(p, PL_ELIMIT,
                "the query nests parentheses, calls or subqueries deeper than %d levels at line "
                "%d, char %d",
                INFLUXQL_DEPTH_MAX, pos.line + 1, pos.col + 1);
  return 0;
}

/* ---- durations ---- */

/* InfluxQL durations: one or more <digits><unit>, units ns u µ ms s m h d w. */
static int parse_duration(parser *p, const char *s, int64_t *out) {
  size_t n = strlen(s), i = 0;
  if (n < 2)
    return fail(p, PL_EINVAL, "invalid duration");
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
      return fail(p, PL_EINVAL, "invalid duration");
    errno = 0;
    char digits[32];
    if (i - start >= sizeof digits)
      return fail(p, PL_EINVAL, "invalid duration");
    memcpy(digits, s + start, i - start);
    digits[i - start] = 0;
    long long v = strtoll(digits, NULL, 10);
    if (errno)
      return fail(p, PL_EINVAL, "invalid duration");
    measure = v;
    int64_t mult;
    size_t ulen = 1;
    if (s[i] == 'n') {
      if (i + 1 < n && s[i + 1] == 's')
        mult = 1, ulen = 2;
      else
        return fail(p, PL_EINVAL, "invalid duration");
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
      return fail(p, PL_EINVAL, "invalid duration");
    }
    memcpy(unit, s + i, ulen);
    unit[ulen] = 0;
    /* Go's time.Duration wraps; a wrapped (negative) total is reported as an overflow. */
    d = (int64_t)((uint64_t)d + (uint64_t)v * (uint64_t)mult);
    i += ulen;
  }
  if (d < 0 && !neg)
    return fail(p, PL_EINVAL, "overflowed duration %lld%s: choose a smaller duration or INF",
                (long long)measure, unit);
  *out = neg ? -d : d;
  return 0;
}

/* ---- regexes ---- */

static int parse_regex(parser *p, influxql_expr **out) {
  *out = NULL;
  int32_t ch = influxql__peek_rune(&p->lx);
  if (ch == ' ' || ch == '\t' || ch == '\n')
    consume_ws(p);
  ch = influxql__peek_rune(&p->lx);
  if (ch == '$') {
    influxql_token t = scan(p);
    unscan(p);
    if (t.tok != TK_REGEX)
      return 0;
  } else if (ch != '/') {
    return 0;
  }
  influxql_token t = scan_regex_tok(p);
  if (t.tok == TK_BADESCAPE) {
    char msg[300];
    snprintf(msg, sizeof msg, "bad escape: %s", t.lit);
    return fail_at(p, t.pos, msg);
  }
  if (t.tok == TK_BADREGEX) {
    char msg[300];
    snprintf(msg, sizeof msg, "bad regex: %s", t.lit);
    return fail_at(p, t.pos, msg);
  }
  if (t.tok != TK_REGEX)
    return fail_found(p, &t, "regex");
  regex_t re;
  char ebuf[200];
  if (influxql__regex_compile(t.lit, &re, ebuf, sizeof ebuf) < 0)
    return fail_at(p, t.pos, ebuf);
  regfree(&re);
  influxql_expr *e = new_expr(p, INFLUXQL_EXPR_REGEX);
  if (!e || !(e->str = dup(p, t.lit, t.len)))
    return oom(p);
  e->len = t.len;
  *out = e;
  return 0;
}

/* ---- identifiers ---- */

static int parse_ident(parser *p, const char **out) {
  influxql_token t = scan_nows(p);
  if (t.tok != TK_IDENT)
    return fail_found(p, &t, "identifier");
  if (!(*out = dup(p, t.lit, t.len)))
    return oom(p);
  return 0;
}

static int parse_ident_list(parser *p, ptrvec *v) {
  const char *id;
  int rc;
  if ((rc = parse_ident(p, &id)) < 0 || (rc = vec_push(p, v, (void *)id)) < 0)
    return rc;
  for (;;) {
    if (scan_nows(p).tok != TK_COMMA) {
      unscan(p);
      return 0;
    }
    if ((rc = parse_ident(p, &id)) < 0 || (rc = vec_push(p, v, (void *)id)) < 0)
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
static int parse_segmented(parser *p, const char *seg[3], size_t *nseg) {
  ptrvec all = {0};
  int rc;
  const char *id;
  if ((rc = parse_ident(p, &id)) < 0 || (rc = vec_push(p, &all, (void *)id)) < 0)
    return rc;
  for (;;) {
    if (scan(p).tok != TK_DOT) {
      unscan(p);
      break;
    }
    int32_t ch = influxql__peek_rune(&p->lx);
    if (ch == '/' || ch == ':')
      break;
    if (ch == '.') {
      id = "";
    } else if ((rc = parse_ident(p, &id)) < 0) {
      return rc;
    }
    if ((rc = vec_push(p, &all, (void *)id)) < 0)
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
    fail(p, PL_EINVAL, "too many segments in %s at line 1, char 1", b.len ? pl_buf_cstr(&b) : "");
    pl_buf_free(&b);
    return PL_EINVAL;
  }
  for (size_t i = 0; i < all.n; i++)
    seg[i] = all.v[i];
  *nseg = all.n;
  return 0;
}

/* ---- expressions ---- */

static int parse_expr(parser *p, influxql_expr **out);

static int parse_varref(parser *p, influxql_expr **out) {
  const char *seg[3];
  size_t n;
  int rc;
  if ((rc = parse_segmented(p, seg, &n)) < 0)
    return rc;
  influxql_expr *e = new_expr(p, INFLUXQL_EXPR_VARREF);
  if (!e)
    return oom(p);
  size_t len = 0;
  for (size_t i = 0; i < n; i++)
    len += strlen(seg[i]) + (i ? 1 : 0);
  char *s = influxql__alloc(p->arena, len + 1);
  if (!s)
    return oom(p);
  for (size_t i = 0, at = 0; i < n; i++) {
    if (i)
      s[at++] = '.';
    size_t l = strlen(seg[i]);
    memcpy(s + at, seg[i], l);
    at += l;
  }
  e->str = s;
  e->len = len;
  influxql_token t = scan(p);
  if (t.tok == TK_DOUBLECOLON) {
    influxql_token t2 = scan(p);
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
        return fail_found(p, &t2, "float, integer, unsigned, string, boolean, field, tag");
      e->vtype = types[k].vt;
    } else if (t2.tok == TK_FIELD) {
      e->vtype = INFLUXQL_VT_FIELD;
    } else if (t2.tok == TK_TAG) {
      e->vtype = INFLUXQL_VT_TAG;
    } else {
      return fail_found(p, &t2, "float, integer, string, boolean, field, tag");
    }
  } else {
    unscan(p);
  }
  *out = e;
  return 0;
}

static int parse_call(parser *p, const char *name, size_t nlen, influxql_pos pos,
                      influxql_expr **out) {
  int rc;
  if ((rc = nest(p, pos)) < 0)
    return rc;
  influxql_expr *e = new_expr(p, INFLUXQL_EXPR_CALL);
  char *lname = e ? dup(p, name, nlen) : NULL;
  if (!lname)
    return oom(p);
  for (char *c = lname; *c; c++)
    if (*c >= 'A' && *c <= 'Z')
      *c = (char)(*c - 'A' + 'a');
  e->str = lname;
  e->len = nlen;
  ptrvec args = {0};
  influxql_expr *arg;
  if ((rc = parse_regex(p, &arg)) < 0)
    return rc;
  if (arg) {
    if ((rc = vec_push(p, &args, arg)) < 0)
      return rc;
  } else {
    if (scan(p).tok == TK_RPAREN) {
      p->depth--;
      *out = e;
      return 0;
    }
    unscan(p);
    if ((rc = parse_expr(p, &arg)) < 0 || (rc = vec_push(p, &args, arg)) < 0)
      return rc;
  }
  for (;;) {
    if (scan_nows(p).tok != TK_COMMA) {
      unscan(p);
      break;
    }
    if ((rc = parse_regex(p, &arg)) < 0)
      return rc;
    if (!arg && (rc = parse_expr(p, &arg)) < 0)
      return rc;
    if ((rc = vec_push(p, &args, arg)) < 0)
      return rc;
  }
  influxql_token t = scan(p);
  if (t.tok != TK_RPAREN)
    return fail_found(p, &t, ")");
  e->args = (influxql_expr **)args.v;
  e->nargs = args.n;
  p->depth--;
  *out = e;
  return 0;
}

static int count_op(parser *p) {
  if (++p->ops > INFLUXQL_OPERATORS_MAX)
    return fail(p, PL_ELIMIT, "the statement has more than %d operators", INFLUXQL_OPERATORS_MAX);
  return 0;
}

static int parse_unary(parser *p, influxql_expr **out) {
  int rc;
  influxql_token t = scan_nows(p);
  if (t.tok == TK_LPAREN) {
    if ((rc = nest(p, t.pos)) < 0)
      return rc;
    influxql_expr *inner;
    if ((rc = parse_expr(p, &inner)) < 0)
      return rc;
    influxql_token r = scan_nows(p);
    if (r.tok != TK_RPAREN)
      return fail_found(p, &r, ")");
    p->depth--;
    influxql_expr *e = new_expr(p, INFLUXQL_EXPR_PAREN);
    if (!e)
      return oom(p);
    e->lhs = inner;
    *out = e;
    return 0;
  }
  unscan(p);
  t = scan_nows(p);
  influxql_expr *e = NULL;
  switch (t.tok) {
  case TK_IDENT: {
    if (scan(p).tok == TK_LPAREN)
      return parse_call(p, t.lit, t.len, t.pos, out);
    unscan(p);
    unscan(p);
    return parse_varref(p, out);
  }
  case TK_DISTINCT: {
    influxql_token t0 = scan(p);
    if (t0.tok == TK_LPAREN)
      return parse_call(p, "distinct", 8, t.pos, out);
    if (t0.tok == TK_WS) {
      influxql_token t1 = scan_nows(p);
      if (t1.tok != TK_IDENT)
        return fail_found(p, &t1, "identifier");
      if (!(e = new_expr(p, INFLUXQL_EXPR_DISTINCT)) || !(e->str = dup(p, t1.lit, t1.len)))
        return oom(p);
      e->len = t1.len;
      *out = e;
      return 0;
    }
    return fail_found(p, &t0, "(, identifier");
  }
  case TK_STRING:
    if (!(e = new_expr(p, INFLUXQL_EXPR_STRING)) || !(e->str = dup(p, t.lit, t.len)))
      return oom(p);
    e->len = t.len;
    break;
  case TK_NUMBER: {
    char *end;
    errno = 0;
    double v = strtod(t.lit, &end);
    if (*end || (errno == ERANGE && isinf(v)))
      return fail_at(p, t.pos, "unable to parse number");
    if (!(e = new_expr(p, INFLUXQL_EXPR_NUMBER)))
      return oom(p);
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
        return fail_at(p, t.pos, "unable to parse integer");
      if (!(e = new_expr(p, INFLUXQL_EXPR_UNSIGNED)))
        return oom(p);
      e->u = u;
      break;
    }
    if (!(e = new_expr(p, INFLUXQL_EXPR_INTEGER)))
      return oom(p);
    e->i = v;
    break;
  }
  case TK_TRUE:
  case TK_FALSE:
    if (!(e = new_expr(p, INFLUXQL_EXPR_BOOL)))
      return oom(p);
    e->b = t.tok == TK_TRUE;
    break;
  case TK_DURATIONVAL: {
    int64_t d = 0;
    if ((rc = parse_duration(p, t.lit, &d)) < 0)
      return rc;
    if (!(e = new_expr(p, INFLUXQL_EXPR_DURATION)))
      return oom(p);
    e->i = d;
    break;
  }
  case TK_MUL: {
    if (!(e = new_expr(p, INFLUXQL_EXPR_WILDCARD)))
      return oom(p);
    if (scan(p).tok == TK_DOUBLECOLON) {
      influxql_token t2 = scan(p);
      if (t2.tok == TK_FIELD)
        e->vtype = INFLUXQL_VT_FIELD;
      else if (t2.tok == TK_TAG)
        e->vtype = INFLUXQL_VT_TAG;
      else
        return fail_found(p, &t2, "field, tag");
    } else {
      unscan(p);
    }
    break;
  }
  case TK_REGEX: {
    regex_t re;
    char ebuf[200];
    if (influxql__regex_compile(t.lit, &re, ebuf, sizeof ebuf) < 0)
      return fail_at(p, t.pos, ebuf);
    regfree(&re);
    if (!(e = new_expr(p, INFLUXQL_EXPR_REGEX)) || !(e->str = dup(p, t.lit, t.len)))
      return oom(p);
    e->len = t.len;
    break;
  }
  case TK_BOUNDPARAM:
    if (t.len < 2)
      return fail(p, PL_EINVAL, "empty bound parameter");
    return fail(p, PL_EINVAL, "missing parameter: %s", t.lit + 1);
  case TK_ADD:
  case TK_SUB: {
    int neg = t.tok == TK_SUB;
    influxql_token t0 = scan_nows(p);
    switch (t0.tok) {
    case TK_NUMBER:
    case TK_INTEGER:
    case TK_DURATIONVAL:
    case TK_LPAREN:
    case TK_IDENT: break;
    default: return fail_found(p, &t0, "identifier, number, duration, (");
    }
    unscan(p);
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
          return fail(p, PL_EINVAL, "constant -%llu underflows int64", (unsigned long long)x->u);
        }
      }
      break;
    case INFLUXQL_EXPR_DURATION:
      if (neg)
        x->i = (int64_t)(0 - (uint64_t)x->i);
      break;
    default: {
      /* -x, -f(x), -(...): multiply by -1 (or +1) */
      influxql_expr *m = new_expr(p, INFLUXQL_EXPR_BINARY), *k = new_expr(p, INFLUXQL_EXPR_INTEGER);
      if (!m || !k)
        return oom(p);
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
  default: return fail_found(p, &t, "identifier, string, number, bool");
  }
  *out = e;
  return 0;
}

static influxql_op tok_op(int tok) {
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

static int op_tok(influxql_op op) {
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

static int parse_expr(parser *p, influxql_expr **out) {
  int rc;
  influxql_expr root = {.kind = INFLUXQL_EXPR_BINARY};
  if ((rc = parse_unary(p, &root.rhs)) < 0)
    return rc;
  for (;;) {
    influxql_token opt = scan_nows(p);
    if (!TK_IS_OPERATOR(opt.tok)) {
      unscan(p);
      *out = root.rhs;
      return 0;
    }
    influxql_expr *rhs;
    if (opt.tok == TK_EQREGEX || opt.tok == TK_NEQREGEX) {
      if ((rc = parse_regex(p, &rhs)) < 0)
        return rc;
      if (!rhs) {
        influxql_token t = scan_nows(p);
        return fail_found(p, &t, "regex");
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
      if (r->kind != INFLUXQL_EXPR_BINARY || influxql__tok_precedence(op_tok(r->op)) >= prec) {
        influxql_expr *b = new_expr(p, INFLUXQL_EXPR_BINARY);
        if (!b)
          return oom(p);
        b->op = tok_op(opt.tok);
        b->lhs = node->rhs;
        b->rhs = rhs;
        node->rhs = b;
        break;
      }
      node = r;
    }
  }
}

/* ---- SELECT ---- */

static int parse_select(parser *p, influxql_select **out, int subquery);

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
    case INFLUXQL_OP_OR: *bad = op_tok(e->op); return;
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

static int parse_alias(parser *p, const char **alias) {
  *alias = NULL;
  if (scan_nows(p).tok != TK_AS) {
    unscan(p);
    return 0;
  }
  return parse_ident(p, alias);
}

static int parse_fields(parser *p, influxql_select *s) {
  ptrvec v = {0};
  int rc;
  for (;;) {
    influxql_field *f = influxql__alloc(p->arena, sizeof *f);
    if (!f)
      return oom(p);
    if ((rc = parse_regex(p, &f->expr)) < 0)
      return rc;
    if (!f->expr) {
      influxql_token t = scan_nows(p);
      unscan(p);
      if ((rc = parse_expr(p, &f->expr)) < 0)
        return rc;
      int bad = 0;
      find_bad_op(f->expr, &bad);
      if (bad)
        return fail(p, PL_EINVAL,
                    "invalid operator %s in SELECT clause at line %d, char %d; operator is "
                    "intended for WHERE clause",
                    influxql__tok_name(bad), t.pos.line + 1, t.pos.col + 1);
    }
    if ((rc = parse_alias(p, &f->alias)) < 0)
      return rc;
    consume_ws(p);
    if ((rc = vec_push(p, &v, f)) < 0)
      return rc;
    if (scan(p).tok != TK_COMMA) {
      unscan(p);
      break;
    }
  }
  s->fields = influxql__alloc(p->arena, v.n * sizeof *s->fields);
  if (!s->fields)
    return oom(p);
  for (size_t i = 0; i < v.n; i++)
    s->fields[i] = *(influxql_field *)v.v[i];
  s->nfields = v.n;
  return 0;
}

static int parse_source(parser *p, influxql_source *src, int subqueries) {
  int rc;
  influxql_expr *re;
  memset(src, 0, sizeof *src);
  if ((rc = parse_regex(p, &re)) < 0)
    return rc;
  if (re) {
    src->regex = re->str;
    return 0;
  }
  if (subqueries) {
    influxql_token t = scan_nows(p);
    if (t.tok == TK_LPAREN) {
      if ((rc = nest(p, t.pos)) < 0)
        return rc;
      if ((rc = expect(p, TK_SELECT)) < 0)
        return rc;
      if ((rc = parse_select(p, &src->subquery, 1)) < 0)
        return rc;
      if ((rc = expect(p, TK_RPAREN)) < 0)
        return rc;
      p->depth--;
      return 0;
    }
    unscan(p);
  }
  const char *seg[3];
  size_t n;
  if ((rc = parse_segmented(p, seg, &n)) < 0)
    return rc;
  if (n == 3) {
    src->db = *seg[0] ? seg[0] : NULL;
    src->rp = *seg[1] ? seg[1] : NULL;
    src->name = seg[2];
    return 0;
  }
  if ((rc = parse_regex(p, &re)) < 0)
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

static int parse_sources(parser *p, influxql_source **out, size_t *n, int subqueries) {
  ptrvec v = {0};
  int rc;
  for (;;) {
    influxql_source *s = influxql__alloc(p->arena, sizeof *s);
    if (!s)
      return oom(p);
    if ((rc = parse_source(p, s, subqueries)) < 0 || (rc = vec_push(p, &v, s)) < 0)
      return rc;
    if (scan_nows(p).tok != TK_COMMA) {
      unscan(p);
      break;
    }
  }
  *out = influxql__alloc(p->arena, v.n * sizeof **out);
  if (!*out)
    return oom(p);
  for (size_t i = 0; i < v.n; i++)
    (*out)[i] = *(influxql_source *)v.v[i];
  *n = v.n;
  return 0;
}

static int parse_condition(parser *p, influxql_expr **cond) {
  *cond = NULL;
  if (scan_nows(p).tok != TK_WHERE) {
    unscan(p);
    return 0;
  }
  return parse_expr(p, cond);
}

static int parse_dimensions(parser *p, influxql_select *s) {
  if (scan_nows(p).tok != TK_GROUP) {
    unscan(p);
    return 0;
  }
  int rc = expect(p, TK_BY);
  if (rc < 0)
    return rc;
  ptrvec v = {0};
  for (;;) {
    influxql_expr *d;
    if ((rc = parse_regex(p, &d)) < 0)
      return rc;
    if (!d) {
      if ((rc = parse_expr(p, &d)) < 0)
        return rc;
      consume_ws(p);
    }
    if ((rc = vec_push(p, &v, d)) < 0)
      return rc;
    if (scan(p).tok != TK_COMMA) {
      unscan(p);
      break;
    }
  }
  s->dims = (influxql_expr **)v.v;
  s->ndims = v.n;
  return 0;
}

/* A call written where InfluxDB expects fill(...) or tz(...): its name as the next identifier. */
static int next_is_call_named(parser *p, const char *name) {
  influxql_token t = scan_nows(p);
  unscan(p);
  return t.tok == TK_IDENT && strcasecmp(t.lit, name) == 0;
}

static int parse_fill(parser *p, influxql_select *s) {
  if (!next_is_call_named(p, "fill"))
    return 0;
  influxql_expr *e;
  int rc = parse_expr(p, &e);
  if (rc < 0)
    return rc;
  if (e->kind != INFLUXQL_EXPR_CALL)
    return fail(p, PL_EINVAL, "fill must be a function call");
  if (e->nargs != 1)
    return fail(p, PL_EINVAL, "fill requires an argument, e.g.: 0, null, none, previous, linear");
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
  return fail(p, PL_EINVAL, "expected number argument in fill()");
}

static int parse_order_by(parser *p, int *desc) {
  *desc = 0;
  if (scan_nows(p).tok != TK_ORDER) {
    unscan(p);
    return 0;
  }
  int rc = expect(p, TK_BY);
  if (rc < 0)
    return rc;
  size_t nfields = 0;
  influxql_token t = scan_nows(p);
  if (t.tok == TK_ASC || t.tok == TK_DESC) {
    *desc = t.tok == TK_DESC;
    nfields = 1;
  } else if (t.tok == TK_IDENT) {
    unscan(p);
    const char *name;
    if ((rc = parse_ident(p, &name)) < 0)
      return rc;
    influxql_token d = scan_nows(p);
    if (d.tok == TK_DESC)
      *desc = 1;
    else if (d.tok != TK_ASC)
      unscan(p);
    if (strcmp(t.lit, "time") != 0)
      return fail(p, PL_EINVAL, "only ORDER BY time supported at this time");
    nfields = 1;
  } else {
    return fail_found(p, &t, "identifier, ASC, DESC");
  }
  for (;;) {
    if (scan_nows(p).tok != TK_COMMA) {
      unscan(p);
      break;
    }
    const char *name;
    if ((rc = parse_ident(p, &name)) < 0)
      return rc;
    influxql_token d = scan_nows(p);
    if (d.tok != TK_ASC && d.tok != TK_DESC)
      unscan(p);
    nfields++;
  }
  if (nfields > 1)
    return fail(p, PL_EINVAL, "only ORDER BY time supported at this time");
  return 0;
}

static int parse_optional_int(parser *p, int tok, int64_t *out) {
  *out = 0;
  if (scan_nows(p).tok != tok) {
    unscan(p);
    return 0;
  }
  influxql_token t = scan_nows(p);
  if (t.tok != TK_INTEGER)
    return fail_found(p, &t, "integer");
  errno = 0;
  long long v = strtoll(t.lit, NULL, 10);
  *out = errno == ERANGE ? INT64_MAX : v;
  return 0;
}

static int parse_location(parser *p, const char **tz) {
  *tz = NULL;
  if (!next_is_call_named(p, "tz"))
    return 0;
  influxql_expr *e;
  int rc = parse_expr(p, &e);
  if (rc < 0)
    return rc;
  if (e->kind != INFLUXQL_EXPR_CALL)
    return fail(p, PL_EINVAL, "tz must be a function call");
  if (e->nargs != 1)
    return fail(p, PL_EINVAL, "tz requires exactly one argument");
  if (e->args[0]->kind != INFLUXQL_EXPR_STRING)
    return fail(p, PL_EINVAL, "expected string argument in tz()");
  *tz = e->args[0]->str;
  return 0;
}

static int parse_target(parser *p, const char **into) {
  *into = NULL;
  if (scan_nows(p).tok != TK_INTO) {
    unscan(p);
    return 0;
  }
  const char *seg[3];
  size_t n;
  int rc;
  if ((rc = parse_segmented(p, seg, &n)) < 0)
    return rc;
  int measurement_ref = 0;
  if (n < 3 && influxql__peek_rune(&p->lx) == ':') {
    if ((rc = expect(p, TK_COLON)) < 0 || (rc = expect(p, TK_MEASUREMENT)) < 0)
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
  *into = dup(p, b.len ? (const char *)b.data : "", b.len);
  pl_buf_free(&b);
  return *into ? 0 : oom(p);
}

static int parse_select(parser *p, influxql_select **out, int subquery) {
  (void)subquery;
  influxql_select *s = influxql__alloc(p->arena, sizeof *s);
  if (!s)
    return oom(p);
  int rc;
  if ((rc = parse_fields(p, s)) < 0)
    return rc;
  if ((rc = parse_target(p, &s->into)) < 0)
    return rc;
  if ((rc = expect(p, TK_FROM)) < 0)
    return rc;
  if ((rc = parse_sources(p, &s->sources, &s->nsources, 1)) < 0)
    return rc;
  if ((rc = parse_condition(p, &s->cond)) < 0)
    return rc;
  if ((rc = parse_dimensions(p, s)) < 0)
    return rc;
  if ((rc = parse_fill(p, s)) < 0)
    return rc;
  if ((rc = parse_order_by(p, &s->order_desc)) < 0)
    return rc;
  if ((rc = parse_optional_int(p, TK_LIMIT, &s->limit)) < 0)
    return rc;
  if ((rc = parse_optional_int(p, TK_OFFSET, &s->offset)) < 0)
    return rc;
  if ((rc = parse_optional_int(p, TK_SLIMIT, &s->slimit)) < 0)
    return rc;
  if ((rc = parse_optional_int(p, TK_SOFFSET, &s->soffset)) < 0)
    return rc;
  if ((rc = parse_location(p, &s->tz)) < 0)
    return rc;
  *out = s;
  return 0;
}

/* ---- SHOW, CREATE, DROP, DELETE ---- */

static int parse_on(parser *p, influxql_stmt *st) {
  if (scan_nows(p).tok != TK_ON) {
    unscan(p);
    return 0;
  }
  return parse_ident(p, &st->db);
}

static int parse_from(parser *p, influxql_stmt *st) {
  if (scan_nows(p).tok != TK_FROM) {
    unscan(p);
    return 0;
  }
  return parse_sources(p, &st->sources, &st->nsources, 0);
}

static int parse_limits(parser *p, influxql_stmt *st, int series_limits) {
  int rc, desc;
  if ((rc = parse_order_by(p, &desc)) < 0)
    return rc;
  if ((rc = parse_optional_int(p, TK_LIMIT, &st->limit)) < 0)
    return rc;
  if ((rc = parse_optional_int(p, TK_OFFSET, &st->offset)) < 0)
    return rc;
  if (series_limits) {
    if ((rc = parse_optional_int(p, TK_SLIMIT, &st->slimit)) < 0)
      return rc;
    if ((rc = parse_optional_int(p, TK_SOFFSET, &st->soffset)) < 0)
      return rc;
  }
  return 0;
}

/* WITH KEY = k | != k | =~ /re/ | !~ /re/ | IN (k1, k2) */
static int parse_tag_key_expr(parser *p, influxql_stmt *st) {
  int rc;
  if ((rc = expect(p, TK_WITH)) < 0 || (rc = expect(p, TK_KEY)) < 0)
    return rc;
  influxql_token t = scan_nows(p);
  ptrvec keys = {0};
  if (t.tok == TK_IN) {
    influxql_token l = scan_nows(p);
    if (l.tok != TK_LPAREN)
      return fail_found(p, &l, "(");
    if ((rc = parse_ident_list(p, &keys)) < 0)
      return rc;
    influxql_token r = scan_nows(p);
    if (r.tok != TK_RPAREN)
      return fail_found(p, &r, ")");
    st->key_op = INFLUXQL_OP_NONE;
  } else if (t.tok == TK_EQ || t.tok == TK_NEQ) {
    const char *k;
    if ((rc = parse_ident(p, &k)) < 0 || (rc = vec_push(p, &keys, (void *)k)) < 0)
      return rc;
    st->key_op = tok_op(t.tok);
  } else if (t.tok == TK_EQREGEX || t.tok == TK_NEQREGEX) {
    influxql_expr *re;
    if ((rc = parse_regex(p, &re)) < 0)
      return rc;
    if (!re) {
      influxql_token x = scan_nows(p);
      return fail_found(p, &x, "regex");
    }
    st->key_regex = re->str;
    st->key_op = tok_op(t.tok);
  } else {
    return fail_found(p, &t, "IN, =, =~");
  }
  st->keys = (const char **)keys.v;
  st->nkeys = keys.n;
  return 0;
}

/* Skips what is left of a statement Plateau does not run (to ';' or the end). */
static int skip_statement(parser *p, influxql_stmt *st, const char *text) {
  st->kind = INFLUXQL_STMT_UNSUPPORTED;
  if (!(st->text = dup(p, text, strlen(text))))
    return oom(p);
  for (;;) {
    influxql_token t = scan(p);
    if (t.tok == TK_EOF || t.tok == TK_SEMICOLON) {
      unscan(p);
      return 0;
    }
  }
}

static int parse_show(parser *p, influxql_stmt *st) {
  int rc;
  influxql_token t = scan_nows(p);
  switch (t.tok) {
  case TK_DATABASES: st->kind = INFLUXQL_STMT_SHOW_DATABASES; return 0;
  case TK_MEASUREMENTS: {
    st->kind = INFLUXQL_STMT_SHOW_MEASUREMENTS;
    if ((rc = parse_on(p, st)) < 0)
      return rc;
    if (scan_nows(p).tok == TK_WITH) {
      if ((rc = expect(p, TK_MEASUREMENT)) < 0)
        return rc;
      influxql_token op = scan_nows(p);
      if (op.tok != TK_EQ && op.tok != TK_EQREGEX)
        return fail_found(p, &op, "=, =~");
      st->with_measurement = influxql__alloc(p->arena, sizeof *st->with_measurement);
      if (!st->with_measurement)
        return oom(p);
      if ((rc = parse_source(p, st->with_measurement, 0)) < 0)
        return rc;
      st->key_op = tok_op(op.tok);
    } else {
      unscan(p);
    }
    if ((rc = parse_condition(p, &st->cond)) < 0)
      return rc;
    return parse_limits(p, st, 0);
  }
  case TK_MEASUREMENT: {
    influxql_token x = scan_nows(p);
    if (x.tok == TK_EXACT || x.tok == TK_CARDINALITY)
      return skip_statement(p, st, "SHOW MEASUREMENT CARDINALITY");
    return fail_found(p, &x, "EXACT, CARDINALITY");
  }
  case TK_TAG: {
    influxql_token x = scan_nows(p);
    if (x.tok == TK_KEYS) {
      st->kind = INFLUXQL_STMT_SHOW_TAG_KEYS;
      if ((rc = parse_on(p, st)) < 0 || (rc = parse_from(p, st)) < 0)
        return rc;
      if ((rc = parse_condition(p, &st->cond)) < 0)
        return rc;
      return parse_limits(p, st, 1);
    }
    if (x.tok == TK_VALUES) {
      influxql_token y = scan_nows(p);
      if (y.tok == TK_EXACT || y.tok == TK_CARDINALITY)
        return skip_statement(p, st, "SHOW TAG VALUES CARDINALITY");
      unscan(p);
      st->kind = INFLUXQL_STMT_SHOW_TAG_VALUES;
      if ((rc = parse_on(p, st)) < 0 || (rc = parse_from(p, st)) < 0)
        return rc;
      if ((rc = parse_tag_key_expr(p, st)) < 0)
        return rc;
      if ((rc = parse_condition(p, &st->cond)) < 0)
        return rc;
      return parse_limits(p, st, 0);
    }
    if (x.tok == TK_KEY)
      return skip_statement(p, st, "SHOW TAG KEY CARDINALITY");
    return fail_found(p, &x, "KEY, KEYS, VALUES");
  }
  case TK_FIELD: {
    influxql_token x = scan_nows(p);
    if (x.tok == TK_KEYS) {
      st->kind = INFLUXQL_STMT_SHOW_FIELD_KEYS;
      if ((rc = parse_on(p, st)) < 0 || (rc = parse_from(p, st)) < 0)
        return rc;
      return parse_limits(p, st, 0);
    }
    if (x.tok == TK_KEY)
      return skip_statement(p, st, "SHOW FIELD KEY CARDINALITY");
    return fail_found(p, &x, "KEY, KEYS");
  }
  case TK_SERIES: {
    influxql_token x = scan_nows(p);
    if (x.tok == TK_EXACT || x.tok == TK_CARDINALITY)
      return skip_statement(p, st, "SHOW SERIES CARDINALITY");
    unscan(p);
    st->kind = INFLUXQL_STMT_SHOW_SERIES;
    if ((rc = parse_on(p, st)) < 0 || (rc = parse_from(p, st)) < 0)
      return rc;
    if ((rc = parse_condition(p, &st->cond)) < 0)
      return rc;
    return parse_limits(p, st, 0);
  }
  case TK_RETENTION:
    if ((rc = expect(p, TK_POLICIES)) < 0)
      return rc;
    st->kind = INFLUXQL_STMT_SHOW_RETENTION_POLICIES;
    return parse_on(p, st);
  case TK_CONTINUOUS: return skip_statement(p, st, "SHOW CONTINUOUS QUERIES");
  case TK_DIAGNOSTICS: return skip_statement(p, st, "SHOW DIAGNOSTICS");
  case TK_GRANTS: return skip_statement(p, st, "SHOW GRANTS");
  case TK_QUERIES: return skip_statement(p, st, "SHOW QUERIES");
  case TK_SHARD: return skip_statement(p, st, "SHOW SHARD GROUPS");
  case TK_SHARDS: return skip_statement(p, st, "SHOW SHARDS");
  case TK_STATS: return skip_statement(p, st, "SHOW STATS");
  case TK_SUBSCRIPTIONS: return skip_statement(p, st, "SHOW SUBSCRIPTIONS");
  case TK_USERS: return skip_statement(p, st, "SHOW USERS");
  default:
    return fail_found(
        p, &t,
        "CONTINUOUS, DATABASES, DIAGNOSTICS, FIELD, GRANTS, MEASUREMENT, MEASUREMENTS, "
        "QUERIES, RETENTION, SERIES, SHARD, SHARDS, STATS, SUBSCRIPTIONS, TAG, USERS");
  }
}

static int parse_create_database(parser *p, influxql_stmt *st) {
  int rc;
  st->kind = INFLUXQL_STMT_CREATE_DATABASE;
  if ((rc = parse_ident(p, &st->db)) < 0)
    return rc;
  if (scan_nows(p).tok != TK_WITH) {
    unscan(p);
    return 0;
  }
  /* Retention policy options are accepted and ignored: Plateau keeps one retention per tenant. */
  influxql_token t = scan_nows(p);
  if (t.tok != TK_DURATION && t.tok != TK_NAME && t.tok != TK_REPLICATION && t.tok != TK_SHARD)
    return fail_found(p, &t, "DURATION, NAME, REPLICATION, SHARD");
  unscan(p);
  if (scan_nows(p).tok == TK_DURATION) {
    influxql_token d = scan_nows(p);
    if (d.tok != TK_DURATIONVAL && d.tok != TK_INF)
      return fail_found(p, &d, "duration");
  } else {
    unscan(p);
  }
  if (scan_nows(p).tok == TK_REPLICATION) {
    influxql_token n = scan_nows(p);
    if (n.tok != TK_INTEGER)
      return fail_found(p, &n, "integer");
  } else {
    unscan(p);
  }
  if (scan_nows(p).tok == TK_SHARD) {
    if ((rc = expect(p, TK_DURATION)) < 0)
      return rc;
    influxql_token d = scan_nows(p);
    if (d.tok != TK_DURATIONVAL && d.tok != TK_INF)
      return fail_found(p, &d, "duration");
  } else {
    unscan(p);
  }
  if (scan_nows(p).tok == TK_NAME) {
    const char *rp;
    if ((rc = parse_ident(p, &rp)) < 0)
      return rc;
  } else {
    unscan(p);
  }
  return 0;
}

/* Sources of DROP SERIES and DELETE name measurements of the current database only. */
static int check_delete_sources(parser *p, const influxql_stmt *st) {
  const char *msg = NULL;
  for (size_t i = 0; i < st->nsources; i++) {
    if (st->sources[i].db)
      msg = "database not supported";
    if (st->sources[i].rp)
      msg = "retention policy not supported";
  }
  return msg ? fail(p, PL_EINVAL, "%s at line 1, char 1", msg) : 0;
}

/* DROP SERIES / DELETE: [FROM sources] [WHERE cond], at least one of them. */
static int parse_delete_like(parser *p, influxql_stmt *st) {
  int rc;
  influxql_token t = scan_nows(p);
  if (t.tok == TK_FROM) {
    if ((rc = parse_sources(p, &st->sources, &st->nsources, 0)) < 0)
      return rc;
    if ((rc = check_delete_sources(p, st)) < 0)
      return rc;
  } else {
    unscan(p);
  }
  if ((rc = parse_condition(p, &st->cond)) < 0)
    return rc;
  if (!st->cond && !st->nsources)
    return fail_found(p, &t, "FROM, WHERE");
  return 0;
}

static int parse_statement(parser *p, influxql_stmt *st) {
  int rc;
  memset(st, 0, sizeof *st);
  p->ops = 0;
  influxql_token t = scan_nows(p);
  switch (t.tok) {
  case TK_SELECT: st->kind = INFLUXQL_STMT_SELECT; return parse_select(p, &st->select, 0);
  case TK_DELETE: st->kind = INFLUXQL_STMT_DELETE; return parse_delete_like(p, st);
  case TK_SHOW: return parse_show(p, st);
  case TK_CREATE: {
    influxql_token x = scan_nows(p);
    switch (x.tok) {
    case TK_DATABASE: return parse_create_database(p, st);
    case TK_CONTINUOUS: return skip_statement(p, st, "CREATE CONTINUOUS QUERY");
    case TK_USER: return skip_statement(p, st, "CREATE USER");
    case TK_RETENTION: return skip_statement(p, st, "CREATE RETENTION POLICY");
    case TK_SUBSCRIPTION: return skip_statement(p, st, "CREATE SUBSCRIPTION");
    default: return fail_found(p, &x, "CONTINUOUS, DATABASE, USER, RETENTION, SUBSCRIPTION");
    }
  }
  case TK_DROP: {
    influxql_token x = scan_nows(p);
    switch (x.tok) {
    case TK_DATABASE: st->kind = INFLUXQL_STMT_DROP_DATABASE; return parse_ident(p, &st->db);
    case TK_MEASUREMENT:
      st->kind = INFLUXQL_STMT_DROP_MEASUREMENT;
      return parse_ident(p, &st->name);
    case TK_SERIES: st->kind = INFLUXQL_STMT_DROP_SERIES; return parse_delete_like(p, st);
    case TK_CONTINUOUS: return skip_statement(p, st, "DROP CONTINUOUS QUERY");
    case TK_RETENTION: return skip_statement(p, st, "DROP RETENTION POLICY");
    case TK_SHARD: return skip_statement(p, st, "DROP SHARD");
    case TK_SUBSCRIPTION: return skip_statement(p, st, "DROP SUBSCRIPTION");
    case TK_USER: return skip_statement(p, st, "DROP USER");
    default:
      return fail_found(
          p, &x, "CONTINUOUS, DATABASE, MEASUREMENT, RETENTION, SERIES, SHARD, SUBSCRIPTION, USER");
    }
  }
  case TK_EXPLAIN: return skip_statement(p, st, "EXPLAIN");
  case TK_GRANT: return skip_statement(p, st, "GRANT");
  case TK_REVOKE: return skip_statement(p, st, "REVOKE");
  case TK_ALTER: return skip_statement(p, st, "ALTER RETENTION POLICY");
  case TK_SET: return skip_statement(p, st, "SET PASSWORD");
  case TK_KILL: return skip_statement(p, st, "KILL QUERY");
  default:
    (void)rc;
    return fail_found(
        p, &t, "SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, REVOKE, ALTER, SET, KILL");
  }
}

int influxql_parse(const char *text, size_t len, const influxql_param *params, size_t nparams,
                   influxql_query **out, pl_err *err) {
  if (len > INFLUXQL_QUERY_BYTES_MAX)
    return pl_err_set(err, PL_ELIMIT, "the query is %zu bytes long; at most %d are accepted", len,
                      INFLUXQL_QUERY_BYTES_MAX);
  if (nparams > INFLUXQL_PARAMS_MAX)
    return pl_err_set(err, PL_ELIMIT, "%zu bound parameters; at most %d are accepted", nparams,
                      INFLUXQL_PARAMS_MAX);
  influxql_query *q = calloc(1, sizeof *q);
  if (!q)
    return pl_err_set(err, PL_ENOMEM, "out of memory");
  q->arena = influxql__arena_new(INFLUXQL_ARENA_BYTES_MAX);
  if (!q->arena) {
    free(q);
    return pl_err_set(err, PL_ENOMEM, "out of memory");
  }
  parser p = {.arena = q->arena, .err = err};
  influxql__lex_init(&p.lx, text, len, q->arena);
  /* Parameters are copied so the tree does not borrow the caller's strings. */
  influxql_param *pv = nparams ? influxql__alloc(q->arena, nparams * sizeof *pv) : NULL;
  int rc = nparams && !pv ? oom(&p) : 0;
  for (size_t i = 0; i < nparams && rc == 0; i++) {
    pv[i].kind = params[i].kind;
    pv[i].name = influxql__strndup(q->arena, params[i].name, strlen(params[i].name));
    pv[i].text = influxql__strndup(q->arena, params[i].text, strlen(params[i].text));
    if (!pv[i].name || !pv[i].text)
      rc = oom(&p);
  }
  p.params = pv;
  p.nparams = nparams;
  ptrvec stmts = {0};
  int semi = 1;
  while (rc == 0) {
    influxql_token t = scan_nows(&p);
    if (p.lx.oom) {
      rc = oom(&p);
      break;
    }
    if (t.tok == TK_EOF)
      break;
    if (t.tok == TK_SEMICOLON) {
      semi = 1;
      continue;
    }
    if (!semi) {
      rc = fail_found(&p, &t, ";");
      break;
    }
    unscan(&p);
    if (stmts.n == INFLUXQL_STATEMENTS_MAX) {
      rc = pl_err_set(err, PL_ELIMIT, "the query has more than %d statements",
                      INFLUXQL_STATEMENTS_MAX);
      break;
    }
    influxql_stmt *st = influxql__alloc(q->arena, sizeof *st);
    if (!st) {
      rc = oom(&p);
      break;
    }
    if ((rc = parse_statement(&p, st)) < 0)
      break;
    if (p.lx.oom) {
      rc = oom(&p);
      break;
    }
    rc = vec_push(&p, &stmts, st);
    semi = 0;
  }
  influxql__lex_free(&p.lx);
  if (rc == 0) {
    q->stmts = stmts.n ? influxql__alloc(q->arena, stmts.n * sizeof *q->stmts) : NULL;
    if (stmts.n && !q->stmts)
      rc = oom(&p);
    for (size_t i = 0; i < stmts.n && rc == 0; i++)
      q->stmts[i] = *(influxql_stmt *)stmts.v[i];
    q->nstmts = stmts.n;
  }
  if (rc < 0) {
    influxql_query_free(q);
    return rc;
  }
  *out = q;
  return 0;
}

void influxql_query_free(influxql_query *q) {
  if (!q)
    return;
  influxql__arena_free(q->arena);
  free(q);
}

int influxql_stmt_writes(const influxql_stmt *s) {
  switch (s->kind) {
  case INFLUXQL_STMT_CREATE_DATABASE:
  case INFLUXQL_STMT_DROP_DATABASE:
  case INFLUXQL_STMT_DROP_SERIES:
  case INFLUXQL_STMT_DROP_MEASUREMENT:
  case INFLUXQL_STMT_DELETE: return 1;
  case INFLUXQL_STMT_SELECT: return s->select && s->select->into != NULL;
  default: return 0;
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
