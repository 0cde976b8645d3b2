/* Syntax tree back to InfluxQL text, in one canonical form: keywords upper case, identifiers
 * quoted only when they must be, strings single-quoted with escapes, numbers as written by the
 * shortest round trip. Tests compare parses through it; error messages quote through it. */
#include "influxql/influxql_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_ident_first(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static int is_ident_rest(char c) {
  return is_ident_first(c) || (c >= '0' && c <= '9');
}

static int needs_quotes(const char *s) {
  size_t n = strlen(s);
  if (!n || influxql__lookup(s, n) != TK_IDENT)
    return 1;
  if (!is_ident_first(s[0]))
    return 1;
  for (size_t i = 1; i < n; i++)
    if (!is_ident_rest(s[i]))
      return 1;
  return 0;
}

static int quoted(pl_buf *out, const char *s, char q) {
  int rc = pl_buf_append_byte(out, (uint8_t)q);
  for (; *s && rc == 0; s++) {
    if (*s == '\n')
      rc = pl_buf_append_str(out, "\\n");
    else if (*s == '\\' || *s == q)
      rc = pl_buf_printf(out, "\\%c", *s);
    else
      rc = pl_buf_append_byte(out, (uint8_t)*s);
  }
  return rc ? rc : pl_buf_append_byte(out, (uint8_t)q);
}

int influxql_ident_format(const char *ident, pl_buf *out) {
  return needs_quotes(ident) ? quoted(out, ident, '"') : pl_buf_append_str(out, ident);
}

static const char *op_text(influxql_op op) {
  static const char *const t[] = {"IN", "+", "-",  "*",  "/",  "%", "&",  "|", "^", "AND",
                                  "OR", "=", "!=", "=~", "!~", "<", "<=", ">", ">="};
  return t[op];
}

static int duration_format(int64_t d, pl_buf *out) {
  static const struct {
    int64_t ns;
    const char *unit;
  } units[] = {{7 * 86400LL * 1000000000, "w"},
               {86400LL * 1000000000, "d"},
               {3600LL * 1000000000, "h"},
               {60LL * 1000000000, "m"},
               {1000000000, "s"},
               {1000000, "ms"},
               {1000, "u"}};
  if (d == 0)
    return pl_buf_append_str(out, "0s");
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
    if (d % units[i].ns == 0)
      return pl_buf_printf(out, "%lld%s", (long long)(d / units[i].ns), units[i].unit);
  return pl_buf_printf(out, "%lldns", (long long)d);
}

