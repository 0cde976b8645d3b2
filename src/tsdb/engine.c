/* The time-series engine: open and recovery, the write path, and the flusher that turns heads
 * into chunks (see tsdb.h for the model).
 *
 * LOCKING
 *   db->lock (rwlock): the group map, every group's fields, head, frozen head and chunk list.
 *     tsdb_write holds it exclusively from validation through the WAL append to the head
 *     append, so the order of rows in heads is the order of records in the WAL (which is what
 *     replay reproduces) and a failed validation leaves nothing behind. Queries hold it shared
 *     only to copy head rows and chunk metas; they decode chunks without it.
 *   db->flush_mutex: one flusher, compactor, deleter or retention pass at a time. Only these
 *     change chunks; while a flush encodes a group's rows they sit in g->frozen, visible to
 *     queries, and the write lock is not held.
 *
 * WAL RECORDS (payload of one tsdb_wal record; integers as in base/buf.h)
 *   u8 kind = 1 (write): svarint tenant_id, uvarint nrows, then per row:
 *     uvarint mlen, measurement bytes, uvarint ntags, ntags x (uvarint klen, key, uvarint vlen,
 *     value) sorted by key, svarint ts_ns, uvarint nfields, nfields x (uvarint nlen, name,
 *     u8 type, value: f64 LE | svarint | u8 | uvarint len + bytes)
 *   u8 kind = 2 (delete): svarint tenant_id, uvarint group_id (0: every group of the tenant),
 *     svarint start_ns, svarint end_ns
 *   Replay applies write rows whose LSN is above their group's persisted_lsn (older ones are
 *   in chunks already) and applies deletes to heads (chunks were changed before the delete was
 *   acknowledged).
 *
 * RECOVERY INVARIANT
 *   For every group, rows with lsn <= persisted_lsn are in chunks.db, and the WAL holds every
 *   record with an LSN above the smallest persisted_lsn of any group with unflushed rows.
 *   The WAL is trimmed only after the chunks that made the trim safe are committed.
 */
#include "tsdb/engine_int.h"

#include "base/clock.h"
#include "base/fs.h"
#include "base/json.h"
#include "base/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_OOO_NS (3600LL * 1000000000)
#define DEFAULT_PARTITION_NS (3600LL * 1000000000)
#define DEFAULT_HEAD_ROWS 8192u
#define DEFAULT_CHECKPOINT_NS (15LL * 60 * 1000000000)
#define DEFAULT_CHECKPOINT_BYTES ((size_t)256 << 20)

/* ---- keys and groups ---- */

int key_encode(int64_t tenant_id, tsdb_str measurement, const tsdb_tag *tags, size_t ntags, pl_buf *out) {
  int rc = pl_buf_put_u64le(out, (uint64_t)tenant_id);
  if (!rc) rc = pl_buf_put_uvarint(out, measurement.len);
  if (!rc) rc = pl_buf_append(out, measurement.p, measurement.len);
  if (!rc) rc = pl_buf_put_uvarint(out, ntags);
  for (size_t i = 0; i < ntags && !rc; i++) {
    rc = pl_buf_put_uvarint(out, tags[i].key.len);
    if (!rc) rc = pl_buf_append(out, tags[i].key.p, tags[i].key.len);
    if (!rc) rc = pl_buf_put_uvarint(out, tags[i].value.len);
    if (!rc) rc = pl_buf_append(out, tags[i].value.p, tags[i].value.len);
  }
  return rc;
}

static int str_cmp(tsdb_str a, tsdb_str b) {
  size_t n = a.len < b.len ? a.len : b.len;
  int c = n ? memcmp(a.p, b.p, n) : 0;
  return c ? c : (a.len < b.len ? -1 : a.len > b.len);
}

int tags_sort(tsdb_tag *tags, size_t n) {
  for (size_t i = 1; i < n; i++) {
    tsdb_tag t = tags[i];
    size_t j = i;
    while (j > 0 && str_cmp(tags[j - 1].key, t.key) > 0) {
      tags[j] = tags[j - 1];
      j--;
    }
    tags[j] = t;
  }
  for (size_t i = 1; i < n; i++)
    if (str_cmp(tags[i - 1].key, tags[i].key) == 0) return PL_EINVAL;
  return 0;
}

/* Parses a canonical key (owned by g) into g's measurement and tags. */
static int key_parse(group *g) {
  pl_reader r;
  uint64_t len, ntags, tenant;
  pl_reader_init(&r, g->key, g->key_len);
  if (pl_read_u64le(&r, &tenant) < 0 || pl_read_uvarint(&r, &len) < 0 || len > pl_reader_left(&r)) return PL_ECORRUPT;
  g->tenant_id = (int64_t)tenant;
  g->measurement = (tsdb_str){(const char *)g->key + r.pos, len};
  r.pos += len;
  if (pl_read_uvarint(&r, &ntags) < 0 || ntags > TSDB_TAGS_MAX) return PL_ECORRUPT;
  g->tags = calloc(ntags ? ntags : 1, sizeof *g->tags);
  if (!g->tags) return PL_ENOMEM;
  g->ntags = ntags;
  for (size_t i = 0; i < ntags; i++) {
    if (pl_read_uvarint(&r, &len) < 0 || len > pl_reader_left(&r)) return PL_ECORRUPT;
    g->tags[i].key = (tsdb_str){(const char *)g->key + r.pos, len};
    r.pos += len;
    if (pl_read_uvarint(&r, &len) < 0 || len > pl_reader_left(&r)) return PL_ECORRUPT;
    g->tags[i].value = (tsdb_str){(const char *)g->key + r.pos, len};
    r.pos += len;
  }
  return pl_reader_left(&r) ? PL_ECORRUPT : 0;
}

static group *group_new(const uint8_t *key, size_t klen) {
  group *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->key = malloc(klen);
  if (!g->key) {
    free(g);
    return NULL;
  }
  memcpy(g->key, key, klen);
  g->key_len = klen;
  head_init(&g->head);
  g->chunks_max_end = INT64_MIN;
  if (key_parse(g) < 0) {
    group_free(g);
    return NULL;
  }
  return g;
}

void group_free(group *g) {
  if (!g) return;
  for (uint32_t f = 0; f < g->nfields; f++) free((void *)g->field_names[f].p);
  free(g->field_names);
  free(g->field_types);
  head_free(&g->head);
  if (g->frozen) {
    head_free(g->frozen);
    free(g->frozen);
  }
  for (size_t c = 0; c < g->nchunks; c++) chunk_meta_free(&g->chunks[c]);
  free(g->chunks);
  free(g->tags);
  free(g->key);
  free(g);
}

group *group_by_id(tsdb *db, uint64_t id) {
  return id < db->by_id_cap ? db->by_id[id] : NULL;
}

static int by_id_set(tsdb *db, uint64_t id, group *g) {
  if (id >= db->by_id_cap) {
    size_t cap = db->by_id_cap ? db->by_id_cap : 1024;
    while (cap <= id) cap *= 2;
    group **p = realloc(db->by_id, cap * sizeof *p);
    if (!p) return PL_ENOMEM;
    memset(p + db->by_id_cap, 0, (cap - db->by_id_cap) * sizeof *p);
    db->by_id = p;
    db->by_id_cap = cap;
  }
  db->by_id[id] = g;
  return 0;
}

