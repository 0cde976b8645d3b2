/* Helpers shared by the API area files: responses, the error model, body and paging
 * parameters, tenant resolution for cross-tenant roles. */
#include "http/http_int.h"

#include "base/clock.h"
#include "base/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *status_code(int status) {
  switch (status) {
  case 400: return "invalid_argument";
  case 401: return "unauthenticated";
  case 403: return "permission_denied";
  case 404: return "not_found";
  case 405: return "method_not_allowed";
  case 409: return "already_exists";
  case 411: return "length_required";
  case 413: return "payload_too_large";
  case 415: return "unsupported_media_type";
  case 429: return "resource_exhausted";
  case 431: return "request_header_fields_too_large";
  case 503: return "unavailable";
  case 504: return "deadline_exceeded";
  default: return status >= 500 ? "internal" : "failed_precondition";
  }
}

int http_reply_json(http_req *r, int status, json_t *body) {
  pl_buf_reset(&r->out);
  r->status = status;
  r->responded = 1;
  r->content_type = NULL;
  if (body) {
    if (pl_json_dump(body, &r->out) < 0) {
      pl_buf_reset(&r->out);
      r->status = 500;
    }
    json_decref(body);
  }
  return status;
}

int http_reply_error(http_req *r, int status, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (status >= 500) PL_LOG(PL_LOG_ERROR, "http", "req=%s status=%d msg=\"%s\"", r->id_str, status, msg);
  return http_reply_json(r, status, json_pack("{s:{s:s, s:s}}", "error", "code", status_code(status), "message", msg));
}

int http_reply_pl(http_req *r, int rc, const pl_err *err) {
  const char *msg = err && err->msg[0] ? err->msg : pl_strerror(rc);
  switch (rc) {
  case PL_EINVAL: return http_reply_error(r, 400, "%s", msg);
  case PL_ELIMIT: return http_reply_error(r, 400, "%s", msg);
  case PL_ENOTFOUND: return http_reply_error(r, 404, "%s", msg);
  case PL_EEXIST: return http_reply_error(r, 409, "%s", msg);
  case PL_EPERM: return http_reply_error(r, 403, "%s", msg);
  case PL_EAUTH: return http_reply_error(r, 401, "%s", msg);
  case PL_ECONFLICT: return http_reply_error(r, 409, "%s", msg);
  case PL_EBUSY: return http_reply_error(r, 503, "the database is busy; retry shortly");
  default: return http_reply_error(r, 500, "%s (request %s)", msg, r->id_str);
  }
}

int http_reply_empty(http_req *r, int status) {
  return http_reply_json(r, status, NULL);
}

const char *http_query(http_req *r, const char *key) {
  return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_header(http_req *r, const char *key) {
  return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, key);
}

int http_body_json(http_req *r, const pl_json_field *fields, size_t nfields, json_t **out) {
  const char *ct = http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
  if (r->body.len && (!ct || strncasecmp(ct, "application/json", 16) != 0 || (ct[16] && ct[16] != ';' && ct[16] != ' ')))
    return http_reply_error(r, 415, "the body must be JSON: send Content-Type: application/json");
  pl_err err = {{0}};
  json_t *v = NULL;
  int rc = pl_json_parse(r->body.data, r->body.len, PL_JSON_DEPTH_MAX, &v, &err);
  if (rc < 0) return http_reply_error(r, 400, "%s", err.msg);
  if ((rc = pl_json_check(v, fields, nfields, &err)) < 0) {
    json_decref(v);
    return http_reply_error(r, 400, "%s", err.msg);
  }
  *out = v;
  return 0;
}

int64_t http_param_id(http_req *r, int i) {
  if (i >= r->match.nparams) return 0;
  const char *s = r->match.params[i];
  if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 18) return 0;
  return strtoll(s, NULL, 10);
}

int http_paging(http_req *r, int *limit, int64_t *after) {
  const char *l = http_query(r, "limit"), *a = http_query(r, "after");
  int64_t max = r->deps->cfg->page_size_max;
  *limit = 100 < max ? 100 : (int)max;
  *after = 0;
  if (l) {
    char *end;
    errno = 0;
    long v = strtol(l, &end, 10);
    if (errno || *end || !*l || v < 1 || v > max)
      return http_reply_error(r, 400, "limit must be a whole number from 1 to %lld", (long long)max);
    *limit = (int)v;
  }
  if (a) {
    char *end;
    errno = 0;
    long long v = strtoll(a, &end, 10);
    if (errno || *end || !*a || v < 0) return http_reply_error(r, 400, "after must be a cursor from a previous page");
    *after = v;
  }
  return 0;
}

