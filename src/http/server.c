/* libmicrohttpd glue: listener, limits, request life cycle, dispatch through the router with
 * authentication, and one log line per request.
 *
 * Request life cycle (MHD calls on_request repeatedly for one request):
 *   1st call: headers are in. Allocate the http_req, check Content-Length against the body
 *             limit (413 at once when over).
 *   next calls: body bytes; appended to a bounded buffer (413 when it overflows).
 *   last call (*upload_data_size == 0 after the first): dispatch and queue the response.
 *   completion: on_completed logs the line and frees the request.
 */
#include "http/http_int.h"

#include "base/clock.h"
#include "base/log.h"
#include "base/map.h"
#include "base/net.h"
#include "base/version.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOGIN_WINDOW_MS (5 * 60 * 1000)
#define LOGIN_FAILURES_MAX 10
#define LOGIN_TRACKED_MAX 10000

struct http_server {
  struct MHD_Daemon *mhd;
  http_deps deps;
  int fd;
  int port;
  atomic_uint_fast64_t next_id;
  http_route *routes;
  size_t nroutes;
  pthread_mutex_t login_lock;
  pl_map *login_failures; /* address -> login_window */
  char dummy_hash[AUTH_HASH_STR_MAX]; /* verified against for unknown users */
};

typedef struct login_window {
  int64_t start_ms;
  int failures;
} login_window;

static int healthz(http_req *r) {
  json_t *body = json_pack("{s:s, s:s}", "status", "ok", "version", PLATEAU_VERSION);
  return http_reply_json(r, 200, body);
}

static const http_route base_routes[] = {
    {"GET", "/healthz", (void *)healthz, HTTP_PERM_PUBLIC, "health.read"},
};

static int append_routes(http_server *s, const http_route *routes, size_t n) {
  http_route *grown = realloc(s->routes, (s->nroutes + n) * sizeof *grown);
  if (!grown) return PL_ENOMEM;
  memcpy(grown + s->nroutes, routes, n * sizeof *routes);
  s->routes = grown;
  s->nroutes += n;
  return 0;
}

/* ---- the failed-login throttle ---- */

const char *http_dummy_hash(http_req *r) {
  return r->srv->dummy_hash;
}

int http_login_allowed(http_req *r) {
  http_server *s = r->srv;
  int64_t now = pl_now_ms();
  int allowed = 1;
  pthread_mutex_lock(&s->login_lock);
  login_window *w = pl_map_get(s->login_failures, r->remote, strlen(r->remote));
  if (w && now - w->start_ms < LOGIN_WINDOW_MS && w->failures >= LOGIN_FAILURES_MAX) allowed = 0;
  pthread_mutex_unlock(&s->login_lock);
  return allowed;
}

void http_login_failed(http_req *r) {
  http_server *s = r->srv;
  int64_t now = pl_now_ms();
  pthread_mutex_lock(&s->login_lock);
  login_window *w = pl_map_get(s->login_failures, r->remote, strlen(r->remote));
  if (!w) {
    if (pl_map_count(s->login_failures) >= LOGIN_TRACKED_MAX) {
      /* Forget expired windows; if all are live, the table stays bounded by refusing to track
       * more addresses (their failures still cost an Argon2id verification each). */
      size_t it = 0;
      const void *k;
      size_t kl;
      void *v;
      char *expired[64];
      size_t ne = 0;
      while (ne < 64 && pl_map_next(s->login_failures, &it, &k, &kl, &v))
        if (now - ((login_window *)v)->start_ms >= LOGIN_WINDOW_MS) expired[ne++] = strndup(k, kl);
      for (size_t i = 0; i < ne; i++) {
        if (expired[i]) free(pl_map_del(s->login_failures, expired[i], strlen(expired[i])));
        free(expired[i]);
      }
    }
    if (pl_map_count(s->login_failures) < LOGIN_TRACKED_MAX && (w = calloc(1, sizeof *w))) {
      if (pl_map_put(s->login_failures, r->remote, strlen(r->remote), w, NULL) < 0) {
        free(w);
        w = NULL;
      }
    }
  }
  if (w) {
    if (now - w->start_ms >= LOGIN_WINDOW_MS) {
      w->start_ms = now;
      w->failures = 0;
    }
    w->failures++;
  }
  pthread_mutex_unlock(&s->login_lock);
}

/* ---- dispatch ---- */

static int authenticate(http_req *r) {
  const char *h = http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
  if (!h) return http_reply_error(r, 401, "this endpoint needs a token: send Authorization: Bearer <token>");
  if (strncasecmp(h, "Bearer ", 7) != 0)
    return http_reply_error(r, 401, "the Authorization header must be \"Bearer <token>\"");
  const char *token = h + 7;
  while (*token == ' ') token++;
  int rc = auth_authenticate(r->db, token, pl_now_ms(), &r->who);
  if (rc == PL_EBUSY) return http_reply_error(r, 503, "the database is busy; retry shortly");
  if (rc < 0) return http_reply_error(r, 401, "the token is unknown, expired or revoked");
  r->authed = 1;
  auth_principal_actor(&r->who, r->actor, sizeof r->actor);
  return 0;
}

