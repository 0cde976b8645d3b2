/* Unit tests for the time-series engine: write and read back, replacement at equal times,
 * out-of-order points, type conflicts leaving nothing behind, recovery from the WAL and from
 * chunks, aggregates against a naive computation, fill modes, latest values, deletion,
 * retention and compaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tsdb/tsdb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEC 1000000000LL
#define T0 (1764396000LL * SEC) /* an hour boundary */

typedef struct fixture {
  char dir[64];
  tsdb *db;
} fixture;

static tsdb *open_db(const char *dir) {
  tsdb_opts o = {.dir = dir, .fsync_set = 1, .fsync = TSDB_FSYNC_NEVER};
  tsdb *db = NULL;
  pl_err err = {{0}};
  int rc = tsdb_open(&o, &db, &err);
  if (rc < 0) fail_msg("tsdb_open: %s (%s)", pl_strerror(rc), err.msg);
  return db;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/plateau-tsdb-XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  f->db = open_db(f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  tsdb_close(f->db);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
  if (system(cmd) != 0) return -1;
  free(f);
  return 0;
}

static void reopen(fixture *f) {
  tsdb_close(f->db);
  f->db = open_db(f->dir);
}

#define S(x) ((tsdb_str){x, sizeof(x) - 1})

static tsdb_str str(const char *s) {
  return (tsdb_str){s, strlen(s)};
}

/* Writes one float field of device `dev` at ts. */
static int put(tsdb *db, int64_t tenant, const char *dev, const char *field, int64_t ts, double v) {
  tsdb_tag tag = {S("device"), str(dev)};
  tsdb_field fd = {str(field), {.type = TSDB_FLOAT, .v.f = v}};
  tsdb_row row = {S("device"), &tag, 1, ts, &fd, 1};
  pl_err err;
  return tsdb_write(db, tenant, &row, 1, NULL, &err);
}

static uint64_t gid(tsdb *db, int64_t tenant, const char *dev) {
  tsdb_tag tag = {S("device"), str(dev)};
  uint64_t id = 0;
  assert_int_equal(tsdb_group_find(db, tenant, S("device"), &tag, 1, &id), 0);
  return id;
}

static void test_write_read(void **state) {
  fixture *f = *state;
  tsdb_tag tags[2] = {{S("line"), S("1")}, {S("device"), S("filler")}};
  tsdb_field fields[4] = {
      {S("pressure"), {.type = TSDB_FLOAT, .v.f = 3.125}},
      {S("bottles"), {.type = TSDB_INT, .v.i = INT64_MAX}},
      {S("running"), {.type = TSDB_BOOL, .v.b = 1}},
      {S("state"), {.type = TSDB_STRING, .v.s = S("filling")}},
  };
  tsdb_row row = {S("line"), tags, 2, T0 + 1, fields, 4};
  tsdb_write_stats st;
  pl_err err;
  assert_int_equal(tsdb_write(f->db, 1, &row, 1, &st, &err), 0);
  assert_int_equal(st.points, 4);
  assert_int_equal(st.series_created, 4);
  /* Tags in another order name the same group. */
  tsdb_tag swapped[2] = {tags[1], tags[0]};
  uint64_t id = 0;
  assert_int_equal(tsdb_group_find(f->db, 1, S("line"), swapped, 2, &id), 0);
  tsdb_points p;
  tsdb_points_init(&p);
  for (int pass = 0; pass < 3; pass++) {
    assert_int_equal(tsdb_read(f->db, 1, id, "pressure", T0, T0 + SEC, 0, 0, &p), 0);
    assert_int_equal(p.n, 1);
    assert_true(p.f[0] == 3.125 && p.ts[0] == T0 + 1);
    assert_int_equal(tsdb_read(f->db, 1, id, "bottles", T0, T0 + SEC, 0, 0, &p), 0);
    assert_true(p.type == TSDB_INT && p.i[0] == INT64_MAX);
    assert_int_equal(tsdb_read(f->db, 1, id, "running", T0, T0 + SEC, 0, 0, &p), 0);
    assert_true(p.type == TSDB_BOOL && p.b[0] == 1);
    assert_int_equal(tsdb_read(f->db, 1, id, "state", T0, T0 + SEC, 0, 0, &p), 0);
    assert_true(p.type == TSDB_STRING && p.slen[0] == 7 && memcmp(p.s[0], "filling", 7) == 0);
    /* pass 1: after replay from the WAL; pass 2: from chunks */
    if (pass == 0) reopen(f);
    if (pass == 1) {
      assert_int_equal(tsdb_checkpoint(f->db), 0);
      reopen(f);
    }
  }
  /* Another tenant sees nothing. */
  assert_int_equal(tsdb_read(f->db, 2, id, "pressure", T0, T0 + SEC, 0, 0, &p), PL_ENOTFOUND);
  assert_int_equal(tsdb_group_find(f->db, 2, S("line"), tags, 2, &id), PL_ENOTFOUND);
  tsdb_points_free(&p);
}

static void test_replace_and_out_of_order(void **state) {
  fixture *f = *state;
  /* 100 points at 1 s, written in a shuffled order, some twice with new values. */
  for (int i = 99; i >= 0; i -= 2) assert_int_equal(put(f->db, 1, "p", "v", T0 + i * SEC, i), 0);
  for (int i = 0; i < 100; i += 2) assert_int_equal(put(f->db, 1, "p", "v", T0 + i * SEC, i), 0);
  for (int i = 0; i < 100; i += 10) assert_int_equal(put(f->db, 1, "p", "v", T0 + i * SEC, -i), 0);
  uint64_t id = gid(f->db, 1, "p");
  tsdb_points p;
  tsdb_points_init(&p);
  for (int pass = 0; pass < 2; pass++) {
    assert_int_equal(tsdb_read(f->db, 1, id, "v", INT64_MIN, INT64_MAX, 0, 0, &p), 0);
    assert_int_equal(p.n, 100);
    for (int i = 0; i < 100; i++) {
      assert_true(p.ts[i] == T0 + i * SEC);
      assert_true(p.f[i] == (i % 10 == 0 ? -i : i));
    }
    assert_int_equal(tsdb_checkpoint(f->db), 0);
  }
  /* A late point into flushed data overlaps a chunk; the newer value still wins. */
  assert_int_equal(put(f->db, 1, "p", "v", T0 + 5 * SEC, 555), 0);
  assert_int_equal(tsdb_read(f->db, 1, id, "v", T0 + 5 * SEC, T0 + 6 * SEC, 0, 0, &p), 0);
  assert_int_equal(p.n, 1);
  assert_true(p.f[0] == 555);
  assert_int_equal(tsdb_checkpoint(f->db), 0);
  reopen(f);
  assert_int_equal(tsdb_read(f->db, 1, id, "v", INT64_MIN, INT64_MAX, 0, 0, &p), 0);
  assert_int_equal(p.n, 100);
  assert_true(p.f[5] == 555);
  /* Limits: newest 3, oldest 3. */
  assert_int_equal(tsdb_read(f->db, 1, id, "v", INT64_MIN, INT64_MAX, 3, 1, &p), 0);
  assert_int_equal(p.n, 3);
  assert_true(p.ts[2] == T0 + 99 * SEC);
  assert_int_equal(tsdb_read(f->db, 1, id, "v", INT64_MIN, INT64_MAX, 3, 0, &p), 0);
  assert_true(p.ts[0] == T0 && p.n == 3);
  /* Beyond the out-of-order window (1 h) a point is refused. */
  assert_int_equal(put(f->db, 1, "p", "v", T0 + 99 * SEC - 2 * 3600 * SEC, 1), PL_EINVAL);
  tsdb_points_free(&p);
}

static void test_conflict_is_atomic(void **state) {
  fixture *f = *state;
  assert_int_equal(put(f->db, 1, "a", "t", T0, 1.5), 0);
  /* A batch whose last row conflicts writes nothing, creates no series. */
  tsdb_tag tb = {S("device"), S("b")}, ta = {S("device"), S("a")};
  tsdb_field fb = {S("t"), {.type = TSDB_FLOAT, .v.f = 2}}, fa = {S("t"), {.type = TSDB_INT, .v.i = 2}};
  tsdb_row rows[2] = {{S("device"), &tb, 1, T0, &fb, 1}, {S("device"), &ta, 1, T0 + 1, &fa, 1}};
  pl_err err;
  assert_int_equal(tsdb_write(f->db, 1, rows, 2, NULL, &err), PL_ECONFLICT);
  assert_non_null(strstr(err.msg, "row 1"));
  uint64_t id;
  assert_int_equal(tsdb_group_find(f->db, 1, S("device"), &tb, 1, &id), PL_ENOTFOUND);
  tsdb_info info;
  tsdb_info_get(f->db, 1, &info);
  assert_int_equal(info.groups, 1);
  assert_int_equal(info.points_in_heads, 1);
  /* Bad names are refused. */
  tsdb_tag dup[2] = {{S("k"), S("1")}, {S("k"), S("2")}};
  tsdb_row bad = {S("m"), dup, 2, T0, &fb, 1};
  assert_int_equal(tsdb_write(f->db, 1, &bad, 1, NULL, &err), PL_EINVAL);
  tsdb_row empty = {S(""), NULL, 0, T0, &fb, 1};
  assert_int_equal(tsdb_write(f->db, 1, &empty, 1, NULL, &err), PL_EINVAL);
  tsdb_field badutf = {{"\xff", 1}, {.type = TSDB_FLOAT, .v.f = 1}};
  tsdb_row r3 = {S("m"), NULL, 0, T0, &badutf, 1};
  assert_int_equal(tsdb_write(f->db, 1, &r3, 1, NULL, &err), PL_EINVAL);
  reopen(f);
  assert_int_equal(tsdb_group_find(f->db, 1, S("device"), &tb, 1, &id), PL_ENOTFOUND);
}

/* Aggregates over random data, checked against a direct computation. */
static void test_aggregate(void **state) {
  fixture *f = *state;
  enum { N = 5000 };
  static double vals[N];
  srand(7);
  for (int i = 0; i < N; i++) {
    vals[i] = (rand() % 10000) / 100.0;
    assert_int_equal(put(f->db, 1, "agg", "x", T0 + i * 2 * SEC, vals[i]), 0);
  }
  uint64_t id = gid(f->db, 1, "agg");
  for (int pass = 0; pass < 2; pass++) {
    int64_t w = 60 * SEC;
    tsdb_agg_spec spec = {.start_ns = T0, .end_ns = T0 + N * 2 * SEC, .bucket_ns = w,
                          .aggs = TSDB_AGG_COUNT | TSDB_AGG_SUM | TSDB_AGG_MEAN | TSDB_AGG_MIN | TSDB_AGG_MAX |
                                  TSDB_AGG_FIRST | TSDB_AGG_LAST,
                          .fill = TSDB_FILL_NONE};
    tsdb_buckets b = {0};
    assert_int_equal(tsdb_aggregate(f->db, 1, id, "x", &spec, &b), 0);
    assert_int_equal(b.n, (N * 2 + 59) / 60);
    for (size_t k = 0; k < b.n; k++) {
      int lo = (int)(k * 30), hi = lo + 30 < N ? lo + 30 : N;
      double sum = 0, mn = INFINITY, mx = -INFINITY;
      for (int i = lo; i < hi; i++) sum += vals[i], mn = fmin(mn, vals[i]), mx = fmax(mx, vals[i]);
      assert_true(b.b[k].start_ns == T0 + (int64_t)k * w);
      assert_int_equal(b.b[k].count, hi - lo);
      assert_true(fabs(b.b[k].sum - sum) < 1e-6);
      assert_true(b.b[k].min == mn && b.b[k].max == mx);
      assert_true(b.b[k].first == vals[lo] && b.b[k].last == vals[hi - 1]);
    }
    /* One bucket over everything: stddev, median, percentile need the points. */
    tsdb_agg_spec all = {.start_ns = T0, .end_ns = T0 + N * 2 * SEC,
                         .aggs = TSDB_AGG_COUNT | TSDB_AGG_STDDEV | TSDB_AGG_MEDIAN | TSDB_AGG_PERCENTILE,
                         .percentile = 90};
    assert_int_equal(tsdb_aggregate(f->db, 1, id, "x", &all, &b), 0);
    assert_int_equal(b.n, 1);
    double mean = 0, m2 = 0;
    for (int i = 0; i < N; i++) mean += vals[i];
    mean /= N;
    for (int i = 0; i < N; i++) m2 += (vals[i] - mean) * (vals[i] - mean);
    assert_true(fabs(b.b[0].stddev - sqrt(m2 / (N - 1))) < 1e-9);
    static double sorted[N];
    memcpy(sorted, vals, sizeof vals);
    for (int i = 1; i < N; i++)
      for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
        double t = sorted[j];
        sorted[j] = sorted[j - 1];
        sorted[j - 1] = t;
      }
    assert_true(b.b[0].median == (sorted[N / 2 - 1] + sorted[N / 2]) / 2);
    assert_true(b.b[0].percentile == sorted[(int)floor(N * 0.9 + 0.5) - 1]);
    tsdb_buckets_free(&b);
    /* pass 2: from chunks, where whole-chunk statistics answer hour buckets */
    assert_int_equal(tsdb_checkpoint(f->db), 0);
  }
  tsdb_agg_spec hours = {.start_ns = T0, .end_ns = T0 + 3 * 3600 * SEC, .bucket_ns = 3600 * SEC,
                         .aggs = TSDB_AGG_COUNT | TSDB_AGG_MAX};
  tsdb_buckets b = {0};
  assert_int_equal(tsdb_aggregate(f->db, 1, id, "x", &hours, &b), 0);
  assert_int_equal(b.n, 3);
  assert_int_equal(b.b[0].count, 1800);
  assert_int_equal(b.b[2].count, N - 3600);
  tsdb_buckets_free(&b);
}