int influxql_expr_format(const influxql_expr *e, pl_buf *out) {
  int rc = 0;
  switch (e->kind) {
  case INFLUXQL_EXPR_VARREF: {
    rc = influxql_ident_format(e->str, out);
    static const char *const vt[] = {"",       "float",   "integer", "unsigned",
                                     "string", "boolean", "field",   "tag"};
    if (rc == 0 && e->vtype)
      rc = pl_buf_printf(out, "::%s", vt[e->vtype]);
    return rc;
  }
  case INFLUXQL_EXPR_CALL:
    rc = influxql_ident_format(e->str, out);
    if (rc == 0)
      rc = pl_buf_append_byte(out, '(');
    for (size_t i = 0; i < e->nargs && rc == 0; i++) {
      if (i)
        rc = pl_buf_append_str(out, ", ");
      if (rc == 0)
        rc = influxql_expr_format(e->args[i], out);
    }
    return rc ? rc : pl_buf_append_byte(out, ')');
  case INFLUXQL_EXPR_BINARY:
    rc = influxql_expr_format(e->lhs, out);
    if (rc == 0)
      rc = pl_buf_printf(out, " %s ", op_text(e->op));
    return rc ? rc : influxql_expr_format(e->rhs, out);
  case INFLUXQL_EXPR_PAREN:
    rc = pl_buf_append_byte(out, '(');
    if (rc == 0)
      rc = influxql_expr_format(e->lhs, out);
    return rc ? rc : pl_buf_append_byte(out, ')');
  case INFLUXQL_EXPR_INTEGER: return pl_buf_printf(out, "%lld", (long long)e->i);
  case INFLUXQL_EXPR_UNSIGNED: return pl_buf_printf(out, "%llu", (unsigned long long)e->u);
  case INFLUXQL_EXPR_NUMBER: {
    /* plain decimal (InfluxQL has no exponent notation), always with a point so that it reads
     * back as a number, not an integer */
    size_t at = out->len;
    rc = influxql__float_plain(e->f, out);
    if (rc == 0 && !memchr(out->data + at, '.', out->len - at))
      rc = pl_buf_append_str(out, ".0");
    return rc;
  }
  case INFLUXQL_EXPR_STRING: return quoted(out, e->str, '\'');
  case INFLUXQL_EXPR_BOOL: return pl_buf_append_str(out, e->b ? "true" : "false");
  case INFLUXQL_EXPR_DURATION: return duration_format(e->i, out);
  case INFLUXQL_EXPR_REGEX:
    rc = pl_buf_append_byte(out, '/');
    for (const char *s = e->str; *s && rc == 0; s++)
      rc = *s == '/' ? pl_buf_append_str(out, "\\/") : pl_buf_append_byte(out, (uint8_t)*s);
    return rc ? rc : pl_buf_append_byte(out, '/');
  case INFLUXQL_EXPR_WILDCARD:
    return pl_buf_append_str(out, e->vtype == INFLUXQL_VT_FIELD ? "*::field"
                                  : e->vtype == INFLUXQL_VT_TAG ? "*::tag"
                                                                : "*");
  case INFLUXQL_EXPR_DISTINCT:
    rc = pl_buf_append_str(out, "DISTINCT ");
    return rc ? rc : influxql_ident_format(e->str, out);
  }
  return 0;
}

static int select_format(const influxql_select *s, pl_buf *out);

static int source_format(const influxql_source *s, pl_buf *out) {
  int rc = 0;
  if (s->subquery) {
    rc = pl_buf_append_byte(out, '(');
    if (rc == 0)
      rc = select_format(s->subquery, out);
    return rc ? rc : pl_buf_append_byte(out, ')');
  }
  if (s->db) {
    rc = influxql_ident_format(s->db, out);
    if (rc == 0)
      rc = pl_buf_append_byte(out, '.');
    if (rc == 0 && s->rp)
      rc = influxql_ident_format(s->rp, out);
    if (rc == 0)
      rc = pl_buf_append_byte(out, '.');
  } else if (s->rp) {
    rc = influxql_ident_format(s->rp, out);
    if (rc == 0)
      rc = pl_buf_append_byte(out, '.');
  }
  if (rc)
    return rc;
  if (s->regex) {
    influxql_expr re = {.kind = INFLUXQL_EXPR_REGEX, .str = s->regex};
    return influxql_expr_format(&re, out);
  }
  return influxql_ident_format(s->name ? s->name : "", out);
}

static int sources_format(const influxql_source *s, size_t n, pl_buf *out) {
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (i)
      rc = pl_buf_append_str(out, ", ");
    if (rc == 0)
      rc = source_format(&s[i], out);
  }
  return rc;
}

static int limits_format(pl_buf *out, int64_t limit, int64_t offset, int64_t slimit,
                         int64_t soffset) {
  int rc = 0;
  if (limit)
    rc = pl_buf_printf(out, " LIMIT %lld", (long long)limit);
  if (rc == 0 && offset)
    rc = pl_buf_printf(out, " OFFSET %lld", (long long)offset);
  if (rc == 0 && slimit)
    rc = pl_buf_printf(out, " SLIMIT %lld", (long long)slimit);
  if (rc == 0 && soffset)
    rc = pl_buf_printf(out, " SOFFSET %lld", (long long)soffset);
  return rc;
}

