/* Internals shared by the files of the InfluxQL module: the arena, the tokens and the lexer the
 * parser drives, the parser's own state and grammar functions (parser.c, parse_expr.c,
 * parse_select.c), time zones, helpers shared by the executor and the output writers, and the
 * executor's own types and functions, which its files (exec*.c) share. */
#ifndef PLATEAU_INFLUXQL_INT_H
#define PLATEAU_INFLUXQL_INT_H

#include "influxql/influxql.h"

#include <regex.h>
#include <stddef.h>
#include <stdint.h>

/* ---- arena: bump allocation in blocks, freed at once ---- */
typedef struct influxql_arena influxql_arena;
influxql_arena *influxql__arena_new(size_t max_bytes);
void influxql__arena_free(influxql_arena *a);
/* Zeroed, 8-byte aligned memory, or NULL (out of memory or over the arena's maximum). */
void *influxql__alloc(influxql_arena *a, size_t n);
/* A NUL-terminated copy of s[0..n), or NULL. */
char *influxql__strndup(influxql_arena *a, const char *s, size_t n);

/* ---- tokens (InfluxQL's lexical classes; the order matters: ranges are tested) ---- */
typedef enum {
  TK_ILLEGAL = 0,
  TK_EOF,
  TK_WS,
  TK_COMMENT,
  /* literals */
  TK_IDENT,
  TK_BOUNDPARAM,
  TK_NUMBER,
  TK_INTEGER,
  TK_DURATIONVAL,
  TK_STRING,
  TK_BADSTRING,
  TK_BADESCAPE,
  TK_TRUE,
  TK_FALSE,
  TK_REGEX,
  TK_BADREGEX,
  /* operators: TK_ADD .. TK_GTE */
  TK_ADD,
  TK_SUB,
  TK_MUL,
  TK_DIV,
  TK_MOD,
  TK_BITAND,
  TK_BITOR,
  TK_BITXOR,
  TK_AND,
  TK_OR,
  TK_IN,
  TK_EQ,
  TK_NEQ,
  TK_EQREGEX,
  TK_NEQREGEX,
  TK_LT,
  TK_LTE,
  TK_GT,
  TK_GTE,
  /* punctuation */
  TK_LPAREN,
  TK_RPAREN,
  TK_COMMA,
  TK_COLON,
  TK_DOUBLECOLON,
  TK_SEMICOLON,
  TK_DOT,
  /* keywords: TK_ALL .. TK_WRITE */
  TK_ALL,
  TK_ALTER,
  TK_ANALYZE,
  TK_ANY,
  TK_AS,
  TK_ASC,
  TK_BEGIN,
  TK_BY,
  TK_CARDINALITY,
  TK_CREATE,
  TK_CONTINUOUS,
  TK_DATABASE,
  TK_DATABASES,
  TK_DEFAULT,
  TK_DELETE,
  TK_DESC,
  TK_DESTINATIONS,
  TK_DIAGNOSTICS,
  TK_DISTINCT,
  TK_DROP,
  TK_DURATION,
  TK_END,
  TK_EVERY,
  TK_EXACT,
  TK_EXPLAIN,
  TK_FIELD,
  TK_FOR,
  TK_FROM,
  TK_GRANT,
  TK_GRANTS,
  TK_GROUP,
  TK_GROUPS,
  TK_INF,
  TK_INSERT,
  TK_INTO,
  TK_KEY,
  TK_KEYS,
  TK_KILL,
  TK_LIMIT,
  TK_MEASUREMENT,
  TK_MEASUREMENTS,
  TK_NAME,
  TK_OFFSET,
  TK_ON,
  TK_ORDER,
  TK_PASSWORD,
  TK_POLICY,
  TK_POLICIES,
  TK_PRIVILEGES,
  TK_QUERIES,
  TK_QUERY,
  TK_READ,
  TK_REPLICATION,
  TK_RESAMPLE,
  TK_RETENTION,
  TK_REVOKE,
  TK_SELECT,
  TK_SERIES,
  TK_SET,
  TK_SHOW,
  TK_SHARD,
  TK_SHARDS,
  TK_SLIMIT,
  TK_SOFFSET,
  TK_STATS,
  TK_SUBSCRIPTION,
  TK_SUBSCRIPTIONS,
  TK_TAG,
  TK_TO,
  TK_USER,
  TK_USERS,
  TK_VALUES,
  TK_WHERE,
  TK_WITH,
  TK_WRITE,
  TK_COUNT_
} influxql_tok;

