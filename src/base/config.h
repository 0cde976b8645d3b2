/* Configuration: one table of options (name, type, default, bounds, help) from which the INI
 * parser, the environment (PLATEAU_<NAME>), the command-line flags (--name-with-dashes), the
 * --help text and docs/operations.md are all produced. Sources override in that order:
 * defaults, then the file, then the environment, then flags.
 *
 * INI files use sections for the first word of a name: `[http]\nlisten = [::]:8080` sets
 * http_listen; keys outside a section name options directly (`data = /var/lib/plateau`).
 */
#ifndef PLATEAU_BASE_CONFIG_H
#define PLATEAU_BASE_CONFIG_H

#include "base/buf.h"
#include "base/err.h"

#include <stdint.h>

typedef struct pl_config {
  char data_dir[1024];
  char log_level[16];
  char http_listen[300];
  int http_threads;
  int http_max_connections;
  int64_t http_max_body_bytes;
  int64_t http_max_header_bytes;
  int64_t http_timeout_ns;
  char mqtt_listen[300];
  char mqtt_tls_listen[300];
  char mqtt_tls_cert[1024];
  char mqtt_tls_key[1024];
  char mqtt_tls_ca[1024];
  int mqtt_allow_anonymous;
  int64_t mqtt_max_packet_bytes;
  int mqtt_max_connections;
  int mqtt_receive_max;
  int mqtt_max_inflight;
  int mqtt_max_queued;
  int mqtt_connection_rate_max;
  int mqtt_tenant_connections_max;
  int mqtt_tenant_rate_max;
  int mqtt_tenant_queued_max;
  int mqtt_topic_alias_max;
  int64_t mqtt_session_expiry_max_ns;
  int64_t mqtt_sys_interval_ns;
  int mqtt_gateway_devices_max;
  char handle_listen[300];
  char handle_parents[1024];
  int handle_cache_max;
  int64_t handle_cache_ttl_max_ns;
  int64_t handle_negative_ttl_ns;
  int handle_recursion_max;
  int64_t handle_timeout_ns;
  char gs1_dictionary[1024];
  char handle_site_address[64];
  int64_t session_ttl_ns;
  int64_t token_ttl_max_ns;
  int64_t page_size_max;
  char tsdb_fsync[16];
  int64_t tsdb_fsync_interval_ns;
  int64_t tsdb_ooo_window_ns;
} pl_config;

/* PL_CFG_BOOL is an int 0 or 1, written 0|1|true|false|yes|no|on|off; as a flag it may stand
 * alone (`--mqtt-allow-anonymous` means 1). */
typedef enum { PL_CFG_STRING, PL_CFG_INT, PL_CFG_SIZE, PL_CFG_DURATION, PL_CFG_BOOL } pl_config_type;

typedef struct pl_config_opt {
  const char *name;  /* snake_case; flag --name-with-dashes, env PLATEAU_NAME */
  const char *alias; /* short flag alias without dashes (e.g. "http"), or NULL */
  pl_config_type type;
  size_t offset; /* into pl_config */
  size_t size;   /* for strings: buffer size */
  const char *dflt;
  int64_t min, max; /* for numbers (sizes in bytes, durations in ns) */
  const char *choices; /* for strings: "a|b|c", or NULL for free text */
  const char *help;
} pl_config_opt;

/* The table, and its length. */
const pl_config_opt *pl_config_options(size_t *count);

/* Fills cfg with the defaults. */
void pl_config_defaults(pl_config *cfg);
/* Sets one option from text, checking type, bounds and choices. name may be an alias. */
int pl_config_set(pl_config *cfg, const char *name, const char *value, pl_err *err);
/* Reads an INI file. PL_ENOTFOUND when it does not exist. */
int pl_config_load_file(pl_config *cfg, const char *path, pl_err *err);
/* Applies PLATEAU_* variables from envp (NULL-terminated, e.g. environ). */
int pl_config_load_env(pl_config *cfg, char *const *envp, pl_err *err);
/* Parses flags from argv[0..argc): "--name value", "--name=value" or "--alias value".
 * Arguments that are not options go to positional[] (up to npos_max); *npos receives the count.
 * Unknown options are an error. "--help" sets *want_help when non-NULL. */
int pl_config_load_args(pl_config *cfg, int argc, char **argv, const char **positional, int npos_max,
                        int *npos, int *want_help, pl_err *err);

/* The options as help text (one per line: flag, default, help). */
int pl_config_help(pl_buf *out);
/* The options as a Markdown table, the reference section of docs/operations.md. */
int pl_config_markdown(pl_buf *out);

#endif
