/* The Handle protocol codec: message envelope, header, body and credential (RFC 3652), handle
 * values (RFC 3651), site information, request digests and UDP chunking. Pure: bytes in, a
 * value or an error out; nothing here reads a socket or a clock.
 *
 * All integers are big-endian (network order). A UTF8-String is a 4-byte length then that
 * many bytes, no terminator.
 *
 * Message on the wire:
 *   Envelope (20 bytes)
 *     0  MajorVersion   u8   2 (any 2.x minor accepted; we send 2.10)
 *     1  MinorVersion   u8
 *     2  MessageFlag    u16  CP 0x8000 compressed, EC 0x4000 encrypted, TC 0x2000 truncated
 *     4  SessionId      u32
 *     8  RequestId      u32
 *     12 SequenceNumber u32  UDP chunk number (0 for a whole message)
 *     16 MessageLength  u32  bytes of header + body + credential
 *   Header (24 bytes)
 *     0  OpCode u32, 4 ResponseCode u32 (0 in requests), 8 OpFlag u32,
 *     12 SiteInfoSerialNumber u16, 14 RecursionCount u8, 15 reserved u8,
 *     16 ExpirationTime u32 (seconds since the epoch), 20 BodyLength u32
 *   Body (BodyLength bytes), then the Credential: u32 length, then that many bytes (0: none).
 *
 * Bodies used here:
 *   resolution request   Handle (UTF8-String), IndexList (u32 n, n × u32),
 *                        TypeList (u32 n, n × UTF8-String)
 *   resolution response  [RequestDigest], Handle, ValueList (u32 n, n × HandleValue)
 *   GET_SITEINFO resp.   [RequestDigest], SiteInfo
 *   error response       [RequestDigest], ErrorMessage (UTF8-String)
 *   RequestDigest        DigestAlgorithm u8 (1 MD5, 2 SHA-1, 3 SHA-256), then 16/20/32 bytes:
 *                        the digest of the request's header and body. Present when the
 *                        request set the RD OpFlag.
 *
 * HandleValue:
 *   Index u32, Timestamp u32, TTLType u8, TTL u32 (signed), Permission u8,
 *   Type UTF8-String, Data (u32 length + bytes), References (u32 n, n × (Handle UTF8-String,
 *   Index u32)).
 *
 * SiteInfo (also the data of HS_SITE values):
 *   Version u16 (1), ProtocolVersion u8 major + u8 minor, SerialNumber u16,
 *   PrimaryMask u8 (0x80 multi-primary, 0x40 primary), HashOption u8, HashFilter UTF8-String,
 *   Attributes (u32 n, n × (name, value) UTF8-Strings), NumOfServers u32, then per server:
 *   ServerId u32, Address 16 bytes (IPv4 in the last 4, the rest zero), PublicKey (u32 length +
 *   bytes), Interfaces (u32 n, n × (ServiceType u8: 1 admin, 2 resolution, 3 both;
 *   TransmissionProtocol u8: 0 UDP, 1 TCP, 2 HTTP, 3 HTTPS; Port u32)).
 *
 * HS_ADMIN data: AdminPermission u16, then the admin handle (UTF8-String) and its index u32.
 *
 * Where Plateau follows deployed implementations (the Handle.net server and clients) rather
 * than the RFC text, deliberately:
 *   1. Value timestamps are 4 bytes (seconds), not the 8 bytes RFC 3651 describes; every
 *      deployed 2.x implementation puts 4 on the wire and would misparse 8.
 *   2. Any 2.x minor version is accepted; replies carry the request's version (so an old
 *      client gets the framing it expects); our own requests say 2.10.
 *   3. MessageFlag: only the top three bits are read; newer implementations put other
 *      information in the low byte, which we ignore and send as zero.
 *   4. UDP chunking: a message over 512 bytes travels as packets each carrying the whole
 *      message's envelope with TC set, SequenceNumber = chunk number, MessageLength = the
 *      whole message's length, and message bytes [512 × seq, 512 × seq + 512). Reassembly puts
 *      chunks at those offsets.
 *   5. Request digest: SHA-256 (id 3) from 2.10 on, SHA-1 (id 2) before, as deployed servers
 *      answer; the RFC only names MD5 and SHA-1.
 *   6. The credential section is parsed for its length and skipped: Plateau answers
 *      anonymous resolution only and never trusts a credential it has not verified.
 */
#include "ident/handle_codec.h"

#include "base/err.h"

#include <gnutls/crypto.h>
#include <stdlib.h>
#include <string.h>

