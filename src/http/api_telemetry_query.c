/* Telemetry, the read side: the native time-series API's queries over the tsdb engine
 * (src/tsdb/tsdb.h), and deletes, which select series the same way. Writes are api_telemetry.c's.
 *
 *   GET    /api/v1/series                find series groups by measurement, tags, tag regexes, field
 *   GET    /api/v1/query                 raw points or time-bucketed aggregates, as JSON or CSV
 *   GET    /api/v1/devices/{id}/latest   the newest value of every field of a device
 *   DELETE /api/v1/series                delete whole series or a time range of them (audited)
 *
 * Every request acts on one tenant (http_tenant). Deletes are audited. The engine's callbacks
 * (tsdb_groups, tsdb_latest) run under its read lock, so they only copy what they need and never
 * call back into the engine.
 *
 * Query responses can hold up to QUERY_POINTS_MAX points, so they are written straight into the
 * response buffer (JSON or RFC 4180 CSV) rather than built as a jansson tree.
 */
#include "http/http_int.h"

#include "base/clock.h"
#include "base/utf8.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define QUERY_SERIES_MAX 1000
#define QUERY_POINTS_MAX 1000000
#define QUERY_OUT_BYTES_MAX ((size_t)256 << 20)  /* one response body */
#define QUERY_ARENA_BYTES_MAX ((size_t)64 << 20) /* names and tags of the selected series */
#define SEL_TAGS_MAX 32
#define SEL_FIELDS_MAX 64
#define REGEX_BYTES_MAX 256
#define AGG_COLUMNS_MAX 16
#define AGG_PERCENTILES_MAX 8
#define NS_PER_MS 1000000LL
#define NS_PER_HOUR (3600LL * 1000000000LL)

static const char CSV_CONTENT_TYPE[] = "text/csv; charset=utf-8";

/* ---- small helpers ---- */

/* ---- an output writer over a pl_buf that remembers its first error ---- */

typedef struct out {
  pl_buf *b;
  int rc;
} out;

static void o_raw(out *o, const void *s, size_t n) {
  if (!o->rc && n) o->rc = pl_buf_append(o->b, s, n);
}

static void o_str(out *o, const char *s) {
  o_raw(o, s, strlen(s));
}

static void o_byte(out *o, char c) {
  if (!o->rc) o->rc = pl_buf_append_byte(o->b, (uint8_t)c);
}

/* A JSON string. Bytes that are not valid UTF-8 (which the engine may hold in string values
 * written by other protocols) become U+FFFD, so the document stays valid JSON. */
static void o_json_str(out *o, const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0, run = 0;
  o_byte(o, '"');
  while (i < len) {
    unsigned c = p[i];
    size_t n = c < 0x80 ? 1 : pl_utf8_decode(p + i, len - i, NULL);
    if (n && c >= 0x20 && c != '"' && c != '\\') {
      i += n;
      continue;
    }
    o_raw(o, s + run, i - run);
    char esc[8];
    if (!n) o_str(o, "\\ufffd");
    else if (c == '"') o_str(o, "\\\"");
    else if (c == '\\') o_str(o, "\\\\");
    else if (c == '\n') o_str(o, "\\n");
    else if (c == '\r') o_str(o, "\\r");
    else if (c == '\t') o_str(o, "\\t");
    else {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      o_str(o, esc);
    }
    run = ++i;
  }
  o_raw(o, s + run, len - run);
  o_byte(o, '"');
}

/* The shortest of %.15g and %.17g that reads back as v, with ".0" added to whole numbers so a
 * float field always prints as a float. v must be finite. */
static const char *fmt_double(double v, char buf[48]) {
  snprintf(buf, 48, "%.15g", v);
  if (strtod(buf, NULL) != v) snprintf(buf, 48, "%.17g", v);
  if (!strpbrk(buf, ".eE")) strcat(buf, ".0");
  return buf;
}

/* A float as JSON: NaN and infinities have no JSON form and print as null. */
static void o_json_double(out *o, double v) {
  char buf[48];
  o_str(o, isfinite(v) ? fmt_double(v, buf) : "null");
}

/* A float as a CSV cell: NaN and infinities as the words spreadsheets show for them. */
static void o_csv_double(out *o, double v) {
  char buf[48];
  if (isnan(v)) o_str(o, "NaN");
  else if (isinf(v)) o_str(o, v > 0 ? "Infinity" : "-Infinity");
  else o_str(o, fmt_double(v, buf));
}

static void o_int(out *o, long long v) {
  char buf[24];
  snprintf(buf, sizeof buf, "%lld", v);
  o_str(o, buf);
}

/* A time: RFC 3339 (quoted for JSON when quote is set), or an integer count of epoch_div ns
 * units since the epoch, rounded down. */
static void o_time(out *o, int64_t ns, int64_t epoch_div, int quote) {
  if (epoch_div) {
    int64_t q = ns / epoch_div;
    if (ns % epoch_div < 0) q--;
    o_int(o, (long long)q);
    return;
  }
  char buf[48];
  pl_time_format(ns, buf, sizeof buf);
  if (quote) o_byte(o, '"');
  o_str(o, buf);
  if (quote) o_byte(o, '"');
}

/* A text cell of CSV (RFC 4180): quoted when it holds a comma, quote, CR or LF, with quotes
 * doubled. A cell that a spreadsheet would run as a formula (starting with = + - @ TAB or CR) gets
 * a leading apostrophe, the usual guard against CSV injection: device-supplied strings end up in
 * spreadsheets. Invalid UTF-8 becomes U+FFFD. */
static void o_csv_text(out *o, const char *s, size_t len) {
  if (len == 0) return; /* an empty cell (s may be NULL then) */
  const unsigned char *p = (const unsigned char *)s;
  int quote = 0, guard = len && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' ||
                                s[0] == '\r');
  for (size_t i = 0; i < len && !quote; i++) quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
  if (quote) o_byte(o, '"');
  if (guard) o_byte(o, '\'');
  size_t i = 0, run = 0;
  while (i < len) {
    size_t n = pl_utf8_decode(p + i, len - i, NULL);
    if (n && s[i] != '"') {
      i += n;
      continue;
    }
    o_raw(o, s + run, i - run);
    o_str(o, n ? "\"\"" : "\xef\xbf\xbd");
    run = ++i;
  }
  o_raw(o, s + run, len - run);
  if (quote) o_byte(o, '"');
}

/* ---- time parameters ---- */

/* A point in time from a query parameter: RFC 3339, "now", "-<duration>" or "now-<duration>"
 * (before now), or an integer count of milliseconds since the epoch. */
