/* Internals shared by the files of the MQTT module (server.c, server_conn.c, server_packets.c,
 * session.c, topics.c, access.c, device_api.c, device_telemetry.c, device_rpc.c, tls.c).
 * Everything here belongs to the server thread unless a comment says so.
 *
 * The objects and who owns them:
 *
 *   mqtt_msg        an application message, immutable once made, reference-counted: the
 *                   publisher's path, every queue and in-flight slot, and the retained store hold
 *                   references (one copy fanned out to many subscribers).
 *   mqtt_principal  who a connection is (anonymous, a tenant's user or token, a device), and its
 *                   namespace. Reference-counted; shared by a connection and its session.
 *   mqtt_session    MQTT session state: subscriptions, outgoing in-flight and queued messages,
 *                   incoming QoS 2 packet identifiers, the will. Outlives its connection when
 *                   persistent. Reference-counted by its connection and by pending work.
 *   mqtt_conn       one network connection: socket, buffers, TLS, keep-alive, topic aliases,
 *                   ordered acknowledgements. Freed when its socket is closed and no work refers
 *                   to it.
 *   mqtt_sub        one subscription: in the topic trie's node (or shared group) and in its
 *                   session's list.
 *
 * Namespaces. Every topic lives in a namespace: "t<tenant id>" for a tenant, "anon" for the
 * anonymous sandbox, "$sys" for the $SYS statistics. A client names topics relative to its
 * namespace and never sees another. Device API topics are rewritten inside the tenant's
 * namespace: a device's "v1/devices/me/..." is "v1/devices/<its name>/..." (and a gateway's
 * "v1/gateway/..." is "v1/devices/<its name>/gateway/...") — which is what the tenant's own
 * applications subscribe to for live device streams.
 */
#ifndef PLATEAU_MQTT_INT_H
#define PLATEAU_MQTT_INT_H

#include "base/map.h"
#include "mqtt/codec.h"
#include "mqtt/mqtt.h"
#include "store/store.h"

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <uv.h>

typedef struct mqtt_conn mqtt_conn;
typedef struct mqtt_session mqtt_session;
typedef struct mqtt_topics mqtt_topics;

#define MQTT_NS_ANON "anon"
#define MQTT_NS_SYS "$sys"
#define MQTT_NS_MAX 24
#define MQTT_CLIENT_ID_MAX 256
#define MQTT_OUT_SOFT_BYTES (1u << 20) /* past this, QoS 0 is dropped and QoS 1/2 wait in the queue */
#define MQTT_READ_BUF_BYTES 65536
#define MQTT_LEVELS_MAX 128 /* topic levels; deeper topics and filters are refused */

/* ---- messages ---- */

typedef struct mqtt_msg {
  uint32_t refs;
  uint32_t payload_len;
  uint16_t topic_len;
  uint8_t qos, retain;
  uint8_t has_format, payload_format;
  uint8_t from_device; /* a device published it: it is never delivered back to that device */
  uint16_t ctype_len, rtopic_len, corr_len;
  uint32_t user_len;  /* encoded user properties */
  int64_t expires_ms; /* monotonic ms; 0 never */
  uint64_t origin;    /* the publishing session's id (No Local), 0 for the server */
  char data[];        /* topic, payload, content type, response topic, correlation, user properties */
} mqtt_msg;

static inline const char *mqtt_msg_topic(const mqtt_msg *m) {
  return m->data;
}
static inline const uint8_t *mqtt_msg_payload(const mqtt_msg *m) {
  return (const uint8_t *)m->data + m->topic_len;
}

typedef struct mqtt_msg_spec {
  const char *topic;
  size_t topic_len;
  const void *payload;
  size_t payload_len;
  uint8_t qos, retain;
  const mqtt_props *props; /* 5.0 properties to keep (may be NULL) */
  uint64_t origin;
  uint8_t from_device;
  int64_t now_ms;
} mqtt_msg_spec;

