/* GS1 Digital Link parsing and validation against the GS1 Barcode Syntax Dictionary (see
 * digital_link.h).
 *
 * Dictionary format (one entry per line; '#' starts a comment):
 *   AIs [Flags] Specification [Attributes...] [# Title]
 *   AIs    one AI ("01") or a range of equal-length AIs ("3100-3105")
 *   Flags  a token of punctuation only: '*' fixed length, '?' allowed as a Digital Link data
 *          attribute
 *   Spec   components "N14,csum" "X..20" "[X..17]" (optional): a character set (N digits,
 *          X GS1 CSET 82, Y CSET 39, Z base64url), a length (exact, or "..max"), linters
 *   Attrs  "dlpkey" or "dlpkey=22,10,21|235" (primary key and its ordered qualifier
 *          alternatives), "req=01+21,02" (requires one of the groups), "ex=255,37" (excludes;
 *          'n' in a pattern matches any digit)
 * Linters checked: csum (GS1 mod-10), zero, yymmd0 / yymmdd (dates), pieceoftotal. Others
 * (company-prefix positions, csumalpha, ...) are accepted unchecked: they need data (the GS1
 * company prefix list) Plateau does not have.
 *
 * URI: [scheme://host][/stem...]/PK/value[/Q/value...][?AI=value&name=value...]. The primary
 * key is the first path segment, counted from the left, that names a primary-key AI (or its
 * convenience alias, e.g. "gtin") and leaves an even number of segments. Qualifiers must be
 * allowed for the key and keep the order of one of its alternatives.
 */
#include "ident/digital_link.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMP_MAX 6
#define LINT_CSUM 0x01
#define LINT_ZERO 0x02
#define LINT_DATE 0x04  /* yymmdd */
#define LINT_DATE0 0x08 /* yymmd0: day 00 allowed */
#define LINT_PIECE 0x10

typedef struct comp {
  char cset; /* N X Y Z */
  uint16_t min, max;
  uint8_t optional;
  uint8_t linters;
} comp;

typedef struct entry {
  char ai[5];
  uint8_t dl_attr; /* '?' flag */
  uint8_t is_pkey;
  uint8_t ncomp;
  comp comps[COMP_MAX];
  char qualifiers[48]; /* dlpkey value */
  char req[96];        /* req= values joined by ' ' (each key one requirement) */
  char ex[96];
} entry;

struct dl_dict {
  entry *e;
  size_t n, cap;
};

/* ---- dictionary ---- */

static int add_entry(dl_dict *d, const entry *e) {
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 256;
    entry *g = realloc(d->e, cap * sizeof *g);
    if (!g)
      return PL_ENOMEM;
    d->e = g;
    d->cap = cap;
  }
  d->e[d->n++] = *e;
  return 0;
}

static int cmp_entry(const void *a, const void *b) {
  return strcmp(((const entry *)a)->ai, ((const entry *)b)->ai);
}

static const entry *find(const dl_dict *d, const char *ai) {
  entry key;
  snprintf(key.ai, sizeof key.ai, "%s", ai);
  return bsearch(&key, d->e, d->n, sizeof *d->e, cmp_entry);
}

static int parse_comp(const char *tok, size_t len, comp *c) {
  memset(c, 0, sizeof *c);
  char t[64];
  if (len >= sizeof t)
    return PL_EINVAL;
  memcpy(t, tok, len);
  t[len] = 0;
  char *s = t;
  if (*s == '[') {
    c->optional = 1;
    s++;
    char *close = strchr(s, ']');
    if (!close)
      return PL_EINVAL;
    *close = 0;
  }
  if (!strchr("NXYZ", *s) || !*s)
    return PL_EINVAL;
  c->cset = *s++;
  char *comma = strchr(s, ',');
  if (comma)
    *comma = 0;
  if (strncmp(s, "..", 2) == 0) {
    c->min = 1;
    c->max = (uint16_t)atoi(s + 2);
  } else {
    c->min = c->max = (uint16_t)atoi(s);
  }
  if (c->max == 0 || c->max > 99)
    return PL_EINVAL;
  while (comma) {
    char *lint = comma + 1;
    comma = strchr(lint, ',');
    if (comma)
      *comma = 0;
    if (!strcmp(lint, "csum"))
      c->linters |= LINT_CSUM;
    else if (!strcmp(lint, "zero"))
      c->linters |= LINT_ZERO;
    else if (!strcmp(lint, "yymmdd"))
      c->linters |= LINT_DATE;
    else if (!strcmp(lint, "yymmd0"))
      c->linters |= LINT_DATE0;
    else if (!strcmp(lint, "pieceoftotal"))
      c->linters |= LINT_PIECE;
  }
  return 0;
}