static void dispatch(http_req *r) {
  http_server *s = r->srv;
  /* Routes match the path as sent, so that a captured segment may contain an encoded '/'
   * (EPCIS event ids, Digital Link URIs as EPCs); the router decodes each capture. */
  int found = http_route_match(s->routes, s->nroutes, r->method, r->raw_path_ok ? r->raw_path : r->path, &r->match);
  if (found == HTTP_ROUTE_NONE) {
    http_reply_error(r, 404, "no such endpoint: %s %s", r->method, r->path);
    return;
  }
  if (found == HTTP_ROUTE_METHOD) {
    snprintf(r->allow, sizeof r->allow, "%s", r->match.allow);
    http_reply_error(r, 405, "%s is not allowed here; allowed: %s", r->method, r->match.allow);
    return;
  }
  if (r->body_too_large) {
    if (http_influx_path(r->path)) http_influx_too_large(r);
    else http_reply_error(r, 413, "the request body is larger than %lld bytes", (long long)s->deps.cfg->http_max_body_bytes);
    return;
  }
  const http_route *route = r->match.route;
  r->db = store_pool_get(s->deps.pool);
  if (route->perm != HTTP_PERM_PUBLIC) {
    if (authenticate(r) > 0) return;
    if (route->perm >= 0 && !auth_can(r->who.role, (auth_perm)route->perm)) {
      if (strcmp(r->method, "GET") != 0) {
        admin_ctx c = http_admin(r);
        admin_audit(&c, r->who.tenant_id, route->action, r->path, "denied", "role may not do this");
      }
      http_reply_error(r, 403, "the %s role may not do this (%s)", auth_role_name(r->who.role), route->action);
      return;
    }
  }
  ((http_handler)route->handler)(r);
}

int http_add_header(http_req *r, const char *name, const char *value) {
  size_t mark = r->headers.len;
  if (pl_buf_append(&r->headers, name, strlen(name) + 1) < 0 || pl_buf_append(&r->headers, value, strlen(value) + 1) < 0) {
    r->headers.len = mark;
    return PL_ENOMEM;
  }
  return 0;
}

static enum MHD_Result queue(http_req *r) {
  struct MHD_Response *resp;
  if (!r->responded) http_reply_error(r, 500, "the request was not answered");
  size_t len = 0;
  uint8_t *body = pl_buf_steal(&r->out, &len);
  resp = MHD_create_response_from_buffer(len, body ? body : (uint8_t *)"", body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
  if (!resp) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "X-Request-Id", r->id_str);
  if (len || r->content_type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type ? r->content_type : "application/json");
  if (r->allow[0]) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
  for (size_t off = 0; off < r->headers.len;) { /* http_add_header pairs */
    const char *name = (const char *)r->headers.data + off, *value = name + strlen(name) + 1;
    MHD_add_response_header(resp, name, value);
    off += strlen(name) + strlen(value) + 2;
  }
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
  *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4;
  return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  http_server *s = cls;
  http_req *r = *con_cls;
  if (!r || !r->srv) {
    /* on_uri allocated it with the raw path; the rest is set up now. */
    if (!r && !(r = calloc(1, sizeof *r))) return MHD_NO;
    r->srv = s;
    r->deps = &s->deps;
    r->conn = conn;
    r->method = method;
    r->start_ns = pl_mono_ns();
    r->id = atomic_fetch_add(&s->next_id, 1) + 1;
    snprintf(r->id_str, sizeof r->id_str, "%llu", (unsigned long long)r->id);
    snprintf(r->path, sizeof r->path, "%s", url);
    pl_buf_init(&r->body, (size_t)s->deps.cfg->http_max_body_bytes);
    pl_buf_init(&r->out, 0);
    pl_buf_init(&r->headers, 65536);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    pl_net_addr_str(ci ? ci->client_addr : NULL, r->remote, sizeof r->remote);
    *con_cls = r;
    /* The request line and headers are measured here, against the documented limit, so the
     * answer is the JSON error of every other refusal; libmicrohttpd's own (larger) memory
     * limit only catches what is far beyond it. */
    size_t header_bytes = strlen(url) + strlen(method) + 16;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &header_bytes);
    if (header_bytes > (size_t)s->deps.cfg->http_max_header_bytes) {
      r->body_too_large = 1;
      http_reply_error(r, 431, "the request line and headers are larger than %lld bytes",
                       (long long)s->deps.cfg->http_max_header_bytes);
      return queue(r);
    }
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > (unsigned long long)s->deps.cfg->http_max_body_bytes) {
      r->body_too_large = 1;
      if (http_influx_path(r->path)) http_influx_too_large(r);
      else http_reply_error(r, 413, "the request body is larger than %lld bytes",
                            (long long)s->deps.cfg->http_max_body_bytes);
      return queue(r);
    }
    return MHD_YES;
  }
  if (*upload_data_size) {
    if (!r->body_too_large && pl_buf_append(&r->body, upload_data, *upload_data_size) < 0) {
      r->body_too_large = 1;
      pl_buf_free(&r->body);
    }
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (r->responded) return MHD_YES;
  dispatch(r);
  return queue(r);
}