/* A new message with one reference, or NULL when out of memory. */
mqtt_msg *mqtt__msg_new(const mqtt_msg_spec *spec);
static inline mqtt_msg *mqtt__msg_ref(mqtt_msg *m) {
  m->refs++;
  return m;
}
void mqtt__msg_unref(mqtt_msg *m);

/* ---- principals ---- */

typedef enum { MQTT_WHO_ANON = 0, MQTT_WHO_USER, MQTT_WHO_DEVICE } mqtt_who_kind;

typedef struct mqtt_principal {
  uint32_t refs;
  uint8_t kind;
  uint8_t is_gateway;
  uint8_t may_publish, may_subscribe;
  int64_t tenant_id, device_id;
  char ns[MQTT_NS_MAX];
  const char *actor; /* "device:pump-1", "token:plt_AbCd1234", "anonymous": logs and audit; in text[] */
  uint16_t name_len;
  char name[]; /* device name (devices), user or token name (users); then the actor, both NUL-ended */
} mqtt_principal;

void mqtt__principal_unref(mqtt_principal *p);
mqtt_principal *mqtt__principal_anon(void);

/* ---- subscriptions ---- */

typedef struct mqtt_sub {
  struct mqtt_sub *node_next, *node_prev; /* in its trie node's list or its share group's list */
  struct mqtt_sub *sess_next;             /* in its session's list */
  void *node;                             /* the trie node */
  void *group;                            /* the shared-subscription group, or NULL */
  mqtt_session *sess;
  uint32_t sub_id; /* 5.0 subscription identifier, 0 for none */
  uint8_t options; /* QoS, No Local, Retain As Published, Retain Handling */
  uint16_t filter_len;
  char filter[]; /* the filter as the client wrote it (with $share/...), NUL-terminated */
} mqtt_sub;

/* ---- sessions ---- */

enum { MQTT_OUT_QUEUED = 0, MQTT_OUT_PUBLISH_SENT, MQTT_OUT_PUBREL_SENT };

/* An outgoing message: waiting in a session's queue or in flight. */
typedef struct mqtt_out {
  mqtt_msg *msg; /* NULL: a tombstone in the in-flight ring */
  uint32_t seq;  /* issue number, for packet identifier reuse checks */
  uint32_t sub_id;
  uint16_t packet_id;
  uint8_t qos, retain, state;
} mqtt_out;

typedef struct mqtt_qos2_in {
  uint16_t packet_id;
  uint8_t stored; /* 0: still being stored (telemetry); 1: PUBREC may be (re)sent */
} mqtt_qos2_in;

struct mqtt_session {
  uint64_t id;
  uint32_t refs;
  mqtt_principal *who;
  mqtt_conn *conn; /* NULL while offline */
  char *key;       /* its key in the session map: namespace, principal and client id */
  uint16_t key_len;
  uint16_t client_id_off; /* the client id inside key */
  uint8_t version, dead;
  uint32_t expiry_s;       /* session expiry interval once disconnected */
  int64_t offline_since_ms; /* monotonic; 0 while connected */
  mqtt_sub *subs;
  /* in flight to the client: a ring in the order sent */
  mqtt_out *inflight;
  uint32_t inf_head, inf_count, inf_cap, inf_live;
  uint32_t next_seq;
  uint16_t next_packet_id;
  /* waiting for the client (offline, or in-flight window full) */
  mqtt_out *queue;
  uint32_t q_head, q_count, q_cap;
  /* incoming QoS 2 identifiers between PUBLISH and PUBREL */
  mqtt_qos2_in *qos2;
  uint32_t qos2_count, qos2_cap;
  /* the will of its last connection, when that ended without DISCONNECT and has a delay */
  mqtt_msg *will;
  int64_t will_due_ms;
  /* matching scratch: one delivery per session per message */
  uint32_t match_seq, match_index;
  /* gateways: sub-devices connected through this session */
  struct mqtt_subdev *subdevs;
  uint32_t nsubdevs, subdevs_cap;
};

typedef struct mqtt_subdev {
  int64_t device_id;
  char *name;
} mqtt_subdev;

/* ---- connections ---- */