#define TK_IS_OPERATOR(t) ((t) >= TK_ADD && (t) <= TK_GTE)
#define TK_IS_KEYWORD(t) ((t) >= TK_ALL && (t) <= TK_WRITE)

/* The token's spelling in messages ("FROM", "=", "identifier"...). */
const char *influxql__tok_name(int tok);
/* Operator precedence (OR 1 ... MUL 5), 0 for non-operators. */
int influxql__tok_precedence(int tok);
/* The keyword token for an identifier (case-insensitive), or TK_IDENT. */
int influxql__lookup(const char *s, size_t n);

typedef struct influxql_pos {
  int line, col; /* 0-based; messages add 1 */
} influxql_pos;

typedef struct influxql_token {
  int tok;
  influxql_pos pos;
  const char *lit; /* in the arena; "" when the token has no literal */
  size_t len;
} influxql_token;

/* The lexer: a code-point reader that can step back, the scanner over it, and a three-token
 * buffer the parser can push back into. Positions are those InfluxDB reports: code points
 * from the start of the line, with its peculiarity that the end of input is counted once when
 * first read and again when read past (so "SELECT" ends at char 8 in its messages). */
typedef struct influxql_lexer {
  const uint8_t *src;
  size_t len, off;
  influxql_pos pos; /* of the next rune read from src */
  int eof_seen;
  struct {
    int32_t ch;
    influxql_pos pos;
  } ring[3];
  int ri, rn; /* ring index of the current rune, runes pushed back */
  influxql_token toks[3];
  int ti, tn; /* token ring: index of the current token, tokens pushed back */
  influxql_arena *arena;
  pl_buf scratch;
  int oom;
} influxql_lexer;

void influxql__lex_init(influxql_lexer *lx, const char *src, size_t len, influxql_arena *arena);
void influxql__lex_free(influxql_lexer *lx);
/* Next token through the token buffer (WS and COMMENT included). */
influxql_token influxql__scan(influxql_lexer *lx);
/* Next token, scanning a /regex/ at the current position. */
influxql_token influxql__scan_regex(influxql_lexer *lx);
void influxql__unscan(influxql_lexer *lx);
/* The next code point without consuming it (the end of input, once read, stays consumed as
 * in InfluxDB's parser). 0 at the end. */
int32_t influxql__peek_rune(influxql_lexer *lx);

/* ---- time zones (output.c) ---- */
typedef struct influxql_tz influxql_tz;
/* Loads a zone by IANA name from the system zoneinfo; PL_ENOTFOUND when there is none. */
int influxql__tz_load(const char *name, influxql_tz **out);
void influxql__tz_free(influxql_tz *tz);
/* Offset from UTC in seconds at the instant t_ns. */
int32_t influxql__tz_offset(const influxql_tz *tz, int64_t t_ns);

/* ---- time formatting shared by exec and output ---- */
/* RFC 3339 with trailing zeros of the fraction trimmed (Go's RFC3339Nano), in UTC ("Z") or at
 * the given offset in seconds ("+08:00"). out needs 40 bytes. */
char *influxql__time_format(int64_t ts_ns, int utc, int32_t offset_s, char *out, size_t outsz);
/* Go's strconv.FormatFloat(v, 'f', -1, 64): plain decimal, shortest round-trip digits. */
int influxql__float_plain(double v, pl_buf *out);

