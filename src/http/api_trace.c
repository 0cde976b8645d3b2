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


/* ---- equipment readings joined to production and inspection events ----
 * An event names the devices that made or checked a batch with the extension
 * "plateau:devices": ["filler-1", ...] (device names of the event's tenant), or implicitly
 * through its readPoint: every device of the tenant whose location is that readPoint (as
 * written, or in the same normalised form). The span is "plateau:timeSpan": {"start", "end"}
 * when given, else the hour before the event time. Each numeric field of each device (measurement
 * "device", tag device=<name>, the tenant's own namespace) is summarised over the span by
 * tsdb_aggregate: count, mean, min, max. At most EQUIP_EVENTS_MAX events and
 * EQUIP_DEVICES_MAX devices per event are joined. */
#define EQUIP_EVENTS_MAX 50
#define EQUIP_DEVICES_MAX 16
#define EQUIP_FIELDS_MAX 32

typedef struct fields_of {
  const char *device;
  char names[EQUIP_FIELDS_MAX][64];
  int n;
} fields_of;

static int collect_fields(void *ctx, const tsdb_group_info *g) {
  fields_of *f = ctx;
  for (size_t i = 0; i < g->ntags; i++) {
    if (g->tags[i].key.len == 6 && memcmp(g->tags[i].key.p, "device", 6) == 0 &&
        g->tags[i].value.len == strlen(f->device) && memcmp(g->tags[i].value.p, f->device, g->tags[i].value.len) == 0 &&
        g->ntags == 1) {
      for (size_t k = 0; k < g->nfields && f->n < EQUIP_FIELDS_MAX; k++) {
        if (g->field_types[k] == TSDB_STRING || g->field_names[k].len >= 64)
          continue;
        snprintf(f->names[f->n++], 64, "%.*s", (int)g->field_names[k].len, g->field_names[k].p);
      }
      return 1;
    }
  }
  return 0;
}

static json_t *device_readings(http_req *r, int64_t tenant_id, const char *device, int64_t start_ms, int64_t end_ms) {
  fields_of f;
  memset(&f, 0, sizeof f);
  f.device = device;
  tsdb_str m = {"device", 6};
  if (tsdb_groups(r->deps->tsdb, tenant_id, m, collect_fields, &f) < 0 || f.n == 0)
    return json_pack("{s:s, s:{}}", "device", device, "fields");
  tsdb_tag tag = {{"device", 6}, {device, strlen(device)}};
  uint64_t gid;
  if (tsdb_group_find(r->deps->tsdb, tenant_id, m, &tag, 1, &gid) < 0)
    return json_pack("{s:s, s:{}}", "device", device, "fields");
  json_t *fields = json_object();
  for (int i = 0; fields && i < f.n; i++) {
    tsdb_agg_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.start_ns = start_ms * 1000000;
    spec.end_ns = end_ms * 1000000;
    spec.aggs = TSDB_AGG_COUNT | TSDB_AGG_MEAN | TSDB_AGG_MIN | TSDB_AGG_MAX;
    tsdb_buckets b = {0};
    if (tsdb_aggregate(r->deps->tsdb, tenant_id, gid, f.names[i], &spec, &b) == 0 && b.n > 0 && b.b[0].present)
      json_object_set_new(fields, f.names[i],
                          json_pack("{s:I, s:f, s:f, s:f}", "count", (json_int_t)b.b[0].count, "mean", b.b[0].mean,
                                    "min", b.b[0].min, "max", b.b[0].max));
    tsdb_buckets_free(&b);
  }
  return json_pack("{s:s, s:o}", "device", device, "fields", fields ? fields : json_object());
}

typedef struct equip {
  http_req *r;
  json_t *out;
  int events;
} equip;

typedef struct loc_match {
  const char *raw, *norm;
  json_t *names;
} loc_match;

static int device_at(void *ctx, const store_device *d) {
  loc_match *m = ctx;
  char norm[TRACE_EPC_MAX + 64];
  if (!d->location[0] || json_array_size(m->names) >= EQUIP_DEVICES_MAX)
    return 0;
  int same = strcmp(d->location, m->raw) == 0 ||
             (trace_epc_normalise(d->location, norm, sizeof norm) >= 0 && strcmp(norm, m->norm) == 0);
  if (same)
    json_array_append_new(m->names, json_string(d->name));
  return 0;
}

