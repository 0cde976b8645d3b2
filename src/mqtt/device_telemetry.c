/* Device API telemetry (device_api.c routes it here): messages are batched on the loop thread,
 * decoded into rows and written to the time-series engine on workers, and acknowledged in order.
 *
 * Telemetry path (acknowledged data is never lost):
 *
 *   PUBLISH v1/devices/me/telemetry (or v1/gateway/telemetry)
 *     -> item appended to the open batch (loop thread; the payload is a reference to the message)
 *     -> after the loop's I/O phase, the open batch is handed to a worker when fewer than
 *        INGEST_INFLIGHT_MAX batches are being written (uv_queue_work): group commit
 *     -> worker: JSON decoded (ingest_json_value, as HTTP), rows built, one tsdb_write per tenant
 *        of the batch (all-or-nothing; on a refusal each item is written alone so one bad
 *        message cannot sink the others), durable under the engine's fsync policy on return
 *     -> loop thread, batches completed strictly in submission order: PUBACK / PUBREC with
 *        Success, or with the reason (5.0: 0x99 Payload format invalid, 0x97 Quota exceeded,
 *        0x80 Unspecified error); 3.1.x cannot say no, so its connection is closed instead and
 *        the unacknowledged message will be sent again.
 *   When the open batch is full while INGEST_INFLIGHT_MAX batches are being written, the
 *   connections that publish telemetry stop being read until a batch completes (backpressure:
 *   the loop never waits on the disk, and memory stays bounded).
 *
 * Payloads: {"k": v, ...}, {"ts": ms, "values": {...}} or an array of either; a gateway sends
 * {"<device>": [<one of those>...], ...}. Values follow POST /api/v1/telemetry (numbers are
 * floats, booleans, strings, {"int": n}); rows go to measurement "device", tag device=<name>, in
 * the tenant's default namespace (its tenant id).
 */
#include "mqtt/mqtt_int.h"

#include "admin/admin.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "ingest/telemetry_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define INGEST_INFLIGHT_MAX 2
#ifndef INGEST_BATCH_ITEMS
#define INGEST_BATCH_ITEMS 4096
#endif
#define INGEST_BATCH_BYTES (32u << 20)
#define TELEMETRY_ROWS_MAX 10000 /* rows in one message, as POST /api/v1/telemetry */
#define NS_PER_MS 1000000LL

/* ---- telemetry payloads to rows (worker threads) ---- */

typedef struct item_rows {
  tsdb_row *rows;
  tsdb_tag *tags;
  tsdb_field *fields;
  size_t nrows, ntags, nfields, cap_rows, cap_fields;
} item_rows;

static void rows_free(item_rows *r) {
  free(r->rows);
  free(r->tags);
  free(r->fields);
  memset(r, 0, sizeof *r);
}

/* Room for one more row with `fields` more fields; 0 when out of memory. */
static int rows_room(item_rows *out, size_t fields) {
  if (out->nrows == out->cap_rows) {
    size_t cap = out->cap_rows ? out->cap_rows * 2 : 4;
    tsdb_row *r = realloc(out->rows, cap * sizeof *r);
    if (!r) return 0;
    out->rows = r;
    tsdb_tag *t = realloc(out->tags, cap * sizeof *t);
    if (!t) return 0;
    out->tags = t;
    out->cap_rows = cap;
  }
  if (out->nfields + fields > out->cap_fields) {
    size_t cap = out->cap_fields ? out->cap_fields * 2 : 16;
    while (cap < out->nfields + fields) cap *= 2;
    tsdb_field *n = realloc(out->fields, cap * sizeof *n);
    if (!n) return 0;
    out->fields = n;
    out->cap_fields = cap;
  }
  return 1;
}

