/* Identifiers over HTTP:
 *   /api/handles/{handle}   the Handle.net REST API shape (GET resolves anyone's, with index=
 *                           and type= filters and publicOnly; PUT and DELETE for the owner)
 *   /api/v1/ident/...       Plateau's registry API: prefixes, templates, bulk registration,
 *                           identifier lists, statistics, QR codes and label sheets.
 *
 * Handle REST answers carry Handle.net's body ({"responseCode", "handle", "values"}) with the
 * HTTP status paired as Handle.net does (200/1, 404/100, 400/200, 400/102, 400/202, 401/402,
 * 409/101, 403/400); errors also carry Plateau's {"error": {"code", "message"}}.
 */
#include "http/http_int.h"

#include "base/clock.h"
#include "base/log.h"
#include "ident/digital_link.h"
#include "ident/ident.h"
#include "ident/label.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HANDLE_PATH "/api/handles/"

static const char *code_for(int status) {
  switch (status) {
  case 400: return "invalid_argument";
  case 401: return "unauthenticated";
  case 403: return "permission_denied";
  case 404: return "not_found";
  case 409: return "already_exists";
  case 502: return "unavailable";
  case 504: return "deadline_exceeded";
  default: return status >= 500 ? "internal" : "failed_precondition";
  }
}

/* A Handle REST reply: {"responseCode", "handle", ...} plus the error object for failures. */
static int hs_reply(http_req *r, int status, int response_code, const char *handle,
                    const char *message, json_t *extra) {
  json_t *o = json_object();
  json_object_set_new(o, "responseCode", json_integer(response_code));
  if (handle)
    json_object_set_new(o, "handle", json_string(handle));
  if (extra) {
    json_object_update(o, extra);
    json_decref(extra);
  }
  if (status >= 400) {
    json_object_set_new(o, "message",
                        json_string(message ? message : hdl_rc_name((uint32_t)response_code)));
    json_object_set_new(o, "error",
                        json_pack("{s:s, s:s}", "code", code_for(status), "message",
                                  message ? message : hdl_rc_name((uint32_t)response_code)));
  }
  return http_reply_json(r, status, o);
}

/* The handle named by the path after /api/handles/ (the router matched its segments). */
static int path_handle(http_req *r, char *out, size_t outsz) {
  const char *h = r->path + strlen(HANDLE_PATH);
  size_t n = strlen(h);
  if (n == 0 || n >= outsz)
    return -1;
  memcpy(out, h, n + 1);
  return (int)n;
}

/* Authenticates when a token is offered; anonymous otherwise. Returns > 0 after replying 401
 * to a bad token. */
static int optional_auth(http_req *r) {
  const char *h = http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
  if (!h)
    return 0;
  if (strncasecmp(h, "Bearer ", 7) != 0)
    return hs_reply(r, 401, HDL_RC_AUTHEN_NEEDED, NULL,
                    "the Authorization header must be \"Bearer <token>\"", NULL);
  const char *token = h + 7;
  while (*token == ' ')
    token++;
  int rc = auth_authenticate(r->db, token, pl_now_ms(), &r->who);
  if (rc == PL_EBUSY)
    return http_reply_error(r, 503, "the database is busy; retry shortly");
  if (rc < 0)
    return hs_reply(r, 401, HDL_RC_AUTHEN_FAILED, NULL, "the token is unknown, expired or revoked",
                    NULL);
  r->authed = 1;
  auth_principal_actor(&r->who, r->actor, sizeof r->actor);
  return 0;
}

typedef struct filters {
  uint32_t indexes[HDL_LIST_MAX];
  uint32_t nindexes;
  hdl_str types[HDL_LIST_MAX];
  uint32_t ntypes;
  int bad;
} filters;

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value) {
  filters *f = cls;
  if (!value)
    return MHD_YES;
  if (!strcmp(key, "index")) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(value, &end, 10);
    if (errno || *end || !*value || v > UINT32_MAX || f->nindexes == HDL_LIST_MAX)
      f->bad = 1;
    else
      f->indexes[f->nindexes++] = (uint32_t)v;
  } else if (!strcmp(key, "type")) {
    size_t n = strlen(value);
    if (n == 0 || n > HDL_TYPE_MAX || f->ntypes == HDL_LIST_MAX)
      f->bad = 1;
    else
      f->types[f->ntypes++] = (hdl_str){(const uint8_t *)value, (uint32_t)n};
  }
  return MHD_YES;
}

