/* GS1 Digital Link resolution on this node's HTTP listener (/01/{gtin}/..., /00/{sscc},
 * /414/{gln}, /8003/{grai}, /8004/{giai}, ...), with the semantics of a GS1-conformant
 * resolver:
 *   - a malformed URI (bad AI, check digit, qualifier order, value syntax): 400;
 *   - no identifier record for the key (nor for the key with fewer qualifiers): 404;
 *   - linkType=all, or Accept: application/linkset+json: 200 with the linkset (RFC 9264);
 *   - linkType=X: 307 to the link of that type (the one whose hreflang matches
 *     Accept-Language when several do), 300 with the candidates when it cannot choose, and the
 *     default link when the record has no link of that type;
 *   - no linkType: 307 to the default link (type gs1:defaultLink, else the first URL value,
 *     else the first link);
 *   - /.well-known/gs1resolver: the resolver description.
 * A record is the identifier whose GS1 value maps the key (ident_gs1_index); its links are
 * its values whose type is a link type ("gs1:pip", "https://gs1.org/voc/pip") with data a URL
 * or a JSON object {"href", "title", "type", "hreflang": [...], "context"}. Restricted values
 * never appear here: resolution is anonymous. The lookup walks up the qualifier path: a
 * request for /01/G/10/L/21/S is answered by the record of /01/G/10/L, then of /01/G.
 */
#include "http/http_int.h"

#include "base/clock.h"
#include "ident/digital_link.h"
#include "ident/ident.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VOC "https://gs1.org/voc/"
#define LINKS_MAX 256

typedef struct dl_link {
  char type[128]; /* short form "gs1:pip" */
  json_t *obj;    /* {"href", "title"?, "type"?, "hreflang"?, "context"?} */
} dl_link;

typedef struct record {
  int found;
  char handle[IDENT_HANDLE_MAX + 1];
  char description[256];
  dl_link links[LINKS_MAX];
  int nlinks;
  int default_link; /* index, or -1 */
  char default_type[128];
} record;

/* "https://gs1.org/voc/pip", "gs1:pip" -> "gs1:pip"; other types unchanged. */
static void short_type(const char *t, size_t n, char *out, size_t outsz) {
  if (n > strlen(VOC) && !strncmp(t, VOC, strlen(VOC)))
    snprintf(out, outsz, "gs1:%.*s", (int)(n - strlen(VOC)), t + strlen(VOC));
  else if (n > 19 && !strncmp(t, "http://gs1.org/voc/", 19))
    snprintf(out, outsz, "gs1:%.*s", (int)(n - 19), t + 19);
  else
    snprintf(out, outsz, "%.*s", (int)n, t);
}

static int is_link_type(const char *t) {
  return !strncmp(t, "gs1:", 4) || !strncmp(t, "schema:", 7);
}

