/* Unit tests for the Handle protocol codec: byte fixtures written out field by field from
 * RFC 3652 (envelope, header, bodies) and RFC 3651 (values), with the deployed 4-byte value
 * timestamp; round trips of every encoder through the decoders; UDP chunking and
 * reassembly in every order; malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/buf.h"
#include "base/err.h"
#include "ident/handle_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(lit) ((hdl_str){(const uint8_t *)(lit), (uint32_t)(sizeof(lit) - 1)})

/* A resolution request for "88.118/abc" with index list [1] and type list ["URL"], version
 * 2.10, request id 0x01020304, RD and PO flags, no credential, written byte by byte. */
/* clang-format off */
static const uint8_t req_fixture[] = {
    /* envelope */
    2, 10,                  /* MajorVersion, MinorVersion */
    0x00, 0x00,             /* MessageFlag */
    0, 0, 0, 0,             /* SessionId */
    0x01, 0x02, 0x03, 0x04, /* RequestId */
    0, 0, 0, 0,             /* SequenceNumber */
    0, 0, 0, 61,            /* MessageLength = 24 header + 33 body + 4 credential */
    /* header */
    0, 0, 0, 1,             /* OpCode OC_RESOLUTION */
    0, 0, 0, 0,             /* ResponseCode */
    0x01, 0x80, 0, 0,       /* OpFlag: PO | RD */
    0, 0,                   /* SiteInfoSerialNumber */
    0,                      /* RecursionCount */
    0,                      /* reserved */
    0, 0, 0, 0,             /* ExpirationTime */
    0, 0, 0, 33,            /* BodyLength */
    /* body */
    0, 0, 0, 10, '8', '8', '.', '1', '1', '8', '/', 'a', 'b', 'c', /* Handle */
    0, 0, 0, 1, 0, 0, 0, 1,                                      /* IndexList [1] */
    0, 0, 0, 1, 0, 0, 0, 3, 'U', 'R', 'L',                        /* TypeList ["URL"] */
    /* credential */
    0, 0, 0, 0};

/* A value: index 1, timestamp 0x5F5E1000, relative TTL 86400, PUBLIC_READ|ADMIN_READ|ADMIN_WRITE,
 * type "URL", data "http://x", one reference ("0.NA/88.118", 300). */
static const uint8_t value_fixture[] = {
    0, 0, 0, 1,                                    /* Index */
    0x5F, 0x5E, 0x10, 0x00,                        /* Timestamp (4 bytes, as deployed) */
    0,                                             /* TTLType relative */
    0, 1, 0x51, 0x80,                              /* TTL 86400 */
    0x0E,                                          /* Permission */
    0, 0, 0, 3, 'U', 'R', 'L',                     /* Type */
    0, 0, 0, 8, 'h', 't', 't', 'p', ':', '/', '/', 'x', /* Data */
    0, 0, 0, 1,                                    /* one reference */
    0, 0, 0, 11, '0', '.', 'N', 'A', '/', '8', '8', '.', '1', '1', '8', 0, 0, 1, 0x2C};
/* clang-format on */

static void test_request_fixture(void **state) {
  (void)state;
  hdl_message m;
  int n = hdl_frame_decode(req_fixture, sizeof req_fixture, HDL_MESSAGE_MAX, &m);
  assert_int_equal(n, (int)sizeof req_fixture);
  assert_int_equal(m.env.major, 2);
  assert_int_equal(m.env.minor, 10);
  assert_int_equal(m.env.request_id, 0x01020304);
  assert_int_equal(m.hdr.opcode, HDL_OC_RESOLUTION);
  assert_true(m.hdr.opflags & HDL_OF_PO);
  assert_true(m.hdr.opflags & HDL_OF_RD);
  assert_null(m.credential);
  hdl_resolution_req r;
  assert_int_equal(hdl_resolution_req_decode(m.body, m.hdr.body_len, &r), 0);
  assert_int_equal(r.handle.len, 10);
  assert_memory_equal(r.handle.p, "88.118/abc", 10);
  assert_int_equal(r.nindexes, 1);
  assert_int_equal(hdl_req_index(&r, 0), 1);
  assert_int_equal(r.ntypes, 1);
  uint32_t pos = 0;
  hdl_str t;
  assert_int_equal(hdl_req_type_next(&r, &pos, &t), 1);
  assert_int_equal(t.len, 3);
  assert_memory_equal(t.p, "URL", 3);
  assert_int_equal(hdl_req_type_next(&r, &pos, &t), 0);

  /* Every prefix of the frame is "more input needed", never an error or an over-read. */
  for (size_t cut = 0; cut < sizeof req_fixture; cut++) {
    uint8_t *copy = malloc(cut ? cut : 1);
    memcpy(copy, req_fixture, cut);
    assert_int_equal(hdl_frame_decode(copy, cut, HDL_MESSAGE_MAX, &m), PL_AGAIN);
    free(copy);
  }

  /* Our encoder produces exactly the fixture. */
  pl_buf b;
  pl_buf_init(&b, 0);
  const char *types[] = {"URL"};
  uint32_t idx[] = {1};
  hdl_request_opts o = {0x01020304, HDL_OF_PO | HDL_OF_RD, 0, idx, 1, types, 1};
  assert_int_equal(hdl_encode_resolution_request(&b, S("88.118/abc"), &o), 0);
  assert_int_equal(b.len, sizeof req_fixture);
  assert_memory_equal(b.data, req_fixture, sizeof req_fixture);
  pl_buf_free(&b);
}

