/* The time-series engine: durable, compressed storage of equipment data, and the queries that
 * charts, alarms and traceability read it back with.
 *
 * Model (ARCHITECTURE.md "Data model"): a series is (tenant, measurement, sorted tag set,
 * field). The fields of one (tenant, measurement, tag set) -- a *group*, e.g. one device --
 * arrive together and are stored together: one shared timestamp column and one value column per
 * field in each chunk (aligned series), so a timestamp is stored once per row, not per field.
 *
 * Write path: a batch of rows -> validated (types, limits, out-of-order window) -> one WAL
 * record -> appended to each group's in-memory head -> acknowledged when the WAL record is
 * durable under the fsync policy. Heads are cut into immutable compressed chunks at partition
 * boundaries (default 1 h of event time) or when full, and persisted in the chunk store
 * (`DIR/chunks.db`, SQLite); after a checkpoint the WAL before it is deleted.
 *
 * Read path: chunks overlapping the range (from an in-memory chunk index; whole-chunk
 * aggregates come from the chunk statistics without decoding) merged with the head. A point
 * written again with the same series and timestamp replaces the earlier one.
 *
 * Rollups: every chunk is one partition (an hour) of one group, and its statistics are an hour
 * rollup of each field. Retention keeps them when it drops the points, so long-range hourly
 * (and coarser) aggregates outlive the raw data.
 *
 * Thread safety: every function may be called from any thread concurrently, except open and
 * close. Callbacks run while the engine holds a read lock: they must not call back into the
 * engine.
 */
#ifndef PLATEAU_TSDB_TSDB_H
#define PLATEAU_TSDB_TSDB_H

#include "base/buf.h"
#include "base/err.h"
#include "tsdb/codec.h"
#include "tsdb/wal.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tsdb tsdb;

/* Limits on what one write may contain; exceeding any is PL_ELIMIT or PL_EINVAL with a message. */
#define TSDB_NAME_BYTES_MAX 256      /* measurement, tag key, tag value, field name */
#define TSDB_TAGS_MAX 64             /* tags per row */
#define TSDB_FIELDS_PER_GROUP_MAX 64 /* distinct fields in one group (= chunk columns) */
#define TSDB_STRING_BYTES_MAX 65536  /* one string value */

typedef struct tsdb_opts {
  const char *dir;                  /* engine directory (created if missing): wal/, chunks.db */
  tsdb_fsync_policy fsync;          /* default TSDB_FSYNC_INTERVAL when fsync_set is 0 */
  int fsync_set;                    /* 1 when fsync above was chosen (ALWAYS is the zero value) */
  int64_t fsync_interval_ns;        /* 0 = 100 ms */
  int64_t ooo_window_ns;            /* how late a point may arrive behind its series; 0 = 1 h
                                       (the daemon passes its tsdb_ooo_window, 7 days) */
  int64_t partition_ns;             /* chunk time boundary; 0 = 1 h */
  uint32_t head_rows_max;           /* rows after which a head is cut early; 0 = 8192 */
  int64_t checkpoint_interval_ns;   /* flush heads and trim the WAL at least this often; 0 = 5 min */
  size_t checkpoint_wal_bytes;      /* ... or when the WAL grows past this; 0 = 256 MiB */
  int background;                   /* 1: run flushes on the engine's own thread (the daemon);
                                       0: only when tsdb_checkpoint is called (tests, tools) */
} tsdb_opts;

/* Opens the engine: loads the series and chunk indexes and replays the WAL (a torn tail is cut
 * and logged). *out is written only on success. */
int tsdb_open(const tsdb_opts *opts, tsdb **out, pl_err *err);
/* Flushes every head, checkpoints, stops the background thread and frees. NULL is a no-op. */
void tsdb_close(tsdb *db);

/* ---- writing ---- */

typedef struct tsdb_str {
  const char *p;
  size_t len;
} tsdb_str;

typedef struct tsdb_tag {
  tsdb_str key, value;
} tsdb_tag;

typedef struct tsdb_value {
  tsdb_type type;
  union {
    double f;
    int64_t i;
    int b;
    tsdb_str s;
  } v;
} tsdb_value;

typedef struct tsdb_field {
  tsdb_str name;
  tsdb_value value;
} tsdb_field;

