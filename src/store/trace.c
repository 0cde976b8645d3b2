/* Traceability events (see store_trace.h): EPCIS 2.0 events, their identifiers, sharing, capture
 * jobs and named queries. Events are immutable: there is no update or delete (a correction is
 * a new event with an errorDeclaration), and tenant deletion cascades.
 *
 * Captures insert in batches inside the caller's transaction with statements prepared once per
 * batch, which keeps the per-event cost to a few indexed inserts. Also here: master data, the
 * lineage links, capture jobs, named queries and subscriptions; the queries over a filter are
 * in trace_query.c. */
#include "store/store_trace.h"
#include "store/store_int.h"

#include "base/buf.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bind_opt(sqlite3_stmt *st, int idx, const char *s) {
  if (!s || !*s)
    return sqlite3_bind_null(st, idx) == SQLITE_OK ? 0 : PL_ENOMEM;
  return sqlite3_bind_text(st, idx, s, -1, SQLITE_STATIC) == SQLITE_OK ? 0 : PL_ENOMEM;
}

void store_trace_event_key(const char *event_id, uint8_t key[STORE_TRACE_KEY_BYTES]) {
  crypto_generichash(key, STORE_TRACE_KEY_BYTES, (const unsigned char *)event_id, strlen(event_id), NULL, 0);
}

/* plateau_event_key(text): the dedup key of an eventID, for migration 8 and EQ_eventID. */
static void sql_event_key(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  const unsigned char *id = sqlite3_value_text(argv[0]);
  if (!id) {
    sqlite3_result_null(ctx);
    return;
  }
  uint8_t key[STORE_TRACE_KEY_BYTES];
  store_trace_event_key((const char *)id, key);
  sqlite3_result_blob(ctx, key, sizeof key, SQLITE_TRANSIENT);
}

int store__trace_functions(store *s) {
  int rc = sqlite3_create_function(s->db, "plateau_event_key", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
                                   NULL, sql_event_key, NULL, NULL);
  return rc == SQLITE_OK ? 0 : store__rc(s, rc);
}