static int parse_when(const char *s, int64_t now_ns, int64_t *out_ns) {
  if (strcmp(s, "now") == 0) {
    *out_ns = now_ns;
    return 0;
  }
  const char *rel = s[0] == '-' ? s + 1 : strncmp(s, "now-", 4) == 0 ? s + 4 : NULL;
  if (rel) {
    int64_t d;
    if (pl_duration_parse(rel, &d) < 0) return PL_EINVAL;
    /* now_ns is positive, so now_ns - d cannot overflow for any d >= 0. */
    *out_ns = now_ns - d;
    return 0;
  }
  size_t nd = strspn(s, "0123456789");
  if (nd && !s[nd]) {
    long long ms = nd <= 18 ? strtoll(s, NULL, 10) : -1;
    if (ms < 0 || ms > INT64_MAX / NS_PER_MS) return PL_EINVAL;
    *out_ns = ms * NS_PER_MS;
    return 0;
  }
  if (pl_time_parse(s, out_ns) == 0) return 0;
  /* An unencoded "+08:00" arrives as " 08:00" (form encoding turns + into a space); a space can
   * stand nowhere else in such a time, so read it as the + that was meant. */
  size_t len = strlen(s);
  char fixed[64];
  if (len < 6 || len >= sizeof fixed || s[len - 6] != ' ') return PL_EINVAL;
  memcpy(fixed, s, len + 1);
  fixed[len - 6] = '+';
  return pl_time_parse(fixed, out_ns);
}

/* A signed duration ("-5m" allowed) for offset=. */
static int parse_signed_duration(const char *s, int64_t *ns) {
  int neg = s[0] == '-';
  int rc = pl_duration_parse(s + neg, ns);
  if (rc == 0 && neg) *ns = -*ns;
  return rc;
}

/* ---- query parameters and series selection ---- */

enum {
  P_MEASUREMENT,
  P_DEVICE,
  P_START,
  P_END,
  P_ORDER,
  P_LIMIT,
  P_AFTER,
  P_AGG,
  P_EVERY,
  P_OFFSET,
  P_FILL,
  P_FORMAT,
  P_EPOCH,
  P_TENANT,
  P_NAMED
};
static const char *const param_names[P_NAMED] = {"measurement", "device", "start", "end",    "order",
                                                 "limit",       "after",  "agg",   "every",  "offset",
                                                 "fill",        "format", "epoch", "tenant"};
#define PM(p) (1u << (p))
#define PM_FIELD (1u << P_NAMED)
#define PM_TAGS (1u << (P_NAMED + 1))
#define PM_SELECT (PM(P_MEASUREMENT) | PM(P_DEVICE) | PM_TAGS | PM(P_TENANT))

/* One tag condition: equality (an empty value means "the tag is absent", as in InfluxDB) or an
 * unanchored POSIX extended regular expression. Strings are borrowed from the request. */
typedef struct sel_tag {
  const char *key;
  size_t key_len;
  const char *value; /* equality; NULL for a regex */
  size_t value_len;
  regex_t re;
  int is_regex;
} sel_tag;

typedef struct params {
  unsigned allowed;
  const char *v[P_NAMED]; /* single-valued parameters, borrowed from the request */
  sel_tag tags[SEL_TAGS_MAX];
  size_t ntags;
  tsdb_str fields[SEL_FIELDS_MAX]; /* field=, repeatable and comma-separated */
  size_t nfields;
  const char *measurement; /* measurement=, or "device" for device= */
  char detail[400];        /* the selection as text, for the audit record */
  size_t detail_len;
  int bad;
  char msg[320];
} params;

static enum MHD_Result param_bad(params *p, const char *fmt, const char *a, const char *b) {
  p->bad = 1;
  snprintf(p->msg, sizeof p->msg, fmt, a, b);
  return MHD_NO;
}

static int has_backreference(const char *re) {
  for (const char *s = re; *s; s++)
    if (*s == '\\' && s[1]) {
      if (s[1] >= '1' && s[1] <= '9') return 1;
      s++;
    }
  return 0;
}

static enum MHD_Result add_tag_param(params *p, const char *key, const char *value, int is_regex) {
  const char *k = key + (is_regex ? 10 : 4);
  size_t klen = strlen(k), vlen = strlen(value);
  if (!klen || klen > TSDB_NAME_BYTES_MAX)
    return param_bad(p, "%s: a tag key has 1 to 256 bytes%s", key, "");
  if (p->ntags == SEL_TAGS_MAX) return param_bad(p, "at most 32 tag conditions per request%s%s", "", "");
  sel_tag *t = &p->tags[p->ntags];
  memset(t, 0, sizeof *t);
  t->key = k;
  t->key_len = klen;
  if (!is_regex) {
    if (vlen > TSDB_NAME_BYTES_MAX) return param_bad(p, "%s: a tag value has at most 256 bytes%s", key, "");
    t->value = value;
    t->value_len = vlen;
    p->ntags++;
    return MHD_YES;
  }
  if (!vlen || vlen > REGEX_BYTES_MAX)
    return param_bad(p, "%s: a regular expression has 1 to 256 bytes%s", key, "");
  if (has_backreference(value))
    return param_bad(p, "%s: back-references (\\1 to \\9) are not supported in regular expressions%s", key, "");
  int rc = regcomp(&t->re, value, REG_EXTENDED | REG_NOSUB);
  if (rc != 0) {
    char why[128];
    regerror(rc, &t->re, why, sizeof why);
    return param_bad(p, "%s: not a POSIX extended regular expression: %s", key, why);
  }
  t->is_regex = 1;
  p->ntags++;
  return MHD_YES;
}

static enum MHD_Result add_field_param(params *p, const char *value) {
  const char *s = value;
  for (;;) {
    size_t n = strcspn(s, ",");
    if (!n || n > TSDB_NAME_BYTES_MAX)
      return param_bad(p, "field: a field name has 1 to 256 bytes (got \"%.64s\")%s", value, "");
    if (p->nfields == SEL_FIELDS_MAX) return param_bad(p, "at most 64 fields per request%s%s", "", "");
    p->fields[p->nfields++] = (tsdb_str){s, n};
    if (!s[n]) return MHD_YES;
    s += n + 1;
  }
}

static enum MHD_Result param_cb(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
  params *p = cls;
  (void)kind;
  if (!key) return MHD_YES;
  if (!value) value = "";
  if (strcmp(key, "tenant") != 0 && p->detail_len < sizeof p->detail - 1) {
    int n = snprintf(p->detail + p->detail_len, sizeof p->detail - p->detail_len, "%s%s=%s",
                     p->detail_len ? " " : "", key, value);
    p->detail_len += n > 0 ? (size_t)n : 0;
    if (p->detail_len >= sizeof p->detail) p->detail_len = sizeof p->detail - 1;
  }
  int is_regex = strncmp(key, "tag_regex.", 10) == 0;
  if (is_regex || strncmp(key, "tag.", 4) == 0) {
    if (!(p->allowed & PM_TAGS)) return param_bad(p, "unknown query parameter \"%.64s\"%s", key, "");
    return add_tag_param(p, key, value, is_regex);
  }
  if (strcmp(key, "field") == 0) {
    if (!(p->allowed & PM_FIELD)) return param_bad(p, "unknown query parameter \"%.64s\"%s", key, "");
    return add_field_param(p, value);
  }
  for (int i = 0; i < P_NAMED; i++) {
    if (strcmp(key, param_names[i]) != 0) continue;
    if (!(p->allowed & PM(i))) break;
    if (p->v[i]) return param_bad(p, "query parameter \"%s\" is given more than once%s", key, "");
    p->v[i] = value;
    return MHD_YES;
  }
  return param_bad(p, "unknown query parameter \"%.64s\"%s", key, "");
}

