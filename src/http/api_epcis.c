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
#define PER_PAGE_DEFAULT 100
#define PER_PAGE_MAX 1000
#define VALUES_MAX 100

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

/* ---- query parameters ---- */

/* The memory behind one condition on the event's JSON (q->f.jconds[i]). */
typedef struct jstore {
  char key[TRACE_QP_NAME_MAX];
  char *strs[VALUES_MAX * TRACE_VOCAB_FORMS];
  const char *cstrs[VALUES_MAX * TRACE_VOCAB_FORMS];
  double nums[VALUES_MAX];
  int64_t times[VALUES_MAX];
  char with[TRACE_VOCAB_FORMS][TRACE_VOCAB_FORM_MAX];
  const char *cwith[TRACE_VOCAB_FORMS];
  /* a number test in a unit of measure, in every unit of its dimension */
  const char *units[TRACE_UNITS_MAX];
  double num_in[TRACE_UNITS_MAX];
  double nums_in[TRACE_UNITS_MAX * VALUES_MAX];
} jstore;

typedef struct qstate {
  store_trace_filter f;
  char *values[STORE_TRACE_CONDS_MAX][VALUES_MAX];
  const char *cvalues[STORE_TRACE_CONDS_MAX][VALUES_MAX];
  jstore *js[STORE_TRACE_CONDS_MAX];
  char attrs[STORE_TRACE_CONDS_MAX][129]; /* EQ_ATTR_ attribute names */
  int per_page, count_limit;
  int max_count, has_max_count; /* maxEventCount */
  const char *page_token;
  char error[300];
} qstate;

static void jstore_free(jstore *s) {
  if (!s)
    return;
  for (size_t i = 0; i < sizeof s->strs / sizeof s->strs[0]; i++)
    free(s->strs[i]);
  free(s);
}

static void qstate_free(qstate *q) {
  for (int i = 0; i < STORE_TRACE_CONDS_MAX; i++) {
    for (int k = 0; k < VALUES_MAX; k++)
      free(q->values[i][k]);
    jstore_free(q->js[i]);
  }
}

static int qerr(qstate *q, const char *fmt, const char *a, const char *b) {
  snprintf(q->error, sizeof q->error, fmt, a, b);
  return PL_EINVAL;
}

static int qerrf(qstate *q, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int qerrf(qstate *q, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q->error, sizeof q->error, fmt, ap);
  va_end(ap);
  return PL_EINVAL;
}

static const struct {
  const char *name;
  unsigned roles;
} epc_params[] = {
    {"MATCH_epc", STORE_TRACE_ROLE_BIT(STORE_TRACE_ROLE_EPC) | STORE_TRACE_ROLE_BIT(STORE_TRACE_ROLE_CHILD)},
    {"MATCH_parentID", STORE_TRACE_ROLE_BIT(STORE_TRACE_ROLE_PARENT)},
    {"MATCH_inputEPC", STORE_TRACE_ROLE_BIT(STORE_TRACE_ROLE_INPUT)},
    {"MATCH_outputEPC", STORE_TRACE_ROLE_BIT(STORE_TRACE_ROLE_OUTPUT)},
    {"MATCH_anyEPC", STORE_TRACE_ROLE_BIT(STORE_TRACE_ROLE_EPC) | STORE_TRACE_ROLE_BIT(STORE_TRACE_ROLE_CHILD) |
                         STORE_TRACE_ROLE_BIT(STORE_TRACE_ROLE_PARENT) | STORE_TRACE_ROLE_BIT(STORE_TRACE_ROLE_INPUT) |
                         STORE_TRACE_ROLE_BIT(STORE_TRACE_ROLE_OUTPUT)},
    {"MATCH_epcClass",
     STORE_TRACE_ROLE_BIT(STORE_TRACE_ROLE_EPC_CLASS) | STORE_TRACE_ROLE_BIT(STORE_TRACE_ROLE_CHILD_CLASS)},
    {"MATCH_inputEPCClass", STORE_TRACE_ROLE_BIT(STORE_TRACE_ROLE_INPUT_CLASS)},
    {"MATCH_outputEPCClass", STORE_TRACE_ROLE_BIT(STORE_TRACE_ROLE_OUTPUT_CLASS)},
    {"MATCH_anyEPCClass",
     STORE_TRACE_ROLE_BIT(STORE_TRACE_ROLE_EPC_CLASS) | STORE_TRACE_ROLE_BIT(STORE_TRACE_ROLE_CHILD_CLASS) |
         STORE_TRACE_ROLE_BIT(STORE_TRACE_ROLE_INPUT_CLASS) | STORE_TRACE_ROLE_BIT(STORE_TRACE_ROLE_OUTPUT_CLASS)},
};

