/* The chunk store: chunks.db, an SQLite database (WAL mode, synchronous=FULL, secure_delete)
 * holding the series groups and their immutable chunks.
 *
 *   groups(id, tenant_id, key BLOB UNIQUE, fields BLOB, persisted_lsn)
 *   chunks(id, group_id, start_ts, end_ts, nrows, meta BLOB, data BLOB)
 *   rollups(id, group_id, start_ts, end_ts, nrows, meta BLOB)
 *
 * A rollup is what retention leaves of a chunk: its per-column statistics (count, sum, min,
 * max, first, last over its partition, an hour by default), so long-range aggregates still
 * answer after the points are gone.
 * `meta` carries what the in-memory index needs (column to field map, per-column statistics)
 * so start-up reads no chunk data. Writes come from the engine's write path (new groups) and
 * its flusher, serialised on one connection by a recursive mutex (a transaction holds it from
 * cs_begin to cs_commit); reads of chunk data use a small pool of read connections, which WAL
 * mode lets run beside the writer.
 */
#include "tsdb/tsdb_int.h"

#include "base/log.h"

#include <stdlib.h>
#include <string.h>

#define READERS 4

struct chunkstore {
  sqlite3 *w;
  pthread_mutex_t wlock; /* recursive */
  sqlite3_stmt *put_chunk, *del_chunk, *ins_group, *upd_group, *del_group, *del_group_chunks;
  sqlite3_stmt *put_rollup, *del_rollup, *del_group_rollups;
  sqlite3 *readers[READERS];
  sqlite3_stmt *get_chunk[READERS];
  int reader_free[READERS];
  pthread_mutex_t rlock;
  pthread_cond_t rcond;
  char *path;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS groups(id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, key BLOB NOT NULL UNIQUE,"
    " fields BLOB NOT NULL, persisted_lsn INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS chunks(id INTEGER PRIMARY KEY, group_id INTEGER NOT NULL, start_ts INTEGER NOT NULL,"
    " end_ts INTEGER NOT NULL, nrows INTEGER NOT NULL, meta BLOB NOT NULL, data BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS chunks_by_group ON chunks(group_id, start_ts);"
    "CREATE TABLE IF NOT EXISTS rollups(id INTEGER PRIMARY KEY, group_id INTEGER NOT NULL, start_ts INTEGER NOT NULL,"
    " end_ts INTEGER NOT NULL, nrows INTEGER NOT NULL, meta BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS rollups_by_group ON rollups(group_id, start_ts);";

static int sql_err(sqlite3 *db, int rc, pl_err *err, const char *what) {
  if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) return pl_err_set(err, PL_EBUSY, "%s: database busy", what);
  if (rc == SQLITE_NOMEM) return PL_ENOMEM;
  return pl_err_set(err, PL_EIO, "%s: %s", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static int open_conn(const char *path, int flags, sqlite3 **out, pl_err *err) {
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    int r = sql_err(db, rc, err, "open chunks.db");
    sqlite3_close(db);
    return r;
  }
  sqlite3_busy_timeout(db, 10000);
  char *msg = NULL;
  /* On a new file (no effect on an existing one): small pages, because a chunk of a device-hour
   * is a few KB and 4 KB pages waste a third of the file on it; and space freed by compaction,
   * retention and deletion returned to the file system (cs_vacuum). Must precede WAL mode. */
  if (flags & SQLITE_OPEN_CREATE)
    sqlite3_exec(db, "PRAGMA page_size=1024; PRAGMA auto_vacuum=INCREMENTAL;", NULL, NULL, NULL);
  rc = sqlite3_exec(db,
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA secure_delete=ON;"
                    " PRAGMA cache_size=-16000;",
                    NULL, NULL, &msg);
  if (rc != SQLITE_OK) {
    pl_err_set(err, PL_EIO, "chunks.db: %s", msg ? msg : "pragma failed");
    sqlite3_free(msg);
    sqlite3_close(db);
    return PL_EIO;
  }
  *out = db;
  return 0;
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st) {
  return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK ? 0 : PL_EIO;
}

void cs_close(chunkstore *cs) {
  if (!cs) return;
  sqlite3_stmt *sts[] = {cs->put_chunk,        cs->del_chunk,  cs->ins_group,  cs->upd_group,        cs->del_group,
                         cs->del_group_chunks, cs->put_rollup, cs->del_rollup, cs->del_group_rollups};
  for (size_t i = 0; i < sizeof sts / sizeof sts[0]; i++) sqlite3_finalize(sts[i]);
  for (int i = 0; i < READERS; i++) {
    sqlite3_finalize(cs->get_chunk[i]);
    sqlite3_close(cs->readers[i]);
  }
  sqlite3_close(cs->w);
  pthread_mutex_destroy(&cs->wlock);
  pthread_mutex_destroy(&cs->rlock);
  pthread_cond_destroy(&cs->rcond);
  free(cs->path);
  free(cs);
}

int cs_open(const char *path, chunkstore **out, pl_err *err) {
  chunkstore *cs = calloc(1, sizeof *cs);
  if (!cs) return PL_ENOMEM;
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init(&cs->wlock, &attr);
  pthread_mutexattr_destroy(&attr);
  pthread_mutex_init(&cs->rlock, NULL);
  pthread_cond_init(&cs->rcond, NULL);
  cs->path = strdup(path);
  int rc = cs->path ? open_conn(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &cs->w, err) : PL_ENOMEM;
  if (rc == 0) {
    char *msg = NULL;
    if (sqlite3_exec(cs->w, schema, NULL, NULL, &msg) != SQLITE_OK) {
      rc = pl_err_set(err, PL_EIO, "chunks.db schema: %s", msg ? msg : "?");
      sqlite3_free(msg);
    }
  }
  if (rc == 0)
    rc = prep(cs->w, "INSERT INTO chunks(group_id, start_ts, end_ts, nrows, meta, data) VALUES(?,?,?,?,?,?)",
              &cs->put_chunk) ||
                 prep(cs->w, "DELETE FROM chunks WHERE id=?", &cs->del_chunk) ||
                 prep(cs->w, "INSERT INTO groups(tenant_id, key, fields, persisted_lsn) VALUES(?,?,?,?)", &cs->ins_group) ||
                 prep(cs->w, "UPDATE groups SET fields=?, persisted_lsn=? WHERE id=?", &cs->upd_group) ||
                 prep(cs->w, "DELETE FROM groups WHERE id=?", &cs->del_group) ||
                 prep(cs->w, "DELETE FROM chunks WHERE group_id=?", &cs->del_group_chunks) ||
                 prep(cs->w, "INSERT INTO rollups(group_id, start_ts, end_ts, nrows, meta) VALUES(?,?,?,?,?)",
                      &cs->put_rollup) ||
                 prep(cs->w, "DELETE FROM rollups WHERE id=?", &cs->del_rollup) ||
                 prep(cs->w, "DELETE FROM rollups WHERE group_id=?", &cs->del_group_rollups)
             ? pl_err_set(err, PL_EIO, "chunks.db: %s", sqlite3_errmsg(cs->w))
             : 0;
  for (int i = 0; i < READERS && rc == 0; i++) {
    rc = open_conn(path, SQLITE_OPEN_READONLY, &cs->readers[i], err);
    if (rc == 0 && prep(cs->readers[i], "SELECT data FROM chunks WHERE id=?", &cs->get_chunk[i]) < 0)
      rc = pl_err_set(err, PL_EIO, "chunks.db: %s", sqlite3_errmsg(cs->readers[i]));
    cs->reader_free[i] = 1;
  }
  if (rc < 0) {
    cs_close(cs);
    return rc;
  }
  *out = cs;
  return 0;
}

int cs_load(chunkstore *cs,
            int (*on_group)(void *ctx, uint64_t id, int64_t tenant_id, const uint8_t *key, size_t klen,
                            const uint8_t *fields, size_t flen, uint64_t persisted_lsn),
            int (*on_chunk)(void *ctx, uint64_t group_id, const chunk_meta *m), void *ctx) {
  sqlite3_stmt *st = NULL;
  int rc = 0;
  pthread_mutex_lock(&cs->wlock);
  if (sqlite3_prepare_v2(cs->w, "SELECT id, tenant_id, key, fields, persisted_lsn FROM groups ORDER BY id", -1, &st,
                         NULL) != SQLITE_OK)
    rc = PL_EIO;
  while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
    rc = on_group(ctx, (uint64_t)sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), sqlite3_column_blob(st, 2),
                  (size_t)sqlite3_column_bytes(st, 2), sqlite3_column_blob(st, 3), (size_t)sqlite3_column_bytes(st, 3),
                  (uint64_t)sqlite3_column_int64(st, 4));
  }
  sqlite3_finalize(st);
  st = NULL;
  if (rc == 0 && sqlite3_prepare_v2(cs->w,
                                    "SELECT id, group_id, start_ts, end_ts, nrows, meta, length(data) FROM chunks"
                                    " ORDER BY group_id, start_ts, id",
                                    -1, &st, NULL) != SQLITE_OK)
    rc = PL_EIO;
  while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
    chunk_meta m;
    memset(&m, 0, sizeof m);
    if (cs_meta_decode(sqlite3_column_blob(st, 5), (size_t)sqlite3_column_bytes(st, 5), &m) < 0) {
      PL_LOG(PL_LOG_ERROR, "tsdb", "chunk=%lld meta unreadable; skipped", (long long)sqlite3_column_int64(st, 0));
      continue;
    }
    m.id = sqlite3_column_int64(st, 0);
    m.start_ts = sqlite3_column_int64(st, 2);
    m.end_ts = sqlite3_column_int64(st, 3);
    m.nrows = (uint32_t)sqlite3_column_int64(st, 4);
    m.bytes = (uint32_t)sqlite3_column_int64(st, 6);
    rc = on_chunk(ctx, (uint64_t)sqlite3_column_int64(st, 1), &m);
    if (rc < 0) chunk_meta_free(&m);
  }
  sqlite3_finalize(st);
  st = NULL;
  if (rc == 0 && sqlite3_prepare_v2(cs->w,
                                    "SELECT id, group_id, start_ts, end_ts, nrows, meta FROM rollups"
                                    " ORDER BY group_id, start_ts, id",
                                    -1, &st, NULL) != SQLITE_OK)
    rc = PL_EIO;
  while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
    chunk_meta m;
    memset(&m, 0, sizeof m);
    if (cs_meta_decode(sqlite3_column_blob(st, 5), (size_t)sqlite3_column_bytes(st, 5), &m) < 0) continue;
    m.id = -sqlite3_column_int64(st, 0);
    m.summary = 1;
    m.start_ts = sqlite3_column_int64(st, 2);
    m.end_ts = sqlite3_column_int64(st, 3);
    m.nrows = (uint32_t)sqlite3_column_int64(st, 4);
    rc = on_chunk(ctx, (uint64_t)sqlite3_column_int64(st, 1), &m);
    if (rc < 0) chunk_meta_free(&m);
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&cs->wlock);
  return rc;
}