static void test_fill(void **state) {
  fixture *f = *state;
  /* Values at minutes 0 and 4; minutes 1-3 empty. */
  assert_int_equal(put(f->db, 1, "g", "v", T0, 10), 0);
  assert_int_equal(put(f->db, 1, "g", "v", T0 + 240 * SEC, 50), 0);
  uint64_t id = gid(f->db, 1, "g");
  tsdb_agg_spec spec = {.start_ns = T0, .end_ns = T0 + 300 * SEC, .bucket_ns = 60 * SEC, .aggs = TSDB_AGG_MEAN};
  tsdb_buckets b = {0};
  spec.fill = TSDB_FILL_NONE;
  assert_int_equal(tsdb_aggregate(f->db, 1, id, "v", &spec, &b), 0);
  assert_int_equal(b.n, 2);
  spec.fill = TSDB_FILL_NULL;
  assert_int_equal(tsdb_aggregate(f->db, 1, id, "v", &spec, &b), 0);
  assert_int_equal(b.n, 5);
  assert_false(b.b[2].present);
  assert_true(isnan(b.b[2].mean));
  spec.fill = TSDB_FILL_PREVIOUS;
  assert_int_equal(tsdb_aggregate(f->db, 1, id, "v", &spec, &b), 0);
  assert_true(b.b[3].mean == 10);
  spec.fill = TSDB_FILL_LINEAR;
  assert_int_equal(tsdb_aggregate(f->db, 1, id, "v", &spec, &b), 0);
  assert_true(b.b[1].mean == 20 && b.b[2].mean == 30 && b.b[3].mean == 40);
  spec.fill = TSDB_FILL_VALUE;
  spec.fill_value = -1;
  assert_int_equal(tsdb_aggregate(f->db, 1, id, "v", &spec, &b), 0);
  assert_true(b.b[1].mean == -1 && b.b[4].mean == 50);
  /* An offset shifts bucket starts. */
  spec.fill = TSDB_FILL_NONE;
  spec.offset_ns = 30 * SEC;
  assert_int_equal(tsdb_aggregate(f->db, 1, id, "v", &spec, &b), 0);
  assert_true(b.b[0].start_ns == T0 - 30 * SEC);
  tsdb_buckets_free(&b);
}

