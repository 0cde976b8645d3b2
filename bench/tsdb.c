/* In-process side of the time-series benchmark (bench/tsdb.sh): the engine of src/tsdb/ alone,
 * on one thread, fed the very rows bench_tsdb_gen writes as line protocol (the generator is
 * compiled in: see bench/tsdb_gen.c).
 *
 *   bench_tsdb --dir DIR [--fsync always|interval|never] [--devices N] [--hours H] [--seed S]
 *              [--batch ROWS] [--queries] [--runs N] [--warmup W] [--max-seconds S]
 *
 * Ingest: rows are generated a batch at a time (not timed) and written with tsdb_write in
 * batches of --batch rows (5000). The engine runs without its background thread, and this
 * thread calls tsdb_checkpoint each time event time enters a new hour (the engine's partition),
 * so every byte of work -- WAL, heads, chunk encoding, SQLite -- is done on one core and
 * counted: "points_per_s" is points / (write + checkpoint time); "write_points_per_s" counts
 * tsdb_write alone, as a server acknowledging writes while a flusher works beside it would.
 * After a final checkpoint it reports the engine directory's size (blocks allocated: chunks.db
 * and what is left of the WAL) while open ("open_disk_*") and again after tsdb_close, at rest
 * ("disk_*"), peak RSS (getrusage) and memory per series.
 *
 * --queries then times the benchmark's five queries through the public API, each the median of
 * --runs runs after --warmup runs: a raw hour of one device (its 7 fields), a 1-day mean per
 * minute of one field, a 1-day max per hour of every device, the last point of every device,
 * and a count of every point (count aggregates over every series; "count_info" is the same
 * number from tsdb_info_get's counters).
 *
 * Output: one `key=value` per line on stdout. A benchmark, not a test: it reports what it sees,
 * including a count that does not match, and fails only when the engine returns an error.
 */
#define BENCH_TSDB_GEN_NO_MAIN
#include "tsdb_gen.c"

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "tsdb/tsdb.h"

#include <ftw.h>
#include <math.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define TENANT 1
#define HOUR_NS 3600000000000LL

static double now_s(void) {
  return (double)pl_mono_ns() * 1e-9;
}

static void check(int rc, const char *what, const pl_err *err) {
  if (rc < 0) {
    fprintf(stderr, "bench_tsdb: %s: %s\n", what, err && err->msg[0] ? err->msg : pl_strerror(rc));
    exit(1);
  }
}

/* ---- the rows of one device, as tsdb_row wants them ---- */

typedef struct device_tags {
  char device[32], line[32], site[32];
  tsdb_tag tags[3];
} device_tags;

static const tsdb_str measurement = {GEN_MEASUREMENT, sizeof GEN_MEASUREMENT - 1};

static tsdb_str str_of(const char *s) {
  return (tsdb_str){s, strlen(s)};
}

static void device_tags_make(uint32_t d, device_tags *t) {
  gen_device_name(d, t->device, sizeof t->device);
  gen_line_name(d, t->line, sizeof t->line);
  gen_site_name(d, t->site, sizeof t->site);
  t->tags[0] = (tsdb_tag){str_of("device"), str_of(t->device)};
  t->tags[1] = (tsdb_tag){str_of("line"), str_of(t->line)};
  t->tags[2] = (tsdb_tag){str_of("site"), str_of(t->site)};
}

static void row_fill(const gen_row *g, const device_tags *dt, tsdb_row *row, tsdb_field *f) {
  for (int k = 0; k < GEN_FLOATS; k++)
    f[k] = (tsdb_field){str_of(gen_fields[k].name),
                        {.type = TSDB_FLOAT,
                         .v.f = (double)g->units[k] / (double)gen_pow10[gen_fields[k].decimals]}};
  f[5] = (tsdb_field){str_of("bottles"), {.type = TSDB_INT, .v.i = g->bottles}};
  f[6] = (tsdb_field){str_of("running"), {.type = TSDB_BOOL, .v.b = g->running}};
  *row = (tsdb_row){measurement, dt->tags, 3, g->ts_ns, f, GEN_FIELDS};
}

