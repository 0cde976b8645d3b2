/* Queries of the trace event store (see store_trace.h): the SQL of a store_trace_filter, built
 * with every value bound, never spliced into the text -- indexed columns and identifiers,
 * master-data hierarchies and attributes (WD_, HASATTR_, EQ_ATTR_), and conditions on the
 * event's JSON through SQLite's JSON1 functions -- and the event, count and distinct-value
 * lists over it. store/trace.c holds the writes, lineage links, capture jobs, named queries and
 * subscriptions. */
#include "store/store_int.h"
#include "store/store_trace.h"

#include "base/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- queries ---- */

/* Bindings collected while the SQL text is built. */
typedef struct binds {
  int n;
  struct {
    int is_text;
    int64_t i;
    const char *t;
    char *owned;
  } v[STORE_TRACE_CONDS_MAX * 40 + 32];
} binds;

static int bind_int(binds *b, pl_buf *sql, int64_t v) {
  if (b->n >= (int)(sizeof b->v / sizeof b->v[0]))
    return PL_ELIMIT;
  b->v[b->n].is_text = 0;
  b->v[b->n].i = v;
  b->v[b->n].owned = NULL;
  b->n++;
  return pl_buf_append_str(sql, "?");
}

static int bind_text(binds *b, pl_buf *sql, const char *t, char *owned) {
  if (b->n >= (int)(sizeof b->v / sizeof b->v[0])) {
    free(owned);
    return PL_ELIMIT;
  }
  b->v[b->n].is_text = 1;
  b->v[b->n].t = owned ? owned : t;
  b->v[b->n].owned = owned;
  b->n++;
  return pl_buf_append_str(sql, "?");
}

static void binds_free(binds *b) {
  for (int i = 0; i < b->n; i++)
    free(b->v[i].owned);
}

static int binds_apply(binds *b, sqlite3_stmt *st) {
  for (int i = 0; i < b->n; i++) {
    int rc = b->v[i].is_text ? sqlite3_bind_text(st, i + 1, b->v[i].t, -1, SQLITE_STATIC)
                             : sqlite3_bind_int64(st, i + 1, b->v[i].i);
    if (rc != SQLITE_OK)
      return PL_ENOMEM;
  }
  return 0;
}

static int visibility(binds *b, pl_buf *sql, int64_t viewer) {
  if (!viewer)
    return pl_buf_append_str(sql, "1");
  int rc;
  if ((rc = pl_buf_append_str(sql, "(e.tenant_id = ")) < 0 || (rc = bind_int(b, sql, viewer)) < 0 ||
      (rc = pl_buf_append_str(sql, " OR EXISTS (SELECT 1 FROM event_shares sh WHERE sh.event = e.id AND sh.tenant_id = ")) < 0 ||
      (rc = bind_int(b, sql, viewer)) < 0 || (rc = pl_buf_append_str(sql, "))")) < 0)
    return rc;
  return 0;
}

static const char *column_of(int field) {
  switch (field) {
  case STORE_TRACE_F_EVENT_ID: return "e.event_key";
  case STORE_TRACE_F_ACTION: return "e.action";
  case STORE_TRACE_F_BIZ_STEP: return "e.biz_step";
  case STORE_TRACE_F_DISPOSITION: return "e.disposition";
  case STORE_TRACE_F_READ_POINT: return "e.read_point";
  case STORE_TRACE_F_BIZ_LOCATION: return "e.biz_location";
  default: return NULL;
  }
}

/* The smallest string greater than every string starting with prefix (NULL when none). */
static char *prefix_upper(const char *prefix, size_t len) {
  char *u = malloc(len + 1);
  if (!u)
    return NULL;
  memcpy(u, prefix, len);
  u[len] = 0;
  while (len > 0 && (unsigned char)u[len - 1] == 0xff)
    u[--len] = 0;
  if (len == 0) {
    free(u);
    return NULL;
  }
  u[len - 1] = (char)((unsigned char)u[len - 1] + 1);
  return u;
}

