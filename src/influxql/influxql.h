/* InfluxQL: the query language of InfluxDB 1.x, so that Grafana, Telegraf, TSBS and scripts
 * written for InfluxDB query Plateau unchanged (ARCHITECTURE.md, "Listeners": /query).
 *
 * Two faces:
 *   - the parser (lexer.c, parser.c): a pure function from query text to a syntax tree. No I/O;
 *     hard limits on length, nesting and statement count; errors in InfluxDB's own wording
 *     ("found X, expected Y at line 1, char N"), positions counted as InfluxDB counts them
 *     (code points, 1-based), so tools that show those messages show the same thing.
 *   - the executor (exec.c, output.c): runs one statement against the time-series engine for
 *     one namespace and produces InfluxDB's result model (series of rows), which the output
 *     writers render as InfluxDB's JSON, chunked JSON or CSV.
 *
 * Mapping onto the engine (tsdb/tsdb.h): an InfluxQL measurement is a group's measurement, tags
 * are the group's tags, fields are the group's fields. A namespace id stands where tsdb expects
 * a tenant id; the HTTP layer maps (tenant, database) to it.
 *
 * Memory: a parsed query owns every node and string in one arena (influxql_query_free frees
 * all). Results own their values.
 */
#ifndef PLATEAU_INFLUXQL_INFLUXQL_H
#define PLATEAU_INFLUXQL_INFLUXQL_H

#include "base/buf.h"
#include "base/err.h"
#include "tsdb/tsdb.h"

#include <stddef.h>
#include <stdint.h>

/* ---- limits (every one answers PL_ELIMIT with a message) ---- */
#define INFLUXQL_QUERY_BYTES_MAX (256 * 1024) /* one query text */
#define INFLUXQL_STATEMENTS_MAX 64            /* statements in one query */
#define INFLUXQL_DEPTH_MAX 64                 /* parentheses, calls and subqueries, nested */
#define INFLUXQL_OPERATORS_MAX 4096           /* binary operators in one statement */
#define INFLUXQL_PARAMS_MAX 256               /* bound parameters */
#define INFLUXQL_ARENA_BYTES_MAX ((size_t)64 << 20)

/* ---- syntax tree ---- */

typedef enum {
  INFLUXQL_OP_NONE = 0,
  INFLUXQL_OP_ADD,
  INFLUXQL_OP_SUB,
  INFLUXQL_OP_MUL,
  INFLUXQL_OP_DIV,
  INFLUXQL_OP_MOD,
  INFLUXQL_OP_BITAND,
  INFLUXQL_OP_BITOR,
  INFLUXQL_OP_BITXOR,
  INFLUXQL_OP_AND,
  INFLUXQL_OP_OR,
  INFLUXQL_OP_EQ,
  INFLUXQL_OP_NEQ,
  INFLUXQL_OP_EQREGEX,
  INFLUXQL_OP_NEQREGEX,
  INFLUXQL_OP_LT,
  INFLUXQL_OP_LTE,
  INFLUXQL_OP_GT,
  INFLUXQL_OP_GTE,
} influxql_op;

typedef enum {
  INFLUXQL_EXPR_VARREF = 1, /* str (segments joined by '.'), vtype */
  INFLUXQL_EXPR_CALL,       /* str (lower-case name), args */
  INFLUXQL_EXPR_BINARY,     /* op, lhs, rhs */
  INFLUXQL_EXPR_PAREN,      /* lhs */
  INFLUXQL_EXPR_INTEGER,    /* i */
  INFLUXQL_EXPR_UNSIGNED,   /* u: an integer literal above INT64_MAX */
  INFLUXQL_EXPR_NUMBER,     /* f */
  INFLUXQL_EXPR_STRING,     /* str */
  INFLUXQL_EXPR_BOOL,       /* b */
  INFLUXQL_EXPR_DURATION,   /* i: nanoseconds */
  INFLUXQL_EXPR_REGEX,      /* str: the pattern as written between the slashes */
  INFLUXQL_EXPR_WILDCARD,   /* vtype: ANY, FIELD or TAG (`*`, `*::field`, `*::tag`) */
  INFLUXQL_EXPR_DISTINCT,   /* str: `DISTINCT field` without parentheses */
} influxql_expr_kind;

