/* The EPCIS 2.0 REST binding: /epcis/capture (capture jobs), /epcis/events and the other query
 * resources, named queries under /epcis/queries. Events are parsed and validated by trace/,
 * stored by store/ (store_trace.h); this file maps HTTP to them.
 *
 * Capture runs synchronously inside the request (one transaction for the whole document, so
 * thousands of events cost one commit) and then answers 202 with the job's Location; the job
 * resource keeps the outcome. GS1-Capture-Error-Behaviour: rollback (default: any invalid event
 * rejects the document with 400 naming every problem) or proceed (valid events are captured,
 * the invalid ones listed in the job's errors).
 *
 * Visibility: a tenant reads its own events and those shared with it ("plateau:shareWith" in
 * the event); the admin and regulator roles read every tenant's (audited as trace.read), or
 * one tenant's with ?tenant=. */
#include "http/http_int.h"

#include "base/clock.h"
#include "base/log.h"
#include "store/store_trace.h"
#include "trace/trace.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPCIS_CONTEXT "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"

static void limit_headers(http_req *r) {
  char v[32];
  snprintf(v, sizeof v, "%d", TRACE_EVENTS_MAX);
  http_add_header(r, "GS1-EPCIS-Capture-Limit", v);
  snprintf(v, sizeof v, "%lld", (long long)r->deps->cfg->http_max_body_bytes);
  http_add_header(r, "GS1-EPCIS-Capture-File-Size-Limit", v);
  http_add_header(r, "GS1-Capture-Error-Behaviour", "all");
  http_add_header(r, "GS1-EPCIS-Version", "2.0.0");
  http_add_header(r, "GS1-CBV-Version", "2.0.0");
}

/* The viewer of a read: the caller's tenant, ?tenant= for the cross-tenant roles, or 0 (every
 * tenant) for them without it. Reads across tenants are audited. Replies and returns > 0 on
 * failure. */
int http_epcis_viewer(http_req *r, int64_t *viewer) {
  if (auth_role_cross_tenant(r->who.role) && !http_query(r, "tenant")) {
    admin_ctx c = http_admin(r);
    admin_audit(&c, 0, "trace.read", "tenant:*", "ok", r->path);
    *viewer = 0;
    return 0;
  }
  store_tenant t;
  int st = http_tenant(r, "trace", &t);
  if (st)
    return st;
  *viewer = t.id;
  return 0;
}

static void notify_subscriptions(http_req *r);

/* ---- capture ---- */

static json_t *job_json(const store_trace_capture *c, const char *behaviour) {
  json_t *errors = json_loads(c->errors_json ? c->errors_json : "[]", 0, NULL);
  char id[24];
  snprintf(id, sizeof id, "%lld", (long long)c->id);
  json_t *o = json_pack("{s:s, s:o, s:o, s:b, s:b, s:I, s:I, s:I, s:o}", "captureID", id, "createdAt",
                        http_time_json(c->created_ms), "finishedAt", http_time_json(c->finished_ms), "running",
                        strcmp(c->state, "running") == 0, "success", strcmp(c->state, "success") == 0, "captured",
                        (json_int_t)c->captured, "duplicates", (json_int_t)c->duplicates, "rejected",
                        (json_int_t)c->rejected, "errors", errors ? errors : json_array());
  if (o && behaviour)
    json_object_set_new(o, "captureErrorBehaviour", json_string(behaviour));
  return o;
}

static int problems_reply(http_req *r, int status, trace_doc *d, const char *lead) {
  json_t *list = json_array();
  for (size_t i = 0; list && i < d->nproblems; i++)
    json_array_append_new(list, json_pack("{s:i, s:s}", "event", d->problems[i].index, "message", d->problems[i].message));
  char msg[512];
  if (d->nproblems)
    snprintf(msg, sizeof msg, "%s: event %d: %s%s", lead, d->problems[0].index, d->problems[0].message,
             d->nproblems > 1 ? " (and more: see problems)" : "");
  else
    snprintf(msg, sizeof msg, "%s", lead);
  json_t *body = json_pack("{s:{s:s, s:s}, s:o}", "error", "code", "invalid_argument", "message", msg, "problems",
                           list ? list : json_array());
  return http_reply_json(r, status, body);
}

static void add_problem(trace_doc *d, size_t index, const char *fmt, const char *arg) {
  trace_problem *p = realloc(d->problems, (d->nproblems + 1) * sizeof *p);
  if (!p)
    return;
  d->problems = p;
  p[d->nproblems].index = (int)index;
  snprintf(p[d->nproblems].message, sizeof p[d->nproblems].message, fmt, arg);
  d->nproblems++;
}