/* ---- big-endian helpers over bounded buffers ---- */

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint16_t rd16(const uint8_t *p) {
  return (uint16_t)(p[0] << 8 | p[1]);
}
static void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
static void wr16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

/* A cursor: every read checks the length and fails with PL_EINVAL past the end. */
typedef struct cur {
  const uint8_t *p;
  size_t len, pos;
} cur;

static int c_u32(cur *c, uint32_t *v) {
  if (c->len - c->pos < 4)
    return PL_EINVAL;
  *v = rd32(c->p + c->pos);
  c->pos += 4;
  return 0;
}
static int c_u16(cur *c, uint16_t *v) {
  if (c->len - c->pos < 2)
    return PL_EINVAL;
  *v = rd16(c->p + c->pos);
  c->pos += 2;
  return 0;
}
static int c_u8(cur *c, uint8_t *v) {
  if (c->len - c->pos < 1)
    return PL_EINVAL;
  *v = c->p[c->pos++];
  return 0;
}
static int c_bytes(cur *c, size_t n, hdl_str *out) {
  if (c->len - c->pos < n)
    return PL_EINVAL;
  out->p = c->p + c->pos;
  out->len = (uint32_t)n;
  c->pos += n;
  return 0;
}
static int c_str(cur *c, uint32_t max, hdl_str *out) {
  uint32_t n;
  int rc;
  if ((rc = c_u32(c, &n)) < 0)
    return rc;
  if (n > max)
    return PL_ELIMIT;
  return c_bytes(c, n, out);
}

static int put32(pl_buf *b, uint32_t v) {
  return pl_buf_put_u32be(b, v);
}
static int put_str(pl_buf *b, const void *p, uint32_t n) {
  int rc;
  if ((rc = put32(b, n)) < 0)
    return rc;
  return pl_buf_append(b, p, n);
}

/* ---- framing ---- */

int hdl_envelope_decode(const uint8_t *p, size_t len, uint32_t max_msg_bytes, hdl_envelope *out) {
  if (len < HDL_ENVELOPE_BYTES)
    return PL_AGAIN;
  hdl_envelope e;
  e.major = p[0];
  e.minor = p[1];
  e.flags = rd16(p + 2) & (HDL_ENV_CP | HDL_ENV_EC | HDL_ENV_TC);
  e.session_id = rd32(p + 4);
  e.request_id = rd32(p + 8);
  e.seq = rd32(p + 12);
  e.msg_len = rd32(p + 16);
  if (e.major != 2)
    return PL_EUNSUPPORTED;
  if (e.flags & (HDL_ENV_CP | HDL_ENV_EC))
    return PL_EUNSUPPORTED;
  if (e.msg_len > max_msg_bytes || e.msg_len > HDL_MESSAGE_MAX)
    return PL_ELIMIT;
  *out = e;
  return 0;
}

void hdl_envelope_encode(const hdl_envelope *e, uint8_t out[HDL_ENVELOPE_BYTES]) {
  out[0] = e->major;
  out[1] = e->minor;
  wr16(out + 2, e->flags & (HDL_ENV_CP | HDL_ENV_EC | HDL_ENV_TC));
  wr32(out + 4, e->session_id);
  wr32(out + 8, e->request_id);
  wr32(out + 12, e->seq);
  wr32(out + 16, e->msg_len);
}

int hdl_message_decode(const hdl_envelope *env, const uint8_t *msg, size_t len, hdl_message *out) {
  if (len < HDL_HEADER_BYTES)
    return PL_EINVAL;
  hdl_message m;
  memset(&m, 0, sizeof m);
  m.env = *env;
  m.hdr.opcode = rd32(msg);
  m.hdr.response_code = rd32(msg + 4);
  m.hdr.opflags = rd32(msg + 8);
  m.hdr.siteinfo_serial = rd16(msg + 12);
  m.hdr.recursion_count = msg[14];
  m.hdr.expiration = rd32(msg + 16);
  m.hdr.body_len = rd32(msg + 20);
  if (m.hdr.body_len > len - HDL_HEADER_BYTES)
    return PL_EINVAL;
  m.body = msg + HDL_HEADER_BYTES;
  m.signed_part = msg;
  m.signed_len = HDL_HEADER_BYTES + m.hdr.body_len;
  size_t rest = len - m.signed_len;
  /* The credential section: absent altogether is tolerated (some clients stop after the
   * body); otherwise a length that must fit exactly. */
  if (rest >= 4) {
    uint32_t cl = rd32(msg + m.signed_len);
    if (cl > rest - 4)
      return PL_EINVAL;
    if (cl) {
      m.credential = msg + m.signed_len + 4;
      m.cred_len = cl;
    }
  } else if (rest != 0) {
    return PL_EINVAL;
  }
  *out = m;
  return 0;
}

