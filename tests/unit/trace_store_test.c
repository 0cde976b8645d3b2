/* The trace event store and the lineage walk, in process: capture of parsed documents,
 * deduplication, query filters (URN and Digital Link forms of one identifier, patterns, CBV
 * forms), visibility (own, shared, regulator), lineage down and up with bounds, and the webhook
 * queue's bound. */
#include "store/store_int.h"
#include "store/store_trace.h"
#include "trace/trace.h"

#include <sqlite3.h>

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

typedef struct fixture {
  char dir[64], path[128];
  store *s;
  int64_t a, b, c; /* tenants */
} fixture;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  return remove(path);
}

static int64_t tenant(store *s, const char *name) {
  store_tenant t;
  memset(&t, 0, sizeof t);
  snprintf(t.name, sizeof t.name, "%s", name);
  assert_int_equal(store_tenant_create(s, &t), 0);
  return t.id;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/trace_store_test.XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->path, sizeof f->path, "%s/meta.db", f->dir);
  pl_err err;
  assert_int_equal(store_open(f->path, &f->s, &err), 0);
  f->a = tenant(f->s, "maker");
  f->b = tenant(f->s, "dist");
  f->c = tenant(f->s, "other");
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  store_close(f->s);
  nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

#define DOC(events)                                                                                \
  "{\"type\":\"EPCISDocument\",\"schemaVersion\":\"2.0\",\"creationDate\":\"2026-01-01T00:00:00Z\","     \
  "\"epcisBody\":{\"eventList\":[" events "]}}"

/* Captures text for tenant, sharing every event with share (0: none); returns inserted count. */
static int capture(fixture *f, int64_t tenant_id, const char *text, int64_t share) {
  trace_doc *d = NULL;
  pl_err err = {{0}};
  int rc = trace_doc_parse(text, strlen(text), TRACE_EVENTS_MAX, &d, &err);
  if (rc)
    fail_msg("%s", err.msg);
  assert_int_equal(d->nproblems, 0);
  store_trace_event *rows = calloc(d->nevents, sizeof *rows);
  int *ins = calloc(d->nevents, sizeof *ins);
  for (size_t i = 0; i < d->nevents; i++) {
    rows[i] = d->events[i].row;
    if (share) {
      rows[i].share_tenants = &share;
      rows[i].nshares = 1;
    }
  }
  assert_int_equal(store_begin(f->s), 0);
  assert_int_equal(store_trace_insert_batch(f->s, tenant_id, 0, 1000, rows, d->nevents, ins), 0);
  assert_int_equal(store_commit(f->s), 0);
  int n = 0;
  for (size_t i = 0; i < d->nevents; i++)
    n += ins[i];
  free(rows);
  free(ins);
  trace_doc_free(d);
  return n;
}

static int count_cb(void *ctx, const store_trace_row *row) {
  (*(int *)ctx)++;
  return 0;
}

static int count(fixture *f, int64_t viewer, int field, unsigned roles, const char *value) {
  store_trace_filter q;
  memset(&q, 0, sizeof q);
  q.viewer = viewer;
  char norm[1200];
  const char *v = value;
  if (field == STORE_TRACE_F_EPC || field == STORE_TRACE_F_READ_POINT) {
    assert_true(trace_epc_normalise(value, norm, sizeof norm) > 0);
    v = norm;
  } else if (field == STORE_TRACE_F_BIZ_STEP) {
    assert_true(trace_vocab_normalise("BizStep", value, norm, sizeof norm) > 0);
    v = norm;
  }
  if (field) {
    q.conds[0].field = field;
    q.conds[0].roles = roles;
    q.conds[0].values = &v;
    q.conds[0].nvalues = 1;
    q.nconds = 1;
  }
  int n = 0;
  assert_true(store_trace_query(f->s, &q, count_cb, &n) >= 0);
  return n;
}

#define ALL 0xffffffffu
#define T "\"eventTimeZoneOffset\":\"+00:00\""