static int epc_cond(binds *b, pl_buf *sql, const store_trace_cond *c) {
  int rc;
  if ((rc = pl_buf_append_str(sql, "e.id IN (SELECT x.event FROM event_epcs x WHERE x.role IN (")) < 0)
    return rc;
  int first = 1;
  for (int r = 1; r < STORE_TRACE_ROLE_COUNT; r++) {
    if (!(c->roles & STORE_TRACE_ROLE_BIT(r)))
      continue;
    if ((rc = pl_buf_printf(sql, "%s%d", first ? "" : ",", r)) < 0)
      return rc;
    first = 0;
  }
  if (first && (rc = pl_buf_append_str(sql, "0")) < 0)
    return rc;
  if ((rc = pl_buf_append_str(sql, ") AND (")) < 0)
    return rc;
  for (int i = 0; i < c->nvalues; i++) {
    const char *v = c->values[i];
    size_t len = strlen(v);
    if (i && (rc = pl_buf_append_str(sql, " OR ")) < 0)
      return rc;
    if (len && v[len - 1] == '*') {
      char *lo = strndup(v, len - 1);
      if (!lo)
        return PL_ENOMEM;
      char *hi = prefix_upper(v, len - 1);
      if ((rc = pl_buf_append_str(sql, "(x.epc >= ")) < 0 || (rc = bind_text(b, sql, NULL, lo)) < 0) {
        free(hi);
        return rc;
      }
      if (hi) {
        if ((rc = pl_buf_append_str(sql, " AND x.epc < ")) < 0 || (rc = bind_text(b, sql, NULL, hi)) < 0)
          return rc;
      }
      if ((rc = pl_buf_append_str(sql, ")")) < 0)
        return rc;
    } else {
      if ((rc = pl_buf_append_str(sql, "x.epc = ")) < 0 || (rc = bind_text(b, sql, v, NULL)) < 0)
        return rc;
    }
  }
  return pl_buf_append_str(sql, "))");
}

/* WD_readPoint / WD_bizLocation: the location is one of the values or a descendant of one
 * through the master data's children, as the viewer's own master data has them (every
 * tenant's for viewer 0). UNION drops ids already reached, so a cycle ends the recursion. */
static int within_cond(binds *b, pl_buf *sql, const store_trace_cond *c, int64_t viewer) {
  int rc = pl_buf_printf(sql, "%s IN (WITH RECURSIVE d(id) AS (VALUES ",
                         c->field == STORE_TRACE_F_READ_POINT_WD ? "e.read_point" : "e.biz_location");
  for (int k = 0; rc == 0 && k < c->nvalues; k++) {
    if ((rc = pl_buf_append_str(sql, k ? ",(" : "(")) == 0 && (rc = bind_text(b, sql, c->values[k], NULL)) == 0)
      rc = pl_buf_append_str(sql, ")");
  }
  if (rc == 0)
    rc = pl_buf_append_str(sql, " UNION SELECT v.child FROM trace_vocab_children v JOIN d ON v.parent = d.id");
  if (rc == 0 && viewer && (rc = pl_buf_append_str(sql, " WHERE v.tenant_id = ")) == 0)
    rc = bind_int(b, sql, viewer);
  if (rc == 0)
    rc = pl_buf_append_str(sql, ") SELECT id FROM d)");
  return rc;
}

/* ---- conditions on the event's JSON (store_trace_jcond) ----
 * Each condition is one EXISTS over SQLite's JSON1 table functions on trace_events.doc, the
 * event as captured: the scope's objects (json_each over the lists that hold them), their
 * members m (json_each; for `inner`, json_tree below each extension member t) and, when a
 * member is a list, its elements a. VT and VA are the type and value of what is compared: the
 * member itself, or an element of it. Every value, key and path from a query is bound.
 *
 * json_each and json_tree fail on text that is not JSON, and a member's value is JSON text only
 * when it is an object or an array, so each table function is given a CASE that hands it
 * '{}' (or '[]') otherwise: the paths then simply match nothing. */
#define JSON_VT "(CASE WHEN m.type = 'array' THEN a.type ELSE m.type END)"
#define JSON_VA "(CASE WHEN m.type = 'array' THEN a.atom ELSE m.atom END)"
/* A date-time string as milliseconds since the epoch (SQLite keeps julianday in ms). */
#define JSON_VMS "CAST(round((julianday(" JSON_VA ") - 2440587.5) * 86400000.0) AS INTEGER)"
/* The value as a number: a JSON number, or a string that is one ("20", as documents converted
 * from XML have them); NULL for anything else. */
