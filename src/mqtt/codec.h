/* MQTT control packets: a pure codec for MQTT 3.1, 3.1.1 and 5.0, shared by the server, the load
 * generator (bench/mqtt_load.c), the unit tests and the fuzz target. No I/O, no allocation on
 * the decode path: a decoded packet points into the caller's bytes.
 *
 * Decoding is resumable in the way a stream parser needs: mqtt_decode looks at the bytes it is
 * given; when they do not yet hold a whole packet it returns PL_AGAIN and says how many bytes the
 * packet needs in all (once the fixed header is complete), so the caller keeps what it has, reads
 * more and calls again. The only state is the caller's bytes, so nothing has to be carried between
 * calls, and the decoder never reads past the length it was given. Every length is bounded: the
 * remaining length by the MQTT maximum (268,435,455) and by the caller's max_packet_bytes, every
 * string and property by the packet that holds it.
 *
 * Errors carry the MQTT 5 reason code that describes them (MQTT_RC_MALFORMED,
 * MQTT_RC_PROTOCOL_ERROR, MQTT_RC_PACKET_TOO_LARGE, MQTT_RC_TOPIC_NAME_INVALID,
 * MQTT_RC_UNSUPPORTED_VERSION, ...); an MQTT 3.1.1 server maps them with mqtt_reason_v3_connack or
 * simply closes the connection, as 3.1.1 asks.
 *
 * The wire format (MQTT 3.1.1 section 2, MQTT 5.0 section 2):
 *   fixed header   byte 0: packet type << 4 | flags; then the remaining length as a variable byte
 *                  integer (7 bits a byte, least significant first, high bit = more; 1 to 4 bytes).
 *                  Flags are 0 except PUBLISH (DUP, QoS 2 bits, RETAIN) and PUBREL, SUBSCRIBE,
 *                  UNSUBSCRIBE (0b0010).
 *   strings        2-byte big-endian length + UTF-8 bytes (well-formed, no U+0000);
 *   binary data    2-byte length + bytes;
 *   properties     (5.0 only) a variable byte integer length, then identifier (a variable byte
 *                  integer; all defined ones fit in one byte) + value, each at most once except
 *                  User Property (a string pair) and, from server to client, Subscription
 *                  Identifier. Which properties each packet may carry is the table in codec.c.
 */
#ifndef PLATEAU_MQTT_CODEC_H
#define PLATEAU_MQTT_CODEC_H

#include "base/buf.h"
#include "base/err.h"

#include <stddef.h>
#include <stdint.h>

/* Protocol levels as they appear in CONNECT. */
#define MQTT_V31 3  /* "MQIsdp" */
#define MQTT_V311 4 /* "MQTT" */
#define MQTT_V5 5

#define MQTT_REMAINING_MAX                                                                         \
  268435455u /* the largest remaining length a variable byte integer holds */
#define MQTT_PACKET_ID_MAX 65535

typedef enum mqtt_type {
  MQTT_CONNECT = 1,
  MQTT_CONNACK = 2,
  MQTT_PUBLISH = 3,
  MQTT_PUBACK = 4,
  MQTT_PUBREC = 5,
  MQTT_PUBREL = 6,
  MQTT_PUBCOMP = 7,
  MQTT_SUBSCRIBE = 8,
  MQTT_SUBACK = 9,
  MQTT_UNSUBSCRIBE = 10,
  MQTT_UNSUBACK = 11,
  MQTT_PINGREQ = 12,
  MQTT_PINGRESP = 13,
  MQTT_DISCONNECT = 14,
  MQTT_AUTH = 15,
} mqtt_type;