static int on_record(void *ctx, const store_handle *h) {
  record *rec = ctx;
  rec->found = 1;
  rec->default_link = -1;
  snprintf(rec->handle, sizeof rec->handle, "%s", h->handle);
  uint32_t pos = 0;
  hdl_value v;
  hdl_str buf = {h->values ? h->values : (const uint8_t *)"", (uint32_t)h->values_len};
  int first_url = -1;
  for (uint32_t i = 0; i < h->nvalues && hdl_value_next(buf, &pos, &v) == 1; i++) {
    if (!(v.perm & HDL_PERM_PUBLIC_READ))
      continue;
    char type[128];
    short_type((const char *)v.type.p, v.type.len, type, sizeof type);
    if (!strcmp(type, "DESC") && !rec->description[0]) {
      snprintf(rec->description, sizeof rec->description, "%.*s", (int)v.data.len,
               (const char *)v.data.p);
      continue;
    }
    if (!strcmp(type, "GS1_DEFAULT_LINKTYPE")) {
      short_type((const char *)v.data.p, v.data.len, rec->default_type, sizeof rec->default_type);
      continue;
    }
    int url = !strcmp(type, "URL");
    if ((!url && !is_link_type(type)) || rec->nlinks == LINKS_MAX)
      continue;
    json_t *obj = NULL;
    if (v.data.len && v.data.p[0] == '{') {
      obj = json_loadb((const char *)v.data.p, v.data.len, 0, NULL);
      if (!json_is_object(obj) || !json_is_string(json_object_get(obj, "href"))) {
        json_decref(obj);
        obj = NULL;
      }
    }
    if (!obj)
      obj = json_pack("{s:s%}", "href", (const char *)v.data.p, (size_t)v.data.len);
    if (!obj)
      continue;
    /* The registry checks links; still, nothing with a control character or space goes into a
     * Location header. */
    const char *h = json_string_value(json_object_get(obj, "href"));
    int bad = 0;
    for (const unsigned char *c = (const unsigned char *)h; c && *c && !bad; c++)
      bad = *c <= 0x20 || *c == 0x7f;
    if (bad) {
      json_decref(obj);
      continue;
    }
    dl_link *l = &rec->links[rec->nlinks];
    snprintf(l->type, sizeof l->type, "%s", url ? "gs1:pip" : type);
    l->obj = obj;
    if (!strcmp(type, "gs1:defaultLink") && rec->default_link < 0)
      rec->default_link = rec->nlinks;
    if (url && first_url < 0)
      first_url = rec->nlinks;
    rec->nlinks++;
  }
  if (rec->default_link < 0 && rec->default_type[0]) {
    for (int i = 0; i < rec->nlinks && rec->default_link < 0; i++)
      if (!strcmp(rec->links[i].type, rec->default_type))
        rec->default_link = i;
  }
  if (rec->default_link < 0)
    rec->default_link = first_url >= 0 ? first_url : (rec->nlinks ? 0 : -1);
  return 0;
}