typedef enum {
  INFLUXQL_VT_ANY = 0,
  INFLUXQL_VT_FLOAT,
  INFLUXQL_VT_INTEGER,
  INFLUXQL_VT_UNSIGNED,
  INFLUXQL_VT_STRING,
  INFLUXQL_VT_BOOLEAN,
  INFLUXQL_VT_FIELD,
  INFLUXQL_VT_TAG,
} influxql_vtype;

typedef struct influxql_expr {
  influxql_expr_kind kind;
  influxql_op op;
  influxql_vtype vtype;
  struct influxql_expr *lhs, *rhs;
  struct influxql_expr **args;
  size_t nargs;
  const char *str; /* NUL-terminated (InfluxQL text cannot hold NUL: it ends the input) */
  size_t len;
  int64_t i;
  uint64_t u;
  double f;
  int b;
} influxql_expr;

struct influxql_select;

/* A FROM source: [db.][rp.]name, or a regex over measurement names, or a subquery. */
typedef struct influxql_source {
  const char *db, *rp, *name; /* NULL when not given */
  const char *regex;          /* NULL unless /.../ */
  struct influxql_select *subquery;
} influxql_source;

typedef struct influxql_field {
  influxql_expr *expr;
  const char *alias; /* NULL without AS */
} influxql_field;

typedef enum {
  INFLUXQL_FILL_NULL = 0,
  INFLUXQL_FILL_NONE,
  INFLUXQL_FILL_PREVIOUS,
  INFLUXQL_FILL_LINEAR,
  INFLUXQL_FILL_NUMBER,
} influxql_fill;

typedef struct influxql_select {
  influxql_field *fields;
  size_t nfields;
  const char *into; /* INTO target as written (not supported by the executor) */
  influxql_source *sources;
  size_t nsources;
  influxql_expr *cond;  /* WHERE, or NULL */
  influxql_expr **dims; /* GROUP BY: time(...) calls, tag varrefs, wildcards, regexes */
  size_t ndims;
  influxql_fill fill;
  int fill_is_int; /* fill(<n>): integer literal or number */
  int64_t fill_int;
  double fill_number;
  int order_desc;                         /* ORDER BY time DESC */
  int64_t limit, offset, slimit, soffset; /* 0 when absent */
  const char *tz;                         /* tz('...') argument, or NULL */
} influxql_select;

typedef enum {
  INFLUXQL_STMT_SELECT = 1,
  INFLUXQL_STMT_SHOW_DATABASES,
  INFLUXQL_STMT_SHOW_MEASUREMENTS,
  INFLUXQL_STMT_SHOW_TAG_KEYS,
  INFLUXQL_STMT_SHOW_TAG_VALUES,
  INFLUXQL_STMT_SHOW_FIELD_KEYS,
  INFLUXQL_STMT_SHOW_SERIES,
  INFLUXQL_STMT_SHOW_RETENTION_POLICIES,
  INFLUXQL_STMT_CREATE_DATABASE,
  INFLUXQL_STMT_DROP_DATABASE,
  INFLUXQL_STMT_DROP_SERIES,
  INFLUXQL_STMT_DROP_MEASUREMENT,
  INFLUXQL_STMT_DELETE,
  INFLUXQL_STMT_UNSUPPORTED, /* valid InfluxQL Plateau does not run; text names it */
} influxql_stmt_kind;

