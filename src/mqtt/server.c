/* The MQTT server: its thread and libuv loop, listeners, connections (reading, decoding,
 * writing, keep-alive, limits), one handler per packet type, routing, and $SYS statistics.
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
 *
 * Protocol violations close the offending connection only: 5.0 clients get a DISCONNECT with the
 * reason code (mqtt_reason_name), 3.1.x clients a closed socket, as their specification asks.
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
#include "base/json.h"
#include "base/log.h"
#include "base/net.h"
#include "base/version.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sodium.h>
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
#define READS_PER_WAKE 8
#define EVENTS_PER_WAKE 256

int64_t mqtt__now_ms(void) {
  return pl_mono_ns() / 1000000;
}

static void conn_begin_close(mqtt_conn *c, const char *why, int clean);
static void bury(mqtt_server *s);
static void conn_poll_update(mqtt_conn *c);
static void conn_flush(mqtt_conn *c);

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
    conn_begin_close(c, "slow consumer: output buffer full", 0);
    return rc;
  }
  if (rc == 0) s->stats.packets_sent++;
  return rc;
}

static void send_simple(mqtt_conn *c, uint8_t type, uint16_t packet_id, uint8_t reason) {
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
    conn_begin_close(c, "write failed", 0);
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
  if (c->state < MQTT_CONN_CLOSING) conn_poll_update(c);
  if (was_full && c->sess && c->sess->q_count && c->state == MQTT_CONN_ACTIVE) mqtt__session_pump(s, c->sess);
}

static void conn_unref(mqtt_conn *c);

static void flush_dirty(mqtt_server *s) {
  while (s->dirty) {
    mqtt_conn *c = s->dirty;
    s->dirty = c->dirty_next;
    c->dirty = 0;
    conn_flush(c);
    conn_unref(c);
  }
}

static void on_check(uv_check_t *h) {
  mqtt_server *s = h->data;
  mqtt__ingest_flush(s);
  flush_dirty(s);
  bury(s);
  uv_idle_stop(&s->kick);
}

/* ---- closing ---- */