static void params_free(params *p) {
  for (size_t i = 0; i < p->ntags; i++)
    if (p->tags[i].is_regex) regfree(&p->tags[i].re);
  p->ntags = 0;
}

/* Reads the query string against the allowed parameters. Returns 0, or PL_EINVAL with p->msg;
 * params_free must be called either way. */
static int params_parse(http_req *r, unsigned allowed, params *p) {
  memset(p, 0, sizeof *p);
  p->allowed = allowed;
  MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, param_cb, p);
  if (p->bad) return PL_EINVAL;
  const char *m = p->v[P_MEASUREMENT], *dev = p->v[P_DEVICE];
  if (m && (!*m || strlen(m) > TSDB_NAME_BYTES_MAX)) {
    snprintf(p->msg, sizeof p->msg, "measurement: a measurement name has 1 to 256 bytes");
    return PL_EINVAL;
  }
  p->measurement = m;
  if (dev) {
    if (!*dev || strlen(dev) > HTTP_DEVICE_NAME_BYTES_MAX) {
      snprintf(p->msg, sizeof p->msg, "device: a device name has 1 to 127 bytes");
      return PL_EINVAL;
    }
    if (m && strcmp(m, "device") != 0) {
      snprintf(p->msg, sizeof p->msg,
               "device= selects measurement \"device\"; it cannot be combined with measurement=%.64s", m);
      return PL_EINVAL;
    }
    if (p->ntags == SEL_TAGS_MAX) {
      snprintf(p->msg, sizeof p->msg, "at most 31 tag conditions with device=");
      return PL_EINVAL;
    }
    sel_tag *t = &p->tags[p->ntags++];
    memset(t, 0, sizeof *t);
    t->key = "device";
    t->key_len = 6;
    t->value = dev;
    t->value_len = strlen(dev);
    p->measurement = "device";
  }
  return 0;
}

static tsdb_str sel_measurement(const params *p) {
  tsdb_str m = {p->measurement, p->measurement ? strlen(p->measurement) : 0};
  return m;
}

static int str_eq(tsdb_str a, const char *b, size_t blen) {
  return a.len == blen && memcmp(a.p, b, blen) == 0;
}

static const tsdb_tag *group_tag(const tsdb_group_info *g, const char *key, size_t klen) {
  for (size_t i = 0; i < g->ntags; i++)
    if (str_eq(g->tags[i].key, key, klen)) return &g->tags[i];
  return NULL;
}

static int field_selected(const params *p, tsdb_str name) {
  if (!p->nfields) return 1;
  for (size_t i = 0; i < p->nfields; i++)
    if (str_eq(name, p->fields[i].p, p->fields[i].len)) return 1;
  return 0;
}

/* Whether a group satisfies every tag condition and has a selected field. Runs under the
 * engine's read lock: no allocation, no engine calls. */
static int group_matches(const params *p, const tsdb_group_info *g) {
  for (size_t i = 0; i < p->ntags; i++) {
    const sel_tag *c = &p->tags[i];
    const tsdb_tag *t = group_tag(g, c->key, c->key_len);
    if (!c->is_regex) {
      if (c->value_len == 0 ? t != NULL : !t || !str_eq(t->value, c->value, c->value_len)) return 0;
      continue;
    }
    char value[TSDB_NAME_BYTES_MAX + 1];
    size_t n = t ? t->value.len : 0;
    if (n > TSDB_NAME_BYTES_MAX) n = TSDB_NAME_BYTES_MAX;
    if (n) memcpy(value, t->value.p, n);
    value[n] = 0;
    if (regexec(&c->re, value, 0, NULL, 0) != 0) return 0;
  }
  if (!p->nfields) return 1;
  for (size_t f = 0; f < g->nfields; f++)
    if (field_selected(p, g->field_names[f])) return 1;
  return 0;
}

static const char *type_name(tsdb_type t) {
  switch (t) {
  case TSDB_FLOAT: return "float";
  case TSDB_INT: return "int";
  case TSDB_BOOL: return "bool";
  case TSDB_STRING: return "string";
  }
  return "unknown";
}

static json_t *ns_time_json(int64_t ns) {
  char buf[48];
  return json_string(pl_time_format(ns, buf, sizeof buf));
}

/* A string for jansson, which refuses invalid UTF-8: such bytes become U+FFFD. */
static json_t *str_json(const char *s, size_t len) {
  json_t *v = json_stringn(s, len);
  if (v) return v;
  pl_buf b;
  pl_buf_init(&b, 0);
  out o = {&b, 0};
  size_t i = 0;
  while (i < len) {
    size_t n = pl_utf8_decode((const unsigned char *)s + i, len - i, NULL);
    if (n && s[i]) o_raw(&o, s + i, n);
    else o_str(&o, "\xef\xbf\xbd");
    i += n ? n : 1;
  }
  v = o.rc ? NULL : json_stringn((const char *)b.data, b.len);
  pl_buf_free(&b);
  return v;
}

static json_t *value_json(const tsdb_value *v) {
  switch (v->type) {
  case TSDB_FLOAT: return isfinite(v->v.f) ? json_real(v->v.f) : json_null();
  case TSDB_INT: return json_integer((json_int_t)v->v.i);
  case TSDB_BOOL: return json_boolean(v->v.b);
  case TSDB_STRING: return str_json(v->v.s.p, v->v.s.len);
  }
  return json_null();
}

/* ---- GET /api/v1/series ---- */

static json_t *group_json(const tsdb_group_info *g) {
  json_t *tags = json_object(), *fields = json_object();
  int ok = tags && fields;
  for (size_t i = 0; ok && i < g->ntags; i++)
    ok = json_object_setn_new(tags, g->tags[i].key.p, g->tags[i].key.len,
                              str_json(g->tags[i].value.p, g->tags[i].value.len)) == 0;
  for (size_t i = 0; ok && i < g->nfields; i++)
    ok = json_object_setn_new(fields, g->field_names[i].p, g->field_names[i].len,
                              json_string(type_name(g->field_types[i]))) == 0;
  json_t *m = str_json(g->measurement.p, g->measurement.len);
  int empty = g->first_ts == 0 && g->last_ts == 0;
  if (!ok || !m) {
    json_decref(tags);
    json_decref(fields);
    json_decref(m);
    return NULL;
  }
  return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o}", "id", (json_int_t)g->id, "measurement", m, "tags", tags,
                   "fields", fields, "first", empty ? json_null() : ns_time_json(g->first_ts), "last",
                   empty ? json_null() : ns_time_json(g->last_ts));
}

typedef struct series_ctx {
  const params *p;
  uint64_t after;
  http_list list;
} series_ctx;

static int series_cb(void *ctx, const tsdb_group_info *g) {
  series_ctx *c = ctx;
  if (g->id <= c->after || !group_matches(c->p, g)) return 0;
  if (c->list.count >= c->list.limit) {
    c->list.count++; /* one more than the page: there is a next page */
    return 1;
  }
  return http_list_add(&c->list, (int64_t)g->id, group_json(g));
}

