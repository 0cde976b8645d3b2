/* Users: /api/v1/users, managed by the tenant's tenant-admins (and the admin). */
#include "http/http_int.h"

#include <stdio.h>
#include <string.h>

static json_t *user_json(const store_user *u) {
  return json_pack("{s:I, s:s, s:s, s:s, s:b, s:o}", "id", (json_int_t)u->id, "name", u->name, "display_name",
                   u->display_name, "role", u->role, "disabled", u->disabled, "created",
                   http_time_json(u->created_ms));
}

static int add_user(void *ctx, const store_user *x) {
  return http_list_add(ctx, x->id, user_json(x));
}

static int list(http_req *r) {
  store_tenant t;
  int limit;
  int64_t after;
  int st = http_tenant(r, "user", &t);
  if (st || (st = http_paging(r, &limit, &after))) return st;
  http_list l;
  http_list_init(&l, limit);
  return http_list_reply(r, &l, store_user_list(r->db, t.id, after, limit + 1, add_user, &l));
}

static int create(http_req *r) {
  static const pl_json_field fields[] = {
      {"name", PL_JSON_STRING, 1, 127, 0},
      {"password", PL_JSON_STRING, 1, AUTH_PASSWORD_MAX, 0},
      {"role", PL_JSON_STRING, 1, 15, 0},
      {"display_name", PL_JSON_STRING, 0, 255, 1},
  };
  store_tenant t;
  json_t *body;
  int st = http_tenant(r, "user", &t);
  if (st || (st = http_body_json(r, fields, 4, &body))) return st;
  if ((st = http_check_grant(r, pl_json_str(body, "role", "")))) {
    json_decref(body);
    return st;
  }
  store_user u;
  memset(&u, 0, sizeof u);
  u.tenant_id = t.id;
  snprintf(u.name, sizeof u.name, "%s", pl_json_str(body, "name", ""));
  snprintf(u.role, sizeof u.role, "%s", pl_json_str(body, "role", ""));
  snprintf(u.display_name, sizeof u.display_name, "%s", pl_json_str(body, "display_name", ""));
  pl_err err = {{0}};
  admin_ctx c = http_admin(r);
  int rc = admin_user_create(&c, &u, pl_json_str(body, "password", ""), &err);
  json_decref(body);
  return rc < 0 ? http_reply_pl(r, rc, &err) : http_reply_json(r, 201, user_json(&u));
}

/* The user of the path in the request's tenant; 404 otherwise. */
static int lookup(http_req *r, store_user *u) {
  store_tenant t;
  int st = http_tenant(r, "user", &t);
  if (st) return st;
  int64_t id = http_param_id(r, 0);
  int rc = id ? store_user_get(r->db, t.id, id, u) : PL_ENOTFOUND;
  if (rc == PL_ENOTFOUND) return http_reply_error(r, 404, "no user %.32s in this tenant", r->match.params[0]);
  return rc < 0 ? http_reply_pl(r, rc, NULL) : 0;
}

static int get(http_req *r) {
  store_user u;
  int st = lookup(r, &u);
  return st ? st : http_reply_json(r, 200, user_json(&u));
}

static int update(http_req *r) {
  static const pl_json_field fields[] = {
      {"display_name", PL_JSON_STRING, 0, 255, 1},
      {"role", PL_JSON_STRING, 0, 15, 1},
      {"password", PL_JSON_STRING, 0, AUTH_PASSWORD_MAX, 1},
      {"disabled", PL_JSON_BOOL, 0, 0, 1},
  };
  store_user u;
  json_t *body;
  int st = lookup(r, &u);
  if (st || (st = http_body_json(r, fields, 4, &body))) return st;
  const char *role = pl_json_str(body, "role", NULL);
  /* Changing a user needs the right to grant both its present and its new role. */
  if ((st = http_check_grant(r, u.role)) || (role && (st = http_check_grant(r, role)))) {
    json_decref(body);
    return st;
  }
  if (role) snprintf(u.role, sizeof u.role, "%s", role);
  const char *dn = pl_json_str(body, "display_name", NULL);
  if (dn) snprintf(u.display_name, sizeof u.display_name, "%s", dn);
  u.disabled = pl_json_bool(body, "disabled", u.disabled);
  pl_err err = {{0}};
  admin_ctx c = http_admin(r);
  int rc = admin_user_update(&c, &u, pl_json_str(body, "password", NULL), &err);
  json_decref(body);
  return rc < 0 ? http_reply_pl(r, rc, &err) : http_reply_json(r, 200, user_json(&u));
}

static int delete(http_req *r) {
  store_user u;
  int st = lookup(r, &u);
  if (st || (st = http_check_grant(r, u.role))) return st;
  if (u.id == r->who.user_id) return http_reply_error(r, 400, "you cannot delete your own user");
  pl_err err = {{0}};
  admin_ctx c = http_admin(r);
  int rc = admin_user_delete(&c, &u, &err);
  return rc < 0 ? http_reply_pl(r, rc, &err) : http_reply_empty(r, 204);
}

const http_route api_user_routes[] = {
    {"GET", "/api/v1/users", (void *)list, AUTH_PERM_USER_READ, "user.list"},
    {"POST", "/api/v1/users", (void *)create, AUTH_PERM_USER_WRITE, "user.create"},
    {"GET", "/api/v1/users/{id}", (void *)get, AUTH_PERM_USER_READ, "user.read"},
    {"PATCH", "/api/v1/users/{id}", (void *)update, AUTH_PERM_USER_WRITE, "user.update"},
    {"DELETE", "/api/v1/users/{id}", (void *)delete, AUTH_PERM_USER_WRITE, "user.delete"},
};
const size_t api_user_nroutes = sizeof api_user_routes / sizeof api_user_routes[0];
