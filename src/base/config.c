/* The configuration table and its readers (see config.h). */
#include "base/config.h"

#include "base/clock.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR(field) PL_CFG_STRING, offsetof(pl_config, field), sizeof(((pl_config *)0)->field)
#define INT(field) PL_CFG_INT, offsetof(pl_config, field), sizeof(int)
#define SIZE(field) PL_CFG_SIZE, offsetof(pl_config, field), sizeof(int64_t)
#define DUR(field) PL_CFG_DURATION, offsetof(pl_config, field), sizeof(int64_t)
#define BOOL(field) PL_CFG_BOOL, offsetof(pl_config, field), sizeof(int)
#define MS 1000000LL
#define SEC 1000000000LL

static const pl_config_opt options[] = {
    {"data_dir", "data", STR(data_dir), "", 0, 0, NULL,
     "Data directory: metadata database, time-series files, audit key, lock file."},
    {"log_level", NULL, STR(log_level), "info", 0, 0, "error|warn|info|debug", "Least severe level logged."},
    {"http_listen", "http", STR(http_listen), "[::]:8080", 0, 0, NULL,
     "HTTP listener, HOST:PORT; [::] is dual-stack IPv6 and IPv4; an empty value disables it."},
    {"http_threads", NULL, INT(http_threads), "4", 1, 256, NULL, "HTTP worker threads."},
    {"http_max_connections", NULL, INT(http_max_connections), "1024", 1, 100000, NULL,
     "Concurrent HTTP connections; more are refused."},
    {"http_max_body_bytes", NULL, SIZE(http_max_body_bytes), "8388608", 1024, 1LL << 30, NULL,
     "Largest request body; larger ones get 413."},
    {"http_max_header_bytes", NULL, SIZE(http_max_header_bytes), "16384", 4096, 1 << 20, NULL,
     "Memory for a request's line and headers; larger ones get 431."},
    {"http_timeout", NULL, DUR(http_timeout_ns), "30s", 1 * SEC, 3600 * SEC, NULL,
     "An idle HTTP connection is closed after this long."},
    {"mqtt_listen", "mqtt", STR(mqtt_listen), "[::]:1883", 0, 0, NULL,
     "MQTT listener (plain TCP), HOST:PORT; an empty value disables it."},
    {"mqtt_tls_listen", NULL, STR(mqtt_tls_listen), "[::]:8883", 0, 0, NULL,
     "MQTT over TLS listener, HOST:PORT; it runs when mqtt_tls_cert is set."},
    {"mqtt_tls_cert", NULL, STR(mqtt_tls_cert), "", 0, 0, NULL,
     "PEM file with the MQTT TLS server certificate (and its chain)."},
    {"mqtt_tls_key", NULL, STR(mqtt_tls_key), "", 0, 0, NULL, "PEM file with the private key of mqtt_tls_cert."},
    {"mqtt_tls_ca", NULL, STR(mqtt_tls_ca), "", 0, 0, NULL,
     "PEM file of CA certificates for device client certificates (subject O = tenant, CN = device); "
     "empty: no client-certificate authentication."},
    {"mqtt_allow_anonymous", NULL, BOOL(mqtt_allow_anonymous), "0", 0, 1, NULL,
     "Admit MQTT clients without credentials into one shared sandbox namespace (tests, closed networks)."},
    {"mqtt_max_packet_bytes", NULL, SIZE(mqtt_max_packet_bytes), "262144", 1024, 268435460, NULL,
     "Largest MQTT packet accepted; larger ones close the connection (reason 0x95)."},
    {"mqtt_max_connections", NULL, INT(mqtt_max_connections), "100000", 1, 10000000, NULL,
     "Concurrent MQTT connections; more are refused (reason 0x89 Server busy)."},
    {"mqtt_receive_max", NULL, INT(mqtt_receive_max), "1000", 1, 65535, NULL,
     "QoS 1 and 2 messages a client may have unacknowledged towards the server (MQTT 5 Receive Maximum)."},
    {"mqtt_max_inflight", NULL, INT(mqtt_max_inflight), "100", 1, 65535, NULL,
     "QoS 1 and 2 messages sent to a client and not yet acknowledged; more wait in its queue."},
    {"mqtt_max_queued", NULL, INT(mqtt_max_queued), "1000", 0, 10000000, NULL,
     "QoS 1 and 2 messages queued per session (offline or past max_inflight); more are dropped."},
    {"mqtt_connection_rate_max", NULL, INT(mqtt_connection_rate_max), "10000", 0, 100000000, NULL,
     "PUBLISH packets a second one connection may send; 0: no limit (reason 0x96 when exceeded)."},
    {"mqtt_tenant_connections_max", NULL, INT(mqtt_tenant_connections_max), "10000", 1, 10000000, NULL,
     "Concurrent MQTT connections of one tenant (reason 0x97 Quota exceeded)."},
    {"mqtt_tenant_rate_max", NULL, INT(mqtt_tenant_rate_max), "100000", 0, 100000000, NULL,
     "PUBLISH packets a second from all connections of one tenant; 0: no limit (reason 0x97)."},
    {"mqtt_tenant_queued_max", NULL, INT(mqtt_tenant_queued_max), "1000000", 0, 100000000, NULL,
     "Messages queued across all sessions of one tenant; more are dropped."},
    {"mqtt_topic_alias_max", NULL, INT(mqtt_topic_alias_max), "32", 0, 65535, NULL,
     "Topic aliases a client may define (MQTT 5 Topic Alias Maximum); 0 disables them."},
    {"mqtt_session_expiry_max", NULL, DUR(mqtt_session_expiry_max_ns), "7d", 0, 3650LL * 86400 * SEC, NULL,
     "Longest time a disconnected persistent session is kept (MQTT 3.1.1 clean_session=0 sessions too)."},
    {"mqtt_sys_interval", NULL, DUR(mqtt_sys_interval_ns), "10s", 1 * SEC, 3600 * SEC, NULL,
     "How often the $SYS/broker/... statistics are published."},
    {"mqtt_gateway_devices_max", NULL, INT(mqtt_gateway_devices_max), "1000", 0, 10000000, NULL,
     "Gateways create unknown sub-devices while their tenant has fewer devices than this."},
    {"handle_listen", "handle", STR(handle_listen), "[::]:2641", 0, 0, NULL,
     "Handle protocol listener (UDP and TCP), HOST:PORT."},
    {"handle_parents", NULL, STR(handle_parents), "", 0, 0, NULL,
     "Parent or peer identifier nodes, HOST:PORT[,HOST:PORT...], asked in order (Handle protocol) for "
     "prefixes this node does not hold; empty: answer only for its own prefixes."},
    {"handle_cache_max", NULL, INT(handle_cache_max), "100000", 0, 10000000, NULL,
     "Answers from other nodes kept in the resolution cache (0 disables the cache)."},
    {"handle_cache_ttl_max", NULL, DUR(handle_cache_ttl_max_ns), "1h", 0, 30LL * 86400 * SEC, NULL,
     "Longest time a cached answer is used, whatever its values' TTL says."},
    {"handle_negative_ttl", NULL, DUR(handle_negative_ttl_ns), "60s", 0, 86400 * SEC, NULL,
     "How long a \"handle not found\" answer from another node is cached."},
    {"handle_recursion_max", NULL, INT(handle_recursion_max), "4", 1, 16, NULL,
     "Nodes a recursive resolution may pass through; requests beyond it are refused."},
    {"handle_timeout", NULL, DUR(handle_timeout_ns), "2s", 10 * MS, 60 * SEC, NULL,
     "Time to wait for one parent node's answer before trying the next."},
    {"handle_site_address", NULL, STR(handle_site_address), "", 0, 0, NULL,
     "Public IPv4 or IPv6 address announced in this node's site information (GET_SITEINFO); empty: the "
     "listener's own (set it when listening on [::] behind a public address)."},
    {"gs1_dictionary", NULL, STR(gs1_dictionary), "", 0, 0, NULL,
     "GS1 Barcode Syntax Dictionary file used to validate Digital Link URIs; empty: the built-in subset."},
    {"session_ttl", NULL, DUR(session_ttl_ns), "12h", 60 * SEC, 30LL * 86400 * SEC, NULL,
     "Lifetime of a session token from POST /api/v1/login."},
    {"token_ttl_max", NULL, DUR(token_ttl_max_ns), "3650d", 60 * SEC, 36500LL * 86400 * SEC, NULL,
     "Longest lifetime an API token may be given."},
    {"page_size_max", NULL, SIZE(page_size_max), "1000", 1, 100000, NULL, "Largest page of a list."},
    {"tsdb_fsync", NULL, STR(tsdb_fsync), "interval", 0, 0, "always|interval|never",
     "When the time-series WAL is fsynced; a write is acknowledged only once durable under it."},
    {"tsdb_fsync_interval", NULL, DUR(tsdb_fsync_interval_ns), "100ms", 1 * MS, 10 * SEC, NULL,
     "Group-commit interval for tsdb_fsync=interval."},
    {"tsdb_ooo_window", NULL, DUR(tsdb_ooo_window_ns), "7d", 1 * SEC, 36500LL * 86400 * SEC, NULL,
     "How far behind a series' newest point a write may be (late and back-filled data); older points are refused."},
};

