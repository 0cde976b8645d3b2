/* MQTT sessions: outgoing flow (QoS 0, 1 and 2 towards a client), incoming QoS 2 state,
 * subscriptions, session expiry and wills.
 *
 * Outgoing messages, per session:
 *
 *   deliver --(connected, window open, queue empty, socket not backed up)--> in flight
 *      \--(otherwise, QoS 1/2, within the session's and the tenant's queue limits)--> queue
 *      \--(otherwise)--> dropped (counted)
 *
 *   in flight, QoS 1: PUBLISH_SENT --PUBACK--> gone
 *   in flight, QoS 2: PUBLISH_SENT --PUBREC--> PUBREL_SENT --PUBCOMP--> gone
 *
 * The window is the client's Receive Maximum (5.0), capped by mqtt_max_inflight. The in-flight
 * ring keeps the order of sending; acknowledged entries become tombstones until they reach the
 * head. On reconnection every in-flight entry is sent again (PUBLISH with DUP, or PUBREL), in
 * order, then the queue drains as acknowledgements open the window (session_pump).
 *
 * Packet identifiers are issued in sequence; an identifier could only be in use again after
 * 65,535 issues while its entry is still in flight, which is checked against the oldest entry.
 *
 * Incoming QoS 2 (the server as receiver) uses the "deliver on PUBLISH" method of the
 * specification: the message is delivered when its PUBLISH arrives and its packet identifier is
 * remembered until PUBREL, so a PUBLISH sent again with that identifier (after a reconnection, say)
 * is acknowledged but not delivered twice. The identifiers live in the session, so this holds
 * across reconnections of a persistent session: exactly once.
 */
#include "mqtt/mqtt_int.h"

#include "base/log.h"

#include <stdlib.h>
#include <string.h>

/* ---- messages ---- */

mqtt_msg *mqtt__msg_new(const mqtt_msg_spec *spec) {
  const mqtt_props *pr = spec->props;
  size_t ctype = 0, rtopic = 0, corr = 0, user = 0;
  pl_buf ub;
  pl_buf_init(&ub, 0);
  if (pr) {
    if (MQTT_HAS(pr, MQTT_PROP_CONTENT_TYPE)) ctype = pr->content_type.len;
    if (MQTT_HAS(pr, MQTT_PROP_RESPONSE_TOPIC)) rtopic = pr->response_topic.len;
    if (MQTT_HAS(pr, MQTT_PROP_CORRELATION_DATA)) corr = pr->correlation_data.len;
    if (pr->nuser) {
      if (mqtt_props_user_encode(pr, &ub) < 0) {
        pl_buf_free(&ub);
        return NULL;
      }
      user = ub.len;
    }
  }
  size_t total = spec->topic_len + spec->payload_len + ctype + rtopic + corr + user;
  mqtt_msg *m = malloc(sizeof *m + total + 1);
  if (!m) {
    pl_buf_free(&ub);
    return NULL;
  }
  memset(m, 0, sizeof *m);
  m->refs = 1;
  m->topic_len = (uint16_t)spec->topic_len;
  m->payload_len = (uint32_t)spec->payload_len;
  m->qos = spec->qos;
  m->retain = spec->retain;
  m->origin = spec->origin;
  m->from_device = spec->from_device;
  char *p = m->data;
  memcpy(p, spec->topic, spec->topic_len);
  p += spec->topic_len;
  if (spec->payload_len) memcpy(p, spec->payload, spec->payload_len);
  p += spec->payload_len;
  if (pr) {
    if (MQTT_HAS(pr, MQTT_PROP_PAYLOAD_FORMAT)) {
      m->has_format = 1;
      m->payload_format = pr->payload_format;
    }
    if (MQTT_HAS(pr, MQTT_PROP_MESSAGE_EXPIRY))
      m->expires_ms = spec->now_ms + (int64_t)pr->message_expiry * 1000 + (pr->message_expiry ? 0 : 1);
    if (ctype) memcpy(p, pr->content_type.p, ctype);
    p += ctype;
    if (rtopic) memcpy(p, pr->response_topic.p, rtopic);
    p += rtopic;
    if (corr) memcpy(p, pr->correlation_data.p, corr);
    p += corr;
    if (user) memcpy(p, ub.data, user);
    p += user;
  }
  *p = 0;
  m->ctype_len = (uint16_t)ctype;
  m->rtopic_len = (uint16_t)rtopic;
  m->corr_len = (uint16_t)corr;
  m->user_len = (uint32_t)user;
  pl_buf_free(&ub);
  return m;
}

