/* Internals shared by the CLI command files. */
#ifndef PLATEAU_CLI_INT_H
#define PLATEAU_CLI_INT_H

#include "admin/admin.h"
#include "auth/auth.h"
#include "store/store.h"

#include <stdio.h>

#define CLI_FLAGS_MAX 16
#define CLI_POS_MAX 4

/* Parsed arguments of a command: --flag VALUE pairs (or --flag=VALUE) among the names the
 * command accepts, and positional words. --help sets help. */
typedef struct cli_args {
  const char *names[CLI_FLAGS_MAX];
  const char *values[CLI_FLAGS_MAX];
  int nflags;
  const char *pos[CLI_POS_MAX];
  int npos;
  int help;
} cli_args;

/* Parses argv against the accepted flag names (NULL-terminated). Prints an error and returns
 * 2 for unknown flags, missing values or too many words; 0 otherwise. */
int cli_parse(int argc, char **argv, const char *const *accepted, cli_args *a);
/* The value of --name, or dflt. */
const char *cli_flag(const cli_args *a, const char *name, const char *dflt);

/* An opened data directory for an administrative command. */
typedef struct cli_data {
  store *db;
  auth_audit *audit;
  admin_ctx ctx; /* actor "cli", source "cli" */
} cli_data;

/* Opens DIR/meta.db and DIR/audit.key; prints an error and returns 1 when the directory is
 * missing or not initialised. */
int cli_data_open(const char *dir, cli_data *d);
void cli_data_close(cli_data *d);
/* Finds the tenant named by --tenant; prints an error and returns 1 when missing. */
int cli_tenant_arg(cli_data *d, const cli_args *a, store_tenant *t);
/* Prints usage (to stdout for --help, exit 0) */
int cli_usage(FILE *f, const char *text, int status);

/* Paths inside a data directory. */
#define CLI_META_DB "meta.db"
#define CLI_AUDIT_KEY "audit.key"
#define CLI_LOCK "LOCK"
int cli_path(char *out, size_t outsz, const char *dir, const char *name);

#endif