static const char *chain =
    DOC("{\"type\":\"TransformationEvent\",\"eventTime\":\"2026-01-01T00:00:00Z\"," T ","
        "\"inputQuantityList\":[{\"epcClass\":\"urn:epc:class:lgtin:4012345.000001.S\"}],"
        "\"outputQuantityList\":[{\"epcClass\":\"urn:epc:class:lgtin:4012345.000002.W1\"}],\"bizStep\":\"commissioning\"},"
        "{\"type\":\"AggregationEvent\",\"action\":\"ADD\",\"eventTime\":\"2026-01-02T00:00:00Z\"," T ","
        "\"parentID\":\"urn:epc:id:sscc:4012345.0000000001\","
        "\"childQuantityList\":[{\"epcClass\":\"urn:epc:class:lgtin:4012345.000002.W1\",\"quantity\":24}],"
        "\"readPoint\":{\"id\":\"urn:epc:id:sgln:4012345.00001.0\"}},"
        "{\"type\":\"AggregationEvent\",\"action\":\"ADD\",\"eventTime\":\"2026-01-02T00:00:00Z\"," T ","
        "\"parentID\":\"urn:epc:id:sscc:4012345.0000000002\","
        "\"childQuantityList\":[{\"epcClass\":\"urn:epc:class:lgtin:4012345.000002.W9\",\"quantity\":24}]},"
        "{\"type\":\"AggregationEvent\",\"action\":\"ADD\",\"eventTime\":\"2026-01-03T00:00:00Z\"," T ","
        "\"parentID\":\"urn:epc:id:sscc:4012345.0000000100\",\"childEPCs\":[\"urn:epc:id:sscc:4012345.0000000001\","
        "\"urn:epc:id:sscc:4012345.0000000002\"]}");

static const char *shipping =
    DOC("{\"type\":\"ObjectEvent\",\"action\":\"OBSERVE\",\"eventTime\":\"2026-01-04T00:00:00Z\"," T ","
        "\"bizStep\":\"shipping\",\"epcList\":[\"https://id.gs1.org/00/040123450000001006\"],"
        "\"bizLocation\":{\"id\":\"urn:epc:id:sgln:4012345.00500.0\"}}");

static void capture_dedup_and_query(void **state) {
  fixture *f = *state;
  assert_int_equal(capture(f, f->a, chain, 0), 4);
  assert_int_equal(capture(f, f->a, chain, 0), 0); /* same computed eventIDs: duplicates */
  assert_int_equal(capture(f, f->b, shipping, f->a), 1);
  assert_int_equal(count(f, f->a, 0, 0, NULL), 5);  /* own 4 + shared 1 */
  assert_int_equal(count(f, f->b, 0, 0, NULL), 1);
  assert_int_equal(count(f, f->c, 0, 0, NULL), 0);
  assert_int_equal(count(f, 0, 0, 0, NULL), 5); /* regulator */
  /* the pallet in URN form finds the Digital Link-form event */
  assert_int_equal(count(f, f->a, STORE_TRACE_F_EPC, ALL, "urn:epc:id:sscc:4012345.0000000100"), 2);
  assert_int_equal(count(f, f->a, STORE_TRACE_F_EPC, STORE_TRACE_ROLE_BIT(STORE_TRACE_ROLE_PARENT),
                         "urn:epc:id:sscc:4012345.0000000100"),
                   1);
  assert_int_equal(count(f, f->a, STORE_TRACE_F_EPC, ALL, "urn:epc:idpat:sgtin:4012345.000002.*"), 3);
  assert_int_equal(count(f, f->a, STORE_TRACE_F_BIZ_STEP, 0, "urn:epcglobal:cbv:bizstep:shipping"), 1);
  assert_int_equal(count(f, f->a, STORE_TRACE_F_READ_POINT, 0, "https://id.gs1.org/414/4012345000016"), 1);
}