/* One object of a ThingsBoard payload: {"ts": ms, "values": {...}} or {"k": v, ...}. */
static int tb_object(json_t *o, int64_t rx_ns, const char *device, item_rows *out, pl_err *err) {
  if (!json_is_object(o)) return pl_err_set(err, PL_EINVAL, "telemetry must be a JSON object or an array of objects");
  json_t *values = o;
  int64_t ts_ns = rx_ns;
  json_t *ts = json_object_get(o, "ts");
  if (ts) {
    values = json_object_get(o, "values");
    if (!json_is_integer(ts) || !json_is_object(values) || json_object_size(o) != 2)
      return pl_err_set(err, PL_EINVAL, "a timestamped object is {\"ts\": <ms since the epoch>, \"values\": {...}}");
    json_int_t ms = json_integer_value(ts);
    if (ms > INT64_MAX / NS_PER_MS || ms < INT64_MIN / NS_PER_MS)
      return pl_err_set(err, PL_EINVAL, "ts is out of range (years 1677 to 2262)");
    ts_ns = (int64_t)ms * NS_PER_MS;
  }
  size_t nf = json_object_size(values);
  if (nf == 0) return pl_err_set(err, PL_EINVAL, "telemetry without values");
  if (nf > TSDB_FIELDS_PER_GROUP_MAX)
    return pl_err_set(err, PL_EINVAL, "at most %d values per object", TSDB_FIELDS_PER_GROUP_MAX);
  if (!rows_room(out, nf)) return PL_ENOMEM;
  /* Rows point into the arrays by index until the item is complete (the arrays may move). */
  size_t first_field = out->nfields;
  const char *key;
  json_t *val;
  json_object_foreach(values, key, val) {
    size_t kl = strlen(key);
    if (!kl || kl > TSDB_NAME_BYTES_MAX)
      return pl_err_set(err, PL_EINVAL, "a value name has 1 to %d bytes", TSDB_NAME_BYTES_MAX);
    tsdb_field *f = &out->fields[out->nfields];
    int rc = ingest_json_value(key, val, &f->value, err);
    if (rc < 0) return rc;
    f->name = (tsdb_str){key, kl};
    out->nfields++;
  }
  tsdb_row *row = &out->rows[out->nrows];
  memset(row, 0, sizeof *row);
  row->measurement = (tsdb_str){"device", 6};
  row->ts_ns = ts_ns;
  row->nfields = nf;
  row->fields = (const tsdb_field *)(uintptr_t)first_field;
  out->tags[out->nrows] = (tsdb_tag){{"device", 6}, {device, strlen(device)}};
  out->nrows++;
  return 0;
}

static int tb_payload(json_t *v, int64_t rx_ns, const char *device, item_rows *out, pl_err *err) {
  int rc = 0;
  if (json_is_array(v)) {
    size_t n = json_array_size(v);
    if (n == 0 || out->nrows + n > TELEMETRY_ROWS_MAX)
      return pl_err_set(err, PL_EINVAL, "send 1 to %d objects per message", TELEMETRY_ROWS_MAX);
    for (size_t i = 0; i < n && rc == 0; i++) rc = tb_object(json_array_get(v, i), rx_ns, device, out, err);
    return rc;
  }
  if (out->nrows + 1 > TELEMETRY_ROWS_MAX)
    return pl_err_set(err, PL_EINVAL, "at most %d objects per message", TELEMETRY_ROWS_MAX);
  return tb_object(v, rx_ns, device, out, err);
}

/* ---- the fast path for flat payloads (worker threads) ----
 *
 * Most devices send flat objects of numbers, booleans and short strings. Building a jansson tree
 * for them costs more than storing them, so they are scanned in place: keys and string values
 * are borrowed from the payload, scalars decoded by ingest_json_token_value (the same rules as
 * the full path). The scanner accepts only what it fully understands: anything else — escapes,
 * null, nesting, duplicate keys, numbers out of range, syntax errors, limits — makes it give up
 * (PL_AGAIN) and the payload goes through jansson and ingest_json_value, which accept it or say
 * exactly what is wrong. So both paths store the same rows for every payload the fast one takes. */

typedef struct fscan {
  const char *p;
  size_t len, i;
} fscan;

static void fs_ws(fscan *f) {
  while (f->i < f->len && (f->p[f->i] == ' ' || f->p[f->i] == '\t' || f->p[f->i] == '\n' || f->p[f->i] == '\r'))
    f->i++;
}