static int capture(http_req *r) {
  store_tenant t;
  int st = http_tenant(r, "trace", &t);
  if (st)
    return st;
  limit_headers(r);
  const char *ct = http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
  if (!ct || (strncasecmp(ct, "application/json", 16) != 0 && strncasecmp(ct, "application/ld+json", 19) != 0))
    return http_reply_error(r, 415, "send the EPCIS document as Content-Type: application/json or application/ld+json");
  const char *behaviour = http_header(r, "GS1-Capture-Error-Behaviour");
  if (!behaviour)
    behaviour = "rollback";
  int proceed = strcmp(behaviour, "proceed") == 0;
  if (!proceed && strcmp(behaviour, "rollback") != 0)
    return http_reply_error(r, 400, "GS1-Capture-Error-Behaviour must be rollback or proceed");
  trace_doc *d = NULL;
  pl_err err = {{0}};
  int rc = trace_doc_parse(r->body.data, r->body.len, TRACE_EVENTS_MAX, &d, &err);
  if (rc == PL_ELIMIT && strstr(err.msg, "capture limit"))
    return http_reply_error(r, 413, "%s", err.msg);
  if (rc < 0)
    return http_reply_pl(r, rc == PL_ELIMIT ? PL_EINVAL : rc, &err);
  /* sharing: tenant names to ids */
  int64_t *share_ids = NULL;
  size_t nshare_total = 0;
  for (size_t i = 0; i < d->nevents; i++)
    nshare_total += d->events[i].valid ? (size_t)d->events[i].share_count : 0;
  if (nshare_total && !(share_ids = calloc(nshare_total, sizeof *share_ids))) {
    trace_doc_free(d);
    return http_reply_pl(r, PL_ENOMEM, NULL);
  }
  size_t used = 0;
  for (size_t i = 0; i < d->nevents; i++) {
    trace_event *e = &d->events[i];
    if (!e->valid || !e->share_count)
      continue;
    e->row.share_tenants = share_ids + used;
    for (int64_t k = 0; k < e->share_count; k++) {
      store_tenant other;
      if (store_tenant_get_by_name(r->db, e->share_names[k], &other) < 0) {
        e->valid = 0;
        add_problem(d, i, "plateau:shareWith: no tenant named \"%.64s\"", e->share_names[k]);
        break;
      }
      share_ids[used + (size_t)e->row.nshares++] = other.id;
    }
    used += (size_t)e->share_count;
  }
  size_t nvalid = 0;
  for (size_t i = 0; i < d->nevents; i++)
    nvalid += d->events[i].valid ? 1 : 0;
  if (d->nproblems && !proceed) {
    st = problems_reply(r, 400, d, "the document was rejected (GS1-Capture-Error-Behaviour: rollback)");
    free(share_ids);
    trace_doc_free(d);
    return st;
  }
  store_trace_event *rows = calloc(nvalid ? nvalid : 1, sizeof *rows);
  int *inserted = calloc(nvalid ? nvalid : 1, sizeof *inserted);
  if (!rows || !inserted) {
    free(rows);
    free(inserted);
    free(share_ids);
    trace_doc_free(d);
    return http_reply_pl(r, PL_ENOMEM, NULL);
  }
  size_t k = 0;
  for (size_t i = 0; i < d->nevents; i++)
    if (d->events[i].valid)
      rows[k++] = d->events[i].row;
  int64_t now = pl_now_ms(), job = 0;
  int64_t captured = 0, dups = 0;
  json_t *errors = json_array();
  for (size_t i = 0; errors && i < d->nproblems; i++)
    json_array_append_new(errors, json_pack("{s:i, s:s}", "event", d->problems[i].index, "message", d->problems[i].message));
  char *errors_text = errors ? json_dumps(errors, JSON_COMPACT) : NULL;
  json_decref(errors);
  if (!errors_text)
    rc = PL_ENOMEM;
  if (rc == 0)
    rc = store_begin(r->db);
  if (rc == 0)
    rc = store_trace_capture_create(r->db, t.id, now, &job);
  if (rc == 0)
    rc = store_trace_insert_batch(r->db, t.id, job, now, rows, nvalid, inserted);
  if (rc == 0 && d->nvocab)
    rc = store_trace_vocab_put(r->db, t.id, d->vocab, d->nvocab, now);
  if (rc == 0) {
    for (size_t i = 0; i < nvalid; i++)
      inserted[i] ? captured++ : dups++;
    rc = store_trace_capture_finish(r->db, t.id, job, d->nproblems ? "failed" : "success", captured, dups,
                                    (int64_t)d->nproblems, errors_text, pl_now_ms());
  }
  if (rc == 0)
    rc = store_commit(r->db);
  if (rc < 0)
    store_rollback(r->db);
  free(errors_text);
  free(rows);
  free(inserted);
  free(share_ids);
  trace_doc_free(d);
  if (rc < 0)
    return http_reply_pl(r, rc, NULL);
  if (captured)
    notify_subscriptions(r);
  /* Location and the job */
  char loc[64];
  snprintf(loc, sizeof loc, "/epcis/capture/%lld", (long long)job);
  http_add_header(r, "Location", loc);
  store_trace_capture c;
  if ((rc = store_trace_capture_get(r->db, t.id, job, &c)) < 0)
    return http_reply_pl(r, rc, NULL);
  json_t *o = job_json(&c, behaviour);
  free(c.errors_json);
  return http_reply_json(r, 202, o);
}