void group_unlink(tsdb *db, group *g) {
  pl_map_del(db->groups, g->key, g->key_len);
  if (g->id && g->id < db->by_id_cap) db->by_id[g->id] = NULL;
  group_free(g);
}

int group_field_index(const group *g, const char *name, size_t len) {
  for (uint32_t f = 0; f < g->nfields; f++)
    if (g->field_names[f].len == len && memcmp(g->field_names[f].p, name, len) == 0) return (int)f;
  return -1;
}

static int group_add_field(group *g, tsdb_str name, tsdb_type type) {
  if (g->nfields >= TSDB_FIELDS_PER_GROUP_MAX) return PL_ELIMIT;
  tsdb_str *names = realloc(g->field_names, (g->nfields + 1) * sizeof *names);
  if (!names) return PL_ENOMEM;
  g->field_names = names;
  tsdb_type *types = realloc(g->field_types, (g->nfields + 1) * sizeof *types);
  if (!types) return PL_ENOMEM;
  g->field_types = types;
  char *copy = malloc(name.len + 1);
  if (!copy) return PL_ENOMEM;
  memcpy(copy, name.p, name.len);
  copy[name.len] = 0;
  names[g->nfields] = (tsdb_str){copy, name.len};
  types[g->nfields] = type;
  g->nfields++;
  return 0;
}

static void group_truncate_fields(group *g, uint32_t nfields) {
  while (g->nfields > nfields) free((void *)g->field_names[--g->nfields].p);
}

static int fields_encode(const group *g, pl_buf *out) {
  int rc = pl_buf_put_uvarint(out, g->nfields);
  for (uint32_t f = 0; f < g->nfields && !rc; f++) {
    rc = pl_buf_append_byte(out, (uint8_t)g->field_types[f]);
    if (!rc) rc = pl_buf_put_uvarint(out, g->field_names[f].len);
    if (!rc) rc = pl_buf_append(out, g->field_names[f].p, g->field_names[f].len);
  }
  return rc;
}

static int fields_decode(group *g, const uint8_t *p, size_t len) {
  pl_reader r;
  uint64_t n, nlen;
  uint8_t type;
  pl_reader_init(&r, p, len);
  if (len == 0) return 0;
  if (pl_read_uvarint(&r, &n) < 0 || n > TSDB_FIELDS_PER_GROUP_MAX) return PL_ECORRUPT;
  for (uint64_t f = 0; f < n; f++) {
    if (pl_read_u8(&r, &type) < 0 || type < TSDB_FLOAT || type > TSDB_STRING || pl_read_uvarint(&r, &nlen) < 0 ||
        nlen > pl_reader_left(&r))
      return PL_ECORRUPT;
    int rc = group_add_field(g, (tsdb_str){(const char *)r.p + r.pos, nlen}, (tsdb_type)type);
    if (rc < 0) return rc;
    r.pos += nlen;
  }
  return 0;
}

