/* Queries: finding groups, reading the points of a series (chunks merged with heads, later
 * writes replacing earlier ones at the same time), aggregating over buckets (whole chunks from
 * their statistics), and the latest value of every field.
 *
 * A read copies what it needs under the shared lock -- the chunk metas of the series and the
 * head rows in range -- and decodes chunks after releasing it. A chunk replaced by compaction
 * between the two steps is gone from chunks.db; the read then starts over (at most a few
 * times: compaction of one partition happens once). */
#include "tsdb/engine_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- points ---- */

void tsdb_points_init(tsdb_points *p) {
  memset(p, 0, sizeof *p);
  pl_buf_init(&p->arena, 0);
}

void tsdb_points_free(tsdb_points *p) {
  free(p->ts);
  free(p->f);
  free(p->i);
  free(p->b);
  free(p->s);
  free(p->slen);
  pl_buf_free(&p->arena);
  tsdb_points_init(p);
}

int points_reserve(tsdb_points *p, size_t n) {
  if (p->n + n <= p->cap) return 0;
  size_t cap = p->cap ? p->cap : 256;
  while (cap < p->n + n) cap *= 2;
#define GROW(field)                                                                                                    \
  do {                                                                                                                 \
    void *q = realloc(p->field, cap * sizeof *p->field);                                                              \
    if (!q) return PL_ENOMEM;                                                                                          \
    p->field = q;                                                                                                      \
  } while (0)
  GROW(ts);
  switch (p->type) {
  case TSDB_FLOAT: GROW(f); break;
  case TSDB_INT: GROW(i); break;
  case TSDB_BOOL: GROW(b); break;
  case TSDB_STRING:
    GROW(s);
    GROW(slen);
    break;
  }
#undef GROW
  p->cap = cap;
  return 0;
}

/* Strings are collected as arena offsets (in s[] cast to an integer) and turned into pointers
 * once the arena stops growing. */
static int push_point(tsdb_points *p, int64_t ts, const head_val *v, const char *str) {
  if (p->n == p->cap && points_reserve(p, 1) < 0) return PL_ENOMEM;
  size_t k = p->n;
  p->ts[k] = ts;
  switch (p->type) {
  case TSDB_FLOAT: p->f[k] = v->f; break;
  case TSDB_INT: p->i[k] = v->i; break;
  case TSDB_BOOL: p->b[k] = (uint8_t)v->i; break;
  case TSDB_STRING:
    p->s[k] = (const char *)(uintptr_t)p->arena.len;
    p->slen[k] = v->s.len;
    if (pl_buf_append(&p->arena, str, v->s.len) < 0) return PL_ENOMEM;
    break;
  }
  p->n++;
  return 0;
}

static void strings_fix(tsdb_points *p) {
  if (p->type != TSDB_STRING) return;
  for (size_t k = 0; k < p->n; k++) p->s[k] = (const char *)p->arena.data + (uintptr_t)p->s[k];
}

/* ---- finding groups ---- */

static void group_info(const group *g, tsdb_group_info *gi) {
  gi->id = g->id;
  gi->tenant_id = g->tenant_id;
  gi->measurement = g->measurement;
  gi->tags = g->tags;
  gi->ntags = g->ntags;
  gi->nfields = g->nfields;
  gi->field_names = g->field_names;
  gi->field_types = g->field_types;
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  if (g->nchunks) {
    lo = g->chunks[0].start_ts; /* sorted by start */
    hi = g->chunks_max_end;
  }
  const head *hs[2] = {&g->head, g->frozen};
  for (int k = 0; k < 2; k++) {
    if (!hs[k] || !hs[k]->n) continue;
    if (hs[k]->min_ts < lo) lo = hs[k]->min_ts;
    if (hs[k]->max_ts > hi) hi = hs[k]->max_ts;
  }
  gi->first_ts = lo == INT64_MAX ? 0 : lo;
  gi->last_ts = hi == INT64_MIN ? 0 : hi;
}