static int search_series(http_req *r) {
  store_tenant t;
  params p;
  int limit;
  int64_t after;
  int st = http_tenant(r, "telemetry", &t);
  if (st || (st = http_tsdb_ready(r))) return st;
  if (params_parse(r, PM_SELECT | PM_FIELD | PM(P_LIMIT) | PM(P_AFTER), &p) < 0) {
    params_free(&p);
    return http_reply_error(r, 400, "%s", p.msg);
  }
  if ((st = http_paging(r, &limit, &after))) {
    params_free(&p);
    return st;
  }
  series_ctx c = {&p, (uint64_t)after, {0}};
  http_list_init(&c.list, limit);
  int rc = tsdb_groups(r->deps->tsdb, t.id, sel_measurement(&p), series_cb, &c);
  params_free(&p);
  return http_list_reply(r, &c.list, rc < 0 ? rc : 0);
}

/* ---- GET /api/v1/devices/{id}/latest ---- */

static int latest_cb(void *ctx, tsdb_str field, int64_t ts_ns, const tsdb_value *v) {
  json_t *o = json_pack("{s:o, s:o}", "time", ns_time_json(ts_ns), "value", value_json(v));
  if (!o) return PL_ENOMEM;
  return json_object_setn_new(ctx, field.p, field.len, o) < 0 ? PL_ENOMEM : 0;
}

static int device_latest(http_req *r) {
  store_tenant t;
  int st = http_tenant(r, "telemetry", &t);
  if (st || (st = http_tsdb_ready(r))) return st;
  store_device d;
  memset(&d, 0, sizeof d);
  int64_t id = http_param_id(r, 0);
  int rc = id ? store_device_get(r->db, t.id, id, &d) : PL_ENOTFOUND;
  if (rc == PL_ENOTFOUND) return http_reply_error(r, 404, "no device %.32s in this tenant", r->match.params[0]);
  if (rc < 0) return http_reply_pl(r, rc, NULL);
  json_t *values = json_object();
  tsdb_tag tag = {{"device", 6}, {d.name, strlen(d.name)}};
  uint64_t gid = 0;
  rc = values ? tsdb_group_find(r->deps->tsdb, t.id, (tsdb_str){"device", 6}, &tag, 1, &gid) : PL_ENOMEM;
  if (rc == 0) rc = tsdb_latest(r->deps->tsdb, t.id, gid, latest_cb, values);
  if (rc == PL_ENOTFOUND) rc = 0; /* no data yet (or deleted meanwhile) */
  if (rc < 0) {
    json_decref(values);
    store_device_clear(&d);
    return http_reply_tsdb(r, rc, NULL);
  }
  json_t *o = json_pack("{s:s, s:o}", "device", d.name, "values", values);
  store_device_clear(&d);
  return http_reply_json(r, 200, o);
}

/* ---- DELETE /api/v1/series ---- */

typedef struct id_list {
  pl_buf ids; /* uint64_t group ids */
  const params *p;
} id_list;

static int collect_cb(void *ctx, const tsdb_group_info *g) {
  id_list *l = ctx;
  if (!group_matches(l->p, g)) return 0;
  return pl_buf_append(&l->ids, &g->id, sizeof g->id);
}

/* Replies with an error and records the refused deletion. */
static int delete_refused(http_req *r, int64_t tenant_id, const char *target, const char *result, int status,
                          const char *msg) {
  admin_ctx c = http_admin(r);
  admin_audit(&c, tenant_id, "series.delete", target, result, msg);
  return http_reply_error(r, status, "%s", msg);
}

static int delete_series(http_req *r) {
  if (r->who.role == AUTH_ROLE_DEVICE)
    return delete_refused(r, r->who.tenant_id, "series", "denied", 403,
                          "the device role may not delete data (series.delete)");
  store_tenant t;
  params p;
  int st = http_tenant(r, "series", &t);
  if (st || (st = http_tsdb_ready(r))) return st;
  char msg[400], target[300];
  int rc = params_parse(r, PM_SELECT | PM_FIELD | PM(P_START) | PM(P_END), &p);
  snprintf(target, sizeof target, "series:%.256s", p.measurement ? p.measurement : "*");
  if (rc < 0) {
    snprintf(msg, sizeof msg, "%s", p.msg);
  } else if (!p.measurement) {
    rc = PL_EINVAL;
    snprintf(msg, sizeof msg, "a delete needs measurement= or device= (deleting every series of a tenant at once "
                              "is refused)");
  } else if (p.nfields) {
    rc = PL_EINVAL;
    snprintf(msg, sizeof msg, "field= cannot be used with DELETE: a delete removes every field of the matching "
                              "series");
  }
  int64_t start = INT64_MIN, end = INT64_MAX, now = pl_now_ns();
  if (rc == 0 && p.v[P_START] && parse_when(p.v[P_START], now, &start) < 0) {
    rc = PL_EINVAL;
    snprintf(msg, sizeof msg, "start: \"%.64s\" is not a time (RFC 3339, now, -1h, or ms since the epoch)",
             p.v[P_START]);
  }
  if (rc == 0 && p.v[P_END] && parse_when(p.v[P_END], now, &end) < 0) {
    rc = PL_EINVAL;
    snprintf(msg, sizeof msg, "end: \"%.64s\" is not a time (RFC 3339, now, -1h, or ms since the epoch)",
             p.v[P_END]);
  }
  if (rc == 0 && start >= end) {
    rc = PL_EINVAL;
    snprintf(msg, sizeof msg, "start must be before end");
  }
  if (rc < 0) {
    params_free(&p);
    return delete_refused(r, t.id, target, "error", 400, msg);
  }

  id_list l;
  pl_buf_init(&l.ids, 0);
  l.p = &p;
  rc = tsdb_groups(r->deps->tsdb, t.id, sel_measurement(&p), collect_cb, &l);
  params_free(&p); /* the regexes are not needed past this point; p.detail still is */
  int64_t deleted = 0;
  pl_err err = {{0}};
  size_t ngroups = l.ids.len / sizeof(uint64_t);
  for (size_t i = 0; rc >= 0 && i < ngroups; i++) {
    uint64_t gid;
    memcpy(&gid, l.ids.data + i * sizeof gid, sizeof gid);
    int64_t n = tsdb_delete(r->deps->tsdb, t.id, sel_measurement(&p), gid, start, end, &err);
    if (n == PL_ENOTFOUND) continue; /* deleted meanwhile */
    if (n < 0) rc = (int)n;
    else deleted += n;
  }
  pl_buf_free(&l.ids);
  char detail[512];
  admin_ctx c = http_admin(r);
  if (rc < 0) {
    snprintf(detail, sizeof detail, "%.300s; failed after %lld points: %.150s", p.detail, (long long)deleted,
             err.msg[0] ? err.msg : pl_strerror(rc));
    admin_audit(&c, t.id, "series.delete", target, "error", detail);
    return http_reply_tsdb(r, rc, &err);
  }
  snprintf(detail, sizeof detail, "%.400s; %zu series groups, %lld points", p.detail, ngroups, (long long)deleted);
  if (admin_audit(&c, t.id, "series.delete", target, "ok", detail) < 0)
    return http_reply_error(r, 500, "the data was deleted but its audit record failed (request %s)", r->id_str);
  return http_reply_json(r, 200, json_pack("{s:I}", "deleted", (json_int_t)deleted));
}

