/* InfluxDB 1.x query endpoint: GET|POST /query, so Grafana's InfluxDB data source, the influx
 * CLI, Telegraf and scripts query Plateau unchanged.
 *
 *   GET  /query?q=...&db=...[&epoch=ns|u|ms|s|m|h][&pretty=true][&chunked=true&chunk_size=N]
 *   POST /query   the same parameters in the query string or an application/x-www-form-urlencoded
 * body
 *
 * Authentication is InfluxDB's, with a Plateau API token as the secret: "Authorization: Bearer
 * <token>", "Authorization: Token <token>", HTTP Basic with the token as password (any user
 * name), or the u/p parameters (p = token). Failures answer 401 {"error":"..."} as InfluxDB does.
 * Reading needs the data-read permission; CREATE/DROP DATABASE, DROP SERIES, DROP MEASUREMENT
 * and DELETE need data-write, and are audited.
 *
 * Databases: `db` (and db.rp.m in FROM, ON db in SHOW) names one of the tenant's databases;
 * http_tsdb_ns maps it to the engine's namespace ("plateau", the default, is where device
 * telemetry lands). SHOW DATABASES lists "plateau" and the tenant's databases; SHOW RETENTION
 * POLICIES answers InfluxDB's single "autogen" policy with the tenant's retention.
 *
 * Statements run in order; the first one that fails ends the query (its error is in its
 * result, later statements have none), as in InfluxDB. The whole response is built in memory
 * (chunked=true still produces InfluxDB's newline-delimited chunks, sent as one body).
 */
#include "http/http_int.h"

#include "base/clock.h"
#include "base/log.h"
#include "influxql/influxql.h"

#include <ctype.h>
#include <sodium.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* As /write and /ping announce (api_influx.c): clients take any 1.x as InfluxDB 1.x. */
#define INFLUX_VERSION "1.8.10"
#define CHUNK_SIZE_DEFAULT 10000
#define QUERY_POINTS_MAX ((size_t)20 * 1000 * 1000)
#define QUERY_SERIES_MAX ((size_t)100000)
#define FORM_FIELDS_MAX 32

/* ---- responses ---- */

static void influx_headers(http_req *r) {
  http_add_header(r, "X-Influxdb-Version", INFLUX_VERSION);
  http_add_header(r, "X-Influxdb-Build", "OSS");
  http_add_header(r, "Request-Id", r->id_str);
}

/* Hands body (a complete response) to the request. */
static int reply_body(http_req *r, int status, const char *content_type, pl_buf *body) {
  pl_buf_reset(&r->out);
  if (body->len && pl_buf_append(&r->out, body->data, body->len) < 0) {
    pl_buf_reset(&r->out);
    status = 500;
  }
  r->status = status;
  r->content_type = content_type;
  r->responded = 1;
  influx_headers(r);
  return status;
}

