/* Fuzz target: the Handle protocol codec as the server and the client use it — stream frames,
 * resolution request and response bodies, values, site information, HS_ADMIN data, and UDP
 * reassembly of the input cut into packets. Whatever decodes must re-encode and decode to the
 * same values; nothing may read past the input. */
#include "ident/handle_codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_values(hdl_str buf, uint32_t n) {
  uint32_t pos = 0;
  hdl_value v;
  pl_buf b;
  pl_buf_init(&b, 0);
  for (uint32_t i = 0; i < n; i++) {
    if (hdl_value_next(buf, &pos, &v) != 1)
      abort();
    pl_buf_reset(&b);
    if (hdl_value_encode(&b, &v) < 0)
      abort();
    hdl_value w;
    if (hdl_value_decode(b.data, b.len, &w) != 0)
      abort();
    if (w.index != v.index || w.data.len != v.data.len || memcmp(w.data.p, v.data.p, v.data.len))
      abort();
    uint32_t rp = 0, idx;
    hdl_str h;
    while (hdl_ref_next(&v, &rp, &h, &idx)) {
    }
  }
  pl_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hdl_message m;
  int n = hdl_frame_decode(data, size, 1u << 20, &m);
  if (n > 0) {
    hdl_resolution_req r;
    if (hdl_resolution_req_decode(m.body, m.hdr.body_len, &r) == 0) {
      for (uint32_t i = 0; i < r.nindexes; i++)
        (void)hdl_req_index(&r, i);
      uint32_t pos = 0;
      hdl_str t;
      while (hdl_req_type_next(&r, &pos, &t)) {
      }
      /* Re-encode the request and answer it with an error, as the server would. */
      pl_buf b;
      pl_buf_init(&b, 0);
      hdl_reply_ctx c = {&m, 100, 0, 0};
      if (hdl_encode_error(&b, &c, "not found") < 0)
        abort();
      hdl_message back;
      if (hdl_frame_decode(b.data, b.len, 1u << 20, &back) != (int)b.len)
        abort();
      pl_buf_free(&b);
    }
    for (int digest = 0; digest < 2; digest++) {
      hdl_resolution_resp resp;
      if (hdl_resolution_resp_decode(m.body, m.hdr.body_len, digest, &resp) == 0)
        check_values(resp.values, resp.nvalues);
    }
  }
  hdl_value v;
  (void)hdl_value_decode(data, size, &v);
  hdl_site_server sv;
  (void)hdl_siteinfo_decode_first(data, size, &sv, NULL);
  uint16_t perms;
  hdl_str h;
  uint32_t idx;
  (void)hdl_admin_decode((hdl_str){data, (uint32_t)size}, &perms, &h, &idx);
  /* Reassembly: cut the input into packets at 532-byte strides. */
  hdl_reasm ra;
  hdl_reasm_init(&ra, 1u << 20);
  for (size_t off = 0; off < size; off += HDL_UDP_PACKET_MAX) {
    size_t len = size - off < HDL_UDP_PACKET_MAX ? size - off : HDL_UDP_PACKET_MAX;
    int rc = hdl_reasm_add(&ra, data + off, len);
    if (rc == 1) {
      hdl_message mm;
      (void)hdl_reasm_message(&ra, &mm);
      break;
    }
  }
  hdl_reasm_free(&ra);
  return 0;
}
