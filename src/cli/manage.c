/* plateau tenant|user|token|device: administration of a data directory, which works while
 * the server runs (SQLite allows it). Every change is audited with source "cli". */
#include "cli/cli.h"
#include "cli/cli_int.h"

#include "base/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs `plateau NOUN VERB ...`: parses flags, opens the data directory, calls fn. */
typedef int (*verb_fn)(cli_data *d, const cli_args *a);
typedef struct verb {
  const char *name;
  verb_fn fn;
  int npos; /* positional words after the verb */
} verb;

static int run_noun(const char *noun, const char *usage, const verb *verbs, size_t nverbs,
                    const char *const *accepted, int argc, char **argv) {
  if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)
    return cli_usage(argc < 1 ? stderr : stdout, usage, argc < 1 ? 2 : 0);
  const verb *v = NULL;
  for (size_t i = 0; i < nverbs; i++)
    if (strcmp(verbs[i].name, argv[0]) == 0) v = &verbs[i];
  if (!v) {
    fprintf(stderr, "plateau %s: unknown command \"%s\"\n", noun, argv[0]);
    return cli_usage(stderr, usage, 2);
  }
  cli_args a;
  int rc = cli_parse(argc - 1, argv + 1, accepted, &a);
  if (rc) return rc;
  if (a.help) return cli_usage(stdout, usage, 0);
  if (a.npos != v->npos) return cli_usage(stderr, usage, 2);
  cli_data d;
  if ((rc = cli_data_open(cli_flag(&a, "data", NULL), &d)) != 0) return rc;
  rc = v->fn(&d, &a);
  cli_data_close(&d);
  return rc;
}

static int fail(const char *what, int rc, const pl_err *err) {
  fprintf(stderr, "plateau: %s: %s\n", what, err && err->msg[0] ? err->msg : pl_strerror(rc));
  return 1;
}

static void set_text(char *dst, size_t size, const cli_args *a, const char *flag) {
  const char *v = cli_flag(a, flag, NULL);
  if (v) snprintf(dst, size, "%s", v);
}

/* ---- tenant ---- */

static const char tenant_usage[] =
    "usage: plateau tenant create NAME --data DIR [--display-name TEXT] [--prefecture TEXT] [--industry TEXT]\n"
    "       plateau tenant list --data DIR\n"
    "       plateau tenant delete NAME --data DIR\n"
    "\n"
    "A tenant is one enterprise (or the regional authority). NAME: a-z, 0-9 and '-'.\n";

static int tenant_create(cli_data *d, const cli_args *a) {
  store_tenant t;
  memset(&t, 0, sizeof t);
  snprintf(t.name, sizeof t.name, "%s", a->pos[0]);
  if (strlen(a->pos[0]) >= sizeof t.name) return fail("tenant create", PL_EINVAL, NULL);
  set_text(t.display_name, sizeof t.display_name, a, "display-name");
  set_text(t.prefecture, sizeof t.prefecture, a, "prefecture");
  set_text(t.industry, sizeof t.industry, a, "industry");
  pl_err err = {{0}};
  int rc = admin_tenant_create(&d->ctx, &t, &err);
  if (rc < 0) return fail("tenant create", rc, &err);
  printf("%s\n", t.name);
  return 0;
}

/* Lists print every row, a page at a time; the callbacks record the last id. */
#define PAGE 500

static int print_tenant(void *ctx, const store_tenant *t) {
  *(int64_t *)ctx = t->id;
  printf("%-24s %-32s %-16s %s\n", t->name, t->display_name, t->prefecture, t->industry);
  return 0;
}

static int tenant_list(cli_data *d, const cli_args *a) {
  (void)a;
  printf("%-24s %-32s %-16s %s\n", "NAME", "DISPLAY NAME", "PREFECTURE", "INDUSTRY");
  int64_t last = 0;
  int n;
  while ((n = store_tenant_list(d->db, last, PAGE, print_tenant, &last)) == PAGE) {
  }
  return n < 0 ? fail("tenant list", n, NULL) : 0;
}

static int tenant_delete(cli_data *d, const cli_args *a) {
  store_tenant t;
  int rc = store_tenant_get_by_name(d->db, a->pos[0], &t);
  if (rc < 0) return fail("tenant delete", rc, NULL);
  pl_err err = {{0}};
  if ((rc = admin_tenant_delete(&d->ctx, &t, &err)) < 0) return fail("tenant delete", rc, &err);
  return 0;
}

int cli_tenant(int argc, char **argv) {
  static const verb verbs[] = {{"create", tenant_create, 1}, {"list", tenant_list, 0}, {"delete", tenant_delete, 1}};
  static const char *const accepted[] = {"data", "display-name", "prefecture", "industry", NULL};
  return run_noun("tenant", tenant_usage, verbs, 3, accepted, argc, argv);
}