typedef struct influxql_stmt {
  influxql_stmt_kind kind;
  influxql_select *select;  /* SELECT */
  const char *db;           /* ON db; CREATE/DROP DATABASE name */
  const char *name;         /* DROP MEASUREMENT name */
  influxql_source *sources; /* FROM of SHOW ..., DROP SERIES, DELETE */
  size_t nsources;
  influxql_source *with_measurement; /* SHOW MEASUREMENTS WITH MEASUREMENT = m | =~ /re/ */
  influxql_op key_op; /* SHOW TAG VALUES WITH KEY: EQ, NEQ, EQREGEX, NEQREGEX, or NONE for IN */
  const char **keys;  /* WITH KEY = k (1) or IN (k1, k2...) */
  size_t nkeys;
  const char *key_regex; /* WITH KEY =~ /re/ */
  influxql_expr *cond;   /* WHERE */
  int64_t limit, offset, slimit, soffset;
  const char *text; /* UNSUPPORTED: the statement's leading keywords, e.g. "SHOW USERS" */
} influxql_stmt;

typedef struct influxql_query {
  influxql_stmt *stmts;
  size_t nstmts;
  struct influxql_arena *arena; /* owns every node and string above */
} influxql_query;

/* A bound parameter ($name in the text, from the `params` JSON object of /query). */
typedef enum {
  INFLUXQL_PARAM_STRING = 1,
  INFLUXQL_PARAM_INTEGER,
  INFLUXQL_PARAM_NUMBER,
  INFLUXQL_PARAM_BOOL,
  INFLUXQL_PARAM_IDENT,
  INFLUXQL_PARAM_REGEX,
  INFLUXQL_PARAM_DURATION,
} influxql_param_kind;

typedef struct influxql_param {
  const char *name; /* without the '$' */
  influxql_param_kind kind;
  const char *text; /* the value as InfluxQL literal text: digits, "true", a duration, the string */
} influxql_param;

/* Parses len bytes of query text (a NUL byte ends the input, as in InfluxDB). params (may be
 * NULL) are copied. On success *out owns the tree. Errors: PL_EINVAL with InfluxDB's message
 * (without the "error parsing query: " prefix the HTTP layer adds), PL_ELIMIT over a limit,
 * PL_ENOMEM. */
int influxql_parse(const char *text, size_t len, const influxql_param *params, size_t nparams,
                   influxql_query **out, pl_err *err);
void influxql_query_free(influxql_query *q);

/* Renders a statement or expression back as InfluxQL text in a canonical form (keywords upper
 * case, identifiers quoted when they need it); used by tests and in error messages. */
int influxql_stmt_format(const influxql_stmt *s, pl_buf *out);
int influxql_expr_format(const influxql_expr *e, pl_buf *out);
/* Quotes an identifier when InfluxQL needs it (keywords, non-identifier characters). */
int influxql_ident_format(const char *ident, pl_buf *out);

/* Whether a statement changes data (CREATE DATABASE, DROP ..., DELETE): needs write permission. */
int influxql_stmt_writes(const influxql_stmt *s);

/* ---- results ---- */

typedef enum {
  INFLUXQL_V_NULL = 0,
  INFLUXQL_V_FLOAT,
  INFLUXQL_V_INT,
  INFLUXQL_V_STRING,
  INFLUXQL_V_BOOL,
  INFLUXQL_V_TIME, /* a timestamp in ns: printed per epoch= (RFC 3339 or an integer) */
} influxql_vkind;

typedef struct influxql_value {
  influxql_vkind kind;
  union {
    double f;
    int64_t i;
    int b;
    struct {
      const char *p; /* owned by the series' arena */
      size_t len;
    } s;
  } v;
} influxql_value;

typedef struct influxql_tag {
  const char *key, *value; /* owned by the series' arena */
} influxql_tag;

/* One series of a result: a name, tags, column names and rows of values. */
typedef struct influxql_series {
  const char *name; /* NULL: no "name" member (SHOW SERIES, SHOW RETENTION POLICIES) */
  influxql_tag *tags;
  size_t ntags;
  const char **columns;
  size_t ncolumns;
  influxql_value *values; /* nrows * ncolumns */
  size_t nrows, cap_rows;
  struct influxql_arena *arena; /* the result's: owns the strings above */
} influxql_series;

