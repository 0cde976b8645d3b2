/* The HTTP router: a table of (method, path pattern, handler) matched segment by segment.
 * Patterns are literal segments and `{name}` captures (one segment each), e.g.
 * "/api/v1/devices/{id}/token". A path that matches a pattern under another method yields
 * HTTP_ROUTE_METHOD so the caller can answer 405 with an Allow header. Pure: no I/O. */
#ifndef PLATEAU_HTTP_ROUTER_H
#define PLATEAU_HTTP_ROUTER_H

#include <stddef.h>

#define HTTP_PARAMS_MAX 6
#define HTTP_PARAM_BYTES_MAX 512

typedef struct http_route {
  const char *method;
  const char *pattern;
  void *handler; /* opaque to the router */
  int perm;      /* opaque to the router: the permission the route needs, or -1 */
  const char *action; /* audit name of the operation, e.g. "device.create" */
} http_route;

typedef struct http_match {
  const http_route *route;
  int nparams;
  char params[HTTP_PARAMS_MAX][HTTP_PARAM_BYTES_MAX]; /* percent-decoded captures */
  char allow[128];                                    /* methods for the path, for 405 */
} http_match;

enum { HTTP_ROUTE_FOUND = 0, HTTP_ROUTE_NONE = 1, HTTP_ROUTE_METHOD = 2 };

/* Matches path (without query string) against routes[0..n). Returns HTTP_ROUTE_FOUND and
 * fills m, HTTP_ROUTE_METHOD (m->allow filled), or HTTP_ROUTE_NONE (also for captures that
 * decode to invalid bytes, are empty, or are too long). HEAD matches GET routes. */
int http_route_match(const http_route *routes, size_t n, const char *method, const char *path, http_match *m);

/* Percent-decodes src[0..len) into out (size outsz, NUL-terminated). Returns the decoded
 * length or -1 on a bad escape, an encoded NUL, or overflow. */
int http_percent_decode(const char *src, size_t len, char *out, size_t outsz);

#endif
