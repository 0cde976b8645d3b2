/* Unit tests of the store: migrations, CRUD of every entity, unique and foreign-key errors,
 * tenant scoping, cascades, paging, audit rows, counts and the connection pool. Each test works
 * in its own temporary directory; raw SQLite is used to look behind the API. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/log.h"
#include "store/store.h"

#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct fixture {
  char dir[256];
  char path[300];
  store *s;
} fixture;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  snprintf(f->dir, sizeof f->dir, "/tmp/store_test.XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->path, sizeof f->path, "%s/meta.db", f->dir);
  pl_err err = {{0}};
  int rc = store_open(f->path, &f->s, &err);
  if (rc != 0)
    fail_msg("store_open: %d %s", rc, err.msg);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  store_close(f->s);
  nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

/* One integer from a query run on a separate raw connection. */
static long long raw_int(const char *path, const char *sql) {
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
    fail_msg("%s: %s", sql, sqlite3_errmsg(db));
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  long long v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

static void raw_exec(const char *path, const char *sql) {
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
    fail_msg("%s: %s", sql, msg);
  sqlite3_close(db);
}

static int64_t mk_tenant(store *s, const char *name) {
  store_tenant t = {0};
  snprintf(t.name, sizeof t.name, "%s", name);
  snprintf(t.display_name, sizeof t.display_name, "Display %s", name);
  assert_int_equal(store_tenant_create(s, &t), 0);
  assert_true(t.id > 0);
  return t.id;
}

static int64_t mk_user(store *s, int64_t tenant_id, const char *name, const char *role) {
  store_user u = {0};
  u.tenant_id = tenant_id;
  snprintf(u.name, sizeof u.name, "%s", name);
  snprintf(u.role, sizeof u.role, "%s", role);
  snprintf(u.password_hash, sizeof u.password_hash, "$argon2id$fake");
  assert_int_equal(store_user_create(s, &u), 0);
  return u.id;
}

static void fill_hash(uint8_t h[32], int seed) {
  for (int i = 0; i < 32; i++)
    h[i] = (uint8_t)(seed * 31 + i + 1);
}

static int64_t mk_token(store *s, int64_t tenant_id, int64_t user_id, const char *kind, int seed) {
  store_token t = {0};
  t.tenant_id = tenant_id;
  t.user_id = user_id;
  snprintf(t.kind, sizeof t.kind, "%s", kind);
  snprintf(t.name, sizeof t.name, "tok%d", seed);
  snprintf(t.prefix, sizeof t.prefix, "plt_%08d", seed);
  snprintf(t.role, sizeof t.role, "viewer");
  fill_hash(t.hash, seed);
  assert_int_equal(store_token_create(s, &t), 0);
  return t.id;
}

static int64_t mk_device(store *s, int64_t tenant_id, const char *name, int seed) {
  store_device d = {0};
  d.tenant_id = tenant_id;
  snprintf(d.name, sizeof d.name, "%s", name);
  snprintf(d.type, sizeof d.type, "pump");
  d.attributes_json = "{\"line\":1}";
  if (seed)
    fill_hash(d.token_hash, seed);
  assert_int_equal(store_device_create(s, &d), 0);
  return d.id;
}

/* ---- migrations ---- */

static void test_migrations_fresh_and_reopen(void **state) {
  fixture *f = *state;
  assert_int_equal(store_schema_version(f->s), store_schema_latest());
  assert_int_equal(raw_int(f->path, "PRAGMA user_version"), store_schema_latest());
  assert_int_equal(raw_int(f->path,
                           "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN"
                           " ('tenants','users','tokens','devices','audit')"),
                   5);
  /* WAL is a persistent property of the file. */
  sqlite3 *db;
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);
  sqlite3_close(db);
  struct stat sb;
  assert_int_equal(stat(f->path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);

  int64_t id = mk_tenant(f->s, "acme");
  store_close(f->s);
  f->s = NULL;
  pl_err err = {{0}};
  assert_int_equal(store_open(f->path, &f->s, &err), 0);
  assert_int_equal(store_schema_version(f->s), store_schema_latest());
  store_tenant t;
  assert_int_equal(store_tenant_get(f->s, id, &t), 0);
  assert_string_equal(t.name, "acme");
  /* The second open applied nothing: still one tenant, same version. */
  assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tenants"), 1);
}

static void test_migrations_newer_schema_refused(void **state) {
  fixture *f = *state;
  store_close(f->s);
  f->s = NULL;
  raw_exec(f->path, "PRAGMA user_version = 99");
  store *s = NULL;
  pl_err err = {{0}};
  assert_int_equal(store_open(f->path, &s, &err), PL_ECONFLICT);
  assert_null(s);
  assert_non_null(strstr(err.msg, "99"));
  char restore[64];
  snprintf(restore, sizeof restore, "PRAGMA user_version = %d", store_schema_latest());
  raw_exec(f->path, restore);
  assert_int_equal(store_open(f->path, &f->s, &err), 0);
}

/* Several processes opening one fresh file at the same moment must all succeed, and the schema
 * must be created exactly once. */
static void test_migrations_concurrent_processes(void **state) {
  fixture *f = *state;
  char path[320];
  snprintf(path, sizeof path, "%s/race.db", f->dir);
  pid_t pids[6];
  for (int i = 0; i < 6; i++) {
    pids[i] = fork();
    assert_true(pids[i] >= 0);
    if (pids[i] == 0) {
      store *s = NULL;
      pl_err err = {{0}};
      int rc = store_open(path, &s, &err);
      if (rc == 0 && store_schema_version(s) != store_schema_latest())
        rc = -100;
      if (rc == 0) {
        store_tenant t = {0};
        snprintf(t.name, sizeof t.name, "proc-%d", i);
        rc = store_tenant_create(s, &t);
      }
      store_close(s);
      _exit(rc == 0 ? 0 : 1);
    }
  }
  for (int i = 0; i < 6; i++) {
    int status;
    assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
  }
  assert_int_equal(raw_int(path, "SELECT count(*) FROM tenants"), 6);
  assert_int_equal(raw_int(path, "PRAGMA user_version"), store_schema_latest());
}

/* ---- tenants ---- */

static void test_tenant_crud(void **state) {
  fixture *f = *state;
  store_tenant t = {0};
  snprintf(t.name, sizeof t.name, "spring-water");
  snprintf(t.display_name, sizeof t.display_name, "Spring Water Co.");
  snprintf(t.prefecture, sizeof t.prefecture, "Nagano");
  snprintf(t.industry, sizeof t.industry, "beverages");
  assert_int_equal(store_tenant_create(f->s, &t), 0);
  assert_true(t.id > 0);
  assert_true(t.created_ms > 1600000000000LL);

  store_tenant got;
  assert_int_equal(store_tenant_get(f->s, t.id, &got), 0);
  assert_string_equal(got.name, "spring-water");
  assert_string_equal(got.display_name, "Spring Water Co.");
  assert_string_equal(got.prefecture, "Nagano");
  assert_string_equal(got.industry, "beverages");
  assert_int_equal(got.created_ms, t.created_ms);
  assert_int_equal(store_tenant_get_by_name(f->s, "spring-water", &got), 0);
  assert_int_equal(got.id, t.id);
  assert_int_equal(store_tenant_get_by_name(f->s, "nope", &got), PL_ENOTFOUND);
  assert_int_equal(store_tenant_get(f->s, t.id + 100, &got), PL_ENOTFOUND);

  snprintf(t.display_name, sizeof t.display_name, "Renamed");
  snprintf(t.industry, sizeof t.industry, "water");
  snprintf(t.name, sizeof t.name, "ignored-by-update");
  assert_int_equal(store_tenant_update(f->s, &t), 0);
  assert_int_equal(store_tenant_get(f->s, t.id, &got), 0);
  assert_string_equal(got.display_name, "Renamed");
  assert_string_equal(got.industry, "water");
  assert_string_equal(got.name, "spring-water");
  store_tenant missing = t;
  missing.id = t.id + 100;
  assert_int_equal(store_tenant_update(f->s, &missing), PL_ENOTFOUND);

  store_tenant dup = {0};
  snprintf(dup.name, sizeof dup.name, "spring-water");
  assert_int_equal(store_tenant_create(f->s, &dup), PL_EEXIST);
  assert_int_equal(dup.id, 0);
  store_tenant empty = {0};
  assert_int_equal(store_tenant_create(f->s, &empty), PL_EINVAL);

  assert_int_equal(store_tenant_delete(f->s, t.id), 0);
  assert_int_equal(store_tenant_get(f->s, t.id, &got), PL_ENOTFOUND);
  /* The id of a deleted tenant (here the newest) is never given again: it names the tenant's
   * time series until the deletion sweep has removed them. */
  store_tenant next = {0};
  snprintf(next.name, sizeof next.name, "after-delete");
  assert_int_equal(store_tenant_create(f->s, &next), 0);
  assert_true(next.id > t.id);
  assert_int_equal(store_tenant_delete(f->s, t.id), PL_ENOTFOUND);
}

static void test_unterminated_string_rejected(void **state) {
  fixture *f = *state;
  store_tenant t;
  memset(&t, 'x', sizeof t);
  t.id = 0;
  assert_int_equal(store_tenant_create(f->s, &t), PL_EINVAL);
  assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tenants"), 0);
}

/* ---- users ---- */

static void test_user_crud(void **state) {
  fixture *f = *state;
  int64_t ta = mk_tenant(f->s, "a"), tb = mk_tenant(f->s, "b");
  store_user u = {0};
  u.tenant_id = ta;
  snprintf(u.name, sizeof u.name, "dolkar");
  snprintf(u.display_name, sizeof u.display_name, "Dolkar");
  snprintf(u.role, sizeof u.role, "tenant-admin");
  snprintf(u.password_hash, sizeof u.password_hash, "$argon2id$v=19$x");
  assert_int_equal(store_user_create(f->s, &u), 0);
  assert_true(u.id > 0);

  store_user got;
  assert_int_equal(store_user_get(f->s, ta, u.id, &got), 0);
  assert_string_equal(got.name, "dolkar");
  assert_string_equal(got.role, "tenant-admin");
  assert_string_equal(got.password_hash, "$argon2id$v=19$x");
  assert_int_equal(got.disabled, 0);
  assert_int_equal(got.tenant_id, ta);
  assert_int_equal(store_user_get(f->s, 0, u.id, &got), 0); /* 0: any tenant */
  assert_int_equal(store_user_get(f->s, tb, u.id, &got), PL_ENOTFOUND);
  assert_int_equal(store_user_get_by_name(f->s, "dolkar", &got), 0);
  assert_int_equal(got.id, u.id);
  assert_int_equal(store_user_get_by_name(f->s, "nobody", &got), PL_ENOTFOUND);

  /* Login names are unique across tenants. */
  store_user dup = {0};
  dup.tenant_id = tb;
  snprintf(dup.name, sizeof dup.name, "dolkar");
  snprintf(dup.role, sizeof dup.role, "viewer");
  assert_int_equal(store_user_create(f->s, &dup), PL_EEXIST);
  /* Unknown role and missing tenant. */
  snprintf(dup.name, sizeof dup.name, "other");
  snprintf(dup.role, sizeof dup.role, "device");
  assert_int_equal(store_user_create(f->s, &dup), PL_EINVAL);
  snprintf(dup.role, sizeof dup.role, "viewer");
  dup.tenant_id = tb + 1000;
  assert_int_equal(store_user_create(f->s, &dup), PL_ENOTFOUND);

  u.disabled = 1;
  snprintf(u.role, sizeof u.role, "viewer");
  snprintf(u.display_name, sizeof u.display_name, "D.");
  assert_int_equal(store_user_update(f->s, &u), 0);
  assert_int_equal(store_user_get(f->s, ta, u.id, &got), 0);
  assert_int_equal(got.disabled, 1);
  assert_string_equal(got.role, "viewer");
  assert_string_equal(got.display_name, "D.");

  assert_int_equal(store_user_delete(f->s, ta, u.id), 0);
  assert_int_equal(store_user_get(f->s, 0, u.id, &got), PL_ENOTFOUND);
  assert_int_equal(store_user_delete(f->s, ta, u.id), PL_ENOTFOUND);
}

/* ---- tokens ---- */

typedef struct collect {
  int64_t ids[128];
  int n;
  int stop_after; /* 0: never */
} collect;

static int collect_token(void *ctx, const store_token *t) {
  collect *c = ctx;
  if (c->stop_after && c->n == c->stop_after)
    return PL_ELIMIT;
  c->ids[c->n++] = t->id;
  return 0;
}

static void test_token_crud(void **state) {
  fixture *f = *state;
  int64_t ta = mk_tenant(f->s, "a"), tb = mk_tenant(f->s, "b");
  int64_t ua = mk_user(f->s, ta, "ua", "operator");
  int64_t ub = mk_user(f->s, tb, "ub", "operator");

  store_token t = {0};
  t.tenant_id = ta;
  t.user_id = ua;
  snprintf(t.kind, sizeof t.kind, "api");
  snprintf(t.name, sizeof t.name, "ci");
  snprintf(t.prefix, sizeof t.prefix, "plt_AbCdEfGh");
  snprintf(t.role, sizeof t.role, "operator");
  fill_hash(t.hash, 1);
  t.expires_ms = 5000;
  assert_int_equal(store_token_create(f->s, &t), 0);
  assert_true(t.id > 0);

  store_token got;
  uint8_t h[32];
  fill_hash(h, 1);
  assert_int_equal(store_token_get_by_hash(f->s, h, &got), 0);
  assert_int_equal(got.id, t.id);
  assert_int_equal(got.user_id, ua);
  assert_string_equal(got.kind, "api");
  assert_string_equal(got.prefix, "plt_AbCdEfGh");
  assert_string_equal(got.role, "operator");
  assert_memory_equal(got.hash, h, 32);
  assert_int_equal(got.expires_ms, 5000);
  assert_int_equal(got.revoked_ms, 0);
  fill_hash(h, 2);
  assert_int_equal(store_token_get_by_hash(f->s, h, &got), PL_ENOTFOUND);
  assert_int_equal(store_token_get(f->s, ta, t.id, &got), 0);
  assert_int_equal(store_token_get(f->s, tb, t.id, &got), PL_ENOTFOUND);

  /* Duplicate hash; a user of another tenant; a bad kind; a token of no user. */
  store_token dup = t;
  assert_int_equal(store_token_create(f->s, &dup), PL_EEXIST);
  fill_hash(dup.hash, 3);
  dup.user_id = ub;
  assert_int_equal(store_token_create(f->s, &dup), PL_ENOTFOUND);
  dup.user_id = 0;
  snprintf(dup.kind, sizeof dup.kind, "device");
  assert_int_equal(store_token_create(f->s, &dup), PL_EINVAL);
  snprintf(dup.kind, sizeof dup.kind, "api");
  assert_int_equal(store_token_create(f->s, &dup), 0);
  assert_int_equal(store_token_get(f->s, ta, dup.id, &got), 0);
  assert_int_equal(got.user_id, 0);

  /* Touch is throttled to once a minute. */
  assert_int_equal(store_token_touch(f->s, t.id, 1000000), 0);
  assert_int_equal(store_token_get(f->s, ta, t.id, &got), 0);
  assert_int_equal(got.last_used_ms, 1000000);
  assert_int_equal(store_token_touch(f->s, t.id, 1030000), 0);
  assert_int_equal(store_token_get(f->s, ta, t.id, &got), 0);
  assert_int_equal(got.last_used_ms, 1000000);
  assert_int_equal(store_token_touch(f->s, t.id, 1060000), 0);
  assert_int_equal(store_token_get(f->s, ta, t.id, &got), 0);
  assert_int_equal(got.last_used_ms, 1060000);

  /* Revoke: scoped, idempotent, keeps the first time. */
  assert_int_equal(store_token_revoke(f->s, tb, t.id, 7000), PL_ENOTFOUND);
  assert_int_equal(store_token_get(f->s, ta, t.id, &got), 0);
  assert_int_equal(got.revoked_ms, 0);
  assert_int_equal(store_token_revoke(f->s, ta, t.id, 7000), 0);
  assert_int_equal(store_token_revoke(f->s, ta, t.id, 9000), 0);
  assert_int_equal(store_token_get(f->s, ta, t.id, &got), 0);
  assert_int_equal(got.revoked_ms, 7000);

  /* Listing: sessions only on request, user filter, tenant scope. */
  int64_t sess = mk_token(f->s, ta, ua, "session", 10);
  mk_token(f->s, tb, ub, "api", 11);
  collect c = {0};
  assert_int_equal(store_token_list(f->s, ta, 0, 0, 0, 100, collect_token, &c), 2);
  assert_int_equal(c.ids[0], t.id);
  assert_int_equal(c.ids[1], dup.id);
  memset(&c, 0, sizeof c);
  assert_int_equal(store_token_list(f->s, ta, 0, 1, 0, 100, collect_token, &c), 3);
  assert_int_equal(c.ids[2], sess);
  memset(&c, 0, sizeof c);
  assert_int_equal(store_token_list(f->s, ta, ua, 1, 0, 100, collect_token, &c), 2);
  assert_int_equal(c.ids[0], t.id);
  assert_int_equal(c.ids[1], sess);
}

/* ---- devices ---- */

static void test_device_crud(void **state) {
  fixture *f = *state;
  int64_t ta = mk_tenant(f->s, "a"), tb = mk_tenant(f->s, "b");
  store_device d = {0};
  d.tenant_id = ta;
  snprintf(d.name, sizeof d.name, "pump-1");
  snprintf(d.type, sizeof d.type, "pump");
  snprintf(d.vendor, sizeof d.vendor, "Ebara");
  snprintf(d.product, sizeof d.product, "X100");
  snprintf(d.firmware, sizeof d.firmware, "1.2.3");
  snprintf(d.location, sizeof d.location, "Hall 2");
  d.attributes_json = "{\"rated_kw\":7.5}";
  snprintf(d.token_prefix, sizeof d.token_prefix, "pld_12345678");
  fill_hash(d.token_hash, 5);
  assert_int_equal(store_device_create(f->s, &d), 0);
  assert_true(d.id > 0);
  assert_int_equal(d.created_ms, d.updated_ms);

  store_device got = {0};
  assert_int_equal(store_device_get(f->s, ta, d.id, &got), 0);
  assert_string_equal(got.name, "pump-1");
  assert_string_equal(got.vendor, "Ebara");
  assert_string_equal(got.product, "X100");
  assert_string_equal(got.firmware, "1.2.3");
  assert_string_equal(got.location, "Hall 2");
  assert_string_equal(got.attributes_json, "{\"rated_kw\":7.5}");
  assert_string_equal(got.token_prefix, "pld_12345678");
  assert_memory_equal(got.token_hash, d.token_hash, 32);
  assert_int_equal(got.last_seen_ms, 0);
  store_device_clear(&got);
  assert_null(got.attributes_json);

  assert_int_equal(store_device_get_by_name(f->s, ta, "pump-1", &got), 0);
  assert_int_equal(got.id, d.id);
  store_device_clear(&got);
  assert_int_equal(store_device_get_by_name(f->s, tb, "pump-1", &got), PL_ENOTFOUND);
  uint8_t h[32];
  fill_hash(h, 5);
  assert_int_equal(store_device_get_by_token_hash(f->s, h, &got), 0);
  assert_int_equal(got.id, d.id);
  assert_int_equal(got.tenant_id, ta);
  store_device_clear(&got);

  /* Unique (tenant, name); the same name in another tenant is fine; token hashes are unique;
   * attributes must be JSON. */
  store_device dup = {0};
  dup.tenant_id = ta;
  snprintf(dup.name, sizeof dup.name, "pump-1");
  assert_int_equal(store_device_create(f->s, &dup), PL_EEXIST);
  dup.tenant_id = tb;
  assert_int_equal(store_device_create(f->s, &dup), 0);
  store_device dup2 = {0};
  dup2.tenant_id = tb;
  snprintf(dup2.name, sizeof dup2.name, "pump-2");
  fill_hash(dup2.token_hash, 5);
  assert_int_equal(store_device_create(f->s, &dup2), PL_EEXIST);
  memset(dup2.token_hash, 0, 32);
  dup2.attributes_json = "{not json";
  assert_int_equal(store_device_create(f->s, &dup2), PL_EINVAL);
  /* Two devices without tokens do not collide, and "no token" is never found. */
  dup2.attributes_json = NULL;
  assert_int_equal(store_device_create(f->s, &dup2), 0);
  memset(h, 0, sizeof h);
  assert_int_equal(store_device_get_by_token_hash(f->s, h, &got), PL_ENOTFOUND);
  assert_int_equal(store_device_get(f->s, tb, dup2.id, &got), 0);
  assert_string_equal(got.attributes_json, "{}");
  store_device_clear(&got);

  /* Update: fields change, NULL attributes are kept, renaming onto a taken name fails. */
  store_device up = d;
  up.attributes_json = NULL;
  snprintf(up.firmware, sizeof up.firmware, "2.0.0");
  snprintf(up.name, sizeof up.name, "pump-1b");
  assert_int_equal(store_device_update(f->s, &up), 0);
  assert_int_equal(store_device_get(f->s, ta, d.id, &got), 0);
  assert_string_equal(got.firmware, "2.0.0");
  assert_string_equal(got.name, "pump-1b");
  assert_string_equal(got.attributes_json, "{\"rated_kw\":7.5}");
  assert_memory_equal(got.token_hash, d.token_hash, 32);
  store_device_clear(&got);
  up.attributes_json = "{\"rated_kw\":11}";
  assert_int_equal(store_device_update(f->s, &up), 0);
  assert_int_equal(store_device_get(f->s, ta, d.id, &got), 0);
  assert_string_equal(got.attributes_json, "{\"rated_kw\":11}");
  store_device_clear(&got);
  mk_device(f->s, ta, "taken", 0);
  snprintf(up.name, sizeof up.name, "taken");
  assert_int_equal(store_device_update(f->s, &up), PL_EEXIST);

  /* Token rotation: the old hash stops matching at once. */
  uint8_t nh[32];
  fill_hash(nh, 6);
  assert_int_equal(store_device_set_token(f->s, ta, d.id, "pld_newnewnw", nh), 0);
  fill_hash(h, 5);
  assert_int_equal(store_device_get_by_token_hash(f->s, h, &got), PL_ENOTFOUND);
  assert_int_equal(store_device_get_by_token_hash(f->s, nh, &got), 0);
  assert_string_equal(got.token_prefix, "pld_newnewnw");
  store_device_clear(&got);

  assert_int_equal(store_device_touch(f->s, ta, d.id, 123456), 0);
  assert_int_equal(store_device_touch(f->s, ta, d.id, 100000), 0); /* never goes back */
  assert_int_equal(store_device_get(f->s, ta, d.id, &got), 0);
  assert_int_equal(got.last_seen_ms, 123456);
  store_device_clear(&got);

  assert_int_equal(store_device_delete(f->s, ta, d.id), 0);
  assert_int_equal(store_device_get(f->s, ta, d.id, &got), PL_ENOTFOUND);
  assert_int_equal(store_device_delete(f->s, ta, d.id), PL_ENOTFOUND);
}

/* ---- tenant scoping ---- */

static void test_tenant_scoping(void **state) {
  fixture *f = *state;
  int64_t ta = mk_tenant(f->s, "a"), tb = mk_tenant(f->s, "b");
  int64_t dev_b = mk_device(f->s, tb, "secret-pump", 9);

  store_device got = {0};
  assert_int_equal(store_device_get(f->s, ta, dev_b, &got), PL_ENOTFOUND);
  store_device up = {0};
  up.id = dev_b;
  up.tenant_id = ta;
  snprintf(up.name, sizeof up.name, "hijacked");
  up.attributes_json = "{\"owned\":true}";
  assert_int_equal(store_device_update(f->s, &up), PL_ENOTFOUND);
  uint8_t h[32];
  fill_hash(h, 77);
  assert_int_equal(store_device_set_token(f->s, ta, dev_b, "pld_hijacked", h), PL_ENOTFOUND);
  assert_int_equal(store_device_touch(f->s, ta, dev_b, 999), PL_ENOTFOUND);
  assert_int_equal(store_device_delete(f->s, ta, dev_b), PL_ENOTFOUND);

  assert_int_equal(store_device_get(f->s, tb, dev_b, &got), 0);
  assert_string_equal(got.name, "secret-pump");
  assert_string_equal(got.attributes_json, "{\"line\":1}");
  fill_hash(h, 9);
  assert_memory_equal(got.token_hash, h, 32);
  assert_int_equal(got.last_seen_ms, 0);
  store_device_clear(&got);

  /* Users and tokens likewise. */
  int64_t ub = mk_user(f->s, tb, "bob", "operator");
  int64_t tok_b = mk_token(f->s, tb, ub, "api", 40);
  store_user u = {0};
  u.id = ub;
  u.tenant_id = ta;
  snprintf(u.role, sizeof u.role, "viewer");
  u.disabled = 1;
  assert_int_equal(store_user_update(f->s, &u), PL_ENOTFOUND);
  assert_int_equal(store_user_delete(f->s, ta, ub), PL_ENOTFOUND);
  assert_int_equal(store_token_revoke(f->s, ta, tok_b, 5), PL_ENOTFOUND);
  store_user gu;
  assert_int_equal(store_user_get(f->s, tb, ub, &gu), 0);
  assert_string_equal(gu.role, "operator");
  assert_int_equal(gu.disabled, 0);
  store_token gt;
  assert_int_equal(store_token_get(f->s, tb, tok_b, &gt), 0);
  assert_int_equal(gt.revoked_ms, 0);
  collect c = {0};
  assert_int_equal(store_token_list(f->s, ta, 0, 1, 0, 0, collect_token, &c), 0);
}

/* ---- cascades ---- */

static void test_cascade_delete(void **state) {
  fixture *f = *state;
  int64_t ta = mk_tenant(f->s, "a"), tb = mk_tenant(f->s, "b");
  int64_t ua = mk_user(f->s, ta, "ua", "operator");
  int64_t ua2 = mk_user(f->s, ta, "ua2", "viewer");
  mk_token(f->s, ta, ua, "api", 1);
  mk_token(f->s, ta, ua2, "session", 2);
  mk_token(f->s, ta, 0, "api", 3);
  mk_device(f->s, ta, "d1", 4);
  int64_t ub = mk_user(f->s, tb, "ub", "operator");
  mk_token(f->s, tb, ub, "api", 5);
  mk_device(f->s, tb, "d1", 6);
  store_audit rec = {0};
  rec.tenant_id = ta;
  snprintf(rec.action, sizeof rec.action, "tenant.create");
  assert_int_equal(store_audit_insert(f->s, &rec), 0);

  /* Deleting a user deletes its tokens only. */
  assert_int_equal(store_user_delete(f->s, ta, ua2), 0);
  assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tokens"), 3);
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM tokens WHERE user_id = %lld", (long long)ua2);
  assert_int_equal(raw_int(f->path, sql), 0);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM tokens WHERE user_id = %lld", (long long)ua);
  assert_int_equal(raw_int(f->path, sql), 1);

  assert_int_equal(store_tenant_delete(f->s, ta), 0);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM users WHERE tenant_id = %lld", (long long)ta);
  assert_int_equal(raw_int(f->path, sql), 0);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM tokens WHERE tenant_id = %lld", (long long)ta);
  assert_int_equal(raw_int(f->path, sql), 0);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM devices WHERE tenant_id = %lld", (long long)ta);
  assert_int_equal(raw_int(f->path, sql), 0);
  /* The other tenant and the audit log are untouched. */
  assert_int_equal(raw_int(f->path, "SELECT count(*) FROM users"), 1);
  assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tokens"), 1);
  assert_int_equal(raw_int(f->path, "SELECT count(*) FROM devices"), 1);
  assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), 1);
}

