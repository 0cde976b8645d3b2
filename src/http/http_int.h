/* Internals shared by the HTTP server and the API area files. */
#ifndef PLATEAU_HTTP_INT_H
#define PLATEAU_HTTP_INT_H

#include "admin/admin.h"
#include "base/buf.h"
#include "base/json.h"
#include "http/http.h"
#include "http/router.h"
#include "store/store_trace.h"
#include "trace/trace.h"

#include <microhttpd.h>
#include <stdint.h>

typedef struct http_server http_server;

/* One request, from the first header callback to the completion notice. */
typedef struct http_req {
  uint64_t id;
  char id_str[24];
  http_server *srv;
  const http_deps *deps;
  struct MHD_Connection *conn;
  const char *method;
  char path[1024];     /* percent-decoded by libmicrohttpd: for logs and audit details */
  char raw_path[1024]; /* as sent (until '?'), for routing: a capture may hold an encoded '/' */
  int raw_path_ok;
  char remote[64];
  int64_t start_ns;
  pl_buf body;
  int body_too_large;
  http_match match;
  /* set by dispatch */
  int authed;
  auth_principal who;
  char actor[160];
  store *db; /* from the pool for the request's life */
  /* the response */
  int status;
  pl_buf out;
  const char *content_type;
  char allow[128];
  int responded;
  pl_buf headers; /* extra response headers, "Name\0Value\0" pairs (http_add_header) */
} http_req;

typedef int (*http_handler)(http_req *r);

/* Route permissions besides auth_perm values: no token needed, or any valid token. */
#define HTTP_PERM_PUBLIC (-1)
#define HTTP_PERM_ANY (-2)

/* Route tables of the API areas. */
extern const http_route api_session_routes[];
extern const size_t api_session_nroutes;
extern const http_route api_tenant_routes[];
extern const size_t api_tenant_nroutes;
extern const http_route api_user_routes[];
extern const size_t api_user_nroutes;
extern const http_route api_token_routes[];
extern const size_t api_token_nroutes;
extern const http_route api_device_routes[];
extern const size_t api_device_nroutes;
extern const http_route api_audit_routes[];
extern const size_t api_audit_nroutes;
extern const http_route api_telemetry_routes[]; /* POST /api/v1/telemetry */
extern const size_t api_telemetry_nroutes;
extern const http_route api_telemetry_query_routes[]; /* /series, /query, latest */
extern const size_t api_telemetry_query_nroutes;
extern const http_route api_rpc_routes[];
extern const size_t api_rpc_nroutes;
extern const http_route api_influxql_routes[];
extern const size_t api_influxql_nroutes;
extern const http_route api_handle_routes[];
extern const size_t api_handle_nroutes;
extern const http_route api_digital_link_routes[];
extern const size_t api_digital_link_nroutes;
extern const http_route api_influx_routes[];
extern const size_t api_influx_nroutes;
extern const http_route api_epcis_routes[]; /* EPCIS 2.0 REST binding (api_epcis.c) */
extern const size_t api_epcis_nroutes;
extern const http_route api_trace_routes[]; /* lineage, recall, consumer page (api_trace.c) */
extern const size_t api_trace_nroutes;
/* The viewer tenant of a trace read (0: every tenant, for admin and regulator; audited).
 * Replies and returns > 0 on failure. */
int http_epcis_viewer(http_req *r, int64_t *viewer);
/* The InfluxDB-compatible paths (/write, /query, /ping) answer a body over the limit in
 * InfluxDB's shape, {"error":"Request Entity Too Large"} with its headers (api_influx.c). */
/* The token of an InfluxDB-style request, copied into tok: the `p` parameter when given (with
 * or without `u`), else the Authorization header's Bearer, Token ("Token user:token" too) or
 * Basic credentials (the password is the token). 1 when found, 0 when there are none, -1 when
 * the header cannot be read. p is the caller's: /query takes it from the form body too. */
#define HTTP_CREDENTIAL_BYTES_MAX 256
int http_influx_credentials(http_req *r, const char *p, char tok[HTTP_CREDENTIAL_BYTES_MAX]);
int http_influx_path(const char *path);
void http_influx_too_large(http_req *r);

/* ---- EPCIS query parameters (api_epcis_params.c, for api_epcis.c) ---- */
#define EPCIS_PER_PAGE_DEFAULT 100
#define EPCIS_PER_PAGE_MAX 1000
#define EPCIS_VALUES_MAX 100 /* '|'-separated values of one parameter */
/* The values of one condition on the event's JSON, owned by the query. */
typedef struct http_epcis_jstore {
  char key[TRACE_QP_NAME_MAX];
  char *strs[EPCIS_VALUES_MAX * TRACE_VOCAB_FORMS];
  const char *cstrs[EPCIS_VALUES_MAX * TRACE_VOCAB_FORMS];
  double nums[EPCIS_VALUES_MAX];
  int64_t times[EPCIS_VALUES_MAX];
  char with[TRACE_VOCAB_FORMS][TRACE_VOCAB_FORM_MAX];
  const char *cwith[TRACE_VOCAB_FORMS];
  /* a number test in a unit of measure, in every unit of its dimension */
  const char *units[TRACE_UNITS_MAX];
  double num_in[TRACE_UNITS_MAX];
  double nums_in[TRACE_UNITS_MAX * EPCIS_VALUES_MAX];
} http_epcis_jstore;

