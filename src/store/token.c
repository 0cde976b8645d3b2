/* Tokens: API tokens and login sessions, stored as a BLAKE2b-256 hash with a visible prefix.
 * The lookup by hash is the hot path of every authenticated request; it is a cached statement
 * on the unique index of tokens.hash. user_id 0 is stored as NULL (a token of no user). */
#include "store/store_int.h"

#include "base/clock.h"

#include <string.h>

#define TOKEN_COLS                                                                                 \
  "id, tenant_id, user_id, kind, name, prefix, hash, role, created_ms, expires_ms, last_used_ms,"  \
  " revoked_ms"

/* Token use is recorded at most this often per token, so that authentication does not turn
 * every request into a database write. */
#define TOKEN_TOUCH_INTERVAL_MS 60000

static void token_from_row(sqlite3_stmt *st, store_token *t) {
  memset(t, 0, sizeof *t);
  t->id = sqlite3_column_int64(st, 0);
  t->tenant_id = sqlite3_column_int64(st, 1);
  t->user_id = sqlite3_column_int64(st, 2); /* NULL reads as 0 */
  store__col_str(st, 3, t->kind, sizeof t->kind);
  store__col_str(st, 4, t->name, sizeof t->name);
  store__col_str(st, 5, t->prefix, sizeof t->prefix);
  store__col_hash(st, 6, t->hash);
  store__col_str(st, 7, t->role, sizeof t->role);
  t->created_ms = sqlite3_column_int64(st, 8);
  t->expires_ms = sqlite3_column_int64(st, 9);
  t->last_used_ms = sqlite3_column_int64(st, 10);
  t->revoked_ms = sqlite3_column_int64(st, 11);
}

int store_token_create(store *s, store_token *t) {
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__TOKEN_INSERT,
                       "INSERT INTO tokens (tenant_id, user_id, kind, name, prefix, hash, role,"
                       " created_ms, expires_ms, last_used_ms, revoked_ms)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, 0)",
                       &st);
  if (rc < 0)
    return rc;
  int64_t now = pl_now_ms();
  sqlite3_bind_int64(st, 1, t->tenant_id);
  if (t->user_id)
    sqlite3_bind_int64(st, 2, t->user_id); /* else NULL */
  if ((rc = STORE__BIND_STR(st, 3, t->kind)) < 0 || (rc = STORE__BIND_STR(st, 4, t->name)) < 0 ||
      (rc = STORE__BIND_STR(st, 5, t->prefix)) < 0 || (rc = store__bind_hash(st, 6, t->hash)) < 0 ||
      (rc = STORE__BIND_STR(st, 7, t->role)) < 0)
    return rc;
  sqlite3_bind_int64(st, 8, now);
  sqlite3_bind_int64(st, 9, t->expires_ms);
  if ((rc = store__exec(s, st)) < 0)
    return rc;
  t->id = sqlite3_last_insert_rowid(s->db);
  t->created_ms = now;
  t->last_used_ms = 0;
  t->revoked_ms = 0;
  return 0;
}

int store_token_get_by_hash(store *s, const uint8_t hash[32], store_token *out) {
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__TOKEN_GET_BY_HASH,
                       "SELECT " TOKEN_COLS " FROM tokens WHERE hash = ?1", &st);
  if (rc < 0)
    return rc;
  if ((rc = store__bind_hash(st, 1, hash)) < 0)
    return rc;
  if ((rc = store__step_row(s, st)) < 0)
    return rc;
  token_from_row(st, out);
  sqlite3_reset(st);
  return 0;
}

int store_token_get(store *s, int64_t tenant_id, int64_t id, store_token *out) {
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__TOKEN_GET,
                       "SELECT " TOKEN_COLS " FROM tokens WHERE id = ?1 AND tenant_id = ?2", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, tenant_id);
  if ((rc = store__step_row(s, st)) < 0)
    return rc;
  token_from_row(st, out);
  sqlite3_reset(st);
  return 0;
}

int store_token_revoke(store *s, int64_t tenant_id, int64_t id, int64_t now_ms) {
  sqlite3_stmt *st;
  /* Revoking twice keeps the first revocation time and still succeeds. */
  int rc = store__stmt(
      s, STORE__TOKEN_REVOKE,
      "UPDATE tokens SET revoked_ms = CASE WHEN revoked_ms = 0 THEN ?3 ELSE revoked_ms END"
      " WHERE id = ?1 AND tenant_id = ?2",
      &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, tenant_id);
  sqlite3_bind_int64(st, 3, now_ms > 0 ? now_ms : 1);
  return store__exec_one(s, st);
}

int store_token_touch(store *s, int64_t id, int64_t now_ms) {
  sqlite3_stmt *st;
  int rc =
      store__stmt(s, STORE__TOKEN_TOUCH,
                  "UPDATE tokens SET last_used_ms = ?2 WHERE id = ?1 AND last_used_ms <= ?3", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, now_ms);
  sqlite3_bind_int64(st, 3, now_ms - TOKEN_TOUCH_INTERVAL_MS);
  return store__exec(s, st);
}

typedef struct token_visit {
  store_token_cb cb;
  void *ctx;
} token_visit;

static int visit_token(void *ctx, sqlite3_stmt *st) {
  token_visit *v = ctx;
  store_token x;
  token_from_row(st, &x);
  return v->cb(v->ctx, &x);
}

int store_token_list(store *s, int64_t tenant_id, int64_t user_id, int include_sessions,
                     int64_t after_id, int limit, store_token_cb cb, void *ctx) {
  sqlite3_stmt *st;
  int rc = store__prepare(s,
                          "SELECT " TOKEN_COLS " FROM tokens WHERE tenant_id = ?1"
                          " AND (?2 = 0 OR user_id = ?2) AND (?3 OR kind = 'api') AND id > ?4"
                          " ORDER BY id LIMIT ?5",
                          &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  sqlite3_bind_int64(st, 2, user_id);
  sqlite3_bind_int(st, 3, include_sessions != 0);
  sqlite3_bind_int64(st, 4, after_id);
  sqlite3_bind_int64(st, 5, store__limit(limit));
  token_visit v = {cb, ctx};
  return store__each_row(s, st, visit_token, &v);
}