static int is_flag_token(const char *tok, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (isalnum((unsigned char)tok[i]) || tok[i] == '[')
      return 0;
  return 1;
}

static int parse_line(dl_dict *d, const char *line, size_t len) {
  /* Strip the title comment. */
  const char *hash = memchr(line, '#', len);
  if (hash)
    len = (size_t)(hash - line);
  const char *tok[32];
  size_t tlen[32];
  int nt = 0;
  for (size_t i = 0; i < len;) {
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
      i++;
    if (i >= len)
      break;
    size_t j = i;
    while (j < len && line[j] != ' ' && line[j] != '\t' && line[j] != '\r')
      j++;
    if (nt == 32)
      return PL_EINVAL;
    tok[nt] = line + i;
    tlen[nt++] = j - i;
    i = j;
  }
  if (nt == 0)
    return 0;
  if (nt < 2)
    return PL_EINVAL;
  /* AIs */
  char lo[8] = "", hi[8] = "";
  const char *dash = memchr(tok[0], '-', tlen[0]);
  size_t l1 = dash ? (size_t)(dash - tok[0]) : tlen[0];
  if (l1 < 2 || l1 > 4)
    return PL_EINVAL;
  memcpy(lo, tok[0], l1);
  if (dash) {
    size_t l2 = tlen[0] - l1 - 1;
    if (l2 != l1)
      return PL_EINVAL;
    memcpy(hi, dash + 1, l2);
  } else {
    memcpy(hi, lo, l1);
  }
  for (size_t i = 0; i < l1; i++)
    if (!isdigit((unsigned char)lo[i]) || !isdigit((unsigned char)hi[i]))
      return PL_EINVAL;
  entry e;
  memset(&e, 0, sizeof e);
  int t = 1;
  if (is_flag_token(tok[t], tlen[t])) {
    if (memchr(tok[t], '?', tlen[t]))
      e.dl_attr = 1;
    t++;
  }
  for (; t < nt; t++) {
    const char *s = tok[t];
    size_t n = tlen[t];
    if ((s[0] == '[' && n > 1 && strchr("NXYZ", s[1])) ||
        (strchr("NXYZ", s[0]) && n > 1 && (isdigit((unsigned char)s[1]) || s[1] == '.'))) {
      if (e.ncomp == COMP_MAX)
        return PL_EINVAL;
      if (parse_comp(s, n, &e.comps[e.ncomp++]) < 0)
        return PL_EINVAL;
    } else if (n >= 6 && strncmp(s, "dlpkey", 6) == 0) {
      e.is_pkey = 1;
      if (n > 7 && s[6] == '=') {
        if (n - 7 >= sizeof e.qualifiers)
          return PL_EINVAL;
        memcpy(e.qualifiers, s + 7, n - 7);
      }
    } else if (n > 4 && strncmp(s, "req=", 4) == 0) {
      size_t have = strlen(e.req);
      if (have + n - 4 + 2 >= sizeof e.req)
        return PL_EINVAL;
      if (have)
        e.req[have++] = ' ';
      memcpy(e.req + have, s + 4, n - 4);
    } else if (n > 3 && strncmp(s, "ex=", 3) == 0) {
      size_t have = strlen(e.ex);
      if (have + n - 3 + 2 >= sizeof e.ex)
        return PL_EINVAL;
      if (have)
        e.ex[have++] = ',';
      memcpy(e.ex + have, s + 3, n - 3);
    }
    /* other attributes are not needed for Digital Link */
  }
  if (e.ncomp == 0)
    return PL_EINVAL;
  long a = atol(lo), b = atol(hi);
  if (b < a || b - a > 1000)
    return PL_EINVAL;
  for (long v = a; v <= b; v++) {
    snprintf(e.ai, sizeof e.ai, "%0*ld", (int)l1, v);
    int rc = add_entry(d, &e);
    if (rc < 0)
      return rc;
  }
  return 0;
}

