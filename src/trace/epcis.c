/* EPCIS 2.0 documents: parsing and validation of EPCISDocument JSON/JSON-LD (events and the
 * header's master data), the event hash, and the stored text of each event. Identifiers and
 * vocabulary values are put in their normal forms by normalise.c. Pure: bytes in, a parsed
 * document or an error out; no I/O (fuzzed by tests/fuzz/epcis_fuzz.c).
 *
 * Validation follows the standard's rules for the five event types:
 *   - every event: "type", "eventTime" (RFC 3339 with an offset) and "eventTimeZoneOffset"
 *     (+hh:mm / -hh:mm) required; optional eventID (a string), recordTime (ignored: the
 *     repository sets it), errorDeclaration {declarationTime required, reason,
 *     correctiveEventIDs}, certificationInfo (string or list of strings), readPoint and
 *     bizLocation {id required}, bizTransactionList [{type?, bizTransaction}], sourceList and
 *     destinationList [{type, source|destination}], sensorElementList [{sensorMetadata?,
 *     sensorReport: [..] non-empty}], ilmd and persistentDisposition objects;
 *   - ObjectEvent, AggregationEvent, TransactionEvent, AssociationEvent: "action" is ADD,
 *     OBSERVE or DELETE; TransformationEvent has no action;
 *   - AggregationEvent and AssociationEvent: parentID required unless the action is OBSERVE
 *     (AssociationEvent always); TransactionEvent: a non-empty bizTransactionList;
 *     TransformationEvent: at least one input, one output or a transformationID;
 *   - bizStep and disposition: a CBV name, its URN or URI form, or any other URI (custom);
 *   - any other member must be a namespaced extension ("prefix:name"); extensions are kept
 *     verbatim and take part in the event hash.
 *
 * Event hash (eventID when absent): the CBV 2.0 event hash idea, as far as practical. The
 * pre-hash string is "eventType=<type>", "eventTime=<UTC, milliseconds, Z>",
 * "eventTimeZoneOffset=<as given>", then each standard field present in the fixed order of
 * hash_fields[] below, then each extension in key order. Values are canonicalised: identifiers
 * (strings starting "urn:epc:" or "http") in canonical Digital Link form, bizStep and
 * disposition in CBV URI form, numbers as %.17g, lists sorted, object members sorted by name
 * and written name=value. eventID, recordTime, errorDeclaration and @context are left out. The
 * result is "ni:///sha-256;<hex>?ver=CBV2.0". It is stable across the URN and Digital Link
 * forms of the same event, but is not promised to equal other implementations' hashes.
 */
#include "trace/trace.h"
#include "trace/trace_int.h"

#include "base/clock.h"
#include "base/json.h"

#include <ctype.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena: normalised strings and identifier rows live as long as the document ---- */

typedef struct arena_block {
  struct arena_block *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
} arena_block;

static void *arena_alloc(trace_doc *d, size_t n) {
  n = (n + 15) & ~(size_t)15;
  arena_block *b = d->arena;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > 65536 ? n : 65536;
    arena_block *nb = malloc(sizeof *nb + cap);
    if (!nb)
      return NULL;
    nb->next = b;
    nb->used = 0;
    nb->cap = cap;
    d->arena = nb;
    b = nb;
  }
  void *p = b->data + b->used;
  b->used += n;
  return p;
}

static char *arena_strdup(trace_doc *d, const char *s, size_t len) {
  char *p = arena_alloc(d, len + 1);
  if (p) {
    memcpy(p, s, len);
    p[len] = 0;
  }
  return p;
}

/* A direct-mapped cache of identifier normalisations for one document: the same lot or case
 * is named by many events of a document, and the event hash normalises every identifier again.
 * Keys are copies in the arena; a collision simply replaces the entry. */
#define NORM_CACHE_SLOTS 4096
typedef struct norm_entry {
  const char *raw, *norm;
  int len; /* of norm, or a PL_E* code */
} norm_entry;

static uint64_t str_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* trace_epc_normalise through the document's cache (doc may be NULL). *norm is arena or
 * static memory valid while the document lives; returns its length or a PL_E* code. */
static int doc_normalise(trace_doc *doc, const char *raw, const char **norm, char *scratch, size_t scratchsz) {
  norm_entry *cache = doc ? doc->norm_cache : NULL;
  norm_entry *slot = NULL;
  if (cache) {
    slot = &cache[str_hash(raw) & (NORM_CACHE_SLOTS - 1)];
    if (slot->raw && strcmp(slot->raw, raw) == 0) {
      *norm = slot->norm;
      return slot->len;
    }
  }
  int n = trace_epc_normalise(raw, scratch, scratchsz);
  *norm = scratch;
  if (slot && n != PL_ENOMEM) {
    const char *r = arena_strdup(doc, raw, strlen(raw));
    const char *c = n >= 0 ? arena_strdup(doc, scratch, (size_t)n) : "";
    if (r && c) {
      slot->raw = r;
      slot->norm = c;
      slot->len = n;
      if (n >= 0)
        *norm = c;
    }
  }
  return n;
}

/* doc_normalise into memory that lives as long as the document: *out is the normalised form
 * (arena memory). Returns its length, PL_EINVAL for an identifier that is not valid, or
 * PL_ENOMEM. */
static int doc_normalise_keep(trace_doc *doc, const char *raw, const char **out) {
  char scratch[TRACE_EPC_MAX + 64];
  const char *norm;
  int n = doc_normalise(doc, raw, &norm, scratch, sizeof scratch);
  if (n < 0)
    return n == PL_ENOMEM ? n : PL_EINVAL;
  *out = norm != scratch ? norm : arena_strdup(doc, norm, (size_t)n);
  return *out ? n : PL_ENOMEM;
}