/* ---- paging ---- */

static int collect_device(void *ctx, const store_device *d) {
  collect *c = ctx;
  if (c->stop_after && c->n == c->stop_after)
    return PL_ELIMIT;
  c->ids[c->n++] = d->id;
  return 0;
}

static int collect_tenant(void *ctx, const store_tenant *t) {
  collect *c = ctx;
  c->ids[c->n++] = t->id;
  return 0;
}

static int collect_user(void *ctx, const store_user *u) {
  collect *c = ctx;
  c->ids[c->n++] = u->id;
  return 0;
}

static void test_paging(void **state) {
  fixture *f = *state;
  int64_t ta = mk_tenant(f->s, "a"), tb = mk_tenant(f->s, "b");
  int64_t ids[25];
  for (int i = 0; i < 25; i++) {
    char name[32];
    snprintf(name, sizeof name, "dev-%02d", i);
    ids[i] = mk_device(f->s, ta, name, 0);
    if (i % 5 == 0) {
      snprintf(name, sizeof name, "other-%02d", i);
      mk_device(f->s, tb, name, 0); /* interleaved rows of another tenant */
    }
  }
  int64_t after = 0;
  int seen = 0, pages = 0;
  for (;;) {
    collect c = {0};
    int n = store_device_list(f->s, ta, after, 10, collect_device, &c);
    assert_true(n >= 0);
    assert_int_equal(n, c.n);
    if (n == 0)
      break;
    for (int i = 0; i < n; i++)
      assert_int_equal(c.ids[i], ids[seen + i]);
    seen += n;
    after = c.ids[n - 1];
    pages++;
    assert_true(pages <= 3);
  }
  assert_int_equal(seen, 25);
  assert_int_equal(pages, 3);

  collect c = {0};
  assert_int_equal(store_device_list(f->s, ta, 0, 0, collect_device, &c), 25); /* 0: no limit */
  memset(&c, 0, sizeof c);
  c.stop_after = 4;
  assert_int_equal(store_device_list(f->s, ta, 0, 100, collect_device, &c), PL_ELIMIT);
  assert_int_equal(c.n, 4);

  memset(&c, 0, sizeof c);
  assert_int_equal(store_tenant_list(f->s, 0, 1, collect_tenant, &c), 1);
  assert_int_equal(c.ids[0], ta);
  memset(&c, 0, sizeof c);
  assert_int_equal(store_tenant_list(f->s, ta, 10, collect_tenant, &c), 1);
  assert_int_equal(c.ids[0], tb);

  int64_t u1 = mk_user(f->s, ta, "u1", "viewer");
  mk_user(f->s, tb, "u2", "viewer");
  int64_t u3 = mk_user(f->s, ta, "u3", "viewer");
  memset(&c, 0, sizeof c);
  assert_int_equal(store_user_list(f->s, ta, 0, 10, collect_user, &c), 2);
  assert_int_equal(c.ids[0], u1);
  assert_int_equal(c.ids[1], u3);
  memset(&c, 0, sizeof c);
  assert_int_equal(store_user_list(f->s, ta, u1, 10, collect_user, &c), 1);
  assert_int_equal(c.ids[0], u3);
}

