/* JSON glue over jansson: bounded parsing of outside input and strict checking of request
 * objects against a field table (unknown fields, wrong types, lengths), so every API rejects
 * bad input the same way. */
#ifndef PLATEAU_BASE_JSON_H
#define PLATEAU_BASE_JSON_H

#include "base/buf.h"
#include "base/err.h"

#include <jansson.h>
#include <stddef.h>

#define PL_JSON_DEPTH_MAX 64

/* Parses len bytes (not NUL-terminated necessarily) as one JSON value. Rejects nesting deeper
 * than max_depth, invalid UTF-8, trailing garbage and NUL characters in strings. On success
 * *out is a new reference the caller owns. Errors: PL_EINVAL (message in err), PL_ELIMIT for
 * depth. */
int pl_json_parse(const void *data, size_t len, int max_depth, json_t **out, pl_err *err);

typedef enum {
  PL_JSON_STRING = 1,
  PL_JSON_INTEGER,
  PL_JSON_NUMBER, /* integer or real */
  PL_JSON_BOOL,
  PL_JSON_OBJECT,
  PL_JSON_ARRAY,
  PL_JSON_ANY,
} pl_json_type;

typedef struct pl_json_field {
  const char *name;
  pl_json_type type;
  int required;
  size_t max_len; /* strings: max bytes (0 = 256); arrays/objects: max elements (0 = 1000) */
  int nullable;   /* JSON null accepted (meaning "unset") */
} pl_json_field;

/* Checks that obj is an object holding only the listed fields, each of its type and within
 * its limit, and that required ones are present. Returns 0 or PL_EINVAL with a message naming
 * the field. */
int pl_json_check(const json_t *obj, const pl_json_field *fields, size_t nfields, pl_err *err);

/* Accessors returning a default when absent or null. */
const char *pl_json_str(const json_t *obj, const char *key, const char *dflt);
long long pl_json_int(const json_t *obj, const char *key, long long dflt);
int pl_json_bool(const json_t *obj, const char *key, int dflt);

/* Serialises v compactly into out (appending). */
int pl_json_dump(const json_t *v, pl_buf *out);

/* Validates UTF-8 (no overlongs, no surrogates, no NUL). Returns 1 when valid. */
int pl_utf8_valid(const void *data, size_t len);

#endif
