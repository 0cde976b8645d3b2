/* Decoding of JSON telemetry values, shared by the HTTP telemetry API (POST /api/v1/telemetry)
 * and the MQTT device API (v1/devices/me/telemetry), so a value means the same whichever way it
 * arrives. Pure: no I/O, no allocation. */
#ifndef PLATEAU_INGEST_TELEMETRY_JSON_H
#define PLATEAU_INGEST_TELEMETRY_JSON_H

#include "base/err.h"
#include "tsdb/tsdb.h"

#include <jansson.h>

/* The value of field `name` from JSON v:
 *   a number (integer or real)   -> FLOAT (every JSON number, so 21 and 21.5 never conflict)
 *   true / false                 -> BOOL
 *   a string                     -> STRING, at most TSDB_STRING_BYTES_MAX bytes
 *   {"int": <integer>}           -> INT (an exact 64-bit integer)
 * null and anything else are PL_EINVAL with a message naming "values.<name>". A STRING value
 * borrows its bytes from v, which must outlive *val. *val is written only on success. */
int ingest_json_value(const char *name, json_t *v, tsdb_value *val, pl_err *err);

/* The same decoding straight from the text of one JSON scalar (tok[0..len), no surrounding
 * whitespace), for callers that scan simple payloads without building a jansson tree: a number,
 * true, false, or a string without escapes or control characters (tok includes its quotes; the
 * value borrows the bytes between them). Returns 0 with *val equal to what ingest_json_value
 * gives for the same text, or PL_AGAIN when the token is anything else (null, escapes, an
 * integer past 64 bits, a real out of range, a string over TSDB_STRING_BYTES_MAX, malformed):
 * the caller then decodes the payload with jansson and ingest_json_value, which decide. The
 * bytes must already be valid UTF-8 (pl_utf8_valid). */
int ingest_json_token_value(const char *tok, size_t len, tsdb_value *val);

#endif
