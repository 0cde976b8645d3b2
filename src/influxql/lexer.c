/* The InfluxQL lexer: code points in, tokens out, with the two layers of push-back the parser
 * relies on (runes and tokens), and the arena that owns the literals.
 *
 * Why three layers that look like InfluxDB's: error messages carry a position, and tools
 * (Grafana's query inspector, the influx CLI) show it. To report the same "line 1, char N" as
 * InfluxDB 1.x for the same text, positions follow the same rules:
 *   - a position is (line, code point in the line), 0-based here and 1-based in messages;
 *   - "\r\n" and a lone "\r" are one newline;
 *   - the end of input has a position like any rune; the first time it is read (and not given
 *     back) the column advances once more, so a token scanned after that reports one past;
 *   - a string token's position is that of the rune before its opening quote (InfluxDB steps
 *     back one rune too far there), and a bad escape reports the escaped rune.
 * Invalid UTF-8 reads as U+FFFD, one byte at a time; a NUL byte ends the input.
 *
 * Rune layer: a ring of the last three runes read with their positions; `rn` of them are
 * pushed back. Token layer: a ring of the last three tokens; `tn` pushed back. Bound
 * parameters ($name) are replaced as tokens leave the scanner.
 */
#include "influxql/influxql_int.h"

#include "base/utf8.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- arena ---- */

typedef struct arena_block {
  struct arena_block *next;
  size_t used, cap;
  _Alignas(8) unsigned char data[];
} arena_block;

struct influxql_arena {
  arena_block *head;
  size_t total, max_bytes;
};

influxql_arena *influxql__arena_new(size_t max_bytes) {
  influxql_arena *a = calloc(1, sizeof *a);
  if (a)
    a->max_bytes = max_bytes ? max_bytes : INFLUXQL_ARENA_BYTES_MAX;
  return a;
}

void influxql__arena_free(influxql_arena *a) {
  if (!a)
    return;
  arena_block *b = a->head;
  while (b) {
    arena_block *next = b->next;
    free(b);
    b = next;
  }
  free(a);
}

void *influxql__alloc(influxql_arena *a, size_t n) {
  n = (n + 7) & ~(size_t)7;
  if (!n)
    n = 8;
  arena_block *b = a->head;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > 16384 ? n : 16384;
    if (a->total + cap > a->max_bytes)
      return NULL;
    b = malloc(sizeof *b + cap);
    if (!b)
      return NULL;
    b->used = 0;
    b->cap = cap;
    b->next = a->head;
    a->head = b;
    a->total += cap;
  }
  void *p = b->data + b->used;
  b->used += n;
  memset(p, 0, n);
  return p;
}

char *influxql__strndup(influxql_arena *a, const char *s, size_t n) {
  char *p = influxql__alloc(a, n + 1);
  if (!p)
    return NULL;
  if (n)
    memcpy(p, s, n);
  p[n] = 0;
  return p;
}

/* ---- token names and keywords ---- */

