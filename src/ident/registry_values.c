/* The identifier registry's values: typed values as JSON in the Handle.net REST shape <-> the
 * Handle wire encoding kept in the store, the checks of the reserved types whose syntax Plateau
 * knows (HS_ADMIN, URL, GS1...), and metadata templates (their field lists, and the validation of
 * an identifier's values against one). registry.c writes what this encodes; registry_bulk.c
 * checks CSV cells with the same reserved-type checks. */
#include "ident/ident_int.h"
#include "ident/digital_link.h"

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- values ---- */

static const char *const reserved_types[] = {
    "HS_ADMIN",  "HS_SITE",   "HS_SITE.PREFIX", "HS_SERV", "HS_ALIAS", "HS_PRIMARY", "HS_VLIST",
    "HS_PUBKEY", "HS_SECKEY", "HS_NA_DELEGATE", "URL",     "EMAIL",    "DESC",       "GS1"};

int ident__is_reserved(const char *type) {
  for (size_t i = 0; i < sizeof reserved_types / sizeof reserved_types[0]; i++)
    if (!strcmp(type, reserved_types[i]))
      return 1;
  return !strncmp(type, "HS_", 3) || !strncmp(type, "gs1:", 4) ||
         !strncmp(type, "https://gs1.org/voc/", 20);
}

/* An absolute URL: a scheme, a colon, no spaces or control characters (it may end up in a
 * Location header). */
static int url_ok(const uint8_t *p, size_t n) {
  const uint8_t *colon = memchr(p, ':', n);
  if (!colon || colon == p || !pl_utf8_valid(p, n))
    return 0;
  for (const uint8_t *c = p; c < colon; c++)
    if (!isalnum(*c) && *c != '+' && *c != '-' && *c != '.')
      return 0;
  for (size_t i = 0; i < n; i++)
    if (p[i] <= 0x20 || p[i] == 0x7f)
      return 0;
  return 1;
}

static int b64_val(int c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+' || c == '-')
    return 62;
  if (c == '/' || c == '_')
    return 63;
  return -1;
}

static int base64_decode(const char *s, pl_buf *out) {
  uint32_t acc = 0;
  int bits = 0;
  for (; *s; s++) {
    if (*s == '=')
      break;
    int v = b64_val((unsigned char)*s);
    if (v < 0)
      return PL_EINVAL;
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (pl_buf_append_byte(out, (uint8_t)(acc >> bits)) < 0)
        return PL_ELIMIT;
    }
  }
  return 0;
}

static json_t *base64_json(const uint8_t *p, size_t n) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *o = malloc(n / 3 * 4 + 5);
  if (!o)
    return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                 (i + 2 < n ? p[i + 2] : 0);
    o[k++] = tab[v >> 18 & 63];
    o[k++] = tab[v >> 12 & 63];
    o[k++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
    o[k++] = i + 2 < n ? tab[v & 63] : '=';
  }
  o[k] = 0;
  json_t *j = json_string(o);
  free(o);
  return j;
}

static int check_text(const uint8_t *p, size_t n) {
  if (!pl_utf8_valid(p, n))
    return 0;
  return 1;
}

/* Parses a GS1 value: a Digital Link URI or path whose last qualifier may be a template,
 * "/01/09506000134376/21/{serialnumber}", standing for every value of that qualifier. Writes the
 * key (for a template, the key path of the other qualifiers, then "/21/" and "*") into key. */
int ident__gs1_value_key(const uint8_t *p, size_t n, char *key, size_t keysz, pl_err *err) {
  char buf[DL_URI_MAX + 8];
  if (n > DL_URI_MAX)
    return pl_err_set(err, PL_EINVAL, "the Digital Link is longer than %d bytes", DL_URI_MAX);
  memcpy(buf, p, n);
  size_t len = n;
  int templated = 0;
  const char *slash = len ? memrchr(buf, '/', len) : NULL;
  if (slash && len - (size_t)(slash - buf) > 3 && slash[1] == '{' && buf[len - 1] == '}') {
    /* validate the rest with a placeholder value for the templated qualifier */
    len = (size_t)(slash - buf) + 1;
    buf[len++] = '0';
    templated = 1;
  }
  dl_uri *u = malloc(sizeof *u);
  if (!u)
    return pl_err_set(err, PL_ENOMEM, "out of memory");
  int rc = dl_parse(dl_dict_builtin(), buf, len, u, err);
  if (rc == 0 && templated && u->nqual == 0)
    rc = pl_err_set(err, PL_EINVAL, "only a qualifier (not the key) may be a template");
  if (rc == 0) {
    rc = dl_key_path(u, templated ? u->nqual - 1 : u->nqual, key, keysz);
    if (rc >= 0 && templated) {
      size_t kl = (size_t)rc;
      int w = snprintf(key + kl, keysz - kl, "/%s/*", u->qual[u->nqual - 1].ai);
      rc = w < 0 || (size_t)w >= keysz - kl ? PL_ELIMIT : 0;
    }
    rc = rc < 0 ? pl_err_set(err, rc, "the Digital Link is too long") : 0;
  }
  free(u);
  return rc;
}

