/* Identifiers: the prefix tree, handles with their encoded value lists, the GS1 key index,
 * metadata templates and resolution statistics (schema in migration 3 of store.c).
 *
 * Resolution is the hot path: store_handle_lookup is one cached statement on the unique
 * (NOCASE) index of the handle name returning the whole encoded value list as a blob, so the
 * Handle server answers from one row without decoding it into structs. */
#include "store/store_int.h"

#include "base/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- prefixes ---- */

static void prefix_from_row(sqlite3_stmt *st, store_prefix *p) {
  memset(p, 0, sizeof *p);
  p->id = sqlite3_column_int64(st, 0);
  p->tenant_id = sqlite3_column_int64(st, 1);
  store__col_str(st, 2, p->prefix, sizeof p->prefix);
  p->parent_id = sqlite3_column_int64(st, 3);
  p->created_ms = sqlite3_column_int64(st, 4);
}

int store_prefix_create(store *s, store_prefix *p) {
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__PREFIX_INSERT,
                       "INSERT INTO ident_prefixes (tenant_id, prefix, parent_id, created_ms)"
                       " VALUES (?1, ?2, ?3, ?4)",
                       &st);
  if (rc < 0)
    return rc;
  int64_t now = pl_now_ms();
  sqlite3_bind_int64(st, 1, p->tenant_id);
  if ((rc = STORE__BIND_STR(st, 2, p->prefix)) < 0)
    return rc;
  if (p->parent_id)
    sqlite3_bind_int64(st, 3, p->parent_id);
  else
    sqlite3_bind_null(st, 3);
  sqlite3_bind_int64(st, 4, now);
  if ((rc = store__exec(s, st)) < 0)
    return rc;
  p->id = sqlite3_last_insert_rowid(s->db);
  p->created_ms = now;
  return 0;
}

int store_prefix_get(store *s, const char *prefix, size_t len, store_prefix *out) {
  if (len == 0 || len >= sizeof out->prefix)
    return PL_ENOTFOUND;
  sqlite3_stmt *st;
  int rc = store__stmt(
      s, STORE__PREFIX_GET,
      "SELECT id, tenant_id, prefix, coalesce(parent_id, 0), created_ms FROM ident_prefixes"
      " WHERE prefix = ?1",
      &st);
  if (rc < 0)
    return rc;
  if (sqlite3_bind_text(st, 1, prefix, (int)len, SQLITE_STATIC) != SQLITE_OK)
    return PL_ENOMEM;
  if ((rc = store__step_row(s, st)) < 0)
    return rc;
  prefix_from_row(st, out);
  sqlite3_reset(st);
  return 0;
}

int store_prefix_delete(store *s, int64_t tenant_id, int64_t id) {
  sqlite3_stmt *q;
  int rc = store__prepare(s, "SELECT 1 FROM ident_handles WHERE prefix_id = ?1 LIMIT 1", &q);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(q, 1, id);
  int step = sqlite3_step(q);
  sqlite3_finalize(q);
  if (step == SQLITE_ROW)
    return PL_ECONFLICT;
  if (step != SQLITE_DONE)
    return store__rc(s, step);
  sqlite3_stmt *st;
  if ((rc = store__stmt(s, STORE__PREFIX_DELETE,
                        "DELETE FROM ident_prefixes WHERE id = ?1 AND tenant_id = ?2", &st)) < 0)
    return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, tenant_id);
  return store__exec_one(s, st);
}

