/* The store's connection: opening with the durability settings, forward schema migrations,
 * explicit transactions, the statement cache helpers of store_int.h, the connection pool and
 * the overview counts. The entity families live in tenant.c, user.c, token.c, device.c and
 * audit.c.
 *
 * Durability: WAL journal with synchronous=FULL, so a transaction is on disk (the WAL fsynced)
 * before COMMIT returns; NORMAL would let a power cut lose acknowledged commits.
 *
 * Migrations: PRAGMA user_version is the number of migrations applied. store_open applies the
 * missing ones, in order, inside one BEGIN IMMEDIATE transaction and re-reads the version after
 * taking the write lock, so two processes opening the same file at once (the CLI while the
 * server runs) never both apply a migration; the loser finds the work done. Migrations are only
 * ever appended to the array below, never edited once released.
 */
#include "store/store_int.h"

#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STORE_BUSY_TIMEOUT_MS 5000

/* ---- schema ---- */

static const char *const migrations[] = {
    /* 1: tenants, users, tokens, devices, audit. */
    "CREATE TABLE tenants ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE CHECK (length(name) > 0),"
    "  display_name TEXT NOT NULL DEFAULT '',"
    "  prefecture TEXT NOT NULL DEFAULT '',"
    "  industry TEXT NOT NULL DEFAULT '',"
    "  created_ms INTEGER NOT NULL"
    ");"
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY,"
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL UNIQUE CHECK (length(name) > 0),"
    "  display_name TEXT NOT NULL DEFAULT '',"
    "  role TEXT NOT NULL"
    "    CHECK (role IN ('admin','regulator','tenant-admin','operator','viewer')),"
    "  password_hash TEXT NOT NULL DEFAULT '',"
    "  disabled INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  UNIQUE (tenant_id, id)"
    ");"
    /* user_id is NULL for tokens that belong to no user. The composite key makes a token's user
     * belong to the token's tenant, and deleting the user deletes its tokens. */
    "CREATE TABLE tokens ("
    "  id INTEGER PRIMARY KEY,"
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  user_id INTEGER,"
    "  kind TEXT NOT NULL CHECK (kind IN ('api','session')),"
    "  name TEXT NOT NULL DEFAULT '',"
    "  prefix TEXT NOT NULL DEFAULT '',"
    "  hash BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),"
    "  role TEXT NOT NULL"
    "    CHECK (role IN ('admin','regulator','tenant-admin','operator','viewer')),"
    "  created_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL DEFAULT 0,"
    "  last_used_ms INTEGER NOT NULL DEFAULT 0,"
    "  revoked_ms INTEGER NOT NULL DEFAULT 0,"
    "  FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id) ON DELETE CASCADE"
    ");"
    "CREATE INDEX tokens_by_tenant ON tokens(tenant_id, id);"
    "CREATE INDEX tokens_by_user ON tokens(tenant_id, user_id, id);"
    /* token_hash is NULL while a device has no token (many may have none). */
    "CREATE TABLE devices ("
    "  id INTEGER PRIMARY KEY,"
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL CHECK (length(name) > 0),"
    "  type TEXT NOT NULL DEFAULT '',"
    "  vendor TEXT NOT NULL DEFAULT '',"
    "  product TEXT NOT NULL DEFAULT '',"
    "  firmware TEXT NOT NULL DEFAULT '',"
    "  location TEXT NOT NULL DEFAULT '',"
    "  attributes TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(attributes)),"
    "  token_prefix TEXT NOT NULL DEFAULT '',"
    "  token_hash BLOB UNIQUE CHECK (token_hash IS NULL OR length(token_hash) = 32),"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  last_seen_ms INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE (tenant_id, name)"
    ");"
    "CREATE INDEX devices_by_tenant ON devices(tenant_id, id);"
    /* No foreign key to tenants: the log outlives the tenants it mentions. */
    "CREATE TABLE audit ("
    "  seq INTEGER PRIMARY KEY,"
    "  ts_ms INTEGER NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  tenant_id INTEGER NOT NULL DEFAULT 0,"
    "  action TEXT NOT NULL,"
    "  target TEXT NOT NULL,"
    "  result TEXT NOT NULL,"
    "  detail TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  remote TEXT NOT NULL,"
    "  prev_hash BLOB NOT NULL,"
    "  hash BLOB NOT NULL"
    ");"
    "CREATE INDEX audit_by_tenant ON audit(tenant_id, seq);"
    "CREATE INDEX audit_by_ts ON audit(ts_ms);",
    /* 2: how long a tenant's time-series data is kept (0: for ever). */
    "ALTER TABLE tenants ADD COLUMN retention_days INTEGER NOT NULL DEFAULT 0"
    "  CHECK (retention_days >= 0 AND retention_days <= 36500);",
    /* 3: identifiers: the prefix tree, metadata templates, handles with their values (the
     * Handle wire encoding of the value list, so a resolution is one indexed row), the GS1 key
     * index of Digital Link, and resolution statistics per prefix and day. Handles and
     * prefixes compare ASCII case-insensitively, as the Handle System does. */
    "CREATE TABLE ident_prefixes ("
    "  id INTEGER PRIMARY KEY,"
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  prefix TEXT NOT NULL UNIQUE COLLATE NOCASE CHECK (length(prefix) > 0),"
    "  parent_id INTEGER REFERENCES ident_prefixes(id) ON DELETE SET NULL,"
    "  created_ms INTEGER NOT NULL"
    ");"
    "CREATE INDEX ident_prefixes_by_tenant ON ident_prefixes(tenant_id, id);"
    "CREATE INDEX ident_prefixes_by_parent ON ident_prefixes(parent_id);"
    "CREATE TABLE ident_templates ("
    "  id INTEGER PRIMARY KEY,"
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL CHECK (length(name) > 0),"
    "  fields TEXT NOT NULL CHECK (json_valid(fields)),"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  UNIQUE (tenant_id, name)"
    ");"
    "CREATE TABLE ident_handles ("
    "  id INTEGER PRIMARY KEY,"
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  prefix_id INTEGER NOT NULL REFERENCES ident_prefixes(id) ON DELETE CASCADE,"
    "  handle TEXT NOT NULL UNIQUE COLLATE NOCASE CHECK (length(handle) > 0),"
    "  template TEXT NOT NULL DEFAULT '',"
    "  nvalues INTEGER NOT NULL CHECK (nvalues >= 0),"
    "  vals BLOB NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL"
    ");"
    "CREATE INDEX ident_handles_by_tenant ON ident_handles(tenant_id, id);"
    "CREATE INDEX ident_handles_by_prefix ON ident_handles(prefix_id, id);"
    "CREATE TABLE ident_gs1 ("
    "  key TEXT PRIMARY KEY,"
    "  handle_id INTEGER NOT NULL REFERENCES ident_handles(id) ON DELETE CASCADE"
    ") WITHOUT ROWID;"
    "CREATE INDEX ident_gs1_by_handle ON ident_gs1(handle_id);"
    "CREATE TABLE ident_stats ("
    "  prefix_id INTEGER NOT NULL REFERENCES ident_prefixes(id) ON DELETE CASCADE,"
    "  day INTEGER NOT NULL,"
    "  resolutions INTEGER NOT NULL DEFAULT 0,"
    "  not_found INTEGER NOT NULL DEFAULT 0,"
    "  registrations INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (prefix_id, day)"
    ") WITHOUT ROWID;",
    /* 4: time-series databases of a tenant (InfluxDB's `db`). AUTOINCREMENT because an id
     * names a namespace of time series: reusing the id of a deleted database would hand its
     * not yet swept data to the next database created. */
    "CREATE TABLE databases ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL CHECK (length(name) > 0),"
    "  created_ms INTEGER NOT NULL,"
    "  UNIQUE (tenant_id, name)"
    ");",
    /* 5: tenant ids are never reused either: a tenant's id names its default time-series
     * namespace, and a new tenant must not inherit data the deletion sweep has not reached
     * yet. The high-water mark survives deletes of the newest tenants. */
    "CREATE TABLE tenant_id_high (id INTEGER NOT NULL);"
    "INSERT INTO tenant_id_high SELECT coalesce(max(id), 0) FROM tenants;"
    "CREATE TRIGGER tenants_id_high AFTER DELETE ON tenants"
    "  BEGIN UPDATE tenant_id_high SET id = max(id, OLD.id); END;",
    /* 6: traceability (store/trace.c): EPCIS events, immutable per tenant; their identifiers by
     * role (normalised so a GS1 URN and its Digital Link match); sharing; capture jobs; named
     * queries. */
    "CREATE TABLE trace_events ("
    "  id INTEGER PRIMARY KEY,"
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  event_id TEXT NOT NULL,"
    "  type INTEGER NOT NULL CHECK (type BETWEEN 1 AND 5),"
    "  event_time_ms INTEGER NOT NULL,"
    "  record_time_ms INTEGER NOT NULL,"
    "  action TEXT, biz_step TEXT, disposition TEXT, read_point TEXT, biz_location TEXT,"
    "  public INTEGER NOT NULL DEFAULT 0,"
    "  capture_id INTEGER,"
    "  doc TEXT NOT NULL,"
    "  UNIQUE (tenant_id, event_id)"
    ");"
    "CREATE INDEX trace_events_by_time ON trace_events(tenant_id, event_time_ms);"
    "CREATE INDEX trace_events_by_record ON trace_events(tenant_id, record_time_ms);"
    "CREATE INDEX trace_events_by_event_time ON trace_events(event_time_ms);"
    "CREATE TABLE event_epcs ("
    "  event INTEGER NOT NULL REFERENCES trace_events(id) ON DELETE CASCADE,"
    "  role INTEGER NOT NULL,"
    "  epc TEXT NOT NULL,"
    "  quantity REAL,"
    "  uom TEXT"
    ");"
    "CREATE INDEX event_epcs_by_epc ON event_epcs(epc, event);"
    "CREATE INDEX event_epcs_by_event ON event_epcs(event);"
    "CREATE TABLE event_shares ("
    "  event INTEGER NOT NULL REFERENCES trace_events(id) ON DELETE CASCADE,"
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  PRIMARY KEY (event, tenant_id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX event_shares_by_tenant ON event_shares(tenant_id, event);"
    "CREATE TABLE trace_captures ("
    "  id INTEGER PRIMARY KEY,"
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  created_ms INTEGER NOT NULL, finished_ms INTEGER,"
    "  state TEXT NOT NULL,"
    "  captured INTEGER NOT NULL DEFAULT 0, duplicates INTEGER NOT NULL DEFAULT 0,"
    "  rejected INTEGER NOT NULL DEFAULT 0,"
    "  errors TEXT NOT NULL DEFAULT '[]'"
    ");"
    "CREATE TABLE trace_queries ("
    "  id INTEGER PRIMARY KEY,"
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL CHECK (length(name) > 0),"
    "  params TEXT NOT NULL CHECK (json_valid(params)),"
    "  created_ms INTEGER NOT NULL,"
    "  UNIQUE (tenant_id, name)"
    ");",
    /* 7: EPCIS subscriptions (store/trace.c): a named query whose new results are posted to a
     * webhook; last_event is the newest event id already delivered. */
    "CREATE TABLE trace_subscriptions ("
    "  id INTEGER PRIMARY KEY,"
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  query_name TEXT NOT NULL,"
    "  dest TEXT NOT NULL CHECK (length(dest) > 0),"
    "  created_ms INTEGER NOT NULL,"
    "  last_event INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX trace_subscriptions_by_tenant ON trace_subscriptions(tenant_id, query_name);",
    /* 8: a leaner event store for captures of millions of events (store/trace.c). Events are
     * deduplicated on a 16-byte key (BLAKE2b of the eventID, plateau_event_key()) instead of the
     * eventID text, whose ~90-byte random keys made the unique index the largest and slowest to
     * grow; identifiers live in a table clustered by identifier (WITHOUT ROWID: the lookup of
     * MATCH_* and lineage is the table itself, and the by-event index covers the other
     * identifiers of an event). Tables are rebuilt children first, so that dropping the old
     * ones cascades into nothing, and renamed (SQLite rewrites the foreign keys). Master data:
     * vocabulary elements with their attributes, and the children of each (WD_ queries). */
    "CREATE TABLE trace_events_v8 ("
    "  id INTEGER PRIMARY KEY,"
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  event_key BLOB NOT NULL CHECK (length(event_key) = 16),"
    "  event_id TEXT NOT NULL,"
    "  type INTEGER NOT NULL CHECK (type BETWEEN 1 AND 5),"
    "  event_time_ms INTEGER NOT NULL,"
    "  record_time_ms INTEGER NOT NULL,"
    "  action TEXT, biz_step TEXT, disposition TEXT, read_point TEXT, biz_location TEXT,"
    "  public INTEGER NOT NULL DEFAULT 0,"
    "  capture_id INTEGER,"
    "  doc TEXT NOT NULL,"
    "  UNIQUE (tenant_id, event_key)"
    ");"
    "INSERT INTO trace_events_v8 SELECT id, tenant_id, plateau_event_key(event_id), event_id, type, event_time_ms,"
    "  record_time_ms, action, biz_step, disposition, read_point, biz_location, public, capture_id, doc"
    "  FROM trace_events;"
    "CREATE TABLE event_epcs_v8 ("
    "  epc TEXT NOT NULL,"
    "  event INTEGER NOT NULL REFERENCES trace_events_v8(id) ON DELETE CASCADE,"
    "  role INTEGER NOT NULL,"
    "  quantity REAL,"
    "  uom TEXT,"
    "  PRIMARY KEY (epc, event, role)"
    ") WITHOUT ROWID;"
    "INSERT OR IGNORE INTO event_epcs_v8 SELECT epc, event, role, quantity, uom FROM event_epcs;"
    "CREATE TABLE event_shares_v8 ("
    "  event INTEGER NOT NULL REFERENCES trace_events_v8(id) ON DELETE CASCADE,"
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  PRIMARY KEY (event, tenant_id)"
    ") WITHOUT ROWID;"
    "INSERT INTO event_shares_v8 SELECT event, tenant_id FROM event_shares;"
    "DROP TABLE event_epcs;"
    "DROP TABLE event_shares;"
    "DROP TABLE trace_events;"
    "ALTER TABLE trace_events_v8 RENAME TO trace_events;"
    "ALTER TABLE event_epcs_v8 RENAME TO event_epcs;"
    "ALTER TABLE event_shares_v8 RENAME TO event_shares;"
    "CREATE INDEX trace_events_by_time ON trace_events(tenant_id, event_time_ms);"
    "CREATE INDEX trace_events_by_record ON trace_events(tenant_id, record_time_ms);"
    "CREATE INDEX trace_events_by_event_time ON trace_events(event_time_ms);"
    "CREATE INDEX event_epcs_by_event ON event_epcs(event);"
    "CREATE INDEX event_shares_by_tenant ON event_shares(tenant_id, event);"
    "CREATE TABLE trace_vocab ("
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  type TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  attributes TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(attributes)),"
    "  updated_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (tenant_id, type, id)"
    ") WITHOUT ROWID;"
    "CREATE TABLE trace_vocab_children ("
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  parent TEXT NOT NULL,"
    "  child TEXT NOT NULL,"
    "  PRIMARY KEY (tenant_id, parent, child)"
    ") WITHOUT ROWID;",
};
#define MIGRATION_COUNT ((int)(sizeof migrations / sizeof migrations[0]))

