/* The traceability event store (store/trace.c): EPCIS 2.0 events per tenant, immutable after
 * capture, with indexed columns for the standard query parameters, one row per identifier an
 * event names (event_epcs), sharing with other tenants (event_shares) and a public flag, capture
 * jobs and named queries. A separate face of the store module (the rest is store.h) because
 * only trace/ and the EPCIS API use it.
 *
 * Visibility: every read takes a viewer tenant id. An event is visible to tenant T when it
 * belongs to T or is shared with T; viewer 0 sees every tenant's events (the regulator and
 * admin views; the caller audits them). Strings are borrowed for the call; rows passed to
 * callbacks are valid during the call only.
 */
#ifndef PLATEAU_STORE_STORE_TRACE_H
#define PLATEAU_STORE_STORE_TRACE_H

#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

enum store_trace_type {
  STORE_TRACE_OBJECT = 1,
  STORE_TRACE_AGGREGATION,
  STORE_TRACE_TRANSACTION,
  STORE_TRACE_TRANSFORMATION,
  STORE_TRACE_ASSOCIATION,
};

/* The role an identifier plays in an event (event_epcs.role). *_CLASS roles are quantity
 * elements (an EPC class with a quantity). */
enum store_trace_role {
  STORE_TRACE_ROLE_EPC = 1,    /* epcList */
  STORE_TRACE_ROLE_PARENT,     /* parentID */
  STORE_TRACE_ROLE_CHILD,      /* childEPCs */
  STORE_TRACE_ROLE_INPUT,      /* inputEPCList */
  STORE_TRACE_ROLE_OUTPUT,     /* outputEPCList */
  STORE_TRACE_ROLE_EPC_CLASS,  /* quantityList */
  STORE_TRACE_ROLE_CHILD_CLASS,
  STORE_TRACE_ROLE_INPUT_CLASS,
  STORE_TRACE_ROLE_OUTPUT_CLASS,
  STORE_TRACE_ROLE_COUNT
};
#define STORE_TRACE_ROLE_BIT(r) (1u << (r))

typedef struct store_trace_epc {
  int role;
  const char *epc; /* normalised (trace_epc_normalise) */
  double quantity; /* class roles only */
  int has_quantity;
  const char *uom; /* NULL: none */
} store_trace_epc;

/* One event to insert. Strings NULL or "" mean "absent". */
typedef struct store_trace_event {
  const char *event_id;
  int type;
  int64_t event_time_ms;
  const char *action, *biz_step, *disposition, *read_point, *biz_location;
  const char *doc; /* the event as JSON text */
  size_t doc_len;
  const store_trace_epc *epcs;
  size_t nepcs;
  const int64_t *share_tenants; /* tenant ids the event is shared with */
  size_t nshares;
  int is_public;
} store_trace_event;

/* The deduplication key of an eventID (BLAKE2b, 16 bytes): events of a tenant are unique by it. */
#define STORE_TRACE_KEY_BYTES 16
void store_trace_event_key(const char *event_id, uint8_t key[STORE_TRACE_KEY_BYTES]);

/* Inserts n events of tenant_id with record time record_ms, in the caller's transaction (open
 * one: a failure part-way leaves rows the caller must roll back). inserted[i] (when not NULL)
 * is 1 for an inserted event, 0 for one whose event_id the tenant has already (deduplication:
 * nothing changes). Returns 0 or a PL_E* code. */
int store_trace_insert_batch(store *s, int64_t tenant_id, int64_t capture_id, int64_t record_ms,
                             const store_trace_event *evs, size_t n, int *inserted);

/* ---- master data: vocabulary elements (locations, products, ...) and their hierarchy ---- */
typedef struct store_trace_vocab {
  const char *type;       /* the vocabulary type URI */
  const char *id;
  const char *attributes; /* a JSON list [{"id": URI, "attribute": value}] as text, or NULL */
  const char **children;  /* ids of the element's children */
  size_t nchildren;
} store_trace_vocab;

/* Records n elements for tenant_id, in the caller's transaction: an element seen before keeps
 * its attributes except those named again (replaced), and gains the children named. */
