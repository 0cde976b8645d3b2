/* EPCIS 2.0 document parsing: every example of the standard parses with no problem, the JSON
 * Schema test inputs that are not capturable are rejected with a message naming the problem,
 * identifiers normalise across URN and Digital Link forms, and the event hash is stable. */
#include "trace/trace.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  if (buf) {
    buf[n] = 0;
    *len = (size_t)n;
  }
  return buf;
}

static const char *testdata(void) {
  const char *t = getenv("PLATEAU_TESTDATA");
  return t ? t : "../shared/testdata";
}

static int parse_tree(const char *dir, int *files, int *events) {
  DIR *d = opendir(dir);
  if (!d)
    return -1;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
      parse_tree(path, files, events);
      continue;
    }
    if (!strstr(e->d_name, ".json"))
      continue;
    size_t len;
    char *text = slurp(path, &len);
    assert_non_null(text);
    trace_doc *doc = NULL;
    pl_err err = {{0}};
    int rc = trace_doc_parse(text, len, TRACE_EVENTS_MAX, &doc, &err);
    if (strcmp(e->d_name, "AssociationEvent-h.jsonld") == 0) {
      /* The example names "eventID" twice in one object: ambiguous JSON, rejected by name. */
      assert_int_equal(rc, PL_EINVAL);
      assert_non_null(strstr(err.msg, "duplicate object key"));
      free(text);
      continue;
    }
    if (rc != 0)
      fail_msg("%s: %s", path, err.msg);
    for (size_t i = 0; i < doc->nproblems; i++)
      print_error("%s: event %d: %s\n", path, doc->problems[i].index, doc->problems[i].message);
    assert_int_equal(doc->nproblems, 0);
    assert_true(doc->nevents > 0);
    for (size_t i = 0; i < doc->nevents; i++) {
      assert_true(doc->events[i].valid);
      assert_true(strlen(doc->events[i].event_id) > 0);
      assert_non_null(doc->events[i].row.doc);
    }
    *files += 1;
    *events += (int)doc->nevents;
    trace_doc_free(doc);
    free(text);
  }
  closedir(d);
  return 0;
}

static void every_example_parses(void **state) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/epcis/JSON", testdata());
  int files = 0, events = 0;
  assert_int_equal(parse_tree(dir, &files, &events), 0);
  assert_true(files >= 40);
  /* SOURCES.md counts 56 events across JSON/ (the query document's events included) */
  assert_int_equal(events, 55); /* 56 less AssociationEvent-h's one */
}

static void schema_test_inputs(void **state) {
  const char *single[] = {"AggregationEvent.json", "AssociationEvent.json", "ObjectEvent.json",
                          "TransformationEvent.json"};
  char path[512];
  for (size_t i = 0; i < 4; i++) {
    snprintf(path, sizeof path, "%s/epcis/JSON-Schema/test/%s", testdata(), single[i]);
    size_t len;
    char *text = slurp(path, &len);
    assert_non_null(text);
    json_t *ev = json_loadb(text, len, 0, NULL);
    assert_non_null(ev);
    trace_doc doc;
    memset(&doc, 0, sizeof doc);
    trace_event te;
    pl_err err = {{0}};
    int rc = trace_event_parse(&doc, ev, &te, &err);
    if (rc)
      fail_msg("%s: %s", single[i], err.msg);
    doc.root = ev;
    doc.events = NULL;
    /* free the arena through a heap copy */
    trace_doc *heap = calloc(1, sizeof *heap);
    *heap = doc;
    trace_doc_free(heap);
    free(text);
  }
  /* not capturable: a custom event type, and JSON Schemas that are not documents */
  const char *bad[] = {"Extended-Event.json", "schemas/sch1.json", "schemas/sch2.json"};
  for (size_t i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/epcis/JSON-Schema/test/%s", testdata(), bad[i]);
    size_t len;
    char *text = slurp(path, &len);
    assert_non_null(text);
    trace_doc *doc = NULL;
    pl_err err = {{0}};
    assert_int_equal(trace_doc_parse(text, len, TRACE_EVENTS_MAX, &doc, &err), PL_EINVAL);
    assert_non_null(strstr(err.msg, "EPCISDocument"));
    json_t *ev = json_loadb(text, len, 0, NULL);
    trace_doc tmp;
    memset(&tmp, 0, sizeof tmp);
    trace_event te;
    assert_int_equal(trace_event_parse(&tmp, ev, &te, &err), PL_EINVAL);
    if (i == 0)
      assert_non_null(strstr(err.msg, "unsupported event type"));
    trace_doc *heap = calloc(1, sizeof *heap);
    *heap = tmp;
    heap->root = ev;
    trace_doc_free(heap);
    free(text);
  }
}