void mqtt__msg_unref(mqtt_msg *m) {
  if (m && --m->refs == 0) free(m);
}

/* ---- sessions ---- */

mqtt_session *mqtt__session_find(mqtt_server *s, const char *key, size_t len) {
  return pl_map_get(s->sessions, key, len);
}

mqtt_session *mqtt__session_new(mqtt_server *s, const char *key, size_t len, size_t client_id_off,
                                mqtt_principal *who) {
  mqtt_session *ss = calloc(1, sizeof *ss);
  if (!ss) return NULL;
  if (!(ss->key = malloc(len + 1))) {
    free(ss);
    return NULL;
  }
  memcpy(ss->key, key, len);
  ss->key[len] = 0;
  ss->key_len = (uint16_t)len;
  ss->client_id_off = (uint16_t)client_id_off;
  ss->id = ++s->next_session_id;
  ss->refs = 1; /* the map's */
  ss->who = who;
  who->refs++;
  ss->next_packet_id = 1;
  if (pl_map_put(s->sessions, ss->key, len, ss, NULL) < 0) {
    mqtt__principal_unref(who);
    free(ss->key);
    free(ss);
    return NULL;
  }
  return ss;
}

void mqtt__session_ref(mqtt_session *ss) {
  ss->refs++;
}

void mqtt__session_unref(mqtt_session *ss) {
  if (!ss || --ss->refs) return;
  mqtt__principal_unref(ss->who);
  free(ss->key);
  free(ss);
}

static mqtt_out *inf_at(mqtt_session *ss, uint32_t i) {
  return &ss->inflight[(ss->inf_head + i) & (ss->inf_cap - 1)];
}

static mqtt_out *queue_at(mqtt_session *ss, uint32_t i) {
  return &ss->queue[(ss->q_head + i) % ss->q_cap];
}

static void tenant_queued(mqtt_server *s, mqtt_session *ss, int delta) {
  if (!ss->who->tenant_id) return;
  mqtt_tenant *t = mqtt__tenant(s, ss->who->tenant_id);
  if (t) t->queued = (uint32_t)((int64_t)t->queued + delta);
}

void mqtt__session_end(mqtt_server *s, mqtt_session *ss) {
  if (ss->dead) return;
  ss->dead = 1;
  pl_map_del(s->sessions, ss->key, ss->key_len);
  mqtt_sub *sub = ss->subs;
  while (sub) {
    mqtt_sub *next = sub->sess_next;
    mqtt__topics_remove(s->topics, sub);
    free(sub);
    sub = next;
  }
  ss->subs = NULL;
  for (uint32_t i = 0; i < ss->inf_count; i++) mqtt__msg_unref(inf_at(ss, i)->msg);
  free(ss->inflight);
  ss->inflight = NULL;
  ss->inf_count = ss->inf_live = ss->inf_cap = 0;
  for (uint32_t i = 0; i < ss->q_count; i++) mqtt__msg_unref(queue_at(ss, i)->msg);
  tenant_queued(s, ss, -(int)ss->q_count);
  free(ss->queue);
  ss->queue = NULL;
  ss->q_count = ss->q_cap = 0;
  free(ss->qos2);
  ss->qos2 = NULL;
  ss->qos2_count = ss->qos2_cap = 0;
  if (ss->will) {
    /* A session that ends publishes its pending will (MQTT 5: at the end of the delay or of the
     * session, whichever comes first). */
    mqtt_msg *w = ss->will;
    ss->will = NULL;
    mqtt__will_publish(s, ss->who, w);
    mqtt__msg_unref(w);
  }
  for (uint32_t i = 0; i < ss->nsubdevs; i++) free(ss->subdevs[i].name);
  free(ss->subdevs);
  ss->subdevs = NULL;
  ss->nsubdevs = ss->subdevs_cap = 0;
  mqtt__session_unref(ss); /* the map's reference */
}

