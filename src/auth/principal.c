/* Request principals: who a bearer token stands for.
 *
 * The token's shape picks the table: device tokens ("pld_") are looked up on devices, API and
 * session tokens in the token table, always by the BLAKE2b hash of the whole token through a
 * unique index (a lookup by hash leaks nothing about the secret); the stored hash is then
 * compared again in constant time. An API or session token must be live (not revoked, not
 * expired), of the kind its prefix says, and its user (if any) enabled. Its role is the token's,
 * unless the user's role has since been lowered below it: then the user's. When the two are not
 * comparable (neither may grant the other, e.g. a tenant-admin token of a user who is now a
 * regulator) the token is refused rather than guessing which tenant it may reach. */
#include "auth/auth_int.h"

#include "base/log.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

static int principal_from_device(store *s, const uint8_t hash[32], auth_principal *p) {
  store_device d = {0};
  int rc = store_device_get_by_token_hash(s, hash, &d);
  if (rc == PL_ENOTFOUND)
    return PL_EAUTH;
  if (rc < 0)
    return rc;
  if (sodium_memcmp(d.token_hash, hash, 32) != 0)
    rc = PL_EAUTH;
  p->tenant_id = d.tenant_id;
  p->device_id = d.id;
  snprintf(p->name, sizeof p->name, "%s", d.name);
  snprintf(p->token_prefix, sizeof p->token_prefix, "%s", d.token_prefix);
  p->role = AUTH_ROLE_DEVICE;
  store_device_clear(&d);
  return rc;
}

/* The role a token of role token_role acts with for a user whose role is now user_role. */
static int effective_role(int user_role, int token_role) {
  if (auth_role_may_grant((auth_role)user_role, (auth_role)token_role))
    return token_role;
  if (auth_role_may_grant((auth_role)token_role, (auth_role)user_role))
    return user_role;
  return PL_EAUTH;
}

static int principal_from_token(store *s, int kind, const uint8_t hash[32], int64_t now_ms,
                                auth_principal *p) {
  store_token t;
  int rc = store_token_get_by_hash(s, hash, &t);
  if (rc == PL_ENOTFOUND)
    return PL_EAUTH;
  if (rc < 0)
    return rc;
  if (sodium_memcmp(t.hash, hash, 32) != 0)
    return PL_EAUTH;
  if (strcmp(t.kind, kind == AUTH_TOKEN_SESSION ? "session" : "api") != 0)
    return PL_EAUTH;
  if (t.revoked_ms != 0)
    return PL_EAUTH;
  if (t.expires_ms != 0 && now_ms >= t.expires_ms)
    return PL_EAUTH;
  int role = auth_role_parse(t.role);
  if (role < 0 || role == AUTH_ROLE_DEVICE)
    return PL_EAUTH;
  if (t.user_id) {
    store_user u;
    rc = store_user_get(s, t.tenant_id, t.user_id, &u);
    if (rc == PL_ENOTFOUND)
      return PL_EAUTH;
    if (rc < 0)
      return rc;
    if (u.disabled)
      return PL_EAUTH;
    int user_role = auth_role_parse(u.role);
    if (user_role < 0 || user_role == AUTH_ROLE_DEVICE)
      return PL_EAUTH;
    if ((role = effective_role(user_role, role)) < 0)
      return role;
    snprintf(p->name, sizeof p->name, "%s", u.name);
  } else {
    snprintf(p->name, sizeof p->name, "%s", t.name);
  }
  p->tenant_id = t.tenant_id;
  p->user_id = t.user_id;
  p->token_id = t.id;
  snprintf(p->token_prefix, sizeof p->token_prefix, "%s", t.prefix);
  p->role = (auth_role)role;
  return 0;
}

int auth_authenticate(store *s, const char *token, int64_t now_ms, auth_principal *out) {
  int kind = auth_token_kind_of(token);
  if (kind < 0)
    return PL_EAUTH;
  uint8_t hash[32];
  auth_token_hash(token, AUTH_TOKEN_LEN, hash);
  auth_principal p;
  memset(&p, 0, sizeof p);
  int rc = kind == AUTH_TOKEN_DEVICE ? principal_from_device(s, hash, &p)
                                     : principal_from_token(s, kind, hash, now_ms, &p);
  sodium_memzero(hash, sizeof hash);
  if (rc < 0)
    return rc;
  store_tenant tenant;
  rc = store_tenant_get(s, p.tenant_id, &tenant);
  if (rc == PL_ENOTFOUND)
    return PL_EAUTH;
  if (rc < 0)
    return rc;
  snprintf(p.tenant_name, sizeof p.tenant_name, "%s", tenant.name);
  if (p.token_id) {
    /* Recording use is best effort: a busy database must not turn a valid request away. */
    rc = store_token_touch(s, p.token_id, now_ms);
    if (rc < 0)
      PL_LOG(PL_LOG_WARN, "auth", "token=%s touch failed err=\"%s\"", p.token_prefix,
             pl_strerror(rc));
  }
  *out = p;
  return 0;
}

void auth_principal_actor(const auth_principal *p, char *out, size_t outsz) {
  if (!outsz)
    return;
  if (p->user_id)
    snprintf(out, outsz, "user:%s", p->name);
  else if (p->device_id)
    snprintf(out, outsz, "device:%s", p->name);
  else
    snprintf(out, outsz, "token:%s", p->token_prefix);
}