/* ---- disk and memory ---- */

/* Blocks allocated under the engine directory, in total and by kind: the chunk store
 * (chunks.db), SQLite's own WAL beside it (chunks.db-wal, -shm), and the engine's WAL (wal/). */
typedef struct du {
  uint64_t allocated, apparent, chunks_db, sqlite_wal, engine_wal, other;
} du;

static du du_sum;

static int du_visit(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  if (flag != FTW_F)
    return 0;
  uint64_t bytes = (uint64_t)st->st_blocks * 512;
  const char *name = path + ftw->base;
  du_sum.allocated += bytes;
  du_sum.apparent += (uint64_t)st->st_size;
  if (strstr(path, "/wal/"))
    du_sum.engine_wal += bytes;
  else if (strcmp(name, "chunks.db") == 0)
    du_sum.chunks_db += bytes;
  else if (strncmp(name, "chunks.db-", 10) == 0)
    du_sum.sqlite_wal += bytes;
  else
    du_sum.other += bytes;
  return 0;
}

static void du_print(const char *dir, const char *prefix, uint64_t points) {
  memset(&du_sum, 0, sizeof du_sum);
  nftw(dir, du_visit, 16, FTW_PHYS);
  printf("%sdisk_bytes=%llu\n%sdisk_apparent_bytes=%llu\n%sdisk_bytes_per_point=%.4f\n", prefix,
         (unsigned long long)du_sum.allocated, prefix, (unsigned long long)du_sum.apparent, prefix,
         (double)du_sum.allocated / (double)points);
  printf(
      "%sdisk_chunks_db=%llu\n%sdisk_sqlite_wal=%llu\n%sdisk_engine_wal=%llu\n%sdisk_other=%llu\n",
      prefix, (unsigned long long)du_sum.chunks_db, prefix, (unsigned long long)du_sum.sqlite_wal,
      prefix, (unsigned long long)du_sum.engine_wal, prefix, (unsigned long long)du_sum.other);
}

static long rss_now_kb(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
      resident = 0;
    fclose(f);
  }
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static long rss_peak_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* ---- queries ---- */

typedef struct bench {
  tsdb *db;
  uint32_t devices;
  int64_t start_ns, day_end_ns, all_end_ns, hour0_ns;
  uint32_t qdev;
  uint64_t *groups;
  size_t ngroups, groups_cap;
  tsdb_points pts;
  tsdb_buckets buckets;
  uint64_t sink; /* results are added here so that no query is optimised away */
} bench;

static int collect_group(void *ctx, const tsdb_group_info *g) {
  bench *b = ctx;
  if (b->ngroups == b->groups_cap) {
    b->groups_cap = b->groups_cap ? 2 * b->groups_cap : 1024;
    b->groups = realloc(b->groups, b->groups_cap * sizeof *b->groups);
    if (!b->groups)
      return PL_ENOMEM;
  }
  b->groups[b->ngroups++] = g->id;
  return 0;
}

static void list_groups(bench *b) {
  b->ngroups = 0;
  check(tsdb_groups(b->db, TENANT, measurement, collect_group, b), "tsdb_groups", NULL);
}

static uint64_t find_device(bench *b, uint32_t d) {
  device_tags dt;
  device_tags_make(d, &dt);
  uint64_t id = 0;
  check(tsdb_group_find(b->db, TENANT, measurement, dt.tags, 3, &id), "tsdb_group_find", NULL);
  return id;
}

static void q_raw(bench *b) {
  uint64_t id = find_device(b, b->qdev);
  for (int k = 0; k < GEN_FIELDS; k++) {
    check(tsdb_read(b->db, TENANT, id, gen_fields[k].name, b->hour0_ns, b->hour0_ns + HOUR_NS, 0, 0,
                    &b->pts),
          "tsdb_read", NULL);
    b->sink += b->pts.n;
  }
}

