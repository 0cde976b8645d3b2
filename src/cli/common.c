/* Argument parsing and data-directory helpers shared by the CLI commands. */
#include "cli/cli_int.h"

#include "base/fs.h"

#include <stdio.h>
#include <string.h>

int cli_parse(int argc, char **argv, const char *const *accepted, cli_args *a) {
  memset(a, 0, sizeof *a);
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      a->help = 1;
      continue;
    }
    if (strncmp(arg, "--", 2) != 0) {
      if (a->npos >= CLI_POS_MAX) {
        fprintf(stderr, "plateau: unexpected argument \"%s\"\n", arg);
        return 2;
      }
      a->pos[a->npos++] = arg;
      continue;
    }
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
    const char *name = NULL;
    for (const char *const *acc = accepted; *acc; acc++)
      if (strlen(*acc) == len && strncmp(*acc, arg + 2, len) == 0) name = *acc;
    if (!name) {
      fprintf(stderr, "plateau: unknown option \"%s\" (see --help)\n", arg);
      return 2;
    }
    const char *value = eq ? eq + 1 : NULL;
    if (!value) {
      if (i + 1 >= argc) {
        fprintf(stderr, "plateau: option --%s needs a value\n", name);
        return 2;
      }
      value = argv[++i];
    }
    if (a->nflags >= CLI_FLAGS_MAX) return 2;
    a->names[a->nflags] = name;
    a->values[a->nflags++] = value;
  }
  return 0;
}

const char *cli_flag(const cli_args *a, const char *name, const char *dflt) {
  const char *v = dflt;
  for (int i = 0; i < a->nflags; i++)
    if (strcmp(a->names[i], name) == 0) v = a->values[i];
  return v;
}

int cli_path(char *out, size_t outsz, const char *dir, const char *name) {
  int n = snprintf(out, outsz, "%s/%s", dir, name);
  return n < 0 || (size_t)n >= outsz ? -1 : 0;
}

int cli_data_open(const char *dir, cli_data *d) {
  memset(d, 0, sizeof *d);
  char db_path[1100], key_path[1100];
  if (!dir || !*dir) {
    fprintf(stderr, "plateau: --data DIR is required\n");
    return 2;
  }
  if (cli_path(db_path, sizeof db_path, dir, CLI_META_DB) < 0 || cli_path(key_path, sizeof key_path, dir, CLI_AUDIT_KEY) < 0) {
    fprintf(stderr, "plateau: data directory path too long\n");
    return 1;
  }
  if (!pl_fs_exists(db_path)) {
    fprintf(stderr, "plateau: %s is not an initialised data directory; run: plateau init --data %s\n", dir, dir);
    return 1;
  }
  pl_err err = {{0}};
  int rc = auth_audit_open(key_path, 0, &d->audit, &err);
  if (rc == 0) rc = store_open(db_path, &d->db, &err);
  if (rc < 0) {
    fprintf(stderr, "plateau: cannot open %s: %s\n", dir, err.msg[0] ? err.msg : pl_strerror(rc));
    cli_data_close(d);
    return 1;
  }
  d->ctx = (admin_ctx){d->db, d->audit, "cli", "cli", ""};
  return 0;
}

void cli_data_close(cli_data *d) {
  store_close(d->db);
  auth_audit_free(d->audit);
  d->db = NULL;
  d->audit = NULL;
}

int cli_tenant_arg(cli_data *d, const cli_args *a, store_tenant *t) {
  const char *name = cli_flag(a, "tenant", NULL);
  if (!name) {
    fprintf(stderr, "plateau: --tenant NAME is required\n");
    return 2;
  }
  int rc = store_tenant_get_by_name(d->db, name, t);
  if (rc < 0) {
    fprintf(stderr, "plateau: no tenant named \"%s\"%s\n", name, rc == PL_ENOTFOUND ? "" : pl_strerror(rc));
    return 1;
  }
  return 0;
}

int cli_usage(FILE *f, const char *text, int status) {
  fputs(text, f);
  return status;
}