static int chunk_cmp(const void *a, const void *b) {
  const chunk_meta *x = a, *y = b;
  if (x->start_ts != y->start_ts) return x->start_ts < y->start_ts ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

void group_chunks_sorted(group *g) {
  if (g->nchunks > 1) qsort(g->chunks, g->nchunks, sizeof *g->chunks, chunk_cmp);
  int64_t max_end = INT64_MIN;
  for (size_t c = 0; c < g->nchunks; c++) g->chunks[c].overlaps = 0;
  size_t max_at = 0;
  for (size_t c = 0; c < g->nchunks; c++) {
    if (c > 0 && g->chunks[c].start_ts <= max_end) {
      g->chunks[c].overlaps = 1;
      g->chunks[max_at].overlaps = 1;
      /* Any earlier chunk reaching this one overlaps too; mark back while they reach. */
      for (size_t k = c; k-- > 0;)
        if (g->chunks[k].end_ts >= g->chunks[c].start_ts) g->chunks[k].overlaps = 1;
    }
    if (g->chunks[c].end_ts > max_end) {
      max_end = g->chunks[c].end_ts;
      max_at = c;
    }
  }
  g->chunks_max_end = max_end;
}

static int group_add_chunk(group *g, const chunk_meta *m) {
  if (g->nchunks == g->chunks_cap) {
    size_t cap = g->chunks_cap ? g->chunks_cap * 2 : 8;
    chunk_meta *p = realloc(g->chunks, cap * sizeof *p);
    if (!p) return PL_ENOMEM;
    g->chunks = p;
    g->chunks_cap = cap;
  }
  g->chunks[g->nchunks++] = *m;
  return 0;
}

/* Newest timestamp the group holds, to bound how late a point may come. */
static int64_t group_latest_ts(const group *g) {
  int64_t t = INT64_MIN;
  if (g->head.n) t = g->head.max_ts;
  if (g->frozen && g->frozen->n && g->frozen->max_ts > t) t = g->frozen->max_ts;
  if (g->nchunks && g->chunks_max_end > t) t = g->chunks_max_end;
  return t;
}

/* ---- validation of input ---- */

static int name_check(tsdb_str s, const char *what, size_t row, pl_err *err) {
  if (s.len == 0) return pl_err_set(err, PL_EINVAL, "row %zu: empty %s", row, what);
  if (s.len > TSDB_NAME_BYTES_MAX)
    return pl_err_set(err, PL_EINVAL, "row %zu: %s longer than %d bytes", row, what, TSDB_NAME_BYTES_MAX);
  if (!pl_utf8_valid(s.p, s.len)) return pl_err_set(err, PL_EINVAL, "row %zu: %s is not valid UTF-8", row, what);
  return 0;
}

static int row_check(const tsdb_row *r, size_t i, pl_err *err) {
  int rc;
  if ((rc = name_check(r->measurement, "measurement", i, err)) < 0) return rc;
  if (r->ntags > TSDB_TAGS_MAX) return pl_err_set(err, PL_EINVAL, "row %zu: more than %d tags", i, TSDB_TAGS_MAX);
  for (size_t t = 0; t < r->ntags; t++) {
    if ((rc = name_check(r->tags[t].key, "tag key", i, err)) < 0) return rc;
    if ((rc = name_check(r->tags[t].value, "tag value", i, err)) < 0) return rc;
  }
  if (r->nfields == 0) return pl_err_set(err, PL_EINVAL, "row %zu: no fields", i);
  if (r->nfields > TSDB_FIELDS_PER_GROUP_MAX)
    return pl_err_set(err, PL_EINVAL, "row %zu: more than %d fields", i, TSDB_FIELDS_PER_GROUP_MAX);
  for (size_t f = 0; f < r->nfields; f++) {
    const tsdb_field *fd = &r->fields[f];
    if ((rc = name_check(fd->name, "field name", i, err)) < 0) return rc;
    if (fd->value.type < TSDB_FLOAT || fd->value.type > TSDB_STRING)
      return pl_err_set(err, PL_EINVAL, "row %zu: field %.*s has no valid type", i, (int)fd->name.len, fd->name.p);
    if (fd->value.type == TSDB_STRING && fd->value.v.s.len > TSDB_STRING_BYTES_MAX)
      return pl_err_set(err, PL_EINVAL, "row %zu: string value of %.*s longer than %d bytes", i, (int)fd->name.len,
                        fd->name.p, TSDB_STRING_BYTES_MAX);
  }
  return 0;
}

/* ---- WAL records ---- */

static int put_str(pl_buf *b, tsdb_str s) {
  int rc = pl_buf_put_uvarint(b, s.len);
  return rc ? rc : pl_buf_append(b, s.p, s.len);
}

static int rec_put_row(pl_buf *b, const tsdb_row *r, const tsdb_tag *sorted) {
  int rc = put_str(b, r->measurement);
  if (!rc) rc = pl_buf_put_uvarint(b, r->ntags);
  for (size_t t = 0; t < r->ntags && !rc; t++) {
    rc = put_str(b, sorted[t].key);
    if (!rc) rc = put_str(b, sorted[t].value);
  }
  if (!rc) rc = pl_buf_put_svarint(b, r->ts_ns);
  if (!rc) rc = pl_buf_put_uvarint(b, r->nfields);
  for (size_t f = 0; f < r->nfields && !rc; f++) {
    const tsdb_value *v = &r->fields[f].value;
    rc = put_str(b, r->fields[f].name);
    if (!rc) rc = pl_buf_append_byte(b, (uint8_t)v->type);
    if (rc) break;
    switch (v->type) {
    case TSDB_FLOAT: {
      uint64_t u;
      memcpy(&u, &v->v.f, 8);
      rc = pl_buf_put_u64le(b, u);
      break;
    }
    case TSDB_INT: rc = pl_buf_put_svarint(b, v->v.i); break;
    case TSDB_BOOL: rc = pl_buf_append_byte(b, v->v.b ? 1 : 0); break;
    case TSDB_STRING: rc = put_str(b, v->v.s); break;
    }
  }
  return rc;
}

/* ---- the write path ---- */

/* Per-call scratch for a batch: sorted tags, keys, resolved groups and field indexes. */
typedef struct batch {
  tsdb_tag *tags;
  pl_buf keys;
  size_t *key_off;
  group **groups;
  int *field_idx;
  size_t *field_off; /* start of each row's entries in field_idx */
} batch;

static void batch_free(batch *b) {
  free(b->tags);
  pl_buf_free(&b->keys);
  free(b->key_off);
  free(b->groups);
  free(b->field_idx);
  free(b->field_off);
}

static int batch_prepare(batch *b, int64_t tenant_id, const tsdb_row *rows, size_t nrows, pl_err *err) {
  size_t ntags = 0, nfields = 0;
  for (size_t i = 0; i < nrows; i++) {
    ntags += rows[i].ntags;
    nfields += rows[i].nfields;
  }
  memset(b, 0, sizeof *b);
  pl_buf_init(&b->keys, 0);
  b->tags = malloc((ntags ? ntags : 1) * sizeof *b->tags);
  b->key_off = malloc((nrows + 1) * sizeof *b->key_off);
  b->groups = calloc(nrows ? nrows : 1, sizeof *b->groups);
  b->field_idx = malloc((nfields ? nfields : 1) * sizeof *b->field_idx);
  b->field_off = malloc((nrows + 1) * sizeof *b->field_off);
  if (!b->tags || !b->key_off || !b->groups || !b->field_idx || !b->field_off) return PL_ENOMEM;
  size_t t = 0, f = 0;
  for (size_t i = 0; i < nrows; i++) {
    if (rows[i].ntags) memcpy(b->tags + t, rows[i].tags, rows[i].ntags * sizeof *b->tags);
    if (tags_sort(b->tags + t, rows[i].ntags) < 0) return pl_err_set(err, PL_EINVAL, "row %zu: a tag key appears twice", i);
    b->key_off[i] = b->keys.len;
    int rc = key_encode(tenant_id, rows[i].measurement, b->tags + t, rows[i].ntags, &b->keys);
    if (rc < 0) return rc;
    b->field_off[i] = f;
    t += rows[i].ntags;
    f += rows[i].nfields;
  }
  b->key_off[nrows] = b->keys.len;
  b->field_off[nrows] = f;
  return 0;
}

/* Groups and fields created while validating one batch, to undo if the batch fails. */
typedef struct undo {
  group **created;
  size_t ncreated, cap_created;
  group **touched;
  uint32_t *touched_nfields;
  size_t ntouched, cap_touched;
} undo;

static int undo_push(void ***arr, size_t *n, size_t *cap, void *item, uint32_t **extra, uint32_t xval) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 16;
    void **p = realloc(*arr, c * sizeof *p);
    if (!p) return PL_ENOMEM;
    *arr = p;
    if (extra) {
      uint32_t *e = realloc(*extra, c * sizeof *e);
      if (!e) return PL_ENOMEM;
      *extra = e;
    }
    *cap = c;
  }
  (*arr)[*n] = item;
  if (extra) (*extra)[*n] = xval;
  (*n)++;
  return 0;
}

static void undo_apply(tsdb *db, undo *u) {
  for (size_t i = 0; i < u->ntouched; i++) group_truncate_fields(u->touched[i], u->touched_nfields[i]);
  for (size_t i = 0; i < u->ncreated; i++) group_unlink(db, u->created[i]);
}

static void undo_free(undo *u) {
  free(u->created);
  free(u->touched);
  free(u->touched_nfields);
}

/* Finds or creates (in memory, undoably) the groups and fields of the batch and checks types
 * and lateness. Caller holds the write lock. */
static int resolve(tsdb *db, const tsdb_row *rows, size_t nrows, batch *b, undo *u, int check_late, pl_err *err) {
  const uint8_t *keys = b->keys.data;
  for (size_t i = 0; i < nrows; i++) {
    const uint8_t *key = keys + b->key_off[i];
    size_t klen = b->key_off[i + 1] - b->key_off[i];
    group *g = i > 0 && b->key_off[i] - b->key_off[i - 1] == klen && b->groups[i - 1] &&
                       memcmp(keys + b->key_off[i - 1], key, klen) == 0
                   ? b->groups[i - 1]
                   : pl_map_get(db->groups, key, klen);
    if (!g) {
      if (!(g = group_new(key, klen))) return PL_ENOMEM;
      if (pl_map_put(db->groups, key, klen, g, NULL) < 0) {
        group_free(g);
        return PL_ENOMEM;
      }
      if (undo_push((void ***)&u->created, &u->ncreated, &u->cap_created, g, NULL, 0) < 0) {
        group_unlink(db, g);
        return PL_ENOMEM;
      }
    }
    b->groups[i] = g;
    if (check_late && (g->head.n || g->nchunks)) {
      int64_t latest = group_latest_ts(g);
      int64_t window = db->opts.ooo_window_ns;
      if (latest != INT64_MIN && rows[i].ts_ns < latest - window && latest - window < latest) {
        char a[40], bb[40];
        return pl_err_set(err, PL_EINVAL,
                          "row %zu: time %s is more than the out-of-order window behind the series' latest point %s",
                          i, pl_time_format(rows[i].ts_ns, a, sizeof a), pl_time_format(latest, bb, sizeof bb));
      }
    }
    for (size_t f = 0; f < rows[i].nfields; f++) {
      const tsdb_field *fd = &rows[i].fields[f];
      int idx = group_field_index(g, fd->name.p, fd->name.len);
      if (idx < 0) {
        /* Remember the field count of an existing group the first time this batch adds to it. */
        int seen = 0;
        for (size_t k = 0; k < u->ncreated && !seen; k++) seen = u->created[k] == g;
        for (size_t k = 0; k < u->ntouched && !seen; k++) seen = u->touched[k] == g;
        if (!seen && undo_push((void ***)&u->touched, &u->ntouched, &u->cap_touched, g, &u->touched_nfields,
                               g->nfields) < 0)
          return PL_ENOMEM;
        int rc = group_add_field(g, fd->name, fd->value.type);
        if (rc == PL_ELIMIT)
          return pl_err_set(err, PL_ELIMIT, "row %zu: a series group may hold at most %d fields", i,
                            TSDB_FIELDS_PER_GROUP_MAX);
        if (rc < 0) return rc;
        idx = (int)g->nfields - 1;
      } else if (g->field_types[idx] != fd->value.type) {
        static const char *names[] = {"", "float", "integer", "boolean", "string"};
        return pl_err_set(err, PL_ECONFLICT, "row %zu: field \"%.*s\" is %s here but %s in the series", i,
                          (int)fd->name.len, fd->name.p, names[fd->value.type], names[g->field_types[idx]]);
      }
      b->field_idx[b->field_off[i] + f] = idx;
    }
  }
  return 0;
}

