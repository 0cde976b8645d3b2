/* Unit tests for the MQTT packet codec (src/mqtt/codec.c): packets captured from Debian's
 * mosquitto 2.0.11 and its clients decoded field by field; round trips of every packet type in
 * 3.1.1 and 5.0 with every property; resumption (every prefix of a packet is PL_AGAIN and says
 * how much is needed); the size limit; and a table of malformed packets, each with the reason
 * code it must be refused with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/buf.h"
#include "base/err.h"
#include "mqtt/codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers -------------------------------------------------------------------------------- */

/* Hex to bytes; spaces are ignored, so vectors can show the fields they are made of. */
static size_t unhex(const char *hex, uint8_t *out, size_t cap) {
  size_t n = 0;
  int half = -1;
  for (; *hex && n < cap; hex++) {
    if (*hex == ' ') continue;
    unsigned v;
    char c[2] = {*hex, 0};
    sscanf(c, "%x", &v);
    if (half < 0) {
      half = (int)v;
    } else {
      out[n++] = (uint8_t)(half << 4 | (int)v);
      half = -1;
    }
  }
  return n;
}

static mqtt_bytes S(const char *s) {
  return (mqtt_bytes){(const uint8_t *)s, (uint32_t)strlen(s)};
}

static int bytes_eq(mqtt_bytes b, const char *s) {
  return b.len == strlen(s) && (b.len == 0 || memcmp(b.p, s, b.len) == 0);
}

#define assert_bytes(b, s)                                                                                  \
  do {                                                                                                      \
    if (!bytes_eq((b), (s))) {                                                                              \
      print_error("bytes \"%.*s\" != \"%s\"\n", (int)(b).len, (const char *)(b).p, (s));                   \
      fail();                                                                                               \
    }                                                                                                       \
  } while (0)

/* Decodes hex as one whole packet, asserting success. */
static mqtt_packet decode_hex(const char *hex, uint8_t version, uint8_t *buf, size_t cap) {
  size_t n = unhex(hex, buf, cap);
  mqtt_packet p;
  size_t used = 0;
  uint8_t reason = 0xff;
  int rc = mqtt_decode(buf, n, version, 0, &p, &used, &reason);
  if (rc != 0) print_error("decode %s: rc %d reason 0x%02x\n", hex, rc, reason);
  assert_int_equal(rc, 0);
  assert_int_equal(reason, 0);
  assert_int_equal(used, n);
  return p;
}

/* Expects decoding of hex to fail with reason. */
static void expect_refused(const char *what, const char *hex, uint8_t version, uint8_t reason_want) {
  uint8_t buf[512];
  size_t n = unhex(hex, buf, sizeof buf);
  mqtt_packet p;
  size_t used = 0;
  uint8_t reason = 0;
  int rc = mqtt_decode(buf, n, version, 0, &p, &used, &reason);
  if (rc >= 0 || reason != reason_want)
    print_error("%s: rc %d reason 0x%02x, want reason 0x%02x (%s)\n", what, rc, reason, reason_want,
                mqtt_reason_name(reason_want));
  assert_true(rc < 0 && rc != PL_AGAIN);
  assert_int_equal(reason, reason_want);
}

/* Encodes p, decodes the bytes again, and returns them in out (for field checks). */
static mqtt_packet round_trip(const mqtt_packet *p, uint8_t version, pl_buf *out) {
  pl_buf_reset(out);
  assert_int_equal(mqtt_encode(p, version, out), 0);
  assert_int_equal(out->len, mqtt_encoded_size(p, version));
  mqtt_packet back;
  size_t used = 0;
  uint8_t reason = 0xff;
  uint8_t dec_version = p->type == MQTT_CONNECT ? 0 : version;
  int rc = mqtt_decode(out->data, out->len, dec_version, 0, &back, &used, &reason);
  if (rc) print_error("round trip of %s: rc %d reason 0x%02x\n", mqtt_type_name(p->type), rc, reason);
  assert_int_equal(rc, 0);
  assert_int_equal(used, out->len);
  assert_int_equal(back.type, p->type);
  return back;
}

/* ---- packets captured from mosquitto 2.0.11 and mosquitto_pub/sub ------------------------- */