/* Called by libmicrohttpd with the request URI as sent, before it decodes it; what it returns
 * becomes the request's context (on_request completes it). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
  http_req *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  size_t n = strcspn(uri, "?");
  if (n < sizeof r->raw_path) {
    memcpy(r->raw_path, uri, n);
    r->raw_path[n] = 0;
    r->raw_path_ok = 1;
  }
  return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
  http_server *s = cls;
  http_req *r = *con_cls;
  if (!r) return;
  if (!r->srv) { /* the request ended before its headers were complete */
    free(r);
    *con_cls = NULL;
    return;
  }
  char path[200];
  PL_LOG(PL_LOG_INFO, "http", "req=%s remote=%s method=%s path=%s status=%d bytes_in=%zu ms=%.3f%s%s", r->id_str,
         r->remote, r->method, pl_log_quote(r->path, path, sizeof path), r->status, r->body.len,
         (double)(pl_mono_ns() - r->start_ns) / 1e6, r->authed ? " actor=" : "", r->authed ? r->actor : "");
  if (r->db) store_pool_put(s->deps.pool, r->db);
  pl_buf_free(&r->body);
  pl_buf_free(&r->out);
  pl_buf_free(&r->headers);
  free(r);
  *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  char msg[512], quoted[600];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = 0;
  PL_LOG(PL_LOG_DEBUG, "http", "mhd=%s", pl_log_quote(msg, quoted, sizeof quoted));
}

int http_server_start(const http_deps *deps, const char *listen, http_server **out, pl_err *err) {
  http_server *s = calloc(1, sizeof *s);
  if (!s) return PL_ENOMEM;
  s->deps = *deps;
  pthread_mutex_init(&s->login_lock, NULL);
  s->login_failures = pl_map_new();
  int rc = s->login_failures ? 0 : PL_ENOMEM;
  if (rc == 0) {
    char pw[32];
    auth_password_generate(pw);
    rc = auth_password_hash(pw, s->dummy_hash);
  }
  const struct {
    const http_route *r;
    size_t n;
  } areas[] = {{base_routes, sizeof base_routes / sizeof base_routes[0]},
               {api_session_routes, api_session_nroutes},
               {api_tenant_routes, api_tenant_nroutes},
               {api_user_routes, api_user_nroutes},
               {api_token_routes, api_token_nroutes},
               {api_device_routes, api_device_nroutes},
               {api_audit_routes, api_audit_nroutes},
               {api_telemetry_routes, api_telemetry_nroutes},
               {api_telemetry_query_routes, api_telemetry_query_nroutes},
               {api_rpc_routes, api_rpc_nroutes},
               {api_influxql_routes, api_influxql_nroutes},
               {api_influx_routes, api_influx_nroutes},
               {api_handle_routes, api_handle_nroutes},
               {api_digital_link_routes, api_digital_link_nroutes},
               {api_epcis_routes, api_epcis_nroutes},
               {api_trace_routes, api_trace_nroutes}};
  for (size_t i = 0; i < sizeof areas / sizeof areas[0] && rc == 0; i++) rc = append_routes(s, areas[i].r, areas[i].n);
  if (rc < 0) {
    http_server_stop(s);
    return pl_err_set(err, rc, "out of memory");
  }
  s->fd = pl_net_listen(listen, SOCK_STREAM, 1024, err);
  if (s->fd < 0) {
    rc = s->fd;
    s->fd = -1;
    http_server_stop(s);
    return rc;
  }
  s->port = pl_net_local_port(s->fd);
  const pl_config *cfg = deps->cfg;
  unsigned timeout_s = (unsigned)(cfg->http_timeout_ns / 1000000000);
  s->mhd = MHD_start_daemon(
      MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_TURBO, 0, NULL, NULL, on_request, s,
      MHD_OPTION_LISTEN_SOCKET, s->fd, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->http_max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
      timeout_s ? timeout_s : 1, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->http_max_header_bytes * 8 + 65536,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
      MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
      MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
  if (!s->mhd) {
    close(s->fd);
    s->fd = -1;
    http_server_stop(s);
    return pl_err_set(err, PL_EIO, "cannot start the HTTP server on %s", listen);
  }
  *out = s;
  return 0;
}

int http_server_port(const http_server *s) {
  return s->port;
}

void http_server_stop(http_server *s) {
  if (!s) return;
  if (s->mhd) MHD_stop_daemon(s->mhd);
  else if (s->fd >= 0) close(s->fd);
  if (s->login_failures) {
    size_t it = 0;
    const void *k;
    size_t kl;
    void *v;
    while (pl_map_next(s->login_failures, &it, &k, &kl, &v)) free(v);
    pl_map_free(s->login_failures);
  }
  pthread_mutex_destroy(&s->login_lock);
  free(s->routes);
  free(s);
}