/* ---- user ---- */

static const char user_usage[] =
    "usage: plateau user create NAME --data DIR --tenant NAME --role ROLE [--display-name TEXT]\n"
    "       plateau user list --data DIR --tenant NAME\n"
    "       plateau user passwd NAME --data DIR\n"
    "       plateau user delete NAME --data DIR\n"
    "\n"
    "ROLE: admin, regulator, tenant-admin, operator or viewer. The password is taken from\n"
    "PLATEAU_USER_PASSWORD, or generated and printed once.\n";

static const char *user_password(char generated[32], int *was_generated) {
  const char *pw = getenv("PLATEAU_USER_PASSWORD");
  *was_generated = !pw || !*pw;
  if (*was_generated) {
    auth_password_generate(generated);
    pw = generated;
  }
  return pw;
}

static int user_create(cli_data *d, const cli_args *a) {
  store_tenant t;
  int rc = cli_tenant_arg(d, a, &t);
  if (rc) return rc;
  store_user u;
  memset(&u, 0, sizeof u);
  u.tenant_id = t.id;
  if (strlen(a->pos[0]) >= sizeof u.name) return fail("user create", PL_EINVAL, NULL);
  snprintf(u.name, sizeof u.name, "%s", a->pos[0]);
  snprintf(u.role, sizeof u.role, "%s", cli_flag(a, "role", "viewer"));
  set_text(u.display_name, sizeof u.display_name, a, "display-name");
  char generated[32];
  int was_generated;
  const char *pw = user_password(generated, &was_generated);
  pl_err err = {{0}};
  if ((rc = admin_user_create(&d->ctx, &u, pw, &err)) < 0) return fail("user create", rc, &err);
  if (was_generated) printf("%s password: %s\n", u.name, generated);
  else printf("%s\n", u.name);
  return 0;
}

static int print_user(void *ctx, const store_user *u) {
  *(int64_t *)ctx = u->id;
  printf("%-8lld %-24s %-14s %-8s %s\n", (long long)u->id, u->name, u->role, u->disabled ? "disabled" : "active",
         u->display_name);
  return 0;
}

static int user_list(cli_data *d, const cli_args *a) {
  store_tenant t;
  int rc = cli_tenant_arg(d, a, &t);
  if (rc) return rc;
  printf("%-8s %-24s %-14s %-8s %s\n", "ID", "NAME", "ROLE", "STATE", "DISPLAY NAME");
  int64_t last = 0;
  int n;
  while ((n = store_user_list(d->db, t.id, last, PAGE, print_user, &last)) == PAGE) {
  }
  return n < 0 ? fail("user list", n, NULL) : 0;
}

static int user_passwd(cli_data *d, const cli_args *a) {
  store_user u;
  int rc = store_user_get_by_name(d->db, a->pos[0], &u);
  if (rc < 0) return fail("user passwd", rc, NULL);
  char generated[32];
  int was_generated;
  const char *pw = user_password(generated, &was_generated);
  pl_err err = {{0}};
  if ((rc = admin_user_update(&d->ctx, &u, pw, &err)) < 0) return fail("user passwd", rc, &err);
  if (was_generated) printf("%s password: %s\n", u.name, generated);
  return 0;
}

static int user_delete(cli_data *d, const cli_args *a) {
  store_user u;
  int rc = store_user_get_by_name(d->db, a->pos[0], &u);
  if (rc < 0) return fail("user delete", rc, NULL);
  pl_err err = {{0}};
  if ((rc = admin_user_delete(&d->ctx, &u, &err)) < 0) return fail("user delete", rc, &err);
  return 0;
}

int cli_user(int argc, char **argv) {
  static const verb verbs[] = {
      {"create", user_create, 1}, {"list", user_list, 0}, {"passwd", user_passwd, 1}, {"delete", user_delete, 1}};
  static const char *const accepted[] = {"data", "tenant", "role", "display-name", NULL};
  return run_noun("user", user_usage, verbs, 4, accepted, argc, argv);
}

/* ---- token ---- */

static const char token_usage[] =
    "usage: plateau token create --data DIR --tenant NAME --role ROLE [--name TEXT] [--expires-in DURATION]\n"
    "       plateau token list --data DIR --tenant NAME\n"
    "       plateau token revoke ID --data DIR --tenant NAME\n"
    "\n"
    "create prints only the new token (shown once); DURATION like 30d or 12h.\n";