static void test_captured_v311(void **state) {
  (void)state;
  uint8_t b[256];
  /* mosquitto_sub -V mqttv311 -i sub311 (keep-alive 60, clean session) */
  mqtt_packet p = decode_hex("101200044d5154540402003c0006737562333131", 0, b, sizeof b);
  assert_int_equal(p.type, MQTT_CONNECT);
  assert_int_equal(p.u.connect.version, MQTT_V311);
  assert_int_equal(p.u.connect.clean_start, 1);
  assert_int_equal(p.u.connect.keep_alive_s, 60);
  assert_bytes(p.u.connect.client_id, "sub311");
  assert_false(p.u.connect.will);
  /* ... -u dev -P secret, empty client id */
  p = decode_hex("101900044d51545404c2003c000000036465760006736563726574", 0, b, sizeof b);
  assert_true(p.u.connect.has_username && p.u.connect.has_password);
  assert_bytes(p.u.connect.username, "dev");
  assert_bytes(p.u.connect.password, "secret");
  assert_int_equal(p.u.connect.client_id.len, 0);
  /* a will: last/will "bye" QoS 1 retained */
  p = decode_hex("101c00044d515454042e003c000000096c6173742f77696c6c0003627965", 0, b, sizeof b);
  assert_true(p.u.connect.will);
  assert_int_equal(p.u.connect.will_qos, 1);
  assert_int_equal(p.u.connect.will_retain, 1);
  assert_bytes(p.u.connect.will_topic, "last/will");
  assert_bytes(p.u.connect.will_payload, "bye");
  /* MQTT 3.1 ("MQIsdp", level 3) */
  p = decode_hex("102500064d51497364700302003c00176d6f73712d4c506c4c437461664931437252706978756c", 0, b,
                 sizeof b);
  assert_int_equal(p.u.connect.version, MQTT_V31);
  assert_int_equal(p.u.connect.client_id.len, 23);
  /* SUBSCRIBE sensors/+/temp QoS 2, a/# QoS 2 */
  p = decode_hex("82190001000e73656e736f72732f2b2f74656d70020003612f2302", MQTT_V311, b, sizeof b);
  assert_int_equal(p.type, MQTT_SUBSCRIBE);
  assert_int_equal(p.u.subscribe.packet_id, 1);
  assert_int_equal(p.u.subscribe.count, 2);
  size_t it = 0;
  mqtt_sub_entry e;
  assert_true(mqtt_subscribe_next(&p, &it, &e));
  assert_bytes(e.filter, "sensors/+/temp");
  assert_int_equal(e.options, 2);
  assert_true(mqtt_subscribe_next(&p, &it, &e));
  assert_bytes(e.filter, "a/#");
  assert_false(mqtt_subscribe_next(&p, &it, &e));
  /* SUBACK 2, 2 */
  p = decode_hex("900400010202", MQTT_V311, b, sizeof b);
  assert_int_equal(p.u.suback.codes.len, 2);
  /* PUBLISH QoS 1 */
  p = decode_hex("3226000e73656e736f72732f322f74656d7000017b2274656d7065726174757265223a32322e357d", MQTT_V311, b,
                 sizeof b);
  assert_int_equal(p.u.publish.qos, 1);
  assert_int_equal(p.u.publish.packet_id, 1);
  assert_bytes(p.u.publish.topic, "sensors/2/temp");
  assert_bytes(p.u.publish.payload, "{\"temperature\":22.5}");
  /* PUBLISH QoS 2 retained, PUBREC, PUBREL, PUBCOMP */
  p = decode_hex("35140003612f620001716f73322072657461696e6564", MQTT_V311, b, sizeof b);
  assert_int_equal(p.u.publish.qos, 2);
  assert_int_equal(p.u.publish.retain, 1);
  p = decode_hex("50020001", MQTT_V311, b, sizeof b);
  assert_int_equal(p.type, MQTT_PUBREC);
  p = decode_hex("62020001", MQTT_V311, b, sizeof b);
  assert_int_equal(p.type, MQTT_PUBREL);
  p = decode_hex("70020001", MQTT_V311, b, sizeof b);
  assert_int_equal(p.type, MQTT_PUBCOMP);
  p = decode_hex("c000", MQTT_V311, b, sizeof b);
  assert_int_equal(p.type, MQTT_PINGREQ);
  p = decode_hex("e000", MQTT_V311, b, sizeof b);
  assert_int_equal(p.type, MQTT_DISCONNECT);
  p = decode_hex("20020000", MQTT_V311, b, sizeof b);
  assert_int_equal(p.type, MQTT_CONNACK);
}

