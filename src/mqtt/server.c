/* The MQTT server: its thread and libuv loop, listeners and accepting, the once-a-second tick
 * (keep-alive, connect timeout, idle buffers, expiry), $SYS statistics and per-tenant state.
 * Connections (states, reading, writing, closing) are in server_conn.c, the handler of each
 * packet type and routing in server_packets.c, sessions in session.c, the device API in
 * device_api.c; they share mqtt_int.h.
 *
 * Limits and their reason codes (docs/mqtt.md "Limits"):
 *   packet over mqtt_max_packet_bytes              0x95 Packet too large (DISCONNECT)
 *   QoS 1/2 past our Receive Maximum (5.0)         0x93 Receive Maximum exceeded (DISCONNECT)
 *                        (3.1.1: reading pauses until acknowledgements catch up)
 *   connection over mqtt_connection_rate_max       0x96 Message rate too high (DISCONNECT)
 *   tenant over mqtt_tenant_rate_max               0x97 Quota exceeded (PUBACK/PUBREC; QoS 0 dropped)
 *   tenant over mqtt_tenant_connections_max        0x97 Quota exceeded (CONNACK)
 *   server over mqtt_max_connections               0x89 Server busy (CONNACK)
 *   keep-alive silence (1.5 x keep-alive)          0x8D Keep Alive timeout (DISCONNECT)
 */
#include "mqtt/mqtt_int.h"

#include "base/clock.h"
#include "base/log.h"
#include "base/net.h"
#include "base/version.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_MS 10000
#define OUT_HARD_BYTES (64u << 20) /* a client this far behind is cut off */
#define ACCEPTS_PER_WAKE 64

int64_t mqtt__now_ms(void) {
  return pl_mono_ns() / 1000000;
}

/* ---- tenants (per-tenant limits) ---- */

mqtt_tenant *mqtt__tenant(mqtt_server *s, int64_t tenant_id) {
  mqtt_tenant *t = pl_map_get(s->tenants, &tenant_id, sizeof tenant_id);
  if (t) return t;
  if (!(t = calloc(1, sizeof *t))) return NULL;
  t->id = tenant_id;
  if (pl_map_put(s->tenants, &t->id, sizeof t->id, t, NULL) < 0) {
    free(t);
    return NULL;
  }
  return t;
}

/* ---- accepting ---- */

static void on_accept(uv_poll_t *h, int status, int events) {
  mqtt_server *s = h->data;
  int listener = h == &s->listen_poll[1];
  if (status < 0 || !(events & UV_READABLE) || s->closing) return;
  for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(s->listen_fd[listener], (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE)
        PL_LOG(PL_LOG_WARN, "mqtt", "accept failed: out of file descriptors (raise ulimit -n)");
      return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    mqtt_conn *c = calloc(1, sizeof *c);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
    if (!c || epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
      free(c);
      close(fd);
      continue;
    }
    c->poll_events = 1;
    c->srv = s;
    c->fd = fd;
    c->refs = 1;
    c->id = ++s->next_conn_id;
    c->listener = (uint8_t)listener;
    pl_buf_init(&c->out, OUT_HARD_BYTES);
    c->opened_ms = c->last_rx_ms = mqtt__now_ms();
    if (ss.ss_family == AF_INET) {
      struct sockaddr_in *a = (struct sockaddr_in *)&ss;
      c->addr[10] = c->addr[11] = 0xff;
      memcpy(c->addr + 12, &a->sin_addr, 4);
      c->port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
      memcpy(c->addr, &a->sin6_addr, 16);
      c->port = ntohs(a->sin6_port);
    }
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    s->stats.connections_total++;
    if (listener && mqtt__tls_conn_init(c) < 0) {
      mqtt__conn_begin_close(c, "TLS setup failed", 1);
      continue;
    }
    mqtt__conn_poll_update(c);
  }
}

/* ---- the tick: keep-alive, connect timeout, idle buffers, expiry ---- */

static void on_tick(uv_timer_t *h) {
  mqtt_server *s = h->data;
  int64_t now = mqtt__now_ms();
  for (mqtt_conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    if ((c->state == MQTT_CONN_NEW || (c->tls && !c->tls_ready)) && now - c->opened_ms > CONNECT_TIMEOUT_MS) {
      mqtt__conn_begin_close(c, "no CONNECT within 10 s", 1);
      continue;
    }
    if (c->state == MQTT_CONN_ACTIVE && c->keepalive_s &&
        now - c->last_rx_ms > (int64_t)c->keepalive_s * 1500) {
      mqtt__conn_disconnect(c, MQTT_RC_KEEP_ALIVE_TIMEOUT, "nothing received for 1.5 times the keep-alive");
      continue;
    }
    /* An idle connection gives its buffers back. */
    if (c->out.len == 0 && c->out.data) {
      if (!c->idle_since_ms) c->idle_since_ms = now;
      else if (now - c->idle_since_ms > 5000) {
        pl_buf_free(&c->out);
        c->idle_since_ms = 0;
      }
    } else {
      c->idle_since_ms = 0;
    }
  }
  mqtt__sessions_tick(s, now);
  mqtt__api_tick(s, now);
}

