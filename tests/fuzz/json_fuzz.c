/* Fuzz target: JSON request decoding as the API does it — bounded parse (depth, UTF-8,
 * duplicates) then the strict field check — plus percent-decoding and route matching of the
 * first line as a path. Anything accepted must also re-serialise. */
#include "base/json.h"
#include "http/router.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const pl_json_field device_fields[] = {
    {"name", PL_JSON_STRING, 1, 127, 0},    {"type", PL_JSON_STRING, 0, 63, 1},
    {"vendor", PL_JSON_STRING, 0, 127, 1},  {"firmware", PL_JSON_STRING, 0, 63, 1},
    {"attributes", PL_JSON_OBJECT, 0, 200, 1}, {"count", PL_JSON_INTEGER, 0, 0, 1},
    {"on", PL_JSON_BOOL, 0, 0, 1},          {"tags", PL_JSON_ARRAY, 0, 10, 1},
};

static const http_route routes[] = {
    {"GET", "/api/v1/devices/{id}", (void *)1, 0, "a"},
    {"POST", "/api/v1/devices/{id}/token", (void *)2, 0, "b"},
    {"GET", "/api/handles/{prefix}/{suffix}", (void *)3, 0, "c"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  json_t *v = NULL;
  pl_err err;
  if (pl_json_parse(data, size, PL_JSON_DEPTH_MAX, &v, &err) == 0) {
    (void)pl_json_check(v, device_fields, sizeof device_fields / sizeof device_fields[0], &err);
    pl_buf out;
    pl_buf_init(&out, 0);
    if (pl_json_dump(v, &out) < 0) abort();
    /* What we print we must be able to read back. */
    json_t *again = NULL;
    if (pl_json_parse(out.data, out.len, PL_JSON_DEPTH_MAX + 1, &again, &err) != 0) abort();
    if (!json_equal(v, again)) abort();
    json_decref(again);
    pl_buf_free(&out);
    json_decref(v);
  }
  char path[2048];
  size_t n = size < sizeof path - 1 ? size : sizeof path - 1;
  memcpy(path, data, n);
  path[n] = 0;
  http_match m;
  (void)http_route_match(routes, 3, "GET", path, &m);
  return 0;
}