static int truthy(const char *v) {
  return v && (!strcmp(v, "") || !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes"));
}

static json_t *values_json(const ident_result *res) {
  json_t *arr = json_array();
  uint32_t pos = 0;
  hdl_value v;
  hdl_str buf = {res->values.data ? res->values.data : (const uint8_t *)"",
                 (uint32_t)res->values.len};
  for (uint32_t i = 0; i < res->nvalues && hdl_value_next(buf, &pos, &v) == 1; i++)
    json_array_append_new(arr, ident_value_to_json(&v));
  return arr;
}

/* JSON string of n bytes (valid UTF-8), escaped. */
static int put_json_str(pl_buf *b, const uint8_t *p, size_t n) {
  static const char hex[] = "0123456789abcdef";
  int rc = pl_buf_append_byte(b, '"');
  size_t run = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    uint8_t c = p[i];
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    rc = pl_buf_append(b, p + run, i - run);
    if (rc == 0) {
      if (c == '"' || c == '\\') {
        uint8_t e[2] = {'\\', c};
        rc = pl_buf_append(b, e, 2);
      } else {
        uint8_t e[6] = {'\\', 'u', '0', '0', (uint8_t)hex[c >> 4], (uint8_t)hex[c & 15]};
        rc = pl_buf_append(b, e, 6);
      }
    }
    run = i + 1;
  }
  if (rc == 0)
    rc = pl_buf_append(b, p + run, n - run);
  if (rc == 0)
    rc = pl_buf_append_byte(b, '"');
  return rc;
}

/* The success answer written directly (the hot path of HTTP resolution): the same JSON as
 * ident_value_to_json gives, without building a tree. Values that are not plain text (admin,
 * site, binary) go through jansson. */
static int reply_values(http_req *r, const char *handle, const ident_result *res) {
  pl_buf *b = &r->out;
  pl_buf_reset(b);
  int rc = pl_buf_append_str(b, "{\"responseCode\":1,\"handle\":");
  if (rc == 0)
    rc = put_json_str(b, (const uint8_t *)handle, strlen(handle));
  if (rc == 0)
    rc = pl_buf_append_str(b, ",\"source\":");
  if (rc == 0)
    rc = put_json_str(b, (const uint8_t *)res->source, strlen(res->source));
  if (rc == 0)
    rc = pl_buf_append_str(b, ",\"values\":[");
  uint32_t pos = 0;
  hdl_value v;
  hdl_str buf = {res->values.data ? res->values.data : (const uint8_t *)"",
                 (uint32_t)res->values.len};
  for (uint32_t i = 0; rc == 0 && i < res->nvalues && hdl_value_next(buf, &pos, &v) == 1; i++) {
    if (i)
      rc = pl_buf_append_byte(b, ',');
    int plain = pl_utf8_valid(v.type.p, v.type.len) && pl_utf8_valid(v.data.p, v.data.len) &&
                !memchr(v.data.p, 0, v.data.len) &&
                !(v.type.len >= 3 && !memcmp(v.type.p, "HS_", 3)) && v.nrefs == 0 &&
                (v.perm & HDL_PERM_PUBLIC_READ);
    if (!plain) {
      json_t *o = ident_value_to_json(&v);
      if (rc == 0)
        rc = o ? pl_json_dump(o, b) : PL_ENOMEM;
      json_decref(o);
      continue;
    }
    char ts[40];
    if (rc == 0)
      rc = pl_buf_printf(b, "{\"index\":%u,\"type\":", v.index);
    if (rc == 0)
      rc = put_json_str(b, v.type.p, v.type.len);
    if (rc == 0)
      rc = pl_buf_append_str(b, ",\"data\":{\"format\":\"string\",\"value\":");
    if (rc == 0)
      rc = put_json_str(b, v.data.p, v.data.len);
    if (rc == 0)
      rc = pl_buf_printf(b, "},\"ttl\":%d,\"timestamp\":\"%s\"}", (int)v.ttl,
                         pl_time_format((int64_t)v.timestamp * 1000000000LL, ts, sizeof ts));
  }
  if (rc == 0)
    rc = pl_buf_append_str(b, "]}");
  if (rc < 0)
    return http_reply_error(r, 500, "out of memory");
  r->status = 200;
  r->responded = 1;
  r->content_type = NULL;
  return 200;
}

static int resolve(http_req *r) {
  char handle[IDENT_HANDLE_MAX + 1];
  int n = path_handle(r, handle, sizeof handle);
  if (n < 0 || ident_check_handle(handle, (size_t)n, NULL) < 0)
    return hs_reply(r, 400, HDL_RC_INVALID_HANDLE, n < 0 ? NULL : handle,
                    "invalid handle: expected PREFIX/SUFFIX", NULL);
  int st = optional_auth(r);
  if (st)
    return st;
  filters *f = calloc(1, sizeof *f);
  if (!f)
    return http_reply_error(r, 500, "out of memory");
  MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect, f);
  if (f->bad) {
    free(f);
    return hs_reply(r, 400, HDL_RC_VALUE_INVALID, handle,
                    "index= must be a whole number and type= non-empty (at most 256 of each)",
                    NULL);
  }
  ident_query q = {{(const uint8_t *)handle, (uint32_t)n},
                   f->indexes,
                   f->nindexes,
                   f->types,
                   f->ntypes,
                   truthy(http_query(r, "publicOnly")),
                   r->authed ? r->who.tenant_id : 0,
                   0,
                   0};
  ident_result res;
  ident_result_init(&res);
  int rc = ident_resolve(r->deps->ident, r->db, &q, &res);
  int nfilters = (int)(f->nindexes + f->ntypes);
  free(f);
  if (rc < 0) {
    ident_result_free(&res);
    return http_reply_pl(r, rc, NULL);
  }
  int status;
  json_t *extra = json_object();
  json_object_set_new(extra, "source", json_string(res.source));
  switch (res.rc) {
  case HDL_RC_SUCCESS: {
    status = 200;
    /* A browser asking for the identifier goes to its URL, as the Handle proxy sends it. */
    const char *accept = http_header(r, "Accept");
    if (!nfilters && accept && strstr(accept, "text/html") && !http_query(r, "noredirect")) {
      uint32_t pos = 0;
      hdl_value v;
      hdl_str buf = {res.values.data, (uint32_t)res.values.len};
      for (uint32_t i = 0; i < res.nvalues && hdl_value_next(buf, &pos, &v) == 1; i++) {
        if (v.type.len == 3 && !memcmp(v.type.p, "URL", 3) && v.data.len < 4000) {
          char url[4096];
          memcpy(url, v.data.p, v.data.len);
          url[v.data.len] = 0;
          http_add_header(r, "Location", url);
          status = 302;
          break;
        }
      }
    }
    if (status == 200) {
      json_decref(extra);
      status = reply_values(r, handle, &res);
      ident_result_free(&res);
      return status;
    }
    json_object_set_new(extra, "values", values_json(&res));
    break;
  }
  case HDL_RC_HANDLE_NOT_FOUND: status = 404; break;
  case HDL_RC_VALUE_NOT_FOUND: status = 400; break;
  case HDL_RC_ERROR: status = 504; break;
  default: status = 502; break;
  }
  ident_result_free(&res);
  return hs_reply(r, status, (int)res.rc, handle, res.message[0] ? res.message : NULL, extra);
}