enum { MQTT_CONN_NEW = 0, MQTT_CONN_AUTH, MQTT_CONN_ACTIVE, MQTT_CONN_CLOSING, MQTT_CONN_CLOSED };

/* A QoS 1 or 2 PUBLISH waiting for its PUBACK or PUBREC, which must go out in the order the
 * PUBLISH packets came in. Owned by the connection's list; when the connection goes first, by
 * the work that completes it (conn is then NULL). */
typedef struct mqtt_ack_wait {
  struct mqtt_ack_wait *next;
  mqtt_conn *conn;
  uint16_t packet_id;
  uint8_t type; /* MQTT_PUBACK or MQTT_PUBREC */
  uint8_t done, reason;
} mqtt_ack_wait;

struct mqtt_conn {
  mqtt_server *srv;
  mqtt_conn *prev, *next;  /* every connection */
  mqtt_conn *dirty_next;   /* connections with output to flush, or waiting to be freed */
  mqtt_session *sess;
  mqtt_principal *who;
  void *tls;               /* gnutls_session_t, or NULL for plain TCP */
  uint64_t id;
  int fd;
  uint32_t refs;           /* the handle + pending work */
  uint8_t state, version, dirty, poll_events; /* poll_events: 1 read, 2 write */
  uint8_t read_paused;     /* MQTT_PAUSE_* bits */
  uint8_t problem_info;    /* 5.0 Request Problem Information (default 1) */
  uint8_t clean_disconnect, tls_ready, listener, counted;
  uint16_t keepalive_s;
  uint16_t client_receive_max;
  uint32_t client_max_packet; /* 0: no limit beyond ours */
  uint32_t pending_in;        /* incoming QoS 1/2 not yet completed (Receive Maximum) */
  uint32_t rate_window_s, rate_count;
  int64_t last_rx_ms, opened_ms, idle_since_ms;
  uint8_t *in;   /* bytes of an incomplete packet (or saved while reading is paused) */
  uint32_t in_len, in_need; /* in_need: the whole packet's size when known, else 0 */
  pl_buf out;    /* bytes to send; out_off of them are sent */
  uint32_t out_off;
  char **aliases; /* incoming topic aliases, [1..topic_alias_max] */
  mqtt_ack_wait *ack_head, *ack_tail;
  mqtt_msg *will; /* from CONNECT, until DISCONNECT or close */
  uint32_t will_delay_s;
  uint8_t addr[16]; /* peer, IPv4 as IPv4-mapped IPv6 */
  uint16_t port;
};

enum { MQTT_PAUSE_AUTH = 1, MQTT_PAUSE_INGEST = 2, MQTT_PAUSE_INFLIGHT = 4 };

/* ---- server ---- */

typedef struct mqtt_stats {
  uint64_t bytes_received, bytes_sent;
  uint64_t packets_received, packets_sent;
  uint64_t publish_received, publish_sent, publish_dropped;
  uint64_t telemetry_stored, telemetry_rejected;
  uint64_t connections_total, auth_failures, protocol_errors;
} mqtt_stats;

/* Device connection state, read by other threads under devices_lock (mqtt_device_status_get). */
typedef struct mqtt_device_state {
  int64_t tenant_id, device_id;
  mqtt_session *sess;     /* direct connection, or NULL */
  mqtt_session *gateway;  /* gateway session it speaks through, or NULL */
  int64_t connected_ms, last_seen_ms, persisted_ms;
  uint8_t touch_queued;
  char *attrs_json;       /* the attributes last known (for shared attribute diffs) */
  /* Copies for other threads (sessions belong to the loop), allocated to size: one entry per
   * device that connected since the server started. */
  char *name;
  char *gateway_name;     /* while it speaks through a gateway */
  uint8_t addr[16];       /* its connection's peer, IPv4-mapped */
  uint8_t protocol;
} mqtt_device_state;

typedef struct mqtt_rpc mqtt_rpc;
typedef struct mqtt_cmd mqtt_cmd;
typedef struct mqtt_ingest mqtt_ingest;