static void conn_free(mqtt_conn *c) {
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

static void bury(mqtt_server *s) {
  while (s->graveyard) {
    mqtt_conn *c = s->graveyard;
    s->graveyard = c->dirty_next;
    conn_free(c);
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

static void conn_begin_close(mqtt_conn *c, const char *why, int clean) {
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
  conn_begin_close(c, why, 0);
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
  conn_begin_close(c, line, 0);
}

static void protocol_error(mqtt_conn *c, uint8_t reason, const char *why) {
  c->srv->stats.protocol_errors++;
  mqtt__conn_disconnect(c, reason, why);
}

/* ---- pausing ---- */

void mqtt__conn_pause(mqtt_conn *c, uint8_t why) {
  c->read_paused |= why;
  conn_poll_update(c);
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
  if (c->state < MQTT_CONN_CLOSING) conn_poll_update(c);
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
    send_simple(c, h->type, h->packet_id, h->reason);
    /* A PUBACK ends a QoS 1 flow; a PUBREC with an error ends a QoS 2 flow. */
    if ((h->type == MQTT_PUBACK || h->reason >= 0x80) && c->pending_in) c->pending_in--;
    free(h);
  }
  if ((c->read_paused & MQTT_PAUSE_INFLIGHT) && c->pending_in < (uint32_t)s->cfg->mqtt_receive_max)
    mqtt__conn_resume(c, MQTT_PAUSE_INFLIGHT);
}

/* ---- routing ---- */

typedef struct route_hit {
  mqtt_session *ss;
  uint32_t sub_id;
  uint8_t qos, retain;
} route_hit;

typedef struct route_ctx {
  mqtt_msg *m;
  uint32_t seq;
  route_hit *hits;
  size_t n, cap;
  route_hit local[16];
  int oom;
} route_ctx;

static void on_match(void *ctx, mqtt_sub *sub) {
  route_ctx *r = ctx;
  mqtt_session *ss = sub->sess;
  if (ss->id == r->m->origin && (r->m->from_device || (sub->options & MQTT_SUB_NO_LOCAL))) return;
  uint8_t qos = MQTT_SUB_QOS(sub->options) < r->m->qos ? MQTT_SUB_QOS(sub->options) : r->m->qos;
  uint8_t retain = (sub->options & MQTT_SUB_RETAIN_AS_PUBLISHED) ? r->m->retain : 0;
  if (ss->match_seq == r->seq && ss->match_index < r->n && r->hits[ss->match_index].ss == ss) {
    route_hit *h = &r->hits[ss->match_index];
    if (qos > h->qos) h->qos = qos;
    if (!h->sub_id) h->sub_id = sub->sub_id;
    h->retain |= retain;
    return;
  }
  if (r->n == r->cap) {
    size_t cap = r->cap * 2;
    route_hit *n = malloc(cap * sizeof *n);
    if (!n) {
      r->oom = 1;
      return;
    }
    memcpy(n, r->hits, r->n * sizeof *n);
    if (r->hits != r->local) free(r->hits);
    r->hits = n;
    r->cap = cap;
  }
  ss->match_seq = r->seq;
  ss->match_index = (uint32_t)r->n;
  mqtt__session_ref(ss);
  r->hits[r->n++] = (route_hit){ss, sub->sub_id, qos, retain};
}

int mqtt__route(mqtt_server *s, const char *ns, mqtt_msg *m) {
  if (m->retain) mqtt__topics_retain(s->topics, ns, mqtt_msg_topic(m), m->topic_len, m);
  route_ctx r;
  r.m = m;
  r.seq = ++s->match_seq;
  r.hits = r.local;
  r.n = 0;
  r.cap = sizeof r.local / sizeof r.local[0];
  r.oom = 0;
  mqtt__topics_match(s->topics, ns, mqtt_msg_topic(m), m->topic_len, on_match, &r);
  for (size_t i = 0; i < r.n; i++) {
    mqtt__deliver(s, r.hits[i].ss, m, r.hits[i].qos, r.hits[i].retain, r.hits[i].sub_id);
    mqtt__session_unref(r.hits[i].ss);
  }
  if (r.hits != r.local) free(r.hits);
  return (int)r.n;
}

/* ---- CONNECT ---- */

typedef struct pending_connect {
  mqtt_auth_req req; /* first: the auth callback gets this */
  char *client_id;
  size_t client_id_len;
  uint8_t clean, assigned;
  uint32_t expiry_s;
  int expiry_capped;
  mqtt_msg *will; /* topic as the client wrote it */
  uint32_t will_delay_s;
} pending_connect;

static void pending_free(pending_connect *pc) {
  free(pc->client_id);
  mqtt__msg_unref(pc->will);
  pc->will = NULL;
  mqtt__auth_req_free(&pc->req); /* frees pc: req is its first member */
}

static void connack(mqtt_conn *c, uint8_t reason, int session_present, const pending_connect *pc, const char *why) {
  mqtt_server *s = c->srv;
  mqtt_packet p;
  memset(&p, 0, sizeof p);
  p.type = MQTT_CONNACK;
  if (c->version == MQTT_V5) {
    p.u.connack.reason = reason;
    p.u.connack.session_present = (uint8_t)session_present;
    mqtt_props *pr = &p.u.connack.props;
    if (reason == MQTT_RC_SUCCESS) {
      MQTT_SET(pr, MQTT_PROP_RECEIVE_MAX);
      pr->receive_max = (uint16_t)s->cfg->mqtt_receive_max;
      MQTT_SET(pr, MQTT_PROP_MAX_PACKET_SIZE);
      pr->max_packet_size = (uint32_t)s->cfg->mqtt_max_packet_bytes;
      if (s->cfg->mqtt_topic_alias_max) {
        MQTT_SET(pr, MQTT_PROP_TOPIC_ALIAS_MAX);
        pr->topic_alias_max = (uint16_t)s->cfg->mqtt_topic_alias_max;
      }
      if (pc && pc->assigned) {
        MQTT_SET(pr, MQTT_PROP_ASSIGNED_CLIENT_ID);
        pr->assigned_client_id = (mqtt_bytes){(const uint8_t *)pc->client_id, (uint32_t)pc->client_id_len};
      }
      if (pc && pc->expiry_capped) {
        MQTT_SET(pr, MQTT_PROP_SESSION_EXPIRY);
        pr->session_expiry = pc->expiry_s;
      }
    } else if (why && c->problem_info) {
      MQTT_SET(pr, MQTT_PROP_REASON_STRING);
      pr->reason_string = (mqtt_bytes){(const uint8_t *)why, (uint32_t)strlen(why)};
    }
  } else {
    p.u.connack.reason = mqtt_reason_v3_connack(reason);
    p.u.connack.session_present = reason == MQTT_RC_SUCCESS && session_present;
  }
  mqtt__conn_send_packet(c, &p);
}

static void connect_refuse(mqtt_conn *c, uint8_t reason, const char *why) {
  connack(c, reason, 0, NULL, why);
  char line[240];
  snprintf(line, sizeof line, "connect refused: %s (0x%02x %s)", why, reason, mqtt_reason_name(reason));
  conn_begin_close(c, line, 1);
}

/* The session map key: namespace, principal, client id, separated by 0x1f. */
static size_t session_key(const mqtt_principal *who, const char *client_id, size_t len, pl_buf *out,
                          size_t *client_off) {
  pl_buf_reset(out);
  if (who->kind == MQTT_WHO_DEVICE) pl_buf_printf(out, "%s\x1f" "d%lld\x1f", who->ns, (long long)who->device_id);
  else if (who->kind == MQTT_WHO_USER) pl_buf_printf(out, "%s\x1fu\x1f", who->ns);
  else pl_buf_printf(out, "%s\x1f\x1f", who->ns);
  *client_off = out->len;
  pl_buf_append(out, client_id, len);
  return out->len;
}

static void on_auth_done(mqtt_auth_req *req) {
  pending_connect *pc = (pending_connect *)req;
  mqtt_conn *c = req->conn;
  mqtt_server *s = c->srv;
  c->refs--;
  if (c->state != MQTT_CONN_AUTH) {
    pending_free(pc);
    if (!c->refs) conn_free(c);
    return;
  }
  char remote[64];
  mqtt__remote_str(c, remote, sizeof remote);
  if (req->reason != MQTT_RC_SUCCESS) {
    s->stats.auth_failures++;
    PL_LOG(PL_LOG_INFO, "mqtt", "conn=%llu remote=%s auth=refused reason=0x%02x why=\"%s\"",
           (unsigned long long)c->id, remote, req->reason, req->why);
    c->state = MQTT_CONN_NEW; /* so the CONNACK is allowed out */
    connect_refuse(c, req->reason, req->why);
    pending_free(pc);
    return;
  }
  mqtt_principal *who = req->who;
  req->who = NULL;
  c->who = who;
  uint32_t active = 0;
  for (mqtt_conn *k = s->conns; k; k = k->next) active += k->state == MQTT_CONN_ACTIVE;
  mqtt_tenant *t = who->tenant_id ? mqtt__tenant(s, who->tenant_id) : NULL;
  const char *refuse = NULL;
  uint8_t reason = 0;
  if (active >= (uint32_t)s->cfg->mqtt_max_connections) {
    refuse = "the server has reached mqtt_max_connections";
    reason = MQTT_RC_SERVER_BUSY;
  } else if (t && t->connections >= (uint32_t)s->cfg->mqtt_tenant_connections_max) {
    refuse = "the tenant has reached mqtt_tenant_connections_max";
    reason = MQTT_RC_QUOTA_EXCEEDED;
  } else if (pc->will) {
    mqtt_pub_target tg;
    if (mqtt__access_publish(s, who, mqtt_msg_topic(pc->will), pc->will->topic_len, &tg) != 0) {
      refuse = "the will topic is not one this client may publish to";
      reason = MQTT_RC_NOT_AUTHORIZED;
    }
  }
  if (refuse) {
    c->state = MQTT_CONN_NEW;
    connect_refuse(c, reason, refuse);
    pending_free(pc);
    return;
  }
  pl_buf key;
  pl_buf_init(&key, 0);
  size_t client_off;
  session_key(who, pc->client_id, pc->client_id_len, &key, &client_off);
  mqtt_session *ss = mqtt__session_find(s, (const char *)key.data, key.len);
  if (ss && ss->conn) {
    mqtt_conn *old = ss->conn;
    mqtt__conn_disconnect(old, MQTT_RC_SESSION_TAKEN_OVER, "another connection took this session over");
    ss = mqtt__session_find(s, (const char *)key.data, key.len);
  }
  if (ss && pc->clean) {
    mqtt__session_end(s, ss);
    ss = NULL;
  }
  int present = ss != NULL;
  if (!ss) ss = mqtt__session_new(s, (const char *)key.data, key.len, client_off, who);
  pl_buf_free(&key);
  if (!ss) {
    c->state = MQTT_CONN_NEW;
    connect_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
    pending_free(pc);
    return;
  }
  if (ss->will) {
    /* Reconnected within the will delay: the will is not sent (5.0 3.1.3.2.2). */
    mqtt__msg_unref(ss->will);
    ss->will = NULL;
  }
  if (ss->who != who) {
    mqtt__principal_unref(ss->who);
    ss->who = who;
    who->refs++;
  }
  ss->version = c->version;
  ss->expiry_s = pc->expiry_s;
  ss->offline_since_ms = 0;
  ss->conn = c;
  mqtt__session_ref(ss);
  c->sess = ss;
  c->will = pc->will;
  pc->will = NULL;
  c->will_delay_s = pc->will_delay_s;
  c->state = MQTT_CONN_ACTIVE;
  c->last_rx_ms = mqtt__now_ms();
  if (t) {
    t->connections++;
    c->counted = 1;
  }
  connack(c, MQTT_RC_SUCCESS, present, pc, NULL);
  PL_LOG(PL_LOG_INFO, "mqtt", "conn=%llu connected remote=%s who=%s protocol=%d session=%llu present=%d",
         (unsigned long long)c->id, remote, who->actor, c->version, (unsigned long long)ss->id, present);
  if (who->kind == MQTT_WHO_DEVICE) mqtt__device_online(s, ss, req->attrs_json);
  pending_free(pc);
  mqtt__session_resume(s, ss);
  mqtt__conn_resume(c, MQTT_PAUSE_AUTH);
}

static int dup_bytes(mqtt_bytes b, char **out, size_t *len) {
  *out = malloc(b.len + 1);
  if (!*out) return PL_ENOMEM;
  if (b.len) memcpy(*out, b.p, b.len);
  (*out)[b.len] = 0;
  *len = b.len;
  return 0;
}

static void on_connect(mqtt_conn *c, const mqtt_packet *p) {
  mqtt_server *s = c->srv;
  const mqtt_connect *k = &p->u.connect;
  if (c->state != MQTT_CONN_NEW) {
    protocol_error(c, MQTT_RC_PROTOCOL_ERROR, "a second CONNECT");
    return;
  }
  c->version = k->version;
  c->keepalive_s = k->keep_alive_s;
  c->client_receive_max = 65535;
  c->problem_info = 1;
  if (k->version == MQTT_V5) {
    if (MQTT_HAS(&k->props, MQTT_PROP_RECEIVE_MAX)) c->client_receive_max = k->props.receive_max;
    if (MQTT_HAS(&k->props, MQTT_PROP_MAX_PACKET_SIZE)) c->client_max_packet = k->props.max_packet_size;
    if (MQTT_HAS(&k->props, MQTT_PROP_REQUEST_PROBLEM_INFO)) c->problem_info = k->props.request_problem_info;
    if (MQTT_HAS(&k->props, MQTT_PROP_AUTH_METHOD)) {
      connect_refuse(c, MQTT_RC_BAD_AUTH_METHOD, "enhanced authentication is not supported: use a token");
      return;
    }
  }
  if (k->client_id.len > MQTT_CLIENT_ID_MAX) {
    connect_refuse(c, MQTT_RC_CLIENT_ID_INVALID, "the client identifier is longer than 256 bytes");
    return;
  }
  if (!k->client_id.len && (k->version == MQTT_V31 || (k->version == MQTT_V311 && !k->clean_start))) {
    connect_refuse(c, MQTT_RC_CLIENT_ID_INVALID, "an empty client identifier needs a clean session");
    return;
  }
  pending_connect *pc = calloc(1, sizeof *pc);
  if (!pc) {
    conn_begin_close(c, "out of memory", 1);
    return;
  }
  pc->clean = k->clean_start;
  if (k->client_id.len) {
    if (dup_bytes(k->client_id, &pc->client_id, &pc->client_id_len) < 0) goto oom;
  } else {
    char id[48];
    uint8_t rnd[4];
    randombytes_buf(rnd, sizeof rnd);
    snprintf(id, sizeof id, "plateau-%llu-%02x%02x%02x%02x", (unsigned long long)c->id, rnd[0], rnd[1], rnd[2],
             rnd[3]);
    if (!(pc->client_id = strdup(id))) goto oom;
    pc->client_id_len = strlen(id);
    pc->assigned = k->version == MQTT_V5;
  }
  /* Session expiry: 5.0 asks (0 by default); 3.1.x persistent sessions get the server's maximum. */
  uint64_t max_s = (uint64_t)(s->cfg->mqtt_session_expiry_max_ns / 1000000000LL);
  uint64_t want = 0;
  if (k->version == MQTT_V5) want = MQTT_HAS(&k->props, MQTT_PROP_SESSION_EXPIRY) ? k->props.session_expiry : 0;
  else want = k->clean_start ? 0 : max_s;
  if (want == 0xFFFFFFFFu) want = max_s; /* "never" */
  if (want > max_s) {
    want = max_s;
    pc->expiry_capped = 1;
  }
  pc->expiry_s = (uint32_t)want;
  if (k->will) {
    if (k->version == MQTT_V5 && k->will_props.payload_format == 1 && k->will_payload.len &&
        !pl_utf8_valid(k->will_payload.p, k->will_payload.len)) {
      free(pc->client_id);
      free(pc);
      connect_refuse(c, MQTT_RC_PAYLOAD_FORMAT_INVALID, "the will payload is not UTF-8 as its format says");
      return;
    }
    mqtt_msg_spec spec = {(const char *)k->will_topic.p,
                          k->will_topic.len,
                          k->will_payload.p,
                          k->will_payload.len,
                          k->will_qos,
                          k->will_retain,
                          k->version == MQTT_V5 ? &k->will_props : NULL,
                          0,
                          0,
                          mqtt__now_ms()};
    if (!(pc->will = mqtt__msg_new(&spec))) goto oom;
    if (k->version == MQTT_V5) pc->will_delay_s = k->will_props.will_delay;
  }
  mqtt_auth_req *req = &pc->req;
  req->conn = c;
  req->done = on_auth_done;
  if (k->has_username && dup_bytes(k->username, &req->username, &req->username_len) < 0) goto oom;
  if (k->has_password && dup_bytes(k->password, &req->password, &req->password_len) < 0) goto oom;
  req->has_username = k->has_username;
  req->has_password = k->has_password;
  if (c->tls && s->cfg->mqtt_tls_ca[0] &&
      mqtt__tls_peer_identity(c, req->cert_tenant, sizeof req->cert_tenant, req->cert_device,
                              sizeof req->cert_device) == 0)
    req->has_cert = 1;
  c->state = MQTT_CONN_AUTH;
  c->read_paused |= MQTT_PAUSE_AUTH;
  conn_poll_update(c);
  c->refs++;
  mqtt__auth_start(s, req);
  return;
oom:
  pending_free(pc);
  conn_begin_close(c, "out of memory", 1);
}

/* ---- PUBLISH ---- */

static void ack_now(mqtt_conn *c, uint8_t qos, uint16_t packet_id, uint8_t reason) {
  mqtt_ack_wait *a = mqtt__ack_wait_add(c, qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, packet_id);
  if (!a) {
    conn_begin_close(c, "out of memory", 0);
    return;
  }
  c->pending_in++;
  mqtt__ack_wait_done(a, reason);
}

/* Refuses a PUBLISH the client may not make: a negative acknowledgement in 5.0 (QoS 0 is
 * dropped), a closed connection in 3.1.x, which has no way to say no. */
static void publish_refused(mqtt_conn *c, const mqtt_publish *pb, uint8_t reason, const char *why) {
  mqtt_server *s = c->srv;
  s->stats.publish_dropped++;
  if (c->version == MQTT_V5) {
    PL_LOG(PL_LOG_DEBUG, "mqtt", "conn=%llu publish refused reason=0x%02x why=\"%s\"", (unsigned long long)c->id,
           reason, why);
    if (pb->qos) ack_now(c, pb->qos, pb->packet_id, reason);
    return;
  }
  char line[200];
  snprintf(line, sizeof line, "publish refused: %s (0x%02x %s)", why, reason, mqtt_reason_name(reason));
  conn_begin_close(c, line, 0);
}

static int rate_exceeded(uint32_t *window_s, uint32_t *count, int64_t now_ms, int max) {
  uint32_t sec = (uint32_t)(now_ms / 1000);
  if (sec != *window_s) {
    *window_s = sec;
    *count = 0;
  }
  return max > 0 && ++*count > (uint32_t)max;
}

static void on_publish(mqtt_conn *c, mqtt_packet *p) {
  mqtt_server *s = c->srv;
  mqtt_session *ss = c->sess;
  mqtt_publish *pb = &p->u.publish;
  int64_t now = c->last_rx_ms;
  s->stats.publish_received++;
  if (c->version == MQTT_V5) {
    if (pb->props.nsub_ids) {
      protocol_error(c, MQTT_RC_PROTOCOL_ERROR, "a client PUBLISH may not carry a subscription identifier");
      return;
    }
    if (pb->qos && c->pending_in >= (uint32_t)s->cfg->mqtt_receive_max) {
      protocol_error(c, MQTT_RC_RECEIVE_MAX_EXCEEDED, "more unacknowledged QoS 1/2 messages than Receive Maximum");
      return;
    }
    /* Topic aliases (3.3.2.3.4): an alias with a topic sets it, an alias alone uses it. */
    if (MQTT_HAS(&pb->props, MQTT_PROP_TOPIC_ALIAS)) {
      uint16_t alias = pb->props.topic_alias;
      int max = s->cfg->mqtt_topic_alias_max;
      if (alias == 0 || alias > max) {
        protocol_error(c, MQTT_RC_TOPIC_ALIAS_INVALID, "topic alias out of range");
        return;
      }
      if (!c->aliases && !(c->aliases = calloc((size_t)max + 1, sizeof *c->aliases))) {
        conn_begin_close(c, "out of memory", 0);
        return;
      }
      if (pb->topic.len) {
        char *t = malloc(pb->topic.len + 1);
        if (!t) {
          conn_begin_close(c, "out of memory", 0);
          return;
        }
        memcpy(t, pb->topic.p, pb->topic.len);
        t[pb->topic.len] = 0;
        free(c->aliases[alias]);
        c->aliases[alias] = t;
      } else if (c->aliases[alias]) {
        pb->topic = (mqtt_bytes){(const uint8_t *)c->aliases[alias], (uint32_t)strlen(c->aliases[alias])};
      } else {
        protocol_error(c, MQTT_RC_PROTOCOL_ERROR, "topic alias used before it was set");
        return;
      }
    } else if (!pb->topic.len) {
      protocol_error(c, MQTT_RC_PROTOCOL_ERROR, "empty topic without a topic alias");
      return;
    }
  }
  if (rate_exceeded(&c->rate_window_s, &c->rate_count, now, s->cfg->mqtt_connection_rate_max)) {
    if (c->version == MQTT_V5)
      protocol_error(c, MQTT_RC_MESSAGE_RATE_TOO_HIGH, "more PUBLISH packets a second than mqtt_connection_rate_max");
    else
      conn_begin_close(c, "more PUBLISH packets a second than mqtt_connection_rate_max (0x96)", 0);
    return;
  }
  if (c->who->tenant_id) {
    mqtt_tenant *t = mqtt__tenant(s, c->who->tenant_id);
    if (t && rate_exceeded(&t->rate_window_s, &t->rate_count, now, s->cfg->mqtt_tenant_rate_max)) {
      if (!pb->qos) {
        s->stats.publish_dropped++;
        return;
      }
      publish_refused(c, pb, MQTT_RC_QUOTA_EXCEEDED, "the tenant's message rate is over mqtt_tenant_rate_max");
      return;
    }
  }
  if (pb->qos == 2) {
    mqtt_qos2_in *q = mqtt__qos2_find(ss, pb->packet_id);
    if (q) {
      /* Sent again (DUP after a reconnection): acknowledged, never delivered twice. */
      if (q->stored) send_simple(c, MQTT_PUBREC, pb->packet_id, 0);
      return;
    }
  }
  if (c->version == MQTT_V5 && pb->props.payload_format == 1 && pb->payload.len &&
      !pl_utf8_valid(pb->payload.p, pb->payload.len)) {
    if (pb->qos) publish_refused(c, pb, MQTT_RC_PAYLOAD_FORMAT_INVALID, "payload is not UTF-8 as its format says");
    else protocol_error(c, MQTT_RC_PAYLOAD_FORMAT_INVALID, "payload is not UTF-8 as its format says");
    return;
  }
  mqtt_pub_target t;
  int rc = mqtt__access_publish(s, c->who, (const char *)pb->topic.p, pb->topic.len, &t);
  if (rc) {
    publish_refused(c, pb, (uint8_t)rc, rc == MQTT_RC_NOT_AUTHORIZED ? "not authorized to publish to this topic"
                                                                       : "topic name invalid");
    return;
  }
  mqtt_msg_spec spec = {t.topic,   t.topic_len, pb->payload.p,
                        pb->payload.len, pb->qos,    pb->retain,
                        c->version == MQTT_V5 ? &pb->props : NULL,
                        ss->id,    c->who->kind == MQTT_WHO_DEVICE,
                        now};
  mqtt_msg *m = mqtt__msg_new(&spec);
  if (!m) {
    conn_begin_close(c, "out of memory", 0);
    return;
  }
  if (c->who->kind == MQTT_WHO_DEVICE) mqtt__device_seen(s, c->who);
  mqtt_ack_wait *ack = NULL;
  if (pb->qos) {
    if (!(ack = mqtt__ack_wait_add(c, pb->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, pb->packet_id)) ||
        (pb->qos == 2 && mqtt__qos2_add(ss, pb->packet_id, t.api == MQTT_API_NONE) < 0)) {
      mqtt__msg_unref(m);
      conn_begin_close(c, "out of memory", 0);
      return;
    }
    c->pending_in++;
  }
  int matched = 0;
  if (t.route) matched = mqtt__route(s, t.ns, m);
  if (t.api != MQTT_API_NONE) {
    /* The device API completes the acknowledgement itself (telemetry: once durable). The target's
     * strings live in a shared buffer that routing may have reused: map the topic again. */
    mqtt__access_publish(s, c->who, (const char *)pb->topic.p, pb->topic.len, &t);
    mqtt__api_publish(s, c, ss, &t, m, ack, pb->qos, pb->packet_id);
  } else if (ack) {
    mqtt__ack_wait_done(ack, matched || c->version != MQTT_V5 ? 0 : MQTT_RC_NO_MATCHING_SUBSCRIBERS);
  }
  mqtt__msg_unref(m);
  if (c->version != MQTT_V5 && c->pending_in >= (uint32_t)s->cfg->mqtt_receive_max && c->state == MQTT_CONN_ACTIVE)
    mqtt__conn_pause(c, MQTT_PAUSE_INFLIGHT);
}

/* ---- acknowledgements from the client ---- */

static void on_ack(mqtt_conn *c, const mqtt_packet *p) {
  mqtt_server *s = c->srv;
  mqtt_session *ss = c->sess;
  uint16_t id = p->u.ack.packet_id;
  switch (p->type) {
  case MQTT_PUBACK: mqtt__session_puback(s, ss, id); break;
  case MQTT_PUBREC: {
    int rc = mqtt__session_pubrec(s, ss, id, p->u.ack.reason);
    if (rc == MQTT_RC_UNSPECIFIED) break; /* the client refused it: no PUBREL */
    send_simple(c, MQTT_PUBREL, id, rc ? MQTT_RC_PACKET_ID_NOT_FOUND : 0);
    break;
  }
  case MQTT_PUBREL: {
    int rc = mqtt__qos2_remove(ss, id);
    send_simple(c, MQTT_PUBCOMP, id, rc ? MQTT_RC_PACKET_ID_NOT_FOUND : 0);
    if (c->pending_in) c->pending_in--;
    if ((c->read_paused & MQTT_PAUSE_INFLIGHT) && c->pending_in < (uint32_t)s->cfg->mqtt_receive_max)
      mqtt__conn_resume(c, MQTT_PAUSE_INFLIGHT);
    break;
  }
  case MQTT_PUBCOMP: mqtt__session_pubcomp(s, ss, id); break;
  }
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ---- */

typedef struct retained_job {
  mqtt_server *srv;
  mqtt_session *ss;
  uint8_t qos;
  uint32_t sub_id;
} retained_job;

static void on_retained(void *ctx, mqtt_msg *m) {
  retained_job *j = ctx;
  uint8_t qos = m->qos < j->qos ? m->qos : j->qos;
  mqtt__deliver(j->srv, j->ss, m, qos, 1, j->sub_id);
}

/* Splits "$share/<group>/<filter>". Returns 1 (shared, parts set), 0 (not shared) or -1 (bad). */
static int shared_split(const char *f, size_t len, const char **group, size_t *glen, const char **rest,
                        size_t *rlen) {
  if (len < 7 || memcmp(f, "$share/", 7) != 0) return 0;
  const char *g = f + 7;
  const char *slash = memchr(g, '/', len - 7);
  if (!slash || slash == g) return -1;
  *group = g;
  *glen = (size_t)(slash - g);
  if (memchr(g, '+', *glen) || memchr(g, '#', *glen)) return -1;
  *rest = slash + 1;
  *rlen = len - (size_t)(*rest - f);
  return *rlen ? 1 : -1;
}

static void on_subscribe(mqtt_conn *c, const mqtt_packet *p) {
  mqtt_server *s = c->srv;
  mqtt_session *ss = c->sess;
  const mqtt_subscribe *sb = &p->u.subscribe;
  uint32_t sub_id = c->version == MQTT_V5 && MQTT_HAS(&sb->props, MQTT_PROP_SUBSCRIPTION_ID) ? sb->props.sub_id : 0;
  uint8_t *codes = malloc(sb->count);
  struct pending_retained {
    char *filter;
    const char *ns;
    size_t len;
    retained_job job;
  } *jobs = calloc(sb->count, sizeof *jobs);
  if (!codes || !jobs) {
    free(codes);
    free(jobs);
    conn_begin_close(c, "out of memory", 0);
    return;
  }
  size_t it = 0, i = 0, njobs = 0;
  mqtt_sub_entry e;
  pl_buf internal;
  pl_buf_init(&internal, 0);
  const uint8_t fail = c->version == MQTT_V5 ? 0 : MQTT_V3_SUBACK_FAILURE;
  while (i < sb->count && mqtt_subscribe_next(p, &it, &e)) {
    const char *f = (const char *)e.filter.p, *group = NULL, *rest = f;
    size_t flen = e.filter.len, glen = 0, rlen = flen;
    int shared = shared_split(f, flen, &group, &glen, &rest, &rlen);
    uint8_t code;
    if (shared < 0 || !mqtt_topic_filter_valid((const uint8_t *)rest, rlen)) {
      code = fail ? fail : MQTT_RC_TOPIC_FILTER_INVALID;
    } else if (shared && (e.options & MQTT_SUB_NO_LOCAL)) {
      free(codes);
      free(jobs);
      pl_buf_free(&internal);
      protocol_error(c, MQTT_RC_PROTOCOL_ERROR, "No Local on a shared subscription");
      return;
    } else {
      const char *ns;
      int rc = mqtt__access_subscribe(s, c->who, rest, rlen, shared > 0, &ns, &internal);
      if (rc) {
        code = fail ? fail : (uint8_t)rc;
      } else {
        mqtt_sub *sub;
        int existed = 0;
        uint8_t qos = MQTT_SUB_QOS(e.options);
        rc = mqtt__session_subscribe(s, ss, ns, f, flen, (const char *)internal.data, internal.len,
                                     shared > 0 ? group : NULL, glen, e.options, sub_id, &sub, &existed);
        if (rc < 0) {
          code = fail ? fail : MQTT_RC_UNSPECIFIED;
        } else {
          code = qos;
          uint8_t rh = c->version == MQTT_V5 ? MQTT_SUB_RETAIN_HANDLING(e.options) : 0;
          if (shared <= 0 && (rh == 0 || (rh == 1 && !existed))) {
            jobs[njobs].filter = malloc(internal.len + 1);
            if (jobs[njobs].filter) {
              memcpy(jobs[njobs].filter, internal.data, internal.len);
              jobs[njobs].len = internal.len;
              jobs[njobs].ns = ns;
              jobs[njobs].job = (retained_job){s, ss, qos, sub_id};
              njobs++;
            }
          }
        }
      }
    }
    codes[i++] = code;
  }
  pl_buf_free(&internal);
  mqtt_packet ack;
  memset(&ack, 0, sizeof ack);
  ack.type = MQTT_SUBACK;
  ack.u.suback.packet_id = sb->packet_id;
  ack.u.suback.codes = (mqtt_bytes){codes, (uint32_t)i};
  mqtt__conn_send_packet(c, &ack);
  free(codes);
  /* Retained messages follow the SUBACK. */
  for (size_t j = 0; j < njobs; j++) {
    if (c->state == MQTT_CONN_ACTIVE)
      mqtt__topics_retained(s->topics, jobs[j].ns, jobs[j].filter, jobs[j].len, on_retained, &jobs[j].job);
    free(jobs[j].filter);
  }
  free(jobs);
}

static void on_unsubscribe(mqtt_conn *c, const mqtt_packet *p) {
  mqtt_server *s = c->srv;
  const mqtt_subscribe *sb = &p->u.subscribe;
  uint8_t *codes = malloc(sb->count);
  if (!codes) {
    conn_begin_close(c, "out of memory", 0);
    return;
  }
  size_t it = 0, i = 0;
  mqtt_sub_entry e;
  while (i < sb->count && mqtt_subscribe_next(p, &it, &e)) {
    int rc = mqtt__session_unsubscribe(s, c->sess, (const char *)e.filter.p, e.filter.len);
    codes[i++] = rc == 0 ? MQTT_RC_SUCCESS : MQTT_RC_NO_SUBSCRIPTION_EXISTED;
  }
  mqtt_packet ack;
  memset(&ack, 0, sizeof ack);
  ack.type = MQTT_UNSUBACK;
  ack.u.suback.packet_id = sb->packet_id;
  ack.u.suback.codes = (mqtt_bytes){codes, (uint32_t)i};
  mqtt__conn_send_packet(c, &ack);
  free(codes);
}

/* ---- DISCONNECT, PINGREQ, AUTH ---- */

static void on_disconnect(mqtt_conn *c, const mqtt_packet *p) {
  mqtt_session *ss = c->sess;
  uint8_t reason = c->version == MQTT_V5 ? p->u.disconnect.reason : 0;
  if (c->version == MQTT_V5 && MQTT_HAS(&p->u.disconnect.props, MQTT_PROP_SESSION_EXPIRY)) {
    uint32_t want = p->u.disconnect.props.session_expiry;
    if (ss && ss->expiry_s == 0 && want != 0) {
      protocol_error(c, MQTT_RC_PROTOCOL_ERROR, "session expiry set in DISCONNECT after 0 in CONNECT");
      return;
    }
    uint64_t max_s = (uint64_t)(c->srv->cfg->mqtt_session_expiry_max_ns / 1000000000LL);
    if (ss) ss->expiry_s = want > max_s ? (uint32_t)max_s : want;
  }
  /* Only "Disconnect with Will Message" keeps the will. */
  char why[80];
  snprintf(why, sizeof why, "client DISCONNECT (0x%02x %s)", reason, mqtt_reason_name(reason));
  conn_begin_close(c, why, reason != MQTT_RC_DISCONNECT_WITH_WILL);
}

static void handle_packet(mqtt_conn *c, mqtt_packet *p) {
  if (p->type == MQTT_CONNECT) {
    on_connect(c, p);
    return;
  }
  if (c->state != MQTT_CONN_ACTIVE) {
    protocol_error(c, MQTT_RC_PROTOCOL_ERROR, "packet before CONNACK");
    return;
  }
  switch (p->type) {
  case MQTT_PUBLISH: on_publish(c, p); break;
  case MQTT_PUBACK:
  case MQTT_PUBREC:
  case MQTT_PUBREL:
  case MQTT_PUBCOMP: on_ack(c, p); break;
  case MQTT_SUBSCRIBE: on_subscribe(c, p); break;
  case MQTT_UNSUBSCRIBE: on_unsubscribe(c, p); break;
  case MQTT_PINGREQ: {
    mqtt_packet r;
    memset(&r, 0, sizeof r);
    r.type = MQTT_PINGRESP;
    mqtt__conn_send_packet(c, &r);
    break;
  }
  case MQTT_DISCONNECT: on_disconnect(c, p); break;
  case MQTT_AUTH: protocol_error(c, MQTT_RC_PROTOCOL_ERROR, "AUTH without enhanced authentication"); break;
  default: protocol_error(c, MQTT_RC_PROTOCOL_ERROR, "a packet only a server sends"); break;
  }
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
      if (save_bytes(c, data + pos, len - pos, 0) < 0) conn_begin_close(c, "out of memory", 0);
      return;
    }
    mqtt_packet p;
    size_t used = 0;
    uint8_t reason = 0;
    uint8_t version = c->state == MQTT_CONN_NEW ? 0 : c->version;
    int rc = mqtt_decode(data + pos, len - pos, version, max, &p, &used, &reason);
    if (rc == PL_AGAIN) {
      if (save_bytes(c, data + pos, len - pos, used) < 0) conn_begin_close(c, "out of memory", 0);
      return;
    }
    if (rc < 0) {
      if (c->state == MQTT_CONN_NEW && reason == MQTT_RC_UNSUPPORTED_VERSION) {
        /* Answered in the 3.1.1 format, which every version reads (code 1). */
        c->version = MQTT_V311;
        connect_refuse(c, MQTT_RC_UNSUPPORTED_VERSION, "unsupported protocol version");
        return;
      }
      char why[120];
      snprintf(why, sizeof why, "%s packet refused", rc == PL_ELIMIT ? "oversized" : "malformed");
      if (c->state == MQTT_CONN_NEW) {
        s->stats.protocol_errors++;
        conn_begin_close(c, why, 1);
      } else {
        protocol_error(c, reason, why);
      }
      return;
    }
    s->stats.packets_received++;
    c->last_rx_ms = mqtt__now_ms();
    handle_packet(c, &p);
    pos += used;
  }
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
    uint8_t *buf = c->in;
    uint32_t blen = c->in_len;
    c->in = NULL;
    c->in_len = c->in_need = 0;
    mqtt__conn_feed(c, buf, blen);
    free(buf);
    return;
  }
  size_t total = c->in_len + len;
  uint8_t *buf = malloc(total);
  if (!buf) {
    conn_begin_close(c, "out of memory", 0);
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
        conn_begin_close(c, "connection closed by the client", 0);
        break;
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) conn_begin_close(c, "read failed", 0);
        break;
      }
      s->stats.bytes_received += (uint64_t)n;
      c->in_len += (uint32_t)n;
      if (c->in_len < c->in_need) continue;
      uint8_t *buf = c->in;
      uint32_t blen = c->in_len;
      c->in = NULL;
      c->in_len = c->in_need = 0;
      mqtt__conn_feed(c, buf, blen);
      free(buf);
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
      conn_begin_close(c, "connection closed by the client", 0);
      break;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (off && save_bytes(c, s->rbuf, off, 0) < 0) conn_begin_close(c, "out of memory", 0);
      if (errno != EAGAIN && errno != EWOULDBLOCK) conn_begin_close(c, "read failed", 0);
      break;
    }
    s->stats.bytes_received += (uint64_t)n;
    if (c->tls) {
      if (mqtt__tls_input(c, s->rbuf, (size_t)n) < 0) conn_begin_close(c, "TLS error", 0);
    } else {
      mqtt__conn_feed(c, s->rbuf, off + (size_t)n);
    }
    if ((size_t)n < sizeof s->rbuf - off) break; /* drained the socket */
  }
  conn_unref(c);
}

