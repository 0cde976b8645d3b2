/* Internals shared by the files of the store module: the connection struct, its cache of
 * prepared statements, and small helpers for binding, reading columns and mapping SQLite result
 * codes to PL_E* codes. Nothing here is visible outside src/store/.
 *
 * Statement cache: every fixed single-row statement (the hot lookups by token hash, and the
 * inserts, updates and deletes) has an id below. store__stmt() prepares it on first use with
 * SQLITE_PREPARE_PERSISTENT and afterwards only resets it, so a statement is compiled once per
 * connection. A cached statement is always reset before the function using it returns, which
 * keeps it free for the next caller (including a list callback that calls back into the store).
 * Lists, whose callbacks run while their statement is live, use fresh statements instead.
 */
#ifndef PLATEAU_STORE_STORE_INT_H
#define PLATEAU_STORE_STORE_INT_H

#include "store/store.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

enum store__stmt_id {
  STORE__BEGIN = 0,
  STORE__COMMIT,
  STORE__ROLLBACK,
  STORE__TENANT_INSERT,
  STORE__TENANT_GET,
  STORE__TENANT_GET_BY_NAME,
  STORE__TENANT_UPDATE,
  STORE__TENANT_DELETE,
  STORE__USER_INSERT,
  STORE__USER_GET,
  STORE__USER_GET_BY_NAME,
  STORE__USER_UPDATE,
  STORE__USER_DELETE,
  STORE__TOKEN_INSERT,
  STORE__TOKEN_GET_BY_HASH,
  STORE__TOKEN_GET,
  STORE__TOKEN_REVOKE,
  STORE__TOKEN_TOUCH,
  STORE__DEVICE_INSERT,
  STORE__DEVICE_GET,
  STORE__DEVICE_GET_BY_NAME,
  STORE__DEVICE_GET_BY_TOKEN,
  STORE__DEVICE_UPDATE,
  STORE__DEVICE_SET_TOKEN,
  STORE__DEVICE_TOUCH,
  STORE__DEVICE_DELETE,
  STORE__AUDIT_LAST,
  STORE__AUDIT_INSERT,
  STORE__COUNTS,
  /* identifiers (ident.c) */
  STORE__PREFIX_INSERT,
  STORE__PREFIX_GET,
  STORE__PREFIX_DELETE,
  STORE__HANDLE_INSERT,
  STORE__HANDLE_LOOKUP,
  STORE__HANDLE_UPDATE,
  STORE__HANDLE_DELETE,
  STORE__GS1_PUT,
  STORE__GS1_LOOKUP,
  STORE__GS1_CLEAR,
  STORE__IDENT_STATS_ADD,
  STORE__TEMPLATE_PUT,
  STORE__TEMPLATE_GET,
  /* traceability (trace.c): the lists of the lineage walk, run once per identifier reached */
  STORE__TRACE_LINKS_ALL,
  STORE__TRACE_LINKS_VIEWER,
  STORE__TRACE_HIDDEN,
  STORE__STMT_COUNT
};

struct store {
  sqlite3 *db;
  sqlite3_stmt *stmts[STORE__STMT_COUNT];
};

/* The cached statement `id` (compiling `sql` on first use), reset and with bindings cleared.
 * Returns 0 or a PL_E* code. */
int store__stmt(store *s, int id, const char *sql, sqlite3_stmt **out);
/* A fresh statement the caller finalizes (for lists). */
int store__prepare(store *s, const char *sql, sqlite3_stmt **out);
/* The SQL of migration `version` (1-based), NULL past the last: tests build old schemas. */
const char *store__migration(int version);
/* Registers the SQL functions of the trace store (plateau_event_key) on a new connection. */
int store__trace_functions(store *s);
/* Maps a SQLite result code (extended codes are on) to PL_E*; logs unexpected failures with
 * SQLite's message, which never contains bound values. */
int store__rc(store *s, int sqlite_rc);
/* Steps a statement that returns no rows, then resets it. 0 or PL_E*. */
int store__exec(store *s, sqlite3_stmt *st);
/* Like store__exec, but PL_ENOTFOUND when the statement changed no row. */
int store__exec_one(store *s, sqlite3_stmt *st);
/* Steps a single-row lookup: 0 with the row ready (caller reads columns, then resets), or
 * PL_ENOTFOUND (statement reset), or another PL_E* code (statement reset). */
int store__step_row(store *s, sqlite3_stmt *st);

/* Binds a string held in a fixed buffer of bufsz bytes; PL_EINVAL when it has no NUL inside the
 * buffer (so what is written always reads back the same). NULL binds ''. */
int store__bind_str(sqlite3_stmt *st, int idx, const char *str, size_t bufsz);
int store__bind_hash(sqlite3_stmt *st, int idx, const uint8_t hash[32]);
/* Copies a text column into out, truncating to outsz - 1 bytes; NULL reads as "". */
void store__col_str(sqlite3_stmt *st, int col, char *out, size_t outsz);
/* Copies a 32-byte blob column; any other length or NULL reads as 32 zero bytes. */
void store__col_hash(sqlite3_stmt *st, int col, uint8_t out[32]);
/* The LIMIT to bind for a list's limit argument (<= 0: no limit). */
int64_t store__limit(int limit);
/* Steps a prepared list statement to the end, calling row(ctx, st) for each row, then finalizes
 * it. row returns 0 to go on or a negative code, which stops the list and is returned. Returns
 * the number of rows visited. */
int store__each_row(store *s, sqlite3_stmt *st, int (*row)(void *ctx, sqlite3_stmt *st), void *ctx);
/* Lists run many times a request (the lineage walk's) keep their statement compiled: the cached
 * statement `id` when it is idle, else -- a callback of that very list calling back into it --
 * a fresh one (*fresh = 1). store__each_row_cached then steps it like store__each_row and
 * resets or finalizes it as fits. */
int store__list_stmt(store *s, int id, const char *sql, sqlite3_stmt **out, int *fresh);
int store__each_row_cached(store *s, sqlite3_stmt *st, int fresh, int (*row)(void *ctx, sqlite3_stmt *st), void *ctx);

#define STORE__BIND_STR(st, idx, field) store__bind_str((st), (idx), (field), sizeof(field))

#endif
