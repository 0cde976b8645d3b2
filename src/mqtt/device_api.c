/* The device API (ThingsBoard's MQTT conventions), device state, and the work that reaches the
 * engines: telemetry into the time-series engine, attributes and sub-devices in the metadata
 * store, last-seen times, and RPC calls handed over from HTTP threads.
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
 *
 * Attributes: a device's attributes object holds its shared attributes (set through the API,
 * pushed to the device when they change) and, under the reserved key "client", the attributes
 * the device reports itself (v1/devices/me/attributes), merged in one transaction.
 *
 * RPC: an HTTP thread's call (mqtt_rpc_call) is queued under cmd_lock and the loop woken with
 * uv_async_send; the loop sends the request and keeps the call until the device answers on
 * v1/devices/me/rpc/response/{id} (or its gateway on v1/gateway/rpc) or the deadline passes, then
 * signals the caller's condition variable. A call is reference-counted by the caller and the
 * loop; whoever lets go last frees it, so a caller that timed out never leaves a dangling call.
 */
#include "mqtt/mqtt_int.h"

#include "admin/admin.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "ingest/telemetry_json.h"

#include <errno.h>
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
#define ATTRS_BYTES_MAX 65536    /* a device's attributes object */
#define TOUCH_INTERVAL_MS 60000  /* last_seen is written at most once a minute per device */
#define JSON_DEPTH_MAX 32
#define NS_PER_MS 1000000LL

/* ---- device state ---- */

typedef struct dev_key {
  int64_t tenant_id, device_id;
} dev_key;

static mqtt_device_state *dev_state(mqtt_server *s, int64_t tenant_id, int64_t device_id, int create) {
  dev_key k = {tenant_id, device_id};
  mqtt_device_state *st = pl_map_get(s->devices, &k, sizeof k);
  if (st || !create) return st;
  if (!(st = calloc(1, sizeof *st))) return NULL;
  st->tenant_id = tenant_id;
  st->device_id = device_id;
  pthread_mutex_lock(&s->devices_lock);
  int rc = pl_map_put(s->devices, &k, sizeof k, st, NULL);
  pthread_mutex_unlock(&s->devices_lock);
  if (rc < 0) {
    free(st);
    return NULL;
  }
  return st;
}

/* Devices whose last_seen is due to be written. */
typedef struct touch_list {
  dev_key *keys;
  int64_t *when_ms;
  size_t n, cap;
  int running;
} touch_list;

struct mqtt_ingest {
  struct ingest_batch *open;
  struct ingest_batch *head, *tail; /* submitted, in order */
  int inflight;
  mqtt_conn **paused;
  size_t npaused, paused_cap;
  touch_list touch;
};

static void touch_queue(mqtt_server *s, mqtt_device_state *st, int64_t now_ms) {
  if (st->touch_queued || now_ms - st->persisted_ms < TOUCH_INTERVAL_MS) return;
  touch_list *t = &s->ingest->touch;
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 64;
    dev_key *k = realloc(t->keys, cap * sizeof *k);
    if (!k) return;
    t->keys = k;
    int64_t *w = realloc(t->when_ms, cap * sizeof *w);
    if (!w) return;
    t->when_ms = w;
    t->cap = cap;
  }
  t->keys[t->n] = (dev_key){st->tenant_id, st->device_id};
  t->when_ms[t->n] = now_ms;
  t->n++;
  st->touch_queued = 1;
}

/* Replaces *slot with a copy of text (under devices_lock: other threads read it). */
static void set_text(char **slot, const char *text, size_t len) {
  if (*slot && strlen(*slot) == len && memcmp(*slot, text, len) == 0) return;
  char *copy = malloc(len + 1);
  if (!copy) return; /* the old copy stays: only a label */
  memcpy(copy, text, len);
  copy[len] = 0;
  free(*slot);
  *slot = copy;
}

static const char *state_name(const mqtt_device_state *st) {
  return st->name ? st->name : "";
}

void mqtt__device_online(mqtt_server *s, mqtt_session *ss, const char *attrs_json) {
  const mqtt_principal *who = ss->who;
  mqtt_device_state *st = dev_state(s, who->tenant_id, who->device_id, 1);
  if (!st) return;
  int64_t now = pl_now_ms();
  char *attrs = attrs_json ? strdup(attrs_json) : NULL;
  pthread_mutex_lock(&s->devices_lock);
  st->sess = ss;
  st->connected_ms = now;
  st->last_seen_ms = now;
  set_text(&st->name, who->name, who->name_len);
  if (ss->conn) {
    memcpy(st->addr, ss->conn->addr, sizeof st->addr);
    st->protocol = ss->conn->version;
  }
  if (attrs) {
    free(st->attrs_json);
    st->attrs_json = attrs;
  }
  pthread_mutex_unlock(&s->devices_lock);
  st->persisted_ms = 0; /* a connection is worth recording at once */
  touch_queue(s, st, now);
}

void mqtt__device_offline(mqtt_server *s, mqtt_session *ss) {
  const mqtt_principal *who = ss->who;
  mqtt_device_state *st = dev_state(s, who->tenant_id, who->device_id, 0);
  pthread_mutex_lock(&s->devices_lock);
  if (st && st->sess == ss) {
    st->sess = NULL;
    st->connected_ms = 0;
  }
  /* A gateway's sub-devices go offline with it. */
  for (uint32_t i = 0; i < ss->nsubdevs; i++) {
    mqtt_device_state *sub = dev_state(s, who->tenant_id, ss->subdevs[i].device_id, 0);
    if (sub && sub->gateway == ss) {
      sub->gateway = NULL;
      if (!sub->sess) sub->connected_ms = 0;
    }
  }
  pthread_mutex_unlock(&s->devices_lock);
}

static void seen(mqtt_server *s, mqtt_device_state *st) {
  int64_t now = pl_now_ms();
  pthread_mutex_lock(&s->devices_lock);
  st->last_seen_ms = now;
  pthread_mutex_unlock(&s->devices_lock);
  touch_queue(s, st, now);
}