/* ---- the parser ----
 *
 * parser.c        errors, the token stream, constructors, SHOW/CREATE/DROP/DELETE, influxql_parse
 * parse_expr.c    expressions, literals, durations, /regex/ literals, identifiers, the regex
 * dialect parse_select.c  SELECT and its clauses (FROM, WHERE, ORDER BY and the limits shared with
 * SHOW)
 *
 * Every function taking the parser that returns int returns 0 or a negative PL_E* code with
 * the message in p->err; trees are allocated in p->arena. */

typedef struct influxql_parser {
  influxql_lexer lx;
  influxql_arena *arena;
  const influxql_param *params;
  size_t nparams;
  pl_err *err;
  int depth; /* nesting of parentheses, calls and subqueries */
  int ops;   /* binary operators in the statement */
} influxql_parser;

/* A growable array of pointers in the arena (old blocks are abandoned: fine for parse sizes). */
typedef struct influxql_ptrvec {
  void **v;
  size_t n, cap;
} influxql_ptrvec;

/* -- errors, tokens and constructors (parser.c) -- */

/* Formats the message into p->err and returns code. */
int influxql__fail(influxql_parser *p, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* "found X, expected <expected> at line L, char C" */
int influxql__fail_found(influxql_parser *p, const influxql_token *t, const char *expected);
/* "<msg> at line L, char C" */
int influxql__fail_at(influxql_parser *p, influxql_pos pos, const char *msg);
int influxql__oom(influxql_parser *p);
/* The next token (whitespace and comments included), a bound parameter replaced by its value. */
influxql_token influxql__parser_scan(influxql_parser *p);
/* The next token, scanning a /regex/ at the current position. */
influxql_token influxql__parser_scan_regex(influxql_parser *p);
/* The next token that is not whitespace or a comment. */
influxql_token influxql__parser_scan_nows(influxql_parser *p);
void influxql__parser_unscan(influxql_parser *p);
/* Skips one whitespace token, if that is what comes next. */
void influxql__consume_ws(influxql_parser *p);
/* Consumes the next non-blank token, which must be tok. */
int influxql__expect(influxql_parser *p, int tok);
/* A zeroed node of the given kind in the arena, or NULL. */
influxql_expr *influxql__new_expr(influxql_parser *p, influxql_expr_kind kind);
char *influxql__dup(influxql_parser *p, const char *s, size_t n);
int influxql__vec_push(influxql_parser *p, influxql_ptrvec *v, void *x);
/* Enters one more level of nesting at pos (the caller decrements p->depth on the way out). */
int influxql__nest(influxql_parser *p, influxql_pos pos);

/* -- expressions and literals (parse_expr.c) -- */

int influxql__parse_expr(influxql_parser *p, influxql_expr **out);
/* A /regex/ literal (or a bound regex parameter) if one comes next, else *out NULL. */
int influxql__parse_regex(influxql_parser *p, influxql_expr **out);
int influxql__parse_ident(influxql_parser *p, const char **out);
/* ident [, ident]... */
int influxql__parse_ident_list(influxql_parser *p, influxql_ptrvec *v);
/* A name of up to three dotted segments (db.rp.measurement). */
int influxql__parse_segmented(influxql_parser *p, const char *seg[3], size_t *nseg);
/* The operator of an operator token, and back. */
influxql_op influxql__tok_op(int tok);
int influxql__op_tok(influxql_op op);
/* Compiles an InfluxQL (RE2) pattern as a POSIX extended regex, translating the RE2 constructs
 * POSIX lacks. 0, or < 0 with a message in errbuf. */
int influxql__regex_compile(const char *pattern, regex_t *re, char *errbuf, size_t errsz);

/* -- SELECT and its clauses (parse_select.c) -- */

/* A SELECT statement after its SELECT keyword; subquery: inside parentheses in FROM. */
int influxql__parse_select(influxql_parser *p, influxql_select **out, int subquery);
/* One FROM source; subqueries: whether (SELECT ...) is allowed. */
int influxql__parse_source(influxql_parser *p, influxql_source *src, int subqueries);
/* A comma-separated list of sources. */
int influxql__parse_sources(influxql_parser *p, influxql_source **out, size_t *n, int subqueries);
/* An optional WHERE clause (*cond NULL without one). */
int influxql__parse_condition(influxql_parser *p, influxql_expr **cond);
/* An optional ORDER BY time [ASC|DESC]. */
int influxql__parse_order_by(influxql_parser *p, int *desc);
/* An optional "<tok> <integer>" clause (LIMIT, OFFSET, SLIMIT, SOFFSET). */
int influxql__parse_optional_int(influxql_parser *p, int tok, int64_t *out);

/* ==== the executor ====
 *
 * exec.c            the statement's context, dispatch, SHOW, DROP and DELETE
 * exec_series.c     the catalogue of groups and measurements, reading points, GROUP BY tag sets
 * exec_cond.c       conditions: values, WHERE evaluation, time ranges, arithmetic over values
 * exec_plan.c       the field list: functions, columns as evaluation trees, column names
 * exec_select.c     SELECT: sources and subqueries, the statement's shape, raw queries
 * exec_agg.c        aggregates: accumulators, time buckets, engine statistics
 * exec_transform.c  derivative, difference, moving_average, cumulative_sum
 * exec_rows.c       fill, the rows of aggregate series, row buffers, emitting a series
 */

#define INFLUXQL_MIN_TIME (INT64_MIN + 2)
#define INFLUXQL_MAX_TIME (INT64_MAX - 1)
#define INFLUXQL_ROWS_MAX ((size_t)2000000) /* rows one statement returns (JSON < ~200 MB) */
#define INFLUXQL_STMT_ERR 1                 /* a statement error has been recorded in the result */

/* A growable array (malloc'd; the caller frees). */
#define INFLUXQL_VEC_PUSH(arr, n, cap, item, rcvar)                                                \
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

/* -- the statement's context (exec.c) -- */

struct influxql_regex_entry;

/* One statement's run: its options, the result being filled, an arena freed when it ends, the
 * counters its limits are checked against, and the regexes compiled so far. */
typedef struct influxql_exec_ctx {
  const influxql_exec_opts *o;
  influxql_result *res;
  influxql_arena *arena;
  size_t points, points_max, series_max, rows;
  struct influxql_regex_entry *rx;
  size_t nrx;
  pl_err ierr;
} influxql_exec_ctx;

/* Records a statement error in the result (the first one wins) and returns INFLUXQL_STMT_ERR,
 * or PL_ENOMEM. */
int influxql__stmt_err(influxql_exec_ctx *x, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Counts n points read against the statement's limit: 0, or a statement error. */
int influxql__count_points(influxql_exec_ctx *x, size_t n);
/* A double as an int64, saturating (a plain cast of an out-of-range value is undefined). */
int64_t influxql__double_to_int64(double f);
/* qsort, which must not be given a NULL base even for zero elements. */
void influxql__sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));
/* The regex of a syntax-tree node, compiled on first use and kept for the statement; NULL when
 * it does not compile or memory runs out (then nothing matches). */
