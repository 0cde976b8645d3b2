/* Administrative operations shared by the API and the CLI (see admin.h). */
#include "admin/admin.h"

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"

#include <stdio.h>
#include <string.h>

int admin_check_tenant_name(const char *name, pl_err *err) {
  size_t n = strlen(name);
  if (n == 0 || n > 63) return pl_err_set(err, PL_EINVAL, "tenant name must be 1 to 63 bytes");
  for (size_t i = 0; i < n; i++) {
    char ch = name[i];
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || (ch == '-' && i > 0);
    if (!ok)
      return pl_err_set(err, PL_EINVAL,
                        "tenant name may hold only a-z, 0-9 and '-', and must start with a letter or digit");
  }
  return 0;
}

int admin_check_user_name(const char *name, pl_err *err) {
  size_t n = strlen(name);
  if (n == 0 || n > 127) return pl_err_set(err, PL_EINVAL, "user name must be 1 to 127 bytes");
  for (size_t i = 0; i < n; i++) {
    char ch = name[i];
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
             ch == '_' || ch == '@' || ch == '-';
    if (!ok) return pl_err_set(err, PL_EINVAL, "user name may hold only letters, digits and . _ @ -");
  }
  return 0;
}

int admin_check_text(const char *field, const char *value, size_t max, pl_err *err) {
  size_t n = strlen(value);
  if (n > max) return pl_err_set(err, PL_EINVAL, "%s is longer than %zu bytes", field, max);
  if (!pl_utf8_valid(value, n)) return pl_err_set(err, PL_EINVAL, "%s is not valid UTF-8", field);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)value[i];
    if (ch < 0x20 || ch == 0x7f) return pl_err_set(err, PL_EINVAL, "%s contains a control character", field);
  }
  return 0;
}

int admin_check_device_name(const char *name, pl_err *err) {
  int rc;
  if (!*name) return pl_err_set(err, PL_EINVAL, "device name must not be empty");
  if ((rc = admin_check_text("device name", name, 127, err)) < 0) return rc;
  if (strchr(name, '/')) return pl_err_set(err, PL_EINVAL, "device name must not contain '/'");
  return 0;
}

int admin_audit(admin_ctx *c, int64_t tenant_id, const char *action, const char *target, const char *result,
                const char *detail) {
  store_audit rec;
  memset(&rec, 0, sizeof rec);
  snprintf(rec.actor, sizeof rec.actor, "%s", c->actor ? c->actor : "");
  rec.tenant_id = tenant_id;
  snprintf(rec.action, sizeof rec.action, "%s", action);
  snprintf(rec.target, sizeof rec.target, "%s", target ? target : "");
  snprintf(rec.result, sizeof rec.result, "%s", result);
  snprintf(rec.detail, sizeof rec.detail, "%s", detail ? detail : "");
  snprintf(rec.source, sizeof rec.source, "%s", c->source ? c->source : "");
  snprintf(rec.remote, sizeof rec.remote, "%s", c->remote ? c->remote : "");
  int rc = auth_audit_append(c->audit, c->db, &rec);
  if (rc < 0) PL_LOG(PL_LOG_ERROR, "audit", "append failed action=%s err=\"%s\"", action, pl_strerror(rc));
  return rc;
}

/* Records the outcome of an operation and passes its code through. */
static int finish(admin_ctx *c, int rc, int64_t tenant_id, const char *action, const char *target, pl_err *err) {
  const char *detail = rc < 0 && err ? err->msg : "";
  if (rc < 0 && err && !err->msg[0]) detail = pl_strerror(rc);
  int arc = admin_audit(c, tenant_id, action, target, rc < 0 ? "error" : "ok", detail);
  /* A change that cannot be audited is reported as failed, so nobody believes it was logged. */
  if (rc == 0 && arc < 0) return pl_err_set(err, arc, "the change was made but its audit record failed");
  return rc;
}

static int store_fail(int rc, pl_err *err, const char *what) {
  if (rc == PL_EEXIST) return pl_err_set(err, rc, "%s already exists", what);
  if (rc == PL_ENOTFOUND) return pl_err_set(err, rc, "%s not found", what);
  return pl_err_set(err, rc, "%s: %s", what, pl_strerror(rc));
}

static int check_retention(const store_tenant *t, pl_err *err) {
  if (t->retention_days < 0 || t->retention_days > 36500)
    return pl_err_set(err, PL_EINVAL, "retention_days must be 0 (keep for ever) to 36500");
  return 0;
}