/* A list callback may call back into the store on the same connection. */
typedef struct reentrant {
  store *s;
  int found;
} reentrant;

static int reentrant_cb(void *ctx, const store_device *d) {
  reentrant *r = ctx;
  store_device again = {0};
  if (store_device_get(r->s, d->tenant_id, d->id, &again) == 0 && again.id == d->id)
    r->found++;
  store_device_clear(&again);
  return 0;
}

static void test_list_callback_reenters(void **state) {
  fixture *f = *state;
  int64_t ta = mk_tenant(f->s, "a");
  for (int i = 0; i < 3; i++) {
    char name[16];
    snprintf(name, sizeof name, "d%d", i);
    mk_device(f->s, ta, name, 0);
  }
  reentrant r = {f->s, 0};
  assert_int_equal(store_device_list(f->s, ta, 0, 10, reentrant_cb, &r), 3);
  assert_int_equal(r.found, 3);
}

/* ---- transactions ---- */

static void test_transactions(void **state) {
  fixture *f = *state;
  assert_int_equal(store_rollback(f->s), 0); /* nothing open: no-op */
  assert_int_equal(store_begin(f->s), 0);
  mk_tenant(f->s, "gone");
  assert_int_equal(store_rollback(f->s), 0);
  store_tenant t;
  assert_int_equal(store_tenant_get_by_name(f->s, "gone", &t), PL_ENOTFOUND);
  assert_int_equal(store_begin(f->s), 0);
  mk_tenant(f->s, "kept");
  assert_int_equal(store_commit(f->s), 0);
  assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tenants WHERE name = 'kept'"), 1);

  /* A second connection cannot start a write transaction while the first holds one. */
  store *other = NULL;
  pl_err err = {{0}};
  assert_int_equal(store_open(f->path, &other, &err), 0);
  assert_int_equal(store_begin(f->s), 0);
  sqlite3 *raw;
  assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
  assert_int_equal(sqlite3_exec(raw, "BEGIN IMMEDIATE", NULL, NULL, NULL) & 0xff, SQLITE_BUSY);
  sqlite3_close(raw);
  assert_int_equal(store_commit(f->s), 0);
  store_close(other);
}