static int step_done(chunkstore *cs, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_DONE ? 0 : sql_err(cs->w, rc, NULL, "chunks.db");
}

int cs_group_put(chunkstore *cs, uint64_t id, int64_t tenant_id, const uint8_t *key, size_t klen,
                 const uint8_t *fields, size_t flen, uint64_t persisted_lsn, uint64_t *id_out) {
  pthread_mutex_lock(&cs->wlock);
  int rc;
  if (id == 0) {
    sqlite3_bind_int64(cs->ins_group, 1, tenant_id);
    sqlite3_bind_blob(cs->ins_group, 2, key, (int)klen, SQLITE_STATIC);
    sqlite3_bind_blob(cs->ins_group, 3, flen ? fields : (const void *)"", (int)flen, SQLITE_STATIC);
    sqlite3_bind_int64(cs->ins_group, 4, (int64_t)persisted_lsn);
    rc = step_done(cs, cs->ins_group);
    if (rc == 0 && id_out) *id_out = (uint64_t)sqlite3_last_insert_rowid(cs->w);
  } else {
    sqlite3_bind_blob(cs->upd_group, 1, flen ? fields : (const void *)"", (int)flen, SQLITE_STATIC);
    sqlite3_bind_int64(cs->upd_group, 2, (int64_t)persisted_lsn);
    sqlite3_bind_int64(cs->upd_group, 3, (int64_t)id);
    rc = step_done(cs, cs->upd_group);
    if (rc == 0 && id_out) *id_out = id;
  }
  pthread_mutex_unlock(&cs->wlock);
  return rc;
}