static int token_create(cli_data *d, const cli_args *a) {
  store_tenant t;
  int rc = cli_tenant_arg(d, a, &t);
  if (rc) return rc;
  const char *role = cli_flag(a, "role", NULL);
  if (!role) {
    fprintf(stderr, "plateau token create: --role ROLE is required\n");
    return 2;
  }
  store_token tok;
  memset(&tok, 0, sizeof tok);
  tok.tenant_id = t.id;
  snprintf(tok.kind, sizeof tok.kind, "api");
  snprintf(tok.role, sizeof tok.role, "%s", role);
  snprintf(tok.name, sizeof tok.name, "%s", cli_flag(a, "name", "created by plateau token create"));
  const char *exp = cli_flag(a, "expires-in", NULL);
  if (exp) {
    int64_t ns;
    if (pl_duration_parse(exp, &ns) < 0 || ns <= 0) {
      fprintf(stderr, "plateau token create: --expires-in must be a duration such as 30d\n");
      return 2;
    }
    tok.expires_ms = pl_now_ms() + ns / 1000000;
  }
  char token[AUTH_TOKEN_MAX];
  pl_err err = {{0}};
  if ((rc = admin_token_create(&d->ctx, &tok, token, &err)) < 0) return fail("token create", rc, &err);
  printf("%s\n", token);
  memset(token, 0, sizeof token);
  return 0;
}

static int print_token(void *ctx, const store_token *t) {
  *(int64_t *)ctx = t->id;
  char created[40];
  printf("%-8lld %-16s %-14s %-8s %-24s %s\n", (long long)t->id, t->prefix, t->role,
         t->revoked_ms ? "revoked" : (t->expires_ms && t->expires_ms < pl_now_ms()) ? "expired" : "live",
         pl_time_format(t->created_ms * 1000000, created, sizeof created), t->name);
  return 0;
}

static int token_list(cli_data *d, const cli_args *a) {
  store_tenant t;
  int rc = cli_tenant_arg(d, a, &t);
  if (rc) return rc;
  printf("%-8s %-16s %-14s %-8s %-24s %s\n", "ID", "PREFIX", "ROLE", "STATE", "CREATED", "NAME");
  int64_t last = 0;
  int n;
  while ((n = store_token_list(d->db, t.id, 0, 0, last, PAGE, print_token, &last)) == PAGE) {
  }
  return n < 0 ? fail("token list", n, NULL) : 0;
}

static int token_revoke(cli_data *d, const cli_args *a) {
  store_tenant t;
  int rc = cli_tenant_arg(d, a, &t);
  if (rc) return rc;
  store_token tok;
  char *end;
  long long id = strtoll(a->pos[0], &end, 10);
  if (*end || id <= 0) return fail("token revoke", PL_EINVAL, NULL);
  if ((rc = store_token_get(d->db, t.id, id, &tok)) < 0) return fail("token revoke", rc, NULL);
  pl_err err = {{0}};
  if ((rc = admin_token_revoke(&d->ctx, &tok, &err)) < 0) return fail("token revoke", rc, &err);
  return 0;
}

int cli_token(int argc, char **argv) {
  static const verb verbs[] = {{"create", token_create, 0}, {"list", token_list, 0}, {"revoke", token_revoke, 1}};
  static const char *const accepted[] = {"data", "tenant", "role", "name", "expires-in", NULL};
  return run_noun("token", token_usage, verbs, 3, accepted, argc, argv);
}

/* ---- device ---- */

static const char device_usage[] =
    "usage: plateau device create NAME --data DIR --tenant NAME [--type T] [--vendor V] [--product P]\n"
    "                                  [--firmware F] [--location L]\n"
    "       plateau device list --data DIR --tenant NAME\n"
    "       plateau device token NAME --data DIR --tenant NAME\n"
    "       plateau device delete NAME --data DIR --tenant NAME\n"
    "\n"
    "create and token print only the device's access token (shown once).\n";

static int device_create(cli_data *d, const cli_args *a) {
  store_tenant t;
  int rc = cli_tenant_arg(d, a, &t);
  if (rc) return rc;
  store_device dev;
  memset(&dev, 0, sizeof dev);
  dev.tenant_id = t.id;
  if (strlen(a->pos[0]) >= sizeof dev.name) return fail("device create", PL_EINVAL, NULL);
  snprintf(dev.name, sizeof dev.name, "%s", a->pos[0]);
  set_text(dev.type, sizeof dev.type, a, "type");
  set_text(dev.vendor, sizeof dev.vendor, a, "vendor");
  set_text(dev.product, sizeof dev.product, a, "product");
  set_text(dev.firmware, sizeof dev.firmware, a, "firmware");
  set_text(dev.location, sizeof dev.location, a, "location");
  char token[AUTH_TOKEN_MAX];
  pl_err err = {{0}};
  rc = admin_device_create(&d->ctx, &dev, token, &err);
  store_device_clear(&dev);
  if (rc < 0) return fail("device create", rc, &err);
  printf("%s\n", token);
  memset(token, 0, sizeof token);
  return 0;
}

