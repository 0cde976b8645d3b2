/* The embedded MQTT server: MQTT 3.1, 3.1.1 and 5.0 for devices (ThingsBoard's device and gateway
 * API, telemetry into the time-series engine) and for a tenant's own applications (a complete
 * broker inside the tenant's namespace). docs/mqtt.md is the contract for device makers.
 *
 * Threads. The server runs on its own thread, which owns a libuv loop (started and stopped from
 * `plateau serve`, whose main thread waits for signals). That thread owns every socket,
 * connection, session, subscription and retained message; nothing else touches them. Work that
 * blocks — metadata lookups (SQLite) and time-series writes (WAL fsync) — runs on libuv's worker
 * pool and completes back on the loop thread, so the loop never waits on a disk.
 *
 * Other threads talk to the server only through the functions marked thread-safe below. They
 * hand a request to the loop thread through a locked queue and uv_async_send, and, when they
 * need an answer (mqtt_rpc_call), wait on a condition variable that the loop thread signals.
 *
 * Lifecycle: mqtt_server_start -> (serving) -> mqtt_server_stop -> mqtt_server_free. After
 * stop, the thread-safe calls still work and answer PL_ESTATE, so HTTP handlers that hold the
 * pointer may run until the HTTP server is stopped; free only after that.
 */
#ifndef PLATEAU_MQTT_MQTT_H
#define PLATEAU_MQTT_MQTT_H

#include "auth/auth.h"
#include "base/buf.h"
#include "base/config.h"
#include "base/err.h"
#include "store/store.h"
#include "tsdb/tsdb.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mqtt_server mqtt_server;

typedef struct mqtt_deps {
  const pl_config *cfg; /* borrowed; outlives the server: listeners, TLS files, limits */
  store_pool *pool;     /* borrowed; connections are taken on worker threads only */
  auth_audit *audit;    /* borrowed; sub-devices created by gateways are audited */
  tsdb *tsdb;           /* borrowed; where telemetry is written */
} mqtt_deps;

/* Binds the listeners of cfg (mqtt_listen, and mqtt_tls_listen when mqtt_tls_cert is set; an
 * empty address disables a listener), loads the TLS credentials, and starts the server thread.
 * deps is copied. Returns 0 and *out, or an error with a message (address in use, unreadable
 * certificate); nothing is left running on error. */
int mqtt_server_start(const mqtt_deps *deps, mqtt_server **out, pl_err *err);
/* The bound ports (useful with port 0), or 0 for a disabled listener. */
int mqtt_server_port(const mqtt_server *s);
int mqtt_server_tls_port(const mqtt_server *s);
/* Stops accepting, sends connected clients a DISCONNECT (Server shutting down, MQTT 5), fails
 * waiting RPC calls, waits for pending telemetry writes to finish and joins the thread. NULL is a
 * no-op; calling it twice is a no-op. */
void mqtt_server_stop(mqtt_server *s);
/* Frees a stopped server. NULL is a no-op. */
void mqtt_server_free(mqtt_server *s);

/* ---- thread-safe calls (any thread) ---- */

/* Server-side RPC: sends request_json (a JSON object {"method": ..., "params": ...}, copied) to the
 * device on v1/devices/me/rpc/request/{id} (or to its gateway on v1/gateway/rpc) and waits up to
 * timeout_ms for the device's answer, which is appended to response (a JSON value as the device
 * sent it). Errors: PL_ENOTFOUND when the device is not connected, PL_EPERM when it is connected
 * but not subscribed to RPC requests (err says so), PL_ETIMEDOUT, PL_ELIMIT when too many calls
 * are waiting, PL_ESTATE when the server is stopping. Blocks the calling thread. */
int mqtt_rpc_call(mqtt_server *s, int64_t tenant_id, int64_t device_id, const char *request_json, size_t len,
                  int timeout_ms, pl_buf *response, pl_err *err);

typedef enum {
  MQTT_DEVICE_ATTRIBUTES = 1, /* its attributes changed: shared ones are pushed to the device */
  MQTT_DEVICE_CREDENTIALS,    /* its token was replaced: a connection made with the old one is closed */
  MQTT_DEVICE_DELETED,        /* it was deleted: its connection is closed */
} mqtt_device_event;

/* Tells the server that a device changed through the API. For MQTT_DEVICE_ATTRIBUTES,
 * attributes_json is the device's whole new attributes object (copied); the server compares it
 * with what it last pushed and sends the changed shared attributes to the device if it is
 * connected and subscribed. Does not wait. */
void mqtt_device_changed(mqtt_server *s, int64_t tenant_id, int64_t device_id, mqtt_device_event event,
                         const char *attributes_json);

typedef struct mqtt_device_status {
  int online;               /* connected now, directly or through a gateway */
  int64_t connected_ms;     /* when the current connection began (0 when offline) */
  int64_t last_seen_ms;     /* last packet from it (0: not since the server started) */
  char via_gateway[128];    /* the gateway's device name when connected through one, else "" */
  char remote[64];          /* the client address of its connection, else "" */
  int protocol;             /* 3, 4 or 5 when online */
} mqtt_device_status;

/* The device's connection state as the server knows it now. Always succeeds (an unknown device
 * is offline) unless s is NULL or stopped (PL_ESTATE). */
int mqtt_device_status_get(mqtt_server *s, int64_t tenant_id, int64_t device_id, mqtt_device_status *out);

#endif