int store_trace_vocab_put(store *s, int64_t tenant_id, const store_trace_vocab *v, size_t n, int64_t now_ms);

typedef struct store_trace_vocab_row {
  int64_t tenant_id;
  const char *type, *id;
  const char *attributes; /* JSON list text */
  const char *children;   /* JSON list text of child ids */
  int64_t updated_ms;
} store_trace_vocab_row;
/* The elements of tenant_id (0: every tenant's) of type (NULL: any) and id (NULL: any), by
 * type and id, after (after_type, after_id) when given, at most limit. Returns the count. */
int store_trace_vocab_list(store *s, int64_t tenant_id, const char *type, const char *id, const char *after_type,
                           const char *after_id, int limit, int (*cb)(void *ctx, const store_trace_vocab_row *row),
                           void *ctx);

/* ---- queries ---- */
enum store_trace_field {
  STORE_TRACE_F_EVENT_ID = 1,
  STORE_TRACE_F_ACTION,
  STORE_TRACE_F_BIZ_STEP,
  STORE_TRACE_F_DISPOSITION,
  STORE_TRACE_F_READ_POINT,
  STORE_TRACE_F_BIZ_LOCATION,
  STORE_TRACE_F_EPC, /* an identifier in one of `roles` (exact, or a prefix with `prefix`) */
  STORE_TRACE_F_READ_POINT_WD,   /* the read point is a value or a descendant (master data) */
  STORE_TRACE_F_BIZ_LOCATION_WD, /* the business location is a value or a descendant */
  STORE_TRACE_F_HASATTR, /* the location (`location`) has master data with one of the attributes */
  STORE_TRACE_F_EQ_ATTR, /* the location's master-data attribute `attr` is one of the values */
};

/* One condition: the field equals one of values (OR); conditions combine with AND. For
 * STORE_TRACE_F_EPC a value ending in '*' matches every identifier starting with what
 * precedes the '*'. */
typedef struct store_trace_cond {
  int field;
  unsigned roles; /* STORE_TRACE_ROLE_BIT mask for STORE_TRACE_F_EPC */
  const char *const *values;
  int nvalues;
  /* F_HASATTR, F_EQ_ATTR: which location (STORE_TRACE_F_READ_POINT or _BIZ_LOCATION) and, for
   * F_EQ_ATTR, the attribute. An attribute name matches an attribute id equal to it or ending
   * in '#', ':' or '/' and it ("sst" matches urn:epcglobal:cbv:mda#sst); values compare as text. */
  int location;
  const char *attr;
} store_trace_cond;

#define STORE_TRACE_CONDS_MAX 32

/* A condition on the event's JSON text (trace_events.doc), for the query parameters whose
 * fields have no column of their own: one member, named `key`, of the objects of `scope`. */
enum store_trace_scope {
  STORE_TRACE_SCOPE_EVENT = 1,              /* the event's own members */
  STORE_TRACE_SCOPE_ILMD,                   /* ilmd */
  STORE_TRACE_SCOPE_ERROR_DECLARATION,      /* errorDeclaration */
  STORE_TRACE_SCOPE_PERSISTENT_DISPOSITION, /* persistentDisposition */
  STORE_TRACE_SCOPE_READ_POINT,             /* readPoint */
  STORE_TRACE_SCOPE_BIZ_LOCATION,           /* bizLocation */
  STORE_TRACE_SCOPE_QUANTITY,               /* each element of quantityList, childQuantityList,
                                               input/outputQuantityList */
  STORE_TRACE_SCOPE_BIZ_TRANSACTION,        /* each element of bizTransactionList */
  STORE_TRACE_SCOPE_SOURCE,                 /* each element of sourceList */
  STORE_TRACE_SCOPE_DESTINATION,            /* each element of destinationList */
  STORE_TRACE_SCOPE_SENSOR_ELEMENT,         /* each element of sensorElementList */
  STORE_TRACE_SCOPE_SENSOR_METADATA,        /* the sensorMetadata of each sensor element */
  STORE_TRACE_SCOPE_SENSOR_REPORT,          /* each sensorReport of each sensor element */
  STORE_TRACE_SCOPE_SENSOR_ANY,             /* a sensorMetadata or a sensorReport */
  STORE_TRACE_SCOPE_COUNT
};