struct mqtt_server {
  mqtt_deps deps;
  const pl_config *cfg;
  uv_loop_t loop;
  uv_thread_t thread;
  uv_async_t wake;   /* other threads' commands and the stop request */
  uv_check_t flush;  /* flushes connections with output after each poll */
  uv_idle_t kick;    /* keeps the poll from blocking while output waits */
  uv_timer_t tick;   /* once a second: keep-alive, expiry, wills, RPC deadlines, last-seen */
  uv_timer_t sys_timer;
  uv_poll_t listen_poll[2]; /* plain, TLS */
  int epfd;                 /* the connections' epoll set */
  uv_poll_t ep_poll;        /* watches epfd */
  mqtt_conn *graveyard;     /* closed, unreferenced: freed in the check phase */
  int listen_fd[2], listen_port[2];
  int started, stopped;
  int stopping; /* under cmd_lock: 1 asked, 2 seen by the loop */
  int closing;  /* loop thread: shutting down */
  uint64_t next_conn_id, next_session_id;
  int64_t start_ms;
  mqtt_conn *conns;
  uint32_t nconns;
  mqtt_conn *dirty;
  pl_map *sessions; /* key -> mqtt_session */
  mqtt_topics *topics;
  mqtt_principal *anon;
  uint8_t rbuf[MQTT_READ_BUF_BYTES];
  pl_buf scratch;   /* encoding scratch (TLS plaintext) */
  pl_buf topic_buf; /* internal topics made by access.c */
  uint32_t match_seq;
  mqtt_stats stats;
  pl_map *tenants;  /* tenant id -> mqtt_tenant */
  /* device states: loop thread writes under the lock; other threads read under it */
  pthread_mutex_t devices_lock;
  pl_map *devices;  /* (tenant id, device id) -> mqtt_device_state */
  /* commands from other threads */
  pthread_mutex_t cmd_lock;
  mqtt_cmd *cmd_head, *cmd_tail;
  int rpc_waiting;
  /* RPC calls sent and waiting for the device (loop thread) */
  mqtt_rpc *rpc_pending;
  uint32_t next_rpc_id;
  /* telemetry ingest */
  mqtt_ingest *ingest;
  /* TLS credentials */
  void *tls_creds; /* gnutls_certificate_credentials_t */
  void *tls_prio;  /* gnutls_priority_t */
  const uint8_t *tls_in; /* ciphertext being fed to GnuTLS (its pull function reads it) */
  size_t tls_in_len;
};

typedef struct mqtt_tenant {
  int64_t id;
  uint32_t connections;
  uint32_t queued;
  uint32_t rate_window_s, rate_count;
} mqtt_tenant;

/* ---- server.c ---- */
int64_t mqtt__now_ms(void); /* monotonic */
mqtt_tenant *mqtt__tenant(mqtt_server *s, int64_t tenant_id);

/* ---- server_conn.c ---- */
/* Appends raw bytes to the connection's output (through TLS when it has it). */
int mqtt__conn_send(mqtt_conn *c, const void *data, size_t len);
/* Encodes and sends a packet; PL_ELIMIT when it exceeds the client's maximum packet size. */
int mqtt__conn_send_packet(mqtt_conn *c, const mqtt_packet *p);
/* Sends DISCONNECT with reason (5.0) and closes; for 3.1.x it only closes. */
void mqtt__conn_disconnect(mqtt_conn *c, uint8_t reason, const char *why);
/* Closes without a DISCONNECT (protocol errors in 3.1.1, network errors). */
void mqtt__conn_close(mqtt_conn *c, const char *why);
int mqtt__conn_out_full(const mqtt_conn *c);
void mqtt__conn_pause(mqtt_conn *c, uint8_t why);
void mqtt__conn_ref(mqtt_conn *c);
void mqtt__conn_unref(mqtt_conn *c);
void mqtt__conn_resume(mqtt_conn *c, uint8_t why);
/* Queues an ordered acknowledgement; returns it (NULL when out of memory). */
mqtt_ack_wait *mqtt__ack_wait_add(mqtt_conn *c, uint8_t type, uint16_t packet_id);
/* Marks it done with reason and sends every acknowledgement that is now first in line. Frees it
 * when its connection is gone. */
