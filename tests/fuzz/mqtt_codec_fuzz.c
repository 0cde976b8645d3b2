/* Fuzz target: the MQTT packet codec (src/mqtt/codec.c), every packet type of 3.1, 3.1.1 and 5.0.
 *
 * Input: one selector byte, then a byte stream as a connection would deliver it. The selector's
 * low two bits pick the protocol level the stream is decoded with (0: before CONNECT, 3.1.1, 5.0,
 * 5.0) and bit 2 a small maximum packet size. The stream is decoded packet by packet, as the
 * server does, with every packet also offered in pieces (each prefix must be PL_AGAIN and must
 * not be read past). Each packet decoded is encoded again and decoded again, and the two decodes
 * must agree: what the server reads it can also write.
 *
 * Seeds (tests/fuzz/corpus/mqtt_codec_fuzz/) are packets captured from Debian's mosquitto 2.0.11
 * and mosquitto_pub/sub, one packet a file behind the selector byte.
 */
#include "mqtt/codec.h"

#include <stdlib.h>
#include <string.h>

#define ENTRIES_MAX 256

static int same_bytes(mqtt_bytes a, mqtt_bytes b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static void check(int ok) {
  if (!ok) abort();
}

/* Makes a decoded packet encodable: user properties through user_enc, subscription entries
 * through an array. Returns 0 when the packet has more entries than the test keeps. */
static int prepare(mqtt_packet *p, pl_buf *user_bufs, mqtt_sub_entry *entries) {
  mqtt_props *props[2] = {NULL, NULL};
  switch (p->type) {
  case MQTT_CONNECT:
    props[0] = &p->u.connect.props;
    props[1] = &p->u.connect.will_props;
    break;
  case MQTT_CONNACK: props[0] = &p->u.connack.props; break;
  case MQTT_PUBLISH: props[0] = &p->u.publish.props; break;
  case MQTT_PUBACK:
  case MQTT_PUBREC:
  case MQTT_PUBREL:
  case MQTT_PUBCOMP: props[0] = &p->u.ack.props; break;
  case MQTT_SUBSCRIBE:
  case MQTT_UNSUBSCRIBE: props[0] = &p->u.subscribe.props; break;
  case MQTT_SUBACK:
  case MQTT_UNSUBACK: props[0] = &p->u.suback.props; break;
  case MQTT_DISCONNECT:
  case MQTT_AUTH: props[0] = &p->u.disconnect.props; break;
  }
  for (int i = 0; i < 2; i++) {
    if (!props[i]) continue;
    if (mqtt_props_user_encode(props[i], &user_bufs[i]) < 0) return 0;
    props[i]->user_enc = (mqtt_bytes){user_bufs[i].data, (uint32_t)user_bufs[i].len};
    props[i]->nuser = 0; /* no array: user_enc carries them */
    props[i]->nsub_ids = props[i]->nsub_ids ? 1 : 0;
  }
  if (p->type == MQTT_SUBSCRIBE || p->type == MQTT_UNSUBSCRIBE) {
    if (p->u.subscribe.count > ENTRIES_MAX) return 0;
    size_t it = 0, n = 0;
    while (n < ENTRIES_MAX && mqtt_subscribe_next(p, &it, &entries[n])) n++;
    check(n == p->u.subscribe.count);
    p->u.subscribe.entries = entries;
  }
  return 1;
}

static void compare(const mqtt_packet *a, const mqtt_packet *b, uint8_t version) {
  check(a->type == b->type);
  int v5 = version == MQTT_V5;
  switch (a->type) {
  case MQTT_CONNECT:
    check(a->u.connect.version == b->u.connect.version);
    check(a->u.connect.keep_alive_s == b->u.connect.keep_alive_s);
    check(same_bytes(a->u.connect.client_id, b->u.connect.client_id));
    check(same_bytes(a->u.connect.username, b->u.connect.username));
    check(same_bytes(a->u.connect.password, b->u.connect.password));
    check(same_bytes(a->u.connect.will_payload, b->u.connect.will_payload));
    check(a->u.connect.props.session_expiry == b->u.connect.props.session_expiry);
    break;
  case MQTT_PUBLISH:
    check(a->u.publish.qos == b->u.publish.qos && a->u.publish.retain == b->u.publish.retain);
    check(a->u.publish.packet_id == b->u.publish.packet_id);
    check(same_bytes(a->u.publish.topic, b->u.publish.topic));
    check(same_bytes(a->u.publish.payload, b->u.publish.payload));
    if (v5) {
      check(a->u.publish.props.message_expiry == b->u.publish.props.message_expiry);
      check(same_bytes(a->u.publish.props.correlation_data, b->u.publish.props.correlation_data));
    }
    break;
  case MQTT_PUBACK:
  case MQTT_PUBREC:
  case MQTT_PUBREL:
  case MQTT_PUBCOMP:
    check(a->u.ack.packet_id == b->u.ack.packet_id && a->u.ack.reason == b->u.ack.reason);
    break;
  case MQTT_SUBSCRIBE:
  case MQTT_UNSUBSCRIBE:
    check(a->u.subscribe.count == b->u.subscribe.count);
    check(same_bytes(a->u.subscribe.raw, b->u.subscribe.raw));
    break;
  case MQTT_SUBACK:
  case MQTT_UNSUBACK: check(same_bytes(a->u.suback.codes, b->u.suback.codes)); break;
  case MQTT_DISCONNECT:
  case MQTT_AUTH: check(a->u.disconnect.reason == b->u.disconnect.reason); break;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  static const uint8_t levels[4] = {0, MQTT_V311, MQTT_V5, MQTT_V5};
  uint8_t version = levels[data[0] & 3];
  size_t max_packet = (data[0] & 4) ? 64 : 0;
  data++;
  size--;
  size_t pos = 0;
  pl_buf out, users[2];
  pl_buf_init(&out, 0);
  pl_buf_init(&users[0], 0);
  pl_buf_init(&users[1], 0);
  mqtt_sub_entry *entries = malloc(ENTRIES_MAX * sizeof *entries);
  while (pos < size) {
    mqtt_packet p;
    size_t used = 0;
    uint8_t reason = 0;
    int rc = mqtt_decode(data + pos, size - pos, version, max_packet, &p, &used, &reason);
    if (rc == PL_AGAIN) {
      check(used == 0 || used > size - pos);
      break;
    }
    if (rc < 0) {
      check(reason >= 0x80);
      break;
    }
    check(used > 0 && used <= size - pos);
    /* Every prefix of this packet is incomplete, in an exact-size copy so ASan sees any overread. */
    for (size_t n = 0; n < used; n += 1 + n / 4) {
      uint8_t *part = malloc(n ? n : 1);
      memcpy(part, data + pos, n);
      mqtt_packet q;
      size_t need = 0;
      uint8_t r2;
      int rc2 = mqtt_decode(part, n, version, max_packet, &q, &need, &r2);
      /* A prefix may already show a malformed header byte only if the whole packet would, and
       * the whole packet decoded: so a prefix is always PL_AGAIN. */
      check(rc2 == PL_AGAIN);
      check(need == 0 || need == used);
      free(part);
    }
    uint8_t conn_version = version;
    if (p.type == MQTT_CONNECT) conn_version = p.u.connect.version;
    pl_buf_reset(&users[0]);
    pl_buf_reset(&users[1]);
    mqtt_packet copy = p;
    if (prepare(&copy, users, entries)) {
      pl_buf_reset(&out);
      if (mqtt_encode(&copy, conn_version, &out) == 0) {
        check(out.len == mqtt_encoded_size(&copy, conn_version));
        mqtt_packet again;
        size_t used2;
        uint8_t r3;
        uint8_t dv = p.type == MQTT_CONNECT ? 0 : conn_version;
        int rc3 = mqtt_decode(out.data, out.len, dv, 0, &again, &used2, &r3);
        check(rc3 == 0 && used2 == out.len);
        compare(&p, &again, conn_version);
      }
    }
    if (p.type == MQTT_CONNECT && version == 0) version = p.u.connect.version;
    pos += used;
  }
  free(entries);
  pl_buf_free(&out);
  pl_buf_free(&users[0]);
  pl_buf_free(&users[1]);
  return 0;
}