const regex_t *influxql__regex_get(influxql_exec_ctx *x, const void *node, const char *pattern);
int influxql__regex_match(const regex_t *re, const char *s);

/* -- the catalogue and reading points (exec_series.c) -- */

typedef struct influxql_group_tag {
  const char *key, *value;
} influxql_group_tag;

/* A group of the engine (or a series of a subquery's result), copied into the arena. */
typedef struct influxql_group {
  uint64_t id; /* tsdb group id, 0 for a subquery series */
  const char *measurement;
  influxql_group_tag *tags; /* sorted by key */
  size_t ntags;
  const char **fields;
  tsdb_type *types;
  size_t nfields;
  int64_t first_ts, last_ts;
  const char *key;             /* series key, line-protocol escaped */
  const influxql_series *virt; /* subquery series (time in column 0) */
  int picked;                  /* already among a statement's sources */
} influxql_group;

typedef struct influxql_catalog {
  influxql_group **g;
  size_t n, cap;
} influxql_catalog;

/* A measurement's groups with the union of their fields (first type seen) and tag keys. */
typedef struct influxql_meas {
  const char *name;
  influxql_group **g;
  size_t n;
  const char **fields;
  tsdb_type *types;
  size_t nfields;
  const char **tagkeys;
  size_t ntagkeys;
} influxql_meas;