int store_prefix_list(store *s, int64_t tenant_id, int64_t after_id, int limit, store_prefix_cb cb,
                      void *ctx) {
  sqlite3_stmt *st;
  int rc = store__prepare(
      s,
      "SELECT id, tenant_id, prefix, coalesce(parent_id, 0), created_ms FROM ident_prefixes"
      " WHERE (?1 = 0 OR tenant_id = ?1) AND id > ?2 ORDER BY id LIMIT ?3",
      &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  sqlite3_bind_int64(st, 2, after_id);
  sqlite3_bind_int64(st, 3, store__limit(limit));
  int n = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    store_prefix p;
    prefix_from_row(st, &p);
    n++;
    int crc = cb(ctx, &p);
    if (crc < 0) {
      sqlite3_finalize(st);
      return crc;
    }
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? n : store__rc(s, rc);
}

/* ---- handles ---- */

#define HANDLE_COLS                                                                                \
  "id, tenant_id, prefix_id, handle, template, nvalues, vals, created_ms, updated_ms"

static void handle_from_row(sqlite3_stmt *st, store_handle *h) {
  memset(h, 0, sizeof *h);
  h->id = sqlite3_column_int64(st, 0);
  h->tenant_id = sqlite3_column_int64(st, 1);
  h->prefix_id = sqlite3_column_int64(st, 2);
  h->handle = (const char *)sqlite3_column_text(st, 3);
  h->template_name = (const char *)sqlite3_column_text(st, 4);
  h->nvalues = (uint32_t)sqlite3_column_int64(st, 5);
  h->values = sqlite3_column_blob(st, 6);
  h->values_len = (size_t)sqlite3_column_bytes(st, 6);
  h->created_ms = sqlite3_column_int64(st, 7);
  h->updated_ms = sqlite3_column_int64(st, 8);
  if (!h->handle)
    h->handle = "";
  if (!h->template_name)
    h->template_name = "";
}

static int bind_values(sqlite3_stmt *st, int idx, const store_handle *h) {
  /* A zero-length blob must still be a blob, not NULL. */
  static const uint8_t none[1];
  return sqlite3_bind_blob(st, idx, h->values_len ? h->values : none, (int)h->values_len,
                           SQLITE_STATIC) == SQLITE_OK
             ? 0
             : PL_ENOMEM;
}

int store_handle_create(store *s, store_handle *h) {
  if (!h->handle || strlen(h->handle) > 1024 || h->values_len > 16u << 20)
    return PL_EINVAL;
  sqlite3_stmt *st;
  int rc = store__stmt(
      s, STORE__HANDLE_INSERT,
      "INSERT INTO ident_handles (tenant_id, prefix_id, handle, template, nvalues, vals,"
      " created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
      &st);
  if (rc < 0)
    return rc;
  int64_t now = h->created_ms ? h->created_ms : pl_now_ms();
  sqlite3_bind_int64(st, 1, h->tenant_id);
  sqlite3_bind_int64(st, 2, h->prefix_id);
  sqlite3_bind_text(st, 3, h->handle, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, h->template_name ? h->template_name : "", -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, h->nvalues);
  if ((rc = bind_values(st, 6, h)) < 0)
    return rc;
  sqlite3_bind_int64(st, 7, now);
  rc = store__exec(s, st);
  /* The statement bound borrowed pointers: drop them now that it has run. */
  sqlite3_clear_bindings(st);
  if (rc < 0)
    return rc;
  h->id = sqlite3_last_insert_rowid(s->db);
  h->created_ms = h->updated_ms = now;
  return 0;
}

int store_handle_update(store *s, store_handle *h) {
  if (!h->handle || h->values_len > 16u << 20)
    return PL_EINVAL;
  sqlite3_stmt *st;
  int rc =
      store__stmt(s, STORE__HANDLE_UPDATE,
                  "UPDATE ident_handles SET template = ?3, nvalues = ?4, vals = ?5, updated_ms = ?6"
                  " WHERE handle = ?1 AND tenant_id = ?2",
                  &st);
  if (rc < 0)
    return rc;
  int64_t now = pl_now_ms();
  sqlite3_bind_text(st, 1, h->handle, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, h->tenant_id);
  sqlite3_bind_text(st, 3, h->template_name ? h->template_name : "", -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, h->nvalues);
  if ((rc = bind_values(st, 5, h)) < 0)
    return rc;
  sqlite3_bind_int64(st, 6, now);
  rc = store__exec_one(s, st);
  sqlite3_clear_bindings(st);
  if (rc == 0)
    h->updated_ms = now;
  return rc;
}

int store_handle_lookup(store *s, const char *handle, size_t len, store_handle_cb cb, void *ctx) {
  if (len == 0 || len > 1024)
    return PL_ENOTFOUND;
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__HANDLE_LOOKUP,
                       "SELECT " HANDLE_COLS " FROM ident_handles WHERE handle = ?1", &st);
  if (rc < 0)
    return rc;
  if (sqlite3_bind_text(st, 1, handle, (int)len, SQLITE_STATIC) != SQLITE_OK)
    return PL_ENOMEM;
  if ((rc = store__step_row(s, st)) < 0) {
    sqlite3_clear_bindings(st);
    return rc;
  }
  store_handle h;
  handle_from_row(st, &h);
  rc = cb(ctx, &h);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc;
}