int hdl_frame_decode(const uint8_t *p, size_t len, uint32_t max_msg_bytes, hdl_message *out) {
  hdl_envelope env;
  int rc = hdl_envelope_decode(p, len, max_msg_bytes, &env);
  if (rc < 0)
    return rc;
  if (len - HDL_ENVELOPE_BYTES < env.msg_len)
    return PL_AGAIN;
  if (env.flags & HDL_ENV_TC)
    return PL_EINVAL; /* a chunk is not a frame */
  if ((rc = hdl_message_decode(&env, p + HDL_ENVELOPE_BYTES, env.msg_len, out)) < 0)
    return rc;
  return (int)(HDL_ENVELOPE_BYTES + env.msg_len);
}

/* ---- bodies ---- */

int hdl_resolution_req_decode(const uint8_t *body, size_t len, hdl_resolution_req *out) {
  cur c = {body, len, 0};
  hdl_resolution_req r;
  memset(&r, 0, sizeof r);
  int rc;
  if ((rc = c_str(&c, HDL_HANDLE_MAX, &r.handle)) < 0)
    return rc;
  if (r.handle.len == 0)
    return PL_EINVAL;
  if ((rc = c_u32(&c, &r.nindexes)) < 0)
    return rc;
  if (r.nindexes > HDL_LIST_MAX)
    return PL_ELIMIT;
  hdl_str idx;
  if ((rc = c_bytes(&c, (size_t)r.nindexes * 4, &idx)) < 0)
    return rc;
  r.indexes = idx.p;
  if ((rc = c_u32(&c, &r.ntypes)) < 0)
    return rc;
  if (r.ntypes > HDL_LIST_MAX)
    return PL_ELIMIT;
  size_t types_start = c.pos;
  for (uint32_t i = 0; i < r.ntypes; i++) {
    hdl_str t;
    if ((rc = c_str(&c, HDL_TYPE_MAX, &t)) < 0)
      return rc;
  }
  r.types.p = body + types_start;
  r.types.len = (uint32_t)(c.pos - types_start);
  /* Trailing bytes are tolerated: newer clients may append fields we do not know. */
  *out = r;
  return 0;
}

uint32_t hdl_req_index(const hdl_resolution_req *req, uint32_t i) {
  return rd32(req->indexes + 4 * (size_t)i);
}

int hdl_req_type_next(const hdl_resolution_req *req, uint32_t *pos, hdl_str *type) {
  if (*pos >= req->types.len)
    return 0;
  cur c = {req->types.p, req->types.len, *pos};
  if (c_str(&c, HDL_TYPE_MAX, type) < 0)
    return 0; /* validated at decode */
  *pos = (uint32_t)c.pos;
  return 1;
}

static int digest_len(uint8_t alg) {
  switch (alg) {
  case HDL_DIGEST_MD5: return 16;
  case HDL_DIGEST_SHA1: return 20;
  case HDL_DIGEST_SHA256: return 32;
  default: return -1;
  }
}

int hdl_resolution_resp_decode(const uint8_t *body, size_t len, int has_digest,
                               hdl_resolution_resp *out) {
  cur c = {body, len, 0};
  hdl_resolution_resp r;
  memset(&r, 0, sizeof r);
  int rc;
  if (has_digest) {
    if ((rc = c_u8(&c, &r.digest_alg)) < 0)
      return rc;
    int dl = digest_len(r.digest_alg);
    if (dl < 0)
      return PL_EINVAL;
    if ((rc = c_bytes(&c, (size_t)dl, &r.digest)) < 0)
      return rc;
  }
  if ((rc = c_str(&c, HDL_HANDLE_MAX, &r.handle)) < 0)
    return rc;
  if ((rc = c_u32(&c, &r.nvalues)) < 0)
    return rc;
  if (r.nvalues > HDL_VALUES_MAX)
    return PL_ELIMIT;
  r.values.p = body + c.pos;
  r.values.len = (uint32_t)(len - c.pos);
  /* Check every value now, so iteration cannot fail later. */
  uint32_t pos = 0;
  hdl_value v;
  for (uint32_t i = 0; i < r.nvalues; i++)
    if ((rc = hdl_value_next(r.values, &pos, &v)) != 1)
      return rc < 0 ? rc : PL_EINVAL;
  r.values.len = pos;
  *out = r;
  return 0;
}

