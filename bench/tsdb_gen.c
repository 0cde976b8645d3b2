/* Data generator of the time-series benchmark (bench/tsdb.sh): a fleet of bottling-line sensors
 * modelled on TSBS's "iot" use case, deterministic from a seed, written as InfluxDB line
 * protocol or as Plateau telemetry JSON, or handed row by row to the in-process benchmark
 * (bench/tsdb.c includes this file with BENCH_TSDB_GEN_NO_MAIN defined, so both sides make the
 * very same rows from the same code: CMake builds one program per .c file under bench/, and a
 * header of our own would be one more file to keep in step).
 *
 * The data set: D devices, each reporting one row every interval (default 10 s) for H hours.
 * A row has 7 fields -- 7 points:
 *   temperature  float, 2 decimals, degrees C     random walk in steps of 0..0.05
 *   pressure     float, 3 decimals, bar           random walk in steps of 0..0.004
 *   ozone        float, 2 decimals, ppm           random walk in steps of 0..0.01
 *   humidity     float, 1 decimal, %              random walk in steps of 0..0.3
 *   voltage      float, 1 decimal, V              random walk in steps of 0..0.5
 *   bottles      int, a monotonic counter         +30..60 per interval while running
 *   running      bool                             stops with p = 0.5 %, restarts with p = 5 %
 * Each walk is kept in integer units of its last decimal and reflected at its bounds, so a
 * value is exactly what a device would send as text ("21.37"): units / 10^decimals, which is
 * the double that parsing the text gives (both operands are exact and IEEE division rounds
 * correctly).
 *
 * Timestamps: start (default 2024-01-01T00:00:00Z) + a per-device phase in [50 ms, interval
 * - 50 ms) + k * interval + a jitter uniform in [-50 ms, +50 ms] at nanosecond precision.
 * Series: measurement "line" (Plateau reserves "device" for registered devices' telemetry),
 * tags device=dev-NNNNN, line=line-NN (20 devices a line), site=plant-N (250 devices a site).
 *
 * Order: time-major, as the devices of a plant report -- step k emits devices 0..D-1 -- except
 * that 1 % of the rows are held back and emitted 1 to 3 intervals late, after the rows of the
 * step they are released in; such a row is older than rows already written for its device.
 * Every rnd() call happens in emission order, so the stream depends only on the options.
 *
 *   bench_tsdb_gen [--format lp|json] [--devices N] [--hours H] [--interval-s S] [--seed S]
 *                  [--batch ROWS] [--start-ns NS] [--out FILE]
 *
 * lp writes one line-protocol line per row (ints with the `i` suffix, ns timestamps); json
 * writes one POST /api/v1/telemetry request body per line: an array of --batch rows in the
 * generic form, times as RFC 3339 with nanoseconds. A summary goes to stderr.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GEN_FLOATS 5
#define GEN_FIELDS 7
#define GEN_OOO_STEPS_MAX 3 /* a late row arrives at most this many intervals late */
#define GEN_MEASUREMENT "line"

typedef enum { GEN_TYPE_FLOAT, GEN_TYPE_INT, GEN_TYPE_BOOL } gen_type;

typedef struct gen_field {
  const char *name;
  gen_type type;
  int decimals;         /* FLOAT: digits after the point */
  int64_t lo, hi;       /* FLOAT: bounds of the walk, in units of the last decimal */
  int64_t start_spread; /* FLOAT: initial value is lo + (hi-lo)/2 +- this */
  int64_t step_max;     /* FLOAT: largest step, in units */
} gen_field;

static const gen_field gen_fields[GEN_FIELDS] = {
    {"temperature", GEN_TYPE_FLOAT, 2, 500, 4000, 300, 5},
    {"pressure", GEN_TYPE_FLOAT, 3, 2500, 3500, 150, 4},
    {"ozone", GEN_TYPE_FLOAT, 2, 0, 100, 10, 1},
    {"humidity", GEN_TYPE_FLOAT, 1, 100, 950, 100, 3},
    {"voltage", GEN_TYPE_FLOAT, 1, 2070, 2530, 20, 5},
    {"bottles", GEN_TYPE_INT, 0, 0, 0, 0, 0},
    {"running", GEN_TYPE_BOOL, 0, 0, 0, 0, 0},
};

static const int64_t gen_pow10[] = {1, 10, 100, 1000};

typedef struct gen_row {
  uint32_t device;
  int64_t ts_ns;
  int64_t units[GEN_FLOATS]; /* float field k is units[k] / 10^decimals */
  int64_t bottles;
  uint8_t running;
} gen_row;

