/* In-process side of the traceability benchmark (bench/trace.sh): EPCIS capture and the two
 * latency queries of the issue, through trace/ and store/ alone (no HTTP), on one thread, beside
 * the same events stored by "SQLite alone" (what a maker without an EPCIS repository would
 * write: the event JSON in a table, a unique index on its id, one indexed row per identifier).
 *
 *   bench_trace_capture --dir DIR [--events N] [--doc-events N] [--side plateau|sqlite|both]
 *                       [--queries N]
 *
 * The data is bench/trace.sh's supply chain, generated here byte for byte as its Python does:
 * a lot every 5 minutes from 2025-01-01 (events in time order, as a plant captures them); per lot, two TransformationEvents (spring -> water lot -> bottle lot), 40 case
 * AggregationEvents (a class quantity of the bottle lot), 4 pallet AggregationEvents (10 cases
 * each), a shipping TransactionEvent (the 4 pallets) and 4 receiving ObjectEvents: 51 events,
 * none with an eventID (each is hashed), in documents of <= --doc-events (9,990) events.
 *
 * Timed per side: generating a document is not timed; parsing + validating it (Plateau:
 * trace_doc_parse; SQLite alone: jansson parse and re-serialising each event) and inserting it
 * in one transaction (and freeing the document) are: the per-event costs are this thread's CPU
 * time, the events/s figure wall time (it includes waiting for fsync). Output: one
 * `key=value` per line. --queries N then times N random
 * MATCH_anyEPC queries (one case) and N/2 five-level recalls (a water lot, direction down) on
 * the resulting repository: median and p99 in milliseconds.
 */
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "store/store.h"
#include "store/store_trace.h"
#include "trace/trace.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CP "4012345"
#define PER_LOT 51

static double now_s(void) {
  return (double)pl_mono_ns() * 1e-9;
}

/* This thread's CPU time: the per-event costs below are CPU time, so that other work on the
 * machine (which delays this thread but does not add to its CPU time) moves them little. */
static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, int rc, const pl_err *err) {
  fprintf(stderr, "bench_trace_capture: %s: %s\n", what, err && err->msg[0] ? err->msg : pl_strerror(rc));
  exit(1);
}

static void sscc(pl_buf *b, long n) {
  pl_buf_printf(b, "\"urn:epc:id:sscc:" CP ".%010ld\"", n);
}

/* Appends one event's common head: {"type":..., "eventTime":..., "eventTimeZoneOffset":"+08:00" */
static void head(pl_buf *b, const char *type, const char *t) {
  pl_buf_printf(b, "{\"type\": \"%s\", \"eventTime\": \"%s\", \"eventTimeZoneOffset\": \"+00:00\"", type, t);
}