/* ---- sending ---- */

static uint32_t window(const mqtt_server *s, const mqtt_session *ss) {
  uint32_t w = (uint32_t)s->cfg->mqtt_max_inflight;
  if (ss->conn && ss->conn->client_receive_max && ss->conn->client_receive_max < w) w = ss->conn->client_receive_max;
  return w;
}

static int send_publish(mqtt_server *s, mqtt_session *ss, mqtt_msg *m, uint8_t qos, uint8_t retain, uint8_t dup,
                        uint16_t packet_id, uint32_t sub_id, int64_t now_ms) {
  mqtt_conn *c = ss->conn;
  pl_buf tb;
  pl_buf_init(&tb, 0);
  size_t tlen;
  const char *topic = mqtt__client_topic(ss->who, mqtt_msg_topic(m), m->topic_len, &tlen, &tb);
  if (!topic) return PL_ENOMEM;
  mqtt_packet p;
  memset(&p, 0, sizeof p);
  p.type = MQTT_PUBLISH;
  mqtt_publish *pb = &p.u.publish;
  pb->qos = qos;
  pb->retain = retain;
  pb->dup = dup;
  pb->packet_id = packet_id;
  pb->topic = (mqtt_bytes){(const uint8_t *)topic, (uint32_t)tlen};
  pb->payload = (mqtt_bytes){mqtt_msg_payload(m), m->payload_len};
  if (c->version == MQTT_V5) {
    mqtt_props *pr = &pb->props;
    const uint8_t *x = mqtt_msg_payload(m) + m->payload_len;
    if (m->has_format) {
      MQTT_SET(pr, MQTT_PROP_PAYLOAD_FORMAT);
      pr->payload_format = m->payload_format;
    }
    if (m->expires_ms) {
      int64_t left = m->expires_ms - now_ms;
      MQTT_SET(pr, MQTT_PROP_MESSAGE_EXPIRY);
      pr->message_expiry = left > 0 ? (uint32_t)((left + 999) / 1000) : 0;
    }
    if (m->ctype_len) {
      MQTT_SET(pr, MQTT_PROP_CONTENT_TYPE);
      pr->content_type = (mqtt_bytes){x, m->ctype_len};
    }
    x += m->ctype_len;
    if (m->rtopic_len) {
      MQTT_SET(pr, MQTT_PROP_RESPONSE_TOPIC);
      pr->response_topic = (mqtt_bytes){x, m->rtopic_len};
    }
    x += m->rtopic_len;
    if (m->corr_len) {
      MQTT_SET(pr, MQTT_PROP_CORRELATION_DATA);
      pr->correlation_data = (mqtt_bytes){x, m->corr_len};
    }
    x += m->corr_len;
    pr->user_enc = (mqtt_bytes){x, m->user_len};
    if (sub_id) {
      MQTT_SET(pr, MQTT_PROP_SUBSCRIPTION_ID);
      pr->sub_id = sub_id;
    }
  }
  int rc = mqtt__conn_send_packet(c, &p);
  pl_buf_free(&tb);
  if (rc == 0) s->stats.publish_sent++;
  return rc;
}

static int expired(const mqtt_msg *m, int64_t now_ms) {
  return m->expires_ms && now_ms >= m->expires_ms;
}

static int can_send_now(const mqtt_session *ss) {
  const mqtt_conn *c = ss->conn;
  return c && c->state == MQTT_CONN_ACTIVE && !mqtt__conn_out_full(c);
}

static int inflight_push(mqtt_session *ss, mqtt_out *o) {
  if (ss->inf_count == ss->inf_cap) {
    uint32_t cap = ss->inf_cap ? ss->inf_cap * 2 : 8;
    mqtt_out *n = malloc(cap * sizeof *n);
    if (!n) return PL_ENOMEM;
    for (uint32_t i = 0; i < ss->inf_count; i++) n[i] = *inf_at(ss, i);
    free(ss->inflight);
    ss->inflight = n;
    ss->inf_cap = cap;
    ss->inf_head = 0;
  }
  *inf_at(ss, ss->inf_count) = *o;
  ss->inf_count++;
  ss->inf_live++;
  return 0;
}

