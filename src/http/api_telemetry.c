/* Telemetry, the write side: POST /api/v1/telemetry stores points in the tsdb engine
 * (src/tsdb/tsdb.h), in the device form ({"device": NAME, "values": {...}}) or the generic one
 * ({"measurement", "tags", "values"}), one object or an array of them. The read side (/series,
 * /query, a device's latest values) and deletes are api_telemetry_query.c's; the two share the
 * engine's replies below through http_int.h.
 *
 * Every request acts on one tenant (http_tenant). Writes are data, not configuration, and are not
 * audited. A write is validated completely before the engine sees it, and the whole body goes to
 * one tsdb_write, which stores all of it or nothing. The rows, tags and fields handed to the
 * engine live in one allocation sized from the parsed body and borrow their strings from it.
 */
#include "http/http_int.h"

#include "base/clock.h"
#include "base/log.h"
#include "base/map.h"
#include "ingest/telemetry_json.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WRITE_ITEMS_MAX 10000
#define NS_PER_MS 1000000LL

/* ---- the engine's replies, shared with api_telemetry_query.c ---- */

int http_tsdb_ready(http_req *r) {
  if (r->deps->tsdb) return 0;
  return http_reply_error(r, 503, "the time-series engine is not running");
}

/* The reply for an engine error. PL_ESTATE means the engine refuses writes after a durability
 * failure: nothing was stored, and retrying will not help until the daemon is restarted. */
int http_reply_tsdb(http_req *r, int rc, const pl_err *err) {
  if (rc == PL_ESTATE)
    return http_reply_error(r, 503, "the time-series engine refuses writes after a storage failure; nothing was "
                                    "stored (an operator must restart the daemon)");
  if (rc == PL_EBUSY) return http_reply_error(r, 503, "the time-series engine is busy; retry shortly");
  return http_reply_pl(r, rc, err);
}

/* ---- POST /api/v1/telemetry ---- */

typedef struct write_dev {
  const char *name; /* borrowed from the body or the principal */
  int64_t id;
} write_dev;

typedef struct write_batch {
  http_req *r;
  int64_t tenant_id;
  int64_t now_ns;
  tsdb_row *rows;
  tsdb_tag *tags;
  tsdb_field *fields;
  write_dev *devs;
  size_t ntags, nfields, ndevs;
  size_t last_dev;
  pl_map *dev_index; /* name -> index + 1 in devs, made when a second device shows up */
} write_batch;

static const char *const item_keys[] = {"device", "measurement", "tags", "ts", "time", "values"};

/* The device a row belongs to: checked against the caller (a device token writes only for
 * itself) and looked up in the tenant once per request. */
static int resolve_device(write_batch *w, const char *name, int64_t *id, pl_err *err) {
  http_req *r = w->r;
  size_t len = strlen(name);
  if (!len || len > HTTP_DEVICE_NAME_BYTES_MAX)
    return pl_err_set(err, PL_EINVAL, "device: a device name has 1 to 127 bytes");
  if (w->ndevs && strcmp(w->devs[w->last_dev].name, name) == 0) {
    *id = w->devs[w->last_dev].id;
    return 0;
  }
  if (r->who.role == AUTH_ROLE_DEVICE) {
    if (strcmp(name, r->who.name) != 0)
      return pl_err_set(err, PL_EPERM, "device \"%.64s\": a device token writes only its own data (this token is "
                                       "device \"%.64s\")", name, r->who.name);
    w->devs[0] = (write_dev){r->who.name, r->who.device_id};
    w->ndevs = 1;
    *id = r->who.device_id;
    return 0;
  }
  if (w->ndevs) {
    if (!w->dev_index) {
      if (!(w->dev_index = pl_map_new())) return PL_ENOMEM;
      for (size_t i = 0; i < w->ndevs; i++)
        if (pl_map_put(w->dev_index, w->devs[i].name, strlen(w->devs[i].name), (void *)(uintptr_t)(i + 1), NULL) < 0)
          return PL_ENOMEM;
    }
    uintptr_t at = (uintptr_t)pl_map_get(w->dev_index, name, len);
    if (at) {
      w->last_dev = at - 1;
      *id = w->devs[w->last_dev].id;
      return 0;
    }
  }
  store_device d;
  memset(&d, 0, sizeof d);
  int rc = store_device_get_by_name(r->db, w->tenant_id, name, &d);
  if (rc == PL_ENOTFOUND)
    return pl_err_set(err, rc, "no device named \"%.64s\" in this tenant: create it first (POST /api/v1/devices)",
                      name);
  if (rc < 0) return rc;
  *id = d.id;
  store_device_clear(&d);
  w->devs[w->ndevs] = (write_dev){name, *id};
  if (w->dev_index && pl_map_put(w->dev_index, name, len, (void *)(uintptr_t)(w->ndevs + 1), NULL) < 0)
    return PL_ENOMEM;
  w->last_dev = w->ndevs++;
  return 0;
}