static void lineage(void **state) {
  fixture *f = *state;
  capture(f, f->a, chain, 0);
  capture(f, f->b, shipping, 0); /* not shared */
  char lot[200];
  trace_epc_normalise("urn:epc:class:lgtin:4012345.000002.W1", lot, sizeof lot);
  int rc;
  json_t *g = trace_lineage(f->s, f->a, lot, TRACE_DOWN, 20, 1000, &rc);
  assert_non_null(g);
  /* lot -> case 1 -> pallet 100; case 2 (another lot on the pallet) is not reached */
  assert_int_equal(json_array_size(json_object_get(g, "nodes")), 3);
  char *text = json_dumps(g, 0);
  assert_null(strstr(text, "040123450000000023"));
  assert_non_null(strstr(text, "040123450000001006"));
  /* the pallet's unshared shipping event is reported as a stop */
  assert_non_null(strstr(text, "events not visible to you"));
  free(text);
  json_decref(g);
  /* the regulator sees through */
  g = trace_lineage(f->s, 0, lot, TRACE_DOWN, 20, 1000, &rc);
  assert_true(json_is_true(json_object_get(g, "complete")));
  json_decref(g);
  /* bounds: depth 1 and 2 nodes */
  g = trace_lineage(f->s, 0, lot, TRACE_DOWN, 1, 1000, &rc);
  assert_false(json_is_true(json_object_get(g, "complete")));
  assert_int_equal(json_array_size(json_object_get(g, "nodes")), 2);
  json_decref(g);
  g = trace_lineage(f->s, 0, lot, TRACE_DOWN, 20, 2, &rc);
  assert_false(json_is_true(json_object_get(g, "complete")));
  assert_int_equal(json_array_size(json_object_get(g, "nodes")), 2);
  json_decref(g);
  /* up from the pallet: both cases, both lots, the spring */
  char pallet[200];
  trace_epc_normalise("urn:epc:id:sscc:4012345.0000000100", pallet, sizeof pallet);
  g = trace_lineage(f->s, f->a, pallet, TRACE_UP, 20, 1000, &rc);
  assert_int_equal(json_array_size(json_object_get(g, "nodes")), 6);
  json_decref(g);
}

/* Inserts one event whose stored JSON is doc as it is (no validation: rows written by other
 * versions, or shapes the parser lets through, must never make a query fail). */
static void insert_raw(fixture *f, const char *id, const char *doc) {
  store_trace_event e;
  memset(&e, 0, sizeof e);
  e.event_id = id;
  e.type = STORE_TRACE_OBJECT;
  e.event_time_ms = 1000;
  e.doc = doc;
  e.doc_len = strlen(doc);
  int ins = 0;
  assert_int_equal(store_begin(f->s), 0);
  assert_int_equal(store_trace_insert_batch(f->s, f->a, 0, 1000, &e, 1, &ins), 0);
  assert_int_equal(store_commit(f->s), 0);
  assert_int_equal(ins, 1);
}

static int jcount(fixture *f, const store_trace_jcond *c) {
  store_trace_filter q;
  memset(&q, 0, sizeof q);
  q.viewer = f->a;
  q.jconds[0] = *c;
  q.njconds = 1;
  int n = 0;
  int rc = store_trace_query(f->s, &q, count_cb, &n);
  if (rc < 0)
    return rc;
  int64_t total = -1;
  assert_int_equal(store_trace_count(f->s, &q, 100, &total), 0);
  assert_int_equal(total, n);
  return n;
}