/* The result of one statement. */
typedef struct influxql_result {
  int statement_id;
  influxql_series **series;
  size_t nseries, cap_series;
  char *error;                  /* per-statement error message, or NULL */
  char *message;                /* a warning message ({"level":"warning","text":...}), or NULL */
  struct influxql_tz *tz;       /* tz() of the statement: times are printed at its offset */
  struct influxql_arena *arena; /* strings of the series */
} influxql_result;

void influxql_result_init(influxql_result *r, int statement_id);
void influxql_result_free(influxql_result *r);
/* Sets the statement error (copied). */
int influxql_result_error(influxql_result *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Adds a series (name and column names copied); returns it or NULL (PL_ENOMEM). */
influxql_series *influxql_result_series(influxql_result *r, const char *name,
                                        const char *const *columns, size_t ncolumns);
int influxql_series_tag(influxql_series *s, const char *key, size_t klen, const char *value,
                        size_t vlen);
/* Appends a row (values copied; string values copied into the series' arena). */
int influxql_series_row(influxql_series *s, const influxql_value *row);

/* ---- execution ---- */

typedef struct influxql_exec_opts {
  tsdb *db;            /* borrowed */
  int64_t ns;          /* engine namespace of the request's database */
  const char *db_name; /* its name, for messages */
  int64_t now_ns;      /* now() */
  size_t points_max;   /* cap on values read for one statement (0: 50 million) */
  size_t series_max;   /* cap on output series (0: 100,000) */
  /* Maps another database named in a statement (FROM db.rp.m, ON db) to its namespace. Returns
   * 0 and *ns, PL_ENOTFOUND for an unknown database, or an error. May be NULL: only the
   * request's database is reachable. */
  int (*resolve_db)(void *ctx, const char *db, int64_t *ns);
  void *resolve_ctx;
} influxql_exec_opts;

/* Runs one statement of kind SELECT, SHOW MEASUREMENTS/TAG KEYS/TAG VALUES/FIELD KEYS/SERIES,
 * DROP SERIES, DROP MEASUREMENT or DELETE into res (initialised by the caller). Statement-level
 * problems (unknown function, bad time condition, a limit) become res->error and the call
 * returns 0; a negative return is an internal failure (PL_ENOMEM, engine errors). The
 * statements about databases (SHOW DATABASES, CREATE/DROP DATABASE, SHOW RETENTION POLICIES)
 * belong to the caller, which owns the database catalogue. */
int influxql_exec(const influxql_exec_opts *opts, const influxql_stmt *stmt, influxql_result *res);

/* Checks a time zone name as tz() does: 0 when it can be loaded, else PL_ENOTFOUND. */
int influxql_tz_check(const char *name);

/* ---- output ---- */

typedef enum { INFLUXQL_FMT_JSON = 0, INFLUXQL_FMT_CSV } influxql_format;

typedef struct influxql_out_opts {
  influxql_format format;
  int64_t epoch_div; /* 0: RFC 3339 times; else ns per unit (1 ns, 1000 u, ... 3600e9 h) */
  int pretty;        /* JSON indented with four spaces, as InfluxDB's pretty=true */
} influxql_out_opts;

/* Writes a whole response {"results":[...]} (JSON) or the CSV rendering of results. */
int influxql_write_results(const influxql_out_opts *o, influxql_result *const *results, size_t n,
                           pl_buf *out);
/* Writes one chunk of a chunked JSON response: the rows [row_from, row_to) of series
 * [series_from, series_to) of a result, with InfluxDB's "partial" markers, and a newline. */
int influxql_write_chunk(const influxql_out_opts *o, const influxql_result *r, size_t series_from,
                         size_t series_to, size_t row_from, size_t row_to, int series_partial,
                         int result_partial, pl_buf *out);
/* Writes a top-level error body {"error":"..."} (JSON) or the CSV form "error\n\"...\"\n". */
int influxql_write_error(const influxql_out_opts *o, const char *msg, pl_buf *out);
/* Formats a float as InfluxDB prints it in JSON (Go's encoding/json: shortest round-trip
 * digits, exponent form below 1e-6 and from 1e21). buf needs 32 bytes. */
const char *influxql_format_float_json(double v, char *buf, size_t bufsz);

#endif
