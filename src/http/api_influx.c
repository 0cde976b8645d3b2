/* InfluxDB 1.x compatible writing: POST /write and GET|HEAD /ping, so that Telegraf, Node-RED,
 * the influx CLI and scripts written for InfluxDB write to Plateau unchanged
 * (docs/influx-compat.md).
 *
 *   POST /write?db=D[&rp=R][&precision=P][&u=U&p=TOKEN]   line protocol, plain or gzip
 *   GET|HEAD /ping[?verbose=true]
 *
 * These routes are public to the router and authenticate here, because InfluxDB's clients read
 * InfluxDB's answers: 401 {"error":"unable to parse authentication credentials"} without
 * credentials and {"error":"authorization failed"} with bad ones, every error as
 * {"error":"..."} with the message repeated in X-Influxdb-Error, and the version headers on
 * every response. A Plateau API token (or device token) is the credential, in any of InfluxDB's
 * places: Authorization: Bearer T, Authorization: Token T (or "Token user:T" as InfluxDB 1.8
 * takes it), Basic auth with T as the password, or the u/p parameters with p = T; user names
 * are ignored.
 *
 * `db` names a database of the caller's tenant (http_tsdb_ns): "plateau" is the tenant's default
 * database, where device telemetry lives; others are created with CREATE DATABASE (/query), and
 * writing to one that does not exist is 404 "database not found", as in InfluxDB. Another
 * tenant's database of the same name is a different database.
 *
 * A body is written all or nothing: it is parsed completely (src/ingest/lineproto.c) and
 * handed to the engine as one tsdb_write, which stores every point or none. So a bad line, or a
 * field whose type conflicts with what the series holds, fails the whole request with 400 and
 * InfluxDB's wording, and nothing of it is stored (InfluxDB would store the other points and
 * answer "partial write"; the conflict message keeps that prefix because clients such as
 * Telegraf recognise it as "do not retry", and its dropped= counts every point of the body).
 *
 * In the default database, measurement "device" holds device telemetry as the native API and
 * MQTT write it: its one tag is device=NAME of a device of the tenant, and a device token may
 * write only that, for itself.
 */
#include "http/http_int.h"

#include "base/clock.h"
#include "base/log.h"
#include "base/map.h"
#include "ingest/lineproto.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* The InfluxDB version announced: the last 1.x release, which Grafana's InfluxQL data source,
 * Telegraf, Chronograf and the influx CLI all take as "1.x". */
#define INFLUX_VERSION "1.8.10"
#define QUOTE_BYTES_MAX 4096       /* of an offending line, in an error body */
#define ERROR_HEADER_BYTES_MAX 512 /* of X-Influxdb-Error */
#define INFLATE_FACTOR 4 /* a gzip body may inflate to this many times http_max_body_bytes */

/* ---- InfluxDB's response shapes ---- */

static void influx_headers(http_req *r) {
  http_add_header(r, "X-Influxdb-Version", INFLUX_VERSION);
  http_add_header(r, "X-Influxdb-Build", "OSS");
  http_add_header(r, "Request-Id", r->id_str);
}

/* The length of the valid UTF-8 sequence at s, or 0. */
static size_t utf8_len(const unsigned char *s, size_t left) {
  unsigned c = s[0];
  size_t n = c < 0x80                   ? 1
             : (c >= 0xc2 && c <= 0xdf) ? 2
             : (c >= 0xe0 && c <= 0xef) ? 3
             : (c >= 0xf0 && c <= 0xf4) ? 4
                                        : 0;
  if (n == 0 || n > left)
    return 0;
  return n == 1 || pl_utf8_valid(s, n) ? n : 0;
}

/* Replies {"error": msg} with status (msg may hold any bytes: invalid UTF-8 becomes U+FFFD so
 * the body stays JSON), and repeats the message in X-Influxdb-Error, cut and without control
 * characters. Returns status. */
