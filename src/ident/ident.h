/* The identifier resolution node: the registry (prefix tree, tenant ownership, typed values,
 * reserved types, templates, bulk registration, statistics) and resolution (local, cached,
 * recursive to parent or peer nodes), shared by the Handle protocol server (ident_server_*),
 * the HTTP APIs and the CLI. Other faces of the module: ident/handle_codec.h (wire codec),
 * ident/digital_link.h (GS1 Digital Link), ident/label.h (QR labels).
 *
 * Threads: an `ident` engine is thread-safe (its cache and counters have their own locks);
 * every call that reads or writes the registry takes the caller's store connection, so each
 * thread uses its own (the HTTP pool's, the Handle server's, the CLI's).
 */
#ifndef PLATEAU_IDENT_IDENT_H
#define PLATEAU_IDENT_IDENT_H

#include "auth/auth.h"
#include "base/buf.h"
#include "base/config.h"
#include "base/err.h"
#include "ident/handle_codec.h"
#include "store/store.h"

#include <jansson.h>
#include <stdint.h>

#define IDENT_PREFIX_MAX 127   /* bytes of a prefix */
#define IDENT_HANDLE_MAX 1024  /* bytes of a whole handle */
#define IDENT_VALUES_MAX 1000  /* values of one identifier */
#define IDENT_DATA_MAX 65536   /* bytes of one value's data */
#define IDENT_BULK_MAX 1000000 /* rows of one bulk registration */
#define IDENT_TTL_DEFAULT 86400

/* The engine (cache, counters, background jobs); see "resolution" below. */
typedef struct ident ident;

/* ---- names ---- */

/* A prefix: dot-separated segments of ASCII letters, digits, '-' and '_' (e.g. "88.118.7"),
 * at most IDENT_PREFIX_MAX bytes; "0" and "0.*" (the global service's) are refused. */
int ident_check_prefix(const char *prefix, pl_err *err);
/* A handle: "PREFIX/SUFFIX" with a valid prefix, a non-empty suffix of UTF-8 without control
 * characters, at most IDENT_HANDLE_MAX bytes. */
int ident_check_handle(const char *handle, size_t len, pl_err *err);
/* Bytes before the first '/', or len when there is none. */
size_t ident_prefix_len(const char *handle, size_t len);
/* The UTC day number (days since the epoch) of ms. */
int64_t ident_day(int64_t ms);

/* ---- values (Handle.net REST JSON <-> wire encoding) ---- */

/* Encodes a JSON array of values in the Handle.net REST shape
 *   {"index": 1, "type": "URL", "data": {"format": "string"|"base64"|"hex"|"admin",
 *    "value": ...} | "text", "ttl": 86400, "restricted": false, "references": [...]}
 * into out (appending the encoded value list) and *nvalues. Checks indexes (1..2^31, unique),
 * types, data sizes and the reserved types' syntax (HS_ADMIN, URL, EMAIL, HS_ALIAS, HS_SITE,
 * HS_SERV, HS_VLIST, HS_PUBKEY, HS_SECKEY, HS_NA_DELEGATE, GS1). Timestamps are set to now_s.
 * PL_EINVAL with a message naming the value. */
int ident_values_from_json(const json_t *values, uint32_t now_s, pl_buf *out, uint32_t *nvalues,
                           pl_err *err);
/* One value as Handle.net REST JSON (new reference; NULL on out of memory). */
json_t *ident_value_to_json(const hdl_value *v);

/* ---- templates ---- */

/* Checks a template's field list: [{"name": "GTIN", "required": true, "format":
 * "text"|"integer"|"date"|"gtin"|"url"|"email"}, ...] (1..100 fields). */
int ident_template_check_fields(const json_t *fields, pl_err *err);
/* Validates values against a template's fields (JSON text): each required field must be the
 * type of a value, and present fields must match their format. */
int ident_template_validate(const char *fields_json, hdl_str values, uint32_t nvalues, pl_err *err);

/* ---- registry operations (validation, store, audit in one place for API and CLI) ---- */

typedef struct ident_ctx {
  store *db;
  auth_audit *audit; /* NULL: not audited (tests) */
  const char *actor;
  const char *source; /* "api" | "cli" */
  const char *remote;
} ident_ctx;

/* Allocates prefix to tenant_id. The parent is the longest held ancestor; unless
 * allow_any_parent (the regional admin), a prefix must sit under one of the tenant's own.
 * PL_EEXIST when taken, PL_EPERM when the parent is another tenant's. */
int ident_prefix_create(ident_ctx *c, int64_t tenant_id, const char *prefix, int allow_any_parent,
                        store_prefix *out, pl_err *err);
int ident_prefix_delete(ident_ctx *c, const store_prefix *p, pl_err *err);

