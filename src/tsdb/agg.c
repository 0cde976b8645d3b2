/* Aggregation over time buckets: accumulators fed with points or with whole-chunk statistics,
 * the results InfluxDB's functions give (sample stddev, nearest-rank percentile, median as the
 * mean of the two middle values), and the fill modes for empty buckets. */
#include "tsdb/tsdb_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int64_t agg_bucket_start(int64_t ts, int64_t bucket_ns, int64_t offset_ns) {
  if (bucket_ns <= 0) return ts;
  /* Floor division that is correct for negative times too; computed in unsigned arithmetic
   * so that extreme timestamps cannot overflow. */
  int64_t off = offset_ns % bucket_ns;
  if (off < 0) off += bucket_ns;
  int64_t rel = (int64_t)((uint64_t)ts - (uint64_t)off);
  int64_t q = rel / bucket_ns;
  if (rel % bucket_ns < 0) q--;
  return (int64_t)((uint64_t)q * (uint64_t)bucket_ns + (uint64_t)off);
}

void agg_reset(agg_acc *a) {
  double *vals = a->vals;
  size_t cap = a->cap;
  memset(a, 0, sizeof *a);
  a->vals = vals;
  a->cap = cap;
  a->welford_ok = 1;
  a->min = NAN;
  a->max = NAN;
}

void agg_free(agg_acc *a) {
  free(a->vals);
  a->vals = NULL;
  a->cap = a->nvals = 0;
}

int agg_add(agg_acc *a, int64_t ts, double v, unsigned aggs) {
  a->count++;
  a->sum += v;
  if (!isnan(v)) {
    if (isnan(a->min) || v < a->min) a->min = v;
    if (isnan(a->max) || v > a->max) a->max = v;
  }
  if (a->count == 1 || ts < a->first_ts) {
    a->first_ts = ts;
    a->first = v;
  }
  if (a->count == 1 || ts >= a->last_ts) {
    a->last_ts = ts;
    a->last = v;
  }
  if (aggs & TSDB_AGG_STDDEV) {
    double delta = v - a->mean;
    a->mean += delta / (double)a->count;
    a->m2 += delta * (v - a->mean);
  }
  if (aggs & (TSDB_AGG_PERCENTILE | TSDB_AGG_MEDIAN)) {
    if (a->nvals == a->cap) {
      size_t cap = a->cap ? a->cap * 2 : 256;
      double *p = realloc(a->vals, cap * sizeof *p);
      if (!p) return PL_ENOMEM;
      a->vals = p;
      a->cap = cap;
    }
    a->vals[a->nvals++] = v;
  }
  return 0;
}

void agg_add_stats(agg_acc *a, const tsdb_stats *s, int64_t first_ts, int64_t last_ts) {
  if (!s->count) return;
  int empty = a->count == 0;
  a->count += s->count;
  a->sum += s->sum;
  if (!isnan(s->min) && (isnan(a->min) || s->min < a->min)) a->min = s->min;
  if (!isnan(s->max) && (isnan(a->max) || s->max > a->max)) a->max = s->max;
  if (empty || first_ts < a->first_ts) {
    a->first_ts = first_ts;
    a->first = s->first;
  }
  if (empty || last_ts >= a->last_ts) {
    a->last_ts = last_ts;
    a->last = s->last;
  }
  a->welford_ok = 0;
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return a < b ? -1 : a > b;
}

void agg_finish(agg_acc *a, const tsdb_agg_spec *spec, tsdb_bucket *out) {
  out->present = a->count > 0;
  out->count = a->count;
  out->sum = a->sum;
  out->mean = a->count ? a->sum / (double)a->count : NAN;
  out->min = a->min;
  out->max = a->max;
  out->spread = a->max - a->min;
  out->first = a->first;
  out->last = a->last;
  out->first_ts = a->first_ts;
  out->last_ts = a->last_ts;
  out->stddev = a->count > 1 && a->welford_ok ? sqrt(a->m2 / (double)(a->count - 1)) : NAN;
  out->percentile = out->median = NAN;
  if (a->nvals) {
    qsort(a->vals, a->nvals, sizeof *a->vals, cmp_double);
    size_t n = a->nvals;
    out->median = n % 2 ? a->vals[n / 2] : (a->vals[n / 2 - 1] + a->vals[n / 2]) / 2;
    double rank = floor((double)n * spec->percentile / 100.0 + 0.5) - 1;
    if (rank >= 0 && rank < (double)n) out->percentile = a->vals[(size_t)rank];
  }
}