/* ---- $SYS ---- */

static void sys_put(mqtt_server *s, const char *topic, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void sys_put(mqtt_server *s, const char *topic, const char *fmt, ...) {
  char value[128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(value, sizeof value, fmt, ap);
  va_end(ap);
  mqtt_msg_spec spec = {topic, strlen(topic), value, strlen(value), 0, 1, NULL, 0, 0, mqtt__now_ms()};
  mqtt_msg *m = mqtt__msg_new(&spec);
  if (!m) return;
  mqtt__route(s, MQTT_NS_SYS, m);
  mqtt__msg_unref(m);
}

static void on_sys(uv_timer_t *h) {
  mqtt_server *s = h->data;
  const mqtt_stats *st = &s->stats;
  uint32_t active = 0;
  for (mqtt_conn *c = s->conns; c; c = c->next) active += c->state == MQTT_CONN_ACTIVE;
  size_t sessions = pl_map_count(s->sessions);
  sys_put(s, "$SYS/broker/version", "plateau %s", PLATEAU_VERSION);
  sys_put(s, "$SYS/broker/uptime", "%lld seconds", (long long)((mqtt__now_ms() - s->start_ms) / 1000));
  sys_put(s, "$SYS/broker/clients/connected", "%u", active);
  sys_put(s, "$SYS/broker/clients/total", "%zu", sessions);
  sys_put(s, "$SYS/broker/clients/disconnected", "%zu", sessions > active ? sessions - active : 0);
  sys_put(s, "$SYS/broker/connections/total", "%llu", (unsigned long long)st->connections_total);
  sys_put(s, "$SYS/broker/messages/received", "%llu", (unsigned long long)st->packets_received);
  sys_put(s, "$SYS/broker/messages/sent", "%llu", (unsigned long long)st->packets_sent);
  sys_put(s, "$SYS/broker/publish/messages/received", "%llu", (unsigned long long)st->publish_received);
  sys_put(s, "$SYS/broker/publish/messages/sent", "%llu", (unsigned long long)st->publish_sent);
  sys_put(s, "$SYS/broker/publish/messages/dropped", "%llu", (unsigned long long)st->publish_dropped);
  sys_put(s, "$SYS/broker/bytes/received", "%llu", (unsigned long long)st->bytes_received);
  sys_put(s, "$SYS/broker/bytes/sent", "%llu", (unsigned long long)st->bytes_sent);
  sys_put(s, "$SYS/broker/subscriptions/count", "%zu", mqtt__topics_sub_count(s->topics));
  sys_put(s, "$SYS/broker/retained messages/count", "%zu", mqtt__topics_retained_count(s->topics));
  sys_put(s, "$SYS/broker/telemetry/stored", "%llu", (unsigned long long)st->telemetry_stored);
  sys_put(s, "$SYS/broker/telemetry/rejected", "%llu", (unsigned long long)st->telemetry_rejected);
}

/* ---- the thread and its lifecycle ---- */

static void on_handle_closed(uv_handle_t *h) {
  (void)h;
}

static void shutdown_loop(mqtt_server *s) {
  s->closing = 1;
  for (int i = 0; i < 2; i++) {
    if (s->listen_fd[i] >= 0) {
      uv_poll_stop(&s->listen_poll[i]);
      uv_close((uv_handle_t *)&s->listen_poll[i], on_handle_closed);
    }
  }
  mqtt__commands_fail_all(s);
  for (mqtt_conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    if (c->state == MQTT_CONN_ACTIVE)
      mqtt__conn_disconnect(c, MQTT_RC_SERVER_SHUTTING_DOWN, "the server is shutting down");
    else
      mqtt__conn_begin_close(c, "the server is shutting down", 1);
  }
  uv_timer_stop(&s->tick);
  uv_timer_stop(&s->sys_timer);
  uv_close((uv_handle_t *)&s->tick, on_handle_closed);
  uv_close((uv_handle_t *)&s->sys_timer, on_handle_closed);
  uv_close((uv_handle_t *)&s->wake, on_handle_closed);
  /* Closing connections wrote what they could; let go of the flush list and its handles. */
  mqtt__conns_flush_dirty(s);
  mqtt__conns_bury(s);
  uv_poll_stop(&s->ep_poll);
  uv_close((uv_handle_t *)&s->ep_poll, on_handle_closed);
  uv_close((uv_handle_t *)&s->flush, on_handle_closed);
  uv_close((uv_handle_t *)&s->kick, on_handle_closed);
}

static void on_wake(uv_async_t *h) {
  mqtt_server *s = h->data;
  pthread_mutex_lock(&s->cmd_lock);
  int stop = s->stopping == 1;
  if (stop) s->stopping = 2;
  pthread_mutex_unlock(&s->cmd_lock);
  if (stop) {
    shutdown_loop(s);
    return;
  }
  mqtt__commands_run(s);
}

static void thread_main(void *arg) {
  mqtt_server *s = arg;
  /* Returns once every handle is closed and every queued work item has completed. */
  uv_run(&s->loop, UV_RUN_DEFAULT);
  mqtt__conns_bury(s); /* connections whose last work completed after the check handle was closed */
}

static int listen_on(mqtt_server *s, int i, const char *addr, pl_err *err) {
  int fd = pl_net_listen(addr, SOCK_STREAM, 4096, err);
  if (fd < 0) {
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    return pl_err_set(err, fd, "mqtt %s: %s", i ? "TLS listener" : "listener", msg);
  }
  s->listen_fd[i] = fd;
  s->listen_port[i] = pl_net_local_port(fd);
  int rc = uv_poll_init(&s->loop, &s->listen_poll[i], fd);
  if (rc < 0) return pl_err_set(err, PL_EIO, "mqtt: %s", uv_strerror(rc));
  s->listen_poll[i].data = s;
  uv_poll_start(&s->listen_poll[i], UV_READABLE, on_accept);
  return 0;
}

static void free_sessions(mqtt_server *s) {
  /* End every session (their subscriptions leave the trie), collected first. */
  for (;;) {
    size_t it = 0, n = 0;
    const void *k;
    size_t kl;
    void *v;
    mqtt_session *batch[256];
    while (n < 256 && pl_map_next(s->sessions, &it, &k, &kl, &v)) batch[n++] = v;
    if (!n) break;
    for (size_t i = 0; i < n; i++) {
      mqtt__msg_unref(batch[i]->will); /* no wills are sent on shutdown */
      batch[i]->will = NULL;
      mqtt__session_end(s, batch[i]);
    }
  }
}

void mqtt_server_free(mqtt_server *s) {
  if (!s) return;
  if (s->started && !s->stopped) mqtt_server_stop(s);
  free_sessions(s);
  mqtt__api_free(s);
  mqtt__ingest_free(s);
  mqtt__topics_free(s->topics);
  mqtt__principal_unref(s->anon);
  size_t it = 0;
  const void *k;
  size_t kl;
  void *v;
  while (pl_map_next(s->tenants, &it, &k, &kl, &v)) free(v);
  pl_map_free(s->tenants);
  pl_map_free(s->sessions);
  it = 0;
  while (pl_map_next(s->devices, &it, &k, &kl, &v)) {
    mqtt_device_state *st = v;
    free(st->attrs_json);
    free(st->name);
    free(st->gateway_name);
    free(st);
  }
  pl_map_free(s->devices);
  pl_buf_free(&s->scratch);
  pl_buf_free(&s->topic_buf);
  mqtt__tls_free(s);
  if (s->started) uv_loop_close(&s->loop);
  for (int i = 0; i < 2; i++)
    if (s->listen_fd[i] >= 0) close(s->listen_fd[i]);
  if (s->epfd > 0) close(s->epfd);
  mqtt__conns_bury(s);
  pthread_mutex_destroy(&s->cmd_lock);
  pthread_mutex_destroy(&s->devices_lock);
  free(s);
}

static void close_if_inited(uv_handle_t *h) {
  if (h->loop && !uv_is_closing(h)) uv_close(h, NULL);
}

int mqtt_server_start(const mqtt_deps *deps, mqtt_server **out, pl_err *err) {
  mqtt_server *s = calloc(1, sizeof *s);
  if (!s) return pl_err_set(err, PL_ENOMEM, "mqtt: out of memory");
  s->deps = *deps;
  s->cfg = deps->cfg;
  s->listen_fd[0] = s->listen_fd[1] = -1;
  pthread_mutex_init(&s->cmd_lock, NULL);
  pthread_mutex_init(&s->devices_lock, NULL);
  pl_buf_init(&s->scratch, 0);
  pl_buf_init(&s->topic_buf, 0);
  s->sessions = pl_map_new();
  s->tenants = pl_map_new();
  s->devices = pl_map_new();
  s->topics = mqtt__topics_new();
  s->anon = mqtt__principal_anon();
  s->start_ms = mqtt__now_ms();
  int rc = 0;
  if (!s->sessions || !s->tenants || !s->devices || !s->topics || !s->anon || mqtt__ingest_init(s) < 0)
    rc = pl_err_set(err, PL_ENOMEM, "mqtt: out of memory");
  if (rc == 0 && uv_loop_init(&s->loop) < 0) rc = pl_err_set(err, PL_EIO, "mqtt: cannot create the event loop");
  if (rc == 0 && (s->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
    uv_loop_close(&s->loop);
    rc = pl_err_set(err, PL_EIO, "mqtt: cannot create an epoll set");
  }
  if (rc == 0) {
    s->started = 1;
    uv_poll_init(&s->loop, &s->ep_poll, s->epfd);
    s->ep_poll.data = s;
    uv_async_init(&s->loop, &s->wake, on_wake);
    s->wake.data = s;
    uv_check_init(&s->loop, &s->flush);
    s->flush.data = s;
    uv_idle_init(&s->loop, &s->kick);
    uv_timer_init(&s->loop, &s->tick);
    s->tick.data = s;
    uv_timer_init(&s->loop, &s->sys_timer);
    s->sys_timer.data = s;
  }
  if (rc == 0 && s->cfg->mqtt_tls_cert[0]) rc = mqtt__tls_init(s, err);
  if (rc == 0 && s->cfg->mqtt_listen[0]) rc = listen_on(s, 0, s->cfg->mqtt_listen, err);
  if (rc == 0 && s->cfg->mqtt_tls_cert[0] && s->cfg->mqtt_tls_listen[0])
    rc = listen_on(s, 1, s->cfg->mqtt_tls_listen, err);
  if (rc == 0) {
    uv_poll_start(&s->ep_poll, UV_READABLE, mqtt__conns_on_epoll);
    uv_check_start(&s->flush, mqtt__conns_on_check);
    uv_timer_start(&s->tick, on_tick, 1000, 1000);
    uint64_t sys_ms = (uint64_t)(s->cfg->mqtt_sys_interval_ns / 1000000);
    uv_timer_start(&s->sys_timer, on_sys, 0, sys_ms ? sys_ms : 10000);
    if (uv_thread_create(&s->thread, thread_main, s) < 0) rc = pl_err_set(err, PL_EIO, "mqtt: cannot start thread");
  }
  if (rc < 0) {
    if (s->started) {
      for (int i = 0; i < 2; i++) close_if_inited((uv_handle_t *)&s->listen_poll[i]);
      close_if_inited((uv_handle_t *)&s->ep_poll);
      close_if_inited((uv_handle_t *)&s->wake);
      close_if_inited((uv_handle_t *)&s->flush);
      close_if_inited((uv_handle_t *)&s->kick);
      close_if_inited((uv_handle_t *)&s->tick);
      close_if_inited((uv_handle_t *)&s->sys_timer);
      uv_run(&s->loop, UV_RUN_DEFAULT);
    }
    s->stopped = 1;
    mqtt_server_free(s);
    return rc;
  }
  char plain[320], tls[320];
  PL_LOG(PL_LOG_INFO, "mqtt", "listening plain=%s port=%d tls=%s tls_port=%d anonymous=%d",
         pl_log_quote(s->cfg->mqtt_listen, plain, sizeof plain), s->listen_port[0],
         pl_log_quote(s->cfg->mqtt_tls_cert[0] ? s->cfg->mqtt_tls_listen : "", tls, sizeof tls), s->listen_port[1],
         s->cfg->mqtt_allow_anonymous);
  *out = s;
  return 0;
}

int mqtt_server_port(const mqtt_server *s) {
  return s && s->listen_fd[0] >= 0 ? s->listen_port[0] : 0;
}

int mqtt_server_tls_port(const mqtt_server *s) {
  return s && s->listen_fd[1] >= 0 ? s->listen_port[1] : 0;
}

void mqtt_server_stop(mqtt_server *s) {
  if (!s || s->stopped) return;
  pthread_mutex_lock(&s->cmd_lock);
  if (!s->stopping) s->stopping = 1;
  pthread_mutex_unlock(&s->cmd_lock);
  uv_async_send(&s->wake);
  uv_thread_join(&s->thread);
  s->stopped = 1;
  PL_LOG(PL_LOG_INFO, "mqtt", "stopped");
}
