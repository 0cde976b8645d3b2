/* The metadata database: SQLite in WAL mode, versioned forward migrations, and the only place
 * in Plateau where SQL is written.
 *
 * A `store` is one connection. SQLite wants one connection per thread: the HTTP layer keeps a
 * pool (store_pool) and each CLI command opens its own. Every function that touches tenant
 * data takes the tenant id as a parameter and scopes its SQL by it; passing tenant_id 0 means
 * "all tenants" only where a comment says so (admin and regulator views).
 *
 * Strings in the row structs are NUL-terminated and truncated to their buffers on read; the
 * API layer bounds their lengths before writing (names <= 63/127 bytes, see the structs).
 * Errors: PL_ENOTFOUND, PL_EEXIST (unique name taken), PL_EBUSY (database locked past the
 * busy timeout), PL_EIO, PL_ENOMEM.
 */
#ifndef PLATEAU_STORE_STORE_H
#define PLATEAU_STORE_STORE_H

#include "base/err.h"

#include <stddef.h>
#include <stdint.h>

typedef struct store store;

/* Opens (creating if needed, mode 0600) the database at path, sets WAL mode with
 * synchronous=FULL, a 5 s busy timeout and foreign keys, and applies pending migrations in one
 * BEGIN IMMEDIATE transaction (safe when several processes open at once). PL_ECONFLICT when the
 * file's schema is newer than this program's. */
int store_open(const char *path, store **out, pl_err *err);
void store_close(store *s);
int store_schema_version(store *s);
/* The schema version this build migrates to (the number of migrations it knows). */
int store_schema_latest(void);

/* Explicit transactions (BEGIN IMMEDIATE) for multi-statement changes. store_begin returns
 * PL_EBUSY when another connection holds the write lock past the busy timeout. Rolling back
 * with no transaction open is a no-op. */
int store_begin(store *s);
int store_commit(store *s);
int store_rollback(store *s);
/* Whether a transaction is open on this connection. */
int store_in_transaction(store *s);

/* A thread-safe pool of connections to one database file, handed out one per request. */
typedef struct store_pool store_pool;
int store_pool_new(const char *path, int size, store_pool **out, pl_err *err);
void store_pool_free(store_pool *p); /* every connection must have been put back */
store *store_pool_get(store_pool *p);          /* blocks until a connection is free */
/* A connection put back inside a transaction is rolled back first. */
void store_pool_put(store_pool *p, store *s);

/* Lists: rows with id > after_id in id order, at most limit (limit <= 0: no limit); the
 * callback returns 0 to go on or a negative code to stop (which the list returns). The list
 * returns the number of rows. The row passed to the callback is borrowed for the call only. The
 * callback may call other store functions on the same connection.
 *
 * Strings written from the row structs must be NUL-terminated within their buffers, else
 * PL_EINVAL. Creating a row whose tenant (or token user) does not exist: PL_ENOTFOUND. A value a
 * CHECK constraint refuses (an unknown role or token kind, an empty name, attributes that are
 * not JSON): PL_EINVAL. Updates and deletes of a row that does not exist in the given tenant:
 * PL_ENOTFOUND. */

/* ---- tenants ---- */
typedef struct store_tenant {
  int64_t id;
  char name[64];          /* unique, [a-z0-9][a-z0-9-]* */
  char display_name[256];
  char prefecture[64];
  char industry[64];
  int64_t created_ms;
  int retention_days; /* time-series data older than this is dropped; 0 keeps it for ever */
} store_tenant;
typedef int (*store_tenant_cb)(void *ctx, const store_tenant *t);

int store_tenant_create(store *s, store_tenant *t); /* writes t->id, t->created_ms */
int store_tenant_get(store *s, int64_t id, store_tenant *out);
int store_tenant_get_by_name(store *s, const char *name, store_tenant *out);
/* By id: display_name, prefecture, industry, retention_days. */
int store_tenant_update(store *s, const store_tenant *t);
/* Deletes the tenant and every row that belongs to it (users, tokens, devices). Audit records
 * are kept: the log is append-only. */
int store_tenant_delete(store *s, int64_t id);
int store_tenant_list(store *s, int64_t after_id, int limit, store_tenant_cb cb, void *ctx);

/* ---- databases (InfluxDB's `db`; store/database.c) ----
 * A tenant's named time-series databases. Their data lives in the time-series engine under the
 * namespace STORE_DATABASE_NS_BASE | id; the tenant's implicit default database, "plateau", has
 * no row and uses the tenant id as its namespace (http_tsdb_ns decides, in one place). Ids are
 * never reused (AUTOINCREMENT), so a new database can never inherit a deleted one's data. */