enum { IDENT_PUT_UPSERT = 0, IDENT_PUT_CREATE = 1, IDENT_PUT_REPLACE = 2 };
/* Creates or replaces an identifier of tenant_id from JSON values, validated against the named
 * template (NULL or "" for none). Ownership: the handle's prefix must be held here (else
 * PL_ENOTFOUND) and the tenant's (else PL_EPERM). Writes *created. Audited as ident.create or
 * ident.update. */
int ident_handle_put(ident_ctx *c, int64_t tenant_id, const char *handle, const char *template_name,
                     const json_t *values, int mode, int *created, pl_err *err);
int ident_handle_delete(ident_ctx *c, int64_t tenant_id, const char *handle, pl_err *err);
/* Maintains the GS1 key index for a handle from its GS1 values (inside the caller's
 * transaction). */
int ident_gs1_index(store *db, int64_t handle_id, hdl_str values, uint32_t nvalues, pl_err *err);

/* Bulk registration: rows are added one by one inside one transaction; a bad row is
 * rejected (and reported) without stopping the others; finish commits what was accepted.
 * A row is a JSON object {"handle", "template"?, "values"?: [...], "fields"?: {"TYPE":
 * "text", ...}} (fields become string values with indexes from 1), or, from CSV, the
 * columns of a header line "handle,TYPE,TYPE,...". */
typedef struct ident_bulk ident_bulk;
typedef struct ident_bulk_report {
  int64_t rows, accepted, rejected;
  json_t *errors; /* [{"row": n, "handle": "...", "error": "..."}], at most 1000 kept */
} ident_bulk_report;
int ident_bulk_begin(ident_ctx *c, int64_t tenant_id, const char *template_name, ident_bulk **out,
                     pl_err *err);
/* 0 accepted, PL_EINVAL/PL_EPERM/PL_EEXIST/PL_ENOTFOUND rejected (recorded), other codes are
 * failures that abort the bulk (then call ident_bulk_abort). */
int ident_bulk_add_json(ident_bulk *b, const json_t *row);
/* A CSV line (without the newline). The first line given is the header. */
int ident_bulk_add_csv(ident_bulk *b, const char *line, size_t len);
/* Commits and fills *report (the caller json_decref()s report->errors). Frees b. */
int ident_bulk_finish(ident_bulk *b, ident_bulk_report *report, pl_err *err);
void ident_bulk_abort(ident_bulk *b);
int64_t ident_bulk_rows(const ident_bulk *b);

enum { IDENT_BULK_CSV = 1, IDENT_BULK_JSONL = 2, IDENT_BULK_JSON = 3 };
/* Adds every row of a request body: CSV lines (the first the header), JSON lines, or a JSON
 * document {"template"?, "rows": [...]}. A malformed JSON line is a rejected row. progress, when
 * not NULL, is called with the bytes consumed every 1000 rows. Returns 0 (rejected rows are in
 * the report) or a failure: PL_EINVAL for a body that cannot be read at all (a CSV header
 * without "handle", a JSON document that is not {"rows": [...]}), with a message; a store
 * failure that aborts the bulk (then call ident_bulk_abort). */
int ident_bulk_add_body(ident_bulk *b, int format, const uint8_t *data, size_t len,
                        void (*progress)(void *ctx, size_t bytes_done), void *ctx, pl_err *err);

/* Bulk registration in the background, for print runs a client wants to follow: the job runs
 * on a thread of its own with its own store connection (opened on db_path) and is audited as
 * the synchronous one is. The engine keeps the last 64 jobs; ident_free waits for running ones.
 * ident_bulk_submit takes ownership of body (malloc'ed) and copies the strings. */
typedef struct ident_bulk_job_opts {
  const char *db_path;
  auth_audit *audit;
  const char *actor, *source, *remote;
  int64_t tenant_id;
  const char *template_name; /* NULL or "" for none */
  int format;                /* IDENT_BULK_* */
} ident_bulk_job_opts;
int ident_bulk_submit(ident *id, const ident_bulk_job_opts *o, uint8_t *body, size_t len,
                      int64_t *job_id, pl_err *err);
/* The job's state as JSON {"id", "state": "running"|"done"|"failed", "rows", "accepted",
 * "rejected", "bytes_done", "bytes_total", "seconds", "errors" (when done), "message" (when
 * failed)}; NULL when tenant_id has no such job. A new reference. */
json_t *ident_bulk_job_json(ident *id, int64_t tenant_id, int64_t job_id);

/* ---- resolution ---- */

typedef struct ident_opts {
  const char *parents; /* "HOST:PORT,HOST:PORT" asked in order for prefixes not held */
  int cache_max;       /* entries of the resolution cache (0 disables it) */
  int64_t cache_ttl_max_ns;
  int64_t negative_ttl_ns;
  int recursion_max;          /* the recursion count past which requests are refused */
  int64_t timeout_ns;         /* per upstream query */
  const char *gs1_dictionary; /* syntax dictionary file; NULL or "": the built-in one */
  const char *site_address;   /* address announced by GET_SITEINFO; NULL or "": the listener's */
} ident_opts;