/* Appends value percent-encoded (everything but RFC 3986's unreserved characters). */
static int append_encoded(pl_buf *out, const char *value) {
  static const char hex[] = "0123456789ABCDEF";
  int rc = 0;
  for (const unsigned char *v = (const unsigned char *)value; *v && rc == 0; v++) {
    if ((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') || (*v >= '0' && *v <= '9') || strchr("-._~", *v)) {
      rc = pl_buf_append_byte(out, *v);
    } else {
      uint8_t e[3] = {'%', (uint8_t)hex[*v >> 4], (uint8_t)hex[*v & 15]};
      rc = pl_buf_append(out, e, 3);
    }
  }
  return rc;
}

/* Every record resolves gs1:traceability: when the owner registered no such link, to this
 * node's product story page for the item (/trace?epc=<the Digital Link>), which shows the
 * public trace events and any recall. It is the default link too when the record has none. */
static void add_trace_link(record *rec, const char *base, const char *requested) {
  for (int i = 0; i < rec->nlinks; i++)
    if (!strcmp(rec->links[i].type, "gs1:traceability"))
      return;
  if (rec->nlinks == LINKS_MAX)
    return;
  pl_buf href;
  pl_buf_init(&href, 8192);
  char item[DL_KEY_PATH_MAX + 320];
  snprintf(item, sizeof item, "%s%s", base, requested);
  int rc = pl_buf_printf(&href, "%s/trace?epc=", base);
  if (rc == 0)
    rc = append_encoded(&href, item);
  json_t *obj = rc == 0 ? json_pack("{s:s%, s:s}", "href", (const char *)href.data, href.len, "title",
                                    "Product story and recall status")
                        : NULL;
  pl_buf_free(&href);
  if (!obj)
    return;
  dl_link *l = &rec->links[rec->nlinks];
  snprintf(l->type, sizeof l->type, "gs1:traceability");
  l->obj = obj;
  if (rec->default_link < 0)
    rec->default_link = rec->nlinks;
  rec->nlinks++;
}

/* Replaces each "{name}" in the links' hrefs with value (percent-encoded): the record of a
 * qualifier template ("/21/{serialnumber}") sends each serial to its own page. */
static void fill_templates(record *rec, const char *value) {
  for (int i = 0; i < rec->nlinks; i++) {
    const char *h = json_string_value(json_object_get(rec->links[i].obj, "href"));
    if (!h || !strchr(h, '{'))
      continue;
    pl_buf out;
    pl_buf_init(&out, 8192);
    int ok = 1;
    for (const char *c = h; *c && ok;) {
      const char *close = *c == '{' ? strchr(c, '}') : NULL;
      if (close) {
        ok = append_encoded(&out, value) == 0;
        c = close + 1;
      } else {
        ok = pl_buf_append_byte(&out, (uint8_t)*c++) == 0;
      }
    }
    if (ok)
      json_object_set_new(rec->links[i].obj, "href", json_stringn((const char *)out.data, out.len));
    pl_buf_free(&out);
  }
}

static void record_free(record *rec) {
  for (int i = 0; i < rec->nlinks; i++)
    json_decref(rec->links[i].obj);
  rec->nlinks = 0;
}

static const char *href(const dl_link *l) {
  return json_string_value(json_object_get(l->obj, "href"));
}

/* Whether the link's hreflang names a language of Accept-Language (primary subtags compared). */
static int lang_score(const dl_link *l, const char *accept) {
  if (!accept)
    return 0;
  json_t *hl = json_object_get(l->obj, "hreflang");
  size_t i;
  json_t *lang;
  int best = 0;
  json_array_foreach(hl, i, lang) {
    const char *lv = json_string_value(lang);
    if (!lv)
      continue;
    /* Earlier languages in Accept-Language weigh more. */
    int rank = 100;
    for (const char *a = accept; *a && rank > 0; rank--) {
      while (*a == ' ' || *a == ',')
        a++;
      size_t n = strcspn(a, ",;");
      if (n && (!strncasecmp(a, lv, n) && (lv[n] == 0 || lv[n] == '-')))
        best = rank > best ? rank : best;
      else if (n >= 2 && !strncasecmp(a, lv, 2) && (lv[2] == 0 || lv[2] == '-') && rank - 1 > best)
        best = rank - 1;
      a += n;
      while (*a && *a != ',')
        a++;
    }
  }
  return best;
}

static json_t *linkset(const record *rec, const char *anchor, const char *only_type) {
  json_t *set = json_object();
  json_object_set_new(set, "anchor", json_string(anchor));
  if (rec->description[0])
    json_object_set_new(set, "itemDescription", json_string(rec->description));
  for (int i = 0; i < rec->nlinks; i++) {
    const dl_link *l = &rec->links[i];
    if (only_type && strcmp(l->type, only_type) != 0)
      continue;
    char key[200];
    snprintf(key, sizeof key, "%s%s", !strncmp(l->type, "gs1:", 4) ? VOC : "",
             !strncmp(l->type, "gs1:", 4) ? l->type + 4 : l->type);
    json_t *arr = json_object_get(set, key);
    if (!arr) {
      arr = json_array();
      json_object_set_new(set, key, arr);
    }
    json_array_append(arr, l->obj);
  }
  if (!only_type && rec->default_link >= 0)
    json_object_set_new(set, VOC "defaultLink",
                        json_pack("[O]", rec->links[rec->default_link].obj));
  return json_pack("{s:[o]}", "linkset", set);
}

static int redirect(http_req *r, int status, const char *location, const char *linkset_url) {
  http_add_header(r, "Location", location);
  if (linkset_url) {
    char lh[1200];
    snprintf(lh, sizeof lh, "<%s>; rel=\"linkset\"; type=\"application/linkset+json\"",
             linkset_url);
    http_add_header(r, "Link", lh);
  }
  http_add_header(r, "Vary", "Accept, Accept-Language");
  return http_reply_json(r, status, json_pack("{s:s}", "location", location));
}

static enum MHD_Result add_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value) {
  pl_buf *b = cls;
  static const char hex[] = "0123456789ABCDEF";
  pl_buf_append_byte(b, b->len ? '&' : '?');
  const char *parts[2] = {key, value};
  for (int k = 0; k < 2; k++) {
    if (k == 1) {
      if (!value)
        break;
      pl_buf_append_byte(b, '=');
    }
    for (const unsigned char *p = (const unsigned char *)parts[k]; *p; p++) {
      if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          strchr("-._~:", *p)) {
        pl_buf_append_byte(b, *p);
      } else {
        uint8_t e[3] = {'%', (uint8_t)hex[*p >> 4], (uint8_t)hex[*p & 15]};
        pl_buf_append(b, e, 3);
      }
    }
  }
  return MHD_YES;
}