void mqtt__device_seen(mqtt_server *s, const mqtt_principal *who) {
  mqtt_device_state *st = dev_state(s, who->tenant_id, who->device_id, 0);
  if (st) seen(s, st);
}

/* A sub-device now speaks through gateway session gw. */
static void subdev_online(mqtt_server *s, mqtt_session *gw, int64_t device_id, const char *name, const char *attrs) {
  if (gw->dead || !gw->conn) return;
  int known = 0;
  for (uint32_t i = 0; i < gw->nsubdevs && !known; i++) known = gw->subdevs[i].device_id == device_id;
  if (!known) {
    if (gw->nsubdevs == gw->subdevs_cap) {
      uint32_t cap = gw->subdevs_cap ? gw->subdevs_cap * 2 : 4;
      mqtt_subdev *n = realloc(gw->subdevs, cap * sizeof *n);
      if (!n) return;
      gw->subdevs = n;
      gw->subdevs_cap = cap;
    }
    char *copy = strdup(name);
    if (!copy) return;
    gw->subdevs[gw->nsubdevs++] = (mqtt_subdev){device_id, copy};
  }
  mqtt_device_state *st = dev_state(s, gw->who->tenant_id, device_id, 1);
  if (!st) return;
  int64_t now = pl_now_ms();
  char *a = attrs ? strdup(attrs) : NULL;
  pthread_mutex_lock(&s->devices_lock);
  if (st->gateway != gw) st->connected_ms = now;
  st->gateway = gw;
  set_text(&st->gateway_name, gw->who->name, gw->who->name_len);
  if (!st->sess && gw->conn) {
    memcpy(st->addr, gw->conn->addr, sizeof st->addr);
    st->protocol = gw->conn->version;
  }
  st->last_seen_ms = now;
  set_text(&st->name, name, strlen(name));
  if (a) {
    free(st->attrs_json);
    st->attrs_json = a;
  }
  pthread_mutex_unlock(&s->devices_lock);
  touch_queue(s, st, now);
}

static void subdev_offline(mqtt_server *s, mqtt_session *gw, const char *name) {
  for (uint32_t i = 0; i < gw->nsubdevs; i++) {
    if (strcmp(gw->subdevs[i].name, name) != 0) continue;
    mqtt_device_state *st = dev_state(s, gw->who->tenant_id, gw->subdevs[i].device_id, 0);
    pthread_mutex_lock(&s->devices_lock);
    if (st && st->gateway == gw) {
      st->gateway = NULL;
      if (!st->sess) st->connected_ms = 0;
    }
    pthread_mutex_unlock(&s->devices_lock);
    free(gw->subdevs[i].name);
    gw->subdevs[i] = gw->subdevs[--gw->nsubdevs];
    return;
  }
}

/* ---- direct messages to one session (RPC requests, attribute responses, pushes) ---- */

/* Sends payload to session ss on the topic its client sees as client_topic (internal_topic
 * inside the namespace), if it subscribed to it. Returns 1 when sent or queued, 0 when it has
 * no matching subscription. */
static int send_direct(mqtt_server *s, mqtt_session *ss, const char *client_topic, const char *internal_topic,
                       const void *payload, size_t len) {
  if (!ss || ss->dead) return 0;
  mqtt_sub *sub = mqtt__session_sub_for(ss, client_topic, strlen(client_topic));
  if (!sub) return 0;
  mqtt_msg_spec spec = {internal_topic, strlen(internal_topic), payload, len, MQTT_SUB_QOS(sub->options), 0, NULL,
                        0,              0,                       mqtt__now_ms()};
  mqtt_msg *m = mqtt__msg_new(&spec);
  if (!m) return 0;
  mqtt__deliver(s, ss, m, MQTT_SUB_QOS(sub->options), 0, sub->sub_id);
  mqtt__msg_unref(m);
  return 1;
}

static char *device_topic(const char *name, const char *rest) {
  size_t n = strlen(name) + strlen(rest) + 16;
  char *t = malloc(n);
  if (t) snprintf(t, n, "v1/devices/%s/%s", name, rest);
  return t;
}

/* Sends to a device session (client view v1/devices/me/<rest>). */
static int send_to_device(mqtt_server *s, mqtt_session *ss, const char *rest, const void *payload, size_t len) {
  char client[256];
  snprintf(client, sizeof client, "v1/devices/me/%s", rest);
  char *internal = device_topic(ss->who->name, rest);
  int sent = internal ? send_direct(s, ss, client, internal, payload, len) : 0;
  free(internal);
  return sent;
}

/* Sends to a gateway session (client view v1/gateway/<rest>). */
static int send_to_gateway(mqtt_server *s, mqtt_session *gw, const char *rest, const void *payload, size_t len) {
  char client[128], gwrest[128];
  snprintf(client, sizeof client, "v1/gateway/%s", rest);
  snprintf(gwrest, sizeof gwrest, "gateway/%s", rest);
  char *internal = device_topic(gw->who->name, gwrest);
  int sent = internal ? send_direct(s, gw, client, internal, payload, len) : 0;
  free(internal);
  return sent;
}

static int send_json_to_device(mqtt_server *s, mqtt_session *ss, const char *rest, json_t *v) {
  char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
  int sent = text ? send_to_device(s, ss, rest, text, strlen(text)) : 0;
  free(text);
  return sent;
}

static int send_json_to_gateway(mqtt_server *s, mqtt_session *gw, const char *rest, json_t *v) {
  char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
  int sent = text ? send_to_gateway(s, gw, rest, text, strlen(text)) : 0;
  free(text);
  return sent;
}

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
  if (out->nrows == out->cap_rows) {
    size_t cap = out->cap_rows ? out->cap_rows * 2 : 4;
    tsdb_row *r = realloc(out->rows, cap * sizeof *r);
    if (!r) return PL_ENOMEM;
    out->rows = r;
    tsdb_tag *t = realloc(out->tags, cap * sizeof *t);
    if (!t) return PL_ENOMEM;
    out->tags = t;
    out->cap_rows = cap;
  }
  if (out->nfields + nf > out->cap_fields) {
    size_t cap = out->cap_fields ? out->cap_fields * 2 : 16;
    while (cap < out->nfields + nf) cap *= 2;
    tsdb_field *f = realloc(out->fields, cap * sizeof *f);
    if (!f) return PL_ENOMEM;
    out->fields = f;
    out->cap_fields = cap;
  }
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