admin_ctx http_admin(http_req *r) {
  admin_ctx c = {r->db, r->deps->audit, r->actor, "api", r->remote};
  return c;
}

int http_tenant(http_req *r, const char *area, store_tenant *out) {
  const char *name = http_query(r, "tenant");
  if (!name || strcmp(name, r->who.tenant_name) == 0) {
    int rc = store_tenant_get(r->db, r->who.tenant_id, out);
    return rc < 0 ? http_reply_pl(r, rc, NULL) : 0;
  }
  if (!auth_role_cross_tenant(r->who.role))
    return http_reply_error(r, 403, "only the admin and regulator roles may act on another tenant");
  int rc = store_tenant_get_by_name(r->db, name, out);
  if (rc == PL_ENOTFOUND) return http_reply_error(r, 404, "no tenant named \"%.64s\"", name);
  if (rc < 0) return http_reply_pl(r, rc, NULL);
  if (strcmp(r->method, "GET") == 0) {
    char action[64], target[96];
    snprintf(action, sizeof action, "%s.read", area);
    snprintf(target, sizeof target, "tenant:%s", out->name);
    admin_ctx c = http_admin(r);
    admin_audit(&c, out->id, action, target, "ok", r->path);
  }
  return 0;
}

int http_tsdb_ns(http_req *r, int64_t tenant_id, const char *db, int create, int64_t *ns) {
  if (!db || !*db || strcmp(db, "plateau") == 0) {
    *ns = tenant_id;
    return 0;
  }
  size_t len = strlen(db);
  if (len >= sizeof ((store_database *)0)->name || !pl_utf8_valid(db, len)) return PL_EINVAL;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)db[i] < 0x20 || db[i] == 0x7f) return PL_EINVAL;
  store_database d;
  int rc = store_database_get_by_name(r->db, tenant_id, db, &d);
  if (rc == PL_ENOTFOUND && create) {
    memset(&d, 0, sizeof d);
    d.tenant_id = tenant_id;
    memcpy(d.name, db, len + 1);
    rc = store_database_create(r->db, &d);
    /* Created meanwhile by a concurrent request: use that one. */
    if (rc == PL_EEXIST) rc = store_database_get_by_name(r->db, tenant_id, db, &d);
  }
  if (rc < 0) return rc;
  *ns = STORE_DATABASE_NS_BASE | d.id;
  return 0;
}

int http_check_grant(http_req *r, const char *role) {
  int target = auth_role_parse(role);
  if (target < 0) return http_reply_error(r, 400, "unknown role \"%.32s\"", role);
  if (!auth_role_may_grant(r->who.role, (auth_role)target))
    return http_reply_error(r, 403, "the %s role may not grant the %s role", auth_role_name(r->who.role), role);
  return 0;
}

json_t *http_time_json(int64_t ms) {
  if (!ms) return json_null();
  char buf[40];
  return json_string(pl_time_format(ms * 1000000, buf, sizeof buf));
}

json_t *http_page(json_t *items, int has_more, int64_t last_id) {
  json_t *page = json_pack("{s:o}", "items", items);
  if (page && has_more) {
    char next[24];
    snprintf(next, sizeof next, "%lld", (long long)last_id);
    json_object_set_new(page, "next", json_string(next));
  }
  return page;
}

void http_list_init(http_list *l, int limit) {
  l->items = json_array();
  l->limit = limit;
  l->count = 0;
  l->last_id = 0;
}

int http_list_add(http_list *l, int64_t id, json_t *item) {
  if (++l->count > l->limit) {
    json_decref(item);
    return 0;
  }
  l->last_id = id;
  return !item || json_array_append_new(l->items, item) < 0 ? PL_ENOMEM : 0;
}

int http_list_reply(http_req *r, http_list *l, int rc) {
  if (!l->items) rc = PL_ENOMEM;
  if (rc < 0) {
    json_decref(l->items);
    return http_reply_pl(r, rc, NULL);
  }
  return http_reply_json(r, 200, http_page(l->items, l->count > l->limit, l->last_id));
}
