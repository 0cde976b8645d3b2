/* Tenants: /api/v1/tenants. Admin manages them; everyone else reads only their own. */
#include "http/http_int.h"

#include <stdio.h>
#include <string.h>

static json_t *tenant_json(const store_tenant *t) {
  return json_pack("{s:I, s:s, s:s, s:s, s:s, s:i, s:o}", "id", (json_int_t)t->id, "name", t->name, "display_name",
                   t->display_name, "prefecture", t->prefecture, "industry", t->industry, "retention_days",
                   t->retention_days, "created", http_time_json(t->created_ms));
}

static int add_tenant(void *ctx, const store_tenant *x) {
  return http_list_add(ctx, x->id, tenant_json(x));
}

static int list(http_req *r) {
  int limit;
  int64_t after;
  int st = http_paging(r, &limit, &after);
  if (st) return st;
  http_list l;
  http_list_init(&l, limit);
  int rc = 0;
  if (auth_role_cross_tenant(r->who.role)) {
    rc = store_tenant_list(r->db, after, limit + 1, add_tenant, &l);
  } else {
    store_tenant t;
    rc = store_tenant_get(r->db, r->who.tenant_id, &t);
    if (rc == 0 && t.id > after) rc = add_tenant(&l, &t);
  }
  return http_list_reply(r, &l, rc);
}

static const pl_json_field tenant_fields[] = {
    {"name", PL_JSON_STRING, 1, 63, 0},
    {"display_name", PL_JSON_STRING, 0, 255, 1},
    {"prefecture", PL_JSON_STRING, 0, 63, 1},
    {"industry", PL_JSON_STRING, 0, 63, 1},
    {"retention_days", PL_JSON_INTEGER, 0, 0, 1},
};

static void copy_fields(store_tenant *t, const json_t *body) {
  const char *v;
  if ((v = pl_json_str(body, "display_name", NULL))) snprintf(t->display_name, sizeof t->display_name, "%s", v);
  if ((v = pl_json_str(body, "prefecture", NULL))) snprintf(t->prefecture, sizeof t->prefecture, "%s", v);
  if ((v = pl_json_str(body, "industry", NULL))) snprintf(t->industry, sizeof t->industry, "%s", v);
  json_t *days = json_object_get(body, "retention_days");
  if (json_is_integer(days)) {
    json_int_t d = json_integer_value(days);
    t->retention_days = d < 0 ? -1 : d > 36500 ? 36501 : (int)d; /* out of range: refused by admin_ */
  }
}

static int create(http_req *r) {
  json_t *body;
  int st = http_body_json(r, tenant_fields, 5, &body);
  if (st) return st;
  store_tenant t;
  memset(&t, 0, sizeof t);
  snprintf(t.name, sizeof t.name, "%s", pl_json_str(body, "name", ""));
  copy_fields(&t, body);
  json_decref(body);
  pl_err err = {{0}};
  admin_ctx c = http_admin(r);
  int rc = admin_tenant_create(&c, &t, &err);
  return rc < 0 ? http_reply_pl(r, rc, &err) : http_reply_json(r, 201, tenant_json(&t));
}

/* Finds the tenant named in the path as the caller may see it: others' tenants are 404 for
 * roles that are not cross-tenant. */
static int lookup(http_req *r, store_tenant *t) {
  const char *name = r->match.params[0];
  int rc = store_tenant_get_by_name(r->db, name, t);
  if (rc == 0 && !auth_role_cross_tenant(r->who.role) && t->id != r->who.tenant_id) rc = PL_ENOTFOUND;
  if (rc == PL_ENOTFOUND) return http_reply_error(r, 404, "no tenant named \"%.64s\"", name);
  if (rc < 0) return http_reply_pl(r, rc, NULL);
  return 0;
}

static int get(http_req *r) {
  store_tenant t;
  int st = lookup(r, &t);
  if (st) return st;
  if (t.id != r->who.tenant_id) {
    char target[96];
    snprintf(target, sizeof target, "tenant:%s", t.name);
    admin_ctx c = http_admin(r);
    admin_audit(&c, t.id, "tenant.read", target, "ok", r->path);
  }
  return http_reply_json(r, 200, tenant_json(&t));
}

static int update(http_req *r) {
  static const pl_json_field fields[] = {
      {"display_name", PL_JSON_STRING, 0, 255, 1},
      {"prefecture", PL_JSON_STRING, 0, 63, 1},
      {"industry", PL_JSON_STRING, 0, 63, 1},
      {"retention_days", PL_JSON_INTEGER, 0, 0, 1},
  };
  store_tenant t;
  int st = lookup(r, &t);
  if (st) return st;
  json_t *body;
  if ((st = http_body_json(r, fields, 4, &body))) return st;
  copy_fields(&t, body);
  json_decref(body);
  pl_err err = {{0}};
  admin_ctx c = http_admin(r);
  int rc = admin_tenant_update(&c, &t, &err);
  return rc < 0 ? http_reply_pl(r, rc, &err) : http_reply_json(r, 200, tenant_json(&t));
}

#define NS_MAX 1024

typedef struct ns_list {
  int64_t ns[NS_MAX];
  size_t n;
  int64_t last_id;
} ns_list;

static int add_ns(void *ctx, const store_database *d) {
  ns_list *l = ctx;
  l->last_id = d->id;
  if (l->n < NS_MAX) l->ns[l->n++] = STORE_DATABASE_NS_BASE | d->id;
  return 0;
}

static int delete(http_req *r) {
  store_tenant t;
  int st = lookup(r, &t);
  if (st) return st;
  if (t.id == r->who.tenant_id)
    return http_reply_error(r, 400, "a tenant cannot delete itself; ask another admin");
  /* The namespaces of its time series: the default one and one per database, listed before
   * the deletion cascades the database rows away. */
  ns_list nss = {{t.id}, 1, 0};
  int64_t after = 0;
  int n;
  while ((n = store_database_list(r->db, t.id, after, 100, add_ns, &nss)) == 100 && nss.n < NS_MAX)
    after = nss.last_id;
  pl_err err = {{0}};
  admin_ctx c = http_admin(r);
  int rc = admin_tenant_delete(&c, &t, &err);
  if (rc < 0) return http_reply_pl(r, rc, &err);
  /* Its time series go at once; the server's maintenance sweep catches any left behind (a
   * crash here, more databases than listed, or a tenant deleted with the CLI). */
  for (size_t i = 0; r->deps->tsdb && i < nss.n; i++)
    tsdb_delete(r->deps->tsdb, nss.ns[i], (tsdb_str){NULL, 0}, 0, INT64_MIN, INT64_MAX, &err);
  return http_reply_empty(r, 204);
}

const http_route api_tenant_routes[] = {
    {"GET", "/api/v1/tenants", (void *)list, AUTH_PERM_TENANT_READ, "tenant.list"},
    {"POST", "/api/v1/tenants", (void *)create, AUTH_PERM_TENANT_WRITE, "tenant.create"},
    {"GET", "/api/v1/tenants/{name}", (void *)get, AUTH_PERM_TENANT_READ, "tenant.read"},
    {"PATCH", "/api/v1/tenants/{name}", (void *)update, AUTH_PERM_TENANT_WRITE, "tenant.update"},
    {"DELETE", "/api/v1/tenants/{name}", (void *)delete, AUTH_PERM_TENANT_WRITE, "tenant.delete"},
};
const size_t api_tenant_nroutes = sizeof api_tenant_routes / sizeof api_tenant_routes[0];
