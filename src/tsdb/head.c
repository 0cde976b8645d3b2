/* Heads: the rows of a group not yet in chunks, in arrival order, one column per field.
 * A head is append-only until the flusher cuts it: head_take moves rows out (sorted by time,
 * duplicates merged field by field, the later write winning) into a frozen head that is
 * encoded into chunks. */
#include "tsdb/head_int.h"

#include <stdlib.h>
#include <string.h>

void head_init(head *h) {
  memset(h, 0, sizeof *h);
  h->sorted = 1;
  pl_buf_init(&h->strings, 0);
}

void head_free(head *h) {
  free(h->ts);
  free(h->lsn);
  for (uint32_t c = 0; c < h->ncols; c++) {
    free(h->cols[c].vals);
    free(h->cols[c].present);
  }
  free(h->cols);
  pl_buf_free(&h->strings);
  head_init(h);
}

size_t head_bytes(const head *h) {
  return (size_t)h->cap * (16 + (size_t)h->ncols * 9) + h->strings.cap;
}

static int grow_col(head_col *c, uint32_t old_cap, uint32_t cap) {
  head_val *v = realloc(c->vals, (size_t)cap * sizeof *v);
  if (!v) return PL_ENOMEM;
  c->vals = v;
  uint8_t *p = realloc(c->present, cap);
  if (!p) return PL_ENOMEM;
  c->present = p;
  memset(c->present + old_cap, 0, cap - old_cap);
  return 0;
}

int head_reserve(head *h, uint32_t rows, uint32_t ncols) {
  if (ncols > h->ncols) {
    head_col *cols = realloc(h->cols, ncols * sizeof *cols);
    if (!cols) return PL_ENOMEM;
    h->cols = cols;
    for (uint32_t c = h->ncols; c < ncols; c++) {
      cols[c].vals = NULL;
      cols[c].present = NULL;
      if (h->cap && grow_col(&cols[c], 0, h->cap) < 0) {
        h->ncols = c;
        return PL_ENOMEM;
      }
    }
    h->ncols = ncols;
  }
  if (h->n + rows <= h->cap) return 0;
  uint32_t cap = h->cap ? h->cap : 64;
  while (cap < h->n + rows) cap *= 2;
  int64_t *ts = realloc(h->ts, (size_t)cap * sizeof *ts);
  if (!ts) return PL_ENOMEM;
  h->ts = ts;
  uint64_t *lsn = realloc(h->lsn, (size_t)cap * sizeof *lsn);
  if (!lsn) return PL_ENOMEM;
  h->lsn = lsn;
  for (uint32_t c = 0; c < h->ncols; c++)
    if (grow_col(&h->cols[c], h->cap, cap) < 0) return PL_ENOMEM;
  h->cap = cap;
  return 0;
}

uint32_t head_append_row(head *h, int64_t ts, uint64_t lsn) {
  uint32_t r = h->n++;
  h->ts[r] = ts;
  h->lsn[r] = lsn;
  if (r == 0) {
    h->min_ts = h->max_ts = ts;
    h->min_lsn = lsn;
    h->sorted = 1;
  } else {
    if (ts <= h->max_ts) h->sorted = 0;
    if (ts > h->max_ts) h->max_ts = ts;
    if (ts < h->min_ts) h->min_ts = ts;
    if (lsn < h->min_lsn) h->min_lsn = lsn;
  }
  return r;
}

int head_set(head *h, uint32_t row, uint32_t col, tsdb_type type, const tsdb_value *v) {
  head_val hv;
  switch (type) {
  case TSDB_FLOAT: hv.f = v->v.f; break;
  case TSDB_INT: hv.i = v->v.i; break;
  case TSDB_BOOL: hv.i = v->v.b ? 1 : 0; break;
  case TSDB_STRING:
    if (h->strings.len + v->v.s.len > UINT32_MAX) return PL_ELIMIT;
    hv.s.off = (uint32_t)h->strings.len;
    hv.s.len = (uint32_t)v->v.s.len;
    if (pl_buf_append(&h->strings, v->v.s.p, v->v.s.len) < 0) return PL_ENOMEM;
    break;
  default: return PL_EINVAL;
  }
  h->cols[col].vals[row] = hv;
  h->cols[col].present[row] = 1;
  return 0;
}

/* A stable merge sort of row indices by time: among equal times, arrival order is kept, so
 * the last of them is the newest write. (qsort is not stable and takes no context.) */
static void msort(uint32_t *idx, uint32_t *tmp, size_t n, const int64_t *ts) {
  if (n < 2) return;
  size_t mid = n / 2;
  msort(idx, tmp, mid, ts);
  msort(idx + mid, tmp, n - mid, ts);
  size_t i = 0, j = mid, k = 0;
  if (ts[idx[mid - 1]] <= ts[idx[mid]]) return;
  while (i < mid && j < n) tmp[k++] = ts[idx[j]] < ts[idx[i]] ? idx[j++] : idx[i++];
  while (i < mid) tmp[k++] = idx[i++];
  while (j < n) tmp[k++] = idx[j++];
  memcpy(idx, tmp, n * sizeof *idx);
}

