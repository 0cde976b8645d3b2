/* Devices: the asset inventory and the device credentials. A device's token is stored as its
 * BLAKE2b-256 hash (NULL while it has none; an all-zero hash in the struct means "none") with
 * a unique index, so the lookup by token hash, the hot path of device connections, is one
 * cached indexed statement. Names are unique within a tenant. */
#include "store/store_int.h"

#include "base/clock.h"

#include <stdlib.h>
#include <string.h>

#define DEVICE_COLS                                                                                \
  "id, tenant_id, name, type, vendor, product, firmware, location, attributes, token_prefix,"      \
  " token_hash, created_ms, updated_ms, last_seen_ms"

static int hash_is_zero(const uint8_t hash[32]) {
  uint8_t acc = 0;
  for (int i = 0; i < 32; i++)
    acc |= hash[i];
  return acc == 0;
}

/* Fills *out from the row; the only allocation is attributes_json. */
static int device_from_row(sqlite3_stmt *st, store_device *out) {
  store_device d;
  memset(&d, 0, sizeof d);
  d.id = sqlite3_column_int64(st, 0);
  d.tenant_id = sqlite3_column_int64(st, 1);
  store__col_str(st, 2, d.name, sizeof d.name);
  store__col_str(st, 3, d.type, sizeof d.type);
  store__col_str(st, 4, d.vendor, sizeof d.vendor);
  store__col_str(st, 5, d.product, sizeof d.product);
  store__col_str(st, 6, d.firmware, sizeof d.firmware);
  store__col_str(st, 7, d.location, sizeof d.location);
  const unsigned char *attrs = sqlite3_column_text(st, 8);
  size_t attrs_len = attrs ? (size_t)sqlite3_column_bytes(st, 8) : 0;
  if (!attrs) {
    attrs = (const unsigned char *)"{}";
    attrs_len = 2;
  }
  d.attributes_json = malloc(attrs_len + 1);
  if (!d.attributes_json)
    return PL_ENOMEM;
  memcpy(d.attributes_json, attrs, attrs_len);
  d.attributes_json[attrs_len] = 0;
  store__col_str(st, 9, d.token_prefix, sizeof d.token_prefix);
  store__col_hash(st, 10, d.token_hash);
  d.created_ms = sqlite3_column_int64(st, 11);
  d.updated_ms = sqlite3_column_int64(st, 12);
  d.last_seen_ms = sqlite3_column_int64(st, 13);
  *out = d;
  return 0;
}

void store_device_clear(store_device *d) {
  if (!d)
    return;
  free(d->attributes_json);
  d->attributes_json = NULL;
}

int store_device_create(store *s, store_device *d) {
  sqlite3_stmt *st;
  int rc =
      store__stmt(s, STORE__DEVICE_INSERT,
                  "INSERT INTO devices (tenant_id, name, type, vendor, product, firmware, location,"
                  " attributes, token_prefix, token_hash, created_ms, updated_ms, last_seen_ms)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, 0)",
                  &st);
  if (rc < 0)
    return rc;
  int64_t now = pl_now_ms();
  sqlite3_bind_int64(st, 1, d->tenant_id);
  if ((rc = STORE__BIND_STR(st, 2, d->name)) < 0 || (rc = STORE__BIND_STR(st, 3, d->type)) < 0 ||
      (rc = STORE__BIND_STR(st, 4, d->vendor)) < 0 ||
      (rc = STORE__BIND_STR(st, 5, d->product)) < 0 ||
      (rc = STORE__BIND_STR(st, 6, d->firmware)) < 0 ||
      (rc = STORE__BIND_STR(st, 7, d->location)) < 0 ||
      (rc = STORE__BIND_STR(st, 9, d->token_prefix)) < 0)
    return rc;
  const char *attrs = d->attributes_json ? d->attributes_json : "{}";
  if (sqlite3_bind_text(st, 8, attrs, -1, SQLITE_TRANSIENT) != SQLITE_OK)
    return PL_ENOMEM;
  if (!hash_is_zero(d->token_hash) && (rc = store__bind_hash(st, 10, d->token_hash)) < 0)
    return rc;
  sqlite3_bind_int64(st, 11, now);
  if ((rc = store__exec(s, st)) < 0)
    return rc;
  d->id = sqlite3_last_insert_rowid(s->db);
  d->created_ms = now;
  d->updated_ms = now;
  d->last_seen_ms = 0;
  return 0;
}

int store_device_get(store *s, int64_t tenant_id, int64_t id, store_device *out) {
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__DEVICE_GET,
                       "SELECT " DEVICE_COLS " FROM devices WHERE id = ?1 AND tenant_id = ?2", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, tenant_id);
  if ((rc = store__step_row(s, st)) < 0)
    return rc;
  rc = device_from_row(st, out);
  sqlite3_reset(st);
  return rc;
}