/* The tenant a write acts on, with the Handle REST error shapes. */
static int write_access(http_req *r, store_tenant *t) {
  int st = optional_auth(r);
  if (st)
    return st;
  if (!r->authed)
    return hs_reply(r, 401, HDL_RC_AUTHEN_NEEDED, NULL,
                    "this needs a token: send Authorization: Bearer <token>", NULL);
  if (!auth_can(r->who.role, AUTH_PERM_DATA_WRITE) || r->who.role == AUTH_ROLE_DEVICE)
    return hs_reply(r, 403, HDL_RC_NOT_AUTHORIZED, NULL, "this role may not register identifiers",
                    NULL);
  return http_tenant(r, "ident", t);
}

static ident_ctx ictx(http_req *r) {
  ident_ctx c = {r->db, r->deps->audit, r->actor, "api", r->remote};
  return c;
}

static int put_status(http_req *r, int rc, const char *handle, const pl_err *err) {
  const char *msg = err->msg[0] ? err->msg : pl_strerror(rc);
  switch (rc) {
  case PL_EINVAL: return hs_reply(r, 400, HDL_RC_VALUE_INVALID, handle, msg, NULL);
  case PL_EEXIST: return hs_reply(r, 409, HDL_RC_HANDLE_ALREADY_EXIST, handle, msg, NULL);
  case PL_EPERM: return hs_reply(r, 403, HDL_RC_NOT_AUTHORIZED, handle, msg, NULL);
  case PL_ENOTFOUND:
    return hs_reply(r, 404,
                    strstr(msg, "prefix") ? HDL_RC_SERVER_NOT_RESP : HDL_RC_HANDLE_NOT_FOUND,
                    handle, msg, NULL);
  default: return http_reply_pl(r, rc, err);
  }
}

static int put(http_req *r) {
  char handle[IDENT_HANDLE_MAX + 1];
  int n = path_handle(r, handle, sizeof handle);
  pl_err err = {{0}};
  if (n < 0 || ident_check_handle(handle, (size_t)n, &err) < 0)
    return hs_reply(r, 400, HDL_RC_INVALID_HANDLE, n < 0 ? NULL : handle,
                    err.msg[0] ? err.msg : "invalid handle", NULL);
  store_tenant t;
  int st = write_access(r, &t);
  if (st)
    return st;
  static const pl_json_field fields[] = {{"handle", PL_JSON_STRING, 0, IDENT_HANDLE_MAX, 1},
                                         {"values", PL_JSON_ARRAY, 1, IDENT_VALUES_MAX, 0},
                                         {"template", PL_JSON_STRING, 0, 63, 1},
                                         {"responseCode", PL_JSON_INTEGER, 0, 0, 1}};
  json_t *body;
  if ((st = http_body_json(r, fields, 4, &body)))
    return st;
  const char *bh = pl_json_str(body, "handle", NULL);
  if (bh && strcasecmp(bh, handle) != 0) {
    json_decref(body);
    return hs_reply(r, 400, HDL_RC_INVALID_HANDLE, handle,
                    "the body's handle differs from the path's", NULL);
  }
  const char *ow = http_query(r, "overwrite");
  int mode = ow && !strcmp(ow, "false") ? IDENT_PUT_CREATE : IDENT_PUT_UPSERT;
  ident_ctx c = ictx(r);
  int created = 0;
  int rc = ident_handle_put(&c, t.id, handle, pl_json_str(body, "template", NULL),
                            json_object_get(body, "values"), mode, &created, &err);
  json_decref(body);
  if (rc < 0)
    return put_status(r, rc, handle, &err);
  return hs_reply(r, created ? 201 : 200, HDL_RC_SUCCESS, handle, NULL, NULL);
}