/* Checks the data of the reserved types whose syntax Plateau knows. */
int ident__check_reserved(const char *type, hdl_str data, uint32_t index, pl_err *err) {
  if (!strcmp(type, "HS_ADMIN")) {
    uint16_t perms;
    hdl_str h;
    uint32_t idx;
    if (hdl_admin_decode(data, &perms, &h, &idx) < 0)
      return pl_err_set(err, PL_EINVAL,
                        "value %u: HS_ADMIN data must be {\"handle\", \"index\", \"permissions\"}",
                        index);
    return 0;
  }
  if (!strncmp(type, "gs1:", 4) || !strncmp(type, "https://gs1.org/voc/", 20)) {
    /* A Digital Link link: a URL, or {"href": URL, "title", "type", "hreflang": [...], ...}. */
    int ok = 0;
    if (data.len && data.p[0] == '{') {
      json_t *o = json_loadb((const char *)data.p, data.len, 0, NULL);
      const char *href = json_is_object(o) ? pl_json_str(o, "href", NULL) : NULL;
      json_t *hl = json_is_object(o) ? json_object_get(o, "hreflang") : NULL;
      ok = href && url_ok((const uint8_t *)href, strlen(href)) && (!hl || json_is_array(hl));
      json_decref(o);
    } else {
      ok = url_ok(data.p, data.len);
    }
    if (!ok)
      return pl_err_set(
          err, PL_EINVAL,
          "value %u: a %s link is a URL or {\"href\": URL, \"title\", \"hreflang\": [...]}", index,
          type);
    return 0;
  }
  if (!strcmp(type, "URL")) {
    const char *colon = memchr(data.p, ':', data.len);
    if (!colon || colon == (const char *)data.p || !check_text(data.p, data.len))
      return pl_err_set(err, PL_EINVAL, "value %u: URL data must be an absolute URL (scheme:...)",
                        index);
    for (const uint8_t *c = data.p; c < (const uint8_t *)colon; c++)
      if (!isalnum(*c) && *c != '+' && *c != '-' && *c != '.')
        return pl_err_set(err, PL_EINVAL, "value %u: URL data must start with a scheme", index);
    for (uint32_t i = 0; i < data.len; i++)
      if (data.p[i] <= 0x20)
        return pl_err_set(err, PL_EINVAL, "value %u: a URL may not contain spaces", index);
    return 0;
  }
  if (!strcmp(type, "EMAIL")) {
    const uint8_t *at = memchr(data.p, '@', data.len);
    if (!at || at == data.p || at == data.p + data.len - 1 || !check_text(data.p, data.len))
      return pl_err_set(err, PL_EINVAL, "value %u: EMAIL data must be an address (name@domain)",
                        index);
    return 0;
  }
  if (!strcmp(type, "HS_ALIAS")) {
    if (ident_check_handle((const char *)data.p, data.len, NULL) < 0)
      return pl_err_set(err, PL_EINVAL, "value %u: HS_ALIAS data must be a handle (PREFIX/SUFFIX)",
                        index);
    return 0;
  }
  if (!strcmp(type, "HS_SITE") || !strcmp(type, "HS_SITE.PREFIX")) {
    hdl_site_server sv;
    if (hdl_siteinfo_decode_first(data.p, data.len, &sv, NULL) < 0)
      return pl_err_set(err, PL_EINVAL, "value %u: HS_SITE data must be site information (base64)",
                        index);
    return 0;
  }
  if (!strcmp(type, "GS1")) {
    pl_err e = {{0}};
    char key[DL_KEY_PATH_MAX];
    int rc = ident__gs1_value_key(data.p, data.len, key, sizeof key, &e);
    if (rc < 0)
      return pl_err_set(err, PL_EINVAL, "value %u: GS1 data must be a Digital Link: %s", index,
                        e.msg);
    return 0;
  }
  if (!strcmp(type, "HS_VLIST") || !strcmp(type, "HS_SERV") || !strcmp(type, "HS_PRIMARY") ||
      !strcmp(type, "HS_NA_DELEGATE") || !strcmp(type, "DESC")) {
    if (!check_text(data.p, data.len))
      return pl_err_set(err, PL_EINVAL, "value %u: %s data must be text", index, type);
  }
  return 0;
}

