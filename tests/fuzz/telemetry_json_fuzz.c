/* Fuzz target: the telemetry value decoders shared by HTTP and MQTT. The fast token path must
 * agree with the jansson path on every token it accepts (bit for bit), and neither may crash. */
#include "base/json.h"
#include "ingest/telemetry_json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int same(const tsdb_value *a, const tsdb_value *b) {
  if (a->type != b->type) return 0;
  switch (a->type) {
  case TSDB_FLOAT: return memcmp(&a->v.f, &b->v.f, sizeof a->v.f) == 0;
  case TSDB_INT: return a->v.i == b->v.i;
  case TSDB_BOOL: return !a->v.b == !b->v.b;
  case TSDB_STRING: return a->v.s.len == b->v.s.len && memcmp(a->v.s.p, b->v.s.p, a->v.s.len) == 0;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  pl_err err;
  /* As a whole payload: {"k": v, ...} decoded value by value. */
  json_t *doc = NULL;
  if (pl_json_parse(data, size, PL_JSON_DEPTH_MAX, &doc, &err) == 0) {
    if (json_is_object(doc)) {
      const char *k;
      json_t *v;
      json_object_foreach(doc, k, v) {
        tsdb_value val;
        (void)ingest_json_value(k, v, &val, &err);
      }
    }
    json_decref(doc);
  }
  /* As one scalar token: the fast path must agree with jansson whenever it answers. */
  if (!pl_utf8_valid(data, size)) return 0;
  tsdb_value fast;
  if (ingest_json_token_value((const char *)data, size, &fast) == 0) {
    json_t *v = NULL;
    if (pl_json_parse(data, size, 4, &v, &err) != 0) abort(); /* accepted what is not JSON */
    tsdb_value slow;
    if (ingest_json_value("x", v, &slow, &err) != 0) abort();
    if (!same(&fast, &slow)) abort();
    json_decref(v);
  }
  return 0;
}