static int equip_event(void *ctx, const store_trace_row *row) {
  equip *e = ctx;
  if (e->events >= EQUIP_EVENTS_MAX)
    return 0;
  json_t *ev = json_loadb(row->doc, row->doc_len, 0, NULL);
  if (!ev)
    return 0;
  json_t *names = json_array();
  json_t *listed = json_object_get(ev, "plateau:devices");
  size_t i;
  json_t *x;
  json_array_foreach(listed, i, x) if (json_is_string(x) && json_array_size(names) < EQUIP_DEVICES_MAX)
      json_array_append(names, x);
  const char *rp = pl_json_str(json_object_get(ev, "readPoint"), "id", NULL);
  if (rp) {
    char norm[TRACE_EPC_MAX + 64];
    if (trace_epc_normalise(rp, norm, sizeof norm) >= 0) {
      loc_match m = {rp, norm, names};
      store_device_list(e->r->db, row->tenant_id, 0, 1000, device_at, &m);
    }
  }
  if (json_array_size(names)) {
    int64_t end = row->event_time_ms, start = end - 3600 * 1000;
    json_t *span = json_object_get(ev, "plateau:timeSpan");
    int64_t ns;
    if (json_is_object(span) && pl_time_parse(pl_json_str(span, "start", ""), &ns) == 0) {
      start = ns / 1000000;
      if (pl_time_parse(pl_json_str(span, "end", ""), &ns) == 0)
        end = ns / 1000000;
    }
    if (end <= start)
      end = start + 1;
    json_t *devices = json_array();
    json_array_foreach(names, i, x) json_array_append_new(devices, device_readings(e->r, row->tenant_id,
                                                                                   json_string_value(x), start, end));
    char ts[48], te[48];
    pl_time_format(start * 1000000, ts, sizeof ts);
    pl_time_format(end * 1000000, te, sizeof te);
    json_array_append_new(e->out, json_pack("{s:s, s:s, s:s, s:o}", "eventID", row->event_id, "start", ts, "end", te,
                                            "devices", devices));
    e->events++;
  }
  json_decref(names);
  json_decref(ev);
  return 0;
}

/* Adds "equipment" to a lineage graph: readings for the events naming the root and its
 * upstream nodes (the product's making). */
static void add_equipment(http_req *r, int64_t viewer, json_t *g) {
  const char *values[100];
  int n = 0;
  size_t i;
  json_t *node;
  json_array_foreach(json_object_get(g, "nodes"), i, node) {
    const char *dir = json_string_value(json_object_get(node, "direction"));
    if (n < 100 && dir && strcmp(dir, "down") != 0)
      values[n++] = json_string_value(json_object_get(node, "epc"));
  }
  store_trace_filter f;
  memset(&f, 0, sizeof f);
  f.viewer = viewer;
  f.conds[0].field = STORE_TRACE_F_EPC;
  f.conds[0].roles = 0xffffffffu;
  f.conds[0].values = values;
  f.conds[0].nvalues = n;
  f.nconds = 1;
  f.limit = 500;
  equip e = {r, json_array(), 0};
  if (e.out && n > 0 && r->deps->tsdb)
    store_trace_query(r->db, &f, equip_event, &e);
  json_object_set_new(g, "equipment", e.out ? e.out : json_array());
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
  int64_t viewer;
  if (auth_role_cross_tenant(r->who.role) && !http_query(r, "tenant"))
    viewer = 0;
  else
    viewer = r->who.tenant_id; /* lineage_of resolved (and checked) ?tenant= already */
  if (http_query(r, "tenant") && auth_role_cross_tenant(r->who.role)) {
    store_tenant t;
    if (store_tenant_get_by_name(r->db, http_query(r, "tenant"), &t) == 0)
      viewer = t.id;
  }
  add_equipment(r, viewer, g);
  return http_reply_json(r, 200, g);
}

/* ---- master data: GET /api/v1/masterdata?type=&id=&limit= ----
 * The vocabulary elements captured in documents' headers (epcisHeader.epcisMasterData): their
 * attributes and children, which WD_readPoint / WD_bizLocation follow. */

typedef struct vocab_page {
  json_t *items;
  int limit, count;
} vocab_page;

