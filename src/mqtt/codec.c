/* The MQTT packet codec (see codec.h for the wire format and the contract).
 *
 * Decoding reads through a bounded cursor (rd) over exactly one packet's remaining length: every
 * read checks what is left, so a length field can never take the decoder past the packet, and
 * the packet was already checked to lie inside the caller's bytes. The first error a read meets
 * is kept in the cursor with its reason code; the packet decoders check it once at the end of a
 * step rather than after every field.
 *
 * Encoding runs the same writer twice when asked for a size: once counting (no buffer), once
 * writing, so mqtt_encoded_size and mqtt_encode cannot disagree.
 */
#include "mqtt/codec.h"

#include "base/json.h"

#include <string.h>

/* ---- names ---- */

const char *mqtt_reason_name(uint8_t rc) {
  switch (rc) {
  case 0x00: return "Success";
  case 0x01: return "Granted QoS 1";
  case 0x02: return "Granted QoS 2";
  case 0x04: return "Disconnect with Will Message";
  case 0x10: return "No matching subscribers";
  case 0x11: return "No subscription existed";
  case 0x18: return "Continue authentication";
  case 0x19: return "Re-authenticate";
  case 0x80: return "Unspecified error";
  case 0x81: return "Malformed Packet";
  case 0x82: return "Protocol Error";
  case 0x83: return "Implementation specific error";
  case 0x84: return "Unsupported Protocol Version";
  case 0x85: return "Client Identifier not valid";
  case 0x86: return "Bad User Name or Password";
  case 0x87: return "Not authorized";
  case 0x88: return "Server unavailable";
  case 0x89: return "Server busy";
  case 0x8A: return "Banned";
  case 0x8B: return "Server shutting down";
  case 0x8C: return "Bad authentication method";
  case 0x8D: return "Keep Alive timeout";
  case 0x8E: return "Session taken over";
  case 0x8F: return "Topic Filter invalid";
  case 0x90: return "Topic Name invalid";
  case 0x91: return "Packet Identifier in use";
  case 0x92: return "Packet Identifier not found";
  case 0x93: return "Receive Maximum exceeded";
  case 0x94: return "Topic Alias invalid";
  case 0x95: return "Packet too large";
  case 0x96: return "Message rate too high";
  case 0x97: return "Quota exceeded";
  case 0x98: return "Administrative action";
  case 0x99: return "Payload format invalid";
  case 0x9A: return "Retain not supported";
  case 0x9B: return "QoS not supported";
  case 0x9C: return "Use another server";
  case 0x9D: return "Server moved";
  case 0x9E: return "Shared Subscriptions not supported";
  case 0x9F: return "Connection rate exceeded";
  case 0xA0: return "Maximum connect time";
  case 0xA1: return "Subscription Identifiers not supported";
  case 0xA2: return "Wildcard Subscriptions not supported";
  default: return "Unknown";
  }
}

uint8_t mqtt_reason_v3_connack(uint8_t rc) {
  switch (rc) {
  case MQTT_RC_SUCCESS: return MQTT_V3_ACCEPTED;
  case MQTT_RC_UNSUPPORTED_VERSION: return MQTT_V3_BAD_VERSION;
  case MQTT_RC_CLIENT_ID_INVALID: return MQTT_V3_ID_REJECTED;
  case MQTT_RC_BAD_CREDENTIALS:
  case MQTT_RC_BAD_AUTH_METHOD: return MQTT_V3_BAD_CREDENTIALS;
  case MQTT_RC_NOT_AUTHORIZED:
  case MQTT_RC_BANNED: return MQTT_V3_NOT_AUTHORIZED;
  default: return MQTT_V3_SERVER_UNAVAILABLE;
  }
}

const char *mqtt_type_name(int type) {
  static const char *const names[] = {"?",         "CONNECT",  "CONNACK",     "PUBLISH",
                                      "PUBACK",    "PUBREC",   "PUBREL",      "PUBCOMP",
                                      "SUBSCRIBE", "SUBACK",   "UNSUBSCRIBE", "UNSUBACK",
                                      "PINGREQ",   "PINGRESP", "DISCONNECT",  "AUTH"};
  return type >= 1 && type <= 15 ? names[type] : "?";
}

/* ---- the property table ---- */

enum { PT_BYTE = 1, PT_U16, PT_U32, PT_VARINT, PT_STRING, PT_BINARY, PT_PAIR };
#define WILL_BIT (1u << 16) /* pseudo packet type: the will properties of CONNECT */
#define B(t) (1u << (t))
#define ALL_ACKS (B(MQTT_PUBACK) | B(MQTT_PUBREC) | B(MQTT_PUBREL) | B(MQTT_PUBCOMP))

typedef struct prop_def {
  uint8_t type;
  uint32_t allowed; /* bit per packet type, WILL_BIT for will properties */
} prop_def;

