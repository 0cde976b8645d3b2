/* Internals of the time-series engine shared by its files: groups and their heads, the
 * in-memory chunk index, the chunk store (chunks.db), WAL record encoding, aggregation.
 *
 * Locking (see engine.c for the full story):
 *   db->lock (rwlock) guards the group map and table, every head, the chunk index of every
 *     group. Writers hold it exclusively for validation + WAL write + head append; queries
 *     hold it shared while they copy what they need, then decode chunks without it.
 *   db->flush_mutex serialises the flusher, compaction, deletion and retention: the only
 *     code paths that change chunks.
 */
#ifndef PLATEAU_TSDB_INT_H
#define PLATEAU_TSDB_INT_H

#include "base/map.h"
#include "tsdb/tsdb.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

/* A value in a head column: floats and ints as themselves, bools as 0/1, strings as an
 * offset and length into the head's string arena. */
typedef union head_val {
  double f;
  int64_t i;
  struct {
    uint32_t off, len;
  } s;
} head_val;

typedef struct head_col {
  head_val *vals;   /* cap entries */
  uint8_t *present; /* cap entries */
} head_col;

/* Rows not yet in chunks, in arrival order. */
typedef struct head {
  uint32_t n, cap;
  int64_t *ts;
  uint64_t *lsn; /* WAL record of each row, to know what the WAL must keep */
  uint32_t ncols;
  head_col *cols; /* one per group field (ncols may lag nfields until a row uses it) */
  pl_buf strings;
  int sorted;  /* ts strictly ascending in arrival order */
  int64_t min_ts, max_ts;
  uint64_t min_lsn;
} head;

/* What the index knows of a persisted chunk without reading it. */
typedef struct chunk_meta {
  int64_t id; /* chunks.db rowid; larger is newer */
  int64_t start_ts, end_ts; /* inclusive */
  uint32_t nrows;
  uint8_t ncols;
  uint8_t overlaps;          /* its range meets another chunk of the group */
  uint8_t summary;           /* a rollup: statistics only, its points were dropped by retention
                                (id is minus the rollups.id) */
  uint8_t *col_field;        /* ncols group field indices */
  uint8_t *col_full;         /* ncols flags: the column has a value in every row */
  tsdb_stats *stats;         /* ncols */
  uint32_t bytes;
} chunk_meta;

typedef struct group {
  uint64_t id;
  int64_t tenant_id;
  uint8_t *key; /* canonical key bytes (see engine.c) */
  size_t key_len;
  tsdb_str measurement; /* into key */
  tsdb_tag *tags;       /* into key */
  size_t ntags;
  uint32_t nfields;
  tsdb_str *field_names; /* owned strings */
  tsdb_type *field_types;
  head head;
  head *frozen;       /* rows being written to chunks by the flusher, or NULL */
  chunk_meta *chunks; /* sorted by (start_ts, id) */
  size_t nchunks, chunks_cap;
  int64_t chunks_max_end; /* newest end of any chunk (INT64_MIN without chunks), kept by
                             group_chunks_sorted so queries need not scan the list */
  uint64_t persisted_lsn; /* rows with lsn <= this are in chunks */
  int dirty_fields;       /* fields changed since last persisted in chunks.db */
} group;

/* ---- chunk store (chunkstore.c) ---- */
typedef struct chunkstore chunkstore;
int cs_open(const char *path, chunkstore **out, pl_err *err);
void cs_close(chunkstore *cs);
/* Loads every group and chunk meta: calls the callbacks in id order. */
int cs_load(chunkstore *cs, int (*on_group)(void *ctx, uint64_t id, int64_t tenant_id, const uint8_t *key, size_t klen,
                                            const uint8_t *fields, size_t flen, uint64_t persisted_lsn),
            int (*on_chunk)(void *ctx, uint64_t group_id, const chunk_meta *m), void *ctx);
/* Inserts or updates a group row (fields encoded by the caller). Returns the id for inserts. */
int cs_group_put(chunkstore *cs, uint64_t id, int64_t tenant_id, const uint8_t *key, size_t klen,
                 const uint8_t *fields, size_t flen, uint64_t persisted_lsn, uint64_t *id_out);
int cs_group_delete(chunkstore *cs, uint64_t id);
int cs_begin(chunkstore *cs);
int cs_commit(chunkstore *cs);
int cs_rollback(chunkstore *cs);
/* Inserts a chunk; fills m->id. */
int cs_chunk_put(chunkstore *cs, uint64_t group_id, chunk_meta *m, const uint8_t *data, size_t len);
int cs_chunk_delete(chunkstore *cs, int64_t chunk_id);
/* Keeps the statistics of a chunk as an hour rollup (fills m->id with minus the rollup id). */
int cs_rollup_put(chunkstore *cs, uint64_t group_id, chunk_meta *m);
int cs_rollup_delete(chunkstore *cs, int64_t rollup_id);
/* Reads a chunk's bytes into out (replacing its contents). PL_ENOTFOUND when it is gone.
 * Thread-safe: uses a connection of the reader pool. */
int cs_chunk_get(chunkstore *cs, int64_t chunk_id, pl_buf *out);
int64_t cs_bytes(chunkstore *cs);
/* Gives freed pages back to the file system, a bounded number per call. */
void cs_vacuum(chunkstore *cs);

/* Stats serialisation for chunk metas. */
int cs_meta_encode(const chunk_meta *m, pl_buf *out);
int cs_meta_decode(const uint8_t *p, size_t len, chunk_meta *m);
void chunk_meta_free(chunk_meta *m);
/* Fills a meta (stats, columns) from a parsed chunk. col_field maps chunk columns to fields. */
int chunk_meta_from_info(const tsdb_chunk_info *info, const uint8_t *col_field, chunk_meta *m);

/* ---- aggregation (agg.c) ---- */
/* Accumulates one bucket. */
typedef struct agg_acc {
  uint64_t count;
  double sum, min, max;
  double first, last;
  int64_t first_ts, last_ts;
  double mean, m2; /* Welford, for stddev */
  int welford_ok;  /* only points were fed (stats chunks cannot give m2) */
  double *vals;    /* for percentile/median */
  size_t nvals, cap;
} agg_acc;

void agg_reset(agg_acc *a);
void agg_free(agg_acc *a);
int agg_add(agg_acc *a, int64_t ts, double v, unsigned aggs);
void agg_add_stats(agg_acc *a, const tsdb_stats *s, int64_t first_ts, int64_t last_ts);
/* Writes the bucket's results. */
void agg_finish(agg_acc *a, const tsdb_agg_spec *spec, tsdb_bucket *out);
/* Adds the empty buckets the fill mode asks for, in place (buckets sorted by start). */
int agg_fill(tsdb_buckets *b, const tsdb_agg_spec *spec, int64_t first_bucket, int64_t last_bucket);
int64_t agg_bucket_start(int64_t ts, int64_t bucket_ns, int64_t offset_ns);
int buckets_push(tsdb_buckets *b, const tsdb_bucket *x);

/* ---- points helpers (query.c) ---- */
int points_reserve(tsdb_points *p, size_t n);

#endif
