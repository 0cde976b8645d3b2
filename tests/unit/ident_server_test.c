/* Unit tests for the Handle server and client in one process (also run under ThreadSanitizer):
 * two servers on loopback, the second with the first as its parent; clients on several threads
 * resolve over UDP and TCP, locally and recursively, while the statistics are flushed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/clock.h"
#include "ident/ident.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct node {
  char dir[256], db_path[512];
  store *db;
  ident *id;
  ident_server *srv;
  char hostport[64];
} node;

static void node_start(node *n, const char *parents, const char *prefix, int64_t *tenant_out) {
  snprintf(n->dir, sizeof n->dir, "/tmp/ident_server_test_%d_XXXXXX", getpid());
  assert_non_null(mkdtemp(n->dir));
  snprintf(n->db_path, sizeof n->db_path, "%s/meta.db", n->dir);
  pl_err err = {{0}};
  assert_int_equal(store_open(n->db_path, &n->db, &err), 0);
  store_tenant t = {0};
  snprintf(t.name, sizeof t.name, "t");
  assert_int_equal(store_tenant_create(n->db, &t), 0);
  *tenant_out = t.id;
  ident_opts o = {parents, 1000, 60000000000LL, 1000000000LL, 4, 1000000000LL, NULL, NULL};
  assert_int_equal(ident_new(&o, &n->id, &err), 0);
  ident_ctx c = {n->db, NULL, "test", "cli", ""};
  assert_int_equal(ident_prefix_create(&c, t.id, prefix, 1, NULL, &err), 0);
  assert_int_equal(ident_server_start(n->id, n->db_path, "127.0.0.1:0", 8080, &n->srv, &err), 0);
  snprintf(n->hostport, sizeof n->hostport, "127.0.0.1:%d", ident_server_port(n->srv));
}

static void node_stop(node *n) {
  ident_server_stop(n->srv);
  ident_free(n->id);
  store_close(n->db);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", n->dir);
  assert_int_equal(system(cmd), 0);
}

typedef struct worker {
  const char *hostport;
  const char *handle;
  int tcp;
  int ok;
} worker;

static void *client(void *arg) {
  worker *w = arg;
  for (int i = 0; i < 50; i++) {
    ident_result res;
    ident_result_init(&res);
    hdl_request_opts o = {(uint32_t)(i + 1), HDL_OF_REC, 0, NULL, 0, NULL, 0};
    pl_err err = {{0}};
    int rc = ident_client_resolve(
        w->hostport, w->tcp, (hdl_str){(const uint8_t *)w->handle, (uint32_t)strlen(w->handle)}, &o,
        5000000000LL, &res, &err);
    if (rc == 0 && res.rc == HDL_RC_SUCCESS && res.nvalues == 30)
      w->ok++;
    ident_result_free(&res);
  }
  return NULL;
}

static void test_two_servers(void **state) {
  (void)state;
  node up, down;
  int64_t t_up, t_down;
  node_start(&up, NULL, "88.118", &t_up);
  /* 30 values: the UDP answer comes in chunks. */
  json_t *vals = json_array();
  for (int i = 1; i <= 30; i++) {
    char data[100];
    snprintf(data, sizeof data, "%04d-%s", i, "0123456789012345678901234567890123456789");
    json_array_append_new(vals,
                          json_pack("{s:i, s:s, s:s}", "index", i, "type", "DESC", "data", data));
  }
  ident_ctx c = {up.db, NULL, "test", "cli", ""};
  pl_err err = {{0}};
  int created;
  assert_int_equal(ident_handle_put(&c, t_up, "88.118/many", NULL, vals, 0, &created, &err), 0);
  node_start(&down, up.hostport, "88.118.7", &t_down);
  ident_ctx c2 = {down.db, NULL, "test", "cli", ""};
  assert_int_equal(ident_handle_put(&c2, t_down, "88.118.7/many", NULL, vals, 0, &created, &err),
                   0);
  json_decref(vals);

  worker w[6] = {{down.hostport, "88.118.7/many", 0, 0}, {down.hostport, "88.118.7/many", 1, 0},
                 {down.hostport, "88.118/many", 0, 0},   {down.hostport, "88.118/many", 1, 0},
                 {up.hostport, "88.118/many", 0, 0},     {up.hostport, "88.118/many", 1, 0}};
  pthread_t th[6];
  for (int i = 0; i < 6; i++)
    assert_int_equal(pthread_create(&th[i], NULL, client, &w[i]), 0);
  for (int k = 0; k < 5; k++) {
    ident_stats_flush(down.id, down.db);
    usleep(10000);
  }
  for (int i = 0; i < 6; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(w[i].ok, 50);
  }
  /* The downstream node answered the upstream's handle once from its parent, then from the cache.
   */
  int64_t entries, hits, misses;
  ident_cache_stats(down.id, &entries, &hits, &misses);
  assert_int_equal(entries, 1);
  assert_true(hits >= 90);
  /* GET_SITEINFO through the client. */
  pl_buf si;
  pl_buf_init(&si, 0);
  assert_int_equal(ident_client_siteinfo(down.hostport, 1, 2000000000LL, &si, &err), 0);
  hdl_site_server sv;
  assert_int_equal(hdl_siteinfo_decode_first(si.data, si.len, &sv, NULL), 0);
  assert_int_equal(sv.tcp_port, ident_server_port(down.srv));
  assert_int_equal(sv.http_port, 8080);
  pl_buf_free(&si);
  node_stop(&down);
  node_stop(&up);
}

/* A background bulk registration, followed while it runs (ThreadSanitizer watches the job
 * thread's counters against the reader). */
static void test_bulk_job(void **state) {
  (void)state;
  node n;
  int64_t tenant;
  node_start(&n, NULL, "88.119", &tenant);
  pl_buf body;
  pl_buf_init(&body, 0);
  pl_buf_append_str(&body, "handle,DESC\n");
  for (int i = 0; i < 5000; i++)
    pl_buf_printf(&body, "88.119/B%05d,bottle %d\n", i, i);
  pl_buf_append_str(&body, "88.120/x,not held here\n");
  size_t len = 0;
  uint8_t *data = pl_buf_steal(&body, &len);
  ident_bulk_job_opts o = {n.db_path, NULL, "test", "cli", "", tenant, NULL, IDENT_BULK_CSV};
  int64_t job = 0;
  pl_err err = {{0}};
  assert_int_equal(ident_bulk_submit(n.id, &o, data, len, &job, &err), 0);
  assert_null(ident_bulk_job_json(n.id, tenant + 1, job));
  json_t *st = NULL;
  for (int k = 0; k < 3000; k++) {
    json_decref(st);
    st = ident_bulk_job_json(n.id, tenant, job);
    assert_non_null(st);
    if (strcmp(json_string_value(json_object_get(st, "state")), "running") != 0)
      break;
    usleep(2000);
  }
  assert_string_equal(json_string_value(json_object_get(st, "state")), "done");
  assert_int_equal(json_integer_value(json_object_get(st, "accepted")), 5000);
  assert_int_equal(json_integer_value(json_object_get(st, "rejected")), 1);
  assert_int_equal(json_integer_value(json_object_get(st, "bytes_done")), (json_int_t)len);
  json_decref(st);
  assert_int_equal(store_handle_count(n.db, tenant), 5000);
  node_stop(&n);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_two_servers),
                                     cmocka_unit_test(test_bulk_job)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