int dl_dict_parse(const char *text, size_t len, dl_dict **out, pl_err *err) {
  dl_dict *d = calloc(1, sizeof *d);
  if (!d)
    return pl_err_set(err, PL_ENOMEM, "out of memory");
  size_t lineno = 0;
  for (size_t i = 0; i < len;) {
    const char *nl = memchr(text + i, '\n', len - i);
    size_t end = nl ? (size_t)(nl - text) : len;
    lineno++;
    const char *line = text + i;
    size_t ll = end - i;
    size_t k = 0;
    while (k < ll && (line[k] == ' ' || line[k] == '\t'))
      k++;
    if (k < ll && line[k] != '#') {
      int rc = parse_line(d, line, ll);
      if (rc < 0) {
        dl_dict_free(d);
        return pl_err_set(err, rc, "syntax dictionary line %zu is malformed", lineno);
      }
    }
    i = end + 1;
  }
  if (d->n == 0) {
    dl_dict_free(d);
    return pl_err_set(err, PL_EINVAL, "the syntax dictionary has no entries");
  }
  qsort(d->e, d->n, sizeof *d->e, cmp_entry);
  *out = d;
  return 0;
}

void dl_dict_free(dl_dict *d) {
  if (!d)
    return;
  free(d->e);
  free(d);
}

size_t dl_dict_count(const dl_dict *d) {
  return d->n;
}

int dl_dict_is_primary(const dl_dict *d, const char *ai, const char **qualifiers) {
  const entry *e = find(d, ai);
  if (!e || !e->is_pkey)
    return 0;
  if (qualifiers)
    *qualifiers = e->qualifiers;
  return 1;
}

/* The built-in subset, written from the GS1 General Specifications in the dictionary's own
 * format: every primary key with its qualifiers, and the data attributes met on labels. */
static const char builtin_text[] =
    "00   *?  N18,csum,gcppos2               dlpkey\n"
    "01   *?  N14,csum,gcppos2               ex=255,37 dlpkey=22,10,21|235\n"
    "02   *?  N14,csum,gcppos2               ex=01,03 req=37\n"
    "10    ?  X..20                          req=01,02,03,8006,8026\n"
    "11   *?  N6,yymmd0                      req=01,02,03,8006,8026\n"
    "12   *?  N6,yymmd0                      req=8020\n"
    "13   *?  N6,yymmd0                      req=01,02,03,8006,8026\n"
    "15   *?  N6,yymmd0                      req=01,02,03,8006,8026\n"
    "16   *?  N6,yymmd0                      req=01,02,03,8006,8026\n"
    "17   *?  N6,yymmd0                      req=01,02,03,255,8006,8026\n"
    "20   *?  N2                             req=01,02,8006,8026\n"
    "21       X..20                          req=01,03,8006 ex=235\n"
    "22       X..20                          req=01\n"
    "235      X..28                          req=01\n"
    "240   ?  X..30                          req=01,02,8006,8026\n"
    "241   ?  X..30                          req=01,02,8006,8026\n"
    "242   ?  N..6                           req=01,02,8006,8026\n"
    "250   ?  X..30                          req=01,8006 req=21\n"
    "251   ?  X..30                          req=01,8006\n"
    "253   ?  N13,csum,gcppos1 [X..17]       dlpkey\n"
    "254      X..20                          req=414\n"
    "255   ?  N13,csum,gcppos1 [N..12]       dlpkey ex=01,02,415,8006,8020,8026\n"
    "30    ?  N..8                           req=01,02\n"
    "3100-3105 *? N6                         req=01,02\n"
    "3300-3305 *? N6                         req=00,01\n"
    "37    ?  N..8                           req=00 req=02,8026\n"
    "400   ?  X..30                          req=00\n"
    "401   ?  X..30,gcppos1                  dlpkey\n"
    "402   ?  N17,csum,gcppos1               dlpkey\n"
    "410  *?  N13,csum,gcppos1               \n"
    "414  *?  N13,csum,gcppos1               dlpkey=254|7040\n"
    "415  *?  N13,csum,gcppos1               req=8020 dlpkey=8020\n"
    "417  *?  N13,csum,gcppos1               dlpkey=7040\n"
    "422   ?  N3                             \n"
    "7003  ?  N10                            \n"
    "7040     N1 X1 X1 X1                    req=417,414,8004\n"
    "8003  ?  N1,zero N13,csum,gcppos1 [X..16] dlpkey\n"
    "8004  ?  X..30,gcppos1                  dlpkey=7040\n"
    "8006  ?  N14,csum,gcppos2 N4,pieceoftotal ex=01,37 dlpkey=22,10,21\n"
    "8010  ?  Y..30,gcppos1                  dlpkey=8011\n"
    "8011  ?  N..12                          req=8010\n"
    "8013  ?  X..25,csumalpha,gcppos1        dlpkey\n"
    "8017  ?  N18,csum,gcppos1               ex=8018 dlpkey=8019\n"
    "8018  ?  N18,csum,gcppos1               ex=8017 dlpkey=8019\n"
    "8019  ?  N..10                          req=8017,8018\n"
    "8020  ?  X..25                          req=415\n"
    "8200  ?  X..70                          req=01\n";