static void test_captured_v5(void **state) {
  (void)state;
  uint8_t b[256];
  /* mosquitto_sub -V mqttv5 -c -x 120 -D connect user-property k v -i sub5 */
  mqtt_packet p =
      decode_hex("102000044d5154540500003c0f2600016b0001761100000078210002000473756235", 0, b, sizeof b);
  const mqtt_connect *c = &p.u.connect;
  assert_int_equal(c->version, MQTT_V5);
  assert_int_equal(c->clean_start, 0);
  assert_true(MQTT_HAS(&c->props, MQTT_PROP_SESSION_EXPIRY));
  assert_int_equal(c->props.session_expiry, 120);
  assert_int_equal(c->props.receive_max, 2);
  assert_int_equal(c->props.nuser, 1);
  size_t it = 0;
  mqtt_bytes k, v;
  assert_true(mqtt_props_next_user(&c->props, &it, &k, &v));
  assert_bytes(k, "k");
  assert_bytes(v, "v");
  assert_false(mqtt_props_next_user(&c->props, &it, &k, &v));
  /* CONNACK with topic alias maximum 10, receive maximum 20 */
  p = decode_hex("200900000622000a210014", MQTT_V5, b, sizeof b);
  assert_int_equal(p.u.connack.props.topic_alias_max, 10);
  assert_int_equal(p.u.connack.props.receive_max, 20);
  /* CONNACK with an assigned client identifier */
  p = decode_hex("203500003222000a1200296175746f2d34383930343342352d374132352d413637462d353732322d3130393239"
                 "36323041323143210014",
                 MQTT_V5, b, sizeof b);
  assert_int_equal(p.u.connack.props.assigned_client_id.len, 41);
  /* SUBSCRIBE v5/# QoS 1 with subscription identifier 7 */
  p = decode_hex("820c0001020b07000476352f2301", MQTT_V5, b, sizeof b);
  assert_int_equal(p.u.subscribe.props.sub_id, 7);
  assert_int_equal(p.u.subscribe.count, 1);
  /* PUBLISH with user property, content type, expiry, response topic, correlation data, format */
  p = decode_hex("3245000476352f780001342600036170700007706c617465617503000a746578742f706c61696e020000003c0800087635"
                 "2f7265706c79090003616263010168656c6c6f207635",
                 MQTT_V5, b, sizeof b);
  const mqtt_publish *pb = &p.u.publish;
  assert_bytes(pb->topic, "v5/x");
  assert_int_equal(pb->packet_id, 1);
  assert_int_equal(pb->props.message_expiry, 60);
  assert_bytes(pb->props.content_type, "text/plain");
  assert_bytes(pb->props.response_topic, "v5/reply");
  assert_bytes(pb->props.correlation_data, "abc");
  assert_int_equal(pb->props.payload_format, 1);
  assert_int_equal(pb->props.nuser, 1);
  assert_bytes(pb->payload, "hello v5");
  /* The broker's copy to a subscriber carries subscription identifier 7. */
  p = decode_hex("3247000476352f780001360b072600036170700007706c617465617503000a746578742f706c61696e08000876352f726570"
                 "6c790900036162630101020000003c68656c6c6f207635",
                 MQTT_V5, b, sizeof b);
  assert_int_equal(p.u.publish.props.sub_id, 7);
  assert_int_equal(p.u.publish.props.nsub_ids, 1);
  /* CONNECT with a will with properties, session expiry, receive max, max packet size, alias max */
  p = decode_hex("103900044d5154540506003c10110000001e21000a270000271022000500000c180000000526000177000178000776352f"
                 "77696c6c0004676f6e65",
                 0, b, sizeof b);
  c = &p.u.connect;
  assert_int_equal(c->props.session_expiry, 30);
  assert_int_equal(c->props.receive_max, 10);
  assert_int_equal(c->props.max_packet_size, 10000);
  assert_int_equal(c->props.topic_alias_max, 5);
  assert_int_equal(c->will_props.will_delay, 5);
  assert_int_equal(c->will_props.nuser, 1);
  assert_bytes(c->will_topic, "v5/will");
  /* UNSUBSCRIBE and UNSUBACK */
  p = decode_hex("a209000200000476352f23", MQTT_V5, b, sizeof b);
  assert_int_equal(p.type, MQTT_UNSUBSCRIBE);
  assert_int_equal(p.u.subscribe.count, 1);
  p = decode_hex("b00400020000", MQTT_V5, b, sizeof b);
  assert_int_equal(p.u.suback.codes.len, 1);
  /* v5 acks may leave out the reason code and properties. */
  p = decode_hex("40020001", MQTT_V5, b, sizeof b);
  assert_int_equal(p.u.ack.reason, 0);
  p = decode_hex("4003000199", MQTT_V5, b, sizeof b);
  assert_int_equal(p.u.ack.reason, MQTT_RC_PAYLOAD_FORMAT_INVALID);
  p = decode_hex("e0028e00", MQTT_V5, b, sizeof b);
  assert_int_equal(p.u.disconnect.reason, MQTT_RC_SESSION_TAKEN_OVER);
}

/* ---- round trips ------------------------------------------------------------------------- */