const pl_config_opt *pl_config_options(size_t *count) {
  *count = sizeof options / sizeof options[0];
  return options;
}

static const pl_config_opt *find_opt(const char *name) {
  for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
    if (strcmp(options[i].name, name) == 0 || (options[i].alias && strcmp(options[i].alias, name) == 0))
      return &options[i];
  return NULL;
}

static int parse_size(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || v < 0) return PL_EINVAL;
  int64_t mult = 1;
  if (!strcmp(end, "") || !strcmp(end, "B")) mult = 1;
  else if (!strcmp(end, "KiB") || !strcmp(end, "K") || !strcmp(end, "k")) mult = 1024;
  else if (!strcmp(end, "MiB") || !strcmp(end, "M")) mult = 1024 * 1024;
  else if (!strcmp(end, "GiB") || !strcmp(end, "G")) mult = 1024LL * 1024 * 1024;
  else return PL_EINVAL;
  if (v > INT64_MAX / mult) return PL_EINVAL;
  *out = v * mult;
  return 0;
}

static int set_opt(pl_config *cfg, const pl_config_opt *o, const char *value, pl_err *err) {
  char *base = (char *)cfg + o->offset;
  int64_t v = 0;
  switch (o->type) {
  case PL_CFG_STRING:
    if (strlen(value) >= o->size) return pl_err_set(err, PL_EINVAL, "%s: value too long", o->name);
    if (o->choices) {
      size_t n = strlen(value);
      const char *c = o->choices;
      int found = 0;
      while (*c) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && strncmp(c, value, n) == 0) found = 1;
        c += len + (bar ? 1 : 0);
      }
      if (!found) return pl_err_set(err, PL_EINVAL, "%s: \"%s\" is not one of %s", o->name, value, o->choices);
    }
    memcpy(base, value, strlen(value) + 1);
    return 0;
  case PL_CFG_INT:
  case PL_CFG_SIZE:
    if (parse_size(value, &v) < 0 || (o->type == PL_CFG_INT && strspn(value, "0123456789") != strlen(value)))
      return pl_err_set(err, PL_EINVAL, "%s: \"%s\" is not a %s", o->name, value,
                        o->type == PL_CFG_INT ? "whole number" : "size (e.g. 16384, 64KiB, 8MiB)");
    break;
  case PL_CFG_BOOL:
    if (!strcmp(value, "1") || !strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "on")) v = 1;
    else if (!strcmp(value, "0") || !strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "off")) v = 0;
    else return pl_err_set(err, PL_EINVAL, "%s: \"%s\" is not a boolean (1 or 0, true or false)", o->name, value);
    break;
  case PL_CFG_DURATION:
    if (pl_duration_parse(value, &v) < 0)
      return pl_err_set(err, PL_EINVAL, "%s: \"%s\" is not a duration (e.g. 100ms, 30s, 12h, 7d)", o->name, value);
    break;
  }
  if (v < o->min || v > o->max)
    return pl_err_set(err, PL_EINVAL, "%s: %s is outside %lld..%lld%s", o->name, value, (long long)o->min,
                      (long long)o->max, o->type == PL_CFG_DURATION ? " ns" : "");
  if (o->type == PL_CFG_INT || o->type == PL_CFG_BOOL) *(int *)base = (int)v;
  else *(int64_t *)base = v;
  return 0;
}