static int vocab_item(void *ctx, const store_trace_vocab_row *row) {
  vocab_page *p = ctx;
  if (++p->count > p->limit)
    return 0;
  json_t *attrs = json_loads(row->attributes, 0, NULL), *kids = json_loads(row->children, 0, NULL);
  json_t *o = json_pack("{s:I, s:s, s:s, s:o, s:o, s:o}", "tenantId", (json_int_t)row->tenant_id, "type", row->type,
                        "id", row->id, "attributes", attrs ? attrs : json_array(), "children",
                        kids ? kids : json_array(), "updatedAt", http_time_json(row->updated_ms));
  return o && json_array_append_new(p->items, o) == 0 ? 0 : PL_ENOMEM;
}

static int masterdata(http_req *r) {
  int64_t viewer;
  int st = http_epcis_viewer(r, &viewer);
  if (st)
    return st;
  /* limit as the other lists; the cursor is the "next" of the previous page: "<type> <id>" */
  const char *l = http_query(r, "limit"), *after = http_query(r, "after");
  int limit = 100;
  if (l) {
    char *end;
    long v = strtol(l, &end, 10);
    if (*end || !*l || v < 1 || v > 1000)
      return http_reply_error(r, 400, "limit must be a whole number from 1 to 1000");
    limit = (int)v;
  }
  char after_type[TRACE_EPC_MAX + 64] = "";
  const char *after_id = NULL;
  if (after) {
    const char *sp = strchr(after, ' ');
    if (!sp || sp == after || !sp[1] || (size_t)(sp - after) >= sizeof after_type)
      return http_reply_error(r, 400, "after must be the \"next\" of a previous page");
    memcpy(after_type, after, (size_t)(sp - after));
    after_type[sp - after] = 0;
    after_id = sp + 1;
  }
  const char *type = http_query(r, "type"), *id = http_query(r, "id");
  char norm[TRACE_EPC_MAX + 64];
  if (id) {
    if (trace_epc_normalise(id, norm, sizeof norm) < 0)
      return http_reply_error(r, 400, "id: \"%.64s\" is not a valid identifier", id);
    id = norm;
  }
  vocab_page p = {json_array(), limit, 0};
  int rc = p.items ? store_trace_vocab_list(r->db, viewer, type, id, after ? after_type : NULL, after_id, limit + 1,
                                            vocab_item, &p)
                   : PL_ENOMEM;
  if (rc < 0) {
    json_decref(p.items);
    return http_reply_pl(r, rc, NULL);
  }
  json_t *body = json_pack("{s:o}", "items", p.items);
  if (body && p.count > limit) {
    /* the cursor is the last item returned, not the extra one fetched */
    json_t *last = json_array_get(p.items, json_array_size(p.items) - 1);
    char next[2 * (TRACE_EPC_MAX + 64)];
    snprintf(next, sizeof next, "%s %s", pl_json_str(last, "type", ""), pl_json_str(last, "id", ""));
    json_object_set_new(body, "next", json_string(next));
  }
  return http_reply_json(r, 200, body);
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


/* ---- the consumer's page: /trace/{epc} ----
 * Public, server-rendered, no script, a few kilobytes: what a shopper on a slow phone link sees
 * after scanning a label. Only events their owner marked "plateau:public": true are read, and
 * from them only the fields below (never the whole event). Product, producer and origin come
 * from the extensions "plateau:product", "plateau:producer" and "plateau:origin" of those
 * events; the production date from the first commissioning/creating event; inspections from
 * events with bizStep inspecting (conformant / non_conformant); the journey from every public
 * event; the recall warning from a disposition "recalled" (or a persistentDisposition that
 * sets it) on any of them. */

enum { LANG_ZH, LANG_BO, LANG_EN };

static const char *const page_text[][3] = {
    /* 0 title */ {"产品溯源", "ཐོན་རྫས་ཀྱི་རྗེས་འདེད།", "Product story"},
    /* 1 */ {"产品", "ཐོན་རྫས།", "Product"},
    /* 2 */ {"生产商", "ཐོན་སྐྱེད་པ།", "Producer"},
    /* 3 */ {"产地", "འབྱུང་ཁུངས།", "Origin"},
    /* 4 */ {"生产日期", "ཐོན་སྐྱེད་ཚེས་གྲངས།", "Production date"},
    /* 5 */ {"检验", "ཞིབ་བཤེར།", "Inspections"},
    /* 6 */ {"流通记录", "འགྲུལ་ལམ།", "Journey"},
    /* 7 */ {"召回警告：本产品已被召回。请勿饮用或食用，请退回购买的商店。",
             "ཉེན་བརྡ། ཐོན་རྫས་འདི་ཕྱིར་བསྡུ་བྱས་ཟིན། བེད་སྤྱོད་མ་བྱེད་པར་ཉོ་ས་ཚོང་ཁང་དུ་ཕྱིར་སྤྲོད་རོགས།",
             "Recall warning: this product has been recalled. Do not drink or eat it; return it to the shop."},
    /* 8 */ {"合格", "ཚད་ལྡན།", "passed"},
    /* 9 */ {"不合格", "ཚད་མི་ལྡན།", "failed"},
    /* 10 */ {"未找到此产品的公开追溯信息。", "ཐོན་རྫས་འདིའི་སྤྱི་སྤེལ་རྗེས་འདེད་ཆ་འཕྲིན་མ་རྙེད།",
              "No public trace information was found for this product."},
    /* 11 */ {"未知", "མི་ཤེས།", "unknown"},
};

static int page_lang(http_req *r) {
  const char *al = http_header(r, "Accept-Language");
  if (!al)
    return LANG_ZH;
  /* the first listed language we have (q-values are rarely used by phones) */
  for (const char *p = al; *p;) {
    while (*p == ' ' || *p == ',')
      p++;
    if (strncasecmp(p, "bo", 2) == 0)
      return LANG_BO;
    if (strncasecmp(p, "zh", 2) == 0)
      return LANG_ZH;
    if (strncasecmp(p, "en", 2) == 0)
      return LANG_EN;
    const char *c = strchr(p, ',');
    if (!c)
      break;
    p = c + 1;
  }
  return LANG_ZH;
}

static void html(pl_buf *b, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
    case '<': pl_buf_append_str(b, "&lt;"); break;
    case '>': pl_buf_append_str(b, "&gt;"); break;
    case '&': pl_buf_append_str(b, "&amp;"); break;
    case '"': pl_buf_append_str(b, "&quot;"); break;
    case '\'': pl_buf_append_str(b, "&#39;"); break;
    default: pl_buf_append_byte(b, (uint8_t)*s);
    }
  }
}