void influxql__catalog_free(influxql_catalog *c);
/* Groups of measurement m (all when NULL) in namespace ns, ordered by series key. Groups that
 * hold no data (everything deleted) are left out. */
int influxql__catalog_load(influxql_exec_ctx *x, int64_t ns, const char *m, influxql_catalog *c);
/* qsort order of groups: measurement, then tags (key, value) in turn. */
int influxql__cmp_group(const void *a, const void *b);
/* qsort order of strings (const char *). */
int influxql__cmp_str(const void *a, const void *b);
/* The value of tag key in g, or NULL. */
const char *influxql__tag_value(const influxql_group *g, const char *key);
/* The index of field name in g (or m), or -1. */
int influxql__group_field(const influxql_group *g, const char *name);
int influxql__meas_field(const influxql_meas *m, const char *name);
/* Splits a sorted catalogue into measurements (*out malloc'd; its groups stay c's). */
int influxql__measures_from(influxql_exec_ctx *x, influxql_catalog *c, influxql_meas **out,
                            size_t *n);

/* The rows of a group: the union of the timestamps of the fields read, with each field's value
 * or null. Strings point into the points' arenas (valid until the next read). */
typedef struct influxql_group_rows {
  size_t nf;
  const char **names;
  tsdb_points *pts; /* nf */
  size_t *at;       /* cursors */
} influxql_group_rows;

/* names is borrowed for the reader's life. */
int influxql__group_rows_init(influxql_group_rows *r, size_t nf, const char **names);
void influxql__group_rows_free(influxql_group_rows *r);
/* Reads the fields of g in [start, end] (inclusive), from the engine or a subquery's result. */
int influxql__group_rows_read(influxql_exec_ctx *x, int64_t ns, const influxql_group *g,
                              influxql_group_rows *r, int64_t start, int64_t end);
/* Next row: returns 1 with its time and values (vals[nf]), 0 at the end. */
int influxql__group_rows_next(influxql_group_rows *r, int64_t *ts, influxql_value *vals);
/* The rows left, without consuming them. */
size_t influxql__group_rows_count(influxql_group_rows *r);

/* GROUP BY: the time interval and the tag dimensions. */
typedef struct influxql_dims {
  int has_time;
  int64_t every, offset;
  const influxql_expr **tags; /* VARREF, WILDCARD or REGEX */
  size_t ntags;
} influxql_dims;

/* A set of groups that forms one output series. */
typedef struct influxql_tagset {
  const char **values; /* per dim key; "" when the group lacks the tag */
  influxql_group **g;
  size_t n, cap;
  int *match; /* per group: 1 in, -1 depends on points */
} influxql_tagset;

typedef struct influxql_tagsets {
  influxql_tagset *t;
  size_t n, cap;
} influxql_tagsets;

int influxql__parse_dims(influxql_exec_ctx *x, const influxql_select *s, influxql_dims *d);
/* The GROUP BY tag keys for measurement m, sorted and unique (in the arena). */
int influxql__dim_keys(influxql_exec_ctx *x, const influxql_dims *d, const influxql_meas *m,
                       const char ***keys, size_t *n);
/* Groups of m that pass the tag part of the condition, partitioned by the values of keys and
 * ordered by them. */
