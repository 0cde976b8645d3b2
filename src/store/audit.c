/* Audit records: the append-only log. The store only keeps rows; auth/audit.c computes the hash
 * chain (prev_hash, hash) and calls store_audit_last and store_audit_insert inside one
 * BEGIN IMMEDIATE transaction, so the chain cannot fork between concurrent appenders.
 *
 * seq is the INTEGER PRIMARY KEY. store_audit_insert assigns last + 1 itself, or, when the
 * caller already chose a seq (because it went into the hash), insists that it is last + 1. */
#include "store/store_int.h"

#include "base/buf.h"

#include <string.h>

#define AUDIT_COLS                                                                                 \
  "seq, ts_ms, actor, tenant_id, action, target, result, detail, source, remote, prev_hash, hash"

static void audit_from_row(sqlite3_stmt *st, store_audit *a) {
  memset(a, 0, sizeof *a);
  a->seq = sqlite3_column_int64(st, 0);
  a->ts_ms = sqlite3_column_int64(st, 1);
  store__col_str(st, 2, a->actor, sizeof a->actor);
  a->tenant_id = sqlite3_column_int64(st, 3);
  store__col_str(st, 4, a->action, sizeof a->action);
  store__col_str(st, 5, a->target, sizeof a->target);
  store__col_str(st, 6, a->result, sizeof a->result);
  store__col_str(st, 7, a->detail, sizeof a->detail);
  store__col_str(st, 8, a->source, sizeof a->source);
  store__col_str(st, 9, a->remote, sizeof a->remote);
  store__col_hash(st, 10, a->prev_hash);
  store__col_hash(st, 11, a->hash);
}

int store_audit_last(store *s, int64_t *seq, uint8_t hash[32]) {
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__AUDIT_LAST,
                       "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &st);
  if (rc < 0)
    return rc;
  rc = store__step_row(s, st);
  if (rc == PL_ENOTFOUND) {
    *seq = 0;
    memset(hash, 0, 32);
    return 0;
  }
  if (rc < 0)
    return rc;
  *seq = sqlite3_column_int64(st, 0);
  store__col_hash(st, 1, hash);
  sqlite3_reset(st);
  return 0;
}

int store_audit_insert(store *s, store_audit *rec) {
  sqlite3_stmt *st;
  /* ?1 = 0 asks for the next seq; any other ?1 must be exactly the next one, or no row is
   * inserted (PL_ECONFLICT below). */
  int rc = store__stmt(s, STORE__AUDIT_INSERT,
                       "INSERT INTO audit (" AUDIT_COLS ")"
                       " SELECT n, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12"
                       " FROM (SELECT coalesce(max(seq), 0) + 1 AS n FROM audit)"
                       " WHERE ?1 = 0 OR ?1 = n",
                       &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, rec->seq);
  sqlite3_bind_int64(st, 2, rec->ts_ms);
  sqlite3_bind_int64(st, 4, rec->tenant_id);
  if ((rc = STORE__BIND_STR(st, 3, rec->actor)) < 0 ||
      (rc = STORE__BIND_STR(st, 5, rec->action)) < 0 ||
      (rc = STORE__BIND_STR(st, 6, rec->target)) < 0 ||
      (rc = STORE__BIND_STR(st, 7, rec->result)) < 0 ||
      (rc = STORE__BIND_STR(st, 8, rec->detail)) < 0 ||
      (rc = STORE__BIND_STR(st, 9, rec->source)) < 0 ||
      (rc = STORE__BIND_STR(st, 10, rec->remote)) < 0 ||
      (rc = store__bind_hash(st, 11, rec->prev_hash)) < 0 ||
      (rc = store__bind_hash(st, 12, rec->hash)) < 0)
    return rc;
  rc = store__exec_one(s, st);
  if (rc == PL_ENOTFOUND)
    return PL_ECONFLICT;
  if (rc < 0)
    return rc;
  rec->seq = sqlite3_last_insert_rowid(s->db);
  return 0;
}

typedef struct audit_visit {
  store_audit_cb cb;
  void *ctx;
} audit_visit;

static int visit_audit(void *ctx, sqlite3_stmt *st) {
  audit_visit *v = ctx;
  store_audit a;
  audit_from_row(st, &a);
  return v->cb(v->ctx, &a);
}

static int audit_run(store *s, sqlite3_stmt *st, store_audit_cb cb, void *ctx) {
  audit_visit v = {cb, ctx};
  return store__each_row(s, st, visit_audit, &v);
}

int store_audit_list(store *s, const store_audit_filter *f, store_audit_cb cb, void *ctx) {
  /* The SQL is assembled from fixed fragments only; every value is bound. */
  pl_buf sql;
  pl_buf_init(&sql, 2048);
  int rc = pl_buf_append_str(&sql, "SELECT " AUDIT_COLS " FROM audit WHERE 1");
  if (rc == 0 && f->tenant_id)
    rc = pl_buf_append_str(&sql, " AND tenant_id = ?1");
  if (rc == 0 && f->actor)
    rc = pl_buf_append_str(&sql, " AND actor = ?2");
  if (rc == 0 && f->action_prefix)
    rc = pl_buf_append_str(&sql, " AND substr(action, 1, length(?3)) = ?3");
  if (rc == 0 && f->since_ms)
    rc = pl_buf_append_str(&sql, " AND ts_ms >= ?4");
  if (rc == 0 && f->until_ms)
    rc = pl_buf_append_str(&sql, " AND ts_ms < ?5");
  if (rc == 0 && f->after_seq)
    rc = pl_buf_append_str(&sql, f->descending ? " AND seq < ?6" : " AND seq > ?6");
  if (rc == 0)
    rc = pl_buf_append_str(&sql, f->descending ? " ORDER BY seq DESC LIMIT ?7"
                                               : " ORDER BY seq LIMIT ?7");
  if (rc < 0) {
    pl_buf_free(&sql);
    return rc;
  }
  sqlite3_stmt *st;
  rc = store__prepare(s, pl_buf_cstr(&sql), &st);
  pl_buf_free(&sql);
  if (rc < 0)
    return rc;
  if (f->tenant_id)
    sqlite3_bind_int64(st, 1, f->tenant_id);
  if ((f->actor && sqlite3_bind_text(st, 2, f->actor, -1, SQLITE_TRANSIENT) != SQLITE_OK) ||
      (f->action_prefix &&
       sqlite3_bind_text(st, 3, f->action_prefix, -1, SQLITE_TRANSIENT) != SQLITE_OK)) {
    sqlite3_finalize(st);
    return PL_ENOMEM;
  }
  if (f->since_ms)
    sqlite3_bind_int64(st, 4, f->since_ms);
  if (f->until_ms)
    sqlite3_bind_int64(st, 5, f->until_ms);
  if (f->after_seq)
    sqlite3_bind_int64(st, 6, f->after_seq);
  sqlite3_bind_int64(st, 7, store__limit(f->limit));
  return audit_run(s, st, cb, ctx);
}

int store_audit_scan(store *s, store_audit_cb cb, void *ctx) {
  sqlite3_stmt *st;
  int rc = store__prepare(s, "SELECT " AUDIT_COLS " FROM audit ORDER BY seq", &st);
  if (rc < 0)
    return rc;
  return audit_run(s, st, cb, ctx);
}
