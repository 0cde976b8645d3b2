/* Sessions: POST /api/v1/login, POST /api/v1/logout, GET /api/v1/me. */
#include "http/http_int.h"

#include "base/clock.h"

#include <string.h>

static int login(http_req *r) {
  static const pl_json_field fields[] = {
      {"username", PL_JSON_STRING, 1, 127, 0},
      {"password", PL_JSON_STRING, 1, AUTH_PASSWORD_MAX, 0},
  };
  if (!http_login_allowed(r))
    return http_reply_error(r, 429, "too many failed logins from this address; wait a few minutes");
  json_t *body;
  int st = http_body_json(r, fields, 2, &body);
  if (st) return st;
  const char *name = pl_json_str(body, "username", ""), *password = pl_json_str(body, "password", "");
  store_user u;
  int rc = store_user_get_by_name(r->db, name, &u);
  /* Unknown users cost the same Argon2id verification as known ones, so timing does not tell
   * which names exist. */
  int ok = rc == 0 && auth_password_verify(u.password_hash, password) == 0 && !u.disabled;
  if (rc != 0) auth_password_verify(http_dummy_hash(r), password);
  snprintf(r->actor, sizeof r->actor, "user:%s", rc == 0 ? u.name : "?");
  if (!ok) {
    if (rc == PL_EBUSY) {
      json_decref(body);
      return http_reply_error(r, 503, "the database is busy; retry shortly");
    }
    http_login_failed(r);
    admin_ctx c = http_admin(r);
    admin_audit(&c, rc == 0 ? u.tenant_id : 0, "session.create", "", "denied", "wrong user name or password");
    json_decref(body);
    return http_reply_error(r, 401, "wrong user name or password");
  }
  json_decref(body);
  store_token t;
  memset(&t, 0, sizeof t);
  t.tenant_id = u.tenant_id;
  t.user_id = u.id;
  snprintf(t.kind, sizeof t.kind, "session");
  snprintf(t.name, sizeof t.name, "login from %s", r->remote);
  snprintf(t.role, sizeof t.role, "%s", u.role);
  t.expires_ms = pl_now_ms() + r->deps->cfg->session_ttl_ns / 1000000;
  char token[AUTH_TOKEN_MAX];
  pl_err err = {{0}};
  admin_ctx c = http_admin(r);
  if ((rc = admin_token_create(&c, &t, token, &err)) < 0) return http_reply_pl(r, rc, &err);
  store_tenant tenant;
  const char *tenant_name = store_tenant_get(r->db, u.tenant_id, &tenant) == 0 ? tenant.name : "";
  json_t *out = json_pack("{s:s, s:o, s:{s:I, s:s, s:s, s:s, s:s}}", "token", token, "expires",
                          http_time_json(t.expires_ms), "user", "id", (json_int_t)u.id, "name", u.name,
                          "display_name", u.display_name, "role", u.role, "tenant", tenant_name);
  memset(token, 0, sizeof token);
  return http_reply_json(r, 200, out);
}

static int logout(http_req *r) {
  if (auth_token_kind_of(http_header(r, MHD_HTTP_HEADER_AUTHORIZATION) + 7) != AUTH_TOKEN_SESSION)
    return http_reply_error(r, 400, "logout ends a login session; revoke API tokens with DELETE /api/v1/tokens/{id}");
  store_token t;
  int rc = store_token_get(r->db, r->who.tenant_id, r->who.token_id, &t);
  pl_err err = {{0}};
  admin_ctx c = http_admin(r);
  if (rc == 0) rc = admin_token_revoke(&c, &t, &err);
  return rc < 0 ? http_reply_pl(r, rc, &err) : http_reply_empty(r, 204);
}

static int me(http_req *r) {
  const char *kind = r->who.role == AUTH_ROLE_DEVICE ? "device" : r->who.user_id ? "user" : "token";
  json_t *out = json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", r->who.name, "role", auth_role_name(r->who.role),
                          "tenant", r->who.tenant_name, "kind", kind, "token_prefix", r->who.token_prefix);
  if (r->who.user_id) json_object_set_new(out, "user_id", json_integer(r->who.user_id));
  if (r->who.device_id) json_object_set_new(out, "device_id", json_integer(r->who.device_id));
  return http_reply_json(r, 200, out);
}

const http_route api_session_routes[] = {
    {"POST", "/api/v1/login", (void *)login, HTTP_PERM_PUBLIC, "session.create"},
    {"POST", "/api/v1/logout", (void *)logout, HTTP_PERM_ANY, "session.revoke"},
    {"GET", "/api/v1/me", (void *)me, HTTP_PERM_ANY, "me.read"},
};
const size_t api_session_nroutes = sizeof api_session_routes / sizeof api_session_routes[0];