/* Persists groups created and fields added by a batch (one transaction). */
static int persist_new(tsdb *db, undo *u) {
  if (!u->ncreated && !u->ntouched) return 0;
  pl_buf fields;
  pl_buf_init(&fields, 0);
  int rc = cs_begin(db->cs);
  for (size_t i = 0; i < u->ncreated && !rc; i++) {
    group *g = u->created[i];
    pl_buf_reset(&fields);
    rc = fields_encode(g, &fields);
    if (!rc) rc = cs_group_put(db->cs, 0, g->tenant_id, g->key, g->key_len, fields.data, fields.len, 0, &g->id);
  }
  for (size_t i = 0; i < u->ntouched && !rc; i++) {
    group *g = u->touched[i];
    pl_buf_reset(&fields);
    rc = fields_encode(g, &fields);
    if (!rc)
      rc = cs_group_put(db->cs, g->id, g->tenant_id, g->key, g->key_len, fields.data, fields.len, g->persisted_lsn,
                        NULL);
  }
  if (rc) {
    cs_rollback(db->cs);
  } else {
    rc = cs_commit(db->cs);
  }
  for (size_t i = 0; i < u->ncreated && !rc; i++) rc = by_id_set(db, u->created[i]->id, u->created[i]);
  pl_buf_free(&fields);
  return rc;
}

/* Appends the rows to their groups' heads. Caller holds the write lock; resolve succeeded. */
static int apply(const tsdb_row *rows, size_t nrows, batch *b, uint64_t lsn, uint64_t skip_below_or_eq,
                 int replay, tsdb_write_stats *st) {
  for (size_t i = 0; i < nrows; i++) {
    group *g = b->groups[i];
    if (replay && lsn <= g->persisted_lsn) continue;
    int rc = head_reserve(&g->head, 1, g->nfields);
    if (rc < 0) return rc;
    uint32_t row = head_append_row(&g->head, rows[i].ts_ns, lsn);
    for (size_t f = 0; f < rows[i].nfields; f++) {
      int idx = b->field_idx[b->field_off[i] + f];
      if ((rc = head_set(&g->head, row, (uint32_t)idx, g->field_types[idx], &rows[i].fields[f].value)) < 0) return rc;
    }
    if (st) {
      st->rows++;
      st->points += rows[i].nfields;
    }
  }
  (void)skip_below_or_eq;
  return 0;
}

static void wake_flusher(tsdb *db, int checkpoint) {
  pthread_mutex_lock(&db->bg_mutex);
  if (checkpoint) db->want_checkpoint = 1;
  pthread_cond_signal(&db->bg_cond);
  pthread_mutex_unlock(&db->bg_mutex);
}

int tsdb_write(tsdb *db, int64_t tenant_id, const tsdb_row *rows, size_t nrows, tsdb_write_stats *stats, pl_err *err) {
  tsdb_write_stats local = {0};
  if (!stats) stats = &local;
  memset(stats, 0, sizeof *stats);
  if (nrows == 0) return 0;
  int rc;
  for (size_t i = 0; i < nrows; i++)
    if ((rc = row_check(&rows[i], i, err)) < 0) return rc;
  batch b;
  undo u;
  memset(&u, 0, sizeof u);
  pl_buf rec;
  pl_buf_init(&rec, 0);
  uint64_t lsn = 0;
  if ((rc = batch_prepare(&b, tenant_id, rows, nrows, err)) < 0) goto out;
  /* The WAL record is built before taking the lock: it depends only on the input. */
  rc = pl_buf_append_byte(&rec, 1);
  if (!rc) rc = pl_buf_put_svarint(&rec, tenant_id);
  if (!rc) rc = pl_buf_put_uvarint(&rec, nrows);
  {
    size_t t = 0;
    for (size_t i = 0; i < nrows && !rc; i++) {
      rc = rec_put_row(&rec, &rows[i], b.tags + t);
      t += rows[i].ntags;
    }
  }
  if (rc < 0) goto out;

  pthread_rwlock_wrlock(&db->lock);
  if (db->failed) {
    rc = pl_err_set(err, PL_ESTATE, "the time-series engine refuses writes after a storage failure; restart it");
  } else if ((rc = resolve(db, rows, nrows, &b, &u, 1, err)) < 0 || (rc = persist_new(db, &u)) < 0) {
    undo_apply(db, &u);
    if (rc == PL_EIO || rc == PL_EBUSY) pl_err_set(err, rc, "the series index could not be stored");
  } else {
    for (size_t i = 0; i < u.ncreated; i++) stats->series_created += u.created[i]->nfields;
    for (size_t i = 0; i < u.ntouched; i++) stats->series_created += u.touched[i]->nfields - u.touched_nfields[i];
    /* Written under the lock (so WAL order is head order), made durable after it (so
     * concurrent writers share one fsync under the "always" policy). */
    rc = tsdb_wal_write(db->wal, rec.data, rec.len, &lsn);
    if (rc == PL_ELIMIT) {
      rc = pl_err_set(err, PL_ELIMIT, "the batch is too large for one write; send fewer rows");
    } else if (rc < 0) {
      db->failed = 1;
      PL_LOG(PL_LOG_ERROR, "tsdb", "wal append failed err=\"%s\"; refusing writes from now on", pl_strerror(rc));
      rc = pl_err_set(err, PL_ESTATE, "the time-series write-ahead log failed; the write was not stored");
    } else {
      rc = apply(rows, nrows, &b, lsn, 0, 0, stats);
      db->wal_bytes_since_checkpoint += rec.len;
      if (rc < 0) {
        /* The record is durable but not in memory; refuse further writes so nothing diverges,
         * and a restart replays it. */
        db->failed = 1;
        rc = pl_err_set(err, PL_ESTATE, "out of memory while storing the batch");
      }
    }
  }
  pthread_rwlock_unlock(&db->lock);
  if (rc == 0 && (rc = tsdb_wal_wait(db->wal, lsn)) < 0) {
    pthread_rwlock_wrlock(&db->lock);
    db->failed = 1;
    pthread_rwlock_unlock(&db->lock);
    PL_LOG(PL_LOG_ERROR, "tsdb", "wal fsync failed; refusing writes from now on");
    rc = pl_err_set(err, PL_ESTATE, "the time-series write-ahead log could not be made durable; the write may be lost");
  }
  if (rc == 0 && db->wal_bytes_since_checkpoint > db->opts.checkpoint_wal_bytes && db->opts.background)
    wake_flusher(db, 1);
out:
  batch_free(&b);
  undo_free(&u);
  pl_buf_free(&rec);
  return rc;
}

