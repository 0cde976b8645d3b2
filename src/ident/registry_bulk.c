/* Bulk registration in the identifier registry: a print run of identifiers as JSON rows, CSV
 * lines or a whole body, in one transaction, each row checked and written as registry.c writes a
 * single identifier (ident__check_owner, ident__load_template, ident__put_one), rejected rows
 * reported (the first BULK_ERRORS_KEPT of them) without stopping the rest, and registrations
 * counted per prefix for the daily statistics. */
#include "ident/ident_int.h"
#include "ident/digital_link.h"

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- bulk ---- */

#define BULK_ERRORS_KEPT 1000

struct ident_bulk {
  ident_ctx ctx;
  int64_t tenant_id;
  char template_name[64];
  char *template_fields;
  store_prefix last_prefix; /* a print run is one prefix: cache its lookup */
  int have_prefix;
  int64_t rows, accepted, rejected;
  json_t *errors;
  pl_buf enc;
  uint32_t now_s;
  /* CSV */
  char **columns;
  int ncolumns;
  int handle_col;
  /* registrations per prefix for the statistics */
  int64_t stat_prefix_id, stat_count;
};

int ident_bulk_begin(ident_ctx *c, int64_t tenant_id, const char *template_name, ident_bulk **out,
                     pl_err *err) {
  ident_bulk *b = calloc(1, sizeof *b);
  if (!b)
    return pl_err_set(err, PL_ENOMEM, "out of memory");
  b->ctx = *c;
  b->tenant_id = tenant_id;
  b->errors = json_array();
  b->handle_col = -1;
  b->now_s = (uint32_t)(pl_now_ms() / 1000);
  pl_buf_init(&b->enc, 64u << 20);
  snprintf(b->template_name, sizeof b->template_name, "%s", template_name ? template_name : "");
  int rc = b->errors ? 0 : PL_ENOMEM;
  if (rc == 0)
    rc = ident__load_template(c->db, tenant_id, template_name, &b->template_fields, err);
  if (rc == 0)
    rc = store_begin(c->db);
  if (rc < 0) {
    json_decref(b->errors);
    free(b->template_fields);
    free(b);
    return rc;
  }
  *out = b;
  return 0;
}

int64_t ident_bulk_rows(const ident_bulk *b) {
  return b->rows;
}

static void reject(ident_bulk *b, const char *handle, int rc, const pl_err *err) {
  b->rejected++;
  if (json_array_size(b->errors) < BULK_ERRORS_KEPT)
    json_array_append_new(b->errors, json_pack("{s:I, s:s, s:s}", "row", (json_int_t)b->rows,
                                               "handle", handle ? handle : "", "error",
                                               err->msg[0] ? err->msg : pl_strerror(rc)));
}

static int flush_stat(ident_bulk *b) {
  int rc = 0;
  if (b->stat_count)
    rc = store_ident_stats_add(b->ctx.db, b->stat_prefix_id, ident_day(pl_now_ms()), 0, 0,
                               b->stat_count);
  b->stat_count = 0;
  return rc;
}

/* One row with values already encoded into b->enc. Returns 0, a rejection code (recorded),
 * or a failure (PL_EIO, PL_EBUSY, PL_ENOMEM) that aborts the bulk. */
