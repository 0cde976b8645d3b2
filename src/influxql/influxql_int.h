/* Internals shared by the files of the InfluxQL module: the arena, the tokens and the lexer the
 * parser drives, time zones, and helpers shared by the executor and the output writers. */
#ifndef PLATEAU_INFLUXQL_INT_H
#define PLATEAU_INFLUXQL_INT_H

#include "influxql/influxql.h"

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

/* ---- time zones (tz.c-like helpers live in exec.c) ---- */
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

#endif