int store_handle_delete(store *s, int64_t tenant_id, const char *handle) {
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__HANDLE_DELETE,
                       "DELETE FROM ident_handles WHERE handle = ?1 AND tenant_id = ?2", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_text(st, 1, handle, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 2, tenant_id);
  return store__exec_one(s, st);
}

int store_handle_list(store *s, int64_t tenant_id, int64_t prefix_id, int64_t after_id, int limit,
                      store_handle_cb cb, void *ctx) {
  sqlite3_stmt *st;
  int rc = store__prepare(s,
                          "SELECT " HANDLE_COLS " FROM ident_handles WHERE tenant_id = ?1"
                          " AND (?2 = 0 OR prefix_id = ?2) AND id > ?3 ORDER BY id LIMIT ?4",
                          &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  sqlite3_bind_int64(st, 2, prefix_id);
  sqlite3_bind_int64(st, 3, after_id);
  sqlite3_bind_int64(st, 4, store__limit(limit));
  int n = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    store_handle h;
    handle_from_row(st, &h);
    n++;
    int crc = cb(ctx, &h);
    if (crc < 0) {
      sqlite3_finalize(st);
      return crc;
    }
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? n : store__rc(s, rc);
}

int64_t store_handle_count(store *s, int64_t tenant_id) {
  sqlite3_stmt *st;
  int rc =
      store__prepare(s, "SELECT count(*) FROM ident_handles WHERE ?1 = 0 OR tenant_id = ?1", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  int64_t n = PL_EIO;
  if ((rc = sqlite3_step(st)) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  else
    n = store__rc(s, rc);
  sqlite3_finalize(st);
  return n;
}

/* ---- GS1 keys ---- */

int store_gs1_put(store *s, const char *key, int64_t handle_id) {
  sqlite3_stmt *st;
  int rc =
      store__stmt(s, STORE__GS1_PUT, "INSERT INTO ident_gs1 (key, handle_id) VALUES (?1, ?2)", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 2, handle_id);
  return store__exec(s, st);
}

int store_gs1_clear(store *s, int64_t handle_id) {
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__GS1_CLEAR, "DELETE FROM ident_gs1 WHERE handle_id = ?1", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, handle_id);
  return store__exec(s, st);
}

int store_gs1_lookup(store *s, const char *key, store_handle_cb cb, void *ctx) {
  sqlite3_stmt *st;
  int rc = store__stmt(
      s, STORE__GS1_LOOKUP,
      "SELECT h.id, h.tenant_id, h.prefix_id, h.handle, h.template, h.nvalues, h.vals,"
      " h.created_ms, h.updated_ms FROM ident_gs1 g JOIN ident_handles h ON h.id = g.handle_id"
      " WHERE g.key = ?1",
      &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
  if ((rc = store__step_row(s, st)) < 0)
    return rc;
  store_handle h;
  handle_from_row(st, &h);
  rc = cb(ctx, &h);
  sqlite3_reset(st);
  return rc;
}

/* ---- templates ---- */

void store_template_clear(store_template *t) {
  if (!t)
    return;
  free(t->fields_json);
  t->fields_json = NULL;
}

static int template_from_row(sqlite3_stmt *st, store_template *t) {
  memset(t, 0, sizeof *t);
  t->id = sqlite3_column_int64(st, 0);
  t->tenant_id = sqlite3_column_int64(st, 1);
  store__col_str(st, 2, t->name, sizeof t->name);
  const char *f = (const char *)sqlite3_column_text(st, 3);
  t->fields_json = strdup(f ? f : "[]");
  t->created_ms = sqlite3_column_int64(st, 4);
  t->updated_ms = sqlite3_column_int64(st, 5);
  return t->fields_json ? 0 : PL_ENOMEM;
}

int store_template_put(store *s, store_template *t) {
  sqlite3_stmt *st;
  int rc =
      store__stmt(s, STORE__TEMPLATE_PUT,
                  "INSERT INTO ident_templates (tenant_id, name, fields, created_ms, updated_ms)"
                  " VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (tenant_id, name) DO UPDATE SET"
                  " fields = excluded.fields, updated_ms = excluded.updated_ms",
                  &st);
  if (rc < 0)
    return rc;
  int64_t now = pl_now_ms();
  sqlite3_bind_int64(st, 1, t->tenant_id);
  if ((rc = STORE__BIND_STR(st, 2, t->name)) < 0)
    return rc;
  sqlite3_bind_text(st, 3, t->fields_json ? t->fields_json : "[]", -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 4, now);
  if ((rc = store__exec(s, st)) < 0)
    return rc;
  t->updated_ms = now;
  return 0;
}

int store_template_get(store *s, int64_t tenant_id, const char *name, store_template *out) {
  sqlite3_stmt *st;
  int rc =
      store__stmt(s, STORE__TEMPLATE_GET,
                  "SELECT id, tenant_id, name, fields, created_ms, updated_ms FROM ident_templates"
                  " WHERE tenant_id = ?1 AND name = ?2",
                  &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
  if ((rc = store__step_row(s, st)) < 0)
    return rc;
  rc = template_from_row(st, out);
  sqlite3_reset(st);
  return rc;
}

int store_template_delete(store *s, int64_t tenant_id, const char *name) {
  sqlite3_stmt *st;
  int rc = store__prepare(s, "DELETE FROM ident_templates WHERE tenant_id = ?1 AND name = ?2", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
  rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE)
    return store__rc(s, rc);
  return sqlite3_changes(s->db) > 0 ? 0 : PL_ENOTFOUND;
}

int store_template_list(store *s, int64_t tenant_id, store_template_cb cb, void *ctx) {
  sqlite3_stmt *st;
  int rc = store__prepare(
      s,
      "SELECT id, tenant_id, name, fields, created_ms, updated_ms FROM ident_templates"
      " WHERE tenant_id = ?1 ORDER BY name",
      &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  int n = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    store_template t;
    int crc = template_from_row(st, &t);
    if (crc == 0)
      crc = cb(ctx, &t);
    store_template_clear(&t);
    n++;
    if (crc < 0) {
      sqlite3_finalize(st);
      return crc;
    }
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? n : store__rc(s, rc);
}

/* ---- statistics ---- */

int store_ident_stats_add(store *s, int64_t prefix_id, int64_t day, int64_t resolutions,
                          int64_t not_found, int64_t registrations) {
  sqlite3_stmt *st;
  int rc = store__stmt(
      s, STORE__IDENT_STATS_ADD,
      "INSERT INTO ident_stats (prefix_id, day, resolutions, not_found, registrations)"
      " SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM ident_prefixes WHERE id = ?1)"
      " ON CONFLICT (prefix_id, day) DO UPDATE SET resolutions = resolutions + "
      "excluded.resolutions,"
      " not_found = not_found + excluded.not_found,"
      " registrations = registrations + excluded.registrations",
      &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, prefix_id);
  sqlite3_bind_int64(st, 2, day);
  sqlite3_bind_int64(st, 3, resolutions);
  sqlite3_bind_int64(st, 4, not_found);
  sqlite3_bind_int64(st, 5, registrations);
  return store__exec(s, st);
}

int store_ident_stats_list(store *s, int64_t tenant_id, int64_t since_day, int64_t until_day,
                           store_ident_stat_cb cb, void *ctx) {
  sqlite3_stmt *st;
  int rc = store__prepare(
      s,
      "SELECT st.prefix_id, p.prefix, p.tenant_id, st.day, st.resolutions, st.not_found,"
      " st.registrations FROM ident_stats st JOIN ident_prefixes p ON p.id = st.prefix_id"
      " WHERE (?1 = 0 OR p.tenant_id = ?1) AND st.day >= ?2 AND st.day < ?3"
      " ORDER BY st.day, p.prefix",
      &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  sqlite3_bind_int64(st, 2, since_day);
  sqlite3_bind_int64(st, 3, until_day);
  int n = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    store_ident_stat row;
    memset(&row, 0, sizeof row);
    row.prefix_id = sqlite3_column_int64(st, 0);
    store__col_str(st, 1, row.prefix, sizeof row.prefix);
    row.tenant_id = sqlite3_column_int64(st, 2);
    row.day = sqlite3_column_int64(st, 3);
    row.resolutions = sqlite3_column_int64(st, 4);
    row.not_found = sqlite3_column_int64(st, 5);
    row.registrations = sqlite3_column_int64(st, 6);
    n++;
    int crc = cb(ctx, &row);
    if (crc < 0) {
      sqlite3_finalize(st);
      return crc;
    }
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? n : store__rc(s, rc);
}

int store_ident_tune(store *s, int64_t cache_bytes, int64_t mmap_bytes) {
  char sql[128];
  snprintf(sql, sizeof sql, "PRAGMA cache_size = -%lld; PRAGMA mmap_size = %lld",
           (long long)(cache_bytes / 1024), (long long)mmap_bytes);
  int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : store__rc(s, rc);
}