/* The last path part of a CBV URI ("https://ref.gs1.org/cbv/BizStep-shipping" -> "shipping"). */
static const char *vocab_short(const char *v) {
  if (!v)
    return NULL;
  const char *dash = strrchr(v, '-');
  if (strncmp(v, "https://ref.gs1.org/cbv/", 24) == 0 && dash)
    return dash + 1;
  return v;
}

typedef struct story {
  json_t *events; /* [{time, step, location, disposition}] */
  const char *product, *producer, *origin;
  char product_buf[256], producer_buf[256], origin_buf[256];
  char produced[48];
  json_t *inspections;
  int recalled;
  store *db;
} story;

/* The "name" attribute (CBV master data: urn:epcglobal:cbv:mda#name, or any attribute id
 * ending in #name, :name or /name) of a location in its owner's master data, into out. */
static int location_name_cb(void *ctx, const store_trace_vocab_row *row) {
  char *out = ctx;
  json_t *attrs = json_loads(row->attributes, 0, NULL);
  size_t i;
  json_t *a;
  json_array_foreach(attrs, i, a) {
    const char *id = pl_json_str(a, "id", ""), *v = pl_json_str(a, "attribute", NULL);
    size_t n = strlen(id);
    if (v && *v && n >= 5 && strchr("#:/", id[n - 5]) && strcmp(id + n - 4, "name") == 0 && !out[0])
      snprintf(out, 256, "%s", v);
  }
  json_decref(attrs);
  return 0;
}

static void location_name(store *db, int64_t tenant_id, const char *loc, char out[256]) {
  char norm[TRACE_EPC_MAX + 64];
  out[0] = 0;
  if (trace_epc_normalise(loc, norm, sizeof norm) >= 0)
    store_trace_vocab_list(db, tenant_id, NULL, norm, NULL, NULL, 8, location_name_cb, out);
}

static void copy_ext(const json_t *ev, const char *key, char *buf, size_t sz, const char **dst) {
  const char *v = pl_json_str(ev, key, NULL);
  if (v && !*dst) {
    snprintf(buf, sz, "%s", v);
    *dst = buf;
  }
}

