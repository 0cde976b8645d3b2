/* The identifier registry: names, typed values (JSON in the Handle.net REST shape <-> the
 * Handle wire encoding kept in the store), reserved types, metadata templates, prefix
 * allocation with tenant ownership, identifier writes with audit records, the GS1 key index,
 * and bulk registration. */
#include "ident/ident.h"
#include "ident/digital_link.h"

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ---- */

int ident_check_prefix(const char *prefix, pl_err *err) {
  size_t n = strlen(prefix);
  if (n == 0 || n > IDENT_PREFIX_MAX)
    return pl_err_set(err, PL_EINVAL, "a prefix must be 1 to %d bytes", IDENT_PREFIX_MAX);
  int seg = 0;
  for (size_t i = 0; i < n; i++) {
    char c = prefix[i];
    if (c == '.') {
      if (seg == 0)
        return pl_err_set(err, PL_EINVAL, "prefix \"%.64s\" has an empty segment", prefix);
      seg = 0;
      continue;
    }
    if (!isalnum((unsigned char)c) && c != '-' && c != '_')
      return pl_err_set(err, PL_EINVAL,
                        "a prefix holds dot-separated segments of letters, digits, '-' and '_'");
    seg++;
  }
  if (seg == 0)
    return pl_err_set(err, PL_EINVAL, "prefix \"%.64s\" ends with a dot", prefix);
  if (!strcmp(prefix, "0") || !strncmp(prefix, "0.", 2))
    return pl_err_set(err, PL_EINVAL, "prefixes under \"0\" belong to the global handle service");
  return 0;
}

size_t ident_prefix_len(const char *handle, size_t len) {
  const char *slash = memchr(handle, '/', len);
  return slash ? (size_t)(slash - handle) : len;
}

int ident_check_handle(const char *handle, size_t len, pl_err *err) {
  if (len == 0 || len > IDENT_HANDLE_MAX)
    return pl_err_set(err, PL_EINVAL, "a handle must be 1 to %d bytes", IDENT_HANDLE_MAX);
  size_t pl = ident_prefix_len(handle, len);
  if (pl == len || pl + 1 == len)
    return pl_err_set(err, PL_EINVAL, "a handle is PREFIX/SUFFIX with a non-empty suffix");
  if (pl == 0 || pl > IDENT_PREFIX_MAX)
    return pl_err_set(err, PL_EINVAL, "the handle's prefix is empty or too long");
  char prefix[IDENT_PREFIX_MAX + 1];
  memcpy(prefix, handle, pl);
  prefix[pl] = 0;
  int rc;
  if ((rc = ident_check_prefix(prefix, err)) < 0 && strncmp(prefix, "0.", 2) != 0)
    return rc;
  if (!pl_utf8_valid(handle, len))
    return pl_err_set(err, PL_EINVAL, "the handle is not valid UTF-8");
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)handle[i];
    if (c < 0x20 || c == 0x7f)
      return pl_err_set(err, PL_EINVAL, "the handle contains a control character");
  }
  return 0;
}

int64_t ident_day(int64_t ms) {
  return ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
}

/* ---- values ---- */

static const char *const reserved_types[] = {
    "HS_ADMIN",  "HS_SITE",   "HS_SITE.PREFIX", "HS_SERV", "HS_ALIAS", "HS_PRIMARY", "HS_VLIST",
    "HS_PUBKEY", "HS_SECKEY", "HS_NA_DELEGATE", "URL",     "EMAIL",    "DESC",       "GS1"};