#define STORE_DATABASE_NS_BASE (INT64_C(1) << 40)

typedef struct store_database {
  int64_t id;
  int64_t tenant_id;
  char name[128]; /* unique within the tenant, 1..127 bytes */
  int64_t created_ms;
} store_database;
typedef int (*store_database_cb)(void *ctx, const store_database *d);

/* d->tenant_id must exist (PL_ENOTFOUND); PL_EEXIST when the tenant has the name already.
 * Writes d->id and d->created_ms. */
int store_database_create(store *s, store_database *d);
int store_database_get_by_name(store *s, int64_t tenant_id, const char *name, store_database *out);
/* tenant_id 0: a database of any tenant (for the server's maintenance sweep). */
int store_database_get(store *s, int64_t tenant_id, int64_t id, store_database *out);
/* A tenant's databases in id order (tenant_id 0: every tenant's). */
int store_database_list(store *s, int64_t tenant_id, int64_t after_id, int limit,
                        store_database_cb cb, void *ctx);
int store_database_delete(store *s, int64_t tenant_id, int64_t id);

/* ---- users ---- */
typedef struct store_user {
  int64_t id;
  int64_t tenant_id;
  char name[128];          /* unique across the platform (it is the login name) */
  char display_name[256];
  char role[16];           /* admin|regulator|tenant-admin|operator|viewer */
  char password_hash[128]; /* Argon2id string from auth_password_hash */
  int disabled;
  int64_t created_ms;
} store_user;
typedef int (*store_user_cb)(void *ctx, const store_user *u);

/* role must be one of the five user roles; u->tenant_id must exist. */
int store_user_create(store *s, store_user *u); /* writes u->id, u->created_ms */
int store_user_get(store *s, int64_t tenant_id, int64_t id, store_user *out); /* tenant_id 0: any */
int store_user_get_by_name(store *s, const char *name, store_user *out);      /* for login */
/* Updates display_name, role, password_hash, disabled of the user (id, tenant_id). */
int store_user_update(store *s, const store_user *u);
int store_user_delete(store *s, int64_t tenant_id, int64_t id); /* also deletes its tokens */
int store_user_list(store *s, int64_t tenant_id, int64_t after_id, int limit, store_user_cb cb, void *ctx);

/* ---- tokens (API tokens and login sessions) ---- */
typedef struct store_token {
  int64_t id;
  int64_t tenant_id;
  int64_t user_id;   /* 0 when the token is not a user's (created by the CLI for a role) */
  char kind[16];     /* "api" | "session" */
  char name[128];    /* what the holder calls it */
  char prefix[16];   /* the visible start of the token, e.g. "plt_AbCd1234" shown in lists */
  uint8_t hash[32];  /* BLAKE2b-256 of the whole token; the token itself is never stored */
  char role[16];
  int64_t created_ms;
  int64_t expires_ms;   /* 0: never */
  int64_t last_used_ms; /* 0: never */
  int64_t revoked_ms;   /* 0: live */
} store_token;
typedef int (*store_token_cb)(void *ctx, const store_token *t);

/* kind "api" or "session"; a non-zero user_id must be a user of t->tenant_id (else
 * PL_ENOTFOUND); the hash must be unique (else PL_EEXIST). */
int store_token_create(store *s, store_token *t); /* writes t->id, t->created_ms */
int store_token_get_by_hash(store *s, const uint8_t hash[32], store_token *out);
int store_token_get(store *s, int64_t tenant_id, int64_t id, store_token *out);
/* Revoking a revoked token succeeds and keeps the first revocation time. */
int store_token_revoke(store *s, int64_t tenant_id, int64_t id, int64_t now_ms);
/* Records use at most once a minute per token, to keep reads cheap. */
int store_token_touch(store *s, int64_t id, int64_t now_ms);
/* Lists tokens of a tenant (user_id 0: all of the tenant's; else that user's). Sessions are
 * included only when include_sessions is set. */
int store_token_list(store *s, int64_t tenant_id, int64_t user_id, int include_sessions, int64_t after_id,
                     int limit, store_token_cb cb, void *ctx);

/* ---- devices ---- */
typedef struct store_device {
  int64_t id;
  int64_t tenant_id;
  char name[128];      /* unique within the tenant */
  char type[64];
  char vendor[128];
  char product[128];
  char firmware[64];
  char location[256];
  char *attributes_json; /* a JSON object as text, owned by the struct: store_device_clear frees it */
  char token_prefix[16];
  uint8_t token_hash[32];
  int64_t created_ms;
  int64_t updated_ms;
  int64_t last_seen_ms; /* 0: never */
} store_device;
typedef int (*store_device_cb)(void *ctx, const store_device *d);