/* ---- helpers shared by the module ---- */

int store__rc(store *s, int sqlite_rc) {
  switch (sqlite_rc) {
  case SQLITE_OK:
  case SQLITE_DONE:
  case SQLITE_ROW: return 0;
  case SQLITE_CONSTRAINT_UNIQUE:
  case SQLITE_CONSTRAINT_PRIMARYKEY: return PL_EEXIST;
  case SQLITE_CONSTRAINT_FOREIGNKEY: return PL_ENOTFOUND; /* the referenced tenant or user */
  case SQLITE_NOMEM: return PL_ENOMEM;
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB: break;
  default:
    if ((sqlite_rc & 0xff) == SQLITE_BUSY || (sqlite_rc & 0xff) == SQLITE_LOCKED)
      return PL_EBUSY;
    if ((sqlite_rc & 0xff) == SQLITE_CONSTRAINT)
      return PL_EINVAL; /* CHECK, NOT NULL */
    break;
  }
  PL_LOG(PL_LOG_ERROR, "store", "sqlite_rc=%d msg=\"%s\"", sqlite_rc,
         s && s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(sqlite_rc));
  if ((sqlite_rc & 0xff) == SQLITE_CORRUPT || (sqlite_rc & 0xff) == SQLITE_NOTADB)
    return PL_ECORRUPT;
  return PL_EIO;
}