static int fs_room(item_rows *out, size_t fields) {
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
    if (out->nfields - first >= TSDB_FIELDS_PER_GROUP_MAX || !fs_room(out, 1)) return 0;
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
  if (!fs_room(out, 0)) return 0;
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

/* ---- sub-devices of gateways (worker threads) ---- */

typedef struct gw_dev {
  int64_t id;
  char name[128];
  int created;
} gw_dev;

/* The device `name` of the gateway's tenant, created (audited, as the gateway) when unknown and
 * the tenant has fewer than mqtt_gateway_devices_max devices. */
static int subdev_resolve(mqtt_server *s, store *db, const mqtt_principal *gw, const char *name, const char *type,
                          gw_dev *out, char **attrs, pl_err *err) {
  store_device d;
  memset(&d, 0, sizeof d);
  int rc = store_device_get_by_name(db, gw->tenant_id, name, &d);
  if (rc == PL_ENOTFOUND) {
    if ((rc = admin_check_device_name(name, err)) < 0) return rc;
    if (!strcmp(name, "+") || !strcmp(name, "#"))
      return pl_err_set(err, PL_EINVAL, "device names \"+\" and \"#\" cannot be used over MQTT");
    store_counts counts;
    if ((rc = store_counts_get(db, gw->tenant_id, pl_now_ms(), &counts)) < 0) return rc;
    if (counts.devices >= s->cfg->mqtt_gateway_devices_max)
      return pl_err_set(err, PL_ELIMIT,
                        "the tenant has %lld devices; gateways create devices only below mqtt_gateway_devices_max=%d",
                        (long long)counts.devices, s->cfg->mqtt_gateway_devices_max);
    memset(&d, 0, sizeof d);
    d.tenant_id = gw->tenant_id;
    snprintf(d.name, sizeof d.name, "%s", name);
    snprintf(d.type, sizeof d.type, "%s", type && *type ? type : "default");
    snprintf(d.location, sizeof d.location, "behind gateway %s", gw->name);
    char token[AUTH_TOKEN_MAX];
    admin_ctx c = {db, s->deps.audit, gw->actor, "mqtt", ""};
    rc = admin_device_create(&c, &d, token, err);
    explicit_bzero(token, sizeof token);
    if (rc == PL_EEXIST) {
      /* Another worker created it meanwhile. */
      store_device_clear(&d);
      memset(&d, 0, sizeof d);
      rc = store_device_get_by_name(db, gw->tenant_id, name, &d);
    } else if (rc == 0) {
      /* It speaks through its gateway: no token of its own until one is issued through the API. */
      store_device_set_token(db, d.tenant_id, d.id, NULL, NULL);
      out->created = 1;
      PL_LOG(PL_LOG_INFO, "mqtt", "gateway=%s created device=%s tenant=%lld", gw->name, name,
             (long long)gw->tenant_id);
    }
  }
  if (rc == 0) {
    out->id = d.id;
    snprintf(out->name, sizeof out->name, "%s", d.name);
    if (attrs && d.attributes_json) *attrs = strdup(d.attributes_json);
  }
  store_device_clear(&d);
  return rc;
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
  int rc = pl_json_parse(mqtt_msg_payload(m), m->payload_len, JSON_DEPTH_MAX, &it->json, &err);
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
        rc = subdev_resolve(s, *db, it->who, name, NULL, d, NULL, &err);
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

static uint8_t reason_for(int rc) {
  switch (rc) {
  case PL_EINVAL:
  case PL_ECONFLICT: return MQTT_RC_PAYLOAD_FORMAT_INVALID;
  case PL_ELIMIT: return MQTT_RC_QUOTA_EXCEEDED;
  case PL_EPERM: return MQTT_RC_NOT_AUTHORIZED;
  case PL_ESTATE: return MQTT_RC_SERVER_UNAVAILABLE;
  default: return MQTT_RC_UNSPECIFIED;
  }
}

/* Completes a device API publish that could not be done: a negative acknowledgement in 5.0,
 * a closed connection otherwise (3.1.x has no negative acknowledgement; QoS 0 none at all). */
static void api_refuse(mqtt_session *ss, uint64_t conn_id, mqtt_ack_wait *ack, uint8_t version, uint8_t reason,
                       const char *why) {
  mqtt_conn *c = ack ? ack->conn : (ss && ss->conn && ss->conn->id == conn_id ? ss->conn : NULL);
  if (ack && version == MQTT_V5) {
    mqtt__ack_wait_done(ack, reason);
    return;
  }
  if (c) {
    char line[260];
    snprintf(line, sizeof line, "device API refused a message: %s", why);
    if (version == MQTT_V5) mqtt__conn_disconnect(c, reason, line);
    else mqtt__conn_close(c, line);
  }
  if (ack) mqtt__ack_wait_done(ack, reason); /* the connection is gone: only frees it */
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
      subdev_online(s, ss, it->devs[i].id, it->devs[i].name, NULL);
    }
  } else {
    s->stats.telemetry_rejected++;
    PL_LOG(PL_LOG_INFO, "mqtt", "who=%s telemetry refused why=\"%s\"", it->who->actor, it->why);
    if (it->qos == 2 && !ss->dead) mqtt__qos2_remove(ss, it->packet_id);
    api_refuse(ss, it->conn_id, it->ack, it->version, reason_for(it->rc), it->why);
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

static void ingest_add(mqtt_server *s, mqtt_conn *c, mqtt_session *ss, mqtt_msg *m, mqtt_ack_wait *ack, uint8_t qos,
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
  api_refuse(ss, c->id, ack, c->version, MQTT_RC_SERVER_BUSY, "out of memory");
}

/* ---- store jobs: attributes, gateway devices, last-seen (worker threads) ---- */

enum { JOB_ATTRS = 1, JOB_ATTR_REQUEST, JOB_GW_CONNECT, JOB_GW_ATTRS, JOB_GW_ATTR_REQUEST, JOB_TOUCH };

typedef struct store_job {
  uv_work_t work;
  mqtt_server *srv;
  int kind;
  mqtt_session *ss;
  mqtt_principal *who;
  mqtt_msg *msg;
  mqtt_ack_wait *ack;
  uint64_t conn_id;
  uint8_t version;
  char request_id[72];
  /* results */
  int rc;
  char why[200];
  char *reply; /* a JSON text to send back */
  gw_dev *devs;
  char **dev_attrs;
  size_t ndevs;
  /* JOB_TOUCH */
  dev_key *keys;
  int64_t *when_ms;
  size_t nkeys;
} store_job;

/* Merges the object `client` into the device's attributes under "client", in a transaction. */
static int attrs_merge(store *db, int64_t tenant_id, int64_t device_id, json_t *client, pl_err *err) {
  int rc = store_begin(db);
  if (rc < 0) return rc;
  store_device d;
  memset(&d, 0, sizeof d);
  rc = store_device_get(db, tenant_id, device_id, &d);
  json_t *attrs = NULL;
  if (rc == 0) {
    attrs = d.attributes_json ? json_loads(d.attributes_json, 0, NULL) : NULL;
    if (!json_is_object(attrs)) {
      json_decref(attrs);
      attrs = json_object();
    }
    json_t *cur = json_object_get(attrs, "client");
    if (!json_is_object(cur)) {
      cur = json_object();
      json_object_set_new(attrs, "client", cur);
    }
    json_object_update(cur, client);
    char *text = json_dumps(attrs, JSON_COMPACT);
    if (!text) {
      rc = PL_ENOMEM;
    } else if (strlen(text) > ATTRS_BYTES_MAX) {
      free(text);
      rc = pl_err_set(err, PL_ELIMIT, "the device's attributes would exceed %d bytes", ATTRS_BYTES_MAX);
    } else {
      free(d.attributes_json);
      d.attributes_json = text;
      rc = store_device_update(db, &d);
    }
  }
  json_decref(attrs);
  store_device_clear(&d);
  if (rc == 0) rc = store_commit(db);
  if (rc < 0) store_rollback(db);
  return rc;
}

/* The values of keys (a comma-separated string or an array of strings; NULL: all) of obj. */
static json_t *pick(json_t *obj, json_t *keys) {
  json_t *out = json_object();
  if (!json_is_object(obj) || !out) return out;
  if (!keys) {
    json_object_update(out, obj);
    return out;
  }
  if (json_is_array(keys)) {
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
      json_t *v = json_is_string(k) ? json_object_get(obj, json_string_value(k)) : NULL;
      if (v) json_object_set(out, json_string_value(k), v);
    }
  } else if (json_is_string(keys)) {
    const char *s = json_string_value(keys);
    while (*s) {
      size_t n = strcspn(s, ",");
      char name[300];
      if (n && n < sizeof name) {
        memcpy(name, s, n);
        name[n] = 0;
        json_t *v = json_object_get(obj, name);
        if (v) json_object_set(out, name, v);
      }
      s += n + (s[n] == ',');
    }
  }
  return out;
}

/* The shared part of an attributes object: everything but "client". */
static json_t *shared_of(json_t *attrs) {
  json_t *out = json_object();
  if (!json_is_object(attrs) || !out) return out;
  json_object_update(out, attrs);
  json_object_del(out, "client");
  return out;
}

static int device_attrs(store *db, int64_t tenant_id, int64_t device_id, json_t **attrs) {
  store_device d;
  memset(&d, 0, sizeof d);
  int rc = store_device_get(db, tenant_id, device_id, &d);
  if (rc == 0) {
    *attrs = d.attributes_json ? json_loads(d.attributes_json, 0, NULL) : NULL;
    if (!json_is_object(*attrs)) {
      json_decref(*attrs);
      *attrs = json_object();
    }
  }
  store_device_clear(&d);
  return rc;
}

static void job_work(uv_work_t *w) {
  store_job *j = w->data;
  mqtt_server *s = j->srv;
  store *db = store_pool_get(s->deps.pool);
  pl_err err = {{0}};
  json_t *body = NULL;
  int rc = 0;
  if (j->msg && j->kind != JOB_TOUCH) {
    rc = pl_json_parse(mqtt_msg_payload(j->msg), j->msg->payload_len, JSON_DEPTH_MAX, &body, &err);
    if (rc == 0 && !json_is_object(body)) rc = pl_err_set(&err, PL_EINVAL, "the payload must be a JSON object");
  }
  if (rc == 0) {
    switch (j->kind) {
    case JOB_ATTRS: rc = attrs_merge(db, j->who->tenant_id, j->who->device_id, body, &err); break;
    case JOB_ATTR_REQUEST: {
      json_t *attrs = NULL;
      rc = device_attrs(db, j->who->tenant_id, j->who->device_id, &attrs);
      if (rc == 0) {
        json_t *ck = json_object_get(body, "clientKeys"), *sk = json_object_get(body, "sharedKeys");
        json_t *shared = shared_of(attrs);
        json_t *reply = json_object();
        if (ck || !sk) json_object_set_new(reply, "client", pick(json_object_get(attrs, "client"), ck));
        if (sk || !ck) json_object_set_new(reply, "shared", pick(shared, sk));
        j->reply = json_dumps(reply, JSON_COMPACT);
        json_decref(reply);
        json_decref(shared);
      }
      json_decref(attrs);
      break;
    }
    case JOB_GW_CONNECT: {
      json_t *dev = json_object_get(body, "device");
      if (!json_is_string(dev)) {
        rc = pl_err_set(&err, PL_EINVAL, "gateway connect is {\"device\": \"<name>\", \"type\": \"...\"}");
        break;
      }
      j->devs = calloc(1, sizeof *j->devs);
      j->dev_attrs = calloc(1, sizeof *j->dev_attrs);
      if (!j->devs || !j->dev_attrs) {
        rc = PL_ENOMEM;
        break;
      }
      rc = subdev_resolve(s, db, j->who, json_string_value(dev), pl_json_str(body, "type", NULL), j->devs,
                          j->dev_attrs, &err);
      if (rc == 0) j->ndevs = 1;
      break;
    }
    case JOB_GW_ATTRS: {
      size_t n = json_object_size(body);
      j->devs = calloc(n ? n : 1, sizeof *j->devs);
      if (!j->devs) {
        rc = PL_ENOMEM;
        break;
      }
      const char *name;
      json_t *v;
      json_object_foreach(body, name, v) {
        if (!json_is_object(v)) {
          rc = pl_err_set(&err, PL_EINVAL, "gateway attributes are {\"<device>\": {...}, ...}");
          break;
        }
        gw_dev *d = &j->devs[j->ndevs];
        if ((rc = subdev_resolve(s, db, j->who, name, NULL, d, NULL, &err)) < 0) break;
        j->ndevs++;
        if ((rc = attrs_merge(db, j->who->tenant_id, d->id, v, &err)) < 0) break;
      }
      break;
    }
    case JOB_GW_ATTR_REQUEST: {
      json_t *dev = json_object_get(body, "device"), *id = json_object_get(body, "id");
      if (!json_is_string(dev)) {
        rc = pl_err_set(&err, PL_EINVAL, "an attribute request needs \"device\"");
        break;
      }
      store_device d;
      memset(&d, 0, sizeof d);
      rc = store_device_get_by_name(db, j->who->tenant_id, json_string_value(dev), &d);
      json_t *attrs = NULL;
      if (rc == 0) rc = device_attrs(db, j->who->tenant_id, d.id, &attrs);
      store_device_clear(&d);
      if (rc == PL_ENOTFOUND) rc = pl_err_set(&err, PL_ENOTFOUND, "no such device");
      if (rc == 0) {
        int client = pl_json_bool(body, "client", 0);
        json_t *scope = client ? json_incref(json_object_get(attrs, "client")) : shared_of(attrs);
        json_t *reply = json_pack("{s:O?, s:O}", "id", id, "device", dev);
        json_t *key = json_object_get(body, "key"), *keys = json_object_get(body, "keys");
        if (json_is_string(key)) {
          json_t *v = json_is_object(scope) ? json_object_get(scope, json_string_value(key)) : NULL;
          json_object_set(reply, "value", v ? v : json_null());
        } else {
          json_object_set_new(reply, "values", pick(scope, keys));
        }
        j->reply = json_dumps(reply, JSON_COMPACT);
        json_decref(reply);
        json_decref(scope);
      }
      json_decref(attrs);
      break;
    }
    case JOB_TOUCH:
      for (size_t i = 0; i < j->nkeys; i++)
        store_device_touch(db, j->keys[i].tenant_id, j->keys[i].device_id, j->when_ms[i]);
      break;
    }
  }
  json_decref(body);
  store_pool_put(s->deps.pool, db);
  j->rc = rc;
  if (rc < 0) snprintf(j->why, sizeof j->why, "%s", err.msg[0] ? err.msg : pl_strerror(rc));
}

static void job_free(store_job *j) {
  mqtt__session_unref(j->ss);
  mqtt__principal_unref(j->who);
  mqtt__msg_unref(j->msg);
  free(j->reply);
  free(j->devs);
  for (size_t i = 0; j->dev_attrs && i < j->ndevs; i++) free(j->dev_attrs[i]);
  free(j->dev_attrs);
  free(j->keys);
  free(j->when_ms);
  free(j);
}

static void job_after(uv_work_t *w, int status) {
  store_job *j = w->data;
  mqtt_server *s = j->srv;
  if (status < 0 && !j->rc) {
    j->rc = PL_ESTATE;
    snprintf(j->why, sizeof j->why, "the server is stopping");
  }
  if (j->kind == JOB_TOUCH) {
    s->ingest->touch.running = 0;
    for (size_t i = 0; i < j->nkeys; i++) {
      mqtt_device_state *st = dev_state(s, j->keys[i].tenant_id, j->keys[i].device_id, 0);
      if (st) {
        st->touch_queued = 0;
        st->persisted_ms = j->when_ms[i];
      }
    }
    job_free(j);
    return;
  }
  mqtt_session *ss = j->ss;
  if (j->rc < 0) {
    PL_LOG(PL_LOG_INFO, "mqtt", "who=%s device API refused why=\"%s\"", j->who->actor, j->why);
    if (j->kind == JOB_ATTR_REQUEST || j->kind == JOB_GW_ATTR_REQUEST) {
      /* A request is answered with the error rather than left hanging. */
      json_t *e = json_pack("{s:s}", "error", j->why);
      if (j->kind == JOB_ATTR_REQUEST) {
        char rest[100];
        snprintf(rest, sizeof rest, "attributes/response/%s", j->request_id);
        send_json_to_device(s, ss, rest, e);
      } else {
        send_json_to_gateway(s, ss, "attributes/response", e);
      }
      json_decref(e);
      if (j->ack) mqtt__ack_wait_done(j->ack, 0);
    } else {
      api_refuse(ss, j->conn_id, j->ack, j->version, reason_for(j->rc), j->why);
    }
    job_free(j);
    return;
  }
  switch (j->kind) {
  case JOB_ATTR_REQUEST: {
    char rest[100];
    snprintf(rest, sizeof rest, "attributes/response/%s", j->request_id);
    if (j->reply) send_to_device(s, ss, rest, j->reply, strlen(j->reply));
    break;
  }
  case JOB_GW_ATTR_REQUEST:
    if (j->reply) send_to_gateway(s, ss, "attributes/response", j->reply, strlen(j->reply));
    break;
  case JOB_GW_CONNECT:
  case JOB_GW_ATTRS:
    for (size_t i = 0; i < j->ndevs; i++)
      subdev_online(s, ss, j->devs[i].id, j->devs[i].name, j->dev_attrs ? j->dev_attrs[i] : NULL);
    break;
  }
  if (j->ack) mqtt__ack_wait_done(j->ack, 0);
  job_free(j);
}

static void job_start(mqtt_server *s, store_job *j) {
  j->srv = s;
  j->work.data = j;
  if (uv_queue_work(&s->loop, &j->work, job_work, job_after) < 0) {
    j->rc = PL_ESTATE;
    snprintf(j->why, sizeof j->why, "cannot queue the work");
    job_after(&j->work, 0);
  }
}

static store_job *job_new(mqtt_conn *c, mqtt_session *ss, int kind, mqtt_msg *m, mqtt_ack_wait *ack) {
  store_job *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->kind = kind;
  mqtt__session_ref(ss);
  j->ss = ss;
  j->who = c->who;
  c->who->refs++;
  j->msg = m ? mqtt__msg_ref(m) : NULL;
  j->ack = ack;
  j->conn_id = c->id;
  j->version = c->version;
  return j;
}

/* ---- RPC ---- */

struct mqtt_rpc {
  mqtt_rpc *next; /* in the pending list (loop thread) */
  pthread_cond_t cond;
  int refs; /* under cmd_lock */
  int done, rc;
  pl_buf response;
  char why[200];
  int64_t tenant_id, device_id;
  uint32_t id;
  int64_t deadline_ms;
  int timeout_ms;
  char *request;
  size_t len;
};

enum { CMD_RPC = 1, CMD_DEVICE };

struct mqtt_cmd {
  mqtt_cmd *next;
  int kind;
  mqtt_rpc *rpc;
  int64_t tenant_id, device_id;
  int event;
  char *attrs;
};

static void rpc_free(mqtt_rpc *r) {
  pthread_cond_destroy(&r->cond);
  pl_buf_free(&r->response);
  free(r->request);
  free(r);
}

/* Completes a call (loop thread): hands the answer to the waiting caller, if it still waits. */
static void rpc_complete(mqtt_server *s, mqtt_rpc *r, int rc, const void *data, size_t len, const char *why) {
  pthread_mutex_lock(&s->cmd_lock);
  if (!r->done) {
    r->done = 1;
    r->rc = rc;
    if (data && rc == 0 && pl_buf_append(&r->response, data, len) < 0) r->rc = PL_ENOMEM;
    if (why) snprintf(r->why, sizeof r->why, "%s", why);
    pthread_cond_signal(&r->cond);
  }
  int last = --r->refs == 0;
  pthread_mutex_unlock(&s->cmd_lock);
  if (last) rpc_free(r);
}

static void rpc_send(mqtt_server *s, mqtt_rpc *r) {
  mqtt_device_state *st = dev_state(s, r->tenant_id, r->device_id, 0);
  if (!st || (!st->sess && !st->gateway)) {
    rpc_complete(s, r, PL_ENOTFOUND, NULL, 0, "the device is not connected");
    return;
  }
  uint32_t id = ++s->next_rpc_id;
  int sent;
  if (st->sess) {
    char rest[48];
    snprintf(rest, sizeof rest, "rpc/request/%u", id);
    sent = send_to_device(s, st->sess, rest, r->request, r->len);
    if (!sent) {
      rpc_complete(s, r, PL_EPERM, NULL, 0,
                   "the device is connected but not subscribed to v1/devices/me/rpc/request/+");
      return;
    }
  } else {
    json_t *req = json_loadb(r->request, r->len, 0, NULL);
    json_t *data = json_is_object(req) ? json_copy(req) : json_object();
    json_object_set_new(data, "id", json_integer(id));
    json_t *msg = json_pack("{s:s, s:o}", "device", state_name(st), "data", data);
    sent = send_json_to_gateway(s, st->gateway, "rpc", msg);
    json_decref(msg);
    json_decref(req);
    if (!sent) {
      rpc_complete(s, r, PL_EPERM, NULL, 0,
                   "the device's gateway is connected but not subscribed to v1/gateway/rpc");
      return;
    }
  }
  r->id = id;
  r->deadline_ms = mqtt__now_ms() + r->timeout_ms;
  r->next = s->rpc_pending;
  s->rpc_pending = r;
}

/* An answer from the device: completes the pending call with this id, if any. */
static void rpc_answer(mqtt_server *s, int64_t tenant_id, int64_t device_id, const char *id, size_t idlen,
                       const void *data, size_t len) {
  char buf[24];
  if (!idlen || idlen >= sizeof buf) return;
  memcpy(buf, id, idlen);
  buf[idlen] = 0;
  char *end;
  errno = 0;
  unsigned long v = strtoul(buf, &end, 10);
  if (errno || *end) return;
  for (mqtt_rpc **pp = &s->rpc_pending; *pp; pp = &(*pp)->next) {
    mqtt_rpc *r = *pp;
    if (r->id == v && r->tenant_id == tenant_id && r->device_id == device_id) {
      *pp = r->next;
      rpc_complete(s, r, 0, data, len, NULL);
      return;
    }
  }
}

int mqtt_rpc_call(mqtt_server *s, int64_t tenant_id, int64_t device_id, const char *request_json, size_t len,
                  int timeout_ms, pl_buf *response, pl_err *err) {
  if (!s) return pl_err_set(err, PL_ESTATE, "the MQTT server is not running");
  mqtt_rpc *r = calloc(1, sizeof *r);
  mqtt_cmd *c = calloc(1, sizeof *c);
  if (!r || !c || !(r->request = malloc(len + 1))) {
    free(r ? r->request : NULL);
    free(r);
    free(c);
    return pl_err_set(err, PL_ENOMEM, "out of memory");
  }
  memcpy(r->request, request_json, len);
  r->request[len] = 0;
  r->len = len;
  r->tenant_id = tenant_id;
  r->device_id = device_id;
  r->timeout_ms = timeout_ms;
  r->refs = 2;
  pl_buf_init(&r->response, (size_t)s->cfg->mqtt_max_packet_bytes);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&r->cond, &ca);
  pthread_condattr_destroy(&ca);
  c->kind = CMD_RPC;
  c->rpc = r;
  int max_waiting = s->cfg->http_threads > 1 ? s->cfg->http_threads - 1 : 1;
  pthread_mutex_lock(&s->cmd_lock);
  if (s->stopping) {
    pthread_mutex_unlock(&s->cmd_lock);
    rpc_free(r);
    free(c);
    return pl_err_set(err, PL_ESTATE, "the MQTT server is stopping");
  }
  if (s->rpc_waiting >= max_waiting) {
    pthread_mutex_unlock(&s->cmd_lock);
    rpc_free(r);
    free(c);
    return pl_err_set(err, PL_ELIMIT, "%d RPC calls are already waiting for devices; retry shortly", max_waiting);
  }
  s->rpc_waiting++;
  if (s->cmd_tail) s->cmd_tail->next = c;
  else s->cmd_head = c;
  s->cmd_tail = c;
  /* Under the lock: the loop closes its async handle only after it has seen `stopping`. */
  uv_async_send(&s->wake);
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += timeout_ms / 1000;
  deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  while (!r->done)
    if (pthread_cond_timedwait(&r->cond, &s->cmd_lock, &deadline) == ETIMEDOUT) break;
  int rc;
  if (r->done) {
    rc = r->rc;
    if (rc == 0) {
      if (pl_buf_append(response, r->response.data, r->response.len) < 0) rc = PL_ENOMEM;
    } else {
      pl_err_set(err, rc, "%s", r->why[0] ? r->why : pl_strerror(rc));
    }
  } else {
    r->done = 1;
    rc = pl_err_set(err, PL_ETIMEDOUT, "the device did not answer within %d ms", timeout_ms);
  }
  s->rpc_waiting--;
  int last = --r->refs == 0;
  pthread_mutex_unlock(&s->cmd_lock);
  if (last) rpc_free(r);
  return rc;
}