static const pl_json_field value_fields[] = {
    {"index", PL_JSON_INTEGER, 1, 0, 0},      {"type", PL_JSON_STRING, 1, HDL_TYPE_MAX, 0},
    {"data", PL_JSON_ANY, 1, 0, 0},           {"ttl", PL_JSON_INTEGER, 0, 0, 1},
    {"restricted", PL_JSON_BOOL, 0, 0, 1},    {"timestamp", PL_JSON_ANY, 0, 0, 1},
    {"references", PL_JSON_ARRAY, 0, 100, 1}, {"permissions", PL_JSON_STRING, 0, 8, 1},
};

/* data: a string (text), or {"format", "value"}. Appends the raw bytes to raw. */
static int value_data(const json_t *data, const char *type, uint32_t index, pl_buf *raw,
                      pl_err *err) {
  if (json_is_string(data)) {
    return pl_buf_append(raw, json_string_value(data), json_string_length(data)) < 0
               ? pl_err_set(err, PL_EINVAL, "value %u: data is longer than %d bytes", index,
                            IDENT_DATA_MAX)
               : 0;
  }
  if (!json_is_object(data))
    return pl_err_set(err, PL_EINVAL, "value %u: data must be a string or {\"format\", \"value\"}",
                      index);
  const char *format = pl_json_str(data, "format", "string");
  json_t *v = json_object_get(data, "value");
  if (!strcmp(format, "string")) {
    if (!json_is_string(v))
      return pl_err_set(err, PL_EINVAL, "value %u: string data needs a string value", index);
    if (pl_buf_append(raw, json_string_value(v), json_string_length(v)) < 0)
      return pl_err_set(err, PL_EINVAL, "value %u: data is longer than %d bytes", index,
                        IDENT_DATA_MAX);
    return 0;
  }
  if (!strcmp(format, "base64")) {
    if (!json_is_string(v) || base64_decode(json_string_value(v), raw) < 0)
      return pl_err_set(err, PL_EINVAL, "value %u: base64 data is malformed or too long", index);
    return 0;
  }
  if (!strcmp(format, "hex")) {
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    size_t n = s ? strlen(s) : 1;
    if (n % 2)
      return pl_err_set(err, PL_EINVAL, "value %u: hex data is malformed", index);
    for (size_t i = 0; i < n; i += 2) {
      int hi = isxdigit((unsigned char)s[i])
                   ? (isdigit((unsigned char)s[i]) ? s[i] - '0' : (tolower(s[i]) - 'a' + 10))
                   : -1;
      int lo =
          isxdigit((unsigned char)s[i + 1])
              ? (isdigit((unsigned char)s[i + 1]) ? s[i + 1] - '0' : (tolower(s[i + 1]) - 'a' + 10))
              : -1;
      if (hi < 0 || lo < 0 || pl_buf_append_byte(raw, (uint8_t)(hi << 4 | lo)) < 0)
        return pl_err_set(err, PL_EINVAL, "value %u: hex data is malformed or too long", index);
    }
    return 0;
  }
  if (!strcmp(format, "admin")) {
    if (strcmp(type, "HS_ADMIN") != 0)
      return pl_err_set(err, PL_EINVAL, "value %u: admin data is for HS_ADMIN", index);
    const char *h = json_is_object(v) ? pl_json_str(v, "handle", NULL) : NULL;
    json_t *ji = json_is_object(v) ? json_object_get(v, "index") : NULL;
    const char *perm = json_is_object(v) ? pl_json_str(v, "permissions", "011111111111") : NULL;
    if (!h || !json_is_integer(ji) || json_integer_value(ji) < 0 ||
        json_integer_value(ji) > UINT32_MAX || !perm || strlen(perm) > 16 ||
        strspn(perm, "01") != strlen(perm) || ident_check_handle(h, strlen(h), NULL) < 0)
      return pl_err_set(err, PL_EINVAL,
                        "value %u: admin data is {\"handle\": \"PREFIX/SUFFIX\", \"index\": N, "
                        "\"permissions\": \"0101...\"}",
                        index);
    uint16_t bits = 0;
    size_t pn = strlen(perm);
    for (size_t i = 0; i < pn; i++)
      if (perm[i] == '1')
        bits |= (uint16_t)(1u << (pn - 1 - i));
    return hdl_admin_encode(raw, bits, (hdl_str){(const uint8_t *)h, (uint32_t)strlen(h)},
                            (uint32_t)json_integer_value(ji));
  }
  return pl_err_set(err, PL_EINVAL,
                    "value %u: unknown data format \"%.16s\" (string, base64, hex, admin)", index,
                    format);
}