static int resolve_dl(http_req *r) {
  const dl_dict *dict = ident_gs1_dict(r->deps->ident);
  pl_buf uri;
  pl_buf_init(&uri, DL_URI_MAX + 1);
  pl_buf q;
  pl_buf_init(&q, DL_URI_MAX);
  MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, add_query, &q);
  int rc = pl_buf_append_str(&uri, r->path);
  if (rc == 0 && q.len)
    rc = pl_buf_append(&uri, q.data, q.len);
  pl_buf_free(&q);
  dl_uri *u = malloc(sizeof *u);
  pl_err err = {{0}};
  if (rc == 0 && u)
    rc = dl_parse(dict, (const char *)uri.data, uri.len, u, &err);
  else if (rc == 0)
    rc = PL_ENOMEM;
  pl_buf_free(&uri);
  if (rc < 0) {
    free(u);
    if (rc == PL_ENOMEM)
      return http_reply_error(r, 500, "out of memory");
    return http_reply_error(r, 400, "not a valid GS1 Digital Link: %s",
                            err.msg[0] ? err.msg : "malformed");
  }
  const char *host = http_header(r, "Host");
  char base[300], anchor[DL_KEY_PATH_MAX + 300];
  snprintf(base, sizeof base, "http://%.250s", host && *host ? host : "localhost");
  record *rec = calloc(1, sizeof *rec);
  if (!rec) {
    free(u);
    return http_reply_error(r, 500, "out of memory");
  }
  char key[DL_KEY_PATH_MAX];
  char tvalue[DL_KEY_PATH_MAX] = ""; /* the value a template record (key ending "/21/ *") matched */
  for (int nq = u->nqual; nq >= 0 && !rec->found; nq--) {
    int kl = dl_key_path(u, nq, key, sizeof key);
    if (kl < 0)
      break;
    rc = store_gs1_lookup(r->db, key, on_record, rec);
    if (rc < 0 && rc != PL_ENOTFOUND)
      break;
    if (rc == PL_ENOTFOUND && nq > 0 && (kl = dl_key_path(u, nq - 1, key, sizeof key)) >= 0 &&
        snprintf(key + kl, sizeof key - (size_t)kl, "/%s/*", u->qual[nq - 1].ai) > 0) {
      rc = store_gs1_lookup(r->db, key, on_record, rec);
      if (rc == 0)
        snprintf(tvalue, sizeof tvalue, "%s", u->qual[nq - 1].value);
      if (rc < 0 && rc != PL_ENOTFOUND)
        break;
    }
    rc = 0;
  }
  if (tvalue[0])
    fill_templates(rec, tvalue);
  char requested[DL_KEY_PATH_MAX];
  dl_key_path(u, u->nqual, requested, sizeof requested);
  const char *link_type_param = dl_param_get(u, "linkType");
  char link_type[128] = "";
  if (link_type_param)
    short_type(link_type_param, strlen(link_type_param), link_type, sizeof link_type);
  free(u);
  if (rc < 0) {
    free(rec);
    return http_reply_pl(r, rc, NULL);
  }
  if (!rec->found) {
    free(rec);
    return http_reply_error(r, 404, "no record for %s on this resolver", requested);
  }
  add_trace_link(rec, base, requested);
  snprintf(anchor, sizeof anchor, "%s%s", base, requested);
  char linkset_url[DL_KEY_PATH_MAX + 320];
  snprintf(linkset_url, sizeof linkset_url, "%s?linkType=all", anchor);
  const char *accept = http_header(r, "Accept");
  const char *accept_lang = http_header(r, "Accept-Language");
  int st;
  if (!strcmp(link_type, "all") || !strcmp(link_type, "linkset") ||
      (accept && strstr(accept, "application/linkset+json"))) {
    st = http_reply_json(r, 200, linkset(rec, anchor, NULL));
    r->content_type = "application/linkset+json";
    http_add_header(r, "Vary", "Accept, Accept-Language");
  } else {
    int cand[LINKS_MAX], nc = 0;
    if (link_type[0])
      for (int i = 0; i < rec->nlinks; i++)
        if (!strcmp(rec->links[i].type, link_type))
          cand[nc++] = i;
    if (nc == 0) {
      /* No link type asked, or none of that type: the default link, in the reader's language
       * when the default type has several. */
      int d = rec->default_link;
      if (d < 0) {
        st = http_reply_error(r, 404, "the record for %s has no links", requested);
        record_free(rec);
        free(rec);
        return st;
      }
      int best = d, score = lang_score(&rec->links[d], accept_lang);
      for (int i = 0; i < rec->nlinks; i++) {
        if (strcmp(rec->links[i].type, rec->links[d].type) != 0)
          continue;
        int s = lang_score(&rec->links[i], accept_lang);
        if (s > score) {
          best = i;
          score = s;
        }
      }
      st = redirect(r, 307, href(&rec->links[best]), linkset_url);
    } else if (nc == 1) {
      st = redirect(r, 307, href(&rec->links[cand[0]]), linkset_url);
    } else {
      int best = -1, score = 0, ties = 0;
      for (int i = 0; i < nc; i++) {
        int s = lang_score(&rec->links[cand[i]], accept_lang);
        if (s > score) {
          best = cand[i];
          score = s;
          ties = 0;
        } else if (s == score && s > 0) {
          ties++;
        }
      }
      if (best >= 0 && !ties) {
        st = redirect(r, 307, href(&rec->links[best]), linkset_url);
      } else {
        st = http_reply_json(r, 300, linkset(rec, anchor, link_type));
        r->content_type = "application/linkset+json";
        http_add_header(r, "Vary", "Accept, Accept-Language");
      }
    }
  }
  record_free(rec);
  free(rec);
  return st;
}

