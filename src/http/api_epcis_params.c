/* The query parameters of the EPCIS 2.0 REST binding (GET /epcis/events and the other event
 * resources, named queries, subscriptions): each parameter read into a store_trace_filter --
 * indexed conditions (event type, times, identifiers, vocabularies, locations with the master
 * data's hierarchy and attributes) and conditions on the event's JSON (quantities, error
 * declarations, transactions, sensors, extension fields; names parsed by trace/query_params.c).
 * api_epcis.c runs the filter and answers. */
#include "http/http_int.h"

#include "base/clock.h"

#include "store/store_trace.h"
#include "trace/trace.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- query parameters ---- */

/* The memory behind one condition on the event's JSON (q->f.jconds[i]). */


static void http_epcis_jstore_free(http_epcis_jstore *s) {
  if (!s)
    return;
  for (size_t i = 0; i < sizeof s->strs / sizeof s->strs[0]; i++)
    free(s->strs[i]);
  free(s);
}

void http_epcis_query_free(http_epcis_query *q) {
  for (int i = 0; i < STORE_TRACE_CONDS_MAX; i++) {
    for (int k = 0; k < EPCIS_VALUES_MAX; k++)
      free(q->values[i][k]);
    http_epcis_jstore_free(q->js[i]);
  }
}

static int qerr(http_epcis_query *q, const char *fmt, const char *a, const char *b) {
  snprintf(q->error, sizeof q->error, fmt, a, b);
  return PL_EINVAL;
}

static int qerrf(http_epcis_query *q, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int qerrf(http_epcis_query *q, const char *fmt, ...) {
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

int http_parse_int_range(const char *v, int lo, int hi, int *out) {
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || *end || !*v || x < lo || x > hi)
    return PL_EINVAL;
  *out = (int)x;
  return 0;
}

/* Adds a condition from a pipe-separated value list. */
static int add_cond(http_epcis_query *q, const char *name, int field, unsigned roles, int kind, const char *value) {
  if (q->f.nconds + q->f.njconds >= STORE_TRACE_CONDS_MAX)
    return qerr(q, "too many query conditions (at most %s)%s", "32", "");
  int ci = q->f.nconds;
  int n = 0;
  const char *p = value;
  for (;;) {
    const char *bar = strchr(p, '|');
    size_t len = bar ? (size_t)(bar - p) : strlen(p);
    if (n >= EPCIS_VALUES_MAX)
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

static int push_str(http_epcis_jstore *s, store_trace_jcond *c, const char *v) {
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
static int add_jvalues(http_epcis_query *q, const char *name, const trace_qparam *p, const char *value,
                       http_epcis_jstore *s, store_trace_jcond *c) {
  const char *at = value;
  int n = 0, rc;
  c->strs = s->cstrs;
  c->nums = s->nums;
  c->times_ms = s->times;
  for (;;) {
    const char *bar = strchr(at, '|');
    size_t len = bar ? (size_t)(bar - at) : strlen(at);
    if (n >= EPCIS_VALUES_MAX)
      return qerrf(q, "%.100s: at most %d values", name, EPCIS_VALUES_MAX);
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
static void unit_alternatives(http_epcis_jstore *s, store_trace_jcond *c) {
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
static int add_jcond(http_epcis_query *q, const char *name, const trace_qparam *p, const char *value) {
  if (p->value == TRACE_QV_FLAG) {
    if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
      return 0; /* the standard: false is as if the parameter were not there */
    if (*value && strcmp(value, "true") != 0 && strcmp(value, "1") != 0)
      return qerrf(q, "%.100s takes no value, true or false, got \"%.64s\"", name, value);
  }
  if (q->f.nconds + q->f.njconds >= STORE_TRACE_CONDS_MAX)
    return qerrf(q, "too many query conditions (at most %d)", STORE_TRACE_CONDS_MAX);
  http_epcis_jstore *s = calloc(1, sizeof *s);
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
    http_epcis_jstore_free(s);
    return rc;
  }
  q->js[q->f.njconds] = s;
  q->f.jconds[q->f.njconds++] = c;
  return 0;
}

/* HASATTR_readPoint|bizLocation=attr names, EQ_ATTR_readPoint|bizLocation_<attr>=values: the
 * location's master data (store_trace_cond). PL_ENOTFOUND for another field (refused later). */
static int attr_param(http_epcis_query *q, const char *key, const char *value) {
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
int http_epcis_query_param(http_epcis_query *q, const char *key, const char *value) {
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
    if (http_parse_int_range(value, 1, EPCIS_PER_PAGE_MAX, &q->per_page) < 0)
      return qerr(q, "perPage must be a whole number from 1 to %s%s", "1000", "");
    return 0;
  }
  if (strcmp(key, "eventCountLimit") == 0) {
    if (http_parse_int_range(value, 1, 1000000, &q->count_limit) < 0)
      return qerr(q, "eventCountLimit must be a positive whole number%s%s", "", "");
    if (q->has_max_count)
      return qerr(q, "eventCountLimit and maxEventCount cannot be used together%s%s", "", "");
    return 0;
  }
  if (strcmp(key, "maxEventCount") == 0) {
    if (http_parse_int_range(value, 0, 100000000, &q->max_count) < 0)
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

enum MHD_Result http_epcis_query_cb(void *ctx, enum MHD_ValueKind kind, const char *key, const char *value) {
  http_epcis_query *q = ctx;
  if (q->error[0])
    return MHD_NO;
  int rc = http_epcis_query_param(q, key, value);
  if (rc < 0 && !q->error[0])
    snprintf(q->error, sizeof q->error, "%s", pl_strerror(rc));
  return rc < 0 ? MHD_NO : MHD_YES;
}

http_epcis_query *http_epcis_query_new(void) {
  http_epcis_query *q = calloc(1, sizeof *q);
  if (q)
    q->per_page = EPCIS_PER_PAGE_DEFAULT;
  return q;
}


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
int http_epcis_query_json(http_epcis_query *q, const json_t *params) {
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
    int rc = http_epcis_query_param(q, key, buf);
    if (rc < 0)
      return rc;
  }
  return 0;
}