/* Lengths only: the engine checks the bytes (UTF-8) of names. */
static int check_name(const char *what, size_t len, pl_err *err) {
  if (!len || len > TSDB_NAME_BYTES_MAX)
    return pl_err_set(err, PL_EINVAL, "%s: a name has 1 to %d bytes (got %zu)", what, TSDB_NAME_BYTES_MAX, len);
  return 0;
}

/* Checks item i and fills rows[i] with tags and fields taken from the batch's arrays. */
static int build_row(write_batch *w, size_t i, json_t *item, pl_err *err) {
  http_req *r = w->r;
  if (!json_is_object(item)) return pl_err_set(err, PL_EINVAL, "must be a JSON object");
  const char *key;
  json_t *val;
  json_object_foreach(item, key, val) {
    size_t k = 0;
    while (k < sizeof item_keys / sizeof item_keys[0] && strcmp(key, item_keys[k]) != 0) k++;
    if (k == sizeof item_keys / sizeof item_keys[0])
      return pl_err_set(err, PL_EINVAL, "unknown field \"%.64s\" (expected device or measurement, tags, ts or "
                                        "time, values)", key);
  }
  json_t *device = json_object_get(item, "device"), *meas = json_object_get(item, "measurement");
  json_t *tags = json_object_get(item, "tags"), *ts = json_object_get(item, "ts");
  json_t *tm = json_object_get(item, "time"), *values = json_object_get(item, "values");
  tsdb_row *row = &w->rows[i];
  memset(row, 0, sizeof *row);
  if (device && meas) return pl_err_set(err, PL_EINVAL, "give either device or measurement, not both");
  if (device && !json_is_string(device)) return pl_err_set(err, PL_EINVAL, "device must be a string");
  if (meas && !json_is_string(meas)) return pl_err_set(err, PL_EINVAL, "measurement must be a string");
  if (tags && !json_is_object(tags)) return pl_err_set(err, PL_EINVAL, "tags must be an object of strings");
  const char *dev_name = NULL;
  int rc;
  if (meas) {
    const char *m = json_string_value(meas);
    if ((rc = check_name("measurement", json_string_length(meas), err)) < 0) return rc;
    row->measurement = (tsdb_str){m, json_string_length(meas)};
    if (strcmp(m, "device") == 0) {
      /* Measurement "device" is where device telemetry lives; written this way it obeys the
       * same rules as the device form. */
      json_t *d = tags ? json_object_get(tags, "device") : NULL;
      if (json_object_size(tags) != 1 || !json_is_string(d))
        return pl_err_set(err, PL_EINVAL, "measurement \"device\" holds device telemetry: its only tag is "
                                          "device; use {\"device\": NAME, ...}");
      dev_name = json_string_value(d);
    } else {
      if (r->who.role == AUTH_ROLE_DEVICE)
        return pl_err_set(err, PL_EPERM, "a device token writes only its own device's data: use the device form");
      size_t nt = json_object_size(tags);
      if (nt > TSDB_TAGS_MAX) return pl_err_set(err, PL_EINVAL, "tags: at most %d tags", TSDB_TAGS_MAX);
      row->tags = w->tags + w->ntags;
      json_object_foreach(tags, key, val) {
        char what[96];
        snprintf(what, sizeof what, "tags.%.64s", key);
        if (!json_is_string(val)) return pl_err_set(err, PL_EINVAL, "%s must be a string", what);
        if ((rc = check_name("tag key", strlen(key), err)) < 0 ||
            (rc = check_name(what, json_string_length(val), err)) < 0)
          return rc;
        w->tags[w->ntags++] = (tsdb_tag){{key, strlen(key)}, {json_string_value(val), json_string_length(val)}};
        row->ntags++;
      }
    }
  } else {
    if (tags)
      return pl_err_set(err, PL_EINVAL, "tags belong to the generic form (with measurement); device telemetry is "
                                        "tagged with its device only");
    if (device) dev_name = json_string_value(device);
    else if (r->who.role == AUTH_ROLE_DEVICE) dev_name = r->who.name;
    else return pl_err_set(err, PL_EINVAL, "give device (device telemetry) or measurement (generic form)");
  }
  if (dev_name) {
    int64_t dev_id;
    if ((rc = resolve_device(w, dev_name, &dev_id, err)) < 0) return rc;
    row->measurement = (tsdb_str){"device", 6};
    row->tags = w->tags + w->ntags;
    row->ntags = 1;
    w->tags[w->ntags++] = (tsdb_tag){{"device", 6}, {dev_name, strlen(dev_name)}};
  }

  if (ts && tm) return pl_err_set(err, PL_EINVAL, "give either ts or time, not both");
  if (ts) {
    if (!json_is_integer(ts))
      return pl_err_set(err, PL_EINVAL, "ts must be an integer: milliseconds since the epoch");
    json_int_t ms = json_integer_value(ts);
    if (ms > INT64_MAX / NS_PER_MS || ms < INT64_MIN / NS_PER_MS)
      return pl_err_set(err, PL_EINVAL, "ts is out of range (years 1677 to 2262)");
    row->ts_ns = (int64_t)ms * NS_PER_MS;
  } else if (tm) {
    if (!json_is_string(tm) || pl_time_parse(json_string_value(tm), &row->ts_ns) < 0)
      return pl_err_set(err, PL_EINVAL, "time must be an RFC 3339 time such as \"2026-03-01T08:00:00.123456789Z\"");
  } else {
    row->ts_ns = w->now_ns;
  }

  if (!json_is_object(values) || json_object_size(values) == 0)
    return pl_err_set(err, PL_EINVAL, "values must be an object with at least one field");
  if (json_object_size(values) > TSDB_FIELDS_PER_GROUP_MAX)
    return pl_err_set(err, PL_EINVAL, "values: at most %d fields", TSDB_FIELDS_PER_GROUP_MAX);
  row->fields = w->fields + w->nfields;
  json_object_foreach(values, key, val) {
    tsdb_field *f = &w->fields[w->nfields];
    char what[96];
    snprintf(what, sizeof what, "values.%.64s", key);
    if ((rc = check_name(what, strlen(key), err)) < 0 || (rc = ingest_json_value(key, val, &f->value, err)) < 0)
      return rc;
    f->name = (tsdb_str){key, strlen(key)};
    w->nfields++;
    row->nfields++;
  }
  return 0;
}