static int influx_error(http_req *r, int status, const char *msg) {
  size_t len = strlen(msg);
  pl_buf *o = &r->out;
  pl_buf_reset(o);
  int rc = pl_buf_append_str(o, "{\"error\":\"");
  for (size_t i = 0; i < len && rc == 0;) {
    unsigned char c = (unsigned char)msg[i];
    size_t n = utf8_len((const unsigned char *)msg + i, len - i);
    if (n == 0) {
      rc = pl_buf_append_str(o, "\\ufffd");
      i++;
    } else if (c == '"' || c == '\\') {
      rc = pl_buf_append_byte(o, '\\');
      if (!rc)
        rc = pl_buf_append_byte(o, c);
      i++;
    } else if (c < 0x20) {
      rc = c == '\n'   ? pl_buf_append_str(o, "\\n")
           : c == '\t' ? pl_buf_append_str(o, "\\t")
                       : pl_buf_printf(o, "\\u%04x", c);
      i++;
    } else {
      rc = pl_buf_append(o, msg + i, n);
      i += n;
    }
  }
  if (!rc)
    rc = pl_buf_append_str(o, "\"}\n");
  if (rc)
    pl_buf_reset(o);
  r->status = status;
  r->responded = 1;
  r->content_type = "application/json";
  char hdr[ERROR_HEADER_BYTES_MAX + 1];
  size_t n = len < ERROR_HEADER_BYTES_MAX ? len : ERROR_HEADER_BYTES_MAX;
  while (n < len && n > 0 && ((unsigned char)msg[n] & 0xc0) == 0x80)
    n--; /* whole characters */
  for (size_t i = 0; i < n; i++)
    hdr[i] = (unsigned char)msg[i] < 0x20 || msg[i] == 0x7f ? ' ' : msg[i];
  hdr[n] = 0;
  http_add_header(r, "X-Influxdb-Error", hdr);
  if (status >= 500)
    PL_LOG(PL_LOG_ERROR, "influx", "req=%s status=%d", r->id_str, status);
  return status;
}