/* The next packet identifier not in use, and its issue number. Identifiers and issue numbers
 * advance together, so an identifier can be held by an in-flight entry only when the oldest one
 * was issued 65,535 or more issues ago; only then is the ring searched. */
static uint16_t next_id(mqtt_session *ss, uint32_t *seq_out) {
  for (;;) {
    uint16_t id = ss->next_packet_id;
    uint32_t seq = ss->next_seq++;
    ss->next_packet_id = id == 65535 ? 1 : (uint16_t)(id + 1);
    int used = 0;
    if (ss->inf_live && seq - inf_at(ss, 0)->seq >= 65535) {
      for (uint32_t i = 0; i < ss->inf_count && !used; i++) {
        mqtt_out *o = inf_at(ss, i);
        used = (o->msg != NULL || o->state == MQTT_OUT_PUBREL_SENT) && o->packet_id == id;
      }
    }
    if (!used) {
      *seq_out = seq;
      return id;
    }
  }
}

/* Sends o (QoS 1 or 2) now and puts it in flight. Returns 0, or PL_ELIMIT when the client's
 * maximum packet size refuses it (the message is dropped, as 5.0 requires). */
static int send_inflight(mqtt_server *s, mqtt_session *ss, mqtt_out *o, int64_t now_ms) {
  o->packet_id = next_id(ss, &o->seq);
  o->state = MQTT_OUT_PUBLISH_SENT;
  int rc = send_publish(s, ss, o->msg, o->qos, o->retain, 0, o->packet_id, o->sub_id, now_ms);
  if (rc < 0) return rc;
  return inflight_push(ss, o);
}

static int enqueue(mqtt_server *s, mqtt_session *ss, const mqtt_out *o) {
  uint32_t max = (uint32_t)s->cfg->mqtt_max_queued;
  if (ss->q_count >= max) return PL_ELIMIT;
  if (ss->who->tenant_id) {
    mqtt_tenant *t = mqtt__tenant(s, ss->who->tenant_id);
    if (t && t->queued >= (uint32_t)s->cfg->mqtt_tenant_queued_max) return PL_ELIMIT;
  }
  if (ss->q_count == ss->q_cap) {
    uint32_t cap = ss->q_cap ? ss->q_cap * 2 : 8;
    if (cap > max) cap = max;
    mqtt_out *n = malloc(cap * sizeof *n);
    if (!n) return PL_ENOMEM;
    for (uint32_t i = 0; i < ss->q_count; i++) n[i] = *queue_at(ss, i);
    free(ss->queue);
    ss->queue = n;
    ss->q_cap = cap;
    ss->q_head = 0;
  }
  *queue_at(ss, ss->q_count) = *o;
  ss->q_count++;
  tenant_queued(s, ss, 1);
  return 0;
}

static void dropped(mqtt_server *s, mqtt_session *ss, const char *why) {
  s->stats.publish_dropped++;
  /* One line per thousand drops keeps a flood from flooding the log too. */
  if (s->stats.publish_dropped % 1000 == 1)
    PL_LOG(PL_LOG_WARN, "mqtt", "session=%llu dropped=%llu reason=%s", (unsigned long long)ss->id,
           (unsigned long long)s->stats.publish_dropped, why);
}

void mqtt__deliver(mqtt_server *s, mqtt_session *ss, mqtt_msg *m, uint8_t qos, uint8_t retain, uint32_t sub_id) {
  int64_t now = mqtt__now_ms();
  if (ss->dead || expired(m, now)) return;
  if (qos == 0) {
    if (can_send_now(ss)) {
      if (send_publish(s, ss, m, 0, retain, 0, 0, sub_id, now) < 0) dropped(s, ss, "packet_too_large");
    } else if (ss->conn) {
      dropped(s, ss, "slow_consumer");
    }
    return;
  }
  mqtt_out o = {mqtt__msg_ref(m), 0, sub_id, 0, qos, retain, MQTT_OUT_QUEUED};
  if (can_send_now(ss) && ss->q_count == 0 && ss->inf_live < window(s, ss)) {
    int rc = send_inflight(s, ss, &o, now);
    if (rc == 0) return;
    mqtt__msg_unref(m);
    dropped(s, ss, rc == PL_ELIMIT ? "packet_too_large" : "out_of_memory");
    return;
  }
  if (enqueue(s, ss, &o) < 0) {
    mqtt__msg_unref(m);
    dropped(s, ss, "queue_full");
  }
}