int influxql__make_tagsets(influxql_exec_ctx *x, const influxql_meas *m, const influxql_expr *cond,
                           const char **keys, size_t nkeys, influxql_tagsets *out);
void influxql__tagsets_free(influxql_tagsets *ts);

/* -- conditions (exec_cond.c) -- */

/* What conditions see of a point: the group's tags and, when known, its fields' values. */
typedef struct influxql_cond_ctx {
  influxql_exec_ctx *x;
  const influxql_group *g;
  const influxql_meas *m;
  const char *const *row_fields; /* names of the values in row */
  const influxql_value *row;     /* NULL: fields unknown */
  size_t nrow;
  int64_t ts; /* the point's time, with row */
} influxql_cond_ctx;

typedef struct influxql_time_range {
  int64_t min, max; /* inclusive */
  int has_min, has_max;
} influxql_time_range;

/* 1 true, 0 false, -1 depends on fields (when c->row is NULL). */
int influxql__cond_truth(const influxql_cond_ctx *c, const influxql_expr *cond);
/* Appends to *names (malloc'd, growing) the field names of m that a condition reads. */
int influxql__cond_fields(influxql_exec_ctx *x, const influxql_expr *e, const influxql_meas *m,
                          const char ***names, size_t *n, size_t *cap);
void influxql__range_init(influxql_time_range *r);
/* Narrows the range's lower (upper) bound to v. */
void influxql__range_min(influxql_time_range *r, int64_t v);
void influxql__range_max(influxql_time_range *r, int64_t v);
/* Removes time comparisons from a condition (joined by AND) into r; *rest is what is left. */
int influxql__split_time(influxql_exec_ctx *x, influxql_expr *e, influxql_time_range *r,
                         influxql_expr **rest);
/* Arithmetic between two values as InfluxQL does it (null when either is null). */
influxql_value influxql__binop(influxql_op op, influxql_value a, influxql_value b);

/* -- the field list (exec_plan.c) -- */

/* Aggregate functions. */
enum {
  INFLUXQL_FN_NONE = 0,
  INFLUXQL_FN_COUNT,
  INFLUXQL_FN_SUM,
  INFLUXQL_FN_MEAN,
  INFLUXQL_FN_MEDIAN,
  INFLUXQL_FN_MODE,
  INFLUXQL_FN_SPREAD,
  INFLUXQL_FN_STDDEV,
  INFLUXQL_FN_MIN,
  INFLUXQL_FN_MAX,
  INFLUXQL_FN_FIRST,
  INFLUXQL_FN_LAST,
  INFLUXQL_FN_PERCENTILE,
  INFLUXQL_FN_INTEGRAL_UNSUPPORTED,
};

/* Transformations. */
enum {
  INFLUXQL_TR_NONE = 0,
  INFLUXQL_TR_DERIVATIVE,
  INFLUXQL_TR_NN_DERIVATIVE,
  INFLUXQL_TR_DIFFERENCE,
  INFLUXQL_TR_NN_DIFFERENCE,
  INFLUXQL_TR_MOVING_AVERAGE,
  INFLUXQL_TR_CUMSUM
};

/* One aggregate over a field used by the columns. */
typedef struct influxql_aggref {
  int func;
  const char *field;
  double pct;
  /* results for the current tagset, per bucket */
  influxql_value *val;
  int64_t *vts; /* selected point's time (selectors) */
} influxql_aggref;

/* A column as an evaluation tree over aggregates, raw fields, tags and literals. */
enum {
  INFLUXQL_COL_LIT,
  INFLUXQL_COL_AGG,
  INFLUXQL_COL_FIELD,
  INFLUXQL_COL_TAG,
  INFLUXQL_COL_BIN,
  INFLUXQL_COL_TRANSFORM
};