static const struct {
  const char *name;
  int field;
  int kind; /* 0 plain, 1 BizStep, 2 Disp, 3 location, 4 action */
} eq_params[] = {
    {"EQ_action", STORE_TRACE_F_ACTION, 4},        {"EQ_bizStep", STORE_TRACE_F_BIZ_STEP, 1},
    {"EQ_disposition", STORE_TRACE_F_DISPOSITION, 2}, {"EQ_readPoint", STORE_TRACE_F_READ_POINT, 3},
    {"WD_readPoint", STORE_TRACE_F_READ_POINT_WD, 3}, {"EQ_bizLocation", STORE_TRACE_F_BIZ_LOCATION, 3},
    {"WD_bizLocation", STORE_TRACE_F_BIZ_LOCATION_WD, 3}, {"EQ_eventID", STORE_TRACE_F_EVENT_ID, 0},
};

static int parse_int(const char *v, int lo, int hi, int *out) {
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || *end || !*v || x < lo || x > hi)
    return PL_EINVAL;
  *out = (int)x;
  return 0;
}

/* Adds a condition from a pipe-separated value list. */
static int add_cond(qstate *q, const char *name, int field, unsigned roles, int kind, const char *value) {
  if (q->f.nconds + q->f.njconds >= STORE_TRACE_CONDS_MAX)
    return qerr(q, "too many query conditions (at most %s)%s", "32", "");
  int ci = q->f.nconds;
  int n = 0;
  const char *p = value;
  for (;;) {
    const char *bar = strchr(p, '|');
    size_t len = bar ? (size_t)(bar - p) : strlen(p);
    if (n >= VALUES_MAX)
      return qerr(q, "%s: at most 100 values%s", name, "");
    char raw[TRACE_EPC_MAX];
    if (!len || len >= sizeof raw)
      return qerr(q, "%s: empty or too long value in \"%.200s\"", name, value);
    memcpy(raw, p, len);
    raw[len] = 0;
    char norm[TRACE_EPC_MAX + 64];
    int rc;
    if (kind == 1)
      rc = trace_vocab_normalise("BizStep", raw, norm, sizeof norm);
    else if (kind == 2)
      rc = trace_vocab_normalise("Disp", raw, norm, sizeof norm);
    else if (kind == 3 || field == STORE_TRACE_F_EPC)
      rc = trace_epc_normalise(raw, norm, sizeof norm);
    else if (kind == 4)
      rc = (strcmp(raw, "ADD") && strcmp(raw, "OBSERVE") && strcmp(raw, "DELETE")) ? PL_EINVAL
                                                                                     : snprintf(norm, sizeof norm, "%s", raw);
    else
      rc = snprintf(norm, sizeof norm, "%s", raw);
    if (rc < 0)
      return qerr(q, "%s: \"%.200s\" is not a valid value", name, raw);
    if (!(q->values[ci][n] = strdup(norm)))
      return PL_ENOMEM;
    q->cvalues[ci][n] = q->values[ci][n];
    n++;
    if (!bar)
      break;
    p = bar + 1;
  }
  q->f.conds[ci].field = field;
  q->f.conds[ci].roles = roles;
  q->f.conds[ci].values = q->cvalues[ci];
  q->f.conds[ci].nvalues = n;
  q->f.nconds++;
  return 0;
}

/* A number: decimal notation only (no hex, inf or nan), finite. */
static int parse_number(const char *v, double *out) {
  size_t n = strlen(v);
  if (n == 0 || n > 64 || strspn(v, "0123456789+-.eE") != n)
    return PL_EINVAL;
  char *end;
  double x = strtod(v, &end);
  if (end == v || *end || !isfinite(x))
    return PL_EINVAL;
  *out = x;
  return 0;
}

static int parse_time_ms(const char *v, int64_t *ms) {
  int64_t ns;
  if (pl_time_parse(v, &ns) < 0)
    return PL_EINVAL;
  *ms = ns / 1000000 - (ns % 1000000 < 0 ? 1 : 0);
  return 0;
}