static void normalise(void **state) {
  char a[1100], b[1100];
  assert_true(trace_epc_normalise("urn:epc:id:sgtin:0614141.107346.2017", a, sizeof a) > 0);
  assert_string_equal(a, "https://id.gs1.org/01/10614141073464/21/2017");
  assert_true(trace_epc_normalise("https://example.com/01/10614141073464/21/2017?x=1", b, sizeof b) > 0);
  assert_string_equal(a, b);
  assert_true(trace_epc_normalise("urn:epc:id:sscc:0614141.1234567890", a, sizeof a) > 0);
  assert_string_equal(a, "https://id.gs1.org/00/106141412345678908");
  assert_true(trace_epc_normalise("urn:epc:id:sgln:0614141.00777.0", a, sizeof a) > 0);
  assert_string_equal(a, "https://id.gs1.org/414/0614141007776");
  assert_true(trace_epc_normalise("urn:epc:class:lgtin:4012345.012345.998877", a, sizeof a) > 0);
  assert_string_equal(a, "https://id.gs1.org/01/04012345123456/10/998877");
  assert_true(trace_epc_normalise("urn:epc:idpat:sgtin:4012345.098765.*", a, sizeof a) > 0);
  assert_string_equal(a, "https://id.gs1.org/01/04012345987652*");
  assert_true(trace_epc_normalise("88.118.1/lot-7", a, sizeof a) > 0);
  assert_string_equal(a, "88.118.1/lot-7");
  assert_int_equal(trace_epc_normalise("", a, sizeof a), PL_EINVAL);
  assert_int_equal(trace_epc_normalise("a\nb", a, sizeof a), PL_EINVAL);
  assert_true(trace_vocab_normalise("BizStep", "shipping", a, sizeof a) > 0);
  assert_string_equal(a, "https://ref.gs1.org/cbv/BizStep-shipping");
  assert_true(trace_vocab_normalise("BizStep", "urn:epcglobal:cbv:bizstep:shipping", b, sizeof b) > 0);
  assert_string_equal(a, b);
  assert_int_equal(trace_vocab_normalise("BizStep", "shippin", a, sizeof a), PL_EINVAL);
  assert_true(trace_vocab_normalise("Disp", "https://example.com/my-disp", a, sizeof a) > 0);
}