/* ---- GET /api/v1/query ---- */

/* An aggregate column: a tsdb_agg bit, and for percentiles which of the query's percentiles. */
typedef struct agg_col {
  unsigned agg;
  int pct; /* index into query.pcts for TSDB_AGG_PERCENTILE */
  char name[16];
} agg_col;

typedef struct qgroup {
  uint64_t id;
  size_t json_off, json_len; /* "measurement":...,"tags":{...}, */
  size_t csv_off, csv_len;   /* measurement,tags, */
} qgroup;

typedef struct qseries {
  size_t group;
  size_t field_off, field_len; /* NUL-terminated in the arena */
  tsdb_type type;
} qseries;

typedef struct query {
  const params *p;
  int csv;
  int64_t epoch_div; /* 0: RFC 3339 */
  int64_t start_ns, end_ns;
  /* raw mode */
  int descending;
  size_t limit; /* 0: none */
  /* aggregate mode */
  int aggregate;
  agg_col cols[AGG_COLUMNS_MAX];
  size_t ncols;
  unsigned aggs; /* every bit but TSDB_AGG_PERCENTILE */
  double pcts[AGG_PERCENTILES_MAX];
  size_t npcts;
  int64_t every_ns, offset_ns;
  tsdb_fill fill;
  double fill_value;
  /* the selected series, filled by query_cb */
  qgroup *groups;
  size_t ngroups;
  qseries *series;
  size_t nseries;
  pl_buf arena;
  int too_many;
  char string_field[TSDB_NAME_BYTES_MAX + 1]; /* a named string field with numeric aggregates */
} query;

static const struct {
  const char *name;
  unsigned agg;
} agg_names[] = {
    {"count", TSDB_AGG_COUNT}, {"sum", TSDB_AGG_SUM},       {"mean", TSDB_AGG_MEAN},
    {"min", TSDB_AGG_MIN},     {"max", TSDB_AGG_MAX},       {"first", TSDB_AGG_FIRST},
    {"last", TSDB_AGG_LAST},   {"stddev", TSDB_AGG_STDDEV}, {"median", TSDB_AGG_MEDIAN},
    {"spread", TSDB_AGG_SPREAD},
};

static int parse_aggs(query *q, const char *s, char *msg, size_t msgsz) {
  const char *list = s;
  for (;;) {
    size_t n = strcspn(s, ",");
    char name[sizeof q->cols[0].name];
    if (!n || n >= sizeof name) goto bad;
    memcpy(name, s, n);
    name[n] = 0;
    if (q->ncols == AGG_COLUMNS_MAX) {
      snprintf(msg, msgsz, "agg: at most %d aggregates per query", AGG_COLUMNS_MAX);
      return PL_EINVAL;
    }
    agg_col *c = &q->cols[q->ncols];
    memset(c, 0, sizeof *c);
    memcpy(c->name, name, n + 1);
    for (size_t i = 0; i < sizeof agg_names / sizeof agg_names[0]; i++)
      if (strcmp(name, agg_names[i].name) == 0) c->agg = agg_names[i].agg;
    if (!c->agg && name[0] == 'p' && n <= 7) {
      /* p<N>: N from 0 to 100, with up to 3 decimals (p99.9). */
      const char *d = name + 1;
      size_t whole = strspn(d, "0123456789"), frac = 0;
      if (d[whole] == '.') frac = strspn(d + whole + 1, "0123456789");
      int shape = whole >= 1 && whole <= 3 && (d[whole] == 0 || (frac >= 1 && frac <= 3 && !d[whole + 1 + frac]));
      double v = shape ? strtod(d, NULL) : -1;
      if (v >= 0 && v <= 100) {
        size_t k = 0;
        while (k < q->npcts && q->pcts[k] != v) k++;
        if (k == q->npcts) {
          if (q->npcts == AGG_PERCENTILES_MAX) {
            snprintf(msg, msgsz, "agg: at most %d percentiles per query", AGG_PERCENTILES_MAX);
            return PL_EINVAL;
          }
          q->pcts[q->npcts++] = v;
        }
        c->agg = TSDB_AGG_PERCENTILE;
        c->pct = (int)k;
      }
    }
    if (!c->agg) goto bad;
    for (size_t i = 0; i < q->ncols; i++)
      if (strcmp(q->cols[i].name, c->name) == 0) {
        snprintf(msg, msgsz, "agg: \"%s\" is given twice", c->name);
        return PL_EINVAL;
      }
    if (c->agg != TSDB_AGG_PERCENTILE) q->aggs |= c->agg;
    q->ncols++;
    if (!s[n]) return 0;
    s += n + 1;
  }
bad:
  snprintf(msg, msgsz,
           "agg: \"%.64s\" is not a list of count, sum, mean, min, max, first, last, stddev, median, spread or "
           "p<N> (a percentile, e.g. p95)",
           list);
  return PL_EINVAL;
}

/* Whether the aggregates need numbers: all but count do (the engine's first and last of a
 * string field are not the strings). */
static int aggs_numeric(const query *q) {
  return q->npcts || (q->aggs & ~(unsigned)TSDB_AGG_COUNT);
}

static size_t arena_put(query *q, const char *s, size_t n, int *rc) {
  size_t off = q->arena.len;
  if (!*rc) *rc = pl_buf_append(&q->arena, s, n);
  if (!*rc) *rc = pl_buf_append_byte(&q->arena, 0);
  return off;
}

/* Renders the group's measurement and tags for both output formats into the arena. */
static int render_group(query *q, const tsdb_group_info *g, qgroup *qg) {
  out o = {&q->arena, 0};
  qg->id = g->id;
  qg->json_off = q->arena.len;
  o_str(&o, "\"measurement\":");
  o_json_str(&o, g->measurement.p, g->measurement.len);
  o_str(&o, ",\"tags\":{");
  for (size_t i = 0; i < g->ntags; i++) {
    if (i) o_byte(&o, ',');
    o_json_str(&o, g->tags[i].key.p, g->tags[i].key.len);
    o_byte(&o, ':');
    o_json_str(&o, g->tags[i].value.p, g->tags[i].value.len);
  }
  o_str(&o, "},");
  qg->json_len = q->arena.len - qg->json_off;
  /* CSV: measurement, then the tags as one cell "k=v,k2=v2" with \ , = escaped by a backslash
   * (as InfluxDB writes series keys), so the cell splits back unambiguously. */
  qg->csv_off = q->arena.len;
  o_csv_text(&o, g->measurement.p, g->measurement.len);
  o_byte(&o, ',');
  pl_buf tagtext;
  pl_buf_init(&tagtext, 0);
  out t = {&tagtext, 0};
  for (size_t i = 0; i < g->ntags; i++) {
    const tsdb_str parts[2] = {g->tags[i].key, g->tags[i].value};
    if (i) o_byte(&t, ',');
    for (int k = 0; k < 2; k++) {
      if (k) o_byte(&t, '=');
      for (size_t j = 0; j < parts[k].len; j++) {
        char ch = parts[k].p[j];
        if (ch == '\\' || ch == ',' || ch == '=') o_byte(&t, '\\');
        o_byte(&t, ch);
      }
    }
  }
  if (!t.rc) o_csv_text(&o, (const char *)tagtext.data, tagtext.len);
  pl_buf_free(&tagtext);
  o_byte(&o, ',');
  qg->csv_len = q->arena.len - qg->csv_off;
  return o.rc ? o.rc : t.rc;
}

