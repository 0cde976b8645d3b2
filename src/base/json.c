/* JSON parsing with limits and field-table checks (see json.h). */
#include "base/json.h"

#include "base/utf8.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- arenas for jansson (see json.h) ----
 * jansson takes one process-wide pair of allocation functions; the pair installed here serves
 * from this thread's entered arena, else from malloc. free() must tell the two apart: the
 * arena's blocks are few (each twice the last), so a pointer inside one of them is an arena
 * value, and anything else came from malloc. */

#define ARENA_BLOCK_FIRST (256u << 10)
#define ARENA_BLOCKS_MAX 24

struct pl_json_arena {
  unsigned char *block[ARENA_BLOCKS_MAX];
  size_t size[ARENA_BLOCKS_MAX];
  int nblocks;
  size_t used; /* in the last block */
};

static _Thread_local pl_json_arena *arena_current;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;

static void *arena_malloc(size_t n) {
  pl_json_arena *a = arena_current;
  if (!a)
    return malloc(n);
  n = (n + 15) & ~(size_t)15;
  if (a->nblocks == 0 || a->size[a->nblocks - 1] - a->used < n) {
    if (a->nblocks == ARENA_BLOCKS_MAX)
      return malloc(n); /* past 24 doubling blocks (terabytes): not within any body limit */
    size_t size = a->nblocks ? a->size[a->nblocks - 1] * 2 : ARENA_BLOCK_FIRST;
    while (size < n)
      size *= 2;
    unsigned char *b = malloc(size);
    if (!b)
      return NULL;
    a->block[a->nblocks] = b;
    a->size[a->nblocks++] = size;
    a->used = 0;
  }
  void *p = a->block[a->nblocks - 1] + a->used;
  a->used += n;
  return p;
}

static void arena_release(void *p) {
  pl_json_arena *a = arena_current;
  if (a && p) {
    uintptr_t x = (uintptr_t)p;
    for (int i = a->nblocks - 1; i >= 0; i--)
      if (x >= (uintptr_t)a->block[i] && x < (uintptr_t)a->block[i] + a->size[i])
        return;
  }
  free(p);
}

static void arena_install(void) {
  json_set_alloc_funcs(arena_malloc, arena_release);
}

void pl_json_setup(void) {
  pthread_once(&arena_once, arena_install);
}

pl_json_arena *pl_json_arena_new(void) {
  pl_json_setup();
  return calloc(1, sizeof(pl_json_arena));
}

void pl_json_arena_free(pl_json_arena *a) {
  if (!a)
    return;
  for (int i = 0; i < a->nblocks; i++)
    free(a->block[i]);
  free(a);
}

pl_json_arena *pl_json_arena_enter(pl_json_arena *a) {
  pl_json_arena *prev = arena_current;
  arena_current = a;
  return prev;
}

int pl_utf8_valid(const void *data, size_t len) {
  const unsigned char *s = data;
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    if (c == 0) return 0;
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n = pl_utf8_decode(s + i, len - i, NULL);
    if (!n) return 0;
    i += n;
  }
  return 1;
}

/* Depth check before handing the text to jansson, which recurses per level. Counts brackets
 * outside strings; any malformed text is left for the parser to reject. */
static int depth_ok(const char *p, size_t len, int max_depth) {
  int depth = 0, in_str = 0;
  for (size_t i = 0; i < len; i++) {
    char c = p[i];
    if (in_str) {
      if (c == '\\') i++;
      else if (c == '"') in_str = 0;
    } else if (c == '"') {
      in_str = 1;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return 0;
    } else if (c == '}' || c == ']') {
      depth--;
    }
  }
  return 1;
}

int pl_json_parse(const void *data, size_t len, int max_depth, json_t **out, pl_err *err) {
  if (len == 0) return pl_err_set(err, PL_EINVAL, "empty body: a JSON document was expected");
  if (!depth_ok(data, len, max_depth))
    return pl_err_set(err, PL_ELIMIT, "JSON nested deeper than %d levels", max_depth);
  if (!pl_utf8_valid(data, len)) return pl_err_set(err, PL_EINVAL, "body is not valid UTF-8");
  json_error_t je;
  json_t *v = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
  if (!v)
    return pl_err_set(err, PL_EINVAL, "malformed JSON at line %d column %d: %s", je.line, je.column,
                      je.text);
  *out = v;
  return 0;
}