int store__stmt(store *s, int id, const char *sql, sqlite3_stmt **out) {
  sqlite3_stmt *st = s->stmts[id];
  if (!st) {
    int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK)
      return store__rc(s, rc);
    s->stmts[id] = st;
  } else {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
  }
  *out = st;
  return 0;
}

int store__prepare(store *s, const char *sql, sqlite3_stmt **out) {
  int rc = sqlite3_prepare_v2(s->db, sql, -1, out, NULL);
  return rc == SQLITE_OK ? 0 : store__rc(s, rc);
}

int store__exec(store *s, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : store__rc(s, rc == SQLITE_ROW ? SQLITE_MISUSE : rc);
}

int store__exec_one(store *s, sqlite3_stmt *st) {
  int rc = store__exec(s, st);
  if (rc < 0)
    return rc;
  return sqlite3_changes(s->db) > 0 ? 0 : PL_ENOTFOUND;
}

int store__step_row(store *s, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    return 0;
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? PL_ENOTFOUND : store__rc(s, rc);
}

int store__bind_str(sqlite3_stmt *st, int idx, const char *str, size_t bufsz) {
  if (!str)
    str = "";
  size_t n = strnlen(str, bufsz);
  if (n == bufsz)
    return PL_EINVAL;
  return sqlite3_bind_text(st, idx, str, (int)n, SQLITE_TRANSIENT) == SQLITE_OK ? 0 : PL_ENOMEM;
}