static void test_round_trip_all_types(void **state) {
  (void)state;
  pl_buf out;
  pl_buf_init(&out, 0);
  uint8_t versions[] = {MQTT_V311, MQTT_V5};
  for (size_t vi = 0; vi < 2; vi++) {
    uint8_t ver = versions[vi];
    int v5 = ver == MQTT_V5;
    mqtt_packet p, back;

    memset(&p, 0, sizeof p);
    p.type = MQTT_CONNECT;
    mqtt_connect *c = &p.u.connect;
    c->version = ver;
    c->clean_start = 1;
    c->keep_alive_s = 30;
    c->client_id = S("pump-1");
    c->will = 1;
    c->will_qos = 2;
    c->will_retain = 1;
    c->will_topic = S("status/pump-1");
    c->will_payload = S("offline");
    c->has_username = c->has_password = 1;
    c->username = S("pld_token");
    c->password = S("pw");
    mqtt_user_prop up[2] = {{S("region"), S("tibet")}, {S("line"), S("2")}};
    if (v5) {
      MQTT_SET(&c->props, MQTT_PROP_SESSION_EXPIRY);
      c->props.session_expiry = 3600;
      MQTT_SET(&c->props, MQTT_PROP_RECEIVE_MAX);
      c->props.receive_max = 50;
      MQTT_SET(&c->props, MQTT_PROP_MAX_PACKET_SIZE);
      c->props.max_packet_size = 4096;
      MQTT_SET(&c->props, MQTT_PROP_TOPIC_ALIAS_MAX);
      c->props.topic_alias_max = 8;
      MQTT_SET(&c->props, MQTT_PROP_REQUEST_RESPONSE_INFO);
      c->props.request_response_info = 1;
      c->props.user = up;
      c->props.nuser = 2;
      MQTT_SET(&c->will_props, MQTT_PROP_WILL_DELAY);
      c->will_props.will_delay = 10;
      MQTT_SET(&c->will_props, MQTT_PROP_CONTENT_TYPE);
      c->will_props.content_type = S("text/plain");
    }
    back = round_trip(&p, ver, &out);
    assert_int_equal(back.u.connect.version, ver);
    assert_bytes(back.u.connect.client_id, "pump-1");
    assert_int_equal(back.u.connect.will_qos, 2);
    assert_int_equal(back.u.connect.will_retain, 1);
    assert_bytes(back.u.connect.will_topic, "status/pump-1");
    assert_bytes(back.u.connect.will_payload, "offline");
    assert_bytes(back.u.connect.username, "pld_token");
    assert_bytes(back.u.connect.password, "pw");
    if (v5) {
      assert_int_equal(back.u.connect.props.session_expiry, 3600);
      assert_int_equal(back.u.connect.props.receive_max, 50);
      assert_int_equal(back.u.connect.props.max_packet_size, 4096);
      assert_int_equal(back.u.connect.props.topic_alias_max, 8);
      assert_int_equal(back.u.connect.props.nuser, 2);
      assert_int_equal(back.u.connect.will_props.will_delay, 10);
      assert_bytes(back.u.connect.will_props.content_type, "text/plain");
      /* Forwarding user properties through user_enc keeps them and their order. */
      pl_buf enc;
      pl_buf_init(&enc, 0);
      assert_int_equal(mqtt_props_user_encode(&back.u.connect.props, &enc), 0);
      mqtt_packet pub;
      memset(&pub, 0, sizeof pub);
      pub.type = MQTT_PUBLISH;
      pub.u.publish.topic = S("t");
      pub.u.publish.props.user_enc = (mqtt_bytes){enc.data, (uint32_t)enc.len};
      pl_buf out2;
      pl_buf_init(&out2, 0);
      mqtt_packet pb2 = round_trip(&pub, ver, &out2);
      size_t it = 0;
      mqtt_bytes k, v;
      assert_true(mqtt_props_next_user(&pb2.u.publish.props, &it, &k, &v));
      assert_bytes(k, "region");
      assert_bytes(v, "tibet");
      assert_true(mqtt_props_next_user(&pb2.u.publish.props, &it, &k, &v));
      assert_bytes(k, "line");
      assert_false(mqtt_props_next_user(&pb2.u.publish.props, &it, &k, &v));
      pl_buf_free(&out2);
      pl_buf_free(&enc);
    }

    memset(&p, 0, sizeof p);
    p.type = MQTT_CONNACK;
    p.u.connack.session_present = 1;
    p.u.connack.reason = v5 ? MQTT_RC_SUCCESS : MQTT_V3_ACCEPTED;
    if (v5) {
      mqtt_props *pr = &p.u.connack.props;
      MQTT_SET(pr, MQTT_PROP_RECEIVE_MAX);
      pr->receive_max = 100;
      MQTT_SET(pr, MQTT_PROP_MAX_QOS);
      pr->max_qos = 1;
      MQTT_SET(pr, MQTT_PROP_RETAIN_AVAILABLE);
      pr->retain_available = 1;
      MQTT_SET(pr, MQTT_PROP_MAX_PACKET_SIZE);
      pr->max_packet_size = 262144;
      MQTT_SET(pr, MQTT_PROP_ASSIGNED_CLIENT_ID);
      pr->assigned_client_id = S("auto-1");
      MQTT_SET(pr, MQTT_PROP_TOPIC_ALIAS_MAX);
      pr->topic_alias_max = 16;
      MQTT_SET(pr, MQTT_PROP_SERVER_KEEP_ALIVE);
      pr->server_keep_alive = 120;
      MQTT_SET(pr, MQTT_PROP_SHARED_AVAILABLE);
      pr->shared_available = 1;
      MQTT_SET(pr, MQTT_PROP_REASON_STRING);
      pr->reason_string = S("welcome");
    }
    back = round_trip(&p, ver, &out);
    assert_int_equal(back.u.connack.session_present, 1);
    if (v5) {
      assert_int_equal(back.u.connack.props.receive_max, 100);
      assert_int_equal(back.u.connack.props.max_packet_size, 262144);
      assert_bytes(back.u.connack.props.assigned_client_id, "auto-1");
      assert_int_equal(back.u.connack.props.server_keep_alive, 120);
      assert_bytes(back.u.connack.props.reason_string, "welcome");
    }

    for (uint8_t qos = 0; qos <= 2; qos++) {
      memset(&p, 0, sizeof p);
      p.type = MQTT_PUBLISH;
      p.u.publish.qos = qos;
      p.u.publish.retain = 1;
      p.u.publish.dup = qos > 0;
      p.u.publish.packet_id = qos ? 65535 : 0;
      p.u.publish.topic = S("v1/devices/me/telemetry");
      p.u.publish.payload = S("{\"temperature\": 21.5}");
      uint32_t ids[3] = {1, 300, 268435455};
      if (v5) {
        mqtt_props *pr = &p.u.publish.props;
        MQTT_SET(pr, MQTT_PROP_PAYLOAD_FORMAT);
        pr->payload_format = 1;
        MQTT_SET(pr, MQTT_PROP_MESSAGE_EXPIRY);
        pr->message_expiry = 600;
        MQTT_SET(pr, MQTT_PROP_RESPONSE_TOPIC);
        pr->response_topic = S("reply/here");
        MQTT_SET(pr, MQTT_PROP_CORRELATION_DATA);
        pr->correlation_data = S("\x01\x02");
        MQTT_SET(pr, MQTT_PROP_TOPIC_ALIAS);
        pr->topic_alias = 3;
        MQTT_SET(pr, MQTT_PROP_SUBSCRIPTION_ID);
        pr->sub_ids = ids;
        pr->nsub_ids = 3;
      }
      back = round_trip(&p, ver, &out);
      assert_int_equal(back.u.publish.qos, qos);
      assert_int_equal(back.u.publish.retain, 1);
      assert_int_equal(back.u.publish.dup, qos > 0);
      assert_int_equal(back.u.publish.packet_id, qos ? 65535 : 0);
      assert_bytes(back.u.publish.topic, "v1/devices/me/telemetry");
      assert_bytes(back.u.publish.payload, "{\"temperature\": 21.5}");
      if (v5) {
        assert_int_equal(back.u.publish.props.message_expiry, 600);
        assert_bytes(back.u.publish.props.response_topic, "reply/here");
        assert_int_equal(back.u.publish.props.correlation_data.len, 2);
        assert_int_equal(back.u.publish.props.topic_alias, 3);
        assert_int_equal(back.u.publish.props.nsub_ids, 3);
        assert_int_equal(back.u.publish.props.sub_id, 1);
      }
    }

    uint8_t acks[] = {MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP};
    for (size_t i = 0; i < 4; i++) {
      for (int with_reason = 0; with_reason < 2; with_reason++) {
        memset(&p, 0, sizeof p);
        p.type = acks[i];
        p.u.ack.packet_id = 77;
        if (with_reason && v5) {
          p.u.ack.reason = acks[i] == MQTT_PUBREL || acks[i] == MQTT_PUBCOMP ? MQTT_RC_PACKET_ID_NOT_FOUND
                                                                              : MQTT_RC_QUOTA_EXCEEDED;
          MQTT_SET(&p.u.ack.props, MQTT_PROP_REASON_STRING);
          p.u.ack.props.reason_string = S("over the tenant's queue limit");
        }
        back = round_trip(&p, ver, &out);
        assert_int_equal(back.u.ack.packet_id, 77);
        assert_int_equal(back.u.ack.reason, p.u.ack.reason);
        /* Success without properties is the short form (remaining length 2). */
        if (!with_reason) assert_int_equal(out.len, 4);
      }
    }

    mqtt_sub_entry entries[3] = {{S("v1/devices/me/rpc/request/+"), 1},
                                 {S("$share/group/sensors/#"), 2},
                                 {S("a/b"), (uint8_t)(v5 ? 0x2c : 0)}};
    memset(&p, 0, sizeof p);
    p.type = MQTT_SUBSCRIBE;
    p.u.subscribe.packet_id = 9;
    p.u.subscribe.entries = entries;
    p.u.subscribe.count = 3;
    if (v5) {
      MQTT_SET(&p.u.subscribe.props, MQTT_PROP_SUBSCRIPTION_ID);
      p.u.subscribe.props.sub_id = 42;
    }
    back = round_trip(&p, ver, &out);
    assert_int_equal(back.u.subscribe.packet_id, 9);
    assert_int_equal(back.u.subscribe.count, 3);
    if (v5) assert_int_equal(back.u.subscribe.props.sub_id, 42);
    size_t it = 0;
    mqtt_sub_entry e;
    for (int i = 0; i < 3; i++) {
      assert_true(mqtt_subscribe_next(&back, &it, &e));
      assert_int_equal(e.filter.len, entries[i].filter.len);
      assert_memory_equal(e.filter.p, entries[i].filter.p, e.filter.len);
      assert_int_equal(e.options, entries[i].options);
    }
    assert_false(mqtt_subscribe_next(&back, &it, &e));

    p.type = MQTT_UNSUBSCRIBE;
    back = round_trip(&p, ver, &out);
    assert_int_equal(back.u.subscribe.count, 3);

    uint8_t codes[3] = {1, 2, v5 ? MQTT_RC_NOT_AUTHORIZED : MQTT_V3_SUBACK_FAILURE};
    memset(&p, 0, sizeof p);
    p.type = MQTT_SUBACK;
    p.u.suback.packet_id = 9;
    p.u.suback.codes = (mqtt_bytes){codes, 3};
    back = round_trip(&p, ver, &out);
    assert_int_equal(back.u.suback.codes.len, 3);
    assert_int_equal(back.u.suback.codes.p[2], codes[2]);
    p.type = MQTT_UNSUBACK;
    back = round_trip(&p, ver, &out);
    assert_int_equal(back.u.suback.codes.len, v5 ? 3 : 0);

    memset(&p, 0, sizeof p);
    p.type = MQTT_PINGREQ;
    round_trip(&p, ver, &out);
    assert_int_equal(out.len, 2);
    p.type = MQTT_PINGRESP;
    round_trip(&p, ver, &out);

    memset(&p, 0, sizeof p);
    p.type = MQTT_DISCONNECT;
    back = round_trip(&p, ver, &out);
    assert_int_equal(out.len, 2);
    if (v5) {
      p.u.disconnect.reason = MQTT_RC_KEEP_ALIVE_TIMEOUT;
      MQTT_SET(&p.u.disconnect.props, MQTT_PROP_SESSION_EXPIRY);
      p.u.disconnect.props.session_expiry = 0;
      back = round_trip(&p, ver, &out);
      assert_int_equal(back.u.disconnect.reason, MQTT_RC_KEEP_ALIVE_TIMEOUT);
      assert_true(MQTT_HAS(&back.u.disconnect.props, MQTT_PROP_SESSION_EXPIRY));
      memset(&p, 0, sizeof p);
      p.type = MQTT_AUTH;
      p.u.disconnect.reason = MQTT_RC_CONTINUE_AUTHENTICATION;
      MQTT_SET(&p.u.disconnect.props, MQTT_PROP_AUTH_METHOD);
      p.u.disconnect.props.auth_method = S("SCRAM-SHA-1");
      back = round_trip(&p, ver, &out);
      assert_bytes(back.u.disconnect.props.auth_method, "SCRAM-SHA-1");
    }
  }
  pl_buf_free(&out);
}