static const prop_def prop_defs[0x2B] = {
    [MQTT_PROP_PAYLOAD_FORMAT] = {PT_BYTE, B(MQTT_PUBLISH) | WILL_BIT},
    [MQTT_PROP_MESSAGE_EXPIRY] = {PT_U32, B(MQTT_PUBLISH) | WILL_BIT},
    [MQTT_PROP_CONTENT_TYPE] = {PT_STRING, B(MQTT_PUBLISH) | WILL_BIT},
    [MQTT_PROP_RESPONSE_TOPIC] = {PT_STRING, B(MQTT_PUBLISH) | WILL_BIT},
    [MQTT_PROP_CORRELATION_DATA] = {PT_BINARY, B(MQTT_PUBLISH) | WILL_BIT},
    [MQTT_PROP_SUBSCRIPTION_ID] = {PT_VARINT, B(MQTT_PUBLISH) | B(MQTT_SUBSCRIBE)},
    [MQTT_PROP_SESSION_EXPIRY] = {PT_U32, B(MQTT_CONNECT) | B(MQTT_CONNACK) | B(MQTT_DISCONNECT)},
    [MQTT_PROP_ASSIGNED_CLIENT_ID] = {PT_STRING, B(MQTT_CONNACK)},
    [MQTT_PROP_SERVER_KEEP_ALIVE] = {PT_U16, B(MQTT_CONNACK)},
    [MQTT_PROP_AUTH_METHOD] = {PT_STRING, B(MQTT_CONNECT) | B(MQTT_CONNACK) | B(MQTT_AUTH)},
    [MQTT_PROP_AUTH_DATA] = {PT_BINARY, B(MQTT_CONNECT) | B(MQTT_CONNACK) | B(MQTT_AUTH)},
    [MQTT_PROP_REQUEST_PROBLEM_INFO] = {PT_BYTE, B(MQTT_CONNECT)},
    [MQTT_PROP_WILL_DELAY] = {PT_U32, WILL_BIT},
    [MQTT_PROP_REQUEST_RESPONSE_INFO] = {PT_BYTE, B(MQTT_CONNECT)},
    [MQTT_PROP_RESPONSE_INFO] = {PT_STRING, B(MQTT_CONNACK)},
    [MQTT_PROP_SERVER_REFERENCE] = {PT_STRING, B(MQTT_CONNACK) | B(MQTT_DISCONNECT)},
    [MQTT_PROP_REASON_STRING] = {PT_STRING, B(MQTT_CONNACK) | ALL_ACKS | B(MQTT_SUBACK) |
                                                B(MQTT_UNSUBACK) | B(MQTT_DISCONNECT) |
                                                B(MQTT_AUTH)},
    [MQTT_PROP_RECEIVE_MAX] = {PT_U16, B(MQTT_CONNECT) | B(MQTT_CONNACK)},
    [MQTT_PROP_TOPIC_ALIAS_MAX] = {PT_U16, B(MQTT_CONNECT) | B(MQTT_CONNACK)},
    [MQTT_PROP_TOPIC_ALIAS] = {PT_U16, B(MQTT_PUBLISH)},
    [MQTT_PROP_MAX_QOS] = {PT_BYTE, B(MQTT_CONNACK)},
    [MQTT_PROP_RETAIN_AVAILABLE] = {PT_BYTE, B(MQTT_CONNACK)},
    [MQTT_PROP_USER] = {PT_PAIR, 0xFFFEu | WILL_BIT},
    [MQTT_PROP_MAX_PACKET_SIZE] = {PT_U32, B(MQTT_CONNECT) | B(MQTT_CONNACK)},
    [MQTT_PROP_WILDCARD_AVAILABLE] = {PT_BYTE, B(MQTT_CONNACK)},
    [MQTT_PROP_SUB_ID_AVAILABLE] = {PT_BYTE, B(MQTT_CONNACK)},
    [MQTT_PROP_SHARED_AVAILABLE] = {PT_BYTE, B(MQTT_CONNACK)},
};

/* ---- the bounded read cursor ---- */

typedef struct rd {
  const uint8_t *p;
  size_t len, pos;
  uint8_t err; /* first reason code met; 0 while all is well */
} rd;

static void rd_fail(rd *r, uint8_t reason) {
  if (!r->err)
    r->err = reason;
  r->pos = r->len; /* nothing more is read after an error */
}

static size_t rd_left(const rd *r) {
  return r->len - r->pos;
}

static uint8_t rd_u8(rd *r) {
  if (rd_left(r) < 1) {
    rd_fail(r, MQTT_RC_MALFORMED);
    return 0;
  }
  return r->p[r->pos++];
}

static uint16_t rd_u16(rd *r) {
  if (rd_left(r) < 2) {
    rd_fail(r, MQTT_RC_MALFORMED);
    return 0;
  }
  uint16_t v = (uint16_t)(r->p[r->pos] << 8 | r->p[r->pos + 1]);
  r->pos += 2;
  return v;
}

static uint32_t rd_u32(rd *r) {
  if (rd_left(r) < 4) {
    rd_fail(r, MQTT_RC_MALFORMED);
    return 0;
  }
  const uint8_t *b = r->p + r->pos;
  r->pos += 4;
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* A variable byte integer: at most 4 bytes, the last without the continuation bit. */
static uint32_t rd_varint(rd *r) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    uint8_t b = rd_u8(r);
    if (r->err)
      return 0;
    v |= (uint32_t)(b & 0x7f) << (7 * i);
    if (!(b & 0x80))
      return v;
  }
  rd_fail(r, MQTT_RC_MALFORMED);
  return 0;
}

static mqtt_bytes rd_binary(rd *r) {
  mqtt_bytes b = {NULL, 0};
  uint16_t n = rd_u16(r);
  if (r->err)
    return b;
  if (rd_left(r) < n) {
    rd_fail(r, MQTT_RC_MALFORMED);
    return b;
  }
  b.p = r->p + r->pos;
  b.len = n;
  r->pos += n;
  return b;
}