int head_order(const head *h, uint32_t **order_out) {
  uint32_t *idx = malloc((size_t)(h->n ? h->n : 1) * sizeof *idx);
  uint32_t *tmp = malloc((size_t)(h->n ? h->n : 1) * sizeof *tmp);
  if (!idx || !tmp) {
    free(idx);
    free(tmp);
    return PL_ENOMEM;
  }
  for (uint32_t i = 0; i < h->n; i++) idx[i] = i;
  if (!h->sorted) msort(idx, tmp, h->n, h->ts);
  free(tmp);
  *order_out = idx;
  return 0;
}

int head_take(head *h, int64_t before_ts, head *out) {
  /* Moves the rows with ts < before_ts (all rows when before_ts == INT64_MAX) into out, sorted
   * by time with equal times merged, and keeps the others in h in arrival order. */
  head_init(out);
  uint32_t *order;
  int rc = head_order(h, &order);
  if (rc < 0) return rc;
  uint32_t ncols = h->ncols;
  if ((rc = head_reserve(out, h->n, ncols)) < 0) goto done;
  uint32_t keep = 0;
  uint8_t *taken = calloc(h->n ? h->n : 1, 1);
  if (!taken) {
    rc = PL_ENOMEM;
    goto done;
  }
  for (uint32_t k = 0; k < h->n; k++) {
    uint32_t r = order[k];
    if (h->ts[r] >= before_ts) continue;
    taken[r] = 1;
    uint32_t o;
    if (out->n && out->ts[out->n - 1] == h->ts[r]) {
      o = out->n - 1; /* same time: merge into the previous row, later values win */
      if (h->lsn[r] < out->lsn[o]) out->lsn[o] = h->lsn[r];
    } else {
      o = head_append_row(out, h->ts[r], h->lsn[r]);
    }
    for (uint32_t c = 0; c < ncols; c++) {
      if (!h->cols[c].present[r]) continue;
      head_val v = h->cols[c].vals[r];
      out->cols[c].vals[o] = v;
      out->cols[c].present[o] = 1;
    }
  }
  /* Strings: the frozen head shares nothing with h, so copy the arena (cheap next to the
   * encoding that follows, and only string columns pay for it). */
  if (h->strings.len && (rc = pl_buf_append(&out->strings, h->strings.data, h->strings.len)) < 0) {
    free(taken);
    goto done;
  }
  /* Compact the rows that stay. */
  h->sorted = 1;
  uint64_t min_lsn = 0;
  int64_t min_ts = 0, max_ts = 0;
  for (uint32_t r = 0; r < h->n; r++) {
    if (taken[r]) continue;
    if (keep != r) {
      h->ts[keep] = h->ts[r];
      h->lsn[keep] = h->lsn[r];
      for (uint32_t c = 0; c < ncols; c++) {
        h->cols[c].vals[keep] = h->cols[c].vals[r];
        h->cols[c].present[keep] = h->cols[c].present[r];
      }
    }
    if (keep == 0) {
      min_ts = max_ts = h->ts[keep];
      min_lsn = h->lsn[keep];
    } else {
      if (h->ts[keep] <= max_ts) h->sorted = 0;
      if (h->ts[keep] > max_ts) max_ts = h->ts[keep];
      if (h->ts[keep] < min_ts) min_ts = h->ts[keep];
      if (h->lsn[keep] < min_lsn) min_lsn = h->lsn[keep];
    }
    keep++;
  }
  for (uint32_t c = 0; c < ncols; c++) memset(h->cols[c].present + keep, 0, h->n - keep);
  h->n = keep;
  h->min_ts = min_ts;
  h->max_ts = max_ts;
  h->min_lsn = min_lsn;
  if (keep == 0) pl_buf_reset(&h->strings);
  free(taken);
done:
  free(order);
  if (rc < 0) head_free(out);
  return rc;
}

int head_delete_range(head *h, int64_t start_ns, int64_t end_ns) {
  uint32_t keep = 0;
  int64_t removed = 0;
  for (uint32_t r = 0; r < h->n; r++) {
    if (h->ts[r] >= start_ns && h->ts[r] < end_ns) {
      for (uint32_t c = 0; c < h->ncols; c++) removed += h->cols[c].present[r];
      continue;
    }
    if (keep != r) {
      h->ts[keep] = h->ts[r];
      h->lsn[keep] = h->lsn[r];
      for (uint32_t c = 0; c < h->ncols; c++) {
        h->cols[c].vals[keep] = h->cols[c].vals[r];
        h->cols[c].present[keep] = h->cols[c].present[r];
      }
    }
    keep++;
  }
  for (uint32_t c = 0; c < h->ncols; c++) memset(h->cols[c].present + keep, 0, h->n - keep);
  h->n = keep;
  /* Recompute the summary of what stays. */
  h->sorted = 1;
  for (uint32_t r = 0; r < h->n; r++) {
    if (r == 0) {
      h->min_ts = h->max_ts = h->ts[0];
      h->min_lsn = h->lsn[0];
      continue;
    }
    if (h->ts[r] <= h->max_ts) h->sorted = 0;
    if (h->ts[r] > h->max_ts) h->max_ts = h->ts[r];
    if (h->ts[r] < h->min_ts) h->min_ts = h->ts[r];
    if (h->lsn[r] < h->min_lsn) h->min_lsn = h->lsn[r];
  }
  return (int)(removed > INT32_MAX ? INT32_MAX : removed);
}