static int fs_peek(fscan *f) {
  fs_ws(f);
  return f->i < f->len ? (unsigned char)f->p[f->i] : -1;
}

/* A string without escapes or control characters, quotes included in the token. */
static int fs_string(fscan *f, const char **tok, size_t *tlen) {
  if (fs_peek(f) != '"') return 0;
  size_t start = f->i++;
  while (f->i < f->len && f->p[f->i] != '"') {
    unsigned char c = (unsigned char)f->p[f->i];
    if (c == '\\' || c < 0x20) return 0;
    f->i++;
  }
  if (f->i >= f->len) return 0;
  f->i++;
  *tok = f->p + start;
  *tlen = f->i - start;
  return 1;
}

/* A scalar token: a string, or the run of characters a number, true or false is made of. */
static int fs_scalar(fscan *f, const char **tok, size_t *tlen) {
  int c = fs_peek(f);
  if (c == '"') return fs_string(f, tok, tlen);
  size_t start = f->i;
  while (f->i < f->len) {
    char k = f->p[f->i];
    if (!((k >= '0' && k <= '9') || k == '-' || k == '+' || k == '.' || k == 'e' || k == 'E' || (k >= 'a' && k <= 'z')))
      break;
    f->i++;
  }
  *tok = f->p + start;
  *tlen = f->i - start;
  return *tlen > 0;
}

static int fs_expect(fscan *f, char c) {
  if (fs_peek(f) != c) return 0;
  f->i++;
  return 1;
}

/* Field names of one object must differ (jansson refuses duplicates; the full path says so). */
static int fs_unique(const item_rows *out, size_t first, const char *name, size_t len) {
  for (size_t k = first; k < out->nfields; k++)
    if (out->fields[k].name.len == len && memcmp(out->fields[k].name.p, name, len) == 0) return 0;
  return 1;
}

/* {"k": scalar, ...} appended as fields; the opening brace is next. */
static int fs_fields(fscan *f, item_rows *out, size_t first) {
  if (!fs_expect(f, '{')) return 0;
  if (fs_peek(f) == '}') return 0; /* empty: the full path refuses it */
  for (;;) {
    const char *k, *v;
    size_t kl, vl;
    if (!fs_string(f, &k, &kl) || !fs_expect(f, ':') || !fs_scalar(f, &v, &vl)) return 0;
    k++;
    kl -= 2;
    if (!kl || kl > TSDB_NAME_BYTES_MAX || !fs_unique(out, first, k, kl)) return 0;
    if (out->nfields - first >= TSDB_FIELDS_PER_GROUP_MAX || !rows_room(out, 1)) return 0;
    tsdb_field *fd = &out->fields[out->nfields];
    if (ingest_json_token_value(v, vl, &fd->value) < 0) return 0;
    fd->name = (tsdb_str){k, kl};
    out->nfields++;
    if (fs_expect(f, ',')) continue;
    return fs_expect(f, '}');
  }
}