static void json_conditions(void **state) {
  fixture *f = *state;
  insert_raw(f, "good",
             "{\"type\":\"ObjectEvent\",\"ilmd\":{\"ex:lot\":\"L7\",\"ex:n\":\"20\"},"
             "\"sensorElementList\":[{\"sensorReport\":[{\"value\":4.5,\"uom\":\"CEL\"},"
             "{\"value\":40,\"uom\":\"FAH\"}]}],\"ex:list\":[1,\"2\",[3]],"
             "\"ex:when\":\"2026-03-01T08:00:00+08:00\",\"ex:o\":{\"ex:deep\":{\"ex:x\":true}}}");
  /* the wrong shapes everywhere */
  insert_raw(f, "odd1",
             "{\"type\":\"ObjectEvent\",\"ilmd\":\"L7\",\"sensorElementList\":{\"sensorReport\":1},"
             "\"quantityList\":[5,\"x\",null],\"errorDeclaration\":[\"a\"],\"ex:o\":\"{not json\","
             "\"ex:when\":\"2451545\",\"ex:n\":\"{\"}");
  insert_raw(f, "odd2",
             "{\"type\":\"ObjectEvent\",\"sensorElementList\":[\"x\",{\"sensorReport\":[\"y\",null,"
             "{\"value\":\"4.5\",\"uom\":\"CEL\"}],\"sensorMetadata\":[1]}],\"ex:list\":{}}");
  const char *lot[] = {"L7"};
  const char *cel[] = {"CEL"};
  double four_five = 4.5;
  int64_t when = 1772323200000; /* 2026-03-01T00:00:00Z */
  store_trace_jcond c;

  memset(&c, 0, sizeof c);
  c.scope = STORE_TRACE_SCOPE_ILMD, c.op = STORE_TRACE_OP_EQ, c.key = "ex:lot", c.strs = lot,
  c.nstrs = 1;
  assert_int_equal(jcount(f, &c), 1);
  c.scope = STORE_TRACE_SCOPE_EVENT; /* not at the top */
  assert_int_equal(jcount(f, &c), 0);

  /* value 4.5 in CEL: the good event, and odd2's string "4.5" in a CEL report */
  memset(&c, 0, sizeof c);
  c.scope = STORE_TRACE_SCOPE_SENSOR_REPORT, c.op = STORE_TRACE_OP_EQ, c.key = "value";
  c.nums = &four_five, c.nnums = 1, c.with_key = "uom", c.with_values = cel, c.nwith = 1;
  assert_int_equal(jcount(f, &c), 2);
  c.op = STORE_TRACE_OP_GT, c.nnums = 0, c.num = 10, c.has_num = 1; /* 40 is FAH */
  assert_int_equal(jcount(f, &c), 0);
  c.scope = STORE_TRACE_SCOPE_ILMD; /* a scope without one object per element */
  assert_int_equal(jcount(f, &c), PL_EINVAL);

  /* numbers in lists, and strings holding numbers; not "{" */
  memset(&c, 0, sizeof c);
  c.scope = STORE_TRACE_SCOPE_EVENT, c.op = STORE_TRACE_OP_GE, c.key = "ex:list", c.num = 2,
  c.has_num = 1;
  assert_int_equal(jcount(f, &c), 1);
  c.scope = STORE_TRACE_SCOPE_ILMD, c.key = "ex:n", c.num = 20;
  assert_int_equal(jcount(f, &c), 1);
  c.scope = STORE_TRACE_SCOPE_EVENT; /* odd1's "{" is no number and no error */
  assert_int_equal(jcount(f, &c), 0);

  /* times: "2451545" is not read as a Julian day */
  memset(&c, 0, sizeof c);
  c.scope = STORE_TRACE_SCOPE_EVENT, c.op = STORE_TRACE_OP_LE, c.key = "ex:when", c.time_ms = when,
  c.has_time = 1;
  assert_int_equal(jcount(f, &c), 1); /* 08:00+08:00 is midnight UTC */
  c.op = STORE_TRACE_OP_LT;
  assert_int_equal(jcount(f, &c), 0);
  c.op = STORE_TRACE_OP_GE;
  assert_int_equal(jcount(f, &c), 1);
  c.op = STORE_TRACE_OP_GT;
  assert_int_equal(jcount(f, &c), 0);
  c.op = STORE_TRACE_OP_EQ, c.has_time = 0, c.times_ms = &when, c.ntimes = 1;
  int64_t exact = when;
  c.times_ms = &exact;
  assert_int_equal(jcount(f, &c), 1);

  /* inner: anywhere below an extension member, not inside strings that look like JSON */
  memset(&c, 0, sizeof c);
  c.scope = STORE_TRACE_SCOPE_EVENT, c.op = STORE_TRACE_OP_EQ, c.key = "ex:x", c.booleans = 1,
  c.inner = 1;
  assert_int_equal(jcount(f, &c), 1);
  c.booleans = 2;
  assert_int_equal(jcount(f, &c), 0);
  c.op = STORE_TRACE_OP_EXISTS, c.key = "ex:deep";
  assert_int_equal(jcount(f, &c), 1);
  c.inner = 0;
  assert_int_equal(jcount(f, &c), 0);

  /* every scope runs on every shape without an error */
  for (int scope = STORE_TRACE_SCOPE_EVENT; scope < STORE_TRACE_SCOPE_COUNT; scope++)
    for (int inner = 0; inner < 2; inner++) {
      memset(&c, 0, sizeof c);
      c.scope = scope, c.inner = inner, c.op = STORE_TRACE_OP_EQ, c.key = "value";
      c.nums = &four_five, c.nnums = 1, c.strs = lot, c.nstrs = 1, c.booleans = 3;
      assert_true(jcount(f, &c) >= 0);
      c.op = STORE_TRACE_OP_EXISTS;
      assert_true(jcount(f, &c) >= 0);
    }

  /* an EQ without values, a bad op, more values than one statement takes */
  memset(&c, 0, sizeof c);
  c.scope = STORE_TRACE_SCOPE_EVENT, c.op = STORE_TRACE_OP_EQ, c.key = "ex:lot";
  assert_int_equal(jcount(f, &c), PL_EINVAL);
  c.op = 99;
  assert_int_equal(jcount(f, &c), PL_EINVAL);
  static const char *many[3000];
  for (int i = 0; i < 3000; i++)
    many[i] = "v";
  c.op = STORE_TRACE_OP_EQ, c.strs = many, c.nstrs = 3000;
  assert_int_equal(jcount(f, &c), PL_ELIMIT);
}