void pl_config_defaults(pl_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
    int rc = set_opt(cfg, &options[i], options[i].dflt, NULL);
    (void)rc; /* defaults are checked by the unit tests */
  }
}

int pl_config_set(pl_config *cfg, const char *name, const char *value, pl_err *err) {
  const pl_config_opt *o = find_opt(name);
  if (!o) return pl_err_set(err, PL_EINVAL, "unknown option \"%s\"", name);
  return set_opt(cfg, o, value, err);
}

typedef struct ini_ctx {
  pl_config *cfg;
  pl_err *err;
  int rc;
} ini_ctx;

static int on_ini_entry(void *user, const char *section, const char *name, const char *value) {
  ini_ctx *c = user;
  char full[128];
  if (section && *section) snprintf(full, sizeof full, "%s_%s", section, name);
  else snprintf(full, sizeof full, "%s", name);
  int rc = pl_config_set(c->cfg, full, value, c->err);
  if (rc < 0 && c->rc == 0) c->rc = rc;
  return rc < 0 ? 0 : 1;
}

int pl_config_load_file(pl_config *cfg, const char *path, pl_err *err) {
  FILE *f = fopen(path, "r");
  if (!f) return pl_err_set(err, errno == ENOENT ? PL_ENOTFOUND : PL_EIO, "cannot open %s", path);
  ini_ctx c = {cfg, err, 0};
  int line = ini_parse_file(f, on_ini_entry, &c);
  fclose(f);
  if (c.rc < 0) return c.rc;
  if (line != 0) return pl_err_set(err, PL_EINVAL, "%s: syntax error on line %d", path, line);
  return 0;
}

