/* plateau init: creates a data directory with its audit key, metadata database, the regional
 * authority's tenant "region" and the first admin user. */
#include "cli/cli.h"
#include "cli/cli_int.h"

#include "base/fs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: plateau init --data DIR\n"
    "\n"
    "Creates the data directory DIR with the metadata database, the audit-log key, the tenant\n"
    "\"region\" (the regional authority) and the user \"admin\". The admin password is taken from\n"
    "PLATEAU_ADMIN_PASSWORD, or generated and printed once.\n";

int cli_init(int argc, char **argv) {
  static const char *const accepted[] = {"data", NULL};
  cli_args a;
  int rc = cli_parse(argc, argv, accepted, &a);
  if (rc) return rc;
  if (a.help) return cli_usage(stdout, usage, 0);
  const char *dir = cli_flag(&a, "data", NULL);
  if (!dir || a.npos) return cli_usage(stderr, usage, 2);
  char db_path[1100], key_path[1100];
  if (cli_path(db_path, sizeof db_path, dir, CLI_META_DB) < 0 || cli_path(key_path, sizeof key_path, dir, CLI_AUDIT_KEY) < 0) {
    fprintf(stderr, "plateau: data directory path too long\n");
    return 1;
  }
  if (pl_fs_exists(db_path)) {
    fprintf(stderr, "plateau: %s is already initialised\n", dir);
    return 1;
  }
  const char *password = getenv("PLATEAU_ADMIN_PASSWORD");
  char generated[32] = {0};
  if (!password || !*password) {
    auth_password_generate(generated);
    password = generated;
  } else if (strlen(password) < AUTH_PASSWORD_MIN || strlen(password) > AUTH_PASSWORD_MAX) {
    fprintf(stderr, "plateau: PLATEAU_ADMIN_PASSWORD must be %d to %d bytes\n", AUTH_PASSWORD_MIN, AUTH_PASSWORD_MAX);
    return 2;
  }
  if (pl_fs_mkdir_p(dir, 0700) < 0) {
    fprintf(stderr, "plateau: cannot create %s\n", dir);
    return 1;
  }
  pl_err err = {{0}};
  cli_data d;
  memset(&d, 0, sizeof d);
  rc = auth_audit_open(key_path, 1, &d.audit, &err);
  if (rc == 0) rc = store_open(db_path, &d.db, &err);
  if (rc < 0) {
    fprintf(stderr, "plateau: cannot initialise %s: %s\n", dir, err.msg[0] ? err.msg : pl_strerror(rc));
    cli_data_close(&d);
    return 1;
  }
  d.ctx = (admin_ctx){d.db, d.audit, "cli", "cli", ""};
  store_tenant t;
  memset(&t, 0, sizeof t);
  snprintf(t.name, sizeof t.name, "region");
  snprintf(t.display_name, sizeof t.display_name, "Regional authority");
  store_user u;
  memset(&u, 0, sizeof u);
  snprintf(u.name, sizeof u.name, "admin");
  snprintf(u.display_name, sizeof u.display_name, "Regional administrator");
  snprintf(u.role, sizeof u.role, "admin");
  rc = admin_tenant_create(&d.ctx, &t, &err);
  if (rc == 0) {
    u.tenant_id = t.id;
    rc = admin_user_create(&d.ctx, &u, password, &err);
  }
  cli_data_close(&d);
  if (rc < 0) {
    fprintf(stderr, "plateau: cannot initialise %s: %s\n", dir, err.msg[0] ? err.msg : pl_strerror(rc));
    return 1;
  }
  printf("Initialised %s\n", dir);
  printf("admin user: admin\n");
  if (generated[0]) printf("admin password: %s   (shown only now; keep it safe)\n", generated);
  return 0;
}