int buckets_push(tsdb_buckets *b, const tsdb_bucket *x) {
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    tsdb_bucket *p = realloc(b->b, cap * sizeof *p);
    if (!p) return PL_ENOMEM;
    b->b = p;
    b->cap = cap;
  }
  b->b[b->n++] = *x;
  return 0;
}

void tsdb_buckets_free(tsdb_buckets *b) {
  free(b->b);
  b->b = NULL;
  b->n = b->cap = 0;
}

static void set_values(tsdb_bucket *t, double v) {
  t->sum = t->mean = t->min = t->max = t->first = t->last = t->stddev = t->percentile = t->median = t->spread = v;
}

static double lerp(double a, double b, double f) {
  return a + (b - a) * f;
}

int agg_fill(tsdb_buckets *b, const tsdb_agg_spec *spec, int64_t first_bucket, int64_t last_bucket) {
  if (spec->fill == TSDB_FILL_NONE || spec->bucket_ns <= 0) return 0;
  uint64_t total = (uint64_t)(last_bucket - first_bucket) / (uint64_t)spec->bucket_ns + 1;
  if (total > 1000000) return PL_ELIMIT;
  tsdb_bucket *all = calloc(total, sizeof *all);
  if (!all) return PL_ENOMEM;
  size_t j = 0;
  for (uint64_t k = 0; k < total; k++) {
    int64_t start = first_bucket + (int64_t)k * spec->bucket_ns;
    if (j < b->n && b->b[j].start_ns == start) {
      all[k] = b->b[j++];
      continue;
    }
    all[k].start_ns = start;
    all[k].present = 0;
    set_values(&all[k], NAN);
    if (spec->fill == TSDB_FILL_VALUE) {
      set_values(&all[k], spec->fill_value);
      all[k].count = spec->fill_value > 0 ? (uint64_t)spec->fill_value : 0;
    }
  }
  if (spec->fill == TSDB_FILL_PREVIOUS) {
    /* A filled bucket passes its values on, so a run of empty buckets repeats the last real one. */
    int valid = all[0].present;
    for (uint64_t k = 1; k < total; k++) {
      if (all[k].present) {
        valid = 1;
      } else if (valid) {
        int64_t start = all[k].start_ns;
        all[k] = all[k - 1];
        all[k].start_ns = start;
        all[k].present = 0;
      }
    }
  } else if (spec->fill == TSDB_FILL_LINEAR) {
    uint64_t prev = UINT64_MAX;
    for (uint64_t k = 0; k < total; k++) {
      if (!all[k].present) continue;
      if (prev != UINT64_MAX && k - prev > 1) {
        for (uint64_t m = prev + 1; m < k; m++) {
          double f = (double)(m - prev) / (double)(k - prev);
          tsdb_bucket *t = &all[m], *x = &all[prev], *y = &all[k];
          t->sum = lerp(x->sum, y->sum, f), t->mean = lerp(x->mean, y->mean, f);
          t->min = lerp(x->min, y->min, f), t->max = lerp(x->max, y->max, f);
          t->first = lerp(x->first, y->first, f), t->last = lerp(x->last, y->last, f);
          t->stddev = lerp(x->stddev, y->stddev, f), t->percentile = lerp(x->percentile, y->percentile, f);
          t->median = lerp(x->median, y->median, f), t->spread = lerp(x->spread, y->spread, f);
          t->count = (uint64_t)llround(lerp((double)x->count, (double)y->count, f));
        }
      }
      prev = k;
    }
  }
  free(b->b);
  b->b = all;
  b->n = b->cap = total;
  return 0;
}
