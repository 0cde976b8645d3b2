/* Devices: /api/v1/devices — the asset inventory and device credentials. */
#include "http/http_int.h"

#include "mqtt/mqtt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *device_json(const store_device *d) {
  json_t *attrs = NULL;
  if (d->attributes_json && *d->attributes_json) attrs = json_loads(d->attributes_json, 0, NULL);
  if (!attrs) attrs = json_object();
  return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:o, s:o, s:o}", "id", (json_int_t)d->id, "name",
                   d->name, "type", d->type, "vendor", d->vendor, "product", d->product, "firmware", d->firmware,
                   "location", d->location, "attributes", attrs, "token_prefix", d->token_prefix, "created",
                   http_time_json(d->created_ms), "updated", http_time_json(d->updated_ms), "last_seen",
                   http_time_json(d->last_seen_ms));
}

static int add_device(void *ctx, const store_device *d) {
  return http_list_add(ctx, d->id, device_json(d));
}

static int list(http_req *r) {
  store_tenant t;
  int limit;
  int64_t after;
  int st = http_tenant(r, "device", &t);
  if (st || (st = http_paging(r, &limit, &after))) return st;
  http_list l;
  http_list_init(&l, limit);
  return http_list_reply(r, &l, store_device_list(r->db, t.id, after, limit + 1, add_device, &l));
}

static const pl_json_field device_fields[] = {
    {"name", PL_JSON_STRING, 0, 127, 0},     {"type", PL_JSON_STRING, 0, 63, 1},
    {"vendor", PL_JSON_STRING, 0, 127, 1},   {"product", PL_JSON_STRING, 0, 127, 1},
    {"firmware", PL_JSON_STRING, 0, 63, 1},  {"location", PL_JSON_STRING, 0, 255, 1},
    {"attributes", PL_JSON_OBJECT, 0, 200, 1},
};

/* Copies the body's fields present into d; replaces d's attributes when given. */
static int apply(http_req *r, store_device *d, const json_t *body) {
  const struct {
    const char *key;
    char *dst;
    size_t size;
  } text[] = {{"name", d->name, sizeof d->name},          {"type", d->type, sizeof d->type},
              {"vendor", d->vendor, sizeof d->vendor},    {"product", d->product, sizeof d->product},
              {"firmware", d->firmware, sizeof d->firmware}, {"location", d->location, sizeof d->location}};
  for (size_t i = 0; i < sizeof text / sizeof text[0]; i++) {
    const char *v = pl_json_str(body, text[i].key, NULL);
    if (v) snprintf(text[i].dst, text[i].size, "%s", v);
  }
  json_t *attrs = json_object_get(body, "attributes");
  if (json_is_object(attrs)) {
    char *s = json_dumps(attrs, JSON_COMPACT);
    if (!s) return http_reply_error(r, 500, "out of memory");
    free(d->attributes_json);
    d->attributes_json = s;
  }
  return 0;
}

static int create(http_req *r) {
  store_tenant t;
  json_t *body;
  int st = http_tenant(r, "device", &t);
  if (st || (st = http_body_json(r, device_fields, 7, &body))) return st;
  if (!json_is_string(json_object_get(body, "name"))) {
    json_decref(body);
    return http_reply_error(r, 400, "field \"name\" is required");
  }
  store_device d;
  memset(&d, 0, sizeof d);
  d.tenant_id = t.id;
  st = apply(r, &d, body);
  json_decref(body);
  if (st) return st;
  char token[AUTH_TOKEN_MAX];
  pl_err err = {{0}};
  admin_ctx c = http_admin(r);
  int rc = admin_device_create(&c, &d, token, &err);
  if (rc < 0) {
    store_device_clear(&d);
    return http_reply_pl(r, rc, &err);
  }
  json_t *o = device_json(&d);
  json_object_set_new(o, "token", json_string(token));
  memset(token, 0, sizeof token);
  store_device_clear(&d);
  return http_reply_json(r, 201, o);
}