/* ---- replay ---- */

typedef struct replay_ctx {
  tsdb *db;
  tsdb_row *rows;
  tsdb_field *fields;
  tsdb_tag *tags;
  size_t rows_cap, fields_cap, tags_cap;
  uint64_t records, skipped;
} replay_ctx;

static int get_str(pl_reader *r, tsdb_str *s) {
  uint64_t len;
  if (pl_read_uvarint(r, &len) < 0 || len > pl_reader_left(r)) return PL_ECORRUPT;
  s->p = (const char *)r->p + r->pos;
  s->len = len;
  r->pos += len;
  return 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 64;
  while (c < need) c *= 2;
  void *q = realloc(*p, c * size);
  if (!q) return PL_ENOMEM;
  *p = q;
  *cap = c;
  return 0;
}

static int replay_write(replay_ctx *c, pl_reader *r, uint64_t lsn) {
  int64_t tenant;
  uint64_t nrows;
  if (pl_read_svarint(r, &tenant) < 0 || pl_read_uvarint(r, &nrows) < 0 || nrows > r->len) return PL_ECORRUPT;
  if (grow((void **)&c->rows, &c->rows_cap, nrows, sizeof *c->rows) < 0) return PL_ENOMEM;
  size_t nt = 0, nf = 0;
  /* First pass counts tags and fields so the arrays do not move under the row pointers. */
  size_t start = r->pos;
  for (int pass = 0; pass < 2; pass++) {
    r->pos = start;
    nt = nf = 0;
    for (uint64_t i = 0; i < nrows; i++) {
      tsdb_row *row = &c->rows[i];
      uint64_t ntags, nfields;
      if (get_str(r, &row->measurement) < 0 || pl_read_uvarint(r, &ntags) < 0 || ntags > TSDB_TAGS_MAX)
        return PL_ECORRUPT;
      row->ntags = ntags;
      row->tags = pass ? c->tags + nt : NULL;
      for (uint64_t t = 0; t < ntags; t++, nt++) {
        tsdb_tag tag;
        if (get_str(r, &tag.key) < 0 || get_str(r, &tag.value) < 0) return PL_ECORRUPT;
        if (pass) c->tags[nt] = tag;
      }
      if (pl_read_svarint(r, &row->ts_ns) < 0 || pl_read_uvarint(r, &nfields) < 0 ||
          nfields > TSDB_FIELDS_PER_GROUP_MAX)
        return PL_ECORRUPT;
      row->nfields = nfields;
      row->fields = pass ? c->fields + nf : NULL;
      for (uint64_t f = 0; f < nfields; f++, nf++) {
        tsdb_field fd;
        uint8_t type;
        if (get_str(r, &fd.name) < 0 || pl_read_u8(r, &type) < 0) return PL_ECORRUPT;
        fd.value.type = (tsdb_type)type;
        switch (type) {
        case TSDB_FLOAT: {
          uint64_t u;
          if (pl_read_u64le(r, &u) < 0) return PL_ECORRUPT;
          memcpy(&fd.value.v.f, &u, 8);
          break;
        }
        case TSDB_INT:
          if (pl_read_svarint(r, &fd.value.v.i) < 0) return PL_ECORRUPT;
          break;
        case TSDB_BOOL: {
          uint8_t v;
          if (pl_read_u8(r, &v) < 0) return PL_ECORRUPT;
          fd.value.v.b = v;
          break;
        }
        case TSDB_STRING:
          if (get_str(r, &fd.value.v.s) < 0) return PL_ECORRUPT;
          break;
        default: return PL_ECORRUPT;
        }
        if (pass) c->fields[nf] = fd;
      }
    }
    if (pass == 0 && (grow((void **)&c->tags, &c->tags_cap, nt, sizeof *c->tags) < 0 ||
                      grow((void **)&c->fields, &c->fields_cap, nf, sizeof *c->fields) < 0))
      return PL_ENOMEM;
  }
  batch b;
  undo u;
  memset(&u, 0, sizeof u);
  pl_err err = {{0}};
  int rc = batch_prepare(&b, tenant, c->rows, nrows, &err);
  if (rc == 0) rc = resolve(c->db, c->rows, nrows, &b, &u, 0, &err);
  if (rc == 0) rc = persist_new(c->db, &u);
  if (rc == 0) rc = apply(c->rows, nrows, &b, lsn, 0, 1, NULL);
  if (rc < 0 && rc != PL_ENOMEM && rc != PL_EIO) {
    /* A record the engine accepted once cannot fail validation now, unless the series it
     * wrote to were since deleted and re-created with other types: skip it. */
    undo_apply(c->db, &u);
    PL_LOG(PL_LOG_WARN, "tsdb", "replay skipped record lsn=%llu reason=\"%s\"", (unsigned long long)lsn, err.msg);
    c->skipped++;
    rc = 0;
  }
  batch_free(&b);
  undo_free(&u);
  return rc;
}

static void delete_in_heads(tsdb *db, int64_t tenant, const uint8_t *key, size_t klen, int64_t start, int64_t end) {
  if (klen) {
    group *g = pl_map_get(db->groups, key, klen);
    if (g) head_delete_range(&g->head, start, end);
    return;
  }
  for (size_t id = 1; id < db->by_id_cap; id++) {
    group *g = db->by_id[id];
    if (g && g->tenant_id == tenant) head_delete_range(&g->head, start, end);
  }
}

static int replay_cb(void *ctx, uint64_t lsn, const uint8_t *p, size_t len) {
  replay_ctx *c = ctx;
  pl_reader r;
  uint8_t kind;
  pl_reader_init(&r, p, len);
  c->records++;
  if (pl_read_u8(&r, &kind) < 0) return 0;
  if (kind == 1) {
    int rc = replay_write(c, &r, lsn);
    if (rc == PL_ECORRUPT) {
      PL_LOG(PL_LOG_WARN, "tsdb", "replay skipped unreadable record lsn=%llu", (unsigned long long)lsn);
      c->skipped++;
      return 0;
    }
    return rc;
  }
  if (kind == 2) {
    int64_t tenant, start, end;
    uint64_t klen;
    if (pl_read_svarint(&r, &tenant) < 0 || pl_read_uvarint(&r, &klen) < 0 || klen > pl_reader_left(&r)) return 0;
    const uint8_t *key = r.p + r.pos;
    r.pos += klen;
    if (pl_read_svarint(&r, &start) < 0 || pl_read_svarint(&r, &end) < 0) return 0;
    delete_in_heads(c->db, tenant, key, klen, start, end);
  }
  return 0;
}