typedef struct gen_opts {
  uint64_t seed;
  uint32_t devices;
  uint32_t steps; /* rows per device */
  int64_t start_ns;
  int64_t interval_ns;
  int64_t jitter_ns;    /* timestamps move by up to +- this */
  uint32_t ooo_per_10k; /* rows in 10,000 that arrive late */
} gen_opts;

#define GEN_START_NS 1704067200000000000 /* 2024-01-01T00:00:00Z, a Monday */

static void gen_opts_default(gen_opts *o) {
  *o = (gen_opts){.seed = 1,
                  .devices = 1000,
                  .steps = 24 * 360,
                  .start_ns = GEN_START_NS,
                  .interval_ns = 10000000000,
                  .jitter_ns = 50000000,
                  .ooo_per_10k = 100};
}

typedef struct gen_device {
  int64_t phase_ns;
  int64_t units[GEN_FLOATS];
  int64_t bottles;
  uint8_t running;
} gen_device;

/* Rows held back, by the step that releases them (modulo GEN_OOO_STEPS_MAX + 1). */
typedef struct gen_queue {
  gen_row *rows;
  size_t n, cap;
} gen_queue;

typedef struct gen {
  gen_opts o;
  uint64_t rng;
  gen_device *dev;
  uint32_t step, next_device; /* the row to make next */
  gen_queue late[GEN_OOO_STEPS_MAX + 1];
  size_t releasing; /* index into the queue of `step` while its late rows are emitted */
  int in_release;   /* 1 once every device of `step` has been emitted */
  uint64_t rows_out, rows_late;
} gen;

/* splitmix64: tiny, fast, and good enough for synthetic data. */
static uint64_t gen_rnd(gen *g) {
  uint64_t z = (g->rng += 0x9E3779B97F4A7C15u);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
  return z ^ (z >> 31);
}

/* Uniform in [0, n) (n > 0; the modulo bias is below 2^-40 for the ranges used here). */
static uint64_t gen_below(gen *g, uint64_t n) {
  return gen_rnd(g) % n;
}

static int gen_init(gen *g, const gen_opts *o) {
  memset(g, 0, sizeof *g);
  g->o = *o;
  g->rng = o->seed;
  if (!o->devices || !o->steps || o->interval_ns <= 2 * o->jitter_ns + 2)
    return -1;
  g->dev = calloc(o->devices, sizeof *g->dev);
  if (!g->dev)
    return -1;
  for (uint32_t d = 0; d < o->devices; d++) {
    gen_device *v = &g->dev[d];
    v->phase_ns =
        o->jitter_ns + (int64_t)gen_below(g, (uint64_t)(o->interval_ns - 2 * o->jitter_ns));
    for (int k = 0; k < GEN_FLOATS; k++) {
      const gen_field *f = &gen_fields[k];
      v->units[k] = f->lo + (f->hi - f->lo) / 2 - f->start_spread +
                    (int64_t)gen_below(g, (uint64_t)(2 * f->start_spread + 1));
    }
    v->bottles = (int64_t)gen_below(g, 1000000);
    v->running = gen_below(g, 10) != 0;
  }
  return 0;
}

static void gen_free(gen *g) {
  free(g->dev);
  for (int i = 0; i <= GEN_OOO_STEPS_MAX; i++)
    free(g->late[i].rows);
  memset(g, 0, sizeof *g);
}

/* Advances device d by one interval and fills row with its reading at step k. */
static void gen_make_row(gen *g, uint32_t d, uint32_t k, gen_row *row) {
  gen_device *v = &g->dev[d];
  for (int i = 0; i < GEN_FLOATS; i++) {
    const gen_field *f = &gen_fields[i];
    int64_t u = v->units[i] - f->step_max + (int64_t)gen_below(g, (uint64_t)(2 * f->step_max + 1));
    if (u < f->lo)
      u = 2 * f->lo - u; /* reflect at the bounds */
    if (u > f->hi)
      u = 2 * f->hi - u;
    v->units[i] = u;
  }
  if (v->running) {
    v->bottles += 30 + (int64_t)gen_below(g, 31);
    if (gen_below(g, 1000) < 5)
      v->running = 0;
  } else if (gen_below(g, 100) < 5) {
    v->running = 1;
  }
  int64_t jitter = (int64_t)gen_below(g, (uint64_t)(2 * g->o.jitter_ns + 1)) - g->o.jitter_ns;
  row->device = d;
  row->ts_ns = g->o.start_ns + v->phase_ns + (int64_t)k * g->o.interval_ns + jitter;
  memcpy(row->units, v->units, sizeof row->units);
  row->bottles = v->bottles;
  row->running = v->running;
}