static int capture_options(http_req *r) {
  limit_headers(r);
  snprintf(r->allow, sizeof r->allow, "OPTIONS, GET, POST");
  return http_reply_empty(r, 204);
}

static int capture_get(http_req *r) {
  store_tenant t;
  int st = http_tenant(r, "trace", &t);
  if (st)
    return st;
  int64_t id = http_param_id(r, 0);
  store_trace_capture c;
  int rc = id ? store_trace_capture_get(r->db, t.id, id, &c) : PL_ENOTFOUND;
  if (rc == PL_ENOTFOUND)
    return http_reply_error(r, 404, "no capture job %.32s", r->match.params[0]);
  if (rc < 0)
    return http_reply_pl(r, rc, NULL);
  json_t *o = job_json(&c, NULL);
  free(c.errors_json);
  return http_reply_json(r, 200, o);
}

/* ---- query results ---- */

typedef struct results {
  json_t *list;
  int limit, count;
  int64_t last_key, last_id;
  int order_by_record;
} results;

static int add_result(void *ctx, const store_trace_row *row) {
  results *res = ctx;
  if (++res->count > res->limit)
    return 0;
  json_t *ev = json_loadb(row->doc, row->doc_len, 0, NULL);
  if (!ev)
    return PL_ECORRUPT;
  char t[48];
  pl_time_format(row->record_time_ms * 1000000, t, sizeof t);
  json_object_set_new(ev, "recordTime", json_string(t));
  res->last_key = res->order_by_record ? row->record_time_ms : row->event_time_ms;
  res->last_id = row->id;
  return json_array_append_new(res->list, ev) < 0 ? PL_ENOMEM : 0;
}

static json_t *query_document(json_t *events, const char *query_name) {
  char now[48];
  pl_time_format(pl_now_ms() * 1000000, now, sizeof now);
  json_t *results = json_pack("{s:o}", "eventList", events);
  json_t *qr = json_pack("{s:o}", "resultsBody", results);
  if (qr && query_name)
    json_object_set_new(qr, "queryName", json_string(query_name));
  return json_pack("{s:s, s:s, s:s, s:s, s:{s:o}}", "@context", EPCIS_CONTEXT, "type", "EPCISQueryDocument",
                   "schemaVersion", "2.0", "creationDate", now, "epcisBody", "queryResults", qr);
}

/* The REST binding's query exceptions: 413 with the exception's type (as in its RFC 7807
 * problem bodies) beside Plateau's error object. */
static int query_exception(http_req *r, const char *exception, const char *msg) {
  char type[96];
  snprintf(type, sizeof type, "epcisException:%s", exception);
  /* "payload_too_large" is the error model's code of 413 (http/api.c) */
  return http_reply_json(r, 413,
                         json_pack("{s:{s:s, s:s}, s:s, s:s, s:i}", "error", "code",
                                   "payload_too_large", "message", msg, "type", type, "title", msg,
                                   "status", 413));
}

static int query_too_complex(http_req *r) {
  return query_exception(
      r, "QueryTooComplexException",
      "the query has more conditions and values than one query may hold; split it");
}

