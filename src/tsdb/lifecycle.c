/* Lifecycle of stored data: deletion of ranges, series and whole tenants; retention; and the
 * rewriting of chunks that compaction and partial deletion share.
 *
 * Deletion order: the WAL delete record first (so a restart cannot bring rows back from the
 * WAL), then chunks.db (durable), then the heads; then a full checkpoint, so the WAL segments
 * that held the deleted rows are removed from disk and SQLite's secure_delete has overwritten
 * the freed pages: deleted data does not linger in any file. */
#include "tsdb/engine_int.h"

#include "base/log.h"

#include <stdlib.h>
#include <string.h>

/* Decodes whole chunks of g into a head, in id order (so later chunks win at equal times). */
static int chunks_to_head(tsdb *db, group *g, const int64_t *ids, size_t n, head *h) {
  pl_buf blob;
  pl_buf_init(&blob, TSDB_CHUNK_BYTES_MAX);
  int rc = 0;
  int64_t *sorted = malloc((n ? n : 1) * sizeof *sorted);
  if (!sorted) return PL_ENOMEM;
  memcpy(sorted, ids, n * sizeof *ids);
  for (size_t i = 1; i < n; i++) {
    int64_t x = sorted[i];
    size_t j = i;
    while (j > 0 && sorted[j - 1] > x) {
      sorted[j] = sorted[j - 1];
      j--;
    }
    sorted[j] = x;
  }
  for (size_t i = 0; i < n && rc == 0; i++) {
    const chunk_meta *m = NULL;
    for (size_t c = 0; c < g->nchunks; c++)
      if (g->chunks[c].id == sorted[i]) m = &g->chunks[c];
    if (!m) continue;
    tsdb_chunk_info info;
    if ((rc = cs_chunk_get(db->cs, m->id, &blob)) < 0 || (rc = tsdb_chunk_info_parse(blob.data, blob.len, &info)) < 0)
      break;
    uint32_t np = info.n_points;
    int64_t *ts = malloc(np * sizeof *ts);
    uint8_t *present = malloc(np);
    head_val *vals = malloc(np * sizeof *vals);
    const char **strs = malloc(np * sizeof *strs);
    uint32_t *lens = malloc(np * sizeof *lens);
    uint8_t *bools = malloc(np);
    pl_buf arena;
    pl_buf_init(&arena, TSDB_CHUNK_BYTES_MAX);
    uint32_t base = h->n;
    if (!ts || !present || !vals || !strs || !lens || !bools) rc = PL_ENOMEM;
    if (rc == 0) rc = tsdb_chunk_decode_ts(&info, ts);
    if (rc == 0) rc = head_reserve(h, np, g->nfields);
    for (uint32_t r = 0; r < np && rc == 0; r++) head_append_row(h, ts[r], 0);
    for (uint32_t c = 0; c < info.n_columns && rc == 0; c++) {
      uint8_t field = m->col_field[c];
      tsdb_type type = info.cols[c].type;
      if (field >= g->nfields || g->field_types[field] != type) {
        rc = PL_ECORRUPT;
        break;
      }
      tsdb_column_out co = {.type = type, .present = present};
      if (type == TSDB_FLOAT) co.v.f = &vals[0].f;
      else if (type == TSDB_INT) co.v.i = &vals[0].i;
      else if (type == TSDB_BOOL) co.v.b = bools;
      else {
        pl_buf_reset(&arena);
        co.v.str.s = strs;
        co.v.str.lens = lens;
        co.v.str.arena = &arena;
      }
      if ((rc = tsdb_chunk_decode_column(&info, c, &co)) < 0) break;
      for (uint32_t r = 0; r < np && rc == 0; r++) {
        if (!present[r]) continue;
        tsdb_value v = {.type = type};
        if (type == TSDB_FLOAT) v.v.f = vals[r].f;
        else if (type == TSDB_INT) v.v.i = vals[r].i;
        else if (type == TSDB_BOOL) v.v.b = bools[r];
        else v.v.s = (tsdb_str){strs[r], lens[r]};
        rc = head_set(h, base + r, field, type, &v);
      }
    }
    free(ts);
    free(present);
    free(vals);
    free(strs);
    free(lens);
    free(bools);
    pl_buf_free(&arena);
  }
  free(sorted);
  pl_buf_free(&blob);
  return rc;
}

