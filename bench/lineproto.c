/* Benchmark of the line-protocol parser (src/ingest/lineproto.c) on one core.
 *
 * Data sets, each N lines of one measurement with nanosecond timestamps 10 s apart:
 *   iot       TSBS-iot-like "readings": 2 tags (name, fleet), 7 float fields as TSBS writes
 *             them (latitude/longitude with 5 decimals, elevation, velocity, heading, grade and
 *             fuel_consumption as whole or one-decimal numbers), ~150 bytes a line
 *   telegraf  Telegraf-like "cpu"/"mem" mix: 3 tags, integer (i) fields, a string field and
 *             an escaped tag value, ~190 bytes a line
 * Each set is parsed as one large body and as batches of 5,000 lines (what Telegraf and TSBS
 * send per request); the figure is the best of several timed rounds of at least 1 s each,
 * timed in the thread's CPU time so that other processes on a busy machine do not count.
 *
 *   bench_lineproto [lines]          default 200000
 *   bench_lineproto --file FILE      the line protocol in FILE instead (e.g. bench_tsdb_gen's
 *                                    data set, 3 tags and 7 fields a line)
 */
#include "base/buf.h"
#include "ingest/lineproto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH_LINES 5000
#define ROUNDS 5

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static const char *const fleets[] = {"East", "West", "North", "South"};

static void gen_iot(pl_buf *b, size_t n) {
  int64_t ts = 1451606400000000000LL;
  for (size_t i = 0; i < n; i++) {
    unsigned truck = (unsigned)(i % 1000);
    double lat = (double)(rnd() % 18000000) / 100000.0 - 90.0;
    double lon = (double)(rnd() % 36000000) / 100000.0 - 180.0;
    pl_buf_printf(
        b,
        "readings,name=truck_%u,fleet=%s latitude=%.5f,longitude=%.5f,elevation=%u,velocity=%u,"
        "heading=%u,grade=%u,fuel_consumption=%u.%u %lld\n",
        truck, fleets[truck % 4], lat, lon, (unsigned)(rnd() % 500), (unsigned)(rnd() % 100),
        (unsigned)(rnd() % 360), (unsigned)(rnd() % 100), (unsigned)(rnd() % 50),
        (unsigned)(rnd() % 10), (long long)(ts + (int64_t)(i / 1000) * 10000000000LL));
  }
}

static void gen_telegraf(pl_buf *b, size_t n) {
  int64_t ts = 1451606400000000000LL;
  for (size_t i = 0; i < n; i++) {
    unsigned host = (unsigned)(i % 200);
    int64_t t = ts + (int64_t)(i / 200) * 10000000000LL;
    if (i % 2)
      pl_buf_printf(
          b,
          "cpu,cpu=cpu%u,host=plant-%u,region=lhasa\\ east usage_user=%u.%02u,usage_system=%u.%02u,"
          "usage_idle=%u.%02u,usage_iowait=0.%02u %lld\n",
          (unsigned)(rnd() % 4), host, (unsigned)(rnd() % 100), (unsigned)(rnd() % 100),
          (unsigned)(rnd() % 100), (unsigned)(rnd() % 100), (unsigned)(rnd() % 100),
          (unsigned)(rnd() % 100), (unsigned)(rnd() % 100), (long long)t);
    else
      pl_buf_printf(
          b,
          "mem,host=plant-%u,region=lhasa\\ east,kind=ddr4 active=%llui,available=%llui,free=%llui,"
          "used_percent=%u.%03u,status=\"ok, running\" %lld\n",
          host, (unsigned long long)(rnd() % 8000000000ULL),
          (unsigned long long)(rnd() % 8000000000ULL), (unsigned long long)(rnd() % 8000000000ULL),
          (unsigned)(rnd() % 100), (unsigned)(rnd() % 1000), (long long)t);
  }
}