/* ---- the event hash ---- */

static const char *const hash_fields[] = {
    "epcList", "parentID", "inputEPCList", "childEPCs", "quantityList", "childQuantityList", "inputQuantityList",
    "outputEPCList", "outputQuantityList", "action", "transformationID", "bizStep", "disposition",
    "persistentDisposition", "readPoint", "bizLocation", "bizTransactionList", "sourceList", "destinationList",
    "sensorElementList", "ilmd", "certificationInfo", NULL};

static const char *const known_fields[] = {
    "type", "eventTime", "eventTimeZoneOffset", "recordTime", "eventID", "errorDeclaration", "@context",
    "epcList", "parentID", "inputEPCList", "childEPCs", "quantityList", "childQuantityList", "inputQuantityList",
    "outputEPCList", "outputQuantityList", "action", "transformationID", "bizStep", "disposition",
    "persistentDisposition", "readPoint", "bizLocation", "bizTransactionList", "sourceList", "destinationList",
    "sensorElementList", "ilmd", "certificationInfo", NULL};

static int is_known(const char *key) {
  return trace__in_list(known_fields, key, strlen(key));
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One rendered list item: its bytes in a scratch buffer. */
typedef struct canon_item {
  size_t off, len;
} canon_item;

/* The scratch buffer the items being sorted point into. qsort has no context argument; the
 * hash of one event runs on one thread, and this is set just before each sort. */
static _Thread_local const unsigned char *canon_base;

static int cmp_item(const void *a, const void *b) {
  const canon_item *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(canon_base + x->off, canon_base + y->off, n);
  return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Appends the canonical text of v; vocab is "BizStep"/"Disp" for those fields' strings. */
static int canon(trace_doc *doc, pl_buf *out, const json_t *v, const char *vocab, int depth) {
  if (depth > TRACE_JSON_DEPTH_MAX)
    return PL_ELIMIT;
  char tmp[TRACE_EPC_MAX + 64];
  switch (json_typeof(v)) {
  case JSON_STRING: {
    const char *s = json_string_value(v), *norm;
    if (vocab && trace_vocab_normalise(vocab, s, tmp, sizeof tmp) >= 0)
      return pl_buf_append_str(out, tmp);
    if ((strncmp(s, "urn:epc:", 8) == 0 || strncmp(s, "http", 4) == 0) &&
        doc_normalise(doc, s, &norm, tmp, sizeof tmp) >= 0)
      return pl_buf_append_str(out, norm);
    return pl_buf_append_str(out, s);
  }
  case JSON_INTEGER: return pl_buf_printf(out, "%lld", (long long)json_integer_value(v));
  case JSON_REAL: return pl_buf_printf(out, "%.17g", json_real_value(v));
  case JSON_TRUE: return pl_buf_append_str(out, "true");
  case JSON_FALSE: return pl_buf_append_str(out, "false");
  case JSON_NULL: return 0;
  case JSON_ARRAY: {
    /* Items are rendered one after another into one scratch buffer, then appended in sorted
     * order (the order of a list does not change the hash). */
    size_t n = json_array_size(v);
    if (n == 1)
      return canon(doc, out, json_array_get(v, 0), vocab, depth + 1);
    canon_item *items = malloc((n ? n : 1) * sizeof *items);
    if (!items)
      return PL_ENOMEM;
    pl_buf b;
    pl_buf_init(&b, out->max_bytes);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
      items[i].off = b.len;
      rc = canon(doc, &b, json_array_get(v, i), vocab, depth + 1);
      items[i].len = b.len - items[i].off;
    }
    if (rc == 0) {
      canon_base = b.data;
      qsort(items, n, sizeof *items, cmp_item);
      for (size_t i = 0; i < n && rc == 0; i++)
        rc = pl_buf_append(out, b.data + items[i].off, items[i].len);
    }
    pl_buf_free(&b);
    free(items);
    return rc;
  }
  case JSON_OBJECT: {
    size_t n = json_object_size(v);
    const char **keys = calloc(n ? n : 1, sizeof *keys);
    if (!keys)
      return PL_ENOMEM;
    size_t k = 0;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val) keys[k++] = key;
    qsort(keys, k, sizeof *keys, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < k && rc == 0; i++) {
      if ((rc = pl_buf_append_str(out, keys[i])) == 0 && (rc = pl_buf_append_byte(out, '=')) == 0)
        rc = canon(doc, out, json_object_get(v, keys[i]), vocab, depth + 1);
    }
    free(keys);
    return rc;
  }
  }
  return 0;
}