int engine_rewrite_chunks(tsdb *db, group *g, const int64_t *ids, size_t n, int64_t del_start, int64_t del_end,
                          int64_t *removed) {
  if (removed) *removed = 0;
  if (n == 0) return 0;
  head h, sorted;
  head_init(&h);
  /* Reading chunk metas of g needs no lock here: only flush_mutex holders change them. */
  int rc = chunks_to_head(db, g, ids, n, &h);
  if (rc == 0) rc = head_take(&h, INT64_MAX, &sorted);
  head_free(&h);
  if (rc < 0) return rc;
  /* Deleting after the merge counts each value once, however many chunks held it. */
  if (del_start < del_end) {
    int gone = head_delete_range(&sorted, del_start, del_end);
    if (removed) *removed = gone;
  }
  chunk_meta *metas = NULL;
  size_t nmetas = 0;
  rc = cs_begin(db->cs);
  if (rc == 0) {
    if (sorted.n) rc = engine_store_frozen(db, g, &sorted, &metas, &nmetas);
    for (size_t i = 0; i < n && rc == 0; i++) rc = cs_chunk_delete(db->cs, ids[i]);
    if (rc == 0) rc = cs_commit(db->cs);
    else cs_rollback(db->cs);
  }
  head_free(&sorted);
  if (rc < 0) {
    for (size_t k = 0; k < nmetas; k++) chunk_meta_free(&metas[k]);
    free(metas);
    return rc;
  }
  pthread_rwlock_wrlock(&db->lock);
  size_t keep = 0;
  for (size_t c = 0; c < g->nchunks; c++) {
    int gone = 0;
    for (size_t i = 0; i < n && !gone; i++) gone = g->chunks[c].id == ids[i];
    if (gone) chunk_meta_free(&g->chunks[c]);
    else g->chunks[keep++] = g->chunks[c];
  }
  g->nchunks = keep;
  for (size_t k = 0; k < nmetas && rc == 0; k++) {
    if (g->nchunks == g->chunks_cap) {
      size_t cap = g->chunks_cap ? g->chunks_cap * 2 : 8;
      chunk_meta *p = realloc(g->chunks, cap * sizeof *p);
      if (!p) {
        rc = PL_ENOMEM;
        break;
      }
      g->chunks = p;
      g->chunks_cap = cap;
    }
    g->chunks[g->nchunks++] = metas[k];
  }
  group_chunks_sorted(g);
  pthread_rwlock_unlock(&db->lock);
  free(metas);
  return rc;
}

int engine_compact_group(tsdb *db, group *g, int64_t partition) {
  int64_t *ids = malloc((g->nchunks ? g->nchunks : 1) * sizeof *ids);
  if (!ids) return PL_ENOMEM;
  size_t n = 0;
  pthread_rwlock_rdlock(&db->lock);
  for (size_t c = 0; c < g->nchunks; c++)
    if (!g->chunks[c].summary && engine_partition_of(db, g->chunks[c].start_ts) == partition)
      ids[n++] = g->chunks[c].id;
  pthread_rwlock_unlock(&db->lock);
  int rc = n > 1 ? engine_rewrite_chunks(db, g, ids, n, 0, 0, NULL) : 0;
  free(ids);
  return rc;
}

int64_t tsdb_delete(tsdb *db, int64_t tenant_id, tsdb_str measurement, uint64_t group_id, int64_t start_ns,
                    int64_t end_ns, pl_err *err) {
  if (start_ns >= end_ns) return 0;
  int whole = start_ns == INT64_MIN && end_ns == INT64_MAX;
  pthread_mutex_lock(&db->flush_mutex);
  /* The groups to act on. */
  pthread_rwlock_rdlock(&db->lock);
  size_t cap = 16, n = 0;
  group **gs = malloc(cap * sizeof *gs);
  int rc = gs ? 0 : PL_ENOMEM;
  for (size_t id = 1; id < db->by_id_cap && rc == 0; id++) {
    group *g = db->by_id[id];
    if (!g || g->tenant_id != tenant_id || (group_id && g->id != group_id)) continue;
    if (measurement.p && (g->measurement.len != measurement.len ||
                          memcmp(g->measurement.p, measurement.p, measurement.len) != 0))
      continue;
    if (n == cap) {
      group **p = realloc(gs, (cap *= 2) * sizeof *p);
      if (!p) {
        rc = PL_ENOMEM;
        break;
      }
      gs = p;
    }
    gs[n++] = g;
  }
  pthread_rwlock_unlock(&db->lock);
  int64_t deleted = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    group *g = gs[i];
    if ((rc = engine_log_delete(db, tenant_id, g->key, g->key_len, start_ns, end_ns)) < 0) {
      pl_err_set(err, PL_ESTATE, "the deletion could not be logged");
      break;
    }
    /* Chunks: drop those inside the range, rewrite those that straddle it. */
    int64_t *partial = malloc((g->nchunks ? g->nchunks : 1) * sizeof *partial);
    size_t np = 0;
    if (!partial) {
      rc = PL_ENOMEM;
      break;
    }
    rc = cs_begin(db->cs);
    for (size_t c = 0; c < g->nchunks && rc == 0; c++) {
      const chunk_meta *m = &g->chunks[c];
      if (m->end_ts < start_ns || m->start_ts >= end_ns) continue;
      if (m->summary) {
        /* A rollup cannot be cut: one that touches the range goes with it. */
        rc = cs_rollup_delete(db->cs, -m->id);
      } else if (m->start_ts >= start_ns && m->end_ts < end_ns) {
        rc = cs_chunk_delete(db->cs, m->id);
        for (uint8_t k = 0; k < m->ncols; k++) deleted += m->stats[k].count;
      } else {
        partial[np++] = m->id;
      }
    }
    if (rc == 0 && whole) rc = cs_group_delete(db->cs, g->id);
    if (rc == 0) rc = cs_commit(db->cs);
    else cs_rollback(db->cs);
    if (rc < 0) {
      free(partial);
      pl_err_set(err, rc, "the chunk store failed while deleting");
      break;
    }
    pthread_rwlock_wrlock(&db->lock);
    if (whole) {
      for (uint32_t c = 0; c < g->head.ncols; c++)
        for (uint32_t r = 0; r < g->head.n; r++) deleted += g->head.cols[c].present[r];
      group_unlink(db, g);
      pthread_rwlock_unlock(&db->lock);
      free(partial);
      continue;
    }
    size_t keep = 0;
    for (size_t c = 0; c < g->nchunks; c++) {
      chunk_meta *m = &g->chunks[c];
      int touches = !(m->end_ts < start_ns || m->start_ts >= end_ns);
      if (touches && (m->summary || (m->start_ts >= start_ns && m->end_ts < end_ns)))
        chunk_meta_free(m);
      else
        g->chunks[keep++] = *m;
    }
    g->nchunks = keep;
    group_chunks_sorted(g);
    deleted += head_delete_range(&g->head, start_ns, end_ns);
    pthread_rwlock_unlock(&db->lock);
    if (np) {
      /* Rewrite every chunk of the partitions the cut chunks are in, not only those: the
       * rewritten chunk is newest, and must not outrank a newer chunk it did not include. */
      size_t nall = 0;
      int64_t *all = malloc((g->nchunks ? g->nchunks : 1) * sizeof *all);
      if (!all) {
        rc = PL_ENOMEM;
      } else {
        for (size_t c = 0; c < g->nchunks; c++) {
          const chunk_meta *m = &g->chunks[c];
          if (m->summary) continue;
          int64_t part = engine_partition_of(db, m->start_ts);
          int in = 0;
          for (size_t k = 0; k < np && !in; k++) {
            for (size_t q = 0; q < g->nchunks && !in; q++)
              if (g->chunks[q].id == partial[k]) in = engine_partition_of(db, g->chunks[q].start_ts) == part;
          }
          if (in) all[nall++] = m->id;
        }
        int64_t gone = 0;
        rc = engine_rewrite_chunks(db, g, all, nall, start_ns, end_ns, &gone);
        deleted += gone;
        free(all);
      }
      if (rc < 0) pl_err_set(err, rc, "rewriting chunks failed while deleting");
    }
    free(partial);
  }
  free(gs);
  if (rc == 0 && n) rc = engine_flush(db, 1);
  pthread_mutex_unlock(&db->flush_mutex);
  if (rc < 0) return rc;
  return deleted;
}