void mqtt__ack_wait_done(mqtt_ack_wait *a, uint8_t reason);
void mqtt__remote_str(const mqtt_conn *c, char *out, size_t outsz);
void mqtt__addr_str(const uint8_t addr[16], char *out, size_t outsz);
/* Closes the socket at once (what is queued gets one try at being written) and detaches the
 * session, publishing the will unless clean; the struct is freed once no work refers to it. */
void mqtt__conn_begin_close(mqtt_conn *c, const char *why, int clean);
/* Frees a closed connection that nothing refers to any more. */
void mqtt__conn_free(mqtt_conn *c);
/* Sends a packet of only a packet id and a reason code (PUBACK, PUBREC, PUBREL, PUBCOMP). */
void mqtt__conn_send_simple(mqtt_conn *c, uint8_t type, uint16_t packet_id, uint8_t reason);
/* Counts a protocol error and disconnects with reason (5.0) or closes (3.1.x). */
void mqtt__conn_protocol_error(mqtt_conn *c, uint8_t reason, const char *why);
/* Brings the connection's epoll interest (read, write) in line with its state. */
void mqtt__conn_poll_update(mqtt_conn *c);
/* Writes the output of every connection that has some (once per loop iteration). */
void mqtt__conns_flush_dirty(mqtt_server *s);
/* Frees the closed connections nothing refers to any more. */
void mqtt__conns_bury(mqtt_server *s);
/* Loop callbacks: the check phase (telemetry batches, output, freeing) and the epoll set's
 * readiness. */
void mqtt__conns_on_check(uv_check_t *h);
void mqtt__conns_on_epoll(uv_poll_t *h, int status, int events);

/* ---- server_packets.c ---- */
/* Handles one decoded packet of an open connection. */
void mqtt__handle_packet(mqtt_conn *c, mqtt_packet *p);
/* Answers CONNECT with a refusal and closes. */
void mqtt__connect_refuse(mqtt_conn *c, uint8_t reason, const char *why);
/* Publishes msg in ns: retained store and delivery to the matching subscriptions. Returns the
 * number of subscriptions it went to. */
int mqtt__route(mqtt_server *s, const char *ns, mqtt_msg *m);

/* ---- session.c ---- */
mqtt_session *mqtt__session_find(mqtt_server *s, const char *key, size_t len);
mqtt_session *mqtt__session_new(mqtt_server *s, const char *key, size_t len, size_t client_id_off,
                                mqtt_principal *who);
void mqtt__session_ref(mqtt_session *ss);
void mqtt__session_unref(mqtt_session *ss);
/* Ends a session: subscriptions, queues and the map entry go; the struct lives while referenced. */
void mqtt__session_end(mqtt_server *s, mqtt_session *ss);
/* Delivers a message to a session: sent now, queued, or dropped by the limits. */
void mqtt__deliver(mqtt_server *s, mqtt_session *ss, mqtt_msg *m, uint8_t qos, uint8_t retain, uint32_t sub_id);
/* Sends what the in-flight window and the connection's buffer allow from the queue. */
void mqtt__session_pump(mqtt_server *s, mqtt_session *ss);
/* On (re)connection: resends in-flight messages (DUP) and PUBRELs, then pumps. */
void mqtt__session_resume(mqtt_server *s, mqtt_session *ss);
/* Client acknowledgements of outgoing messages. Return 0, or MQTT_RC_PACKET_ID_NOT_FOUND. */
int mqtt__session_puback(mqtt_server *s, mqtt_session *ss, uint16_t packet_id);
int mqtt__session_pubrec(mqtt_server *s, mqtt_session *ss, uint16_t packet_id, uint8_t reason);
int mqtt__session_pubcomp(mqtt_server *s, mqtt_session *ss, uint16_t packet_id);
/* Incoming QoS 2 identifiers. */
mqtt_qos2_in *mqtt__qos2_find(mqtt_session *ss, uint16_t packet_id);
int mqtt__qos2_add(mqtt_session *ss, uint16_t packet_id, int stored);
int mqtt__qos2_remove(mqtt_session *ss, uint16_t packet_id);
/* Adds or replaces the subscription of ss to filter (client text). *existed tells which. */
int mqtt__session_subscribe(mqtt_server *s, mqtt_session *ss, const char *ns, const char *filter, size_t flen,
                            const char *internal, size_t ilen, const char *group, size_t glen, uint8_t options,
                            uint32_t sub_id, mqtt_sub **out, int *existed);
