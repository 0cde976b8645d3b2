/* Administrative operations shared by the HTTP API and the CLI: validation of names and
 * fields, the store change, and the audit record, in one place so both faces behave the same.
 *
 * Permission checks are the caller's (the API checks roles; the CLI is run by the operator of
 * the data directory). Every operation appends one audit record, "ok" on success and "error"
 * on failure (validation failures included), with ctx->actor and ctx->source.
 */
#ifndef PLATEAU_ADMIN_ADMIN_H
#define PLATEAU_ADMIN_ADMIN_H

#include "auth/auth.h"
#include "base/err.h"
#include "store/store.h"

typedef struct admin_ctx {
  store *db;
  auth_audit *audit;
  const char *actor;  /* e.g. "user:admin", "cli" */
  const char *source; /* "api" | "cli" */
  const char *remote; /* client address or "" */
} admin_ctx;

/* Name rules (docs/api.md "Names"). 0 or PL_EINVAL with a message. */
int admin_check_tenant_name(const char *name, pl_err *err);
int admin_check_user_name(const char *name, pl_err *err);
int admin_check_device_name(const char *name, pl_err *err);
/* Free text fields: valid UTF-8, no control characters, at most max bytes. */
int admin_check_text(const char *field, const char *value, size_t max, pl_err *err);

/* Appends an audit record; failures to audit are logged and returned. */
int admin_audit(admin_ctx *c, int64_t tenant_id, const char *action, const char *target, const char *result,
                const char *detail);

int admin_tenant_create(admin_ctx *c, store_tenant *t, pl_err *err);
int admin_tenant_update(admin_ctx *c, const store_tenant *t, pl_err *err);
int admin_tenant_delete(admin_ctx *c, const store_tenant *t, pl_err *err);

/* Hashes password and creates the user (u->password_hash is filled). */
int admin_user_create(admin_ctx *c, store_user *u, const char *password, pl_err *err);
/* Updates the user; a non-NULL password is hashed and set. */
int admin_user_update(admin_ctx *c, store_user *u, const char *password, pl_err *err);
int admin_user_delete(admin_ctx *c, const store_user *u, pl_err *err);

/* Issues an API or session token. t holds tenant_id, user_id, kind, name, role, expires_ms;
 * on success t is filled as stored and token receives the secret (shown once). */
int admin_token_create(admin_ctx *c, store_token *t, char token[AUTH_TOKEN_MAX], pl_err *err);
int admin_token_revoke(admin_ctx *c, const store_token *t, pl_err *err);

/* Creates a device with a new device token (written to token). */
int admin_device_create(admin_ctx *c, store_device *d, char token[AUTH_TOKEN_MAX], pl_err *err);
int admin_device_update(admin_ctx *c, const store_device *d, pl_err *err);
int admin_device_delete(admin_ctx *c, const store_device *d, pl_err *err);
/* Issues a new device token; the previous one stops working at once. */
int admin_device_rotate(admin_ctx *c, store_device *d, char token[AUTH_TOKEN_MAX], pl_err *err);

#endif
