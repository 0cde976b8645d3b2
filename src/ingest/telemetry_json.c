/* JSON telemetry values (see telemetry_json.h). Moved here unchanged from the HTTP telemetry API
 * so that HTTP and MQTT share one decoding. */
#include "ingest/telemetry_json.h"

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