static void hub_bound(void **state) {
  trace_hub *h;
  assert_int_equal(trace_hub_new(2, &h), 0);
  /* a closed port: deliveries fail and are retried later, so the queue stays occupied */
  int full = 0;
  for (int i = 0; i < 10; i++)
    if (trace_hub_post(h, "http://127.0.0.1:9/", "{}", 2) == PL_ELIMIT)
      full++;
  assert_true(full >= 7);
  assert_int_equal(trace_hub_post(h, "http://127.0.0.1:9/", "{}", TRACE_HUB_BODY_MAX + 1), PL_EINVAL);
  trace_hub_free(h);
  trace_hub_free(NULL);
}


static int count_rows(void *ctx, const store_trace_row *row) {
  (void)row;
  (*(int *)ctx)++;
  return 0;
}

/* A repository made by schema 7 (event ids as text, identifiers in a rowid table) is rebuilt
 * by migration 8 with every event, identifier and share kept, and keyed for deduplication. */
static void migration_8_keeps_events(void **state) {
  (void)state;
  char dir[64] = "/tmp/trace_migration_test.XXXXXX", path[128];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/meta.db", dir);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON", NULL, NULL, NULL), SQLITE_OK);
  for (int v = 1; v <= 7; v++)
    assert_int_equal(sqlite3_exec(db, store__migration(v), NULL, NULL, NULL), SQLITE_OK);
  const char *rows =
      "PRAGMA user_version = 7;"
      "INSERT INTO tenants (id, name, created_ms) VALUES (1, 'maker', 1), (2, 'dist', 1);"
      "INSERT INTO trace_events (id, tenant_id, event_id, type, event_time_ms, record_time_ms, biz_step, doc)"
      " VALUES (1, 1, 'urn:uuid:one', 1, 1000, 2000, 'https://ref.gs1.org/cbv/BizStep-shipping',"
      "         '{\"eventID\":\"urn:uuid:one\",\"type\":\"ObjectEvent\"}'),"
      "        (2, 1, 'urn:uuid:two', 2, 3000, 4000, NULL, '{\"eventID\":\"urn:uuid:two\"}');"
      "INSERT INTO event_epcs (event, role, epc, quantity, uom) VALUES (1, 1, 'https://id.gs1.org/00/1', NULL, NULL),"
      " (2, 2, 'https://id.gs1.org/00/9', NULL, NULL), (2, 3, 'https://id.gs1.org/00/1', NULL, NULL),"
      " (2, 7, 'https://id.gs1.org/01/2/10/L', 24, 'KGM');"
      "INSERT INTO event_shares (event, tenant_id) VALUES (2, 2);";
  char *msg = NULL;
  if (sqlite3_exec(db, rows, NULL, NULL, &msg) != SQLITE_OK)
    fail_msg("%s", msg);
  sqlite3_close(db);

  store *s;
  pl_err err = {{0}};
  assert_int_equal(store_open(path, &s, &err), 0);
  assert_int_equal(store_schema_version(s), store_schema_latest());
  /* identifiers and shares survived: tenant 2 sees the shared event through its identifier */
  const char *v[] = {"https://id.gs1.org/00/1"};
  store_trace_filter f = {0};
  f.viewer = 2;
  f.conds[0] = (store_trace_cond){.field = STORE_TRACE_F_EPC, .roles = 0xffffffffu, .values = v, .nvalues = 1};
  f.nconds = 1;
  int n = 0;
  assert_int_equal(store_trace_query(s, &f, count_rows, &n), 1);
  f.viewer = 1;
  n = 0;
  assert_int_equal(store_trace_query(s, &f, count_rows, &n), 2);
  /* EQ_eventID goes through the new key */
  const char *ids[] = {"urn:uuid:two"};
  memset(&f, 0, sizeof f);
  f.viewer = 1;
  f.conds[0] = (store_trace_cond){.field = STORE_TRACE_F_EVENT_ID, .values = ids, .nvalues = 1};
  f.nconds = 1;
  n = 0;
  assert_int_equal(store_trace_query(s, &f, count_rows, &n), 1);
  /* the old events deduplicate new captures of the same eventID */
  store_trace_event e = {0};
  e.event_id = "urn:uuid:one";
  e.type = 1;
  e.doc = "{}";
  e.doc_len = 2;
  int inserted = -1;
  assert_int_equal(store_begin(s), 0);
  assert_int_equal(store_trace_insert_batch(s, 1, 0, 5000, &e, 1, &inserted), 0);
  assert_int_equal(store_commit(s), 0);
  assert_int_equal(inserted, 0);
  /* the class quantity kept its amount and unit, and deleting the tenant cascades */
  store_close(s);
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT quantity, uom FROM event_epcs WHERE role = 7", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_true(sqlite3_column_double(st, 0) == 24.0);
  assert_string_equal((const char *)sqlite3_column_text(st, 1), "KGM");
  sqlite3_finalize(st);
  assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys=ON; DELETE FROM tenants WHERE id = 1", NULL, NULL, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM event_epcs) + (SELECT count(*) FROM"
                                          " event_shares) + (SELECT count(*) FROM trace_events)",
                                      -1, &st, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(st, 0), 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(capture_dedup_and_query, setup, teardown),
      cmocka_unit_test_setup_teardown(lineage, setup, teardown),
      cmocka_unit_test_setup_teardown(json_conditions, setup, teardown),
      cmocka_unit_test(hub_bound),
      cmocka_unit_test(migration_8_keeps_events),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