static int bulk_row(ident_bulk *b, const char *handle, const char *template_name, uint32_t n,
                    pl_err *err) {
  size_t len = strlen(handle);
  int rc = ident_check_handle(handle, len, err);
  if (rc < 0)
    return rc;
  size_t pl = ident_prefix_len(handle, len);
  if (!b->have_prefix || strlen(b->last_prefix.prefix) != pl ||
      strncasecmp(b->last_prefix.prefix, handle, pl) != 0) {
    rc = ident__check_owner(b->ctx.db, b->tenant_id, handle, len, &b->last_prefix, err);
    if (rc < 0) {
      b->have_prefix = 0;
      return rc;
    }
    b->have_prefix = 1;
  }
  char *fields = b->template_fields;
  int own_fields = 0;
  if (template_name && *template_name && strcmp(template_name, b->template_name) != 0) {
    if ((rc = ident__load_template(b->ctx.db, b->tenant_id, template_name, &fields, err)) < 0)
      return rc;
    own_fields = 1;
  }
  int created = 0;
  rc = ident__put_one(b->ctx.db, b->tenant_id, &b->last_prefix, handle, fields,
                      template_name && *template_name ? template_name : b->template_name,
                      b->enc.data, b->enc.len, n, IDENT_PUT_CREATE, &created, err);
  if (own_fields)
    free(fields);
  if (rc == 0) {
    if (b->stat_prefix_id != b->last_prefix.id) {
      int frc = flush_stat(b);
      if (frc < 0)
        return frc;
      b->stat_prefix_id = b->last_prefix.id;
    }
    b->stat_count++;
  }
  return rc;
}

static int is_rejection(int rc) {
  return rc == PL_EINVAL || rc == PL_EPERM || rc == PL_EEXIST || rc == PL_ENOTFOUND ||
         rc == PL_ELIMIT;
}

/* "fields": {"TYPE": "text", ...} as string values with indexes 1, 2, ... */
static int fields_to_values(const json_t *fields, json_t **out) {
  json_t *arr = json_array();
  if (!arr)
    return PL_ENOMEM;
  const char *k;
  json_t *v;
  json_int_t idx = 1;
  json_object_foreach((json_t *)fields, k, v) {
    json_t *data = json_is_string(v) ? json_incref(v) : json_string("");
    if (!json_is_string(v)) {
      json_decref(data);
      json_decref(arr);
      return PL_EINVAL;
    }
    json_array_append_new(arr,
                          json_pack("{s:I, s:s, s:o}", "index", idx++, "type", k, "data", data));
  }
  *out = arr;
  return 0;
}

int ident_bulk_add_json(ident_bulk *b, const json_t *row) {
  b->rows++;
  pl_err err = {{0}};
  static const pl_json_field rf[] = {{"handle", PL_JSON_STRING, 1, IDENT_HANDLE_MAX, 0},
                                     {"template", PL_JSON_STRING, 0, 63, 1},
                                     {"values", PL_JSON_ARRAY, 0, IDENT_VALUES_MAX, 1},
                                     {"fields", PL_JSON_OBJECT, 0, IDENT_VALUES_MAX, 1}};
  const char *handle = json_is_object(row) ? pl_json_str(row, "handle", NULL) : NULL;
  int rc = pl_json_check(row, rf, 4, &err);
  json_t *vals = NULL;
  if (rc == 0) {
    const json_t *f = json_object_get(row, "fields");
    if (json_is_object(f)) {
      if (fields_to_values(f, &vals) < 0)
        rc = pl_err_set(&err, PL_EINVAL, "\"fields\" values must be strings");
    } else {
      vals = json_incref(json_object_get(row, "values"));
      if (!vals)
        vals = json_array();
    }
  }
  uint32_t n = 0;
  pl_buf_reset(&b->enc);
  if (rc == 0)
    rc = ident_values_from_json(vals, b->now_s, &b->enc, &n, &err);
  json_decref(vals);
  if (rc == 0)
    rc = bulk_row(b, handle, pl_json_str(row, "template", NULL), n, &err);
  if (rc == 0) {
    b->accepted++;
    return 0;
  }
  if (is_rejection(rc)) {
    reject(b, handle, rc, &err);
    return rc;
  }
  return rc;
}