int tsdb_groups(tsdb *db, int64_t tenant_id, tsdb_str measurement, int (*cb)(void *ctx, const tsdb_group_info *g),
                void *ctx) {
  int count = 0, rc = 0;
  pthread_rwlock_rdlock(&db->lock);
  for (size_t id = 1; id < db->by_id_cap && rc == 0; id++) {
    group *g = db->by_id[id];
    if (!g || g->tenant_id != tenant_id) continue;
    if (measurement.p && (g->measurement.len != measurement.len ||
                          memcmp(g->measurement.p, measurement.p, measurement.len) != 0))
      continue;
    tsdb_group_info gi;
    group_info(g, &gi);
    count++;
    rc = cb(ctx, &gi);
  }
  pthread_rwlock_unlock(&db->lock);
  return rc < 0 ? rc : count;
}

int tsdb_group_find(tsdb *db, int64_t tenant_id, tsdb_str measurement, const tsdb_tag *tags, size_t ntags,
                    uint64_t *group_id) {
  if (ntags > TSDB_TAGS_MAX) return PL_EINVAL;
  tsdb_tag sorted[TSDB_TAGS_MAX];
  memcpy(sorted, tags, ntags * sizeof *tags);
  if (tags_sort(sorted, ntags) < 0) return PL_EINVAL;
  pl_buf key;
  pl_buf_init(&key, 0);
  int rc = key_encode(tenant_id, measurement, sorted, ntags, &key);
  if (rc == 0) {
    pthread_rwlock_rdlock(&db->lock);
    group *g = pl_map_get(db->groups, key.data, key.len);
    if (g && g->id) *group_id = g->id;
    else rc = PL_ENOTFOUND;
    pthread_rwlock_unlock(&db->lock);
  }
  pl_buf_free(&key);
  return rc;
}

/* ---- reading one series ---- */

typedef struct chunk_ref {
  int64_t id, start_ts, end_ts;
  uint8_t col;
} chunk_ref;

/* What a read copies under the lock. Head rows are copied into `heads` (one tsdb_points per
 * head, arrival order). */
typedef struct snapshot {
  tsdb_type type;
  int field;
  chunk_ref *chunks;
  size_t nchunks;
  tsdb_points heads[2]; /* frozen, then head: newer last */
} snapshot;

static void snapshot_free(snapshot *s) {
  free(s->chunks);
  for (int k = 0; k < 2; k++) tsdb_points_free(&s->heads[k]);
}

static int copy_head(const head *h, int field, int64_t start, int64_t end, tsdb_points *out) {
  if (!h || (uint32_t)field >= h->ncols) return 0;
  const head_col *c = &h->cols[field];
  for (uint32_t r = 0; r < h->n; r++) {
    if (!c->present[r] || h->ts[r] < start || h->ts[r] >= end) continue;
    const char *str = out->type == TSDB_STRING ? (const char *)h->strings.data + c->vals[r].s.off : NULL;
    if (push_point(out, h->ts[r], &c->vals[r], str) < 0) return PL_ENOMEM;
  }
  return 0;
}

/* Copies the metas of chunks overlapping [start, end) that hold the field, skipping the ids
 * in exclude (sorted not required; n is small). Caller holds the lock. */
static int take_snapshot(const group *g, int field, int64_t start, int64_t end, const int64_t *exclude, size_t nexclude,
                         snapshot *s) {
  memset(s, 0, sizeof *s);
  s->type = g->field_types[field];
  s->field = field;
  for (int k = 0; k < 2; k++) {
    tsdb_points_init(&s->heads[k]);
    s->heads[k].type = s->type;
  }
  s->chunks = malloc((g->nchunks ? g->nchunks : 1) * sizeof *s->chunks);
  if (!s->chunks) return PL_ENOMEM;
  for (size_t c = 0; c < g->nchunks; c++) {
    const chunk_meta *m = &g->chunks[c];
    if (m->summary || m->end_ts < start || m->start_ts >= end) continue;
    int col = -1;
    for (uint8_t k = 0; k < m->ncols; k++)
      if (m->col_field[k] == field) col = k;
    if (col < 0) continue;
    int skip = 0;
    for (size_t e = 0; e < nexclude && !skip; e++) skip = exclude[e] == m->id;
    if (skip) continue;
    s->chunks[s->nchunks++] = (chunk_ref){m->id, m->start_ts, m->end_ts, (uint8_t)col};
  }
  int rc = copy_head(g->frozen, field, start, end, &s->heads[0]);
  if (rc == 0) rc = copy_head(&g->head, field, start, end, &s->heads[1]);
  return rc;
}

