/* The command-line interface: one function per top-level command, called by main.c with the
 * arguments after the command name. Each returns the process exit status (0 success, 1 a
 * failure, 2 a usage error) and prints what went wrong on stderr. */
#ifndef PLATEAU_CLI_CLI_H
#define PLATEAU_CLI_CLI_H

int cli_init(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_tenant(int argc, char **argv);
int cli_user(int argc, char **argv);
int cli_token(int argc, char **argv);
int cli_device(int argc, char **argv);
int cli_audit(int argc, char **argv);
int cli_config(int argc, char **argv);
int cli_prefix(int argc, char **argv);
int cli_ident(int argc, char **argv);

#endif