static int is_reserved(const char *type) {
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
static int gs1_value_key(const uint8_t *p, size_t n, char *key, size_t keysz, pl_err *err) {
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
static int check_reserved(const char *type, hdl_str data, uint32_t index, pl_err *err) {
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
    int rc = gs1_value_key(data.p, data.len, key, sizeof key, &e);
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
    if (is_reserved(type) && (rc = check_reserved(type, data, (uint32_t)idx, err)) < 0)
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

/* ---- audit ---- */

static int audit(ident_ctx *c, int64_t tenant_id, const char *action, const char *target, int rc,
                 const pl_err *err, const char *detail_ok) {
  if (!c->audit)
    return 0;
  store_audit rec;
  memset(&rec, 0, sizeof rec);
  snprintf(rec.actor, sizeof rec.actor, "%s", c->actor ? c->actor : "");
  rec.tenant_id = tenant_id;
  snprintf(rec.action, sizeof rec.action, "%s", action);
  snprintf(rec.target, sizeof rec.target, "%.255s", target ? target : "");
  snprintf(rec.result, sizeof rec.result, "%s", rc < 0 ? "error" : "ok");
  snprintf(rec.detail, sizeof rec.detail, "%s",
           rc < 0 ? (err && err->msg[0] ? err->msg : pl_strerror(rc))
                  : (detail_ok ? detail_ok : ""));
  snprintf(rec.source, sizeof rec.source, "%s", c->source ? c->source : "");
  snprintf(rec.remote, sizeof rec.remote, "%s", c->remote ? c->remote : "");
  int arc = auth_audit_append(c->audit, c->db, &rec);
  if (arc < 0)
    PL_LOG(PL_LOG_ERROR, "ident", "audit append failed action=%s err=\"%s\"", action,
           pl_strerror(arc));
  return arc;
}

/* ---- prefixes ---- */

int ident_prefix_create(ident_ctx *c, int64_t tenant_id, const char *prefix, int allow_any_parent,
                        store_prefix *out, pl_err *err) {
  int rc = ident_check_prefix(prefix, err);
  store_prefix p;
  memset(&p, 0, sizeof p);
  if (rc == 0) {
    snprintf(p.prefix, sizeof p.prefix, "%s", prefix);
    p.tenant_id = tenant_id;
    /* The parent: the longest dotted ancestor held here. */
    size_t n = strlen(prefix);
    for (size_t k = n; k > 0 && !p.parent_id; k--) {
      if (prefix[k - 1] != '.')
        continue;
      store_prefix anc;
      int lr = store_prefix_get(c->db, prefix, k - 1, &anc);
      if (lr == 0) {
        p.parent_id = anc.id;
        if (anc.tenant_id != tenant_id && !allow_any_parent)
          rc = pl_err_set(err, PL_EPERM, "prefix %s belongs to another tenant", anc.prefix);
      } else if (lr != PL_ENOTFOUND) {
        rc = lr;
      }
    }
    if (rc == 0 && !p.parent_id && !allow_any_parent)
      rc = pl_err_set(err, PL_EPERM,
                      "only the regional admin allocates top-level prefixes; a tenant creates "
                      "prefixes under its own");
  }
  if (rc == 0) {
    rc = store_prefix_create(c->db, &p);
    if (rc == PL_EEXIST)
      pl_err_set(err, rc, "prefix %s is already allocated", prefix);
    else if (rc == PL_ENOTFOUND)
      pl_err_set(err, rc, "no such tenant");
  }
  char target[160];
  snprintf(target, sizeof target, "prefix:%.127s", prefix);
  int arc = audit(c, tenant_id, "prefix.create", target, rc, err, "");
  if (rc == 0 && arc < 0)
    rc = pl_err_set(err, arc, "the prefix was created but its audit record failed");
  if (rc == 0 && out)
    *out = p;
  return rc;
}

int ident_prefix_delete(ident_ctx *c, const store_prefix *p, pl_err *err) {
  int rc = store_prefix_delete(c->db, p->tenant_id, p->id);
  if (rc == PL_ECONFLICT)
    pl_err_set(err, rc, "prefix %s still has identifiers; delete them first", p->prefix);
  char target[160];
  snprintf(target, sizeof target, "prefix:%.127s", p->prefix);
  audit(c, p->tenant_id, "prefix.delete", target, rc, err, "");
  return rc;
}

/* ---- GS1 index ---- */

/* clear: drop the handle's previous keys first (not needed for a handle just created). */
static int gs1_index(store *db, int64_t handle_id, hdl_str values, uint32_t nvalues, int clear,
                     pl_err *err) {
  int rc = clear ? store_gs1_clear(db, handle_id) : 0;
  if (rc < 0)
    return rc;
  uint32_t pos = 0;
  hdl_value v;
  for (uint32_t k = 0; k < nvalues && hdl_value_next(values, &pos, &v) == 1; k++) {
    if (v.type.len != 3 || memcmp(v.type.p, "GS1", 3) != 0)
      continue;
    char key[DL_KEY_PATH_MAX];
    if ((rc = gs1_value_key(v.data.p, v.data.len, key, sizeof key, err)) < 0)
      break;
    rc = store_gs1_put(db, key, handle_id);
    if (rc == PL_EEXIST) {
      pl_err_set(err, rc, "GS1 key %.200s is already mapped to another identifier", key);
      break;
    }
    if (rc < 0)
      break;
  }
  return rc < 0 ? rc : 0;
}

int ident_gs1_index(store *db, int64_t handle_id, hdl_str values, uint32_t nvalues, pl_err *err) {
  return gs1_index(db, handle_id, values, nvalues, 1, err);
}

/* ---- identifiers ---- */

typedef struct owner_check {
  store_prefix prefix;
} owner_check;

/* The handle's prefix, held here and the tenant's. */
static int check_owner(store *db, int64_t tenant_id, const char *handle, size_t len,
                       store_prefix *out, pl_err *err) {
  size_t pl = ident_prefix_len(handle, len);
  int rc = store_prefix_get(db, handle, pl, out);
  if (rc == PL_ENOTFOUND)
    return pl_err_set(err, rc, "prefix %.*s is not held by this node", (int)(pl > 127 ? 127 : pl),
                      handle);
  if (rc < 0)
    return rc;
  if (out->tenant_id != tenant_id)
    return pl_err_set(err, PL_EPERM, "prefix %s belongs to another tenant", out->prefix);
  return 0;
}

typedef struct existing {
  int found;
  int64_t id;
} existing;

static int note_existing(void *ctx, const store_handle *h) {
  existing *e = ctx;
  e->found = 1;
  e->id = h->id;
  return 0;
}

/* Validates and writes one identifier inside the caller's transaction. */
static int put_one(store *db, int64_t tenant_id, const store_prefix *prefix, const char *handle,
                   const char *template_fields, const char *template_name, const uint8_t *enc,
                   size_t enc_len, uint32_t nvalues, int mode, int *created, pl_err *err) {
  int rc;
  hdl_str values = {enc ? enc : (const uint8_t *)"", (uint32_t)enc_len};
  if (template_fields && (rc = ident_template_validate(template_fields, values, nvalues, err)) < 0)
    return rc;
  store_handle h = {0};
  h.tenant_id = tenant_id;
  h.prefix_id = prefix->id;
  h.handle = handle;
  h.template_name = template_name ? template_name : "";
  h.nvalues = nvalues;
  h.values = enc;
  h.values_len = enc_len;
  existing ex = {0, 0};
  if (mode != IDENT_PUT_CREATE) {
    rc = store_handle_lookup(db, handle, strlen(handle), note_existing, &ex);
    if (rc < 0 && rc != PL_ENOTFOUND)
      return rc;
  }
  if (ex.found) {
    if (mode == IDENT_PUT_CREATE)
      return pl_err_set(err, PL_EEXIST, "handle %.200s already exists", handle);
    rc = store_handle_update(db, &h);
    if (rc == PL_ENOTFOUND)
      return pl_err_set(err, PL_EPERM, "handle %.200s belongs to another tenant", handle);
    if (rc < 0)
      return rc;
    h.id = ex.id;
    *created = 0;
  } else {
    if (mode == IDENT_PUT_REPLACE)
      return pl_err_set(err, PL_ENOTFOUND, "handle %.200s does not exist", handle);
    rc = store_handle_create(db, &h);
    if (rc == PL_EEXIST)
      return pl_err_set(err, rc, "handle %.200s already exists", handle);
    if (rc < 0)
      return rc;
    *created = 1;
  }
  rc = gs1_index(db, h.id, values, nvalues, !*created, err);
  /* A bulk registration goes on past a rejected row in the same transaction: take back the
   * row this call inserted. (A single write rolls its whole transaction back instead.) */
  if (rc < 0 && *created)
    store_handle_delete(db, tenant_id, handle);
  return rc;
}

static int load_template(store *db, int64_t tenant_id, const char *name, char **fields,
                         pl_err *err) {
  *fields = NULL;
  if (!name || !*name)
    return 0;
  store_template t;
  int rc = store_template_get(db, tenant_id, name, &t);
  if (rc == PL_ENOTFOUND)
    return pl_err_set(err, PL_EINVAL, "no template named \"%.63s\"", name);
  if (rc < 0)
    return rc;
  *fields = t.fields_json;
  return 0;
}

int ident_handle_put(ident_ctx *c, int64_t tenant_id, const char *handle, const char *template_name,
                     const json_t *values, int mode, int *created, pl_err *err) {
  size_t len = strlen(handle);
  int rc = ident_check_handle(handle, len, err);
  store_prefix prefix;
  pl_buf enc;
  pl_buf_init(&enc, 64u << 20);
  uint32_t n = 0;
  char *fields = NULL;
  int was_created = 0;
  if (rc == 0)
    rc = ident_values_from_json(values, (uint32_t)(pl_now_ms() / 1000), &enc, &n, err);
  int began = 0;
  if (rc == 0) {
    rc = store_begin(c->db);
    began = rc == 0;
  }
  if (rc == 0)
    rc = check_owner(c->db, tenant_id, handle, len, &prefix, err);
  if (rc == 0)
    rc = load_template(c->db, tenant_id, template_name, &fields, err);
  if (rc == 0)
    rc = put_one(c->db, tenant_id, &prefix, handle, fields, template_name, enc.data, enc.len, n,
                 mode, &was_created, err);
  if (rc == 0 && was_created)
    rc = store_ident_stats_add(c->db, prefix.id, ident_day(pl_now_ms()), 0, 0, 1);
  char target[IDENT_HANDLE_MAX + 16];
  snprintf(target, sizeof target, "handle:%s", handle);
  const char *action = rc == 0 && !was_created ? "ident.update" : "ident.create";
  if (rc == 0) {
    rc = audit(c, tenant_id, action, target, 0, err, "");
    if (rc == 0)
      rc = store_commit(c->db);
    if (rc < 0)
      store_rollback(c->db);
  } else {
    if (began)
      store_rollback(c->db);
    audit(c, tenant_id, mode == IDENT_PUT_REPLACE ? "ident.update" : "ident.create", target, rc,
          err, "");
  }
  free(fields);
  pl_buf_free(&enc);
  if (rc == 0 && created)
    *created = was_created;
  return rc;
}

int ident_handle_delete(ident_ctx *c, int64_t tenant_id, const char *handle, pl_err *err) {
  int rc = store_handle_delete(c->db, tenant_id, handle);
  if (rc == PL_ENOTFOUND)
    pl_err_set(err, rc, "handle %.200s not found", handle);
  char target[IDENT_HANDLE_MAX + 16];
  snprintf(target, sizeof target, "handle:%s", handle);
  audit(c, tenant_id, "ident.delete", target, rc, err, "");
  return rc;
}

/* ---- bulk ---- */

#define BULK_ERRORS_KEPT 1000

struct ident_bulk {
  ident_ctx ctx;
  int64_t tenant_id;
  char template_name[64];
  char *template_fields;
  store_prefix last_prefix; /* a print run is one prefix: cache its lookup */
  int have_prefix;
  int64_t rows, accepted, rejected;
  json_t *errors;
  pl_buf enc;
  uint32_t now_s;
  /* CSV */
  char **columns;
  int ncolumns;
  int handle_col;
  /* registrations per prefix for the statistics */
  int64_t stat_prefix_id, stat_count;
};

int ident_bulk_begin(ident_ctx *c, int64_t tenant_id, const char *template_name, ident_bulk **out,
                     pl_err *err) {
  ident_bulk *b = calloc(1, sizeof *b);
  if (!b)
    return pl_err_set(err, PL_ENOMEM, "out of memory");
  b->ctx = *c;
  b->tenant_id = tenant_id;
  b->errors = json_array();
  b->handle_col = -1;
  b->now_s = (uint32_t)(pl_now_ms() / 1000);
  pl_buf_init(&b->enc, 64u << 20);
  snprintf(b->template_name, sizeof b->template_name, "%s", template_name ? template_name : "");
  int rc = b->errors ? 0 : PL_ENOMEM;
  if (rc == 0)
    rc = load_template(c->db, tenant_id, template_name, &b->template_fields, err);
  if (rc == 0)
    rc = store_begin(c->db);
  if (rc < 0) {
    json_decref(b->errors);
    free(b->template_fields);
    free(b);
    return rc;
  }
  *out = b;
  return 0;
}

int64_t ident_bulk_rows(const ident_bulk *b) {
  return b->rows;
}

static void reject(ident_bulk *b, const char *handle, int rc, const pl_err *err) {
  b->rejected++;
  if (json_array_size(b->errors) < BULK_ERRORS_KEPT)
    json_array_append_new(b->errors, json_pack("{s:I, s:s, s:s}", "row", (json_int_t)b->rows,
                                               "handle", handle ? handle : "", "error",
                                               err->msg[0] ? err->msg : pl_strerror(rc)));
}

static int flush_stat(ident_bulk *b) {
  int rc = 0;
  if (b->stat_count)
    rc = store_ident_stats_add(b->ctx.db, b->stat_prefix_id, ident_day(pl_now_ms()), 0, 0,
                               b->stat_count);
  b->stat_count = 0;
  return rc;
}

/* One row with values already encoded into b->enc. Returns 0, a rejection code (recorded),
 * or a failure (PL_EIO, PL_EBUSY, PL_ENOMEM) that aborts the bulk. */
static int bulk_row(ident_bulk *b, const char *handle, const char *template_name, uint32_t n,
                    pl_err *err) {
  size_t len = strlen(handle);
  int rc = ident_check_handle(handle, len, err);
  if (rc < 0)
    return rc;
  size_t pl = ident_prefix_len(handle, len);
  if (!b->have_prefix || strlen(b->last_prefix.prefix) != pl ||
      strncasecmp(b->last_prefix.prefix, handle, pl) != 0) {
    rc = check_owner(b->ctx.db, b->tenant_id, handle, len, &b->last_prefix, err);
    if (rc < 0) {
      b->have_prefix = 0;
      return rc;
    }
    b->have_prefix = 1;
  }
  char *fields = b->template_fields;
  int own_fields = 0;
  if (template_name && *template_name && strcmp(template_name, b->template_name) != 0) {
    if ((rc = load_template(b->ctx.db, b->tenant_id, template_name, &fields, err)) < 0)
      return rc;
    own_fields = 1;
  }
  int created = 0;
  rc = put_one(b->ctx.db, b->tenant_id, &b->last_prefix, handle, fields,
               template_name && *template_name ? template_name : b->template_name, b->enc.data,
               b->enc.len, n, IDENT_PUT_CREATE, &created, err);
  if (own_fields)
    free(fields);
  if (rc == 0) {
    if (b->stat_prefix_id != b->last_prefix.id) {
      int frc = flush_stat(b);
      if (frc < 0)
        return frc;
      b->stat_prefix_id = b->last_prefix.id;
    }
    b->stat_count++;
  }
  return rc;
}

static int is_rejection(int rc) {
  return rc == PL_EINVAL || rc == PL_EPERM || rc == PL_EEXIST || rc == PL_ENOTFOUND ||
         rc == PL_ELIMIT;
}

/* "fields": {"TYPE": "text", ...} as string values with indexes 1, 2, ... */
static int fields_to_values(const json_t *fields, json_t **out) {
  json_t *arr = json_array();
  if (!arr)
    return PL_ENOMEM;
  const char *k;
  json_t *v;
  json_int_t idx = 1;
  json_object_foreach((json_t *)fields, k, v) {
    json_t *data = json_is_string(v) ? json_incref(v) : json_string("");
    if (!json_is_string(v)) {
      json_decref(data);
      json_decref(arr);
      return PL_EINVAL;
    }
    json_array_append_new(arr,
                          json_pack("{s:I, s:s, s:o}", "index", idx++, "type", k, "data", data));
  }
  *out = arr;
  return 0;
}

int ident_bulk_add_json(ident_bulk *b, const json_t *row) {
  b->rows++;
  pl_err err = {{0}};
  static const pl_json_field rf[] = {{"handle", PL_JSON_STRING, 1, IDENT_HANDLE_MAX, 0},
                                     {"template", PL_JSON_STRING, 0, 63, 1},
                                     {"values", PL_JSON_ARRAY, 0, IDENT_VALUES_MAX, 1},
                                     {"fields", PL_JSON_OBJECT, 0, IDENT_VALUES_MAX, 1}};
  const char *handle = json_is_object(row) ? pl_json_str(row, "handle", NULL) : NULL;
  int rc = pl_json_check(row, rf, 4, &err);
  json_t *vals = NULL;
  if (rc == 0) {
    const json_t *f = json_object_get(row, "fields");
    if (json_is_object(f)) {
      if (fields_to_values(f, &vals) < 0)
        rc = pl_err_set(&err, PL_EINVAL, "\"fields\" values must be strings");
    } else {
      vals = json_incref(json_object_get(row, "values"));
      if (!vals)
        vals = json_array();
    }
  }
  uint32_t n = 0;
  pl_buf_reset(&b->enc);
  if (rc == 0)
    rc = ident_values_from_json(vals, b->now_s, &b->enc, &n, &err);
  json_decref(vals);
  if (rc == 0)
    rc = bulk_row(b, handle, pl_json_str(row, "template", NULL), n, &err);
  if (rc == 0) {
    b->accepted++;
    return 0;
  }
  if (is_rejection(rc)) {
    reject(b, handle, rc, &err);
    return rc;
  }
  return rc;
}

/* Splits a CSV line into fields (RFC 4180 quoting); returns the count or -1. */
static int csv_split(const char *line, size_t len, char **cells, int max, char *buf, size_t bufsz) {
  int n = 0;
  size_t o = 0, i = 0;
  while (i <= len) {
    if (n == max)
      return -1;
    cells[n++] = buf + o;
    if (i < len && line[i] == '"') {
      i++;
      for (;;) {
        if (i >= len)
          return -1;
        if (line[i] == '"') {
          if (i + 1 < len && line[i + 1] == '"') {
            if (o + 1 >= bufsz)
              return -1;
            buf[o++] = '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (o + 1 >= bufsz)
          return -1;
        buf[o++] = line[i++];
      }
      if (i < len && line[i] != ',')
        return -1;
    } else {
      while (i < len && line[i] != ',') {
        if (o + 1 >= bufsz)
          return -1;
        buf[o++] = line[i++];
      }
    }
    buf[o++] = 0;
    i++; /* the comma (or past the end) */
  }
  return n;
}

int ident_bulk_add_csv(ident_bulk *b, const char *line, size_t len) {
  while (len && (line[len - 1] == '\r' || line[len - 1] == '\n'))
    len--;
  char *cells[IDENT_VALUES_MAX + 1];
  size_t bufsz = len + IDENT_VALUES_MAX + 2;
  char *buf = malloc(bufsz);
  if (!buf)
    return PL_ENOMEM;
  int n = csv_split(line, len, cells, IDENT_VALUES_MAX + 1, buf, bufsz);
  pl_err err = {{0}};
  int rc = 0;
  if (!b->columns) {
    /* the header */
    if (n < 1) {
      free(buf);
      return PL_EINVAL;
    }
    b->columns = calloc((size_t)n, sizeof *b->columns);
    if (!b->columns) {
      free(buf);
      return PL_ENOMEM;
    }
    b->ncolumns = n;
    for (int i = 0; i < n; i++) {
      b->columns[i] = strdup(cells[i]);
      if (!b->columns[i])
        rc = PL_ENOMEM;
      if (!strcmp(cells[i], "handle"))
        b->handle_col = i;
    }
    free(buf);
    if (rc == 0 && b->handle_col < 0)
      return PL_EINVAL;
    return rc;
  }
  b->rows++;
  const char *handle = n > b->handle_col && b->handle_col >= 0 ? cells[b->handle_col] : NULL;
  if (n != b->ncolumns) {
    rc = pl_err_set(&err, PL_EINVAL, "the row has %d columns, the header %d", n < 0 ? 0 : n,
                    b->ncolumns);
  } else {
    /* Each non-empty cell is a string value of its column's type, encoded directly (the same
     * checks as ident_values_from_json for text data). */
    uint32_t nv = 0;
    pl_buf_reset(&b->enc);
    for (int i = 0; i < n && rc == 0; i++) {
      if (i == b->handle_col || !cells[i][0])
        continue;
      size_t dl = strlen(cells[i]), tl = strlen(b->columns[i]);
      hdl_value v = {nv + 1,
                     b->now_s,
                     0,
                     IDENT_TTL_DEFAULT,
                     HDL_PERM_ADMIN_READ | HDL_PERM_ADMIN_WRITE | HDL_PERM_PUBLIC_READ,
                     {(const uint8_t *)b->columns[i], (uint32_t)tl},
                     {(const uint8_t *)cells[i], (uint32_t)dl},
                     0,
                     {NULL, 0}};
      if (!tl || tl > HDL_TYPE_MAX || dl > IDENT_DATA_MAX || !pl_utf8_valid(cells[i], dl))
        rc = pl_err_set(&err, PL_EINVAL, "column %d: not valid text of at most %d bytes", i + 1,
                        IDENT_DATA_MAX);
      else if (is_reserved(b->columns[i]))
        rc = check_reserved(b->columns[i], v.data, v.index, &err);
      if (rc == 0)
        rc = hdl_value_encode(&b->enc, &v);
      nv++;
    }
    if (rc == 0)
      rc = bulk_row(b, handle, NULL, nv, &err);
  }
  if (rc == 0)
    b->accepted++;
  else if (is_rejection(rc))
    reject(b, handle, rc, &err);
  free(buf);
  return rc;
}

static void bulk_free(ident_bulk *b) {
  for (int i = 0; i < b->ncolumns; i++)
    free(b->columns[i]);
  free(b->columns);
  free(b->template_fields);
  pl_buf_free(&b->enc);
  free(b);
}

int ident_bulk_finish(ident_bulk *b, ident_bulk_report *report, pl_err *err) {
  int rc = flush_stat(b);
  char detail[160];
  snprintf(detail, sizeof detail, "rows=%lld accepted=%lld rejected=%lld", (long long)b->rows,
           (long long)b->accepted, (long long)b->rejected);
  if (rc == 0)
    rc = audit(&b->ctx, b->tenant_id, "ident.bulk", "handles", 0, err, detail);
  if (rc == 0)
    rc = store_commit(b->ctx.db);
  if (rc < 0) {
    store_rollback(b->ctx.db);
    pl_err_set(err, rc, "committing the bulk registration: %s", pl_strerror(rc));
    json_decref(b->errors);
    bulk_free(b);
    return rc;
  }
  report->rows = b->rows;
  report->accepted = b->accepted;
  report->rejected = b->rejected;
  report->errors = b->errors;
  bulk_free(b);
  return 0;
}

int ident_bulk_add_body(ident_bulk *b, int format, const uint8_t *data, size_t len,
                        void (*progress)(void *ctx, size_t bytes_done), void *ctx, pl_err *err) {
  int rc = 0;
  if (format == IDENT_BULK_JSON) {
    json_t *doc = NULL;
    pl_err perr = {{0}};
    static const pl_json_field fields[] = {{"rows", PL_JSON_ARRAY, 1, IDENT_BULK_MAX, 0},
                                           {"template", PL_JSON_STRING, 0, 63, 1}};
    if (pl_json_parse(data, len, PL_JSON_DEPTH_MAX, &doc, &perr) < 0 ||
        pl_json_check(doc, fields, 2, &perr) < 0) {
      json_decref(doc);
      return pl_err_set(err, PL_EINVAL, "%s", perr.msg);
    }
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(doc, "rows"), i, row) {
      rc = ident_bulk_add_json(b, row);
      if (rc < 0 && !is_rejection(rc))
        break;
      rc = 0;
      if (progress && (i + 1) % 1000 == 0)
        progress(ctx, len * (i + 1) / (json_array_size(json_object_get(doc, "rows")) + 1));
    }
    json_decref(doc);
    if (progress && rc == 0)
      progress(ctx, len);
    return rc;
  }
  const char *p = (const char *)data, *end = p + len;
  int first = 1;
  int64_t n = 0;
  while (p && p < end && rc == 0) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (ll && !(ll == 1 && p[0] == '\r')) {
      if (format == IDENT_BULK_CSV) {
        rc = ident_bulk_add_csv(b, p, ll);
        if (first && rc < 0)
          return pl_err_set(err, PL_EINVAL, "the CSV header must name a \"handle\" column");
        first = 0;
      } else {
        json_t *row = NULL;
        if (pl_json_parse(p, ll, 8, &row, NULL) < 0)
          row = json_pack("{s:s}", "handle", "");
        rc = row ? ident_bulk_add_json(b, row) : PL_ENOMEM;
        json_decref(row);
      }
      if (is_rejection(rc))
        rc = 0;
      if (progress && ++n % 1000 == 0)
        progress(ctx, (size_t)(p - (const char *)data));
    }
    p = nl ? nl + 1 : NULL;
  }
  if (progress && rc == 0)
    progress(ctx, len);
  return rc;
}

void ident_bulk_abort(ident_bulk *b) {
  if (!b)
    return;
  store_rollback(b->ctx.db);
  json_decref(b->errors);
  bulk_free(b);
}