static void vocabularies(void **state) {
  char a[1100];
  const struct {
    const char *kind, *in, *canonical; /* canonical NULL: PL_EINVAL */
  } cases[] = {
      {"ER", "did_not_occur", "https://ref.gs1.org/cbv/ER-did_not_occur"},
      {"ER", "urn:epcglobal:cbv:er:incorrect_data", "https://ref.gs1.org/cbv/ER-incorrect_data"},
      {"ER", "oops", NULL},
      {"BTT", "po", "https://ref.gs1.org/cbv/BTT-po"},
      {"BTT", "urn:epcglobal:cbv:btt:desadv", "https://ref.gs1.org/cbv/BTT-desadv"},
      {"BTT", "urn:gs1:epcisapp:rail:btt:passage", "urn:gs1:epcisapp:rail:btt:passage"},
      {"BTT", "purchase", NULL},
      {"SDT", "owning_party", "https://ref.gs1.org/cbv/SDT-owning_party"},
      {"SDT", "https://ref.gs1.org/cbv/SDT-location", "https://ref.gs1.org/cbv/SDT-location"},
      {"MT", "Temperature", "https://gs1.org/voc/Temperature"},
      {"MT", "gs1:Temperature", "https://gs1.org/voc/Temperature"},
      {"MT", "https://gs1.org/voc/RelativeHumidity", "https://gs1.org/voc/RelativeHumidity"},
      {"MT", "example:Vibration", "example:Vibration"},
      {"MT", "Temprature", NULL},
      {"Colour", "red", NULL},
      {"Disp", "", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int n = trace_vocab_normalise(cases[i].kind, cases[i].in, a, sizeof a);
    if (!cases[i].canonical) {
      assert_int_equal(n, PL_EINVAL);
      continue;
    }
    assert_true(n > 0);
    assert_string_equal(a, cases[i].canonical);
  }
  char forms[TRACE_VOCAB_FORMS][TRACE_VOCAB_FORM_MAX];
  assert_int_equal(trace_vocab_forms("ER", "urn:epcglobal:cbv:er:did_not_occur", forms), 3);
  assert_string_equal(forms[0], "https://ref.gs1.org/cbv/ER-did_not_occur");
  assert_string_equal(forms[1], "did_not_occur");
  assert_string_equal(forms[2], "urn:epcglobal:cbv:er:did_not_occur");
  assert_int_equal(trace_vocab_forms("MT", "https://gs1.org/voc/Temperature", forms), 3);
  assert_string_equal(forms[1], "Temperature");
  assert_string_equal(forms[2], "gs1:Temperature");
  assert_int_equal(trace_vocab_forms("Disp", "https://example.com/fresh", forms), 1);
  assert_string_equal(forms[0], "https://example.com/fresh");
  assert_int_equal(trace_vocab_forms("Disp", "fresh", forms), PL_EINVAL);
  assert_int_equal(trace_vocab_forms("Disp", "a\tb:c", forms), PL_EINVAL);
  char long_uri[TRACE_VOCAB_FORM_MAX + 10];
  memset(long_uri, 'x', sizeof long_uri - 1);
  memcpy(long_uri, "urn:", 4);
  long_uri[sizeof long_uri - 1] = 0;
  assert_int_equal(trace_vocab_forms("Disp", long_uri, forms), PL_ELIMIT);
}

static void query_param_names(void **state) {
  const struct {
    const char *name;
    int rc, op, scope, inner, value;
    const char *key, *with_key, *with_value;
  } cases[] = {
      {"EQ_quantity", 0, STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_QUANTITY, 0, TRACE_QV_NUMBERS,
       "quantity", NULL, NULL},
      {"LE_quantity_KGM", 0, STORE_TRACE_OP_LE, STORE_TRACE_SCOPE_QUANTITY, 0, TRACE_QV_NUMBER,
       "quantity", "uom", "KGM"},
      {"EQ_value_CEL", 0, STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_SENSOR_REPORT, 0, TRACE_QV_NUMBERS,
       "value", "uom", "CEL"},
      {"GT_sDev_A93", 0, STORE_TRACE_OP_GT, STORE_TRACE_SCOPE_SENSOR_REPORT, 0, TRACE_QV_NUMBER,
       "sDev", "uom", "A93"},
      {"GE_time", 0, STORE_TRACE_OP_GE, STORE_TRACE_SCOPE_SENSOR_ANY, 0, TRACE_QV_TIME, "time",
       NULL, NULL},
      {"EQ_type", 0, STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_SENSOR_REPORT, 0, TRACE_QV_VOCAB, "type",
       NULL, NULL},
      {"EXISTS_errorDeclaration", 0, STORE_TRACE_OP_EXISTS, STORE_TRACE_SCOPE_EVENT, 0,
       TRACE_QV_FLAG, "errorDeclaration", NULL, NULL},
      {"LT_errorDeclarationTime", 0, STORE_TRACE_OP_LT, STORE_TRACE_SCOPE_ERROR_DECLARATION, 0,
       TRACE_QV_TIME, "declarationTime", NULL, NULL},
      {"EQ_bizTransaction_po", 0, STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_BIZ_TRANSACTION, 0,
       TRACE_QV_STRINGS, "bizTransaction", "type", "po"},
      {"EQ_source_urn:example:sdt:x", 0, STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_SOURCE, 0,
       TRACE_QV_IDS, "source", "type", "urn:example:sdt:x"},
      {"EQ_destination_location", 0, STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_DESTINATION, 0,
       TRACE_QV_IDS, "destination", "type", "location"},
      {"EQ_ex:grade", 0, STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_EVENT, 0, TRACE_QV_ANY, "ex:grade",
       NULL, NULL},
      {"GT_INNER_ex:max", 0, STORE_TRACE_OP_GT, STORE_TRACE_SCOPE_EVENT, 1, TRACE_QV_ORDERED,
       "ex:max", NULL, NULL},
      {"EXISTS_INNER_ILMD_ex:farm_2", 0, STORE_TRACE_OP_EXISTS, STORE_TRACE_SCOPE_ILMD, 1,
       TRACE_QV_FLAG, "ex:farm_2", NULL, NULL},
      {"LE_ERROR_DECLARATION_ex:code", 0, STORE_TRACE_OP_LE, STORE_TRACE_SCOPE_ERROR_DECLARATION, 0,
       TRACE_QV_ORDERED, "ex:code", NULL, NULL},
      {"EQ_SENSORMETADATA_ext1:x", 0, STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_SENSOR_METADATA, 0,
       TRACE_QV_ANY, "ext1:x", NULL, NULL},
      {"EQ_INNER_readPoint_ex:lane", 0, STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_READ_POINT, 1,
       TRACE_QV_ANY, "ex:lane", NULL, NULL},
      /* not these parameters */
      {"EQ_bizStep", PL_ENOTFOUND, 0, 0, 0, 0, NULL, NULL, NULL},
      {"colour", PL_ENOTFOUND, 0, 0, 0, 0, NULL, NULL, NULL},
      {"EQ_minValue_CEL", PL_ENOTFOUND, 0, 0, 0, 0, NULL, NULL, NULL},
      {"EXISTS_value_CEL", PL_ENOTFOUND, 0, 0, 0, 0, NULL, NULL, NULL},
      {"GT_bizTransaction_po", PL_ENOTFOUND, 0, 0, 0, 0, NULL, NULL, NULL},
      {"GT_readPoint_ex:dock", PL_ENOTFOUND, 0, 0, 0, 0, NULL, NULL, NULL},
      {"EQ_", PL_ENOTFOUND, 0, 0, 0, 0, NULL, NULL, NULL},
      /* their forms with a bad part */
      {"GE_value_cel", PL_EINVAL, 0, 0, 0, 0, NULL, NULL, NULL},
      {"GE_value_CELSIUS", PL_EINVAL, 0, 0, 0, 0, NULL, NULL, NULL},
      {"GE_value_C", PL_EINVAL, 0, 0, 0, 0, NULL, NULL, NULL},
      {"EQ_bizTransaction_purchase", PL_EINVAL, 0, 0, 0, 0, NULL, NULL, NULL},
      {"EQ_source_", PL_EINVAL, 0, 0, 0, 0, NULL, NULL, NULL},
      {"EQ_source_a b:c", PL_EINVAL, 0, 0, 0, 0, NULL, NULL, NULL},
      {"EQ_ex:", PL_EINVAL, 0, 0, 0, 0, NULL, NULL, NULL},
      {"EQ_:x", PL_EINVAL, 0, 0, 0, 0, NULL, NULL, NULL},
      {"EQ_Ex:x", PL_EINVAL, 0, 0, 0, 0, NULL, NULL, NULL},
      {"EQ_ex:a-b", PL_EINVAL, 0, 0, 0, 0, NULL, NULL, NULL},
      {"EQ_ex:a:b", PL_EINVAL, 0, 0, 0, 0, NULL, NULL, NULL},
      {"EQ_ILMD_ex", PL_ENOTFOUND, 0, 0, 0, 0, NULL, NULL, NULL},
      {"HASATTR_ex:colour", PL_EUNSUPPORTED, 0, 0, 0, 0, NULL, NULL, NULL},
      {"EQ_ATTR_urn:epcglobal:cbv:mda:site_name", PL_EUNSUPPORTED, 0, 0, 0, 0, NULL, NULL, NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    trace_qparam p;
    pl_err err = {{0}};
    int rc = trace_query_param_parse(cases[i].name, &p, &err);
    if (rc != cases[i].rc)
      fail_msg("%s: rc %d, expected %d (%s)", cases[i].name, rc, cases[i].rc, err.msg);
    if (rc == PL_EINVAL && !strstr(err.msg, cases[i].name))
      fail_msg("%s: the message does not name the parameter: %s", cases[i].name, err.msg);
    if (rc)
      continue;
    assert_int_equal(p.op, cases[i].op);
    assert_int_equal(p.scope, cases[i].scope);
    assert_int_equal(p.inner, cases[i].inner);
    assert_int_equal(p.value, cases[i].value);
    assert_string_equal(p.key, cases[i].key);
    if (cases[i].with_key) {
      assert_non_null(p.with_key);
      assert_string_equal(p.with_key, cases[i].with_key);
      assert_string_equal(p.with_value, cases[i].with_value);
    } else {
      assert_null(p.with_key);
    }
  }
  /* a name longer than any field */
  char name[TRACE_QP_NAME_MAX + 16] = "EQ_ex:";
  memset(name + 6, 'a', sizeof name - 7);
  name[sizeof name - 1] = 0;
  trace_qparam p;
  pl_err err;
  assert_int_equal(trace_query_param_parse(name, &p, &err), PL_EINVAL);
}

static int parse_one(const char *text, trace_doc **doc, pl_err *err) {
  return trace_doc_parse(text, strlen(text), TRACE_EVENTS_MAX, doc, err);
}

#define DOC(events)                                                                                \
  "{\"type\":\"EPCISDocument\",\"schemaVersion\":\"2.0\",\"creationDate\":\"2026-01-01T00:00:00Z\","     \
  "\"epcisBody\":{\"eventList\":[" events "]}}"

static void rules_and_hash(void **state) {
  struct {
    const char *ev, *problem;
  } cases[] = {
      {"{\"type\":\"ObjectEvent\",\"eventTime\":\"2026-01-01T00:00:00Z\",\"eventTimeZoneOffset\":\"+00:00\"}",
       "\"action\" is required"},
      {"{\"type\":\"ObjectEvent\",\"action\":\"MOVE\",\"eventTime\":\"2026-01-01T00:00:00Z\",\"eventTimeZoneOffset\":\"+00:00\"}",
       "ADD, OBSERVE or DELETE"},
      {"{\"type\":\"ObjectEvent\",\"action\":\"ADD\",\"eventTime\":\"yesterday\",\"eventTimeZoneOffset\":\"+00:00\"}",
       "eventTime"},
      {"{\"type\":\"ObjectEvent\",\"action\":\"ADD\",\"eventTime\":\"2026-01-01T00:00:00Z\",\"eventTimeZoneOffset\":\"8\"}",
       "eventTimeZoneOffset"},
      {"{\"type\":\"AggregationEvent\",\"action\":\"ADD\",\"eventTime\":\"2026-01-01T00:00:00Z\",\"eventTimeZoneOffset\":\"+00:00\"}",
       "parentID"},
      {"{\"type\":\"TransactionEvent\",\"action\":\"ADD\",\"eventTime\":\"2026-01-01T00:00:00Z\",\"eventTimeZoneOffset\":\"+00:00\"}",
       "bizTransactionList"},
      {"{\"type\":\"ObjectEvent\",\"action\":\"ADD\",\"bizStep\":\"brewing\",\"eventTime\":\"2026-01-01T00:00:00Z\",\"eventTimeZoneOffset\":\"+00:00\"}",
       "business step"},
      {"{\"type\":\"ObjectEvent\",\"action\":\"ADD\",\"colour\":1,\"eventTime\":\"2026-01-01T00:00:00Z\",\"eventTimeZoneOffset\":\"+00:00\"}",
       "namespace prefix"},
      {"{\"type\":\"ObjectEvent\",\"action\":\"ADD\",\"epcList\":[1],\"eventTime\":\"2026-01-01T00:00:00Z\",\"eventTimeZoneOffset\":\"+00:00\"}",
       "epcList"},
      {"{\"type\":\"ObjectEvent\",\"action\":\"ADD\",\"sensorElementList\":[{}],\"eventTime\":\"2026-01-01T00:00:00Z\",\"eventTimeZoneOffset\":\"+00:00\"}",
       "sensorReport"},
      {"{\"type\":\"TransformationEvent\",\"eventTime\":\"2026-01-01T00:00:00Z\",\"eventTimeZoneOffset\":\"+00:00\"}",
       "inputs, outputs"},
  };
  char text[2048];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(text, sizeof text, DOC("%s"), cases[i].ev);
    trace_doc *doc = NULL;
    pl_err err = {{0}};
    assert_int_equal(parse_one(text, &doc, &err), 0);
    assert_int_equal(doc->nproblems, 1);
    if (!strstr(doc->problems[0].message, cases[i].problem))
      fail_msg("case %zu: %s", i, doc->problems[0].message);
    trace_doc_free(doc);
  }
  /* the same event in URN and Digital Link form hashes the same */
  const char *urn = DOC("{\"type\":\"ObjectEvent\",\"action\":\"OBSERVE\",\"bizStep\":\"shipping\","
                        "\"epcList\":[\"urn:epc:id:sgtin:0614141.107346.2018\",\"urn:epc:id:sgtin:0614141.107346.2017\"],"
                        "\"eventTime\":\"2026-01-01T08:00:00+08:00\",\"eventTimeZoneOffset\":\"+08:00\"}");
  const char *dl = DOC("{\"eventTimeZoneOffset\":\"+08:00\",\"type\":\"ObjectEvent\",\"action\":\"OBSERVE\","
                       "\"bizStep\":\"https://ref.gs1.org/cbv/BizStep-shipping\",\"epcList\":["
                       "\"https://id.gs1.org/01/10614141073464/21/2017\",\"https://id.gs1.org/01/10614141073464/21/2018\"],"
                       "\"eventTime\":\"2026-01-01T00:00:00.000Z\"}");
  trace_doc *a = NULL, *b = NULL;
  pl_err err = {{0}};
  assert_int_equal(parse_one(urn, &a, &err), 0);
  assert_int_equal(parse_one(dl, &b, &err), 0);
  assert_int_equal(a->nvalid, 1);
  assert_string_equal(a->events[0].event_id, b->events[0].event_id);
  assert_non_null(strstr(a->events[0].event_id, "ni:///sha-256;"));
  assert_string_equal(a->events[0].row.biz_step, "https://ref.gs1.org/cbv/BizStep-shipping");
  trace_doc_free(a);
  trace_doc_free(b);
  /* The hash is pinned: an eventID computed once must be computed the same by every later
   * version, or recaptured events would no longer deduplicate (nested lists and objects, an
   * extension, a CBV name and URNs in one event). */
  const char *pinned = DOC("{\"type\":\"ObjectEvent\",\"action\":\"OBSERVE\",\"bizStep\":\"shipping\","
                           "\"epcList\":[\"urn:epc:id:sgtin:0614141.107346.2018\",\"urn:epc:id:sgtin:0614141.107346.2017\"],"
                           "\"eventTime\":\"2026-01-01T08:00:00+08:00\",\"eventTimeZoneOffset\":\"+08:00\", \"example:x\": "
                           "{\"b\": [3, 1, {\"z\": 1, \"a\": [\"q\", \"p\"]}], \"a\": 1.5}}");
  assert_int_equal(parse_one(pinned, &a, &err), 0);
  assert_string_equal(a->events[0].event_id,
                      "ni:///sha-256;b7866e4bf251d50441166365f3f352d4e2a57c464182f1fc7a47aff0c324e1fb?ver=CBV2.0");
  /* the stored text is the event's own bytes, compacted, with the computed eventID first */
  assert_non_null(strstr(a->events[0].row.doc, "{\"eventID\":\"ni:///sha-256;b7866e4b"));
  assert_non_null(strstr(a->events[0].row.doc, "\"example:x\":{\"b\":[3,1,{\"z\":1,\"a\":[\"q\",\"p\"]}],\"a\":1.5}}"));
  trace_doc_free(a);
  /* limits and document-level errors */
  assert_int_equal(parse_one("[1,2]", &a, &err), PL_EINVAL);
  assert_int_equal(parse_one("{\"type\":\"EPCISDocument\"}", &a, &err), PL_EINVAL);
  assert_int_equal(parse_one(DOC("{},{}"), &a, &err), 0);
  assert_int_equal(a->nproblems, 2);
  trace_doc_free(a);
  assert_int_equal(trace_doc_parse(DOC("{},{}"), strlen(DOC("{},{}")), 1, &a, &err), PL_ELIMIT);
  char deep[400];
  memset(deep, '[', 200);
  memset(deep + 200, ']', 200);
  assert_true(trace_doc_parse(deep, 400, 10, &a, &err) < 0);
}

/* Units of one dimension: 20 CEL is 293.15 KEL and 68 FAH exactly as a document writes them;
 * a unit outside the table has no alternatives. */
static void unit_alternatives(void **state) {
  (void)state;
  const char *codes[TRACE_UNITS_MAX];
  double xs[TRACE_UNITS_MAX];
  int n = trace_unit_alternatives("CEL", 20, codes, xs, TRACE_UNITS_MAX);
  assert_int_equal(n, 3);
  for (int i = 0; i < n; i++) {
    if (strcmp(codes[i], "KEL") == 0)
      assert_true(xs[i] == 293.15);
    else if (strcmp(codes[i], "FAH") == 0)
      assert_true(xs[i] == 68);
    else
      assert_true(strcmp(codes[i], "CEL") == 0 && xs[i] == 20);
  }
  n = trace_unit_alternatives("KGM", 5, codes, xs, TRACE_UNITS_MAX);
  assert_int_equal(n, 5);
  assert_string_equal(codes[1], "GRM");
  assert_true(xs[1] == 5000);
  assert_int_equal(trace_unit_alternatives("XYZ", 5, codes, xs, TRACE_UNITS_MAX), 0);
  assert_int_equal(trace_unit_alternatives("CEL", 5, codes, xs, 1), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_example_parses),
      cmocka_unit_test(unit_alternatives),
      cmocka_unit_test(schema_test_inputs),
      cmocka_unit_test(normalise),
      cmocka_unit_test(vocabularies),
      cmocka_unit_test(query_param_names),
      cmocka_unit_test(rules_and_hash),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