/* Getters allocate out->attributes_json: clear the struct before reusing it for another get.
 * A device passed to a list callback is freed after the callback returns. An all-zero
 * token_hash means "no token" (stored as NULL, never found by store_device_get_by_token_hash). */
void store_device_clear(store_device *d); /* frees attributes_json */
/* attributes_json NULL stores "{}"; the struct's strings and attributes are copied. */
int store_device_create(store *s, store_device *d); /* writes d->id, created_ms, updated_ms */
int store_device_get(store *s, int64_t tenant_id, int64_t id, store_device *out);
int store_device_get_by_name(store *s, int64_t tenant_id, const char *name, store_device *out);
int store_device_get_by_token_hash(store *s, const uint8_t hash[32], store_device *out);
/* Updates the name, descriptive fields and attributes of (id, tenant_id), and updated_ms.
 * attributes_json NULL leaves the attributes unchanged. PL_EEXIST when the new name is taken. */
int store_device_update(store *s, const store_device *d);
/* Replaces the device's token (the old one stops working at once); hash NULL or all zero
 * removes it. */
int store_device_set_token(store *s, int64_t tenant_id, int64_t id, const char *prefix, const uint8_t hash[32]);
int store_device_touch(store *s, int64_t tenant_id, int64_t id, int64_t now_ms);
int store_device_delete(store *s, int64_t tenant_id, int64_t id);
int store_device_list(store *s, int64_t tenant_id, int64_t after_id, int limit, store_device_cb cb, void *ctx);

/* ---- audit records (append-only; the hash chain is computed by auth/) ---- */
typedef struct store_audit {
  int64_t seq;           /* 1, 2, 3, ... assigned by store_audit_insert */
  int64_t ts_ms;
  char actor[160];       /* "user:dolkar", "token:plt_AbCd1234", "cli", "device:pump-1" */
  int64_t tenant_id;     /* tenant acted on (0: platform-wide) */
  char action[64];       /* "tenant.create", "device.token.rotate", "audit.read", ... */
  char target[256];      /* "device:12", "tenant:spring-water" */
  char result[16];       /* "ok" | "denied" | "error" */
  char detail[512];
  char source[16];       /* "api" | "cli" */
  char remote[64];       /* client address for the API */
  uint8_t prev_hash[32];
  uint8_t hash[32];
} store_audit;
typedef int (*store_audit_cb)(void *ctx, const store_audit *a);

typedef struct store_audit_filter {
  int64_t tenant_id; /* 0: all tenants */
  const char *actor; /* NULL: any; exact match */
  const char *action_prefix; /* NULL: any; e.g. "device." */
  int64_t since_ms, until_ms; /* since_ms <= ts_ms < until_ms; 0: unbounded */
  int64_t after_seq;
  int limit;
  int descending;  /* newest first; after_seq then means "seq < after_seq" when non-zero */
} store_audit_filter;

/* The newest record's seq and hash (seq 0 and a zero hash when the log is empty). */
int store_audit_last(store *s, int64_t *seq, uint8_t hash[32]);
/* Inserts rec with seq = last + 1 (writes rec->seq). Call inside store_begin/commit together
 * with store_audit_last so the chain cannot fork. When rec->seq is non-zero on entry (the caller
 * hashed it), it must equal last + 1, else PL_ECONFLICT and nothing is inserted. */
int store_audit_insert(store *s, store_audit *rec);
int store_audit_list(store *s, const store_audit_filter *f, store_audit_cb cb, void *ctx);
/* Every record in seq order, for verification. */
int store_audit_scan(store *s, store_audit_cb cb, void *ctx);

/* ---- counts for the regional overview ---- */
typedef struct store_counts {
  int64_t tenants, users, devices, devices_seen_24h, tokens_live;
} store_counts;
/* devices_seen_24h: last_seen_ms within 24 h before now_ms; tokens_live: API tokens and
 * sessions neither revoked nor expired at now_ms. With a tenant_id, tenants is 1 (or 0). */
int store_counts_get(store *s, int64_t tenant_id /* 0: all */, int64_t now_ms, store_counts *out);

/* ---- identifiers (the registry of ident/; store/ident.c) ----
 * Prefixes form a tree (parent_id: the longest held ancestor, 0 for none); each belongs to a
 * tenant. A handle "PREFIX/SUFFIX" belongs to the tenant of its prefix; its values are kept as
 * the Handle wire encoding of the value list (see ident/handle_codec.h). Names compare ASCII
 * case-insensitively. */