static int latest_cb(void *ctx, tsdb_str field, int64_t ts, const tsdb_value *v) {
  double *out = ctx;
  if (field.len == 1 && field.p[0] == 'a') out[0] = v->v.f, out[1] = (double)(ts - T0) / SEC;
  if (field.len == 1 && field.p[0] == 'b') out[2] = v->v.f;
  return 0;
}

static void test_latest(void **state) {
  fixture *f = *state;
  for (int i = 0; i < 10; i++) assert_int_equal(put(f->db, 1, "l", "a", T0 + i * SEC, i), 0);
  assert_int_equal(put(f->db, 1, "l", "b", T0 + 3 * SEC, 33), 0);
  assert_int_equal(tsdb_checkpoint(f->db), 0);
  assert_int_equal(put(f->db, 1, "l", "a", T0 + 20 * SEC, 20), 0);
  double got[3] = {0};
  assert_int_equal(tsdb_latest(f->db, 1, gid(f->db, 1, "l"), latest_cb, got), 0);
  assert_true(got[0] == 20 && got[1] == 20 && got[2] == 33);
  /* From chunk statistics alone (heads empty), and after a value replaced in a later chunk. */
  assert_int_equal(tsdb_checkpoint(f->db), 0);
  memset(got, 0, sizeof got);
  assert_int_equal(tsdb_latest(f->db, 1, gid(f->db, 1, "l"), latest_cb, got), 0);
  assert_true(got[0] == 20 && got[1] == 20 && got[2] == 33);
  assert_int_equal(put(f->db, 1, "l", "a", T0 + 20 * SEC, 21), 0);
  assert_int_equal(tsdb_checkpoint(f->db), 0);
  memset(got, 0, sizeof got);
  assert_int_equal(tsdb_latest(f->db, 1, gid(f->db, 1, "l"), latest_cb, got), 0);
  assert_true(got[0] == 21 && got[1] == 20);
}