static int del(http_req *r) {
  char handle[IDENT_HANDLE_MAX + 1];
  int n = path_handle(r, handle, sizeof handle);
  if (n < 0 || ident_check_handle(handle, (size_t)n, NULL) < 0)
    return hs_reply(r, 400, HDL_RC_INVALID_HANDLE, n < 0 ? NULL : handle, "invalid handle", NULL);
  store_tenant t;
  int st = write_access(r, &t);
  if (st)
    return st;
  pl_err err = {{0}};
  ident_ctx c = ictx(r);
  int rc = ident_handle_delete(&c, t.id, handle, &err);
  if (rc < 0)
    return put_status(r, rc, handle, &err);
  return hs_reply(r, 200, HDL_RC_SUCCESS, handle, NULL, NULL);
}

/* ---- prefixes ---- */

static json_t *prefix_json(store *db, const store_prefix *p) {
  store_tenant t;
  const char *tenant = store_tenant_get(db, p->tenant_id, &t) == 0 ? t.name : "";
  json_t *o = json_pack("{s:I, s:s, s:s, s:o}", "id", (json_int_t)p->id, "prefix", p->prefix,
                        "tenant", tenant, "created", http_time_json(p->created_ms));
  return o;
}

typedef struct plist {
  http_list l;
  store *db;
} plist;

static int add_prefix(void *ctx, const store_prefix *p) {
  plist *pl = ctx;
  return http_list_add(&pl->l, p->id, prefix_json(pl->db, p));
}

static int prefix_list(http_req *r) {
  int limit;
  int64_t after;
  int st = http_paging(r, &limit, &after);
  if (st)
    return st;
  int64_t tenant = r->who.tenant_id;
  if (auth_role_cross_tenant(r->who.role)) {
    tenant = 0;
    if (http_query(r, "tenant")) {
      store_tenant t;
      if ((st = http_tenant(r, "ident", &t)))
        return st;
      tenant = t.id;
    }
  }
  plist pl = {.db = r->db};
  http_list_init(&pl.l, limit);
  return http_list_reply(r, &pl.l,
                         store_prefix_list(r->db, tenant, after, limit + 1, add_prefix, &pl));
}

static int prefix_create(http_req *r) {
  static const pl_json_field fields[] = {{"prefix", PL_JSON_STRING, 1, IDENT_PREFIX_MAX, 0},
                                         {"tenant", PL_JSON_STRING, 0, 63, 1}};
  if (r->who.role != AUTH_ROLE_ADMIN && r->who.role != AUTH_ROLE_TENANT_ADMIN)
    return http_reply_error(
        r, 403, "only the admin allocates prefixes, and a tenant-admin delegates under its own");
  json_t *body;
  int st = http_body_json(r, fields, 2, &body);
  if (st)
    return st;
  store_tenant t;
  const char *tname = pl_json_str(body, "tenant", NULL);
  int rc;
  if (tname && strcmp(tname, r->who.tenant_name) != 0) {
    if (r->who.role != AUTH_ROLE_ADMIN) {
      json_decref(body);
      return http_reply_error(r, 403, "only the admin allocates prefixes to another tenant");
    }
    rc = store_tenant_get_by_name(r->db, tname, &t);
    if (rc < 0) {
      json_decref(body);
      return rc == PL_ENOTFOUND ? http_reply_error(r, 404, "no tenant named \"%.63s\"", tname)
                                : http_reply_pl(r, rc, NULL);
    }
  } else if ((rc = store_tenant_get(r->db, r->who.tenant_id, &t)) < 0) {
    json_decref(body);
    return http_reply_pl(r, rc, NULL);
  }
  pl_err err = {{0}};
  ident_ctx c = ictx(r);
  store_prefix p;
  rc = ident_prefix_create(&c, t.id, pl_json_str(body, "prefix", ""),
                           r->who.role == AUTH_ROLE_ADMIN, &p, &err);
  json_decref(body);
  if (rc < 0)
    return http_reply_pl(r, rc, &err);
  return http_reply_json(r, 201, prefix_json(r->db, &p));
}

static int prefix_delete(http_req *r) {
  if (r->who.role != AUTH_ROLE_ADMIN && r->who.role != AUTH_ROLE_TENANT_ADMIN)
    return http_reply_error(r, 403, "only the admin or the tenant's admin deletes prefixes");
  store_prefix p;
  const char *name = r->match.params[0];
  int rc = store_prefix_get(r->db, name, strlen(name), &p);
  if (rc == 0 && p.tenant_id != r->who.tenant_id && r->who.role != AUTH_ROLE_ADMIN)
    rc = PL_ENOTFOUND;
  if (rc == PL_ENOTFOUND)
    return http_reply_error(r, 404, "no prefix %.127s here", name);
  if (rc < 0)
    return http_reply_pl(r, rc, NULL);
  pl_err err = {{0}};
  ident_ctx c = ictx(r);
  rc = ident_prefix_delete(&c, &p, &err);
  return rc < 0 ? http_reply_pl(r, rc, &err) : http_reply_empty(r, 204);
}

/* ---- templates ---- */

