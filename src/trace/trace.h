/* Traceability: GS1 EPCIS 2.0 documents (parsing and validation, pure and fuzzed: epcis.c),
 * identifier normalisation (GS1 EPC URN <-> Digital Link), the event hash that names events
 * captured without an eventID, and the lineage walk behind recall tracing (lineage.c).
 *
 * A parsed document keeps its jansson tree: each event is the document's own JSON object
 * (extensions kept verbatim), with "eventID" added where it was computed, and a
 * store_trace_event row ready for the event store whose strings point into the tree or into
 * memory owned by the trace_doc.
 */
#ifndef PLATEAU_TRACE_TRACE_H
#define PLATEAU_TRACE_TRACE_H

#include "base/err.h"
#include "store/store_trace.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define TRACE_EVENTS_MAX 10000            /* events per capture document (GS1-EPCIS-Capture-Limit) */
#define TRACE_EPC_MAX 1024                /* bytes of one identifier */
#define TRACE_EPCS_PER_EVENT_MAX 100000   /* identifiers named by one event */
#define TRACE_JSON_DEPTH_MAX 32

/* One problem with one event (or the document: index -1). */
typedef struct trace_problem {
  int index;
  char message[256];
} trace_problem;

typedef struct trace_event {
  json_t *json;          /* borrowed from the document */
  store_trace_event row; /* strings borrowed from the document */
  int valid;
  char event_id[128];
  int64_t share_count;
  char **share_names; /* "plateau:shareWith" tenant names, borrowed from json */
} trace_event;

/* The master data of the document's header (epcisHeader.epcisMasterData) is read into
 * store_trace_vocab elements (ids and children normalised like identifiers, so a location's
 * SGLN URN and its Digital Link are one). */
#define TRACE_VOCAB_ELEMENTS_MAX 10000  /* master-data elements per document */
#define TRACE_VOCAB_CHILDREN_MAX 100000 /* children named by a document's master data */

typedef struct trace_doc {
  json_t *root;
  store_trace_vocab *vocab; /* master data; arena memory */
  size_t nvocab;
  trace_event *events;
  size_t nevents;
  size_t nvalid;
  trace_problem *problems;
  size_t nproblems;
  /* owned storage for normalised strings and identifier rows */
  void *arena;
  struct norm_entry *norm_cache; /* NULL: none (a trace_doc made by the caller) */
  struct pl_json_arena *json_arena; /* the tree's memory (base/json.h); NULL: malloc */
} trace_doc;

/* Parses an EPCISDocument (JSON or JSON-LD; the @context is not dereferenced). Returns 0 with
 * *out (free with trace_doc_free) when the document itself is well-formed; individual events
 * that break the standard's rules have valid = 0 and a problem each in out->problems. Errors:
 * PL_EINVAL (not JSON, not an EPCISDocument, no eventList; message in err), PL_ELIMIT (more
 * than max_events events, nesting too deep), PL_ENOMEM. */
int trace_doc_parse(const void *data, size_t len, size_t max_events, trace_doc **out, pl_err *err);
void trace_doc_free(trace_doc *d);

/* Validates one event object and fills ev (its row strings borrow from obj and arena memory of
 * doc). Returns 0 or PL_EINVAL with a message. Used by trace_doc_parse. */
int trace_event_parse(trace_doc *doc, json_t *obj, trace_event *ev, pl_err *err);

/* Normalises an identifier: GS1 EPC URNs (sgtin, sscc, sgln, grai, giai, gsrn, pgln, sgcn,
 * lgtin, idpat sgtin) and GS1 Digital Link URIs on any host become the canonical Digital Link
 * "https://id.gs1.org/01/09506000134352/21/123"; an EPC pattern (idpat, or ".*") becomes that
 * form's prefix followed by '*'. Other identifiers (platform handles, other URIs) are kept as
 * they are. Returns the length or PL_EINVAL (empty, too long, control characters). */
int trace_epc_normalise(const char *in, char *out, size_t outsz);

/* The canonical form of a CBV vocabulary value: a bare CBV name ("shipping") and the CBV 1.x
 * URN ("urn:epcglobal:cbv:bizstep:shipping") become "https://ref.gs1.org/cbv/BizStep-shipping".
 * kind is "BizStep", "Disp", "ER" (error reasons), "BTT" (business transaction types) or "SDT"
 * (source/destination types); or "MT", the GS1 Web Vocabulary's measurement types, whose
 * "Temperature" and "gs1:Temperature" become "https://gs1.org/voc/Temperature". Other URIs are
 * kept. PL_EINVAL for an unknown kind or a bare word that is not a name of the vocabulary
 * (custom values must be URIs). */
int trace_vocab_normalise(const char *kind, const char *in, char *out, size_t outsz);

/* Every form a value of vocabulary kind (as above) may take in a captured document, for
 * matching the text of stored events: for a name of the vocabulary the canonical URI, the bare
 * name and the URN (or "gs1:" CURIE) form, in that order; for any other URI the URI alone.
 * forms has TRACE_VOCAB_FORMS rows (the size is not in the prototype: gcc 12 misreads a
 * two-dimensional member array passed to one). Returns the number of forms written, PL_EINVAL
 * as trace_vocab_normalise, PL_ELIMIT when a URI does not fit. */