typedef struct influxql_col {
  int kind;
  influxql_op op;
  struct influxql_col *l, *r;
  size_t agg;         /* COL_AGG (a lone selector's COL_FIELD and COL_TAG: index into aux) */
  const char *name;   /* COL_FIELD / COL_TAG */
  influxql_value lit; /* COL_LIT */
  int transform;      /* COL_TRANSFORM: over l */
  int64_t unit_ns;    /* derivative unit; 0 = default */
  int64_t window;     /* moving_average N */
  int has_unit;
} influxql_col;

typedef struct influxql_plan {
  const influxql_select *s;
  int aggregate;     /* any aggregate function */
  int raw_transform; /* transforms over raw fields, no aggregates */
  influxql_col **cols;
  const char **names; /* column names (index 0: time) */
  size_t ncols;       /* without time */
  influxql_aggref *aggs;
  size_t naggs, cap_aggs;
  /* auxiliary fields and tags of a lone selector (SELECT max(v), host ...): their values at
   * the selected point, per bucket */
  influxql_col **aux;
  size_t naux;
  influxql_value *auxv; /* nbuckets * naux, for the tag set being run */
} influxql_plan;

/* What a field expression contains (influxql__build_col's *has). */
enum {
  INFLUXQL_HAS_AGG = 1,
  INFLUXQL_HAS_RAW = 2,
  INFLUXQL_HAS_TRANSFORM = 4,
  INFLUXQL_HAS_RAW_TRANSFORM = 8,
  INFLUXQL_HAS_FIELD = 16,
  INFLUXQL_HAS_WILDCARD_AGG = 32
};

/* A field list entry after expanding wildcards for measurement set: the expression and name. */
typedef struct influxql_field_out {
  influxql_col *c;
  const char *name;
  int aliased;
} influxql_field_out;

/* The measurements a SELECT reads, with their groups (subqueries' series among them). */
typedef struct influxql_source_set {
  influxql_meas *ms;
  size_t n;
  int64_t ns;           /* the namespace read (statements read one database) */
  influxql_catalog cat; /* owns group pointers */
  influxql_group **virt_groups;
  size_t nvirt;
  influxql_result *sub; /* subquery results to free */
  size_t nsub;
} influxql_source_set;

/* The INFLUXQL_FN_ of an aggregate's name (INFLUXQL_FN_NONE when it is none), and back. */
int influxql__agg_func(const char *name);
const char *influxql__func_name(int f);
/* The INFLUXQL_TR_ of a transformation's name, or INFLUXQL_TR_NONE. */
int influxql__transform_of(const char *name);
/* Builds the evaluation tree of a field expression (aggregates added to p); *has collects
 * INFLUXQL_HAS_ bits of what it contains. *out is NULL for wildcards, which the caller expands. */
int influxql__build_col(influxql_exec_ctx *x, influxql_plan *p, const influxql_expr *e,
                        influxql_col **out, int *has);
/* Column names with InfluxDB's conflict resolution: aliases first, then generated names, with
 * "_1", "_2"... added to repeats. */
int influxql__name_columns(influxql_exec_ctx *x, const char **given, const int *aliased, size_t n,
                           const char **out);
/* The statement's columns with wildcards expanded over the measurements of ss (*out malloc'd). */
int influxql__raw_columns(influxql_exec_ctx *x, influxql_plan *p, const influxql_select *s,
                          const influxql_source_set *ss, const influxql_dims *d,
                          influxql_field_out **out, size_t *n);
/* The function calls of an expression (a transformation counts 2); *selectors counts the
 * selectors among them. */
int influxql__count_calls(const influxql_expr *e, int *selectors);

/* -- SELECT (exec_select.c) -- */

typedef struct influxql_select_ctx {
  influxql_exec_ctx *x;
  const influxql_select *s;
  influxql_plan *p;
  influxql_dims d;
  influxql_time_range range;
  influxql_expr *cond; /* without time */
  int64_t ns;
  influxql_tz *tz;
} influxql_select_ctx;