static mqtt_bytes rd_string(rd *r) {
  mqtt_bytes b = rd_binary(r);
  if (!r->err && b.len && !pl_utf8_valid(b.p, b.len))
    rd_fail(r, MQTT_RC_MALFORMED);
  return b;
}

/* Reads a property block (length + properties) for packet type `type` (or WILL_BIT). */
static void rd_props(rd *r, uint32_t type_bit, mqtt_props *pr) {
  memset(pr, 0, sizeof *pr);
  uint32_t n = rd_varint(r);
  if (r->err)
    return;
  if (n > rd_left(r)) {
    rd_fail(r, MQTT_RC_MALFORMED);
    return;
  }
  rd sub = {r->p + r->pos, n, 0, 0};
  pr->user_raw = (mqtt_bytes){r->p + r->pos, n};
  r->pos += n;
  while (rd_left(&sub) && !sub.err) {
    uint32_t id = rd_varint(&sub);
    if (sub.err)
      break;
    if (id >= sizeof prop_defs / sizeof prop_defs[0] || !prop_defs[id].type) {
      rd_fail(&sub, MQTT_RC_MALFORMED); /* an unknown property identifier */
      break;
    }
    const prop_def *d = &prop_defs[id];
    if (!(d->allowed & type_bit)) {
      rd_fail(&sub, MQTT_RC_PROTOCOL_ERROR);
      break;
    }
    int repeatable =
        id == MQTT_PROP_USER || (id == MQTT_PROP_SUBSCRIPTION_ID && type_bit == B(MQTT_PUBLISH));
    if (MQTT_HAS(pr, id) && !repeatable) {
      rd_fail(&sub, MQTT_RC_PROTOCOL_ERROR);
      break;
    }
    MQTT_SET(pr, id);
    uint8_t b = 0;
    uint16_t w = 0;
    uint32_t l = 0;
    mqtt_bytes s = {NULL, 0};
    switch (d->type) {
    case PT_BYTE:
      b = rd_u8(&sub);
      if (!sub.err && b > 1)
        rd_fail(&sub, MQTT_RC_PROTOCOL_ERROR); /* every byte property is 0 or 1 */
      break;
    case PT_U16: w = rd_u16(&sub); break;
    case PT_U32: l = rd_u32(&sub); break;
    case PT_VARINT: l = rd_varint(&sub); break;
    case PT_STRING: s = rd_string(&sub); break;
    case PT_BINARY: s = rd_binary(&sub); break;
    case PT_PAIR:
      rd_string(&sub);
      rd_string(&sub);
      pr->nuser++;
      break;
    }
    if (sub.err)
      break;
    switch (id) {
    case MQTT_PROP_PAYLOAD_FORMAT: pr->payload_format = b; break;
    case MQTT_PROP_MESSAGE_EXPIRY: pr->message_expiry = l; break;
    case MQTT_PROP_CONTENT_TYPE: pr->content_type = s; break;
    case MQTT_PROP_RESPONSE_TOPIC:
      if (!s.len || !mqtt_topic_name_valid(s.p, s.len))
        rd_fail(&sub, MQTT_RC_PROTOCOL_ERROR);
      pr->response_topic = s;
      break;
    case MQTT_PROP_CORRELATION_DATA: pr->correlation_data = s; break;
    case MQTT_PROP_SUBSCRIPTION_ID:
      if (l == 0)
        rd_fail(&sub, MQTT_RC_PROTOCOL_ERROR);
      if (!pr->nsub_ids++)
        pr->sub_id = l;
      break;
    case MQTT_PROP_SESSION_EXPIRY: pr->session_expiry = l; break;
    case MQTT_PROP_ASSIGNED_CLIENT_ID: pr->assigned_client_id = s; break;
    case MQTT_PROP_SERVER_KEEP_ALIVE: pr->server_keep_alive = w; break;
    case MQTT_PROP_AUTH_METHOD: pr->auth_method = s; break;
    case MQTT_PROP_AUTH_DATA: pr->auth_data = s; break;
    case MQTT_PROP_REQUEST_PROBLEM_INFO: pr->request_problem_info = b; break;
    case MQTT_PROP_WILL_DELAY: pr->will_delay = l; break;
    case MQTT_PROP_REQUEST_RESPONSE_INFO: pr->request_response_info = b; break;
    case MQTT_PROP_RESPONSE_INFO: pr->response_info = s; break;
    case MQTT_PROP_SERVER_REFERENCE: pr->server_reference = s; break;
    case MQTT_PROP_REASON_STRING: pr->reason_string = s; break;
    case MQTT_PROP_RECEIVE_MAX:
      if (w == 0)
        rd_fail(&sub, MQTT_RC_PROTOCOL_ERROR);
      pr->receive_max = w;
      break;
    case MQTT_PROP_TOPIC_ALIAS_MAX: pr->topic_alias_max = w; break;
    case MQTT_PROP_TOPIC_ALIAS: pr->topic_alias = w; break;
    case MQTT_PROP_MAX_QOS: pr->max_qos = b; break;
    case MQTT_PROP_RETAIN_AVAILABLE: pr->retain_available = b; break;
    case MQTT_PROP_MAX_PACKET_SIZE:
      if (l == 0)
        rd_fail(&sub, MQTT_RC_PROTOCOL_ERROR);
      pr->max_packet_size = l;
      break;
    case MQTT_PROP_WILDCARD_AVAILABLE: pr->wildcard_available = b; break;
    case MQTT_PROP_SUB_ID_AVAILABLE: pr->sub_id_available = b; break;
    case MQTT_PROP_SHARED_AVAILABLE: pr->shared_available = b; break;
    }
  }
  if (sub.err)
    rd_fail(r, sub.err);
}