static void test_versions(void **state) {
  (void)state;
  uint8_t m[sizeof req_fixture];
  hdl_message msg;
  memcpy(m, req_fixture, sizeof m);
  for (int minor = 0; minor < 12; minor++) {
    m[1] = (uint8_t)minor;
    assert_true(hdl_frame_decode(m, sizeof m, HDL_MESSAGE_MAX, &msg) > 0);
  }
  m[0] = 3;
  assert_int_equal(hdl_frame_decode(m, sizeof m, HDL_MESSAGE_MAX, &msg), PL_EUNSUPPORTED);
  m[0] = 1;
  assert_int_equal(hdl_frame_decode(m, sizeof m, HDL_MESSAGE_MAX, &msg), PL_EUNSUPPORTED);
  m[0] = 2;
  m[2] = 0x80; /* compressed */
  assert_int_equal(hdl_frame_decode(m, sizeof m, HDL_MESSAGE_MAX, &msg), PL_EUNSUPPORTED);
  m[2] = 0x00;
  m[3] = 0x5A; /* low-byte bits from newer peers are ignored */
  assert_true(hdl_frame_decode(m, sizeof m, HDL_MESSAGE_MAX, &msg) > 0);
  /* An over-long message length is refused before any allocation. */
  memcpy(m, req_fixture, sizeof m);
  m[16] = 0x7f;
  assert_int_equal(hdl_frame_decode(m, sizeof m, 65536, &msg), PL_ELIMIT);
  /* A body length that runs past the message. */
  memcpy(m, req_fixture, sizeof m);
  m[20 + 23] = 200;
  assert_int_equal(hdl_frame_decode(m, sizeof m, HDL_MESSAGE_MAX, &msg), PL_EINVAL);
}

static void test_value_fixture(void **state) {
  (void)state;
  hdl_value v;
  assert_int_equal(hdl_value_decode(value_fixture, sizeof value_fixture, &v), 0);
  assert_int_equal(v.index, 1);
  assert_int_equal(v.timestamp, 0x5F5E1000u);
  assert_int_equal(v.ttl_type, 0);
  assert_int_equal(v.ttl, 86400);
  assert_int_equal(v.perm, 0x0E);
  assert_int_equal(v.type.len, 3);
  assert_memory_equal(v.data.p, "http://x", 8);
  assert_int_equal(v.nrefs, 1);
  uint32_t pos = 0, idx;
  hdl_str h;
  assert_int_equal(hdl_ref_next(&v, &pos, &h, &idx), 1);
  assert_int_equal(h.len, 11);
  assert_memory_equal(h.p, "0.NA/88.118", 11);
  assert_int_equal(idx, 300);
  assert_int_equal(hdl_ref_next(&v, &pos, &h, &idx), 0);
  /* Re-encoding gives the same bytes. */
  pl_buf b;
  pl_buf_init(&b, 0);
  assert_int_equal(hdl_value_encode(&b, &v), 0);
  assert_int_equal(b.len, sizeof value_fixture);
  assert_memory_equal(b.data, value_fixture, sizeof value_fixture);
  pl_buf_free(&b);
  /* Truncations are errors, extra bytes too. */
  for (size_t cut = 0; cut < sizeof value_fixture; cut++)
    assert_int_equal(hdl_value_decode(value_fixture, cut, &v), PL_EINVAL);
  uint8_t longer[sizeof value_fixture + 1];
  memcpy(longer, value_fixture, sizeof value_fixture);
  longer[sizeof value_fixture] = 0;
  assert_int_equal(hdl_value_decode(longer, sizeof longer, &v), PL_EINVAL);
}

