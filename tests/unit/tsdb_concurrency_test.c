/* Writers, readers, the background flusher and explicit checkpoints at once, on one engine.
 * Run under ThreadSanitizer by `make test` (the tsan step) as well as under ASan; afterwards
 * every acknowledged point must be readable with its value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tsdb/tsdb.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEC 1000000000LL
#define T0 (1764396000LL * SEC)
#define WRITERS 2
#define READERS 2
#define DEVICES 20
#define ROWS_PER_WRITER 3000
#define BATCH 50

typedef struct shared {
  tsdb *db;
  atomic_int writers_done;
  atomic_long reads;
  atomic_int failures;
} shared;

typedef struct writer_arg {
  shared *sh;
  int id;
} writer_arg;

static void *writer(void *p) {
  writer_arg *a = p;
  char names[DEVICES][16];
  for (int d = 0; d < DEVICES; d++) snprintf(names[d], sizeof names[d], "w%d-d%d", a->id, d);
  tsdb_tag tags[BATCH];
  tsdb_field fields[BATCH][2];
  tsdb_row rows[BATCH];
  for (int base = 0; base < ROWS_PER_WRITER; base += BATCH) {
    for (int k = 0; k < BATCH; k++) {
      int i = base + k, d = i % DEVICES;
      tags[k] = (tsdb_tag){{"device", 6}, {names[d], strlen(names[d])}};
      /* Row i of device d is at second i / DEVICES: ten minutes of data per device, crossing
       * no partition boundary twice. */
      fields[k][0] = (tsdb_field){{"v", 1}, {.type = TSDB_FLOAT, .v.f = i}};
      fields[k][1] = (tsdb_field){{"n", 1}, {.type = TSDB_INT, .v.i = i}};
      rows[k] = (tsdb_row){{"device", 6}, &tags[k], 1, T0 + (int64_t)(i / DEVICES) * SEC, fields[k], 2};
    }
    pl_err err;
    if (tsdb_write(a->sh->db, 1, rows, BATCH, NULL, &err) < 0) atomic_fetch_add(&a->sh->failures, 1);
  }
  atomic_fetch_add(&a->sh->writers_done, 1);
  return NULL;
}

static int count_group(void *ctx, const tsdb_group_info *g) {
  (void)g;
  (*(int *)ctx)++;
  return 0;
}

static void *reader(void *p) {
  shared *sh = p;
  tsdb_points pts;
  tsdb_points_init(&pts);
  tsdb_buckets b = {0};
  while (atomic_load(&sh->writers_done) < WRITERS) {
    int n = 0;
    tsdb_groups(sh->db, 1, (tsdb_str){"device", 6}, count_group, &n);
    for (uint64_t id = 1; id <= (uint64_t)n; id++) {
      if (tsdb_read(sh->db, 1, id, "v", INT64_MIN, INT64_MAX, 0, 0, &pts) == 0) {
        for (size_t k = 1; k < pts.n; k++)
          if (pts.ts[k] <= pts.ts[k - 1]) atomic_fetch_add(&sh->failures, 1);
      }
      tsdb_agg_spec spec = {.start_ns = T0, .end_ns = T0 + 3600 * SEC, .bucket_ns = 60 * SEC,
                            .aggs = TSDB_AGG_COUNT | TSDB_AGG_MAX};
      tsdb_aggregate(sh->db, 1, id, "n", &spec, &b);
      atomic_fetch_add(&sh->reads, 1);
    }
  }
  tsdb_points_free(&pts);
  tsdb_buckets_free(&b);
  return NULL;
}

static void *checkpointer(void *p) {
  shared *sh = p;
  while (atomic_load(&sh->writers_done) < WRITERS) {
    tsdb_checkpoint(sh->db);
    usleep(20000);
  }
  return NULL;
}

static void test_concurrent(void **state) {
  (void)state;
  char dir[] = "/tmp/plateau-tsdbc-XXXXXX";
  assert_non_null(mkdtemp(dir));
  /* Small heads so the flusher cuts often while writers write. */
  tsdb_opts o = {.dir = dir, .fsync_set = 1, .fsync = TSDB_FSYNC_NEVER, .head_rows_max = 64, .background = 1};
  shared sh = {0};
  pl_err err = {{0}};
  assert_int_equal(tsdb_open(&o, &sh.db, &err), 0);
  pthread_t w[WRITERS], r[READERS], c;
  writer_arg wa[WRITERS];
  for (int i = 0; i < WRITERS; i++) {
    wa[i] = (writer_arg){&sh, i};
    pthread_create(&w[i], NULL, writer, &wa[i]);
  }
  for (int i = 0; i < READERS; i++) pthread_create(&r[i], NULL, reader, &sh);
  pthread_create(&c, NULL, checkpointer, &sh);
  for (int i = 0; i < WRITERS; i++) pthread_join(w[i], NULL);
  for (int i = 0; i < READERS; i++) pthread_join(r[i], NULL);
  pthread_join(c, NULL);
  assert_int_equal(atomic_load(&sh.failures), 0);
  assert_true(atomic_load(&sh.reads) > 0);
  /* Every point, with its value, after a restart. */
  tsdb_close(sh.db);
  o.background = 0;
  assert_int_equal(tsdb_open(&o, &sh.db, &err), 0);
  tsdb_points pts;
  tsdb_points_init(&pts);
  for (int wr = 0; wr < WRITERS; wr++)
    for (int d = 0; d < DEVICES; d++) {
      char name[16];
      snprintf(name, sizeof name, "w%d-d%d", wr, d);
      tsdb_tag tag = {{"device", 6}, {name, strlen(name)}};
      uint64_t id;
      assert_int_equal(tsdb_group_find(sh.db, 1, (tsdb_str){"device", 6}, &tag, 1, &id), 0);
      assert_int_equal(tsdb_read(sh.db, 1, id, "n", INT64_MIN, INT64_MAX, 0, 0, &pts), 0);
      assert_int_equal(pts.n, ROWS_PER_WRITER / DEVICES);
      for (size_t k = 0; k < pts.n; k++) assert_true(pts.i[k] == (int64_t)(k * DEVICES + (size_t)d));
    }
  tsdb_points_free(&pts);
  tsdb_close(sh.db);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_concurrent)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