/* MQTT 5.0 reason codes (section 2.4), the one vocabulary for every outcome in the server. */
typedef enum mqtt_rc {
  MQTT_RC_SUCCESS = 0x00, /* also Normal disconnection, Granted QoS 0 */
  MQTT_RC_GRANTED_QOS1 = 0x01,
  MQTT_RC_GRANTED_QOS2 = 0x02,
  MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
  MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
  MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
  MQTT_RC_CONTINUE_AUTHENTICATION = 0x18,
  MQTT_RC_REAUTHENTICATE = 0x19,
  MQTT_RC_UNSPECIFIED = 0x80,
  MQTT_RC_MALFORMED = 0x81,
  MQTT_RC_PROTOCOL_ERROR = 0x82,
  MQTT_RC_IMPLEMENTATION_SPECIFIC = 0x83,
  MQTT_RC_UNSUPPORTED_VERSION = 0x84,
  MQTT_RC_CLIENT_ID_INVALID = 0x85,
  MQTT_RC_BAD_CREDENTIALS = 0x86,
  MQTT_RC_NOT_AUTHORIZED = 0x87,
  MQTT_RC_SERVER_UNAVAILABLE = 0x88,
  MQTT_RC_SERVER_BUSY = 0x89,
  MQTT_RC_BANNED = 0x8A,
  MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
  MQTT_RC_BAD_AUTH_METHOD = 0x8C,
  MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
  MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
  MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
  MQTT_RC_TOPIC_NAME_INVALID = 0x90,
  MQTT_RC_PACKET_ID_IN_USE = 0x91,
  MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
  MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
  MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
  MQTT_RC_PACKET_TOO_LARGE = 0x95,
  MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
  MQTT_RC_QUOTA_EXCEEDED = 0x97,
  MQTT_RC_ADMINISTRATIVE_ACTION = 0x98,
  MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
  MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
  MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
  MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
  MQTT_RC_SERVER_MOVED = 0x9D,
  MQTT_RC_SHARED_SUBS_NOT_SUPPORTED = 0x9E,
  MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
  MQTT_RC_MAXIMUM_CONNECT_TIME = 0xA0,
  MQTT_RC_SUB_IDS_NOT_SUPPORTED = 0xA1,
  MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2,
} mqtt_rc;

/* MQTT 3.1.1 CONNACK return codes. */
enum {
  MQTT_V3_ACCEPTED = 0,
  MQTT_V3_BAD_VERSION = 1,
  MQTT_V3_ID_REJECTED = 2,
  MQTT_V3_SERVER_UNAVAILABLE = 3,
  MQTT_V3_BAD_CREDENTIALS = 4,
  MQTT_V3_NOT_AUTHORIZED = 5,
};
/* The SUBACK return code of a refused subscription in 3.1.1. */
#define MQTT_V3_SUBACK_FAILURE 0x80

/* A reason code's name as the specification writes it ("Malformed Packet"); "Unknown" for others.
 */
const char *mqtt_reason_name(uint8_t rc);
/* The 3.1.1 CONNACK return code nearest to a 5.0 reason code. */
uint8_t mqtt_reason_v3_connack(uint8_t rc);
const char *mqtt_type_name(int type); /* "PUBLISH", ...; "?" for others */

/* Property identifiers (MQTT 5.0 section 2.2.2.2). */
enum {
  MQTT_PROP_PAYLOAD_FORMAT = 0x01,
  MQTT_PROP_MESSAGE_EXPIRY = 0x02,
  MQTT_PROP_CONTENT_TYPE = 0x03,
  MQTT_PROP_RESPONSE_TOPIC = 0x08,
  MQTT_PROP_CORRELATION_DATA = 0x09,
  MQTT_PROP_SUBSCRIPTION_ID = 0x0B,
  MQTT_PROP_SESSION_EXPIRY = 0x11,
  MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,
  MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,
  MQTT_PROP_AUTH_METHOD = 0x15,
  MQTT_PROP_AUTH_DATA = 0x16,
  MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,
  MQTT_PROP_WILL_DELAY = 0x18,
  MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,
  MQTT_PROP_RESPONSE_INFO = 0x1A,
  MQTT_PROP_SERVER_REFERENCE = 0x1C,
  MQTT_PROP_REASON_STRING = 0x1F,
  MQTT_PROP_RECEIVE_MAX = 0x21,
  MQTT_PROP_TOPIC_ALIAS_MAX = 0x22,
  MQTT_PROP_TOPIC_ALIAS = 0x23,
  MQTT_PROP_MAX_QOS = 0x24,
  MQTT_PROP_RETAIN_AVAILABLE = 0x25,
  MQTT_PROP_USER = 0x26,
  MQTT_PROP_MAX_PACKET_SIZE = 0x27,
  MQTT_PROP_WILDCARD_AVAILABLE = 0x28,
  MQTT_PROP_SUB_ID_AVAILABLE = 0x29,
  MQTT_PROP_SHARED_AVAILABLE = 0x2A,
};
/* The bit of mqtt_props.present for a property identifier (all are below 64). */
#define MQTT_HAS(props, id) (((props)->present >> (id)) & 1u)
#define MQTT_SET(props, id) ((props)->present |= (uint64_t)1 << (id))