int cs_group_delete(chunkstore *cs, uint64_t id) {
  pthread_mutex_lock(&cs->wlock);
  sqlite3_bind_int64(cs->del_group_chunks, 1, (int64_t)id);
  int rc = step_done(cs, cs->del_group_chunks);
  sqlite3_bind_int64(cs->del_group_rollups, 1, (int64_t)id);
  if (rc == 0) rc = step_done(cs, cs->del_group_rollups);
  sqlite3_bind_int64(cs->del_group, 1, (int64_t)id);
  if (rc == 0) rc = step_done(cs, cs->del_group);
  pthread_mutex_unlock(&cs->wlock);
  return rc;
}

int cs_begin(chunkstore *cs) {
  pthread_mutex_lock(&cs->wlock);
  int rc = sqlite3_exec(cs->w, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    pthread_mutex_unlock(&cs->wlock);
    return sql_err(cs->w, rc, NULL, "begin");
  }
  return 0;
}

int cs_commit(chunkstore *cs) {
  int rc = sqlite3_exec(cs->w, "COMMIT", NULL, NULL, NULL);
  int out = rc == SQLITE_OK ? 0 : sql_err(cs->w, rc, NULL, "commit");
  if (out < 0) sqlite3_exec(cs->w, "ROLLBACK", NULL, NULL, NULL);
  pthread_mutex_unlock(&cs->wlock);
  return out;
}

