/* Internals shared by the files of the trace module (epcis.c, normalise.c). */
#ifndef PLATEAU_TRACE_TRACE_INT_H
#define PLATEAU_TRACE_TRACE_INT_H

#include <stddef.h>

/* Whether s (len bytes) is one of the NULL-terminated list. */
int trace__in_list(const char *const *list, const char *s, size_t len);
/* Whether s has a control character (below 0x20, or DEL). */
int trace__has_control(const char *s);

/* Fills start[k], end[k] with the byte spans of the first `count` members of the document's
 * event list (epcisBody.eventList, or epcisBody.queryResults.resultsBody.eventList for a query
 * document); 0 when exactly `count` were found, else -1 (serialise from the tree instead). The
 * text must have passed pl_json_parse. */
int trace__event_spans(const char *p, size_t n, int query_doc, size_t count, size_t *start, size_t *end);
/* The stored text of the event spanning p[start, end): whitespace between tokens dropped, the
 * computed eventID (id, or NULL) first; writes it and a NUL into out, which holds
 * trace__event_text_bytes(start, end, id) bytes, and returns its length. */
size_t trace__event_text_bytes(size_t start, size_t end, const char *id);
size_t trace__event_text(const char *p, size_t start, size_t end, const char *id, char *out);

#endif
