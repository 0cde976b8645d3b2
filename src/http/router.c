/* Segment-by-segment route matching (see router.h). Tables are small (tens of routes), so a
 * linear scan that compares segments without allocating beats building a trie. */
#include "http/router.h"

#include <stdio.h>
#include <string.h>

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int http_percent_decode(const char *src, size_t len, char *out, size_t outsz) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    char c = src[i];
    if (c == '%') {
      if (len - i < 3) return -1;
      int hi = hexval(src[i + 1]), lo = hexval(src[i + 2]);
      if (hi < 0 || lo < 0) return -1;
      c = (char)(hi << 4 | lo);
      if (c == 0) return -1;
      i += 2;
    }
    if (o + 1 >= outsz) return -1;
    out[o++] = c;
  }
  out[o] = 0;
  return (int)o;
}

/* Matches one route; returns 1 on a path match and fills captures. */
static int match_path(const char *pattern, const char *path, http_match *m) {
  const char *p = pattern, *s = path;
  int np = 0;
  while (*p && *s) {
    if (*p != '/' || *s != '/') return 0;
    p++;
    s++;
    const char *pe = strchr(p, '/'), *se = strchr(s, '/');
    size_t plen = pe ? (size_t)(pe - p) : strlen(p);
    size_t slen = se ? (size_t)(se - s) : strlen(s);
    if (plen >= 2 && p[0] == '{' && p[plen - 1] == '}') {
      if (slen == 0 || np >= HTTP_PARAMS_MAX) return 0;
      if (http_percent_decode(s, slen, m->params[np], HTTP_PARAM_BYTES_MAX) <= 0) return 0;
      np++;
    } else if (plen != slen || memcmp(p, s, plen) != 0) {
      return 0;
    }
    p += plen;
    s += slen;
  }
  if (*p || *s) return 0;
  m->nparams = np;
  return 1;
}

int http_route_match(const http_route *routes, size_t n, const char *method, const char *path, http_match *m) {
  int path_seen = 0;
  size_t alen = 0;
  m->allow[0] = 0;
  const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
  for (size_t i = 0; i < n; i++) {
    if (!match_path(routes[i].pattern, path, m)) continue;
    if (strcmp(routes[i].method, want) == 0) {
      m->route = &routes[i];
      return HTTP_ROUTE_FOUND;
    }
    path_seen = 1;
    if (!strstr(m->allow, routes[i].method)) {
      int w = snprintf(m->allow + alen, sizeof m->allow - alen, "%s%s", alen ? ", " : "", routes[i].method);
      if (w > 0 && alen + (size_t)w < sizeof m->allow) alen += (size_t)w;
    }
  }
  m->route = NULL;
  return path_seen ? HTTP_ROUTE_METHOD : HTTP_ROUTE_NONE;
}