static int query_cb(void *ctx, const tsdb_group_info *g) {
  query *q = ctx;
  if (!group_matches(q->p, g)) return 0;
  size_t idx[TSDB_FIELDS_PER_GROUP_MAX], n = 0;
  for (size_t f = 0; f < g->nfields && n < TSDB_FIELDS_PER_GROUP_MAX; f++) {
    if (!field_selected(q->p, g->field_names[f])) continue;
    if (q->aggregate && aggs_numeric(q) && g->field_types[f] == TSDB_STRING) {
      if (q->p->nfields) {
        /* Named explicitly: say why it cannot be answered rather than leave it out. */
        size_t len = g->field_names[f].len < TSDB_NAME_BYTES_MAX ? g->field_names[f].len : TSDB_NAME_BYTES_MAX;
        memcpy(q->string_field, g->field_names[f].p, len);
        q->string_field[len] = 0;
        return 1;
      }
      continue;
    }
    /* Insertion sort by name: series come out in a stable order. */
    size_t at = n++;
    while (at > 0) {
      tsdb_str a = g->field_names[idx[at - 1]], b = g->field_names[f];
      size_t m = a.len < b.len ? a.len : b.len;
      int cmp = memcmp(a.p, b.p, m);
      if (cmp < 0 || (cmp == 0 && a.len <= b.len)) break;
      idx[at] = idx[at - 1];
      at--;
    }
    idx[at] = f;
  }
  if (!n) return 0;
  if (q->nseries + n > QUERY_SERIES_MAX) {
    q->too_many = 1;
    return 1;
  }
  qgroup *qg = &q->groups[q->ngroups];
  int rc = render_group(q, g, qg);
  for (size_t i = 0; i < n && !rc; i++) {
    qseries *s = &q->series[q->nseries + i];
    s->group = q->ngroups;
    s->field_len = g->field_names[idx[i]].len;
    s->field_off = arena_put(q, g->field_names[idx[i]].p, s->field_len, &rc);
    s->type = g->field_types[idx[i]];
  }
  if (rc) return rc;
  q->ngroups++;
  q->nseries += n;
  return 0;
}

static const char *arena_str(const query *q, size_t off) {
  return (const char *)q->arena.data + off;
}

/* Starts a series' output: JSON object up to the opening of "values", or nothing for CSV. */
static void series_begin(out *o, const query *q, const qseries *s, int first) {
  if (q->csv) return;
  const qgroup *g = &q->groups[s->group];
  if (!first) o_byte(o, ',');
  o_byte(o, '{');
  o_raw(o, arena_str(q, g->json_off), g->json_len);
  o_str(o, "\"field\":");
  o_json_str(o, arena_str(q, s->field_off), s->field_len);
  o_str(o, ",\"type\":\"");
  o_str(o, type_name(s->type));
  o_str(o, "\",\"columns\":[\"time\"");
  if (!q->aggregate) o_str(o, ",\"value\"");
  for (size_t i = 0; q->aggregate && i < q->ncols; i++) {
    o_byte(o, ',');
    o_json_str(o, q->cols[i].name, strlen(q->cols[i].name));
  }
  o_str(o, "],\"values\":[");
}

/* Starts one row (point or bucket): its time, followed by the separator for the first value. */
static void row_begin(out *o, const query *q, const qseries *s, int64_t ts_ns, int first) {
  if (q->csv) {
    const qgroup *g = &q->groups[s->group];
    o_raw(o, arena_str(q, g->csv_off), g->csv_len);
    o_csv_text(o, arena_str(q, s->field_off), s->field_len);
    o_byte(o, ',');
    o_time(o, ts_ns, q->epoch_div, 0);
    return;
  }
  if (!first) o_byte(o, ',');
  o_byte(o, '[');
  o_time(o, ts_ns, q->epoch_div, 1);
}

static void row_end(out *o, const query *q) {
  o_str(o, q->csv ? "\r\n" : "]");
}

static void point_value(out *o, const query *q, const tsdb_points *pts, size_t i) {
  o_byte(o, ',');
  switch (pts->type) {
  case TSDB_FLOAT:
    if (q->csv) o_csv_double(o, pts->f[i]);
    else o_json_double(o, pts->f[i]);
    break;
  case TSDB_INT: o_int(o, (long long)pts->i[i]); break;
  case TSDB_BOOL: o_str(o, pts->b[i] ? "true" : "false"); break;
  case TSDB_STRING:
    if (q->csv) o_csv_text(o, pts->s[i], pts->slen[i]);
    else o_json_str(o, pts->s[i], pts->slen[i]);
    break;
  }
}

static double bucket_value(const tsdb_bucket *b, unsigned agg) {
  switch (agg) {
  case TSDB_AGG_SUM: return b->sum;
  case TSDB_AGG_MEAN: return b->mean;
  case TSDB_AGG_MIN: return b->min;
  case TSDB_AGG_MAX: return b->max;
  case TSDB_AGG_FIRST: return b->first;
  case TSDB_AGG_LAST: return b->last;
  case TSDB_AGG_STDDEV: return b->stddev;
  case TSDB_AGG_MEDIAN: return b->median;
  case TSDB_AGG_SPREAD: return b->spread;
  case TSDB_AGG_PERCENTILE: return b->percentile;
  }
  return NAN;
}

/* The outcome of writing one series: 0, or an HTTP status already replied. */
static int query_raw_series(http_req *r, int64_t tenant_id, const query *q, const qseries *s, tsdb_points *pts,
                            size_t *total, out *o) {
  size_t room = QUERY_POINTS_MAX - *total;
  size_t limit = q->limit && q->limit <= room ? q->limit : room + 1;
  /* One tsdb_points serves every series, but only series of one type: the engine does not
   * always reallocate its arrays when the type changes, so start afresh when it does. */
  if (pts->type != s->type) tsdb_points_free(pts);
  int rc = tsdb_read(r->deps->tsdb, tenant_id, q->groups[s->group].id, arena_str(q, s->field_off), q->start_ns,
                     q->end_ns, limit, q->descending, pts);
  if (rc == PL_ENOTFOUND) {
    pts->n = 0; /* deleted since it was listed */
  } else if (rc < 0) {
    return http_reply_tsdb(r, rc, NULL);
  }
  if (pts->n > room)
    return http_reply_error(r, 400, "the query selects more than %d points; narrow it with a shorter start/end "
                                    "range, field=, device=, tag.KEY= or limit=, or aggregate with agg= and every=",
                            QUERY_POINTS_MAX);
  *total += pts->n;
  for (size_t k = 0; k < pts->n; k++) {
    size_t i = q->descending ? pts->n - 1 - k : k;
    row_begin(o, q, s, pts->ts[i], k == 0);
    point_value(o, q, pts, i);
    row_end(o, q);
  }
  return 0;
}