enum store_trace_op {
  STORE_TRACE_OP_EQ = 1, /* equals one of the values */
  STORE_TRACE_OP_GT,
  STORE_TRACE_OP_GE,
  STORE_TRACE_OP_LT,
  STORE_TRACE_OP_LE,
  STORE_TRACE_OP_EXISTS, /* the member is there */
};

/* The event matches when some object of the scope has a member `key` (with `inner`: when some
 * extension member of such an object, one whose name has a ':', has a member `key` at any depth
 * inside it) whose value, or one element of it when it is a list, satisfies op:
 *   EQ: it is a string equal to one of strs, a number equal to one of nums, a date-time string
 *       naming the same millisecond as one of times_ms, or true/false as `booleans` allows;
 *   GT..LE: it is a number compared with num (has_num), or a date-time string compared with
 *       time_ms (has_time);
 *   a string holding a JSON number ("20", as documents converted from XML have them) counts as
 *   that number;
 *   EXISTS: always.
 * With with_key, the same object must also have a member with_key equal to one of with_values
 * (the uom of a sensor report or quantity, the type of a business transaction, source or
 * destination); only the scopes of list elements have one object per element and allow it.
 * Dates in the documents are compared at millisecond precision. */
typedef struct store_trace_jcond {
  int scope, inner, op;
  const char *key;
  const char *const *strs;
  int nstrs;
  const double *nums;
  int nnums;
  const int64_t *times_ms;
  int ntimes;
  int booleans; /* bit 0: true matches, bit 1: false matches */
  double num;
  int has_num;
  int64_t time_ms;
  int has_time;
  const char *with_key;
  const char *const *with_values;
  int nwith;
  /* Units of one dimension (with_key "uom", a number test): instead of with_values, the object's
   * uom is units[i] and the test holds with the numbers in that unit -- num_in[i] for GT..LE,
   * nums_in[i * nnums ...] for EQ -- for some i < nunits. 0: no conversion. */
  int nunits;
  const char *const *units;
  const double *num_in;
  const double *nums_in;
} store_trace_jcond;

typedef struct store_trace_filter {
  int64_t viewer; /* tenant id, or 0 for all tenants */
  unsigned types; /* bit (1 << type); 0: all */
  int64_t ge_event_ms, lt_event_ms, ge_record_ms, lt_record_ms; /* 0: unbounded */
  store_trace_cond conds[STORE_TRACE_CONDS_MAX];
  int nconds;
  int order_by_record; /* 0: eventTime; 1: recordTime */
  int descending;
  /* keyset paging: rows strictly after (after_key, after_id) in the order; after_id 0: none */
  int64_t after_key, after_id;
  int64_t min_id; /* only events with id > min_id (subscriptions); 0: any */
  int public_only; /* only events marked public (with viewer 0: the consumer page) */
  int limit;      /* <= 0: no limit */
  /* conditions on the event's JSON, AND-ed with the rest; nconds + njconds is at most
   * STORE_TRACE_CONDS_MAX */
  store_trace_jcond jconds[STORE_TRACE_CONDS_MAX];
  int njconds;
} store_trace_filter;

typedef struct store_trace_row {
  int64_t id, tenant_id;
  int type;
  int64_t event_time_ms, record_time_ms;
  const char *event_id;
  const char *doc;
  size_t doc_len;
  int is_public;
} store_trace_row;
typedef int (*store_trace_cb)(void *ctx, const store_trace_row *row);

/* Calls cb for each matching event in order; returns the number of rows or a PL_E* code
 * (PL_ELIMIT: the filter has more conditions or values than one statement takes). */
int store_trace_query(store *s, const store_trace_filter *f, store_trace_cb cb, void *ctx);