static int event_hash(trace_doc *doc, const json_t *event, char *out, size_t outsz) {
  if (!json_is_object(event) || outsz < 90)
    return PL_EINVAL;
  pl_buf b;
  pl_buf_init(&b, 64u << 20);
  int rc = 0;
  const char *type = pl_json_str(event, "type", "");
  const char *time = pl_json_str(event, "eventTime", "");
  int64_t ns;
  char tbuf[48];
  if (pl_time_parse(time, &ns) == 0) {
    int64_t ms = ns / 1000000 - (ns % 1000000 < 0 ? 1 : 0);
    pl_time_format(ms * 1000000, tbuf, sizeof tbuf);
    time = tbuf;
  }
  rc = pl_buf_printf(&b, "eventType=%seventTime=%seventTimeZoneOffset=%s", type, time,
                     pl_json_str(event, "eventTimeZoneOffset", ""));
  for (int i = 0; hash_fields[i] && rc == 0; i++) {
    const json_t *v = json_object_get(event, hash_fields[i]);
    if (!v)
      continue;
    const char *vocab = strcmp(hash_fields[i], "bizStep") == 0       ? "BizStep"
                        : strcmp(hash_fields[i], "disposition") == 0 ? "Disp"
                                                                     : NULL;
    if ((rc = pl_buf_append_str(&b, hash_fields[i])) == 0 && (rc = pl_buf_append_byte(&b, '=')) == 0)
      rc = canon(doc, &b, v, vocab, 0);
  }
  if (rc == 0) {
    /* extensions, by key */
    size_t n = json_object_size(event), k = 0;
    const char **keys = calloc(n ? n : 1, sizeof *keys);
    if (!keys)
      rc = PL_ENOMEM;
    const char *key;
    json_t *val;
    if (keys) {
      json_object_foreach((json_t *)event, key, val) if (!is_known(key)) keys[k++] = key;
      qsort(keys, k, sizeof *keys, cmp_str);
      for (size_t i = 0; i < k && rc == 0; i++)
        if ((rc = pl_buf_append_str(&b, keys[i])) == 0 && (rc = pl_buf_append_byte(&b, '=')) == 0)
          rc = canon(doc, &b, json_object_get(event, keys[i]), NULL, 0);
      free(keys);
    }
  }
  /* GnuTLS's SHA-256 (nettle) uses the CPU's SHA instructions where there are some: several
   * times libsodium's portable code, and the pre-hash text of an event is a few hundred bytes. */
  unsigned char h[32];
  if (rc == 0 && gnutls_hash_fast(GNUTLS_DIG_SHA256, b.data ? (const void *)b.data : "", b.len, h) < 0)
    rc = PL_ENOMEM;
  if (rc == 0) {
    static const char hex[] = "0123456789abcdef";
    size_t n = (size_t)snprintf(out, outsz, "ni:///sha-256;");
    for (size_t i = 0; i < sizeof h; i++) {
      out[n++] = hex[h[i] >> 4];
      out[n++] = hex[h[i] & 15];
    }
    snprintf(out + n, outsz - n, "?ver=CBV2.0");
  }
  pl_buf_free(&b);
  return rc;
}

int trace_event_hash(const json_t *event, char *out, size_t outsz) {
  return event_hash(NULL, event, out, outsz);
}

/* ---- validation ---- */

#define FAIL(...) return pl_err_set(err, PL_EINVAL, __VA_ARGS__)

static int offset_ok(const char *s) {
  return strlen(s) == 6 && (s[0] == '+' || s[0] == '-') && isdigit((unsigned char)s[1]) &&
         isdigit((unsigned char)s[2]) && s[3] == ':' && isdigit((unsigned char)s[4]) &&
         isdigit((unsigned char)s[5]) && (s[1] - '0') * 10 + (s[2] - '0') <= 14 && s[4] <= '5';
}

static int time_ok(const char *s, int64_t *ms) {
  int64_t ns;
  size_t len = strlen(s);
  if (len < 20 || pl_time_parse(s, &ns) < 0)
    return 0;
  if (ms)
    *ms = ns / 1000000 - (ns % 1000000 < 0 ? 1 : 0);
  return 1;
}

typedef struct epc_acc {
  store_trace_epc *v;
  size_t n, cap;
} epc_acc;

static int add_epc(trace_doc *doc, epc_acc *a, int role, const char *raw, double q, int has_q, const char *uom,
                   pl_err *err, const char *field) {
  char scratch[TRACE_EPC_MAX + 64];
  const char *norm;
  int n = doc_normalise(doc, raw, &norm, scratch, sizeof scratch);
  if (n == PL_ENOMEM)
    return n;
  if (n < 0)
    FAIL("%s: \"%.64s\" is not a valid identifier", field, raw);
  if (n > 0 && norm[n - 1] == '*')
    n--; /* a class given as a pattern: stored as the class */
  if (a->n == a->cap) {
    if (a->n >= TRACE_EPCS_PER_EVENT_MAX)
      return pl_err_set(err, PL_ELIMIT, "an event may name at most %d identifiers", TRACE_EPCS_PER_EVENT_MAX);
    size_t cap = a->cap ? a->cap * 2 : 8;
    store_trace_epc *v = arena_alloc(doc, cap * sizeof *v);
    if (!v)
      return PL_ENOMEM;
    if (a->n)
      memcpy(v, a->v, a->n * sizeof *v);
    a->v = v;
    a->cap = cap;
  }
  store_trace_epc *e = &a->v[a->n];
  e->role = role;
  e->epc = (norm != scratch && (size_t)n == strlen(norm)) ? norm : arena_strdup(doc, norm, (size_t)n);
  e->quantity = q;
  e->has_quantity = has_q;
  e->uom = uom;
  if (!e->epc)
    return PL_ENOMEM;
  a->n++;
  return 0;
}

