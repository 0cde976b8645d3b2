/* Unit tests of the mapping from (tenant, database name) to time-series namespace
 * (http_tsdb_ns in src/http/api.c) and of the databases store under it (src/store/database.c):
 * the implicit default database, creation and lookup, per-tenant names, refused names, ids that
 * are never reused, tenant-scoped lookups, listing, deletion and the cascade from a tenant. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http/http_int.h"
#include "store/store.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct fixture {
  char dir[256];
  char path[300];
  store *s;
  http_req r;
  int64_t a, b; /* two tenants */
} fixture;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static int64_t mk_tenant(store *s, const char *name) {
  store_tenant t;
  memset(&t, 0, sizeof t);
  snprintf(t.name, sizeof t.name, "%s", name);
  assert_int_equal(store_tenant_create(s, &t), 0);
  return t.id;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  snprintf(f->dir, sizeof f->dir, "/tmp/http_tsdb_ns_test.XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->path, sizeof f->path, "%s/meta.db", f->dir);
  pl_err err = {{0}};
  if (store_open(f->path, &f->s, &err) != 0)
    fail_msg("store_open: %s", err.msg);
  f->r.db = f->s;
  f->a = mk_tenant(f->s, "spring-water");
  f->b = mk_tenant(f->s, "cement-works");
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

static void test_default_database_is_the_tenant(void **state) {
  fixture *f = *state;
  int64_t ns = -1;
  assert_int_equal(http_tsdb_ns(&f->r, f->a, NULL, 0, &ns), 0);
  assert_int_equal(ns, f->a);
  ns = -1;
  assert_int_equal(http_tsdb_ns(&f->r, f->a, "", 0, &ns), 0);
  assert_int_equal(ns, f->a);
  ns = -1;
  assert_int_equal(http_tsdb_ns(&f->r, f->b, "plateau", 1, &ns), 0);
  assert_int_equal(ns, f->b);
  /* "plateau" never gets a row. */
  store_database d;
  assert_int_equal(store_database_get_by_name(f->s, f->b, "plateau", &d), PL_ENOTFOUND);
}

static void test_create_and_find(void **state) {
  fixture *f = *state;
  int64_t ns = 12345;
  assert_int_equal(http_tsdb_ns(&f->r, f->a, "telegraf", 0, &ns), PL_ENOTFOUND);
  assert_int_equal(ns, 12345); /* untouched on failure */
  assert_int_equal(http_tsdb_ns(&f->r, f->a, "telegraf", 1, &ns), 0);
  store_database d;
  assert_int_equal(store_database_get_by_name(f->s, f->a, "telegraf", &d), 0);
  assert_int_equal(ns, STORE_DATABASE_NS_BASE | d.id);
  assert_true(ns >= STORE_DATABASE_NS_BASE);
  assert_int_equal(d.tenant_id, f->a);
  assert_string_equal(d.name, "telegraf");
  assert_true(d.created_ms > 0);
  int64_t again = 0;
  assert_int_equal(http_tsdb_ns(&f->r, f->a, "telegraf", 0, &again), 0);
  assert_int_equal(again, ns);
  assert_int_equal(http_tsdb_ns(&f->r, f->a, "telegraf", 1, &again), 0);
  assert_int_equal(again, ns);
  /* Names are exact: case and spaces matter, as in InfluxDB. */
  assert_int_equal(http_tsdb_ns(&f->r, f->a, "Telegraf", 0, &again), PL_ENOTFOUND);
  assert_int_equal(http_tsdb_ns(&f->r, f->a, "拉萨 plant", 1, &again), 0);
  assert_true(again != ns);
}

static void test_names_are_per_tenant(void **state) {
  fixture *f = *state;
  int64_t na, nb;
  assert_int_equal(http_tsdb_ns(&f->r, f->a, "telegraf", 1, &na), 0);
  /* B's "telegraf" is not A's: B finds none until it creates its own. */
  assert_int_equal(http_tsdb_ns(&f->r, f->b, "telegraf", 0, &nb), PL_ENOTFOUND);
  assert_int_equal(http_tsdb_ns(&f->r, f->b, "telegraf", 1, &nb), 0);
  assert_true(na != nb);
  /* Lookups by id are scoped to the tenant. */
  store_database d;
  assert_int_equal(store_database_get(f->s, f->a, na - STORE_DATABASE_NS_BASE, &d), 0);
  assert_int_equal(store_database_get(f->s, f->b, na - STORE_DATABASE_NS_BASE, &d), PL_ENOTFOUND);
  assert_int_equal(store_database_get(f->s, 0, na - STORE_DATABASE_NS_BASE, &d), 0);
  assert_int_equal(d.tenant_id, f->a);
  assert_int_equal(store_database_delete(f->s, f->b, na - STORE_DATABASE_NS_BASE), PL_ENOTFOUND);
}

static void test_refused_names(void **state) {
  fixture *f = *state;
  int64_t ns;
  char name[200];
  memset(name, 'd', 127);
  name[127] = 0;
  assert_int_equal(http_tsdb_ns(&f->r, f->a, name, 1, &ns), 0);
  memset(name, 'd', 128);
  name[128] = 0;
  assert_int_equal(http_tsdb_ns(&f->r, f->a, name, 1, &ns), PL_EINVAL);
  assert_int_equal(http_tsdb_ns(&f->r, f->a, "tab\there", 1, &ns), PL_EINVAL);
  assert_int_equal(http_tsdb_ns(&f->r, f->a, "new\nline", 1, &ns), PL_EINVAL);
  assert_int_equal(http_tsdb_ns(&f->r, f->a, "del\x7f", 1, &ns), PL_EINVAL);
  assert_int_equal(http_tsdb_ns(&f->r, f->a, "bad\xff utf8", 1, &ns), PL_EINVAL);
  store_database d = {0};
  d.tenant_id = f->a;
  assert_int_equal(store_database_create(f->s, &d), PL_EINVAL); /* empty */
  d.tenant_id = 999999;
  snprintf(d.name, sizeof d.name, "orphan");
  assert_int_equal(store_database_create(f->s, &d), PL_ENOTFOUND); /* no such tenant */
  d.tenant_id = f->a;
  assert_int_equal(store_database_create(f->s, &d), 0);
  assert_int_equal(store_database_create(f->s, &d), PL_EEXIST);
}

typedef struct names {
  char got[8][128];
  int n;
} names;

static int collect(void *ctx, const store_database *d) {
  names *n = ctx;
  if (n->n < 8)
    snprintf(n->got[n->n++], 128, "%s", d->name);
  return 0;
}

static void test_list_delete_and_cascade(void **state) {
  fixture *f = *state;
  int64_t ns[4];
  const char *an[] = {"a1", "a2", "a3"};
  for (int i = 0; i < 3; i++)
    assert_int_equal(http_tsdb_ns(&f->r, f->a, an[i], 1, &ns[i]), 0);
  assert_int_equal(http_tsdb_ns(&f->r, f->b, "b1", 1, &ns[3]), 0);
  names n = {0};
  assert_int_equal(store_database_list(f->s, f->a, 0, 2, collect, &n), 2);
  assert_string_equal(n.got[0], "a1");
  assert_string_equal(n.got[1], "a2");
  n.n = 0;
  assert_int_equal(store_database_list(f->s, f->a, ns[1] - STORE_DATABASE_NS_BASE, 0, collect, &n),
                   1);
  assert_string_equal(n.got[0], "a3");
  n.n = 0;
  assert_int_equal(store_database_list(f->s, 0, 0, 0, collect, &n), 4);
  /* Deleting a database frees its name, never its id. */
  int64_t id2 = ns[1] - STORE_DATABASE_NS_BASE, id3 = ns[2] - STORE_DATABASE_NS_BASE;
  assert_int_equal(store_database_delete(f->s, f->a, id3), 0);
  assert_int_equal(store_database_delete(f->s, f->a, id3), PL_ENOTFOUND);
  int64_t again;
  assert_int_equal(http_tsdb_ns(&f->r, f->a, "a3", 0, &again), PL_ENOTFOUND);
  assert_int_equal(http_tsdb_ns(&f->r, f->a, "a3", 1, &again), 0);
  assert_true(again > ns[3]); /* a new id, after every id handed out before */
  /* A deleted tenant takes its databases with it. */
  assert_int_equal(store_tenant_delete(f->s, f->a), 0);
  store_database d;
  assert_int_equal(store_database_get(f->s, 0, id2, &d), PL_ENOTFOUND);
  n.n = 0;
  assert_int_equal(store_database_list(f->s, 0, 0, 0, collect, &n), 1);
  assert_string_equal(n.got[0], "b1");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_default_database_is_the_tenant, setup, teardown),
      cmocka_unit_test_setup_teardown(test_create_and_find, setup, teardown),
      cmocka_unit_test_setup_teardown(test_names_are_per_tenant, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refused_names, setup, teardown),
      cmocka_unit_test_setup_teardown(test_list_delete_and_cascade, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