int store__bind_hash(sqlite3_stmt *st, int idx, const uint8_t hash[32]) {
  return sqlite3_bind_blob(st, idx, hash, 32, SQLITE_TRANSIENT) == SQLITE_OK ? 0 : PL_ENOMEM;
}

void store__col_str(sqlite3_stmt *st, int col, char *out, size_t outsz) {
  const unsigned char *text = sqlite3_column_text(st, col);
  size_t n = text ? (size_t)sqlite3_column_bytes(st, col) : 0;
  if (n > outsz - 1)
    n = outsz - 1;
  if (n)
    memcpy(out, text, n);
  out[n] = 0;
}

void store__col_hash(sqlite3_stmt *st, int col, uint8_t out[32]) {
  const void *blob = sqlite3_column_blob(st, col);
  if (blob && sqlite3_column_bytes(st, col) == 32)
    memcpy(out, blob, 32);
  else
    memset(out, 0, 32);
}

int64_t store__limit(int limit) {
  return limit > 0 ? limit : -1;
}

/* ---- open, migrate, close ---- */

static int exec_sql(store *s, const char *sql) {
  int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : store__rc(s, rc);
}

static int read_user_version(store *s, int *version) {
  sqlite3_stmt *st;
  int rc = store__prepare(s, "PRAGMA user_version", &st);
  if (rc < 0)
    return rc;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *version = sqlite3_column_int(st, 0);
    rc = 0;
  } else {
    rc = store__rc(s, rc == SQLITE_DONE ? SQLITE_ERROR : rc);
  }
  sqlite3_finalize(st);
  return rc;
}

