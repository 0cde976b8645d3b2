/* The HTTP server: libmicrohttpd on its own thread pool (epoll), the router, authentication,
 * limits, and the API areas (one api_<area>.c each). Handlers call engines only through their
 * thread-safe APIs and take a database connection from the pool per request. */
#ifndef PLATEAU_HTTP_HTTP_H
#define PLATEAU_HTTP_HTTP_H

#include "auth/auth.h"
#include "base/config.h"
#include "base/err.h"
#include "store/store.h"
#include "tsdb/tsdb.h"

typedef struct http_deps {
  const pl_config *cfg;  /* borrowed; outlives the server */
  store_pool *pool;      /* borrowed */
  auth_audit *audit;     /* borrowed */
  tsdb *tsdb;            /* borrowed; the time-series engine */
  struct ident *ident;   /* borrowed; the identifier resolution engine (ident/ident.h) */
  struct mqtt_server *mqtt; /* borrowed; the MQTT server (mqtt/mqtt.h), NULL when disabled */
  struct trace_hub *trace_hub; /* borrowed; EPCIS subscription webhooks (trace/trace.h), NULL: none */
} http_deps;

typedef struct http_server http_server;

/* Starts serving on listen ("HOST:PORT"); deps are copied (the pointers in it are borrowed).
 * Returns 0 and *out, or an error with a message (address in use, bad address). */
int http_server_start(const http_deps *deps, const char *listen, http_server **out, pl_err *err);
/* The bound port (useful with port 0). */
int http_server_port(const http_server *s);
/* Stops accepting, finishes in-flight requests, frees. NULL is a no-op. */
void http_server_stop(http_server *s);

#endif