/* Runs a SELECT (a subquery too) in namespace ns, within the outer statement's time range when
 * outer is given, into `into`. */
int influxql__select_run(influxql_exec_ctx *x, const influxql_select *s, int64_t ns,
                         const influxql_time_range *outer, influxql_result *into);

/* -- aggregates (exec_agg.c) -- */

/* Runs an aggregate statement over the tag sets [from, to) of m (in reverse for ORDER BY time
 * DESC): the buckets of the statement's range, with `ext` more before it for the
 * transformations. */
int influxql__run_agg_tagsets(influxql_select_ctx *sc, const influxql_meas *m,
                              influxql_tagsets *tsets, size_t from, size_t to, const char **keys,
                              size_t nkeys, const char *const *colnames, int single_selector,
                              int64_t ext);

/* -- transformations (exec_transform.c) -- */

/* The values of one transformation node of a column, per bucket. */
typedef struct influxql_colvals {
  const influxql_col *c;
  influxql_value *v; /* per bucket */
} influxql_colvals;

/* Runs a transformation over a column of values at times ts[], writing out[] (null where it
 * has no point). */
void influxql__run_transform(const influxql_col *c, const influxql_value *in, const int64_t *ts,
                             size_t n, int64_t default_unit, influxql_value *out);
/* How many buckets before the range a column's transformations need. */
int64_t influxql__transform_extension(const influxql_col *c);
/* Appends the transformation nodes of column c to *tv (malloc'd, growing). */
int influxql__collect_transforms(influxql_col *c, influxql_colvals **tv, size_t *n, size_t *cap);
/* Transformations over raw points (no GROUP BY time) for one tag set. */
int influxql__run_raw_transform_tagset(influxql_select_ctx *sc, const influxql_meas *m,
                                       influxql_tagset *ts, const char **keys, size_t nkeys,
                                       const char *const *colnames);

/* -- fill and rows (exec_rows.c) -- */

/* Rows being collected: values (stride a row), times and a tie-break order, all malloc'd. */
typedef struct influxql_rowbuf {
  influxql_value *v; /* rows * stride */
  int64_t *ts;
  size_t *order;
  size_t n, cap, stride;
} influxql_rowbuf;

/* Adds a row (vals[stride] copied). */
int influxql__rowbuf_add(influxql_rowbuf *b, int64_t ts, size_t order, const influxql_value *vals);
void influxql__rowbuf_free(influxql_rowbuf *b);
/* Sorts rows by (time, order), stably. */
int influxql__rowbuf_sort(influxql_rowbuf *b);
void influxql__reverse_rows(influxql_value *rows, size_t nrows, size_t ncols);
/* Adds a series of nrows rows (ncolumns values each, time first) to the result, keeping those
 * that s's OFFSET and LIMIT keep (all when s is NULL), after checking the statement's row and
 * series limits; nothing when nrows is 0. The result copies what it keeps. */
int influxql__emit_series(influxql_exec_ctx *x, const char *name, const char **keys,
                          const char **values, size_t nkeys, const char *const *columns,
                          size_t ncolumns, influxql_value *rows, size_t nrows,
                          const influxql_select *s);
/* Fills the empty buckets (present[k] == 0) of one aggregate's column as s's FILL says. */
void influxql__fill_column(const influxql_select *s, const influxql_aggref *r, influxql_value *vals,
                           const uint8_t *present, size_t n, tsdb_type type);
/* A column's value at bucket k, from the aggregates' values and the transformations' (tv). */
influxql_value influxql__agg_eval(const influxql_col *c, const influxql_plan *p, size_t k,
                                  const influxql_colvals *tv, size_t ntv);
/* Whether column c "has a point" at bucket k (InfluxDB emits a row where any column does). */
int influxql__col_point(const influxql_col *c, const influxql_plan *p, size_t k,
                        const uint8_t *const *present, const influxql_colvals *tv, size_t ntv,
                        int fill_none);

#endif
