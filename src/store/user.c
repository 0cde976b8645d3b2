/* Users: people who log in. A user belongs to one tenant; the login name is unique across the
 * platform. Deleting a user deletes its tokens (foreign key cascade). */
#include "store/store_int.h"

#include "base/clock.h"

#include <string.h>

#define USER_COLS "id, tenant_id, name, display_name, role, password_hash, disabled, created_ms"

static void user_from_row(sqlite3_stmt *st, store_user *u) {
  memset(u, 0, sizeof *u);
  u->id = sqlite3_column_int64(st, 0);
  u->tenant_id = sqlite3_column_int64(st, 1);
  store__col_str(st, 2, u->name, sizeof u->name);
  store__col_str(st, 3, u->display_name, sizeof u->display_name);
  store__col_str(st, 4, u->role, sizeof u->role);
  store__col_str(st, 5, u->password_hash, sizeof u->password_hash);
  u->disabled = sqlite3_column_int(st, 6) != 0;
  u->created_ms = sqlite3_column_int64(st, 7);
}

int store_user_create(store *s, store_user *u) {
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__USER_INSERT,
                       "INSERT INTO users (tenant_id, name, display_name, role, password_hash,"
                       " disabled, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                       &st);
  if (rc < 0)
    return rc;
  int64_t now = pl_now_ms();
  sqlite3_bind_int64(st, 1, u->tenant_id);
  if ((rc = STORE__BIND_STR(st, 2, u->name)) < 0 ||
      (rc = STORE__BIND_STR(st, 3, u->display_name)) < 0 ||
      (rc = STORE__BIND_STR(st, 4, u->role)) < 0 ||
      (rc = STORE__BIND_STR(st, 5, u->password_hash)) < 0)
    return rc;
  sqlite3_bind_int(st, 6, u->disabled != 0);
  sqlite3_bind_int64(st, 7, now);
  if ((rc = store__exec(s, st)) < 0)
    return rc;
  u->id = sqlite3_last_insert_rowid(s->db);
  u->created_ms = now;
  return 0;
}

int store_user_get(store *s, int64_t tenant_id, int64_t id, store_user *out) {
  sqlite3_stmt *st;
  int rc = store__stmt(
      s, STORE__USER_GET,
      "SELECT " USER_COLS " FROM users WHERE id = ?1 AND (?2 = 0 OR tenant_id = ?2)", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, tenant_id);
  if ((rc = store__step_row(s, st)) < 0)
    return rc;
  user_from_row(st, out);
  sqlite3_reset(st);
  return 0;
}

int store_user_get_by_name(store *s, const char *name, store_user *out) {
  if (!name)
    return PL_EINVAL;
  if (strnlen(name, sizeof out->name) == sizeof out->name)
    return PL_ENOTFOUND;
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__USER_GET_BY_NAME,
                       "SELECT " USER_COLS " FROM users WHERE name = ?1", &st);
  if (rc < 0)
    return rc;
  if ((rc = store__bind_str(st, 1, name, sizeof out->name)) < 0)
    return rc;
  if ((rc = store__step_row(s, st)) < 0)
    return rc;
  user_from_row(st, out);
  sqlite3_reset(st);
  return 0;
}

int store_user_update(store *s, const store_user *u) {
  sqlite3_stmt *st;
  int rc =
      store__stmt(s, STORE__USER_UPDATE,
                  "UPDATE users SET display_name = ?3, role = ?4, password_hash = ?5, disabled = ?6"
                  " WHERE id = ?1 AND tenant_id = ?2",
                  &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, u->id);
  sqlite3_bind_int64(st, 2, u->tenant_id);
  if ((rc = STORE__BIND_STR(st, 3, u->display_name)) < 0 ||
      (rc = STORE__BIND_STR(st, 4, u->role)) < 0 ||
      (rc = STORE__BIND_STR(st, 5, u->password_hash)) < 0)
    return rc;
  sqlite3_bind_int(st, 6, u->disabled != 0);
  return store__exec_one(s, st);
}

int store_user_delete(store *s, int64_t tenant_id, int64_t id) {
  sqlite3_stmt *st;
  int rc =
      store__stmt(s, STORE__USER_DELETE, "DELETE FROM users WHERE id = ?1 AND tenant_id = ?2", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, tenant_id);
  return store__exec_one(s, st);
}

typedef struct user_visit {
  store_user_cb cb;
  void *ctx;
} user_visit;

static int visit_user(void *ctx, sqlite3_stmt *st) {
  user_visit *v = ctx;
  store_user x;
  user_from_row(st, &x);
  return v->cb(v->ctx, &x);
}

int store_user_list(store *s, int64_t tenant_id, int64_t after_id, int limit, store_user_cb cb,
                    void *ctx) {
  sqlite3_stmt *st;
  int rc = store__prepare(s,
                          "SELECT " USER_COLS " FROM users WHERE tenant_id = ?1 AND id > ?2"
                          " ORDER BY id LIMIT ?3",
                          &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  sqlite3_bind_int64(st, 2, after_id);
  sqlite3_bind_int64(st, 3, store__limit(limit));
  user_visit v = {cb, ctx};
  return store__each_row(s, st, visit_user, &v);
}