#define JSON_VN                                                                                    \
  "(CASE WHEN " JSON_VT " IN ('integer', 'real') THEN " JSON_VA " WHEN " JSON_VT                   \
  " = 'text' AND json_valid(" JSON_VA ") THEN (CASE WHEN json_type(" JSON_VA                       \
  ") IN ('integer', 'real') THEN CAST(" JSON_VA " AS REAL) END) END)"
/* Only strings that start like a date: julianday() would read "2451545" as a Julian day. */
#define JSON_IS_TIME                                                                               \
  JSON_VT " = 'text' AND " JSON_VA                                                                 \
          " GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][T ][0-9][0-9]:*'"

/* How each scope's objects are reached: `from` lists the table functions before the members
 * (each followed by ", "), `members` is the argument list of the json_each that yields them,
 * and `object`, for scopes with one object per list element, that object's JSON text. */
static const struct json_scope {
  const char *from, *members, *object;
} json_scopes[STORE_TRACE_SCOPE_COUNT] = {
    [STORE_TRACE_SCOPE_EVENT] = {"", "e.doc", NULL},
    [STORE_TRACE_SCOPE_ILMD] = {"", "e.doc, '$.ilmd'", NULL},
    [STORE_TRACE_SCOPE_ERROR_DECLARATION] = {"", "e.doc, '$.errorDeclaration'", NULL},
    [STORE_TRACE_SCOPE_PERSISTENT_DISPOSITION] = {"", "e.doc, '$.persistentDisposition'", NULL},
    [STORE_TRACE_SCOPE_READ_POINT] = {"", "e.doc, '$.readPoint'", NULL},
    [STORE_TRACE_SCOPE_BIZ_LOCATION] = {"", "e.doc, '$.bizLocation'", NULL},
    [STORE_TRACE_SCOPE_QUANTITY] =
        {"json_each(e.doc) l, json_each(CASE WHEN l.type = 'array' AND l.key IN"
         " ('quantityList', 'childQuantityList', 'inputQuantityList', 'outputQuantityList')"
         " THEN l.value ELSE '[]' END) o, ",
         "CASE WHEN o.type = 'object' THEN o.value ELSE '{}' END",
         "CASE WHEN o.type = 'object' THEN o.value ELSE '{}' END"},
    [STORE_TRACE_SCOPE_BIZ_TRANSACTION] =
        {"json_each(e.doc, '$.bizTransactionList') o, ",
         "CASE WHEN o.type = 'object' THEN o.value ELSE '{}' END",
         "CASE WHEN o.type = 'object' THEN o.value ELSE '{}' END"},
    [STORE_TRACE_SCOPE_SOURCE] = {"json_each(e.doc, '$.sourceList') o, ",
                                  "CASE WHEN o.type = 'object' THEN o.value ELSE '{}' END",
                                  "CASE WHEN o.type = 'object' THEN o.value ELSE '{}' END"},
    [STORE_TRACE_SCOPE_DESTINATION] = {"json_each(e.doc, '$.destinationList') o, ",
                                       "CASE WHEN o.type = 'object' THEN o.value ELSE '{}' END",
                                       "CASE WHEN o.type = 'object' THEN o.value ELSE '{}' END"},
    [STORE_TRACE_SCOPE_SENSOR_ELEMENT] = {"json_each(e.doc, '$.sensorElementList') o, ",
                                          "CASE WHEN o.type = 'object' THEN o.value ELSE '{}' END",
                                          "CASE WHEN o.type = 'object' THEN o.value ELSE '{}' END"},
    [STORE_TRACE_SCOPE_SENSOR_METADATA] =
        {"json_each(e.doc, '$.sensorElementList') se, ",
         "CASE WHEN se.type = 'object' THEN se.value ELSE '{}' END,"
         " '$.sensorMetadata'",
         NULL},
    [STORE_TRACE_SCOPE_SENSOR_REPORT] =
        {"json_each(e.doc, '$.sensorElementList') se, json_each(CASE WHEN"
         " se.type = 'object' THEN se.value ELSE '{}' END, '$.sensorReport') o, ",
         "CASE WHEN o.type = 'object' THEN o.value ELSE '{}' END",
         "CASE WHEN o.type = 'object' THEN o.value ELSE '{}' END"},
};