int pl_config_load_env(pl_config *cfg, char *const *envp, pl_err *err) {
  for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
    char var[128];
    size_t n = (size_t)snprintf(var, sizeof var, "PLATEAU_%s", options[i].name);
    for (size_t k = 8; k < n; k++) var[k] = (char)toupper((unsigned char)var[k]);
    for (char *const *e = envp; e && *e; e++) {
      if (strncmp(*e, var, n) == 0 && (*e)[n] == '=') {
        int rc = set_opt(cfg, &options[i], *e + n + 1, err);
        if (rc < 0) return rc;
      }
    }
  }
  return 0;
}

int pl_config_load_args(pl_config *cfg, int argc, char **argv, const char **positional, int npos_max,
                        int *npos, int *want_help, pl_err *err) {
  int np = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      if (want_help) *want_help = 1;
      continue;
    }
    if (strncmp(a, "--", 2) != 0) {
      if (np >= npos_max) return pl_err_set(err, PL_EINVAL, "unexpected argument \"%s\"", a);
      positional[np++] = a;
      continue;
    }
    char name[128];
    const char *eq = strchr(a + 2, '=');
    size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
    if (len >= sizeof name) return pl_err_set(err, PL_EINVAL, "unknown option \"%s\"", a);
    for (size_t k = 0; k < len; k++) name[k] = a[2 + k] == '-' ? '_' : a[2 + k];
    name[len] = 0;
    const pl_config_opt *o = find_opt(name);
    if (!o) return pl_err_set(err, PL_EINVAL, "unknown option \"%s\" (see --help)", a);
    const char *value = eq ? eq + 1 : NULL;
    /* A boolean flag may stand alone: `--mqtt-allow-anonymous` is `--mqtt-allow-anonymous 1`. */
    if (!value && o->type == PL_CFG_BOOL &&
        (i + 1 >= argc || set_opt(cfg, o, argv[i + 1], NULL) < 0))
      value = "1";
    if (!value) {
      if (i + 1 >= argc) return pl_err_set(err, PL_EINVAL, "option %s needs a value", a);
      value = argv[++i];
    }
    int rc = set_opt(cfg, o, value, err);
    if (rc < 0) return rc;
  }
  if (npos) *npos = np;
  return 0;
}

static void flag_name(const pl_config_opt *o, char *out, size_t outsz) {
  size_t n = (size_t)snprintf(out, outsz, "--%s", o->name);
  for (size_t k = 2; k < n && k < outsz; k++)
    if (out[k] == '_') out[k] = '-';
}

int pl_config_help(pl_buf *out) {
  int rc = 0;
  for (size_t i = 0; i < sizeof options / sizeof options[0] && rc == 0; i++) {
    const pl_config_opt *o = &options[i];
    char flag[80];
    flag_name(o, flag, sizeof flag);
    rc = pl_buf_printf(out, "  %-26s %s%s%s%s [default: %s]\n", flag, o->help, o->alias ? " Alias: --" : "",
                       o->alias ? o->alias : "", o->alias ? "." : "", *o->dflt ? o->dflt : "none");
  }
  return rc;
}

int pl_config_markdown(pl_buf *out) {
  int rc = pl_buf_append_str(out, "| option | flag | environment | default | description |\n"
                                  "| --- | --- | --- | --- | --- |\n");
  for (size_t i = 0; i < sizeof options / sizeof options[0] && rc == 0; i++) {
    const pl_config_opt *o = &options[i];
    char flag[80], env[80];
    flag_name(o, flag, sizeof flag);
    size_t n = (size_t)snprintf(env, sizeof env, "PLATEAU_%s", o->name);
    for (size_t k = 8; k < n; k++) env[k] = (char)toupper((unsigned char)env[k]);
    const char *sep = strchr(o->name, '_');
    char ini[96];
    if (sep) snprintf(ini, sizeof ini, "[%.*s] %s", (int)(sep - o->name), o->name, sep + 1);
    else snprintf(ini, sizeof ini, "%s", o->name);
    /* A '|' would end the Markdown cell: list the choices with commas. */
    char choices[128] = "";
    for (size_t k = 0, c = 0; o->choices && o->choices[k] && c + 3 < sizeof choices; k++) {
      if (o->choices[k] == '|') {
        choices[c++] = ',';
        choices[c++] = ' ';
      } else {
        choices[c++] = o->choices[k];
      }
      choices[c] = 0;
    }
    rc = pl_buf_printf(out, "| `%s` | `%s`%s%s%s | `%s` | `%s` | %s%s%s |\n", ini, flag, o->alias ? ", `--" : "",
                       o->alias ? o->alias : "", o->alias ? "`" : "", env, *o->dflt ? o->dflt : "—", o->help,
                       o->choices ? " One of: " : "", choices);
  }
  return rc;
}