int mqtt_props_next_user(const mqtt_props *p, size_t *it, mqtt_bytes *key, mqtt_bytes *value) {
  /* The block was validated when it was decoded, so this walk only has to skip. */
  rd r = {p->user_raw.p, p->user_raw.len, *it, 0};
  while (rd_left(&r) && !r.err) {
    uint32_t id = rd_varint(&r);
    if (r.err || id >= sizeof prop_defs / sizeof prop_defs[0])
      return 0;
    switch (prop_defs[id].type) {
    case PT_BYTE: rd_u8(&r); break;
    case PT_U16: rd_u16(&r); break;
    case PT_U32: rd_u32(&r); break;
    case PT_VARINT: rd_varint(&r); break;
    case PT_STRING:
    case PT_BINARY: rd_binary(&r); break;
    case PT_PAIR: {
      mqtt_bytes k = rd_binary(&r), v = rd_binary(&r);
      if (r.err)
        return 0;
      *key = k;
      *value = v;
      *it = r.pos;
      return 1;
    }
    default: return 0;
    }
  }
  *it = r.len;
  return 0;
}

/* ---- the writer (counting when w->b is NULL) ---- */

typedef struct wr {
  pl_buf *b;
  size_t n;
  int err;
} wr;

static void w_raw(wr *w, const void *p, size_t n) {
  if (w->err || !n)
    return;
  int rc = w->b ? pl_buf_append(w->b, p, n) : 0;
  if (rc < 0)
    w->err = rc;
  w->n += n;
}

static void w_u8(wr *w, uint8_t v) {
  w_raw(w, &v, 1);
}

static void w_u16(wr *w, uint16_t v) {
  uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
  w_raw(w, b, 2);
}

static void w_u32(wr *w, uint32_t v) {
  uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
  w_raw(w, b, 4);
}