static int push_str(jstore *s, store_trace_jcond *c, const char *v) {
  if (c->nstrs >= (int)(sizeof s->strs / sizeof s->strs[0]))
    return PL_ELIMIT;
  for (int i = 0; i < c->nstrs; i++)
    if (strcmp(s->cstrs[i], v) == 0)
      return 0;
  if (!(s->strs[c->nstrs] = strdup(v)))
    return PL_ENOMEM;
  s->cstrs[c->nstrs] = s->strs[c->nstrs];
  c->nstrs++;
  return 0;
}

/* The values of a list parameter of a JSON condition: '|'-separated, read as p->value says. */
static int add_jvalues(qstate *q, const char *name, const trace_qparam *p, const char *value,
                       jstore *s, store_trace_jcond *c) {
  const char *at = value;
  int n = 0, rc;
  c->strs = s->cstrs;
  c->nums = s->nums;
  c->times_ms = s->times;
  for (;;) {
    const char *bar = strchr(at, '|');
    size_t len = bar ? (size_t)(bar - at) : strlen(at);
    if (n >= VALUES_MAX)
      return qerrf(q, "%.100s: at most %d values", name, VALUES_MAX);
    char raw[TRACE_EPC_MAX];
    if (!len || len >= sizeof raw)
      return qerrf(q, "%.100s: empty or too long value in \"%.100s\"", name, value);
    memcpy(raw, at, len);
    raw[len] = 0;
    double x;
    int64_t ms;
    switch (p->value) {
    case TRACE_QV_STRINGS:
      if ((rc = push_str(s, c, raw)) < 0)
        return rc;
      break;
    case TRACE_QV_IDS: {
      char norm[TRACE_EPC_MAX + 64];
      if (trace_epc_normalise(raw, norm, sizeof norm) < 0)
        return qerrf(q, "%.100s: \"%.100s\" is not a valid identifier", name, raw);
      if ((rc = push_str(s, c, raw)) < 0 || (rc = push_str(s, c, norm)) < 0)
        return rc;
      break;
    }
    case TRACE_QV_VOCAB: {
      char forms[TRACE_VOCAB_FORMS][TRACE_VOCAB_FORM_MAX];
      int k = trace_vocab_forms(p->vocab, raw, forms);
      if (k < 0)
        return qerrf(q, "%.100s: \"%.100s\" is not a %s name or a URI", name, raw,
                     strcmp(p->vocab, "MT") == 0 ? "GS1 measurement type" : "CBV");
      for (int i = 0; i < k; i++)
        if ((rc = push_str(s, c, forms[i])) < 0)
          return rc;
      break;
    }
    case TRACE_QV_NUMBERS:
      if (parse_number(raw, &x) < 0)
        return qerrf(q, "%.100s: \"%.64s\" is not a number", name, raw);
      s->nums[c->nnums++] = x;
      break;
    case TRACE_QV_ANY: /* a string, and whatever else it reads as */
      if ((rc = push_str(s, c, raw)) < 0)
        return rc;
      if (parse_number(raw, &x) == 0)
        s->nums[c->nnums++] = x;
      if (parse_time_ms(raw, &ms) == 0)
        s->times[c->ntimes++] = ms;
      if (strcmp(raw, "true") == 0)
        c->booleans |= 1;
      if (strcmp(raw, "false") == 0)
        c->booleans |= 2;
      break;
    default: return PL_EINVAL;
    }
    n++;
    if (!bar)
      break;
    at = bar + 1;
  }
  return 0;
}

/* GE_value_CEL=4 also finds a report of 277.15 KEL: the condition's numbers in every unit of
 * the dimension of its unit (trace_unit_alternatives); a unit not in the table is compared as
 * written. */
static void unit_alternatives(jstore *s, store_trace_jcond *c) {
  const char *unit = c->with_values[0];
  int n = trace_unit_alternatives(unit, c->has_num ? c->num : 0, s->units, s->num_in, TRACE_UNITS_MAX);
  if (n <= 0)
    return;
  for (int k = 0; k < c->nnums; k++) {
    const char *codes[TRACE_UNITS_MAX];
    double xs[TRACE_UNITS_MAX];
    trace_unit_alternatives(unit, c->nums[k], codes, xs, TRACE_UNITS_MAX);
    for (int i = 0; i < n; i++)
      s->nums_in[(size_t)i * (size_t)c->nnums + (size_t)k] = xs[i];
  }
  c->nunits = n;
  c->units = s->units;
  c->num_in = s->num_in;
  c->nums_in = c->nnums ? s->nums_in : NULL;
}