/* ---- device events from the API ---- */

/* What changed between two shared-attribute objects: {changed keys...} and the deleted keys. */
static json_t *shared_diff(json_t *old, json_t *now, json_t **deleted) {
  json_t *changed = json_object();
  *deleted = json_array();
  const char *k;
  json_t *v;
  json_object_foreach(now, k, v) {
    json_t *o = json_object_get(old, k);
    if (!o || !json_equal(o, v)) json_object_set(changed, k, v);
  }
  json_object_foreach(old, k, v) {
    if (!json_object_get(now, k)) json_array_append_new(*deleted, json_string(k));
  }
  return changed;
}

static void device_event(mqtt_server *s, mqtt_cmd *c) {
  mqtt_device_state *st = dev_state(s, c->tenant_id, c->device_id, 0);
  if (!st) return; /* never connected since the server started: nothing to tell */
  if (c->event == MQTT_DEVICE_ATTRIBUTES && c->attrs) {
    json_t *old = st->attrs_json ? json_loads(st->attrs_json, 0, NULL) : NULL;
    json_t *now = json_loads(c->attrs, 0, NULL);
    json_t *so = shared_of(old), *sn = shared_of(now), *deleted = NULL;
    json_t *changed = shared_diff(so, sn, &deleted);
    if (json_object_size(changed) || json_array_size(deleted)) {
      if (json_array_size(deleted)) json_object_set(changed, "deleted", deleted);
      if (st->sess) {
        send_json_to_device(s, st->sess, "attributes", changed);
      } else if (st->gateway) {
        json_t *msg = json_pack("{s:s, s:O}", "device", state_name(st), "data", changed);
        send_json_to_gateway(s, st->gateway, "attributes", msg);
        json_decref(msg);
      }
    }
    json_decref(changed);
    json_decref(deleted);
    json_decref(so);
    json_decref(sn);
    json_decref(old);
    json_decref(now);
    pthread_mutex_lock(&s->devices_lock);
    free(st->attrs_json);
    st->attrs_json = c->attrs;
    pthread_mutex_unlock(&s->devices_lock);
    c->attrs = NULL;
    return;
  }
  if (c->event == MQTT_DEVICE_CREDENTIALS || c->event == MQTT_DEVICE_DELETED) {
    if (st->sess && st->sess->conn)
      mqtt__conn_disconnect(st->sess->conn, MQTT_RC_ADMINISTRATIVE_ACTION,
                            c->event == MQTT_DEVICE_DELETED ? "the device was deleted"
                                                            : "the device's token was replaced");
    if (c->event == MQTT_DEVICE_DELETED && st->gateway) subdev_offline(s, st->gateway, state_name(st));
  }
}