/* ---- resumption and limits --------------------------------------------------------------- */

static void test_every_prefix_is_again(void **state) {
  (void)state;
  /* A packet of 200 + bytes has a 2-byte remaining length: the header itself can be partial. */
  char payload[300];
  memset(payload, 'x', sizeof payload - 1);
  payload[sizeof payload - 1] = 0;
  mqtt_packet p;
  memset(&p, 0, sizeof p);
  p.type = MQTT_PUBLISH;
  p.u.publish.qos = 1;
  p.u.publish.packet_id = 5;
  p.u.publish.topic = S("a/b");
  p.u.publish.payload = S(payload);
  pl_buf out;
  pl_buf_init(&out, 0);
  assert_int_equal(mqtt_encode(&p, MQTT_V311, &out), 0);
  for (size_t n = 0; n < out.len; n++) {
    /* Copy into an exact-size allocation so ASan catches any read past n. */
    uint8_t *part = malloc(n ? n : 1);
    memcpy(part, out.data, n);
    mqtt_packet got;
    size_t used = 12345;
    uint8_t reason;
    int rc = mqtt_decode(part, n, MQTT_V311, 0, &got, &used, &reason);
    assert_int_equal(rc, PL_AGAIN);
    assert_int_equal(used, n < 3 ? 0 : out.len);
    free(part);
  }
  /* Two packets back to back: the first is decoded alone. */
  size_t one = out.len;
  assert_int_equal(mqtt_encode(&p, MQTT_V311, &out), 0);
  mqtt_packet got;
  size_t used;
  uint8_t reason;
  assert_int_equal(mqtt_decode(out.data, out.len, MQTT_V311, 0, &got, &used, &reason), 0);
  assert_int_equal(used, one);
  pl_buf_free(&out);
}