/* Splits a CSV line into fields (RFC 4180 quoting); returns the count or -1. */
static int csv_split(const char *line, size_t len, char **cells, int max, char *buf, size_t bufsz) {
  int n = 0;
  size_t o = 0, i = 0;
  while (i <= len) {
    if (n == max)
      return -1;
    cells[n++] = buf + o;
    if (i < len && line[i] == '"') {
      i++;
      for (;;) {
        if (i >= len)
          return -1;
        if (line[i] == '"') {
          if (i + 1 < len && line[i + 1] == '"') {
            if (o + 1 >= bufsz)
              return -1;
            buf[o++] = '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (o + 1 >= bufsz)
          return -1;
        buf[o++] = line[i++];
      }
      if (i < len && line[i] != ',')
        return -1;
    } else {
      while (i < len && line[i] != ',') {
        if (o + 1 >= bufsz)
          return -1;
        buf[o++] = line[i++];
      }
    }
    buf[o++] = 0;
    i++; /* the comma (or past the end) */
  }
  return n;
}

int ident_bulk_add_csv(ident_bulk *b, const char *line, size_t len) {
  while (len && (line[len - 1] == '\r' || line[len - 1] == '\n'))
    len--;
  char *cells[IDENT_VALUES_MAX + 1];
  size_t bufsz = len + IDENT_VALUES_MAX + 2;
  char *buf = malloc(bufsz);
  if (!buf)
    return PL_ENOMEM;
  int n = csv_split(line, len, cells, IDENT_VALUES_MAX + 1, buf, bufsz);
  pl_err err = {{0}};
  int rc = 0;
  if (!b->columns) {
    /* the header */
    if (n < 1) {
      free(buf);
      return PL_EINVAL;
    }
    b->columns = calloc((size_t)n, sizeof *b->columns);
    if (!b->columns) {
      free(buf);
      return PL_ENOMEM;
    }
    b->ncolumns = n;
    for (int i = 0; i < n; i++) {
      b->columns[i] = strdup(cells[i]);
      if (!b->columns[i])
        rc = PL_ENOMEM;
      if (!strcmp(cells[i], "handle"))
        b->handle_col = i;
    }
    free(buf);
    if (rc == 0 && b->handle_col < 0)
      return PL_EINVAL;
    return rc;
  }
  b->rows++;
  const char *handle = n > b->handle_col && b->handle_col >= 0 ? cells[b->handle_col] : NULL;
  if (n != b->ncolumns) {
    rc = pl_err_set(&err, PL_EINVAL, "the row has %d columns, the header %d", n < 0 ? 0 : n,
                    b->ncolumns);
  } else {
    /* Each non-empty cell is a string value of its column's type, encoded directly (the same
     * checks as ident_values_from_json for text data). */
    uint32_t nv = 0;
    pl_buf_reset(&b->enc);
    for (int i = 0; i < n && rc == 0; i++) {
      if (i == b->handle_col || !cells[i][0])
        continue;
      size_t dl = strlen(cells[i]), tl = strlen(b->columns[i]);
      hdl_value v = {nv + 1,
                     b->now_s,
                     0,
                     IDENT_TTL_DEFAULT,
                     HDL_PERM_ADMIN_READ | HDL_PERM_ADMIN_WRITE | HDL_PERM_PUBLIC_READ,
                     {(const uint8_t *)b->columns[i], (uint32_t)tl},
                     {(const uint8_t *)cells[i], (uint32_t)dl},
                     0,
                     {NULL, 0}};
      if (!tl || tl > HDL_TYPE_MAX || dl > IDENT_DATA_MAX || !pl_utf8_valid(cells[i], dl))
        rc = pl_err_set(&err, PL_EINVAL, "column %d: not valid text of at most %d bytes", i + 1,
                        IDENT_DATA_MAX);
      else if (ident__is_reserved(b->columns[i]))
        rc = ident__check_reserved(b->columns[i], v.data, v.index, &err);
      if (rc == 0)
        rc = hdl_value_encode(&b->enc, &v);
      nv++;
    }
    if (rc == 0)
      rc = bulk_row(b, handle, NULL, nv, &err);
  }
  if (rc == 0)
    b->accepted++;
  else if (is_rejection(rc))
    reject(b, handle, rc, &err);
  free(buf);
  return rc;
}

static void bulk_free(ident_bulk *b) {
  for (int i = 0; i < b->ncolumns; i++)
    free(b->columns[i]);
  free(b->columns);
  free(b->template_fields);
  pl_buf_free(&b->enc);
  free(b);
}

int ident_bulk_finish(ident_bulk *b, ident_bulk_report *report, pl_err *err) {
  int rc = flush_stat(b);
  char detail[160];
  snprintf(detail, sizeof detail, "rows=%lld accepted=%lld rejected=%lld", (long long)b->rows,
           (long long)b->accepted, (long long)b->rejected);
  if (rc == 0)
    rc = ident__audit(&b->ctx, b->tenant_id, "ident.bulk", "handles", 0, err, detail);
  if (rc == 0)
    rc = store_commit(b->ctx.db);
  if (rc < 0) {
    store_rollback(b->ctx.db);
    pl_err_set(err, rc, "committing the bulk registration: %s", pl_strerror(rc));
    json_decref(b->errors);
    bulk_free(b);
    return rc;
  }
  report->rows = b->rows;
  report->accepted = b->accepted;
  report->rejected = b->rejected;
  report->errors = b->errors;
  bulk_free(b);
  return 0;
}

int ident_bulk_add_body(ident_bulk *b, int format, const uint8_t *data, size_t len,
                        void (*progress)(void *ctx, size_t bytes_done), void *ctx, pl_err *err) {
  int rc = 0;
  if (format == IDENT_BULK_JSON) {
    json_t *doc = NULL;
    pl_err perr = {{0}};
    static const pl_json_field fields[] = {{"rows", PL_JSON_ARRAY, 1, IDENT_BULK_MAX, 0},
                                           {"template", PL_JSON_STRING, 0, 63, 1}};
    if (pl_json_parse(data, len, PL_JSON_DEPTH_MAX, &doc, &perr) < 0 ||
        pl_json_check(doc, fields, 2, &perr) < 0) {
      json_decref(doc);
      return pl_err_set(err, PL_EINVAL, "%s", perr.msg);
    }
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(doc, "rows"), i, row) {
      rc = ident_bulk_add_json(b, row);
      if (rc < 0 && !is_rejection(rc))
        break;
      rc = 0;
      if (progress && (i + 1) % 1000 == 0)
        progress(ctx, len * (i + 1) / (json_array_size(json_object_get(doc, "rows")) + 1));
    }
    json_decref(doc);
    if (progress && rc == 0)
      progress(ctx, len);
    return rc;
  }
  const char *p = (const char *)data, *end = p + len;
  int first = 1;
  int64_t n = 0;
  while (p && p < end && rc == 0) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (ll && !(ll == 1 && p[0] == '\r')) {
      if (format == IDENT_BULK_CSV) {
        rc = ident_bulk_add_csv(b, p, ll);
        if (first && rc < 0)
          return pl_err_set(err, PL_EINVAL, "the CSV header must name a \"handle\" column");
        first = 0;
      } else {
        json_t *row = NULL;
        if (pl_json_parse(p, ll, 8, &row, NULL) < 0)
          row = json_pack("{s:s}", "handle", "");
        rc = row ? ident_bulk_add_json(b, row) : PL_ENOMEM;
        json_decref(row);
      }
      if (is_rejection(rc))
        rc = 0;
      if (progress && ++n % 1000 == 0)
        progress(ctx, (size_t)(p - (const char *)data));
    }
    p = nl ? nl + 1 : NULL;
  }
  if (progress && rc == 0)
    progress(ctx, len);
  return rc;
}

void ident_bulk_abort(ident_bulk *b) {
  if (!b)
    return;
  store_rollback(b->ctx.db);
  json_decref(b->errors);
  bulk_free(b);
}