static int print_device(void *ctx, const store_device *dev) {
  *(int64_t *)ctx = dev->id;
  printf("%-8lld %-24s %-12s %-16s %-16s %-10s %s\n", (long long)dev->id, dev->name, dev->type, dev->vendor,
         dev->product, dev->firmware, dev->token_prefix);
  return 0;
}

static int device_list(cli_data *d, const cli_args *a) {
  store_tenant t;
  int rc = cli_tenant_arg(d, a, &t);
  if (rc) return rc;
  printf("%-8s %-24s %-12s %-16s %-16s %-10s %s\n", "ID", "NAME", "TYPE", "VENDOR", "PRODUCT", "FIRMWARE", "TOKEN");
  int64_t last = 0;
  int n;
  while ((n = store_device_list(d->db, t.id, last, PAGE, print_device, &last)) == PAGE) {
  }
  return n < 0 ? fail("device list", n, NULL) : 0;
}

static int device_named(cli_data *d, const cli_args *a, store_device *dev) {
  store_tenant t;
  int rc = cli_tenant_arg(d, a, &t);
  if (rc) return rc;
  if ((rc = store_device_get_by_name(d->db, t.id, a->pos[0], dev)) < 0) return fail("device", rc, NULL);
  return 0;
}

static int device_token(cli_data *d, const cli_args *a) {
  store_device dev;
  int rc = device_named(d, a, &dev);
  if (rc) return rc;
  char token[AUTH_TOKEN_MAX];
  pl_err err = {{0}};
  rc = admin_device_rotate(&d->ctx, &dev, token, &err);
  store_device_clear(&dev);
  if (rc < 0) return fail("device token", rc, &err);
  printf("%s\n", token);
  memset(token, 0, sizeof token);
  return 0;
}

static int device_delete(cli_data *d, const cli_args *a) {
  store_device dev;
  int rc = device_named(d, a, &dev);
  if (rc) return rc;
  pl_err err = {{0}};
  rc = admin_device_delete(&d->ctx, &dev, &err);
  store_device_clear(&dev);
  return rc < 0 ? fail("device delete", rc, &err) : 0;
}

int cli_device(int argc, char **argv) {
  static const verb verbs[] = {{"create", device_create, 1},
                               {"list", device_list, 0},
                               {"token", device_token, 1},
                               {"delete", device_delete, 1}};
  static const char *const accepted[] = {"data", "tenant", "type", "vendor", "product", "firmware", "location", NULL};
  return run_noun("device", device_usage, verbs, 4, accepted, argc, argv);
}

/* ---- audit ---- */

static const char audit_usage[] =
    "usage: plateau audit verify --data DIR\n"
    "       plateau audit list --data DIR [--limit N]\n"
    "\n"
    "verify checks the keyed hash chain of the whole audit log and names the first broken record.\n";

static int audit_verify(cli_data *d, const cli_args *a) {
  (void)a;
  int64_t count = 0, first_bad = 0;
  pl_err err = {{0}};
  int rc = auth_audit_verify(d->audit, d->db, &count, &first_bad, &err);
  if (rc == PL_ECORRUPT) {
    printf("audit log BROKEN at record %lld: %s\n", (long long)first_bad, err.msg);
    return 1;
  }
  if (rc < 0) return fail("audit verify", rc, &err);
  printf("audit log intact: %lld records\n", (long long)count);
  return 0;
}

static int print_audit(void *ctx, const store_audit *r) {
  (void)ctx;
  char ts[40];
  printf("%-8lld %-24s %-24s %-26s %-28s %-7s %s\n", (long long)r->seq, pl_time_format(r->ts_ms * 1000000, ts, sizeof ts),
         r->actor, r->action, r->target, r->result, r->detail);
  return 0;
}

static int audit_list(cli_data *d, const cli_args *a) {
  store_audit_filter f;
  memset(&f, 0, sizeof f);
  f.limit = atoi(cli_flag(a, "limit", "50"));
  if (f.limit < 1 || f.limit > 100000) f.limit = 50;
  f.descending = 1;
  int n = store_audit_list(d->db, &f, print_audit, NULL);
  return n < 0 ? fail("audit list", n, NULL) : 0;
}

int cli_audit(int argc, char **argv) {
  static const verb verbs[] = {{"verify", audit_verify, 0}, {"list", audit_list, 0}};
  static const char *const accepted[] = {"data", "limit", NULL};
  return run_noun("audit", audit_usage, verbs, 2, accepted, argc, argv);
}