static int value_read(cur *c, hdl_value *v) {
  int rc;
  uint32_t ttl;
  memset(v, 0, sizeof *v);
  if ((rc = c_u32(c, &v->index)) < 0 || (rc = c_u32(c, &v->timestamp)) < 0 ||
      (rc = c_u8(c, &v->ttl_type)) < 0 || (rc = c_u32(c, &ttl)) < 0 || (rc = c_u8(c, &v->perm)) < 0)
    return rc;
  v->ttl = (int32_t)ttl;
  if ((rc = c_str(c, HDL_TYPE_MAX, &v->type)) < 0)
    return rc;
  if ((rc = c_str(c, HDL_MESSAGE_MAX, &v->data)) < 0)
    return rc;
  if ((rc = c_u32(c, &v->nrefs)) < 0)
    return rc;
  if (v->nrefs > HDL_LIST_MAX)
    return PL_ELIMIT;
  size_t start = c->pos;
  for (uint32_t i = 0; i < v->nrefs; i++) {
    hdl_str h;
    uint32_t idx;
    if ((rc = c_str(c, HDL_HANDLE_MAX, &h)) < 0 || (rc = c_u32(c, &idx)) < 0)
      return rc;
  }
  v->refs.p = c->p + start;
  v->refs.len = (uint32_t)(c->pos - start);
  return 0;
}

int hdl_value_next(hdl_str buf, uint32_t *pos, hdl_value *v) {
  if (*pos >= buf.len)
    return 0;
  cur c = {buf.p, buf.len, *pos};
  int rc = value_read(&c, v);
  if (rc < 0)
    return rc;
  *pos = (uint32_t)c.pos;
  return 1;
}

int hdl_ref_next(const hdl_value *v, uint32_t *pos, hdl_str *handle, uint32_t *index) {
  if (*pos >= v->refs.len)
    return 0;
  cur c = {v->refs.p, v->refs.len, *pos};
  if (c_str(&c, HDL_HANDLE_MAX, handle) < 0 || c_u32(&c, index) < 0)
    return 0;
  *pos = (uint32_t)c.pos;
  return 1;
}

int hdl_value_decode(const uint8_t *p, size_t len, hdl_value *out) {
  cur c = {p, len, 0};
  int rc = value_read(&c, out);
  if (rc < 0)
    return rc;
  return c.pos == len ? 0 : PL_EINVAL;
}

int hdl_value_encode(pl_buf *b, const hdl_value *v) {
  size_t mark = b->len;
  int rc;
  uint8_t head[14];
  wr32(head, v->index);
  wr32(head + 4, v->timestamp);
  head[8] = v->ttl_type;
  wr32(head + 9, (uint32_t)v->ttl);
  head[13] = v->perm;
  if ((rc = pl_buf_append(b, head, sizeof head)) < 0 ||
      (rc = put_str(b, v->type.p, v->type.len)) < 0 ||
      (rc = put_str(b, v->data.p, v->data.len)) < 0 || (rc = put32(b, v->nrefs)) < 0 ||
      (rc = pl_buf_append(b, v->refs.p, v->refs.len)) < 0) {
    b->len = mark;
    return rc;
  }
  return 0;
}

int hdl_type_matches(hdl_str filter, hdl_str type) {
  if (filter.len && filter.p[filter.len - 1] == '.') {
    /* "URL." matches "URL" and "URL.anything". */
    uint32_t base = filter.len - 1;
    if (type.len == base)
      return memcmp(filter.p, type.p, base) == 0;
    return type.len > base && memcmp(filter.p, type.p, filter.len) == 0;
  }
  return filter.len == type.len && memcmp(filter.p, type.p, type.len) == 0;
}

int hdl_value_matches(const hdl_resolution_req *req, const hdl_value *v) {
  if (req->nindexes == 0 && req->ntypes == 0)
    return 1;
  for (uint32_t i = 0; i < req->nindexes; i++)
    if (hdl_req_index(req, i) == v->index)
      return 1;
  uint32_t pos = 0;
  hdl_str t;
  while (hdl_req_type_next(req, &pos, &t))
    if (hdl_type_matches(t, v->type))
      return 1;
  return 0;
}

/* ---- whole messages ---- */

int hdl_request_digest(const hdl_message *req, uint8_t *alg, uint8_t digest[32]) {
  int sha256 = req->env.minor >= 10;
  *alg = sha256 ? HDL_DIGEST_SHA256 : HDL_DIGEST_SHA1;
  if (gnutls_hash_fast(sha256 ? GNUTLS_DIG_SHA256 : GNUTLS_DIG_SHA1, req->signed_part,
                       req->signed_len, digest) != 0)
    return PL_ENOMEM;
  return sha256 ? 32 : 20;
}