static void lot_events(pl_buf *b, long lot, int *first) {
  char t[40];
  time_t when = (time_t)(1735689600L + lot * 300L); /* a lot every 5 minutes from 2025-01-01 */
  struct tm tm;
  gmtime_r(&when, &tm);
  strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
  char w[96], bl[96];
  snprintf(w, sizeof w, "urn:epc:class:lgtin:" CP ".000002.W%ld", lot);
  snprintf(bl, sizeof bl, "urn:epc:class:lgtin:" CP ".000003.B%ld", lot);
#define SEP() (pl_buf_append_str(b, *first ? "" : ", "), *first = 0)
  SEP();
  head(b, "TransformationEvent", t);
  pl_buf_printf(b,
                ", \"inputQuantityList\": [{\"epcClass\": \"urn:epc:class:lgtin:" CP ".000001.S%ld\", \"quantity\": 5000}],"
                " \"outputQuantityList\": [{\"epcClass\": \"%s\", \"quantity\": 5000}], \"bizStep\": \"commissioning\"}",
                lot % 3, w);
  SEP();
  head(b, "TransformationEvent", t);
  pl_buf_printf(b,
                ", \"inputQuantityList\": [{\"epcClass\": \"%s\", \"quantity\": 5000}],"
                " \"outputQuantityList\": [{\"epcClass\": \"%s\", \"quantity\": 960}], \"bizStep\": \"commissioning\"}",
                w, bl);
  for (int c = 0; c < 40; c++) {
    SEP();
    head(b, "AggregationEvent", t);
    pl_buf_append_str(b, ", \"action\": \"ADD\", \"bizStep\": \"packing\", \"parentID\": ");
    sscc(b, lot * 100 + c);
    pl_buf_printf(b, ", \"childQuantityList\": [{\"epcClass\": \"%s\", \"quantity\": 24}]}", bl);
  }
  for (int p = 0; p < 4; p++) {
    SEP();
    head(b, "AggregationEvent", t);
    pl_buf_append_str(b, ", \"action\": \"ADD\", \"bizStep\": \"packing\", \"parentID\": ");
    sscc(b, 900000000L + lot * 10 + p);
    pl_buf_append_str(b, ", \"childEPCs\": [");
    for (int c = p * 10; c < (p + 1) * 10; c++) {
      if (c > p * 10)
        pl_buf_append_str(b, ", ");
      sscc(b, lot * 100 + c);
    }
    pl_buf_append_str(b, "]}");
  }
  SEP();
  head(b, "TransactionEvent", t);
  pl_buf_append_str(b, ", \"action\": \"ADD\", \"bizStep\": \"shipping\", \"parentID\": ");
  sscc(b, 800000000L + lot);
  pl_buf_append_str(b, ", \"epcList\": [");
  for (int p = 0; p < 4; p++) {
    if (p)
      pl_buf_append_str(b, ", ");
    sscc(b, 900000000L + lot * 10 + p);
  }
  pl_buf_printf(b, "], \"bizTransactionList\": [{\"type\": \"desadv\", \"bizTransaction\": \"urn:x:desadv:%ld\"}]}", lot);
  for (int p = 0; p < 4; p++) {
    SEP();
    head(b, "ObjectEvent", t);
    pl_buf_append_str(b, ", \"action\": \"OBSERVE\", \"bizStep\": \"receiving\", \"epcList\": [");
    sscc(b, 900000000L + lot * 10 + p);
    pl_buf_printf(b, "], \"bizLocation\": {\"id\": \"urn:epc:id:sgln:" CP ".%05ld.0\"}}", lot % 500);
  }
#undef SEP
}

/* The next document: lots [*lot, ...) until at least doc_events events or the last lot. */
static size_t next_doc(pl_buf *b, long *lot, long lots, size_t doc_events) {
  b->len = 0;
  pl_buf_append_str(b, "{\"type\": \"EPCISDocument\", \"schemaVersion\": \"2.0\", \"creationDate\": "
                       "\"2026-01-01T00:00:00Z\", \"epcisBody\": {\"eventList\": [");
  size_t n = 0;
  int first = 1;
  while (*lot < lots && n < doc_events) {
    lot_events(b, (*lot)++, &first);
    n += PER_LOT;
  }
  pl_buf_append_str(b, "]}}");
  return n;
}