static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;
static dl_dict *builtin_dict; /* written once under pthread_once, read-only afterwards */

static void build_builtin(void) {
  if (dl_dict_parse(builtin_text, sizeof builtin_text - 1, &builtin_dict, NULL) < 0)
    builtin_dict = NULL;
}

const dl_dict *dl_dict_builtin(void) {
  pthread_once(&builtin_once, build_builtin);
  return builtin_dict;
}

/* ---- value validation ---- */

int dl_check_digit_ok(const char *digits, size_t n) {
  /* Weights 3,1,3,1... from the right of the data digits (excluding the check digit). */
  int sum = 0;
  for (size_t i = 0; i < n; i++) {
    int dgt = digits[n - 1 - i] - '0';
    sum += (i % 2 == 0) ? dgt * 3 : dgt;
  }
  return (10 - sum % 10) % 10 == digits[n] - '0';
}

static int in_cset(char cset, unsigned char ch) {
  switch (cset) {
  case 'N': return ch >= '0' && ch <= '9';
  case 'X': /* GS1 AI encodable character set 82 */
    return isalnum(ch) || (ch && strchr("!\"%&'()*+,-./:;<=>?_", ch));
  case 'Y': /* character set 39 */
    return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || ch == '#' || ch == '-' ||
           ch == '/';
  case 'Z': return isalnum(ch) || ch == '-' || ch == '_' || ch == '=';
  default: return 0;
  }
}

static int valid_date(const char *s, int day0) {
  int mm = (s[2] - '0') * 10 + (s[3] - '0');
  int dd = (s[4] - '0') * 10 + (s[5] - '0');
  if (mm < 1 || mm > 12)
    return 0;
  if (dd == 0)
    return day0;
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (dd > mdays[mm - 1])
    return 0;
  if (mm == 2 && dd == 29) {
    int yy = (s[0] - '0') * 10 + (s[1] - '0');
    if (yy % 4 != 0)
      return 0; /* two-digit years: 2000 is a leap year, 2100 out of range */
  }
  return 1;
}

