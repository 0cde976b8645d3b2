/* The InfluxQL parser's driver: the parser's errors, its token stream (bound parameters
 * substituted), the small constructors the grammar files share, the statements other than
 * SELECT (SHOW, CREATE, DROP, DELETE, and those Plateau recognises but does not run), and the
 * entry points of influxql.h.
 *
 * The grammar and the error messages are InfluxDB 1.x's (its documented InfluxQL
 * specification), including where it looks ahead at single runes (a '/' starting a regex, a '.'
 * between identifier segments) and where it does or does not skip whitespace, because those
 * decide which token an error message names. The rest of the grammar is in parse_expr.c
 * (expressions, literals, durations, regexes) and parse_select.c (SELECT and its clauses); the
 * three share the parser through influxql_int.h.
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

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- errors ---- */

int influxql__fail(influxql_parser *p, int code, const char *fmt, ...) {
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
int influxql__fail_found(influxql_parser *p, const influxql_token *t, const char *expected) {
  return influxql__fail(p, PL_EINVAL, "found %s, expected %s at line %d, char %d", tokstr(t),
                        expected, t->pos.line + 1, t->pos.col + 1);
}

int influxql__fail_at(influxql_parser *p, influxql_pos pos, const char *msg) {
  return influxql__fail(p, PL_EINVAL, "%s at line %d, char %d", msg, pos.line + 1, pos.col + 1);
}

int influxql__oom(influxql_parser *p) {
  return influxql__fail(p, PL_ENOMEM,
                        "out of memory while parsing the query (or the query is too complex)");
}

/* ---- tokens ---- */

static const influxql_param *param_find(const influxql_parser *p, const char *name) {
  for (size_t i = 0; i < p->nparams; i++)
    if (strcmp(p->params[i].name, name) == 0)
      return &p->params[i];
  return NULL;
}

static influxql_token subst(influxql_parser *p, influxql_token t) {
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

influxql_token influxql__parser_scan(influxql_parser *p) {
  return subst(p, influxql__scan(&p->lx));
}

influxql_token influxql__parser_scan_regex(influxql_parser *p) {
  return subst(p, influxql__scan_regex(&p->lx));
}

influxql_token influxql__parser_scan_nows(influxql_parser *p) {
  for (;;) {
    influxql_token t = influxql__parser_scan(p);
    if (t.tok != TK_WS && t.tok != TK_COMMENT)
      return t;
  }
}

void influxql__parser_unscan(influxql_parser *p) {
  influxql__unscan(&p->lx);
}

void influxql__consume_ws(influxql_parser *p) {
  if (influxql__parser_scan(p).tok != TK_WS)
    influxql__parser_unscan(p);
}

int influxql__expect(influxql_parser *p, int tok) {
  influxql_token t = influxql__parser_scan_nows(p);
  return t.tok == tok ? 0 : influxql__fail_found(p, &t, influxql__tok_name(tok));
}

/* ---- small constructors ---- */

influxql_expr *influxql__new_expr(influxql_parser *p, influxql_expr_kind kind) {
  influxql_expr *e = influxql__alloc(p->arena, sizeof *e);
  if (e)
    e->kind = kind;
  return e;
}

char *influxql__dup(influxql_parser *p, const char *s, size_t n) {
  return influxql__strndup(p->arena, s, n);
}

int influxql__vec_push(influxql_parser *p, influxql_ptrvec *v, void *x) {
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 4;
    void **nv = influxql__alloc(p->arena, cap * sizeof *nv);
    if (!nv)
      return influxql__oom(p);
    if (v->n)
      memcpy(nv, v->v, v->n * sizeof *nv);
    v->v = nv;
    v->cap = cap;
  }
  v->v[v->n++] = x;
  return 0;
}

int influxql__nest(influxql_parser *p, influxql_pos pos) {
  if (++p->depth > INFLUXQL_DEPTH_MAX)
    return influxql__fail(
        p, PL_ELIMIT,
        "the query nests parentheses, calls or subqueries deeper than %d levels at line "
        "%d, char %d",
        INFLUXQL_DEPTH_MAX, pos.line + 1, pos.col + 1);
  return 0;
}

/* ---- SHOW, CREATE, DROP, DELETE ---- */

static int parse_on(influxql_parser *p, influxql_stmt *st) {
  if (influxql__parser_scan_nows(p).tok != TK_ON) {
    influxql__parser_unscan(p);
    return 0;
  }
  return influxql__parse_ident(p, &st->db);
}

static int parse_from(influxql_parser *p, influxql_stmt *st) {
  if (influxql__parser_scan_nows(p).tok != TK_FROM) {
    influxql__parser_unscan(p);
    return 0;
  }
  return influxql__parse_sources(p, &st->sources, &st->nsources, 0);
}

static int parse_limits(influxql_parser *p, influxql_stmt *st, int series_limits) {
  int rc, desc;
  if ((rc = influxql__parse_order_by(p, &desc)) < 0)
    return rc;
  if ((rc = influxql__parse_optional_int(p, TK_LIMIT, &st->limit)) < 0)
    return rc;
  if ((rc = influxql__parse_optional_int(p, TK_OFFSET, &st->offset)) < 0)
    return rc;
  if (series_limits) {
    if ((rc = influxql__parse_optional_int(p, TK_SLIMIT, &st->slimit)) < 0)
      return rc;
    if ((rc = influxql__parse_optional_int(p, TK_SOFFSET, &st->soffset)) < 0)
      return rc;
  }
  return 0;
}

/* WITH KEY = k | != k | =~ /re/ | !~ /re/ | IN (k1, k2) */
static int parse_tag_key_expr(influxql_parser *p, influxql_stmt *st) {
  int rc;
  if ((rc = influxql__expect(p, TK_WITH)) < 0 || (rc = influxql__expect(p, TK_KEY)) < 0)
    return rc;
  influxql_token t = influxql__parser_scan_nows(p);
  influxql_ptrvec keys = {0};
  if (t.tok == TK_IN) {
    influxql_token l = influxql__parser_scan_nows(p);
    if (l.tok != TK_LPAREN)
      return influxql__fail_found(p, &l, "(");
    if ((rc = influxql__parse_ident_list(p, &keys)) < 0)
      return rc;
    influxql_token r = influxql__parser_scan_nows(p);
    if (r.tok != TK_RPAREN)
      return influxql__fail_found(p, &r, ")");
    st->key_op = INFLUXQL_OP_NONE;
  } else if (t.tok == TK_EQ || t.tok == TK_NEQ) {
    const char *k;
    if ((rc = influxql__parse_ident(p, &k)) < 0 ||
        (rc = influxql__vec_push(p, &keys, (void *)k)) < 0)
      return rc;
    st->key_op = influxql__tok_op(t.tok);
  } else if (t.tok == TK_EQREGEX || t.tok == TK_NEQREGEX) {
    influxql_expr *re;
    if ((rc = influxql__parse_regex(p, &re)) < 0)
      return rc;
    if (!re) {
      influxql_token x = influxql__parser_scan_nows(p);
      return influxql__fail_found(p, &x, "regex");
    }
    st->key_regex = re->str;
    st->key_op = influxql__tok_op(t.tok);
  } else {
    return influxql__fail_found(p, &t, "IN, =, =~");
  }
  st->keys = (const char **)keys.v;
  st->nkeys = keys.n;
  return 0;
}

/* Skips what is left of a statement Plateau does not run (to ';' or the end). */
static int skip_statement(influxql_parser *p, influxql_stmt *st, const char *text) {
  st->kind = INFLUXQL_STMT_UNSUPPORTED;
  if (!(st->text = influxql__dup(p, text, strlen(text))))
    return influxql__oom(p);
  for (;;) {
    influxql_token t = influxql__parser_scan(p);
    if (t.tok == TK_EOF || t.tok == TK_SEMICOLON) {
      influxql__parser_unscan(p);
      return 0;
    }
  }
}

static int parse_show(influxql_parser *p, influxql_stmt *st) {
  int rc;
  influxql_token t = influxql__parser_scan_nows(p);
  switch (t.tok) {
  case TK_DATABASES: st->kind = INFLUXQL_STMT_SHOW_DATABASES; return 0;
  case TK_MEASUREMENTS: {
    st->kind = INFLUXQL_STMT_SHOW_MEASUREMENTS;
    if ((rc = parse_on(p, st)) < 0)
      return rc;
    if (influxql__parser_scan_nows(p).tok == TK_WITH) {
      if ((rc = influxql__expect(p, TK_MEASUREMENT)) < 0)
        return rc;
      influxql_token op = influxql__parser_scan_nows(p);
      if (op.tok != TK_EQ && op.tok != TK_EQREGEX)
        return influxql__fail_found(p, &op, "=, =~");
      st->with_measurement = influxql__alloc(p->arena, sizeof *st->with_measurement);
      if (!st->with_measurement)
        return influxql__oom(p);
      if ((rc = influxql__parse_source(p, st->with_measurement, 0)) < 0)
        return rc;
      st->key_op = influxql__tok_op(op.tok);
    } else {
      influxql__parser_unscan(p);
    }
    if ((rc = influxql__parse_condition(p, &st->cond)) < 0)
      return rc;
    return parse_limits(p, st, 0);
  }
  case TK_MEASUREMENT: {
    influxql_token x = influxql__parser_scan_nows(p);
    if (x.tok == TK_EXACT || x.tok == TK_CARDINALITY)
      return skip_statement(p, st, "SHOW MEASUREMENT CARDINALITY");
    return influxql__fail_found(p, &x, "EXACT, CARDINALITY");
  }
  case TK_TAG: {
    influxql_token x = influxql__parser_scan_nows(p);
    if (x.tok == TK_KEYS) {
      st->kind = INFLUXQL_STMT_SHOW_TAG_KEYS;
      if ((rc = parse_on(p, st)) < 0 || (rc = parse_from(p, st)) < 0)
        return rc;
      if ((rc = influxql__parse_condition(p, &st->cond)) < 0)
        return rc;
      return parse_limits(p, st, 1);
    }
    if (x.tok == TK_VALUES) {
      influxql_token y = influxql__parser_scan_nows(p);
      if (y.tok == TK_EXACT || y.tok == TK_CARDINALITY)
        return skip_statement(p, st, "SHOW TAG VALUES CARDINALITY");
      influxql__parser_unscan(p);
      st->kind = INFLUXQL_STMT_SHOW_TAG_VALUES;
      if ((rc = parse_on(p, st)) < 0 || (rc = parse_from(p, st)) < 0)
        return rc;
      if ((rc = parse_tag_key_expr(p, st)) < 0)
        return rc;
      if ((rc = influxql__parse_condition(p, &st->cond)) < 0)
        return rc;
      return parse_limits(p, st, 0);
    }
    if (x.tok == TK_KEY)
      return skip_statement(p, st, "SHOW TAG KEY CARDINALITY");
    return influxql__fail_found(p, &x, "KEY, KEYS, VALUES");
  }
  case TK_FIELD: {
    influxql_token x = influxql__parser_scan_nows(p);
    if (x.tok == TK_KEYS) {
      st->kind = INFLUXQL_STMT_SHOW_FIELD_KEYS;
      if ((rc = parse_on(p, st)) < 0 || (rc = parse_from(p, st)) < 0)
        return rc;
      return parse_limits(p, st, 0);
    }
    if (x.tok == TK_KEY)
      return skip_statement(p, st, "SHOW FIELD KEY CARDINALITY");
    return influxql__fail_found(p, &x, "KEY, KEYS");
  }
  case TK_SERIES: {
    influxql_token x = influxql__parser_scan_nows(p);
    if (x.tok == TK_EXACT || x.tok == TK_CARDINALITY)
      return skip_statement(p, st, "SHOW SERIES CARDINALITY");
    influxql__parser_unscan(p);
    st->kind = INFLUXQL_STMT_SHOW_SERIES;
    if ((rc = parse_on(p, st)) < 0 || (rc = parse_from(p, st)) < 0)
      return rc;
    if ((rc = influxql__parse_condition(p, &st->cond)) < 0)
      return rc;
    return parse_limits(p, st, 0);
  }
  case TK_RETENTION:
    if ((rc = influxql__expect(p, TK_POLICIES)) < 0)
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
    return influxql__fail_found(
        p, &t,
        "CONTINUOUS, DATABASES, DIAGNOSTICS, FIELD, GRANTS, MEASUREMENT, MEASUREMENTS, "
        "QUERIES, RETENTION, SERIES, SHARD, SHARDS, STATS, SUBSCRIPTIONS, TAG, USERS");
  }
}

static int parse_create_database(influxql_parser *p, influxql_stmt *st) {
  int rc;
  st->kind = INFLUXQL_STMT_CREATE_DATABASE;
  if ((rc = influxql__parse_ident(p, &st->db)) < 0)
    return rc;
  if (influxql__parser_scan_nows(p).tok != TK_WITH) {
    influxql__parser_unscan(p);
    return 0;
  }
  /* Retention policy options are accepted and ignored: Plateau keeps one retention per tenant. */
  influxql_token t = influxql__parser_scan_nows(p);
  if (t.tok != TK_DURATION && t.tok != TK_NAME && t.tok != TK_REPLICATION && t.tok != TK_SHARD)
    return influxql__fail_found(p, &t, "DURATION, NAME, REPLICATION, SHARD");
  influxql__parser_unscan(p);
  if (influxql__parser_scan_nows(p).tok == TK_DURATION) {
    influxql_token d = influxql__parser_scan_nows(p);
    if (d.tok != TK_DURATIONVAL && d.tok != TK_INF)
      return influxql__fail_found(p, &d, "duration");
  } else {
    influxql__parser_unscan(p);
  }
  if (influxql__parser_scan_nows(p).tok == TK_REPLICATION) {
    influxql_token n = influxql__parser_scan_nows(p);
    if (n.tok != TK_INTEGER)
      return influxql__fail_found(p, &n, "integer");
  } else {
    influxql__parser_unscan(p);
  }
  if (influxql__parser_scan_nows(p).tok == TK_SHARD) {
    if ((rc = influxql__expect(p, TK_DURATION)) < 0)
      return rc;
    influxql_token d = influxql__parser_scan_nows(p);
    if (d.tok != TK_DURATIONVAL && d.tok != TK_INF)
      return influxql__fail_found(p, &d, "duration");
  } else {
    influxql__parser_unscan(p);
  }
  if (influxql__parser_scan_nows(p).tok == TK_NAME) {
    const char *rp;
    if ((rc = influxql__parse_ident(p, &rp)) < 0)
      return rc;
  } else {
    influxql__parser_unscan(p);
  }
  return 0;
}

/* Sources of DROP SERIES and DELETE name measurements of the current database only. */
static int check_delete_sources(influxql_parser *p, const influxql_stmt *st) {
  const char *msg = NULL;
  for (size_t i = 0; i < st->nsources; i++) {
    if (st->sources[i].db)
      msg = "database not supported";
    if (st->sources[i].rp)
      msg = "retention policy not supported";
  }
  return msg ? influxql__fail(p, PL_EINVAL, "%s at line 1, char 1", msg) : 0;
}

/* DROP SERIES / DELETE: [FROM sources] [WHERE cond], at least one of them. */
static int parse_delete_like(influxql_parser *p, influxql_stmt *st) {
  int rc;
  influxql_token t = influxql__parser_scan_nows(p);
  if (t.tok == TK_FROM) {
    if ((rc = influxql__parse_sources(p, &st->sources, &st->nsources, 0)) < 0)
      return rc;
    if ((rc = check_delete_sources(p, st)) < 0)
      return rc;
  } else {
    influxql__parser_unscan(p);
  }
  if ((rc = influxql__parse_condition(p, &st->cond)) < 0)
    return rc;
  if (!st->cond && !st->nsources)
    return influxql__fail_found(p, &t, "FROM, WHERE");
  return 0;
}

static int parse_statement(influxql_parser *p, influxql_stmt *st) {
  int rc;
  memset(st, 0, sizeof *st);
  p->ops = 0;
  influxql_token t = influxql__parser_scan_nows(p);
  switch (t.tok) {
  case TK_SELECT: st->kind = INFLUXQL_STMT_SELECT; return influxql__parse_select(p, &st->select, 0);
  case TK_DELETE: st->kind = INFLUXQL_STMT_DELETE; return parse_delete_like(p, st);
  case TK_SHOW: return parse_show(p, st);
  case TK_CREATE: {
    influxql_token x = influxql__parser_scan_nows(p);
    switch (x.tok) {
    case TK_DATABASE: return parse_create_database(p, st);
    case TK_CONTINUOUS: return skip_statement(p, st, "CREATE CONTINUOUS QUERY");
    case TK_USER: return skip_statement(p, st, "CREATE USER");
    case TK_RETENTION: return skip_statement(p, st, "CREATE RETENTION POLICY");
    case TK_SUBSCRIPTION: return skip_statement(p, st, "CREATE SUBSCRIPTION");
    default:
      return influxql__fail_found(p, &x, "CONTINUOUS, DATABASE, USER, RETENTION, SUBSCRIPTION");
    }
  }
  case TK_DROP: {
    influxql_token x = influxql__parser_scan_nows(p);
    switch (x.tok) {
    case TK_DATABASE:
      st->kind = INFLUXQL_STMT_DROP_DATABASE;
      return influxql__parse_ident(p, &st->db);
    case TK_MEASUREMENT:
      st->kind = INFLUXQL_STMT_DROP_MEASUREMENT;
      return influxql__parse_ident(p, &st->name);
    case TK_SERIES: st->kind = INFLUXQL_STMT_DROP_SERIES; return parse_delete_like(p, st);
    case TK_CONTINUOUS: return skip_statement(p, st, "DROP CONTINUOUS QUERY");
    case TK_RETENTION: return skip_statement(p, st, "DROP RETENTION POLICY");
    case TK_SHARD: return skip_statement(p, st, "DROP SHARD");
    case TK_SUBSCRIPTION: return skip_statement(p, st, "DROP SUBSCRIPTION");
    case TK_USER: return skip_statement(p, st, "DROP USER");
    default:
      return influxql__fail_found(
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
    return influxql__fail_found(
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
  influxql_parser p = {.arena = q->arena, .err = err};
  influxql__lex_init(&p.lx, text, len, q->arena);
  /* Parameters are copied so the tree does not borrow the caller's strings. */
  influxql_param *pv = nparams ? influxql__alloc(q->arena, nparams * sizeof *pv) : NULL;
  int rc = nparams && !pv ? influxql__oom(&p) : 0;
  for (size_t i = 0; i < nparams && rc == 0; i++) {
    pv[i].kind = params[i].kind;
    pv[i].name = influxql__strndup(q->arena, params[i].name, strlen(params[i].name));
    pv[i].text = influxql__strndup(q->arena, params[i].text, strlen(params[i].text));
    if (!pv[i].name || !pv[i].text)
      rc = influxql__oom(&p);
  }
  p.params = pv;
  p.nparams = nparams;
  influxql_ptrvec stmts = {0};
  int semi = 1;
  while (rc == 0) {
    influxql_token t = influxql__parser_scan_nows(&p);
    if (p.lx.oom) {
      rc = influxql__oom(&p);
      break;
    }
    if (t.tok == TK_EOF)
      break;
    if (t.tok == TK_SEMICOLON) {
      semi = 1;
      continue;
    }
    if (!semi) {
      rc = influxql__fail_found(&p, &t, ";");
      break;
    }
    influxql__parser_unscan(&p);
    if (stmts.n == INFLUXQL_STATEMENTS_MAX) {
      rc = pl_err_set(err, PL_ELIMIT, "the query has more than %d statements",
                      INFLUXQL_STATEMENTS_MAX);
      break;
    }
    influxql_stmt *st = influxql__alloc(q->arena, sizeof *st);
    if (!st) {
      rc = influxql__oom(&p);
      break;
    }
    if ((rc = parse_statement(&p, st)) < 0)
      break;
    if (p.lx.oom) {
      rc = influxql__oom(&p);
      break;
    }
    rc = influxql__vec_push(&p, &stmts, st);
    semi = 0;
  }
  influxql__lex_free(&p.lx);
  if (rc == 0) {
    q->stmts = stmts.n ? influxql__alloc(q->arena, stmts.n * sizeof *q->stmts) : NULL;
    if (stmts.n && !q->stmts)
      rc = influxql__oom(&p);
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