static size_t varint_len(uint32_t v) {
  return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

static void w_varint(wr *w, uint32_t v) {
  if (v > MQTT_REMAINING_MAX) {
    w->err = PL_EINVAL;
    return;
  }
  uint8_t b[4];
  size_t n = 0;
  do {
    b[n] = v & 0x7f;
    v >>= 7;
    if (v)
      b[n] |= 0x80;
    n++;
  } while (v);
  w_raw(w, b, n);
}

static void w_bytes(wr *w, mqtt_bytes s) {
  if (s.len > 65535) {
    w->err = PL_EINVAL;
    return;
  }
  w_u16(w, (uint16_t)s.len);
  w_raw(w, s.p, s.len);
}

/* The properties of packet type_bit that are present, in identifier order. */
static void w_props_body(wr *w, const mqtt_props *pr, uint32_t type_bit) {
  for (uint32_t id = 1; id < sizeof prop_defs / sizeof prop_defs[0]; id++) {
    const prop_def *d = &prop_defs[id];
    if (!d->type || !(d->allowed & type_bit))
      continue;
    if (id == MQTT_PROP_USER) {
      for (uint32_t i = 0; pr->user && i < pr->nuser; i++) {
        w_u8(w, MQTT_PROP_USER);
        w_bytes(w, pr->user[i].key);
        w_bytes(w, pr->user[i].value);
      }
      w_raw(w, pr->user_enc.p, pr->user_enc.len);
      continue;
    }
    if (!MQTT_HAS(pr, id))
      continue;
    if (id == MQTT_PROP_SUBSCRIPTION_ID) {
      if (pr->sub_ids) {
        for (uint32_t i = 0; i < pr->nsub_ids; i++) {
          w_u8(w, (uint8_t)id);
          w_varint(w, pr->sub_ids[i]);
        }
      } else {
        w_u8(w, (uint8_t)id);
        w_varint(w, pr->sub_id);
      }
      continue;
    }
    w_u8(w, (uint8_t)id);
    switch (id) {
    case MQTT_PROP_PAYLOAD_FORMAT: w_u8(w, pr->payload_format); break;
    case MQTT_PROP_MESSAGE_EXPIRY: w_u32(w, pr->message_expiry); break;
    case MQTT_PROP_CONTENT_TYPE: w_bytes(w, pr->content_type); break;
    case MQTT_PROP_RESPONSE_TOPIC: w_bytes(w, pr->response_topic); break;
    case MQTT_PROP_CORRELATION_DATA: w_bytes(w, pr->correlation_data); break;
    case MQTT_PROP_SESSION_EXPIRY: w_u32(w, pr->session_expiry); break;
    case MQTT_PROP_ASSIGNED_CLIENT_ID: w_bytes(w, pr->assigned_client_id); break;
    case MQTT_PROP_SERVER_KEEP_ALIVE: w_u16(w, pr->server_keep_alive); break;
    case MQTT_PROP_AUTH_METHOD: w_bytes(w, pr->auth_method); break;
    case MQTT_PROP_AUTH_DATA: w_bytes(w, pr->auth_data); break;
    case MQTT_PROP_REQUEST_PROBLEM_INFO: w_u8(w, pr->request_problem_info); break;
    case MQTT_PROP_WILL_DELAY: w_u32(w, pr->will_delay); break;
    case MQTT_PROP_REQUEST_RESPONSE_INFO: w_u8(w, pr->request_response_info); break;
    case MQTT_PROP_RESPONSE_INFO: w_bytes(w, pr->response_info); break;
    case MQTT_PROP_SERVER_REFERENCE: w_bytes(w, pr->server_reference); break;
    case MQTT_PROP_REASON_STRING: w_bytes(w, pr->reason_string); break;
    case MQTT_PROP_RECEIVE_MAX: w_u16(w, pr->receive_max); break;
    case MQTT_PROP_TOPIC_ALIAS_MAX: w_u16(w, pr->topic_alias_max); break;
    case MQTT_PROP_TOPIC_ALIAS: w_u16(w, pr->topic_alias); break;
    case MQTT_PROP_MAX_QOS: w_u8(w, pr->max_qos); break;
    case MQTT_PROP_RETAIN_AVAILABLE: w_u8(w, pr->retain_available); break;
    case MQTT_PROP_MAX_PACKET_SIZE: w_u32(w, pr->max_packet_size); break;
    case MQTT_PROP_WILDCARD_AVAILABLE: w_u8(w, pr->wildcard_available); break;
    case MQTT_PROP_SUB_ID_AVAILABLE: w_u8(w, pr->sub_id_available); break;
    case MQTT_PROP_SHARED_AVAILABLE: w_u8(w, pr->shared_available); break;
    }
  }
}

static void w_props(wr *w, const mqtt_props *pr, uint32_t type_bit) {
  wr count = {NULL, 0, 0};
  w_props_body(&count, pr, type_bit);
  if (count.err) {
    w->err = count.err;
    return;
  }
  w_varint(w, (uint32_t)(count.n > MQTT_REMAINING_MAX ? MQTT_REMAINING_MAX + 1u : count.n));
  w_props_body(w, pr, type_bit);
}

int mqtt_props_user_encode(const mqtt_props *p, pl_buf *out) {
  size_t it = 0;
  mqtt_bytes k, v;
  wr w = {out, 0, 0};
  while (mqtt_props_next_user(p, &it, &k, &v)) {
    w_u8(&w, MQTT_PROP_USER);
    w_bytes(&w, k);
    w_bytes(&w, v);
  }
  return w.err;
}

/* ---- topics ---- */

int mqtt_topic_name_valid(const uint8_t *s, size_t len) {
  if (!len || len > 65535)
    return 0;
  for (size_t i = 0; i < len; i++)
    if (s[i] == '+' || s[i] == '#' || s[i] == 0)
      return 0;
  return 1;
}

int mqtt_topic_filter_valid(const uint8_t *s, size_t len) {
  if (!len || len > 65535)
    return 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == 0)
      return 0;
    if (s[i] == '+' || s[i] == '#') {
      /* A wildcard is a whole level: after a '/' (or at the start) and before one (or at the
       * end); '#' only as the last level. */
      if (i > 0 && s[i - 1] != '/')
        return 0;
      if (s[i] == '+' && i + 1 < len && s[i + 1] != '/')
        return 0;
      if (s[i] == '#' && i + 1 != len)
        return 0;
    }
  }
  return 1;
}

/* ---- decoding ---- */

static void decode_connect(rd *r, mqtt_connect *c) {
  memset(c, 0, sizeof *c);
  mqtt_bytes name = rd_binary(r);
  uint8_t level = rd_u8(r);
  if (r->err)
    return;
  int is_mqtt = name.len == 4 && memcmp(name.p, "MQTT", 4) == 0;
  int is_isdp = name.len == 6 && memcmp(name.p, "MQIsdp", 6) == 0;
  if (!is_mqtt && !is_isdp) {
    /* Not MQTT at all: 3.1.1 lets the server answer code 1 or close. */
    rd_fail(r, MQTT_RC_UNSUPPORTED_VERSION);
    return;
  }
  if ((is_mqtt && level != MQTT_V311 && level != MQTT_V5) || (is_isdp && level != MQTT_V31)) {
    rd_fail(r, MQTT_RC_UNSUPPORTED_VERSION);
    return;
  }
  c->version = level;
  uint8_t flags = rd_u8(r);
  c->keep_alive_s = rd_u16(r);
  if (r->err)
    return;
  if (flags & 0x01) { /* the reserved bit */
    rd_fail(r, MQTT_RC_MALFORMED);
    return;
  }
  c->clean_start = (flags >> 1) & 1;
  c->will = (flags >> 2) & 1;
  c->will_qos = (flags >> 3) & 3;
  c->will_retain = (flags >> 5) & 1;
  c->has_password = (flags >> 6) & 1;
  c->has_username = (flags >> 7) & 1;
  if (c->will_qos == 3 || (!c->will && (c->will_qos || c->will_retain))) {
    rd_fail(r, MQTT_RC_MALFORMED);
    return;
  }
  if (level != MQTT_V5 && c->has_password && !c->has_username) {
    rd_fail(r, MQTT_RC_MALFORMED);
    return;
  }
  if (level == MQTT_V5)
    rd_props(r, B(MQTT_CONNECT), &c->props);
  c->client_id = rd_string(r);
  if (c->will) {
    if (level == MQTT_V5)
      rd_props(r, WILL_BIT, &c->will_props);
    c->will_topic = rd_string(r);
    c->will_payload = rd_binary(r);
    if (!r->err && !mqtt_topic_name_valid(c->will_topic.p, c->will_topic.len))
      rd_fail(r, MQTT_RC_TOPIC_NAME_INVALID);
  }
  if (c->has_username)
    c->username = rd_string(r);
  if (c->has_password)
    c->password = rd_binary(r);
  if (!r->err && rd_left(r))
    rd_fail(r, MQTT_RC_MALFORMED);
}