static void test_delete_and_retention(void **state) {
  fixture *f = *state;
  for (int i = 0; i < 7200; i += 10) {
    assert_int_equal(put(f->db, 1, "d1", "v", T0 + i * SEC, i), 0);
    assert_int_equal(put(f->db, 1, "d2", "v", T0 + i * SEC, i), 0);
    assert_int_equal(put(f->db, 2, "d1", "v", T0 + i * SEC, i), 0);
  }
  assert_int_equal(tsdb_checkpoint(f->db), 0);
  for (int i = 7200; i < 7300; i += 10) assert_int_equal(put(f->db, 1, "d1", "v", T0 + i * SEC, i), 0);
  uint64_t d1 = gid(f->db, 1, "d1");
  pl_err err;
  /* A range straddling a chunk boundary and the head. */
  int64_t n = tsdb_delete(f->db, 1, S("device"), d1, T0 + 3000 * SEC, T0 + 7250 * SEC, &err);
  assert_true(n > 0);
  tsdb_points p;
  tsdb_points_init(&p);
  for (int pass = 0; pass < 2; pass++) {
    assert_int_equal(tsdb_read(f->db, 1, d1, "v", INT64_MIN, INT64_MAX, 0, 0, &p), 0);
    assert_int_equal(p.n, 300 + 5);
    for (size_t k = 0; k < p.n; k++) assert_true(p.ts[k] < T0 + 3000 * SEC || p.ts[k] >= T0 + 7250 * SEC);
    reopen(f);
  }
  /* Whole series of a tenant: gone, other tenant untouched. */
  assert_true(tsdb_delete(f->db, 1, (tsdb_str){NULL, 0}, 0, INT64_MIN, INT64_MAX, &err) > 0);
  tsdb_info info;
  tsdb_info_get(f->db, 1, &info);
  assert_int_equal(info.groups, 0);
  reopen(f);
  tsdb_info_get(f->db, 1, &info);
  assert_int_equal(info.groups, 0);
  tsdb_info_get(f->db, 2, &info);
  assert_int_equal(info.points_in_chunks + info.points_in_heads, 720);
  /* Retention drops the points of whole old chunks, keeping their hour rollups. */
  assert_true(tsdb_retention_apply(f->db, 2, 3600 * SEC, T0 + 7200 * SEC + 1) > 0);
  uint64_t t2 = gid(f->db, 2, "d1");
  tsdb_agg_spec hours = {.start_ns = T0, .end_ns = T0 + 7200 * SEC, .bucket_ns = 3600 * SEC,
                         .aggs = TSDB_AGG_COUNT | TSDB_AGG_MAX | TSDB_AGG_MEAN};
  for (int pass = 0; pass < 2; pass++) {
    assert_int_equal(tsdb_read(f->db, 2, t2, "v", INT64_MIN, INT64_MAX, 0, 0, &p), 0);
    assert_int_equal(p.n, 360);
    assert_true(p.ts[0] == T0 + 3600 * SEC);
    tsdb_buckets b = {0};
    assert_int_equal(tsdb_aggregate(f->db, 2, t2, "v", &hours, &b), 0);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.b[0].count, 360); /* from the rollup */
    assert_true(b.b[0].max == 3590 && b.b[0].mean == 1795);
    assert_int_equal(b.b[1].count, 360);
    tsdb_buckets_free(&b);
    tsdb_info_get(f->db, 2, &info);
    assert_int_equal(info.rollups, 1);
    reopen(f);
  }
  /* Deleting the series removes its rollups too. */
  assert_true(tsdb_delete(f->db, 2, S("device"), t2, INT64_MIN, INT64_MAX, &err) > 0);
  reopen(f);
  tsdb_info_get(f->db, 2, &info);
  assert_int_equal(info.rollups + info.chunks + info.groups, 0);
  tsdb_points_free(&p);
}