static int query_agg_series(http_req *r, int64_t tenant_id, const query *q, const qseries *s, tsdb_buckets *bk,
                            size_t *total, out *o) {
  tsdb_agg_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.start_ns = q->start_ns;
  spec.end_ns = q->end_ns;
  spec.bucket_ns = q->every_ns;
  spec.offset_ns = q->offset_ns;
  spec.fill = q->fill;
  spec.fill_value = q->fill_value;
  size_t ncalls = q->npcts ? q->npcts : 1;
  const char *field = arena_str(q, s->field_off);
  uint64_t gid = q->groups[s->group].id;
  for (size_t k = 0; k < ncalls; k++) {
    /* One call answers every aggregate and the first percentile; each further percentile
     * needs a call of its own (the engine takes one percentile per call). */
    spec.aggs = k == 0 ? q->aggs : 0;
    if (q->npcts) {
      spec.aggs |= TSDB_AGG_PERCENTILE;
      spec.percentile = q->pcts[k];
    }
    if (s->type == TSDB_STRING) spec.aggs = TSDB_AGG_COUNT;
    bk[k].n = 0;
    int rc = tsdb_aggregate(r->deps->tsdb, tenant_id, gid, field, &spec, &bk[k]);
    if (rc == PL_ENOTFOUND) bk[k].n = 0;
    else if (rc < 0) return http_reply_tsdb(r, rc, NULL);
    if (k && (bk[k].n != bk[0].n || (bk[k].n && bk[k].b[0].start_ns != bk[0].b[0].start_ns)))
      return http_reply_error(r, 500, "the engine returned differing buckets for one query (request %s)", r->id_str);
    if (s->type == TSDB_STRING) break;
  }
  if (bk[0].n > QUERY_POINTS_MAX - *total)
    return http_reply_error(r, 400, "the query makes more than %d buckets; use a longer every=, a shorter "
                                    "start/end range, or fewer series (field=, device=, tag.KEY=)",
                            QUERY_POINTS_MAX);
  *total += bk[0].n;
  for (size_t i = 0; i < bk[0].n; i++) {
    const tsdb_bucket *b = &bk[0].b[i];
    int null = !b->present && q->fill == TSDB_FILL_NULL;
    row_begin(o, q, s, b->start_ns, i == 0);
    for (size_t c = 0; c < q->ncols; c++) {
      const agg_col *col = &q->cols[c];
      o_byte(o, ',');
      if (null || (s->type == TSDB_STRING && col->agg != TSDB_AGG_COUNT)) {
        if (!q->csv) o_str(o, "null");
      } else if (col->agg == TSDB_AGG_COUNT) {
        o_int(o, (long long)b->count);
      } else {
        const tsdb_bucket *src = col->agg == TSDB_AGG_PERCENTILE ? &bk[col->pct].b[i] : b;
        double v = bucket_value(src, col->agg);
        if (q->csv) o_csv_double(o, v);
        else o_json_double(o, v);
      }
    }
    row_end(o, q);
  }
  return 0;
}

static int wants_csv(http_req *r, const char *format, int *csv) {
  if (format) {
    if (strcmp(format, "csv") == 0) *csv = 1;
    else if (strcmp(format, "json") == 0) *csv = 0;
    else return PL_EINVAL;
    return 0;
  }
  const char *accept = http_header(r, MHD_HTTP_HEADER_ACCEPT);
  *csv = accept && strcasestr(accept, "text/csv") != NULL;
  return 0;
}