static void test_packet_too_large(void **state) {
  (void)state;
  uint8_t hdr[5] = {0x30, 0xff, 0xff, 0xff, 0x7f}; /* PUBLISH of the largest remaining length */
  mqtt_packet p;
  size_t used;
  uint8_t reason;
  assert_int_equal(mqtt_decode(hdr, 5, MQTT_V311, 1024, &p, &used, &reason), PL_ELIMIT);
  assert_int_equal(reason, MQTT_RC_PACKET_TOO_LARGE);
  assert_int_equal(used, 5 + (size_t)MQTT_REMAINING_MAX);
  /* Known as too large from the header alone, before the body arrives. */
  uint8_t hdr2[3] = {0x30, 0x80, 0x08}; /* 1024 bytes remaining */
  assert_int_equal(mqtt_decode(hdr2, 3, MQTT_V311, 1024, &p, &used, &reason), PL_ELIMIT);
  /* Exactly the limit is fine (reported as PL_AGAIN until the bytes are there). */
  uint8_t hdr3[3] = {0x30, 0xfd, 0x07}; /* 1021 remaining + 3 header = 1024 */
  assert_int_equal(mqtt_decode(hdr3, 3, MQTT_V311, 1024, &p, &used, &reason), PL_AGAIN);
  assert_int_equal(used, 1024);
  /* Encoding refuses what no remaining length can say. */
  mqtt_packet big;
  memset(&big, 0, sizeof big);
  big.type = MQTT_PUBLISH;
  big.u.publish.topic = S("t");
  big.u.publish.payload = (mqtt_bytes){(const uint8_t *)"", MQTT_REMAINING_MAX};
  assert_int_equal(mqtt_encoded_size(&big, MQTT_V311), 0);
  pl_buf out;
  pl_buf_init(&out, 0);
  assert_int_equal(mqtt_encode(&big, MQTT_V311, &out), PL_EINVAL);
  assert_int_equal(out.len, 0);
  /* A string over 65,535 bytes cannot be encoded either. */
  big.u.publish.payload = S("");
  big.u.publish.topic = (mqtt_bytes){(const uint8_t *)"", 70000};
  assert_int_equal(mqtt_encode(&big, MQTT_V311, &out), PL_EINVAL);
  /* A limited buffer reports its limit and stays unchanged. */
  pl_buf small;
  pl_buf_init(&small, 8);
  mqtt_packet pub;
  memset(&pub, 0, sizeof pub);
  pub.type = MQTT_PUBLISH;
  pub.u.publish.topic = S("a/long/topic");
  assert_int_equal(mqtt_encode(&pub, MQTT_V311, &small), PL_ELIMIT);
  assert_int_equal(small.len, 0);
  pl_buf_free(&small);
  pl_buf_free(&out);
}

/* ---- malformed packets ------------------------------------------------------------------- */

/* Expects a packet made of first byte + body (the remaining length is computed) to be refused. */
static void expect_body_refused(const char *what, uint8_t first, const char *body_hex, uint8_t version,
                                uint8_t reason_want) {
  uint8_t body[400];
  size_t n = unhex(body_hex, body, sizeof body);
  assert_true(n < 128);
  char hex[1000];
  int at = snprintf(hex, sizeof hex, "%02x%02x", first, (unsigned)n);
  for (size_t i = 0; i < n; i++) at += snprintf(hex + at, sizeof hex - (size_t)at, "%02x", body[i]);
  expect_refused(what, hex, version, reason_want);
}