/* Counts the events matching f, paging (after_key, after_id, limit) aside, up to at_most:
 * writes min(count, at_most) to *count. Errors as store_trace_query. */
int store_trace_count(store *s, const store_trace_filter *f, int64_t at_most, int64_t *count);

/* The distinct values of one column (STORE_TRACE_F_BIZ_STEP ... F_BIZ_LOCATION, or
 * STORE_TRACE_F_EPC for identifiers) among events visible to viewer, in order, after `after`
 * (NULL: from the start), at most limit. */
int store_trace_distinct(store *s, int64_t viewer, int field, const char *after, int limit,
                         int (*cb)(void *ctx, const char *value), void *ctx);

/* ---- lineage ----
 * Links of identifier epc in events visible to viewer: calls cb with each event naming it and
 * every other identifier that event names (with both roles), in event time order. The lineage
 * walk of trace/ decides which links to follow. */
typedef struct store_trace_link {
  int64_t event, tenant_id;
  int type;
  int64_t event_time_ms;
  const char *action, *biz_step, *disposition, *read_point, *biz_location;
  int self_role; /* the role of the looked-up identifier */
  const char *other; /* NULL when the event names nothing else */
  int other_role;
} store_trace_link;
int store_trace_links(store *s, int64_t viewer, const char *epc,
                      int (*cb)(void *ctx, const store_trace_link *l), void *ctx);
/* Whether some event names epc at all, in any tenant (to tell "not visible" from "unknown"). */
int store_trace_epc_exists_any(store *s, const char *epc);
/* The number of events naming epc that viewer may not see (0 for viewer 0). */
int store_trace_epc_hidden(store *s, int64_t viewer, const char *epc);

/* ---- capture jobs ---- */
typedef struct store_trace_capture {
  int64_t id, tenant_id;
  int64_t created_ms, finished_ms;
  char state[16];          /* "running" | "success" | "failed" */
  int64_t captured, duplicates, rejected;
  char *errors_json;       /* a JSON array as text, owned: free() it */
} store_trace_capture;
int store_trace_capture_create(store *s, int64_t tenant_id, int64_t now_ms, int64_t *id);
int store_trace_capture_finish(store *s, int64_t tenant_id, int64_t id, const char *state, int64_t captured,
                               int64_t duplicates, int64_t rejected, const char *errors_json, int64_t now_ms);
int store_trace_capture_get(store *s, int64_t tenant_id, int64_t id, store_trace_capture *out);

/* ---- named queries (EPCIS /queries) ---- */
int store_trace_named_put(store *s, int64_t tenant_id, const char *name, const char *params_json, int64_t now_ms);
/* *params_json is allocated (free()). */
int store_trace_named_get(store *s, int64_t tenant_id, const char *name, char **params_json, int64_t *created_ms);
int store_trace_named_delete(store *s, int64_t tenant_id, const char *name);
int store_trace_named_list(store *s, int64_t tenant_id,
                           int (*cb)(void *ctx, const char *name, const char *params_json, int64_t created_ms),
                           void *ctx);

/* ---- subscriptions (a named query's new results pushed to a webhook) ---- */
typedef struct store_trace_sub {
  int64_t id, tenant_id;
  const char *query_name, *dest; /* borrowed */
  int64_t created_ms;
  int64_t last_event; /* newest event id already delivered */
} store_trace_sub;
/* Writes sub->id; last_event starts at the newest event id stored (only new events follow). */
int store_trace_sub_create(store *s, store_trace_sub *sub);
int store_trace_sub_delete(store *s, int64_t tenant_id, const char *query_name, int64_t id);
/* tenant_id 0: every tenant's; query_name NULL: every query's. */
int store_trace_sub_list(store *s, int64_t tenant_id, const char *query_name,
                         int (*cb)(void *ctx, const store_trace_sub *sub), void *ctx);
/* Moves last_event from `from` to `to`; PL_ENOTFOUND when another request moved it first (so a
 * batch of events is delivered once). */
int store_trace_sub_advance(store *s, int64_t id, int64_t from, int64_t to);

#endif
