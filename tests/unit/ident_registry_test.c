/* Unit tests for the identifier registry and local resolution: prefix allocation and
 * delegation with tenant ownership, handle and value validation (reserved types), templates,
 * restricted values, index/type filters, GS1 key index, bulk registration with rejected rows,
 * statistics, and resolution without parents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/json.h"
#include "ident/ident.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct fixture {
  char dir[256];
  store *db;
  ident *id;
  int64_t a, b; /* tenants */
  ident_ctx ctx;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/ident_registry_test_%d_XXXXXX", getpid());
  if (!mkdtemp(f->dir))
    return -1;
  char path[512];
  snprintf(path, sizeof path, "%s/meta.db", f->dir);
  pl_err err = {{0}};
  if (store_open(path, &f->db, &err) < 0)
    return -1;
  store_tenant t = {0};
  snprintf(t.name, sizeof t.name, "water");
  if (store_tenant_create(f->db, &t) < 0)
    return -1;
  f->a = t.id;
  memset(&t, 0, sizeof t);
  snprintf(t.name, sizeof t.name, "cement");
  if (store_tenant_create(f->db, &t) < 0)
    return -1;
  f->b = t.id;
  ident_opts o = {NULL, 100, 3600000000000LL, 60000000000LL, 4, 1000000000LL, NULL, NULL};
  if (ident_new(&o, &f->id, &err) < 0)
    return -1;
  f->ctx = (ident_ctx){f->db, NULL, "test", "cli", ""};
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  ident_free(f->id);
  store_close(f->db);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
  if (system(cmd) != 0)
    return -1;
  free(f);
  return 0;
}

static json_t *vals(const char *text) {
  json_error_t e;
  json_t *v = json_loads(text, 0, &e);
  if (!v)
    fprintf(stderr, "bad test JSON: %s\n", e.text);
  assert_non_null(v);
  return v;
}

static int put(fixture *f, int64_t tenant, const char *handle, const char *tpl, const char *values,
               int mode) {
  json_t *v = vals(values);
  pl_err err = {{0}};
  int created = 0;
  int rc = ident_handle_put(&f->ctx, tenant, handle, tpl, v, mode, &created, &err);
  json_decref(v);
  return rc;
}

static void test_names(void **state) {
  (void)state;
  assert_int_equal(ident_check_prefix("88.118.7", NULL), 0);
  assert_int_equal(ident_check_prefix("88.118.a-b_c", NULL), 0);
  assert_true(ident_check_prefix("88..118", NULL) < 0);
  assert_true(ident_check_prefix("88.118.", NULL) < 0);
  assert_true(ident_check_prefix("0.NA", NULL) < 0);
  assert_true(ident_check_prefix("88/118", NULL) < 0);
  assert_true(ident_check_prefix("", NULL) < 0);
  assert_int_equal(ident_check_handle("88.118/abc/def", 14, NULL), 0);
  assert_true(ident_check_handle("88.118", 6, NULL) < 0);
  assert_true(ident_check_handle("88.118/", 7, NULL) < 0);
  assert_true(ident_check_handle("/abc", 4, NULL) < 0);
  assert_true(ident_check_handle("88.118/a\x01", 9, NULL) < 0);
  assert_true(ident_check_handle("88.118/\xff", 8, NULL) < 0);
  assert_int_equal(ident_prefix_len("88.118/abc", 10), 6);
  assert_int_equal(ident_day(86400000LL * 3 + 5), 3);
}

