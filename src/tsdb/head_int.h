/* Head operations (head.c). The head struct itself is in tsdb_int.h. */
#ifndef PLATEAU_TSDB_HEAD_INT_H
#define PLATEAU_TSDB_HEAD_INT_H

#include "tsdb/tsdb_int.h"

void head_init(head *h);
void head_free(head *h);
size_t head_bytes(const head *h);
/* Room for `rows` more rows and at least ncols columns. */
int head_reserve(head *h, uint32_t rows, uint32_t ncols);
/* Appends an empty row (no column present) and returns its index; head_reserve first. */
uint32_t head_append_row(head *h, int64_t ts, uint64_t lsn);
int head_set(head *h, uint32_t row, uint32_t col, tsdb_type type, const tsdb_value *v);
/* Row indices in (time, arrival) order; the caller frees *order. */
int head_order(const head *h, uint32_t **order);
/* Moves rows with ts < before_ts into out (sorted, equal times merged); see head.c. */
int head_take(head *h, int64_t before_ts, head *out);
/* Removes rows with start <= ts < end; returns the number of values removed. */
int head_delete_range(head *h, int64_t start_ns, int64_t end_ns);

#endif
