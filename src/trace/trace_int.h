/* Internals shared by the files of the trace module (epcis.c, normalise.c). */
#ifndef PLATEAU_TRACE_TRACE_INT_H
#define PLATEAU_TRACE_TRACE_INT_H

#include <stddef.h>

/* Whether s (len bytes) is one of the NULL-terminated list. */
int trace__in_list(const char *const *list, const char *s, size_t len);
/* Whether s has a control character (below 0x20, or DEL). */
int trace__has_control(const char *s);

#endif