/* ---- audit ---- */

static int64_t put_audit(store *s, int64_t tenant_id, const char *actor, const char *action,
                         int64_t ts_ms) {
  store_audit rec = {0};
  rec.ts_ms = ts_ms;
  rec.tenant_id = tenant_id;
  snprintf(rec.actor, sizeof rec.actor, "%s", actor);
  snprintf(rec.action, sizeof rec.action, "%s", action);
  snprintf(rec.target, sizeof rec.target, "device:1");
  snprintf(rec.result, sizeof rec.result, "ok");
  snprintf(rec.source, sizeof rec.source, "api");
  int64_t seq;
  uint8_t last[32];
  assert_int_equal(store_begin(s), 0);
  assert_int_equal(store_audit_last(s, &seq, last), 0);
  memcpy(rec.prev_hash, last, 32);
  fill_hash(rec.hash, (int)seq + 1);
  assert_int_equal(store_audit_insert(s, &rec), 0);
  assert_int_equal(store_commit(s), 0);
  assert_int_equal(rec.seq, seq + 1);
  return rec.seq;
}

typedef struct audit_collect {
  int64_t seqs[64];
  int n;
} audit_collect;

static int collect_audit(void *ctx, const store_audit *a) {
  audit_collect *c = ctx;
  c->seqs[c->n++] = a->seq;
  return 0;
}