/* Borrowed bytes: a UTF-8 string or binary data inside a packet. */
typedef struct mqtt_bytes {
  const uint8_t *p;
  uint32_t len;
} mqtt_bytes;

typedef struct mqtt_user_prop {
  mqtt_bytes key, value;
} mqtt_user_prop;

/* The properties of a packet (or of a will). A field is meaningful when its bit is in present.
 *
 * User properties and subscription identifiers may repeat:
 *  - decoding fills nuser and user_raw (the property block as received, to walk with
 *    mqtt_props_next_user), and sub_id (the first) with nsub_ids (how many);
 *  - encoding writes user[0..nuser) when user is set, then user_enc verbatim (already encoded
 *    0x26 entries, as mqtt_props_user_encode makes them: a stored message forwards its user
 *    properties this way), then every sub_ids[0..nsub_ids) (or sub_id when sub_ids is NULL and
 *    the bit is set). */
typedef struct mqtt_props {
  uint64_t present;
  uint8_t payload_format, request_problem_info, request_response_info, max_qos;
  uint8_t retain_available, wildcard_available, sub_id_available, shared_available;
  uint16_t receive_max, topic_alias_max, topic_alias, server_keep_alive;
  uint32_t message_expiry, session_expiry, will_delay, max_packet_size, sub_id;
  mqtt_bytes content_type, response_topic, correlation_data, assigned_client_id;
  mqtt_bytes auth_method, auth_data, response_info, server_reference, reason_string;
  /* repeatable */
  uint32_t nuser, nsub_ids;
  mqtt_bytes user_raw;        /* decode: the whole property block */
  const mqtt_user_prop *user; /* encode */
  mqtt_bytes user_enc;        /* encode: pre-encoded user properties */
  const uint32_t *sub_ids;    /* encode */
} mqtt_props;

/* Walks the user properties of decoded props: `size_t it = 0; while (mqtt_props_next_user(p,
 * &it, &k, &v)) ...`. Returns 1 with a pair, 0 at the end. */
int mqtt_props_next_user(const mqtt_props *p, size_t *it, mqtt_bytes *key, mqtt_bytes *value);
/* Appends the user properties of decoded props to out in their wire form, for user_enc. */
int mqtt_props_user_encode(const mqtt_props *p, pl_buf *out);

typedef struct mqtt_connect {
  uint8_t version; /* MQTT_V31, MQTT_V311 or MQTT_V5 */
  uint8_t clean_start, will, will_qos, will_retain, has_username, has_password;
  uint16_t keep_alive_s;
  mqtt_bytes client_id, will_topic, will_payload, username, password;
  mqtt_props props, will_props;
} mqtt_connect;

typedef struct mqtt_connack {
  uint8_t session_present;
  uint8_t reason; /* a 3.1.1 return code for 3.1.1, a reason code for 5.0 */
  mqtt_props props;
} mqtt_connack;

typedef struct mqtt_publish {
  uint8_t qos, retain, dup;
  uint16_t packet_id; /* QoS 1 and 2 only */
  mqtt_bytes topic;   /* may be empty in 5.0 when a topic alias is given */
  mqtt_bytes payload;
  mqtt_props props;
} mqtt_publish;

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
typedef struct mqtt_ack {
  uint16_t packet_id;
  uint8_t reason;
  mqtt_props props;
} mqtt_ack;