/* Binds a number: as its shortest exact text, read back by SQLite with CAST (the bindings hold
 * integers and text only). */
static int bind_real(binds *b, pl_buf *sql, double v) {
  char *t = malloc(32);
  if (!t)
    return PL_ENOMEM;
  snprintf(t, 32, "%.17g", v);
  int rc = pl_buf_append_str(sql, "CAST(");
  if (rc < 0) {
    free(t);
    return rc;
  }
  if ((rc = bind_text(b, sql, NULL, t)) < 0) /* owns t from here on */
    return rc;
  return pl_buf_append_str(sql, " AS REAL)");
}

static int bind_text_list(binds *b, pl_buf *sql, const char *const *v, int n) {
  int rc;
  for (int i = 0; i < n; i++)
    if ((i && (rc = pl_buf_append_str(sql, ", ")) < 0) || (rc = bind_text(b, sql, v[i], NULL)) < 0)
      return rc;
  return 0;
}

/* The test on VT/VA of one condition (not EXISTS). */
static int json_value_test(binds *b, pl_buf *sql, const store_trace_jcond *c) {
  int rc;
  if (c->op != STORE_TRACE_OP_EQ) {
    const char *cmp = c->op == STORE_TRACE_OP_GT   ? " > "
                      : c->op == STORE_TRACE_OP_GE ? " >= "
                      : c->op == STORE_TRACE_OP_LT ? " < "
                                                   : " <= ";
    if (c->has_num) {
      if ((rc = pl_buf_printf(sql, "%s%s", JSON_VN, cmp)) < 0)
        return rc;
      return bind_real(b, sql, c->num);
    }
    if (c->has_time) {
      if ((rc = pl_buf_printf(sql, "%s AND %s%s", JSON_IS_TIME, JSON_VMS, cmp)) < 0)
        return rc;
      return bind_int(b, sql, c->time_ms);
    }
    return PL_EINVAL;
  }
  const char *sep = "";
  if (c->nstrs > 0) {
    if ((rc = pl_buf_printf(sql, "(%s = 'text' AND %s IN (", JSON_VT, JSON_VA)) < 0 ||
        (rc = bind_text_list(b, sql, c->strs, c->nstrs)) < 0 ||
        (rc = pl_buf_append_str(sql, "))")) < 0)
      return rc;
    sep = " OR ";
  }
  if (c->nnums > 0) {
    if ((rc = pl_buf_printf(sql, "%s(%s IN (", sep, JSON_VN)) < 0)
      return rc;
    for (int i = 0; i < c->nnums; i++)
      if ((i && (rc = pl_buf_append_str(sql, ", ")) < 0) ||
          (rc = bind_real(b, sql, c->nums[i])) < 0)
        return rc;
    if ((rc = pl_buf_append_str(sql, "))")) < 0)
      return rc;
    sep = " OR ";
  }
  if (c->ntimes > 0) {
    if ((rc = pl_buf_printf(sql, "%s(%s AND %s IN (", sep, JSON_IS_TIME, JSON_VMS)) < 0)
      return rc;
    for (int i = 0; i < c->ntimes; i++)
      if ((i && (rc = pl_buf_append_str(sql, ", ")) < 0) ||
          (rc = bind_int(b, sql, c->times_ms[i])) < 0)
        return rc;
    if ((rc = pl_buf_append_str(sql, "))")) < 0)
      return rc;
    sep = " OR ";
  }
  if (c->booleans & 1) {
    if ((rc = pl_buf_printf(sql, "%s%s = 'true'", sep, JSON_VT)) < 0)
      return rc;
    sep = " OR ";
  }
  if (c->booleans & 2) {
    if ((rc = pl_buf_printf(sql, "%s%s = 'false'", sep, JSON_VT)) < 0)
      return rc;
    sep = " OR ";
  }
  return *sep ? 0 : PL_EINVAL; /* an EQ with no value at all */
}

