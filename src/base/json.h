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

/* A region for jansson trees that are built and dropped together (an EPCIS capture document:
 * hundreds of thousands of small values). While a thread has entered an arena, jansson's
 * allocations on that thread come from it (bump allocation) and freeing them is a no-op; the
 * memory goes back in one step with pl_json_arena_free. Values allocated outside the arena may
 * still be freed inside it (plain free()).
 * Rules: every change to a tree that frees arena values (json_decref of it, replacing or
 * deleting members) happens while its arena is entered on that thread; nothing the arena
 * allocated outlives pl_json_arena_free; and memory jansson hands to the caller to free() --
 * json_dumps's result -- must not be made inside an arena. */
typedef struct pl_json_arena pl_json_arena;
/* Installs jansson's allocation functions (the arena-aware pair). jansson has one process-wide
 * pair, so this is called once at start, before any thread uses jansson (main() does);
 * pl_json_arena_new calls it too, for programs without that start (tests, benchmarks). */
void pl_json_setup(void);
/* NULL when out of memory. */
pl_json_arena *pl_json_arena_new(void);
/* Frees every block; NULL is a no-op. The arena must not be entered. */
void pl_json_arena_free(pl_json_arena *a);
/* Makes a this thread's allocation arena (NULL: none) and returns the one it replaces. */
pl_json_arena *pl_json_arena_enter(pl_json_arena *a);

/* Validates UTF-8 (no overlongs, no surrogates, no NUL). Returns 1 when valid. */
int pl_utf8_valid(const void *data, size_t len);

#endif
