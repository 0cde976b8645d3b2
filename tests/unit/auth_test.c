/* Unit tests of auth: passwords, token shape and hashing, the role tables, authentication of
 * API/session/device tokens against a real store, and the audit hash chain under concurrent
 * appenders and tampering done behind the API with raw SQLite. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth/auth.h"
#include "base/log.h"
#include "store/store.h"

#include <ftw.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fixture {
  char dir[256];
  char db_path[300];
  char key_path[300];
  store *s;
} fixture;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  snprintf(f->dir, sizeof f->dir, "/tmp/auth_test.XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->db_path, sizeof f->db_path, "%s/meta.db", f->dir);
  snprintf(f->key_path, sizeof f->key_path, "%s/audit.key", f->dir);
  pl_err err = {{0}};
  if (store_open(f->db_path, &f->s, &err) != 0)
    fail_msg("store_open: %s", err.msg);
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

static void raw_exec(const char *path, const char *sql) {
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
    fail_msg("%s: %s", sql, msg);
  /* A tampering statement that touched nothing would make its test meaningless. */
  assert_int_equal(sqlite3_changes(db), 1);
  sqlite3_close(db);
}

/* ---- passwords ---- */

static void test_password_hash_verify(void **state) {
  (void)state;
  char h1[AUTH_HASH_STR_MAX], h2[AUTH_HASH_STR_MAX];
  assert_int_equal(auth_password_hash("correct horse battery", h1), 0);
  assert_true(strncmp(h1, "$argon2id$", 10) == 0);
  assert_int_equal(auth_password_verify(h1, "correct horse battery"), 0);
  assert_int_equal(auth_password_verify(h1, "correct horse batterY"), PL_EAUTH);
  assert_int_equal(auth_password_verify(h1, ""), PL_EAUTH);
  /* A fresh salt each time. */
  assert_int_equal(auth_password_hash("correct horse battery", h2), 0);
  assert_string_not_equal(h1, h2);
  assert_int_equal(auth_password_verify(h2, "correct horse battery"), 0);
  /* Broken or missing hashes never match. */
  assert_int_equal(auth_password_verify(NULL, "correct horse battery"), PL_EAUTH);
  assert_int_equal(auth_password_verify("", "correct horse battery"), PL_EAUTH);
  assert_int_equal(auth_password_verify("$argon2id$garbage", "correct horse battery"), PL_EAUTH);
  h1[20] ^= 1;
  assert_int_equal(auth_password_verify(h1, "correct horse battery"), PL_EAUTH);
}

static void test_password_lengths(void **state) {
  (void)state;
  char h[AUTH_HASH_STR_MAX];
  memset(h, 'q', sizeof h);
  char pw[AUTH_PASSWORD_MAX + 2];
  memset(pw, 'a', sizeof pw);
  pw[AUTH_PASSWORD_MIN - 1] = 0;
  assert_int_equal(auth_password_hash(pw, h), PL_EINVAL);
  assert_int_equal(h[0], 'q'); /* untouched on failure */
  pw[AUTH_PASSWORD_MIN - 1] = 'a';
  pw[AUTH_PASSWORD_MIN] = 0;
  assert_int_equal(auth_password_hash(pw, h), 0);
  assert_int_equal(auth_password_verify(h, pw), 0);
  pw[AUTH_PASSWORD_MIN] = 'a';
  pw[AUTH_PASSWORD_MAX] = 0;
  assert_int_equal(auth_password_hash(pw, h), 0);
  assert_int_equal(auth_password_verify(h, pw), 0);
  pw[AUTH_PASSWORD_MAX] = 'a';
  pw[AUTH_PASSWORD_MAX + 1] = 0;
  assert_int_equal(auth_password_hash(pw, h), PL_EINVAL);
  assert_int_equal(auth_password_verify(h, pw), PL_EAUTH);
  assert_int_equal(auth_password_hash(NULL, h), PL_EINVAL);
}

static void test_password_generate(void **state) {
  (void)state;
  char a[32], b[32];
  auth_password_generate(a);
  auth_password_generate(b);
  assert_int_equal(strlen(a), 20);
  assert_int_equal(strlen(b), 20);
  assert_string_not_equal(a, b);
  for (int i = 0; i < 20; i++) {
    assert_non_null(strchr("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", a[i]));
    assert_null(strchr("0O1lI", a[i]));
  }
}

/* ---- tokens ---- */