int store_trace_insert_batch(store *s, int64_t tenant_id, int64_t capture_id, int64_t record_ms,
                             const store_trace_event *evs, size_t n, int *inserted) {
  sqlite3_stmt *ev = NULL, *epc = NULL, *share = NULL;
  int rc;
  /* A capture inserts into the event-key index at random places (the keys are hashes): every
   * event reads a leaf somewhere in it, and the index outgrows any page cache (300 MB at ten
   * million events). A page cache larger than SQLite's 2 MB default keeps the inner pages
   * (64 MB per connection, grown only as used), and reading the file through a memory map
   * (SQLite's cap, 2 GB) turns the leaf reads into page-cache hits without a read() each:
   * 14.8k -> 18.5k events/s in-process at 3 million events (bench_trace_capture). */
  sqlite3_exec(s->db, "PRAGMA cache_size = -65536; PRAGMA mmap_size = 2147418112", NULL, NULL, NULL);
  if ((rc = store__prepare(s,
                           "INSERT INTO trace_events (tenant_id, event_key, event_id, type, event_time_ms, record_time_ms,"
                           " action, biz_step, disposition, read_point, biz_location, public, capture_id, doc)"
                           " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (tenant_id, event_key) DO NOTHING",
                           &ev)) < 0)
    goto out;
  /* An identifier named twice in one role of one event is one row (the first quantity). */
  if ((rc = store__prepare(s, "INSERT OR IGNORE INTO event_epcs (epc, event, role, quantity, uom) VALUES (?,?,?,?,?)",
                           &epc)) < 0)
    goto out;
  if ((rc = store__prepare(s, "INSERT OR IGNORE INTO event_shares (event, tenant_id) VALUES (?,?)", &share)) < 0)
    goto out;
  for (size_t i = 0; i < n; i++) {
    const store_trace_event *e = &evs[i];
    uint8_t key[STORE_TRACE_KEY_BYTES];
    store_trace_event_key(e->event_id, key);
    sqlite3_reset(ev);
    sqlite3_bind_int64(ev, 1, tenant_id);
    sqlite3_bind_blob(ev, 2, key, sizeof key, SQLITE_STATIC);
    sqlite3_bind_text(ev, 3, e->event_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(ev, 4, e->type);
    sqlite3_bind_int64(ev, 5, e->event_time_ms);
    sqlite3_bind_int64(ev, 6, record_ms);
    bind_opt(ev, 7, e->action);
    bind_opt(ev, 8, e->biz_step);
    bind_opt(ev, 9, e->disposition);
    bind_opt(ev, 10, e->read_point);
    bind_opt(ev, 11, e->biz_location);
    sqlite3_bind_int(ev, 12, e->is_public ? 1 : 0);
    if (capture_id)
      sqlite3_bind_int64(ev, 13, capture_id);
    else
      sqlite3_bind_null(ev, 13);
    sqlite3_bind_text(ev, 14, e->doc, (int)e->doc_len, SQLITE_STATIC);
    if ((rc = store__exec(s, ev)) < 0)
      goto out;
    if (sqlite3_changes(s->db) == 0) {
      if (inserted)
        inserted[i] = 0;
      continue;
    }
    int64_t id = sqlite3_last_insert_rowid(s->db);
    for (size_t k = 0; k < e->nepcs; k++) {
      const store_trace_epc *x = &e->epcs[k];
      sqlite3_bind_text(epc, 1, x->epc, -1, SQLITE_STATIC);
      sqlite3_bind_int64(epc, 2, id);
      sqlite3_bind_int(epc, 3, x->role);
      if (x->has_quantity)
        sqlite3_bind_double(epc, 4, x->quantity);
      else
        sqlite3_bind_null(epc, 4);
      bind_opt(epc, 5, x->uom);
      if ((rc = store__exec(s, epc)) < 0)
        goto out;
    }
    for (size_t k = 0; k < e->nshares; k++) {
      sqlite3_bind_int64(share, 1, id);
      sqlite3_bind_int64(share, 2, e->share_tenants[k]);
      if ((rc = store__exec(s, share)) < 0)
        goto out;
    }
    if (inserted)
      inserted[i] = 1;
  }
  rc = 0;
out:
  sqlite3_finalize(ev);
  sqlite3_finalize(epc);
  sqlite3_finalize(share);
  return rc;
}

/* ---- master data ---- */

int store_trace_vocab_put(store *s, int64_t tenant_id, const store_trace_vocab *v, size_t n, int64_t now_ms) {
  sqlite3_stmt *el = NULL, *kid = NULL;
  /* Attributes merge by attribute id: the new list, then the old attributes it does not name. */
  int rc = store__prepare(
      s,
      "INSERT INTO trace_vocab (tenant_id, type, id, attributes, updated_ms) VALUES (?1, ?2, ?3, coalesce(?4, '[]'), ?5)"
      " ON CONFLICT (tenant_id, type, id) DO UPDATE SET updated_ms = excluded.updated_ms,"
      " attributes = (SELECT json_group_array(json(x)) FROM ("
      "   SELECT n.value AS x FROM json_each(excluded.attributes) n"
      "   UNION ALL SELECT o.value FROM json_each(trace_vocab.attributes) o"
      "   WHERE json_extract(o.value, '$.id') NOT IN"
      "     (SELECT json_extract(n.value, '$.id') FROM json_each(excluded.attributes) n)))",
      &el);
  if (rc == 0)
    rc = store__prepare(s, "INSERT OR IGNORE INTO trace_vocab_children (tenant_id, parent, child) VALUES (?,?,?)", &kid);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    sqlite3_bind_int64(el, 1, tenant_id);
    sqlite3_bind_text(el, 2, v[i].type, -1, SQLITE_STATIC);
    sqlite3_bind_text(el, 3, v[i].id, -1, SQLITE_STATIC);
    bind_opt(el, 4, v[i].attributes);
    sqlite3_bind_int64(el, 5, now_ms);
    rc = store__exec(s, el);
    for (size_t k = 0; rc == 0 && k < v[i].nchildren; k++) {
      sqlite3_bind_int64(kid, 1, tenant_id);
      sqlite3_bind_text(kid, 2, v[i].id, -1, SQLITE_STATIC);
      sqlite3_bind_text(kid, 3, v[i].children[k], -1, SQLITE_STATIC);
      rc = store__exec(s, kid);
    }
  }
  sqlite3_finalize(el);
  sqlite3_finalize(kid);
  return rc;
}

typedef struct vocab_visit {
  int (*cb)(void *ctx, const store_trace_vocab_row *row);
  void *ctx;
} vocab_visit;

static int visit_vocab(void *ctx, sqlite3_stmt *st) {
  vocab_visit *v = ctx;
  store_trace_vocab_row r;
  r.tenant_id = sqlite3_column_int64(st, 0);
  r.type = (const char *)sqlite3_column_text(st, 1);
  r.id = (const char *)sqlite3_column_text(st, 2);
  r.attributes = (const char *)sqlite3_column_text(st, 3);
  r.children = (const char *)sqlite3_column_text(st, 4);
  r.updated_ms = sqlite3_column_int64(st, 5);
  if (!r.type || !r.id || !r.attributes || !r.children)
    return PL_ENOMEM;
  return v->cb(v->ctx, &r);
}

