/* Lineage and recall (/api/v1/trace/{epc}, /api/v1/trace/{epc}/recall) over the events the
 * asker may see, and the consumer's product page (/trace/{epc}: public HTML, public events
 * only, in Chinese, Tibetan or English by Accept-Language). */
#include "http/http_int.h"

#include "base/clock.h"
#include "store/store_trace.h"
#include "trace/trace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int lineage_args(http_req *r, int *direction, int *depth) {
  const char *d = http_query(r, "direction"), *n = http_query(r, "depth");
  *direction = TRACE_BOTH;
  *depth = 10;
  if (d) {
    if (strcmp(d, "up") == 0)
      *direction = TRACE_UP;
    else if (strcmp(d, "down") == 0)
      *direction = TRACE_DOWN;
    else if (strcmp(d, "both") != 0)
      return http_reply_error(r, 400, "direction must be up, down or both");
  }
  if (n) {
    char *end;
    errno = 0;
    long v = strtol(n, &end, 10);
    if (errno || *end || !*n || v < 1 || v > TRACE_DEPTH_MAX)
      return http_reply_error(r, 400, "depth must be a whole number from 1 to %d", TRACE_DEPTH_MAX);
    *depth = (int)v;
  }
  return 0;
}

static int lineage_of(http_req *r, int direction, int depth, char *epc, size_t epcsz, json_t **out) {
  int64_t viewer;
  int st = http_epcis_viewer(r, &viewer);
  if (st)
    return st;
  if (trace_epc_normalise(r->match.params[0], epc, epcsz) < 0)
    return http_reply_error(r, 400, "\"%.200s\" is not a valid identifier", r->match.params[0]);
  size_t len = strlen(epc);
  if (len && epc[len - 1] == '*')
    return http_reply_error(r, 400, "a trace starts from one identifier, not a pattern");
  int rc = 0;
  json_t *g = trace_lineage(r->db, viewer, epc, direction, depth, TRACE_NODES_MAX, &rc);
  if (!g)
    return http_reply_pl(r, rc, NULL);
  /* a root no visible event names: unknown, or not visible to the asker (the same 404) */
  json_t *nodes = json_object_get(g, "nodes");
  json_t *root = json_array_get(nodes, 0);
  if (json_array_size(nodes) == 1 && !json_object_get(root, "lastEvent")) {
    json_decref(g);
    return http_reply_error(r, 404, "no event you may see names \"%.200s\"", r->match.params[0]);
  }
  *out = g;
  return 0;
}

static int trace(http_req *r) {
  int direction, depth;
  int st = lineage_args(r, &direction, &depth);
  if (st)
    return st;
  char epc[TRACE_EPC_MAX + 64];
  json_t *g;
  if ((st = lineage_of(r, direction, depth, epc, sizeof epc, &g)))
    return st;
  return http_reply_json(r, 200, g);
}

static void csv_field(pl_buf *b, const char *s) {
  if (!s)
    return;
  int quote = strpbrk(s, ",\"\r\n") != NULL || s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@';
  if (!quote) {
    pl_buf_append_str(b, s);
    return;
  }
  pl_buf_append_byte(b, '"');
  if (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@')
    pl_buf_append_byte(b, '\''); /* no formulas in a spreadsheet */
  for (; *s; s++) {
    if (*s == '"')
      pl_buf_append_byte(b, '"');
    pl_buf_append_byte(b, (uint8_t)*s);
  }
  pl_buf_append_byte(b, '"');
}

static int recall(http_req *r) {
  int depth = TRACE_DEPTH_MAX, direction;
  const char *fmt = http_query(r, "format");
  if (fmt && strcmp(fmt, "csv") != 0 && strcmp(fmt, "json") != 0)
    return http_reply_error(r, 400, "format must be json or csv");
  int st = lineage_args(r, &direction, &depth);
  if (st)
    return st;
  if (!http_query(r, "depth"))
    depth = TRACE_DEPTH_MAX;
  char epc[TRACE_EPC_MAX + 64];
  json_t *g;
  if ((st = lineage_of(r, TRACE_DOWN, depth, epc, sizeof epc, &g)))
    return st;
  json_t *items = json_array();
  size_t i;
  json_t *n;
  json_array_foreach(json_object_get(g, "nodes"), i, n) {
    json_t *it = json_pack("{s:O, s:O, s:O, s:O}", "epc", json_object_get(n, "epc"), "depth",
                           json_object_get(n, "depth"), "location", json_object_get(n, "location"), "disposition",
                           json_object_get(n, "disposition"));
    json_t *last = json_object_get(n, "lastEvent");
    if (it && last)
      json_object_set(it, "lastSeen", json_object_get(last, "eventTime"));
    if (it)
      json_array_append_new(items, it);
  }
  json_t *out = json_pack("{s:s, s:o, s:O, s:O, s:i}", "lot", epc, "affected", items, "complete",
                          json_object_get(g, "complete"), "stopped", json_object_get(g, "stopped"), "count",
                          (int)json_array_size(items));
  json_decref(g);
  if (!out)
    return http_reply_pl(r, PL_ENOMEM, NULL);
  char gen[48];
  pl_time_format(pl_now_ms() * 1000000, gen, sizeof gen);
  json_object_set_new(out, "generatedAt", json_string(gen));
  if (!fmt || strcmp(fmt, "json") == 0)
    return http_reply_json(r, 200, out);
  pl_buf_reset(&r->out);
  pl_buf_append_str(&r->out, "epc,depth,location,disposition,last_seen\r\n");
  json_array_foreach(json_object_get(out, "affected"), i, n) {
    csv_field(&r->out, json_string_value(json_object_get(n, "epc")));
    pl_buf_printf(&r->out, ",%lld,", (long long)json_integer_value(json_object_get(n, "depth")));
    csv_field(&r->out, json_string_value(json_object_get(n, "location")));
    pl_buf_append_byte(&r->out, ',');
    csv_field(&r->out, json_string_value(json_object_get(n, "disposition")));
    pl_buf_append_byte(&r->out, ',');
    csv_field(&r->out, json_string_value(json_object_get(n, "lastSeen")));
    pl_buf_append_str(&r->out, "\r\n");
  }
  if (!json_is_true(json_object_get(out, "complete")))
    pl_buf_append_str(&r->out, "# incomplete: the walk stopped at a bound (see the JSON form)\r\n");
  json_decref(out);
  r->status = 200;
  r->responded = 1;
  r->content_type = "text/csv; charset=utf-8";
  return 200;
}

const http_route api_trace_routes[] = {
    {"GET", "/api/v1/trace/{epc}", (void *)trace, AUTH_PERM_DATA_READ, "trace.lineage"},
    {"GET", "/api/v1/trace/{epc}/recall", (void *)recall, AUTH_PERM_DATA_READ, "trace.recall"},
};
const size_t api_trace_nroutes = sizeof api_trace_routes / sizeof api_trace_routes[0];