/* One row: the values of some fields of one group at one time. Tags may come in any order
 * (the engine sorts them); a tag key given twice is PL_EINVAL. All memory is borrowed for the
 * duration of the call. */
typedef struct tsdb_row {
  tsdb_str measurement;
  const tsdb_tag *tags;
  size_t ntags;
  int64_t ts_ns;
  const tsdb_field *fields;
  size_t nfields;
} tsdb_row;

typedef struct tsdb_write_stats {
  size_t rows, points;    /* stored */
  size_t series_created;  /* new (group, field) pairs */
} tsdb_write_stats;

/* Writes rows for tenant_id atomically: either every row is stored (and durable under the
 * fsync policy when this returns 0) or none is. Rejected with PL_EINVAL and a message naming
 * the row (its index) for: empty names, names over TSDB_NAME_BYTES_MAX, invalid UTF-8 in names,
 * duplicate tag keys, a field whose type differs from the type the series already has
 * (PL_ECONFLICT), a point older than the out-of-order window behind its series (PL_EINVAL),
 * too many fields. PL_ESTATE once the engine has failed (a WAL write or fsync failed): it then
 * refuses every write until restarted. stats may be NULL. */
int tsdb_write(tsdb *db, int64_t tenant_id, const tsdb_row *rows, size_t nrows, tsdb_write_stats *stats,
               pl_err *err);

/* ---- finding series ---- */

/* A group as seen by a query callback. Pointers are valid only during the callback. */
typedef struct tsdb_group_info {
  uint64_t id;
  int64_t tenant_id;
  tsdb_str measurement;
  const tsdb_tag *tags; /* sorted by key */
  size_t ntags;
  size_t nfields;
  const tsdb_str *field_names;  /* nfields entries */
  const tsdb_type *field_types; /* nfields entries */
  int64_t first_ts, last_ts;    /* of all its data (0, 0 when it has none) */
} tsdb_group_info;

/* Calls cb for every group of tenant_id whose measurement equals `measurement` (all groups
 * when measurement.p is NULL), in group id order. cb returns 0 to go on, 1 to stop, or a
 * negative code, which is returned. Returns the number of groups visited. */
int tsdb_groups(tsdb *db, int64_t tenant_id, tsdb_str measurement,
                int (*cb)(void *ctx, const tsdb_group_info *g), void *ctx);
/* The group with exactly this measurement and tag set (tags in any order), or PL_ENOTFOUND. */
int tsdb_group_find(tsdb *db, int64_t tenant_id, tsdb_str measurement, const tsdb_tag *tags, size_t ntags,
                    uint64_t *group_id);

/* ---- reading ---- */

/* Points of one series, ascending by time, without duplicates. Arrays are owned by the struct
 * and grow as needed; strings point into `arena`. */
typedef struct tsdb_points {
  size_t n, cap;
  tsdb_type type;
  int64_t *ts;
  double *f;     /* FLOAT */
  int64_t *i;    /* INT */
  uint8_t *b;    /* BOOL */
  const char **s; /* STRING */
  uint32_t *slen;
  pl_buf arena;
} tsdb_points;

void tsdb_points_init(tsdb_points *p);
void tsdb_points_free(tsdb_points *p);

/* Reads the points of field `field` of group group_id with start_ns <= ts < end_ns into out
 * (replacing its contents). At most limit points (0: no limit); descending takes the newest
 * `limit` points (out is still ascending). PL_ENOTFOUND for an unknown group or field, or one
 * of another tenant. */
int tsdb_read(tsdb *db, int64_t tenant_id, uint64_t group_id, const char *field, int64_t start_ns, int64_t end_ns,
              size_t limit, int descending, tsdb_points *out);

/* Aggregates over time buckets. */
typedef enum {
  TSDB_AGG_COUNT = 1 << 0,
  TSDB_AGG_SUM = 1 << 1,
  TSDB_AGG_MEAN = 1 << 2,
  TSDB_AGG_MIN = 1 << 3,
  TSDB_AGG_MAX = 1 << 4,
  TSDB_AGG_FIRST = 1 << 5,
  TSDB_AGG_LAST = 1 << 6,
  TSDB_AGG_STDDEV = 1 << 7,     /* sample standard deviation, as InfluxDB */
  TSDB_AGG_PERCENTILE = 1 << 8, /* nearest-rank percentile p (tsdb_agg_spec.percentile) */
  TSDB_AGG_MEDIAN = 1 << 9,
  TSDB_AGG_SPREAD = 1 << 10,    /* max - min */
} tsdb_agg;

