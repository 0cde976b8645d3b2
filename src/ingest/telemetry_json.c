/* JSON telemetry values (see telemetry_json.h). Moved here unchanged from the HTTP telemetry API
 * so that HTTP and MQTT share one decoding. */
#include "ingest/telemetry_json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int ingest_json_value(const char *name, json_t *v, tsdb_value *val, pl_err *err) {
  if (json_is_real(v) || json_is_integer(v)) {
    /* Every JSON number is a float, so 21 and 21.5 for one field never conflict. */
    val->type = TSDB_FLOAT;
    val->v.f = json_number_value(v);
    return 0;
  }
  if (json_is_boolean(v)) {
    val->type = TSDB_BOOL;
    val->v.b = json_is_true(v);
    return 0;
  }
  if (json_is_string(v)) {
    size_t n = json_string_length(v);
    if (n > TSDB_STRING_BYTES_MAX)
      return pl_err_set(err, PL_EINVAL, "values.%.64s: a string value has at most %d bytes (got %zu)", name,
                        TSDB_STRING_BYTES_MAX, n);
    val->type = TSDB_STRING;
    val->v.s = (tsdb_str){json_string_value(v), n};
    return 0;
  }
  if (json_is_object(v)) {
    json_t *i = json_object_get(v, "int");
    if (json_object_size(v) == 1 && json_is_integer(i)) {
      val->type = TSDB_INT;
      val->v.i = (int64_t)json_integer_value(i);
      return 0;
    }
    return pl_err_set(err, PL_EINVAL,
                      "values.%.64s: an object value must be {\"int\": <integer>} (a 64-bit integer)", name);
  }
  if (json_is_null(v))
    return pl_err_set(err, PL_EINVAL, "values.%.64s: null is not a value; leave the field out instead", name);
  return pl_err_set(err, PL_EINVAL, "values.%.64s: must be a number, a boolean, a string or {\"int\": <integer>}",
                    name);
}

/* JSON's number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? ; *is_int when it has
 * neither fraction nor exponent (jansson makes those integers). */
static int json_number(const char *s, size_t len, int *is_int) {
  size_t i = 0;
  if (i < len && s[i] == '-') i++;
  if (i >= len) return 0;
  if (s[i] == '0') {
    i++;
  } else if (s[i] >= '1' && s[i] <= '9') {
    while (i < len && s[i] >= '0' && s[i] <= '9') i++;
  } else {
    return 0;
  }
  *is_int = 1;
  if (i < len && s[i] == '.') {
    *is_int = 0;
    size_t d = ++i;
    while (i < len && s[i] >= '0' && s[i] <= '9') i++;
    if (i == d) return 0;
  }
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    *is_int = 0;
    i++;
    if (i < len && (s[i] == '+' || s[i] == '-')) i++;
    size_t d = i;
    while (i < len && s[i] >= '0' && s[i] <= '9') i++;
    if (i == d) return 0;
  }
  return i == len;
}

int ingest_json_token_value(const char *tok, size_t len, tsdb_value *val) {
  if (!len) return PL_AGAIN;
  if (tok[0] == '"') {
    if (len < 2 || tok[len - 1] != '"') return PL_AGAIN;
    for (size_t i = 1; i + 1 < len; i++)
      if (tok[i] == '\\' || tok[i] == '"' || (unsigned char)tok[i] < 0x20) return PL_AGAIN;
    if (len - 2 > TSDB_STRING_BYTES_MAX) return PL_AGAIN;
    val->type = TSDB_STRING;
    val->v.s = (tsdb_str){tok + 1, len - 2};
    return 0;
  }
  if (len == 4 && memcmp(tok, "true", 4) == 0) {
    val->type = TSDB_BOOL;
    val->v.b = 1;
    return 0;
  }
  if (len == 5 && memcmp(tok, "false", 5) == 0) {
    val->type = TSDB_BOOL;
    val->v.b = 0;
    return 0;
  }
  int is_int = 0;
  char buf[64];
  if (!json_number(tok, len, &is_int) || len >= sizeof buf) return PL_AGAIN;
  memcpy(buf, tok, len);
  buf[len] = 0;
  errno = 0;
  double d;
  if (is_int) {
    /* jansson keeps such a number as a 64-bit integer (refusing one past the range), and
     * ingest_json_value turns it into a float. */
    long long ll = strtoll(buf, NULL, 10);
    if (errno) return PL_AGAIN;
    d = (double)ll;
  } else {
    d = strtod(buf, NULL);
    if (errno) return PL_AGAIN; /* out of range: jansson decides (it refuses overflow) */
  }
  val->type = TSDB_FLOAT;
  val->v.f = d;
  return 0;
}