/* One object: {"ts": <integer>, "values": {...}} or {"k": scalar, ...}. */
static int fs_object(fscan *f, int64_t rx_ns, const char *device, item_rows *out) {
  size_t save = f->i, first = out->nfields;
  int64_t ts_ns = rx_ns;
  /* The timestamped form, in either key order. */
  if (fs_expect(f, '{')) {
    const char *k;
    size_t kl;
    size_t mark = f->i;
    if (fs_string(f, &k, &kl) && fs_expect(f, ':')) {
      int is_ts = kl == 4 && memcmp(k, "\"ts\"", 4) == 0, is_values = kl == 8 && memcmp(k, "\"values\"", 8) == 0;
      if (is_ts || is_values) {
        int have_ts = 0, have_values = 0;
        for (int round = 0; round < 2; round++) {
          if (round == 1) {
            if (!fs_expect(f, ',') || !fs_string(f, &k, &kl) || !fs_expect(f, ':')) return 0;
            is_ts = kl == 4 && memcmp(k, "\"ts\"", 4) == 0;
            is_values = kl == 8 && memcmp(k, "\"values\"", 8) == 0;
          }
          if (is_ts && !have_ts) {
            const char *v;
            size_t vl;
            tsdb_value tv;
            if (!fs_scalar(f, &v, &vl) || vl > 19 || ingest_json_token_value(v, vl, &tv) < 0) return 0;
            for (size_t j = 0; j < vl; j++)
              if (v[j] != '-' && (v[j] < '0' || v[j] > '9')) return 0; /* an integer, as the full path asks */
            char buf[24];
            memcpy(buf, v, vl);
            buf[vl] = 0;
            long long ms = strtoll(buf, NULL, 10);
            if (ms > INT64_MAX / NS_PER_MS || ms < INT64_MIN / NS_PER_MS) return 0;
            ts_ns = (int64_t)ms * NS_PER_MS;
            have_ts = 1;
          } else if (is_values && !have_values) {
            if (!fs_fields(f, out, first)) return 0;
            have_values = 1;
          } else {
            return 0;
          }
        }
        if (!fs_expect(f, '}')) return 0;
        goto row;
      }
    }
    f->i = mark;
    (void)save;
    f->i--; /* back to the brace: a plain object */
  }
  if (!fs_fields(f, out, first)) return 0;
  /* A plain object may not hold "ts" (that is the timestamped form) or an object "values"
   * (scalars only here): fs_fields refuses the latter, the former is checked now. */
  for (size_t j = first; j < out->nfields; j++)
    if (out->fields[j].name.len == 2 && memcmp(out->fields[j].name.p, "ts", 2) == 0) return 0;
row:
  if (!rows_room(out, 0)) return 0;
  tsdb_row *row = &out->rows[out->nrows];
  memset(row, 0, sizeof *row);
  row->measurement = (tsdb_str){"device", 6};
  row->ts_ns = ts_ns;
  row->nfields = out->nfields - first;
  row->fields = (const tsdb_field *)(uintptr_t)first;
  out->tags[out->nrows] = (tsdb_tag){{"device", 6}, {device, strlen(device)}};
  out->nrows++;
  return 1;
}

/* 0 with the rows, or PL_AGAIN: use the full path (out is then empty again). */
static int fast_payload(const uint8_t *payload, size_t len, int64_t rx_ns, const char *device, item_rows *out) {
  fscan f = {(const char *)payload, len, 0};
  int ok;
  if (!pl_utf8_valid(payload, len)) {
    ok = 0;
  } else if (fs_peek(&f) == '[') {
    f.i++;
    ok = fs_peek(&f) != ']';
    while (ok) {
      if (out->nrows >= TELEMETRY_ROWS_MAX || !fs_object(&f, rx_ns, device, out)) {
        ok = 0;
        break;
      }
      if (fs_expect(&f, ',')) continue;
      ok = fs_expect(&f, ']');
      break;
    }
  } else {
    ok = fs_object(&f, rx_ns, device, out);
  }
  if (ok && fs_peek(&f) == -1) return 0;
  out->nrows = out->nfields = out->ntags = 0;
  return PL_AGAIN;
}

/* Turns the field indexes stored by tb_object into pointers, once the arrays stop moving. */
static void rows_finish(item_rows *r) {
  for (size_t i = 0; i < r->nrows; i++) {
    r->rows[i].fields = r->fields + (uintptr_t)r->rows[i].fields;
    r->rows[i].tags = &r->tags[i];
    r->rows[i].ntags = 1;
  }
}

/* ---- the telemetry batches ---- */

typedef struct ingest_item {
  mqtt_session *ss;
  mqtt_ack_wait *ack;
  mqtt_principal *who;
  mqtt_msg *msg;
  uint64_t conn_id;
  int64_t rx_ns;
  uint16_t packet_id;
  uint8_t qos, version, gateway;
  /* worker results */
  int rc;
  size_t points;
  char why[200];
  gw_dev *devs;
  size_t ndevs;
  item_rows rows;
  json_t *json;
} ingest_item;

