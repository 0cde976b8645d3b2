/* The byte spans of a captured document's events, and each event's stored text made from its
 * span (see the comment below): a walker over JSON text that pl_json_parse has already checked.
 * Pure; used by epcis.c and fuzzed with it (tests/fuzz/epcis_fuzz.c checks that every stored
 * text is JSON-equal to the parsed event). */
#include "trace/trace_int.h"

#include <stdio.h>
#include <string.h>

/* The stored text of an event is its bytes from the request, not a re-serialisation of the
 * parsed tree: the walker below finds the byte span of each member of the event list in the
 * document, which pl_json_parse has already checked (valid JSON and UTF-8, bounded depth, no
 * duplicate member names -- so the member jansson kept is the only one there is). A span is
 * copied without the whitespace between tokens, with "eventID" put first when it was computed.
 * When the walk does not find the list (a member name written with escapes, say), the events
 * are serialised from the tree instead. */

static size_t skip_ws(const char *p, size_t i, size_t n) {
  while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
    i++;
  return i;
}

/* The index just past the string token starting at p[i] == '"'; *escaped when it has a '\\'. */
static size_t skip_string(const char *p, size_t i, size_t n, int *escaped) {
  for (i++; i < n; i++) {
    if (p[i] == '\\') {
      *escaped = 1;
      i++;
    } else if (p[i] == '"') {
      return i + 1;
    }
  }
  return n;
}

/* The index just past the value starting at p[i]. */
static size_t skip_value(const char *p, size_t i, size_t n) {
  int depth = 0, esc = 0;
  while (i < n) {
    char c = p[i];
    if (c == '"') {
      i = skip_string(p, i, n, &esc);
    } else if (c == '{' || c == '[') {
      depth++;
      i++;
    } else if (c == '}' || c == ']') {
      if (depth == 0)
        return i;
      depth--;
      i++;
    } else if (depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
      return i;
    } else {
      i++;
    }
    if (depth == 0 && (c == '"' || c == '}' || c == ']'))
      return i;
  }
  return n;
}

/* The start of the value of member `key` of the object starting at p[i] == '{', or n. */
static size_t find_member(const char *p, size_t i, size_t n, const char *key) {
  size_t klen = strlen(key);
  if (i >= n || p[i] != '{')
    return n;
  i = skip_ws(p, i + 1, n);
  while (i < n && p[i] == '"') {
    int esc = 0;
    size_t end = skip_string(p, i, n, &esc);
    int match = !esc && end - i - 2 == klen && memcmp(p + i + 1, key, klen) == 0;
    i = skip_ws(p, end, n);
    if (i >= n || p[i] != ':')
      return n;
    i = skip_ws(p, i + 1, n);
    if (match)
      return i;
    i = skip_ws(p, skip_value(p, i, n), n);
    if (i < n && p[i] == ',')
      i = skip_ws(p, i + 1, n);
  }
  return n;
}

/* See trace_int.h. */
int trace__event_spans(const char *p, size_t n, int query_doc, size_t count, size_t *start, size_t *end) {
  size_t i = find_member(p, skip_ws(p, 0, n), n, "epcisBody");
  if (query_doc) {
    i = find_member(p, i, n, "queryResults");
    i = find_member(p, i, n, "resultsBody");
  }
  i = find_member(p, i, n, "eventList");
  if (i >= n || p[i] != '[')
    return -1;
  size_t k = 0;
  i = skip_ws(p, i + 1, n);
  while (i < n && p[i] != ']') {
    if (k == count || p[i] != '{')
      return -1;
    start[k] = i;
    i = skip_value(p, i, n);
    end[k++] = i;
    i = skip_ws(p, i, n);
    if (i < n && p[i] == ',')
      i = skip_ws(p, i + 1, n);
  }
  return k == count ? 0 : -1;
}

/* The stored text of event ev from its span: whitespace between tokens dropped, the computed
 * eventID (id, or NULL) first. Arena memory; NULL when out of memory. */

size_t trace__event_text_bytes(size_t start, size_t end, const char *id) {
  return end - start + (id ? strlen(id) + 14 : 0) + 1;
}

size_t trace__event_text(const char *p, size_t start, size_t end, const char *id, char *out) {
  size_t o = 0, i = start + 1;
  out[o++] = '{';
  if (id)
    o += (size_t)sprintf(out + o, "\"eventID\":\"%s\",", id);
  while (i < end) {
    char c = p[i];
    if (c == '"') {
      int esc = 0;
      size_t e = skip_string(p, i, end, &esc);
      memcpy(out + o, p + i, e - i);
      o += e - i;
      i = e;
    } else {
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
        out[o++] = c;
      i++;
    }
  }
  out[o] = 0;
  return o;
}