/* The connections' epoll set is readable: dispatch what it holds. */
static void on_epoll(uv_poll_t *h, int status, int events) {
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
      if (c->read_paused) conn_begin_close(c, "connection closed by the client", 0); /* only HUP/ERR here */
      else conn_read(c);
    }
    conn_unref(c);
  }
}

static void conn_poll_update(mqtt_conn *c) {
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
      conn_begin_close(c, "TLS setup failed", 1);
      continue;
    }
    conn_poll_update(c);
  }
}

/* ---- the tick: keep-alive, connect timeout, idle buffers, expiry ---- */

static void on_tick(uv_timer_t *h) {
  mqtt_server *s = h->data;
  int64_t now = mqtt__now_ms();
  for (mqtt_conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    if ((c->state == MQTT_CONN_NEW || (c->tls && !c->tls_ready)) && now - c->opened_ms > CONNECT_TIMEOUT_MS) {
      conn_begin_close(c, "no CONNECT within 10 s", 1);
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
      conn_begin_close(c, "the server is shutting down", 1);
  }
  uv_timer_stop(&s->tick);
  uv_timer_stop(&s->sys_timer);
  uv_close((uv_handle_t *)&s->tick, on_handle_closed);
  uv_close((uv_handle_t *)&s->sys_timer, on_handle_closed);
  uv_close((uv_handle_t *)&s->wake, on_handle_closed);
  /* Closing connections wrote what they could; let go of the flush list and its handles. */
  flush_dirty(s);
  bury(s);
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
  bury(s); /* connections whose last work completed after the check handle was closed */
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
  bury(s);
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
    uv_poll_start(&s->ep_poll, UV_READABLE, on_epoll);
    uv_check_start(&s->flush, on_check);
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