static int gen_hold(gen *g, uint32_t release_step, const gen_row *row) {
  gen_queue *q = &g->late[release_step % (GEN_OOO_STEPS_MAX + 1)];
  if (q->n == q->cap) {
    size_t cap = q->cap ? 2 * q->cap : 256;
    gen_row *p = realloc(q->rows, cap * sizeof *p);
    if (!p)
      return -1;
    q->rows = p;
    q->cap = cap;
  }
  q->rows[q->n++] = *row;
  return 0;
}

/* The next row of the stream: 1 when *row was written, 0 at the end, -1 when out of memory.
 * After the last step the late rows still held are released in order of their steps. */
static int gen_next(gen *g, gen_row *row) {
  for (;;) {
    uint32_t last_release = g->o.steps - 1 + GEN_OOO_STEPS_MAX;
    if (g->step > last_release)
      return 0;
    if (!g->in_release && g->step < g->o.steps) {
      while (g->next_device < g->o.devices) {
        uint32_t d = g->next_device++;
        gen_make_row(g, d, g->step, row);
        if (gen_below(g, 10000) < g->o.ooo_per_10k) {
          uint32_t delay = 1 + (uint32_t)gen_below(g, GEN_OOO_STEPS_MAX);
          if (gen_hold(g, g->step + delay, row) < 0)
            return -1;
          g->rows_late++;
          continue;
        }
        g->rows_out++;
        return 1;
      }
    }
    g->in_release = 1;
    gen_queue *q = &g->late[g->step % (GEN_OOO_STEPS_MAX + 1)];
    if (g->releasing < q->n) {
      *row = q->rows[g->releasing++];
      g->rows_out++;
      return 1;
    }
    q->n = 0;
    g->releasing = 0;
    g->in_release = 0;
    g->next_device = 0;
    g->step++;
  }
}

static void gen_device_name(uint32_t d, char *out, size_t size) {
  snprintf(out, size, "dev-%05u", (unsigned)d);
}

static void gen_line_name(uint32_t d, char *out, size_t size) {
  snprintf(out, size, "line-%02u", (unsigned)(d / 20));
}

static void gen_site_name(uint32_t d, char *out, size_t size) {
  snprintf(out, size, "plant-%u", (unsigned)(d / 250));
}

#ifndef BENCH_TSDB_GEN_NO_MAIN

/* ---- text output: hand-rolled number formatting, since printf would dominate ---- */

static char *gen_put_u64(char *p, uint64_t v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n)
    *p++ = tmp[--n];
  return p;
}

static char *gen_put_i64(char *p, int64_t v) {
  if (v < 0) {
    *p++ = '-';
    return gen_put_u64(p, (uint64_t)0 - (uint64_t)v);
  }
  return gen_put_u64(p, (uint64_t)v);
}

/* units / 10^decimals as a decimal with exactly `decimals` digits after the point. */
static char *gen_put_decimal(char *p, int64_t units, int decimals) {
  if (units < 0) {
    *p++ = '-';
    units = -units;
  }
  int64_t scale = gen_pow10[decimals];
  p = gen_put_u64(p, (uint64_t)(units / scale));
  if (decimals) {
    *p++ = '.';
    int64_t frac = units % scale;
    for (int i = decimals - 1; i >= 0; i--) {
      p[i] = (char)('0' + frac % 10);
      frac /= 10;
    }
    p += decimals;
  }
  return p;
}

static char *gen_put_str(char *p, const char *s) {
  size_t n = strlen(s);
  memcpy(p, s, n);
  return p + n;
}

#define GEN_TEXT_ROW_MAX 512 /* bytes one row takes in either format, with room to spare */

/* One line of InfluxDB line protocol, newline included; returns its end. */
static char *gen_format_lp(const gen_row *r, char *p) {
  char name[32];
  p = gen_put_str(p, GEN_MEASUREMENT ",device=");
  gen_device_name(r->device, name, sizeof name);
  p = gen_put_str(p, name);
  p = gen_put_str(p, ",line=");
  gen_line_name(r->device, name, sizeof name);
  p = gen_put_str(p, name);
  p = gen_put_str(p, ",site=");
  gen_site_name(r->device, name, sizeof name);
  p = gen_put_str(p, name);
  for (int k = 0; k < GEN_FLOATS; k++) {
    *p++ = k ? ',' : ' ';
    p = gen_put_str(p, gen_fields[k].name);
    *p++ = '=';
    p = gen_put_decimal(p, r->units[k], gen_fields[k].decimals);
  }
  p = gen_put_str(p, ",bottles=");
  p = gen_put_i64(p, r->bottles);
  p = gen_put_str(p, "i,running=");
  p = gen_put_str(p, r->running ? "true" : "false");
  *p++ = ' ';
  p = gen_put_i64(p, r->ts_ns);
  *p++ = '\n';
  return p;
}