void mqtt__session_pump(mqtt_server *s, mqtt_session *ss) {
  int64_t now = mqtt__now_ms();
  while (ss->q_count && can_send_now(ss) && ss->inf_live < window(s, ss)) {
    mqtt_out o = *queue_at(ss, 0);
    ss->q_head = (ss->q_head + 1) % ss->q_cap;
    ss->q_count--;
    tenant_queued(s, ss, -1);
    if (expired(o.msg, now)) {
      mqtt__msg_unref(o.msg);
      continue;
    }
    if (send_inflight(s, ss, &o, now) < 0) {
      mqtt__msg_unref(o.msg);
      dropped(s, ss, "packet_too_large");
    }
  }
}

void mqtt__session_resume(mqtt_server *s, mqtt_session *ss) {
  int64_t now = mqtt__now_ms();
  mqtt_conn *c = ss->conn;
  for (uint32_t i = 0; i < ss->inf_count && c && c->state == MQTT_CONN_ACTIVE; i++) {
    mqtt_out *o = inf_at(ss, i);
    if (o->state == MQTT_OUT_PUBLISH_SENT && o->msg) {
      send_publish(s, ss, o->msg, o->qos, o->retain, 1, o->packet_id, o->sub_id, now);
    } else if (o->state == MQTT_OUT_PUBREL_SENT) {
      mqtt_packet p;
      memset(&p, 0, sizeof p);
      p.type = MQTT_PUBREL;
      p.u.ack.packet_id = o->packet_id;
      mqtt__conn_send_packet(c, &p);
    }
  }
  mqtt__session_pump(s, ss);
}

static mqtt_out *inflight_find(mqtt_session *ss, uint16_t packet_id, uint8_t state) {
  for (uint32_t i = 0; i < ss->inf_count; i++) {
    mqtt_out *o = inf_at(ss, i);
    if (o->packet_id == packet_id && o->state == state && (o->msg || state == MQTT_OUT_PUBREL_SENT)) return o;
  }
  return NULL;
}

static void inflight_remove(mqtt_session *ss, mqtt_out *o) {
  mqtt__msg_unref(o->msg);
  o->msg = NULL;
  o->state = MQTT_OUT_QUEUED; /* a tombstone */
  ss->inf_live--;
  while (ss->inf_count) {
    mqtt_out *h = inf_at(ss, 0);
    if (h->msg || h->state == MQTT_OUT_PUBREL_SENT) break;
    ss->inf_head = (ss->inf_head + 1) & (ss->inf_cap - 1);
    ss->inf_count--;
  }
  if (!ss->inf_count) {
    /* An idle session keeps no ring. */
    free(ss->inflight);
    ss->inflight = NULL;
    ss->inf_cap = ss->inf_head = 0;
  }
}

int mqtt__session_puback(mqtt_server *s, mqtt_session *ss, uint16_t packet_id) {
  mqtt_out *o = inflight_find(ss, packet_id, MQTT_OUT_PUBLISH_SENT);
  if (!o || o->qos != 1) return MQTT_RC_PACKET_ID_NOT_FOUND;
  inflight_remove(ss, o);
  mqtt__session_pump(s, ss);
  return 0;
}

