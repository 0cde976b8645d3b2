/* plateau: the industrial internet platform. Subcommand dispatch only; each command lives in
 * src/cli/. */
#include "base/json.h"
#include "base/version.h"
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static const struct {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *help;
} commands[] = {
    {"init", cli_init, "create a data directory with the first admin"},
    {"serve", cli_serve, "run the regional platform"},
    {"tenant", cli_tenant, "create, list and delete tenants (enterprises)"},
    {"user", cli_user, "create, list, re-password and delete users"},
    {"token", cli_token, "create, list and revoke API tokens"},
    {"device", cli_device, "create, list and delete devices; issue device tokens"},
    {"audit", cli_audit, "verify and list the tamper-evident audit log"},
    {"config", cli_config, "print the configuration reference"},
    {"prefix", cli_prefix, "allocate identifier prefixes to tenants"},
    {"ident", cli_ident, "resolve identifiers (Handle protocol), import them in bulk, make QR labels"},
};

static int usage(FILE *f, int status) {
  fprintf(f, "usage: plateau COMMAND [ARGS]   (plateau COMMAND --help for details)\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
  fprintf(f, "\n  --version  print the version\n");
  return status;
}

int main(int argc, char **argv) {
  pl_json_setup(); /* before any thread uses jansson */
  if (argc < 2) return usage(stderr, 2);
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) return usage(stdout, 0);
  if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
    printf("plateau %s\n", PLATEAU_VERSION);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 2, argv + 2);
  fprintf(stderr, "plateau: unknown command \"%s\"\n", argv[1]);
  return usage(stderr, 2);
}