/* One EXISTS for condition c over the objects of scope (one scope: not SENSOR_ANY). */
static int json_cond_scope(binds *b, pl_buf *sql, const store_trace_jcond *c, int scope) {
  const struct json_scope *s = &json_scopes[scope];
  int rc;
  if ((rc = pl_buf_printf(sql, "EXISTS (SELECT 1 FROM %s", s->from)) < 0)
    return rc;
  if (c->inner)
    rc = pl_buf_printf(sql,
                       "json_each(%s) t, json_tree(CASE WHEN t.type IN ('object', 'array') AND "
                       "instr(t.key, ':') > 0"
                       " THEN t.value ELSE '{}' END) m",
                       s->members);
  else
    rc = pl_buf_printf(sql, "json_each(%s) m", s->members);
  if (rc < 0)
    return rc;
  if (c->op != STORE_TRACE_OP_EXISTS &&
      (rc = pl_buf_append_str(
           sql, ", json_each(CASE WHEN m.type = 'array' THEN m.value ELSE '[0]' END) a")) < 0)
    return rc;
  if ((rc = pl_buf_append_str(sql, " WHERE m.key = ")) < 0 ||
      (rc = bind_text(b, sql, c->key, NULL)) < 0)
    return rc;
  if (c->with_key && c->nunits > 0) {
    /* the same test in each unit of the dimension, each with its converted numbers */
    if (!s->object || c->op == STORE_TRACE_OP_EXISTS)
      return PL_EINVAL;
    char path[64];
    snprintf(path, sizeof path, "$.\"%.40s\"", c->with_key);
    if ((rc = pl_buf_append_str(sql, " AND (")) < 0)
      return rc;
    for (int i = 0; i < c->nunits; i++) {
      store_trace_jcond u = *c;
      u.num = c->num_in[i];
      u.nums = c->nums_in ? c->nums_in + (size_t)i * (size_t)c->nnums : NULL;
      char *owned = strdup(path);
      if (!owned)
        return PL_ENOMEM;
      if ((rc = pl_buf_printf(sql, "%s(json_extract(%s, ", i ? " OR " : "", s->object)) < 0) {
        free(owned);
        return rc;
      }
      if ((rc = bind_text(b, sql, NULL, owned)) < 0 || (rc = pl_buf_append_str(sql, ") = ")) < 0 ||
          (rc = bind_text(b, sql, c->units[i], NULL)) < 0 || (rc = pl_buf_append_str(sql, " AND (")) < 0 ||
          (rc = json_value_test(b, sql, &u)) < 0 || (rc = pl_buf_append_str(sql, "))")) < 0)
        return rc;
    }
    return pl_buf_append_str(sql, "))");
  }
  if (c->with_key) {
    if (!s->object || c->nwith <= 0)
      return PL_EINVAL;
    char *path = malloc(strlen(c->with_key) + 8);
    if (!path)
      return PL_ENOMEM;
    sprintf(path, "$.\"%s\"", c->with_key);
    if ((rc = pl_buf_printf(sql, " AND json_extract(%s, ", s->object)) < 0) {
      free(path);
      return rc;
    }
    if ((rc = bind_text(b, sql, NULL, path)) < 0 || (rc = pl_buf_append_str(sql, ") IN (")) < 0 ||
        (rc = bind_text_list(b, sql, c->with_values, c->nwith)) < 0 ||
        (rc = pl_buf_append_str(sql, ")")) < 0)
      return rc;
  }
  if (c->op != STORE_TRACE_OP_EXISTS) {
    if ((rc = pl_buf_append_str(sql, " AND (")) < 0 || (rc = json_value_test(b, sql, c)) < 0 ||
        (rc = pl_buf_append_str(sql, ")")) < 0)
      return rc;
  }
  return pl_buf_append_str(sql, ")");
}

static int json_cond(binds *b, pl_buf *sql, const store_trace_jcond *c) {
  if (c->scope < STORE_TRACE_SCOPE_EVENT || c->scope >= STORE_TRACE_SCOPE_COUNT || !c->key ||
      c->op < STORE_TRACE_OP_EQ || c->op > STORE_TRACE_OP_EXISTS)
    return PL_EINVAL;
  if (c->with_key && strpbrk(c->with_key, "\"\\"))
    return PL_EINVAL;
  if (c->scope != STORE_TRACE_SCOPE_SENSOR_ANY)
    return json_cond_scope(b, sql, c, c->scope);
  /* time, deviceID, dataProcessingMethod and bizRules may be in either */
  int rc;
  if ((rc = pl_buf_append_str(sql, "(")) < 0 ||
      (rc = json_cond_scope(b, sql, c, STORE_TRACE_SCOPE_SENSOR_METADATA)) < 0 ||
      (rc = pl_buf_append_str(sql, " OR ")) < 0 ||
      (rc = json_cond_scope(b, sql, c, STORE_TRACE_SCOPE_SENSOR_REPORT)) < 0)
    return rc;
  return pl_buf_append_str(sql, ")");
}

