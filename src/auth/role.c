/* Roles: one table of what each role may do (docs/api.md, "Roles") and one of which roles each
 * may grant. Both are the only place these decisions are written down. */
#include "auth/auth_int.h"

#include <string.h>

static const char *const role_names[AUTH_ROLE_COUNT] = {
    [AUTH_ROLE_ADMIN] = "admin",
    [AUTH_ROLE_REGULATOR] = "regulator",
    [AUTH_ROLE_TENANT_ADMIN] = "tenant-admin",
    [AUTH_ROLE_OPERATOR] = "operator",
    [AUTH_ROLE_VIEWER] = "viewer",
    [AUTH_ROLE_DEVICE] = "device",
};

/* Which tenant a permission reaches is decided elsewhere: admin and regulator act across
 * tenants (auth_role_cross_tenant), others on their own. Two rows are narrower than a 1 says:
 * - tokens: admin and tenant-admin manage every token of the tenant; regulator, operator and
 *   viewer only their own (docs/api.md: "own"; a regulator may create its own read tokens);
 * - data write for a device: only its own device's data. */
static const unsigned char role_perms[AUTH_ROLE_COUNT][AUTH_PERM_COUNT] = {
    /*                        ten.r ten.w usr.r usr.w tok.r tok.w dev.r dev.w dev.t dat.r dat.w
       aud.r */
    [AUTH_ROLE_ADMIN] = /*   */ {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    [AUTH_ROLE_REGULATOR] = /**/ {1, 0, 1, 0, 1, 1, 1, 0, 0, 1, 0, 1},
    [AUTH_ROLE_TENANT_ADMIN] = {1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    [AUTH_ROLE_OPERATOR] = /* */ {1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0},
    [AUTH_ROLE_VIEWER] = /*  */ {1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 0, 0},
    [AUTH_ROLE_DEVICE] = /*  */ {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0},
};

/* role_grants[granter][target]: never above one's own; admin and regulator only by admin (and a
 * regulator its own kind, for its read tokens); device never. */
static const unsigned char role_grants[AUTH_ROLE_COUNT][AUTH_ROLE_COUNT] = {
    /*                         admin regul t-adm oper  view  device */
    [AUTH_ROLE_ADMIN] = /*   */ {1, 1, 1, 1, 1, 0}, [AUTH_ROLE_REGULATOR] = /**/ {0, 1, 0, 0, 0, 0},
    [AUTH_ROLE_TENANT_ADMIN] = {0, 0, 1, 1, 1, 0},  [AUTH_ROLE_OPERATOR] = /* */ {0, 0, 0, 1, 1, 0},
    [AUTH_ROLE_VIEWER] = /*  */ {0, 0, 0, 0, 1, 0}, [AUTH_ROLE_DEVICE] = /*  */ {0, 0, 0, 0, 0, 0},
};

static int role_valid(int r) {
  return r >= 0 && r < AUTH_ROLE_COUNT;
}

const char *auth_role_name(auth_role r) {
  return role_valid((int)r) ? role_names[r] : "unknown";
}

int auth_role_parse(const char *name) {
  if (!name)
    return PL_EINVAL;
  for (int r = 0; r < AUTH_ROLE_COUNT; r++)
    if (strcmp(name, role_names[r]) == 0)
      return r;
  return PL_EINVAL;
}

int auth_can(auth_role r, auth_perm p) {
  if (!role_valid((int)r) || (int)p < 0 || p >= AUTH_PERM_COUNT)
    return 0;
  return role_perms[r][p];
}

int auth_role_cross_tenant(auth_role r) {
  return r == AUTH_ROLE_ADMIN || r == AUTH_ROLE_REGULATOR;
}

int auth_role_may_grant(auth_role granter, auth_role target) {
  if (!role_valid((int)granter) || !role_valid((int)target))
    return 0;
  return role_grants[granter][target];
}