void mqtt_device_changed(mqtt_server *s, int64_t tenant_id, int64_t device_id, mqtt_device_event event,
                         const char *attributes_json) {
  if (!s) return;
  mqtt_cmd *c = calloc(1, sizeof *c);
  if (!c) return;
  c->kind = CMD_DEVICE;
  c->tenant_id = tenant_id;
  c->device_id = device_id;
  c->event = event;
  if (attributes_json && !(c->attrs = strdup(attributes_json))) {
    free(c);
    return;
  }
  pthread_mutex_lock(&s->cmd_lock);
  if (s->stopping) {
    pthread_mutex_unlock(&s->cmd_lock);
    free(c->attrs);
    free(c);
    return;
  }
  if (s->cmd_tail) s->cmd_tail->next = c;
  else s->cmd_head = c;
  s->cmd_tail = c;
  uv_async_send(&s->wake);
  pthread_mutex_unlock(&s->cmd_lock);
}

int mqtt_device_status_get(mqtt_server *s, int64_t tenant_id, int64_t device_id, mqtt_device_status *out) {
  memset(out, 0, sizeof *out);
  if (!s) return PL_ESTATE;
  dev_key k = {tenant_id, device_id};
  pthread_mutex_lock(&s->devices_lock);
  mqtt_device_state *st = pl_map_get(s->devices, &k, sizeof k);
  if (st) {
    out->online = st->sess || st->gateway;
    out->connected_ms = out->online ? st->connected_ms : 0;
    out->last_seen_ms = st->last_seen_ms;
    /* Only the state's own fields: the sessions and connections belong to the loop thread. */
    if (out->online) {
      if (st->gateway && !st->sess && st->gateway_name)
        snprintf(out->via_gateway, sizeof out->via_gateway, "%s", st->gateway_name);
      mqtt__addr_str(st->addr, out->remote, sizeof out->remote);
      out->protocol = st->protocol;
    }
  }
  pthread_mutex_unlock(&s->devices_lock);
  return 0;
}