typedef struct ingest_batch {
  uv_work_t work;
  mqtt_server *srv;
  struct ingest_batch *next;
  ingest_item *items;
  size_t n, cap, bytes;
  int done;
  int64_t queued_ns, decode_ns, write_ns, done_ns, cpu_ns; /* for the debug log */
} ingest_batch;

/* Decodes item it into rows (worker). Gateway payloads resolve their devices through db. */
static void item_decode(mqtt_server *s, ingest_item *it, store **db) {
  pl_err err = {{0}};
  const mqtt_msg *m = it->msg;
  if (!it->gateway && fast_payload(mqtt_msg_payload(m), m->payload_len, it->rx_ns, it->who->name, &it->rows) == 0) {
    rows_finish(&it->rows);
    return;
  }
  int rc = pl_json_parse(mqtt_msg_payload(m), m->payload_len, MQTT_JSON_DEPTH_MAX, &it->json, &err);
  if (rc == 0 && !it->gateway) {
    rc = tb_payload(it->json, it->rx_ns, it->who->name, &it->rows, &err);
  } else if (rc == 0) {
    if (!json_is_object(it->json)) {
      rc = pl_err_set(&err, PL_EINVAL, "gateway telemetry is {\"<device>\": [...], ...}");
    } else {
      size_t nd = json_object_size(it->json);
      it->devs = calloc(nd ? nd : 1, sizeof *it->devs);
      if (!it->devs) rc = PL_ENOMEM;
      const char *name;
      json_t *v;
      if (rc == 0 && !*db) *db = store_pool_get(s->deps.pool);
      json_object_foreach(it->json, name, v) {
        if (rc < 0) break;
        gw_dev *d = &it->devs[it->ndevs];
        rc = mqtt__subdev_resolve(s, *db, it->who, name, NULL, d, NULL, &err);
        if (rc == 0) {
          it->ndevs++;
          rc = tb_payload(v, it->rx_ns, name, &it->rows, &err);
        }
      }
    }
  }
  if (rc == 0) {
    rows_finish(&it->rows);
  } else {
    it->rc = rc;
    snprintf(it->why, sizeof it->why, "%s", err.msg[0] ? err.msg : pl_strerror(rc));
  }
}

static void ingest_work(uv_work_t *w) {
  ingest_batch *b = w->data;
  mqtt_server *s = b->srv;
  store *db = NULL;
  struct timespec c0, c1;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
  int64_t t0 = pl_mono_ns();
  for (size_t i = 0; i < b->n; i++) item_decode(s, &b->items[i], &db);
  if (db) store_pool_put(s->deps.pool, db);
  b->decode_ns = pl_mono_ns() - t0;
  /* One write per tenant, its items' rows in arrival order. */
  size_t total = 0;
  for (size_t i = 0; i < b->n; i++)
    if (!b->items[i].rc) total += b->items[i].rows.nrows;
  tsdb_row *rows = malloc((total ? total : 1) * sizeof *rows);
  uint8_t *written = calloc(b->n ? b->n : 1, 1);
  for (size_t i = 0; i < b->n; i++) {
    ingest_item *first = &b->items[i];
    if (first->rc || written[i]) continue;
    int64_t tenant = first->who->tenant_id;
    size_t nr = 0;
    for (size_t j = i; j < b->n; j++) {
      ingest_item *it = &b->items[j];
      if (it->rc || written[j] || it->who->tenant_id != tenant) continue;
      if (rows) memcpy(rows + nr, it->rows.rows, it->rows.nrows * sizeof *rows);
      nr += it->rows.nrows;
    }
    pl_err err = {{0}};
    int rc = rows ? tsdb_write(s->deps.tsdb, tenant, rows, nr, NULL, &err) : PL_ENOMEM;
    for (size_t j = i; j < b->n; j++) {
      ingest_item *it = &b->items[j];
      if (it->rc || written[j] || it->who->tenant_id != tenant) continue;
      written[j] = 1;
      if (rc == 0) {
        it->points = it->rows.nrows;
        continue;
      }
      if (rc == PL_EINVAL || rc == PL_ECONFLICT) {
        /* Someone's message was refused: find out whose, writing each alone. */
        pl_err e1 = {{0}};
        int r1 = tsdb_write(s->deps.tsdb, tenant, it->rows.rows, it->rows.nrows, NULL, &e1);
        if (r1 == 0) {
          it->points = it->rows.nrows;
        } else {
          it->rc = r1;
          snprintf(it->why, sizeof it->why, "%s", e1.msg[0] ? e1.msg : pl_strerror(r1));
        }
      } else {
        it->rc = rc;
        snprintf(it->why, sizeof it->why, "%s", err.msg[0] ? err.msg : pl_strerror(rc));
      }
    }
  }
  free(written);
  free(rows);
  b->write_ns = pl_mono_ns() - t0 - b->decode_ns;
  for (size_t i = 0; i < b->n; i++) {
    rows_free(&b->items[i].rows);
    json_decref(b->items[i].json);
    b->items[i].json = NULL;
  }
  b->done_ns = pl_mono_ns() - t0;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
  b->cpu_ns = (c1.tv_sec - c0.tv_sec) * 1000000000LL + (c1.tv_nsec - c0.tv_nsec);
}