int store_trace_vocab_list(store *s, int64_t tenant_id, const char *type, const char *id, const char *after_type,
                           const char *after_id, int limit, int (*cb)(void *ctx, const store_trace_vocab_row *row),
                           void *ctx) {
  sqlite3_stmt *st;
  int rc = store__prepare(
      s,
      "SELECT t.tenant_id, t.type, t.id, t.attributes,"
      " (SELECT json_group_array(c.child) FROM trace_vocab_children c WHERE c.tenant_id = t.tenant_id AND c.parent = t.id),"
      " t.updated_ms FROM trace_vocab t"
      " WHERE (?1 = 0 OR t.tenant_id = ?1) AND (?2 IS NULL OR t.type = ?2) AND (?3 IS NULL OR t.id = ?3)"
      " AND (?4 IS NULL OR (t.type, t.id) > (?4, coalesce(?5, '')))"
      " ORDER BY t.type, t.id, t.tenant_id LIMIT ?6",
      &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  bind_opt(st, 2, type);
  bind_opt(st, 3, id);
  bind_opt(st, 4, after_type);
  bind_opt(st, 5, after_id);
  sqlite3_bind_int64(st, 6, store__limit(limit));
  vocab_visit v = {cb, ctx};
  return store__each_row(s, st, visit_vocab, &v);
}

typedef struct link_visit {
  int (*cb)(void *ctx, const store_trace_link *l);
  void *ctx;
} link_visit;

static int visit_link(void *ctx, sqlite3_stmt *st) {
  link_visit *v = ctx;
  store_trace_link l;
  l.event = sqlite3_column_int64(st, 0);
  l.tenant_id = sqlite3_column_int64(st, 1);
  l.type = sqlite3_column_int(st, 2);
  l.event_time_ms = sqlite3_column_int64(st, 3);
  l.action = (const char *)sqlite3_column_text(st, 4);
  l.biz_step = (const char *)sqlite3_column_text(st, 5);
  l.disposition = (const char *)sqlite3_column_text(st, 6);
  l.read_point = (const char *)sqlite3_column_text(st, 7);
  l.biz_location = (const char *)sqlite3_column_text(st, 8);
  l.self_role = sqlite3_column_int(st, 9);
  l.other = (const char *)sqlite3_column_text(st, 10);
  l.other_role = sqlite3_column_int(st, 11);
  return v->cb(v->ctx, &l);
}


/* ---- lineage ---- */

/* The visibility clause of the cached lineage statements, with the viewer as ?2 (as
 * visibility() writes it for the built queries). */
#define TRACE_VISIBLE "(e.tenant_id = ?2 OR EXISTS (SELECT 1 FROM event_shares sh WHERE sh.event = e.id AND sh.tenant_id = ?2))"
#define TRACE_LINKS_SQL(where)                                                                                       \
  "SELECT e.id, e.tenant_id, e.type, e.event_time_ms, e.action, e.biz_step, e.disposition, e.read_point,"            \
  " e.biz_location, a.role, o.epc, o.role FROM event_epcs a JOIN trace_events e ON e.id = a.event"                   \
  " LEFT JOIN event_epcs o ON o.event = a.event AND NOT (o.epc = a.epc AND o.role = a.role)"                          \
  " WHERE a.epc = ?1" where " ORDER BY e.event_time_ms, e.id"

int store_trace_links(store *s, int64_t viewer, const char *epc,
                      int (*cb)(void *ctx, const store_trace_link *l), void *ctx) {
  sqlite3_stmt *st;
  int fresh, rc;
  if (viewer)
    rc = store__list_stmt(s, STORE__TRACE_LINKS_VIEWER, TRACE_LINKS_SQL(" AND " TRACE_VISIBLE), &st, &fresh);
  else
    rc = store__list_stmt(s, STORE__TRACE_LINKS_ALL, TRACE_LINKS_SQL(""), &st, &fresh);
  if (rc < 0)
    return rc;
  sqlite3_bind_text(st, 1, epc, -1, SQLITE_STATIC);
  if (viewer)
    sqlite3_bind_int64(st, 2, viewer);
  link_visit v = {cb, ctx};
  return store__each_row_cached(s, st, fresh, visit_link, &v);
}

int store_trace_epc_exists_any(store *s, const char *epc) {
  sqlite3_stmt *st;
  int rc = store__prepare(s, "SELECT 1 FROM event_epcs WHERE epc = ? LIMIT 1", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_text(st, 1, epc, -1, SQLITE_STATIC);
  int step = sqlite3_step(st);
  rc = step == SQLITE_ROW ? 1 : step == SQLITE_DONE ? 0 : store__rc(s, step);
  sqlite3_finalize(st);
  return rc;
}

int store_trace_epc_hidden(store *s, int64_t viewer, const char *epc) {
  if (!viewer)
    return 0;
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__TRACE_HIDDEN,
                       "SELECT count(*) FROM event_epcs x JOIN trace_events e ON e.id = x.event WHERE x.epc = ?1"
                       " AND NOT " TRACE_VISIBLE,
                       &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_text(st, 1, epc, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, viewer);
  int step = sqlite3_step(st);
  rc = step == SQLITE_ROW ? (int)sqlite3_column_int64(st, 0) : store__rc(s, step);
  sqlite3_reset(st);
  return rc;
}

/* ---- capture jobs ---- */

int store_trace_capture_create(store *s, int64_t tenant_id, int64_t now_ms, int64_t *id) {
  sqlite3_stmt *st;
  int rc = store__prepare(s, "INSERT INTO trace_captures (tenant_id, created_ms, state) VALUES (?, ?, 'running')", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  sqlite3_bind_int64(st, 2, now_ms);
  rc = store__exec(s, st);
  sqlite3_finalize(st);
  if (rc == 0)
    *id = sqlite3_last_insert_rowid(s->db);
  return rc;
}

int store_trace_capture_finish(store *s, int64_t tenant_id, int64_t id, const char *state, int64_t captured,
                               int64_t duplicates, int64_t rejected, const char *errors_json, int64_t now_ms) {
  sqlite3_stmt *st;
  int rc = store__prepare(s,
                          "UPDATE trace_captures SET state = ?, captured = ?, duplicates = ?, rejected = ?,"
                          " errors = ?, finished_ms = ? WHERE id = ? AND tenant_id = ?",
                          &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, captured);
  sqlite3_bind_int64(st, 3, duplicates);
  sqlite3_bind_int64(st, 4, rejected);
  sqlite3_bind_text(st, 5, errors_json ? errors_json : "[]", -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 6, now_ms);
  sqlite3_bind_int64(st, 7, id);
  sqlite3_bind_int64(st, 8, tenant_id);
  rc = store__exec_one(s, st);
  sqlite3_finalize(st);
  return rc;
}

int store_trace_capture_get(store *s, int64_t tenant_id, int64_t id, store_trace_capture *out) {
  sqlite3_stmt *st;
  int rc = store__prepare(s,
                          "SELECT id, tenant_id, created_ms, coalesce(finished_ms, 0), state, captured, duplicates,"
                          " rejected, errors FROM trace_captures WHERE id = ? AND tenant_id = ?",
                          &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, tenant_id);
  if ((rc = store__step_row(s, st)) == 0) {
    store_trace_capture c;
    memset(&c, 0, sizeof c);
    c.id = sqlite3_column_int64(st, 0);
    c.tenant_id = sqlite3_column_int64(st, 1);
    c.created_ms = sqlite3_column_int64(st, 2);
    c.finished_ms = sqlite3_column_int64(st, 3);
    store__col_str(st, 4, c.state, sizeof c.state);
    c.captured = sqlite3_column_int64(st, 5);
    c.duplicates = sqlite3_column_int64(st, 6);
    c.rejected = sqlite3_column_int64(st, 7);
    const char *e = (const char *)sqlite3_column_text(st, 8);
    c.errors_json = strdup(e ? e : "[]");
    if (!c.errors_json)
      rc = PL_ENOMEM;
    else
      *out = c;
  }
  sqlite3_finalize(st);
  return rc;
}

/* ---- named queries ---- */

int store_trace_named_put(store *s, int64_t tenant_id, const char *name, const char *params_json, int64_t now_ms) {
  sqlite3_stmt *st;
  int rc = store__prepare(s, "INSERT INTO trace_queries (tenant_id, name, params, created_ms) VALUES (?,?,?,?)", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, params_json, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, now_ms);
  rc = store__exec(s, st);
  sqlite3_finalize(st);
  return rc;
}

int store_trace_named_get(store *s, int64_t tenant_id, const char *name, char **params_json, int64_t *created_ms) {
  sqlite3_stmt *st;
  int rc = store__prepare(s, "SELECT params, created_ms FROM trace_queries WHERE tenant_id = ? AND name = ?", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
  if ((rc = store__step_row(s, st)) == 0) {
    char *p = strdup((const char *)sqlite3_column_text(st, 0));
    if (!p)
      rc = PL_ENOMEM;
    else {
      *params_json = p;
      if (created_ms)
        *created_ms = sqlite3_column_int64(st, 1);
    }
  }
  sqlite3_finalize(st);
  return rc;
}

int store_trace_named_delete(store *s, int64_t tenant_id, const char *name) {
  sqlite3_stmt *st;
  int rc = store__prepare(s, "DELETE FROM trace_queries WHERE tenant_id = ? AND name = ?", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
  rc = store__exec_one(s, st);
  sqlite3_finalize(st);
  return rc;
}

typedef struct named_visit {
  int (*cb)(void *ctx, const char *name, const char *params_json, int64_t created_ms);
  void *ctx;
} named_visit;

static int visit_named(void *ctx, sqlite3_stmt *st) {
  named_visit *v = ctx;
  return v->cb(v->ctx, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
               sqlite3_column_int64(st, 2));
}

int store_trace_named_list(store *s, int64_t tenant_id,
                           int (*cb)(void *ctx, const char *name, const char *params_json, int64_t created_ms),
                           void *ctx) {
  sqlite3_stmt *st;
  int rc = store__prepare(s, "SELECT name, params, created_ms FROM trace_queries WHERE tenant_id = ? ORDER BY name", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  named_visit v = {cb, ctx};
  return store__each_row(s, st, visit_named, &v);
}

/* ---- subscriptions ---- */

int store_trace_sub_create(store *s, store_trace_sub *sub) {
  sqlite3_stmt *st;
  int rc = store__prepare(s,
                          "INSERT INTO trace_subscriptions (tenant_id, query_name, dest, created_ms, last_event)"
                          " VALUES (?, ?, ?, ?, (SELECT coalesce(max(id), 0) FROM trace_events))",
                          &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, sub->tenant_id);
  sqlite3_bind_text(st, 2, sub->query_name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, sub->dest, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, sub->created_ms);
  rc = store__exec(s, st);
  sqlite3_finalize(st);
  if (rc == 0)
    sub->id = sqlite3_last_insert_rowid(s->db);
  return rc;
}

int store_trace_sub_delete(store *s, int64_t tenant_id, const char *query_name, int64_t id) {
  sqlite3_stmt *st;
  int rc = store__prepare(s, "DELETE FROM trace_subscriptions WHERE id = ? AND tenant_id = ? AND query_name = ?", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, tenant_id);
  sqlite3_bind_text(st, 3, query_name, -1, SQLITE_STATIC);
  rc = store__exec_one(s, st);
  sqlite3_finalize(st);
  return rc;
}

typedef struct sub_visit {
  int (*cb)(void *ctx, const store_trace_sub *sub);
  void *ctx;
} sub_visit;

static int visit_sub(void *ctx, sqlite3_stmt *st) {
  sub_visit *v = ctx;
  store_trace_sub sub;
  sub.id = sqlite3_column_int64(st, 0);
  sub.tenant_id = sqlite3_column_int64(st, 1);
  sub.query_name = (const char *)sqlite3_column_text(st, 2);
  sub.dest = (const char *)sqlite3_column_text(st, 3);
  sub.created_ms = sqlite3_column_int64(st, 4);
  sub.last_event = sqlite3_column_int64(st, 5);
  return v->cb(v->ctx, &sub);
}

int store_trace_sub_list(store *s, int64_t tenant_id, const char *query_name,
                         int (*cb)(void *ctx, const store_trace_sub *sub), void *ctx) {
  sqlite3_stmt *st;
  int rc = store__prepare(s,
                          "SELECT id, tenant_id, query_name, dest, created_ms, last_event FROM trace_subscriptions"
                          " WHERE (?1 = 0 OR tenant_id = ?1) AND (?2 IS NULL OR query_name = ?2) ORDER BY id",
                          &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  if (query_name)
    sqlite3_bind_text(st, 2, query_name, -1, SQLITE_STATIC);
  sub_visit v = {cb, ctx};
  return store__each_row(s, st, visit_sub, &v);
}

int store_trace_sub_advance(store *s, int64_t id, int64_t from, int64_t to) {
  sqlite3_stmt *st;
  int rc = store__prepare(s, "UPDATE trace_subscriptions SET last_event = ? WHERE id = ? AND last_event = ?", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, to);
  sqlite3_bind_int64(st, 2, id);
  sqlite3_bind_int64(st, 3, from);
  rc = store__exec_one(s, st);
  sqlite3_finalize(st);
  return rc;
}