typedef enum { TSDB_FILL_NONE, TSDB_FILL_NULL, TSDB_FILL_PREVIOUS, TSDB_FILL_LINEAR, TSDB_FILL_VALUE } tsdb_fill;

typedef struct tsdb_agg_spec {
  int64_t start_ns, end_ns; /* start <= ts < end */
  int64_t bucket_ns;        /* 0: one bucket over the whole range */
  int64_t offset_ns;        /* buckets start at offset + k * bucket_ns (InfluxDB GROUP BY time(i, o)) */
  unsigned aggs;            /* TSDB_AGG_* bits */
  double percentile;        /* 0..100 for TSDB_AGG_PERCENTILE */
  tsdb_fill fill;
  double fill_value;
} tsdb_agg_spec;

/* One bucket's results. `present` is 0 for an empty bucket (then the values are the fill's,
 * and with fill null they are meaningless: print null). first/last carry their timestamps. */
typedef struct tsdb_bucket {
  int64_t start_ns;
  int present;
  uint64_t count;
  double sum, mean, min, max, first, last, stddev, percentile, median, spread;
  int64_t first_ts, last_ts;
} tsdb_bucket;

typedef struct tsdb_buckets {
  size_t n, cap;
  tsdb_bucket *b;
} tsdb_buckets;

void tsdb_buckets_free(tsdb_buckets *b);

/* Aggregates field `field` of group group_id. Numeric fields only (INT and BOOL count as
 * numbers), except COUNT/FIRST/LAST which work for strings too (their values are then 0).
 * Buckets with no points are emitted only when fill is not NONE. Whole chunks inside one
 * bucket are answered from their statistics when the aggregates allow it (count, sum, mean,
 * min, max, first, last, spread). At most 1,000,000 buckets (PL_ELIMIT). */
int tsdb_aggregate(tsdb *db, int64_t tenant_id, uint64_t group_id, const char *field, const tsdb_agg_spec *spec,
                   tsdb_buckets *out);

/* The newest point of every field of the group: calls cb once per field that has data. */
int tsdb_latest(tsdb *db, int64_t tenant_id, uint64_t group_id,
                int (*cb)(void *ctx, tsdb_str field, int64_t ts_ns, const tsdb_value *v), void *ctx);

/* ---- lifecycle ---- */

/* Deletes points with start_ns <= ts < end_ns of the given group (group_id 0: every group of
 * the tenant whose measurement matches; measurement.p NULL: all), or whole series when the
 * range is unbounded (INT64_MIN, INT64_MAX). The deletion is logged in the WAL (so a restart
 * does not resurrect the data) and the freed storage is overwritten (SQLite secure_delete).
 * Returns the number of points deleted (approximate for chunks cut in part), or an error. */
int64_t tsdb_delete(tsdb *db, int64_t tenant_id, tsdb_str measurement, uint64_t group_id, int64_t start_ns,
                    int64_t end_ns, pl_err *err);
/* Drops the points of every chunk of the tenant whose newest point is older than
 * now - retention_ns, keeping each chunk's statistics as an hour rollup: aggregates over whole
 * partitions (count, sum, mean, min, max, first, last, spread) still answer for that time;
 * raw reads and finer buckets find nothing there. Returns the number of chunks dropped. */
int tsdb_retention_apply(tsdb *db, int64_t tenant_id, int64_t retention_ns, int64_t now_ns);
/* Writes the ids of the tenants that have data (at most max, ascending) to out; returns how
 * many there are in all. */
int tsdb_tenants(tsdb *db, int64_t *out, size_t max);
/* Persists every head, merges small and overlapping chunks, trims the WAL. */
int tsdb_checkpoint(tsdb *db);

typedef struct tsdb_info {
  uint64_t groups, series, chunks;
  uint64_t rollups;          /* hour summaries kept after retention dropped their points */
  uint64_t points_in_chunks, points_in_heads;
  uint64_t chunk_bytes;      /* encoded chunk bytes */
  uint64_t wal_bytes;
  int failed;                /* 1 when writes are refused after a durability failure */
} tsdb_info;
void tsdb_info_get(tsdb *db, int64_t tenant_id /* 0: all */, tsdb_info *out);

#endif
