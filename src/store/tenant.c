/* Tenants: the enterprises (and the regional authority) that own every other row. Deleting a
 * tenant cascades to its users, tokens and devices through the schema's foreign keys; audit
 * records stay. */
#include "store/store_int.h"

#include "base/clock.h"

#include <string.h>

#define TENANT_COLS "id, name, display_name, prefecture, industry, created_ms, retention_days"

static void tenant_from_row(sqlite3_stmt *st, store_tenant *t) {
  memset(t, 0, sizeof *t);
  t->id = sqlite3_column_int64(st, 0);
  store__col_str(st, 1, t->name, sizeof t->name);
  store__col_str(st, 2, t->display_name, sizeof t->display_name);
  store__col_str(st, 3, t->prefecture, sizeof t->prefecture);
  store__col_str(st, 4, t->industry, sizeof t->industry);
  t->created_ms = sqlite3_column_int64(st, 5);
  t->retention_days = (int)sqlite3_column_int64(st, 6);
}

int store_tenant_create(store *s, store_tenant *t) {
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__TENANT_INSERT,
                       "INSERT INTO tenants (id, name, display_name, prefecture, industry, created_ms,"
                       " retention_days) VALUES (max((SELECT coalesce(max(id), 0) FROM tenants),"
                       " (SELECT id FROM tenant_id_high)) + 1, ?1, ?2, ?3, ?4, ?5, ?6)",
                       &st);
  if (rc < 0)
    return rc;
  int64_t now = pl_now_ms();
  if ((rc = STORE__BIND_STR(st, 1, t->name)) < 0 ||
      (rc = STORE__BIND_STR(st, 2, t->display_name)) < 0 ||
      (rc = STORE__BIND_STR(st, 3, t->prefecture)) < 0 ||
      (rc = STORE__BIND_STR(st, 4, t->industry)) < 0)
    return rc;
  sqlite3_bind_int64(st, 5, now);
  sqlite3_bind_int64(st, 6, t->retention_days);
  if ((rc = store__exec(s, st)) < 0)
    return rc;
  t->id = sqlite3_last_insert_rowid(s->db);
  t->created_ms = now;
  return 0;
}

static int tenant_get(store *s, int id_stmt, const char *sql, int64_t id, const char *name,
                      store_tenant *out) {
  sqlite3_stmt *st;
  int rc = store__stmt(s, id_stmt, sql, &st);
  if (rc < 0)
    return rc;
  if (name) {
    if ((rc = store__bind_str(st, 1, name, sizeof out->name)) < 0)
      return rc;
  } else {
    sqlite3_bind_int64(st, 1, id);
  }
  if ((rc = store__step_row(s, st)) < 0)
    return rc;
  tenant_from_row(st, out);
  sqlite3_reset(st);
  return 0;
}

int store_tenant_get(store *s, int64_t id, store_tenant *out) {
  return tenant_get(s, STORE__TENANT_GET, "SELECT " TENANT_COLS " FROM tenants WHERE id = ?1", id,
                    NULL, out);
}

int store_tenant_get_by_name(store *s, const char *name, store_tenant *out) {
  if (!name)
    return PL_EINVAL;
  if (strnlen(name, sizeof out->name) == sizeof out->name)
    return PL_ENOTFOUND; /* too long to exist */
  return tenant_get(s, STORE__TENANT_GET_BY_NAME,
                    "SELECT " TENANT_COLS " FROM tenants WHERE name = ?1", 0, name, out);
}

int store_tenant_update(store *s, const store_tenant *t) {
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__TENANT_UPDATE,
                       "UPDATE tenants SET display_name = ?2, prefecture = ?3, industry = ?4,"
                       " retention_days = ?5 WHERE id = ?1",
                       &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, t->id);
  if ((rc = STORE__BIND_STR(st, 2, t->display_name)) < 0 ||
      (rc = STORE__BIND_STR(st, 3, t->prefecture)) < 0 ||
      (rc = STORE__BIND_STR(st, 4, t->industry)) < 0)
    return rc;
  sqlite3_bind_int64(st, 5, t->retention_days);
  return store__exec_one(s, st);
}

int store_tenant_delete(store *s, int64_t id) {
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__TENANT_DELETE, "DELETE FROM tenants WHERE id = ?1", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, id);
  return store__exec_one(s, st);
}

typedef struct tenant_visit {
  store_tenant_cb cb;
  void *ctx;
} tenant_visit;

static int visit_tenant(void *ctx, sqlite3_stmt *st) {
  tenant_visit *v = ctx;
  store_tenant x;
  tenant_from_row(st, &x);
  return v->cb(v->ctx, &x);
}

int store_tenant_list(store *s, int64_t after_id, int limit, store_tenant_cb cb, void *ctx) {
  sqlite3_stmt *st;
  int rc = store__prepare(
      s, "SELECT " TENANT_COLS " FROM tenants WHERE id > ?1 ORDER BY id LIMIT ?2", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, after_id);
  sqlite3_bind_int64(st, 2, store__limit(limit));
  tenant_visit v = {cb, ctx};
  return store__each_row(s, st, visit_tenant, &v);
}
