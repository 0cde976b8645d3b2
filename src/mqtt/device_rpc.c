/* RPC calls to devices and the device events of other threads (device_api.c has the device
 * state they act on): both are commands queued by an HTTP thread and run on the loop thread.
 *
 * RPC: an HTTP thread's call (mqtt_rpc_call) is queued under cmd_lock and the loop woken with
 * uv_async_send; the loop sends the request and keeps the call until the device answers on
 * v1/devices/me/rpc/response/{id} (or its gateway on v1/gateway/rpc) or the deadline passes, then
 * signals the caller's condition variable. A call is reference-counted by the caller and the
 * loop; whoever lets go last frees it, so a caller that timed out never leaves a dangling call.
 */
#include "mqtt/mqtt_int.h"

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
  mqtt_device_state *st = mqtt__device_state(s, r->tenant_id, r->device_id, 0);
  if (!st || (!st->sess && !st->gateway)) {
    rpc_complete(s, r, PL_ENOTFOUND, NULL, 0, "the device is not connected");
    return;
  }
  uint32_t id = ++s->next_rpc_id;
  int sent;
  if (st->sess) {
    char rest[48];
    snprintf(rest, sizeof rest, "rpc/request/%u", id);
    sent = mqtt__send_to_device(s, st->sess, rest, r->request, r->len);
    if (!sent) {
      rpc_complete(s, r, PL_EPERM, NULL, 0,
                   "the device is connected but not subscribed to v1/devices/me/rpc/request/+");
      return;
    }
  } else {
    json_t *req = json_loadb(r->request, r->len, 0, NULL);
    json_t *data = json_is_object(req) ? json_copy(req) : json_object();
    json_object_set_new(data, "id", json_integer(id));
    json_t *msg = json_pack("{s:s, s:o}", "device", mqtt__device_name(st), "data", data);
    sent = mqtt__send_json_to_gateway(s, st->gateway, "rpc", msg);
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
void mqtt__rpc_answer(mqtt_server *s, int64_t tenant_id, int64_t device_id, const char *id, size_t idlen,
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

/* Completes the calls whose deadline has passed (from the tick). */
void mqtt__rpc_expire(mqtt_server *s, int64_t now_ms) {
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
  mqtt_device_state *st = mqtt__device_state(s, c->tenant_id, c->device_id, 0);
  if (!st) return; /* never connected since the server started: nothing to tell */
  if (c->event == MQTT_DEVICE_ATTRIBUTES && c->attrs) {
    json_t *old = st->attrs_json ? json_loads(st->attrs_json, 0, NULL) : NULL;
    json_t *now = json_loads(c->attrs, 0, NULL);
    json_t *so = mqtt__attrs_shared(old), *sn = mqtt__attrs_shared(now), *deleted = NULL;
    json_t *changed = shared_diff(so, sn, &deleted);
    if (json_object_size(changed) || json_array_size(deleted)) {
      if (json_array_size(deleted)) json_object_set(changed, "deleted", deleted);
      if (st->sess) {
        mqtt__send_json_to_device(s, st->sess, "attributes", changed);
      } else if (st->gateway) {
        json_t *msg = json_pack("{s:s, s:O}", "device", mqtt__device_name(st), "data", changed);
        mqtt__send_json_to_gateway(s, st->gateway, "attributes", msg);
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
    if (c->event == MQTT_DEVICE_DELETED && st->gateway) mqtt__subdev_offline(s, st->gateway, mqtt__device_name(st));
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

/* Takes the queued commands, oldest first. */
static mqtt_cmd *commands_take(mqtt_server *s) {
  pthread_mutex_lock(&s->cmd_lock);
  mqtt_cmd *c = s->cmd_head;
  s->cmd_head = s->cmd_tail = NULL;
  pthread_mutex_unlock(&s->cmd_lock);
  return c;
}

void mqtt__commands_run(mqtt_server *s) {
  mqtt_cmd *c = commands_take(s);
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
  mqtt_cmd *c = commands_take(s);
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
