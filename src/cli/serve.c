/* plateau serve: the regional platform. Holds the data directory's lock, serves HTTP, and
 * shuts down cleanly on SIGTERM or SIGINT. */
#include "cli/cli.h"
#include "cli/cli_int.h"

#include "base/clock.h"
#include "base/config.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/version.h"
#include "http/http.h"
#include "ident/ident.h"
#include "mqtt/mqtt.h"
#include "trace/trace.h"
#include "tsdb/tsdb.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static const char usage_head[] =
    "usage: plateau serve --data DIR [--config FILE] [--http HOST:PORT] [--mqtt HOST:PORT] [--handle HOST:PORT]\n"
    "\n"
    "Runs the regional platform on the data directory DIR. Settings come from the defaults, then\n"
    "the INI file of --config, then PLATEAU_* environment variables, then these flags:\n\n";

/* Time-series upkeep driven by the metadata: tenants' retention, and deletion of the data of
 * tenants and databases that no longer exist (deleted with the CLI, by their tenant's deletion,
 * or while the server was down). A namespace below STORE_DATABASE_NS_BASE is a tenant's default
 * database (the tenant id); one at or above it is a row of the databases table, which belongs to
 * a tenant whose retention applies to it too. */
static void maintenance(store *db, tsdb *ts, int retention) {
  size_t max = 1024;
  int64_t *ids = malloc(max * sizeof *ids);
  int n = ids ? tsdb_tenants(ts, ids, max) : 0;
  if (n > (int)max) { /* more namespaces than the first guess: take them all */
    int64_t *more = realloc(ids, ((size_t)n + 64) * sizeof *ids);
    if (more) {
      ids = more;
      max = (size_t)n + 64;
      n = tsdb_tenants(ts, ids, max);
    }
  }
  for (int i = 0; i < n && i < (int)max; i++) {
    int64_t tenant_id = ids[i];
    int rc = 0;
    if (ids[i] >= STORE_DATABASE_NS_BASE) {
      store_database d;
      rc = store_database_get(db, 0, ids[i] - STORE_DATABASE_NS_BASE, &d);
      if (rc == 0) tenant_id = d.tenant_id;
    }
    store_tenant t;
    if (rc == 0) rc = store_tenant_get(db, tenant_id, &t);
    if (rc == PL_ENOTFOUND) {
      pl_err err = {{0}};
      int64_t gone = tsdb_delete(ts, ids[i], (tsdb_str){NULL, 0}, 0, INT64_MIN, INT64_MAX, &err);
      PL_LOG(PL_LOG_INFO, "serve", "deleted time series of removed %s=%lld points=%lld",
             ids[i] >= STORE_DATABASE_NS_BASE ? "database" : "tenant",
             (long long)(ids[i] >= STORE_DATABASE_NS_BASE ? ids[i] - STORE_DATABASE_NS_BASE : ids[i]),
             (long long)gone);
    } else if (rc == 0 && retention && t.retention_days > 0) {
      tsdb_retention_apply(ts, ids[i], (int64_t)t.retention_days * 86400 * 1000000000LL, pl_now_ns());
    }
  }
  free(ids);
}