/* Runs q for viewer and replies with an EPCISQueryDocument page. */
static int run_query(http_req *r, http_epcis_query *q, int64_t viewer, const char *query_name) {
  q->f.viewer = viewer;
  if (q->has_max_count) { /* the whole result, all its pages, is compared with maxEventCount */
    int64_t n = 0;
    int rc = store_trace_count(r->db, &q->f, (int64_t)q->max_count + 1, &n);
    if (rc == PL_ELIMIT)
      return query_too_complex(r);
    if (rc < 0)
      return http_reply_pl(r, rc, NULL);
    if (n > q->max_count) {
      char msg[160];
      snprintf(msg, sizeof msg, "the query matches more than maxEventCount (%d) events",
               q->max_count);
      return query_exception(r, "QueryTooLargeException", msg);
    }
  }
  int page = q->per_page;
  if (q->count_limit && q->count_limit < page)
    page = q->count_limit;
  q->f.limit = page + 1;
  results res = {json_array(), page, 0, 0, 0, q->f.order_by_record};
  if (!res.list)
    return http_reply_pl(r, PL_ENOMEM, NULL);
  int rc = store_trace_query(r->db, &q->f, add_result, &res);
  if (rc < 0) {
    json_decref(res.list);
    return rc == PL_ELIMIT ? query_too_complex(r) : http_reply_pl(r, rc, NULL);
  }
  if (res.count > res.limit && !(q->count_limit && q->count_limit <= page)) {
    char token[64], link[1400];
    snprintf(token, sizeof token, "%lld.%lld", (long long)res.last_key, (long long)res.last_id);
    http_add_header(r, "GS1-Next-Page-Token", token);
    const char *qs = strchr(r->path, '?');
    (void)qs;
    snprintf(link, sizeof link, "<%s?nextPageToken=%s>; rel=\"next\"", r->path, token);
    http_add_header(r, "Link", link);
  }
  return http_reply_json(r, 200, query_document(res.list, query_name));
}

static int events(http_req *r) {
  int64_t viewer;
  int st = http_epcis_viewer(r, &viewer);
  if (st)
    return st;
  http_epcis_query *q = http_epcis_query_new();
  if (!q)
    return http_reply_pl(r, PL_ENOMEM, NULL);
  MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, http_epcis_query_cb, q);
  if (q->error[0])
    st = http_reply_error(r, 400, "%s", q->error);
  else
    st = run_query(r, q, viewer, NULL);
  http_epcis_query_free(q);
  free(q);
  return st;
}

static int events_of_type(http_req *r) {
  int64_t viewer;
  int st = http_epcis_viewer(r, &viewer);
  if (st)
    return st;
  int type = trace_type_parse(r->match.params[0]);
  if (!type)
    return http_reply_error(r, 404, "no event type \"%.64s\"", r->match.params[0]);
  http_epcis_query *q = http_epcis_query_new();
  if (!q)
    return http_reply_pl(r, PL_ENOMEM, NULL);
  MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, http_epcis_query_cb, q);
  q->f.types = 1u << type;
  st = q->error[0] ? http_reply_error(r, 400, "%s", q->error) : run_query(r, q, viewer, NULL);
  http_epcis_query_free(q);
  free(q);
  return st;
}

static int one_event(void *ctx, const store_trace_row *row) {
  json_t **out = ctx;
  json_t *ev = json_loadb(row->doc, row->doc_len, 0, NULL);
  if (!ev)
    return PL_ECORRUPT;
  char t[48];
  pl_time_format(row->record_time_ms * 1000000, t, sizeof t);
  json_object_set_new(ev, "recordTime", json_string(t));
  json_decref(*out);
  *out = ev;
  return 0;
}

static int event_get(http_req *r) {
  int64_t viewer;
  int st = http_epcis_viewer(r, &viewer);
  if (st)
    return st;
  store_trace_filter f;
  memset(&f, 0, sizeof f);
  f.viewer = viewer;
  const char *id = r->match.params[0];
  f.conds[0].field = STORE_TRACE_F_EVENT_ID;
  f.conds[0].values = &id;
  f.conds[0].nvalues = 1;
  f.nconds = 1;
  f.limit = 1;
  json_t *ev = NULL;
  int rc = store_trace_query(r->db, &f, one_event, &ev);
  if (rc < 0)
    return http_reply_pl(r, rc, NULL);
  if (!ev)
    return http_reply_error(r, 404, "no event \"%.200s\" visible to you", id);
  json_object_set_new(ev, "@context", json_string(EPCIS_CONTEXT));
  return http_reply_json(r, 200, ev);
}

static int epc_events(http_req *r) {
  int64_t viewer;
  int st = http_epcis_viewer(r, &viewer);
  if (st)
    return st;
  http_epcis_query *q = http_epcis_query_new();
  if (!q)
    return http_reply_pl(r, PL_ENOMEM, NULL);
  MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, http_epcis_query_cb, q);
  if (!q->error[0] && http_epcis_query_param(q, "MATCH_anyEPC", r->match.params[0]) < 0 && !q->error[0])
    snprintf(q->error, sizeof q->error, "bad identifier");
  st = q->error[0] ? http_reply_error(r, 400, "%s", q->error) : run_query(r, q, viewer, NULL);
  http_epcis_query_free(q);
  free(q);
  return st;
}

static json_t *collection(json_t *members) {
  return json_pack("{s:s, s:s, s:o}", "@context", EPCIS_CONTEXT, "type", "Collection", "member", members);
}


/* ---- subscriptions: /epcis/queries/{name}/subscriptions ----
 * After every capture, each subscription runs its named query over the events newer than its
 * last delivery (as its tenant sees them: shared events included) and queues one
 * EPCISQueryDocument of at most SUB_BATCH_MAX events to its webhook on the delivery worker; the
 * request never waits for the subscriber. */