/* Reads the query's parameters into q. Returns 0, or replies 400 and returns the status. */
static int query_setup(http_req *r, const params *p, query *q) {
  const char *const *v = p->v;
  if (wants_csv(r, v[P_FORMAT], &q->csv) < 0) return http_reply_error(r, 400, "format must be json or csv");
  if (v[P_EPOCH]) {
    static const struct {
      const char *name;
      int64_t div;
    } units[] = {{"ns", 1}, {"us", 1000}, {"ms", NS_PER_MS}, {"s", 1000 * NS_PER_MS}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
      if (strcmp(v[P_EPOCH], units[i].name) == 0) q->epoch_div = units[i].div;
    if (!q->epoch_div) return http_reply_error(r, 400, "epoch must be ns, us, ms or s");
  }
  int64_t now = pl_now_ns();
  q->end_ns = now;
  if (v[P_END] && parse_when(v[P_END], now, &q->end_ns) < 0)
    return http_reply_error(r, 400, "end: \"%.64s\" is not a time: use RFC 3339 (2026-03-01T08:00:00Z), now, a "
                                    "relative time (-30m, -1h, -7d) or milliseconds since the epoch", v[P_END]);
  q->start_ns = q->end_ns > INT64_MIN + NS_PER_HOUR ? q->end_ns - NS_PER_HOUR : INT64_MIN;
  if (v[P_START] && parse_when(v[P_START], now, &q->start_ns) < 0)
    return http_reply_error(r, 400, "start: \"%.64s\" is not a time: use RFC 3339 (2026-03-01T08:00:00Z), now, a "
                                    "relative time (-30m, -1h, -7d) or milliseconds since the epoch", v[P_START]);
  if (q->start_ns >= q->end_ns) return http_reply_error(r, 400, "start must be before end");

  if (!v[P_AGG]) {
    if (v[P_EVERY] || v[P_OFFSET] || v[P_FILL])
      return http_reply_error(r, 400, "every, offset and fill apply to aggregates: add agg= (e.g. agg=mean)");
    if (v[P_ORDER]) {
      if (strcmp(v[P_ORDER], "desc") == 0) q->descending = 1;
      else if (strcmp(v[P_ORDER], "asc") != 0) return http_reply_error(r, 400, "order must be asc or desc");
    }
    if (v[P_LIMIT]) {
      char *end;
      errno = 0;
      long long n = strtoll(v[P_LIMIT], &end, 10);
      if (errno || *end || !*v[P_LIMIT] || n < 1 || n > QUERY_POINTS_MAX)
        return http_reply_error(r, 400, "limit must be a whole number from 1 to %d (points per series)",
                                QUERY_POINTS_MAX);
      q->limit = (size_t)n;
    }
    return 0;
  }
  q->aggregate = 1;
  if (v[P_ORDER] || v[P_LIMIT])
    return http_reply_error(r, 400, "order and limit apply to raw points; with agg= use every= and start/end");
  char msg[256];
  if (parse_aggs(q, v[P_AGG], msg, sizeof msg) < 0) return http_reply_error(r, 400, "%s", msg);
  if (v[P_EVERY] && (pl_duration_parse(v[P_EVERY], &q->every_ns) < 0 || q->every_ns <= 0))
    return http_reply_error(r, 400, "every: \"%.32s\" is not a duration such as 10s, 5m, 1h or 1d", v[P_EVERY]);
  if (v[P_OFFSET]) {
    if (!q->every_ns) return http_reply_error(r, 400, "offset shifts the buckets of every=: give every= too");
    if (parse_signed_duration(v[P_OFFSET], &q->offset_ns) < 0)
      return http_reply_error(r, 400, "offset: \"%.32s\" is not a duration such as 15m or -15m", v[P_OFFSET]);
    q->offset_ns %= q->every_ns;
    if (q->offset_ns < 0) q->offset_ns += q->every_ns;
  }
  q->fill = TSDB_FILL_NULL;
  if (v[P_FILL]) {
    const char *f = v[P_FILL];
    char *end;
    if (strcmp(f, "none") == 0) q->fill = TSDB_FILL_NONE;
    else if (strcmp(f, "null") == 0) q->fill = TSDB_FILL_NULL;
    else if (strcmp(f, "previous") == 0) q->fill = TSDB_FILL_PREVIOUS;
    else if (strcmp(f, "linear") == 0) q->fill = TSDB_FILL_LINEAR;
    else if (*f && (q->fill_value = strtod(f, &end), !*end) && isfinite(q->fill_value) && !isspace((unsigned char)*f))
      q->fill = TSDB_FILL_VALUE;
    else
      return http_reply_error(r, 400, "fill must be none, null, previous, linear or a number");
  }
  if (q->every_ns) {
    uint64_t span = (uint64_t)q->end_ns - (uint64_t)q->start_ns;
    uint64_t buckets = span / (uint64_t)q->every_ns + 2;
    if (buckets > QUERY_POINTS_MAX)
      return http_reply_error(r, 400, "every=%.32s over this range makes about %llu buckets, more than %d: use a "
                                      "longer every= or a shorter start/end range",
                              v[P_EVERY], (unsigned long long)buckets, QUERY_POINTS_MAX);
  }
  return 0;
}

static int run_query(http_req *r) {
  store_tenant t;
  params p;
  int st = http_tenant(r, "telemetry", &t);
  if (st || (st = http_tsdb_ready(r))) return st;
  unsigned allowed = PM_SELECT | PM_FIELD | PM(P_START) | PM(P_END) | PM(P_ORDER) | PM(P_LIMIT) | PM(P_AGG) |
                     PM(P_EVERY) | PM(P_OFFSET) | PM(P_FILL) | PM(P_FORMAT) | PM(P_EPOCH);
  if (params_parse(r, allowed, &p) < 0) {
    params_free(&p);
    return http_reply_error(r, 400, "%s", p.msg);
  }
  query *q = calloc(1, sizeof *q);
  if (!q) {
    params_free(&p);
    return http_reply_error(r, 500, "out of memory");
  }
  q->p = &p;
  pl_buf_init(&q->arena, QUERY_ARENA_BYTES_MAX);
  tsdb_points pts;
  tsdb_points_init(&pts);
  tsdb_buckets bk[AGG_PERCENTILES_MAX];
  memset(bk, 0, sizeof bk);
  st = query_setup(r, &p, q);
  if (!st) {
    q->groups = calloc(QUERY_SERIES_MAX, sizeof *q->groups);
    q->series = calloc(QUERY_SERIES_MAX, sizeof *q->series);
    if (!q->groups || !q->series) st = http_reply_error(r, 500, "out of memory");
  }
  if (!st) {
    int rc = tsdb_groups(r->deps->tsdb, t.id, sel_measurement(&p), query_cb, q);
    if (q->too_many)
      st = http_reply_error(r, 400, "the query selects more than %d series; narrow it with device=, "
                                    "measurement=, tag.KEY=, tag_regex.KEY= or field=", QUERY_SERIES_MAX);
    else if (q->string_field[0])
      st = http_reply_error(r, 400, "field \"%.64s\" holds strings: of the aggregates only count applies to it",
                            q->string_field);
    else if (rc == PL_ELIMIT)
      st = http_reply_error(r, 400, "the selected series have too many tags to list; narrow the query");
    else if (rc < 0)
      st = http_reply_tsdb(r, rc, NULL);
  }
  if (!st && q->aggregate && q->every_ns && q->fill != TSDB_FILL_NONE) {
    /* Every series gets every bucket: refuse before doing the work. */
    uint64_t span = (uint64_t)q->end_ns - (uint64_t)q->start_ns;
    uint64_t buckets = (span / (uint64_t)q->every_ns + 1) * q->nseries;
    if (buckets > QUERY_POINTS_MAX)
      st = http_reply_error(r, 400, "the query makes about %llu buckets (%zu series), more than %d; use a longer "
                                    "every=, a shorter start/end range, or fewer series",
                            (unsigned long long)buckets, q->nseries, QUERY_POINTS_MAX);
  }
  if (!st) {
    pl_buf_reset(&r->out);
    r->out.max_bytes = QUERY_OUT_BYTES_MAX;
    out o = {&r->out, 0};
    size_t total = 0;
    if (q->csv) {
      o_str(&o, "\xef\xbb\xbf" "measurement,tags,field,time"); /* BOM: spreadsheets then read UTF-8 */
      if (!q->aggregate) o_str(&o, ",value");
      for (size_t i = 0; q->aggregate && i < q->ncols; i++) {
        o_byte(&o, ',');
        o_csv_text(&o, q->cols[i].name, strlen(q->cols[i].name));
      }
      o_str(&o, "\r\n");
    } else {
      o_str(&o, "{\"series\":[");
    }
    for (size_t i = 0; !st && !o.rc && i < q->nseries; i++) {
      const qseries *s = &q->series[i];
      series_begin(&o, q, s, i == 0);
      st = q->aggregate ? query_agg_series(r, t.id, q, s, bk, &total, &o)
                        : query_raw_series(r, t.id, q, s, &pts, &total, &o);
      if (!st && !q->csv) o_str(&o, "]}");
    }
    if (!st && !q->csv) o_str(&o, "]}");
    if (!st && o.rc == PL_ELIMIT)
      st = http_reply_error(r, 400, "the response would be larger than %zu MiB; narrow the query",
                            QUERY_OUT_BYTES_MAX >> 20);
    else if (!st && o.rc)
      st = http_reply_error(r, 500, "out of memory");
    if (!st) {
      r->status = 200;
      r->responded = 1;
      r->content_type = q->csv ? CSV_CONTENT_TYPE : NULL;
      st = 200;
    }
    r->out.max_bytes = 0;
  }
  for (size_t k = 0; k < AGG_PERCENTILES_MAX; k++) tsdb_buckets_free(&bk[k]);
  tsdb_points_free(&pts);
  pl_buf_free(&q->arena);
  free(q->groups);
  free(q->series);
  free(q);
  params_free(&p);
  return st;
}

const http_route api_telemetry_query_routes[] = {
    {"GET", "/api/v1/series", (void *)search_series, AUTH_PERM_DATA_READ, "series.list"},
    {"DELETE", "/api/v1/series", (void *)delete_series, AUTH_PERM_DATA_WRITE, "series.delete"},
    {"GET", "/api/v1/query", (void *)run_query, AUTH_PERM_DATA_READ, "telemetry.query"},
    {"GET", "/api/v1/devices/{id}/latest", (void *)device_latest, AUTH_PERM_DATA_READ, "telemetry.latest"},
};
const size_t api_telemetry_query_nroutes = sizeof api_telemetry_query_routes / sizeof api_telemetry_query_routes[0];