int engine_log_delete(tsdb *db, int64_t tenant_id, const uint8_t *key, size_t klen, int64_t start_ns, int64_t end_ns) {
  pl_buf rec;
  pl_buf_init(&rec, 0);
  int rc = pl_buf_append_byte(&rec, 2);
  if (!rc) rc = pl_buf_put_svarint(&rec, tenant_id);
  if (!rc) rc = pl_buf_put_uvarint(&rec, klen);
  if (!rc) rc = pl_buf_append(&rec, key, klen);
  if (!rc) rc = pl_buf_put_svarint(&rec, start_ns);
  if (!rc) rc = pl_buf_put_svarint(&rec, end_ns);
  if (!rc) {
    rc = tsdb_wal_append(db->wal, rec.data, rec.len, NULL);
    if (rc < 0 && rc != PL_ELIMIT) db->failed = 1;
  }
  pl_buf_free(&rec);
  return rc;
}

/* ---- loading ---- */

static int load_group(void *ctx, uint64_t id, int64_t tenant_id, const uint8_t *key, size_t klen, const uint8_t *fields,
                      size_t flen, uint64_t persisted_lsn) {
  tsdb *db = ctx;
  group *g = group_new(key, klen);
  if (!g) return PL_ENOMEM;
  g->id = id;
  g->persisted_lsn = persisted_lsn;
  int rc = fields_decode(g, fields, flen);
  if (rc == 0 && g->tenant_id != tenant_id) rc = PL_ECORRUPT;
  if (rc == 0) rc = pl_map_put(db->groups, g->key, g->key_len, g, NULL);
  if (rc == 0) rc = by_id_set(db, id, g);
  if (rc < 0) {
    pl_map_del(db->groups, g->key, g->key_len);
    group_free(g);
  }
  return rc;
}

static int load_chunk(void *ctx, uint64_t group_id, const chunk_meta *m) {
  tsdb *db = ctx;
  group *g = group_by_id(db, group_id);
  if (!g) return PL_ECORRUPT;
  return group_add_chunk(g, m);
}

/* ---- flushing heads into chunks ---- */

int64_t engine_partition_of(const tsdb *db, int64_t ts) {
  return agg_bucket_start(ts, db->opts.partition_ns, 0);
}

#define partition_of engine_partition_of

/* Encodes rows [from, to) of a frozen head into one chunk and stores it. */
static int encode_chunk(tsdb *db, group *g, const head *h, uint32_t from, uint32_t to, pl_buf *out, chunk_meta *m) {
  uint32_t n = to - from;
  tsdb_column_in cols[TSDB_CHUNK_COLUMNS_MAX];
  uint8_t col_field[TSDB_CHUNK_COLUMNS_MAX];
  size_t ncols = 0;
  /* Temporary typed arrays: the head stores 8-byte unions; the codec wants typed arrays. */
  void *bufs[TSDB_CHUNK_COLUMNS_MAX] = {0};
  uint32_t *lens[TSDB_CHUNK_COLUMNS_MAX] = {0};
  int rc = 0;
  for (uint32_t c = 0; c < h->ncols && c < g->nfields && rc == 0; c++) {
    const head_col *hc = &h->cols[c];
    size_t present = 0;
    for (uint32_t r = from; r < to; r++) present += hc->present[r];
    if (!present) continue;
    tsdb_column_in *ci = &cols[ncols];
    ci->type = g->field_types[c];
    ci->present = present == n ? NULL : hc->present + from;
    switch (ci->type) {
    case TSDB_FLOAT:
      ci->v.f = &hc->vals[from].f; /* head_val is 8 bytes: a double array in all but name */
      break;
    case TSDB_INT: ci->v.i = &hc->vals[from].i; break;
    case TSDB_BOOL: {
      uint8_t *b = malloc(n);
      if (!b) {
        rc = PL_ENOMEM;
        break;
      }
      for (uint32_t r = 0; r < n; r++) b[r] = (uint8_t)hc->vals[from + r].i;
      bufs[ncols] = b;
      ci->v.b = b;
      break;
    }
    case TSDB_STRING: {
      const char **s = malloc(n * sizeof *s);
      uint32_t *l = malloc(n * sizeof *l);
      if (!s || !l) {
        free(s);
        free(l);
        rc = PL_ENOMEM;
        break;
      }
      for (uint32_t r = 0; r < n; r++) {
        const head_val *v = &hc->vals[from + r];
        int has = hc->present[from + r];
        s[r] = has ? (const char *)h->strings.data + v->s.off : NULL;
        l[r] = has ? v->s.len : 0;
      }
      bufs[ncols] = (void *)s;
      lens[ncols] = l;
      ci->v.str.s = s;
      ci->v.str.lens = l;
      break;
    }
    }
    col_field[ncols++] = (uint8_t)c;
  }
  pl_buf_reset(out);
  if (rc == 0) rc = tsdb_chunk_encode(h->ts + from, n, cols, ncols, out);
  tsdb_chunk_info info;
  if (rc == 0) rc = tsdb_chunk_info_parse(out->data, out->len, &info);
  if (rc == 0) rc = chunk_meta_from_info(&info, col_field, m);
  for (size_t c = 0; c < ncols; c++) {
    free(bufs[c]);
    free(lens[c]);
  }
  return rc;
}

/* Encodes a frozen head into chunks split at partition boundaries and the chunk row limit,
 * and stores them (inside the caller's transaction). metas receives the new chunk metas. */
int engine_store_frozen(tsdb *db, group *g, const head *h, chunk_meta **metas, size_t *nmetas);
int engine_store_frozen(tsdb *db, group *g, const head *h, chunk_meta **metas, size_t *nmetas) {
  pl_buf out;
  pl_buf_init(&out, TSDB_CHUNK_BYTES_MAX);
  int rc = 0;
  uint32_t from = 0;
  *metas = NULL;
  *nmetas = 0;
  while (from < h->n && rc == 0) {
    int64_t part = partition_of(db, h->ts[from]);
    uint32_t to = from;
    while (to < h->n && to - from < TSDB_CHUNK_POINTS_MAX && partition_of(db, h->ts[to]) == part) to++;
    chunk_meta m;
    memset(&m, 0, sizeof m);
    rc = encode_chunk(db, g, h, from, to, &out, &m);
    if (rc == 0) rc = cs_chunk_put(db->cs, g->id, &m, out.data, out.len);
    if (rc == 0) {
      chunk_meta *p = realloc(*metas, (*nmetas + 1) * sizeof *p);
      if (!p) {
        rc = PL_ENOMEM;
      } else {
        *metas = p;
        p[(*nmetas)++] = m;
      }
    }
    if (rc < 0) chunk_meta_free(&m);
    from = to;
  }
  pl_buf_free(&out);
  return rc;
}

typedef struct flush_item {
  group *g;
  uint64_t new_persisted_lsn;
  chunk_meta *metas;
  size_t nmetas;
} flush_item;

