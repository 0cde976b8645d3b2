/* Authentication and authorisation: Argon2id passwords, random tokens stored hashed, the role
 * table, request principals, and the tamper-evident audit log.
 *
 * Tokens are 32 random bytes, base64url-encoded behind a kind prefix: "plt_" API tokens,
 * "pls_" login sessions, "pld_" device tokens. Only a BLAKE2b-256 hash is stored, with a
 * visible prefix (the kind and the first 8 characters) to recognise a token in lists and logs.
 *
 * Audit log: each record's hash = keyed BLAKE2b-256(key, prev_hash || canonical record bytes),
 * where the key (32 random bytes) lives in a file outside the database, mode 0600. Editing,
 * deleting or reordering a record breaks the chain at that record; auth_audit_verify names
 * the first broken one.
 */
#ifndef PLATEAU_AUTH_AUTH_H
#define PLATEAU_AUTH_AUTH_H

#include "base/err.h"
#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

/* ---- passwords ---- */
#define AUTH_PASSWORD_MIN 8
#define AUTH_PASSWORD_MAX 256
#define AUTH_HASH_STR_MAX 128
/* Hashes with Argon2id (libsodium's crypto_pwhash_str, interactive limits). PL_EINVAL when
 * the password is shorter than AUTH_PASSWORD_MIN or longer than AUTH_PASSWORD_MAX. */
int auth_password_hash(const char *password, char out[AUTH_HASH_STR_MAX]);
/* 0 when it matches, PL_EAUTH otherwise (also for a NULL or malformed hash, and a password
 * longer than AUTH_PASSWORD_MAX, which is refused before Argon2 runs). */
int auth_password_verify(const char *hash, const char *password);
/* A random password of 20 characters from an unambiguous alphabet (for `plateau init`).
 * Writes "" only if libsodium cannot initialise (no system randomness). */
void auth_password_generate(char out[32]);

/* ---- tokens ---- */
#define AUTH_TOKEN_MAX 64 /* buffer size for a token string */
#define AUTH_TOKEN_LEN 47 /* length of every token: 4-character kind prefix + 43 base64url */
typedef enum { AUTH_TOKEN_API, AUTH_TOKEN_SESSION, AUTH_TOKEN_DEVICE } auth_token_kind;
/* Generates a token of the kind; writes the token (shown once), its visible prefix and hash. */
int auth_token_new(auth_token_kind kind, char token[AUTH_TOKEN_MAX], char prefix[16], uint8_t hash[32]);
void auth_token_hash(const char *token, size_t len, uint8_t hash[32]);
/* The kind from the token's prefix, or PL_EINVAL when it is not a Plateau token: checks the
 * prefix, the length (AUTH_TOKEN_LEN) and the base64url alphabet. */
int auth_token_kind_of(const char *token);

/* ---- roles (one table decides what each may do) ---- */
typedef enum {
  AUTH_ROLE_ADMIN = 0,   /* regional operator: everything, every tenant */
  AUTH_ROLE_REGULATOR,   /* reads every tenant, changes nothing; audited reads */
  AUTH_ROLE_TENANT_ADMIN,/* manages its tenant: users, tokens, devices */
  AUTH_ROLE_OPERATOR,    /* runs its tenant: devices, data, events */
  AUTH_ROLE_VIEWER,      /* reads its tenant */
  AUTH_ROLE_DEVICE,      /* a device credential: reports its own data */
  AUTH_ROLE_COUNT
} auth_role;

typedef enum {
  AUTH_PERM_TENANT_READ = 0,
  AUTH_PERM_TENANT_WRITE,
  AUTH_PERM_USER_READ,
  AUTH_PERM_USER_WRITE,
  AUTH_PERM_TOKEN_READ,
  AUTH_PERM_TOKEN_WRITE,   /* create/revoke tokens for the tenant (own tokens: any user role) */
  AUTH_PERM_DEVICE_READ,
  AUTH_PERM_DEVICE_WRITE,
  AUTH_PERM_DEVICE_TOKEN,  /* issue or rotate device tokens */
  AUTH_PERM_DATA_READ,     /* telemetry, identifiers, trace events */
  AUTH_PERM_DATA_WRITE,
  AUTH_PERM_AUDIT_READ,
  AUTH_PERM_COUNT
} auth_perm;

/* Whether the role may do p at all. Which tenant it reaches is auth_role_cross_tenant's
 * business. Two permissions are narrower for some roles than a yes suggests: TOKEN_READ and
 * TOKEN_WRITE cover every token of the tenant for admin and tenant-admin, but only the
 * principal's own tokens for regulator, operator and viewer; DATA_WRITE for a device covers its
 * own data only. */
const char *auth_role_name(auth_role r); /* "unknown" when out of range */
/* The role for a name, or PL_EINVAL. */
int auth_role_parse(const char *name);
int auth_can(auth_role r, auth_perm p);
/* Admin and regulator act across tenants. */
int auth_role_cross_tenant(auth_role r);
/* Whether a principal of role `granter` may create a user or token of role `target`: never a
 * role above its own, admin/regulator only by admin, device never as a user or API token. */
int auth_role_may_grant(auth_role granter, auth_role target);

/* Who is making a request, established from a token. */
typedef struct auth_principal {
  int64_t tenant_id;
  char tenant_name[64];
  int64_t user_id;    /* 0 for tokens without a user and for devices */
  int64_t device_id;  /* for device tokens */
  int64_t token_id;   /* 0 for device tokens */
  char name[128];     /* user name, device name, or the token's name */
  char token_prefix[16];
  auth_role role;
} auth_principal;

/* Looks a bearer token up: API and session tokens in the token table (live, not expired, user
 * not disabled), device tokens on devices. Returns 0 and fills *out, or PL_EAUTH; a store
 * failure during the lookup is passed through (PL_EBUSY, PL_EIO) so it is not mistaken for bad
 * credentials. The role is the token's, or the user's when that has since been lowered below
 * it; a token whose role is not comparable with its user's current role is refused. Records
 * use of API and session tokens (store_token_touch, best effort); a device's last_seen is left
 * to the data paths (store_device_touch). */
int auth_authenticate(store *s, const char *token, int64_t now_ms, auth_principal *out);
/* A stable actor label for audit records: "user:NAME", "token:PREFIX", "device:NAME". */
void auth_principal_actor(const auth_principal *p, char *out, size_t outsz);

/* ---- audit log ---- */
typedef struct auth_audit auth_audit;
/* Loads the chain key from key_path; when create is set and the file does not exist, creates
 * it (32 random bytes, mode 0600, fsynced). PL_ENOTFOUND when missing and not create. */
int auth_audit_open(const char *key_path, int create, auth_audit **out, pl_err *err);
void auth_audit_free(auth_audit *a);
/* Appends rec (fills seq, ts_ms when 0, prev_hash, hash) in its own transaction, retrying a
 * few times on PL_EBUSY. Thread-safe across connections: the transaction serialises appenders.
 * When s is already inside a transaction (store_begin), the record joins it instead, so it
 * commits or rolls back with the change it describes. Strings must be NUL-terminated within
 * their buffers (PL_EINVAL). */
int auth_audit_append(auth_audit *a, store *s, store_audit *rec);
/* Walks the whole chain. Returns 0 when intact (and *count records), PL_ECORRUPT when broken
 * with *first_bad = the seq of the first record whose hash or link does not verify (after a
 * deleted record: the seq of the record that follows the gap). The record encoding is specified
 * in auth/audit.c. */
int auth_audit_verify(auth_audit *a, store *s, int64_t *count, int64_t *first_bad, pl_err *err);

#endif