int admin_tenant_create(admin_ctx *c, store_tenant *t, pl_err *err) {
  char target[96];
  snprintf(target, sizeof target, "tenant:%s", t->name);
  int rc = admin_check_tenant_name(t->name, err);
  if (rc == 0) rc = admin_check_text("display_name", t->display_name, 255, err);
  if (rc == 0) rc = check_retention(t, err);
  if (rc == 0 && (rc = store_tenant_create(c->db, t)) < 0) store_fail(rc, err, "tenant");
  return finish(c, rc, rc == 0 ? t->id : 0, "tenant.create", target, err);
}

int admin_tenant_update(admin_ctx *c, const store_tenant *t, pl_err *err) {
  char target[96];
  snprintf(target, sizeof target, "tenant:%s", t->name);
  int rc = admin_check_text("display_name", t->display_name, 255, err);
  if (rc == 0) rc = admin_check_text("prefecture", t->prefecture, 63, err);
  if (rc == 0) rc = admin_check_text("industry", t->industry, 63, err);
  if (rc == 0) rc = check_retention(t, err);
  if (rc == 0 && (rc = store_tenant_update(c->db, t)) < 0) store_fail(rc, err, "tenant");
  return finish(c, rc, t->id, "tenant.update", target, err);
}

int admin_tenant_delete(admin_ctx *c, const store_tenant *t, pl_err *err) {
  char target[96];
  snprintf(target, sizeof target, "tenant:%s", t->name);
  int rc = store_tenant_delete(c->db, t->id);
  if (rc < 0) store_fail(rc, err, "tenant");
  return finish(c, rc, t->id, "tenant.delete", target, err);
}

static int check_password(const char *password, pl_err *err) {
  size_t n = strlen(password);
  if (n < AUTH_PASSWORD_MIN || n > AUTH_PASSWORD_MAX)
    return pl_err_set(err, PL_EINVAL, "password must be %d to %d bytes", AUTH_PASSWORD_MIN, AUTH_PASSWORD_MAX);
  return 0;
}

int admin_user_create(admin_ctx *c, store_user *u, const char *password, pl_err *err) {
  char target[160];
  snprintf(target, sizeof target, "user:%s", u->name);
  int rc = admin_check_user_name(u->name, err);
  if (rc == 0) rc = admin_check_text("display_name", u->display_name, 255, err);
  if (rc == 0 && auth_role_parse(u->role) < 0) rc = pl_err_set(err, PL_EINVAL, "unknown role \"%s\"", u->role);
  if (rc == 0 && auth_role_parse(u->role) == AUTH_ROLE_DEVICE)
    rc = pl_err_set(err, PL_EINVAL, "a user cannot have the device role");
  if (rc == 0) rc = check_password(password, err);
  if (rc == 0 && (rc = auth_password_hash(password, u->password_hash)) < 0)
    pl_err_set(err, rc, "password could not be hashed");
  if (rc == 0 && (rc = store_user_create(c->db, u)) < 0) store_fail(rc, err, "user");
  return finish(c, rc, u->tenant_id, "user.create", target, err);
}

int admin_user_update(admin_ctx *c, store_user *u, const char *password, pl_err *err) {
  char target[160];
  snprintf(target, sizeof target, "user:%s", u->name);
  int rc = admin_check_text("display_name", u->display_name, 255, err);
  if (rc == 0 && (auth_role_parse(u->role) < 0 || auth_role_parse(u->role) == AUTH_ROLE_DEVICE))
    rc = pl_err_set(err, PL_EINVAL, "unknown role \"%s\"", u->role);
  if (rc == 0 && password) {
    rc = check_password(password, err);
    if (rc == 0 && (rc = auth_password_hash(password, u->password_hash)) < 0)
      pl_err_set(err, rc, "password could not be hashed");
  }
  if (rc == 0 && (rc = store_user_update(c->db, u)) < 0) store_fail(rc, err, "user");
  return finish(c, rc, u->tenant_id, password ? "user.update.password" : "user.update", target, err);
}

int admin_user_delete(admin_ctx *c, const store_user *u, pl_err *err) {
  char target[160];
  snprintf(target, sizeof target, "user:%s", u->name);
  int rc = store_user_delete(c->db, u->tenant_id, u->id);
  if (rc < 0) store_fail(rc, err, "user");
  return finish(c, rc, u->tenant_id, "user.delete", target, err);
}

