/* The device API (ThingsBoard's MQTT conventions), device state, and the work that reaches the
 * engines: telemetry into the time-series engine, attributes and sub-devices in the metadata
 * store, last-seen times, and RPC calls handed over from HTTP threads.
 *
 * This file holds the device state, the messages sent to one device or gateway, the store jobs
 * (attributes, gateway sub-devices, last-seen times) and the entry point of a device API
 * publish. Telemetry is in device_telemetry.c, RPC calls and the device events of other threads
 * in device_rpc.c; they share mqtt_int.h.
 *
 * Attributes: a device's attributes object holds its shared attributes (set through the API,
 * pushed to the device when they change) and, under the reserved key "client", the attributes
 * the device reports itself (v1/devices/me/attributes), merged in one transaction.
 */
#include "mqtt/mqtt_int.h"

#include "admin/admin.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ATTRS_BYTES_MAX 65536    /* a device's attributes object */
#define TOUCH_INTERVAL_MS 60000  /* last_seen is written at most once a minute per device */

/* ---- device state ---- */

mqtt_device_state *mqtt__device_state(mqtt_server *s, int64_t tenant_id, int64_t device_id, int create) {
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

const char *mqtt__device_name(const mqtt_device_state *st) {
  return st->name ? st->name : "";
}

void mqtt__device_online(mqtt_server *s, mqtt_session *ss, const char *attrs_json) {
  const mqtt_principal *who = ss->who;
  mqtt_device_state *st = mqtt__device_state(s, who->tenant_id, who->device_id, 1);
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
  mqtt_device_state *st = mqtt__device_state(s, who->tenant_id, who->device_id, 0);
  pthread_mutex_lock(&s->devices_lock);
  if (st && st->sess == ss) {
    st->sess = NULL;
    st->connected_ms = 0;
  }
  /* A gateway's sub-devices go offline with it. */
  for (uint32_t i = 0; i < ss->nsubdevs; i++) {
    mqtt_device_state *sub = mqtt__device_state(s, who->tenant_id, ss->subdevs[i].device_id, 0);
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
  mqtt_device_state *st = mqtt__device_state(s, who->tenant_id, who->device_id, 0);
  if (st) seen(s, st);
}

/* A sub-device now speaks through gateway session gw. */
void mqtt__subdev_online(mqtt_server *s, mqtt_session *gw, int64_t device_id, const char *name, const char *attrs) {
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
  mqtt_device_state *st = mqtt__device_state(s, gw->who->tenant_id, device_id, 1);
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

void mqtt__subdev_offline(mqtt_server *s, mqtt_session *gw, const char *name) {
  for (uint32_t i = 0; i < gw->nsubdevs; i++) {
    if (strcmp(gw->subdevs[i].name, name) != 0) continue;
    mqtt_device_state *st = mqtt__device_state(s, gw->who->tenant_id, gw->subdevs[i].device_id, 0);
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
int mqtt__send_to_device(mqtt_server *s, mqtt_session *ss, const char *rest, const void *payload, size_t len) {
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

int mqtt__send_json_to_device(mqtt_server *s, mqtt_session *ss, const char *rest, json_t *v) {
  char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
  int sent = text ? mqtt__send_to_device(s, ss, rest, text, strlen(text)) : 0;
  free(text);
  return sent;
}

int mqtt__send_json_to_gateway(mqtt_server *s, mqtt_session *gw, const char *rest, json_t *v) {
  char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
  int sent = text ? send_to_gateway(s, gw, rest, text, strlen(text)) : 0;
  free(text);
  return sent;
}

/* ---- sub-devices of gateways (worker threads) ---- */

/* The device `name` of the gateway's tenant, created (audited, as the gateway) when unknown and
 * the tenant has fewer than mqtt_gateway_devices_max devices. */
int mqtt__subdev_resolve(mqtt_server *s, store *db, const mqtt_principal *gw, const char *name, const char *type,
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

uint8_t mqtt__api_reason(int rc) {
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
void mqtt__api_refuse(mqtt_session *ss, uint64_t conn_id, mqtt_ack_wait *ack, uint8_t version, uint8_t reason,
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
json_t *mqtt__attrs_shared(json_t *attrs) {
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
    rc = pl_json_parse(mqtt_msg_payload(j->msg), j->msg->payload_len, MQTT_JSON_DEPTH_MAX, &body, &err);
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
        json_t *shared = mqtt__attrs_shared(attrs);
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
      rc = mqtt__subdev_resolve(s, db, j->who, json_string_value(dev), pl_json_str(body, "type", NULL), j->devs,
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
        if ((rc = mqtt__subdev_resolve(s, db, j->who, name, NULL, d, NULL, &err)) < 0) break;
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
        json_t *scope = client ? json_incref(json_object_get(attrs, "client")) : mqtt__attrs_shared(attrs);
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
      mqtt_device_state *st = mqtt__device_state(s, j->keys[i].tenant_id, j->keys[i].device_id, 0);
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
        mqtt__send_json_to_device(s, ss, rest, e);
      } else {
        mqtt__send_json_to_gateway(s, ss, "attributes/response", e);
      }
      json_decref(e);
      if (j->ack) mqtt__ack_wait_done(j->ack, 0);
    } else {
      mqtt__api_refuse(ss, j->conn_id, j->ack, j->version, mqtt__api_reason(j->rc), j->why);
    }
    job_free(j);
    return;
  }
  switch (j->kind) {
  case JOB_ATTR_REQUEST: {
    char rest[100];
    snprintf(rest, sizeof rest, "attributes/response/%s", j->request_id);
    if (j->reply) mqtt__send_to_device(s, ss, rest, j->reply, strlen(j->reply));
    break;
  }
  case JOB_GW_ATTR_REQUEST:
    if (j->reply) send_to_gateway(s, ss, "attributes/response", j->reply, strlen(j->reply));
    break;
  case JOB_GW_CONNECT:
  case JOB_GW_ATTRS:
    for (size_t i = 0; i < j->ndevs; i++)
      mqtt__subdev_online(s, ss, j->devs[i].id, j->devs[i].name, j->dev_attrs ? j->dev_attrs[i] : NULL);
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

/* ---- the publish entry point ---- */

void mqtt__api_publish(mqtt_server *s, mqtt_conn *c, mqtt_session *ss, const mqtt_pub_target *t, mqtt_msg *msg,
                       mqtt_ack_wait *ack, uint8_t qos, uint16_t packet_id) {
  const mqtt_principal *who = c->who;
  char request_id[72] = "";
  if (t->request_id) snprintf(request_id, sizeof request_id, "%.*s", (int)t->request_id_len, t->request_id);
  int kind = 0;
  switch (t->api) {
  case MQTT_API_TELEMETRY: mqtt__ingest_add(s, c, ss, msg, ack, qos, packet_id, 0); return;
  case MQTT_API_GW_TELEMETRY: mqtt__ingest_add(s, c, ss, msg, ack, qos, packet_id, 1); return;
  case MQTT_API_ATTRIBUTES: kind = JOB_ATTRS; break;
  case MQTT_API_ATTR_REQUEST: kind = JOB_ATTR_REQUEST; break;
  case MQTT_API_GW_CONNECT: kind = JOB_GW_CONNECT; break;
  case MQTT_API_GW_ATTRIBUTES: kind = JOB_GW_ATTRS; break;
  case MQTT_API_GW_ATTR_REQUEST: kind = JOB_GW_ATTR_REQUEST; break;
  case MQTT_API_RPC_RESPONSE:
    mqtt__rpc_answer(s, who->tenant_id, who->device_id, t->request_id, t->request_id_len, mqtt_msg_payload(msg),
               msg->payload_len);
    break;
  case MQTT_API_GW_RPC: {
    /* {"device": "<name>", "id": <request id>, "data": {...}} answers a call to a sub-device. */
    json_t *v = NULL;
    pl_json_parse(mqtt_msg_payload(msg), msg->payload_len, MQTT_JSON_DEPTH_MAX, &v, NULL);
    const char *dev = pl_json_str(v, "device", NULL);
    json_t *id = json_object_get(v, "id"), *data = json_object_get(v, "data");
    if (dev && json_is_integer(id)) {
      for (uint32_t i = 0; i < ss->nsubdevs; i++) {
        if (strcmp(ss->subdevs[i].name, dev) != 0) continue;
        char idbuf[24];
        snprintf(idbuf, sizeof idbuf, "%lld", (long long)json_integer_value(id));
        char *text = data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("null");
        if (text) mqtt__rpc_answer(s, who->tenant_id, ss->subdevs[i].device_id, idbuf, strlen(idbuf), text, strlen(text));
        free(text);
        break;
      }
    }
    json_decref(v);
    break;
  }
  case MQTT_API_GW_DISCONNECT: {
    json_t *v = NULL;
    pl_json_parse(mqtt_msg_payload(msg), msg->payload_len, MQTT_JSON_DEPTH_MAX, &v, NULL);
    const char *dev = pl_json_str(v, "device", NULL);
    if (dev) mqtt__subdev_offline(s, ss, dev);
    json_decref(v);
    break;
  }
  case MQTT_API_RPC_REQUEST:
  case MQTT_API_NONE: break;
  }
  if (kind) {
    store_job *j = job_new(c, ss, kind, msg, ack);
    if (!j) {
      mqtt__api_refuse(ss, c->id, ack, c->version, MQTT_RC_SERVER_BUSY, "out of memory");
      return;
    }
    snprintf(j->request_id, sizeof j->request_id, "%s", request_id);
    job_start(s, j);
    return;
  }
  if (ack) mqtt__ack_wait_done(ack, 0);
}

void mqtt__api_tick(mqtt_server *s, int64_t now_ms) {
  mqtt__rpc_expire(s, now_ms);
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