/* Adds the condition of a parameter that filters on the event's JSON (trace_query_param_parse). */
static int add_jcond(qstate *q, const char *name, const trace_qparam *p, const char *value) {
  if (p->value == TRACE_QV_FLAG) {
    if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
      return 0; /* the standard: false is as if the parameter were not there */
    if (*value && strcmp(value, "true") != 0 && strcmp(value, "1") != 0)
      return qerrf(q, "%.100s takes no value, true or false, got \"%.64s\"", name, value);
  }
  if (q->f.nconds + q->f.njconds >= STORE_TRACE_CONDS_MAX)
    return qerrf(q, "too many query conditions (at most %d)", STORE_TRACE_CONDS_MAX);
  jstore *s = calloc(1, sizeof *s);
  if (!s)
    return PL_ENOMEM;
  store_trace_jcond c;
  memset(&c, 0, sizeof c);
  c.scope = p->scope;
  c.inner = p->inner;
  c.op = p->op;
  snprintf(s->key, sizeof s->key, "%s", p->key);
  c.key = s->key;
  int rc = 0;
  if (p->with_key) {
    int n = 1;
    if (p->with_vocab)
      n = trace_vocab_forms(p->with_vocab, p->with_value, s->with);
    else
      snprintf(s->with[0], sizeof s->with[0], "%s", p->with_value);
    for (int i = 0; i < n; i++)
      s->cwith[i] = s->with[i];
    c.with_key = p->with_key;
    c.with_values = s->cwith;
    c.nwith = n;
    if (n <= 0)
      rc = qerrf(q, "%.100s: bad type \"%.64s\"", name, p->with_value);
  }
  if (rc == 0) {
    switch (p->value) {
    case TRACE_QV_FLAG: break;
    case TRACE_QV_NUMBER:
      if (parse_number(value, &c.num) < 0)
        rc = qerrf(q, "%.100s must be a number, got \"%.64s\"", name, value);
      c.has_num = 1;
      break;
    case TRACE_QV_TIME:
      if (parse_time_ms(value, &c.time_ms) < 0)
        rc = qerrf(q, "%.100s must be an RFC 3339 date-time, got \"%.64s\"", name, value);
      c.has_time = 1;
      break;
    case TRACE_QV_ORDERED:
      if (parse_number(value, &c.num) == 0)
        c.has_num = 1;
      else if (parse_time_ms(value, &c.time_ms) == 0)
        c.has_time = 1;
      else
        rc = qerrf(q, "%.100s must be a number or an RFC 3339 date-time, got \"%.64s\"", name,
                   value);
      break;
    case TRACE_QV_BOOL:
      if (strcmp(value, "true") == 0)
        c.booleans = 1;
      else if (strcmp(value, "false") == 0)
        c.booleans = 2;
      else
        rc = qerrf(q, "%.100s must be true or false, got \"%.64s\"", name, value);
      break;
    default:
      rc = add_jvalues(q, name, p, value, s, &c);
      if (rc == PL_ELIMIT)
        rc = qerrf(q, "%.100s: too many values", name);
    }
  }
  if (rc == 0 && c.with_key && strcmp(c.with_key, "uom") == 0 && (c.has_num || c.nnums > 0))
    unit_alternatives(s, &c);
  if (rc < 0) {
    jstore_free(s);
    return rc;
  }
  q->js[q->f.njconds] = s;
  q->f.jconds[q->f.njconds++] = c;
  return 0;
}

/* HASATTR_readPoint|bizLocation=attr names, EQ_ATTR_readPoint|bizLocation_<attr>=values: the
 * location's master data (store_trace_cond). PL_ENOTFOUND for another field (refused later). */