int dl_validate_ai(const dl_dict *d, const char *ai, const char *value, size_t len, pl_err *err) {
  const entry *e = find(d, ai);
  if (!e)
    return pl_err_set(err, PL_ENOTFOUND, "(%s) is not a GS1 Application Identifier", ai);
  size_t pos = 0;
  for (int i = 0; i < e->ncomp; i++) {
    const comp *c = &e->comps[i];
    if (pos == len && c->optional)
      break;
    size_t left = len - pos;
    size_t take = c->min == c->max ? c->min : (left < c->max ? left : c->max);
    if (c->min == c->max && left < c->min)
      return pl_err_set(err, PL_EINVAL, "(%s) value \"%.40s\" is too short: %u characters expected",
                        ai, value, (unsigned)(pos + c->min));
    if (take < c->min || take == 0)
      return pl_err_set(err, PL_EINVAL, "(%s) value is too short", ai);
    const char *s = value + pos;
    for (size_t k = 0; k < take; k++)
      if (!in_cset(c->cset, (unsigned char)s[k]))
        return pl_err_set(err, PL_EINVAL, "(%s) value \"%.40s\" has a character not allowed here",
                          ai, value);
    if ((c->linters & LINT_CSUM) && !dl_check_digit_ok(s, take - 1))
      return pl_err_set(err, PL_EINVAL, "(%s) value \"%.40s\" has a wrong check digit", ai, value);
    if ((c->linters & LINT_ZERO) && s[0] != '0')
      return pl_err_set(err, PL_EINVAL, "(%s) value must start with 0", ai);
    if ((c->linters & (LINT_DATE | LINT_DATE0)) &&
        (take != 6 || !valid_date(s, (c->linters & LINT_DATE0) != 0)))
      return pl_err_set(err, PL_EINVAL, "(%s) value \"%.40s\" is not a valid YYMMDD date", ai,
                        value);
    if ((c->linters & LINT_PIECE) && take % 2 == 0) {
      int piece = atoi((char[8]){s[0], s[1], 0}), total = atoi((char[8]){s[2], s[3], 0});
      if (take == 4 && (piece == 0 || total == 0 || piece > total))
        return pl_err_set(err, PL_EINVAL, "(%s) piece number must be between 1 and the total", ai);
    }
    pos += take;
  }
  if (pos != len)
    return pl_err_set(err, PL_EINVAL, "(%s) value \"%.40s\" is too long", ai, value);
  return 0;
}

/* ---- URI ---- */

static const struct {
  const char *alias, *ai;
} aliases[] = {{"gtin", "01"},   {"sscc", "00"},   {"gln", "414"},    {"grai", "8003"},
               {"giai", "8004"}, {"gsrn", "8018"}, {"gsrnp", "8017"}, {"gdti", "253"},
               {"gcn", "255"},   {"ginc", "401"},  {"gsin", "402"},   {"itip", "8006"},
               {"cpid", "8010"}, {"gmn", "8013"},  {"lot", "10"},     {"ser", "21"},
               {"cpv", "22"},    {"glnx", "254"},  {"srin", "8019"},  {"cpsn", "8011"},
               {"exp", "17"},    {"tpx", "235"},   {"party", "417"},  {"payto", "415"}};

/* The AI named by a path or query name: digits, or an alias. */
static const char *ai_of(const char *name, size_t n, char out[5]) {
  if (n >= 2 && n <= 4) {
    size_t i = 0;
    while (i < n && isdigit((unsigned char)name[i]))
      i++;
    if (i == n) {
      memcpy(out, name, n);
      out[n] = 0;
      return out;
    }
  }
  for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
    if (strlen(aliases[i].alias) == n && memcmp(aliases[i].alias, name, n) == 0)
      return aliases[i].ai;
  return NULL;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Percent-decodes src[0..n) into the URI's buffer; returns the decoded string or NULL. */
static const char *decode_into(dl_uri *u, size_t *used, const char *src, size_t n, size_t *outlen,
                               int plus_space) {
  char *o = u->buf + *used;
  size_t room = sizeof u->buf - *used;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    char c = src[i];
    if (c == '%') {
      if (n - i < 3)
        return NULL;
      int hi = hexval(src[i + 1]), lo = hexval(src[i + 2]);
      if (hi < 0 || lo < 0)
        return NULL;
      c = (char)(hi << 4 | lo);
      if (c == 0)
        return NULL;
      i += 2;
    } else if (c == '+' && plus_space) {
      c = ' ';
    }
    if (k + 1 >= room)
      return NULL;
    o[k++] = c;
  }
  o[k] = 0;
  *used += k + 1;
  *outlen = k;
  return o;
}

