/* Commands to connected devices, and their connection state (the MQTT server holds both):
 *
 *   POST /api/v1/devices/{id}/rpc         server-side RPC: {"method", "params"?, "timeout_ms"?}
 *                                         -> 200 with the device's answer, 504 when it does not
 *                                         answer in time, 409 when it is offline
 *   GET  /api/v1/devices/{id}/connection  {"online", "connected", "last_seen", "gateway",
 *                                         "remote", "protocol"}
 *
 * An RPC call holds this HTTP worker thread until the device answers or the timeout passes: the
 * request is handed to the MQTT thread (mqtt_rpc_call: a locked queue and uv_async_send) and this
 * thread waits on a condition variable the MQTT thread signals. At most http_threads - 1 calls
 * wait at once, so one HTTP thread always stays free; more are answered 503 at once.
 *
 * Calls are commands to equipment: each is audited (device.rpc) with its method and outcome.
 */
#include "http/http_int.h"

#include "mqtt/mqtt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RPC_TIMEOUT_DEFAULT_MS 10000
#define RPC_TIMEOUT_MAX_MS 60000

/* An error whose code says more than the status alone (409 is "already_exists" in the table). */
static int reply_code(http_req *r, int status, const char *code, const char *msg) {
  return http_reply_json(r, status, json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg));
}

static int lookup(http_req *r, store_tenant *t, store_device *d) {
  int st = http_tenant(r, "device", t);
  if (st) return st;
  int64_t id = http_param_id(r, 0);
  memset(d, 0, sizeof *d);
  int rc = id ? store_device_get(r->db, t->id, id, d) : PL_ENOTFOUND;
  if (rc == PL_ENOTFOUND) return http_reply_error(r, 404, "no device %.32s in this tenant", r->match.params[0]);
  return rc < 0 ? http_reply_pl(r, rc, NULL) : 0;
}

static const pl_json_field rpc_fields[] = {
    {"method", PL_JSON_STRING, 1, 256, 0},
    {"params", PL_JSON_ANY, 0, 0, 1},
    {"timeout_ms", PL_JSON_INTEGER, 0, 0, 0},
};

static int rpc(http_req *r) {
  store_tenant t;
  store_device d;
  json_t *body;
  int st = lookup(r, &t, &d);
  if (st) return st;
  if ((st = http_body_json(r, rpc_fields, sizeof rpc_fields / sizeof rpc_fields[0], &body))) {
    store_device_clear(&d);
    return st;
  }
  const char *method = pl_json_str(body, "method", "");
  long long timeout_ms = pl_json_int(body, "timeout_ms", RPC_TIMEOUT_DEFAULT_MS);
  if (!*method) st = http_reply_error(r, 400, "method must not be empty");
  else if (timeout_ms < 1 || timeout_ms > RPC_TIMEOUT_MAX_MS)
    st = http_reply_error(r, 400, "timeout_ms must be 1 to %d", RPC_TIMEOUT_MAX_MS);
  else if (!r->deps->mqtt)
    st = http_reply_error(r, 503, "the MQTT server is not running (mqtt_listen and mqtt_tls_cert are empty)");
  if (st) {
    json_decref(body);
    store_device_clear(&d);
    return st;
  }
  /* What the device receives, as ThingsBoard sends it: {"method": ..., "params": ...}. */
  json_t *params = json_object_get(body, "params");
  json_t *req = json_object();
  if (req) {
    json_object_set_new(req, "method", json_string(method));
    json_object_set_new(req, "params", params ? json_incref(params) : json_object());
  }
  char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
  json_decref(req);
  if (!text) {
    json_decref(body);
    store_device_clear(&d);
    return http_reply_error(r, 500, "out of memory");
  }
  pl_buf answer;
  pl_buf_init(&answer, 0);
  pl_err err = {{0}};
  int rc = mqtt_rpc_call(r->deps->mqtt, t.id, d.id, text, strlen(text), (int)timeout_ms, &answer, &err);
  free(text);
  char target[160], detail[400];
  snprintf(target, sizeof target, "device:%s", d.name);
  snprintf(detail, sizeof detail, "method=%.200s%s%s", method, rc ? " " : "", rc ? err.msg : "");
  admin_ctx c = http_admin(r);
  admin_audit(&c, t.id, "device.rpc", target, rc == 0 ? "ok" : "error", detail);
  switch (rc) {
  case 0: {
    /* The device's answer as it sent it: JSON when it is JSON, else a JSON string. */
    json_t *v = NULL;
    if (pl_json_parse(answer.data, answer.len, PL_JSON_DEPTH_MAX, &v, NULL) < 0)
      v = json_stringn((const char *)answer.data, answer.len);
    st = v ? http_reply_json(r, 200, v) : http_reply_error(r, 502, "the device's answer cannot be returned");
    break;
  }
  case PL_ENOTFOUND: st = reply_code(r, 409, "failed_precondition", "the device is offline: it is not connected"); break;
  case PL_EPERM: st = reply_code(r, 409, "failed_precondition", err.msg); break;
  case PL_ETIMEDOUT: st = http_reply_error(r, 504, "%s", err.msg); break;
  case PL_ELIMIT:
  case PL_ESTATE: st = http_reply_error(r, 503, "%s", err.msg); break;
  default: st = http_reply_pl(r, rc, &err);
  }
  pl_buf_free(&answer);
  json_decref(body);
  store_device_clear(&d);
  return st;
}

static int connection(http_req *r) {
  store_tenant t;
  store_device d;
  int st = lookup(r, &t, &d);
  if (st) return st;
  mqtt_device_status s;
  memset(&s, 0, sizeof s);
  if (r->deps->mqtt) mqtt_device_status_get(r->deps->mqtt, t.id, d.id, &s);
  /* The server's memory is fresher than the database, which is written at most once a minute. */
  int64_t last_seen = s.last_seen_ms > d.last_seen_ms ? s.last_seen_ms : d.last_seen_ms;
  const char *proto = s.protocol == 5 ? "5.0" : s.protocol == 4 ? "3.1.1" : s.protocol == 3 ? "3.1" : NULL;
  json_t *o = json_pack("{s:b, s:o, s:o, s:o, s:o, s:o}", "online", s.online, "connected",
                        http_time_json(s.connected_ms), "last_seen", http_time_json(last_seen), "gateway",
                        s.via_gateway[0] ? json_string(s.via_gateway) : json_null(), "remote",
                        s.online && s.remote[0] ? json_string(s.remote) : json_null(), "protocol",
                        proto && s.online ? json_string(proto) : json_null());
  store_device_clear(&d);
  return http_reply_json(r, 200, o);
}

const http_route api_rpc_routes[] = {
    {"POST", "/api/v1/devices/{id}/rpc", (void *)rpc, AUTH_PERM_DEVICE_WRITE, "device.rpc"},
    {"GET", "/api/v1/devices/{id}/connection", (void *)connection, AUTH_PERM_DEVICE_READ, "device.connection.read"},
};
const size_t api_rpc_nroutes = sizeof api_rpc_routes / sizeof api_rpc_routes[0];
