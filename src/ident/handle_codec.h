/* The Handle protocol codec (RFC 3652, with the handle value layout of RFC 3651): pure
 * functions over byte buffers, no I/O, fuzzed. The wire layout and every place where Plateau
 * follows deployed implementations rather than the RFC text are specified at the top of
 * handle_codec.c.
 *
 * Decoded structures borrow from the buffer they were decoded from (strings are pointer and
 * length, not NUL-terminated); they stay valid while that buffer does. Encoders append to a
 * pl_buf and leave it unchanged on failure.
 *
 * Errors: PL_AGAIN (the input ends inside a message: feed more), PL_EINVAL (malformed),
 * PL_ELIMIT (a length over its bound), PL_EUNSUPPORTED (a protocol version we do not speak,
 * compressed or encrypted messages), PL_ENOMEM.
 */
#ifndef PLATEAU_IDENT_HANDLE_CODEC_H
#define PLATEAU_IDENT_HANDLE_CODEC_H

#include "base/buf.h"

#include <stddef.h>
#include <stdint.h>

#define HDL_ENVELOPE_BYTES 20
#define HDL_HEADER_BYTES 24
#define HDL_UDP_CHUNK_BYTES 512 /* message bytes carried by one UDP packet */
#define HDL_UDP_PACKET_MAX (HDL_ENVELOPE_BYTES + HDL_UDP_CHUNK_BYTES)
#define HDL_MESSAGE_MAX (4u << 20) /* hard bound on any message we decode or reassemble */
#define HDL_HANDLE_MAX 1024        /* bytes of a handle name */
#define HDL_LIST_MAX 256           /* entries in an index or type list */
#define HDL_VALUES_MAX 4096        /* values in one response */
#define HDL_TYPE_MAX 256           /* bytes of a value type */

/* Envelope flags (first byte of MessageFlag). */
#define HDL_ENV_CP 0x8000u /* compressed */
#define HDL_ENV_EC 0x4000u /* encrypted */
#define HDL_ENV_TC 0x2000u /* truncated: one UDP chunk of a longer message */

/* Operation codes. */
enum {
  HDL_OC_RESERVED = 0,
  HDL_OC_RESOLUTION = 1,
  HDL_OC_GET_SITEINFO = 2,
  HDL_OC_CREATE_HANDLE = 100,
  HDL_OC_DELETE_HANDLE = 101,
  HDL_OC_ADD_VALUE = 102,
  HDL_OC_REMOVE_VALUE = 103,
  HDL_OC_MODIFY_VALUE = 104,
  HDL_OC_LIST_HANDLE = 105,
  HDL_OC_LIST_NA = 106,
  HDL_OC_CHALLENGE_RESPONSE = 200,
  HDL_OC_VERIFY_RESPONSE = 201,
  HDL_OC_SESSION_SETUP = 400,
  HDL_OC_SESSION_TERMINATE = 401,
};

/* Response codes. */
enum {
  HDL_RC_RESERVED = 0,
  HDL_RC_SUCCESS = 1,
  HDL_RC_ERROR = 2,
  HDL_RC_SERVER_BUSY = 3,
  HDL_RC_PROTOCOL_ERROR = 4,
  HDL_RC_OPERATION_DENIED = 5, /* operation not supported */
  HDL_RC_RECUR_LIMIT_EXCEEDED = 6,
  HDL_RC_HANDLE_NOT_FOUND = 100,
  HDL_RC_HANDLE_ALREADY_EXIST = 101,
  HDL_RC_INVALID_HANDLE = 102,
  HDL_RC_VALUE_NOT_FOUND = 200,
  HDL_RC_VALUE_ALREADY_EXIST = 201,
  HDL_RC_VALUE_INVALID = 202,
  HDL_RC_EXPIRED_SITE_INFO = 300,
  HDL_RC_SERVER_NOT_RESP = 301,
  HDL_RC_SERVICE_REFERRAL = 302,
  HDL_RC_PREFIX_REFERRAL = 303,
  HDL_RC_NOT_AUTHORIZED = 400,
  HDL_RC_ACCESS_DENIED = 401,
  HDL_RC_AUTHEN_NEEDED = 402,
  HDL_RC_AUTHEN_FAILED = 403,
  HDL_RC_INVALID_CREDENTIAL = 404,
  HDL_RC_AUTHEN_TIMEOUT = 405,
  HDL_RC_UNABLE_TO_AUTHEN = 406,
  HDL_RC_SESSION_TIMEOUT = 500,
  HDL_RC_SESSION_FAILED = 501,
};