static void test_token_shape(void **state) {
  (void)state;
  static const char *const prefixes[] = {"plt_", "pls_", "pld_"};
  for (int k = AUTH_TOKEN_API; k <= AUTH_TOKEN_DEVICE; k++) {
    char tok[AUTH_TOKEN_MAX], tok2[AUTH_TOKEN_MAX], prefix[16];
    uint8_t hash[32], again[32], hash2[32];
    assert_int_equal(auth_token_new((auth_token_kind)k, tok, prefix, hash), 0);
    assert_int_equal(strlen(tok), AUTH_TOKEN_LEN);
    assert_memory_equal(tok, prefixes[k], 4);
    assert_int_equal(strlen(prefix), 12);
    assert_memory_equal(prefix, tok, 12);
    assert_int_equal(auth_token_kind_of(tok), k);
    auth_token_hash(tok, strlen(tok), again);
    assert_memory_equal(hash, again, 32);
    /* The hash is BLAKE2b-256 of the whole string, prefix included. */
    crypto_generichash(again, 32, (const unsigned char *)tok, strlen(tok), NULL, 0);
    assert_memory_equal(hash, again, 32);
    /* The random part is 32 bytes of base64url. */
    unsigned char raw[64];
    size_t raw_len = 0;
    assert_int_equal(sodium_base642bin(raw, sizeof raw, tok + 4, 43, NULL, &raw_len, NULL,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                     0);
    assert_int_equal(raw_len, 32);
    assert_int_equal(auth_token_new((auth_token_kind)k, tok2, prefix, hash2), 0);
    assert_string_not_equal(tok, tok2);
    assert_memory_not_equal(hash, hash2, 32);
  }
  assert_int_equal(auth_token_new((auth_token_kind)7, (char[AUTH_TOKEN_MAX]){0}, (char[16]){0},
                                  (uint8_t[32]){0}),
                   PL_EINVAL);
}

static void test_token_kind_of_rejects(void **state) {
  (void)state;
  char tok[AUTH_TOKEN_MAX], prefix[16], bad[AUTH_TOKEN_MAX + 8];
  uint8_t hash[32];
  assert_int_equal(auth_token_new(AUTH_TOKEN_API, tok, prefix, hash), 0);
  assert_int_equal(auth_token_kind_of(NULL), PL_EINVAL);
  assert_int_equal(auth_token_kind_of(""), PL_EINVAL);
  snprintf(bad, sizeof bad, "plx_%.43s", tok + 4);
  assert_int_equal(auth_token_kind_of(bad), PL_EINVAL);
  snprintf(bad, sizeof bad, "PLT_%.43s", tok + 4);
  assert_int_equal(auth_token_kind_of(bad), PL_EINVAL);
  snprintf(bad, sizeof bad, "%.46s", tok); /* one short */
  assert_int_equal(auth_token_kind_of(bad), PL_EINVAL);
  snprintf(bad, sizeof bad, "%sA", tok); /* one long */
  assert_int_equal(auth_token_kind_of(bad), PL_EINVAL);
  snprintf(bad, sizeof bad, "%s", tok);
  bad[10] = '+'; /* standard base64, not base64url */
  assert_int_equal(auth_token_kind_of(bad), PL_EINVAL);
  bad[10] = '=';
  assert_int_equal(auth_token_kind_of(bad), PL_EINVAL);
  bad[10] = ' ';
  assert_int_equal(auth_token_kind_of(bad), PL_EINVAL);
  /* The last symbol of 32 bytes carries 4 bits: 'B' (value 1) cannot end a real token, 'A' can. */
  snprintf(bad, sizeof bad, "%s", tok);
  bad[46] = 'B';
  assert_int_equal(auth_token_kind_of(bad), PL_EINVAL);
  bad[46] = 'A';
  assert_int_equal(auth_token_kind_of(bad), AUTH_TOKEN_API);
  snprintf(bad, sizeof bad, "pls_%.43s", tok + 4);
  assert_int_equal(auth_token_kind_of(bad), AUTH_TOKEN_SESSION);
}

/* ---- roles ---- */

static void test_role_names(void **state) {
  (void)state;
  static const char *const names[] = {"admin",    "regulator", "tenant-admin",
                                      "operator", "viewer",    "device"};
  for (int r = 0; r < AUTH_ROLE_COUNT; r++) {
    assert_string_equal(auth_role_name((auth_role)r), names[r]);
    assert_int_equal(auth_role_parse(names[r]), r);
  }
  assert_int_equal(auth_role_parse("root"), PL_EINVAL);
  assert_int_equal(auth_role_parse("Admin"), PL_EINVAL);
  assert_int_equal(auth_role_parse(""), PL_EINVAL);
  assert_int_equal(auth_role_parse(NULL), PL_EINVAL);
  assert_string_equal(auth_role_name((auth_role)42), "unknown");
}

static void test_role_table(void **state) {
  (void)state;
  /* The rows of docs/api.md's table; "own" (tokens) counts as allowed, see auth.h. */
  static const struct {
    auth_perm p;
    int allowed[AUTH_ROLE_COUNT]; /* A R T O V D */
  } rows[] = {
      {AUTH_PERM_TENANT_READ, {1, 1, 1, 1, 1, 0}},  {AUTH_PERM_TENANT_WRITE, {1, 0, 0, 0, 0, 0}},
      {AUTH_PERM_USER_READ, {1, 1, 1, 0, 0, 0}},    {AUTH_PERM_USER_WRITE, {1, 0, 1, 0, 0, 0}},
      {AUTH_PERM_TOKEN_READ, {1, 1, 1, 1, 1, 0}},   {AUTH_PERM_TOKEN_WRITE, {1, 1, 1, 1, 1, 0}},
      {AUTH_PERM_DEVICE_READ, {1, 1, 1, 1, 1, 0}},  {AUTH_PERM_DEVICE_WRITE, {1, 0, 1, 1, 0, 0}},
      {AUTH_PERM_DEVICE_TOKEN, {1, 0, 1, 1, 0, 0}}, {AUTH_PERM_DATA_READ, {1, 1, 1, 1, 1, 0}},
      {AUTH_PERM_DATA_WRITE, {1, 0, 1, 1, 0, 1}},   {AUTH_PERM_AUDIT_READ, {1, 1, 1, 0, 0, 0}},
  };
  assert_int_equal(sizeof rows / sizeof rows[0], AUTH_PERM_COUNT);
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    for (int r = 0; r < AUTH_ROLE_COUNT; r++)
      if (auth_can((auth_role)r, rows[i].p) != rows[i].allowed[r])
        fail_msg("auth_can(%s, perm %d) = %d, want %d", auth_role_name((auth_role)r),
                 (int)rows[i].p, auth_can((auth_role)r, rows[i].p), rows[i].allowed[r]);
  /* Spot checks stated plainly. */
  assert_false(auth_can(AUTH_ROLE_REGULATOR, AUTH_PERM_DEVICE_WRITE));
  assert_false(auth_can(AUTH_ROLE_VIEWER, AUTH_PERM_DATA_WRITE));
  assert_true(auth_can(AUTH_ROLE_DEVICE, AUTH_PERM_DATA_WRITE));
  assert_false(auth_can(AUTH_ROLE_DEVICE, AUTH_PERM_DEVICE_READ));
  assert_false(auth_can(AUTH_ROLE_OPERATOR, AUTH_PERM_USER_READ));
  assert_true(auth_can(AUTH_ROLE_TENANT_ADMIN, AUTH_PERM_AUDIT_READ));
  assert_false(auth_can((auth_role)99, AUTH_PERM_TENANT_READ));
  assert_false(auth_can(AUTH_ROLE_ADMIN, (auth_perm)99));

  assert_true(auth_role_cross_tenant(AUTH_ROLE_ADMIN));
  assert_true(auth_role_cross_tenant(AUTH_ROLE_REGULATOR));
  assert_false(auth_role_cross_tenant(AUTH_ROLE_TENANT_ADMIN));
  assert_false(auth_role_cross_tenant(AUTH_ROLE_OPERATOR));
  assert_false(auth_role_cross_tenant(AUTH_ROLE_VIEWER));
  assert_false(auth_role_cross_tenant(AUTH_ROLE_DEVICE));
}

static void test_role_may_grant(void **state) {
  (void)state;
  static const int grants[AUTH_ROLE_COUNT][AUTH_ROLE_COUNT] = {
      /* target: admin regulator tenant-admin operator viewer device */
      [AUTH_ROLE_ADMIN] = {1, 1, 1, 1, 1, 0},        [AUTH_ROLE_REGULATOR] = {0, 1, 0, 0, 0, 0},
      [AUTH_ROLE_TENANT_ADMIN] = {0, 0, 1, 1, 1, 0}, [AUTH_ROLE_OPERATOR] = {0, 0, 0, 1, 1, 0},
      [AUTH_ROLE_VIEWER] = {0, 0, 0, 0, 1, 0},       [AUTH_ROLE_DEVICE] = {0, 0, 0, 0, 0, 0},
  };
  for (int g = 0; g < AUTH_ROLE_COUNT; g++)
    for (int t = 0; t < AUTH_ROLE_COUNT; t++)
      if (auth_role_may_grant((auth_role)g, (auth_role)t) != grants[g][t])
        fail_msg("may_grant(%s, %s) = %d, want %d", auth_role_name((auth_role)g),
                 auth_role_name((auth_role)t), auth_role_may_grant((auth_role)g, (auth_role)t),
                 grants[g][t]);
  assert_false(auth_role_may_grant(AUTH_ROLE_ADMIN, (auth_role)-1));
}

/* ---- authentication ---- */

typedef struct world {
  int64_t tenant_id, user_id, device_id;
  char api_token[AUTH_TOKEN_MAX];
  int64_t api_token_id;
  char device_token[AUTH_TOKEN_MAX];
} world;

static int64_t add_token(store *s, int64_t tenant_id, int64_t user_id, auth_token_kind kind,
                         const char *role, int64_t expires_ms, char token[AUTH_TOKEN_MAX]) {
  store_token t = {0};
  t.tenant_id = tenant_id;
  t.user_id = user_id;
  snprintf(t.kind, sizeof t.kind, "%s", kind == AUTH_TOKEN_SESSION ? "session" : "api");
  snprintf(t.name, sizeof t.name, "test token");
  snprintf(t.role, sizeof t.role, "%s", role);
  t.expires_ms = expires_ms;
  assert_int_equal(auth_token_new(kind, token, t.prefix, t.hash), 0);
  assert_int_equal(store_token_create(s, &t), 0);
  return t.id;
}

static void make_world(store *s, world *w) {
  store_tenant t = {0};
  snprintf(t.name, sizeof t.name, "spring-water");
  assert_int_equal(store_tenant_create(s, &t), 0);
  w->tenant_id = t.id;
  store_user u = {0};
  u.tenant_id = t.id;
  snprintf(u.name, sizeof u.name, "dolkar");
  snprintf(u.role, sizeof u.role, "tenant-admin");
  assert_int_equal(store_user_create(s, &u), 0);
  w->user_id = u.id;
  w->api_token_id = add_token(s, t.id, u.id, AUTH_TOKEN_API, "operator", 0, w->api_token);
  store_device d = {0};
  d.tenant_id = t.id;
  snprintf(d.name, sizeof d.name, "pump-1");
  assert_int_equal(auth_token_new(AUTH_TOKEN_DEVICE, w->device_token, d.token_prefix, d.token_hash),
                   0);
  assert_int_equal(store_device_create(s, &d), 0);
  w->device_id = d.id;
}

static void set_user(store *s, world *w, const char *role, int disabled) {
  store_user u;
  assert_int_equal(store_user_get(s, w->tenant_id, w->user_id, &u), 0);
  snprintf(u.role, sizeof u.role, "%s", role);
  u.disabled = disabled;
  assert_int_equal(store_user_update(s, &u), 0);
}

static void test_authenticate_api_token(void **state) {
  fixture *f = *state;
  world w;
  make_world(f->s, &w);
  auth_principal p;
  memset(&p, 0xee, sizeof p);
  int64_t now = 1800000000000LL;
  assert_int_equal(auth_authenticate(f->s, w.api_token, now, &p), 0);
  assert_int_equal(p.role, AUTH_ROLE_OPERATOR); /* the token's role, below the user's */
  assert_int_equal(p.tenant_id, w.tenant_id);
  assert_string_equal(p.tenant_name, "spring-water");
  assert_int_equal(p.user_id, w.user_id);
  assert_int_equal(p.token_id, w.api_token_id);
  assert_int_equal(p.device_id, 0);
  assert_string_equal(p.name, "dolkar");
  assert_memory_equal(p.token_prefix, w.api_token, 12);
  assert_int_equal(strlen(p.token_prefix), 12);
  char actor[160];
  auth_principal_actor(&p, actor, sizeof actor);
  assert_string_equal(actor, "user:dolkar");
  store_token t;
  assert_int_equal(store_token_get(f->s, w.tenant_id, w.api_token_id, &t), 0);
  assert_int_equal(t.last_used_ms, now);

  /* Unknown tokens of the right shape and malformed ones. */
  char other[AUTH_TOKEN_MAX], prefix[16];
  uint8_t h[32];
  assert_int_equal(auth_token_new(AUTH_TOKEN_API, other, prefix, h), 0);
  assert_int_equal(auth_authenticate(f->s, other, now, &p), PL_EAUTH);
  assert_int_equal(auth_authenticate(f->s, "Bearer nonsense", now, &p), PL_EAUTH);
  assert_int_equal(auth_authenticate(f->s, NULL, now, &p), PL_EAUTH);
  char flipped[AUTH_TOKEN_MAX];
  snprintf(flipped, sizeof flipped, "%s", w.api_token);
  flipped[20] = flipped[20] == 'a' ? 'b' : 'a';
  assert_int_equal(auth_authenticate(f->s, flipped, now, &p), PL_EAUTH);
  /* The same secret behind another kind prefix is another token. */
  snprintf(flipped, sizeof flipped, "pls_%.43s", w.api_token + 4);
  assert_int_equal(auth_authenticate(f->s, flipped, now, &p), PL_EAUTH);
}

static void test_authenticate_token_without_user(void **state) {
  fixture *f = *state;
  world w;
  make_world(f->s, &w);
  char tok[AUTH_TOKEN_MAX];
  add_token(f->s, w.tenant_id, 0, AUTH_TOKEN_API, "viewer", 0, tok);
  auth_principal p;
  assert_int_equal(auth_authenticate(f->s, tok, 1000, &p), 0);
  assert_int_equal(p.role, AUTH_ROLE_VIEWER);
  assert_int_equal(p.user_id, 0);
  assert_string_equal(p.name, "test token");
  char actor[160];
  auth_principal_actor(&p, actor, sizeof actor);
  char want[64];
  snprintf(want, sizeof want, "token:%.12s", tok);
  assert_string_equal(actor, want);
}

static void test_authenticate_session_expiry(void **state) {
  fixture *f = *state;
  world w;
  make_world(f->s, &w);
  char sess[AUTH_TOKEN_MAX];
  add_token(f->s, w.tenant_id, w.user_id, AUTH_TOKEN_SESSION, "tenant-admin", 5000000, sess);
  auth_principal p;
  assert_int_equal(auth_authenticate(f->s, sess, 4999999, &p), 0);
  assert_int_equal(p.role, AUTH_ROLE_TENANT_ADMIN);
  assert_int_equal(auth_authenticate(f->s, sess, 5000000, &p), PL_EAUTH);
  assert_int_equal(auth_authenticate(f->s, sess, 9000000, &p), PL_EAUTH);

  /* A row whose kind does not match the token's prefix is refused. */
  char tok[AUTH_TOKEN_MAX];
  store_token t = {0};
  t.tenant_id = w.tenant_id;
  snprintf(t.kind, sizeof t.kind, "api");
  snprintf(t.role, sizeof t.role, "viewer");
  assert_int_equal(auth_token_new(AUTH_TOKEN_SESSION, tok, t.prefix, t.hash), 0);
  assert_int_equal(store_token_create(f->s, &t), 0);
  assert_int_equal(auth_authenticate(f->s, tok, 1000, &p), PL_EAUTH);
}

static void test_authenticate_revoked(void **state) {
  fixture *f = *state;
  world w;
  make_world(f->s, &w);
  auth_principal p;
  assert_int_equal(auth_authenticate(f->s, w.api_token, 1000, &p), 0);
  assert_int_equal(store_token_revoke(f->s, w.tenant_id, w.api_token_id, 2000), 0);
  assert_int_equal(auth_authenticate(f->s, w.api_token, 3000, &p), PL_EAUTH);
}

static void test_authenticate_user_state(void **state) {
  fixture *f = *state;
  world w;
  make_world(f->s, &w);
  auth_principal p;
  set_user(f->s, &w, "tenant-admin", 1);
  assert_int_equal(auth_authenticate(f->s, w.api_token, 1000, &p), PL_EAUTH);
  set_user(f->s, &w, "tenant-admin", 0);
  assert_int_equal(auth_authenticate(f->s, w.api_token, 1000, &p), 0);
  assert_int_equal(p.role, AUTH_ROLE_OPERATOR);
  /* The user was lowered below the token: the user's role wins. */
  set_user(f->s, &w, "viewer", 0);
  assert_int_equal(auth_authenticate(f->s, w.api_token, 1000, &p), 0);
  assert_int_equal(p.role, AUTH_ROLE_VIEWER);
  /* Not comparable (an operator token of a user who is now a regulator): refused. */
  set_user(f->s, &w, "regulator", 0);
  assert_int_equal(auth_authenticate(f->s, w.api_token, 1000, &p), PL_EAUTH);
  /* Deleting the user deletes its tokens. */
  set_user(f->s, &w, "admin", 0);
  assert_int_equal(auth_authenticate(f->s, w.api_token, 1000, &p), 0);
  assert_int_equal(p.role, AUTH_ROLE_OPERATOR);
  assert_int_equal(store_user_delete(f->s, w.tenant_id, w.user_id), 0);
  assert_int_equal(auth_authenticate(f->s, w.api_token, 1000, &p), PL_EAUTH);
}

static void test_authenticate_device(void **state) {
  fixture *f = *state;
  world w;
  make_world(f->s, &w);
  auth_principal p;
  assert_int_equal(auth_authenticate(f->s, w.device_token, 1000, &p), 0);
  assert_int_equal(p.role, AUTH_ROLE_DEVICE);
  assert_int_equal(p.device_id, w.device_id);
  assert_int_equal(p.tenant_id, w.tenant_id);
  assert_string_equal(p.tenant_name, "spring-water");
  assert_int_equal(p.user_id, 0);
  assert_int_equal(p.token_id, 0);
  assert_string_equal(p.name, "pump-1");
  assert_memory_equal(p.token_prefix, w.device_token, 12);
  char actor[160];
  auth_principal_actor(&p, actor, sizeof actor);
  assert_string_equal(actor, "device:pump-1");
  /* A device token is not an API token, and rotation kills the old one at once. */
  char as_api[AUTH_TOKEN_MAX];
  snprintf(as_api, sizeof as_api, "plt_%.43s", w.device_token + 4);
  assert_int_equal(auth_authenticate(f->s, as_api, 1000, &p), PL_EAUTH);
  char fresh[AUTH_TOKEN_MAX], prefix[16];
  uint8_t h[32];
  assert_int_equal(auth_token_new(AUTH_TOKEN_DEVICE, fresh, prefix, h), 0);
  assert_int_equal(store_device_set_token(f->s, w.tenant_id, w.device_id, prefix, h), 0);
  assert_int_equal(auth_authenticate(f->s, w.device_token, 1000, &p), PL_EAUTH);
  assert_int_equal(auth_authenticate(f->s, fresh, 1000, &p), 0);
  assert_int_equal(p.device_id, w.device_id);
  /* Deleting the tenant removes every credential in it. */
  assert_int_equal(store_tenant_delete(f->s, w.tenant_id), 0);
  assert_int_equal(auth_authenticate(f->s, fresh, 1000, &p), PL_EAUTH);
}

/* ---- audit log ---- */

static void test_audit_key_file(void **state) {
  fixture *f = *state;
  auth_audit *a = NULL;
  pl_err err = {{0}};
  assert_int_equal(auth_audit_open(f->key_path, 0, &a, &err), PL_ENOTFOUND);
  assert_null(a);
  assert_int_equal(auth_audit_open(f->key_path, 1, &a, &err), 0);
  struct stat st;
  assert_int_equal(stat(f->key_path, &st), 0);
  assert_int_equal(st.st_size, 32);
  assert_int_equal(st.st_mode & 0777, 0600);
  /* A second open reads the same key: what one handle appends, another verifies. */
  auth_audit *b = NULL;
  assert_int_equal(auth_audit_open(f->key_path, 1, &b, &err), 0);
  store_audit rec = {0};
  snprintf(rec.action, sizeof rec.action, "test.one");
  assert_int_equal(auth_audit_append(a, f->s, &rec), 0);
  int64_t count = -1, bad = -1;
  assert_int_equal(auth_audit_verify(b, f->s, &count, &bad, &err), 0);
  assert_int_equal(count, 1);
  auth_audit_free(a);
  auth_audit_free(b);
  /* No temporary files left behind. */
  char tmp_glob[400];
  snprintf(tmp_glob, sizeof tmp_glob, "ls %s | grep -c tmp >/dev/null", f->dir);
  assert_int_not_equal(system(tmp_glob), 0);

  /* A key file of the wrong size is refused, not used. */
  FILE *fp = fopen(f->key_path, "ab");
  assert_non_null(fp);
  fputc('x', fp);
  fclose(fp);
  assert_int_equal(auth_audit_open(f->key_path, 1, &a, &err), PL_ECORRUPT);
  auth_audit_free(NULL);
}

typedef struct appender {
  const char *db_path;
  auth_audit *audit;
  int index;
  int failures;
} appender;

static void *append_worker(void *arg) {
  appender *ap = arg;
  store *s = NULL;
  pl_err err = {{0}};
  if (store_open(ap->db_path, &s, &err) != 0) {
    ap->failures = 1000;
    return NULL;
  }
  int64_t last_seq = 0;
  for (int i = 0; i < 200; i++) {
    store_audit rec = {0};
    snprintf(rec.actor, sizeof rec.actor, "user:worker%d", ap->index);
    rec.tenant_id = ap->index + 1;
    snprintf(rec.action, sizeof rec.action, "device.update");
    snprintf(rec.target, sizeof rec.target, "device:%d", i);
    snprintf(rec.result, sizeof rec.result, "ok");
    snprintf(rec.detail, sizeof rec.detail, "worker %d record %d", ap->index, i);
    snprintf(rec.source, sizeof rec.source, "api");
    snprintf(rec.remote, sizeof rec.remote, "192.0.2.%d", ap->index);
    if (auth_audit_append(ap->audit, s, &rec) != 0 || rec.seq <= last_seq || rec.ts_ms == 0)
      ap->failures++;
    last_seq = rec.seq;
  }
  store_close(s);
  return NULL;
}

static void fill_log(fixture *f, auth_audit *a) {
  pthread_t th[4];
  appender ap[4];
  for (int i = 0; i < 4; i++) {
    ap[i] = (appender){f->db_path, a, i, 0};
    assert_int_equal(pthread_create(&th[i], NULL, append_worker, &ap[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(ap[i].failures, 0);
  }
}

static void expect_broken_at(auth_audit *a, store *s, int64_t want) {
  int64_t count = -1, bad = -1;
  pl_err err = {{0}};
  assert_int_equal(auth_audit_verify(a, s, &count, &bad, &err), PL_ECORRUPT);
  assert_int_equal(bad, want);
  assert_true(err.msg[0] != 0);
}

static void expect_intact(auth_audit *a, store *s, int64_t want_count) {
  int64_t count = -1, bad = -1;
  pl_err err = {{0}};
  int rc = auth_audit_verify(a, s, &count, &bad, &err);
  if (rc != 0)
    fail_msg("verify: %d at %lld: %s", rc, (long long)bad, err.msg);
  assert_int_equal(count, want_count);
}

static void test_audit_concurrent_and_tamper(void **state) {
  fixture *f = *state;
  auth_audit *a = NULL;
  pl_err err = {{0}};
  assert_int_equal(auth_audit_open(f->key_path, 1, &a, &err), 0);
  expect_intact(a, f->s, 0);
  fill_log(f, a);
  expect_intact(a, f->s, 800);
  int64_t last;
  uint8_t h[32];
  assert_int_equal(store_audit_last(f->s, &last, h), 0);
  assert_int_equal(last, 800);

  /* Another key: the very first record fails. */
  char other_key[320];
  snprintf(other_key, sizeof other_key, "%s/other.key", f->dir);
  auth_audit *other = NULL;
  assert_int_equal(auth_audit_open(other_key, 1, &other, &err), 0);
  expect_broken_at(other, f->s, 1);
  auth_audit_free(other);

  /* An edited detail breaks exactly that record; undoing the edit heals it. */
  char original[600] = "";
  {
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->db_path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT detail FROM audit WHERE seq = 317", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(original, sizeof original, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
  }
  raw_exec(f->db_path, "UPDATE audit SET detail = 'nothing happened' WHERE seq = 317");
  expect_broken_at(a, f->s, 317);
  char sql[800];
  snprintf(sql, sizeof sql, "UPDATE audit SET detail = '%s' WHERE seq = 317", original);
  raw_exec(f->db_path, sql);
  expect_intact(a, f->s, 800);

  /* Other fields: the tenant, the time, the result. */
  raw_exec(f->db_path, "UPDATE audit SET tenant_id = tenant_id + 1 WHERE seq = 40");
  expect_broken_at(a, f->s, 40);
  raw_exec(f->db_path, "UPDATE audit SET tenant_id = tenant_id - 1 WHERE seq = 40");
  raw_exec(f->db_path, "UPDATE audit SET result = 'denied' WHERE seq = 41");
  expect_broken_at(a, f->s, 41);
  raw_exec(f->db_path, "UPDATE audit SET result = 'ok' WHERE seq = 41");
  expect_intact(a, f->s, 800);

  /* Recomputing a record's hash without the key is impossible, but copying another record's
   * link breaks the chain where it is pasted. */
  raw_exec(
      f->db_path,
      "UPDATE audit SET prev_hash = (SELECT prev_hash FROM audit WHERE seq = 10) WHERE seq = 600");
  expect_broken_at(a, f->s, 600);
  raw_exec(f->db_path,
           "UPDATE audit SET prev_hash = (SELECT hash FROM audit WHERE seq = 599) WHERE seq = 600");
  expect_intact(a, f->s, 800);

  /* A deleted record: the missing one is named. */
  raw_exec(f->db_path, "DELETE FROM audit WHERE seq = 500");
  expect_broken_at(a, f->s, 500);
  raw_exec(f->db_path, "DELETE FROM audit WHERE seq = 100");
  expect_broken_at(a, f->s, 100);
  raw_exec(f->db_path, "DELETE FROM audit WHERE seq = 1");
  expect_broken_at(a, f->s, 1);
  auth_audit_free(a);
}

static void test_audit_append_in_transaction(void **state) {
  fixture *f = *state;
  auth_audit *a = NULL;
  pl_err err = {{0}};
  assert_int_equal(auth_audit_open(f->key_path, 1, &a, &err), 0);
  store_audit rec = {0};
  snprintf(rec.action, sizeof rec.action, "tenant.create");
  rec.ts_ms = 1234;
  assert_int_equal(store_begin(f->s), 0);
  assert_int_equal(auth_audit_append(a, f->s, &rec), 0);
  assert_int_equal(rec.seq, 1);
  assert_int_equal(rec.ts_ms, 1234);
  assert_int_equal(store_rollback(f->s), 0);
  int64_t last;
  uint8_t h[32];
  assert_int_equal(store_audit_last(f->s, &last, h), 0);
  assert_int_equal(last, 0);

  store_audit rec2 = {0};
  snprintf(rec2.action, sizeof rec2.action, "tenant.create");
  assert_int_equal(store_begin(f->s), 0);
  assert_int_equal(auth_audit_append(a, f->s, &rec2), 0);
  assert_int_equal(store_commit(f->s), 0);
  assert_int_equal(store_audit_last(f->s, &last, h), 0);
  assert_int_equal(last, 1);
  assert_memory_equal(h, rec2.hash, 32);
  uint8_t zero[32] = {0};
  assert_memory_equal(rec2.prev_hash, zero, 32);
  assert_true(rec2.ts_ms > 0);

  store_audit rec3 = {0};
  assert_int_equal(auth_audit_append(a, f->s, &rec3), 0);
  assert_memory_equal(rec3.prev_hash, rec2.hash, 32);
  expect_intact(a, f->s, 2);

  /* Unterminated strings are refused and nothing is written. */
  store_audit bad = {0};
  memset(bad.detail, 'x', sizeof bad.detail);
  assert_int_equal(auth_audit_append(a, f->s, &bad), PL_EINVAL);
  expect_intact(a, f->s, 2);
  auth_audit_free(a);
}

/* The encoding is injective: moving bytes from one field to the next changes the hash. */
static void test_audit_encoding_injective(void **state) {
  fixture *f = *state;
  auth_audit *a = NULL;
  pl_err err = {{0}};
  assert_int_equal(auth_audit_open(f->key_path, 1, &a, &err), 0);
  char path2[320];
  snprintf(path2, sizeof path2, "%s/second.db", f->dir);
  store *s2 = NULL;
  assert_int_equal(store_open(path2, &s2, &err), 0);
  store_audit r1 = {0}, r2 = {0};
  r1.ts_ms = r2.ts_ms = 42;
  snprintf(r1.actor, sizeof r1.actor, "user:ab");
  snprintf(r1.action, sizeof r1.action, "c");
  snprintf(r2.actor, sizeof r2.actor, "user:a");
  snprintf(r2.action, sizeof r2.action, "bc");
  assert_int_equal(auth_audit_append(a, f->s, &r1), 0);
  assert_int_equal(auth_audit_append(a, s2, &r2), 0);
  assert_int_equal(r1.seq, r2.seq);
  assert_memory_equal(r1.prev_hash, r2.prev_hash, 32);
  assert_memory_not_equal(r1.hash, r2.hash, 32);
  /* Same contents, same key, same position: same hash. */
  store_audit r3 = r1;
  r3.seq = 0;
  char path3[320];
  snprintf(path3, sizeof path3, "%s/third.db", f->dir);
  store *s3 = NULL;
  assert_int_equal(store_open(path3, &s3, &err), 0);
  assert_int_equal(auth_audit_append(a, s3, &r3), 0);
  assert_memory_equal(r1.hash, r3.hash, 32);
  store_close(s2);
  store_close(s3);
  auth_audit_free(a);
}

int main(void) {
  pl_log_set_level(PL_LOG_WARN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_password_hash_verify),
      cmocka_unit_test(test_password_lengths),
      cmocka_unit_test(test_password_generate),
      cmocka_unit_test(test_token_shape),
      cmocka_unit_test(test_token_kind_of_rejects),
      cmocka_unit_test(test_role_names),
      cmocka_unit_test(test_role_table),
      cmocka_unit_test(test_role_may_grant),
      cmocka_unit_test_setup_teardown(test_authenticate_api_token, setup, teardown),
      cmocka_unit_test_setup_teardown(test_authenticate_token_without_user, setup, teardown),
      cmocka_unit_test_setup_teardown(test_authenticate_session_expiry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_authenticate_revoked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_authenticate_user_state, setup, teardown),
      cmocka_unit_test_setup_teardown(test_authenticate_device, setup, teardown),
      cmocka_unit_test_setup_teardown(test_audit_key_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_audit_concurrent_and_tamper, setup, teardown),
      cmocka_unit_test_setup_teardown(test_audit_append_in_transaction, setup, teardown),
      cmocka_unit_test_setup_teardown(test_audit_encoding_injective, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