/* The engine names a bad row "row N"; the API calls the objects of a body items, as build_row
 * does, so the messages read the same whoever found the problem. */
static void rows_to_items(pl_err *err) {
  if (strncmp(err->msg, "row ", 4) != 0 || !isdigit((unsigned char)err->msg[4])) return;
  size_t len = strlen(err->msg);
  if (len + 1 >= sizeof err->msg) len = sizeof err->msg - 2;
  memmove(err->msg + 5, err->msg + 4, len - 4);
  err->msg[len + 1] = 0;
  memcpy(err->msg, "item ", 5);
}

static int content_is_json(http_req *r) {
  const char *ct = http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
  return ct && strncasecmp(ct, "application/json", 16) == 0 && (!ct[16] || ct[16] == ';' || ct[16] == ' ');
}

static int write_telemetry(http_req *r) {
  store_tenant t;
  int st = http_tenant(r, "telemetry", &t);
  if (st || (st = http_tsdb_ready(r))) return st;
  if (r->body.len && !content_is_json(r))
    return http_reply_error(r, 415, "the body must be JSON: send Content-Type: application/json");
  pl_err err = {{0}};
  json_t *body = NULL;
  int rc = pl_json_parse(r->body.data, r->body.len, PL_JSON_DEPTH_MAX, &body, &err);
  if (rc < 0) return http_reply_error(r, 400, "%s", err.msg);
  size_t n = json_is_array(body) ? json_array_size(body) : 1;
  if (!json_is_array(body) && !json_is_object(body)) {
    json_decref(body);
    return http_reply_error(r, 400, "the body must be a JSON object or an array of objects");
  }
  if (n == 0 || n > WRITE_ITEMS_MAX) {
    json_decref(body);
    return http_reply_error(r, 400, "send 1 to %d objects per request (got %zu); split larger batches",
                            WRITE_ITEMS_MAX, n);
  }

  /* Size the arrays from the body: one allocation for rows, tags, fields and devices. Counts of
   * objects too large to be valid are capped; build_row rejects those objects. */
  size_t ntags = 0, nfields = 0;
  for (size_t i = 0; i < n; i++) {
    json_t *item = json_is_array(body) ? json_array_get(body, i) : body;
    size_t nt = json_object_size(json_object_get(item, "tags"));
    size_t nf = json_object_size(json_object_get(item, "values"));
    ntags += 1 + (nt > TSDB_TAGS_MAX ? 0 : nt);
    nfields += nf > TSDB_FIELDS_PER_GROUP_MAX ? 0 : nf;
  }
  size_t bytes = n * sizeof(tsdb_row) + ntags * sizeof(tsdb_tag) + nfields * sizeof(tsdb_field) +
                 n * sizeof(write_dev);
  char *block = malloc(bytes ? bytes : 1);
  if (!block) {
    json_decref(body);
    return http_reply_error(r, 500, "out of memory");
  }
  write_batch w;
  memset(&w, 0, sizeof w);
  w.r = r;
  w.tenant_id = t.id;
  w.now_ns = pl_now_ns();
  w.rows = (tsdb_row *)block;
  w.tags = (tsdb_tag *)(block + n * sizeof(tsdb_row));
  w.fields = (tsdb_field *)((char *)w.tags + ntags * sizeof(tsdb_tag));
  w.devs = (write_dev *)((char *)w.fields + nfields * sizeof(tsdb_field));

  for (size_t i = 0; i < n && st == 0; i++) {
    json_t *item = json_is_array(body) ? json_array_get(body, i) : body;
    rc = build_row(&w, i, item, &err);
    if (rc == PL_EINVAL) st = http_reply_error(r, 400, "item %zu: %s", i, err.msg);
    else if (rc == PL_EPERM) st = http_reply_error(r, 403, "item %zu: %s", i, err.msg);
    else if (rc == PL_ENOTFOUND) st = http_reply_error(r, 404, "item %zu: %s", i, err.msg);
    else if (rc < 0) st = http_reply_pl(r, rc, NULL);
  }
  if (st == 0) {
    tsdb_write_stats stats = {0};
    memset(&err, 0, sizeof err);
    rc = tsdb_write(r->deps->tsdb, t.id, w.rows, n, &stats, &err);
    if (rc < 0) {
      rows_to_items(&err);
      st = http_reply_tsdb(r, rc, &err);
    } else {
      /* Last seen, once per device per request; the data is stored whatever happens here. */
      int64_t now_ms = w.now_ns / NS_PER_MS;
      for (size_t i = 0; i < w.ndevs; i++) {
        int trc = store_device_touch(r->db, t.id, w.devs[i].id, now_ms);
        if (trc < 0)
          PL_LOG(PL_LOG_WARN, "http", "req=%s device_touch device_id=%lld err=\"%s\"", r->id_str,
                 (long long)w.devs[i].id, pl_strerror(trc));
      }
      st = http_reply_json(r, 200, json_pack("{s:I, s:I}", "rows", (json_int_t)stats.rows, "points",
                                             (json_int_t)stats.points));
    }
  }
  pl_map_free(w.dev_index);
  free(block);
  json_decref(body);
  return st;
}

const http_route api_telemetry_routes[] = {
    {"POST", "/api/v1/telemetry", (void *)write_telemetry, AUTH_PERM_DATA_WRITE, "telemetry.write"},
};
const size_t api_telemetry_nroutes = sizeof api_telemetry_routes / sizeof api_telemetry_routes[0];