/* OpFlag bits. */
#define HDL_OF_AT 0x80000000u  /* authoritative */
#define HDL_OF_CT 0x40000000u  /* certified */
#define HDL_OF_ENC 0x20000000u /* encrypted response wanted */
#define HDL_OF_REC 0x10000000u /* recursive resolution wanted */
#define HDL_OF_CA 0x08000000u  /* cache authentication */
#define HDL_OF_CN 0x04000000u  /* continuous (more to come) */
#define HDL_OF_KC 0x02000000u  /* keep connection */
#define HDL_OF_PO 0x01000000u  /* public values only */
#define HDL_OF_RD 0x00800000u  /* return request digest */

/* Value permissions (RFC 3651 3.1). */
#define HDL_PERM_PUBLIC_WRITE 0x01
#define HDL_PERM_PUBLIC_READ 0x02
#define HDL_PERM_ADMIN_WRITE 0x04
#define HDL_PERM_ADMIN_READ 0x08

/* Digest algorithm identifiers of the RequestDigest. */
#define HDL_DIGEST_MD5 1
#define HDL_DIGEST_SHA1 2
#define HDL_DIGEST_SHA256 3

typedef struct hdl_str {
  const uint8_t *p;
  uint32_t len;
} hdl_str;

typedef struct hdl_envelope {
  uint8_t major, minor;
  uint16_t flags;
  uint32_t session_id;
  uint32_t request_id;
  uint32_t seq;     /* UDP chunk number, from 0 */
  uint32_t msg_len; /* bytes of the whole message that follows (header, body, credential) */
} hdl_envelope;

typedef struct hdl_header {
  uint32_t opcode;
  uint32_t response_code; /* 0 in requests */
  uint32_t opflags;
  uint16_t siteinfo_serial;
  uint8_t recursion_count;
  uint32_t expiration; /* seconds since the epoch */
  uint32_t body_len;
} hdl_header;

/* A whole message: envelope, header, and the body and credential bytes (borrowed). */
typedef struct hdl_message {
  hdl_envelope env;
  hdl_header hdr;
  const uint8_t *body;       /* hdr.body_len bytes */
  const uint8_t *credential; /* cred_len bytes after the 4-byte length; NULL when empty */
  uint32_t cred_len;
  const uint8_t *signed_part; /* header and body, what a request digest covers */
  uint32_t signed_len;
} hdl_message;

/* One handle value. The references are kept encoded (refs, nrefs); iterate them with
 * hdl_ref_next. */
typedef struct hdl_value {
  uint32_t index;
  uint32_t timestamp; /* seconds since the epoch */
  uint8_t ttl_type;   /* 0: relative seconds, 1: absolute time */
  int32_t ttl;
  uint8_t perm; /* HDL_PERM_* */
  hdl_str type;
  hdl_str data;
  uint32_t nrefs;
  hdl_str refs; /* encoded: nrefs times (UTF8-String handle, u32 index) */
} hdl_value;

/* The body of a resolution request. Lists are kept encoded; see hdl_req_index/hdl_req_type. */
typedef struct hdl_resolution_req {
  hdl_str handle;
  uint32_t nindexes;
  const uint8_t *indexes; /* nindexes big-endian u32 */
  uint32_t ntypes;
  hdl_str types; /* encoded: ntypes UTF8-Strings */
} hdl_resolution_req;

/* The body of a resolution response. */
typedef struct hdl_resolution_resp {
  uint8_t digest_alg; /* 0 when there is no digest */
  hdl_str digest;
  hdl_str handle;
  uint32_t nvalues;
  hdl_str values; /* encoded values; iterate with hdl_value_next */
} hdl_resolution_resp;