int mqtt__session_pubrec(mqtt_server *s, mqtt_session *ss, uint16_t packet_id, uint8_t reason) {
  mqtt_out *o = inflight_find(ss, packet_id, MQTT_OUT_PUBLISH_SENT);
  if (!o || o->qos != 2) {
    /* Already released (a PUBREC sent again): answer PUBREL anyway, it is idempotent. */
    return inflight_find(ss, packet_id, MQTT_OUT_PUBREL_SENT) ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND;
  }
  if (reason >= 0x80) {
    /* The client refused the message: the flow ends here (5.0). */
    inflight_remove(ss, o);
    mqtt__session_pump(s, ss);
    return MQTT_RC_UNSPECIFIED;
  }
  mqtt__msg_unref(o->msg);
  o->msg = NULL;
  o->state = MQTT_OUT_PUBREL_SENT;
  return 0;
}

int mqtt__session_pubcomp(mqtt_server *s, mqtt_session *ss, uint16_t packet_id) {
  mqtt_out *o = inflight_find(ss, packet_id, MQTT_OUT_PUBREL_SENT);
  if (!o) return MQTT_RC_PACKET_ID_NOT_FOUND;
  inflight_remove(ss, o);
  mqtt__session_pump(s, ss);
  return 0;
}

/* ---- incoming QoS 2 ---- */

mqtt_qos2_in *mqtt__qos2_find(mqtt_session *ss, uint16_t packet_id) {
  for (uint32_t i = 0; i < ss->qos2_count; i++)
    if (ss->qos2[i].packet_id == packet_id) return &ss->qos2[i];
  return NULL;
}

int mqtt__qos2_add(mqtt_session *ss, uint16_t packet_id, int stored) {
  if (ss->qos2_count == ss->qos2_cap) {
    uint32_t cap = ss->qos2_cap ? ss->qos2_cap * 2 : 4;
    mqtt_qos2_in *n = realloc(ss->qos2, cap * sizeof *n);
    if (!n) return PL_ENOMEM;
    ss->qos2 = n;
    ss->qos2_cap = cap;
  }
  ss->qos2[ss->qos2_count++] = (mqtt_qos2_in){packet_id, (uint8_t)stored};
  return 0;
}

int mqtt__qos2_remove(mqtt_session *ss, uint16_t packet_id) {
  mqtt_qos2_in *q = mqtt__qos2_find(ss, packet_id);
  if (!q) return PL_ENOTFOUND;
  *q = ss->qos2[--ss->qos2_count];
  if (!ss->qos2_count) {
    free(ss->qos2);
    ss->qos2 = NULL;
    ss->qos2_cap = 0;
  }
  return 0;
}

/* ---- subscriptions ---- */

int mqtt__filter_matches(const char *f, size_t flen, const char *t, size_t tlen) {
  /* i and j start the current level of filter and topic; j > tlen: the topic has no more. */
  size_t i = 0, j = 0;
  for (;;) {
    size_t fe = i, te = j;
    while (fe < flen && f[fe] != '/') fe++;
    if (fe - i == 1 && f[i] == '#') return 1; /* also "a/#" against "a" */
    if (j > tlen) return 0;
    while (te < tlen && t[te] != '/') te++;
    int plus = fe - i == 1 && f[i] == '+';
    if (!plus && (fe - i != te - j || memcmp(f + i, t + j, fe - i) != 0)) return 0;
    int f_done = fe >= flen, t_done = te >= tlen;
    if (f_done) return t_done;
    i = fe + 1;
    j = t_done ? tlen + 1 : te + 1;
  }
}

int mqtt__session_subscribe(mqtt_server *s, mqtt_session *ss, const char *ns, const char *filter, size_t flen,
                            const char *internal, size_t ilen, const char *group, size_t glen, uint8_t options,
                            uint32_t sub_id, mqtt_sub **out, int *existed) {
  for (mqtt_sub *sub = ss->subs; sub; sub = sub->sess_next) {
    if (sub->filter_len == flen && memcmp(sub->filter, filter, flen) == 0) {
      sub->options = options;
      sub->sub_id = sub_id;
      *existed = 1;
      *out = sub;
      return 0;
    }
  }
  mqtt_sub *sub = calloc(1, sizeof *sub + flen + 1);
  if (!sub) return PL_ENOMEM;
  sub->sess = ss;
  sub->options = options;
  sub->sub_id = sub_id;
  sub->filter_len = (uint16_t)flen;
  memcpy(sub->filter, filter, flen);
  int rc = mqtt__topics_add(s->topics, ns, internal, ilen, group, glen, sub);
  if (rc < 0) {
    free(sub);
    return rc;
  }
  sub->sess_next = ss->subs;
  ss->subs = sub;
  *existed = 0;
  *out = sub;
  return 0;
}