static void test_prefixes(void **state) {
  fixture *f = *state;
  pl_err err = {{0}};
  store_prefix p;
  /* A tenant cannot take a top-level prefix; the region can give it one. */
  assert_int_equal(ident_prefix_create(&f->ctx, f->a, "88.118.1", 0, &p, &err), PL_EPERM);
  assert_int_equal(ident_prefix_create(&f->ctx, f->a, "88.118.1", 1, &p, &err), 0);
  assert_int_equal(p.parent_id, 0);
  assert_int_equal(ident_prefix_create(&f->ctx, f->b, "88.118.1", 1, &p, &err), PL_EEXIST);
  /* Delegation under its own prefix; not under another's. */
  store_prefix sub;
  assert_int_equal(ident_prefix_create(&f->ctx, f->a, "88.118.1.5", 0, &sub, &err), 0);
  assert_int_not_equal(sub.parent_id, 0);
  assert_int_equal(ident_prefix_create(&f->ctx, f->b, "88.118.1.6", 0, &sub, &err), PL_EPERM);
  /* The region may delegate a sub-prefix to another tenant. */
  assert_int_equal(ident_prefix_create(&f->ctx, f->b, "88.118.1.9", 1, &sub, &err), 0);
  assert_int_equal(store_prefix_get(f->db, "88.118.1.9", 10, &p), 0);
  assert_int_equal(p.tenant_id, f->b);
  /* Case-insensitive. */
  assert_int_equal(ident_prefix_create(&f->ctx, f->a, "88.118.X", 1, &p, &err), 0);
  assert_int_equal(ident_prefix_create(&f->ctx, f->a, "88.118.x", 1, &p, &err), PL_EEXIST);
}