int store_device_get_by_name(store *s, int64_t tenant_id, const char *name, store_device *out) {
  if (!name)
    return PL_EINVAL;
  if (strnlen(name, sizeof out->name) == sizeof out->name)
    return PL_ENOTFOUND;
  sqlite3_stmt *st;
  int rc =
      store__stmt(s, STORE__DEVICE_GET_BY_NAME,
                  "SELECT " DEVICE_COLS " FROM devices WHERE tenant_id = ?1 AND name = ?2", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  if ((rc = store__bind_str(st, 2, name, sizeof out->name)) < 0)
    return rc;
  if ((rc = store__step_row(s, st)) < 0)
    return rc;
  rc = device_from_row(st, out);
  sqlite3_reset(st);
  return rc;
}

int store_device_get_by_token_hash(store *s, const uint8_t hash[32], store_device *out) {
  if (hash_is_zero(hash))
    return PL_ENOTFOUND; /* the "no token" marker never authenticates */
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__DEVICE_GET_BY_TOKEN,
                       "SELECT " DEVICE_COLS " FROM devices WHERE token_hash = ?1", &st);
  if (rc < 0)
    return rc;
  if ((rc = store__bind_hash(st, 1, hash)) < 0)
    return rc;
  if ((rc = store__step_row(s, st)) < 0)
    return rc;
  rc = device_from_row(st, out);
  sqlite3_reset(st);
  return rc;
}

int store_device_update(store *s, const store_device *d) {
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__DEVICE_UPDATE,
                       "UPDATE devices SET name = ?3, type = ?4, vendor = ?5, product = ?6,"
                       " firmware = ?7, location = ?8, attributes = coalesce(?9, attributes),"
                       " updated_ms = ?10 WHERE id = ?1 AND tenant_id = ?2",
                       &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, d->id);
  sqlite3_bind_int64(st, 2, d->tenant_id);
  if ((rc = STORE__BIND_STR(st, 3, d->name)) < 0 || (rc = STORE__BIND_STR(st, 4, d->type)) < 0 ||
      (rc = STORE__BIND_STR(st, 5, d->vendor)) < 0 ||
      (rc = STORE__BIND_STR(st, 6, d->product)) < 0 ||
      (rc = STORE__BIND_STR(st, 7, d->firmware)) < 0 ||
      (rc = STORE__BIND_STR(st, 8, d->location)) < 0)
    return rc;
  if (d->attributes_json &&
      sqlite3_bind_text(st, 9, d->attributes_json, -1, SQLITE_TRANSIENT) != SQLITE_OK)
    return PL_ENOMEM;
  sqlite3_bind_int64(st, 10, pl_now_ms());
  return store__exec_one(s, st);
}

int store_device_set_token(store *s, int64_t tenant_id, int64_t id, const char *prefix,
                           const uint8_t hash[32]) {
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__DEVICE_SET_TOKEN,
                       "UPDATE devices SET token_prefix = ?3, token_hash = ?4, updated_ms = ?5"
                       " WHERE id = ?1 AND tenant_id = ?2",
                       &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, tenant_id);
  if ((rc = store__bind_str(st, 3, prefix, sizeof((store_device *)0)->token_prefix)) < 0)
    return rc;
  if (hash && !hash_is_zero(hash) && (rc = store__bind_hash(st, 4, hash)) < 0)
    return rc;
  sqlite3_bind_int64(st, 5, pl_now_ms());
  return store__exec_one(s, st);
}

int store_device_touch(store *s, int64_t tenant_id, int64_t id, int64_t now_ms) {
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__DEVICE_TOUCH,
                       "UPDATE devices SET last_seen_ms = max(last_seen_ms, ?3)"
                       " WHERE id = ?1 AND tenant_id = ?2",
                       &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, tenant_id);
  sqlite3_bind_int64(st, 3, now_ms);
  return store__exec_one(s, st);
}

int store_device_delete(store *s, int64_t tenant_id, int64_t id) {
  sqlite3_stmt *st;
  int rc = store__stmt(s, STORE__DEVICE_DELETE,
                       "DELETE FROM devices WHERE id = ?1 AND tenant_id = ?2", &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, tenant_id);
  return store__exec_one(s, st);
}

typedef struct device_visit {
  store_device_cb cb;
  void *ctx;
} device_visit;

static int visit_device(void *ctx, sqlite3_stmt *st) {
  device_visit *v = ctx;
  store_device x;
  int rc = device_from_row(st, &x);
  if (rc < 0)
    return rc;
  rc = v->cb(v->ctx, &x);
  store_device_clear(&x);
  return rc;
}

int store_device_list(store *s, int64_t tenant_id, int64_t after_id, int limit, store_device_cb cb,
                      void *ctx) {
  sqlite3_stmt *st;
  int rc = store__prepare(s,
                          "SELECT " DEVICE_COLS " FROM devices WHERE tenant_id = ?1 AND id > ?2"
                          " ORDER BY id LIMIT ?3",
                          &st);
  if (rc < 0)
    return rc;
  sqlite3_bind_int64(st, 1, tenant_id);
  sqlite3_bind_int64(st, 2, after_id);
  sqlite3_bind_int64(st, 3, store__limit(limit));
  device_visit v = {cb, ctx};
  return store__each_row(s, st, visit_device, &v);
}