/* ---- framing ---- */

/* Decodes the 20-byte envelope. PL_AGAIN when len < 20; PL_EUNSUPPORTED for a major version
 * other than 2 (any 2.x minor is accepted) or a compressed/encrypted message; PL_ELIMIT when
 * msg_len exceeds max_msg_bytes. */
int hdl_envelope_decode(const uint8_t *p, size_t len, uint32_t max_msg_bytes, hdl_envelope *out);
void hdl_envelope_encode(const hdl_envelope *env, uint8_t out[HDL_ENVELOPE_BYTES]);

/* Decodes a complete message of one stream frame: envelope then msg_len bytes. Returns the
 * number of bytes consumed (> 0), or PL_AGAIN when p holds less than a whole frame (call again
 * with more bytes: the decoder keeps no state besides what the caller buffers), or an error.
 * Used for TCP, and for a single unchunked UDP packet. */
int hdl_frame_decode(const uint8_t *p, size_t len, uint32_t max_msg_bytes, hdl_message *out);
/* Decodes header, body and credential from the message bytes (after the envelope). */
int hdl_message_decode(const hdl_envelope *env, const uint8_t *msg, size_t len, hdl_message *out);

/* ---- request and response bodies ---- */

int hdl_resolution_req_decode(const uint8_t *body, size_t len, hdl_resolution_req *out);
/* The i-th index of the list (i < nindexes). */
uint32_t hdl_req_index(const hdl_resolution_req *req, uint32_t i);
/* Iterates the type list: *pos starts at 0; returns 1 and fills *type while there are more. */
int hdl_req_type_next(const hdl_resolution_req *req, uint32_t *pos, hdl_str *type);

int hdl_resolution_resp_decode(const uint8_t *body, size_t len, int has_digest,
                               hdl_resolution_resp *out);
/* Iterates encoded values (count n in buf): *pos starts at 0. Returns 1 with *v, 0 at the
 * end, or PL_EINVAL when malformed. */
int hdl_value_next(hdl_str buf, uint32_t *pos, hdl_value *v);
/* Iterates a value's references. */
int hdl_ref_next(const hdl_value *v, uint32_t *pos, hdl_str *handle, uint32_t *index);

/* Decodes one value that fills p[0..len) exactly. */
int hdl_value_decode(const uint8_t *p, size_t len, hdl_value *out);
/* Appends the wire encoding of v. */
int hdl_value_encode(pl_buf *b, const hdl_value *v);

/* Whether v passes the request's filters: an index in the index list or a type in the type
 * list (a type ending in '.' matches it and its subtypes, "URL." matching "URL.ja"); both
 * lists empty pass everything; with only one list given, that one decides. */
int hdl_value_matches(const hdl_resolution_req *req, const hdl_value *v);
/* The same test against a type string (one of the filter types) for callers not holding a
 * request, e.g. the REST API. */
int hdl_type_matches(hdl_str filter, hdl_str type);

/* ---- encoders of whole messages (envelope included) ---- */

typedef struct hdl_reply_ctx {
  const hdl_message *req; /* the request answered (version, ids, flags, digest) */
  uint32_t response_code;
  uint32_t opflags_add; /* e.g. HDL_OF_AT */
  uint32_t expiration;
} hdl_reply_ctx;

/* A request digest of the request's header and body, as the RD flag asks: SHA-256 (id 3)
 * for protocol 2.10 and later, SHA-1 (id 2) before. Writes the id and up to 32 bytes;
 * returns the digest length. */
int hdl_request_digest(const hdl_message *req, uint8_t *alg, uint8_t digest[32]);

/* A resolution response: digest (when the request set RD), the handle, and the values
 * already encoded in values_enc (nvalues of them). */
int hdl_encode_resolution_response(pl_buf *b, const hdl_reply_ctx *c, hdl_str handle,
                                   uint32_t nvalues, hdl_str values_enc);