int tsdb_retention_apply(tsdb *db, int64_t tenant_id, int64_t retention_ns, int64_t now_ns) {
  if (retention_ns <= 0) return 0;
  int64_t cutoff = now_ns - retention_ns;
  pthread_mutex_lock(&db->flush_mutex);
  int rc = 0, dropped = 0;
  for (size_t id = 1; rc == 0; id++) {
    pthread_rwlock_rdlock(&db->lock);
    /* Writers may grow the table between iterations: read its size locked. */
    if (id >= db->by_id_cap) {
      pthread_rwlock_unlock(&db->lock);
      break;
    }
    group *g = db->by_id[id];
    int any = 0;
    if (g && g->tenant_id == tenant_id)
      for (size_t c = 0; c < g->nchunks && !any; c++) any = !g->chunks[c].summary && g->chunks[c].end_ts < cutoff;
    pthread_rwlock_unlock(&db->lock);
    if (!any) continue;
    /* Each dropped chunk leaves its statistics behind as a rollup; the new ids are taken into
     * copies and published under the lock after the commit. */
    int64_t *new_ids = calloc(g->nchunks ? g->nchunks : 1, sizeof *new_ids);
    rc = new_ids ? cs_begin(db->cs) : PL_ENOMEM;
    for (size_t c = 0; c < g->nchunks && rc == 0; c++) {
      chunk_meta *m = &g->chunks[c];
      if (m->summary || m->end_ts >= cutoff) continue;
      chunk_meta copy = *m;
      rc = cs_rollup_put(db->cs, g->id, &copy);
      if (rc == 0) rc = cs_chunk_delete(db->cs, m->id);
      new_ids[c] = copy.id;
    }
    if (rc == 0) rc = cs_commit(db->cs);
    else if (new_ids) cs_rollback(db->cs);
    if (rc < 0) {
      free(new_ids);
      break;
    }
    pthread_rwlock_wrlock(&db->lock);
    for (size_t c = 0; c < g->nchunks; c++) {
      if (!new_ids[c]) continue;
      g->chunks[c].id = new_ids[c];
      g->chunks[c].summary = 1;
      g->chunks[c].bytes = 0;
      dropped++;
    }
    free(new_ids);
    group_chunks_sorted(g);
    head_delete_range(&g->head, INT64_MIN, cutoff);
    pthread_rwlock_unlock(&db->lock);
  }
  pthread_mutex_unlock(&db->flush_mutex);
  if (dropped) PL_LOG(PL_LOG_INFO, "tsdb", "retention tenant=%lld dropped_chunks=%d", (long long)tenant_id, dropped);
  return rc < 0 ? rc : dropped;
}