#define SUB_BATCH_MAX 1000

typedef struct sub_run {
  http_req *r;
  int64_t max_id;
  results res;
} sub_run;

static int add_result_max(void *ctx, const store_trace_row *row) {
  sub_run *s = ctx;
  if (row->id > s->max_id)
    s->max_id = row->id;
  return add_result(&s->res, row);
}

typedef struct sub_copy {
  int64_t id, tenant_id, last_event;
  char query_name[72];
  char dest[1100];
} sub_copy;

typedef struct sub_list {
  sub_copy *v;
  size_t n, cap;
} sub_list;

static int collect_sub(void *ctx, const store_trace_sub *sub) {
  sub_list *l = ctx;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    sub_copy *v = realloc(l->v, cap * sizeof *v);
    if (!v)
      return PL_ENOMEM;
    l->v = v;
    l->cap = cap;
  }
  sub_copy *c = &l->v[l->n++];
  c->id = sub->id;
  c->tenant_id = sub->tenant_id;
  c->last_event = sub->last_event;
  snprintf(c->query_name, sizeof c->query_name, "%s", sub->query_name);
  snprintf(c->dest, sizeof c->dest, "%s", sub->dest);
  return 0;
}


static void notify_subscriptions(http_req *r) {
  if (!r->deps->trace_hub)
    return;
  sub_list l = {0};
  if (store_trace_sub_list(r->db, 0, NULL, collect_sub, &l) < 0 || l.n == 0) {
    free(l.v);
    return;
  }
  for (size_t i = 0; i < l.n; i++) {
    sub_copy *c = &l.v[i];
    char *params = NULL;
    if (store_trace_named_get(r->db, c->tenant_id, c->query_name, &params, NULL) < 0)
      continue;
    json_t *p = json_loads(params, 0, NULL);
    free(params);
    http_epcis_query *q = http_epcis_query_new();
    if (!q || !p || http_epcis_query_json(q, p) < 0) {
      json_decref(p);
      if (q)
        http_epcis_query_free(q);
      free(q);
      continue;
    }
    json_decref(p);
    q->f.viewer = c->tenant_id;
    q->f.min_id = c->last_event;
    q->f.order_by_record = 1;
    q->f.descending = 0;
    q->f.limit = SUB_BATCH_MAX;
    sub_run run = {r, c->last_event, {json_array(), SUB_BATCH_MAX, 0, 0, 0, 1}};
    int rc = run.res.list ? store_trace_query(r->db, &q->f, add_result_max, &run) : PL_ENOMEM;
    int q_max_count = q->has_max_count ? q->max_count : -1;
    http_epcis_query_free(q);
    free(q);
    /* More new events than the query's maxEventCount: the standard's QueryTooLargeException.
     * A webhook has no way to carry it, so the batch is skipped (and logged), not retried. */
    int too_large = rc > 0 && q_max_count >= 0 && run.res.count > q_max_count;
    if (too_large && run.max_id > c->last_event &&
        store_trace_sub_advance(r->db, c->id, c->last_event, run.max_id) == 0)
      PL_LOG(PL_LOG_WARN, "trace",
             "req=%s subscription=%lld skipped %d events: more than maxEventCount %d", r->id_str,
             (long long)c->id, run.res.count, q_max_count);
    /* Advance first: of two captures racing here, only one delivers a batch. */
    if (!too_large && rc > 0 && run.max_id > c->last_event &&
        store_trace_sub_advance(r->db, c->id, c->last_event, run.max_id) == 0) {
      json_t *doc = query_document(run.res.list, c->query_name);
      run.res.list = NULL;
      char sid[24];
      snprintf(sid, sizeof sid, "%lld", (long long)c->id);
      json_object_set_new(json_object_get(json_object_get(doc, "epcisBody"), "queryResults"), "subscriptionID",
                          json_string(sid));
      char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
      if (text && trace_hub_post(r->deps->trace_hub, c->dest, text, strlen(text)) < 0)
        PL_LOG(PL_LOG_WARN, "trace", "req=%s subscription=%lld webhook queue full", r->id_str, (long long)c->id);
      free(text);
      json_decref(doc);
    }
    json_decref(run.res.list);
  }
  free(l.v);
}

/* The tenant whose named queries and subscriptions a request manages: as http_tenant, but
 * not for device credentials (they capture events; people manage queries). */
static int managed_tenant(http_req *r, store_tenant *t) {
  if (r->who.role == AUTH_ROLE_DEVICE)
    return http_reply_error(r, 403, "device credentials capture events; named queries and subscriptions are managed by people");
  return http_tenant(r, "trace", t);
}