static json_t *template_json(const store_template *t) {
  json_t *fields = json_loads(t->fields_json ? t->fields_json : "[]", 0, NULL);
  return json_pack("{s:s, s:o, s:o, s:o}", "name", t->name, "fields",
                   fields ? fields : json_array(), "created", http_time_json(t->created_ms),
                   "updated", http_time_json(t->updated_ms));
}

static int add_template(void *ctx, const store_template *t) {
  return json_array_append_new(ctx, template_json(t)) < 0 ? PL_ENOMEM : 0;
}

static int template_list(http_req *r) {
  store_tenant t;
  int st = http_tenant(r, "ident", &t);
  if (st)
    return st;
  json_t *items = json_array();
  int rc = store_template_list(r->db, t.id, add_template, items);
  if (rc < 0) {
    json_decref(items);
    return http_reply_pl(r, rc, NULL);
  }
  return http_reply_json(r, 200, json_pack("{s:o}", "items", items));
}

static int template_get(http_req *r) {
  store_tenant t;
  int st = http_tenant(r, "ident", &t);
  if (st)
    return st;
  store_template tp;
  int rc = store_template_get(r->db, t.id, r->match.params[0], &tp);
  if (rc == PL_ENOTFOUND)
    return http_reply_error(r, 404, "no template named \"%.63s\"", r->match.params[0]);
  if (rc < 0)
    return http_reply_pl(r, rc, NULL);
  json_t *o = template_json(&tp);
  store_template_clear(&tp);
  return http_reply_json(r, 200, o);
}

static int template_put(http_req *r) {
  store_tenant t;
  int st = http_tenant(r, "ident", &t);
  if (st)
    return st;
  static const pl_json_field fields[] = {{"fields", PL_JSON_ARRAY, 1, 100, 0},
                                         {"name", PL_JSON_STRING, 0, 63, 1}};
  json_t *body;
  if ((st = http_body_json(r, fields, 2, &body)))
    return st;
  pl_err err = {{0}};
  const char *name = r->match.params[0];
  int rc = strlen(name) > 63 || !*name
               ? pl_err_set(&err, PL_EINVAL, "a template name is 1 to 63 bytes")
               : ident_template_check_fields(json_object_get(body, "fields"), &err);
  store_template tp;
  memset(&tp, 0, sizeof tp);
  if (rc == 0) {
    tp.tenant_id = t.id;
    snprintf(tp.name, sizeof tp.name, "%s", name);
    tp.fields_json = json_dumps(json_object_get(body, "fields"), JSON_COMPACT);
    rc = tp.fields_json ? store_template_put(r->db, &tp) : PL_ENOMEM;
  }
  json_decref(body);
  if (rc < 0) {
    free(tp.fields_json);
    return http_reply_pl(r, rc, &err);
  }
  admin_ctx ac = http_admin(r);
  char target[96];
  snprintf(target, sizeof target, "template:%s", tp.name);
  admin_audit(&ac, t.id, "ident.template.put", target, "ok", "");
  free(tp.fields_json);
  store_template_get(r->db, t.id, name, &tp);
  json_t *o = template_json(&tp);
  store_template_clear(&tp);
  return http_reply_json(r, 200, o);
}

static int template_delete(http_req *r) {
  store_tenant t;
  int st = http_tenant(r, "ident", &t);
  if (st)
    return st;
  int rc = store_template_delete(r->db, t.id, r->match.params[0]);
  if (rc == PL_ENOTFOUND)
    return http_reply_error(r, 404, "no template named \"%.63s\"", r->match.params[0]);
  if (rc < 0)
    return http_reply_pl(r, rc, NULL);
  admin_ctx ac = http_admin(r);
  char target[96];
  snprintf(target, sizeof target, "template:%.63s", r->match.params[0]);
  admin_audit(&ac, t.id, "ident.template.delete", target, "ok", "");
  return http_reply_empty(r, 204);
}

/* ---- bulk ---- */