void mqtt__commands_run(mqtt_server *s) {
  pthread_mutex_lock(&s->cmd_lock);
  mqtt_cmd *c = s->cmd_head;
  s->cmd_head = s->cmd_tail = NULL;
  pthread_mutex_unlock(&s->cmd_lock);
  while (c) {
    mqtt_cmd *next = c->next;
    if (c->kind == CMD_RPC) rpc_send(s, c->rpc);
    else device_event(s, c);
    free(c->attrs);
    free(c);
    c = next;
  }
}

void mqtt__commands_fail_all(mqtt_server *s) {
  pthread_mutex_lock(&s->cmd_lock);
  mqtt_cmd *c = s->cmd_head;
  s->cmd_head = s->cmd_tail = NULL;
  pthread_mutex_unlock(&s->cmd_lock);
  while (c) {
    mqtt_cmd *next = c->next;
    if (c->kind == CMD_RPC) rpc_complete(s, c->rpc, PL_ESTATE, NULL, 0, "the MQTT server is stopping");
    free(c->attrs);
    free(c);
    c = next;
  }
  while (s->rpc_pending) {
    mqtt_rpc *r = s->rpc_pending;
    s->rpc_pending = r->next;
    rpc_complete(s, r, PL_ESTATE, NULL, 0, "the MQTT server is stopping");
  }
}