/* 0 when removed, PL_ENOTFOUND when there was no such subscription. */
int mqtt__session_unsubscribe(mqtt_server *s, mqtt_session *ss, const char *filter, size_t flen);
/* The subscription of ss whose (client) filter matches topic (client view), or NULL. */
mqtt_sub *mqtt__session_sub_for(mqtt_session *ss, const char *topic, size_t len);
/* Expires offline sessions and publishes due wills (once a second). */
void mqtt__sessions_tick(mqtt_server *s, int64_t now_ms);
/* Delivers the will now (routing it as its principal would publish it) and drops it. */
void mqtt__will_publish(mqtt_server *s, mqtt_principal *who, mqtt_msg *will);
/* Whether a filter (client text, no $share) matches a topic name. */
int mqtt__filter_matches(const char *filter, size_t flen, const char *topic, size_t tlen);

/* ---- topics.c ---- */
mqtt_topics *mqtt__topics_new(void);
void mqtt__topics_free(mqtt_topics *t);
/* Inserts sub (already filled, sub->filter the client text) under the internal filter in ns,
 * in the shared group when group is given. */
int mqtt__topics_add(mqtt_topics *t, const char *ns, const char *filter, size_t flen, const char *group, size_t glen,
                     mqtt_sub *sub);
void mqtt__topics_remove(mqtt_topics *t, mqtt_sub *sub);
/* Calls cb for every subscription matching topic in ns; of each shared group, one. */
void mqtt__topics_match(mqtt_topics *t, const char *ns, const char *topic, size_t len,
                        void (*cb)(void *ctx, mqtt_sub *sub), void *ctx);
/* Stores (a message with payload) or clears (empty payload) the retained message of topic. */
int mqtt__topics_retain(mqtt_topics *t, const char *ns, const char *topic, size_t len, mqtt_msg *m);
/* Calls cb for each retained message matching the internal filter in ns. */
void mqtt__topics_retained(mqtt_topics *t, const char *ns, const char *filter, size_t flen,
                           void (*cb)(void *ctx, mqtt_msg *m), void *ctx);
size_t mqtt__topics_retained_count(const mqtt_topics *t);
size_t mqtt__topics_sub_count(const mqtt_topics *t);

/* ---- access.c: who may do what, and where topics live ---- */

typedef enum {
  MQTT_API_NONE = 0, /* a plain broker message */
  MQTT_API_TELEMETRY,
  MQTT_API_ATTRIBUTES,
  MQTT_API_ATTR_REQUEST,
  MQTT_API_RPC_REQUEST,  /* client-side RPC */
  MQTT_API_RPC_RESPONSE, /* answer to a server-side RPC */
  MQTT_API_GW_CONNECT,
  MQTT_API_GW_DISCONNECT,
  MQTT_API_GW_TELEMETRY,
  MQTT_API_GW_ATTRIBUTES,
  MQTT_API_GW_ATTR_REQUEST,
  MQTT_API_GW_RPC,
} mqtt_api;

typedef struct mqtt_pub_target {
  const char *ns;
  char *topic; /* internal topic (in the server's scratch; valid until the next access call) */
  size_t topic_len;
  mqtt_api api;
  const char *request_id; /* the {id} level of request/response topics, in topic */
  size_t request_id_len;
  int route; /* 1: also delivered to subscribers */
} mqtt_pub_target;

/* Maps a PUBLISH topic of who to its namespace, internal topic and device API role. Returns 0,
 * or a reason code: MQTT_RC_NOT_AUTHORIZED, MQTT_RC_TOPIC_NAME_INVALID. */