typedef struct store_prefix {
  int64_t id;
  int64_t tenant_id;
  char prefix[128];
  int64_t parent_id; /* 0: none held */
  int64_t created_ms;
} store_prefix;
typedef int (*store_prefix_cb)(void *ctx, const store_prefix *p);

/* PL_EEXIST when the prefix is taken; writes p->id and created_ms. */
int store_prefix_create(store *s, store_prefix *p);
int store_prefix_get(store *s, const char *prefix, size_t len, store_prefix *out);
/* PL_ECONFLICT while identifiers exist under it. */
int store_prefix_delete(store *s, int64_t tenant_id, int64_t id);
/* tenant_id 0: all tenants. */
int store_prefix_list(store *s, int64_t tenant_id, int64_t after_id, int limit, store_prefix_cb cb, void *ctx);

typedef struct store_handle {
  int64_t id;
  int64_t tenant_id;
  int64_t prefix_id;
  const char *handle; /* borrowed: NUL-terminated, at most 1024 bytes */
  const char *template_name; /* borrowed; "" or NULL for none */
  uint32_t nvalues;
  const uint8_t *values; /* borrowed encoded value list */
  size_t values_len;
  int64_t created_ms, updated_ms;
} store_handle;
/* The row passed to a callback, and its strings and values, are valid during the call only. */
typedef int (*store_handle_cb)(void *ctx, const store_handle *h);

/* Inserts (PL_EEXIST when the handle exists); writes h->id, created_ms, updated_ms. */
int store_handle_create(store *s, store_handle *h);
/* Replaces template and values of the tenant's handle (PL_ENOTFOUND otherwise). */
int store_handle_update(store *s, store_handle *h);
/* Calls cb once with the handle's row, or returns PL_ENOTFOUND. The lookup of resolution:
 * one cached indexed statement; cb's return value is returned. */
int store_handle_lookup(store *s, const char *handle, size_t len, store_handle_cb cb, void *ctx);
int store_handle_delete(store *s, int64_t tenant_id, const char *handle);
/* The tenant's handles (prefix_id 0: under every prefix), id order. */
int store_handle_list(store *s, int64_t tenant_id, int64_t prefix_id, int64_t after_id, int limit,
                      store_handle_cb cb, void *ctx);
int64_t store_handle_count(store *s, int64_t tenant_id /* 0: all */);

/* GS1 key index of Digital Link: key (a canonical path such as "/01/09506000134352/10/A1")
 * to handle. Keys are unique platform-wide (PL_EEXIST when another handle holds it). */
int store_gs1_put(store *s, const char *key, int64_t handle_id);
int store_gs1_clear(store *s, int64_t handle_id);
/* Looks key up and calls cb with its handle row. PL_ENOTFOUND when absent. */
int store_gs1_lookup(store *s, const char *key, store_handle_cb cb, void *ctx);

/* Metadata templates: fields_json is a JSON array (copied). */
typedef struct store_template {
  int64_t id;
  int64_t tenant_id;
  char name[64];
  char *fields_json; /* owned: store_template_clear frees it */
  int64_t created_ms, updated_ms;
} store_template;
typedef int (*store_template_cb)(void *ctx, const store_template *t);
void store_template_clear(store_template *t);
/* Creates or replaces the tenant's template of that name. */
int store_template_put(store *s, store_template *t);
int store_template_get(store *s, int64_t tenant_id, const char *name, store_template *out);
int store_template_delete(store *s, int64_t tenant_id, const char *name);
int store_template_list(store *s, int64_t tenant_id, store_template_cb cb, void *ctx);

/* Resolution statistics: counters added per prefix and day (days since the epoch, UTC). */
typedef struct store_ident_stat {
  int64_t prefix_id;
  char prefix[128];
  int64_t tenant_id;
  int64_t day;
  int64_t resolutions, not_found, registrations;
} store_ident_stat;
typedef int (*store_ident_stat_cb)(void *ctx, const store_ident_stat *st);
int store_ident_stats_add(store *s, int64_t prefix_id, int64_t day, int64_t resolutions, int64_t not_found,
                          int64_t registrations);
/* Rows with since_day <= day < until_day, tenant_id 0: all, ordered by day then prefix. */
int store_ident_stats_list(store *s, int64_t tenant_id, int64_t since_day, int64_t until_day,
                           store_ident_stat_cb cb, void *ctx);
/* Tunes a connection that mostly reads the registry at random (the Handle server's): a page
 * cache of cache_bytes and a memory map of up to mmap_bytes of the file, so a lookup in a
 * registry of millions needs no read() calls. */
int store_ident_tune(store *s, int64_t cache_bytes, int64_t mmap_bytes);

#endif