/* ---- the publish entry point ---- */

void mqtt__api_publish(mqtt_server *s, mqtt_conn *c, mqtt_session *ss, const mqtt_pub_target *t, mqtt_msg *msg,
                       mqtt_ack_wait *ack, uint8_t qos, uint16_t packet_id) {
  const mqtt_principal *who = c->who;
  char request_id[72] = "";
  if (t->request_id) snprintf(request_id, sizeof request_id, "%.*s", (int)t->request_id_len, t->request_id);
  int kind = 0;
  switch (t->api) {
  case MQTT_API_TELEMETRY: ingest_add(s, c, ss, msg, ack, qos, packet_id, 0); return;
  case MQTT_API_GW_TELEMETRY: ingest_add(s, c, ss, msg, ack, qos, packet_id, 1); return;
  case MQTT_API_ATTRIBUTES: kind = JOB_ATTRS; break;
  case MQTT_API_ATTR_REQUEST: kind = JOB_ATTR_REQUEST; break;
  case MQTT_API_GW_CONNECT: kind = JOB_GW_CONNECT; break;
  case MQTT_API_GW_ATTRIBUTES: kind = JOB_GW_ATTRS; break;
  case MQTT_API_GW_ATTR_REQUEST: kind = JOB_GW_ATTR_REQUEST; break;
  case MQTT_API_RPC_RESPONSE:
    rpc_answer(s, who->tenant_id, who->device_id, t->request_id, t->request_id_len, mqtt_msg_payload(msg),
               msg->payload_len);
    break;
  case MQTT_API_GW_RPC: {
    /* {"device": "<name>", "id": <request id>, "data": {...}} answers a call to a sub-device. */
    json_t *v = NULL;
    pl_json_parse(mqtt_msg_payload(msg), msg->payload_len, JSON_DEPTH_MAX, &v, NULL);
    const char *dev = pl_json_str(v, "device", NULL);
    json_t *id = json_object_get(v, "id"), *data = json_object_get(v, "data");
    if (dev && json_is_integer(id)) {
      for (uint32_t i = 0; i < ss->nsubdevs; i++) {
        if (strcmp(ss->subdevs[i].name, dev) != 0) continue;
        char idbuf[24];
        snprintf(idbuf, sizeof idbuf, "%lld", (long long)json_integer_value(id));
        char *text = data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("null");
        if (text) rpc_answer(s, who->tenant_id, ss->subdevs[i].device_id, idbuf, strlen(idbuf), text, strlen(text));
        free(text);
        break;
      }
    }
    json_decref(v);
    break;
  }
  case MQTT_API_GW_DISCONNECT: {
    json_t *v = NULL;
    pl_json_parse(mqtt_msg_payload(msg), msg->payload_len, JSON_DEPTH_MAX, &v, NULL);
    const char *dev = pl_json_str(v, "device", NULL);
    if (dev) subdev_offline(s, ss, dev);
    json_decref(v);
    break;
  }
  case MQTT_API_RPC_REQUEST:
  case MQTT_API_NONE: break;
  }
  if (kind) {
    store_job *j = job_new(c, ss, kind, msg, ack);
    if (!j) {
      api_refuse(ss, c->id, ack, c->version, MQTT_RC_SERVER_BUSY, "out of memory");
      return;
    }
    snprintf(j->request_id, sizeof j->request_id, "%s", request_id);
    job_start(s, j);
    return;
  }
  if (ack) mqtt__ack_wait_done(ack, 0);
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

void mqtt__api_tick(mqtt_server *s, int64_t now_ms) {
  /* RPC calls whose caller has given up. */
  for (mqtt_rpc **pp = &s->rpc_pending; *pp;) {
    mqtt_rpc *r = *pp;
    if (now_ms >= r->deadline_ms) {
      *pp = r->next;
      rpc_complete(s, r, PL_ETIMEDOUT, NULL, 0, "the device did not answer in time");
    } else {
      pp = &r->next;
    }
  }
  /* last_seen, at most once a minute per device, in one job. */
  touch_list *t = &s->ingest->touch;
  if (t->n && !t->running) {
    store_job *j = calloc(1, sizeof *j);
    if (!j) return;
    j->kind = JOB_TOUCH;
    j->keys = t->keys;
    j->when_ms = t->when_ms;
    j->nkeys = t->n;
    t->keys = NULL;
    t->when_ms = NULL;
    t->n = t->cap = 0;
    t->running = 1;
    job_start(s, j);
  }
}

void mqtt__api_free(mqtt_server *s) {
  (void)s;
}