static hdl_message decode_one(const pl_buf *b) {
  hdl_message m;
  int n = hdl_frame_decode(b->data, b->len, HDL_MESSAGE_MAX, &m);
  assert_int_equal(n, (int)b->len);
  return m;
}

static void test_response_round_trip(void **state) {
  (void)state;
  hdl_message req;
  assert_true(hdl_frame_decode(req_fixture, sizeof req_fixture, HDL_MESSAGE_MAX, &req) > 0);
  pl_buf vals, out;
  pl_buf_init(&vals, 0);
  pl_buf_init(&out, 0);
  hdl_value v;
  assert_int_equal(hdl_value_decode(value_fixture, sizeof value_fixture, &v), 0);
  assert_int_equal(hdl_value_encode(&vals, &v), 0);
  v.index = 100;
  v.type = S("HS_ADMIN");
  pl_buf admin;
  pl_buf_init(&admin, 0);
  assert_int_equal(hdl_admin_encode(&admin, 0x0FFF, S("0.NA/88.118"), 200), 0);
  v.data = (hdl_str){admin.data, (uint32_t)admin.len};
  v.nrefs = 0;
  v.refs = (hdl_str){NULL, 0};
  assert_int_equal(hdl_value_encode(&vals, &v), 0);
  hdl_reply_ctx c = {&req, HDL_RC_SUCCESS, HDL_OF_AT, 0};
  assert_int_equal(hdl_encode_resolution_response(&out, &c, S("88.118/abc"), 2,
                                                  (hdl_str){vals.data, (uint32_t)vals.len}),
                   0);
  hdl_message m = decode_one(&out);
  assert_int_equal(m.env.request_id, 0x01020304);
  assert_int_equal(m.env.minor, 10);
  assert_int_equal(m.hdr.response_code, HDL_RC_SUCCESS);
  assert_true(m.hdr.opflags & HDL_OF_AT);
  assert_true(m.hdr.opflags & HDL_OF_RD);
  hdl_resolution_resp r;
  assert_int_equal(hdl_resolution_resp_decode(m.body, m.hdr.body_len, 1, &r), 0);
  assert_int_equal(r.digest_alg, HDL_DIGEST_SHA256);
  assert_int_equal(r.digest.len, 32);
  uint8_t alg, d[32];
  assert_int_equal(hdl_request_digest(&req, &alg, d), 32);
  assert_memory_equal(r.digest.p, d, 32);
  assert_int_equal(r.nvalues, 2);
  uint32_t pos = 0;
  hdl_value got;
  assert_int_equal(hdl_value_next(r.values, &pos, &got), 1);
  assert_int_equal(got.index, 1);
  assert_int_equal(hdl_value_next(r.values, &pos, &got), 1);
  assert_int_equal(got.index, 100);
  uint16_t perms;
  hdl_str ah;
  uint32_t ai;
  assert_int_equal(hdl_admin_decode(got.data, &perms, &ah, &ai), 0);
  assert_int_equal(perms, 0x0FFF);
  assert_int_equal(ai, 200);
  assert_int_equal(hdl_value_next(r.values, &pos, &got), 0);

  /* An older client (2.1) gets a SHA-1 digest and its own version back. */
  uint8_t old[sizeof req_fixture];
  memcpy(old, req_fixture, sizeof old);
  old[1] = 1;
  hdl_message oreq;
  assert_true(hdl_frame_decode(old, sizeof old, HDL_MESSAGE_MAX, &oreq) > 0);
  pl_buf_reset(&out);
  c.req = &oreq;
  c.response_code = HDL_RC_HANDLE_NOT_FOUND;
  assert_int_equal(hdl_encode_error(&out, &c, "no such handle"), 0);
  m = decode_one(&out);
  assert_int_equal(m.env.minor, 1);
  assert_int_equal(m.hdr.response_code, HDL_RC_HANDLE_NOT_FOUND);
  assert_int_equal(m.body[0], HDL_DIGEST_SHA1);
  assert_int_equal(m.hdr.body_len, 1 + 20 + 4 + 14);
  assert_memory_equal(m.body + 25, "no such handle", 14);
  pl_buf_free(&vals);
  pl_buf_free(&out);
  pl_buf_free(&admin);
}