int admin_token_create(admin_ctx *c, store_token *t, char token[AUTH_TOKEN_MAX], pl_err *err) {
  int session = strcmp(t->kind, "session") == 0;
  int rc = admin_check_text("token name", t->name, 127, err);
  if (rc == 0 && (auth_role_parse(t->role) < 0 || auth_role_parse(t->role) == AUTH_ROLE_DEVICE))
    rc = pl_err_set(err, PL_EINVAL, "unknown role \"%s\"", t->role);
  if (rc == 0)
    rc = auth_token_new(session ? AUTH_TOKEN_SESSION : AUTH_TOKEN_API, token, t->prefix, t->hash);
  if (rc == 0 && (rc = store_token_create(c->db, t)) < 0) store_fail(rc, err, "token");
  if (rc < 0) memset(token, 0, AUTH_TOKEN_MAX);
  char target[96];
  snprintf(target, sizeof target, "token:%s", t->prefix);
  return finish(c, rc, t->tenant_id, session ? "session.create" : "token.create", target, err);
}

int admin_token_revoke(admin_ctx *c, const store_token *t, pl_err *err) {
  char target[96];
  snprintf(target, sizeof target, "token:%s", t->prefix);
  int rc = store_token_revoke(c->db, t->tenant_id, t->id, pl_now_ms());
  if (rc < 0) store_fail(rc, err, "token");
  return finish(c, rc, t->tenant_id, strcmp(t->kind, "session") == 0 ? "session.revoke" : "token.revoke",
                target, err);
}

static int check_device(const store_device *d, pl_err *err) {
  int rc = admin_check_device_name(d->name, err);
  if (rc == 0) rc = admin_check_text("type", d->type, 63, err);
  if (rc == 0) rc = admin_check_text("vendor", d->vendor, 127, err);
  if (rc == 0) rc = admin_check_text("product", d->product, 127, err);
  if (rc == 0) rc = admin_check_text("firmware", d->firmware, 63, err);
  if (rc == 0) rc = admin_check_text("location", d->location, 255, err);
  if (rc == 0 && d->attributes_json && strlen(d->attributes_json) > 16384)
    rc = pl_err_set(err, PL_EINVAL, "attributes are larger than 16384 bytes");
  return rc;
}

int admin_device_create(admin_ctx *c, store_device *d, char token[AUTH_TOKEN_MAX], pl_err *err) {
  char target[160];
  snprintf(target, sizeof target, "device:%s", d->name);
  int rc = check_device(d, err);
  if (rc == 0) rc = auth_token_new(AUTH_TOKEN_DEVICE, token, d->token_prefix, d->token_hash);
  if (rc == 0 && (rc = store_device_create(c->db, d)) < 0) store_fail(rc, err, "device");
  if (rc < 0) memset(token, 0, AUTH_TOKEN_MAX);
  return finish(c, rc, d->tenant_id, "device.create", target, err);
}

int admin_device_update(admin_ctx *c, const store_device *d, pl_err *err) {
  char target[160];
  snprintf(target, sizeof target, "device:%s", d->name);
  int rc = check_device(d, err);
  if (rc == 0 && (rc = store_device_update(c->db, d)) < 0) store_fail(rc, err, "device");
  return finish(c, rc, d->tenant_id, "device.update", target, err);
}

int admin_device_delete(admin_ctx *c, const store_device *d, pl_err *err) {
  char target[160];
  snprintf(target, sizeof target, "device:%s", d->name);
  int rc = store_device_delete(c->db, d->tenant_id, d->id);
  if (rc < 0) store_fail(rc, err, "device");
  return finish(c, rc, d->tenant_id, "device.delete", target, err);
}

int admin_device_rotate(admin_ctx *c, store_device *d, char token[AUTH_TOKEN_MAX], pl_err *err) {
  char target[160];
  snprintf(target, sizeof target, "device:%s", d->name);
  int rc = auth_token_new(AUTH_TOKEN_DEVICE, token, d->token_prefix, d->token_hash);
  if (rc == 0 && (rc = store_device_set_token(c->db, d->tenant_id, d->id, d->token_prefix, d->token_hash)) < 0)
    store_fail(rc, err, "device");
  if (rc < 0) memset(token, 0, AUTH_TOKEN_MAX);
  return finish(c, rc, d->tenant_id, "device.token.rotate", target, err);
}