static int migrate(store *s, pl_err *err) {
  int version, rc;
  if ((rc = read_user_version(s, &version)) < 0)
    return pl_err_set(err, rc, "reading schema version: %s", pl_strerror(rc));
  if (version == MIGRATION_COUNT)
    return 0;
  if (version > MIGRATION_COUNT)
    return pl_err_set(err, PL_ECONFLICT,
                      "database schema version %d is newer than this program's %d", version,
                      MIGRATION_COUNT);
  if ((rc = exec_sql(s, "BEGIN IMMEDIATE")) < 0)
    return pl_err_set(err, rc, "locking database for migration: %s", pl_strerror(rc));
  /* Another process may have migrated between the first read and the lock. */
  if ((rc = read_user_version(s, &version)) < 0)
    goto fail;
  if (version > MIGRATION_COUNT) {
    rc = PL_ECONFLICT;
    goto fail;
  }
  for (int i = version; i < MIGRATION_COUNT; i++) {
    if ((rc = exec_sql(s, migrations[i])) < 0) {
      exec_sql(s, "ROLLBACK");
      return pl_err_set(err, rc, "applying migration %d: %s", i + 1, pl_strerror(rc));
    }
  }
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA user_version = %d", MIGRATION_COUNT);
  if ((rc = exec_sql(s, sql)) < 0 || (rc = exec_sql(s, "COMMIT")) < 0)
    goto fail;
  if (version < MIGRATION_COUNT)
    PL_LOG(PL_LOG_INFO, "store", "migrated from=%d to=%d", version, MIGRATION_COUNT);
  return 0;
fail:
  exec_sql(s, "ROLLBACK");
  return pl_err_set(err, rc, "migrating schema: %s", pl_strerror(rc));
}