/* Writes envelope + header with placeholder lengths; finish() fills them in. */
static int begin(pl_buf *b, const hdl_envelope *env, const hdl_header *h, size_t *mark) {
  *mark = b->len;
  uint8_t head[HDL_ENVELOPE_BYTES + HDL_HEADER_BYTES];
  memset(head, 0, sizeof head);
  hdl_envelope_encode(env, head);
  uint8_t *hp = head + HDL_ENVELOPE_BYTES;
  wr32(hp, h->opcode);
  wr32(hp + 4, h->response_code);
  wr32(hp + 8, h->opflags);
  wr16(hp + 12, h->siteinfo_serial);
  hp[14] = h->recursion_count;
  wr32(hp + 16, h->expiration);
  return pl_buf_append(b, head, sizeof head);
}

/* Appends the empty credential and sets BodyLength and MessageLength. */
static int finish(pl_buf *b, size_t mark) {
  size_t body_start = mark + HDL_ENVELOPE_BYTES + HDL_HEADER_BYTES;
  size_t body_len = b->len - body_start;
  int rc = put32(b, 0);
  if (rc < 0)
    return rc;
  size_t msg_len = b->len - mark - HDL_ENVELOPE_BYTES;
  if (msg_len > HDL_MESSAGE_MAX)
    return PL_ELIMIT;
  wr32(b->data + mark + HDL_ENVELOPE_BYTES + 20, (uint32_t)body_len);
  wr32(b->data + mark + 16, (uint32_t)msg_len);
  return 0;
}

static int reply_begin(pl_buf *b, const hdl_reply_ctx *c, size_t *mark) {
  const hdl_message *q = c->req;
  hdl_envelope env = {q->env.major, q->env.minor, 0, q->env.session_id, q->env.request_id, 0, 0};
  /* Flags a response echoes: the caller's keep-connection and public-only choices. */
  uint32_t echo = q->hdr.opflags & (HDL_OF_KC | HDL_OF_PO | HDL_OF_RD | HDL_OF_REC);
  hdl_header h = {q->hdr.opcode,
                  c->response_code,
                  echo | c->opflags_add,
                  q->hdr.siteinfo_serial,
                  q->hdr.recursion_count,
                  c->expiration,
                  0};
  int rc = begin(b, &env, &h, mark);
  if (rc < 0)
    return rc;
  if (q->hdr.opflags & HDL_OF_RD) {
    uint8_t alg, d[32];
    int dl = hdl_request_digest(q, &alg, d);
    if (dl < 0)
      return dl;
    if ((rc = pl_buf_append_byte(b, alg)) < 0 || (rc = pl_buf_append(b, d, (size_t)dl)) < 0)
      return rc;
  }
  return 0;
}

int hdl_encode_resolution_response(pl_buf *b, const hdl_reply_ctx *c, hdl_str handle,
                                   uint32_t nvalues, hdl_str values_enc) {
  size_t mark;
  int rc;
  if ((rc = reply_begin(b, c, &mark)) < 0 || (rc = put_str(b, handle.p, handle.len)) < 0 ||
      (rc = put32(b, nvalues)) < 0 || (rc = pl_buf_append(b, values_enc.p, values_enc.len)) < 0 ||
      (rc = finish(b, mark)) < 0) {
    if (b->len > mark)
      b->len = mark;
    return rc;
  }
  return 0;
}

int hdl_encode_error(pl_buf *b, const hdl_reply_ctx *c, const char *message) {
  size_t mark;
  int rc;
  if ((rc = reply_begin(b, c, &mark)) < 0 ||
      (rc = put_str(b, message, (uint32_t)strlen(message))) < 0 || (rc = finish(b, mark)) < 0) {
    if (b->len > mark)
      b->len = mark;
    return rc;
  }
  return 0;
}

int hdl_encode_siteinfo_response(pl_buf *b, const hdl_reply_ctx *c, hdl_str siteinfo) {
  size_t mark;
  int rc;
  if ((rc = reply_begin(b, c, &mark)) < 0 ||
      (rc = pl_buf_append(b, siteinfo.p, siteinfo.len)) < 0 || (rc = finish(b, mark)) < 0) {
    if (b->len > mark)
      b->len = mark;
    return rc;
  }
  return 0;
}