static const pl_json_field sub_fields[] = {
    {"dest", PL_JSON_STRING, 1, 1024, 0},
};

static int sub_create(http_req *r) {
  store_tenant t;
  json_t *body;
  int st = managed_tenant(r, &t);
  if (st || (st = http_body_json(r, sub_fields, 1, &body)))
    return st;
  const char *dest = pl_json_str(body, "dest", "");
  if ((strncmp(dest, "http://", 7) != 0 && strncmp(dest, "https://", 8) != 0) || strpbrk(dest, " \r\n\t")) {
    json_decref(body);
    return http_reply_error(r, 400, "dest must be an http:// or https:// URL");
  }
  char *params = NULL;
  int rc = store_trace_named_get(r->db, t.id, r->match.params[0], &params, NULL);
  free(params);
  if (rc == PL_ENOTFOUND) {
    json_decref(body);
    return http_reply_error(r, 404, "no query named \"%.64s\"", r->match.params[0]);
  }
  store_trace_sub sub = {0, t.id, r->match.params[0], dest, pl_now_ms(), 0};
  if (rc == 0)
    rc = store_trace_sub_create(r->db, &sub);
  if (rc < 0) {
    json_decref(body);
    return http_reply_pl(r, rc, NULL);
  }
  char loc[HTTP_PARAM_BYTES_MAX + 64];
  snprintf(loc, sizeof loc, "/epcis/queries/%s/subscriptions/%lld", r->match.params[0], (long long)sub.id);
  http_add_header(r, "Location", loc);
  char id[24];
  snprintf(id, sizeof id, "%lld", (long long)sub.id);
  st = http_reply_json(r, 201, json_pack("{s:s, s:s, s:s}", "subscriptionID", id, "query", r->match.params[0], "dest", dest));
  json_decref(body);
  return st;
}

static int add_sub_json(void *ctx, const store_trace_sub *sub) {
  char id[24];
  snprintf(id, sizeof id, "%lld", (long long)sub->id);
  return json_array_append_new(ctx, json_pack("{s:s, s:s, s:s, s:o}", "subscriptionID", id, "query", sub->query_name,
                                              "dest", sub->dest, "createdAt", http_time_json(sub->created_ms))) < 0
             ? PL_ENOMEM
             : 0;
}

static int sub_list_route(http_req *r) {
  store_tenant t;
  int st = http_tenant(r, "trace", &t);
  if (st)
    return st;
  json_t *m = json_array();
  int rc = m ? store_trace_sub_list(r->db, t.id, r->match.params[0], add_sub_json, m) : PL_ENOMEM;
  if (rc < 0) {
    json_decref(m);
    return http_reply_pl(r, rc, NULL);
  }
  return http_reply_json(r, 200, collection(m));
}

static int sub_delete(http_req *r) {
  store_tenant t;
  int st = managed_tenant(r, &t);
  if (st)
    return st;
  int64_t id = http_param_id(r, 1);
  int rc = id ? store_trace_sub_delete(r->db, t.id, r->match.params[0], id) : PL_ENOTFOUND;
  if (rc == PL_ENOTFOUND)
    return http_reply_error(r, 404, "no subscription %.32s of query \"%.64s\"", r->match.params[1], r->match.params[0]);
  return rc < 0 ? http_reply_pl(r, rc, NULL) : http_reply_empty(r, 204);
}

static int event_types(http_req *r) {
  json_t *m = json_array();
  for (int t = 1; t <= 5; t++)
    json_array_append_new(m, json_string(trace_type_name(t)));
  return http_reply_json(r, 200, collection(m));
}

static int add_member(void *ctx, const char *value) {
  return json_array_append_new(ctx, json_string(value)) < 0 ? PL_ENOMEM : 0;
}

static int distinct(http_req *r, int field) {
  int64_t viewer;
  int st = http_epcis_viewer(r, &viewer);
  if (st)
    return st;
  int per_page = EPCIS_PER_PAGE_DEFAULT;
  const char *pp = http_query(r, "perPage"), *after = http_query(r, "nextPageToken");
  if (pp && http_parse_int_range(pp, 1, EPCIS_PER_PAGE_MAX, &per_page) < 0)
    return http_reply_error(r, 400, "perPage must be a whole number from 1 to %d", EPCIS_PER_PAGE_MAX);
  json_t *m = json_array();
  if (!m)
    return http_reply_pl(r, PL_ENOMEM, NULL);
  int rc = store_trace_distinct(r->db, viewer, field, after, per_page + 1, add_member, m);
  if (rc < 0) {
    json_decref(m);
    return http_reply_pl(r, rc, NULL);
  }
  if ((int)json_array_size(m) > per_page) {
    json_array_remove(m, json_array_size(m) - 1);
    http_add_header(r, "GS1-Next-Page-Token", json_string_value(json_array_get(m, json_array_size(m) - 1)));
  }
  return http_reply_json(r, 200, collection(m));
}