int engine_flush(tsdb *db, int all) {
  /* 1. Under the write lock, cut heads into frozen heads. */
  uint64_t rotate_lsn = 0;
  flush_item *items = NULL;
  size_t nitems = 0, cap = 0;
  int rc = 0;
  pthread_rwlock_wrlock(&db->lock);
  if (all && !db->failed) {
    if (tsdb_wal_rotate(db->wal) < 0) db->failed = 1;
    rotate_lsn = tsdb_wal_next_lsn(db->wal);
  }
  for (size_t id = 1; id < db->by_id_cap && rc == 0; id++) {
    group *g = db->by_id[id];
    if (!g || g->frozen || g->head.n == 0) continue;
    int64_t before;
    if (all || g->head.n >= db->opts.head_rows_max) {
      before = INT64_MAX;
    } else {
      before = partition_of(db, g->head.max_ts);
      if (g->head.min_ts >= before) continue;
    }
    head *fz = malloc(sizeof *fz);
    if (!fz) {
      rc = PL_ENOMEM;
      break;
    }
    uint64_t max_lsn = 0;
    for (uint32_t r = 0; r < g->head.n; r++)
      if (g->head.ts[r] < before && g->head.lsn[r] > max_lsn) max_lsn = g->head.lsn[r];
    if ((rc = head_take(&g->head, before, fz)) < 0) {
      free(fz);
      break;
    }
    g->frozen = fz;
    if (nitems == cap) {
      cap = cap ? cap * 2 : 64;
      flush_item *p = realloc(items, cap * sizeof *p);
      if (!p) {
        rc = PL_ENOMEM;
        break;
      }
      items = p;
    }
    uint64_t persisted = g->head.n ? g->head.min_lsn - 1 : max_lsn;
    if (persisted < g->persisted_lsn) persisted = g->persisted_lsn;
    items[nitems++] = (flush_item){g, persisted, NULL, 0};
  }
  pthread_rwlock_unlock(&db->lock);

  /* 2. Without the lock, encode and store, one transaction for the whole flush. */
  if (nitems) {
    pl_buf fields;
    pl_buf_init(&fields, 0);
    int trc = cs_begin(db->cs);
    for (size_t i = 0; i < nitems && trc == 0; i++) {
      group *g = items[i].g;
      trc = engine_store_frozen(db, g, g->frozen, &items[i].metas, &items[i].nmetas);
      pl_buf_reset(&fields);
      if (trc == 0) trc = fields_encode(g, &fields);
      if (trc == 0)
        trc = cs_group_put(db->cs, g->id, g->tenant_id, g->key, g->key_len, fields.data, fields.len,
                           items[i].new_persisted_lsn, NULL);
    }
    if (trc == 0) trc = cs_commit(db->cs);
    else cs_rollback(db->cs);
    pl_buf_free(&fields);

    /* 3. Publish the chunks (or, on failure, give the rows back to the heads). */
    pthread_rwlock_wrlock(&db->lock);
    for (size_t i = 0; i < nitems; i++) {
      group *g = items[i].g;
      if (trc == 0) {
        for (size_t k = 0; k < items[i].nmetas; k++) group_add_chunk(g, &items[i].metas[k]);
        group_chunks_sorted(g);
        g->persisted_lsn = items[i].new_persisted_lsn;
        head_free(g->frozen);
      } else {
        for (size_t k = 0; k < items[i].nmetas; k++) chunk_meta_free(&items[i].metas[k]);
        /* The frozen rows are older than or distinct in time from those left in the head, so
         * appending them back keeps every value. */
        head *fz = g->frozen;
        for (uint32_t r = 0; r < fz->n; r++) {
          if (head_reserve(&g->head, 1, fz->ncols) < 0) break;
          uint32_t row = head_append_row(&g->head, fz->ts[r], fz->lsn[r]);
          for (uint32_t c = 0; c < fz->ncols; c++) {
            if (!fz->cols[c].present[r]) continue;
            tsdb_value v = {.type = g->field_types[c]};
            const head_val *hv = &fz->cols[c].vals[r];
            if (v.type == TSDB_FLOAT) v.v.f = hv->f;
            else if (v.type == TSDB_STRING) v.v.s = (tsdb_str){(const char *)fz->strings.data + hv->s.off, hv->s.len};
            else if (v.type == TSDB_BOOL) v.v.b = (int)hv->i;
            else v.v.i = hv->i;
            head_set(&g->head, row, c, v.type, &v);
          }
        }
        head_free(g->frozen);
      }
      free(g->frozen);
      g->frozen = NULL;
      free(items[i].metas);
    }
    pthread_rwlock_unlock(&db->lock);
    if (trc < 0) {
      PL_LOG(PL_LOG_ERROR, "tsdb", "flush failed err=\"%s\"; rows stay in memory and the WAL", pl_strerror(trc));
      rc = trc;
    }
  }
  free(items);

  /* 4. Trim the WAL below the oldest row still only in memory. */
  if (rc == 0) {
    pthread_rwlock_rdlock(&db->lock);
    uint64_t keep = tsdb_wal_next_lsn(db->wal);
    if (all && rotate_lsn && rotate_lsn < keep) keep = rotate_lsn;
    for (size_t id = 1; id < db->by_id_cap; id++) {
      group *g = db->by_id[id];
      if (g && g->head.n && g->head.min_lsn < keep) keep = g->head.min_lsn;
    }
    pthread_rwlock_unlock(&db->lock);
    if (tsdb_wal_truncate_before(db->wal, keep) < 0) PL_LOG(PL_LOG_WARN, "tsdb", "wal trim failed");
    if (all) {
      db->wal_bytes_since_checkpoint = 0;
      db->last_checkpoint_ns = pl_mono_ns();
    }
  }
  return rc;
}

/* ---- compaction: one chunk per closed partition ---- */

static int compact_some(tsdb *db, int budget) {
  /* Candidates: partitions before the group's newest, holding more than one chunk. */
  for (size_t id = 1; budget > 0; id++) {
    pthread_rwlock_rdlock(&db->lock);
    /* The table may grow (writers add groups) between iterations: read its size locked. */
    if (id >= db->by_id_cap) {
      pthread_rwlock_unlock(&db->lock);
      break;
    }
    group *g = db->by_id[id];
    int64_t target = INT64_MIN;
    if (g && g->nchunks > 1) {
      int64_t newest = partition_of(db, group_latest_ts(g));
      for (size_t c = 1; c < g->nchunks && target == INT64_MIN; c++) {
        if (g->chunks[c].summary || g->chunks[c - 1].summary) continue;
        int64_t p = partition_of(db, g->chunks[c].start_ts);
        if (p < newest && p == partition_of(db, g->chunks[c - 1].start_ts)) target = p;
      }
    }
    pthread_rwlock_unlock(&db->lock);
    if (target != INT64_MIN) {
      int rc = engine_compact_group(db, g, target);
      if (rc < 0) return rc;
      budget--;
      id--; /* look at the same group again: it may have more partitions to merge */
    }
  }
  return 0;
}

int tsdb_checkpoint(tsdb *db) {
  pthread_mutex_lock(&db->flush_mutex);
  int rc = engine_flush(db, 1);
  if (rc == 0) rc = compact_some(db, 1 << 30);
  if (rc == 0) cs_vacuum(db->cs);
  pthread_mutex_unlock(&db->flush_mutex);
  return rc;
}