/* Switches to WAL. Changing the journal mode of a fresh file needs an exclusive lock, which a
 * second process opening at the same moment may hold briefly; retry within the busy timeout. */
static int set_wal(store *s, pl_err *err) {
  for (int attempt = 0;; attempt++) {
    sqlite3_stmt *st;
    int rc = store__prepare(s, "PRAGMA journal_mode=WAL", &st);
    if (rc < 0)
      return pl_err_set(err, rc, "setting WAL mode: %s", pl_strerror(rc));
    int step = sqlite3_step(st);
    char mode[16] = "";
    if (step == SQLITE_ROW)
      store__col_str(st, 0, mode, sizeof mode);
    sqlite3_finalize(st);
    if (step == SQLITE_ROW) {
      if (strcmp(mode, "wal") != 0)
        return pl_err_set(err, PL_EIO, "database refused WAL mode (journal_mode=%s)", mode);
      return 0;
    }
    if ((step & 0xff) != SQLITE_BUSY || attempt >= 50) {
      rc = store__rc(s, step);
      return pl_err_set(err, rc, "setting WAL mode: %s", pl_strerror(rc));
    }
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

/* SQLite creates the database (and its -wal and -shm files, which take the database file's
 * permissions) with the process umask. It holds password and token hashes, so make it 0600. */
/* Creates the database file with mode 0600 before SQLite does (SQLite would use 0644).
 * Only when it does not exist yet: closing a descriptor of a file drops every POSIX lock the
 * process holds on it, including the shared lock of SQLite's WAL mode held by connections
 * already open, after which another process (a CLI command) could believe itself the last
 * user and remove the -wal file under this one. */
static int precreate(const char *path) {
  if (path[0] == ':' || strncmp(path, "file:", 5) == 0)
    return 0;
  struct stat st;
  if (stat(path, &st) == 0)
    return 0;
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST)
    return 0;
  if (fd < 0)
    return errno == ENOENT ? PL_ENOTFOUND : PL_EIO;
  close(fd);
  return 0;
}

int store_open(const char *path, store **out, pl_err *err) {
  if (!path || !out)
    return pl_err_set(err, PL_EINVAL, "no database path");
  int rc = precreate(path);
  if (rc < 0)
    return pl_err_set(err, rc, "creating %s: %s", path, strerror(errno));
  store *s = calloc(1, sizeof *s);
  if (!s)
    return pl_err_set(err, PL_ENOMEM, "out of memory");
  /* NOMUTEX: a connection is used by one thread at a time (the pool hands it out). */
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
  int src = sqlite3_open_v2(path, &s->db, flags, NULL);
  if (src != SQLITE_OK) {
    rc = s->db ? store__rc(s, src) : PL_ENOMEM;
    pl_err_set(err, rc, "opening %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
    store_close(s);
    return rc;
  }
  sqlite3_extended_result_codes(s->db, 1);
  sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
  if ((rc = store__trace_functions(s)) < 0) {
    pl_err_set(err, rc, "registering SQL functions: %s", pl_strerror(rc));
    goto fail;
  }
  if ((rc = set_wal(s, err)) < 0)
    goto fail;
  if ((rc = exec_sql(s, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON")) < 0) {
    pl_err_set(err, rc, "setting pragmas: %s", pl_strerror(rc));
    goto fail;
  }
  if ((rc = migrate(s, err)) < 0)
    goto fail;
  *out = s;
  return 0;
fail:
  store_close(s);
  return rc;
}

void store_close(store *s) {
  if (!s)
    return;
  for (int i = 0; i < STORE__STMT_COUNT; i++)
    sqlite3_finalize(s->stmts[i]);
  sqlite3_close(s->db);
  free(s);
}

int store__list_stmt(store *s, int id, const char *sql, sqlite3_stmt **out, int *fresh) {
  if (s->stmts[id] && sqlite3_stmt_busy(s->stmts[id])) {
    *fresh = 1;
    return store__prepare(s, sql, out);
  }
  *fresh = 0;
  return store__stmt(s, id, sql, out);
}

static int each_row(store *s, sqlite3_stmt *st, int (*row)(void *ctx, sqlite3_stmt *st), void *ctx);

int store__each_row_cached(store *s, sqlite3_stmt *st, int fresh, int (*row)(void *ctx, sqlite3_stmt *st),
                           void *ctx) {
  if (fresh)
    return store__each_row(s, st, row, ctx);
  int rc = each_row(s, st, row, ctx);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc;
}

int store__each_row(store *s, sqlite3_stmt *st, int (*row)(void *ctx, sqlite3_stmt *st), void *ctx) {
  int rc = each_row(s, st, row, ctx);
  sqlite3_finalize(st);
  return rc;
}

static int each_row(store *s, sqlite3_stmt *st, int (*row)(void *ctx, sqlite3_stmt *st), void *ctx) {
  int rc = 0, n = 0;
  for (;;) {
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE)
      break;
    if (step != SQLITE_ROW) {
      rc = store__rc(s, step);
      break;
    }
    if ((rc = row(ctx, st)) < 0)
      break;
    n++;
  }
  return rc < 0 ? rc : n;
}

int store_schema_latest(void) {
  return MIGRATION_COUNT;
}

const char *store__migration(int version) {
  return version >= 1 && version <= MIGRATION_COUNT ? migrations[version - 1] : NULL;
}

int store_schema_version(store *s) {
  int version;
  int rc = read_user_version(s, &version);
  return rc < 0 ? rc : version;
}

/* ---- transactions ---- */

int store_begin(store *s) {
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__BEGIN, "BEGIN IMMEDIATE", &st);
  return rc < 0 ? rc : store__exec(s, st);
}

int store_commit(store *s) {
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__COMMIT, "COMMIT", &st);
  return rc < 0 ? rc : store__exec(s, st);
}

int store_rollback(store *s) {
  if (sqlite3_get_autocommit(s->db))
    return 0; /* nothing open (SQLite may have rolled back) */
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__ROLLBACK, "ROLLBACK", &st);
  return rc < 0 ? rc : store__exec(s, st);
}