static int story_event(void *ctx, const store_trace_row *row) {
  story *s = ctx;
  json_t *ev = json_loadb(row->doc, row->doc_len, 0, NULL);
  if (!ev)
    return 0;
  copy_ext(ev, "plateau:product", s->product_buf, sizeof s->product_buf, &s->product);
  copy_ext(ev, "plateau:producer", s->producer_buf, sizeof s->producer_buf, &s->producer);
  copy_ext(ev, "plateau:origin", s->origin_buf, sizeof s->origin_buf, &s->origin);
  char step[1024] = "", disp[1024] = "";
  const char *bs = pl_json_str(ev, "bizStep", NULL), *ds = pl_json_str(ev, "disposition", NULL);
  if (bs)
    trace_vocab_normalise("BizStep", bs, step, sizeof step);
  if (ds)
    trace_vocab_normalise("Disp", ds, disp, sizeof disp);
  char t[48];
  pl_time_format(row->event_time_ms * 1000000, t, sizeof t);
  const char *sstep = vocab_short(step[0] ? step : NULL), *sdisp = vocab_short(disp[0] ? disp : NULL);
  if (sstep && (strcmp(sstep, "commissioning") == 0 || strcmp(sstep, "creating_class_instance") == 0) &&
      !s->produced[0])
    snprintf(s->produced, sizeof s->produced, "%.10s", t);
  if (sdisp && strcmp(sdisp, "recalled") == 0)
    s->recalled = 1;
  json_t *set = json_object_get(json_object_get(ev, "persistentDisposition"), "set");
  size_t i;
  json_t *x;
  json_array_foreach(set, i, x) {
    char d[1024];
    if (json_is_string(x) && trace_vocab_normalise("Disp", json_string_value(x), d, sizeof d) >= 0 &&
        strcmp(vocab_short(d), "recalled") == 0)
      s->recalled = 1;
  }
  const char *loc = pl_json_str(json_object_get(ev, "bizLocation"), "id", NULL);
  if (!loc)
    loc = pl_json_str(json_object_get(ev, "readPoint"), "id", NULL);
  const char *place = pl_json_str(ev, "plateau:place", NULL);
  char named[256] = "";
  if (!place && loc && s->db) {
    location_name(s->db, row->tenant_id, loc, named);
    if (named[0])
      place = named;
  }
  json_t *item = json_pack("{s:s, s:s, s:s, s:s}", "time", t, "step", sstep ? sstep : "", "place",
                           place ? place : (loc ? loc : ""), "disposition", sdisp ? sdisp : "");
  if (item)
    json_array_append_new(s->events, item);
  if (sstep && strcmp(sstep, "inspecting") == 0) {
    json_t *ins = json_pack("{s:s, s:b}", "time", t, "passed", !(sdisp && strcmp(sdisp, "non_conformant") == 0));
    if (ins)
      json_array_append_new(s->inspections, ins);
  }
  json_decref(ev);
  return 0;
}