/* Whether ai matches a pattern like "310n". */
static int ai_match(const char *pat, size_t plen, const char *ai) {
  if (strlen(ai) != plen)
    return 0;
  for (size_t i = 0; i < plen; i++)
    if (pat[i] != 'n' && pat[i] != ai[i])
      return 0;
  return 1;
}

static const dl_element *all_elements(const dl_uri *u, int i) {
  if (i == 0)
    return &u->key;
  i--;
  if (i < u->nqual)
    return &u->qual[i];
  i -= u->nqual;
  return i < u->nattr ? &u->attr[i] : NULL;
}

static int present(const dl_uri *u, const char *pat, size_t plen) {
  const dl_element *el;
  for (int i = 0; (el = all_elements(u, i)); i++)
    if (ai_match(pat, plen, el->ai))
      return 1;
  return 0;
}

/* req= and ex= over all the URI's elements. */
static int check_pairings(const dl_dict *d, const dl_uri *u, pl_err *err) {
  const dl_element *el;
  for (int i = 0; (el = all_elements(u, i)); i++) {
    const entry *e = find(d, el->ai);
    if (!e)
      continue;
    /* ex: a comma list of patterns. */
    for (const char *p = e->ex; *p;) {
      size_t n = strcspn(p, ",");
      if (n && !ai_match(p, n, el->ai) && present(u, p, n))
        return pl_err_set(err, PL_EINVAL, "(%s) may not be used together with (%.*s)", el->ai,
                          (int)n, p);
      p += n + (p[n] == ',');
    }
    /* req: space-separated requirements, each a comma list of '+'-joined groups. */
    for (const char *r = e->req; *r;) {
      size_t rn = strcspn(r, " ");
      int satisfied = 0;
      for (size_t gs = 0; gs < rn && !satisfied;) {
        size_t gn = strcspn(r + gs, ",");
        if (gs + gn > rn)
          gn = rn - gs;
        int all = 1;
        for (size_t k = gs; k < gs + gn;) {
          size_t an = strcspn(r + k, "+,");
          if (k + an > gs + gn)
            an = gs + gn - k;
          if (!present(u, r + k, an))
            all = 0;
          k += an + 1;
        }
        satisfied = all && gn > 0;
        gs += gn + 1;
      }
      if (!satisfied)
        return pl_err_set(err, PL_EINVAL, "(%s) needs one of (%.*s) with it", el->ai, (int)rn, r);
      r += rn + (r[rn] == ' ');
    }
  }
  return 0;
}

/* Whether quals fit one alternative of the key's qualifier list, in order. */
static int qualifiers_ok(const char *alts, const dl_uri *u) {
  if (u->nqual == 0)
    return 1;
  for (const char *a = alts; *a;) {
    size_t an = strcspn(a, "|");
    int qi = 0;
    for (size_t k = 0; k < an && qi < u->nqual;) {
      size_t n = strcspn(a + k, ",|");
      if (strlen(u->qual[qi].ai) == n && memcmp(a + k, u->qual[qi].ai, n) == 0)
        qi++;
      k += n + 1;
    }
    if (qi == u->nqual)
      return 1;
    a += an + (a[an] == '|');
  }
  return 0;
}