static void test_filters(void **state) {
  (void)state;
  assert_true(hdl_type_matches(S("URL"), S("URL")));
  assert_false(hdl_type_matches(S("URL"), S("URL.ja")));
  assert_true(hdl_type_matches(S("URL."), S("URL.ja")));
  assert_true(hdl_type_matches(S("URL."), S("URL")));
  assert_false(hdl_type_matches(S("URL."), S("URLX")));
  assert_false(hdl_type_matches(S("EMAIL"), S("URL")));
  hdl_message m;
  assert_true(hdl_frame_decode(req_fixture, sizeof req_fixture, HDL_MESSAGE_MAX, &m) > 0);
  hdl_resolution_req r;
  assert_int_equal(hdl_resolution_req_decode(m.body, m.hdr.body_len, &r), 0);
  hdl_value v;
  memset(&v, 0, sizeof v);
  v.index = 1;
  v.type = S("EMAIL");
  assert_true(hdl_value_matches(&r, &v)); /* by index */
  v.index = 2;
  assert_false(hdl_value_matches(&r, &v));
  v.type = S("URL");
  assert_true(hdl_value_matches(&r, &v)); /* by type */
}

static void test_siteinfo(void **state) {
  (void)state;
  hdl_site_server sv;
  memset(&sv, 0, sizeof sv);
  sv.server_id = 1;
  sv.address[15] = 1;
  sv.address[12] = 127;
  sv.tcp_port = 2641;
  sv.udp_port = 2641;
  sv.http_port = 8080;
  hdl_siteinfo si = {7, 1, "plateau", 1, &sv};
  pl_buf b;
  pl_buf_init(&b, 0);
  assert_int_equal(hdl_siteinfo_encode(&b, &si), 0);
  /* Fixed head: version 1, protocol 2.10, serial 7, primary mask 0x40, hash option 0. */
  const uint8_t head[] = {0, 1, 2, 10, 0, 7, 0x40, 0};
  assert_memory_equal(b.data, head, sizeof head);
  hdl_site_server got;
  uint16_t serial;
  assert_int_equal(hdl_siteinfo_decode_first(b.data, b.len, &got, &serial), 0);
  assert_int_equal(serial, 7);
  assert_int_equal(got.tcp_port, 2641);
  assert_int_equal(got.udp_port, 2641);
  assert_int_equal(got.http_port, 8080);
  assert_memory_equal(got.address, sv.address, 16);
  for (size_t cut = 0; cut < b.len; cut++)
    assert_true(hdl_siteinfo_decode_first(b.data, cut, &got, &serial) < 0);
  pl_buf_free(&b);
}