static int bulk(http_req *r) {
  store_tenant t;
  if (r->who.role == AUTH_ROLE_DEVICE)
    return http_reply_error(r, 403, "a device may not register identifiers");
  int st = http_tenant(r, "ident", &t);
  if (st)
    return st;
  const char *ct = http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
  int format =
      !ct                               ? 0
      : !strncasecmp(ct, "text/csv", 8) ? IDENT_BULK_CSV
      : (!strncasecmp(ct, "application/x-ndjson", 20) || !strncasecmp(ct, "application/jsonl", 17))
          ? IDENT_BULK_JSONL
      : !strncasecmp(ct, "application/json", 16) ? IDENT_BULK_JSON
                                                 : 0;
  if (!format)
    return http_reply_error(
        r, 415,
        "send rows as text/csv, application/x-ndjson or application/json {\"rows\": [...]}");
  const char *template_name = http_query(r, "template");
  json_t *doc = NULL;
  char tpl[64] = "";
  if (format == IDENT_BULK_JSON && !template_name) {
    /* the document may name the template */
    if (pl_json_parse(r->body.data, r->body.len, PL_JSON_DEPTH_MAX, &doc, NULL) == 0 &&
        json_is_object(doc))
      snprintf(tpl, sizeof tpl, "%s", pl_json_str(doc, "template", ""));
    json_decref(doc);
    template_name = tpl;
  }
  pl_err err = {{0}};
  const char *async = http_query(r, "async");
  if (async && truthy(async)) {
    /* In the background: 202 and a job to follow. */
    uint8_t *copy = malloc(r->body.len ? r->body.len : 1);
    if (!copy)
      return http_reply_error(r, 500, "out of memory");
    if (r->body.len)
      memcpy(copy, r->body.data, r->body.len);
    char db_path[1100];
    snprintf(db_path, sizeof db_path, "%s/meta.db",
             r->deps->cfg->data_dir); /* the data directory's database */
    ident_bulk_job_opts o = {db_path,   r->deps->audit, r->actor,      "api",
                             r->remote, t.id,           template_name, format};
    int64_t job;
    int rc = ident_bulk_submit(r->deps->ident, &o, copy, r->body.len, &job, &err);
    if (rc < 0)
      return http_reply_pl(r, rc, &err);
    char loc[64];
    snprintf(loc, sizeof loc, "/api/v1/ident/bulk/%lld", (long long)job);
    http_add_header(r, "Location", loc);
    return http_reply_json(
        r, 202,
        json_pack("{s:I, s:s, s:s}", "id", (json_int_t)job, "state", "running", "status", loc));
  }
  int64_t t0 = pl_mono_ns();
  ident_ctx c = ictx(r);
  ident_bulk *b;
  int rc = ident_bulk_begin(&c, t.id, template_name, &b, &err);
  if (rc < 0)
    return http_reply_pl(r, rc, &err);
  rc = ident_bulk_add_body(b, format, r->body.data, r->body.len, NULL, NULL, &err);
  if (rc < 0) {
    ident_bulk_abort(b);
    return http_reply_pl(r, rc, &err);
  }
  ident_bulk_report rep;
  if ((rc = ident_bulk_finish(b, &rep, &err)) < 0)
    return http_reply_pl(r, rc, &err);
  double secs = (double)(pl_mono_ns() - t0) / 1e9;
  return http_reply_json(r, 200,
                         json_pack("{s:I, s:I, s:I, s:o, s:f, s:f}", "rows", (json_int_t)rep.rows,
                                   "accepted", (json_int_t)rep.accepted, "rejected",
                                   (json_int_t)rep.rejected, "errors", rep.errors, "seconds", secs,
                                   "rows_per_second", secs > 0 ? (double)rep.rows / secs : 0.0));
}

static int bulk_status(http_req *r) {
  store_tenant t;
  int st = http_tenant(r, "ident", &t);
  if (st)
    return st;
  int64_t job = http_param_id(r, 0);
  json_t *o = job ? ident_bulk_job_json(r->deps->ident, t.id, job) : NULL;
  if (!o)
    return http_reply_error(r, 404, "no bulk registration %.32s in this tenant",
                            r->match.params[0]);
  return http_reply_json(r, 200, o);
}

/* ---- identifier lists, statistics ---- */

static int add_handle(void *ctx, const store_handle *h) {
  json_t *o = json_pack("{s:s, s:s, s:I, s:o, s:o}", "handle", h->handle, "template",
                        h->template_name, "values", (json_int_t)h->nvalues, "created",
                        http_time_json(h->created_ms), "updated", http_time_json(h->updated_ms));
  return http_list_add(ctx, h->id, o);
}

static int handle_list(http_req *r) {
  store_tenant t;
  int limit;
  int64_t after;
  int st = http_tenant(r, "ident", &t);
  if (st || (st = http_paging(r, &limit, &after)))
    return st;
  int64_t prefix_id = 0;
  const char *prefix = http_query(r, "prefix");
  if (prefix) {
    store_prefix p;
    int rc = store_prefix_get(r->db, prefix, strlen(prefix), &p);
    if (rc == 0 && p.tenant_id != t.id)
      rc = PL_ENOTFOUND;
    if (rc == PL_ENOTFOUND)
      return http_reply_error(r, 404, "no prefix %.127s in this tenant", prefix);
    if (rc < 0)
      return http_reply_pl(r, rc, NULL);
    prefix_id = p.id;
  }
  http_list l;
  http_list_init(&l, limit);
  return http_list_reply(
      r, &l, store_handle_list(r->db, t.id, prefix_id, after, limit + 1, add_handle, &l));
}

static int day_param(http_req *r, const char *key, int64_t dflt, int64_t *out) {
  const char *v = http_query(r, key);
  if (!v) {
    *out = dflt;
    return 0;
  }
  char full[40];
  int64_t ns;
  snprintf(full, sizeof full, "%.10sT00:00:00Z", v);
  if (strlen(v) != 10 || pl_time_parse(full, &ns) < 0)
    return http_reply_error(r, 400, "%s must be a date YYYY-MM-DD", key);
  *out = ident_day(ns / 1000000);
  return 0;
}

static int add_stat(void *ctx, const store_ident_stat *s) {
  char day[40];
  pl_time_format(s->day * 86400LL * 1000000000LL, day, sizeof day);
  day[10] = 0;
  return json_array_append_new(ctx,
                               json_pack("{s:s, s:s, s:I, s:I, s:I}", "prefix", s->prefix, "date",
                                         day, "resolutions", (json_int_t)s->resolutions,
                                         "not_found", (json_int_t)s->not_found, "registrations",
                                         (json_int_t)s->registrations)) < 0
             ? PL_ENOMEM
             : 0;
}