/* A top-level error: {"error":"..."} (or the CSV form). */
static int reply_influx_error(http_req *r, int status, const influxql_out_opts *o, const char *fmt,
                              ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static int reply_influx_error(http_req *r, int status, const influxql_out_opts *o, const char *fmt,
                              ...) {
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  influxql_out_opts plain = {INFLUXQL_FMT_JSON, 0, 0};
  if (!o)
    o = &plain;
  pl_buf b;
  pl_buf_init(&b, 0);
  influxql_write_error(o, msg, &b);
  reply_body(r, status, o->format == INFLUXQL_FMT_CSV ? "text/csv" : "application/json", &b);
  pl_buf_free(&b);
  /* InfluxDB repeats the message in a header (without control characters, cut short) */
  char hdr[513];
  size_t n = strlen(msg) < sizeof hdr - 1 ? strlen(msg) : sizeof hdr - 1;
  while (n < strlen(msg) && n > 0 && ((unsigned char)msg[n] & 0xc0) == 0x80)
    n--;
  for (size_t i = 0; i < n; i++)
    hdr[i] = (unsigned char)msg[i] < 0x20 || msg[i] == 0x7f ? ' ' : msg[i];
  hdr[n] = 0;
  http_add_header(r, "X-Influxdb-Error", hdr);
  if (status == 401)
    http_add_header(r, "Www-Authenticate", "Basic realm=\"InfluxDB\"");
  return status;
}

/* ---- parameters: the query string, or an urlencoded form body for POST ---- */

typedef struct form {
  char *keys[FORM_FIELDS_MAX], *values[FORM_FIELDS_MAX];
  size_t n;
} form;

static void form_free(form *f) {
  for (size_t i = 0; i < f->n; i++) {
    free(f->keys[i]);
    free(f->values[i]);
  }
  f->n = 0;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Decodes application/x-www-form-urlencoded text ('+' is a space). NULL on a bad escape. */
static char *form_decode(const char *s, size_t n) {
  char *out = malloc(n + 1);
  if (!out)
    return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '+') {
      out[o++] = ' ';
    } else if (s[i] == '%') {
      int h = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1,
          l = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
      if (h < 0 || l < 0) {
        free(out);
        return NULL;
      }
      out[o++] = (char)(h * 16 + l);
      i += 2;
    } else {
      out[o++] = s[i];
    }
  }
  out[o] = 0;
  return out;
}

static int form_parse(const char *s, size_t n, form *f) {
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && s[j] != '&')
      j++;
    size_t eq = i;
    while (eq < j && s[eq] != '=')
      eq++;
    if (j > i) {
      if (f->n == FORM_FIELDS_MAX)
        return PL_ELIMIT;
      char *k = form_decode(s + i, eq - i),
           *v = form_decode(eq < j ? s + eq + 1 : "", eq < j ? j - eq - 1 : 0);
      if (!k || !v) {
        free(k);
        free(v);
        return PL_EINVAL;
      }
      f->keys[f->n] = k;
      f->values[f->n++] = v;
    }
    i = j + 1;
  }
  return 0;
}

typedef struct qparams {
  http_req *r;
  form body;
} qparams;

static const char *param(qparams *p, const char *key) {
  const char *v = http_query(p->r, key);
  if (v)
    return v;
  for (size_t i = 0; i < p->body.n; i++)
    if (strcmp(p->body.keys[i], key) == 0)
      return p->body.values[i];
  return NULL;
}

static int is_form(http_req *r) {
  const char *ct = http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
  return ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0;
}

/* ---- authentication (InfluxDB's ways of presenting credentials; the secret is a token) ---- */

/* Authenticates; replies 401 and returns > 0 when the credentials are missing or wrong. */
static int influx_auth(http_req *r, qparams *qp, const influxql_out_opts *o) {
  char token[HTTP_CREDENTIAL_BYTES_MAX] = "";
  int have = http_influx_credentials(r, param(qp, "p"), token) > 0;
  if (!have)
    return reply_influx_error(r, 401, o, "unable to parse authentication credentials");
  int rc = auth_authenticate(r->db, token, pl_now_ms(), &r->who);
  sodium_memzero(token, sizeof token);
  if (rc == PL_EBUSY)
    return reply_influx_error(r, 503, o, "the database is busy; retry shortly");
  if (rc < 0)
    return reply_influx_error(r, 401, o, "authorization failed");
  r->authed = 1;
  auth_principal_actor(&r->who, r->actor, sizeof r->actor);
  return 0;
}

/* ---- databases ---- */

typedef struct dbctx {
  http_req *r;
  int64_t tenant_id;
} dbctx;

static int resolve_db(void *ctx, const char *db, int64_t *ns) {
  dbctx *d = ctx;
  int rc = http_tsdb_ns(d->r, d->tenant_id, db, 0, ns);
  return rc == PL_EINVAL ? PL_ENOTFOUND : rc;
}

typedef struct dblist {
  influxql_series *s;
  int64_t last_id;
  int rc;
} dblist;

