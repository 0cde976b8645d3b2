/* API tokens: /api/v1/tokens. Tenant-admins and the admin manage all of a tenant's tokens;
 * other roles see and revoke their own. */
#include "http/http_int.h"

#include "base/clock.h"

#include <stdio.h>
#include <string.h>

static json_t *token_json(const store_token *t) {
  return json_pack("{s:I, s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "id", (json_int_t)t->id, "name", t->name, "prefix",
                   t->prefix, "role", t->role, "created", http_time_json(t->created_ms), "expires",
                   http_time_json(t->expires_ms), "last_used", http_time_json(t->last_used_ms), "revoked",
                   http_time_json(t->revoked_ms));
}

static int add_token(void *ctx, const store_token *t) {
  return http_list_add(ctx, t->id, token_json(t));
}

/* Whether the caller manages every token of the tenant, rather than only its own. */
static int manages_all(http_req *r) {
  return r->who.role == AUTH_ROLE_ADMIN || r->who.role == AUTH_ROLE_TENANT_ADMIN;
}

static int owns(http_req *r, const store_token *t) {
  if (manages_all(r)) return 1;
  return r->who.user_id ? t->user_id == r->who.user_id : t->id == r->who.token_id;
}

static int list(http_req *r) {
  store_tenant tenant;
  int limit;
  int64_t after;
  int st = http_tenant(r, "token", &tenant);
  if (st || (st = http_paging(r, &limit, &after))) return st;
  http_list l;
  http_list_init(&l, limit);
  int rc;
  if (manages_all(r) || r->who.user_id) {
    rc = store_token_list(r->db, tenant.id, manages_all(r) ? 0 : r->who.user_id, 0, after, limit + 1, add_token, &l);
  } else {
    /* A token without a user sees itself. */
    store_token t;
    rc = store_token_get(r->db, tenant.id, r->who.token_id, &t);
    if (rc == 0 && t.id > after) rc = add_token(&l, &t);
  }
  return http_list_reply(r, &l, rc);
}

static int create(http_req *r) {
  static const pl_json_field fields[] = {
      {"name", PL_JSON_STRING, 1, 127, 0},
      {"role", PL_JSON_STRING, 0, 15, 1},
      {"expires_in", PL_JSON_STRING, 0, 32, 1},
  };
  store_tenant tenant;
  json_t *body;
  int st = http_tenant(r, "token", &tenant);
  if (st || (st = http_body_json(r, fields, 3, &body))) return st;
  if (!r->who.user_id && !manages_all(r)) {
    /* A token that belongs to no user could not see or revoke what it made. */
    json_decref(body);
    return http_reply_error(r, 403, "only signed-in users and tenant-admins create tokens");
  }
  const char *role = pl_json_str(body, "role", auth_role_name(r->who.role));
  const char *expires_in = pl_json_str(body, "expires_in", NULL);
  int64_t ttl_ns = 0;
  if ((st = http_check_grant(r, role))) goto out;
  if (expires_in && (pl_duration_parse(expires_in, &ttl_ns) < 0 || ttl_ns <= 0 ||
                     ttl_ns > r->deps->cfg->token_ttl_max_ns)) {
    st = http_reply_error(r, 400, "expires_in must be a duration such as 30d or 12h, at most %lld days",
                          (long long)(r->deps->cfg->token_ttl_max_ns / 86400000000000LL));
    goto out;
  }
  store_token t;
  memset(&t, 0, sizeof t);
  t.tenant_id = tenant.id;
  /* A token made for another tenant by the admin belongs to no user of that tenant. */
  t.user_id = tenant.id == r->who.tenant_id ? r->who.user_id : 0;
  snprintf(t.kind, sizeof t.kind, "api");
  snprintf(t.name, sizeof t.name, "%s", pl_json_str(body, "name", ""));
  snprintf(t.role, sizeof t.role, "%s", role);
  if (ttl_ns) t.expires_ms = pl_now_ms() + ttl_ns / 1000000;
  char token[AUTH_TOKEN_MAX];
  pl_err err = {{0}};
  admin_ctx c = http_admin(r);
  int rc = admin_token_create(&c, &t, token, &err);
  if (rc < 0) {
    st = http_reply_pl(r, rc, &err);
    goto out;
  }
  json_t *o = token_json(&t);
  json_object_set_new(o, "token", json_string(token));
  memset(token, 0, sizeof token);
  st = http_reply_json(r, 201, o);
out:
  json_decref(body);
  return st;
}

static int revoke_token(http_req *r) {
  store_tenant tenant;
  int st = http_tenant(r, "token", &tenant);
  if (st) return st;
  store_token t;
  int64_t id = http_param_id(r, 0);
  int rc = id ? store_token_get(r->db, tenant.id, id, &t) : PL_ENOTFOUND;
  if (rc == 0 && (!owns(r, &t) || strcmp(t.kind, "api") != 0)) rc = PL_ENOTFOUND;
  if (rc == PL_ENOTFOUND) return http_reply_error(r, 404, "no token %.32s here", r->match.params[0]);
  if (rc < 0) return http_reply_pl(r, rc, NULL);
  if (t.revoked_ms) return http_reply_empty(r, 204);
  pl_err err = {{0}};
  admin_ctx c = http_admin(r);
  rc = admin_token_revoke(&c, &t, &err);
  return rc < 0 ? http_reply_pl(r, rc, &err) : http_reply_empty(r, 204);
}

const http_route api_token_routes[] = {
    {"GET", "/api/v1/tokens", (void *)list, AUTH_PERM_TOKEN_READ, "token.list"},
    {"POST", "/api/v1/tokens", (void *)create, AUTH_PERM_TOKEN_WRITE, "token.create"},
    {"DELETE", "/api/v1/tokens/{id}", (void *)revoke_token, AUTH_PERM_TOKEN_WRITE, "token.revoke"},
};
const size_t api_token_nroutes = sizeof api_token_routes / sizeof api_token_routes[0];