static const char *const tok_names[TK_COUNT_] = {
    [TK_ILLEGAL] = "ILLEGAL",
    [TK_EOF] = "EOF",
    [TK_WS] = "WS",
    [TK_COMMENT] = "COMMENT",
    [TK_IDENT] = "IDENT",
    [TK_BOUNDPARAM] = "BOUNDPARAM",
    [TK_NUMBER] = "NUMBER",
    [TK_INTEGER] = "INTEGER",
    [TK_DURATIONVAL] = "DURATIONVAL",
    [TK_STRING] = "STRING",
    [TK_BADSTRING] = "BADSTRING",
    [TK_BADESCAPE] = "BADESCAPE",
    [TK_TRUE] = "TRUE",
    [TK_FALSE] = "FALSE",
    [TK_REGEX] = "REGEX",
    [TK_BADREGEX] = "BADREGEX",
    [TK_ADD] = "+",
    [TK_SUB] = "-",
    [TK_MUL] = "*",
    [TK_DIV] = "/",
    [TK_MOD] = "%",
    [TK_BITAND] = "&",
    [TK_BITOR] = "|",
    [TK_BITXOR] = "^",
    [TK_AND] = "AND",
    [TK_OR] = "OR",
    [TK_IN] = "IN",
    [TK_EQ] = "=",
    [TK_NEQ] = "!=",
    [TK_EQREGEX] = "=~",
    [TK_NEQREGEX] = "!~",
    [TK_LT] = "<",
    [TK_LTE] = "<=",
    [TK_GT] = ">",
    [TK_GTE] = ">=",
    [TK_LPAREN] = "(",
    [TK_RPAREN] = ")",
    [TK_COMMA] = ",",
    [TK_COLON] = ":",
    [TK_DOUBLECOLON] = "::",
    [TK_SEMICOLON] = ";",
    [TK_DOT] = ".",
    [TK_ALL] = "ALL",
    [TK_ALTER] = "ALTER",
    [TK_ANALYZE] = "ANALYZE",
    [TK_ANY] = "ANY",
    [TK_AS] = "AS",
    [TK_ASC] = "ASC",
    [TK_BEGIN] = "BEGIN",
    [TK_BY] = "BY",
    [TK_CARDINALITY] = "CARDINALITY",
    [TK_CREATE] = "CREATE",
    [TK_CONTINUOUS] = "CONTINUOUS",
    [TK_DATABASE] = "DATABASE",
    [TK_DATABASES] = "DATABASES",
    [TK_DEFAULT] = "DEFAULT",
    [TK_DELETE] = "DELETE",
    [TK_DESC] = "DESC",
    [TK_DESTINATIONS] = "DESTINATIONS",
    [TK_DIAGNOSTICS] = "DIAGNOSTICS",
    [TK_DISTINCT] = "DISTINCT",
    [TK_DROP] = "DROP",
    [TK_DURATION] = "DURATION",
    [TK_END] = "END",
    [TK_EVERY] = "EVERY",
    [TK_EXACT] = "EXACT",
    [TK_EXPLAIN] = "EXPLAIN",
    [TK_FIELD] = "FIELD",
    [TK_FOR] = "FOR",
    [TK_FROM] = "FROM",
    [TK_GRANT] = "GRANT",
    [TK_GRANTS] = "GRANTS",
    [TK_GROUP] = "GROUP",
    [TK_GROUPS] = "GROUPS",
    [TK_INF] = "INF",
    [TK_INSERT] = "INSERT",
    [TK_INTO] = "INTO",
    [TK_KEY] = "KEY",
    [TK_KEYS] = "KEYS",
    [TK_KILL] = "KILL",
    [TK_LIMIT] = "LIMIT",
    [TK_MEASUREMENT] = "MEASUREMENT",
    [TK_MEASUREMENTS] = "MEASUREMENTS",
    [TK_NAME] = "NAME",
    [TK_OFFSET] = "OFFSET",
    [TK_ON] = "ON",
    [TK_ORDER] = "ORDER",
    [TK_PASSWORD] = "PASSWORD",
    [TK_POLICY] = "POLICY",
    [TK_POLICIES] = "POLICIES",
    [TK_PRIVILEGES] = "PRIVILEGES",
    [TK_QUERIES] = "QUERIES",
    [TK_QUERY] = "QUERY",
    [TK_READ] = "READ",
    [TK_REPLICATION] = "REPLICATION",
    [TK_RESAMPLE] = "RESAMPLE",
    [TK_RETENTION] = "RETENTION",
    [TK_REVOKE] = "REVOKE",
    [TK_SELECT] = "SELECT",
    [TK_SERIES] = "SERIES",
    [TK_SET] = "SET",
    [TK_SHOW] = "SHOW",
    [TK_SHARD] = "SHARD",
    [TK_SHARDS] = "SHARDS",
    [TK_SLIMIT] = "SLIMIT",
    [TK_SOFFSET] = "SOFFSET",
    [TK_STATS] = "STATS",
    [TK_SUBSCRIPTION] = "SUBSCRIPTION",
    [TK_SUBSCRIPTIONS] = "SUBSCRIPTIONS",
    [TK_TAG] = "TAG",
    [TK_TO] = "TO",
    [TK_USER] = "USER",
    [TK_USERS] = "USERS",
    [TK_VALUES] = "VALUES",
    [TK_WHERE] = "WHERE",
    [TK_WITH] = "WITH",
    [TK_WRITE] = "WRITE",
};