int ident_values_from_json(const json_t *values, uint32_t now_s, pl_buf *out, uint32_t *nvalues,
                           pl_err *err) {
  if (!json_is_array(values))
    return pl_err_set(err, PL_EINVAL, "\"values\" must be an array");
  size_t n = json_array_size(values);
  if (n > IDENT_VALUES_MAX)
    return pl_err_set(err, PL_EINVAL, "an identifier holds at most %d values", IDENT_VALUES_MAX);
  size_t mark = out->len;
  uint32_t seen[IDENT_VALUES_MAX];
  pl_buf raw;
  pl_buf_init(&raw, IDENT_DATA_MAX);
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const json_t *jv = json_array_get(values, i);
    pl_err ferr = {{0}};
    if (pl_json_check(jv, value_fields, sizeof value_fields / sizeof value_fields[0], &ferr) < 0) {
      rc = pl_err_set(err, PL_EINVAL, "values[%zu]: %s", i, ferr.msg);
      break;
    }
    json_int_t idx = json_integer_value(json_object_get(jv, "index"));
    if (idx < 1 || idx > INT32_MAX) {
      rc = pl_err_set(err, PL_EINVAL, "values[%zu]: index must be from 1 to 2147483647", i);
      break;
    }
    for (size_t k = 0; k < i; k++)
      if (seen[k] == (uint32_t)idx)
        rc = pl_err_set(err, PL_EINVAL, "index %lld is used twice", (long long)idx);
    if (rc)
      break;
    seen[i] = (uint32_t)idx;
    const char *type = json_string_value(json_object_get(jv, "type"));
    size_t tl = strlen(type);
    if (tl == 0 || !pl_utf8_valid(type, tl)) {
      rc = pl_err_set(err, PL_EINVAL, "value %lld: the type must be non-empty UTF-8",
                      (long long)idx);
      break;
    }
    for (size_t k = 0; k < tl; k++)
      if ((unsigned char)type[k] < 0x20)
        rc = pl_err_set(err, PL_EINVAL, "value %lld: the type has a control character",
                        (long long)idx);
    if (rc)
      break;
    pl_buf_reset(&raw);
    if ((rc = value_data(json_object_get(jv, "data"), type, (uint32_t)idx, &raw, err)) < 0)
      break;
    hdl_str data = {raw.data ? raw.data : (const uint8_t *)"", (uint32_t)raw.len};
    if (ident__is_reserved(type) &&
        (rc = ident__check_reserved(type, data, (uint32_t)idx, err)) < 0)
      break;
    json_int_t ttl = pl_json_int(jv, "ttl", IDENT_TTL_DEFAULT);
    if (ttl < 0 || ttl > INT32_MAX) {
      rc = pl_err_set(err, PL_EINVAL, "value %lld: ttl must be 0 to 2147483647 seconds",
                      (long long)idx);
      break;
    }
    uint8_t perm = HDL_PERM_ADMIN_READ | HDL_PERM_ADMIN_WRITE | HDL_PERM_PUBLIC_READ;
    if (pl_json_bool(jv, "restricted", 0))
      perm &= (uint8_t)~HDL_PERM_PUBLIC_READ;
    /* references: [{"handle": "...", "index": N}] */
    pl_buf refs;
    pl_buf_init(&refs, 0);
    uint32_t nrefs = 0;
    const json_t *jr = json_object_get(jv, "references");
    size_t ri;
    const json_t *ref;
    json_array_foreach(jr, ri, ref) {
      const char *h = json_is_object(ref) ? pl_json_str(ref, "handle", NULL) : NULL;
      json_int_t ix = json_is_object(ref) ? pl_json_int(ref, "index", -1) : -1;
      if (!h || ix < 0 || ix > INT32_MAX || ident_check_handle(h, strlen(h), NULL) < 0) {
        rc = pl_err_set(err, PL_EINVAL, "value %lld: references are {\"handle\", \"index\"}",
                        (long long)idx);
        break;
      }
      if (pl_buf_put_u32be(&refs, (uint32_t)strlen(h)) < 0 || pl_buf_append_str(&refs, h) < 0 ||
          pl_buf_put_u32be(&refs, (uint32_t)ix) < 0) {
        rc = PL_ENOMEM;
        break;
      }
      nrefs++;
    }
    if (rc == 0) {
      hdl_value v = {(uint32_t)idx, now_s, 0,
                     (int32_t)ttl,  perm,  {(const uint8_t *)type, (uint32_t)tl},
                     data,          nrefs, {refs.data, (uint32_t)refs.len}};
      rc = hdl_value_encode(out, &v);
    }
    pl_buf_free(&refs);
  }
  pl_buf_free(&raw);
  if (rc < 0) {
    out->len = mark;
    return rc;
  }
  *nvalues = (uint32_t)n;
  return 0;
}