/* One master-data attribute (json_each over trace_vocab.attributes, alias a): its id and value. */
#define ATTR_ID "json_extract(a.value, '$.id')"
#define ATTR_VALUE "CAST(json_extract(a.value, '$.attribute') AS TEXT)"

/* "the attribute's id is named name": equal, or ending in '#', ':' or '/' and name. */
static int attr_name_match(binds *b, pl_buf *sql, const char *name) {
  int rc;
  if ((rc = pl_buf_append_str(sql, "(" ATTR_ID " = ")) < 0 || (rc = bind_text(b, sql, name, NULL)) < 0 ||
      (rc = pl_buf_append_str(sql, " OR substr(" ATTR_ID ", -1 - length(")) < 0 ||
      (rc = bind_text(b, sql, name, NULL)) < 0 ||
      (rc = pl_buf_append_str(sql, ")) IN ('#' || ")) < 0 || (rc = bind_text(b, sql, name, NULL)) < 0 ||
      (rc = pl_buf_append_str(sql, ", ':' || ")) < 0 || (rc = bind_text(b, sql, name, NULL)) < 0 ||
      (rc = pl_buf_append_str(sql, ", '/' || ")) < 0 || (rc = bind_text(b, sql, name, NULL)) < 0)
    return rc;
  return pl_buf_append_str(sql, "))");
}

/* HASATTR_ / EQ_ATTR_ on a location: through the viewer's own master data (every tenant's for
 * viewer 0), as WD_ goes. */
static int attr_cond(binds *b, pl_buf *sql, const store_trace_cond *c, int64_t viewer) {
  int rc = pl_buf_printf(sql,
                         "%s IN (SELECT t.id FROM trace_vocab t, json_each(t.attributes) a WHERE " ATTR_VALUE
                         " IS NOT NULL",
                         c->location == STORE_TRACE_F_READ_POINT ? "e.read_point" : "e.biz_location");
  if (rc == 0 && viewer && (rc = pl_buf_append_str(sql, " AND t.tenant_id = ")) == 0)
    rc = bind_int(b, sql, viewer);
  if (rc == 0)
    rc = pl_buf_append_str(sql, " AND (");
  if (c->field == STORE_TRACE_F_HASATTR) {
    for (int k = 0; rc == 0 && k < c->nvalues; k++)
      if (!k || (rc = pl_buf_append_str(sql, " OR ")) == 0)
        rc = attr_name_match(b, sql, c->values[k]);
  } else {
    if (!c->attr)
      return PL_EINVAL;
    if ((rc = attr_name_match(b, sql, c->attr)) == 0)
      rc = pl_buf_append_str(sql, " AND " ATTR_VALUE " IN (");
    for (int k = 0; rc == 0 && k < c->nvalues; k++)
      if (!k || (rc = pl_buf_append_str(sql, ",")) == 0)
        rc = bind_text(b, sql, c->values[k], NULL);
    if (rc == 0)
      rc = pl_buf_append_str(sql, ")");
  }
  return rc == 0 ? pl_buf_append_str(sql, "))") : rc;
}