static int db_list_cb(void *ctx, const store_database *d) {
  dblist *l = ctx;
  influxql_value v = {.kind = INFLUXQL_V_STRING};
  v.v.s.p = d->name;
  v.v.s.len = strlen(d->name);
  l->last_id = d->id;
  if ((l->rc = influxql_series_row(l->s, &v)) < 0)
    return l->rc;
  return 0;
}

static int show_databases(http_req *r, int64_t tenant_id, influxql_result *res) {
  static const char *const cols[] = {"name"};
  influxql_series *s = influxql_result_series(res, "databases", cols, 1);
  if (!s)
    return PL_ENOMEM;
  influxql_value v = {.kind = INFLUXQL_V_STRING};
  v.v.s.p = "plateau";
  v.v.s.len = 7;
  int rc = influxql_series_row(s, &v);
  dblist l = {s, 0, 0};
  for (int page = 0; rc == 0 && page < 100; page++) {
    size_t before = s->nrows;
    rc = store_database_list(r->db, tenant_id, l.last_id, 1000, db_list_cb, &l);
    if (l.rc < 0)
      rc = l.rc;
    if (s->nrows - before < 1000)
      break;
  }
  return rc < 0 ? rc : 0;
}

/* Go's time.Duration.String() for whole hours: "0s", "720h0m0s". */
static void go_duration(int64_t hours, char *out, size_t outsz) {
  if (hours <= 0)
    snprintf(out, outsz, "0s");
  else
    snprintf(out, outsz, "%lldh0m0s", (long long)hours);
}

static int show_retention(http_req *r, const store_tenant *t, influxql_result *res) {
  static const char *const cols[] = {"name", "duration", "shardGroupDuration", "replicaN",
                                     "default"};
  influxql_series *s = influxql_result_series(res, NULL, cols, 5);
  if (!s)
    return PL_ENOMEM;
  char dur[32];
  go_duration((int64_t)t->retention_days * 24, dur, sizeof dur);
  const char *shard = t->retention_days > 0 && t->retention_days < 2      ? "1h0m0s"
                      : t->retention_days > 0 && t->retention_days <= 180 ? "24h0m0s"
                                                                          : "168h0m0s";
  influxql_value row[5] = {0};
  row[0].kind = row[1].kind = row[2].kind = INFLUXQL_V_STRING;
  row[0].v.s.p = "autogen", row[0].v.s.len = 7;
  row[1].v.s.p = dur, row[1].v.s.len = strlen(dur);
  row[2].v.s.p = shard, row[2].v.s.len = strlen(shard);
  row[3].kind = INFLUXQL_V_INT, row[3].v.i = 1;
  row[4].kind = INFLUXQL_V_BOOL, row[4].v.b = 1;
  (void)r;
  return influxql_series_row(s, row);
}

/* ---- the handler ---- */

static int64_t epoch_ns(const char *e) {
  if (!e)
    return 0;
  if (strcmp(e, "h") == 0)
    return 3600LL * 1000000000;
  if (strcmp(e, "m") == 0)
    return 60LL * 1000000000;
  if (strcmp(e, "s") == 0)
    return 1000000000;
  if (strcmp(e, "ms") == 0)
    return 1000000;
  if (strcmp(e, "u") == 0 || strcmp(e, "\xc2\xb5") == 0)
    return 1000;
  return 1; /* ns, and anything InfluxDB does not recognise */
}

static int truthy(const char *v) {
  return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcasecmp(v, "TRUE") == 0);
}

/* Bound parameters from the params JSON object: strings borrow from the JSON tree, numbers are
 * printed into `texts`; params_free releases all three. */
typedef struct bound {
  json_t *root;
  influxql_param *p;
  char (*texts)[40];
  size_t n;
} bound;

static void params_free(bound *b) {
  json_decref(b->root);
  free(b->p);
  free(b->texts);
  memset(b, 0, sizeof *b);
}

