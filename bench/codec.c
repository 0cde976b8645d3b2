/* Benchmark of the time-series chunk codec (src/tsdb/codec.c) on the data it is built for:
 * D devices x 7 fields (5 float random walks with 1-3 decimals, a monotonic int counter, a
 * bool state) x R rows at 10 s with +-50 ms of jitter at ns precision, cut into chunks of C
 * rows per device with all 7 fields aligned on one timestamp column. Prints bytes per point
 * (a point is one field value at one time) for aligned chunks and, for comparison, for one
 * column per chunk (timestamps repeated), plus encode and decode rates (one core, CPU time;
 * data generation not included), and the raw speed of each column codec.
 *
 *   bench_codec [devices [rows [chunk_rows]]]     defaults 1000 4320 1024 (12 hours per device)
 */
#include "base/buf.h"
#include "base/err.h"
#include "tsdb/codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FIELDS 7
#define FLOATS 5

static uint64_t rng_state = 0x2545F4914F6CDD1Du;

static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* CPU time of this thread: on a shared machine, wall time would measure the neighbours too. */
static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* One device's sensors: each float is a walk in integer units of its last decimal, which is
 * how a value parsed from "21.37" behaves. */
typedef struct device {
  int64_t t0_ns;
  int64_t units[FLOATS];
  int64_t counter;
  uint8_t state;
} device;

static const int decimals[FLOATS] = {2, 3, 1, 2, 3}; /* temp, pressure, humidity, V, A */
static const int64_t start_units[FLOATS] = {2137, 3125, 453, 23012, 12345};
static const int64_t max_step[FLOATS] = {5, 5, 2, 10, 20}; /* in units of the last decimal */
static const double pow10_tab[] = {1, 10, 100, 1000};

typedef struct rows {
  size_t n;
  int64_t *ts;
  double *f[FLOATS];
  int64_t *counter;
  uint8_t *state;
} rows;

static void rows_alloc(rows *r, size_t n) {
  r->n = n;
  r->ts = malloc(n * sizeof *r->ts);
  for (int k = 0; k < FLOATS; k++)
    r->f[k] = malloc(n * sizeof *r->f[k]);
  r->counter = malloc(n * sizeof *r->counter);
  r->state = malloc(n);
  if (!r->ts || !r->counter || !r->state)
    abort();
}

static void rows_free(rows *r) {
  free(r->ts);
  for (int k = 0; k < FLOATS; k++)
    free(r->f[k]);
  free(r->counter);
  free(r->state);
}

/* Rows [row0, row0 + n) of device d. */
static void generate(device *d, size_t row0, rows *r) {
  for (size_t i = 0; i < r->n; i++) {
    int64_t jitter = (int64_t)(rnd() % 100000001) - 50000000;
    r->ts[i] = d->t0_ns + (int64_t)(row0 + i) * 10000000000 + jitter;
    for (int k = 0; k < FLOATS; k++) {
      d->units[k] += (int64_t)(rnd() % (uint64_t)(2 * max_step[k] + 1)) - max_step[k];
      r->f[k][i] = (double)d->units[k] / pow10_tab[decimals[k]];
    }
    d->counter += (int64_t)(rnd() % 101);
    r->counter[i] = d->counter;
    if (rnd() % 50 == 0)
      d->state ^= 1;
    r->state[i] = d->state;
  }
}

static void columns_of(const rows *r, tsdb_column_in cols[FIELDS]) {
  for (int k = 0; k < FLOATS; k++)
    cols[k] = (tsdb_column_in){.type = TSDB_FLOAT, .v.f = r->f[k]};
  cols[FLOATS] = (tsdb_column_in){.type = TSDB_INT, .v.i = r->counter};
  cols[FLOATS + 1] = (tsdb_column_in){.type = TSDB_BOOL, .v.b = r->state};
}

static void check(int rc, const char *what) {
  if (rc < 0) {
    fprintf(stderr, "bench_codec: %s: %s\n", what, pl_strerror(rc));
    exit(1);
  }
}

/* Times fn over the same input until at least 0.2 s have passed; returns values per second. */
typedef int (*codec_fn)(const void *ctx);

static double rate(codec_fn fn, const void *ctx, size_t values) {
  double t0 = now_s(), t;
  size_t iters = 0;
  do {
    check(fn(ctx), "micro");
    iters++;
  } while ((t = now_s() - t0) < 0.2);
  return (double)(iters * values) / t;
}

typedef struct micro {
  const void *values;
  size_t n;
  pl_buf *enc;
  void *out;
} micro;