static long long file_bytes(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

/* ---- Plateau ---- */

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void report_lat(const char *name, double *xs, int n) {
  qsort(xs, (size_t)n, sizeof *xs, cmp_d);
  printf("%s_median_ms=%.3f\n%s_p99_ms=%.3f\n", name, xs[n / 2], name, xs[n * 99 / 100 > 0 ? n * 99 / 100 - 1 : 0]);
}

static int count_row(void *ctx, const store_trace_row *row) {
  (void)row;
  (*(long *)ctx)++;
  return 0;
}

static void plateau_side(const char *dir, long lots, size_t doc_events, int queries) {
  char path[4096];
  snprintf(path, sizeof path, "%s/meta.db", dir);
  store *s;
  pl_err err = {{0}};
  int rc = store_open(path, &s, &err);
  if (rc < 0)
    die("store_open", rc, &err);
  store_tenant t = {0};
  snprintf(t.name, sizeof t.name, "bench");
  if ((rc = store_tenant_create(s, &t)) < 0)
    die("tenant", rc, NULL);
  pl_buf doc;
  pl_buf_init(&doc, 0);
  double parse_s = 0, insert_s = 0, wall_s = 0;
  long lot = 0, events = 0;
  int64_t job = 0;
  while (lot < lots) {
    size_t n = next_doc(&doc, &lot, lots, doc_events);
    double w0 = now_s(), t0 = cpu_s();
    trace_doc *d;
    if ((rc = trace_doc_parse(doc.data, doc.len, TRACE_EVENTS_MAX, &d, &err)) < 0)
      die("trace_doc_parse", rc, &err);
    if (d->nvalid != n)
      die("trace_doc_parse: invalid events", PL_EINVAL, NULL);
    store_trace_event *rows = calloc(n, sizeof *rows);
    for (size_t i = 0; i < n; i++)
      rows[i] = d->events[i].row;
    double t1 = cpu_s();
    int64_t now = pl_now_ms();
    if ((rc = store_begin(s)) < 0 || (rc = store_trace_capture_create(s, t.id, now, &job)) < 0 ||
        (rc = store_trace_insert_batch(s, t.id, job, now, rows, n, NULL)) < 0 ||
        (rc = store_trace_capture_finish(s, t.id, job, "success", (int64_t)n, 0, 0, "[]", now)) < 0 ||
        (rc = store_commit(s)) < 0)
      die("insert", rc, NULL);
    free(rows);
    trace_doc_free(d); /* part of the insert's time: a server frees each document */
    double t2 = cpu_s();
    wall_s += now_s() - w0;
    parse_s += t1 - t0;
    insert_s += t2 - t1;
    events += (long)n;
  }
  printf("plateau_events=%ld\nplateau_parse_cpu_us_per_event=%.2f\nplateau_insert_cpu_us_per_event=%.2f\n"
         "plateau_events_per_s=%.0f\n",
         events, parse_s / (double)events * 1e6, insert_s / (double)events * 1e6, (double)events / wall_s);
  printf("plateau_db_bytes=%lld\nplateau_db_bytes_per_event=%.0f\n", file_bytes(path),
         (double)file_bytes(path) / (double)events);
  fflush(stdout);
  if (queries > 0) {
    uint64_t seed = 7;
    double *xs = calloc((size_t)queries, sizeof *xs);
    long found = 0;
    for (int i = 0; i < queries; i++) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      long lotn = (long)((seed >> 33) % (uint64_t)lots), c = (long)((seed >> 13) % 40);
      char raw[64], norm[TRACE_EPC_MAX];
      snprintf(raw, sizeof raw, "urn:epc:id:sscc:" CP ".%010ld", lotn * 100 + c);
      double t0 = now_s();
      trace_epc_normalise(raw, norm, sizeof norm);
      const char *vals[1] = {norm};
      store_trace_filter f = {0};
      f.viewer = t.id;
      f.conds[0] = (store_trace_cond){.field = STORE_TRACE_F_EPC, .roles = 0xffffffffu, .values = vals, .nvalues = 1};
      f.nconds = 1;
      f.limit = 101;
      if ((rc = store_trace_query(s, &f, count_row, &found)) < 0)
        die("query", rc, NULL);
      xs[i] = (now_s() - t0) * 1e3;
    }
    report_lat("match_any_epc", xs, queries);
    printf("match_any_epc_events_per_query=%.2f\n", (double)found / queries);
    int nr = queries / 2 > 0 ? queries / 2 : 1;
    long nodes = 0;
    for (int i = 0; i < nr; i++) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      char raw[96], norm[TRACE_EPC_MAX];
      snprintf(raw, sizeof raw, "urn:epc:class:lgtin:" CP ".000002.W%ld", (long)((seed >> 33) % (uint64_t)lots));
      double t0 = now_s();
      trace_epc_normalise(raw, norm, sizeof norm);
      json_t *g = trace_lineage(s, t.id, norm, TRACE_DOWN, TRACE_DEPTH_MAX, TRACE_NODES_MAX, &rc);
      if (!g)
        die("lineage", rc, NULL);
      xs[i] = (now_s() - t0) * 1e3;
      nodes += (long)json_array_size(json_object_get(g, "nodes"));
      json_decref(g);
    }
    report_lat("recall", xs, nr);
    printf("recall_nodes=%.1f\n", (double)nodes / nr);
    free(xs);
  }
  pl_buf_free(&doc);
  store_close(s);
}