static int biz_steps(http_req *r) { return distinct(r, STORE_TRACE_F_BIZ_STEP); }
static int biz_locations(http_req *r) { return distinct(r, STORE_TRACE_F_BIZ_LOCATION); }
static int read_points(http_req *r) { return distinct(r, STORE_TRACE_F_READ_POINT); }
static int dispositions(http_req *r) { return distinct(r, STORE_TRACE_F_DISPOSITION); }
static int epcs(http_req *r) { return distinct(r, STORE_TRACE_F_EPC); }

/* ---- named queries ---- */

/* The text of a JSON string or number as a query string would carry it: a real in the fewest
 * digits that read back as the same double. */
static int name_ok(const char *s) {
  size_t n = strlen(s);
  if (!n || n > 64)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!(s[i] == '-' || s[i] == '_' || (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
          (s[i] >= 'A' && s[i] <= 'Z')))
      return 0;
  return 1;
}

static const pl_json_field query_fields[] = {
    {"name", PL_JSON_STRING, 1, 64, 0},
    {"query", PL_JSON_OBJECT, 1, 64, 0},
};

static int query_create(http_req *r) {
  store_tenant t;
  json_t *body;
  int st = managed_tenant(r, &t);
  if (st || (st = http_body_json(r, query_fields, 2, &body)))
    return st;
  const char *name = pl_json_str(body, "name", "");
  json_t *params = json_object_get(body, "query");
  if (!name_ok(name)) {
    json_decref(body);
    return http_reply_error(r, 400, "name must be 1..64 letters, digits, '-' or '_'");
  }
  http_epcis_query *q = http_epcis_query_new();
  if (!q) {
    json_decref(body);
    return http_reply_pl(r, PL_ENOMEM, NULL);
  }
  int rc = http_epcis_query_json(q, params);
  if (rc < 0)
    st = http_reply_error(r, 400, "%s", q->error[0] ? q->error : pl_strerror(rc));
  http_epcis_query_free(q);
  free(q);
  if (st) {
    json_decref(body);
    return st;
  }
  char *text = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
  rc = text ? store_trace_named_put(r->db, t.id, name, text, pl_now_ms()) : PL_ENOMEM;
  free(text);
  if (rc == PL_EEXIST) {
    st = http_reply_error(r, 409, "a query named \"%s\" exists already", name);
  } else if (rc < 0) {
    st = http_reply_pl(r, rc, NULL);
  } else {
    char loc[128];
    snprintf(loc, sizeof loc, "/epcis/queries/%s", name);
    http_add_header(r, "Location", loc);
    st = http_reply_json(r, 201, json_pack("{s:s, s:O}", "name", name, "query", params));
  }
  json_decref(body);
  return st;
}

static int add_named(void *ctx, const char *name, const char *params, int64_t created_ms) {
  json_t *p = json_loads(params, 0, NULL);
  return json_array_append_new(ctx, json_pack("{s:s, s:o, s:o}", "name", name, "query", p ? p : json_object(),
                                              "createdAt", http_time_json(created_ms))) < 0
             ? PL_ENOMEM
             : 0;
}

static int query_list(http_req *r) {
  store_tenant t;
  int st = http_tenant(r, "trace", &t);
  if (st)
    return st;
  json_t *m = json_array();
  int rc = m ? store_trace_named_list(r->db, t.id, add_named, m) : PL_ENOMEM;
  if (rc < 0) {
    json_decref(m);
    return http_reply_pl(r, rc, NULL);
  }
  return http_reply_json(r, 200, collection(m));
}

static int query_get(http_req *r) {
  store_tenant t;
  int st = http_tenant(r, "trace", &t);
  if (st)
    return st;
  char *params = NULL;
  int64_t created = 0;
  int rc = store_trace_named_get(r->db, t.id, r->match.params[0], &params, &created);
  if (rc == PL_ENOTFOUND)
    return http_reply_error(r, 404, "no query named \"%.64s\"", r->match.params[0]);
  if (rc < 0)
    return http_reply_pl(r, rc, NULL);
  json_t *m = json_array();
  add_named(m, r->match.params[0], params, created);
  free(params);
  json_t *o = json_incref(json_array_get(m, 0));
  json_decref(m);
  return http_reply_json(r, 200, o);
}