/* One source of points for the merge: a range of `all` with a priority (higher wins). */
typedef struct piece {
  size_t from, to;
  int64_t prio;
  int sorted;
} piece;

static int cmp_chunk_ref_id(const void *a, const void *b) {
  const chunk_ref *x = a, *y = b;
  return x->id < y->id ? -1 : x->id > y->id;
}

/* Decodes one chunk column, appending the points in [start, end) to out. */
static int decode_into(tsdb *db, const chunk_ref *ref, tsdb_type type, int64_t start, int64_t end, pl_buf *blob,
                       tsdb_points *scratch, tsdb_points *out) {
  int rc = cs_chunk_get(db->cs, ref->id, blob);
  if (rc < 0) return rc;
  tsdb_chunk_info info;
  if ((rc = tsdb_chunk_info_parse(blob->data, blob->len, &info)) < 0) return rc;
  if (ref->col >= info.n_columns || info.cols[ref->col].type != type) return PL_ECORRUPT;
  size_t n = info.n_points;
  scratch->n = 0;
  scratch->type = type;
  if ((rc = points_reserve(scratch, n)) < 0) return rc;
  uint8_t *present = malloc(n);
  if (!present) return PL_ENOMEM;
  tsdb_column_out co = {.type = type, .present = present};
  pl_buf_reset(&scratch->arena);
  switch (type) {
  case TSDB_FLOAT: co.v.f = scratch->f; break;
  case TSDB_INT: co.v.i = scratch->i; break;
  case TSDB_BOOL: co.v.b = scratch->b; break;
  case TSDB_STRING:
    co.v.str.s = scratch->s;
    co.v.str.lens = scratch->slen;
    co.v.str.arena = &scratch->arena;
    break;
  }
  rc = tsdb_chunk_decode_ts(&info, scratch->ts);
  if (rc == 0) rc = tsdb_chunk_decode_column(&info, ref->col, &co);
  if (rc == 0) rc = points_reserve(out, n);
  for (size_t k = 0; k < n && rc == 0; k++) {
    if (!present[k] || scratch->ts[k] < start || scratch->ts[k] >= end) continue;
    head_val v;
    const char *str = NULL;
    switch (type) {
    case TSDB_FLOAT: v.f = scratch->f[k]; break;
    case TSDB_INT: v.i = scratch->i[k]; break;
    case TSDB_BOOL: v.i = scratch->b[k]; break;
    case TSDB_STRING:
      v.s.len = scratch->slen[k];
      str = scratch->s[k];
      break;
    }
    rc = push_point(out, scratch->ts[k], &v, str);
  }
  free(present);
  return rc;
}

typedef struct merge_key {
  int64_t ts;
  int64_t prio;
  size_t idx;
} merge_key;