#define TRACE_VOCAB_FORMS 3
#define TRACE_VOCAB_FORM_MAX (TRACE_EPC_MAX + 64)
int trace_vocab_forms(const char *kind, const char *in, char forms[][TRACE_VOCAB_FORM_MAX]);

/* The same quantity x given in unit uom (a UN/ECE Recommendation 20 code: KEL CEL FAH, PAL KPA
 * MPA BAR MBR ATM, KGM GRM MGM TNE LBR, MTR CMT MMT KMT INH FOT, MTQ LTR DMQ MLT) in every unit
 * of its dimension, uom included: codes[i] and xs[i], at most max. Returns the count, 0 for a
 * unit not in the table (no conversion). */
int trace_unit_alternatives(const char *uom, double x, const char **codes, double *xs, int max);
#define TRACE_UNITS_MAX 8

/* The EPCIS 2.0 event hash of an event ("ni:///sha-256;<hex>?ver=CBV2.0"). See epcis.c for
 * what is canonicalised. */
int trace_event_hash(const json_t *event, char *out, size_t outsz);

/* Type names. */
const char *trace_type_name(int type); /* "ObjectEvent", ...; NULL when unknown */
int trace_type_parse(const char *name); /* STORE_TRACE_*, or 0 */

/* ---- query parameters (query_params.c) ---- */

/* How the value of a parameter is read (by the caller). Lists are '|'-separated. */
enum trace_qvalue {
  TRACE_QV_STRINGS = 1, /* a list of strings, compared as given */
  TRACE_QV_IDS,         /* a list of identifiers: as given, and in their normalised form */
  TRACE_QV_VOCAB,       /* a list of values of vocabulary `vocab`: every form each may take */
  TRACE_QV_NUMBERS,     /* a list of numbers */
  TRACE_QV_NUMBER,      /* one number */
  TRACE_QV_TIME,        /* one RFC 3339 date-time */
  TRACE_QV_BOOL,        /* true or false */
  TRACE_QV_FLAG,        /* EXISTS_: empty, "true" or "1" filters; "false" or "0" does not */
  TRACE_QV_ANY,         /* extension EQ_: a list; each a string, and also a number, a date-time or a
                           boolean when it reads as one */
  TRACE_QV_ORDERED,     /* extension GT_..LE_: a number or an RFC 3339 date-time */
};

#define TRACE_QP_NAME_MAX 256

/* One parameter that becomes a store_trace_jcond (see store_trace.h). */
typedef struct trace_qparam {
  int op;    /* STORE_TRACE_OP_* */
  int scope; /* STORE_TRACE_SCOPE_* */
  int inner;
  int value;         /* TRACE_QV_* */
  const char *vocab; /* the vocabulary kind of TRACE_QV_VOCAB values (trace_vocab_forms) */
  char key[TRACE_QP_NAME_MAX];
  const char *with_key; /* "uom" or "type": the member the same object must have, or NULL */
  char with_value[TRACE_QP_NAME_MAX]; /* its value as the name gives it */
  const char *with_vocab;             /* the vocabulary of with_value ("BTT", "SDT"), or NULL */
} trace_qparam;

/* Reads the name of an EPCIS 2.0 query parameter that filters on the event's JSON (the
 * quantity, error declaration, sensor, business transaction/source/destination and extension
 * field parameters; see query_params.c for the list). Returns 0 with *out; PL_ENOTFOUND when the
 * name is none of them (it may be another parameter); PL_EINVAL, with a message naming the
 * parameter in err, for a name of one of their forms with a bad part (a unit of measure, a type, a
 * field name); PL_EUNSUPPORTED for the master data parameters HASATTR_ and EQ_ATTR_. */
int trace_query_param_parse(const char *name, trace_qparam *out, pl_err *err);

/* ---- lineage (lineage.c) ---- */
enum { TRACE_UP = 1, TRACE_DOWN = 2, TRACE_BOTH = 3 };
#define TRACE_DEPTH_MAX 20
#define TRACE_NODES_MAX 100000

/* Walks the lineage of epc (normalised) through events visible to viewer (0: all): aggregation
 * (parent/child), transformation (inputs/outputs) and transaction links, up to depth hops and
 * max_nodes identifiers. Returns a JSON object {root, nodes:[{epc, depth, last_event:{...}}],
 * edges:[{from, to, kind, event}], complete, stopped:[...]} (new reference) or NULL on error. */
json_t *trace_lineage(store *s, int64_t viewer, const char *epc, int direction, int depth, size_t max_nodes,
                      int *rc_out);

/* ---- webhooks (webhook.c): subscriptions' deliveries ---- */
typedef struct trace_hub trace_hub;
#define TRACE_HUB_BODY_MAX (8u << 20)
/* Starts the delivery worker with a queue of at most queue_max deliveries (0: 1024). */
int trace_hub_new(size_t queue_max, trace_hub **out);
/* Stops the worker (waiting for a delivery in flight, at most its timeout) and drops what is
 * queued. NULL is a no-op. */
void trace_hub_free(trace_hub *h);
/* Queues a POST of body (copied) to url (copied). Never blocks on the network: PL_ELIMIT when
 * the queue is full, PL_EINVAL for a body over TRACE_HUB_BODY_MAX. Thread-safe. */
int trace_hub_post(trace_hub *h, const char *url, const char *body, size_t len);

#endif