int hdl_encode_resolution_request(pl_buf *b, hdl_str handle, const hdl_request_opts *o) {
  hdl_envelope env = {2, 10, 0, 0, o->request_id, 0, 0};
  hdl_header h = {HDL_OC_RESOLUTION, 0, o->opflags, 0, o->recursion_count, 0, 0};
  size_t mark;
  int rc;
  if (handle.len > HDL_HANDLE_MAX || o->nindexes > HDL_LIST_MAX || o->ntypes > HDL_LIST_MAX)
    return PL_ELIMIT;
  if ((rc = begin(b, &env, &h, &mark)) < 0)
    return rc;
  if ((rc = put_str(b, handle.p, handle.len)) < 0 || (rc = put32(b, o->nindexes)) < 0)
    goto fail;
  for (uint32_t i = 0; i < o->nindexes; i++)
    if ((rc = put32(b, o->indexes[i])) < 0)
      goto fail;
  if ((rc = put32(b, o->ntypes)) < 0)
    goto fail;
  for (uint32_t i = 0; i < o->ntypes; i++)
    if ((rc = put_str(b, o->types[i], (uint32_t)strlen(o->types[i]))) < 0)
      goto fail;
  if ((rc = finish(b, mark)) < 0)
    goto fail;
  return 0;
fail:
  b->len = mark;
  return rc;
}

int hdl_encode_siteinfo_request(pl_buf *b, uint32_t request_id) {
  hdl_envelope env = {2, 10, 0, 0, request_id, 0, 0};
  hdl_header h = {HDL_OC_GET_SITEINFO, 0, 0, 0, 0, 0, 0};
  size_t mark;
  int rc;
  if ((rc = begin(b, &env, &h, &mark)) < 0)
    return rc;
  if ((rc = finish(b, mark)) < 0) {
    b->len = mark;
    return rc;
  }
  return 0;
}

/* ---- site information ---- */

int hdl_siteinfo_encode(pl_buf *b, const hdl_siteinfo *s) {
  size_t mark = b->len;
  int rc;
  uint8_t head[8] = {0, 1, 2, 10, 0, 0, 0, 0};
  wr16(head + 4, s->serial);
  head[6] = s->primary ? 0x40 : 0;
  head[7] = 0; /* hash option: by whole handle; one server, so it does not matter */
  if ((rc = pl_buf_append(b, head, sizeof head)) < 0 || (rc = put32(b, 0)) < 0)
    goto fail; /* empty filter */
  if (s->description) {
    if ((rc = put32(b, 1)) < 0 || (rc = put_str(b, "desc", 4)) < 0 ||
        (rc = put_str(b, s->description, (uint32_t)strlen(s->description))) < 0)
      goto fail;
  } else if ((rc = put32(b, 0)) < 0) {
    goto fail;
  }
  if ((rc = put32(b, s->nservers)) < 0)
    goto fail;
  for (uint32_t i = 0; i < s->nservers; i++) {
    const hdl_site_server *sv = &s->servers[i];
    uint32_t nif = (sv->udp_port != 0) + (sv->tcp_port != 0) + (sv->http_port != 0);
    if ((rc = put32(b, sv->server_id)) < 0 || (rc = pl_buf_append(b, sv->address, 16)) < 0 ||
        (rc = put32(b, 0)) < 0 || (rc = put32(b, nif)) < 0)
      goto fail;
    const struct {
      uint8_t proto;
      uint16_t port;
    } ifs[] = {{1, sv->tcp_port}, {0, sv->udp_port}, {2, sv->http_port}};
    for (size_t k = 0; k < 3; k++) {
      if (!ifs[k].port)
        continue;
      uint8_t rec[6] = {2, ifs[k].proto, 0, 0, 0, 0}; /* service type 2: resolution */
      wr32(rec + 2, ifs[k].port);
      if ((rc = pl_buf_append(b, rec, sizeof rec)) < 0)
        goto fail;
    }
  }
  return 0;
fail:
  b->len = mark;
  return rc;
}

