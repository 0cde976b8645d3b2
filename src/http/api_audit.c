/* The audit log: GET /api/v1/audit, newest first. */
#include "http/http_int.h"

#include "base/clock.h"

#include <stdio.h>
#include <string.h>

typedef struct audit_page {
  http_req *r;
  http_list list;
  /* tenant names for the page, looked up once each */
  int64_t ids[32];
  char names[32][64];
  int nnames;
} audit_page;

static const char *tenant_name(audit_page *p, int64_t id) {
  if (!id) return "";
  for (int i = 0; i < p->nnames; i++)
    if (p->ids[i] == id) return p->names[i];
  store_tenant t;
  const char *name = store_tenant_get(p->r->db, id, &t) == 0 ? t.name : "(deleted)";
  if (p->nnames < 32) {
    p->ids[p->nnames] = id;
    snprintf(p->names[p->nnames], sizeof p->names[0], "%s", name);
    return p->names[p->nnames++];
  }
  return "";
}

static int add_record(void *ctx, const store_audit *a) {
  audit_page *p = ctx;
  json_t *o = json_pack("{s:I, s:o, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "seq", (json_int_t)a->seq, "time",
                        http_time_json(a->ts_ms), "actor", a->actor, "tenant", tenant_name(p, a->tenant_id),
                        "action", a->action, "target", a->target, "result", a->result, "detail", a->detail,
                        "source", a->source, "remote", a->remote);
  return http_list_add(&p->list, a->seq, o);
}

static int time_param(http_req *r, const char *key, int64_t *ms) {
  const char *v = http_query(r, key);
  int64_t ns;
  *ms = 0;
  if (!v) return 0;
  if (pl_time_parse(v, &ns) < 0)
    return http_reply_error(r, 400, "%s must be an RFC 3339 time such as 2026-11-29T06:00:00Z", key);
  *ms = ns / 1000000;
  return 0;
}

static int list(http_req *r) {
  store_audit_filter f;
  memset(&f, 0, sizeof f);
  int st = http_paging(r, &f.limit, &f.after_seq);
  if (st || (st = time_param(r, "since", &f.since_ms)) || (st = time_param(r, "until", &f.until_ms))) return st;
  int limit = f.limit;
  f.limit = limit + 1;
  f.descending = 1;
  f.actor = http_query(r, "actor");
  f.action_prefix = http_query(r, "action");
  if (auth_role_cross_tenant(r->who.role) && !http_query(r, "tenant")) {
    f.tenant_id = 0; /* the whole region: a cross-tenant view, itself audited */
    admin_ctx c = http_admin(r);
    admin_audit(&c, 0, "audit.read", "region", "ok", r->path);
  } else {
    store_tenant t;
    if ((st = http_tenant(r, "audit", &t))) return st;
    f.tenant_id = t.id;
  }
  audit_page p;
  memset(&p, 0, sizeof p);
  p.r = r;
  http_list_init(&p.list, limit);
  return http_list_reply(r, &p.list, store_audit_list(r->db, &f, add_record, &p));
}

const http_route api_audit_routes[] = {
    {"GET", "/api/v1/audit", (void *)list, AUTH_PERM_AUDIT_READ, "audit.list"},
};
const size_t api_audit_nroutes = sizeof api_audit_routes / sizeof api_audit_routes[0];