static int bind_params(const char *text, bound *b, char *err, size_t errsz) {
  memset(b, 0, sizeof *b);
  pl_err e = {{0}};
  if (pl_json_parse(text, strlen(text), 8, &b->root, &e) < 0) {
    snprintf(err, errsz, "%s", e.msg);
    return -1;
  }
  if (!json_is_object(b->root)) {
    snprintf(err, errsz, "params must be a JSON object");
    return -1;
  }
  size_t cnt = json_object_size(b->root);
  if (cnt > INFLUXQL_PARAMS_MAX) {
    snprintf(err, errsz, "too many parameters (at most %d)", INFLUXQL_PARAMS_MAX);
    return -1;
  }
  b->p = calloc(cnt ? cnt : 1, sizeof *b->p);
  b->texts = calloc(cnt ? cnt : 1, sizeof *b->texts);
  if (!b->p || !b->texts) {
    snprintf(err, errsz, "out of memory");
    return -1;
  }
  const char *key;
  json_t *v;
  json_object_foreach(b->root, key, v) {
    influxql_param *p = &b->p[b->n];
    char *num = b->texts[b->n];
    p->name = key;
    if (json_is_string(v)) {
      p->kind = INFLUXQL_PARAM_STRING;
      p->text = json_string_value(v);
    } else if (json_is_integer(v)) {
      p->kind = INFLUXQL_PARAM_INTEGER;
      snprintf(num, 40, "%lld", (long long)json_integer_value(v));
      p->text = num;
    } else if (json_is_real(v)) {
      p->kind = INFLUXQL_PARAM_NUMBER;
      snprintf(num, 40, "%.17g", json_real_value(v));
      p->text = num;
    } else if (json_is_boolean(v)) {
      p->kind = INFLUXQL_PARAM_BOOL;
      p->text = json_is_true(v) ? "true" : "false";
    } else if (json_is_object(v) && json_object_size(v) == 1) {
      const char *k2;
      json_t *v2;
      json_object_foreach(v, k2, v2) {
        if (!json_is_string(v2))
          break;
        p->text = json_string_value(v2);
        if (strcmp(k2, "identifier") == 0)
          p->kind = INFLUXQL_PARAM_IDENT;
        else if (strcmp(k2, "regex") == 0)
          p->kind = INFLUXQL_PARAM_REGEX;
        else if (strcmp(k2, "duration") == 0)
          p->kind = INFLUXQL_PARAM_DURATION;
        else if (strcmp(k2, "string") == 0)
          p->kind = INFLUXQL_PARAM_STRING;
      }
    }
    if (!p->kind || !p->text) {
      snprintf(err, errsz, "unable to bind parameter %.64s: unsupported type", key);
      return -1;
    }
    b->n++;
  }
  return 0;
}

static int audit_change(http_req *r, int64_t tenant_id, const influxql_stmt *st, const char *db,
                        const char *result, const char *detail) {
  const char *action = st->kind == INFLUXQL_STMT_CREATE_DATABASE ? "database.create"
                       : st->kind == INFLUXQL_STMT_DROP_DATABASE ? "database.delete"
                                                                 : "series.delete";
  char target[300], text[400];
  pl_buf b;
  pl_buf_init(&b, 300);
  influxql_stmt_format(st, &b);
  snprintf(text, sizeof text, "%s%s%s", b.len ? pl_buf_cstr(&b) : "", detail ? ": " : "",
           detail ? detail : "");
  pl_buf_free(&b);
  snprintf(target, sizeof target, "database:%.200s", db ? db : "plateau");
  admin_ctx c = http_admin(r);
  return admin_audit(&c, tenant_id, action, target, result, text);
}

/* The database a statement acts on: ON db / CREATE DATABASE name, else the request's. */
static const char *stmt_db(const influxql_stmt *st, const char *req_db) {
  if (st->db && st->kind != INFLUXQL_STMT_SELECT)
    return st->db;
  if (st->kind == INFLUXQL_STMT_SELECT && st->select->nsources && st->select->sources[0].db)
    return st->select->sources[0].db;
  return req_db;
}