static void test_audit(void **state) {
  fixture *f = *state;
  int64_t seq;
  uint8_t h[32], zero[32] = {0};
  assert_int_equal(store_audit_last(f->s, &seq, h), 0);
  assert_int_equal(seq, 0);
  assert_memory_equal(h, zero, 32);

  /* seq: 1..6 */
  put_audit(f->s, 1, "user:a", "device.create", 1000);
  put_audit(f->s, 2, "user:b", "device.token.rotate", 2000);
  put_audit(f->s, 1, "user:a", "tenant.update", 3000);
  put_audit(f->s, 0, "cli", "tenant.create", 4000);
  put_audit(f->s, 1, "user:b", "device.delete", 5000);
  assert_int_equal(put_audit(f->s, 2, "user:a", "devices.weird", 6000), 6);

  assert_int_equal(store_audit_last(f->s, &seq, h), 0);
  assert_int_equal(seq, 6);
  uint8_t want[32];
  fill_hash(want, 6);
  assert_memory_equal(h, want, 32);

  audit_collect c = {0};
  store_audit_filter flt = {0};
  assert_int_equal(store_audit_list(f->s, &flt, collect_audit, &c), 6);

  memset(&c, 0, sizeof c);
  flt = (store_audit_filter){.tenant_id = 1};
  assert_int_equal(store_audit_list(f->s, &flt, collect_audit, &c), 3);
  assert_int_equal(c.seqs[0], 1);
  assert_int_equal(c.seqs[1], 3);
  assert_int_equal(c.seqs[2], 5);

  memset(&c, 0, sizeof c);
  flt = (store_audit_filter){.actor = "user:b"};
  assert_int_equal(store_audit_list(f->s, &flt, collect_audit, &c), 2);
  assert_int_equal(c.seqs[0], 2);
  assert_int_equal(c.seqs[1], 5);

  /* "device." must not match "devices.weird". */
  memset(&c, 0, sizeof c);
  flt = (store_audit_filter){.action_prefix = "device."};
  assert_int_equal(store_audit_list(f->s, &flt, collect_audit, &c), 3);
  assert_int_equal(c.seqs[0], 1);
  assert_int_equal(c.seqs[1], 2);
  assert_int_equal(c.seqs[2], 5);

  memset(&c, 0, sizeof c);
  flt = (store_audit_filter){.since_ms = 2000, .until_ms = 5000};
  assert_int_equal(store_audit_list(f->s, &flt, collect_audit, &c), 3);
  assert_int_equal(c.seqs[0], 2);
  assert_int_equal(c.seqs[2], 4);

  /* Newest first, paged with after_seq. */
  memset(&c, 0, sizeof c);
  flt = (store_audit_filter){.descending = 1, .limit = 2};
  assert_int_equal(store_audit_list(f->s, &flt, collect_audit, &c), 2);
  assert_int_equal(c.seqs[0], 6);
  assert_int_equal(c.seqs[1], 5);
  memset(&c, 0, sizeof c);
  flt.after_seq = 5;
  assert_int_equal(store_audit_list(f->s, &flt, collect_audit, &c), 2);
  assert_int_equal(c.seqs[0], 4);
  assert_int_equal(c.seqs[1], 3);
  memset(&c, 0, sizeof c);
  flt = (store_audit_filter){.after_seq = 4, .limit = 10, .tenant_id = 2};
  assert_int_equal(store_audit_list(f->s, &flt, collect_audit, &c), 1);
  assert_int_equal(c.seqs[0], 6);

  memset(&c, 0, sizeof c);
  assert_int_equal(store_audit_scan(f->s, collect_audit, &c), 6);
  for (int i = 0; i < 6; i++)
    assert_int_equal(c.seqs[i], i + 1);

  /* A caller-chosen seq must be the next one. */
  store_audit rec = {0};
  rec.seq = 9;
  assert_int_equal(store_audit_insert(f->s, &rec), PL_ECONFLICT);
  rec.seq = 7;
  snprintf(rec.detail, sizeof rec.detail, "detail with 'quotes' and \"more\"");
  assert_int_equal(store_audit_insert(f->s, &rec), 0);
  assert_int_equal(rec.seq, 7);
  assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), 7);
}