static int select_format(const influxql_select *s, pl_buf *out) {
  int rc = pl_buf_append_str(out, "SELECT ");
  for (size_t i = 0; i < s->nfields && rc == 0; i++) {
    if (i)
      rc = pl_buf_append_str(out, ", ");
    if (rc == 0)
      rc = influxql_expr_format(s->fields[i].expr, out);
    if (rc == 0 && s->fields[i].alias) {
      rc = pl_buf_append_str(out, " AS ");
      if (rc == 0)
        rc = influxql_ident_format(s->fields[i].alias, out);
    }
  }
  if (rc == 0 && s->into)
    rc = pl_buf_printf(out, " INTO %s", s->into);
  if (rc == 0)
    rc = pl_buf_append_str(out, " FROM ");
  if (rc == 0)
    rc = sources_format(s->sources, s->nsources, out);
  if (rc == 0 && s->cond) {
    rc = pl_buf_append_str(out, " WHERE ");
    if (rc == 0)
      rc = influxql_expr_format(s->cond, out);
  }
  if (rc == 0 && s->ndims) {
    rc = pl_buf_append_str(out, " GROUP BY ");
    for (size_t i = 0; i < s->ndims && rc == 0; i++) {
      if (i)
        rc = pl_buf_append_str(out, ", ");
      if (rc == 0)
        rc = influxql_expr_format(s->dims[i], out);
    }
  }
  if (rc == 0) {
    switch (s->fill) {
    case INFLUXQL_FILL_NULL: break;
    case INFLUXQL_FILL_NONE: rc = pl_buf_append_str(out, " fill(none)"); break;
    case INFLUXQL_FILL_PREVIOUS: rc = pl_buf_append_str(out, " fill(previous)"); break;
    case INFLUXQL_FILL_LINEAR: rc = pl_buf_append_str(out, " fill(linear)"); break;
    case INFLUXQL_FILL_NUMBER: {
      rc = pl_buf_append_str(out, " fill(");
      influxql_expr v = {.kind = s->fill_is_int ? INFLUXQL_EXPR_INTEGER : INFLUXQL_EXPR_NUMBER,
                         .i = s->fill_int,
                         .f = s->fill_number};
      if (rc == 0)
        rc = influxql_expr_format(&v, out);
      if (rc == 0)
        rc = pl_buf_append_byte(out, ')');
      break;
    }
    }
  }
  if (rc == 0 && s->order_desc)
    rc = pl_buf_append_str(out, " ORDER BY time DESC");
  if (rc == 0)
    rc = limits_format(out, s->limit, s->offset, s->slimit, s->soffset);
  if (rc == 0 && s->tz) {
    rc = pl_buf_append_str(out, " tz(");
    if (rc == 0)
      rc = quoted(out, s->tz, '\'');
    if (rc == 0)
      rc = pl_buf_append_byte(out, ')');
  }
  return rc;
}

static int on_format(const influxql_stmt *s, pl_buf *out) {
  if (!s->db)
    return 0;
  int rc = pl_buf_append_str(out, " ON ");
  return rc ? rc : influxql_ident_format(s->db, out);
}

static int from_where_format(const influxql_stmt *s, pl_buf *out) {
  int rc = 0;
  if (s->nsources) {
    rc = pl_buf_append_str(out, " FROM ");
    if (rc == 0)
      rc = sources_format(s->sources, s->nsources, out);
  }
  return rc;
}

static int where_format(const influxql_stmt *s, pl_buf *out) {
  if (!s->cond)
    return 0;
  int rc = pl_buf_append_str(out, " WHERE ");
  return rc ? rc : influxql_expr_format(s->cond, out);
}

static int key_format(const influxql_stmt *s, pl_buf *out) {
  int rc = pl_buf_append_str(out, " WITH KEY ");
  if (rc)
    return rc;
  if (s->key_regex) {
    influxql_expr re = {.kind = INFLUXQL_EXPR_REGEX, .str = s->key_regex};
    rc = pl_buf_printf(out, "%s ", op_text(s->key_op));
    return rc ? rc : influxql_expr_format(&re, out);
  }
  if (s->key_op != INFLUXQL_OP_NONE) {
    rc = pl_buf_printf(out, "%s ", op_text(s->key_op));
    return rc ? rc : influxql_ident_format(s->keys[0], out);
  }
  rc = pl_buf_append_str(out, "IN (");
  for (size_t i = 0; i < s->nkeys && rc == 0; i++) {
    if (i)
      rc = pl_buf_append_str(out, ", ");
    if (rc == 0)
      rc = influxql_ident_format(s->keys[i], out);
  }
  return rc ? rc : pl_buf_append_byte(out, ')');
}