typedef struct http_epcis_query {
  store_trace_filter f;
  char *values[STORE_TRACE_CONDS_MAX][EPCIS_VALUES_MAX];
  const char *cvalues[STORE_TRACE_CONDS_MAX][EPCIS_VALUES_MAX];
  http_epcis_jstore *js[STORE_TRACE_CONDS_MAX];
  char attrs[STORE_TRACE_CONDS_MAX][129]; /* EQ_ATTR_ attribute names */
  int per_page, count_limit;
  int max_count, has_max_count; /* maxEventCount */
  const char *page_token;
  char error[300];
} http_epcis_query;
/* A query being read: new, then every parameter applied (from the URL with
 * http_epcis_query_cb, from a named query's JSON with http_epcis_query_json); the first bad
 * one leaves its message in error[] (the caller answers 400, or 413 for the too-large kinds). */
http_epcis_query *http_epcis_query_new(void);
void http_epcis_query_free(http_epcis_query *q);
/* Applies one parameter; PL_EINVAL with q->error for a bad or unknown one. */
int http_epcis_query_param(http_epcis_query *q, const char *key, const char *value);
/* Applies a stored query's parameters: {"MATCH_anyEPC": ["a","b"], "eventType": "ObjectEvent"}. */
int http_epcis_query_json(http_epcis_query *q, const json_t *params);
/* For MHD_get_connection_values over the URL's arguments; ctx is the query. */
enum MHD_Result http_epcis_query_cb(void *ctx, enum MHD_ValueKind kind, const char *key, const char *value);
/* A whole decimal number from lo to hi into *out; PL_EINVAL otherwise. */
int http_parse_int_range(const char *v, int lo, int hi, int *out);

/* ---- telemetry (api_telemetry.c, for api_telemetry_query.c too) ---- */
/* A device name as telemetry requests give it: 1 to 127 bytes (store_device's name). */
#define HTTP_DEVICE_NAME_BYTES_MAX 127
/* Replies 503 and returns the status when the time-series engine is not running, else 0. */
int http_tsdb_ready(http_req *r);
/* Replies for an engine error and returns the status: 503 for PL_ESTATE (the engine refuses
 * writes after a durability failure; nothing was stored, and retrying will not help until the
 * daemon is restarted) and PL_EBUSY, else as http_reply_pl. */
int http_reply_tsdb(http_req *r, int rc, const pl_err *err);

/* ---- responses ---- */
/* Sets a JSON response (takes ownership of body, which may be NULL for no body). */
int http_reply_json(http_req *r, int status, json_t *body);
/* Sets the standard error body {"error": {"code", "message"}}; returns status. */
int http_reply_error(http_req *r, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Maps a PL_E* code (with err's message) to the right HTTP error. */
int http_reply_pl(http_req *r, int rc, const pl_err *err);
int http_reply_empty(http_req *r, int status);
/* Adds a response header (e.g. Location, Link, Vary); copied. 0 or PL_ENOMEM. */
int http_add_header(http_req *r, const char *name, const char *value);

/* ---- request helpers ---- */
const char *http_query(http_req *r, const char *key);
const char *http_header(http_req *r, const char *key);
/* Parses the body as a JSON object and checks it against fields; on failure replies 400/415
 * and returns the status (> 0), else 0 with *out a new reference. */
int http_body_json(http_req *r, const pl_json_field *fields, size_t nfields, json_t **out);
/* The numeric path capture i (ids are positive integers); 0 when malformed. */
int64_t http_param_id(http_req *r, int i);
/* limit/after paging parameters; replies 400 and returns > 0 when bad. */
int http_paging(http_req *r, int *limit, int64_t *after);

/* The tenant a request acts on: the caller's own, or ?tenant=NAME for admin and regulator.
 * A read of another tenant by a cross-tenant role is audited as "<area>.read". Replies and
 * returns > 0 on failure (403 for ?tenant= from other roles, 404 unknown tenant). */
int http_tenant(http_req *r, const char *area, store_tenant *out);
/* The time-series namespace (tsdb's tenant_id parameter) of database `db` of tenant tenant_id,
 * the one place where that mapping is made: the tenant's implicit default database (db NULL,
 * "" or "plateau") is the tenant id itself, where device telemetry lands; any other database is
 * STORE_DATABASE_NS_BASE | its id in the databases table. With create, a missing database is
 * created (the caller audits it); without, it is PL_ENOTFOUND, as InfluxDB's /write answers
 * "database not found". Names are 1..127 bytes of UTF-8 without control characters, else
 * PL_EINVAL. Store errors (PL_EBUSY, PL_EIO) pass through. Writes *ns only on success. */
int http_tsdb_ns(http_req *r, int64_t tenant_id, const char *db, int create, int64_t *ns);
/* An admin_ctx for changes made by this request. */
admin_ctx http_admin(http_req *r);
/* Whether the caller may grant role; replies 403 and returns > 0 when not. */
int http_check_grant(http_req *r, const char *role);

/* A page being collected: lists fetch limit + 1 rows so the last page is known. */
typedef struct http_list {
  json_t *items;
  int limit, count;
  int64_t last_id;
} http_list;
void http_list_init(http_list *l, int limit);
/* Adds item (taking it) unless the page is full. Returns 0 or PL_ENOMEM. */
int http_list_add(http_list *l, int64_t id, json_t *item);
/* Replies with the page, or with the error rc (freeing the items). */
int http_list_reply(http_req *r, http_list *l, int rc);

/* Formats ms since the epoch as an RFC 3339 JSON string, or JSON null for 0. */
json_t *http_time_json(int64_t ms);
/* A page {"items": items, "next": "cursor"} (next only when has_more). Takes items. */
json_t *http_page(json_t *items, int has_more, int64_t last_id);

/* Failed-login throttle per client address: 10 failures in 5 minutes closes the window. */
int http_login_allowed(http_req *r);
void http_login_failed(http_req *r);
/* An Argon2id hash of a random password, made at start, to verify unknown users against. */
const char *http_dummy_hash(http_req *r);

#endif