static int stats(http_req *r) {
  int64_t tenant = r->who.tenant_id;
  int st;
  if (auth_role_cross_tenant(r->who.role)) {
    tenant = 0;
    if (http_query(r, "tenant")) {
      store_tenant t;
      if ((st = http_tenant(r, "ident", &t)))
        return st;
      tenant = t.id;
    }
  }
  int64_t today = ident_day(pl_now_ms()), since, until;
  if ((st = day_param(r, "since", today - 30, &since)) ||
      (st = day_param(r, "until", today, &until)))
    return st;
  /* What the servers have counted but not yet written. */
  ident_stats_flush(r->deps->ident, r->db);
  json_t *items = json_array();
  int rc = store_ident_stats_list(r->db, tenant, since, until + 1, add_stat, items);
  if (rc < 0) {
    json_decref(items);
    return http_reply_pl(r, rc, NULL);
  }
  int64_t entries, hits, misses;
  ident_cache_stats(r->deps->ident, &entries, &hits, &misses);
  return http_reply_json(r, 200,
                         json_pack("{s:o, s:I, s:{s:I, s:I, s:I}}", "items", items, "identifiers",
                                   (json_int_t)store_handle_count(r->db, tenant), "cache",
                                   "entries", (json_int_t)entries, "hits", (json_int_t)hits,
                                   "misses", (json_int_t)misses));
}

/* ---- QR codes and label sheets ---- */

static int int_param(http_req *r, const char *key, int dflt, int lo, int hi, int *out) {
  const char *v = http_query(r, key);
  *out = dflt;
  if (!v)
    return 0;
  char *end;
  long n = strtol(v, &end, 10);
  if (*end || !*v || n < lo || n > hi)
    return http_reply_error(r, 400, "%s must be a whole number from %d to %d", key, lo, hi);
  *out = (int)n;
  return 0;
}

static int qr(http_req *r) {
  const char *data = http_query(r, "data");
  const char *format = http_query(r, "format");
  if (!format)
    format = "svg";
  int scale, st;
  if (!data || !*data)
    return http_reply_error(r, 400, "data= (the text to encode) is required");
  if ((st = int_param(r, "scale", !strcmp(format, "png") ? 8 : 4, 1, 64, &scale)))
    return st;
  if (strcmp(format, "svg") && strcmp(format, "png"))
    return http_reply_error(r, 400, "format must be svg or png");
  pl_err err = {{0}};
  pl_buf_reset(&r->out);
  int rc = !strcmp(format, "png") ? label_qr_png(data, scale, &r->out, &err)
                                  : label_qr_svg(data, scale, &r->out, &err);
  if (rc < 0)
    return http_reply_pl(r, rc, &err);
  r->status = 200;
  r->responded = 1;
  r->content_type = !strcmp(format, "png") ? "image/png" : "image/svg+xml";
  return 200;
}

typedef struct sheet {
  label_item *items;
  char **strings;
  size_t n, cap;
  int64_t last_id;
  const char *base;
} sheet;

static int add_label(void *ctx, const store_handle *h) {
  sheet *s = ctx;
  if (s->n == s->cap)
    return 0;
  s->last_id = h->id;
  char text[DL_URI_MAX + 256];
  char caption2[300] = "";
  snprintf(text, sizeof text, "%s/api/handles/%s", s->base, h->handle);
  /* A GS1 value makes the label a Digital Link, served by this node's resolver. */
  uint32_t pos = 0;
  hdl_value v;
  hdl_str buf = {h->values ? h->values : (const uint8_t *)"", (uint32_t)h->values_len};
  for (uint32_t i = 0; i < h->nvalues && hdl_value_next(buf, &pos, &v) == 1; i++) {
    if (v.type.len != 3 || memcmp(v.type.p, "GS1", 3) != 0 || !(v.perm & HDL_PERM_PUBLIC_READ))
      continue;
    dl_uri *u = malloc(sizeof *u);
    if (u && dl_parse(dl_dict_builtin(), (const char *)v.data.p, v.data.len, u, NULL) == 0) {
      char path[DL_KEY_PATH_MAX];
      if (dl_key_path(u, u->nqual, path, sizeof path) > 0)
        snprintf(text, sizeof text, "%s%s", s->base, path);
      dl_element_string(u, caption2, sizeof caption2);
    }
    free(u);
    break;
  }
  char **slot = &s->strings[s->n * 3];
  slot[0] = strdup(text);
  slot[1] = strdup(h->handle);
  slot[2] = caption2[0] ? strdup(caption2) : NULL;
  if (!slot[0] || !slot[1])
    return PL_ENOMEM;
  s->items[s->n] = (label_item){slot[0], slot[1], slot[2]};
  s->n++;
  return 0;
}