int cs_rollback(chunkstore *cs) {
  sqlite3_exec(cs->w, "ROLLBACK", NULL, NULL, NULL);
  pthread_mutex_unlock(&cs->wlock);
  return 0;
}

int cs_chunk_put(chunkstore *cs, uint64_t group_id, chunk_meta *m, const uint8_t *data, size_t len) {
  pl_buf meta;
  pl_buf_init(&meta, 0);
  int rc = cs_meta_encode(m, &meta);
  if (rc < 0) return rc;
  pthread_mutex_lock(&cs->wlock);
  sqlite3_bind_int64(cs->put_chunk, 1, (int64_t)group_id);
  sqlite3_bind_int64(cs->put_chunk, 2, m->start_ts);
  sqlite3_bind_int64(cs->put_chunk, 3, m->end_ts);
  sqlite3_bind_int64(cs->put_chunk, 4, m->nrows);
  sqlite3_bind_blob(cs->put_chunk, 5, meta.data, (int)meta.len, SQLITE_STATIC);
  sqlite3_bind_blob(cs->put_chunk, 6, data, (int)len, SQLITE_STATIC);
  rc = step_done(cs, cs->put_chunk);
  if (rc == 0) {
    m->id = sqlite3_last_insert_rowid(cs->w);
    m->bytes = (uint32_t)len;
  }
  pthread_mutex_unlock(&cs->wlock);
  pl_buf_free(&meta);
  return rc;
}

int cs_chunk_delete(chunkstore *cs, int64_t chunk_id) {
  pthread_mutex_lock(&cs->wlock);
  sqlite3_bind_int64(cs->del_chunk, 1, chunk_id);
  int rc = step_done(cs, cs->del_chunk);
  pthread_mutex_unlock(&cs->wlock);
  return rc;
}