int mqtt__access_publish(mqtt_server *s, const mqtt_principal *who, const char *topic, size_t len,
                         mqtt_pub_target *out);
/* Maps a subscription filter (after $share/group/ is taken off): 0 with ns and the internal
 * filter in buf, or MQTT_RC_NOT_AUTHORIZED / MQTT_RC_TOPIC_FILTER_INVALID. */
int mqtt__access_subscribe(mqtt_server *s, const mqtt_principal *who, const char *filter, size_t len, int shared,
                           const char **ns, pl_buf *buf);
/* The topic a session's client sees for an internal topic (device rewriting), into buf. */
const char *mqtt__client_topic(const mqtt_principal *who, const char *topic, size_t len, size_t *out_len,
                               pl_buf *buf);

/* Authentication runs on a worker: credentials in, principal (or reason code) out. */
typedef struct mqtt_auth_req {
  uv_work_t work;
  mqtt_server *srv;
  mqtt_conn *conn;
  void (*done)(struct mqtt_auth_req *req);
  char *username, *password; /* copies, wiped after use */
  size_t username_len, password_len;
  int has_username, has_password;
  char cert_tenant[64], cert_device[128];
  int has_cert;
  /* result */
  uint8_t reason;
  mqtt_principal *who;
  char *attrs_json; /* the device's attributes at connect */
  char why[160];
} mqtt_auth_req;

/* Starts authentication of req (srv, conn, done and the credentials filled in); req->done runs
 * on the loop thread, at once for anonymous clients and refusals that need no lookup. */
void mqtt__auth_start(mqtt_server *s, mqtt_auth_req *req);
void mqtt__auth_req_free(mqtt_auth_req *req);

/* ---- device_api.c, device_telemetry.c, device_rpc.c ---- */
#define MQTT_JSON_DEPTH_MAX 32 /* nesting of a device API payload */

/* The key of the device map (s->devices). */
typedef struct dev_key {
  int64_t tenant_id, device_id;
} dev_key;

/* Devices whose last_seen is due to be written. */
typedef struct touch_list {
  dev_key *keys;
  int64_t *when_ms;
  size_t n, cap;
  int running;
} touch_list;

/* The telemetry batches (device_telemetry.c) and the last-seen list (device_api.c). */
struct mqtt_ingest {
  struct ingest_batch *open;
  struct ingest_batch *head, *tail; /* submitted, in order */
  int inflight;
  mqtt_conn **paused;
  size_t npaused, paused_cap;
  touch_list touch;
};

/* A sub-device a gateway speaks for, as resolved by a worker. */
typedef struct gw_dev {
  int64_t id;
  char name[128];
  int created;
} gw_dev;

/* The state of a device; created when create is set and it is unknown (NULL when out of memory
 * or, without create, unknown). Loop thread. */
mqtt_device_state *mqtt__device_state(mqtt_server *s, int64_t tenant_id, int64_t device_id, int create);
/* The device's name, "" when not known yet. */
const char *mqtt__device_name(const mqtt_device_state *st);
/* A sub-device now speaks through, or no longer speaks through, gateway session gw. */
void mqtt__subdev_online(mqtt_server *s, mqtt_session *gw, int64_t device_id, const char *name, const char *attrs);
void mqtt__subdev_offline(mqtt_server *s, mqtt_session *gw, const char *name);
/* Send to a device session (its client sees v1/devices/me/<rest>) or to a gateway session
 * (v1/gateway/<rest>) if it subscribed to the topic: 1 when sent or queued, 0 when not. The
 * payload is copied; v is borrowed. */
int mqtt__send_to_device(mqtt_server *s, mqtt_session *ss, const char *rest, const void *payload, size_t len);
int mqtt__send_json_to_device(mqtt_server *s, mqtt_session *ss, const char *rest, json_t *v);
int mqtt__send_json_to_gateway(mqtt_server *s, mqtt_session *gw, const char *rest, json_t *v);
/* The shared attributes of an attributes object: all but "client" (a new reference). */
json_t *mqtt__attrs_shared(json_t *attrs);
/* The device `name` of the gateway's tenant, created when unknown (worker thread; see
 * device_api.c). */