/* An error response: digest when RD, then the message text. */
int hdl_encode_error(pl_buf *b, const hdl_reply_ctx *c, const char *message);
/* A GET_SITEINFO response: digest when RD, then the site information (hdl_siteinfo_encode). */
int hdl_encode_siteinfo_response(pl_buf *b, const hdl_reply_ctx *c, hdl_str siteinfo);

/* A resolution request from a client (protocol 2.10). */
typedef struct hdl_request_opts {
  uint32_t request_id;
  uint32_t opflags;
  uint8_t recursion_count;
  const uint32_t *indexes;
  uint32_t nindexes;
  const char *const *types;
  uint32_t ntypes;
} hdl_request_opts;
int hdl_encode_resolution_request(pl_buf *b, hdl_str handle, const hdl_request_opts *o);
/* A GET_SITEINFO request. */
int hdl_encode_siteinfo_request(pl_buf *b, uint32_t request_id);

/* ---- site information (HS_SITE values and GET_SITEINFO) ---- */

typedef struct hdl_site_server {
  uint32_t server_id;
  uint8_t address[16]; /* IPv6, or IPv4 in the last four bytes with the rest zero */
  uint16_t tcp_port, udp_port, http_port; /* 0: not offered */
} hdl_site_server;

typedef struct hdl_siteinfo {
  uint16_t serial;
  int primary;             /* the PS bit */
  const char *description; /* attribute "desc", or NULL */
  uint32_t nservers;
  const hdl_site_server *servers;
} hdl_siteinfo;

int hdl_siteinfo_encode(pl_buf *b, const hdl_siteinfo *s);
/* Decodes the first server's address and ports (what a client needs to talk to a site). */
int hdl_siteinfo_decode_first(const uint8_t *p, size_t len, hdl_site_server *out, uint16_t *serial);

/* ---- HS_ADMIN values (RFC 3651 3.2.5) ---- */
int hdl_admin_encode(pl_buf *b, uint16_t perms, hdl_str handle, uint32_t index);
int hdl_admin_decode(hdl_str data, uint16_t *perms, hdl_str *handle, uint32_t *index);

/* ---- UDP chunks ---- */

/* Splits an encoded message (envelope + message, as the encoders produce it) into UDP packets
 * of at most HDL_UDP_PACKET_MAX bytes, appending them to out one after the other with
 * lengths in pkt_lens (up to max_packets). A message that fits one packet is copied unchanged;
 * a longer one becomes packets with sequence numbers 0, 1, ... each carrying the original
 * envelope (TC set, msg_len the whole length) and 512 message bytes (the last fewer).
 * Returns the number of packets, or PL_ELIMIT when more than max_packets are needed. */
int hdl_udp_split(const uint8_t *msg, size_t len, pl_buf *out, uint16_t *pkt_lens, int max_packets);

/* Reassembly of UDP chunks into a message: a resumable state machine fed packet by packet.
 *   empty --first packet--> collecting (request id, msg_len fixed; a bitmap of chunks seen)
 *   collecting --packet--> collecting | complete (all ceil(msg_len/512) chunks seen)
 * Packets of another request id are refused (PL_ECONFLICT) and leave the state unchanged;
 * duplicates are ignored; a chunk whose length or position disagrees with msg_len is
 * PL_EINVAL. */
typedef struct hdl_reasm {
  uint32_t request_id;
  uint32_t msg_len;
  uint32_t nchunks, nseen;
  hdl_envelope env; /* of the first packet, TC cleared */
  uint8_t *data;    /* msg_len bytes */
  uint8_t *seen;    /* nchunks flags */
  uint32_t max_msg_bytes;
} hdl_reasm;

void hdl_reasm_init(hdl_reasm *r, uint32_t max_msg_bytes);
void hdl_reasm_free(hdl_reasm *r);
/* Adds one packet. Returns 1 when the message is complete (then hdl_reasm_message decodes
 * it), 0 when more chunks are needed, or an error. */
int hdl_reasm_add(hdl_reasm *r, const uint8_t *pkt, size_t len);
int hdl_reasm_message(const hdl_reasm *r, hdl_message *out);

/* Names for logs and errors. */
const char *hdl_rc_name(uint32_t rc);

#endif