int cs_rollup_put(chunkstore *cs, uint64_t group_id, chunk_meta *m) {
  pl_buf meta;
  pl_buf_init(&meta, 0);
  int rc = cs_meta_encode(m, &meta);
  if (rc < 0) return rc;
  pthread_mutex_lock(&cs->wlock);
  sqlite3_bind_int64(cs->put_rollup, 1, (int64_t)group_id);
  sqlite3_bind_int64(cs->put_rollup, 2, m->start_ts);
  sqlite3_bind_int64(cs->put_rollup, 3, m->end_ts);
  sqlite3_bind_int64(cs->put_rollup, 4, m->nrows);
  sqlite3_bind_blob(cs->put_rollup, 5, meta.data, (int)meta.len, SQLITE_STATIC);
  rc = step_done(cs, cs->put_rollup);
  if (rc == 0) {
    m->id = -sqlite3_last_insert_rowid(cs->w);
    m->summary = 1;
    m->bytes = 0;
  }
  pthread_mutex_unlock(&cs->wlock);
  pl_buf_free(&meta);
  return rc;
}

int cs_rollup_delete(chunkstore *cs, int64_t rollup_id) {
  pthread_mutex_lock(&cs->wlock);
  sqlite3_bind_int64(cs->del_rollup, 1, rollup_id);
  int rc = step_done(cs, cs->del_rollup);
  pthread_mutex_unlock(&cs->wlock);
  return rc;
}