static int is_text_type(const hdl_value *v) {
  return pl_utf8_valid(v->data.p, v->data.len) && memchr(v->data.p, 0, v->data.len) == NULL;
}

json_t *ident_value_to_json(const hdl_value *v) {
  json_t *data;
  char type[HDL_TYPE_MAX + 1];
  memcpy(type, v->type.p, v->type.len);
  type[v->type.len] = 0;
  uint16_t perms;
  hdl_str ah;
  uint32_t ai;
  if (!strcmp(type, "HS_ADMIN") && hdl_admin_decode(v->data, &perms, &ah, &ai) == 0) {
    char pbits[13];
    for (int i = 0; i < 12; i++)
      pbits[i] = (perms >> (11 - i)) & 1 ? '1' : '0';
    pbits[12] = 0;
    data = json_pack("{s:s, s:{s:s%, s:I, s:s}}", "format", "admin", "value", "handle",
                     (const char *)ah.p, (size_t)ah.len, "index", (json_int_t)ai, "permissions",
                     pbits);
  } else if (!strncmp(type, "HS_SITE", 7) || !strcmp(type, "HS_PUBKEY") ||
             !strcmp(type, "HS_SECKEY") || !is_text_type(v)) {
    data = json_pack("{s:s, s:o}", "format", !strncmp(type, "HS_SITE", 7) ? "site" : "base64",
                     "value", base64_json(v->data.p, v->data.len));
  } else {
    data = json_pack("{s:s, s:s%}", "format", "string", "value",
                     v->data.len ? (const char *)v->data.p : "", (size_t)v->data.len);
  }
  char ts[40];
  json_t *o = json_pack("{s:I, s:s, s:o, s:I, s:s}", "index", (json_int_t)v->index, "type", type,
                        "data", data, "ttl", (json_int_t)v->ttl, "timestamp",
                        pl_time_format((int64_t)v->timestamp * 1000000000LL, ts, sizeof ts));
  if (!o)
    return NULL;
  if (!(v->perm & HDL_PERM_PUBLIC_READ))
    json_object_set_new(o, "restricted", json_true());
  if (v->nrefs) {
    json_t *refs = json_array();
    uint32_t pos = 0, idx;
    hdl_str h;
    while (hdl_ref_next(v, &pos, &h, &idx))
      json_array_append_new(refs, json_pack("{s:s%, s:I}", "handle", (const char *)h.p,
                                            (size_t)h.len, "index", (json_int_t)idx));
    json_object_set_new(o, "references", refs);
  }
  return o;
}

/* ---- templates ---- */

static const char *const formats[] = {"text", "integer", "date", "gtin", "url", "email"};