/* Byte offsets where each batch of BATCH_LINES lines starts. */
static size_t *batch_starts(const pl_buf *b, size_t *nbatches) {
  size_t cap = 16, n = 0, lines = 0;
  size_t *starts = malloc(cap * sizeof *starts);
  starts[n++] = 0;
  for (size_t i = 0; i < b->len; i++) {
    if (b->data[i] != '\n')
      continue;
    if (++lines % BATCH_LINES == 0 && i + 1 < b->len) {
      if (n == cap)
        starts = realloc(starts, (cap *= 2) * sizeof *starts);
      starts[n++] = i + 1;
    }
  }
  if (n == cap)
    starts = realloc(starts, (cap + 1) * sizeof *starts);
  starts[n] = b->len;
  *nbatches = n;
  return starts;
}

/* Parses the whole set once (as one body or in batches); returns the rows parsed. */
static size_t parse_all(const pl_buf *b, const size_t *starts, size_t nbatches, lp_batch *batch) {
  size_t rows = 0;
  lp_error err;
  lp_limits lim = {0, 10000000, 100000000};
  for (size_t k = 0; k < nbatches; k++) {
    int rc = lp_parse((const char *)b->data + starts[k], starts[k + 1] - starts[k], LP_PRECISION_NS,
                      1451606400000000000LL, &lim, batch, &err);
    if (rc < 0) {
      pl_buf msg;
      pl_buf_init(&msg, 0);
      lp_error_format(&err, (const char *)b->data + starts[k], 200, &msg);
      fprintf(stderr, "parse failed: %s\n", pl_buf_cstr(&msg));
      exit(1);
    }
    rows += (size_t)rc;
  }
  return rows;
}

static void run(const char *name, const pl_buf *b, size_t nlines) {
  size_t nbatches;
  size_t *starts = batch_starts(b, &nbatches);
  size_t whole[2] = {0, b->len};
  size_t values = 0; /* field values in the whole set */
  for (int mode = 0; mode < 2; mode++) {
    lp_batch batch;
    lp_batch_init(&batch);
    const size_t *st = mode ? starts : whole;
    size_t nb = mode ? nbatches : 1;
    parse_all(b, st, nb, &batch); /* warm up: the arrays and the arena reach their size */
    if (!mode)
      values = batch.nfields;
    double best = 1e30;
    for (int r = 0; r < ROUNDS; r++) {
      size_t reps = 0, rows = 0;
      double t0 = now_s(), t;
      do {
        rows += parse_all(b, st, nb, &batch);
        reps++;
      } while ((t = now_s() - t0) < 1.0);
      if (rows != reps * nlines) {
        fprintf(stderr, "%s: parsed %zu rows, expected %zu\n", name, rows, reps * nlines);
        exit(1);
      }
      if (t / (double)reps < best)
        best = t / (double)reps;
    }
    printf("%-9s %-16s %8zu lines %6.1f MB %8.1f MB/s %7.2f M lines/s %7.1f M values/s %6.0f "
           "ns/line\n",
           name, mode ? "5000-line bodies" : "one body", nlines, (double)b->len / 1e6,
           (double)b->len / best / 1e6, (double)nlines / best / 1e6, (double)values / best / 1e6,
           best / (double)nlines * 1e9);
    lp_batch_free(&batch);
  }
  free(starts);
}

static int count_lines(const pl_buf *b) {
  size_t n = 0;
  for (size_t i = 0; i < b->len; i++)
    n += b->data[i] == '\n';
  if (b->len && b->data[b->len - 1] != '\n')
    n++;
  return (int)n;
}

int main(int argc, char **argv) {
  printf("line-protocol parser, one core, best of %d rounds of >= 1 s of CPU time\n", ROUNDS);
  if (argc > 2 && strcmp(argv[1], "--file") == 0) {
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
      perror(argv[2]);
      return 1;
    }
    pl_buf file;
    pl_buf_init(&file, 0);
    char chunk[1 << 16];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
      pl_buf_append(&file, chunk, n);
    fclose(f);
    run("file", &file, (size_t)count_lines(&file));
    pl_buf_free(&file);
    return 0;
  }
  size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 200000;
  if (n < 1)
    n = 1;
  pl_buf iot, telegraf;
  pl_buf_init(&iot, 0);
  pl_buf_init(&telegraf, 0);
  gen_iot(&iot, n);
  gen_telegraf(&telegraf, n);
  run("iot", &iot, n);
  run("telegraf", &telegraf, n);
  pl_buf_free(&iot);
  pl_buf_free(&telegraf);
  return 0;
}
