/* Connections of the MQTT server (server.c): output buffering and writing, closing and freeing,
 * pausing reads, ordered acknowledgements, and reading and decoding packets, which go to the
 * handlers of server_packets.c.
 *
 * Connection states:
 *   NEW      accepted; the first packet must be CONNECT (within CONNECT_TIMEOUT_MS)
 *   AUTH     CONNECT received, credentials being checked on a worker; reading is paused and
 *            bytes that came after the CONNECT wait in `in`
 *   ACTIVE   CONNACK sent with success; packets are handled
 *   CLOSING  a DISCONNECT may be on its way out; the socket is being closed
 *   CLOSED   the socket is closed; the struct lives while work refers to it (refs)
 *
 * I/O. Sockets are non-blocking. They share one epoll set of the server's own, itself watched by a
 * single uv_poll on the loop (as nginx does): a connection costs 16 bytes of epoll bookkeeping
 * instead of a 248-byte uv_tcp_t or a 160-byte uv_poll_t, and no request objects per write. The
 * set is level-triggered; each wake takes up to EVENTS_PER_WAKE events and libuv comes back for
 * the rest. A closed connection leaves the set at once and is freed in the check phase, after every
 * event of the wake was dispatched, so no callback ever sees freed memory. Reads go into one 64 KiB buffer shared by all
 * connections; only the bytes of an incomplete packet are copied into the connection (`in`,
 * exactly the packet's size once its header is known, bounded by mqtt_max_packet_bytes).
 * Packets to send are encoded into the connection's `out` buffer and written once per loop
 * iteration by a uv_check handle (one write() for many packets), or when the socket is writable
 * again. An idle connection holds no buffers.
 */
#include "mqtt/mqtt_int.h"

#include "base/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READS_PER_WAKE 8
#define EVENTS_PER_WAKE 256

/* ---- output ---- */

static void on_kick(uv_idle_t *h) {
  (void)h; /* only there to keep the next poll from blocking while output waits */
}

static void mark_dirty(mqtt_conn *c) {
  mqtt_server *s = c->srv;
  if (c->dirty) return;
  c->dirty = 1;
  c->refs++; /* held while on the list */
  /* Output made outside the poll phase (timers, commands) must not wait for the next event. */
  if (!s->dirty && !s->closing) uv_idle_start(&s->kick, on_kick);
  c->dirty_next = s->dirty;
  s->dirty = c;
}

int mqtt__conn_out_append(mqtt_conn *c, const void *data, size_t len) {
  if (c->state >= MQTT_CONN_CLOSED) return PL_ESTATE;
  int rc = pl_buf_append(&c->out, data, len);
  if (rc < 0) return rc;
  mark_dirty(c);
  return 0;
}

int mqtt__conn_send(mqtt_conn *c, const void *data, size_t len) {
  if (c->tls) return mqtt__tls_output(c, data, len);
  return mqtt__conn_out_append(c, data, len);
}

int mqtt__conn_out_full(const mqtt_conn *c) {
  return c->out.len - c->out_off > MQTT_OUT_SOFT_BYTES;
}

int mqtt__conn_send_packet(mqtt_conn *c, const mqtt_packet *p) {
  mqtt_server *s = c->srv;
  if (c->state >= MQTT_CONN_CLOSING && p->type != MQTT_DISCONNECT && p->type != MQTT_CONNACK) return PL_ESTATE;
  size_t size = mqtt_encoded_size(p, c->version);
  if (!size) return PL_EINVAL;
  if (c->client_max_packet && size > c->client_max_packet) return PL_ELIMIT;
  int rc;
  if (c->tls) {
    pl_buf_reset(&s->scratch);
    rc = mqtt_encode(p, c->version, &s->scratch);
    if (rc == 0) rc = mqtt__tls_output(c, s->scratch.data, s->scratch.len);
  } else {
    rc = mqtt_encode(p, c->version, &c->out);
    if (rc == 0) mark_dirty(c);
  }
  if (rc == PL_ELIMIT) {
    mqtt__conn_begin_close(c, "slow consumer: output buffer full", 0);
    return rc;
  }
  if (rc == 0) s->stats.packets_sent++;
  return rc;
}

void mqtt__conn_send_simple(mqtt_conn *c, uint8_t type, uint16_t packet_id, uint8_t reason) {
  mqtt_packet p;
  memset(&p, 0, sizeof p);
  p.type = type;
  p.u.ack.packet_id = packet_id;
  p.u.ack.reason = c->version == MQTT_V5 ? reason : 0;
  mqtt__conn_send_packet(c, &p);
}