int store_in_transaction(store *s) {
  return !sqlite3_get_autocommit(s->db);
}

/* ---- pool ---- */

struct store_pool {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int size;
  int nfree;
  store **all;  /* every connection, closed by store_pool_free */
  store **free; /* a stack of the idle ones */
};

int store_pool_new(const char *path, int size, store_pool **out, pl_err *err) {
  if (size < 1 || size > 1024)
    return pl_err_set(err, PL_EINVAL, "pool size %d out of 1..1024", size);
  store_pool *p = calloc(1, sizeof *p);
  if (!p)
    return pl_err_set(err, PL_ENOMEM, "out of memory");
  p->all = calloc((size_t)size, sizeof *p->all);
  p->free = calloc((size_t)size, sizeof *p->free);
  if (!p->all || !p->free) {
    free(p->all);
    free(p->free);
    free(p);
    return pl_err_set(err, PL_ENOMEM, "out of memory");
  }
  if (pthread_mutex_init(&p->mu, NULL) != 0) {
    free(p->all);
    free(p->free);
    free(p);
    return pl_err_set(err, PL_ENOMEM, "mutex init failed");
  }
  if (pthread_cond_init(&p->cv, NULL) != 0) {
    pthread_mutex_destroy(&p->mu);
    free(p->all);
    free(p->free);
    free(p);
    return pl_err_set(err, PL_ENOMEM, "condvar init failed");
  }
  for (int i = 0; i < size; i++) {
    int rc = store_open(path, &p->all[i], err);
    if (rc < 0) {
      p->size = i;
      p->nfree = i;
      store_pool_free(p);
      return rc;
    }
    p->free[i] = p->all[i];
  }
  p->size = size;
  p->nfree = size;
  *out = p;
  return 0;
}

