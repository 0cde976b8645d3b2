/* The packet handlers of the MQTT server (server.c): CONNECT (with authentication on a worker),
 * PUBLISH, acknowledgements from the client, SUBSCRIBE and UNSUBSCRIBE, DISCONNECT, PINGREQ and
 * AUTH, and the routing of a published message to the matching subscriptions. Decoded packets
 * come from server_conn.c.
 *
 * Protocol violations close the offending connection only: 5.0 clients get a DISCONNECT with the
 * reason code (mqtt_reason_name), 3.1.x clients a closed socket, as their specification asks.
 */
#include "mqtt/mqtt_int.h"

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void mqtt__connect_refuse(mqtt_conn *c, uint8_t reason, const char *why) {
  connack(c, reason, 0, NULL, why);
  char line[240];
  snprintf(line, sizeof line, "connect refused: %s (0x%02x %s)", why, reason, mqtt_reason_name(reason));
  mqtt__conn_begin_close(c, line, 1);
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
    if (!c->refs) mqtt__conn_free(c);
    return;
  }
  char remote[64];
  mqtt__remote_str(c, remote, sizeof remote);
  if (req->reason != MQTT_RC_SUCCESS) {
    s->stats.auth_failures++;
    PL_LOG(PL_LOG_INFO, "mqtt", "conn=%llu remote=%s auth=refused reason=0x%02x why=\"%s\"",
           (unsigned long long)c->id, remote, req->reason, req->why);
    c->state = MQTT_CONN_NEW; /* so the CONNACK is allowed out */
    mqtt__connect_refuse(c, req->reason, req->why);
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
    mqtt__connect_refuse(c, reason, refuse);
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
    mqtt__connect_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
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
    mqtt__conn_protocol_error(c, MQTT_RC_PROTOCOL_ERROR, "a second CONNECT");
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
      mqtt__connect_refuse(c, MQTT_RC_BAD_AUTH_METHOD, "enhanced authentication is not supported: use a token");
      return;
    }
  }
  if (k->client_id.len > MQTT_CLIENT_ID_MAX) {
    mqtt__connect_refuse(c, MQTT_RC_CLIENT_ID_INVALID, "the client identifier is longer than 256 bytes");
    return;
  }
  if (!k->client_id.len && (k->version == MQTT_V31 || (k->version == MQTT_V311 && !k->clean_start))) {
    mqtt__connect_refuse(c, MQTT_RC_CLIENT_ID_INVALID, "an empty client identifier needs a clean session");
    return;
  }
  pending_connect *pc = calloc(1, sizeof *pc);
  if (!pc) {
    mqtt__conn_begin_close(c, "out of memory", 1);
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
      mqtt__connect_refuse(c, MQTT_RC_PAYLOAD_FORMAT_INVALID, "the will payload is not UTF-8 as its format says");
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
  mqtt__conn_poll_update(c);
  c->refs++;
  mqtt__auth_start(s, req);
  return;
oom:
  pending_free(pc);
  mqtt__conn_begin_close(c, "out of memory", 1);
}

/* ---- PUBLISH ---- */