static int influx_errorf(http_req *r, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int influx_errorf(http_req *r, int status, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return influx_error(r, status, msg);
}

static int influx_empty(http_req *r, int status) {
  pl_buf_reset(&r->out);
  r->status = status;
  r->responded = 1;
  r->content_type = "application/json"; /* as InfluxDB labels even its 204s */
  return status;
}

int http_influx_path(const char *path) {
  return strcmp(path, "/write") == 0 || strcmp(path, "/query") == 0 || strcmp(path, "/ping") == 0;
}

void http_influx_too_large(http_req *r) {
  influx_headers(r);
  influx_error(r, 413, "Request Entity Too Large");
}

/* ---- authentication ---- */

int http_influx_credentials(http_req *r, const char *p, char tok[HTTP_CREDENTIAL_BYTES_MAX]) {
  if (p && *p) {
    snprintf(tok, HTTP_CREDENTIAL_BYTES_MAX, "%s", p);
    return 1;
  }
  const char *h = http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
  if (!h || !*h)
    return 0;
  if (strncasecmp(h, "Bearer ", 7) == 0 || strncasecmp(h, "Token ", 6) == 0) {
    const char *t = h + (h[0] == 'B' || h[0] == 'b' ? 7 : 6);
    while (*t == ' ')
      t++;
    const char *colon = strchr(t, ':'); /* "Token user:password" (InfluxDB 1.8) */
    if (colon && (h[0] == 'T' || h[0] == 't'))
      t = colon + 1;
    if (!*t)
      return -1;
    snprintf(tok, HTTP_CREDENTIAL_BYTES_MAX, "%s", t);
    return 1;
  }
  if (strncasecmp(h, "Basic ", 6) == 0) {
    const char *b64 = h + 6;
    while (*b64 == ' ')
      b64++;
    unsigned char raw[HTTP_CREDENTIAL_BYTES_MAX * 2];
    size_t n = 0;
    if (sodium_base642bin(raw, sizeof raw - 1, b64, strlen(b64), NULL, &n, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
      return -1;
    raw[n] = 0;
    const char *colon = memchr(raw, ':', n);
    int found = colon && colon[1] ? 1 : -1;
    if (found > 0)
      snprintf(tok, HTTP_CREDENTIAL_BYTES_MAX, "%s", colon + 1);
    sodium_memzero(raw, sizeof raw);
    return found;
  }
  return -1;
}

/* Authenticates the request; replies (401, 503) and returns > 0 on failure. */
static int influx_auth(http_req *r) {
  char tok[HTTP_CREDENTIAL_BYTES_MAX];
  int found = http_influx_credentials(r, http_query(r, "p"), tok);
  if (found <= 0) {
    http_add_header(r, "Www-Authenticate", "Basic realm=\"InfluxDB\"");
    return influx_error(r, 401, "unable to parse authentication credentials");
  }
  int rc = auth_authenticate(r->db, tok, pl_now_ms(), &r->who);
  sodium_memzero(tok, sizeof tok);
  if (rc == PL_EBUSY)
    return influx_error(r, 503, "the database is busy; retry shortly");
  if (rc < 0) {
    http_add_header(r, "Www-Authenticate", "Basic realm=\"InfluxDB\"");
    return influx_error(r, 401, "authorization failed");
  }
  r->authed = 1;
  auth_principal_actor(&r->who, r->actor, sizeof r->actor);
  return 0;
}

/* ---- /ping ---- */

static int ping(http_req *r) {
  influx_headers(r);
  const char *v = http_query(r, "verbose");
  if (v && *v && strcmp(v, "0") != 0 && strcasecmp(v, "false") != 0)
    return http_reply_json(r, 200, json_pack("{s:s}", "version", INFLUX_VERSION));
  return influx_empty(r, 204);
}

/* ---- the body ---- */

/* The body as line protocol: r->body, or its gunzipped form in *inflated (every member of a
 * multi-member gzip stream, as InfluxDB's reader takes them), at most INFLATE_FACTOR times
 * http_max_body_bytes. Replies and returns > 0 on failure. */
static int read_body(http_req *r, pl_buf *inflated, const char **data, size_t *len) {
  const char *enc = http_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING);
  if (!enc || !*enc || strcasecmp(enc, "identity") == 0 || r->body.len == 0) {
    *data = (const char *)r->body.data;
    *len = r->body.len;
    return 0;
  }
  if (strcasecmp(enc, "gzip") != 0 && strcasecmp(enc, "x-gzip") != 0)
    return influx_errorf(
        r, 415, "unsupported Content-Encoding \"%.32s\": send the body plain or gzip-compressed",
        enc);
  size_t max = (size_t)r->deps->cfg->http_max_body_bytes * INFLATE_FACTOR;
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
    return influx_error(r, 500, "out of memory");
  zs.next_in = r->body.data;
  zs.avail_in = (uInt)r->body.len;
  int st = 0;
  for (;;) {
    size_t room = max - inflated->len;
    if (room > 1 << 20)
      room = 1 << 20;
    if (room == 0) {
      st = influx_error(r, 413, "Request Entity Too Large");
      break;
    }
    int brc = pl_buf_reserve(inflated, room);
    if (brc < 0) {
      st = brc == PL_ELIMIT ? influx_error(r, 413, "Request Entity Too Large")
                            : influx_error(r, 500, "out of memory");
      break;
    }
    zs.next_out = inflated->data + inflated->len;
    zs.avail_out = (uInt)room;
    int zrc = inflate(&zs, Z_NO_FLUSH);
    inflated->len += room - zs.avail_out;
    if (zrc == Z_STREAM_END) {
      if (zs.avail_in == 0)
        break;
      inflateReset(&zs); /* the next member */
      continue;
    }
    if (zrc == Z_OK)
      continue;
    if (zrc == Z_BUF_ERROR && zs.avail_in == 0) {
      st = influx_error(r, 400, "unexpected EOF");
      break;
    }
    if (zrc == Z_MEM_ERROR) {
      st = influx_error(r, 500, "out of memory");
      break;
    }
    st = influx_errorf(r, 400, "gzip: %s",
                       zs.msg && strstr(zs.msg, "header") ? "invalid header" : "invalid data");
    break;
  }
  inflateEnd(&zs);
  if (st)
    return st;
  *data = (const char *)inflated->data;
  *len = inflated->len;
  return 0;
}

/* ---- device telemetry in the default database ---- */

typedef struct device_rows {
  pl_map *ids; /* device name -> id, once per name per request */
} device_rows;

static int str_is(tsdb_str s, const char *lit) {
  return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

/* Checks the rows against the rules of the default database: measurement "device" has the one
 * tag device=NAME of an existing device; a device token writes only such rows, for itself.
 * Collects the devices written, to record them as seen. Replies and returns > 0 when refused. */
static int check_device_rows(http_req *r, int64_t tenant_id, const lp_batch *b, device_rows *dev) {
  int is_device = r->who.role == AUTH_ROLE_DEVICE;
  tsdb_str last = {NULL, 0};
  for (size_t i = 0; i < b->nrows; i++) {
    const tsdb_row *row = &b->rows[i];
    if (!str_is(row->measurement, "device")) {
      if (is_device)
        return influx_errorf(
            r, 403,
            "line %u: a device token writes only its own telemetry: measurement \"device\" with "
            "the one tag device=%s",
            (unsigned)b->lines[i], r->who.name);
      continue;
    }
    if (row->ntags != 1 || !str_is(row->tags[0].key, "device"))
      return influx_errorf(
          r, 400,
          "partial write: line %u: measurement \"device\" holds device telemetry: its one tag is "
          "device=NAME dropped=%zu",
          (unsigned)b->lines[i], b->nrows);
    tsdb_str name = row->tags[0].value;
    if (last.p && name.len == last.len && memcmp(name.p, last.p, name.len) == 0)
      continue;
    last = name;
    if (is_device) {
      if (!str_is(name, r->who.name))
        return influx_errorf(r, 403,
                             "line %u: a device token writes only its own telemetry (device=%s)",
                             (unsigned)b->lines[i], r->who.name);
      continue;
    }
    if (pl_map_get(dev->ids, name.p, name.len))
      continue;
    char cname[128];
    store_device d;
    memset(&d, 0, sizeof d);
    int rc = name.len < sizeof cname ? 0 : PL_ENOTFOUND;
    if (rc == 0) {
      memcpy(cname, name.p, name.len);
      cname[name.len] = 0;
      rc = store_device_get_by_name(r->db, tenant_id, cname, &d);
    }
    if (rc == PL_ENOTFOUND)
      return influx_errorf(
          r, 400,
          "partial write: line %u: no device named \"%.*s\" in this tenant: create it first (POST "
          "/api/v1/devices) dropped=%zu",
          (unsigned)b->lines[i], (int)(name.len > 64 ? 64 : name.len), name.p, b->nrows);
    if (rc < 0)
      return rc == PL_EBUSY ? influx_error(r, 503, "the database is busy; retry shortly")
                            : influx_error(r, 500, "the device could not be looked up");
    int64_t id = d.id;
    store_device_clear(&d);
    if (pl_map_put(dev->ids, name.p, name.len, (void *)(uintptr_t)id, NULL) < 0)
      return influx_error(r, 500, "out of memory");
  }
  return 0;
}

static void touch_devices(http_req *r, int64_t tenant_id, device_rows *dev) {
  int64_t now_ms = pl_now_ms();
  if (r->who.role == AUTH_ROLE_DEVICE) {
    store_device_touch(r->db, tenant_id, r->who.device_id, now_ms);
    return;
  }
  size_t it = 0;
  const void *k;
  size_t kl;
  void *v;
  while (pl_map_next(dev->ids, &it, &k, &kl, &v)) {
    int rc = store_device_touch(r->db, tenant_id, (int64_t)(uintptr_t)v, now_ms);
    if (rc < 0)
      PL_LOG(PL_LOG_WARN, "influx", "req=%s device_touch device_id=%lld err=\"%s\"", r->id_str,
             (long long)(uintptr_t)v, pl_strerror(rc));
  }
}

/* ---- engine errors in InfluxDB's words ---- */

/* tsdb_write names the row it refused: "row N: ...". */
static size_t row_of(const char *msg, const char **rest) {
  size_t row = 0;
  const char *p = msg;
  if (strncmp(p, "row ", 4) != 0) {
    *rest = msg;
    return SIZE_MAX;
  }
  for (p += 4; *p >= '0' && *p <= '9'; p++)
    row = row * 10 + (size_t)(*p - '0');
  *rest = strncmp(p, ": ", 2) == 0 ? p + 2 : p;
  return row;
}

/* The engine's type conflict "row N: field "F" is T1 here but T2 in the series" as InfluxDB
 * says it. Returns 0 when the message is not of that shape. */
static int conflict_message(const char *msg, const lp_batch *b, char *out, size_t outsz) {
  const char *rest;
  size_t row = row_of(msg, &rest);
  static const char *const types[] = {"float", "integer", "boolean", "string"};
  const char *here = strstr(rest, " here but ");
  const char *tail = here ? strstr(here, " in the series") : NULL;
  if (row >= b->nrows || strncmp(rest, "field \"", 7) != 0 || !here || !tail)
    return 0;
  const char *t1 = NULL, *t2 = NULL;
  size_t field_len = 0;
  for (int i = 0; i < 4; i++) {
    size_t n = strlen(types[i]);
    if ((size_t)(here - rest) > n + 5 && strncmp(here - n, types[i], n) == 0 &&
        strncmp(here - n - 5, "\" is ", 5) == 0) {
      t1 = types[i];
      field_len = (size_t)(here - n - 5 - (rest + 7));
    }
    if ((size_t)(tail - here) == 10 + n && strncmp(here + 10, types[i], n) == 0)
      t2 = types[i];
  }
  if (!t1 || !t2)
    return 0;
  const tsdb_row *r = &b->rows[row];
  snprintf(out, outsz,
           "partial write: field type conflict: input field \"%.*s\" on measurement \"%.*s\" is "
           "type %s, already "
           "exists as type %s dropped=%zu",
           (int)(field_len > 256 ? 256 : field_len), rest + 7,
           (int)(r->measurement.len > 256 ? 256 : r->measurement.len), r->measurement.p, t1, t2,
           b->nrows);
  return 1;
}

static int reply_write_error(http_req *r, int rc, const pl_err *err, const lp_batch *b) {
  char msg[1024];
  const char *rest;
  switch (rc) {
  case PL_ECONFLICT:
    if (conflict_message(err->msg, b, msg, sizeof msg))
      return influx_error(r, 400, msg);
    return influx_errorf(r, 400, "partial write: %s dropped=%zu", err->msg, b->nrows);
  case PL_EINVAL:
  case PL_ELIMIT: {
    size_t row = row_of(err->msg, &rest);
    if (row < b->nrows)
      return influx_errorf(r, 400, "partial write: line %u: %s dropped=%zu",
                           (unsigned)b->lines[row], rest, b->nrows);
    return influx_errorf(r, rc == PL_ELIMIT ? 413 : 400, "partial write: %s dropped=%zu", err->msg,
                         b->nrows);
  }
  case PL_ESTATE:
    return influx_error(
        r, 503,
        "the time-series engine refuses writes after a storage failure; nothing was stored "
        "(an operator must restart the server)");
  case PL_EBUSY: return influx_error(r, 503, "the time-series engine is busy; retry shortly");
  case PL_ENOMEM: return influx_error(r, 500, "out of memory");
  default:
    return influx_errorf(r, 500, "%s (request %s)", err->msg[0] ? err->msg : pl_strerror(rc),
                         r->id_str);
  }
}

/* ---- /write ---- */

static int write_points(http_req *r) {
  influx_headers(r);
  int st = influx_auth(r);
  if (st)
    return st;
  const char *db = http_query(r, "db");
  if (!db || !*db)
    return influx_error(r, 400, "database is required");
  const char *rp = http_query(r, "rp");
  /* Plateau keeps a tenant's data for its retention_days; the one policy of each database is
   * InfluxDB's default, "autogen". */
  if (rp && *rp && strcmp(rp, "autogen") != 0)
    return influx_errorf(r, 500, "retention policy not found: %.128s", rp);
  lp_precision prec;
  const char *ps = http_query(r, "precision");
  if (lp_precision_parse(ps, &prec) < 0)
    return influx_errorf(r, 400, "invalid precision \"%.16s\": use n, u, ms, s, m or h", ps);
  int64_t tenant_id = r->who.tenant_id, ns;
  int rc = http_tsdb_ns(r, tenant_id, db, 0, &ns);
  if (rc == PL_ENOTFOUND || rc == PL_EINVAL)
    return influx_errorf(r, 404, "database not found: \"%.128s\"", db);
  if (rc == PL_EBUSY)
    return influx_error(r, 503, "the database is busy; retry shortly");
  if (rc < 0)
    return influx_errorf(r, 500, "the database could not be looked up (request %s)", r->id_str);
  int is_default = ns == tenant_id;
  if (!auth_can(r->who.role, AUTH_PERM_DATA_WRITE) ||
      (r->who.role == AUTH_ROLE_DEVICE && !is_default))
    return influx_errorf(r, 403, "\"%s\" user is not authorized to write to database \"%.128s\"",
                         r->actor, db);
  if (!r->deps->tsdb)
    return influx_error(r, 503, "the time-series engine is not running");

  pl_buf inflated;
  pl_buf_init(&inflated, (size_t)r->deps->cfg->http_max_body_bytes * INFLATE_FACTOR);
  const char *data = NULL;
  size_t len = 0;
  if ((st = read_body(r, &inflated, &data, &len))) {
    pl_buf_free(&inflated);
    return st;
  }
  lp_batch b;
  lp_batch_init(&b);
  lp_error perr;
  device_rows dev = {NULL};
  rc = lp_parse(data, len, prec, pl_now_ns(), NULL, &b, &perr);
  if (rc < 0) {
    pl_buf msg;
    pl_buf_init(&msg, 0);
    int frc = lp_error_format(&perr, data, QUOTE_BYTES_MAX, &msg);
    if (perr.code == PL_ENOMEM || frc < 0)
      st = influx_error(r, 500, "out of memory");
    else if (perr.code == PL_ELIMIT)
      st = influx_errorf(r, 413, "Request Entity Too Large: %s", pl_buf_cstr(&msg));
    else
      st = influx_error(r, 400, pl_buf_cstr(&msg));
    pl_buf_free(&msg);
  } else if (b.nrows > 0) {
    if (is_default && !(dev.ids = pl_map_new()))
      st = influx_error(r, 500, "out of memory");
    if (!st && is_default)
      st = check_device_rows(r, tenant_id, &b, &dev);
    if (!st) {
      pl_err err = {{0}};
      tsdb_write_stats stats = {0};
      rc = tsdb_write(r->deps->tsdb, ns, b.rows, b.nrows, &stats, &err);
      if (rc < 0)
        st = reply_write_error(r, rc, &err, &b);
      else if (is_default)
        touch_devices(r, tenant_id, &dev);
    }
  }
  if (!st)
    st = influx_empty(r, 204);
  pl_map_free(dev.ids);
  lp_batch_free(&b);
  pl_buf_free(&inflated);
  return st;
}

const http_route api_influx_routes[] = {
    {"POST", "/write", (void *)write_points, HTTP_PERM_PUBLIC, "influx.write"},
    {"GET", "/ping", (void *)ping, HTTP_PERM_PUBLIC, "influx.ping"},
};
const size_t api_influx_nroutes = sizeof api_influx_routes / sizeof api_influx_routes[0];