static int cmp_merge(const void *a, const void *b) {
  const merge_key *x = a, *y = b;
  if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
  if (x->prio != y->prio) return x->prio < y->prio ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Puts the points of `all` in time order, keeping for each time the value of the piece with the
 * highest priority (and, within a piece, the last). Fast path: pieces already sorted and
 * disjoint in time are left as they are. */
static int merge_pieces(tsdb_points *all, piece *pieces, size_t npieces, tsdb_points *out) {
  int simple = 1;
  int64_t prev_max = INT64_MIN;
  /* Pieces are appended in chunk start order, then heads. */
  for (size_t k = 0; k < npieces && simple; k++) {
    if (pieces[k].from == pieces[k].to) continue;
    if (!pieces[k].sorted) simple = 0;
    if (all->ts[pieces[k].from] <= prev_max) simple = 0;
    prev_max = all->ts[pieces[k].to - 1];
  }
  if (simple) {
    tsdb_points tmp = *out;
    *out = *all;
    *all = tmp;
    return 0;
  }
  merge_key *keys = malloc((all->n ? all->n : 1) * sizeof *keys);
  if (!keys) return PL_ENOMEM;
  for (size_t k = 0; k < npieces; k++)
    for (size_t i = pieces[k].from; i < pieces[k].to; i++) keys[i] = (merge_key){all->ts[i], pieces[k].prio, i};
  qsort(keys, all->n, sizeof *keys, cmp_merge);
  if (out->type != all->type) {
    /* The arrays of out belong to another type: start afresh. */
    tsdb_points_free(out);
    out->type = all->type;
  }
  out->n = 0;
  pl_buf_reset(&out->arena);
  int rc = points_reserve(out, all->n);
  for (size_t k = 0; k < all->n && rc == 0; k++) {
    if (k + 1 < all->n && keys[k + 1].ts == keys[k].ts) continue; /* a later one wins */
    size_t i = keys[k].idx;
    head_val v;
    const char *str = NULL;
    switch (all->type) {
    case TSDB_FLOAT: v.f = all->f[i]; break;
    case TSDB_INT: v.i = all->i[i]; break;
    case TSDB_BOOL: v.i = all->b[i]; break;
    case TSDB_STRING:
      v.s.len = all->slen[i];
      str = (const char *)all->arena.data + (uintptr_t)all->s[i];
      break;
    }
    rc = push_point(out, keys[k].ts, &v, str);
  }
  free(keys);
  return rc;
}

static int head_sorted_unique(const tsdb_points *p) {
  for (size_t k = 1; k < p->n; k++)
    if (p->ts[k] <= p->ts[k - 1]) return 0;
  return 1;
}

/* Appends the points of src (strings as arena offsets of src) to dst (offsets of dst). */
static int append_points(tsdb_points *dst, const tsdb_points *src) {
  int rc = points_reserve(dst, src->n);
  for (size_t k = 0; k < src->n && rc == 0; k++) {
    head_val v;
    const char *str = NULL;
    switch (src->type) {
    case TSDB_FLOAT: v.f = src->f[k]; break;
    case TSDB_INT: v.i = src->i[k]; break;
    case TSDB_BOOL: v.i = src->b[k]; break;
    case TSDB_STRING:
      v.s.len = src->slen[k];
      str = (const char *)src->arena.data + (uintptr_t)src->s[k];
      break;
    }
    rc = push_point(dst, src->ts[k], &v, str);
  }
  return rc;
}

#define READ_RETRIES 5

/* Reads a series (see tsdb_read) excluding some chunks (those an aggregate answers from
 * statistics). out->type is set from the series. */
static int read_series(tsdb *db, int64_t tenant_id, uint64_t group_id, const char *field, int64_t start, int64_t end,
                       const int64_t *exclude, size_t nexclude, tsdb_points *out) {
  int rc = PL_ENOTFOUND;
  for (int attempt = 0; attempt < READ_RETRIES; attempt++) {
    snapshot s;
    pthread_rwlock_rdlock(&db->lock);
    group *g = group_by_id(db, group_id);
    int f = g && g->tenant_id == tenant_id ? group_field_index(g, field, strlen(field)) : -1;
    if (f < 0) {
      pthread_rwlock_unlock(&db->lock);
      return PL_ENOTFOUND;
    }
    rc = take_snapshot(g, f, start, end, exclude, nexclude, &s);
    pthread_rwlock_unlock(&db->lock);
    if (rc < 0) {
      snapshot_free(&s);
      return rc;
    }
    if (out->type != s.type) {
      /* out was used for a series of another type: its arrays do not fit. */
      tsdb_points_free(out);
      out->type = s.type;
    }
    /* Chunks by id: later chunks win over earlier ones at equal times. */
    qsort(s.chunks, s.nchunks, sizeof *s.chunks, cmp_chunk_ref_id);
    tsdb_points all, scratch;
    tsdb_points_init(&all);
    tsdb_points_init(&scratch);
    all.type = s.type;
    piece *pieces = malloc((s.nchunks + 2) * sizeof *pieces);
    size_t np = 0;
    pl_buf blob;
    pl_buf_init(&blob, TSDB_CHUNK_BYTES_MAX);
    if (!pieces) rc = PL_ENOMEM;
    /* Decode in time order so the fast path of merge_pieces applies when chunks are disjoint;
     * priorities come from the id order computed above. */
    int64_t *prio = malloc((s.nchunks ? s.nchunks : 1) * sizeof *prio);
    if (!prio) rc = PL_ENOMEM;
    for (size_t c = 0; c < s.nchunks && rc == 0; c++) prio[c] = (int64_t)c;
    for (size_t c = 1; c < s.nchunks && rc == 0; c++) {
      /* insertion sort by start_ts, carrying priorities */
      chunk_ref ref = s.chunks[c];
      int64_t p = prio[c];
      size_t j = c;
      while (j > 0 && s.chunks[j - 1].start_ts > ref.start_ts) {
        s.chunks[j] = s.chunks[j - 1];
        prio[j] = prio[j - 1];
        j--;
      }
      s.chunks[j] = ref;
      prio[j] = p;
    }
    for (size_t c = 0; c < s.nchunks && rc == 0; c++) {
      size_t from = all.n;
      rc = decode_into(db, &s.chunks[c], s.type, start, end, &blob, &scratch, &all);
      if (rc == 0) pieces[np++] = (piece){from, all.n, prio[c], 1};
    }
    for (int k = 0; k < 2 && rc == 0; k++) {
      size_t from = all.n;
      int sorted = head_sorted_unique(&s.heads[k]);
      rc = append_points(&all, &s.heads[k]);
      if (rc == 0) pieces[np++] = (piece){from, all.n, (int64_t)s.nchunks + k, sorted};
    }
    if (rc == 0) {
      out->type = s.type;
      rc = merge_pieces(&all, pieces, np, out);
    }
    free(prio);
    free(pieces);
    pl_buf_free(&blob);
    tsdb_points_free(&all);
    tsdb_points_free(&scratch);
    snapshot_free(&s);
    if (rc != PL_ENOTFOUND) break;
    /* A chunk vanished under us (compaction or deletion): read again. */
    out->n = 0;
  }
  if (rc == 0) strings_fix(out);
  return rc;
}

int tsdb_read(tsdb *db, int64_t tenant_id, uint64_t group_id, const char *field, int64_t start_ns, int64_t end_ns,
              size_t limit, int descending, tsdb_points *out) {
  out->n = 0;
  pl_buf_reset(&out->arena);
  if (start_ns >= end_ns) {
    /* An empty range still says which type the series has. */
    pthread_rwlock_rdlock(&db->lock);
    group *g = group_by_id(db, group_id);
    int f = g && g->tenant_id == tenant_id ? group_field_index(g, field, strlen(field)) : -1;
    if (f >= 0) out->type = g->field_types[f];
    pthread_rwlock_unlock(&db->lock);
    return f < 0 ? PL_ENOTFOUND : 0;
  }
  int rc = read_series(db, tenant_id, group_id, field, start_ns, end_ns, NULL, 0, out);
  if (rc < 0 || !limit || out->n <= limit) return rc;
  if (descending) {
    size_t drop = out->n - limit;
    memmove(out->ts, out->ts + drop, limit * sizeof *out->ts);
    switch (out->type) {
    case TSDB_FLOAT: memmove(out->f, out->f + drop, limit * sizeof *out->f); break;
    case TSDB_INT: memmove(out->i, out->i + drop, limit * sizeof *out->i); break;
    case TSDB_BOOL: memmove(out->b, out->b + drop, limit); break;
    case TSDB_STRING:
      memmove(out->s, out->s + drop, limit * sizeof *out->s);
      memmove(out->slen, out->slen + drop, limit * sizeof *out->slen);
      break;
    }
  }
  out->n = limit;
  return 0;
}

/* ---- aggregation ---- */

#define STATS_AGGS                                                                                                     \
  (TSDB_AGG_COUNT | TSDB_AGG_SUM | TSDB_AGG_MEAN | TSDB_AGG_MIN | TSDB_AGG_MAX | TSDB_AGG_FIRST | TSDB_AGG_LAST |      \
   TSDB_AGG_SPREAD)

typedef struct stat_piece {
  int64_t id, start_ts, end_ts;
  tsdb_stats stats;
} stat_piece;

static double point_value(const tsdb_points *p, size_t k) {
  switch (p->type) {
  case TSDB_FLOAT: return p->f[k];
  case TSDB_INT: return (double)p->i[k];
  case TSDB_BOOL: return p->b[k];
  default: return 0;
  }
}

static int cmp_stat_piece(const void *a, const void *b) {
  const stat_piece *x = a, *y = b;
  return x->start_ts < y->start_ts ? -1 : x->start_ts > y->start_ts;
}

int tsdb_aggregate(tsdb *db, int64_t tenant_id, uint64_t group_id, const char *field, const tsdb_agg_spec *spec,
                   tsdb_buckets *out) {
  out->n = 0;
  if (spec->start_ns >= spec->end_ns) return 0;
  if (spec->bucket_ns < 0) return PL_EINVAL;
  if (spec->bucket_ns > 0 && (uint64_t)(spec->end_ns - spec->start_ns) / (uint64_t)spec->bucket_ns > 1000000)
    return PL_ELIMIT;
  int64_t w = spec->bucket_ns;
  /* 1. Chunks that statistics answer: wholly in range and in one bucket, alone in their time. */
  stat_piece *pieces = NULL;
  size_t npieces = 0;
  int64_t *exclude = NULL;
  tsdb_type type = TSDB_FLOAT;
  pthread_rwlock_rdlock(&db->lock);
  group *g = group_by_id(db, group_id);
  int f = g && g->tenant_id == tenant_id ? group_field_index(g, field, strlen(field)) : -1;
  if (f < 0) {
    pthread_rwlock_unlock(&db->lock);
    return PL_ENOTFOUND;
  }
  type = g->field_types[f];
  int usable = (spec->aggs & ~STATS_AGGS) == 0 && (type != TSDB_STRING || (spec->aggs & ~TSDB_AGG_COUNT) == 0);
  if (usable && g->nchunks) {
    pieces = malloc(g->nchunks * sizeof *pieces);
    exclude = malloc(g->nchunks * sizeof *exclude);
    if (!pieces || !exclude) usable = 0;
  }
  int64_t head_lo = INT64_MAX, head_hi = INT64_MIN;
  const head *hs[2] = {&g->head, g->frozen};
  for (int k = 0; k < 2; k++)
    if (hs[k] && hs[k]->n) {
      if (hs[k]->min_ts < head_lo) head_lo = hs[k]->min_ts;
      if (hs[k]->max_ts > head_hi) head_hi = hs[k]->max_ts;
    }
  /* Rollups (summaries of chunks whose points retention dropped) can only be used this way. */
  size_t nsummary = 0;
  for (size_t c = 0; c < g->nchunks; c++) nsummary += g->chunks[c].summary;
  if (nsummary && (!pieces || !exclude)) {
    free(pieces);
    free(exclude);
    pieces = malloc(g->nchunks * sizeof *pieces);
    exclude = malloc(g->nchunks * sizeof *exclude);
  }
  for (size_t c = 0; (usable || nsummary) && pieces && exclude && c < g->nchunks; c++) {
    const chunk_meta *m = &g->chunks[c];
    if (!usable && !m->summary) continue;
    if (m->overlaps || m->start_ts < spec->start_ns || m->end_ts >= spec->end_ns) continue;
    if (w > 0 && agg_bucket_start(m->start_ts, w, spec->offset_ns) != agg_bucket_start(m->end_ts, w, spec->offset_ns))
      continue;
    if (!(m->end_ts < head_lo || m->start_ts > head_hi)) continue;
    int col = -1;
    for (uint8_t k = 0; k < m->ncols; k++)
      if (m->col_field[k] == f) col = k;
    if (col < 0) continue;
    /* first/last need the times of the first and last values: known when every row has one. */
    if ((spec->aggs & (TSDB_AGG_FIRST | TSDB_AGG_LAST)) && !m->col_full[col]) continue;
    pieces[npieces] = (stat_piece){m->id, m->start_ts, m->end_ts, m->stats[col]};
    exclude[npieces++] = m->id;
  }
  pthread_rwlock_unlock(&db->lock);

  /* 2. Points for everything else. */
  tsdb_points pts;
  tsdb_points_init(&pts);
  int rc = read_series(db, tenant_id, group_id, field, spec->start_ns, spec->end_ns, exclude, npieces, &pts);
  if (rc == PL_ENOTFOUND && npieces) {
    /* A stats chunk was compacted away meanwhile: fall back to reading everything. */
    npieces = 0;
    rc = read_series(db, tenant_id, group_id, field, spec->start_ns, spec->end_ns, NULL, 0, &pts);
  }
  if (npieces) qsort(pieces, npieces, sizeof *pieces, cmp_stat_piece);

  /* 3. Walk buckets in time order. */
  agg_acc acc;
  memset(&acc, 0, sizeof acc);
  agg_reset(&acc);
  size_t pi = 0, si = 0;
  int64_t range_first = w > 0 ? agg_bucket_start(spec->start_ns, w, spec->offset_ns) : spec->start_ns;
  while (rc == 0 && (pi < pts.n || si < npieces)) {
    int64_t tp = pi < pts.n ? pts.ts[pi] : INT64_MAX;
    int64_t tsx = si < npieces ? pieces[si].start_ts : INT64_MAX;
    int64_t t = tp < tsx ? tp : tsx;
    int64_t b = w > 0 ? agg_bucket_start(t, w, spec->offset_ns) : range_first;
    int64_t b_end = w > 0 ? b + w : INT64_MAX;
    agg_reset(&acc);
    while (pi < pts.n && pts.ts[pi] < b_end && rc == 0) {
      rc = agg_add(&acc, pts.ts[pi], type == TSDB_STRING ? 0 : point_value(&pts, pi), spec->aggs);
      pi++;
    }
    while (si < npieces && pieces[si].start_ts < b_end) {
      agg_add_stats(&acc, &pieces[si].stats, pieces[si].start_ts, pieces[si].end_ts);
      si++;
    }
    tsdb_bucket bk;
    memset(&bk, 0, sizeof bk);
    bk.start_ns = b;
    agg_finish(&acc, spec, &bk);
    if (type == TSDB_STRING) {
      bk.sum = bk.mean = bk.min = bk.max = bk.first = bk.last = bk.spread = NAN;
    }
    if (rc == 0) rc = buckets_push(out, &bk);
  }
  agg_free(&acc);
  if (rc == 0 && w > 0) {
    int64_t last = agg_bucket_start(spec->end_ns - 1, w, spec->offset_ns);
    rc = agg_fill(out, spec, range_first, last);
  } else if (rc == 0 && w == 0 && out->n == 0 && spec->fill != TSDB_FILL_NONE) {
    tsdb_bucket bk;
    memset(&bk, 0, sizeof bk);
    bk.start_ns = range_first;
    bk.sum = bk.mean = bk.min = bk.max = bk.first = bk.last = bk.stddev = bk.percentile = bk.median = bk.spread =
        spec->fill == TSDB_FILL_VALUE ? spec->fill_value : NAN;
    rc = buckets_push(out, &bk);
  }
  free(pieces);
  free(exclude);
  tsdb_points_free(&pts);
  return rc;
}

/* ---- latest ---- */

int tsdb_latest(tsdb *db, int64_t tenant_id, uint64_t group_id,
                int (*cb)(void *ctx, tsdb_str field, int64_t ts_ns, const tsdb_value *v), void *ctx) {
  /* Copy the field list and, per field, where its newest values can start. */
  pthread_rwlock_rdlock(&db->lock);
  group *g = group_by_id(db, group_id);
  if (!g || g->tenant_id != tenant_id) {
    pthread_rwlock_unlock(&db->lock);
    return PL_ENOTFOUND;
  }
  uint32_t nf = g->nfields;
  char **names = calloc(nf ? nf : 1, sizeof *names);
  int64_t *from = malloc((nf ? nf : 1) * sizeof *from);
  /* Most answers need no decoding: the newest row of a head, or the last value a chunk's
   * statistics hold. fast[f].type stays 0 where the slow path must read. */
  struct {
    tsdb_value v;
    int64_t ts;
  } *fast = calloc(nf ? nf : 1, sizeof *fast);
  int rc = names && from && fast ? 0 : PL_ENOMEM;
  for (uint32_t f = 0; f < nf && rc == 0; f++) {
    names[f] = strdup(g->field_names[f].p);
    if (!names[f]) rc = PL_ENOMEM;
    tsdb_type type = g->field_types[f];
    int64_t head_ts = INT64_MIN;
    const head_val *head_v = NULL;
    const head *hs[2] = {g->frozen, &g->head}; /* newer last: equal times take the later */
    for (int k = 0; k < 2; k++) {
      if (!hs[k] || f >= hs[k]->ncols) continue;
      for (uint32_t r = 0; r < hs[k]->n; r++)
        if (hs[k]->cols[f].present[r] && hs[k]->ts[r] >= head_ts) head_ts = hs[k]->ts[r], head_v = &hs[k]->cols[f].vals[r];
    }
    const chunk_meta *newest = NULL;
    int col = -1;
    for (size_t c = 0; c < g->nchunks; c++) {
      const chunk_meta *m = &g->chunks[c];
      for (uint8_t k = 0; k < m->ncols; k++)
        if (!m->summary && m->col_field[k] == f && (!newest || m->end_ts > newest->end_ts)) newest = m, col = k;
    }
    if (head_v && type != TSDB_STRING && (!newest || head_ts > newest->end_ts)) {
      fast[f].ts = head_ts;
      fast[f].v.type = type;
      if (type == TSDB_FLOAT) fast[f].v.v.f = head_v->f;
      else if (type == TSDB_INT) fast[f].v.v.i = head_v->i;
      else fast[f].v.v.b = (int)head_v->i;
    } else if (!head_v && newest && !newest->overlaps && newest->col_full[col] && type != TSDB_STRING) {
      const tsdb_stats *st = &newest->stats[col];
      fast[f].ts = newest->end_ts;
      fast[f].v.type = type;
      if (type == TSDB_FLOAT) fast[f].v.v.f = st->last;
      else if (type == TSDB_INT) fast[f].v.v.i = st->last_i;
      else fast[f].v.v.b = st->last != 0;
    }
    /* The chunk holding the field that ends last; any chunk reaching into it may hold later
     * values too, so start from the earliest start among those. */
    int64_t best_end = INT64_MIN, start = INT64_MIN;
    for (size_t c = 0; c < g->nchunks; c++) {
      const chunk_meta *m = &g->chunks[c];
      for (uint8_t k = 0; k < m->ncols; k++)
        if (m->col_field[k] == f && m->end_ts > best_end) best_end = m->end_ts, start = m->start_ts;
    }
    for (size_t c = 0; c < g->nchunks && best_end != INT64_MIN; c++)
      if (g->chunks[c].end_ts >= start && g->chunks[c].start_ts < start) start = g->chunks[c].start_ts;
    from[f] = start;
  }
  pthread_rwlock_unlock(&db->lock);
  tsdb_points p;
  tsdb_points_init(&p);
  for (uint32_t f = 0; f < nf && rc == 0; f++) {
    if (fast[f].v.type) {
      rc = cb(ctx, (tsdb_str){names[f], strlen(names[f])}, fast[f].ts, &fast[f].v);
      continue;
    }
    rc = read_series(db, tenant_id, group_id, names[f], from[f], INT64_MAX, NULL, 0, &p);
    if (rc == PL_ENOTFOUND) {
      rc = 0; /* the field or group went away meanwhile */
      continue;
    }
    if (rc < 0 || p.n == 0) continue;
    size_t k = p.n - 1;
    tsdb_value v = {.type = p.type};
    switch (p.type) {
    case TSDB_FLOAT: v.v.f = p.f[k]; break;
    case TSDB_INT: v.v.i = p.i[k]; break;
    case TSDB_BOOL: v.v.b = p.b[k]; break;
    case TSDB_STRING: v.v.s = (tsdb_str){p.s[k], p.slen[k]}; break;
    }
    rc = cb(ctx, (tsdb_str){names[f], strlen(names[f])}, p.ts[k], &v);
    p.n = 0;
  }
  tsdb_points_free(&p);
  for (uint32_t f = 0; f < nf && names; f++) free(names[f]);
  free(names);
  free(from);
  free(fast);
  return rc;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

int tsdb_tenants(tsdb *db, int64_t *out, size_t max) {
  pthread_rwlock_rdlock(&db->lock);
  int64_t *all = malloc((db->by_id_cap ? db->by_id_cap : 1) * sizeof *all);
  size_t n = 0;
  for (size_t id = 1; all && id < db->by_id_cap; id++)
    if (db->by_id[id]) all[n++] = db->by_id[id]->tenant_id;
  pthread_rwlock_unlock(&db->lock);
  if (!all) return PL_ENOMEM;
  if (n > 1) qsort(all, n, sizeof *all, cmp_i64);
  size_t u = 0;
  for (size_t k = 0; k < n; k++) {
    if (k && all[k] == all[k - 1]) continue;
    if (u < max) out[u] = all[k];
    u++;
  }
  free(all);
  return (int)u;
}