static void test_compaction(void **state) {
  fixture *f = *state;
  /* Several checkpoints inside one hour make small chunks; a point in the next hour closes it. */
  for (int c = 0; c < 4; c++) {
    for (int i = 0; i < 50; i++) assert_int_equal(put(f->db, 1, "c", "v", T0 + (c * 50 + i) * SEC, c * 50 + i), 0);
    assert_int_equal(tsdb_checkpoint(f->db), 0);
  }
  assert_int_equal(put(f->db, 1, "c", "v", T0 + 3600 * SEC, 1), 0);
  assert_int_equal(tsdb_checkpoint(f->db), 0);
  tsdb_info info;
  tsdb_info_get(f->db, 1, &info);
  assert_int_equal(info.chunks, 2);
  tsdb_points p;
  tsdb_points_init(&p);
  assert_int_equal(tsdb_read(f->db, 1, gid(f->db, 1, "c"), "v", INT64_MIN, INT64_MAX, 0, 0, &p), 0);
  assert_int_equal(p.n, 201);
  for (int i = 0; i < 200; i++) assert_true(p.f[i] == i);
  tsdb_points_free(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_write_read, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replace_and_out_of_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_conflict_is_atomic, setup, teardown),
      cmocka_unit_test_setup_teardown(test_aggregate, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fill, setup, teardown),
      cmocka_unit_test_setup_teardown(test_latest, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delete_and_retention, setup, teardown),
      cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