int cli_serve(int argc, char **argv) {
  pl_config cfg;
  pl_config_defaults(&cfg);
  pl_err err = {{0}};
  /* --config is read first so that the file sits below the environment and the flags. */
  const char *config_file = NULL;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) config_file = argv[i + 1];
    else if (strncmp(argv[i], "--config=", 9) == 0) config_file = argv[i] + 9;
  }
  char *rest[64];
  int nrest = 0;
  for (int i = 0; i < argc && nrest < 64; i++) {
    if (strcmp(argv[i], "--config") == 0) {
      i++;
      continue;
    }
    if (strncmp(argv[i], "--config=", 9) == 0) continue;
    rest[nrest++] = argv[i];
  }
  int want_help = 0, npos = 0;
  const char *pos[1];
  int rc = 0;
  if (config_file) rc = pl_config_load_file(&cfg, config_file, &err);
  if (rc == 0) rc = pl_config_load_env(&cfg, environ, &err);
  if (rc == 0) rc = pl_config_load_args(&cfg, nrest, rest, pos, 0, &npos, &want_help, &err);
  if (want_help) {
    pl_buf help;
    pl_buf_init(&help, 0);
    pl_config_help(&help);
    printf("%s%s", usage_head, pl_buf_cstr(&help));
    pl_buf_free(&help);
    return 0;
  }
  if (rc < 0) {
    fprintf(stderr, "plateau serve: %s\n", err.msg);
    return 2;
  }
  pl_log_set_level(pl_log_level_parse(cfg.log_level));
  if (!cfg.data_dir[0]) {
    fprintf(stderr, "plateau serve: --data DIR is required\n");
    return 2;
  }

  char lock_path[1100], db_path[1100];
  cli_path(lock_path, sizeof lock_path, cfg.data_dir, CLI_LOCK);
  cli_path(db_path, sizeof db_path, cfg.data_dir, CLI_META_DB);
  cli_data d;
  if ((rc = cli_data_open(cfg.data_dir, &d)) != 0) return rc;
  int lock_fd = pl_fs_lock(lock_path);
  if (lock_fd < 0) {
    if (lock_fd == PL_EBUSY)
      fprintf(stderr, "plateau serve: another plateau server is already running on %s\n", cfg.data_dir);
    else
      fprintf(stderr, "plateau serve: cannot lock %s\n", lock_path);
    cli_data_close(&d);
    return 1;
  }

  /* Signals are taken synchronously by this thread; every thread started after this inherits
   * the mask. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  store_pool *pool = NULL;
  http_server *http = NULL;
  tsdb *ts = NULL;
  char tsdb_dir[1100];
  cli_path(tsdb_dir, sizeof tsdb_dir, cfg.data_dir, "tsdb");
  tsdb_opts topts = {.dir = tsdb_dir,
                     .fsync_set = 1,
                     .fsync = !strcmp(cfg.tsdb_fsync, "always")  ? TSDB_FSYNC_ALWAYS
                              : !strcmp(cfg.tsdb_fsync, "never") ? TSDB_FSYNC_NEVER
                                                                 : TSDB_FSYNC_INTERVAL,
                     .fsync_interval_ns = cfg.tsdb_fsync_interval_ns,
                     .ooo_window_ns = cfg.tsdb_ooo_window_ns,
                     .background = 1};
  /* Identifiers: the engine (cache, statistics) shared by HTTP and the Handle server. */
  ident *idn = NULL;
  ident_server *hdl = NULL;
  /* MQTT: its own thread and libuv loop (src/mqtt/mqtt.h), started before HTTP, whose RPC and
   * device endpoints call into it. Its metadata work runs on libuv's 4 worker threads, which take
   * connections from the same pool. */
  mqtt_server *mqtt = NULL;
  trace_hub *hub = NULL;
  rc = store_pool_new(db_path, cfg.http_threads + 2 + 4, &pool, &err);
  if (rc == 0) rc = tsdb_open(&topts, &ts, &err);
  if (rc == 0) {
    ident_opts io;
    ident_opts_from_config(&cfg, &io);
    rc = ident_new(&io, &idn, &err);
  }
  if (rc == 0 && (cfg.mqtt_listen[0] || cfg.mqtt_tls_cert[0])) {
    mqtt_deps md = {&cfg, pool, d.audit, ts};
    rc = mqtt_server_start(&md, &mqtt, &err);
  }
  if (rc == 0 && cfg.http_listen[0]) {
    rc = trace_hub_new(0, &hub); /* EPCIS subscription webhooks: their own worker thread */
    http_deps deps = {&cfg, pool, d.audit, ts, idn, mqtt, hub};
    if (rc == 0) rc = http_server_start(&deps, cfg.http_listen, &http, &err);
  }
  if (rc == 0 && cfg.handle_listen[0]) /* its own thread: see ident/server.c */
    rc = ident_server_start(idn, db_path, cfg.handle_listen, http ? http_server_port(http) : 0, &hdl, &err);
  if (rc < 0) {
    fprintf(stderr, "plateau serve: %s\n", err.msg[0] ? err.msg : pl_strerror(rc));
    mqtt_server_stop(mqtt);
    http_server_stop(http);
    trace_hub_free(hub);
    mqtt_server_free(mqtt);
    ident_free(idn);
    tsdb_close(ts);
    store_pool_free(pool);
    cli_data_close(&d);
    close(lock_fd);
    return 1;
  }
  char listen_q[320];
  PL_LOG(PL_LOG_INFO, "serve", "version=%s data=%s http=%s http_port=%d", PLATEAU_VERSION, cfg.data_dir,
         pl_log_quote(cfg.http_listen, listen_q, sizeof listen_q), http ? http_server_port(http) : 0);
  if (hdl) PL_LOG(PL_LOG_INFO, "serve", "handle_port=%d (udp+tcp)", ident_server_port(hdl));
  if (mqtt) PL_LOG(PL_LOG_INFO, "serve", "mqtt_port=%d mqtt_tls_port=%d", mqtt_server_port(mqtt), mqtt_server_tls_port(mqtt));

  /* The main thread waits for a signal and, once a minute, runs maintenance. */
  int sig = 0;
  int64_t last_retention_ns = 0;
  for (;;) {
    struct timespec tick = {60, 0};
    sig = sigtimedwait(&sigs, NULL, &tick);
    if (sig == SIGINT || sig == SIGTERM) break;
    int64_t now = pl_mono_ns();
    int retention = now - last_retention_ns > 3600LL * 1000000000;
    if (retention) last_retention_ns = now;
    maintenance(d.db, ts, retention);
    ident_stats_flush(idn, d.db);
  }
  PL_LOG(PL_LOG_INFO, "serve", "signal=%d shutting down", sig);
  ident_server_stop(hdl);
  /* MQTT first (clients told, telemetry writes finished, waiting RPC calls answered), then HTTP,
   * whose handlers may still hold the MQTT server; only then is it freed. */
  mqtt_server_stop(mqtt);
  http_server_stop(http);
  trace_hub_free(hub); /* after HTTP, whose captures queue deliveries */
  mqtt_server_free(mqtt);
  ident_free(idn);
  tsdb_close(ts);
  store_pool_free(pool);
  cli_data_close(&d);
  close(lock_fd);
  PL_LOG(PL_LOG_INFO, "serve", "stopped");
  return 0;
}