static int query_delete(http_req *r) {
  store_tenant t;
  int st = managed_tenant(r, &t);
  if (st)
    return st;
  int rc = store_trace_named_delete(r->db, t.id, r->match.params[0]);
  if (rc == PL_ENOTFOUND)
    return http_reply_error(r, 404, "no query named \"%.64s\"", r->match.params[0]);
  return rc < 0 ? http_reply_pl(r, rc, NULL) : http_reply_empty(r, 204);
}

static int query_run(http_req *r) {
  store_tenant t;
  int st = http_tenant(r, "trace", &t);
  if (st)
    return st;
  char *params = NULL;
  int rc = store_trace_named_get(r->db, t.id, r->match.params[0], &params, NULL);
  if (rc == PL_ENOTFOUND)
    return http_reply_error(r, 404, "no query named \"%.64s\"", r->match.params[0]);
  if (rc < 0)
    return http_reply_pl(r, rc, NULL);
  json_t *p = json_loads(params, 0, NULL);
  free(params);
  http_epcis_query *q = http_epcis_query_new();
  if (!q || !p) {
    free(q);
    json_decref(p);
    return http_reply_pl(r, PL_ENOMEM, NULL);
  }
  rc = http_epcis_query_json(q, p);
  json_decref(p);
  /* paging parameters of this request */
  const char *pp = http_query(r, "perPage"), *tok = http_query(r, "nextPageToken");
  if (rc == 0 && pp)
    rc = http_epcis_query_param(q, "perPage", pp);
  if (rc == 0 && tok)
    rc = http_epcis_query_param(q, "nextPageToken", tok);
  int64_t viewer = t.id;
  st = rc < 0 ? http_reply_error(r, 400, "%s", q->error) : run_query(r, q, viewer, r->match.params[0]);
  http_epcis_query_free(q);
  free(q);
  return st;
}

const http_route api_epcis_routes[] = {
    {"OPTIONS", "/epcis/capture", (void *)capture_options, HTTP_PERM_ANY, "trace.capture.options"},
    {"POST", "/epcis/capture", (void *)capture, AUTH_PERM_DATA_WRITE, "trace.capture"},
    {"GET", "/epcis/capture/{id}", (void *)capture_get, AUTH_PERM_DATA_READ, "trace.capture.read"},
    {"GET", "/epcis/events", (void *)events, AUTH_PERM_DATA_READ, "trace.events"},
    {"GET", "/epcis/events/{eventID}", (void *)event_get, AUTH_PERM_DATA_READ, "trace.event"},
    {"GET", "/epcis/eventTypes", (void *)event_types, AUTH_PERM_DATA_READ, "trace.eventtypes"},
    {"GET", "/epcis/eventTypes/{type}/events", (void *)events_of_type, AUTH_PERM_DATA_READ, "trace.events"},
    {"GET", "/epcis/epcs", (void *)epcs, AUTH_PERM_DATA_READ, "trace.epcs"},
    {"GET", "/epcis/epcs/{epc}/events", (void *)epc_events, AUTH_PERM_DATA_READ, "trace.events"},
    {"GET", "/epcis/bizSteps", (void *)biz_steps, AUTH_PERM_DATA_READ, "trace.bizsteps"},
    {"GET", "/epcis/bizLocations", (void *)biz_locations, AUTH_PERM_DATA_READ, "trace.bizlocations"},
    {"GET", "/epcis/readPoints", (void *)read_points, AUTH_PERM_DATA_READ, "trace.readpoints"},
    {"GET", "/epcis/dispositions", (void *)dispositions, AUTH_PERM_DATA_READ, "trace.dispositions"},
    {"POST", "/epcis/queries", (void *)query_create, AUTH_PERM_DATA_WRITE, "trace.query.create"},
    {"GET", "/epcis/queries", (void *)query_list, AUTH_PERM_DATA_READ, "trace.query.list"},
    {"GET", "/epcis/queries/{name}", (void *)query_get, AUTH_PERM_DATA_READ, "trace.query.read"},
    {"DELETE", "/epcis/queries/{name}", (void *)query_delete, AUTH_PERM_DATA_WRITE, "trace.query.delete"},
    {"GET", "/epcis/queries/{name}/events", (void *)query_run, AUTH_PERM_DATA_READ, "trace.query.run"},
    {"POST", "/epcis/queries/{name}/subscriptions", (void *)sub_create, AUTH_PERM_DATA_WRITE, "trace.subscription.create"},
    {"GET", "/epcis/queries/{name}/subscriptions", (void *)sub_list_route, AUTH_PERM_DATA_READ, "trace.subscription.list"},
    {"DELETE", "/epcis/queries/{name}/subscriptions/{id}", (void *)sub_delete, AUTH_PERM_DATA_WRITE,
     "trace.subscription.delete"},
};
const size_t api_epcis_nroutes = sizeof api_epcis_routes / sizeof api_epcis_routes[0];