static int needs_db(const influxql_stmt *st) {
  switch (st->kind) {
  case INFLUXQL_STMT_SHOW_DATABASES:
  case INFLUXQL_STMT_CREATE_DATABASE:
  case INFLUXQL_STMT_DROP_DATABASE:
  case INFLUXQL_STMT_UNSUPPORTED: return 0;
  default: return 1;
  }
}

static int run_statement(http_req *r, const store_tenant *t, const char *req_db,
                         const influxql_stmt *st, influxql_result *res) {
  int64_t ns = 0;
  int rc = 0;
  const char *db = stmt_db(st, req_db);
  if (influxql_stmt_writes(st)) {
    if (!auth_can(r->who.role, AUTH_PERM_DATA_WRITE) || r->who.role == AUTH_ROLE_DEVICE) {
      audit_change(r, t->id, st, db, "denied", "role may not change data");
      return influxql_result_error(res, "error authorizing query: the %s role may not change data",
                                   auth_role_name(r->who.role));
    }
  }
  if (needs_db(st) && (!db || !*db))
    return influxql_result_error(res, "database name required");
  if (strcmp(r->method, "GET") == 0 && influxql_stmt_writes(st) &&
      st->kind != INFLUXQL_STMT_DELETE) {
    /* InfluxDB still runs changes sent with GET, with this warning (not for DELETE) */
    pl_buf b;
    pl_buf_init(&b, 8192);
    if (influxql_stmt_format(st, &b) == 0 && pl_buf_printf(&b, "%c", 0) == 0) {
      size_t need = b.len + 100;
      res->message = malloc(need);
      if (res->message)
        snprintf(res->message, need,
                 "deprecated use of '%s' in a read only context, please use a POST request instead",
                 (const char *)b.data);
    }
    pl_buf_free(&b);
  }
  switch (st->kind) {
  case INFLUXQL_STMT_SHOW_DATABASES: return show_databases(r, t->id, res);
  case INFLUXQL_STMT_CREATE_DATABASE:
    rc = http_tsdb_ns(r, t->id, st->db, 1, &ns);
    if (rc == PL_EINVAL)
      return influxql_result_error(res, "invalid database name: %.127s", st->db);
    if (rc < 0)
      return rc;
    audit_change(r, t->id, st, st->db, "ok", NULL);
    return 0;
  case INFLUXQL_STMT_DROP_DATABASE: {
    if (strcmp(st->db, "plateau") == 0)
      return influxql_result_error(res, "the default database \"plateau\" cannot be dropped");
    rc = http_tsdb_ns(r, t->id, st->db, 0, &ns);
    if (rc == PL_ENOTFOUND || rc == PL_EINVAL)
      return 0; /* InfluxDB: dropping a missing database succeeds */
    if (rc < 0)
      return rc;
    pl_err err = {{0}};
    tsdb_str all = {NULL, 0};
    int64_t n = tsdb_delete(r->deps->tsdb, ns, all, 0, INT64_MIN, INT64_MAX, &err);
    if (n < 0) {
      audit_change(r, t->id, st, st->db, "error", err.msg);
      return influxql_result_error(res, "drop failed: %s",
                                   err.msg[0] ? err.msg : pl_strerror((int)n));
    }
    rc = store_database_delete(r->db, t->id, ns & ~STORE_DATABASE_NS_BASE);
    if (rc < 0 && rc != PL_ENOTFOUND)
      return rc;
    audit_change(r, t->id, st, st->db, "ok", NULL);
    return 0;
  }
  case INFLUXQL_STMT_SHOW_RETENTION_POLICIES:
    rc = http_tsdb_ns(r, t->id, db, 0, &ns);
    if (rc == PL_ENOTFOUND || rc == PL_EINVAL)
      return influxql_result_error(res, "database not found: %.127s", db);
    if (rc < 0)
      return rc;
    return show_retention(r, t, res);
  default: break;
  }
  rc = http_tsdb_ns(r, t->id, db, 0, &ns);
  if (rc == PL_ENOTFOUND || rc == PL_EINVAL)
    return influxql_result_error(res, "database not found: %.127s", db);
  if (rc < 0)
    return rc;
  dbctx dc = {r, t->id};
  influxql_exec_opts o = {0};
  o.db = r->deps->tsdb;
  o.ns = ns;
  o.db_name = db;
  o.now_ns = pl_now_ns();
  o.points_max = QUERY_POINTS_MAX;
  o.series_max = QUERY_SERIES_MAX;
  o.resolve_db = resolve_db;
  o.resolve_ctx = &dc;
  rc = influxql_exec(&o, st, res);
  if (rc == 0 && influxql_stmt_writes(st))
    audit_change(r, t->id, st, db, res->error ? "error" : "ok", res->error);
  return rc;
}