int dl_parse(const dl_dict *d, const char *uri, size_t len, dl_uri *out, pl_err *err) {
  if (!d)
    return pl_err_set(err, PL_EINVAL, "no syntax dictionary");
  if (len > DL_URI_MAX)
    return pl_err_set(err, PL_EINVAL, "the URI is longer than %d bytes", DL_URI_MAX);
  dl_uri *u = out;
  memset(u, 0, offsetof(dl_uri, buf));
  size_t used = 0;
  const char *p = uri, *end = uri + len;
  for (const char *q = uri; q < end; q++)
    if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
      return pl_err_set(err, PL_EINVAL, "the URI contains a space, control or non-ASCII character");
  /* scheme and authority */
  const char *colon = memchr(p, ':', (size_t)(end - p));
  if (colon && colon + 2 < end && colon[1] == '/' && colon[2] == '/') {
    for (const char *s = p; s < colon; s++)
      if (!isalpha((unsigned char)*s))
        return pl_err_set(err, PL_EINVAL, "malformed URI scheme");
    p = colon + 3;
    while (p < end && *p != '/' && *p != '?' && *p != '#')
      p++;
  }
  const char *hash = memchr(p, '#', (size_t)(end - p));
  if (hash)
    end = hash;
  const char *qmark = memchr(p, '?', (size_t)(end - p));
  const char *path_end = qmark ? qmark : end;
  if (p >= path_end || *p != '/')
    return pl_err_set(err, PL_EINVAL, "the URI has no path");
  /* segments */
  const char *seg[2 * (DL_QUALIFIERS_MAX + 1) + 16];
  size_t seglen[sizeof seg / sizeof seg[0]];
  int nseg = 0;
  for (const char *s = p; s < path_end;) {
    s++; /* the '/' */
    const char *e = memchr(s, '/', (size_t)(path_end - s));
    if (!e)
      e = path_end;
    if (e == s) {
      if (e == path_end)
        break; /* a trailing slash */
      return pl_err_set(err, PL_EINVAL, "the path has an empty segment");
    }
    if (nseg == (int)(sizeof seg / sizeof seg[0]))
      return pl_err_set(err, PL_EINVAL, "the path has too many segments");
    seg[nseg] = s;
    seglen[nseg++] = (size_t)(e - s);
    s = e;
  }
  int k = -1;
  char aibuf[5];
  for (int i = 0; i + 1 < nseg; i++) {
    if ((nseg - i) % 2)
      continue;
    const char *ai = ai_of(seg[i], seglen[i], aibuf);
    if (ai && dl_dict_is_primary(d, ai, NULL)) {
      k = i;
      break;
    }
  }
  if (k < 0)
    return pl_err_set(err, PL_ENOTFOUND,
                      "the path holds no GS1 primary key (such as /01/ for a GTIN)");
  u->stem_len = (size_t)(seg[k] - 1 - p);
  if ((nseg - k) / 2 - 1 > DL_QUALIFIERS_MAX)
    return pl_err_set(err, PL_EINVAL, "too many key qualifiers");
  for (int i = k; i < nseg; i += 2) {
    const char *ai = ai_of(seg[i], seglen[i], aibuf);
    if (!ai)
      return pl_err_set(err, PL_EINVAL, "path segment \"%.*s\" is not an AI",
                        (int)(seglen[i] > 20 ? 20 : seglen[i]), seg[i]);
    dl_element *el = i == k ? &u->key : &u->qual[u->nqual++];
    snprintf(el->ai, sizeof el->ai, "%s", ai);
    el->value = decode_into(u, &used, seg[i + 1], seglen[i + 1], &el->len, 0);
    if (!el->value || el->len == 0)
      return pl_err_set(err, PL_EINVAL, "(%s) has a malformed value", ai);
  }
  /* GTIN-8, -12 and -13 are written as GTIN-14 with leading zeros. */
  if (!strcmp(u->key.ai, "01") && (u->key.len == 8 || u->key.len == 12 || u->key.len == 13)) {
    size_t pad = 14 - u->key.len;
    if (used + 15 > sizeof u->buf)
      return pl_err_set(err, PL_EINVAL, "the URI is too long");
    char *o = u->buf + used;
    memset(o, '0', pad);
    memcpy(o + pad, u->key.value, u->key.len);
    o[14] = 0;
    u->key.value = o;
    u->key.len = 14;
    used += 15;
  }
  int rc;
  if ((rc = dl_validate_ai(d, u->key.ai, u->key.value, u->key.len, err)) < 0)
    return rc == PL_ENOTFOUND ? PL_EINVAL : rc;
  const char *alts = "";
  dl_dict_is_primary(d, u->key.ai, &alts);
  for (int i = 0; i < u->nqual; i++) {
    if ((rc = dl_validate_ai(d, u->qual[i].ai, u->qual[i].value, u->qual[i].len, err)) < 0)
      return rc == PL_ENOTFOUND ? PL_EINVAL : rc;
  }
  if (!qualifiers_ok(alts, u))
    return pl_err_set(err, PL_EINVAL,
                      "the qualifiers of (%s) are not allowed or out of order (allowed: %s)",
                      u->key.ai, *alts ? alts : "none");
  /* query */
  if (qmark) {
    for (const char *s = qmark + 1; s < end;) {
      const char *amp = memchr(s, '&', (size_t)(end - s));
      const char *e = amp ? amp : end;
      if (e > s) {
        const char *eq = memchr(s, '=', (size_t)(e - s));
        const char *nend = eq ? eq : e;
        size_t nlen;
        const char *name = decode_into(u, &used, s, (size_t)(nend - s), &nlen, 1);
        size_t vlen = 0;
        const char *value = eq ? decode_into(u, &used, eq + 1, (size_t)(e - eq - 1), &vlen, 1)
                               : decode_into(u, &used, "", 0, &vlen, 0);
        if (!name || !value)
          return pl_err_set(err, PL_EINVAL, "malformed query string");
        int numeric = nlen >= 2 && nlen <= 4 && strspn(name, "0123456789") == nlen;
        if (numeric) {
          const entry *en = find(d, name);
          if (!en)
            return pl_err_set(err, PL_EINVAL,
                              "(%s) in the query is not a GS1 Application Identifier", name);
          if (!en->dl_attr || en->is_pkey)
            return pl_err_set(err, PL_EINVAL,
                              "(%s) is not allowed as a Digital Link data attribute", name);
          if (u->nattr == DL_ATTRS_MAX)
            return pl_err_set(err, PL_EINVAL, "too many data attributes");
          if ((rc = dl_validate_ai(d, name, value, vlen, err)) < 0)
            return rc;
          dl_element *el = &u->attr[u->nattr++];
          snprintf(el->ai, sizeof el->ai, "%s", name);
          el->value = value;
          el->len = vlen;
        } else if (u->nparams < DL_PARAMS_MAX) {
          u->params[u->nparams].name = name;
          u->params[u->nparams++].value = value;
        }
      }
      s = e + 1;
    }
  }
  /* No AI twice. */
  const dl_element *a, *b;
  for (int i = 0; (a = all_elements(u, i)); i++)
    for (int j = i + 1; (b = all_elements(u, j)); j++)
      if (!strcmp(a->ai, b->ai))
        return pl_err_set(err, PL_EINVAL, "(%s) appears twice", a->ai);
  return check_pairings(d, u, err);
}