static void q_mean1m(bench *b) {
  uint64_t id = find_device(b, b->qdev);
  tsdb_agg_spec s = {.start_ns = b->start_ns,
                     .end_ns = b->day_end_ns,
                     .bucket_ns = 60000000000LL,
                     .aggs = TSDB_AGG_MEAN,
                     .fill = TSDB_FILL_NONE};
  check(tsdb_aggregate(b->db, TENANT, id, "temperature", &s, &b->buckets), "tsdb_aggregate", NULL);
  b->sink += b->buckets.n;
}

static void q_max1h(bench *b) {
  list_groups(b);
  tsdb_agg_spec s = {.start_ns = b->start_ns,
                     .end_ns = b->day_end_ns,
                     .bucket_ns = HOUR_NS,
                     .aggs = TSDB_AGG_MAX,
                     .fill = TSDB_FILL_NONE};
  for (size_t i = 0; i < b->ngroups; i++) {
    check(tsdb_aggregate(b->db, TENANT, b->groups[i], "temperature", &s, &b->buckets),
          "tsdb_aggregate", NULL);
    b->sink += b->buckets.n;
  }
}

static int latest_cb(void *ctx, tsdb_str field, int64_t ts_ns, const tsdb_value *v) {
  bench *b = ctx;
  b->sink += (uint64_t)ts_ns + field.len;
  return 0;
}

static void q_last(bench *b) {
  list_groups(b);
  for (size_t i = 0; i < b->ngroups; i++)
    check(tsdb_latest(b->db, TENANT, b->groups[i], latest_cb, b), "tsdb_latest", NULL);
}

static uint64_t count_all(bench *b) {
  list_groups(b);
  tsdb_agg_spec s = {
      .start_ns = INT64_MIN, .end_ns = INT64_MAX, .aggs = TSDB_AGG_COUNT, .fill = TSDB_FILL_NONE};
  uint64_t total = 0;
  for (size_t i = 0; i < b->ngroups; i++)
    for (int k = 0; k < GEN_FIELDS; k++) {
      check(tsdb_aggregate(b->db, TENANT, b->groups[i], gen_fields[k].name, &s, &b->buckets),
            "tsdb_aggregate", NULL);
      for (size_t j = 0; j < b->buckets.n; j++)
        total += b->buckets.b[j].count;
    }
  return total;
}

static void q_count(bench *b) {
  b->sink += count_all(b);
}

static void q_count_info(bench *b) {
  tsdb_info info;
  tsdb_info_get(b->db, TENANT, &info);
  b->sink += info.points_in_chunks + info.points_in_heads;
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, c = *(const double *)y;
  return a < c ? -1 : a > c;
}

static void time_query(bench *b, const char *name, void (*q)(bench *), long runs, long warmup,
                       double max_seconds) {
  double *t = calloc((size_t)runs, sizeof *t);
  long done = 0;
  double started = now_s();
  for (long i = 0; i < warmup + runs; i++) {
    double t0 = now_s();
    q(b);
    double dt = now_s() - t0;
    if (i >= warmup)
      t[done++] = dt;
    if (done >= 3 && now_s() - started > max_seconds)
      break;
  }
  qsort(t, (size_t)done, sizeof *t, cmp_double);
  printf("q.%s.runs=%ld\nq.%s.median_ms=%.3f\nq.%s.min_ms=%.3f\nq.%s.max_ms=%.3f\n", name, done,
         name, t[done / 2] * 1e3, name, t[0] * 1e3, name, t[done - 1] * 1e3);
  free(t);
}

/* ---- main ---- */

static const char usage[] =
    "usage: bench_tsdb --dir DIR [--fsync always|interval|never] [--devices N] [--hours H]\n"
    "                  [--seed S] [--batch ROWS] [--queries] [--runs N] [--warmup W]\n"
    "                  [--max-seconds S]\n";