static int build_where(binds *b, pl_buf *sql, const store_trace_filter *f) {
  int rc;
  if ((rc = pl_buf_append_str(sql, " WHERE ")) < 0 || (rc = visibility(b, sql, f->viewer)) < 0)
    return rc;
  if (f->types && (rc = pl_buf_printf(sql, " AND ((1 << e.type) & %u) != 0", f->types)) < 0)
    return rc;
  if (f->public_only && (rc = pl_buf_append_str(sql, " AND e.public = 1")) < 0)
    return rc;
  const struct {
    int64_t v;
    const char *sql;
  } times[] = {{f->ge_event_ms, " AND e.event_time_ms >= "},
               {f->lt_event_ms, " AND e.event_time_ms < "},
               {f->ge_record_ms, " AND e.record_time_ms >= "},
               {f->lt_record_ms, " AND e.record_time_ms < "},
               {f->min_id, " AND e.id > "}};
  for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
    if (!times[i].v)
      continue;
    if ((rc = pl_buf_append_str(sql, times[i].sql)) < 0 || (rc = bind_int(b, sql, times[i].v)) < 0)
      return rc;
  }
  for (int i = 0; i < f->nconds; i++) {
    const store_trace_cond *c = &f->conds[i];
    if (c->nvalues <= 0)
      return PL_EINVAL;
    if ((rc = pl_buf_append_str(sql, " AND ")) < 0)
      return rc;
    if (c->field == STORE_TRACE_F_EPC) {
      if ((rc = epc_cond(b, sql, c)) < 0)
        return rc;
      continue;
    }
    if (c->field == STORE_TRACE_F_HASATTR || c->field == STORE_TRACE_F_EQ_ATTR) {
      if ((rc = attr_cond(b, sql, c, f->viewer)) < 0)
        return rc;
      continue;
    }
    if (c->field == STORE_TRACE_F_READ_POINT_WD || c->field == STORE_TRACE_F_BIZ_LOCATION_WD) {
      if ((rc = within_cond(b, sql, c, f->viewer)) < 0)
        return rc;
      continue;
    }
    const char *col = column_of(c->field);
    if (!col)
      return PL_EINVAL;
    if ((rc = pl_buf_printf(sql, "%s IN (", col)) < 0)
      return rc;
    for (int k = 0; k < c->nvalues; k++) {
      if ((k && (rc = pl_buf_append_str(sql, ",")) < 0) ||
          (c->field == STORE_TRACE_F_EVENT_ID && (rc = pl_buf_append_str(sql, "plateau_event_key(")) < 0) ||
          (rc = bind_text(b, sql, c->values[k], NULL)) < 0 ||
          (c->field == STORE_TRACE_F_EVENT_ID && (rc = pl_buf_append_str(sql, ")")) < 0))
        return rc;
    }
    if ((rc = pl_buf_append_str(sql, ")")) < 0)
      return rc;
  }
  if (f->nconds + f->njconds > STORE_TRACE_CONDS_MAX || f->njconds < 0)
    return PL_EINVAL;
  for (int i = 0; i < f->njconds; i++) {
    if ((rc = pl_buf_append_str(sql, " AND ")) < 0 || (rc = json_cond(b, sql, &f->jconds[i])) < 0)
      return rc;
  }
  return 0;
}

/* Runs a statement built with binds: prepares sql (unless rc already says the build failed),
 * binds, calls row for each result row, and frees sql and b whatever happens. Returns the row
 * count or a PL_E* code. */
static int run_built(store *s, binds *b, pl_buf *sql, int rc, int (*row)(void *ctx, sqlite3_stmt *st), void *ctx) {
  sqlite3_stmt *st = NULL;
  if (rc == 0)
    rc = store__prepare(s, pl_buf_cstr(sql), &st);
  if (rc == 0)
    rc = binds_apply(b, st);
  if (rc == 0)
    rc = store__each_row(s, st, row, ctx);
  else
    sqlite3_finalize(st);
  pl_buf_free(sql);
  binds_free(b);
  free(b);
  return rc;
}

typedef struct event_visit {
  store_trace_cb cb;
  void *ctx;
} event_visit;

static int visit_event(void *ctx, sqlite3_stmt *st) {
  event_visit *v = ctx;
  store_trace_row row;
  row.id = sqlite3_column_int64(st, 0);
  row.tenant_id = sqlite3_column_int64(st, 1);
  row.type = sqlite3_column_int(st, 2);
  row.event_time_ms = sqlite3_column_int64(st, 3);
  row.record_time_ms = sqlite3_column_int64(st, 4);
  row.event_id = (const char *)sqlite3_column_text(st, 5);
  row.doc = (const char *)sqlite3_column_text(st, 6);
  row.doc_len = (size_t)sqlite3_column_bytes(st, 6);
  row.is_public = sqlite3_column_int(st, 7);
  if (!row.event_id || !row.doc)
    return PL_ENOMEM;
  return v->cb(v->ctx, &row);
}