static void item_complete(mqtt_server *s, ingest_item *it) {
  mqtt_session *ss = it->ss;
  if (it->rc == 0) {
    s->stats.telemetry_stored += it->points;
    if (it->qos == 2) {
      mqtt_qos2_in *q = ss->dead ? NULL : mqtt__qos2_find(ss, it->packet_id);
      if (q) q->stored = 1;
    }
    if (it->ack) mqtt__ack_wait_done(it->ack, 0);
    for (size_t i = 0; i < it->ndevs; i++) {
      mqtt__subdev_online(s, ss, it->devs[i].id, it->devs[i].name, NULL);
    }
  } else {
    s->stats.telemetry_rejected++;
    PL_LOG(PL_LOG_INFO, "mqtt", "who=%s telemetry refused why=\"%s\"", it->who->actor, it->why);
    if (it->qos == 2 && !ss->dead) mqtt__qos2_remove(ss, it->packet_id);
    mqtt__api_refuse(ss, it->conn_id, it->ack, it->version, mqtt__api_reason(it->rc), it->why);
  }
  free(it->devs);
  mqtt__msg_unref(it->msg);
  mqtt__principal_unref(it->who);
  mqtt__session_unref(ss);
}

static void ingest_submit(mqtt_server *s);

static void ingest_after(uv_work_t *w, int status) {
  ingest_batch *b = w->data;
  mqtt_server *s = b->srv;
  mqtt_ingest *g = s->ingest;
  if (status < 0) {
    for (size_t i = 0; i < b->n; i++)
      if (!b->items[i].rc) b->items[i].rc = PL_ESTATE;
  }
  b->done = 1;
  g->inflight--;
  PL_LOG(PL_LOG_DEBUG, "mqtt", "ingest batch items=%zu bytes=%zu waited_us=%lld decode_us=%lld write_us=%lld work_us=%lld cpu_us=%lld",
         b->n, b->bytes, (long long)((pl_mono_ns() - b->queued_ns - b->done_ns) / 1000), (long long)(b->decode_ns / 1000),
         (long long)(b->write_ns / 1000), (long long)(b->done_ns / 1000), (long long)(b->cpu_ns / 1000));
  /* Strictly in submission order, so acknowledgements never overtake each other. */
  while (g->head && g->head->done) {
    ingest_batch *h = g->head;
    g->head = h->next;
    if (!g->head) g->tail = NULL;
    for (size_t i = 0; i < h->n; i++) item_complete(s, &h->items[i]);
    free(h->items);
    free(h);
  }
  ingest_submit(s);
  /* Room again: connections paused for backpressure may go on. */
  if (g->npaused && (!g->open || g->open->n < INGEST_BATCH_ITEMS)) {
    size_t n = g->npaused;
    mqtt_conn **list = g->paused;
    g->paused = NULL;
    g->npaused = g->paused_cap = 0;
    for (size_t i = 0; i < n; i++) {
      mqtt__conn_resume(list[i], MQTT_PAUSE_INGEST);
      mqtt__conn_unref(list[i]);
    }
    free(list);
  }
}