static int render_page(http_req *r, const char *given) {
  int lang = page_lang(r);
  char epc[TRACE_EPC_MAX + 64], lot[TRACE_EPC_MAX + 64];
  int n = trace_epc_normalise(given, epc, sizeof epc);
  if (n < 0 || epc[n - 1] == '*')
    return http_reply_error(r, 400, "\"%.200s\" is not a product identifier", given);
  /* a serialised item's lot names it too: /01/{gtin}/10/{lot}/21/{serial} -> /01/{gtin}/10/{lot} */
  const char *values[2] = {epc, NULL};
  int nvalues = 1;
  const char *ser = strstr(epc, "/21/");
  if (strncmp(epc, "https://id.gs1.org/01/", 22) == 0 && strstr(epc, "/10/") && ser) {
    snprintf(lot, sizeof lot, "%.*s", (int)(ser - epc), epc);
    values[nvalues++] = lot;
  }
  store_trace_filter f;
  memset(&f, 0, sizeof f);
  f.public_only = 1;
  f.conds[0].field = STORE_TRACE_F_EPC;
  f.conds[0].roles = 0xffffffffu;
  f.conds[0].values = values;
  f.conds[0].nvalues = nvalues;
  f.nconds = 1;
  f.limit = 200;
  story s;
  memset(&s, 0, sizeof s);
  s.events = json_array();
  s.inspections = json_array();
  s.db = r->db;
  int rc = (s.events && s.inspections) ? store_trace_query(r->db, &f, story_event, &s) : PL_ENOMEM;
  if (rc < 0) {
    json_decref(s.events);
    json_decref(s.inspections);
    return http_reply_pl(r, rc, NULL);
  }
  static const char *const langs[] = {"zh", "bo", "en"};
  pl_buf *b = &r->out;
  pl_buf_reset(b);
  pl_buf_printf(b, "<!doctype html><html lang=\"%s\"><head><meta charset=\"utf-8\">"
                   "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>%s</title>"
                   "<style>body{font-family:sans-serif;margin:1em;max-width:40em}"
                   ".recall{background:#b00020;color:#fff;padding:1em;font-size:1.2em;font-weight:bold}"
                   "dt{font-weight:bold;margin-top:.5em}li{margin:.3em 0}</style></head><body>",
                langs[lang], page_text[0][lang]);
  pl_buf_printf(b, "<h1>%s</h1>", page_text[0][lang]);
  if (json_array_size(s.events) == 0) {
    pl_buf_printf(b, "<p>%s</p>", page_text[10][lang]);
  } else {
    if (s.recalled)
      pl_buf_printf(b, "<p class=\"recall\" role=\"alert\">%s</p>", page_text[7][lang]);
    pl_buf_append_str(b, "<dl>");
    const char *fields[] = {s.product ? s.product : given, s.producer, s.origin,
                            s.produced[0] ? s.produced : NULL};
    for (int i = 0; i < 4; i++) {
      pl_buf_printf(b, "<dt>%s</dt><dd>", page_text[1 + i][lang]);
      html(b, fields[i] ? fields[i] : page_text[11][lang]);
      pl_buf_append_str(b, "</dd>");
    }
    pl_buf_append_str(b, "</dl>");
    size_t i;
    json_t *x;
    if (json_array_size(s.inspections)) {
      pl_buf_printf(b, "<h2>%s</h2><ul>", page_text[5][lang]);
      json_array_foreach(s.inspections, i, x) {
        pl_buf_append_str(b, "<li>");
        html(b, json_string_value(json_object_get(x, "time")));
        pl_buf_printf(b, " — %s</li>", page_text[json_is_true(json_object_get(x, "passed")) ? 8 : 9][lang]);
      }
      pl_buf_append_str(b, "</ul>");
    }
    pl_buf_printf(b, "<h2>%s</h2><ol>", page_text[6][lang]);
    json_array_foreach(s.events, i, x) {
      pl_buf_append_str(b, "<li>");
      html(b, json_string_value(json_object_get(x, "time")));
      pl_buf_append_str(b, " ");
      html(b, json_string_value(json_object_get(x, "step")));
      const char *place = json_string_value(json_object_get(x, "place"));
      if (place && *place) {
        pl_buf_append_str(b, " @ ");
        html(b, place);
      }
      pl_buf_append_str(b, "</li>");
    }
    pl_buf_append_str(b, "</ol>");
  }
  pl_buf_append_str(b, "</body></html>\n");
  int found = json_array_size(s.events) > 0;
  json_decref(s.events);
  json_decref(s.inspections);
  http_add_header(r, "Content-Language", langs[lang]);
  http_add_header(r, "Vary", "Accept-Language");
  http_add_header(r, "Cache-Control", "public, max-age=60");
  r->status = found ? 200 : 404;
  r->responded = 1;
  r->content_type = "text/html; charset=utf-8";
  return r->status;
}

static int product_page(http_req *r) {
  return render_page(r, r->match.params[0]);
}

/* /trace?epc=...: for identifiers with '/' in them (Digital Link URIs), which cannot be one path
 * segment here (the server decodes %2F before routing). */
static int product_page_query(http_req *r) {
  const char *epc = http_query(r, "epc");
  if (!epc || !*epc)
    return http_reply_error(r, 400, "give the product's identifier: /trace/{epc} or /trace?epc=...");
  return render_page(r, epc);
}

const http_route api_trace_routes[] = {
    {"GET", "/trace", (void *)product_page_query, HTTP_PERM_PUBLIC, "trace.page"},
    {"GET", "/api/v1/masterdata", (void *)masterdata, AUTH_PERM_DATA_READ, "trace.masterdata"},
    {"GET", "/api/v1/trace/{epc}", (void *)trace, AUTH_PERM_DATA_READ, "trace.lineage"},
    {"GET", "/api/v1/trace/{epc}/recall", (void *)recall, AUTH_PERM_DATA_READ, "trace.recall"},
    {"GET", "/trace/{epc}", (void *)product_page, HTTP_PERM_PUBLIC, "trace.page"},
};
const size_t api_trace_nroutes = sizeof api_trace_routes / sizeof api_trace_routes[0];