int cs_chunk_get(chunkstore *cs, int64_t chunk_id, pl_buf *out) {
  pthread_mutex_lock(&cs->rlock);
  int slot = -1;
  for (;;) {
    for (int i = 0; i < READERS; i++)
      if (cs->reader_free[i]) {
        slot = i;
        break;
      }
    if (slot >= 0) break;
    pthread_cond_wait(&cs->rcond, &cs->rlock);
  }
  cs->reader_free[slot] = 0;
  pthread_mutex_unlock(&cs->rlock);
  sqlite3_stmt *st = cs->get_chunk[slot];
  sqlite3_bind_int64(st, 1, chunk_id);
  int rc = sqlite3_step(st);
  int out_rc;
  if (rc == SQLITE_ROW) {
    pl_buf_reset(out);
    out_rc = pl_buf_append(out, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
  } else {
    out_rc = rc == SQLITE_DONE ? PL_ENOTFOUND : sql_err(cs->readers[slot], rc, NULL, "read chunk");
  }
  sqlite3_reset(st);
  pthread_mutex_lock(&cs->rlock);
  cs->reader_free[slot] = 1;
  pthread_cond_signal(&cs->rcond);
  pthread_mutex_unlock(&cs->rlock);
  return out_rc;
}

void cs_vacuum(chunkstore *cs) {
  pthread_mutex_lock(&cs->wlock);
  sqlite3_exec(cs->w, "PRAGMA incremental_vacuum(4096)", NULL, NULL, NULL);
  pthread_mutex_unlock(&cs->wlock);
}

int64_t cs_bytes(chunkstore *cs) {
  sqlite3_stmt *st = NULL;
  int64_t n = 0;
  pthread_mutex_lock(&cs->wlock);
  if (sqlite3_prepare_v2(cs->w, "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()", -1, &st,
                         NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  pthread_mutex_unlock(&cs->wlock);
  return n;
}

/* ---- chunk metas ----
 * meta blob: u8 ncols, then per column: u8 field, u8 full, u32 count, u32 nan_count, f64 min, max,
 * sum, first, last, i64 min_i, max_i, sum_i, first_i, last_i, u8 sum_i_exact (all little-endian). */

void chunk_meta_free(chunk_meta *m) {
  free(m->col_field);
  free(m->col_full);
  free(m->stats);
  m->col_field = m->col_full = NULL;
  m->stats = NULL;
}

static int meta_alloc(chunk_meta *m, size_t ncols) {
  m->ncols = (uint8_t)ncols;
  m->col_field = calloc(ncols ? ncols : 1, 1);
  m->col_full = calloc(ncols ? ncols : 1, 1);
  m->stats = calloc(ncols ? ncols : 1, sizeof *m->stats);
  if (!m->col_field || !m->col_full || !m->stats) {
    chunk_meta_free(m);
    return PL_ENOMEM;
  }
  return 0;
}

static uint64_t f2u(double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return u;
}

static double u2f(uint64_t u) {
  double d;
  memcpy(&d, &u, 8);
  return d;
}

int cs_meta_encode(const chunk_meta *m, pl_buf *out) {
  int rc = pl_buf_append_byte(out, m->ncols);
  for (size_t c = 0; c < m->ncols && rc == 0; c++) {
    const tsdb_stats *s = &m->stats[c];
    rc = pl_buf_append_byte(out, m->col_field[c]);
    if (!rc) rc = pl_buf_append_byte(out, m->col_full[c]);
    if (!rc) rc = pl_buf_put_u32le(out, s->count);
    if (!rc) rc = pl_buf_put_u32le(out, s->nan_count);
    const double d[] = {s->min, s->max, s->sum, s->first, s->last};
    for (int k = 0; k < 5 && !rc; k++) rc = pl_buf_put_u64le(out, f2u(d[k]));
    const int64_t i[] = {s->min_i, s->max_i, s->sum_i, s->first_i, s->last_i};
    for (int k = 0; k < 5 && !rc; k++) rc = pl_buf_put_u64le(out, (uint64_t)i[k]);
    if (!rc) rc = pl_buf_append_byte(out, (uint8_t)s->sum_i_exact);
  }
  return rc;
}

int cs_meta_decode(const uint8_t *p, size_t len, chunk_meta *m) {
  pl_reader r;
  pl_reader_init(&r, p, len);
  uint8_t ncols;
  if (pl_read_u8(&r, &ncols) < 0 || ncols > TSDB_CHUNK_COLUMNS_MAX) return PL_ECORRUPT;
  if (meta_alloc(m, ncols) < 0) return PL_ENOMEM;
  for (size_t c = 0; c < ncols; c++) {
    tsdb_stats *s = &m->stats[c];
    uint8_t exact;
    uint64_t u[10];
    if (pl_read_u8(&r, &m->col_field[c]) < 0 || pl_read_u8(&r, &m->col_full[c]) < 0 ||
        pl_read_u32le(&r, &s->count) < 0 || pl_read_u32le(&r, &s->nan_count) < 0)
      goto bad;
    for (int k = 0; k < 10; k++)
      if (pl_read_u64le(&r, &u[k]) < 0) goto bad;
    if (pl_read_u8(&r, &exact) < 0) goto bad;
    s->min = u2f(u[0]), s->max = u2f(u[1]), s->sum = u2f(u[2]), s->first = u2f(u[3]), s->last = u2f(u[4]);
    s->min_i = (int64_t)u[5], s->max_i = (int64_t)u[6], s->sum_i = (int64_t)u[7], s->first_i = (int64_t)u[8];
    s->last_i = (int64_t)u[9];
    s->sum_i_exact = exact;
  }
  if (pl_reader_left(&r)) goto bad;
  return 0;
bad:
  chunk_meta_free(m);
  return PL_ECORRUPT;
}

int chunk_meta_from_info(const tsdb_chunk_info *info, const uint8_t *col_field, chunk_meta *m) {
  int rc = meta_alloc(m, info->n_columns);
  if (rc < 0) return rc;
  m->start_ts = info->ts_min;
  m->end_ts = info->ts_max;
  m->nrows = info->n_points;
  for (size_t c = 0; c < info->n_columns; c++) {
    m->col_field[c] = col_field[c];
    m->col_full[c] = info->cols[c].present_bits == NULL;
    m->stats[c] = info->cols[c].stats;
  }
  return 0;
}