int ident_template_check_fields(const json_t *fields, pl_err *err) {
  if (!json_is_array(fields) || json_array_size(fields) == 0 || json_array_size(fields) > 100)
    return pl_err_set(err, PL_EINVAL, "\"fields\" must be an array of 1 to 100 fields");
  static const pl_json_field ff[] = {{"name", PL_JSON_STRING, 1, HDL_TYPE_MAX, 0},
                                     {"required", PL_JSON_BOOL, 0, 0, 1},
                                     {"format", PL_JSON_STRING, 0, 16, 1},
                                     {"description", PL_JSON_STRING, 0, 256, 1}};
  size_t i;
  const json_t *f;
  json_array_foreach(fields, i, f) {
    pl_err e = {{0}};
    if (pl_json_check(f, ff, 4, &e) < 0)
      return pl_err_set(err, PL_EINVAL, "fields[%zu]: %s", i, e.msg);
    const char *name = pl_json_str(f, "name", "");
    if (!*name)
      return pl_err_set(err, PL_EINVAL, "fields[%zu]: the name is empty", i);
    const char *fmt = pl_json_str(f, "format", "text");
    int ok = 0;
    for (size_t k = 0; k < sizeof formats / sizeof formats[0]; k++)
      ok |= !strcmp(fmt, formats[k]);
    if (!ok)
      return pl_err_set(err, PL_EINVAL,
                        "fields[%zu]: format must be text, integer, date, gtin, url or email", i);
    for (size_t k = 0; k < i; k++)
      if (!strcmp(pl_json_str(json_array_get(fields, k), "name", ""), name))
        return pl_err_set(err, PL_EINVAL, "field \"%.64s\" is listed twice", name);
  }
  return 0;
}

static int format_ok(const char *fmt, const uint8_t *p, size_t n) {
  char s[IDENT_DATA_MAX < 256 ? IDENT_DATA_MAX : 256];
  if (!strcmp(fmt, "text"))
    return pl_utf8_valid(p, n);
  if (n >= sizeof s)
    return !strcmp(fmt, "url");
  memcpy(s, p, n);
  s[n] = 0;
  if (!strcmp(fmt, "integer")) {
    size_t k = s[0] == '-' ? 1 : 0;
    return n > k && strspn(s + k, "0123456789") == n - k;
  }
  if (!strcmp(fmt, "date")) {
    int64_t ns;
    if (n == 10 && s[4] == '-' && s[7] == '-') {
      char full[32];
      snprintf(full, sizeof full, "%.10sT00:00:00Z", s);
      return pl_time_parse(full, &ns) == 0;
    }
    return pl_time_parse(s, &ns) == 0;
  }
  if (!strcmp(fmt, "gtin")) {
    if (!(n == 8 || n == 12 || n == 13 || n == 14) || strspn(s, "0123456789") != n)
      return 0;
    return dl_check_digit_ok(s, n - 1);
  }
  if (!strcmp(fmt, "url"))
    return memchr(p, ':', n) != NULL;
  if (!strcmp(fmt, "email"))
    return memchr(p, '@', n) != NULL;
  return 1;
}

int ident_template_validate(const char *fields_json, hdl_str values, uint32_t nvalues,
                            pl_err *err) {
  json_t *fields = json_loads(fields_json, 0, NULL);
  if (!json_is_array(fields)) {
    json_decref(fields);
    return pl_err_set(err, PL_EINVAL, "the template is malformed");
  }
  int rc = 0;
  size_t i;
  const json_t *f;
  json_array_foreach(fields, i, f) {
    const char *name = pl_json_str(f, "name", "");
    const char *fmt = pl_json_str(f, "format", "text");
    int required = pl_json_bool(f, "required", 0);
    int found = 0;
    uint32_t pos = 0;
    hdl_value v;
    for (uint32_t k = 0; k < nvalues && hdl_value_next(values, &pos, &v) == 1; k++) {
      if (v.type.len != strlen(name) || memcmp(v.type.p, name, v.type.len) != 0)
        continue;
      found = 1;
      if (!format_ok(fmt, v.data.p, v.data.len)) {
        rc = pl_err_set(err, PL_EINVAL, "field \"%.64s\" must be a valid %s", name, fmt);
        break;
      }
    }
    if (rc)
      break;
    if (required && !found) {
      rc = pl_err_set(err, PL_EINVAL, "the template requires a \"%.64s\" value", name);
      break;
    }
  }
  json_decref(fields);
  return rc;
}