/* "YYYY-MM-DDThh:mm:ss.nnnnnnnnnZ" (UTC), the time form of POST /api/v1/telemetry. The date
 * is made by gmtime_r once per day; the rest is arithmetic. */
typedef struct gen_clock {
  int64_t day; /* days since the epoch of `date` */
  char date[16];
} gen_clock;

static char *gen_put_rfc3339(char *p, int64_t ts_ns, gen_clock *c) {
  int64_t s = ts_ns / 1000000000, ns = ts_ns % 1000000000;
  if (ns < 0) {
    ns += 1000000000;
    s--;
  }
  int64_t day = s / 86400, sod = s % 86400;
  if (sod < 0) {
    sod += 86400;
    day--;
  }
  if (day != c->day || !c->date[0]) {
    time_t t = (time_t)(day * 86400);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(c->date, sizeof c->date, "%Y-%m-%dT", &tm);
    c->day = day;
  }
  p = gen_put_str(p, c->date);
  int64_t parts[3] = {sod / 3600, sod / 60 % 60, sod % 60};
  for (int i = 0; i < 3; i++) {
    *p++ = (char)('0' + parts[i] / 10);
    *p++ = (char)('0' + parts[i] % 10);
    *p++ = i < 2 ? ':' : '.';
  }
  for (int i = 8; i >= 0; i--) {
    p[i] = (char)('0' + ns % 10);
    ns /= 10;
  }
  p += 9;
  *p++ = 'Z';
  return p;
}

/* One row in the generic form of POST /api/v1/telemetry (docs/api.md "Telemetry"):
 * {"measurement","tags","time","values"}, the counter as {"int": n} (a bare JSON number is a
 * float there). Returns its end. */
static char *gen_format_json(const gen_row *r, char *p, gen_clock *clock) {
  char name[32];
  p = gen_put_str(p, "{\"measurement\":\"" GEN_MEASUREMENT "\",\"tags\":{\"device\":\"");
  gen_device_name(r->device, name, sizeof name);
  p = gen_put_str(p, name);
  p = gen_put_str(p, "\",\"line\":\"");
  gen_line_name(r->device, name, sizeof name);
  p = gen_put_str(p, name);
  p = gen_put_str(p, "\",\"site\":\"");
  gen_site_name(r->device, name, sizeof name);
  p = gen_put_str(p, name);
  p = gen_put_str(p, "\"},\"time\":\"");
  p = gen_put_rfc3339(p, r->ts_ns, clock);
  p = gen_put_str(p, "\",\"values\":{");
  for (int k = 0; k < GEN_FLOATS; k++) {
    if (k)
      *p++ = ',';
    *p++ = '"';
    p = gen_put_str(p, gen_fields[k].name);
    p = gen_put_str(p, "\":");
    p = gen_put_decimal(p, r->units[k], gen_fields[k].decimals);
  }
  p = gen_put_str(p, ",\"bottles\":{\"int\":");
  p = gen_put_i64(p, r->bottles);
  p = gen_put_str(p, "},\"running\":");
  p = gen_put_str(p, r->running ? "true" : "false");
  p = gen_put_str(p, "}}");
  return p;
}

#define GEN_JSON_HEAD "["
#define GEN_JSON_TAIL "]\n"

static const char usage[] =
    "usage: bench_tsdb_gen [--format lp|json] [--devices N] [--hours H] [--interval-s S]\n"
    "                      [--seed S] [--batch ROWS] [--start-ns NS] [--out FILE]\n"
    "\n"
    "Writes the benchmark data set: lp = InfluxDB line protocol, one row a line; json = one\n"
    "POST /api/v1/telemetry body of --batch rows (default 5000) a line. Defaults: 1000 devices,\n"
    "24 hours at 10 s, seed 1, start 2024-01-01T00:00:00Z, stdout.\n";