static const char *type_name(pl_json_type t) {
  switch (t) {
  case PL_JSON_STRING: return "a string";
  case PL_JSON_INTEGER: return "an integer";
  case PL_JSON_NUMBER: return "a number";
  case PL_JSON_BOOL: return "a boolean";
  case PL_JSON_OBJECT: return "an object";
  case PL_JSON_ARRAY: return "an array";
  default: return "a value";
  }
}

int pl_json_check(const json_t *obj, const pl_json_field *fields, size_t nfields, pl_err *err) {
  if (!json_is_object(obj)) return pl_err_set(err, PL_EINVAL, "the body must be a JSON object");
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)obj, key, val) {
    const pl_json_field *f = NULL;
    for (size_t i = 0; i < nfields; i++)
      if (strcmp(fields[i].name, key) == 0) f = &fields[i];
    if (!f) return pl_err_set(err, PL_EINVAL, "unknown field \"%.64s\"", key);
    if (json_is_null(val)) {
      if (f->nullable) continue;
      return pl_err_set(err, PL_EINVAL, "field \"%s\" must be %s, not null", f->name, type_name(f->type));
    }
    int ok = 1;
    switch (f->type) {
    case PL_JSON_STRING: ok = json_is_string(val); break;
    case PL_JSON_INTEGER: ok = json_is_integer(val); break;
    case PL_JSON_NUMBER: ok = json_is_number(val); break;
    case PL_JSON_BOOL: ok = json_is_boolean(val); break;
    case PL_JSON_OBJECT: ok = json_is_object(val); break;
    case PL_JSON_ARRAY: ok = json_is_array(val); break;
    case PL_JSON_ANY: break;
    }
    if (!ok) return pl_err_set(err, PL_EINVAL, "field \"%s\" must be %s", f->name, type_name(f->type));
    size_t limit = f->max_len;
    if (f->type == PL_JSON_STRING) {
      if (!limit) limit = 256;
      if (json_string_length(val) > limit)
        return pl_err_set(err, PL_EINVAL, "field \"%s\" is longer than %zu bytes", f->name, limit);
      if (memchr(json_string_value(val), 0, json_string_length(val)))
        return pl_err_set(err, PL_EINVAL, "field \"%s\" contains a NUL character", f->name);
    } else if (f->type == PL_JSON_ARRAY || f->type == PL_JSON_OBJECT) {
      if (!limit) limit = 1000;
      size_t n = json_is_array(val) ? json_array_size(val) : json_object_size(val);
      if (n > limit) return pl_err_set(err, PL_EINVAL, "field \"%s\" has more than %zu elements", f->name, limit);
    }
  }
  for (size_t i = 0; i < nfields; i++) {
    if (!fields[i].required) continue;
    json_t *v = json_object_get(obj, fields[i].name);
    if (!v || json_is_null(v)) return pl_err_set(err, PL_EINVAL, "field \"%s\" is required", fields[i].name);
  }
  return 0;
}

const char *pl_json_str(const json_t *obj, const char *key, const char *dflt) {
  json_t *v = json_object_get(obj, key);
  return json_is_string(v) ? json_string_value(v) : dflt;
}

long long pl_json_int(const json_t *obj, const char *key, long long dflt) {
  json_t *v = json_object_get(obj, key);
  return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

int pl_json_bool(const json_t *obj, const char *key, int dflt) {
  json_t *v = json_object_get(obj, key);
  return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static int dump_cb(const char *buffer, size_t size, void *data) {
  return pl_buf_append(data, buffer, size) < 0 ? -1 : 0;
}

int pl_json_dump(const json_t *v, pl_buf *out) {
  return json_dump_callback(v, dump_cb, out, JSON_COMPACT | JSON_ENCODE_ANY) < 0 ? PL_ENOMEM : 0;
}