static int well_known(http_req *r) {
  const char *host = http_header(r, "Host");
  char root[300];
  snprintf(root, sizeof root, "http://%.250s", host && *host ? host : "localhost");
  json_t *o =
      json_pack("{s:s, s:s, s:[{s:s, s:s}, {s:s, s:s}], s:[s], s:b, s:b, s:b, s:b, s:s}", "name",
                "Plateau identifier resolution node", "resolverRoot", root, "supportedLinkType",
                "namespace", VOC, "prefix", "gs1:", "namespace", "https://schema.org/", "prefix",
                "schema:", "supportedPrimaryKeys", "all", "linkTypeDefaultCanBeAll", 0,
                "supportsLanguageVariants", 1, "supportsSemanticInterpretation", 0,
                "validatesAIcombinations", 1, "linksetMediaType", "application/linkset+json");
  return http_reply_json(r, 200, o);
}

#define DL_ROUTES(K)                                                                               \
  {"GET", "/" K "/{k}", (void *)resolve_dl, HTTP_PERM_PUBLIC, "dl.resolve"},                       \
      {"GET", "/" K "/{k}/{q1}/{v1}", (void *)resolve_dl, HTTP_PERM_PUBLIC, "dl.resolve"},         \
      {"GET", "/" K "/{k}/{q1}/{v1}/{q2}/{v2}", (void *)resolve_dl, HTTP_PERM_PUBLIC,              \
       "dl.resolve"},                                                                              \
  {                                                                                                \
    "GET", "/" K "/{k}/{q1}/{v1}/{q2}/{v2}/21/{v3}", (void *)resolve_dl, HTTP_PERM_PUBLIC,         \
        "dl.resolve"                                                                               \
  }

const http_route api_digital_link_routes[] = {
    {"GET", "/.well-known/gs1resolver", (void *)well_known, HTTP_PERM_PUBLIC, "dl.describe"},
    DL_ROUTES("01"),
    DL_ROUTES("00"),
    DL_ROUTES("253"),
    DL_ROUTES("255"),
    DL_ROUTES("401"),
    DL_ROUTES("402"),
    DL_ROUTES("414"),
    DL_ROUTES("415"),
    DL_ROUTES("417"),
    DL_ROUTES("8003"),
    DL_ROUTES("8004"),
    DL_ROUTES("8006"),
    DL_ROUTES("8010"),
    DL_ROUTES("8013"),
    DL_ROUTES("8017"),
    DL_ROUTES("8018"),
    DL_ROUTES("gtin"),
    DL_ROUTES("sscc"),
    DL_ROUTES("gln"),
    DL_ROUTES("giai"),
    DL_ROUTES("grai"),
};
const size_t api_digital_link_nroutes =
    sizeof api_digital_link_routes / sizeof api_digital_link_routes[0];