static int enc_int(const void *c) {
  const micro *m = c;
  pl_buf_reset(m->enc);
  return tsdb_codec_int_encode(m->values, m->n, m->enc);
}
static int dec_int(const void *c) {
  const micro *m = c;
  return tsdb_codec_int_decode(m->enc->data, m->enc->len, m->n, m->out);
}
static int enc_float(const void *c) {
  const micro *m = c;
  pl_buf_reset(m->enc);
  return tsdb_codec_float_encode(m->values, m->n, m->enc);
}
static int dec_float(const void *c) {
  const micro *m = c;
  return tsdb_codec_float_decode(m->enc->data, m->enc->len, m->n, m->out);
}

static void micro_report(const char *name, codec_fn enc, codec_fn dec, const void *values, size_t n,
                         void *out) {
  pl_buf b;
  pl_buf_init(&b, 0);
  micro m = {values, n, &b, out};
  double er = rate(enc, &m, n);
  double dr = rate(dec, &m, n);
  printf("  %-34s %6.2f bits/value  encode %7.1f M/s  decode %7.1f M/s\n", name,
         (double)b.len * 8 / (double)n, er / 1e6, dr / 1e6);
  pl_buf_free(&b);
}

int main(int argc, char **argv) {
  size_t n_dev = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
  size_t n_rows = argc > 2 ? strtoul(argv[2], NULL, 10) : 4320;
  size_t chunk_rows = argc > 3 ? strtoul(argv[3], NULL, 10) : 1024;
  if (!n_dev || !n_rows || !chunk_rows || chunk_rows > TSDB_CHUNK_POINTS_MAX) {
    fprintf(stderr, "usage: bench_codec [devices [rows [chunk_rows (<= %d)]]]\n",
            TSDB_CHUNK_POINTS_MAX);
    return 2;
  }
  rows r, d;
  rows_alloc(&r, chunk_rows);
  rows_alloc(&d, chunk_rows);
  pl_buf chunk, arena;
  pl_buf_init(&chunk, TSDB_CHUNK_BYTES_MAX);
  pl_buf_init(&arena, 0);

  size_t aligned_bytes = 0, single_bytes = 0, n_chunks = 0, points = 0;
  size_t col_bytes[FIELDS] = {0}, ts_bytes = 0;
  double t_enc = 0, t_dec = 0, t_enc_single = 0;
  for (size_t dev = 0; dev < n_dev; dev++) {
    device dv = {.t0_ns = 1700000000000000000 + (int64_t)(rnd() % 10000000000), .counter = 0};
    memcpy(dv.units, start_units, sizeof dv.units);
    for (size_t row0 = 0; row0 < n_rows; row0 += chunk_rows) {
      r.n = d.n = n_rows - row0 < chunk_rows ? n_rows - row0 : chunk_rows;
      generate(&dv, row0, &r);
      tsdb_column_in cols[FIELDS];
      columns_of(&r, cols);

      double t0 = now_s();
      pl_buf_reset(&chunk);
      check(tsdb_chunk_encode(r.ts, r.n, cols, FIELDS, &chunk), "encode");
      double t1 = now_s();
      tsdb_chunk_info info;
      check(tsdb_chunk_info_parse(chunk.data, chunk.len, &info), "parse");
      check(tsdb_chunk_decode_ts(&info, d.ts), "decode ts");
      for (int k = 0; k < FLOATS; k++) {
        tsdb_column_out out = {.type = TSDB_FLOAT, .v.f = d.f[k]};
        check(tsdb_chunk_decode_column(&info, (size_t)k, &out), "decode float");
      }
      tsdb_column_out out = {.type = TSDB_INT, .v.i = d.counter};
      check(tsdb_chunk_decode_column(&info, FLOATS, &out), "decode int");
      out = (tsdb_column_out){.type = TSDB_BOOL, .v.b = d.state};
      check(tsdb_chunk_decode_column(&info, FLOATS + 1, &out), "decode bool");
      double t2 = now_s();
      t_enc += t1 - t0;
      t_dec += t2 - t1;

      /* The decoded chunk must be the input, bit for bit. */
      if (memcmp(r.ts, d.ts, r.n * sizeof *r.ts) || memcmp(r.counter, d.counter, r.n * 8) ||
          memcmp(r.state, d.state, r.n)) {
        fprintf(stderr, "bench_codec: round trip mismatch\n");
        return 1;
      }
      for (int k = 0; k < FLOATS; k++)
        if (memcmp(r.f[k], d.f[k], r.n * 8)) {
          fprintf(stderr, "bench_codec: float round trip mismatch\n");
          return 1;
        }

      aligned_bytes += chunk.len;
      ts_bytes += info.ts_len;
      for (int k = 0; k < FIELDS; k++)
        col_bytes[k] += info.cols[k].data_len;
      n_chunks++;
      points += r.n * FIELDS;

      /* The same data stored one column per chunk, each with its own timestamps. */
      double t3 = now_s();
      for (int k = 0; k < FIELDS; k++) {
        pl_buf_reset(&chunk);
        check(tsdb_chunk_encode(r.ts, r.n, &cols[k], 1, &chunk), "encode single");
        single_bytes += chunk.len;
      }
      t_enc_single += now_s() - t3;
    }
  }
  size_t row_count = points / FIELDS;
  printf("tsdb chunk codec: %zu devices x %d fields x %zu rows, %zu rows per chunk, %zu chunks\n",
         n_dev, FIELDS, n_rows, chunk_rows, n_chunks);
  printf("data: 10 s interval +-50 ms jitter (ns); floats = random walks with 2,3,1,2,3 decimals;\n"
         "      int = counter +0..100; bool = state flipping with p = 0.02\n\n");
  printf("aligned (7 fields per chunk):  %.3f bytes/point   (%zu points, %.1f MB)\n",
         (double)aligned_bytes / (double)points, points, (double)aligned_bytes / 1e6);
  printf("  timestamps        %6.2f bits/row  (%.3f bytes/point shared by 7 fields)\n",
         (double)ts_bytes * 8 / (double)row_count, (double)ts_bytes / (double)points);
  const char *names[FIELDS] = {"float 2 dec (temp)", "float 3 dec (pres)", "float 1 dec (hum)",
                               "float 2 dec (V)",    "float 3 dec (A)",    "int counter",
                               "bool state"};
  size_t sum = ts_bytes;
  for (int k = 0; k < FIELDS; k++) {
    printf("  %-17s %6.2f bits/value\n", names[k], (double)col_bytes[k] * 8 / (double)row_count);
    sum += col_bytes[k];
  }
  printf("  headers+stats+crc %6.2f bytes/chunk\n",
         (double)(aligned_bytes - sum) / (double)n_chunks);
  printf("one column per chunk:          %.3f bytes/point\n\n",
         (double)single_bytes / (double)points);
  printf("one core: aligned encode %.1f M points/s, decode (all columns) %.1f M points/s; "
         "one-column-per-chunk encode %.1f M points/s\n\n",
         (double)points / t_enc / 1e6, (double)points / t_dec / 1e6,
         (double)points / t_enc_single / 1e6);

  /* Column codecs on their own, 65536 values each. */
  enum { M = 65536 };
  static int64_t iv[M], iout[M];
  static double fv[M], fout[M];
  printf("column codecs, %d values:\n", M);
  int64_t c = 0;
  for (size_t i = 0; i < M; i++)
    iv[i] = c += (int64_t)(rnd() % 101);
  micro_report("int counter (+0..100)", enc_int, dec_int, iv, M, iout);
  for (size_t i = 0; i < M; i++)
    iv[i] = (int64_t)(rnd() % 1000000);
  micro_report("int random 20 bits", enc_int, dec_int, iv, M, iout);
  for (size_t i = 0; i < M; i++)
    iv[i] =
        1700000000000000000 + (int64_t)i * 10000000000 + (int64_t)(rnd() % 100000001) - 50000000;
  micro_report("timestamps 10 s +-50 ms (ns)", enc_int, dec_int, iv, M, iout);
  for (size_t i = 0; i < M; i++)
    iv[i] = 1700000000000000000 + (int64_t)i * 10000000000;
  micro_report("timestamps regular 10 s", enc_int, dec_int, iv, M, iout);
  for (size_t i = 0; i < M; i++)
    iv[i] =
        1700000000000000000 + (int64_t)i * 10000000000 + ((int64_t)(rnd() % 101) - 50) * 1000000;
  micro_report("timestamps 10 s +-50 ms (ms in ns)", enc_int, dec_int, iv, M, iout);
  int64_t u = 2137;
  for (size_t i = 0; i < M; i++)
    fv[i] = (double)(u += (int64_t)(rnd() % 11) - 5) / 100;
  micro_report("float walk 2 decimals (decimal)", enc_float, dec_float, fv, M, fout);
  for (size_t i = 0; i < M; i++)
    fv[i] = 21.5;
  micro_report("float constant", enc_float, dec_float, fv, M, fout);
  for (size_t i = 0; i < M; i++)
    fv[i] = (double)(rnd() >> 11) * 0x1p-53;
  micro_report("float uniform random (Gorilla)", enc_float, dec_float, fv, M, fout);
  double x = 1.0;
  for (size_t i = 0; i < M; i++)
    fv[i] = x *= 1.0001; /* smooth, full precision */
  micro_report("float smooth full precision", enc_float, dec_float, fv, M, fout);

  rows_free(&r);
  rows_free(&d);
  pl_buf_free(&chunk);
  pl_buf_free(&arena);
  return 0;
}