/* Subscription options (the byte after each topic filter of SUBSCRIBE). */
#define MQTT_SUB_QOS(o) ((o)&3u)
#define MQTT_SUB_NO_LOCAL 0x04u
#define MQTT_SUB_RETAIN_AS_PUBLISHED 0x08u
#define MQTT_SUB_RETAIN_HANDLING(o) (((o) >> 4) & 3u)

typedef struct mqtt_sub_entry {
  mqtt_bytes filter;
  uint8_t options;
} mqtt_sub_entry;

/* SUBSCRIBE and UNSUBSCRIBE. Decoding: count entries in raw, walked with mqtt_subscribe_next.
 * Encoding: entries[0..count) (options ignored for UNSUBSCRIBE). */
typedef struct mqtt_subscribe {
  uint16_t packet_id;
  mqtt_props props;
  uint32_t count;
  mqtt_bytes raw;
  const mqtt_sub_entry *entries;
} mqtt_subscribe;

/* SUBACK and UNSUBACK: one reason code per filter (UNSUBACK has none in 3.1.1). */
typedef struct mqtt_suback {
  uint16_t packet_id;
  mqtt_props props;
  mqtt_bytes codes;
} mqtt_suback;

/* DISCONNECT and AUTH (reason and properties are 5.0 only). */
typedef struct mqtt_disconnect {
  uint8_t reason;
  mqtt_props props;
} mqtt_disconnect;

typedef struct mqtt_packet {
  uint8_t type; /* mqtt_type */
  union {
    mqtt_connect connect;
    mqtt_connack connack;
    mqtt_publish publish;
    mqtt_ack ack;
    mqtt_subscribe subscribe;   /* and unsubscribe */
    mqtt_suback suback;         /* and unsuback */
    mqtt_disconnect disconnect; /* and auth */
  } u;
} mqtt_packet;

/* Walks the entries of a decoded SUBSCRIBE or UNSUBSCRIBE. Returns 1 with an entry, 0 at the end.
 */
int mqtt_subscribe_next(const mqtt_packet *p, size_t *it, mqtt_sub_entry *out);

/* Decodes one packet from buf[0..len).
 *  version          the protocol level of the connection (0 before CONNECT: then only the
 *                   fixed header and a CONNECT are understood; 5 decodes properties).
 *  max_packet_bytes the largest whole packet accepted (0: the MQTT maximum).
 * Returns 0 with *out filled and *used = the packet's size; PL_AGAIN when buf holds only part of a
 * packet, with *used = the size the whole packet will have, or 0 when the fixed header itself is
 * not complete (a reserved packet type or flag bits, or a first packet other than CONNECT, are
 * refused from the first byte, without waiting for more); PL_ELIMIT (MQTT_RC_PACKET_TOO_LARGE) when the packet is larger than allowed, with
 * *used its size; PL_EINVAL with *reason = the reason code for everything else, and
 * *used undefined. *reason is written on every error; *out only on success and points into buf. */
int mqtt_decode(const uint8_t *buf, size_t len, uint8_t version, size_t max_packet_bytes,
                mqtt_packet *out, size_t *used, uint8_t *reason);

/* Encodes p for a connection of the given protocol level (CONNECT takes its own version field),
 * appending to out. Properties are written for 5.0 only. Returns 0, PL_EINVAL for a packet that
 * cannot be encoded (a string over 65,535 bytes, a remaining length over the maximum, a QoS 3),
 * PL_ELIMIT / PL_ENOMEM from the buffer (then out is unchanged). */
int mqtt_encode(const mqtt_packet *p, uint8_t version, pl_buf *out);
/* The size mqtt_encode would produce, or 0 when it would fail with PL_EINVAL. */
size_t mqtt_encoded_size(const mqtt_packet *p, uint8_t version);

/* Topic names and filters (MQTT 3.1.1 section 4.7): a name has 1 to 65,535 bytes of UTF-8 and no
 * wildcard; a filter may hold '+' as a whole level and '#' as the whole last level. Both assume
 * the bytes were already checked as UTF-8 by the decoder. */
int mqtt_topic_name_valid(const uint8_t *s, size_t len);
int mqtt_topic_filter_valid(const uint8_t *s, size_t len);

#endif