static void decode_connack(rd *r, uint8_t version, mqtt_connack *c) {
  memset(c, 0, sizeof *c);
  uint8_t flags = rd_u8(r);
  c->reason = rd_u8(r);
  if (!r->err && (flags & 0xfe))
    rd_fail(r, MQTT_RC_MALFORMED);
  c->session_present = flags & 1;
  if (version == MQTT_V5)
    rd_props(r, B(MQTT_CONNACK), &c->props);
  if (!r->err && rd_left(r))
    rd_fail(r, MQTT_RC_MALFORMED);
}

static void decode_publish(rd *r, uint8_t version, uint8_t flags, mqtt_publish *p) {
  memset(p, 0, sizeof *p);
  p->retain = flags & 1;
  p->qos = (flags >> 1) & 3;
  p->dup = (flags >> 3) & 1;
  if (p->qos == 3) {
    rd_fail(r, MQTT_RC_MALFORMED);
    return;
  }
  if (p->qos == 0 && p->dup) {
    rd_fail(r, MQTT_RC_MALFORMED);
    return;
  }
  p->topic = rd_string(r);
  if (r->err)
    return;
  if (p->topic.len ? !mqtt_topic_name_valid(p->topic.p, p->topic.len) : version != MQTT_V5) {
    rd_fail(r, MQTT_RC_TOPIC_NAME_INVALID);
    return;
  }
  if (p->qos) {
    p->packet_id = rd_u16(r);
    if (!r->err && !p->packet_id) {
      rd_fail(r, MQTT_RC_PROTOCOL_ERROR);
      return;
    }
  }
  if (version == MQTT_V5)
    rd_props(r, B(MQTT_PUBLISH), &p->props);
  if (r->err)
    return;
  p->payload = (mqtt_bytes){r->p + r->pos, (uint32_t)rd_left(r)};
  r->pos = r->len;
}

static void decode_ack(rd *r, uint8_t version, uint8_t type, mqtt_ack *a) {
  memset(a, 0, sizeof *a);
  a->packet_id = rd_u16(r);
  if (r->err)
    return;
  if (!a->packet_id) {
    rd_fail(r, MQTT_RC_PROTOCOL_ERROR);
    return;
  }
  if (version != MQTT_V5) {
    if (rd_left(r))
      rd_fail(r, MQTT_RC_MALFORMED);
    return;
  }
  if (rd_left(r))
    a->reason = rd_u8(r);
  if (rd_left(r))
    rd_props(r, B(type), &a->props);
  if (!r->err && rd_left(r))
    rd_fail(r, MQTT_RC_MALFORMED);
}

static void decode_subscribe(rd *r, uint8_t version, uint8_t type, mqtt_subscribe *s) {
  memset(s, 0, sizeof *s);
  s->packet_id = rd_u16(r);
  if (r->err)
    return;
  if (!s->packet_id) {
    rd_fail(r, MQTT_RC_PROTOCOL_ERROR);
    return;
  }
  if (version == MQTT_V5)
    rd_props(r, B(type), &s->props);
  if (r->err)
    return;
  s->raw = (mqtt_bytes){r->p + r->pos, (uint32_t)rd_left(r)};
  while (rd_left(r) && !r->err) {
    mqtt_bytes f = rd_string(r);
    if (!r->err && !f.len)
      rd_fail(r, MQTT_RC_MALFORMED);
    if (type == MQTT_SUBSCRIBE) {
      uint8_t o = rd_u8(r);
      if (r->err)
        break;
      /* 3.1.1: only the QoS bits; 5.0: bits 6-7 reserved, retain handling 3 invalid. */
      uint8_t reserved = version == MQTT_V5 ? 0xc0 : 0xfc;
      if ((o & reserved) || MQTT_SUB_QOS(o) == 3 || MQTT_SUB_RETAIN_HANDLING(o) == 3)
        rd_fail(r, MQTT_RC_MALFORMED);
    }
    s->count++;
  }
  if (!r->err && s->count == 0)
    rd_fail(r, MQTT_RC_PROTOCOL_ERROR);
}

static void decode_suback(rd *r, uint8_t version, uint8_t type, mqtt_suback *s) {
  memset(s, 0, sizeof *s);
  s->packet_id = rd_u16(r);
  if (r->err)
    return;
  if (version == MQTT_V5)
    rd_props(r, B(type), &s->props);
  if (r->err)
    return;
  s->codes = (mqtt_bytes){r->p + r->pos, (uint32_t)rd_left(r)};
  r->pos = r->len;
  if (type == MQTT_SUBACK && !s->codes.len)
    rd_fail(r, MQTT_RC_PROTOCOL_ERROR);
  if (type == MQTT_UNSUBACK && version != MQTT_V5 && s->codes.len)
    rd_fail(r, MQTT_RC_MALFORMED);
}

