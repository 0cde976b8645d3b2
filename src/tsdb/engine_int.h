/* The engine struct, shared by engine.c (open, write, replay, flush), query.c and lifecycle.c. */
#ifndef PLATEAU_TSDB_ENGINE_INT_H
#define PLATEAU_TSDB_ENGINE_INT_H

#include "tsdb/head_int.h"
#include "tsdb/tsdb_int.h"

struct tsdb {
  tsdb_opts opts;
  char *dir;
  tsdb_wal *wal;
  chunkstore *cs;
  pthread_rwlock_t lock;
  pthread_mutex_t flush_mutex;
  pl_map *groups;  /* canonical key -> group */
  group **by_id;   /* group id -> group (NULL holes) */
  size_t by_id_cap;
  int failed;      /* sticky: a WAL write failed */
  int replaying;
  _Atomic uint64_t wal_bytes_since_checkpoint; /* read by writers without the lock */
  int64_t last_checkpoint_ns;
  /* background flusher */
  pthread_t thread;
  int thread_running;
  int stop;
  int want_checkpoint;
  pthread_mutex_t bg_mutex;
  pthread_cond_t bg_cond;
};

/* Canonical key of (tenant, measurement, sorted tags) into out. tags must be sorted. */
int key_encode(int64_t tenant_id, tsdb_str measurement, const tsdb_tag *tags, size_t ntags, pl_buf *out);
group *group_by_id(tsdb *db, uint64_t id);
int group_field_index(const group *g, const char *name, size_t len);
void group_free(group *g);
/* Removes a group from the indexes (caller holds the write lock) and frees it. */
void group_unlink(tsdb *db, group *g);
/* Re-sorts g->chunks and recomputes their overlap flags. */
void group_chunks_sorted(group *g);
/* Persists every head row (cut all), then trims the WAL. Caller holds flush_mutex. */
int engine_flush(tsdb *db, int all);
/* Appends a delete record for the group with this canonical key to the WAL. */
int engine_log_delete(tsdb *db, int64_t tenant_id, const uint8_t *key, size_t klen, int64_t start_ns, int64_t end_ns);
/* Rewrites chunk ids[0..n) of g as one chunk per partition, without the points in
 * [del_start, del_end) (an empty range deletes nothing); *removed (may be NULL) receives the
 * number of values deleted. The new chunks get newer ids than any other chunk, so the set must
 * hold every chunk of the partitions it touches (a newer chunk left out would lose to it).
 * Caller holds flush_mutex. */
int engine_rewrite_chunks(tsdb *db, group *g, const int64_t *ids, size_t n, int64_t del_start, int64_t del_end,
                          int64_t *removed);
/* Merges the chunks of one partition of g. Caller holds flush_mutex. */
int engine_compact_group(tsdb *db, group *g, int64_t partition);
int64_t engine_partition_of(const tsdb *db, int64_t ts);
/* Encodes a sorted head into chunks and stores them in the open chunk-store transaction. */
int engine_store_frozen(tsdb *db, group *g, const head *h, chunk_meta **metas, size_t *nmetas);
/* Sorts tags by key; PL_EINVAL on a duplicate key. */
int tags_sort(tsdb_tag *tags, size_t n);

#endif