/* ---- counts ---- */

static void test_counts(void **state) {
  fixture *f = *state;
  int64_t ta = mk_tenant(f->s, "a"), tb = mk_tenant(f->s, "b");
  mk_user(f->s, ta, "ua", "viewer");
  mk_user(f->s, tb, "ub", "viewer");
  mk_user(f->s, tb, "ub2", "viewer");
  int64_t d1 = mk_device(f->s, ta, "d1", 0);
  int64_t d2 = mk_device(f->s, tb, "d2", 0);
  mk_device(f->s, tb, "d3", 0);
  int64_t now = 100LL * 24 * 3600 * 1000;
  assert_int_equal(store_device_touch(f->s, ta, d1, now - 1000), 0);
  assert_int_equal(store_device_touch(f->s, tb, d2, now - 25LL * 3600 * 1000), 0);
  int64_t t1 = mk_token(f->s, ta, 0, "api", 1);
  mk_token(f->s, tb, 0, "api", 2);
  mk_token(f->s, tb, 0, "session", 3);
  assert_int_equal(store_token_revoke(f->s, ta, t1, now - 5), 0);
  store_token expired = {0};
  expired.tenant_id = tb;
  snprintf(expired.kind, sizeof expired.kind, "api");
  snprintf(expired.role, sizeof expired.role, "viewer");
  fill_hash(expired.hash, 4);
  expired.expires_ms = now - 1;
  assert_int_equal(store_token_create(f->s, &expired), 0);

  store_counts all;
  assert_int_equal(store_counts_get(f->s, 0, now, &all), 0);
  assert_int_equal(all.tenants, 2);
  assert_int_equal(all.users, 3);
  assert_int_equal(all.devices, 3);
  assert_int_equal(all.devices_seen_24h, 1);
  assert_int_equal(all.tokens_live, 2);
  store_counts b;
  assert_int_equal(store_counts_get(f->s, tb, now, &b), 0);
  assert_int_equal(b.tenants, 1);
  assert_int_equal(b.users, 2);
  assert_int_equal(b.devices, 2);
  assert_int_equal(b.devices_seen_24h, 0);
  assert_int_equal(b.tokens_live, 2);
}