static void decode_disconnect(rd *r, uint8_t version, uint8_t type, mqtt_disconnect *d) {
  memset(d, 0, sizeof *d);
  if (version != MQTT_V5) {
    if (type == MQTT_AUTH)
      rd_fail(r, MQTT_RC_PROTOCOL_ERROR);
    else if (rd_left(r))
      rd_fail(r, MQTT_RC_MALFORMED);
    return;
  }
  if (rd_left(r))
    d->reason = rd_u8(r);
  if (rd_left(r))
    rd_props(r, B(type), &d->props);
  if (!r->err && rd_left(r))
    rd_fail(r, MQTT_RC_MALFORMED);
}

int mqtt_decode(const uint8_t *buf, size_t len, uint8_t version, size_t max_packet_bytes,
                mqtt_packet *out, size_t *used, uint8_t *reason) {
  *reason = MQTT_RC_SUCCESS;
  *used = 0;
  if (len < 1)
    return PL_AGAIN;
  /* What the first byte alone can tell is told at once, so garbage is refused without waiting
   * for the bytes its "length" asks for. */
  uint8_t type = buf[0] >> 4, flags = buf[0] & 0x0f;
  uint8_t want_flags =
      type == MQTT_PUBREL || type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE ? 2 : 0;
  if (type == 0 || (type != MQTT_PUBLISH && flags != want_flags)) {
    *reason = MQTT_RC_MALFORMED; /* a reserved type, or reserved flag bits */
    return PL_EINVAL;
  }
  if (version == 0 && type != MQTT_CONNECT) {
    *reason = MQTT_RC_PROTOCOL_ERROR; /* the first packet must be CONNECT */
    return PL_EINVAL;
  }
  /* Fixed header: the remaining length takes 1 to 4 bytes. */
  uint32_t remaining = 0;
  size_t hdr = 1;
  for (;;) {
    if (hdr >= len)
      return PL_AGAIN;
    uint8_t b = buf[hdr];
    remaining |= (uint32_t)(b & 0x7f) << (7 * (hdr - 1));
    hdr++;
    if (!(b & 0x80))
      break;
    if (hdr == 5) {
      *reason = MQTT_RC_MALFORMED;
      return PL_EINVAL;
    }
  }
  size_t total = hdr + remaining;
  if (max_packet_bytes && total > max_packet_bytes) {
    *used = total;
    *reason = MQTT_RC_PACKET_TOO_LARGE;
    return PL_ELIMIT;
  }
  if (len < total) {
    *used = total;
    return PL_AGAIN;
  }
  rd r = {buf + hdr, remaining, 0, 0};
  mqtt_packet p;
  p.type = type;
  switch (type) {
  case MQTT_CONNECT: decode_connect(&r, &p.u.connect); break;
  case MQTT_CONNACK: decode_connack(&r, version, &p.u.connack); break;
  case MQTT_PUBLISH: decode_publish(&r, version, flags, &p.u.publish); break;
  case MQTT_PUBACK:
  case MQTT_PUBREC:
  case MQTT_PUBREL:
  case MQTT_PUBCOMP: decode_ack(&r, version, type, &p.u.ack); break;
  case MQTT_SUBSCRIBE:
  case MQTT_UNSUBSCRIBE: decode_subscribe(&r, version, type, &p.u.subscribe); break;
  case MQTT_SUBACK:
  case MQTT_UNSUBACK: decode_suback(&r, version, type, &p.u.suback); break;
  case MQTT_PINGREQ:
  case MQTT_PINGRESP:
    if (remaining)
      rd_fail(&r, MQTT_RC_MALFORMED);
    break;
  case MQTT_DISCONNECT:
  case MQTT_AUTH: decode_disconnect(&r, version, type, &p.u.disconnect); break;
  }
  if (r.err) {
    *reason = r.err;
    return PL_EINVAL;
  }
  *out = p;
  *used = total;
  return 0;
}

int mqtt_subscribe_next(const mqtt_packet *p, size_t *it, mqtt_sub_entry *out) {
  const mqtt_subscribe *s = &p->u.subscribe;
  rd r = {s->raw.p, s->raw.len, *it, 0};
  if (!rd_left(&r))
    return 0;
  out->filter = rd_binary(&r);
  out->options = p->type == MQTT_SUBSCRIBE ? rd_u8(&r) : 0;
  if (r.err)
    return 0;
  *it = r.pos;
  return 1;
}

/* ---- encoding ---- */