static void test_malformed(void **state) {
  (void)state;
  const uint8_t M = MQTT_RC_MALFORMED, P = MQTT_RC_PROTOCOL_ERROR;
  const uint8_t V4 = MQTT_V311, V5 = MQTT_V5;
  /* fixed header */
  expect_refused("remaining length of 5 bytes", "30ffffffff01", V4, M);
  expect_refused("reserved type 0", "0000", V4, M);
  expect_body_refused("PUBREL without flag 0b0010", 0x60, "0001", V4, M);
  expect_body_refused("SUBSCRIBE with flags 0", 0x80, "0001 0003 612f62 00", V4, M);
  expect_body_refused("PUBACK with flags", 0x41, "0001", V4, M);
  expect_refused("first packet not CONNECT", "c000", 0, P);
  /* CONNECT: protocol name, level, flags, keep-alive, [properties], client id, ... */
  expect_body_refused("unknown protocol name", 0x10, "0004 4d515458 04 02 003c 0000", 0, MQTT_RC_UNSUPPORTED_VERSION);
  expect_body_refused("protocol level 6", 0x10, "0004 4d515454 06 02 003c 0000", 0, MQTT_RC_UNSUPPORTED_VERSION);
  expect_body_refused("MQIsdp with level 4", 0x10, "0006 4d5149736470 04 02 003c 0000", 0,
                      MQTT_RC_UNSUPPORTED_VERSION);
  expect_body_refused("reserved connect flag", 0x10, "0004 4d515454 04 03 003c 0000", 0, M);
  expect_body_refused("will QoS 3", 0x10, "0004 4d515454 04 1e 003c 0000 0001 74 0001 6d", 0, M);
  expect_body_refused("will QoS without will", 0x10, "0004 4d515454 04 0a 003c 0000", 0, M);
  expect_body_refused("will retain without will", 0x10, "0004 4d515454 04 22 003c 0000", 0, M);
  expect_body_refused("password without user name (3.1.1)", 0x10, "0004 4d515454 04 42 003c 0000 0000", 0, M);
  expect_body_refused("will topic with wildcard", 0x10, "0004 4d515454 04 06 003c 0000 0001 2b 0001 6d", 0,
                      MQTT_RC_TOPIC_NAME_INVALID);
  expect_body_refused("trailing bytes", 0x10, "0004 4d515454 04 02 003c 0000 00", 0, M);
  expect_body_refused("client id runs past the end", 0x10, "0004 4d515454 04 02 003c 0005 61", 0, M);
  expect_body_refused("client id not UTF-8", 0x10, "0004 4d515454 04 02 003c 0002 c328", 0, M);
  expect_body_refused("client id with U+0000", 0x10, "0004 4d515454 04 02 003c 0002 6100", 0, M);
  expect_body_refused("v5 properties run past the end", 0x10, "0004 4d515454 05 02 003c 05 00", 0, M);
  expect_body_refused("v5 unknown property", 0x10, "0004 4d515454 05 02 003c 02 0500 0000", 0, M);
  expect_body_refused("v5 topic alias in CONNECT", 0x10, "0004 4d515454 05 02 003c 03 230001 0000", 0, P);
  expect_body_refused("v5 duplicate session expiry", 0x10, "0004 4d515454 05 02 003c 0a 1100000001 1100000002 0000",
                      0, P);
  expect_body_refused("v5 receive maximum 0", 0x10, "0004 4d515454 05 02 003c 03 210000 0000", 0, P);
  expect_body_refused("v5 request problem info 2", 0x10, "0004 4d515454 05 02 003c 02 1702 0000", 0, P);
  expect_body_refused("v5 will property not allowed", 0x10,
                      "0004 4d515454 05 06 003c 00 0000 03 230001 0001 74 0001 6d", 0, P);
  /* PUBLISH: topic, [packet id], [properties], payload */
  expect_body_refused("QoS 3", 0x36, "0001 61 0001", V4, M);
  expect_body_refused("DUP with QoS 0", 0x38, "0001 61", V4, M);
  expect_body_refused("topic with +", 0x30, "0003 2b2f62", V4, MQTT_RC_TOPIC_NAME_INVALID);
  expect_body_refused("topic with #", 0x30, "0003 612f23", V4, MQTT_RC_TOPIC_NAME_INVALID);
  expect_body_refused("empty topic in 3.1.1", 0x30, "0000", V4, MQTT_RC_TOPIC_NAME_INVALID);
  expect_body_refused("packet id 0", 0x32, "0001 61 0000", V4, P);
  expect_body_refused("topic not UTF-8", 0x30, "0002 ff61", V4, M);
  expect_body_refused("topic runs past the end", 0x30, "0009 61", V4, M);
  expect_body_refused("v5 PUBLISH with session expiry", 0x30, "0001 61 05 110000000a", V5, P);
  expect_body_refused("v5 payload format 2", 0x30, "0001 61 02 0102", V5, P);
  expect_body_refused("v5 subscription id 0", 0x30, "0001 61 02 0b00", V5, P);
  expect_body_refused("v5 response topic with wildcard", 0x30, "0001 61 04 0800012b", V5, P);
  expect_body_refused("v5 user property value cut", 0x30, "0001 61 05 2600016100", V5, M);
  expect_body_refused("v5 duplicate topic alias", 0x30, "0001 61 06 230001 230002", V5, P);
  /* acks */
  expect_body_refused("PUBACK too long in 3.1.1", 0x40, "0001 00", V4, M);
  expect_body_refused("PUBACK too short", 0x40, "00", V4, M);
  expect_body_refused("PUBACK id 0", 0x40, "0000", V4, P);
  expect_body_refused("v5 PUBACK with topic alias", 0x40, "0001 00 03 230001", V5, P);
  expect_body_refused("v5 PUBACK trailing bytes", 0x40, "0001 00 00 ff", V5, M);
  /* SUBSCRIBE / UNSUBSCRIBE */
  expect_body_refused("SUBSCRIBE without filters", 0x82, "0001", V4, P);
  expect_body_refused("SUBSCRIBE option bits in 3.1.1", 0x82, "0001 0001 61 04", V4, M);
  expect_body_refused("SUBSCRIBE QoS 3", 0x82, "0001 0001 61 03", V4, M);
  expect_body_refused("v5 retain handling 3", 0x82, "0001 00 0001 61 30", V5, M);
  expect_body_refused("v5 reserved option bits", 0x82, "0001 00 0001 61 40", V5, M);
  expect_body_refused("SUBSCRIBE empty filter", 0x82, "0001 0000 00", V4, M);
  expect_body_refused("SUBSCRIBE filter without options", 0x82, "0001 0001 61", V4, M);
  expect_body_refused("SUBSCRIBE packet id 0", 0x82, "0000 0001 61 00", V4, P);
  expect_body_refused("UNSUBSCRIBE without filters", 0xa2, "0001", V4, P);
  expect_body_refused("UNSUBACK with codes in 3.1.1", 0xb0, "0001 00", V4, M);
  expect_body_refused("SUBACK without codes", 0x90, "0001", V4, P);
  /* others */
  expect_body_refused("PINGREQ with a body", 0xc0, "00", V4, M);
  expect_body_refused("DISCONNECT with a body in 3.1.1", 0xe0, "00", V4, M);
  expect_refused("AUTH in 3.1.1", "f000", V4, P);
  expect_body_refused("CONNACK reserved flags", 0x20, "02 00", V4, M);
  expect_body_refused("v5 DISCONNECT with will delay", 0xe0, "00 05 1800000001", V5, P);
}