static int lookup(http_req *r, store_device *d) {
  store_tenant t;
  int st = http_tenant(r, "device", &t);
  if (st) return st;
  int64_t id = http_param_id(r, 0);
  int rc = id ? store_device_get(r->db, t.id, id, d) : PL_ENOTFOUND;
  if (rc == PL_ENOTFOUND) return http_reply_error(r, 404, "no device %.32s in this tenant", r->match.params[0]);
  return rc < 0 ? http_reply_pl(r, rc, NULL) : 0;
}

static int get(http_req *r) {
  store_device d;
  int st = lookup(r, &d);
  if (st) return st;
  json_t *o = device_json(&d);
  store_device_clear(&d);
  return http_reply_json(r, 200, o);
}

static int update(http_req *r) {
  store_device d;
  json_t *body;
  int st = lookup(r, &d);
  if (st) return st;
  if ((st = http_body_json(r, device_fields, 7, &body))) {
    store_device_clear(&d);
    return st;
  }
  st = apply(r, &d, body);
  json_decref(body);
  if (!st) {
    pl_err err = {{0}};
    admin_ctx c = http_admin(r);
    int rc = admin_device_update(&c, &d, &err);
    /* Connected devices get their changed shared attributes (MQTT). */
    if (rc == 0) mqtt_device_changed(r->deps->mqtt, d.tenant_id, d.id, MQTT_DEVICE_ATTRIBUTES, d.attributes_json);
    st = rc < 0 ? http_reply_pl(r, rc, &err) : http_reply_json(r, 200, device_json(&d));
  }
  store_device_clear(&d);
  return st;
}

static int delete(http_req *r) {
  store_device d;
  int st = lookup(r, &d);
  if (st) return st;
  pl_err err = {{0}};
  admin_ctx c = http_admin(r);
  int rc = admin_device_delete(&c, &d, &err);
  if (rc == 0) mqtt_device_changed(r->deps->mqtt, d.tenant_id, d.id, MQTT_DEVICE_DELETED, NULL); /* closes its MQTT connection */
  store_device_clear(&d);
  return rc < 0 ? http_reply_pl(r, rc, &err) : http_reply_empty(r, 204);
}

static int rotate(http_req *r) {
  store_device d;
  int st = lookup(r, &d);
  if (st) return st;
  char token[AUTH_TOKEN_MAX];
  pl_err err = {{0}};
  admin_ctx c = http_admin(r);
  int rc = admin_device_rotate(&c, &d, token, &err);
  if (rc == 0) mqtt_device_changed(r->deps->mqtt, d.tenant_id, d.id, MQTT_DEVICE_CREDENTIALS, NULL); /* the old token's connection */
  if (rc == 0)
    st = http_reply_json(r, 200, json_pack("{s:s, s:s}", "token", token, "token_prefix", d.token_prefix));
  else
    st = http_reply_pl(r, rc, &err);
  memset(token, 0, sizeof token);
  store_device_clear(&d);
  return st;
}

const http_route api_device_routes[] = {
    {"GET", "/api/v1/devices", (void *)list, AUTH_PERM_DEVICE_READ, "device.list"},
    {"POST", "/api/v1/devices", (void *)create, AUTH_PERM_DEVICE_WRITE, "device.create"},
    {"GET", "/api/v1/devices/{id}", (void *)get, AUTH_PERM_DEVICE_READ, "device.read"},
    {"PATCH", "/api/v1/devices/{id}", (void *)update, AUTH_PERM_DEVICE_WRITE, "device.update"},
    {"DELETE", "/api/v1/devices/{id}", (void *)delete, AUTH_PERM_DEVICE_WRITE, "device.delete"},
    {"POST", "/api/v1/devices/{id}/token", (void *)rotate, AUTH_PERM_DEVICE_TOKEN, "device.token.rotate"},
};
const size_t api_device_nroutes = sizeof api_device_routes / sizeof api_device_routes[0];