static int query(http_req *r) {
  qparams qp = {r, {{0}, {0}, 0}};
  influxql_out_opts oo = {INFLUXQL_FMT_JSON, 0, 0};
  const char *accept = http_header(r, MHD_HTTP_HEADER_ACCEPT);
  if (accept && (strstr(accept, "application/csv") || strstr(accept, "text/csv")))
    oo.format = INFLUXQL_FMT_CSV;
  if (strcmp(r->method, "POST") == 0 && is_form(r) && r->body.len) {
    int rc = form_parse((const char *)r->body.data, r->body.len, &qp.body);
    if (rc < 0) {
      form_free(&qp.body);
      return reply_influx_error(r, 400, &oo, "%s",
                                rc == PL_ELIMIT ? "too many form fields" : "malformed form body");
    }
  }
  int status = influx_auth(r, &qp, &oo);
  if (status) {
    form_free(&qp.body);
    return status;
  }
  if (!r->deps->tsdb) {
    form_free(&qp.body);
    return reply_influx_error(r, 503, &oo, "the time-series engine is not running");
  }
  if (!auth_can(r->who.role, AUTH_PERM_DATA_READ)) {
    form_free(&qp.body);
    return reply_influx_error(r, 403, &oo, "error authorizing query: the %s role may not read data",
                              auth_role_name(r->who.role));
  }
  store_tenant t;
  if ((status = http_tenant(r, "telemetry", &t))) {
    form_free(&qp.body);
    return status;
  }
  oo.epoch_div = param(&qp, "epoch") ? epoch_ns(param(&qp, "epoch")) : 0;
  oo.pretty = truthy(param(&qp, "pretty"));
  int chunked = truthy(param(&qp, "chunked"));
  size_t chunk_size = CHUNK_SIZE_DEFAULT;
  const char *cs = param(&qp, "chunk_size");
  if (cs) {
    char *end;
    errno = 0;
    long long v = strtoll(cs, &end, 10);
    if (!errno && !*end && v > 0)
      chunk_size = (size_t)v;
  }
  const char *q = param(&qp, "q");
  if (!q || !*q) {
    form_free(&qp.body);
    return reply_influx_error(r, 400, &oo, "missing required parameter \"q\"");
  }
  /* InfluxDB trims the query before parsing; error positions count from there. */
  size_t qlen = strlen(q);
  while (qlen && isspace((unsigned char)q[qlen - 1]))
    qlen--;
  while (qlen && isspace((unsigned char)*q))
    q++, qlen--;
  bound bp = {0};
  const char *ptext = param(&qp, "params");
  if (ptext && *ptext) {
    char perr[300];
    if (bind_params(ptext, &bp, perr, sizeof perr) < 0) {
      params_free(&bp);
      form_free(&qp.body);
      return reply_influx_error(r, 400, &oo, "error parsing query parameters: %s", perr);
    }
  }
  influxql_query *parsed = NULL;
  pl_err perr = {{0}};
  int rc = influxql_parse(q, qlen, bp.p, bp.n, &parsed, &perr);
  params_free(&bp);
  if (rc < 0) {
    form_free(&qp.body);
    if (rc == PL_ENOMEM)
      return reply_influx_error(r, 500, &oo, "out of memory");
    return reply_influx_error(r, 400, &oo, "error parsing query: %s", perr.msg);
  }
  /* tz() names are checked before anything runs, as InfluxDB's parser does */
  for (size_t i = 0; i < parsed->nstmts; i++) {
    const influxql_stmt *st = &parsed->stmts[i];
    if (st->kind == INFLUXQL_STMT_SELECT && st->select->tz &&
        influxql_tz_check(st->select->tz) < 0) {
      char tzname[200];
      snprintf(tzname, sizeof tzname, "%s", st->select->tz);
      influxql_query_free(parsed);
      form_free(&qp.body);
      return reply_influx_error(r, 400, &oo, "error parsing query: unable to find time zone %s",
                                tzname);
    }
  }
  const char *db = param(&qp, "db");
  influxql_result **results = calloc(parsed->nstmts ? parsed->nstmts : 1, sizeof *results);
  size_t nres = 0;
  rc = results ? 0 : PL_ENOMEM;
  for (size_t i = 0; i < parsed->nstmts && rc == 0; i++) {
    influxql_result *res = malloc(sizeof *res);
    if (!res) {
      rc = PL_ENOMEM;
      break;
    }
    influxql_result_init(res, (int)i);
    results[nres++] = res;
    rc = run_statement(r, &t, db, &parsed->stmts[i], res);
    if (rc == 0 && res->error)
      break; /* the first failing statement ends the query */
  }
  influxql_query_free(parsed);
  pl_buf out;
  pl_buf_init(&out, 0);
  if (rc < 0) {
    PL_LOG(PL_LOG_ERROR, "influxql", "req=%s rc=%d msg=\"%s\"", r->id_str, rc, pl_strerror(rc));
    reply_influx_error(r, 500, &oo, "%s (request %s)", pl_strerror(rc), r->id_str);
  } else if (chunked && oo.format == INFLUXQL_FMT_JSON) {
    for (size_t i = 0; i < nres && rc == 0; i++) {
      influxql_result *res = results[i];
      if (!res->nseries || res->error) {
        rc = influxql_write_chunk(&oo, res, 0, 0, 0, 0, 0, 0, &out);
        continue;
      }
      for (size_t s = 0; s < res->nseries && rc == 0; s++) {
        size_t rows = res->series[s]->nrows;
        for (size_t from = 0; from < rows && rc == 0; from += chunk_size) {
          size_t to = from + chunk_size < rows ? from + chunk_size : rows;
          int series_partial = to < rows, last = !series_partial && s + 1 == res->nseries;
          rc = influxql_write_chunk(&oo, res, s, s + 1, from, to, series_partial, !last, &out);
        }
      }
    }
    if (rc == 0)
      reply_body(r, 200, "application/json", &out);
  } else {
    rc = influxql_write_results(&oo, results, nres, &out);
    if (rc == 0)
      reply_body(r, 200, oo.format == INFLUXQL_FMT_CSV ? "text/csv" : "application/json", &out);
  }
  if (rc < 0 && !r->responded)
    reply_influx_error(r, 500, &oo, "%s", pl_strerror(rc));
  pl_buf_free(&out);
  for (size_t i = 0; i < nres; i++) {
    influxql_result_free(results[i]);
    free(results[i]);
  }
  free(results);
  form_free(&qp.body);
  return r->status;
}

const http_route api_influxql_routes[] = {
    {"GET", "/query", (void *)query, HTTP_PERM_PUBLIC, "influxql.query"},
    {"POST", "/query", (void *)query, HTTP_PERM_PUBLIC, "influxql.query"},
};
const size_t api_influxql_nroutes = sizeof api_influxql_routes / sizeof api_influxql_routes[0];