int hdl_siteinfo_decode_first(const uint8_t *p, size_t len, hdl_site_server *out,
                              uint16_t *serial) {
  cur c = {p, len, 0};
  uint16_t version, ser;
  uint8_t major, minor, mask, hash;
  hdl_str filter, s;
  uint32_t nattr, nservers;
  int rc;
  if ((rc = c_u16(&c, &version)) < 0 || (rc = c_u8(&c, &major)) < 0 ||
      (rc = c_u8(&c, &minor)) < 0 || (rc = c_u16(&c, &ser)) < 0 || (rc = c_u8(&c, &mask)) < 0 ||
      (rc = c_u8(&c, &hash)) < 0 || (rc = c_str(&c, HDL_HANDLE_MAX, &filter)) < 0 ||
      (rc = c_u32(&c, &nattr)) < 0)
    return rc;
  if (nattr > HDL_LIST_MAX)
    return PL_ELIMIT;
  for (uint32_t i = 0; i < nattr; i++)
    if ((rc = c_str(&c, 65536, &s)) < 0 || (rc = c_str(&c, 65536, &s)) < 0)
      return rc;
  if ((rc = c_u32(&c, &nservers)) < 0)
    return rc;
  if (nservers == 0)
    return PL_ENOTFOUND;
  hdl_site_server sv;
  memset(&sv, 0, sizeof sv);
  hdl_str addr, key;
  uint32_t nif;
  if ((rc = c_u32(&c, &sv.server_id)) < 0 || (rc = c_bytes(&c, 16, &addr)) < 0 ||
      (rc = c_str(&c, 65536, &key)) < 0 || (rc = c_u32(&c, &nif)) < 0)
    return rc;
  if (nif > HDL_LIST_MAX)
    return PL_ELIMIT;
  memcpy(sv.address, addr.p, 16);
  for (uint32_t i = 0; i < nif; i++) {
    uint8_t type, proto;
    uint32_t port;
    if ((rc = c_u8(&c, &type)) < 0 || (rc = c_u8(&c, &proto)) < 0 || (rc = c_u32(&c, &port)) < 0)
      return rc;
    if (port > 65535)
      return PL_EINVAL;
    if (proto == 0)
      sv.udp_port = (uint16_t)port;
    else if (proto == 1)
      sv.tcp_port = (uint16_t)port;
    else if (proto == 2)
      sv.http_port = (uint16_t)port;
  }
  *out = sv;
  if (serial)
    *serial = ser;
  return 0;
}

/* ---- HS_ADMIN ---- */

int hdl_admin_encode(pl_buf *b, uint16_t perms, hdl_str handle, uint32_t index) {
  size_t mark = b->len;
  int rc;
  if ((rc = pl_buf_put_u16be(b, perms)) < 0 || (rc = put_str(b, handle.p, handle.len)) < 0 ||
      (rc = put32(b, index)) < 0) {
    b->len = mark;
    return rc;
  }
  return 0;
}

int hdl_admin_decode(hdl_str data, uint16_t *perms, hdl_str *handle, uint32_t *index) {
  cur c = {data.p, data.len, 0};
  uint16_t pm;
  hdl_str h;
  uint32_t idx;
  int rc;
  if ((rc = c_u16(&c, &pm)) < 0 || (rc = c_str(&c, HDL_HANDLE_MAX, &h)) < 0 ||
      (rc = c_u32(&c, &idx)) < 0)
    return rc;
  if (c.pos != c.len || h.len == 0)
    return PL_EINVAL;
  *perms = pm;
  *handle = h;
  *index = idx;
  return 0;
}

/* ---- UDP chunks ---- */

int hdl_udp_split(const uint8_t *msg, size_t len, pl_buf *out, uint16_t *pkt_lens,
                  int max_packets) {
  if (len < HDL_ENVELOPE_BYTES)
    return PL_EINVAL;
  if (len <= HDL_UDP_PACKET_MAX) {
    if (max_packets < 1)
      return PL_ELIMIT;
    int rc = pl_buf_append(out, msg, len);
    if (rc < 0)
      return rc;
    pkt_lens[0] = (uint16_t)len;
    return 1;
  }
  size_t body = len - HDL_ENVELOPE_BYTES;
  size_t n = (body + HDL_UDP_CHUNK_BYTES - 1) / HDL_UDP_CHUNK_BYTES;
  if (n > (size_t)max_packets)
    return PL_ELIMIT;
  hdl_envelope env;
  int rc = hdl_envelope_decode(msg, len, HDL_MESSAGE_MAX, &env);
  if (rc < 0)
    return rc;
  size_t mark = out->len;
  for (size_t i = 0; i < n; i++) {
    size_t off = i * HDL_UDP_CHUNK_BYTES;
    size_t chunk = body - off < HDL_UDP_CHUNK_BYTES ? body - off : HDL_UDP_CHUNK_BYTES;
    hdl_envelope e = env;
    e.flags |= HDL_ENV_TC;
    e.seq = (uint32_t)i;
    uint8_t head[HDL_ENVELOPE_BYTES];
    hdl_envelope_encode(&e, head);
    if ((rc = pl_buf_append(out, head, sizeof head)) < 0 ||
        (rc = pl_buf_append(out, msg + HDL_ENVELOPE_BYTES + off, chunk)) < 0) {
      out->len = mark;
      return rc;
    }
    pkt_lens[i] = (uint16_t)(HDL_ENVELOPE_BYTES + chunk);
  }
  return (int)n;
}