const char *influxql__tok_name(int tok) {
  return tok >= 0 && tok < TK_COUNT_ && tok_names[tok] ? tok_names[tok] : "";
}

int influxql__tok_precedence(int tok) {
  switch (tok) {
  case TK_OR: return 1;
  case TK_AND: return 2;
  case TK_EQ:
  case TK_NEQ:
  case TK_EQREGEX:
  case TK_NEQREGEX:
  case TK_LT:
  case TK_LTE:
  case TK_GT:
  case TK_GTE:
  case TK_IN: return 3;
  case TK_ADD:
  case TK_SUB:
  case TK_BITOR:
  case TK_BITXOR: return 4;
  case TK_MUL:
  case TK_DIV:
  case TK_MOD:
  case TK_BITAND: return 5;
  default: return 0;
  }
}

int influxql__lookup(const char *s, size_t n) {
  /* Keywords are at most 13 letters; everything else is an identifier. */
  if (n < 2 || n > 13)
    return TK_IDENT;
  for (int t = TK_ALL; t <= TK_WRITE; t++)
    if (strlen(tok_names[t]) == n && strncasecmp(tok_names[t], s, n) == 0)
      return t;
  if (n == 3 && strncasecmp(s, "and", 3) == 0)
    return TK_AND;
  if (n == 2 && strncasecmp(s, "or", 2) == 0)
    return TK_OR;
  if (n == 2 && strncasecmp(s, "in", 2) == 0)
    return TK_IN;
  if (n == 4 && strncasecmp(s, "true", 4) == 0)
    return TK_TRUE;
  if (n == 5 && strncasecmp(s, "false", 5) == 0)
    return TK_FALSE;
  return TK_IDENT;
}

/* ---- rune layer ---- */

#define RUNE_EOF 0
#define RUNE_ERROR 0xfffd

/* Decodes one code point at src[off]; invalid sequences are U+FFFD of one byte. */
static int32_t decode_rune(const uint8_t *s, size_t left, size_t *width) {
  *width = 1;
  if (s[0] < 0x80)
    return (int32_t)s[0];
  uint32_t cp;
  size_t n = pl_utf8_decode(s, left, &cp);
  if (!n)
    return RUNE_ERROR;
  *width = n;
  return (int32_t)cp;
}

static int32_t src_next(influxql_lexer *lx) {
  if (lx->off >= lx->len)
    return RUNE_EOF;
  size_t w;
  int32_t ch = decode_rune(lx->src + lx->off, lx->len - lx->off, &w);
  lx->off += w;
  if (ch == '\r') {
    if (lx->off < lx->len && lx->src[lx->off] == '\n')
      lx->off++;
    ch = '\n';
  }
  return ch;
}

static int32_t rd_cur(const influxql_lexer *lx, influxql_pos *pos) {
  int i = (lx->ri - lx->rn + 3) % 3;
  if (pos)
    *pos = lx->ring[i].pos;
  return lx->ring[i].ch;
}

static int32_t rd_read(influxql_lexer *lx, influxql_pos *pos) {
  if (lx->rn > 0) {
    lx->rn--;
    return rd_cur(lx, pos);
  }
  int32_t ch = src_next(lx);
  lx->ri = (lx->ri + 1) % 3;
  lx->ring[lx->ri].ch = ch;
  lx->ring[lx->ri].pos = lx->pos;
  if (ch == '\n') {
    lx->pos.line++;
    lx->pos.col = 0;
  } else if (!lx->eof_seen) {
    lx->pos.col++;
  }
  if (ch == RUNE_EOF)
    lx->eof_seen = 1;
  return rd_cur(lx, pos);
}