static void ack_now(mqtt_conn *c, uint8_t qos, uint16_t packet_id, uint8_t reason) {
  mqtt_ack_wait *a = mqtt__ack_wait_add(c, qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, packet_id);
  if (!a) {
    mqtt__conn_begin_close(c, "out of memory", 0);
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
  mqtt__conn_begin_close(c, line, 0);
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
      mqtt__conn_protocol_error(c, MQTT_RC_PROTOCOL_ERROR, "a client PUBLISH may not carry a subscription identifier");
      return;
    }
    if (pb->qos && c->pending_in >= (uint32_t)s->cfg->mqtt_receive_max) {
      mqtt__conn_protocol_error(c, MQTT_RC_RECEIVE_MAX_EXCEEDED, "more unacknowledged QoS 1/2 messages than Receive Maximum");
      return;
    }
    /* Topic aliases (3.3.2.3.4): an alias with a topic sets it, an alias alone uses it. */
    if (MQTT_HAS(&pb->props, MQTT_PROP_TOPIC_ALIAS)) {
      uint16_t alias = pb->props.topic_alias;
      int max = s->cfg->mqtt_topic_alias_max;
      if (alias == 0 || alias > max) {
        mqtt__conn_protocol_error(c, MQTT_RC_TOPIC_ALIAS_INVALID, "topic alias out of range");
        return;
      }
      if (!c->aliases && !(c->aliases = calloc((size_t)max + 1, sizeof *c->aliases))) {
        mqtt__conn_begin_close(c, "out of memory", 0);
        return;
      }
      if (pb->topic.len) {
        char *t = malloc(pb->topic.len + 1);
        if (!t) {
          mqtt__conn_begin_close(c, "out of memory", 0);
          return;
        }
        memcpy(t, pb->topic.p, pb->topic.len);
        t[pb->topic.len] = 0;
        free(c->aliases[alias]);
        c->aliases[alias] = t;
      } else if (c->aliases[alias]) {
        pb->topic = (mqtt_bytes){(const uint8_t *)c->aliases[alias], (uint32_t)strlen(c->aliases[alias])};
      } else {
        mqtt__conn_protocol_error(c, MQTT_RC_PROTOCOL_ERROR, "topic alias used before it was set");
        return;
      }
    } else if (!pb->topic.len) {
      mqtt__conn_protocol_error(c, MQTT_RC_PROTOCOL_ERROR, "empty topic without a topic alias");
      return;
    }
  }
  if (rate_exceeded(&c->rate_window_s, &c->rate_count, now, s->cfg->mqtt_connection_rate_max)) {
    if (c->version == MQTT_V5)
      mqtt__conn_protocol_error(c, MQTT_RC_MESSAGE_RATE_TOO_HIGH, "more PUBLISH packets a second than mqtt_connection_rate_max");
    else
      mqtt__conn_begin_close(c, "more PUBLISH packets a second than mqtt_connection_rate_max (0x96)", 0);
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
      if (q->stored) mqtt__conn_send_simple(c, MQTT_PUBREC, pb->packet_id, 0);
      return;
    }
  }
  if (c->version == MQTT_V5 && pb->props.payload_format == 1 && pb->payload.len &&
      !pl_utf8_valid(pb->payload.p, pb->payload.len)) {
    if (pb->qos) publish_refused(c, pb, MQTT_RC_PAYLOAD_FORMAT_INVALID, "payload is not UTF-8 as its format says");
    else mqtt__conn_protocol_error(c, MQTT_RC_PAYLOAD_FORMAT_INVALID, "payload is not UTF-8 as its format says");
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
    mqtt__conn_begin_close(c, "out of memory", 0);
    return;
  }
  if (c->who->kind == MQTT_WHO_DEVICE) mqtt__device_seen(s, c->who);
  mqtt_ack_wait *ack = NULL;
  if (pb->qos) {
    if (!(ack = mqtt__ack_wait_add(c, pb->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, pb->packet_id)) ||
        (pb->qos == 2 && mqtt__qos2_add(ss, pb->packet_id, t.api == MQTT_API_NONE) < 0)) {
      mqtt__msg_unref(m);
      mqtt__conn_begin_close(c, "out of memory", 0);
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
    mqtt__conn_send_simple(c, MQTT_PUBREL, id, rc ? MQTT_RC_PACKET_ID_NOT_FOUND : 0);
    break;
  }
  case MQTT_PUBREL: {
    int rc = mqtt__qos2_remove(ss, id);
    mqtt__conn_send_simple(c, MQTT_PUBCOMP, id, rc ? MQTT_RC_PACKET_ID_NOT_FOUND : 0);
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

/* Sends SUBACK or UNSUBACK with a reason code per filter, and frees codes. */
static void send_codes_ack(mqtt_conn *c, uint8_t type, uint16_t packet_id, uint8_t *codes, size_t n) {
  mqtt_packet ack;
  memset(&ack, 0, sizeof ack);
  ack.type = type;
  ack.u.suback.packet_id = packet_id;
  ack.u.suback.codes = (mqtt_bytes){codes, (uint32_t)n};
  mqtt__conn_send_packet(c, &ack);
  free(codes);
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
    mqtt__conn_begin_close(c, "out of memory", 0);
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
      mqtt__conn_protocol_error(c, MQTT_RC_PROTOCOL_ERROR, "No Local on a shared subscription");
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
  send_codes_ack(c, MQTT_SUBACK, sb->packet_id, codes, i);
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
    mqtt__conn_begin_close(c, "out of memory", 0);
    return;
  }
  size_t it = 0, i = 0;
  mqtt_sub_entry e;
  while (i < sb->count && mqtt_subscribe_next(p, &it, &e)) {
    int rc = mqtt__session_unsubscribe(s, c->sess, (const char *)e.filter.p, e.filter.len);
    codes[i++] = rc == 0 ? MQTT_RC_SUCCESS : MQTT_RC_NO_SUBSCRIPTION_EXISTED;
  }
  send_codes_ack(c, MQTT_UNSUBACK, sb->packet_id, codes, i);
}

/* ---- DISCONNECT, PINGREQ, AUTH ---- */

static void on_disconnect(mqtt_conn *c, const mqtt_packet *p) {
  mqtt_session *ss = c->sess;
  uint8_t reason = c->version == MQTT_V5 ? p->u.disconnect.reason : 0;
  if (c->version == MQTT_V5 && MQTT_HAS(&p->u.disconnect.props, MQTT_PROP_SESSION_EXPIRY)) {
    uint32_t want = p->u.disconnect.props.session_expiry;
    if (ss && ss->expiry_s == 0 && want != 0) {
      mqtt__conn_protocol_error(c, MQTT_RC_PROTOCOL_ERROR, "session expiry set in DISCONNECT after 0 in CONNECT");
      return;
    }
    uint64_t max_s = (uint64_t)(c->srv->cfg->mqtt_session_expiry_max_ns / 1000000000LL);
    if (ss) ss->expiry_s = want > max_s ? (uint32_t)max_s : want;
  }
  /* Only "Disconnect with Will Message" keeps the will. */
  char why[80];
  snprintf(why, sizeof why, "client DISCONNECT (0x%02x %s)", reason, mqtt_reason_name(reason));
  mqtt__conn_begin_close(c, why, reason != MQTT_RC_DISCONNECT_WITH_WILL);
}

void mqtt__handle_packet(mqtt_conn *c, mqtt_packet *p) {
  if (p->type == MQTT_CONNECT) {
    on_connect(c, p);
    return;
  }
  if (c->state != MQTT_CONN_ACTIVE) {
    mqtt__conn_protocol_error(c, MQTT_RC_PROTOCOL_ERROR, "packet before CONNACK");
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
  case MQTT_AUTH: mqtt__conn_protocol_error(c, MQTT_RC_PROTOCOL_ERROR, "AUTH without enhanced authentication"); break;
  default: mqtt__conn_protocol_error(c, MQTT_RC_PROTOCOL_ERROR, "a packet only a server sends"); break;
  }
}