static int epc_list(trace_doc *doc, epc_acc *a, json_t *ev, const char *field, int role, pl_err *err) {
  json_t *v = json_object_get(ev, field);
  if (!v)
    return 0;
  if (!json_is_array(v))
    FAIL("\"%s\" must be a list of identifiers", field);
  size_t i;
  json_t *x;
  json_array_foreach(v, i, x) {
    if (!json_is_string(x))
      FAIL("\"%s\"[%zu] must be a string", field, i);
    int rc = add_epc(doc, a, role, json_string_value(x), 0, 0, NULL, err, field);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int quantity_list(trace_doc *doc, epc_acc *a, json_t *ev, const char *field, int role, pl_err *err) {
  json_t *v = json_object_get(ev, field);
  if (!v)
    return 0;
  if (!json_is_array(v))
    FAIL("\"%s\" must be a list of quantity elements", field);
  size_t i;
  json_t *x;
  json_array_foreach(v, i, x) {
    if (!json_is_object(x))
      FAIL("\"%s\"[%zu] must be an object", field, i);
    json_t *cls = json_object_get(x, "epcClass"), *q = json_object_get(x, "quantity"), *uom = json_object_get(x, "uom");
    if (!json_is_string(cls))
      FAIL("\"%s\"[%zu].epcClass is required (a string)", field, i);
    if (q && !json_is_number(q))
      FAIL("\"%s\"[%zu].quantity must be a number", field, i);
    if (q && json_number_value(q) < 0)
      FAIL("\"%s\"[%zu].quantity must not be negative", field, i);
    if (uom && (!json_is_string(uom) || !q))
      FAIL("\"%s\"[%zu].uom must be a string and needs a quantity", field, i);
    int rc = add_epc(doc, a, role, json_string_value(cls), q ? json_number_value(q) : 0, q != NULL,
                     uom ? json_string_value(uom) : NULL, err, field);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int check_string(json_t *ev, const char *field, int required, const char **out, pl_err *err) {
  json_t *v = json_object_get(ev, field);
  if (!v) {
    if (required)
      FAIL("\"%s\" is required", field);
    *out = NULL;
    return 0;
  }
  if (!json_is_string(v) || !json_string_length(v))
    FAIL("\"%s\" must be a non-empty string", field);
  *out = json_string_value(v);
  return 0;
}

static int check_location(trace_doc *doc, json_t *ev, const char *field, const char **out, pl_err *err) {
  json_t *v = json_object_get(ev, field);
  *out = NULL;
  if (!v)
    return 0;
  if (!json_is_object(v))
    FAIL("\"%s\" must be an object with an \"id\"", field);
  json_t *id = json_object_get(v, "id");
  if (!json_is_string(id) || !json_string_length(id))
    FAIL("\"%s\".id is required (a URI)", field);
  int n = doc_normalise_keep(doc, json_string_value(id), out);
  if (n == PL_ENOMEM)
    return n;
  if (n < 0)
    FAIL("\"%s\".id is not a valid identifier", field);
  return 0;
}

static int check_vocab(trace_doc *doc, json_t *ev, const char *field, const char *kind, const char **out, pl_err *err) {
  const char *raw;
  int rc = check_string(ev, field, 0, &raw, err);
  *out = NULL;
  if (rc < 0 || !raw)
    return rc;
  char norm[1024];
  int n = trace_vocab_normalise(kind, raw, norm, sizeof norm);
  if (n < 0)
    FAIL("\"%s\": \"%.64s\" is not a CBV %s (use a CBV name or a URI for a custom value)", field, raw,
         strcmp(kind, "BizStep") == 0 ? "business step" : "disposition");
  *out = arena_strdup(doc, norm, (size_t)n);
  return *out ? 0 : PL_ENOMEM;
}

static int check_typed_list(json_t *ev, const char *field, const char *member, int type_required, pl_err *err) {
  json_t *v = json_object_get(ev, field);
  if (!v)
    return 0;
  if (!json_is_array(v))
    FAIL("\"%s\" must be a list", field);
  size_t i;
  json_t *x;
  json_array_foreach(v, i, x) {
    if (!json_is_object(x))
      FAIL("\"%s\"[%zu] must be an object", field, i);
    json_t *t = json_object_get(x, "type"), *m = json_object_get(x, member);
    if ((type_required && !t) || (t && (!json_is_string(t) || !json_string_length(t))))
      FAIL("\"%s\"[%zu].type must be a non-empty string", field, i);
    if (!json_is_string(m) || !json_string_length(m))
      FAIL("\"%s\"[%zu].%s is required (a string)", field, i, member);
  }
  return 0;
}

static int check_sensors(json_t *ev, pl_err *err) {
  json_t *v = json_object_get(ev, "sensorElementList");
  if (!v)
    return 0;
  if (!json_is_array(v))
    FAIL("\"sensorElementList\" must be a list");
  size_t i;
  json_t *el;
  json_array_foreach(v, i, el) {
    if (!json_is_object(el))
      FAIL("sensorElementList[%zu] must be an object", i);
    json_t *meta = json_object_get(el, "sensorMetadata"), *rep = json_object_get(el, "sensorReport");
    if (meta && !json_is_object(meta))
      FAIL("sensorElementList[%zu].sensorMetadata must be an object", i);
    if (meta) {
      const char *times[] = {"time", "startTime", "endTime"};
      for (int k = 0; k < 3; k++) {
        json_t *t = json_object_get(meta, times[k]);
        if (t && (!json_is_string(t) || !time_ok(json_string_value(t), NULL)))
          FAIL("sensorElementList[%zu].sensorMetadata.%s must be a date-time with an offset", i, times[k]);
      }
    }
    if (!json_is_array(rep) || json_array_size(rep) == 0)
      FAIL("sensorElementList[%zu].sensorReport is required (a non-empty list)", i);
    size_t k;
    json_t *r;
    json_array_foreach(rep, k, r) {
      if (!json_is_object(r))
        FAIL("sensorElementList[%zu].sensorReport[%zu] must be an object", i, k);
      const char *nums[] = {"value", "minValue", "maxValue", "meanValue", "sDev", "percRank", "percValue"};
      for (int m = 0; m < 7; m++) {
        json_t *x = json_object_get(r, nums[m]);
        if (x && !json_is_number(x))
          FAIL("sensorElementList[%zu].sensorReport[%zu].%s must be a number", i, k, nums[m]);
      }
      json_t *t = json_object_get(r, "time");
      if (t && (!json_is_string(t) || !time_ok(json_string_value(t), NULL)))
        FAIL("sensorElementList[%zu].sensorReport[%zu].time must be a date-time with an offset", i, k);
    }
  }
  return 0;
}

int trace_event_parse(trace_doc *doc, json_t *ev, trace_event *out, pl_err *err) {
  memset(out, 0, sizeof *out);
  out->json = ev;
  if (!json_is_object(ev))
    FAIL("an event must be a JSON object");
  store_trace_event *row = &out->row;
  const char *type_name;
  int rc;
  if ((rc = check_string(ev, "type", 1, &type_name, err)) < 0)
    return rc;
  row->type = trace_type_parse(type_name);
  if (!row->type)
    FAIL("unsupported event type \"%.64s\" (ObjectEvent, AggregationEvent, TransactionEvent, "
         "TransformationEvent or AssociationEvent)",
         type_name);
  const char *time, *offset;
  if ((rc = check_string(ev, "eventTime", 1, &time, err)) < 0)
    return rc;
  if (!time_ok(time, &row->event_time_ms))
    FAIL("\"eventTime\" must be an RFC 3339 date-time with an offset, got \"%.40s\"", time);
  if ((rc = check_string(ev, "eventTimeZoneOffset", 1, &offset, err)) < 0)
    return rc;
  if (!offset_ok(offset))
    FAIL("\"eventTimeZoneOffset\" must be +hh:mm or -hh:mm, got \"%.16s\"", offset);
  const char *s;
  if ((rc = check_string(ev, "recordTime", 0, &s, err)) < 0)
    return rc;
  if (s && !time_ok(s, NULL))
    FAIL("\"recordTime\" must be an RFC 3339 date-time");
  /* every other member: known, or a namespaced extension */
  const char *key;
  json_t *val;
  json_object_foreach(ev, key, val) {
    if (!is_known(key) && !strchr(key, ':'))
      FAIL("unknown field \"%.64s\" (an extension needs a namespace prefix, e.g. \"example:%.32s\")", key, key);
  }
  /* action */
  const char *action = NULL;
  if (row->type == STORE_TRACE_TRANSFORMATION) {
    if (json_object_get(ev, "action"))
      FAIL("a TransformationEvent has no \"action\"");
  } else {
    if ((rc = check_string(ev, "action", 1, &action, err)) < 0)
      return rc;
    if (strcmp(action, "ADD") && strcmp(action, "OBSERVE") && strcmp(action, "DELETE"))
      FAIL("\"action\" must be ADD, OBSERVE or DELETE, got \"%.16s\"", action);
  }
  row->action = action;
  /* eventID, errorDeclaration, certificationInfo */
  const char *eid;
  if ((rc = check_string(ev, "eventID", 0, &eid, err)) < 0)
    return rc;
  if (eid && (strlen(eid) >= sizeof out->event_id || trace__has_control(eid)))
    FAIL("\"eventID\" is too long or has control characters");
  json_t *decl = json_object_get(ev, "errorDeclaration");
  if (decl) {
    if (!json_is_object(decl))
      FAIL("\"errorDeclaration\" must be an object");
    json_t *t = json_object_get(decl, "declarationTime");
    if (!json_is_string(t) || !time_ok(json_string_value(t), NULL))
      FAIL("errorDeclaration.declarationTime is required (a date-time with an offset)");
    json_t *reason = json_object_get(decl, "reason");
    if (reason && !json_is_string(reason))
      FAIL("errorDeclaration.reason must be a string");
    json_t *ids = json_object_get(decl, "correctiveEventIDs");
    if (ids) {
      size_t i;
      json_t *x;
      if (!json_is_array(ids))
        FAIL("errorDeclaration.correctiveEventIDs must be a list of strings");
      json_array_foreach(ids, i, x) if (!json_is_string(x)) FAIL("errorDeclaration.correctiveEventIDs[%zu] must be a string", i);
    }
  }
  json_t *cert = json_object_get(ev, "certificationInfo");
  if (cert && !json_is_string(cert)) {
    size_t i;
    json_t *x;
    if (!json_is_array(cert))
      FAIL("\"certificationInfo\" must be a string or a list of strings");
    json_array_foreach(cert, i, x) if (!json_is_string(x)) FAIL("certificationInfo[%zu] must be a string", i);
  }
  /* identifiers by role */
  epc_acc acc = {0};
  const char *parent;
  if ((rc = check_string(ev, "parentID", 0, &parent, err)) < 0)
    return rc;
  if (parent && (row->type == STORE_TRACE_OBJECT || row->type == STORE_TRACE_TRANSFORMATION))
    FAIL("an %s has no \"parentID\"", type_name);
  if (!parent && (row->type == STORE_TRACE_ASSOCIATION ||
                  (row->type == STORE_TRACE_AGGREGATION && action && strcmp(action, "OBSERVE") != 0)))
    FAIL("\"parentID\" is required for an %s with action %s", type_name, action ? action : "");
  if (parent && (rc = add_epc(doc, &acc, STORE_TRACE_ROLE_PARENT, parent, 0, 0, NULL, err, "parentID")) < 0)
    return rc;
  static const struct {
    int type_mask;
    const char *field;
    int role, quantity;
  } lists[] = {
      {(1 << STORE_TRACE_OBJECT) | (1 << STORE_TRACE_TRANSACTION), "epcList", STORE_TRACE_ROLE_EPC, 0},
      {(1 << STORE_TRACE_OBJECT) | (1 << STORE_TRACE_TRANSACTION), "quantityList", STORE_TRACE_ROLE_EPC_CLASS, 1},
      {(1 << STORE_TRACE_AGGREGATION) | (1 << STORE_TRACE_ASSOCIATION), "childEPCs", STORE_TRACE_ROLE_CHILD, 0},
      {(1 << STORE_TRACE_AGGREGATION) | (1 << STORE_TRACE_ASSOCIATION), "childQuantityList",
       STORE_TRACE_ROLE_CHILD_CLASS, 1},
      {1 << STORE_TRACE_TRANSFORMATION, "inputEPCList", STORE_TRACE_ROLE_INPUT, 0},
      {1 << STORE_TRACE_TRANSFORMATION, "inputQuantityList", STORE_TRACE_ROLE_INPUT_CLASS, 1},
      {1 << STORE_TRACE_TRANSFORMATION, "outputEPCList", STORE_TRACE_ROLE_OUTPUT, 0},
      {1 << STORE_TRACE_TRANSFORMATION, "outputQuantityList", STORE_TRACE_ROLE_OUTPUT_CLASS, 1},
  };
  for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
    if (!json_object_get(ev, lists[i].field))
      continue;
    if (!(lists[i].type_mask & (1 << row->type)))
      FAIL("an %s has no \"%s\"", type_name, lists[i].field);
    rc = lists[i].quantity ? quantity_list(doc, &acc, ev, lists[i].field, lists[i].role, err)
                           : epc_list(doc, &acc, ev, lists[i].field, lists[i].role, err);
    if (rc < 0)
      return rc;
  }
  const char *xform;
  if ((rc = check_string(ev, "transformationID", 0, &xform, err)) < 0)
    return rc;
  if (xform && row->type != STORE_TRACE_TRANSFORMATION)
    FAIL("only a TransformationEvent has a \"transformationID\"");
  if (row->type == STORE_TRACE_TRANSFORMATION && !xform && acc.n == 0 && !decl)
    FAIL("a TransformationEvent needs inputs, outputs or a transformationID");
  row->epcs = acc.v;
  row->nepcs = acc.n;
  /* vocabularies and locations */
  if ((rc = check_vocab(doc, ev, "bizStep", "BizStep", &row->biz_step, err)) < 0 ||
      (rc = check_vocab(doc, ev, "disposition", "Disp", &row->disposition, err)) < 0 ||
      (rc = check_location(doc, ev, "readPoint", &row->read_point, err)) < 0 ||
      (rc = check_location(doc, ev, "bizLocation", &row->biz_location, err)) < 0)
    return rc;
  json_t *pd = json_object_get(ev, "persistentDisposition");
  if (pd) {
    if (!json_is_object(pd))
      FAIL("\"persistentDisposition\" must be an object with \"set\" and/or \"unset\" lists");
    const char *parts[] = {"set", "unset"};
    for (int k = 0; k < 2; k++) {
      json_t *l = json_object_get(pd, parts[k]);
      size_t i;
      json_t *x;
      if (!l)
        continue;
      if (!json_is_array(l))
        FAIL("persistentDisposition.%s must be a list", parts[k]);
      json_array_foreach(l, i, x) {
        char norm[1024];
        if (!json_is_string(x) || trace_vocab_normalise("Disp", json_string_value(x), norm, sizeof norm) < 0)
          FAIL("persistentDisposition.%s[%zu] is not a CBV disposition or URI", parts[k], i);
      }
    }
  }
  if ((rc = check_typed_list(ev, "bizTransactionList", "bizTransaction", 0, err)) < 0 ||
      (rc = check_typed_list(ev, "sourceList", "source", 1, err)) < 0 ||
      (rc = check_typed_list(ev, "destinationList", "destination", 1, err)) < 0 || (rc = check_sensors(ev, err)) < 0)
    return rc;
  if (row->type == STORE_TRACE_TRANSACTION && json_array_size(json_object_get(ev, "bizTransactionList")) == 0)
    FAIL("a TransactionEvent needs a non-empty \"bizTransactionList\"");
  json_t *ilmd = json_object_get(ev, "ilmd");
  if (ilmd && !json_is_object(ilmd))
    FAIL("\"ilmd\" must be an object");
  /* Plateau's sharing extensions */
  json_t *pub = json_object_get(ev, "plateau:public");
  if (pub && !json_is_boolean(pub))
    FAIL("\"plateau:public\" must be true or false");
  row->is_public = json_is_true(pub);
  json_t *share = json_object_get(ev, "plateau:shareWith");
  if (share) {
    size_t i;
    json_t *x;
    if (!json_is_array(share) || json_array_size(share) > 100)
      FAIL("\"plateau:shareWith\" must be a list of at most 100 tenant names");
    out->share_names = arena_alloc(doc, (json_array_size(share) + 1) * sizeof(char *));
    if (!out->share_names)
      return PL_ENOMEM;
    json_array_foreach(share, i, x) {
      if (!json_is_string(x) || !json_string_length(x) || json_string_length(x) > 63)
        FAIL("plateau:shareWith[%zu] must be a tenant name", i);
      out->share_names[i] = (char *)json_string_value(x);
    }
    out->share_count = (int64_t)json_array_size(share);
  }
  /* the event's identity */
  if (eid) {
    snprintf(out->event_id, sizeof out->event_id, "%s", eid);
  } else {
    if ((rc = event_hash(doc, ev, out->event_id, sizeof out->event_id)) < 0)
      return rc == PL_ENOMEM ? rc : pl_err_set(err, rc, "cannot compute the event hash");
    if (json_object_set_new(ev, "eventID", json_string(out->event_id)) < 0)
      return PL_ENOMEM;
  }
  row->event_id = out->event_id;
  out->valid = 1;
  return 0;
}

/* ---- documents ---- */

static char *event_text(trace_doc *d, const char *p, size_t start, size_t end, const char *id, size_t *len) {
  char *out = arena_alloc(d, trace__event_text_bytes(start, end, id));
  if (out)
    *len = trace__event_text(p, start, end, id, out);
  return out;
}

void trace_doc_free(trace_doc *d) {
  if (!d)
    return;
  arena_block *b = d->arena;
  while (b) {
    arena_block *next = b->next;
    free(b);
    b = next;
  }
  free(d->events);
  free(d->problems);
  free(d->norm_cache);
  /* The tree's values are the arena's: dropping it frees nothing one by one. Without an arena
   * of its own (a failure inside doc_parse), the tree belongs to the arena entered there. */
  pl_json_arena *prev = d->json_arena ? pl_json_arena_enter(d->json_arena) : NULL;
  json_decref(d->root);
  if (d->json_arena) {
    pl_json_arena_enter(prev);
    pl_json_arena_free(d->json_arena);
  }
  free(d);
}

static int doc_parse(const void *data, size_t len, size_t max_events, trace_doc **out, pl_err *err);

/* The document's jansson tree lives in an arena of its own (base/json.h): a capture of 10,000
 * events is some 300,000 small values, and one free of a few blocks replaces their frees. */
int trace_doc_parse(const void *data, size_t len, size_t max_events, trace_doc **out, pl_err *err) {
  pl_json_arena *a = pl_json_arena_new();
  if (!a)
    return PL_ENOMEM;
  pl_json_arena *prev = pl_json_arena_enter(a);
  trace_doc *d = NULL;
  int rc = doc_parse(data, len, max_events, &d, err);
  pl_json_arena_enter(prev);
  if (rc < 0) {
    pl_json_arena_free(a);
    return rc;
  }
  d->json_arena = a;
  *out = d;
  return 0;
}

/* Reads epcisHeader.epcisMasterData.vocabularyList into d->vocab. A malformed header rejects
 * the document (PL_EINVAL with a message): master data shapes how later queries match. */
static int master_data(trace_doc *d, pl_err *err) {
  json_t *header = json_object_get(d->root, "epcisHeader");
  if (!header)
    return 0;
  if (!json_is_object(header))
    return pl_err_set(err, PL_EINVAL, "\"epcisHeader\" must be an object");
  json_t *md = json_object_get(header, "epcisMasterData");
  if (!md)
    return 0;
  json_t *list = json_is_object(md) ? json_object_get(md, "vocabularyList") : NULL;
  if (!json_is_array(list))
    return pl_err_set(err, PL_EINVAL, "epcisHeader.epcisMasterData.vocabularyList must be a list of vocabularies");
  size_t total = 0, children = 0, i, k;
  json_t *voc, *el;
  json_array_foreach(list, i, voc) {
    json_t *type = json_object_get(voc, "type"), *els = json_object_get(voc, "vocabularyElementList");
    if (!json_is_object(voc) || !json_is_string(type) || !json_string_length(type))
      return pl_err_set(err, PL_EINVAL, "vocabularyList[%zu] needs a \"type\" (a URI)", i);
    if (els && !json_is_array(els))
      return pl_err_set(err, PL_EINVAL, "vocabularyList[%zu].vocabularyElementList must be a list", i);
    total += json_array_size(els);
  }
  if (total > TRACE_VOCAB_ELEMENTS_MAX)
    return pl_err_set(err, PL_ELIMIT, "the master data has %zu elements; at most %d per document", total,
                      TRACE_VOCAB_ELEMENTS_MAX);
  d->vocab = arena_alloc(d, (total ? total : 1) * sizeof *d->vocab);
  if (!d->vocab)
    return PL_ENOMEM;
  json_array_foreach(list, i, voc) {
    const char *type = json_string_value(json_object_get(voc, "type"));
    json_array_foreach(json_object_get(voc, "vocabularyElementList"), k, el) {
      json_t *id = json_object_get(el, "id"), *attrs = json_object_get(el, "attributes"),
             *kids = json_object_get(el, "children");
      if (!json_is_object(el) || !json_is_string(id) || !json_string_length(id))
        return pl_err_set(err, PL_EINVAL, "vocabularyList[%zu].vocabularyElementList[%zu] needs an \"id\"", i, k);
      if (attrs && !json_is_array(attrs))
        return pl_err_set(err, PL_EINVAL, "vocabulary element \"%.64s\": \"attributes\" must be a list",
                          json_string_value(id));
      size_t a;
      json_t *attr;
      json_array_foreach(attrs, a, attr) {
        if (!json_is_object(attr) || !json_is_string(json_object_get(attr, "id")))
          return pl_err_set(err, PL_EINVAL, "vocabulary element \"%.64s\": attributes[%zu] needs an \"id\"",
                            json_string_value(id), a);
      }
      if (kids && !json_is_array(kids))
        return pl_err_set(err, PL_EINVAL, "vocabulary element \"%.64s\": \"children\" must be a list of URIs",
                          json_string_value(id));
      if ((children += json_array_size(kids)) > TRACE_VOCAB_CHILDREN_MAX)
        return pl_err_set(err, PL_ELIMIT, "the master data names more than %d children", TRACE_VOCAB_CHILDREN_MAX);
      store_trace_vocab *v = &d->vocab[d->nvocab];
      memset(v, 0, sizeof *v);
      v->type = type;
      int n = doc_normalise_keep(d, json_string_value(id), &v->id);
      if (n == PL_ENOMEM)
        return n;
      if (n < 0)
        return pl_err_set(err, PL_EINVAL, "vocabulary element id \"%.64s\" is not a valid URI", json_string_value(id));
      if (attrs) {
        pl_json_arena *cur = pl_json_arena_enter(NULL); /* json_dumps's result is free()d */
        char *text = json_dumps(attrs, JSON_COMPACT | JSON_PRESERVE_ORDER);
        pl_json_arena_enter(cur);
        v->attributes = text ? arena_strdup(d, text, strlen(text)) : NULL;
        free(text);
        if (!v->attributes)
          return PL_ENOMEM;
      }
      if ((v->nchildren = json_array_size(kids)) > 0) {
        if (!(v->children = arena_alloc(d, v->nchildren * sizeof *v->children)))
          return PL_ENOMEM;
        size_t c;
        json_t *kid;
        json_array_foreach(kids, c, kid) {
          n = json_is_string(kid) ? doc_normalise_keep(d, json_string_value(kid), &v->children[c]) : PL_EINVAL;
          if (n == PL_ENOMEM)
            return n;
          if (n < 0)
            return pl_err_set(err, PL_EINVAL, "vocabulary element \"%.64s\": children[%zu] is not a URI",
                              json_string_value(id), c);
        }
      }
      d->nvocab++;
    }
  }
  return 0;
}

static int doc_parse(const void *data, size_t len, size_t max_events, trace_doc **out, pl_err *err) {
  json_t *root = NULL;
  int rc = pl_json_parse(data, len, TRACE_JSON_DEPTH_MAX, &root, err);
  if (rc < 0)
    return rc;
  if (!json_is_object(root)) {
    json_decref(root);
    return pl_err_set(err, PL_EINVAL, "the document must be a JSON object");
  }
  const char *type = pl_json_str(root, "type", NULL);
  int query_doc = type && strcmp(type, "EPCISQueryDocument") == 0;
  if (!type || (strcmp(type, "EPCISDocument") != 0 && !query_doc)) {
    json_decref(root);
    return pl_err_set(err, PL_EINVAL, "not an EPCIS document: \"type\" must be \"EPCISDocument\"%s",
                      type ? "" : " (missing)");
  }
  json_t *ver = json_object_get(root, "schemaVersion");
  if (!json_is_string(ver) || strncmp(json_string_value(ver), "2.0", 3) != 0) {
    json_decref(root);
    return pl_err_set(err, PL_EINVAL, "\"schemaVersion\" must be \"2.0\"");
  }
  json_t *created = json_object_get(root, "creationDate");
  if (!json_is_string(created) || !time_ok(json_string_value(created), NULL)) {
    json_decref(root);
    return pl_err_set(err, PL_EINVAL, "\"creationDate\" is required (an RFC 3339 date-time)");
  }
  json_t *body = json_object_get(root, "epcisBody");
  json_t *list = json_is_object(body) ? json_object_get(body, "eventList") : NULL;
  if (query_doc) { /* a query result being passed on: its events are captured like any others */
    json_t *qr = json_is_object(body) ? json_object_get(body, "queryResults") : NULL;
    json_t *rb = json_is_object(qr) ? json_object_get(qr, "resultsBody") : NULL;
    list = json_is_object(rb) ? json_object_get(rb, "eventList") : NULL;
  }
  if (!json_is_array(list)) {
    json_decref(root);
    return pl_err_set(err, PL_EINVAL, "\"epcisBody.eventList\" is required (a list of events)");
  }
  size_t n = json_array_size(list);
  if (n > max_events) {
    json_decref(root);
    return pl_err_set(err, PL_ELIMIT, "the document has %zu events; the capture limit is %zu", n, max_events);
  }
  trace_doc *d = calloc(1, sizeof *d);
  if (!d || !(d->events = calloc(n ? n : 1, sizeof *d->events))) {
    free(d);
    json_decref(root);
    return PL_ENOMEM;
  }
  d->root = root;
  d->nevents = n;
  d->norm_cache = calloc(NORM_CACHE_SLOTS, sizeof(norm_entry));
  if (!d->norm_cache) {
    trace_doc_free(d);
    return PL_ENOMEM;
  }
  if ((rc = master_data(d, err)) < 0) {
    trace_doc_free(d);
    return rc;
  }
  size_t *spans = malloc(2 * (n ? n : 1) * sizeof *spans);
  if (!spans) {
    trace_doc_free(d);
    return PL_ENOMEM;
  }
  int raw = trace__event_spans(data, len, query_doc, n, spans, spans + n) == 0;
  for (size_t i = 0; i < n; i++) {
    pl_err e = {{0}};
    int had_id = json_object_get(json_array_get(list, i), "eventID") != NULL;
    rc = trace_event_parse(d, json_array_get(list, i), &d->events[i], &e);
    if (rc == PL_ENOMEM) {
      free(spans);
      trace_doc_free(d);
      return rc;
    }
    if (rc < 0) {
      d->events[i].valid = 0;
      trace_problem *p = realloc(d->problems, (d->nproblems + 1) * sizeof *p);
      if (!p) {
        free(spans);
        trace_doc_free(d);
        return PL_ENOMEM;
      }
      d->problems = p;
      p[d->nproblems].index = (int)i;
      snprintf(p[d->nproblems].message, sizeof p[d->nproblems].message, "%s", e.msg[0] ? e.msg : pl_strerror(rc));
      d->nproblems++;
    } else {
      char *copy;
      size_t copy_len = 0;
      if (raw) {
        copy = event_text(d, data, spans[i], spans[n + i], had_id ? NULL : d->events[i].event_id, &copy_len);
      } else {
        pl_json_arena *cur = pl_json_arena_enter(NULL); /* json_dumps's result is free()d */
        char *text = json_dumps(d->events[i].json, JSON_COMPACT | JSON_PRESERVE_ORDER);
        pl_json_arena_enter(cur);
        copy_len = text ? strlen(text) : 0;
        copy = text ? arena_strdup(d, text, copy_len) : NULL;
        free(text);
      }
      if (!copy) {
        free(spans);
        trace_doc_free(d);
        return PL_ENOMEM;
      }
      d->events[i].row.doc = copy;
      d->events[i].row.doc_len = copy_len;
      d->nvalid++;
    }
  }
  free(spans);
  *out = d;
  return 0;
}