/* Fills opts from the configuration table's handle_* options. */
void ident_opts_from_config(const pl_config *cfg, ident_opts *o);
int ident_new(const ident_opts *o, ident **out, pl_err *err);
void ident_free(ident *id);
/* The GS1 syntax dictionary Digital Link is validated against (ident/digital_link.h). */
const struct dl_dict *ident_gs1_dict(const ident *id);
/* This node's site information (hdl_siteinfo_encode), set by the Handle server when it starts
 * (copied): the HS_SITE value of the prefix handles "0.NA/PREFIX" this node answers for the
 * prefixes it holds, as a Handle client looks them up to find where a prefix is served. */
void ident_set_siteinfo(ident *id, const uint8_t *p, size_t n);
/* The announced site address as 16 bytes (IPv4 in the last four); 0 when one is configured,
 * PL_ENOTFOUND when not. */
int ident_site_address(const ident *id, uint8_t out[16]);

typedef struct ident_query {
  hdl_str handle;
  const uint32_t *indexes;
  uint32_t nindexes;
  const hdl_str *types; /* a trailing '.' matches subtypes */
  uint32_t ntypes;
  int public_only;
  int64_t reader_tenant; /* sees restricted values of its own identifiers; 0: anonymous */
  int recursion_count;   /* of the request being answered (0 from HTTP) */
  int no_recursion;      /* answer from this node only */
} ident_query;

typedef struct ident_result {
  uint32_t rc; /* HDL_RC_SUCCESS, _HANDLE_NOT_FOUND, _VALUE_NOT_FOUND, _SERVER_NOT_RESP, ... */
  uint32_t nvalues;
  pl_buf values;     /* encoded, filtered value list (caller frees with ident_result_free) */
  int64_t tenant_id; /* owner when local */
  int64_t ttl_s;     /* for caching by our callers (HTTP Cache-Control) */
  char source[96];   /* "local", "cache", or "HOST:PORT" of the node that answered */
  char message[160]; /* for errors */
} ident_result;
void ident_result_init(ident_result *r);
void ident_result_free(ident_result *r);

/* Resolves locally, then from the cache, then (unless no_recursion) from the parents in
 * order. Blocks for upstream queries up to the timeout each. Returns 0 with res->rc set (an
 * unsuccessful resolution is a result, not an error), or a PL_E* failure of this node. */
int ident_resolve(ident *id, store *db, const ident_query *q, ident_result *res);
/* The non-blocking part: local and cache only. Returns 1 when answered, 0 when only the
 * parents could answer (then call ident_resolve from a thread that may block). */
int ident_resolve_nonblocking(ident *id, store *db, const ident_query *q, ident_result *res);
/* Counts resolutions for the statistics (kept in memory, written by ident_stats_flush). */
void ident_stats_count(ident *id, int64_t prefix_id, int found);
int ident_stats_flush(ident *id, store *db);
/* Cache counters, for logs and tests. */
void ident_cache_stats(ident *id, int64_t *entries, int64_t *hits, int64_t *misses);

/* ---- a Handle protocol client (CLI and recursion) ---- */

/* Resolves handle at hostport ("HOST:PORT", "[V6]:PORT") over UDP (reassembling chunks) or
 * TCP, waiting at most timeout_ns. On success res->rc is the server's response code, values
 * are encoded in res->values, and res->source is hostport. Errors: PL_ETIMEDOUT, PL_EIO,
 * PL_EINVAL (a malformed reply). */
int ident_client_resolve(const char *hostport, int tcp, hdl_str handle, const hdl_request_opts *o,
                         int64_t timeout_ns, ident_result *res, pl_err *err);
/* GET_SITEINFO: the site information bytes into out. */
int ident_client_siteinfo(const char *hostport, int tcp, int64_t timeout_ns, pl_buf *out,
                          pl_err *err);

/* ---- the Handle protocol server ---- */

typedef struct ident_server ident_server;
/* Binds UDP and TCP on listen ("[::]:2641" dual-stack) and starts the server thread, which
 * owns both sockets, its TCP connections, a store connection of its own (opened on db_path)
 * and a small pool of resolver threads for recursive queries (whose answers come back to the
 * server thread through a queue and an eventfd). http_port is announced in GET_SITEINFO. */
int ident_server_start(ident *id, const char *db_path, const char *listen, int http_port,
                       ident_server **out, pl_err *err);
int ident_server_port(const ident_server *s);
/* Stops the thread (it flushes the statistics first) and frees. NULL is a no-op. */
void ident_server_stop(ident_server *s);

#endif