static void *flusher_main(void *arg) {
  tsdb *db = arg;
  pthread_mutex_lock(&db->bg_mutex);
  while (!db->stop) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 1;
    if (!db->want_checkpoint) pthread_cond_timedwait(&db->bg_cond, &db->bg_mutex, &until);
    if (db->stop) break;
    int checkpoint = db->want_checkpoint;
    db->want_checkpoint = 0;
    pthread_mutex_unlock(&db->bg_mutex);
    if (pl_mono_ns() - db->last_checkpoint_ns > db->opts.checkpoint_interval_ns) checkpoint = 1;
    pthread_mutex_lock(&db->flush_mutex);
    engine_flush(db, checkpoint);
    compact_some(db, 16);
    if (checkpoint) cs_vacuum(db->cs);
    pthread_mutex_unlock(&db->flush_mutex);
    pthread_mutex_lock(&db->bg_mutex);
  }
  pthread_mutex_unlock(&db->bg_mutex);
  return NULL;
}

/* ---- open and close ---- */

int tsdb_open(const tsdb_opts *opts, tsdb **out, pl_err *err) {
  tsdb *db = calloc(1, sizeof *db);
  if (!db) return PL_ENOMEM;
  db->opts = *opts;
  if (!db->opts.fsync_set) db->opts.fsync = TSDB_FSYNC_INTERVAL;
  if (!db->opts.ooo_window_ns) db->opts.ooo_window_ns = DEFAULT_OOO_NS;
  if (!db->opts.partition_ns) db->opts.partition_ns = DEFAULT_PARTITION_NS;
  if (!db->opts.head_rows_max) db->opts.head_rows_max = DEFAULT_HEAD_ROWS;
  if (db->opts.head_rows_max > TSDB_CHUNK_POINTS_MAX) db->opts.head_rows_max = TSDB_CHUNK_POINTS_MAX;
  if (!db->opts.checkpoint_interval_ns) db->opts.checkpoint_interval_ns = DEFAULT_CHECKPOINT_NS;
  if (!db->opts.checkpoint_wal_bytes) db->opts.checkpoint_wal_bytes = DEFAULT_CHECKPOINT_BYTES;
  db->dir = strdup(opts->dir);
  pthread_rwlock_init(&db->lock, NULL);
  pthread_mutex_init(&db->flush_mutex, NULL);
  pthread_mutex_init(&db->bg_mutex, NULL);
  pthread_cond_init(&db->bg_cond, NULL);
  db->groups = pl_map_new();
  db->last_checkpoint_ns = pl_mono_ns();
  char path[4096];
  int rc = db->dir && db->groups ? 0 : PL_ENOMEM;
  if (rc == 0 && pl_fs_mkdir_p(opts->dir, 0700) < 0) rc = pl_err_set(err, PL_EIO, "cannot create %s", opts->dir);
  if (rc == 0) {
    snprintf(path, sizeof path, "%s/chunks.db", opts->dir);
    rc = cs_open(path, &db->cs, err);
  }
  if (rc == 0) rc = cs_load(db->cs, load_group, load_chunk, db);
  if (rc == 0) {
    for (size_t id = 1; id < db->by_id_cap; id++)
      if (db->by_id[id]) group_chunks_sorted(db->by_id[id]);
    snprintf(path, sizeof path, "%s/wal", opts->dir);
    tsdb_wal_opts wo = {.dir = path, .fsync = db->opts.fsync, .fsync_interval_ns = db->opts.fsync_interval_ns};
    rc = tsdb_wal_open(&wo, &db->wal, err);
  }
  if (rc == 0) {
    replay_ctx rctx = {.db = db};
    tsdb_wal_replay_stats st;
    int64_t t0 = pl_mono_ns();
    rc = tsdb_wal_replay(db->wal, replay_cb, &rctx, &st);
    free(rctx.rows);
    free(rctx.fields);
    free(rctx.tags);
    if (rc < 0) {
      pl_err_set(err, rc, "replaying the time-series WAL failed: %s", pl_strerror(rc));
    } else {
      PL_LOG(PL_LOG_INFO, "tsdb", "replayed records=%llu skipped=%llu bytes=%llu ms=%.1f",
             (unsigned long long)st.records, (unsigned long long)rctx.skipped, (unsigned long long)st.bytes,
             (double)(pl_mono_ns() - t0) / 1e6);
      if (st.tail_cut)
        PL_LOG(PL_LOG_WARN, "tsdb", "wal tail cut segment=%s offset=%llu reason=\"%s\"", st.tail_segment,
               (unsigned long long)st.tail_cut_offset, st.tail_reason);
      db->wal_bytes_since_checkpoint = st.bytes;
    }
  }
  if (rc == 0 && db->opts.background) {
    if (pthread_create(&db->thread, NULL, flusher_main, db) != 0) rc = pl_err_set(err, PL_ENOMEM, "cannot start the flusher");
    else db->thread_running = 1;
  }
  if (rc < 0) {
    tsdb_close(db);
    return rc;
  }
  *out = db;
  return 0;
}

void tsdb_close(tsdb *db) {
  if (!db) return;
  if (db->thread_running) {
    pthread_mutex_lock(&db->bg_mutex);
    db->stop = 1;
    pthread_cond_signal(&db->bg_cond);
    pthread_mutex_unlock(&db->bg_mutex);
    pthread_join(db->thread, NULL);
  }
  if (db->wal && db->cs && !db->failed) {
    pthread_mutex_lock(&db->flush_mutex);
    engine_flush(db, 1);
    pthread_mutex_unlock(&db->flush_mutex);
  }
  tsdb_wal_close(db->wal);
  cs_close(db->cs);
  /* Every group is in the map (by_id only indexes those with an id). */
  if (db->groups) {
    size_t it = 0;
    const void *k;
    size_t kl;
    void *v;
    while (pl_map_next(db->groups, &it, &k, &kl, &v)) group_free(v);
    pl_map_free(db->groups);
  }
  free(db->by_id);
  pthread_rwlock_destroy(&db->lock);
  pthread_mutex_destroy(&db->flush_mutex);
  pthread_mutex_destroy(&db->bg_mutex);
  pthread_cond_destroy(&db->bg_cond);
  free(db->dir);
  free(db);
}

void tsdb_info_get(tsdb *db, int64_t tenant_id, tsdb_info *out) {
  memset(out, 0, sizeof *out);
  pthread_rwlock_rdlock(&db->lock);
  for (size_t id = 1; id < db->by_id_cap; id++) {
    group *g = db->by_id[id];
    if (!g || (tenant_id && g->tenant_id != tenant_id)) continue;
    out->groups++;
    out->series += g->nfields;
    for (size_t c = 0; c < g->nchunks; c++) {
      if (g->chunks[c].summary) {
        out->rollups++;
        continue;
      }
      out->chunks++;
      out->chunk_bytes += g->chunks[c].bytes;
      for (size_t k = 0; k < g->chunks[c].ncols; k++) out->points_in_chunks += g->chunks[c].stats[k].count;
    }
    const head *hs[2] = {&g->head, g->frozen};
    for (int k = 0; k < 2; k++) {
      if (!hs[k]) continue;
      for (uint32_t c = 0; c < hs[k]->ncols; c++)
        for (uint32_t r = 0; r < hs[k]->n; r++) out->points_in_heads += hs[k]->cols[c].present[r];
    }
  }
  out->failed = db->failed || tsdb_wal_failed(db->wal);
  out->wal_bytes = db->wal_bytes_since_checkpoint;
  pthread_rwlock_unlock(&db->lock);
}
