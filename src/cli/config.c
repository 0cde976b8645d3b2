/* plateau config: prints the configuration reference (Markdown, for docs/operations.md) or an
 * INI file of the defaults, both produced from the one option table. */
#include "cli/cli.h"
#include "cli/cli_int.h"

#include "base/config.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: plateau config markdown    the options as the Markdown table of docs/operations.md\n"
    "       plateau config ini         an INI file with every option at its default\n";

int cli_config(int argc, char **argv) {
  if (argc != 1) return cli_usage(stderr, usage, 2);
  if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) return cli_usage(stdout, usage, 0);
  pl_buf out;
  pl_buf_init(&out, 0);
  int rc = 0;
  if (strcmp(argv[0], "markdown") == 0) {
    rc = pl_config_markdown(&out);
  } else if (strcmp(argv[0], "ini") == 0) {
    /* Keys outside a section name options directly, so a flat file needs no section logic. */
    size_t n;
    const pl_config_opt *opts = pl_config_options(&n);
    for (size_t i = 0; i < n && rc == 0; i++)
      rc = pl_buf_printf(&out, "# %s\n%s%s = %s\n\n", opts[i].help, *opts[i].dflt ? "" : "; ", opts[i].name,
                         opts[i].dflt);
  } else {
    return cli_usage(stderr, usage, 2);
  }
  if (rc == 0) fputs(pl_buf_cstr(&out), stdout);
  pl_buf_free(&out);
  return rc < 0 ? 1 : 0;
}