static int put_encoded(char *out, size_t outsz, size_t *o, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      if (*o + 1 >= outsz)
        return PL_ELIMIT;
      out[(*o)++] = (char)c;
    } else {
      if (*o + 3 >= outsz)
        return PL_ELIMIT;
      out[(*o)++] = '%';
      out[(*o)++] = hex[c >> 4];
      out[(*o)++] = hex[c & 15];
    }
  }
  return 0;
}

int dl_key_path(const dl_uri *u, int nqual, char *out, size_t outsz) {
  size_t o = 0;
  if (nqual > u->nqual)
    nqual = u->nqual;
  for (int i = -1; i < nqual; i++) {
    const dl_element *el = i < 0 ? &u->key : &u->qual[i];
    int n = snprintf(out + o, outsz - o, "/%s/", el->ai);
    if (n < 0 || (size_t)n >= outsz - o)
      return PL_ELIMIT;
    o += (size_t)n;
    if (put_encoded(out, outsz, &o, el->value, el->len) < 0)
      return PL_ELIMIT;
  }
  out[o] = 0;
  return (int)o;
}

int dl_element_string(const dl_uri *u, char *out, size_t outsz) {
  size_t o = 0;
  for (int i = -1; i < u->nqual; i++) {
    const dl_element *el = i < 0 ? &u->key : &u->qual[i];
    int n = snprintf(out + o, outsz - o, "(%s)%s", el->ai, el->value);
    if (n < 0 || (size_t)n >= outsz - o)
      return PL_ELIMIT;
    o += (size_t)n;
  }
  return (int)o;
}

const char *dl_param_get(const dl_uri *u, const char *name) {
  for (int i = 0; i < u->nparams; i++)
    if (!strcmp(u->params[i].name, name))
      return u->params[i].value;
  return NULL;
}