/* ---- topics and names -------------------------------------------------------------------- */

static void test_topic_validation(void **state) {
  (void)state;
  const char *names_ok[] = {"a", "a/b", "/", "a//b", "$SYS/broker/uptime", "v1/devices/me/telemetry", "温度/1"};
  const char *names_bad[] = {"", "a/+", "#", "a/b#", "+"};
  for (size_t i = 0; i < sizeof names_ok / sizeof names_ok[0]; i++)
    assert_true(mqtt_topic_name_valid((const uint8_t *)names_ok[i], strlen(names_ok[i])));
  for (size_t i = 0; i < sizeof names_bad / sizeof names_bad[0]; i++)
    assert_false(mqtt_topic_name_valid((const uint8_t *)names_bad[i], strlen(names_bad[i])));
  const char *filters_ok[] = {"#", "+", "a/#", "a/+/b", "+/+", "/+", "+/", "$share/g/a/#", "a//b"};
  const char *filters_bad[] = {"", "a#", "a/#/b", "a+", "a/+b", "#/a", "a/b+/c", "++"};
  for (size_t i = 0; i < sizeof filters_ok / sizeof filters_ok[0]; i++)
    assert_true(mqtt_topic_filter_valid((const uint8_t *)filters_ok[i], strlen(filters_ok[i])));
  for (size_t i = 0; i < sizeof filters_bad / sizeof filters_bad[0]; i++) {
    if (mqtt_topic_filter_valid((const uint8_t *)filters_bad[i], strlen(filters_bad[i])))
      print_error("filter \"%s\" accepted\n", filters_bad[i]);
    assert_false(mqtt_topic_filter_valid((const uint8_t *)filters_bad[i], strlen(filters_bad[i])));
  }
}

static void test_reason_names(void **state) {
  (void)state;
  assert_string_equal(mqtt_reason_name(MQTT_RC_MALFORMED), "Malformed Packet");
  assert_string_equal(mqtt_reason_name(MQTT_RC_QUOTA_EXCEEDED), "Quota exceeded");
  assert_string_equal(mqtt_reason_name(0x55), "Unknown");
  assert_int_equal(mqtt_reason_v3_connack(MQTT_RC_BAD_CREDENTIALS), MQTT_V3_BAD_CREDENTIALS);
  assert_int_equal(mqtt_reason_v3_connack(MQTT_RC_NOT_AUTHORIZED), MQTT_V3_NOT_AUTHORIZED);
  assert_int_equal(mqtt_reason_v3_connack(MQTT_RC_UNSUPPORTED_VERSION), MQTT_V3_BAD_VERSION);
  assert_int_equal(mqtt_reason_v3_connack(MQTT_RC_CLIENT_ID_INVALID), MQTT_V3_ID_REJECTED);
  assert_int_equal(mqtt_reason_v3_connack(MQTT_RC_SERVER_BUSY), MQTT_V3_SERVER_UNAVAILABLE);
  assert_string_equal(mqtt_type_name(MQTT_PUBLISH), "PUBLISH");
  assert_string_equal(mqtt_type_name(0), "?");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_captured_v311),
      cmocka_unit_test(test_captured_v5),
      cmocka_unit_test(test_round_trip_all_types),
      cmocka_unit_test(test_every_prefix_is_again),
      cmocka_unit_test(test_packet_too_large),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_topic_validation),
      cmocka_unit_test(test_reason_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