int mqtt__subdev_resolve(mqtt_server *s, store *db, const mqtt_principal *gw, const char *name, const char *type,
                         gw_dev *out, char **attrs, pl_err *err);
/* The reason code for an error of the device API. */
uint8_t mqtt__api_reason(int rc);
/* Completes a device API publish that could not be done: a negative acknowledgement in 5.0, a
 * closed connection otherwise. */
void mqtt__api_refuse(mqtt_session *ss, uint64_t conn_id, mqtt_ack_wait *ack, uint8_t version, uint8_t reason,
                      const char *why);
/* Adds a telemetry publish to the open batch (device_telemetry.c); gateway: v1/gateway/telemetry. */
void mqtt__ingest_add(mqtt_server *s, mqtt_conn *c, mqtt_session *ss, mqtt_msg *m, mqtt_ack_wait *ack, uint8_t qos,
                      uint16_t packet_id, int gateway);
/* An answer from the device: completes the pending call with this id, if any (device_rpc.c). */
void mqtt__rpc_answer(mqtt_server *s, int64_t tenant_id, int64_t device_id, const char *id, size_t idlen,
                      const void *data, size_t len);
/* Completes the RPC calls whose deadline has passed (device_rpc.c). */
void mqtt__rpc_expire(mqtt_server *s, int64_t now_ms);
int mqtt__ingest_init(mqtt_server *s);
void mqtt__ingest_free(mqtt_server *s);
/* Hands the open telemetry batch to a worker if there is room (after each I/O phase). */
void mqtt__ingest_flush(mqtt_server *s);
/* Handles a device API publish. ack is the ordered acknowledgement to complete (NULL for QoS 0),
 * msg the message (borrowed; referenced when kept). */
void mqtt__api_publish(mqtt_server *s, mqtt_conn *c, mqtt_session *ss, const mqtt_pub_target *t, mqtt_msg *msg,
                       mqtt_ack_wait *ack, uint8_t qos, uint16_t packet_id);
/* Device state on connect and disconnect of a device session. */
void mqtt__device_online(mqtt_server *s, mqtt_session *ss, const char *attrs_json);
void mqtt__device_offline(mqtt_server *s, mqtt_session *ss);
void mqtt__device_seen(mqtt_server *s, const mqtt_principal *who);
/* Commands from other threads, run on the loop thread. */
void mqtt__commands_run(mqtt_server *s);
void mqtt__commands_fail_all(mqtt_server *s);
/* Once a second: RPC deadlines, last-seen persistence. */
void mqtt__api_tick(mqtt_server *s, int64_t now_ms);
void mqtt__api_free(mqtt_server *s);

/* ---- tls.c ---- */
int mqtt__tls_init(mqtt_server *s, pl_err *err);
void mqtt__tls_free(mqtt_server *s);
int mqtt__tls_conn_init(mqtt_conn *c);
void mqtt__tls_conn_free(mqtt_conn *c);
/* Feeds received ciphertext; decrypted bytes go to mqtt__conn_feed. Returns 0 or a negative code
 * (the connection is then to be closed). */
int mqtt__tls_input(mqtt_conn *c, const uint8_t *data, size_t len);
int mqtt__tls_output(mqtt_conn *c, const void *data, size_t len);
/* The verified client certificate's subject O and CN; 0 when there is one. */
int mqtt__tls_peer_identity(mqtt_conn *c, char *org, size_t orgsz, char *cn, size_t cnsz);
/* server_conn.c, for TLS: */
/* Appends ciphertext to the connection's output (used by TLS's push function). */
int mqtt__conn_out_append(mqtt_conn *c, const void *data, size_t len);
/* Decodes and handles MQTT bytes (plaintext) of a connection. feed takes data that follows
 * nothing saved; input first joins what an incomplete packet left in `in` (TLS uses it). */
void mqtt__conn_feed(mqtt_conn *c, const uint8_t *data, size_t len);
void mqtt__conn_input(mqtt_conn *c, const uint8_t *data, size_t len);

#endif