int main(int argc, char **argv) {
  gen_opts go;
  gen_opts_default(&go);
  const char *dir = NULL, *fsync_name = "always";
  long hours = 24, batch = 5000, runs = 10, warmup = 2;
  double max_seconds = 30;
  int queries = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--queries") == 0) {
      queries = 1;
      continue;
    }
    if (i + 1 >= argc) {
      fputs(usage, stderr);
      return 2;
    }
    const char *v = argv[++i];
    if (strcmp(a, "--dir") == 0)
      dir = v;
    else if (strcmp(a, "--fsync") == 0)
      fsync_name = v;
    else if (strcmp(a, "--devices") == 0)
      go.devices = (uint32_t)strtoul(v, NULL, 10);
    else if (strcmp(a, "--hours") == 0)
      hours = atol(v);
    else if (strcmp(a, "--seed") == 0)
      go.seed = strtoull(v, NULL, 10);
    else if (strcmp(a, "--batch") == 0)
      batch = atol(v);
    else if (strcmp(a, "--runs") == 0)
      runs = atol(v);
    else if (strcmp(a, "--warmup") == 0)
      warmup = atol(v);
    else if (strcmp(a, "--max-seconds") == 0)
      max_seconds = atof(v);
    else {
      fputs(usage, stderr);
      return 2;
    }
  }
  tsdb_fsync_policy policy;
  if (strcmp(fsync_name, "always") == 0)
    policy = TSDB_FSYNC_ALWAYS;
  else if (strcmp(fsync_name, "interval") == 0)
    policy = TSDB_FSYNC_INTERVAL;
  else if (strcmp(fsync_name, "never") == 0)
    policy = TSDB_FSYNC_NEVER;
  else {
    fputs(usage, stderr);
    return 2;
  }
  if (!dir || go.devices == 0 || go.devices > 99999 || hours < 1 || hours > 24 * 366 || batch < 1 ||
      runs < 1 || warmup < 0) {
    fputs(usage, stderr);
    return 2;
  }
  go.steps = (uint32_t)(hours * 360);
  pl_log_set_level(PL_LOG_WARN);
  setvbuf(stdout, NULL, _IOLBF, 0); /* a crash mid-way keeps the figures already printed */

  gen g;
  device_tags *tags = malloc(go.devices * sizeof *tags);
  tsdb_row *rows = malloc((size_t)batch * sizeof *rows);
  tsdb_field *fields = malloc((size_t)batch * GEN_FIELDS * sizeof *fields);
  if (!tags || !rows || !fields || gen_init(&g, &go) < 0) {
    fprintf(stderr, "bench_tsdb: out of memory\n");
    return 1;
  }
  for (uint32_t d = 0; d < go.devices; d++)
    device_tags_make(d, &tags[d]);

  long rss_before_kb = rss_now_kb();
  tsdb_opts o = {.dir = dir, .fsync = policy, .fsync_set = 1, .background = 0};
  tsdb *db = NULL;
  pl_err err = {{0}};
  double t = now_s();
  check(tsdb_open(&o, &db, &err), "tsdb_open", &err);
  double open_s = now_s() - t;

  /* Ingest. */
  double t_gen = 0, t_write = 0, t_ckpt = 0, cpu0 = cpu_s();
  uint64_t points = 0, nrows = 0, batches = 0, checkpoints = 0;
  int64_t hour_ckpt = 0; /* index of the event-time hour last checkpointed */
  int more = 1;
  while (more) {
    double t0 = now_s();
    size_t n = 0;
    int64_t newest = 0;
    gen_row gr;
    while (n < (size_t)batch) {
      int rc = gen_next(&g, &gr);
      if (rc < 0)
        check(PL_ENOMEM, "generator", NULL);
      if (rc == 0) {
        more = 0;
        break;
      }
      row_fill(&gr, &tags[gr.device], &rows[n], &fields[n * GEN_FIELDS]);
      if (gr.ts_ns > newest)
        newest = gr.ts_ns;
      n++;
    }
    double t1 = now_s();
    t_gen += t1 - t0;
    if (n == 0)
      break;
    tsdb_write_stats st = {0};
    check(tsdb_write(db, TENANT, rows, n, &st, &err), "tsdb_write", &err);
    double t2 = now_s();
    t_write += t2 - t1;
    points += st.points;
    nrows += n;
    batches++;
    int64_t hour = (newest - go.start_ns) / HOUR_NS;
    if (hour > hour_ckpt) {
      check(tsdb_checkpoint(db), "tsdb_checkpoint", NULL);
      t_ckpt += now_s() - t2;
      hour_ckpt = hour;
      checkpoints++;
    }
  }
  long rss_ingest_kb = rss_now_kb();
  t = now_s();
  check(tsdb_checkpoint(db), "tsdb_checkpoint", NULL);
  double final_ckpt_s = now_s() - t;
  t_ckpt += final_ckpt_s;
  double ingest_cpu_s = cpu_s() - cpu0;

  tsdb_info info;
  tsdb_info_get(db, 0, &info);
  printf("fsync=%s\nrows=%llu\npoints=%llu\nbatches=%llu\nopen_s=%.3f\n", fsync_name,
         (unsigned long long)nrows, (unsigned long long)points, (unsigned long long)batches,
         open_s);
  printf("generate_s=%.3f\nwrite_s=%.3f\ncheckpoint_s=%.3f\ncheckpoints=%llu\nfinal_checkpoint_s=%."
         "3f\n",
         t_gen, t_write, t_ckpt, (unsigned long long)checkpoints + 1, final_ckpt_s);
  printf("points_per_s=%.0f\nwrite_points_per_s=%.0f\ncpu_s=%.3f\n",
         (double)points / (t_write + t_ckpt), (double)points / t_write, ingest_cpu_s);
  printf("groups=%llu\nseries=%llu\nchunks=%llu\npoints_in_chunks=%llu\npoints_in_heads=%llu\n",
         (unsigned long long)info.groups, (unsigned long long)info.series,
         (unsigned long long)info.chunks, (unsigned long long)info.points_in_chunks,
         (unsigned long long)info.points_in_heads);
  printf("chunk_bytes=%llu\nwal_bytes=%llu\nchunk_bytes_per_point=%.4f\n",
         (unsigned long long)info.chunk_bytes, (unsigned long long)info.wal_bytes,
         (double)info.chunk_bytes / (double)points);
  du_print(dir, "open_", points);
  long rss_kb = rss_peak_kb();
  double series = info.series ? (double)info.series : 1;
  printf("rss_before_kb=%ld\nrss_ingest_kb=%ld\nrss_kb=%ld\nbytes_per_series_ingest=%.0f\n"
         "bytes_per_series_peak=%.0f\n",
         rss_before_kb, rss_ingest_kb, rss_kb,
         (double)(rss_ingest_kb - rss_before_kb) * 1024 / series,
         (double)(rss_kb - rss_before_kb) * 1024 / series);

  if (queries) {
    bench b = {.db = db, .devices = go.devices, .start_ns = go.start_ns, .qdev = go.devices / 2};
    int64_t day_h = hours < 24 ? hours : 24;
    b.day_end_ns = go.start_ns + day_h * HOUR_NS;
    b.hour0_ns = go.start_ns + (hours / 2) * HOUR_NS;
    tsdb_points_init(&b.pts);
    uint64_t counted = count_all(&b);
    printf("count_check=%llu\n", (unsigned long long)counted);
    if (counted != points)
      fprintf(stderr, "bench_tsdb: the count query found %llu points, %llu were written\n",
              (unsigned long long)counted, (unsigned long long)points);
    time_query(&b, "raw", q_raw, runs, warmup, max_seconds);
    time_query(&b, "mean1m", q_mean1m, runs, warmup, max_seconds);
    time_query(&b, "max1h", q_max1h, runs, warmup, max_seconds);
    time_query(&b, "last", q_last, runs, warmup, max_seconds);
    time_query(&b, "count", q_count, runs, warmup, max_seconds);
    time_query(&b, "count_info", q_count_info, runs, warmup, max_seconds);
    printf("rss_queries_kb=%ld\nsink=%llu\n", rss_peak_kb(), (unsigned long long)(b.sink & 1));
    tsdb_points_free(&b.pts);
    tsdb_buckets_free(&b.buckets);
    free(b.groups);
  }
  t = now_s();
  tsdb_close(db);
  printf("close_s=%.3f\n", now_s() - t);
  du_print(dir, "", points); /* at rest, as InfluxDB's shard is measured after its compaction */
  gen_free(&g);
  free(tags);
  free(rows);
  free(fields);
  return 0;
}