static int labels(http_req *r) {
  store_tenant t;
  int limit, columns, st = http_tenant(r, "ident", &t);
  int64_t after;
  if (st || (st = http_paging(r, &limit, &after)) ||
      (st = int_param(r, "columns", 4, 1, 10, &columns)))
    return st;
  const char *format = http_query(r, "format");
  if (!format)
    format = "html";
  if (strcmp(format, "html") && strcmp(format, "svg"))
    return http_reply_error(r, 400, "format must be html or svg");
  int64_t prefix_id = 0;
  const char *prefix = http_query(r, "prefix");
  if (prefix) {
    store_prefix p;
    int rc = store_prefix_get(r->db, prefix, strlen(prefix), &p);
    if (rc == 0 && p.tenant_id != t.id)
      rc = PL_ENOTFOUND;
    if (rc < 0)
      return rc == PL_ENOTFOUND
                 ? http_reply_error(r, 404, "no prefix %.127s in this tenant", prefix)
                 : http_reply_pl(r, rc, NULL);
    prefix_id = p.id;
  }
  const char *host = http_header(r, "Host");
  char base[300];
  snprintf(base, sizeof base, "http://%.250s", host && *host ? host : "localhost");
  sheet s = {calloc((size_t)limit, sizeof(label_item)),
             calloc((size_t)limit * 3, sizeof(char *)),
             0,
             (size_t)limit,
             0,
             base};
  int rc = s.items && s.strings
               ? store_handle_list(r->db, t.id, prefix_id, after, limit, add_label, &s)
               : PL_ENOMEM;
  pl_err err = {{0}};
  pl_buf_reset(&r->out);
  if (rc >= 0)
    rc = !strcmp(format, "svg") ? label_sheet_svg(s.items, s.n, columns, &r->out, &err)
                                : label_sheet_html(s.items, s.n, columns, t.name, &r->out, &err);
  for (size_t i = 0; s.strings && i < s.cap * 3; i++)
    free(s.strings[i]);
  free(s.strings);
  free(s.items);
  if (rc < 0)
    return http_reply_pl(r, rc, &err);
  if (s.n == (size_t)limit) {
    char next[32];
    snprintf(next, sizeof next, "%lld", (long long)s.last_id);
    http_add_header(r, "X-Next-Cursor", next);
  }
  r->status = 200;
  r->responded = 1;
  r->content_type = !strcmp(format, "svg") ? "image/svg+xml" : "text/html; charset=utf-8";
  return 200;
}

#define HANDLE_ROUTES(method, fn, perm, action)                                                    \
  {method, "/api/handles/{a}/{b}", (void *)fn, perm, action},                                      \
      {method, "/api/handles/{a}/{b}/{c}", (void *)fn, perm, action},                              \
      {method, "/api/handles/{a}/{b}/{c}/{d}", (void *)fn, perm, action},                          \
      {method, "/api/handles/{a}/{b}/{c}/{d}/{e}", (void *)fn, perm, action}, {                    \
    method, "/api/handles/{a}/{b}/{c}/{d}/{e}/{f}", (void *)fn, perm, action                       \
  }

const http_route api_handle_routes[] = {
    HANDLE_ROUTES("GET", resolve, HTTP_PERM_PUBLIC, "ident.resolve"),
    HANDLE_ROUTES("PUT", put, HTTP_PERM_PUBLIC, "ident.put"),
    HANDLE_ROUTES("DELETE", del, HTTP_PERM_PUBLIC, "ident.delete"),
    {"GET", "/api/v1/ident/prefixes", (void *)prefix_list, AUTH_PERM_DATA_READ, "prefix.list"},
    {"POST", "/api/v1/ident/prefixes", (void *)prefix_create, HTTP_PERM_ANY, "prefix.create"},
    {"DELETE", "/api/v1/ident/prefixes/{prefix}", (void *)prefix_delete, HTTP_PERM_ANY,
     "prefix.delete"},
    {"GET", "/api/v1/ident/templates", (void *)template_list, AUTH_PERM_DATA_READ,
     "ident.template.list"},
    {"GET", "/api/v1/ident/templates/{name}", (void *)template_get, AUTH_PERM_DATA_READ,
     "ident.template.read"},
    {"PUT", "/api/v1/ident/templates/{name}", (void *)template_put, AUTH_PERM_DATA_WRITE,
     "ident.template.put"},
    {"DELETE", "/api/v1/ident/templates/{name}", (void *)template_delete, AUTH_PERM_DATA_WRITE,
     "ident.template.delete"},
    {"POST", "/api/v1/ident/bulk", (void *)bulk, AUTH_PERM_DATA_WRITE, "ident.bulk"},
    {"GET", "/api/v1/ident/bulk/{id}", (void *)bulk_status, AUTH_PERM_DATA_READ, "ident.bulk.read"},
    {"GET", "/api/v1/ident/handles", (void *)handle_list, AUTH_PERM_DATA_READ, "ident.list"},
    {"GET", "/api/v1/ident/stats", (void *)stats, AUTH_PERM_DATA_READ, "ident.stats"},
    {"GET", "/api/v1/ident/qr", (void *)qr, HTTP_PERM_ANY, "ident.qr"},
    {"GET", "/api/v1/ident/labels", (void *)labels, AUTH_PERM_DATA_READ, "ident.labels"},
};
const size_t api_handle_nroutes = sizeof api_handle_routes / sizeof api_handle_routes[0];