/* ---- SQLite alone ---- */

static void sqlite_side(const char *dir, long lots, size_t doc_events) {
  char path[4096];
  snprintf(path, sizeof path, "%s/sqlite-alone.db", dir);
  sqlite3 *db;
  if (sqlite3_open(path, &db) != SQLITE_OK)
    die("sqlite3_open", PL_EIO, NULL);
  sqlite3_exec(db,
               "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-65536;"
               "CREATE TABLE events (id INTEGER PRIMARY KEY, event_id TEXT UNIQUE NOT NULL, type TEXT,"
               " event_time TEXT, biz_step TEXT, doc TEXT NOT NULL);"
               "CREATE INDEX events_time ON events(event_time);"
               "CREATE TABLE epcs (event INTEGER NOT NULL, epc TEXT NOT NULL);"
               "CREATE INDEX epcs_epc ON epcs(epc, event); CREATE INDEX epcs_event ON epcs(event);",
               NULL, NULL, NULL);
  sqlite3_stmt *ins, *epc;
  sqlite3_prepare_v2(db, "INSERT INTO events (event_id, type, event_time, biz_step, doc) VALUES (?,?,?,?,?)", -1, &ins,
                     NULL);
  sqlite3_prepare_v2(db, "INSERT INTO epcs (event, epc) VALUES (?,?)", -1, &epc, NULL);
  pl_buf doc;
  pl_buf_init(&doc, 0);
  double parse_s = 0, insert_s = 0, wall_s = 0;
  long lot = 0, events = 0;
  static const char *const lists[] = {"epcList", "childEPCs", "inputEPCList", "outputEPCList", NULL};
  static const char *const qlists[] = {"quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList", NULL};
  while (lot < lots) {
    size_t n = next_doc(&doc, &lot, lots, doc_events);
    double w0 = now_s(), t0 = cpu_s();
    json_error_t je;
    json_t *root = json_loadb((const char *)doc.data, doc.len, 0, &je);
    json_t *list = json_object_get(json_object_get(root, "epcisBody"), "eventList");
    char **texts = calloc(n, sizeof *texts);
    char (*ids)[72] = calloc(n, sizeof *ids);
    for (size_t i = 0; i < n; i++) {
      json_t *ev = json_array_get(list, i);
      texts[i] = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
      /* an event id: a 64-bit FNV-1a of the compact text and its position */
      sqlite3_uint64 x = 1469598103934665603ull;
      for (const char *p = texts[i]; *p; p++)
        x = (x ^ (unsigned char)*p) * 1099511628211ull;
      snprintf(ids[i], sizeof ids[i], "ev:%016llx:%zu", (unsigned long long)x, i);
    }
    double t1 = cpu_s();
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    for (size_t i = 0; i < n; i++) {
      json_t *ev = json_array_get(list, i);
      sqlite3_reset(ins);
      sqlite3_bind_text(ins, 1, ids[i], -1, SQLITE_STATIC);
      sqlite3_bind_text(ins, 2, json_string_value(json_object_get(ev, "type")), -1, SQLITE_STATIC);
      sqlite3_bind_text(ins, 3, json_string_value(json_object_get(ev, "eventTime")), -1, SQLITE_STATIC);
      sqlite3_bind_text(ins, 4, json_string_value(json_object_get(ev, "bizStep")), -1, SQLITE_STATIC);
      sqlite3_bind_text(ins, 5, texts[i], -1, SQLITE_STATIC);
      if (sqlite3_step(ins) != SQLITE_DONE)
        die("sqlite insert", PL_EIO, NULL);
      sqlite3_int64 id = sqlite3_last_insert_rowid(db);
      json_t *parent = json_object_get(ev, "parentID");
      for (int pass = 0; pass < 3; pass++) {
        const char *const *names = pass == 0 ? lists : qlists;
        for (int k = 0; pass < 2 && names[k]; k++) {
          json_t *arr = json_object_get(ev, names[k]), *v;
          size_t j;
          json_array_foreach(arr, j, v) {
            const char *s = pass == 0 ? json_string_value(v) : json_string_value(json_object_get(v, "epcClass"));
            sqlite3_reset(epc);
            sqlite3_bind_int64(epc, 1, id);
            sqlite3_bind_text(epc, 2, s, -1, SQLITE_STATIC);
            sqlite3_step(epc);
          }
        }
        if (pass == 2 && parent) {
          sqlite3_reset(epc);
          sqlite3_bind_int64(epc, 1, id);
          sqlite3_bind_text(epc, 2, json_string_value(parent), -1, SQLITE_STATIC);
          sqlite3_step(epc);
        }
      }
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    double t2 = cpu_s();
    wall_s += now_s() - w0;
    parse_s += t1 - t0;
    insert_s += t2 - t1;
    events += (long)n;
    for (size_t i = 0; i < n; i++)
      free(texts[i]);
    free(texts);
    free(ids);
    json_decref(root);
  }
  printf("sqlite_events=%ld\nsqlite_parse_cpu_us_per_event=%.2f\nsqlite_insert_cpu_us_per_event=%.2f\n"
         "sqlite_events_per_s=%.0f\nsqlite_db_bytes=%lld\nsqlite_db_bytes_per_event=%.0f\n",
         events, parse_s / (double)events * 1e6, insert_s / (double)events * 1e6, (double)events / wall_s,
         file_bytes(path), (double)file_bytes(path) / (double)events);
  sqlite3_finalize(ins);
  sqlite3_finalize(epc);
  sqlite3_close(db);
  pl_buf_free(&doc);
}

int main(int argc, char **argv) {
  const char *dir = NULL, *side = "both";
  long events = 200000;
  size_t doc_events = 9990;
  int queries = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
      dir = argv[++i];
    else if (strcmp(argv[i], "--events") == 0 && i + 1 < argc)
      events = atol(argv[++i]);
    else if (strcmp(argv[i], "--doc-events") == 0 && i + 1 < argc)
      doc_events = (size_t)atol(argv[++i]);
    else if (strcmp(argv[i], "--side") == 0 && i + 1 < argc)
      side = argv[++i];
    else if (strcmp(argv[i], "--queries") == 0 && i + 1 < argc)
      queries = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: bench_trace_capture --dir DIR [--events N] [--doc-events N] "
                      "[--side plateau|sqlite|both] [--queries N]\n");
      return 2;
    }
  }
  if (!dir || doc_events < PER_LOT || doc_events > TRACE_EVENTS_MAX) {
    fprintf(stderr, "bench_trace_capture: --dir is required; --doc-events from 51 to 10000\n");
    return 2;
  }
  long lots = events / PER_LOT > 0 ? events / PER_LOT : 1;
  if (strcmp(side, "sqlite") != 0)
    plateau_side(dir, lots, doc_events, queries);
  if (strcmp(side, "plateau") != 0)
    sqlite_side(dir, lots, doc_events);
  return 0;
}