static int parse_u64(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-')
    return -1;
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  gen_opts o;
  gen_opts_default(&o);
  const char *format = "lp", *out_path = NULL;
  uint64_t hours = 24, interval_s = 10, batch = 5000;
  for (int i = 1; i < argc; i += 2) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    uint64_t n = 0;
    int bad = 0;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(usage, stdout);
      return 0;
    } else if (!v) {
      bad = 1;
    } else if (strcmp(a, "--format") == 0) {
      format = v;
    } else if (strcmp(a, "--out") == 0) {
      out_path = v;
    } else if (parse_u64(v, &n) < 0) {
      bad = 1;
    } else if (strcmp(a, "--devices") == 0 && n > 0 && n <= 99999) {
      o.devices = (uint32_t)n;
    } else if (strcmp(a, "--hours") == 0 && n > 0 && n <= 24 * 366) {
      hours = n;
    } else if (strcmp(a, "--interval-s") == 0 && n > 0 && n <= 3600) {
      interval_s = n;
    } else if (strcmp(a, "--seed") == 0) {
      o.seed = n;
    } else if (strcmp(a, "--batch") == 0 && n > 0 && n <= 1000000) {
      batch = n;
    } else if (strcmp(a, "--start-ns") == 0 && n < (uint64_t)INT64_MAX / 2) {
      o.start_ns = (int64_t)n;
    } else {
      bad = 1;
    }
    if (bad) {
      fprintf(stderr, "bench_tsdb_gen: bad argument %s%s%s\n%s", a, v ? " " : "", v ? v : "",
              usage);
      return 2;
    }
  }
  int json = strcmp(format, "json") == 0;
  if (!json && strcmp(format, "lp") != 0) {
    fprintf(stderr, "bench_tsdb_gen: --format must be lp or json\n");
    return 2;
  }
  o.interval_ns = (int64_t)interval_s * 1000000000;
  uint64_t steps = hours * 3600 / interval_s;
  if (steps == 0 || steps > UINT32_MAX) {
    fprintf(stderr, "bench_tsdb_gen: --hours and --interval-s give %llu rows per device\n",
            (unsigned long long)steps);
    return 2;
  }
  o.steps = (uint32_t)steps;

  FILE *out = out_path ? fopen(out_path, "wb") : stdout;
  if (!out) {
    fprintf(stderr, "bench_tsdb_gen: %s: %s\n", out_path, strerror(errno));
    return 1;
  }
  gen g;
  if (gen_init(&g, &o) < 0) {
    fprintf(stderr, "bench_tsdb_gen: out of memory or bad options\n");
    return 1;
  }
  /* Rows are formatted into one buffer flushed in large writes. */
  size_t buf_size = 4u << 20;
  char *buf = malloc(buf_size);
  if (!buf)
    return 1;
  char *p = buf;
  gen_row row;
  gen_clock clock = {0, {0}};
  int rc;
  uint64_t in_batch = 0, bytes = 0;
  while ((rc = gen_next(&g, &row)) == 1) {
    if (json) {
      p = in_batch == 0 ? gen_put_str(p, GEN_JSON_HEAD) : gen_put_str(p, ",");
      p = gen_format_json(&row, p, &clock);
      if (++in_batch == batch) {
        p = gen_put_str(p, GEN_JSON_TAIL);
        in_batch = 0;
      }
    } else {
      p = gen_format_lp(&row, p);
    }
    if ((size_t)(p - buf) > buf_size - GEN_TEXT_ROW_MAX) {
      if (fwrite(buf, 1, (size_t)(p - buf), out) != (size_t)(p - buf))
        break;
      bytes += (uint64_t)(p - buf);
      p = buf;
    }
  }
  if (rc < 0) {
    fprintf(stderr, "bench_tsdb_gen: out of memory\n");
    return 1;
  }
  if (json && in_batch)
    p = gen_put_str(p, GEN_JSON_TAIL);
  bytes += (uint64_t)(p - buf);
  if (fwrite(buf, 1, (size_t)(p - buf), out) != (size_t)(p - buf) || fflush(out) != 0 ||
      (out != stdout && fclose(out) != 0)) {
    fprintf(stderr, "bench_tsdb_gen: write failed: %s\n", strerror(errno));
    return 1;
  }
  fprintf(stderr,
          "bench_tsdb_gen: format=%s devices=%u rows=%llu points=%llu late_rows=%llu bytes=%llu "
          "start_ns=%lld end_ns=%lld\n",
          format, o.devices, (unsigned long long)g.rows_out,
          (unsigned long long)g.rows_out * GEN_FIELDS, (unsigned long long)g.rows_late,
          (unsigned long long)bytes, (long long)o.start_ns,
          (long long)(o.start_ns + (int64_t)o.steps * o.interval_ns));
  free(buf);
  gen_free(&g);
  return 0;
}

#endif