int store_trace_query(store *s, const store_trace_filter *f, store_trace_cb cb, void *ctx) {
  binds *b = calloc(1, sizeof *b);
  if (!b)
    return PL_ENOMEM;
  pl_buf sql;
  pl_buf_init(&sql, 1 << 20);
  const char *key = f->order_by_record ? "e.record_time_ms" : "e.event_time_ms";
  int rc = pl_buf_append_str(&sql, "SELECT e.id, e.tenant_id, e.type, e.event_time_ms, e.record_time_ms, e.event_id,"
                                   " e.doc, e.public FROM trace_events e");
  if (rc == 0)
    rc = build_where(b, &sql, f);
  if (rc == 0 && f->after_id) {
    if ((rc = pl_buf_printf(&sql, " AND (%s, e.id) %s (", key, f->descending ? "<" : ">")) == 0 &&
        (rc = bind_int(b, &sql, f->after_key)) == 0 && (rc = pl_buf_append_str(&sql, ",")) == 0 &&
        (rc = bind_int(b, &sql, f->after_id)) == 0)
      rc = pl_buf_append_str(&sql, ")");
  }
  if (rc == 0) {
    const char *dir = f->descending ? "DESC" : "ASC";
    rc = pl_buf_printf(&sql, " ORDER BY %s %s, e.id %s LIMIT %lld", key, dir, dir, (long long)store__limit(f->limit));
  }
  event_visit v = {cb, ctx};
  return run_built(s, b, &sql, rc, visit_event, &v);
}

static int read_count(void *ctx, sqlite3_stmt *st) {
  *(int64_t *)ctx = sqlite3_column_int64(st, 0);
  return 0;
}

int store_trace_count(store *s, const store_trace_filter *f, int64_t at_most, int64_t *count) {
  binds *b = calloc(1, sizeof *b);
  if (!b)
    return PL_ENOMEM;
  pl_buf sql;
  pl_buf_init(&sql, 1 << 20);
  int rc = pl_buf_append_str(&sql, "SELECT count(*) FROM (SELECT 1 FROM trace_events e");
  if (rc == 0)
    rc = build_where(b, &sql, f);
  if (rc == 0)
    rc = pl_buf_printf(&sql, " LIMIT %lld)", (long long)(at_most > 0 ? at_most : 0));
  rc = run_built(s, b, &sql, rc, read_count, count);
  return rc < 0 ? rc : 0;
}

typedef struct value_visit {
  int (*cb)(void *ctx, const char *value);
  void *ctx;
} value_visit;

static int visit_value(void *ctx, sqlite3_stmt *st) {
  value_visit *v = ctx;
  const char *value = (const char *)sqlite3_column_text(st, 0);
  return value ? v->cb(v->ctx, value) : 0;
}


int store_trace_distinct(store *s, int64_t viewer, int field, const char *after, int limit,
                         int (*cb)(void *ctx, const char *value), void *ctx) {
  binds *b = calloc(1, sizeof *b);
  if (!b)
    return PL_ENOMEM;
  pl_buf sql;
  pl_buf_init(&sql, 1 << 16);
  const char *col = field == STORE_TRACE_F_EPC ? "x.epc" : column_of(field);
  int rc = col ? 0 : PL_EINVAL;
  if (rc == 0)
    rc = pl_buf_printf(&sql, "SELECT DISTINCT %s FROM trace_events e%s WHERE ", col,
                       field == STORE_TRACE_F_EPC ? " JOIN event_epcs x ON x.event = e.id" : "");
  if (rc == 0)
    rc = visibility(b, &sql, viewer);
  if (rc == 0)
    rc = pl_buf_printf(&sql, " AND %s IS NOT NULL", col);
  if (rc == 0 && after && *after) {
    if ((rc = pl_buf_printf(&sql, " AND %s > ", col)) == 0)
      rc = bind_text(b, &sql, after, NULL);
  }
  if (rc == 0)
    rc = pl_buf_printf(&sql, " ORDER BY 1 LIMIT %lld", (long long)store__limit(limit));
  value_visit v = {cb, ctx};
  return run_built(s, b, &sql, rc, visit_value, &v);
}