static void rd_unread(influxql_lexer *lx) {
  lx->rn++;
}

/* ---- scanner ---- */

static int is_ws(int32_t c) {
  return c == ' ' || c == '\t' || c == '\n';
}
static int is_letter(int32_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static int is_digit(int32_t c) {
  return c >= '0' && c <= '9';
}
static int is_ident_char(int32_t c) {
  return is_letter(c) || is_digit(c) || c == '_';
}

static void put_rune(influxql_lexer *lx, int32_t c) {
  uint8_t b[4];
  size_t n;
  uint32_t u = (uint32_t)c;
  if (u < 0x80) {
    b[0] = (uint8_t)u, n = 1;
  } else if (u < 0x800) {
    b[0] = (uint8_t)(0xc0 | u >> 6), b[1] = (uint8_t)(0x80 | (u & 0x3f)), n = 2;
  } else if (u < 0x10000) {
    b[0] = (uint8_t)(0xe0 | u >> 12), b[1] = (uint8_t)(0x80 | ((u >> 6) & 0x3f));
    b[2] = (uint8_t)(0x80 | (u & 0x3f)), n = 3;
  } else {
    b[0] = (uint8_t)(0xf0 | u >> 18), b[1] = (uint8_t)(0x80 | ((u >> 12) & 0x3f));
    b[2] = (uint8_t)(0x80 | ((u >> 6) & 0x3f)), b[3] = (uint8_t)(0x80 | (u & 0x3f)), n = 4;
  }
  if (pl_buf_append(&lx->scratch, b, n) < 0)
    lx->oom = 1;
}

static influxql_token mk(influxql_lexer *lx, int tok, influxql_pos pos, const char *lit,
                         size_t len) {
  influxql_token t = {tok, pos, "", 0};
  if (len) {
    char *p = influxql__strndup(lx->arena, lit, len);
    if (!p) {
      lx->oom = 1;
      t.tok = TK_EOF;
      return t;
    }
    t.lit = p;
    t.len = len;
  }
  return t;
}

static influxql_token mk_scratch(influxql_lexer *lx, int tok, influxql_pos pos) {
  return mk(lx, tok, pos, (const char *)lx->scratch.data, lx->scratch.len);
}

/* Whitespace keeps its text: a message that finds it quotes it. */
static influxql_token scan_ws(influxql_lexer *lx) {
  influxql_pos pos;
  int32_t first = rd_cur(lx, &pos);
  pl_buf_reset(&lx->scratch);
  put_rune(lx, first);
  for (;;) {
    int32_t ch = rd_read(lx, NULL);
    if (ch == RUNE_EOF)
      break;
    if (!is_ws(ch)) {
      rd_unread(lx);
      break;
    }
    put_rune(lx, ch);
  }
  return mk_scratch(lx, TK_WS, pos);
}

/* The body of a quoted string or identifier; the opening quote is the current rune. Appends
 * the unescaped text to scratch. Returns TK_STRING, TK_BADSTRING or TK_BADESCAPE (scratch then
 * holds the offending escape). */
static int read_quoted(influxql_lexer *lx) {
  int32_t ending = rd_read(lx, NULL);
  if (ending == RUNE_EOF)
    return TK_BADSTRING;
  for (;;) {
    int32_t ch0 = rd_read(lx, NULL);
    if (ch0 == ending)
      return TK_STRING;
    if (ch0 == RUNE_EOF || ch0 == '\n')
      return TK_BADSTRING;
    if (ch0 == '\\') {
      int32_t ch1 = rd_read(lx, NULL);
      if (ch1 == 'n')
        put_rune(lx, '\n');
      else if (ch1 == '\\' || ch1 == '"' || ch1 == '\'')
        put_rune(lx, ch1);
      else {
        pl_buf_reset(&lx->scratch);
        put_rune(lx, '\\');
        if (ch1 != RUNE_EOF)
          put_rune(lx, ch1);
        return TK_BADESCAPE;
      }
    } else {
      put_rune(lx, ch0);
    }
  }
}

/* A string: the quote has just been read. */
static influxql_token scan_string(influxql_lexer *lx) {
  influxql_pos pos;
  rd_unread(lx);
  rd_cur(lx, &pos);
  pl_buf_reset(&lx->scratch);
  int tok = read_quoted(lx);
  if (tok == TK_BADESCAPE)
    rd_cur(lx, &pos);
  return mk_scratch(lx, tok, pos);
}

static influxql_token scan_ident(influxql_lexer *lx, int lookup) {
  influxql_pos pos;
  rd_read(lx, &pos);
  rd_unread(lx);
  pl_buf_reset(&lx->scratch);
  for (;;) {
    int32_t ch = rd_read(lx, NULL);
    if (ch == RUNE_EOF)
      break;
    if (ch == '"') {
      /* A quoted part replaces whatever came before it, as in InfluxDB. */
      pl_buf_reset(&lx->scratch);
      influxql_token t = scan_string(lx);
      if (t.tok != TK_STRING)
        return t;
      t.tok = TK_IDENT;
      t.pos = pos;
      return t;
    }
    if (is_ident_char(ch)) {
      put_rune(lx, ch);
      for (;;) {
        int32_t c = rd_read(lx, NULL);
        if (c == RUNE_EOF)
          break;
        if (!is_ident_char(c)) {
          rd_unread(lx);
          break;
        }
        put_rune(lx, c);
      }
    } else {
      rd_unread(lx);
      break;
    }
  }
  if (lookup) {
    int kw = influxql__lookup((const char *)lx->scratch.data, lx->scratch.len);
    if (kw != TK_IDENT)
      return mk(lx, kw, pos, NULL, 0);
  }
  return mk_scratch(lx, TK_IDENT, pos);
}

static void scan_digits(influxql_lexer *lx) {
  for (;;) {
    int32_t ch = rd_read(lx, NULL);
    if (!is_digit(ch)) {
      rd_unread(lx);
      break;
    }
    put_rune(lx, ch);
  }
}

static int is_duration_letter(int32_t c) {
  return is_letter(c) || c == 0xb5; /* µ */
}

static influxql_token scan_number(influxql_lexer *lx) {
  influxql_pos pos;
  int32_t ch = rd_cur(lx, &pos);
  pl_buf_reset(&lx->scratch);
  if (ch == '.') {
    int32_t ch1 = rd_read(lx, NULL);
    rd_unread(lx);
    if (!is_digit(ch1))
      return mk(lx, TK_ILLEGAL, pos, ".", 1);
    rd_unread(lx);
  } else {
    rd_unread(lx);
  }
  scan_digits(lx);
  int decimal = 0;
  if (rd_read(lx, NULL) == '.') {
    decimal = 1;
    int32_t ch1 = rd_read(lx, NULL);
    if (is_digit(ch1)) {
      put_rune(lx, '.');
      put_rune(lx, ch1);
      scan_digits(lx);
    } else {
      rd_unread(lx);
    }
  } else {
    rd_unread(lx);
  }
  if (decimal)
    return mk_scratch(lx, TK_NUMBER, pos);
  int32_t c = rd_read(lx, NULL);
  if (!is_duration_letter(c)) {
    rd_unread(lx);
    return mk_scratch(lx, TK_INTEGER, pos);
  }
  put_rune(lx, c);
  for (;;) {
    int32_t c1 = rd_read(lx, NULL);
    if (!is_duration_letter(c1)) {
      rd_unread(lx);
      break;
    }
    put_rune(lx, c1);
  }
  for (;;) {
    int32_t c2 = rd_read(lx, NULL);
    if (!is_duration_letter(c2) && !is_digit(c2)) {
      rd_unread(lx);
      break;
    }
    put_rune(lx, c2);
  }
  return mk_scratch(lx, TK_DURATIONVAL, pos);
}

static void skip_line(influxql_lexer *lx) {
  for (;;) {
    int32_t ch = rd_read(lx, NULL);
    if (ch == '\n' || ch == RUNE_EOF)
      return;
  }
}

/* Skips to the end of a block comment; -1 when the input ends first. */
static int skip_block_comment(influxql_lexer *lx) {
  for (;;) {
    int32_t ch1 = rd_read(lx, NULL);
    if (ch1 == RUNE_EOF)
      return -1;
    if (ch1 != '*')
      continue;
    for (;;) {
      int32_t ch2 = rd_read(lx, NULL);
      if (ch2 == '/')
        return 0;
      if (ch2 == RUNE_EOF)
        return -1;
      if (ch2 != '*')
        break;
    }
  }
}

static influxql_token scan_raw(influxql_lexer *lx) {
  influxql_pos pos;
  int32_t ch0 = rd_read(lx, &pos);
  if (is_ws(ch0))
    return scan_ws(lx);
  if (is_letter(ch0) || ch0 == '_') {
    rd_unread(lx);
    return scan_ident(lx, 1);
  }
  if (is_digit(ch0))
    return scan_number(lx);
  int32_t ch1;
  switch (ch0) {
  case RUNE_EOF: return mk(lx, TK_EOF, pos, NULL, 0);
  case '"': rd_unread(lx); return scan_ident(lx, 1);
  case '\'': return scan_string(lx);
  case '.':
    ch1 = rd_read(lx, NULL);
    rd_unread(lx);
    if (is_digit(ch1))
      return scan_number(lx);
    return mk(lx, TK_DOT, pos, NULL, 0);
  case '$': {
    influxql_token t = scan_ident(lx, 0);
    pl_buf_reset(&lx->scratch);
    put_rune(lx, '$');
    if (pl_buf_append(&lx->scratch, t.lit, t.len) < 0)
      lx->oom = 1;
    return mk_scratch(lx, t.tok == TK_IDENT ? TK_BOUNDPARAM : t.tok, pos);
  }
  case '+': return mk(lx, TK_ADD, pos, NULL, 0);
  case '-':
    ch1 = rd_read(lx, NULL);
    if (ch1 == '-') {
      skip_line(lx);
      return mk(lx, TK_COMMENT, pos, NULL, 0);
    }
    rd_unread(lx);
    return mk(lx, TK_SUB, pos, NULL, 0);
  case '*': return mk(lx, TK_MUL, pos, NULL, 0);
  case '/':
    ch1 = rd_read(lx, NULL);
    if (ch1 == '*')
      return mk(lx, skip_block_comment(lx) < 0 ? TK_ILLEGAL : TK_COMMENT, pos, NULL, 0);
    rd_unread(lx);
    return mk(lx, TK_DIV, pos, NULL, 0);
  case '%': return mk(lx, TK_MOD, pos, NULL, 0);
  case '&': return mk(lx, TK_BITAND, pos, NULL, 0);
  case '|': return mk(lx, TK_BITOR, pos, NULL, 0);
  case '^': return mk(lx, TK_BITXOR, pos, NULL, 0);
  case '=':
    if (rd_read(lx, NULL) == '~')
      return mk(lx, TK_EQREGEX, pos, NULL, 0);
    rd_unread(lx);
    return mk(lx, TK_EQ, pos, NULL, 0);
  case '!':
    ch1 = rd_read(lx, NULL);
    if (ch1 == '=')
      return mk(lx, TK_NEQ, pos, NULL, 0);
    if (ch1 == '~')
      return mk(lx, TK_NEQREGEX, pos, NULL, 0);
    rd_unread(lx);
    break;
  case '>':
    if (rd_read(lx, NULL) == '=')
      return mk(lx, TK_GTE, pos, NULL, 0);
    rd_unread(lx);
    return mk(lx, TK_GT, pos, NULL, 0);
  case '<':
    ch1 = rd_read(lx, NULL);
    if (ch1 == '=')
      return mk(lx, TK_LTE, pos, NULL, 0);
    if (ch1 == '>')
      return mk(lx, TK_NEQ, pos, NULL, 0);
    rd_unread(lx);
    return mk(lx, TK_LT, pos, NULL, 0);
  case '(': return mk(lx, TK_LPAREN, pos, NULL, 0);
  case ')': return mk(lx, TK_RPAREN, pos, NULL, 0);
  case ',': return mk(lx, TK_COMMA, pos, NULL, 0);
  case ';': return mk(lx, TK_SEMICOLON, pos, NULL, 0);
  case ':':
    if (rd_read(lx, NULL) == ':')
      return mk(lx, TK_DOUBLECOLON, pos, NULL, 0);
    rd_unread(lx);
    return mk(lx, TK_COLON, pos, NULL, 0);
  default: break;
  }
  pl_buf_reset(&lx->scratch);
  put_rune(lx, ch0);
  return mk_scratch(lx, TK_ILLEGAL, pos);
}

/* A regex between slashes at the current position: "\/" is a slash, other escapes are kept
 * with their backslash; a newline or the end of input inside is a bad regex. */
static influxql_token scan_regex_raw(influxql_lexer *lx) {
  influxql_pos pos;
  rd_cur(lx, &pos);
  pl_buf_reset(&lx->scratch);
  int32_t start = rd_read(lx, NULL);
  if (start != '/')
    return mk(lx, TK_BADREGEX, pos, NULL, 0);
  for (;;) {
    int32_t ch0 = rd_read(lx, NULL);
    if (ch0 == '/')
      return mk_scratch(lx, TK_REGEX, pos);
    if (ch0 == RUNE_EOF || ch0 == '\n')
      return mk(lx, TK_BADREGEX, pos, NULL, 0);
    if (ch0 == '\\') {
      int32_t ch1 = rd_read(lx, NULL);
      if (ch1 == RUNE_EOF)
        return mk(lx, TK_BADREGEX, pos, NULL, 0);
      if (ch1 == '/') {
        put_rune(lx, '/');
      } else {
        rd_unread(lx);
        put_rune(lx, '\\');
      }
    } else {
      put_rune(lx, ch0);
    }
  }
}

/* ---- token layer ---- */

void influxql__lex_init(influxql_lexer *lx, const char *src, size_t len, influxql_arena *arena) {
  memset(lx, 0, sizeof *lx);
  const char *nul = memchr(src, 0, len);
  lx->src = (const uint8_t *)src;
  lx->len = nul ? (size_t)(nul - src) : len;
  lx->arena = arena;
  for (int i = 0; i < 3; i++)
    lx->toks[i].lit = "";
  pl_buf_init(&lx->scratch, INFLUXQL_QUERY_BYTES_MAX * 4 + 16);
}

void influxql__lex_free(influxql_lexer *lx) {
  pl_buf_free(&lx->scratch);
}

static influxql_token tok_cur(const influxql_lexer *lx) {
  return lx->toks[(lx->ti - lx->tn + 3) % 3];
}

static influxql_token scan_with(influxql_lexer *lx, influxql_token (*fn)(influxql_lexer *)) {
  if (lx->tn > 0) {
    lx->tn--;
    return tok_cur(lx);
  }
  lx->ti = (lx->ti + 1) % 3;
  lx->toks[lx->ti] = lx->oom ? (influxql_token){TK_EOF, lx->pos, "", 0} : fn(lx);
  return tok_cur(lx);
}

influxql_token influxql__scan(influxql_lexer *lx) {
  return scan_with(lx, scan_raw);
}

influxql_token influxql__scan_regex(influxql_lexer *lx) {
  return scan_with(lx, scan_regex_raw);
}

void influxql__unscan(influxql_lexer *lx) {
  lx->tn++;
}

int32_t influxql__peek_rune(influxql_lexer *lx) {
  int32_t r = rd_read(lx, NULL);
  if (r != RUNE_EOF)
    rd_unread(lx);
  return r;
}