static void w_body(wr *w, const mqtt_packet *p, uint8_t version) {
  int v5 = version == MQTT_V5;
  switch (p->type) {
  case MQTT_CONNECT: {
    const mqtt_connect *c = &p->u.connect;
    v5 = c->version == MQTT_V5;
    if (c->version == MQTT_V31)
      w_bytes(w, (mqtt_bytes){(const uint8_t *)"MQIsdp", 6});
    else
      w_bytes(w, (mqtt_bytes){(const uint8_t *)"MQTT", 4});
    w_u8(w, c->version);
    w_u8(w,
         (uint8_t)((c->clean_start ? 2 : 0) | (c->will ? 4 : 0) |
                   (c->will ? (c->will_qos & 3) << 3 : 0) | (c->will && c->will_retain ? 0x20 : 0) |
                   (c->has_password ? 0x40 : 0) | (c->has_username ? 0x80 : 0)));
    w_u16(w, c->keep_alive_s);
    if (v5)
      w_props(w, &c->props, B(MQTT_CONNECT));
    w_bytes(w, c->client_id);
    if (c->will) {
      if (v5)
        w_props(w, &c->will_props, WILL_BIT);
      w_bytes(w, c->will_topic);
      w_bytes(w, c->will_payload);
    }
    if (c->has_username)
      w_bytes(w, c->username);
    if (c->has_password)
      w_bytes(w, c->password);
    break;
  }
  case MQTT_CONNACK:
    w_u8(w, p->u.connack.session_present ? 1 : 0);
    w_u8(w, p->u.connack.reason);
    if (v5)
      w_props(w, &p->u.connack.props, B(MQTT_CONNACK));
    break;
  case MQTT_PUBLISH: {
    const mqtt_publish *pb = &p->u.publish;
    w_bytes(w, pb->topic);
    if (pb->qos)
      w_u16(w, pb->packet_id);
    if (v5)
      w_props(w, &pb->props, B(MQTT_PUBLISH));
    w_raw(w, pb->payload.p, pb->payload.len);
    break;
  }
  case MQTT_PUBACK:
  case MQTT_PUBREC:
  case MQTT_PUBREL:
  case MQTT_PUBCOMP: {
    const mqtt_ack *a = &p->u.ack;
    w_u16(w, a->packet_id);
    /* 5.0: reason and properties may be left out when they are Success and empty. */
    wr count = {NULL, 0, 0};
    w_props_body(&count, &a->props, B(p->type));
    if (v5 && (a->reason || count.n)) {
      w_u8(w, a->reason);
      if (count.n)
        w_props(w, &a->props, B(p->type));
    }
    break;
  }
  case MQTT_SUBSCRIBE:
  case MQTT_UNSUBSCRIBE: {
    const mqtt_subscribe *s = &p->u.subscribe;
    w_u16(w, s->packet_id);
    if (v5)
      w_props(w, &s->props, B(p->type));
    for (uint32_t i = 0; s->entries && i < s->count; i++) {
      w_bytes(w, s->entries[i].filter);
      if (p->type == MQTT_SUBSCRIBE)
        w_u8(w, s->entries[i].options);
    }
    break;
  }
  case MQTT_SUBACK:
  case MQTT_UNSUBACK: {
    const mqtt_suback *s = &p->u.suback;
    w_u16(w, s->packet_id);
    if (v5)
      w_props(w, &s->props, B(p->type));
    if (v5 || p->type == MQTT_SUBACK)
      w_raw(w, s->codes.p, s->codes.len);
    break;
  }
  case MQTT_PINGREQ:
  case MQTT_PINGRESP: break;
  case MQTT_DISCONNECT:
  case MQTT_AUTH: {
    if (!v5)
      break;
    const mqtt_disconnect *d = &p->u.disconnect;
    wr count = {NULL, 0, 0};
    w_props_body(&count, &d->props, B(p->type));
    if (d->reason || count.n) {
      w_u8(w, d->reason);
      if (count.n)
        w_props(w, &d->props, B(p->type));
    }
    break;
  }
  default: w->err = PL_EINVAL;
  }
}

static uint8_t first_byte(const mqtt_packet *p) {
  uint8_t flags = 0;
  if (p->type == MQTT_PUBLISH)
    flags = (uint8_t)((p->u.publish.dup ? 8 : 0) | (p->u.publish.qos & 3) << 1 |
                      (p->u.publish.retain ? 1 : 0));
  else if (p->type == MQTT_PUBREL || p->type == MQTT_SUBSCRIBE || p->type == MQTT_UNSUBSCRIBE)
    flags = 2;
  return (uint8_t)(p->type << 4 | flags);
}

/* The size of the body (everything after the fixed header), or 0 with *err set. */
static size_t body_size(const mqtt_packet *p, uint8_t version, int *err) {
  wr count = {NULL, 0, 0};
  if (p->type == MQTT_PUBLISH && p->u.publish.qos > 2)
    count.err = PL_EINVAL;
  else
    w_body(&count, p, version);
  if (!count.err && count.n > MQTT_REMAINING_MAX)
    count.err = PL_EINVAL;
  *err = count.err;
  return count.err ? 0 : count.n;
}

size_t mqtt_encoded_size(const mqtt_packet *p, uint8_t version) {
  int err;
  size_t n = body_size(p, version, &err);
  return err ? 0 : 1 + varint_len((uint32_t)n) + n;
}

int mqtt_encode(const mqtt_packet *p, uint8_t version, pl_buf *out) {
  int err;
  size_t n = body_size(p, version, &err);
  if (err)
    return err;
  int rc = pl_buf_reserve(out, 1 + varint_len((uint32_t)n) + n);
  if (rc < 0)
    return rc;
  size_t start = out->len;
  wr w = {out, 0, 0};
  w_u8(&w, first_byte(p));
  w_varint(&w, (uint32_t)n);
  w_body(&w, p, version);
  if (w.err) {
    out->len = start;
    return w.err;
  }
  return 0;
}