static void conn_flush(mqtt_conn *c) {
  mqtt_server *s = c->srv;
  if (c->state >= MQTT_CONN_CLOSED) return;
  while (c->out_off < c->out.len) {
    ssize_t n = write(c->fd, c->out.data + c->out_off, c->out.len - c->out_off);
    if (n > 0) {
      c->out_off += (uint32_t)n;
      s->stats.bytes_sent += (uint64_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    mqtt__conn_begin_close(c, "write failed", 0);
    return;
  }
  int was_full = 0;
  if (c->out_off == c->out.len) {
    was_full = 1;
    /* An idle connection keeps no buffer (mqtt_max_connections of them would add up). */
    pl_buf_free(&c->out);
    c->out_off = 0;
  } else if (c->out_off > 65536 && c->out_off > c->out.len / 2) {
    memmove(c->out.data, c->out.data + c->out_off, c->out.len - c->out_off);
    c->out.len -= c->out_off;
    c->out_off = 0;
  }
  if (c->state < MQTT_CONN_CLOSING) mqtt__conn_poll_update(c);
  if (was_full && c->sess && c->sess->q_count && c->state == MQTT_CONN_ACTIVE) mqtt__session_pump(s, c->sess);
}

static void conn_unref(mqtt_conn *c);

void mqtt__conns_flush_dirty(mqtt_server *s) {
  while (s->dirty) {
    mqtt_conn *c = s->dirty;
    s->dirty = c->dirty_next;
    c->dirty = 0;
    conn_flush(c);
    conn_unref(c);
  }
}

void mqtt__conns_on_check(uv_check_t *h) {
  mqtt_server *s = h->data;
  mqtt__ingest_flush(s);
  mqtt__conns_flush_dirty(s);
  mqtt__conns_bury(s);
  uv_idle_stop(&s->kick);
}

/* ---- closing ---- */

void mqtt__conn_free(mqtt_conn *c) {
  free(c->in);
  pl_buf_free(&c->out);
  if (c->aliases) {
    for (int i = 0; i <= c->srv->cfg->mqtt_topic_alias_max; i++) free(c->aliases[i]);
    free(c->aliases);
  }
  mqtt__tls_conn_free(c);
  mqtt__msg_unref(c->will);
  mqtt__principal_unref(c->who);
  free(c);
}

/* The last reference lets go: the connection is freed after the current dispatch. */
static void conn_unref(mqtt_conn *c) {
  if (--c->refs) return;
  c->dirty_next = c->srv->graveyard;
  c->srv->graveyard = c;
}

void mqtt__conns_bury(mqtt_server *s) {
  while (s->graveyard) {
    mqtt_conn *c = s->graveyard;
    s->graveyard = c->dirty_next;
    mqtt__conn_free(c);
  }
}

void mqtt__conn_ref(mqtt_conn *c) {
  c->refs++;
}

void mqtt__conn_unref(mqtt_conn *c) {
  conn_unref(c);
}

void mqtt__addr_str(const uint8_t addr[16], char *out, size_t outsz) {
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (memcmp(addr, mapped, 12) == 0) inet_ntop(AF_INET, addr + 12, out, (socklen_t)outsz);
  else inet_ntop(AF_INET6, addr, out, (socklen_t)outsz);
}

void mqtt__remote_str(const mqtt_conn *c, char *out, size_t outsz) {
  mqtt__addr_str(c->addr, out, outsz);
}

/* Detaches the session: the will, the device's online state, the session's end or its wait. */
static void conn_detach(mqtt_conn *c, int clean) {
  mqtt_server *s = c->srv;
  mqtt_session *ss = c->sess;
  mqtt_msg *will = c->will;
  c->will = NULL;
  if (!ss) {
    mqtt__msg_unref(will);
    return;
  }
  c->sess = NULL;
  ss->conn = NULL;
  int64_t now = mqtt__now_ms();
  if (c->who && c->who->kind == MQTT_WHO_DEVICE) mqtt__device_offline(s, ss);
  if (will && !clean) {
    if (c->will_delay_s == 0 || ss->expiry_s == 0) {
      mqtt__will_publish(s, ss->who, will);
    } else {
      mqtt__msg_unref(ss->will);
      ss->will = mqtt__msg_ref(will);
      ss->will_due_ms = now + (int64_t)c->will_delay_s * 1000;
    }
  }
  mqtt__msg_unref(will);
  if (ss->expiry_s == 0) mqtt__session_end(s, ss);
  else ss->offline_since_ms = now > 0 ? now : 1;
  mqtt__session_unref(ss);
}

void mqtt__conn_begin_close(mqtt_conn *c, const char *why, int clean) {
  mqtt_server *s = c->srv;
  if (c->state >= MQTT_CONN_CLOSING) return;
  c->state = MQTT_CONN_CLOSING;
  char remote[64];
  mqtt__remote_str(c, remote, sizeof remote);
  PL_LOG(clean ? PL_LOG_DEBUG : PL_LOG_INFO, "mqtt", "conn=%llu closed remote=%s who=%s reason=\"%s\"",
         (unsigned long long)c->id, remote, c->who ? c->who->actor : "-", why);
  /* Whatever is queued (a DISCONNECT, say) gets one try; the socket is non-blocking. */
  while (c->out_off < c->out.len) {
    ssize_t n = write(c->fd, c->out.data + c->out_off, c->out.len - c->out_off);
    if (n <= 0) break;
    c->out_off += (uint32_t)n;
    s->stats.bytes_sent += (uint64_t)n;
  }
  if (c->counted && c->who && c->who->tenant_id) {
    mqtt_tenant *t = mqtt__tenant(s, c->who->tenant_id);
    if (t && t->connections) t->connections--;
  }
  /* Ordered acknowledgements still waiting now belong to the work that will complete them. */
  mqtt_ack_wait *a = c->ack_head;
  while (a) {
    mqtt_ack_wait *next = a->next;
    if (a->done) free(a);
    else a->conn = NULL;
    a = next;
  }
  c->ack_head = c->ack_tail = NULL;
  conn_detach(c, clean);
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  s->nconns--;
  epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
  c->state = MQTT_CONN_CLOSED;
  conn_unref(c); /* the socket's reference */
}

void mqtt__conn_close(mqtt_conn *c, const char *why) {
  mqtt__conn_begin_close(c, why, 0);
}

void mqtt__conn_disconnect(mqtt_conn *c, uint8_t reason, const char *why) {
  if (c->state >= MQTT_CONN_CLOSING) return;
  if (c->version == MQTT_V5 && c->state == MQTT_CONN_ACTIVE) {
    mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_DISCONNECT;
    p.u.disconnect.reason = reason;
    if (why && c->problem_info) {
      MQTT_SET(&p.u.disconnect.props, MQTT_PROP_REASON_STRING);
      p.u.disconnect.props.reason_string = (mqtt_bytes){(const uint8_t *)why, (uint32_t)strlen(why)};
    }
    if (mqtt__conn_send_packet(c, &p) == PL_ELIMIT) {
      p.u.disconnect.props.present = 0;
      mqtt__conn_send_packet(c, &p);
    }
  }
  char line[200];
  snprintf(line, sizeof line, "%s (0x%02x %s)", why ? why : "", reason, mqtt_reason_name(reason));
  mqtt__conn_begin_close(c, line, 0);
}

void mqtt__conn_protocol_error(mqtt_conn *c, uint8_t reason, const char *why) {
  c->srv->stats.protocol_errors++;
  mqtt__conn_disconnect(c, reason, why);
}

/* ---- pausing ---- */

void mqtt__conn_pause(mqtt_conn *c, uint8_t why) {
  c->read_paused |= why;
  mqtt__conn_poll_update(c);
}

void mqtt__conn_resume(mqtt_conn *c, uint8_t why) {
  if (!(c->read_paused & why)) return;
  c->read_paused &= (uint8_t)~why;
  if (c->read_paused || c->state >= MQTT_CONN_CLOSING) return;
  if (c->in_len && !c->in_need) {
    /* Bytes saved while paused: handle them now (feeding may pause again and save the rest). */
    uint8_t *buf = c->in;
    uint32_t len = c->in_len;
    c->in = NULL;
    c->in_len = 0;
    c->refs++;
    mqtt__conn_feed(c, buf, len);
    free(buf);
    conn_unref(c);
    if (c->state >= MQTT_CONN_CLOSING || c->read_paused) return;
  }
  if (c->tls && c->tls_ready) mqtt__tls_input(c, NULL, 0); /* records GnuTLS already decrypted */
  if (c->state < MQTT_CONN_CLOSING) mqtt__conn_poll_update(c);
}

/* ---- ordered acknowledgements ---- */

mqtt_ack_wait *mqtt__ack_wait_add(mqtt_conn *c, uint8_t type, uint16_t packet_id) {
  mqtt_ack_wait *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  a->conn = c;
  a->type = type;
  a->packet_id = packet_id;
  if (c->ack_tail) c->ack_tail->next = a;
  else c->ack_head = a;
  c->ack_tail = a;
  return a;
}

void mqtt__ack_wait_done(mqtt_ack_wait *a, uint8_t reason) {
  mqtt_conn *c = a->conn;
  a->done = 1;
  a->reason = reason;
  if (!c) {
    free(a);
    return;
  }
  mqtt_server *s = c->srv;
  while (c->ack_head && c->ack_head->done) {
    mqtt_ack_wait *h = c->ack_head;
    c->ack_head = h->next;
    if (!c->ack_head) c->ack_tail = NULL;
    mqtt__conn_send_simple(c, h->type, h->packet_id, h->reason);
    /* A PUBACK ends a QoS 1 flow; a PUBREC with an error ends a QoS 2 flow. */
    if ((h->type == MQTT_PUBACK || h->reason >= 0x80) && c->pending_in) c->pending_in--;
    free(h);
  }
  if ((c->read_paused & MQTT_PAUSE_INFLIGHT) && c->pending_in < (uint32_t)s->cfg->mqtt_receive_max)
    mqtt__conn_resume(c, MQTT_PAUSE_INFLIGHT);
}

/* ---- reading ---- */

static int save_bytes(mqtt_conn *c, const uint8_t *data, size_t len, size_t need) {
  size_t cap = need > len ? need : len;
  uint8_t *b = malloc(cap ? cap : 1);
  if (!b) return PL_ENOMEM;
  memcpy(b, data, len);
  free(c->in);
  c->in = b;
  c->in_len = (uint32_t)len;
  c->in_need = (uint32_t)need;
  return 0;
}

void mqtt__conn_feed(mqtt_conn *c, const uint8_t *data, size_t len) {
  mqtt_server *s = c->srv;
  size_t pos = 0;
  size_t max = (size_t)s->cfg->mqtt_max_packet_bytes;
  while (pos < len && c->state < MQTT_CONN_CLOSING) {
    if (c->read_paused) {
      if (save_bytes(c, data + pos, len - pos, 0) < 0) mqtt__conn_begin_close(c, "out of memory", 0);
      return;
    }
    mqtt_packet p;
    size_t used = 0;
    uint8_t reason = 0;
    uint8_t version = c->state == MQTT_CONN_NEW ? 0 : c->version;
    int rc = mqtt_decode(data + pos, len - pos, version, max, &p, &used, &reason);
    if (rc == PL_AGAIN) {
      if (save_bytes(c, data + pos, len - pos, used) < 0) mqtt__conn_begin_close(c, "out of memory", 0);
      return;
    }
    if (rc < 0) {
      if (c->state == MQTT_CONN_NEW && reason == MQTT_RC_UNSUPPORTED_VERSION) {
        /* Answered in the 3.1.1 format, which every version reads (code 1). */
        c->version = MQTT_V311;
        mqtt__connect_refuse(c, MQTT_RC_UNSUPPORTED_VERSION, "unsupported protocol version");
        return;
      }
      char why[120];
      snprintf(why, sizeof why, "%s packet refused", rc == PL_ELIMIT ? "oversized" : "malformed");
      if (c->state == MQTT_CONN_NEW) {
        s->stats.protocol_errors++;
        mqtt__conn_begin_close(c, why, 1);
      } else {
        mqtt__conn_protocol_error(c, reason, why);
      }
      return;
    }
    s->stats.packets_received++;
    c->last_rx_ms = mqtt__now_ms();
    mqtt__handle_packet(c, &p);
    pos += used;
  }
}

/* `in` holds exactly one whole packet: hands it over, leaving the connection without a buffer. */
static void feed_saved(mqtt_conn *c) {
  uint8_t *buf = c->in;
  uint32_t blen = c->in_len;
  c->in = NULL;
  c->in_len = c->in_need = 0;
  mqtt__conn_feed(c, buf, blen);
  free(buf);
}

void mqtt__conn_input(mqtt_conn *c, const uint8_t *data, size_t len) {
  if (!c->in_len) {
    mqtt__conn_feed(c, data, len);
    return;
  }
  if (c->in_need && c->in_len + len <= c->in_need) {
    /* The buffer was made the packet's size: fill it in place. */
    memcpy(c->in + c->in_len, data, len);
    c->in_len += (uint32_t)len;
    if (c->in_len < c->in_need) return;
    feed_saved(c);
    return;
  }
  size_t total = c->in_len + len;
  uint8_t *buf = malloc(total);
  if (!buf) {
    mqtt__conn_begin_close(c, "out of memory", 0);
    return;
  }
  memcpy(buf, c->in, c->in_len);
  memcpy(buf + c->in_len, data, len);
  free(c->in);
  c->in = NULL;
  c->in_len = c->in_need = 0;
  mqtt__conn_feed(c, buf, total);
  free(buf);
}

static void conn_read(mqtt_conn *c) {
  mqtt_server *s = c->srv;
  c->refs++;
  for (int round = 0; round < READS_PER_WAKE && c->state < MQTT_CONN_CLOSING && !c->read_paused; round++) {
    if (!c->tls && c->in_len && c->in_need > c->in_len) {
      /* The rest of a packet whose size is known goes straight into its buffer. */
      ssize_t n = read(c->fd, c->in + c->in_len, c->in_need - c->in_len);
      if (n == 0) {
        mqtt__conn_begin_close(c, "connection closed by the client", 0);
        break;
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) mqtt__conn_begin_close(c, "read failed", 0);
        break;
      }
      s->stats.bytes_received += (uint64_t)n;
      c->in_len += (uint32_t)n;
      if (c->in_len < c->in_need) continue;
      feed_saved(c);
      continue;
    }
    size_t off = 0;
    if (!c->tls && c->in_len) {
      /* A partial header: a few bytes, prepended in the shared buffer. */
      memcpy(s->rbuf, c->in, c->in_len);
      off = c->in_len;
      free(c->in);
      c->in = NULL;
      c->in_len = c->in_need = 0;
    }
    ssize_t n = read(c->fd, s->rbuf + off, sizeof s->rbuf - off);
    if (n == 0) {
      mqtt__conn_begin_close(c, "connection closed by the client", 0);
      break;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (off && save_bytes(c, s->rbuf, off, 0) < 0) mqtt__conn_begin_close(c, "out of memory", 0);
      if (errno != EAGAIN && errno != EWOULDBLOCK) mqtt__conn_begin_close(c, "read failed", 0);
      break;
    }
    s->stats.bytes_received += (uint64_t)n;
    if (c->tls) {
      if (mqtt__tls_input(c, s->rbuf, (size_t)n) < 0) mqtt__conn_begin_close(c, "TLS error", 0);
    } else {
      mqtt__conn_feed(c, s->rbuf, off + (size_t)n);
    }
    if ((size_t)n < sizeof s->rbuf - off) break; /* drained the socket */
  }
  conn_unref(c);
}

/* The connections' epoll set is readable: dispatch what it holds. */
void mqtt__conns_on_epoll(uv_poll_t *h, int status, int events) {
  mqtt_server *s = h->data;
  (void)status;
  (void)events;
  struct epoll_event evs[EVENTS_PER_WAKE];
  int n = epoll_wait(s->epfd, evs, EVENTS_PER_WAKE, 0);
  for (int i = 0; i < n; i++) {
    mqtt_conn *c = evs[i].data.ptr;
    if (c->state >= MQTT_CONN_CLOSING) continue; /* closed earlier in this batch */
    uint32_t e = evs[i].events;
    c->refs++;
    if (e & EPOLLOUT) conn_flush(c);
    if ((e & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->state < MQTT_CONN_CLOSING) {
      if (c->read_paused) mqtt__conn_begin_close(c, "connection closed by the client", 0); /* only HUP/ERR here */
      else conn_read(c);
    }
    conn_unref(c);
  }
}

void mqtt__conn_poll_update(mqtt_conn *c) {
  if (c->state >= MQTT_CONN_CLOSING) return;
  uint8_t ev = 0;
  if (!c->read_paused) ev |= 1;
  if (c->out_off < c->out.len) ev |= 2;
  if (ev == c->poll_events) return;
  c->poll_events = ev;
  /* Level-triggered; with no interest left only HUP and ERR are reported, which close it. */
  struct epoll_event e = {.events = (ev & 1 ? EPOLLIN : 0) | (ev & 2 ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(c->srv->epfd, EPOLL_CTL_MOD, c->fd, &e);
}