int mqtt__session_unsubscribe(mqtt_server *s, mqtt_session *ss, const char *filter, size_t flen) {
  for (mqtt_sub **pp = &ss->subs; *pp; pp = &(*pp)->sess_next) {
    mqtt_sub *sub = *pp;
    if (sub->filter_len == flen && memcmp(sub->filter, filter, flen) == 0) {
      *pp = sub->sess_next;
      mqtt__topics_remove(s->topics, sub);
      free(sub);
      return 0;
    }
  }
  return PL_ENOTFOUND;
}

mqtt_sub *mqtt__session_sub_for(mqtt_session *ss, const char *topic, size_t len) {
  mqtt_sub *best = NULL;
  for (mqtt_sub *sub = ss->subs; sub; sub = sub->sess_next) {
    if (sub->group) continue;
    if (mqtt__filter_matches(sub->filter, sub->filter_len, topic, len) &&
        (!best || MQTT_SUB_QOS(sub->options) > MQTT_SUB_QOS(best->options)))
      best = sub;
  }
  return best;
}

/* ---- expiry and wills ---- */

void mqtt__sessions_tick(mqtt_server *s, int64_t now_ms) {
  /* Collect first: the map cannot change while it is walked. */
  mqtt_session *due[256];
  size_t n = 0, it = 0;
  const void *k;
  size_t kl;
  void *v;
  while (n < 256 && pl_map_next(s->sessions, &it, &k, &kl, &v)) {
    mqtt_session *ss = v;
    if (ss->conn) continue;
    int will_due = ss->will && now_ms >= ss->will_due_ms;
    int gone = ss->offline_since_ms && now_ms - ss->offline_since_ms >= (int64_t)ss->expiry_s * 1000;
    if (will_due || gone) due[n++] = ss;
  }
  for (size_t i = 0; i < n; i++) {
    mqtt_session *ss = due[i];
    if (ss->will && now_ms >= ss->will_due_ms) {
      mqtt_msg *w = ss->will;
      ss->will = NULL;
      mqtt__will_publish(s, ss->who, w);
      mqtt__msg_unref(w);
    }
    if (ss->offline_since_ms && now_ms - ss->offline_since_ms >= (int64_t)ss->expiry_s * 1000) {
      PL_LOG(PL_LOG_DEBUG, "mqtt", "session=%llu expired", (unsigned long long)ss->id);
      mqtt__session_end(s, ss);
    }
  }
}

/* A copy of m on another topic (same payload, properties and expiry). */
static mqtt_msg *msg_retopic(const mqtt_msg *m, const char *topic, size_t len) {
  size_t rest = (size_t)m->payload_len + m->ctype_len + m->rtopic_len + m->corr_len + m->user_len;
  mqtt_msg *n = malloc(sizeof *n + len + rest + 1);
  if (!n) return NULL;
  *n = *m;
  n->refs = 1;
  n->topic_len = (uint16_t)len;
  memcpy(n->data, topic, len);
  memcpy(n->data + len, m->data + m->topic_len, rest);
  n->data[len + rest] = 0;
  return n;
}

void mqtt__will_publish(mqtt_server *s, mqtt_principal *who, mqtt_msg *will) {
  /* The will's topic is the client's; it was checked at CONNECT and is mapped again here. Wills
   * are delivered to subscribers (and retained if asked); a device's will on its telemetry topic
   * is not written to the time-series engine, as nothing acknowledges it. */
  mqtt_pub_target t;
  if (mqtt__access_publish(s, who, mqtt_msg_topic(will), will->topic_len, &t) != 0 || !t.route) return;
  mqtt_msg *m = msg_retopic(will, t.topic, t.topic_len);
  if (!m) return;
  PL_LOG(PL_LOG_DEBUG, "mqtt", "who=%s will published", who->actor);
  mqtt__route(s, t.ns, m);
  mqtt__msg_unref(m);
}