static int attr_param(qstate *q, const char *key, const char *value) {
  int has = key[0] == 'H';
  const char *rest = key + 8;
  static const struct {
    const char *name;
    int field;
  } locs[] = {{"readPoint", STORE_TRACE_F_READ_POINT}, {"bizLocation", STORE_TRACE_F_BIZ_LOCATION}};
  for (size_t i = 0; i < 2; i++) {
    size_t n = strlen(locs[i].name);
    if (strncmp(rest, locs[i].name, n) != 0 || (has && rest[n]) || (!has && rest[n] != '_'))
      continue;
    const char *attr = has ? NULL : rest + n + 1;
    if (attr && (!*attr || strlen(attr) >= sizeof q->attrs[0] || strspn(attr, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") != strlen(attr)))
      return qerr(q, "%s: the attribute name must be 1 to 128 letters, digits or _%s", key, "");
    int ci = q->f.nconds, rc = add_cond(q, key, has ? STORE_TRACE_F_HASATTR : STORE_TRACE_F_EQ_ATTR, 0, 0, value);
    if (rc < 0)
      return rc;
    q->f.conds[ci].location = locs[i].field;
    if (attr) {
      snprintf(q->attrs[ci], sizeof q->attrs[ci], "%s", attr);
      q->f.conds[ci].attr = q->attrs[ci];
    }
    return 0;
  }
  return PL_ENOTFOUND;
}

/* Applies one query parameter to q. PL_EINVAL with q->error for a bad or unknown one. */
static int apply_param(qstate *q, const char *key, const char *value) {
  if (!value)
    value = "";
  if (strcmp(key, "tenant") == 0)
    return 0;
  if (strcmp(key, "eventType") == 0) {
    const char *p = value;
    for (;;) {
      const char *bar = strchr(p, '|');
      size_t len = bar ? (size_t)(bar - p) : strlen(p);
      char name[64];
      snprintf(name, sizeof name, "%.*s", (int)(len < 63 ? len : 63), p);
      int t = trace_type_parse(name);
      if (!t)
        return qerr(q, "eventType: unknown event type \"%.64s\"%s", name, "");
      q->f.types |= 1u << t;
      if (!bar)
        break;
      p = bar + 1;
    }
    return 0;
  }
  const struct {
    const char *name;
    int64_t *dst;
  } times[] = {{"GE_eventTime", &q->f.ge_event_ms},
               {"LT_eventTime", &q->f.lt_event_ms},
               {"GE_recordTime", &q->f.ge_record_ms},
               {"LT_recordTime", &q->f.lt_record_ms}};
  for (size_t i = 0; i < 4; i++) {
    if (strcmp(key, times[i].name) == 0) {
      int64_t ns;
      if (pl_time_parse(value, &ns) < 0)
        return qerr(q, "%s must be an RFC 3339 date-time, got \"%.64s\"", key, value);
      int64_t ms = ns / 1000000 - (ns % 1000000 < 0 ? 1 : 0);
      *times[i].dst = ms ? ms : (i % 2 ? 1 : -1); /* 0 means unbounded in the filter */
      return 0;
    }
  }
  for (size_t i = 0; i < sizeof eq_params / sizeof eq_params[0]; i++)
    if (strcmp(key, eq_params[i].name) == 0)
      return add_cond(q, key, eq_params[i].field, 0, eq_params[i].kind, value);
  for (size_t i = 0; i < sizeof epc_params / sizeof epc_params[0]; i++)
    if (strcmp(key, epc_params[i].name) == 0)
      return add_cond(q, key, STORE_TRACE_F_EPC, epc_params[i].roles, 0, value);
  if (strcmp(key, "orderBy") == 0) {
    if (strcmp(value, "eventTime") == 0)
      q->f.order_by_record = 0;
    else if (strcmp(value, "recordTime") == 0)
      q->f.order_by_record = 1;
    else
      return qerr(q, "orderBy must be eventTime or recordTime, got \"%.64s\"%s", value, "");
    return 0;
  }
  if (strcmp(key, "orderDirection") == 0) {
    if (strcmp(value, "ASC") == 0)
      q->f.descending = 0;
    else if (strcmp(value, "DESC") == 0)
      q->f.descending = 1;
    else
      return qerr(q, "orderDirection must be ASC or DESC, got \"%.64s\"%s", value, "");
    return 0;
  }
  if (strcmp(key, "perPage") == 0) {
    if (parse_int(value, 1, PER_PAGE_MAX, &q->per_page) < 0)
      return qerr(q, "perPage must be a whole number from 1 to %s%s", "1000", "");
    return 0;
  }
  if (strcmp(key, "eventCountLimit") == 0) {
    if (parse_int(value, 1, 1000000, &q->count_limit) < 0)
      return qerr(q, "eventCountLimit must be a positive whole number%s%s", "", "");
    if (q->has_max_count)
      return qerr(q, "eventCountLimit and maxEventCount cannot be used together%s%s", "", "");
    return 0;
  }
  if (strcmp(key, "maxEventCount") == 0) {
    if (parse_int(value, 0, 100000000, &q->max_count) < 0)
      return qerr(q, "maxEventCount must be a whole number from 0 to 100000000%s%s", "", "");
    q->has_max_count = 1;
    if (q->count_limit)
      return qerr(q, "eventCountLimit and maxEventCount cannot be used together%s%s", "", "");
    return 0;
  }
  if (strcmp(key, "nextPageToken") == 0) {
    long long k, id;
    char tail;
    if (sscanf(value, "%lld.%lld%c", &k, &id, &tail) != 2 || id <= 0)
      return qerr(q, "nextPageToken is not one this server gave%s%s", "", "");
    q->f.after_key = k;
    q->f.after_id = id;
    return 0;
  }
  if (strncmp(key, "HASATTR_", 8) == 0 || strncmp(key, "EQ_ATTR_", 8) == 0) {
    int rc = attr_param(q, key, value);
    if (rc != PL_ENOTFOUND)
      return rc;
  }
  trace_qparam p;
  pl_err e = {{0}};
  int rc = trace_query_param_parse(key, &p, &e);
  if (rc == 0)
    return add_jcond(q, key, &p, value);
  if (rc != PL_ENOTFOUND)
    return qerrf(q, "%s", e.msg[0] ? e.msg : pl_strerror(rc));
  return qerr(q, "unknown query parameter \"%.64s\"%s", key, "");
}

static enum MHD_Result param_cb(void *ctx, enum MHD_ValueKind kind, const char *key, const char *value) {
  qstate *q = ctx;
  if (q->error[0])
    return MHD_NO;
  int rc = apply_param(q, key, value);
  if (rc < 0 && !q->error[0])
    snprintf(q->error, sizeof q->error, "%s", pl_strerror(rc));
  return rc < 0 ? MHD_NO : MHD_YES;
}

static qstate *qstate_new(void) {
  qstate *q = calloc(1, sizeof *q);
  if (q)
    q->per_page = PER_PAGE_DEFAULT;
  return q;
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
static int run_query(http_req *r, qstate *q, int64_t viewer, const char *query_name) {
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
  qstate *q = qstate_new();
  if (!q)
    return http_reply_pl(r, PL_ENOMEM, NULL);
  MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, param_cb, q);
  if (q->error[0])
    st = http_reply_error(r, 400, "%s", q->error);
  else
    st = run_query(r, q, viewer, NULL);
  qstate_free(q);
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
  qstate *q = qstate_new();
  if (!q)
    return http_reply_pl(r, PL_ENOMEM, NULL);
  MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, param_cb, q);
  q->f.types = 1u << type;
  st = q->error[0] ? http_reply_error(r, 400, "%s", q->error) : run_query(r, q, viewer, NULL);
  qstate_free(q);
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
  qstate *q = qstate_new();
  if (!q)
    return http_reply_pl(r, PL_ENOMEM, NULL);
  MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, param_cb, q);
  if (!q->error[0] && apply_param(q, "MATCH_anyEPC", r->match.params[0]) < 0 && !q->error[0])
    snprintf(q->error, sizeof q->error, "bad identifier");
  st = q->error[0] ? http_reply_error(r, 400, "%s", q->error) : run_query(r, q, viewer, NULL);
  qstate_free(q);
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

static int apply_json_params(qstate *q, const json_t *params);

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
    qstate *q = qstate_new();
    if (!q || !p || apply_json_params(q, p) < 0) {
      json_decref(p);
      if (q)
        qstate_free(q);
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
    qstate_free(q);
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

static const pl_json_field sub_fields[] = {
    {"dest", PL_JSON_STRING, 1, 1024, 0},
};

static int sub_create(http_req *r) {
  store_tenant t;
  if (r->who.role == AUTH_ROLE_DEVICE)
    return http_reply_error(r, 403, "device credentials capture events; named queries and subscriptions are managed by people");
  json_t *body;
  int st = http_tenant(r, "trace", &t);
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
  if (r->who.role == AUTH_ROLE_DEVICE)
    return http_reply_error(r, 403, "device credentials capture events; named queries and subscriptions are managed by people");
  int st = http_tenant(r, "trace", &t);
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
  int per_page = PER_PAGE_DEFAULT;
  const char *pp = http_query(r, "perPage"), *after = http_query(r, "nextPageToken");
  if (pp && parse_int(pp, 1, PER_PAGE_MAX, &per_page) < 0)
    return http_reply_error(r, 400, "perPage must be a whole number from 1 to %d", PER_PAGE_MAX);
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
static void json_scalar_text(const json_t *v, char *out, size_t outsz) {
  if (json_is_string(v)) {
    snprintf(out, outsz, "%s", json_string_value(v));
  } else if (json_is_integer(v)) {
    snprintf(out, outsz, "%lld", (long long)json_integer_value(v));
  } else {
    double x = json_real_value(v);
    for (int prec = 15; prec <= 17; prec++) {
      snprintf(out, outsz, "%.*g", prec, x);
      if (strtod(out, NULL) == x)
        break;
    }
  }
}

/* Applies a stored query's parameters: {"MATCH_anyEPC": ["a","b"], "eventType": "ObjectEvent", ...}. */
static int apply_json_params(qstate *q, const json_t *params) {
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)params, key, v) {
    char buf[4096];
    if (json_is_string(v) || json_is_number(v)) {
      json_scalar_text(v, buf, sizeof buf);
    } else if (json_is_boolean(v)) { /* EQ_booleanValue, EXISTS_ */
      snprintf(buf, sizeof buf, "%s", json_is_true(v) ? "true" : "false");
    } else if (json_is_null(v)) { /* EXISTS_ parameters have no value */
      buf[0] = 0;
    } else if (json_is_array(v) && json_array_size(v) > 0) {
      size_t i, n = 0;
      json_t *x;
      buf[0] = 0;
      json_array_foreach(v, i, x) {
        if (!json_is_string(x) && !json_is_number(x))
          return qerr(q, "query parameter %s: list items must be strings or numbers%s", key, "");
        char item[1100];
        json_scalar_text(x, item, sizeof item);
        int w = snprintf(buf + n, sizeof buf - n, "%s%s", i ? "|" : "", item);
        if (w < 0 || (size_t)w >= sizeof buf - n)
          return qerr(q, "query parameter %s is too long%s", key, "");
        n += (size_t)w;
      }
    } else {
      return qerr(
          q, "query parameter %s must be a string, a number, a boolean, null or a non-empty list%s",
          key, "");
    }
    if (strcmp(key, "nextPageToken") == 0 || strcmp(key, "tenant") == 0)
      return qerr(q, "%s cannot be part of a named query%s", key, "");
    int rc = apply_param(q, key, buf);
    if (rc < 0)
      return rc;
  }
  return 0;
}

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
  if (r->who.role == AUTH_ROLE_DEVICE)
    return http_reply_error(r, 403, "device credentials capture events; named queries and subscriptions are managed by people");
  json_t *body;
  int st = http_tenant(r, "trace", &t);
  if (st || (st = http_body_json(r, query_fields, 2, &body)))
    return st;
  const char *name = pl_json_str(body, "name", "");
  json_t *params = json_object_get(body, "query");
  if (!name_ok(name)) {
    json_decref(body);
    return http_reply_error(r, 400, "name must be 1..64 letters, digits, '-' or '_'");
  }
  qstate *q = qstate_new();
  if (!q) {
    json_decref(body);
    return http_reply_pl(r, PL_ENOMEM, NULL);
  }
  int rc = apply_json_params(q, params);
  if (rc < 0)
    st = http_reply_error(r, 400, "%s", q->error[0] ? q->error : pl_strerror(rc));
  qstate_free(q);
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
  if (r->who.role == AUTH_ROLE_DEVICE)
    return http_reply_error(r, 403, "device credentials capture events; named queries and subscriptions are managed by people");
  int st = http_tenant(r, "trace", &t);
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
  qstate *q = qstate_new();
  if (!q || !p) {
    free(q);
    json_decref(p);
    return http_reply_pl(r, PL_ENOMEM, NULL);
  }
  rc = apply_json_params(q, p);
  json_decref(p);
  /* paging parameters of this request */
  const char *pp = http_query(r, "perPage"), *tok = http_query(r, "nextPageToken");
  if (rc == 0 && pp)
    rc = apply_param(q, "perPage", pp);
  if (rc == 0 && tok)
    rc = apply_param(q, "nextPageToken", tok);
  int64_t viewer = t.id;
  st = rc < 0 ? http_reply_error(r, 400, "%s", q->error) : run_query(r, q, viewer, r->match.params[0]);
  qstate_free(q);
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