void store_pool_free(store_pool *p) {
  if (!p)
    return;
  if (p->nfree != p->size)
    PL_LOG(PL_LOG_ERROR, "store", "pool freed with %d connection(s) still out", p->size - p->nfree);
  for (int i = 0; i < p->size; i++)
    store_close(p->all[i]);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p->all);
  free(p->free);
  free(p);
}

store *store_pool_get(store_pool *p) {
  pthread_mutex_lock(&p->mu);
  while (p->nfree == 0)
    pthread_cond_wait(&p->cv, &p->mu);
  store *s = p->free[--p->nfree];
  pthread_mutex_unlock(&p->mu);
  return s;
}

void store_pool_put(store_pool *p, store *s) {
  if (!s)
    return;
  /* A connection must come back without an open transaction, or the next user would inherit
   * (and could commit) someone else's half-done work. */
  if (!sqlite3_get_autocommit(s->db)) {
    PL_LOG(PL_LOG_WARN, "store", "connection returned to pool inside a transaction; rolling back");
    store_rollback(s);
  }
  pthread_mutex_lock(&p->mu);
  p->free[p->nfree++] = s;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

/* ---- counts ---- */

int store_counts_get(store *s, int64_t tenant_id, int64_t now_ms, store_counts *out) {
  static const char sql[] =
      "SELECT"
      " (SELECT count(*) FROM tenants WHERE ?1 = 0 OR id = ?1),"
      " (SELECT count(*) FROM users WHERE ?1 = 0 OR tenant_id = ?1),"
      " (SELECT count(*) FROM devices WHERE ?1 = 0 OR tenant_id = ?1),"
      " (SELECT count(*) FROM devices WHERE (?1 = 0 OR tenant_id = ?1) AND last_seen_ms >= ?2),"
      " (SELECT count(*) FROM tokens WHERE (?1 = 0 OR tenant_id = ?1) AND revoked_ms = 0"
      "    AND (expires_ms = 0 OR expires_ms > ?3))";
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__COUNTS, sql, &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  sqlite3_bind_int64(st, 2, now_ms - 24 * 3600 * 1000LL);
  sqlite3_bind_int64(st, 3, now_ms);
  if ((rc = store__step_row(s, st)) < 0)
    return rc;
  out->tenants = sqlite3_column_int64(st, 0);
  out->users = sqlite3_column_int64(st, 1);
  out->devices = sqlite3_column_int64(st, 2);
  out->devices_seen_24h = sqlite3_column_int64(st, 3);
  out->tokens_live = sqlite3_column_int64(st, 4);
  sqlite3_reset(st);
  return 0;
}
