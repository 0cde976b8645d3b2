/* Databases: the named time-series databases of a tenant, as InfluxDB's `db` names them. A
 * database's data lives in the time-series engine under the namespace STORE_DATABASE_NS_BASE |
 * id (store.h); the tenant's implicit default database "plateau" has no row here. Names are
 * unique within a tenant; deleting a tenant deletes its rows (ON DELETE CASCADE), after which the
 * server's maintenance sweep deletes the time series of the namespaces left without a row.
 *
 * These lookups are not on a per-point path (one per /write request), so they use fresh
 * statements rather than the connection's statement cache. */
#include "store/store_int.h"

#include "base/clock.h"

#include <string.h>

#define DATABASE_COLS "id, tenant_id, name, created_ms"

static void database_from_row(sqlite3_stmt *st, store_database *d) {
  memset(d, 0, sizeof *d);
  d->id = sqlite3_column_int64(st, 0);
  d->tenant_id = sqlite3_column_int64(st, 1);
  store__col_str(st, 2, d->name, sizeof d->name);
  d->created_ms = sqlite3_column_int64(st, 3);
}

int store_database_create(store *s, store_database *d) {
  if (strnlen(d->name, sizeof d->name) == 0)
    return PL_EINVAL;
  sqlite3_stmt *st;
  int rc = store__prepare(
      s, "INSERT INTO databases (tenant_id, name, created_ms) VALUES (?1, ?2, ?3)", &st);
  if (rc < 0)
    return rc;
  int64_t now = pl_now_ms();
  sqlite3_bind_int64(st, 1, d->tenant_id);
  if ((rc = STORE__BIND_STR(st, 2, d->name)) == 0) {
    sqlite3_bind_int64(st, 3, now);
    rc = store__exec(s, st);
  }
  if (rc == 0) {
    d->id = sqlite3_last_insert_rowid(s->db);
    d->created_ms = now;
  }
  sqlite3_finalize(st);
  return rc;
}

/* Runs a single-row lookup prepared by the caller and fills *out. */
static int get_one(store *s, sqlite3_stmt *st, store_database *out) {
  int rc = store__step_row(s, st);
  if (rc == 0)
    database_from_row(st, out);
  sqlite3_finalize(st);
  return rc;
}

int store_database_get_by_name(store *s, int64_t tenant_id, const char *name, store_database *out) {
  if (!name)
    return PL_EINVAL;
  if (strnlen(name, sizeof out->name) == sizeof out->name)
    return PL_ENOTFOUND; /* too long to exist */
  sqlite3_stmt *st;
  int rc = store__prepare(
      s, "SELECT " DATABASE_COLS " FROM databases WHERE tenant_id = ?1 AND name = ?2", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  if ((rc = store__bind_str(st, 2, name, sizeof out->name)) < 0) {
    sqlite3_finalize(st);
    return rc;
  }
  return get_one(s, st, out);
}

int store_database_get(store *s, int64_t tenant_id, int64_t id, store_database *out) {
  sqlite3_stmt *st;
  int rc = store__prepare(s,
                          "SELECT " DATABASE_COLS " FROM databases WHERE id = ?2"
                          " AND (?1 = 0 OR tenant_id = ?1)",
                          &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  sqlite3_bind_int64(st, 2, id);
  return get_one(s, st, out);
}

int store_database_delete(store *s, int64_t tenant_id, int64_t id) {
  sqlite3_stmt *st;
  int rc = store__prepare(s, "DELETE FROM databases WHERE id = ?1 AND tenant_id = ?2", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, tenant_id);
  rc = store__exec_one(s, st);
  sqlite3_finalize(st);
  return rc;
}

typedef struct database_visit {
  store_database_cb cb;
  void *ctx;
} database_visit;

static int visit_database(void *ctx, sqlite3_stmt *st) {
  database_visit *v = ctx;
  store_database x;
  database_from_row(st, &x);
  return v->cb(v->ctx, &x);
}

int store_database_list(store *s, int64_t tenant_id, int64_t after_id, int limit,
                        store_database_cb cb, void *ctx) {
  sqlite3_stmt *st;
  int rc = store__prepare(s,
                          "SELECT " DATABASE_COLS " FROM databases"
                          " WHERE (?1 = 0 OR tenant_id = ?1) AND id > ?2 ORDER BY id LIMIT ?3",
                          &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  sqlite3_bind_int64(st, 2, after_id);
  sqlite3_bind_int64(st, 3, store__limit(limit));
  database_visit v = {cb, ctx};
  return store__each_row(s, st, visit_database, &v);
}