static void test_values_and_ownership(void **state) {
  fixture *f = *state;
  pl_err err = {{0}};
  store_prefix p;
  assert_int_equal(ident_prefix_create(&f->ctx, f->a, "88.118.2", 1, &p, &err), 0);
  assert_int_equal(ident_prefix_create(&f->ctx, f->b, "88.118.3", 1, &p, &err), 0);
  const char *good =
      "[{\"index\":1,\"type\":\"URL\",\"data\":\"https://example.com/a\"},"
      "{\"index\":2,\"type\":\"EMAIL\",\"data\":\"q@example.com\"},"
      "{\"index\":3,\"type\":\"NOTE\",\"data\":\"inner\",\"restricted\":true},"
      "{\"index\":4,\"type\":\"URL.ja\",\"data\":\"https://example.com/ja\"},"
      "{\"index\":100,\"type\":\"HS_ADMIN\",\"data\":{\"format\":\"admin\",\"value\":{\"handle\":"
      "\"0.NA/88.118.2\",\"index\":200}}},"
      "{\"index\":6,\"type\":\"HS_ALIAS\",\"data\":\"88.118.2/other\"},"
      "{\"index\":7,\"type\":\"BIN\",\"data\":{\"format\":\"base64\",\"value\":\"AAEC\"}}]";
  assert_int_equal(put(f, f->a, "88.118.2/lot-1", NULL, good, IDENT_PUT_CREATE), 0);
  assert_int_equal(put(f, f->a, "88.118.2/lot-1", NULL, good, IDENT_PUT_CREATE), PL_EEXIST);
  assert_int_equal(put(f, f->a, "88.118.2/LOT-1", NULL, good, IDENT_PUT_UPSERT),
                   0); /* same handle */
  /* Another tenant's prefix, and a prefix not held here. */
  assert_int_equal(put(f, f->b, "88.118.2/x", NULL, good, IDENT_PUT_UPSERT), PL_EPERM);
  assert_int_equal(put(f, f->a, "88.118.3/x", NULL, good, IDENT_PUT_UPSERT), PL_EPERM);
  assert_int_equal(put(f, f->a, "99.1/x", NULL, good, IDENT_PUT_UPSERT), PL_ENOTFOUND);
  assert_int_equal(put(f, f->a, "88.118.2/missing", NULL, good, IDENT_PUT_REPLACE), PL_ENOTFOUND);
  /* Bad values. */
  static const char *const bad[] = {
      "[{\"index\":1,\"type\":\"URL\",\"data\":\"not a url\"}]",
      "[{\"index\":1,\"type\":\"EMAIL\",\"data\":\"nobody\"}]",
      "[{\"index\":1,\"type\":\"HS_ADMIN\",\"data\":\"x\"}]",
      "[{\"index\":1,\"type\":\"HS_ALIAS\",\"data\":\"noslash\"}]",
      "[{\"index\":1,\"type\":\"A\",\"data\":\"x\"},{\"index\":1,\"type\":\"B\",\"data\":\"y\"}]",
      "[{\"index\":0,\"type\":\"A\",\"data\":\"x\"}]",
      "[{\"index\":1,\"type\":\"\",\"data\":\"x\"}]",
      "[{\"index\":1,\"type\":\"A\",\"data\":{\"format\":\"base64\",\"value\":\"!!\"}}]",
      "[{\"index\":1,\"type\":\"A\",\"data\":\"x\",\"extra\":1}]",
      "[{\"index\":1,\"type\":\"A\",\"data\":\"x\",\"ttl\":-1}]",
      "[{\"index\":1,\"type\":\"GS1\",\"data\":\"/01/09506000134353\"}]",
      "{\"index\":1}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(put(f, f->a, "88.118.2/bad", NULL, bad[i], 0), PL_EINVAL);

  /* Resolution: anonymous sees public values only; the owner sees restricted ones too. */
  ident_result res;
  ident_result_init(&res);
  ident_query q = {{(const uint8_t *)"88.118.2/lot-1", 14}, NULL, 0, NULL, 0, 0, 0, 0, 1};
  assert_int_equal(ident_resolve(f->id, f->db, &q, &res), 0);
  assert_int_equal(res.rc, HDL_RC_SUCCESS);
  assert_int_equal(res.nvalues, 6);
  assert_string_equal(res.source, "local");
  q.reader_tenant = f->a;
  assert_int_equal(ident_resolve(f->id, f->db, &q, &res), 0);
  assert_int_equal(res.nvalues, 7);
  q.public_only = 1;
  assert_int_equal(ident_resolve(f->id, f->db, &q, &res), 0);
  assert_int_equal(res.nvalues, 6);
  q.reader_tenant = f->b; /* another tenant is anonymous for restricted values */
  q.public_only = 0;
  assert_int_equal(ident_resolve(f->id, f->db, &q, &res), 0);
  assert_int_equal(res.nvalues, 6);
  /* Filters: type with subtypes, and index. */
  hdl_str types[] = {{(const uint8_t *)"URL.", 4}};
  q.types = types;
  q.ntypes = 1;
  assert_int_equal(ident_resolve(f->id, f->db, &q, &res), 0);
  assert_int_equal(res.nvalues, 2);
  uint32_t idx[] = {100};
  q.indexes = idx;
  q.nindexes = 1;
  assert_int_equal(ident_resolve(f->id, f->db, &q, &res), 0);
  assert_int_equal(res.nvalues, 3);
  hdl_str none[] = {{(const uint8_t *)"NOPE", 4}};
  q.types = none;
  q.nindexes = 0;
  assert_int_equal(ident_resolve(f->id, f->db, &q, &res), 0);
  assert_int_equal(res.rc, HDL_RC_VALUE_NOT_FOUND);
  /* Not found under a held prefix; a prefix not held with no parent configured. */
  ident_query q2 = {{(const uint8_t *)"88.118.2/nope", 13}, NULL, 0, NULL, 0, 0, 0, 0, 0};
  assert_int_equal(ident_resolve(f->id, f->db, &q2, &res), 0);
  assert_int_equal(res.rc, HDL_RC_HANDLE_NOT_FOUND);
  ident_query q3 = {{(const uint8_t *)"77.1/nope", 9}, NULL, 0, NULL, 0, 0, 0, 0, 0};
  assert_int_equal(ident_resolve(f->id, f->db, &q3, &res), 0);
  assert_int_equal(res.rc, HDL_RC_HANDLE_NOT_FOUND);
  assert_non_null(strstr(res.message, "not held"));
  ident_result_free(&res);

  /* Delete: only the owner. */
  assert_int_equal(ident_handle_delete(&f->ctx, f->b, "88.118.2/lot-1", &err), PL_ENOTFOUND);
  assert_int_equal(ident_handle_delete(&f->ctx, f->a, "88.118.2/lot-1", &err), 0);
  /* A prefix with identifiers cannot be deleted. */
  assert_int_equal(put(f, f->a, "88.118.2/keep", NULL, "[]", 0), 0);
  assert_int_equal(store_prefix_get(f->db, "88.118.2", 8, &p), 0);
  assert_int_equal(ident_prefix_delete(&f->ctx, &p, &err), PL_ECONFLICT);
}

static void test_templates_and_gs1(void **state) {
  fixture *f = *state;
  pl_err err = {{0}};
  store_prefix p;
  assert_int_equal(ident_prefix_create(&f->ctx, f->a, "88.118.4", 1, &p, &err), 0);
  json_t *fields = vals("[{\"name\":\"name\",\"required\":true},{\"name\":\"GTIN\",\"required\":"
                        "true,\"format\":\"gtin\"},"
                        "{\"name\":\"production_date\",\"format\":\"date\"}]");
  assert_int_equal(ident_template_check_fields(fields, &err), 0);
  store_template t = {0};
  t.tenant_id = f->a;
  snprintf(t.name, sizeof t.name, "product");
  t.fields_json = json_dumps(fields, JSON_COMPACT);
  assert_int_equal(store_template_put(f->db, &t), 0);
  free(t.fields_json);
  json_decref(fields);
  json_t *badf = vals("[{\"name\":\"x\",\"format\":\"colour\"}]");
  assert_int_equal(ident_template_check_fields(badf, &err), PL_EINVAL);
  json_decref(badf);
  assert_int_equal(put(f, f->a, "88.118.4/p1", "product",
                       "[{\"index\":1,\"type\":\"name\",\"data\":\"Spring water 500 ml\"},"
                       "{\"index\":2,\"type\":\"GTIN\",\"data\":\"09506000134352\"},"
                       "{\"index\":3,\"type\":\"production_date\",\"data\":\"2026-11-29\"},"
                       "{\"index\":4,\"type\":\"GS1\",\"data\":\"https://id.example.com/01/"
                       "09506000134352/10/L1\"}]",
                       0),
                   0);
  assert_int_equal(
      put(f, f->a, "88.118.4/p2", "product", "[{\"index\":1,\"type\":\"name\",\"data\":\"x\"}]", 0),
      PL_EINVAL);
  assert_int_equal(put(f, f->a, "88.118.4/p3", "product",
                       "[{\"index\":1,\"type\":\"name\",\"data\":\"x\"},{\"index\":2,\"type\":"
                       "\"GTIN\",\"data\":\"09506000134353\"}]",
                       0),
                   PL_EINVAL);
  assert_int_equal(put(f, f->a, "88.118.4/p4", "nosuch", "[]", 0), PL_EINVAL);
  /* The GS1 key maps to the identifier; a second identifier cannot take it. */
  assert_int_equal(put(f, f->a, "88.118.4/p5", NULL,
                       "[{\"index\":1,\"type\":\"GS1\",\"data\":\"/01/09506000134352/10/L1\"}]", 0),
                   PL_EEXIST);
  assert_int_equal(store_handle_lookup(f->db, "88.118.4/p5", 11, NULL, NULL), PL_ENOTFOUND);
}

static int found_handle(void *ctx, const store_handle *h) {
  snprintf(ctx, 64, "%s", h->handle);
  return 0;
}

static void test_gs1_lookup(void **state) {
  fixture *f = *state;
  test_templates_and_gs1(state);
  char got[64] = "";
  assert_int_equal(store_gs1_lookup(f->db, "/01/09506000134352/10/L1", found_handle, got), 0);
  assert_string_equal(got, "88.118.4/p1");
  assert_int_equal(store_gs1_lookup(f->db, "/01/09506000134352", found_handle, got), PL_ENOTFOUND);
}

static void test_bulk(void **state) {
  fixture *f = *state;
  pl_err err = {{0}};
  store_prefix p;
  assert_int_equal(ident_prefix_create(&f->ctx, f->a, "88.118.5", 1, &p, &err), 0);
  assert_int_equal(ident_prefix_create(&f->ctx, f->b, "88.118.6", 1, &p, &err), 0);
  ident_bulk *b;
  assert_int_equal(ident_bulk_begin(&f->ctx, f->a, NULL, &b, &err), 0);
  assert_int_equal(ident_bulk_add_csv(b, "handle,name,URL", 15), 0);
  int64_t t0 = pl_mono_ns();
  char line[200];
  for (int i = 0; i < 20000; i++) {
    int n = snprintf(line, sizeof line, "88.118.5/SN%06d,\"Bottle, 500 ml\",https://example.com/%d",
                     i, i);
    int rc = ident_bulk_add_csv(b, line, (size_t)n);
    assert_int_equal(rc, 0);
  }
  double secs = (double)(pl_mono_ns() - t0) / 1e9;
  fprintf(stderr, "bulk: 20000 rows in %.3f s (%.0f rows/s, sanitized build)\n", secs,
          20000 / secs);
  assert_true(ident_bulk_add_csv(b, "88.118.6/x,a,https://e/x", 24) ==
              PL_EPERM); /* another tenant's */
  assert_true(ident_bulk_add_csv(b, "88.118.5/SN000001,a,https://e/x", 31) == PL_EEXIST);
  assert_true(ident_bulk_add_csv(b, "88.118.5/y,a,not-a-url", 22) == PL_EINVAL);
  assert_true(ident_bulk_add_csv(b, "88.118.5/z,a", 12) == PL_EINVAL); /* columns */
  json_t *row = vals("{\"handle\":\"88.118.5/j1\",\"fields\":{\"name\":\"x\"}}");
  assert_int_equal(ident_bulk_add_json(b, row), 0);
  json_decref(row);
  ident_bulk_report rep;
  assert_int_equal(ident_bulk_finish(b, &rep, &err), 0);
  assert_int_equal(rep.rows, 20005);
  assert_int_equal(rep.accepted, 20001);
  assert_int_equal(rep.rejected, 4);
  assert_int_equal(json_array_size(rep.errors), 4);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(rep.errors, 0), "row")),
                   20001);
  json_decref(rep.errors);
  assert_int_equal(store_handle_count(f->db, f->a), 20001);
  /* Statistics: registrations counted; resolutions after a flush. */
  ident_result res;
  ident_result_init(&res);
  ident_query q = {{(const uint8_t *)"88.118.5/SN000042", 17}, NULL, 0, NULL, 0, 0, 0, 0, 1};
  assert_int_equal(ident_resolve(f->id, f->db, &q, &res), 0);
  assert_int_equal(res.rc, HDL_RC_SUCCESS);
  q.handle = (hdl_str){(const uint8_t *)"88.118.5/none", 13};
  assert_int_equal(ident_resolve(f->id, f->db, &q, &res), 0);
  ident_result_free(&res);
  assert_int_equal(ident_stats_flush(f->id, f->db), 0);
  int64_t today = ident_day(pl_now_ms());
  struct {
    int64_t res, nf, reg;
  } tot = {0, 0, 0};
  int cb(void *ctx, const store_ident_stat *s);
  assert_true(store_ident_stats_list(f->db, f->a, today, today + 1, cb, &tot) >= 1);
  assert_int_equal(tot.res, 1);
  assert_int_equal(tot.nf, 1);
  assert_int_equal(tot.reg, 20001);
}

int cb(void *ctx, const store_ident_stat *s) {
  int64_t *t = ctx;
  t[0] += s->resolutions;
  t[1] += s->not_found;
  t[2] += s->registrations;
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),
      cmocka_unit_test_setup_teardown(test_prefixes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_values_and_ownership, setup, teardown),
      cmocka_unit_test_setup_teardown(test_templates_and_gs1, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gs1_lookup, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bulk, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