/* Hands the open batch to a worker when there is room. Called after each loop I/O phase. */
static void ingest_submit(mqtt_server *s) {
  mqtt_ingest *g = s->ingest;
  if (!g->open || !g->open->n || g->inflight >= INGEST_INFLIGHT_MAX) return;
  ingest_batch *b = g->open;
  g->open = NULL;
  b->work.data = b;
  b->srv = s;
  if (g->tail) g->tail->next = b;
  else g->head = b;
  g->tail = b;
  g->inflight++;
  b->queued_ns = pl_mono_ns();
  if (uv_queue_work(&s->loop, &b->work, ingest_work, ingest_after) < 0) {
    g->inflight--;
    b->done = 1;
    for (size_t i = 0; i < b->n; i++) b->items[i].rc = PL_ESTATE;
    ingest_after(&b->work, 0);
    g->inflight++; /* ingest_after took one off */
  }
}

void mqtt__ingest_add(mqtt_server *s, mqtt_conn *c, mqtt_session *ss, mqtt_msg *m, mqtt_ack_wait *ack, uint8_t qos,
                      uint16_t packet_id, int gateway) {
  mqtt_ingest *g = s->ingest;
  if (!g->open && !(g->open = calloc(1, sizeof *g->open))) goto oom;
  ingest_batch *b = g->open;
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    ingest_item *n = realloc(b->items, cap * sizeof *n);
    if (!n) goto oom;
    b->items = n;
    b->cap = cap;
  }
  ingest_item *it = &b->items[b->n++];
  memset(it, 0, sizeof *it);
  mqtt__session_ref(ss);
  it->ss = ss;
  it->ack = ack;
  it->who = c->who;
  c->who->refs++;
  it->msg = mqtt__msg_ref(m);
  it->conn_id = c->id;
  it->rx_ns = pl_now_ns();
  it->packet_id = packet_id;
  it->qos = qos;
  it->version = c->version;
  it->gateway = (uint8_t)gateway;
  b->bytes += m->payload_len;
  if (g->inflight >= INGEST_INFLIGHT_MAX && (b->n >= INGEST_BATCH_ITEMS || b->bytes >= INGEST_BATCH_BYTES) &&
      !(c->read_paused & MQTT_PAUSE_INGEST)) {
    if (g->npaused == g->paused_cap) {
      size_t cap = g->paused_cap ? g->paused_cap * 2 : 16;
      mqtt_conn **n = realloc(g->paused, cap * sizeof *n);
      if (!n) return;
      g->paused = n;
      g->paused_cap = cap;
    }
    mqtt__conn_ref(c);
    g->paused[g->npaused++] = c;
    mqtt__conn_pause(c, MQTT_PAUSE_INGEST);
  }
  return;
oom:
  mqtt__api_refuse(ss, c->id, ack, c->version, MQTT_RC_SERVER_BUSY, "out of memory");
}

/* ---- lifecycle and the tick ---- */

int mqtt__ingest_init(mqtt_server *s) {
  s->ingest = calloc(1, sizeof *s->ingest);
  return s->ingest ? 0 : PL_ENOMEM;
}

void mqtt__ingest_flush(mqtt_server *s) {
  ingest_submit(s);
}

void mqtt__ingest_free(mqtt_server *s) {
  mqtt_ingest *g = s->ingest;
  if (!g) return;
  if (g->open) {
    for (size_t i = 0; i < g->open->n; i++) {
      g->open->items[i].rc = PL_ESTATE;
      snprintf(g->open->items[i].why, sizeof g->open->items[i].why, "the server stopped");
      item_complete(s, &g->open->items[i]);
    }
    free(g->open->items);
    free(g->open);
  }
  free(g->paused);
  free(g->touch.keys);
  free(g->touch.when_ms);
  free(g);
  s->ingest = NULL;
}