static void test_udp_chunks(void **state) {
  (void)state;
  hdl_message req;
  assert_true(hdl_frame_decode(req_fixture, sizeof req_fixture, HDL_MESSAGE_MAX, &req) > 0);
  /* A response of ~3000 bytes: 30 values of 80-byte data. */
  pl_buf vals, msg, pkts;
  pl_buf_init(&vals, 0);
  pl_buf_init(&msg, 0);
  pl_buf_init(&pkts, 0);
  char data[80];
  memset(data, 'd', sizeof data);
  for (uint32_t i = 1; i <= 30; i++) {
    hdl_value v;
    memset(&v, 0, sizeof v);
    v.index = i;
    v.perm = HDL_PERM_PUBLIC_READ;
    v.type = S("DESC");
    v.data = (hdl_str){(const uint8_t *)data, sizeof data};
    assert_int_equal(hdl_value_encode(&vals, &v), 0);
  }
  hdl_reply_ctx c = {&req, HDL_RC_SUCCESS, 0, 0};
  assert_int_equal(hdl_encode_resolution_response(&msg, &c, S("88.118/abc"), 30,
                                                  (hdl_str){vals.data, (uint32_t)vals.len}),
                   0);
  uint16_t lens[64];
  int n = hdl_udp_split(msg.data, msg.len, &pkts, lens, 64);
  size_t body = msg.len - HDL_ENVELOPE_BYTES;
  assert_int_equal(n, (int)((body + 511) / 512));
  assert_true(n > 1);
  const uint8_t *p[64];
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    p[i] = pkts.data + off;
    assert_true(lens[i] <= HDL_UDP_PACKET_MAX);
    hdl_envelope e;
    assert_int_equal(hdl_envelope_decode(p[i], lens[i], HDL_MESSAGE_MAX, &e), 0);
    assert_true(e.flags & HDL_ENV_TC);
    assert_int_equal(e.seq, (uint32_t)i);
    assert_int_equal(e.msg_len, (uint32_t)body);
    off += lens[i];
  }
  /* Reassembly in forward order, reverse order, and with duplicates. */
  for (int order = 0; order < 3; order++) {
    hdl_reasm r;
    hdl_reasm_init(&r, HDL_MESSAGE_MAX);
    int done = 0;
    for (int k = 0; k < n; k++) {
      int i = order == 1 ? n - 1 - k : k;
      int rc = hdl_reasm_add(&r, p[i], lens[i]);
      if (order == 2)
        assert_true(hdl_reasm_add(&r, p[i], lens[i]) >= 0);
      assert_true(rc >= 0);
      done = rc == 1 || r.nseen == r.nchunks;
    }
    assert_true(done);
    hdl_message m;
    assert_int_equal(hdl_reasm_message(&r, &m), 0);
    assert_int_equal(m.hdr.body_len, msg.len - HDL_ENVELOPE_BYTES - HDL_HEADER_BYTES - 4);
    assert_memory_equal(r.data, msg.data + HDL_ENVELOPE_BYTES, body);
    hdl_resolution_resp resp;
    assert_int_equal(
        hdl_resolution_resp_decode(m.body, m.hdr.body_len, (m.hdr.opflags & HDL_OF_RD) != 0, &resp),
        0);
    assert_int_equal(resp.nvalues, 30);
    hdl_reasm_free(&r);
  }
  /* A chunk of another request is refused; a short chunk is invalid. */
  hdl_reasm r;
  hdl_reasm_init(&r, HDL_MESSAGE_MAX);
  assert_int_equal(hdl_reasm_add(&r, p[0], lens[0]), 0);
  uint8_t other[HDL_UDP_PACKET_MAX];
  memcpy(other, p[1], lens[1]);
  other[11] ^= 1;
  assert_int_equal(hdl_reasm_add(&r, other, lens[1]), PL_ECONFLICT);
  assert_int_equal(hdl_reasm_add(&r, p[1], lens[1] - 1u), PL_EINVAL);
  hdl_reasm_free(&r);
  /* Too many packets needed. */
  pl_buf_reset(&pkts);
  assert_int_equal(hdl_udp_split(msg.data, msg.len, &pkts, lens, 2), PL_ELIMIT);
  /* A small message is one packet, unchanged. */
  pl_buf_reset(&pkts);
  assert_int_equal(hdl_udp_split(req_fixture, sizeof req_fixture, &pkts, lens, 4), 1);
  assert_memory_equal(pkts.data, req_fixture, sizeof req_fixture);
  hdl_reasm_init(&r, HDL_MESSAGE_MAX);
  assert_int_equal(hdl_reasm_add(&r, req_fixture, sizeof req_fixture), 1);
  hdl_reasm_free(&r);
  pl_buf_free(&vals);
  pl_buf_free(&msg);
  pl_buf_free(&pkts);
}

static void test_siteinfo_request(void **state) {
  (void)state;
  pl_buf b;
  pl_buf_init(&b, 0);
  assert_int_equal(hdl_encode_siteinfo_request(&b, 9), 0);
  hdl_message m = decode_one(&b);
  assert_int_equal(m.hdr.opcode, HDL_OC_GET_SITEINFO);
  assert_int_equal(m.hdr.body_len, 0);
  assert_int_equal(m.env.request_id, 9);
  pl_buf_free(&b);
}

static void test_credential(void **state) {
  (void)state;
  /* A request with a 6-byte credential section: parsed for length and skipped. */
  uint8_t m[sizeof req_fixture + 6];
  memcpy(m, req_fixture, sizeof req_fixture);
  m[19] = 61 + 6;
  m[sizeof req_fixture - 1] = 6;
  memcpy(m + sizeof req_fixture, "\x01\x00\x00\x00\x00\x00", 6);
  hdl_message msg;
  assert_int_equal(hdl_frame_decode(m, sizeof m, HDL_MESSAGE_MAX, &msg), (int)sizeof m);
  assert_non_null(msg.credential);
  assert_int_equal(msg.cred_len, 6);
  /* A credential length past the message is invalid. */
  m[sizeof req_fixture - 1] = 7;
  assert_int_equal(hdl_frame_decode(m, sizeof m, HDL_MESSAGE_MAX, &msg), PL_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_request_fixture), cmocka_unit_test(test_versions),
      cmocka_unit_test(test_value_fixture),   cmocka_unit_test(test_response_round_trip),
      cmocka_unit_test(test_filters),         cmocka_unit_test(test_siteinfo),
      cmocka_unit_test(test_udp_chunks),      cmocka_unit_test(test_siteinfo_request),
      cmocka_unit_test(test_credential),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