/* ---- pool ---- */

typedef struct pool_arg {
  store_pool *pool;
  int64_t tenant_id;
  int index;
  int failures;
} pool_arg;

static void *pool_worker(void *p) {
  pool_arg *a = p;
  for (int i = 0; i < 50; i++) {
    store *s = store_pool_get(a->pool);
    char name[64];
    snprintf(name, sizeof name, "w%d-dev%d", a->index, i);
    store_device d = {0};
    d.tenant_id = a->tenant_id;
    snprintf(d.name, sizeof d.name, "%s", name);
    if (store_device_create(s, &d) != 0)
      a->failures++;
    store_device got = {0};
    if (store_device_get_by_name(s, a->tenant_id, name, &got) != 0 || got.id != d.id)
      a->failures++;
    store_device_clear(&got);
    if (i % 10 == 0) {
      /* An abandoned transaction must not leak to the next user of the connection. */
      if (store_begin(s) != 0)
        a->failures++;
    }
    store_pool_put(a->pool, s);
  }
  return NULL;
}

static void test_pool_threads(void **state) {
  fixture *f = *state;
  int64_t tid = mk_tenant(f->s, "pool");
  store_pool *pool = NULL;
  pl_err err = {{0}};
  assert_int_equal(store_pool_new(f->path, 2, &pool, &err), 0);
  assert_int_equal(store_pool_new(f->path, 0, &(store_pool *){NULL}, &err), PL_EINVAL);
  pthread_t th[4];
  pool_arg args[4];
  for (int i = 0; i < 4; i++) {
    args[i] = (pool_arg){pool, tid, i, 0};
    assert_int_equal(pthread_create(&th[i], NULL, pool_worker, &args[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(args[i].failures, 0);
  }
  store_pool_free(pool);
  /* The abandoned transactions were rolled back, the devices committed. */
  assert_int_equal(raw_int(f->path, "SELECT count(*) FROM devices"), 200);
}

int main(void) {
  pl_log_set_level(PL_LOG_ERROR); /* the pool test's rollback warnings are expected */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_migrations_fresh_and_reopen, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migrations_newer_schema_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migrations_concurrent_processes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tenant_crud, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unterminated_string_rejected, setup, teardown),
      cmocka_unit_test_setup_teardown(test_user_crud, setup, teardown),
      cmocka_unit_test_setup_teardown(test_token_crud, setup, teardown),
      cmocka_unit_test_setup_teardown(test_device_crud, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tenant_scoping, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cascade_delete, setup, teardown),
      cmocka_unit_test_setup_teardown(test_paging, setup, teardown),
      cmocka_unit_test_setup_teardown(test_list_callback_reenters, setup, teardown),
      cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_counts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pool_threads, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