void hdl_reasm_init(hdl_reasm *r, uint32_t max_msg_bytes) {
  memset(r, 0, sizeof *r);
  r->max_msg_bytes = max_msg_bytes;
}

void hdl_reasm_free(hdl_reasm *r) {
  free(r->data);
  free(r->seen);
  hdl_reasm_init(r, r->max_msg_bytes);
}

int hdl_reasm_add(hdl_reasm *r, const uint8_t *pkt, size_t len) {
  hdl_envelope env;
  int rc = hdl_envelope_decode(pkt, len, r->max_msg_bytes, &env);
  if (rc == PL_AGAIN)
    return PL_EINVAL; /* a datagram is whole or nothing */
  if (rc < 0)
    return rc;
  size_t chunk_len = len - HDL_ENVELOPE_BYTES;
  if (!r->data) {
    if (!(env.flags & HDL_ENV_TC)) {
      /* An unchunked message: it must be exactly one whole message. */
      if (chunk_len != env.msg_len || env.seq != 0)
        return PL_EINVAL;
    }
    if (env.msg_len < HDL_HEADER_BYTES)
      return PL_EINVAL;
    uint32_t n = (env.msg_len + HDL_UDP_CHUNK_BYTES - 1) / HDL_UDP_CHUNK_BYTES;
    uint8_t *data = malloc(env.msg_len);
    uint8_t *seen = calloc(n, 1);
    if (!data || !seen) {
      free(data);
      free(seen);
      return PL_ENOMEM;
    }
    r->data = data;
    r->seen = seen;
    r->request_id = env.request_id;
    r->msg_len = env.msg_len;
    r->nchunks = n;
    r->nseen = 0;
    r->env = env;
    r->env.flags &= (uint16_t)~HDL_ENV_TC;
    r->env.seq = 0;
  } else if (env.request_id != r->request_id) {
    return PL_ECONFLICT;
  } else if (env.msg_len != r->msg_len) {
    return PL_EINVAL;
  }
  if (env.seq >= r->nchunks)
    return PL_EINVAL;
  size_t off = (size_t)env.seq * HDL_UDP_CHUNK_BYTES;
  size_t want = r->msg_len - off < HDL_UDP_CHUNK_BYTES ? r->msg_len - off : HDL_UDP_CHUNK_BYTES;
  if (chunk_len != want)
    return PL_EINVAL;
  if (!r->seen[env.seq]) {
    memcpy(r->data + off, pkt + HDL_ENVELOPE_BYTES, want);
    r->seen[env.seq] = 1;
    r->nseen++;
  }
  return r->nseen == r->nchunks ? 1 : 0;
}

int hdl_reasm_message(const hdl_reasm *r, hdl_message *out) {
  if (!r->data || r->nseen != r->nchunks)
    return PL_AGAIN;
  return hdl_message_decode(&r->env, r->data, r->msg_len, out);
}

const char *hdl_rc_name(uint32_t rc) {
  switch (rc) {
  case HDL_RC_SUCCESS: return "success";
  case HDL_RC_ERROR: return "error";
  case HDL_RC_SERVER_BUSY: return "server too busy";
  case HDL_RC_PROTOCOL_ERROR: return "protocol error";
  case HDL_RC_OPERATION_DENIED: return "operation not supported";
  case HDL_RC_RECUR_LIMIT_EXCEEDED: return "recursion limit exceeded";
  case HDL_RC_HANDLE_NOT_FOUND: return "handle not found";
  case HDL_RC_HANDLE_ALREADY_EXIST: return "handle already exists";
  case HDL_RC_INVALID_HANDLE: return "invalid handle";
  case HDL_RC_VALUE_NOT_FOUND: return "values not found";
  case HDL_RC_VALUE_ALREADY_EXIST: return "value already exists";
  case HDL_RC_VALUE_INVALID: return "invalid value";
  case HDL_RC_SERVER_NOT_RESP: return "server not responsible";
  case HDL_RC_PREFIX_REFERRAL: return "prefix referral";
  case HDL_RC_NOT_AUTHORIZED: return "not authorized";
  case HDL_RC_ACCESS_DENIED: return "access denied";
  case HDL_RC_AUTHEN_NEEDED: return "authentication needed";
  default: return "unknown";
  }
}