int influxql_stmt_format(const influxql_stmt *s, pl_buf *out) {
  int rc = 0;
  switch (s->kind) {
  case INFLUXQL_STMT_SELECT: return select_format(s->select, out);
  case INFLUXQL_STMT_SHOW_DATABASES: return pl_buf_append_str(out, "SHOW DATABASES");
  case INFLUXQL_STMT_SHOW_MEASUREMENTS:
    rc = pl_buf_append_str(out, "SHOW MEASUREMENTS");
    if (rc == 0)
      rc = on_format(s, out);
    if (rc == 0 && s->with_measurement) {
      rc = pl_buf_printf(out, " WITH MEASUREMENT %s ", op_text(s->key_op));
      if (rc == 0)
        rc = source_format(s->with_measurement, out);
    }
    if (rc == 0)
      rc = where_format(s, out);
    return rc ? rc : limits_format(out, s->limit, s->offset, 0, 0);
  case INFLUXQL_STMT_SHOW_TAG_KEYS:
    rc = pl_buf_append_str(out, "SHOW TAG KEYS");
    if (rc == 0)
      rc = on_format(s, out);
    if (rc == 0)
      rc = from_where_format(s, out);
    if (rc == 0 && (s->nkeys || s->key_regex))
      rc = key_format(s, out);
    if (rc == 0)
      rc = where_format(s, out);
    return rc ? rc : limits_format(out, s->limit, s->offset, s->slimit, s->soffset);
  case INFLUXQL_STMT_SHOW_TAG_VALUES:
    rc = pl_buf_append_str(out, "SHOW TAG VALUES");
    if (rc == 0)
      rc = on_format(s, out);
    if (rc == 0)
      rc = from_where_format(s, out);
    if (rc == 0)
      rc = key_format(s, out);
    if (rc == 0)
      rc = where_format(s, out);
    return rc ? rc : limits_format(out, s->limit, s->offset, 0, 0);
  case INFLUXQL_STMT_SHOW_FIELD_KEYS:
    rc = pl_buf_append_str(out, "SHOW FIELD KEYS");
    if (rc == 0)
      rc = on_format(s, out);
    if (rc == 0)
      rc = from_where_format(s, out);
    return rc ? rc : limits_format(out, s->limit, s->offset, 0, 0);
  case INFLUXQL_STMT_SHOW_SERIES:
    rc = pl_buf_append_str(out, "SHOW SERIES");
    if (rc == 0)
      rc = on_format(s, out);
    if (rc == 0)
      rc = from_where_format(s, out);
    if (rc == 0)
      rc = where_format(s, out);
    return rc ? rc : limits_format(out, s->limit, s->offset, 0, 0);
  case INFLUXQL_STMT_SHOW_RETENTION_POLICIES:
    rc = pl_buf_append_str(out, "SHOW RETENTION POLICIES");
    return rc ? rc : on_format(s, out);
  case INFLUXQL_STMT_CREATE_DATABASE:
  case INFLUXQL_STMT_DROP_DATABASE:
    rc = pl_buf_append_str(out, s->kind == INFLUXQL_STMT_CREATE_DATABASE ? "CREATE DATABASE "
                                                                         : "DROP DATABASE ");
    return rc ? rc : influxql_ident_format(s->db, out);
  case INFLUXQL_STMT_DROP_MEASUREMENT:
    rc = pl_buf_append_str(out, "DROP MEASUREMENT ");
    return rc ? rc : influxql_ident_format(s->name, out);
  case INFLUXQL_STMT_DROP_SERIES:
  case INFLUXQL_STMT_DELETE:
    rc = pl_buf_append_str(out, s->kind == INFLUXQL_STMT_DELETE ? "DELETE" : "DROP SERIES");
    if (rc == 0)
      rc = from_where_format(s, out);
    return rc ? rc : where_format(s, out);
  case INFLUXQL_STMT_UNSUPPORTED: return pl_buf_append_str(out, s->text ? s->text : "");
  }
  return 0;
}
